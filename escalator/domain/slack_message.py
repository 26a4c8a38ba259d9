"""Wording of Slack messages: a pure function from a `Notification` to the JSON body
an incoming webhook accepts (a `text` fallback plus Block Kit `blocks`).

No I/O happens here; the activity that posts the body stays small.

Case text (title, names, notes, escalation notes, the assessment, team and tier
names) is untrusted, and Slack gives `&`, `<` and `>` a meaning in every text
object: `<!channel>` mentions everyone, `<http://x|y>` is a link. So:
  - every piece of case text goes through `escape`, which turns those three into
    `&amp;`, `&lt;` and `&gt;` (what Slack asks for:
    https://docs.slack.dev/messaging/formatting-message-text) after removing control
    and bidi characters (`clean`);
  - the only `<...>` tokens in a message are the two this module writes itself, a
    date (`<!date^...>`) and the link to the case, whose URL is checked first
    (`checked_case_link`: http(s) only, a refused URL is a `ValueError`);
  - mrkdwn text objects are sent with `verbatim: true`, so Slack does not turn a bare
    URL or channel name in case text into a link either
    (https://docs.slack.dev/reference/block-kit/composition-objects/text-object).

Slack refuses a message over its limits (a section's text over 3000 characters, a
header over 150, a field over 2000, more than 50 blocks), so every text is cut to
fit with an ellipsis, never inside an `&amp;` it was escaped into.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from typing import Any

from escalator.domain.models import Deadline, Escalation, Notification, TierRef
from escalator.domain.notification_text import header_safe, subject

# Slack's own limits (Block Kit reference, docs.slack.dev/reference/block-kit).
SECTION_TEXT_CHARS = 3000
HEADER_TEXT_CHARS = 150
FIELD_TEXT_CHARS = 2000
MAX_FIELDS = 10
MAX_BLOCKS = 50
CONTEXT_TEXT_CHARS = 3000
# Slack truncates a message's `text` past 40,000 characters; it is only the
# notification and screen-reader fallback here, so it is kept short.
FALLBACK_TEXT_CHARS = 3000
# A link's URL: plenty for a case page, and short enough that the link, escaped,
# fits in one section.
LINK_URL_CHARS = 2000

ELLIPSIS = "…"

# Bidi embedding/override/isolate controls: they make a line read differently.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_LINE_BREAKS = re.compile(r"\r\n?|[\u0085\u2028\u2029]")
_ENTITY_TAIL = re.compile(r"&[a-z]{0,3}$")

# An absolute http(s) URL of RFC 3986 characters only: no spaces, quotes, `<`, `>`
# or `|` (which would end a Slack link), and no user info (`https://ui@evil.example`
# reads as the UI but goes elsewhere).
_CASE_LINK = re.compile(
    r"https?://"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])"
    r"(?::[0-9]{1,5})?"
    r"(?:[/?#][A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*)?",
    re.IGNORECASE,
)


# -- escaping --------------------------------------------------------------------------


def clean(text: str, *, multiline: bool = False) -> str:
    """`text` without control, bidi or separator characters, and lone surrogates
    replaced. One line (whitespace runs collapsed) unless `multiline`, which keeps
    line feeds and turns CR LF, CR and the Unicode line separators into them."""
    text = "".join("\ufffd" if unicodedata.category(c) == "Cs" else c for c in text)
    if not multiline:
        return header_safe(text)
    text = _LINE_BREAKS.sub("\n", text).replace("\t", " ")
    kept = "".join(
        c
        for c in text
        if c == "\n" or (unicodedata.category(c) != "Cc" and c not in _BIDI_CONTROLS)
    )
    return "\n".join(line.rstrip() for line in kept.strip("\n").split("\n"))


def escape(text: str, *, multiline: bool = False) -> str:
    """Case text as inert Slack text: `clean`ed, then `&`, `<` and `>` as entities."""
    cleaned = clean(text, multiline=multiline)
    return cleaned.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fit(text: str, limit: int) -> str:
    """`text` (already escaped) cut to `limit` characters with an ellipsis, never
    inside an entity such as `&amp;`."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    cut = _ENTITY_TAIL.sub("", cut)
    return cut.rstrip() + ELLIPSIS


# -- links and dates -----------------------------------------------------------------


def checked_case_link(url: str) -> str:
    """`url` if it is an absolute http(s) URL Slack and PagerDuty can carry as it is.

    A bad link is a `ValueError`, not a message without its link: the link comes
    from the worker's settings, never from case text, so a bad one is a mistake to
    surface (the settings should run this check when they load). The message never
    repeats the URL, which may carry a token.
    """
    if len(url) > LINK_URL_CHARS:
        raise ValueError(f"the case link is longer than {LINK_URL_CHARS} characters")
    if _CASE_LINK.fullmatch(url) is None:
        raise ValueError(
            "the case link must be an absolute http:// or https:// URL without spaces, "
            'user info or the characters < > | " { } \\ ^ `'
        )
    return url


def _link(url: str, label: str) -> str:
    """A Slack link to the checked `url`; `label` is escaped."""
    # `&` is the one character Slack needs escaped that a checked URL can hold.
    token = f"<{checked_case_link(url).replace('&', '&amp;')}|{escape(label)}>"
    if len(token) > SECTION_TEXT_CHARS - 100:
        raise ValueError("the case link, escaped for Slack, is too long for a message")
    return token


def utc_text(moment: datetime) -> str:
    """`2026-03-02 12:00 UTC`: how a moment reads where Slack cannot localise it."""
    return _as_utc(moment).strftime("%Y-%m-%d %H:%M UTC")


def slack_date(moment: datetime) -> str:
    """A date token Slack shows in each reader's time zone, with UTC text as fallback
    (https://docs.slack.dev/messaging/formatting-message-text#date-formatting)."""
    unix = int(_as_utc(moment).timestamp())
    return f"<!date^{unix}^{{date_short_pretty}} {{time}}|{utc_text(moment)}>"


def _as_utc(moment: datetime) -> datetime:
    # Naive datetimes are taken as UTC: Temporal's workflow clock is UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# -- wording ---------------------------------------------------------------------------


def _where(tier: TierRef) -> str:
    return f"*{escape(tier.label)}* ({escape(tier.team)})"


def event_line(notification: Notification) -> str:
    """What happened, in one mrkdwn sentence or two; case text escaped."""
    n = notification
    where = _where(n.tier)
    source = _where(n.from_tier) if n.from_tier is not None else None
    if n.purpose == "tier_entry" and source is not None:
        return (
            f":arrow_up: Escalated from {source} to {where}. "
            f"Unassigned in {escape(n.tier.label)} until someone claims it."
        )
    if n.purpose == "tier_entry":
        return f":new: New {n.case.severity} case for {where}."
    if n.purpose == "warning":
        return (
            f":warning: SLA warning at {where}: most of its SLA is used. Act before the deadline."
        )
    if n.purpose == "sla_breach":
        return (
            f":rotating_light: SLA breached at {where}, the final tier. "
            "There is no further tier to escalate to."
        )
    if n.purpose == "repeat":
        return (
            f":bell: Still unclaimed at {where}, the final tier, and its first response "
            "is overdue. Please claim it."
        )
    if n.purpose == "stale_reminder":
        return (
            f":hourglass: Claimed at {where} but no note, update or resolve for a while. "
            "Add a note or resolve it, or the claim is released."
        )
    if n.purpose == "claim_released":
        return (
            f":unlock: No activity at {where}, so the claim was released. "
            "It needs a new owner: claim it."
        )
    if n.purpose == "deescalation":
        origin = f" from {source}" if source is not None else ""
        return f":arrow_down: Returned{origin} to {where} for follow-up."
    if n.purpose == "reopened":
        return f":repeat: Reopened at {where}. Its original SLA history stands."
    if n.purpose == "assessment":
        return f":robot_face: The AI assessment for {where} is ready."
    if n.purpose == "ai_recommendation":
        return (
            f":robot_face: Reached {where}, the automated stage. Its recommendation is "
            "below and was also sent to the customer. A person still resolves the case."
        )
    if n.purpose == "customer_escalation":
        return f":envelope: The customer was told that {where} now handles the case."
    # customer_recommendation
    return f":envelope: The customer was sent the automated recommendation from {where}."


def _header(n: Notification) -> dict[str, Any]:
    case = n.case
    line = f"{case.severity} · Case {escape(case.case_id)}: {escape(case.title)}"
    return {"type": "header", "text": _plain(fit(line, HEADER_TEXT_CHARS))}


def _fields(n: Notification) -> list[str]:
    case = n.case
    fields = [
        f"*Severity*\n{case.severity}",
        f"*Tier*\n{escape(n.tier.label)} ({escape(n.tier.team)})",
        f"*Account*\n{escape(case.account)}",
    ]
    if case.customer_name:
        fields.append(f"*Customer*\n{escape(case.customer_name)}")
    if n.deadline is not None:
        fields += _deadline_fields(n.deadline, missed=n.purpose == "sla_breach")
    return [fit(f, FIELD_TEXT_CHARS) for f in fields[:MAX_FIELDS]]


def _deadline_fields(deadline: Deadline, *, missed: bool) -> list[str]:
    title = "Missed deadline" if missed else "Deadline"
    then = "Consequence" if missed else "If missed"
    return [
        f"*{title}*\n{escape(deadline.label)}: {slack_date(deadline.at)}",
        f"*{then}*\n{escape(deadline.consequence)}",
    ]


def _note_text(latest: Escalation) -> str:
    note = latest.note
    who = (
        f"automatically by {escape(latest.by)} (SLA breach)"
        if latest.automatic
        else f"by {escape(latest.by)}"
    )
    lines = [
        f"*Latest escalation note*: L{latest.from_level} → L{latest.to_level} {who}",
        f"*Reason:* {escape(note.reason) or '(none given)'}",
    ]
    if note.symptoms:
        lines += ["*Symptoms:*", *(f"• {escape(s)}" for s in note.symptoms)]
    if note.customer_impact:
        lines.append(f"*Customer impact:* {escape(note.customer_impact)}")
    if note.suggested_next_step:
        lines.append(f"*Suggested next step:* {escape(note.suggested_next_step)}")
    return "\n".join(lines)


def _tried_text(n: Notification) -> str:
    # Every tier's steps the notification carries, and the newest notes, as in mail:
    # the receiving tier never asks the customer to redo what was done.
    items = [
        f"• {escape(step)} (L{e.from_level}, {escape(e.by)})"
        for e in n.escalations
        for step in e.note.steps_taken
    ]
    items += [
        f"• {utc_text(note.at)} {escape(note.author)}: {escape(note.text, multiline=True)}"
        for note in n.notes
    ]
    lines = ["*What has been tried*", *(items or ["Nothing recorded yet."])]
    older_notes = n.notes_total - len(n.notes)
    older_escalations = n.escalations_total - len(n.escalations)
    if older_notes > 0 or older_escalations > 0:
        lines.append(
            f"_Older entries are in the case: {older_notes} earlier notes and "
            f"{older_escalations} earlier tier changes._"
        )
    return "\n".join(lines)


def _assessment_text(n: Notification) -> str | None:
    if n.purpose not in {"assessment", "ai_recommendation"} or n.assessment is None:
        return None
    a = n.assessment
    source = (
        "offline heuristic, no model was used"
        if a.source == "offline"
        else f"model {escape(a.model or 'unknown')}"
    )
    steps = [f"{i}. {escape(step)}" for i, step in enumerate(a.suggested_steps, 1)]
    return "\n".join(
        [
            "*AI assessment*",
            escape(a.summary, multiline=True),
            f"*Confidence:* {escape(a.confidence)} ({source})",
            f"*Likely cause:* {escape(a.likely_cause)}",
            "*Start here:*",
            *steps,
        ]
    )


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def _mrkdwn(text: str, limit: int = SECTION_TEXT_CHARS) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": fit(text, limit), "verbatim": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text)}


# -- public API ------------------------------------------------------------------------


def slack_payload(notification: Notification, *, case_link: str | None) -> dict[str, Any]:
    """The incoming-webhook body: `text` (the fallback for notifications) and `blocks`.

    Blocks, in order: a header with the case line (severity, id, title); what
    happened; fields with severity, tier, account, customer and deadline; on a
    hand-over (an escalation or de-escalation) the latest escalation note and what
    has been tried; the AI assessment for the purposes that carry it; the link to
    the case when `case_link` is given (a `ValueError` if it is not http(s)); and the
    message id. Deterministic, so a retried delivery posts the same message.
    """
    n = notification
    link = _link(case_link, f"Open case {n.case.case_id}") if case_link is not None else None
    blocks: list[dict[str, Any]] = [
        _header(n),
        _section(event_line(n)),
        {"type": "section", "fields": [_mrkdwn(f, FIELD_TEXT_CHARS) for f in _fields(n)]},
    ]
    if n.from_tier is not None:
        if n.escalations:
            blocks.append(_section(_note_text(n.escalations[-1])))
        blocks.append(_section(_tried_text(n)))
    assessment = _assessment_text(n)
    if assessment is not None:
        blocks.append(_section(assessment))
    if link is not None:
        blocks.append(_section(f":link: {link}"))
    footer = f"Escalator · message {escape(n.message_id)}"
    blocks.append({"type": "context", "elements": [_mrkdwn(footer, CONTEXT_TEXT_CHARS)]})
    return {
        "text": fit(escape(subject(n)), FALLBACK_TEXT_CHARS),
        "blocks": blocks[:MAX_BLOCKS],
        # No preview of the case page (or of anything else) under the message.
        "unfurl_links": False,
        "unfurl_media": False,
    }
