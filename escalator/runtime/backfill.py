"""`escalator ledger backfill`: put closed cases still in Temporal into the ledger.

For example after an upgrade (cases that ran before the ledger existed), after
pointing ESCALATOR_LEDGER_URL at a new database, or after a ledger was lost.
Only what Temporal still holds can come back: closed workflows vanish at the
namespace's retention.

Each closed run of every case is read from its history and replayed with the
current workflow code, which describes every timeline entry as a ledger event as
it goes (the engine does it for every case). The replay only captures them and
sends nothing anywhere:

- a run that wrote to the ledger sends its batches again on replay, as its history
  says it did (activities, and the closing batch's local activity, whose input is
  not in the history: hence the replay);
- a run from before the ledger never sent them (`workflow.patched(case-ledger)` is
  false on its replay), and its entries are captured as it records them.

Writes are idempotent (keyed by case and sequence number), so backfilling twice,
or backfilling cases the ledger already has, changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow
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
from workflows.escalation import EscalationWorkflow


@dataclass
class BackfillResult:
    runs: int = 0  # closed runs read
    from_batches: int = 0  # runs that had written to the ledger themselves
    replayed: int = 0  # runs from before the ledger, described by their replay
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
            replay = await replayed_batches(client.data_converter, history)
        except Exception as error:  # one bad history must not stop the others
            result.failed.append(f"{execution.id}: {type(error).__name__}: {error}"[:300])
            continue
        if replay.wrote_to_ledger:
            result.from_batches += 1
        else:
            result.replayed += 1
        for batch in replay.batches:
            receipt = await asyncio.to_thread(store.write, batch)
            result.events_written += receipt.events_written
            result.cases_written += receipt.case_written
        if progress is not None and result.runs % 100 == 0:
            progress(f"{result.runs} runs read")
    return result


@dataclass
class Replayed:
    batches: list[LedgerBatch]  # at most one: everything the run recorded
    wrote_to_ledger: bool  # the run had sent them itself (it started after the ledger)


async def replayed_batches(converter: DataConverter, history: WorkflowHistory) -> Replayed:
    """The ledger entries and facts a closed run describes, from its replay."""
    capture = _Capture()
    replayer = Replayer(
        workflows=[EscalationWorkflow],
        interceptors=[capture],
        data_converter=converter,
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    outcome = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    if outcome.replay_failure is not None:
        raise RuntimeError(f"cannot replay with this code: {outcome.replay_failure}")
    events, facts = capture.events, capture.facts
    if not events and not facts:
        return Replayed([], capture.wrote_to_ledger)
    case_id = facts[-1].case_id if facts else events[0].case_id
    batch = LedgerBatch(case_id=case_id, events=tuple(events), case=facts[-1] if facts else None)
    return Replayed([batch], capture.wrote_to_ledger)


class _Capture(Interceptor):
    """Replays a closed run, keeping the ledger entries and facts it describes.

    The run's own send step still runs, so a run that wrote to the ledger issues
    the same commands its history holds (their results come from the history); a
    run from before the ledger asks `workflow.patched(case-ledger)`, false on
    replay, and sends nothing, as it did.
    """

    def __init__(self) -> None:
        self.events: list[LedgerEvent] = []
        self.facts: list[LedgerCase] = []
        self.wrote_to_ledger = False

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        capture = self

        class Inbound(WorkflowInboundInterceptor):
            async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
                instance = workflow.instance()
                send = instance._send_to_ledger

                def keep(*, with_facts: bool, closing: bool = False) -> None:
                    capture.events.extend(instance._ledger_pending)
                    if with_facts:
                        capture.facts.append(case_view.ledger_case(instance._state, instance._case))
                    send(with_facts=with_facts, closing=closing)
                    capture.wrote_to_ledger = bool(instance._ledger_on)

                instance._send_to_ledger = keep
                try:
                    return await super().execute_workflow(input)
                finally:
                    # What the run recorded after its last send (it continued as new,
                    # or was terminated): those entries happened too.
                    capture.events.extend(instance._ledger_pending)
                    instance._ledger_pending = []

        return Inbound
