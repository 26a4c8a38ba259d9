"""What would this policy have done? One past case, re-run under another policy.

The ledger holds every event of a resolved case. The simulator splits them in two:
what people did (claims, notes, manual escalations, holds, severity changes,
resolves, reopens: `recorded_actions`) and what the case did by itself (warnings,
breaches, repeats, reminders, the end of a hold). It then re-runs the case with the
pure engine (escalator/domain/case.py) under the new policy: the case's own clocks
come from the new policy, and the people's actions come from the ledger, at the
times the counterfactual assumption gives (docs/simulator.md):

- `same-time` (the default): each action happens at the clock time it really did.
- `same-delay`: each action happens as long after its tier was notified (the case
  entered that tier) as it really did, so a faster escalation brings the next
  tier's claim forward.

The engine is the one the workflow runs, with every patch applied, so a past case
re-run under the policy it ran with comes out as it really went (the time-skipping
cross-check in tests/test_simulator_crosscheck.py holds both to that).

An action the new policy makes impossible is dropped, and said so: a claim,
escalation or de-escalation belongs to the tier that took it, so it is dropped when
the re-run case is at another tier by then; any other action is dropped only when
the engine refuses it (a reopen after the window closed, say).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, cast

from escalator.domain import case as engine
from escalator.domain import case_view
from escalator.domain.ledger import CaseHistory, LedgerEvent
from escalator.domain.models import (
    AddNoteRequest,
    CaseInput,
    CaseState,
    ClaimRequest,
    DeescalateRequest,
    EscalateRequest,
    HoldRequest,
    ReopenRequest,
    ResolveRequest,
    ResumeRequest,
    SetSeverityRequest,
)
from escalator.domain.policy import SEVERITIES, Policy, Severity
from escalator.domain.records import Actor, EscalationNote, Model

Assumption = Literal["same-time", "same-delay"]
ASSUMPTIONS: tuple[Assumption, ...] = ("same-time", "same-delay")

# Actions that belong to the tier that took them: the person who claimed in L1 is not
# the one who would claim in L2. The others belong to the case, wherever it is.
TIER_BOUND = frozenset({"claim", "escalate", "deescalate"})
# Timeline entries where a tier was told it owns the case: the anchors of same-delay.
TIER_ENTRIES = frozenset({"created", "escalated", "deescalated", "reopened"})
# Notifications to the tiers that the policy's clocks and moves cause. Mail to the
# customer is left out (the ledger does not keep the customer's address), and so is
# the assessment's follow-up, whose timing is the model's, not the policy's.
POLICY_NOTICES = frozenset(
    {
        "tier_entry",
        "warning",
        "sla_breach",
        "repeat",
        "stale_reminder",
        "claim_released",
        "deescalation",
        "reopened",
    }
)

_SEVERITY = re.compile(r"\b(P[0-4])\b")
_HOLD = re.compile(r"^on hold(?: until (\d{4}-\d\d-\d\d \d\d:\d\d) UTC)?: (.*)$", re.S)


# -- what people did, as the ledger recorded it --------------------------------------------


@dataclass(frozen=True)
class RecordedAction:
    """One thing a person did to the case, ready to be done again."""

    name: str  # the engine's action: claim, escalate, add_note, ...
    at: datetime  # when it really happened
    level: int  # the tier the case was at when it happened
    entry: int  # which of the case's entries into that tier it happened in (1, 2, ...)
    entered_at: datetime  # when that entry happened, really
    actor: str
    request: Model

    @property
    def delay(self) -> timedelta:
        """How long after its tier was notified it happened (same-delay keeps this)."""
        return self.at - self.entered_at


def recorded_actions(history: CaseHistory) -> list[RecordedAction]:
    """The people's actions in the case's events, oldest first. Refused attempts
    (`rejected`) are left out: they changed nothing then, and would change nothing."""
    account = history.facts.account
    actions: list[RecordedAction] = []
    entries: dict[int, int] = {}  # level -> how many times the case entered it
    level, entry, entered_at = 0, 0, history.facts.created_at  # the stay it is in
    events = history.events
    for index, event in enumerate(events):
        # An action belongs to the stay it was taken in: a move, to the tier it left.
        request = _request_for(event, events[index + 1 :], account)
        if request is not None:
            name, model = request
            actions.append(
                RecordedAction(
                    name=name,
                    at=event.at,
                    level=level,
                    entry=entry,
                    entered_at=entered_at,
                    actor=event.actor or "unknown",
                    request=model,
                )
            )
        if event.kind in TIER_ENTRIES:
            level = event.tier_level
            entries[level] = entries.get(level, 0) + 1
            entry, entered_at = entries[level], event.at
    return actions


def _request_for(
    event: LedgerEvent, later: tuple[LedgerEvent, ...], account: str
) -> tuple[str, Model] | None:
    """The request that made this timeline entry, if a person's action made it."""
    kind, user = event.kind, event.actor or "unknown"
    # Admin: the action was allowed when it happened; who may act is not what a policy
    # changes. The case's state still decides (a resolved case takes no claim).
    actor = Actor(user=user, role="admin", account=account)
    if kind == "claimed":
        return "claim", ClaimRequest(actor=actor)
    if kind == "escalated" and event.reason == "manual":
        note = event.note or EscalationNote(reason="escalated", steps_taken=("unrecorded",))
        return "escalate", EscalateRequest(actor=actor, note=note)
    if kind == "deescalated":
        reason = event.note.reason if event.note else "de-escalated"
        return "deescalate", DeescalateRequest(
            actor=actor, reason=reason or "de-escalated", to_level=event.tier_level
        )
    if kind == "note":
        # A customer's note also ends a hold. The ledger keeps the author's role; in
        # ledgers from before it did, the entry right after the note says so.
        resumed = next(iter(later), None)
        by_customer = (
            event.role == "customer"
            if event.role is not None
            else resumed is not None
            and resumed.kind == "resumed"
            and resumed.actor == event.actor
            and resumed.detail.startswith("the customer replied")
        )
        who = Actor(user=user, role="customer", account=account) if by_customer else actor
        return "add_note", AddNoteRequest(actor=who, text=event.detail or "(note)")
    if kind == "hold":
        return "hold", _hold_request(event, actor)
    if kind == "resumed" and event.detail.startswith("resumed after"):
        return "resume", ResumeRequest(actor=actor)  # resumed by a person, not a clock
    if kind == "severity":
        found = _SEVERITY.findall(event.detail)
        if found:
            return "set_severity", SetSeverityRequest(actor=actor, severity=found[-1])
        return None
    if kind == "resolved":
        return "resolve", ResolveRequest(actor=actor, summary=_after(event, "resolved at"))
    if kind == "reopened":
        return "reopen", ReopenRequest(actor=actor, reason=_after(event, "reopened at"))
    return None


def _after(event: LedgerEvent, verb: str) -> str:
    """What a person wrote after `<verb> <tier label>: ` (a summary, a reason)."""
    stem, _, rest = event.detail.partition(": ")
    return rest if stem.startswith(verb) else ""


def _hold_request(event: LedgerEvent, actor: Actor) -> HoldRequest:
    matched = _HOLD.match(event.detail)
    reason = (matched.group(2) if matched else "") or "on hold"
    until = event.until
    if until is None and matched and matched.group(1):
        # Ledgers from before `until` was a column: the entry's text, to the minute.
        until = datetime.strptime(matched.group(1), "%Y-%m-%d %H:%M").replace(
            tzinfo=event.at.tzinfo
        )
    return HoldRequest(actor=actor, reason=reason.strip() or "on hold", until=until)


def initial_severity(history: CaseHistory) -> Severity:
    """The severity the case opened with (its fact row holds the last one)."""
    for event in history.events:
        if event.kind == "created":
            found = _SEVERITY.search(event.detail)
            if found:
                return cast(Severity, found.group(1))
            break
    severity = history.facts.severity
    return cast(Severity, severity) if severity in SEVERITIES else "P3"


# -- the case, re-run ------------------------------------------------------------------------


@dataclass(frozen=True)
class Dropped:
    """An action the new policy made impossible, and why."""

    action: RecordedAction
    reason: str


@dataclass
class Rerun:
    """One case re-run under another policy: both its histories, the actions done
    again and when, and those dropped."""

    case_id: str
    actual: CaseHistory  # as the ledger holds it
    simulated: CaseHistory  # as the ledger would hold it under the new policy
    applied: list[tuple[RecordedAction, datetime]] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    notifications: int = 0  # POLICY_NOTICES deliveries the re-run case asked for


class _Case:
    """The re-run's state and clock, taking steps from the engine."""

    def __init__(self, case: CaseInput, now: datetime) -> None:
        self.case = case
        self.now = now
        self.state: CaseState = engine.new_state(case, now)
        self.events: list[LedgerEvent] = []
        self.notifications = 0
        self.entries: dict[int, list[datetime]] = {}
        self.take(engine.open_case(self.state, case, now))

    def take(self, step: engine.Step) -> None:
        self.state = step.state
        for effect in step.effects:
            if isinstance(effect, engine.Recorded):
                entry = effect.entry
                self.events.append(entry)
                if entry.kind in TIER_ENTRIES:
                    self.entries.setdefault(entry.tier_level, []).append(entry.at)
            elif isinstance(effect, engine.Deliver):
                self.notifications += effect.purpose in POLICY_NOTICES
        if self.state.phase == "resolved" and self.state.reopen_until is None:
            # The workflow opens the window as the resolve's task ends.
            self.state = engine.reopen_window_opened(self.state, self.case)

    def fire_next(self, until: datetime | None = None) -> bool:
        """Fire the next deadline (if due by `until`); False when there is none."""
        due = case_view.next_due(self.state, self.case)
        if due is None or (until is not None and due.deadline.at > until):
            return False
        self.now = max(self.now, due.deadline.at)
        self.take(engine.deadline_fired(self.state, self.case, due, self.now))
        return True

    def advance_to(self, until: datetime) -> None:
        """Time passes to `until`: every deadline due by then fires, each at its time.
        A deadline due at the very moment of an action fires first, as its timer
        fired in an earlier workflow task than the action's message. Actions at the
        same instant as the one before came in the same workflow task, so nothing
        fires between them, not even a deadline the one before made overdue."""
        if until <= self.now:
            return
        while self.fire_next(until):
            pass
        if self.state.reopen_until is not None and self.state.reopen_until <= until:
            self.state = engine.reopen_window_closed(self.state)
        self.now = max(self.now, until)


_APPLY: dict[str, Callable[..., engine.Step]] = {a.name: a.apply for a in engine.ACTIONS}


def rerun(history: CaseHistory, policy: Policy, assumption: Assumption = "same-time") -> Rerun:
    """Re-run one past case under `policy`."""
    facts = history.facts
    case = CaseInput(
        case_id=facts.case_id,
        title=facts.title or "(untitled)",
        severity=initial_severity(history),
        account=facts.account,
        category=facts.category,
        customer_tier=facts.customer_tier,
        policy=policy,
    )
    sim = _Case(case, facts.created_at)
    result = Rerun(case_id=facts.case_id, actual=history, simulated=history)
    for action in recorded_actions(history):
        at = max(sim.now, _when(action, sim, assumption))
        sim.advance_to(at)
        if action.name in TIER_BOUND and sim.state.tier_level != action.level:
            reason = f"taken at L{action.level}, but the case would be at L{sim.state.tier_level}"
            result.dropped.append(Dropped(action, reason))
            continue
        try:
            step = _APPLY[action.name](sim.state, case, action.request, at)
        except engine.Refused as refused:
            result.dropped.append(Dropped(action, refused.reason))
            continue
        sim.take(step)
        result.applied.append((action, at))
    simulated = case_view.ledger_case(sim.state, case)
    result.simulated = CaseHistory(facts=simulated, events=tuple(sim.events))
    result.notifications = sim.notifications
    return result


def _when(action: RecordedAction, sim: _Case, assumption: Assumption) -> datetime:
    if assumption == "same-time":
        return action.at
    # same-delay: as long after the re-run case entered that tier (that time) as it
    # really was. A claim or a move waits for its tier, which a slower policy may
    # still bring by its own clocks: let them run until it comes, or cannot any more
    # (a tier the new policy does not have never comes).
    # Anything else happens at its real time when its tier has not come by then.
    entered = sim.entries.get(action.level, [])
    waits = action.name in TIER_BOUND and any(
        tier.level == action.level for tier in sim.case.policy.tiers
    )
    while (
        waits
        and len(entered) < action.entry
        and sim.state.tier_level < action.level
        and sim.state.phase != "resolved"
        and sim.fire_next()
    ):
        entered = sim.entries.get(action.level, [])
    if len(entered) >= action.entry:
        return entered[action.entry - 1] + action.delay
    return action.at  # that tier has not come: the clock time it really happened
