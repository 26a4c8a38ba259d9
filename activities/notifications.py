"""Delivery activities: `send_email` (SMTP) and `post_webhook` (HTTP POST).

The HTTP side (`post_json`: the destination check, the connection to the address
checked, timeouts; `deliver_webhook`: the signed JSON body) is shared with the Slack,
PagerDuty and webhook channel activities in activities/channels.py.

`NotificationActivities(settings)` holds them, configured by the `smtp` group of an
`EscalatorSettings` (loaded once by the worker); they read no environment themselves.
The module-level `send_email` and `post_webhook` are the same activities configured
from the environment at each call, for callers that register plain functions.

The workflow retries these on its own schedule (see `DELIVERY_RETRY` in
workflows/escalation.py), so the one decision made here is how a failure is
classified:

  - `PermanentDeliveryError` (non-retryable): the other side said no and will say
    no again, e.g. SMTP 5xx or HTTP 404. Retrying for a day would only spam logs.
  - `TransientDeliveryError` (retryable): the other side may say yes later, e.g.
    SMTP 4xx, HTTP 5xx/408/429, refused connections and timeouts.

Each attempt's outcome is counted in escalator_deliveries_total{channel, outcome}
(channel email|webhook|slack|pagerduty, outcome sent|failed_transient|failed_permanent), through
activity.metric_meter(): served by the worker with ESCALATOR_METRICS_ADDRESS set.

Error messages end up in the case timeline, so they say what failed in one line and
never contain the SMTP password or a webhook's path or query (which often hold tokens),
nor a webhook response's body (the status and reason phrase only).

Webhooks (docs/webhooks.md) are signed with ESCALATOR_WEBHOOK_SECRET when it is set
(`X-Escalator-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`), and go to
public addresses only: a name that resolves to a loopback, link-local, private,
unique-local, multicast, unspecified or reserved address is refused (permanently)
unless ESCALATOR_WEBHOOK_ALLOW_PRIVATE=true. The POST goes to the address checked,
so the name cannot be re-pointed in between (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Awaitable
from contextvars import ContextVar
from datetime import timedelta
from email.message import EmailMessage
from urllib.parse import urlsplit

import aiosmtplib
import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from escalator.adapters.settings import EscalatorSettings, SmtpSettings, WebhookSettings
from escalator.domain import webhook_destination, webhook_signature
from escalator.domain.errors import InvalidInput
from escalator.domain.models import DeliveryReceipt, Notification
from escalator.domain.names import PERMANENT_DELIVERY_ERROR, POST_WEBHOOK, SEND_EMAIL
from escalator.domain.notification_text import header_safe, render_email, webhook_payload
from escalator.domain.policy import check_email

PERMANENT = PERMANENT_DELIVERY_ERROR
TRANSIENT = "TransientDeliveryError"
CONFIG = "DeliveryConfigError"

# Below the workflow's 30 s start-to-close timeout, so a hung server fails the
# attempt here, with a useful message, rather than as an anonymous activity timeout.
SMTP_TIMEOUT_SECONDS = 20.0
WEBHOOK_TIMEOUT_SECONDS = 10.0

# Honour a receiver's Retry-After, but never let it park a delivery for hours.
MAX_RETRY_AFTER = timedelta(minutes=10)

# httpx logs every request's full URL at INFO ("HTTP Request: POST https://..."), and a
# Slack webhook's path is its credential. `post_json` names what to hide for the
# request it makes; the filter masks it in httpx's records made meanwhile (the same
# task, so the same context), whatever the worker's log level.
_HIDDEN_IN_LOGS: ContextVar[tuple[str, ...]] = ContextVar("escalator_hidden_in_logs", default=())


class _HideSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        hidden = _HIDDEN_IN_LOGS.get()
        if hidden:
            text = record.getMessage()
            for secret in hidden:
                text = text.replace(secret, "***")
            record.msg, record.args = text, None
        return True


logging.getLogger("httpx").addFilter(_HideSecrets())


class NotificationActivities:
    """`send_email` and `post_webhook`, configured by `settings` (its `smtp` group)."""

    def __init__(self, settings: EscalatorSettings) -> None:
        self.settings = settings

    def __repr__(self) -> str:
        return f"NotificationActivities(smtp={self.settings.smtp!r})"

    @activity.defn(name=SEND_EMAIL)
    async def send_email(self, notification: Notification) -> DeliveryReceipt:
        return await _counted("email", _send_email(notification, self.settings.smtp))

    @activity.defn(name=POST_WEBHOOK)
    async def post_webhook(self, notification: Notification) -> DeliveryReceipt:
        return await _counted("webhook", _post_webhook(notification, self.settings.webhook))


@activity.defn(name=SEND_EMAIL)
async def send_email(notification: Notification) -> DeliveryReceipt:
    """`send_email` with SMTP_* read from the environment for this call."""
    try:
        smtp = SmtpSettings.from_env()
    except InvalidInput as error:
        # A worker misconfiguration, not the message's fault: stay retryable so the
        # mail goes out once the worker restarts with a fixed environment.
        _count_delivery("email", "failed_transient")
        raise ApplicationError(f"email {notification.message_id}: {error}", type=CONFIG) from None
    return await _counted("email", _send_email(notification, smtp))


@activity.defn(name=POST_WEBHOOK)
async def post_webhook(notification: Notification) -> DeliveryReceipt:
    """`post_webhook` with ESCALATOR_WEBHOOK_* read from the environment for this call."""
    try:
        webhook = WebhookSettings.from_env()
    except InvalidInput as error:
        # As for mail: a worker misconfiguration stays retryable until it is fixed.
        _count_delivery("webhook", "failed_transient")
        raise ApplicationError(f"webhook {notification.message_id}: {error}", type=CONFIG) from None
    return await _counted("webhook", _post_webhook(notification, webhook))


# -- metrics ------------------------------------------------------------------------


async def _counted(channel: str, attempt: Awaitable[DeliveryReceipt]) -> DeliveryReceipt:
    """The attempt, its outcome counted: sent, or failed as it will be retried
    (transient) or not (permanent). A cancelled attempt (worker shutdown) is no outcome."""
    try:
        receipt = await attempt
    except ApplicationError as error:
        permanent = error.type == PERMANENT or error.non_retryable
        _count_delivery(channel, "failed_permanent" if permanent else "failed_transient")
        raise
    except Exception:
        _count_delivery(channel, "failed_transient")  # the SDK retries any other error
        raise
    _count_delivery(channel, "sent")
    return receipt


def _count_delivery(channel: str, outcome: str) -> None:
    # Labels are the channel and the outcome only: never an address, a URL or a case.
    if not activity.in_activity():
        return  # called directly (tests, scripts): there is no meter
    counter = activity.metric_meter().create_counter(
        "escalator_deliveries", "Delivery attempts, by channel and outcome."
    )
    counter.add(1, {"channel": channel, "outcome": outcome})


# -- email ------------------------------------------------------------------------


async def _send_email(notification: Notification, settings: SmtpSettings) -> DeliveryReceipt:
    what = f"email {notification.message_id}"
    recipients = list(notification.recipients)
    if not recipients:
        raise _permanent(f"{what}: no recipients; add addresses to the tier's notify list")
    invalid = [r for r in recipients if not _is_address(r)]
    if invalid:
        shown = ", ".join(repr(header_safe(r)) for r in invalid)
        raise _permanent(f"{what}: not an email address: {shown}")

    server = f"{settings.host}:{settings.port}"
    message = render_email(notification, mail_from=settings.mail_from)
    accepted, detail = await deliver_email(message, recipients, settings, what)
    activity.logger.info(
        "sent %s (%s, case %s) via %s: %s",
        what,
        notification.purpose,
        notification.case.case_id,
        server,
        detail,
    )
    return DeliveryReceipt(
        message_id=notification.message_id, channel="email", accepted=accepted, detail=detail
    )


async def deliver_email(
    message: EmailMessage, recipients: list[str], settings: SmtpSettings, what: str
) -> tuple[tuple[str, ...], str]:
    """Send `message` to `recipients` over SMTP: (the accepted recipients, a detail
    line). Failures raise the permanent or transient ApplicationError, with `what`
    (e.g. "email <id>") first and the password never in the message. Shared by
    `send_email` and the monthly review (activities/review.py)."""
    server = f"{settings.host}:{settings.port}"
    try:
        refused, _ = await aiosmtplib.send(
            message,
            recipients=recipients,
            hostname=settings.host,
            port=settings.port,
            username=settings.username,
            password=settings.password.get_secret_value() if settings.password else None,
            # False means "never upgrade", not "upgrade if offered": a server that
            # advertises STARTTLS with a self-signed certificate (common in dev mail
            # catchers) would otherwise fail every send.
            start_tls=settings.starttls,
            timeout=SMTP_TIMEOUT_SECONDS,
        )
    except aiosmtplib.SMTPRecipientsRefused as error:
        # Raised only when every recipient was refused, so nothing was sent and a
        # retry duplicates nothing. Retry if any refusal may be temporary.
        codes = ", ".join(
            f"{e.recipient} ({_response(e.code, e.message)})" for e in error.recipients
        )
        detail = _redact(f"{what}: {server} refused every recipient: {codes}", settings)
        if all(e.code >= 500 for e in error.recipients):
            raise _permanent(detail) from None
        raise _transient(detail) from None
    except aiosmtplib.SMTPResponseException as error:
        # Sender refused, DATA rejected, authentication failed, greeting refused...
        detail = _redact(
            f"{what}: {server} answered {_response(error.code, error.message)}", settings
        )
        if error.code >= 500:
            raise _permanent(detail) from None
        raise _transient(detail) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
        # Connection refused or dropped, timeouts, and capabilities the server lacks
        # (STARTTLS, AUTH): retried, so the mail goes out once the server or the
        # worker's configuration is fixed.
        raise _transient(
            _redact(f"{what}: SMTP {server} failed: {_one_line(error)}", settings)
        ) from None
    except ValueError as error:
        # aiosmtplib refuses an address it cannot put in an envelope.
        raise _permanent(_redact(f"{what}: {_one_line(error)}", settings)) from None

    accepted = tuple(r for r in recipients if r not in refused)
    detail = f"to {', '.join(accepted)}"
    if refused:
        # Some recipients were accepted, so the mail is sent: retrying would
        # duplicate it for them. The refusals are reported in the receipt instead.
        detail += "; refused " + ", ".join(
            f"{r} ({_response(response.code, response.message)})" for r, response in refused.items()
        )
    return accepted, detail


def _is_address(value: str) -> bool:
    # The policy validates tier addresses already, but any Temporal client can start
    # this activity; a bad address must fail here, not as a confusing SMTP error.
    try:
        check_email(value)
    except ValueError:
        return False
    return True


def _response(code: int, message: str) -> str:
    return f"{code} {_one_line(message)}".strip()


def _redact(text: str, settings: SmtpSettings) -> str:
    # Belt and braces: no code path formats the password, but server replies and
    # library errors are not ours to vouch for.
    password = settings.password.get_secret_value() if settings.password else ""
    return text.replace(password, "***") if password else text


# -- webhook -----------------------------------------------------------------------


async def _post_webhook(notification: Notification, settings: WebhookSettings) -> DeliveryReceipt:
    what = f"webhook {notification.message_id}"
    url = notification.webhook
    if not url:
        raise _permanent(f"{what}: no webhook URL; set one on the tier or drop the webhook")
    target = _origin(url)
    # A tier's URL often carries a token in its path or query: httpx's own log line
    # for the request shows it masked (errors name only the origin anyway).
    status = await deliver_webhook(
        notification, url, settings, what=what, shown=target, hide=secret_parts(url)
    )
    detail = f"POST {target} → {status}"
    activity.logger.info(
        "sent %s (%s, case %s): %s",
        what,
        notification.purpose,
        notification.case.case_id,
        detail,
    )
    return DeliveryReceipt(
        message_id=notification.message_id,
        channel="webhook",
        accepted=(target,),
        detail=detail,
    )


async def deliver_webhook(
    notification: Notification,
    url: str,
    settings: WebhookSettings,
    *,
    what: str,
    shown: str,
    hide: tuple[str, ...] = (),
    idempotency_key: str | None = None,
) -> int:
    """POST `webhook_payload(notification)` to `url`, signed and with its idempotency
    key (docs/webhooks.md): the 2xx status, or the permanent or transient error.

    Shared by `post_webhook` (the tier's URL) and the `post_channel_webhook` channel
    activity (activities/channels.py). Messages begin with `what` and name the
    destination as `shown` (an origin, or a channel's wording when the URL is secret);
    `hide` are strings replaced by *** should a library error repeat them;
    `idempotency_key` defaults to the notification's message id."""
    body = json.dumps(webhook_payload(notification), ensure_ascii=False, separators=(",", ":"))
    content = body.encode()
    headers = {
        "Content-Type": "application/json",
        # Same key on every retry, so the receiver can drop duplicates.
        "Idempotency-Key": header_safe(idempotency_key or notification.message_id),
        "User-Agent": "escalator",
    }
    secret = settings.secret_bytes
    if secret is not None:
        # A fresh time on each attempt, so a retry is inside the receiver's tolerance.
        headers[webhook_signature.HEADER] = webhook_signature.sign(
            secret, int(time.time()), content
        )
    response = await post_json(what, url, content, headers, settings, shown=shown, hide=hide)

    status = response.status_code
    if 200 <= status < 300:
        return status

    # The status and its reason phrase only: the response body is the receiver's to
    # word, can echo the request (case data) or hold anything, and would land in the
    # case timeline and history.
    detail = f"{what}: POST {shown} → {status} {_one_line(response.reason_phrase)[:60]}".rstrip()
    if status in (408, 429) or status >= 500:
        raise _transient(detail, retry_after=_retry_after(response))
    # Other 4xx (the receiver rejects this request) and 3xx (POSTs are not followed:
    # the tier's URL should point at the final endpoint) will not change by retrying.
    raise _permanent(detail)


async def post_json(
    what: str,
    url: str,
    content: bytes,
    headers: dict[str, str],
    settings: WebhookSettings,
    *,
    shown: str,
    hide: tuple[str, ...] = (),
) -> httpx.Response:
    """POST `content` to `url` after the destination check (`_destination`), connected
    to the address checked: the response, whatever its status (the caller classifies
    it), or the permanent error (an unusable or refused URL) or transient one (DNS,
    connection, timeout). Used by every webhook-like delivery: `post_webhook` and the
    Slack, PagerDuty and webhook channels (activities/channels.py).

    Messages begin with `what` and name the destination as `shown` only; `hide` are
    strings (a secret URL, its path) replaced by *** should a library error repeat them."""

    def scrub(text: str) -> str:
        for secret in hide:
            if secret:
                text = text.replace(secret, "***")
        return text

    try:
        parts = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise _permanent(
            scrub(f"{what}: {shown} is not a usable URL: {_one_line(error)}")
        ) from None
    if parts.scheme not in ("http", "https") or not parts.host:
        raise _permanent(f"{what}: {shown} is not a usable URL: use http:// or https://")
    address = await _destination(what, shown, parts, settings)

    headers = dict(headers)
    request_url, extensions = parts, {}
    if address is not None:
        # Connect to the address just checked, not to whatever the name resolves to a
        # moment later (DNS rebinding); Host and, for https, SNI and the certificate
        # check still use the name.
        headers["Host"] = parts.netloc.decode("ascii")
        request_url = parts.copy_with(host=address)
        if parts.scheme == "https":
            extensions["sni_hostname"] = parts.host

    hidden = _HIDDEN_IN_LOGS.set(tuple(secret for secret in hide if secret))
    try:
        async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_SECONDS) as client:
            return await client.post(
                request_url, content=content, headers=headers, extensions=extensions
            )
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as error:
        raise _permanent(
            scrub(f"{what}: {shown} is not a usable URL: {_one_line(error)}")
        ) from None
    except httpx.TransportError as error:
        # str(error) can be empty for timeouts; the class name always says what failed.
        reason = f"{type(error).__name__}: {_one_line(error)}".rstrip(": ")
        raise _transient(scrub(f"{what}: POST {shown} failed: {reason}")) from None
    finally:
        _HIDDEN_IN_LOGS.reset(hidden)


async def _destination(
    what: str, target: str, url: httpx.URL, settings: WebhookSettings
) -> str | None:
    """The address to connect to, checked; None to let httpx resolve (private allowed).

    A refusal is permanent: the same name resolves the same way on the next attempt,
    and an operator has to allow it (ESCALATOR_WEBHOOK_ALLOW_PRIVATE=true)."""
    if settings.allow_private:
        return None
    host = url.host
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        # DNS may come back; the workflow's retry policy bounds how long we wait.
        raise _transient(f"{what}: cannot resolve {target}: {_one_line(error)}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    problem = webhook_destination.refusal(host, addresses)
    if problem is not None:
        raise _permanent(f"{what}: refused {target}: {problem}")
    return addresses[0]


SECRET_PART_CHARS = 8


def secret_parts(url: str) -> tuple[str, ...]:
    """The parts of a secret URL that no message or log line may repeat: all of it,
    its path and its query (the path of a Slack webhook is its credential)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return (url,)
    # A part shorter than this is no credential, and masking it would garble the
    # message around it ("t" of "?t" is in "https").
    return tuple(p for p in (url, parts.path, parts.query) if len(p) >= SECRET_PART_CHARS)


def _origin(url: str) -> str:
    """`https://hooks.example.com` from a URL whose path or query may hold a secret."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    return f"{parts.scheme}://{host}{port}"


def _retry_after(response: httpx.Response) -> timedelta | None:
    value = response.headers.get("Retry-After", "")
    # Only the seconds form: the HTTP-date form is rare for APIs, and the
    # workflow's own backoff is a fine fallback.
    if not value.strip().isdigit():
        return None
    return min(timedelta(seconds=int(value)), MAX_RETRY_AFTER)


# -- shared --------------------------------------------------------------------------


def _permanent(message: str) -> ApplicationError:
    return ApplicationError(message, type=PERMANENT, non_retryable=True)


def _transient(message: str, *, retry_after: timedelta | None = None) -> ApplicationError:
    # Expected while a server is down and retried for a day: one warning line per
    # attempt is useful; the SDK's traceback per attempt (non-benign) is noise.
    info = activity.info()
    activity.logger.warning("attempt %d failed, will retry: %s", info.attempt, message)
    return ApplicationError(
        message,
        type=TRANSIENT,
        next_retry_delay=retry_after,
        category=ApplicationErrorCategory.BENIGN,
    )


def _one_line(value: object) -> str:
    return " ".join(str(value).split())
