"""`escalator report` as text, JSON and CSV (the HTML report has its own module).

Case text in a report (titles, notes, names) is untrusted: text output is made
terminal-safe line by line, and JSON escapes control characters, so a title
cannot move a supervisor's cursor or forge a line. CSV cells that a spreadsheet
would run as a formula (`=`, `+`, `-`, `@`) are quoted with a leading `'`.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

from escalator.domain.metrics import Duration, Report, Summary
from escalator.domain.terminal_text import json_terminal_safe, terminal_safe


def as_data(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data, with the keys docs/metrics.md lists."""
    data: dict[str, Any] = report.model_dump(mode="json")
    return data


def as_json(report: Report) -> str:
    return json_terminal_safe(json.dumps(as_data(report), indent=2))


def as_csv(report: Report) -> str:
    """One row per figure: `figure,value`, the figure a dotted path into the JSON
    (`escalations.by_reason.sla`, `l3_reviews.0.case_id`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["figure", "value"])
    for path, value in _flatten(as_data(report)):
        writer.writerow([path, _cell(value)])
    return out.getvalue()


def _flatten(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        if not value:
            return [(path, "")]
        return [row for key, item in value.items() for row in _flatten(item, _join(path, key))]
    if isinstance(value, list):
        if not value:
            return [(path, "")]
        return [row for i, item in enumerate(value) for row in _flatten(item, _join(path, i))]
    return [(path, value)]


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value  # never a formula in the supervisor's spreadsheet
    return value


# -- text ---------------------------------------------------------------------------------


def as_text(report: Report) -> str:
    lines = [_period_line(report), ""]
    lines += [
        "Response (calendar | business clock)",
        _duration_line("MTTA (created to first claim)", report.mtta_seconds),
        *[
            _duration_line(f"  {tier} (tier entry to claim)", figure)
            for tier, figure in report.mtta_by_tier_seconds.items()
        ],
        f"  never claimed: {report.unclaimed}",
        _duration_line("MTTR (created to last resolve)", report.mttr_seconds),
        _duration_line("first action after claim", report.first_action_seconds),
        _duration_line("time on hold (held cases)", report.hold_seconds),
        "",
    ]
    e = report.escalations
    lines += [
        f"Escalations: {e.total} up, {e.deescalations} down; "
        f"tier hops per case {_number(e.hops_per_case.mean)}",
        "  by tier      " + _counts(e.by_tier),
        "  by reason    " + _counts(e.by_reason),
        "  by category  " + _counts(e.by_category),
        "  by agent     " + _counts(e.by_agent),
        "  rate         " + _rates(e.rate_by_tier),
        "",
        f"SLA compliance: overall {_percent(report.sla_compliance.overall)}; "
        + _rates(report.sla_compliance.by_tier),
        f"Reopen rate: {_percent(report.reopen_rate)}; "
        f"needs review (ping-pong): {report.needs_review.count}"
        + (f" ({', '.join(report.needs_review.case_ids)})" if report.needs_review.case_ids else ""),
        "",
    ]
    lines.append(f"L3 reviews: {len(report.l3_reviews)}")
    for review in report.l3_reviews:
        arrival = review.reached_by
        lines += [
            f"  {review.case_id} · {review.severity} · {review.title}",
            f"    reached L3 from {arrival.from_tier} ({arrival.reason}, by "
            f"{arrival.by or 'routing'}): {arrival.note}",
            "    tried: " + ("; ".join(review.steps_taken) or "-"),
            "    time in tier: "
            + ", ".join(f"{t} {_seconds(s)}" for t, s in review.time_in_tier_seconds.items()),
            *[f"    note {_when(n.at)} {n.by or '-'}: {n.text}" for n in review.notes],
        ]
    lines.append("")
    lines += _open_lines(report.open)
    return "\n".join(terminal_safe(line) for line in lines) + "\n"


def _open_lines(backlog: dict[str, Any] | None) -> list[str]:
    if backlog is None:
        return ["Open now: not read (Temporal not asked or not reachable)"]
    lines = [
        f"Open now: {backlog['total']}",
        "  by tier  " + _counts(backlog["by_tier"]),
        "  by age   " + _counts(backlog["by_age"]),
        f"  at >= 75 % of the running SLA: {len(backlog['at_risk'])}",
    ]
    for row in backlog["at_risk"]:
        lines.append(
            f"    {row['case_id']} {row['tier']} {row['state']} "
            f"{_percent(row['sla_used'])} used, {row['assignee'] or 'unassigned'}"
        )
    return lines


def _period_line(report: Report) -> str:
    start, end = report.period.get("from"), report.period.get("to")
    span = f"{_when(start) if start else 'the beginning'} to {_when(end) if end else 'now'}"
    cases = f"{report.cases} case" + ("" if report.cases == 1 else "s")
    return f"Escalator report: {cases} resolved from {span}"


def _duration_line(label: str, figure: Duration) -> str:
    return f"  {label:<34} {_summary(figure)} | {_summary(figure.business)}"


def _summary(summary: Summary) -> str:
    if not summary.n:
        return "n/a (n=0)"
    return (
        f"mean {_seconds(summary.mean)}, median {_seconds(summary.median)}, "
        f"p95 {_seconds(summary.p95)} (n={summary.n})"
    )


def _seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    seconds = round(value)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if hours else []
    parts += [f"{minutes}m"] if minutes and not days else []
    parts += [f"{secs}s"] if secs and not (days or hours) else []
    return " ".join(parts) or "0s"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def _rates(rates: dict[str, float | None]) -> str:
    return ", ".join(f"{tier} {_percent(rate)}" for tier, rate in rates.items()) or "-"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {value}" for key, value in counts.items()) or "-"


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"
