"""SLA deadlines, routing and access rules: pure functions, no Temporal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from support import DEFAULT_POLICY, actor

from escalator.domain.models import EscalationNote
from escalator.domain.routing import initial_tier, is_final, next_tier, severity_reroute
from escalator.domain.rules import (
    CaseFacts,
    access_refusal,
    bounce_count,
    claim_refusal,
    escalate_refusal,
    resolve_refusal,
)
from escalator.domain.sla import Position, breach_target, instant_of, next_target, targets

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("severity", "level"), [("P0", 3), ("P1", 3), ("P2", 2), ("P3", 1), ("P4", 1)]
)
def test_severity_routing(severity, level):
    assert initial_tier(DEFAULT_POLICY, severity).level == level


@pytest.mark.parametrize(
    ("before", "after", "level", "moves_to"),
    [
        ("P3", "P1", 1, 3),  # raised: straight to the override's tier
        ("P3", "P2", 1, 2),
        ("P2", "P0", 2, 3),
        ("P3", "P2", 2, None),  # raised, but the case is already there
        ("P2", "P1", 3, None),  # never downwards
        ("P1", "P3", 3, None),  # lowering never demotes ...
        ("P0", "P2", 1, None),  # ... nor promotes a case de-escalated on purpose
        ("P3", "P4", 1, None),
        ("P4", "P3", 1, None),  # raised, but P3 has no override
        ("P2", "P2", 1, None),
    ],
)
def test_only_a_raised_severity_reroutes_and_only_upwards(before, after, level, moves_to):
    tier = severity_reroute(DEFAULT_POLICY, before, after, level)
    assert (tier.level if tier else None) == moves_to


def test_next_tier_and_final():
    assert next_tier(DEFAULT_POLICY, 1).level == 2
    assert next_tier(DEFAULT_POLICY, 3) is None
    assert is_final(DEFAULT_POLICY, 3) and not is_final(DEFAULT_POLICY, 2)


def test_unclaimed_case_warns_at_75_percent_then_breaches_first_response():
    position = Position(tier_level=1, claimed=False)
    fired: set[str] = set()
    warning = next_target(DEFAULT_POLICY, position, fired)
    assert (warning.kind, warning.consumed, warning.label) == (
        "warning",
        3 * H,
        "L1 first-response warning",
    )
    fired.add(warning.key)
    breach = next_target(DEFAULT_POLICY, position, fired)
    assert (breach.kind, breach.consumed) == ("breach", 4 * H)
    assert breach.consequence == "escalate to L2 Specialist Support"
    fired.add(breach.key)
    assert next_target(DEFAULT_POLICY, position, fired) is None


def test_claimed_case_runs_the_resolution_clock_from_tier_entry():
    position = Position(tier_level=2, claimed=True)
    warning = next_target(DEFAULT_POLICY, position, set())
    assert (warning.clock, warning.consumed) == ("resolution", 6 * H)  # 75% of 8h
    breach = next_target(DEFAULT_POLICY, position, {warning.key})
    assert breach.consumed == 8 * H


def test_instant_of_counts_only_running_time():
    breach = next_target(DEFAULT_POLICY, Position(tier_level=1, claimed=False), {
        "first_response@0:warning:0.75"})  # fmt: skip
    # 1h30 consumed before a hold; resumed at T0: 2h30 remain.
    at = instant_of(breach, consumed_at_start=90 * M, running_since=T0, calendar=None)
    assert at == T0 + 150 * M


def test_several_thresholds_each_fire_once():
    policy = DEFAULT_POLICY.model_copy(update={"warn_at": (0.5, 0.75, 0.9)})
    found = [
        t for t in targets(policy, Position(tier_level=1, claimed=False)) if t.kind == "warning"
    ]
    assert [t.consumed for t in found] == [2 * H, 3 * H, timedelta(minutes=216)]
    assert len({t.key for t in found}) == 3
    assert found[0].label == "L1 first-response warning (50%)"


def test_final_tier_breach_does_not_escalate_and_repeats_when_configured():
    breach = next_target(
        DEFAULT_POLICY, Position(tier_level=3, claimed=False), {"first_response@0:warning:0.75"}
    )
    assert "final tier" in breach.consequence
    tiers = list(DEFAULT_POLICY.tiers)
    tiers[2] = tiers[2].model_copy(update={"repeat_every": 30 * M, "max_repeats": 2})
    policy = DEFAULT_POLICY.model_copy(update={"tiers": tuple(tiers)})
    repeats = [
        t for t in targets(policy, Position(tier_level=3, claimed=False)) if t.kind == "repeat"
    ]
    assert [t.consumed for t in repeats] == [H + 30 * M, H + 60 * M]


def test_stale_claim_reminds_then_releases():
    tiers = list(DEFAULT_POLICY.tiers)
    tiers[0] = tiers[0].model_copy(update={"stale_after": 2 * H})
    policy = DEFAULT_POLICY.model_copy(update={"tiers": tuple(tiers)})
    position = Position(tier_level=1, claimed=True, activity_base=H, assignee="alice")
    stale = [t for t in targets(policy, position) if t.clock == "activity"]
    assert [(t.kind, t.consumed) for t in stale] == [("stale", 3 * H), ("release", 5 * H)]
    assert "alice" in stale[0].consequence


def test_released_claim_gets_a_fresh_first_response_window():
    breach = breach_target(
        DEFAULT_POLICY, Position(tier_level=1, claimed=False, response_base=7 * H)
    )
    assert breach.consumed == 11 * H


def test_tier_without_sla_has_no_deadline():
    from examples.veterans_benefits import benefits_policy

    assert next_target(benefits_policy(), Position(tier_level=3, claimed=False), set()) is None


@pytest.mark.parametrize(
    ("moves", "pair", "count"),
    [
        ([(1, 2)], (1, 2), 0),
        ([(1, 2), (2, 1)], (1, 2), 1),
        ([(1, 2), (2, 1), (1, 2)], (1, 2), 2),
        ([(1, 2), (2, 3), (3, 2), (2, 1)], (2, 3), 1),
        ([(1, 2), (2, 3), (3, 2), (2, 1)], (1, 2), 1),
        ([(1, 2), (2, 3), (3, 2), (2, 1)], (1, 3), 0),
    ],
)
def test_bounce_count(moves, pair, count):
    assert bounce_count(moves, *pair) == count


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
