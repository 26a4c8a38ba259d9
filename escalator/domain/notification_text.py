"""Wording of notifications: pure functions from a `Notification` to a mail or a webhook body.

No I/O happens here, so every template can be tested without a server, and the
activities that deliver the result stay small.

Case text (title, description, notes, escalation notes) comes from whoever opened or
worked the case and is untrusted. Two rules keep it harmless:
  - anything that reaches a header goes through `header_safe`, so a line break in a
    title cannot add a header (e.g. a `Bcc:`);
  - the mail body is built once as plain data (`_Section`s) and only then rendered,
    and the HTML renderer escapes *every* string it is given. No template string ever
    mixes markup with case text, so no field can be forgotten.

Longer than most modules: mail and webhook wording share the one escaping path,
and splitting them would invite a second, unescaped one.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from escalator.domain.assessment import AssessmentResult, DraftRequest, offline_draft
from escalator.domain.models import (
    Deadline,
    Escalation,
    EscalationNote,
    Notification,
    TierRef,
)

SUBJECT_PREFIX = "[Escalator]"

# Bidi embedding/override/isolate controls: not line breaks, but they can make a
# subject or a line read differently from what it contains.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


# -- sanitising ----------------------------------------------------------------------


def header_safe(text: str) -> str:
    """`text` as one header-safe line: control characters and line separators become spaces."""
    cleaned = "".join(" " if _is_breaking_control(c) else c for c in text)
    return " ".join(cleaned.split())


def _is_breaking_control(char: str) -> bool:
    # Cc covers CR, LF, TAB, NUL, ESC and NEL (U+0085); Zl/Zp are U+2028/U+2029,
    # which str.splitlines() and some mail clients treat as line breaks.
    return unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in _BIDI_CONTROLS


def _body_safe(text: str) -> str:
    """Multi-line text for a body: keeps line breaks and tabs, drops other controls."""
    text = re.sub(r"\r\n?|[\u0085\u2028\u2029]", "\n", text)
    return "".join(c for c in text if c in "\n\t" or not _is_breaking_control(c)).strip("\n")


def _utc_iso(moment: datetime, timespec: str = "seconds") -> str:
    """`2024-05-01T14:30:00Z`."""
    return _as_utc(moment).isoformat(timespec=timespec).replace("+00:00", "Z")


def _utc_human(moment: datetime) -> str:
    """`2024-05-01 14:30 UTC`, for customers, who do not read ISO 8601."""
    return _as_utc(moment).strftime("%Y-%m-%d %H:%M UTC")


def _as_utc(moment: datetime) -> datetime:
    # Naive datetimes are taken as UTC: Temporal's workflow clock is UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# -- subject ---------------------------------------------------------------------


def subject(notification: Notification) -> str:
    """One line; holds case id, severity and title, so a mailbox can be searched by them."""
    case = notification.case
    if notification.purpose == "customer_escalation":
        # Customers know their case id and title, not severities or tier numbers.
        return header_safe(f"Your case {case.case_id} has been escalated: {case.title}")
    if notification.purpose == "customer_recommendation":
        return header_safe(f"A recommendation for your case {case.case_id}: {case.title}")
    tier = notification.tier.label
    if notification.purpose == "assessment":
        event = f"AI assessment for case {case.case_id}"
        return header_safe(f"{SUBJECT_PREFIX} {event} · {case.severity}: {case.title}")
    events = {
        "repeat": f"still unclaimed at {tier}",
        "stale_reminder": f"no activity on your claimed case at {tier}",
        "claim_released": f"claim released at {tier}, needs a new owner",
        "deescalation": f"returned to {tier} for follow-up",
        "reopened": f"reopened at {tier}",
    }
    if notification.purpose in events:
        event = events[notification.purpose]
    elif notification.purpose == "ai_recommendation":
        event = f"AI recommendation at {tier}"
    elif notification.purpose == "tier_entry":
        event = f"escalated to {tier}" if notification.from_tier else f"new case for {tier}"
    elif notification.purpose == "warning":
        event = f"SLA warning at {tier}"
    else:  # sla_breach
        event = f"SLA breached on final tier {tier}"
    return header_safe(
        f"{SUBJECT_PREFIX} Case {case.case_id} · {case.severity} · {event}: {case.title}"
    )


# -- body as data ----------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    label: str
    value: str


@dataclass(frozen=True)
class _Bullets:
    items: tuple[str, ...]


_Block = str | _Field | _Bullets  # a str is a paragraph


@dataclass(frozen=True)
class _Section:
    heading: str | None
    blocks: tuple[_Block, ...]


def _tier_sections(n: Notification) -> list[_Section]:
    return [
        _Section(None, _what_happened(n)),
        *_assessment_sections(n),
        *_latest_escalation(n.escalations),
        _Section("What has been tried", _what_has_been_tried(n)),
        _Section("Description (excerpt)", (n.case.description_excerpt or "(no description)",)),
        _deadline_section(n.deadline, missed=n.purpose == "sla_breach"),
        _Section(
            None,
            (
                f"You receive this because you are notified for {n.tier.label} "
                f"({n.tier.team}). Message {n.message_id}.",
            ),
        ),
    ]


def _what_happened(n: Notification) -> tuple[_Block, ...]:
    case, tier = n.case, n.tier
    where = _tier_with_team(tier)
    if n.purpose == "tier_entry" and n.from_tier is not None:
        line = (
            f"Case {case.case_id} was escalated from {_tier_with_team(n.from_tier)} to {where}. "
            f"It is unassigned in {tier.label} until someone claims it."
        )
    elif n.purpose == "tier_entry":
        line = f"New {case.severity} case {case.case_id} for {where}."
    elif n.purpose == "assessment":
        line = f"The AI assessment for case {case.case_id} at {where} is ready."
    elif n.purpose == "repeat":
        line = (
            f"Case {case.case_id} is still unclaimed at {where}, the final tier, and its "
            "first response is overdue. Please claim it."
        )
    elif n.purpose == "stale_reminder":
        line = (
            f"Case {case.case_id} at {where} is claimed but has seen no note, update or "
            "resolve for a while. Please add a note or resolve it, or the claim is released."
        )
    elif n.purpose == "claim_released":
        line = (
            f"Case {case.case_id} at {where} saw no activity, so its claim was released. "
            "It needs a new owner: claim it."
        )
    elif n.purpose == "deescalation" and n.from_tier is not None:
        line = (
            f"Case {case.case_id} was returned from {_tier_with_team(n.from_tier)} to {where} "
            "for follow-up. The reason and history are below."
        )
    elif n.purpose == "reopened":
        line = f"Case {case.case_id} was reopened at {where}. Its original SLA history stands."
    elif n.purpose == "ai_recommendation":
        line = (
            f"Case {case.case_id} reached {where}, the automated stage. Its recommendation is "
            "below and was also sent to the customer. A person still resolves the case."
        )
    elif n.purpose == "warning":
        line = (
            f"SLA warning: case {case.case_id} at {where} has used most of its SLA. "
            "Act before the deadline below."
        )
    else:
        line = (
            f"SLA breached: case {case.case_id} missed its SLA at {where}, the final tier. "
            "There is no further tier to escalate to."
        )
    facts: list[_Block] = [
        line,
        _Field("Title", header_safe(case.title)),
        _Field("Severity", case.severity),
        _Field("Account", case.account),
    ]
    if case.customer_name:
        facts.append(_Field("Customer", case.customer_name))
    return tuple(facts)


def _source_label(assessment: AssessmentResult) -> str:
    if assessment.source == "offline":
        return "offline heuristic: extracted from the case, no model was used"
    return f"model {assessment.model}"


def _assessment_sections(n: Notification) -> list[_Section]:
    if n.purpose not in {"assessment", "ai_recommendation"} or n.assessment is None:
        return []
    a = n.assessment
    blocks: list[_Block] = [
        a.summary,
        _Field("Confidence", f"{a.confidence} ({_source_label(a)})"),
        _Field("Likely cause", a.likely_cause),
    ]
    if a.what_we_know:
        blocks += ["What we know:", _Bullets(tuple(a.what_we_know))]
    steps = tuple(f"{i}. {step}" for i, step in enumerate(a.suggested_steps, 1))
    blocks += ["Start here:", _Bullets(steps)]
    return [_Section("AI assessment", tuple(blocks))]


def _customer_recommendation_sections(n: Notification) -> list[_Section]:
    greeting = f"Hello {n.case.customer_name}," if n.case.customer_name else "Hello,"
    blocks: list[_Block] = [
        greeting,
        f"While our team works on your case {n.case.case_id} ({n.case.title}), here is an "
        "automated recommendation based on what we know so far.",
    ]
    if n.assessment is not None:
        # The assessment is written for engineers; the customer gets the client-update
        # wording of it (a tone shift of the same saved content, never new facts).
        update = offline_draft(
            DraftRequest(
                case_id=n.case.case_id,
                title=n.case.title,
                audience="client_update",
                assessment=n.assessment,
                customer_name=n.case.customer_name,
            )
        )
        blocks.append(update.text)
    blocks.append(
        "This recommendation was generated automatically. A person from our team will "
        "follow up and confirm before your case is closed."
    )
    return [_Section(None, tuple(blocks))]


def _tier_with_team(tier: TierRef) -> str:
    return f"{tier.label} ({tier.team})"


def _latest_escalation(escalations: tuple[Escalation, ...]) -> list[_Section]:
    if not escalations:
        return []
    latest = escalations[-1]
    who = (
        f"automatically by {latest.by} (SLA breach)"
        if latest.automatic
        else f"by {latest.by} (manual escalation)"
    )
    blocks: list[_Block] = [
        f"L{latest.from_level} → L{latest.to_level} at {_utc_iso(latest.at)}, {who}.",
        *_note_blocks(latest.note),
    ]
    return [_Section("Latest escalation note", tuple(blocks))]


def _note_blocks(note: EscalationNote) -> list[_Block]:
    blocks: list[_Block] = [_Field("Reason", note.reason or "(none given)")]
    if note.symptoms:
        blocks += [_Field("Symptoms", ""), _Bullets(note.symptoms)]
    if note.steps_taken:
        blocks += [_Field("Steps taken", ""), _Bullets(note.steps_taken)]
    if note.customer_impact:
        blocks.append(_Field("Customer impact", note.customer_impact))
    if note.suggested_next_step:
        blocks.append(_Field("Suggested next step", note.suggested_next_step))
    return blocks


def _what_has_been_tried(n: Notification) -> tuple[_Block, ...]:
    # Every tier's steps the notification carries, not just the last hand-over: the
    # point is that L3 never asks the customer to redo what L1 already did.
    items = [
        f"{step} (L{e.from_level}, {e.by})" for e in n.escalations for step in e.note.steps_taken
    ]
    items += [f"{_utc_iso(note.at)} {note.author}: {note.text}" for note in n.notes]
    if not items:
        return ("Nothing recorded yet.",)
    blocks: list[_Block] = [_Bullets(tuple(items))]
    # A notification carries the newest few only (escalator/domain/limits.py); say so.
    older_notes = n.notes_total - len(n.notes)
    older_escalations = n.escalations_total - len(n.escalations)
    if older_notes > 0 or older_escalations > 0:
        blocks.append(
            f"Older entries are in the case: {older_notes} earlier notes and "
            f"{older_escalations} earlier tier changes (escalator status {n.case.case_id})."
        )
    return tuple(blocks)


def _deadline_section(deadline: Deadline | None, *, missed: bool) -> _Section:
    if deadline is None:
        return _Section("Next deadline", ("None: this tier has no SLA.",))
    if missed:
        return _Section(
            "Missed deadline",
            (
                _Field(deadline.label, _utc_iso(deadline.at)),
                _Field("Consequence", deadline.consequence),
            ),
        )
    return _Section(
        "Next deadline",
        (
            _Field(deadline.label, _utc_iso(deadline.at)),
            _Field("If missed", deadline.consequence),
        ),
    )


def _customer_sections(n: Notification) -> list[_Section]:
    # Deliberately small: no notes, steps, teams or SLA vocabulary, only what the
    # customer can act on. The tier's name is the one internal word they see.
    greeting = f"Hello {n.case.customer_name}," if n.case.customer_name else "Hello,"
    blocks: list[_Block] = [
        greeting,
        f"Your case {n.case.case_id} ({n.case.title}) has been escalated to our "
        f"{n.tier.name} team, who now handle it.",
    ]
    if n.deadline is not None:
        blocks.append(f"You can expect a response by {_utc_human(n.deadline.at)}.")
    blocks.append("You do not need to repeat anything: the team has the full case history.")
    return [_Section(None, tuple(blocks))]


# -- body renderers -----------------------------------------------------------------


def _render_text(sections: Iterable[_Section]) -> str:
    out: list[str] = []
    for section in sections:
        if section.heading:
            heading = _body_safe(section.heading)
            out += [heading, "-" * len(heading)]
        after_paragraph = False
        for index, block in enumerate(section.blocks):
            # A paragraph stands apart; fields and bullets stack line by line.
            if index and (after_paragraph or isinstance(block, str)):
                out.append("")
            after_paragraph = isinstance(block, str)
            if isinstance(block, _Bullets):
                out += [_indent("- " + _body_safe(item), "  ") for item in block.items]
            elif isinstance(block, _Field):
                value = _body_safe(block.value)
                if "\n" in value:
                    out += [f"{_body_safe(block.label)}:", _indent(value, "  ", first="  ")]
                else:
                    out.append(f"{_body_safe(block.label)}: {value}".rstrip())
            else:
                out.append(_body_safe(block))
        out.append("")
    return "\n".join(out)


def _indent(text: str, prefix: str, first: str = "") -> str:
    lines = text.split("\n")
    return "\n".join([first + lines[0], *(prefix + line for line in lines[1:])])


def _render_html(sections: Iterable[_Section], title: str) -> str:
    def esc(text: str) -> str:
        return html.escape(_body_safe(text), quote=True)

    # pre-wrap keeps the line breaks of descriptions and notes without <br> tricks.
    para = '<p style="white-space: pre-wrap; margin: 0 0 8px">'
    out = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title></head>",
        '<body style="font-family: sans-serif; font-size: 14px">',
    ]
    for section in sections:
        if section.heading:
            out.append(f'<h3 style="margin: 16px 0 4px">{esc(section.heading)}</h3>')
        for block in section.blocks:
            if isinstance(block, _Bullets):
                items = "".join(
                    f'<li style="white-space: pre-wrap">{esc(item)}</li>' for item in block.items
                )
                out.append(f'<ul style="margin: 0 0 8px">{items}</ul>')
            elif isinstance(block, _Field):
                value = f" {esc(block.value)}" if block.value else ""
                out.append(f"{para}<strong>{esc(block.label)}:</strong>{value}</p>")
            else:
                out.append(f"{para}{esc(block)}</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# -- public API ------------------------------------------------------------------


def render_email(notification: Notification, *, mail_from: str) -> EmailMessage:
    """The complete mail: headers, a text/plain part and its text/html alternative.

    Rendering is deterministic (Date comes from `occurred_at`), so a retried
    activity sends the same message with the same Message-ID.
    """
    n = notification
    message = EmailMessage()  # default policy: UTF-8 bodies, RFC 2047 for non-ASCII headers
    title = subject(n)
    _set_text_header(message, "Subject", title)
    message["From"] = header_safe(mail_from)
    if n.recipients:
        message["To"] = ", ".join(header_safe(r) for r in n.recipients)
    message["Date"] = format_datetime(_as_utc(n.occurred_at))
    # Verbatim, so the receiving side can de-duplicate a retried delivery.
    message["Message-ID"] = header_safe(n.message_id)
    message["X-Escalator-Case"] = header_safe(n.case.case_id)
    message["X-Escalator-Purpose"] = n.purpose
    if n.channel:
        message["X-Escalator-Channel"] = header_safe(n.channel)

    if n.purpose == "customer_escalation":
        sections = _customer_sections(n)
    elif n.purpose == "customer_recommendation":
        sections = _customer_recommendation_sections(n)
    else:
        sections = _tier_sections(n)
    message.set_content(_render_text(sections), subtype="plain", charset="utf-8")
    message.add_alternative(_render_html(sections, title), subtype="html", charset="utf-8")
    return message


def _set_text_header(message: EmailMessage, name: str, value: str) -> None:
    """Set an unstructured header so that every character, spaces included, survives.

    When CPython (3.11 included; fixed upstream by gh-144156) folds a long non-ASCII
    header, it can put a space between two encoded words, where decoders must drop
    it: "синхронизация – Zoë" arrives as "синхронизация– Zoë". The legacy `Header`
    encoder keeps spaces inside the encoded words, and `set_raw` stores its already
    folded ASCII output so no generator (ours or aiosmtplib's) folds it again.
    """
    if value.isascii():
        message[name] = value
    else:
        message.set_raw(name, Header(value, "utf-8", header_name=name).encode(linesep="\n"))


def webhook_payload(notification: Notification) -> dict[str, Any]:
    """JSON body for `post_webhook`: structured facts, no rendered prose."""
    n = notification
    latest = n.escalations[-1] if n.escalations else None
    return {
        "event": n.purpose,
        "message_id": n.message_id,
        "channel": n.channel,
        "case": {
            "id": n.case.case_id,
            "title": n.case.title,
            "severity": n.case.severity,
            "account": n.case.account,
        },
        "tier": _tier_json(n.tier),
        "from_tier": _tier_json(n.from_tier) if n.from_tier else None,
        "deadline": _deadline_json(n.deadline) if n.deadline else None,
        "latest_escalation": _escalation_json(latest) if latest else None,
        "assessment": n.assessment.model_dump(mode="json") if n.assessment else None,
        "occurred_at": _utc_iso(n.occurred_at, timespec="auto"),
    }


def _tier_json(tier: TierRef) -> dict[str, Any]:
    return {"level": tier.level, "name": tier.name, "team": tier.team, "label": tier.label}


def _deadline_json(deadline: Deadline) -> dict[str, Any]:
    return {
        "at": _utc_iso(deadline.at, timespec="auto"),
        "kind": deadline.kind,
        "clock": deadline.clock,
        "tier_level": deadline.tier_level,
        "label": deadline.label,
        "consequence": deadline.consequence,
    }


def _escalation_json(escalation: Escalation) -> dict[str, Any]:
    note = escalation.note
    return {
        "from_level": escalation.from_level,
        "to_level": escalation.to_level,
        "at": _utc_iso(escalation.at, timespec="auto"),
        "by": escalation.by,
        "automatic": escalation.automatic,
        "note": {
            "reason": note.reason,
            "steps_taken": list(note.steps_taken),
            "symptoms": list(note.symptoms),
            "customer_impact": note.customer_impact,
            "suggested_next_step": note.suggested_next_step,
        },
    }
