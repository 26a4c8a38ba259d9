"""Notification wording: pure functions, so no server, no Temporal, no clock."""

from __future__ import annotations

import email
import email.policy
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage

import pytest

from escalator.domain.models import (
    CaseBrief,
    CaseNote,
    Deadline,
    Escalation,
    EscalationNote,
    Notification,
    TierRef,
)
from escalator.domain.notification_text import render_email, subject, webhook_payload

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
L1 = TierRef(level=1, name="Service Desk", team="helpdesk")
L2 = TierRef(level=2, name="Specialist Support", team="specialists")
L3 = TierRef(level=3, name="Engineering", team="platform-eng")
MAIL_FROM = "Escalator <escalator@localhost>"


def make_notification(**overrides) -> Notification:
    case_fields = overrides.pop("case", {})
    case = CaseBrief(
        **{
            "case_id": "123",
            "title": "Outlook fails to sync",
            "severity": "P2",
            "account": "acme",
            "description_excerpt": "Sync stops at 0% since Monday.",
            "customer_name": "Dana",
            **case_fields,
        }
    )
    fields = {
        "message_id": "<123.2.tier_entry@escalator>",
        "purpose": "tier_entry",
        "recipients": ("l2@example.com", "lead@example.com"),
        "case": case,
        "tier": L2,
        "from_tier": L1,
        "escalations": (
            Escalation(
                from_level=1,
                to_level=2,
                at=T0,
                by="alice",
                automatic=False,
                note=EscalationNote(
                    reason="needs mailbox access",
                    steps_taken=("rebuilt OST profile", "checked licence"),
                    symptoms=("sync stuck at 0%",),
                    customer_impact="CEO cannot read mail",
                    suggested_next_step="check EWS throttling",
                ),
            ),
        ),
        "notes": (CaseNote(at=T0, author="bob", text="customer confirms VPN is on"),),
        "deadline": Deadline(
            at=T0 + timedelta(hours=4),
            kind="breach",
            clock="first_response",
            tier_level=2,
            label="L2 first-response deadline",
            consequence="escalate to L3 Engineering",
        ),
        "occurred_at": T0,
        **overrides,
    }
    return Notification(**fields)


def reparse(message: EmailMessage) -> EmailMessage:
    """What a receiving mail client sees: the message after the wire."""
    return email.message_from_bytes(message.as_bytes(), policy=email.policy.default)


def bodies(message: EmailMessage) -> tuple[str, str]:
    parsed = reparse(message)
    return (
        parsed.get_body(("plain",)).get_content(),
        parsed.get_body(("html",)).get_content(),
    )


def section(text: str, heading: str) -> str:
    """The body of one plain-text section: from its underlined heading to the next one."""
    underlined = f"{heading}\n{'-' * len(heading)}\n"
    body = text[text.index(underlined) + len(underlined) :]
    next_heading = re.search(r"\n\n[^\n]+\n-+\n", body)
    return body[: next_heading.start()] if next_heading else body


# -- subject -----------------------------------------------------------------------


def test_subject_of_an_escalation_names_case_severity_tier_and_title():
    assert (
        subject(make_notification())
        == "[Escalator] Case 123 · P2 · escalated to L2 Specialist Support: Outlook fails to sync"
    )


@pytest.mark.parametrize(
    ("overrides", "wording"),
    [
        ({"from_tier": None, "tier": L1, "escalations": ()}, "new case for L1 Service Desk"),
        ({"purpose": "warning", "from_tier": None}, "SLA warning"),
        ({"purpose": "sla_breach", "from_tier": None, "tier": L3}, "SLA breached on final tier"),
    ],
)
def test_subject_wording_follows_the_purpose(overrides, wording):
    line = subject(make_notification(**overrides))
    assert line.startswith("[Escalator] Case 123 · P2 · ")
    assert wording in line
    assert line.endswith(": Outlook fails to sync")


def test_customer_subject_has_no_internal_jargon():
    line = subject(make_notification(purpose="customer_escalation", from_tier=None))
    assert line.startswith("Your case 123 has been escalated")
    assert "P2" not in line
    assert "L2" not in line
    assert "[Escalator]" not in line


# -- headers -----------------------------------------------------------------------


def test_headers_carry_message_id_verbatim_and_the_escalator_headers():
    notification = make_notification(channel="pagerduty")
    parsed = reparse(render_email(notification, mail_from=MAIL_FROM))
    assert parsed["Message-ID"] == "<123.2.tier_entry@escalator>"
    assert parsed["X-Escalator-Case"] == "123"
    assert parsed["X-Escalator-Purpose"] == "tier_entry"
    assert parsed["X-Escalator-Channel"] == "pagerduty"
    assert parsed["From"] == MAIL_FROM
    assert [a.addr_spec for a in parsed["To"].addresses] == [
        "l2@example.com",
        "lead@example.com",
    ]
    assert parsed["Date"].datetime == T0


def test_no_channel_header_without_a_channel():
    parsed = reparse(render_email(make_notification(channel=None), mail_from=MAIL_FROM))
    assert "X-Escalator-Channel" not in parsed


@pytest.mark.parametrize(
    "overrides",
    [
        {"case": {"title": "x\r\nBcc: evil@example.com"}},
        {"case": {"title": "x\nBcc: evil@example.com"}},
        {"case": {"title": "x\rBcc: evil@example.com"}},
        {"case": {"title": "x\u2028Bcc: evil@example.com"}},
        {"case": {"case_id": "123\r\nBcc: evil@example.com"}},
        {"channel": "pagerduty\r\nBcc: evil@example.com"},
        {"tier": TierRef(level=2, name="Specialists\r\nBcc: evil@example.com", team="t")},
    ],
    ids=["crlf-title", "lf-title", "cr-title", "u2028-title", "case-id", "channel", "tier"],
)
def test_line_breaks_in_case_text_cannot_inject_a_header(overrides):
    message = render_email(make_notification(**overrides), mail_from=MAIL_FROM)
    head = message.as_bytes().split(b"\n\n", 1)[0]
    parsed = reparse(message)
    assert parsed["Bcc"] is None
    assert b"\nBcc:" not in head
    assert b"\rBcc:" not in head
    for name, value in parsed.items():
        assert "\r" not in value and "\n" not in value, name
    # The text is kept, flattened onto its own header's line.
    assert any("Bcc: evil@example.com" in value for value in parsed.values())


# -- body ----------------------------------------------------------------------------


def test_mail_has_plain_text_and_html_alternatives():
    parsed = reparse(render_email(make_notification(), mail_from=MAIL_FROM))
    assert parsed.get_content_type() == "multipart/alternative"
    kinds = [part.get_content_type() for part in parsed.iter_parts()]
    assert kinds == ["text/plain", "text/html"]


def test_tier_body_shows_what_happened_note_description_and_deadline():
    text, _ = bodies(render_email(make_notification(), mail_from=MAIL_FROM))
    assert "escalated from L1 Service Desk (helpdesk) to L2 Specialist Support" in text
    latest = section(text, "Latest escalation note")
    assert "What has been tried" not in latest
    assert "by alice (manual escalation)" in latest
    for fact in (
        "Reason: needs mailbox access",
        "- sync stuck at 0%",
        "- rebuilt OST profile",
        "Customer impact: CEO cannot read mail",
        "Suggested next step: check EWS throttling",
    ):
        assert fact in latest
    assert "Sync stops at 0% since Monday." in section(text, "Description (excerpt)")
    deadline = section(text, "Next deadline")
    assert "2024-05-01T16:00:00Z" in deadline
    assert "escalate to L3 Engineering" in deadline


def test_deadline_is_shown_in_utc_whatever_its_timezone():
    berlin = timezone(timedelta(hours=2))
    base = make_notification().deadline
    deadline = base.model_copy(update={"at": datetime(2024, 5, 1, 18, 0, tzinfo=berlin)})
    text, html_body = bodies(
        render_email(make_notification(deadline=deadline), mail_from=MAIL_FROM)
    )
    assert "2024-05-01T16:00:00Z" in text
    assert "2024-05-01T16:00:00Z" in html_body
    assert "18:00" not in text


def test_what_has_been_tried_gathers_steps_of_every_escalation_and_the_notes():
    first = make_notification().escalations[0]
    second = Escalation(
        from_level=2,
        to_level=3,
        at=T0 + timedelta(hours=5),
        by="system",
        automatic=True,
        note=EscalationNote(reason="first response SLA breached", steps_taken=("read EWS logs",)),
    )
    notification = make_notification(
        tier=L3,
        from_tier=L2,
        escalations=(first, second),
        message_id="<123.3.tier_entry@escalator>",
    )
    text, html_body = bodies(render_email(notification, mail_from=MAIL_FROM))
    tried = section(text, "What has been tried")
    assert "rebuilt OST profile (L1, alice)" in tried
    assert "checked licence (L1, alice)" in tried
    assert "read EWS logs (L2, system)" in tried
    assert "bob: customer confirms VPN is on" in tried
    # The latest note is the newest escalation, written by the system.
    latest = section(text, "Latest escalation note")
    assert "L2 → L3" in latest
    assert "automatically by system" in latest
    assert "Reason: first response SLA breached" in latest
    assert "needs mailbox access" not in latest
    assert "rebuilt OST profile (L1, alice)" in html_body


def test_a_notification_says_what_older_entries_it_leaves_out():
    notification = make_notification()
    text, _ = bodies(render_email(notification, mail_from=MAIL_FROM))
    assert "Older entries are in the case" not in text  # it carries everything
    notification = make_notification(
        notes_total=len(notification.notes) + 40,
        escalations_total=len(notification.escalations) + 2,
    )
    text, _ = bodies(render_email(notification, mail_from=MAIL_FROM))
    assert (
        "Older entries are in the case: 40 earlier notes and 2 earlier tier changes "
        "(escalator status 123)." in " ".join(section(text, "What has been tried").split())
    )


def test_nothing_tried_yet_is_said_plainly():
    notification = make_notification(from_tier=None, tier=L1, escalations=(), notes=())
    text, _ = bodies(render_email(notification, mail_from=MAIL_FROM))
    assert "Nothing recorded yet." in section(text, "What has been tried")
    assert "Latest escalation note" not in text
    assert "New P2 case 123 for L1 Service Desk (helpdesk)." in text


def test_case_text_is_html_escaped_in_the_html_part():
    escalation = make_notification().escalations[0]
    hostile_note = escalation.note.model_copy(update={"reason": "<b onmouseover=x>reason</b>"})
    notification = make_notification(
        case={
            "title": "<script>alert('title')</script>",
            "description_excerpt": "before <script>alert(1)</script> after",
            "customer_name": "<i>Dana</i>",
        },
        notes=(CaseNote(at=T0, author="<u>bob</u>", text='<img src=x onerror="alert(2)">'),),
        escalations=(escalation.model_copy(update={"note": hostile_note}),),
    )
    text, html_body = bodies(render_email(notification, mail_from=MAIL_FROM))
    for raw in ("<script", "<img", "<b onmouseover", "<i>", "<u>"):
        assert raw not in html_body
    assert "before &lt;script&gt;alert(1)&lt;/script&gt; after" in html_body
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in html_body
    assert "&lt;b onmouseover=x&gt;reason&lt;/b&gt;" in html_body
    # The plain part shows the text as typed: it is never interpreted.
    assert "before <script>alert(1)</script> after" in text


def test_non_ascii_survives_the_wire():
    notification = make_notification(
        case={
            "title": "Outlook: синхронизация – Zoë 🚀",
            "description_excerpt": "Grüße aus 東京\nzweite Zeile",
            "customer_name": "Zoë",
        },
        notes=(CaseNote(at=T0, author="Ægir", text="Ça marche pas"),),
    )
    parsed = reparse(render_email(notification, mail_from="Escalâtor <escalator@localhost>"))
    assert parsed["Subject"].endswith(": Outlook: синхронизация – Zoë 🚀")
    assert parsed["From"].addresses[0].display_name == "Escalâtor"
    text = parsed.get_body(("plain",)).get_content()
    html_body = parsed.get_body(("html",)).get_content()
    for fragment in ("Grüße aus 東京\nzweite Zeile", "Ægir: Ça marche pas", "Zoë 🚀"):
        assert fragment in text
        assert fragment in html_body


def test_control_characters_in_case_text_do_not_reach_the_body():
    notification = make_notification(case={"description_excerpt": "a\x1b[31mred\x00\r\nb"})
    text, html_body = bodies(render_email(notification, mail_from=MAIL_FROM))
    assert "a[31mred\nb" in text
    assert "\x1b" not in text + html_body
    assert "\x00" not in text + html_body


def test_sla_breach_shows_the_missed_deadline():
    notification = make_notification(purpose="sla_breach", tier=L3, from_tier=None)
    text, _ = bodies(render_email(notification, mail_from=MAIL_FROM))
    assert "SLA breached" in text
    assert "final tier" in text
    assert "2024-05-01T16:00:00Z" in section(text, "Missed deadline")


# -- the customer's mail --------------------------------------------------------------


def test_customer_mail_says_where_the_case_went_and_when_to_expect_an_answer():
    notification = make_notification(
        purpose="customer_escalation", recipients=("dana@customer.example",), from_tier=None
    )
    text, html_body = bodies(render_email(notification, mail_from=MAIL_FROM))
    for body in (text, html_body):
        assert "Hello Dana," in body
        assert "Your case 123 (Outlook fails to sync) has been escalated" in body
        assert "Specialist Support" in body
        assert "2024-05-01 16:00 UTC" in body


def test_customer_mail_omits_internal_notes_steps_and_teams():
    notification = make_notification(
        purpose="customer_escalation", recipients=("dana@customer.example",), from_tier=None
    )
    text, html_body = bodies(render_email(notification, mail_from=MAIL_FROM))
    internal = (
        "rebuilt OST profile",  # steps taken
        "needs mailbox access",  # escalation reason
        "CEO cannot read mail",  # customer impact, as written by an engineer
        "check EWS throttling",
        "customer confirms VPN is on",  # case note
        "alice",
        "bob",
        "specialists",  # team
        "helpdesk",
        "Sync stops at 0%",  # description excerpt
        "escalate to L3",  # deadline consequence
        "SLA",
        "L2",
    )
    for body in (text, html_body):
        for secret in internal:
            assert secret not in body, secret


def test_customer_mail_without_deadline_promises_no_time():
    notification = make_notification(
        purpose="customer_escalation",
        recipients=("dana@customer.example",),
        from_tier=None,
        deadline=None,
        case={"customer_name": None},
    )
    text, _ = bodies(render_email(notification, mail_from=MAIL_FROM))
    assert text.startswith("Hello,\n")
    assert "expect a response" not in text
    assert "UTC" not in text


# -- webhook payload ------------------------------------------------------------------


def test_webhook_payload_is_json_with_the_structured_facts():
    notification = make_notification(channel="pagerduty")
    payload = json.loads(json.dumps(webhook_payload(notification)))
    assert payload["event"] == "tier_entry"
    assert payload["message_id"] == "<123.2.tier_entry@escalator>"
    assert payload["channel"] == "pagerduty"
    assert payload["case"] == {
        "id": "123",
        "title": "Outlook fails to sync",
        "severity": "P2",
        "account": "acme",
    }
    assert payload["tier"]["label"] == "L2 Specialist Support"
    assert payload["tier"]["team"] == "specialists"
    assert payload["from_tier"]["level"] == 1
    assert payload["deadline"]["at"] == "2024-05-01T16:00:00Z"
    assert payload["deadline"]["consequence"] == "escalate to L3 Engineering"
    latest = payload["latest_escalation"]
    assert latest["by"] == "alice"
    assert latest["automatic"] is False
    assert latest["note"]["steps_taken"] == ["rebuilt OST profile", "checked licence"]
    assert latest["note"]["reason"] == "needs mailbox access"
    assert payload["occurred_at"] == "2024-05-01T12:00:00Z"


def test_webhook_payload_of_a_new_case_has_nulls_not_missing_keys():
    notification = make_notification(from_tier=None, escalations=(), deadline=None)
    payload = webhook_payload(notification)
    assert payload["from_tier"] is None
    assert payload["latest_escalation"] is None
    assert payload["deadline"] is None
    json.dumps(payload)  # still serialisable
