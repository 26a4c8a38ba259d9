"""`escalator simulate --format html`: one self-contained page, as `escalator report`'s.

What would a policy have done with the cases already resolved? The page sets the
figures of the cases as they went (actual) beside those of the same cases re-run
under the policy (simulated), then lists the cases that would have gone differently
and the people's actions the policy made impossible.

It is built as report_html's page is, from its parts: matplotlib PNGs (object API,
never pyplot) inlined as `data:` URLs, the same inline style, no script, and a
content-security policy that allows nothing else. Case text (actors, reasons, case
ids, the policy's name and version) is untrusted: every piece is HTML-escaped with
its hidden characters shown as visible escapes. Chart labels are the page's own
(tier keys, reasons, "all"), and still have `$` escaped for matplotlib.

The charts keep one colour per side on every chart, from the report's palette:
actual in grey, simulated in the report's first colour.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from escalator.adapters.report_html import (
    COLOURS,
    CSP,
    STYLE,
    _e,
    _figure,
    _legend,
    _new_figure,
    _no_data,
    _plain,
    _png,
    _section,
    _table,
    _when,
    percent,
)
from escalator.domain.report_weeks import tier_order
from escalator.domain.simulation_report import (
    CaseComparison,
    CaseResult,
    DroppedActions,
    PathStep,
    Side,
    SimulationReport,
)

ROWS_SHOWN = 200  # changed cases and dropped actions listed; --format json lists all
SIDES = (("actual", COLOURS[7]), ("simulated", COLOURS[0]))
ASSUMPTIONS = {
    "same-time": "each person acts at the clock time they really did",
    "same-delay": "each person acts as long after their tier was notified as they really did",
}
BAR_WIDTH = 0.38


def render(report: SimulationReport) -> str:
    """The simulation as one complete HTML document."""
    if report.cases:
        body = [
            _header(report),
            _section("Actual and simulated", _headline(report)),
            _section("Escalations", _escalations(report)),
            _section("Breaches and SLA compliance", _breaches(report)),
            _section("Load on the tiers", _load(report)),
            _section(f"Changed cases ({len(report.changed_cases)})", _changed(report)),
            _section(
                f"Dropped actions ({report.dropped_actions.total})",
                _dropped(report.dropped_actions),
            ),
        ]
    else:
        body = [
            _header(report),
            '<p class="muted">No cases in the period: there is nothing to re-run.</p>',
        ]
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{_e(_title(report))}</title>\n<style>{STYLE}{EXTRA_STYLE}</style>\n"
        "</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


# -- text -----------------------------------------------------------------------------------


def _policy_name(report: SimulationReport) -> str:
    return report.policy.get("name") or "the policy"


def _title(report: SimulationReport) -> str:
    return f"What would {_policy_name(report)} have done?"


def _change(was: int, would: int) -> str:
    return "0" if was == would else f"{would - was:+d}"


def _share_change(was: float | None, would: float | None) -> str:
    if was is None or would is None:
        return "n/a"
    points = (would - was) * 100
    return "0" if abs(points) < 0.05 else f"{points:+.1f} pt"


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment


def path_text(path: Sequence[PathStep]) -> str:
    """`L1 08:00 → L2 12:00 (+1d)`: the tiers entered, in UTC, days after the first."""
    if not path:
        return "(no tiers)"
    first = _utc(path[0].at).date()
    parts = []
    for step in path:
        at = _utc(step.at)
        days = (at.date() - first).days
        parts.append(f"{step.tier} {at:%H:%M}" + (f" (+{days}d)" if days else ""))
    return " → ".join(parts)


def _tiers(*mappings: Mapping[str, object]) -> list[str]:
    return sorted({key for mapping in mappings for key in mapping}, key=tier_order)


def _keys(*mappings: Mapping[str, object]) -> list[str]:
    """The keys of all, in the order they first appear (reasons keep theirs)."""
    return list(dict.fromkeys(key for mapping in mappings for key in mapping))


# -- page parts -----------------------------------------------------------------------------


def _header(report: SimulationReport) -> str:
    start, end = report.period.get("from"), report.period.get("to")
    version = report.policy.get("version") or "(no version)"
    assumed = ASSUMPTIONS.get(report.assumption, report.assumption)
    cases = f"{report.cases} case" + ("" if report.cases == 1 else "s")
    if report.cases:
        counts = (
            f"<p><strong>{_e(len(report.changed_cases))}</strong> of {_e(cases)} would have "
            f"gone differently; <strong>{_e(report.dropped_actions.total)}</strong> recorded "
            "action" + ("" if report.dropped_actions.total == 1 else "s") + " could not "
            "have been done again.</p>"
        )
    else:
        counts = ""
    return (
        f"<header><h1>{_e(_title(report))}</h1>"
        f"<p>Policy <strong>{_e(_policy_name(report))}</strong>, version "
        f"<code>{_e(version)}</code>, over {_e(cases)} resolved from "
        f"{_e(_when(start) if start else 'the beginning')} to "
        f"{_e(_when(end) if end else 'now')}.</p>"
        f"<p>Assumption <code>{_e(report.assumption)}</code>: {_e(assumed)}. "
        "The case's own clocks (warnings, breaches, SLA escalations) come from the policy; "
        "<code>docs/simulator.md</code> says what else is assumed.</p>"
        f"{counts}</header>"
    )


def _headline(report: SimulationReport) -> str:
    a, s = report.actual, report.simulated
    counts = [
        ("escalations", _total(a), _total(s)),
        ("SLA breaches", a.breaches, s.breaches),
        ("notifications to the tiers", a.notifications, s.notifications),
        ("dropped actions", 0, report.dropped_actions.total),
    ]
    rows = [
        [_e(label), _e(was), _e(would), _e(_change(was, would))] for label, was, would in counts
    ]
    was, would = a.sla_compliance.overall, s.sla_compliance.overall
    rows.insert(
        2,
        [
            _e("SLA compliance (cases without a breach)"),
            _e(percent(was)),
            _e(percent(would)),
            _e(_share_change(was, would)),
        ],
    )
    return _table(["figure", "actual", "simulated", "change"], rows) + (
        '<p class="muted">Both sides are counted the same way, from the case histories: '
        "the actual side from the ledger, the simulated side from the re-run. "
        "Notifications are those the policy's clocks and moves send to the tiers "
        "(mail to the customer is not counted).</p>"
    )


def _total(side: Side) -> int:
    return sum(side.escalations_by_tier.values())


def _counts_table(
    title: str, keys: Sequence[str], was: dict[str, int], would: dict[str, int]
) -> str:
    rows = [
        [
            _e(key),
            _e(was.get(key, 0)),
            _e(would.get(key, 0)),
            _e(_change(was.get(key, 0), would.get(key, 0))),
        ]
        for key in keys
    ]
    table = _table([_e(title), "actual", "simulated", "change"], rows)
    return f'<div class="part"><h3>By {_e(title)}</h3>{table}</div>'


def _grid(*parts: str) -> str:
    return f'<div class="grid">{"".join(parts)}</div>'


def _escalations(report: SimulationReport) -> str:
    a, s = report.actual, report.simulated
    tiers = _tiers(a.escalations_by_tier, s.escalations_by_tier)
    reasons = _keys(a.escalations_by_reason, s.escalations_by_reason)
    charts = _grid(
        _counts_chart(
            "Escalations by tier left",
            tiers,
            a.escalations_by_tier,
            s.escalations_by_tier,
            unit="escalations",
        ),
        _counts_chart(
            "Escalations by reason",
            reasons,
            a.escalations_by_reason,
            s.escalations_by_reason,
            unit="escalations",
        ),
    )
    tables = _grid(
        _counts_table("tier left", tiers, a.escalations_by_tier, s.escalations_by_tier),
        _counts_table("reason", reasons, a.escalations_by_reason, s.escalations_by_reason),
    )
    return charts + tables


def _breaches(report: SimulationReport) -> str:
    a, s = report.actual, report.simulated
    tiers = _tiers(a.breaches_by_tier, s.breaches_by_tier)
    compliance_tiers = _tiers(a.sla_compliance.by_tier, s.sla_compliance.by_tier)
    charts = _grid(
        _counts_chart(
            "SLA breaches by tier",
            tiers,
            a.breaches_by_tier,
            s.breaches_by_tier,
            unit="breaches",
        ),
        _compliance_chart(report, compliance_tiers),
    )
    rows = [
        [
            _e(tier),
            _e(percent(was := a.sla_compliance.by_tier.get(tier))),
            _e(percent(would := s.sla_compliance.by_tier.get(tier))),
            _e(_share_change(was, would)),
        ]
        for tier in compliance_tiers
    ]
    rows.append(
        [
            "<strong>all cases</strong>",
            _e(percent(a.sla_compliance.overall)),
            _e(percent(s.sla_compliance.overall)),
            _e(_share_change(a.sla_compliance.overall, s.sla_compliance.overall)),
        ]
    )
    compliance = (
        '<div class="part"><h3>SLA compliance by tier</h3>'
        + _table(["tier", "actual", "simulated", "change"], rows)
        + '<p class="muted">Completed without a breach. n/a: no case entered the tier on '
        "that side; never 100 % of nothing.</p></div>"
    )
    tables = _grid(_counts_table("tier", tiers, a.breaches_by_tier, s.breaches_by_tier), compliance)
    return charts + tables


def _load(report: SimulationReport) -> str:
    a, s = report.actual.load_by_tier, report.simulated.load_by_tier
    tiers = _tiers(a, s)
    entering = ({t: v.entering for t, v in a.items()}, {t: v.entering for t, v in s.items()})
    peak = (
        {t: v.peak_unclaimed for t, v in a.items()},
        {t: v.peak_unclaimed for t, v in s.items()},
    )
    charts = _grid(
        _counts_chart("Cases entering each tier", tiers, *entering, unit="cases"),
        _counts_chart("Most cases waiting unclaimed at once", tiers, *peak, unit="cases"),
    )
    rows = [
        [
            _e(tier),
            _e(entering[0].get(tier, 0)),
            _e(entering[1].get(tier, 0)),
            _e(_change(entering[0].get(tier, 0), entering[1].get(tier, 0))),
            _e(peak[0].get(tier, 0)),
            _e(peak[1].get(tier, 0)),
            _e(_change(peak[0].get(tier, 0), peak[1].get(tier, 0))),
        ]
        for tier in tiers
    ]
    head = [
        "tier",
        "entering, actual",
        "entering, simulated",
        "change",
        "peak unclaimed, actual",
        "peak unclaimed, simulated",
        "change",
    ]
    return (
        charts
        + _table(head, rows)
        + (
            '<p class="muted">Entering: cases that entered the tier at least once. Peak '
            "unclaimed: the most cases waiting in the tier at one moment, from entering it to "
            "its first claim (or leaving it unclaimed).</p>"
        )
    )


def _more(count: int) -> str:
    if count <= ROWS_SHOWN:
        return ""
    return (
        f'<p class="muted">and {_e(count - ROWS_SHOWN)} more; '
        "<code>--format json</code> lists all.</p>"
    )


def _changed(report: SimulationReport) -> str:
    if not report.changed_cases:
        return '<p class="muted">No case would have gone differently.</p>'
    results: dict[str, CaseComparison] = {c.case_id: c for c in report.per_case}

    def figures(case_id: str, of: str) -> str:
        found = results.get(case_id)
        if found is None:
            return "n/a"
        was: CaseResult = found.actual
        would: CaseResult = found.simulated
        return f"{getattr(was, of)} → {getattr(would, of)}"

    rows = [
        [
            f"<code>{_e(c.case_id)}</code>",
            _e(f"{_utc(c.actual_path[0].at):%Y-%m-%d}" if c.actual_path else "-"),
            _e(path_text(c.actual_path)),
            _e(path_text(c.simulated_path)),
            _e(figures(c.case_id, "breaches")),
            _e(figures(c.case_id, "escalations")),
        ]
        for c in report.changed_cases[:ROWS_SHOWN]
    ]
    head = ["case", "opened", "actual path", "simulated path", "breaches", "escalations"]
    return (
        '<div class="paths">'
        + _table(head, rows)
        + "</div>"
        + _more(len(report.changed_cases))
        + (
            '<p class="muted">Paths: the tiers the case entered and when (UTC; "+1d" is a '
            "day after it opened). Breaches and escalations: actual → simulated.</p>"
        )
    )


def _dropped(dropped: DroppedActions) -> str:
    if not dropped.total:
        return (
            '<p class="muted">None: every recorded action could be done again under the policy.</p>'
        )
    by_action = ", ".join(f"{action} {n}" for action, n in dropped.by_action.items())
    rows = [
        [
            f"<code>{_e(item.case_id)}</code>",
            _e(item.action),
            _e(_when(_utc(item.at))),
            _e(item.actor),
            _e(item.reason),
        ]
        for item in dropped.items[:ROWS_SHOWN]
    ]
    return (
        f"<p>By action: {_e(by_action)}. A claim or move belongs to the tier that took it, "
        "so it is dropped when the case would have been elsewhere by then.</p>"
        '<div class="dropped">'
        + _table(["case", "action", "when (really)", "who", "why dropped"], rows)
        + "</div>"
        + _more(len(dropped.items))
    )


# -- charts ---------------------------------------------------------------------------------


def _counts_chart(
    title: str, keys: Sequence[str], was: dict[str, int], would: dict[str, int], *, unit: str
) -> str:
    values = [
        [float(was.get(key, 0)) for key in keys],
        [float(would.get(key, 0)) for key in keys],
    ]
    png = _paired(keys, values, unit=unit, empty=f"no {unit} on either side")
    alt = "; ".join(
        f"{key}: actual {was.get(key, 0)}, simulated {would.get(key, 0)}" for key in keys
    )
    return _figure(title, alt or "none", png)


def _compliance_chart(report: SimulationReport, tiers: Sequence[str]) -> str:
    a, s = report.actual.sla_compliance, report.simulated.sla_compliance
    keys = [*tiers, "all"]
    values = [
        [_hundred(a.by_tier.get(t)) for t in tiers] + [_hundred(a.overall)],
        [_hundred(s.by_tier.get(t)) for t in tiers] + [_hundred(s.overall)],
    ]
    png = _paired(keys, values, unit="% without a breach", share=True, empty="no cases")
    alt = "; ".join(
        f"{key}: actual {percent(None if x is None else x / 100)}, "
        f"simulated {percent(None if y is None else y / 100)}"
        for key, x, y in zip(keys, values[0], values[1], strict=True)
    )
    return _figure("SLA compliance by tier", alt, png)


def _hundred(rate: float | None) -> float | None:
    return None if rate is None else rate * 100


def _paired(
    keys: Sequence[str],
    values: Sequence[Sequence[float | None]],
    *,
    unit: str,
    empty: str,
    share: bool = False,
) -> bytes:
    """Actual and simulated side by side for each key; None (n/a) is no bar, and says so."""
    figure, axes = _new_figure()
    x = range(len(keys))
    peak = max((v for side in values for v in side if v is not None), default=0.0)
    for offset, (name, colour), side in zip((-0.5, 0.5), SIDES, values, strict=True):
        positions = [i + offset * BAR_WIDTH for i in x]
        heights = [0.0 if v is None else v for v in side]
        axes.bar(positions, heights, width=BAR_WIDTH, color=colour, label=name)
        for position, value in zip(positions, side, strict=True):
            if value is None:
                axes.text(position, 1, "n/a", ha="center", va="bottom", fontsize=7, color="#777")
            elif share or value:
                label = f"{value:.0f} %" if share else f"{value:g}"
                top = value + (112 if share else peak) * 0.015
                axes.text(position, top, label, ha="center", va="bottom", fontsize=7)
    if share:
        axes.set_ylim(0, 112)
        axes.set_yticks([0, 25, 50, 75, 100])
    elif peak:
        axes.set_ylim(0, peak * 1.15)
        axes.yaxis.get_major_locator().set_params(integer=True)
    else:
        axes.set_ylim(0, 1)
        axes.set_yticks([0, 1])
    if keys and (peak or share):
        _legend(axes, 2)
    else:
        _no_data(axes, empty)
    axes.set_xticks(list(x), [_plain(key) for key in keys])
    axes.set_xlim(-0.6, max(len(keys) - 0.4, 0.6))
    axes.set_ylabel(_plain(unit), fontsize=9)
    return _png(figure)


EXTRA_STYLE = """
.paths :is(td, th):is(:nth-child(3), :nth-child(4)),
.dropped :is(td, th):is(:nth-child(2), :nth-child(4), :nth-child(5)) {
  text-align: left; white-space: normal; overflow-wrap: anywhere; }
.part h3 { margin-top: 8px; }
header p + p { margin-top: 4px; }
"""
