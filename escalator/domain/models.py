"""Data that crosses Temporal: workflow input and output, messages, activity inputs.

One model per workflow, handler and activity, so fields can be added later without
breaking callers. All of it is plain pydantic, safe to import in workflow code.

Longer than most modules: every wire model is here, so a reader sees the whole
contract of the workflow in one place.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    AwareDatetime,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import to_json

from escalator.domain.assessment import AssessmentResult, Audience
from escalator.domain.ledger import LedgerEvent

# Every bound on case text and lists lives in escalator/domain/limits.py (README, "Limits").
from escalator.domain.limits import (
    MAX_CASE_INPUT_BYTES,
    MAX_DATA_BYTES,
    MAX_DESCRIPTION_BYTES,
    MAX_NOTE_BYTES,
    MAX_NOTE_ITEMS,
    MAX_REASON_CHARS,
    MAX_SUMMARY_CHARS,
    MAX_TITLE_CHARS,
)
from escalator.domain.policy import Channel, EmailAddress, Policy, Severity, WholeNumber
from escalator.domain.records import (
    ACCOUNT_PATTERN,
    CASE_ID_PATTERN,
    LABEL_PATTERN,
    Actor,
    CaseNote,
    CasePhase,
    Deadline,
    Escalation,
    EscalationNote,
    HoldState,
    Label,
    Model,
    Role,
    TierRef,
    TimelineEvent,
)

# Re-exported: the records are part of the wire models (status, notifications).
__all__ = [
    "ACCOUNT_PATTERN",
    "CASE_ID_PATTERN",
    "LABEL_PATTERN",
    "Actor",
    "CaseNote",
    "CasePhase",
    "Deadline",
    "Escalation",
    "EscalationNote",
    "HoldState",
    "Role",
    "TierRef",
    "TimelineEvent",
]


def _bounded_utf8(limit: int) -> AfterValidator:
    def check(value: str) -> str:
        size = len(value.encode("utf-8"))
        if size > limit:
            raise ValueError(
                f"is {size} bytes; the limit is {limit} bytes, so attach long logs elsewhere"
            )
        return value

    return AfterValidator(check)


Description = Annotated[str, _bounded_utf8(MAX_DESCRIPTION_BYTES)]
NoteText = Annotated[str, Field(min_length=1), _bounded_utf8(MAX_NOTE_BYTES)]
Reason = Annotated[str, Field(max_length=MAX_REASON_CHARS)]


def workflow_id_for(case_id: str) -> str:
    return f"case-{case_id}"


def case_id_is_valid(case_id: str) -> bool:
    return re.fullmatch(CASE_ID_PATTERN, case_id) is not None


# -- case input ----------------------------------------------------------------


class Customer(Model):
    name: str | None = Field(default=None, max_length=200)
    email: EmailAddress | None = None


class CaseInput(Model):
    """Input of `EscalationWorkflow`. Any Temporal client can send it as JSON.

    `carried` is set only by the workflow itself when it continues as new.
    """

    case_id: str = Field(pattern=CASE_ID_PATTERN)
    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    description: Description = ""
    severity: Severity = "P3"
    customer: Customer | None = None
    account: str = Field(default="default", pattern=ACCOUNT_PATTERN)
    # Dimensions for reports (and `customer_tier` for routing): short labels, never
    # free text, since they become search attributes and metric labels.
    category: Label | None = Field(default=None, examples=["sso"])
    customer_tier: Label | None = Field(default=None, examples=["enterprise"])
    data: dict[str, Any] = Field(default_factory=dict)
    policy: Policy
    continue_as_new_after: WholeNumber = Field(
        default=10_000,
        ge=100,
        description="History events after which the case continues as new (Temporal "
        "also suggests it near its own limits, whichever comes first).",
    )
    carried: CaseState | None = None


def case_input_problem(case: CaseInput) -> tuple[str | None, str] | None:
    """`(field, reason)` if the case is too large to start, else None (field None: the
    case as a whole).

    Checked before anything is sent, so an oversized case is one clear error naming
    the field instead of Temporal's "Blob data size exceeds limit".
    """
    data_size = len(to_json(case.data))
    if data_size > MAX_DATA_BYTES:
        return "data", (
            f"is {data_size} bytes as JSON; the limit is {MAX_DATA_BYTES} bytes, "
            "so attach long logs elsewhere"
        )
    total = len(case.model_dump_json())
    if total > MAX_CASE_INPUT_BYTES:
        return None, (
            f"is {total} bytes as JSON; the limit is {MAX_CASE_INPUT_BYTES} bytes, "
            "so shorten its description, data or policy"
        )
    return None


# -- messages (signals and updates) -----------------------------------------------


class ClaimRequest(Model):
    actor: Actor


class ResolveRequest(Model):
    actor: Actor
    summary: str = Field(default="", max_length=MAX_SUMMARY_CHARS)


def _note_lists_bounded(note: EscalationNote) -> EscalationNote:
    # On the request, not on EscalationNote: notes recorded before the bound must
    # still decode when a case continues as new or its history is replayed.
    for field in ("steps_taken", "symptoms"):
        count = len(getattr(note, field))
        if count > MAX_NOTE_ITEMS:
            raise ValueError(
                f"{field} has {count} items; the limit is {MAX_NOTE_ITEMS}, "
                "so merge related ones or attach the rest as a note"
            )
    return note


class EscalateRequest(Model):
    actor: Actor
    note: Annotated[EscalationNote, AfterValidator(_note_lists_bounded)]


class AddNoteRequest(Model):
    actor: Actor
    text: NoteText


class DraftInput(Model):
    """Input of the `draft` update: re-word the saved assessment for an audience."""

    actor: Actor
    audience: Audience


class HoldRequest(Model):
    actor: Actor
    reason: str = Field(default="", max_length=MAX_REASON_CHARS)
    # Aware only: a naive time has no meaning across the zones a desk spans, and
    # comparing it with the workflow's clock would fail the case.
    until: AwareDatetime | None = Field(
        default=None, description="Resume by itself at this time (with a time zone)."
    )


class ResumeRequest(Model):
    actor: Actor


class DeescalateRequest(Model):
    actor: Actor
    reason: str = Field(default="", max_length=MAX_REASON_CHARS)
    to_level: WholeNumber | None = Field(default=None, description="Default: the next lower tier.")


class SetSeverityRequest(Model):
    actor: Actor
    severity: Severity


class ReopenRequest(Model):
    actor: Actor
    reason: str = Field(default="", max_length=MAX_REASON_CHARS)


class ActionResult(Model):
    """Answer to an update: what happened, and the case state afterwards."""

    message: str
    state: CasePhase
    tier_level: int
    assignee: str | None


# -- what the case records -------------------------------------------------------


class CaseStatus(Model):
    case_id: str
    title: str
    state: CasePhase
    severity: Severity
    account: str
    tier_level: int
    tier_name: str
    team: str
    assignee: str | None
    escalations: int
    sla_breached: bool
    created_at: datetime
    next_deadline: Deadline | None
    last_escalation: Escalation | None
    policy_name: str
    notes: tuple[CaseNote, ...]
    timeline: tuple[TimelineEvent, ...]
    category: str | None = None
    customer_tier: str | None = None
    assessment: AssessmentResult | None = Field(
        default=None, description="The latest AI assessment, once it has arrived."
    )
    hold: HoldState | None = None
    total_hold_seconds: float = 0.0
    needs_review: bool = False
    reopened: int = 0
    reopen_until: datetime | None = None
    notes_total: int = 0
    timeline_total: int = 0
    sla_used: float | None = Field(
        default=None,
        description="The share of the running tier SLA (first response, or resolution "
        "once claimed) used by `as_of`, on the tier's business clock; 1.0 is the breach. "
        "None when no SLA runs (resolved, or a tier without one).",
    )
    as_of: datetime | None = Field(
        default=None,
        description="The case's own time this status describes (its last workflow "
        "task); a query cannot read the clock. EscalatorClient.status counts a hold "
        "still running on from here to the moment of reading.",
    )


def with_running_hold(status: CaseStatus, now: datetime) -> CaseStatus:
    """`status` with a hold that is still running counted up to `now`.

    A query answers from the workflow's last task, so on its own it stops the hold
    clock there; the hold goes on until someone resumes the case.
    """
    if status.hold is None or status.as_of is None or now <= status.as_of:
        return status
    running_on = (now - status.as_of).total_seconds()
    return status.model_copy(update={"total_hold_seconds": status.total_hold_seconds + running_on})


class CaseOutcome(Model):
    """Result of a resolved case."""

    case_id: str
    resolved_by: str
    summary: str
    final_tier: int
    escalations: int
    seconds_to_first_claim: float | None
    seconds_to_resolution: float
    timeline: tuple[TimelineEvent, ...]
    sla_breached: bool = False
    total_hold_seconds: float = 0.0
    reopened: int = 0
    needs_review: bool = False


# -- activity inputs -------------------------------------------------------------

NotificationPurpose = Literal[
    "tier_entry",  # the case arrived at a tier (start or escalation)
    "warning",  # warn_at of a running SLA has passed
    "sla_breach",  # the final tier missed its SLA; there is nowhere to escalate
    "customer_escalation",  # tell the customer who has the case now and when to expect an answer
    "assessment",  # the AI assessment for the owning tier ("AI assessment for case 123")
    "ai_recommendation",  # the AI-agent stage's recommendation, for that stage's recipients
    "customer_recommendation",  # the same recommendation, worded for the customer
    "repeat",  # the final tier, still unclaimed after its first response was due
    "stale_reminder",  # a claimed case with no activity for stale_after
    "claim_released",  # ...and for twice that: the tier is told the claim is released
    "deescalation",  # the case came back down to this tier for follow-up
    "reopened",  # a resolved case was reopened at this tier
]


class CaseBrief(Model):
    """The part of a case a notification shows. Case text is untrusted input."""

    case_id: str
    title: str
    severity: Severity
    account: str
    description_excerpt: str
    customer_name: str | None


class Notification(Model):
    """Input of the `send_email` and `post_webhook` activities.

    It carries structured facts, not rendered text: wording lives in the activity,
    so changing a template never changes workflow history.
    """

    message_id: str = Field(description="Stable per (case, event): retries reuse it.")
    purpose: NotificationPurpose
    recipients: tuple[str, ...] = ()
    webhook: str | None = None
    channel: str | None = None
    case: CaseBrief
    tier: TierRef
    from_tier: TierRef | None = None
    escalations: tuple[Escalation, ...] = Field(
        default=(), description="The newest escalations, oldest first; the last is the newest."
    )
    notes: tuple[CaseNote, ...] = Field(
        default=(), description="The newest notes, oldest first, long texts shortened."
    )
    # How many the case has in all, so a message can say what it leaves out.
    escalations_total: int = 0
    notes_total: int = 0
    deadline: Deadline | None = None
    assessment: AssessmentResult | None = None
    occurred_at: datetime


ChannelEvent = Literal["notify", "trigger", "acknowledge", "resolve"]


class ChannelSend(Model):
    """Input of the channel activities (`post_slack_message`, `send_pagerduty_event`,
    `post_channel_webhook`): one message to one of the policy's named channels.

    It carries the channel's settings as the policy snapshot has them: the names of
    the environment variables that hold the URL or routing key, never their values.
    The worker reads them when it sends, so no secret enters a case's history.
    """

    message_id: str = Field(description="Stable per (case, event, channel): retries reuse it.")
    channel: str = Field(description="The channel's name in the policy, e.g. slack_oncall.")
    settings: Channel
    event: ChannelEvent = Field(
        description="notify (Slack, webhook); trigger, acknowledge or resolve (PagerDuty)."
    )
    case_id: str
    notification: Notification | None = Field(
        default=None, description="What happened, for notify and trigger."
    )


class DeliveryReceipt(Model):
    message_id: str
    channel: Literal["email", "webhook", "slack", "pagerduty"]
    accepted: tuple[str, ...] = ()
    detail: str = ""


class CaseState(Model):
    """Everything a case knows about itself: each field once.

    The case engine (escalator/domain/case.py) reads it and returns a new one for
    every event; the workflow holds the current one, and carries it into the next
    run when the case continues as new (`CaseInput.carried`). Field names are the
    wire format of carried cases, so they never change (`phase` travels as `state`).
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, serialize_by_alias=True, validate_by_name=True
    )

    created_at: datetime
    severity: Severity
    tier_level: int
    phase: CasePhase = Field(
        validation_alias=AliasChoices("state", "phase"), serialization_alias="state"
    )
    assignee: str | None
    first_claim_at: datetime | None
    resolved_by: str | None
    resolution_summary: str
    resolved_at: datetime | None
    sla_breached: bool
    needs_review: bool
    escalations: tuple[Escalation, ...]  # the newest (limits.ESCALATIONS_KEPT), with notes
    moves: tuple[tuple[int, int], ...]  # the newest tier moves, for the ping-pong guard
    notes: tuple[CaseNote, ...]  # the newest (limits.NOTES_KEPT, NOTES_KEPT_BYTES)
    notes_total: int
    timeline: tuple[TimelineEvent, ...]  # the newest (limits.TIMELINE_KEPT)
    timeline_total: int
    # The SLA clocks of the current tier stay (see escalator/domain/sla.py).
    running_since: datetime | None  # None while on hold
    consumed: timedelta  # business time consumed before running_since
    response_base: timedelta
    activity_base: timedelta
    fired: tuple[str, ...]  # deadlines already acted on in this stay, sorted
    hold: HoldState | None
    hold_total: timedelta
    notifications_sent: int  # numbers Message-IDs deterministically
    reopened: int
    assessment: AssessmentResult | None = None
    # Counts over the case's whole life. Cases carried before `escalations` was
    # bounded have none, and their tuple is complete (see _counted_escalations).
    escalations_total: int = 0
    escalated_up: int = 0
    # Set while a resolved case waits out its policy's reopen window.
    reopen_until: datetime | None = None
    # PagerDuty channels the case has triggered an alert on, until its resolve
    # resolves them; a claim acknowledges them.
    paged: tuple[str, ...] = ()
    # Ledger events recorded but not yet sent when the case continued as new; only the
    # workflow sets it, and the next run sends them (escalator/domain/ledger.py).
    ledger_unsent: tuple[LedgerEvent, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _counted_escalations(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("escalations_total") is None:
            escalations = data.get("escalations") or ()
            data = dict(data)
            data["escalations_total"] = len(escalations)
            data["escalated_up"] = sum(
                1
                for e in escalations
                if (
                    e["to_level"] > e["from_level"]
                    if isinstance(e, dict)
                    else e.to_level > e.from_level
                )
            )
        return data
