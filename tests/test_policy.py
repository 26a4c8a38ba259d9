"""Policy parsing without Temporal: the accepted shapes and every error's wording."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from escalator.adapters.policy_files import load_policy, parse_policy_text
from escalator.domain.durations import format_duration, parse_duration
from escalator.domain.errors import PolicyError
from escalator.domain.policy import Policy
from examples.veterans_benefits import benefits_policy

ISSUE_EXAMPLE = """
escalation:
  name: default
  warn_at: 0.75
  tiers:
    - level: 1
      name: Front-Line Support
      team: support-generalists
      notify: [l1@example.com]
      sla: {first_response: 4h, resolution_target: 24h}
      capabilities: [known_issues, how_to_questions]
      escalation_criteria: ["Issue not in runbook"]
    - level: 3
      name: Engineering
      team: engineering-oncall
      notify: [oncall@example.com]          # a final tier may omit sla
  severity_overrides:
    - {severity: P0, route_to: 3, notification: pagerduty}
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("4h", timedelta(hours=4)),
        ("2d", timedelta(days=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d 2h", timedelta(days=1, hours=2)),
        ("PT4H", timedelta(hours=4)),
        ("P2D", timedelta(days=2)),
        ("P1DT2H30M", timedelta(days=1, hours=2, minutes=30)),
        ("pt90s", timedelta(seconds=90)),
        (3600, timedelta(hours=1)),
        (3600.0, timedelta(hours=1)),
        ("3600", timedelta(hours=1)),
        ("1.5h", timedelta(hours=1, minutes=30)),  # a fraction that comes out whole
        ("0.1h", timedelta(minutes=6)),  # exact: decimal, not binary floating point
        ("PT0.5M", timedelta(seconds=30)),
        ("1w", timedelta(weeks=1)),
        (timedelta(minutes=5), timedelta(minutes=5)),
    ],
)
def test_duration_shapes(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "fraction", [0.5, 1.5, "59.123457s", "1.5s", "PT0.5S", "0.0001h", timedelta(microseconds=1),
                 timedelta(seconds=90, milliseconds=1)],
)  # fmt: skip
def test_durations_are_whole_seconds(fraction):
    with pytest.raises(ValueError) as error:
        parse_duration(fraction)
    message = str(error.value)
    assert "is not a whole number of seconds" in message
    assert message.endswith("; policy durations are whole seconds, at least 1s")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1:30", "'1:30' is ambiguous (1 h 30 min or 1 min 30 s?); write 1h30m, 90m, 90s, PT1H30M or a number of seconds"),
        ("01:30", "'01:30' is ambiguous (1 h 30 min or 1 min 30 s?); write 1h30m, 90m, 90s, PT1H30M or a number of seconds"),
        ("0:45", "'0:45' is ambiguous (0 h 45 min or 0 min 45 s?); write 45m, 45s, PT45M or a number of seconds"),
        ("1:30:00", "'1:30:00' is clock notation, which a duration cannot be (1 h 30 min 0 s?); write 1h30m, 5400s, PT1H30M or a number of seconds"),
    ],
)  # fmt: skip
def test_clock_notation_is_refused_with_the_spellings_that_work(text, expected):
    with pytest.raises(ValueError) as error:
        parse_duration(text)
    assert str(error.value) == expected


@pytest.mark.parametrize(
    "bad", ["", "4 hours", "h4", "PT", "P", "-5m", "0", 0, -3, "0s", True, None, [1]]
)
def test_duration_errors_say_how_to_fix(bad):
    with pytest.raises(ValueError, match=r"duration|4h"):
        parse_duration(bad)


@pytest.mark.parametrize("seconds", [1, 59, 61, 3600, 5400, 86400 + 7, 7 * 86400, 10**12])
def test_format_duration_round_trips(seconds):
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (timedelta(days=1, hours=2, minutes=3, seconds=4), "1d2h3m4s"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(weeks=2), "14d"),
        # Not policy durations: shown to people, rounded to whole seconds, never an error.
        (timedelta(seconds=0.25), "0s"),
        (timedelta(seconds=90.5), "1m31s"),
        (timedelta(0), "0s"),
        (timedelta(minutes=-5), "-5m"),
        (timedelta.max, "1000000000d"),
    ],
)
def test_format_duration_shapes(value, shown):
    assert format_duration(value) == shown


def test_issue_example_parses_with_a_final_tier_without_sla():
    policy = parse_policy_text(ISSUE_EXAMPLE)
    assert [t.level for t in policy.tiers] == [1, 3]
    assert policy.tiers[0].sla.first_response == timedelta(hours=4)
    assert policy.tiers[1].sla is None
    assert policy.override_for("P0").notification == "pagerduty"


def test_default_policy_matches_the_documented_table():
    policy = load_policy("policies/default.yaml")
    table = [(t.sla.first_response, t.sla.resolution_target) for t in policy.tiers]
    hours = timedelta(hours=1)
    assert table == [(4 * hours, 24 * hours), (2 * hours, 8 * hours), (hours, 4 * hours)]
    routes = {o.severity: o.route_to for o in policy.severity_overrides}
    assert routes == {"P0": 3, "P1": 3, "P2": 2}


def test_demo_policy_reaches_the_ai_stage():
    policy = load_policy("policies/demo.yaml")
    assert policy.tiers[-1].kind == "ai" and policy.tiers[-1].sla is None


def test_json_policy_with_iso_and_seconds_is_the_same_policy():
    yaml_policy = parse_policy_text(ISSUE_EXAMPLE)
    as_json = json.loads(yaml_policy.model_dump_json())
    assert as_json["tiers"][0]["sla"] == {"first_response": "4h", "resolution_target": "1d"}
    as_json["tiers"][0]["sla"] = {"first_response": "PT4H", "resolution_target": 86400}
    assert parse_policy_text(json.dumps({"escalation": as_json})) == yaml_policy


def test_tiers_are_ordered_by_level():
    text = ISSUE_EXAMPLE.replace("level: 1", "level: 9").replace("route_to: 3", "route_to: 9")
    text = text.replace("level: 3", "level: 1")
    with pytest.raises(PolicyError, match="needs an sla"):
        parse_policy_text(text)  # level 1 (no sla) is now first, so it is not final


def test_builder_maps_stages_to_tiers():
    policy = benefits_policy()
    assert [(t.level, t.name, t.team) for t in policy.tiers] == [
        (1, "helpdesk", "helpdesk_team"),
        (2, "supervisor", "supervisor_office"),
        (3, "ai_agent", "ai_representative"),
    ]
    assert policy.tiers[0].sla.first_response == timedelta(hours=48)
    assert policy.tiers[0].sla.resolution_target == timedelta(hours=48)
    assert policy.tiers[2].kind == "ai" and policy.tiers[2].sla is None


def test_builder_rejects_a_timeout_free_middle_stage():
    builder = Policy.builder().add_stage("a", handler="x", timeout=None)
    builder.add_stage("b", handler="y", timeout="1h")
    with pytest.raises(ValueError, match="needs an sla"):
        builder.build()


def _mutate(old: str, new: str) -> str:
    assert old in ISSUE_EXAMPLE
    return ISSUE_EXAMPLE.replace(old, new, 1)


@pytest.mark.parametrize(
    ("text", "where", "expected"),
    [
        (_mutate("  warn_at: 0.75\n", "  warn_at: 0.75\n  colour: blue\n"), "5:3", "escalation.colour: unknown field"),
        ("escalation:\n  name: x\n  tiers: []\n", "3:10", "escalation.tiers: a policy needs at least one tier"),
        ("escalation:\n  name: x\n", "2:3", "escalation.tiers: required field is missing"),
        (_mutate("level: 3", "level: 1"), "13:14", "escalation.tiers: level 1 appears twice"),
        (_mutate("      sla: {first_response: 4h, resolution_target: 24h}\n", ""), "6:7",
         "escalation.tiers: tier 1 (Front-Line Support) needs an sla"),
        (_mutate("route_to: 3", "route_to: 5"), "18:32",
         "escalation.severity_overrides[0].route_to: level 5 is not a tier (levels: 1, 3)"),
        (_mutate("  severity_overrides:", "  tier_overrides:\n    - {customer_tier: enterprise, route_to: 2}\n  severity_overrides:"),
         "18:45", "escalation.tier_overrides[0].route_to: level 2 is not a tier (levels: 1, 3)"),
        (_mutate("  severity_overrides:", "  tier_overrides:\n    - {customer_tier: vip, route_to: 3}\n    - {customer_tier: vip, route_to: 1}\n  severity_overrides:"),
         "19:23", "escalation.tier_overrides[1].customer_tier: vip is overridden twice"),
        (_mutate("first_response: 4h", "first_response: 4 hours"), "10:29",
         "escalation.tiers[0].sla.first_response: cannot read duration '4 hours'"),
        (_mutate("first_response: 4h", "first_response: 0s"), "10:29",
         "escalation.tiers[0].sla.first_response: duration must be positive"),
        (_mutate("first_response: 4h", "first_response: -5m"), "10:29",
         "escalation.tiers[0].sla.first_response: duration must be positive"),
        (_mutate("resolution_target: 24h", "resolution_target: 1h"), "10:52",
         "escalation.tiers[0].sla: resolution_target must not be shorter than first_response"),
        (_mutate("warn_at: 0.75", "warn_at: 1.5"), "4:12", "escalation.warn_at[0]: Input should be less than 1"),
        (_mutate("warn_at: 0.75", "warn_at: 0"), "4:12", "escalation.warn_at[0]: Input should be greater than 0"),
        (_mutate("first_respon", "first_respons"), "10:13", "escalation.tiers[0].sla.first_responsse: unknown field"),
        (_mutate("level: 1", "level: one"), "6:14", "escalation.tiers[0].level: Input should be a valid integer"),
        (_mutate("[l1@example.com]", "[not-an-address]"), "9:16",
         "escalation.tiers[0].notify[0]: 'not-an-address' is not an email address: An email address must have an @-sign."),
        (_mutate("[l1@example.com]", "[l1@example.com, bob@]"), "9:32",
         "escalation.tiers[0].notify[1]: 'bob@' is not an email address: There must be something after the @-sign."),
        (_mutate("[l1@example.com]", "[l1@example.com]\n      webhook: ftp://hooks.example/x"), "10:16",
         "escalation.tiers[0].webhook: 'ftp://hooks.example/x' is not an http(s) URL"),
        (_mutate("severity: P0", "severity: P9"), "18:18", "escalation.severity_overrides[0].severity: Input should be 'P0'"),
        ("escalation: [1, 2]", "1:13", "escalation: expected a mapping with 'tiers'"),
        ("escalation:\n  tiers: [\n", "3:1", "expected the node content, but found '<stream end>'"),
        ("escalation:\n  tiers: [a, b\n  name: x\n", "3:7", "expected ',' or ']', but got ':'"),
    ],
)  # fmt: skip
def test_policy_errors_are_one_line_naming_file_line_column_and_field(text, where, expected):
    with pytest.raises(PolicyError) as error:
        parse_policy_text(text, source="policies/broken.yaml")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"policies/broken.yaml:{where}: {expected}"), message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (_mutate("level: 1", "level: true"), "6:14: escalation.tiers[0].level: Input should be a valid integer, not a boolean (true)"),
        (_mutate("route_to: 3", "route_to: false"), "18:32: escalation.severity_overrides[0].route_to: Input should be a valid integer, not a boolean (false)"),
        (_mutate("  warn_at: 0.75\n", "  warn_at: 0.75\n  max_bounces: true\n"), "5:16: escalation.max_bounces: Input should be a valid integer, not a boolean (true)"),
        (_mutate("warn_at: 0.75", "warn_at: [0.5, true]"), "4:18: escalation.warn_at[1]: Input should be a valid number, not a boolean (true)"),
        (_mutate("first_response: 4h", "first_response: true"), "10:29: escalation.tiers[0].sla.first_response: True is not a duration"),
        (_mutate("  warn_at: 0.75\n", "  warn_at: 0.75\n  calendar: {holidays: [2026-02-30]}\n"),
         "5:25: escalation.calendar.holidays[0]: '2026-02-30' is not a valid date (day is out of range for month)"),
        (_mutate("  warn_at: 0.75\n", "  warn_at: 0.75\n  warn_at: 0.5\n"),
         "5:3: escalation.warn_at: duplicate key (first at line 4, column 3); give each key once"),
        (_mutate("{first_response: 4h,", "{first_response: 4h, first_response: 1h,"),
         "10:33: escalation.tiers[0].sla.first_response: duplicate key (first at line 10, column 13); give each key once"),
    ],
)  # fmt: skip
def test_booleans_dates_and_duplicate_keys_are_refused(text, expected):
    with pytest.raises(PolicyError) as error:
        parse_policy_text(text, source="policies/broken.yaml")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"policies/broken.yaml:{expected}"), message


def test_numbers_and_dates_still_read_as_before():
    text = _mutate("level: 1", "level: '1'")  # a number in quotes, as pydantic's lax mode reads it
    text = text.replace("first_response: 4h", "first_response: 3600")  # seconds
    text = text.replace(
        "  warn_at: 0.75\n", "  warn_at: 0.75\n  calendar: {holidays: [2026-12-24, '2026-12-25']}\n"
    )
    policy = parse_policy_text(text)
    assert policy.tiers[0].level == 1
    assert policy.tiers[0].sla.first_response == timedelta(hours=1)
    assert [d.isoformat() for d in policy.calendar.holidays] == ["2026-12-24", "2026-12-25"]


def test_yaml_anchors_and_merge_keys_are_not_duplicates():
    text = """\
escalation:
  tiers:
    - &desk {level: 1, name: Desk, team: desk, sla: &sla {first_response: 4h, resolution_target: 24h}}
    - <<: *desk
      level: 2
      name: Engineering
      sla: *sla
"""
    policy = parse_policy_text(text)
    assert [(t.level, t.name, t.team) for t in policy.tiers] == [
        (1, "Desk", "desk"),
        (2, "Engineering", "desk"),
    ]


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(PolicyError, match=r"nope.yaml: file not found"):
        load_policy(tmp_path / "nope.yaml")
