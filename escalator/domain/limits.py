"""Every bound on what a client can make a case hold, in one place.

Temporal refuses a payload over 2 MiB and a gRPC message over 4 MiB. A payload
that grows past them fails the workflow task on every retry, and the case is stuck
for good (`PayloadsTooLarge`). So nothing a client sends may grow a case's state,
its activity inputs or its query answers without bound:

- each item a client sends has a size limit, checked where it is sent (CLI,
  Python API) and again by the workflow, which decodes every message itself;
- each list a client can grow has a count limit, or the case keeps only its newest
  entries and counts the rest (older entries stay in the workflow's history);
- what leaves the case (notifications, the assessment, `status`, the outcome)
  carries the newest few entries and totals, never everything.

README.md ("Limits") lists these; docs/reliability.md gives the worst-case sizes
they allow.
"""

from __future__ import annotations

# -- what a client sends (refused over the limit) --------------------------------

MAX_TITLE_CHARS = 200
MAX_DESCRIPTION_BYTES = 64 * 1024
MAX_NOTE_BYTES = 16 * 1024
# `data` (free-form, as JSON) and the whole case input (as JSON). Checked where a
# case is started, and by the workflow for cases started since the bound.
MAX_DATA_BYTES = 16 * 1024
MAX_CASE_INPUT_BYTES = 256 * 1024
MAX_REASON_CHARS = 2000  # escalation, hold, de-escalation and reopen reasons
MAX_SUMMARY_CHARS = 4000  # a resolve's summary
MAX_NOTE_ITEMS = 10  # steps_taken and symptoms in one escalation note
MAX_NOTE_ITEM_CHARS = 500
MAX_NOTES_PER_CASE = 10_000  # notes a case accepts over its whole life
MAX_REOPENS = 20  # after that, open a new case

# -- what a case keeps (newest entries, plus counts of the rest) -----------------

# Sizes below are of the JSON Temporal stores, where one control character can take
# six bytes (\u0001): the windows are sized for that worst case, not for prose.
NOTES_KEPT = 50  # notes held in the case's state and carried over continue-as-new
NOTES_KEPT_BYTES = 256 * 1024  # ...and at most this much note text (the newest is kept)
TIMELINE_KEPT = 100  # timeline entries held and carried
TIMELINE_DETAIL_CHARS = 300  # one timeline entry's text
TIMELINE_ACTOR_CHARS = 200  # ...and who it names (as long as a user name may be)
ESCALATIONS_KEPT = 5  # tier changes held in full, with their notes
MOVES_KEPT = 200  # (from, to) tier pairs for the ping-pong guard

# -- what leaves the case ---------------------------------------------------------

STATUS_NOTES = 10  # the `status` query's newest notes, in full
STATUS_TIMELINE = 50  # ...and newest timeline entries
OUTCOME_TIMELINE = TIMELINE_KEPT  # the outcome's timeline
NOTIFICATION_NOTES = 3  # notes in one notification, newest last
NOTIFICATION_ESCALATIONS = 3  # escalations in one notification, newest last
NOTIFICATION_NOTE_CHARS = 2000  # one note's text in a notification
DESCRIPTION_EXCERPT_CHARS = 2000  # the description in a notification

# Activity inputs one workflow task may schedule. A burst of messages handled in one
# task (escalations, reopens) could otherwise schedule more than the 4 MiB a task's
# completion may carry; past this budget, the rest waits for the next task.
TASK_SEND_BYTES = 1024 * 1024

# -- the history of one run --------------------------------------------------------

# A run continues as new at this history size (bytes), at `continue_as_new_after`
# events, or when Temporal suggests it, whichever comes first. Temporal warns at
# 10 MiB and fails the workflow at 50 MiB.
CONTINUE_AS_NEW_HISTORY_BYTES = 8 * 1024 * 1024

# The case ledger: a case sends its recorded events in batches of at most this many
# (and at resolve, and before it continues as new).
LEDGER_BATCH_EVENTS = 200
