"""A local stand-in for Anthropic's Messages API, over real HTTP on 127.0.0.1.

The real API is out of reach from tests, and mocking the SDK would skip the parts
worth testing (HTTP status mapping, timeouts, what goes over the wire). This server
answers `POST /v1/messages` from a script of behaviours, one per request in order,
then `default`:

  good        200, a `tool_use` block calling record_assessment with valid input
  malformed   200, a record_assessment call missing fields, with 7 suggested steps
  text        200, a plain text answer (drafts)
  error_400 / error_401 / error_403 / error_404 / error_429 / error_500 / error_529
              the status with Anthropic's error JSON; 429 sends `retry-after`
  hang        waits `hang_seconds` (30) before answering, to exercise client timeouts

Every request is recorded (path, headers with the API key redacted, JSON body); the
key itself is kept apart in `api_key`, left out of repr, so tests can compare it.

Use it through the `anthropic_standin` fixture:
    from anthropic_standin import anthropic_standin  # noqa: F401
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

STANDIN_MODEL = "claude-standin-1"

VALID_ASSESSMENT: dict[str, Any] = {
    "summary": "Sync stops at 0% for one mailbox after the 2.3 upgrade; L1 ruled out the client.",
    "what_we_know": ["Sync stops at 0%", "Started after the 2.3 upgrade"],
    "likely_cause": "A server-side mailbox migration step that did not finish (unconfirmed).",
    "suggested_steps": ["Check the mailbox migration log", "Re-run the migration step"],
    "confidence": "medium",
}
MALFORMED_ASSESSMENT: dict[str, Any] = {
    "summary": "Looks like a sync issue.",
    "suggested_steps": [f"step {n}" for n in range(1, 8)],  # 7 > the maximum of 5
}
DRAFT_TEXT = "We are looking into the sync problem and will update you soon."

_ERRORS: dict[str, tuple[int, str, str]] = {
    "error_400": (400, "invalid_request_error", "messages: field required"),
    "error_401": (401, "authentication_error", "invalid x-api-key"),
    "error_403": (403, "permission_error", "Your API key does not have permission"),
    "error_404": (404, "not_found_error", "model: not-a-model"),
    "error_429": (429, "rate_limit_error", "Number of request tokens has exceeded your limit"),
    "error_500": (500, "api_error", "Internal server error"),
    "error_529": (529, "overloaded_error", "Overloaded"),
}
BEHAVIOURS = frozenset({"good", "malformed", "text", "hang", *_ERRORS})
_SECRET_HEADERS = frozenset({"x-api-key", "authorization"})


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names; x-api-key/authorization are "<redacted>"
    body: Any  # the parsed JSON, or None
    raw_body: bytes
    behaviour: str
    api_key: str | None = field(repr=False, default=None)  # compare it, don't print it


class AnthropicStandIn:
    def __init__(self) -> None:
        self.default = "good"
        self.script: list[str] = []
        self.requests: list[RecordedRequest] = []
        self.tool_input: dict[str, Any] = dict(VALID_ASSESSMENT)
        self.text = DRAFT_TEXT
        self.retry_after: str | None = "7"
        self.hang_seconds = 30.0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control ------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def queue(self, *behaviours: str) -> None:
        """Answer the next requests with these behaviours, in order."""
        unknown = set(behaviours) - BEHAVIOURS
        assert not unknown, f"unknown behaviours {unknown}; known: {sorted(BEHAVIOURS)}"
        with self._lock:
            self.script.extend(behaviours)

    def start(self) -> None:
        standin = self

        class Handler(_Handler):
            owner = standin

        self._server = _Server(("127.0.0.1", 0), Handler)
        # A short poll interval makes stop() (shutdown) return at once, not in 0.5 s.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # wakes any `hang` handler at once
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- used by the handler --------------------------------------------------------

    def _next_behaviour(self) -> str:
        with self._lock:
            return self.script.pop(0) if self.script else self.default

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)


class _Server(ThreadingHTTPServer):
    # Handler threads are daemons, so a `hang` request never blocks shutdown or
    # interpreter exit (ThreadingMixIn joins only non-daemon threads on close).
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and closed its socket is what `hang` tests for,
        # not a failure of the stand-in: no traceback on stderr for that.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    owner: AnthropicStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        behaviour = self.owner._next_behaviour()
        headers = {
            name.lower(): "<redacted>" if name.lower() in _SECRET_HEADERS else value
            for name, value in self.headers.items()
        }
        self.owner._record(
            RecordedRequest(
                method="POST",
                path=self.path,
                headers=headers,
                body=body,
                raw_body=raw,
                behaviour=behaviour,
                api_key=_api_key(self.headers),
            )
        )
        if self.path.split("?")[0] != "/v1/messages":
            self._send(404, _error("not_found_error", f"no route {self.path}"))
        elif behaviour in _ERRORS:
            status, kind, message = _ERRORS[behaviour]
            extra = {"retry-after": self.owner.retry_after} if status == 429 else {}
            self._send(status, _error(kind, message), extra)
        elif behaviour == "hang":
            if self.owner._stopping.wait(self.owner.hang_seconds):
                self.close_connection = True  # shutting down: drop the connection
                return
            self._send(200, self._message(body, "good"))
        else:
            self._send(200, self._message(body, behaviour))

    def _message(self, request: Any, behaviour: str) -> dict[str, Any]:
        if behaviour == "text":
            content = [{"type": "text", "text": self.owner.text}]
            stop_reason = "end_turn"
        else:
            tool_input = self.owner.tool_input if behaviour == "good" else MALFORMED_ASSESSMENT
            content = [
                {
                    "type": "tool_use",
                    "id": "toolu_standin_01",
                    "name": "record_assessment",
                    "input": tool_input,
                }
            ]
            stop_reason = "tool_use"
        return {
            "id": "msg_standin_01",
            "type": "message",
            "role": "assistant",
            "model": STANDIN_MODEL,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": len(json.dumps(request)) // 4, "output_tokens": 120},
        }

    def _send(self, status: int, payload: Any, headers: dict[str, str | None] | None = None):
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("request-id", "req_standin")
            for name, value in (headers or {}).items():
                if value is not None:
                    self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except ConnectionError:
            self.close_connection = True  # the client gave up (timeout): nothing to answer


def _api_key(headers) -> str | None:
    # SDK versions differ: older ones send `x-api-key`, 2.x sends `Authorization: Bearer`.
    if headers.get("x-api-key"):
        return headers["x-api-key"]
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


@pytest.fixture
def anthropic_standin():
    """A running stand-in; `.url` is the base URL for ANTHROPIC_BASE_URL."""
    standin = AnthropicStandIn()
    standin.start()
    yield standin
    standin.stop()
