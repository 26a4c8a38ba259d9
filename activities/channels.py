"""Channel activities: `post_slack_message`, `send_pagerduty_event` and
`post_channel_webhook`, one `ChannelSend` to one of the policy's named channels
(escalator/domain/policy.py `Channel`).

`ChannelActivities(settings, environ)` holds them. A policy names the environment
variables that hold a channel's secrets (a Slack incoming-webhook URL, a PagerDuty
routing key, a webhook URL), never the secrets, so each send reads its variable from
`environ` when it runs: a rotated secret takes effect at the next worker start, and
no secret ever enters a case's history. The module-level functions are the same
activities with every setting read from the environment at each call (`send_email`'s
pattern, activities/notifications.py).

The bodies come from pure builders (escalator/domain/slack_message.py and
escalator/domain/pagerduty_event.py); the HTTP side is the webhooks' own
(`post_json`): the destination check (no loopback or private receivers unless
ESCALATOR_WEBHOOK_ALLOW_PRIVATE=true), the connection to the address checked (DNS
rebinding), the same timeout. Failures are classified as for webhooks:

  - permanent (`PermanentDeliveryError`, not retried): a variable not set, a refused
    destination, Slack's or PagerDuty's 4xx (a revoked webhook, a bad routing key,
    an invalid body will not get better by waiting);
  - transient (retried by the workflow): 408, 429 and 5xx, with Retry-After (seconds)
    honoured through `next_retry_delay`, and connection failures and timeouts.

Every error message begins with the channel's name and is one line. None holds a
Slack URL (its path is the credential), a webhook URL read from a variable, or a
routing key; Slack's answer is quoted only as its error code (`no_service`), and
PagerDuty's only as its `message` and `errors`, shortened, the key masked. Logs name
the channel, the event and the case, nothing else.

Case links (the Slack message's "Open case" and the PagerDuty alert's link) go to the
API's live queue when ESCALATOR_API_URL is set (the queue page has no per-case view,
so it is `/queue`), else to the case's workflow in the Temporal Web UI
(ESCALATOR_WEB_UI). A link that fails the builders' check costs the link, never the
send: it is left out, with one warning per worker.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.notifications import (
    CONFIG,
    _count_delivery,
    _counted,
    _one_line,
    _permanent,
    _retry_after,
    _transient,
    deliver_webhook,
    post_json,
    secret_parts,
)
from escalator.adapters.settings import (
    EscalatorSettings,
    LinkSettings,
    TemporalSettings,
    WebhookSettings,
)
from escalator.domain.errors import InvalidInput
from escalator.domain.models import ChannelSend, DeliveryReceipt, Notification, workflow_id_for
from escalator.domain.names import POST_CHANNEL_WEBHOOK, POST_SLACK_MESSAGE, SEND_PAGERDUTY_EVENT
from escalator.domain.notification_text import header_safe
from escalator.domain.pagerduty_event import acknowledge_event, resolve_event, trigger_event
from escalator.domain.policy import reserved_env_name
from escalator.domain.slack_message import checked_case_link, slack_payload

# PagerDuty's Events API v2; a channel's `url` overrides it (a proxy, an EU service).
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
# Slack answers a refusal with a bare error code (`no_service`, `invalid_token`); only
# a body of that shape is quoted, anything else could be an echo or an HTML page.
_SLACK_CODE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz_")
_SLACK_CODE_MAX = 60
# What PagerDuty's `message` and `errors` may take of a one-line error.
PAGERDUTY_REASON_CHARS = 300
_SLACK_HINTS = {
    "no_service": "the incoming webhook was removed or its URL is wrong",
    "invalid_token": "the incoming webhook's token was revoked",
    "no_team": "the Slack workspace is gone or the URL is wrong",
    "team_disabled": "the Slack workspace is disabled",
    "channel_not_found": "the webhook's Slack channel is gone",
    "channel_is_archived": "the webhook's Slack channel is archived",
    "action_prohibited": "a Slack admin restricts posting to the channel",
    "posting_to_general_channel_denied": "only admins may post to that channel",
}


class ChannelActivities:
    """The channel activities, configured by `settings` (its `webhook` and `links`
    groups); the secrets come from `environ` at each send."""

    def __init__(self, settings: EscalatorSettings, environ: Mapping[str, str] = os.environ):
        self.settings = settings
        self.environ = environ

    def __repr__(self) -> str:
        # Never the environment: it holds the secrets.
        return f"ChannelActivities(webhook={self.settings.webhook!r})"

    @activity.defn(name=POST_SLACK_MESSAGE)
    async def post_slack_message(self, send: ChannelSend) -> DeliveryReceipt:
        return await _counted("slack", _post_slack(send, self.settings, self.environ))

    @activity.defn(name=SEND_PAGERDUTY_EVENT)
    async def send_pagerduty_event(self, send: ChannelSend) -> DeliveryReceipt:
        return await _counted("pagerduty", _send_pagerduty(send, self.settings, self.environ))

    @activity.defn(name=POST_CHANNEL_WEBHOOK)
    async def post_channel_webhook(self, send: ChannelSend) -> DeliveryReceipt:
        return await _counted("webhook", _post_channel_webhook(send, self.settings, self.environ))


@activity.defn(name=POST_SLACK_MESSAGE)
async def post_slack_message(send: ChannelSend) -> DeliveryReceipt:
    """`post_slack_message` with its settings read from the environment for this call."""
    settings = _settings_from_env("slack", send)
    return await _counted("slack", _post_slack(send, settings, os.environ))


@activity.defn(name=SEND_PAGERDUTY_EVENT)
async def send_pagerduty_event(send: ChannelSend) -> DeliveryReceipt:
    """`send_pagerduty_event` with its settings read from the environment for this call."""
    settings = _settings_from_env("pagerduty", send)
    return await _counted("pagerduty", _send_pagerduty(send, settings, os.environ))


@activity.defn(name=POST_CHANNEL_WEBHOOK)
async def post_channel_webhook(send: ChannelSend) -> DeliveryReceipt:
    """`post_channel_webhook` with its settings read from the environment for this call."""
    settings = _settings_from_env("webhook", send)
    return await _counted("webhook", _post_channel_webhook(send, settings, os.environ))


def _settings_from_env(kind: str, send: ChannelSend) -> EscalatorSettings:
    # Only the groups a channel uses: a bad SMTP or AI variable is not this send's problem.
    try:
        return EscalatorSettings.defaults(
            temporal=TemporalSettings.from_env(),
            webhook=WebhookSettings.from_env(),
            links=LinkSettings.from_env(),
        )
    except InvalidInput as error:
        # As for mail: a worker misconfiguration stays retryable until it is fixed.
        _count_delivery(kind, "failed_transient")
        raise ApplicationError(f"{send.channel}: {error}", type=CONFIG) from None


# -- Slack ------------------------------------------------------------------------------


async def _post_slack(
    send: ChannelSend, settings: EscalatorSettings, environ: Mapping[str, str]
) -> DeliveryReceipt:
    name = send.channel
    _expect_kind(send, "slack")
    notification = _notification(send)
    variable, url = _from_environment(send, "url_env", environ)
    link = case_link(send.case_id, settings)
    try:
        payload = slack_payload(notification, case_link=link)
    except ValueError as error:
        # Only the link can make the builder refuse; the message goes out without it.
        _warn_link_once("the case link", error)
        payload = slack_payload(notification, case_link=None)

    # The URL is the credential: messages name the variable that holds it, never it.
    shown = f"the Slack webhook in {variable}"
    response = await post_json(
        name,
        url,
        _json(payload),
        {"Content-Type": "application/json; charset=utf-8", "User-Agent": "escalator"},
        settings.webhook,
        shown=shown,
        hide=secret_parts(url),
    )
    status = response.status_code
    if 200 <= status < 300:
        return _sent(send, "slack", f"{name}: posted ({status})")

    code = _slack_code(response)
    detail = f"{name}: Slack answered {status}{f' {code}' if code else ''}"
    if status in (408, 429) or status >= 500:
        raise _transient(detail, retry_after=_retry_after(response))
    hint = _SLACK_HINTS.get(code or "")
    if hint is not None:
        detail += f" ({hint}); update {variable} and restart the worker"
    raise _permanent(detail)


def _slack_code(response: httpx.Response) -> str | None:
    """Slack's error code (`no_service`), or None when the body is anything else."""
    text = response.text.strip()
    if 1 <= len(text) <= _SLACK_CODE_MAX and set(text) <= _SLACK_CODE_CHARS:
        return text
    return None


# -- PagerDuty ---------------------------------------------------------------------------


async def _send_pagerduty(
    send: ChannelSend, settings: EscalatorSettings, environ: Mapping[str, str]
) -> DeliveryReceipt:
    name = send.channel
    _expect_kind(send, "pagerduty")
    _, key = _from_environment(send, "routing_key_env", environ)
    try:
        if send.event == "trigger":
            link = case_link(send.case_id, settings)
            body = trigger_event(_notification(send), routing_key=key, case_link=link)
        elif send.event == "acknowledge":
            body = acknowledge_event(send.case_id, key)
        elif send.event == "resolve":
            body = resolve_event(send.case_id, key)
        else:
            raise _permanent(
                f"{name}: {send.event!r} is not a PagerDuty event; "
                "a PagerDuty channel takes trigger, acknowledge or resolve"
            )
    except ValueError as error:
        # A routing key with spaces, a case id that cannot key an alert: the builders'
        # messages never quote the key, and the mask below is belt and braces.
        raise _permanent(_mask(f"{name}: {_one_line(error)}", key)) from None

    response = await post_json(
        name,
        send.settings.url or PAGERDUTY_EVENTS_URL,
        _json(body),
        {"Content-Type": "application/json", "User-Agent": "escalator"},
        settings.webhook,
        shown="the PagerDuty events endpoint",
        hide=(key,),
    )
    status = response.status_code
    if 200 <= status < 300:
        return _sent(send, "pagerduty", f"{name}: {send.event} accepted ({status})")

    reason = _pagerduty_reason(response, key)
    detail = f"{name}: PagerDuty answered {status}{f': {reason}' if reason else ''}"
    if status in (408, 429) or status >= 500:
        raise _transient(detail, retry_after=_retry_after(response))
    raise _permanent(detail)


def _pagerduty_reason(response: httpx.Response, key: str) -> str:
    """PagerDuty's `message` and `errors` on one short line, the routing key masked.

    Its refusals say which field is wrong ("Event object is invalid: 'payload.summary'
    is missing"), which is what an operator needs; the rest of the body is not quoted."""
    try:
        answer = response.json()
    except ValueError:
        return ""
    if not isinstance(answer, dict):
        return ""
    parts: list[str] = []
    message = answer.get("message")
    if isinstance(message, str):
        parts.append(message)
    errors = answer.get("errors")
    if isinstance(errors, list):
        parts += [e for e in errors if isinstance(e, str)]
    text = _mask(header_safe(": ".join(p for p in parts if p.strip())), key)
    if len(text) > PAGERDUTY_REASON_CHARS:
        text = text[: PAGERDUTY_REASON_CHARS - 1].rstrip() + "…"
    return text


def _mask(text: str, key: str) -> str:
    return text.replace(key, "***") if key else text


# -- generic webhook ----------------------------------------------------------------------


async def _post_channel_webhook(
    send: ChannelSend, settings: EscalatorSettings, environ: Mapping[str, str]
) -> DeliveryReceipt:
    name = send.channel
    _expect_kind(send, "webhook")
    notification = _notification(send)
    if send.settings.url is not None:
        url, shown, hide = send.settings.url, "the channel's webhook", ()
    else:
        variable, url = _from_environment(send, "url_env", environ)
        # A URL kept in a variable may carry a token in its path or query.
        shown, hide = f"the webhook in {variable}", secret_parts(url)
    status = await deliver_webhook(
        notification,
        url,
        settings.webhook,
        what=name,
        shown=shown,
        hide=hide,
        idempotency_key=send.message_id,
    )
    return _sent(send, "webhook", f"{name}: posted ({status})")


# -- case links ---------------------------------------------------------------------------

# Warned about once per worker process: the same bad setting would warn on every send.
_warned_links: set[tuple[str, str]] = set()


def case_link(case_id: str, settings: EscalatorSettings) -> str | None:
    """The case's page for a Slack message or a PagerDuty alert, or None when the
    configured address does not make a usable link (warned about once)."""
    links = settings.links
    if links.api_url:
        # The live queue has no per-case view (escalator/api/static/queue.js reads no
        # fragment or query), so the link opens the queue.
        variable, url = "ESCALATOR_API_URL", f"{links.api_url.rstrip('/')}/queue"
    else:
        namespace = (
            activity.info().workflow_namespace
            if activity.in_activity()
            else settings.temporal.namespace
        )
        workflow = quote(workflow_id_for(case_id), safe="")
        where = f"namespaces/{quote(namespace, safe='')}/workflows/{workflow}"
        variable, url = "ESCALATOR_WEB_UI", f"{links.web_ui.rstrip('/')}/{where}"
    try:
        return checked_case_link(url)
    except ValueError as error:
        _warn_link_once(variable, error)
        return None


def _warn_link_once(where: str, error: ValueError) -> None:
    reason = _one_line(error)  # the builders never repeat the URL
    if (where, reason) in _warned_links or not activity.in_activity():
        return
    _warned_links.add((where, reason))
    activity.logger.warning(
        "channel messages go without a case link: %s: %s; fix it and restart the worker",
        where,
        reason,
    )


# -- shared -------------------------------------------------------------------------------


def _expect_kind(send: ChannelSend, kind: str) -> None:
    if send.settings.kind != kind:
        # A caller's mistake (the workflow picks the activity by kind): never better later.
        raise _permanent(
            f"{send.channel}: is a {send.settings.kind} channel, not a {kind} one; "
            "send it with its own activity"
        )


def _notification(send: ChannelSend) -> Notification:
    if send.notification is None:
        raise _permanent(f"{send.channel}: a {send.event} needs the notification, and none came")
    return send.notification


def _from_environment(send: ChannelSend, field: str, environ: Mapping[str, str]) -> tuple[str, str]:
    """(the variable's name, its value) for the channel's `field` (url_env or
    routing_key_env). Unset or empty is permanent: retrying for a day would not set
    it, and the timeline says what to do."""
    variable = getattr(send.settings, field)
    if not variable:
        raise _permanent(
            f"{send.channel}: the {send.settings.kind} channel names no {field}; "
            "add it to the policy's channel"
        )
    if reserved_env_name(variable) or variable in EscalatorSettings.env_names():
        # The policy refuses these too, but a case's input can come from any client:
        # a channel never reads the worker's own credentials (escalator/domain/policy.py).
        raise _permanent(
            f"{send.channel}: {variable} is one of Escalator's own settings, which a "
            "channel may not read; give the channel a variable of its own"
        )
    value = (environ.get(variable) or "").strip()
    if not value:
        raise _permanent(
            f"{send.channel}: {variable} is not set in the worker's environment; "
            "set it and restart the worker"
        )
    return variable, value


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _sent(send: ChannelSend, kind: str, detail: str) -> DeliveryReceipt:
    # The channel, the event and the case: never the URL or the key.
    activity.logger.info(
        "sent %s %s for case %s: %s", send.channel, send.event, send.case_id, detail
    )
    return DeliveryReceipt(
        message_id=send.message_id,
        channel=kind,  # type: ignore[arg-type]
        accepted=(send.channel,),
        detail=detail,
    )
