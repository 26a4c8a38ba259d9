"""Child processes and loopback ports: spawn, wait until ready, stop.

The one helper behind every process we start and stop on purpose: the dev stack's
server and worker (`escalator up`), the test suite's dev servers and workers, and
the benchmarks'. It needs nothing outside the standard library.

- `spawn` starts a command, its output appended to a log file (or wherever the
  caller's Popen arguments say), by default in a process group of its own, so a
  Ctrl-C in the terminal reaches only us and we stop the children in order.
- `wait_ready` polls a readiness check until it holds, and fails at once if the
  child exits first, or after a deadline.
- `stop` sends SIGTERM (or another signal), waits a grace period, then SIGKILLs;
  `kill` is kill -9 at once.
- `free_port` and `port_is_free` pick and probe loopback ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

LOOPBACK = "127.0.0.1"
STOP_GRACE_SECONDS = 15.0

T = TypeVar("T")


# -- ports ------------------------------------------------------------------------------


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on now (the kernel's pick); racy, as every such pick is."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server could listen on host:port now.

    The probe binds the way our servers do, with SO_REUSEADDR (asyncio's
    create_server, which the mail catcher uses, and Go's net.Listen, which the dev
    server uses, both set it). On Linux that bind still fails while anything LISTENs
    on the port, but succeeds when all that is left are connections in TIME_WAIT,
    which a stopped mail catcher leaves for a minute after each mail. Without it,
    `make run` right after a Ctrl-C said the mail port was in use.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


# -- starting -----------------------------------------------------------------------------


def spawn(
    command: Sequence[str],
    log_path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    new_session: bool = True,
    append: bool = True,
    header: str | None = None,
    **popen,
) -> subprocess.Popen:
    """Start `command`.

    With `log_path`, its stdout and stderr go to that file (appended to, unless
    `append=False`), after the line `header` if one is given. Without, `popen`
    (stdout=, stderr=, text=, ...) says where they go. `new_session` puts the child
    in a process group of its own; `popen` passes anything else (cwd=, stdin=) on.
    """
    if log_path is None:
        return subprocess.Popen(command, env=env, start_new_session=new_session, **popen)
    with open(log_path, "ab" if append else "wb") as log:
        if header is not None:
            log.write(f"{header}\n".encode())
            log.flush()
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=new_session,
            **popen,
        )


async def wait_ready(
    process: subprocess.Popen,
    ready: Callable[[], T | Awaitable[T]],
    *,
    within: float,
    every: float,
    exited: Callable[[int], BaseException],
    late: Callable[[], BaseException],
    retry_on: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll `ready()` (sync or async) every `every` s until it returns something truthy,
    and return that. An exception in `retry_on` counts as not ready yet.

    Raises `exited(returncode)` as soon as the process has exited without being
    ready, and `late()` once `within` seconds have passed.
    """
    give_up_at = time.monotonic() + within
    while True:
        try:
            value = ready()
            if inspect.isawaitable(value):
                value = await value
        except retry_on:
            value = None
        if value:
            return value
        if process.poll() is not None:
            raise exited(process.returncode)
        if time.monotonic() > give_up_at:
            raise late() from None
        await asyncio.sleep(every)


def read_until(process: subprocess.Popen, marker: str, *, within: float) -> tuple[bool, list[str]]:
    """Read the child's (text) stdout line by line until a line contains `marker`.

    Returns whether it came and the lines read. Stops early at end of output; the
    deadline is checked between lines.
    """
    give_up_at = time.monotonic() + within
    lines: list[str] = []
    while time.monotonic() < give_up_at:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if marker in line:
            return True, lines
    return False, lines


# -- stopping ------------------------------------------------------------------------------


def _send(process: subprocess.Popen, signum: int, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)


def stop(
    process: subprocess.Popen | None,
    grace: float = STOP_GRACE_SECONDS,
    *,
    signum: int = signal.SIGTERM,
    group: bool = False,
    kill_wait: float | None = None,
) -> tuple:
    """Send `signum` (SIGTERM), wait up to `grace` s for the exit, then SIGKILL and wait
    up to `kill_wait` s more (None: for as long as it takes).

    `group` signals the child's whole process group (one `spawn` started in its own
    session). Returns (stdout, stderr) as `communicate` does: what the child left in
    its pipes, or Nones when its output went elsewhere (or it had already exited).
    """
    if process is None:
        return None, None
    if process.poll() is None:
        _send(process, signum, group)
    try:
        return process.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        _send(process, signal.SIGKILL, group)
        return process.communicate(timeout=kill_wait)


def kill(process: subprocess.Popen | None, wait: float | None = None) -> None:
    """kill -9 at once, and wait up to `wait` s for it to be gone."""
    if process is None or process.poll() is not None:
        return
    process.kill()
    process.wait(timeout=wait)
