"""The worst case the bounds allow: payload sizes against Temporal's limits.

    python -m bench.payload_bounds             # about a minute on 2 CPUs
    python -m bench.payload_bounds --notes 200 # fewer max-size notes

Runs one hostile case on the real dev server with the real workflow: every text
field at its limit and made of control characters (each one six bytes as JSON,
the worst expansion there is), then --notes max-size notes, a burst of escalations
and de-escalations up to the ping-pong guard, and reopens up to their limit. It
reads the history back and prints:

- the largest single payload (activity input, continue-as-new input, result) and
  the most payload one workflow task sent, against the 2 MiB payload and 4 MiB
  gRPC limits;
- the largest `status` answer seen;
- the history size of every run, and in all.

Sizes, not times: the figures are the same on any machine. docs/reliability.md
("Bounded state") records them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from temporalio import activity
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.common import RawValue
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from escalator.devstack.binaries import find_binary
from escalator.domain import limits, names
from escalator.domain.assessment import AssessmentRequest, AssessmentResult, offline_assessment
from escalator.domain.ledger import LedgerBatch, LedgerReceipt
from escalator.domain.models import (
    MAX_CASE_INPUT_BYTES,
    Actor,
    AddNoteRequest,
    CaseInput,
    DeescalateRequest,
    DeliveryReceipt,
    EscalateRequest,
    Notification,
    ReopenRequest,
    ResolveRequest,
)
from escalator.domain.policy import Policy
from escalator.domain.search_attributes import ALL_KEYS
from escalator.runtime.worker import build_workers, running

PAYLOAD_LIMIT = 2 * 1024 * 1024
GRPC_LIMIT = 4 * 1024 * 1024
HOSTILE = "\x01"  # six bytes as JSON: \u0001


def _text(chars: int) -> str:
    return HOSTILE * chars


def _policy() -> Policy:
    tier = {"notify": ["l@example.com"], "webhook": "https://hooks.example/escalator"}
    sla = {"first_response": "1h", "resolution_target": "2h"}
    return Policy.model_validate(
        {
            "name": "worst",
            "reopen_window": "1d",
            "max_bounces": 3,
            "tiers": [
                {"level": 1, "name": "L1", "team": "one", "sla": sla, **tier},
                {"level": 2, "name": "L2", "team": "two", "sla": sla, **tier},
                {"level": 3, "name": "L3", "team": "three", **tier},
            ],
        }
    )


def _case(case_id: str) -> CaseInput:
    case = CaseInput(
        case_id=case_id,
        title=_text(limits.MAX_TITLE_CHARS),
        description="",
        customer={"name": _text(200), "email": "jane@example.com"},
        data={"log": _text(limits.MAX_DATA_BYTES // 6 - 20)},
        policy=_policy(),
    )
    # The longest description the whole-input bound still lets through.
    room = MAX_CASE_INPUT_BYTES - len(case.model_dump_json()) - 16
    return case.model_copy(update={"description": _text(room // 6)})


def _escalation_note() -> dict:
    item = _text(limits.MAX_NOTE_ITEM_CHARS)
    return {
        "reason": _text(limits.MAX_REASON_CHARS),
        "steps_taken": [item] * limits.MAX_NOTE_ITEMS,
        "symptoms": [item] * limits.MAX_NOTE_ITEMS,
        "customer_impact": _text(limits.MAX_REASON_CHARS),
        "suggested_next_step": _text(limits.MAX_REASON_CHARS),
    }


def _activities():
    @activity.defn(name=names.SEND_EMAIL)
    async def send_email(notification: Notification) -> DeliveryReceipt:
        return DeliveryReceipt(message_id=notification.message_id, channel="email")

    @activity.defn(name=names.POST_WEBHOOK)
    async def post_webhook(notification: Notification) -> DeliveryReceipt:
        return DeliveryReceipt(message_id=notification.message_id, channel="webhook")

    @activity.defn(name=names.ASSESS_CASE)
    async def assess_case(request: AssessmentRequest) -> AssessmentResult:
        return offline_assessment(request)

    @activity.defn(name=names.RECORD_TO_LEDGER)
    async def record_to_ledger(batch: LedgerBatch) -> LedgerReceipt:
        return LedgerReceipt(events_written=len(batch.events), case_written=batch.case is not None)

    return [send_email, post_webhook, assess_case, record_to_ledger]


def _sizes(history) -> tuple[int, int]:
    largest, per_task = 0, [0]
    for event in history.events:
        if event.HasField("workflow_task_completed_event_attributes"):
            per_task.append(0)
        for name, field in (
            ("activity_task_scheduled_event_attributes", "input"),
            ("workflow_execution_continued_as_new_event_attributes", "input"),
            ("workflow_execution_completed_event_attributes", "result"),
        ):
            if event.HasField(name):
                for payload in getattr(getattr(event, name), field).payloads:
                    largest = max(largest, payload.ByteSize())
                    per_task[-1] += payload.ByteSize()
    return largest, max(per_task)


async def measure(notes: int) -> dict:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=ALL_KEYS,
        dev_server_log_level="error",
    )
    client, queue = env.client, "payload-bounds"
    engineer = Actor(user=_text(200), role="engineer")
    admin = Actor(user="root", role="admin")
    largest_status = 0
    try:
        async with running(build_workers(client, queue, _activities())):
            case = _case("worst")
            handle = await client.start_workflow(
                names.WORKFLOW_TYPE, case, id="case-worst", task_queue=queue
            )

            async def status_size() -> int:
                raw = await handle.query("status", result_type=RawValue)
                return raw.payload.ByteSize()

            text = _text(limits.MAX_NOTE_BYTES)
            for start in range(0, notes, 50):
                batch = min(50, notes - start)
                note = AddNoteRequest(actor=engineer, text=text)
                await asyncio.gather(*(handle.signal("add_note", note) for _ in range(batch)))
                largest_status = max(largest_status, await status_size())
            # A burst in one go: up and down until the ping-pong guard stops it.
            up = EscalateRequest(actor=engineer, note=_escalation_note())
            down = DeescalateRequest(actor=engineer, reason=_text(limits.MAX_REASON_CHARS))
            for _ in range(4):
                await handle.signal("escalate", up)
                await handle.signal("escalate", up)
                await handle.signal("deescalate", down)
            for _ in range(limits.MAX_REOPENS + 1):
                await handle.signal("resolve", ResolveRequest(actor=admin, summary=_text(4000)))
                reason = _text(limits.MAX_REASON_CHARS)
                await handle.signal("reopen", ReopenRequest(actor=admin, reason=reason))
            await asyncio.sleep(3)
            largest_status = max(largest_status, await status_size())
            await handle.signal("resolve", ResolveRequest(actor=admin, summary="done"))
            with contextlib.suppress(Exception):
                await asyncio.wait_for(handle.result(), 60)

        runs, largest, per_task, history_bytes = 0, 0, 0, []
        async for execution in client.list_workflows("WorkflowId = 'case-worst'"):
            runs += 1
            history = await client.get_workflow_handle(
                execution.id, run_id=execution.run_id
            ).fetch_history()
            big, task = _sizes(history)
            largest, per_task = max(largest, big), max(per_task, task)
            described = await client.workflow_service.describe_workflow_execution(
                DescribeWorkflowExecutionRequest(
                    namespace=client.namespace, execution={"workflow_id": execution.id,
                                                           "run_id": execution.run_id}
                )
            )  # fmt: skip
            history_bytes.append(described.workflow_execution_info.history_size_bytes)
        return {
            "notes": notes,
            "runs": runs,
            "largest_payload": largest,
            "largest_task_payloads": per_task,
            "largest_status": largest_status,
            "history_bytes": history_bytes,
        }
    finally:
        await env.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=1000)
    figures = asyncio.run(measure(parser.parse_args().notes))
    mib = 1024 * 1024
    print(f"max-size notes accepted:        {figures['notes']}")
    print(f"runs (continue-as-new):         {figures['runs']}")
    print(
        f"largest payload:                {figures['largest_payload'] / mib:.3f} MiB "
        f"({figures['largest_payload'] / PAYLOAD_LIMIT:.0%} of the 2 MiB limit)"
    )
    print(
        f"most payload in one task:       {figures['largest_task_payloads'] / mib:.3f} MiB "
        f"({figures['largest_task_payloads'] / GRPC_LIMIT:.0%} of the 4 MiB gRPC limit)"
    )
    print(
        f"largest status answer:          {figures['largest_status'] / mib:.3f} MiB "
        f"({figures['largest_status'] / PAYLOAD_LIMIT:.0%} of 2 MiB)"
    )
    sizes = ", ".join(f"{b / mib:.1f}" for b in figures["history_bytes"])
    total = sum(figures["history_bytes"]) / mib
    print(f"history per run (MiB):          {sizes}; in all {total:.1f} MiB")


if __name__ == "__main__":
    main()
