"""SMTP settings for the `send_email` activity: now a group of `EscalatorSettings`.

Kept so `from escalator.adapters.smtp_settings import SmtpSettings` goes on working;
the model, its variables and their checks live in escalator/adapters/settings.py.
"""

from __future__ import annotations

from escalator.adapters.settings import (
    DEFAULT_MAIL_FROM,
    DEFAULT_SMTP_HOST,
    DEFAULT_SMTP_PORT,
    SmtpSettings,
)

DEFAULT_HOST = DEFAULT_SMTP_HOST
DEFAULT_PORT = DEFAULT_SMTP_PORT

__all__ = ["DEFAULT_HOST", "DEFAULT_MAIL_FROM", "DEFAULT_PORT", "SmtpSettings"]
