"""Helpers for the chaos tests (tests/test_chaos.py).

- `DevServerProcess`: the Temporal dev server on a SQLite file, started the way
  `escalator up` starts it (same pragmas, search attributes and dynamic config),
  that can be stopped with SIGTERM and started again on the same file.
- `LoggedWorker`: the real `worker.py` as a subprocess whose log goes to a file
  (a pipe nobody reads would block a busy worker), with kill -9.
- `BouncingMailSink`: the tests' SMTP sink (support.MailSink, on the one sink in
  escalator.devstack.mail_catcher), which answers 550 to any recipient whose
  address contains "bounce" and notes when each message arrived; `SlowMailSink`
  takes its time over each message, to catch a worker mid-send.
- Readers for what a case's timeline says was delivered.

Processes are started, awaited and stopped with escalator.devstack.processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from support import MailSink, WorkerProcess, free_port
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from escalator.devstack import processes
from escalator.devstack.binaries import find_binary
from escalator.devstack.processes import LOOPBACK
from escalator.devstack.stack import SQLITE_PRAGMAS, dynamic_config_flags
from escalator.domain.models import TimelineEvent
from escalator.domain.search_attributes import dev_server_flags

SERVER_START_TIMEOUT = 90.0  # generous: the machine has 2 cores and other test runs
SERVER_STOP_TIMEOUT = 30.0
WORKER_READY_TIMEOUT = 60.0
MESSAGE_ID = re.compile(r"<[^<>\s]+@escalator>")


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no {path.name})"
    return "\n".join(text[-lines:])


# -- the Temporal dev server ---------------------------------------------------------


class DevServerProcess:
    """`temporal server start-dev` on a SQLite file; stop and start it on the same file.

    `tuned=False` leaves out Escalator's dynamic config (Temporal's own defaults, e.g.
    a 10 s workflow task timeout), to measure what the tuning changes.
    """

    def __init__(self, data_dir: Path, port: int | None = None, *, tuned: bool = True) -> None:
        self.data_dir = data_dir
        self.tuned = tuned
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = data_dir / "temporal.db"
        self.log_path = data_dir / "temporal.log"
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        return [
            find_binary("temporal"),
            "server",
            "start-dev",
            "--headless",
            "--db-filename",
            str(self.db_path),
            "--ip",
            LOOPBACK,
            "--port",
            str(self.port),
            "--namespace",
            "default",
            "--log-level",
            "error",
            *[arg for pragma in SQLITE_PRAGMAS for arg in ("--sqlite-pragma", pragma)],
            *dev_server_flags(),
            *(dynamic_config_flags() if self.tuned else []),
        ]

    async def start(self) -> DevServerProcess:
        self.spawn()
        await self._wait_until_it_answers()
        return self

    def spawn(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.process = processes.spawn(
            self.command(),
            self.log_path,
            header=f"--- start {self.starts + 1} at {datetime.now(UTC)} ---",
        )
        self.starts += 1

    async def _wait_until_it_answers(self) -> None:
        await processes.wait_ready(
            self.process,
            self.connect,
            within=SERVER_START_TIMEOUT,
            every=0.25,
            retry_on=(RuntimeError,),
            exited=lambda code: AssertionError(
                f"the dev server exited with code {code}:\n{tail(self.log_path)}"
            ),
            late=lambda: AssertionError(
                f"the dev server did not answer within {SERVER_START_TIMEOUT:.0f}s:\n"
                f"{tail(self.log_path)}"
            ),
        )

    async def connect(self) -> Client:
        # connect() asks for the server's system info, so success means it serves.
        return await Client.connect(
            self.address, namespace="default", data_converter=pydantic_data_converter
        )

    def stop(self) -> None:
        """SIGTERM, and wait for it to exit (kill -9 if it will not)."""
        process, self.process = self.process, None
        processes.stop(process, grace=SERVER_STOP_TIMEOUT, kill_wait=SERVER_STOP_TIMEOUT)

    def kill(self) -> None:
        """kill -9: the server dies at once, mid-write if it must. A graceful stop can
        take seconds, during which the server still fires timers."""
        process, self.process = self.process, None
        processes.kill(process, wait=SERVER_STOP_TIMEOUT)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


# -- the worker ------------------------------------------------------------------------


class LoggedWorker(WorkerProcess):
    """The real worker.py; each start logs to its own file under `log_dir`."""

    def __init__(self, *, name: str, log_dir: Path, **kwargs) -> None:
        # No model calls: the offline assessor answers, deterministic and local.
        kwargs.setdefault("ANTHROPIC_API_KEY", "")
        super().__init__(**kwargs)
        self.env.pop("ANTHROPIC_BASE_URL", None)
        self.env["PYTHONUNBUFFERED"] = "1"
        self.name = name
        self.log_dir = log_dir
        self.logs: list[Path] = []
        self.kills = 0

    @property
    def log_path(self) -> Path:
        return self.logs[-1]

    def start(self) -> LoggedWorker:
        assert self.process is None or self.process.poll() is not None, "already running"
        path = self.log_dir / f"{self.name}-{len(self.logs) + 1}.log"
        self.logs.append(path)
        self.process = processes.spawn(
            self.command, path, env=self.env, new_session=False, append=False
        )
        return self

    async def ready(self, within: float = WORKER_READY_TIMEOUT) -> None:
        """Wait until this run of the worker says it is polling its task queue."""
        await processes.wait_ready(
            self.process,
            lambda: "worker polling" in self.log_path.read_text(errors="replace"),
            within=within,
            every=0.1,
            exited=lambda code: AssertionError(
                f"{self.name} exited with code {code}:\n{tail(self.log_path)}"
            ),
            late=lambda: AssertionError(f"{self.name} not polling within {within:.0f}s"),
        )

    def kill(self) -> None:
        """kill -9: no graceful shutdown, tasks and activities in flight are dropped."""
        assert self.process is not None and self.process.poll() is None, f"{self.name} not alive"
        processes.kill(self.process, wait=30)
        self.process = None
        self.kills += 1

    def stop(self) -> str:
        """SIGTERM (kill -9 after 15 s); return this run's log."""
        processes.stop(self.process, grace=15, kill_wait=15)
        self.process = None
        return self.log_text()

    def log_text(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in self.logs if path.exists())

    def mails_sent(self) -> int:
        """Mails this worker (all its runs) reports as sent."""
        return self.log_text().count("sent email <")

    def tracebacks(self) -> list[str]:
        return [p.name for p in self.logs if p.exists() and "Traceback" in p.read_text()]


# -- SMTP ------------------------------------------------------------------------------


class BouncingMailSink(MailSink):
    """A MailSink that refuses, with a permanent 550, every recipient whose address
    contains "bounce", and stamps each message with its arrival time."""

    def refuse_recipient(self, address: str) -> str | None:
        if "bounce" in address:
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        return None

    async def receive(self, envelope) -> str:
        """Keep one message, stamped with its recipients and arrival time; the answer."""
        message = self.parse(envelope)
        message["X-Sink-Received"] = datetime.now(UTC).isoformat()
        self.messages.append(message)
        return "250 OK"

    def for_case(self, case_id: str) -> list:
        return [m for m in list(self.messages) if m["X-Escalator-Case"] == case_id]

    def got(self, case_id: str, purpose: str, recipient: str) -> bool:
        return any(
            m["X-Escalator-Purpose"] == purpose and recipient in m["X-Envelope-To"]
            for m in self.for_case(case_id)
        )


class SlowMailSink(BouncingMailSink):
    """A sink that takes `delay` seconds to answer each message's DATA, as a slow or
    distant mail server does. The message is kept as soon as its data is in (before
    the 250 answer, as a real server queues it), so a sender that gives up while
    waiting for the answer and tries again delivers it twice. `receiving` counts the
    messages whose answer is still pending."""

    def __init__(self, delay: float, port: int | None = None) -> None:
        super().__init__(port)
        self.delay = delay
        self.receiving = 0
        self.answered: dict[str, datetime] = {}  # Message-ID: when it got its 250

    async def receive(self, envelope) -> str:
        answer = await super().receive(envelope)
        message_id = self.messages[-1]["Message-ID"]  # before another can arrive
        self.receiving += 1
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.receiving -= 1
        self.answered[message_id] = datetime.now(UTC)
        return answer


def received_at(message) -> datetime:
    return datetime.fromisoformat(message["X-Sink-Received"])


def body(message) -> str:
    return message.get_body(("plain",)).get_content()


def duplicate_report(messages: list) -> tuple[int, list[str]]:
    """(duplicates, problems). A duplicate is a message whose Message-ID was seen
    before; it must be the same mail (case, purpose, recipients, subject, body)."""
    first: dict[str, tuple] = {}
    duplicates = 0
    problems: list[str] = []
    for message in messages:
        message_id = message["Message-ID"]
        content = (
            message["X-Escalator-Case"],
            message["X-Escalator-Purpose"],
            message["X-Envelope-To"],
            message["Subject"],
            body(message),
        )
        if message_id in first:
            duplicates += 1
            if first[message_id] != content:
                problems.append(f"{message_id} reused for a different mail")
        else:
            first[message_id] = content
    # The other way round: one mail must never travel under two Message-IDs, or a
    # receiver could not recognise the retry as a duplicate.
    ids_per_content = Counter(first.values())
    problems += [
        f"the same {content[1]} mail of case {content[0]} has {n} Message-IDs"
        for content, n in ids_per_content.items()
        if n > 1
    ]
    return duplicates, problems


# -- the timeline ----------------------------------------------------------------------


def events(timeline, kind: str) -> list[TimelineEvent]:
    return [e for e in timeline if e.kind == kind]


def sent_message_ids(timeline) -> list[str]:
    """Message-IDs the case recorded as delivered (`notification_sent`)."""
    ids = []
    for event in events(timeline, "notification_sent"):
        found = MESSAGE_ID.search(event.detail)
        assert found, f"no Message-ID in {event.detail!r}"
        ids.append(found.group(0))
    return ids


async def gather_bounded(coroutines, limit: int = 10):
    """asyncio.gather with at most `limit` in flight (the machine has 2 cores)."""
    semaphore = asyncio.Semaphore(limit)

    async def one(coroutine):
        async with semaphore:
            return await coroutine

    return await asyncio.gather(*(one(c) for c in coroutines))


@contextlib.contextmanager
def stopwatch():
    started = time.monotonic()
    box = {"seconds": 0.0}
    try:
        yield box
    finally:
        box["seconds"] = time.monotonic() - started
