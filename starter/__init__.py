"""Python API for starting and driving cases; scripts, tests and the CLI use it.

    async with await EscalatorClient.connect() as escalator:
        await escalator.start_case({"case_id": "123", "title": "...", "policy": policy})
        await escalator.claim("123", Actor(user="alice", role="engineer"))

Every method validates its input before anything reaches Temporal, and every
failure is one of the one-line errors below.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from escalator.adapters.settings import TemporalSettings
from escalator.adapters.temporal_client import TemporalUnavailable, connect
from escalator.domain.assessment import Draft
from escalator.domain.briefing import render_static_details
from escalator.domain.errors import EscalatorError, InvalidInput, describe_validation_error
from escalator.domain.models import (
    ActionResult,
    Actor,
    AddNoteRequest,
    CaseInput,
    CaseOutcome,
    CaseStatus,
    ClaimRequest,
    DeescalateRequest,
    DraftInput,
    EscalateRequest,
    EscalationNote,
    HoldRequest,
    ReopenRequest,
    ResolveRequest,
    ResumeRequest,
    SetSeverityRequest,
    case_id_is_valid,
    case_input_problem,
    with_running_hold,
    workflow_id_for,
)
from escalator.domain.names import ACTION_REFUSED
from escalator.domain.rules import escalation_note_problem
from workflows.escalation import EscalationWorkflow

__all__ = [
    "ActionRefused",
    "CaseExists",
    "CaseNotFound",
    "EscalatorClient",
    "case_summary",
    "check_case_id",
    "request_problem",
    "validated_case",
]

Model = TypeVar("Model", bound=BaseModel)


class CaseNotFound(EscalatorError):
    """No case has this id."""


class CaseExists(EscalatorError):
    """A case with this id was already started; ids are never reused."""


class ActionRefused(EscalatorError):
    """The case refused the action (already claimed, wrong role, closed, ...)."""


def case_summary(case: CaseInput) -> str:
    """The one line the Web UI shows for a case, e.g. `P1 · #123 · Outlook fails`."""
    line = f"{case.severity} · #{case.case_id} · {' '.join(case.title.split())}"
    return line if len(line) <= 200 else line[:199] + "…"


def _validated(model: type[Model], value: Model | Mapping[str, Any], what: str) -> Model:
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value)
    except ValidationError as error:
        raise InvalidInput(describe_validation_error(error, prefix=what)) from None


def validated_case(case: CaseInput | Mapping[str, Any]) -> CaseInput:
    """The case, validated and small enough to start; else InvalidInput (`case: field: ...`)."""
    case = _validated(CaseInput, case, "case")
    problem = case_input_problem(case)
    if problem:
        field, reason = problem
        raise InvalidInput(": ".join(part for part in ("case", field, reason) if part))
    return case


def check_case_id(case_id: str) -> str:
    if not case_id_is_valid(case_id):
        raise InvalidInput(
            f"case id {case_id!r} is not valid: use letters, digits, '.', '_' or '-'"
        )
    return case_id


HOLD_REASON_REQUIRED = "reason is required: say what the case is waiting for"
DEESCALATE_REASON_REQUIRED = "reason is required: say why the lower tier can take over"


def request_problem(request: BaseModel) -> str | None:
    """What a request that validated still lacks, as `field ...: reason`; else None.

    The workflow refuses the same; checking here (and in the CLI, before it connects)
    saves the round trip.
    """
    if isinstance(request, EscalateRequest):
        return escalation_note_problem(request.note)
    if isinstance(request, HoldRequest) and not request.reason.strip():
        return HOLD_REASON_REQUIRED
    if isinstance(request, DeescalateRequest) and not request.reason.strip():
        return DEESCALATE_REASON_REQUIRED
    return None


def _checked(request: Model) -> Model:
    problem = request_problem(request)
    if problem:
        raise InvalidInput(problem)
    return request


class EscalatorClient:
    def __init__(self, client: Client, task_queue: str | None = None) -> None:
        self.client = client
        self.task_queue = task_queue or TemporalSettings().task_queue

    @classmethod
    async def connect(cls, settings: TemporalSettings | None = None) -> EscalatorClient:
        settings = settings or TemporalSettings.from_env()
        return cls(await connect(settings), settings.task_queue)

    async def __aenter__(self) -> EscalatorClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # Nothing to close: the SDK client has no explicit close; kept for symmetry
        # so callers scope their use and future resources (e.g. HTTP) can be freed.
        return None

    # -- starting -------------------------------------------------------------

    async def start_case(self, case: CaseInput | Mapping[str, Any]) -> str:
        """Start a case; return its workflow id. Raises CaseExists for a used id."""
        case = validated_case(case)
        try:
            handle = await self.client.start_workflow(
                EscalationWorkflow.run,
                case,
                id=workflow_id_for(case.case_id),
                task_queue=self.task_queue,
                # A case id names one case forever: starting it again, even after it
                # was resolved, is refused rather than creating a second case.
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=case_summary(case),
                static_details=render_static_details(case),
            )
        except WorkflowAlreadyStartedError:
            raise CaseExists(
                f"case {case.case_id} already exists; choose another case id"
            ) from None
        except RPCError as error:
            # validated_case keeps a case well below Temporal's limits; this is the
            # backstop (e.g. a server with lower limits), still one line.
            message = " ".join(str(error.message or error).split())
            if error.status == RPCStatusCode.INVALID_ARGUMENT:
                raise InvalidInput(f"case {case.case_id}: Temporal refused it: {message}") from None
            raise EscalatorError(
                f"case {case.case_id}: Temporal refused the request: {message}"
            ) from None
        return handle.id

    async def add_note_with_start(
        self,
        case: CaseInput | Mapping[str, Any],
        actor: Actor | Mapping,
        text: str,
        *,
        update_id: str | None = None,
    ) -> ActionResult:
        """Add a note to the case, starting it first if it is not running, in one round
        trip (update-with-start, USE_EXISTING): of many concurrent calls for one case id
        one starts it, and all land on it. `update_id` makes repeats one update, which
        Temporal answers again. A case id whose case has closed is never started again
        (CaseExists)."""
        case = validated_case(case)
        request = _validated(AddNoteRequest, {"actor": actor, "text": text}, "note")
        start = WithStartWorkflowOperation(
            EscalationWorkflow.run,
            case,
            id=workflow_id_for(case.case_id),
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=case_summary(case),
            static_details=render_static_details(case),
        )
        try:
            return await self.client.execute_update_with_start_workflow(
                EscalationWorkflow.try_add_note,
                request,
                start_workflow_operation=start,
                id=update_id,
                result_type=ActionResult,
            )
        except WorkflowAlreadyStartedError:
            raise CaseExists(f"case {case.case_id} is closed; its id is not used again") from None
        except WorkflowUpdateFailedError as error:
            raise _refusal(error) from None
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            raise TemporalUnavailable(f"case {case.case_id}: Temporal did not answer") from None
        except RPCError as error:
            if error.status in _UNAVAILABLE:
                raise TemporalUnavailable(f"case {case.case_id}: {error.message}") from None
            message = " ".join(str(error.message or error).split())
            raise EscalatorError(
                f"case {case.case_id}: Temporal refused the request: {message}"
            ) from None

    async def run_status(self, case_id: str) -> WorkflowExecutionStatus | None:
        """Whether the case's latest run is running, closed (and how), or None if there is
        no such case; one describe, without asking the case itself."""
        try:
            return await self._execution_status(check_case_id(case_id))
        except RPCError as error:
            if error.status in _UNAVAILABLE:
                raise TemporalUnavailable(f"case {case_id}: {error.message}") from None
            raise EscalatorError(f"case {case_id}: Temporal refused the request: {error}") from None

    # -- acting on a case -----------------------------------------------------

    async def claim(self, case_id: str, actor: Actor | Mapping, *, wait: bool = True):
        request = ClaimRequest(actor=_validated(Actor, actor, "actor"))
        return await self._send(case_id, "claim", EscalationWorkflow.try_claim, request, wait)

    async def resolve(
        self, case_id: str, actor: Actor | Mapping, summary: str = "", *, wait: bool = True
    ):
        request = _validated(ResolveRequest, {"actor": actor, "summary": summary}, "resolve")
        return await self._send(case_id, "resolve", EscalationWorkflow.try_resolve, request, wait)

    async def escalate(
        self,
        case_id: str,
        actor: Actor | Mapping,
        note: EscalationNote | Mapping,
        *,
        wait: bool = True,
    ):
        request = _checked(_validated(EscalateRequest, {"actor": actor, "note": note}, "escalate"))
        return await self._send(case_id, "escalate", EscalationWorkflow.try_escalate, request, wait)

    async def add_note(self, case_id: str, actor: Actor | Mapping, text: str, *, wait=True):
        request = _validated(AddNoteRequest, {"actor": actor, "text": text}, "note")
        return await self._send(case_id, "add_note", EscalationWorkflow.try_add_note, request, wait)

    async def hold(
        self, case_id: str, actor: Actor | Mapping, reason: str, *, until=None, wait: bool = True
    ):
        """Pause the SLA clocks while the case waits (on the customer, a vendor...)."""
        request = _checked(
            _validated(HoldRequest, {"actor": actor, "reason": reason, "until": until}, "hold")
        )
        return await self._send(case_id, "hold", EscalationWorkflow.try_hold, request, wait)

    async def resume(self, case_id: str, actor: Actor | Mapping, *, wait: bool = True):
        request = _validated(ResumeRequest, {"actor": actor}, "resume")
        return await self._send(case_id, "resume", EscalationWorkflow.try_resume, request, wait)

    async def deescalate(
        self,
        case_id: str,
        actor: Actor | Mapping,
        reason: str,
        *,
        to_level: int | None = None,
        wait: bool = True,
    ):
        request = _checked(
            _validated(
                DeescalateRequest,
                {"actor": actor, "reason": reason, "to_level": to_level},
                "deescalate",
            )
        )
        return await self._send(
            case_id, "deescalate", EscalationWorkflow.try_deescalate, request, wait
        )

    async def set_severity(
        self, case_id: str, actor: Actor | Mapping, severity: str, *, wait: bool = True
    ):
        request = _validated(
            SetSeverityRequest, {"actor": actor, "severity": severity}, "set_severity"
        )
        return await self._send(
            case_id, "set_severity", EscalationWorkflow.try_set_severity, request, wait
        )

    async def reopen(
        self, case_id: str, actor: Actor | Mapping, reason: str = "", *, wait: bool = True
    ):
        request = _validated(ReopenRequest, {"actor": actor, "reason": reason}, "reopen")
        return await self._send(case_id, "reopen", EscalationWorkflow.try_reopen, request, wait)

    async def act(
        self,
        case_id: str,
        action: str,
        actor: Actor | Mapping,
        fields: Mapping[str, Any],
        *,
        update_id: str | None = None,
    ) -> ActionResult:
        """One action by name (`claim`, `note`, `severity`, ...) with its request's
        fields, as the HTTP API sends it. `update_id` makes a retry the same update:
        Temporal answers it again instead of acting twice."""
        model, signal_name, update = _ACTIONS[action]
        request = _checked(_validated(model, {"actor": actor, **fields}, action))
        result = await self._send(case_id, signal_name, update, request, True, update_id)
        assert result is not None
        return result

    async def _send(
        self, case_id, signal_name, update, request, wait, update_id=None
    ) -> ActionResult | None:
        """With wait=True send the update and return its answer; else send the signal."""
        handle = self._handle(case_id)
        try:
            if wait:
                return await handle.execute_update(
                    update, request, id=update_id, result_type=ActionResult
                )
            await handle.signal(signal_name, request)
            return None
        except WorkflowUpdateFailedError as error:
            raise _refusal(error) from None
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            # No worker took the update in time. Retrying with the same update id
            # is safe: Temporal answers that update once, whenever it runs.
            raise TemporalUnavailable(
                f"case {case_id}: no answer in time; is a worker running? retry the request"
            ) from None
        except RPCError as error:
            raise await self._explain(case_id, error) from None

    async def draft(self, case_id: str, actor: Actor | Mapping, audience: str) -> Draft:
        """The saved AI assessment re-worded for `audience` (never a new assessment)."""
        request = _validated(DraftInput, {"actor": actor, "audience": audience}, "draft")
        handle = self._handle(case_id)
        try:
            return await handle.execute_update(EscalationWorkflow.draft, request, result_type=Draft)
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            raise ActionRefused(getattr(cause, "message", None) or str(error)) from None
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            raise TemporalUnavailable(
                f"case {case_id}: no answer in time; is a worker running? retry the request"
            ) from None
        except RPCError as error:
            raise await self._explain(case_id, error) from None

    # -- reading --------------------------------------------------------------

    async def status(self, case_id: str) -> CaseStatus:
        try:
            status = await self._handle(case_id).query(
                EscalationWorkflow.status, result_type=CaseStatus
            )
        except RPCError as error:
            raise await self._explain(case_id, error) from None
        return with_running_hold(status, datetime.now(UTC))

    async def outcome(self, case_id: str) -> CaseOutcome:
        """Wait for the case to be resolved and return its outcome."""
        return await self._handle(case_id).result()

    # -- helpers --------------------------------------------------------------

    def _handle(self, case_id: str) -> WorkflowHandle:
        return self.client.get_workflow_handle(
            workflow_id_for(check_case_id(case_id)), result_type=CaseOutcome
        )

    async def _explain(self, case_id: str, error: RPCError) -> EscalatorError:
        """Turn a raw RPC failure into: unknown case, closed case, or unreachable."""
        if error.status in _UNAVAILABLE:
            return TemporalUnavailable(f"case {case_id}: Temporal cannot be reached")
        if error.status != RPCStatusCode.NOT_FOUND:
            return EscalatorError(f"case {case_id}: Temporal refused the request: {error}")
        status = await self._execution_status(case_id)
        if status is None:
            return CaseNotFound(f"case {case_id} does not exist; check the case id")
        if status != WorkflowExecutionStatus.RUNNING:
            return ActionRefused(
                f"case {case_id} is closed ({status.name.lower()}); it takes no more actions"
            )
        return EscalatorError(f"case {case_id}: {error}")

    async def _execution_status(self, case_id: str) -> WorkflowExecutionStatus | None:
        """The run's status, or None if there is no such case.

        Uses the raw RPC because `describe()` also decodes search attributes, and
        the time-skipping test server encodes Datetime ones in a shape it rejects.
        """
        request = DescribeWorkflowExecutionRequest(
            namespace=self.client.namespace,
            execution=WorkflowExecution(workflow_id=workflow_id_for(case_id)),
        )
        try:
            response = await self.client.workflow_service.describe_workflow_execution(request)
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        return WorkflowExecutionStatus(response.workflow_execution_info.status)


def _refusal(error: WorkflowUpdateFailedError) -> ActionRefused:
    """The case's refusal of an update, in its own words where it gave them."""
    cause = error.cause
    if isinstance(cause, ApplicationError) and cause.type == ACTION_REFUSED:
        return ActionRefused(cause.message)
    return ActionRefused(f"rejected: {cause or error}")


# RPC failures that mean Temporal cannot answer now (the caller may retry).
_UNAVAILABLE = frozenset({RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED})

# What `EscalatorClient.act` sends for each action name: request, signal, update.
_ACTIONS: dict[str, tuple[type[BaseModel], str, Any]] = {
    "claim": (ClaimRequest, "claim", EscalationWorkflow.try_claim),
    "resolve": (ResolveRequest, "resolve", EscalationWorkflow.try_resolve),
    "escalate": (EscalateRequest, "escalate", EscalationWorkflow.try_escalate),
    "note": (AddNoteRequest, "add_note", EscalationWorkflow.try_add_note),
    "hold": (HoldRequest, "hold", EscalationWorkflow.try_hold),
    "resume": (ResumeRequest, "resume", EscalationWorkflow.try_resume),
    "deescalate": (DeescalateRequest, "deescalate", EscalationWorkflow.try_deescalate),
    "severity": (SetSeverityRequest, "set_severity", EscalationWorkflow.try_set_severity),
    "reopen": (ReopenRequest, "reopen", EscalationWorkflow.try_reopen),
}
