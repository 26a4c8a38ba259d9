"""`escalator api`: Escalator over HTTP, for help-desk tools, scripts and web pages.

The API is the identity boundary. A request's actor comes from its bearer token
(escalator/domain/tokens.py), never from its body: a body that names an actor, a
role or an account is refused. The workflow still checks every rule for that
actor; the API adds only who is asking and which account they may see. A case of
another account answers 404, so the API does not reveal that it exists.

It keeps no state of its own (tokens and the Idempotency-Keys' fingerprints are in
the token store's database, cases in Temporal), so any number of replicas can run
behind a load balancer. Only the rate limits are per replica (escalator/api/rate_limit.py).

An `Idempotency-Key` on a POST is bound to that request (its route and body) for
24 h: the same request again is the same Temporal update, answered again and acted
on once; another request with the key is refused with 422.

Answers: an action answers with the update's result; a refusal 409
`{"error": "rejected: ..."}`; invalid input 422 naming the field; an unknown case
404; no or a bad token 401; over the rate 429 with Retry-After; Temporal unreachable
503 with Retry-After.
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

from escalator.adapters.idempotency_store import IdempotencyStore
from escalator.adapters.temporal_client import TemporalUnavailable
from escalator.adapters.token_store import TokenStore
from escalator.adapters.visibility import case_query, case_row
from escalator.api.intake import intake_router
from escalator.api.rate_limit import DEFAULT_RATE, Gate, Rate, RateLimited, RateLimiter
from escalator.api.stream import stream_routes
from escalator.domain.assessment import Audience, Draft
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
MAX_IDEMPOTENCY_KEY_CHARS = 255
BAD_IDEMPOTENCY_KEY = (
    f"Idempotency-Key: use 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters"
)
KEY_REUSED = "Idempotency-Key: already used with a different request; use a new key"


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


class DraftFor(_Body):
    audience: Audience


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
    *,
    rate: Rate | None = DEFAULT_RATE,
    idempotency: IdempotencyStore | None = None,
    web_ui: str | None = None,
) -> FastAPI:
    """The API over the cases `connect()` reaches, with identities from `tokens` and
    the named `policies` (loaded and validated before the API starts).

    `rate` limits each token (and each client address without a valid token) in this
    process; None: no limit. Idempotency-Keys are kept in `idempotency`, by default a
    store in the tokens' database."""
    app = FastAPI(
        title="Escalator",
        version="1",
        description="Durable escalation workflows over HTTP. Every request needs a bearer "
        "token (`escalator token create`); the token decides who is asking.",
    )
    client: dict[str, EscalatorClient] = {}
    limiter = RateLimiter(rate) if rate is not None else None
    gate = Gate(tokens, limiter)
    keys = idempotency if idempotency is not None else IdempotencyStore(tokens.url)

    async def escalator() -> EscalatorClient:
        if "client" not in client:
            client["client"] = await connect()
        return client["client"]

    async def caller(
        request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> TokenGrant:
        scheme, _, token = (authorization or "").partition(" ")
        bearer = token.strip() if scheme.lower() == "bearer" else None
        grant = await gate.grant(bearer, client_address(request))
        if grant is None or grant.kind != "person":
            raise _Unauthorized()
        return grant

    async def idempotent(
        request: Request, grant: TokenGrant, key: str | None, body: _Body
    ) -> tuple[str | None, bool]:
        """(the update id, whether this request was seen before) for `key`; a key
        used before with another request is refused (422)."""
        if key is None:
            return None, False
        if (
            not key
            or len(key) > MAX_IDEMPOTENCY_KEY_CHARS
            or not key.isascii()
            or not all(" " <= char <= "~" for char in key)
        ):
            raise InvalidInput(BAD_IDEMPOTENCY_KEY)
        canonical = json.dumps(
            body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"),
            ensure_ascii=False,
        )  # fmt: skip
        request_text = f"{request.method} {request.url.path}\x00{canonical}"
        fingerprint = hashlib.sha256(request_text.encode()).hexdigest()
        owner = f"{grant.account}\x00{grant.user}"
        seen = await asyncio.to_thread(keys.claim, owner, key, fingerprint)
        if seen == "other":
            raise InvalidInput(KEY_REUSED)
        # The update's id comes from who asks, the key and the request: a retried
        # request is the same update, answered again by Temporal, never acted twice.
        digest = hashlib.sha256(f"{grant.user}\x00{key}\x00{fingerprint}".encode()).hexdigest()
        return f"idem-{digest[:32]}", seen == "same"

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

    @app.exception_handler(RateLimited)
    async def rate_limited(_: Request, error: RateLimited) -> JSONResponse:
        return JSONResponse(
            {"error": str(error)},
            status_code=429,
            headers={"Retry-After": str(error.retry_after)},
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
    # Checked by `idempotent` (a one-line 422 naming the header), not by FastAPI.
    key_header = Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Makes a retry of this request safe: 1 to 255 printable ASCII "
            "characters, kept 24 h.",
        ),
    ]
    refusals: dict[int | str, dict[str, Any]] = {
        404: {"model": Refusal},
        409: {"model": Refusal},
        422: {"model": Refusal},
        429: {"model": Refusal},
    }

    @app.post("/v1/cases", status_code=201, responses=refusals)
    async def start_case(
        body: NewCase, grant: who, request: Request, idempotency_key: key_header = None
    ) -> CaseStatus:
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
        _, replay = await idempotent(request, grant, idempotency_key, body)
        try:
            await cases.start_case(case)
        except CaseExists:
            if not replay:
                raise
            # The same request again: the case it opened answers, as the first time.
            status = await _visible(cases, case.case_id, grant)
            if status.title != case.title:
                raise
            return status
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

    @app.post("/v1/cases/{case_id}/draft", responses=refusals)
    async def draft(
        case_id: str, request: Request, grant: who, idempotency_key: key_header = None
    ) -> Draft:
        """The case's saved AI assessment re-worded for an audience (`ticket_notes`,
        `client_update`, `email_draft`); it changes nothing in the case. 409 while the
        case has no assessment yet."""
        body = _validated(DraftFor, await _json_body(request))
        assert isinstance(body, DraftFor)
        cases = await escalator()
        await _visible(cases, case_id, grant)  # another account's case is a 404
        await idempotent(request, grant, idempotency_key, body)
        return await cases.draft(case_id, _actor(grant), body.audience)

    @app.post("/v1/cases/{case_id}/{action}", responses=refusals)
    async def act(
        case_id: str, action: Action, request: Request, grant: who,
        idempotency_key: key_header = None,
    ) -> ActionResult:  # fmt: skip
        raw = await _json_body(request)
        body = _validated(ACTION_BODIES[action], raw)
        cases = await escalator()
        await _visible(cases, case_id, grant)  # another account's case is a 404
        update_id, _ = await idempotent(request, grant, idempotency_key, body)
        fields = body.model_dump()
        return await cases.act(case_id, action, _actor(grant), fields, update_id=update_id)

    # Alert sources: integration tokens only (escalator/api/intake.py).
    app.include_router(intake_router(escalator, gate, policies))
    # The live stream and the /queue page (docs/stream.md); `web_ui` is where the
    # page links a case (default: ESCALATOR_WEB_UI, else the dev server's UI).
    stream = stream_routes(escalator, tokens, web_ui=web_ui)
    app.include_router(stream)
    app.state.stream_feeds = stream.feeds
    return app


class _Unauthorized(Exception):
    pass


def client_address(request: Request) -> str:
    """The peer's address as this process sees it (behind a proxy: the proxy's)."""
    return request.client.host if request.client else "unknown"


def _actor(grant: TokenGrant) -> dict[str, Any]:
    return {"user": grant.user, "role": grant.role, "account": grant.account}


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
