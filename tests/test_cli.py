"""The `escalator` CLI end to end, against the embedded stack started by `escalator up`.

Everything runs as real processes: `escalator up` (dev server on SQLite, worker,
mail catcher) and one `escalator` process per command, exactly as a user types them.
"""

from __future__ import annotations

import json
import subprocess
import time
import unicodedata

import pytest
from support import ESCALATOR, EscalatorUp

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = EscalatorUp(tmp_path_factory.mktemp("escalator-up")).up()
    yield stack
    stack.down()


def start(stack: EscalatorUp, case_id: str, *extra: str) -> subprocess.CompletedProcess:
    return stack.cli(
        "start", "--case-id", case_id, "--title", "Outlook fails to sync", "--severity", "P2",
        "--policy", "tests/policies/fast.yaml", "--customer-email", "jane@acme.example",
        "--description", "Sync stopped after the certificate change.", *extra,
    )  # fmt: skip


def test_start_then_status_json(stack):
    started = start(stack, "cli-1")
    assert started.returncode == 0, started.stderr
    assert "cli-1" in started.stdout and "/workflows/case-cli-1" in started.stdout
    status = stack.cli("status", "cli-1", "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert (data["case_id"], data["state"], data["tier_level"]) == ("cli-1", "open", 2)
    assert data["next_deadline"]["consequence"].startswith("warn")


def test_claim_then_second_claim_is_refused(stack):
    assert start(stack, "cli-2").returncode == 0
    first = stack.cli("claim", "cli-2", "--user", "alice", "--role", "engineer")
    assert first.returncode == 0, first.stderr
    assert "claimed" in first.stdout
    second = stack.cli("claim", "cli-2", "--user", "bob")
    assert second.returncode == 1
    assert second.stderr.strip() == "escalator: rejected: already claimed by alice"


def test_resolve_shows_resolved(stack):
    assert start(stack, "cli-3").returncode == 0
    resolved = stack.cli("resolve", "cli-3", "--user", "bob", "--summary", "cleared cert cache")
    assert resolved.returncode == 0, resolved.stderr
    status = stack.cli("status", "cli-3")
    assert status.returncode == 0, status.stderr
    assert "state       resolved" in status.stdout
    assert "cleared cert cache" in status.stdout


def test_escalate_and_note_then_list(stack):
    assert start(stack, "cli-4").returncode == 0
    noted = stack.cli("note", "cli-4", "--user", "alice", "--text", "customer sent logs")
    assert noted.returncode == 0, noted.stderr
    escalated = stack.cli(
        "escalate", "cli-4", "--user", "alice", "--reason", "needs backend access",
        "--tried", "re-uploaded cert", "--tried", "checked runbook",
    )  # fmt: skip
    assert escalated.returncode == 0, escalated.stderr
    assert "escalated to L3 Engineering" in escalated.stdout
    without_reason = stack.cli("escalate", "cli-4", "--user", "alice", "--tried", "x")
    assert without_reason.returncode == 2
    assert "reason is required" in without_reason.stderr

    listed = stack.cli("list", "--tier", "3", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["case_id"]: row for row in json.loads(listed.stdout)}
    assert rows["cli-4"]["team"] == "engineering-oncall"
    assert "cli-3" not in rows  # resolved at L2


def test_duplicate_start_and_unknown_case_exit_2(stack):
    assert start(stack, "cli-5").returncode == 0
    again = start(stack, "cli-5")
    assert again.returncode == 2
    assert "already exists" in again.stderr
    unknown = stack.cli("status", "no-such-case")
    assert unknown.returncode == 2
    assert (
        unknown.stderr.strip() == "escalator: case no-such-case does not exist; check the case id"
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["start", "--case-id", "x", "--title", "t", "--severity", "P9"], "--severity: Input should be"),
        (["start", "--case-id", "bad id!", "--title", "t"], "--case-id: String should match"),
        (["start", "--case-id", "x", "--title", "t", "--policy", "nope.yaml"], "nope.yaml: file not found"),
        (["start", "--case-id", "x", "--title", "t", "--customer-email", "jane"], "--customer-email: 'jane' is not an email"),
        (["claim", "x", "--user", "a", "--role", "boss"], "--role: Input should be"),
        (["up", "--port", "http"], "'http' is not a port number"),
        (["frobnicate"], "invalid choice"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(stack, args, expected):
    result = stack.cli(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_help_shows_examples(stack):
    result = stack.cli("--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout and "escalator claim 123" in result.stdout


def test_mail_catcher_receives_the_escalation_mail(stack):
    assert start(stack, "cli-6").returncode == 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        escalations = [m for m in stack.mail() if "X-Escalator-Case: cli-6" in m
                       and "escalated to L3" in m]  # fmt: skip
        if escalations:
            break
        time.sleep(0.5)
    assert escalations, "no escalation mail for cli-6 in the catcher"
    assert "mail  → oncall@example.com" in stack.output or stack.process is not None


def test_open_case_survives_restart_and_still_escalates(tmp_path):
    stack = EscalatorUp(tmp_path).up()
    try:
        assert start(stack, "persist", "--severity", "P3").returncode == 0
    finally:
        assert stack.down() == 0
    assert "open cases are kept" in stack.output

    stack.up()  # same data dir: the SQLite file holds the case and its timers
    try:
        deadline = time.monotonic() + 40
        level = None
        while time.monotonic() < deadline:
            status = stack.cli("status", "persist", "--json")
            assert status.returncode == 0, status.stderr
            level = json.loads(status.stdout)["tier_level"]
            if level >= 2:
                break
            time.sleep(0.5)
        assert level >= 2, "the case did not escalate after the restart"
    finally:
        stack.down()


def test_taken_port_is_a_one_line_error(stack):
    clash = EscalatorUp(stack.data_dir.parent / "clash")
    clash.port = stack.port
    result = subprocess.run(
        [*ESCALATOR, "up", "--data-dir", str(clash.data_dir), "--port", str(stack.port)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"escalator: port {stack.port} is already in use; choose another with --port "
        "(or stop what is using it)"
    )


def test_queue_lists_unclaimed_cases_nearest_deadline_first(stack):
    for case_id in ("q-1", "q-2", "q-3"):
        assert start(stack, case_id).returncode == 0
    assert stack.cli("claim", "q-3", "--user", "alice").returncode == 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        result = stack.cli("queue", "--json")
        assert result.returncode == 0, result.stderr
        rows = json.loads(result.stdout)
        ids = [row["case_id"] for row in rows]
        if {"q-1", "q-2"} <= set(ids):
            break
        time.sleep(0.5)
    assert {"q-1", "q-2"} <= set(ids) and "q-3" not in ids
    assert all(row["status"] == "open" for row in rows)
    deadlines = [row["next_deadline"] for row in rows if row["next_deadline"]]
    assert deadlines == sorted(deadlines)
    human = stack.cli("queue", "--team", "no-such-team")
    assert human.returncode == 0 and human.stdout.strip() == "no cases match"


def test_hold_resume_and_severity_from_the_cli(stack):
    assert start(stack, "cli-hold", "--severity", "P3").returncode == 0  # starts at L1
    held = stack.cli("hold", "cli-hold", "--user", "alice", "--reason", "waiting on logs")
    assert held.returncode == 0, held.stderr
    assert "paused" in held.stdout
    status = json.loads(stack.cli("status", "cli-hold", "--json").stdout)
    assert status["hold"]["reason"] == "waiting on logs" and status["next_deadline"] is None
    again = stack.cli("hold", "cli-hold", "--user", "alice", "--reason", "again")
    assert again.returncode == 1 and "already on hold" in again.stderr
    assert stack.cli("resume", "cli-hold", "--user", "alice").returncode == 0
    raised = stack.cli("severity", "cli-hold", "--user", "alice", "P2")  # P2 -> L2 here
    assert raised.returncode == 0, raised.stderr
    assert "re-routed to L2 Specialist Support" in raised.stdout
    bad = stack.cli("severity", "cli-hold", "--user", "alice", "P9")
    assert bad.returncode == 2 and "not one of P0" in bad.stderr


# Escape sequences (window title, clear screen, colour), C1 CSI, CR, backspace, DEL,
# a bidi override and a newline that tries to forge a status line. (No NUL: a
# process argument cannot hold one.)
HOSTILE_TITLE = (
    "\x1b]0;pwned\x07\x1b[2J\x1b[31mfake\r\x9b2K\x08\x7f\u202eevil\n  state       resolved"
)


def assert_terminal_safe(output: str) -> None:
    bad = [c for c in output if unicodedata.category(c) in ("Cc", "Cf") and c != "\n"]
    assert not bad, bad


def test_hostile_case_text_cannot_act_on_the_terminal(stack):
    started = start(stack, "cli-hostile", "--title", HOSTILE_TITLE, "--severity", "P3")
    assert started.returncode == 0, started.stderr
    assert_terminal_safe(started.stdout)
    user = "eve\x1b[31m\u202e"
    noted = stack.cli("note", "cli-hostile", "--user", user, "--text", "logs\r\x1b[2Kok\nforged")
    assert noted.returncode == 0, noted.stderr
    assert_terminal_safe(noted.stdout)
    claimed = stack.cli("claim", "cli-hostile", "--user", user)
    assert claimed.returncode == 0, claimed.stderr
    assert_terminal_safe(claimed.stdout)
    assert "assignee eve\\x1b[31m\\u202e)" in claimed.stdout
    refused = stack.cli("claim", "cli-hostile", "--user", "bob")
    assert refused.returncode == 1
    assert_terminal_safe(refused.stderr)
    assert refused.stderr.count("\n") == 1 and "eve\\x1b[31m\\u202e" in refused.stderr

    status = stack.cli("status", "cli-hostile")
    assert status.returncode == 0, status.stderr
    assert_terminal_safe(status.stdout)
    lines = status.stdout.splitlines()
    assert lines[0].startswith("Case cli-hostile · P3 · \\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mfake\\r")
    assert [line for line in lines if line.startswith("  state")] == ["  state       claimed"]
    assert "logs\\r\\x1b[2Kok\\nforged [eve\\x1b[31m\\u202e]" in status.stdout

    as_json = stack.cli("status", "cli-hostile", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert_terminal_safe(as_json.stdout)
    assert json.loads(as_json.stdout)["title"] == HOSTILE_TITLE  # the same data, escaped

    listed = stack.cli("list", "--assignee", user)
    assert listed.returncode == 0, listed.stderr
    assert_terminal_safe(listed.stdout)
    assert " eve\\x1b[31m\\u2 " in listed.stdout  # cut to the 14-character column
    for args in (["list"], ["queue"], ["list", "--json"], ["queue", "--json"]):
        result = stack.cli(*args)
        assert result.returncode == 0, result.stderr
        assert_terminal_safe(result.stdout)


def test_up_serves_the_api_and_a_token_made_with_the_cli_opens_it(stack):
    import httpx

    api = f"http://127.0.0.1:{stack.api_port}"
    created = stack.cli(
        "token", "create", "--user", "alice", "--role", "engineer",
        "--data-dir", str(stack.data_dir),
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert start(stack, "api-1").returncode == 0
    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{api}/v1/cases/api-1", timeout=10).status_code == 401
    status = httpx.get(f"{api}/v1/cases/api-1", headers=bearer, timeout=10)
    assert status.status_code == 200, status.text
    assert status.json()["case_id"] == "api-1"
    claimed = httpx.post(f"{api}/v1/cases/api-1/claim", headers=bearer, json={}, timeout=10)
    assert claimed.status_code == 200, claimed.text
    assert stack.cli("status", "api-1", "--json").stdout.count('"assignee": "alice"') == 1
