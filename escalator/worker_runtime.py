"""Build and run the Escalator worker."""

from __future__ import annotations

import asyncio
import logging
import signal

from temporalio.client import Client
from temporalio.worker import Worker

from activities import ALL_ACTIVITIES
from escalator.settings import TemporalSettings
from escalator.smtp_settings import SmtpSettings
from escalator.temporal_client import connect
from workflows.escalation import EscalationWorkflow

log = logging.getLogger("escalator.worker")


def build_worker(client: Client, task_queue: str, **options) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[EscalationWorkflow],
        activities=ALL_ACTIVITIES,
        **options,
    )


async def run_worker(settings: TemporalSettings | None = None) -> None:
    """Run until SIGINT/SIGTERM, then finish in-flight tasks and stop."""
    settings = settings or TemporalSettings.from_env()
    # Fail at start-up on a bad SMTP_* value, rather than as deliveries that retry
    # for a day; the activities read the same settings for each send.
    smtp = SmtpSettings.from_env()
    client = await connect(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    worker = build_worker(client, settings.task_queue)
    log.info("worker polling %s on %s; mail via %s", settings.task_queue, settings, smtp)
    async with worker:
        await stop.wait()
    log.info("worker stopped")
