"""The API's guarantees under retries, races and floods, on the real dev server:
Idempotency-Keys bound to one request (422 for another), one winner of parallel
claims, rate limits per token and per address (429 with Retry-After), the `draft`
action, and who may do what (the identity matrix).

The key store is tested on SQLite and on a real Postgres; the rate limiter's buckets
also on a fake clock.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from support import eventually
from test_api import api_on

from escalator.adapters.idempotency_store import IdempotencyStore
from escalator.api.app import KEY_REUSED
from escalator.api.rate_limit import Buckets, Rate, parse_rate, rate_from_env
from escalator.domain.errors import InvalidInput
from escalator.domain.tokens import TokenGrant

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def api(dev_env, tmp_path):
    async with api_on(dev_env, tmp_path) as api:
        yield api


def _kinds(status: dict, kind: str) -> int:
    return sum(1 for event in status["timeline"] if event["kind"] == kind)


# -- Idempotency-Key -----------------------------------------------------------------


async def test_a_key_reused_with_another_request_is_a_422_and_acts_once(api):
    alice = api.token("alice")
    assert (await api.open(alice, "idem-1")).status_code == 201
    assert (await api.open(alice, "idem-2")).status_code == 201
    keyed = {**alice, "Idempotency-Key": "k-1"}
    first = await api.http.post("/v1/cases/idem-1/note", json={"text": "once"}, headers=keyed)
    again = await api.http.post("/v1/cases/idem-1/note", json={"text": "once"}, headers=keyed)
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert first.json() == again.json()
    for path, body in (
        ("/v1/cases/idem-1/note", {"text": "twice"}),  # another body
        ("/v1/cases/idem-2/note", {"text": "once"}),  # another case
        ("/v1/cases/idem-1/hold", {"reason": "once"}),
    ):  # another action
        other = await api.http.post(path, json=body, headers=keyed)
        assert other.status_code == 422, (path, other.text)
        assert other.json() == {"error": KEY_REUSED}
    status = (await api.http.get("/v1/cases/idem-1", headers=alice)).json()
    assert status["notes_total"] == 1 and _kinds(status, "note") == 1
    assert status["state"] == "open"  # the hold never ran
    # A key is its user's: bob's "k-1" is another key.
    bob = {**api.token("bob"), "Idempotency-Key": "k-1"}
    mine = await api.http.post("/v1/cases/idem-1/note", json={"text": "twice"}, headers=bob)
    assert mine.status_code == 200, mine.text
    assert api.keys.count() == 2


async def test_parallel_requests_with_one_key_and_different_bodies_act_once(api):
    alice = api.token("alice")
    assert (await api.open(alice, "idem-3")).status_code == 201
    keyed = {**alice, "Idempotency-Key": "race"}
    answers = await asyncio.gather(
        *(
            api.http.post("/v1/cases/idem-3/note", json={"text": f"n{i}"}, headers=keyed)
            for i in range(10)
        )
    )
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [200] + [422] * 9, [a.text for a in answers]
    status = (await api.http.get("/v1/cases/idem-3", headers=alice)).json()
    assert status["notes_total"] == 1


async def test_a_retried_case_opening_answers_the_case_it_opened(api):
    alice = api.token("alice")
    keyed = {**alice, "Idempotency-Key": "open-1"}
    first = await api.open(keyed, "idem-4")
    again = await api.open(keyed, "idem-4")
    assert first.status_code == again.status_code == 201, again.text
    assert again.json()["case_id"] == "idem-4"
    other = await api.open(keyed, "idem-4", title="Another title")
    assert other.status_code == 422 and other.json() == {"error": KEY_REUSED}
    # Without a key a second opening is still the usual 409.
    assert (await api.open(alice, "idem-4")).status_code == 409


async def test_a_key_must_be_printable_ascii_of_at_most_255_characters(api):
    alice = api.token("alice")
    assert (await api.open(alice, "idem-5")).status_code == 201
    ok = await api.http.post(
        "/v1/cases/idem-5/note", json={"text": "a"}, headers={**alice, "Idempotency-Key": "x" * 255}
    )
    assert ok.status_code == 200, ok.text
    for key in ("x" * 256, "tab\there", "caf\u00e9"):
        answer = await api.http.post(
            "/v1/cases/idem-5/note",
            json={"text": "b"},
            headers={**alice, "Idempotency-Key": key.encode("latin-1")},
        )
        assert answer.status_code == 422, (key, answer.text)
        assert answer.json()["error"].startswith("Idempotency-Key: "), answer.json()
    assert (await api.http.get("/v1/cases/idem-5", headers=alice)).json()["notes_total"] == 1


def _key_store_rules(store: IdempotencyStore) -> None:
    now = datetime.now(UTC)
    assert store.claim("acct\x00alice", "k", "f1", now=now) == "new"
    assert store.claim("acct\x00alice", "k", "f1", now=now) == "same"
    assert store.claim("acct\x00alice", "k", "f2", now=now) == "other"
    assert store.claim("acct\x00bob", "k", "f2", now=now) == "new"
    # Past 24 h the key is free again, and old rows of others are purged.
    later = now + timedelta(hours=24, minutes=1)
    store._purged_at = float("-inf")
    assert store.claim("acct\x00alice", "k", "f2", now=later) == "new"
    assert store.count() == 1  # bob's old row purged


def test_the_key_store_keeps_a_key_24_hours_on_sqlite(tmp_path):
    store = IdempotencyStore(f"sqlite:///{tmp_path}/tokens.db")
    try:
        _key_store_rules(store)
    finally:
        store.close()


def test_the_key_store_keeps_a_key_24_hours_on_postgres(postgres_url):
    store = IdempotencyStore(postgres_url)
    try:
        _key_store_rules(store)
        # Concurrent claims of one key with different requests: exactly one is stored.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(8) as pool:
            seen = list(pool.map(lambda i: store.claim("o", "race", f"f{i}"), range(16)))
        assert sorted(seen).count("new") == 1 and seen.count("other") == 15, seen
    finally:
        store.close()


# -- races ------------------------------------------------------------------------


async def test_of_twenty_parallel_claims_exactly_one_wins(api):
    alice = api.token("alice")
    assert (await api.open(alice, "race-1")).status_code == 201
    engineers = [api.token(f"eng{i}") for i in range(20)]
    answers = await asyncio.gather(
        *(api.http.post("/v1/cases/race-1/claim", headers=who) for who in engineers)
    )
    won = [a for a in answers if a.status_code == 200]
    lost = [a for a in answers if a.status_code == 409]
    assert len(won) == 1 and len(lost) == 19, [a.text for a in answers]
    winner = won[0].json()["assignee"]
    assert {a.json()["error"] for a in lost} == {f"rejected: already claimed by {winner}"}
    status = (await api.http.get("/v1/cases/race-1", headers=alice)).json()
    assert status["assignee"] == winner and _kinds(status, "claimed") == 1


# -- rate limits ------------------------------------------------------------------


async def test_a_token_over_the_rate_gets_429_and_others_are_unaffected(dev_env, tmp_path):
    async with api_on(dev_env, tmp_path, rate=Rate(per_second=2, burst=2)) as api:
        alice, bob = api.token("alice"), api.token("bob")
        answers = [await api.http.get("/v1/cases/nope", headers=alice) for _ in range(3)]
        assert [a.status_code for a in answers] == [404, 404, 429]
        assert answers[2].headers["Retry-After"] == "1"
        assert answers[2].json() == {"error": "rate limit: 2 requests/s per token; retry after 1 s"}
        assert (await api.http.get("/v1/cases/nope", headers=bob)).status_code == 404
        await asyncio.sleep(1.0)
        assert (await api.http.get("/v1/cases/nope", headers=alice)).status_code == 404
        # Posts too (the limit is per token, on every route).
        posts = [await api.http.post("/v1/cases/nope/claim", headers=bob) for _ in range(3)]
        assert [a.status_code for a in posts] == [404, 404, 429]
        assert posts[2].headers["Retry-After"].isdigit()


async def test_bad_tokens_are_limited_per_address(dev_env, tmp_path):
    async with api_on(dev_env, tmp_path, rate=Rate(per_second=2, burst=2)) as api:
        bad = [{"Authorization": f"Bearer esc_{'a' * 12}_{'b' * 43}"}, {}]
        answers = [await api.http.get("/v1/cases/x", headers=bad[i % 2]) for i in range(3)]
        assert [a.status_code for a in answers] == [401, 401, 429]
        assert answers[2].headers["Retry-After"] == "1"
        assert "without a valid token" in answers[2].json()["error"]
        await asyncio.sleep(1.0)
        assert (await api.http.get("/v1/cases/x", headers=api.token("alice"))).status_code == 404


async def test_the_intake_routes_are_limited_per_token(dev_env, tmp_path):
    async with api_on(dev_env, tmp_path, rate=Rate(per_second=1, burst=1)) as api:
        grant = TokenGrant(kind="integration", integration="pagerduty", account=api.account)
        token, _ = api.tokens.create(grant)
        event = {"routing_key": token, "event_action": "trigger", "dedup_key": "flood",
                 "payload": {"summary": "disk full", "source": "db1", "severity": "error"}}  # fmt: skip
        first = await api.http.post("/v2/enqueue", json=event)
        second = await api.http.post("/v2/enqueue", json=event)
        assert first.status_code == 202, first.text
        assert second.status_code == 429 and second.headers["Retry-After"] == "1"
        assert second.json()["status"] == "error"
        am = await api.http.post(
            "/v1/intake/alertmanager", json={}, headers={"Authorization": f"Bearer {token}"}
        )
        # Alertmanager retries only 5xx: over the rate it is told to retry, not dropped.
        assert am.status_code == 503 and am.headers["Retry-After"] == "1", am.text
        assert am.json()["error"].startswith("rate limit: 1 requests/s per token")


def test_buckets_refill_and_idle_ones_are_evicted():
    now = [0.0]
    buckets = Buckets(Rate(per_second=10, burst=2), clock=lambda: now[0], max_buckets=3)
    assert buckets.take("a") == 0 and buckets.take("a") == 0
    assert buckets.take("a") == pytest.approx(0.1)
    now[0] += 0.1
    assert buckets.take("a") == 0
    for key in "bcdef":  # more keys than max_buckets: the longest idle go
        assert buckets.take(key) == 0
    assert len(buckets) == 3
    now[0] += 1  # every bucket full again: the next take drops all the idle ones
    buckets.take("g")
    assert len(buckets) == 1


def test_the_rate_setting_is_checked():
    assert rate_from_env({}) == Rate(20, 40)
    assert rate_from_env({"ESCALATOR_API_RATE": "5"}) == Rate(5, 10)
    assert parse_rate("2.5,7") == Rate(2.5, 7)
    assert parse_rate("off") is None
    for bad in ("fast", "-1", "1,0", "nan", "inf", "1,x"):
        with pytest.raises(InvalidInput, match=r"^ESCALATOR_API_RATE: .* is not a rate"):
            parse_rate(bad)


# -- draft -----------------------------------------------------------------------------


async def test_draft_rewords_the_saved_assessment_for_an_audience(api):
    alice, victor = api.token("alice"), api.token("victor", role="viewer")
    mallory = api.token("mallory", account=f"other-{api.account}")
    assert (
        await api.open(alice, "draft-1", description="Sync fails since Monday.")
    ).status_code == 201
    early = await api.http.post("/v1/cases/draft-1/draft", json={"audience": "ticket_notes"},
                                headers=victor)  # fmt: skip
    assert early.status_code == 409
    assert early.json() == {
        "error": "rejected: no AI assessment yet; drafts are derived from a saved assessment"
    }
    assert (await api.http.post("/v1/cases/draft-1/claim", headers=alice)).status_code == 200
    moved = await api.http.post(
        "/v1/cases/draft-1/escalate",
        json={"note": {"reason": "needs L2", "steps_taken": ["re-synced"]}},
        headers=alice,
    )
    assert moved.status_code == 200, moved.text

    async def assessed():
        status = await api.http.get("/v1/cases/draft-1", headers=alice)
        return status.json()["assessment"]

    await eventually(assessed, within=20)
    for audience in ("ticket_notes", "client_update", "email_draft"):
        drafted = await api.http.post(
            "/v1/cases/draft-1/draft", json={"audience": audience}, headers=victor
        )
        assert drafted.status_code == 200, drafted.text
        body = drafted.json()
        assert body["audience"] == audience and body["text"].strip()
        assert body["source"] == "offline"
    bad = await api.http.post("/v1/cases/draft-1/draft", json={"audience": "tweet"}, headers=alice)
    assert bad.status_code == 422 and bad.json()["error"].startswith("audience")
    missing = await api.http.post("/v1/cases/draft-1/draft", headers=alice)
    assert missing.status_code == 422 and missing.json()["error"].startswith("audience")
    named = await api.http.post("/v1/cases/draft-1/draft",
                                json={"audience": "ticket_notes", "role": "admin"}, headers=alice)  # fmt: skip
    assert named.status_code == 422 and "bearer token" in named.json()["error"]
    hidden = await api.http.post(
        "/v1/cases/draft-1/draft", json={"audience": "ticket_notes"}, headers=mallory
    )
    assert hidden.status_code == 404
    assert "/v1/cases/{case_id}/draft" in (await api.http.get("/openapi.json")).json()["paths"]


# -- who may do what -----------------------------------------------------------------

ACTIONS = {
    "claim": {},
    "resolve": {"summary": "fixed"},
    "escalate": {"note": {"reason": "needs L2", "steps_taken": ["restarted"]}},
    "note": {"text": "hello"},
    "hold": {"reason": "waiting for the customer"},
    "resume": {},
    "deescalate": {"reason": "back to L1"},
    "severity": {"severity": "P2"},
    "reopen": {"reason": "again"},
    "draft": {"audience": "ticket_notes"},
}
NO_ASSESSMENT = "rejected: no AI assessment yet; drafts are derived from a saved assessment"


async def test_every_action_with_every_role_answers_as_the_workflow_rules(dev_env, tmp_path):
    async with api_on(dev_env, tmp_path, rate=None) as api:
        opener = api.token("olga")

        async def attempt(who: dict, role: str, action: str, body: dict) -> tuple:
            case_id = f"m-{role}-{action}"
            assert (await api.open(opener, case_id)).status_code == 201
            answer = await api.http.post(f"/v1/cases/{case_id}/{action}", json=body, headers=who)
            return role, action, answer

        tokens = {role: api.token(f"{role}1", role=role)
                  for role in ("viewer", "customer", "engineer", "admin")}  # fmt: skip
        results = await asyncio.gather(
            *(attempt(who, role, action, body)
              for role, who in tokens.items() for action, body in ACTIONS.items())
        )  # fmt: skip
        allowed_on_an_open_case = {"claim", "resolve", "escalate", "note", "hold", "severity"}
        for role, action, answer in results:
            where = (role, action, answer.status_code, answer.text)
            error = answer.json().get("error", "") if answer.status_code != 200 else ""
            if action == "draft":  # reading: every role, while there is an assessment
                assert answer.status_code == 409 and error == NO_ASSESSMENT, where
            elif role == "viewer":
                assert answer.status_code == 409, where
                assert error == "rejected: viewer1 is a viewer; viewers can read cases but " \
                    "not act on them", where  # fmt: skip
            elif role == "customer" and action != "note" and action != "reopen":
                assert answer.status_code == 409, where
                assert error.startswith("rejected: customer1 is a customer; customers can "
                                        "add notes and reopen"), where  # fmt: skip
            elif action in allowed_on_an_open_case or (role, action) == ("customer", "note"):
                assert answer.status_code == 200, where
            else:  # resume, deescalate, reopen: refused by the open case's state
                assert answer.status_code == 409 and error.startswith("rejected: "), where
                assert "viewer" not in error and "customer" not in error, where

        # Another account, a body naming who asks, a revoked and an expired token.
        outsider = api.token("mallory", account=f"other-{api.account}")
        revoked_text, revoked = api.tokens.create(
            TokenGrant(kind="person", user="rex", role="admin", account=api.account)
        )
        api.tokens.revoke(revoked.token_id)
        expired_text, _ = api.tokens.create(
            TokenGrant(kind="person", user="old", role="admin", account=api.account),
            expires_in=timedelta(0),
        )
        engineer = tokens["engineer"]
        for action, body in ACTIONS.items():
            path = f"/v1/cases/m-engineer-{action}/{action}"
            hidden = await api.http.post(path, json=body, headers=outsider)
            assert hidden.status_code == 404, (action, hidden.text)
            assert hidden.json() == {
                "error": f"case m-engineer-{action} does not exist; check the case id"
            }
            for name, value in (("actor", {"user": "root", "role": "admin"}),
                                ("role", "admin"), ("account", "other")):  # fmt: skip
                named = await api.http.post(path, json={**body, name: value}, headers=engineer)
                assert named.status_code == 422, (action, name, named.text)
                assert named.json()["error"].startswith(f"{name}: "), named.json()
                assert "bearer token" in named.json()["error"]
            for text in (revoked_text, expired_text):
                shut = await api.http.post(
                    path, json=body, headers={"Authorization": f"Bearer {text}"}
                )
                assert shut.status_code == 401, (action, shut.text)
                assert shut.headers["WWW-Authenticate"] == "Bearer"
