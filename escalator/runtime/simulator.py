"""Re-running a period of past cases on every core: the simulator's plumbing.

Each case re-runs on its own (escalator/domain/simulation.py), so the period's
case ids are split into chunks, and worker processes each read a chunk from the
ledger, re-run and compare its cases, and send back a `Part`; parts add up
(escalator/domain/simulation_report.py). Reading is about a fifth of the work, so
the workers read too, each with its own database connection (none crosses a fork).
A small period runs in this process: starting workers costs more than it saves.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from escalator.adapters.ledger_store import CASE_IDS_AT_ONCE, LedgerStore
from escalator.domain import metrics
from escalator.domain.ledger import CaseHistory
from escalator.domain.policy import Policy
from escalator.domain.simulation import Assumption, rerun
from escalator.domain.simulation_report import Part, compare_cases

IN_PROCESS_UP_TO = 1000  # cases; beyond this, worker processes pay for themselves
CHUNKS_PER_WORKER = 4  # smaller chunks even out cases of different lengths


@dataclass(frozen=True)
class Past:
    """Which past cases: the ledger, its filters (LedgerStore.histories), and a team
    the cases must have passed through."""

    ledger_url: str
    filters: dict[str, Any] = field(default_factory=dict)
    team: str | None = None


@dataclass(frozen=True)
class _Job:
    past: Past
    policy: Policy
    assumption: Assumption


def compare_all(
    past: Past, policy: Policy, assumption: Assumption, *, processes: int | None = None
) -> list[Part]:
    """Every past case re-run under `policy` and compared, as parts in the cases' order
    (oldest resolve first). A database error is raised as it is."""
    job = _Job(past, policy, assumption)
    store = LedgerStore(past.ledger_url)
    try:
        ids = store.case_ids(**past.filters)
        workers = processes or _cores()
        if workers < 2 or len(ids) <= IN_PROCESS_UP_TO or not _can_fork():
            return [_compare(job, store, ids)]
    finally:
        store.close()  # a connection must never be shared with a forked child
    size = min(-(-len(ids) // (workers * CHUNKS_PER_WORKER)), CASE_IDS_AT_ONCE)
    chunks = [ids[start : start + size] for start in range(0, len(ids), size)]
    global _job
    _job = job
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            return pool.map(_compare_chunk, chunks)
    finally:
        _job = None


def _compare(job: _Job, store: LedgerStore, ids: Sequence[str]) -> Part:
    histories: list[CaseHistory] = []
    for start in range(0, len(ids), CASE_IDS_AT_ONCE):
        histories += store.histories(
            **job.past.filters, case_ids=ids[start : start + CASE_IDS_AT_ONCE]
        )
    team = job.past.team
    if team is not None:
        histories = [h for h in histories if team in metrics.rebuild(h).teams()]
    return compare_cases(rerun(h, job.policy, job.assumption) for h in histories)


# -- in a worker process ---------------------------------------------------------------

# The job, set just before the workers are forked (so they need no copy of it), and
# each worker's own store, opened on its first chunk.
_job: _Job | None = None
_store: LedgerStore | None = None


def _compare_chunk(ids: Sequence[str]) -> Part:
    global _store
    assert _job is not None
    if _store is None:
        _store = LedgerStore(_job.past.ledger_url)
    return _compare(_job, _store, ids)


def _cores() -> int:
    """The cores this process may use (os.sched_getaffinity is Linux only)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()
