"""`escalator simulate`'s result: past cases as they went, and as they would have gone.

Pure code over `Rerun`s (escalator/domain/simulation.py). Both sides are measured
the same way, from a case's history as the ledger holds it: the actual side from
the ledger's events, the simulated side from the events the re-run recorded. So a
difference is the policy's doing, never a difference in counting. The figures'
definitions are those of `escalator report` (docs/metrics.md); docs/simulator.md
says what is assumed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from escalator.domain import metrics
from escalator.domain.ledger import CaseHistory
from escalator.domain.metrics import Compliance, Life, tier_key
from escalator.domain.records import Model
from escalator.domain.simulation import POLICY_NOTICES, Assumption, Rerun

# Times within this of each other are the same: a worker's timers fire a few
# milliseconds after their deadline, and the re-run fires them exactly on it.
SAME_TIME = timedelta(seconds=1)
NOTICE_KINDS = frozenset({"notification_sent", "notification_failed"})


class PathStep(Model):
    tier: str  # "L2"
    at: datetime  # when the case entered it


class CaseResult(Model):
    path: list[PathStep]
    breaches: int
    escalations: int  # upward moves


class DroppedAction(Model):
    case_id: str
    action: str
    at: datetime  # when it really happened
    actor: str
    reason: str


class CaseComparison(Model):
    case_id: str
    changed: bool
    actual: CaseResult
    simulated: CaseResult
    dropped: list[DroppedAction]


class ChangedCase(Model):
    case_id: str
    actual_path: list[PathStep]
    simulated_path: list[PathStep]


class TierLoad(Model):
    entering: int  # cases that entered the tier at least once
    peak_unclaimed: int  # the most cases waiting unclaimed in the tier at one moment


class Side(Model):
    """The figures of one side, actual or simulated, over the same cases."""

    escalations_by_tier: dict[str, int]  # the tier the case left
    escalations_by_reason: dict[str, int]  # sla, manual, severity, ai
    breaches: int  # SLA breaches: escalations by the clock, and final-tier breaches
    breaches_by_tier: dict[str, int]
    sla_compliance: Compliance
    notifications: int  # to the tiers, from the policy's clocks and moves
    load_by_tier: dict[str, TierLoad]


class DroppedActions(Model):
    total: int
    by_action: dict[str, int]
    items: list[DroppedAction]


class SimulationReport(Model):
    """`escalator simulate --format json`: these keys are what scripts rely on."""

    period: dict[str, datetime | None]  # {"from": ..., "to": ...}: resolved in [from, to)
    policy: dict[str, str]  # {"name": ..., "version": ...}: the policy simulated
    cases: int
    assumption: Assumption
    actual: Side
    simulated: Side
    changed_cases: list[ChangedCase]
    dropped_actions: DroppedActions
    per_case: list[CaseComparison]


def compare(
    reruns: Sequence[Rerun],
    *,
    policy: dict[str, str],
    assumption: Assumption,
    period_from: datetime | None = None,
    period_to: datetime | None = None,
) -> SimulationReport:
    """The whole comparison, in one process (`summarize(compare_cases(...))`)."""
    return summarize(
        [compare_cases(reruns)],
        policy=policy,
        assumption=assumption,
        period_from=period_from,
        period_to=period_to,
    )


# -- per case, and in parts that add up (so cases can be compared in several processes)


@dataclass
class Tally:
    """One side's figures over some cases, kept so that two tallies add up."""

    cases: int = 0
    breached_cases: int = 0
    escalations_by_tier: Counter[str] = field(default_factory=Counter)
    escalations_by_reason: Counter[str] = field(
        default_factory=lambda: Counter({"sla": 0, "manual": 0, "severity": 0, "ai": 0})
    )
    breaches_by_tier: Counter[str] = field(default_factory=Counter)
    entered: Counter[int] = field(default_factory=Counter)  # cases per tier
    met: Counter[int] = field(default_factory=Counter)  # of those, not breached there
    notifications: int = 0
    unclaimed: list[tuple[int, datetime, datetime]] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.cases += other.cases
        self.breached_cases += other.breached_cases
        self.escalations_by_tier.update(other.escalations_by_tier)
        self.escalations_by_reason.update(other.escalations_by_reason)
        self.breaches_by_tier.update(other.breaches_by_tier)
        self.entered.update(other.entered)
        self.met.update(other.met)
        self.notifications += other.notifications
        self.unclaimed += other.unclaimed

    def count(self, life: Life, notifications: int) -> None:
        """Add one case. The definitions are `escalator report`'s (metrics.escalations
        and metrics.compliance), so both commands count a case alike."""
        self.cases += 1
        self.notifications += notifications
        for event in life.escalations:
            self.escalations_by_tier[tier_key(event.from_level or 0)] += 1
            self.escalations_by_reason[life.move_reason(event)] += 1
        for event in life.history.events:
            if event.kind == "escalated" and event.reason == "sla":
                self.breaches_by_tier[tier_key(event.from_level or 0)] += 1
            elif event.kind == "sla_breached":
                self.breaches_by_tier[tier_key(event.tier_level)] += 1
        self.breached_cases += any(stay.breached for stay in life.stays)
        for level in {stay.level for stay in life.stays}:
            self.entered[level] += 1
            self.met[level] += not any(s.breached for s in life.stays if s.level == level)
        for stay in life.stays:
            # Waiting unclaimed: from entering the tier to its first claim, or to
            # leaving the tier unclaimed.
            end = stay.first_claim or stay.left
            if end is not None and end > stay.entered:
                self.unclaimed.append((stay.level, stay.entered, end))

    def side(self) -> Side:
        return Side(
            escalations_by_tier=dict(sorted(self.escalations_by_tier.items())),
            escalations_by_reason=dict(self.escalations_by_reason),
            breaches=sum(self.breaches_by_tier.values()),
            breaches_by_tier=dict(sorted(self.breaches_by_tier.items())),
            sla_compliance=Compliance(
                overall=_share(self.cases - self.breached_cases, self.cases),
                by_tier={
                    tier_key(level): _share(self.met[level], self.entered[level])
                    for level in sorted(self.entered)
                },
            ),
            notifications=self.notifications,
            load_by_tier=self._load(),
        )

    def _load(self) -> dict[str, TierLoad]:
        changes: dict[int, list[tuple[datetime, int]]] = {}
        for level, start, end in self.unclaimed:
            changes.setdefault(level, []).extend(((start, 1), (end, -1)))
        load: dict[str, TierLoad] = {}
        for level in sorted(self.entered):
            waiting = peak = 0
            # At the same instant, one leaving counts before one arriving.
            for _, change in sorted(changes.get(level, [])):
                waiting += change
                peak = max(peak, waiting)
            load[tier_key(level)] = TierLoad(entering=self.entered[level], peak_unclaimed=peak)
        return load


@dataclass
class Part:
    """Some cases compared: each case's comparison, and both sides' tallies."""

    cases: list[CaseComparison] = field(default_factory=list)
    actual: Tally = field(default_factory=Tally)
    simulated: Tally = field(default_factory=Tally)


def compare_cases(reruns: Iterable[Rerun]) -> Part:
    part = Part()
    for rerun in reruns:
        actual, simulated = metrics.rebuild(rerun.actual), metrics.rebuild(rerun.simulated)
        part.cases.append(_comparison(rerun, actual, simulated))
        part.actual.count(actual, _notices(rerun.actual))
        part.simulated.count(simulated, rerun.notifications)
    return part


def summarize(
    parts: Iterable[Part],
    *,
    policy: dict[str, str],
    assumption: Assumption,
    period_from: datetime | None = None,
    period_to: datetime | None = None,
) -> SimulationReport:
    """The report from the parts, in the order given."""
    actual, simulated, per_case = Tally(), Tally(), []
    for part in parts:
        actual.add(part.actual)
        simulated.add(part.simulated)
        per_case += part.cases
    dropped = [item for case in per_case for item in case.dropped]
    return SimulationReport(
        period={"from": period_from, "to": period_to},
        policy=policy,
        cases=len(per_case),
        assumption=assumption,
        actual=actual.side(),
        simulated=simulated.side(),
        changed_cases=[
            ChangedCase(
                case_id=case.case_id,
                actual_path=case.actual.path,
                simulated_path=case.simulated.path,
            )
            for case in per_case
            if case.changed
        ],
        dropped_actions=DroppedActions(
            total=len(dropped),
            by_action=dict(Counter(item.action for item in dropped).most_common()),
            items=dropped,
        ),
        per_case=per_case,
    )


def _comparison(rerun: Rerun, actual: Life, simulated: Life) -> CaseComparison:
    was, would = _result(actual), _result(simulated)
    return CaseComparison(
        case_id=rerun.case_id,
        changed=not same_result(was, would),
        actual=was,
        simulated=would,
        dropped=[
            DroppedAction(
                case_id=rerun.case_id,
                action=d.action.name,
                at=d.action.at,
                actor=d.action.actor,
                reason=d.reason,
            )
            for d in rerun.dropped
        ],
    )


def _result(life: Life) -> CaseResult:
    return CaseResult(
        path=[PathStep(tier=tier_key(stay.level), at=stay.entered) for stay in life.stays],
        breaches=sum(
            (e.kind == "escalated" and e.reason == "sla") or e.kind == "sla_breached"
            for e in life.history.events
        ),
        escalations=len(life.escalations),
    )


def same_result(a: CaseResult, b: CaseResult) -> bool:
    """The same tiers in the same order, entered at the same times (within SAME_TIME),
    with as many breaches and escalations."""
    return (
        (a.breaches, a.escalations) == (b.breaches, b.escalations)
        and [s.tier for s in a.path] == [s.tier for s in b.path]
        and all(abs(x.at - y.at) <= SAME_TIME for x, y in zip(a.path, b.path, strict=True))
    )


def _notices(history: CaseHistory) -> int:
    """Deliveries of POLICY_NOTICES the case really made (sent or failed alike).
    The entry reads `<channel or activity> <purpose> <message id>: ...`."""
    count = 0
    for event in history.events:
        if event.kind in NOTICE_KINDS:
            words = event.detail.split(" ", 2)
            count += len(words) > 1 and words[1] in POLICY_NOTICES
    return count


def _share(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)
