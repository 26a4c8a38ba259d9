"""`escalator up`: the whole service on one machine.

Starts, in order: the Temporal dev server (SQLite file under the data dir, Web UI,
our search attributes), the local mail catcher, the worker and the HTTP API (on
127.0.0.1, its tokens under the data dir). Ctrl-C stops them in reverse order.
Because every case lives in the SQLite file, the next `up` resumes every open case
and fires any deadline that passed while it was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

from escalator.adapters.policy_files import DEFAULT_POLICY_PATH
from escalator.adapters.settings import DEFAULT_TASK_QUEUE, WorkerSettings
from escalator.devstack import processes
from escalator.devstack.binaries import find_binary
from escalator.devstack.mail_catcher import MailCatcher, require_devstack
from escalator.devstack.processes import LOOPBACK, STOP_GRACE_SECONDS, port_is_free
from escalator.domain.errors import EscalatorError, InvalidInput
from escalator.domain.search_attributes import dev_server_flags

SERVER_START_TIMEOUT = 60.0
API_START_TIMEOUT = 30.0
# Measured about twice as fast as SQLite's defaults for the dev server's workload.
SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal")
# The workflow task timeout of every case started without one (Temporal's default is
# 10 s): how long a workflow task a worker took may stay unanswered before Temporal
# gives it to another worker. It only matters when a worker dies holding a task
# (kill -9, OOM, power loss), and then it is how late that case acts. Live workers
# answer well inside it: in herds of 500 deadlines at once on this 2-core machine no
# task took more than 1.3 s. docs/reliability.md, "Kill -9 recovery", has the figures.
# docker-compose's server has the same value, in deploy/dynamicconfig/development-sql.yaml.
WORKFLOW_TASK_TIMEOUT = "4s"


def dynamic_config_flags() -> list[str]:
    """`temporal server start-dev` flags for the server settings Escalator tunes."""
    return [
        "--dynamic-config-value",
        f'history.defaultWorkflowTaskTimeout="{WORKFLOW_TASK_TIMEOUT}"',
    ]


@dataclass(frozen=True)
class StackOptions:
    data_dir: Path = Path(".data")
    port: int = 7233
    ui_port: int = 8233
    mail_port: int = 1025
    mail: bool = True
    api_port: int = 8000
    api: bool = True
    namespace: str = "default"
    task_queue: str = DEFAULT_TASK_QUEUE

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.api_port}"

    @property
    def ui_url(self) -> str:
        return f"http://localhost:{self.ui_port}/namespaces/{self.namespace}/workflows"


def external_smtp_host(environ=os.environ) -> str | None:
    """The SMTP host to use instead of our catcher, if SMTP_HOST points elsewhere."""
    host = environ.get("SMTP_HOST", "").strip()
    return host if host and host not in {"localhost", "127.0.0.1", "::1"} else None


def check_ports_free(options: StackOptions, *, with_catcher: bool) -> None:
    wanted = [(options.port, "--port"), (options.ui_port, "--ui-port")]
    if with_catcher:
        wanted.append((options.mail_port, "--mail-port"))
    if options.api:
        wanted.append((options.api_port, "--api-port"))
    for port, flag in wanted:
        if not port_is_free(port):
            raise InvalidInput(
                f"port {port} is already in use; choose another with {flag} "
                f"(or stop what is using it)"
            )


class Stack:
    def __init__(self, options: StackOptions, announce=None) -> None:
        self.options = options
        # Flush each line: the banner and mail lines are read live, often through a pipe.
        self.announce = announce or (lambda line: print(line, flush=True))
        self.data_dir = options.data_dir.resolve()
        self.smtp_elsewhere = external_smtp_host()
        self.with_catcher = options.mail and self.smtp_elsewhere is None
        self.server: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.api: subprocess.Popen | None = None
        self.catcher: MailCatcher | None = None
        self.worker_grace = _worker_stop_grace()

    # -- lifecycle ------------------------------------------------------------

    async def run(self) -> int:
        if self.with_catcher:
            require_devstack()  # one line, not a traceback, without the extra
        check_ports_free(self.options, with_catcher=self.with_catcher)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await self._start_server()
            if self.with_catcher:
                self.catcher = MailCatcher(
                    self.data_dir / "mail", port=self.options.mail_port, announce=self.announce
                ).start()
            self._start_worker()
            if self.options.api:
                await self._start_api()
            self._banner()
            return await self._supervise(stop)
        finally:
            self.shutdown()

    async def _supervise(self, stop: asyncio.Event) -> int:
        """Wait for Ctrl-C; if a child dies on its own, say where its log is and stop."""
        while not stop.is_set():
            for name, process, log in (
                ("Temporal dev server", self.server, "temporal.log"),
                ("worker", self.worker, "worker.log"),
                ("API", self.api, "api.log"),
            ):
                if process is not None and process.poll() is not None:
                    self.announce(
                        f"escalator: the {name} exited with code {process.returncode}; "
                        f"see {self.data_dir / log}"
                    )
                    return 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
        self.announce("stopping: API, worker, mail catcher, Temporal (open cases are kept)")
        return 0

    def shutdown(self) -> None:
        # The worker drains first: mail in flight gets its grace period, and it can
        # still reach the mail catcher and the server, which stop after it. The API
        # goes first: it only forwards requests to the server.
        processes.stop(self.api)
        self.api = None
        processes.stop(self.worker, grace=self.worker_grace)
        self.worker = None
        if self.catcher is not None:
            self.catcher.stop()
            self.catcher = None
        processes.stop(self.server)
        self.server = None

    # -- children -------------------------------------------------------------

    async def _start_server(self) -> None:
        options = self.options
        command = [
            find_binary("temporal"),
            "server",
            "start-dev",
            "--db-filename",
            str(self.data_dir / "temporal.db"),
            "--ip",
            LOOPBACK,
            "--port",
            str(options.port),
            "--ui-port",
            str(options.ui_port),
            "--namespace",
            options.namespace,
            "--log-level",
            "warn",
            *[arg for pragma in SQLITE_PRAGMAS for arg in ("--sqlite-pragma", pragma)],
            *dev_server_flags(),
            *dynamic_config_flags(),
        ]
        # Its own process group, so Ctrl-C in the terminal reaches only us and we
        # stop the children in order (worker before server).
        self.server = processes.spawn(command, self.data_dir / "temporal.log")
        await self._wait_until_server_answers()

    async def _wait_until_server_answers(self) -> None:
        log = self.data_dir / "temporal.log"
        await processes.wait_ready(
            self.server,
            # connect() asks the server for its system info, so success means the
            # frontend is serving.
            lambda: Client.connect(self.options.address, namespace=self.options.namespace),
            within=SERVER_START_TIMEOUT,
            every=0.25,
            retry_on=(RuntimeError,),
            exited=lambda code: EscalatorError(
                f"the Temporal dev server exited with code {code}: {_last_line(log)}"
            ),
            late=lambda: EscalatorError(
                "the Temporal dev server did not answer within "
                f"{SERVER_START_TIMEOUT:.0f}s; see {log}"
            ),
        )

    def _start_worker(self) -> None:
        env = self._child_env()
        if self.with_catcher:
            env.update(SMTP_HOST=LOOPBACK, SMTP_PORT=str(self.options.mail_port))
        # Case links in Slack and PagerDuty messages open this stack's live queue and
        # its Web UI, unless the operator points them elsewhere.
        if self.options.api:
            env.setdefault("ESCALATOR_API_URL", self.options.api_url)
        env.setdefault("ESCALATOR_WEB_UI", f"http://localhost:{self.options.ui_port}")
        self.worker = processes.spawn(
            [sys.executable, "-m", "worker"], self.data_dir / "worker.log", env=env
        )

    def _child_env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": self.options.address,
            "TEMPORAL_NAMESPACE": self.options.namespace,
            "ESCALATOR_TASK_QUEUE": self.options.task_queue,
            "PYTHONUNBUFFERED": "1",
        }
        # The embedded ledger lives in the data directory, next to Temporal's database.
        env.setdefault("ESCALATOR_LEDGER_URL", f"sqlite:///{self.data_dir.resolve()}/ledger.db")
        return env

    async def _start_api(self) -> None:
        """`escalator api` on loopback, on the policies of ./policies (the checkout's)
        or, elsewhere, the ones shipped with the package."""
        policies = _api_policies()
        command = [
            sys.executable, "-m", "escalator.cli", "api",
            "--host", LOOPBACK, "--port", str(self.options.api_port),
            "--data-dir", str(self.data_dir), "--policies", str(policies),
        ]  # fmt: skip
        log = self.data_dir / "api.log"
        self.api = processes.spawn(command, log, env=self._child_env())
        await processes.wait_ready(
            self.api,
            lambda: not port_is_free(self.options.api_port),
            within=API_START_TIMEOUT,
            every=0.2,
            exited=lambda code: EscalatorError(
                f"the API exited with code {code}: {_last_line(log)}"
            ),
            late=lambda: EscalatorError(
                f"the API did not listen within {API_START_TIMEOUT:.0f}s; see {log}"
            ),
        )

    def _banner(self) -> None:
        options = self.options
        if self.with_catcher:
            mail = f"{LOOPBACK}:{options.mail_port} → {self.data_dir / 'mail'}/*.eml"
        elif self.smtp_elsewhere:
            mail = f"sent through {self.smtp_elsewhere} (SMTP_HOST)"
        else:
            mail = "no catcher (--no-mail); worker uses SMTP_HOST/SMTP_PORT"
        logs = f"{self.data_dir / 'temporal.log'}, {self.data_dir / 'worker.log'}"
        api_lines = []
        if options.api:
            logs += f", {self.data_dir / 'api.log'}"
            api_lines = [
                f"  API        {options.api_url}  (docs at /docs; tokens: escalator token create"
                f" --user you --role engineer --data-dir {options.data_dir})",
            ]
        metrics = _metrics_address()
        # The worker inherits our environment, so it serves them where this says.
        metrics_lines = [f"  Metrics    http://{metrics}/metrics"] if metrics else []
        self.announce(
            "\n".join(
                [
                    "",
                    "Escalator is ready.",
                    f"  Temporal   {options.address}  (SQLite: {self.data_dir / 'temporal.db'})",
                    f"  Web UI     {options.ui_url}",
                    f"  Mail       {mail}",
                    f"  Worker     task queue {options.task_queue!r}",
                    *api_lines,
                    *metrics_lines,
                    f"  Logs       {logs}",
                    "",
                    "Next, in another terminal:",
                    '  .venv/bin/escalator start --case-id demo-1 --title "Outlook fails to sync" '
                    "--policy policies/demo.yaml",
                    "  .venv/bin/escalator status demo-1",
                    "",
                    "Ctrl-C stops everything; open cases carry on at the next `make run`.",
                    "",
                ]
            )
        )


def _api_policies() -> Path:
    here = Path("policies")
    return here if here.is_dir() else DEFAULT_POLICY_PATH.parent


def _worker_stop_grace() -> float:
    """The worker's own drain time (read from the same environment) plus a margin."""
    from escalator.runtime.worker import graceful_shutdown_timeout

    try:
        drain = graceful_shutdown_timeout().total_seconds()
    except EscalatorError:
        drain = 0.0  # the worker refused to start on it, so there is nothing to drain
    return drain + STOP_GRACE_SECONDS


def _metrics_address() -> str | None:
    """Where the worker serves /metrics (ESCALATOR_METRICS_ADDRESS), or None: off."""
    try:
        return WorkerSettings.from_env().metrics_address
    except EscalatorError:
        return None  # the worker refuses to start on it, and says why in its log


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1][:300] if lines else "no output"
