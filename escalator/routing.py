"""Which tier owns a case: where it starts, and where it goes next."""

from __future__ import annotations

from escalator.policy import Policy, Tier


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
