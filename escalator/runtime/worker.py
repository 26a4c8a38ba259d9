"""Build and run the Escalator worker.

One process runs two Temporal workers, each with its own slots:

- the case worker, on the task queue: the workflows and the mail and webhook
  activities;
- the AI worker, on `<task queue>-ai`: the model calls (assessment and drafts).

A model that hangs therefore holds AI slots only, never the ones mail needs.

On SIGTERM or SIGINT both stop polling at once and drain together: mail and model
calls in flight get up to `ESCALATOR_GRACEFUL_SHUTDOWN_TIMEOUT` seconds to finish
(and report), so a deploy or a Ctrl-C neither cuts a send short nor sends it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities import ALL_ACTIVITIES
from activities.assessment import close_clients
from escalator.adapters.settings import TemporalSettings
from escalator.adapters.smtp_settings import SmtpSettings
from escalator.adapters.temporal_client import connect
from escalator.domain.assessment import AI_ACTIVITIES, ai_task_queue
from escalator.domain.errors import EscalatorError
from workflows.escalation import DELIVERY_ATTEMPT_TIMEOUT, EscalationWorkflow

log = logging.getLogger("escalator.worker")

# Model calls are asyncio I/O, so a slot costs little; this bounds how many hung
# calls one process holds at once.
DEFAULT_AI_CONCURRENCY = 200
# How worker.py runs workflow code. The sandbox re-imports the workflow module for
# every case it loads: about 0.2 MiB and 25 % more CPU per cached case, which at
# 1,000 cached cases doubles the worker's memory and slows a herd of deadlines
# (docs/benchmarks.md). Its guard against non-deterministic calls is kept where it
# catches mistakes before they ship: every test and every replay of the recorded
# histories runs the workflow in the sandbox (build_workers' default).
# ESCALATOR_WORKFLOW_SANDBOX=on runs production workers sandboxed too.
PRODUCTION_SANDBOX_DEFAULT = False
# Cases worker.py keeps in memory, about 0.12 MiB each unsandboxed; the others are
# replayed from history when they next act. 800 keeps the worker under 250 MiB
# however many cases are open (docs/benchmarks.md, figure d), and is above any
# herd of deadlines measured there. ESCALATOR_MAX_CACHED_WORKFLOWS overrides.
PRODUCTION_MAX_CACHED_WORKFLOWS = 800
# How long a stopping worker lets activities in flight finish before it cancels them
# (the SDK's default is 0: cancel at once, so a mail being sent when SIGTERM came was
# cut off and sent again by the next worker). One delivery attempt's start-to-close
# timeout: waiting longer is pointless, as Temporal has retried the attempt by then.
# ESCALATOR_GRACEFUL_SHUTDOWN_TIMEOUT overrides; whatever stops the worker must wait
# longer than this before it kills it (docker-compose.yml's stop_grace_period, and
# `escalator up`).
DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT = DELIVERY_ATTEMPT_TIMEOUT
# How long a workflow task may wait on this worker's sticky queue before Temporal
# hands it to any worker on the task queue. After a kill -9 it is how late a case
# acts whose deadline falls in the next 10 s (Temporal's window for a silent sticky
# poller). Kept at the SDK's 10 s on purpose: in a herd of 500 deadlines at once a
# busy worker leaves tasks on its sticky queue for up to 9-14 s, and with 3 or 5 s
# hundreds of them timed out, were re-sent with their full history and the herd took
# 1.8 times as long (docs/reliability.md, "Kill -9 recovery"). A dead worker holding a
# task is covered by the shorter workflow task timeout instead (escalator/devstack/stack.py).
# ESCALATOR_STICKY_TIMEOUT overrides, e.g. 3 where few deadlines ever coincide.
DEFAULT_STICKY_TIMEOUT = timedelta(seconds=10)


def cache_workflow_bytecode(options: dict[str, Any]) -> None:
    """With the sandbox on, let Python cache compiled bytecode even where
    PYTHONDONTWRITEBYTECODE is set (unsandboxed, the module is imported once).

    The sandbox imports the workflow module afresh for every case it loads; without a
    cached .pyc, each load compiles about 1,100 lines (about 16 ms of CPU on these
    machines), which a herd of deadlines pays hundreds of times. Where the source is
    read-only (the Docker image compiles it at build time) this changes nothing.
    """
    if not isinstance(options.get("workflow_runner"), UnsandboxedWorkflowRunner):
        sys.dont_write_bytecode = False


def _activity_name(function: Callable) -> str:
    # The SDK keeps the registered name on its definition; there is no public getter.
    return activity._Definition.must_from_callable(function).name


def split_activities(activities: Sequence[Callable]) -> tuple[list[Callable], list[Callable]]:
    """(case activities, AI activities), by registered name."""
    ai = [a for a in activities if _activity_name(a) in AI_ACTIVITIES]
    return [a for a in activities if a not in ai], ai


def build_workers(
    client: Client,
    task_queue: str,
    activities: Sequence[Callable] = ALL_ACTIVITIES,
    *,
    ai_concurrency: int = DEFAULT_AI_CONCURRENCY,
    **options: Any,
) -> list[Worker]:
    """The case worker (with `options`, e.g. max_cached_workflows) and the AI worker
    (which shares the case worker's graceful_shutdown_timeout, if given)."""
    case_activities, ai = split_activities(activities)
    ai_options = {key: options[key] for key in ("graceful_shutdown_timeout",) if key in options}
    workers = [
        Worker(
            client,
            task_queue=task_queue,
            workflows=[EscalationWorkflow],
            activities=case_activities,
            **options,
        )
    ]
    if ai:
        workers.append(
            Worker(
                client,
                task_queue=ai_task_queue(task_queue),
                activities=ai,
                max_concurrent_activities=ai_concurrency,
                **ai_options,
            )
        )
    return workers


@contextlib.asynccontextmanager
async def running(workers: Sequence[Worker]) -> AsyncIterator[None]:
    """Run every worker until the block ends, then shut them all down together, so
    they drain in parallel: the whole stop takes one grace period, not one each."""
    async with contextlib.AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        try:
            yield
        finally:
            # Worker.shutdown is idempotent: each worker's own exit then just waits.
            await asyncio.gather(*(worker.shutdown() for worker in workers))


def options_from_env(environ=os.environ) -> dict[str, Any]:
    """worker.py's settings, with the ones an operator may tune (README, "Tuning")."""
    options: dict[str, Any] = {}
    for name, key in (
        ("ESCALATOR_MAX_CACHED_WORKFLOWS", "max_cached_workflows"),
        ("ESCALATOR_AI_CONCURRENCY", "ai_concurrency"),
    ):
        raw = environ.get(name, "").strip()
        if not raw:
            continue
        if not raw.isdigit() or int(raw) < 1:
            raise EscalatorError(f"{name}={raw!r}: must be a whole number of at least 1")
        options[key] = int(raw)
    options.setdefault("max_cached_workflows", PRODUCTION_MAX_CACHED_WORKFLOWS)
    options["graceful_shutdown_timeout"] = graceful_shutdown_timeout(environ)
    options["sticky_queue_schedule_to_start_timeout"] = _seconds(
        environ, "ESCALATOR_STICKY_TIMEOUT", DEFAULT_STICKY_TIMEOUT, allow_zero=False
    )
    raw = environ.get("ESCALATOR_WORKFLOW_SANDBOX", "").strip().lower()
    if raw not in ("", "on", "off"):
        raise EscalatorError(f"ESCALATOR_WORKFLOW_SANDBOX={raw!r}: must be on or off")
    if not (raw == "on" if raw else PRODUCTION_SANDBOX_DEFAULT):
        options["workflow_runner"] = UnsandboxedWorkflowRunner()
    return options


def graceful_shutdown_timeout(environ: Mapping[str, str] = os.environ) -> timedelta:
    """How long worker.py drains on SIGTERM (ESCALATOR_GRACEFUL_SHUTDOWN_TIMEOUT, s)."""
    return _seconds(
        environ,
        "ESCALATOR_GRACEFUL_SHUTDOWN_TIMEOUT",
        DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT,
        allow_zero=True,
    )


_MAX_SECONDS = 3600


def _seconds(
    environ: Mapping[str, str], name: str, default: timedelta, *, allow_zero: bool
) -> timedelta:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    # float() also accepts "nan" and "inf", which are no durations.
    if not (0 <= value <= _MAX_SECONDS) or (value == 0 and not allow_zero):
        span = "from 0 to" if allow_zero else "more than 0 and at most"
        raise EscalatorError(f"{name}={raw!r}: must be a number of seconds {span} {_MAX_SECONDS}")
    return timedelta(seconds=value)


async def run_worker(settings: TemporalSettings | None = None) -> None:
    """Run until SIGINT/SIGTERM, then finish in-flight tasks and stop."""
    settings = settings or TemporalSettings.from_env()
    # Fail at start-up on a bad SMTP_* or worker value, rather than as deliveries that
    # retry for a day; the activities read the same settings for each send.
    smtp = SmtpSettings.from_env()
    options = options_from_env()
    cache_workflow_bytecode(options)
    client = await connect(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    workers = build_workers(client, settings.task_queue, **options)
    log.info(
        "worker polling %s and %s on %s; mail via %s",
        settings.task_queue,
        ai_task_queue(settings.task_queue),
        settings,
        smtp,
    )
    try:
        async with running(workers):
            await stop.wait()
            log.info(
                "worker stopping: no new tasks; activities in flight get up to %gs to finish",
                options["graceful_shutdown_timeout"].total_seconds(),
            )
    finally:
        await close_clients()
    log.info("worker stopped")
