"""The case ledger's store: SQLite under the data directory, or Postgres for a cluster.

One schema in SQLAlchemy Core, for both. `ESCALATOR_LEDGER_URL` picks the database:
`sqlite:///.data/ledger.db` (the embedded default) or
`postgresql://user:password@host/escalator_ledger` (psycopg 3). Writes are
idempotent: an event is keyed by (case id, sequence number) and written once,
and a case's fact row is replaced by the newer one, so a retried activity or a
replayed case never counts anything twice.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    inspect,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from escalator.adapters.settings import DEFAULT_LEDGER_URL
from escalator.domain.errors import InvalidInput
from escalator.domain.ledger import (
    CaseHistory,
    LedgerBatch,
    LedgerCase,
    LedgerEvent,
    LedgerReceipt,
)

metadata = MetaData()

events = Table(
    "ledger_events",
    metadata,
    Column("case_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("kind", String(40), nullable=False, index=True),
    Column("tier_level", Integer, nullable=False),
    Column("actor", String(200)),
    Column("detail", Text, nullable=False, default=""),
    Column("from_level", Integer),
    Column("reason", String(20)),
    Column("note", JSON),  # moves only: the escalation note (reason, steps taken, ...)
)

cases = Table(
    "ledger_cases",
    metadata,
    Column("case_id", String(64), primary_key=True),
    Column("account", String(64), nullable=False, index=True),
    Column("title", Text, nullable=False),
    Column("category", String(40), index=True),
    Column("customer_tier", String(40)),
    Column("severity", String(4), nullable=False),
    Column("policy_name", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("first_claim_at", DateTime(timezone=True)),
    Column("resolved_at", DateTime(timezone=True), index=True),
    Column("resolved_by", String(200)),
    Column("final_tier", Integer, nullable=False),
    Column("escalations", Integer, nullable=False),
    Column("tier_moves", Integer, nullable=False),
    Column("sla_breached", Boolean, nullable=False),
    Column("reopened", Integer, nullable=False),
    Column("hold_seconds", Float, nullable=False),
    Column("needs_review", Boolean, nullable=False),
    Column("events", Integer, nullable=False),
    Column("policy", JSON, nullable=False),  # the case's policy snapshot
    Column("written_at", DateTime(timezone=True), nullable=False),
)


def ledger_exists(url: str) -> bool:
    """False for a SQLite ledger whose file is not there yet (reading one must not
    create it); a server database is asked when it is read."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return True  # engine_for says what is wrong with it
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return True
    return Path(parsed.database).exists()


def engine_for(url: str, schema: MetaData = metadata) -> Engine:
    """An engine for `url`, with the schema created. A bad URL is a one-line error."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidInput(
            "ESCALATOR_LEDGER_URL: not a database URL (not shown: it may hold a password); use "
            "sqlite:///path/ledger.db or postgresql://user:password@host/dbname"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, not psycopg2
    elif backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    else:
        raise InvalidInput(
            f"ESCALATOR_LEDGER_URL: {backend!r} is not supported; use sqlite:/// or postgresql://"
        )
    # A pooled Postgres connection may have died with a server restart: ping it
    # before use. A SQLite file has nothing to ping.
    engine = create_engine(parsed, pool_pre_ping=backend != "sqlite")
    if backend == "sqlite":
        # WAL lets reports read while the worker writes; a busy writer is waited for.
        # synchronous=NORMAL is WAL's usual pairing: no fsync per commit, and still
        # no commit lost when a process dies; only a power cut can lose the last
        # ones, which `escalator ledger backfill` brings back from Temporal.
        @event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

    schema.create_all(engine)
    _check_schema(engine, schema)
    return engine


def _check_schema(engine: Engine, schema: MetaData) -> None:
    """A ledger made by an older Escalator lacks columns this code writes: say so
    once, plainly, instead of failing every write with a database error."""
    found = inspect(engine)
    for table in schema.sorted_tables:
        present = {column["name"] for column in found.get_columns(table.name)}
        missing = [column.name for column in table.columns if column.name not in present]
        if missing:
            raise InvalidInput(
                f"ledger: table {table.name} lacks {', '.join(missing)}: an older Escalator "
                "made it; move that database aside and run `escalator ledger backfill` to "
                "rebuild it from Temporal"
            )


class Database:
    """A database reached through `url`, with `schema` created on first use (so a
    worker starts without it). Thread-safe: activities call it from worker threads."""

    schema: MetaData = metadata

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = engine_for(self.url, self.schema)
            return self._engine

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


class LedgerStore(Database):
    """Idempotent writes and plain reads of the ledger."""

    def __init__(self, url: str = DEFAULT_LEDGER_URL) -> None:
        super().__init__(url)

    def write(self, batch: LedgerBatch) -> LedgerReceipt:
        """Write the batch in one transaction: new events, and the fact row if given."""
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        written = 0
        with self.engine.begin() as connection:
            if batch.events:
                rows = [_event_row(event) for event in batch.events]
                # RETURNING counts the rows really inserted (rowcount is -1 for a batch).
                statement = insert(events).values(rows).on_conflict_do_nothing()
                written = len(connection.execute(statement.returning(events.c.seq)).all())
            if batch.case is not None:
                row = {**_case_row(batch.case), "written_at": datetime.now(UTC)}
                statement = insert(cases).values(row)
                updates = {name: statement.excluded[name] for name in row if name != "case_id"}
                connection.execute(
                    statement.on_conflict_do_update(index_elements=["case_id"], set_=updates)
                )
        return LedgerReceipt(events_written=written, case_written=batch.case is not None)

    # -- reading

    def histories(
        self,
        *,
        resolved_from: datetime | None = None,
        resolved_to: datetime | None = None,
        account: str | None = None,
        category: str | None = None,
    ) -> list[CaseHistory]:
        """Each resolved case in the window (resolved_from <= resolved_at < resolved_to),
        with its events in order: what `escalator report` computes its figures from."""
        query = select(cases).order_by(cases.c.resolved_at, cases.c.case_id)
        if resolved_from is not None:
            query = query.where(cases.c.resolved_at >= resolved_from)
        if resolved_to is not None:
            query = query.where(cases.c.resolved_at < resolved_to)
        if account is not None:
            query = query.where(cases.c.account == account)
        if category is not None:
            query = query.where(cases.c.category == category)
        found: dict[str, LedgerCase] = {}
        with self.engine.connect() as connection:
            for row in connection.execute(query).mappings():
                fields = {k: v for k, v in row.items() if k != "written_at"}
                found[row["case_id"]] = LedgerCase.model_validate(aware(fields))
            timelines: dict[str, list[LedgerEvent]] = {case_id: [] for case_id in found}
            ids = list(found)
            # In chunks: a database takes only so many parameters in one statement.
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                rows = connection.execute(
                    select(events)
                    .where(events.c.case_id.in_(chunk))
                    .order_by(events.c.case_id, events.c.seq)
                )
                for row in rows:
                    timelines[row.case_id].append(LedgerEvent.model_validate(aware(row)))
        return [CaseHistory(facts=found[i], events=tuple(timelines[i])) for i in ids]

    def events_of(self, case_id: str) -> list[LedgerEvent]:
        query = select(events).where(events.c.case_id == case_id).order_by(events.c.seq)
        with self.engine.connect() as connection:
            return [LedgerEvent.model_validate(aware(row)) for row in connection.execute(query)]

    def case(self, case_id: str) -> LedgerCase | None:
        query = select(cases).where(cases.c.case_id == case_id)
        with self.engine.connect() as connection:
            row = connection.execute(query).mappings().first()
        if row is None:
            return None
        fields = {k: v for k, v in row.items() if k != "written_at"}
        return LedgerCase.model_validate(aware(fields))

    def counts(self) -> dict[str, int]:
        """Rows per table: what the tests and `escalator ledger status` show."""
        with self.engine.connect() as connection:
            return {
                table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
                for table in (events, cases)
            }


def _event_row(event: LedgerEvent) -> dict[str, Any]:
    row = event.model_dump(exclude={"note"})
    row["note"] = event.note.model_dump(mode="json") if event.note else None
    return row


def _case_row(case: LedgerCase) -> dict[str, Any]:
    row = case.model_dump(exclude={"policy"})
    row["policy"] = case.policy.model_dump(mode="json")
    return row


def aware(row: Any) -> dict[str, Any]:
    """SQLite hands back naive datetimes; every time in the ledger is UTC."""
    mapping: Iterable[tuple[str, Any]] = (row._mapping if hasattr(row, "_mapping") else row).items()
    return {
        key: value.replace(tzinfo=UTC)
        if isinstance(value, datetime) and value.tzinfo is None
        else value
        for key, value in mapping
    }
