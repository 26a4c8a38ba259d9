"""No input can wedge a case (real dev server).

- A raw Temporal start with an input that is not a case fails the workflow at once,
  with a one-line `InvalidCaseInput`, instead of failing its task forever. Tried
  with the Python SDK's plain client and with the `temporal` CLI.
- Every list a client can grow is bounded: over a limit an update is refused with
  a line naming the field and a signal leaves a `rejected` entry; what leaves the
  case (notifications, the assessment, `status`) carries the newest entries and
  totals; a run continues as new on its history size.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid

import pytest
import pytest_asyncio
from support import RecordingNotifier, actor, case_workers, eventually, seconds_policy, unique_queue
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer

from escalator.devstack.binaries import find_binary
from escalator.domain import limits
from escalator.domain.errors import InvalidInput
from escalator.domain.models import AddNoteRequest, EscalateRequest, EscalationNote
from starter import ActionRefused, EscalatorClient
from workflows.escalation import EscalationWorkflow

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def desk(dev_env):
    notifier = RecordingNotifier()
    queue = unique_queue("bounded")
    # No workflow_failure_exception_types: a bad input must fail the *workflow*
    # by itself, not by a test option that turns task failures into failures.
    async with case_workers(dev_env.client, queue, notifier.activities):
        yield EscalatorClient(dev_env.client, queue), notifier


def a_case(case_id: str, **fields) -> dict:
    policy = seconds_policy(first_response=60, resolution=120).model_dump(mode="json")
    return {"case_id": case_id, "title": "printer on fire", "policy": policy, **fields}


def _non_final_tier_without_sla() -> dict:
    case = a_case("raw-sla")
    del case["policy"]["tiers"][0]["sla"]
    return case


RAW_INPUTS = {
    "non-final tier without sla": (
        [_non_final_tier_without_sla()],
        "case: policy.tiers: tier 1 (Front-Line Support) needs an sla",
    ),
    "unknown field": ([{**a_case("raw-unknown"), "colour": "red"}], "case: colour: unknown field"),
    "wrong type": ([{**a_case("raw-type"), "title": 5}], "case: title:"),
    "not an object": (["just a string"], "case:"),
    "no argument": ([], "case: expected one argument (a CaseInput), got 0"),
    "two arguments": (
        [a_case("raw-two"), a_case("raw-two")],
        "case: expected one argument (a CaseInput), got 2",
    ),
    # What a continue-as-new hands the next run goes through the same decoding.
    "undecodable carried state": (
        [{**a_case("raw-carried"), "carried": {"tier_level": "two"}}],
        "case: carried.",
    ),
    "oversized data": (
        [a_case("raw-big", data={"log": "x" * (limits.MAX_DATA_BYTES + 1)})],
        "case: data: is ",
    ),
}


async def _failure_of(handle) -> ApplicationError:
    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(handle.result(), timeout=20)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError), cause
    return cause


async def _task_failures(handle) -> int:
    history = await handle.fetch_history()
    return sum(e.HasField("workflow_task_failed_event_attributes") for e in history.events)


@pytest.mark.parametrize("name", list(RAW_INPUTS))
async def test_a_raw_start_with_a_bad_input_fails_the_case_at_once(desk, name):
    escalator, _ = desk
    args, expected = RAW_INPUTS[name]
    handle = await escalator.client.start_workflow(
        "EscalationWorkflow",
        args=args,
        id=f"raw-{uuid.uuid4().hex[:8]}",
        task_queue=escalator.task_queue,
    )
    failure = await _failure_of(handle)
    assert failure.type == "InvalidCaseInput"
    assert failure.non_retryable
    assert failure.message.startswith(expected), failure.message
    assert "\n" not in failure.message
    assert await _task_failures(handle) == 0  # failed in its first task, never retried


async def test_the_temporal_cli_start_with_an_invalid_policy_fails_the_case(desk, dev_env):
    escalator, _ = desk
    workflow_id = f"cli-{uuid.uuid4().hex[:8]}"
    completed = await asyncio.to_thread(
        subprocess.run,
        [
            find_binary("temporal"),
            "workflow",
            "start",
            "--address",
            dev_env.client.service_client.config.target_host,
            "--type",
            "EscalationWorkflow",
            "--task-queue",
            escalator.task_queue,
            "--workflow-id",
            workflow_id,
            "--input",
            json.dumps(_non_final_tier_without_sla()),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert completed.returncode == 0, completed.stderr
    handle = escalator.client.get_workflow_handle(workflow_id)
    failure = await _failure_of(handle)
    assert failure.type == "InvalidCaseInput"
    assert failure.message.startswith("case: policy.tiers: tier 1"), failure.message
    assert "(tiers[0].sla)" in failure.message
    assert await _task_failures(handle) == 0


async def test_messages_to_a_case_that_failed_its_input_are_refused_not_wedging(desk):
    escalator, _ = desk
    handle = await escalator.client.start_workflow(
        "EscalationWorkflow",
        {"case_id": "x"},
        id=f"raw-{uuid.uuid4().hex[:8]}",
        task_queue=escalator.task_queue,
    )
    failure = await _failure_of(handle)
    assert failure.message.startswith("case: ")
    assert await _task_failures(handle) == 0


async def test_too_many_steps_are_refused_at_the_edge_and_by_the_workflow(desk):
    escalator, _ = desk
    await escalator.start_case(a_case("steps"))
    steps = [f"step {i}" for i in range(limits.MAX_NOTE_ITEMS + 1)]
    note = {"reason": "stuck", "steps_taken": steps}
    with pytest.raises(InvalidInput, match=r"note: steps_taken has 11 items; the limit is 10"):
        await escalator.escalate("steps", actor("alice"), note)

    # A raw client skips the edge; the workflow decodes and refuses it itself.
    handle = escalator.client.get_workflow_handle("case-steps")
    raw = {"actor": actor("alice").model_dump(), "note": note}
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("try_escalate", raw)
    message = refused.value.cause.message
    assert message.startswith("rejected: escalate: malformed payload: note: ")
    assert "steps_taken has 11 items; the limit is 10" in message and "\n" not in message
    await handle.signal("escalate", raw)
    status = await eventually(lambda: _rejected(escalator, "steps", "symptoms", "steps_taken"))
    assert status.tier_level == 1  # nothing moved


async def _rejected(escalator, case_id, *words):
    status = await escalator.status(case_id)
    hits = [
        e for e in status.timeline if e.kind == "rejected" and any(w in e.detail for w in words)
    ]
    return status if hits else None


async def test_notes_over_the_count_limit_are_refused(desk, monkeypatch):
    # The workflow reads its limits at run time; a small one makes the test quick.
    monkeypatch.setattr(limits, "MAX_NOTES_PER_CASE", 3)
    escalator, _ = desk
    await escalator.start_case(a_case("many-notes"))
    for i in range(3):
        await escalator.add_note("many-notes", actor("alice"), f"note {i}")
    with pytest.raises(
        ActionRefused, match=r"^rejected: notes: the case has 3 notes, the limit \(3\)"
    ):
        await escalator.add_note("many-notes", actor("alice"), "one too many")
    await escalator.add_note("many-notes", actor("alice"), "signalled", wait=False)
    status = await eventually(lambda: _rejected(escalator, "many-notes", "the limit (3)"))
    assert status.notes_total == 3


async def test_reopens_over_the_limit_are_refused(desk, monkeypatch):
    monkeypatch.setattr(limits, "MAX_REOPENS", 1)
    escalator, _ = desk
    policy = seconds_policy(first_response=60, resolution=120).model_dump(mode="json")
    policy["reopen_window"] = "1h"
    await escalator.start_case(a_case("reopens", policy=policy))
    admin = actor("root", role="admin")
    await escalator.resolve("reopens", admin, "fixed")
    await escalator.reopen("reopens", admin, "back again")
    await escalator.resolve("reopens", admin, "fixed again")
    with pytest.raises(ActionRefused, match=r"^rejected: reopen: the case was reopened 1 times"):
        await escalator.reopen("reopens", admin, "and again")


async def test_what_leaves_the_case_is_the_newest_entries_and_totals(desk):
    escalator, notifier = desk
    await escalator.start_case(a_case("chatty"))
    notes = 60
    for i in range(notes):
        await escalator.add_note("chatty", actor("alice"), f"note {i} " + "x" * 3000)
    note = {"reason": "needs a specialist", "steps_taken": ["restarted the spooler"]}
    await escalator.escalate("chatty", actor("alice"), note)

    status = await escalator.status("chatty")
    assert [n.text.split()[1] for n in status.notes] == [
        str(i) for i in range(notes - limits.STATUS_NOTES, notes)
    ]
    assert status.notes_total == notes
    assert len(status.timeline) == limits.STATUS_TIMELINE < status.timeline_total

    [entry] = await eventually(
        lambda: (
            [
                n
                for n in notifier.sent
                if n.case.case_id == "chatty" and n.tier.level == 2 and n.purpose == "tier_entry"
            ]
            or None
        )
    )
    assert len(entry.notes) == limits.NOTIFICATION_NOTES
    assert entry.notes[-1].text.startswith(f"note {notes - 1} ")
    assert all(len(n.text) <= limits.NOTIFICATION_NOTE_CHARS for n in entry.notes)
    assert entry.notes_total == notes and entry.escalations_total == 1

    [request] = await eventually(
        lambda: [r for r in notifier.assessments if r.case_id == "chatty"] or None
    )
    assert 0 < len(request.notes) < notes
    assert request.notes_omitted == notes - len(request.notes)
    assert request.notes[-1].text.startswith(f"note {notes - 1} ")


async def test_a_run_continues_as_new_on_its_history_size(desk, monkeypatch):
    monkeypatch.setattr(limits, "CONTINUE_AS_NEW_HISTORY_BYTES", 256 * 1024)
    escalator, _ = desk
    await escalator.start_case(a_case("heavy"))  # continue_as_new_after stays 10,000
    handle = escalator.client.get_workflow_handle("case-heavy")
    first_run = (await handle.describe()).run_id
    big = "y" * limits.MAX_NOTE_BYTES
    for batch in range(3):
        await asyncio.gather(
            *(
                handle.signal("add_note", AddNoteRequest(actor=actor("alice"), text=big))
                for _ in range(10)
            )
        )
        # One batch at a time: the size is checked as a workflow task starts, so under
        # load all 30 notes must not land in one task that starts below the limit.
        if batch < 2:
            await eventually(
                lambda n=10 * (batch + 1): _when(
                    escalator.status("heavy"), lambda s: s.notes_total >= n
                ),
                within=30,
            )

    async def moved_on():
        description = await handle.describe()
        return description if description.run_id != first_run else None

    await eventually(moved_on, within=30)
    status = await eventually(
        lambda: _when(escalator.status("heavy"), lambda s: s.notes_total == 30), within=30
    )
    assert status.state == "open"


async def _when(awaitable, predicate):
    value = await awaitable
    return value if predicate(value) else None


def test_the_request_models_bound_their_lists():
    many = tuple(f"s{i}" for i in range(limits.MAX_NOTE_ITEMS + 1))
    with pytest.raises(ValueError, match="symptoms has 11 items"):
        EscalateRequest(actor=actor(), note=EscalationNote(reason="r", symptoms=many))
    # Recorded notes are not bounded, so older cases still decode.
    assert len(EscalationNote(reason="r", symptoms=many).symptoms) == 11


def _task_sends(history) -> list[int]:
    """Activity input (bytes) each workflow task scheduled, in order."""
    sends = [0]
    for event in history.events:
        if event.HasField("workflow_task_completed_event_attributes"):
            sends.append(0)
        if event.HasField("activity_task_scheduled_event_attributes"):
            payloads = event.activity_task_scheduled_event_attributes.input.payloads
            sends[-1] += sum(p.ByteSize() for p in payloads)
    return [sent for sent in sends if sent]


async def test_a_burst_past_the_send_budget_waits_for_the_next_task_and_replays(dev_env):
    client, queue = dev_env.client, unique_queue("burst")
    escalator = EscalatorClient(client, queue)
    policy = seconds_policy(first_response=600, resolution=1200).model_dump(mode="json")
    for tier in policy["tiers"]:
        tier["webhook"] = "https://hooks.example/escalator"
    customer = {"name": "Jane", "email": "jane@acme.example"}
    await escalator.start_case(a_case("burst", policy=policy, customer=customer))
    handle = client.get_workflow_handle("case-burst")
    # No worker yet: the start and every message below reach the first task together.
    # Control characters take six bytes each as JSON, the worst case for every bound.
    item = "\x01" * limits.MAX_NOTE_ITEM_CHARS
    heavy = {
        "reason": "\x01" * limits.MAX_REASON_CHARS,
        "steps_taken": [item] * limits.MAX_NOTE_ITEMS,
        "symptoms": [item] * limits.MAX_NOTE_ITEMS,
        "customer_impact": "\x01" * limits.MAX_REASON_CHARS,
    }
    admin = actor("root", role="admin")
    note = AddNoteRequest(actor=admin, text="\x01" * limits.MAX_NOTE_BYTES)
    for _ in range(10):
        await handle.signal("add_note", note)
    for _ in range(2):  # L1 → L2 → L3 in one task
        await handle.signal("escalate", {"actor": admin.model_dump(), "note": heavy})

    async with case_workers(client, queue, RecordingNotifier().activities):
        await eventually(
            lambda: _when(escalator.status("burst"), lambda s: s.tier_level == 3), within=30
        )
        await escalator.resolve("burst", admin, "done")
        outcome = await asyncio.wait_for(escalator.outcome("burst"), timeout=30)
    assert outcome.escalations == 2

    history = await handle.fetch_history()
    sends = _task_sends(history)
    assert sum(sends) > limits.TASK_SEND_BYTES  # the burst needed more than one task
    assert max(sends) <= limits.TASK_SEND_BYTES, sends
    # The waiting path is deterministic: the history replays with this code.
    await Replayer(
        workflows=[EscalationWorkflow], data_converter=pydantic_data_converter
    ).replay_workflow(history)
