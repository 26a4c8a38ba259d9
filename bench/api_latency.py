"""(h) The HTTP API's claim latency, next to the same claim through the Python client.

One Escalator stack (dev server, SMTP sink, worker), and `escalator api` started as
an operator starts it, on loopback, against that server. For each of N open cases,
one claim: half through `POST /v1/cases/{id}/claim` with an engineer's bearer token,
half through `EscalatorClient.claim` (the update the API sends, without HTTP, the
token check and the rate limit). Claims go one at a time, so each figure is the
latency of one claim on a quiet server, from the request to the update's answer.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import httpx

from bench.harness import summary
from bench.sides import ENGINEER
from escalator.devstack import processes
from escalator.devstack.processes import free_port

ESCALATOR = [sys.executable, "-m", "escalator.cli"]


async def claim_latency(st, workdir, cases: int, plan) -> dict:
    """p50/p95 of claims through the API and through the client, on `st`'s stack."""
    data = workdir / "api-data"
    queue = st.side.api.task_queue
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": st.server.address,
        "ESCALATOR_TASK_QUEUE": queue,
        "ESCALATOR_LEDGER_URL": f"sqlite:///{data.resolve()}/ledger.db",
        "ESCALATOR_API_RATE": "off",  # the limiter is not what is measured
    }
    created = await asyncio.to_thread(
        subprocess.run,
        [*ESCALATOR, "token", "create", "--user", ENGINEER["user"], "--role", "engineer",
         "--data-dir", str(data)],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    if created.returncode != 0:
        raise RuntimeError(f"token create failed: {created.stderr.strip()}")
    token = created.stdout.strip().splitlines()[-1]
    port = free_port()
    api = processes.spawn(
        [*ESCALATOR, "api", "--port", str(port), "--data-dir", str(data)],
        workdir / "api.log",
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as http:
            await processes.wait_ready(
                api,
                lambda: _answers(http),
                within=30,
                every=0.2,
                exited=lambda code: RuntimeError(f"the API exited with code {code}"),
                late=lambda: RuntimeError("the API did not answer within 30 s"),
            )
            ids = [f"h-{n}" for n in range(cases)]
            for case_id in ids:
                await st.side.start(case_id, plan)
            through_api, through_client = [], []
            for number, case_id in enumerate(ids):
                began = time.perf_counter()
                if number % 2 == 0:
                    answer = await http.post(f"/v1/cases/{case_id}/claim", json={})
                    if answer.status_code != 200:
                        raise RuntimeError(f"claim answered {answer.status_code}: {answer.text}")
                    through_api.append(time.perf_counter() - began)
                else:
                    await st.side.api.claim(case_id, ENGINEER)
                    through_client.append(time.perf_counter() - began)
    finally:
        processes.stop(api)
    return {
        "api_ms": {k: _ms(v) for k, v in summary(through_api).items()},
        "client_ms": {k: _ms(v) for k, v in summary(through_client).items()},
    }


async def _answers(http: httpx.AsyncClient) -> bool:
    try:
        return (await http.get("/openapi.json")).status_code == 200
    except httpx.HTTPError:
        return False


def _ms(value):
    return value if value is None or isinstance(value, int) else round(1000 * value, 1)
