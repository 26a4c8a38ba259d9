"""`escalator api`: Escalator over HTTP, for help-desk tools, scripts and web pages.

The API is the identity boundary. A request's actor comes from its bearer token
(escalator/domain/tokens.py), never from its body: a body that names an actor, a
role or an account is refused. The workflow still checks every rule for that
actor; the API adds only who is asking and which account they may see. A case of
another account answers 404, so the API does not reveal that it exists.

It keeps no state of its own (tokens are in their store, cases in Temporal), so
any number of replicas can run behind a load balancer.

Answers: an action answers with the update's result; a refusal 409
`{"error": "rejected: ..."}`; invalid input 422 naming the field; an unknown case
404; no or a bad token 401; Temporal unreachable 503 with Retry-After.
"""

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from temporalio.service import RPCError

from escalator.adapters.temporal_client import TemporalUnavailable
from escalator.adapters.token_store import TokenStore
from escalator.adapters.visibility import case_query, case_row
from escalator.api.intake import intake_router
from escalator.domain.errors import EscalatorError, InvalidInput, describe_validation_error
from escalator.domain.models import ActionResult, CaseInput, CaseStatus
from escalator.domain.policy import Policy, Severity
from escalator.domain.records import CASE_ID_PATTERN, EscalationNote
from escalator.domain.tokens import TokenGrant
from starter import ActionRefused, CaseExists, CaseNotFound, EscalatorClient

RETRY_AFTER_SECONDS = 5
# Every answer carries these: the API serves JSON (and later one small page).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}
IDENTITY_FIELDS = ("actor", "user", "role", "account")


class _Body(BaseModel):
    """A request body: unknown fields are errors, and none may say who is asking."""

    model_config = ConfigDict(extra="forbid")


class NewCase(_Body):
    case_id: str = Field(pattern=CASE_ID_PATTERN, examples=["123"])
    title: str = Field(min_length=1, examples=["Outlook fails to sync"])
    description: str = ""
    severity: Severity = "P3"
    policy: str = Field(default="default", description="A policy the API loaded at start-up.")
    customer: dict[str, Any] | None = None
    category: str | None = None
    customer_tier: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class Summary(_Body):
    summary: str = ""


class Text(_Body):
    text: str


class Reason(_Body):
    reason: str = ""


class Escalation(_Body):
    note: EscalationNote


class Hold(_Body):
    reason: str
    until: str | None = Field(default=None, description="ISO time, e.g. 2026-12-01T09:00Z")


class Deescalation(_Body):
    reason: str
    to_level: int | None = None


class NewSeverity(_Body):
    severity: Severity


class Nothing(_Body):
    pass


class CaseRow(BaseModel):
    """One case as visibility lists it (search attributes only: no case text)."""

    case_id: str
    status: str | None
    tier: int | None
    tier_name: str | None
    team: str | None
    severity: str | None
    assignee: str | None
    category: str | None
    customer_tier: str | None
    sla_breached: bool | None
    next_deadline: str | None
    started: str | None
    workflow_status: str | None


class Refusal(BaseModel):
    error: str = Field(examples=["rejected: already claimed by alice"])


Action = Literal[
    "claim", "resolve", "escalate", "note", "hold", "resume", "deescalate", "severity", "reopen"
]
ACTION_BODIES: dict[str, type[_Body]] = {
    "claim": Nothing,
    "resolve": Summary,
    "escalate": Escalation,
    "note": Text,
    "hold": Hold,
    "resume": Nothing,
    "deescalate": Deescalation,
    "severity": NewSeverity,
    "reopen": Reason,
}


def create_app(
    connect: Callable[[], Awaitable[EscalatorClient]],
    tokens: TokenStore,
    policies: dict[str, Policy],
) -> FastAPI:
    """The API over the cases `connect()` reaches, with identities from `tokens` and
    the named `policies` (loaded and validated before the API starts)."""
    app = FastAPI(
        title="Escalator",
        version="1",
        description="Durable escalation workflows over HTTP. Every request needs a bearer "
        "token (`escalator token create`); the token decides who is asking.",
    )
    client: dict[str, EscalatorClient] = {}

    async def escalator() -> EscalatorClient:
        if "client" not in client:
            client["client"] = await connect()
        return client["client"]

    async def caller(authorization: Annotated[str | None, Header()] = None) -> TokenGrant:
        scheme, _, token = (authorization or "").partition(" ")
        grant = None
        if scheme.lower() == "bearer" and token:
            grant = await asyncio.to_thread(tokens.grant_for, token)
        if grant is None or grant.kind != "person":
            raise _Unauthorized()
        return grant

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(_Unauthorized)
    async def unauthorized(_: Request, __: Exception) -> JSONResponse:
        return JSONResponse(
            {"error": "a valid bearer token is required (escalator token create)"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _describe(error.errors())}, status_code=422)

    @app.exception_handler(EscalatorError)
    async def escalator_error(_: Request, error: EscalatorError) -> JSONResponse:
        if isinstance(error, ActionRefused):
            return JSONResponse({"error": str(error)}, status_code=409)
        if isinstance(error, CaseExists):
            return JSONResponse({"error": str(error)}, status_code=409)
        if isinstance(error, CaseNotFound):
            return JSONResponse({"error": str(error)}, status_code=404)
        if isinstance(error, TemporalUnavailable):
            return JSONResponse(
                {"error": "Temporal cannot be reached; retry later"},
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        if isinstance(error, InvalidInput):
            return JSONResponse({"error": str(error)}, status_code=422)
        return JSONResponse({"error": str(error)}, status_code=502)

    who = Annotated[TokenGrant, Depends(caller)]

    @app.post("/v1/cases", status_code=201, responses={409: {"model": Refusal}})
    async def start_case(body: NewCase, grant: who) -> CaseStatus:
        policy = policies.get(body.policy)
        if policy is None:
            known = ", ".join(sorted(policies)) or "none"
            raise InvalidInput(f"policy: {body.policy!r} is not loaded (loaded: {known})")
        fields = {**body.model_dump(exclude={"policy"}), "account": grant.account}
        try:
            case = CaseInput.model_validate({**fields, "policy": policy})
        except ValidationError as error:
            raise InvalidInput(describe_validation_error(error)) from None
        cases = await escalator()
        await cases.start_case(case)
        return await _visible(cases, case.case_id, grant)

    @app.get("/v1/cases")
    async def list_cases(
        grant: who,
        status: Literal["open", "claimed", "resolved"] | None = None,
        tier: Annotated[int | None, Query(ge=1, le=1000)] = None,
        team: Annotated[str | None, Query(max_length=100)] = None,
        severity: Severity | None = None,
        assignee: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> list[CaseRow]:
        """The account's cases from Temporal's visibility, newest first."""
        query = case_query(status=status, tier=tier, team=team, severity=severity,
                           assignee=assignee, account=grant.account)  # fmt: skip
        return await _rows(await escalator(), query, limit)

    @app.get("/v1/queue")
    async def queue(
        grant: who,
        team: Annotated[str | None, Query(max_length=100)] = None,
        tier: Annotated[int | None, Query(ge=1, le=1000)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 200,
    ) -> list[CaseRow]:
        """The account's unclaimed open cases, nearest deadline first."""
        query = case_query(status="open", tier=tier, team=team, account=grant.account)
        rows = await _rows(await escalator(), query, limit)
        # Visibility cannot order by a custom attribute on SQLite: sort here.
        return sorted(rows, key=lambda r: (r.next_deadline is None, r.next_deadline or ""))

    @app.get("/v1/cases/{case_id}", responses={404: {"model": Refusal}})
    async def case_status(case_id: str, grant: who) -> CaseStatus:
        return await _visible(await escalator(), case_id, grant)

    @app.post(
        "/v1/cases/{case_id}/{action}",
        responses={404: {"model": Refusal}, 409: {"model": Refusal}},
    )
    async def act(
        case_id: str,
        action: Action,
        request: Request,
        grant: who,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> ActionResult:
        raw = await _json_body(request)
        body = _validated(ACTION_BODIES[action], raw)
        cases = await escalator()
        await _visible(cases, case_id, grant)  # another account's case is a 404
        actor = {"user": grant.user, "role": grant.role, "account": grant.account}
        update_id = None
        if idempotency_key:
            # The key becomes the update's id: a retried request is the same update,
            # answered again by Temporal, never acted on twice.
            digest = hashlib.sha256(f"{grant.user}\x00{idempotency_key}".encode()).hexdigest()
            update_id = f"idem-{digest[:32]}"
        return await cases.act(case_id, action, actor, body.model_dump(), update_id=update_id)

    # Alert sources: integration tokens only (escalator/api/intake.py).
    app.include_router(intake_router(escalator, tokens, policies))
    return app


class _Unauthorized(Exception):
    pass


async def _visible(cases: EscalatorClient, case_id: str, grant: TokenGrant) -> CaseStatus:
    """The case's status, if the caller's account may see it; else the same 404 as
    for a case that does not exist."""
    status = await cases.status(case_id)
    if status.account != grant.account:
        raise CaseNotFound(f"case {case_id} does not exist; check the case id")
    return status


async def _rows(cases: EscalatorClient, query: str, limit: int) -> list[CaseRow]:
    rows: list[CaseRow] = []
    try:
        async for execution in cases.client.list_workflows(query, limit=limit):
            rows.append(CaseRow.model_validate(case_row(execution)))
    except RPCError as error:
        raise TemporalUnavailable(f"visibility: {error.message}") from None
    return rows


async def _json_body(request: Request) -> dict[str, Any]:
    text = await request.body()
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidInput("body: not JSON; send a JSON object") from None
    if not isinstance(value, dict):
        raise InvalidInput("body: send a JSON object")
    return value


def _validated(model: type[_Body], raw: dict[str, Any]) -> _Body:
    named = [name for name in IDENTITY_FIELDS if name in raw]
    if named:
        raise InvalidInput(
            f"{named[0]}: the API takes who is asking from the bearer token; "
            "remove it from the body"
        )
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise InvalidInput(describe_validation_error(error)) from None


def _describe(errors: Any) -> str:
    first = errors[0] if errors else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    message = first.get("msg", "invalid request")
    if first.get("type") == "extra_forbidden" and where.split(".")[-1] in IDENTITY_FIELDS:
        message = "the API takes who is asking from the bearer token; remove it from the body"
    return f"{where or 'body'}: {message}"
