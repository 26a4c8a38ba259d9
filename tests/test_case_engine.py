"""The case engine on its own: a case's life as pure functions, no Temporal.

The service-desk semantics the time-skipping tests check end to end (business
hours, holds, thresholds, de-escalation, ping-pong, severity, repeats, stale
claims, reopen), driven here through escalator/domain/case.py directly, with a
clock the test moves. These run in the fast lane (`make test-unit`).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from support import ENGINE_T0 as T0
from support import EngineCase as Case
from support import actor, policy_with

from escalator.domain import case as engine
from escalator.domain import case_view, limits
from escalator.domain.business_time import BusinessCalendar, add_business_time
from escalator.domain.models import (
    AddNoteRequest,
    ClaimRequest,
    Customer,
    DeescalateRequest,
    EscalateRequest,
    HoldRequest,
    ReopenRequest,
    ResolveRequest,
    ResumeRequest,
    SetSeverityRequest,
)
from escalator.domain.names import POST_WEBHOOK, SEND_EMAIL

HOUR = timedelta(hours=1)
MIN = timedelta(minutes=1)
NOTE = {"reason": "needs backend access", "steps_taken": ["checked runbook"]}


def claim(user="alice", **who):
    return ClaimRequest(actor=actor(user, **who))


# -- opening and the SLA clocks --------------------------------------------------------


def test_a_case_opens_at_its_routed_tier_and_tells_it():
    case = Case()
    assert (case.state.tier_level, case.state.phase) == (1, "open")
    assert case.timeline("created")[0].detail == "P3 case opened at L1 Front-Line Support"
    assert case.purposes() == [("tier_entry", 1)]
    assert case.deadline.label == "L1 first-response warning"


def test_a_severity_override_routes_and_names_its_channel():
    case = Case(severity="P0")
    assert case.state.tier_level == 3
    assert "severity override for P0" in case.timeline("created")[0].detail
    assert case.sent()[0].channel == "pagerduty"


ENTERPRISE_TO_L2 = policy_with(tier_overrides=[{"customer_tier": "enterprise", "route_to": 2}])


@pytest.mark.parametrize(
    ("severity", "customer_tier", "level", "because"),
    [
        ("P3", "enterprise", 2, "customer-tier override for enterprise"),
        ("P3", "smb", 1, None),  # no override for this customer tier
        ("P3", None, 1, None),
        ("P2", "enterprise", 2, "severity override for P2"),  # both say L2: severity named
        ("P0", "enterprise", 3, "severity override for P0"),  # the more senior one wins
    ],
)
def test_a_case_starts_at_the_highest_of_its_severity_and_customer_tier_overrides(
    severity, customer_tier, level, because
):
    case = Case(policy=ENTERPRISE_TO_L2, severity=severity, customer_tier=customer_tier)
    assert case.state.tier_level == level
    assert case.purposes() == [("tier_entry", level)]
    created = case.timeline("created")[0].detail
    assert (because in created) if because else "override" not in created


def test_a_breach_escalates_with_a_system_note_tells_the_customer_and_assesses():
    case = Case(customer=Customer(name="Ana", email="ana@example.com"))
    case.after(4 * HOUR + MIN)
    assert case.state.tier_level == 2 and case.state.sla_breached
    assert case.hours("sla_warning") == [3.0]
    assert case.hours("escalated") == [4.0]
    [moved] = case.state.escalations
    assert (moved.by, moved.automatic) == ("system", True)
    assert moved.note.reason == "first response SLA breached"
    assert case.purposes() == [
        ("tier_entry", 1),
        ("warning", 1),
        ("tier_entry", 2),
        ("customer_escalation", 2),
    ]
    [assess] = [e for e in case.effects if isinstance(e, engine.Assess)]
    assert assess.request.tier.level == 2 and assess.request.purpose == "escalation"


def test_business_hours_count_only_open_time():
    calendar = BusinessCalendar.model_validate(
        {
            "timezone": "Europe/Berlin",
            "hours": {day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
        }
    )
    case = Case(policy_with(calendar=calendar.model_dump(mode="json")))
    breach_at = add_business_time(T0, 4 * HOUR, calendar)
    assert case.deadline.at == add_business_time(T0, 3 * HOUR, calendar)
    case.after(breach_at - T0 - MIN)
    assert case.state.tier_level == 1
    case.after(2 * MIN)
    assert case.state.tier_level == 2
    assert case.timeline("escalated")[0].at == breach_at


def test_a_tier_calendar_overrides_the_policy_calendar():
    weekend = {"timezone": "UTC", "hours": {"sat": ["00:00-23:59"]}}
    case = Case(policy_with(tier_changes={1: {"calendar": weekend}}))
    case.after(4 * 24 * HOUR + 16 * HOUR)  # Monday to Friday: L1's calendar is closed
    assert case.state.tier_level == 1 and case.timeline("sla_warning") == []
    case.after(4 * HOUR + MIN)  # Saturday: L1's four hours pass
    assert case.state.tier_level == 2
    assert case.timeline("escalated")[0].at == T0.replace(day=7, hour=4)


def test_each_warning_threshold_fires_once():
    case = Case(policy_with(warn_at=[0.5, 0.75, 0.9]))
    case.after(3 * HOUR + 50 * MIN)
    assert case.hours("sla_warning") == [2.0, 3.0, 3.6]
    assert case.purposes().count(("warning", 1)) == 3


def test_the_final_tier_is_renotified_until_max_repeats():
    policy = policy_with(tier_changes={3: {"repeat_every": "30m", "max_repeats": 2}})
    case = Case(policy, severity="P0")  # P0 starts at L3 (1h)
    case.after(4 * HOUR)
    assert case.hours("repeat") == [1.5, 2.0]
    assert case.purposes().count(("repeat", 3)) == 2


# -- holds -------------------------------------------------------------------------------


def test_a_hold_pauses_the_clocks_and_the_case_keeps_its_remaining_time():
    case = Case()
    case.after(HOUR)
    answer = case.do(engine.hold, HoldRequest(actor=actor(), reason="waiting on logs"))
    assert "paused" in answer and case.deadline is None
    case.after(10 * HOUR)
    assert case.state.tier_level == 1
    case.do(engine.resume, ResumeRequest(actor=actor()))
    assert case.state.hold_total == 10 * HOUR
    assert case.deadline.at - case.now == 2 * HOUR  # the 3h warning, 1h used
    case.after(3 * HOUR + MIN)
    assert case.hours("escalated") == [14.0]
    assert "reason is required" in case.refused(
        engine.hold, HoldRequest(actor=actor("bob"), reason=" ")
    )


def test_max_hold_resumes_by_itself_and_a_customer_note_resumes_too():
    case = Case(policy_with(max_hold="2h"))
    case.do(engine.hold, HoldRequest(actor=actor(), reason="vendor ticket"))
    assert (case.deadline.kind, case.deadline.label) == ("resume", "hold ends")
    case.after(2 * HOUR + MIN)
    [resumed] = case.timeline("resumed")
    assert case.state.hold is None and resumed.actor == "system" and "max_hold" in resumed.detail

    case.do(engine.hold, HoldRequest(actor=actor(), reason="waiting on the customer"))
    jane = actor("jane", role="customer")
    case.do(engine.add_note, AddNoteRequest(actor=jane, text="here are the logs"))
    assert case.state.hold is None and case.timeline("resumed")[-1].actor == "jane"
    assert "customer" in case.refused(engine.claim, ClaimRequest(actor=jane))


def test_a_hold_with_until_resumes_by_itself_at_that_time():
    case = Case()
    until = T0 + 5 * HOUR
    case.do(engine.hold, HoldRequest(actor=actor(), reason="call back", until=until))
    case.after(5 * HOUR)
    assert case.state.hold is None and case.timeline("resumed")[0].at == until
    assert case.deadline.at == until + 3 * HOUR


# -- claims, moves and refusals ------------------------------------------------------------


def test_of_two_claims_the_first_wins_and_the_second_is_told_who_has_it():
    case = Case()
    assert case.do(engine.claim, claim("alice")) == "claimed"
    assert case.refused(engine.claim, claim("bob")) == "already claimed by alice"
    assert case.do(engine.claim, claim("alice")) == "already claimed by you (alice)"
    assert [e.actor for e in case.timeline("claimed")] == ["alice"]


def test_who_may_act_is_checked_before_what():
    case = Case()
    assert "viewer" in case.refused(engine.claim, claim("vic", role="viewer"))
    assert "account" in case.refused(engine.claim, claim("eve", account="other"))
    case.do(engine.claim, claim("alice"))
    refusal = case.refused(engine.resolve, ResolveRequest(actor=actor("bob")))
    assert refusal == "claimed by alice; only the assignee or an admin can resolve it"
    case.do(engine.resolve, ResolveRequest(actor=actor("root", role="admin"), summary="done"))
    assert (case.state.phase, case.state.resolved_by) == ("resolved", "root")


def test_a_manual_escalation_needs_a_note_and_carries_it():
    case = Case()
    empty = EscalateRequest(actor=actor(), note={"reason": "stuck"})
    assert "steps_taken is required" in case.refused(engine.escalate, empty)
    answer = case.do(engine.escalate, EscalateRequest(actor=actor(), note=NOTE))
    assert answer == "escalated to L2 Specialist Support"
    assert case.state.escalations[-1].note.steps_taken == ("checked runbook",)
    assert case.state.escalated_up == 1


def test_deescalation_needs_a_reason_and_the_assignee_or_an_admin():
    case = Case()
    case.do(engine.escalate, EscalateRequest(actor=actor(), note=NOTE))
    request = DeescalateRequest(actor=actor("bob"), reason="")
    assert "reason is required" in case.refused(engine.deescalate, request)
    case.do(engine.claim, claim("bob"))
    other = DeescalateRequest(actor=actor("carol"), reason="L1 can finish it")
    assert "only the assignee (bob)" in case.refused(engine.deescalate, other)
    answer = case.do(engine.deescalate, DeescalateRequest(actor=actor("bob"), reason="L1 can"))
    assert answer == "de-escalated to L1 Front-Line Support"
    assert case.purposes()[-1] == ("deescalation", 1)
    assert case.state.escalated_up == 1 and case.state.escalations_total == 2


def test_ping_pong_is_refused_after_max_bounces_and_flagged():
    case = Case()
    admin = actor("ann", role="admin")
    case.do(engine.escalate, EscalateRequest(actor=admin, note=NOTE))  # L1 -> L2
    case.do(engine.deescalate, DeescalateRequest(actor=admin, reason="back"))  # bounce 1
    assert not case.state.needs_review
    case.do(engine.escalate, EscalateRequest(actor=admin, note=NOTE))  # bounce 2
    assert case.state.needs_review and len(case.timeline("needs_review")) == 1
    refusal = case.refused(engine.deescalate, DeescalateRequest(actor=admin, reason="again"))
    assert "bounced between L1 and L2 2 times" in refusal
    case.after(2 * HOUR + MIN)  # the SLA still escalates: only manual moves are refused
    assert case.state.tier_level == 3


def test_raising_severity_reroutes_and_lowering_never_demotes():
    case = Case()
    answer = case.do(engine.set_severity, SetSeverityRequest(actor=actor(), severity="P2"))
    assert answer == "severity P2; re-routed to L2 Specialist Support"
    answer = case.do(engine.set_severity, SetSeverityRequest(actor=actor(), severity="P4"))
    assert (answer, case.state.tier_level) == ("severity P4", 2)
    same = SetSeverityRequest(actor=actor(), severity="P4")
    assert case.do(engine.set_severity, same) == "severity is already P4"


def test_cases_from_before_the_raise_only_fix_keep_their_old_rerouting():
    # Old behaviour, as their histories replay: an override above the tier promotes
    # even when the severity is lowered (P0 → P2 moves an L1 case to L2).
    old, new = Case(severity="P0"), Case(severity="P0")
    for case in (old, new):
        case.do(engine.deescalate, DeescalateRequest(actor=actor("root", role="admin"), reason="x"))
        case.do(engine.deescalate, DeescalateRequest(actor=actor("root", role="admin"), reason="y"))
    lower = SetSeverityRequest(actor=actor(), severity="P2")
    asked: list[str] = []
    old.do(engine.set_severity, lower, patched=lambda p: asked.append(p) or False)
    new.do(engine.set_severity, lower)
    assert asked == ["severity-raise-only"]
    assert (old.state.tier_level, new.state.tier_level) == (2, 1)


def test_a_stale_claim_reminds_the_assignee_then_releases_it():
    case = Case(policy_with(tier_changes={1: {"stale_after": "1h"}}))
    case.do(engine.claim, claim("alice@example.com"))
    case.after(HOUR + MIN)
    [reminder] = [n for n in case.sent() if n.purpose == "stale_reminder"]
    assert reminder.recipients == ("alice@example.com",)
    case.after(HOUR)
    assert (case.state.phase, case.state.assignee) == ("open", None)
    assert case.purposes()[-1] == ("claim_released", 1)


def test_a_note_on_a_claimed_case_restarts_its_stale_clock():
    case = Case(policy_with(tier_changes={1: {"stale_after": "1h"}}))
    case.do(engine.claim, claim())
    case.after(50 * MIN)
    note = AddNoteRequest(actor=actor(), text="still digging")
    step = engine.add_note(case.state, case.case, note, case.now)
    assert step.rearm  # the sleeping workflow must arm its timer anew
    case.do(engine.add_note, note)
    assert case.deadline.at == case.now + HOUR


# -- resolve and reopen --------------------------------------------------------------------


def test_reopen_restarts_at_the_last_tier_and_keeps_the_creation_time():
    case = Case(policy_with(reopen_window="2d"))
    case.do(engine.escalate, EscalateRequest(actor=actor(), note=NOTE))
    case.do(engine.resolve, ResolveRequest(actor=actor(), summary="fixed"))
    assert case.state.reopen_until == T0 + 2 * 24 * HOUR
    case.after(HOUR)
    answer = case.do(engine.reopen, ReopenRequest(actor=actor("jane", role="customer")))
    assert answer == "reopened at L2 Specialist Support"
    assert (case.state.phase, case.state.created_at, case.state.reopened) == ("open", T0, 1)
    assert case.purposes()[-1] == ("reopened", 2)


def test_reopen_after_the_window_is_refused():
    case = Case(policy_with(reopen_window="1h"))
    case.do(engine.resolve, ResolveRequest(actor=actor()))
    case.after(2 * HOUR)
    refusal = case.refused(engine.reopen, ReopenRequest(actor=actor()))
    assert refusal == "the reopen window has closed; open a new case instead"


def test_resolving_a_held_case_ends_the_hold_and_the_outcome_counts_it():
    case = Case()
    case.do(engine.hold, HoldRequest(actor=actor(), reason="waiting"))
    case.after(3 * HOUR)
    case.do(engine.resolve, ResolveRequest(actor=actor(), summary="done"))
    outcome = case_view.outcome(case.state, case.case)
    assert outcome.total_hold_seconds == 3 * 3600
    assert outcome.seconds_to_resolution == 3 * 3600 and outcome.seconds_to_first_claim is None


# -- what leaves the case ---------------------------------------------------------------------


def test_a_tier_with_mail_and_a_webhook_gets_one_notification_on_both():
    case = Case(policy_with(tier_changes={1: {"webhook": "https://hooks.example.com/l1"}}))
    [mail], [hook] = case.sent(SEND_EMAIL), case.sent(POST_WEBHOOK)
    assert mail == hook and mail.message_id == "<c-1.1.tier_entry@escalator>"


def test_a_tier_nobody_hears_is_recorded_not_notified():
    case = Case(policy_with(tier_changes={1: {"notify": []}}))
    assert case.sent() == [] and len(case.timeline("notification_skipped")) == 1


def test_the_case_keeps_its_newest_notes_and_counts_them_all(monkeypatch):
    monkeypatch.setattr(limits, "NOTES_KEPT", 3)
    case = Case()
    for i in range(5):
        case.do(engine.add_note, AddNoteRequest(actor=actor(), text=f"note {i}"))
    assert [n.text for n in case.state.notes] == ["note 2", "note 3", "note 4"]
    assert case.state.notes_total == 5


def test_plain_refusals_are_for_validators_and_who_is_asking_is_left_to_the_audit():
    case = Case()
    case.do(engine.claim, claim("alice"))
    refuse = engine.plain_refusal
    assert refuse("claim", case.state, case.case, claim("bob"), case.now) == (
        "already claimed by alice"
    )
    # Bob may not resolve alice's case: refused in the handler, so it is audited.
    resolve = ResolveRequest(actor=actor("bob"))
    assert refuse("resolve", case.state, case.case, resolve, case.now) is None
    with pytest.raises(engine.Refused):
        engine.resolve(case.state, case.case, resolve, case.now)


def test_a_carried_state_round_trips_as_the_wire_format_of_old_runs():
    case = Case()
    case.do(engine.escalate, EscalateRequest(actor=actor(), note=NOTE))
    wire = case.state.model_dump(mode="json")
    assert wire["state"] == "open" and "phase" not in wire
    # Carried before the counters existed: they are counted from the escalations.
    del wire["escalations_total"], wire["escalated_up"], wire["reopen_until"]
    restored = type(case.state).model_validate(wire)
    assert (restored.escalations_total, restored.escalated_up) == (1, 1)
    assert restored == case.state
