"""Which tier owns a case: where it starts, and where it goes next."""

from __future__ import annotations

from escalator.domain.policy import SEVERITIES, Policy, Tier


def initial_tier(policy: Policy, severity: str) -> Tier:
    """The first tier, unless a severity override sends the case further up at once."""
    override = policy.override_for(severity)
    if override is not None:
        return policy.tier(override.route_to)
    return policy.tiers[0]


def next_tier(policy: Policy, level: int) -> Tier | None:
    """The tier above `level`, or None when `level` is the final tier."""
    return next((t for t in policy.tiers if t.level > level), None)


def is_final(policy: Policy, level: int) -> bool:
    return next_tier(policy, level) is None


def is_raised(before: str, after: str) -> bool:
    """True when `after` is more urgent than `before` (P0 is the most urgent)."""
    return SEVERITIES.index(after) < SEVERITIES.index(before)


def severity_reroute(policy: Policy, before: str, after: str, level: int) -> Tier | None:
    """Where a severity change sends a case now at `level`, or None to stay put.

    Only a raise re-routes, and only upwards, to the tier the new severity's override
    names. Lowering never moves a case: not down (nobody loses a case they hold) and
    not up either (a case de-escalated on purpose stays where it was sent).
    """
    if not is_raised(before, after):
        return None
    override = policy.override_for(after)
    if override is None or override.route_to <= level:
        return None
    return policy.tier(override.route_to)
