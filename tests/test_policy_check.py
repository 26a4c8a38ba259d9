"""`escalator policy check FILE`: the configuration-hygiene warnings (docs/policy-check.md).

Each policy below is written by hand to trigger one warning, and the test names the
exact field, line and column it must point at. The checks run in-process through the
loader the CLI uses; the exit codes, the output lines and the ledger check run the CLI
as a user does, as its own process, against a SQLite ledger the test writes.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import ESCALATOR

from escalator.adapters.ledger_store import LedgerStore
from escalator.adapters.policy_files import load_policy, load_policy_with_locations
from escalator.domain.business_time import BusinessCalendar
from escalator.domain.errors import PolicyError
from escalator.domain.ledger import CaseHistory, LedgerBatch, LedgerCase, LedgerEvent
from escalator.domain.policy import Policy
from escalator.domain.policy_check import (
    PolicyWarning,
    check_policy,
    claim_shares,
    closed_weeks,
    ledger_warnings,
    longest_day,
)
from escalator.domain.policy_version import policy_version

ROOT = Path(__file__).resolve().parent.parent

CLEAN = """\
escalation:
  name: clean
  tiers:
    - level: 1
      name: Front
      team: front
      notify: [front@example.com]
      sla: {first_response: 4h, resolution_target: 24h}
    - level: 2
      name: Back
      team: back
      notify: [back@example.com]
      sla: {first_response: 1h, resolution_target: 4h}
"""


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def check(tmp_path: Path, text: str) -> list[PolicyWarning]:
    located = load_policy_with_locations(write(tmp_path, text))
    return check_policy(located.policy, located.locate, tier_positions=located.tier_positions)


def where(text: str, line: int, needle: str) -> tuple[int, int]:
    """(line, column) of `needle` on line `line` (both from 1) of `text`."""
    row = text.splitlines()[line - 1]
    assert needle in row, f"{needle!r} is not on line {line}: {row!r}"
    return line, row.index(needle) + 1


def only(found: list[PolicyWarning]) -> PolicyWarning:
    assert len(found) == 1, [f"{w.field}: {w.message}" for w in found]
    return found[0]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*ESCALATOR, *args],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def version_of(path) -> str:
    """The `name@hash` the summary line names (escalator/domain/policy_version.py)."""
    return policy_version(load_policy(path))


# -- one policy per warning ------------------------------------------------------------


def test_a_clean_policy_has_no_warnings(tmp_path):
    assert check(tmp_path, CLEAN) == []


def test_a_tier_with_neither_notify_nor_webhook(tmp_path):
    text = CLEAN.replace("      notify: [back@example.com]\n", "")
    warning = only(check(tmp_path, text))
    assert (warning.code, warning.field) == ("unheard-tier", "tiers[1]")
    assert (warning.line, warning.column) == where(text, 9, "level: 2")
    assert "L2 Back has neither notify nor webhook" in warning.message
    assert "add notify:" in warning.message


def test_a_webhook_alone_is_heard(tmp_path):
    text = CLEAN.replace("notify: [back@example.com]", "webhook: https://hooks.example/x")
    assert check(tmp_path, text) == []


def test_a_severity_override_to_the_first_tier(tmp_path):
    text = CLEAN + "  severity_overrides:\n    - {severity: P3, route_to: 1}\n"
    warning = only(check(tmp_path, text))
    assert (warning.code, warning.field) == (
        "override-to-first-tier",
        "severity_overrides[0].route_to",
    )
    assert (warning.line, warning.column) == where(text, 15, "1}")
    assert "where every case starts anyway" in warning.message


def test_a_severity_override_to_the_first_tier_with_a_channel_label_does_something(tmp_path):
    # Its `notification` label still travels with the first notification, so the
    # override is not pointless; the label itself is warned about (it pages nobody).
    text = CLEAN + "  severity_overrides:\n    - {severity: P3, route_to: 1, notification: sms}\n"
    assert [w.code for w in check(tmp_path, text)] == ["label-only-notification"]


def test_a_customer_tier_override_to_the_first_tier(tmp_path):
    text = (
        CLEAN + "  tier_overrides:\n"
        "    - {customer_tier: enterprise, route_to: 2}\n"
        "    - customer_tier: free\n"
        "      route_to: 1\n"
    )  # fmt: skip
    warning = only(check(tmp_path, text))
    assert warning.field == "tier_overrides[1].route_to"
    assert (warning.line, warning.column) == where(text, 17, "1")
    assert "customer tier 'free'" in warning.message


def test_an_override_to_a_missing_tier_is_already_an_error(tmp_path):
    text = CLEAN + "  severity_overrides:\n    - {severity: P0, route_to: 5}\n"
    with pytest.raises(PolicyError, match=r":15:32: escalation.severity_overrides\[0\].route_to"):
        check(tmp_path, text)


def test_a_tier_with_only_channels_is_heard(tmp_path):
    text = CLEAN.replace(
        "escalation:\n", "escalation:\n  channels:\n    chat: {kind: slack, url_env: CHAT_URL}\n"
    ).replace("notify: [back@example.com]", "channels: [chat]")
    assert check(tmp_path, text) == []


def test_a_notification_label_in_a_policy_without_channels(tmp_path):
    text = CLEAN + (
        "  severity_overrides:\n"
        "    - {severity: P0, route_to: 2, notification: pagerduty}\n"
        "    - {severity: P1, route_to: 2}\n"
    )  # fmt: skip
    warning = only(check(tmp_path, text))
    assert (warning.code, warning.field) == (
        "label-only-notification",
        "severity_overrides[0].notification",
    )
    assert (warning.line, warning.column) == where(text, 15, "pagerduty}")
    assert warning.message.startswith(
        "'pagerduty' names no channel, so nothing is paged or posted for P0 cases"
    )
    assert "define it under channels" in warning.message


CHANNELS = """\
  channels:
    pagerduty: {kind: pagerduty, routing_key_env: PAGERDUTY_ROUTING_KEY}
    chat:
      kind: slack
      url_env: CHAT_URL
"""


def test_a_channel_nothing_uses(tmp_path):
    text = CLEAN.replace("escalation:\n", "escalation:\n" + CHANNELS).replace(
        "notify: [back@example.com]", "notify: [back@example.com]\n      channels: [pagerduty]"
    )
    warning = only(check(tmp_path, text))
    assert (warning.code, warning.field) == ("unused-channel", "channels.chat")
    assert (warning.line, warning.column) == where(text, 5, "kind: slack")
    assert warning.message == (
        "no tier lists 'chat' under channels and no severity override names it as its "
        "notification, so this slack channel is never sent anything; add it to a tier's "
        "channels or remove it"
    )


def test_a_channel_only_an_override_names_is_used(tmp_path):
    text = (
        CLEAN.replace("escalation:\n", "escalation:\n" + CHANNELS)
        + "  severity_overrides:\n"
        "    - {severity: P0, route_to: 2, notification: pagerduty}\n"
        "    - {severity: P1, route_to: 2, notification: chat}\n"
    )  # fmt: skip
    assert check(tmp_path, text) == []  # and no label warning: both are channels


def test_a_resolution_target_equal_to_first_response(tmp_path):
    text = CLEAN.replace(
        "{first_response: 1h, resolution_target: 4h}",
        "{first_response: 1h, resolution_target: 60m}",
    )
    warning = only(check(tmp_path, text))
    assert (warning.code, warning.field) == ("no-time-to-work", "tiers[1].sla.resolution_target")
    assert (warning.line, warning.column) == where(text, 13, "60m")
    assert "1h equals first_response, which leaves no time to work" in warning.message


def test_a_warning_within_a_minute_of_the_breach(tmp_path):
    text = CLEAN.replace("  name: clean\n", "  name: clean\n  warn_at: [0.5, 0.99]\n")
    warning = only(check(tmp_path, text))  # 1h: 0.99 is 36 s before; 4h, 24h: minutes
    assert (warning.code, warning.field) == ("late-warning", "tiers[1].sla.first_response")
    assert (warning.line, warning.column) == where(text, 14, "1h")
    assert warning.message == (
        "the warn_at 0.99 warning comes 36s before this 1h deadline breaches, under a minute "
        "to act on it; lower warn_at to 0.98 or less, or lengthen first_response"
    )


def test_several_late_fractions_are_one_warning(tmp_path):
    text = CLEAN.replace("  name: clean\n", "  name: clean\n  warn_at: [0.5, 0.985, 0.99]\n")
    warning = only(check(tmp_path, text))  # 1h: 54 s and 36 s before the breach
    assert warning.field == "tiers[1].sla.first_response"
    assert warning.message.startswith(
        "the warn_at 0.985, 0.99 warnings come 54s or less before this 1h deadline breaches"
    )


def test_a_deadline_under_a_minute_cannot_be_warned_in_time(tmp_path):
    text = CLEAN.replace(
        "{first_response: 4h, resolution_target: 24h}",
        "{first_response: 40s, resolution_target: 24h}",
    )
    warning = only(check(tmp_path, text))
    assert warning.field == "tiers[0].sla.first_response"
    assert (warning.line, warning.column) == where(text, 8, "40s")
    assert "comes 10s before" in warning.message and "no fraction can warn" in warning.message


OFFICE = """\
escalation:
  name: office
  calendar:
    timezone: Europe/Berlin
    hours: {mon: "09:00-17:00", tue: "09:00-17:00", wed: "09:00-17:00", thu: "09:00-17:00", fri: "09:00-17:00"}
    holidays: [2026-12-25, 2026-12-21, 2026-12-22, 2026-12-23, 2026-12-24]
  tiers:
    - level: 1
      name: Front
      team: front
      notify: [front@example.com]
      sla: {first_response: 4h, resolution_target: 8h}
    - level: 2
      name: Back
      team: back
      notify: [back@example.com]
      sla: {first_response: 1h, resolution_target: 4h}
"""


def test_a_week_whose_open_days_are_all_holidays(tmp_path):
    warning = only(check(tmp_path, OFFICE))
    assert (warning.code, warning.field) == ("closed-week", "calendar.holidays")
    assert (warning.line, warning.column) == where(OFFICE, 6, "[2026-12-25")
    assert warning.message.startswith("the week of 2026-12-21 has no open hours")


def test_one_open_day_in_the_week_keeps_it_open(tmp_path):
    text = OFFICE.replace("[2026-12-25, ", "[")
    assert check(tmp_path, text) == []


def test_a_tier_calendar_with_a_closed_week(tmp_path):
    text = CLEAN.replace(
        "      sla: {first_response: 1h, resolution_target: 4h}\n",
        "      sla: {first_response: 1h, resolution_target: 4h}\n"
        "      calendar:\n"
        "        hours: {sat: [\"00:00-24:00\"]}\n"
        "        holidays: [2026-12-26]\n",
    )  # fmt: skip
    warning = only(check(tmp_path, text))
    assert warning.field == "tiers[1].calendar.holidays"
    assert (warning.line, warning.column) == where(text, 16, "[2026-12-26]")


def test_a_first_response_longer_than_the_working_day(tmp_path):
    text = OFFICE.replace("[2026-12-25, ", "[").replace(
        "first_response: 4h, resolution_target: 8h}", "first_response: 10h, resolution_target: 16h}"
    )
    warning = only(check(tmp_path, text))
    assert (warning.code, warning.field) == ("longer-than-a-day", "tiers[0].sla.first_response")
    assert (warning.line, warning.column) == where(text, 12, "10h")
    assert "more than this tier's longest working day (8h open)" in warning.message
    assert "shorten first_response to 8h or less" in warning.message


def test_a_resolution_target_of_several_working_days_is_fine(tmp_path):
    # 16h under 8-hour days is two working days: an ordinary choice (README.md).
    text = OFFICE.replace("[2026-12-25, ", "[").replace(
        "resolution_target: 8h}", "resolution_target: 16h}"
    )
    assert check(tmp_path, text) == []


def test_a_tier_on_call_around_the_clock_is_not_held_to_office_days(tmp_path):
    text = OFFICE.replace("[2026-12-25, ", "[").replace(
        "      sla: {first_response: 1h, resolution_target: 4h}\n",
        "      sla: {first_response: 1h, resolution_target: 12h}\n      calendar: {}\n",
    )
    assert check(tmp_path, text) == []


def test_the_working_day_counts_breaks_and_night_shifts():
    assert longest_day(
        BusinessCalendar(hours={"mon": ["09:00-12:00", "13:00-17:00"]})
    ) == timedelta(hours=7)
    night = BusinessCalendar(hours={"mon": ["22:00-24:00"], "tue": ["00:00-06:00"]})
    assert longest_day(night) == timedelta(hours=8)
    sunday_night = BusinessCalendar(hours={"sun": ["20:00-24:00"], "mon": ["00:00-04:00"]})
    assert longest_day(sunday_night) == timedelta(hours=8)  # across the week's end
    assert longest_day(BusinessCalendar(hours={"mon": ["00:00-24:00"]})) is None
    assert longest_day(BusinessCalendar()) is None


def test_closed_weeks_are_mondays_in_order():
    calendar = BusinessCalendar(
        hours={"wed": ["09:00-17:00"]}, holidays=["2027-01-06", "2026-12-23", "2026-12-24"]
    )
    assert [d.isoformat() for d in closed_weeks(calendar)] == ["2026-12-21", "2027-01-04"]


def test_a_repeat_longer_than_the_final_tiers_patience(tmp_path):
    text = CLEAN + "      repeat_every: 4h\n"
    warning = only(check(tmp_path, text))
    assert (warning.code, warning.field) == ("late-repeat", "tiers[1].repeat_every")
    assert (warning.line, warning.column) == where(text, 14, "4h")
    assert "first reminder to L2 Back comes 5h after a case arrives" in warning.message
    assert "use repeat_every: 3h or less" in warning.message


def test_a_repeat_within_the_patience_is_fine(tmp_path):
    assert check(tmp_path, CLEAN + "      repeat_every: 3h\n") == []


def test_fields_name_the_tiers_as_the_file_writes_them(tmp_path):
    # Level 2 written first: the policy sorts its tiers, the warning must not.
    text = """\
escalation:
  tiers:
    - level: 2
      name: Back
      team: back
      sla: {first_response: 1h, resolution_target: 1h}
    - level: 1
      name: Front
      team: front
      notify: [front@example.com]
      sla: {first_response: 4h, resolution_target: 24h}
"""
    found = check(tmp_path, text)
    assert [(w.field, w.line) for w in found] == [
        ("tiers[0]", 3),
        ("tiers[0].sla.resolution_target", 6),
    ]


# -- the ledger: would recent claims have met this first response? ---------------------

NOW = datetime.now(UTC).replace(microsecond=0)


def history(
    case_id: str, entered: datetime, claimed: datetime, policy: Policy, *, held=None
) -> CaseHistory:
    """A case opened at L1, claimed by alice, resolved an hour later (optionally held)."""
    resolved = claimed + timedelta(hours=1)
    kinds = [
        ("created", entered, None),
        ("claimed", claimed, "alice"),
        ("resolved", resolved, "alice"),
    ]
    if held is not None:
        kinds[1:1] = [("hold", held[0], "alice"), ("resumed", held[1], "alice")]
    events = tuple(
        LedgerEvent(case_id=case_id, seq=seq, at=at, kind=kind, tier_level=1, actor=actor)
        for seq, (kind, at, actor) in enumerate(kinds, start=1)
    )
    facts = LedgerCase(
        case_id=case_id, account="acme", title="VPN down", severity="P3", policy_name=policy.name,
        created_at=entered, first_claim_at=claimed, resolved_at=resolved, resolved_by="alice",
        final_tier=1, escalations=0, tier_moves=0, sla_breached=False, reopened=0,
        hold_seconds=0.0, needs_review=False, events=len(events), policy=policy,
    )  # fmt: skip
    return CaseHistory(facts=facts, events=events)


def recent_cases(policy: Policy) -> list[CaseHistory]:
    """Four cases claimed at L1 a few days ago: after 30 min, 2 h, 5 h (late for 4h),
    and 5 h of which 2 h on hold (3 h on the SLA clock: in time)."""
    start = NOW - timedelta(days=3)
    return [
        history("fast", start, start + timedelta(minutes=30), policy),
        history("ok", start, start + timedelta(hours=2), policy),
        history("late", start, start + timedelta(hours=5), policy),
        history("held", start, start + timedelta(hours=5), policy,
                held=(start + timedelta(hours=1), start + timedelta(hours=3))),
    ]  # fmt: skip


def test_claim_shares_count_the_new_policys_calendar_and_leave_holds_out(tmp_path):
    policy = load_policy_with_locations(write(tmp_path, CLEAN)).policy
    shares = claim_shares(policy, recent_cases(policy))
    assert [(s.level, s.claimed, s.missed) for s in shares] == [(1, 4, 1), (2, 0, 0)]
    # Friday 16:00 to Monday 10:00 in Berlin: 66 h, but 2 h of office time.
    office = load_policy_with_locations(write(tmp_path, OFFICE, "office.yaml")).policy
    friday = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)  # 16:00 in Berlin
    weekend = [history("w", friday, friday + timedelta(hours=66), office)]
    assert [(s.claimed, s.missed) for s in claim_shares(office, weekend)] == [(1, 0), (0, 0)]
    assert [(s.claimed, s.missed) for s in claim_shares(policy, weekend)] == [(1, 1), (0, 0)]


def test_ledger_warning_names_the_share_and_the_line(tmp_path):
    located = load_policy_with_locations(write(tmp_path, CLEAN))
    warning = only(ledger_warnings(located.policy, recent_cases(located.policy), located.locate))
    assert (warning.code, warning.field) == ("unmet-first-response", "tiers[0].sla.first_response")
    assert (warning.line, warning.column) == where(CLEAN, 8, "4h")
    assert warning.message.startswith(
        "4h would have been missed by 25% of the 4 cases claimed at L1 in the last 30 days "
        "(1 came later, on this policy's business hours); the escalation guide warns"
    )


def test_ledger_warnings_only_when_some_claim_was_late(tmp_path):
    text = CLEAN.replace("first_response: 4h", "first_response: 6h")
    located = load_policy_with_locations(write(tmp_path, text))
    assert ledger_warnings(located.policy, recent_cases(located.policy), located.locate) == []


# -- the command line --------------------------------------------------------------


@pytest.fixture
def ledger(tmp_path) -> str:
    """A SQLite ledger holding recent_cases(), plus one resolved 40 days ago (outside
    the window: it was claimed late too, and must not count)."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    policy = load_policy_with_locations(write(tmp_path, CLEAN, "old.yaml")).policy
    old = NOW - timedelta(days=40)
    store = LedgerStore(url)
    try:
        for case in [*recent_cases(policy), history("old", old, old + timedelta(hours=9), policy)]:
            store.write(
                LedgerBatch(case_id=case.facts.case_id, events=case.events, case=case.facts)
            )
    finally:
        store.close()
    return url


def test_cli_clean_policy_exits_0_with_only_the_summary(tmp_path):
    path = write(tmp_path, CLEAN)
    result = cli(
        "policy", "check", str(path), env={"ESCALATOR_LEDGER_URL": f"sqlite:///{tmp_path}/none.db"}
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [f"{path}: no warnings (policy {version_of(path)})"]
    assert not (tmp_path / "none.db").exists()  # an absent ledger is not created


def test_cli_warnings_exit_1_one_line_each(tmp_path):
    text = CLEAN.replace("      notify: [back@example.com]\n", "") + "      repeat_every: 4h\n"
    path = write(tmp_path, text)
    result = cli("policy", "check", str(path), "--no-ledger")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(": warning: ")[0] for line in lines[:2]] == [f"{path}:9:7", f"{path}:13:21"]
    assert lines[0].startswith(f"{path}:9:7: warning: tiers[1]: L2 Back has neither notify")
    assert lines[1].startswith(f"{path}:13:21: warning: tiers[1].repeat_every: 4h: the first")
    assert lines[2:] == [f"{path}: 2 warnings (policy {version_of(path)})"]


def test_cli_invalid_file_exits_2_with_one_line(tmp_path):
    path = write(tmp_path, CLEAN.replace("level: 2", "level: 1"))
    result = cli("policy", "check", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert (
        result.stderr
        == f"escalator: {path}:9:14: escalation.tiers: level 1 appears twice; give each tier its own level\n"
    )


def test_cli_missing_file_exits_2(tmp_path):
    result = cli("policy", "check", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2 and result.stdout == ""
    assert (
        result.stderr
        == f"escalator: {tmp_path}/nope.yaml: file not found; pass an existing policy file\n"
    )


def test_cli_ledger_share_warning(tmp_path, ledger):
    path = write(tmp_path, CLEAN)
    result = cli("policy", "check", str(path), env={"ESCALATOR_LEDGER_URL": ledger})
    assert result.returncode == 1, result.stderr
    assert result.stderr == ""
    first, summary = result.stdout.splitlines()
    assert first.startswith(
        f"{path}:8:29: warning: tiers[0].sla.first_response: 4h would have been missed by 25% "
        "of the 4 cases claimed at L1 in the last 30 days (1 came later"
    )
    assert summary == f"{path}: 1 warning (policy {version_of(path)})"
    skipped = cli("policy", "check", str(path), "--no-ledger", env={"ESCALATOR_LEDGER_URL": ledger})
    assert (skipped.returncode, skipped.stdout.splitlines()) == (
        0,
        [f"{path}: no warnings (policy {version_of(path)})"],
    )


def test_cli_json(tmp_path, ledger):
    path = write(tmp_path, CLEAN)
    result = cli("policy", "check", str(path), "--json", env={"ESCALATOR_LEDGER_URL": ledger})
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert data["ledger"] == {"status": "checked", "cases": 4}
    [warning] = data["warnings"]
    assert (warning["field"], warning["line"], warning["column"]) == (
        "tiers[0].sla.first_response",
        8,
        29,
    )


def test_cli_unreadable_ledger_is_a_note_and_the_other_checks_run(tmp_path):
    (tmp_path / "ledger.db").write_text("not a database\n" * 100, encoding="utf-8")
    path = write(tmp_path, CLEAN + "      repeat_every: 4h\n")
    result = cli(
        "policy",
        "check",
        str(path),
        env={"ESCALATOR_LEDGER_URL": f"sqlite:///{tmp_path}/ledger.db"},
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("escalator: the ledger check is skipped: ")
    assert len(result.stderr.splitlines()) == 1
    assert result.stdout.splitlines()[-1] == f"{path}: 1 warning (policy {version_of(path)})"


def test_shipped_default_policy_warns_only_of_its_notification_labels():
    # default.yaml predates channels: its overrides' `notification` values are labels,
    # which page nobody (policies/chat-and-pager.yaml defines them as channels).
    located = load_policy_with_locations(ROOT / "policies" / "default.yaml")
    found = check_policy(located.policy, located.locate, tier_positions=located.tier_positions)
    assert [(w.code, w.field) for w in found] == [
        ("label-only-notification", f"severity_overrides[{i}].notification") for i in range(3)
    ]


def test_shipped_chat_and_pager_policy_is_clean():
    located = load_policy_with_locations(ROOT / "policies" / "chat-and-pager.yaml")
    assert check_policy(located.policy, located.locate, tier_positions=located.tier_positions) == []
