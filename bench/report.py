"""Turn a run's results into the markdown table and the PNG chart."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

UNITS_WITH_SPACE = {"s", "MiB", "cases/s", "resolves/s", "events", "cases", "calls"}


def fmt(value: float | int | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, int) or (float(value).is_integer() and unit in {"events", "cases"}):
        text = f"{int(value):,}"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}" if unit in UNITS_WITH_SPACE else f"{text}{unit}"


def met_text(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "—"}[met]


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| # | Figure | Escalator | bare Temporal | ratio | goal | met? | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = "—" if row["ratio"] is None else f"{row['ratio']:.2f}×"
        lines.append(
            f"| {row['key']} | {row['figure']} | {fmt(row['escalator'], row['unit'])} | "
            f"{fmt(row['baseline'], row['unit'])} | {ratio} | {row['goal']} | "
            f"{met_text(row['met'])} | {row['note']} |"
        )
    return "\n".join(lines)


def plain_table(rows: list[dict]) -> str:
    header = ("#", "figure", "Escalator", "bare Temporal", "ratio", "goal", "met?")
    body = [
        (
            row["key"],
            row["figure"][:58],
            fmt(row["escalator"], row["unit"]),
            fmt(row["baseline"], row["unit"]),
            "—" if row["ratio"] is None else f"{row['ratio']:.2f}x",
            row["goal"],
            {True: "met", False: "MISSED", None: "-"}[row["met"]],
        )
        for row in rows
    ]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    out = []
    for number, line in enumerate([header, *body]):
        cells = zip(line, widths, strict=True)
        out.append("  ".join(str(cell).ljust(width) for cell, width in cells))
        if number == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(out)


def markdown(results: dict) -> str:
    meta = results["meta"]
    machine = meta["machine"]
    lines = [
        f"# Escalator benchmarks ({meta['profile']})",
        "",
        f"Run {meta['started']} · {meta['duration_s']:.0f} s · {machine['nproc']} CPUs "
        f"({machine['cpu']}) · {machine['mem_gib']} GiB · Python {meta['python']} · "
        f"temporalio {meta['temporalio']} · {meta['temporal_cli']}",
        "",
        f"Worker settings (both sides): {meta['worker_settings'] or 'SDK defaults'}",
        "",
        markdown_table(results["rows"]),
        "",
        "Sizes: " + ", ".join(f"{k}={v}" for k, v in meta["sizes"].items()),
    ]
    if results.get("errors"):
        lines += ["", "## Errors", ""]
        lines += [f"- {key}: {error}" for key, error in results["errors"].items()]
    return "\n".join(lines) + "\n"


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = results["figures"]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    fig.suptitle(
        f"Escalator vs bare Temporal ({results['meta']['profile']}, "
        f"{results['meta']['started'][:16]})"
    )
    _ratios(axes[0][0], results["rows"])
    _paced(axes[0][1], figures.get("sessions"))
    _herd(axes[1][0], figures.get("sessions"))
    _capacity(axes[1][1], figures.get("d"))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _ratios(ax, rows: list[dict]) -> None:
    shown = [r for r in rows if r["ratio"] is not None and not math.isnan(r["ratio"])]
    if not shown:
        ax.text(0.5, 0.5, "no ratios", ha="center")
        return
    labels = [f"{r['key']}: {r['figure'][:44]}" for r in shown]
    colors = [{True: "tab:green", False: "tab:red", None: "tab:gray"}[r["met"]] for r in shown]
    ax.barh(range(len(shown)), [r["ratio"] for r in shown], color=colors)
    ax.set_yticks(range(len(shown)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    for number, row in enumerate(shown):
        ax.text(row["ratio"], number, f" {row['ratio']:.2f}×", va="center", fontsize=7)
    ax.set_xlabel("Escalator ÷ baseline, log scale (green: goal met, red: missed, grey: no goal)")
    ax.set_title("Ratios")


def _paced(ax, sessions: dict[str, Any] | None) -> None:
    ax.set_title("Paced deadlines: deadline → mail received")
    for kind, label in (("escalator", "Escalator"), ("minimal", "bare Temporal")):
        values = ((sessions or {}).get(kind, {}).get("paced") or {}).get("raw_deadline_mail_s")
        if values:
            ax.plot(values, [i / len(values) for i in range(1, len(values) + 1)], label=label)
    ax.axvline(1.0, color="red", linestyle="--", linewidth=0.8, label="p95 goal 1 s")
    ax.set_xlabel("seconds after the deadline")
    ax.set_ylabel("fraction delivered")
    ax.legend(fontsize=8)


def _herd(ax, sessions: dict[str, Any] | None) -> None:
    ax.set_title("Herd: deadlines due at the same instant")
    for kind, label in (("escalator", "Escalator"), ("minimal", "bare Temporal")):
        values = ((sessions or {}).get(kind, {}).get("herd") or {}).get("delivered_curve_s")
        if values:
            ax.plot(values, range(1, len(values) + 1), label=label)
    ax.axvline(15.0, color="red", linestyle="--", linewidth=0.8, label="goal 15 s")
    ax.set_xlabel("seconds after the deadline")
    ax.set_ylabel("escalation mails delivered")
    ax.legend(fontsize=8)


def _capacity(ax, capacity: dict[str, Any] | None) -> None:
    ax.set_title("Capacity: open cases parked (SQLite+WAL)")
    if not capacity or "escalator" not in capacity:
        ax.text(0.5, 0.5, "not run", ha="center")
        return
    metrics = [
        ("worker RSS peak", "peak_worker_rss_mib"),
        ("server RSS", ("parked", "server_rss_mib")),
        ("database", ("parked", "db_mib")),
    ]

    def value(side: dict, key) -> float:
        if isinstance(key, tuple):
            return side[key[0]][key[1]] or 0
        return side[key] or 0

    width = 0.38
    for offset, (kind, label) in ((-width / 2, ("escalator", "Escalator")),
                                  (width / 2, ("minimal", "bare Temporal"))):  # fmt: skip
        side = capacity[kind]
        heights = [value(side, key) for _, key in metrics]
        bars = ax.bar([i + offset for i in range(len(metrics))], heights, width, label=label)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.axhline(250, color="red", linestyle="--", linewidth=0.8, label="worker RSS goal")
    ax.set_xticks(range(len(metrics)), [name for name, _ in metrics])
    ax.set_ylabel(f"MiB with {capacity['escalator']['cases']:,} open cases")
    ax.legend(fontsize=8)
