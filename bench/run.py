"""Run the benchmark suite: Escalator next to a bare-Temporal baseline, in one run.

    python -m bench.run              # the full suite, about 10 minutes on 2 CPUs
    python -m bench.run --smoke      # tiny sizes, under a minute: checks the harness
    python -m bench.run --only a,c   # some figures (a b c d e f g h i j)
    python -m bench.run --set max_cached_workflows=200   # a worker setting, both sides
    python -m bench.run --size capacity_cases=500        # override one size

Writes bench/results/latest.{json,md,png} (smoke: smoke.*) and prints the table.
The exit status is 1 if a figure could not be measured (a harness failure), 0
otherwise: missed goals are results, not failures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from bench import figures, report
from bench.harness import ROOT, stop_all_children
from escalator.devstack.binaries import find_binary

RESULTS = Path(__file__).resolve().parent / "results"
ALL = ("a", "b", "c", "d", "e", "f", "g", "h", "i", "j")

# Scaled to finish in about 10 minutes on a 2-CPU machine; see docs/benchmarks.md.
FULL = {
    "lifecycle_first_response": 2.0,  # (a, b) seconds until L1 escalates
    "event_repeats": 2,  # (b) canonical runs per side; counts must agree
    "throughput_cases": 250,  # (a, f) full lifecycles per side
    "throughput_in_flight": 100,
    "paced_deadlines_per_s": 20,  # (c) deadlines falling due per second ...
    "paced_seconds": 15.0,  # ... for this long
    "paced_first_response": 4.0,
    "herd_cases": 500,  # (c) deadlines due at one instant
    "herd_first_response": 20.0,
    "herd_lead_base": 5,  # seconds to start and park the herd ...
    "herd_park_rate": 30,  # ... plus herd_cases / this
    "herd_wait_for_minute": True,
    "capacity_cases": 1500,  # (d) scaled down from 10,000 to fit the time budget
    "capacity_timeout": 300,
    "capacity_settle_s": 2.0,
    "ai_cases": 150,  # (e) per phase: more hung calls than the 100 activity slots
    "ai_rate": 10,  # cases/s: 20 deadlines/s, as in (c)
    "ai_good_cases": 10,
    "ai_first_response": 4.0,
    "simulation_cases": 100,  # (g)
    "api_claims": 200,  # (h) claims, half through the API, half through the client
    "stream_cases": 50,  # (i) cases, two transitions each
    "simulator_cases": 10_000,  # (j) past cases re-run by `escalator simulate`
    "simulator_ts_sample": 20,  # (j) the same kind of case on the time-skipping server
}
SMOKE = {
    **FULL,
    "lifecycle_first_response": 1.0,
    "event_repeats": 1,
    "throughput_cases": 4,
    "throughput_in_flight": 4,
    "paced_seconds": 0.5,
    "paced_first_response": 1.0,
    "herd_cases": 5,
    "herd_first_response": 1.0,
    "herd_lead_base": 1,
    "herd_wait_for_minute": False,
    "capacity_cases": 10,
    "capacity_timeout": 60,
    "capacity_settle_s": 0.5,
    "ai_cases": 2,
    "ai_good_cases": 1,
    "ai_first_response": 1.0,
    "simulation_cases": 3,
    "api_claims": 6,
    "stream_cases": 3,
    "simulator_cases": 300,
    "simulator_ts_sample": 2,
}


def machine() -> dict:
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        kib = int(next(line for line in info if line.startswith("MemTotal")).split()[1])
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_gib": round(kib / 2**20, 1)}


def versions() -> dict:
    import temporalio

    try:
        cli = subprocess.run(
            [find_binary("temporal"), "--version"], capture_output=True, text=True, timeout=20
        ).stdout.strip()
    except Exception as error:  # informational only
        cli = f"unknown ({error})"
    return {"python": platform.python_version(), "temporalio": temporalio.__version__,
            "temporal_cli": cli}  # fmt: skip


def _parse_pairs(pairs: list[str], into: dict, *, typed_like: dict | None = None) -> dict:
    for pair in pairs:
        key, _, raw = pair.partition("=")
        if typed_like is not None:
            if key not in typed_like:
                raise SystemExit(f"unknown size {key!r}; known: {', '.join(typed_like)}")
            kind = type(typed_like[key])
            into[key] = raw.lower() in {"1", "true", "yes"} if kind is bool else kind(raw)
        else:
            into[key] = raw
    return into


async def run_suite(ctx: figures.Context, wanted: set[str]) -> dict:
    rows: list[figures.Row] = []
    raw: dict = {}
    errors: dict[str, str] = {}
    timings: dict[str, float] = {}

    async def measure(key: str, work):
        began = time.monotonic()
        ctx.log(f"[{key}] …")
        try:
            return await work
        except Exception as error:
            errors[key] = f"{type(error).__name__}: {error}"
            ctx.log(traceback.format_exc())
            return None
        finally:
            timings[key] = round(time.monotonic() - began, 1)
            ctx.log(f"[{key}] {timings[key]} s")

    sessions: dict = {}
    if wanted & {"a", "b", "c"}:
        sessions["minimal"] = await measure(
            "minimal (a b c)", figures.side_session(ctx, "minimal", wanted)
        )
    if wanted & {"a", "b", "c", "f"}:
        sessions["escalator"] = await measure(
            "escalator (a b c)", figures.side_session(ctx, "escalator", wanted)
        )
    raw["sessions"] = sessions
    if sessions.get("minimal") and sessions.get("escalator"):
        rows += figures.rows_a_b(sessions)
        rows += figures.rows_c(ctx, sessions)
    if "f" in wanted and sessions.get("escalator"):
        fig = await measure("f", figures.figure_f(ctx, sessions["escalator"]))
        if fig:
            rows += fig.rows
            raw["f"] = fig.raw
    later = (
        ("e", figures.figure_e),
        ("d", figures.figure_d),
        ("g", figures.figure_g),
        ("h", figures.figure_h),
        ("i", figures.figure_i),
        ("j", figures.figure_j),
    )
    for key, work in later:
        if key in wanted:
            fig = await measure(key, work(ctx))
            if fig:
                rows += fig.rows
                raw[key] = fig.raw
    order = {key: n for n, key in enumerate(ALL)}
    rows.sort(key=lambda row: order[row.key[0]])
    return {"rows": [asdict(r) for r in rows], "figures": raw, "errors": errors,
            "timings_s": timings}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness")
    parser.add_argument("--only", default=",".join(ALL), help="figures to run, e.g. a,b,g")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="worker setting for both sides (see bench/worker.py)",
    )
    parser.add_argument("--size", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--name", help="result file name (default: latest, or smoke)")
    parser.add_argument("--keep", action="store_true", help="keep logs and databases")
    args = parser.parse_args()  # fmt: skip

    wanted = {key.strip() for key in args.only.split(",") if key.strip()}
    unknown = wanted - set(ALL)
    if unknown:
        parser.error(f"unknown figures {sorted(unknown)}; choose from {', '.join(ALL)}")
    profile = "smoke" if args.smoke else "full"
    sizes = _parse_pairs(args.size, dict(SMOKE if args.smoke else FULL), typed_like=FULL)
    settings = _parse_pairs(args.set, {})
    name = args.name or ("smoke" if args.smoke else "latest")

    # SIGTERM (a CI timeout, say) unwinds like Ctrl-C, so every finally block runs.
    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    os.chdir(ROOT)
    workdir = Path(tempfile.mkdtemp(prefix="escalator-bench-"))
    ctx = figures.Context(workdir=workdir, sizes=sizes, settings=settings,
                          log=lambda line: print(line, flush=True))  # fmt: skip
    started = datetime.now(UTC)
    began = time.monotonic()
    print(f"Escalator benchmarks ({profile}): {', '.join(sorted(wanted))}; logs in {workdir}")
    try:
        results = asyncio.run(run_suite(ctx, wanted))
    finally:
        stop_all_children()
    results["meta"] = {
        "profile": profile,
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - began, 1),
        "figures": sorted(wanted),
        "sizes": sizes,
        "worker_settings": settings,
        "machine": machine(),
        **versions(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (RESULTS / f"{name}.md").write_text(report.markdown(results))
    try:
        report.chart(results, RESULTS / f"{name}.png")
    except Exception as error:  # the numbers matter more than the picture
        results["errors"]["chart"] = f"{type(error).__name__}: {error}"
        traceback.print_exc()
    print()
    print(report.plain_table(results["rows"]))
    print(f"\n{results['meta']['duration_s']:.0f} s; wrote {RESULTS}/{name}.{{json,md,png}}")
    if results["errors"]:
        print(f"errors (logs kept in {workdir}):", file=sys.stderr)
        for key, error in results["errors"].items():
            print(f"  {key}: {error}", file=sys.stderr)
        return 1
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
