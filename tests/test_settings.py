"""EscalatorSettings: one model, read from the environment once, given to the activities."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from pathlib import Path

import pytest
from support import MailSink
from temporalio.service import TLSConfig
from temporalio.testing import ActivityEnvironment

from activities import activities_for
from activities.assessment import AssessmentActivities
from activities.notifications import NotificationActivities
from escalator.adapters.settings import (
    AiSettings,
    EscalatorSettings,
    LinkSettings,
    SmtpSettings,
    TemporalSettings,
    WebhookSettings,
    WorkerSettings,
)
from escalator.adapters.temporal_client import connect
from escalator.domain.assessment import AssessmentRequest
from escalator.domain.errors import InvalidInput
from escalator.domain.models import CaseBrief, Notification, TierRef
from escalator.runtime.worker import build_workers, options_from_settings

SECRETS = {
    "SMTP_PASSWORD": "smtp-pass-5e3c7a",
    "ANTHROPIC_API_KEY": "sk-ant-test-9f2b4d1e",
    "TEMPORAL_API_KEY": "tmprl-key-7c1d0e55",
    "ESCALATOR_WEBHOOK_SECRET": "whsec-4e8a1f0c9b7d2a63",
}


@pytest.fixture
def no_config_file(tmp_path) -> dict[str, str]:
    """An environment whose Temporal client config file is empty, so a developer's
    ~/.config/temporalio/temporal.toml cannot change what these tests see."""
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    return {"TEMPORAL_CONFIG_FILE": str(empty)}


@pytest.fixture
def clean_environ(monkeypatch, no_config_file):
    """os.environ without any variable the settings read."""
    for name in (*EscalatorSettings.env_names(), "TEMPORAL_PROFILE", "TEMPORAL_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in os.environ if n.startswith("TEMPORAL_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", no_config_file["TEMPORAL_CONFIG_FILE"])


# -- defaults and overrides ------------------------------------------------------------


def test_defaults_need_no_configuration(no_config_file):
    settings = EscalatorSettings.from_env(no_config_file)

    temporal = settings.temporal
    assert (temporal.address, temporal.namespace, temporal.task_queue) == (
        "localhost:7233",
        "default",
        "escalations",
    )
    assert temporal.api_key is None and temporal.tls is False and temporal.connect_tls() is False
    assert settings.smtp == SmtpSettings()
    assert (settings.smtp.host, settings.smtp.port) == ("127.0.0.1", 1025)
    assert settings.ai.offline and settings.ai.api_key is None
    assert settings.ai.model == "claude-sonnet-5-5" and settings.ai.timeout == 60.0
    assert settings.worker == WorkerSettings(
        max_cached_workflows=800,
        ai_concurrency=200,
        graceful_shutdown_timeout=timedelta(seconds=30),
        sticky_timeout=timedelta(seconds=10),
        workflow_sandbox=False,
    )
    # Webhooks: unsigned, and to public addresses only.
    assert settings.webhook == WebhookSettings(secret=None, allow_private=False)
    # The built-in defaults, without reading anything.
    assert EscalatorSettings.defaults() == settings


def test_the_drain_default_is_one_delivery_attempt():
    from workflows.escalation import DELIVERY_ATTEMPT_TIMEOUT

    assert WorkerSettings().graceful_shutdown_timeout == DELIVERY_ATTEMPT_TIMEOUT


def test_every_variable_overrides_its_default(monkeypatch, clean_environ):
    values = {
        "TEMPORAL_ADDRESS": "temporal.example.com:7233",
        "TEMPORAL_NAMESPACE": "support",
        "ESCALATOR_TASK_QUEUE": "escalations-eu",
        "TEMPORAL_API_KEY": SECRETS["TEMPORAL_API_KEY"],
        "SMTP_HOST": "smtp.example.com",
        "SMTP_PORT": "587",
        "SMTP_USERNAME": "bot",
        "SMTP_PASSWORD": SECRETS["SMTP_PASSWORD"],
        "SMTP_STARTTLS": "yes",
        "MAIL_FROM": "Help Desk <help@example.com>",
        "ANTHROPIC_API_KEY": SECRETS["ANTHROPIC_API_KEY"],
        "ANTHROPIC_BASE_URL": "https://llm-proxy.example.com",
        "ESCALATOR_AI_MODEL": "claude-haiku-4-5",
        "ESCALATOR_AI_TIMEOUT": " 12.5 ",
        "ESCALATOR_MAX_CACHED_WORKFLOWS": "300",
        "ESCALATOR_AI_CONCURRENCY": "50",
        "ESCALATOR_GRACEFUL_SHUTDOWN_TIMEOUT": "0",
        "ESCALATOR_STICKY_TIMEOUT": "3",
        "ESCALATOR_WORKFLOW_SANDBOX": "ON",
        "ESCALATOR_METRICS_ADDRESS": " 0.0.0.0:9100 ",
        "ESCALATOR_LEDGER_URL": "postgresql://ledger:pw@db.example.com/escalator_ledger",
        "ESCALATOR_WEBHOOK_SECRET": SECRETS["ESCALATOR_WEBHOOK_SECRET"],
        "ESCALATOR_WEBHOOK_ALLOW_PRIVATE": "Yes",
        "ESCALATOR_WEB_UI": "https://temporal-ui.example.com",
        "ESCALATOR_API_URL": "https://escalator.example.com",
    }
    assert set(values) == set(EscalatorSettings.env_names()) - {"TEMPORAL_TLS"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)

    # EscalatorSettings() reads os.environ; from_env(mapping) reads only the mapping.
    for settings in (EscalatorSettings(), EscalatorSettings.from_env(dict(os.environ))):
        t, smtp, ai, worker = settings.temporal, settings.smtp, settings.ai, settings.worker
        assert (t.address, t.namespace, t.task_queue) == (
            "temporal.example.com:7233",
            "support",
            "escalations-eu",
        )
        assert t.api_key.get_secret_value() == SECRETS["TEMPORAL_API_KEY"]
        assert t.tls is True  # an API key implies TLS, as before
        assert (smtp.host, smtp.port, smtp.username, smtp.starttls) == (
            "smtp.example.com",
            587,
            "bot",
            True,
        )
        assert smtp.password.get_secret_value() == SECRETS["SMTP_PASSWORD"]
        assert smtp.mail_from == "Help Desk <help@example.com>"
        assert ai.api_key.get_secret_value() == SECRETS["ANTHROPIC_API_KEY"] and not ai.offline
        assert (ai.base_url, ai.model, ai.timeout) == (
            "https://llm-proxy.example.com",
            "claude-haiku-4-5",
            12.5,
        )
        assert worker == WorkerSettings(
            max_cached_workflows=300,
            ai_concurrency=50,
            graceful_shutdown_timeout=timedelta(0),
            sticky_timeout=timedelta(seconds=3),
            workflow_sandbox=True,
            metrics_address="0.0.0.0:9100",
        )
        assert settings.ledger.url.get_secret_value() == values["ESCALATOR_LEDGER_URL"]
        assert "pw" not in repr(settings.ledger)
        webhook = settings.webhook
        assert webhook.secret.get_secret_value() == SECRETS["ESCALATOR_WEBHOOK_SECRET"]
        assert webhook.allow_private is True
        assert settings.links == LinkSettings(
            web_ui="https://temporal-ui.example.com", api_url="https://escalator.example.com"
        )
        options = options_from_settings(settings)
        assert "workflow_runner" not in options  # sandboxed
        assert options["sticky_queue_schedule_to_start_timeout"] == timedelta(seconds=3)


def test_empty_values_count_as_unset(no_config_file):
    blank = {name: "" for name in EscalatorSettings.env_names()}
    assert EscalatorSettings.from_env({**blank, **no_config_file}) == EscalatorSettings.defaults()
    spaces = {name: "  " for name in EscalatorSettings.env_names() if name != "SMTP_PASSWORD"}
    assert EscalatorSettings.from_env({**spaces, **no_config_file}) == EscalatorSettings.defaults()


def test_temporal_tls_keeps_its_meaning(no_config_file):
    def tls(**env: str) -> bool:
        return TemporalSettings.from_env({**no_config_file, **env}).tls

    assert tls(TEMPORAL_TLS="true") and tls(TEMPORAL_TLS="1") and tls(TEMPORAL_TLS="ON")
    assert not tls(TEMPORAL_TLS="maybe") and not tls(TEMPORAL_TLS="false") and not tls()
    assert tls(TEMPORAL_API_KEY="k", TEMPORAL_TLS="false")  # a key implies TLS


def test_the_cli_can_override_the_temporal_group(no_config_file):
    # escalator/cli/main.py rebuilds the group with --address/--namespace this way.
    settings = TemporalSettings.from_env({**no_config_file, "TEMPORAL_API_KEY": "k"})
    copy = TemporalSettings(**{**settings.__dict__, "address": "other:7233"})
    assert copy.address == "other:7233" and copy.api_key == settings.api_key and copy.tls
    # As before, the plain constructor gives the defaults, never the environment.
    assert TemporalSettings(address="a:1").task_queue == "escalations"


# -- bad values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SMTP_PORT", "smtp", "is not a port number"),
        ("SMTP_PORT", "70000", "from 1 to 65535"),
        ("MAIL_FROM", "nobody", "is not a sender address"),
        ("ESCALATOR_AI_TIMEOUT", "soon", "must be a positive number of seconds"),
        ("ESCALATOR_AI_TIMEOUT", "-5", "must be a positive number of seconds"),
        ("ESCALATOR_AI_TIMEOUT", "nan", "must be a positive number of seconds"),
        ("ESCALATOR_MAX_CACHED_WORKFLOWS", "lots", "must be a whole number of at least 1"),
        ("ESCALATOR_AI_CONCURRENCY", "0", "must be a whole number of at least 1"),
        ("ESCALATOR_GRACEFUL_SHUTDOWN_TIMEOUT", "inf", "seconds from 0 to 3600"),
        ("ESCALATOR_STICKY_TIMEOUT", "10s", "more than 0 and at most 3600"),
        ("ESCALATOR_WORKFLOW_SANDBOX", "maybe", "must be on or off"),
        ("ESCALATOR_METRICS_ADDRESS", "localhost:9464", "must be host:port with an IP address"),
        ("ESCALATOR_METRICS_ADDRESS", "127.0.0.1:0", "must be host:port with an IP address"),
        ("ESCALATOR_METRICS_ADDRESS", "::1:9464", "must be host:port with an IP address"),
        ("ESCALATOR_METRICS_ADDRESS", "9464/metrics", "must be host:port with an IP address"),
        ("ESCALATOR_WEBHOOK_ALLOW_PRIVATE", "maybe", "must be true or false"),
    ],
)
def test_a_bad_value_is_a_one_line_error_naming_the_variable(
    variable, value, message, monkeypatch, clean_environ, no_config_file
):
    with pytest.raises(InvalidInput) as from_mapping:
        EscalatorSettings.from_env({**no_config_file, variable: value})
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidInput) as from_environ:
        EscalatorSettings()
    for error in (from_mapping.value, from_environ.value):
        text = str(error)
        assert text.startswith(variable) and message in text, text
        assert repr(value) in text and "\n" not in text


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("9464", "127.0.0.1:9464"),  # a bare port is on loopback
        (":9464", "127.0.0.1:9464"),
        ("127.0.0.1:9464", "127.0.0.1:9464"),
        ("0.0.0.0:80", "0.0.0.0:80"),
        ("[::1]:09464", "[::1]:9464"),
    ],
)
def test_metrics_are_off_by_default_and_on_loopback_unless_told(value, address, no_config_file):
    assert EscalatorSettings.from_env(no_config_file).worker.metrics_address is None
    env = {**no_config_file, "ESCALATOR_METRICS_ADDRESS": value}
    assert EscalatorSettings.from_env(env).worker.metrics_address == address


def test_a_bad_value_given_in_code_is_refused_too():
    with pytest.raises(ValueError, match=r"SMTP_PORT: 0 is not a port number"):
        SmtpSettings(port=0)
    with pytest.raises(ValueError, match="ESCALATOR_STICKY_TIMEOUT"):
        WorkerSettings(sticky_timeout=timedelta(0))


# -- secrets ---------------------------------------------------------------------------------


def test_secrets_never_show(no_config_file):
    settings = EscalatorSettings.from_env({**no_config_file, **SECRETS})
    shown = [
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        str(settings.model_dump()),
        repr(settings.temporal),
        repr(settings.smtp),
        str(settings.smtp),
        repr(settings.ai),
        repr(settings.webhook),
        repr(NotificationActivities(settings)),
        repr(AssessmentActivities(settings)),
    ]
    for text in shown:
        for secret in SECRETS.values():
            assert secret not in text, text
    assert "password='***'" in repr(settings.smtp) and "api_key='***'" in repr(settings.ai)
    # Where a secret is really used, it is one call away.
    assert settings.smtp.password.get_secret_value() == SECRETS["SMTP_PASSWORD"]


def test_a_short_webhook_secret_is_refused_without_echoing_it(no_config_file):
    with pytest.raises(InvalidInput) as caught:
        EscalatorSettings.from_env({**no_config_file, "ESCALATOR_WEBHOOK_SECRET": "tooshort"})
    text = str(caught.value)
    assert text.startswith("ESCALATOR_WEBHOOK_SECRET is 8 characters; use at least 16")
    assert "tooshort" not in text and "\n" not in text


def test_an_error_never_echoes_a_secret(no_config_file):
    # A secret is never validated against a pattern, so no error message carries it.
    env = {**no_config_file, **SECRETS, "SMTP_PORT": "bad"}
    with pytest.raises(InvalidInput) as caught:
        EscalatorSettings.from_env(env)
    assert all(secret not in str(caught.value) for secret in SECRETS.values())


# -- temporalio.envconfig -------------------------------------------------------------------

PROFILES = """
[profile.default]
address = "file-default:7233"
namespace = "from-file"

[profile.cloud]
address = "acme.tmprl.cloud:7233"
namespace = "acme.support"
api_key = "{api_key}"

[profile.cloud.grpc_meta]
x-team = "support"

[profile.mtls]
address = "mtls.example.com:7233"
namespace = "secure"

[profile.mtls.tls]
server_name = "temporal.internal"
client_cert_path = "{cert}"
client_key_path = "{key}"
"""


@pytest.fixture
def config_file(tmp_path) -> Path:
    (tmp_path / "client.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\ncert\n")
    (tmp_path / "client.key").write_bytes(b"-----BEGIN PRIVATE KEY-----\nkey\n")
    path = tmp_path / "temporal.toml"
    path.write_text(
        PROFILES.format(
            api_key=SECRETS["TEMPORAL_API_KEY"],
            cert=tmp_path / "client.pem",
            key=tmp_path / "client.key",
        )
    )
    return path


def test_the_default_profile_of_the_config_file_is_used(config_file):
    settings = TemporalSettings.from_env({"TEMPORAL_CONFIG_FILE": str(config_file)})
    assert (settings.address, settings.namespace) == ("file-default:7233", "from-file")
    assert settings.task_queue == "escalations" and settings.tls is False


def test_a_named_profile_brings_its_api_key_and_metadata(config_file):
    env = {"TEMPORAL_CONFIG_FILE": str(config_file), "TEMPORAL_PROFILE": "cloud"}
    settings = TemporalSettings.from_env(env)
    assert (settings.address, settings.namespace) == ("acme.tmprl.cloud:7233", "acme.support")
    assert settings.api_key.get_secret_value() == SECRETS["TEMPORAL_API_KEY"]
    assert settings.tls is True and settings.connect_tls() is True
    assert settings.rpc_metadata == {"x-team": "support"}
    assert settings.profile == "cloud"
    assert SECRETS["TEMPORAL_API_KEY"] not in repr(settings) + settings.model_dump_json()


def test_a_profile_with_client_certificates_gives_mtls(config_file):
    env = {"TEMPORAL_CONFIG_FILE": str(config_file), "TEMPORAL_PROFILE": "mtls"}
    tls = TemporalSettings.from_env(env).connect_tls()
    assert isinstance(tls, TLSConfig)
    assert tls.domain == "temporal.internal"
    assert tls.client_cert.startswith(b"-----BEGIN CERTIFICATE-----")
    assert tls.client_private_key.startswith(b"-----BEGIN PRIVATE KEY-----")


def test_our_variables_win_over_the_file(config_file):
    env = {
        "TEMPORAL_CONFIG_FILE": str(config_file),
        "TEMPORAL_PROFILE": "cloud",
        "TEMPORAL_ADDRESS": "override:7233",
        "TEMPORAL_NAMESPACE": "override-ns",
        "ESCALATOR_TASK_QUEUE": "q",
    }
    settings = EscalatorSettings.from_env(env).temporal
    assert (settings.address, settings.namespace, settings.task_queue) == (
        "override:7233",
        "override-ns",
        "q",
    )
    assert settings.api_key.get_secret_value() == SECRETS["TEMPORAL_API_KEY"]


def test_the_sdks_own_tls_variables_work(no_config_file, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\nca\n")
    env = {
        **no_config_file,
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(ca),
        "TEMPORAL_TLS_SERVER_NAME": "sni.example.com",
    }
    settings = TemporalSettings.from_env(env)
    tls = settings.connect_tls()
    assert settings.tls and isinstance(tls, TLSConfig)
    assert (tls.domain, tls.server_root_ca_cert) == ("sni.example.com", ca.read_bytes())


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TEMPORAL_CONFIG_FILE": "/nonexistent/temporal.toml"}, "TEMPORAL_CONFIG_FILE: "),
        ({"TEMPORAL_PROFILE": "nope"}, "Profile 'nope' not found"),
    ],
)
def test_a_bad_config_file_or_profile_is_a_one_line_error(config_file, env, message):
    with pytest.raises(InvalidInput) as caught:
        TemporalSettings.from_env({"TEMPORAL_CONFIG_FILE": str(config_file), **env})
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_malformed_config_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[profile.default\naddress = ")
    with pytest.raises(InvalidInput) as caught:
        TemporalSettings.from_env({"TEMPORAL_CONFIG_FILE": str(path)})
    text = str(caught.value)
    assert text.startswith("Temporal client config: ") and "\n" not in text
    assert str(path) in text


async def test_connect_follows_the_profile(dev_env, tmp_path):
    target = dev_env.client.service_client.config.target_host
    path = tmp_path / "temporal.toml"
    path.write_text(f'[profile.local]\naddress = "{target}"\nnamespace = "default"\n')
    env = {"TEMPORAL_CONFIG_FILE": str(path), "TEMPORAL_PROFILE": "local"}
    client = await connect(TemporalSettings.from_env(env))
    assert client.service_client.config.target_host == target
    assert await client.service_client.check_health()


# -- activities and workers built from one settings object ---------------------------------


def notification() -> Notification:
    from datetime import UTC, datetime

    return Notification(
        message_id="<settings.1.tier_entry@escalator>",
        purpose="tier_entry",
        recipients=("l1@example.com",),
        case=CaseBrief(
            case_id="settings-1",
            title="VPN down",
            severity="P2",
            account="acme",
            description_excerpt="",
            customer_name=None,
        ),
        tier=TierRef(level=1, name="Service Desk", team="helpdesk"),
        occurred_at=datetime(2024, 5, 1, 12, tzinfo=UTC),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.loopback
async def test_notification_activities_use_their_settings_not_the_environment(monkeypatch):
    sink = MailSink().start()
    # The environment points elsewhere (nothing listens there) and says something invalid.
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(free_port()))
    monkeypatch.setenv("MAIL_FROM", "not an address")
    smtp = SmtpSettings(host="127.0.0.1", port=sink.port, mail_from="Desk <desk@example.com>")
    try:
        activities = NotificationActivities(EscalatorSettings.defaults(smtp=smtp))
        receipt = await ActivityEnvironment().run(activities.send_email, notification())
    finally:
        sink.stop()
    assert receipt.accepted == ("l1@example.com",)
    [message] = sink.messages
    assert message["From"] == "Desk <desk@example.com>"
    assert message["X-Envelope-To"] == "l1@example.com"


def assessment_request() -> AssessmentRequest:
    return AssessmentRequest(
        case_id="settings-ai",
        title="Outlook fails to sync",
        severity="P2",
        account="acme",
        description="Sync stops at 0%.",
        tier=TierRef(level=2, name="Application Support", team="apps"),
    )


async def test_assessment_activities_use_their_key_not_the_environment(
    anthropic_standin, monkeypatch
):
    # The environment has no key (offline); the settings have one and the stand-in's URL.
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("ESCALATOR_AI_MODEL", "from-the-environment")
    ai = AiSettings(api_key=SECRETS["ANTHROPIC_API_KEY"], base_url=anthropic_standin.url, timeout=5)
    activities = AssessmentActivities(EscalatorSettings.defaults(ai=ai))
    result = await ActivityEnvironment().run(activities.assess_case, assessment_request())
    assert result.source == "model"
    [sent] = anthropic_standin.requests
    assert sent.api_key == SECRETS["ANTHROPIC_API_KEY"]
    assert sent.body["model"] == ai.model != "from-the-environment"


async def test_assessment_activities_without_a_key_stay_offline(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "a-key-in-the-environment")
    activities = AssessmentActivities(EscalatorSettings.defaults())
    result = await ActivityEnvironment().run(activities.assess_case, assessment_request())
    assert result.source == "offline"


async def test_build_workers_registers_activities_built_from_the_settings(dev_env):
    settings = EscalatorSettings.defaults(smtp=SmtpSettings(host="mail.example.com"))
    case_worker, ai_worker = build_workers(dev_env.client, "settings-build", settings=settings)
    registered = [*case_worker.config()["activities"], *ai_worker.config()["activities"]]
    assert sorted(a.__name__ for a in registered) == [
        "assess_case",
        "draft_for_audience",
        "post_channel_webhook",
        "post_slack_message",
        "post_webhook",
        "record_to_ledger",
        "send_email",
        "send_monthly_review",
        "send_pagerduty_event",
    ]
    assert all(a.__self__.settings is settings for a in registered)
    assert [a.__name__ for a in activities_for(settings)] == [
        "send_email",
        "post_webhook",
        "assess_case",
        "draft_for_audience",
        "record_to_ledger",
        "post_slack_message",
        "send_pagerduty_event",
        "post_channel_webhook",
    ]


# -- case links (activities/channels.py) -----------------------------------------------


def test_case_links_default_to_the_dev_servers_web_ui(no_config_file):
    from activities.channels import case_link

    settings = EscalatorSettings.from_env(no_config_file)
    assert settings.links == LinkSettings(web_ui="http://localhost:8233", api_url=None)
    assert (
        case_link("c 1/2", settings)
        == "http://localhost:8233/namespaces/default/workflows/case-c%201%2F2"
    )
    api = EscalatorSettings.from_env({**no_config_file, "ESCALATOR_API_URL": "https://e.example/"})
    assert case_link("c-1", api) == "https://e.example/queue"


def test_a_bad_case_link_setting_costs_the_link_not_the_start(no_config_file):
    from activities.channels import case_link

    settings = EscalatorSettings.from_env({**no_config_file, "ESCALATOR_WEB_UI": "not a url"})
    assert settings.links.web_ui == "not a url"  # loads: the worker still starts
    assert case_link("c-1", settings) is None
