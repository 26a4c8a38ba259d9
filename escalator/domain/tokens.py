"""API tokens: who a bearer token says is asking, and how a token is checked.

The HTTP API decides who is asking from the token, never from the request body.
A token is `esc_<id>_<secret>`: the id finds the stored record, and only a hash of
the secret is stored, so a copy of the token store lets nobody act. Secrets are
32 random bytes (made in escalator/adapters/token_store.py), so one SHA-256 is
enough: there is nothing to guess that a slow hash would protect.

Two kinds of token:
- a **person** (`user`, `role`, `account`): the actor of every action the API
  takes for them, which the workflow's rules then check as for any actor;
- an **integration** (`integration`, `account`, `policy`): an alert source
  (Alertmanager, PagerDuty-compatible senders) that opens and resolves cases.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from escalator.domain.records import ACCOUNT_PATTERN, Model, Role

TOKEN_PREFIX = "esc_"
_TOKEN = re.compile(r"^esc_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")
_NAMES = {
    "user": (r"[A-Za-z0-9][A-Za-z0-9._@-]{0,199}", "letters, digits, '.', '_', '@' or '-'"),
    "integration": (r"[a-z][a-z0-9_-]{0,39}", "lower-case letters, digits, '_' or '-'"),
    "policy": (r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", "a policy file's name, e.g. default"),
}


class TokenGrant(Model):
    """What a token lets its holder be."""

    kind: Literal["person", "integration"]
    account: str = Field(pattern=ACCOUNT_PATTERN)
    user: str | None = None
    role: Role | None = None
    integration: str | None = None
    policy: str | None = None

    @field_validator("user", "integration", "policy")
    @classmethod
    def _plain_name(cls, value: str | None, info: ValidationInfo) -> str | None:
        pattern, allowed = _NAMES[info.field_name or ""]
        if value is not None and not re.fullmatch(pattern, value):
            raise ValueError(f"{value[:40]!r} is not a valid name; use {allowed}")
        return value

    @model_validator(mode="after")
    def _complete(self) -> TokenGrant:
        if self.kind == "person" and (self.user is None or self.role is None):
            raise ValueError("a person's token needs --user and --role")
        if self.kind == "integration" and self.integration is None:
            raise ValueError("an integration token needs --integration")
        return self

    @property
    def label(self) -> str:
        """How listings show it: never the secret."""
        if self.kind == "person":
            return f"{self.user} ({self.role}, account {self.account})"
        return f"integration {self.integration} (account {self.account}, policy {self.policy})"


class TokenRecord(Model):
    token_id: str
    secret_sha256: str
    grant: TokenGrant
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def status(self, now: datetime) -> Literal["active", "expired", "revoked"]:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"


def token_text(token_id: str, secret: str) -> str:
    return f"{TOKEN_PREFIX}{token_id}_{secret}"


def parse_token(text: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token, else None (never an error message that
    echoes what was sent)."""
    found = _TOKEN.match(text.strip())
    return (found.group(1), found.group(2)) if found else None


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def verify(record: TokenRecord | None, secret: str, now: datetime) -> TokenGrant | None:
    """The grant if `secret` is the record's and the token is active, else None. The
    comparison takes the same time whatever it finds."""
    expected = record.secret_sha256 if record is not None else "0" * 64
    matches = hmac.compare_digest(expected, secret_hash(secret))
    if record is None or not matches or record.status(now) != "active":
        return None
    return record.grant
