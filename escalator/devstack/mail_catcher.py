"""The one SMTP sink: a real SMTP server on loopback (aiosmtpd) that takes every mail.

`SmtpSink` runs aiosmtpd's server in a thread of its own and hands each message to
its `receive` method; subclasses decide what to keep and what to answer. It can be
stopped and started again on the same port, to stage SMTP outages. The test suite
(tests/support.py, tests/chaos_support.py) and the benchmarks (bench/harness.py)
build their sinks on it; the dev stack uses `MailCatcher`.

`MailCatcher` is the local mail catcher `escalator up` runs, so a newcomer sees real
notifications with no mail server. Each message is written to
`<mail_dir>/<time>-<n>.eml` and announced in one line. The line shows the envelope
recipients and the Subject, which whoever sends the mail controls, so both are made
terminal-safe (escalator.domain.terminal_text): a hostile subject cannot clear the
screen, rewrite the line or add lines of its own.

aiosmtpd comes with the `devstack` extra and is imported only when a sink starts;
without it, starting one raises `DevstackMissing`, a one-line error.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import re
import time
from collections.abc import Callable
from pathlib import Path

from escalator.devstack.processes import LOOPBACK, free_port
from escalator.domain.errors import EscalatorError
from escalator.domain.terminal_text import terminal_safe

DEVSTACK_HINT = "escalator up needs the dev stack: pip install 'escalator[devstack]'"

# Spaces and tabs are folding white space in a header; a run of them reads as one space.
_FOLDING_SPACE = re.compile(r"[ \t]+")


class DevstackMissing(EscalatorError):
    """The `devstack` extra (aiosmtpd) is not installed."""


def smtp_controller_class():
    """aiosmtpd's Controller, or DevstackMissing if the extra is not installed."""
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        raise DevstackMissing(DEVSTACK_HINT) from None
    return Controller


def require_devstack() -> None:
    """Fail with one line, before anything starts, if the dev stack cannot run."""
    smtp_controller_class()


class SmtpSink:
    """An SMTP server on host:port (loopback, a free port by default).

    Subclasses override `refuse_recipient` (an SMTP reply refusing RCPT TO, or None
    to accept) and `receive` (called with each message's envelope after DATA; returns
    the SMTP reply). The base accepts everything and keeps nothing.
    """

    def __init__(self, port: int | None = None, *, host: str = LOOPBACK) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._controller = None

    def start(self, **smtp_options):
        """Listen; `smtp_options` go to aiosmtpd's SMTP server (an authenticator, say)."""
        controller_class = smtp_controller_class()
        self._controller = controller_class(
            _Handler(self), hostname=self.host, port=self.port, **smtp_options
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def up(self) -> bool:
        return self._controller is not None

    def refuse_recipient(self, address: str) -> str | None:
        return None

    async def receive(self, envelope) -> str:
        return "250 OK"


class _Handler:
    """aiosmtpd's handler hooks, passed on to the sink."""

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refusal = self._sink.refuse_recipient(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        return await self._sink.receive(envelope)


# -- the dev stack's mail catcher -------------------------------------------------------


def _one_line(text: str | None, limit: int = 120) -> str:
    """`text` as one terminal-safe line of at most `limit` characters."""
    flat = terminal_safe(_FOLDING_SPACE.sub(" ", text or "").strip(" "))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def announcement(recipients: list[str], subject: str | None, file_name: str) -> str:
    """The line `escalator up` prints for a caught mail."""
    to = ", ".join(_one_line(recipient, 80) for recipient in recipients)
    return terminal_safe(f"mail  → {to}: {_one_line(subject)}  [{file_name}]")


class MailCatcher(SmtpSink):
    """Files every message as `<mail_dir>/<time>-<n>.eml` and announces it in one line."""

    def __init__(
        self, mail_dir: Path, *, port: int = 1025, announce: Callable[[str], None] = print
    ) -> None:
        super().__init__(port)
        self.mail_dir = Path(mail_dir)
        self._announce = announce
        self._counter = itertools.count(1)

    def start(self) -> MailCatcher:
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        return super().start()

    async def receive(self, envelope) -> str:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.mail_dir / f"{stamp}-{next(self._counter):04d}.eml"
        path.write_bytes(envelope.content)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self._announce(announcement(envelope.rcpt_tos, message["Subject"], path.name))
        return "250 Message accepted"
