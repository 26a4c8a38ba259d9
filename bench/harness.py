"""The parts every benchmark needs: a dev server, a worker process and an SMTP sink.

Everything is started by us on free loopback ports and stopped by PID, in `finally`
blocks and again at interpreter exit, so nothing is left behind even when a
benchmark fails or the run is interrupted. Processes are started, awaited and
stopped with escalator.devstack.processes; the sink is the one SMTP sink of
escalator.devstack.mail_catcher.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import email.parser
import email.policy
import math
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from escalator.devstack import processes
from escalator.devstack.binaries import find_binary
from escalator.devstack.mail_catcher import SmtpSink
from escalator.devstack.processes import LOOPBACK, free_port
from escalator.devstack.stack import SQLITE_PRAGMAS
from escalator.domain.search_attributes import dev_server_flags

ROOT = Path(__file__).resolve().parent.parent
SERVER_START_TIMEOUT = 60.0
WORKER_START_TIMEOUT = 60.0
STOP_GRACE_SECONDS = 10.0

# Every child we start, by PID, so an interrupted run still stops them (atexit).
_CHILDREN: dict[int, subprocess.Popen] = {}


def _stop(process: subprocess.Popen | None, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM, then SIGKILL after `grace`; each child leads its own process group."""
    if process is None:
        return
    try:
        processes.stop(process, grace=grace, group=True, kill_wait=grace)
    finally:
        _CHILDREN.pop(process.pid, None)


@atexit.register
def stop_all_children() -> None:
    for process in list(_CHILDREN.values()):
        _stop(process, grace=3.0)


def _spawn(command: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen:
    # In a process group of its own (spawn's default): signals reach only it.
    process = processes.spawn(command, log_path, env=env, stdin=subprocess.DEVNULL, cwd=ROOT)
    _CHILDREN[process.pid] = process
    return process


def rss_mib(pid: int) -> float | None:
    """Resident set size from /proc, in MiB (None once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process, from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def clean_env(**extra: str) -> dict[str, str]:
    """Our environment without anything that changes what the worker does."""
    dropped = {"ESCALATOR_ENCRYPTION_KEY", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


# -- the Temporal dev server ------------------------------------------------------


class DevServer:
    """`temporal server start-dev --headless` on free ports, in memory or SQLite."""

    def __init__(self, workdir: Path, name: str, store: str = "memory") -> None:
        assert store in {"memory", "sqlite-wal"}, store
        self.workdir = workdir
        self.name = name
        self.store = store
        self.port = free_port()
        self.db_path = workdir / f"{name}.db" if store != "memory" else None
        self.log_path = workdir / f"{name}-temporal.log"
        self.process: subprocess.Popen | None = None
        self.client: Client | None = None

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> DevServer:
        command = [
            find_binary("temporal"),
            "server",
            "start-dev",
            "--headless",
            "--ip",
            LOOPBACK,
            "--port",
            str(self.port),
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
            "--log-level",
            "error",
            *dev_server_flags(),
        ]
        if self.db_path is not None:
            command += ["--db-filename", str(self.db_path)]
            command += [arg for pragma in SQLITE_PRAGMAS for arg in ("--sqlite-pragma", pragma)]
        self.process = _spawn(command, self.log_path, clean_env())
        self.client = await processes.wait_ready(
            self.process,
            lambda: Client.connect(self.address, data_converter=pydantic_data_converter),
            within=SERVER_START_TIMEOUT,
            every=0.2,
            retry_on=(RuntimeError,),
            exited=lambda code: RuntimeError(f"dev server exited with {code}; see {self.log_path}"),
            late=lambda: RuntimeError(f"dev server did not answer; see {self.log_path}"),
        )
        return self

    def rss_mib(self) -> float | None:
        return rss_mib(self.pid)

    def cpu_seconds(self) -> float | None:
        return cpu_seconds(self.pid)

    def db_bytes(self) -> int | None:
        if self.db_path is None:
            return None
        paths = [self.db_path, *(Path(f"{self.db_path}{s}") for s in ("-wal", "-shm"))]
        return sum(p.stat().st_size for p in paths if p.exists())

    def stop(self) -> None:
        """SIGTERM now; its graceful shutdown (about 1 s) is awaited in a thread, so
        the next benchmark can start meanwhile. Interpreter exit waits for it."""
        process, self.process = self.process, None
        if process is not None:
            threading.Thread(target=_stop, args=(process,), name=f"stop-{self.name}").start()


# -- the worker ----------------------------------------------------------------------


@dataclass
class WorkerProc:
    """bench/worker.py in its own process: Escalator's worker or the minimal one."""

    kind: str  # "escalator" | "minimal"
    address: str
    task_queue: str
    smtp_port: int
    workdir: Path
    settings: dict[str, object] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    number: int = 0  # several processes may serve one task queue
    process: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"worker-{self.task_queue}-{self.number}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> WorkerProc:
        ready = self.workdir / f"worker-{self.task_queue}-{self.number}.ready"
        command = [
            sys.executable,
            "-m",
            "bench.worker",
            "--kind",
            self.kind,
            "--address",
            self.address,
            "--task-queue",
            self.task_queue,
            "--ready-file",
            str(ready),
        ]
        for key, value in sorted(self.settings.items()):
            command += ["--set", f"{key}={value}"]
        env = clean_env(
            SMTP_HOST=LOOPBACK,
            SMTP_PORT=str(self.smtp_port),
            # Escalator's worker writes its ledger as in production, in the run's own dir.
            ESCALATOR_LEDGER_URL=f"sqlite:///{self.workdir.resolve()}/ledger-{self.task_queue}.db",
            **self.env,
        )
        self.process = _spawn(command, self.log_path, env)
        await processes.wait_ready(
            self.process,
            ready.exists,
            within=WORKER_START_TIMEOUT,
            every=0.05,
            exited=lambda code: RuntimeError(f"worker exited early; see {self.log_path}"),
            late=lambda: RuntimeError(f"worker not ready; see {self.log_path}"),
        )
        return self

    def rss_mib(self) -> float | None:
        return rss_mib(self.pid)

    def cpu_seconds(self) -> float | None:
        return cpu_seconds(self.pid)

    def stop(self) -> dict[str, int]:
        """Stop it; return how many tracebacks and workflow-task failures it logged."""
        _stop(self.process)
        self.process = None
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            text = ""
        return {
            "tracebacks": text.count("Traceback"),
            "failed_workflow_tasks": text.count("Failed activation on workflow"),
        }


# -- SMTP ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    at: float  # time.time() when the DATA command completed
    case_id: str
    kind: str  # "<purpose>:<first recipient's local part>", e.g. "tier_entry:l2"
    headers: dict[str, str]


class MailSink(SmtpSink):
    """The one SMTP sink (escalator.devstack.mail_catcher), timestamping every message
    on arrival.

    It runs in its own thread (aiosmtpd's Controller), so arrival times do not wait
    for the benchmark's event loop. `wait_for` lets the driver react to a mail.
    """

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[Received] = []
        self._by_key: dict[tuple[str, str], list[Received]] = defaultdict(list)
        self._waiters: dict[tuple[str, str], list[asyncio.Future]] = defaultdict(list)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)

    def start(self) -> MailSink:
        self._loop = asyncio.get_running_loop()
        return super().start()

    async def receive(self, envelope) -> str:
        at = time.time()
        headers = self._parser.parsebytes(envelope.content)
        rcpt = envelope.rcpt_tos[0].split("@")[0] if envelope.rcpt_tos else "?"
        case_id = headers.get("X-Escalator-Case") or headers.get("X-Bench-Case") or "?"
        purpose = headers.get("X-Escalator-Purpose") or headers.get("X-Bench-Purpose")
        wanted = ("X-Bench-Breached", "Message-ID")
        kept = {name: headers[name] for name in wanted if headers.get(name)}
        self._arrived(Received(at, case_id, f"{purpose}:{rcpt}", kept))
        return "250 OK"

    def _arrived(self, mail: Received) -> None:
        key = (mail.case_id, mail.kind)
        with self._lock:
            self.messages.append(mail)
            self._by_key[key].append(mail)
        if self._waiters.get(key):
            self._loop.call_soon_threadsafe(self._wake, key)

    def _wake(self, key: tuple[str, str]) -> None:
        for future in self._waiters.pop(key, []):
            if not future.done():
                future.set_result(None)

    def got(self, case_id: str, kind: str) -> list[Received]:
        with self._lock:
            return list(self._by_key.get((case_id, kind), ()))

    async def wait_for(self, case_id: str, kind: str, limit: float) -> Received:
        key = (case_id, kind)
        give_up = time.monotonic() + limit
        while True:
            found = self.got(case_id, kind)
            if found:
                return found[0]
            future = asyncio.get_running_loop().create_future()
            self._waiters[key].append(future)
            # Re-check: the mail may have landed between got() and registering.
            if self.got(case_id, kind):
                continue
            remaining = give_up - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {kind} mail for case {case_id} within {limit:.0f}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, remaining)

    def count(self, kind: str | None = None) -> int:
        with self._lock:
            return sum(1 for m in self.messages if kind is None or m.kind == kind)


# -- small helpers ----------------------------------------------------------------------


async def history_quiet(client: Client, workflow_id: str, limit: float = 30.0) -> int:
    """Wait until a workflow has nothing in flight; return its history length.

    Quiet means: no pending activity, no pending workflow task, and the same history
    length on two polls 150 ms apart. Stepping a scenario only when quiet makes its
    event count exact (no race decides whether two events share a workflow task).
    """
    request = DescribeWorkflowExecutionRequest(
        namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id)
    )
    give_up = time.monotonic() + limit
    last = -1
    while time.monotonic() < give_up:
        described = await client.workflow_service.describe_workflow_execution(request)
        length = described.workflow_execution_info.history_length
        busy = bool(described.pending_activities) or described.HasField("pending_workflow_task")
        if not busy and length == last:
            return length
        last = -1 if busy else length
        await asyncio.sleep(0.15)
    raise TimeoutError(f"{workflow_id} did not settle within {limit:.0f}s")


async def bounded_gather(coroutines, limit: int):
    """Run coroutines with at most `limit` in flight; results in order."""
    semaphore = asyncio.Semaphore(limit)

    async def one(coroutine):
        async with semaphore:
            return await coroutine

    return await asyncio.gather(*(one(c) for c in coroutines))


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of a non-empty list; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary(values: list[float]) -> dict[str, float | int | None]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
        "min": min(values) if values else None,
    }
