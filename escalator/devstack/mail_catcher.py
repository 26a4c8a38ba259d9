"""A local mail catcher: an SMTP server on loopback that files every message as .eml.

`escalator up` runs it so a newcomer sees real notifications with no mail server.
Each message is written to `<mail_dir>/<time>-<n>.eml` and announced in one line.
The line shows the envelope recipients and the Subject, which whoever sends the mail
controls, so both are made terminal-safe (escalator.domain.terminal_text): a hostile
subject cannot clear the screen, rewrite the line or add lines of its own.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import re
import time
from collections.abc import Callable
from pathlib import Path

from aiosmtpd.controller import Controller

from escalator.domain.terminal_text import terminal_safe

# Spaces and tabs are folding white space in a header; a run of them reads as one space.
_FOLDING_SPACE = re.compile(r"[ \t]+")


def _one_line(text: str | None, limit: int = 120) -> str:
    """`text` as one terminal-safe line of at most `limit` characters."""
    flat = terminal_safe(_FOLDING_SPACE.sub(" ", text or "").strip(" "))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def announcement(recipients: list[str], subject: str | None, file_name: str) -> str:
    """The line `escalator up` prints for a caught mail."""
    to = ", ".join(_one_line(recipient, 80) for recipient in recipients)
    return terminal_safe(f"mail  → {to}: {_one_line(subject)}  [{file_name}]")


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
        self._announce(announcement(envelope.rcpt_tos, message["Subject"], path.name))
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
