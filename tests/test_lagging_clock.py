"""A fired deadline's commands must not depend on workflow.now() (patch
"deadlines-always-timed").

Why: when a query reaches the worker while a workflow task waits (typically while a
worker catches up after a server restart, with a dashboard polling), the SDK
applies the waiting events, a fired timer among them, with the previous task's
time. The case then decides on a clock that lags; a later replay sees the true
time. The chaos test (tests/test_chaos.py, server restart) caught this as a
warning dated before the restart and, worse, as a history that no longer replayed.

Here the two clocks are made explicit. A recorded history is edited so that the
task handling the first fired deadline (the L1 warning, 3 h in) ran 3 h later than
recorded, past the L1 breach. That is what the replay sees when the live run lagged.
The current code replays it; the code before the patch does not.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from record_histories import CONVERTER, history_path, load_history
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from workflows.escalation import EscalationWorkflow

SCENARIO = "three_tiers_unclaimed"  # nobody claims: L1 warns at 3 h, breaches at 4 h
LATER = timedelta(hours=3)


def _task_started_late(history: WorkflowHistory, by: timedelta) -> WorkflowHistory:
    """`history` with the workflow task after the first fired timer, and every
    event after it, moved `by` later."""
    data = history.to_json_dict()
    events = data["events"]
    fired = next(i for i, e in enumerate(events) if e["eventType"] == "EVENT_TYPE_TIMER_FIRED")
    started = next(
        i
        for i, e in enumerate(events)
        if i > fired and e["eventType"] == "EVENT_TYPE_WORKFLOW_TASK_STARTED"
    )
    for event in events[started:]:
        moment = datetime.fromisoformat(event["eventTime"].replace("Z", "+00:00"))
        event["eventTime"] = (moment + by).isoformat().replace("+00:00", "Z")
    return WorkflowHistory.from_json(history.workflow_id, data)


async def _replay(history: WorkflowHistory) -> None:
    replayer = Replayer(workflows=[EscalationWorkflow], data_converter=CONVERTER)
    await replayer.replay_workflow(history)


async def test_a_case_replays_whatever_time_its_deadline_task_ran_at():
    history = load_history(history_path(SCENARIO))
    await _replay(history)  # as recorded
    await _replay(_task_started_late(history, LATER))


async def test_before_the_patch_a_late_deadline_task_changes_the_commands():
    history = load_history(history_path(SCENARIO, "before-deadlines-always-timed"))
    await _replay(history)  # as recorded, it replays
    with pytest.raises(NondeterminismError):
        await _replay(_task_started_late(history, LATER))
