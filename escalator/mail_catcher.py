"""A local mail catcher: an SMTP server on loopback that files every message as .eml.

`escalator up` runs it so a newcomer sees real notifications with no mail server.
Each message is written to `<mail_dir>/<time>-<n>.eml` and announced in one line.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import time
from collections.abc import Callable
from pathlib import Path

from aiosmtpd.controller import Controller


def _one_line(text: str | None, limit: int = 120) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class _FilingHandler:
    def __init__(self, mail_dir: Path, announce: Callable[[str], None]) -> None:
        self._mail_dir = mail_dir
        self._announce = announce
        self._counter = itertools.count(1)

    async def handle_DATA(self, server, session, envelope) -> str:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self._mail_dir / f"{stamp}-{next(self._counter):04d}.eml"
        path.write_bytes(envelope.content)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        recipients = ", ".join(envelope.rcpt_tos)
        self._announce(f"mail  → {recipients}: {_one_line(message['Subject'])}  [{path.name}]")
        return "250 Message accepted"


class MailCatcher:
    def __init__(
        self, mail_dir: Path, *, port: int = 1025, announce: Callable[[str], None] = print
    ) -> None:
        self.mail_dir = Path(mail_dir)
        self.port = port
        self._announce = announce
        self._controller: Controller | None = None

    def start(self) -> MailCatcher:
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        handler = _FilingHandler(self.mail_dir, self._announce)
        self._controller = Controller(handler, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
