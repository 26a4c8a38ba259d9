"""SMTP settings for the `send_email` activity, read from the environment.

The defaults point at a local development mail catcher (e.g. Mailpit or aiosmtpd on
port 1025), so a fresh checkout sends mail somewhere harmless without configuration.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr

from escalator.domain.errors import InvalidInput

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 1025
DEFAULT_MAIL_FROM = "Escalator <escalator@localhost>"

_TRUTHY = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class SmtpSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    username: str | None = None
    # Kept out of the generated repr; `__repr__` below shows only whether it is set,
    # so settings can be logged or end up in a traceback without leaking it.
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    mail_from: str = DEFAULT_MAIL_FROM

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> SmtpSettings:
        """Read SMTP_HOST, SMTP_PORT, SMTP_USERNAME, SMTP_PASSWORD, SMTP_STARTTLS, MAIL_FROM.

        Empty values count as unset, so `SMTP_USERNAME=` in a .env file means "no auth".
        """

        def get(name: str) -> str | None:
            value = environ.get(name, "").strip()
            return value or None

        return cls(
            host=get("SMTP_HOST") or DEFAULT_HOST,
            port=_port(get("SMTP_PORT")),
            username=get("SMTP_USERNAME"),
            # Not stripped: a password may legitimately start or end with a space.
            password=environ.get("SMTP_PASSWORD") or None,
            starttls=(get("SMTP_STARTTLS") or "").lower() in _TRUTHY,
            mail_from=_mail_from(get("MAIL_FROM")),
        )

    def __repr__(self) -> str:
        password = "'***'" if self.password else "None"
        return (
            f"SmtpSettings(host={self.host!r}, port={self.port}, username={self.username!r}, "
            f"password={password}, starttls={self.starttls}, mail_from={self.mail_from!r})"
        )


def _port(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PORT
    try:
        port = int(raw)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise InvalidInput(
            f"SMTP_PORT: {raw!r} is not a port number; set it to a number from 1 to 65535 "
            f"(e.g. 587 for STARTTLS, or unset it for the default {DEFAULT_PORT})"
        )
    return port


def _mail_from(raw: str | None) -> str:
    if raw is None:
        return DEFAULT_MAIL_FROM
    # The value goes verbatim into the From header and the SMTP envelope: refuse a
    # line break (header injection) or anything without an address in it.
    address = parseaddr(raw)[1]
    if any(c in raw for c in "\r\n") or "@" not in address:
        raise InvalidInput(
            f"MAIL_FROM: {raw!r} is not a sender address; set it to e.g. "
            f"'Escalator <escalator@example.com>' (one line)"
        )
    return raw
