"""Who may do what to a case. Pure functions, shared by the workflow and the edges.

Each check returns None when the action is allowed, or the reason it is refused,
phrased so it can be shown to the person who asked.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from escalator.domain.models import Actor, EscalationNote

PRIVILEGED_ROLES = frozenset({"admin", "owner"})
# What a customer may do on their own case: talk (a note also ends a hold) and reopen.
CUSTOMER_ACTIONS = frozenset({"add_note", "reopen"})


@dataclass(frozen=True)
class CaseFacts:
    """The facts about a case that the rules look at."""

    state: str
    account: str
    assignee: str | None
    final_tier: bool
    lowest_tier: bool = False
    on_hold: bool = False
    reopenable: bool = False


def access_refusal(actor: Actor, case: CaseFacts, action: str = "") -> str | None:
    """Refusals that are about who is asking; they are audited in the timeline."""
    if actor.role == "viewer":
        return f"{actor.user} is a viewer; viewers can read cases but not act on them"
    if actor.account != case.account:
        return f"{actor.user} belongs to account {actor.account!r}, not to this case's account"
    if actor.role == "customer" and action not in CUSTOMER_ACTIONS:
        return f"{actor.user} is a customer; customers can add notes and reopen, not {action}"
    return None


def claim_refusal(actor: Actor, case: CaseFacts) -> str | None:
    if case.state == "resolved":
        return "the case is already resolved"
    if case.state == "claimed" and case.assignee != actor.user:
        return f"already claimed by {case.assignee}"
    return None


def _owner_refusal(actor: Actor, case: CaseFacts, verb: str) -> str | None:
    # Once claimed, the assignee owns the case; admins may step in.
    if (
        case.state == "claimed"
        and case.assignee != actor.user
        and actor.role not in PRIVILEGED_ROLES
    ):
        return f"claimed by {case.assignee}; only the assignee or an admin can {verb} it"
    return None


def resolve_refusal(actor: Actor, case: CaseFacts) -> str | None:
    if case.state == "resolved":
        return "the case is already resolved"
    return _owner_refusal(actor, case, "resolve")


def escalation_note_problem(note: EscalationNote) -> str | None:
    """A manual escalation must say why, and what has been tried (the seed's template)."""
    if not note.reason.strip():
        return "note.reason is required: say why the case needs the next tier"
    if not any(step.strip() for step in note.steps_taken):
        return "note.steps_taken is required: list at least one thing already tried"
    return None


def escalate_refusal(actor: Actor, case: CaseFacts, note: EscalationNote) -> str | None:
    if case.state == "resolved":
        return "the case is already resolved"
    if case.final_tier:
        return "the case is on the final tier; there is no tier to escalate to"
    return _owner_refusal(actor, case, "escalate") or escalation_note_problem(note)


def note_refusal(actor: Actor, case: CaseFacts) -> str | None:
    if case.state == "resolved":
        return "the case is already resolved"
    return None


def hold_refusal(actor: Actor, case: CaseFacts, reason: str) -> str | None:
    if case.state == "resolved":
        return "the case is already resolved"
    if case.on_hold:
        return "the case is already on hold; resume it first"
    if not reason.strip():
        return "reason is required: say what the case is waiting for"
    return _owner_refusal(actor, case, "put on hold")


def resume_refusal(actor: Actor, case: CaseFacts) -> str | None:
    if not case.on_hold:
        return "the case is not on hold"
    return None


def _deescalation_owner_refusal(actor: Actor, case: CaseFacts) -> str | None:
    # Only the owner of the case on this tier, or an admin, may hand it back down.
    if actor.role not in PRIVILEGED_ROLES and case.assignee != actor.user:
        holder = f"the assignee ({case.assignee})" if case.assignee else "the assignee"
        return f"only {holder} or an admin can de-escalate this case"
    return None


def deescalate_refusal(actor: Actor, case: CaseFacts, reason: str) -> str | None:
    if case.state == "resolved":
        return "the case is already resolved"
    if case.lowest_tier:
        return "the case is on the lowest tier; there is no tier to return it to"
    if not reason.strip():
        return "reason is required: say why the lower tier can take over"
    return _deescalation_owner_refusal(actor, case)


# The verb each owner-gated action uses in its refusal.
_OWNER_VERBS = {"resolve": "resolve", "escalate": "escalate", "hold": "put on hold"}


def authority_refusal(actor: Actor, case: CaseFacts, action: str) -> str | None:
    """Why this actor may not do `action` at all: role, account, or not the owner.

    These refusals are audited, written to the timeline with the actor, so update
    validators let them through to the handler rather than rejecting them unseen.
    """
    if refusal := access_refusal(actor, case, action):
        return refusal
    if action == "deescalate":
        return _deescalation_owner_refusal(actor, case)
    if action in _OWNER_VERBS:
        return _owner_refusal(actor, case, _OWNER_VERBS[action])
    return None


def severity_refusal(actor: Actor, case: CaseFacts) -> str | None:
    if case.state == "resolved":
        return "the case is already resolved"
    return None


def reopen_refusal(actor: Actor, case: CaseFacts) -> str | None:
    if case.state != "resolved":
        return "the case is not resolved, so there is nothing to reopen"
    if not case.reopenable:
        return "the reopen window has closed; open a new case instead"
    return None


def bounce_count(moves: list[tuple[int, int]], a: int, b: int) -> int:
    """How many times the case has come back between tiers `a` and `b`.

    A bounce is a move between the two that reverses the previous move between
    them: L1→L2, L2→L1 is one bounce; a further L1→L2 makes two.
    """
    pair = {a, b}
    between = [move for move in moves if set(move) == pair]
    return sum(1 for previous, move in itertools.pairwise(between) if move == previous[::-1])


def bounce_refusal(
    moves: list[tuple[int, int]], source: int, target: int, limit: int
) -> str | None:
    bounces = bounce_count(moves, source, target)
    if bounces >= limit:
        return (
            f"the case has bounced between L{min(source, target)} and L{max(source, target)} "
            f"{bounces} times (max_bounces {limit}); it needs a review, not another move"
        )
    return None
