"""Visibility queries over our search attributes (list and queue views)."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio.client import WorkflowExecution

from escalator.domain import search_attributes as search
from escalator.domain.names import WORKFLOW_TYPE


def _quote(value: str) -> str:
    # Visibility queries are SQL-like; escape quotes so a value cannot change the query.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def case_query(
    *,
    status: str | None = None,
    tier: int | None = None,
    team: str | None = None,
    severity: str | None = None,
    assignee: str | None = None,
    category: str | None = None,
    customer_tier: str | None = None,
    account: str | None = None,
    policy_version: str | None = None,
) -> str:
    clauses = [f"WorkflowType = {_quote(WORKFLOW_TYPE)}"]
    if status:
        clauses.append(f"{search.CASE_STATUS.name} = {_quote(status)}")
    if tier is not None:
        clauses.append(f"{search.CASE_TIER.name} = {int(tier)}")
    if team:
        clauses.append(f"{search.CASE_TEAM.name} = {_quote(team)}")
    if severity:
        clauses.append(f"{search.CASE_SEVERITY.name} = {_quote(severity)}")
    if assignee:
        clauses.append(f"{search.CASE_ASSIGNEE.name} = {_quote(assignee)}")
    if category:
        clauses.append(f"{search.CASE_CATEGORY.name} = {_quote(category)}")
    if customer_tier:
        clauses.append(f"{search.CUSTOMER_TIER.name} = {_quote(customer_tier)}")
    if account:
        clauses.append(f"{search.CASE_ACCOUNT.name} = {_quote(account)}")
    if policy_version:
        clauses.append(f"{search.POLICY_VERSION.name} = {_quote(policy_version)}")
    return " AND ".join(clauses)


def closed_case_query(*, account: str | None = None, closed_since: datetime | None = None) -> str:
    """Every closed run of every case (completed, continued as new, terminated...):
    what `escalator ledger backfill` reads."""
    clauses = [f"WorkflowType = {_quote(WORKFLOW_TYPE)}", "ExecutionStatus != 'Running'"]
    if account:
        clauses.append(f"{search.CASE_ACCOUNT.name} = {_quote(account)}")
    if closed_since is not None:
        stamp = closed_since.astimezone(UTC).isoformat().replace("+00:00", "Z")
        clauses.append(f"CloseTime >= {_quote(stamp)}")
    return " AND ".join(clauses)


def open_case_query(
    *, account: str | None = None, team: str | None = None, policy_version: str | None = None
) -> str:
    """Cases still running and not resolved (a resolved case waits out its reopen
    window running): the live backlog `escalator report` shows. With `policy_version`,
    only cases that publish it (those started before PATCH policy-version do not)."""
    clauses = [
        f"WorkflowType = {_quote(WORKFLOW_TYPE)}",
        "ExecutionStatus = 'Running'",
        f"{search.CASE_STATUS.name} != 'resolved'",
    ]
    if account:
        clauses.append(f"{search.CASE_ACCOUNT.name} = {_quote(account)}")
    if team:
        clauses.append(f"{search.CASE_TEAM.name} = {_quote(team)}")
    if policy_version:
        clauses.append(f"{search.POLICY_VERSION.name} = {_quote(policy_version)}")
    return " AND ".join(clauses)


def case_row(execution: WorkflowExecution) -> dict:
    """A listed case as `escalator list --json` and `GET /v1/cases` show it."""
    attributes = execution.typed_search_attributes
    deadline = attributes.get(search.NEXT_DEADLINE)
    return {
        "case_id": execution.id.removeprefix("case-"),
        "status": attributes.get(search.CASE_STATUS),
        "tier": attributes.get(search.CASE_TIER),
        "tier_name": attributes.get(search.CASE_TIER_NAME),
        "team": attributes.get(search.CASE_TEAM),
        "severity": attributes.get(search.CASE_SEVERITY),
        "assignee": attributes.get(search.CASE_ASSIGNEE),
        "category": attributes.get(search.CASE_CATEGORY),
        "customer_tier": attributes.get(search.CUSTOMER_TIER),
        "sla_breached": attributes.get(search.SLA_BREACHED),
        "next_deadline": deadline.isoformat() if deadline else None,
        "started": execution.start_time.isoformat() if execution.start_time else None,
        "workflow_status": execution.status.name.lower() if execution.status else None,
    }
