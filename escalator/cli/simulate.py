"""`escalator simulate`: what would this policy have done to the past cases?

It reads the resolved cases of a period from the case ledger, re-runs each under the
new policy with the pure case engine (escalator/domain/simulation.py), and compares
them with what really happened (escalator/domain/simulation_report.py). Nothing is
sent and Temporal is not needed. docs/simulator.md states the assumptions.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from escalator.domain.errors import InvalidInput
from escalator.domain.simulation import ASSUMPTIONS
from escalator.domain.terminal_text import terminal_safe

if TYPE_CHECKING:
    from escalator.domain.simulation_report import PathStep, Side, SimulationReport

FORMATS = ("text", "json", "html")
TEXT_CASES_SHOWN = 50  # changed cases and dropped actions listed by the text format


def add_arguments(simulate: argparse.ArgumentParser) -> None:
    from escalator.cli.report import add_case_filters

    simulate.add_argument("--policy", required=True, type=Path, help="the policy file to try")
    add_case_filters(simulate)
    simulate.add_argument(
        "--assume",
        choices=ASSUMPTIONS,
        default="same-time",
        help="when people act: at the same clock time (default) or the same delay "
        "after their tier was notified",
    )
    simulate.add_argument("--format", choices=FORMATS, default="text")
    simulate.add_argument("--out", type=Path, help="write to FILE instead of stdout")


def run(args: argparse.Namespace) -> int:
    from escalator.adapters.policy_files import load_policy
    from escalator.cli.report import ledger_errors, ledger_url, period, write_output
    from escalator.domain.policy_version import policy_version
    from escalator.domain.simulation_report import summarize
    from escalator.runtime.simulator import Past, compare_all

    policy = load_policy(args.policy)  # a PolicyError is the file's one-line error
    start, end = period(args, datetime.now(UTC))
    past = Past(
        ledger_url=ledger_url(),
        filters={
            "resolved_from": start,
            "resolved_to": end,
            "account": args.account,
            "category": args.category,
            "policy_version": args.policy_version,
        },
        team=args.team,
    )
    with ledger_errors():
        parts = compare_all(past, policy, args.assume)
    if not any(part.cases for part in parts):
        raise InvalidInput(_nothing_to_simulate(args, start, end))
    result = summarize(
        parts,
        policy={"name": policy.name, "version": policy_version(policy)},
        assumption=args.assume,
        period_from=start,
        period_to=end,
    )
    write_output(args, _render(result, args.format), what="simulation")
    return 0


def _nothing_to_simulate(args: argparse.Namespace, start: datetime, end: datetime) -> str:
    filters = [
        f"{flag} {value}"
        for flag, value in (
            ("--team", args.team),
            ("--category", args.category),
            ("--account", args.account),
            ("--policy-version", args.policy_version),
        )
        if value
    ]
    where = f" matching {' '.join(filters)}" if filters else ""
    flag = "--from" if args.date_from else "--since"
    return (
        f"{flag}: no resolved cases{where} between {start:%Y-%m-%d %H:%M} and "
        f"{end:%Y-%m-%d %H:%M} UTC; widen the period (e.g. --since 90d) or drop a filter"
    )


def _render(result: SimulationReport, form: str) -> str:
    if form == "json":
        return result.model_dump_json(indent=2) + "\n"
    if form == "html":
        from escalator.adapters import simulation_html

        return simulation_html.render(result)
    return as_text(result)


# -- the text format -------------------------------------------------------------------------


def as_text(result: SimulationReport) -> str:
    """The comparison as a terminal reads it: the figures side by side, then the
    changed cases and the dropped actions (the first TEXT_CASES_SHOWN of each)."""
    actual, simulated = result.actual, result.simulated
    lines = [
        f"What would {result.policy['name']} ({result.policy['version']}) have done?",
        f"{result.cases} cases resolved {_day(result.period['from'])} .. "
        f"{_day(result.period['to'])}; assumption {result.assumption}: {_assumed(result)}",
        "",
        f"{'':30}{'actual':>10}{'simulated':>12}{'change':>10}",
    ]

    def row(label: str, was: float | None, would: float | None, *, share: bool = False) -> None:
        if share:
            shown = [_percent(was), _percent(would)]
            change = "" if was is None or would is None else f"{(would - was) * 100:+.1f} pt"
        else:
            shown = [str(was), str(would)]
            change = f"{(would or 0) - (was or 0):+d}"
        lines.append(f"{label:30}{shown[0]:>10}{shown[1]:>12}{change:>10}")

    row("escalations", sum(actual.escalations_by_tier.values()), _total(simulated))
    for tier in _keys(actual.escalations_by_tier, simulated.escalations_by_tier):
        row(
            f"  from {tier}",
            actual.escalations_by_tier.get(tier, 0),
            simulated.escalations_by_tier.get(tier, 0),
        )
    for reason in _keys(actual.escalations_by_reason, simulated.escalations_by_reason):
        row(
            f"  by {reason}",
            actual.escalations_by_reason.get(reason, 0),
            simulated.escalations_by_reason.get(reason, 0),
        )
    row("SLA breaches", actual.breaches, simulated.breaches)
    for tier in _keys(actual.breaches_by_tier, simulated.breaches_by_tier):
        row(
            f"  in {tier}",
            actual.breaches_by_tier.get(tier, 0),
            simulated.breaches_by_tier.get(tier, 0),
        )
    row(
        "SLA compliance",
        actual.sla_compliance.overall,
        simulated.sla_compliance.overall,
        share=True,
    )
    for tier in _keys(actual.sla_compliance.by_tier, simulated.sla_compliance.by_tier):
        row(
            f"  {tier}",
            actual.sla_compliance.by_tier.get(tier),
            simulated.sla_compliance.by_tier.get(tier),
            share=True,
        )
    row("notifications to tiers", actual.notifications, simulated.notifications)
    for tier in _keys(actual.load_by_tier, simulated.load_by_tier):
        was, would = actual.load_by_tier.get(tier), simulated.load_by_tier.get(tier)
        row(f"cases entering {tier}", was.entering if was else 0, would.entering if would else 0)
        row(
            "  peak unclaimed at once",
            was.peak_unclaimed if was else 0,
            would.peak_unclaimed if would else 0,
        )
    dropped = result.dropped_actions
    row("dropped actions", 0, dropped.total)
    lines += ["", f"changed cases: {len(result.changed_cases)} of {result.cases}"]
    for changed in result.changed_cases[:TEXT_CASES_SHOWN]:
        lines.append(f"  {changed.case_id}")
        lines.append(f"    actual:    {path_text(changed.actual_path)}")
        lines.append(f"    simulated: {path_text(changed.simulated_path)}")
    lines += _more(len(result.changed_cases))
    if dropped.total:
        by_action = ", ".join(f"{n} {action}" for action, n in dropped.by_action.items())
        lines += ["", f"dropped actions: {dropped.total} ({by_action})"]
        for item in dropped.items[:TEXT_CASES_SHOWN]:
            lines.append(
                f"  {item.case_id}: {item.action} by {item.actor} at "
                f"{item.at:%Y-%m-%d %H:%M:%S}: {item.reason}"
            )
        lines += _more(dropped.total)
    return "\n".join(terminal_safe(line) for line in lines) + "\n"


def path_text(path: Sequence[PathStep]) -> str:
    """`L1 08:00 → L2 12:00 (+1d)`: the tiers entered, times relative to the first day."""
    if not path:
        return "(no tiers)"
    first = path[0].at.date()
    parts = []
    for step in path:
        days = (step.at.date() - first).days
        parts.append(f"{step.tier} {step.at:%H:%M}" + (f" (+{days}d)" if days else ""))
    return f"{path[0].at:%Y-%m-%d} " + " → ".join(parts)


def _assumed(result: SimulationReport) -> str:
    if result.assumption == "same-delay":
        return "each person acts as long after their tier was notified as they really did"
    return "each person acts at the clock time they really did"


def _total(side: Side) -> int:
    return sum(side.escalations_by_tier.values())


def _keys(*mappings: Mapping[str, object]) -> list[str]:
    """The keys of both sides, tiers in their order (L2 before L10)."""

    def order(key: str) -> tuple[str, int]:
        stem = key.rstrip("0123456789")
        return stem, int(key[len(stem) :] or 0)

    return sorted({key for mapping in mappings for key in mapping}, key=order)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def _day(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d}"


def _more(count: int) -> list[str]:
    if count <= TEXT_CASES_SHOWN:
        return []
    return [f"  ... and {count - TEXT_CASES_SHOWN} more; --format json lists all"]
