"""Service-desk SLA semantics on the time-skipping server: business hours, holds,
thresholds, de-escalation, ping-pong, severity, repeats, stale claims, reopen, and
continue-as-new under a flood of notes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from support import HOUR, Desk, actor, eventually, policy_with
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.converter import PayloadConverter

from escalator.domain.business_time import BusinessCalendar, add_business_time
from escalator.domain.errors import InvalidInput
from escalator.domain.models import DeescalateRequest, workflow_id_for
from escalator.domain.search_attributes import NEEDS_REVIEW
from starter import ActionRefused
from workflows.escalation import EscalationWorkflow

MIN = timedelta(minutes=1)
NOTE = {"reason": "needs backend access", "steps_taken": ["checked runbook"]}


def hours_after_creation(status, kind: str) -> list[float]:
    return [
        round((e.at - status.created_at).total_seconds() / 3600, 3)
        for e in status.timeline
        if e.kind == kind
    ]


async def test_business_hours_count_only_open_time(desk: Desk):
    calendar = BusinessCalendar.model_validate(
        {
            "timezone": "Europe/Berlin",
            "hours": {day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
        }
    )
    policy = policy_with(calendar=calendar.model_dump(mode="json"))
    await desk.start("bh-1", policy=policy)
    status = await desk.status("bh-1")
    breach_at = add_business_time(status.created_at, 4 * HOUR, calendar)
    local = breach_at.astimezone(calendar.zone)
    assert local.weekday() < 5 and 9 <= local.hour <= 17  # inside business hours
    warning = status.next_deadline
    assert warning.at == add_business_time(status.created_at, 3 * HOUR, calendar)

    await desk.after(breach_at - status.created_at - MIN)
    assert (await desk.status("bh-1")).tier_level == 1
    await desk.after(2 * MIN)
    status = await desk.status("bh-1")
    assert status.tier_level == 2
    escalated = next(e for e in status.timeline if e.kind == "escalated")
    assert abs((escalated.at - breach_at).total_seconds()) < 1


async def test_hold_pauses_the_clock_and_the_case_keeps_its_remaining_time(desk: Desk):
    await desk.start("hold-1")
    await desk.after(HOUR)
    answer = await desk.escalator.hold("hold-1", actor("alice"), "waiting on the customer's logs")
    assert "paused" in answer.message
    assert (await desk.status("hold-1")).next_deadline is None  # no max_hold, no until
    await desk.after(10 * HOUR)
    status = await desk.status("hold-1")
    assert (status.tier_level, status.hold.reason) == (1, "waiting on the customer's logs")

    await desk.escalator.resume("hold-1", actor("alice"))
    status = await desk.status("hold-1")
    assert status.total_hold_seconds == pytest.approx(10 * 3600, abs=5)
    # 1h of the 4h first response was used: the warning (3h) is 2h away, the breach 3h.
    assert status.next_deadline.at - status.timeline[-1].at == pytest.approx(2 * HOUR, abs=MIN)
    await desk.after(3 * HOUR + MIN)
    status = await desk.status("hold-1")
    assert status.tier_level == 2
    assert hours_after_creation(status, "escalated") == pytest.approx([14.0], abs=0.02)

    with pytest.raises(InvalidInput, match="reason is required"):
        await desk.escalator.hold("hold-1", actor("bob"), " ")


async def test_max_hold_resumes_by_itself_and_a_customer_note_resumes_too(desk: Desk):
    await desk.start("hold-2", policy=policy_with(max_hold="2h"))
    await desk.escalator.hold("hold-2", actor("alice"), "vendor ticket open")
    status = await desk.status("hold-2")
    assert (status.next_deadline.kind, status.next_deadline.label) == ("resume", "hold ends")
    await desk.after(2 * HOUR + MIN)
    status = await desk.status("hold-2")
    assert status.hold is None
    resumed = [e for e in status.timeline if e.kind == "resumed"]
    assert resumed[-1].actor == "system" and "max_hold" in resumed[-1].detail

    await desk.escalator.hold("hold-2", actor("alice"), "waiting on the customer")
    await desk.escalator.add_note("hold-2", actor("jane", role="customer"), "here are the logs")
    status = await desk.status("hold-2")
    assert status.hold is None
    assert [e.actor for e in status.timeline if e.kind == "resumed"][-1] == "jane"
    with pytest.raises(ActionRefused, match="customer"):
        await desk.escalator.claim("hold-2", actor("jane", role="customer"))


async def test_each_warning_threshold_fires_once(desk: Desk):
    await desk.start("warn-3", policy=policy_with(warn_at=[0.5, 0.75, 0.9]))
    await desk.after(3 * HOUR + 50 * MIN)
    status = await desk.status("warn-3")
    assert hours_after_creation(status, "sla_warning") == [2.0, 3.0, 3.6]
    await eventually(lambda: desk.notifier.purposes("warn-3").count(("warning", 1)) == 3)


async def test_deescalation_needs_a_reason_and_the_assignee_or_an_admin(desk: Desk):
    await desk.start("de-1")
    await desk.escalator.escalate("de-1", actor("alice"), NOTE)
    await desk.escalator.claim("de-1", actor("bob"))
    with pytest.raises(ActionRefused, match="only the assignee"):
        await desk.escalator.deescalate("de-1", actor("carol"), "fix deployed, monitor")
    answer = await desk.escalator.deescalate("de-1", actor("bob"), "fix deployed; L1 monitors")
    assert answer.message == "de-escalated to L1 Front-Line Support"
    status = await desk.status("de-1")
    assert (status.tier_level, status.state, status.escalations) == (1, "open", 1)
    entry = await eventually(lambda: [n for n in desk.notifier.sent if n.purpose == "deescalation"])
    assert entry[0].tier.level == 1 and entry[0].from_tier.level == 2
    assert entry[0].escalations[-1].note.reason == "fix deployed; L1 monitors"


async def test_ping_pong_is_refused_after_max_bounces_and_flagged(desk: Desk):
    await desk.start("pp-1")
    admin = actor("ann", role="admin")
    await desk.escalator.escalate("pp-1", admin, NOTE)  # L1 -> L2
    await desk.escalator.deescalate("pp-1", admin, "back to L1")  # bounce 1
    assert not (await desk.status("pp-1")).needs_review
    await desk.escalator.escalate("pp-1", admin, NOTE)  # bounce 2 = max_bounces
    status = await desk.status("pp-1")
    assert status.needs_review and status.tier_level == 2
    with pytest.raises(ActionRefused, match="bounced between L1 and L2 2 times"):
        await desk.escalator.deescalate("pp-1", admin, "back again")
    # The SLA still escalates by itself: only manual moves are refused.
    await desk.after(2 * HOUR + MIN)
    assert (await desk.status("pp-1")).tier_level == 3


async def test_raising_severity_reroutes_and_lowering_never_demotes(desk: Desk):
    await desk.start("sev-1", severity="P3")
    answer = await desk.escalator.set_severity("sev-1", actor("alice"), "P1")
    assert answer.message == "severity P1; re-routed to L3 Engineering"
    status = await desk.status("sev-1")
    assert (status.tier_level, status.severity) == (3, "P1")
    await desk.escalator.set_severity("sev-1", actor("alice"), "P4")
    status = await desk.status("sev-1")
    assert (status.tier_level, status.severity) == (3, "P4")
    with pytest.raises(Exception, match="severity"):
        await desk.escalator.set_severity("sev-1", actor("alice"), "P9")


async def test_final_tier_is_renotified_until_max_repeats(desk: Desk):
    policy = policy_with(tier_changes={3: {"repeat_every": "30m", "max_repeats": 2}})
    await desk.start("rep-1", severity="P0", policy=policy)  # P0 starts at L3 (1h)
    await desk.after(4 * HOUR)
    status = await desk.status("rep-1")
    assert hours_after_creation(status, "repeat") == [1.5, 2.0]
    await eventually(lambda: desk.notifier.purposes("rep-1").count(("repeat", 3)) == 2)


async def test_stale_claim_reminds_the_assignee_then_releases_it(desk: Desk):
    policy = policy_with(tier_changes={1: {"stale_after": "2h"}})
    await desk.start("stale-1", policy=policy)
    await desk.escalator.claim("stale-1", actor("alice@example.com"))
    await desk.after(HOUR)
    await desk.escalator.add_note("stale-1", actor("alice@example.com"), "looking into it")
    await desk.after(2 * HOUR + MIN)  # 2h after the note: reminder
    status = await desk.status("stale-1")
    assert hours_after_creation(status, "stale_reminder") == pytest.approx([3.0], abs=0.02)
    reminder = await eventually(
        lambda: [n for n in desk.notifier.sent if n.purpose == "stale_reminder"]
    )
    assert reminder[0].recipients == ("alice@example.com",)
    await desk.after(2 * HOUR)  # 4h after the note: released
    status = await desk.status("stale-1")
    assert (status.state, status.assignee, status.tier_level) == ("open", None, 1)
    assert hours_after_creation(status, "claim_released") == pytest.approx([5.0], abs=0.02)
    # The tier gets a fresh first-response window (4h) from the release.
    assert status.next_deadline.label == "L1 first-response warning"


async def test_reopen_keeps_the_original_creation_time(desk: Desk):
    await desk.start("re-1", policy=policy_with(reopen_window="1h"))
    await desk.escalator.claim("re-1", actor("alice"))
    await desk.escalator.resolve("re-1", actor("alice"), "restarted the service")
    await desk.after(30 * MIN)
    answer = await desk.escalator.reopen("re-1", actor("jane", role="customer"), "it broke again")
    assert answer.state == "open" and answer.tier_level == 1
    await desk.after(HOUR)
    await desk.escalator.claim("re-1", actor("alice"))
    await desk.escalator.resolve("re-1", actor("alice"), "replaced the certificate")
    with pytest.raises(ActionRefused, match="already resolved"):
        await desk.escalator.resolve("re-1", actor("alice"), "again")
    await desk.after(HOUR + MIN)  # the window closes; the case completes
    outcome = await desk.escalator.outcome("re-1")
    assert (outcome.reopened, outcome.summary) == (1, "replaced the certificate")
    assert outcome.seconds_to_resolution == pytest.approx(1.5 * 3600, abs=60)


async def test_reopen_after_the_window_is_refused(desk: Desk):
    await desk.start("re-2", policy=policy_with(reopen_window="1h"))
    await desk.escalator.resolve("re-2", actor("alice"), "done")
    await desk.after(2 * HOUR)
    with pytest.raises(ActionRefused, match="closed"):
        await desk.escalator.reopen("re-2", actor("alice"))


def test_calendar_days_are_business_days_in_the_example():
    # Sanity of the fixture calendar used above: Sunday is closed.
    calendar = BusinessCalendar.model_validate(
        {"timezone": "Europe/Berlin", "hours": {"mon": ["09:00-17:00"]}}
    )
    sunday = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert add_business_time(sunday, HOUR, calendar) == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


# -- gaps found in review ------------------------------------------------------------

WEEKDAYS_9_TO_5 = {day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")}


async def test_hold_with_until_resumes_by_itself_with_the_time_it_had_left(desk: Desk):
    await desk.start("hold-3")
    created = (await desk.status("hold-3")).created_at
    await desk.after(HOUR)  # 1h of the 4h first response used
    until = created + 6 * HOUR
    await desk.escalator.hold("hold-3", actor("alice"), "customer is travelling", until=until)
    status = await desk.status("hold-3")
    assert status.hold.until == until
    assert (status.next_deadline.kind, status.next_deadline.at) == ("resume", until)

    await desk.after(until - created - HOUR - MIN)  # a minute before until: still held
    status = await desk.status("hold-3")
    assert status.hold is not None and status.tier_level == 1
    await desk.after(2 * MIN)
    status = await desk.status("hold-3")
    assert status.hold is None
    resumed = [e for e in status.timeline if e.kind == "resumed"]
    assert len(resumed) == 1 and resumed[0].actor == "system"
    assert "until" in resumed[0].detail
    assert abs((resumed[0].at - until).total_seconds()) < 1
    assert status.total_hold_seconds == pytest.approx(5 * 3600, abs=5)
    # 3h of first response were left: warning (3h mark) 2h after until, breach 3h after.
    assert status.next_deadline.label == "L1 first-response warning"
    assert status.next_deadline.at - until == pytest.approx(2 * HOUR, abs=timedelta(seconds=5))
    await desk.after(3 * HOUR)
    status = await desk.status("hold-3")
    assert status.tier_level == 2
    assert hours_after_creation(status, "escalated") == pytest.approx([9.0], abs=0.02)


async def test_deescalation_without_a_reason_is_refused_and_changes_nothing(desk: Desk):
    await desk.start("de-2")
    await desk.escalator.escalate("de-2", actor("alice"), NOTE)
    await desk.escalator.claim("de-2", actor("bob"))
    before = await desk.status("de-2")
    handle = desk.env.client.get_workflow_handle(workflow_id_for("de-2"))
    request = DeescalateRequest(actor=actor("bob"), reason="  ")

    # The update (sent raw, past the client's own check) is answered with one line.
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(EscalationWorkflow.try_deescalate, request)
    message = refused.value.cause.message
    assert message == "rejected: reason is required: say why the lower tier can take over"
    assert "\n" not in message
    # The client refuses it before it reaches Temporal, with the same reason.
    with pytest.raises(InvalidInput, match="reason is required"):
        await desk.escalator.deescalate("de-2", actor("bob"), "")

    # The signal is on record as rejected, with the actor and the reason.
    await handle.signal(EscalationWorkflow.deescalate, request)
    rejected = await eventually(lambda: _events(desk, "de-2", "rejected"))
    assert len(rejected) == 1 and rejected[0].actor == "bob"
    assert rejected[0].detail == (
        "deescalate refused: reason is required: say why the lower tier can take over"
    )

    after = await desk.status("de-2")
    assert (after.tier_level, after.state, after.assignee, after.escalations) == (
        2,
        "claimed",
        "bob",
        1,
    )
    assert after.last_escalation == before.last_escalation
    assert after.next_deadline == before.next_deadline
    assert not [e for e in after.timeline if e.kind == "deescalated"]
    assert ("deescalation", 1) not in desk.notifier.purposes("de-2")


async def _events(desk: Desk, case_id: str, kind: str):
    return [e for e in (await desk.status(case_id)).timeline if e.kind == kind]


async def test_a_tier_calendar_overrides_the_policy_calendar(desk: Desk):
    office = BusinessCalendar.model_validate({"timezone": "UTC", "hours": WEEKDAYS_9_TO_5})
    # L1 works three morning hours a day in Tokyo, every day, and not on any weekday
    # afternoon in UTC: the two calendars give different deadlines from any start.
    tokyo = BusinessCalendar.model_validate(
        {
            "timezone": "Asia/Tokyo",
            "hours": {
                day: ["09:00-12:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
            },
        }
    )
    policy = policy_with(
        calendar=office.model_dump(mode="json"),
        tier_changes={1: {"calendar": tokyo.model_dump(mode="json")}},
    )
    await desk.start("cal-1", policy=policy)
    status = await desk.status("cal-1")
    created = status.created_at
    warning_at = add_business_time(created, 3 * HOUR, tokyo)
    breach_at = add_business_time(created, 4 * HOUR, tokyo)
    assert warning_at != add_business_time(created, 3 * HOUR, office)
    assert status.next_deadline.at == warning_at

    await desk.after(breach_at - created - MIN)
    assert (await desk.status("cal-1")).tier_level == 1
    await desk.after(2 * MIN)
    status = await desk.status("cal-1")
    assert status.tier_level == 2
    escalated = next(e for e in status.timeline if e.kind == "escalated")
    assert abs((escalated.at - breach_at).total_seconds()) < 1
    # L2 has no calendar of its own, so the policy's office hours apply there.
    l2_warning = add_business_time(escalated.at, 90 * MIN, office)
    assert status.next_deadline.label == "L2 first-response warning"
    assert abs((status.next_deadline.at - l2_warning).total_seconds()) < 1


async def test_the_outcome_reports_the_total_hold_time(desk: Desk):
    await desk.start("hold-4")
    await desk.escalator.claim("hold-4", actor("alice"))
    await desk.escalator.hold("hold-4", actor("alice"), "waiting on the customer")
    await desk.after(2 * HOUR)
    await desk.escalator.resume("hold-4", actor("alice"))
    await desk.after(HOUR)
    await desk.escalator.hold("hold-4", actor("alice"), "waiting on the vendor")
    await desk.after(3 * HOUR)
    assert (await desk.status("hold-4")).hold.reason == "waiting on the vendor"
    # Resolving while on hold ends the hold, and its time counts too.
    await desk.escalator.resolve("hold-4", actor("alice"), "vendor shipped a fix")
    outcome = await desk.escalator.outcome("hold-4")
    assert outcome.total_hold_seconds == pytest.approx(5 * 3600, abs=5)
    assert outcome.seconds_to_resolution == pytest.approx(6 * 3600, abs=5)
    assert outcome.sla_breached is False


async def test_reopen_restarts_at_the_last_tier_and_keeps_the_creation_time(desk: Desk):
    await desk.start("re-3", policy=policy_with(reopen_window="2h"))
    created = (await desk.status("re-3")).created_at
    await desk.escalator.escalate("re-3", actor("alice"), NOTE)  # L1 -> L2
    # Let L2's assessment land: a superseded one is cancelled, and the time-skipping
    # server does not take an activity cancellation well.
    await eventually(lambda: _events(desk, "re-3", "assessment"))
    await desk.escalator.escalate("re-3", actor("bob"), NOTE)  # L2 -> L3
    await desk.escalator.claim("re-3", actor("carol"))
    await desk.after(30 * MIN)
    await desk.escalator.resolve("re-3", actor("carol"), "rolled back the deploy")
    await desk.after(HOUR)
    answer = await desk.escalator.reopen("re-3", actor("jane", role="customer"), "broken again")
    assert (answer.state, answer.tier_level, answer.assignee) == ("open", 3, None)
    assert answer.message == "reopened at L3 Engineering"

    status = await desk.status("re-3")
    assert status.created_at == created
    assert (status.tier_level, status.state, status.reopened) == (3, "open", 1)
    assert status.escalations == 2  # a reopen is not an escalation
    # Handling restarts: L3 gets a fresh first-response clock (1h) from the reopen.
    reopened = next(e for e in status.timeline if e.kind == "reopened")
    assert status.next_deadline.label == "L3 first-response warning"
    assert status.next_deadline.at - reopened.at == pytest.approx(45 * MIN, abs=MIN)
    entry = await eventually(lambda: [n for n in desk.notifier.sent if n.purpose == "reopened"])
    assert entry[0].tier.level == 3

    await desk.escalator.claim("re-3", actor("carol"))
    await desk.escalator.resolve("re-3", actor("carol"), "fixed the migration")
    await desk.after(2 * HOUR + MIN)  # the new window closes; the case completes
    outcome = await desk.escalator.outcome("re-3")
    assert (outcome.final_tier, outcome.reopened, outcome.escalations) == (3, 1, 2)
    # Measured from the original creation, which the reopen did not reset.
    assert outcome.seconds_to_resolution == pytest.approx(1.5 * 3600, abs=60)


async def test_lowering_severity_after_a_deescalation_neither_demotes_nor_promotes(desk: Desk):
    # P0 routes to L3; an admin hands the case down to L1; then the severity drops to
    # P2. P2's override names L2, but lowering must not move the case at all.
    await desk.start("sev-2", severity="P0")
    assert (await desk.status("sev-2")).tier_level == 3
    admin = actor("ann", role="admin")
    await desk.escalator.deescalate("sev-2", admin, "not an outage; L1 follows up", to_level=1)
    assert (await desk.status("sev-2")).tier_level == 1

    answer = await desk.escalator.set_severity("sev-2", admin, "P2")
    status = await desk.status("sev-2")
    assert (status.severity, status.tier_level) == ("P2", 1), answer.message
    assert answer.message == "severity P2"
    assert not [e for e in status.timeline if e.kind == "escalated"]


async def test_needs_review_search_attribute_is_set_after_ping_pong(desk: Desk):
    await desk.start("pp-2")
    # Published with the first workflow task, as false.
    await eventually(lambda: _needs_review_attribute_is(desk, "pp-2", False))
    admin = actor("ann", role="admin")
    await desk.escalator.escalate("pp-2", admin, NOTE)  # L1 -> L2
    await desk.escalator.deescalate("pp-2", admin, "back to L1")  # bounce 1
    assert await _needs_review_attribute_is(desk, "pp-2", False)
    await desk.escalator.escalate("pp-2", admin, NOTE)  # bounce 2 = max_bounces
    assert (await desk.status("pp-2")).needs_review
    await eventually(lambda: _needs_review_attribute_is(desk, "pp-2", True))


async def _needs_review_attribute_is(desk: Desk, case_id: str, expected: bool) -> bool:
    """Whether NeedsReview, as the server holds it, is `expected`. The raw describe
    RPC is used because the SDK's describe() decodes every attribute, and the
    time-skipping server returns the Datetime one (NextDeadline) in a shape the
    SDK cannot read back."""
    client = desk.env.client
    response = await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=client.namespace,
            execution=WorkflowExecution(workflow_id=workflow_id_for(case_id)),
        )
    )
    fields = response.workflow_execution_info.search_attributes.indexed_fields
    if NEEDS_REVIEW.name not in fields:
        return False
    return PayloadConverter.default.from_payload(fields[NEEDS_REVIEW.name], bool) is expected
