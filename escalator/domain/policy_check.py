"""`escalator policy check`: configuration hygiene of a valid policy.

Validation (escalator.domain.policy) refuses a policy that cannot work. This module
finds the ones that work but probably do not do what their authors meant: a tier
nobody hears, an override that changes nothing, an SLA with no time to work in, a
warning too late to act on, a calendar that stops the clocks for a week, a reminder
that comes after the resolution target, a severity override's `notification` that
names no channel, a channel nothing uses, and (given the ledger's recent cases) a
first response the team has not been meeting. docs/policy-check.md explains each one.

Pure: no I/O. The caller passes the validated `Policy`, and optionally

  - `locate`: field path -> (line, column), both from 1, of where the field is
    written (escalator.adapters.policy_files.load_policy_with_locations gives one);
    paths are the file's, e.g. ("tiers", 0, "sla", "first_response");
  - `tier_positions`: for each of `policy.tiers` (sorted by level) its index in the
    file's `tiers` list, so `tiers[i]` in a warning is the i-th tier as written;
  - for `ledger_warnings`, the resolved cases (`CaseHistory`) to measure against.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from escalator.domain.business_time import (
    ALWAYS_OPEN,
    WEEKDAYS,
    BusinessCalendar,
    business_time_between,
)
from escalator.domain.durations import format_duration
from escalator.domain.errors import field_path
from escalator.domain.ledger import CaseHistory
from escalator.domain.metrics import rebuild
from escalator.domain.policy import Policy, Tier, shown_name

FieldPath = tuple[str | int, ...]
Position = tuple[int, int]  # (line, column), both from 1
Locator = Callable[[FieldPath], Position | None]

# A warning that leaves less than this between it and the breach is too late to act on.
MIN_WARNING_LEAD = timedelta(minutes=1)
_DAY_MINUTES = 24 * 60
_WEEK_MINUTES = 7 * _DAY_MINUTES
_ZERO = timedelta(0)


@dataclass(frozen=True)
class PolicyWarning:
    """One finding: `field` as the file writes it (`tiers[0].sla.resolution_target`),
    where it is written (None when unknown), and a one-line message with the fix."""

    code: str  # a short stable name, e.g. "unheard-tier" (docs/policy-check.md)
    field: str
    line: int | None
    column: int | None
    message: str


class _Context:
    def __init__(
        self, policy: Policy, locate: Locator | None, tier_positions: Sequence[int] | None
    ) -> None:
        self.policy = policy
        self._locate = locate
        positions = tuple(tier_positions) if tier_positions is not None else None
        if positions is None or len(positions) != len(policy.tiers):
            positions = tuple(range(len(policy.tiers)))
        self._positions = positions
        self.found: list[PolicyWarning] = []

    def tier_path(self, tier: Tier, *rest: str | int) -> FieldPath:
        index = next(i for i, t in enumerate(self.policy.tiers) if t.level == tier.level)
        return ("tiers", self._positions[index], *rest)

    def warn(self, code: str, path: FieldPath, message: str) -> None:
        where = self._locate(path) if self._locate is not None else None
        line, column = where if where is not None else (None, None)
        self.found.append(PolicyWarning(code, field_path(path), line, column, message))


def check_policy(
    policy: Policy,
    locate: Locator | None = None,
    *,
    tier_positions: Sequence[int] | None = None,
) -> list[PolicyWarning]:
    """Every hygiene warning for `policy`, in the order the file has them."""
    context = _Context(policy, locate, tier_positions)
    _unheard_tiers(context)
    _pointless_overrides(context)
    _no_time_to_work(context)
    _late_warnings(context)
    _closed_weeks(context)
    _short_days(context)
    _late_repeats(context)
    _label_only_notifications(context)
    _unused_channels(context)
    return _ordered(context.found)


def _ordered(found: list[PolicyWarning]) -> list[PolicyWarning]:
    # Stable: warnings at the same place keep the order of the checks above.
    return sorted(found, key=lambda w: (w.line is None, w.line or 0, w.column or 0))


# -- the checks -----------------------------------------------------------------------


def _unheard_tiers(c: _Context) -> None:
    for tier in c.policy.tiers:
        if tier.notify or tier.webhook or tier.channels:
            continue
        extra = (
            " (the AI assessment still runs, but no person is told)" if tier.kind == "ai" else ""
        )
        c.warn(
            "unheard-tier",
            c.tier_path(tier),
            f"{tier.label} has neither notify nor webhook, nor channels, so nobody hears when "
            f"a case reaches it, breaches or needs a reminder{extra}; add notify: "
            "[team@example.com], a webhook or channels",
        )


def _pointless_overrides(c: _Context) -> None:
    first = c.policy.tiers[0]
    for index, override in enumerate(c.policy.severity_overrides):
        # Its channel label still travels with the first notification, so an override
        # with a `notification` does something even at the first tier.
        if override.route_to == first.level and override.notification is None:
            c.warn(
                "override-to-first-tier",
                ("severity_overrides", index, "route_to"),
                f"{override.severity} cases are routed to level {override.route_to}, the first "
                "tier, where every case starts anyway, and a raised severity never moves a "
                "case down to it; remove the override or route it to a higher tier",
            )
    for index, by_customer in enumerate(c.policy.tier_overrides):
        if by_customer.route_to == first.level:
            c.warn(
                "override-to-first-tier",
                ("tier_overrides", index, "route_to"),
                f"customer tier {by_customer.customer_tier!r} is routed to level "
                f"{by_customer.route_to}, the first tier, where every case starts anyway; "
                "remove the override or route it to a higher tier",
            )


def _no_time_to_work(c: _Context) -> None:
    for tier in c.policy.tiers:
        if tier.sla is not None and tier.sla.resolution_target == tier.sla.first_response:
            shown = format_duration(tier.sla.resolution_target)
            c.warn(
                "no-time-to-work",
                c.tier_path(tier, "sla", "resolution_target"),
                f"{shown} equals first_response, which leaves no time to work: a case claimed "
                "at the last moment breaches its resolution target at once; make "
                "resolution_target longer than first_response",
            )


def _late_warnings(c: _Context) -> None:
    """The warn_at fractions whose warning comes less than a minute before the breach,
    for each SLA clock (both count business time, so the lead is business time)."""
    for tier in c.policy.tiers:
        if tier.sla is None:
            continue
        for name, length in (
            ("first_response", tier.sla.first_response),
            ("resolution_target", tier.sla.resolution_target),
        ):
            late = [
                f for f in c.policy.warn_at if length - _warning_at(length, f) < MIN_WARNING_LEAD
            ]
            if not late:
                continue
            fraction = late[0]  # the earliest late one; later fractions are later still
            lead = format_duration(length - _warning_at(length, fraction))
            if length <= MIN_WARNING_LEAD:
                fix = (
                    "no fraction can warn a minute ahead of a deadline this short; lengthen "
                    f"{name} beyond {format_duration(MIN_WARNING_LEAD)} or accept a late warning"
                )
            else:
                most = int((1 - MIN_WARNING_LEAD / length) * 100) / 100
                fix = f"lower warn_at to {most:g} or less, or lengthen {name}"
            if len(late) > 1:
                shown = ", ".join(f"{f:g}" for f in late)
                which = f"the warn_at {shown} warnings come {lead} or less"
            else:
                which = f"the warn_at {fraction:g} warning comes {lead}"
            c.warn(
                "late-warning",
                c.tier_path(tier, "sla", name),
                f"{which} before this {format_duration(length)} deadline breaches, under a "
                f"minute to act on it; {fix}",
            )


def _warning_at(length: timedelta, fraction: float) -> timedelta:
    # The same rounding as escalator.domain.sla: whole milliseconds.
    return timedelta(milliseconds=round(length.total_seconds() * 1000 * fraction))


def _calendars(c: _Context) -> Iterable[tuple[FieldPath, BusinessCalendar]]:
    """Each calendar the file writes, with its path."""
    if c.policy.calendar is not None:
        yield ("calendar",), c.policy.calendar
    for tier in c.policy.tiers:
        if tier.calendar is not None:
            yield c.tier_path(tier, "calendar"), tier.calendar


def _closed_weeks(c: _Context) -> None:
    """A Monday-to-Sunday week in which every open day is a holiday: the SLA clocks
    stand still for at least a week. (A calendar with no open day at all is refused by
    validation already.)"""
    for path, calendar in _calendars(c):
        weeks = closed_weeks(calendar)
        if not weeks:
            continue
        others = len(weeks) - 1
        more = f" and {others} more week{'s' if others > 1 else ''}" if others else ""
        c.warn(
            "closed-week",
            (*path, "holidays"),
            f"the week of {weeks[0].isoformat()}{more} has no open hours (every open day is a "
            "holiday), so SLA clocks stop for a week or more and cases wait unseen; keep "
            "some hours open that week or give the tiers that must answer calendar: {}",
        )


def closed_weeks(calendar: BusinessCalendar) -> list[date]:
    """The Mondays of the weeks whose open days are all holidays, in order."""
    if not calendar.hours or not calendar.holidays:
        return []
    open_days = {index for index, day in enumerate(WEEKDAYS) if calendar.hours.get(day)}
    holidays = set(calendar.holidays)
    mondays = sorted({day - timedelta(days=day.weekday()) for day in holidays})
    return [
        monday
        for monday in mondays
        if all(monday + timedelta(days=index) in holidays for index in open_days)
    ]


def longest_day(calendar: BusinessCalendar) -> timedelta | None:
    """The most open time in any 24 hours of the calendar's week (holidays and clock
    changes aside): what one working day can hold. None when some day is open around
    the clock, or the calendar is 24x7, where a working day is not a limit."""
    if not calendar.hours:
        return None
    ranges: list[tuple[int, int]] = []
    for index, day in enumerate(WEEKDAYS):
        for text in calendar.hours.get(day, ()):
            start, end = _minutes(text)
            ranges.append((index * _DAY_MINUTES + start, index * _DAY_MINUTES + end))
    if any(end - start >= _DAY_MINUTES for start, end in ranges):
        return None
    # Two weeks, so a window starting late on Sunday sees Monday's hours.
    doubled = ranges + [(s + _WEEK_MINUTES, e + _WEEK_MINUTES) for s, e in ranges]
    best = 0
    for start, _ in ranges:
        window_end = start + _DAY_MINUTES
        best = max(
            best,
            sum(max(0, min(e, window_end) - max(s, start)) for s, e in doubled),
        )
    if best >= _DAY_MINUTES:
        return None
    return timedelta(minutes=best)


def _minutes(text: str) -> tuple[int, int]:
    # Validated ranges, written back canonically as HH:MM-HH:MM.
    start, end = text.split("-")
    return _clock(start), _clock(end)


def _clock(text: str) -> int:
    hours, minutes = text.strip().split(":")
    return int(hours) * 60 + int(minutes)


def _short_days(c: _Context) -> None:
    """A first response longer than the tier's longest working day: a case that
    arrives as the desk opens is still not answered that day. (A resolution target of
    several working days is an ordinary choice, `16h` under 8-hour days is two, so
    only the first response is held to one day.)"""
    for tier in c.policy.tiers:
        calendar = c.policy.calendar_for(tier.level)
        if tier.sla is None or calendar is None:
            continue
        day = longest_day(calendar)
        if day is None or tier.sla.first_response <= day:
            continue
        c.warn(
            "longer-than-a-day",
            c.tier_path(tier, "sla", "first_response"),
            f"{format_duration(tier.sla.first_response)} of business time is more than this "
            f"tier's longest working day ({format_duration(day)} open), so even a case that "
            "arrives as the desk opens is not claimed that day: its deadline falls on a later "
            f"one; shorten first_response to {format_duration(day)} or less, or widen the "
            "calendar's hours",
        )


def _late_repeats(c: _Context) -> None:
    """The final tier's re-notifications start after its first response is due; the
    first one should come before its resolution target (the tier's patience) passes."""
    final = c.policy.tiers[-1]
    if final.repeat_every is None or final.sla is None:
        return
    patience = final.sla.resolution_target - final.sla.first_response
    if final.repeat_every <= patience:
        return
    first_repeat = final.sla.first_response + final.repeat_every
    if patience > _ZERO:
        fix = f"use repeat_every: {format_duration(patience)} or less"
    else:
        fix = "make resolution_target longer than first_response"
    c.warn(
        "late-repeat",
        c.tier_path(final, "repeat_every"),
        f"{format_duration(final.repeat_every)}: the first reminder to {final.label} comes "
        f"{format_duration(first_repeat)} after a case arrives, later than its "
        f"{format_duration(final.sla.resolution_target)} resolution target, so an unclaimed "
        f"case is not re-notified while it can still be resolved in time; {fix} "
        "(resolution_target minus first_response)",
    )


def _label_only_notifications(c: _Context) -> None:
    """In a policy without channels, `notification` is a label (the header
    X-Escalator-Channel): nothing is sent to it, though `pagerduty` reads as if it paged."""
    if c.policy.channels:  # then every notification names a channel (validation)
        return
    for index, override in enumerate(c.policy.severity_overrides):
        if override.notification is None:
            continue
        c.warn(
            "label-only-notification",
            ("severity_overrides", index, "notification"),
            f"{shown_name(override.notification)} names no channel, so nothing is paged or "
            "posted for "
            f"{override.severity} cases (it only labels their notifications); define it under "
            "channels (see docs/channels.md) or remove it",
        )


def _unused_channels(c: _Context) -> None:
    """A channel no tier lists and no severity override names is never sent anything:
    usually a typo'd or forgotten reference, or a leftover."""
    used = {name for tier in c.policy.tiers for name in tier.channels}
    used |= {o.notification for o in c.policy.severity_overrides if o.notification}
    for name, channel in c.policy.channels.items():
        if name in used:
            continue
        c.warn(
            "unused-channel",
            ("channels", name),
            f"no tier lists {name!r} under channels and no severity override names it as its "
            f"notification, so this {channel.kind} channel is never sent anything; add it to "
            "a tier's channels or remove it",
        )


# -- against the ledger -------------------------------------------------------------


@dataclass(frozen=True)
class ClaimShare:
    """Of the `claimed` cases claimed at a tier, `missed` came later than its first response."""

    level: int
    claimed: int
    missed: int


def claim_shares(policy: Policy, histories: Iterable[CaseHistory]) -> list[ClaimShare]:
    """Per tier of `policy` with an SLA: the cases claimed there, and those whose first
    claim at that tier came after `policy`'s first_response, counted on `policy`'s
    calendar for the tier with time on hold left out (as the SLA clock counts it). A
    case claimed at a tier more than once counts once: missed if any claim was late."""
    limits = {t.level: t.sla.first_response for t in policy.tiers if t.sla is not None}
    claimed: dict[int, int] = dict.fromkeys(limits, 0)
    missed: dict[int, int] = dict.fromkeys(limits, 0)
    for history in histories:
        life = rebuild(history)
        late: dict[int, bool] = {}
        for stay in life.stays:
            if stay.first_claim is None or stay.level not in limits:
                continue
            calendar = policy.calendar_for(stay.level) or ALWAYS_OPEN
            waited = _open_time(stay.entered, stay.first_claim, calendar, life.holds)
            late[stay.level] = late.get(stay.level, False) or waited > limits[stay.level]
        for level, was_late in late.items():
            claimed[level] += 1
            missed[level] += was_late
    return [ClaimShare(level, claimed[level], missed[level]) for level in sorted(limits)]


def _open_time(
    start: datetime,
    end: datetime,
    calendar: BusinessCalendar,
    holds: Sequence[tuple[datetime, datetime]],
) -> timedelta:
    total = business_time_between(start, end, calendar)
    for held_from, held_to in holds:
        lo, hi = max(start, held_from), min(end, held_to)
        if hi > lo:
            total -= business_time_between(lo, hi, calendar)
    return max(total, _ZERO)


def ledger_warnings(
    policy: Policy,
    histories: Iterable[CaseHistory],
    locate: Locator | None = None,
    *,
    tier_positions: Sequence[int] | None = None,
    period: str = "in the last 30 days",
) -> list[PolicyWarning]:
    """A warning per tier whose first_response some recent claims did not meet."""
    context = _Context(policy, locate, tier_positions)
    for share in claim_shares(policy, histories):
        if not share.missed:
            continue
        tier = policy.tier(share.level)
        assert tier.sla is not None  # claim_shares counts tiers with an SLA only
        percent = share.missed * 100 / share.claimed
        shown = f"{percent:.0f}%" if percent >= 1 else "under 1%"
        plural = "s" if share.claimed != 1 else ""
        context.warn(
            "unmet-first-response",
            context.tier_path(tier, "sla", "first_response"),
            f"{format_duration(tier.sla.first_response)} would have been missed by {shown} of "
            f"the {share.claimed} case{plural} claimed at L{tier.level} {period} "
            f"({share.missed} came later, on this policy's business hours); the escalation "
            "guide warns against SLAs the team cannot meet: lengthen first_response or add "
            "people to the tier",
        )
    return _ordered(context.found)
