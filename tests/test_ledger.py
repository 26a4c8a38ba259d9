"""The case ledger: every case's events and facts, written idempotently.

The store runs against SQLite (the embedded default) and a real Postgres server
started for the test from Debian's `postgresql` (never a mock). The workflow
tests run real cases on the time-skipping server with the real ledger activity.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from record_histories import CONVERTER
from sqlalchemy import MetaData, Table, create_engine, inspect, select
from support import (
    DEFAULT_POLICY,
    HOUR,
    RecordingNotifier,
    actor,
    case_workers,
    eventually,
    free_port,
    unique_queue,
)
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer

from activities.ledger import LedgerActivities
from escalator.adapters import ledger_store
from escalator.adapters.ledger_store import (
    LedgerStore,
    _case_row,
    _event_row,
    _fill_policy_versions,
    cases,
)
from escalator.adapters.ledger_store import metadata as ledger_metadata
from escalator.adapters.settings import EscalatorSettings, LedgerSettings
from escalator.domain import limits
from escalator.domain.errors import InvalidInput
from escalator.domain.ledger import LedgerBatch, LedgerCase, LedgerEvent
from escalator.domain.models import CaseInput
from escalator.domain.names import RECORD_TO_LEDGER
from escalator.domain.policy_version import policy_version
from starter import EscalatorClient
from workflows.escalation import EscalationWorkflow

NOTE = {"reason": "needs backend access", "steps_taken": ["checked runbook"]}
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


# The Postgres server is tests/conftest.py's `postgres_url` (Debian's postgresql).
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.loopback)])
def store(request, tmp_path):
    if request.param == "sqlite":
        store = LedgerStore(f"sqlite:///{tmp_path}/ledger.db")
    else:
        store = LedgerStore(request.getfixturevalue("postgres_url"))
        with store.engine.begin() as connection:  # one module-wide server: start empty
            for table in ("ledger_events", "ledger_cases"):
                connection.exec_driver_sql(f"DELETE FROM {table}")
    yield store
    store.close()


def _event(seq: int, kind: str = "note", **fields) -> LedgerEvent:
    base = {"case_id": "c-1", "seq": seq, "at": T0 + timedelta(minutes=seq), "kind": kind}
    return LedgerEvent(**{"tier_level": 1, **base, **fields})


def _facts(**fields) -> LedgerCase:
    base = dict(
        case_id="c-1", account="acme", title="VPN down", category="sso", severity="P2",
        policy_name="default", created_at=T0, first_claim_at=T0 + HOUR, resolved_at=T0 + 2 * HOUR,
        resolved_by="alice", final_tier=2, escalations=1, tier_moves=1, sla_breached=True,
        reopened=0, hold_seconds=0.0, needs_review=False, events=5, policy=DEFAULT_POLICY,
    )  # fmt: skip
    return LedgerCase(**{**base, **fields})


# -- the store ---------------------------------------------------------------------------


def test_events_are_written_once_however_often_a_batch_is_retried(store: LedgerStore):
    batch = LedgerBatch(case_id="c-1", events=(_event(1, "created"), _event(2)))
    assert store.write(batch).events_written == 2
    assert store.write(batch).events_written == 0  # a retry, or a replayed case
    later = LedgerBatch(case_id="c-1", events=(_event(2), _event(3, "claimed", actor="alice")))
    assert store.write(later).events_written == 1
    assert [(e.seq, e.kind) for e in store.events_of("c-1")] == [
        (1, "created"),
        (2, "note"),
        (3, "claimed"),
    ]
    assert store.events_of("c-1")[2].at == T0 + timedelta(minutes=3)  # UTC, aware


def test_a_reopened_case_rewrites_its_fact_row(store: LedgerStore):
    store.write(LedgerBatch(case_id="c-1", case=_facts()))
    store.write(LedgerBatch(case_id="c-1", case=_facts(reopened=1, resolved_by="bob")))
    assert store.counts()["ledger_cases"] == 1
    row = store.case("c-1")
    assert (row.reopened, row.resolved_by, row.category) == (1, "bob", "sso")
    assert row.resolved_at == T0 + 2 * HOUR


def test_an_older_fact_row_landing_late_never_replaces_a_newer_one(store: LedgerStore):
    # A reopened case's two resolves send two batches; the first may land last.
    store.write(LedgerBatch(case_id="c-1", case=_facts(reopened=1, resolved_by="bob", events=9)))
    store.write(LedgerBatch(case_id="c-1", case=_facts(events=5)))
    row = store.case("c-1")
    assert (row.reopened, row.resolved_by, row.events) == (1, "bob", 9)


def test_a_move_keeps_where_it_came_from_and_why(store: LedgerStore):
    moved = _event(4, "escalated", tier_level=2, from_level=1, reason="sla", actor="system")
    store.write(LedgerBatch(case_id="c-1", events=(moved,)))
    [event] = store.events_of("c-1")
    assert (event.from_level, event.tier_level, event.reason) == (1, 2, "sla")


def test_a_bad_ledger_url_is_one_line_naming_the_variable():
    with pytest.raises(InvalidInput, match=r"^ESCALATOR_LEDGER_URL: use sqlite:///") as error:
        LedgerSettings.from_env({"ESCALATOR_LEDGER_URL": "mysql://root:hunter2@db/x"})
    assert "hunter2" not in str(error.value) and "\n" not in str(error.value)


def test_a_ledger_lacking_a_required_column_is_one_line_saying_how_to_rebuild_it(tmp_path):
    import sqlite3
    import subprocess
    import sys

    path = tmp_path / "ledger.db"
    with sqlite3.connect(path) as old:  # the first ledger's tables: no policy, no note
        old.execute("CREATE TABLE ledger_events (case_id TEXT, seq INTEGER, at TEXT)")
        old.execute("CREATE TABLE ledger_cases (case_id TEXT PRIMARY KEY)")
    with pytest.raises(InvalidInput, match=r"^ledger: table ledger_(events|cases) lacks ") as error:
        LedgerStore(f"sqlite:///{path}").counts()
    assert "escalator ledger backfill" in str(error.value) and "\n" not in str(error.value)
    # Only the columns that must not be NULL: those no migration can add.
    assert "kind" in str(error.value) or "account" in str(error.value)
    assert "until" not in str(error.value) and "policy_version" not in str(error.value)
    env = {**os.environ, "ESCALATOR_LEDGER_URL": f"sqlite:///{path}"}
    report = subprocess.run(
        [sys.executable, "-m", "escalator.cli", "report", "--no-open"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert report.returncode == 2 and report.stderr.count("\n") == 1, report.stderr
    assert "lacks" in report.stderr and "Traceback" not in report.stderr


# The columns added since the case ledger first shipped: all nullable, so an older
# ledger gains them when it is opened (an additive migration).
ADDED = {"ledger_events": {"until"}, "ledger_cases": {"policy_version"}}


def _old_ledger(url: str) -> None:
    """The ledger as the release before `until` and `policy_version` made it, with
    a few rows: two cases (one whose policy snapshot no longer validates) and an event."""
    old = MetaData()
    for table in ledger_metadata.sorted_tables:
        columns = [c._copy() for c in table.columns if c.name not in ADDED[table.name]]
        Table(table.name, old, *columns)
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.begin() as connection:
            for table in reversed(ledger_metadata.sorted_tables):
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table.name}")
        old.create_all(engine)
        row = _case_row(_facts())
        for name in ADDED["ledger_cases"]:
            del row[name]
        broken = {**row, "case_id": "c-broken", "policy": {"name": "gone", "tiers": "nope"}}
        with engine.begin() as connection:
            connection.execute(old.tables["ledger_cases"].insert(), [
                {**row, "written_at": T0}, {**broken, "written_at": T0},
            ])  # fmt: skip
            connection.execute(
                old.tables["ledger_events"].insert(),
                [{k: v for k, v in _event_row(_event(1, "hold")).items() if k != "until"}],
            )
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.loopback)])
def old_ledger_url(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/ledger.db"
    else:
        url = request.getfixturevalue("postgres_url")  # the module-wide server
    _old_ledger(url)
    return url


def test_an_older_ledger_gains_the_new_columns_and_its_rows_their_policy_version(
    old_ledger_url, monkeypatch
):
    fills = {("ledger_cases", "policy_version"): lambda c: _fill_policy_versions(c, page=1)}
    monkeypatch.setattr(ledger_store, "_FILLS", fills)  # one row a page: the paging too
    store = LedgerStore(old_ledger_url)
    try:
        assert store.counts() == {"ledger_events": 1, "ledger_cases": 2}
        found = inspect(store.engine)
        for table, names in ADDED.items():
            assert names <= {c["name"] for c in found.get_columns(table)}, table
        indexed = {c for i in found.get_indexes("ledger_cases") for c in i["column_names"]}
        assert "policy_version" in indexed
        # Filled from each row's own snapshot; a snapshot that no longer validates
        # leaves it NULL, and the row still reads.
        version = policy_version(DEFAULT_POLICY)
        assert store.case("c-1").policy_version == version
        with store.engine.connect() as connection:
            filled = dict(connection.execute(select(cases.c.case_id, cases.c.policy_version)).all())
        assert filled == {"c-1": version, "c-broken": None}
        [history] = store.histories(policy_version=version)
        assert history.facts.case_id == "c-1" and history.events[0].until is None
        assert store.histories(policy_version="default@000000000000") == []
        # The migrated ledger takes the new fields.
        until = T0 + 3 * HOUR
        store.write(LedgerBatch(case_id="c-1", events=(_event(2, "hold", until=until),)))
        assert [e.until for e in store.events_of("c-1")] == [None, until]
    finally:
        store.close()
    again = LedgerStore(old_ledger_url)  # opening it again changes nothing
    try:
        assert again.counts() == {"ledger_events": 2, "ledger_cases": 2}
        assert again.case("c-1").policy_version == version
    finally:
        again.close()


def test_two_processes_opening_an_older_ledger_at_once_migrate_it_once(tmp_path):
    url = f"sqlite:///{tmp_path}/ledger.db"
    _old_ledger(url)
    stores = [LedgerStore(url) for _ in range(4)]
    try:
        with ThreadPoolExecutor(len(stores)) as pool:
            counts = list(pool.map(lambda store: store.counts(), stores))
        assert counts == [{"ledger_events": 1, "ledger_cases": 2}] * len(stores)
        assert stores[0].case("c-1").policy_version == policy_version(DEFAULT_POLICY)
    finally:
        for store in stores:
            store.close()


def test_a_batch_from_an_older_worker_gets_its_policy_version_from_the_snapshot(
    store: LedgerStore,
):
    facts = _facts()  # as an older worker sends it: no policy_version
    assert facts.policy_version is None
    store.write(LedgerBatch(case_id="c-1", case=facts))
    assert store.case("c-1").policy_version == policy_version(DEFAULT_POLICY)


async def test_an_unreachable_ledger_is_a_retryable_error_without_the_password():
    port = free_port()  # nothing listens here
    url = f"postgresql://ledger:hunter2@127.0.0.1:{port}/escalator_ledger"
    settings = EscalatorSettings.defaults(ledger=LedgerSettings(url=SecretStr(url)))
    activities = LedgerActivities(settings)
    batch = LedgerBatch(case_id="c-1", events=(_event(1),))
    with pytest.raises(ApplicationError) as error:
        await activities.record_to_ledger(batch)
    assert error.value.type == "LedgerUnavailable" and not error.value.non_retryable
    assert "hunter2" not in str(error.value) and "1 events of case c-1 wait" in str(error.value)


# -- cases write the ledger ----------------------------------------------------------------


def _case(case_id: str, **fields) -> CaseInput:
    return CaseInput.model_validate(
        {"case_id": case_id, "title": f"case {case_id}", "policy": DEFAULT_POLICY, **fields}
    )


async def test_a_case_writes_every_event_and_its_facts_once_it_resolves(desk):
    await desk.start_case(_case("ledger-1", category="sso", customer_tier="enterprise"))
    await desk.after(4 * HOUR + timedelta(minutes=1))  # L1 breaches: escalated to L2 for the SLA
    escalator = desk.escalator
    await escalator.claim("ledger-1", actor("bob"))
    await escalator.add_note("ledger-1", actor("bob"), "looking at the cert")
    held_until = (await escalator.status("ledger-1")).as_of + 3 * HOUR
    await escalator.hold("ledger-1", actor("bob"), "waiting on the customer", until=held_until)
    await desk.after(HOUR)
    await escalator.resume("ledger-1", actor("bob"))
    await escalator.resolve("ledger-1", actor("bob"), "cleared cert cache")
    outcome = await escalator.outcome("ledger-1")
    status = await escalator.status("ledger-1")

    ledger = desk.notifier.ledger
    events = ledger.events_of("ledger-1")
    # Every timeline entry, once, in order: nothing lost, nothing doubled.
    assert [e.seq for e in events] == list(range(1, status.timeline_total + 1))
    assert [(e.kind, e.detail) for e in events[-len(status.timeline) :]] == [
        (e.kind, e.detail) for e in status.timeline
    ]
    kinds = [e.kind for e in events]
    for kind in ("created", "sla_warning", "escalated", "claimed", "note", "hold", "resumed"):
        assert kind in kinds, kind
    assert kinds.count("resolved") == 1
    [held] = [e for e in events if e.kind == "hold"]
    assert held.until == held_until  # as the person asked; other entries have none
    assert all(e.until is None for e in events if e.kind != "hold")
    [moved] = [e for e in events if e.kind == "escalated"]
    assert (moved.from_level, moved.tier_level, moved.reason, moved.actor) == (
        1,
        2,
        "sla",
        "system",
    )

    facts = ledger.case("ledger-1")
    assert (facts.category, facts.customer_tier, facts.final_tier) == ("sso", "enterprise", 2)
    assert facts.policy_version == policy_version(DEFAULT_POLICY)
    assert (facts.escalations, facts.sla_breached, facts.resolved_by) == (1, True, "bob")
    assert facts.hold_seconds == pytest.approx(outcome.total_hold_seconds)
    assert facts.resolved_at - facts.created_at == timedelta(seconds=outcome.seconds_to_resolution)


async def test_replaying_a_case_writes_nothing_new(desk):
    await desk.start_case(_case("ledger-replay"))
    await desk.escalator.claim("ledger-replay", actor("alice"))
    await desk.escalator.resolve("ledger-replay", actor("alice"), "done")
    handle = desk.env.client.get_workflow_handle("case-ledger-replay")
    await handle.result()
    counts = desk.notifier.ledger.counts()
    history = await handle.fetch_history()
    replayer = Replayer(workflows=[EscalationWorkflow], data_converter=CONVERTER)
    await replayer.replay_workflow(history)
    assert desk.notifier.ledger.counts() == counts
    assert counts["ledger_events"] >= 4  # created, tier mail sent, claimed, resolved


async def test_a_run_that_continues_as_new_sends_its_events_first(desk):
    await desk.start_case(_case("ledger-can", continue_as_new_after=100))
    handle = desk.env.client.get_workflow_handle("case-ledger-can")
    first_run = (await handle.describe()).run_id
    for i in range(40):
        await desk.escalator.add_note("ledger-can", actor("alice"), f"note {i}")

    async def moved_on():
        return (await handle.describe()).run_id != first_run

    await eventually(moved_on, within=30)
    await desk.escalator.add_note("ledger-can", actor("alice"), "after the new run")
    await desk.escalator.resolve("ledger-can", actor("alice"), "done")
    await handle.result()
    events = desk.notifier.ledger.events_of("ledger-can")
    status = await desk.escalator.status("ledger-can")
    assert [e.seq for e in events] == list(range(1, status.timeline_total + 1))
    assert "continued_as_new" in [e.kind for e in events]
    assert events[-1].kind in {"resolved", "notification_sent"}


async def test_a_ledger_outage_delays_no_escalation_and_the_case_closes_once_written(
    ts_env, monkeypatch
):
    # Small batches, so the case writes to the ledger while its SLA runs.
    monkeypatch.setattr(limits, "LEDGER_BATCH_EVENTS", 2)
    notifier = RecordingNotifier()
    # Retry backoff is real time on the test server (it skips timers, not backoff):
    # three failures cost 1 + 2 + 4 s.
    failures = {"left": 3}

    @activity.defn(name=RECORD_TO_LEDGER)
    async def flaky_ledger(batch: LedgerBatch):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise ApplicationError(
                "ledger unavailable (OperationalError)", type="LedgerUnavailable"
            )
        return await notifier.ledger_activities.record_to_ledger(batch)

    activities = [a for a in notifier.activities if a.__name__ != RECORD_TO_LEDGER]
    queue = unique_queue("ledger-outage")
    async with case_workers(ts_env.client, queue, [*activities, flaky_ledger]):
        escalator = EscalatorClient(ts_env.client, queue)
        await escalator.start_case(_case("outage-1"))
        await escalator.resolve("outage-1", actor("root", role="admin"), "wrong queue")
        handle = ts_env.client.get_workflow_handle("case-outage-1")
        # A resolved case waits for its facts: three failed writes, then one that lands.
        await handle.result()
        assert failures["left"] == 0
        assert notifier.ledger.case("outage-1").resolved_by == "root"

        await escalator.start_case(_case("outage-2"))
        failures["left"] = 20  # down for about the first hour of the SLA's four
        await ts_env.sleep(4 * HOUR + timedelta(minutes=1))
        status = await escalator.status("outage-2")
        [moved] = [e for e in status.timeline if e.kind == "escalated"]
        assert status.tier_level == 2
        late = moved.at - status.created_at - timedelta(hours=4)
        assert abs(late) < timedelta(seconds=1)  # on time, outage or not
        # The ledger caught up by itself once it was back, before the case resolved.
        assert failures["left"] == 0
        assert "sla_warning" in [e.kind for e in notifier.ledger.events_of("outage-2")]
        await escalator.resolve("outage-2", actor("root", role="admin"), "done")
        await ts_env.client.get_workflow_handle("case-outage-2").result()
        assert notifier.ledger.case("outage-2").final_tier == 2
        status = await escalator.status("outage-2")
        events = notifier.ledger.events_of("outage-2")
        assert [e.seq for e in events] == list(range(1, status.timeline_total + 1))


@pytest.mark.integration
async def test_postgres_stopped_across_an_escalation_delays_nothing_and_the_ledger_catches_up(
    dev_env, monkeypatch
):
    from support import PostgresServer, postgres_bin, seconds_policy

    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("Debian's postgresql is not installed (make test installs it with apt-get)")
    monkeypatch.setattr(limits, "LEDGER_BATCH_EVENTS", 1)  # every entry is a write
    server = PostgresServer(bin_dir)  # its own server: this test stops it
    try:
        notifier = RecordingNotifier(ledger_url=server.url)
        queue = unique_queue("ledger-pg-outage")
        escalator = EscalatorClient(dev_env.client, queue)
        async with case_workers(dev_env.client, queue, notifier.activities):
            case = CaseInput(case_id="pg-outage", title="VPN down",
                             policy=seconds_policy(first_response=3, resolution=60))  # fmt: skip
            await escalator.start_case(case)
            await eventually(lambda: notifier.ledger.events_of("pg-outage"), within=20)
            server.stop()  # Postgres is down before the first-response deadline
            status = await eventually(_at_tier(escalator, "pg-outage", 2), within=20)
            [moved] = [e for e in status.timeline if e.kind == "escalated"]
            late = moved.at - status.created_at - timedelta(seconds=3)
            assert timedelta(0) <= late < timedelta(seconds=1)  # on time, Postgres or not
            await escalator.resolve("pg-outage", actor("root", role="admin"), "done")
            await asyncio.sleep(2)
            description = await dev_env.client.get_workflow_handle("case-pg-outage").describe()
            assert description.status.name == "RUNNING"  # it waits for its facts
            server.start()
            await asyncio.wait_for(escalator.outcome("pg-outage"), timeout=60)
        events = notifier.ledger.events_of("pg-outage")
        kinds = [e.kind for e in events]
        assert {"sla_warning", "escalated", "resolved"} <= set(kinds)  # written while it was down
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert notifier.ledger.case("pg-outage").final_tier == 2
    finally:
        notifier.ledger.close()
        server.remove()


def _at_tier(escalator: EscalatorClient, case_id: str, level: int):
    async def check():
        status = await escalator.status(case_id)
        return status if status.tier_level == level else None

    return check
