"""How the CLI shows cases to people.

Case text is untrusted: every render function here returns terminal-safe text
(escalator.domain.terminal_text), so a title or note cannot move the cursor, clear the
screen or forge a line. Each rendered line is made safe as a whole, so a field
added later is covered too; fields in aligned columns are made safe before they
are padded, so the columns stay aligned.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from escalator.adapters.visibility import case_row  # noqa: F401 (the CLI's rows)
from escalator.domain.durations import format_duration
from escalator.domain.models import CaseStatus
from escalator.domain.terminal_text import terminal_safe


def _when(moment: datetime, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    delta = timedelta(seconds=round((moment - now).total_seconds()))
    relative = (
        f"in {format_duration(delta)}" if delta.total_seconds() > 0
        else f"{format_duration(-delta)} ago"
    )  # fmt: skip
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({relative})"


def render_status(status: CaseStatus, now: datetime | None = None) -> str:
    assignee = status.assignee or "unassigned"
    lines = [
        f"Case {status.case_id} · {status.severity} · {status.title}",
        f"  state       {status.state}",
        f"  tier        L{status.tier_level} {status.tier_name} ({status.team}), {assignee}",
        f"  escalations {status.escalations}" + ("  (SLA breached)" if status.sla_breached else ""),
        f"  policy      {status.policy_name}; account {status.account}",
    ]
    if status.next_deadline:
        deadline = status.next_deadline
        lines.append(f"  next        {deadline.label} {_when(deadline.at, now)}")
        lines.append(f"              then: {deadline.consequence}")
    elif status.state != "resolved":
        lines.append("  next        no deadline: waits for a person on this tier")
    if status.last_escalation:
        note = status.last_escalation.note
        lines.append(f"  escalated   by {status.last_escalation.by}: {note.reason}")
        for step in note.steps_taken:
            lines.append(f"              tried: {step}")
    if status.assessment:
        a = status.assessment
        source = "offline heuristic" if a.source == "offline" else a.model
        lines.append(f"  assessment  {a.confidence} confidence ({source})")
        lines.append(f"              {a.summary[:300]}")
        lines.append(f"              likely cause: {a.likely_cause[:200]}")
        for number, step in enumerate(a.suggested_steps, 1):
            lines.append(f"              {number}. {step[:200]}")
    lines.append("  timeline")
    for event in status.timeline:
        who = f" [{event.actor}]" if event.actor else ""
        kind = terminal_safe(event.kind)
        lines.append(f"    {event.at:%m-%d %H:%M:%S}  {kind:<19}{event.detail}{who}")
    return _safe_lines(lines)


def _safe_lines(lines: list[str]) -> str:
    """One rendered line per item, joined: a newline inside an item is shown as `\\n`."""
    return "\n".join(terminal_safe(line) for line in lines)


def render_rows(rows: list[dict]) -> str:
    if not rows:
        return "no cases match"
    header = f"{'CASE':<16} {'SEV':<4} {'STATUS':<9} {'TIER':<26} {'ASSIGNEE':<14} NEXT DEADLINE"
    lines = [header]
    for row in rows:
        cell = {
            key: terminal_safe(str(value)) if value is not None else ""
            for key, value in row.items()
        }
        tier = f"L{cell['tier']} {cell['tier_name']}" if row["tier"] else "-"
        lines.append(
            f"{cell['case_id']:<16} {cell['severity'] or '-':<4} {cell['status'] or '-':<9} "
            f"{tier[:26]:<26} {(cell['assignee'] or '-')[:14]:<14} {cell['next_deadline'] or '-'}"
        )
    return _safe_lines(lines)
