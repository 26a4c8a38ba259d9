"""The codec server over real HTTP on loopback, as the Web UI calls it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from google.protobuf import json_format
from support import eventually, free_port
from temporalio.api.common.v1 import Payload, Payloads

from escalator.adapters.codec import ENV_VAR, EncryptionCodec, KeyRing, generate_key_entry
from escalator.adapters.codec_server import (
    DEFAULT_ORIGINS,
    TOKEN_ENV_VAR,
    build_app,
    check_origin,
    check_token,
    run_codec_server,
)
from escalator.domain.errors import InvalidInput

UI = "http://localhost:8233"
COMPOSE_UI = "http://localhost:8080"
EVIL = "http://evil.example"
PII = b'{"customer": {"name": "Jane Roe", "email": "jane@acme.example"}}'
PAYLOADS = [
    Payload(metadata={"encoding": b"json/plain"}, data=PII),
    Payload(metadata={"encoding": b"binary/null"}),
    Payload(metadata={"encoding": b"binary/plain", "x": b"\x00\xff"}, data=bytes(range(256))),
]
TOKEN = "codec-token-6b1f0e9a2c7d4e58"
UI_HEADERS = {
    "Content-Type": "application/json",
    "X-Namespace": "default",
    "Authorization": f"Bearer {TOKEN}",
}
NO_TOKEN = {"Content-Type": "application/json", "X-Namespace": "default"}


def as_json(payloads: list[Payload]) -> str:
    return json_format.MessageToJson(Payloads(payloads=payloads))


def from_json(body: dict) -> list[Payload]:
    return list(json_format.ParseDict(body, Payloads()).payloads)


@pytest_asyncio.fixture
async def server():
    """The app on a real port; yields (base URL, codec)."""
    codec = EncryptionCodec(KeyRing.parse(generate_key_entry("k1")))
    runner = web.AppRunner(build_app(codec, token=TOKEN, allowed_origins=list(DEFAULT_ORIGINS)))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with aiohttp.ClientSession() as session:
        yield f"http://127.0.0.1:{port}", codec, session
    await runner.cleanup()


async def test_encode_then_decode_round_trips_payloads_exactly(server):
    base, codec, session = server
    async with session.post(f"{base}/encode", data=as_json(PAYLOADS), headers=UI_HEADERS) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        raw = await resp.read()
        encoded = from_json(await resp.json())
    assert b"Jane Roe" not in raw and b"jane@acme.example" not in raw
    assert base64.b64encode(PII).decode().encode() not in raw
    assert len(encoded) == 3
    assert {p.metadata["encoding"] for p in encoded} == {b"binary/encrypted"}
    assert await codec.decode(encoded) == PAYLOADS  # the server used this codec

    async with session.post(f"{base}/decode", data=as_json(encoded), headers=UI_HEADERS) as resp:
        assert resp.status == 200
        assert from_json(await resp.json()) == PAYLOADS


async def test_decode_of_what_the_worker_encrypted_and_of_plain_payloads(server):
    base, codec, session = server
    worker_written = await codec.encode(PAYLOADS[:1])
    body = as_json([*worker_written, PAYLOADS[2]])  # a pre-encryption payload passes through
    async with session.post(f"{base}/decode", data=body, headers=UI_HEADERS) as resp:
        assert from_json(await resp.json()) == [PAYLOADS[0], PAYLOADS[2]]


async def test_endpoints_are_matched_on_the_last_path_segment(server):
    base, _, session = server
    url = f"{base}/codec/default/encode"
    async with session.post(url, data=as_json(PAYLOADS), headers=UI_HEADERS) as resp:
        assert resp.status == 200
        encoded = await resp.text()
    async with session.post(
        f"{base}/codec/default/decode", data=encoded, headers=UI_HEADERS
    ) as resp:
        assert from_json(await resp.json()) == PAYLOADS
    async with session.post(f"{base}/decrypt", data=encoded, headers=UI_HEADERS) as resp:
        assert resp.status == 404
    async with session.get(f"{base}/decode") as resp:
        assert resp.status == 405


async def test_empty_batch_answers_an_empty_list(server):
    base, _, session = server
    async with session.post(f"{base}/decode", data='{"payloads": []}', headers=UI_HEADERS) as resp:
        assert await resp.json() == {"payloads": []}


async def test_bad_requests_get_a_one_line_error_without_the_body(server, caplog):
    base, _, session = server
    caplog.set_level(logging.INFO, logger="escalator.adapters.codec_server")
    # protobuf's own parse errors quote these values; the server must not pass them on.
    for secret_body in (
        '{"payloads": [{"metadata": "jane@acme.example"}]}',
        '{"jane@acme.example": 1}',
        "jane@acme.example",
    ):
        async with session.post(f"{base}/encode", data=secret_body, headers=UI_HEADERS) as resp:
            assert resp.status == 400
            error = (await resp.json())["error"]
        assert "Payloads JSON" in error and "jane" not in error and "\n" not in error
    async with session.post(
        f"{base}/encode", data="{}", headers={**UI_HEADERS, "Content-Type": "text/plain"}
    ) as resp:
        assert resp.status == 415
    assert "jane" not in caplog.text


async def test_unknown_key_id_is_a_400_naming_the_id(server):
    base, _, session = server
    other = EncryptionCodec(KeyRing.parse(generate_key_entry("retired-2024")))
    body = as_json(await other.encode(PAYLOADS[:1]))
    async with session.post(
        f"{base}/decode", data=body, headers={**UI_HEADERS, "Origin": UI}
    ) as resp:
        assert resp.status == 400
        assert "'retired-2024'" in (await resp.json())["error"]
        # The UI can read the error, so it shows why decoding failed.
        assert resp.headers["Access-Control-Allow-Origin"] == UI


@pytest.mark.parametrize("origin", [UI, COMPOSE_UI])
async def test_preflight_from_an_allowed_ui_is_allowed(server, origin):
    base, _, session = server
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
    }
    async with session.options(f"{base}/decode", headers=headers) as resp:
        assert resp.status in (200, 204)
        assert resp.headers["Access-Control-Allow-Origin"] == origin
        assert "POST" in resp.headers["Access-Control-Allow-Methods"]
        allowed = {
            h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")
        }
        assert {"content-type", "x-namespace", "authorization"} <= allowed
        assert "Origin" in resp.headers["Vary"]
    async with session.post(
        f"{base}/encode", data=as_json(PAYLOADS), headers={**UI_HEADERS, "Origin": origin}
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == origin


async def test_other_origins_get_no_cors_and_no_decryption(server):
    base, codec, session = server
    preflight = {"Origin": EVIL, "Access-Control-Request-Method": "POST"}
    async with session.options(f"{base}/decode", headers=preflight) as resp:
        assert "Access-Control-Allow-Origin" not in resp.headers
        assert "Access-Control-Allow-Methods" not in resp.headers
        assert resp.status == 403
    body = as_json(await codec.encode(PAYLOADS[:1]))
    async with session.post(
        f"{base}/decode", data=body, headers={**UI_HEADERS, "Origin": EVIL}
    ) as resp:
        assert resp.status == 403
        assert "Access-Control-Allow-Origin" not in resp.headers
        assert b"Jane Roe" not in await resp.read()


async def test_logs_one_line_per_request_without_payloads(server, caplog):
    base, codec, session = server
    caplog.set_level(logging.INFO, logger="escalator.adapters.codec_server")
    body = as_json(await codec.encode(PAYLOADS))
    async with session.post(f"{base}/decode", data=body, headers={**UI_HEADERS, "Origin": UI}):
        pass
    [record] = [r for r in caplog.records if r.name == "escalator.adapters.codec_server"]
    line = record.getMessage()
    assert "POST /decode 200 payloads=3" in line and UI in line and "namespace=default" in line
    assert "\n" not in line and "Jane" not in line and "jane" not in line

    caplog.clear()
    async with session.post(f"{base}/x%0Aforged%20line/de%0Acode", data="{}", headers=UI_HEADERS):
        pass
    [record] = [r for r in caplog.records if r.name == "escalator.adapters.codec_server"]
    assert "\n" not in record.getMessage()
    assert "/x?forged line/de?code 404" in record.getMessage()


def test_origins_must_be_plain_origins():
    assert check_origin("http://localhost:8080/") == "http://localhost:8080"
    assert check_origin("https://UI.Example.com") == "https://ui.example.com"
    for bad in ["*", "localhost:8080", "http://localhost:8080/ui", "ftp://x", "http://"]:
        with pytest.raises(InvalidInput, match="not a Web UI origin"):
            check_origin(bad)
    with pytest.raises(InvalidInput):
        build_app(
            EncryptionCodec(KeyRing.parse(generate_key_entry("k"))),
            token=TOKEN,
            allowed_origins=["*"],
        )


async def test_run_codec_server_serves_the_env_keys_until_cancelled():
    entry = generate_key_entry("served")
    codec = EncryptionCodec(KeyRing.parse(entry))
    port = free_port()
    task = asyncio.create_task(
        run_codec_server(
            "127.0.0.1", port, [COMPOSE_UI], environ={ENV_VAR: entry, TOKEN_ENV_VAR: TOKEN}
        )
    )
    base = f"http://127.0.0.1:{port}"
    body = as_json(await codec.encode(PAYLOADS))
    async with aiohttp.ClientSession() as session:

        async def answered():
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with session.post(f"{base}/decode", data=body, headers=UI_HEADERS) as resp:
                    return from_json(await resp.json())
            return None

        assert await eventually(answered, within=10) == PAYLOADS
        preflight = {"Origin": UI, "Access-Control-Request-Method": "POST"}
        async with session.options(f"{base}/decode", headers=preflight) as resp:
            assert "Access-Control-Allow-Origin" not in resp.headers  # only COMPOSE_UI given
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.post(f"{base}/decode", data=body):
                pass


async def test_run_codec_server_without_keys_is_a_one_line_error():
    with pytest.raises(InvalidInput, match=f"^{ENV_VAR} is not set.*escalator keygen"):
        await run_codec_server("127.0.0.1", free_port(), environ={})


async def test_run_codec_server_on_a_busy_port_is_a_one_line_error():
    entry = generate_key_entry("k")
    port = free_port()
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", port)
    try:
        with pytest.raises(InvalidInput, match=f"cannot listen on 127.0.0.1:{port}.*--port"):
            await run_codec_server("127.0.0.1", port, environ={ENV_VAR: entry}, token=TOKEN)
    finally:
        blocker.close()
        await blocker.wait_closed()


# -- the token ----------------------------------------------------------------------------


async def test_the_codec_server_without_a_token_answers_401(server, caplog):
    base, codec, session = server
    caplog.set_level(logging.INFO, logger="escalator.adapters.codec_server")
    body = as_json(await codec.encode(PAYLOADS[:1]))
    for headers in (
        {**NO_TOKEN, "Origin": UI},
        {**NO_TOKEN, "Origin": UI, "Authorization": "Bearer "},
        {**NO_TOKEN, "Origin": UI, "Authorization": f"Basic {TOKEN}"},
    ):
        for operation in ("decode", "encode"):
            async with session.post(f"{base}/{operation}", data=body, headers=headers) as resp:
                assert resp.status == 401
                assert resp.headers["WWW-Authenticate"].startswith("Bearer")
                # The UI can read why, so it can say so.
                assert resp.headers["Access-Control-Allow-Origin"] == UI
                error = (await resp.json())["error"]
                assert "Authorization: Bearer" in error and "ESCALATOR_CODEC_TOKEN" in error
                assert b"Jane Roe" not in await resp.read()
    assert "(no token)" in caplog.text


async def test_a_wrong_token_answers_401_and_is_never_logged(server, caplog):
    base, codec, session = server
    caplog.set_level(logging.INFO, logger="escalator.adapters.codec_server")
    body = as_json(await codec.encode(PAYLOADS[:1]))
    for wrong in (TOKEN[:-1], TOKEN + "x", TOKEN.upper(), "x" * 200):
        headers = {**NO_TOKEN, "Authorization": f"Bearer {wrong}"}
        async with session.post(f"{base}/decode", data=body, headers=headers) as resp:
            assert resp.status == 401
        async with session.post(f"{base}/{wrong}/decode", data=body, headers=NO_TOKEN) as resp:
            assert resp.status == 401
    assert "(wrong token)" in caplog.text
    assert TOKEN[:-1] not in caplog.text and "xxxxxxxx" not in caplog.text


async def test_the_token_may_be_the_path_segment_before_the_operation(server, caplog):
    """For a local Web UI with no login: --ui-codec-endpoint http://localhost:8888/<token>."""
    base, codec, session = server
    caplog.set_level(logging.INFO, logger="escalator.adapters.codec_server")
    body = as_json(await codec.encode(PAYLOADS))
    async with session.post(f"{base}/{TOKEN}/decode", data=body, headers=NO_TOKEN) as resp:
        assert resp.status == 200
        assert from_json(await resp.json()) == PAYLOADS
    assert TOKEN not in caplog.text
    assert "POST /***/decode 200" in caplog.text


async def test_preflights_need_no_token(server):
    base, _, session = server
    preflight = {
        "Origin": UI,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
    }
    for path in ("/decode", f"/{TOKEN}/encode"):
        async with session.options(f"{base}{path}", headers=preflight) as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == UI
            assert "authorization" in resp.headers["Access-Control-Allow-Headers"].lower()


async def test_run_codec_server_without_a_token_refuses_to_start():
    entry = generate_key_entry("k")
    with pytest.raises(InvalidInput, match=r"^ESCALATOR_CODEC_TOKEN is not set.*secrets") as caught:
        await run_codec_server("127.0.0.1", free_port(), environ={ENV_VAR: entry})
    assert "\n" not in str(caught.value)
    with pytest.raises(InvalidInput, match="at least 16"):
        await run_codec_server(
            "127.0.0.1", free_port(), environ={ENV_VAR: entry, TOKEN_ENV_VAR: "short-secret"}
        )
    with pytest.raises(InvalidInput) as caught:
        await run_codec_server("127.0.0.1", free_port(), environ={ENV_VAR: entry}, token="tiny")
    assert "tiny" not in str(caught.value)
    with pytest.raises(InvalidInput, match="token"):
        build_app(EncryptionCodec(KeyRing.parse(entry)), token="")


def test_the_token_is_a_secret():
    token = check_token(TOKEN)
    assert TOKEN not in repr(token) and TOKEN not in str(token)
