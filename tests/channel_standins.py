"""Local stand-ins for a Slack incoming webhook and PagerDuty's Events API v2, over
real HTTP on 127.0.0.1.

The real services are out of reach from tests, and a mocked HTTP client would skip
what is worth testing: the bytes on the wire, status handling, Retry-After. Each
stand-in checks every request against the service's documented shape and answers as
the service does:

  SlackStandIn      POST <url> (`/services/T0000/B0000/<random secret>`), a JSON body:
                    top-level keys Slack's incoming webhooks take, a non-empty `text`,
                    `blocks` (at most 50) of known types with text objects within
                    Block Kit's limits (section text 3000, header 150 plain_text,
                    at most 10 fields of 2000). Valid: 200 `ok`, kept in `.messages`.
                    Invalid: 400 `invalid_payload`, kept in `.rejected` with the
                    reasons. Another path: 404 `no_service`.
  PagerDutyStandIn  POST <url> (`/v2/enqueue`), an Events API v2 body: the expected
                    `routing_key`, `event_action` trigger|acknowledge|resolve, a
                    `dedup_key` (at most 255; required to acknowledge or resolve), for
                    a trigger a `payload` with summary (at most 1024), source and
                    severity critical|error|warning|info, optional links, images,
                    client and client_url, no other key. Valid: 202 with PagerDuty's
                    success JSON, kept in `.events`. Invalid: 400 with its error JSON
                    (`{"status": "invalid event", "message": "Event object is
                    invalid", "errors": [...]}`), kept in `.rejected`.

`WebhookStandIn` is a generic JSON receiver (any object at its secret path, 200).

`.answer_next(status, body="", retry_after=None, times=1)` scripts the next answers
(e.g. 429 with `Retry-After: 1`); a scripted answer is given without looking at the
request, so it keeps nothing in `.messages` / `.events`, but every request is in
`.requests` (method, path, headers, body, parsed JSON) and counts in `.attempts`.

Sources for the shapes: Slack's "Sending messages using incoming webhooks" and Block
Kit reference (docs.slack.dev), PagerDuty's "Send an Alert Event" and "Send a Change
Event" references (developer.pagerduty.com/docs/events-api-v2).

Use them as context managers or through the fixtures:
    from channel_standins import pagerduty_standin, slack_standin  # noqa: F401
A module using them is in the loopback lane: mark it `pytestmark = pytest.mark.loopback`.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

# -- Slack's rules ------------------------------------------------------------------------

# What an incoming webhook takes at the top level (others are refused as invalid).
SLACK_TOP_LEVEL = frozenset(
    {
        "text",
        "blocks",
        "attachments",
        "thread_ts",
        "mrkdwn",
        "unfurl_links",
        "unfurl_media",
        "username",
        "icon_emoji",
        "icon_url",
        "channel",
        "metadata",
    }
)
SLACK_BLOCK_KEYS = {
    "header": frozenset({"type", "text", "block_id"}),
    "section": frozenset({"type", "text", "fields", "accessory", "block_id", "expand"}),
    "context": frozenset({"type", "elements", "block_id"}),
    "divider": frozenset({"type", "block_id"}),
    "actions": frozenset({"type", "elements", "block_id"}),
}
SLACK_MAX_BLOCKS = 50
SLACK_SECTION_TEXT = 3000
SLACK_HEADER_TEXT = 150
SLACK_FIELDS = 10
SLACK_FIELD_TEXT = 2000
SLACK_CONTEXT_ELEMENTS = 10
SLACK_CONTEXT_TEXT = 3000
SLACK_ACTION_ELEMENTS = 25
SLACK_TEXT_MAX = 40000


def _text_object(value: Any, where: str, limit: int, *, plain_only: bool = False) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: a text object must be an object"]
    kind = value.get("type")
    if kind not in ("plain_text", "mrkdwn") or (plain_only and kind != "plain_text"):
        wanted = "plain_text" if plain_only else "plain_text or mrkdwn"
        return [f"{where}.type: must be {wanted}"]
    allowed = {"type", "text", "emoji"} if kind == "plain_text" else {"type", "text", "verbatim"}
    problems = [f"{where}.{key}: not allowed" for key in value if key not in allowed]
    text = value.get("text")
    if not isinstance(text, str) or not text:
        problems.append(f"{where}.text: must be a non-empty string")
    elif len(text) > limit:
        problems.append(f"{where}.text: {len(text)} characters, more than {limit}")
    for flag in ("emoji", "verbatim"):
        if flag in value and not isinstance(value[flag], bool):
            problems.append(f"{where}.{flag}: must be a boolean")
    return problems


def _block(block: Any, where: str) -> list[str]:
    if not isinstance(block, dict):
        return [f"{where}: must be an object"]
    kind = block.get("type")
    if kind not in SLACK_BLOCK_KEYS:
        return [f"{where}.type: unknown block type {kind!r}"]
    problems = [f"{where}.{key}: not allowed" for key in block if key not in SLACK_BLOCK_KEYS[kind]]
    if kind == "header":
        problems += _text_object(
            block.get("text"), f"{where}.text", SLACK_HEADER_TEXT, plain_only=True
        )
    elif kind == "section":
        if "text" not in block and "fields" not in block:
            problems.append(f"{where}: a section needs text or fields")
        if "text" in block:
            problems += _text_object(block["text"], f"{where}.text", SLACK_SECTION_TEXT)
        if "fields" in block:
            fields = block["fields"]
            if not isinstance(fields, list) or not 1 <= len(fields) <= SLACK_FIELDS:
                problems.append(f"{where}.fields: must be a list of 1 to {SLACK_FIELDS}")
            else:
                for i, field in enumerate(fields):
                    problems += _text_object(field, f"{where}.fields[{i}]", SLACK_FIELD_TEXT)
    elif kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= SLACK_CONTEXT_ELEMENTS:
            problems.append(f"{where}.elements: must be a list of 1 to {SLACK_CONTEXT_ELEMENTS}")
        else:
            for i, element in enumerate(elements):
                if isinstance(element, dict) and element.get("type") == "image":
                    continue
                problems += _text_object(element, f"{where}.elements[{i}]", SLACK_CONTEXT_TEXT)
    elif kind == "actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= SLACK_ACTION_ELEMENTS:
            problems.append(f"{where}.elements: must be a list of 1 to {SLACK_ACTION_ELEMENTS}")
        elif not all(isinstance(e, dict) and isinstance(e.get("type"), str) for e in elements):
            problems.append(f"{where}.elements: each must be an element object with a type")
    return problems


def slack_problems(body: Any) -> list[str]:
    """Why Slack would answer `invalid_payload` to `body` (empty: it would post it)."""
    if not isinstance(body, dict):
        return ["the body must be a JSON object"]
    problems = [
        f"{key}: not an incoming-webhook field" for key in body if key not in SLACK_TOP_LEVEL
    ]
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        problems.append("text: must be a non-empty string")
    elif len(text) > SLACK_TEXT_MAX:
        problems.append(f"text: more than {SLACK_TEXT_MAX} characters")
    for flag in ("mrkdwn", "unfurl_links", "unfurl_media"):
        if flag in body and not isinstance(body[flag], bool):
            problems.append(f"{flag}: must be a boolean")
    if "blocks" in body:
        blocks = body["blocks"]
        if not isinstance(blocks, list) or len(blocks) > SLACK_MAX_BLOCKS:
            problems.append(f"blocks: must be a list of at most {SLACK_MAX_BLOCKS}")
        else:
            for i, block in enumerate(blocks):
                problems += _block(block, f"blocks[{i}]")
    return problems


# -- PagerDuty's rules --------------------------------------------------------------------

PD_TOP_LEVEL = frozenset(
    {
        "routing_key",
        "event_action",
        "dedup_key",
        "payload",
        "images",
        "links",
        "client",
        "client_url",
    }
)
PD_PAYLOAD = frozenset(
    {"summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"}
)
PD_ACTIONS = frozenset({"trigger", "acknowledge", "resolve"})
PD_SEVERITIES = frozenset({"critical", "error", "warning", "info"})
PD_SUMMARY = 1024
PD_DEDUP_KEY = 255


def pagerduty_problems(body: Any, routing_key: str) -> list[str]:
    """PagerDuty's `errors` for `body` (empty: it would accept the event)."""
    if not isinstance(body, dict):
        return ["Event object must be a JSON object"]
    problems = [f"'{key}' is not a valid field" for key in body if key not in PD_TOP_LEVEL]
    key = body.get("routing_key")
    if not isinstance(key, str) or not key:
        problems.append("'routing_key' is missing or blank")
    elif len(key) != 32:
        problems.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    elif key != routing_key:
        problems.append("'routing_key' is not a known integration key")
    action = body.get("event_action")
    if action not in PD_ACTIONS:
        problems.append("'event_action' is invalid (must be one of trigger, acknowledge, resolve)")
    dedup = body.get("dedup_key")
    if dedup is None:
        if action in ("acknowledge", "resolve"):
            problems.append(f"'dedup_key' is required to {action} an alert")
    elif not isinstance(dedup, str) or not dedup:
        problems.append("'dedup_key' must be a non-empty string")
    elif len(dedup) > PD_DEDUP_KEY:
        problems.append(f"'dedup_key' is longer than {PD_DEDUP_KEY} characters")
    if action == "trigger":
        problems += _pd_payload(body.get("payload"))
    for name in ("client", "client_url"):
        if name in body and not isinstance(body[name], str):
            problems.append(f"'{name}' must be a string")
    problems += _pd_list(body, "links", required="href", optional={"text"})
    problems += _pd_list(body, "images", required="src", optional={"href", "alt"})
    return problems


def _pd_payload(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is missing or not an object"]
    problems = [f"'payload.{key}' is not a valid field" for key in payload if key not in PD_PAYLOAD]
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary:
        problems.append("'payload.summary' is missing or blank")
    elif len(summary) > PD_SUMMARY:
        problems.append(f"'payload.summary' is longer than {PD_SUMMARY} characters")
    source = payload.get("source")
    if not isinstance(source, str) or not source:
        problems.append("'payload.source' is missing or blank")
    if payload.get("severity") not in PD_SEVERITIES:
        problems.append("'payload.severity' is invalid (critical, error, warning or info)")
    for name in ("timestamp", "component", "group", "class"):
        if name in payload and not isinstance(payload[name], str):
            problems.append(f"'payload.{name}' must be a string")
    if "custom_details" in payload and not isinstance(
        payload["custom_details"], dict | list | str | int | float | bool
    ):
        problems.append("'payload.custom_details' must be JSON")
    return problems


def _pd_list(body: dict, name: str, *, required: str, optional: set[str]) -> list[str]:
    if name not in body:
        return []
    items = body[name]
    if not isinstance(items, list):
        return [f"'{name}' must be a list"]
    problems = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get(required), str):
            problems.append(f"'{name}[{i}].{required}' is missing")
        elif set(item) - {required, *optional}:
            problems.append(f"'{name}[{i}]' has unknown fields")
    return problems


# -- the servers --------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


def _answer(status: int, body: Any, retry_after: float | int | str | None = None) -> Answer:
    if isinstance(body, dict | list):
        content, kind = json.dumps(body).encode(), "application/json"
    else:
        content, kind = str(body).encode(), "text/html"
    headers = (("Retry-After", str(retry_after)),) if retry_after is not None else ()
    return Answer(status, content, kind, headers)


class _StandIn:
    """A ThreadingHTTPServer on 127.0.0.1 with a script of answers and thread-safe records."""

    path: str = "/"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script: deque[Answer] = deque()
        self._requests: list[dict[str, Any]] = []
        self._accepted: list[Any] = []
        self._rejected: list[tuple[Any, list[str]]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                stand_in._send(self, stand_in._handle(self.path, dict(self.headers), raw))

            def do_GET(self) -> None:
                stand_in._send(self, stand_in._not_post())

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet test output

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.port = self._server.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"

    # -- lifecycle

    def start(self) -> _StandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting and records

    def answer_next(
        self,
        status: int,
        body: Any = "",
        retry_after: float | int | str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` requests with `status` and `body` (a dict or list
        is sent as JSON), and `Retry-After: <retry_after>` if given."""
        with self._lock:
            self._script.extend([_answer(status, body, retry_after)] * times)

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._requests)

    @property
    def attempts(self) -> int:
        with self._lock:
            return len(self._requests)

    @property
    def rejected(self) -> list[tuple[Any, list[str]]]:
        """(body, reasons) of each request refused as invalid."""
        with self._lock:
            return list(self._rejected)

    # -- serving

    def _handle(self, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            self._requests.append({"path": path, "headers": headers, "body": raw, "json": body})
            if self._script:
                return self._script.popleft()
        if path != self.path:
            return self._wrong_path()
        kind = headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            problems = [f"Content-Type {kind!r}: must be application/json"]
        elif body is None:
            problems = ["the body is not JSON"]
        else:
            problems = self._problems(body)
        with self._lock:
            if problems:
                self._rejected.append((body, problems))
                return self._invalid(problems)
            self._accepted.append(body)
            return self._ok(body)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, answer: Answer) -> None:
        handler.send_response(answer.status)
        handler.send_header("Content-Type", answer.content_type)
        handler.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers:
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(answer.body)

    # -- what each service answers (overridden)

    def _problems(self, body: Any) -> list[str]:
        raise NotImplementedError

    def _ok(self, body: Any) -> Answer:
        raise NotImplementedError

    def _invalid(self, problems: list[str]) -> Answer:
        raise NotImplementedError

    def _wrong_path(self) -> Answer:
        raise NotImplementedError

    def _not_post(self) -> Answer:
        return _answer(405, "invalid_method")


class SlackStandIn(_StandIn):
    """A Slack incoming webhook: `.url` holds the secret path, as Slack's does."""

    def __init__(self) -> None:
        super().__init__()
        self.secret = secrets.token_urlsafe(18)
        self.path = f"/services/T0000/B0000/{self.secret}"
        self.url = f"{self.origin}{self.path}"

    def __repr__(self) -> str:
        return f"SlackStandIn(port={self.port})"  # never the secret path

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The bodies Slack would have posted, in order."""
        with self._lock:
            return list(self._accepted)

    def _problems(self, body: Any) -> list[str]:
        return slack_problems(body)

    def _ok(self, body: Any) -> Answer:
        return _answer(200, "ok")

    def _invalid(self, problems: list[str]) -> Answer:
        return _answer(400, "invalid_payload")

    def _wrong_path(self) -> Answer:
        return _answer(404, "no_service")


class PagerDutyStandIn(_StandIn):
    """PagerDuty's Events API v2 for one integration, whose key is `.routing_key`."""

    path = "/v2/enqueue"

    def __init__(self) -> None:
        super().__init__()
        self.routing_key = secrets.token_hex(16)  # 32 characters, like PagerDuty's
        self.url = f"{self.origin}{self.path}"

    def __repr__(self) -> str:
        return f"PagerDutyStandIn(port={self.port})"  # never the routing key

    @property
    def events(self) -> list[dict[str, Any]]:
        """The events PagerDuty would have processed, in order."""
        with self._lock:
            return list(self._accepted)

    def _problems(self, body: Any) -> list[str]:
        return pagerduty_problems(body, self.routing_key)

    def _ok(self, body: Any) -> Answer:
        key = body.get("dedup_key") or secrets.token_hex(16)
        return _answer(202, {"status": "success", "message": "Event processed", "dedup_key": key})

    def _invalid(self, problems: list[str]) -> Answer:
        return _answer(
            400,
            {"status": "invalid event", "message": "Event object is invalid", "errors": problems},
        )

    def _wrong_path(self) -> Answer:
        return _answer(404, {"status": "not found", "message": "Not Found", "errors": []})


class WebhookStandIn(_StandIn):
    """A generic JSON webhook receiver (docs/webhooks.md): any JSON object POSTed to
    `.url` (`/hooks/<random secret>`) is kept in `.bodies` with a 200."""

    def __init__(self) -> None:
        super().__init__()
        self.secret = secrets.token_urlsafe(18)
        self.path = f"/hooks/{self.secret}"
        self.url = f"{self.origin}{self.path}"

    def __repr__(self) -> str:
        return f"WebhookStandIn(port={self.port})"

    @property
    def bodies(self) -> list[Any]:
        with self._lock:
            return list(self._accepted)

    def _problems(self, body: Any) -> list[str]:
        return [] if isinstance(body, dict) else ["the body must be a JSON object"]

    def _ok(self, body: Any) -> Answer:
        return _answer(200, "ok")

    def _invalid(self, problems: list[str]) -> Answer:
        return _answer(400, "bad request")

    def _wrong_path(self) -> Answer:
        return _answer(404, "not found")


@pytest.fixture
def slack_standin():
    with SlackStandIn() as server:
        yield server


@pytest.fixture
def pagerduty_standin():
    with PagerDutyStandIn() as server:
        yield server


@pytest.fixture
def webhook_standin():
    with WebhookStandIn() as server:
        yield server
