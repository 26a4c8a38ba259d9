"""SLA deadlines: pure functions of the policy and the case's position in its tier.

Clocks count *consumed business time* in the current stay in a tier: time passes
only inside the tier's business hours (24x7 by default) and not while the case is
on hold. Every deadline is therefore a target amount of consumed time:

  - unclaimed: first-response warnings (one per `warn_at` fraction), then the breach,
    which escalates (or, on the final tier, reports and repeats every `repeat_every`);
  - claimed: the resolution clock from tier entry (warnings, then the breach), and,
    with `stale_after`, a reminder and then a claim release when nothing happens.

`instant_of` turns a target into a moment with the calendar, so the workflow can
sleep on one durable timer until exactly then. No polling, no rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from escalator.domain.business_time import ALWAYS_OPEN, BusinessCalendar, add_business_time
from escalator.domain.models import Deadline
from escalator.domain.policy import Policy
from escalator.domain.routing import next_tier

_CLOCK_WORDS = {"first_response": "first-response", "resolution": "resolution"}
_ZERO = timedelta(0)


@dataclass(frozen=True)
class Position:
    """Where the case stands in its current tier."""

    tier_level: int
    claimed: bool
    response_base: timedelta = _ZERO  # consumed time when the first-response clock began
    activity_base: timedelta = _ZERO  # consumed time at the last activity on a claimed case
    assignee: str | None = None


@dataclass(frozen=True)
class Target:
    key: str  # identity within the tier stay, so each target fires once
    kind: Literal["warning", "breach", "repeat", "stale", "release"]
    clock: Literal["first_response", "resolution", "activity"]
    consumed: timedelta
    label: str
    consequence: str


# targets() is asked again and again for the same policy and position (each time a
# case computes its next deadline or shows its breach time), so its answers are
# remembered. Keyed by the policy's identity, and the entry keeps the policy itself,
# so an id reused by another policy can never match: policies never change once made.
_REMEMBERED_TARGETS = 1024
_targets_seen: dict[tuple[int, Position], tuple[Policy, tuple[Target, ...]]] = {}


def targets(policy: Policy, position: Position) -> tuple[Target, ...]:
    """Every target of the clocks that run now, earliest first."""
    key = (id(policy), position)
    seen = _targets_seen.get(key)
    if seen is not None and seen[0] is policy:
        return seen[1]
    found = _targets(policy, position)
    if len(_targets_seen) >= _REMEMBERED_TARGETS:
        _targets_seen.clear()
    _targets_seen[key] = (policy, found)
    return found


def _targets(policy: Policy, position: Position) -> tuple[Target, ...]:
    tier = policy.tier(position.tier_level)
    level = f"L{tier.level}"
    found: list[Target] = []
    if tier.sla is not None:
        clock: Literal["first_response", "resolution"]
        if position.claimed:
            clock, base, length = "resolution", _ZERO, tier.sla.resolution_target
        else:
            clock, base, length = "first_response", position.response_base, tier.sla.first_response
        words = _CLOCK_WORDS[clock]
        stem = f"{clock}@{_seconds(base)}"
        several = len(policy.warn_at) > 1
        for fraction in policy.warn_at:
            percent = round(fraction * 100)
            found.append(
                Target(
                    key=f"{stem}:warning:{fraction}",
                    kind="warning",
                    clock=clock,
                    consumed=base + _fraction(length, fraction),
                    label=f"{level} {words} warning" + (f" ({percent}%)" if several else ""),
                    consequence=f"warn {tier.team} ({percent}% of the SLA used)",
                )
            )
        target = next_tier(policy, tier.level)
        found.append(
            Target(
                key=f"{stem}:breach",
                kind="breach",
                clock=clock,
                consumed=base + length,
                label=f"{level} {words} deadline",
                consequence=(
                    f"escalate to {target.label}"
                    if target is not None
                    else f"tell {tier.team} the SLA is breached (final tier)"
                ),
            )
        )
        if not position.claimed and target is None and tier.repeat_every is not None:
            for number in range(1, tier.max_repeats + 1):
                found.append(
                    Target(
                        key=f"{stem}:repeat:{number}",
                        kind="repeat",
                        clock=clock,
                        consumed=base + length + number * tier.repeat_every,
                        label=f"{level} repeat {number} of {tier.max_repeats}",
                        consequence=f"notify {tier.team} again: still unclaimed",
                    )
                )
    if position.claimed and tier.stale_after is not None:
        base = position.activity_base
        stem = f"activity@{_seconds(base)}"
        who = position.assignee or "the assignee"
        found.append(
            Target(
                key=f"{stem}:stale",
                kind="stale",
                clock="activity",
                consumed=base + tier.stale_after,
                label=f"{level} acknowledgement reminder",
                consequence=f"remind {who}: no note, update or resolve yet",
            )
        )
        found.append(
            Target(
                key=f"{stem}:release",
                kind="release",
                clock="activity",
                consumed=base + 2 * tier.stale_after,
                label=f"{level} claim release",
                consequence=f"tell {tier.team} and release {who}'s claim",
            )
        )
    return tuple(sorted(found, key=lambda t: t.consumed))


def next_target(
    policy: Policy, position: Position, fired: set[str] | frozenset[str]
) -> Target | None:
    return next((t for t in targets(policy, position) if t.key not in fired), None)


def instant_of(
    target: Target,
    *,
    consumed_at_start: timedelta,
    running_since: datetime,
    calendar: BusinessCalendar | None,
) -> datetime:
    """When the running clock reaches the target (at once if it already has)."""
    remaining = max(target.consumed - consumed_at_start, _ZERO)
    return add_business_time(running_since, remaining, calendar or ALWAYS_OPEN)


def as_deadline(target: Target, at: datetime, tier_level: int) -> Deadline:
    return Deadline(
        at=at,
        kind=target.kind,
        clock=target.clock,
        tier_level=tier_level,
        label=target.label,
        consequence=target.consequence,
    )


def breach_target(policy: Policy, position: Position) -> Target | None:
    """The deadline people must beat in the tier (shown in notifications)."""
    return next((t for t in targets(policy, position) if t.kind == "breach"), None)


def breach_reason(clock: str) -> str:
    return "first response SLA breached" if clock == "first_response" else "resolution SLA breached"


def _fraction(length: timedelta, share: float) -> timedelta:
    # Whole milliseconds keep deadlines identical across replays and platforms.
    return timedelta(milliseconds=round(length.total_seconds() * 1000 * share))


def _seconds(value: timedelta) -> str:
    return f"{value.total_seconds():g}"
