"""A long case continues as new without losing a message (real dev server).

A flood of notes arrives as concurrent signals while the case crosses several
run boundaries; every note is counted once, and the case still escalates on time.
"""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
from support import RecordingNotifier, actor, case_workers, eventually, seconds_policy, unique_queue
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest

from escalator.domain import limits
from escalator.domain.models import AddNoteRequest, TimelineEvent
from starter import EscalatorClient

pytestmark = pytest.mark.integration
NOTES = 400


@pytest_asyncio.fixture
async def escalator(dev_env):
    queue = unique_queue("can")
    async with case_workers(
        dev_env.client,
        queue,
        RecordingNotifier().activities,
    ):  # fmt: skip
        yield EscalatorClient(dev_env.client, queue)


async def test_a_flood_of_notes_continues_as_new_and_loses_nothing(escalator):
    await escalator.start_case(
        {"case_id": "flood", "title": "chatty case", "continue_as_new_after": 150,
         "policy": seconds_policy(first_response=20, resolution=60)}
    )  # fmt: skip
    handle = escalator.client.get_workflow_handle("case-flood")
    first_run = (await handle.describe()).run_id
    for batch in range(NOTES // 50):  # 50 signals in flight at a time
        await asyncio.gather(
            *(
                handle.signal(
                    "add_note", AddNoteRequest(actor=actor("alice"), text=f"note {batch * 50 + i}")
                )
                for i in range(50)
            )
        )

    async def all_counted():
        status = await escalator.status("flood")
        return status if status.notes_total == NOTES else None

    status = await eventually(all_counted, within=60)
    shown = [n.text for n in status.notes]
    assert len(set(shown)) == len(shown) == limits.STATUS_NOTES  # nothing counted twice
    # The newest notes: the last batch of 50 arrived concurrently, in any order.
    assert all(int(text.split()[1]) >= NOTES - 50 for text in shown), shown
    timeline = await handle.query("timeline", result_type=list[TimelineEvent])
    assert any(e.kind == "continued_as_new" for e in timeline)

    # Several runs: the first one ended by continuing as new.
    latest = (await handle.describe()).run_id
    assert latest != first_run
    history = await escalator.client.workflow_service.get_workflow_execution_history(
        GetWorkflowExecutionHistoryRequest(
            namespace=escalator.client.namespace,
            execution=WorkflowExecution(workflow_id="case-flood", run_id=first_run),
        )
    )
    last_event = history.history.events[-1]
    assert last_event.HasField("workflow_execution_continued_as_new_event_attributes")

    # The case still works across the boundary: its SLA escalates it.
    status = await eventually(
        lambda: _when(escalator.status("flood"), lambda s: s.tier_level == 2), within=40
    )
    assert status.notes_total == NOTES
    await escalator.resolve("flood", actor("bob", role="admin"), "done")
    outcome = await escalator.outcome("flood")
    assert outcome.escalations == 1


async def _when(awaitable, predicate):
    value = await awaitable
    return value if predicate(value) else None
