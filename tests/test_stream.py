"""The live queue on the real dev server: `GET /v1/stream` and the `/queue` page.

Two API replicas (two apps, each with its own poller) run under real uvicorn on
loopback against one dev server and a real worker; changes are made through one
replica and read from the other, so nothing rests on an in-process bus. The page is
checked in Debian's headless Chromium, driven by Playwright (as tests/test_web_ui.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import statistics
import time
import uuid
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import uvicorn
from support import RecordingNotifier, case_workers, free_port, seconds_policy
from test_web_ui import CHROMIUM, CHROMIUM_ARGS

from escalator.adapters.token_store import TokenStore
from escalator.api.app import create_app
from escalator.api.stream import (
    MAX_STREAMS_PER_TOKEN,
    REPLAY_SLACK_MS,
    changes,
)
from escalator.domain.tokens import TokenGrant
from starter import EscalatorClient

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).parent / "artifacts"
DOC_IMAGES = Path(__file__).parent.parent / "docs" / "images"
POLICIES = {
    "default": seconds_policy(first_response=3600, resolution=7200),
    "fast": seconds_policy(first_response=1, resolution=600),
    "soon": seconds_policy(first_response=600, resolution=1200),
}


class Replica:
    def __init__(self, app, port: int) -> None:
        self.app, self.port = app, port
        self.base = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:  # noqa: ASYNC110 (uvicorn sets a plain flag)
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task:
            await self.task


class Stack:
    def __init__(self, replicas: list[Replica], tokens: TokenStore, http: httpx.AsyncClient):
        self.replicas, self.tokens, self.http = replicas, tokens, http
        self.account = f"acct-{uuid.uuid4().hex[:6]}"

    def token(self, user: str, account: str | None = None, kind: str = "person") -> str:
        if kind == "person":
            grant = TokenGrant(kind="person", user=user, role="engineer",
                               account=account or self.account)  # fmt: skip
        else:
            grant = TokenGrant(kind="integration", integration=user,
                               account=account or self.account)  # fmt: skip
        text, _ = self.tokens.create(grant)
        return text

    async def open(self, token: str, case_id: str, replica: int = 1, **fields) -> float:
        """Open a case through a replica; the time just before the request was sent."""
        sent = time.time()
        answer = await self.http.post(
            f"{self.replicas[replica].base}/v1/cases",
            json={"case_id": case_id, "title": "VPN down", **fields},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 201, answer.text
        return sent

    async def act(self, token: str, case_id: str, action: str, body=None, replica: int = 1):
        sent = time.time()
        answer = await self.http.post(
            f"{self.replicas[replica].base}/v1/cases/{case_id}/{action}",
            json=body or {},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 200, answer.text
        return sent


class Listener:
    """One SSE client over a real socket: every event with the time it arrived."""

    def __init__(self, base: str, token: str, last_event_id: str | None = None) -> None:
        self.url = f"{base}/v1/stream"
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        if last_event_id:
            self.headers["Last-Event-ID"] = last_event_id
        self.events: asyncio.Queue = asyncio.Queue()
        self.seen: list[dict] = []
        self.retry: int | None = None
        self.status: int | None = None
        self.ready = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> Listener:
        self.task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.ready.wait(), 15)
        return self

    async def __aexit__(self, *exc) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def _run(self) -> None:
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(5, read=None)) as http,
            http.stream("GET", self.url, headers=self.headers) as answer,
        ):
            self.status = answer.status_code
            self.ready.set()
            if answer.status_code != 200:
                await answer.aread()
                return
            fields: dict[str, str] = {}
            async for line in answer.aiter_lines():
                if line == "":
                    if "data" in fields:
                        event = {
                            "id": fields.get("id"),
                            "event": fields.get("event", "message"),
                            "data": json.loads(fields["data"]),
                            "received": time.time(),
                        }
                        self.seen.append(event)
                        await self.events.put(event)
                    fields = {}
                    continue
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "retry":
                    self.retry = int(value)
                else:
                    fields[name] = value

    async def next(self, predicate, within: float = 10.0) -> dict:
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching event within {within}s; seen {self.kinds()}")
            try:
                event = await asyncio.wait_for(self.events.get(), left)
            except TimeoutError:
                continue
            if predicate(event):
                return event

    def kinds(self, case_id: str | None = None) -> list[str]:
        return [
            e["event"] for e in self.seen if case_id is None or e["data"].get("case_id") == case_id
        ]


def about(case_id: str, kind: str):
    return lambda e: e["event"] == kind and e["data"].get("case_id") == case_id


@pytest_asyncio.fixture
async def stack(dev_env, tmp_path):
    queue = f"stream-{uuid.uuid4().hex[:8]}"
    tokens = TokenStore(f"sqlite:///{tmp_path}/tokens.db")
    escalator = EscalatorClient(dev_env.client, queue)

    async def connect() -> EscalatorClient:
        return escalator

    replicas = []
    for _ in range(2):
        # As app.py mounts it: the same connect and token store as the other routes.
        app = create_app(connect, tokens, POLICIES, web_ui="http://127.0.0.1:8233")
        replicas.append(Replica(app, free_port()))
        replicas[-1].feeds = app.state.stream_feeds
    async with (
        case_workers(dev_env.client, queue, RecordingNotifier().activities),
        httpx.AsyncClient(timeout=15) as http,
    ):
        for replica in replicas:
            await replica.start()
        try:
            yield Stack(replicas, tokens, http)
        finally:
            for replica in replicas:
                await replica.stop()
            for replica in replicas:  # the app's shutdown stopped its pollers
                assert not replica.feeds.feeds
    tokens.close()


def test_changes_between_rows_name_the_transition():
    open_row = {"case_id": "1", "status": "open", "tier": 1, "assignee": None,
                "sla_breached": False, "severity": "P3"}  # fmt: skip
    assert changes(None, open_row) == ["created"]
    claimed = {**open_row, "status": "claimed", "assignee": "a"}
    assert changes(None, claimed) == ["created", "claimed"]  # both within one poll
    assert changes(open_row, None) == ["closed"]
    assert changes(open_row, None, {**open_row, "status": "resolved"}) == ["resolved"]
    assert changes({**open_row, "status": "resolved"}, None, {**open_row}) == ["closed"]
    assert changes(open_row, dict(open_row)) == []
    assert changes(open_row, {**open_row, "status": "claimed", "assignee": "a"}) == ["claimed"]
    both = changes(open_row, {**open_row, "tier": 2, "sla_breached": True})
    assert both == ["escalated", "breached"]
    assert changes(open_row, {**open_row, "status": "resolved"}) == ["resolved"]
    assert changes({**open_row, "status": "resolved"}, open_row) == ["reopened"]
    assert changes(open_row, {**open_row, "severity": "P1"}) == ["updated"]


async def test_the_stream_needs_a_person_token_and_is_bounded(stack):
    base = stack.replicas[0].base
    for headers in ({}, {"Authorization": "Bearer esc_nope"},
                    {"Authorization": f"Bearer {stack.token('am', kind='integration')}"}):  # fmt: skip
        answer = await stack.http.get(f"{base}/v1/stream", headers=headers)
        assert answer.status_code == 401, answer.text
        assert answer.headers["WWW-Authenticate"] == "Bearer"
    alice = stack.token("alice")
    async with contextlib.AsyncExitStack() as streams:
        for _ in range(MAX_STREAMS_PER_TOKEN):
            listener = await streams.enter_async_context(Listener(base, alice))
            assert listener.status == 200
            first = await listener.next(lambda e: True)
            assert first["event"] == "snapshot" and first["data"]["cases"] == []
            assert listener.retry == 1000
        extra = await stack.http.get(f"{base}/v1/stream",
                                     headers={"Authorization": f"Bearer {alice}"})  # fmt: skip
        assert extra.status_code == 429 and "Retry-After" in extra.headers
    # Closed streams are counted out again.
    await asyncio.sleep(0.2)
    async with Listener(base, alice) as again:
        assert again.status == 200


async def test_changes_made_on_one_replica_stream_from_the_other_to_its_account_only(stack):
    alice, bob = stack.token("alice"), stack.token("bob")
    mallory = stack.token("mallory", account=f"other-{uuid.uuid4().hex[:6]}")
    async with (
        Listener(stack.replicas[0].base, alice) as watching,
        Listener(stack.replicas[0].base, mallory) as outsider,
    ):
        await watching.next(lambda e: e["event"] == "snapshot")
        await outsider.next(lambda e: e["event"] == "snapshot")
        await stack.open(alice, "s-1", replica=1, severity="P2")
        created = await watching.next(about("s-1", "created"))
        row = created["data"]["case"]
        assert (row["status"], row["tier"], row["severity"]) == ("open", 1, "P2")
        assert row["team"] == "support-generalists" and row["next_deadline"]
        assert row["web_ui"] == "http://127.0.0.1:8233/namespaces/default/workflows/case-s-1"
        assert created["id"] and created["id"] == watching.seen[-1]["id"]
        await stack.act(bob, "s-1", "claim", replica=1)
        claimed = await watching.next(about("s-1", "claimed"))
        assert claimed["data"]["case"]["assignee"] == "bob"
        await stack.act(
            bob,
            "s-1",
            "escalate",
            {"note": {"reason": "needs backend access", "steps_taken": ["restarted"]}},
        )
        await watching.next(about("s-1", "escalated"))
        await stack.act(bob, "s-1", "resolve", {"summary": "fixed"})
        await watching.next(about("s-1", "resolved"))
        await stack.open(alice, "s-2", policy="fast")  # first response due in 1 s
        await watching.next(about("s-2", "breached"), within=15)
        ids = [e["id"] for e in watching.seen]
        assert len(ids) == len(set(ids))
        await asyncio.sleep(1)  # anything of the other account would have arrived
        assert [e["event"] for e in outsider.seen] == ["snapshot"]


async def test_a_reconnect_gets_what_it_missed_from_either_replica(stack):
    alice = stack.token("alice")
    one, two = (replica.base for replica in stack.replicas)
    async with Listener(one, alice) as first, Listener(two, alice):
        # Both replicas' pollers must have been watching for longer than the slack a
        # resume on another replica goes back, or it answers with a snapshot.
        await asyncio.sleep(REPLAY_SLACK_MS / 1000 + 0.2)
        await stack.open(alice, "r-0")
        seen = await first.next(about("r-0", "created"))
    last_id = seen["id"]
    # Disconnected: these happen while nobody listens (the pollers linger).
    await stack.open(alice, "r-1")
    await stack.open(alice, "r-2", replica=0)
    await stack.act(alice, "r-1", "claim")
    await asyncio.sleep(2)
    for base in (one, two):
        async with Listener(base, alice, last_event_id=last_id) as resumed:
            await resumed.next(about("r-1", "claimed"))
            kinds = resumed.kinds()
            assert "snapshot" not in kinds, (base, kinds)
            assert {(e["data"]["case_id"], e["event"]) for e in resumed.seen} >= {
                ("r-1", "created"), ("r-2", "created"), ("r-1", "claimed")
            }  # fmt: skip
    # An id older than the buffer (or malformed) gets the state as it is instead.
    for stale in ("1000-abcdef01-1", "garbage"):
        async with Listener(two, alice, last_event_id=stale) as rebuilt:
            snapshot = await rebuilt.next(lambda e: True)
            assert snapshot["event"] == "snapshot"
            rows = {row["case_id"]: row for row in snapshot["data"]["cases"]}
            assert set(rows) == {"r-0", "r-1", "r-2"}
            assert rows["r-1"]["assignee"] == "alice" and rows["r-2"]["assignee"] is None


async def test_transition_to_event_latency_p95_is_within_two_seconds(stack):
    alice = stack.token("alice")
    latencies: list[float] = []
    async with Listener(stack.replicas[0].base, alice) as watching:
        await watching.next(lambda e: e["event"] == "snapshot")
        for n in range(10):
            # At random phases of the pollers' cycle, not in step with it.
            await asyncio.sleep(random.uniform(0, 0.6))
            sent = await stack.open(alice, f"lat-{n}", replica=1)
            event = await watching.next(about(f"lat-{n}", "created"))
            latencies.append(event["received"] - sent)
            await asyncio.sleep(random.uniform(0, 0.6))
            sent = await stack.act(alice, f"lat-{n}", "claim", replica=1)
            event = await watching.next(about(f"lat-{n}", "claimed"))
            latencies.append(event["received"] - sent)
    p50 = statistics.median(latencies)
    p95 = statistics.quantiles(latencies, n=20, method="inclusive")[-1]
    report = (
        f"stream latency over {len(latencies)} transitions (request sent on replica 2 -> "
        f"event at a client of replica 1): p50 {p50:.3f} s, p95 {p95:.3f} s, "
        f"max {max(latencies):.3f} s\n"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "stream-latency.txt").write_text(report)
    print(report)
    assert p95 <= 2.0, report


async def test_the_queue_page_shows_a_new_case_without_a_reload(stack):
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (make browser installs it)")
    playwright_api = pytest.importorskip("playwright.async_api")
    alice = stack.token("alice")
    base = stack.replicas[0].base
    page_answer = await stack.http.get(f"{base}/queue")
    assert page_answer.status_code == 200
    csp = page_answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "<script>" not in page_answer.text  # no inline script: the CSP forbids it
    await stack.open(alice, "q-later", severity="P3")
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 640})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on(
                "console",
                lambda m: errors.append(m.text) if m.type == "error" else None,
            )
            resumed_from: list[str | None] = []
            page.on(
                "request",
                lambda r: (
                    resumed_from.append(r.headers.get("last-event-id"))
                    if r.url.endswith("/v1/stream")
                    else None
                ),
            )
            await page.goto(f"{base}/queue")
            await page.fill("#token", alice)
            await page.click("button[type=submit]")
            await page.locator("#status.live").wait_for(timeout=10_000)
            await page.locator("tr[data-case-id='q-later']").wait_for(timeout=10_000)
            assert await page.evaluate("sessionStorage.getItem('escalator.token')") == alice
            assert not await page.locator("#login").is_visible()
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=ARTIFACTS / "queue-before.png")

            sent = time.monotonic()
            await stack.open(alice, "q-urgent", replica=1, severity="P1", policy="soon")
            row = page.locator("tr[data-case-id='q-urgent']")
            await row.wait_for(timeout=2_000)  # within 2 s of the POST, no reload
            appeared = time.monotonic() - sent
            await page.wait_for_timeout(700)  # the slide-in done
            await page.screenshot(path=ARTIFACTS / "queue-arrived.png")
            if os.environ.get("ESCALATOR_DOC_IMAGES"):  # to refresh docs/images/queue.png
                await page.screenshot(path=DOC_IMAGES / "queue.png")
            print(f"new case on the page {appeared:.3f} s after POST /v1/cases")

            order = await page.eval_on_selector_all(
                "#rows tr", "rs => rs.map(r => r.dataset.caseId)"
            )
            assert order == ["q-urgent", "q-later"]  # nearest deadline first
            cells = await row.locator("td").all_inner_texts()
            assert cells[1] == "P1" and "Front-Line Support" in cells[2]
            assert cells[3] == "support-generalists"
            link = await row.locator("a").get_attribute("href")
            assert link == "http://127.0.0.1:8233/namespaces/default/workflows/case-q-urgent"

            # A claimed case leaves the queue; the hidden tab's title counts the queue.
            await stack.act(alice, "q-later", "claim")
            await page.locator("tr[data-case-id='q-later']").wait_for(
                state="detached", timeout=5_000
            )
            await page.evaluate(
                "Object.defineProperty(document, 'hidden', {value: true, configurable: true});"
                "document.dispatchEvent(new Event('visibilitychange'))"
            )
            await stack.open(alice, "q-3")
            await page.locator("tr[data-case-id='q-3']").wait_for(timeout=5_000)
            assert await page.title() == "(2 · 1 new) Escalator queue"

            # The stream drops (here: this replica's poller stops): the page backs off,
            # reconnects with Last-Event-ID and carries on, without a reload.
            assert resumed_from == [None]
            stack.replicas[0].feeds.feeds[stack.account].task.cancel()
            await page.locator("#status.down").wait_for(timeout=5_000)
            assert "reconnecting in" in await page.inner_text("#status")
            await page.locator("#status.live").wait_for(timeout=10_000)
            assert len(resumed_from) == 2 and resumed_from[1], resumed_from
            await stack.open(alice, "q-5")
            await page.locator("tr[data-case-id='q-5']").wait_for(timeout=5_000)
            await page.screenshot(path=ARTIFACTS / "queue-after-reconnect.png")

            # Reduced motion: arrivals appear without the slide.
            calm = await browser.new_page()
            await calm.emulate_media(reduced_motion="reduce")
            await calm.goto(f"{base}/queue")
            await calm.evaluate(f"sessionStorage.setItem('escalator.token', {json.dumps(alice)})")
            await calm.reload()
            await calm.locator("#status.live").wait_for(timeout=10_000)
            await stack.open(alice, "q-4")
            calm_row = calm.locator("tr[data-case-id='q-4']")
            await calm_row.wait_for(timeout=5_000)
            animation = await calm_row.evaluate("r => getComputedStyle(r).animationName")
            assert animation == "none"
            assert not errors, errors
        finally:
            await browser.close()
