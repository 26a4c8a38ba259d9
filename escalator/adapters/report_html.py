"""`escalator report --format html`: one self-contained page a supervisor opens.

The page carries everything it shows: the charts are matplotlib PNGs inlined as
`data:` URLs, the style is inline, and there is no script. Its content-security
policy allows nothing else, so even a page that went wrong cannot fetch or run
anything. Case text (titles, notes, agents, categories, ids) is untrusted: every
piece is HTML-escaped, with its hidden characters (bidi overrides, controls) shown
as visible escapes as in the text report. The charts hold only labels the report
makes itself (tier keys, reasons, ISO weeks), and those still have `$` escaped so
matplotlib never parses them as mathtext.

matplotlib is driven through its object API (`Figure` and the Agg canvas), never
pyplot: nothing global is touched, no GUI backend is chosen, no window can open.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from escalator.domain import report_weeks
from escalator.domain.ledger import CaseHistory
from escalator.domain.metrics import Duration, L3Review, Report, Summary, tier_key
from escalator.domain.terminal_text import terminal_safe

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
# One palette for every chart: tiers and reasons keep their colour from chart to chart.
COLOURS = ("#3b6ea8", "#e0913a", "#5a9e6f", "#c8524d", "#8a6bb0", "#8c6d5a", "#d17fb5", "#7f7f7f")
REASON_COLOURS = {"sla": "#c8524d", "manual": "#3b6ea8", "severity": "#e0913a", "ai": "#8a6bb0"}
STATISTICS = (("median", "#3b6ea8", "-"), ("mean", "#5a9e6f", "--"), ("p95", "#c8524d", ":"))
FIGURE_SIZE = (5.2, 2.8)  # inches; at DPI, about 1.6 times the size it is shown at
DPI = 160
SHOWN_WIDTH = 480  # CSS pixels, for a reader that drops the stylesheet (a mail client)


def render(report: Report, histories: Sequence[CaseHistory]) -> str:
    """The report as one complete HTML document. `histories` are the cases the report
    counts (after any --team filter): the weekly charts are drawn from them."""
    weeks = report_weeks.weekly(
        histories, period_from=report.period.get("from"), period_to=report.period.get("to")
    )
    body = [
        _header(report),
        _headline(report),
        _section("Trends", _charts(weeks)),
        _section("SLA compliance", _compliance(report, histories)),
        _section("Response", _response_table(report)),
        _section("Escalations", _escalation_tables(report)),
        _section("Quality", _quality(report)),
        _section(f"L3 reviews ({len(report.l3_reviews)})", _l3_reviews(report.l3_reviews)),
        _section("Open now", _backlog(report.open)),
        _section("Week by week", _weeks_table(weeks)),
    ]
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{_e(_title(report))}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


# -- text -----------------------------------------------------------------------------------


def _e(value: object, *, multiline: bool = False) -> str:
    """Untrusted text as HTML: hidden characters made visible, then escaped."""
    return html.escape(terminal_safe(str(value), multiline=multiline), quote=True)


def duration(seconds: float | None) -> str:
    """Human-readable: `45s`, `4m 30s`, `2h 05m`, `3d 04h`; `n/a` for nothing."""
    if seconds is None:
        return "n/a"
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def _when(moment: object) -> str:
    if moment is None:
        return "-"
    # The backlog is a plain dict: a deadline in it may be a datetime or its ISO text.
    return f"{moment:%Y-%m-%d %H:%M} UTC" if isinstance(moment, datetime) else str(moment)


def _title(report: Report) -> str:
    start, end = report.period.get("from"), report.period.get("to")
    span = f"{start:%Y-%m-%d}" if start else "the beginning"
    return f"Escalator report, {span} to {f'{end:%Y-%m-%d}' if end else 'now'}"


# -- page parts -----------------------------------------------------------------------------


def _header(report: Report) -> str:
    start, end = report.period.get("from"), report.period.get("to")
    cases = f"{report.cases} case" + ("" if report.cases == 1 else "s")
    return (
        "<header><h1>Escalator report</h1>"
        f"<p>{_e(cases)} resolved from {_e(_when(start) if start else 'the beginning')} "
        f"to {_e(_when(end) if end else 'now')}. Every figure is defined in "
        "<code>docs/metrics.md</code>.</p></header>"
    )


def _headline(report: Report) -> str:
    cards = [
        ("cases resolved", str(report.cases)),
        ("MTTA median", duration(report.mtta_seconds.median)),
        ("MTTR median", duration(report.mttr_seconds.median)),
        ("escalations", str(report.escalations.total)),
        ("SLA compliance", percent(report.sla_compliance.overall)),
        ("reopen rate", percent(report.reopen_rate)),
        ("L3 reviews", str(len(report.l3_reviews))),
        ("needs review", str(report.needs_review.count)),
    ]
    items = "".join(
        f'<div class="card"><div class="value">{_e(value)}</div>'
        f'<div class="label">{_e(label)}</div></div>'
        for label, value in cards
    )
    return f'<section class="cards" aria-label="headline figures">{items}</section>'


def _section(title: str, content: str) -> str:
    return f"<section><h2>{_e(title)}</h2>{content}</section>"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], *, empty: str = "none") -> str:
    """A table from already-escaped headings and cells (`_e` them first); every column
    but the first holds figures and aligns right."""
    if not rows:
        return f'<p class="muted">{_e(empty)}</p>'
    cells = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _summary_cells(summary: Summary) -> list[str]:
    if not summary.n:
        return ['<span class="muted">n/a</span>'] * 3 + ["0"]
    return [
        _e(duration(summary.mean)),
        _e(duration(summary.median)),
        _e(duration(summary.p95)),
        _e(summary.n),
    ]


def _response_table(report: Report) -> str:
    rows: list[tuple[str, Duration]] = [("MTTA (created to first claim)", report.mtta_seconds)]
    rows += [
        (f"MTTA at {tier} (tier entry to claim)", figure)
        for tier, figure in report.mtta_by_tier_seconds.items()
    ]
    rows += [
        ("MTTR (created to last resolve)", report.mttr_seconds),
        ("First action after claim", report.first_action_seconds),
        ("Time on hold (held cases)", report.hold_seconds),
    ]
    head = ["figure", *(f"{s} (calendar)" for s in ("mean", "median", "p95")), "n"]
    head += [*(f"{s} (business)" for s in ("mean", "median", "p95")), "n"]
    table = _table(
        head,
        [[_e(label), *_summary_cells(fig), *_summary_cells(fig.business)] for label, fig in rows],
    )
    return table + (
        f'<p class="muted">Never claimed (not in MTTA): {_e(report.unclaimed)}. '
        "Business: the case's calendar, time on hold left out.</p>"
    )


def _counts(title: str, counts: dict[str, int], extra: dict[str, str] | None = None) -> str:
    head = [_e(title), "escalations"] + (["escalation rate"] if extra is not None else [])
    rows = [
        [_e(key), _e(value)] + ([_e(extra.get(key, "n/a"))] if extra is not None else [])
        for key, value in counts.items()
    ]
    return f'<div class="part"><h3>By {_e(title)}</h3>{_table(head, rows)}</div>'


def _escalation_tables(report: Report) -> str:
    e = report.escalations
    rates = {tier: percent(rate) for tier, rate in e.rate_by_tier.items()}
    by_tier = {tier: e.by_tier.get(tier, 0) for tier in e.rate_by_tier} | e.by_tier
    intro = (
        f"<p>{_e(e.total)} up, {_e(e.deescalations)} down; tier hops per case: mean "
        f"{_e('n/a' if e.hops_per_case.mean is None else f'{e.hops_per_case.mean:g}')}, "
        f"p95 {_e('n/a' if e.hops_per_case.p95 is None else f'{e.hops_per_case.p95:g}')}.</p>"
    )
    parts = [
        _counts("tier", by_tier, rates),
        _counts("reason", e.by_reason),
        _counts("category", e.by_category),
        _counts("agent", e.by_agent),
    ]
    return intro + f'<div class="grid">{"".join(parts)}</div>'


def _compliance_levels(report: Report, histories: Sequence[CaseHistory]) -> dict[str, float | None]:
    """Compliance by tier, with the policies' tiers no case entered shown as n/a."""
    levels = {t.level for h in histories for t in h.facts.policy.tiers}
    known = dict(report.sla_compliance.by_tier)
    for level in levels:
        known.setdefault(tier_key(level), None)
    return dict(sorted(known.items(), key=lambda item: report_weeks.tier_order(item[0])))


def _compliance(report: Report, histories: Sequence[CaseHistory]) -> str:
    png, alt = _compliance_chart(report, histories)
    chart = _figure("SLA compliance by tier", alt, png)
    return f'<div class="grid">{chart}<div>{_compliance_table(report, histories)}</div></div>'


def _compliance_table(report: Report, histories: Sequence[CaseHistory]) -> str:
    rows = [
        [_e(tier), _e(percent(rate))]
        for tier, rate in _compliance_levels(report, histories).items()
    ]
    rows.append(["<strong>all cases</strong>", _e(percent(report.sla_compliance.overall))])
    return _table(["tier", "completed without a breach"], rows) + (
        '<p class="muted">n/a: no case in the period entered the tier; never 100 % of nothing.</p>'
    )


def _quality(report: Report) -> str:
    ids = ", ".join(f"<code>{_e(i)}</code>" for i in report.needs_review.case_ids) or "none"
    return (
        f"<p>Reopen rate: <strong>{_e(percent(report.reopen_rate))}</strong>. "
        f"Needs review (ping-pong between two tiers): <strong>{_e(report.needs_review.count)}"
        f"</strong> ({ids}).</p>"
    )


def _l3_reviews(reviews: Sequence[L3Review]) -> str:
    if not reviews:
        return '<p class="muted">No case reached L3 in this period.</p>'
    return "".join(_l3_review(review) for review in reviews)


def _l3_review(review: L3Review) -> str:
    a = review.reached_by
    how = (
        "routed there when opened"
        if a.reason == "routed"
        else f"from {a.from_tier} on {_when(a.at)}, {a.reason}, by {a.by or '-'}"
    )
    steps = "".join(f"<li>{_e(step)}</li>" for step in review.steps_taken)
    notes = "".join(
        f'<li><span class="muted">{_e(_when(n.at))} · {_e(n.by or "-")}</span> '
        f'<span class="note">{_e(n.text, multiline=True)}</span></li>'
        for n in review.notes
    )
    tiers = ", ".join(
        f"{_e(tier)} {_e(duration(seconds))}"
        for tier, seconds in review.time_in_tier_seconds.items()
    )
    meta = " · ".join(
        _e(part) for part in (review.severity, review.category or "(no category)") if part
    )
    return (
        f'<article class="review"><h3><code>{_e(review.case_id)}</code> {_e(review.title)}</h3>'
        f'<p class="muted">{meta} · resolved by {_e(review.resolved_by or "-")}</p><dl>'
        f"<dt>Reached L3</dt><dd>{_e(how)}</dd>"
        f'<dt>Escalation note</dt><dd class="note">{_e(a.note, multiline=True)}</dd>'
        f"<dt>Steps taken</dt><dd>{f'<ol>{steps}</ol>' if steps else 'none named'}</dd>"
        f"<dt>Time in each tier</dt><dd>{tiers or '-'}</dd>"
        f"<dt>Notes</dt><dd>{f'<ul>{notes}</ul>' if notes else 'none'}</dd>"
        "</dl></article>"
    )


def _backlog(backlog: dict[str, Any] | None) -> str:
    if backlog is None:
        return '<p class="muted">Not read (<code>--no-open</code>, or Temporal not reachable).</p>'
    truncated = (
        f" (the first {_e(backlog['truncated_at'])} only)" if backlog.get("truncated_at") else ""
    )
    counts = (
        f"<p><strong>{_e(backlog.get('total', 0))}</strong> open{truncated}. By tier: "
        + _e(", ".join(f"{k} {v}" for k, v in backlog.get("by_tier", {}).items()) or "-")
        + ". By age: "
        + _e(", ".join(f"{k} {v}" for k, v in backlog.get("by_age", {}).items()) or "-")
        + ".</p>"
    )
    rows = [
        [
            f"<code>{_e(row.get('case_id'))}</code>",
            _e(row.get("tier")),
            _e(row.get("state")),
            _e(row.get("assignee") or "unassigned"),
            _e(percent(row.get("sla_used"))),
            _e(_when(row.get("next_deadline"))),
        ]
        for row in backlog.get("at_risk", [])
    ]
    head = ["case", "tier", "state", "assignee", "SLA used", "next deadline"]
    return (
        counts
        + "<h3>At 75 % or more of the running SLA</h3>"
        + _table(head, rows, empty="no case is near its SLA")
    )


def _weeks_table(weeks: Sequence[report_weeks.Week]) -> str:
    rows = [
        [
            _e(w.label),
            _e(f"{w.start:%Y-%m-%d}"),
            _e(w.cases),
            _e(w.escalations),
            _e(duration(w.mtta_seconds.median)),
            _e(duration(w.mttr_seconds.median)),
        ]
        for w in weeks
    ]
    head = ["week", "from (Monday)", "cases", "escalations", "MTTA median", "MTTR median"]
    return "<details><summary>The figures behind the charts</summary>" + (
        _table(head, rows, empty="no weeks in the period") + "</details>"
    )


# -- charts ---------------------------------------------------------------------------------


def _charts(weeks: Sequence[report_weeks.Week]) -> str:
    charts = [
        (
            "Escalations per week by tier left",
            _stacked(weeks, lambda w: w.escalations_by_tier, {}),
        ),
        (
            "Escalations per week by reason",
            _stacked(weeks, lambda w: w.escalations_by_reason, REASON_COLOURS),
        ),
        ("MTTA per week (calendar clock)", _trend(weeks, lambda w: w.mtta_seconds)),
        ("MTTR per week (calendar clock)", _trend(weeks, lambda w: w.mttr_seconds)),
    ]
    return (
        '<div class="grid">' + "".join(_figure(t, alt, png) for t, (png, alt) in charts) + "</div>"
    )


def _figure(title: str, alt: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><figcaption>{_e(title)}</figcaption><img src="data:image/png;base64,{data}" '
        f'alt="{_e(title + ": " + alt)}" width="{SHOWN_WIDTH}"></figure>'
    )


def _plain(text: str) -> str:
    """A chart label as plain text: an unescaped `$` would start matplotlib's mathtext."""
    return text.replace("$", r"\$")


def _new_figure() -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_SIZE, dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    axes.spines[["top", "right"]].set_visible(False)
    axes.grid(axis="y", color="#e5e5e5", linewidth=0.8)
    axes.set_axisbelow(True)
    axes.tick_params(labelsize=9)
    return figure, axes


def _png(figure: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    canvas.print_png(buffer)
    return buffer.getvalue()


def _legend(axes: Any, columns: int) -> None:
    """Above the plot, not in it: no bar or line is ever hidden behind it."""
    axes.legend(
        fontsize=8.5, frameon=False, ncols=columns, loc="lower left", bbox_to_anchor=(0, 1.0),
        borderaxespad=0.2, handlelength=1.8,
    )  # fmt: skip
    axes.yaxis.set_major_formatter("{x:g}")  # 20, not 20.0


def _week_axis(axes: Any, weeks: Sequence[report_weeks.Week]) -> None:
    """ISO weeks on the x axis, thinned to at most 7 labels so they never overlap."""
    step = max(1, -(-len(weeks) // 7))
    positions = list(range(0, len(weeks), step))
    axes.set_xticks(
        positions,
        [_plain(f"{weeks[i].label}\n{weeks[i].start:%d %b}") for i in positions],
        fontsize=8,
    )
    axes.set_xlim(-0.6, max(len(weeks) - 0.4, 0.6))


def _no_data(axes: Any, text: str) -> None:
    axes.text(
        0.5, 0.5, _plain(text), transform=axes.transAxes, ha="center", va="center", color="#777"
    )


def _stacked(
    weeks: Sequence[report_weeks.Week],
    series: Callable[[report_weeks.Week], dict[str, int]],
    colours: dict[str, str],
) -> tuple[bytes, str]:
    figure, axes = _new_figure()
    keys = list(series(weeks[0])) if weeks else []
    bottom = [0] * len(weeks)
    for index, key in enumerate(keys):
        values = [series(w)[key] for w in weeks]
        if not any(values):
            continue  # a reason that never happened would only crowd the legend
        colour = colours.get(key, COLOURS[index % len(COLOURS)])
        axes.bar(range(len(weeks)), values, bottom=bottom, label=_plain(key), color=colour)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    if any(bottom):
        _legend(axes, min(len(keys), 4))
        axes.set_ylim(0, max(bottom) * 1.08)
    else:
        _no_data(axes, "no escalations in this period")
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.set_ylabel("escalations", fontsize=9)
    _week_axis(axes, weeks)
    totals = {key: sum(series(w)[key] for w in weeks) for key in keys}
    alt = f"{sum(bottom)} escalations over {len(weeks)} weeks; " + (
        ", ".join(f"{key} {n}" for key, n in totals.items()) or "none"
    )
    return _png(figure), alt


def _unit(seconds: float) -> tuple[float, str]:
    """The axis unit for durations up to `seconds`: minutes, hours or days."""
    if seconds >= 2 * 86400:
        return 86400.0, "days"
    if seconds >= 2 * 3600:
        return 3600.0, "hours"
    if seconds >= 120:
        return 60.0, "minutes"
    return 1.0, "seconds"


def _trend(
    weeks: Sequence[report_weeks.Week], figure_of: Callable[[report_weeks.Week], Duration]
) -> tuple[bytes, str]:
    figure, axes = _new_figure()
    peak = max((figure_of(w).p95 or 0.0 for w in weeks), default=0.0)
    scale, unit = _unit(peak)
    x = range(len(weeks))
    for name, colour, style in STATISTICS:
        # None (a week without cases) leaves a gap: a trend is not drawn through nothing.
        values = [
            float("nan") if (v := getattr(figure_of(w), name)) is None else v / scale for w in weeks
        ]
        axes.plot(x, values, style, marker="o", markersize=3, color=colour, label=name)
    if peak:
        _legend(axes, 3)
        axes.set_ylim(0, peak / scale * 1.08)
    else:
        _no_data(axes, "no cases in this period")
        axes.set_ylim(0, 1)
    axes.set_ylabel(unit, fontsize=9)
    _week_axis(axes, weeks)
    medians = ", ".join(
        f"{w.label} {duration(figure_of(w).median)}" for w in weeks if figure_of(w).n
    )
    return _png(figure), f"weekly median, mean and p95; medians: {medians or 'none'}"


def _compliance_chart(report: Report, histories: Sequence[CaseHistory]) -> tuple[bytes, str]:
    figure, axes = _new_figure()
    rates = _compliance_levels(report, histories) | {"all": report.sla_compliance.overall}
    labels = list(rates)
    for index, (tier, rate) in enumerate(rates.items()):
        colour = "#555555" if tier == "all" else COLOURS[0]
        if rate is None:
            # n/a is no bar at all, and says so: never drawn as 0 % or 100 %.
            axes.text(index, 2, "n/a", ha="center", va="bottom", fontsize=9, color="#777")
            continue
        axes.bar(index, rate * 100, color=colour, width=0.6)
        axes.text(index, rate * 100 + 2, f"{rate * 100:.0f} %", ha="center", fontsize=9)
    axes.set_xticks(range(len(labels)), [_plain(label) for label in labels])
    axes.set_xlim(-0.6, len(labels) - 0.4)
    axes.set_ylim(0, 112)
    axes.set_yticks([0, 25, 50, 75, 100])
    axes.set_ylabel("% without a breach", fontsize=9)
    alt = ", ".join(f"{tier} {percent(rate)}" for tier, rate in rates.items())
    return _png(figure), alt


STYLE = """
:root { color-scheme: light; --ink: #1f2328; --muted: #656d76; --line: #d8dee4;
  --soft: #f6f8fa; --accent: #3b6ea8; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1120px; padding: 24px 28px 48px; color: var(--ink);
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
header h1 { margin: 0 0 4px; font-size: 26px; }
header p { margin: 0; color: var(--muted); }
h2 { font-size: 18px; margin: 32px 0 12px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 16px 0 8px; }
code { font: 12.5px ui-monospace, "DejaVu Sans Mono", monospace; background: var(--soft);
  padding: 1px 4px; border-radius: 4px; }
.muted { color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(120px, 1fr));
  gap: 10px; margin-top: 20px; }
.card { background: var(--soft); border: 1px solid var(--line); border-radius: 8px;
  padding: 10px 12px; }
.card .value { font-size: 20px; font-weight: 600; white-space: nowrap; }
.card .label { color: var(--muted); font-size: 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr));
  gap: 16px 24px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 10px; }
figcaption { font-weight: 600; margin-bottom: 6px; }
figure img { display: block; width: 100%; height: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
td:first-child { overflow-wrap: anywhere; }
td:not(:first-child) { white-space: nowrap; }
th { background: var(--soft); font-weight: 600; font-size: 12.5px; }
td:not(:first-child), th:not(:first-child) { text-align: right; }
.review { border: 1px solid var(--line); border-left: 4px solid var(--accent);
  border-radius: 6px; padding: 4px 16px 10px; margin-bottom: 14px; }
.review h3 { overflow-wrap: anywhere; }
.review p { margin: 0 0 6px; }
dl { display: grid; grid-template-columns: 150px 1fr; gap: 4px 12px; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; overflow-wrap: anywhere; }
dd ol, dd ul { margin: 0; padding-left: 20px; }
.note { white-space: pre-wrap; }
details summary { cursor: pointer; color: var(--accent); margin-bottom: 8px; }
@media print { body { max-width: none; } figure { break-inside: avoid; } }
"""
