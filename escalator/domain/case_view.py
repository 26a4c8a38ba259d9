"""What a case's state implies, computed, never stored: its next deadline, the SLA
clocks, the facts the rules look at, its status, outcome and search attributes.

Pure functions of a `CaseState`, the case's input and, where time matters, `now`.
The case engine (escalator/domain/case.py) uses them to decide; the workflow uses
them to arm its timer and to answer queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from escalator.domain import limits, routing, rules, sla
from escalator.domain import search_attributes as search
from escalator.domain.business_time import ALWAYS_OPEN, BusinessCalendar, business_time_between
from escalator.domain.ledger import LedgerCase
from escalator.domain.models import CaseInput, CaseOutcome, CaseState, CaseStatus
from escalator.domain.policy import Tier
from escalator.domain.policy_version import policy_version
from escalator.domain.records import Deadline, TierRef

_ZERO = timedelta(0)


@dataclass(frozen=True)
class Due:
    """The next moment the case acts on its own. `target` is the SLA target behind it,
    or None for the end of a hold."""

    deadline: Deadline
    target: sla.Target | None


def tier_of(state: CaseState, case: CaseInput) -> Tier:
    return case.policy.tier(state.tier_level)


def tier_ref(tier: Tier) -> TierRef:
    return TierRef(level=tier.level, name=tier.name, team=tier.team)


# -- the SLA clocks ---------------------------------------------------------------


def calendar(state: CaseState, case: CaseInput) -> BusinessCalendar:
    return case.policy.calendar_for(state.tier_level) or ALWAYS_OPEN


def consumed_at(state: CaseState, case: CaseInput, now: datetime) -> timedelta:
    """Business time this tier stay has consumed by `now` (paused while on hold)."""
    if state.running_since is None:
        return state.consumed
    running = business_time_between(state.running_since, now, calendar(state, case))
    return state.consumed + running


def position(state: CaseState) -> sla.Position:
    return sla.Position(
        tier_level=state.tier_level,
        claimed=state.phase == "claimed",
        response_base=state.response_base,
        activity_base=state.activity_base,
        assignee=state.assignee,
    )


def next_due(state: CaseState, case: CaseInput) -> Due | None:
    """The deadline the case sleeps until, if any. It does not depend on `now`: the
    clocks say when, and the workflow's timer waits for it."""
    if state.phase == "resolved":
        return None
    if state.hold is not None:
        end = hold_end(state, case)
        return None if end is None else Due(end, None)
    target = sla.next_target(case.policy, position(state), frozenset(state.fired))
    if target is None:
        return None
    return Due(sla.as_deadline(target, _instant(state, case, target), state.tier_level), target)


def next_deadline(state: CaseState, case: CaseInput) -> Deadline | None:
    due = next_due(state, case)
    return None if due is None else due.deadline


def _instant(state: CaseState, case: CaseInput, target: sla.Target) -> datetime:
    assert state.running_since is not None  # on hold, the hold's end comes first
    return sla.instant_of(
        target,
        consumed_at_start=state.consumed,
        running_since=state.running_since,
        calendar=calendar(state, case),
    )


def hold_end(state: CaseState, case: CaseInput) -> Deadline | None:
    hold = state.hold
    assert hold is not None
    ends = [moment for moment in (hold.until,) if moment is not None]
    if case.policy.max_hold is not None:
        ends.append(hold.since + case.policy.max_hold)
    if not ends:
        return None
    at = min(ends)
    why = "the hold's until time" if at == hold.until else "max_hold reached"
    return Deadline(
        at=at,
        kind="resume",
        clock="hold",
        tier_level=state.tier_level,
        label="hold ends",
        consequence=f"resume the SLA clocks ({why})",
    )


def breach_deadline(state: CaseState, case: CaseInput) -> Deadline | None:
    """The deadline people must beat in the current tier (shown in notifications)."""
    target = sla.breach_target(case.policy, position(state))
    if target is None or state.running_since is None:
        return None
    return sla.as_deadline(target, _instant(state, case, target), state.tier_level)


# -- the facts the rules look at ----------------------------------------------------


def facts(state: CaseState, case: CaseInput, now: datetime) -> rules.CaseFacts:
    return rules.CaseFacts(
        state=state.phase,
        account=case.account,
        assignee=state.assignee,
        final_tier=routing.is_final(case.policy, state.tier_level),
        lowest_tier=state.tier_level == case.policy.tiers[0].level,
        on_hold=state.hold is not None,
        reopenable=state.reopen_until is not None and now < state.reopen_until,
    )


# -- what callers see ---------------------------------------------------------------


def status(state: CaseState, case: CaseInput, now: datetime) -> CaseStatus:
    """The case now: its state, the newest notes and timeline, and totals.

    Bounded (see escalator/domain/limits.py), so the answer stays far below
    Temporal's payload limit however long the case has run."""
    tier = tier_of(state, case)
    hold_total = state.hold_total
    if state.hold is not None:
        hold_total += now - state.hold.since
    return CaseStatus(
        case_id=case.case_id,
        title=case.title,
        state=state.phase,
        severity=state.severity,
        account=case.account,
        tier_level=tier.level,
        tier_name=tier.name,
        team=tier.team,
        assignee=state.assignee,
        escalations=state.escalated_up,
        sla_breached=state.sla_breached,
        created_at=state.created_at,
        next_deadline=next_deadline(state, case),
        last_escalation=state.escalations[-1] if state.escalations else None,
        policy_name=case.policy.name,
        notes=state.notes[-limits.STATUS_NOTES :],
        timeline=state.timeline[-limits.STATUS_TIMELINE :],
        assessment=state.assessment,
        hold=state.hold,
        total_hold_seconds=hold_total.total_seconds(),
        as_of=now,
        needs_review=state.needs_review,
        reopened=state.reopened,
        reopen_until=state.reopen_until,
        notes_total=state.notes_total,
        timeline_total=state.timeline_total,
        sla_used=sla_used(state, case, now),
        category=case.category,
        customer_tier=case.customer_tier,
    )


def sla_used(state: CaseState, case: CaseInput, now: datetime) -> float | None:
    """How much of the tier's running SLA the case has used (1.0: breached)."""
    if state.phase == "resolved":
        return None
    target = sla.breach_target(case.policy, position(state))
    if target is None:
        return None
    base = state.response_base if target.clock == "first_response" else timedelta(0)
    length = target.consumed - base
    if length <= timedelta(0):
        return None
    return round((consumed_at(state, case, now) - base) / length, 4)


def outcome(state: CaseState, case: CaseInput) -> CaseOutcome:
    """The workflow's result once the case has closed."""

    def seconds_since_creation(moment: datetime | None) -> float | None:
        return None if moment is None else (moment - state.created_at).total_seconds()

    return CaseOutcome(
        case_id=case.case_id,
        resolved_by=state.resolved_by or "",
        summary=state.resolution_summary,
        final_tier=state.tier_level,
        escalations=state.escalated_up,
        seconds_to_first_claim=seconds_since_creation(state.first_claim_at),
        seconds_to_resolution=seconds_since_creation(state.resolved_at) or 0.0,
        timeline=state.timeline[-limits.OUTCOME_TIMELINE :],
        sla_breached=state.sla_breached,
        total_hold_seconds=state.hold_total.total_seconds(),
        reopened=state.reopened,
        needs_review=state.needs_review,
    )


def search_attribute_values(
    state: CaseState, case: CaseInput, *, with_policy_version: bool = False
) -> dict[str, object]:
    """The values the Web UI and `escalator list` filter on, by attribute name.

    Only ids and labels: search attributes are never encrypted, so no customer data
    or free text goes here. `with_policy_version`: the workflow's answer for PATCH
    policy-version (cases started before it upsert without `PolicyVersion`)."""
    tier = tier_of(state, case)
    deadline = next_deadline(state, case)
    values: dict[str, object] = {
        search.CASE_STATUS.name: state.phase,
        search.CASE_TIER.name: tier.level,
        search.CASE_TIER_NAME.name: tier.name,
        search.CASE_TEAM.name: tier.team,
        search.CASE_SEVERITY.name: state.severity,
        search.CASE_ASSIGNEE.name: state.assignee,
        search.CASE_ACCOUNT.name: case.account,
        search.SLA_BREACHED.name: state.sla_breached,
        search.NEXT_DEADLINE.name: deadline.at if deadline else None,
        search.NEEDS_REVIEW.name: state.needs_review,
    }
    # Only when set: an unset key would add an upsert that older histories lack.
    if case.category is not None:
        values[search.CASE_CATEGORY.name] = case.category
    if case.customer_tier is not None:
        values[search.CUSTOMER_TIER.name] = case.customer_tier
    if with_policy_version:
        values[search.POLICY_VERSION.name] = policy_version(case.policy)
    return values


def ledger_case(state: CaseState, case: CaseInput) -> LedgerCase:
    """The case's fact row for the ledger (written when it resolves)."""
    return LedgerCase(
        case_id=case.case_id,
        account=case.account,
        title=case.title,
        category=case.category,
        customer_tier=case.customer_tier,
        severity=state.severity,
        policy_name=case.policy.name,
        created_at=state.created_at,
        first_claim_at=state.first_claim_at,
        resolved_at=state.resolved_at,
        resolved_by=state.resolved_by,
        final_tier=state.tier_level,
        escalations=state.escalated_up,
        tier_moves=state.escalations_total,
        sla_breached=state.sla_breached,
        reopened=state.reopened,
        hold_seconds=state.hold_total.total_seconds(),
        needs_review=state.needs_review,
        events=state.timeline_total,
        policy=case.policy,
        policy_version=policy_version(case.policy),
    )
