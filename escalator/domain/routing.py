"""Which tier owns a case: where it starts, and where it goes next."""

from __future__ import annotations

from escalator.domain.policy import SEVERITIES, Policy, Tier


def initial_tier(policy: Policy, severity: str, customer_tier: str | None = None) -> Tier:
    """Where a new case starts: the highest of the first tier, its severity's override
    and its customer tier's override. Either shortcut only ever skips tiers, so the
    more senior one wins, whichever it is."""
    levels = [policy.tiers[0].level]
    if (override := policy.override_for(severity)) is not None:
        levels.append(override.route_to)
    if (by_customer := policy.tier_override_for(customer_tier)) is not None:
        levels.append(by_customer.route_to)
    return policy.tier(max(levels))


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
