"""The AI assessment end to end: the real worker.py, the real Anthropic SDK over real
HTTP to a local stand-in of the Messages API, SMTP on loopback, the dev server.
"""

from __future__ import annotations

import pytest
import pytest_asyncio
from anthropic_standin import AnthropicStandIn
from support import MailSink, WorkerProcess, actor, eventually, free_port, unique_queue

from escalator.domain.policy import Policy
from starter import EscalatorClient

pytestmark = pytest.mark.integration

FIRST_RESPONSE = 2.0
POLICY = Policy.model_validate(
    {
        "name": "ai-seconds",
        "tiers": [
            {"level": 1, "name": "Front-Line Support", "team": "support-generalists",
             "notify": ["l1@example.com"],
             "sla": {"first_response": FIRST_RESPONSE, "resolution_target": 30}},
            {"level": 2, "name": "Specialist Support", "team": "support-specialists",
             "notify": ["l2@example.com"], "sla": {"first_response": 120, "resolution_target": 240}},
            {"level": 3, "name": "AI Agent", "team": "ai-representative", "kind": "ai",
             "notify": ["ai-desk@example.com"]},
        ],
    }
)  # fmt: skip


@pytest_asyncio.fixture(scope="module")
async def ai_stack(dev_env):
    standin = AnthropicStandIn()
    standin.start()
    sink = MailSink(free_port()).start()
    queue = unique_queue("ai")
    worker = WorkerProcess(
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=queue,
        smtp_port=sink.port,
        ANTHROPIC_API_KEY="test-key-not-real",
        ANTHROPIC_BASE_URL=standin.url,
        ESCALATOR_AI_TIMEOUT="2",
    ).start()
    yield EscalatorClient(dev_env.client, queue), standin, sink
    errors = worker.stop()
    sink.stop()
    standin.stop()
    # Expected failures log one line each; only the 401 (a real misconfiguration,
    # staged by one test) may carry a traceback.
    assert errors.count("Traceback") == errors.count("ApplicationError: AssessmentRejected"), errors
    assert "test-key-not-real" not in errors  # the API key is never logged


def requests_for(standin: AnthropicStandIn, case_id: str) -> list:
    return [r for r in standin.requests if f'\\"{case_id}\\"' in r.raw_body.decode()
            or f'"{case_id}"' in r.raw_body.decode()]  # fmt: skip


async def start(escalator: EscalatorClient, case_id: str) -> None:
    await escalator.start_case(
        {"case_id": case_id, "title": "Outlook fails to sync", "policy": POLICY,
         "description": "Sync stopped after the certificate change.",
         "customer": {"name": "Jane Roe", "email": "jane@acme.example"}}
    )  # fmt: skip


async def landed(escalator: EscalatorClient, case_id: str, count: int = 1):
    async def check():
        status = await escalator.status(case_id)
        kinds = [e.kind for e in status.timeline]
        return kinds.count("assessment") >= count and status

    return await eventually(check, within=60)


async def test_one_model_call_per_escalation_and_the_ai_stage_recommends(ai_stack):
    escalator, standin, sink = ai_stack
    standin.script.clear()
    await start(escalator, "ai-good")
    status = await landed(escalator, "ai-good")  # L1 → L2 after 2 s, assessed once
    assert status.assessment.source == "model" and status.assessment.model
    [follow_up] = await eventually(lambda: sink.with_purpose("ai-good", "assessment"), within=30)
    assert follow_up["Subject"].startswith("[Escalator] AI assessment for case ai-good")
    assert "l2@example.com" in follow_up["X-Envelope-To"]

    await escalator.escalate(
        "ai-good", actor("alice"), {"reason": "needs the AI agent", "steps_taken": ["triaged"]}
    )
    status = await landed(escalator, "ai-good", count=2)
    assert status.tier_name == "AI Agent" and status.state == "open"
    assert len(requests_for(standin, "ai-good")) == 2 == status.escalations
    body = requests_for(standin, "ai-good")[0].body
    assert body["tool_choice"] == {"type": "tool", "name": "record_assessment"}
    assert "jane@acme.example" not in str(body) and "Jane Roe" not in str(body)

    [to_stage] = await eventually(lambda: sink.with_purpose("ai-good", "ai_recommendation"))
    [to_customer] = await eventually(
        lambda: sink.with_purpose("ai-good", "customer_recommendation")
    )
    assert "ai-desk@example.com" in to_stage["X-Envelope-To"]
    assert "jane@acme.example" in to_customer["X-Envelope-To"]
    await escalator.resolve("ai-good", actor("bob"), "done")


async def test_a_hanging_model_never_delays_the_escalation(ai_stack):
    escalator, standin, sink = ai_stack
    standin.script.clear()
    standin.queue("hang")  # the first call hangs; the client gives up after 2 s
    await start(escalator, "ai-hang")
    l2_mail = await eventually(
        lambda: [m for m in sink.with_purpose("ai-hang", "tier_entry")
                 if "l2@example.com" in m["X-Envelope-To"]],
        within=30,
    )  # fmt: skip
    status = await escalator.status("ai-hang")
    escalated = next(e for e in status.timeline if e.kind == "escalated")
    late_by = (escalated.at - status.created_at).total_seconds() - FIRST_RESPONSE
    assert 0 <= late_by < 2.0, f"escalated {late_by:.2f}s late"
    assert l2_mail and not sink.with_purpose("ai-hang", "assessment")  # mail did not wait

    status = await landed(escalator, "ai-hang")  # retried after the hang, then accepted
    assert status.assessment.source == "model"
    assert [r.behaviour for r in requests_for(standin, "ai-hang")] == ["hang", "good"]
    await escalator.resolve("ai-hang", actor("bob"), "done")


async def test_401_is_not_retried_and_the_case_records_it(ai_stack):
    escalator, standin, _ = ai_stack
    standin.script.clear()
    standin.queue("error_401")
    await start(escalator, "ai-401")
    status = await landed(escalator, "ai-401")
    assert len(requests_for(standin, "ai-401")) == 1
    [unavailable] = [e for e in status.timeline if e.kind == "assessment_unavailable"]
    assert "401" in unavailable.detail or "authentication" in unavailable.detail.lower()
    assert status.assessment.source == "offline"  # labelled fallback
    await escalator.resolve("ai-401", actor("bob"), "done")


async def test_malformed_output_is_retried_then_accepted(ai_stack):
    escalator, standin, _ = ai_stack
    standin.script.clear()
    standin.queue("malformed", "good")
    await start(escalator, "ai-bad")
    status = await landed(escalator, "ai-bad")
    assert [r.behaviour for r in requests_for(standin, "ai-bad")] == ["malformed", "good"]
    assert status.assessment.source == "model"
    assert not [e for e in status.timeline if e.kind == "assessment_unavailable"]
    await escalator.resolve("ai-bad", actor("bob"), "done")


async def test_hung_model_calls_never_take_the_slots_mail_needs(dev_env, monkeypatch):
    """The case worker here has only 2 activity slots; 4 escalations whose model calls
    all hang. Were the model calls on the cases' queue, the first two would hold both
    slots and every later mail would wait for them; on the AI queue, mail flows."""
    from activities import ALL_ACTIVITIES
    from escalator.runtime.worker import build_workers, running

    standin = AnthropicStandIn()
    standin.default = "hang"
    standin.hang_seconds = 120.0
    standin.start()
    sink = MailSink(free_port()).start()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-not-real")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", standin.url)
    monkeypatch.setenv("ESCALATOR_AI_TIMEOUT", "60")  # the calls stay hung for the test
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(sink.port))
    queue = unique_queue("ai-slots")
    escalator = EscalatorClient(dev_env.client, queue)
    cases = [f"slots-{n}" for n in range(4)]
    workers = build_workers(dev_env.client, queue, ALL_ACTIVITIES, max_concurrent_activities=2)
    try:
        async with running(workers):
            for case_id in cases:
                await start(escalator, case_id)

            def every_escalation_mailed():
                return all(
                    any("l2@example.com" in m["X-Envelope-To"]
                        for m in sink.with_purpose(c, "tier_entry"))
                    and sink.with_purpose(c, "customer_escalation")
                    for c in cases
                )  # fmt: skip

            await eventually(every_escalation_mailed, within=30)
            # All four model calls were made and are still hanging: none has answered.
            assert all(requests_for(standin, c) for c in cases)
            for case_id in cases:
                status = await escalator.status(case_id)
                assert status.assessment is None and status.tier_level == 2
                await escalator.resolve(case_id, actor("bob", role="admin"), "done")
    finally:
        standin.stop()  # wakes the hung handlers, so the workers shut down promptly
        sink.stop()
