"""The simulator against the real workflow: what it says a policy would have done is
what EscalationWorkflow does under that policy, on the time-skipping server.

Twenty varied cases (holds with and without `until`, max_hold, a customer's reply,
business hours over a weekend, de-escalation, severity raises, P1 routing, stale
claims, repeats on the final tier, reopens inside and outside the window):

1. Each runs in the real workflow under the old policy, with people acting at set
   moments; the worker writes the ledger as in production.
2. The simulator re-runs that ledger under the new policy, under each assumption.
3. Each case runs again in the real workflow under the new policy, given exactly the
   actions the simulator kept, at the times it gave them.
4. The simulator's paths, breaches, escalations and notifications must be the real
   run's. Any difference is a bug in one of them.

And the ledger re-run under the old policy must come out as it went, unchanged.

Every case starts on its own Monday (the business calendar repeats weekly, in UTC,
so a case and its re-run see the same hours), and each is awaited to its end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from support import actor, policy_with

from escalator.domain.models import (
    AddNoteRequest,
    CaseInput,
    ClaimRequest,
    DeescalateRequest,
    EscalateRequest,
    HoldRequest,
    ReopenRequest,
    ResolveRequest,
    ResumeRequest,
    SetSeverityRequest,
    workflow_id_for,
)
from escalator.domain.records import EscalationNote
from escalator.domain.simulation import rerun
from escalator.domain.simulation_report import _notices, compare

MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WEEK = timedelta(days=7)
SEC = timedelta(seconds=1)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")

OLD = policy_with(
    name="old",
    warn_at=[0.5],
    max_hold="3h",
    reopen_window="1d",
    tier_changes={
        1: {"sla": {"first_response": "30m", "resolution_target": "4h"}},
        2: {"sla": {"first_response": "20m", "resolution_target": "2h"}},
        3: {
            "sla": {"first_response": "15m", "resolution_target": "1h"},
            "repeat_every": "10m",
            "max_repeats": 2,
        },
    },
)
NEW = policy_with(
    name="new",
    warn_at=[0.5, 0.9],
    max_hold="1h",
    reopen_window="12h",
    calendar={"timezone": "UTC", "hours": {day: ["09:00-17:00"] for day in WEEKDAYS}},
    severity_overrides=[
        {"severity": "P1", "route_to": 3},
        {"severity": "P2", "route_to": 2},
    ],
    tier_changes={
        1: {"sla": {"first_response": "10m", "resolution_target": "2h"}, "stale_after": "1h"},
        2: {"sla": {"first_response": "30m", "resolution_target": "3h"}},
        3: {
            "sla": {"first_response": "15m", "resolution_target": "1h"},
            "calendar": {},
            "repeat_every": "10m",
            "max_repeats": 2,
        },
    },
)

NOTE = EscalationNote(reason="needs backend access", steps_taken=("checked runbook",))
ALICE, BOB, CAROL = actor("alice"), actor("bob"), actor("carol")
JANE = actor("jane", role="customer")


def claim(who=ALICE):
    return "claim", ClaimRequest(actor=who)


def resolve(who=ALICE):
    return "resolve", ResolveRequest(actor=who, summary="fixed")


@dataclass
class Scenario:
    """A case's input and what people do to it, at offsets from its start. `starts`
    is the offset into its week (the week begins Monday 00:00 UTC)."""

    name: str
    steps: list[tuple[timedelta, tuple[str, object]]]
    severity: str = "P3"
    starts: timedelta = 9 * HOUR + 30 * MIN  # Monday 09:30, inside the hours
    hold_until: timedelta | None = None  # a hold step's `until`, from the start
    fields: dict = field(default_factory=dict)


def hold(reason="waiting on logs"):
    return "hold", HoldRequest(actor=ALICE, reason=reason)


SCENARIOS = [
    Scenario("quick", [(5 * MIN, claim()), (40 * MIN, resolve())]),
    Scenario("breach-then-l2", [(50 * MIN + 7 * SEC, claim(BOB)), (90 * MIN, resolve(BOB))]),
    Scenario("claim-too-late-for-new", [(15 * MIN, claim()), (60 * MIN, resolve())]),
    Scenario(
        "hold-resume",
        [
            (5 * MIN, hold()),
            (2 * HOUR, ("resume", ResumeRequest(actor=ALICE))),
            (130 * MIN, claim()),
            (3 * HOUR, resolve()),
        ],
    ),
    Scenario(
        "hold-until",
        [(5 * MIN, ("hold-until", None)), (2 * HOUR, claim()), (150 * MIN, resolve())],
        hold_until=90 * MIN + 13 * SEC,
    ),
    Scenario("max-hold", [(5 * MIN, hold()), (4 * HOUR, claim()), (5 * HOUR, resolve())]),
    Scenario(
        "severity-raise-p2",
        [
            (3 * MIN, ("set_severity", SetSeverityRequest(actor=ALICE, severity="P2"))),
            (20 * MIN, claim(BOB)),
            (50 * MIN, resolve(BOB)),
        ],
    ),
    Scenario("opened-p1", [(10 * MIN, claim(CAROL)), (30 * MIN, resolve(CAROL))], severity="P1"),
    Scenario(
        "manual-escalation",
        [
            (6 * MIN, claim()),
            (8 * MIN, ("escalate", EscalateRequest(actor=ALICE, note=NOTE))),
            (25 * MIN, claim(BOB)),
            (70 * MIN, resolve(BOB)),
        ],
    ),
    Scenario(
        "deescalation",
        [
            (5 * MIN, claim()),
            (8 * MIN, ("escalate", EscalateRequest(actor=ALICE, note=NOTE))),
            (12 * MIN, claim(BOB)),
            (30 * MIN, ("deescalate", DeescalateRequest(actor=BOB, reason="fix deployed"))),
            (35 * MIN, claim()),
            (50 * MIN, resolve()),
        ],
    ),
    Scenario(
        "reopen-inside-both-windows",
        [
            (5 * MIN, claim()),
            (30 * MIN, resolve()),
            (6 * HOUR, ("reopen", ReopenRequest(actor=JANE, reason="it came back"))),
            (370 * MIN, claim()),
            (7 * HOUR, resolve()),
        ],
    ),
    Scenario(
        "reopen-outside-the-new-window",
        [
            (5 * MIN, claim()),
            (30 * MIN, resolve()),
            (20 * HOUR, ("reopen", ReopenRequest(actor=JANE, reason="still broken"))),
            (20 * HOUR + 10 * MIN, claim()),
            (21 * HOUR, resolve()),
        ],
    ),
    Scenario(
        "friday-evening",
        [(2 * DAY + 16 * HOUR + 50 * MIN, claim()), (2 * DAY + 17 * HOUR, resolve())],
        starts=4 * DAY + 16 * HOUR + 30 * MIN,  # Friday 16:30; claimed Monday 09:20
    ),
    Scenario(
        "customer-reply-ends-hold",
        [
            (5 * MIN, hold("waiting on the customer")),
            (45 * MIN, ("add_note", AddNoteRequest(actor=JANE, text="here are the logs"))),
            (50 * MIN, claim()),
            (90 * MIN, resolve()),
        ],
    ),
    Scenario("stale-claim", [(5 * MIN, claim()), (3 * HOUR, resolve())]),
    Scenario(
        "note-then-resolve",
        [
            (5 * MIN, claim()),
            (10 * MIN, ("add_note", AddNoteRequest(actor=ALICE, text="asked for logs"))),
            (2 * HOUR, resolve()),
        ],
    ),
    Scenario(
        "unclaimed-to-the-final-tier", [(150 * MIN, claim(CAROL)), (3 * HOUR, resolve(CAROL))]
    ),
    Scenario(
        "raised-to-p1-while-claimed",
        [
            (5 * MIN, claim()),
            (20 * MIN, ("set_severity", SetSeverityRequest(actor=ALICE, severity="P1"))),
            (30 * MIN, claim(CAROL)),
            (60 * MIN, resolve(CAROL)),
        ],
    ),
    Scenario(
        "before-opening-hours",
        [(2 * HOUR + 5 * MIN, claim()), (3 * HOUR, resolve())],
        starts=7 * HOUR,  # Monday 07:00; the hours open at 09:00
    ),
    Scenario("l2-claims-soon-after-entry", [(41 * MIN, claim(BOB)), (80 * MIN, resolve(BOB))]),
]


class Clock:
    """The time-skipping server's clock, moved to set moments."""

    def __init__(self, env) -> None:
        self.env = env

    async def now(self) -> datetime:
        return await self.env.get_current_time()

    async def until(self, moment: datetime) -> None:
        ahead = moment - await self.now()
        if ahead > timedelta(0):
            await self.env.sleep(ahead)


async def first_monday(clock: Clock) -> datetime:
    now = await clock.now()
    monday = (now + WEEK).replace(hour=0, minute=0, second=0, microsecond=0)
    return monday - timedelta(days=monday.weekday())


async def run_case(
    desk, clock: Clock, case_id: str, scenario: Scenario, policy, week, steps, *, was=None
):
    """Start the case at its moment in `week`, do `steps` [(offset, name, request)],
    and wait for it to close (past any reopen window). A hold's `until` is a moment;
    `was`, the start of the case the steps came from, moves it along."""
    start = week + scenario.starts
    await clock.until(start)
    await desk.start_case(
        CaseInput(case_id=case_id, title=scenario.name, severity=scenario.severity, policy=policy)
    )
    handle = desk.env.client.get_workflow_handle(workflow_id_for(case_id))
    for offset, name, request in steps:
        if was is not None and isinstance(request, HoldRequest) and request.until:
            request = request.model_copy(update={"until": request.until - was + start})
        await clock.until(start + offset)
        await handle.signal(name, request)
    await closed(desk.env, handle)


async def closed(env, handle) -> None:
    """Wait for the case to close, past any reopen window, moving the clock a little
    at a time: skipping a day in one go past the task that closes a case made this
    test server refuse that task ("invalid history builder state for action"), and
    `result()` alone gives up after 20 s of real time."""
    for _ in range(200):
        last = (await handle.fetch_history()).events[-1]
        if last.HasField("workflow_execution_completed_event_attributes"):
            break
        await env.sleep(15 * MIN)
    await handle.result()


def old_steps(scenario: Scenario, start: datetime):
    """The scenario's steps, each a few odd seconds late: an action at the very
    moment a timer fires makes this test server fail the workflow task ("invalid
    history builder state for action"), so no action lands on a whole minute."""
    steps = []
    for number, (offset, (name, request)) in enumerate(scenario.steps):
        offset += (7 + 3 * number) * SEC
        if name == "hold-until":
            name = "hold"
            request = HoldRequest(actor=ALICE, reason="logs", until=start + scenario.hold_until)
        steps.append((offset, name, request))
    return steps


def relative(result, created: datetime):
    return (
        [(s.tier, (s.at - created).total_seconds()) for s in result.path],
        result.breaches,
        result.escalations,
    )


def assert_same(simulated, real, label: str) -> None:
    sim_path, sim_breaches, sim_escalations = simulated
    real_path, real_breaches, real_escalations = real
    assert [t for t, _ in sim_path] == [t for t, _ in real_path], label
    for (tier, at), (_, real_at) in zip(sim_path, real_path, strict=True):
        assert abs(at - real_at) <= 1.0, f"{label}: {tier} at {at} s, really {real_at} s"
    assert (sim_breaches, sim_escalations) == (real_breaches, real_escalations), label


async def test_the_simulator_agrees_with_the_real_workflow(desk):
    clock = Clock(desk.env)
    monday = await first_monday(clock)
    ledger = desk.notifier.ledger

    # 1. The past: each case under the old policy, people acting as scripted.
    for number, scenario in enumerate(SCENARIOS):
        week = monday + number * WEEK
        steps = old_steps(scenario, week + scenario.starts)
        await run_case(desk, clock, f"old-{number}", scenario, OLD, week, steps)
    past = {h.facts.case_id: h for h in ledger.histories()}
    assert len(past) == len(SCENARIOS)

    # The ledger re-run under the policy it ran with comes out as it went.
    histories = [past[f"old-{n}"] for n in range(len(SCENARIOS))]
    for assumption in ("same-time", "same-delay"):
        same = compare(
            [rerun(h, OLD, assumption) for h in histories],
            policy={"name": "old", "version": "v"},
            assumption=assumption,
        )
        assert [c.case_id for c in same.changed_cases] == []
        assert same.dropped_actions.items == []
        assert same.simulated.model_dump() == same.actual.model_dump()

    # 2-4. The new policy, simulated and then run for real with the kept actions.
    first_week = len(SCENARIOS)
    changed = dropped = 0
    for round_number, assumption in enumerate(("same-time", "same-delay")):
        for number, scenario in enumerate(SCENARIOS):
            history = histories[number]
            simulated = rerun(history, NEW, assumption)
            created = history.facts.created_at
            steps = [(at - created, a.name, a.request) for a, at in simulated.applied]
            week = monday + (first_week + round_number * len(SCENARIOS) + number) * WEEK
            case_id = f"new-{assumption}-{number}"
            was = monday + number * WEEK + scenario.starts
            await run_case(desk, clock, case_id, scenario, NEW, week, steps, was=was)
            real = next(h for h in ledger.histories() if h.facts.case_id == case_id)

            report = compare(
                [simulated], policy={"name": "new", "version": "v"}, assumption=assumption
            )
            sim_case = report.per_case[0]
            real_report = compare(
                [rerun(real, NEW, assumption)],
                policy={"name": "new", "version": "v"},
                assumption=assumption,
            )
            label = f"{scenario.name} ({assumption})"
            assert_same(
                relative(sim_case.simulated, created),
                relative(real_report.per_case[0].actual, real.facts.created_at),
                label,
            )
            assert simulated.notifications == _notices(real), label
            changed += sim_case.changed
            dropped += len(simulated.dropped)
    # Not a vacuous agreement: the new policy changes many of these cases.
    assert changed >= 20
    assert dropped >= 4
