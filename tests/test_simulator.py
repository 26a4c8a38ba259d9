"""The policy simulator on hand-built ledgers with known outcomes, no Temporal.

Each past case is either written out event by event, as the ledger holds it, or
lived through the pure engine under the old policy (tests/support.py EngineCase).
It is then re-run under a new policy (escalator/domain/simulation.py) and compared
(escalator/domain/simulation_report.py). The time-skipping cross-check against the
real workflow is tests/test_simulator_crosscheck.py; the CLI's edges are at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from support import DEFAULT_POLICY, ENGINE_T0, ESCALATOR, actor, policy_with
from support import EngineCase as Case

from bench.policy_simulator import past_cases
from escalator.adapters.ledger_store import LedgerStore
from escalator.adapters.policy_files import load_policy
from escalator.domain import case as engine
from escalator.domain import case_view, metrics
from escalator.domain.ledger import CaseHistory, LedgerBatch, LedgerEvent
from escalator.domain.models import (
    AddNoteRequest,
    ClaimRequest,
    HoldRequest,
    ReopenRequest,
    ResolveRequest,
    ResumeRequest,
    SetSeverityRequest,
)
from escalator.domain.simulation import recorded_actions, rerun
from escalator.domain.simulation_report import compare, compare_cases, summarize
from escalator.runtime import simulator

ROOT = Path(__file__).resolve().parent.parent
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
T0 = ENGINE_T0  # a Monday, 08:00 UTC


def l1_sla(first_response: str, resolution_target: str = "8h", **policy):
    return policy_with(
        tier_changes={1: {"sla": {"first_response": first_response, "resolution_target": resolution_target}}},
        **policy,
    )  # fmt: skip


def simulate(histories, policy, assumption="same-time"):
    reruns = [rerun(h, policy, assumption) for h in histories]
    return compare(reruns, policy={"name": policy.name, "version": "v"}, assumption=assumption)


def path(result, case=0, side="simulated"):
    """[(tier, minutes after T0)] of one case."""
    steps = getattr(result.per_case[case], side).path
    return [(s.tier, round((s.at - T0) / MIN, 2)) for s in steps]


def written_history(policy, *events: tuple[float, str, int, str | None, dict]) -> CaseHistory:
    """A resolved case written out as the ledger holds it: (minutes, kind, tier, actor,
    extra fields) per event. The fact row is the one the ledger would have."""
    rows = tuple(
        LedgerEvent(
            case_id="c-1", seq=n, at=T0 + minutes * MIN, kind=kind, tier_level=tier,
            actor=who, **extra,
        )
        for n, (minutes, kind, tier, who, extra) in enumerate(events, start=1)
    )  # fmt: skip
    base = Case(policy)  # the fact row's shape: what ledger_case writes
    facts = base.history().facts.model_copy(
        update={
            "created_at": rows[0].at,
            "first_claim_at": next((e.at for e in rows if e.kind == "claimed"), None),
            "resolved_at": rows[-1].at,
            "resolved_by": rows[-1].actor,
            "events": len(rows),
        }
    )
    return CaseHistory(facts=facts, events=rows)


# -- the known outcomes -------------------------------------------------------


CLAIMED_AFTER_5_MIN = (
    (0, "created", 1, None, {"detail": "P3 case opened at L1 Front-Line Support"}),
    (5, "claimed", 1, "alice", {"detail": "claimed at L1 Front-Line Support"}),
    (40, "resolved", 1, "alice", {"detail": "resolved at L1 Front-Line Support: fixed"}),
)


def test_a_claim_after_5_minutes_never_escalates_with_10_minutes_but_does_with_2():
    past = written_history(l1_sla("10m"), *CLAIMED_AFTER_5_MIN)

    same = simulate([past], l1_sla("10m"))
    assert path(same) == [("L1", 0)]
    assert (same.changed_cases, same.dropped_actions.total) == ([], 0)
    assert same.simulated.escalations_by_tier == {} == same.actual.escalations_by_tier

    tighter = simulate([past], l1_sla("2m"))
    assert path(tighter) == [("L1", 0), ("L2", 2)]
    assert tighter.simulated.escalations_by_tier == {"L1": 1}
    assert tighter.simulated.escalations_by_reason["sla"] == 1
    assert tighter.simulated.breaches_by_tier == {"L1": 1}
    assert tighter.simulated.sla_compliance.overall == 0.0
    assert tighter.actual.sla_compliance.overall == 1.0
    # Alice's claim in L1 is impossible once the case is at L2: dropped, and said so.
    assert tighter.dropped_actions.total == 1
    dropped = tighter.dropped_actions.items[0]
    assert (dropped.action, dropped.actor) == ("claim", "alice")
    assert dropped.reason == "taken at L1, but the case would be at L2"
    # The resolve belongs to the case, wherever it is.
    assert tighter.per_case[0].simulated.path[-1].tier == "L2"
    changed = tighter.changed_cases[0]
    assert [s.tier for s in changed.actual_path] == ["L1"]
    assert [s.tier for s in changed.simulated_path] == ["L1", "L2"]


def test_the_json_has_the_keys_scripts_rely_on():
    past = written_history(l1_sla("10m"), *CLAIMED_AFTER_5_MIN)
    document = json.loads(simulate([past], l1_sla("2m")).model_dump_json())
    assert {"period", "cases", "assumption", "actual", "simulated", "changed_cases",
            "dropped_actions"} <= set(document)  # fmt: skip
    for side in ("actual", "simulated"):
        assert {"escalations_by_tier", "escalations_by_reason", "breaches", "sla_compliance",
                "notifications"} <= set(document[side])  # fmt: skip
    assert set(document["changed_cases"][0]) == {"case_id", "actual_path", "simulated_path"}
    assert document["assumption"] == "same-time"


def test_business_hours_move_the_breach_to_the_next_morning():
    # Opened Monday 16:30 with a 1 h first response; claimed Tuesday 10:00.
    opened = 8.5 * 60
    past = written_history(
        l1_sla("24h", "48h"),
        (opened, "created", 1, None, {"detail": "P3 case opened at L1 Front-Line Support"}),
        (opened + 17.5 * 60, "claimed", 1, "alice", {"detail": "claimed"}),
        (opened + 18.5 * 60, "resolved", 1, "alice", {"detail": "resolved"}),
    )
    around_the_clock = simulate([past], l1_sla("1h"))
    assert path(around_the_clock)[:2] == [("L1", opened), ("L2", opened + 60)]  # Monday 17:30

    hours = {day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
    office = simulate([past], l1_sla("1h", calendar={"timezone": "UTC", "hours": hours}))
    # 30 minutes on Monday, the other 30 on Tuesday from 09:00: the breach is at 09:30.
    tuesday_0930 = (24 + 1.5) * 60
    assert path(office) == [("L1", opened), ("L2", tuesday_0930)]
    assert office.dropped_actions.items[0].reason == "taken at L1, but the case would be at L2"


def test_a_hold_keeps_the_remaining_time():
    case = Case(l1_sla("24h", "48h"))
    case.after(40 * MIN)
    case.do(engine.hold, HoldRequest(actor=actor(), reason="waiting on logs"))
    case.after(3 * HOUR)
    case.do(engine.resume, ResumeRequest(actor=actor()))
    case.after(2 * HOUR)
    case.do(engine.resolve, ResolveRequest(actor=actor()))
    # Under a 1 h first response, 40 min ran before the hold; the other 20 after it.
    result = simulate([case.history()], l1_sla("1h"))
    assert path(result) == [("L1", 0), ("L2", 40 + 180 + 20)]
    assert result.dropped_actions.total == 0


def test_a_hold_with_until_resumes_by_itself_in_the_rerun_too():
    case = Case(l1_sla("24h", "48h"))
    case.after(10 * MIN)
    until = T0 + 2 * HOUR + 7 * MIN + timedelta(seconds=30)
    case.do(engine.hold, HoldRequest(actor=actor(), reason="logs", until=until))
    case.after(4 * HOUR)
    case.do(engine.resolve, ResolveRequest(actor=actor()))
    [hold] = [a for a in recorded_actions(case.history()) if a.name == "hold"]
    assert hold.request.until == until  # to the second: the ledger keeps it
    result = simulate([case.history()], l1_sla("1h"))
    # 10 min before the hold, 50 min after it ended by itself.
    assert path(result)[-1] == ("L2", round((until - T0) / MIN + 50, 2))


def test_a_hold_until_in_another_zone_survives_the_sqlite_ledger(tmp_path):
    case = Case(l1_sla("1h", "3h"))
    case.after(10 * MIN)
    case.do(engine.claim, ClaimRequest(actor=actor()))
    case.after(10 * MIN)
    until = datetime(2026, 3, 2, 11, 0, tzinfo=timezone(timedelta(hours=2)))  # 09:00 UTC
    case.do(engine.hold, HoldRequest(actor=actor(), reason="logs", until=until))
    case.after(4 * HOUR)
    case.do(engine.resolve, ResolveRequest(actor=actor()))
    assert "on hold until 2026-03-02 09:00 UTC: logs" in [e.detail for e in case.ledger]
    store = LedgerStore(f"sqlite:///{tmp_path}/ledger.db")
    history = case.history()
    store.write(LedgerBatch(case_id="c-1", events=history.events, case=history.facts))
    [back] = store.histories()
    store.close()
    [hold] = [e for e in back.events if e.kind == "hold"]
    assert hold.until == until  # the same moment, read back in UTC
    result = simulate([back], l1_sla("1h", "3h"))
    assert result.changed_cases == [] and result.dropped_actions.total == 0


def test_a_customers_reply_ends_a_hold_the_new_policy_keeps_longer():
    # Under max_hold 2h the hold had already ended when the customer replied.
    case = Case(policy_with(max_hold="2h"))
    case.after(10 * MIN)
    case.do(engine.hold, HoldRequest(actor=actor(), reason="awaiting the customer"))
    case.after(3 * HOUR)
    case.do(engine.add_note, AddNoteRequest(actor=actor("jane", role="customer"), text="logs"))
    case.after(HOUR)
    case.do(engine.resolve, ResolveRequest(actor=actor()))
    [note] = [a for a in recorded_actions(case.history()) if a.name == "add_note"]
    assert note.request.actor.role == "customer"
    rerun_case = rerun(case.history(), policy_with(max_hold=None))
    [resumed] = [e for e in rerun_case.simulated.events if e.kind == "resumed"]
    assert (resumed.actor, round((resumed.at - T0) / MIN)) == ("jane", 190)
    assert resumed.detail.startswith("the customer replied")


def test_a_p1_severity_raise_reroutes():
    no_override = policy_with(severity_overrides=[])
    case = Case(no_override)
    case.after(10 * MIN)
    case.do(engine.set_severity, SetSeverityRequest(actor=actor(), severity="P1"))
    case.after(30 * MIN)
    case.do(engine.resolve, ResolveRequest(actor=actor()))
    assert [s.tier for s in simulate([case.history()], no_override).per_case[0].actual.path] == [
        "L1"
    ]
    result = simulate([case.history()], DEFAULT_POLICY)  # P1 routes to L3
    assert path(result) == [("L1", 0), ("L3", 10)]
    assert result.simulated.escalations_by_reason["severity"] == 1


def test_a_case_that_opened_at_p1_opens_where_the_new_policy_routes_p1():
    case = Case(policy_with(severity_overrides=[]), severity="P1")
    case.after(20 * MIN)
    case.do(engine.resolve, ResolveRequest(actor=actor()))
    assert path(simulate([case.history()], DEFAULT_POLICY)) == [("L3", 0)]


def test_same_delay_brings_the_next_tiers_claim_forward():
    past_policy = l1_sla("30m")
    case = Case(past_policy)
    case.after(40 * MIN)  # L1 breached at 30 min; L2 claims 10 min later
    case.do(engine.claim, ClaimRequest(actor=actor("bob")))
    case.after(20 * MIN)
    case.do(engine.resolve, ResolveRequest(actor=actor("bob")))
    faster = policy_with(
        tier_changes={
            1: {"sla": {"first_response": "10m", "resolution_target": "8h"}},
            2: {"sla": {"first_response": "20m", "resolution_target": "8h"}},
        }
    )
    # Same time: bob still claims at 40 min, but L2 breached at 30 and L3 has it.
    same_time = simulate([case.history()], faster)
    assert path(same_time) == [("L1", 0), ("L2", 10), ("L3", 30)]
    assert same_time.dropped_actions.items[0].reason.startswith("taken at L2")
    # Same delay: bob claims 10 min after L2 was told, at 20 min, before the breach.
    same_delay = simulate([case.history()], faster, "same-delay")
    assert path(same_delay) == [("L1", 0), ("L2", 10)]
    assert same_delay.dropped_actions.total == 0
    assert same_delay.assumption == "same-delay"


def test_same_delay_waits_for_a_tier_that_a_slower_policy_reaches_later():
    case = Case(l1_sla("30m"))
    case.after(35 * MIN)  # L2 since 30 min
    case.do(engine.claim, ClaimRequest(actor=actor("bob")))
    case.after(10 * MIN)
    case.do(engine.resolve, ResolveRequest(actor=actor("bob")))
    slower = simulate([case.history()], l1_sla("50m"), "same-delay")
    # L2 comes at 50 min; bob claims 5 min after it, and resolves 10 min later.
    assert path(slower) == [("L1", 0), ("L2", 50)]
    assert slower.dropped_actions.total == 0
    applied = [
        (a.name, round((at - T0) / MIN))
        for a, at in rerun(case.history(), l1_sla("50m"), "same-delay").applied
    ]
    assert applied == [("claim", 55), ("resolve", 65)]


def test_same_delay_never_waits_for_a_tier_the_new_policy_lacks():
    demo = load_policy(ROOT / "policies/demo.yaml")  # four tiers, 40 s SLAs
    case = Case(demo)
    case.after(3 * MIN)  # at L4, the AI-agent stage, since 2 min
    case.do(engine.claim, ClaimRequest(actor=actor("erin")))
    case.after(MIN)
    case.do(engine.resolve, ResolveRequest(actor=actor("erin")))
    assert case.state.tier_level == 4
    result = simulate([case.history()], DEFAULT_POLICY, "same-delay")  # three tiers, hours
    assert path(result) == [("L1", 0)]
    assert result.simulated.breaches == 0
    [dropped] = result.dropped_actions.items
    assert (dropped.action, dropped.reason) == (
        "claim",
        "taken at L4, but the case would be at L1",
    )


def test_a_reopen_after_the_new_window_is_dropped():
    case = Case(policy_with(reopen_window="7d"))
    case.after(10 * MIN)
    case.do(engine.claim, ClaimRequest(actor=actor()))
    case.do(engine.resolve, ResolveRequest(actor=actor()))
    case.after(2 * 24 * HOUR)
    case.do(engine.reopen, ReopenRequest(actor=actor(), reason="it came back"))
    case.after(HOUR)
    case.do(engine.resolve, ResolveRequest(actor=actor()))
    assert simulate([case.history()], policy_with(reopen_window="7d")).dropped_actions.total == 0
    result = simulate([case.history()], policy_with(reopen_window="1d"))
    actions = [(d.action, d.reason) for d in result.dropped_actions.items]
    assert actions[0] == ("reopen", "the reopen window has closed; open a new case instead")
    assert actions[1][0] == "resolve"  # the second resolve: the case never reopened
    comparison = result.per_case[0]
    assert [s.tier for s in comparison.actual.path] == ["L1", "L1"]  # the reopen's stay
    assert [s.tier for s in comparison.simulated.path] == ["L1"]
    assert comparison.changed


# -- exactness on many varied cases -----------------------------------------------------


@pytest.fixture(scope="module")
def varied():
    """300 past cases lived under the default policy (bench/policy_simulator.py)."""
    return [CaseHistory(facts=b.case, events=b.events) for b in past_cases(300, seed=11)]


def test_every_past_case_re_run_under_its_own_policy_comes_out_as_it_went(varied):
    policy = varied[0].facts.policy
    for assumption in ("same-time", "same-delay"):
        result = simulate(varied, policy, assumption)
        assert result.cases == 300
        assert result.changed_cases == []
        assert result.dropped_actions.total == 0
        assert result.simulated.model_dump() == result.actual.model_dump()
    # Not a vacuous check: the sample has escalations, holds and reopens.
    assert result.actual.escalations_by_reason["sla"] > 10
    assert result.actual.escalations_by_reason["manual"] > 10
    assert any(e.kind == "hold" for h in varied for e in h.events)
    assert any(e.kind == "reopened" for h in varied for e in h.events)


def test_the_rerun_records_the_events_the_case_recorded(varied):
    # All but the delivery receipts: a re-run sends nothing, so nothing comes back.
    def entries(events):
        return [
            (e.kind, e.at, e.tier_level, e.actor, e.detail)
            for e in events
            if e.kind not in ("notification_sent", "notification_failed")
        ]

    for history in varied[:100]:
        assert entries(rerun(history, history.facts.policy).simulated.events) == entries(
            history.events
        )


def test_the_tallies_count_as_escalator_report_does(varied):
    policy = l1_sla("30m")
    reruns = [rerun(h, policy) for h in varied]
    lives = [metrics.rebuild(r.simulated) for r in reruns]
    side = compare_cases(reruns).simulated.side()
    assert side.escalations_by_tier == metrics.escalations(lives).by_tier
    assert side.escalations_by_reason == metrics.escalations(lives).by_reason
    assert side.sla_compliance == metrics.compliance(lives)
    assert sum(side.escalations_by_tier.values()) > 50  # the tighter policy escalates


def test_worker_processes_give_the_same_report_as_one_process(varied, monkeypatch, tmp_path):
    url = f"sqlite:///{tmp_path}/ledger.db"
    store = LedgerStore(url)
    for history in varied:
        store.write(LedgerBatch(case_id=history.facts.case_id, events=history.events,
                                case=history.facts))  # fmt: skip
    store.close()
    policy = l1_sla("30m")
    past = simulator.Past(url, team="support-specialists")
    in_process = simulator.compare_all(past, policy, "same-time")
    assert len(in_process) == 1
    monkeypatch.setattr(simulator, "IN_PROCESS_UP_TO", 10)
    parts = simulator.compare_all(past, policy, "same-time", processes=2)
    assert len(parts) == 8  # 2 workers, 4 chunks each
    meta = {"policy": {"name": "p", "version": "v"}, "assumption": "same-time"}
    together = summarize(in_process, **meta)
    assert summarize(parts, **meta).model_dump() == together.model_dump()
    # The team filter kept the cases that reached L2, and only those.
    reached = [h for h in varied if any(e.tier_level == 2 for e in h.events)]
    assert together.cases == len(reached) > 20


def test_peak_unclaimed_counts_cases_waiting_at_the_same_moment():
    cases = []
    for n, (opened, claimed) in enumerate([(0, 30), (10, 20), (25, 50), (35, 45)]):
        case = Case(l1_sla("24h", "48h"), case_id=f"c-{n}", start=T0 + opened * MIN)
        case.after((claimed - opened) * MIN)
        case.do(engine.claim, ClaimRequest(actor=actor()))
        case.do(engine.resolve, ResolveRequest(actor=actor()))
        cases.append(case.history())
    # Waiting: [0,30) [10,20) [25,50) [35,45): at most 2 at once (0-30 with 10-20 ...).
    load = simulate(cases, l1_sla("24h", "48h")).actual.load_by_tier["L1"]
    assert (load.entering, load.peak_unclaimed) == (4, 2)


# -- the command line ----------------------------------------------------------------------


def cli(*args, ledger_url=None, **env):
    environment = {**os.environ, **env}
    if ledger_url is not None:
        environment["ESCALATOR_LEDGER_URL"] = ledger_url
    return subprocess.run(
        [*ESCALATOR, *args], capture_output=True, text=True, cwd=ROOT, timeout=60,
        env=environment,
    )  # fmt: skip


@pytest.fixture
def ledger(tmp_path):
    """A ledger with recent cases: claimed after 5 minutes, resolved after 40."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    store = LedgerStore(url)
    from datetime import UTC, datetime

    start = datetime.now(UTC) - timedelta(days=2)
    for n in range(3):
        case = Case(l1_sla("10m"), case_id=f"recent-{n}", start=start + n * HOUR)
        case.after(5 * MIN)
        case.do(engine.claim, ClaimRequest(actor=actor("alice")))
        case.after(35 * MIN)
        case.do(engine.resolve, ResolveRequest(actor=actor("alice")))
        facts = case_view.ledger_case(case.state, case.case)
        store.write(LedgerBatch(case_id=case.case.case_id, events=tuple(case.ledger), case=facts))
    store.close()
    return url


def policy_file(tmp_path, first_response: str) -> Path:
    text = Path(ROOT / "policies/default.yaml").read_text()
    path = tmp_path / f"l1-{first_response}.yaml"
    path.write_text(text.replace("first_response: 4h", f"first_response: {first_response}", 1))
    return path


def test_simulate_on_the_command_line(tmp_path, ledger):
    done = cli("simulate", "--policy", str(policy_file(tmp_path, "2m")), "--format", "json",
               ledger_url=ledger)  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["cases"] == 3
    assert document["simulated"]["escalations_by_tier"] == {"L1": 3}
    assert document["dropped_actions"]["total"] == 3
    assert document["policy"]["version"].startswith("default@")

    text = cli("simulate", "--policy", str(policy_file(tmp_path, "2m")), ledger_url=ledger)
    assert text.returncode == 0, text.stderr
    assert "changed cases: 3 of 3" in text.stdout
    assert "taken at L1, but the case would be at L2" in text.stdout

    out = tmp_path / "sim.html"
    html = cli("simulate", "--policy", str(policy_file(tmp_path, "2m")), "--format", "html",
               "--out", str(out), ledger_url=ledger)  # fmt: skip
    assert html.returncode == 0, html.stderr
    assert out.read_text().startswith("<!doctype html>")


@pytest.mark.parametrize(
    ("args", "ledger_kind", "expected"),
    [
        ((), "missing", "ledger: nothing at"),
        (("--since", "1h"), "present", "no resolved cases"),
        (("--category", "nope"), "present", "no resolved cases matching --category nope"),
        (("--since", "soon"), "present", "--since"),
        (("--assume", "whenever"), "present", "--assume"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, ledger, args, ledger_kind, expected):
    url = ledger if ledger_kind == "present" else f"sqlite:///{tmp_path}/none/ledger.db"
    done = cli("simulate", "--policy", str(policy_file(tmp_path, "2m")), *args, ledger_url=url)
    assert done.returncode == 2, done.stdout
    assert expected in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_a_policy_that_does_not_load_is_its_one_line_error(tmp_path, ledger):
    broken = tmp_path / "broken.yaml"
    broken.write_text("escalation:\n  name: x\n  tiers: []\n")
    done = cli("simulate", "--policy", str(broken), ledger_url=ledger)
    assert done.returncode == 2
    assert done.stderr.startswith(f"escalator: {broken}:")
    assert len(done.stderr.strip().splitlines()) == 1
    missing = cli("simulate", "--policy", str(tmp_path / "nope.yaml"), ledger_url=ledger)
    assert (missing.returncode, "file not found" in missing.stderr) == (2, True)
