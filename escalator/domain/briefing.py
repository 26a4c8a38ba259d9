"""The handoff briefing: what the Web UI shows for a case, in markdown.

Pure functions of the case's status, so the workflow can refresh the briefing on
every change (it costs no history: current details are served by a query) and
tests can check it without Temporal.
"""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING

from escalator.domain.models import CaseInput, CaseStatus

if TYPE_CHECKING:
    from escalator.domain.assessment import AssessmentResult

_MAX_LIST_ITEMS = 8
_LATEST_NOTES = 3  # the briefing is a glance; `escalator status` shows more


def _md(text: str) -> str:
    """Case text is untrusted: keep it on one line and neutralise markdown/HTML."""
    flat = " ".join(str(text).split())
    # CommonMark backslash escapes: `\\<img>` renders as text, never as a tag. (The
    # Web UI shows HTML entities literally, so entities would garble the text.)
    for char in "\\`*_[]#|<>&!":
        flat = flat.replace(char, "\\" + char)
    return flat


def render_static_details(case: CaseInput) -> str:
    customer = case.customer
    who = "none recorded"
    if customer is not None:
        who = " · ".join(_md(v) for v in (customer.name, customer.email) if v) or who
    return "\n".join(
        [
            f"**Customer:** {who}",
            f"**Account:** {_md(case.account)}",
            f"**Policy:** {_md(case.policy.name)}",
            f"**Opened as:** {case.severity}",
        ]
    )


def render_briefing(status: CaseStatus) -> str:
    assessment = status.assessment
    lines = [f"## Handoff briefing · case {_md(status.case_id)}", ""]
    owner = status.assignee or "unassigned"
    lines.append(
        f"**Owner:** L{status.tier_level} {_md(status.tier_name)} "
        f"({_md(status.team)}) · **Assignee:** {_md(owner)} · **State:** {status.state}"
    )
    if status.next_deadline:
        deadline = status.next_deadline
        when = deadline.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        lines.append(
            f"**Next deadline:** {when}, {_md(deadline.label)}; then {_md(deadline.consequence)}"
        )
    elif status.state == "resolved":
        lines.append("**Next deadline:** none, the case is resolved")
    else:
        lines.append("**Next deadline:** none; this tier holds the case until a person acts")
    if status.hold is not None:
        until = ""
        if status.hold.until:
            until = f" until {status.hold.until.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        lines.append(f"**On hold{until}:** {_md(status.hold.reason)} (SLA clocks paused)")
    if status.sla_breached:
        lines.append("**SLA:** breached at least once")
    if status.needs_review:
        lines.append("**Needs review:** the case bounced between tiers; manual moves are refused")

    escalation = status.last_escalation
    if escalation is not None:
        note = escalation.note
        how = "automatically" if escalation.automatic else f"by {_md(escalation.by)}"
        lines += [
            "",
            f"### Last escalation: L{escalation.from_level} → L{escalation.to_level}, {how}",
        ]
        lines.append(f"**Why:** {_md(note.reason)}")
        if note.steps_taken:
            lines.append("**Tried:**")
            lines += [f"- {_md(step)}" for step in note.steps_taken[:_MAX_LIST_ITEMS]]
        if note.symptoms:
            symptoms = note.symptoms[:_MAX_LIST_ITEMS]
            lines.append("**Symptoms:** " + "; ".join(_md(s) for s in symptoms))
        if note.customer_impact:
            lines.append(f"**Customer impact:** {_md(note.customer_impact)}")

    if assessment is not None:
        label = (
            "offline heuristic"
            if assessment.source == "offline"
            else _md(assessment.model or "model")
        )
        lines += ["", f"### AI assessment ({assessment.confidence} confidence, {label})"]
        lines.append(_md(assessment.summary))
        if assessment.likely_cause:
            lines.append(f"**Likely cause:** {_md(assessment.likely_cause)}")

    lines += ["", "### Start here"]
    lines += [f"{i}. {_md(step)}" for i, step in enumerate(_start_here(status, assessment), 1)]
    if status.notes:
        latest = status.notes[-_LATEST_NOTES:]
        total = max(status.notes_total, len(status.notes))
        counted = f" ({len(latest)} of {total})" if total > len(latest) else ""
        lines += ["", f"### Latest notes{counted}"]
        lines += [f"- {_md(n.author)}: {_md(n.text[:300])}" for n in latest]
    return "\n".join(lines)


def _start_here(status: CaseStatus, assessment: AssessmentResult | None) -> list[str]:
    if assessment is not None and assessment.suggested_steps:
        return list(assessment.suggested_steps[:5])
    steps: list[str] = []
    escalation = status.last_escalation
    if escalation and escalation.note.suggested_next_step:
        steps.append(escalation.note.suggested_next_step)
    if status.state == "open":
        # Plain words: the Web UI's markdown shows backticks and turns "--" into a dash.
        steps.append(f"Claim the case (escalator claim {status.case_id})")
    if escalation and escalation.note.steps_taken:
        steps.append("Skip what was already tried (above); do not ask the customer to repeat it")
    steps.append(f"Read the timeline (escalator status {status.case_id})")
    return steps
