"""The HTTP API on the real dev server: identities from tokens, one answer per
outcome (200/201, 401, 404, 409, 422, 503), idempotent retries, security headers.

Requests go through httpx's ASGI transport to the FastAPI app, which talks to the
dev server and a real worker; tokens are real, in a SQLite token store.
"""

from __future__ import annotations

import contextlib
import uuid

import httpx
import pytest
import pytest_asyncio
from support import RecordingNotifier, case_workers, eventually, free_port, seconds_policy

from escalator.adapters.idempotency_store import IdempotencyStore
from escalator.adapters.settings import TemporalSettings
from escalator.adapters.token_store import TokenStore
from escalator.api.app import SECURITY_HEADERS, create_app
from escalator.domain.tokens import TokenGrant
from starter import EscalatorClient

pytestmark = pytest.mark.integration
POLICY = seconds_policy(first_response=600, resolution=1200)


class Api:
    def __init__(self, http: httpx.AsyncClient, tokens: TokenStore, account: str) -> None:
        self.http, self.tokens, self.account = http, tokens, account

    def token(self, user: str, role: str = "engineer", account: str | None = None) -> dict:
        grant = TokenGrant(kind="person", user=user, role=role, account=account or self.account)
        text, _ = self.tokens.create(grant)
        return {"Authorization": f"Bearer {text}"}

    async def open(self, who: dict, case_id: str, **fields) -> httpx.Response:
        body = {"case_id": case_id, "title": "VPN down", **fields}
        return await self.http.post("/v1/cases", json=body, headers=who)


@contextlib.asynccontextmanager
async def api_on(dev_env, tmp_path, notifier: RecordingNotifier | None = None, **options):
    """The API (create_app with `options`) over a worker on its own queue, with a
    real SQLite token store, and a client of it."""
    queue = f"api-{uuid.uuid4().hex[:8]}"
    tokens = TokenStore(f"sqlite:///{tmp_path}/tokens.db")
    escalator = EscalatorClient(dev_env.client, queue)

    async def connect() -> EscalatorClient:
        return escalator

    options.setdefault("idempotency", IdempotencyStore(tokens.url))
    app = create_app(connect, tokens, {"default": POLICY}, **options)
    notifier = notifier or RecordingNotifier()
    try:
        async with (
            case_workers(dev_env.client, queue, notifier.activities),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://api"
            ) as http,
        ):
            api = Api(http, tokens, f"acct-{uuid.uuid4().hex[:6]}")
            api.cases, api.keys = escalator, options["idempotency"]
            yield api
    finally:
        tokens.close()
        if options["idempotency"] is not None:
            options["idempotency"].close()


@pytest_asyncio.fixture
async def api(dev_env, tmp_path):
    async with api_on(dev_env, tmp_path) as api:
        yield api


async def test_a_case_opened_and_worked_through_the_api(api):
    alice, bob = api.token("alice"), api.token("bob")
    started = await api.open(alice, "api-1", severity="P2", category="sso")
    assert started.status_code == 201, started.text
    assert started.json()["account"] == api.account  # from the token, not the body
    claimed = await api.http.post("/v1/cases/api-1/claim", headers=alice)
    assert claimed.status_code == 200
    assert claimed.json() == {"message": "claimed", "state": "claimed", "tier_level": 1,
                              "assignee": "alice"}  # fmt: skip
    refused = await api.http.post("/v1/cases/api-1/claim", headers=bob)
    assert refused.status_code == 409
    assert refused.json() == {"error": "rejected: already claimed by alice"}
    note = await api.http.post("/v1/cases/api-1/note", json={"text": "sent logs"}, headers=alice)
    assert note.status_code == 200
    status = await api.http.get("/v1/cases/api-1", headers=bob)
    assert status.status_code == 200 and status.json()["notes_total"] == 1


async def test_who_is_asking_comes_from_the_token_never_the_body(api):
    alice = api.token("alice")
    assert (await api.http.get("/v1/cases/x")).status_code == 401
    assert (
        await api.http.get("/v1/cases/x", headers={"Authorization": "Bearer esc_x"})
    ).status_code == 401
    for body in ({"actor": {"user": "root", "role": "admin"}}, {"role": "admin"},
                 {"account": "other"}):  # fmt: skip
        answer = await api.http.post("/v1/cases/api-2/claim", json=body, headers=alice)
        assert answer.status_code == 422
        assert "bearer token" in answer.json()["error"], answer.json()
    opened = await api.open(alice, "api-2", account="other")
    assert opened.status_code == 422 and opened.json()["error"].startswith("account:")
    viewer = api.token("victor", role="viewer")
    assert (await api.open(alice, "api-2")).status_code == 201
    watched = await api.http.post("/v1/cases/api-2/claim", headers=viewer)
    assert watched.status_code == 409 and "viewer" in watched.json()["error"]


async def test_another_accounts_case_is_a_404_like_one_that_does_not_exist(api):
    alice, mallory = api.token("alice"), api.token("mallory", account="other-co")
    assert (await api.open(alice, "api-3")).status_code == 201
    for path in ("/v1/cases/api-3", "/v1/cases/nope"):
        answer = await api.http.get(path, headers=mallory)
        assert answer.status_code == 404
    acted = await api.http.post("/v1/cases/api-3/resolve", json={}, headers=mallory)
    assert acted.status_code == 404
    assert acted.json() == {"error": "case api-3 does not exist; check the case id"}


async def test_invalid_input_is_a_422_naming_the_field(api):
    alice = api.token("alice")
    assert (await api.open(alice, "api-4")).status_code == 201
    cases = {
        "/v1/cases/api-4/note": ({}, "text"),
        "/v1/cases/api-4/severity": ({"severity": "P9"}, "severity"),
        "/v1/cases/api-4/escalate": ({"note": {"reason": ""}}, "reason"),
        "/v1/cases/api-4/claim": ({"colour": "blue"}, "colour"),
    }
    for path, (body, field) in cases.items():
        answer = await api.http.post(path, json=body, headers=alice)
        assert answer.status_code == 422, (path, answer.text)
        assert field in answer.json()["error"], answer.json()
    bad = await api.open(alice, "api 5")
    assert bad.status_code == 422 and bad.json()["error"].startswith("case_id")
    unknown = await api.open(alice, "api-5", policy="nope")
    assert unknown.status_code == 422 and "nope" in unknown.json()["error"]
    assert (await api.http.post("/v1/cases/api-4/fly", headers=alice)).status_code == 422


async def test_a_retried_request_with_an_idempotency_key_acts_once(api):
    alice = api.token("alice")
    assert (await api.open(alice, "api-6")).status_code == 201
    key = {**alice, "Idempotency-Key": "note-1"}
    first = await api.http.post("/v1/cases/api-6/note", json={"text": "once"}, headers=key)
    again = await api.http.post("/v1/cases/api-6/note", json={"text": "once"}, headers=key)
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    status = await api.http.get("/v1/cases/api-6", headers=alice)
    assert status.json()["notes_total"] == 1


async def test_every_answer_has_the_security_headers_and_the_openapi_document(api):
    answers = [
        await api.http.get("/v1/cases/x"),
        await api.http.get("/v1/cases/nope", headers=api.token("alice")),
        await api.http.get("/openapi.json"),
    ]
    for answer in answers:
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers[name] == value
    paths = answers[2].json()["paths"]
    assert {"/v1/cases", "/v1/cases/{case_id}", "/v1/cases/{case_id}/{action}"} <= set(paths)


async def test_an_unreachable_temporal_is_a_503_with_retry_after(tmp_path):
    tokens = TokenStore(f"sqlite:///{tmp_path}/tokens.db")
    text, _ = tokens.create(TokenGrant(kind="person", user="a", role="engineer", account="x"))

    async def connect() -> EscalatorClient:
        return await EscalatorClient.connect(TemporalSettings(address=f"127.0.0.1:{free_port()}"))

    app = create_app(connect, tokens, {"default": POLICY})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        answer = await http.get("/v1/cases/x", headers={"Authorization": f"Bearer {text}"})
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    assert answer.json() == {"error": "Temporal cannot be reached; retry later"}
    tokens.close()


async def test_lists_and_the_queue_show_only_the_tokens_account(api):
    alice, mallory = api.token("alice"), api.token("mallory", account=f"other-{api.account}")
    for case_id in ("api-q1", "api-q2"):
        assert (await api.open(alice, case_id)).status_code == 201
    assert (await api.open(mallory, "api-q3")).status_code == 201
    await api.http.post("/v1/cases/api-q2/claim", headers=alice)

    async def listed(path: str, who: dict) -> set[str]:
        answer = await api.http.get(path, headers=who)
        assert answer.status_code == 200, answer.text
        return {row["case_id"] for row in answer.json()}

    async def settled():
        return await listed("/v1/queue", alice) == {"api-q1"} or None

    await eventually(settled, within=10)
    assert await listed("/v1/cases", alice) == {"api-q1", "api-q2"}
    assert await listed("/v1/cases?status=claimed&assignee=alice", alice) == {"api-q2"}
    assert await listed("/v1/cases", mallory) == {"api-q3"}
    assert (await api.http.get("/v1/cases?tier=0", headers=alice)).status_code == 422
