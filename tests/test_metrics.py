"""The supervisor's figures (escalator/domain/metrics.py, defined in docs/metrics.md).

Cases are driven through the pure engine with a clock the test moves, so every
timing is known exactly; the ledger entries the engine records are what the
figures are computed from, as `escalator report` computes them from the ledger.
Each expected value below is worked out by hand from the script of the case.
"""

from __future__ import annotations

from datetime import timedelta

from support import ENGINE_T0 as T0
from support import EngineCase, actor, policy_with

from escalator.domain import case as engine
from escalator.domain import metrics
from escalator.domain.models import (
    AddNoteRequest,
    ClaimRequest,
    EscalateRequest,
    HoldRequest,
    ReopenRequest,
    ResolveRequest,
    ResumeRequest,
    SetSeverityRequest,
)

MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
REOPENABLE = policy_with(reopen_window="7d")


def claim(c: EngineCase, user: str) -> None:
    c.do(engine.claim, ClaimRequest(actor=actor(user)))


def resolve(c: EngineCase, user: str) -> None:
    c.do(engine.resolve, ResolveRequest(actor=actor(user), summary="done"))


def escalate(c: EngineCase, user: str, *steps: str) -> None:
    note = {"reason": "needs backend access", "steps_taken": list(steps)}
    c.do(engine.escalate, EscalateRequest(actor=actor(user), note=note))


def note(c: EngineCase, user: str, text: str) -> None:
    c.do(engine.add_note, AddNoteRequest(actor=actor(user), text=text))


def quick_claim() -> EngineCase:
    """Claimed after 30 min, a note 10 min later, resolved at 2 h."""
    c = EngineCase(case_id="a", category="sso", policy=REOPENABLE)
    c.after(30 * MIN)
    claim(c, "alice")
    c.after(10 * MIN)
    note(c, "alice", "restarted the sync")
    c.after(80 * MIN)
    resolve(c, "alice")
    return c


def breached_at_l1() -> EngineCase:
    """Nobody claims in L1's 4 h; L2's bob claims 20 min later and resolves at 5 h."""
    c = EngineCase(case_id="b", category="sso")
    c.after(4 * HOUR + 20 * MIN)
    claim(c, "bob")
    c.after(40 * MIN)
    resolve(c, "bob")
    return c


def escalated_to_l3() -> EngineCase:
    """alice escalates to L2 by hand, carol to L3, dave resolves: an L3 review."""
    c = EngineCase(case_id="c", category="billing")
    c.after(HOUR)
    claim(c, "alice")
    c.after(30 * MIN)
    escalate(c, "alice", "checked the runbook")
    c.after(30 * MIN)
    claim(c, "carol")
    c.after(HOUR)
    escalate(c, "carol", "checked the runbook", "read the logs")
    c.after(15 * MIN)
    claim(c, "dave")
    note(c, "dave", "found the bad deploy")
    c.after(45 * MIN)
    resolve(c, "dave")
    return c


def held() -> EngineCase:
    """Claimed at 10 min, on hold from 20 min for an hour, resolved at 2 h."""
    c = EngineCase(case_id="d", category="billing")
    c.after(10 * MIN)
    claim(c, "erin")
    c.after(10 * MIN)
    c.do(engine.hold, HoldRequest(actor=actor("erin"), reason="waiting on the customer"))
    c.after(HOUR)
    c.do(engine.resume, ResumeRequest(actor=actor("erin")))
    c.after(40 * MIN)
    resolve(c, "erin")
    return c


def reopened() -> EngineCase:
    """Resolved at 10 min, reopened at 1 h, claimed again at 1 h 30, resolved at 2 h."""
    c = EngineCase(case_id="e", policy=REOPENABLE)
    c.after(5 * MIN)
    claim(c, "frank")
    c.after(5 * MIN)
    resolve(c, "frank")
    c.after(50 * MIN)
    c.do(engine.reopen, ReopenRequest(actor=actor("frank"), reason="still broken"))
    c.after(30 * MIN)
    claim(c, "frank")
    c.after(30 * MIN)
    resolve(c, "frank")
    return c


def report_of(*cases: EngineCase, **options) -> metrics.Report:
    return metrics.report([c.history() for c in cases], **options)


def test_mtta_mttr_and_first_action_over_five_known_cases():
    r = report_of(quick_claim(), breached_at_l1(), escalated_to_l3(), held(), reopened())
    assert r.cases == 5 and r.unclaimed == 0
    # creation to first claim: 30 min, 4 h 20, 1 h, 10 min, 5 min
    mtta = [30 * 60, 4 * 3600 + 20 * 60, 3600, 600, 300]
    assert r.mtta_seconds.n == 5
    assert r.mtta_seconds.mean == sum(mtta) / 5
    assert r.mtta_seconds.median == 1800
    assert r.mtta_seconds.p95 == max(mtta)  # nearest rank of 5 values is the largest
    # 24x7 calendars: business time is calendar time, less time on hold.
    assert r.mtta_seconds.business == metrics.Summary.of(mtta)
    # creation to the last resolve: 2 h, 5 h, 4 h, 2 h, 2 h
    assert r.mttr_seconds.median == 2 * 3600 and r.mttr_seconds.mean == 3 * 3600
    # the held case's hour on hold is not business time
    assert r.mttr_seconds.business.mean == (15 * 3600 - 3600) / 5
    # claim to the assignee's first note, escalate, hold or resolve:
    # alice 10 min (note); bob 40 min (resolve); alice 30 min (escalate); carol 1 h
    # (escalate); dave 0 (note); erin 10 min (hold); frank 5 min, then 30 min (resolves)
    first = [600, 2400, 1800, 3600, 0, 600, 300, 1800]
    assert r.first_action_seconds == metrics.Duration(
        **metrics.Summary.of(first).model_dump(), business=metrics.Summary.of(first)
    )


def test_per_tier_mtta_starts_when_the_case_enters_the_tier():
    r = report_of(breached_at_l1(), escalated_to_l3())
    # L1: only c was claimed there (after 1 h); b breached unclaimed.
    assert r.mtta_by_tier_seconds["L1"].n == 1 and r.mtta_by_tier_seconds["L1"].mean == 3600
    # L2: b 20 min after the breach moved it; c 30 min after alice escalated it.
    assert r.mtta_by_tier_seconds["L2"].mean == (1200 + 1800) / 2
    assert r.mtta_by_tier_seconds["L3"].mean == 15 * 60


def test_escalations_by_tier_reason_category_and_agent():
    r = report_of(quick_claim(), breached_at_l1(), escalated_to_l3(), held())
    e = r.escalations
    assert e.total == 3
    assert e.by_tier == {"L1": 2, "L2": 1}
    assert e.by_reason == {"sla": 1, "manual": 2, "severity": 0, "ai": 0}
    assert e.by_category == {"billing": 2, "sso": 1}
    assert e.by_agent == {"alice": 1, "carol": 1}  # the SLA breach is nobody's
    # L1: 4 cases entered, b and c left upwards; L2: b stayed, c left; L3: nobody left.
    assert e.rate_by_tier == {"L1": 0.5, "L2": 0.5, "L3": 0.0}
    assert e.hops_per_case.mean == (0 + 1 + 2 + 0) / 4


def test_severity_and_ai_handoffs_are_their_own_reasons():
    ai_policy = policy_with(
        tiers=[
            *policy_with().model_dump(mode="json")["tiers"],
            {"level": 4, "name": "AI agent", "kind": "ai", "team": "ai"},
        ]
    )
    raised = EngineCase(case_id="s", policy=ai_policy)
    raised.after(MIN)
    raised.do(engine.set_severity, SetSeverityRequest(actor=actor("gina"), severity="P1"))
    raised.after(HOUR + MIN)  # L3's 1 h first response passes: handed to the AI stage
    claim(raised, "gina")
    resolve(raised, "gina")
    r = report_of(raised)
    assert r.escalations.by_reason == {"sla": 0, "manual": 0, "severity": 1, "ai": 1}
    assert r.escalations.by_agent == {"gina": 1}
    assert r.sla_compliance.by_tier == {"L1": 1.0, "L3": 0.0, "L4": 1.0}


def test_sla_compliance_is_weighted_by_cases_and_never_100_percent_of_nothing():
    r = report_of(quick_claim(), breached_at_l1(), escalated_to_l3(), held())
    assert r.sla_compliance.overall == 0.75  # only b breached
    assert r.sla_compliance.by_tier == {"L1": 0.75, "L2": 1.0, "L3": 1.0}
    empty = report_of()
    assert empty.sla_compliance.overall is None and empty.reopen_rate is None
    assert empty.mtta_seconds.n == 0 and empty.mtta_seconds.mean is None


def test_reopen_rate_holds_and_needs_review():
    r = report_of(quick_claim(), held(), reopened())
    assert r.reopen_rate == round(1 / 3, 4)
    assert r.hold_seconds.n == 1 and r.hold_seconds.mean == 3600
    assert r.needs_review.count == 0
    # The held case's MTTR leaves its hour on hold out of business time.
    assert r.mttr_seconds.business.mean == (2 * 3600 + (2 * 3600 - 3600) + 2 * 3600) / 3


def test_business_time_uses_the_case_calendar():
    office = {"timezone": "UTC", "hours": {d: ["09:00-17:00"] for d in ("mon", "tue")}}
    c = EngineCase(case_id="f", policy=policy_with(calendar=office), start=T0 + 8 * HOUR)
    c.after(18 * HOUR)  # Monday 16:00 to Tuesday 10:00: 2 open hours
    claim(c, "hana")
    resolve(c, "hana")
    r = report_of(c)
    assert r.mtta_seconds.mean == 18 * 3600
    assert r.mtta_seconds.business.mean == 2 * 3600


def test_l3_review_says_how_the_case_got_there_and_what_was_tried():
    r = report_of(quick_claim(), escalated_to_l3())
    [review] = r.l3_reviews
    assert review.case_id == "c" and review.title == "Printer on fire"
    assert review.reached_by.from_tier == "L2" and review.reached_by.by == "carol"
    assert review.reached_by.reason == "manual"
    assert review.reached_by.steps_taken == ["checked the runbook", "read the logs"]
    assert review.steps_taken == ["checked the runbook", "read the logs"]
    assert [n.text for n in review.notes] == ["found the bad deploy"]
    assert review.time_in_tier_seconds == {"L1": 5400, "L2": 5400, "L3": 3600}


def test_team_filter_keeps_cases_that_passed_through_the_team():
    r = report_of(quick_claim(), escalated_to_l3(), team="engineering-oncall")
    assert [x.case_id for x in r.l3_reviews] == ["c"] and r.cases == 1
