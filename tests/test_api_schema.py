"""Schemathesis against the running API: no 5xx, and every answer fits the schema.

`escalator api` runs as a user starts it, against the real Temporal dev server
with a worker on its task queue, and schemathesis (the PyPI tool, run as its own CLI) reads `/openapi.json` and
sends generated requests with a valid engineer's token: the examples, coverage
and fuzzing phases, then the stateful phase over the document's links. The rate
limit is off for the run (ESCALATOR_API_RATE=off): a 429 is the limiter working,
not a finding.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from support import ESCALATOR, RecordingNotifier, case_workers, free_port, unique_queue

from escalator.devstack import processes

pytestmark = pytest.mark.integration

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"


@pytest_asyncio.fixture
async def api(dev_env, tmp_path):
    port = free_port()
    queue = unique_queue("schema")
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "ESCALATOR_TASK_QUEUE": queue,
        "ESCALATOR_API_RATE": "off",
        "PYTHONUNBUFFERED": "1",
    }
    data = tmp_path / ".data"
    created = await asyncio.to_thread(
        subprocess.run,
        [*ESCALATOR, "token", "create", "--user", "alice", "--role", "engineer",
         "--data-dir", str(data)],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    server = processes.spawn(
        [*ESCALATOR, "api", "--port", str(port), "--data-dir", str(data)],
        tmp_path / "api.log",
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(150):
                try:
                    if (await http.get(f"{url}/openapi.json", timeout=2)).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None:
                    pytest.fail((tmp_path / "api.log").read_text())
                await asyncio.sleep(0.2)
        async with case_workers(dev_env.client, queue, RecordingNotifier().activities):
            yield url, token
    finally:
        processes.stop(server)


async def test_schemathesis_finds_no_server_error_and_no_answer_off_the_schema(api, tmp_path):
    if not SCHEMATHESIS.exists() and shutil.which("schemathesis") is None:
        pytest.skip("schemathesis is not installed (it is in the dev extra)")
    url, token = api
    command = [
        str(SCHEMATHESIS if SCHEMATHESIS.exists() else shutil.which("schemathesis")),
        "run", f"{url}/openapi.json",
        "--header", f"Authorization: Bearer {token}",
        "--checks", CHECKS,
        "--phases", "examples,coverage,fuzzing,stateful",
        # The live stream never ends by design: tests/test_stream.py covers it.
        "--exclude-path", "/v1/stream",
        "--max-examples", "25",
        "--generation-deterministic",
        "--request-timeout", "20",
        "--no-color",
    ]  # fmt: skip
    result = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-6000:]
    # It really exercised the case routes, not only the schema.
    assert "/v1/cases" in report, report[-3000:]
