"""The supervisor's figures, computed from the case ledger.

Pure code: it takes resolved cases as the ledger holds them (`CaseHistory`: the
fact row and the ordered events) and returns a `Report`. docs/metrics.md defines
every figure: from when to when, what counts, and what happens to cases that were
never claimed. The definitions follow the peers the issue names (PagerDuty's
explicit acknowledgement, GoAlert's per-case rows, Zendesk's two clocks, Jira's
SLA success ratio), and avoid alga-psa's pitfalls: no 100 % of nothing, holds
never counted as work, and overall compliance weighted by cases.

Every duration comes on two clocks: calendar time, and business time (the case's
own calendar, or the tier's for a per-tier figure, with time on hold left out).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from escalator.domain.business_time import ALWAYS_OPEN, BusinessCalendar, business_time_between
from escalator.domain.ledger import CaseHistory, LedgerCase, LedgerEvent
from escalator.domain.models import CaseStatus
from escalator.domain.records import Model

# What counts as the assignee's first action on a claimed case.
FIRST_ACTIONS = frozenset({"note", "escalated", "hold", "resolved"})
MOVES = frozenset({"escalated", "deescalated"})
# The tier whose cases get a review (the escalation guide: "review L3 escalations").
REVIEW_LEVEL = 3
NO_CATEGORY = "(none)"
SYSTEM = "system"  # the actor of what the case's own timers did


class Summary(Model):
    """Mean, median and p95 (nearest rank) of `n` values, in seconds; None when n is 0."""

    mean: float | None = None
    median: float | None = None
    p95: float | None = None
    n: int = 0

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            return cls()
        ordered = sorted(values)
        rank = math.ceil(0.95 * len(ordered))  # nearest rank: an observed value
        return cls(
            mean=round(statistics.fmean(ordered), 3),
            median=round(statistics.median(ordered), 3),
            p95=round(ordered[rank - 1], 3),
            n=len(ordered),
        )


class Duration(Summary):
    """A duration on the calendar clock, with the same on the business clock."""

    business: Summary = Summary()


class Escalations(Model):
    total: int = 0  # upward moves
    by_tier: dict[str, int]  # the tier the case left, "L1"
    by_reason: dict[str, int]  # sla, manual, severity, ai
    by_category: dict[str, int]
    by_agent: dict[str, int]  # moves made by a person
    deescalations: int = 0
    # Of the cases that entered a tier, the share that left it upwards at least once.
    rate_by_tier: dict[str, float | None]
    hops_per_case: Summary = Summary()  # every move, up or down


class Compliance(Model):
    overall: float | None = None  # None: no cases, which is "n/a", never 100 %
    by_tier: dict[str, float | None]


class NeedsReview(Model):
    count: int = 0
    case_ids: list[str]


class Arrival(Model):
    """How a case first reached the review tier."""

    at: datetime
    from_tier: str
    reason: str
    by: str | None
    note: str
    steps_taken: list[str]


class CaseNoteRow(Model):
    at: datetime
    by: str | None
    text: str


class L3Review(Model):
    case_id: str
    title: str
    severity: str
    category: str | None
    reached_by: Arrival
    notes: list[CaseNoteRow]
    steps_taken: list[str]  # every step the escalation notes name, in order, once
    time_in_tier_seconds: dict[str, float]
    resolved_by: str | None


class Report(Model):
    """`escalator report --format json`: these keys are what scripts rely on."""

    period: dict[str, datetime | None]  # {"from": ..., "to": ...}: resolved in [from, to)
    cases: int
    mtta_seconds: Duration
    mtta_by_tier_seconds: dict[str, Duration]
    unclaimed: int  # resolved without ever being claimed: not in mtta_seconds
    mttr_seconds: Duration
    first_action_seconds: Duration
    escalations: Escalations
    sla_compliance: Compliance
    reopen_rate: float | None
    hold_seconds: Duration  # over the cases that were held
    needs_review: NeedsReview
    l3_reviews: list[L3Review]
    open: dict[str, object] | None = None  # the live backlog, from Temporal's visibility


def tier_key(level: int) -> str:
    return f"L{level}"


# -- one case's life, rebuilt from its events ---------------------------------------------


@dataclass
class Stay:
    """One continuous time at one tier, from entering it to leaving it."""

    level: int
    entered: datetime
    left: datetime | None = None
    first_claim: datetime | None = None
    breached: bool = False
    left_upwards: bool = False


@dataclass
class Life:
    history: CaseHistory
    stays: list[Stay] = field(default_factory=list)
    holds: list[tuple[datetime, datetime]] = field(default_factory=list)
    escalations: list[LedgerEvent] = field(default_factory=list)  # upward moves
    first_action_spans: list[tuple[datetime, datetime, int]] = field(default_factory=list)

    @property
    def facts(self) -> LedgerCase:
        return self.history.facts

    def calendar(self, level: int | None = None) -> BusinessCalendar:
        policy = self.facts.policy
        if level is not None and any(t.level == level for t in policy.tiers):
            return policy.calendar_for(level) or ALWAYS_OPEN
        return policy.calendar or ALWAYS_OPEN

    def business(self, start: datetime, end: datetime, level: int | None = None) -> float:
        """Open time between start and end on the case's (or tier's) calendar, holds out."""
        calendar = self.calendar(level)
        total = business_time_between(start, end, calendar)
        for held_from, held_to in self.holds:
            lo, hi = max(start, held_from), min(end, held_to)
            if hi > lo:
                total -= business_time_between(lo, hi, calendar)
        return max(total, timedelta(0)).total_seconds()

    def teams(self) -> set[str]:
        levels = {stay.level for stay in self.stays}
        return {t.team for t in self.facts.policy.tiers if t.level in levels and t.team}

    def move_reason(self, event: LedgerEvent) -> str:
        """sla, manual or severity as recorded; `ai` for a hand-off to the AI-agent stage."""
        receiving = [t for t in self.facts.policy.tiers if t.level == event.tier_level]
        if receiving and receiving[0].kind == "ai":
            return "ai"
        return event.reason or "manual"


def rebuild(history: CaseHistory) -> Life:
    """The case's stays, holds, escalations and first actions, from its events."""
    life = Life(history)
    stay: Stay | None = None
    claim: LedgerEvent | None = None  # the claim whose first action is awaited
    held_since: datetime | None = None

    def leave(at: datetime) -> None:
        nonlocal stay
        if stay is not None and stay.left is None:
            stay.left = at
        stay = None

    for event in history.events:
        kind = event.kind
        if claim is not None and event.actor == claim.actor and kind in FIRST_ACTIONS:
            life.first_action_spans.append((claim.at, event.at, claim.tier_level))
            claim = None
        if kind in ("created", "reopened"):
            leave(event.at)
            stay = Stay(level=event.tier_level, entered=event.at)
            life.stays.append(stay)
            claim = None
        elif kind in MOVES:
            upward = kind == "escalated"
            if stay is not None:
                stay.left_upwards = stay.left_upwards or upward
                stay.breached = stay.breached or event.reason == "sla"
            if upward:
                life.escalations.append(event)
            leave(event.at)
            stay = Stay(level=event.tier_level, entered=event.at)
            life.stays.append(stay)
            claim = None
        elif kind == "claimed":
            if stay is not None and stay.first_claim is None:
                stay.first_claim = event.at
            claim = event
        elif kind in ("claim_released", "resolved"):
            claim = None
            if kind == "resolved":
                leave(event.at)
        elif kind == "sla_breached" and stay is not None:
            stay.breached = True
        elif kind == "hold":
            held_since = event.at
        elif kind == "resumed" and held_since is not None:
            life.holds.append((held_since, event.at))
            held_since = None
    if stay is not None and stay.left is None and history.facts.resolved_at is not None:
        stay.left = history.facts.resolved_at
    return life


# -- the figures ---------------------------------------------------------------------------


def report(
    histories: Iterable[CaseHistory],
    *,
    period_from: datetime | None = None,
    period_to: datetime | None = None,
    team: str | None = None,
) -> Report:
    """Every figure of docs/metrics.md over these resolved cases."""
    lives = [rebuild(h) for h in histories]
    if team is not None:
        lives = [life for life in lives if team in life.teams()]
    return Report(
        period={"from": period_from, "to": period_to},
        cases=len(lives),
        mtta_seconds=_mtta(lives),
        mtta_by_tier_seconds=_mtta_by_tier(lives),
        unclaimed=sum(life.facts.first_claim_at is None for life in lives),
        mttr_seconds=_duration(
            (life, life.facts.created_at, life.facts.resolved_at, None)
            for life in lives
            if life.facts.resolved_at is not None
        ),
        first_action_seconds=_duration(
            (life, start, end, level)
            for life in lives
            for start, end, level in life.first_action_spans
        ),
        escalations=escalations(lives),
        sla_compliance=compliance(lives),
        reopen_rate=_share(sum(life.facts.reopened > 0 for life in lives), len(lives)),
        hold_seconds=_holds(lives),
        needs_review=NeedsReview(
            count=sum(life.facts.needs_review for life in lives),
            case_ids=[life.facts.case_id for life in lives if life.facts.needs_review],
        ),
        l3_reviews=[r for life in lives if (r := _l3_review(life)) is not None],
    )


def _duration(spans: Iterable[tuple[Life, datetime, datetime, int | None]]) -> Duration:
    calendar: list[float] = []
    business: list[float] = []
    for life, start, end, level in spans:
        calendar.append((end - start).total_seconds())
        business.append(life.business(start, end, level))
    return Duration(**Summary.of(calendar).model_dump(), business=Summary.of(business))


def _mtta(lives: list[Life]) -> Duration:
    return _duration(
        (life, life.facts.created_at, life.facts.first_claim_at, None)
        for life in lives
        if life.facts.first_claim_at is not None
    )


def _mtta_by_tier(lives: list[Life]) -> dict[str, Duration]:
    levels = sorted({stay.level for life in lives for stay in life.stays})
    return {
        tier_key(level): _duration(
            (life, stay.entered, stay.first_claim, level)
            for life in lives
            for stay in life.stays
            if stay.level == level and stay.first_claim is not None
        )
        for level in levels
    }


def escalations(lives: list[Life]) -> Escalations:
    by_tier: Counter[str] = Counter()
    by_reason: Counter[str] = Counter({"sla": 0, "manual": 0, "severity": 0, "ai": 0})
    by_category: Counter[str] = Counter()
    by_agent: Counter[str] = Counter()
    entered: Counter[int] = Counter()
    left_up: Counter[int] = Counter()
    for life in lives:
        for event in life.escalations:
            by_tier[tier_key(event.from_level or 0)] += 1
            by_reason[life.move_reason(event)] += 1
            by_category[life.facts.category or NO_CATEGORY] += 1
            if event.actor and event.actor != SYSTEM:
                by_agent[event.actor] += 1
        for level in {stay.level for stay in life.stays}:
            entered[level] += 1
            left_up[level] += any(s.left_upwards for s in life.stays if s.level == level)
    return Escalations(
        total=sum(len(life.escalations) for life in lives),
        by_tier=dict(sorted(by_tier.items())),
        by_reason=dict(by_reason),
        by_category=dict(by_category.most_common()),
        by_agent=dict(by_agent.most_common()),
        deescalations=sum(e.kind == "deescalated" for life in lives for e in life.history.events),
        rate_by_tier={
            tier_key(level): _share(left_up[level], entered[level]) for level in sorted(entered)
        },
        hops_per_case=Summary.of([float(life.facts.tier_moves) for life in lives]),
    )


def compliance(lives: list[Life]) -> Compliance:
    """Jira's ratio: completed and not breached over (breached plus completed). Every
    case here is resolved, so each tier a case entered counts once for it."""
    met: Counter[int] = Counter()
    total: Counter[int] = Counter()
    for life in lives:
        for level in {stay.level for stay in life.stays}:
            total[level] += 1
            met[level] += not any(s.breached for s in life.stays if s.level == level)
    breached_cases = sum(any(s.breached for s in life.stays) for life in lives)
    return Compliance(
        overall=_share(len(lives) - breached_cases, len(lives)),
        by_tier={tier_key(level): _share(met[level], total[level]) for level in sorted(total)},
    )


def _holds(lives: list[Life]) -> Duration:
    """Time on hold per held case: on the calendar, and the open hours it covered."""
    calendar: list[float] = []
    business: list[float] = []
    for life in lives:
        if life.holds:
            calendar.append(sum((end - start).total_seconds() for start, end in life.holds))
            business.append(
                sum(
                    business_time_between(start, end, life.calendar()).total_seconds()
                    for start, end in life.holds
                )
            )
    return Duration(**Summary.of(calendar).model_dump(), business=Summary.of(business))


def _l3_review(life: Life) -> L3Review | None:
    arrival = next(
        (
            e
            for e in life.escalations
            if e.tier_level >= REVIEW_LEVEL and (e.from_level or 0) < REVIEW_LEVEL
        ),
        None,
    )
    started_high = life.stays and life.stays[0].level >= REVIEW_LEVEL
    if arrival is None and not started_high:
        return None
    steps: list[str] = []
    for event in life.history.events:
        for step in event.note.steps_taken if event.note else ():
            if step not in steps:
                steps.append(step)
    in_tier: dict[str, float] = {}
    for stay in life.stays:
        if stay.left is not None:
            key = tier_key(stay.level)
            in_tier[key] = in_tier.get(key, 0.0) + (stay.left - stay.entered).total_seconds()
    facts = life.facts
    if arrival is not None:
        reached = Arrival(
            at=arrival.at,
            from_tier=tier_key(arrival.from_level or 0),
            reason=life.move_reason(arrival),
            by=arrival.actor,
            note=arrival.note.reason if arrival.note else arrival.detail,
            steps_taken=list(arrival.note.steps_taken) if arrival.note else [],
        )
    else:  # routed straight to the review tier, e.g. by a severity override
        reached = Arrival(
            at=facts.created_at,
            from_tier="-",
            reason="routed",
            by=None,
            note="opened there",
            steps_taken=[],
        )
    return L3Review(
        case_id=facts.case_id,
        title=facts.title,
        severity=facts.severity,
        category=facts.category,
        reached_by=reached,
        notes=[
            CaseNoteRow(at=e.at, by=e.actor, text=e.detail)
            for e in life.history.events
            if e.kind == "note"
        ],
        steps_taken=steps,
        time_in_tier_seconds=dict(sorted(in_tier.items())),
        resolved_by=facts.resolved_by,
    )


# -- the live backlog -------------------------------------------------------------------

AGE_BUCKETS = ((3600, "<1h"), (4 * 3600, "1-4h"), (24 * 3600, "4-24h"), (7 * 86400, "1-7d"))
AT_RISK = 0.75  # the share of the running SLA at which a case is shown as at risk


def backlog(statuses: Iterable[CaseStatus], now: datetime) -> dict[str, object]:
    """Open cases right now (from Temporal's visibility and each case's status): by
    tier and age since creation, and those at >= 75 % of their running tier SLA."""
    by_tier: Counter[str] = Counter()
    by_age: Counter[str] = Counter({label: 0 for _, label in AGE_BUCKETS} | {">7d": 0})
    at_risk: list[dict[str, object]] = []
    total = 0
    for status in statuses:
        total += 1
        by_tier[tier_key(status.tier_level)] += 1
        age = (now - status.created_at).total_seconds()
        by_age[next((label for limit, label in AGE_BUCKETS if age < limit), ">7d")] += 1
        if status.sla_used is not None and status.sla_used >= AT_RISK:
            at_risk.append(
                {
                    "case_id": status.case_id,
                    "tier": tier_key(status.tier_level),
                    "state": status.state,
                    "assignee": status.assignee,
                    "sla_used": status.sla_used,
                    "next_deadline": status.next_deadline.at if status.next_deadline else None,
                }
            )
    at_risk.sort(key=lambda row: -float(row["sla_used"]))  # type: ignore[arg-type]
    return {
        "total": total,
        "by_tier": dict(sorted(by_tier.items())),
        "by_age": dict(by_age),
        "at_risk": at_risk,
    }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
