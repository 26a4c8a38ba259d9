"""SLA deadlines, routing and access rules: pure functions, no Temporal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from support import DEFAULT_POLICY, actor

from escalator.models import EscalationNote
from escalator.routing import initial_tier, is_final, next_tier
from escalator.rules import (
    CaseFacts,
    access_refusal,
    claim_refusal,
    escalate_refusal,
    resolve_refusal,
)
from escalator.sla import deadline_key, next_deadline

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("severity", "level"), [("P0", 3), ("P1", 3), ("P2", 2), ("P3", 1), ("P4", 1)]
)
def test_severity_routing(severity, level):
    assert initial_tier(DEFAULT_POLICY, severity).level == level


def test_next_tier_and_final():
    assert next_tier(DEFAULT_POLICY, 1).level == 2
    assert next_tier(DEFAULT_POLICY, 3) is None
    assert is_final(DEFAULT_POLICY, 3) and not is_final(DEFAULT_POLICY, 2)


def test_unclaimed_case_warns_at_75_percent_then_breaches_first_response():
    fired: set[str] = set()
    warning = next_deadline(DEFAULT_POLICY, tier_level=1, entered_at=T0, claimed=False)
    assert (warning.kind, warning.at, warning.label) == (
        "warning",
        T0 + 3 * H,
        "L1 first-response warning",
    )
    fired.add(deadline_key(warning))
    breach = next_deadline(DEFAULT_POLICY, tier_level=1, entered_at=T0, claimed=False, fired=fired)
    assert (breach.kind, breach.at) == ("breach", T0 + 4 * H)
    assert breach.consequence == "escalate to L2 Specialist Support"
    fired.add(deadline_key(breach))
    assert (
        next_deadline(DEFAULT_POLICY, tier_level=1, entered_at=T0, claimed=False, fired=fired)
        is None
    )


def test_claimed_case_runs_the_resolution_clock_from_tier_entry():
    deadline = next_deadline(
        DEFAULT_POLICY, tier_level=2, entered_at=T0, claimed=True, fired={"resolution:warning"}
    )
    assert (deadline.clock, deadline.at) == ("resolution", T0 + 8 * H)
    warning = next_deadline(DEFAULT_POLICY, tier_level=2, entered_at=T0, claimed=True)
    assert warning.at == T0 + 6 * H  # 75% of 8h


def test_final_tier_breach_does_not_escalate():
    breach = next_deadline(
        DEFAULT_POLICY, tier_level=3, entered_at=T0, claimed=False, fired={"first_response:warning"}
    )
    assert "final tier" in breach.consequence


def test_tier_without_sla_has_no_deadline():
    from examples.veterans_benefits import benefits_policy

    assert next_deadline(benefits_policy(), tier_level=3, entered_at=T0, claimed=False) is None


OPEN = CaseFacts(state="open", account="default", assignee=None, final_tier=False)
CLAIMED = CaseFacts(state="claimed", account="default", assignee="alice", final_tier=False)
NOTE = EscalationNote(reason="needs backend", steps_taken=("checked logs",))


def test_access_rules():
    assert access_refusal(actor(role="viewer"), OPEN).endswith("not act on them")
    assert "account" in access_refusal(actor(account="other"), OPEN)
    assert access_refusal(actor(role="owner"), OPEN) is None


def test_claim_rules():
    assert claim_refusal(actor("bob"), CLAIMED) == "already claimed by alice"
    assert claim_refusal(actor("alice"), CLAIMED) is None  # idempotent for the assignee
    assert claim_refusal(actor("bob"), OPEN) is None


def test_only_assignee_or_admin_acts_on_a_claimed_case():
    assert "only the assignee" in resolve_refusal(actor("bob"), CLAIMED)
    assert resolve_refusal(actor("bob", role="admin"), CLAIMED) is None
    assert "only the assignee" in escalate_refusal(actor("bob"), CLAIMED, NOTE)


@pytest.mark.parametrize(
    ("note", "problem"),
    [
        (EscalationNote(reason="", steps_taken=("x",)), "reason is required"),
        (EscalationNote(reason="why", steps_taken=()), "steps_taken is required"),
        (EscalationNote(reason="why", steps_taken=("  ",)), "steps_taken is required"),
    ],
)
def test_escalation_needs_a_reason_and_steps(note, problem):
    assert problem in escalate_refusal(actor(), OPEN, note)


def test_no_escalation_from_final_tier_or_resolved_case():
    final = CaseFacts(state="open", account="default", assignee=None, final_tier=True)
    assert "final tier" in escalate_refusal(actor(), final, NOTE)
    resolved = CaseFacts(state="resolved", account="default", assignee=None, final_tier=False)
    assert "resolved" in escalate_refusal(actor(), resolved, NOTE)
