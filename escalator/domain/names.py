"""Names shared by the workflow, its activities and its clients.

Temporal matches these strings across processes, so each is written once, here.
Changing one breaks running cases and recorded histories: never rename them.
"""

from __future__ import annotations

WORKFLOW_TYPE = "EscalationWorkflow"

# Activities. The workflow schedules them by name, so workflow code never imports
# the SMTP, HTTP or model clients that implement them.
SEND_EMAIL = "send_email"
POST_WEBHOOK = "post_webhook"
# The policy's named channels (escalator/domain/policy.py `Channel`), one per kind.
POST_SLACK_MESSAGE = "post_slack_message"
SEND_PAGERDUTY_EVENT = "send_pagerduty_event"
POST_CHANNEL_WEBHOOK = "post_channel_webhook"
CHANNEL_ACTIVITIES = {
    "slack": POST_SLACK_MESSAGE,
    "pagerduty": SEND_PAGERDUTY_EVENT,
    "webhook": POST_CHANNEL_WEBHOOK,
}
ASSESS_CASE = "assess_case"
DRAFT_FOR_AUDIENCE = "draft_for_audience"
AI_ACTIVITIES = (ASSESS_CASE, DRAFT_FOR_AUDIENCE)
RECORD_TO_LEDGER = "record_to_ledger"  # the case ledger (escalator/domain/ledger.py)

# ApplicationError types, as callers and retry policies see them.
INVALID_CASE_INPUT = "InvalidCaseInput"  # the workflow's input is not a case
ACTION_REFUSED = "ActionRefused"  # an update the case's rules refuse
PERMANENT_DELIVERY_ERROR = "PermanentDeliveryError"  # mail or webhook said no for good
ASSESSMENT_REJECTED = "AssessmentRejected"  # the model API refused the request for good

# Queries.
STATUS_QUERY = "status"
TIMELINE_QUERY = "timeline"
