"""The codec server: lets the Temporal Web UI show encrypted payloads in clear.

It implements Temporal's remote codec protocol: `POST .../encode` and `POST .../decode`
take and return `{"payloads": [...]}` in proto-JSON (only the last path segment
counts, so it can be mounted under any prefix). Browsers may call it only from the
allowed origins: the dev-server UI (http://localhost:8233) and the compose UI
(http://localhost:8080) by default. Point the UI at it with
`temporal server start-dev --ui-codec-endpoint http://localhost:8888`, or
`TEMPORAL_CODEC_ENDPOINT` on the `temporalio/ui` container.

Whoever can reach it can decrypt, so it listens on 127.0.0.1 unless told otherwise,
and every `POST .../encode` and `.../decode` must carry the token ESCALATOR_CODEC_TOKEN
(or the `token` its caller passes): `Authorization: Bearer <token>`, which is what the
Web UI's "Pass access token" sends and what a reverse proxy in front of this server adds,
or, for a local Web UI with no login, as the path segment before the operation
(`--ui-codec-endpoint http://localhost:8888/<token>`). It refuses to start without one.
CORS preflights (OPTIONS) carry no credentials and need none. docs/encryption.md.

It logs one line per request, never payload contents and never the token.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from google.protobuf import json_format
from pydantic import SecretStr
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
TOKEN_ENV_VAR = "ESCALATOR_CODEC_TOKEN"
MIN_TOKEN_CHARS = 16
_TOKEN_FIX = (
    "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'` "
    "and give the Web UI the same (docs/encryption.md)"
)

_ORIGINS_KEY = web.AppKey("allowed_origins", frozenset)
_CODEC_KEY = web.AppKey("codec", PayloadCodec)
_TOKEN_KEY = web.AppKey("token", bytes)
# Typed request storage (aiohttp >= 3.14 warns on string keys; older ones lack RequestKey).
_request_key = getattr(web, "RequestKey", lambda name, _type: name)
_COUNT_KEY = _request_key("payload_count", int)
_PROBLEM_KEY = _request_key("problem", str)
_PATH_TOKEN_KEY = _request_key("path_token", bool)
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


def check_token(token: str | SecretStr | None, *, source: str = TOKEN_ENV_VAR) -> SecretStr:
    """The codec server's token; InvalidInput (one line, never the token) if unusable."""
    text = token.get_secret_value() if isinstance(token, SecretStr) else (token or "")
    text = text.strip()
    if not text:
        raise InvalidInput(
            f"{source} is not set: the codec server decrypts for whoever calls it, so it "
            f"needs a token; {_TOKEN_FIX}"
        )
    if len(text) < MIN_TOKEN_CHARS or not all(c.isascii() and c.isprintable() for c in text):
        raise InvalidInput(
            f"{source} must be at least {MIN_TOKEN_CHARS} printable ASCII characters "
            f"(it has {len(text)}); {_TOKEN_FIX}"
        )
    if "/" in text or " " in text or "," in text:
        raise InvalidInput(f"{source} must not contain '/', ',' or spaces; {_TOKEN_FIX}")
    return SecretStr(text)


def build_app(
    codec: PayloadCodec,
    *,
    token: str | SecretStr,
    allowed_origins: Sequence[str] = DEFAULT_ORIGINS,
) -> web.Application:
    """The codec HTTP app: /encode and /decode for callers with `token`, with CORS for
    `allowed_origins` only."""
    secret = check_token(token, source="the codec server token")
    app = web.Application(middlewares=[_log_and_cors], client_max_size=MAX_BODY_BYTES)
    app[_ORIGINS_KEY] = frozenset(check_origin(origin) for origin in allowed_origins)
    app[_CODEC_KEY] = codec
    app[_TOKEN_KEY] = secret.get_secret_value().encode("ascii")
    app.router.add_route("POST", "/{path:.*}", _codec_request)
    app.router.add_route("OPTIONS", "/{path:.*}", _preflight)
    return app


def _operation(request: web.Request) -> str | None:
    last = request.path.rstrip("/").rsplit("/", 1)[-1]
    return last if last in {"encode", "decode"} else None


def _presented_token(request: web.Request) -> tuple[bytes | None, bool]:
    """The token the request presents, and whether it came in the path (a local Web UI
    configured with `http://host:port/<token>` as its codec endpoint)."""
    scheme, _, value = request.headers.get(hdrs.AUTHORIZATION, "").strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip().encode("utf-8", "replace"), False
    segments = request.path.rstrip("/").split("/")
    if len(segments) >= 3 and segments[-2]:
        return segments[-2].encode("utf-8", "replace"), True
    return None, False


def _authorized(request: web.Request) -> bool:
    presented, in_path = _presented_token(request)
    if presented is None:
        request[_PROBLEM_KEY] = "no token"
        return False
    # Constant time: the comparison must not tell an attacker how much of a guess is right.
    if hmac.compare_digest(presented, request.app[_TOKEN_KEY]):
        if in_path:
            request[_PATH_TOKEN_KEY] = True
        return True
    request[_PROBLEM_KEY] = "wrong token"
    return False


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
    if _foreign_origin(request):
        return _refuse(403, "origin not allowed; add it with --origin")
    if not _authorized(request):
        response = _refuse(
            401,
            "this codec server needs its token: send Authorization: Bearer <token> "
            f"({TOKEN_ENV_VAR} where it runs)",
        )
        response.headers[hdrs.WWW_AUTHENTICATE] = 'Bearer realm="escalator-codec"'
        return response
    operation = _operation(request)
    if operation is None:
        return _refuse(404, "not found: use POST /encode or POST /decode")
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
        _loggable(_shown_path(request)),
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


def _shown_path(request: web.Request) -> str:
    """The path for the log: never a token. A POST that was not authorized may carry a
    mistyped token in its path, and one that was may carry the real one."""
    if request.method == "POST" and (
        request.get(_PATH_TOKEN_KEY) or request.get(_PROBLEM_KEY) in ("no token", "wrong token")
    ):
        segments = request.path.rstrip("/").split("/")
        if len(segments) >= 3:
            return "/***/" + segments[-1]
    return request.path


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


def token_from_env(environ: Mapping[str, str] = os.environ) -> SecretStr:
    """ESCALATOR_CODEC_TOKEN; InvalidInput (one line) when unset or too weak."""
    return check_token(environ.get(TOKEN_ENV_VAR))


async def run_codec_server(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    origins: Sequence[str] = DEFAULT_ORIGINS,
    *,
    codec: PayloadCodec | None = None,
    token: str | SecretStr | None = None,
    environ: Mapping[str, str] = os.environ,
) -> None:
    """Serve the codec (from ESCALATOR_ENCRYPTION_KEY unless given) to callers with the
    token (`token`, else ESCALATOR_CODEC_TOKEN) until cancelled."""
    codec = codec or codec_from_env(environ)
    secret = check_token(token) if token is not None else token_from_env(environ)
    app = build_app(codec, token=secret, allowed_origins=origins)
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
