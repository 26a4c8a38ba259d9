"""How the CLI shows cases to people."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.client import WorkflowExecution

from escalator import search_attributes as search
from escalator.durations import format_duration
from escalator.models import CaseStatus


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
        lines.append(f"    {event.at:%m-%d %H:%M:%S}  {event.kind:<19}{event.detail}{who}")
    return "\n".join(lines)


def case_row(execution: WorkflowExecution) -> dict:
    attributes = execution.typed_search_attributes
    deadline = attributes.get(search.NEXT_DEADLINE)
    return {
        "case_id": execution.id.removeprefix("case-"),
        "status": attributes.get(search.CASE_STATUS),
        "tier": attributes.get(search.CASE_TIER),
        "tier_name": attributes.get(search.CASE_TIER_NAME),
        "team": attributes.get(search.CASE_TEAM),
        "severity": attributes.get(search.CASE_SEVERITY),
        "assignee": attributes.get(search.CASE_ASSIGNEE),
        "sla_breached": attributes.get(search.SLA_BREACHED),
        "next_deadline": deadline.isoformat() if deadline else None,
        "started": execution.start_time.isoformat() if execution.start_time else None,
        "workflow_status": execution.status.name.lower() if execution.status else None,
    }


def render_rows(rows: list[dict]) -> str:
    if not rows:
        return "no cases match"
    header = f"{'CASE':<16} {'SEV':<4} {'STATUS':<9} {'TIER':<26} {'ASSIGNEE':<14} NEXT DEADLINE"
    lines = [header]
    for row in rows:
        tier = f"L{row['tier']} {row['tier_name'] or ''}" if row["tier"] else "-"
        lines.append(
            f"{row['case_id']:<16} {row['severity'] or '-':<4} {row['status'] or '-':<9} "
            f"{tier[:26]:<26} {(row['assignee'] or '-')[:14]:<14} {row['next_deadline'] or '-'}"
        )
    return "\n".join(lines)
