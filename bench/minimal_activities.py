"""The baseline's activities: one real SMTP send per notify (aiosmtplib, like
Escalator's send_email), a trivial assessment, and stand-ins that only record for
the time-skipping simulation."""

from __future__ import annotations

import os
from email.message import EmailMessage

import aiosmtplib
from temporalio import activity

from bench.minimal import ASSESS, NOTIFY, Mail


@activity.defn(name=NOTIFY)
async def notify(mail: Mail) -> str:
    message = EmailMessage()
    message["From"] = "bench@localhost"
    message["To"] = f"{mail.recipient}@example.com"
    message["Subject"] = f"[bench] case {mail.case_id}: {mail.purpose}"
    message["X-Bench-Case"] = mail.case_id
    message["X-Bench-Purpose"] = mail.purpose
    if mail.breached is not None:
        message["X-Bench-Breached"] = mail.breached.isoformat()
    message.set_content(f"Case {mail.case_id} is now with {mail.recipient}.\n{mail.text}\n")
    await aiosmtplib.send(
        message,
        hostname=os.environ.get("SMTP_HOST", "127.0.0.1"),
        port=int(os.environ.get("SMTP_PORT", "1025")),
        timeout=20,
    )
    return "sent"


@activity.defn(name=ASSESS)
async def assess(case_id: str) -> str:
    """Escalator's benchmark runs with no model key, so its assessment is the
    offline assessor inside an activity; this is the baseline's equivalent."""
    return f"case {case_id}: no assessment model configured"


@activity.defn(name=NOTIFY)
async def notify_recorded(mail: Mail) -> str:
    """For the time-skipping simulation, where no SMTP server takes part."""
    return "recorded"


ALL = [notify, assess]
RECORDED = [notify_recorded, assess]
