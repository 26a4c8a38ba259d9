"""SLA deadlines: pure functions of the policy and the case's position in it.

A tier runs one SLA clock at a time, measured from the moment the case entered it:
  - unclaimed: the first-response clock (breach -> escalate);
  - claimed:   the resolution clock (breach -> escalate; the next tier claims anew).
Each clock has a warning at `warn_at` of its length, sent once. The workflow asks
`next_deadline` after every change and sleeps until the answer, so deadlines are
exact to the second with no polling.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from escalator.models import Deadline
from escalator.policy import Policy
from escalator.routing import next_tier

_CLOCK_WORDS = {"first_response": "first-response", "resolution": "resolution"}


def deadline_key(deadline: Deadline) -> str:
    """Identity of a deadline within one stay in a tier, so it fires only once."""
    return f"{deadline.clock}:{deadline.kind}"


def next_deadline(
    policy: Policy,
    *,
    tier_level: int,
    entered_at: datetime,
    claimed: bool,
    fired: frozenset[str] | set[str] = frozenset(),
) -> Deadline | None:
    """The earliest deadline of the running clock that has not fired yet, or None."""
    candidates = clock_deadlines(
        policy, tier_level=tier_level, entered_at=entered_at, claimed=claimed
    )
    return next((d for d in candidates if deadline_key(d) not in fired), None)


def clock_deadlines(
    policy: Policy, *, tier_level: int, entered_at: datetime, claimed: bool
) -> tuple[Deadline, Deadline] | tuple[()]:
    """(warning, breach) of the clock that runs in this tier; () if the tier has no SLA."""
    tier = policy.tier(tier_level)
    if tier.sla is None:
        return ()  # a final tier without an SLA waits for a human, however long
    clock = "resolution" if claimed else "first_response"
    length = tier.sla.resolution_target if claimed else tier.sla.first_response
    target = next_tier(policy, tier_level)
    breach_consequence = (
        f"escalate to {target.label}"
        if target is not None
        else f"tell {tier.team} the SLA is breached (final tier)"
    )
    return (
        Deadline(
            at=entered_at + _fraction(length, policy.warn_at),
            kind="warning",
            clock=clock,
            tier_level=tier_level,
            label=f"L{tier_level} {_CLOCK_WORDS[clock]} warning",
            consequence=f"warn {tier.team} ({round(policy.warn_at * 100)}% of the SLA used)",
        ),
        Deadline(
            at=entered_at + length,
            kind="breach",
            clock=clock,
            tier_level=tier_level,
            label=f"L{tier_level} {_CLOCK_WORDS[clock]} deadline",
            consequence=breach_consequence,
        ),
    )


def breach_reason(clock: str) -> str:
    return "first response SLA breached" if clock == "first_response" else "resolution SLA breached"


def _fraction(length: timedelta, share: float) -> timedelta:
    # Whole milliseconds keep deadlines identical across replays and platforms.
    return timedelta(milliseconds=round(length.total_seconds() * 1000 * share))
