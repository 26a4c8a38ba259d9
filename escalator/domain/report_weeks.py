"""The report's figures week by week: the trend charts of `escalator report --format html`.

Pure code. A case belongs to the ISO week (Monday 00:00 UTC) of its last resolve,
the moment that puts it in a report's period (docs/metrics.md), so the weeks add
up to the report. Each week's figures are `metrics.report` over that week's cases:
one definition of every figure, never a second one for the charts. Weeks without
cases are kept, empty, so a trend's time axis has no gaps.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from escalator.domain import metrics
from escalator.domain.ledger import CaseHistory
from escalator.domain.records import Model

WEEK = timedelta(days=7)
REASONS = ("sla", "manual", "severity", "ai")  # the order of metrics' by_reason


class Week(Model):
    start: datetime  # Monday 00:00 UTC
    cases: int
    escalations: int
    escalations_by_tier: dict[str, int]  # the tier the case left: every tier of the series
    escalations_by_reason: dict[str, int]  # sla, manual, severity, ai
    mtta_seconds: metrics.Duration
    mttr_seconds: metrics.Duration

    @property
    def label(self) -> str:
        """`2026-W10`: the ISO week, as a supervisor's calendar numbers it."""
        year, week, _ = self.start.isocalendar()
        return f"{year}-W{week:02d}"


def week_start(moment: datetime) -> datetime:
    """The Monday 00:00 UTC that starts the ISO week of `moment`."""
    day = moment.astimezone(UTC).date()
    monday = day - timedelta(days=day.weekday())
    return datetime(monday.year, monday.month, monday.day, tzinfo=UTC)


def of_team(histories: Iterable[CaseHistory], team: str | None) -> list[CaseHistory]:
    """The cases `metrics.report(..., team=team)` counts, so the weeks match the report."""
    if team is None:
        return list(histories)
    return [h for h in histories if team in metrics.rebuild(h).teams()]


def weekly(
    histories: Sequence[CaseHistory],
    *,
    period_from: datetime | None = None,
    period_to: datetime | None = None,
) -> list[Week]:
    """One `Week` per ISO week from the period's first to its last (`period_to` is
    excluded), widened to take in any case resolved outside it; oldest first.
    An open-ended side starts (or ends) at the first (or last) resolve."""
    resolved = [h for h in histories if h.facts.resolved_at is not None]
    moments = [h.facts.resolved_at for h in resolved if h.facts.resolved_at is not None]
    if period_from is not None:
        moments.append(period_from)
    if period_to is not None:
        # [from, to): a period ending at Monday 00:00 does not reach into that week.
        moments.append(max(period_to - timedelta(microseconds=1), period_from or period_to))
    if not moments:
        return []
    first, last = week_start(min(moments)), week_start(max(moments))
    by_week: dict[datetime, list[CaseHistory]] = {}
    for history in resolved:
        assert history.facts.resolved_at is not None
        by_week.setdefault(week_start(history.facts.resolved_at), []).append(history)
    starts = [first + i * WEEK for i in range((last - first) // WEEK + 1)]
    figures = {start: metrics.report(by_week.get(start, [])) for start in starts}
    tiers = sorted(
        {tier for r in figures.values() for tier in r.escalations.by_tier}, key=tier_order
    )
    return [
        Week(
            start=start,
            cases=r.cases,
            escalations=r.escalations.total,
            escalations_by_tier={tier: r.escalations.by_tier.get(tier, 0) for tier in tiers},
            escalations_by_reason={
                reason: r.escalations.by_reason.get(reason, 0) for reason in REASONS
            },
            mtta_seconds=r.mtta_seconds,
            mttr_seconds=r.mttr_seconds,
        )
        for start, r in figures.items()
    ]


def tier_order(key: str) -> tuple[int, str]:
    """L2 before L10."""
    digits = key.removeprefix("L")
    return (int(digits), key) if digits.isdigit() else (1 << 30, key)
