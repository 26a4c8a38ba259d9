"""`escalator ledger backfill`: put closed cases still in Temporal into the ledger.

For example after an upgrade (cases that ran before the ledger existed), after
pointing ESCALATOR_LEDGER_URL at a new database, or after a ledger was lost.
Only what Temporal still holds can come back: closed workflows vanish at the
namespace's retention.

Each closed run of every case is read from its history:

- a run that wrote to the ledger carries its batches as the inputs of its
  `record_to_ledger` activities; they are written again;
- a run from before the ledger is replayed with the current workflow code, which
  describes every timeline entry as a ledger event as it goes (the engine does it
  for every case); the replay only captures them, and sends nothing anywhere.

Writes are idempotent (keyed by case and sequence number), so backfilling twice,
or backfilling cases the ledger already has, changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    Replayer,
    UnsandboxedWorkflowRunner,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from escalator.adapters.ledger_store import LedgerStore
from escalator.adapters.visibility import closed_case_query
from escalator.domain import case_view
from escalator.domain.ledger import LedgerBatch, LedgerCase, LedgerEvent
from escalator.domain.names import RECORD_TO_LEDGER
from workflows.escalation import EscalationWorkflow


@dataclass
class BackfillResult:
    runs: int = 0  # closed runs read
    from_batches: int = 0  # runs whose own ledger batches were written again
    replayed: int = 0  # runs from before the ledger, replayed to describe them
    failed: list[str] = field(default_factory=list)  # "case-x: why", never raised
    events_written: int = 0  # new event rows (rows already there are skipped)
    cases_written: int = 0  # fact rows written or rewritten


async def backfill(
    client: Client,
    store: LedgerStore,
    *,
    query: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> BackfillResult:
    """Every closed run `query` lists (default: all of them) into `store`."""
    result = BackfillResult()
    async for execution in client.list_workflows(query or closed_case_query()):
        result.runs += 1
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        try:
            history = await handle.fetch_history()
            batches = await recorded_batches(client.data_converter, history)
            if batches:
                result.from_batches += 1
            else:
                batches = await replayed_batches(client.data_converter, history)
                result.replayed += 1
        except Exception as error:  # one bad history must not stop the others
            result.failed.append(f"{execution.id}: {type(error).__name__}: {error}"[:300])
            continue
        for batch in batches:
            receipt = await asyncio.to_thread(store.write, batch)
            result.events_written += receipt.events_written
            result.cases_written += receipt.case_written
        if progress is not None and result.runs % 100 == 0:
            progress(f"{result.runs} runs read")
    return result


async def recorded_batches(converter: DataConverter, history: WorkflowHistory) -> list[LedgerBatch]:
    """The inputs of the run's `record_to_ledger` activities, decoded as the worker
    would (with the client's codec, so encrypted histories work too)."""
    batches: list[LedgerBatch] = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        attributes = event.activity_task_scheduled_event_attributes
        if attributes.activity_type.name != RECORD_TO_LEDGER:
            continue
        [batch] = await converter.decode(attributes.input.payloads, [LedgerBatch])
        batches.append(batch)
    return batches


async def replayed_batches(converter: DataConverter, history: WorkflowHistory) -> list[LedgerBatch]:
    captured: list[LedgerEvent] = []
    facts: list[LedgerCase] = []
    replayer = Replayer(
        workflows=[EscalationWorkflow],
        interceptors=[_Capture(captured, facts)],
        data_converter=converter,
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    outcome = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    if outcome.replay_failure is not None:
        raise RuntimeError(f"cannot replay with this code: {outcome.replay_failure}")
    if not captured and not facts:
        return []
    case_id = facts[-1].case_id if facts else captured[0].case_id
    return [LedgerBatch(case_id=case_id, events=tuple(captured), case=facts[-1] if facts else None)]


class _Capture(Interceptor):
    """Replays a run from before the ledger, keeping the ledger entries it describes.

    Such a run asks `workflow.patched(case-ledger)`, which is false on replay, so it
    never sends them; here its send step is replaced by one that only keeps them. A
    run that did send them is never replayed this way (its batches are in its history).
    """

    def __init__(self, events: list[LedgerEvent], facts: list[LedgerCase]) -> None:
        self.events, self.facts = events, facts

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        events, facts = self.events, self.facts

        class Inbound(WorkflowInboundInterceptor):
            async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
                instance = workflow.instance()

                def keep(*, with_facts: bool) -> None:
                    events.extend(instance._ledger_pending)
                    instance._ledger_pending = []
                    if with_facts:
                        facts.append(case_view.ledger_case(instance._state, instance._case))

                instance._send_to_ledger = keep
                try:
                    return await super().execute_workflow(input)
                finally:
                    # What the run recorded after its last send (it continued as new,
                    # or was terminated): those entries happened too.
                    events.extend(instance._ledger_pending)
                    instance._ledger_pending = []

        return Inbound
