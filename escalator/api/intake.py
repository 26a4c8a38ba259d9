"""Alert intake: PagerDuty Events v2 (`POST /v2/enqueue`) and Alertmanager webhooks
(`POST /v1/intake/alertmanager`) open, acknowledge and resolve cases.

What an event means is decided in escalator/domain/alerts.py; this module checks who
sent it and sends it to its case:

- Only integration tokens (`escalator token create --integration ...`) are accepted:
  PagerDuty's `routing_key`, Alertmanager's bearer token. A token acts as `system`
  (role admin, so it may resolve a case a person claimed) in its own account, and
  opens cases with its policy. Identity never comes from the body.
- A trigger is one round trip when its case is new: update-with-start
  (USE_EXISTING) starts the case and records the alert, and of a storm of triggers
  one starts it and every one lands on it. The note's update id comes from its
  text, so identical repeats are one update, answered again by Temporal, and the
  case does not grow.
- A trigger for a resolved case reopens it (within the policy's reopen window);
  once that case is closed for good, the key opens its next case.
- An acknowledge is a claim, a resolve is a resolve with "resolved at source". For
  a key with no open case, or a case in a state that makes the event moot (already
  claimed, already resolved), the event is accepted and changes nothing, as
  PagerDuty does: a sender cannot fix it by sending again.
- Every request is rate-limited per token (escalator/api/rate_limit.py): over the
  rate PagerDuty's route answers 429 with Retry-After, as PagerDuty does, and
  Alertmanager's 503 with Retry-After (Alertmanager retries only 5xx).
- Temporal unreachable is a 503 with Retry-After (Alertmanager retries only 5xx);
  everything permanent is a 4xx.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from temporalio.client import WorkflowExecutionStatus

from escalator.adapters.temporal_client import TemporalUnavailable
from escalator.api.rate_limit import Gate, RateLimited
from escalator.domain import alerts
from escalator.domain.errors import EscalatorError, InvalidInput, describe_validation_error
from escalator.domain.models import Actor, CaseInput
from escalator.domain.policy import Policy
from escalator.domain.tokens import TokenGrant
from starter import ActionRefused, CaseExists, CaseNotFound, EscalatorClient

RETRY_AFTER_SECONDS = 5
MAX_BODY_BYTES = 4 * 1024 * 1024
PD_INVALID = {"status": "invalid event", "message": "Event object is invalid"}
BAD_ROUTING_KEY = (
    "routing_key: not an active integration token; make one with "
    "`escalator token create --integration NAME --account ACCOUNT`"
)
REOPEN_REASON = "triggered again at source"

# The bodies, for the OpenAPI document (the routes read them raw, to answer in the
# sender's own error shape).
_STRING = {"type": "string"}
_LABELS = {"type": "object", "additionalProperties": _STRING}
PAGERDUTY_EVENT = {
    "type": "object",
    "required": ["routing_key", "event_action"],
    "properties": {
        "routing_key": {**_STRING, "description": "An Escalator integration token."},
        "event_action": {"enum": list(alerts.EVENT_ACTIONS)},
        "dedup_key": {
            **_STRING,
            "maxLength": alerts.MAX_DEDUP_KEY_CHARS,
            "description": "Required to acknowledge and resolve.",
        },
        "payload": {
            "type": "object",
            "required": ["summary", "source", "severity"],
            "properties": {
                "summary": {**_STRING, "maxLength": alerts.MAX_PD_SUMMARY_CHARS},
                "source": _STRING,
                "severity": {"enum": list(alerts.SEVERITY_MAP)},
                "timestamp": _STRING,
                "component": _STRING,
                "group": _STRING,
                "class": _STRING,
                "custom_details": {},
            },
        },
    },
}
_ALERT = {
    "type": "object",
    "required": ["status", "fingerprint"],
    "properties": {
        "status": {"enum": ["firing", "resolved"]},
        "labels": _LABELS,
        "annotations": _LABELS,
        "startsAt": _STRING,
        "endsAt": _STRING,
        "generatorURL": _STRING,
        "fingerprint": _STRING,
    },
}
ALERTMANAGER_PAYLOAD = {
    "type": "object",
    "required": ["version", "groupKey", "status", "alerts"],
    "properties": {
        "version": {"const": "4"},
        "groupKey": _STRING,
        "truncatedAlerts": {"type": "integer"},
        "status": {"enum": ["firing", "resolved"]},
        "receiver": _STRING,
        "groupLabels": _LABELS,
        "commonLabels": _LABELS,
        "commonAnnotations": _LABELS,
        "externalURL": _STRING,
        "alerts": {"type": "array", "items": _ALERT, "maxItems": alerts.MAX_ALERTS},
    },
}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


class _BadBody(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def intake_router(
    escalator: Callable[[], Awaitable[EscalatorClient]],
    gate: Gate,
    policies: dict[str, Policy],
) -> APIRouter:
    """The intake routes, over the API's lazily connected client, its tokens (with the
    rate limits) and its policies."""
    router = APIRouter(tags=["alert intake"])

    def policy_for(grant: TokenGrant) -> Policy:
        name = grant.policy or "default"
        policy = policies.get(name)
        if policy is None:
            known = ", ".join(sorted(policies)) or "none"
            raise InvalidInput(
                f"policy: the integration's policy {name!r} is not loaded by this API "
                f"(loaded: {known})"
            )
        return policy

    @router.post(
        "/v2/enqueue",
        status_code=202,
        summary="PagerDuty Events API v2: trigger, acknowledge or resolve",
        openapi_extra=_body(PAGERDUTY_EVENT),
        responses={
            400: {"description": "invalid event, or routing_key not an integration token"},
            503: {"description": "Temporal cannot be reached; retry"},
        },
    )
    async def enqueue(request: Request) -> JSONResponse:
        """A PagerDuty Events v2 event; `routing_key` is an Escalator integration token."""
        try:
            event = alerts.parse_pagerduty(await _json(request))
        except _BadBody as bad:
            return _pd_invalid([str(bad)], bad.status)
        except alerts.InvalidEvent as invalid:
            return _pd_invalid(invalid.errors)
        try:
            grant = await gate.grant(event.routing_key, _address(request))
        except RateLimited as limited:
            return JSONResponse(
                {"status": "error", "message": str(limited)},
                status_code=429,
                headers={"Retry-After": str(limited.retry_after)},
            )
        if grant is None or grant.kind != "integration":
            return _pd_invalid([BAD_ROUTING_KEY])
        command = alerts.pagerduty_command(
            event,
            account=grant.account,
            integration=grant.integration or "integration",
            new_key=secrets.token_hex(16),
        )
        try:
            policy = policy_for(grant) if command.action == "trigger" else None
            await apply(await escalator(), command, grant, policy)
        except TemporalUnavailable:
            return JSONResponse(
                {"status": "error", "message": "Temporal cannot be reached; retry later"},
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        except InvalidInput as invalid:
            return _pd_invalid([str(invalid)])
        except EscalatorError as error:
            return JSONResponse({"status": "error", "message": str(error)}, status_code=502)
        return JSONResponse(
            {"status": "success", "message": "Event processed", "dedup_key": command.dedup_key},
            status_code=202,
        )

    @router.post(
        "/v1/intake/alertmanager",
        summary="Prometheus Alertmanager webhook (version 4): one case per group",
        openapi_extra=_body(ALERTMANAGER_PAYLOAD),
        responses={
            401: {"description": "no token, or not an active one"},
            403: {"description": "a person's token; this route takes an integration token"},
            422: {"description": "not a valid version 4 webhook payload, naming the field"},
            503: {"description": "Temporal cannot be reached; Alertmanager retries"},
        },
    )
    async def alertmanager(
        request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> JSONResponse:
        """An Alertmanager notification, with `http_config.authorization` credentials
        set to an Escalator integration token."""
        scheme, _, token = (authorization or "").partition(" ")
        bearer = token.strip() if scheme.lower() == "bearer" else None
        try:
            grant = await gate.grant(bearer, _address(request))
        except RateLimited as limited:
            # Alertmanager retries only 5xx (a 429 would drop the notification, a
            # resolve included): over the rate is transient, so a 503 it retries.
            return JSONResponse(
                {"error": str(limited)},
                status_code=503,
                headers={"Retry-After": str(limited.retry_after)},
            )
        if grant is None or grant.kind != "integration":
            if grant is not None:
                return JSONResponse(
                    {"error": "this route takes an integration token "
                              "(escalator token create --integration ...), not a person's"},
                    status_code=403,
                )  # fmt: skip
            return JSONResponse(
                {"error": "a valid integration token is required as the bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            command = alerts.alertmanager_command(
                await _json(request),
                account=grant.account,
                integration=grant.integration or "integration",
            )
        except _BadBody as bad:
            return JSONResponse({"error": str(bad)}, status_code=bad.status)
        except alerts.InvalidEvent as invalid:
            return JSONResponse({"error": invalid.errors[0]}, status_code=422)
        policy = policy_for(grant) if command.action == "trigger" else None
        # EscalatorErrors reach the API's handlers: 503 + Retry-After, 422, 502.
        case_id = await apply(await escalator(), command, grant, policy)
        return JSONResponse({"status": "success", "case_id": case_id})

    return router


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _pd_invalid(errors: list[str], status: int = 400) -> JSONResponse:
    return JSONResponse({**PD_INVALID, "errors": errors}, status_code=status)


async def _json(request: Request) -> Any:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _BadBody(f"body: is {declared} bytes; the limit is {MAX_BODY_BYTES}", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _BadBody(f"body: is over {MAX_BODY_BYTES} bytes", 413)
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        raise _BadBody("body: not JSON; send a JSON object") from None


def _actor(grant: TokenGrant) -> Actor:
    return Actor(user=alerts.INTEGRATION_USER, role="admin", account=grant.account)


async def apply(
    cases: EscalatorClient, command: alerts.Command, grant: TokenGrant, policy: Policy | None
) -> str | None:
    """Send the command to its case; the case id it acted on (None: no open case)."""
    actor = _actor(grant)
    if command.action == "trigger":
        assert policy is not None
        return await _trigger(cases, command, actor, policy)
    case_id = await _current_case(cases, command.case_id)
    if case_id is None:
        return None  # nothing open under this key: accepted, nothing to do
    action, fields = (
        ("claim", {})
        if command.action == "acknowledge"
        else ("resolve", {"summary": command.summary})
    )
    try:
        await cases.act(case_id, action, actor, fields)
    except (ActionRefused, CaseNotFound):
        pass  # already claimed or resolved, or closed meanwhile: moot
    return case_id


async def _current_case(cases: EscalatorClient, first: str) -> str | None:
    """The key's running case: the generation after every closed one, if it runs."""
    for generation in range(1, alerts.MAX_GENERATIONS + 1):
        case_id = alerts.case_id_generation(first, generation)
        status = await cases.run_status(case_id)
        if status is None:
            return None
        if status == WorkflowExecutionStatus.RUNNING:
            return case_id
    return None


async def _trigger(
    cases: EscalatorClient, command: alerts.Command, actor: Actor, policy: Policy
) -> str:
    opening = command.opening
    assert opening is not None
    notes = command.notes or (
        alerts.AlertNote("alert group firing", alerts.note_key(command.case_id, "firing")),
    )
    for generation in range(1, alerts.MAX_GENERATIONS + 1):
        case_id = alerts.case_id_generation(command.case_id, generation)
        run = await cases.run_status(case_id)
        if run is not None and run != WorkflowExecutionStatus.RUNNING:
            continue  # closed for good: the key's next case
        reopened = 0
        if run is not None:
            try:
                status = await cases.status(case_id)
            except CaseNotFound:
                status = None
            if status is not None:
                reopened = status.reopened
                if status.state == "resolved":
                    try:
                        await cases.act(
                            case_id, "reopen", actor, {"reason": REOPEN_REASON},
                            update_id=f"reopen-{reopened}",
                        )  # fmt: skip
                    except (ActionRefused, CaseNotFound):
                        continue  # the reopen window is over: the key's next case
                    reopened += 1
        try:
            case = CaseInput.model_validate(
                {"case_id": case_id, "title": opening.title, "description": opening.description,
                 "severity": opening.severity, "data": opening.data,
                 "account": actor.account, "policy": policy}
            )  # fmt: skip
        except ValidationError as error:
            raise InvalidInput(describe_validation_error(error, prefix="case")) from None
        # Repeats of one text are one update per stay open: a reopen makes a new one.
        first, *rest = notes
        try:
            await cases.add_note_with_start(
                case, actor, first.text, update_id=f"{first.key}-r{reopened}"
            )
        except CaseExists:
            continue  # closed since we looked
        except ActionRefused:
            pass  # resolved meanwhile, or the case's note limit: accepted, moot
        for note in rest:
            try:
                await cases.act(
                    case_id, "note", actor, {"text": note.text}, update_id=f"{note.key}-r{reopened}"
                )
            except (ActionRefused, CaseNotFound):
                pass
        return case_id
    raise InvalidInput(
        f"dedup key: has had {alerts.MAX_GENERATIONS} cases; use a new dedup key or groupKey"
    )
