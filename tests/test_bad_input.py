"""The bad-input catalogue: what a user sees for every kind of bad input, and that nothing is lost.

Five areas: policy files, CLI arguments, signal and update payloads, case content, and
raw Temporal starts (a client that skips EscalatorClient, such as the `temporal` CLI).
Each row checks the three things that matter when input is bad:

  - a clear error: one line naming the field (or, for a signal, a `rejected` timeline
    entry with the reason);
  - nothing lost: the case still exists and a valid action succeeds afterwards (or the
    refused case id is still free, or the file is untouched);
  - no state change: the case's status is the same before and after, apart from the
    timeline's `rejected` entry.

Rows whose `gap` is set are inputs the product does NOT handle well today. They are
strict xfail tests: the reason says what happens now, and `docs/bad-input.md` lists
the proposed fix. When a fix lands the test passes, strict xfail turns that into a
failure, and the mark (and the gap) should be removed.

docs/bad-input.md is generated from the tables in this module:

    .venv/bin/python tests/test_bad_input.py      # rewrites docs/bad-input.md
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from support import (
    DEFAULT_POLICY,
    Desk,
    MailSink,
    RecordingNotifier,
    actor,
    case_workers,
    eventually,
    free_port,
    unique_queue,
)
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from activities.notifications import send_email
from escalator.adapters.policy_files import load_policy
from escalator.devstack.binaries import find_binary
from escalator.domain import limits
from escalator.domain.errors import InvalidInput, PolicyError
from escalator.domain.models import EscalateRequest, EscalationNote, HoldRequest
from starter import ActionRefused, CaseNotFound, EscalatorClient
from workflows.escalation import EscalationWorkflow

ROOT = Path(__file__).resolve().parent.parent
MODULE = "tests/test_bad_input.py"
DOC = ROOT / "docs" / "bad-input.md"
REGENERATE = ".venv/bin/python tests/test_bad_input.py"

POLICY, CLI, MESSAGES, CONTENT = "policy file", "CLI", "signal / update", "content"
RAW = "raw start"
AREAS = (POLICY, CLI, MESSAGES, CONTENT, RAW)
MINIMUM_PER_AREA = {POLICY: 8, CLI: 8, MESSAGES: 8, CONTENT: 6, RAW: 5}


# -- the catalogue -----------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One row of docs/bad-input.md."""

    area: str
    input: str
    sees: str  # what the user sees (the intended behaviour, checked by the test)
    test: str  # pytest node id
    gap: str | None = None  # what happens today instead, if the product falls short
    fix: str | None = None  # the proposed product fix for a gap


CATALOGUE: list[Entry] = []


def gap_mark(gap: str | None, raises: type[BaseException] | tuple = AssertionError):
    """A strict xfail for a documented gap: it must fail, and in exactly this way."""
    if gap is None:
        return ()
    return (pytest.mark.xfail(strict=True, raises=raises, reason=f"GAP: {gap}"),)


def row(area: str, input: str, sees: str, *, gap=None, fix=None, raises=AssertionError):
    """Register a single (non-parametrized) test as a catalogue row."""

    def register(test: Callable) -> Callable:
        CATALOGUE.append(Entry(area, input, sees, f"{MODULE}::{test.__name__}", gap, fix))
        for mark in gap_mark(gap, raises):
            test = mark(test)
        return test

    return register


def one_line(text: str) -> str:
    """The text, after checking it is exactly one non-empty line."""
    assert text.strip(), "empty message"
    assert "\n" not in text.strip() and "\r" not in text, f"not one line: {text!r}"
    return text.strip()


def code(text: str) -> str:
    """`text` as a Markdown code span, even when it holds backticks itself."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


# == 1. policy files ================================================================

TWO_TIERS = """\
escalation:
  tiers:
    - {level: 1, name: Desk, team: desk, notify: [l1@example.com], sla: {first_response: 4h, resolution_target: 24h}}
    - {level: 2, name: Engineering, team: eng, notify: [eng@example.com]}
"""


def policy_with(line: str) -> str:
    """TWO_TIERS with `line` added under `escalation:`."""
    return TWO_TIERS.replace("escalation:\n", f"escalation:\n  {line}\n", 1)


def one_tier(fields: str) -> str:
    return f"escalation:\n  tiers:\n    - {{{fields}}}\n"


def first_tier_sla(sla: str) -> str:
    return TWO_TIERS.replace("{first_response: 4h, resolution_target: 24h}", sla)


@dataclass(frozen=True)
class PolicyCase:
    id: str
    input: str  # what is wrong, in words, for the doc
    content: str | bytes | None  # the file's content; None: there is no file
    expected: str  # the whole error after "<file>: "
    field: str  # the field (or place) the error must name
    hint: str | None = None  # how to fix, where the product says it
    gap: str | None = None
    fix: str | None = None
    raises: type[BaseException] = AssertionError
    where: str | None = None  # "line:column" the error starts with; None: no place in the text

    @property
    def message(self) -> str:
        """The whole error after the file name."""
        return f":{self.where}: {self.expected}" if self.where else f": {self.expected}"


DUPLICATE_NOTIFY = """\
escalation:
  tiers:
    - level: 1
      name: Desk
      team: desk
      notify: [l1@example.com]
      sla: {first_response: 4h, resolution_target: 24h}
      notify: [lead@example.com]
    - {level: 2, name: Engineering, team: eng, notify: [eng@example.com]}
"""

# Channels (docs/channels.md): a policy names environment variables, never a secret.
PAGER = "channels: {pagerduty: {kind: pagerduty, routing_key_env: PAGERDUTY_ROUTING_KEY}}"
SLACK_URL = "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/cccccccccccccccccccccccc"
ROUTING_KEY = "e93facc04764012d7bfb002500d5d1a6"


def with_channels(channels: str, *, tier_2: str = "", overrides: str = "") -> str:
    """TWO_TIERS with `channels` under `escalation:`, `tier_2` added to tier 2's fields,
    and `overrides` (severity_overrides items) appended."""
    text = policy_with(channels).replace(
        "notify: [eng@example.com]}", f"notify: [eng@example.com]{tier_2}}}"
    )
    return text + (f"  severity_overrides:\n    - {overrides}\n" if overrides else "")


POLICY_CASES = [
    PolicyCase("missing-field", "a tier without `name`", one_tier("level: 1, team: desk"),
               "escalation.tiers[0].name: required field is missing", "escalation.tiers[0].name", where="3:7"),
    PolicyCase("missing-tiers", "`escalation:` without `tiers`", "escalation:\n  name: support\n",
               "escalation.tiers: required field is missing", "escalation.tiers", where="2:3"),
    PolicyCase("wrong-type-level", "`level: one` (a string)", one_tier("level: one, name: Desk, team: desk"),
               "escalation.tiers[0].level: Input should be a valid integer, unable to parse string as an integer",
               "escalation.tiers[0].level", where="3:15"),
    PolicyCase("wrong-type-notify", "`notify: 5` (not a list)", one_tier("level: 1, name: Desk, team: desk, notify: 5"),
               "escalation.tiers[0].notify: Input should be a valid tuple", "escalation.tiers[0].notify", where="3:50"),
    PolicyCase("wrong-type-sla", "`sla: 4h` (a duration, not a mapping)", first_tier_sla("4h"),
               "escalation.tiers[0].sla: Input should be a valid dictionary or instance of Sla",
               "escalation.tiers[0].sla", where="3:73"),
    PolicyCase("bad-duration", "`first_response: 4 hours`", first_tier_sla("{first_response: 4 hours, resolution_target: 1d}"),
               "escalation.tiers[0].sla.first_response: cannot read duration '4 hours'; write it like 90s, 30m, 4h, 2d, 1h30m, PT4H or a number of seconds",
               "escalation.tiers[0].sla.first_response", "write it like 90s, 30m, 4h", where="3:90"),
    PolicyCase("zero-duration", "`first_response: 0s`", first_tier_sla("{first_response: 0s, resolution_target: 1d}"),
               "escalation.tiers[0].sla.first_response: duration must be positive, got '0s'",
               "escalation.tiers[0].sla.first_response", "must be positive", where="3:90"),
    PolicyCase("resolution-before-first-response", "`resolution_target` shorter than `first_response`",
               first_tier_sla("{first_response: 2h, resolution_target: 1h}"),
               "escalation.tiers[0].sla: resolution_target must not be shorter than first_response (1h < 2h)",
               "escalation.tiers[0].sla", "must not be shorter", where="3:113"),
    PolicyCase("unknown-level", "a severity override with `route_to: 5` (no such tier)",
               TWO_TIERS + "  severity_overrides:\n    - {severity: P0, route_to: 5}\n",
               "escalation.severity_overrides[0].route_to: level 5 is not a tier (levels: 1, 2)",
               "escalation.severity_overrides[0].route_to", "(levels: 1, 2)", where="6:32"),
    PolicyCase("unknown-severity", "a severity override for `P9`",
               TWO_TIERS + "  severity_overrides:\n    - {severity: P9, route_to: 2}\n",
               "escalation.severity_overrides[0].severity: Input should be 'P0', 'P1', 'P2', 'P3' or 'P4'",
               "escalation.severity_overrides[0].severity", "'P0', 'P1', 'P2', 'P3' or 'P4'", where="6:18"),
    PolicyCase("duplicate-override", "two overrides for `P0`",
               TWO_TIERS + "  severity_overrides:\n    - {severity: P0, route_to: 2}\n    - {severity: P0, route_to: 1}\n",
               "escalation.severity_overrides[1].severity: P0 is overridden twice",
               "escalation.severity_overrides[1].severity", where="7:18"),
    PolicyCase("duplicate-levels", "two tiers with `level: 1`", TWO_TIERS.replace("level: 2", "level: 1"),
               "escalation.tiers: level 1 appears twice; give each tier its own level",
               "escalation.tiers", "give each tier its own level", where="4:15"),
    PolicyCase("non-final-tier-without-sla", "tier 1 of 2 without `sla`",
               TWO_TIERS.replace(", sla: {first_response: 4h, resolution_target: 24h}", ""),
               "escalation.tiers: tier 1 (Desk) needs an sla because it is not the final tier; only the final tier may omit it (tiers[0].sla)",
               "tiers[0].sla", "only the final tier may omit it", where="3:7"),
    PolicyCase("unknown-key-typo", "`first_responce` (typo) in an sla",
               first_tier_sla("{first_responce: 4h, resolution_target: 24h}"),
               "escalation.tiers[0].sla.first_responce: unknown field; check the spelling against the policy reference in README.md (and 1 more problem)",
               "escalation.tiers[0].sla.first_responce", "check the spelling", where="3:74"),
    PolicyCase("unknown-top-level-key", "a second top-level key `tiers_extra`", TWO_TIERS + "tiers_extra: 1\n",
               "tiers_extra: unknown top-level key; only 'escalation'", "tiers_extra", "only 'escalation'", where="5:1"),
    PolicyCase("warn-at-above-1", "`warn_at: 1.5`", policy_with("warn_at: 1.5"),
               "escalation.warn_at[0]: Input should be less than 1", "escalation.warn_at[0]", where="2:12"),
    PolicyCase("warn-at-zero", "`warn_at: 0`", policy_with("warn_at: 0"),
               "escalation.warn_at[0]: Input should be greater than 0", "escalation.warn_at[0]", where="2:12"),
    PolicyCase("warn-at-empty", "`warn_at: []`", policy_with("warn_at: []"),
               "escalation.warn_at: give at least one fraction, e.g. 0.75, or remove warn_at",
               "escalation.warn_at", "e.g. 0.75", where="2:12"),
    PolicyCase("unknown-time-zone", "calendar `timezone: Mars/Olympus`", policy_with("calendar: {timezone: Mars/Olympus}"),
               "escalation.calendar.timezone: unknown time zone 'Mars/Olympus'; use an IANA name such as Europe/Berlin",
               "escalation.calendar.timezone", "use an IANA name", where="2:24"),
    PolicyCase("inverted-hours", "calendar hours `mon: 17:00-09:00`",
               policy_with("calendar: {timezone: UTC, hours: {mon: ['17:00-09:00']}}"),
               "escalation.calendar.hours: mon: '17:00-09:00' does not end after it starts; a range cannot cross midnight, so split a night shift, e.g. 22:00-24:00 and 00:00-06:00 the next day",
               "escalation.calendar.hours", "split a night shift", where="2:36"),
    PolicyCase("unknown-weekday", "calendar hours for `funday`", policy_with("calendar: {hours: {funday: ['09:00-17:00']}}"),
               "escalation.calendar.hours: unknown weekday 'funday'; use mon, tue, wed, thu, fri, sat or sun",
               "escalation.calendar.hours", "use mon, tue", where="2:21"),
    PolicyCase("repeat-every-on-non-final-tier", "`repeat_every: 1h` on tier 1 of 2",
               TWO_TIERS.replace("notify: [l1@example.com],", "notify: [l1@example.com], repeat_every: 1h,"),
               "escalation.tiers: tier 1 (Desk) sets repeat_every, which only the final tier uses (the others escalate instead)",
               "repeat_every", "only the final tier uses", where="3:82"),
    PolicyCase("notify-header-injection", 'a notify address with CR LF: `"l1@example.com\\r\\nBcc: evil@example.com"`',
               one_tier('level: 1, name: Desk, team: desk, notify: ["l1@example.com\\r\\nBcc: evil@example.com"]'),
               "escalation.tiers[0].notify[0]: 'l1@example.com\\r\\nBcc: evil@example.com' is not an email address: "
               "The part after the @-sign contains invalid characters: ':', '@', SPACE, U+000A, U+000D.",
               "escalation.tiers[0].notify[0]", where="3:51"),
    PolicyCase("unreadable-yaml", "broken YAML (an unclosed `[`)", "escalation:\n  tiers: [\n    - level: 1\n",
               "expected the node content, but found '-'", "expected the node content", where="3:5"),
    PolicyCase("empty-file", "an empty file", "",
               "escalation: expected a mapping with 'tiers'; see policies/default.yaml",
               "escalation", "see policies/default.yaml"),
    PolicyCase("top-level-list", "a top-level list of tiers", "- {level: 1, name: Desk, team: desk}\n",
               "escalation: expected a mapping with 'tiers'; see policies/default.yaml",
               "escalation", "see policies/default.yaml", where="1:1"),
    PolicyCase("not-utf8", "a binary (non-UTF-8) file", b"\xff\xfe\x00escalation",
               "cannot read the file (UnicodeDecodeError)", "cannot read the file"),
    PolicyCase("missing-file", "a path that does not exist", None,
               "file not found; pass an existing policy file", "file not found", "pass an existing policy file"),
    PolicyCase("invalid-date", "a holiday that is no date: `holidays: [2026-13-45]`",
               policy_with("calendar: {holidays: [2026-13-45]}"),
               "escalation.calendar.holidays[0]: '2026-13-45' is not a valid date (month must be in 1..12); write it as YYYY-MM-DD, e.g. 2026-12-24",
               "escalation.calendar.holidays[0]", "write it as YYYY-MM-DD", where="2:25"),
    PolicyCase("not-a-date", "a holiday that is a word: `holidays: [christmas]`",
               policy_with("calendar: {holidays: [christmas]}"),
               "escalation.calendar.holidays[0]: 'christmas' is not a valid date; write it as YYYY-MM-DD, e.g. 2026-12-24",
               "escalation.calendar.holidays[0]", "write it as YYYY-MM-DD", where="2:25"),
    PolicyCase("duplicate-yaml-key", "a tier with two `notify:` keys (a lax loader would keep the last)",
               DUPLICATE_NOTIFY, "escalation.tiers[0].notify: duplicate key (first at line 6, column 7); give each key once",
               "escalation.tiers[0].notify",
               "give each key once", where="8:7"),
    PolicyCase("boolean-level", "`level: true` (a boolean, not an integer)",
               TWO_TIERS.replace("level: 1,", "level: true,"),
               "escalation.tiers[0].level: Input should be a valid integer, not a boolean (true)",
               "escalation.tiers[0].level", where="3:15"),
    PolicyCase("boolean-route-to", "a severity override with `route_to: true`",
               TWO_TIERS + "  severity_overrides:\n    - {severity: P0, route_to: true}\n",
               "escalation.severity_overrides[0].route_to: Input should be a valid integer, not a boolean (true)",
               "escalation.severity_overrides[0].route_to", where="6:32"),
    PolicyCase("clock-duration", "`first_response: 1:30` (clock notation: YAML 1.1 read it as 90 seconds)",
               first_tier_sla("{first_response: 1:30, resolution_target: 1d}"),
               "escalation.tiers[0].sla.first_response: '1:30' is ambiguous (1 h 30 min or 1 min 30 s?); write 1h30m, 90m, 90s, PT1H30M or a number of seconds",
               "escalation.tiers[0].sla.first_response", "write 1h30m, 90m, 90s, PT1H30M", where="3:90"),
    PolicyCase("fractional-seconds", "`first_response: 0.5` (half a second)",
               first_tier_sla("{first_response: 0.5, resolution_target: 1d}"),
               "escalation.tiers[0].sla.first_response: 0.5 is not a whole number of seconds (0.5s); policy durations are whole seconds, at least 1s",
               "escalation.tiers[0].sla.first_response", "whole seconds, at least 1s", where="3:90"),
    PolicyCase("yaml-1.1-directive", "a `%YAML 1.1` directive (`yes` would be true, `1:30` would be 90)",
               "%YAML 1.1\n---\n" + TWO_TIERS,
               "%YAML 1.1: policy files are read as YAML 1.2; remove the %YAML line", "%YAML 1.1",
               "remove the %YAML line", where="1:1"),
    PolicyCase("object-tag", "an object tag: `name: !!python/object/apply:os.system [id]`",
               policy_with("name: !!python/object/apply:os.system [id]"),
               "escalation.name: the tag !!python/object/apply:os.system is not allowed in a policy; remove it",
               "escalation.name", "remove it", where="2:9"),
    PolicyCase("incomplete-notify", "`notify: [bob@]` (nothing after the @)",
               one_tier("level: 1, name: Desk, team: desk, notify: [bob@]"),
               "escalation.tiers[0].notify[0]: 'bob@' is not an email address: There must be something after the @-sign.",
               "escalation.tiers[0].notify[0]", where="3:51"),
    PolicyCase("webhook-not-http", "`webhook: ftp://hooks.example/l1` (not http or https)",
               one_tier("level: 1, name: Desk, team: desk, webhook: 'ftp://hooks.example/l1'"),
               "escalation.tiers[0].webhook: 'ftp://hooks.example/l1' is not an http(s) URL: write it as https://host/path (or http://)",
               "escalation.tiers[0].webhook", "https://host/path", where="3:51"),
    PolicyCase("unknown-channel", "a tier listing `channels: [pagerdutty]` (a typo of a defined channel)",
               with_channels(PAGER, tier_2=", channels: [pagerdutty]"),
               "escalation.tiers: tier 2 (Engineering): channels[0]: 'pagerdutty' is not one of the policy's "
               "channels (channels: pagerduty)", "channels[0]", "(channels: pagerduty)", where="5:86"),
    PolicyCase("unknown-override-channel", "a severity override with `notification: pager`, not a defined channel",
               with_channels(PAGER, overrides="{severity: P0, route_to: 2, notification: pager}"),
               "escalation.severity_overrides[0].notification: 'pager' is not one of the policy's channels "
               "(channels: pagerduty)", "escalation.severity_overrides[0].notification", where="7:49"),
    PolicyCase("inline-slack-url", "a Slack channel with its webhook URL inline (`url: https://hooks.slack.com/...`)",
               with_channels(f"channels: {{chat: {{kind: slack, url: '{SLACK_URL}'}}}}", tier_2=", channels: [chat]"),
               "escalation.channels.chat: url: a Slack incoming-webhook URL is a secret, so it never goes in a "
               "policy; put it in an environment variable on the worker and name that with url_env",
               "escalation.channels.chat: url", "name that with url_env", where="2:39"),
    PolicyCase("inline-routing-key", "a PagerDuty channel with its `routing_key` inline",
               with_channels(f"channels: {{pagerduty: {{kind: pagerduty, routing_key: {ROUTING_KEY}}}}}"),
               "escalation.channels.pagerduty: routing_key: a PagerDuty routing key is a secret, so it never goes "
               "in a policy; put it in an environment variable on the worker and name that with routing_key_env",
               "escalation.channels.pagerduty: routing_key", "name that with routing_key_env", where="2:56"),
    PolicyCase("routing-key-as-env-name", "`routing_key_env:` holding the key itself (the error must not repeat it)",
               with_channels(f"channels: {{pagerduty: {{kind: pagerduty, routing_key_env: {ROUTING_KEY}}}}}"),
               "escalation.channels.pagerduty.routing_key_env: must name an environment variable (upper-case "
               "letters, digits and _, e.g. SLACK_ONCALL_URL), not hold the secret; set the variable on the worker",
               "escalation.channels.pagerduty.routing_key_env", "set the variable on the worker", where="2:60"),
]  # fmt: skip

for _case in POLICY_CASES:
    CATALOGUE.append(
        Entry(
            POLICY,
            _case.input,
            f"`PolicyError`: {code(f'…/policy.yaml{_case.message}')}",
            f"{MODULE}::test_policy_errors[{_case.id}]",
            _case.gap,
            _case.fix,
        )
    )


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c.id, marks=gap_mark(c.gap, c.raises)) for c in POLICY_CASES]
)
def test_policy_errors(tmp_path: Path, case: PolicyCase):
    path = tmp_path / "policy.yaml"
    if isinstance(case.content, bytes):
        path.write_bytes(case.content)
    elif case.content is not None:
        path.write_text(case.content, encoding="utf-8")
    before = path.read_bytes() if path.exists() else None

    try:
        policy = load_policy(path)
    except PolicyError as error:
        message = one_line(str(error))
    else:
        raise AssertionError(f"the policy loaded without an error: {policy!r}")

    assert message.startswith(f"{path}:"), message  # the file comes first, then line:column
    assert case.field in message, f"does not name {case.field!r}: {message}"
    if case.hint:
        assert case.hint in message, f"does not say how to fix it: {message}"
    if case.gap:
        assert case.expected in message
    else:
        assert message == f"{path}{case.message}"
    # Nothing lost: loading never touches the file.
    assert (path.read_bytes() if path.exists() else None) == before


# == 2. CLI arguments ==================================================================
# Every command runs as its own process with TEMPORAL_ADDRESS pointing at a closed port:
# anything that tries to connect exits 3 ("cannot reach Temporal"), so exit 2 proves the
# input was refused before any connection was attempted.

UNREACHABLE = "cannot reach Temporal"
CONTROL = "valid-input-connects"  # not bad input: proves the port really is closed


@dataclass(frozen=True)
class CliCase:
    id: str
    input: str  # the command, as the doc shows it
    args: tuple[str, ...]  # "{tmp}" is replaced by a scratch directory
    expected: str  # the whole stderr line ("{tmp}" replaced); for a gap, a fragment
    gap: str | None = None
    fix: str | None = None


def _start(*extra: str) -> tuple[str, ...]:
    return ("start", "--case-id", "cli-bad", "--title", "VPN down", *extra)


def _review(flag: str, value: str) -> tuple[str, ...]:
    """`escalator review schedule` with valid flags, `flag` set to `value`."""
    flags = {
        "--cron": "0 9 1 * *",
        "--timezone": "Europe/Berlin",
        "--to": "supervisors@example.com",
    }
    flags[flag] = value
    return ("review", "schedule", *(part for pair in flags.items() for part in pair))


CLI_CASES = [
    CliCase("start-missing-title", "`escalator start --case-id cli-bad` (no `--title`)",
            ("start", "--case-id", "cli-bad"),
            "escalator start: the following arguments are required: --title (see `escalator start --help`)"),
    CliCase("start-bad-severity", "`escalator start … --severity P9`", _start("--severity", "P9"),
            "escalator: --severity: Input should be 'P0', 'P1', 'P2', 'P3' or 'P4'"),
    CliCase("start-case-id-with-space", "`escalator start --case-id 'bad id' …`",
            ("start", "--case-id", "bad id", "--title", "VPN down"),
            "escalator: --case-id: String should match pattern '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'"),
    CliCase("start-case-id-with-slash", "`escalator start --case-id a/b …`",
            ("start", "--case-id", "a/b", "--title", "VPN down"),
            "escalator: --case-id: String should match pattern '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'"),
    CliCase("start-missing-policy-file", "`escalator start … --policy nope.yaml`", _start("--policy", "nope.yaml"),
            "escalator: nope.yaml: file not found; pass an existing policy file"),
    CliCase("start-invalid-policy-file", "`escalator start … --policy dup.yaml` (two tiers with level 1)",
            _start("--policy", "{tmp}/dup.yaml"),
            "escalator: {tmp}/dup.yaml:4:15: escalation.tiers: level 1 appears twice; give each tier its own level"),
    CliCase("start-bad-customer-email", "`escalator start … --customer-email jane`", _start("--customer-email", "jane"),
            "escalator: --customer-email: 'jane' is not an email address: An email address must have an @-sign."),
    CliCase("start-description-file-missing", "`escalator start … --description-file missing.txt`",
            _start("--description-file", "{tmp}/missing.txt"),
            "escalator: --description-file: cannot read {tmp}/missing.txt (FileNotFoundError)"),
    CliCase("start-description-over-64KiB", "`escalator start … --description-file big.txt` (70,000 bytes)",
            _start("--description-file", "{tmp}/big.txt"),
            "escalator: --description: is 70000 bytes; the limit is 65536 bytes, so attach long logs elsewhere"),
    CliCase("start-title-over-200", "`escalator start … --title <201 characters>`",
            ("start", "--case-id", "cli-bad", "--title", "t" * 201),
            "escalator: --title: String should have at most 200 characters"),
    CliCase("start-data-not-key-value", "`escalator start … --data novalue`", _start("--data", "novalue"),
            "escalator: --data: 'novalue' is not KEY=VALUE"),
    CliCase("claim-bad-role", "`escalator claim 123 --user a --role boss`", ("claim", "123", "--user", "a", "--role", "boss"),
            "escalator: --role: Input should be 'viewer', 'engineer', 'admin', 'owner' or 'customer'"),
    CliCase("claim-empty-user", "`escalator claim 123 --user ''`", ("claim", "123", "--user", ""),
            "escalator: --user: String should have at least 1 character"),
    CliCase("up-bad-port", "`escalator up --port http`", ("up", "--port", "http"),
            "escalator up: argument --port: 'http' is not a port number (see `escalator up --help`)"),
    CliCase("up-port-out-of-range", "`escalator up --port 70000`", ("up", "--port", "70000"),
            "escalator up: argument --port: 70000 is not a port number (1-65535) (see `escalator up --help`)"),
    CliCase("unknown-subcommand", "`escalator frobnicate`", ("frobnicate",),
            "escalator: argument command: invalid choice: 'frobnicate' (choose from 'up', 'worker', 'keygen', "
            "'codec-server', 'start', 'claim', 'resolve', 'escalate', 'note', 'hold', 'resume', 'deescalate', "
            "'severity', 'reopen', 'draft', 'status', 'queue', 'report', 'review', 'ledger', 'policy', 'simulate', 'api', "
            "'token', 'list') (see `escalator --help`)"),
    CliCase("simulate-policy-missing", "`escalator simulate --policy nope.yaml`",
            ("simulate", "--policy", "nope.yaml"),
            "escalator: nope.yaml: file not found; pass an existing policy file"),
    CliCase("simulate-bad-assumption", "`escalator simulate --policy p.yaml --assume whenever`",
            ("simulate", "--policy", "policies/default.yaml", "--assume", "whenever"),
            "escalator simulate: argument --assume: invalid choice: 'whenever' (choose from "
            "'same-time', 'same-delay') (see `escalator simulate --help`)"),
    CliCase("review-unknown-timezone", "`escalator review schedule … --timezone Europe/Berln`",
            _review("--timezone", "Europe/Berln"),
            "escalator: --timezone: 'Europe/Berln' is not a time zone, e.g. Europe/Berlin"),
    CliCase("review-bad-cron", "`escalator review schedule --cron '0 25 1 * *' …`", _review("--cron", "0 25 1 * *"),
            "escalator: --cron: '0 25 1 * *': hour '25' is not valid (use *, a number from 0 to 23, a range a-b, "
            'a list a,b or a step */n), e.g. "0 9 1 * *" (09:00 on the 1st of every month)'),
    CliCase("review-bad-recipient", "`escalator review schedule … --to supervisors`", _review("--to", "supervisors"),
            "escalator: --to: 'supervisors' is not an email address: An email address must have an @-sign."),
    CliCase("review-backfill-not-positive", "`escalator review schedule … --backfill 0`", _review("--backfill", "0"),
            "escalator: --backfill: '0' is not a positive whole number of months, e.g. --backfill 3"),
    CliCase("severity-P9", "`escalator severity 123 --user a P9`", ("severity", "123", "--user", "a", "P9"),
            "escalator: severity: 'P9' is not one of P0, P1, P2, P3, P4"),
    CliCase("list-bad-status", "`escalator list --status pending`", ("list", "--status", "pending"),
            "escalator list: argument --status: invalid choice: 'pending' (choose from 'open', 'claimed', 'resolved') "
            "(see `escalator list --help`)"),
    CliCase("draft-bad-audience", "`escalator draft 123 --audience everyone`", ("draft", "123", "--audience", "everyone"),
            "escalator draft: argument --audience: invalid choice: 'everyone' (choose from 'ticket_notes', "
            "'client_update', 'email_draft') (see `escalator draft --help`)"),
    CliCase("escalate-without-reason", "`escalator escalate 123 --user a --tried x` (no `--reason`)",
            ("escalate", "123", "--user", "a", "--tried", "x"),
            "escalator: --reason is required: say why the case needs the next tier"),
    CliCase("escalate-without-tried", "`escalator escalate 123 --user a --reason 'needs DBA'` (no `--tried`)",
            ("escalate", "123", "--user", "a", "--reason", "needs DBA"),
            "escalator: --tried is required: list at least one thing already tried"),
    CliCase("hold-until-not-a-time", "`escalator hold 123 --user a --reason logs --until tomorrow`",
            ("hold", "123", "--user", "a", "--reason", "logs", "--until", "tomorrow"),
            "escalator: --until: 'tomorrow' is not an ISO time like 2026-12-01T09:00Z"),
    CliCase("hold-without-reason", "`escalator hold 123 --user a` (no `--reason`)", ("hold", "123", "--user", "a"),
            "escalator: --reason is required: say what the case is waiting for"),
    CliCase("deescalate-without-reason", "`escalator deescalate 123 --user a` (no `--reason`)",
            ("deescalate", "123", "--user", "a"),
            "escalator: --reason is required: say why the lower tier can take over"),
    CliCase("note-over-16KiB", "`escalator note 123 --user a --text <17,000 bytes>`",
            ("note", "123", "--user", "a", "--text", "n" * 17_000),
            "escalator: --text: is 17000 bytes; the limit is 16384 bytes, so attach long logs elsewhere"),
    CliCase("claim-bad-case-id", "`escalator claim a/b --user a`", ("claim", "a/b", "--user", "a"),
            "escalator: case id 'a/b' is not valid: use letters, digits, '.', '_' or '-'"),
    CliCase("status-bad-case-id", "`escalator status a/b`", ("status", "a/b"),
            "escalator: case id 'a/b' is not valid: use letters, digits, '.', '_' or '-'"),
    CliCase("start-data-over-16KiB", "`escalator start … --data logs=<17,000 bytes>`",
            _start("--data", "logs=" + "d" * 17_000),
            "escalator: --data: is 17011 bytes as JSON; the limit is 16384 bytes, so attach long logs elsewhere"),
    CliCase("start-policy-with-invalid-date", "`escalator start … --policy holiday.yaml` (`holidays: [2026-13-45]`)",
            _start("--policy", "{tmp}/holiday.yaml"),
            "escalator: {tmp}/holiday.yaml:2:25: escalation.calendar.holidays[0]: '2026-13-45' is not a valid date "
            "(month must be in 1..12); write it as YYYY-MM-DD, e.g. 2026-12-24"),
    CliCase("start-policy-with-unknown-channel", "`escalator start … --policy pager.yaml` (`channels: [pagerdutty]`)",
            _start("--policy", "{tmp}/pager.yaml"),
            "escalator: {tmp}/pager.yaml:5:86: escalation.tiers: tier 2 (Engineering): channels[0]: 'pagerdutty' "
            "is not one of the policy's channels (channels: pagerduty)"),
    CliCase("start-policy-with-inline-routing-key", "`escalator start … --policy key.yaml` (`routing_key:` inline)",
            _start("--policy", "{tmp}/key.yaml"),
            "escalator: {tmp}/key.yaml:2:56: escalation.channels.pagerduty: routing_key: a PagerDuty routing key "
            "is a secret, so it never goes in a policy; put it in an environment variable on the worker and name "
            "that with routing_key_env"),
]  # fmt: skip

for _case in CLI_CASES:
    CATALOGUE.append(
        Entry(
            CLI,
            _case.input,
            f"exit 2, before connecting: {code(_case.expected.replace('{tmp}', '…'))}",
            f"{MODULE}::test_cli_errors[{_case.id}]",
            _case.gap,
            _case.fix,
        )
    )


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, str]]:
    """Run every CLI row (and the control) at once: independent processes, so in parallel."""
    tmp = tmp_path_factory.mktemp("cli-bad-input")
    (tmp / "big.txt").write_text("d" * 70_000, encoding="utf-8")
    (tmp / "dup.yaml").write_text(TWO_TIERS.replace("level: 2", "level: 1"), encoding="utf-8")
    (tmp / "holiday.yaml").write_text(
        policy_with("calendar: {holidays: [2026-13-45]}"), encoding="utf-8"
    )
    (tmp / "pager.yaml").write_text(
        with_channels(PAGER, tier_2=", channels: [pagerdutty]"), encoding="utf-8"
    )
    (tmp / "key.yaml").write_text(
        with_channels(f"channels: {{pagerduty: {{kind: pagerduty, routing_key: {ROUTING_KEY}}}}}"),
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k != "ESCALATOR_ENCRYPTION_KEY"}
    env["TEMPORAL_ADDRESS"] = f"127.0.0.1:{free_port()}"  # nothing listens there

    def run(args: tuple[str, ...]) -> subprocess.CompletedProcess:
        argv = [a.replace("{tmp}", str(tmp)) for a in args]
        return subprocess.run(
            [sys.executable, "-m", "escalator.cli", *argv],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
        )  # fmt: skip

    jobs = {case.id: case.args for case in CLI_CASES}
    jobs[CONTROL] = _start("--policy", "policies/default.yaml")
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = dict(zip(jobs, pool.map(run, jobs.values()), strict=True))
    return {key: (result, str(tmp)) for key, result in results.items()}


def test_cli_control_valid_input_tries_to_connect(cli_runs):
    """The premise of the CLI rows: with valid input the CLI does connect, and fails (3)."""
    result, _ = cli_runs[CONTROL]
    assert result.returncode == 3, result.stderr
    assert UNREACHABLE in one_line(result.stderr)


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c.id, marks=gap_mark(c.gap)) for c in CLI_CASES]
)
def test_cli_errors(cli_runs, case: CliCase):
    result, tmp = cli_runs[case.id]
    assert "Traceback" not in result.stderr, result.stderr[-500:]
    assert UNREACHABLE not in result.stderr, f"validated only after connecting: {result.stderr}"
    assert result.returncode == 2, result.stderr
    line = one_line(result.stderr)
    expected = case.expected.replace("{tmp}", tmp)
    if case.gap:
        assert expected in line
    else:
        assert line == expected
    assert result.stdout == ""  # nothing was started or printed as if it had worked


# == 3. signal and update payloads ====================================================
# On the time-skipping server, against a worker whose activities only record.


async def settled(desk: Desk, case_id: str, **fields):
    """Start a case and return its status once the start-up mail is on record, so a
    later comparison sees only what the bad input did."""
    await desk.start(case_id, **fields)

    async def ready():
        status = await desk.status(case_id)
        return status if any(e.kind == "notification_sent" for e in status.timeline) else None

    return await eventually(ready)


async def execution_status(client, case_id: str) -> WorkflowExecutionStatus | None:
    """The run's status (raw RPC: `describe()` chokes on the test server's attributes)."""
    request = DescribeWorkflowExecutionRequest(
        namespace=client.namespace, execution=WorkflowExecution(workflow_id=f"case-{case_id}")
    )
    try:
        response = await client.workflow_service.describe_workflow_execution(request)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return WorkflowExecutionStatus(response.workflow_execution_info.status)


async def timeline_grows(desk: Desk, case_id: str, before, count: int = 1):
    """The status once `count` entries were added; fails at once if the case stopped."""

    async def grown():
        state = await execution_status(desk.env.client, case_id)
        if state != WorkflowExecutionStatus.RUNNING:
            raise AssertionError(f"the bad input stopped the case: its workflow is {state}")
        status = await desk.status(case_id)
        return status if len(status.timeline) >= len(before.timeline) + count else None

    return await eventually(grown, within=10)


def assert_unchanged(before, after, *, added: tuple[str, ...] = ()) -> None:
    """Same status, apart from timeline entries of the given kinds at the end."""
    kept, new = after.timeline[: len(before.timeline)], after.timeline[len(before.timeline) :]
    assert kept == before.timeline
    assert tuple(e.kind for e in new) == added, new
    assert after.timeline_total == before.timeline_total + len(added)
    # as_of is the moment a read describes, not the case's state; a running hold
    # counts on between two reads.
    ignore = {"timeline", "timeline_total", "as_of"}
    if before.hold is not None:
        ignore.add("total_hold_seconds")
    assert after.model_dump(exclude=ignore) == before.model_dump(exclude=ignore)


async def assert_still_works(desk: Desk, case_id: str) -> None:
    """Nothing lost: the case takes a valid action afterwards."""
    answer = await desk.escalator.claim(case_id, actor("alice"))
    assert (answer.message, answer.state, answer.assignee) == ("claimed", "claimed", "alice")


async def forget_if_stopped(desk: Desk, case_id: str) -> None:
    """A gap row may fail the case's workflow; then there is nothing to close at teardown."""
    state = await execution_status(desk.env.client, case_id)
    if state not in (None, WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED):
        desk.started.remove(f"case-{case_id}")


async def updates_accepted(handle) -> int:
    """Updates that got past validation leave an `accepted` event; refused ones do not."""
    history = await handle.fetch_history()
    return sum(
        e.HasField("workflow_execution_update_accepted_event_attributes") for e in history.events
    )


ENGINEER = {"user": "eve", "role": "engineer"}


@dataclass(frozen=True)
class SignalCase:
    id: str
    input: str
    signal: str
    args: tuple  # the payloads sent: usually one
    expected: str  # the rejected entry's detail (for a gap, a fragment of it)
    actor: str | None = None  # who the rejected entry names
    gap: str | None = None
    fix: str | None = None


SIGNAL_CASES = [
    SignalCase("role-not-a-role", "`claim` with `role: superuser`", "claim",
               ({"actor": {"user": "mallory", "role": "superuser"}},),
               "claim refused: malformed payload: actor.role: Input should be 'viewer', 'engineer', 'admin', 'owner' or 'customer'",
               "mallory"),
    SignalCase("text-not-a-string", "`add_note` with `text: 42`", "add_note", ({"actor": ENGINEER, "text": 42},),
               "add_note refused: malformed payload: text: Input should be a valid string", "eve"),
    SignalCase("payload-not-an-object", '`claim` with the payload `"not even an object"`', "claim",
               ("not even an object",), "claim refused: malformed payload: Input should be an object"),
    SignalCase("payload-null", "`claim` with the payload `null`", "claim", (None,),
               "claim refused: malformed payload: Input should be an object"),
    SignalCase("missing-actor", "`claim` with `{}`", "claim", ({},),
               "claim refused: malformed payload: actor: Field required"),
    SignalCase("steps-not-a-list", '`escalate` with `steps_taken: "tried"` (a string)', "escalate",
               ({"actor": ENGINEER, "note": {"reason": "needs DBA", "steps_taken": "tried"}},),
               "escalate refused: malformed payload: note.steps_taken: Input should be a valid array", "eve"),
    SignalCase("until-without-a-zone", '`hold` with `until: "2026-12-24T09:00:00"` (no time zone)', "hold",
               ({"actor": ENGINEER, "reason": "waiting on logs", "until": "2026-12-24T09:00:00"},),
               "hold refused: malformed payload: until: Input should have timezone info", "eve"),
    SignalCase("until-not-a-time", '`hold` with `until: "tomorrow"`', "hold",
               ({"actor": ENGINEER, "reason": "waiting on logs", "until": "tomorrow"},),
               "hold refused: malformed payload: until: Input should be a valid datetime or date, input is too short",
               "eve"),
    SignalCase("note-over-16KiB", "`add_note` with 17,000 bytes of text", "add_note",
               ({"actor": ENGINEER, "text": "n" * 17_000},),
               "add_note refused: malformed payload: text: Value error, is 17000 bytes; the limit is 16384 bytes, so attach long logs elsewhere",
               "eve"),
    SignalCase("actor-not-an-object", '`claim` with `actor: "alice"`', "claim", ({"actor": "alice"},),
               "claim refused: malformed payload: actor: Input should be an object"),
    SignalCase("user-not-a-string", "`claim` with `user: 42`", "claim", ({"actor": {"user": 42, "role": "engineer"}},),
               "claim refused: malformed payload: actor.user: Input should be a valid string"),
    SignalCase("no-payload", "`claim` sent with no argument", "claim", (),
               "claim refused: malformed payload: expected one argument, got 0"),
    SignalCase("two-payloads", "`claim` sent with two arguments", "claim",
               ({"actor": ENGINEER}, {"actor": ENGINEER}),
               "claim refused: malformed payload: expected one argument, got 2", "eve"),
    SignalCase("huge-user-name", "`claim` with a user name of 100,000 characters", "claim",
               ({"actor": {"user": "u" * 100_000, "role": "engineer"}},),
               "claim refused: malformed payload: actor.user: String should have at most 200 characters",
               "u" * 199 + "…"),
    SignalCase("steps-over-the-limit", "`escalate` with 11 `steps_taken`", "escalate",
               ({"actor": ENGINEER, "note": {"reason": "needs DBA", "steps_taken": [f"step {i}" for i in range(11)]}},),
               "escalate refused: malformed payload: note: Value error, steps_taken has 11 items; the limit is 10, "
               "so merge related ones or attach the rest as a note", "eve"),
]  # fmt: skip

for _case in SIGNAL_CASES:
    CATALOGUE.append(
        Entry(
            MESSAGES,
            f"signal {_case.input}",
            f"timeline `rejected`: {code(_case.expected)}; the case goes on",
            f"{MODULE}::test_signal_payloads[{_case.id}]",
            _case.gap,
            _case.fix,
        )
    )


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c.id, marks=gap_mark(c.gap)) for c in SIGNAL_CASES]
)
async def test_signal_payloads(desk: Desk, case: SignalCase):
    case_id = f"sig-{case.id}"
    before = await settled(desk, case_id)
    handle = desk.env.client.get_workflow_handle(f"case-{case_id}")
    try:
        await handle.signal(case.signal, args=list(case.args))
        after = await timeline_grows(desk, case_id, before)
        assert_unchanged(before, after, added=("rejected",))
        rejected = after.timeline[-1]
        detail = one_line(rejected.detail)
        if case.gap:  # the wording (and the actor named) is up to the fix
            assert detail.startswith(case.expected), detail
        else:
            assert (detail, rejected.actor) == (case.expected, case.actor)
        await assert_still_works(desk, case_id)
    finally:
        await forget_if_stopped(desk, case_id)


@row(MESSAGES, "raw update `try_claim` with `role: superuser` (bypassing EscalatorClient)",
     "update rejected, no history, status unchanged; the message is one line naming `actor.role`")  # fmt: skip
async def test_update_with_a_malformed_payload(desk: Desk):
    before = await settled(desk, "upd-malformed")
    handle = desk.env.client.get_workflow_handle("case-upd-malformed")
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            "try_claim", {"actor": {"user": "mallory", "role": "superuser"}}
        )
    assert_unchanged(before, await desk.status("upd-malformed"))
    assert await updates_accepted(handle) == 0
    await assert_still_works(desk, "upd-malformed")
    message = one_line(refused.value.cause.message)
    assert "actor.role" in message


@row(MESSAGES, "`claim` on a case id that does not exist",
     "`CaseNotFound`: `case no-such-case does not exist; check the case id`; no case is created")  # fmt: skip
async def test_update_on_an_unknown_case(desk: Desk):
    with pytest.raises(CaseNotFound) as missing:
        await desk.escalator.claim("no-such-case", actor("alice"))
    assert one_line(str(missing.value)) == "case no-such-case does not exist; check the case id"
    assert await execution_status(desk.env.client, "no-such-case") is None
    with pytest.raises(CaseNotFound):
        await desk.status("no-such-case")


@row(MESSAGES, "`claim` on a case that was resolved and has completed",
     "`ActionRefused`: `case upd-closed is closed (completed); it takes no more actions`; status and outcome unchanged")  # fmt: skip
async def test_update_on_a_closed_case(desk: Desk):
    await settled(desk, "upd-closed")
    await desk.escalator.resolve("upd-closed", actor("alice"), "fixed")
    outcome = await desk.escalator.outcome("upd-closed")
    before = await desk.status("upd-closed")
    with pytest.raises(ActionRefused) as refused:
        await desk.escalator.claim("upd-closed", actor("bob"))
    assert one_line(str(refused.value)) == (
        "case upd-closed is closed (completed); it takes no more actions"
    )
    assert_unchanged(before, await desk.status("upd-closed"))
    assert await desk.escalator.outcome("upd-closed") == outcome  # nothing lost


@row(MESSAGES, "`claim` by a `viewer`",
     "`ActionRefused`: `rejected: victor is a viewer; viewers can read cases but not act on them`; audited as `rejected` in the timeline")  # fmt: skip
async def test_update_by_a_viewer_is_refused_and_audited(desk: Desk):
    before = await settled(desk, "upd-viewer")
    with pytest.raises(ActionRefused) as refused:
        await desk.escalator.claim("upd-viewer", actor("victor", role="viewer"))
    assert one_line(str(refused.value)) == (
        "rejected: victor is a viewer; viewers can read cases but not act on them"
    )
    after = await desk.status("upd-viewer")
    assert_unchanged(before, after, added=("rejected",))
    assert (after.timeline[-1].actor, after.timeline[-1].detail) == (
        "victor",
        "claim refused: victor is a viewer; viewers can read cases but not act on them",
    )
    await assert_still_works(desk, "upd-viewer")


@row(MESSAGES, "`resolve` by a user of another account",
     "`ActionRefused`: `rejected: mallory belongs to account 'other-co', not to this case's account`; audited")  # fmt: skip
async def test_update_from_another_account_is_refused_and_audited(desk: Desk):
    before = await settled(desk, "upd-account")
    with pytest.raises(ActionRefused) as refused:
        await desk.escalator.resolve("upd-account", actor("mallory", account="other-co"), "closing")
    assert one_line(str(refused.value)) == (
        "rejected: mallory belongs to account 'other-co', not to this case's account"
    )
    after = await desk.status("upd-account")
    assert_unchanged(before, after, added=("rejected",))
    assert after.timeline[-1].actor == "mallory"
    await assert_still_works(desk, "upd-account")


@row(MESSAGES, "`escalate` with a reason but no `steps_taken` (via EscalatorClient, and as a raw update)",
     "`InvalidInput`: `note.steps_taken is required: list at least one thing already tried`; a raw update is rejected by the validator with the same reason, no history")  # fmt: skip
async def test_escalate_without_steps(desk: Desk):
    before = await settled(desk, "upd-steps")
    note = {"reason": "needs backend access", "steps_taken": []}
    with pytest.raises(InvalidInput) as invalid:
        await desk.escalator.escalate("upd-steps", actor("alice"), note)
    reason = "note.steps_taken is required: list at least one thing already tried"
    assert one_line(str(invalid.value)) == reason
    handle = desk.env.client.get_workflow_handle("case-upd-steps")
    request = EscalateRequest(actor=actor("alice"), note=EscalationNote(**note))
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(EscalationWorkflow.try_escalate, request)
    assert one_line(refused.value.cause.message) == f"rejected: {reason}"
    assert_unchanged(before, await desk.status("upd-steps"))
    assert await updates_accepted(handle) == 0
    await assert_still_works(desk, "upd-steps")


@row(MESSAGES, "`hold` without a reason (via EscalatorClient, and as a raw update)",
     "`InvalidInput`: `reason is required: say what the case is waiting for`; a raw update is rejected with the same reason, no history")  # fmt: skip
async def test_hold_without_a_reason(desk: Desk):
    before = await settled(desk, "upd-hold")
    with pytest.raises(InvalidInput) as invalid:
        await desk.escalator.hold("upd-hold", actor("alice"), "  ")
    reason = "reason is required: say what the case is waiting for"
    assert one_line(str(invalid.value)) == reason
    handle = desk.env.client.get_workflow_handle("case-upd-hold")
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            EscalationWorkflow.try_hold, HoldRequest(actor=actor("alice"), reason="")
        )
    assert one_line(refused.value.cause.message) == f"rejected: {reason}"
    after = await desk.status("upd-hold")
    assert_unchanged(before, after)
    assert after.hold is None and after.next_deadline is not None  # the clocks still run
    assert await updates_accepted(handle) == 0
    await assert_still_works(desk, "upd-hold")


@row(MESSAGES, "`deescalate` a case on the lowest tier",
     "`ActionRefused`: `rejected: the case is on the lowest tier; there is no tier to return it to`")  # fmt: skip
async def test_deescalate_from_the_lowest_tier(desk: Desk):
    before = await settled(desk, "upd-lowest")
    with pytest.raises(ActionRefused) as refused:
        await desk.escalator.deescalate("upd-lowest", actor("alice", role="admin"), "back to L1")
    assert one_line(str(refused.value)) == (
        "rejected: the case is on the lowest tier; there is no tier to return it to"
    )
    assert_unchanged(before, await desk.status("upd-lowest"))
    await assert_still_works(desk, "upd-lowest")


@row(MESSAGES, "`deescalate` to `to_level: 7` (no such tier) from L2",
     "`ActionRefused`: `rejected: to_level 7 is not a lower tier (choose one of: 1)`")  # fmt: skip
async def test_deescalate_to_a_missing_tier(desk: Desk):
    before = await settled(desk, "upd-to-level", severity="P2")  # P2 starts at L2
    assert before.tier_level == 2
    with pytest.raises(ActionRefused) as refused:
        await desk.escalator.deescalate(
            "upd-to-level", actor("alice", role="admin"), "monitor", to_level=7
        )
    assert one_line(str(refused.value)) == (
        "rejected: to_level 7 is not a lower tier (choose one of: 1)"
    )
    assert_unchanged(before, await desk.status("upd-to-level"))
    await assert_still_works(desk, "upd-to-level")


@row(MESSAGES, "`reopen` a case that is not resolved",
     "`ActionRefused`: `rejected: the case is not resolved, so there is nothing to reopen`")  # fmt: skip
async def test_reopen_an_unresolved_case(desk: Desk):
    before = await settled(desk, "upd-reopen")
    with pytest.raises(ActionRefused) as refused:
        await desk.escalator.reopen("upd-reopen", actor("alice"), "again")
    assert one_line(str(refused.value)) == (
        "rejected: the case is not resolved, so there is nothing to reopen"
    )
    assert_unchanged(before, await desk.status("upd-reopen"))
    await assert_still_works(desk, "upd-reopen")


@row(MESSAGES, "`set_severity` to `P9`",
     "`InvalidInput`: `set_severity: severity: Input should be 'P0', 'P1', 'P2', 'P3' or 'P4'`")  # fmt: skip
async def test_set_an_unknown_severity(desk: Desk):
    before = await settled(desk, "upd-severity")
    with pytest.raises(InvalidInput) as invalid:
        await desk.escalator.set_severity("upd-severity", actor("alice"), "P9")
    assert one_line(str(invalid.value)) == (
        "set_severity: severity: Input should be 'P0', 'P1', 'P2', 'P3' or 'P4'"
    )
    assert_unchanged(before, await desk.status("upd-severity"))
    await assert_still_works(desk, "upd-severity")


# == 4. content ========================================================================


async def assert_id_is_free(desk: Desk, case_id: str) -> None:
    """Nothing was started under the refused id, and a valid start with it works."""
    assert await execution_status(desk.env.client, case_id) is None
    await desk.start(case_id)
    status = await desk.status(case_id)
    assert (status.case_id, status.state) == (case_id, "open")


def start_fields(case_id: str, **fields) -> dict:
    return {"case_id": case_id, "title": "VPN down", "policy": DEFAULT_POLICY, **fields}


def policy_json(channels: dict, *, engineering: tuple[str, ...] = ()) -> dict:
    """The default policy as JSON (what a Python caller or a raw client sends), with
    `channels` for its override labels and `engineering` as L3's channels."""
    policy = DEFAULT_POLICY.model_dump(mode="json")
    policy["channels"] = channels
    policy["tiers"][2]["channels"] = list(engineering)
    return policy


CHANNELS = {
    "pagerduty": {"kind": "pagerduty", "routing_key_env": "PAGERDUTY_ROUTING_KEY"},
    "slack_oncall": {"kind": "slack", "url_env": "SLACK_ONCALL_URL"},
    "slack_channel": {"kind": "slack", "url_env": "SLACK_CHANNEL_URL"},
}
UNKNOWN_CHANNEL = policy_json(CHANNELS, engineering=("pagerdutty",))
UNKNOWN_CHANNEL_REASON = (
    "policy.tiers: tier 3 (Engineering): channels[0]: 'pagerdutty' is not one of the policy's "
    "channels (channels: pagerduty, slack_channel, slack_oncall)"
)
INLINE_KEY = policy_json(
    {**CHANNELS, "pagerduty": {"kind": "pagerduty", "routing_key": ROUTING_KEY}},
    engineering=("pagerduty",),
)
INLINE_KEY_REASON = (
    "policy.channels.pagerduty: routing_key: a PagerDuty routing key is a secret, so it never "
    "goes in a policy; put it in an environment variable on the worker and name that with "
    "routing_key_env"
)


@dataclass(frozen=True)
class RefusedStart:
    id: str
    input: str
    fields: dict
    expected: str


REFUSED_STARTS = [
    RefusedStart("description-over-64KiB", "a description of 64 KiB + 1 byte",
                 {"description": "x" * (64 * 1024 + 1)},
                 "case: description: is 65537 bytes; the limit is 65536 bytes, so attach long logs elsewhere"),
    RefusedStart("description-over-64KiB-multibyte", "a description of 33,000 `ё` (33,000 characters, 66,000 bytes)",
                 {"description": "ё" * 33_000},
                 "case: description: is 66000 bytes; the limit is 65536 bytes, so attach long logs elsewhere"),
    RefusedStart("unknown-severity", "severity `P9`", {"severity": "P9"},
                 "case: severity: Input should be 'P0', 'P1', 'P2', 'P3' or 'P4'"),
    RefusedStart("title-over-200", "a title of 201 characters", {"title": "t" * 201},
                 "case: title: String should have at most 200 characters"),
    RefusedStart("empty-title", "an empty title", {"title": ""},
                 "case: title: String should have at least 1 character"),
    RefusedStart("customer-email-header-injection", 'customer email `"jane@acme.example\\r\\nBcc: evil@example.com"`',
                 {"customer": {"email": "jane@acme.example\r\nBcc: evil@example.com"}},
                 "case: customer.email: 'jane@acme.example\\r\\nBcc: evil@example.com' is not an email address: "
                 "The part after the @-sign contains invalid characters: ':', '@', SPACE, U+000A, U+000D."),
    RefusedStart("policy-unknown-channel", "a policy whose L3 lists `channels: [pagerdutty]`",
                 {"policy": UNKNOWN_CHANNEL}, f"case: {UNKNOWN_CHANNEL_REASON}"),
    RefusedStart("policy-inline-routing-key", "a policy with a PagerDuty `routing_key` inline (not repeated)",
                 {"policy": INLINE_KEY}, f"case: {INLINE_KEY_REASON}"),
]  # fmt: skip

for _case in REFUSED_STARTS:
    CATALOGUE.append(
        Entry(
            CONTENT,
            f"`start_case` with {_case.input}",
            f"`InvalidInput`: {code(_case.expected)}; nothing started, the id stays free",
            f"{MODULE}::test_refused_start[{_case.id}]",
        )
    )


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in REFUSED_STARTS])
async def test_refused_start(desk: Desk, case: RefusedStart):
    case_id = f"start-{case.id}"
    with pytest.raises(InvalidInput) as invalid:
        await desk.escalator.start_case(start_fields(case_id, **case.fields))
    assert one_line(str(invalid.value)) == case.expected
    await assert_id_is_free(desk, case_id)


BAD_IDS = {"slash": "a/b", "space": "a b"}
for _name, _bad_id in BAD_IDS.items():
    CATALOGUE.append(
        Entry(
            CONTENT,
            f"case id `{_bad_id}` (start, status and claim)",
            "`InvalidInput`: start: `case: case_id: String should match pattern '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'`; "
            f"actions: `case id '{_bad_id}' is not valid: use letters, digits, '.', '_' or '-'`",
            f"{MODULE}::test_case_id_is_refused[{_name}]",
        )
    )


@pytest.mark.parametrize("bad_id", list(BAD_IDS.values()), ids=list(BAD_IDS))
async def test_case_id_is_refused(desk: Desk, bad_id: str):
    with pytest.raises(InvalidInput) as invalid:
        await desk.escalator.start_case(start_fields(bad_id))
    assert one_line(str(invalid.value)) == (
        "case: case_id: String should match pattern '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'"
    )
    action = f"case id {bad_id!r} is not valid: use letters, digits, '.', '_' or '-'"
    for attempt in (desk.status(bad_id), desk.escalator.claim(bad_id, actor("alice"))):
        with pytest.raises(InvalidInput) as invalid:
            await attempt
        assert one_line(str(invalid.value)) == action
    assert await execution_status(desk.env.client, bad_id) is None  # nothing started


@row(CONTENT, "`add_note` with 16 KiB + 1 byte of text",
     "`InvalidInput`: `note: text: is 16385 bytes; the limit is 16384 bytes, so attach long logs elsewhere`; status unchanged, a valid note then works")  # fmt: skip
async def test_note_over_16KiB_is_refused(desk: Desk):
    before = await settled(desk, "note-big")
    with pytest.raises(InvalidInput) as invalid:
        await desk.escalator.add_note("note-big", actor("alice"), "n" * (16 * 1024 + 1))
    assert one_line(str(invalid.value)) == (
        "note: text: is 16385 bytes; the limit is 16384 bytes, so attach long logs elsewhere"
    )
    assert_unchanged(before, await desk.status("note-big"))
    answer = await desk.escalator.add_note("note-big", actor("alice"), "n" * (16 * 1024))
    assert answer.message == "note added"
    assert (await desk.status("note-big")).notes_total == 1


BIG_DATA = {"logs": "x" * (3 * 1024 * 1024)}  # over Temporal's 2 MiB blob limit
BIG_DATA_BYTES = len('{"logs":""}') + 3 * 1024 * 1024


@row(CONTENT, "`start_case` with 3 MiB in `data` (real dev server)",
     f"`InvalidInput`: `case: data: is {BIG_DATA_BYTES} bytes as JSON; the limit is 16384 bytes, so attach "
     "long logs elsewhere`, before anything is sent; nothing started, the id stays free")  # fmt: skip
async def test_data_over_the_payload_limit(dev_env):
    escalator = EscalatorClient(dev_env.client, unique_queue("nobody-polls"))
    fields = start_fields("data-big", data=BIG_DATA)
    try:
        with pytest.raises(InvalidInput) as invalid:
            await escalator.start_case(fields)
        assert one_line(str(invalid.value)) == (
            f"case: data: is {BIG_DATA_BYTES} bytes as JSON; the limit is 16384 bytes, "
            "so attach long logs elsewhere"
        )
        assert await execution_status(dev_env.client, "data-big") is None
        # At the limit it starts (and nothing else in the case comes near its own bound).
        at_limit = {"logs": "x" * (16 * 1024 - len('{"logs":""}'))}
        await escalator.start_case(start_fields("data-big", data=at_limit))
        assert await execution_status(dev_env.client, "data-big") is not None
    finally:
        if await execution_status(dev_env.client, "data-big") is not None:
            await dev_env.client.get_workflow_handle("case-data-big").terminate("test end")


@row(CONTENT, "`start_case` that Temporal itself refuses as too large (the edge check bypassed; real dev server)",
     "`InvalidInput`: `case data-huge: Temporal refused it: Blob data size exceeds limit.`, one line, not a raw "
     "`RPCError`; nothing started")  # fmt: skip
async def test_a_server_side_size_refusal_is_one_line(dev_env, monkeypatch):
    import starter

    monkeypatch.setattr(starter, "case_input_problem", lambda case: None)  # the backstop alone
    escalator = EscalatorClient(dev_env.client, unique_queue("nobody-polls"))
    with pytest.raises(InvalidInput) as invalid:
        await escalator.start_case(start_fields("data-huge", data=BIG_DATA))
    assert one_line(str(invalid.value)) == (
        "case data-huge: Temporal refused it: Blob data size exceeds limit."
    )
    assert await execution_status(dev_env.client, "data-huge") is None


# -- content that is accepted, and must arrive intact and harmless -------------------
# These run the real send_email activity against a real SMTP server on loopback.


@pytest_asyncio.fixture
async def mail_desk(ts_env, monkeypatch):
    """A desk whose worker sends real mail (SMTP on loopback) for its cases."""
    sink = MailSink().start()
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(sink.port))
    for name in ("SMTP_USERNAME", "SMTP_PASSWORD", "SMTP_STARTTLS", "MAIL_FROM"):
        monkeypatch.delenv(name, raising=False)
    notifier = RecordingNotifier()
    stand_ins = [a for a in notifier.activities if a.__name__ != "send_email"]
    queue = unique_queue("mail")
    try:
        async with Worker(
            ts_env.client,
            task_queue=queue,
            workflows=[EscalationWorkflow],
            activities=[send_email, *stand_ins],
            workflow_failure_exception_types=[Exception],
        ):
            desk = Desk(ts_env, EscalatorClient(ts_env.client, queue), notifier)
            yield desk, sink
            await desk.close_open_cases()
    finally:
        sink.stop()


async def first_mail(sink: MailSink, case_id: str):
    """The new-case mail to L1, as the receiving mail client parsed it."""
    [mail] = await eventually(lambda: sink.with_purpose(case_id, "tier_entry"))
    return mail


def bodies(mail) -> tuple[str, str]:
    return mail.get_body(("plain",)).get_content(), mail.get_body(("html",)).get_content()


@row(CONTENT, 'title `"Hi\\r\\nBcc: evil@example.com"`',
     "the case starts and keeps the title as typed; the real mail has no `Bcc`, goes to L1 only, and its subject is one line")  # fmt: skip
async def test_line_breaks_in_a_title_inject_no_header(mail_desk):
    desk, sink = mail_desk
    title = "Hi\r\nBcc: evil@example.com"
    await desk.escalator.start_case(start_fields("crlf-title", title=title))
    desk.started.append("case-crlf-title")
    assert (await desk.status("crlf-title")).title == title  # nothing lost
    mail = await first_mail(sink, "crlf-title")
    assert mail["Bcc"] is None and "bcc" not in {name.lower() for name in mail}
    assert mail["X-Envelope-To"] == "l1@example.com"  # evil@example.com got nothing
    for name, value in mail.items():
        assert "\r" not in value and "\n" not in value, name
    assert mail["Subject"].endswith(": Hi Bcc: evil@example.com")  # flattened, not dropped


@row(CONTENT, "HTML in the title and description (`<script>`, `<img onerror>`)",
     "the HTML part shows it escaped (`&lt;script&gt;`), never raw; the plain part shows it as typed")  # fmt: skip
async def test_html_in_case_text_is_escaped(mail_desk):
    desk, sink = mail_desk
    title = "<script>alert('title')</script>"
    description = 'logs: <img src=x onerror="alert(1)"> & <b>bold</b>'
    await desk.escalator.start_case(start_fields("html-text", title=title, description=description))
    desk.started.append("case-html-text")
    assert (await desk.status("html-text")).title == title
    text, html_body = bodies(await first_mail(sink, "html-text"))
    for raw in ("<script", "<img", "<b>"):
        assert raw not in html_body
    assert "&lt;script&gt;alert(&#x27;title&#x27;)&lt;/script&gt;" in html_body
    assert (
        "logs: &lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"
        in html_body
    )
    assert description in text  # the plain part is never interpreted


@row(CONTENT, 'non-ASCII title and description (`"Zoë — синхронизация 同期"`)',
     "status returns the title exactly; the real mail's subject decodes to it; both bodies carry it")  # fmt: skip
async def test_non_ascii_survives_end_to_end(mail_desk):
    desk, sink = mail_desk
    title = "Zoë — синхронизация 同期"
    description = "Grüße aus 東京 — Zoë"
    await desk.escalator.start_case(start_fields("non-ascii", title=title, description=description))
    desk.started.append("case-non-ascii")
    assert (await desk.status("non-ascii")).title == title
    mail = await first_mail(sink, "non-ascii")
    assert mail["Subject"].endswith(f": {title}"), mail["Subject"]
    text, html_body = bodies(mail)
    for body in (text, html_body):
        assert title in body and description in body


@row(MESSAGES, "150 signals `add_note` of 16 KiB each from a `customer`, all at once",
     "all 150 accepted; the case still escalates when its first response is due, "
     "notifies L2 with the newest 3 notes and `notes_total` 150, and `status` answers with the newest 10")  # fmt: skip
async def test_a_flood_of_max_size_notes(desk: Desk):
    # Before the bounds, every notification carried every note: this flood made
    # each workflow task fail with PayloadsTooLarge, and the case stopped for good.
    await desk.start("flood", customer={"name": "Jane", "email": "jane@acme.example"})
    handle = desk.env.client.get_workflow_handle("case-flood")
    note = {"actor": {"user": "jane", "role": "customer"}, "text": "n" * (16 * 1024)}
    for _ in range(3):
        await asyncio.gather(*(handle.signal("add_note", note) for _ in range(50)))
    await eventually(lambda: _notes_counted(desk, "flood", 150))
    await desk.after(timedelta(hours=4, minutes=1))  # L1's first response is due at 4h
    status = await desk.status("flood")
    assert (status.tier_level, status.notes_total, len(status.notes)) == (2, 150, 10)
    [l2] = [n for n in desk.notifier.sent if n.case.case_id == "flood" and n.tier.level == 2
            and n.purpose == "tier_entry"]  # fmt: skip
    assert (len(l2.notes), l2.notes_total) == (3, 150)


async def _notes_counted(desk: Desk, case_id: str, total: int):
    status = await desk.status(case_id)
    return status if status.notes_total == total else None


@row(MESSAGES, "update `try_add_note` past the case's note limit (10,000; 3 in the test)",
     "`ActionRefused`: `rejected: notes: the case has 3 notes, the limit (3); open a follow-up case`; "
     "status unchanged; as a signal, a `rejected` entry")  # fmt: skip
async def test_a_note_past_the_case_limit(desk: Desk, monkeypatch):
    monkeypatch.setattr(limits, "MAX_NOTES_PER_CASE", 3)  # read by the workflow at run time
    await desk.start("notes-full")
    for i in range(3):
        await desk.escalator.add_note("notes-full", actor("alice"), f"note {i}")
    before = await desk.status("notes-full")
    with pytest.raises(ActionRefused) as refused:
        await desk.escalator.add_note("notes-full", actor("alice"), "one more")
    assert one_line(str(refused.value)) == (
        "rejected: notes: the case has 3 notes, the limit (3); open a follow-up case"
    )
    assert_unchanged(before, await desk.status("notes-full"))
    await desk.escalator.add_note("notes-full", actor("alice"), "one more", wait=False)
    after = await timeline_grows(desk, "notes-full", before)
    assert after.timeline[-1].kind == "rejected" and after.notes_total == 3
    await assert_still_works(desk, "notes-full")


# == 5. raw Temporal starts =============================================================
# A client that skips EscalatorClient: the Python SDK's plain client, or the temporal
# CLI. On the real dev server, with workers that do not turn task failures into
# workflow failures: the workflow must fail a bad input by itself, in its first task.


@pytest_asyncio.fixture
async def raw_desk(dev_env):
    queue = unique_queue("raw")
    async with case_workers(dev_env.client, queue, RecordingNotifier().activities):
        yield dev_env.client, queue


def raw_case(**fields) -> dict:
    return {"case_id": "raw", "title": "VPN down", "policy": DEFAULT_POLICY.model_dump(mode="json"),
            **fields}  # fmt: skip


def _without_first_sla() -> dict:
    case = raw_case()
    del case["policy"]["tiers"][0]["sla"]
    return case


def _with_first_response(value) -> dict:
    case = raw_case()
    case["policy"]["tiers"][0]["sla"]["first_response"] = value
    return case


@dataclass(frozen=True)
class RawStart:
    id: str
    input: str
    args: list
    expected: str


RAW_STARTS = [
    RawStart("tier-without-sla", "a non-final tier without `sla`", [_without_first_sla()],
             "case: policy.tiers: tier 1 (Front-Line Support) needs an sla because it is not the final tier; "
             "only the final tier may omit it (tiers[0].sla)"),
    RawStart("unknown-field", "an unknown field `colour`", [raw_case(colour="red")],
             "case: colour: unknown field; check the spelling against the policy reference in README.md"),
    RawStart("title-not-a-string", "`title: 5`", [raw_case(title=5)],
             "case: title: Input should be a valid string"),
    RawStart("clock-duration", '`first_response: "1:30"`', [_with_first_response("1:30")],
             "case: policy.tiers[0].sla.first_response: '1:30' is ambiguous (1 h 30 min or 1 min 30 s?); "
             "write 1h30m, 90m, 90s, PT1H30M or a number of seconds"),
    RawStart("sub-second-duration", "`first_response: 0.5`", [_with_first_response(0.5)],
             "case: policy.tiers[0].sla.first_response: 0.5 is not a whole number of seconds (0.5s); "
             "policy durations are whole seconds, at least 1s"),
    RawStart("two-arguments", "two arguments", [raw_case(), raw_case()],
             "case: expected one argument (a CaseInput), got 2"),
    RawStart("oversized-data", "17 KiB in `data`", [raw_case(data={"log": "x" * (17 * 1024)})],
             "case: data: is 17418 bytes as JSON; the limit is 16384 bytes, so attach long logs elsewhere"),
    RawStart("bad-carried-state", "a continue-as-new state that does not decode (`carried.tier_level: \"two\"`)",
             [raw_case(carried={"tier_level": "two"})], "case: carried."),
    RawStart("unknown-channel", "a policy whose L3 lists `channels: [pagerdutty]`",
             [raw_case(policy=UNKNOWN_CHANNEL)], f"case: {UNKNOWN_CHANNEL_REASON}"),
    RawStart("inline-routing-key", "a policy with a PagerDuty `routing_key` inline (not repeated)",
             [raw_case(policy=INLINE_KEY)], f"case: {INLINE_KEY_REASON}"),
]  # fmt: skip

for _case in RAW_STARTS:
    CATALOGUE.append(
        Entry(
            RAW,
            f'`Client.start_workflow("EscalationWorkflow", ...)` with {_case.input}',
            f"the workflow fails in its first task with `InvalidCaseInput` (non-retryable): "
            f"{code(_case.expected)}; no workflow task failed",
            f"{MODULE}::test_raw_start[{_case.id}]",
        )
    )


async def assert_failed_at_once(handle, expected: str) -> None:
    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(handle.result(), timeout=20)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidCaseInput", cause
    assert cause.non_retryable
    message = one_line(cause.message)
    assert message == expected or (expected.endswith(".") and message.startswith(expected)), message
    history = await handle.fetch_history()
    assert not any(e.HasField("workflow_task_failed_event_attributes") for e in history.events)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in RAW_STARTS])
async def test_raw_start(raw_desk, case: RawStart):
    client, queue = raw_desk
    handle = await client.start_workflow(
        "EscalationWorkflow", args=case.args, id=f"raw-{case.id}-{uuid.uuid4().hex[:6]}",
        task_queue=queue,
    )  # fmt: skip
    await assert_failed_at_once(handle, case.expected)


@row(RAW, "`temporal workflow start --type EscalationWorkflow --input '{...}'` with a non-final tier without `sla`",
     "the workflow fails in its first task with `InvalidCaseInput`: `case: policy.tiers: tier 1 (Front-Line Support) "
     "needs an sla ...`; no workflow task failed")  # fmt: skip
async def test_raw_start_from_the_temporal_cli(raw_desk, dev_env):
    client, queue = raw_desk
    workflow_id = f"raw-cli-{uuid.uuid4().hex[:6]}"
    command = [
        find_binary("temporal"), "workflow", "start",
        "--address", dev_env.client.service_client.config.target_host,
        "--type", "EscalationWorkflow", "--task-queue", queue, "--workflow-id", workflow_id,
        "--input", json.dumps(_without_first_sla()),
    ]  # fmt: skip
    started = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=30
    )
    assert started.returncode == 0, started.stderr
    await assert_failed_at_once(client.get_workflow_handle(workflow_id), RAW_STARTS[0].expected)


# == the doc ============================================================================


def render_doc() -> str:
    entries = sorted(CATALOGUE, key=lambda e: AREAS.index(e.area))  # stable: table order
    gaps = [e for e in entries if e.gap]
    counts = ", ".join(f"{area} {sum(e.area == area for e in entries)}" for area in AREAS)

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    if gaps:
        summary = (
            f"**{len(entries)} bad inputs, {len(AREAS)} areas, nothing lost** — in the "
            f"{len(entries) - len(gaps)} rows the product handles. The {len(gaps)} rows marked "
            "**gap** are known shortfalls: each is a strict `xfail` test, the table says what "
            "happens today, and [Gaps](#gaps) gives the cause and a proposed fix."
        )
    else:
        summary = (
            f"**{len(entries)} bad inputs, {len(AREAS)} areas, nothing lost.** No row is a "
            "known gap: every one is a passing test. A shortfall found later is added as a "
            "strict `xfail` row marked **gap**, with its cause and proposed fix under Gaps."
        )
    lines = [
        "# Bad input: what the user sees",
        "",
        summary,
        "",
        f"Rows per area: {counts}.",
        "",
        "Every row is a test in `tests/test_bad_input.py` that checks three things: a clear "
        "one-line error naming the field (for a signal: a `rejected` timeline entry with the "
        "reason), nothing lost (the case still works afterwards, the refused id is still free, "
        "or the file is untouched), and no state change (the case's status before equals its "
        "status after, apart from the `rejected` entry). CLI rows run with `TEMPORAL_ADDRESS` "
        "at a closed port, so exit 2 also proves the input was refused before connecting.",
        "",
        f"Generated from the tables in that module by `{REGENERATE}`; a test checks it is current.",
        "",
        "| # | area | input | what the user sees | test |",
        "|---|---|---|---|---|",
    ]
    for number, entry in enumerate(entries, 1):
        sees = f"**gap**: today {entry.gap}. Should be: {entry.sees}" if entry.gap else entry.sees
        lines.append(
            f"| {number} | {entry.area} | {cell(entry.input)} | {cell(sees)} | `{entry.test}` |"
        )
    if not gaps:
        return "\n".join(lines) + "\n"
    lines += ["", "## Gaps", ""]
    by_fix: dict[str, list[int]] = {}
    for number, entry in enumerate(entries, 1):
        if entry.gap:
            by_fix.setdefault(entry.fix or "", []).append(number)
    for fix, numbers in by_fix.items():
        lines.append(f"- **{', '.join(f'#{n}' for n in numbers)}.** {fix}")
    return "\n".join(lines) + "\n"


META_TESTS = {"test_cli_control_valid_input_tries_to_connect", "test_doc_lists_every_row"}


def test_doc_lists_every_row(request):
    counts = {area: sum(e.area == area for e in CATALOGUE) for area in AREAS}
    assert all(counts[area] >= minimum for area, minimum in MINIMUM_PER_AREA.items()), counts
    assert len(CATALOGUE) >= 30
    ids = [entry.test for entry in CATALOGUE]
    assert len(ids) == len(set(ids)), "a test id is listed twice"
    # Every test of this module is a catalogue row, and every row is a collected test.
    ours = {
        item.nodeid
        for item in request.session.items
        if item.nodeid.startswith(f"{MODULE}::") and item.originalname not in META_TESTS
    }
    if not set(ids) <= ours:
        pytest.skip("run the whole module to compare the catalogue with the collected tests")
    assert ours == set(ids)
    assert DOC.read_text(encoding="utf-8") == render_doc(), f"regenerate it: {REGENERATE}"


if __name__ == "__main__":
    DOC.write_text(render_doc(), encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)}: {len(CATALOGUE)} rows")
