"""EscalationWorkflow: the life of one case, from creation to resolution.

Read this file top to bottom:

1. The case starts at the tier its severity routes it to, and that tier is notified.
2. It then sleeps on a durable timer until the next SLA deadline of that tier
   (a warning at `warn_at`, then the breach). A message that changes the case
   (claim, escalate, resolve) wakes it early, and the deadline is recomputed.
3. A breach escalates to the next tier with a system-written note; the receiving
   tier and the customer are notified. A person can escalate early with a note.
4. Resolving ends the loop. Notifications still in flight are allowed to finish,
   then the workflow returns a `CaseOutcome`.

Notifications are activities started in the background: the case never waits for
mail before arming its next timer, so an SMTP outage delays mail, not escalations.
Every message (signal or update) goes through one rule check; refusals answer the
caller (updates) or are written to the timeline (signals, and access refusals).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from escalator import assessment as ai
    from escalator import briefing, routing, rules, sla
    from escalator import search_attributes as search
    from escalator.models import (
        ActionResult,
        Actor,
        AddNoteRequest,
        CaseBrief,
        CaseInput,
        CaseNote,
        CaseOutcome,
        CaseState,
        CaseStatus,
        ClaimRequest,
        Deadline,
        DeliveryReceipt,
        DraftInput,
        EscalateRequest,
        Escalation,
        EscalationNote,
        Notification,
        NotificationPurpose,
        ResolveRequest,
        TierRef,
        TimelineEvent,
    )
    from escalator.policy import Tier

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

DESCRIPTION_EXCERPT_CHARS = 2000
_UNSET = object()


class _Refused(Exception):
    """A message the case will not act on; `reason` is shown to whoever sent it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@workflow.defn(name="EscalationWorkflow")
class EscalationWorkflow:
    @workflow.init
    def __init__(self, case: CaseInput) -> None:
        # The policy snapshot travels in the input, so the case keeps the rules it
        # started with for its whole life, whatever happens to the policy file.
        self._case = case
        self._policy = case.policy
        self._created_at = workflow.now()
        self._tier: Tier = routing.initial_tier(self._policy, case.severity)
        self._entered_tier_at = self._created_at
        self._state: CaseState = "open"
        self._assignee: str | None = None
        self._first_claim_at = None
        self._resolved_by: str | None = None
        self._resolution_summary = ""
        self._resolved_at = None
        self._sla_breached = False
        self._escalations: list[Escalation] = []
        self._notes: list[CaseNote] = []
        self._timeline: list[TimelineEvent] = []
        self._fired_deadlines: set[str] = set()  # deadlines already acted on in this tier
        self._changes = 0  # bumped by anything that can move the next deadline
        self._notifications_sent = 0  # numbers Message-IDs deterministically
        self._deliveries_in_flight = 0
        self._published: dict[str, object] = {}  # search attributes as last upserted
        self._assessment: ai.AssessmentResult | None = None
        self._assessment_task: asyncio.Task | None = None  # at most one in flight

    # -- the case's life ----------------------------------------------------------

    @workflow.run
    async def run(self, case: CaseInput) -> CaseOutcome:
        override = self._policy.override_for(case.severity)
        routed = f" (severity override for {case.severity})" if override else ""
        self._record("created", f"{case.severity} case opened at {self._tier.label}{routed}")
        self._notify_tier("tier_entry", channel=override.notification if override else None)

        while self._state != "resolved":
            self._publish_search_attributes()
            await self._wait_for_next_deadline_or_change()
        self._publish_search_attributes()
        # An assessment still running is moot once the case is resolved.
        if self._assessment_task is not None and not self._assessment_task.done():
            self._assessment_task.cancel()

        # Nothing is lost: mail queued before the resolve still goes out, and any
        # message being handled finishes before the workflow closes.
        await workflow.wait_condition(
            lambda: self._deliveries_in_flight == 0 and workflow.all_handlers_finished()
        )
        return self._outcome()

    async def _wait_for_next_deadline_or_change(self) -> None:
        deadline = self._next_deadline()
        changes_seen = self._changes
        if deadline is None:
            await workflow.wait_condition(lambda: self._changes != changes_seen)
            return
        remaining = deadline.at - workflow.now()
        if remaining > timedelta(0):
            try:
                await workflow.wait_condition(
                    lambda: self._changes != changes_seen,
                    timeout=remaining,
                    timeout_summary=deadline.label,
                )
                return  # the case changed; the caller loops and recomputes
            except TimeoutError:
                pass
        self._on_deadline(deadline)

    def _on_deadline(self, deadline: Deadline) -> None:
        self._fired_deadlines.add(sla.deadline_key(deadline))
        if deadline.kind == "warning":
            self._record("sla_warning", f"{deadline.label} passed: {deadline.consequence}")
            self._notify_tier("warning", deadline=self._breach_deadline())
            return
        self._sla_breached = True
        target = routing.next_tier(self._policy, self._tier.level)
        if target is None:
            self._record("sla_breached", f"{deadline.label} passed on the final tier")
            self._notify_tier("sla_breach")
            return
        note = EscalationNote(reason=sla.breach_reason(deadline.clock))
        self._escalate_to(target, by="system", automatic=True, note=note)

    def _escalate_to(self, target: Tier, *, by: str, automatic: bool, note: EscalationNote) -> None:
        """Move the case up. The receiving tier owns it and must claim it anew."""
        source = self._tier
        self._escalations.append(
            Escalation(
                from_level=source.level,
                to_level=target.level,
                at=workflow.now(),
                by=by,
                automatic=automatic,
                note=note,
            )
        )
        self._tier = target
        self._entered_tier_at = workflow.now()
        self._state = "open"
        self._assignee = None
        self._fired_deadlines = set()
        self._changes += 1
        self._record("escalated", f"{source.label} → {target.label}: {note.reason}", actor=by)
        self._notify_tier("tier_entry", from_tier=source)
        self._notify_customer()
        self._start_assessment()

    # -- the AI assessment -------------------------------------------------------
    # One structured model call per escalation, in the background. The escalation
    # mail above has already been started; the assessment follows when it is ready,
    # or the timeline says it is unavailable. A newer escalation supersedes it.

    def _start_assessment(self) -> None:
        if self._assessment_task is not None and not self._assessment_task.done():
            self._assessment_task.cancel()
        tier = self._tier
        case = self._case
        request = ai.AssessmentRequest(
            case_id=case.case_id,
            title=case.title,
            description=case.description,
            severity=case.severity,
            account=case.account,
            data=case.data,
            customer_name=case.customer.name if case.customer else None,
            notes=tuple(self._notes),
            escalations=tuple(self._escalations),
            tier=_tier_ref(tier),
            tier_capabilities=tier.capabilities,
            purpose="ai_stage" if tier.kind == "ai" else "escalation",
        )
        self._assessment_task = asyncio.create_task(self._assess(request))

    async def _assess(self, request: ai.AssessmentRequest) -> None:
        try:
            result = await workflow.execute_activity(
                ai.ASSESS_CASE,
                request,
                result_type=ai.AssessmentResult,
                start_to_close_timeout=ai.ASSESSMENT_ATTEMPT_TIMEOUT,
                schedule_to_close_timeout=ai.ASSESSMENT_GIVE_UP_AFTER,
                retry_policy=ASSESSMENT_RETRY,
                summary=f"AI assessment for {request.tier.label}",
            )
        except ActivityError as error:
            cause = error.cause.message if error.cause else str(error)
            self._record("assessment_unavailable", f"assessment unavailable: {cause}")
            # The engineer still gets something to start from: the extractive offline
            # assessment, computed here (pure and deterministic) and labelled as such.
            result = ai.offline_assessment(request)
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
        # Reading is allowed to viewers, but never across accounts.
        if request.actor.account != self._case.account:
            self._reject_if(f"{request.actor.user} belongs to another account than this case")
        if self._assessment is None:
            self._reject_if("no AI assessment yet; drafts are derived from a saved assessment")

    # -- messages -----------------------------------------------------------------
    # Each action is a signal (fire-and-forget) and an update (answers the caller).
    # Update validators reject requests that are plainly refused, which costs no
    # history. Access refusals (wrong role or account) pass validation on purpose,
    # so the handler can write them to the timeline as an audit trail.

    @workflow.signal
    def claim(self, request: ClaimRequest) -> None:
        self._as_signal("claim", request.actor, lambda: self._claim(request))

    @workflow.update
    def try_claim(self, request: ClaimRequest) -> ActionResult:
        # Synchronous on purpose: the state changes before anything can interleave,
        # so of many concurrent claims exactly one wins.
        return self._as_update("claim", request.actor, lambda: self._claim(request))

    @try_claim.validator
    def _validate_claim(self, request: ClaimRequest) -> None:
        self._reject_if(rules.claim_refusal(request.actor, self._facts()))

    @workflow.signal
    def resolve(self, request: ResolveRequest) -> None:
        self._as_signal("resolve", request.actor, lambda: self._resolve(request))

    @workflow.update
    def try_resolve(self, request: ResolveRequest) -> ActionResult:
        return self._as_update("resolve", request.actor, lambda: self._resolve(request))

    @try_resolve.validator
    def _validate_resolve(self, request: ResolveRequest) -> None:
        self._reject_if(rules.resolve_refusal(request.actor, self._facts()))

    @workflow.signal
    def escalate(self, request: EscalateRequest) -> None:
        self._as_signal("escalate", request.actor, lambda: self._escalate(request))

    @workflow.update
    def try_escalate(self, request: EscalateRequest) -> ActionResult:
        return self._as_update("escalate", request.actor, lambda: self._escalate(request))

    @try_escalate.validator
    def _validate_escalate(self, request: EscalateRequest) -> None:
        self._reject_if(rules.escalate_refusal(request.actor, self._facts(), request.note))

    @workflow.signal
    def add_note(self, request: AddNoteRequest) -> None:
        self._as_signal("add_note", request.actor, lambda: self._add_note(request))

    @workflow.update
    def try_add_note(self, request: AddNoteRequest) -> ActionResult:
        return self._as_update("add_note", request.actor, lambda: self._add_note(request))

    @try_add_note.validator
    def _validate_add_note(self, request: AddNoteRequest) -> None:
        self._reject_if(rules.note_refusal(request.actor, self._facts()))

    @workflow.query
    def status(self) -> CaseStatus:
        return CaseStatus(
            case_id=self._case.case_id,
            title=self._case.title,
            state=self._state,
            severity=self._case.severity,
            account=self._case.account,
            tier_level=self._tier.level,
            tier_name=self._tier.name,
            team=self._tier.team,
            assignee=self._assignee,
            escalations=len(self._escalations),
            sla_breached=self._sla_breached,
            created_at=self._created_at,
            next_deadline=self._next_deadline(),
            last_escalation=self._escalations[-1] if self._escalations else None,
            policy_name=self._policy.name,
            notes=tuple(self._notes),
            timeline=tuple(self._timeline),
            assessment=self._assessment,
        )

    @workflow.query
    def timeline(self) -> list[TimelineEvent]:
        return list(self._timeline)

    # -- actions (run only after the rules allow them) ----------------------------

    def _claim(self, request: ClaimRequest) -> str:
        self._refuse_if(rules.claim_refusal(request.actor, self._facts()))
        if self._assignee == request.actor.user:
            return f"already claimed by you ({request.actor.user})"
        self._state = "claimed"
        self._assignee = request.actor.user
        if self._first_claim_at is None:
            self._first_claim_at = workflow.now()
        self._changes += 1
        self._record("claimed", f"claimed at {self._tier.label}", actor=request.actor.user)
        return "claimed"

    def _resolve(self, request: ResolveRequest) -> str:
        self._refuse_if(rules.resolve_refusal(request.actor, self._facts()))
        self._state = "resolved"
        self._resolved_by = request.actor.user
        self._resolution_summary = request.summary
        self._resolved_at = workflow.now()
        self._changes += 1
        summary = f": {request.summary}" if request.summary else ""
        self._record("resolved", f"resolved at {self._tier.label}{summary}", request.actor.user)
        return "resolved"

    def _escalate(self, request: EscalateRequest) -> str:
        self._refuse_if(rules.escalate_refusal(request.actor, self._facts(), request.note))
        target = routing.next_tier(self._policy, self._tier.level)
        assert target is not None  # escalate_refusal refuses on the final tier
        self._escalate_to(target, by=request.actor.user, automatic=False, note=request.note)
        return f"escalated to {target.label}"

    def _add_note(self, request: AddNoteRequest) -> str:
        self._refuse_if(rules.note_refusal(request.actor, self._facts()))
        self._notes.append(
            CaseNote(at=workflow.now(), author=request.actor.user, text=request.text)
        )
        self._record("note", _shorten(request.text, 200), actor=request.actor.user)
        return "note added"

    # -- message plumbing ---------------------------------------------------------

    def _facts(self) -> rules.CaseFacts:
        return rules.CaseFacts(
            state=self._state,
            account=self._case.account,
            assignee=self._assignee,
            final_tier=routing.is_final(self._policy, self._tier.level),
        )

    def _perform(self, action: str, actor: Actor, apply: Callable[[], str]) -> str:
        try:
            self._refuse_if(rules.access_refusal(actor, self._facts()))
            return apply()
        except _Refused as refused:
            self._record("rejected", f"{action} refused: {refused.reason}", actor=actor.user)
            raise

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
        deadline: Deadline | None = None,
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
            deadline=deadline or self._breach_deadline(),
            channel=channel,
        )
        summary = f"notify {tier.label.split(' ')[0]} {tier.team}"
        if tier.notify:
            self._deliver(SEND_EMAIL, notification, summary=f"{summary} ({purpose})")
        if tier.webhook:
            self._deliver(POST_WEBHOOK, notification, summary=f"{summary} webhook ({purpose})")

    def _notify_customer(self, purpose: NotificationPurpose = "customer_escalation") -> None:
        customer = self._case.customer
        if customer is None or customer.email is None:
            return
        notification = self._notification(
            purpose,
            recipients=(customer.email,),
            webhook=None,
            from_tier=None,
            deadline=self._breach_deadline(),
            channel=None,
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
                severity=case.severity,
                account=case.account,
                description_excerpt=_shorten(case.description, DESCRIPTION_EXCERPT_CHARS),
                customer_name=case.customer.name if case.customer else None,
            ),
            tier=_tier_ref(self._tier),
            from_tier=_tier_ref(from_tier) if from_tier else None,
            escalations=tuple(self._escalations),
            notes=tuple(self._notes),
            assessment=self._assessment,
            occurred_at=workflow.now(),
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

    # -- visibility ---------------------------------------------------------------

    def _publish_search_attributes(self) -> None:
        """Upsert what changed since the last publish, so the UI and `escalator list`
        filter on the live state. Only ids and labels go here: search attributes
        are never encrypted, so no customer data or free text."""
        deadline = self._next_deadline()
        current = {
            search.CASE_STATUS: self._state,
            search.CASE_TIER: self._tier.level,
            search.CASE_TIER_NAME: self._tier.name,
            search.CASE_TEAM: self._tier.team,
            search.CASE_SEVERITY: self._case.severity,
            search.CASE_ASSIGNEE: self._assignee,
            search.CASE_ACCOUNT: self._case.account,
            search.SLA_BREACHED: self._sla_breached,
            search.NEXT_DEADLINE: deadline.at if deadline else None,
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

    def _next_deadline(self) -> Deadline | None:
        if self._state == "resolved":
            return None
        return sla.next_deadline(
            self._policy,
            tier_level=self._tier.level,
            entered_at=self._entered_tier_at,
            claimed=self._state == "claimed",
            fired=self._fired_deadlines,
        )

    def _breach_deadline(self) -> Deadline | None:
        """The deadline people must beat in the current tier (shown in notifications)."""
        clocks = sla.clock_deadlines(
            self._policy,
            tier_level=self._tier.level,
            entered_at=self._entered_tier_at,
            claimed=self._state == "claimed",
        )
        return clocks[1] if clocks else None

    def _record(self, kind: str, detail: str, actor: str | None = None) -> None:
        self._timeline.append(
            TimelineEvent(at=workflow.now(), kind=kind, detail=detail, actor=actor)
        )
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
            escalations=len(self._escalations),
            seconds_to_first_claim=seconds_since_creation(self._first_claim_at),
            seconds_to_resolution=seconds_since_creation(self._resolved_at) or 0.0,
            timeline=tuple(self._timeline),
        )


def _tier_ref(tier: Tier) -> TierRef:
    return TierRef(level=tier.level, name=tier.name, team=tier.team)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
