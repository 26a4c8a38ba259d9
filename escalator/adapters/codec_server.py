"""The codec server: lets the Temporal Web UI show encrypted payloads in clear.

It implements Temporal's remote codec protocol: `POST .../encode` and `POST .../decode`
take and return `{"payloads": [...]}` in proto-JSON (only the last path segment
counts, so it can be mounted under any prefix). Browsers may call it only from the
allowed origins: the dev-server UI (http://localhost:8233) and the compose UI
(http://localhost:8080) by default. Point the UI at it with
`temporal server start-dev --ui-codec-endpoint http://localhost:8888`, or
`TEMPORAL_CODEC_ENDPOINT` on the `temporalio/ui` container.

Whoever can reach it can decrypt, so it listens on 127.0.0.1 unless told otherwise.
It logs one line per request, never payload contents.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

from escalator.adapters.codec import ENV_VAR, EncryptionCodec, KeyRing
from escalator.domain.errors import EscalatorError, InvalidInput

log = logging.getLogger("escalator.adapters.codec_server")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8888
# The dev server's UI (`escalator up`, `temporal server start-dev`) and the compose UI.
DEFAULT_ORIGINS = ("http://localhost:8233", "http://localhost:8080")
# What the Web UI sends: Authorization(-Extras) only with "pass access token" on.
ALLOWED_HEADERS = "Content-Type, X-Namespace, Authorization, Authorization-Extras"
ALLOWED_METHODS = "POST, OPTIONS"
MAX_BODY_BYTES = 16 * 1024 * 1024  # a batch of payloads near Temporal's 2 MB limit each
PREFLIGHT_MAX_AGE = "600"

_ORIGINS_KEY = web.AppKey("allowed_origins", frozenset)
_CODEC_KEY = web.AppKey("codec", PayloadCodec)
# Typed request storage (aiohttp >= 3.14 warns on string keys; older ones lack RequestKey).
_request_key = getattr(web, "RequestKey", lambda name, _type: name)
_COUNT_KEY = _request_key("payload_count", int)
_PROBLEM_KEY = _request_key("problem", str)
_Operation = Callable[[Iterable[Payload]], Awaitable[list[Payload]]]


def check_origin(text: str) -> str:
    """`http://localhost:8080` as a browser sends it in `Origin`; InvalidInput otherwise."""
    origin = text.strip().rstrip("/")
    try:
        parts = urlsplit(origin)
        valid = parts.scheme in {"http", "https"} and bool(parts.hostname) and parts.port != 0
    except ValueError:
        valid = False
    if not valid or parts.path or parts.query or parts.fragment or "@" in parts.netloc:
        raise InvalidInput(
            f"origin {text!r} is not a Web UI origin like http://localhost:8080 "
            "(scheme, host and port only; '*' is not allowed)"
        )
    return origin.lower()


def build_app(
    codec: PayloadCodec, *, allowed_origins: Sequence[str] = DEFAULT_ORIGINS
) -> web.Application:
    """The codec HTTP app: /encode and /decode with CORS for `allowed_origins` only."""
    app = web.Application(middlewares=[_log_and_cors], client_max_size=MAX_BODY_BYTES)
    app[_ORIGINS_KEY] = frozenset(check_origin(origin) for origin in allowed_origins)
    app[_CODEC_KEY] = codec
    app.router.add_route("POST", "/{path:.*}", _codec_request)
    app.router.add_route("OPTIONS", "/{path:.*}", _preflight)
    return app


def _operation(request: web.Request) -> str | None:
    last = request.path.rstrip("/").rsplit("/", 1)[-1]
    return last if last in {"encode", "decode"} else None


def _foreign_origin(request: web.Request) -> bool:
    """A browser request from a page we do not serve (no Origin: curl, the CLI)."""
    origin = request.headers.get(hdrs.ORIGIN)
    return origin is not None and origin.lower() not in request.app[_ORIGINS_KEY]


def _refuse(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _preflight(request: web.Request) -> web.Response:
    if _operation(request) is None:
        return _refuse(404, "not found: use POST /encode or POST /decode")
    if _foreign_origin(request):
        return _refuse(403, "origin not allowed; add it with --origin")
    response = web.Response(status=204)
    if request.headers.get(hdrs.ORIGIN):
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = ALLOWED_METHODS
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = ALLOWED_HEADERS
        response.headers[hdrs.ACCESS_CONTROL_MAX_AGE] = PREFLIGHT_MAX_AGE
    return response


async def _codec_request(request: web.Request) -> web.Response:
    operation = _operation(request)
    if operation is None:
        return _refuse(404, "not found: use POST /encode or POST /decode")
    if _foreign_origin(request):
        return _refuse(403, "origin not allowed; add it with --origin")
    # aiohttp reports a missing Content-Type as application/octet-stream.
    if request.content_type not in {"application/json", "application/octet-stream"}:
        return _refuse(415, "send Content-Type: application/json")
    try:
        payloads = json_format.Parse(await request.read(), Payloads())
    except (json_format.ParseError, UnicodeDecodeError, ValueError):
        # The parser's message can quote the body; the body can be customer data.
        return _refuse(400, 'body is not Temporal Payloads JSON ({"payloads": [...]})')
    request[_COUNT_KEY] = len(payloads.payloads)
    codec: PayloadCodec = request.app[_CODEC_KEY]
    apply: _Operation = codec.encode if operation == "encode" else codec.decode
    try:
        result = await apply(payloads.payloads)
    except EscalatorError as error:  # one line, names a key id at most
        request[_PROBLEM_KEY] = str(error)
        return _refuse(400, str(error))
    body = json_format.MessageToDict(Payloads(payloads=result))
    body.setdefault("payloads", [])
    return web.json_response(body)


@web.middleware
async def _log_and_cors(request: web.Request, handler) -> web.StreamResponse:
    started = time.monotonic()
    try:
        response = await handler(request)
    except web.HTTPException as error:  # e.g. 405 from the router, 413 body too large
        response = error
    except Exception as error:  # never a traceback with payloads in it
        log.error("%s %s failed: %s", request.method, _loggable(request.path), type(error).__name__)
        response = _refuse(500, "the codec failed; see the codec server's log")
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is not None and origin.lower() in request.app[_ORIGINS_KEY]:
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
        # The UI's "include cross-origin credentials" option needs this.
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"
    response.headers[hdrs.VARY] = "Origin"
    count = request.get(_COUNT_KEY)
    log.info(
        "%s %s %d%s origin=%s namespace=%s %.0fms%s",
        request.method,
        _loggable(request.path),
        response.status,
        f" payloads={count}" if count is not None else "",
        _loggable(origin or "-"),
        _loggable(request.headers.get("X-Namespace", "-")),
        (time.monotonic() - started) * 1000,
        f" ({request[_PROBLEM_KEY]})" if _PROBLEM_KEY in request else "",
    )
    if isinstance(response, web.HTTPException) and response.status >= 400:
        raise response
    return response


def _loggable(text: str) -> str:
    """Client-chosen text (a percent-decoded path can hold newlines) as one short line."""
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= 120 else text[:119] + "…"


def codec_from_env(environ: Mapping[str, str] = os.environ) -> EncryptionCodec:
    keyring = KeyRing.from_env(environ)
    if keyring is None:
        raise InvalidInput(
            f"{ENV_VAR} is not set: the codec server needs the same keys as the worker; "
            "generate one with `escalator keygen`"
        )
    return EncryptionCodec(keyring)


async def run_codec_server(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    origins: Sequence[str] = DEFAULT_ORIGINS,
    *,
    codec: PayloadCodec | None = None,
    environ: Mapping[str, str] = os.environ,
) -> None:
    """Serve the codec (from ESCALATOR_ENCRYPTION_KEY unless given) until cancelled."""
    app = build_app(codec or codec_from_env(environ), allowed_origins=origins)
    runner = web.AppRunner(app, access_log=None)  # our middleware logs each request
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as error:
            raise InvalidInput(
                f"cannot listen on {host}:{port} ({error.strerror or error}); "
                "choose another port with --port"
            ) from None
        log.info("codec server on http://%s:%d for %s", host, port, ", ".join(app[_ORIGINS_KEY]))
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
