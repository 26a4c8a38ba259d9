"""Chaos: prove that nothing is lost.

Everything here is real: the Temporal dev server on a SQLite file (started as
`escalator up` starts it), `worker.py` subprocesses, and an SMTP server on loopback.
The tests kill workers with kill -9, stop and restart the server on the same file,
and take SMTP down, then check every case, every escalation and every mail.

Random choices come from one seed, printed at the start of each run; set
CHAOS_SEED=<seed> to replay a run's kill schedule. Set CHAOS_FIGURES=<path> to
write the measured figures as JSON (docs/reliability.md quotes them).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from chaos_support import (
    BouncingMailSink,
    DevServerProcess,
    LoggedWorker,
    body,
    duplicate_report,
    events,
    gather_bounded,
    received_at,
    sent_message_ids,
)
from support import actor, eventually, unique_queue
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.worker import Replayer

from escalator.devstack.stack import WORKFLOW_TASK_TIMEOUT
from escalator.domain.models import CaseStatus, workflow_id_for
from escalator.domain.policy import Policy
from escalator.runtime.worker import DEFAULT_STICKY_TIMEOUT
from starter import EscalatorClient
from workflows.escalation import EscalationWorkflow

pytestmark = pytest.mark.integration

L1, L2, L3 = "l1-desk@example.com", "l2-specialists@example.com", "l3-oncall@example.com"
CLOSER = actor("closer", role="admin")
FIGURES: dict[str, dict] = {}
# Worker logs that would mean a replay after a kill went wrong.
REPLAY_PROBLEMS = ("nondetermin", "Failed activation")


def policy(
    first_response: float = 3,
    resolution: float = 10,
    *,
    l2_first_response: float | None = None,
    l2_notify: str = L2,
) -> Policy:
    """L1 and L2 on seconds-scale SLAs, L3 final without one; one address per tier."""

    def sla(first: float) -> dict:
        return {"first_response": first, "resolution_target": max(first, resolution)}

    return Policy.model_validate(
        {
            "name": "chaos",
            "tiers": [
                {
                    "level": 1,
                    "name": "Front-Line Support",
                    "team": "support-generalists",
                    "notify": [L1],
                    "sla": sla(first_response),
                },
                {
                    "level": 2,
                    "name": "Specialist Support",
                    "team": "support-specialists",
                    "notify": [l2_notify],
                    "sla": sla(l2_first_response or first_response),
                },
                {
                    "level": 3,
                    "name": "Engineering",
                    "team": "engineering-oncall",
                    "notify": [L3],
                },
            ],
        }
    )


def customer_of(case_id: str) -> str:
    return f"{case_id}@customers.example"


def new_case(case_id: str, case_policy: Policy) -> dict:
    return {
        "case_id": case_id,
        "title": f"Chaos case {case_id}",
        "description": "Outlook stopped syncing after the certificate change.",
        "customer": {"name": "Jane", "email": customer_of(case_id)},
        "policy": case_policy,
    }


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def figures():
    yield FIGURES
    text = json.dumps(FIGURES, indent=2, default=str)
    print(f"\nchaos figures:\n{text}")
    if os.environ.get("CHAOS_FIGURES"):
        with open(os.environ["CHAOS_FIGURES"], "w") as out:
            out.write(text + "\n")


@pytest.fixture(scope="module")
def seed() -> int:
    value = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1_000_000))
    print(f"\nchaos seed: {value} (replay with CHAOS_SEED={value})")
    return value


@pytest_asyncio.fixture(scope="module")
async def server(tmp_path_factory):
    """One dev server on a SQLite file for the tests that do not restart it."""
    dev = DevServerProcess(tmp_path_factory.mktemp("chaos-server"))
    try:
        await dev.start()
        yield dev
    finally:
        dev.stop()


class Chaos:
    """What a test starts (workers, sinks, its own servers), stopped at teardown
    whatever happens to the test."""

    def __init__(self, tmp_path) -> None:
        self.tmp_path = tmp_path
        self.workers: list[LoggedWorker] = []
        self.sinks: list[BouncingMailSink] = []
        self.servers: list[DevServerProcess] = []

    def sink(self) -> BouncingMailSink:
        sink = BouncingMailSink()
        self.sinks.append(sink)
        return sink.start()

    def worker(self, name: str, address: str, queue: str, sink: BouncingMailSink) -> LoggedWorker:
        worker = LoggedWorker(
            name=name,
            log_dir=self.tmp_path,
            temporal_address=address,
            task_queue=queue,
            smtp_port=sink.port,
        )
        self.workers.append(worker)
        return worker

    async def own_server(self) -> DevServerProcess:
        dev = DevServerProcess(self.tmp_path / "server")
        self.servers.append(dev)
        return await dev.start()

    def replay_problems(self) -> list[str]:
        return [
            f"{path.name}: {problem}"
            for worker in self.workers
            for path in worker.logs
            for problem in REPLAY_PROBLEMS
            if problem.lower() in path.read_text(errors="replace").lower()
        ]

    def teardown(self) -> None:
        for worker in self.workers:
            worker.stop()
        for sink in self.sinks:
            sink.stop()
        for dev in self.servers:
            dev.stop()


@pytest.fixture
def chaos(tmp_path):
    spawned = Chaos(tmp_path)
    try:
        yield spawned
    finally:
        spawned.teardown()


# -- helpers ---------------------------------------------------------------------------


async def status_or_none(escalator: EscalatorClient, case_id: str) -> CaseStatus | None:
    """The case's status, or None while no worker can answer the query yet."""
    try:
        return await asyncio.wait_for(escalator.status(case_id), timeout=15)
    except Exception:
        return None


async def wait_for_all(
    escalator: EscalatorClient,
    case_ids,
    condition,
    *,
    within: float,
    what: str,
    every: float = 1.0,
) -> dict[str, CaseStatus]:
    """Poll every case's status until `condition` holds for all of them."""
    pending = set(case_ids)
    reached: dict[str, CaseStatus] = {}
    last: dict[str, CaseStatus | None] = {}
    give_up_at = time.monotonic() + within
    while pending:
        ordered = sorted(pending)
        answers = await gather_bounded(status_or_none(escalator, c) for c in ordered)
        for case_id, status in zip(ordered, answers, strict=True):
            last[case_id] = status
            if status is not None and condition(status):
                reached[case_id] = status
                pending.discard(case_id)
        if not pending:
            break
        if time.monotonic() > give_up_at:
            shown = {c: (s.tier_level, s.state) if s else None for c, s in last.items()}
            raise AssertionError(
                f"{len(pending)} case(s) not {what} within {within:.0f}s: "
                f"{ {c: shown.get(c) for c in sorted(pending)} }"
            )
        await asyncio.sleep(every)
    return reached


async def resolve_all(escalator: EscalatorClient, case_ids) -> None:
    await gather_bounded(escalator.resolve(c, CLOSER, "closed by the chaos test") for c in case_ids)


async def outcomes_one_by_one(escalator: EscalatorClient, case_ids, *, within: float = 120):
    outcomes = {}
    for case_id in case_ids:
        outcomes[case_id] = await asyncio.wait_for(escalator.outcome(case_id), timeout=within)
    return outcomes


def transitions(timeline) -> list[str]:
    """'L1→L2' for each `escalated` event ("L1 Front-Line Support → L2 ...: reason")."""
    moves = []
    for event in events(timeline, "escalated"):
        source, _, rest = event.detail.partition(" → ")
        moves.append(f"{source.split(' ')[0]}→{rest.split(' ')[0]}")
    return moves


def expected_mails(case_id: str) -> list[tuple[str, str]]:
    """The notifications every case of these tests must deliver: each tier on entry
    and the customer on each of the two escalations."""
    customer = customer_of(case_id)
    return [
        ("tier_entry", L1),
        ("tier_entry", L2),
        ("tier_entry", L3),
        ("customer_escalation", customer),
        ("customer_escalation", customer),
    ]


def missing_mails(sink: BouncingMailSink, case_id: str) -> list[tuple[str, str]]:
    """Expected mails not at the sink; a repeated expectation needs distinct mails."""
    ids: dict[tuple[str, str], set[str]] = {}
    for message in sink.for_case(case_id):
        for recipient in message["X-Envelope-To"].split(", "):
            key = (message["X-Escalator-Purpose"], recipient)
            ids.setdefault(key, set()).add(message["Message-ID"])
    wanted: dict[tuple[str, str], int] = {}
    for key in expected_mails(case_id):
        wanted[key] = wanted.get(key, 0) + 1
    return [key for key, n in wanted.items() if len(ids.get(key, ())) < n]


def check_case_delivery(sink: BouncingMailSink, case_id: str, timeline) -> list[str]:
    """What the sink got must be exactly what the timeline says was sent."""
    problems = []
    sent = sent_message_ids(timeline)
    if len(sent) != len(set(sent)):
        problems.append(f"{case_id}: a notification recorded as sent twice: {sorted(sent)}")
    received = {m["Message-ID"] for m in sink.for_case(case_id)}
    if received != set(sent):
        problems.append(
            f"{case_id}: sink has {sorted(received - set(sent))} not in the timeline; "
            f"timeline has {sorted(set(sent) - received)} not at the sink"
        )
    missing = missing_mails(sink, case_id)
    if missing:
        problems.append(f"{case_id}: expected mail missing: {missing}")
    return problems


# -- 1b. the worker is killed while cases resolve: the ledger stays exact ------------------

LEDGER_CASES = 20


async def test_the_ledger_stays_exact_when_the_worker_is_killed_while_cases_resolve(
    server, chaos, seed
):
    from escalator.adapters.ledger_store import LedgerStore

    queue = unique_queue("chaos-ledger")
    sink = chaos.sink()
    worker = chaos.worker("ledger-worker", server.address, queue, sink)
    store = LedgerStore(worker.env["ESCALATOR_LEDGER_URL"])
    escalator = EscalatorClient(await server.connect(), queue)
    worker.start()
    await worker.ready()
    case_ids = [f"ledger-kill-{seed}-{n:02d}" for n in range(LEDGER_CASES)]
    await gather_bounded(escalator.start_case(new_case(c, policy(600, 1200))) for c in case_ids)
    await gather_bounded(escalator.claim(c, actor("alice")) for c in case_ids)
    await gather_bounded(
        escalator.add_note(c, actor("alice"), "restarted the sync") for c in case_ids
    )
    # The resolves go out as signals, and the worker dies while it handles them: some
    # cases have resolved, some have sent their ledger batch, some neither.
    for case_id in case_ids:
        await escalator.resolve(case_id, CLOSER, "closed by the chaos test", wait=False)
    await asyncio.sleep(random.Random(seed).uniform(0.05, 0.5))
    worker.kill()
    worker.start()
    await worker.ready()
    outcomes = await outcomes_one_by_one(escalator, case_ids)

    problems = []
    for case_id, outcome in outcomes.items():
        recorded = store.events_of(case_id)
        expected = len(outcome.timeline)  # short cases: the whole timeline is kept
        if [e.seq for e in recorded] != list(range(1, expected + 1)):
            problems.append(
                f"{case_id}: ledger seqs {[e.seq for e in recorded]}, {expected} expected"
            )
        if [e.kind for e in recorded] != [e.kind for e in outcome.timeline]:
            problems.append(f"{case_id}: ledger kinds differ from the timeline")
        facts = store.case(case_id)
        if facts is None or (facts.events, facts.resolved_by) != (expected, "closer"):
            problems.append(f"{case_id}: fact row {facts}")
    assert not problems, f"seed {seed}:\n" + "\n".join(problems)
    assert store.counts() == {
        "ledger_events": sum(len(o.timeline) for o in outcomes.values()),
        "ledger_cases": LEDGER_CASES,
    }
    assert not chaos.replay_problems(), chaos.replay_problems()
    store.close()


# -- 1. the worker is killed, again and again ------------------------------------------

CASES = 50
KILLS = 5
CATCH_UP_SLACK = 5.0  # seconds


def sticky_seconds() -> float:
    return DEFAULT_STICKY_TIMEOUT.total_seconds()


def task_timeout_seconds() -> float:
    return float(WORKFLOW_TASK_TIMEOUT.removesuffix("s"))


async def test_fifty_cases_survive_repeated_kill_9_of_the_worker(server, chaos, seed):
    rng = random.Random(seed)
    queue = unique_queue("chaos-kill")
    sink = chaos.sink()
    worker = chaos.worker("killed-worker", server.address, queue, sink)
    escalator = EscalatorClient(await server.connect(), queue)
    worker.start()
    await worker.ready()

    case_ids = [f"kill-{seed}-{n:02d}" for n in range(CASES)]
    await gather_bounded(escalator.start_case(new_case(c, policy(3))) for c in case_ids)
    began = time.monotonic()

    kills = []
    for n in range(KILLS):
        uptime, pause = rng.uniform(0.3, 2.5), rng.uniform(0.1, 1.5)
        await asyncio.sleep(uptime)
        below_l3 = sum(not sink.got(c, "tier_entry", L3) for c in case_ids)
        killed_at = time.monotonic() - began
        worker.kill()
        await asyncio.sleep(pause)
        worker.start()
        await worker.ready()
        kills.append(
            {
                "kill": n + 1,
                "at_s": round(killed_at, 1),
                "uptime_s": round(uptime, 2),
                "down_s": round(pause, 2),
                "cases_not_yet_at_L3": below_l3,
            }
        )
    assert worker.kills == KILLS
    # The kills must land while cases are still climbing, or this proves nothing.
    assert kills[0]["cases_not_yet_at_L3"] == CASES, kills

    last_restart_ready = time.monotonic() - began
    await wait_for_all(escalator, case_ids, lambda s: s.tier_level == 3, within=120, what="at L3")
    at_l3_after = time.monotonic() - began
    # After the last restart nothing is killed any more, so every case gets to L3
    # within the timeouts that hand a dead worker's tasks on (a task it held: the
    # workflow task timeout; one queued for it: the sticky timeout), L2's own 3 s,
    # and some slack for 50 cases on a small machine.
    caught_up = at_l3_after - last_restart_ready
    bound = sticky_seconds() + task_timeout_seconds() + 3 + CATCH_UP_SLACK
    assert caught_up < bound, f"seed {seed}: at L3 {caught_up:.1f}s after the last restart"
    await resolve_all(escalator, case_ids)
    outcomes = await outcomes_one_by_one(escalator, case_ids)

    # Nothing lost: every case completed, each transition exactly once.
    assert sorted(outcomes) == sorted(case_ids)
    problems = []
    for case_id, outcome in outcomes.items():
        timeline = outcome.timeline
        if (outcome.resolved_by, outcome.final_tier, outcome.escalations) != ("closer", 3, 2):
            problems.append(f"{case_id}: {outcome.resolved_by} at L{outcome.final_tier}")
        if len(events(timeline, "created")) != 1 or len(events(timeline, "resolved")) != 1:
            problems.append(f"{case_id}: created/resolved not exactly once")
        if transitions(timeline) != ["L1→L2", "L2→L3"]:
            problems.append(f"{case_id}: transitions {transitions(timeline)}")
        if events(timeline, "notification_failed"):
            problems.append(f"{case_id}: {events(timeline, 'notification_failed')}")
        problems += check_case_delivery(sink, case_id, timeline)
    assert not problems, f"seed {seed}:\n" + "\n".join(problems)

    # A mail delivered twice (sent, then the worker died before reporting it) is
    # the same mail with the same Message-ID, so the receiver can drop it.
    duplicates, duplicate_problems = duplicate_report(sink.messages)
    assert not duplicate_problems, duplicate_problems
    assert not chaos.replay_problems(), chaos.replay_problems()

    recorded = sum(len(sent_message_ids(o.timeline)) for o in outcomes.values())
    FIGURES["worker_kill"] = {
        "seed": seed,
        "cases": CASES,
        "cases_completed": len(outcomes),
        "kills_survived": worker.kills,
        "kills": kills,
        "all_at_L3_after_s": round(at_l3_after, 1),
        "all_at_L3_after_last_restart_s": round(at_l3_after - last_restart_ready, 1),
        "escalations": sum(o.escalations for o in outcomes.values()),
        "expected_notifications": CASES * len(expected_mails("x")),
        "expected_notifications_delivered": CASES * len(expected_mails("x"))
        - sum(len(missing_mails(sink, c)) for c in case_ids),
        "notifications_recorded_sent": recorded,
        "messages_at_sink": len(sink.messages),
        "distinct_message_ids": len({m["Message-ID"] for m in sink.messages}),
        "duplicates_same_message_id": duplicates,
    }


# -- 2. the server is stopped while deadlines pass --------------------------------------

L2_FIRST_RESPONSE = 3
RESOLUTION = 16


async def test_deadlines_that_pass_while_the_server_is_down_fire_after_restart(chaos):
    dev = await chaos.own_server()
    queue = unique_queue("chaos-restart")
    sink = chaos.sink()
    worker = chaos.worker("restart-worker", dev.address, queue, sink)
    worker.start()
    await worker.ready()
    escalator = EscalatorClient(await dev.connect(), queue)

    # L1 deadlines some seconds out (warning at 75 %, then the breach); one case is
    # claimed, so its resolution target is the deadline that passes. The first warning
    # is 10.5 s out: setting up on a loaded 2-core machine takes seconds.
    first_responses = {"restart-a": 14, "restart-b": 15, "restart-c": 16, "restart-claimed": 14}
    for case_id, first_response in first_responses.items():
        case_policy = policy(first_response, RESOLUTION, l2_first_response=L2_FIRST_RESPONSE)
        await escalator.start_case(new_case(case_id, case_policy))
    await escalator.claim("restart-claimed", actor("alice"))
    await eventually(lambda: all(sink.got(c, "tier_entry", L1) for c in first_responses), within=30)
    before = {c: await escalator.status(c) for c in first_responses}

    def deadline_of(case_id: str) -> datetime:
        status = before[case_id]
        assert status.tier_level == 1 and status.next_deadline is not None, status
        breach = timedelta(
            seconds=RESOLUTION if case_id == "restart-claimed" else first_responses[case_id]
        )
        return status.created_at + breach

    deadlines = {c: deadline_of(c) for c in first_responses}
    first_warning = min(s.next_deadline.at for s in before.values())
    # kill -9, and the clock starts once it is gone: a graceful stop takes seconds,
    # and the server still fires timers while it drains.
    dev.kill()
    stopped_at = datetime.now(UTC)
    assert stopped_at < first_warning, "the server was stopped too late to mean anything"
    # Down until well past every deadline (and every warning before it).
    back_at = max(deadlines.values()) + timedelta(seconds=4)
    await asyncio.sleep((back_at - datetime.now(UTC)).total_seconds())
    down_for = (datetime.now(UTC) - stopped_at).total_seconds()
    restarted_at = datetime.now(UTC)
    await dev.start()  # same SQLite file
    escalator = EscalatorClient(await dev.connect(), queue)

    # Polled hard, as a dashboard would, while the worker catches up. A query that
    # reaches the worker while a workflow task waits is when workflow.now() lags
    # (see "deadlines-always-timed" in the workflow); the replay below checks it.
    at_l3 = await wait_for_all(
        escalator,
        first_responses,
        lambda s: s.tier_level == 3,
        within=90,
        what="at L3",
        every=0.05,
    )
    await eventually(lambda: all(sink.got(c, "tier_entry", L3) for c in at_l3), within=30)
    figures = {}
    for case_id, status in at_l3.items():
        timeline = status.timeline
        assert transitions(timeline) == ["L1→L2", "L2→L3"], (case_id, timeline)
        to_l2, _ = events(timeline, "escalated")
        reason = "resolution" if case_id == "restart-claimed" else "first response"
        assert f"{reason} SLA breached" in to_l2.detail, to_l2
        [warning_l1, _] = events(timeline, "sla_warning")
        # Nothing is dated before it fell due. (Dates can be the due time rather than
        # the restart: see "deadlines-always-timed" in the workflow.)
        assert to_l2.at >= deadlines[case_id], (case_id, to_l2)
        assert warning_l1.at >= before[case_id].next_deadline.at, (case_id, warning_l1)
        # The mailbox is the ground truth for when things happened: the warning and
        # the escalation went out after the restart, and once.
        mail = {
            (m["X-Escalator-Purpose"], m["X-Envelope-To"]): received_at(m)
            for m in sink.for_case(case_id)
        }
        warned, to_l2_mail, to_l3_mail = (
            mail[("warning", L1)],
            mail[("tier_entry", L2)],
            mail[("tier_entry", L3)],
        )
        assert restarted_at < warned <= to_l2_mail, (case_id, mail)
        # After the restart, L2's own deadline is kept on time (3 s from entering L2).
        late_by = (to_l3_mail - to_l2_mail).total_seconds() - L2_FIRST_RESPONSE
        assert -0.5 <= late_by < 5, (case_id, late_by)
        figures[case_id] = {
            "deadline_missed_by_downtime_s": round(
                (restarted_at - deadlines[case_id]).total_seconds(), 1
            ),
            "escalated_after_restart_s": round((to_l2_mail - restarted_at).total_seconds(), 2),
            "next_escalation_late_by_s": round(late_by, 2),
        }
    # The worker was queried all along while it caught up (wait_for_all): each
    # history must still replay with the code that wrote it.
    client = await dev.connect()
    replayer = Replayer(workflows=[EscalationWorkflow], data_converter=client.data_converter)
    for case_id in first_responses:
        history = await client.get_workflow_handle(workflow_id_for(case_id)).fetch_history()
        await replayer.replay_workflow(history)  # raises on non-determinism

    await resolve_all(escalator, first_responses)
    outcomes = await outcomes_one_by_one(escalator, first_responses)
    problems = []
    for case_id, outcome in outcomes.items():
        assert (outcome.final_tier, outcome.escalations) == (3, 2), outcome
        problems += check_case_delivery(sink, case_id, outcome.timeline)
    assert not problems, "\n".join(problems)
    assert not chaos.replay_problems(), chaos.replay_problems()
    assert worker.process.poll() is None, "the worker did not survive the server restart"
    FIGURES["server_restart"] = {
        "cases": len(first_responses),
        "server_down_s": round(down_for, 1),
        "cases_continued": len(outcomes),
        "deadlines_fired_after_restart": len(figures),
        "per_case": figures,
    }


# -- 3. two workers share a queue; one is killed ------------------------------------------

SHARED_CASES = 20


async def test_the_surviving_worker_carries_every_case_when_the_other_is_killed(server, chaos):
    queue = unique_queue("chaos-pair")
    sink = chaos.sink()
    doomed = chaos.worker("doomed-worker", server.address, queue, sink)
    survivor = chaos.worker("surviving-worker", server.address, queue, sink)
    doomed.start()
    survivor.start()
    await doomed.ready()
    await survivor.ready()
    escalator = EscalatorClient(await server.connect(), queue)

    case_ids = [f"pair-{n:02d}" for n in range(SHARED_CASES)]
    await gather_bounded(escalator.start_case(new_case(c, policy(3))) for c in case_ids)
    # Both workers are doing the work, then one dies mid-flight.
    await eventually(lambda: doomed.mails_sent() >= 1 and survivor.mails_sent() >= 1, within=30)
    at_l3_before_kill = sum(sink.got(c, "tier_entry", L3) for c in case_ids)
    doomed.kill()
    sent_by_doomed = doomed.mails_sent()
    sent_by_survivor_before = survivor.mails_sent()
    assert at_l3_before_kill == 0, "the kill came after the cases were done climbing"

    await wait_for_all(escalator, case_ids, lambda s: s.tier_level == 3, within=120, what="at L3")
    await resolve_all(escalator, case_ids)
    outcomes = await outcomes_one_by_one(escalator, case_ids)

    problems = []
    for case_id, outcome in outcomes.items():
        if (outcome.resolved_by, outcome.final_tier, outcome.escalations) != ("closer", 3, 2):
            problems.append(f"{case_id}: {outcome.resolved_by} at L{outcome.final_tier}")
        if transitions(outcome.timeline) != ["L1→L2", "L2→L3"]:
            problems.append(f"{case_id}: transitions {transitions(outcome.timeline)}")
        problems += check_case_delivery(sink, case_id, outcome.timeline)
    assert not problems, "\n".join(problems)
    duplicates, duplicate_problems = duplicate_report(sink.messages)
    assert not duplicate_problems, duplicate_problems
    assert not chaos.replay_problems(), chaos.replay_problems()
    # Everything after the kill was the survivor's work.
    distinct = len({m["Message-ID"] for m in sink.messages})
    assert survivor.mails_sent() >= distinct - sent_by_doomed
    assert survivor.process.poll() is None
    FIGURES["two_workers"] = {
        "cases": SHARED_CASES,
        "cases_completed": len(outcomes),
        "mails_by_killed_worker_before_kill": sent_by_doomed,
        "mails_by_survivor_before_kill": sent_by_survivor_before,
        "mails_by_survivor_total": survivor.mails_sent(),
        "distinct_message_ids": distinct,
        "duplicates_same_message_id": duplicates,
    }


# -- 4. SMTP down across two escalations; a permanently refused address -------------------

FIRST_RESPONSE = 5
ON_TIME_TOLERANCE = 3.0  # seconds; the machine is small and shared


async def test_smtp_outage_across_two_escalations_delays_mail_not_escalations(server, chaos):
    queue = unique_queue("chaos-smtp")
    sink = chaos.sink()
    worker = chaos.worker("smtp-worker", server.address, queue, sink)
    worker.start()
    await worker.ready()
    escalator = EscalatorClient(await server.connect(), queue)
    case_id = "smtp-outage"

    await escalator.start_case(new_case(case_id, policy(FIRST_RESPONSE)))
    await eventually(lambda: sink.got(case_id, "tier_entry", L1), within=30)
    sink.stop()  # SMTP goes down before the first escalation...
    went_down = datetime.now(UTC)
    created = (await escalator.status(case_id)).created_at
    assert went_down < created + timedelta(seconds=FIRST_RESPONSE), "too late to mean anything"
    mails_before = len(sink.messages)

    # ...and stays down across L1 → L2 and L2 → L3, which happen on time anyway.
    [status] = (
        await wait_for_all(
            escalator, [case_id], lambda s: s.tier_level == 3, within=60, what="at L3"
        )
    ).values()
    to_l2, to_l3 = events(status.timeline, "escalated")
    l2_late = (to_l2.at - created).total_seconds() - FIRST_RESPONSE
    l3_late = (to_l3.at - to_l2.at).total_seconds() - FIRST_RESPONSE
    assert 0 <= l2_late < ON_TIME_TOLERANCE, f"L1 → L2 {l2_late:.2f}s late"
    assert 0 <= l3_late < ON_TIME_TOLERANCE, f"L2 → L3 {l3_late:.2f}s late"
    assert len(sink.messages) == mails_before  # the sink really was down
    assert not sink.got(case_id, "tier_entry", L2) and not sink.got(case_id, "tier_entry", L3)
    assert not events(status.timeline, "notification_failed"), "transient failures are retried"
    pending = len(events(status.timeline, "escalated")) * 2  # at least: tier + customer each

    sink.start()  # SMTP is back on the same port; the retries deliver what waited
    came_back = datetime.now(UTC)
    down_for = (came_back - went_down).total_seconds()
    await eventually(lambda: not missing_mails(sink, case_id), within=90, interval=0.5)
    late_mails = [m for m in sink.for_case(case_id) if received_at(m) >= came_back]
    assert len(late_mails) >= pending
    l2_mail = next(m for m in late_mails if L2 in m["X-Envelope-To"])
    assert "first response SLA breached" in body(l2_mail)

    await resolve_all(escalator, [case_id])
    outcome = await asyncio.wait_for(escalator.outcome(case_id), timeout=120)
    assert (outcome.final_tier, outcome.escalations) == (3, 2)
    assert not check_case_delivery(sink, case_id, outcome.timeline)
    FIGURES["smtp_outage"] = {
        "smtp_down_s": round(down_for, 1),
        "escalation_L1_L2_late_by_s": round(l2_late, 2),
        "escalation_L2_L3_late_by_s": round(l3_late, 2),
        "mails_delivered_after_smtp_returned": len(late_mails),
        "last_pending_mail_after_return_s": round(
            max((received_at(m) - came_back).total_seconds() for m in late_mails), 1
        ),
        "notifications_failed": len(events(outcome.timeline, "notification_failed")),
    }


async def test_a_permanently_refused_address_is_recorded_and_the_case_goes_on(server, chaos):
    queue = unique_queue("chaos-bounce")
    sink = chaos.sink()
    worker = chaos.worker("bounce-worker", server.address, queue, sink)
    worker.start()
    await worker.ready()
    escalator = EscalatorClient(await server.connect(), queue)
    case_id = "smtp-refused"
    refused = "bounce-l2@example.com"

    await escalator.start_case(
        new_case(case_id, policy(FIRST_RESPONSE, l2_first_response=2, l2_notify=refused))
    )
    [status] = (
        await wait_for_all(
            escalator,
            [case_id],
            lambda s: s.tier_level == 3 and events(s.timeline, "notification_failed"),
            within=60,
            what="at L3 with the failure recorded",
        )
    ).values()
    to_l2, to_l3 = events(status.timeline, "escalated")
    failed = events(status.timeline, "notification_failed")[0]
    assert "tier_entry" in failed.detail and refused in failed.detail, failed.detail
    assert "550" in failed.detail, failed.detail  # the server's 5xx text, on record
    # Permanent: no retries for a day, the failure is recorded at once.
    assert (failed.at - to_l2.at).total_seconds() < ON_TIME_TOLERANCE, failed
    l3_late = (to_l3.at - to_l2.at).total_seconds() - 2
    assert 0 <= l3_late < ON_TIME_TOLERANCE, f"L2 → L3 {l3_late:.2f}s late"

    await eventually(lambda: sink.got(case_id, "tier_entry", L3), within=30)
    await resolve_all(escalator, [case_id])
    outcome = await asyncio.wait_for(escalator.outcome(case_id), timeout=120)
    assert (outcome.resolved_by, outcome.final_tier, outcome.escalations) == ("closer", 3, 2)
    assert not any(refused in m["X-Envelope-To"] for m in sink.for_case(case_id))
    customer = customer_of(case_id)
    assert len({m["Message-ID"] for m in sink.to(customer)}) == 2  # the customer still hears
    all_failed = events(outcome.timeline, "notification_failed")
    assert all(refused in e.detail and "550" in e.detail for e in all_failed), all_failed
    FIGURES["smtp_permanent_failure"] = {
        "notifications_failed": len(all_failed),
        "failure_recorded_after_s": round((failed.at - to_l2.at).total_seconds(), 2),
        "example": failed.detail,
        "case_resolved": outcome.resolved_by == "closer",
    }


# -- 6. how late a case acts after its worker dies ------------------------------------------

# After kill -9, Temporal hands a dead worker's work on only when a timeout says the
# worker is gone: a workflow task that waits on the dead worker's sticky queue after
# the sticky schedule-to-start timeout (Worker option, ESCALATOR_STICKY_TIMEOUT), one
# the worker had taken after the workflow task timeout (server dynamic config,
# escalator/devstack/stack.py). CHAOS_BASELINE=1 also measures, in the same run, Temporal's
# defaults (10 s and 10 s) and a 3 s sticky timeout, for docs/reliability.md.
L2_SLA = 5
RECOVERY_SLACK = 3.0  # seconds on top of the timeout: dispatch, mail, a loaded machine
RECOVERY_VARIANTS = {
    # name: (server with Escalator's dynamic config, ESCALATOR_STICKY_TIMEOUT)
    "escalator": (True, None),
    "defaults": (False, "10"),
    "sticky-3s": (True, "3"),
}


async def _kill_recovery(chaos, dev, sink, *, variant: str, holding: bool) -> dict:
    """One case: L1 3 s, then L2 5 s (warned at 75 %). Once it is at L2 its worker
    dies, either idle, 1 s before the L2 warning falls due (kill -9), or holding the
    warning's workflow task (frozen with SIGSTOP 1 s before it falls due, so the task
    is handed to it and never answered, then killed 1 s after). A second worker has
    been polling since the case was on the first, so the figures are Temporal's
    timeouts, not a worker's start-up. Lateness is measured at the SMTP server."""
    label = f"{variant}-{'holding' if holding else 'idle'}"
    queue = unique_queue(f"chaos-recover-{label}")
    sticky = RECOVERY_VARIANTS[variant][1]
    doomed = chaos.worker(f"doomed-{label}", dev.address, queue, sink)
    standby = chaos.worker(f"standby-{label}", dev.address, queue, sink)
    for worker in (doomed, standby):
        if sticky:
            worker.env["ESCALATOR_STICKY_TIMEOUT"] = sticky
    doomed.start()
    await doomed.ready()
    escalator = EscalatorClient(await dev.connect(), queue)
    case_id = f"recover-{label}"
    await escalator.start_case(new_case(case_id, policy(3, l2_first_response=L2_SLA)))
    # The case's first task is done, so its tasks now go to the doomed worker alone.
    await eventually(lambda: sink.got(case_id, "tier_entry", L1), within=30)
    await escalator.status(case_id)
    standby.start()
    await standby.ready()

    async def settled_at_l2():
        # At L2, with its mails sent and recorded: no task in flight until the warning.
        status = await escalator.status(case_id)
        sent = [e.detail for e in events(status.timeline, "notification_sent")]
        done = status.tier_level == 2 and sum("assessment" in d for d in sent) >= 1
        return status if done and len(sent) >= 4 else None

    status = await eventually(settled_at_l2, within=30, interval=0.1)
    warning_due = status.next_deadline.at
    assert status.next_deadline.kind == "warning", status.next_deadline
    [to_l2] = events(status.timeline, "escalated")
    breach_due = to_l2.at + timedelta(seconds=L2_SLA)

    def until(moment: datetime) -> float:
        return max(0.0, (moment - datetime.now(UTC)).total_seconds())

    await asyncio.sleep(until(warning_due - timedelta(seconds=1)))
    if holding:
        doomed.process.send_signal(signal.SIGSTOP)  # its polls stay open, unanswered
        await asyncio.sleep(until(warning_due + timedelta(seconds=1)))
    killed_at = datetime.now(UTC)
    before_warning = (warning_due - killed_at).total_seconds()
    assert before_warning > 0 if not holding else before_warning < 0, (label, before_warning)
    doomed.kill()
    await eventually(lambda: sink.got(case_id, "tier_entry", L3), within=90, interval=0.1)

    def mail_at(purpose: str, recipient: str) -> datetime:
        [message] = [
            m
            for m in sink.for_case(case_id)
            if m["X-Escalator-Purpose"] == purpose and recipient in m["X-Envelope-To"]
        ]
        return received_at(message)

    client = await dev.connect()
    history = await client.get_workflow_handle(workflow_id_for(case_id)).fetch_history()
    timed_out = [
        TimeoutType.Name(e.workflow_task_timed_out_event_attributes.timeout_type)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT
    ]
    started = history.events[0].workflow_execution_started_event_attributes
    return {
        "scenario": label,
        "workflow_task_timeout_s": started.workflow_task_timeout.ToTimedelta().total_seconds(),
        "sticky_timeout_s": float(sticky or 0) or DEFAULT_STICKY_TIMEOUT.total_seconds(),
        "killed_before_warning_s": round(before_warning, 2),
        "L2_warning_late_by_s": round((mail_at("warning", L2) - warning_due).total_seconds(), 2),
        "L3_late_by_s": round((mail_at("tier_entry", L3) - breach_due).total_seconds(), 2),
        "workflow_tasks_timed_out": timed_out,
    }


async def test_a_case_whose_worker_died_acts_within_the_tuned_timeouts(chaos):
    variants = ["escalator"]
    if os.environ.get("CHAOS_BASELINE"):
        variants += ["defaults", "sticky-3s"]
    servers = {True: DevServerProcess(chaos.tmp_path / "tuned")}
    if "defaults" in variants:
        servers[False] = DevServerProcess(chaos.tmp_path / "defaults", tuned=False)
    chaos.servers += servers.values()
    await asyncio.gather(*(dev.start() for dev in servers.values()))
    sink = chaos.sink()
    runs = []
    for variant in variants:  # one variant at a time: four workers are enough load
        dev = servers[RECOVERY_VARIANTS[variant][0]]
        runs += await asyncio.gather(
            *(
                _kill_recovery(chaos, dev, sink, variant=variant, holding=holding)
                for holding in (False, True)
            )
        )
    by_label = {run["scenario"]: run for run in runs}
    FIGURES["kill_recovery"] = by_label
    idle, holding = by_label["escalator-idle"], by_label["escalator-holding"]
    sticky, task_timeout = sticky_seconds(), task_timeout_seconds()
    # The dynamic config took: the case got the server's default, not Temporal's.
    assert holding["workflow_task_timeout_s"] == task_timeout, holding
    # Idle: the warning's task waited on the dead worker's sticky queue.
    assert "TIMEOUT_TYPE_SCHEDULE_TO_START" in idle["workflow_tasks_timed_out"], idle
    assert 0 <= idle["L2_warning_late_by_s"] < sticky + RECOVERY_SLACK, idle
    # Holding: the task it took timed out, and the standby took the retry at once.
    assert "TIMEOUT_TYPE_START_TO_CLOSE" in holding["workflow_tasks_timed_out"], holding
    assert 0 <= holding["L2_warning_late_by_s"] < task_timeout + RECOVERY_SLACK, holding
    for run in (idle, holding):  # the L3 deadline, 1.25 s after the warning, follows it
        assert run["L3_late_by_s"] < run["L2_warning_late_by_s"] + 1.0, run
