"""Measure what the recovery timeouts cost when many deadlines fall due at once.

    .venv/bin/python -m bench.measure_herd_timeouts --cases 500 \\
        --task-timeout 4s --sticky 10 --task-timeout 4s --sticky 3

Each (--task-timeout, --sticky) pair is one run, on a fresh dev server (SQLite,
started as `escalator up` starts it, with `history.defaultWorkflowTaskTimeout` set
to the given value) and one `worker.py` with ESCALATOR_STICKY_TIMEOUT set. The
cases' L1 deadlines fall due in the same second; the run ends when every L2 mail is
in. It prints how long that took after the deadline, how many workflow tasks timed
out (by timeout type) and the time workflow tasks spent queued (schedule-to-start)
and on the worker (start-to-close), read from every case's history.
docs/reliability.md ("Kill -9 recovery") quotes its figures. It runs the chaos
tests' dev server, worker and mail sink (tests/chaos_support.py), so that what it
measures is what those tests exercise.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from chaos_support import (  # noqa: E402
    BouncingMailSink,
    DevServerProcess,
    LoggedWorker,
    gather_bounded,
)
from support import seconds_policy, unique_queue  # noqa: E402
from temporalio.api.enums.v1 import EventType, TimeoutType  # noqa: E402

from escalator.domain.models import workflow_id_for  # noqa: E402
from starter import EscalatorClient  # noqa: E402

L2 = "l2@example.com"


def quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values) or [0.0]
    pick = lambda f: ordered[min(len(ordered) - 1, int(f * len(ordered)))]  # noqa: E731
    return {name: round(pick(f), 2) for name, f in (("p50", 0.5), ("p95", 0.95), ("max", 1.0))}


async def one_run(cases: int, task_timeout: str, sticky: str, workdir: Path) -> dict:
    dev = DevServerProcess(workdir / "server", tuned=False)
    untuned = dev.command
    dev.command = lambda: [
        *untuned(),
        "--dynamic-config-value",
        f'history.defaultWorkflowTaskTimeout="{task_timeout}"',
    ]
    sink = BouncingMailSink().start()
    worker = None
    try:
        await dev.start()
        queue = unique_queue("herd")
        worker = LoggedWorker(
            name="herd",
            log_dir=workdir,
            temporal_address=dev.address,
            task_queue=queue,
            smtp_port=sink.port,
            ESCALATOR_STICKY_TIMEOUT=sticky,
        ).start()
        await worker.ready()
        escalator = EscalatorClient(await dev.connect(), queue)
        due = datetime.now(UTC) + timedelta(seconds=5 + cases / 25)

        async def start(n: int) -> None:
            # Policy durations are whole seconds: the deadlines share one second.
            first = max(1, round((due - datetime.now(UTC)).total_seconds()))
            case = {"case_id": f"h{n}", "title": "herd", "policy": seconds_policy(first, 900)}
            await escalator.start_case(case)

        await gather_bounded((start(n) for n in range(cases)), limit=20)

        def at_l2() -> int:
            return sum(
                L2 in m["X-Envelope-To"] and m["X-Escalator-Purpose"] == "tier_entry"
                for m in list(sink.messages)
            )

        while at_l2() < cases:
            if datetime.now(UTC) > due + timedelta(seconds=400):
                raise SystemExit(f"only {at_l2()} of {cases} L2 mails after 400 s")
            await asyncio.sleep(0.5)
        drained = (datetime.now(UTC) - due).total_seconds()

        client = await dev.connect()
        timed_out: Counter[str] = Counter()
        queued, working = [], []

        async def read(n: int) -> None:
            handle = client.get_workflow_handle(workflow_id_for(f"h{n}"))
            scheduled = started = 0.0
            for event in (await handle.fetch_history()).events:
                at = event.event_time.ToDatetime().timestamp()
                kind = event.event_type
                if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
                    scheduled = at
                elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                    started = at
                    queued.append(at - scheduled)
                elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                    working.append(at - started)
                elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                    attributes = event.workflow_task_timed_out_event_attributes
                    timed_out[TimeoutType.Name(attributes.timeout_type)] += 1

        await gather_bounded((read(n) for n in range(cases)), limit=20)
        return {
            "task_timeout": task_timeout,
            "sticky_s": sticky,
            "all_L2_mail_after_due_s": round(drained, 1),
            "workflow_tasks_timed_out": dict(timed_out),
            "schedule_to_start_s": quantiles(queued),
            "start_to_close_s": quantiles(working),
        }
    finally:
        if worker is not None:
            worker.stop()
        sink.stop()
        dev.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--task-timeout", action="append", required=True, help="e.g. 4s")
    parser.add_argument("--sticky", action="append", required=True, help="seconds, e.g. 10")
    args = parser.parse_args()
    if len(args.task_timeout) != len(args.sticky):
        parser.error("give --task-timeout and --sticky the same number of times")
    for task_timeout, sticky in zip(args.task_timeout, args.sticky, strict=True):
        with tempfile.TemporaryDirectory() as workdir:
            print(await one_run(args.cases, task_timeout, sticky, Path(workdir)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
