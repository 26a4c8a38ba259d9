"""Slack and PagerDuty bodies built from the notifications the real case engine emits.

Pure: no network, no Temporal (escalator/domain/slack_message.py and
escalator/domain/pagerduty_event.py). What is checked: the exact shapes, that case
text cannot mention anyone or inject a link in Slack, Slack's and PagerDuty's
limits, the severity mapping, one `dedup_key` per case, and that the routing key
appears only where PagerDuty reads it.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from support import EngineCase, actor, policy_with

from escalator.domain import case as engine
from escalator.domain.models import (
    AddNoteRequest,
    ClaimRequest,
    Customer,
    DeescalateRequest,
    EscalateRequest,
    Notification,
    ReopenRequest,
    ResolveRequest,
)
from escalator.domain.pagerduty_event import (
    SEVERITY,
    acknowledge_event,
    resolve_event,
    trigger_event,
)
from escalator.domain.slack_message import (
    FIELD_TEXT_CHARS,
    HEADER_TEXT_CHARS,
    MAX_BLOCKS,
    SECTION_TEXT_CHARS,
    checked_case_link,
    escape,
    slack_payload,
)

HOUR = timedelta(hours=1)
MIN = timedelta(minutes=1)
EVIL = "<!channel> hi & <http://x|y>"
EVIL_ESCAPED = "&lt;!channel&gt; hi &amp; &lt;http://x|y&gt;"
LINK = "https://escalator.example.com/cases/c-1"
ROUTING_KEY = "R0UT1NGK3Y" * 3 + "zz"  # 32 characters, like PagerDuty's
NOTE = {"reason": "needs backend access", "steps_taken": ["checked runbook"]}
ALL_PURPOSES = [
    "tier_entry",
    "tier_entry (escalated)",
    "warning",
    "sla_breach",
    "repeat",
    "stale_reminder",
    "claim_released",
    "deescalation",
    "reopened",
    "assessment",
    "ai_recommendation",
    "customer_escalation",
]


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON-like value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)


def texts(payload: dict[str, Any]) -> list[str]:
    """Every text Slack renders: the fallback and each `text` of every block."""
    found = [payload["text"]]

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("text"), str):
                found.append(value["text"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(payload["blocks"])
    return found


def last(case: EngineCase, purpose: str) -> Notification:
    return [n for n in case.sent() if n.purpose == purpose][-1]


def assessed(case: EngineCase) -> Notification:
    """The engine's `assessment` notification, with the offline assessor's result
    (what the worker sends when no model is configured)."""
    [assess] = [e for e in case.effects if isinstance(e, engine.Assess)][-1:]
    step = engine.assessed(case.state, case.case, assess.request, None, case.now, failure="off")
    [notice] = [e.notification for e in step.effects if isinstance(e, engine.Deliver)]
    return notice


EVIL_POLICY = policy_with(
    tier_changes={
        1: {"name": "Front <!here> & Co", "team": "gen <@U123>"},
        2: {"name": "Spec <#C1|x>", "team": "spec > all"},
    }
)


def every_purpose(title: str = EVIL) -> dict[str, Notification]:
    """One notification of each purpose the engine emits to a tier, all with `title`,
    tier names and teams, a customer name, notes and escalation notes holding
    Slack markup."""
    found: dict[str, Notification] = {}
    customer = Customer(name="Ana <@U999>", email="ana@example.com")

    case = EngineCase(title=title, policy=EVIL_POLICY, customer=customer)
    found["tier_entry"] = last(case, "tier_entry")
    case.after(3 * HOUR + MIN)
    found["warning"] = last(case, "warning")
    note = {"reason": f"why: {EVIL}", "steps_taken": [f"tried {EVIL}"], "symptoms": [EVIL]}
    case.do(engine.add_note, _note_request(f"note {EVIL}\nline two"))
    case.do(engine.escalate, EscalateRequest(actor=actor("bob <!here>"), note=note))
    found["tier_entry (escalated)"] = last(case, "tier_entry")
    found["customer_escalation"] = last(case, "customer_escalation")
    found["assessment"] = assessed(case)
    case.do(engine.claim, ClaimRequest(actor=actor("bob <!here>")))
    case.do(engine.deescalate, DeescalateRequest(actor=actor("bob <!here>"), reason=EVIL))
    found["deescalation"] = last(case, "deescalation")

    stale = EngineCase(title=title, policy=policy_with(tier_changes={1: {"stale_after": "1h"}}))
    stale.do(engine.claim, ClaimRequest(actor=actor("alice")))
    stale.after(HOUR + MIN)
    found["stale_reminder"] = last(stale, "stale_reminder")
    stale.after(HOUR)
    found["claim_released"] = last(stale, "claim_released")

    final = EngineCase(
        title=title,
        policy=policy_with(tier_changes={3: {"repeat_every": "30m", "max_repeats": 1}}),
        severity="P0",
    )
    final.after(90 * MIN + MIN)
    found["repeat"] = last(final, "repeat")
    final.after(4 * HOUR)
    found["sla_breach"] = last(final, "sla_breach")

    reopened = EngineCase(title=title, policy=policy_with(reopen_window="2d"))
    reopened.do(engine.resolve, ResolveRequest(actor=actor(), summary="fixed"))
    reopened.after(HOUR)
    reopened.do(engine.reopen, ReopenRequest(actor=actor("jane", role="customer")))
    found["reopened"] = last(reopened, "reopened")
    # The AI-agent stage's recommendation: the same facts as an assessment.
    found["ai_recommendation"] = found["assessment"].model_copy(
        update={"purpose": "ai_recommendation"}
    )
    return found


def _note_request(text: str) -> AddNoteRequest:
    return AddNoteRequest(actor=actor("carol <!everyone>"), text=text)


@functools.cache
def notices() -> dict[str, Notification]:
    found = every_purpose()
    assert sorted(found) == sorted(ALL_PURPOSES)
    return found


# -- Slack: the exact shape ------------------------------------------------------------


def test_a_manual_escalation_gives_this_exact_slack_message():
    case = EngineCase()
    case.do(engine.escalate, EscalateRequest(actor=actor(), note=NOTE))
    payload = slack_payload(last(case, "tier_entry"), case_link=LINK + "?view=full&tab=notes")
    assert payload == {
        "text": "[Escalator] Case c-1 · P3 · escalated to L2 Specialist Support: Printer on fire",
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": "P3 · Case c-1: Printer on fire"},
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": ":arrow_up: Escalated from *L1 Front-Line Support* "
                    "(support-generalists) to *L2 Specialist Support* (support-specialists). "
                    "Unassigned in L2 Specialist Support until someone claims it.",
                    "verbatim": True,
                },
            },
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": "*Severity*\nP3", "verbatim": True},
                    {
                        "type": "mrkdwn",
                        "text": "*Tier*\nL2 Specialist Support (support-specialists)",
                        "verbatim": True,
                    },
                    {"type": "mrkdwn", "text": "*Account*\ndefault", "verbatim": True},
                    {
                        "type": "mrkdwn",
                        # 10:00 UTC on 2 March 2026: the L2 first response, 2h after 08:00.
                        "text": "*Deadline*\nL2 first-response deadline: "
                        "<!date^1772445600^{date_short_pretty} {time}|2026-03-02 10:00 UTC>",
                        "verbatim": True,
                    },
                    {
                        "type": "mrkdwn",
                        "text": "*If missed*\nescalate to L3 Engineering",
                        "verbatim": True,
                    },
                ],
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*Latest escalation note*: L1 → L2 by alice\n"
                    "*Reason:* needs backend access",
                    "verbatim": True,
                },
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*What has been tried*\n• checked runbook (L1, alice)",
                    "verbatim": True,
                },
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f":link: <{LINK}?view=full&amp;tab=notes|Open case c-1>",
                    "verbatim": True,
                },
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": "Escalator · message &lt;c-1.2.tier_entry@escalator&gt;",
                        "verbatim": True,
                    }
                ],
            },
        ],
        "unfurl_links": False,
        "unfurl_media": False,
    }


def test_a_new_case_has_no_hand_over_sections_and_no_link_without_one():
    payload = slack_payload(EngineCase().sent()[0], case_link=None)
    assert [b["type"] for b in payload["blocks"]] == ["header", "section", "section", "context"]
    assert payload["blocks"][1]["text"]["text"] == (
        ":new: New P3 case for *L1 Front-Line Support* (support-generalists)."
    )
    assert "<http" not in json.dumps(payload)


def test_the_deadline_is_a_slack_date_with_utc_fallback():
    case = EngineCase(severity="P0")  # L3, 1h first response from 08:00 UTC
    fields = [
        f["text"] for f in slack_payload(case.sent()[0], case_link=None)["blocks"][2]["fields"]
    ]
    assert "*Deadline*\nL3 first-response deadline: <!date^1772442000^{date_short_pretty} {time}|2026-03-02 09:00 UTC>" in fields  # fmt: skip


def test_a_breach_names_the_missed_deadline_and_its_consequence():
    n = every_purpose("Printer on fire")["sla_breach"]
    fields = [f["text"] for f in slack_payload(n, case_link=None)["blocks"][2]["fields"]]
    assert any(f.startswith("*Missed deadline*\n") for f in fields)
    assert any(f.startswith("*Consequence*\n") for f in fields)


@pytest.mark.parametrize(
    ("purpose", "wording"),
    [
        ("tier_entry", ":new: New P3 case for"),
        ("tier_entry (escalated)", ":arrow_up: Escalated from"),
        ("warning", ":warning: SLA warning at"),
        ("sla_breach", ":rotating_light: SLA breached at"),
        ("repeat", ":bell: Still unclaimed at"),
        ("stale_reminder", ":hourglass: Claimed at"),
        ("claim_released", ":unlock: No activity at"),
        ("deescalation", ":arrow_down: Returned from"),
        ("reopened", ":repeat: Reopened at"),
        ("assessment", ":robot_face: The AI assessment for"),
        ("ai_recommendation", ":robot_face: Reached"),
        ("customer_escalation", ":envelope: The customer was told"),
    ],
)
def test_each_purpose_has_its_own_wording(purpose, wording):
    n = notices()[purpose]
    assert slack_payload(n, case_link=None)["blocks"][1]["text"]["text"].startswith(wording)


def test_a_hand_over_carries_the_note_reason_and_every_step_tried():
    payload = slack_payload(notices()["tier_entry (escalated)"], case_link=None)
    note, tried = (b["text"]["text"] for b in payload["blocks"][3:5])
    assert f"*Reason:* why: {EVIL_ESCAPED}" in note
    assert f"*Symptoms:*\n• {EVIL_ESCAPED}" in note
    assert f"• tried {EVIL_ESCAPED} (L1, bob &lt;!here&gt;)" in tried
    assert f"carol &lt;!everyone&gt;: note {EVIL_ESCAPED}\nline two" in tried


def test_an_assessment_message_carries_the_assessment():
    payload = slack_payload(notices()["assessment"], case_link=None)
    [section] = [b for b in payload["blocks"] if b.get("text", {}).get("text", "").startswith("*AI assessment*")]  # fmt: skip
    assert "*Likely cause:*" in section["text"]["text"]
    assert "*Start here:*\n1. " in section["text"]["text"]


# -- Slack: escaping -------------------------------------------------------------------

OUR_TOKENS = re.compile(
    r"<!date\^\d+\^\{date_short_pretty\} \{time\}\|[0-9: -]+ UTC>"
    rf"|<{re.escape(LINK)}\|Open case c-1>"
)


@pytest.mark.parametrize("purpose", ALL_PURPOSES)
def test_case_text_cannot_mention_anyone_or_inject_a_link(purpose):
    payload = slack_payload(notices()[purpose], case_link=LINK)
    for text in strings(payload):
        # The only <...> tokens are the date and the case link this module writes.
        assert OUR_TOKENS.sub("", text).count("<") == 0, text
        assert ">" not in OUR_TOKENS.sub("", text), text
        # Every & is one of the three entities Slack decodes.
        assert re.search(r"&(?!amp;|lt;|gt;)", text) is None, text
    header, fallback = payload["blocks"][0]["text"]["text"], payload["text"]
    assert header.endswith(f": {EVIL_ESCAPED}")
    assert fallback.endswith(f": {EVIL_ESCAPED}")
    assert EVIL not in json.dumps(payload, ensure_ascii=False)


def test_tier_names_teams_and_the_customer_are_escaped_too():
    payload = slack_payload(notices()["tier_entry"], case_link=None)
    shown = "\n".join(texts(payload))
    assert "*L1 Front &lt;!here&gt; &amp; Co* (gen &lt;@U123&gt;)" in shown
    assert "*Customer*\nAna &lt;@U999&gt;" in shown


def test_control_and_bidi_characters_do_not_reach_slack():
    title = "a\x1b[2J\u202eb\r\nc\x00d\u2028e\x85f\x07"
    n = EngineCase(title=title).sent()[0]
    for text in texts(slack_payload(n, case_link=None)):
        assert not any(
            (unicodedata.category(c) == "Cc" and c != "\n") or c in "\u202e\u2028" for c in text
        ), repr(text)
    assert slack_payload(n, case_link=None)["blocks"][0]["text"]["text"].endswith(
        ": a [2J b c d e f"
    )


def test_escape_is_the_three_entities_and_nothing_else():
    assert escape(EVIL) == EVIL_ESCAPED
    assert escape("*bold* _it_ `code` ~s~ :fire: é 漢") == "*bold* _it_ `code` ~s~ :fire: é 漢"
    assert escape("a &amp; b") == "a &amp;amp; b"  # already-escaped text is text too


# -- Slack: limits ---------------------------------------------------------------------


def test_long_titles_and_notes_are_cut_to_slacks_limits_with_an_ellipsis():
    # MAX_TITLE_CHARS of `&`s become five times as many characters once escaped, and
    # the notification's own bounds (a 2000-character reason, ten 500-character
    # steps, three 2000-character notes) add up past a section's 3000.
    case = EngineCase(title="&" * 200)
    for _ in range(3):
        case.do(engine.add_note, _note_request("<" * 16_000))
    long_note = {"reason": "&" * 2000, "steps_taken": [">" * 500] * 10, "symptoms": ["<" * 500] * 10}  # fmt: skip
    case.do(engine.escalate, EscalateRequest(actor=actor(), note=long_note))
    n = last(case, "tier_entry")
    # And a brief whose title is longer than any case allows (older cases, or a
    # future bound): the message still fits.
    n = n.model_copy(update={"case": n.case.model_copy(update={"title": "<&>" * 5000})})
    payload = slack_payload(n, case_link=LINK)
    blocks = payload["blocks"]
    assert len(blocks) <= MAX_BLOCKS
    header = blocks[0]["text"]["text"]
    assert len(header) == HEADER_TEXT_CHARS and header.endswith("…")
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]
    assert all(len(s) <= SECTION_TEXT_CHARS for s in sections)
    assert sum(s.endswith("…") for s in sections) == 2  # the note and what was tried
    assert all(len(f["text"]) <= FIELD_TEXT_CHARS for f in blocks[2]["fields"])
    assert len(payload["text"]) <= 3000 and payload["text"].endswith("…")
    for text in texts(payload):  # no entity is cut in half
        assert re.search(r"&(?!amp;|lt;|gt;)", text.removesuffix("…")) is None
    assert blocks[-2]["text"]["text"] == f":link: <{LINK}|Open case c-1>"  # never cut


# -- links -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "link",
    [
        "javascript:alert(1)",
        "ftp://escalator.example.com/c-1",
        "//escalator.example.com/c-1",
        "/cases/c-1",
        "https://",
        "https://escalator.example.com/a b",
        "https://escalator.example.com/c-1|<!channel>",
        "https://escalator.example.com/c-1>x",
        "https://ui.example.com@evil.example.com/c-1",
        "https://escalator.example.com/\nc-1",
        "https://escalator.example.com/" + "a" * 3000,
    ],
)
def test_a_case_link_that_is_not_plain_http_is_refused(link):
    n = EngineCase().sent()[0]
    with pytest.raises(ValueError, match="case link") as refusal:
        slack_payload(n, case_link=link)
    assert "example.com" not in str(refusal.value)  # a link may carry a token
    with pytest.raises(ValueError, match="case link"):
        trigger_event(n, routing_key=ROUTING_KEY, case_link=link)


@pytest.mark.parametrize(
    "link",
    [
        "http://localhost:8080/cases/c-1",
        "HTTPS://Escalator.Example.com/cases/c-1?x=1&y=%20#notes",
        "http://[::1]:8000/c-1",
    ],
)
def test_plain_http_and_https_links_pass(link):
    assert checked_case_link(link) == link


# -- PagerDuty -------------------------------------------------------------------------


def test_a_p0_case_gives_this_exact_trigger():
    n = EngineCase(severity="P0").sent()[0]
    assert n.channel == "pagerduty"  # the default policy's P0 override
    assert trigger_event(n, routing_key=ROUTING_KEY, case_link=LINK) == {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "c-1",
        "payload": {
            "summary": "P0 case c-1: Printer on fire · L3 Engineering (engineering-oncall)",
            "source": "escalator",
            "severity": "critical",
            "timestamp": "2026-03-02T08:00:00Z",
            "group": "engineering-oncall",
            "class": "tier_entry",
            "custom_details": {
                "case_id": "c-1",
                "purpose": "tier_entry",
                "severity": "P0",
                "account": "default",
                "tier": "L3 Engineering",
                "team": "engineering-oncall",
                "from_tier": None,
                "note_reason": None,
                "steps_tried": [],
                "deadline": {
                    "label": "L3 first-response deadline",
                    "at": "2026-03-02T09:00:00Z",
                    "consequence": "tell engineering-oncall the SLA is breached (final tier)",
                },
                "message_id": "<c-1.1.tier_entry@escalator>",
            },
        },
        "client": "Escalator",
        "links": [{"href": LINK, "text": "Case c-1 in Escalator"}],
    }


def test_a_trigger_after_an_escalation_carries_the_note_and_the_steps():
    case = EngineCase()
    case.do(engine.escalate, EscalateRequest(actor=actor(), note=NOTE))
    details = trigger_event(last(case, "tier_entry"), routing_key=ROUTING_KEY, case_link=None)
    assert "links" not in details
    custom = details["payload"]["custom_details"]
    assert (custom["tier"], custom["team"], custom["from_tier"]) == (
        "L2 Specialist Support",
        "support-specialists",
        "L1 Front-Line Support",
    )
    assert custom["note_reason"] == "needs backend access"
    assert custom["steps_tried"] == ["checked runbook (L1, alice)"]


@pytest.mark.parametrize(
    ("severity", "expected"),
    [("P0", "critical"), ("P1", "error"), ("P2", "warning"), ("P3", "info"), ("P4", "info")],
)
def test_severities_map_to_pagerdutys_four(severity, expected):
    n = EngineCase(severity=severity).sent()[0]
    assert trigger_event(n, routing_key=ROUTING_KEY, case_link=None)["payload"]["severity"] == expected  # fmt: skip
    assert SEVERITY[severity] == expected


def test_one_dedup_key_per_case_across_trigger_acknowledge_and_resolve():
    case = EngineCase(severity="P0", case_id="ACME-42.x_y")
    trigger = trigger_event(case.sent()[0], routing_key=ROUTING_KEY, case_link=None)
    ack, resolve = acknowledge_event("ACME-42.x_y", ROUTING_KEY), resolve_event("ACME-42.x_y", ROUTING_KEY)  # fmt: skip
    assert {trigger["dedup_key"], ack["dedup_key"], resolve["dedup_key"]} == {"ACME-42.x_y"}
    assert ack == {"routing_key": ROUTING_KEY, "event_action": "acknowledge", "dedup_key": "ACME-42.x_y"}  # fmt: skip
    assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "ACME-42.x_y"}  # fmt: skip


@pytest.mark.parametrize("purpose", ALL_PURPOSES)
def test_the_routing_key_is_only_in_the_top_level_field(purpose):
    body = trigger_event(notices()[purpose], routing_key=ROUTING_KEY, case_link=LINK)
    assert body["routing_key"] == ROUTING_KEY
    rest = {key: value for key, value in body.items() if key != "routing_key"}
    assert not any(ROUTING_KEY in text for text in strings(rest))
    assert json.dumps(body).count(ROUTING_KEY) == 1


@pytest.mark.parametrize("key", ["", " ", f" {ROUTING_KEY}", f"{ROUTING_KEY}\n", "a b", "kéy"])
def test_a_bad_routing_key_is_refused_without_being_quoted(key):
    n = EngineCase(severity="P0").sent()[0]
    for build in (
        lambda: trigger_event(n, routing_key=key, case_link=None),
        lambda: acknowledge_event("c-1", key),
        lambda: resolve_event("c-1", key),
    ):
        with pytest.raises(ValueError, match="routing key") as refusal:
            build()
        assert key.strip() == "" or key.strip() not in str(refusal.value)


@pytest.mark.parametrize("case_id", ["", "has space", "x" * 65, "../etc"])
def test_a_follow_up_needs_a_real_case_id(case_id):
    with pytest.raises(ValueError, match="case id"):
        acknowledge_event(case_id, ROUTING_KEY)


def test_the_summary_is_one_plain_line_of_at_most_1024_characters():
    n = notices()["tier_entry"]
    summary = trigger_event(n, routing_key=ROUTING_KEY, case_link=None)["payload"]["summary"]
    # PagerDuty shows plain text: no Slack entities, the title as it was written.
    assert summary == f"P3 case c-1: {EVIL} · L1 Front <!here> & Co (gen <@U123>)"
    long = n.model_copy(update={"case": n.case.model_copy(update={"title": "t\n\x1b" * 2000})})
    summary = trigger_event(long, routing_key=ROUTING_KEY, case_link=None)["payload"]["summary"]
    assert len(summary) <= 1024 and summary.endswith("t t…")
    assert not any(unicodedata.category(c) == "Cc" for c in summary)
