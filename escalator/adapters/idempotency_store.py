"""Which request each `Idempotency-Key` was first used for, so that a key reused with
another request is refused (422) instead of answered with the first one's result.

The API is stateless (any number of replicas), so the keys live in the database the
tokens live in (escalator/adapters/token_store.py: the ledger's Postgres when that
is Postgres, else `tokens.db`). A row is (who, key) → the request's fingerprint, kept
`KEEP` (24 h); older rows are purged as requests arrive.

The row is inserted first (ON CONFLICT DO NOTHING) and then read back, in one
transaction: of two concurrent requests with one key and different bodies exactly
one fingerprint is stored, and the other request sees it and is refused.
"""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import Column, DateTime, MetaData, String, Table, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from escalator.adapters.ledger_store import Database

KEEP = timedelta(hours=24)
PURGE_EVERY_SECONDS = 600.0  # per process: one DELETE of old rows at most this often

idempotency_schema = MetaData()
idempotency_keys = Table(
    "api_idempotency_keys",
    idempotency_schema,
    # SHA-256 of who is asking and of the key: neither is stored as sent.
    Column("owner_sha256", String(64), primary_key=True),
    Column("key_sha256", String(64), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class IdempotencyStore(Database):
    schema = idempotency_schema

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._purged_at = float("-inf")
        self._purge_lock = threading.Lock()

    def claim(
        self, owner: str, key: str, fingerprint: str, *, now: datetime | None = None
    ) -> Literal["new", "same", "other"]:
        """Record `key` of `owner` for the request `fingerprint`: "new" if the key was
        free, "same" if it was used before for this same request, "other" if it was
        used for another request within `KEEP` (the caller refuses it)."""
        now = now or datetime.now(UTC)
        owner_sha, key_sha = _sha256(owner), _sha256(key)
        this = (idempotency_keys.c.owner_sha256 == owner_sha) & (
            idempotency_keys.c.key_sha256 == key_sha
        )
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        with self.engine.begin() as connection:
            # A row past its time is gone, as if purged: the key is free again.
            connection.execute(
                delete(idempotency_keys).where(this, idempotency_keys.c.created_at < now - KEEP)
            )
            inserted = connection.execute(
                insert(idempotency_keys)
                .values(
                    owner_sha256=owner_sha,
                    key_sha256=key_sha,
                    fingerprint=fingerprint,
                    created_at=now,
                )
                .on_conflict_do_nothing()
                .returning(idempotency_keys.c.fingerprint)
            ).first()
            stored = (
                inserted[0]
                if inserted is not None
                else connection.execute(
                    select(idempotency_keys.c.fingerprint).where(this)
                ).scalar_one()
            )
        self._purge(now)
        if inserted is not None:
            return "new"
        return "same" if stored == fingerprint else "other"

    def _purge(self, now: datetime) -> None:
        """Delete every row past its time, at most once per PURGE_EVERY_SECONDS."""
        tick = time.monotonic()
        with self._purge_lock:
            if tick - self._purged_at < PURGE_EVERY_SECONDS:
                return
            self._purged_at = tick
        with self.engine.begin() as connection:
            connection.execute(
                delete(idempotency_keys).where(idempotency_keys.c.created_at < now - KEEP)
            )

    def count(self) -> int:
        """Rows kept: what the tests look at."""
        with self.engine.connect() as connection:
            return connection.execute(
                select(func.count()).select_from(idempotency_keys)
            ).scalar_one()
