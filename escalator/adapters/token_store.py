"""Where API tokens live: `tokens.db` under the data directory by default, or the
ledger's database when that is Postgres (so every API replica sees the same tokens).

Only a hash of each secret is stored (escalator/domain/tokens.py). A token is
shown once, when it is made, and never again.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Column, DateTime, MetaData, String, Table, select, update

from escalator.adapters.ledger_store import Database, aware
from escalator.domain.tokens import (
    TokenGrant,
    TokenRecord,
    parse_token,
    secret_hash,
    token_text,
    verify,
)

token_schema = MetaData()
tokens = Table(
    "api_tokens",
    token_schema,
    Column("token_id", String(12), primary_key=True),
    Column("secret_sha256", String(64), nullable=False),
    Column("grant", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
)

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def token_store_url(data_dir: Path, ledger_url: str) -> str:
    """The ledger's database when it is a server (shared by every replica), else a
    SQLite file of its own under the data directory."""
    if ledger_url.startswith("postgresql"):
        return ledger_url
    return f"sqlite:///{data_dir.resolve()}/tokens.db"


class TokenStore(Database):
    schema = token_schema

    def create(
        self, grant: TokenGrant, *, expires_in: timedelta | None = None, now: datetime | None = None
    ) -> tuple[str, TokenRecord]:
        """A new token: its text (to show once) and the record stored for it."""
        now = now or datetime.now(UTC)
        token_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))
        secret = secrets.token_urlsafe(32)  # 43 characters
        record = TokenRecord(
            token_id=token_id,
            secret_sha256=secret_hash(secret),
            grant=grant,
            created_at=now,
            expires_at=now + expires_in if expires_in is not None else None,
        )
        with self.engine.begin() as connection:
            connection.execute(tokens.insert().values(_row(record)))
        return token_text(token_id, secret), record

    def all(self) -> list[TokenRecord]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(tokens).order_by(tokens.c.created_at)).mappings()
            return [_record(row) for row in rows]

    def revoke(self, token_id: str, *, now: datetime | None = None) -> bool:
        """Revoke a token by id (as `token list` shows it); False if there is none."""
        with self.engine.begin() as connection:
            done = connection.execute(
                update(tokens)
                .where(tokens.c.token_id == token_id, tokens.c.revoked_at.is_(None))
                .values(revoked_at=now or datetime.now(UTC))
            )
            return bool(done.rowcount)

    def grant_for(self, text: str, *, now: datetime | None = None) -> TokenGrant | None:
        """Who a bearer token says is asking, or None (unknown, revoked or expired)."""
        parsed = parse_token(text)
        if parsed is None:
            return None
        token_id, secret = parsed
        with self.engine.connect() as connection:
            row = (
                connection.execute(select(tokens).where(tokens.c.token_id == token_id))
                .mappings()
                .first()
            )
        return verify(_record(row) if row else None, secret, now or datetime.now(UTC))


def _row(record: TokenRecord) -> dict[str, Any]:
    row = record.model_dump(exclude={"grant"})
    row["grant"] = record.grant.model_dump(mode="json")
    return row


def _record(row: Any) -> TokenRecord:
    return TokenRecord.model_validate(aware(row))
