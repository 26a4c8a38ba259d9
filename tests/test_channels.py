"""Slack and PagerDuty channels end to end: real cases on the Temporal dev server,
the real channel activities, and local stand-ins of Slack's incoming webhook and
PagerDuty's /v2/enqueue on loopback that check every request's exact shape
(tests/channel_standins.py). The secrets reach the worker only through its
environment, and the test reads the history through the Temporal API to prove
they never entered it."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid

import pytest
from support import (
    DEFAULT_POLICY,
    RecordingNotifier,
    actor,
    case_workers,
    eventually,
    seconds_policy,
)

from activities.channels import ChannelActivities
from escalator.adapters.settings import EscalatorSettings, WebhookSettings
from escalator.domain.models import CaseInput
from escalator.domain.names import CHANNEL_ACTIVITIES
from escalator.domain.policy import Policy
from starter import EscalatorClient

pytestmark = pytest.mark.integration

TITLE = "<!channel> hi & <http://x|y>"
ESCAPED = "&lt;!channel&gt; hi &amp; &lt;http://x|y&gt;"


def paging_policy(pagerduty_url: str, **channels) -> Policy:
    """The default policy; P0 cases start at L3, which is on Slack and pages."""
    data = DEFAULT_POLICY.model_dump(mode="json")
    data["channels"] = {
        "slack_oncall": {"kind": "slack", "url_env": "SLACK_ONCALL_URL"},
        "pagerduty": {
            "kind": "pagerduty",
            "routing_key_env": "PAGERDUTY_ROUTING_KEY",
            "url": pagerduty_url,  # the stand-in, in place of events.pagerduty.com
        },
        **channels,
    }
    data["tiers"][2]["channels"] = ["slack_oncall"]
    data["severity_overrides"] = [{"severity": "P0", "route_to": 3, "notification": "pagerduty"}]
    return Policy.model_validate(data)


def case_activities(environ: dict[str, str]) -> list:
    """Recorded mail and the real ledger (tests/support.py), and the real channel
    activities reading the channels' secrets from `environ`."""
    recorded = [
        fn
        for fn in RecordingNotifier().activities
        if fn.__temporal_activity_definition.name not in CHANNEL_ACTIVITIES.values()
    ]
    # Loopback stand-ins are private destinations: allowed here, as an operator would.
    settings = EscalatorSettings.defaults(webhook=WebhookSettings(allow_private=True))
    channels = ChannelActivities(settings, environ=environ)
    return [*recorded, channels.post_slack_message, channels.send_pagerduty_event]


def history_with_payloads(history) -> str:
    """The history as JSON, with every payload's data decoded from base64 and
    appended: the Temporal API returns payloads encoded, so a plain search of the
    JSON would find nothing either way."""
    text = history.to_json()
    decoded: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("data"), str) and "metadata" in node:
                decoded.append(base64.b64decode(node["data"]).decode("utf-8", "replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(text))
    return "\n".join([text, *decoded])


async def timeline(escalator: EscalatorClient, case_id: str) -> list:
    return list((await escalator.status(case_id)).timeline)


async def test_a_p0_case_pages_once_is_acknowledged_and_resolved_and_no_secret_leaks(
    dev_env, slack_standin, pagerduty_standin, caplog
):
    slack, pager = slack_standin, pagerduty_standin
    caplog.set_level(logging.DEBUG)
    queue = f"channels-{uuid.uuid4().hex[:8]}"
    case_id = f"page-{uuid.uuid4().hex[:8]}"
    environ = {"SLACK_ONCALL_URL": slack.url, "PAGERDUTY_ROUTING_KEY": pager.routing_key}
    escalator = EscalatorClient(dev_env.client, queue)
    slack.answer_next(429, "rate_limited", retry_after=1)  # Slack's rate limit, once
    async with case_workers(dev_env.client, queue, case_activities(environ)):
        case = CaseInput(
            case_id=case_id, title=TITLE, severity="P0", policy=paging_policy(pager.url)
        )
        await escalator.start_case(case)
        await eventually(lambda: len(pager.events) == 1 and len(slack.messages) == 1, within=30)
        await escalator.claim(case_id, actor("dave"))
        await eventually(lambda: len(pager.events) == 2, within=30)
        await escalator.resolve(case_id, actor("dave"), "rolled back")
        handle = dev_env.client.get_workflow_handle(f"case-{case_id}")
        await handle.result()
        entries = await timeline(escalator, case_id)
        history = await handle.fetch_history()

    # PagerDuty: one trigger, one acknowledge, one resolve, all keyed by the case.
    assert [e["event_action"] for e in pager.events] == ["trigger", "acknowledge", "resolve"]
    assert {e["dedup_key"] for e in pager.events} == {case_id}
    trigger = pager.events[0]["payload"]
    assert (trigger["source"], trigger["severity"]) == ("escalator", "critical")
    assert trigger["custom_details"]["tier"] == "L3 Engineering"

    # Slack: the 429 was honoured and retried, and exactly one message arrived.
    assert slack.attempts == 2 and len(slack.messages) == 1
    message = slack.messages[0]
    body = str(message)
    assert ESCAPED in body and "<!channel>" not in body and "<http://x|y>" not in body

    # The timeline says what went where, by channel name.
    sent = [e.detail for e in entries if e.kind == "notification_sent"]
    assert any(d.startswith("slack slack_oncall notify") for d in sent), sent
    assert sum(d.startswith("pagerduty pagerduty") for d in sent) == 3, sent
    assert not [e for e in entries if e.kind == "notification_failed"]

    # The secrets: Slack's URL (its path is the secret) and the routing key appear
    # in no history event, no timeline entry and no log line.
    secret_path = slack.url.split("/services/", 1)[1]
    history_text = history_with_payloads(history)
    timeline_text = " ".join(e.detail for e in entries)
    for secret in (secret_path, pager.routing_key):
        assert secret not in history_text
        assert secret not in timeline_text
        assert secret not in caplog.text
    assert "SLACK_ONCALL_URL" in history_text  # the snapshot names the variables


async def test_a_missing_variable_fails_the_send_for_good_and_leaves_the_case_alone(
    dev_env, slack_standin, pagerduty_standin
):
    slack, pager = slack_standin, pagerduty_standin
    queue = f"channels-{uuid.uuid4().hex[:8]}"
    case_id = f"unset-{uuid.uuid4().hex[:8]}"
    # The worker has the Slack URL, but nobody set the routing key.
    environ = {"SLACK_ONCALL_URL": slack.url}
    escalator = EscalatorClient(dev_env.client, queue)
    async with case_workers(dev_env.client, queue, case_activities(environ)):
        case = CaseInput(case_id=case_id, title="disk full", severity="P0",
                         policy=paging_policy(pager.url))  # fmt: skip
        await escalator.start_case(case)

        async def failed():
            entries = await timeline(escalator, case_id)
            return [e.detail for e in entries if e.kind == "notification_failed"] or None

        [failure] = await eventually(failed, within=30)
        # The case is unaffected: claimed and resolved as usual.
        await escalator.claim(case_id, actor("dave"))
        await escalator.resolve(case_id, actor("dave"), "freed space")
        handle = dev_env.client.get_workflow_handle(f"case-{case_id}")
        await handle.result()
        status = await escalator.status(case_id)
        entries = list(status.timeline)

    assert failure.startswith("send_pagerduty_event pagerduty trigger ")
    assert "PAGERDUTY_ROUTING_KEY is not set" in failure and "\n" not in failure
    assert status.state == "resolved"
    # The acknowledge and the resolve failed the same way; nothing reached PagerDuty,
    # and Slack still had its message.
    failures = [e.detail for e in entries if e.kind == "notification_failed"]
    assert len(failures) == 3 and pager.events == []
    assert len(slack.messages) == 1


async def test_a_slack_outage_never_delays_the_case(dev_env, slack_standin):
    """Slack answers 503 to every try; the case still breaches and escalates on time,
    and the post keeps retrying in the background."""
    slack = slack_standin
    slack.answer_next(503, "service_unavailable", times=1000)
    queue = f"channels-{uuid.uuid4().hex[:8]}"
    case_id = f"outage-{uuid.uuid4().hex[:8]}"
    data = seconds_policy(first_response=2, resolution=30).model_dump(mode="json")
    data["channels"] = {"slack_l1": {"kind": "slack", "url_env": "SLACK_L1_URL"}}
    data["tiers"][0]["channels"] = ["slack_l1"]
    escalator = EscalatorClient(dev_env.client, queue)
    async with case_workers(dev_env.client, queue, case_activities({"SLACK_L1_URL": slack.url})):
        started = time.monotonic()
        await escalator.start_case(
            CaseInput(case_id=case_id, title="VPN down", policy=Policy.model_validate(data))
        )

        async def at_l2():
            return (await escalator.status(case_id)).tier_level == 2 or None

        await eventually(at_l2, within=30)
        escalated_after = time.monotonic() - started
        await escalator.claim(case_id, actor("bob"))
        await escalator.resolve(case_id, actor("bob"), "restarted the gateway")
        entries = await timeline(escalator, case_id)
        await dev_env.client.get_workflow_handle(f"case-{case_id}").terminate("test over")

    # On time: the 2 s first response, plus the round trips of a busy machine.
    assert escalated_after < 2 + 5, escalated_after
    assert slack.attempts >= 2 and slack.messages == []  # still retrying, not given up
    assert [e.kind for e in entries].count("escalated") == 1


async def test_a_page_still_retrying_is_acknowledged_and_resolved_only_after_it_lands(
    dev_env, slack_standin, pagerduty_standin
):
    """PagerDuty refuses the trigger twice (503) while the case is claimed and
    resolved at once: the acknowledge and the resolve wait their turn, so the alert
    is resolved last and never outlives the case."""
    slack, pager = slack_standin, pagerduty_standin
    pager.answer_next(503, "", retry_after=1, times=2)
    queue = f"channels-{uuid.uuid4().hex[:8]}"
    case_id = f"order-{uuid.uuid4().hex[:8]}"
    environ = {"SLACK_ONCALL_URL": slack.url, "PAGERDUTY_ROUTING_KEY": pager.routing_key}
    escalator = EscalatorClient(dev_env.client, queue)
    async with case_workers(dev_env.client, queue, case_activities(environ)):
        policy = paging_policy(pager.url)
        await escalator.start_case(
            CaseInput(case_id=case_id, title="db down", severity="P0", policy=policy)
        )
        await eventually(lambda: pager.attempts >= 1, within=30)  # the first refusal
        await escalator.claim(case_id, actor("dave"))
        await escalator.resolve(case_id, actor("dave"), "failed over")
        await dev_env.client.get_workflow_handle(f"case-{case_id}").result()

    assert pager.attempts == 2 + 3
    assert [e["event_action"] for e in pager.events] == ["trigger", "acknowledge", "resolve"]
