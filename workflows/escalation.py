"""EscalationWorkflow: the life of one case, from creation to resolution.

Read this file top to bottom:

1. The case starts at the tier its severity routes it to, and that tier is notified.
2. It then sleeps on a durable timer until the next deadline of that tier's SLA
   clocks (see escalator/domain/sla.py): warnings, the breach, final-tier repeats, and
   the stale-claim reminder and release. Clocks count business time only, and
   stop while the case is on hold. A message that changes the case wakes it early
   and the next deadline is recomputed.
3. A breach escalates to the next tier with a system-written note; the receiving
   tier and the customer are notified, and an AI assessment follows in the
   background. People can escalate (with a note), de-escalate, hold, resume,
   change the severity, claim, add notes and resolve.
4. Resolving ends handling. If the policy has a reopen window the case waits for a
   `reopen` until it closes. Mail still in flight is delivered, then the workflow
   returns a `CaseOutcome`. Long cases continue as new, carrying their state.

Notifications and the assessment are activities started in the background: the
case never waits for them before arming its next timer, so an SMTP or model outage
delays mail, never an escalation. Model calls run on their own task queue
(`<queue>-ai`), so a hung model cannot take the worker slots that mail needs.
Every message (signal or update) goes through one rule check; refusals answer the
caller (updates) or are written to the timeline.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    # email-validator imports these inside its functions; passed through here, the
    # sandbox does not import a fresh copy of them for every case it runs.
    import email_validator.rfc_constants
    import email_validator.version  # noqa: F401
    import idna.core
    import idna.intranges
    import idna.package_data  # noqa: F401
    from pydantic_core import to_json

    from escalator.domain import assessment as ai
    from escalator.domain import briefing, limits, routing, rules, sla
    from escalator.domain import search_attributes as search
    from escalator.domain.business_time import ALWAYS_OPEN, business_time_between
    from escalator.domain.errors import describe_validation_error
    from escalator.domain.models import (
        ActionResult,
        Actor,
        AddNoteRequest,
        CarriedState,
        CaseBrief,
        CaseInput,
        CaseNote,
        CaseOutcome,
        CasePhase,
        CaseStatus,
        ClaimRequest,
        Deadline,
        DeescalateRequest,
        DeliveryReceipt,
        DraftInput,
        EscalateRequest,
        Escalation,
        EscalationNote,
        HoldRequest,
        HoldState,
        Notification,
        NotificationPurpose,
        ReopenRequest,
        ResolveRequest,
        ResumeRequest,
        SetSeverityRequest,
        TierRef,
        TimelineEvent,
        case_input_problem,
    )
    from escalator.domain.policy import Tier

# Activity names, so this module does not import the SMTP and HTTP clients.
SEND_EMAIL = "send_email"
POST_WEBHOOK = "post_webhook"

# Delivery retries on its own schedule, independent of the case: transient failures
# back off up to a minute between tries for a whole day; permanent ones stop at once.
DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    non_retryable_error_types=["PermanentDeliveryError"],
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

# Changes to what running cases do are guarded with workflow.patched (see
# docs/changing-workflows.md); each id is kept until no case that started before it
# can still be open.
PATCH_SEVERITY_RAISE_ONLY = "severity-raise-only"  # lowering never promotes a case
PATCH_AI_TASK_QUEUE = "ai-task-queue"  # model calls on <task queue>-ai
PATCH_ASSESSMENT_NOT_CANCELLED = "assessment-not-cancelled"  # superseded ones are dropped
PATCH_DEADLINES_ALWAYS_TIMED = "deadlines-always-timed"  # a due deadline waits on a timer too
PATCH_CASE_INPUT_SIZE = "case-input-size"  # an oversized new case fails at once

_UNSET = object()
_ZERO = timedelta(0)
# A deadline already due still goes through a timer this short (see
# _wait_for_next_deadline_or_change for why).
_DUE_NOW_TIMER = timedelta(milliseconds=1)


class _Refused(Exception):
    """A message the case will not act on; `reason` is shown to whoever sent it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_INVALID_INPUT_CHARS = 1000


class _InvalidInput(Exception):
    """The workflow's input is not a case; the text names the field."""


def _decode_case_input(payloads: tuple) -> CaseInput:
    """The input as a CaseInput, or _InvalidInput with a one-line reason.

    The workflow decodes its own input. Left to the SDK, an input that does not
    validate fails the workflow *task*, which Temporal retries forever: the case
    stays RUNNING and nobody is told. Decoded here, it fails the workflow at once
    with `InvalidCaseInput`, whoever started it (a raw client, the temporal CLI).
    """
    if len(payloads) != 1:
        raise _InvalidInput(f"case: expected one argument (a CaseInput), got {len(payloads)}")
    try:
        return CaseInput.model_validate_json(json.dumps(payloads[0]))
    except (TypeError, ValueError) as error:
        errors = getattr(error, "errors", None)
        if callable(errors):  # pydantic's ValidationError is a ValueError
            # Shortened: a message may quote the value, and the value may be huge.
            message = describe_validation_error(error, prefix="case")
            raise _InvalidInput(_shorten(message, _INVALID_INPUT_CHARS)) from None
        raise _InvalidInput(f"case: not JSON ({type(error).__name__})") from None


@workflow.defn(name="EscalationWorkflow")
class EscalationWorkflow:
    @workflow.init
    def __init__(self, *payloads: object) -> None:
        # `*payloads`: the SDK hands over the input as plain JSON values, whatever
        # its shape and number of arguments, and _decode_case_input judges them.
        try:
            case = _decode_case_input(payloads)
        except _InvalidInput as invalid:
            self._invalid_input: str | None = str(invalid)
            return  # run fails the case; handlers and queries refuse until then
        self._invalid_input = None
        # The policy snapshot travels in the input, so the case keeps the rules it
        # started with for its whole life, whatever happens to the policy file.
        self._case = case
        self._policy = case.policy
        self._changes = 0  # bumped by anything that can move the next deadline
        self._deliveries_in_flight = 0
        self._published: dict[str, object] = {}  # search attributes as last upserted
        self._assessment_task: asyncio.Task | None = None  # the newest one
        self._assessment_generation = 0  # bumped when the running one is superseded
        self._reopen_until = None
        self._clock_floor: datetime | None = None  # see _now
        self._send_task = -1  # the workflow task (by history length) of _send_bytes
        self._send_bytes = 0  # activity input scheduled in that task
        carried = case.carried
        if carried is None:
            now = self._now()
            self._created_at = now
            self._severity = case.severity
            self._tier: Tier = routing.initial_tier(self._policy, case.severity)
            self._state: CasePhase = "open"
            self._assignee: str | None = None
            self._first_claim_at = None
            self._resolved_by: str | None = None
            self._resolution_summary = ""
            self._resolved_at = None
            self._sla_breached = False
            self._needs_review = False
            self._escalations: list[Escalation] = []  # the newest tier changes, with notes
            self._escalations_total = 0
            self._escalated_up = 0
            self._moves: list[tuple[int, int]] = []  # the newest, for the ping-pong guard
            self._notes: list[CaseNote] = []
            self._notes_total = 0
            self._timeline: list[TimelineEvent] = []
            self._timeline_total = 0
            # The SLA clocks of the current tier stay (see escalator/domain/sla.py).
            self._running_since = now  # None while on hold
            self._consumed = _ZERO  # business time consumed before running_since
            self._response_base = _ZERO
            self._activity_base = _ZERO
            self._fired: set[str] = set()  # deadlines already acted on in this stay
            self._hold: HoldState | None = None
            self._hold_total = _ZERO
            self._notifications_sent = 0  # numbers Message-IDs deterministically
            self._reopened = 0
            self._assessment: ai.AssessmentResult | None = None
        else:
            self._restore(carried)

    # -- the case's life ----------------------------------------------------------

    @workflow.run
    async def run(self, *payloads: object) -> CaseOutcome:
        if self._invalid_input is not None:
            raise ApplicationError(self._invalid_input, type="InvalidCaseInput", non_retryable=True)
        case = self._case
        if case.carried is None and workflow.patched(PATCH_CASE_INPUT_SIZE):
            # Bounded where cases are started; checked here too for raw clients.
            # Cases started before this check may be larger, and replay as they ran.
            problem = case_input_problem(case)
            if problem is not None:
                field, reason = problem
                raise ApplicationError(
                    f"case: {field or 'input'}: {reason}",
                    type="InvalidCaseInput",
                    non_retryable=True,
                )
        if case.carried is None:
            override = self._policy.override_for(case.severity)
            routed = f" (severity override for {case.severity})" if override else ""
            self._record("created", f"{case.severity} case opened at {self._tier.label}{routed}")
            self._notify_tier("tier_entry", channel=override.notification if override else None)

        while True:
            while self._state != "resolved":
                self._publish_search_attributes()
                if self._ready_to_continue_as_new():
                    self._continue_as_new()  # raises: this run ends here
                await self._wait_for_next_deadline_or_change()
            self._publish_search_attributes()
            # An assessment still running is moot once the case is resolved.
            self._supersede_assessment()
            if not await self._wait_for_reopen():
                break

        # Nothing is lost: mail queued before the resolve still goes out, and any
        # message being handled finishes before the workflow closes.
        await workflow.wait_condition(
            lambda: self._deliveries_in_flight == 0 and workflow.all_handlers_finished()
        )
        return self._outcome()

    async def _wait_for_next_deadline_or_change(self) -> None:
        deadline, target = self._next_deadline()
        changes_seen = self._changes

        def woken() -> bool:
            return self._changes != changes_seen or self._ready_to_continue_as_new()

        if deadline is None:
            await workflow.wait_condition(woken)
            return
        remaining = deadline.at - self._now()
        # Whether a deadline is already due must not decide which commands we send.
        # workflow.now() can lag: a query that reaches the worker while a workflow
        # task waits (say, after a server restart) makes the SDK apply the new
        # events, a fired timer among them, with the previous task's time; a replay
        # later sees the true time. So a due deadline waits on a 1 ms timer, and
        # both runs send the same timer, only its duration differs (allowed).
        if workflow.patched(PATCH_DEADLINES_ALWAYS_TIMED):
            remaining = max(remaining, _DUE_NOW_TIMER)
        if remaining > _ZERO:
            try:
                await workflow.wait_condition(
                    woken, timeout=remaining, timeout_summary=deadline.label
                )
                return  # the case changed; the caller loops and recomputes
            except TimeoutError:
                pass
        # The deadline's time has come, whatever workflow.now() says.
        self._clock_floor = max(self._clock_floor or deadline.at, deadline.at)
        self._on_deadline(deadline, target)

    def _on_deadline(self, deadline: Deadline, target: sla.Target | None) -> None:
        if target is None:  # the hold's end: until, or max_hold
            self._resume(by="system", why=deadline.consequence)
            return
        self._fired.add(target.key)
        if target.kind == "warning":
            self._record("sla_warning", f"{deadline.label} passed: {deadline.consequence}")
            self._notify_tier("warning")
        elif target.kind == "breach":
            self._on_breach(deadline, target)
        elif target.kind == "repeat":
            self._record("repeat", f"{deadline.label}: {deadline.consequence}")
            self._notify_tier("repeat")
        elif target.kind == "stale":
            self._record("stale_reminder", deadline.consequence, actor=self._assignee)
            self._notify_assignee()
        else:  # release: the tier is told and must claim the case anew
            released = self._assignee
            self._state, self._assignee = "open", None
            self._response_base = self._consumed_now()
            self._changes += 1
            self._record("claim_released", f"no activity; {released}'s claim released")
            self._notify_tier("claim_released")

    def _on_breach(self, deadline: Deadline, target: sla.Target) -> None:
        self._sla_breached = True
        receiver = routing.next_tier(self._policy, self._tier.level)
        if receiver is None:
            self._record("sla_breached", f"{deadline.label} passed on the final tier")
            self._notify_tier("sla_breach")
            return
        note = EscalationNote(reason=sla.breach_reason(target.clock))
        self._move_to(receiver, by="system", automatic=True, note=note)

    def _move_to(self, receiver: Tier, *, by: str, automatic: bool, note: EscalationNote) -> None:
        """Change tiers. The receiving tier owns the case and must claim it anew."""
        source = self._tier
        upward = receiver.level > source.level
        self._escalations.append(
            Escalation(
                from_level=source.level,
                to_level=receiver.level,
                at=self._now(),
                by=by,
                automatic=automatic,
                note=note,
            )
        )
        del self._escalations[: -limits.ESCALATIONS_KEPT]
        self._escalations_total += 1
        self._escalated_up += upward
        self._moves.append((source.level, receiver.level))
        del self._moves[: -limits.MOVES_KEPT]
        self._enter_tier(receiver)
        verb = "escalated" if upward else "deescalated"
        self._record(verb, f"{source.label} → {receiver.label}: {note.reason}", actor=by)
        bounces = rules.bounce_count(self._moves, source.level, receiver.level)
        if bounces >= self._policy.max_bounces and not self._needs_review:
            self._needs_review = True
            self._record(
                "needs_review",
                f"bounced {bounces} times between L{min(source.level, receiver.level)} and "
                f"L{max(source.level, receiver.level)}; manual moves are refused until reviewed",
            )
        if upward:
            self._notify_tier("tier_entry", from_tier=source)
            self._notify_customer()
            self._start_assessment()
        else:
            self._notify_tier("deescalation", from_tier=source)

    def _enter_tier(self, tier: Tier) -> None:
        """A new stay in a tier: fresh clocks, unclaimed. A hold keeps them paused."""
        self._tier = tier
        self._state, self._assignee = "open", None
        self._consumed = self._response_base = self._activity_base = _ZERO
        self._running_since = None if self._hold is not None else self._now()
        self._fired = set()
        self._changes += 1

    async def _wait_for_reopen(self) -> bool:
        """After a resolve: wait out the policy's reopen window. True if reopened."""
        window = self._policy.reopen_window
        if window is None:
            return False
        self._reopen_until = self._resolved_at + window
        try:
            await workflow.wait_condition(
                lambda: self._state != "resolved",
                timeout=self._reopen_until - self._now(),
                timeout_summary="reopen window",
            )
        except TimeoutError:
            self._reopen_until = None
            return False
        return True

    # -- the AI assessment -------------------------------------------------------
    # One structured model call per escalation, in the background. The escalation
    # mail above has already been started; the assessment follows when it is ready,
    # or the timeline says it is unavailable. A newer escalation supersedes it.

    def _supersede_assessment(self) -> None:
        """The running assessment no longer matters (a newer escalation, or resolved).

        It is left to finish and its answer is dropped, rather than cancelled:
        cancelling a running model call in the same workflow task as an update
        wedged that task (it timed out and the update was aborted), and the call is
        bounded by its own timeouts anyway. Cases that started before this change
        keep cancelling it, as their histories say."""
        if self._assessment_task is None or self._assessment_task.done():
            return
        if workflow.patched(PATCH_ASSESSMENT_NOT_CANCELLED):
            self._assessment_generation += 1
        else:
            self._assessment_task.cancel()

    def _start_assessment(self) -> None:
        self._supersede_assessment()
        tier = self._tier
        case = self._case
        request = ai.AssessmentRequest(
            case_id=case.case_id,
            title=case.title,
            description=case.description,
            severity=self._severity,
            account=case.account,
            data=case.data,
            customer_name=case.customer.name if case.customer else None,
            notes=tuple(self._notes),
            notes_omitted=self._notes_total - len(self._notes),
            escalations=tuple(self._escalations),
            escalations_omitted=self._escalations_total - len(self._escalations),
            tier=_tier_ref(tier),
            tier_capabilities=tier.capabilities,
            purpose="ai_stage" if tier.kind == "ai" else "escalation",
        )
        # Only what the prompt can send travels, however many notes the case holds.
        request = ai.trimmed_for_prompt(request)
        self._assessment_task = asyncio.create_task(self._assess(request))

    async def _assess(self, request: ai.AssessmentRequest) -> None:
        generation = self._assessment_generation
        await self._send_budget(request)
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
            if generation != self._assessment_generation:
                return  # superseded while it ran: nobody is waiting for it
            cause = error.cause.message if error.cause else str(error)
            self._record("assessment_unavailable", f"assessment unavailable: {cause}")
            # The engineer still gets something to start from: the extractive offline
            # assessment, computed here (pure and deterministic) and labelled as such.
            result = ai.offline_assessment(request)
        if generation != self._assessment_generation:
            return  # superseded while it ran: its tier and its facts are out of date
        self._assessment = result
        origin = "offline heuristic" if result.source == "offline" else result.model
        self._record(
            "assessment",
            f"{result.confidence}-confidence assessment ({origin}): "
            f"{_shorten(result.summary, 200)}",
        )
        if request.purpose == "ai_stage":
            # At the AI-agent stage the assessment is the automated recommendation,
            # for the stage's recipients and the customer; a human still resolves.
            self._notify_tier("ai_recommendation")
            self._notify_customer("customer_recommendation")
        else:
            self._notify_tier("assessment")

    def _ai_task_queue(self) -> str | None:
        """Model calls run on their own task queue and worker slots, so a model that
        hangs can never hold the slots that mail needs. Cases started before this
        change keep scheduling them on the case's queue (None: the workflow's own)."""
        if workflow.patched(PATCH_AI_TASK_QUEUE):
            return ai.ai_task_queue(workflow.info().task_queue)
        return None

    @workflow.update
    async def draft(self, request: DraftInput) -> ai.Draft:
        """Re-word the saved assessment for an audience. It never reassesses: one
        small model call, or the offline template if that call is not possible."""
        assert self._assessment is not None  # the validator guarantees it
        draft_request = ai.DraftRequest(
            case_id=self._case.case_id,
            title=self._case.title,
            audience=request.audience,
            assessment=self._assessment,
            customer_name=self._case.customer.name if self._case.customer else None,
            internal_terms=tuple(t.team for t in self._policy.tiers),
        )
        try:
            return await workflow.execute_activity(
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

    @draft.validator
    def _validate_draft(self, request: DraftInput) -> None:
        self._reject_if(self._invalid_input)
        # Reading is allowed to viewers, but never across accounts.
        if request.actor.account != self._case.account:
            self._reject_if(f"{request.actor.user} belongs to another account than this case")
        if self._assessment is None:
            self._reject_if("no AI assessment yet; drafts are derived from a saved assessment")

    # -- messages -----------------------------------------------------------------
    # Each action is a signal (fire-and-forget) and an update (answers the caller).
    # Update validators reject requests that are plainly refused, which costs no
    # history. Refusals of who is asking (wrong role, account or owner) pass
    # validation on purpose, so the handler writes them to the timeline as an audit
    # trail. Handlers are synchronous: the state changes before anything can
    # interleave, so of many concurrent claims exactly one wins.
    #
    # Each message's model is named in its first line (ClaimRequest for claim, and
    # so on). Payloads arrive raw and are decoded here, not by the SDK, so that a
    # malformed one is a one-line refusal: signals take `*payloads` to catch a wrong
    # number of arguments too, updates a RawValue decoded in validator and handler.

    @workflow.signal
    def claim(self, *payloads: object) -> None:
        request = self._signal_payload("claim", ClaimRequest, payloads)
        if request is not None:
            self._as_signal("claim", request.actor, lambda: self._claim(request))

    @workflow.update
    def try_claim(self, payload: RawValue) -> ActionResult:
        request = self._update_payload("claim", ClaimRequest, payload)
        return self._as_update("claim", request.actor, lambda: self._claim(request))

    @try_claim.validator
    def _validate_claim(self, payload: RawValue) -> None:
        request = self._update_payload("claim", ClaimRequest, payload)
        self._reject_unless_audited(
            request.actor, "claim", rules.claim_refusal(request.actor, self._facts())
        )

    @workflow.signal
    def resolve(self, *payloads: object) -> None:
        request = self._signal_payload("resolve", ResolveRequest, payloads)
        if request is not None:
            self._as_signal("resolve", request.actor, lambda: self._resolve(request))

    @workflow.update
    def try_resolve(self, payload: RawValue) -> ActionResult:
        request = self._update_payload("resolve", ResolveRequest, payload)
        return self._as_update("resolve", request.actor, lambda: self._resolve(request))

    @try_resolve.validator
    def _validate_resolve(self, payload: RawValue) -> None:
        request = self._update_payload("resolve", ResolveRequest, payload)
        self._reject_unless_audited(
            request.actor, "resolve", rules.resolve_refusal(request.actor, self._facts())
        )

    @workflow.signal
    def escalate(self, *payloads: object) -> None:
        request = self._signal_payload("escalate", EscalateRequest, payloads)
        if request is not None:
            self._as_signal("escalate", request.actor, lambda: self._escalate(request))

    @workflow.update
    def try_escalate(self, payload: RawValue) -> ActionResult:
        request = self._update_payload("escalate", EscalateRequest, payload)
        return self._as_update("escalate", request.actor, lambda: self._escalate(request))

    @try_escalate.validator
    def _validate_escalate(self, payload: RawValue) -> None:
        request = self._update_payload("escalate", EscalateRequest, payload)
        self._reject_unless_audited(
            request.actor,
            "escalate",
            rules.escalate_refusal(request.actor, self._facts(), request.note)
            or self._bounce_refusal(routing.next_tier(self._policy, self._tier.level)),
        )

    @workflow.signal
    def add_note(self, *payloads: object) -> None:
        request = self._signal_payload("add_note", AddNoteRequest, payloads)
        if request is not None:
            self._as_signal("add_note", request.actor, lambda: self._add_note(request))

    @workflow.update
    def try_add_note(self, payload: RawValue) -> ActionResult:
        request = self._update_payload("add_note", AddNoteRequest, payload)
        return self._as_update("add_note", request.actor, lambda: self._add_note(request))

    @try_add_note.validator
    def _validate_add_note(self, payload: RawValue) -> None:
        request = self._update_payload("add_note", AddNoteRequest, payload)
        self._reject_unless_audited(
            request.actor,
            "add_note",
            rules.note_refusal(request.actor, self._facts()) or self._note_limit_refusal(),
        )

    @workflow.signal
    def hold(self, *payloads: object) -> None:
        request = self._signal_payload("hold", HoldRequest, payloads)
        if request is not None:
            self._as_signal("hold", request.actor, lambda: self._put_on_hold(request))

    @workflow.update
    def try_hold(self, payload: RawValue) -> ActionResult:
        request = self._update_payload("hold", HoldRequest, payload)
        return self._as_update("hold", request.actor, lambda: self._put_on_hold(request))

    @try_hold.validator
    def _validate_hold(self, payload: RawValue) -> None:
        request = self._update_payload("hold", HoldRequest, payload)
        self._reject_unless_audited(
            request.actor, "hold", rules.hold_refusal(request.actor, self._facts(), request.reason)
        )

    @workflow.signal
    def resume(self, *payloads: object) -> None:
        request = self._signal_payload("resume", ResumeRequest, payloads)
        if request is not None:
            self._as_signal("resume", request.actor, lambda: self._resume_by(request))

    @workflow.update
    def try_resume(self, payload: RawValue) -> ActionResult:
        request = self._update_payload("resume", ResumeRequest, payload)
        return self._as_update("resume", request.actor, lambda: self._resume_by(request))

    @try_resume.validator
    def _validate_resume(self, payload: RawValue) -> None:
        request = self._update_payload("resume", ResumeRequest, payload)
        self._reject_unless_audited(
            request.actor, "resume", rules.resume_refusal(request.actor, self._facts())
        )

    @workflow.signal
    def deescalate(self, *payloads: object) -> None:
        request = self._signal_payload("deescalate", DeescalateRequest, payloads)
        if request is not None:
            self._as_signal("deescalate", request.actor, lambda: self._deescalate(request))

    @workflow.update
    def try_deescalate(self, payload: RawValue) -> ActionResult:
        request = self._update_payload("deescalate", DeescalateRequest, payload)
        return self._as_update("deescalate", request.actor, lambda: self._deescalate(request))

    @try_deescalate.validator
    def _validate_deescalate(self, payload: RawValue) -> None:
        request = self._update_payload("deescalate", DeescalateRequest, payload)
        self._reject_unless_audited(
            request.actor,
            "deescalate",
            rules.deescalate_refusal(request.actor, self._facts(), request.reason)
            or self._lower_tier_problem(request.to_level),
        )

    @workflow.signal
    def set_severity(self, *payloads: object) -> None:
        request = self._signal_payload("set_severity", SetSeverityRequest, payloads)
        if request is not None:
            self._as_signal("set_severity", request.actor, lambda: self._set_severity(request))

    @workflow.update
    def try_set_severity(self, payload: RawValue) -> ActionResult:
        request = self._update_payload("set_severity", SetSeverityRequest, payload)
        return self._as_update("set_severity", request.actor, lambda: self._set_severity(request))

    @try_set_severity.validator
    def _validate_set_severity(self, payload: RawValue) -> None:
        request = self._update_payload("set_severity", SetSeverityRequest, payload)
        self._reject_unless_audited(
            request.actor, "set_severity", rules.severity_refusal(request.actor, self._facts())
        )

    @workflow.signal
    def reopen(self, *payloads: object) -> None:
        request = self._signal_payload("reopen", ReopenRequest, payloads)
        if request is not None:
            self._as_signal("reopen", request.actor, lambda: self._reopen(request))

    @workflow.update
    def try_reopen(self, payload: RawValue) -> ActionResult:
        request = self._update_payload("reopen", ReopenRequest, payload)
        return self._as_update("reopen", request.actor, lambda: self._reopen(request))

    @try_reopen.validator
    def _validate_reopen(self, payload: RawValue) -> None:
        request = self._update_payload("reopen", ReopenRequest, payload)
        self._reject_unless_audited(
            request.actor,
            "reopen",
            rules.reopen_refusal(request.actor, self._facts()) or self._reopen_limit_refusal(),
        )

    @workflow.query
    def status(self) -> CaseStatus:
        """The case now: its state, the newest notes and timeline, and totals.

        Bounded (see escalator/domain/limits.py), so the answer stays far below Temporal's
        payload limit however long the case has run; the rest is in its history."""
        if self._invalid_input is not None:
            raise ApplicationError(self._invalid_input, type="InvalidCaseInput")
        deadline, _ = self._next_deadline()
        hold_total = self._hold_total
        if self._hold is not None:
            hold_total += self._now() - self._hold.since
        return CaseStatus(
            case_id=self._case.case_id,
            title=self._case.title,
            state=self._state,
            severity=self._severity,
            account=self._case.account,
            tier_level=self._tier.level,
            tier_name=self._tier.name,
            team=self._tier.team,
            assignee=self._assignee,
            escalations=self._escalation_count(),
            sla_breached=self._sla_breached,
            created_at=self._created_at,
            next_deadline=deadline,
            last_escalation=self._escalations[-1] if self._escalations else None,
            policy_name=self._policy.name,
            notes=tuple(self._notes[-limits.STATUS_NOTES :]),
            timeline=tuple(self._timeline[-limits.STATUS_TIMELINE :]),
            assessment=self._assessment,
            hold=self._hold,
            total_hold_seconds=hold_total.total_seconds(),
            as_of=self._now(),
            needs_review=self._needs_review,
            reopened=self._reopened,
            reopen_until=self._reopen_until,
            notes_total=self._notes_total,
            timeline_total=self._timeline_total,
        )

    @workflow.query
    def timeline(self) -> list[TimelineEvent]:
        """The timeline the case holds: its newest entries (limits.TIMELINE_KEPT)."""
        if self._invalid_input is not None:
            raise ApplicationError(self._invalid_input, type="InvalidCaseInput")
        return list(self._timeline)

    # -- actions (run only after the rules allow them) ----------------------------

    def _claim(self, request: ClaimRequest) -> str:
        self._refuse_if(rules.claim_refusal(request.actor, self._facts()))
        if self._assignee == request.actor.user:
            return f"already claimed by you ({request.actor.user})"
        self._state = "claimed"
        self._assignee = request.actor.user
        if self._first_claim_at is None:
            self._first_claim_at = self._now()
        self._activity_base = self._consumed_now()
        self._changes += 1
        self._record("claimed", f"claimed at {self._tier.label}", actor=request.actor.user)
        return "claimed"

    def _resolve(self, request: ResolveRequest) -> str:
        self._refuse_if(rules.resolve_refusal(request.actor, self._facts()))
        if self._hold is not None:
            self._resume(by=request.actor.user, why="resolved")
        self._state = "resolved"
        self._resolved_by = request.actor.user
        self._resolution_summary = request.summary
        self._resolved_at = self._now()
        self._changes += 1
        summary = f": {request.summary}" if request.summary else ""
        self._record("resolved", f"resolved at {self._tier.label}{summary}", request.actor.user)
        return "resolved"

    def _escalate(self, request: EscalateRequest) -> str:
        self._refuse_if(rules.escalate_refusal(request.actor, self._facts(), request.note))
        receiver = routing.next_tier(self._policy, self._tier.level)
        assert receiver is not None  # escalate_refusal refuses on the final tier
        self._refuse_if(self._bounce_refusal(receiver))
        self._move_to(receiver, by=request.actor.user, automatic=False, note=request.note)
        return f"escalated to {receiver.label}"

    def _add_note(self, request: AddNoteRequest) -> str:
        self._refuse_if(
            rules.note_refusal(request.actor, self._facts()) or self._note_limit_refusal()
        )
        self._notes.append(CaseNote(at=self._now(), author=request.actor.user, text=request.text))
        self._keep_newest_notes()
        self._notes_total += 1
        self._record("note", _shorten(request.text, 200), actor=request.actor.user)
        if request.actor.role == "customer" and self._hold is not None:
            self._resume(by=request.actor.user, why="the customer replied")
        self._touch()
        return "note added"

    def _keep_newest_notes(self) -> None:
        """Hold the newest notes, at most NOTES_KEPT and NOTES_KEPT_BYTES of them (the
        newest always). Older notes stay in the history, and are counted."""
        del self._notes[: -limits.NOTES_KEPT]
        sizes = [_json_size(note.text) for note in self._notes]
        while len(self._notes) > 1 and sum(sizes) > limits.NOTES_KEPT_BYTES:
            del self._notes[0], sizes[0]

    def _put_on_hold(self, request: HoldRequest) -> str:
        self._refuse_if(rules.hold_refusal(request.actor, self._facts(), request.reason))
        self._consumed = self._consumed_now()
        self._running_since = None
        self._hold = HoldState(
            since=self._now(), reason=request.reason, by=request.actor.user, until=request.until
        )
        self._changes += 1
        until = f" until {request.until:%Y-%m-%d %H:%M} UTC" if request.until else ""
        self._record("hold", f"on hold{until}: {request.reason}", actor=request.actor.user)
        return "on hold; SLA clocks paused"

    def _resume_by(self, request: ResumeRequest) -> str:
        self._refuse_if(rules.resume_refusal(request.actor, self._facts()))
        self._resume(by=request.actor.user, why="resumed")
        return "resumed; SLA clocks running"

    def _resume(self, *, by: str, why: str) -> None:
        assert self._hold is not None
        held = self._now() - self._hold.since
        self._hold_total += held
        self._hold = None
        self._running_since = self._now()
        self._changes += 1
        self._record("resumed", f"{why} after {_hours(held)} on hold", actor=by)

    def _deescalate(self, request: DeescalateRequest) -> str:
        self._refuse_if(
            rules.deescalate_refusal(request.actor, self._facts(), request.reason)
            or self._lower_tier_problem(request.to_level)
        )
        receiver = self._lower_tier(request.to_level)
        self._refuse_if(self._bounce_refusal(receiver))
        note = EscalationNote(reason=request.reason)
        self._move_to(receiver, by=request.actor.user, automatic=False, note=note)
        return f"de-escalated to {receiver.label}"

    def _set_severity(self, request: SetSeverityRequest) -> str:
        self._refuse_if(rules.severity_refusal(request.actor, self._facts()))
        before, after = self._severity, request.severity
        if before == after:
            return f"severity is already {after}"
        self._severity = after
        self._changes += 1
        self._record("severity", f"{before} → {after}", actor=request.actor.user)
        self._touch()
        # Raising re-routes at once; lowering never moves a case, either way.
        if workflow.patched(PATCH_SEVERITY_RAISE_ONLY):
            receiver = routing.severity_reroute(self._policy, before, after, self._tier.level)
        else:  # cases that started before the fix keep the behaviour they replay with
            override = self._policy.override_for(after)
            moves = override is not None and override.route_to > self._tier.level
            receiver = self._policy.tier(override.route_to) if moves else None
        if receiver is not None:
            note = EscalationNote(reason=f"severity raised from {before} to {after}")
            self._move_to(receiver, by=request.actor.user, automatic=False, note=note)
            return f"severity {after}; re-routed to {receiver.label}"
        return f"severity {after}"

    def _reopen(self, request: ReopenRequest) -> str:
        self._refuse_if(
            rules.reopen_refusal(request.actor, self._facts()) or self._reopen_limit_refusal()
        )
        self._reopened += 1
        self._reopen_until = None
        self._enter_tier(self._tier)  # handling restarts at the last tier
        why = f": {request.reason}" if request.reason else ""
        self._record("reopened", f"reopened at {self._tier.label}{why}", request.actor.user)
        self._notify_tier("reopened")
        return f"reopened at {self._tier.label}"

    def _touch(self) -> None:
        """Activity on a claimed case restarts its stale-claim clock."""
        if self._state == "claimed":
            self._activity_base = self._consumed_now()
            if self._tier.stale_after is not None:
                self._changes += 1

    # -- message plumbing ---------------------------------------------------------

    def _facts(self) -> rules.CaseFacts:
        return rules.CaseFacts(
            state=self._state,
            account=self._case.account,
            assignee=self._assignee,
            final_tier=routing.is_final(self._policy, self._tier.level),
            lowest_tier=self._tier.level == self._policy.tiers[0].level,
            on_hold=self._hold is not None,
            reopenable=self._reopen_until is not None and self._now() < self._reopen_until,
        )

    def _note_limit_refusal(self) -> str | None:
        if self._notes_total >= limits.MAX_NOTES_PER_CASE:
            return (
                f"notes: the case has {self._notes_total} notes, the limit "
                f"({limits.MAX_NOTES_PER_CASE}); open a follow-up case"
            )
        return None

    def _reopen_limit_refusal(self) -> str | None:
        if self._reopened >= limits.MAX_REOPENS:
            return (
                f"reopen: the case was reopened {self._reopened} times, the limit "
                f"({limits.MAX_REOPENS}); open a new case"
            )
        return None

    def _bounce_refusal(self, receiver: Tier | None) -> str | None:
        if receiver is None:
            return None
        return rules.bounce_refusal(
            self._moves, self._tier.level, receiver.level, self._policy.max_bounces
        )

    def _lower_tier_problem(self, to_level: int | None) -> str | None:
        if to_level is None:
            return None
        levels = [t.level for t in self._policy.tiers]
        if to_level not in levels or to_level >= self._tier.level:
            lower = [str(level) for level in levels if level < self._tier.level]
            return f"to_level {to_level} is not a lower tier (choose one of: {', '.join(lower)})"
        return None

    def _lower_tier(self, to_level: int | None) -> Tier:
        if to_level is not None:
            return self._policy.tier(to_level)
        return [t for t in self._policy.tiers if t.level < self._tier.level][-1]

    def _perform(self, action: str, actor: Actor, apply: Callable[[], str]) -> str:
        try:
            self._refuse_if(rules.access_refusal(actor, self._facts(), action))
            return apply()
        except _Refused as refused:
            self._record("rejected", f"{action} refused: {refused.reason}", actor=actor.user)
            raise

    def _signal_payload(self, action: str, model: type, payloads: tuple):
        """Decode a signal ourselves: a malformed one is recorded as rejected, with
        the reason, instead of failing the workflow task (which would wedge the case)
        or being dropped silently by the SDK's decoder. Signal handlers take
        `*payloads`, so a wrong number of arguments is caught here too."""
        if self._invalid_input is not None:
            return None  # the case is failing with its input's reason; nothing to record
        try:
            if len(payloads) != 1:
                raise _Malformed(f"expected one argument, got {len(payloads)}")
            return _parse_message(model, payloads[0])
        except _Malformed as malformed:
            data = payloads[0] if payloads else None
            self._record(
                "rejected", f"{action} refused: malformed payload: {malformed}", _user_in(data)
            )
            return None

    def _update_payload(self, action: str, model: type, payload: RawValue):
        """Decode an update's argument. In the validator a malformed one is rejected
        with a one-line reason before anything is written to history."""
        self._reject_if(self._invalid_input)
        try:
            try:
                value = workflow.payload_converter().from_payload(payload.payload)
            except Exception as error:  # not even JSON (a foreign client's encoding)
                raise _Malformed(_one_line_error(error)) from None
            return _parse_message(model, value)
        except _Malformed as malformed:
            raise ApplicationError(
                f"rejected: {action}: malformed payload: {malformed}",
                type="ActionRefused",
                non_retryable=True,
            ) from None

    def _as_signal(self, action: str, actor: Actor, apply: Callable[[], str]) -> None:
        # A refused signal is on record in the timeline and never fails the case.
        try:
            self._perform(action, actor, apply)
        except _Refused:
            pass

    def _as_update(self, action: str, actor: Actor, apply: Callable[[], str]) -> ActionResult:
        try:
            message = self._perform(action, actor, apply)
        except _Refused as refused:
            # ApplicationError fails this update only; anything else would fail the task.
            raise ApplicationError(
                f"rejected: {refused.reason}", type="ActionRefused", non_retryable=True
            ) from None
        return ActionResult(
            message=message, state=self._state, tier_level=self._tier.level, assignee=self._assignee
        )

    @staticmethod
    def _refuse_if(reason: str | None) -> None:
        if reason:
            raise _Refused(reason)

    def _reject_unless_audited(self, actor: Actor, action: str, reason: str | None) -> None:
        """Reject in the validator (no history) what is plainly refused; but refusals
        of who is asking pass, so the handler writes them to the timeline with the
        actor: every refused attempt by the wrong role, account or owner is on record."""
        if reason and not rules.authority_refusal(actor, self._facts(), action):
            self._reject_if(reason)

    @staticmethod
    def _reject_if(reason: str | None) -> None:
        if reason:
            raise ApplicationError(f"rejected: {reason}", type="ActionRefused", non_retryable=True)

    # -- notifications ------------------------------------------------------------

    def _notify_tier(
        self,
        purpose: NotificationPurpose,
        *,
        from_tier: Tier | None = None,
        channel: str | None = None,
    ) -> None:
        tier = self._tier
        if not tier.notify and not tier.webhook:
            self._record("notification_skipped", f"{tier.label} has no email or webhook")
            return
        notification = self._notification(
            purpose,
            recipients=tier.notify,
            webhook=tier.webhook,
            from_tier=from_tier,
            channel=channel,
        )
        summary = f"notify {tier.label.split(' ')[0]} {tier.team}"
        if tier.notify:
            self._deliver(SEND_EMAIL, notification, summary=f"{summary} ({purpose})")
        if tier.webhook:
            self._deliver(POST_WEBHOOK, notification, summary=f"{summary} webhook ({purpose})")

    def _notify_assignee(self) -> None:
        """Remind the assignee directly when their user name is an address, else
        through their tier's recipients (the mail names them)."""
        assignee = self._assignee or ""
        if "@" in assignee and "." in assignee.split("@")[-1]:
            notification = self._notification(
                "stale_reminder", recipients=(assignee,), webhook=None, from_tier=None, channel=None
            )
            self._deliver(SEND_EMAIL, notification, summary=f"remind {assignee}")
        else:
            self._notify_tier("stale_reminder")

    def _notify_customer(self, purpose: NotificationPurpose = "customer_escalation") -> None:
        customer = self._case.customer
        if customer is None or customer.email is None:
            return
        notification = self._notification(
            purpose, recipients=(customer.email,), webhook=None, from_tier=None, channel=None
        )
        self._deliver(SEND_EMAIL, notification, summary=f"tell the customer ({purpose})")

    def _notification(self, purpose: NotificationPurpose, **fields) -> Notification:
        self._notifications_sent += 1
        from_tier = fields.pop("from_tier")
        case = self._case
        return Notification(
            # Stable per (case, event): retries and replays reuse it, so a duplicate
            # delivery can be recognised by the receiving side.
            message_id=f"<{case.case_id}.{self._notifications_sent}.{purpose}@escalator>",
            purpose=purpose,
            case=CaseBrief(
                case_id=case.case_id,
                title=case.title,
                severity=self._severity,
                account=case.account,
                description_excerpt=_shorten(case.description, limits.DESCRIPTION_EXCERPT_CHARS),
                customer_name=case.customer.name if case.customer else None,
            ),
            tier=_tier_ref(self._tier),
            from_tier=_tier_ref(from_tier) if from_tier else None,
            # The newest few, and how many there are: mail needs no more, and a
            # notification must stay small however long the case has run.
            escalations=tuple(self._escalations[-limits.NOTIFICATION_ESCALATIONS :]),
            escalations_total=self._escalations_total,
            notes=tuple(
                note.model_copy(
                    update={"text": _shorten(note.text, limits.NOTIFICATION_NOTE_CHARS)}
                )
                for note in self._notes[-limits.NOTIFICATION_NOTES :]
            ),
            notes_total=self._notes_total,
            deadline=self._breach_deadline(),
            assessment=self._assessment,
            occurred_at=self._now(),
            **fields,
        )

    def _deliver(self, activity: str, notification: Notification, *, summary: str) -> None:
        # The task counts itself out when done (see _deliveries_in_flight), so the
        # run loop can wait for all of them before the case closes.
        self._deliveries_in_flight += 1
        asyncio.create_task(self._deliver_and_record(activity, notification, summary))  # noqa: RUF006

    async def _deliver_and_record(
        self, activity: str, notification: Notification, summary: str
    ) -> None:
        what = f"{notification.purpose} {notification.message_id}"
        await self._send_budget(notification)
        try:
            receipt = await workflow.execute_activity(
                activity,
                notification,
                result_type=DeliveryReceipt,
                start_to_close_timeout=DELIVERY_ATTEMPT_TIMEOUT,
                schedule_to_close_timeout=DELIVERY_GIVE_UP_AFTER,
                retry_policy=DELIVERY_RETRY,
                summary=summary,
            )
            self._record("notification_sent", f"{receipt.channel} {what}: {receipt.detail}")
        except ActivityError as error:
            cause = error.cause.message if error.cause else str(error)
            self._record("notification_failed", f"{activity} {what}: {cause}")
        finally:
            self._deliveries_in_flight -= 1

    async def _send_budget(self, activity_input) -> None:
        """Wait, if need be, until this input fits in the current workflow task.

        One task's completion carries every activity it schedules, and gRPC refuses
        more than 4 MiB. A burst of messages handled in one task could schedule more,
        and that task would fail on every retry. So past TASK_SEND_BYTES the rest
        waits for the next task, which the activities already scheduled bring. The
        history length tells tasks apart, the same live and on replay."""
        size = _json_size(activity_input)
        while True:
            task = workflow.info().get_current_history_length()
            if task != self._send_task:
                self._send_task, self._send_bytes = task, 0
            if self._send_bytes == 0 or self._send_bytes + size <= limits.TASK_SEND_BYTES:
                self._send_bytes += size
                return
            await workflow.wait_condition(
                lambda t=task: workflow.info().get_current_history_length() != t
            )

    # -- clocks -------------------------------------------------------------------

    def _calendar(self):
        return self._policy.calendar_for(self._tier.level) or ALWAYS_OPEN

    def _consumed_now(self) -> timedelta:
        if self._running_since is None:
            return self._consumed
        running = business_time_between(self._running_since, self._now(), self._calendar())
        return self._consumed + running

    def _position(self) -> sla.Position:
        return sla.Position(
            tier_level=self._tier.level,
            claimed=self._state == "claimed",
            response_base=self._response_base,
            activity_base=self._activity_base,
            assignee=self._assignee,
        )

    def _next_deadline(self) -> tuple[Deadline | None, sla.Target | None]:
        if self._state == "resolved":
            return None, None
        if self._hold is not None:
            return self._hold_end(), None
        target = sla.next_target(self._policy, self._position(), self._fired)
        if target is None:
            return None, None
        at = self._instant(target)
        return sla.as_deadline(target, at, self._tier.level), target

    def _instant(self, target: sla.Target):
        return sla.instant_of(
            target,
            consumed_at_start=self._consumed,
            running_since=self._running_since,
            calendar=self._calendar(),
        )

    def _hold_end(self) -> Deadline | None:
        hold = self._hold
        ends = [moment for moment in (hold.until,) if moment is not None]
        if self._policy.max_hold is not None:
            ends.append(hold.since + self._policy.max_hold)
        if not ends:
            return None
        at = min(ends)
        why = "the hold's until time" if at == hold.until else "max_hold reached"
        return Deadline(
            at=at,
            kind="resume",
            clock="hold",
            tier_level=self._tier.level,
            label="hold ends",
            consequence=f"resume the SLA clocks ({why})",
        )

    def _breach_deadline(self) -> Deadline | None:
        """The deadline people must beat in the current tier (shown in notifications)."""
        target = sla.breach_target(self._policy, self._position())
        if target is None or self._running_since is None:
            return None
        return sla.as_deadline(target, self._instant(target), self._tier.level)

    # -- continue-as-new ----------------------------------------------------------

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
        self._record(
            "continued_as_new",
            f"history continued in a new run after {workflow.info().get_current_history_length()}"
            f" events ({workflow.info().get_current_history_size()} bytes)",
        )
        workflow.continue_as_new(self._case.model_copy(update={"carried": self._carried()}))

    def _carried(self) -> CarriedState:
        return CarriedState(
            created_at=self._created_at,
            severity=self._severity,
            tier_level=self._tier.level,
            state=self._state,
            assignee=self._assignee,
            first_claim_at=self._first_claim_at,
            resolved_by=self._resolved_by,
            resolution_summary=self._resolution_summary,
            resolved_at=self._resolved_at,
            sla_breached=self._sla_breached,
            needs_review=self._needs_review,
            escalations=tuple(self._escalations),
            escalations_total=self._escalations_total,
            escalated_up=self._escalated_up,
            moves=tuple(self._moves),
            notes=tuple(self._notes),
            notes_total=self._notes_total,
            timeline=tuple(self._timeline),
            timeline_total=self._timeline_total,
            running_since=self._running_since,
            consumed=self._consumed,
            response_base=self._response_base,
            activity_base=self._activity_base,
            fired=tuple(sorted(self._fired)),
            hold=self._hold,
            hold_total=self._hold_total,
            notifications_sent=self._notifications_sent,
            reopened=self._reopened,
            assessment=self._assessment,
        )

    def _restore(self, carried: CarriedState) -> None:
        self._created_at = carried.created_at
        self._severity = carried.severity
        self._tier = self._policy.tier(carried.tier_level)
        self._state = carried.state
        self._assignee = carried.assignee
        self._first_claim_at = carried.first_claim_at
        self._resolved_by = carried.resolved_by
        self._resolution_summary = carried.resolution_summary
        self._resolved_at = carried.resolved_at
        self._sla_breached = carried.sla_breached
        self._needs_review = carried.needs_review
        self._escalations = list(carried.escalations)
        # Carried before escalations were bounded: the tuple holds them all.
        self._escalations_total = (
            len(self._escalations) if carried.escalations_total is None
            else carried.escalations_total
        )  # fmt: skip
        self._escalated_up = (
            sum(1 for e in self._escalations if e.to_level > e.from_level)
            if carried.escalated_up is None
            else carried.escalated_up
        )
        self._moves = [tuple(move) for move in carried.moves]
        self._notes = list(carried.notes)
        self._notes_total = carried.notes_total
        self._timeline = list(carried.timeline)
        self._timeline_total = carried.timeline_total
        self._running_since = carried.running_since
        self._consumed = carried.consumed
        self._response_base = carried.response_base
        self._activity_base = carried.activity_base
        self._fired = set(carried.fired)
        self._hold = carried.hold
        self._hold_total = carried.hold_total
        self._notifications_sent = carried.notifications_sent
        self._reopened = carried.reopened
        self._assessment = carried.assessment

    # -- visibility ---------------------------------------------------------------

    def _publish_search_attributes(self) -> None:
        """Upsert what changed since the last publish, so the UI and `escalator list`
        filter on the live state. Only ids and labels go here: search attributes
        are never encrypted, so no customer data or free text."""
        deadline, _ = self._next_deadline()
        current = {
            search.CASE_STATUS: self._state,
            search.CASE_TIER: self._tier.level,
            search.CASE_TIER_NAME: self._tier.name,
            search.CASE_TEAM: self._tier.team,
            search.CASE_SEVERITY: self._severity,
            search.CASE_ASSIGNEE: self._assignee,
            search.CASE_ACCOUNT: self._case.account,
            search.SLA_BREACHED: self._sla_breached,
            search.NEXT_DEADLINE: deadline.at if deadline else None,
            search.NEEDS_REVIEW: self._needs_review,
        }
        updates = [
            key.value_set(value) if value is not None else key.value_unset()
            for key, value in current.items()
            if self._published.get(key.name, _UNSET) != value
        ]
        if updates:
            workflow.upsert_search_attributes(updates)
            self._published.update({key.name: value for key, value in current.items()})

    # -- small helpers ------------------------------------------------------------

    def _escalation_count(self) -> int:
        return self._escalated_up

    def _now(self) -> datetime:
        """workflow.now(), but never before a deadline whose timer has fired.

        In the lagging case described in _wait_for_next_deadline_or_change, this
        dates what the deadline does no earlier than the deadline itself, and arms
        the next timer from there rather than from an older time.
        """
        now = workflow.now()
        floor = self._clock_floor
        return now if floor is None or now >= floor else floor

    def _record(self, kind: str, detail: str, actor: str | None = None) -> None:
        detail = _shorten(detail, limits.TIMELINE_DETAIL_CHARS)
        # A malformed payload's user name is recorded as sent, so it is bounded too.
        actor = _shorten(actor, limits.TIMELINE_ACTOR_CHARS) if actor else actor
        self._timeline.append(TimelineEvent(at=self._now(), kind=kind, detail=detail, actor=actor))
        del self._timeline[: -limits.TIMELINE_KEPT]  # older entries stay in the history
        self._timeline_total += 1
        # Every change is recorded here, so this keeps the Web UI's briefing current.
        workflow.set_current_details(briefing.render_briefing(self.status()))

    def _outcome(self) -> CaseOutcome:
        def seconds_since_creation(moment) -> float | None:
            return None if moment is None else (moment - self._created_at).total_seconds()

        return CaseOutcome(
            case_id=self._case.case_id,
            resolved_by=self._resolved_by or "",
            summary=self._resolution_summary,
            final_tier=self._tier.level,
            escalations=self._escalation_count(),
            seconds_to_first_claim=seconds_since_creation(self._first_claim_at),
            seconds_to_resolution=seconds_since_creation(self._resolved_at) or 0.0,
            timeline=tuple(self._timeline[-limits.OUTCOME_TIMELINE :]),
            sla_breached=self._sla_breached,
            total_hold_seconds=self._hold_total.total_seconds(),
            reopened=self._reopened,
            needs_review=self._needs_review,
        )


def _json_size(value) -> int:
    """Bytes as JSON, as Temporal stores it (a control character takes six)."""
    return len(to_json(value))


def _tier_ref(tier: Tier) -> TierRef:
    return TierRef(level=tier.level, name=tier.name, team=tier.team)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Malformed(Exception):
    """A message whose payload does not fit its model; the text names the field."""


def _parse_message(model: type, value: object):
    # Validated as JSON, which is what arrived: the messages then read the same as
    # at the edges ("actor: Input should be an object"), whoever sent the payload.
    try:
        return model.model_validate_json(json.dumps(value))
    except (TypeError, ValueError) as error:  # pydantic's ValidationError is a ValueError
        raise _Malformed(_one_line_error(error)) from None


def _user_in(data: object) -> str | None:
    """Who a malformed payload says sent it, if that much of it is readable."""
    actor = data.get("actor") if isinstance(data, dict) else None
    user = actor.get("user") if isinstance(actor, dict) else None
    return user if isinstance(user, str) else None


def _one_line_error(error: Exception) -> str:
    errors = getattr(error, "errors", None)
    if callable(errors):  # pydantic: name the field, as at the edges
        first = errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        message = f"{where}: {first['msg']}" if where else first["msg"]
    else:
        message = f"{type(error).__name__}: {error}"
    return _shorten(" ".join(message.split()), 300)


def _hours(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"
