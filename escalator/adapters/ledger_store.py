"""The case ledger's store: SQLite under the data directory, or Postgres for a cluster.

One schema in SQLAlchemy Core, for both. `ESCALATOR_LEDGER_URL` picks the database:
`sqlite:///.data/ledger.db` (the embedded default) or
`postgresql://user:password@host/escalator_ledger` (psycopg 3). Writes are
idempotent: an event is keyed by (case id, sequence number) and written once,
and a case's fact row is replaced by the newer one, so a retried activity or a
replayed case never counts anything twice.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    event,
    func,
    inspect,
    select,
    update,
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
from escalator.domain.policy import Policy
from escalator.domain.policy_version import policy_version

# Ids bound in one statement (`histories(case_ids=...)` takes at most this many):
# under the 999 parameters SQLite allowed before 3.32, and Postgres's 65,535.
CASE_IDS_AT_ONCE = 900

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
    Column("until", DateTime(timezone=True)),  # holds only: when the hold ends by itself
    Column("role", String(20)),  # notes only: the author's role (a customer's ends a hold)
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
    Column("policy_version", String(120), index=True),  # <name>@<12 hex> of that snapshot
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
    """Bring a database made by an older Escalator up to this code's schema.

    A missing column that may be NULL is added (an additive migration: ALTER TABLE
    ... ADD COLUMN, then its index and, where `_FILLS` says how, its values for the
    rows already there), all in one transaction that holds the table's write lock,
    so two processes opening the same old ledger migrate it once. A missing column
    that must not be NULL cannot be added to rows already there: say so once,
    plainly, instead of failing every write with a database error."""
    found = inspect(engine)
    missing: dict[str, list[Column[Any]]] = {}
    for table in schema.sorted_tables:
        present = {column["name"] for column in found.get_columns(table.name)}
        lacking = [column for column in table.columns if column.name not in present]
        required = [column.name for column in lacking if not column.nullable]
        if required:
            raise InvalidInput(
                f"ledger: table {table.name} lacks {', '.join(required)}: an older Escalator "
                "made it; move that database aside and run `escalator ledger backfill` to "
                "rebuild it from Temporal"
            )
        if lacking:
            missing[table.name] = lacking
    for name in missing:
        _add_columns(engine, schema.tables[name])


def _add_columns(engine: Engine, table: Table) -> None:
    """Add `table`'s missing nullable columns, their indexes and fills, atomically."""
    with _locked(engine, table) as connection:
        # Asked again under the lock: another process may have migrated it meanwhile.
        present = {column["name"] for column in inspect(connection).get_columns(table.name)}
        added = [column for column in table.columns if column.name not in present]
        preparer = engine.dialect.identifier_preparer
        for column in added:
            kind = column.type.compile(dialect=engine.dialect)
            connection.exec_driver_sql(
                f"ALTER TABLE {preparer.format_table(table)} "
                f"ADD COLUMN {preparer.format_column(column)} {kind}"
            )
        names = {column.name for column in added}
        for index in table.indexes:
            if names & {column.name for column in index.columns}:
                index.create(connection, checkfirst=True)
        for column in added:
            fill = _FILLS.get((table.name, column.name))
            if fill is not None:
                fill(connection)


@contextmanager
def _locked(engine: Engine, table: Table) -> Iterator[Connection]:
    """A transaction holding `table`'s write lock, DDL included.

    SQLite: pysqlite would run the ALTER outside any transaction, so it is begun by
    hand (BEGIN IMMEDIATE takes the write lock, and busy_timeout waits for another
    writer). Postgres: its DDL is transactional; LOCK TABLE makes a second migrator
    wait, then find the columns there."""
    if engine.dialect.name == "sqlite":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.exec_driver_sql("ROLLBACK")
                raise
            connection.exec_driver_sql("COMMIT")
        return
    with engine.begin() as connection:
        name = engine.dialect.identifier_preparer.format_table(table)
        connection.exec_driver_sql(f"LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE")
        yield connection


def _fill_policy_versions(connection: Connection, page: int = 1000) -> None:
    """Each fact row's policy_version, from its stored policy snapshot. A row whose
    snapshot no longer validates keeps NULL: it still counts, it cannot be filtered on.
    Read a page at a time, and each distinct snapshot validated once (most cases of
    a desk share a few policies)."""
    statement = (
        update(cases)
        .where(cases.c.case_id == bindparam("key"))
        .values(policy_version=bindparam("version"))
    )
    versions: dict[str, str | None] = {}
    after = ""
    while True:
        rows = connection.execute(
            select(cases.c.case_id, cases.c.policy)
            .where(cases.c.case_id > after)
            .order_by(cases.c.case_id)
            .limit(page)
        ).all()
        if not rows:
            return
        filled: list[dict[str, str]] = []
        for case_id, snapshot in rows:
            key = json.dumps(snapshot, sort_keys=True)
            if key not in versions:
                try:
                    versions[key] = policy_version(Policy.model_validate(snapshot))
                except ValidationError:
                    versions[key] = None
            version = versions[key]
            if version is not None:
                filled.append({"key": case_id, "version": version})
        if filled:
            connection.execute(statement, filled)
        after = rows[-1][0]


# (table, column) -> how an additive migration fills that column for the rows there.
_FILLS: dict[tuple[str, str], Callable[[Connection], None]] = {
    ("ledger_cases", "policy_version"): _fill_policy_versions,
}


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
                # Batches are separate activities and may land out of order (a reopened
                # case's two resolves): an older fact row, one that had seen fewer of
                # the case's events, never replaces a newer one.
                connection.execute(
                    statement.on_conflict_do_update(
                        index_elements=["case_id"],
                        set_=updates,
                        where=cases.c.events <= statement.excluded.events,
                    )
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
        policy_version: str | None = None,
        case_ids: Sequence[str] | None = None,
    ) -> list[CaseHistory]:
        """Each resolved case in the window (resolved_from <= resolved_at < resolved_to),
        with its events in order, oldest resolve first: what `escalator report`
        computes its figures from. `case_ids`: only these (at most CASE_IDS_AT_ONCE)."""
        filters = _case_filters(resolved_from, resolved_to, account, category, policy_version)
        if case_ids is not None:
            if len(case_ids) > CASE_IDS_AT_ONCE:
                raise ValueError(f"case_ids: at most {CASE_IDS_AT_ONCE} at once")
            filters.append(cases.c.case_id.in_(list(case_ids)))
        query = select(cases).where(*filters).order_by(cases.c.resolved_at, cases.c.case_id)
        found: dict[str, LedgerCase] = {}
        # Most cases share a handful of policies: each is validated once (a month of
        # cases would otherwise spend most of its reading time on the same policy).
        policies: dict[str, Policy] = {}
        with self.engine.connect() as connection:
            for row in connection.execute(query).mappings():
                fields = {k: v for k, v in row.items() if k != "written_at"}
                # By the snapshot itself: a version could be shared by two snapshots
                # that differ only in a default a later release changed.
                key = json.dumps(row["policy"], sort_keys=True)
                if key not in policies:
                    policies[key] = Policy.model_validate(row["policy"])
                fields["policy"] = policies[key]
                found[row["case_id"]] = LedgerCase.model_validate(aware(fields))
            timelines: dict[str, list[LedgerEvent]] = {case_id: [] for case_id in found}
            # The events of exactly the cases found (a filter run again could see a
            # case written meanwhile), in chunks a database takes in one statement.
            ids = list(found)
            for start in range(0, len(ids), CASE_IDS_AT_ONCE):
                rows = connection.execute(
                    select(events)
                    .where(events.c.case_id.in_(ids[start : start + CASE_IDS_AT_ONCE]))
                    .order_by(events.c.case_id, events.c.seq)
                )
                for row in rows:
                    timelines[row.case_id].append(LedgerEvent.model_validate(aware(row)))
        return [CaseHistory(facts=found[i], events=tuple(timelines[i])) for i in found]

    def case_ids(
        self,
        *,
        resolved_from: datetime | None = None,
        resolved_to: datetime | None = None,
        account: str | None = None,
        category: str | None = None,
        policy_version: str | None = None,
    ) -> list[str]:
        """The ids `histories` would return, in its order, without reading the cases:
        so several processes can each read a share (escalator/runtime/simulator.py)."""
        filters = _case_filters(resolved_from, resolved_to, account, category, policy_version)
        query = (
            select(cases.c.case_id).where(*filters).order_by(cases.c.resolved_at, cases.c.case_id)
        )
        with self.engine.connect() as connection:
            return list(connection.execute(query).scalars())

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


def _case_filters(
    resolved_from: datetime | None,
    resolved_to: datetime | None,
    account: str | None,
    category: str | None,
    policy_version: str | None,
) -> list[Any]:
    filters: list[Any] = []
    if resolved_from is not None:
        filters.append(cases.c.resolved_at >= resolved_from)
    if resolved_to is not None:
        filters.append(cases.c.resolved_at < resolved_to)
    if account is not None:
        filters.append(cases.c.account == account)
    if category is not None:
        filters.append(cases.c.category == category)
    if policy_version is not None:
        filters.append(cases.c.policy_version == policy_version)
    return filters


def _event_row(event: LedgerEvent) -> dict[str, Any]:
    row = _in_utc(event.model_dump(exclude={"note"}))
    row["note"] = event.note.model_dump(mode="json") if event.note else None
    return row


def _case_row(case: LedgerCase) -> dict[str, Any]:
    row = _in_utc(case.model_dump(exclude={"policy"}))
    row["policy"] = case.policy.model_dump(mode="json")
    # A batch from a worker older than the field carries none: the snapshot says it.
    row["policy_version"] = case.policy_version or policy_version(case.policy)
    return row


def _in_utc(row: dict[str, Any]) -> dict[str, Any]:
    """Every time as UTC before it is written. SQLite keeps no offset: a hold's
    `until` sent as 11:00+02:00 would read back as 11:00 UTC, two hours late."""
    return {
        key: value.astimezone(UTC) if isinstance(value, datetime) else value
        for key, value in row.items()
    }


def aware(row: Any) -> dict[str, Any]:
    """SQLite hands back naive datetimes; every time in the ledger is UTC."""
    mapping: Iterable[tuple[str, Any]] = (row._mapping if hasattr(row, "_mapping") else row).items()
    return {
        key: value.replace(tzinfo=UTC)
        if isinstance(value, datetime) and value.tzinfo is None
        else value
        for key, value in mapping
    }
