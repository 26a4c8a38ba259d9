"""EscalationWorkflow: the durable shell around one case.

What a case does is decided by the pure case engine, escalator/domain/case.py:
read that first. This module only gives it durability:

- the run loop, which sleeps on a durable timer until the case's next deadline or
  until a message changes the case, guarding against a lagging workflow clock;
- the effects the engine asks for, carried out in order: notifications and the AI
  assessment as background activities (with their timeouts and retries, counted
  while in flight), the Web UI's briefing and the search attributes;
- the messages, declared from the engine's table of actions: each is a signal
  (fire-and-forget) and an update (answers the caller), and every payload is
  decoded here so a malformed one is a one-line refusal, never a stuck case;
- continue-as-new, which carries the case's state into a fresh history;
- the business metrics (`_CaseMetrics`), through the replay-safe
  workflow.metric_meter(): they add no commands, and a replay counts nothing.

Notifications and the assessment never hold the case up: an SMTP or model outage
delays mail, never an escalation. Model calls run on their own task queue
(`<queue>-ai`), so a hung model cannot take the worker slots that mail needs.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import MetricMeter, RawValue, RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    # email-validator imports these inside its functions; passed through here, the
    # sandbox does not import a fresh copy of them for every case it runs.
    import email_validator.rfc_constants
    import email_validator.version  # noqa: F401
    import idna.core
    import idna.intranges
    import idna.package_data  # noqa: F401

    from escalator.domain import assessment as ai
    from escalator.domain import briefing, case_view, limits, patches
    from escalator.domain import case as engine
    from escalator.domain import search_attributes as search
    from escalator.domain.ledger import LedgerBatch, LedgerEvent, LedgerReceipt
    from escalator.domain.models import (
        ActionResult,
        CaseOutcome,
        CaseState,
        CaseStatus,
        ChannelSend,
        DeliveryReceipt,
        DraftInput,
        TimelineEvent,
        case_input_problem,
    )
    from escalator.domain.names import (
        ACTION_REFUSED,
        INVALID_CASE_INPUT,
        PERMANENT_DELIVERY_ERROR,
        RECORD_TO_LEDGER,
        STATUS_QUERY,
        TIMELINE_QUERY,
        WORKFLOW_TYPE,
    )
    from workflows.payloads import (
        InvalidInput,
        Malformed,
        decode_case_input,
        decode_update,
        parse_message,
        user_in,
    )
    from workflows.send_budget import SendBudget

# Delivery retries on its own schedule, independent of the case: transient failures
# back off up to a minute between tries for a whole day; permanent ones stop at once.
DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    non_retryable_error_types=[PERMANENT_DELIVERY_ERROR],
)
DELIVERY_ATTEMPT_TIMEOUT = timedelta(seconds=30)
DELIVERY_GIVE_UP_AFTER = timedelta(hours=24)

# The assessment is one model call per escalation. It retries on its own and gives
# up after ASSESSMENT_GIVE_UP_AFTER; nothing in the case ever waits for it.
ASSESSMENT_RETRY = RetryPolicy(
    initial_interval=ai.ASSESSMENT_RETRY_INITIAL_INTERVAL,
    backoff_coefficient=2.0,
    maximum_interval=ai.ASSESSMENT_RETRY_MAX_INTERVAL,
    non_retryable_error_types=ai.ASSESSMENT_NON_RETRYABLE_ERRORS,
)
DRAFT_ATTEMPT_TIMEOUT = timedelta(seconds=60)
DRAFT_GIVE_UP_AFTER = timedelta(minutes=2)

# The ledger write retries until it succeeds: the events wait in its retries, and a
# resolved case closes only once its facts are written. Nothing else waits for it.
LEDGER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
)
LEDGER_ATTEMPT_TIMEOUT = timedelta(seconds=30)

_UNSET = object()
_ZERO = timedelta(0)
# A deadline already due still goes through a timer this short (see
# _wait_for_next_deadline_or_change for why).
_DUE_NOW_TIMER = timedelta(milliseconds=1)
_SEARCH_KEYS: dict[str, SearchAttributeKey[Any]] = {key.name: key for key in search.ALL_KEYS}


def _declare_actions(cls: type) -> type:
    """Give the workflow a signal `<name>` and an update `try_<name>` (with its
    validator) for every action in the engine's table."""
    for action in engine.ACTIONS:
        on_signal, on_update, validate = _handlers_for(action)
        setattr(cls, action.name, workflow.signal(name=action.name)(on_signal))
        update = workflow.update(name=f"try_{action.name}")(on_update)
        update.validator(validate)
        setattr(cls, f"try_{action.name}", update)
    return cls


def _handlers_for(action: engine.Action) -> tuple[Any, Any, Any]:
    def on_signal(self, *payloads: object) -> None:  # type: ignore[no-untyped-def]
        self._on_signal(action, payloads)

    def on_update(self, payload: RawValue) -> ActionResult:  # type: ignore[no-untyped-def]
        result: ActionResult = self._on_update(action, payload)
        return result

    def validate(self, payload: RawValue) -> None:  # type: ignore[no-untyped-def]
        self._validate(action, payload)

    on_signal.__name__ = action.name
    on_update.__name__ = validate.__name__ = f"try_{action.name}"
    on_signal.__qualname__ = f"EscalationWorkflow.{action.name}"
    on_update.__qualname__ = f"EscalationWorkflow.try_{action.name}"
    return on_signal, on_update, validate


@workflow.defn(name=WORKFLOW_TYPE)
@_declare_actions
class EscalationWorkflow:
    @workflow.init
    def __init__(self, *payloads: object) -> None:
        # `*payloads`: the SDK hands over the input as plain JSON values, whatever
        # its shape and number of arguments, and decode_case_input judges them.
        self._clock_floor: datetime | None = None  # see _now
        try:
            case = decode_case_input(payloads)
        except InvalidInput as invalid:
            self._invalid_input: str | None = str(invalid)
            return  # run fails the case; handlers and queries refuse until then
        self._invalid_input = None
        # The policy snapshot travels in the input, so the case keeps the rules it
        # started with for its whole life, whatever happens to the policy file.
        self._case = case
        self._state = engine.new_state(case, self._now())
        # What the previous run had recorded but not yet sent to the ledger.
        self._ledger_pending = list(self._state.ledger_unsent)
        self._state = self._state.model_copy(update={"ledger_unsent": ()})
        self._changes = 0  # bumped by anything that can move the next deadline
        self._deliveries_in_flight = 0  # notifications
        # PagerDuty events go out one at a time per channel, in the order the case
        # asked for them (see _wait_for_turn): tickets handed out, and tickets served.
        self._page_tickets: dict[str, int] = {}
        self._pages_served: dict[str, int] = {}
        # Ledger batches being written: their events also travel on at continue-as-new
        # (writes are idempotent), so a slow ledger never holds a long case back.
        self._ledger_writes: dict[int, LedgerBatch] = {}
        self._ledger_on: bool | None = None  # workflow.patched(CASE_LEDGER), once asked
        self._facts_sent = False  # the last batch carried the fact row
        self._update_task = -1  # the workflow task (by history length) that took an update
        self._published: dict[str, object] = {}  # search attributes as last upserted
        self._policy_version_on: bool | None = None  # workflow.patched(POLICY_VERSION)
        self._assessment_task: asyncio.Task | None = None  # the newest one
        self._assessment_generation = 0  # bumped when the running one is superseded
        self._send_budget = SendBudget()  # activity input one workflow task may carry
        self._metrics: _CaseMetrics | None = None  # made when first counted

    # -- the run loop -------------------------------------------------------------

    @workflow.run
    async def run(self, *payloads: object) -> CaseOutcome:
        if self._invalid_input is not None:
            raise ApplicationError(self._invalid_input, type=INVALID_CASE_INPUT, non_retryable=True)
        case = self._case
        if case.carried is None and workflow.patched(patches.CASE_INPUT_SIZE):
            # Bounded where cases are started; checked here too for raw clients.
            # Cases started before this check may be larger, and replay as they ran.
            problem = case_input_problem(case)
            if problem is not None:
                field, reason = problem
                raise ApplicationError(
                    f"case: {field or 'input'}: {reason}",
                    type=INVALID_CASE_INPUT,
                    non_retryable=True,
                )
        if case.carried is None:
            self._apply(engine.open_case(self._state, case, self._now()))

        while True:
            while self._state.phase != "resolved":
                self._publish_search_attributes()
                if self._ready_to_continue_as_new():
                    self._continue_as_new()  # raises: this run ends here
                await self._wait_for_next_deadline_or_change()
            self._publish_search_attributes()
            # An assessment still running is moot once the case is resolved.
            self._supersede_assessment()
            if case.policy.reopen_window is not None:
                # Reports see the case as resolved while its reopen window runs.
                self._send_to_ledger(with_facts=True)
            if not await self._wait_for_reopen():
                break

        # Nothing is lost: mail queued before the resolve still goes out, and any
        # message being handled finishes. Then what they recorded and the fact row go
        # to the ledger in one batch (one activity is the ledger's whole cost for a
        # case that resolves in one go), and the case closes once it is written.
        def settled() -> bool:
            return (
                self._deliveries_in_flight == 0
                and not self._ledger_writes
                and workflow.all_handlers_finished()
            )

        await workflow.wait_condition(settled)
        if self._ledger_pending or not self._facts_sent:
            # A local activity holds the task open while it writes. Should anything
            # arrive meanwhile (a late assessment, a message), the server refuses the
            # task's close, and the retried task is harmless, unless that task also
            # took an update: the update would fail for its caller. So a case closed
            # by an update it takes in this very task writes through an activity.
            in_update_task = self._update_task == workflow.info().get_current_history_length()
            self._send_to_ledger(with_facts=True, closing=not in_update_task)
            await workflow.wait_condition(settled)
        return case_view.outcome(self._state, self._case)

    async def _wait_for_next_deadline_or_change(self) -> None:
        due = case_view.next_due(self._state, self._case)
        changes_seen = self._changes

        def woken() -> bool:
            return self._changes != changes_seen or self._ready_to_continue_as_new()

        if due is None:
            await workflow.wait_condition(woken)
            return
        at = due.deadline.at
        remaining = at - self._now()
        # Whether a deadline is already due must not decide which commands we send.
        # workflow.now() can lag: a query that reaches the worker while a workflow
        # task waits (say, after a server restart) makes the SDK apply the new
        # events, a fired timer among them, with the previous task's time; a replay
        # later sees the true time. So a due deadline waits on a 1 ms timer, and
        # both runs send the same timer, only its duration differs (allowed).
        if workflow.patched(patches.DEADLINES_ALWAYS_TIMED):
            remaining = max(remaining, _DUE_NOW_TIMER)
        if remaining > _ZERO:
            try:
                await workflow.wait_condition(
                    woken, timeout=remaining, timeout_summary=due.deadline.label
                )
                return  # the case changed; the caller loops and recomputes
            except TimeoutError:
                pass
        # The deadline's time has come, whatever workflow.now() says.
        self._clock_floor = max(self._clock_floor or at, at)
        tier_level = self._state.tier_level
        self._apply(engine.deadline_fired(self._state, self._case, due, self._now()))
        if due.target is not None and due.target.kind == "breach":
            # Every breach target breaches (escalating, or on the final tier, recording it).
            self._case_metrics().breached(tier_level, due.target.clock)

    async def _wait_for_reopen(self) -> bool:
        """After a resolve: wait out the policy's reopen window. True if reopened."""
        self._state = engine.reopen_window_opened(self._state, self._case)
        until = self._state.reopen_until
        if until is None:
            return False
        try:
            await workflow.wait_condition(
                lambda: self._state.phase != "resolved",
                timeout=until - self._now(),
                timeout_summary="reopen window",
            )
        except TimeoutError:
            self._state = engine.reopen_window_closed(self._state)
            return False
        return True

    # -- carrying out what the engine decided ---------------------------------------

    def _apply(self, step: engine.Step) -> str:
        """Take the step's state, and carry out its effects in order."""
        before, self._state = self._state, step.state
        self._changes += step.rearm
        recorded = False
        for effect in step.effects:
            if isinstance(effect, engine.Deliver):
                # The task counts itself out when done, so the run loop can wait
                # for all of them before the case closes.
                self._deliveries_in_flight += 1
                ticket = self._take_ticket(effect.notification)
                asyncio.create_task(self._deliver(effect, ticket))  # noqa: RUF006
            elif isinstance(effect, engine.Assess):
                self._supersede_assessment()
                self._assessment_task = asyncio.create_task(self._assess(effect.request))
            else:
                recorded = True
                self._ledger_pending.append(effect.entry)
                self._count(before, effect.entry)
        if recorded:  # keeps the Web UI's briefing current
            workflow.set_current_details(briefing.render_briefing(self.status()))
        if len(self._ledger_pending) >= limits.LEDGER_BATCH_EVENTS:
            self._send_to_ledger(with_facts=False)  # a busy case does not wait to resolve
        return step.answer

    # -- business metrics ---------------------------------------------------------

    def _case_metrics(self) -> _CaseMetrics:
        if self._metrics is None:
            self._metrics = _CaseMetrics(workflow.metric_meter())
        return self._metrics

    def _count(self, before: CaseState, entry: LedgerEvent) -> None:
        """Count what this timeline entry means for the metrics (breaches are counted
        where the deadline fires, which knows the clock)."""
        if entry.kind == "escalated" and entry.from_level is not None and entry.reason:
            self._case_metrics().escalated(entry.from_level, entry.tier_level, entry.reason)
        elif entry.kind == "claimed":
            # SLA time (business hours, holds excluded) of this tier stay at the claim.
            waited = case_view.consumed_at(before, self._case, entry.at)
            self._case_metrics().claimed(entry.tier_level, waited)

    async def _deliver(self, effect: engine.Deliver, ticket: int) -> None:
        notice = effect.notification
        page = _paged_channel(notice)
        try:
            if page:
                await self._wait_for_turn(page, ticket)
            await self._send_budget.wait_for_room(notice)
            receipt = await workflow.execute_activity(
                effect.activity,
                notice,
                result_type=DeliveryReceipt,
                start_to_close_timeout=DELIVERY_ATTEMPT_TIMEOUT,
                schedule_to_close_timeout=DELIVERY_GIVE_UP_AFTER,
                retry_policy=DELIVERY_RETRY,
                summary=effect.summary,
            )
            self._apply(engine.delivered(self._state, self._case, notice, receipt, self._now()))
        except ActivityError as error:
            cause = _cause_of(error)
            self._apply(
                engine.delivery_failed(
                    self._state, self._case, effect.activity, notice, cause, self._now()
                )
            )
        finally:
            if page:
                self._pages_served[page] = ticket
            self._deliveries_in_flight -= 1

    def _take_ticket(self, notice: object) -> int:
        """The delivery's place in its PagerDuty channel's order (0: not a page).
        Taken as the engine asks for it, so the order is the engine's."""
        channel = _paged_channel(notice)
        if channel is None:
            return 0
        ticket = self._page_tickets.get(channel, 0) + 1
        self._page_tickets[channel] = ticket
        return ticket

    async def _wait_for_turn(self, channel: str, ticket: int) -> None:
        """Wait until this channel's earlier PagerDuty events are done. A trigger
        that is still retrying must not land after the resolve (the alert would
        outlive its case), nor an acknowledge before its trigger (a no-op, and
        the pager rings for a claimed case)."""
        await workflow.wait_condition(lambda: self._pages_served.get(channel, 0) == ticket - 1)

    # -- the case ledger ----------------------------------------------------------

    def _send_to_ledger(self, *, with_facts: bool, closing: bool = False) -> None:
        """Send the events recorded since the last batch (and the fact row) to the
        ledger, in the background. Cases that started before the ledger existed
        replay without it (PATCH case-ledger).

        The closing batch is usually a local activity (see run for when not): its
        result is one marker in the task that closes the case, where an activity
        costs three events and a workflow task more (docs/benchmarks.md)."""
        if self._ledger_on is None:
            self._ledger_on = workflow.patched(patches.CASE_LEDGER)
        events, self._ledger_pending = tuple(self._ledger_pending), []
        if not self._ledger_on:
            return
        facts = case_view.ledger_case(self._state, self._case) if with_facts else None
        self._facts_sent = facts is not None
        if not events and facts is None:
            return
        batch = LedgerBatch(case_id=self._case.case_id, events=events, case=facts)
        self._ledger_writes[id(batch)] = batch
        asyncio.create_task(self._write_ledger(batch, local=closing))  # noqa: RUF006

    async def _write_ledger(self, batch: LedgerBatch, *, local: bool) -> None:
        summary = f"ledger: {len(batch.events)} events" + (", facts" if batch.case else "")
        try:
            if local:
                await workflow.execute_local_activity(
                    RECORD_TO_LEDGER,
                    batch,
                    result_type=LedgerReceipt,
                    start_to_close_timeout=LEDGER_ATTEMPT_TIMEOUT,
                    retry_policy=LEDGER_RETRY,
                )
                return
            await self._send_budget.wait_for_room(batch)
            await workflow.execute_activity(
                RECORD_TO_LEDGER,
                batch,
                result_type=LedgerReceipt,
                start_to_close_timeout=LEDGER_ATTEMPT_TIMEOUT,
                retry_policy=LEDGER_RETRY,
                summary=summary,
            )
        finally:
            del self._ledger_writes[id(batch)]

    # -- the AI assessment -------------------------------------------------------
    # One structured model call per escalation, in the background. The escalation
    # mail has already been started; the assessment follows when it is ready, or
    # the timeline says it is unavailable. A newer escalation supersedes it.

    def _supersede_assessment(self) -> None:
        """The running assessment no longer matters (a newer escalation, or resolved).

        It is left to finish and its answer is dropped, rather than cancelled:
        cancelling a running model call in the same workflow task as an update
        wedged that task (it timed out and the update was aborted), and the call is
        bounded by its own timeouts anyway. Cases that started before this change
        keep cancelling it, as their histories say."""
        if self._assessment_task is None or self._assessment_task.done():
            return
        if workflow.patched(patches.ASSESSMENT_NOT_CANCELLED):
            self._assessment_generation += 1
        else:
            self._assessment_task.cancel()

    async def _assess(self, request: ai.AssessmentRequest) -> None:
        generation = self._assessment_generation
        await self._send_budget.wait_for_room(request)
        failure = ""
        result: ai.AssessmentResult | None
        try:
            result = await workflow.execute_activity(
                ai.ASSESS_CASE,
                request,
                task_queue=self._ai_task_queue(),
                result_type=ai.AssessmentResult,
                start_to_close_timeout=ai.ASSESSMENT_ATTEMPT_TIMEOUT,
                schedule_to_close_timeout=ai.ASSESSMENT_GIVE_UP_AFTER,
                retry_policy=ASSESSMENT_RETRY,
                summary=f"AI assessment for {request.tier.label}",
            )
        except ActivityError as error:
            failure = _cause_of(error)
            result = None
        if generation != self._assessment_generation:
            return  # superseded while it ran: its tier and its facts are out of date
        step = engine.assessed(
            self._state, self._case, request, result, self._now(), failure=failure
        )
        self._apply(step)

    def _ai_task_queue(self) -> str | None:
        """Model calls run on their own task queue and worker slots, so a model that
        hangs can never hold the slots that mail needs. Cases started before this
        change keep scheduling them on the case's queue (None: the workflow's own)."""
        if workflow.patched(patches.AI_TASK_QUEUE):
            return ai.ai_task_queue(workflow.info().task_queue)
        return None

    @workflow.update
    async def draft(self, request: DraftInput) -> ai.Draft:
        """Re-word the saved assessment for an audience. It never reassesses: one
        small model call, or the offline template if that call is not possible."""
        assessment = self._state.assessment
        assert assessment is not None  # the validator guarantees it
        case = self._case
        draft_request = ai.DraftRequest(
            case_id=case.case_id,
            title=case.title,
            audience=request.audience,
            assessment=assessment,
            customer_name=case.customer.name if case.customer else None,
            internal_terms=tuple(t.team for t in case.policy.tiers),
        )
        try:
            draft: ai.Draft = await workflow.execute_activity(
                ai.DRAFT_FOR_AUDIENCE,
                draft_request,
                task_queue=self._ai_task_queue(),
                result_type=ai.Draft,
                start_to_close_timeout=DRAFT_ATTEMPT_TIMEOUT,
                schedule_to_close_timeout=DRAFT_GIVE_UP_AFTER,
                retry_policy=ASSESSMENT_RETRY,
                summary=f"draft {request.audience}",
            )
        except ActivityError:
            return ai.offline_draft(draft_request)  # labelled source="offline"
        return draft

    @draft.validator
    def _validate_draft(self, request: DraftInput) -> None:
        _reject_if(self._invalid_input)
        # Reading is allowed to viewers, but never across accounts.
        if request.actor.account != self._case.account:
            _reject_if(f"{request.actor.user} belongs to another account than this case")
        if self._state.assessment is None:
            _reject_if("no AI assessment yet; drafts are derived from a saved assessment")

    # -- messages -----------------------------------------------------------------
    # Update validators reject requests that are plainly refused, which costs no
    # history. Refusals of who is asking (wrong role, account or owner) pass
    # validation on purpose, so the handler writes them to the timeline as an audit
    # trail. Handlers are synchronous: the state changes before anything can
    # interleave, so of many concurrent claims exactly one wins.
    #
    # Payloads arrive raw and are decoded here, not by the SDK, so that a malformed
    # one is a one-line refusal: signals take `*payloads` to catch a wrong number of
    # arguments too, updates a RawValue decoded in validator and handler.

    def _on_signal(self, action: engine.Action, payloads: tuple) -> None:
        if self._invalid_input is not None:
            return  # the case is failing with its input's reason; nothing to record
        try:
            if len(payloads) != 1:
                raise Malformed(f"expected one argument, got {len(payloads)}")
            request = parse_message(action.request, payloads[0])
        except Malformed as malformed:
            # Recorded as rejected, with the reason, instead of failing the workflow
            # task (which would wedge the case) or being dropped by the SDK.
            who = user_in(payloads[0] if payloads else None)
            reason = f"malformed payload: {malformed}"
            self._apply(
                engine.refused(self._state, self._case, action.name, reason, who, self._now())
            )
            return
        try:
            self._act(action, request)
        except engine.Refused:
            pass  # on record in the timeline; a refused signal never fails the case

    def _on_update(self, action: engine.Action, payload: RawValue) -> ActionResult:
        self._update_task = workflow.info().get_current_history_length()
        request = self._update_payload(action.name, action.request, payload)
        try:
            message = self._act(action, request)
        except engine.Refused as refused:
            # ApplicationError fails this update only; anything else would fail the task.
            raise ApplicationError(
                f"rejected: {refused.reason}", type=ACTION_REFUSED, non_retryable=True
            ) from None
        state = self._state
        return ActionResult(
            message=message, state=state.phase, tier_level=state.tier_level, assignee=state.assignee
        )

    def _validate(self, action: engine.Action, payload: RawValue) -> None:
        request = self._update_payload(action.name, action.request, payload)
        _reject_if(engine.plain_refusal(action.name, self._state, self._case, request, self._now()))

    def _act(self, action: engine.Action, request: Any) -> str:
        now = self._now()
        try:
            step = action.apply(self._state, self._case, request, now, patched=workflow.patched)
        except engine.Refused as refused:
            who = request.actor.user
            self._apply(
                engine.refused(self._state, self._case, action.name, refused.reason, who, now)
            )
            raise
        return self._apply(step)

    def _update_payload(self, action: str, model: type, payload: RawValue) -> Any:
        _reject_if(self._invalid_input)
        return decode_update(action, model, payload)

    # -- queries ------------------------------------------------------------------

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> CaseStatus:
        """The case now, bounded (escalator/domain/limits.py); the rest is in its history."""
        if self._invalid_input is not None:
            raise ApplicationError(self._invalid_input, type=INVALID_CASE_INPUT)
        return case_view.status(self._state, self._case, self._now())

    @workflow.query(name=TIMELINE_QUERY)
    def timeline(self) -> list[TimelineEvent]:
        """The timeline the case holds: its newest entries (limits.TIMELINE_KEPT)."""
        if self._invalid_input is not None:
            raise ApplicationError(self._invalid_input, type=INVALID_CASE_INPUT)
        return list(self._state.timeline)

    # -- bounds on one workflow task and one run --------------------------------------

    def _ready_to_continue_as_new(self) -> bool:
        info = workflow.info()
        long = (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._case.continue_as_new_after
            or info.get_current_history_size() >= limits.CONTINUE_AS_NEW_HISTORY_BYTES
        )
        # Only between messages and with nothing in flight, so nothing is lost.
        return (
            long
            and self._deliveries_in_flight == 0
            and (self._assessment_task is None or self._assessment_task.done())
            and workflow.all_handlers_finished()
        )

    def _continue_as_new(self) -> None:
        info = workflow.info()
        events, size = info.get_current_history_length(), info.get_current_history_size()
        self._apply(engine.continued_as_new(self._state, self._case, events, size, self._now()))
        # Events not yet in the ledger travel with the case and go out from the next
        # run: nothing is lost, and a flood of messages never holds the new run back.
        unsent = [e for batch in self._ledger_writes.values() for e in batch.events]
        unsent += self._ledger_pending
        carried = self._state.model_copy(update={"ledger_unsent": tuple(unsent)})
        workflow.continue_as_new(self._case.model_copy(update={"carried": carried}))

    # -- visibility ---------------------------------------------------------------

    def _publish_search_attributes(self) -> None:
        """Upsert what changed since the last publish, so the UI and `escalator list`
        filter on the live state."""
        if self._policy_version_on is None:
            # Asked once, at the first publish: cases that started before it replay
            # their upserts without PolicyVersion (PATCH policy-version).
            self._policy_version_on = workflow.patched(patches.POLICY_VERSION)
        current = case_view.search_attribute_values(
            self._state, self._case, with_policy_version=self._policy_version_on
        )
        updates = [
            _SEARCH_KEYS[name].value_set(value)
            if value is not None
            else _SEARCH_KEYS[name].value_unset()
            for name, value in current.items()
            if self._published.get(name, _UNSET) != value
        ]
        if updates:
            workflow.upsert_search_attributes(updates)
            self._published.update(current)

    def _now(self) -> datetime:
        """workflow.now(), but never before a deadline whose timer has fired.

        In the lagging case described in _wait_for_next_deadline_or_change, this
        dates what the deadline does no earlier than the deadline itself, and arms
        the next timer from there rather than from an older time.
        """
        now = workflow.now()
        floor = self._clock_floor
        return now if floor is None or now >= floor else floor


class _CaseMetrics:
    """Escalator's business metrics for one case. The labels are tiers ("L2"), move
    reasons (sla, manual, severity) and SLA clocks only: never a case id, a title, a
    user or free text. The SDK adds namespace, task_queue and workflow_type.

    The meter is workflow.metric_meter(), which records nothing while replaying; a
    Prometheus runtime (escalator/runtime/worker.py) appends _total to counters."""

    def __init__(self, meter: MetricMeter) -> None:
        self._escalations = meter.create_counter(
            "escalator_escalations", "Cases moved up a tier, by tiers and reason."
        )
        self._breaches = meter.create_counter(
            "escalator_sla_breaches", "SLA targets breached, by tier and clock."
        )
        self._claims = meter.create_counter("escalator_claims", "Claims, by tier.")
        self._time_to_claim = meter.create_histogram_timedelta(
            TIME_TO_CLAIM_METRIC,
            "SLA time (business hours, holds excluded) from entering a tier to a claim there.",
        )

    def escalated(self, from_level: int, to_level: int, reason: str) -> None:
        self._escalations.add(
            1, {"from_tier": _tier(from_level), "to_tier": _tier(to_level), "reason": reason}
        )

    def breached(self, level: int, clock: str) -> None:
        self._breaches.add(1, {"tier": _tier(level), "clock": clock})

    def claimed(self, level: int, waited: timedelta) -> None:
        self._claims.add(1, {"tier": _tier(level)})
        self._time_to_claim.record(waited, {"tier": _tier(level)})


# Its buckets (seconds) are set where the Prometheus runtime is made.
TIME_TO_CLAIM_METRIC = "escalator_time_to_claim_seconds"


def _tier(level: int) -> str:
    return f"L{level}"


def _paged_channel(notice: object) -> str | None:
    """The PagerDuty channel this delivery goes to, if it is a page."""
    if isinstance(notice, ChannelSend) and notice.settings.kind == "pagerduty":
        return notice.channel
    return None


def _cause_of(error: ActivityError) -> str:
    """Why an activity gave up, as its last failure said."""
    cause = error.cause
    return cause.message if isinstance(cause, FailureError) else str(cause or error)


def _reject_if(reason: str | None) -> None:
    if reason:
        raise ApplicationError(f"rejected: {reason}", type=ACTION_REFUSED, non_retryable=True)
