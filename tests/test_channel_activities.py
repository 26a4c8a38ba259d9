"""The channel activities (activities/channels.py) against HTTP stand-ins for Slack and
PagerDuty on loopback (tests/channel_standins.py), which check every request's shape
and answer as the services do. The activities run in Temporal's ActivityEnvironment,
so an ApplicationError comes out exactly as the workflow's retry policy sees it.

What is checked: the bodies on the wire (Slack's Block Kit message with case text
escaped, PagerDuty's trigger, acknowledge and resolve with the case id as dedup_key,
the signed generic webhook), how each answer is classified (429 with Retry-After,
5xx, 4xx with the service's reason), the one-line errors for a variable not set and
a refused destination, and that the Slack URL's secret path and the routing key show
up in no error, no log record and no receipt.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from channel_standins import PagerDutyStandIn, SlackStandIn, WebhookStandIn
from support import EngineCase, actor
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import activities
from activities import channels
from activities.channels import ChannelActivities
from escalator.adapters.settings import EscalatorSettings, LinkSettings, WebhookSettings
from escalator.domain import case as engine
from escalator.domain import webhook_signature
from escalator.domain.models import ChannelSend, EscalateRequest, Notification
from escalator.domain.names import PERMANENT_DELIVERY_ERROR
from escalator.domain.notification_text import webhook_payload
from escalator.domain.pagerduty_event import trigger_event
from escalator.domain.policy import Channel
from escalator.domain.slack_message import slack_payload

# Loopback servers, no Temporal: the module is in the loopback lane (tests/conftest.py).
pytestmark = pytest.mark.loopback

EVIL = "<!channel> hi & <http://x|y>"
EVIL_ESCAPED = "&lt;!channel&gt; hi &amp; &lt;http://x|y&gt;"
SECRET = "s3cret-signing-key-0123456789"
SLACK = Channel(kind="slack", url_env="SLACK_ONCALL_URL")
PAGERDUTY = Channel(kind="pagerduty", routing_key_env="PD_ROUTING_KEY")
WEBHOOK_ENV = Channel(kind="webhook", url_env="OPS_WEBHOOK_URL")
LINK = "http://localhost:8233/namespaces/default/workflows/case-c-1"


def tier_entry(title: str = "Printer on fire") -> Notification:
    """The engine's first notification of a new case (c-1, P3, L1)."""
    return [n for n in EngineCase(title=title).sent() if n.purpose == "tier_entry"][-1]


def escalated(title: str = EVIL) -> Notification:
    """A hand-over to L2, with an escalation note holding Slack markup."""
    case = EngineCase(title=title)
    note = {"reason": f"why: {EVIL}", "steps_taken": [f"tried {EVIL}"], "symptoms": [EVIL]}
    case.do(engine.escalate, EscalateRequest(actor=actor("bob <!here>"), note=note))
    return [n for n in case.sent() if n.purpose == "tier_entry"][-1]


def channel_send(
    settings: Channel,
    name: str,
    *,
    event: str = "notify",
    notification: Notification | None = None,
    case_id: str = "c-1",
) -> ChannelSend:
    if notification is None and event in ("notify", "trigger"):
        notification = tier_entry()
    return ChannelSend(
        message_id=f"{case_id}.{event}.{name}",
        channel=name,
        settings=settings,
        event=event,
        case_id=case_id,
        notification=notification,
    )


def allowing(**webhook: Any) -> EscalatorSettings:
    """Settings that allow the loopback stand-ins (ESCALATOR_WEBHOOK_ALLOW_PRIVATE=true)."""
    return EscalatorSettings.defaults(webhook=WebhookSettings(allow_private=True, **webhook))


async def run(activity_fn, send: ChannelSend):
    return await ActivityEnvironment().run(activity_fn, send)


async def run_failing(activity_fn, send: ChannelSend) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await run(activity_fn, send)
    return caught.value


def assert_permanent(error: ApplicationError, starts: str) -> None:
    assert error.type == PERMANENT_DELIVERY_ERROR and error.non_retryable, error
    assert error.message.startswith(starts), error.message
    assert "\n" not in error.message


def assert_transient(error: ApplicationError, starts: str) -> None:
    assert error.type == "TransientDeliveryError" and not error.non_retryable, error
    assert error.message.startswith(starts), error.message


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """Loopback servers must never be reached through a proxy from the environment."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for name in ("SLACK_ONCALL_URL", "PD_ROUTING_KEY", "OPS_WEBHOOK_URL", "ESCALATOR_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ESCALATOR_WEB_UI", raising=False)
    monkeypatch.delenv("ESCALATOR_WEBHOOK_SECRET", raising=False)
    # The bad-link warning is once per process; each test starts with none given.
    monkeypatch.setattr(channels, "_warned_links", set())


# -- Slack --------------------------------------------------------------------------------


async def test_a_slack_message_is_the_block_kit_body_slack_accepts(slack_standin):
    notification = tier_entry()
    acts = ChannelActivities(allowing(), {"SLACK_ONCALL_URL": slack_standin.url})

    receipt = await run(acts.post_slack_message, channel_send(SLACK, "slack_oncall"))

    assert receipt.channel == "slack"
    assert receipt.message_id == "c-1.notify.slack_oncall"
    assert receipt.accepted == ("slack_oncall",)
    assert receipt.detail == "slack_oncall: posted (200)"
    assert slack_standin.rejected == []
    [message] = slack_standin.messages
    # The case link is the case's workflow in the Temporal Web UI (the default).
    assert message == json.loads(json.dumps(slack_payload(notification, case_link=LINK)))
    [request] = slack_standin.requests
    assert request["headers"]["Content-Type"].startswith("application/json")


async def test_case_text_arrives_escaped_in_the_slack_body(slack_standin):
    acts = ChannelActivities(allowing(), {"SLACK_ONCALL_URL": slack_standin.url})
    send = channel_send(SLACK, "slack_oncall", notification=escalated(EVIL))

    await run(acts.post_slack_message, send)

    [message] = slack_standin.messages
    assert EVIL_ESCAPED in message["blocks"][0]["text"]["text"]
    assert EVIL_ESCAPED in message["text"]
    [request] = slack_standin.requests
    raw = request["body"].decode()
    for markup in ("<!channel>", "<!here>", "<http://x|y>"):
        assert markup not in raw
    # The one link is the case's own, which the activity wrote.
    assert f"<{LINK}|Open case c-1>" in raw


async def test_a_429_is_retried_after_slacks_retry_after_and_posts_once(slack_standin):
    slack_standin.answer_next(429, "rate_limited", retry_after=1)
    acts = ChannelActivities(allowing(), {"SLACK_ONCALL_URL": slack_standin.url})
    send = channel_send(SLACK, "slack_oncall")

    error = await run_failing(acts.post_slack_message, send)
    assert_transient(error, "slack_oncall: Slack answered 429 rate_limited")
    assert error.next_retry_delay == timedelta(seconds=1)
    await run(acts.post_slack_message, send)

    assert len(slack_standin.messages) == 1
    assert slack_standin.attempts == 2


@pytest.mark.parametrize("status", [408, 500, 503])
async def test_slack_server_errors_are_transient(slack_standin, status):
    slack_standin.answer_next(status, "oops")
    acts = ChannelActivities(allowing(), {"SLACK_ONCALL_URL": slack_standin.url})

    error = await run_failing(acts.post_slack_message, channel_send(SLACK, "slack_oncall"))

    assert_transient(error, f"slack_oncall: Slack answered {status}")
    assert error.next_retry_delay is None


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (403, "invalid_token"),
        (404, "no_service"),
        (410, "channel_is_archived"),
        (400, "invalid_payload"),
    ],
)
async def test_slack_refusals_are_permanent_with_slacks_error_code(slack_standin, status, code):
    slack_standin.answer_next(status, code)
    acts = ChannelActivities(allowing(), {"SLACK_ONCALL_URL": slack_standin.url})

    error = await run_failing(acts.post_slack_message, channel_send(SLACK, "slack_oncall"))

    assert_permanent(error, f"slack_oncall: Slack answered {status} {code}")


async def test_a_removed_webhook_is_slacks_own_404_no_service(slack_standin):
    # Not scripted: the stand-in answers a path that is not the webhook's as Slack does.
    wrong = slack_standin.url.rsplit("/", 1)[0] + "/not-the-secret"
    acts = ChannelActivities(allowing(), {"SLACK_ONCALL_URL": wrong})

    error = await run_failing(acts.post_slack_message, channel_send(SLACK, "slack_oncall"))

    assert_permanent(error, "slack_oncall: Slack answered 404 no_service")
    assert "update SLACK_ONCALL_URL" in error.message
    assert "not-the-secret" not in error.message


async def test_a_slack_answer_that_is_no_error_code_is_not_quoted(slack_standin):
    slack_standin.answer_next(400, "<html>Bad Request: case c-1 Printer on fire</html>")
    acts = ChannelActivities(allowing(), {"SLACK_ONCALL_URL": slack_standin.url})

    error = await run_failing(acts.post_slack_message, channel_send(SLACK, "slack_oncall"))

    assert error.message == "slack_oncall: Slack answered 400"


@pytest.mark.parametrize("environ", [{}, {"SLACK_ONCALL_URL": "  "}])
async def test_a_slack_url_not_set_is_one_permanent_line_naming_the_variable(environ):
    acts = ChannelActivities(allowing(), environ)

    error = await run_failing(acts.post_slack_message, channel_send(SLACK, "slack_oncall"))

    assert_permanent(error, "slack_oncall:")
    assert error.message == (
        "slack_oncall: SLACK_ONCALL_URL is not set in the worker's environment; "
        "set it and restart the worker"
    )


async def test_a_loopback_slack_url_is_refused_unless_allowed(slack_standin):
    refusing = ChannelActivities(
        EscalatorSettings.defaults(), {"SLACK_ONCALL_URL": slack_standin.url}
    )

    error = await run_failing(refusing.post_slack_message, channel_send(SLACK, "slack_oncall"))

    assert_permanent(error, "slack_oncall: refused the Slack webhook in SLACK_ONCALL_URL")
    assert "loopback" in error.message and "ESCALATOR_WEBHOOK_ALLOW_PRIVATE=true" in error.message
    assert slack_standin.attempts == 0  # refused before any connection


async def test_the_case_link_goes_to_the_api_queue_when_its_url_is_set(slack_standin):
    settings = EscalatorSettings.defaults(
        webhook=WebhookSettings(allow_private=True),
        links=LinkSettings(api_url="https://escalator.example.com/"),
    )
    acts = ChannelActivities(settings, {"SLACK_ONCALL_URL": slack_standin.url})

    await run(acts.post_slack_message, channel_send(SLACK, "slack_oncall"))

    [request] = slack_standin.requests
    assert "<https://escalator.example.com/queue|Open case c-1>" in request["body"].decode()


async def test_a_bad_case_link_setting_costs_the_link_not_the_message(slack_standin, caplog):
    settings = EscalatorSettings.defaults(
        webhook=WebhookSettings(allow_private=True),
        links=LinkSettings(web_ui="javascript:alert(1)//"),
    )
    acts = ChannelActivities(settings, {"SLACK_ONCALL_URL": slack_standin.url})
    caplog.set_level(logging.WARNING)

    for _ in range(2):
        await run(acts.post_slack_message, channel_send(SLACK, "slack_oncall"))

    assert len(slack_standin.messages) == 2
    assert all("Open case" not in json.dumps(m) for m in slack_standin.messages)
    warnings = [r for r in caplog.records if "without a case link" in r.getMessage()]
    assert len(warnings) == 1  # once, not on every send
    assert "ESCALATOR_WEB_UI" in warnings[0].getMessage()
    assert "javascript" not in warnings[0].getMessage()


async def test_a_channel_of_another_kind_is_a_permanent_mistake(slack_standin):
    acts = ChannelActivities(allowing(), {"PD_ROUTING_KEY": "k" * 32})

    error = await run_failing(acts.post_slack_message, channel_send(PAGERDUTY, "pagerduty"))

    assert_permanent(error, "pagerduty: is a pagerduty channel, not a slack one")


# -- the stand-ins check what they are sent ------------------------------------------------


def test_the_slack_standin_refuses_what_slack_refuses(slack_standin):
    good = slack_payload(tier_entry(), case_link=None)
    bad = [
        {"blocks": good["blocks"]},  # no text
        {**good, "color": "red"},  # not an incoming-webhook field
        {**good, "blocks": [{"type": "banner"}]},
        {**good, "blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}]},
        {**good, "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}]},
        {**good, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]},
        {**good, "blocks": [{"type": "divider"}] * 51},
        {
            **good,
            "blocks": [
                {"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11},
            ],
        },
    ]
    with httpx.Client() as client:
        assert client.post(slack_standin.url, json=good).text == "ok"
        for body in bad:
            answer = client.post(slack_standin.url, json=body)
            assert (answer.status_code, answer.text) == (400, "invalid_payload"), body
        answer = client.post(slack_standin.url, content=b"text=hi")
        assert answer.status_code == 400
    assert len(slack_standin.messages) == 1
    assert len(slack_standin.rejected) == len(bad) + 1


def test_the_pagerduty_standin_refuses_what_pagerduty_refuses(pagerduty_standin):
    key = pagerduty_standin.routing_key
    good = trigger_event(tier_entry(), routing_key=key, case_link=None)
    bad = [
        {**good, "routing_key": "x" * 32},
        {**good, "event_action": "page"},
        {**good, "payload": {**good["payload"], "severity": "P1"}},
        {**good, "payload": {**good["payload"], "summary": "x" * 1025}},
        {**good, "extra": 1},
        {"routing_key": key, "event_action": "resolve"},  # no dedup_key
    ]
    with httpx.Client() as client:
        answer = client.post(pagerduty_standin.url, json=good)
        assert answer.status_code == 202
        assert answer.json() == {
            "status": "success",
            "message": "Event processed",
            "dedup_key": "c-1",
        }
        for body in bad:
            answer = client.post(pagerduty_standin.url, json=body)
            assert answer.status_code == 400, body
            assert answer.json()["message"] == "Event object is invalid"
    assert len(pagerduty_standin.events) == 1


# -- PagerDuty --------------------------------------------------------------------------


def pd_acts(standin: PagerDutyStandIn, settings: EscalatorSettings | None = None):
    channel = Channel(kind="pagerduty", routing_key_env="PD_ROUTING_KEY", url=standin.url)
    environ = {"PD_ROUTING_KEY": standin.routing_key}
    return ChannelActivities(settings or allowing(), environ), channel


async def test_trigger_acknowledge_and_resolve_reach_one_alert_keyed_by_the_case(
    pagerduty_standin,
):
    acts, channel = pd_acts(pagerduty_standin)
    notification = tier_entry()

    receipts = [
        await run(
            acts.send_pagerduty_event,
            channel_send(channel, "pagerduty", event=event, notification=notification),
        )
        for event in ("trigger", "acknowledge", "resolve")
    ]

    assert [r.detail for r in receipts] == [
        "pagerduty: trigger accepted (202)",
        "pagerduty: acknowledge accepted (202)",
        "pagerduty: resolve accepted (202)",
    ]
    assert {r.channel for r in receipts} == {"pagerduty"}
    assert pagerduty_standin.rejected == []
    trigger, acknowledge, resolve = pagerduty_standin.events
    key = pagerduty_standin.routing_key
    assert trigger == json.loads(
        json.dumps(trigger_event(notification, routing_key=key, case_link=LINK))
    )
    assert trigger["links"] == [{"href": LINK, "text": "Case c-1 in Escalator"}]
    assert acknowledge == {"routing_key": key, "event_action": "acknowledge", "dedup_key": "c-1"}
    assert resolve == {"routing_key": key, "event_action": "resolve", "dedup_key": "c-1"}
    assert {e["dedup_key"] for e in pagerduty_standin.events} == {"c-1"}


async def test_a_wrong_routing_key_is_permanent_with_pagerdutys_reason(pagerduty_standin):
    channel = Channel(kind="pagerduty", routing_key_env="PD_ROUTING_KEY", url=pagerduty_standin.url)
    wrong = "w" * 32
    acts = ChannelActivities(allowing(), {"PD_ROUTING_KEY": wrong})

    error = await run_failing(
        acts.send_pagerduty_event, channel_send(channel, "pagerduty", event="trigger")
    )

    assert_permanent(error, "pagerduty: PagerDuty answered 400: Event object is invalid: ")
    assert "'routing_key' is not a known integration key" in error.message
    assert wrong not in error.message


async def test_a_key_pagerduty_echoes_is_masked_and_its_reason_shortened(pagerduty_standin):
    key = pagerduty_standin.routing_key
    pagerduty_standin.answer_next(
        400,
        {
            "status": "invalid event",
            "message": f"Event object is invalid for {key}",
            "errors": ["line\none " + "x" * 1000],
        },
    )
    acts, channel = pd_acts(pagerduty_standin)
    send = channel_send(channel, "pagerduty", event="trigger")

    error = await run_failing(acts.send_pagerduty_event, send)

    assert_permanent(error, "pagerduty: PagerDuty answered 400: Event object is invalid for ***")
    assert key not in error.message
    assert len(error.message) < 400 and error.message.endswith("…")


async def test_pagerduty_throttling_is_transient_and_honours_retry_after(pagerduty_standin):
    pagerduty_standin.answer_next(429, {"status": "throttled"}, retry_after=1)
    pagerduty_standin.answer_next(503, "")
    acts, channel = pd_acts(pagerduty_standin)
    send = channel_send(channel, "pagerduty", event="resolve")

    throttled = await run_failing(acts.send_pagerduty_event, send)
    unavailable = await run_failing(acts.send_pagerduty_event, send)
    receipt = await run(acts.send_pagerduty_event, send)

    assert_transient(throttled, "pagerduty: PagerDuty answered 429")
    assert throttled.next_retry_delay == timedelta(seconds=1)
    assert_transient(unavailable, "pagerduty: PagerDuty answered 503")
    assert unavailable.next_retry_delay is None
    assert receipt.detail == "pagerduty: resolve accepted (202)"
    assert len(pagerduty_standin.events) == 1


async def test_a_routing_key_not_set_or_unusable_is_permanent(pagerduty_standin):
    channel = Channel(kind="pagerduty", routing_key_env="PD_ROUTING_KEY", url=pagerduty_standin.url)
    send = channel_send(channel, "pd_sev1", event="trigger")

    unset = await run_failing(ChannelActivities(allowing(), {}).send_pagerduty_event, send)
    spaced = "not a key with spaces"
    unusable = await run_failing(
        ChannelActivities(allowing(), {"PD_ROUTING_KEY": spaced}).send_pagerduty_event, send
    )

    assert unset.message == (
        "pd_sev1: PD_ROUTING_KEY is not set in the worker's environment; "
        "set it and restart the worker"
    )
    assert_permanent(unset, "pd_sev1:")
    assert_permanent(unusable, "pd_sev1: the PagerDuty routing key is empty or holds spaces")
    assert spaced not in unusable.message
    assert pagerduty_standin.attempts == 0


async def test_notify_is_not_a_pagerduty_event(pagerduty_standin):
    acts, channel = pd_acts(pagerduty_standin)

    error = await run_failing(acts.send_pagerduty_event, channel_send(channel, "pagerduty"))

    assert_permanent(error, "pagerduty: 'notify' is not a PagerDuty event")


async def test_a_loopback_pagerduty_endpoint_is_refused_unless_allowed(pagerduty_standin):
    acts, channel = pd_acts(pagerduty_standin, EscalatorSettings.defaults())

    error = await run_failing(
        acts.send_pagerduty_event, channel_send(channel, "pagerduty", event="trigger")
    )

    assert_permanent(error, "pagerduty: refused the PagerDuty events endpoint")
    assert pagerduty_standin.attempts == 0


# -- generic webhook channel --------------------------------------------------------------


async def test_a_webhook_channel_from_its_variable_is_signed_with_an_idempotency_key(
    webhook_standin,
):
    settings = allowing(secret=SECRET)
    acts = ChannelActivities(settings, {"OPS_WEBHOOK_URL": webhook_standin.url})
    send = channel_send(WEBHOOK_ENV, "ops_hook")

    receipt = await run(acts.post_channel_webhook, send)

    assert receipt.channel == "webhook"
    assert receipt.accepted == ("ops_hook",)
    assert receipt.detail == "ops_hook: posted (200)"
    [body] = webhook_standin.bodies
    assert body == json.loads(json.dumps(webhook_payload(send.notification)))
    [request] = webhook_standin.requests
    headers = request["headers"]
    assert headers["Idempotency-Key"] == "c-1.notify.ops_hook"
    assert webhook_signature.verify(
        SECRET.encode(), headers[webhook_signature.HEADER], request["body"], now=time.time()
    )


async def test_a_webhook_channel_with_an_inline_url_and_its_failures(webhook_standin):
    channel = Channel(kind="webhook", url=webhook_standin.url)
    webhook_standin.answer_next(503, "busy-body: case c-1", retry_after=2)
    webhook_standin.answer_next(410, "gone-body: case c-1")
    acts = ChannelActivities(allowing(), {})
    send = channel_send(channel, "ops_hook")

    busy = await run_failing(acts.post_channel_webhook, send)
    gone = await run_failing(acts.post_channel_webhook, send)

    assert_transient(busy, "ops_hook: POST the channel's webhook → 503")
    assert busy.next_retry_delay == timedelta(seconds=2)
    assert_permanent(gone, "ops_hook: POST the channel's webhook → 410")
    for error in (busy, gone):
        assert webhook_standin.secret not in error.message
        assert "body" not in error.message  # the status and reason phrase only


async def test_a_webhook_channel_variable_not_set_is_permanent():
    acts = ChannelActivities(allowing(), {})

    error = await run_failing(acts.post_channel_webhook, channel_send(WEBHOOK_ENV, "ops_hook"))

    assert error.message == (
        "ops_hook: OPS_WEBHOOK_URL is not set in the worker's environment; "
        "set it and restart the worker"
    )


# -- secrets never leave the worker -------------------------------------------------------


async def test_the_slack_path_and_the_routing_key_are_in_no_error_log_or_receipt(
    slack_standin, pagerduty_standin, webhook_standin, caplog
):
    caplog.set_level(logging.DEBUG)
    secrets = [slack_standin.secret, pagerduty_standin.routing_key, webhook_standin.secret]
    environ = {
        "SLACK_ONCALL_URL": slack_standin.url,
        "PD_ROUTING_KEY": pagerduty_standin.routing_key,
        "OPS_WEBHOOK_URL": webhook_standin.url,
    }
    pd = Channel(kind="pagerduty", routing_key_env="PD_ROUTING_KEY", url=pagerduty_standin.url)
    allowed = ChannelActivities(allowing(secret=SECRET), environ)
    refusing = ChannelActivities(EscalatorSettings.defaults(), environ)
    closed = ChannelActivities(
        allowing(), {**environ, "SLACK_ONCALL_URL": "http://127.0.0.1:9/services/T/B/closedport"}
    )
    slack = channel_send(SLACK, "slack_oncall")
    trigger = channel_send(pd, "pagerduty", event="trigger")
    hook = channel_send(WEBHOOK_ENV, "ops_hook")

    outcomes: list[object] = []
    for standin in (slack_standin, pagerduty_standin, webhook_standin):
        standin.answer_next(429, "rate_limited", retry_after=1)
        standin.answer_next(404, "no_service")
        standin.answer_next(500, "boom")
    for acts in (allowed, allowed, allowed, allowed, refusing):
        for fn, send in (
            (acts.post_slack_message, slack),
            (acts.send_pagerduty_event, trigger),
            (acts.post_channel_webhook, hook),
        ):
            try:
                outcomes.append(await run(fn, send))
            except ApplicationError as error:
                outcomes.append(error.message)
    try:
        await run(closed.post_slack_message, slack)
    except ApplicationError as error:
        outcomes.append(error.message)

    receipts = [o for o in outcomes if not isinstance(o, str)]
    assert len(receipts) == 3  # each channel got through once
    texts = [o if isinstance(o, str) else o.model_dump_json() for o in outcomes]
    texts += [record.getMessage() for record in caplog.records]
    texts += [repr(allowed), repr(slack_standin), repr(pagerduty_standin)]
    assert any("HTTP Request" in t for t in texts)  # httpx did log each request
    for secret in [*secrets, "closedport"]:
        leaks = [t for t in texts if secret in t]
        assert leaks == [], leaks
    assert any(
        t.startswith("slack_oncall: POST the Slack webhook in SLACK_ONCALL_URL failed")
        for t in texts
    )


# -- registration ---------------------------------------------------------------------------


async def test_the_plain_functions_read_the_environment_at_each_call(slack_standin, monkeypatch):
    # tests/conftest.py sets ESCALATOR_WEBHOOK_ALLOW_PRIVATE=true for loopback receivers.
    monkeypatch.setenv("ESCALATOR_WEBHOOK_ALLOW_PRIVATE", "true")
    send = channel_send(SLACK, "slack_oncall")

    unset = await run_failing(channels.post_slack_message, send)
    monkeypatch.setenv("SLACK_ONCALL_URL", slack_standin.url)
    receipt = await run(channels.post_slack_message, send)

    assert unset.message.startswith("slack_oncall: SLACK_ONCALL_URL is not set")
    assert receipt.detail == "slack_oncall: posted (200)"
    assert channels.post_slack_message in activities.ALL_ACTIVITIES


def test_the_channel_activities_run_on_the_case_queue():
    from escalator.runtime.worker import split_activities

    case, ai = split_activities(activities.activities_for(EscalatorSettings.defaults()))
    names = {fn.__temporal_activity_definition.name for fn in case}
    assert {"post_slack_message", "send_pagerduty_event", "post_channel_webhook"} <= names
    assert not names & {fn.__temporal_activity_definition.name for fn in ai}


def test_standins_keep_their_secrets_out_of_repr():
    with SlackStandIn() as slack, PagerDutyStandIn() as pd, WebhookStandIn() as hook:
        assert slack.secret not in repr(slack)
        assert pd.routing_key not in repr(pd)
        assert hook.secret not in repr(hook)


async def test_a_channel_never_reads_the_workers_own_settings(pagerduty_standin):
    # The policy refuses such a name; a hand-made input gets the same answer here,
    # before anything is read or sent.
    settings = Channel.model_construct(
        kind="pagerduty", routing_key_env="SMTP_PASSWORD", url=pagerduty_standin.url, url_env=None
    )
    send = ChannelSend.model_construct(
        message_id="m-1", channel="pd", settings=settings, event="acknowledge",
        case_id="c-1", notification=None,
    )  # fmt: skip
    acts = ChannelActivities(allowing(), {"SMTP_PASSWORD": "hunter2-hunter2-hunter2"})

    error = await run_failing(acts.send_pagerduty_event, send)

    assert_permanent(error, "pd:")
    assert "SMTP_PASSWORD is one of Escalator's own settings" in error.message
    assert "hunter2" not in error.message
    assert pagerduty_standin.attempts == 0
