"""`escalator report` as text, JSON and CSV, and the live backlog's figures.

Pure: cases come from the engine (tests/support.EngineCase), so no server runs.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

from support import ENGINE_T0 as T0
from support import EngineCase, actor

from escalator.domain import case as engine
from escalator.domain import case_view, metrics, report_formats
from escalator.domain.models import ClaimRequest, ResolveRequest

MIN = timedelta(minutes=1)


def resolved(case_id: str, title: str = "Printer on fire", **fields) -> EngineCase:
    c = EngineCase(case_id=case_id, **fields)
    c.case = c.case.model_copy(update={"title": title})
    c.after(20 * MIN)
    c.do(engine.claim, ClaimRequest(actor=actor("alice")))
    c.after(10 * MIN)
    c.do(engine.resolve, ResolveRequest(actor=actor("alice"), summary="done"))
    return c


def test_json_has_the_documented_top_level_keys():
    report = metrics.report([resolved("a").history()], period_from=T0, period_to=T0 + MIN)
    data = json.loads(report_formats.as_json(report))
    documented = {
        "period", "cases", "mtta_seconds", "mttr_seconds", "first_action_seconds",
        "escalations", "sla_compliance", "reopen_rate", "needs_review", "l3_reviews", "open",
    }  # fmt: skip
    assert documented <= set(data)
    assert set(data["mtta_seconds"]) == {"mean", "median", "p95", "n", "business"}
    assert set(data["escalations"]) >= {"total", "by_tier", "by_reason", "by_category", "by_agent"}
    assert set(data["sla_compliance"]) == {"overall", "by_tier"}
    assert data["period"] == {"from": "2026-03-02T08:00:00Z", "to": "2026-03-02T08:01:00Z"}
    assert data["mtta_seconds"]["mean"] == 1200


def test_csv_is_one_row_per_figure_and_never_a_spreadsheet_formula():
    report = metrics.report([resolved("a", category="sso").history()])
    rows = list(csv.reader(io.StringIO(report_formats.as_csv(report))))
    assert rows[0] == ["figure", "value"]
    values = dict(rows[1:])
    assert values["mtta_seconds.mean"] == "1200.0"
    assert values["escalations.by_reason.sla"] == "0"
    assert values["sla_compliance.overall"] == "1.0"
    formula = metrics.Report.model_validate(
        {**report.model_dump(), "needs_review": {"count": 1, "case_ids": ["=HYPERLINK(1)"]}}
    )
    cells = dict(list(csv.reader(io.StringIO(report_formats.as_csv(formula))))[1:])
    assert cells["needs_review.case_ids.0"] == "'=HYPERLINK(1)"


def test_text_shows_n_a_for_nothing_and_escapes_case_text():
    empty = report_formats.as_text(metrics.report([]))
    assert "SLA compliance: overall n/a" in empty and "Reopen rate: n/a" in empty
    assert "0 cases resolved" in empty
    c = EngineCase(case_id="evil")
    c.case = c.case.model_copy(update={"title": "\x1b[2Jwiped\nforged line"})
    c.state = c.state.model_copy(update={"tier_level": 3})  # routed to L3 for the review
    c.ledger[0] = c.ledger[0].model_copy(update={"tier_level": 3})
    c.do(engine.resolve, ResolveRequest(actor=actor("admin", role="admin"), summary="x"))
    text = report_formats.as_text(metrics.report([c.history()]))
    assert "\x1b" not in text and "\\x1b[2Jwiped" in text
    assert "forged line" in text and "\nforged line" not in text


def test_the_backlog_counts_by_tier_and_age_and_flags_cases_near_their_sla():
    fresh = EngineCase(case_id="fresh")  # L1: 4 h to first response
    late = EngineCase(case_id="late")
    late.after(3 * 60 * MIN + 30 * MIN)  # 3.5 h of 4 h used
    now = late.now
    statuses = [
        case_view.status(fresh.state, fresh.case, now),
        case_view.status(late.state, late.case, now),
    ]
    assert statuses[1].sla_used == 0.875 and statuses[0].sla_used == 0.875  # same clock
    fresh_now = case_view.status(fresh.state, fresh.case, T0 + 30 * MIN)
    assert fresh_now.sla_used == 0.125
    backlog = metrics.backlog([fresh_now, statuses[1]], now)
    assert backlog["total"] == 2 and backlog["by_tier"] == {"L1": 2}
    assert backlog["by_age"]["1-4h"] == 2  # both were created at T0, 3.5 h ago
    assert [row["case_id"] for row in backlog["at_risk"]] == ["late"]
    assert backlog["at_risk"][0]["sla_used"] == 0.875
