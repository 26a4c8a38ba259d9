"""Build and run the Escalator worker.

One process runs two Temporal workers, each with its own slots:

- the case worker, on the task queue: the workflows (cases and the monthly review)
  and the mail, webhook, ledger and review activities;
- the AI worker, on `<task queue>-ai`: the model calls (assessment and drafts).

A model that hangs therefore holds AI slots only, never the ones mail needs.

With ESCALATOR_METRICS_ADDRESS set, the process serves Prometheus metrics on it
(http://ADDRESS/metrics): the SDK's own and Escalator's (docs in `metrics_runtime`).

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
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities import activities_for, close_clients
from activities.review import ReviewActivities
from escalator.adapters.settings import (
    DEFAULT_AI_CONCURRENCY,
    DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT,
    DEFAULT_STICKY_TIMEOUT,
    PRODUCTION_MAX_CACHED_WORKFLOWS,
    PRODUCTION_SANDBOX_DEFAULT,
    EscalatorSettings,
    TemporalSettings,
    WorkerSettings,
)
from escalator.adapters.temporal_client import connect
from escalator.domain.assessment import AI_ACTIVITIES, ai_task_queue
from escalator.domain.errors import InvalidInput
from workflows.escalation import TIME_TO_CLAIM_METRIC, EscalationWorkflow
from workflows.review import MonthlyReviewWorkflow

log = logging.getLogger("escalator.worker")

# The defaults and why they are what they are: escalator/adapters/settings.py.
__all__ = [
    "DEFAULT_AI_CONCURRENCY",
    "DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT",
    "DEFAULT_STICKY_TIMEOUT",
    "PRODUCTION_MAX_CACHED_WORKFLOWS",
    "PRODUCTION_SANDBOX_DEFAULT",
    "build_workers",
    "cache_workflow_bytecode",
    "graceful_shutdown_timeout",
    "metrics_runtime",
    "options_from_env",
    "options_from_settings",
    "run_worker",
    "running",
    "split_activities",
]


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
    activities: Sequence[Callable] | None = None,
    *,
    settings: EscalatorSettings | None = None,
    ai_concurrency: int = DEFAULT_AI_CONCURRENCY,
    **options: Any,
) -> list[Worker]:
    """The case worker (with `options`, e.g. max_cached_workflows) and the AI worker
    (which shares the case worker's graceful_shutdown_timeout, if given).

    `activities` defaults to `activities_for(settings)` plus the monthly review's
    `send_monthly_review`, with `settings` loaded from the environment if not given.
    The settings configure the activities only: worker tuning comes in `options` (see
    `options_from_settings`). Given `activities` are used as they are."""
    if activities is None:
        settings = settings or EscalatorSettings.from_env()
        activities = [*activities_for(settings), ReviewActivities(settings).send_monthly_review]
    case_activities, ai = split_activities(activities)
    ai_options = {key: options[key] for key in ("graceful_shutdown_timeout",) if key in options}
    workers = [
        Worker(
            client,
            task_queue=task_queue,
            workflows=[EscalationWorkflow, MonthlyReviewWorkflow],
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


def options_from_settings(settings: WorkerSettings | EscalatorSettings) -> dict[str, Any]:
    """worker.py's Worker options, from the tuning an operator may set (README, "Tuning")."""
    worker = settings.worker if isinstance(settings, EscalatorSettings) else settings
    options: dict[str, Any] = {
        "max_cached_workflows": worker.max_cached_workflows,
        "ai_concurrency": worker.ai_concurrency,
        "graceful_shutdown_timeout": worker.graceful_shutdown_timeout,
        "sticky_queue_schedule_to_start_timeout": worker.sticky_timeout,
    }
    if not worker.workflow_sandbox:
        options["workflow_runner"] = UnsandboxedWorkflowRunner()
    return options


def options_from_env(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """`options_from_settings` for the ESCALATOR_* tuning variables in `environ`."""
    return options_from_settings(WorkerSettings.from_env(environ))


def graceful_shutdown_timeout(environ: Mapping[str, str] = os.environ) -> timedelta:
    """How long worker.py drains on SIGTERM (ESCALATOR_GRACEFUL_SHUTDOWN_TIMEOUT, s)."""
    name = "ESCALATOR_GRACEFUL_SHUTDOWN_TIMEOUT"
    only = {name: value} if (value := environ.get(name)) is not None else {}
    return WorkerSettings.from_env(only).graceful_shutdown_timeout


# One SDK runtime per metrics address for the whole process: its Prometheus server
# binds the port once, and every client and worker made from it reports there.
_RUNTIMES: dict[str, Runtime] = {}
# Seconds: from a minute to a business day, where first-response targets lie.
TIME_TO_CLAIM_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800)


def metrics_runtime(address: str) -> Runtime:
    """The SDK runtime serving Prometheus metrics on `address` (host:port), created
    once per process.

    It exposes the SDK's worker metrics (temporal_*) and Escalator's own: the case
    workflow's escalator_escalations_total{from_tier,to_tier,reason},
    escalator_sla_breaches_total{tier,clock}, escalator_claims_total{tier} and
    escalator_time_to_claim_seconds (from entering a tier to a claim there), recorded
    through the replay-safe workflow.metric_meter() so a replay counts nothing; and the
    delivery activities' escalator_deliveries_total{channel,outcome}. No label holds a
    case id, a title, a user or any free text."""
    runtime = _RUNTIMES.get(address)
    if runtime is None:
        config = PrometheusConfig(
            bind_address=address,
            # `promtool check metrics` expects counters to end in _total and durations
            # in seconds (the SDK's default is integer milliseconds).
            counters_total_suffix=True,
            durations_as_seconds=True,
            histogram_bucket_overrides={TIME_TO_CLAIM_METRIC: TIME_TO_CLAIM_BUCKETS},
        )
        try:
            runtime = Runtime(telemetry=TelemetryConfig(metrics=config))
        except Exception as error:  # the bridge reports a busy port as a plain error
            raise InvalidInput(
                f"ESCALATOR_METRICS_ADDRESS={address}: cannot serve metrics there "
                f"({' '.join(str(error).split())[:200]}); choose another port or unset it"
            ) from None
        _RUNTIMES[address] = runtime
    return runtime


async def run_worker(settings: EscalatorSettings | TemporalSettings | None = None) -> None:
    """Run until SIGINT/SIGTERM, then finish in-flight tasks and stop.

    `settings` defaults to `EscalatorSettings.from_env()`; `TemporalSettings` alone (the
    CLI's, with --address) replaces just the Temporal group of the environment's."""
    if isinstance(settings, TemporalSettings):
        settings = EscalatorSettings(temporal=settings)
    elif settings is None:
        settings = EscalatorSettings.from_env()
    # Bad SMTP_*, AI or worker values have failed by now, at start-up, rather than as
    # deliveries that retry for a day.
    options = options_from_settings(settings.worker)
    cache_workflow_bytecode(options)
    metrics = settings.worker.metrics_address
    runtime = metrics_runtime(metrics) if metrics else None
    client = await connect(settings.temporal, runtime=runtime)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    task_queue = settings.temporal.task_queue
    workers = build_workers(client, task_queue, settings=settings, **options)
    log.info(
        "worker polling %s and %s on %s; mail via %s; model %s",
        task_queue,
        ai_task_queue(task_queue),
        settings.temporal,
        settings.smtp,
        "offline (no ANTHROPIC_API_KEY)" if settings.ai.offline else settings.ai.model,
    )
    if metrics:
        log.info("metrics on http://%s/metrics", metrics)
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
