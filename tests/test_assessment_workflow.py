"""The AI assessment inside the case's life (time-skipping server, stand-in activities).

The real SDK path (one HTTP call, error mapping, hangs) is covered against the
Messages API stand-in in test_assessment.py and test_integration_ai.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import pytest_asyncio
from support import (
    DEFAULT_POLICY,
    HOUR,
    Desk,
    RecordingNotifier,
    actor,
    case_workers,
    eventually,
    unique_queue,
)
from temporalio.exceptions import ApplicationError

from escalator.domain.assessment import offline_assessment
from examples.veterans_benefits import benefits_case
from starter import ActionRefused, EscalatorClient

NOTE = {"reason": "needs backend access", "steps_taken": ["re-uploaded cert"]}


async def assessed(desk: Desk, case_id: str, count: int = 1):
    def landed(status):
        kinds = [e.kind for e in status.timeline]
        return kinds.count("assessment") >= count and status

    return await eventually(lambda: _then(desk.status(case_id), landed))


async def _then(awaitable, check):
    return check(await awaitable)


async def test_each_escalation_gets_one_assessment_after_its_mail(desk: Desk):
    await desk.start("ai-1", customer={"name": "Jane", "email": "jane@acme.example"})
    await desk.escalator.escalate("ai-1", actor("alice"), NOTE)
    status = await assessed(desk, "ai-1")

    assert len(desk.notifier.assessments) == 1  # exactly one model call per escalation
    request = desk.notifier.assessments[0]
    assert (request.tier.level, request.purpose) == (2, "escalation")
    assert request.escalations[-1].note.reason == "needs backend access"
    assert status.assessment is not None and status.assessment.source == "offline"
    assert status.assessment.suggested_steps

    await eventually(lambda: ("assessment", 2) in desk.notifier.purposes("ai-1"))
    purposes = [n.purpose for n in desk.notifier.sent if n.case.case_id == "ai-1"]
    # The escalation mail was started before the assessment, which only follows it.
    assert purposes.index("tier_entry", 1) < purposes.index("assessment")
    follow_up = next(n for n in desk.notifier.sent if n.purpose == "assessment")
    assert follow_up.recipients == ("l2@example.com",)
    assert follow_up.assessment == status.assessment

    # A second escalation is assessed again, once.
    await desk.after(2 * HOUR + timedelta(seconds=1))  # L2 first response breached
    await assessed(desk, "ai-1", count=2)
    assert [r.tier.level for r in desk.notifier.assessments] == [2, 3]


@pytest_asyncio.fixture
async def failing_desk(ts_env):
    def reject(_request):
        return ApplicationError("401 invalid key", type="AssessmentRejected", non_retryable=True)

    notifier = RecordingNotifier(assessor=reject)
    queue = unique_queue()
    async with case_workers(
        ts_env.client,
        queue,
        notifier.activities,
    ):  # fmt: skip
        desk = Desk(ts_env, EscalatorClient(ts_env.client, queue), notifier)
        yield desk
        await desk.close_open_cases()


async def test_unavailable_assessment_is_recorded_and_the_offline_one_is_labelled(failing_desk):
    desk = failing_desk
    await desk.start("ai-2")
    await desk.after(4 * HOUR + timedelta(seconds=1))
    status = await assessed(desk, "ai-2")
    assert len(desk.notifier.assessments) == 1  # non-retryable: tried once
    unavailable = [e for e in status.timeline if e.kind == "assessment_unavailable"]
    assert len(unavailable) == 1 and "401 invalid key" in unavailable[0].detail
    assert status.assessment.source == "offline" and status.assessment.model is None
    assert status.tier_level == 2  # the case moved on regardless


async def test_ai_stage_mails_its_recommendation_to_the_stage_and_the_customer(desk: Desk):
    await desk.start_case(benefits_case("vet-ai"))
    await desk.after(timedelta(hours=120, seconds=1))  # helpdesk 48h + supervisor 72h
    status = await assessed(desk, "vet-ai", count=2)
    assert (status.tier_name, status.state) == ("ai_agent", "open")  # a human still resolves
    assert [r.purpose for r in desk.notifier.assessments] == ["escalation", "ai_stage"]

    def recommendation_mails():
        wanted = {"ai_recommendation", "customer_recommendation"}
        return [n for n in desk.notifier.sent if n.purpose in wanted]

    await eventually(lambda: len(recommendation_mails()) == 2)
    by_purpose = {n.purpose: n for n in recommendation_mails()}
    assert by_purpose["ai_recommendation"].recipients == ("ai-desk@va.example",)
    assert by_purpose["customer_recommendation"].recipients == ("applicant@example.org",)
    assert by_purpose["customer_recommendation"].assessment == status.assessment

    await desk.escalator.resolve("vet-ai", actor("case-officer"), "payment reissued")
    outcome = await desk.escalator.outcome("vet-ai")
    assert outcome.final_tier == 3


async def test_drafts_reword_the_saved_assessment_and_never_reassess(desk: Desk):
    await desk.start("ai-3", customer={"name": "Jane", "email": "jane@acme.example"})
    with pytest.raises(ActionRefused, match="no AI assessment yet"):
        await desk.escalator.draft("ai-3", actor("victor", role="viewer"), "client_update")

    await desk.escalator.escalate("ai-3", actor("alice"), NOTE)
    await assessed(desk, "ai-3")
    calls = len(desk.notifier.assessments)
    drafts = {}
    for audience in ("ticket_notes", "client_update", "email_draft"):
        draft = await desk.escalator.draft("ai-3", actor("victor", role="viewer"), audience)
        assert (draft.audience, draft.source) == (audience, "offline")
        drafts[audience] = draft.text
    assert len(set(drafts.values())) == 3  # a different wording per audience
    assert "support-specialists" not in drafts["client_update"]  # no internal team names
    assert len(desk.notifier.assessments) == calls  # no new assessment
    with pytest.raises(ActionRefused, match="another account"):
        await desk.escalator.draft("ai-3", actor("eve", account="other"), "client_update")


async def test_briefing_shows_the_assessment_and_its_steps(desk: Desk):
    await desk.start("ai-4", policy=DEFAULT_POLICY)
    await desk.escalator.escalate("ai-4", actor("alice"), NOTE)
    status = await assessed(desk, "ai-4")
    from escalator.domain.briefing import render_briefing

    briefing = render_briefing(status)
    assert "### AI assessment (low confidence, offline heuristic)" in briefing
    start_here = briefing.split("### Start here", 1)[1]
    first_step = status.assessment.suggested_steps[0]
    assert start_here.lstrip().startswith("1. ") and first_step.split()[0] in start_here


def test_offline_stand_in_is_the_real_offline_assessor():
    # The recorder answers with escalator.domain.assessment.offline_assessment itself.
    assert RecordingNotifier().assessor is offline_assessment
