"""Delivery activities against real servers on loopback: aiosmtpd for mail, and a
stdlib HTTP server for webhooks. The activities run in Temporal's ActivityEnvironment,
so an ApplicationError comes out exactly as the workflow's retry policy would see it.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import logging
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.smtp import AuthResult
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import activities
from activities import notifications
from activities.notifications import NotificationActivities, post_webhook, send_email
from escalator.adapters.settings import EscalatorSettings, WebhookSettings
from escalator.adapters.smtp_settings import SmtpSettings
from escalator.devstack.mail_catcher import SmtpSink
from escalator.devstack.processes import free_port
from escalator.domain.errors import InvalidInput
from escalator.domain.models import CaseBrief, Notification, TierRef
from escalator.domain.notification_text import webhook_payload

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PASSWORD = "hunter2-s3cret"


def make_notification(**overrides) -> Notification:
    fields = {
        "message_id": "<123.1.tier_entry@escalator>",
        "purpose": "tier_entry",
        "recipients": ("l1@example.com", "lead@example.com"),
        "case": CaseBrief(
            case_id="123",
            title="Outlook fails to sync – Zoë",
            severity="P2",
            account="acme",
            description_excerpt="Sync stops at 0%.",
            customer_name=None,
        ),
        "tier": TierRef(level=1, name="Service Desk", team="helpdesk"),
        "occurred_at": T0,
        **overrides,
    }
    return Notification(**fields)


async def run(activity_fn, notification: Notification):
    return await ActivityEnvironment().run(activity_fn, notification)


async def run_failing(activity_fn, notification: Notification) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await run(activity_fn, notification)
    return caught.value


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """Tests see only the settings they set, whatever the developer's shell exports."""
    for name in (
        "SMTP_HOST",
        "SMTP_PORT",
        "SMTP_USERNAME",
        "SMTP_PASSWORD",
        "SMTP_STARTTLS",
        "ESCALATOR_WEBHOOK_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MAIL_FROM", "Escalator <escalator@example.com>")
    # Loopback servers must never be reached through a proxy from the environment.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def test_all_activities_are_exported_under_the_workflows_names():
    from escalator.adapters.settings import EscalatorSettings
    from escalator.domain import names as n

    called = {n.SEND_EMAIL, n.POST_WEBHOOK, n.ASSESS_CASE, n.DRAFT_FOR_AUDIENCE, n.RECORD_TO_LEDGER}
    called |= set(n.CHANNEL_ACTIVITIES.values())
    functions = {fn.__temporal_activity_definition.name for fn in activities.ALL_ACTIVITIES}
    methods = activities.activities_for(EscalatorSettings.defaults())
    assert functions == called
    assert [m.__temporal_activity_definition.name for m in methods] == [
        fn.__temporal_activity_definition.name for fn in activities.ALL_ACTIVITIES
    ]


# -- SMTP settings -------------------------------------------------------------------


def test_smtp_settings_defaults_suit_a_local_mail_catcher():
    settings = SmtpSettings.from_env({})
    assert settings == SmtpSettings(
        host="127.0.0.1",
        port=1025,
        username=None,
        password=None,
        starttls=False,
        mail_from="Escalator <escalator@localhost>",
    )


def test_smtp_settings_read_every_variable():
    settings = SmtpSettings.from_env(
        {
            "SMTP_HOST": "smtp.example.com",
            "SMTP_PORT": "587",
            "SMTP_USERNAME": "bot",
            "SMTP_PASSWORD": PASSWORD,
            "SMTP_STARTTLS": "yes",
            "MAIL_FROM": "Help Desk <help@example.com>",
        }
    )
    assert (settings.host, settings.port, settings.username) == ("smtp.example.com", 587, "bot")
    assert settings.password is not None
    assert settings.password.get_secret_value() == PASSWORD
    assert settings.starttls is True
    assert settings.mail_from == "Help Desk <help@example.com>"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("TRUE", True), ("on", True), ("0", False), ("no", False), ("", False)],
)
def test_smtp_starttls_accepts_the_usual_truthy_words(raw, expected):
    assert SmtpSettings.from_env({"SMTP_STARTTLS": raw}).starttls is expected


@pytest.mark.parametrize("raw", ["smtp", "0", "70000", "25.5"])
def test_invalid_smtp_port_names_the_variable_and_the_fix(raw):
    with pytest.raises(InvalidInput) as caught:
        SmtpSettings.from_env({"SMTP_PORT": raw})
    message = str(caught.value)
    assert message.startswith("SMTP_PORT: ")
    assert "1 to 65535" in message
    assert "\n" not in message


def test_mail_from_with_a_line_break_is_refused():
    with pytest.raises(InvalidInput, match=r"^MAIL_FROM: "):
        SmtpSettings.from_env({"MAIL_FROM": "a@example.com\r\nBcc: evil@example.com"})


def test_smtp_settings_repr_masks_the_password():
    settings = SmtpSettings.from_env({"SMTP_USERNAME": "bot", "SMTP_PASSWORD": PASSWORD})
    for text in (repr(settings), str(settings), f"{settings}"):
        assert PASSWORD not in text
        assert "password='***'" in text
    assert "password=None" in repr(SmtpSettings.from_env({}))


# -- send_email ------------------------------------------------------------------------


class MailHandler(SmtpSink):
    """The shared SMTP sink: records accepted mail; refuses what a test tells it to."""

    def __init__(self, *, refuse: dict[str, str] | None = None, data_reply: str | None = None):
        super().__init__()
        self.refuse = refuse or {}
        self.data_reply = data_reply
        self.envelopes = []

    def refuse_recipient(self, address: str) -> str | None:
        return self.refuse.get(address)

    async def receive(self, envelope) -> str:
        if self.data_reply:
            return self.data_reply
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server(monkeypatch):
    """Start the sink on a free loopback port and point SMTP_* at it."""
    sinks: list[SmtpSink] = []

    def start(handler: MailHandler, **smtp_options) -> MailHandler:
        sinks.append(handler.start(**smtp_options))
        monkeypatch.setenv("SMTP_HOST", handler.host)
        monkeypatch.setenv("SMTP_PORT", str(handler.port))
        return handler

    yield start
    for sink in sinks:
        sink.stop()


async def test_send_email_delivers_the_rendered_mail(smtp_server, caplog):
    handler = MailHandler()
    smtp_server(handler)
    notification = make_notification()

    with caplog.at_level(logging.INFO):
        receipt = await run(send_email, notification)

    assert receipt.message_id == "<123.1.tier_entry@escalator>"
    assert receipt.channel == "email"
    assert receipt.accepted == ("l1@example.com", "lead@example.com")
    assert receipt.detail == "to l1@example.com, lead@example.com"

    [envelope] = handler.envelopes
    assert envelope.mail_from == "escalator@example.com"
    assert envelope.rcpt_tos == ["l1@example.com", "lead@example.com"]
    delivered = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert delivered["Message-ID"] == "<123.1.tier_entry@escalator>"
    assert delivered["X-Escalator-Case"] == "123"
    assert delivered["Subject"] == (
        "[Escalator] Case 123 · P2 · new case for L1 Service Desk: Outlook fails to sync – Zoë"
    )
    assert "Sync stops at 0%." in delivered.get_body(("plain",)).get_content()
    assert any("<123.1.tier_entry@escalator>" in r.getMessage() for r in caplog.records)


async def test_send_email_authenticates_and_never_shows_the_password(
    smtp_server, monkeypatch, caplog
):
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        # handled=False: let aiosmtpd answer a failure with its standard 535.
        return AuthResult(success=auth_data.password == PASSWORD.encode(), handled=False)

    handler = MailHandler()
    smtp_server(handler, authenticator=authenticator, auth_require_tls=False)
    monkeypatch.setenv("SMTP_USERNAME", "bot")
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)

    with caplog.at_level(logging.DEBUG):
        await run(send_email, make_notification())
    assert logins == [(b"bot", PASSWORD.encode())]
    assert len(handler.envelopes) == 1

    # A wrong password is a 535: permanent, and the message must not echo it.
    monkeypatch.setenv("SMTP_PASSWORD", "wrong-" + PASSWORD)
    with caplog.at_level(logging.DEBUG):
        error = await run_failing(send_email, make_notification())
    assert error.type == "PermanentDeliveryError"
    assert error.non_retryable
    assert "535" in error.message
    assert PASSWORD not in error.message
    assert all(PASSWORD not in record.getMessage() for record in caplog.records)


async def test_rcpt_550_for_every_recipient_is_permanent(smtp_server):
    handler = MailHandler(
        refuse={
            "l1@example.com": "550 no such user",
            "lead@example.com": "550 no such user",
        }
    )
    smtp_server(handler)

    error = await run_failing(send_email, make_notification())

    assert error.type == "PermanentDeliveryError"
    assert error.non_retryable is True
    assert "550 no such user" in error.message
    assert "l1@example.com" in error.message
    assert handler.envelopes == []


async def test_rcpt_451_is_transient(smtp_server):
    handler = MailHandler(refuse={"l1@example.com": "451 try again later"})
    smtp_server(handler)

    error = await run_failing(send_email, make_notification(recipients=("l1@example.com",)))

    assert error.type == "TransientDeliveryError"
    assert error.non_retryable is False
    assert "451 try again later" in error.message


async def test_one_temporary_refusal_among_permanent_ones_stays_retryable(smtp_server):
    # Nothing was sent, and one recipient may accept later: retry the whole mail.
    handler = MailHandler(
        refuse={"l1@example.com": "550 no such user", "lead@example.com": "452 mailbox full"}
    )
    smtp_server(handler)

    error = await run_failing(send_email, make_notification())

    assert error.type == "TransientDeliveryError"
    assert not error.non_retryable


async def test_partial_refusal_delivers_to_the_rest_and_reports_the_refused(smtp_server):
    handler = MailHandler(refuse={"lead@example.com": "550 no such user"})
    smtp_server(handler)

    receipt = await run(send_email, make_notification())

    assert receipt.accepted == ("l1@example.com",)
    assert receipt.detail == "to l1@example.com; refused lead@example.com (550 no such user)"
    [envelope] = handler.envelopes
    assert envelope.rcpt_tos == ["l1@example.com"]


@pytest.mark.parametrize(
    ("reply", "error_type", "non_retryable"),
    [
        ("554 message rejected as spam", "PermanentDeliveryError", True),
        ("452 insufficient system storage", "TransientDeliveryError", False),
    ],
)
async def test_data_reply_code_decides_retry(smtp_server, reply, error_type, non_retryable):
    smtp_server(MailHandler(data_reply=reply))

    error = await run_failing(send_email, make_notification())

    assert error.type == error_type
    assert error.non_retryable is non_retryable
    assert reply in error.message


async def test_server_down_is_transient(monkeypatch):
    port = free_port()  # nothing listens here
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(port))

    error = await run_failing(send_email, make_notification())

    assert error.type == "TransientDeliveryError"
    assert error.non_retryable is False
    assert f"127.0.0.1:{port}" in error.message


async def test_server_that_never_answers_times_out_as_transient(monkeypatch):
    monkeypatch.setattr(notifications, "SMTP_TIMEOUT_SECONDS", 0.5)
    with socket.socket() as silent:
        # The kernel completes the TCP handshake, but no greeting ever comes.
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("SMTP_PORT", str(silent.getsockname()[1]))

        started = time.monotonic()
        error = await run_failing(send_email, make_notification())

    assert time.monotonic() - started < 5
    assert error.type == "TransientDeliveryError"
    assert not error.non_retryable


@pytest.mark.parametrize(
    "recipients", [(), ("not-an-address",), ("ok@example.com", "x@example.com\r\nBcc: e@x.io")]
)
async def test_missing_or_malformed_recipients_are_permanent(smtp_server, recipients):
    handler = MailHandler()
    smtp_server(handler)

    error = await run_failing(send_email, make_notification(recipients=recipients))

    assert error.type == "PermanentDeliveryError"
    assert error.non_retryable
    assert "\n" not in error.message
    assert handler.envelopes == []


async def test_bad_smtp_port_is_a_retryable_configuration_error(monkeypatch):
    monkeypatch.setenv("SMTP_PORT", "smtp")

    error = await run_failing(send_email, make_notification())

    assert error.type == "DeliveryConfigError"
    assert not error.non_retryable
    assert "SMTP_PORT" in error.message


# -- post_webhook ------------------------------------------------------------------------


class WebhookServer:
    """A loopback HTTP server that records each POST and answers with `status`."""

    def __init__(self) -> None:
        self.status = 200
        self.reply = b'{"received": true}'
        self.reply_headers: dict[str, str] = {}
        self.delay = 0.0
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                server.requests.append({"path": self.path, "headers": self.headers, "body": body})
                time.sleep(server.delay)
                reply = server.reply
                self.send_response(server.status)
                for name, value in server.reply_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format, *args) -> None:
                pass  # keep test output quiet

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # A short poll interval keeps shutdown() (each teardown) fast.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str = "/hooks/escalator") -> str:
        return self.origin + path


@pytest.fixture
def webhook_server():
    server = WebhookServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


async def test_post_webhook_sends_the_payload_with_an_idempotency_key(webhook_server):
    notification = make_notification(webhook=webhook_server.url(), channel="pagerduty")

    receipt = await run(post_webhook, notification)

    assert receipt.channel == "webhook"
    assert receipt.message_id == "<123.1.tier_entry@escalator>"
    assert receipt.accepted == (webhook_server.origin,)
    assert receipt.detail == f"POST {webhook_server.origin} → 200"
    [request] = webhook_server.requests
    assert request["path"] == "/hooks/escalator"
    assert request["headers"]["Idempotency-Key"] == "<123.1.tier_entry@escalator>"
    assert request["headers"]["Content-Type"] == "application/json"
    body = json.loads(request["body"])
    assert body == json.loads(json.dumps(webhook_payload(notification)))
    assert body["event"] == "tier_entry"
    assert body["case"]["title"] == "Outlook fails to sync – Zoë"


async def test_retries_reuse_the_same_idempotency_key(webhook_server):
    webhook_server.status = 503
    notification = make_notification(webhook=webhook_server.url())
    await run_failing(post_webhook, notification)
    webhook_server.status = 202
    await run(post_webhook, notification)

    keys = [r["headers"]["Idempotency-Key"] for r in webhook_server.requests]
    assert keys == ["<123.1.tier_entry@escalator>"] * 2


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
async def test_server_errors_and_throttling_are_transient(webhook_server, status):
    webhook_server.status = status

    error = await run_failing(post_webhook, make_notification(webhook=webhook_server.url()))

    assert error.type == "TransientDeliveryError"
    assert error.non_retryable is False
    assert f"→ {status}" in error.message
    assert error.next_retry_delay is None


@pytest.mark.parametrize("status", [400, 401, 404, 410, 301])
async def test_client_errors_and_redirects_are_permanent(webhook_server, status):
    webhook_server.status = status
    webhook_server.reply_headers = {"Location": "/elsewhere"} if status == 301 else {}

    error = await run_failing(post_webhook, make_notification(webhook=webhook_server.url()))

    assert error.type == "PermanentDeliveryError"
    assert error.non_retryable is True
    assert f"→ {status}" in error.message
    assert len(webhook_server.requests) == 1  # the redirect was not followed


async def test_retry_after_is_passed_on_but_capped(webhook_server):
    webhook_server.status = 429
    webhook_server.reply_headers = {"Retry-After": "7"}
    notification = make_notification(webhook=webhook_server.url())

    error = await run_failing(post_webhook, notification)
    assert error.next_retry_delay == timedelta(seconds=7)

    webhook_server.reply_headers = {"Retry-After": "86400"}
    error = await run_failing(post_webhook, notification)
    assert error.next_retry_delay == notifications.MAX_RETRY_AFTER


async def test_webhook_errors_never_show_the_path_or_query(webhook_server):
    webhook_server.status = 404
    url = webhook_server.url("/hooks/T0KEN-abc123?key=s3cret")

    error = await run_failing(post_webhook, make_notification(webhook=url))

    assert webhook_server.origin in error.message
    assert "T0KEN" not in error.message
    assert "s3cret" not in error.message


async def test_no_log_line_shows_the_path_or_query(webhook_server, caplog):
    # httpx logs each request's URL at INFO; a tier's URL often carries a token.
    caplog.set_level(logging.DEBUG)
    url = webhook_server.url("/hooks/T0KEN-abc123?key=s3cret")

    await run(post_webhook, make_notification(webhook=url))

    assert "HTTP Request: POST" in caplog.text  # httpx did log the request
    assert "T0KEN" not in caplog.text
    assert "s3cret" not in caplog.text


async def test_webhook_server_down_is_transient():
    url = f"http://127.0.0.1:{free_port()}/hook"

    error = await run_failing(post_webhook, make_notification(webhook=url))

    assert error.type == "TransientDeliveryError"
    assert not error.non_retryable
    assert "ConnectError" in error.message


async def test_slow_webhook_times_out_as_transient(webhook_server, monkeypatch):
    monkeypatch.setattr(notifications, "WEBHOOK_TIMEOUT_SECONDS", 0.3)
    webhook_server.delay = 1.0

    error = await run_failing(post_webhook, make_notification(webhook=webhook_server.url()))

    assert error.type == "TransientDeliveryError"
    assert "Timeout" in error.message


@pytest.mark.parametrize("webhook", [None, "ftp://example.com/hook"])
async def test_missing_or_unusable_webhook_url_is_permanent(webhook):
    error = await run_failing(post_webhook, make_notification(webhook=webhook))

    assert error.type == "PermanentDeliveryError"
    assert error.non_retryable


# -- webhook trust: destinations, signatures, response bodies ---------------------------

SECRET = "whsec-test-3f9a1c7e5b2d4086"


def webhook_settings(**fields) -> EscalatorSettings:
    return EscalatorSettings.defaults(webhook=WebhookSettings(**fields))


async def test_a_webhook_to_127_0_0_1_is_refused_unless_allowed(webhook_server, monkeypatch):
    # tests/conftest.py allows private receivers for the whole session; not here.
    monkeypatch.delenv("ESCALATOR_WEBHOOK_ALLOW_PRIVATE", raising=False)
    url = webhook_server.url("/hooks/T0KEN-abc?key=s3cret")

    error = await run_failing(post_webhook, make_notification(webhook=url))

    assert error.type == "PermanentDeliveryError" and error.non_retryable
    assert "127.0.0.1" in error.message and "loopback" in error.message
    assert "ESCALATOR_WEBHOOK_ALLOW_PRIVATE=true" in error.message
    assert "T0KEN" not in error.message and "s3cret" not in error.message
    assert "\n" not in error.message
    assert webhook_server.requests == []  # refused before any connection

    refusing = NotificationActivities(webhook_settings())
    error = await run_failing(refusing.post_webhook, make_notification(webhook=url))
    assert "ESCALATOR_WEBHOOK_ALLOW_PRIVATE" in error.message and webhook_server.requests == []

    allowing = NotificationActivities(webhook_settings(allow_private=True))
    receipt = await run(allowing.post_webhook, make_notification(webhook=url))
    assert receipt.detail == f"POST {webhook_server.origin} → 200"
    assert len(webhook_server.requests) == 1


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("localhost", "loopback"),  # a name: resolved, then checked
        ("127.0.0.2", "loopback"),
        ("[::1]", "loopback"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("[fe80::1]", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.10", "private"),
        ("[fd12:3456::1]", "unique-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),
    ],
)
async def test_non_public_destinations_are_refused_without_connecting(host, kind):
    activities = NotificationActivities(webhook_settings())
    notification = make_notification(webhook=f"http://{host}:9/hook")

    error = await run_failing(activities.post_webhook, notification)

    assert error.type == "PermanentDeliveryError" and error.non_retryable
    assert f"is a {kind} address" in error.message, error.message
    assert "ESCALATOR_WEBHOOK_ALLOW_PRIVATE=true" in error.message


async def test_an_unresolvable_host_is_transient():
    activities = NotificationActivities(webhook_settings())
    notification = make_notification(webhook="https://no-such-host.invalid/hook")

    error = await run_failing(activities.post_webhook, notification)

    assert error.type == "TransientDeliveryError" and not error.non_retryable
    assert "cannot resolve https://no-such-host.invalid" in error.message


async def test_webhooks_are_signed_when_a_secret_is_set(webhook_server):
    from escalator.domain.webhook_signature import verify

    activities = NotificationActivities(webhook_settings(secret=SECRET, allow_private=True))
    notification = make_notification(webhook=webhook_server.url())

    before = time.time()
    await run(activities.post_webhook, notification)
    await run(activities.post_webhook, notification)  # a retry signs afresh

    for request in webhook_server.requests:
        header = request["headers"]["X-Escalator-Signature"]
        timestamp = int(header.split(",")[0].removeprefix("t="))
        assert before - 1 <= timestamp <= time.time() + 1
        # The receiver's check, over the raw body it read (docs/webhooks.md).
        assert verify(SECRET.encode(), header, request["body"], now=time.time())
        assert not verify(b"another-secret-0123456789", header, request["body"], now=time.time())
        assert not verify(SECRET.encode(), header, request["body"] + b" ", now=time.time())
        assert not verify(SECRET.encode(), header, request["body"], now=time.time() + 301)
        assert json.loads(request["body"]) == json.loads(json.dumps(webhook_payload(notification)))
        assert SECRET not in str(request["headers"])


async def test_webhooks_are_unsigned_without_a_secret(webhook_server):
    activities = NotificationActivities(webhook_settings(allow_private=True))
    await run(activities.post_webhook, make_notification(webhook=webhook_server.url()))
    [request] = webhook_server.requests
    assert "X-Escalator-Signature" not in request["headers"]


@pytest.mark.parametrize("status", [400, 500])
async def test_a_response_body_never_reaches_the_case(webhook_server, status):
    webhook_server.status = status
    webhook_server.reply = b'{"error": "bad", "echo": "jane@acme.example ROOT-TOKEN-42"}'

    error = await run_failing(post_webhook, make_notification(webhook=webhook_server.url()))

    reason = "Bad Request" if status == 400 else "Internal Server Error"
    assert error.message.endswith(f"POST {webhook_server.origin} → {status} {reason}")
    assert "jane" not in error.message and "ROOT-TOKEN" not in error.message


async def test_a_bad_webhook_setting_is_a_retryable_config_error(monkeypatch):
    monkeypatch.setenv("ESCALATOR_WEBHOOK_SECRET", "short")
    error = await run_failing(post_webhook, make_notification(webhook="https://example.com/h"))
    assert error.type == "DeliveryConfigError" and not error.non_retryable
    assert "ESCALATOR_WEBHOOK_SECRET is 5 characters" in error.message
    assert "short" not in error.message


async def test_the_post_goes_to_the_address_checked_with_the_name_as_host(
    webhook_server, monkeypatch
):
    """DNS rebinding: the name is resolved once, checked, and the connection made to that
    address, so it cannot be re-pointed at a private one in between. Loopback stands in
    for a public address here (the rule itself is tested above)."""
    first = socket.getaddrinfo("localhost", None, type=socket.SOCK_STREAM)[0][4][0]
    if first != "127.0.0.1":
        pytest.skip(f"localhost resolves to {first} first here")
    monkeypatch.setattr(notifications.webhook_destination, "refusal", lambda host, addrs: None)
    resolved: list[str] = []
    real_getaddrinfo = asyncio.get_running_loop().getaddrinfo

    async def counting_getaddrinfo(host, *args, **kwargs):
        resolved.append(host)
        return await real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", counting_getaddrinfo)
    port = webhook_server.httpd.server_address[1]
    activities = NotificationActivities(webhook_settings())

    receipt = await run(
        activities.post_webhook, make_notification(webhook=f"http://localhost:{port}/hook")
    )

    assert receipt.accepted == (f"http://localhost:{port}",)
    [request] = webhook_server.requests
    assert request["headers"]["Host"] == f"localhost:{port}"
    assert request["path"] == "/hook"
    assert resolved == ["localhost"]  # once: httpx connected to the address, not the name
