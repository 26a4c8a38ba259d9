"""API tokens: made once, stored as a hash, checked in constant time, revocable.

The store runs on SQLite (the data directory's default) and on a real Postgres
(the ledger's database in a cluster); the CLI is run as a user runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from escalator.adapters.token_store import TokenStore, token_store_url
from escalator.domain.tokens import TokenGrant, parse_token

ESCALATOR = [sys.executable, "-m", "escalator.cli"]
ALICE = TokenGrant(kind="person", user="alice", role="engineer", account="acme")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.loopback)])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = token_store_url(tmp_path, "sqlite:///ignored.db")
    else:
        url = request.getfixturevalue("postgres_url")
    store = TokenStore(url)
    yield store
    store.close()


def test_a_token_grants_what_it_was_made_for_and_only_its_hash_is_stored(store):
    text, record = store.create(ALICE)
    assert store.grant_for(text) == ALICE
    assert parse_token(text)[1] not in repr(store.all())  # the secret is nowhere
    assert record.secret_sha256 in repr(store.all())
    token_id, secret = parse_token(text)
    forged = f"esc_{token_id}_{'A' * len(secret)}"
    assert store.grant_for(forged) is None
    assert store.grant_for("Bearer nonsense") is None and store.grant_for("") is None


def test_revoked_and_expired_tokens_grant_nothing(store):
    text, record = store.create(ALICE, expires_in=timedelta(days=1))
    now = datetime.now(UTC)
    assert store.grant_for(text, now=now) == ALICE
    assert store.grant_for(text, now=now + timedelta(days=1)) is None  # expired
    other, second = store.create(ALICE)
    assert store.revoke(second.token_id) and not store.revoke(second.token_id)
    assert store.grant_for(other) is None
    statuses = {r.token_id: r.status(now) for r in store.all()}
    assert statuses[second.token_id] == "revoked" and statuses[record.token_id] == "active"


def test_two_tokens_for_one_integration_are_both_live_for_rotation(store):
    alerts = TokenGrant(kind="integration", integration="alertmanager", account="acme",
                        policy="default")  # fmt: skip
    old, _ = store.create(alerts)
    new, _ = store.create(alerts)
    assert store.grant_for(old) == store.grant_for(new) == alerts


def test_the_store_is_the_ledgers_database_only_when_that_is_a_server(tmp_path):
    pg = "postgresql://u:p@db/escalator_ledger"
    assert token_store_url(tmp_path, pg) == pg
    assert token_store_url(tmp_path, "sqlite:///x/ledger.db") == f"sqlite:///{tmp_path}/tokens.db"


def cli(*args: str, data_dir) -> subprocess.CompletedProcess:
    env = {**os.environ, "ESCALATOR_LEDGER_URL": f"sqlite:///{data_dir}/ledger.db"}
    return subprocess.run([*ESCALATOR, "token", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, env=env, timeout=60)  # fmt: skip


def test_the_cli_prints_the_token_once_alone_on_its_last_line(tmp_path):
    made = cli("create", "--user", "alice", "--role", "engineer", "--account", "acme",
               "--expires", "90d", data_dir=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    token = made.stdout.splitlines()[-1]
    assert parse_token(token) is not None
    store = TokenStore(token_store_url(tmp_path, ""))
    assert store.grant_for(token) == ALICE
    listed = cli("list", data_dir=tmp_path)
    # parse_token, not split("_"): the secret may itself hold or begin with "_".
    token_id, secret = parse_token(token)
    assert token not in listed.stdout and secret not in listed.stdout
    assert f"{token_id}  active   alice (engineer, account acme)" in listed.stdout
    assert cli("revoke", token_id, data_dir=tmp_path).returncode == 0
    assert store.grant_for(token) is None
    store.close()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--user", "alice"], "--role: a person's token needs a role"),
        (["--user", "alice", "--role", "root"], "--role: "),
        (["--user", "bad name", "--role", "engineer"], "--user: 'bad name' is not a valid name"),
        (["--integration", "am", "--role", "admin"], "--role: an integration token acts as"),
        (["--user", "a", "--role", "viewer", "--expires", "soon"], "--expires: cannot read"),
        (["--user", "a", "--role", "viewer", "--account", "a b"], "--account: "),
    ],
)
def test_bad_token_flags_are_one_line_naming_the_flag(tmp_path, args, expected):
    made = cli("create", *args, data_dir=tmp_path)
    assert made.returncode == 2
    assert made.stderr.startswith(f"escalator: {expected}"), made.stderr
    assert made.stderr.count("\n") == 1 and not (tmp_path / "tokens.db").exists()
