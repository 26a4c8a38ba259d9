"""A policy's version (`<name>@<12 hex>`): the same rules give the same version, from
whatever file or shape they come, and any change to the rules gives another."""

from __future__ import annotations

import re

from escalator.adapters.policy_files import load_policy, parse_policy_text
from escalator.domain.policy import Policy
from escalator.domain.policy_version import canonical_json, policy_version

POLICY = """
escalation:
  name: helpdesk
  warn_at: [0.5, 0.75]
  tiers:
    - level: 1
      name: Front-Line Support
      team: support-generalists
      notify: [l1@example.com]
      sla: {first_response: 4h, resolution_target: 24h}
    - level: 2
      name: Engineering
      team: engineering-oncall
      notify: [oncall@example.com]
  severity_overrides:
    - {severity: P0, route_to: 2, notification: pagerduty}
"""

# The same rules: comments, blank lines, other key order, tiers and warn_at in
# another order, durations spelled differently, a default written out.
SAME_RULES = """
# the help desk's policy, reviewed in March
escalation:
  severity_overrides:
    - {route_to: 2, severity: P0, notification: pagerduty}   # outages page
  tiers:
    - name: Engineering
      level: 2
      notify: [oncall@example.com]
      team: engineering-oncall

    - team: support-generalists
      level: 1
      name: Front-Line Support
      sla: {resolution_target: 1d, first_response: 240m}
      notify: [l1@example.com]
  warn_at: [0.75, 0.5]
  name: helpdesk
  max_bounces: 2
"""


def test_a_version_is_the_name_and_twelve_hex_digits():
    version = policy_version(parse_policy_text(POLICY))
    assert re.fullmatch(r"helpdesk@[0-9a-f]{12}", version), version
    assert re.fullmatch(
        r"default@[0-9a-f]{12}", policy_version(load_policy("policies/default.yaml"))
    )


def test_the_same_yaml_gives_the_same_version_every_time():
    assert policy_version(parse_policy_text(POLICY)) == policy_version(parse_policy_text(POLICY))
    # ... and so does the snapshot a case carries, once it has been through JSON.
    policy = parse_policy_text(POLICY)
    snapshot = Policy.model_validate_json(policy.model_dump_json())
    assert policy_version(snapshot) == policy_version(policy)


def test_comments_key_order_and_spelling_do_not_change_the_version():
    assert policy_version(parse_policy_text(SAME_RULES)) == policy_version(
        parse_policy_text(POLICY)
    )


def test_a_changed_sla_changes_the_version():
    changed = POLICY.replace("first_response: 4h", "first_response: 5h")
    assert policy_version(parse_policy_text(changed)) != policy_version(parse_policy_text(POLICY))
    renamed = POLICY.replace("name: helpdesk", "name: helpdesk-eu")
    assert policy_version(parse_policy_text(renamed)).startswith("helpdesk-eu@")


def test_a_field_a_later_release_adds_with_a_default_does_not_change_it():
    class LaterPolicy(Policy):  # what a release with one more knob would parse
        new_knob: int = 3

    policy = parse_policy_text(POLICY)
    later = LaterPolicy.model_validate(policy.model_dump())
    assert canonical_json(later) == canonical_json(policy)
    assert policy_version(later) == policy_version(policy)
    assert policy_version(later.model_copy(update={"new_knob": 4})) != policy_version(policy)
