"""A worker stopped with SIGTERM drains: the mail it is sending goes out once.

Everything is real: the Temporal dev server on a SQLite file (started as `escalator
up` starts it), `worker.py` as a subprocess, and an SMTP server on loopback that
takes 2 s to answer each message's DATA. SIGTERM reaches the worker while a send
waits for that answer. Without a graceful shutdown timeout the SDK cancels the
activity at once: the server has the message by then, the attempt fails, and the
retry delivers it a second time.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from chaos_support import DevServerProcess, LoggedWorker, SlowMailSink, events, sent_message_ids
from support import eventually, seconds_policy, unique_queue
from temporalio.api.enums.v1 import EventType

from escalator.domain.models import workflow_id_for
from escalator.runtime.worker import DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT
from starter import EscalatorClient
from workflows.escalation import DELIVERY_ATTEMPT_TIMEOUT, DELIVERY_RETRY

pytestmark = pytest.mark.integration

SMTP_DATA_DELAY = 2.0  # seconds the SMTP server takes to answer each message
EXIT_WITHIN = 20.0  # the drain needs SMTP_DATA_DELAY; the rest is start-up slack
RETRY_EVENTS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
}


@pytest_asyncio.fixture
async def dev(tmp_path):
    server = DevServerProcess(tmp_path / "server")
    try:
        yield await server.start()
    finally:
        server.stop()


@pytest.fixture
def sink():
    slow = SlowMailSink(delay=SMTP_DATA_DELAY).start()
    try:
        yield slow
    finally:
        slow.stop()


@pytest.fixture
def workers():
    started: list[LoggedWorker] = []
    try:
        yield started
    finally:
        for worker in started:
            worker.stop()


def test_the_default_drain_covers_a_whole_delivery_attempt():
    # Draining for less would cut off a send that may still succeed; longer is
    # pointless, as Temporal retries the attempt after its start-to-close timeout.
    assert DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT == DELIVERY_ATTEMPT_TIMEOUT


async def test_sigterm_mid_send_delivers_the_mail_exactly_once(dev, sink, workers, tmp_path):
    queue = unique_queue("shutdown")

    def worker(name: str) -> LoggedWorker:
        spawned = LoggedWorker(
            name=name,
            log_dir=tmp_path,
            temporal_address=dev.address,
            task_queue=queue,
            smtp_port=sink.port,
        )
        workers.append(spawned)
        return spawned

    first = worker("draining-worker").start()
    await first.ready()
    escalator = EscalatorClient(await dev.connect(), queue)
    case_id = "drain-1"
    # Long SLAs: the only mail is L1's tier_entry, sent when the case starts.
    await escalator.start_case(
        {"case_id": case_id, "title": "Drain me", "policy": seconds_policy(600, 900)}
    )

    # SIGTERM while the SMTP server holds the message and has not answered yet.
    await eventually(lambda: sink.receiving >= 1, within=30, interval=0.01)
    [message] = sink.messages
    message_id = message["Message-ID"]
    assert message["X-Escalator-Purpose"] == "tier_entry"
    first.process.send_signal(signal.SIGTERM)
    sigterm_at = datetime.now(UTC)
    began = time.monotonic()

    # The worker waits for the answer, reports the send, and exits cleanly.
    while first.process.poll() is None:
        assert time.monotonic() - began < EXIT_WITHIN, "the worker did not exit"
        await asyncio.sleep(0.05)
    exited_at = datetime.now(UTC)
    log = first.log_text()
    assert first.process.returncode == 0, log
    assert message_id in sink.answered, "the worker exited before the SMTP answer"
    assert sigterm_at < sink.answered[message_id] <= exited_at
    assert f"sent email {message_id}" in log, log
    assert "worker stopped" in log and "Traceback" not in log, log

    # A new worker takes over the case and records the delivery.
    second = worker("next-worker").start()
    await second.ready()

    async def recorded() -> bool:
        status = await escalator.status(case_id)
        return message_id in sent_message_ids(status.timeline)

    await eventually(recorded, within=30, interval=0.2)
    # Long enough for any retry: a failed attempt is retried after DELIVERY_RETRY's
    # first interval, one that never reported after its start-to-close timeout.
    retry_by = sigterm_at + DELIVERY_ATTEMPT_TIMEOUT + 2 * DELIVERY_RETRY.initial_interval
    await asyncio.sleep(max(0.0, (retry_by - datetime.now(UTC)).total_seconds()))

    copies = Counter(m["Message-ID"] for m in sink.messages)
    assert copies == {message_id: 1}, copies
    status = await escalator.status(case_id)
    assert sent_message_ids(status.timeline) == [message_id]
    assert not events(status.timeline, "notification_failed")
    # The history agrees: one attempt, completed; nothing failed, timed out or was
    # cancelled, so Temporal will never run it again.
    client = await dev.connect()
    history = await client.get_workflow_handle(workflow_id_for(case_id)).fetch_history()
    kinds = [event.event_type for event in history.events]
    started = [
        event.activity_task_started_event_attributes.attempt
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    assert kinds.count(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) == 1, kinds
    assert not RETRY_EVENTS & set(kinds), kinds
    assert started == [1], started
    assert second.process.poll() is None
    assert (exited_at - sigterm_at) < timedelta(seconds=EXIT_WITHIN)
