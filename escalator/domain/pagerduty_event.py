"""PagerDuty Events API v2 bodies: pure functions from a case to what `/v2/enqueue` takes.

The field names, the `event_action` values, the severities and the limits
(`summary` at most 1024 characters, `dedup_key` at most 255) follow PagerDuty's
"Send an Alert Event" reference:
https://developer.pagerduty.com/docs/events-api-v2/trigger-events/
(source: github.com/PagerDuty/developer-docs, docs/events-API-v2/02-Trigger-Events.md).

One alert per case: its `dedup_key` is the case id, so a repeated trigger (a retry,
or the case entering another paging tier) adds to the open alert instead of paging
again, and the claim's `acknowledge` and the resolve's `resolve` reach the same
alert. PagerDuty applies them only when they come through the routing key of the
trigger, and drops them once the alert is resolved; a trigger after a resolve (a
reopened case) opens a new alert.

The routing key is a secret: it appears only in the top-level `routing_key` of a
body, never in `summary`, `custom_details` or an error message.

Severity mapping (PagerDuty has four levels, Escalator five):

    ====  ===========  ============================================
    P0    critical     production outage
    P1    error        production degradation
    P2    warning      a feature broken for some
    P3    info         the default case
    P4    info         the lowest; PagerDuty has nothing below info
    ====  ===========  ============================================
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from escalator.domain.models import Notification, case_id_is_valid
from escalator.domain.notification_text import header_safe
from escalator.domain.policy import Severity
from escalator.domain.slack_message import checked_case_link

PagerDutySeverity = Literal["critical", "error", "warning", "info"]

SEVERITY: dict[Severity, PagerDutySeverity] = {
    "P0": "critical",
    "P1": "error",
    "P2": "warning",
    "P3": "info",
    "P4": "info",
}

SOURCE = "escalator"
SUMMARY_CHARS = 1024
DEDUP_KEY_CHARS = 255
ELLIPSIS = "…"
# PagerDuty's keys are 32 characters; any printable ASCII without spaces is allowed
# here, so a test stand-in or a proxy may use its own.
_ROUTING_KEY = re.compile(r"[\x21-\x7e]{1,256}")


def dedup_key(case_id: str) -> str:
    """The alert's key: the case id itself (at most 64 characters, so within 255)."""
    if not case_id_is_valid(case_id):
        raise ValueError("not a valid case id, so it cannot key a PagerDuty alert")
    return case_id


def summary(notification: Notification) -> str:
    """One line, the alert's title: the case line and the tier that has it."""
    case, tier = notification.case, notification.tier
    line = header_safe(
        f"{case.severity} case {case.case_id}: {case.title} · {tier.label} ({tier.team})"
    )
    return line if len(line) <= SUMMARY_CHARS else line[: SUMMARY_CHARS - 1].rstrip() + ELLIPSIS


def trigger_event(
    notification: Notification, *, routing_key: str, case_link: str | None
) -> dict[str, Any]:
    """The `trigger` body for the case's alert.

    `custom_details` carries the tier and the latest escalation note (its reason and
    the steps tried at every tier the notification carries), never the routing key.
    `links` holds the case page when `case_link` is given (a `ValueError` if it is
    not an http(s) URL, as for Slack).
    """
    n = notification
    latest = n.escalations[-1] if n.escalations else None
    details: dict[str, Any] = {
        "case_id": n.case.case_id,
        "purpose": n.purpose,
        "severity": n.case.severity,
        "account": header_safe(n.case.account),
        "tier": header_safe(n.tier.label),
        "team": header_safe(n.tier.team),
        "from_tier": header_safe(n.from_tier.label) if n.from_tier else None,
        "note_reason": header_safe(latest.note.reason) if latest else None,
        "steps_tried": [
            header_safe(f"{step} (L{e.from_level}, {e.by})")
            for e in n.escalations
            for step in e.note.steps_taken
        ],
        "deadline": (
            {
                "label": header_safe(n.deadline.label),
                "at": _utc_iso(n.deadline.at),
                "consequence": header_safe(n.deadline.consequence),
            }
            if n.deadline
            else None
        ),
        "message_id": n.message_id,
    }
    body: dict[str, Any] = {
        "routing_key": _checked_routing_key(routing_key),
        "event_action": "trigger",
        "dedup_key": dedup_key(n.case.case_id),
        "payload": {
            "summary": summary(n),
            "source": SOURCE,
            "severity": SEVERITY[n.case.severity],
            "timestamp": _utc_iso(n.occurred_at),
            "group": header_safe(n.tier.team),
            "class": n.purpose,
            "custom_details": details,
        },
        "client": "Escalator",
    }
    if case_link is not None:
        body["links"] = [
            {"href": checked_case_link(case_link), "text": f"Case {n.case.case_id} in Escalator"}
        ]
    return body


def acknowledge_event(case_id: str, routing_key: str) -> dict[str, Any]:
    """The `acknowledge` body: someone claimed the case, so the alert stops paging."""
    return _follow_up("acknowledge", case_id, routing_key)


def resolve_event(case_id: str, routing_key: str) -> dict[str, Any]:
    """The `resolve` body: the case is resolved, and so is its alert."""
    return _follow_up("resolve", case_id, routing_key)


def _follow_up(
    action: Literal["acknowledge", "resolve"], case_id: str, routing_key: str
) -> dict[str, Any]:
    return {
        "routing_key": _checked_routing_key(routing_key),
        "event_action": action,
        "dedup_key": dedup_key(case_id),
    }


def _checked_routing_key(routing_key: str) -> str:
    # The message never quotes the key: errors end up on the timeline and in logs.
    if _ROUTING_KEY.fullmatch(routing_key) is None:
        raise ValueError("the PagerDuty routing key is empty or holds spaces or control characters")
    return routing_key


def _utc_iso(moment: datetime) -> str:
    """`2026-03-02T08:00:00Z`; naive datetimes are taken as UTC (the workflow clock)."""
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.isoformat(timespec="seconds").replace("+00:00", "Z")
