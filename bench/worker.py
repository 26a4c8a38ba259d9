"""A worker process for the benchmarks: Escalator's, or the minimal baseline's.

    python -m bench.worker --kind escalator|minimal --address HOST:PORT \
        --task-queue Q --ready-file PATH [--set max_cached_workflows=1000 ...]

Both kinds connect the same way (pydantic data converter), log the way worker.py
does, and take the same settings, so any difference the benchmarks show comes
from the workflows, not from how their workers are configured. The Escalator
worker is `escalator.runtime.worker.build_workers`, the one worker.py runs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

from temporalio.worker import PollerBehaviorSimpleMaximum, UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

# Settings a benchmark may pass, and how each becomes a Worker argument.
SETTINGS = {
    "max_cached_workflows": int,
    "max_concurrent_workflow_tasks": int,
    "max_concurrent_activities": int,
    "workflow_pollers": int,
    "activity_pollers": int,
    "nonsticky_to_sticky_poll_ratio": float,
    "sandboxed": lambda value: value.lower() in {"1", "true", "yes"},
}


def worker_options(settings: dict[str, str]) -> dict:
    options: dict = {}
    for key, raw in settings.items():
        if key not in SETTINGS:
            raise SystemExit(f"unknown setting {key!r}; known: {', '.join(SETTINGS)}")
        value = SETTINGS[key](raw)
        if key == "workflow_pollers":
            options["workflow_task_poller_behavior"] = PollerBehaviorSimpleMaximum(value)
        elif key == "activity_pollers":
            options["activity_task_poller_behavior"] = PollerBehaviorSimpleMaximum(value)
        elif key == "sandboxed":  # explicit either way: it overrides worker.py's default
            options["workflow_runner"] = (
                SandboxedWorkflowRunner() if value else UnsandboxedWorkflowRunner()
            )
        else:
            options[key] = value
    return options


async def run(args: argparse.Namespace) -> None:
    from escalator.adapters.settings import TemporalSettings
    from escalator.adapters.temporal_client import connect

    client = await connect(TemporalSettings(address=args.address, task_queue=args.task_queue))
    options = worker_options(dict(item.split("=", 1) for item in args.set))
    if args.kind == "escalator":
        from escalator.runtime.worker import (
            build_workers,
            cache_workflow_bytecode,
            options_from_env,
        )

        # worker.py's own settings first (e.g. how it runs workflow code), then
        # whatever the benchmark sets for both sides.
        options = {**options_from_env(), **options}
        cache_workflow_bytecode(options)  # as worker.py does
        workers = build_workers(client, args.task_queue, **options)
    else:
        from bench.minimal import MinimalEscalation
        from bench.minimal_activities import ALL

        workers = [
            Worker(
                client,
                task_queue=args.task_queue,
                workflows=[MinimalEscalation],
                activities=ALL,
                **options,
            )
        ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    from escalator.runtime.worker import running

    async with running(workers):
        # Tells the harness that the worker polls (a tiny, local write).
        Path(args.ready_file).write_text("ready\n")  # noqa: ASYNC240
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("--kind", choices=["escalator", "minimal"], required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    # As worker.py: INFO logs (one line per mail sent) are part of the product's cost.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(run(args))
    logging.shutdown()
    # Skip interpreter finalisation: the SDK's runtime can abort there (sdk-python #300).
    os._exit(0)


if __name__ == "__main__":
    main()
