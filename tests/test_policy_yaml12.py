"""Policy files mean what they say: YAML 1.2, whole-second durations, file:line:column
errors, and email and URL checks (issue 12)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta

import pytest

from escalator.adapters.policy_files import MAX_VALUES, load_policy, parse_policy_text
from escalator.domain.errors import InvalidInput, PolicyError
from escalator.domain.models import CaseInput
from escalator.domain.policy import Policy, check_email

BASE = """\
escalation:
  name: support
  tiers:
    - level: 1
      name: Desk
      team: desk
      notify: [l1@example.com]
      sla: {first_response: 4h, resolution_target: 1d}
    - level: 2
      name: Engineering
      team: eng
"""


def _with(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new, 1)


def _error(text: str, source: str = "policies/x.yaml") -> str:
    with pytest.raises(PolicyError) as error:
        parse_policy_text(text, source=source)
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# -- YAML 1.2 ------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "y", "n", "Yes", "OFF"])
def test_yes_no_on_off_are_text(word):
    policy = parse_policy_text(_with("name: support", f"name: {word}"))
    assert policy.name == word
    tier = parse_policy_text(_with("name: Desk", f"name: {word}")).tiers[0]
    assert tier.name == word


def test_only_true_and_false_are_booleans():
    message = _error(_with("level: 1", "level: True"))
    assert message == (
        "policies/x.yaml:4:14: escalation.tiers[0].level: Input should be a valid integer, "
        "not a boolean (true)"
    )


def test_base_60_is_not_a_number():
    # YAML 1.1 (PyYAML) read `1:30` as 90 and `1:30:00` as 5400, both as *seconds*.
    message = _error(_with("first_response: 4h", "first_response: 1:30"))
    assert message == (
        "policies/x.yaml:8:29: escalation.tiers[0].sla.first_response: '1:30' is ambiguous "
        "(1 h 30 min or 1 min 30 s?); write 1h30m, 90m, 90s, PT1H30M or a number of seconds"
    )
    message = _error(_with("first_response: 4h", "first_response: 1:30:00"))
    assert message.startswith(
        "policies/x.yaml:8:29: escalation.tiers[0].sla.first_response: '1:30:00' is clock notation"
    )
    assert "write 1h30m, 5400s, PT1H30M or a number of seconds" in message


def test_the_same_clock_text_is_refused_from_json_and_python():
    as_json = json.loads(parse_policy_text(BASE).model_dump_json())
    as_json["tiers"][0]["sla"]["first_response"] = "1:30"
    message = _error(json.dumps({"escalation": as_json}, indent=2))
    assert "escalation.tiers[0].sla.first_response: '1:30' is ambiguous" in message
    with pytest.raises(ValueError, match=r"'1:30' is ambiguous"):
        Policy.builder().add_stage("a", handler="x", timeout="1:30").build()


def test_leading_zero_is_decimal_and_octal_needs_0o():
    policy = parse_policy_text(_with("first_response: 4h", "first_response: 010"))
    assert policy.tiers[0].sla.first_response == timedelta(seconds=10)
    policy = parse_policy_text(_with("first_response: 4h", "first_response: 0o10"))
    assert policy.tiers[0].sla.first_response == timedelta(seconds=8)


@pytest.mark.parametrize("version", ["1.1", "1.0", "1.3"])
def test_other_yaml_versions_are_refused(version):
    message = _error(f"%YAML {version}\n---\n{BASE}")
    assert message == (
        f"policies/x.yaml:1:1: %YAML {version}: policy files are read as YAML 1.2; "
        "remove the %YAML line"
    )


def test_a_yaml_1_2_directive_is_fine():
    assert parse_policy_text(f"%YAML 1.2\n---\n{BASE}").name == "support"


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        ("!!python/object/apply:os.system [id]", "!!python/object/apply:os.system"),
        ("!!python/name:os.system x", "!!python/name:os.system"),
        ("!!binary aGVsbG8=", "!!binary"),
        ("!!set {a, b}", "!!set"),
        ("!Custom x", "!Custom"),
    ],
)
def test_tags_are_refused(value, tag):
    message = _error(_with("name: support", f"name: {value}"))
    assert message == (
        f"policies/x.yaml:2:9: escalation.name: the tag {tag} is not allowed in a policy; remove it"
    )


def test_explicit_core_tags_are_fine():
    policy = parse_policy_text(_with("name: support", "name: !!str 123"))
    assert policy.name == "123"


def test_dates_read_as_dates_and_impossible_dates_name_the_field():
    text = _with("  name: support\n", "  name: support\n  calendar: {holidays: [2026-12-24]}\n")
    assert parse_policy_text(text).calendar.holidays == (date(2026, 12, 24),)
    message = _error(text.replace("2026-12-24", "2026-13-45"))
    assert message == (
        "policies/x.yaml:3:25: escalation.calendar.holidays[0]: '2026-13-45' is not a valid "
        "date (month must be in 1..12); write it as YYYY-MM-DD, e.g. 2026-12-24"
    )


def test_duplicate_keys_name_both_places():
    text = _with("      team: desk\n", "      team: desk\n      team: desk2\n")
    assert _error(text) == (
        "policies/x.yaml:7:7: escalation.tiers[0].team: duplicate key (first at line 6, "
        "column 7); give each key once"
    )
    json_text = '{"escalation": {"name": "a", "name": "b", "tiers": []}}'
    assert _error(json_text) == (
        "policies/x.yaml:1:30: escalation.name: duplicate key (first at line 1, column 17); "
        "give each key once"
    )


def test_merge_keys_and_overrides():
    # Keys written next to `<<` win; of a list of merged mappings, the earlier wins.
    text = """\
escalation:
  tiers:
    - &desk
      level: 1
      name: Desk
      team: desk
      notify: [l1@example.com]
      sla: {first_response: 4h, resolution_target: 1d}
    - <<: [*desk, {kind: ai, team: nobody}]
      level: 2
      name: Robot
      team: robots
"""
    policy = parse_policy_text(text)
    robot = policy.tiers[1]
    assert (robot.level, robot.name, robot.team, robot.kind) == (2, "Robot", "robots", "ai")
    assert robot.notify == ("l1@example.com",)
    assert robot.sla == policy.tiers[0].sla


def test_an_error_in_a_merged_value_points_at_where_it_is_written():
    text = """\
escalation:
  tiers:
    - &desk {level: 1, name: Desk, team: desk, notify: [nobody], sla: {first_response: 4h, resolution_target: 1d}}
    - <<: *desk
      level: 2
"""
    # tiers[0] fails first; the same node serves tiers[1], so the line is the same either way.
    assert _error(text).startswith("policies/x.yaml:3:57: escalation.tiers[0].notify[0]: ")
    text = text.replace("notify: [nobody], ", "").replace("      level: 2\n", "      level: two\n")
    assert _error(text).startswith("policies/x.yaml:5:14: escalation.tiers[1].level: ")
    text = text.replace("level: two", "level: 2").replace("team: desk", "team: ''")
    assert _error(text).startswith("policies/x.yaml:3:42: escalation.tiers[0].team: ")


def test_merging_a_scalar_is_refused():
    assert _error(_with("      name: Desk\n", "      name: Desk\n      <<: 5\n")) == (
        "policies/x.yaml:6:11: escalation.tiers[0]: << merges a mapping or a list of "
        "mappings, e.g. <<: *defaults"
    )


def test_a_recursive_alias_is_refused():
    message = _error("escalation: &x\n  tiers: [*x]\n")
    # The position is the anchored value's (&x); the field is where the alias (*x) is.
    assert message == (
        "policies/x.yaml:1:13: escalation.tiers[0]: an alias here refers to a value that "
        "contains it; a policy must not loop"
    )


def test_a_billion_laughs_is_refused_before_validation():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    text = "\n".join(lines) + "\nescalation: {tiers: *a8}\n"
    message = _error(text)
    assert f"expands to more than {MAX_VALUES} values" in message
    assert message.startswith("policies/x.yaml:")


def test_syntax_errors_give_line_and_column():
    assert _error("escalation:\n  tiers: [a, b\n  name: x\n") == (
        "policies/x.yaml:3:7: expected ',' or ']', but got ':'"
    )
    assert _error("escalation:\n\t- x\n") == (
        "policies/x.yaml:2:1: found character '\\t' that cannot start any token"
    )
    assert _error(BASE + "---\nescalation: {}\n") == (
        "policies/x.yaml:12:1: more than one YAML document; a policy file holds one "
        "(remove the ---)"
    )
    assert (
        _error("escalation: *nothing\n") == "policies/x.yaml:1:13: found undefined alias 'nothing'"
    )
    assert _error("name: x\x00\n") == (
        "policies/x.yaml:1:8: unacceptable character #x0000; a policy is plain UTF-8 text"
    )
    assert _error("[" * 1000) == "policies/x.yaml: not valid YAML (nested too deeply)"


def test_a_key_must_be_a_plain_value():
    assert _error("escalation:\n  ? [a]\n  : 1\n") == (
        "policies/x.yaml:2:5: escalation: a key must be a plain value, not a list or mapping"
    )


def test_text_without_a_file_reads_line_and_column():
    with pytest.raises(PolicyError) as error:
        parse_policy_text(_with("level: 1", "level: one"))
    assert str(error.value) == (
        "<policy>, line 4, column 14: escalation.tiers[0].level: Input should be a valid "
        "integer, unable to parse string as an integer"
    )
    with pytest.raises(PolicyError) as error:
        parse_policy_text("")
    assert str(error.value) == (
        "<policy>: escalation: expected a mapping with 'tiers'; see policies/default.yaml"
    )


def test_unknown_fields_point_at_the_key():
    message = _error(_with("      team: desk\n", "      team: desk\n      colour:   blue\n"))
    assert message.startswith("policies/x.yaml:7:7: escalation.tiers[0].colour: unknown field")


def test_positions_follow_the_input_order_of_tiers():
    # Tiers are sorted by level; the message and the position name the tier where it is
    # written (here the second one, level 1, which is not final and has no sla).
    text = BASE.replace("level: 1", "level: 9").replace("level: 2", "level: 1")
    assert _error(text) == (
        "policies/x.yaml:9:7: escalation.tiers: tier 1 (Engineering) needs an sla because it "
        "is not the final tier; only the final tier may omit it (tiers[1].sla)"
    )


def test_a_policy_without_the_escalation_key_reads_the_same():
    bare = "\n".join(line[2:] for line in BASE.splitlines()[1:]) + "\n"
    assert parse_policy_text(bare) == parse_policy_text(BASE)
    message = _error(bare.replace("level: 1", "level: one"))
    assert message.startswith("policies/x.yaml:3:12: tiers[0].level: ")


def test_load_policy_names_the_file(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text(_with("first_response: 4h", "first_response: 1:30"), encoding="utf-8")
    with pytest.raises(PolicyError) as error:
        load_policy(path)
    assert str(error.value).startswith(f"{path}:8:29: escalation.tiers[0].sla.first_response: ")


def test_shipped_policies_still_load():
    for name in ("policies/default.yaml", "policies/demo.yaml", "tests/policies/fast.yaml"):
        assert load_policy(name).tiers


# -- email and URL checks -------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("bob@", "There must be something after the @-sign."),
        ("bob", "An email address must have an @-sign."),
        ("bob@localhost", "The part after the @-sign is not valid. It should have a period."),
        ("Bob <bob@example.com>", "A display name and angle brackets around the email address"),
        ("a@b.com,c@d.com", "The part after the @-sign contains invalid characters"),
        ("a..b@example.com", "An email address cannot have two periods in a row."),
    ],
)
def test_notify_addresses_are_checked_with_email_validator(address, reason):
    text = _with("notify: [l1@example.com]", f"notify: [l1@example.com, {json.dumps(address)}]")
    message = _error(text)
    assert message.startswith(
        f"policies/x.yaml:7:32: escalation.tiers[0].notify[1]: {address!r} is not an email "
        f"address: {reason}"
    ), message


@pytest.mark.parametrize(
    "address", ["l1@example.com", "jane.doe+tag@acme.example", "ü@bücher.de", " l1@example.com "]
)
def test_good_addresses_are_kept_as_written(address):
    text = _with("notify: [l1@example.com]", f"notify: [{json.dumps(address)}]")
    assert parse_policy_text(text).tiers[0].notify == (address.strip(),)
    assert check_email(address) == address.strip()


def test_a_number_is_not_an_address():
    message = _error(_with("notify: [l1@example.com]", "notify: [5]"))
    assert message == (
        "policies/x.yaml:7:16: escalation.tiers[0].notify[0]: Input should be a valid string"
    )


def test_customer_email_is_checked_too():
    with pytest.raises(ValueError, match=r"'jane@' is not an email address: There must be"):
        CaseInput.model_validate(
            {"case_id": "c1", "title": "t", "policy": parse_policy_text(BASE),
             "customer": {"email": "jane@"}}
        )  # fmt: skip


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://hooks.example/x", "write it as https://host/path (or http://)"),
        ("hooks.example/x", "write it as https://host/path (or http://)"),
        ("https:/hooks.example/x", "write it as https://host/path (or http://)"),
        ("https://", "write it as https://host/path (or http://)"),
        ("https://hooks example/x", "it contains blanks or control characters"),
        ("https://hooks.example/a b", "it contains blanks or control characters"),
        ("https://[::1/x", "Input should be a valid URL, invalid IPv6 address"),
    ],
)
def test_webhooks_must_be_http_urls(url, reason):
    text = _with("      team: desk\n", f"      team: desk\n      webhook: {json.dumps(url)}\n")
    assert _error(text) == (
        f"policies/x.yaml:7:16: escalation.tiers[0].webhook: {url!r} is not an http(s) URL: "
        f"{reason}"
    )


@pytest.mark.parametrize(
    "url", ["https://hooks.example/l1", "http://127.0.0.1:8080/hook?x=1", "HTTPS://Hooks.Example"]
)
def test_webhooks_stay_strings_as_written(url):
    text = _with("      team: desk\n", f"      team: desk\n      webhook: {json.dumps(url)}\n")
    tier = parse_policy_text(text).tiers[0]
    assert tier.webhook == url and type(tier.webhook) is str
    assert json.loads(parse_policy_text(text).model_dump_json())["tiers"][0]["webhook"] == url


def test_an_invalid_input_is_one_line_everywhere():
    # PolicyError is an InvalidInput: the CLI shows it as one line, exit 2.
    assert issubclass(PolicyError, InvalidInput)


def test_json_surrogate_pairs_are_one_character_and_lone_halves_are_refused():
    document = json.loads(parse_policy_text(BASE).model_dump_json())
    document["name"] = "desk 😀"
    text = json.dumps(document)  # ensure_ascii: "\ud83d\ude00"
    assert "\\ud83d\\ude00" in text
    assert parse_policy_text(text).name == "desk 😀"
    message = _error(text.replace("\\ude00", ""))
    assert message.startswith("policies/x.yaml:1:10: name: holds half of a UTF-16 surrogate pair")


def test_explicit_scalar_tags_must_fit_their_text():
    assert _error(_with("name: support", "name: !!bool maybe")) == (
        "policies/x.yaml:2:9: escalation.name: 'maybe' is not a valid bool"
    )
    assert _error(_with("level: 1", "level: !!int one")) == (
        "policies/x.yaml:4:14: escalation.tiers[0].level: 'one' is not a valid number"
    )


@pytest.mark.filterwarnings("ignore::ruamel.yaml.error.ReusedAnchorWarning")  # pytest's own filters
def test_a_redefined_anchor_means_the_latest_and_prints_no_warning(tmp_path):
    text = """\
escalation:
  tiers:
    - {level: 1, name: &t first, team: desk, sla: {first_response: 1h, resolution_target: 1h}}
    - {level: 2, name: &t second, team: *t}
"""
    assert parse_policy_text(text).tiers[1].team == "second"
    # ruamel warns about the re-used anchor name; on stderr that would be a second line.
    path = tmp_path / "anchors.yaml"
    path.write_text(text, encoding="utf-8")
    script = f"from escalator.adapters.policy_files import load_policy; load_policy({str(path)!r})"
    result = subprocess.run(
        [sys.executable, "-W", "default", "-c", script], capture_output=True, text=True
    )
    assert (result.returncode, result.stderr) == (0, "")


def test_a_parsed_document_validates_without_positions():
    from escalator.adapters.policy_files import parse_policy_document

    document = json.loads(parse_policy_text(BASE).model_dump_json())
    assert parse_policy_document({"escalation": document}) == parse_policy_text(BASE)
    document["tiers"][0]["level"] = "one"
    with pytest.raises(PolicyError) as error:
        parse_policy_document(document, source="api")
    assert str(error.value).startswith("api: tiers[0].level: Input should be a valid integer")
