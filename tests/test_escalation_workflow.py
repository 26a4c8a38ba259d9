"""Workflow logic on the time-skipping test server: days of SLA pass in milliseconds.

Notifications are recorded by stand-in activities here; the real SMTP path is
covered by test_notification_activities.py and the dev-server integration test.
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest
from support import DEFAULT_POLICY, HOUR, Desk, actor, eventually
from temporalio.client import (
    WorkflowHistory,
    WorkflowUpdateFailedError,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from escalator.domain.errors import InvalidInput
from escalator.domain.models import CaseInput, CaseStatus
from escalator.domain.policy import Policy
from examples.veterans_benefits import benefits_case
from starter import ActionRefused
from workflows.escalation import EscalationWorkflow

NOTE = {"reason": "needs backend access", "steps_taken": ["re-uploaded cert", "checked runbook"]}


def elapsed_hours(status: CaseStatus, kind: str) -> list[float]:
    return [
        round((e.at - status.created_at).total_seconds() / 3600, 3)
        for e in status.timeline
        if e.kind == kind
    ]


async def test_veterans_case_goes_helpdesk_then_supervisor_then_ai_agent(desk: Desk):
    await desk.start_case(benefits_case("vet-1"))
    assert (await desk.status("vet-1")).tier_name == "helpdesk"

    await desk.after(timedelta(hours=47, minutes=59))
    assert (await desk.status("vet-1")).tier_name == "helpdesk"

    await desk.after(timedelta(minutes=2))
    status = await desk.status("vet-1")
    assert (status.tier_name, status.team) == ("supervisor", "supervisor_office")

    await desk.after(timedelta(hours=72))
    status = await desk.status("vet-1")
    assert (status.tier_name, status.team) == ("ai_agent", "ai_representative")
    assert elapsed_hours(status, "escalated") == [48.0, 120.0]
    assert status.next_deadline is None  # the AI stage is final and waits for a human

    await desk.escalator.resolve("vet-1", actor("case-officer"), "payment reissued")
    outcome = await desk.escalator.outcome("vet-1")
    assert (outcome.final_tier, outcome.escalations) == (3, 2)
    assert outcome.seconds_to_first_claim is None
    assert outcome.seconds_to_resolution == pytest.approx(120 * 3600, abs=120)
    entries = [p for p in desk.notifier.purposes("vet-1") if p[0] == "tier_entry"]
    assert entries == [("tier_entry", 1), ("tier_entry", 2), ("tier_entry", 3)]


async def test_three_tiers_escalate_on_first_response_breach(desk: Desk):
    await desk.start("t3", customer={"name": "Jane", "email": "jane@acme.example"})
    await desk.after(4 * HOUR + timedelta(seconds=1))
    status = await desk.status("t3")
    assert status.tier_level == 2
    assert status.last_escalation.note.reason == "first response SLA breached"
    assert status.last_escalation.automatic and status.last_escalation.by == "system"
    assert status.sla_breached

    await desk.after(2 * HOUR)
    status = await desk.status("t3")
    assert status.tier_level == 3
    assert elapsed_hours(status, "escalated") == [4.0, 6.0]

    def customer_mails():
        return [n for n in desk.notifier.sent if n.purpose == "customer_escalation"]

    await eventually(lambda: len(customer_mails()) == 2)
    sent_to_customer = customer_mails()
    assert [n.recipients for n in sent_to_customer] == [("jane@acme.example",)] * 2
    # The customer learns the new expected response time: L3 answers within 1h.
    assert sent_to_customer[-1].deadline.at - status.timeline[-1].at <= HOUR


async def test_p0_goes_straight_to_l3_with_its_channel(desk: Desk):
    await desk.start("p0", severity="P0")
    status = await desk.status("p0")
    assert (status.tier_level, status.team, status.escalations) == (3, "engineering-oncall", 0)
    first = (await eventually(lambda: desk.notifier.sent))[0]
    assert (first.tier.level, first.channel) == (3, "pagerduty")
    assert "severity override" in status.timeline[0].detail


async def test_claim_stops_the_first_response_escalation(desk: Desk):
    await desk.start("c1")
    await desk.after(HOUR)
    answer = await desk.escalator.claim("c1", actor("alice"))
    assert answer.message == "claimed" and answer.assignee == "alice"
    await desk.after(5 * HOUR)
    status = await desk.status("c1")
    assert (status.tier_level, status.state, status.assignee) == (1, "claimed", "alice")
    assert status.next_deadline.label == "L1 resolution warning"


async def test_claimed_case_escalates_at_the_resolution_target(desk: Desk):
    await desk.start("r1")
    await desk.escalator.claim("r1", actor("alice"))
    await desk.after(23 * HOUR + timedelta(minutes=59))
    assert (await desk.status("r1")).tier_level == 1

    await desk.after(timedelta(minutes=2))
    status = await desk.status("r1")
    assert (status.tier_level, status.state, status.assignee) == (2, "open", None)
    assert status.last_escalation.note.reason == "resolution SLA breached"
    assert elapsed_hours(status, "escalated") == [24.0]
    # The receiving tier must claim anew.
    answer = await desk.escalator.claim("r1", actor("bob"))
    assert answer.assignee == "bob"


async def test_warning_fires_once_at_75_percent(desk: Desk):
    await desk.start("w1")
    await desk.after(2 * HOUR + timedelta(minutes=59))
    assert ("warning", 1) not in desk.notifier.purposes("w1")
    await desk.after(timedelta(minutes=2))
    await eventually(lambda: ("warning", 1) in desk.notifier.purposes("w1"))
    await desk.after(timedelta(minutes=30))  # and it does not fire again
    assert desk.notifier.purposes("w1").count(("warning", 1)) == 1
    status = await desk.status("w1")
    assert elapsed_hours(status, "sla_warning") == [3.0]  # 75% of the 4h first response
    warning = next(n for n in desk.notifier.sent if n.purpose == "warning")
    assert warning.deadline.label == "L1 first-response deadline"


async def test_manual_escalation_carries_its_note_and_needs_a_reason(desk: Desk):
    await desk.start("m1")
    await desk.escalator.claim("m1", actor("alice"))

    with pytest.raises(InvalidInput, match="reason is required"):  # refused at the edge
        await desk.escalator.escalate("m1", actor("alice"), {**NOTE, "reason": ""}, wait=False)
    # The workflow also refuses a note without a reason that skipped the edge check.
    from escalator.domain.models import EscalateRequest

    handle = desk.env.client.get_workflow_handle("case-m1")
    bad = EscalateRequest(actor=actor("alice"), note={"reason": "", "steps_taken": ["x"]})
    with pytest.raises(WorkflowUpdateFailedError) as rejected:
        await handle.execute_update(EscalationWorkflow.try_escalate, bad)
    assert "reason is required" in rejected.value.cause.message
    await handle.signal(EscalationWorkflow.escalate, bad)
    status = await desk.status("m1")
    assert status.tier_level == 1
    assert any(e.kind == "rejected" and "reason is required" in e.detail for e in status.timeline)

    answer = await desk.escalator.escalate("m1", actor("alice"), NOTE)
    assert answer.message == "escalated to L2 Specialist Support"
    status = await desk.status("m1")
    assert (status.tier_level, status.state, status.last_escalation.by) == (2, "open", "alice")
    entry = await eventually(
        lambda: [n for n in desk.notifier.sent if n.purpose == "tier_entry" and n.tier.level == 2]
    )
    assert entry[0].escalations[-1].note.steps_taken == tuple(NOTE["steps_taken"])


async def test_twenty_concurrent_claims_have_exactly_one_winner(desk: Desk):
    await desk.start("race")
    users = [f"engineer-{i}" for i in range(20)]
    answers = await asyncio.gather(
        *(desk.escalator.claim("race", actor(user)) for user in users), return_exceptions=True
    )
    winners = [a for a in answers if not isinstance(a, BaseException)]
    refusals = [a for a in answers if isinstance(a, ActionRefused)]
    assert len(winners) == 1 and len(refusals) == 19
    winner = winners[0].assignee
    assert all(f"already claimed by {winner}" in str(r) for r in refusals)
    status = await desk.status("race")
    assert status.assignee == winner
    assert [e.kind for e in status.timeline].count("claimed") == 1


async def test_viewer_and_other_account_are_refused_and_audited(desk: Desk):
    await desk.start("v1")
    with pytest.raises(ActionRefused, match="viewer"):
        await desk.escalator.claim("v1", actor("victor", role="viewer"))
    with pytest.raises(ActionRefused, match="account"):
        await desk.escalator.resolve("v1", actor("mallory", account="other-co"), "closing")
    status = await desk.status("v1")
    assert status.state == "open" and status.assignee is None
    audit = [(e.actor, e.kind) for e in status.timeline if e.kind == "rejected"]
    assert audit == [("victor", "rejected"), ("mallory", "rejected")]


async def test_claimed_case_can_only_be_resolved_by_assignee_or_admin(desk: Desk):
    await desk.start("own")
    await desk.escalator.claim("own", actor("alice"))
    with pytest.raises(ActionRefused, match="already claimed by alice"):
        await desk.escalator.claim("own", actor("bob"))
    with pytest.raises(ActionRefused, match="only the assignee or an admin"):
        await desk.escalator.resolve("own", actor("bob"), "not mine")
    await desk.escalator.resolve("own", actor("carol", role="admin"), "admin closed it")
    outcome = await desk.escalator.outcome("own")
    assert (outcome.resolved_by, outcome.summary) == ("carol", "admin closed it")
    assert outcome.seconds_to_first_claim == pytest.approx(0, abs=1)


async def test_final_tier_never_escalates(desk: Desk):
    no_sla_on_top = Policy.model_validate(
        {
            "tiers": [
                {"level": 1, "name": "Desk", "team": "desk", "notify": ["d@example.com"],
                 "sla": {"first_response": "1h", "resolution_target": "2h"}},
                {"level": 2, "name": "Experts", "team": "experts", "notify": ["e@example.com"]},
            ]
        }
    )  # fmt: skip
    await desk.start("fin", policy=no_sla_on_top)
    await desk.after(timedelta(days=30))
    status = await desk.status("fin")
    assert (status.tier_level, status.escalations, status.next_deadline) == (2, 1, None)
    with pytest.raises(ActionRefused, match="final tier"):
        await desk.escalator.escalate("fin", actor("alice"), NOTE)

    # With an SLA on the final tier, a breach is reported, and still nothing escalates.
    await desk.start("fin-sla", severity="P0")  # default policy: P0 starts at L3 (1h SLA)
    await desk.after(timedelta(hours=3))
    status = await desk.status("fin-sla")
    assert (status.tier_level, status.escalations, status.sla_breached) == (3, 0, True)
    await eventually(lambda: ("sla_breach", 3) in desk.notifier.purposes("fin-sla"))


async def test_closed_case_refuses_actions_and_unknown_case_is_reported(desk: Desk):
    from starter import CaseNotFound

    await desk.start("done")
    await desk.escalator.resolve("done", actor("alice"), "fixed")
    await desk.escalator.outcome("done")
    with pytest.raises(ActionRefused, match="closed"):
        await desk.escalator.claim("done", actor("bob"))
    with pytest.raises(CaseNotFound):
        await desk.escalator.claim("no-such-case", actor("bob"))


async def test_history_replays_deterministically(desk: Desk):
    await desk.start("replay", customer={"email": "c@example.com"})
    await desk.escalator.claim("replay", actor("alice"))
    await desk.escalator.add_note("replay", actor("alice"), "restarted the sync service")
    await desk.escalator.escalate("replay", actor("alice"), NOTE)
    await desk.after(3 * HOUR)
    await desk.escalator.resolve("replay", actor("bob"), "fixed")
    await desk.escalator.outcome("replay")
    history = await desk.env.client.get_workflow_handle("case-replay").fetch_history()
    replayer = Replayer(workflows=[EscalationWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(
        WorkflowHistory.from_json("case-replay", history.to_json())
    )
    assert result.replay_failure is None


async def test_policy_snapshot_round_trips_through_temporal(desk: Desk):
    await desk.start("snap")
    handle = desk.env.client.get_workflow_handle("case-snap")
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    [case] = pydantic_data_converter.payload_converter.from_payloads(
        started.input.payloads, [CaseInput]
    )
    assert case.policy == DEFAULT_POLICY


async def test_malformed_signal_is_recorded_and_changes_nothing(desk: Desk):
    await desk.start("bad-signal")
    handle = desk.env.client.get_workflow_handle("case-bad-signal")
    await handle.signal("claim", {"actor": {"user": "mallory", "role": "superuser"}})
    await handle.signal("add_note", {"actor": {"user": "eve", "role": "engineer"}, "text": 42})
    await handle.signal("claim", "not even an object")
    status = await eventually(lambda: _with_rejections(desk.status("bad-signal"), 3), within=10)
    rejected = [e for e in status.timeline if e.kind == "rejected"]
    assert "actor.role" in rejected[0].detail and rejected[0].actor == "mallory"
    assert "text" in rejected[1].detail
    assert all("malformed payload" in e.detail and "\n" not in e.detail for e in rejected)
    assert (status.state, status.assignee, status.notes_total) == ("open", None, 0)


async def _with_rejections(awaitable, count: int):
    status = await awaitable
    return status if sum(e.kind == "rejected" for e in status.timeline) >= count else None


NOTE = {"reason": "needs backend access", "steps_taken": ["re-uploaded the certificate"]}
# Each action as the API sends it; `who` is the actor asking.
ACTIONS = {
    "claim": lambda e, c, who: e.claim(c, who),
    "resolve": lambda e, c, who: e.resolve(c, who, "closing"),
    "escalate": lambda e, c, who: e.escalate(c, who, NOTE),
    "add_note": lambda e, c, who: e.add_note(c, who, "a note"),
    "hold": lambda e, c, who: e.hold(c, who, "waiting on logs"),
    "resume": lambda e, c, who: e.resume(c, who),
    "deescalate": lambda e, c, who: e.deescalate(c, who, "L1 can take it from here"),
    "set_severity": lambda e, c, who: e.set_severity(c, who, "P0"),
}
INTRUDERS = {
    "viewer": (actor("victor", role="viewer"), "is a viewer"),
    "other account": (actor("mallory", account="other-co"), "belongs to account 'other-co'"),
}
# Owner-gated actions on a case claimed by alice, tried by bob (an engineer).
NOT_THE_OWNER = {
    "resolve": "only the assignee or an admin can resolve it",
    "escalate": "only the assignee or an admin can escalate it",
    "hold": "only the assignee or an admin can put on hold it",
    "deescalate": "only the assignee (alice) or an admin can de-escalate this case",
}


async def _case_for(desk: Desk, case_id: str, action: str) -> None:
    # P2 starts at L2, so there is a lower tier to de-escalate to; resume needs a hold.
    await desk.start(case_id, severity="P2")
    if action == "resume":
        await desk.escalator.hold(case_id, actor("admin-ann", role="admin"), "waiting on logs")


async def _assert_refused_and_audited(desk, case_id, action, who, reason):
    before = await desk.status(case_id)
    with pytest.raises(ActionRefused, match=re.escape(reason)):
        await ACTIONS[action](desk.escalator, case_id, who)
    after = await desk.status(case_id)
    assert (after.state, after.tier_level, after.assignee, after.severity, after.hold) == (
        before.state, before.tier_level, before.assignee, before.severity, before.hold
    )  # fmt: skip
    [audit] = [e for e in after.timeline[len(before.timeline) :] if e.kind == "rejected"]
    assert audit.actor == who.user and audit.detail.startswith(f"{action} refused: ")
    assert reason in audit.detail


@pytest.mark.parametrize("intruder", list(INTRUDERS))
@pytest.mark.parametrize("action", list(ACTIONS))
async def test_every_action_is_gated_by_role_and_account_and_audited(desk, action, intruder):
    who, reason = INTRUDERS[intruder]
    case_id = f"gate-{action}-{intruder.replace(' ', '-')}"
    await _case_for(desk, case_id, action)
    await _assert_refused_and_audited(desk, case_id, action, who, reason)


@pytest.mark.parametrize("action", list(NOT_THE_OWNER))
async def test_owner_gated_actions_refuse_others_and_audit_them(desk, action):
    case_id = f"owner-{action}"
    await _case_for(desk, case_id, action)
    await desk.escalator.claim(case_id, actor("alice"))
    await _assert_refused_and_audited(desk, case_id, action, actor("bob"), NOT_THE_OWNER[action])
