"""A flood of max-size notes cannot wedge a case (real dev server, worker.py, SMTP).

Before the bounds, 150 notes of 16 KiB made every workflow task fail with
PayloadsTooLarge: each notification carried every note. Now a customer sends 200,
and the case still escalates on time, mails L2, and answers `status`; the largest
payload its history holds stays far below Temporal's 2 MiB limit.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import pytest_asyncio
from support import (
    MailSink,
    WorkerProcess,
    actor,
    eventually,
    free_port,
    seconds_policy,
    unique_queue,
)

from escalator.domain import limits
from escalator.domain.models import AddNoteRequest
from starter import EscalatorClient

pytestmark = pytest.mark.integration

FIRST_RESPONSE = 12.0
NOTES = 200
PAYLOAD_LIMIT = 2 * 1024 * 1024
GRPC_LIMIT = 4 * 1024 * 1024


@pytest_asyncio.fixture(scope="module")
async def stack(dev_env):
    sink = MailSink(free_port()).start()
    queue = unique_queue("flood")
    worker = WorkerProcess(
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=queue,
        smtp_port=sink.port,
    ).start()
    yield EscalatorClient(dev_env.client, queue), sink
    errors = worker.stop()
    sink.stop()
    assert "Traceback" not in errors, errors


def payload_sizes(history) -> tuple[int, int]:
    """(largest single payload, largest set of payloads one workflow task sent)."""
    largest = 0
    per_task = [0]
    for event in history.events:
        if event.HasField("workflow_task_completed_event_attributes"):
            per_task.append(0)  # the events after it are that task's commands
        for payloads in _payloads_of(event):
            size = sum(p.ByteSize() for p in payloads)
            largest = max(largest, *(p.ByteSize() for p in payloads))
            per_task[-1] += size
    return largest, max(per_task)


def _payloads_of(event):
    for attributes in (
        "activity_task_scheduled_event_attributes",
        "workflow_execution_continued_as_new_event_attributes",
        "workflow_execution_completed_event_attributes",
    ):
        if event.HasField(attributes):
            owner = getattr(event, attributes)
            field = "result" if attributes.startswith("workflow_execution_completed") else "input"
            yield getattr(owner, field).payloads


async def test_200_max_size_notes_from_a_customer_do_not_wedge_the_case(stack):
    escalator, sink = stack
    customer = actor("jane", role="customer")
    await escalator.start_case(
        {
            "case_id": "flood-1",
            "title": "chatty customer",
            "customer": {"name": "Jane", "email": "jane@acme.example"},
            "policy": seconds_policy(first_response=FIRST_RESPONSE, resolution=60),
        }
    )
    handle = escalator.client.get_workflow_handle("case-flood-1")
    note = "n" * limits.MAX_NOTE_BYTES
    for _ in range(NOTES // 50):  # 50 signals in flight at a time, as fast as they go
        await asyncio.gather(
            *(
                handle.signal("add_note", AddNoteRequest(actor=customer, text=note))
                for _ in range(50)
            )
        )

    status = await eventually(
        lambda: _when(escalator.status("flood-1"), lambda s: s.tier_level == 2),
        within=FIRST_RESPONSE + 20,
    )
    # The first-response breach escalated on time, whatever the flood did.
    deadline = status.created_at + timedelta(seconds=FIRST_RESPONSE)
    lateness = (status.last_escalation.at - deadline).total_seconds()
    assert 0 <= lateness < 2, lateness
    assert status.notes_total == NOTES
    assert len(status.notes) == limits.STATUS_NOTES
    [l2] = await eventually(
        lambda: sink.with_purpose("flood-1", "tier_entry")[1:] or None, within=20
    )
    assert "l2@example.com" in l2["X-Envelope-To"]

    largest, per_task = payload_sizes(await handle.fetch_history())
    assert largest < PAYLOAD_LIMIT / 4, largest
    assert per_task < GRPC_LIMIT / 2, per_task
    answer = len(status.model_dump_json())
    assert answer < PAYLOAD_LIMIT / 4, answer
    print(f"largest payload {largest} B; one task sent {per_task} B; status {answer} B")


async def _when(awaitable, predicate):
    value = await awaitable
    return value if predicate(value) else None
