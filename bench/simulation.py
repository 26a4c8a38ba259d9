"""(g) Full three-tier, 7-day scenarios in the time-skipping test server.

Escalation L1 (48 h) → L2 (72 h) → L3 (final), claimed and resolved on day 7, for
Escalator and for the minimal workflow with the same stages. Activities are
stand-ins that record (no SMTP: the test server skips time, mail would not), and
each scenario runs alone, its result awaited before the next starts: gathering
many result() calls crashes the test server ("Unbalanced lock and unlock calls").
"""

from __future__ import annotations

import time
from datetime import timedelta

from temporalio import activity
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bench.harness import summary
from bench.minimal import MinimalEscalation
from bench.minimal_activities import RECORDED
from bench.sides import EscalatorSide, MinimalSide, Plan
from bench.worker import worker_options
from escalator.devstack.binaries import find_binary
from escalator.domain import names
from escalator.domain.assessment import (
    AssessmentRequest,
    AssessmentResult,
    Draft,
    DraftRequest,
    offline_assessment,
    offline_draft,
)
from escalator.domain.ledger import LedgerBatch, LedgerReceipt
from escalator.domain.models import DeliveryReceipt, Notification
from escalator.domain.search_attributes import indexed_types
from escalator.runtime.worker import build_workers, running

HOUR = 3600.0
PLAN = Plan(timeouts=(48 * HOUR, 72 * HOUR, None))
SCENARIO_LENGTH = timedelta(days=7)


@activity.defn(name=names.SEND_EMAIL)
async def send_email(notification: Notification) -> DeliveryReceipt:
    return DeliveryReceipt(
        message_id=notification.message_id, channel="email", accepted=notification.recipients
    )


@activity.defn(name=names.POST_WEBHOOK)
async def post_webhook(notification: Notification) -> DeliveryReceipt:
    return DeliveryReceipt(message_id=notification.message_id, channel="webhook")


@activity.defn(name=names.ASSESS_CASE)
async def assess_case(request: AssessmentRequest) -> AssessmentResult:
    return offline_assessment(request)


@activity.defn(name=names.DRAFT_FOR_AUDIENCE)
async def draft_for_audience(request: DraftRequest) -> Draft:
    return offline_draft(request)


@activity.defn(name=names.RECORD_TO_LEDGER)
async def record_to_ledger(batch: LedgerBatch) -> LedgerReceipt:
    return LedgerReceipt(events_written=len(batch.events), case_written=batch.case is not None)


async def _run_side(env: WorkflowEnvironment, side, count: int, check) -> dict:
    durations, failures = [], 0
    for number in range(count):
        case_id = f"sim-{number}"
        began = time.perf_counter()
        try:
            await side.start(case_id, PLAN)
            await env.sleep(SCENARIO_LENGTH)
            await side.claim(case_id)
            await side.resolve(case_id)
            failures += not check(await side.result(case_id))
        except Exception:  # one broken scenario must not hide the others' timings
            failures += 1
        durations.append(time.perf_counter() - began)
    stats = summary(durations)
    return {
        "scenarios": count,
        "total_s": round(sum(durations), 3),
        "mean_s": round(sum(durations) / count, 4),
        "first_s": round(durations[0], 4),
        "p50_s": round(stats["p50"], 4),
        "p95_s": round(stats["p95"], 4),
        "max_s": round(stats["max"], 4),
        "failures": failures,
    }


async def simulate(count: int, settings: dict) -> dict:
    boot = time.perf_counter()
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    boot = time.perf_counter() - boot
    options = worker_options({k: str(v) for k, v in settings.items()})
    try:
        # Unregistered search attributes make the time-skipping server hang.
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace, search_attributes=indexed_types()
            )
        )
        async with Worker(
            env.client,
            task_queue="sim-minimal",
            workflows=[MinimalEscalation],
            activities=RECORDED,
            **options,
        ):
            minimal = await _run_side(
                env,
                MinimalSide(env.client, "sim-minimal"),
                count,
                lambda result: result["escalations"] == 2,
            )
        async with running(
            build_workers(
                env.client,
                "sim-escalator",
                [send_email, post_webhook, assess_case, draft_for_audience, record_to_ledger],
                **options,
            )
        ):
            escalator = await _run_side(
                env,
                EscalatorSide(env.client, "sim-escalator"),
                count,
                lambda outcome: outcome.escalations == 2 and outcome.final_tier == 3,
            )
    finally:
        await env.shutdown()
    return {"boot_s": round(boot, 3), "escalator": escalator, "minimal": minimal}
