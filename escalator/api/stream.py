"""The live queue: `GET /v1/stream` (server-sent events of case changes) and `GET /queue`.

Where the changes come from (docs/stream.md has the reasoning):

- Temporal visibility is the source, polled, not an in-process bus: every replica
  reads the same visibility, so a change made through any replica (or the CLI, or a
  timer in the workflow) reaches the subscribers of every replica.
- The workflow upserts its search attributes (CaseStatus, CaseTier, CaseAssignee,
  SlaBreached, NextDeadline, ...) on every transition, but there is no last-change
  attribute to query on, so each replica keeps one poller per account with
  subscribers (never one per client): it lists the account's running cases every
  POLL_SECONDS and diffs the rows against the last poll into events.
- The ledger is written in batches, at close, so it cannot drive a live stream.
  temporalio.contrib.workflow_streams would put a durable log in a workflow, but
  then every transition of every case is a signal to a hub workflow: a second write
  path that can fail apart from the transition, and one workflow's history limits
  as the ceiling of an account's traffic.

Event ids are `<unix_ms>-<feed>-<seq>`: the time the replica saw the change, the
poller that saw it (random per poller) and its sequence number. A reconnect with
`Last-Event-ID` to the same poller replays exactly what came after; to another
replica (or after a restart) it replays what that replica saw after the time, less
REPLAY_SLACK_MS (a change can be seen a poll apart by two replicas), so events may
repeat but are not lost; where the replica's buffer does not reach back that far
(more than REPLAY_SECONDS, or before its poller started) it sends a `snapshot`
event instead: the account's running cases as they are now, from which a client
rebuilds its view (the changes in between are not replayed one by one).

Case rows carry search attributes only (no case text); everything is serialized as
JSON. Tokens are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse, Response, StreamingResponse

from escalator.adapters.token_store import TokenStore
from escalator.adapters.visibility import case_row
from escalator.domain import search_attributes as search
from escalator.domain.models import workflow_id_for
from escalator.domain.names import WORKFLOW_TYPE
from escalator.domain.tokens import TokenGrant, parse_token
from starter import EscalatorClient

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5  # per replica and account, whatever the number of subscribers
HEARTBEAT_SECONDS = 15.0  # a comment line, so proxies keep an idle stream open
RETRY_MS = 1000  # the `retry:` field: the client's reconnect back-off base
REPLAY_SECONDS = 3600  # what a reconnect can get back, event by event
REPLAY_SLACK_MS = 3000  # a resume on another replica goes back this much further
MAX_BUFFERED_EVENTS = 20_000  # per account and replica
MAX_ROWS = 2_000  # running cases tracked per account; beyond that snapshots say so
MAX_STREAMS_PER_TOKEN = 4
MAX_ACCOUNTS = 200  # accounts one replica polls at once
MAX_QUEUED_PER_SUBSCRIBER = 2_000  # a client this far behind is dropped and resumes
LINGER_SECONDS = 300  # a poller outlives its last subscriber, so a resume finds its buffer
FIRST_POLL_SECONDS = 10.0
MAX_DESCRIBES = 50  # cases that stopped running, looked up one by one per poll

KINDS = ("created", "escalated", "claimed", "resolved", "breached", "reopened", "updated", "closed")
STATIC = Path(__file__).parent / "static"
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def running_cases_query(account: str) -> str:
    """Every running case of the account: open, claimed, and resolved ones waiting out
    their reopen window."""
    return " AND ".join(
        (
            f"WorkflowType = {_quote(WORKFLOW_TYPE)}",
            "ExecutionStatus = 'Running'",
            f"{search.CASE_ACCOUNT.name} = {_quote(account)}",
        )
    )


def changes(
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    final: dict[str, Any] | None = None,
) -> list[str]:
    """The event kinds between two rows of one case (None: not running). A case that
    stopped running is `closed`, or `resolved` if its `final` row says it was resolved
    at the close (a case with no reopen window closes as it resolves)."""
    if before is None and after is None:
        return []
    if before is None:
        # Opened and acted on within one poll: say what it already went through.
        fresh = {**after, "status": "open", "assignee": None, "sla_breached": False}
        return ["created"] + [k for k in changes(fresh, after) if k != "updated"]
    if after is None:
        resolved = final is not None and final.get("status") == "resolved"
        return ["resolved"] if resolved and before.get("status") != "resolved" else ["closed"]
    kinds: list[str] = []
    was, now = before.get("status"), after.get("status")
    if now == "resolved" and was != "resolved":
        kinds.append("resolved")
    elif was == "resolved" and now != "resolved":
        kinds.append("reopened")
    if (after.get("tier") or 0) > (before.get("tier") or 0):
        kinds.append("escalated")
    if after.get("assignee") and after.get("assignee") != before.get("assignee"):
        kinds.append("claimed")
    if after.get("sla_breached") and not before.get("sla_breached"):
        kinds.append("breached")
    if not kinds and _comparable(before) != _comparable(after):
        kinds.append("updated")  # severity, de-escalation, unclaimed, deadline, ...
    return kinds


def _comparable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("web_ui",)}


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Event:
    ms: int
    seq: int
    id: str
    kind: str
    data: str  # the JSON, serialized once


@dataclass(frozen=True)
class Position:
    ms: int
    feed: str
    seq: int

    @classmethod
    def parse(cls, text: str | None) -> Position | None:
        parts = (text or "").strip().split("-")
        if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit():
            return None
        if len(parts[0]) > 15 or len(parts[1]) > 16 or len(parts[2]) > 15:
            return None
        return cls(int(parts[0]), parts[1], int(parts[2]))


@dataclass(eq=False)  # hashed by identity, kept in a set
class _Subscriber:
    queue: asyncio.Queue[Event | None] = field(
        default_factory=lambda: asyncio.Queue(MAX_QUEUED_PER_SUBSCRIBER)
    )
    overflowed: bool = False


class AccountFeed:
    """One account's poller on this replica, fanned out to all its subscribers."""

    def __init__(
        self,
        account: str,
        list_rows: Callable[[str], Awaitable[list[dict]]],
        final_row: Callable[[str], Awaitable[dict | None]],
    ):
        self.account = account
        self.list_rows = list_rows
        self.final_row = final_row
        self.feed = secrets.token_hex(4)
        self.started_ms = _now_ms()
        self.covered_since_ms = self.started_ms  # events before this are not buffered
        self.rows: dict[str, dict[str, Any]] = {}
        self.complete = True
        self.seq = 0
        self.events: deque[Event] = deque()
        self.subscribers: set[_Subscriber] = set()
        self.seeded = asyncio.Event()
        self.idle_since: float | None = time.monotonic()
        self.task: asyncio.Task | None = None

    # -- polling ---------------------------------------------------------------

    async def run(self, retire: Callable[[AccountFeed], None]) -> None:
        failures = 0
        try:
            while True:
                if self.idle_since is not None:
                    if time.monotonic() - self.idle_since > LINGER_SECONDS:
                        return
                try:
                    rows = await self.list_rows(self.account)
                except Exception as error:  # Temporal unreachable: keep the last view
                    failures += 1
                    if failures in (1, 10) or failures % 100 == 0:
                        log.warning("live stream: visibility poll failed: %s", error)
                    await asyncio.sleep(min(POLL_SECONDS * 2**failures, 10.0))
                    continue
                failures = 0
                running = {row["case_id"] for row in rows}
                gone = sorted(set(self.rows) - running)[:MAX_DESCRIBES]
                finals = {}
                for case_id in gone:  # closed since the last poll: resolved, or else?
                    with contextlib.suppress(Exception):
                        finals[case_id] = await self.final_row(case_id)
                self.apply(rows, finals)
                await asyncio.sleep(POLL_SECONDS)
        finally:
            retire(self)

    def apply(
        self, rows: list[dict[str, Any]], finals: dict[str, dict | None] | None = None
    ) -> None:
        """Diff a poll against the last one and publish the changes (synchronously, so
        a subscriber registers between polls, never in the middle of one)."""
        self.complete = len(rows) < MAX_ROWS
        current = {row["case_id"]: row for row in rows}
        if not self.seeded.is_set():
            self.rows = current
            # Changes from here on become events: a resume from earlier gets a snapshot.
            self.covered_since_ms = _now_ms()
            self.seeded.set()
            return
        ms = _now_ms()
        for case_id in sorted(set(self.rows) | set(current)):
            before, after = self.rows.get(case_id), current.get(case_id)
            final = (finals or {}).get(case_id) if after is None else None
            for kind in changes(before, after, final):
                row = after or final or before
                self._publish(ms, kind, case_id, row)
        self.rows = current

    def _publish(self, ms: int, kind: str, case_id: str, row: dict[str, Any] | None) -> None:
        self.seq += 1
        event_id = f"{ms}-{self.feed}-{self.seq}"
        at = datetime.fromtimestamp(ms / 1000, UTC).isoformat()
        payload = {"kind": kind, "case_id": case_id, "case": row, "at": at}
        event = Event(ms, self.seq, event_id, kind, json.dumps(payload, separators=(",", ":")))
        self.events.append(event)
        self._trim(ms)
        for subscriber in list(self.subscribers):
            self._offer(subscriber, event)

    def _trim(self, ms: int) -> None:
        while self.events and (
            len(self.events) > MAX_BUFFERED_EVENTS or self.events[0].ms < ms - REPLAY_SECONDS * 1000
        ):
            dropped = self.events.popleft()
            self.covered_since_ms = max(self.covered_since_ms, dropped.ms + 1)

    def _offer(self, subscriber: _Subscriber, event: Event | None) -> None:
        try:
            subscriber.queue.put_nowait(event)
        except asyncio.QueueFull:
            # Too far behind: end its stream (at once, not after what is queued); it
            # reconnects and resumes from the last id it got, still in the buffer.
            subscriber.overflowed = True
            self.subscribers.discard(subscriber)
            with contextlib.suppress(asyncio.QueueEmpty):
                subscriber.queue.get_nowait()
            subscriber.queue.put_nowait(None)

    # -- subscribing -------------------------------------------------------------

    def snapshot(self) -> Event:
        ms = _now_ms()
        rows = sorted(self.rows.values(), key=lambda r: r["case_id"])
        at = datetime.fromtimestamp(ms / 1000, UTC).isoformat()
        data = {"kind": "snapshot", "cases": rows, "complete": self.complete, "at": at}
        # The snapshot's id is the feed's position: resuming from it replays what follows.
        event_id = f"{ms}-{self.feed}-{self.seq}"
        return Event(ms, self.seq, event_id, "snapshot", json.dumps(data, separators=(",", ":")))

    def subscribe(self, last: Position | None) -> tuple[_Subscriber, list[Event]]:
        """Register a subscriber and return what it gets first: the events it missed
        after `last`, or a snapshot. No await here, so nothing is missed or doubled."""
        subscriber = _Subscriber()
        self.subscribers.add(subscriber)
        self.idle_since = None
        self._trim(_now_ms())
        return subscriber, self._catch_up(last)

    def _catch_up(self, last: Position | None) -> list[Event]:
        if last is None:
            return [self.snapshot()]
        if last.feed == self.feed:
            oldest = self.events[0].seq if self.events else self.seq + 1
            if last.seq <= self.seq and last.seq >= oldest - 1:
                return [e for e in self.events if e.seq > last.seq]
            return [self.snapshot()]
        since = last.ms - REPLAY_SLACK_MS
        if since >= self.covered_since_ms and last.ms <= _now_ms() + REPLAY_SLACK_MS:
            return [e for e in self.events if e.ms > since]
        return [self.snapshot()]

    def unsubscribe(self, subscriber: _Subscriber) -> None:
        self.subscribers.discard(subscriber)
        if not self.subscribers:
            self.idle_since = time.monotonic()


class Feeds:
    """This replica's pollers, one per account with subscribers (or lingering)."""

    def __init__(self, escalator: Callable[[], Awaitable[EscalatorClient]], web_ui: str):
        self.escalator = escalator
        self.web_ui = web_ui.rstrip("/")
        self.feeds: dict[str, AccountFeed] = {}

    async def list_rows(self, account: str) -> list[dict[str, Any]]:
        cases = await self.escalator()
        query = running_cases_query(account)
        return [
            self._row(cases, execution)
            async for execution in cases.client.list_workflows(
                query, limit=MAX_ROWS, page_size=1000
            )
        ]

    async def final_row(self, case_id: str) -> dict[str, Any] | None:
        """The row of a case that stopped running, from its last run."""
        cases = await self.escalator()
        described = await cases.client.get_workflow_handle(workflow_id_for(case_id)).describe()
        return self._row(cases, described)

    def _row(self, cases: EscalatorClient, execution: Any) -> dict[str, Any]:
        row = case_row(execution)
        namespace = quote(cases.client.namespace, safe="")
        row["web_ui"] = (
            f"{self.web_ui}/namespaces/{namespace}/workflows/{quote(execution.id, safe='')}"
        )
        return row

    def feed_for(self, account: str) -> AccountFeed | None:
        feed = self.feeds.get(account)
        if feed is None:
            if len(self.feeds) >= MAX_ACCOUNTS:
                return None
            feed = AccountFeed(account, self.list_rows, self.final_row)
            self.feeds[account] = feed
            feed.task = asyncio.create_task(feed.run(self._retire))
        return feed

    def _retire(self, feed: AccountFeed) -> None:
        if self.feeds.get(feed.account) is feed:
            del self.feeds[feed.account]
        for subscriber in list(feed.subscribers):
            feed._offer(subscriber, None)

    async def close(self) -> None:
        for feed in list(self.feeds.values()):
            if feed.task:
                feed.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await feed.task


def _frame(event: Event) -> bytes:
    # json.dumps never writes a raw newline, so the data is one `data:` line.
    return f"id: {event.id}\nevent: {event.kind}\ndata: {event.data}\n\n".encode()


def _refusal(status: int, error: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def stream_routes(
    escalator: Callable[[], Awaitable[EscalatorClient]],
    tokens: TokenStore,
    *,
    web_ui: str | None = None,
) -> APIRouter:
    """`GET /v1/stream` and the `/queue` page, over the API's lazily connected client
    and its token store. `web_ui` is the Temporal Web UI's address for the case links
    (default: ESCALATOR_WEB_UI, else the dev server's http://localhost:8233)."""
    feeds = Feeds(escalator, web_ui or os.environ.get("ESCALATOR_WEB_UI", "http://localhost:8233"))

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        yield
        await feeds.close()  # the app's shutdown stops this replica's pollers

    router = APIRouter(tags=["live queue"], lifespan=lifespan)
    streams_per_token: dict[str, int] = {}
    router.feeds = feeds  # type: ignore[attr-defined]  (tests and shutdown reach it)

    async def person(authorization: str | None) -> tuple[str, TokenGrant] | None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        parsed = parse_token(token)
        if parsed is None:
            return None
        grant = await asyncio.to_thread(tokens.grant_for, token)
        if grant is None or grant.kind != "person":
            return None
        return parsed[0], grant  # the token's id (never its secret) counts its streams

    @router.get(
        "/v1/stream",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}, 401: {}, 429: {}, 503: {}},
    )
    async def stream(
        authorization: Annotated[str | None, Header()] = None,
        last_event_id: Annotated[str | None, Header()] = None,  # bad or long: a snapshot
    ) -> Response:
        """Server-sent events of the token's account's case changes: `created`,
        `escalated`, `claimed`, `resolved`, `breached` (and `reopened`, `updated`,
        `closed`), each `{kind, case_id, case, at}` with an `id`; first a `snapshot`
        of the running cases unless `Last-Event-ID` resumes (docs/stream.md)."""
        who = await person(authorization)
        if who is None:
            return _refusal(
                401,
                "a valid bearer token is required (escalator token create)",
                {"WWW-Authenticate": "Bearer"},
            )
        token_id, grant = who
        if streams_per_token.get(token_id, 0) >= MAX_STREAMS_PER_TOKEN:
            return _refusal(
                429,
                f"at most {MAX_STREAMS_PER_TOKEN} live streams per token; close one",
                {"Retry-After": "5"},
            )
        feed = feeds.feed_for(grant.account)
        if feed is None:
            return _refusal(503, "this replica streams too many accounts", {"Retry-After": "5"})
        streams_per_token[token_id] = streams_per_token.get(token_id, 0) + 1
        try:
            await asyncio.wait_for(feed.seeded.wait(), FIRST_POLL_SECONDS)
        except TimeoutError:
            _release(streams_per_token, token_id)
            return _refusal(503, "Temporal cannot be reached; retry later", {"Retry-After": "5"})
        subscriber, first = feed.subscribe(Position.parse(last_event_id))
        return StreamingResponse(
            _events(feed, subscriber, first, lambda: _release(streams_per_token, token_id)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @router.get("/queue", include_in_schema=False)
    async def queue_page() -> Response:
        return _static("queue.html", "text/html; charset=utf-8")

    @router.get("/queue/queue.js", include_in_schema=False)
    async def queue_script() -> Response:
        return _static("queue.js", "text/javascript; charset=utf-8")

    @router.get("/queue/queue.css", include_in_schema=False)
    async def queue_style() -> Response:
        return _static("queue.css", "text/css; charset=utf-8")

    @router.get("/queue/favicon.svg", include_in_schema=False)
    async def queue_icon() -> Response:
        return _static("favicon.svg", "image/svg+xml")

    return router


@functools.cache
def _static_bytes(name: str) -> bytes:
    # Read once per process: the page's files do not change while it runs.
    return (STATIC / name).read_bytes()


def _static(name: str, media_type: str) -> Response:
    return Response(
        _static_bytes(name),
        media_type=media_type,
        headers={"Content-Security-Policy": PAGE_CSP},
    )


def _release(counts: dict[str, int], token_id: str) -> None:
    left = counts.get(token_id, 0) - 1
    if left > 0:
        counts[token_id] = left
    else:
        counts.pop(token_id, None)


async def _events(
    feed: AccountFeed, subscriber: _Subscriber, first: list[Event], release: Callable[[], None]
) -> AsyncIterator[bytes]:
    try:
        yield f"retry: {RETRY_MS}\n: escalator live queue\n\n".encode()
        for event in first:
            yield _frame(event)
        while not subscriber.overflowed:
            try:
                event = await asyncio.wait_for(subscriber.queue.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if event is None:  # the poller stopped
                return
            yield _frame(event)
    finally:
        feed.unsubscribe(subscriber)
        release()
