"""A case's life, from creation to resolution: the pure case engine.

Read this file top to bottom. Each event of a case's life is one function:

    open_case → deadline_fired → claim → escalate → deescalate → add_note →
    hold → resume → set_severity → resolve → reopen

and each takes the case's state, its input (with the policy snapshot it started
with), the request and `now`, and returns a `Step`: the new state, the effects
to carry out in order (deliver this notification, start this assessment, this
timeline entry), and the answer for whoever asked. An action the rules refuse
raises `Refused` with the reason, and the state is unchanged.

1. A case opens at the tier its severity routes it to, and that tier is notified.
2. It sleeps until the next deadline of that tier's SLA clocks (`next_due` in
   escalator/domain/case_view.py; the clocks are in escalator/domain/sla.py):
   warnings, the breach, final-tier repeats, the stale-claim reminder and release.
   Clocks count business time only, and stop while the case is on hold.
3. A breach escalates to the next tier with a system-written note; the receiving
   tier and the customer are notified, and an AI assessment follows. People claim,
   escalate (with a note), de-escalate, add notes, hold, resume, change severity
   and resolve, as escalator/domain/rules.py allows.
4. A resolved case may be reopened within the policy's reopen window.

Telling a tier means mail to its `notify` list, a POST to its `webhook`, and a
message on each of the policy's channels it names (and its severity override
names): Slack and webhook channels hear everything the tier hears; a PagerDuty
channel is paged when the case arrives or again waits for someone there
(PAGING_PURPOSES), the claim acknowledges every page and the resolve resolves
them, all keyed by the case id (docs/channels.md).

The engine never reads a clock, never does I/O and never imports Temporal: the
workflow (workflows/escalation.py) is its durable shell, and the policy
simulator runs it directly. Behaviour changes that running cases must not see
are asked for through `patched` (escalator/domain/patches.py).

This module is longer than most on purpose: it is the one file a newcomer reads
to learn a case's whole life, so the events and the steps they share (moving
tiers, notifying, recording) stay together. What the state merely implies is
in case_view.py, and what a notification carries is in case_notices.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic_core import to_json

from escalator.domain import assessment as ai
from escalator.domain import limits, patches, routing, rules, sla
from escalator.domain.case_notices import assessment_request, notification, shorten
from escalator.domain.case_view import Due, consumed_at, facts, next_due, tier_of
from escalator.domain.ledger import LedgerEvent, MoveReason
from escalator.domain.models import (
    AddNoteRequest,
    CaseInput,
    CaseState,
    ChannelEvent,
    ChannelSend,
    ClaimRequest,
    DeescalateRequest,
    DeliveryReceipt,
    EscalateRequest,
    HoldRequest,
    Notification,
    NotificationPurpose,
    ReopenRequest,
    ResolveRequest,
    ResumeRequest,
    SetSeverityRequest,
)
from escalator.domain.names import CHANNEL_ACTIVITIES, POST_WEBHOOK, SEND_EMAIL
from escalator.domain.policy import Tier
from escalator.domain.records import (
    CaseNote,
    Escalation,
    EscalationNote,
    HoldState,
    Model,
    TimelineEvent,
)

_ZERO = timedelta(0)
# What pages a PagerDuty channel: the case arriving, or again waiting for someone.
# Warnings, reminders and assessments go to Slack and webhooks only; the alert
# the arrival triggered is still open for them.
PAGING_PURPOSES: frozenset[str] = frozenset(
    {"tier_entry", "reopened", "deescalation", "repeat", "sla_breach", "claim_released"}
)
Patched = Callable[[str], bool]

# -- what the engine returns --------------------------------------------------------


@dataclass(frozen=True)
class Deliver:
    """Send this notification with this activity (mail, webhook, or one of the
    policy's channels), in the background."""

    activity: str
    notification: Notification | ChannelSend
    summary: str

    @property
    def purpose(self) -> NotificationPurpose | None:
        """What the tier is told; None for a page's acknowledge or resolve."""
        notice = self.notification
        if isinstance(notice, ChannelSend):
            return notice.notification.purpose if notice.notification else None
        return notice.purpose


@dataclass(frozen=True)
class Assess:
    """Start the AI assessment for the tier the case just reached; it supersedes any
    assessment still running."""

    request: ai.AssessmentRequest


@dataclass(frozen=True)
class Recorded:
    """This entry was added to the case's timeline; `entry` is how the ledger sees it."""

    event: TimelineEvent
    entry: LedgerEvent


Effect = Deliver | Assess | Recorded


@dataclass(frozen=True)
class Step:
    """The outcome of one event: the new state and what to do about it, in order.

    `rearm` says the next deadline may have moved, so a sleeping case must wake and
    arm its timer anew; the workflow's timer commands depend on it exactly."""

    state: CaseState
    effects: tuple[Effect, ...] = ()
    answer: str = ""
    rearm: bool = False


class Refused(Exception):
    """An action the case will not take; `reason` is shown to whoever asked."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- the life of a case ---------------------------------------------------------------


def new_state(case: CaseInput, now: datetime) -> CaseState:
    """A case's state before anything has happened, or the state it carried into
    this run when it continued as new."""
    if case.carried is not None:
        return case.carried
    return CaseState(
        created_at=now,
        severity=case.severity,
        tier_level=routing.initial_tier(case.policy, case.severity, case.customer_tier).level,
        phase="open",
        assignee=None,
        first_claim_at=None,
        resolved_by=None,
        resolution_summary="",
        resolved_at=None,
        sla_breached=False,
        needs_review=False,
        escalations=(),
        moves=(),
        notes=(),
        notes_total=0,
        timeline=(),
        timeline_total=0,
        running_since=now,
        consumed=_ZERO,
        response_base=_ZERO,
        activity_base=_ZERO,
        fired=(),
        hold=None,
        hold_total=_ZERO,
        notifications_sent=0,
        reopened=0,
    )


def open_case(state: CaseState, case: CaseInput, now: datetime) -> Step:
    """The case is opened at its first tier, and that tier is told."""
    change = _Change(state, case, now)
    override = case.policy.override_for(case.severity)
    by_customer = case.policy.tier_override_for(case.customer_tier)
    routed = f" (severity override for {case.severity})" if override else ""
    if (
        by_customer
        and change.tier.level == by_customer.route_to
        and (override is None or by_customer.route_to > override.route_to)
    ):
        routed = f" (customer-tier override for {case.customer_tier})"
    change.record("created", f"{case.severity} case opened at {change.tier.label}{routed}")
    change.notify_tier("tier_entry", channel=override.notification if override else None)
    return change.step()


def deadline_fired(state: CaseState, case: CaseInput, due: Due, now: datetime) -> Step:
    """The deadline the case slept until has come (see case_view.next_due)."""
    change = _Change(state, case, now)
    deadline, target = due.deadline, due.target
    if target is None:  # the hold's end: until, or max_hold
        change.resume(by="system", why=deadline.consequence)
        return change.step()
    change.set(fired=tuple(sorted({*change.state.fired, target.key})))
    if target.kind == "warning":
        change.record("sla_warning", f"{deadline.label} passed: {deadline.consequence}")
        change.notify_tier("warning")
    elif target.kind == "breach":
        change.breach(deadline.label, target)
    elif target.kind == "repeat":
        change.record("repeat", f"{deadline.label}: {deadline.consequence}")
        change.notify_tier("repeat")
    elif target.kind == "stale":
        change.record("stale_reminder", deadline.consequence, actor=change.state.assignee)
        change.notify_assignee()
    else:  # release: the tier is told and must claim the case anew
        released = change.state.assignee
        change.set(phase="open", assignee=None, response_base=change.consumed())
        change.rearm = True
        change.record("claim_released", f"no activity; {released}'s claim released")
        change.notify_tier("claim_released")
    return change.step()


def advance(state: CaseState, case: CaseInput, since: datetime, until: datetime) -> Step:
    """Time passes from `since` to `until` and nobody acts: every deadline due by then
    fires, in order and each at its own time (one already due at `since` fires at
    once), as the workflow's timer fires them. A reopen window that ends meanwhile
    closes. For the simulator and the engine's tests."""
    effects: list[Effect] = []
    rearm = False
    while (due := next_due(state, case)) is not None and due.deadline.at <= until:
        since = max(since, due.deadline.at)
        step = deadline_fired(state, case, due, since)
        state, rearm = step.state, rearm or step.rearm
        effects.extend(step.effects)
    if state.reopen_until is not None and state.reopen_until <= until:
        state = reopen_window_closed(state)
    return Step(state, tuple(effects), rearm=rearm)


def claim(
    state: CaseState, case: CaseInput, request: ClaimRequest, now: datetime, **_: Any
) -> Step:
    change = _Change(state, case, now)
    user = request.actor.user
    change.refuse_if(rules.access_refusal(request.actor, change.facts, "claim"))
    change.refuse_if(rules.claim_refusal(request.actor, change.facts))
    if state.assignee == user:
        return change.step(f"already claimed by you ({user})")
    change.set(
        phase="claimed",
        assignee=user,
        first_claim_at=state.first_claim_at or now,
        activity_base=change.consumed(),
    )
    change.rearm = True
    change.record("claimed", f"claimed at {change.tier.label}", actor=user)
    change.follow_up_pages("acknowledge")  # someone has it: the pager stops
    return change.step("claimed")


def escalate(
    state: CaseState, case: CaseInput, request: EscalateRequest, now: datetime, **_: Any
) -> Step:
    change = _Change(state, case, now)
    change.refuse_if(rules.access_refusal(request.actor, change.facts, "escalate"))
    change.refuse_if(rules.escalate_refusal(request.actor, change.facts, request.note))
    receiver = routing.next_tier(case.policy, state.tier_level)
    assert receiver is not None  # escalate_refusal refuses on the final tier
    change.refuse_if(_bounce_refusal(state, case, receiver))
    change.move_to(receiver, by=request.actor.user, automatic=False, note=request.note)
    return change.step(f"escalated to {receiver.label}")


def deescalate(
    state: CaseState, case: CaseInput, request: DeescalateRequest, now: datetime, **_: Any
) -> Step:
    change = _Change(state, case, now)
    change.refuse_if(rules.access_refusal(request.actor, change.facts, "deescalate"))
    change.refuse_if(
        rules.deescalate_refusal(request.actor, change.facts, request.reason)
        or _lower_tier_problem(state, case, request.to_level)
    )
    receiver = _lower_tier(state, case, request.to_level)
    change.refuse_if(_bounce_refusal(state, case, receiver))
    note = EscalationNote(reason=request.reason)
    change.move_to(receiver, by=request.actor.user, automatic=False, note=note)
    return change.step(f"de-escalated to {receiver.label}")


def add_note(
    state: CaseState, case: CaseInput, request: AddNoteRequest, now: datetime, **_: Any
) -> Step:
    change = _Change(state, case, now)
    actor = request.actor
    change.refuse_if(rules.access_refusal(actor, change.facts, "add_note"))
    change.refuse_if(rules.note_refusal(actor, change.facts) or _note_limit_refusal(state))
    note = CaseNote(at=now, author=actor.user, text=request.text)
    change.set(notes=_newest_notes((*state.notes, note)), notes_total=state.notes_total + 1)
    change.record("note", shorten(request.text, 200), actor=actor.user, role=actor.role)
    if actor.role == "customer" and state.hold is not None:
        change.resume(by=actor.user, why="the customer replied")
    change.touch()
    return change.step("note added")


def hold(state: CaseState, case: CaseInput, request: HoldRequest, now: datetime, **_: Any) -> Step:
    change = _Change(state, case, now)
    change.refuse_if(rules.access_refusal(request.actor, change.facts, "hold"))
    change.refuse_if(rules.hold_refusal(request.actor, change.facts, request.reason))
    held = HoldState(since=now, reason=request.reason, by=request.actor.user, until=request.until)
    change.set(consumed=change.consumed(), running_since=None, hold=held)
    change.rearm = True
    until = f" until {request.until.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if request.until else ""
    change.record(
        "hold", f"on hold{until}: {request.reason}", actor=request.actor.user, until=request.until
    )
    return change.step("on hold; SLA clocks paused")


def resume(
    state: CaseState, case: CaseInput, request: ResumeRequest, now: datetime, **_: Any
) -> Step:
    change = _Change(state, case, now)
    change.refuse_if(rules.access_refusal(request.actor, change.facts, "resume"))
    change.refuse_if(rules.resume_refusal(request.actor, change.facts))
    change.resume(by=request.actor.user, why="resumed")
    return change.step("resumed; SLA clocks running")


def set_severity(
    state: CaseState,
    case: CaseInput,
    request: SetSeverityRequest,
    now: datetime,
    *,
    patched: Patched = patches.latest,
) -> Step:
    change = _Change(state, case, now)
    user = request.actor.user
    change.refuse_if(rules.access_refusal(request.actor, change.facts, "set_severity"))
    change.refuse_if(rules.severity_refusal(request.actor, change.facts))
    before, after = state.severity, request.severity
    if before == after:
        return change.step(f"severity is already {after}")
    change.set(severity=after)
    change.rearm = True
    change.record("severity", f"{before} → {after}", actor=user)
    change.touch()
    # Raising re-routes at once; lowering never moves a case, either way.
    receiver: Tier | None
    if patched(patches.SEVERITY_RAISE_ONLY):
        receiver = routing.severity_reroute(case.policy, before, after, state.tier_level)
    else:  # cases that started before the fix keep the behaviour they replay with
        override = case.policy.override_for(after)
        moves = override is not None and override.route_to > state.tier_level
        receiver = case.policy.tier(override.route_to) if override and moves else None
    if receiver is None:
        return change.step(f"severity {after}")
    note = EscalationNote(reason=f"severity raised from {before} to {after}")
    change.move_to(receiver, by=user, automatic=False, note=note, reason="severity")
    return change.step(f"severity {after}; re-routed to {receiver.label}")


def resolve(
    state: CaseState, case: CaseInput, request: ResolveRequest, now: datetime, **_: Any
) -> Step:
    change = _Change(state, case, now)
    user = request.actor.user
    change.refuse_if(rules.access_refusal(request.actor, change.facts, "resolve"))
    change.refuse_if(rules.resolve_refusal(request.actor, change.facts))
    if state.hold is not None:
        change.resume(by=user, why="resolved")
    change.set(phase="resolved", resolved_by=user, resolution_summary=request.summary)
    change.set(resolved_at=now)
    change.rearm = True
    summary = f": {request.summary}" if request.summary else ""
    change.record("resolved", f"resolved at {change.tier.label}{summary}", actor=user)
    change.follow_up_pages("resolve")  # a page never outlives its case
    return change.step("resolved")


def reopen_window_opened(state: CaseState, case: CaseInput) -> CaseState:
    """A resolved case starts waiting out its policy's reopen window, if it has one."""
    window = case.policy.reopen_window
    if window is None or state.resolved_at is None:
        return state
    return state.model_copy(update={"reopen_until": state.resolved_at + window})


def reopen_window_closed(state: CaseState) -> CaseState:
    return state.model_copy(update={"reopen_until": None})


def reopen(
    state: CaseState, case: CaseInput, request: ReopenRequest, now: datetime, **_: Any
) -> Step:
    change = _Change(state, case, now)
    change.refuse_if(rules.access_refusal(request.actor, change.facts, "reopen"))
    change.refuse_if(
        rules.reopen_refusal(request.actor, change.facts) or _reopen_limit_refusal(state)
    )
    change.set(reopened=state.reopened + 1, reopen_until=None)
    change.enter_tier(change.tier)  # handling restarts at the last tier
    why = f": {request.reason}" if request.reason else ""
    change.record("reopened", f"reopened at {change.tier.label}{why}", actor=request.actor.user)
    change.notify_tier("reopened")
    return change.step(f"reopened at {change.tier.label}")


# -- what the workflow reports back -----------------------------------------------------


def delivered(
    state: CaseState,
    case: CaseInput,
    notice: Notification | ChannelSend,
    receipt: DeliveryReceipt,
    now: datetime,
) -> Step:
    change = _Change(state, case, now)
    change.record("notification_sent", f"{receipt.channel} {_what(notice)}: {receipt.detail}")
    return change.step()


def delivery_failed(
    state: CaseState,
    case: CaseInput,
    activity: str,
    notice: Notification | ChannelSend,
    cause: str,
    now: datetime,
) -> Step:
    change = _Change(state, case, now)
    change.record("notification_failed", f"{activity} {_what(notice)}: {cause}")
    return change.step()


def _what(notice: Notification | ChannelSend) -> str:
    """`tier_entry <id>`, or for a channel `slack_oncall notify <id>`: names only,
    never a URL or a key."""
    if isinstance(notice, ChannelSend):
        return f"{notice.channel} {notice.event} {notice.message_id}"
    return f"{notice.purpose} {notice.message_id}"


def assessed(
    state: CaseState,
    case: CaseInput,
    request: ai.AssessmentRequest,
    result: ai.AssessmentResult | None,
    now: datetime,
    *,
    failure: str = "",
) -> Step:
    """The assessment arrived, or (`result` None) the model could not be reached: then
    the engineer still gets the extractive offline assessment, labelled as such."""
    change = _Change(state, case, now)
    if result is None:
        change.record("assessment_unavailable", f"assessment unavailable: {failure}")
        result = ai.offline_assessment(request)
    change.set(assessment=result)
    origin = "offline heuristic" if result.source == "offline" else result.model
    change.record(
        "assessment",
        f"{result.confidence}-confidence assessment ({origin}): {shorten(result.summary, 200)}",
    )
    if request.purpose == "ai_stage":
        # At the AI-agent stage the assessment is the automated recommendation, for
        # the stage's recipients and the customer; a human still resolves.
        change.notify_tier("ai_recommendation")
        change.notify_customer("customer_recommendation")
    else:
        change.notify_tier("assessment")
    return change.step()


def refused(
    state: CaseState, case: CaseInput, action: str, reason: str, actor: str | None, now: datetime
) -> Step:
    """A refused or malformed message goes on the timeline, with who sent it."""
    change = _Change(state, case, now)
    change.record("rejected", f"{action} refused: {reason}", actor=actor)
    return change.step()


def continued_as_new(
    state: CaseState, case: CaseInput, events: int, size: int, now: datetime
) -> Step:
    change = _Change(state, case, now)
    change.record(
        "continued_as_new", f"history continued in a new run after {events} events ({size} bytes)"
    )
    return change.step()


# -- the actions people take, as one table ------------------------------------------------


@dataclass(frozen=True)
class Action:
    """A person's action: its message model and its event. The workflow declares a
    signal (`name`) and an update (`try_<name>`) for each."""

    name: str
    request: type[Model]
    apply: Callable[..., Step]


ACTIONS = (
    Action("claim", ClaimRequest, claim),
    Action("resolve", ResolveRequest, resolve),
    Action("escalate", EscalateRequest, escalate),
    Action("add_note", AddNoteRequest, add_note),
    Action("hold", HoldRequest, hold),
    Action("resume", ResumeRequest, resume),
    Action("deescalate", DeescalateRequest, deescalate),
    Action("set_severity", SetSeverityRequest, set_severity),
    Action("reopen", ReopenRequest, reopen),
)


def plain_refusal(
    action: str, state: CaseState, case: CaseInput, request: Any, now: datetime
) -> str | None:
    """What an update's validator rejects before anything is written to history.

    Refusals of who is asking (role, account, owner) pass on purpose: the action then
    refuses them, and the workflow writes them to the timeline as an audit trail."""
    known = facts(state, case, now)
    actor = request.actor
    checks: dict[str, Callable[[], str | None]] = {
        "claim": lambda: rules.claim_refusal(actor, known),
        "resolve": lambda: rules.resolve_refusal(actor, known),
        "escalate": lambda: (
            rules.escalate_refusal(actor, known, request.note)
            or _bounce_refusal(state, case, routing.next_tier(case.policy, state.tier_level))
        ),
        "add_note": lambda: rules.note_refusal(actor, known) or _note_limit_refusal(state),
        "hold": lambda: rules.hold_refusal(actor, known, request.reason),
        "resume": lambda: rules.resume_refusal(actor, known),
        "deescalate": lambda: (
            rules.deescalate_refusal(actor, known, request.reason)
            or _lower_tier_problem(state, case, request.to_level)
        ),
        "set_severity": lambda: rules.severity_refusal(actor, known),
        "reopen": lambda: rules.reopen_refusal(actor, known) or _reopen_limit_refusal(state),
    }
    reason = checks[action]()
    if reason and not rules.authority_refusal(actor, known, action):
        return reason
    return None


# -- how an event changes the state -------------------------------------------------------


@dataclass
class _Change:
    """The state while one event is applied, and the effects it has so far."""

    state: CaseState
    case: CaseInput
    now: datetime
    effects: list[Effect] = field(default_factory=list)
    rearm: bool = False

    def set(self, **fields: Any) -> None:
        self.state = self.state.model_copy(update=fields)

    def step(self, answer: str = "") -> Step:
        return Step(self.state, tuple(self.effects), answer, self.rearm)

    @staticmethod
    def refuse_if(reason: str | None) -> None:
        if reason:
            raise Refused(reason)

    @property
    def tier(self) -> Tier:
        return tier_of(self.state, self.case)

    @property
    def facts(self) -> rules.CaseFacts:
        return facts(self.state, self.case, self.now)

    def consumed(self) -> timedelta:
        return consumed_at(self.state, self.case, self.now)

    def record(
        self,
        kind: str,
        detail: str,
        actor: str | None = None,
        *,
        moved_from: int | None = None,
        reason: MoveReason | None = None,
        note: EscalationNote | None = None,
        until: datetime | None = None,
        role: str | None = None,
    ) -> None:
        # Bounded: a malformed payload's user name is recorded as sent.
        event = TimelineEvent(
            at=self.now,
            kind=kind,
            detail=shorten(detail, limits.TIMELINE_DETAIL_CHARS),
            actor=shorten(actor, limits.TIMELINE_ACTOR_CHARS) if actor else actor,
        )
        # Older entries stay in the workflow's history.
        timeline = (*self.state.timeline, event)[-limits.TIMELINE_KEPT :]
        seq = self.state.timeline_total + 1
        self.set(timeline=timeline, timeline_total=seq)
        entry = LedgerEvent(
            case_id=self.case.case_id,
            seq=seq,
            at=event.at,
            kind=kind,
            tier_level=self.state.tier_level,
            actor=event.actor,
            detail=event.detail,
            from_level=moved_from,
            reason=reason,
            note=note,
            until=until,
            role=role,
        )
        self.effects.append(Recorded(event, entry))

    # -- tiers and clocks

    def enter_tier(self, tier: Tier) -> None:
        """A new stay in a tier: fresh clocks, unclaimed. A hold keeps them paused."""
        self.set(
            tier_level=tier.level,
            phase="open",
            assignee=None,
            consumed=_ZERO,
            response_base=_ZERO,
            activity_base=_ZERO,
            running_since=None if self.state.hold is not None else self.now,
            fired=(),
        )
        self.rearm = True

    def move_to(
        self,
        receiver: Tier,
        *,
        by: str,
        automatic: bool,
        note: EscalationNote,
        reason: MoveReason = "manual",
    ) -> None:
        """Change tiers. The receiving tier owns the case and must claim it anew."""
        source, state = self.tier, self.state
        upward = receiver.level > source.level
        moved = Escalation(
            from_level=source.level,
            to_level=receiver.level,
            at=self.now,
            by=by,
            automatic=automatic,
            note=note,
        )
        moves = (*state.moves, (source.level, receiver.level))[-limits.MOVES_KEPT :]
        self.set(
            escalations=(*state.escalations, moved)[-limits.ESCALATIONS_KEPT :],
            escalations_total=state.escalations_total + 1,
            escalated_up=state.escalated_up + upward,
            moves=moves,
        )
        self.enter_tier(receiver)
        verb = "escalated" if upward else "deescalated"
        detail = f"{source.label} → {receiver.label}: {note.reason}"
        self.record(verb, detail, actor=by, moved_from=source.level, reason=reason, note=note)
        bounces = rules.bounce_count(list(moves), source.level, receiver.level)
        if bounces >= self.case.policy.max_bounces and not self.state.needs_review:
            self.set(needs_review=True)
            low, high = sorted((source.level, receiver.level))
            self.record(
                "needs_review",
                f"bounced {bounces} times between L{low} and L{high}; "
                "manual moves are refused until reviewed",
            )
        if upward:
            self.notify_tier("tier_entry", from_tier=source)
            self.notify_customer()
            self.effects.append(Assess(assessment_request(self.state, self.case)))
        else:
            self.notify_tier("deescalation", from_tier=source)

    def breach(self, label: str, target: sla.Target) -> None:
        self.set(sla_breached=True)
        receiver = routing.next_tier(self.case.policy, self.state.tier_level)
        if receiver is None:
            self.record("sla_breached", f"{label} passed on the final tier")
            self.notify_tier("sla_breach")
            return
        note = EscalationNote(reason=sla.breach_reason(target.clock))
        self.move_to(receiver, by="system", automatic=True, note=note, reason="sla")

    def resume(self, *, by: str, why: str) -> None:
        hold = self.state.hold
        assert hold is not None
        held = self.now - hold.since
        self.set(hold_total=self.state.hold_total + held, hold=None, running_since=self.now)
        self.rearm = True
        self.record("resumed", f"{why} after {_hours(held)} on hold", actor=by)

    def touch(self) -> None:
        """Activity on a claimed case restarts its stale-claim clock."""
        if self.state.phase == "claimed":
            self.set(activity_base=self.consumed())
            if self.tier.stale_after is not None:
                self.rearm = True

    # -- notifications

    def notify_tier(
        self,
        purpose: NotificationPurpose,
        *,
        from_tier: Tier | None = None,
        channel: str | None = None,
    ) -> None:
        tier = self.tier
        policy = self.case.policy
        channels = policy.channels_for(tier.level, self.state.severity)
        if not tier.notify and not tier.webhook and not channels:
            self.record("notification_skipped", f"{tier.label} has no email or webhook")
            return
        pages_only = all(policy.channels[name].kind == "pagerduty" for name in channels)
        if not tier.notify and not tier.webhook and pages_only and purpose not in PAGING_PURPOSES:
            self.record(
                "notification_skipped",
                f"{tier.label} is told only through PagerDuty, which pages when a case "
                f"arrives or waits again, not for {purpose}",
            )
            return
        notice = self.notification(
            purpose, tuple(tier.notify), tier.webhook, from_tier=from_tier, channel=channel
        )
        summary = f"notify {tier.label.split(' ')[0]} {tier.team}"
        if tier.notify:
            self.effects.append(Deliver(SEND_EMAIL, notice, f"{summary} ({purpose})"))
        if tier.webhook:
            self.effects.append(Deliver(POST_WEBHOOK, notice, f"{summary} webhook ({purpose})"))
        for name in channels:
            kind = self.case.policy.channels[name].kind
            if kind != "pagerduty":
                self.send_to_channel(name, "notify", notice, f"{summary} on {name} ({purpose})")
            elif purpose in PAGING_PURPOSES:
                self.set(paged=tuple(dict.fromkeys((*self.state.paged, name))))
                self.send_to_channel(name, "trigger", notice, f"page {name} ({purpose})")

    def follow_up_pages(self, event: ChannelEvent) -> None:
        """Acknowledge (on a claim) or resolve (on the resolve) every alert this case
        triggered, keyed by the case id; a resolve closes them for good."""
        for name in self.state.paged:
            self.send_to_channel(name, event, None, f"{event} the page on {name}")
        if event == "resolve":
            self.set(paged=())

    def send_to_channel(
        self, name: str, event: ChannelEvent, notice: Notification | None, summary: str
    ) -> None:
        if notice is not None:  # the notification's id, told apart per channel
            message_id = notice.message_id.replace("@escalator>", f".{name}@escalator>")
        else:  # the timeline entry this follows, so each follow-up has its own id
            message_id = (
                f"<{self.case.case_id}.t{self.state.timeline_total}.{event}.{name}@escalator>"
            )
        settings = self.case.policy.channels[name]
        send = ChannelSend(
            message_id=message_id,
            channel=name,
            settings=settings,
            event=event,
            case_id=self.case.case_id,
            notification=notice,
        )
        self.effects.append(Deliver(CHANNEL_ACTIVITIES[settings.kind], send, summary))

    def notify_assignee(self) -> None:
        """Remind the assignee directly when their user name is an address, else
        through their tier's recipients (the mail names them)."""
        assignee = self.state.assignee or ""
        if "@" in assignee and "." in assignee.split("@")[-1]:
            notice = self.notification("stale_reminder", (assignee,), None)
            self.effects.append(Deliver(SEND_EMAIL, notice, f"remind {assignee}"))
        else:
            self.notify_tier("stale_reminder")

    def notify_customer(self, purpose: NotificationPurpose = "customer_escalation") -> None:
        customer = self.case.customer
        if customer is None or customer.email is None:
            return
        notice = self.notification(purpose, (customer.email,), None)
        self.effects.append(Deliver(SEND_EMAIL, notice, f"tell the customer ({purpose})"))

    def notification(
        self,
        purpose: NotificationPurpose,
        recipients: tuple[str, ...],
        webhook: str | None,
        *,
        from_tier: Tier | None = None,
        channel: str | None = None,
    ) -> Notification:
        number = self.state.notifications_sent + 1
        self.set(notifications_sent=number)
        return notification(
            self.state,
            self.case,
            purpose,
            number=number,
            now=self.now,
            recipients=recipients,
            webhook=webhook,
            from_tier=from_tier,
            channel=channel,
        )


# -- small rules that need the state ------------------------------------------------------


def _newest_notes(notes: tuple[CaseNote, ...]) -> tuple[CaseNote, ...]:
    """The newest notes, at most NOTES_KEPT and NOTES_KEPT_BYTES of them (the newest
    always). Older notes stay in the history, and are counted."""
    kept = list(notes[-limits.NOTES_KEPT :])
    sizes = [len(to_json(note.text)) for note in kept]
    while len(kept) > 1 and sum(sizes) > limits.NOTES_KEPT_BYTES:
        del kept[0], sizes[0]
    return tuple(kept)


def _note_limit_refusal(state: CaseState) -> str | None:
    if state.notes_total >= limits.MAX_NOTES_PER_CASE:
        return (
            f"notes: the case has {state.notes_total} notes, the limit "
            f"({limits.MAX_NOTES_PER_CASE}); open a follow-up case"
        )
    return None


def _reopen_limit_refusal(state: CaseState) -> str | None:
    if state.reopened >= limits.MAX_REOPENS:
        return (
            f"reopen: the case was reopened {state.reopened} times, the limit "
            f"({limits.MAX_REOPENS}); open a new case"
        )
    return None


def _bounce_refusal(state: CaseState, case: CaseInput, receiver: Tier | None) -> str | None:
    if receiver is None:
        return None
    return rules.bounce_refusal(
        list(state.moves), state.tier_level, receiver.level, case.policy.max_bounces
    )


def _lower_tier_problem(state: CaseState, case: CaseInput, to_level: int | None) -> str | None:
    if to_level is None:
        return None
    levels = [t.level for t in case.policy.tiers]
    if to_level not in levels or to_level >= state.tier_level:
        lower = [str(level) for level in levels if level < state.tier_level]
        return f"to_level {to_level} is not a lower tier (choose one of: {', '.join(lower)})"
    return None


def _lower_tier(state: CaseState, case: CaseInput, to_level: int | None) -> Tier:
    if to_level is not None:
        return case.policy.tier(to_level)
    return [t for t in case.policy.tiers if t.level < state.tier_level][-1]


def _hours(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"
