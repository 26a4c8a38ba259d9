"""Who may do what to a case. Pure functions, shared by the workflow and the edges.

Each check returns None when the action is allowed, or the reason it is refused,
phrased so it can be shown to the person who asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from escalator.models import Actor, EscalationNote

PRIVILEGED_ROLES = frozenset({"admin", "owner"})


@dataclass(frozen=True)
class CaseFacts:
    """The facts about a case that the rules look at."""

    state: str
    account: str
    assignee: str | None
    final_tier: bool


def access_refusal(actor: Actor, case: CaseFacts) -> str | None:
    """Refusals that are about who is asking; they are audited in the timeline."""
    if actor.role == "viewer":
        return f"{actor.user} is a viewer; viewers can read cases but not act on them"
    if actor.account != case.account:
        return f"{actor.user} belongs to account {actor.account!r}, not to this case's account"
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
