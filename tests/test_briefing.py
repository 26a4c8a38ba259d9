"""The handoff briefing and static details, rendered without Temporal."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from support import DEFAULT_POLICY

from escalator.domain.briefing import render_briefing, render_static_details
from escalator.domain.models import (
    CaseInput,
    CaseNote,
    CaseStatus,
    Deadline,
    Escalation,
    EscalationNote,
)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def status(**changes) -> CaseStatus:
    base = dict(
        case_id="123", title="Outlook fails", state="open", severity="P2", account="acme",
        tier_level=2, tier_name="Specialist Support", team="support-specialists",
        assignee=None, escalations=1, sla_breached=False, created_at=T0,
        next_deadline=Deadline(at=T0 + timedelta(hours=2), kind="breach", clock="first_response",
                               tier_level=2, label="L2 first-response deadline",
                               consequence="escalate to L3 Engineering"),
        last_escalation=Escalation(
            from_level=1, to_level=2, at=T0, by="alice", automatic=False,
            note=EscalationNote(reason="needs backend access", steps_taken=("re-uploaded cert",),
                                suggested_next_step="check the certificate cache")),
        policy_name="default", notes=(), timeline=(),
    )  # fmt: skip
    return CaseStatus(**{**base, **changes})


def test_briefing_has_owner_deadline_note_and_start_here():
    text = render_briefing(status())
    assert "**Owner:** L2 Specialist Support (support-specialists)" in text
    assert "2026-03-01 11:00:00 UTC, L2 first-response deadline; then escalate to L3" in text
    assert "**Why:** needs backend access" in text and "- re-uploaded cert" in text
    start_here = text.split("### Start here", 1)[1]
    assert "1. check the certificate cache" in start_here
    assert "escalator claim 123" in start_here


def test_untrusted_text_cannot_inject_markdown_or_html():
    note = CaseNote(
        at=T0, author="eve", text="<img src=x onerror=alert(1)>\n# Heading [link](http://x)"
    )
    text = render_briefing(status(notes=(note,)))
    assert re.search(r"(?<!\\)<", text) is None  # every < is escaped: text, never a tag
    assert "\\<img" in text
    assert "\n# Heading" not in text and "\\[link\\]" in text


def test_resolved_case_has_no_deadline():
    text = render_briefing(status(state="resolved", next_deadline=None))
    assert "none, the case is resolved" in text


def test_static_details_name_customer_account_and_policy():
    case = CaseInput(case_id="1", title="t", account="acme",
                     customer={"name": "Jane Roe", "email": "jane@acme.example"},
                     policy=DEFAULT_POLICY)  # fmt: skip
    details = render_static_details(case)
    assert "Jane Roe · jane@acme.example" in details
    assert "**Account:** acme" in details and "**Policy:** default" in details


def test_the_briefing_shows_the_newest_notes_and_how_many_there_are():
    notes = tuple(CaseNote(at=T0, author="bob", text=f"note {i}") for i in range(10))
    text = render_briefing(status(notes=notes, notes_total=250))
    latest = text.split("### Latest notes (3 of 250)", 1)[1]
    assert [line for line in latest.splitlines() if line] == [
        "- bob: note 7",
        "- bob: note 8",
        "- bob: note 9",
    ]
    few = render_briefing(status(notes=notes[:2], notes_total=2))
    assert "### Latest notes\n" in few
