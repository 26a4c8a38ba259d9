"""Custom search attributes: how the Web UI, `escalator list` and `queue` filter cases.

They must be registered with the server before any workflow upserts them (the
time-skipping server hangs otherwise): `escalator up` passes them to the dev server,
the compose setup job creates them, and the test fixtures register them.
Search attributes are never encrypted, so no customer names, emails or free text.
"""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.common import SearchAttributeKey

CASE_STATUS = SearchAttributeKey.for_keyword("CaseStatus")  # open | claimed | resolved
CASE_TIER = SearchAttributeKey.for_int("CaseTier")
CASE_TIER_NAME = SearchAttributeKey.for_keyword("CaseTierName")
CASE_TEAM = SearchAttributeKey.for_keyword("CaseTeam")
CASE_SEVERITY = SearchAttributeKey.for_keyword("CaseSeverity")
CASE_ASSIGNEE = SearchAttributeKey.for_keyword("CaseAssignee")
CASE_ACCOUNT = SearchAttributeKey.for_keyword("CaseAccount")
SLA_BREACHED = SearchAttributeKey.for_bool("SlaBreached")
NEXT_DEADLINE = SearchAttributeKey.for_datetime("NextDeadline")
NEEDS_REVIEW = SearchAttributeKey.for_bool("NeedsReview")  # bounced between tiers too often
# Report dimensions, short labels (escalator/domain/models.py `Label`). Set only on
# cases that have them, so cases started before they existed replay unchanged.
CASE_CATEGORY = SearchAttributeKey.for_keyword("CaseCategory")
CUSTOMER_TIER = SearchAttributeKey.for_keyword("CustomerTier")
# The policy snapshot's version, `<name>@<12 hex>` (escalator/domain/policy_version.py).
# Set only on cases started after PATCH policy-version, so older ones replay unchanged.
POLICY_VERSION = SearchAttributeKey.for_keyword("PolicyVersion")

ALL_KEYS = (
    CASE_STATUS,
    CASE_TIER,
    CASE_TIER_NAME,
    CASE_TEAM,
    CASE_SEVERITY,
    CASE_ASSIGNEE,
    CASE_ACCOUNT,
    SLA_BREACHED,
    NEXT_DEADLINE,
    NEEDS_REVIEW,
    CASE_CATEGORY,
    CUSTOMER_TIER,
    POLICY_VERSION,
)

# Names as the `temporal` CLI spells the types (`--search-attribute Name=Type`). Keyed by
# int: temporalio's SearchAttributeIndexedValueType is an IntEnum of the same numbers.
_CLI_TYPE: dict[int, str] = {
    IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD: "Keyword",
    IndexedValueType.INDEXED_VALUE_TYPE_INT: "Int",
    IndexedValueType.INDEXED_VALUE_TYPE_BOOL: "Bool",
    IndexedValueType.INDEXED_VALUE_TYPE_DATETIME: "Datetime",
}


def cli_type(key: SearchAttributeKey[Any]) -> str:
    return _CLI_TYPE[key.indexed_value_type]


def dev_server_flags() -> list[str]:
    flags: list[str] = []
    for key in ALL_KEYS:
        flags += ["--search-attribute", f"{key.name}={cli_type(key)}"]
    return flags


def indexed_types() -> dict[str, IndexedValueType.ValueType]:
    """For OperatorService.AddSearchAttributes (test fixtures, scripted set-up)."""
    # The IntEnum is already the proto's number; the stubs only name it differently.
    return {key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in ALL_KEYS}
