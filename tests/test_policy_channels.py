"""A policy's `channels`: the Slack, PagerDuty and webhook destinations tiers and
severity overrides refer to by name (escalator/domain/policy.py, docs/channels.md).

Two doors, the same rules: a YAML file (`load_policy`, whose errors say file:line:col)
and `Policy.model_validate` (the Python API, and the JSON a raw Temporal client
sends). Every refusal is one line naming the field; a refusal about a secret never
repeats the value. The snapshot a case keeps holds only names, and the snapshots of
cases started before channels existed still validate.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from ruamel.yaml import YAML

from escalator.adapters.policy_files import load_policy, parse_policy_text
from escalator.domain.errors import PolicyError, describe_validation_error
from escalator.domain.policy import Channel, Policy

ROOT = Path(__file__).resolve().parent.parent

VALID = """\
escalation:
  name: chat
  channels:
    slack_oncall:
      kind: slack
      url_env: SLACK_ONCALL_URL
    pagerduty:
      kind: pagerduty
      routing_key_env: PAGERDUTY_ROUTING_KEY
    pd-proxy:
      kind: pagerduty
      routing_key_env: PD_PROXY_KEY
      url: https://pd-proxy.example/v2/enqueue
    hook:
      kind: webhook
      url_env: HOOK_URL
    audit:
      kind: webhook
      url: https://audit.example/escalator
  tiers:
    - level: 1
      name: Desk
      team: desk
      notify: [desk@example.com]
      channels: [hook, audit]
      sla: {first_response: 4h, resolution_target: 24h}
    - level: 2
      name: Engineering
      team: eng
      channels: [slack_oncall, pagerduty]
  severity_overrides:
    - {severity: P0, route_to: 2, notification: pagerduty}
    - {severity: P1, route_to: 2, notification: pd-proxy}
    - {severity: P2, route_to: 1, notification: slack_oncall}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def document(text: str) -> dict:
    """The mapping under `escalation:`, as a Python caller would pass it."""
    return YAML(typ="safe", pure=True).load(text)["escalation"]


def at(text: str, needle: str, line: int) -> str:
    """`line:column` (both from 1) of `needle` on line `line` of `text`."""
    row = text.splitlines()[line - 1]
    assert needle in row, f"{needle!r} is not on line {line}: {row!r}"
    return f"{line}:{row.index(needle) + 1}"


def refusal_from_file(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as refused:
        load_policy(path)
    message = str(refused.value)
    assert "\n" not in message, message
    assert message.startswith(f"{path}:"), message
    return message.removeprefix(f"{path}:")


def refusal_from_python(text: str) -> str:
    with pytest.raises(ValidationError) as refused:
        Policy.model_validate(document(text))
    message = describe_validation_error(refused.value)
    assert "\n" not in message, message
    return message


# -- a valid policy ------------------------------------------------------------------


def test_a_policy_with_every_kind_of_channel(tmp_path):
    policy = load_policy(write(tmp_path, VALID))
    assert policy == Policy.model_validate(document(VALID))  # the same from Python
    assert policy.channels["slack_oncall"] == Channel(kind="slack", url_env="SLACK_ONCALL_URL")
    assert policy.channels["pagerduty"].routing_key_env == "PAGERDUTY_ROUTING_KEY"
    assert policy.channels["pagerduty"].url is None  # PagerDuty's own endpoint
    assert policy.channels["pd-proxy"].url == "https://pd-proxy.example/v2/enqueue"
    assert policy.channels["hook"].url_env == "HOOK_URL"
    assert policy.channels["audit"].url == "https://audit.example/escalator"


def test_channels_for_is_the_tiers_then_the_overrides_each_once(tmp_path):
    policy = load_policy(write(tmp_path, VALID))
    assert policy.channels_for(1, "P3") == ("hook", "audit")  # no override for P3
    assert policy.channels_for(2, "P3") == ("slack_oncall", "pagerduty")
    assert policy.channels_for(1, "P0") == ("hook", "audit", "pagerduty")  # e.g. de-escalated
    assert policy.channels_for(2, "P0") == ("slack_oncall", "pagerduty")  # not twice
    assert policy.channels_for(2, "P1") == ("slack_oncall", "pagerduty", "pd-proxy")
    assert policy.channels_for(1, "P2") == ("hook", "audit", "slack_oncall")


# -- refusals: one line, the right node, the field named -------------------------------

# Each row: (id, policy text, the message after "escalation." and "line:column: ",
# the text on the line the error must point at, and that line's number).
TIER_CHANNELS = """\
escalation:
  channels:
    pagerduty: {kind: pagerduty, routing_key_env: PAGERDUTY_ROUTING_KEY}
    slack_oncall: {kind: slack, url_env: SLACK_ONCALL_URL}
  tiers:
    - {level: 1, name: A, team: a, sla: {first_response: 1h, resolution_target: 2h}}
    - {level: 2, name: B, team: b, channels: [slack_oncall, pagerdutty]}
"""


def one_channel(channel: str) -> str:
    """A one-tier policy whose only channel, `c`, is written as `channel`."""
    return (
        "escalation:\n"
        "  channels:\n"
        f"    c: {channel}\n"
        "  tiers:\n"
        "    - {level: 1, name: A, team: a, channels: [c]}\n"
    )


SLACK_URL = "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/cccccccccccccccccccccccc"
ROUTING_KEY = "e93facc04764012d7bfb002500d5d1a6"

REFUSALS = [
    ("unknown-in-a-tier", TIER_CHANNELS,
     "tiers: tier 2 (B): channels[1]: 'pagerdutty' is not one of the policy's channels "
     "(channels: pagerduty, slack_oncall)",
     "pagerdutty", 7),
    ("unknown-in-an-override",
     TIER_CHANNELS.replace("pagerdutty", "pagerduty")
     + "  severity_overrides:\n    - {severity: P0, route_to: 2, notification: pager}\n",
     "severity_overrides[0].notification: 'pager' is not one of the policy's channels "
     "(channels: pagerduty, slack_oncall)",
     "pager}", 9),
    ("a-tier-channel-with-no-channels-section",
     "escalation:\n  tiers:\n    - {level: 1, name: A, team: a, channels: [slack]}\n",
     "tiers: tier 1 (A): channels[0]: 'slack' is not one of the policy's channels "
     "(channels: none: add a channels section)",
     "slack]", 3),
    ("inline-slack-url", one_channel(f"{{kind: slack, url: '{SLACK_URL}'}}"),
     "channels.c: url: a Slack incoming-webhook URL is a secret, so it never goes in a "
     "policy; put it in an environment variable on the worker and name that with url_env",
     "'https://hooks", 3),
    ("inline-routing-key", one_channel(f"{{kind: pagerduty, routing_key: {ROUTING_KEY}}}"),
     "channels.c: routing_key: a PagerDuty routing key is a secret, so it never goes in a "
     "policy; put it in an environment variable on the worker and name that with "
     "routing_key_env",
     ROUTING_KEY, 3),
    ("routing-key-in-routing_key_env",
     one_channel(f"{{kind: pagerduty, routing_key_env: {ROUTING_KEY}}}"),
     "channels.c.routing_key_env: must name an environment variable (upper-case letters, "
     "digits and _, e.g. SLACK_ONCALL_URL), not hold the secret; set the variable on the worker",
     ROUTING_KEY, 3),
    ("slack-url-in-url_env", one_channel(f"{{kind: slack, url_env: '{SLACK_URL}'}}"),
     "channels.c.url_env: must name an environment variable (upper-case letters, digits "
     "and _, e.g. SLACK_ONCALL_URL), not hold the secret; set the variable on the worker",
     "'https://hooks", 3),
    ("slack-with-routing_key_env",
     one_channel("{kind: slack, url_env: SLACK_URL, routing_key_env: PD_KEY}"),
     "channels.c: a slack channel does not take routing_key_env; it takes url_env",
     "PD_KEY", 3),
    ("slack-without-url_env", one_channel("{kind: slack}"),
     "channels.c: url_env: a slack channel needs it, naming the environment variable that "
     "holds its URL",
     "{kind", 3),
    ("pagerduty-without-routing_key_env", one_channel("{kind: pagerduty}"),
     "channels.c: routing_key_env: a pagerduty channel needs it, naming the environment "
     "variable that holds its routing key",
     "{kind", 3),
    ("bad-channel-name",
     "escalation:\n  channels:\n    Slack On-Call: {kind: slack, url_env: SLACK_URL}\n"
     "  tiers:\n    - {level: 1, name: A, team: a}\n",
     "channels.Slack On-Call: 'Slack On-Call' is not a channel name: use lower-case "
     "letters, digits, _ and -, starting with a letter (at most 40), e.g. slack_oncall",
     "Slack On-Call:", 3),
    ("webhook-with-url-and-url_env",
     one_channel("{kind: webhook, url_env: HOOK_URL, url: https://hooks.example/x}"),
     "channels.c: url: a webhook channel needs exactly one of url and url_env",
     "https://hooks.example", 3),
    ("webhook-with-neither", one_channel("{kind: webhook}"),
     "channels.c: url: a webhook channel needs exactly one of url and url_env",
     "{kind", 3),
    ("unknown-kind", one_channel("{kind: teams, url_env: TEAMS_URL}"),
     "channels.c.kind: Input should be 'slack', 'pagerduty' or 'webhook'",
     "teams", 3),
    ("pagerduty-url-not-http", one_channel("{kind: pagerduty, routing_key_env: K, url: events}"),
     "channels.c.url: 'events' is not an http(s) URL: write it as https://host/path (or http://)",
     "events", 3),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected", "needle", "line"),
    [pytest.param(*rest, id=name) for name, *rest in REFUSALS],
)
def test_a_refusal_from_a_file_points_at_the_node(tmp_path, text, expected, needle, line):
    assert refusal_from_file(tmp_path, text) == f"{at(text, needle, line)}: escalation.{expected}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [pytest.param(text, expected, id=name) for name, text, expected, *_ in REFUSALS],
)
def test_the_same_refusal_from_python(text, expected):
    assert refusal_from_python(text) == expected


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        pytest.param(one_channel(f"{{kind: slack, url: '{SLACK_URL}'}}"), SLACK_URL, id="slack-url"),
        pytest.param(one_channel(f"{{kind: pagerduty, routing_key: {ROUTING_KEY}}}"), ROUTING_KEY,
                     id="routing_key"),
        pytest.param(one_channel(f"{{kind: pagerduty, routing_key_env: {ROUTING_KEY}}}"), ROUTING_KEY,
                     id="key-in-routing_key_env"),
        pytest.param(one_channel(f"{{kind: slack, url_env: '{SLACK_URL}'}}"), SLACK_URL,
                     id="url-in-url_env"),
    ],
)  # fmt: skip
def test_a_refused_secret_is_never_repeated(tmp_path, text, secret):
    # Error lines end up in terminals, CI logs and workflow failures.
    for message in (refusal_from_file(tmp_path, text), refusal_from_python(text)):
        assert secret not in message
        assert secret[:12] not in message and secret[-12:] not in message


# -- a policy without channels: `notification` is a label, as before -------------------


def test_a_policy_without_channels_keeps_notification_as_a_label(tmp_path):
    text = """\
escalation:
  tiers:
    - {level: 1, name: A, team: a, notify: [a@example.com], sla: {first_response: 1h, resolution_target: 2h}}
    - {level: 2, name: B, team: b, notify: [b@example.com]}
  severity_overrides:
    - {severity: P0, route_to: 2, notification: pagerduty}
"""
    policy = load_policy(write(tmp_path, text))
    assert policy.channels == {}
    assert policy.override_for("P0").notification == "pagerduty"
    assert policy.channels_for(2, "P0") == ()  # a label sends nothing
    assert Policy.model_validate(document(text)) == policy


# -- the snapshot a case keeps ---------------------------------------------------------


def test_the_snapshot_holds_only_names(tmp_path):
    snapshot = load_policy(write(tmp_path, VALID)).model_dump(mode="json")
    settings = {
        name: {key: value for key, value in channel.items() if value is not None}
        for name, channel in snapshot["channels"].items()
    }
    assert settings == {
        "slack_oncall": {"kind": "slack", "url_env": "SLACK_ONCALL_URL"},
        "pagerduty": {"kind": "pagerduty", "routing_key_env": "PAGERDUTY_ROUTING_KEY"},
        "pd-proxy": {"kind": "pagerduty", "routing_key_env": "PD_PROXY_KEY",
                     "url": "https://pd-proxy.example/v2/enqueue"},
        "hook": {"kind": "webhook", "url_env": "HOOK_URL"},
        "audit": {"kind": "webhook", "url": "https://audit.example/escalator"},
    }  # fmt: skip
    assert [tier["channels"] for tier in snapshot["tiers"]] == [
        ["hook", "audit"],
        ["slack_oncall", "pagerduty"],
    ]
    assert [o["notification"] for o in snapshot["severity_overrides"]] == [
        "pagerduty",
        "pd-proxy",
        "slack_oncall",
    ]


def test_the_snapshot_round_trips(tmp_path):
    # A Slack channel's snapshot writes `url: null`, which is no inline URL.
    policy = load_policy(write(tmp_path, VALID))
    assert Policy.model_validate(policy.model_dump(mode="json")) == policy
    assert Policy.model_validate_json(policy.model_dump_json()) == policy


def recorded_policy(name: str) -> dict:
    """The policy snapshot in a recorded history's start event (tests/histories)."""
    history = json.loads((ROOT / "tests" / "histories" / name).read_text(encoding="utf-8"))
    started = history["events"][0]["workflowExecutionStartedEventAttributes"]
    payload = started["input"]["payloads"][0]
    return json.loads(base64.b64decode(payload["data"]))["policy"]


def test_a_snapshot_from_before_channels_validates():
    # Recorded before channels existed: no `channels` key anywhere, and severity
    # overrides whose `notification` is a label (pagerduty, slack_oncall, ...).
    snapshot = recorded_policy("ai_stage.before-policy-version.json")
    assert "channels" not in snapshot
    assert all("channels" not in tier for tier in snapshot["tiers"])
    policy = Policy.model_validate(snapshot)
    assert policy.channels == {}
    assert [o.notification for o in policy.severity_overrides] == [
        "pagerduty",
        "slack_oncall",
        "slack_channel",
    ]
    assert policy.channels_for(3, "P0") == ()


# -- the shipped policies --------------------------------------------------------------


@pytest.mark.parametrize("name", ["default.yaml", "demo.yaml"])
def test_the_legacy_shipped_policies_still_load(name):
    policy = load_policy(ROOT / "policies" / name)
    assert policy.channels == {}
    assert policy.override_for("P0").notification == "pagerduty"  # a label


def test_the_chat_and_pager_example():
    policy = load_policy(ROOT / "policies" / "chat-and-pager.yaml")
    default = load_policy(ROOT / "policies" / "default.yaml")
    # The default policy's tiers, with channels added.
    assert [t.model_copy(update={"channels": ()}) for t in policy.tiers] == list(default.tiers)
    assert {name: c.kind for name, c in policy.channels.items()} == {
        "slack_specialists": "slack",
        "slack_oncall": "slack",
        "pagerduty": "pagerduty",
    }
    assert policy.channels_for(1, "P3") == ()
    assert policy.channels_for(2, "P3") == ("slack_specialists",)
    assert policy.channels_for(3, "P3") == ("pagerduty", "slack_oncall")
    assert policy.channels_for(2, "P0") == ("slack_specialists", "pagerduty")
    assert policy.channels_for(1, "P1") == ("slack_oncall",)


def test_a_policy_as_text_reads_the_same_as_a_file(tmp_path):
    text = (ROOT / "policies" / "chat-and-pager.yaml").read_text(encoding="utf-8")
    assert parse_policy_text(text) == load_policy(ROOT / "policies" / "chat-and-pager.yaml")


def test_the_readme_channel_examples_load():
    # README.md, "Policy reference": the examples must stay valid policies.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Policy reference", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("```", 1)[0] for b in section.split("```yaml\n")[1:]]
    with_channels = [b for b in blocks if "channels:" in b]
    assert len(with_channels) >= 3
    for block in with_channels:
        assert parse_policy_text(block).channels
