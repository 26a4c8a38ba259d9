"""ESCALATOR_REQUIRE_ENCRYPTION on a real (time-skipping) Temporal server: someone with
access to the namespace but not the keys starts a case, signals and updates it with
plaintext payloads, through a raw temporalio client without the codec. The worker
refuses each at once, in one line, and nothing is retried for ever."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from support import DEFAULT_POLICY, RecordingNotifier, actor, case_workers, eventually, unique_queue
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError

from escalator.adapters.codec import ENV_VAR, REQUIRE_ENV_VAR, data_converter, generate_key_entry
from escalator.domain.models import CaseInput, workflow_id_for
from escalator.domain.names import ACTION_REFUSED, INVALID_CASE_INPUT
from starter import EscalatorClient
from workflows.escalation import EscalationWorkflow

TAG = uuid.uuid4().hex[:8]


def case_input(case_id: str) -> CaseInput:
    return CaseInput.model_validate(
        {"case_id": case_id, "title": "VPN drops", "severity": "P3", "policy": DEFAULT_POLICY}
    )


@pytest.fixture
async def requiring(ts_env):
    """A worker (and a client) that encrypt and require encryption, and a plain client."""
    converter = data_converter({ENV_VAR: generate_key_entry(f"req-{TAG}"), REQUIRE_ENV_VAR: "true"})
    assert converter.payload_codec.require_encryption
    keyed = Client(
        ts_env.client.service_client, namespace=ts_env.client.namespace, data_converter=converter
    )
    queue = unique_queue("require-encryption")
    async with case_workers(keyed, queue, RecordingNotifier().activities):
        yield keyed, ts_env.client, queue


async def workflow_task_failures(handle) -> int:
    history = await handle.fetch_history()
    return sum(e.HasField("workflow_task_failed_event_attributes") for e in history.events)


async def test_a_plaintext_case_input_fails_the_case_at_once(requiring):
    keyed, plain, queue = requiring
    case_id = f"plain-input-{TAG}"
    handle = await plain.start_workflow(
        EscalationWorkflow.run,
        case_input(case_id),
        id=workflow_id_for(case_id),
        task_queue=queue,
    )
    # Read through the keys: the worker encrypts the failure too.
    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(keyed.get_workflow_handle(handle.id).result(), timeout=20)
    cause = failed.value.cause
    assert getattr(cause, "type", None) == INVALID_CASE_INPUT, cause
    assert "\n" not in str(cause)
    # The marker's field is the one named (exact once workflows/payloads.py asks
    # escalator.domain.payload_refusal.refusal first).
    assert "ESCALATOR_REQUIRE_ENCRYPTION" in str(cause), cause
    # Failed at the first workflow task: not a task failure retried for ever.
    assert await workflow_task_failures(handle) == 0


async def test_plaintext_signals_and_updates_are_refused_and_the_case_goes_on(requiring):
    keyed, plain, queue = requiring
    case_id = f"plain-messages-{TAG}"
    escalator = EscalatorClient(keyed, queue)
    await escalator.start_case(case_input(case_id))
    before = await escalator.status(case_id)
    raw = plain.get_workflow_handle(workflow_id_for(case_id))

    # An update is rejected before anything is written.
    with pytest.raises(WorkflowUpdateFailedError) as rejected:
        await raw.execute_update("try_claim", {"actor": {"user": "mallory", "role": "admin"}})
    # (The plain client cannot read the reason: the worker encrypted it.)
    assert getattr(rejected.value.cause, "type", None) == ACTION_REFUSED
    # A signal is recorded as refused, with nothing of its content.
    await raw.signal("claim", {"actor": {"user": "mallory", "role": "admin"}})

    async def refused():
        status = await escalator.status(case_id)
        return status if len(status.timeline) > len(before.timeline) else None

    after = await eventually(refused, within=15)
    entry = after.timeline[-1]
    assert "claim refused: malformed payload" in entry.detail
    assert "mallory" not in entry.detail and entry.actor is None
    assert after.assignee is None
    # The case still works for clients with the keys.
    claimed = await escalator.claim(case_id, actor("agent-ana"))
    assert claimed.assignee == "agent-ana"
    assert await workflow_task_failures(raw) == 0
    await escalator.resolve(case_id, actor("agent-ana"), "done")
    # Closed before its worker goes: a case left mid-task would hold the shared
    # time-skipping server's clock for the tests after this one.
    await escalator.outcome(case_id)
