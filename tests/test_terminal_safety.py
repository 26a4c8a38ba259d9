"""Terminal safety (issue 12): case text printed by the CLI cannot act on the terminal.

A case title, a note or a mail subject can hold escape sequences (retitle the window,
clear the screen, recolour), carriage returns and backspaces (overwrite what is on
the line), newlines (forge a line of output) or bidi overrides (make a line read
differently from what it holds). Everything the CLI prints shows them as visible
escapes instead.
"""

from __future__ import annotations

import asyncio
import base64
import json
import unicodedata
from datetime import UTC, datetime, timedelta

import aiosmtplib
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import free_port

from escalator.cli import main as cli
from escalator.cli.output import render_rows, render_status
from escalator.devstack.mail_catcher import MailCatcher, announcement
from escalator.domain.assessment import AssessmentResult
from escalator.domain.models import (
    CaseNote,
    CaseStatus,
    Deadline,
    Escalation,
    EscalationNote,
    TimelineEvent,
)
from escalator.domain.terminal_text import json_terminal_safe, terminal_safe

HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x1b[31mfake"
# Everything at once: OSC title, CSI clear, SGR colour, C1 CSI, CR, backspaces, DEL,
# NUL, bidi override and isolate, zero-width space, BOM, line and paragraph
# separators, NEL, and an embedded newline that tries to forge a status line.
EVERYTHING = (
    HOSTILE + "\r\x9b2K\x08\x08\x7f\x00\u202eevil\u2066x\u2069\u200b\ufeff\u2028\u2029\x85"
    "\n  state       resolved"
)


def hidden(text: str) -> list[str]:
    """The characters of `text` that would act on a terminal (a line feed is allowed)."""
    return [c for c in text if unicodedata.category(c) in ("Cc", "Cf") and c != "\n"]


def assert_terminal_safe(output: str) -> None:
    assert not any(unicodedata.category(c) in ("Cc", "Cf") and c != "\n" for c in output), hidden(
        output
    )
    assert not any(unicodedata.category(c) in ("Zl", "Zp", "Cs") for c in output)


# -- the function ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (HOSTILE, "\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mfake"),
        ("\x1b", "\\x1b"),  # ESC
        ("a\x07b", "a\\x07b"),  # BEL
        ("\x9b31m", "\\x9b31m"),  # C1 CSI
        ("\x9d0;title\x9c", "\\x9d0;title\\x9c"),  # C1 OSC ... ST
        ("\x85", "\\x85"),  # NEL
        ("rm\x7f", "rm\\x7f"),  # DEL
        ("a\x00b", "a\\x00b"),  # NUL
        ("ok\rFAIL", "ok\\rFAIL"),  # CR
        ("abc\x08\x08\x08xyz", "abc\\x08\\x08\\x08xyz"),  # backspace
        ("line one\nline two", "line one\\nline two"),  # newline: one-line field
        ("a\r\nb", "a\\r\\nb"),
        ("col\tcol", "col\\tcol"),  # tab is a control too: shown, so columns cannot shift
        ("\x0b\x0c", "\\x0b\\x0c"),  # vertical tab, form feed
        ("\u202eevil.exe", "\\u202eevil.exe"),  # right-to-left override
        ("\u202a\u202b\u202c\u202d", "\\u202a\\u202b\\u202c\\u202d"),  # embeddings, PDF
        ("\u2066\u2067\u2068\u2069", "\\u2066\\u2067\\u2068\\u2069"),  # isolates
        ("\u200e\u200f\u061c", "\\u200e\\u200f\\u061c"),  # LRM, RLM, Arabic letter mark
        ("a\u200bb\u200cc\u200dd\u2060e", "a\\u200bb\\u200cc\\u200dd\\u2060e"),  # zero-width
        ("\ufeffbom", "\\ufeffbom"),
        ("soft\xadhyphen", "soft\\xadhyphen"),  # U+00AD is Cf: invisible
        ("a\u2028b\u2029c", "a\\u2028b\\u2029c"),  # line / paragraph separators
        ("tag\U000e0041", "tag\\U000e0041"),  # Cf outside the BMP
        ("lone \udc80 surrogate", "lone \\udc80 surrogate"),  # from surrogateescape argv
        # Ordinary text is unchanged.
        ("Outlook fails to sync", "Outlook fails to sync"),
        ("Café é à ü ñ ø", "Café é à ü ñ ø"),
        ("日本語のチケット", "日本語のチケット"),
        ("deploy 🚀 ok ✅ 👍🏽 🇩🇪", "deploy 🚀 ok ✅ 👍🏽 🇩🇪"),
        ("עברית العربية", "עברית العربية"),  # right-to-left letters are not controls
        ("e\u0301 combining", "e\u0301 combining"),
        ("nbsp\xa0and\u3000wide space", "nbsp\xa0and\u3000wide space"),
        (r"C:\Users\jane\x1b", r"C:\Users\jane\x1b"),  # backslashes are kept as typed
        ("", ""),
        (None, ""),
    ],
)
def test_terminal_safe(text, shown):
    assert terminal_safe(text) == shown
    assert_terminal_safe(terminal_safe(text))


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("first\nsecond\n", "first\nsecond\n"),  # intended lines are kept
        ("windows\r\nline ends\r\n", "windows\nline ends\n"),
        ("ok\rFAIL", "ok\\rFAIL"),  # a lone CR still cannot overwrite the line
        ("a\tb", "a\\tb"),
        ("x\u2028y", "x\\u2028y"),
        (HOSTILE + "\nnext", "\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mfake\nnext"),
        ("日本 🚀 é", "日本 🚀 é"),
    ],
)
def test_terminal_safe_multiline_keeps_only_line_feeds(text, shown):
    assert terminal_safe(text, multiline=True) == shown


@given(st.text())
def test_terminal_safe_never_lets_a_hidden_character_through(text):
    once = terminal_safe(text)
    assert_terminal_safe(once)
    assert "\n" not in once
    assert terminal_safe(once) == once  # idempotent: safe text is left alone
    assert_terminal_safe(terminal_safe(text, multiline=True))


@given(st.text())
def test_visible_characters_are_never_changed(text):
    visible = "".join(
        c for c in text if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Zl", "Zp")
    )
    assert terminal_safe(visible) == visible


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(), lambda inner: (
    st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3)
)))  # fmt: skip
def test_json_output_means_the_same_and_prints_safely(value):
    for text in (json.dumps(value, ensure_ascii=False, indent=2), json.dumps(value)):
        safe = json_terminal_safe(text)
        assert json.loads(safe) == value
        assert_terminal_safe(safe)


def test_json_escapes_what_pydantic_leaves_raw():
    # model_dump_json escapes C0 controls but writes DEL, C1 and bidi controls raw.
    note = CaseNote(at=datetime(2026, 1, 1, tzinfo=UTC), author="x", text="\x7f\x9b\u202e")
    raw = note.model_dump_json()
    assert hidden(raw)
    safe = json_terminal_safe(raw)
    assert '"\\u007f\\u009b\\u202e"' in safe
    assert CaseNote.model_validate_json(safe) == note


# -- rendered output ---------------------------------------------------------------


NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def hostile_status() -> CaseStatus:
    at = NOW - timedelta(hours=1)
    note = EscalationNote(
        reason="needs DBA" + EVERYTHING,
        steps_taken=("restarted\r\x1b[2K", "tried\nforged"),
        symptoms=("\u202esymptom",),
        customer_impact="impact\x1b[5m",
        suggested_next_step="next\x9b",
    )
    return CaseStatus(
        case_id="cli-hostile",
        title=EVERYTHING,
        state="claimed",
        severity="P2",
        account="default",
        tier_level=2,
        tier_name="Specialist\x1b[8m Support",
        team="support\u202e",
        assignee="alice\x1b]0;x\x07\nbob",
        escalations=1,
        sla_breached=False,
        created_at=at,
        next_deadline=Deadline(
            at=NOW + timedelta(minutes=30),
            kind="breach",
            clock="resolution",
            tier_level=2,
            label="L2 resolution\x1b[2J deadline",
            consequence="escalate\r\nto L3",
        ),
        last_escalation=Escalation(
            from_level=1,
            to_level=2,
            at=at,
            by="mallory\x08\x08\x08root",
            automatic=False,
            note=note,
        ),
        policy_name="demo\x07",
        notes=(CaseNote(at=at, author="eve\x1b[31m", text="note " + EVERYTHING),),
        timeline=(
            TimelineEvent(at=at, kind="created", detail="P2 case opened " + EVERYTHING),
            TimelineEvent(at=at, kind="note\x1b[2J", detail="note " + EVERYTHING, actor="eve\r"),
            TimelineEvent(
                at=at, kind="escalated", detail="L1 → L2: " + EVERYTHING, actor="\u202emallory"
            ),
        ),
        assessment=AssessmentResult(
            summary="summary " + EVERYTHING,
            what_we_know=["fact\x1b[1m"],
            likely_cause="cause\r\nforged",
            suggested_steps=["step\x9b2J", "step two\u2066"],
            confidence="low",
            source="model",
            model="claude\x1b[0m",
        ),
    )


def test_status_with_a_hostile_case_prints_no_control_characters():
    output = render_status(hostile_status(), NOW)
    assert_terminal_safe(output)
    # The hostile text is still there to read, as escapes.
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mfake" in output
    assert "\\u202eevil" in output and "\\x9b2K" in output and "\\r" in output
    # No field can forge a line: the status has exactly the lines the CLI writes.
    lines = output.split("\n")
    assert lines[0].startswith("Case cli-hostile · P2 · \\x1b]0;pwned")
    assert [line for line in lines if line.startswith("  state")] == ["  state       claimed"]
    assert "alice\\x1b]0;x\\x07\\nbob" in lines[2]
    assert all(line.startswith(("Case ", "  ")) for line in lines)
    timeline = lines[lines.index("  timeline") + 1 :]
    assert len(timeline) == 3 and all(line.startswith("    ") for line in timeline)


def test_status_of_an_ordinary_case_is_unchanged_text():
    status = hostile_status().model_copy(
        update={
            "title": "Outlook fails to sync — café 日本 🚀",
            "timeline": (
                TimelineEvent(at=NOW, kind="note", detail="customer sent logs", actor="José"),
            ),
            "last_escalation": None,
            "assessment": None,
        }
    )
    output = render_status(status, NOW)
    assert output.startswith("Case cli-hostile · P2 · Outlook fails to sync — café 日本 🚀\n")
    assert "note               customer sent logs [José]" in output


def row(**fields) -> dict:
    base = {
        "case_id": "q-1", "status": "open", "tier": 2, "tier_name": "Specialist Support",
        "team": "support", "severity": "P2", "assignee": None, "sla_breached": False,
        "next_deadline": "2026-03-02T09:30:00+00:00", "started": None, "workflow_status": "running",
    }  # fmt: skip
    return {**base, **fields}


def test_list_and_queue_rows_with_hostile_attributes_print_no_control_characters():
    rows = [
        row(),
        row(
            case_id="q-2\x1b[2J", tier_name="Spec\u202eialist\nforged row", assignee="al\r\x1b[31m"
        ),
        row(case_id="q-3", severity="P2\x9b", status="open\x08", next_deadline="soon\x07\n"),
    ]
    output = render_rows(rows)
    assert_terminal_safe(output)
    lines = output.split("\n")
    assert len(lines) == 4  # the header and one line per case: nothing forged
    assert lines[2].startswith("q-2\\x1b[2J ")
    assert " L2 Spec\\u202eialist\\nforge al\\r\\x1b[31m " in lines[2]
    assert lines[3].endswith(" soon\\x07\\n")
    # Cells cut to their column are cut after they are made safe, so columns line up.
    deadline = lines[0].index("NEXT DEADLINE")
    assert lines[1].index("2026-") == lines[2].index("2026-") == deadline


# -- the CLI's one-line errors -----------------------------------------------------


def test_usage_error_echoing_input_is_one_safe_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.run(["keygen", HOSTILE + "\nforged"])
    assert exit_.value.code == cli.EXIT_INVALID
    err = capsys.readouterr().err
    assert_terminal_safe(err)
    assert err.count("\n") == 1
    assert "unrecognized arguments: \\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mfake\\nforged" in err


def test_error_echoing_input_is_one_safe_line(capsys, tmp_path):
    missing = tmp_path / ("logs" + HOSTILE + "\u202e\nforged.txt")
    code = cli.run(["start", "--case-id", "x", "--title", "t", "--description-file", str(missing)])
    assert code == cli.EXIT_INVALID
    err = capsys.readouterr().err
    assert_terminal_safe(err)
    assert err.count("\n") == 1
    assert err.startswith("escalator: --description-file: cannot read ")
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mfake\\u202e\\nforged.txt" in err


# -- the mail catcher's lines in `escalator up` ----------------------------------------


def test_announcement_makes_recipients_and_subject_safe():
    line = announcement(['"\x1b]0;x\x07"@example.com', "ok@example.com"], EVERYTHING, "m.eml")
    assert_terminal_safe(line)
    assert "\n" not in line
    assert line.startswith('mail  → "\\x1b]0;x\\x07"@example.com, ok@example.com: \\x1b]0;pwned')
    assert line.endswith("  [m.eml]")
    assert announcement(["b@example.com"], "Re:  café\t日本 🚀", "m.eml") == (
        "mail  → b@example.com: Re: café 日本 🚀  [m.eml]"
    )


def _encoded_subject(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


@pytest.fixture
def catcher(tmp_path):
    lines: list[str] = []
    catcher = MailCatcher(tmp_path / "mail", port=free_port(), announce=lines.append).start()
    catcher.lines = lines
    yield catcher
    catcher.stop()


async def test_caught_mail_with_a_hostile_subject_is_one_safe_line(catcher):
    # An RFC 2047 encoded word can carry any character, CR LF included, past SMTP.
    message = (
        "From: attacker@example.com\r\nTo: oncall@example.com\r\n"
        f"Subject: {_encoded_subject(EVERYTHING)}\r\n\r\nbody\r\n"
    )
    await aiosmtplib.send(
        message.encode(), sender="attacker@example.com", recipients=["oncall@example.com"],
        hostname="127.0.0.1", port=catcher.port,
    )  # fmt: skip
    [line] = catcher.lines
    assert_terminal_safe(line)
    assert "\n" not in line
    assert line.startswith("mail  → oncall@example.com: \\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mfake")
    assert line.endswith(".eml]")
    [eml] = (catcher.mail_dir).glob("*.eml")
    assert _encoded_subject(EVERYTHING).encode() in eml.read_bytes()  # filed as received


async def test_caught_mail_with_a_hostile_recipient_is_one_safe_line(catcher):
    # aiosmtplib refuses control characters in commands; an attacker's client does not,
    # and a quoted local part may hold them.
    reader, writer = await asyncio.open_connection("127.0.0.1", catcher.port)

    async def say(data: bytes) -> bytes:
        writer.write(data)
        await writer.drain()
        return await reader.readline()

    await reader.readline()
    for command in (
        b"HELO attacker\r\n",
        b"MAIL FROM:<attacker@example.com>\r\n",
        b'RCPT TO:<"\x1b]0;pwned\x07\x1b[2J"@example.com>\r\n',
        b"DATA\r\n",
    ):
        assert (await say(command))[:1] in (b"2", b"3"), command
    reply = await say(b"Subject: =?utf-8?q?hi=0D=0Athere=1B=5B2J?=\r\n\r\nbody\r\n.\r\n")
    assert reply.startswith(b"250")
    await say(b"QUIT\r\n")
    writer.close()
    await writer.wait_closed()
    [line] = catcher.lines
    assert_terminal_safe(line)
    assert line.startswith(
        'mail  → "\\x1b]0;pwned\\x07\\x1b[2J"@example.com: hi\\r\\nthere\\x1b[2J'
    )
