"""Alert intake: PagerDuty Events v2 events and Alertmanager webhooks as case commands.

Pure: validation, the severity map, deterministic case ids and the text a case
records. The HTTP side (escalator/api/intake.py) authenticates the sender and sends
the commands with update-with-start.

- A source's dedup key names one case: `pd-<hash>` of (account, integration,
  dedup_key), `am-<hash>` of (account, groupKey). Alertmanager's groupKey leaves the
  integration out on purpose: two Alertmanagers of one HA pair, each with its own
  token, land on one case. Once a case has closed for good, the same key goes on to
  the next generation (`<id>-2`, `<id>-3`, ...; see `case_id_generation`).
- Alert text is untrusted. Titles are cut to the case's limit with a marker,
  labels and fields are written one per line as `name: value` with every control
  character shown as a visible escape (escalator/domain/terminal_text.py), and
  every part is bounded, so a note is far below the case's own limits.
- Every note carries a key derived from its text: the HTTP side makes it the
  update's id, so a storm of identical repeats is one update that Temporal answers
  again, and the case records it once.
- Errors are one line naming the field, as PagerDuty words them: `payload.severity:
  must be one of critical, error, warning, info`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from escalator.domain.limits import MAX_TITLE_CHARS
from escalator.domain.policy import Severity
from escalator.domain.terminal_text import terminal_safe

# PagerDuty's severities, and the case severity each becomes.
SEVERITY_MAP: dict[str, Severity] = {
    "critical": "P1",
    "error": "P2",
    "warning": "P3",
    "info": "P4",
}
DEFAULT_SEVERITY: Severity = "P3"  # an Alertmanager group without a known `severity` label
EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
# The actor of everything an integration does: cases record `system` as who acted.
INTEGRATION_USER = "system"
RESOLVED_AT_SOURCE = "resolved at source"

# PagerDuty's own limits: dedup_key 255 characters, summary 1024 (it truncates).
MAX_DEDUP_KEY_CHARS = 255
MAX_PD_SUMMARY_CHARS = 1024
MAX_PD_FIELD_CHARS = 255  # source, component, group, class
MAX_GROUP_KEY_CHARS = 4096
# What one note or description may carry from an alert (well below the case limits).
MAX_VALUE_CHARS = 300  # one label or annotation value
MAX_LABELS = 40  # labels or annotations written per alert
MAX_DETAILS_CHARS = 2000  # PagerDuty's custom_details, as JSON
MAX_ALERT_TEXT_CHARS = 8000  # one note or description
MAX_ALERTS_NOTED = 20  # alerts noted from one Alertmanager notification; the rest counted
MAX_ALERTS = 1000  # alerts one notification may carry at all
# Generations of one dedup key: the case ids a key may go through once cases close.
MAX_GENERATIONS = 100
TRUNCATED = "…"


class InvalidEvent(ValueError):
    """An event or payload that is not valid: `errors` are one line each, naming the field."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Opening:
    """The case to start if the key has none yet (CaseInput without policy and account)."""

    title: str
    description: str
    severity: Severity
    data: dict[str, Any]


@dataclass(frozen=True)
class AlertNote:
    text: str
    key: str  # the same text gives the same key: the update's id


@dataclass(frozen=True)
class Command:
    """What one event asks of its case."""

    action: Literal["trigger", "acknowledge", "resolve"]
    case_id: str  # of the first generation
    opening: Opening | None = None  # trigger only
    notes: tuple[AlertNote, ...] = ()  # trigger only
    summary: str = RESOLVED_AT_SOURCE  # resolve only
    dedup_key: str = ""


# -- case ids ---------------------------------------------------------------------


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()


def pagerduty_case_id(account: str, integration: str, dedup_key: str) -> str:
    return f"pd-{_digest(account, integration, dedup_key)[:20]}"


def alertmanager_case_id(account: str, group_key: str) -> str:
    return f"am-{_digest(account, group_key)[:20]}"


def case_id_generation(case_id: str, generation: int) -> str:
    """The key's case in its `generation` (1 is the first): `am-...`, `am-...-2`, ..."""
    return case_id if generation <= 1 else f"{case_id}-{generation}"


def note_key(case_id: str, text: str) -> str:
    """The id of the update that records `text` on the case: repeats are one update."""
    return f"alert-{_digest(case_id, text)[:32]}"


# -- text -------------------------------------------------------------------------


def severity_for(name: object) -> Severity:
    if not isinstance(name, str):
        return DEFAULT_SEVERITY
    return SEVERITY_MAP.get(name.lower(), DEFAULT_SEVERITY)


def plain(value: object, limit: int = MAX_VALUE_CHARS) -> str:
    """One line of plain text: controls shown as escapes, at most `limit` characters."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return cut(terminal_safe(" ".join(text.split())), limit)


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + TRUNCATED


def title_from(text: str) -> str:
    """A case title: one line, at most the case's limit, cut with a marker."""
    return plain(text, MAX_TITLE_CHARS) or "alert"


def _pairs(mapping: dict[str, Any], indent: str = "  ") -> list[str]:
    names = sorted(mapping)
    lines = [f"{indent}{plain(name, 100)}: {plain(mapping[name])}" for name in names[:MAX_LABELS]]
    if len(names) > MAX_LABELS:
        lines.append(f"{indent}(and {len(names) - MAX_LABELS} more)")
    return lines


def _text(lines: Sequence[str | None]) -> str:
    return cut("\n".join(line for line in lines if line is not None), MAX_ALERT_TEXT_CHARS)


# -- PagerDuty Events API v2 ----------------------------------------------------------


@dataclass(frozen=True)
class PagerDutyEvent:
    routing_key: str
    event_action: Literal["trigger", "acknowledge", "resolve"]
    dedup_key: str | None
    summary: str = ""
    source: str = ""
    severity: str = ""
    component: str | None = None
    group: str | None = None
    event_class: str | None = None
    custom_details: Any = None


def _string(
    body: dict[str, Any], name: str, errors: list[str], *, where: str = "", limit: int = 0,
    required: bool = False,
) -> str | None:  # fmt: skip
    path = f"{where}{name}"
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip() and required):
        if required:
            errors.append(f"{path}: is missing or blank")
        return None
    if not isinstance(value, str):
        errors.append(f"{path}: must be a string")
        return None
    if limit and len(value) > limit:
        errors.append(f"{path}: is {len(value)} characters; the limit is {limit}")
        return None
    return value


def parse_pagerduty(body: object) -> PagerDutyEvent:
    """A valid PagerDuty Events v2 event, or InvalidEvent listing every problem."""
    if not isinstance(body, dict):
        raise InvalidEvent(["event: must be a JSON object"])
    errors: list[str] = []
    routing_key = _string(body, "routing_key", errors, required=True)
    action = _string(body, "event_action", errors, required=True)
    if action is not None and action not in EVENT_ACTIONS:
        errors.append("event_action: must be one of trigger, acknowledge, resolve")
        action = None
    before = len(errors)
    dedup_key = _string(body, "dedup_key", errors, limit=MAX_DEDUP_KEY_CHARS)
    if dedup_key is not None and not dedup_key.strip():
        dedup_key = None
    if action in ("acknowledge", "resolve") and dedup_key is None and len(errors) == before:
        errors.append(f"dedup_key: is required to {action}; send the key the trigger returned")
    summary = source = severity = ""
    component = group = event_class = None
    details: Any = None
    payload = body.get("payload")
    if action == "trigger":  # PagerDuty reads the payload of triggers only
        if not isinstance(payload, dict):
            errors.append(
                "payload: is missing or blank" if payload is None else "payload: must be an object"
            )
        else:
            # Long texts are cut where they are written (summary: 1024 characters, as
            # PagerDuty does; the others: 255), never refused.
            where = "payload."
            summary = _string(payload, "summary", errors, where=where, required=True) or ""
            source = _string(payload, "source", errors, where=where, required=True) or ""
            severity = _string(payload, "severity", errors, where=where, required=True) or ""
            if severity and severity not in SEVERITY_MAP:
                errors.append("payload.severity: must be one of critical, error, warning, info")
            component = _string(payload, "component", errors, where=where)
            group = _string(payload, "group", errors, where=where)
            event_class = _string(payload, "class", errors, where=where)
            _string(payload, "timestamp", errors, where=where)
            details = payload.get("custom_details")
    if errors:
        raise InvalidEvent(errors)
    assert routing_key is not None and action is not None
    return PagerDutyEvent(
        routing_key=routing_key,
        event_action=action,  # type: ignore[arg-type]
        dedup_key=dedup_key,
        summary=summary,
        source=source,
        severity=severity,
        component=component,
        group=group,
        event_class=event_class,
        custom_details=details,
    )


def pagerduty_command(
    event: PagerDutyEvent, *, account: str, integration: str, new_key: str
) -> Command:
    """What the event does to its case. `new_key` is the dedup key when a trigger
    sends none (PagerDuty makes one up and returns it; so do we)."""
    dedup_key = event.dedup_key or new_key
    case_id = pagerduty_case_id(account, integration, dedup_key)
    if event.event_action != "trigger":
        return Command(action=event.event_action, case_id=case_id, dedup_key=dedup_key)
    severity = SEVERITY_MAP[event.severity]
    fields = [
        f"  source: {plain(event.source, MAX_PD_FIELD_CHARS)}",
        f"  severity: {event.severity} ({severity})",
        f"  component: {plain(event.component, MAX_PD_FIELD_CHARS)}" if event.component else None,
        f"  group: {plain(event.group, MAX_PD_FIELD_CHARS)}" if event.group else None,
        f"  class: {plain(event.event_class, MAX_PD_FIELD_CHARS)}" if event.event_class else None,
    ]
    details = []
    if event.custom_details is not None:
        shown = json.dumps(event.custom_details, ensure_ascii=False, sort_keys=True, default=str)
        details = [f"  custom_details: {plain(shown, MAX_DETAILS_CHARS)}"]
    note = _text(
        [
            f"[{integration}] trigger: {plain(event.summary, MAX_PD_SUMMARY_CHARS)}",
            *fields,
            *details,
        ]
    )
    description = _text(
        [
            f"Opened by the {integration} integration (PagerDuty Events v2).",
            f"  dedup_key: {plain(dedup_key)}",
            *fields,
        ]
    )
    opening = Opening(
        title=title_from(event.summary),
        description=description,
        severity=severity,
        data={"intake": integration, "format": "pagerduty", "dedup_key": plain(dedup_key)},
    )
    return Command(
        action="trigger",
        case_id=case_id,
        opening=opening,
        notes=(AlertNote(note, note_key(case_id, note)),),
        dedup_key=dedup_key,
    )


# -- Alertmanager webhook, version 4 ------------------------------------------------


def _labels(value: object, path: str, errors: list[str]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.append(f"{path}: must be an object of strings")
        return {}
    for name, item in value.items():
        if not isinstance(item, str):
            errors.append(f"{path}.{plain(name, 60)}: must be a string")
            return {}
    return value


def alertmanager_command(body: object, *, account: str, integration: str) -> Command:
    """What one Alertmanager (webhook version 4) notification does to its group's case,
    or InvalidEvent naming the first wrong fields."""
    if not isinstance(body, dict):
        raise InvalidEvent(["body: must be a JSON object (Alertmanager's webhook payload)"])
    errors: list[str] = []
    version = body.get("version")
    if version != "4":
        errors.append(
            f'version: must be "4" (Alertmanager\'s webhook version), not {plain(version, 20)}'
        )
    group_key = _string(body, "groupKey", errors, required=True, limit=MAX_GROUP_KEY_CHARS)
    status = _string(body, "status", errors, required=True)
    if status is not None and status not in ("firing", "resolved"):
        errors.append("status: must be firing or resolved")
    common_labels = _labels(body.get("commonLabels"), "commonLabels", errors)
    common_annotations = _labels(body.get("commonAnnotations"), "commonAnnotations", errors)
    group_labels = _labels(body.get("groupLabels"), "groupLabels", errors)
    receiver = _string(body, "receiver", errors, limit=MAX_GROUP_KEY_CHARS) or ""
    external_url = _string(body, "externalURL", errors, limit=MAX_GROUP_KEY_CHARS) or ""
    alerts = body.get("alerts")
    if not isinstance(alerts, list):
        errors.append("alerts: must be a list" if alerts is not None else "alerts: is missing")
        alerts = []
    elif len(alerts) > MAX_ALERTS:
        errors.append(f"alerts: has {len(alerts)} alerts; the limit is {MAX_ALERTS}")
        alerts = []
    checked: list[dict[str, Any]] = []
    for index, alert in enumerate(alerts):
        where = f"alerts[{index}]."
        if not isinstance(alert, dict):
            errors.append(f"alerts[{index}]: must be an object")
            break
        before = len(errors)
        alert_status = _string(alert, "status", errors, where=where, required=True)
        if alert_status is not None and alert_status not in ("firing", "resolved"):
            errors.append(f"{where}status: must be firing or resolved")
        fingerprint = _string(alert, "fingerprint", errors, where=where, required=True, limit=200)
        labels = _labels(alert.get("labels"), f"{where}labels", errors)
        annotations = _labels(alert.get("annotations"), f"{where}annotations", errors)
        starts_at = _string(alert, "startsAt", errors, where=where, limit=64) or ""
        if len(errors) > before:
            break  # the first wrong alert is enough to name
        checked.append({"status": alert_status, "fingerprint": fingerprint, "labels": labels,
                        "annotations": annotations, "startsAt": starts_at})  # fmt: skip
    if errors:
        raise InvalidEvent(errors)
    assert group_key is not None and status is not None
    case_id = alertmanager_case_id(account, group_key)
    if status == "resolved":
        return Command(action="resolve", case_id=case_id, dedup_key=group_key)
    name = common_labels.get("alertname") or group_labels.get("alertname")
    title = common_annotations.get("summary") or name or f"alerts for {receiver or 'a receiver'}"
    severity = severity_for(common_labels.get("severity"))
    notes = []
    for alert in checked[:MAX_ALERTS_NOTED]:
        lines = [
            f"[{integration}] alert {alert['status']}: fingerprint {plain(alert['fingerprint'])}"
            + (f", since {plain(alert['startsAt'], 64)}" if alert["startsAt"] else ""),
            "labels:",
            *_pairs(alert["labels"]),
        ]
        if alert["annotations"]:
            lines += ["annotations:", *_pairs(alert["annotations"])]
        text = _text(lines)
        notes.append(AlertNote(text, note_key(case_id, text)))
    if len(checked) > MAX_ALERTS_NOTED:
        rest = sorted(str(a["fingerprint"]) for a in checked[MAX_ALERTS_NOTED:])
        text = _text(
            [f"[{integration}] and {len(rest)} more alerts in this group (noted: the first "
             f"{MAX_ALERTS_NOTED}); fingerprints: " + ", ".join(plain(f, 40) for f in rest[:100])]
        )  # fmt: skip
        notes.append(AlertNote(text, note_key(case_id, text)))
    truncated = body.get("truncatedAlerts")
    description = _text(
        [
            f"Opened by the {integration} integration (Alertmanager webhook).",
            f"  groupKey: {plain(group_key)}",
            f"  receiver: {plain(receiver)}" if receiver else None,
            f"  externalURL: {plain(external_url)}" if external_url else None,
            f"  truncatedAlerts: {plain(truncated)}"
            if isinstance(truncated, int) and truncated
            else None,
            "group labels:" if group_labels else None,
            *_pairs(group_labels),
            "common annotations:" if common_annotations else None,
            *_pairs(common_annotations),
        ]
    )
    opening = Opening(
        title=title_from(title),
        description=description,
        severity=severity,
        data={"intake": integration, "format": "alertmanager", "group_key": plain(group_key)},
    )
    return Command(
        action="trigger",
        case_id=case_id,
        opening=opening,
        notes=tuple(notes),
        dedup_key=group_key,
    )
