"""`escalator simulate --format html`: the page, checked as text (no browser).

The report is built the way `escalator simulate` builds it: cases run through the
pure engine (tests/support.EngineCase) with a clock the test moves, their ledger
histories re-run under a faster policy (escalator.domain.simulation.rerun), and the
re-runs compared (escalator.domain.simulation_report.compare). So every figure on
the page is one the test knows.
"""

from __future__ import annotations

import base64
import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from support import ENGINE_T0 as T0
from support import EngineCase, actor, policy_with

from escalator.adapters import report_html, simulation_html
from escalator.domain import case as engine
from escalator.domain import case_view, simulation, simulation_report
from escalator.domain.ledger import CaseHistory
from escalator.domain.models import AddNoteRequest, ClaimRequest, ResolveRequest
from escalator.domain.simulation_report import PathStep

MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
HOSTILE = "<script>alert(1)</script> & $x$ \u202eevil"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt; &amp; $x$ \\u202eevil"
AGENT = '"><img src=x onerror=alert(3)>'
PNG = b"\x89PNG\r\n\x1a\n"
IMG_SRC = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
CHARTS = 6  # escalations by tier and by reason, breaches, compliance, entering, peak unclaimed
# L1 must answer in 2 h, not 4 h: a case first claimed after that goes to L2 by the clock.
FAST = policy_with(
    name="fast-l1", tier_changes={1: {"sla": {"first_response": "2h", "resolution_target": "24h"}}}
)
POLICY = {"name": "<b>fast</b> $x$", "version": "v2 \u202e<i>"}


def history(c: EngineCase) -> CaseHistory:
    """The case as the ledger holds it once resolved."""
    return CaseHistory(facts=case_view.ledger_case(c.state, c.case), events=tuple(c.ledger))


def slow_claim(case_id: str, start: datetime) -> EngineCase:
    """Claimed 3 h in by HOSTILE, within the default L1's 4 h: under FAST the case is in
    L2 by then (and L3 by 4 h), so the claim is dropped."""
    c = EngineCase(case_id=case_id, start=start)
    c.after(3 * HOUR)
    c.do(engine.claim, ClaimRequest(actor=actor(HOSTILE)))
    c.do(engine.add_note, AddNoteRequest(actor=actor(HOSTILE), text=HOSTILE))
    c.after(HOUR)
    c.do(engine.resolve, ResolveRequest(actor=actor(HOSTILE), summary="done"))
    return c


def quick(case_id: str, start: datetime) -> EngineCase:
    """Claimed after 20 min, resolved 10 min later: the same under either policy."""
    c = EngineCase(case_id=case_id, start=start)
    c.after(20 * MIN)
    c.do(engine.claim, ClaimRequest(actor=actor("alice")))
    c.after(10 * MIN)
    c.do(engine.resolve, ResolveRequest(actor=actor("alice"), summary="done"))
    return c


def simulated(*cases: EngineCase, assumption: simulation.Assumption = "same-time"):
    reruns = [simulation.rerun(history(c), FAST, assumption) for c in cases]
    return simulation_report.compare(
        reruns,
        policy=POLICY,
        assumption=assumption,
        period_from=T0.replace(hour=0),
        period_to=T0.replace(hour=0) + timedelta(days=7),
    )


@pytest.fixture(scope="module")
def report():
    return simulated(slow_claim("c-slow", T0), quick("c-quick", T0 + 30 * MIN))


@pytest.fixture(scope="module")
def page(report) -> str:
    return simulation_html.render(report)


def row(page: str, label: str) -> list[str]:
    """The cells of the table row whose first cell is `label`."""
    found = re.search(rf"<tr><td>{re.escape(label)}</td>(.*?)</tr>", page)
    assert found, f"no row {label!r}"
    return re.findall(r"<td>(.*?)</td>", found.group(1))


def section(page: str, heading: str) -> str:
    start = page.index(f"<h2>{heading}")
    end = page.find("<h2>", start + 1)
    return page[start : end if end != -1 else len(page)]


# -- the scenario is what the page is tested against -----------------------------------------


def test_the_scenario(report):
    assert report.cases == 2
    assert [c.case_id for c in report.changed_cases] == ["c-slow"]
    assert sum(report.actual.escalations_by_tier.values()) == 0
    assert report.simulated.escalations_by_tier == {"L1": 1, "L2": 1}
    assert (report.actual.breaches, report.simulated.breaches) == (0, 2)
    assert report.actual.sla_compliance.overall == 1.0
    assert report.simulated.sla_compliance.overall == 0.5
    assert report.dropped_actions.total == 1
    assert (report.actual.notifications, report.simulated.notifications > 0) == (0, True)
    [dropped] = report.dropped_actions.items
    assert (dropped.action, dropped.actor) == ("claim", HOSTILE)


# -- the document ----------------------------------------------------------------------------


def test_a_complete_self_contained_document(page):
    assert page.startswith('<!doctype html>\n<html lang="en">\n<head>\n')
    assert page.endswith("</body>\n</html>\n")
    assert page.count("<html") == page.count("</html>") == 1
    assert page.count("<body>") == page.count("</body>") == 1
    assert f'<meta http-equiv="Content-Security-Policy" content="{report_html.CSP}">' in page
    assert report_html.CSP == "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    assert "<script" not in page.lower()
    # Nothing is fetched: every src is a data: URL, and nothing links out.
    assert re.findall(r'\b(?:src|href)="(?!data:)', page) == []
    assert "http://" not in page and "https://" not in page
    for tag in ("table", "section", "figure", "header"):
        assert page.count(f"<{tag}") == page.count(f"</{tag}>"), tag


def test_the_header_says_what_was_simulated(page):
    title = "What would &lt;b&gt;fast&lt;/b&gt; $x$ have done?"
    assert f"<title>{title}</title>" in page
    assert f"<h1>{title}</h1>" in page
    assert "version <code>v2 \\u202e&lt;i&gt;</code>" in page
    assert "over 2 cases resolved from 2026-03-02 00:00 UTC to 2026-03-09 00:00 UTC" in page
    assert "each person acts at the clock time they really did" in page
    assert "<strong>1</strong> of 2 cases would have gone differently" in page
    assert "<strong>1</strong> recorded action could not have been done again" in page


def test_the_same_delay_assumption_in_words():
    page = simulation_html.render(simulated(quick("c-1", T0), assumption="same-delay"))
    assert "<code>same-delay</code>" in page
    assert "each person acts as long after their tier was notified as they really did" in page
    assert "at the clock time they really did" not in page


def test_the_headline_figures_actual_simulated_and_change(report, page):
    headline = section(page, "Actual and simulated")
    assert row(headline, "escalations") == ["0", "2", "+2"]
    assert row(headline, "SLA breaches") == ["0", "2", "+2"]
    assert row(headline, "SLA compliance (cases without a breach)") == [
        "100.0 %",
        "50.0 %",
        "-50.0 pt",
    ]
    assert row(headline, "dropped actions") == ["0", "1", "+1"]
    # EngineCase keeps no delivery receipts, so the actual side counts none.
    sent = report.simulated.notifications
    assert row(headline, "notifications to the tiers") == ["0", str(sent), f"+{sent}"]


def test_the_figures_by_tier(page):
    escalations = section(page, "Escalations")
    assert row(escalations, "L1") == ["0", "1", "+1"]
    assert row(escalations, "L2") == ["0", "1", "+1"]
    assert row(escalations, "sla") == ["0", "2", "+2"]
    assert row(escalations, "manual") == ["0", "0", "0"]
    breaches = section(page, "Breaches and SLA compliance")
    compliance = breaches[breaches.index("<h3>SLA compliance by tier") :]
    assert row(compliance, "L1") == ["100.0 %", "50.0 %", "-50.0 pt"]
    assert row(compliance, "L2") == ["n/a", "0.0 %", "n/a"]  # never 100 % of nothing
    assert row(compliance, "<strong>all cases</strong>") == ["100.0 %", "50.0 %", "-50.0 pt"]
    load = section(page, "Load on the tiers")
    # Entering actual, simulated, change; peak unclaimed actual, simulated, change.
    assert row(load, "L1") == ["2", "2", "0", "2", "2", "0"]  # both wait 08:30-08:50
    assert row(load, "L2") == ["0", "1", "+1", "0", "1", "+1"]
    assert row(load, "L3")[:3] == ["0", "1", "+1"]


def test_changed_cases_with_their_paths(page):
    changed = section(page, "Changed cases (1)")
    assert row(changed, "<code>c-slow</code>") == [
        "2026-03-02",
        "L1 08:00",
        "L1 08:00 → L2 10:00 → L3 12:00",
        "0 → 2",
        "0 → 2",
    ]
    assert "c-quick" not in changed  # it went the same way


def test_dropped_actions_escape_who_and_why(report, page):
    dropped = section(page, "Dropped actions (1)")
    assert row(dropped, "<code>c-slow</code>") == [
        "claim",
        "2026-03-02 11:00 UTC",
        ESCAPED,
        "taken at L1, but the case would be at L2",
    ]
    # The model's reason and action are text too: escaped like the rest.
    [item] = report.dropped_actions.items
    hostile = report.model_copy(
        update={
            "dropped_actions": report.dropped_actions.model_copy(
                update={
                    "by_action": {HOSTILE: 1},
                    "items": [item.model_copy(update={"action": AGENT, "reason": HOSTILE})],
                }
            )
        }
    )
    page = simulation_html.render(hostile)
    dropped = section(page, "Dropped actions (1)")
    assert row(dropped, "<code>c-slow</code>") == [
        html.escape(AGENT),
        "2026-03-02 11:00 UTC",
        ESCAPED,
        ESCAPED,
    ]
    assert f"By action: {ESCAPED} 1." in dropped


def test_no_case_text_is_left_raw(page):
    assert "\u202e" not in page
    assert "<script>" not in page and "<img src=x" not in page
    assert "<b>fast</b>" not in page and "<i>" not in page
    assert ESCAPED in page


def test_the_charts_are_inline_pngs(page):
    images = IMG_SRC.findall(page)
    assert len(images) == CHARTS
    assert page.count("<img ") == CHARTS
    for data in images:
        assert base64.b64decode(data, validate=True).startswith(PNG)
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page)
    assert captions == [
        "Escalations by tier left",
        "Escalations by reason",
        "SLA breaches by tier",
        "SLA compliance by tier",
        "Cases entering each tier",
        "Most cases waiting unclaimed at once",
    ]
    # The alt text carries the figures, for a reader without images.
    assert (
        'alt="Escalations by tier left: L1: actual 0, simulated 1; L2: actual 0, simulated 1"'
        in page
    )
    assert "all: actual 100.0 %, simulated 50.0 %" in page


def test_a_dollar_in_a_chart_label_is_not_mathtext():
    # Unescaped, `$\undefined$` is mathtext matplotlib cannot parse: drawing it raises.
    png = simulation_html._paired(
        ["$\\undefined$", "L1"], [[1.0, 2.0], [3.0, None]], unit="$cases", empty="none"
    )
    assert png.startswith(PNG)


def test_long_lists_are_capped_and_say_so(report):
    many = report.model_copy(
        update={
            "changed_cases": report.changed_cases * 203,
            "dropped_actions": report.dropped_actions.model_copy(
                update={"total": 250, "items": report.dropped_actions.items * 250}
            ),
        }
    )
    page = simulation_html.render(many)
    changed = section(page, "Changed cases (203)")
    assert changed.count("<tr><td><code>c-slow</code>") == simulation_html.ROWS_SHOWN == 200
    assert "and 3 more; <code>--format json</code> lists all." in changed
    dropped = section(page, "Dropped actions (250)")
    assert dropped.count("<tr><td><code>c-slow</code>") == 200
    assert "and 50 more; <code>--format json</code> lists all." in dropped


def test_short_lists_have_no_note(page):
    assert "more; <code>--format json</code>" not in page


def test_an_empty_report_renders_cleanly():
    empty = simulation_report.compare(
        [], policy={"name": "fast", "version": "v2"}, assumption="same-time"
    )
    page = simulation_html.render(empty)
    assert page.startswith("<!doctype html>") and page.endswith("</html>\n")
    assert report_html.CSP in page
    assert "No cases in the period" in page
    assert "over 0 cases resolved from the beginning to now" in page
    assert "<img" not in page and "<table" not in page
    assert "n/a" not in page and "None" not in page


def test_a_report_where_nothing_changed():
    page = simulation_html.render(simulated(quick("c-1", T0)))
    assert "No case would have gone differently." in page
    assert "None: every recorded action could be done again" in page
    assert len(IMG_SRC.findall(page)) == CHARTS


def test_paths_over_days():
    day = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)
    path = [PathStep(tier="L1", at=day), PathStep(tier="L2", at=day + HOUR)]
    assert simulation_html.path_text(path) == "L1 23:30 → L2 00:30 (+1d)"
    assert simulation_html.path_text([]) == "(no tiers)"
