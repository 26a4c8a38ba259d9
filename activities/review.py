"""`send_monthly_review`: one month's escalation review, from the ledger to a mailbox.

It reads the month's resolved cases from the case ledger, computes the report
(escalator/domain/metrics.py), renders it as a self-contained HTML page
(escalator/adapters/report_html.py) and mails it as multipart/alternative: a short
plain-text summary and the HTML. The SMTP send and its classification are
`send_email`'s own (`deliver_email` in activities/notifications.py): SMTP 5xx is
permanent, 4xx, refused connections and timeouts are retried.

A ledger that does not exist yet is a month with 0 cases, not an error: a new
desk still gets its (empty) review. A ledger that cannot be read is retried, and
its URL, which may hold a password, is never part of a message or a log line.
The Message-ID comes from the workflow (run id and month), so a retried send is
the same message.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from sqlalchemy.exc import SQLAlchemyError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.notifications import (
    CONFIG,
    _counted,
    _is_address,
    _permanent,
    deliver_email,
)
from escalator.adapters.ledger_store import LedgerStore, ledger_exists
from escalator.adapters.settings import EscalatorSettings, LedgerSettings, SmtpSettings
from escalator.domain import metrics
from escalator.domain.errors import InvalidInput
from escalator.domain.ledger import CaseHistory
from escalator.domain.models import DeliveryReceipt
from escalator.domain.notification_text import header_safe
from escalator.domain.review import (
    SEND_MONTHLY_REVIEW,
    ReviewRequest,
    ReviewResult,
    review_subject,
)

LEDGER_UNAVAILABLE = "LedgerUnavailable"


class ReviewActivities:
    """`send_monthly_review`, configured by `settings` (its `smtp` and `ledger` groups)."""

    def __init__(self, settings: EscalatorSettings) -> None:
        self.settings = settings

    def __repr__(self) -> str:
        return f"ReviewActivities(smtp={self.settings.smtp!r}, ledger=***)"

    @activity.defn(name=SEND_MONTHLY_REVIEW)
    async def send_monthly_review(self, request: ReviewRequest) -> ReviewResult:
        url = self.settings.ledger.url.get_secret_value()
        return await _review(request, url, self.settings.smtp)


@activity.defn(name=SEND_MONTHLY_REVIEW)
async def send_monthly_review(request: ReviewRequest) -> ReviewResult:
    """`send_monthly_review` with SMTP_* and ESCALATOR_LEDGER_URL read for this call."""
    try:
        smtp = SmtpSettings.from_env()
        url = LedgerSettings.from_env().url.get_secret_value()
    except InvalidInput as error:
        # The worker's configuration, not the request, is wrong: retry once it is fixed.
        raise ApplicationError(f"review {request.month.key}: {error}", type=CONFIG) from None
    return await _review(request, url, smtp)


async def _review(request: ReviewRequest, url: str, smtp: SmtpSettings) -> ReviewResult:
    month, what = request.month, f"review {request.month.key} {request.message_id}"
    recipients = list(request.review.recipients)
    invalid = [r for r in recipients if not _is_address(r)]
    if invalid:  # ReviewInput checks them; any Temporal client can start this activity
        shown = ", ".join(repr(header_safe(r)) for r in invalid)
        raise _permanent(f"{what}: not an email address: {shown}")

    histories = await _histories(request, url, what)
    report = metrics.report(
        histories, period_from=month.start, period_to=month.end, team=request.review.team
    )
    message = _message(request, report, histories, smtp.mail_from)
    receipt = await _counted("email", _send(message, recipients, smtp, what, request.message_id))
    activity.logger.info(
        "sent %s (%d cases) via %s:%s: %s",
        what,
        report.cases,
        smtp.host,
        smtp.port,
        receipt.detail,
    )
    return ReviewResult(
        month=month.key,
        cases=report.cases,
        recipients=receipt.accepted,
        message_id=request.message_id,
    )


async def _histories(request: ReviewRequest, url: str, what: str) -> list[CaseHistory]:
    if not ledger_exists(url):
        return []  # no case has resolved yet: an empty month, and no file created
    store = LedgerStore(url)
    try:
        # SQLAlchemy is synchronous; a thread keeps the worker's event loop free.
        return await asyncio.to_thread(
            store.histories,
            resolved_from=request.month.start,
            resolved_to=request.month.end,
            account=request.review.account,
        )
    except InvalidInput as error:  # a bad URL or an old schema: says what to fix, no URL
        raise ApplicationError(f"{what}: {error}", type=LEDGER_UNAVAILABLE) from None
    except (SQLAlchemyError, OSError) as error:
        # The error's kind only: a driver may quote the URL, and with it a password.
        raise ApplicationError(
            f"{what}: ledger unavailable ({type(error).__name__})", type=LEDGER_UNAVAILABLE
        ) from None
    finally:
        store.close()


async def _send(
    message: EmailMessage, recipients: list[str], smtp: SmtpSettings, what: str, message_id: str
) -> DeliveryReceipt:
    accepted, detail = await deliver_email(message, recipients, smtp, what)
    return DeliveryReceipt(message_id=message_id, channel="email", accepted=accepted, detail=detail)


def _message(
    request: ReviewRequest,
    report: metrics.Report,
    histories: list[CaseHistory],
    mail_from: str,
) -> EmailMessage:
    # Imported here: the HTML renderer pulls in its charting stack, which only this
    # activity needs, not every worker start.
    from escalator.adapters.report_html import render

    month = request.month
    message = EmailMessage()
    message["Subject"] = header_safe(review_subject(month, report.cases))
    message["From"] = header_safe(mail_from)
    message["To"] = ", ".join(header_safe(r) for r in request.review.recipients)
    message["Date"] = format_datetime(datetime.now(UTC))
    # The same on every attempt of this run, so a receiver can drop a duplicate.
    message["Message-ID"] = header_safe(request.message_id)
    message["X-Escalator-Purpose"] = "monthly_review"
    message["X-Escalator-Review-Month"] = month.key
    if request.run:
        message["X-Escalator-Run"] = header_safe(request.run)
    message.set_content(summary_text(request, report), subtype="plain", charset="utf-8")
    message.add_alternative(render(report, histories), subtype="html", charset="utf-8")
    return message


def summary_text(request: ReviewRequest, report: metrics.Report) -> str:
    """The plain-text part: the month's headline figures; the HTML has the rest."""
    month, review = request.month, request.review
    scope = [f"team {review.team}"] if review.team else []
    scope += [f"account {review.account}"] if review.account else []
    lines = [
        f"Escalation review for {month.label} ({month.timezone})",
        f"Scope: {', '.join(scope) if scope else 'all cases'}",
        "",
        f"Cases resolved: {report.cases}",
        f"Never claimed: {report.unclaimed}",
        f"MTTA (mean): {_duration(report.mtta_seconds.mean)}",
        f"MTTR (mean): {_duration(report.mttr_seconds.mean)}",
        f"Escalations: {report.escalations.total}",
        f"SLA compliance: {_share(report.sla_compliance.overall)}",
        f"Reopen rate: {_share(report.reopen_rate)}",
        f"Needs review: {report.needs_review.count}",
        f"L3 cases to review: {len(report.l3_reviews)}",
        "",
        "The full report is the HTML part of this message (docs/metrics.md defines each figure).",
    ]
    return "\n".join(lines) + "\n"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"
