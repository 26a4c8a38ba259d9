"""(j) The policy simulator: 10,000 past cases re-run under a new policy.

The past is made with the case engine itself under the default policy: a month of
varied cases (claims early and late, manual escalations, holds, severity raises,
reopens), written to a SQLite ledger as the workflow writes it. The measured part
is what `escalator simulate` does: read the period's cases from the ledger, re-run
each under an office-hours policy with tighter SLAs, and compare the two sides.
(g) measures the time-skipping server's time per case in the same run.
"""

from __future__ import annotations

import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from escalator.adapters.ledger_store import LedgerStore
from escalator.adapters.policy_files import load_policy, parse_policy_text
from escalator.domain import case as engine
from escalator.domain import case_view
from escalator.domain.ledger import LedgerBatch, LedgerEvent
from escalator.domain.models import (
    AddNoteRequest,
    CaseInput,
    ClaimRequest,
    DeliveryReceipt,
    EscalateRequest,
    HoldRequest,
    ReopenRequest,
    ResolveRequest,
    ResumeRequest,
    SetSeverityRequest,
)
from escalator.domain.records import Actor, EscalationNote
from escalator.domain.simulation_report import summarize
from escalator.runtime.simulator import Past, compare_all

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 10, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)

# What the supervisor tries: office hours and tighter first responses.
NEW_POLICY = """
escalation:
  name: office-hours-tight
  warn_at: [0.5, 0.75]
  reopen_window: 3d
  calendar:
    timezone: Europe/Berlin
    hours: {mon: ["08:00-18:00"], tue: ["08:00-18:00"], wed: ["08:00-18:00"],
            thu: ["08:00-18:00"], fri: ["08:00-16:00"]}
  tiers:
    - {level: 1, name: Front-Line Support, team: support-generalists,
       notify: [l1@example.com], sla: {first_response: 1h, resolution_target: 8h}}
    - {level: 2, name: Specialist Support, team: support-specialists,
       notify: [l2@example.com], sla: {first_response: 1h, resolution_target: 6h}}
    - {level: 3, name: Engineering, team: engineering-oncall, notify: [oncall@example.com],
       sla: {first_response: 30m, resolution_target: 4h}, calendar: {},
       repeat_every: 30m, max_repeats: 4}
  severity_overrides:
    - {severity: P0, route_to: 3}
    - {severity: P1, route_to: 3}
    - {severity: P2, route_to: 2}
"""


def past_cases(count: int, seed: int = 7):
    """`count` resolved cases' ledger batches, made by the engine under the default
    policy with people acting at random but plausible moments."""
    policy = load_policy(ROOT / "policies" / "default.yaml").model_copy(
        update={"reopen_window": timedelta(days=2)}
    )
    rng = random.Random(seed)
    spread = timedelta(days=30).total_seconds()
    for number in range(count):
        severity = rng.choices(["P0", "P1", "P2", "P3", "P4"], [1, 4, 15, 55, 25])[0]
        case = CaseInput(
            case_id=f"past-{number:05d}",
            title=f"past case {number}",
            severity=severity,
            category=rng.choice(["sso", "billing", "mail", None]),
            policy=policy,
        )
        opened = START + timedelta(seconds=rng.uniform(0, spread))
        yield _life(case, opened, rng)


def _life(case: CaseInput, now: datetime, rng: random.Random) -> LedgerBatch:
    events: list[LedgerEvent] = []
    state = engine.new_state(case, now)

    def take(step: engine.Step) -> None:
        nonlocal state
        state = step.state
        events.extend(e.entry for e in step.effects if isinstance(e, engine.Recorded))
        for effect in step.effects:
            if isinstance(effect, engine.Deliver):  # delivered at once, as mail mostly is
                notice = effect.notification
                receipt = DeliveryReceipt(
                    message_id=notice.message_id, channel="email", accepted=notice.recipients
                )
                take(engine.delivered(state, case, notice, receipt, now))
        if state.phase == "resolved" and state.reopen_until is None:
            state = engine.reopen_window_opened(state, case)

    def wait(minutes: float) -> None:
        nonlocal now
        until = now + timedelta(minutes=minutes)
        take(engine.advance(state, case, now, until))
        now = until

    def act(action, request) -> None:
        try:
            take(action(state, case, request, now))
        except engine.Refused:
            pass

    take(engine.open_case(state, case, now))
    people = [Actor(user=f"agent{n}", role="engineer") for n in range(12)]
    who = rng.choice(people)
    wait(rng.lognormvariate(3.5, 1.0))  # median about 33 minutes to a claim
    act(engine.claim, ClaimRequest(actor=who))
    if rng.random() < 0.1:
        act(engine.add_note, AddNoteRequest(actor=who, text="asked the customer for logs"))
        act(engine.hold, HoldRequest(actor=who, reason="waiting on logs"))
        wait(rng.uniform(30, 300))
        act(engine.resume, ResumeRequest(actor=who))
    if rng.random() < 0.05:
        act(engine.set_severity, SetSeverityRequest(actor=who, severity="P1"))
    if rng.random() < 0.2 and state.phase == "claimed":
        wait(rng.uniform(10, 120))
        note = EscalationNote(reason="needs backend access", steps_taken=("checked runbook",))
        before = state.tier_level
        act(engine.escalate, EscalateRequest(actor=who, note=note))
        if state.tier_level != before:  # the final tier cannot escalate
            who = rng.choice(people)
            wait(rng.lognormvariate(3.0, 1.0))
            act(engine.claim, ClaimRequest(actor=who))
    wait(rng.lognormvariate(4.5, 1.0))  # median about 1.5 hours of work
    act(engine.resolve, ResolveRequest(actor=who, summary="fixed"))
    if rng.random() < 0.03:
        wait(rng.uniform(60, 600))
        act(engine.reopen, ReopenRequest(actor=who, reason="it came back"))
        wait(rng.uniform(10, 120))
        act(engine.resolve, ResolveRequest(actor=who, summary="fixed again"))
    wait(3 * 24 * 60)  # the reopen window passes
    return LedgerBatch(
        case_id=case.case_id, events=tuple(events), case=case_view.ledger_case(state, case)
    )


def build_ledger(url: str, count: int) -> int:
    """Write `count` past cases to the ledger at `url`; returns the events written."""
    store = LedgerStore(url)
    written = 0
    try:
        for batch in past_cases(count):
            written += store.write(batch).events_written
    finally:
        store.close()
    return written


def measure(count: int) -> dict:
    """Seconds to read, re-run and compare `count` past cases (the ledger is built first,
    untimed)."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-simulator-"))
    url = f"sqlite:///{workdir}/ledger.db"
    began = time.perf_counter()
    events = build_ledger(url, count)
    built = time.perf_counter() - began
    policy = parse_policy_text(NEW_POLICY, source="new.yaml")

    began = time.perf_counter()
    parts = compare_all(Past(url), policy, "same-time")
    simulated = time.perf_counter() - began
    began = time.perf_counter()
    result = summarize(
        parts, policy={"name": policy.name, "version": "bench"}, assumption="same-time"
    )
    summarized = time.perf_counter() - began
    total = simulated + summarized
    return {
        "cases": result.cases,
        "events": events,
        "build_s": round(built, 2),
        "read_rerun_compare_s": round(simulated, 3),
        "summarize_s": round(summarized, 3),
        "total_s": round(total, 3),
        "per_case_ms": round(total / max(result.cases, 1) * 1000, 3),
        "changed_cases": len(result.changed_cases),
        "dropped_actions": result.dropped_actions.total,
        "escalations": {
            "actual": sum(result.actual.escalations_by_tier.values()),
            "simulated": sum(result.simulated.escalations_by_tier.values()),
        },
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 1000), indent=2))
