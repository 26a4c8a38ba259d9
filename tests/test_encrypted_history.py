"""Encrypted PII on the real dev server: the history Temporal stores holds no customer
data in clear, while the case works as usual for clients and workers with the keys.

Search attributes are never encrypted (`escalator/domain/search_attributes.py`); they carry
no customer data by design, so the staff user names below are not canaries.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
import pytest_asyncio
from google.protobuf.message import Message
from support import DEFAULT_POLICY, RecordingNotifier, actor, case_workers, eventually, unique_queue
from temporalio.api.history.v1 import History
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from escalator.adapters.codec import ENV_VAR, EncryptionCodec, data_converter, generate_key_entry
from escalator.devstack.binaries import find_binary
from escalator.domain import patches
from escalator.domain.models import CaseInput, workflow_id_for
from escalator.domain.search_attributes import ALL_KEYS
from starter import EscalatorClient
from workflows.escalation import (
    EscalationWorkflow,
)

pytestmark = pytest.mark.integration

TAG = uuid.uuid4().hex[:8]  # fresh per run, so a match can only come from this run
CUSTOMER_NAME = f"Zelda Quartermain {TAG}"
CUSTOMER_EMAIL = f"zelda.{TAG}@pii-canary.example"
DESCRIPTION = f"Canary {TAG}: the VPN client drops every ninety seconds at the Leeds office"
NOTE_TEXT = f"Canary note {TAG}: customer phoned from +44 7700 900123 with logs"
ESCALATION_REASON = f"Canary reason {TAG}: needs a backend trace"
RESOLUTION = f"Canary resolution {TAG}: rotated the tunnel certificate"
CANARIES = {
    "customer name": CUSTOMER_NAME,
    "customer email": CUSTOMER_EMAIL,
    "description": DESCRIPTION,
    "note text": NOTE_TEXT,
    "escalation reason": ESCALATION_REASON,
    "resolution summary": RESOLUTION,
}


def case_input(case_id: str) -> CaseInput:
    return CaseInput.model_validate(
        {
            "case_id": case_id,
            "title": "VPN drops for a customer",
            "severity": "P3",
            "description": DESCRIPTION,
            "customer": {"name": CUSTOMER_NAME, "email": CUSTOMER_EMAIL},
            "policy": DEFAULT_POLICY,
        }
    )


def stored_bytes(history) -> bytes:
    """The history as Temporal stores and serves it: serialized protos, payloads raw."""
    return History(events=history.events).SerializeToString()


PATCH_IDS = {
    patches.AI_TASK_QUEUE,
    patches.ASSESSMENT_NOT_CANCELLED,
    patches.CASE_INPUT_SIZE,
    patches.CASE_LEDGER,
    patches.DEADLINES_ALWAYS_TIMED,
    patches.POLICY_VERSION,
    patches.SEVERITY_RAISE_ONLY,
}


LOCAL_ACTIVITY_METADATA = {
    "seq",
    "attempt",
    "activity_id",
    "activity_type",
    "complete_time",
    "backoff",
    "original_schedule_time",
    "activation_index",
}


def local_activity_metadata(path: str, payload) -> bool:
    """sdk-core's own record of a local activity (id, type, attempt, times): nothing
    of the case, and written past the codec like the patch markers."""
    if not path.endswith("marker_recorded_event_attributes.details['data'].payloads[0]"):
        return False
    fields = json.loads(payload.data)
    return set(fields) <= LOCAL_ACTIVITY_METADATA and fields.get("activity_type") == (
        "record_to_ledger"
    )


def payloads_in(message: Message, path: str = ""):
    """Every Payload in a proto, with its path, except search attribute values
    (never encrypted by design)."""
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        where = f"{path}.{field.name}"
        if field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            items = value.items() if value_field.message_type is not None else ()
            children = [(f"{where}[{key!r}]", child) for key, child in items]
        elif _repeated(field):
            children = [(f"{where}[{i}]", child) for i, child in enumerate(value)]
        else:
            children = [(where, value)]
        for child_path, child in children:
            name = child.DESCRIPTOR.full_name
            if name == "temporal.api.common.v1.Payload":
                yield child_path, child
            elif name != "temporal.api.common.v1.SearchAttributes":
                yield from payloads_in(child, child_path)


def _repeated(field) -> bool:
    # protobuf 6+ spells it `is_repeated`; `label` is deprecated there and gone in 7.
    flag = getattr(field, "is_repeated", None)
    return flag if flag is not None else field.label == field.LABEL_REPEATED


def leaks(raw: bytes, text: str) -> list[str]:
    """Which canaries appear in `raw` or, for good measure, in its JSON form."""
    return [name for name, canary in CANARIES.items() if canary.encode() in raw or canary in text]


@pytest_asyncio.fixture(scope="module")
async def encrypted():
    """A dev server of our own whose client, and so the worker, encrypts."""
    converter = data_converter({ENV_VAR: generate_key_entry(f"it-{TAG}")})
    assert isinstance(converter.payload_codec, EncryptionCodec)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        data_converter=converter,
        search_attributes=ALL_KEYS,
        dev_server_log_level="error",
    )
    # The same server, seen by a client without the codec (what the server stores).
    plain = await Client.connect(
        env.client.service_client.config.target_host,
        namespace=env.client.namespace,
        data_converter=pydantic_data_converter,
    )
    notifier = RecordingNotifier()
    queue = unique_queue("encrypted")
    async with case_workers(
        env.client,  # the worker uses its client's (encrypting) converter
        queue,
        notifier.activities,
    ):
        yield plain, EscalatorClient(env.client, queue), notifier, converter
    await env.shutdown()


async def test_history_holds_no_customer_data_in_clear_and_the_case_still_works(encrypted):
    plain, escalator, notifier, converter = encrypted
    case_id = f"enc-{TAG}"
    agent = actor("agent-ana")

    await escalator.start_case(case_input(case_id))
    claimed = await escalator.claim(case_id, agent)  # an update
    assert claimed is not None and claimed.assignee == "agent-ana", claimed
    await escalator.add_note(case_id, agent, NOTE_TEXT, wait=False)  # a signal

    status = await eventually(
        lambda: _status_with_note(escalator, case_id), within=15
    )  # a query, answered and read through the codec
    assert status.assignee == "agent-ana"
    assert [n.text for n in status.notes] == [NOTE_TEXT]

    # An escalation sends the customer a notification (the email is an activity
    # input) and asks for an assessment of the description (another one).
    await escalator.escalate(
        case_id, agent, {"reason": ESCALATION_REASON, "steps_taken": ["restarted the client"]}
    )
    await eventually(lambda: any(CUSTOMER_EMAIL in n.recipients for n in notifier.sent))
    await eventually(lambda: any(r.case_id == case_id for r in notifier.assessments))
    assert any(n.case.customer_name == CUSTOMER_NAME for n in notifier.sent)

    # A client without the keys sees only ciphertext in query answers too.
    handle = plain.get_workflow_handle(workflow_id_for(case_id))
    with pytest.raises(Exception, match="binary/encrypted"):
        await handle.query(EscalationWorkflow.status)

    await escalator.resolve(case_id, agent, RESOLUTION)
    outcome = await escalator.outcome(case_id)
    assert outcome.case_id == case_id

    history = await handle.fetch_history()
    raw = stored_bytes(history)
    assert leaks(raw, history.to_json()) == []

    # ... because every payload in it is encrypted under our key id.
    started = history.events[0].workflow_execution_started_event_attributes
    [case_payload] = started.input.payloads
    assert case_payload.metadata["encoding"] == b"binary/encrypted"
    assert case_payload.metadata["encryption-key-id"] == f"it-{TAG}".encode()
    payloads = list(payloads_in(History(events=history.events)))
    assert len(payloads) >= 10  # input, summary, update, signal, activities, result...
    kinds = {re.sub(r"\[\d+\]", "", path).split(".")[2] for path, _ in payloads}
    assert {
        "workflow_execution_started_event_attributes",  # the case
        "user_metadata",  # the Web UI summary and details
        "workflow_execution_update_accepted_event_attributes",  # claim, escalate, resolve
        "workflow_execution_update_completed_event_attributes",
        "workflow_execution_signaled_event_attributes",  # the note
        "activity_task_scheduled_event_attributes",  # notifications, assessment
        "activity_task_completed_event_attributes",
        "workflow_execution_completed_event_attributes",  # the outcome
    } <= kinds
    clear = [(path, p) for path, p in payloads if p.metadata.get("encoding") != b"binary/encrypted"]
    # The one exception is the SDK's own patch markers (workflow.patched), which it
    # writes past the codec: they hold the patch id and nothing of the case.
    patch_ids = {json.loads(p.data)["id"] for path, p in clear if "['patch-data']" in path}
    assert patch_ids <= PATCH_IDS, patch_ids
    # No other payload escaped the codec (search attributes are not payloads here),
    # but for the metadata of a local activity's marker, also the SDK's own: when
    # the case's last task took no update, the closing ledger batch is a local
    # activity (workflows/escalation.py), whose result is encrypted like any other.
    assert [
        path
        for path, p in clear
        if "['patch-data']" not in path and not local_activity_metadata(path, p)
    ] == []
    # The keys read the stored history back exactly.
    [stored_case] = await converter.decode(started.input.payloads, [CaseInput])
    assert stored_case.customer.email == CUSTOMER_EMAIL
    assert stored_case.description == DESCRIPTION


async def test_the_history_check_finds_customer_data_written_without_encryption(encrypted):
    """The control: the same check on a case a plain client started does see the PII."""
    plain, *_ = encrypted
    handle = await plain.start_workflow(
        EscalationWorkflow.run,
        case_input(f"plain-{TAG}"),
        id=workflow_id_for(f"plain-{TAG}"),
        task_queue=unique_queue("nobody-polls"),
    )
    try:
        history = await handle.fetch_history()
        raw = stored_bytes(history)
        assert {"customer name", "customer email", "description"} <= set(
            leaks(raw, history.to_json())
        )
        assert b"binary/encrypted" not in raw
        encodings = {p.metadata["encoding"] for _, p in payloads_in(History(events=history.events))}
        assert b"json/plain" in encodings
    finally:
        await handle.terminate("control case")


async def _status_with_note(escalator: EscalatorClient, case_id: str):
    status = await escalator.status(case_id)
    return status if status.notes else None
