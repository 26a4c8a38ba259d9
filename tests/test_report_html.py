"""`escalator report --format html`: the weekly series, the page, and the page in Chromium.

Cases come from the pure engine (tests/support.EngineCase) with a clock the test
moves, so each case's week and figures are known. The page is checked as text (it
is self-contained, escapes case text, and shows the report's figures), then loaded
in Debian's headless Chromium to see that its charts really render.
"""

from __future__ import annotations

import base64
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from support import ENGINE_T0 as T0
from support import EngineCase, actor, policy_with
from test_metrics import claim, escalate, note, resolve

from escalator.adapters import report_html
from escalator.adapters.ledger_store import LedgerStore
from escalator.cli.main import run as cli
from escalator.domain import case as engine
from escalator.domain import metrics, report_weeks
from escalator.domain.ledger import CaseHistory, LedgerBatch
from escalator.domain.models import ReopenRequest

MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WEEK = timedelta(days=7)
MONDAY = T0.replace(hour=0)  # the report periods start at midnight, as --from does
PNG = b"\x89PNG\r\n\x1a\n"
CHARTS = 5  # escalations by tier, by reason, MTTA, MTTR, compliance
HOSTILE = "<script>alert(1)</script> & $x$ \u202eevil"
AGENT = '"><img src=x onerror=alert(3)>'  # a user name is any text an operator typed
IMG_SRC = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
ARTIFACTS = Path(__file__).parent / "artifacts"


def quick(case_id: str, start, *, claim_after=20 * MIN, work=10 * MIN, **fields) -> EngineCase:
    """Claimed after `claim_after`, resolved `work` later, by alice."""
    c = EngineCase(case_id=case_id, start=start, **fields)
    c.after(claim_after)
    claim(c, "alice")
    c.after(work)
    resolve(c, "alice")
    return c


def to_l3(case_id: str, start, title: str = "SSO login loops", **fields) -> EngineCase:
    """Escalated by hand L1 -> L2 -> L3, with notes and steps: one L3 review."""
    c = EngineCase(case_id=case_id, start=start, **fields)
    c.case = c.case.model_copy(update={"title": title})
    c.after(HOUR)
    claim(c, "alice")
    c.after(30 * MIN)
    escalate(c, "alice", "checked the runbook")
    c.after(30 * MIN)
    claim(c, "carol")
    note(c, "carol", "cannot reproduce on staging")
    escalate(c, "carol", "read the logs")
    c.after(15 * MIN)
    claim(c, "dave")
    c.after(45 * MIN)
    resolve(c, "dave")
    return c


def breached(case_id: str, start) -> EngineCase:
    """Unclaimed past L1's 4 h first response: the SLA moves it to L2."""
    c = EngineCase(case_id=case_id, start=start)
    c.after(4 * HOUR + 20 * MIN)
    claim(c, "bob")
    c.after(40 * MIN)
    resolve(c, "bob")
    return c


def four_weeks() -> list[CaseHistory]:
    """Week 0: two cases, one escalated to L3; week 1: none; week 2: an SLA breach;
    week 3: a case resolved in week 0 first, reopened and resolved again in week 3."""
    reopened = quick("r", T0 + 6 * DAY, policy=policy_with(reopen_window="30d"))
    reopened.after(15 * DAY)
    reopened.do(engine.reopen, ReopenRequest(actor=actor("alice"), reason="still broken"))
    reopened.after(HOUR)
    claim(reopened, "alice")
    resolve(reopened, "alice")
    cases = [quick("a", T0), to_l3("l3", T0 + DAY), breached("b", T0 + 2 * WEEK), reopened]
    return [c.history() for c in cases]


def page_of(histories: list[CaseHistory], weeks: int = 4, **update) -> tuple[metrics.Report, str]:
    report = metrics.report(histories, period_from=MONDAY, period_to=MONDAY + weeks * WEEK)
    if update:
        report = report.model_copy(update=update)
    return report, report_html.render(report, histories)


def images(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in IMG_SRC.findall(page)]


# -- the weekly series --------------------------------------------------------------------


def test_weeks_count_each_case_in_the_week_of_its_last_resolve_and_keep_empty_weeks():
    weeks = report_weeks.weekly(four_weeks(), period_from=MONDAY, period_to=MONDAY + 4 * WEEK)
    assert [w.start for w in weeks] == [MONDAY + i * WEEK for i in range(4)]
    assert [w.start.weekday() for w in weeks] == [0, 0, 0, 0]  # Mondays, 00:00 UTC
    assert [w.label for w in weeks] == ["2026-W10", "2026-W11", "2026-W12", "2026-W13"]
    assert [w.cases for w in weeks] == [2, 0, 1, 1]  # "r" counts once, in week 3
    assert [w.escalations for w in weeks] == [2, 0, 1, 0]
    # Every week has every tier and reason, zeros included, so the bars stack evenly.
    assert weeks[0].escalations_by_tier == {"L1": 1, "L2": 1}
    assert weeks[1].escalations_by_tier == {"L1": 0, "L2": 0}
    assert weeks[0].escalations_by_reason == {"sla": 0, "manual": 2, "severity": 0, "ai": 0}
    assert weeks[2].escalations_by_reason == {"sla": 1, "manual": 0, "severity": 0, "ai": 0}
    assert weeks[1].mtta_seconds.n == 0 and weeks[1].mtta_seconds.median is None
    assert weeks[2].mtta_seconds.mean == (4 * 60 + 20) * 60  # creation to bob's claim


def test_each_week_is_metrics_report_of_its_cases():
    histories = four_weeks()
    weeks = report_weeks.weekly(histories, period_from=MONDAY, period_to=MONDAY + 4 * WEEK)
    first_week = metrics.report(histories[:2])
    assert weeks[0].mtta_seconds == first_week.mtta_seconds
    assert weeks[0].mttr_seconds == first_week.mttr_seconds
    assert weeks[0].mttr_seconds.median == (30 * MIN + 3 * HOUR) / 2 / timedelta(seconds=1)


def test_a_period_ending_on_a_monday_does_not_reach_into_that_week():
    weeks = report_weeks.weekly([], period_from=T0 + DAY, period_to=MONDAY + WEEK)
    assert [w.start for w in weeks] == [MONDAY]
    assert weeks[0].cases == 0 and weeks[0].escalations_by_tier == {}
    assert report_weeks.weekly([]) == []  # no period, no cases: no weeks at all


def test_a_case_resolved_outside_the_period_still_gets_its_week():
    late = quick("late", T0 + 5 * WEEK).history()
    weeks = report_weeks.weekly([late], period_from=MONDAY, period_to=MONDAY + WEEK)
    assert len(weeks) == 6 and weeks[-1].cases == 1


def test_the_team_filter_keeps_the_cases_the_report_counts():
    histories = four_weeks()
    kept = report_weeks.of_team(histories, "engineering-oncall")
    assert [h.facts.case_id for h in kept] == ["l3"]
    assert len(kept) == metrics.report(histories, team="engineering-oncall").cases
    assert report_weeks.of_team(histories, None) == histories


# -- the page -----------------------------------------------------------------------------


def test_the_page_is_self_contained_with_a_strict_content_security_policy():
    _, page = page_of(four_weeks())
    assert page.startswith("<!doctype html>")
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    assert f'<meta http-equiv="Content-Security-Policy" content="{csp}">' in page
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert "url(" not in page and "@import" not in page
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == CHARTS
    assert all(s.startswith("data:image/png;base64,") for s in sources)


def test_every_chart_is_a_png_with_alt_text():
    _, page = page_of(four_weeks())
    pngs = images(page)
    assert len(pngs) == CHARTS
    for png in pngs:
        assert png.startswith(PNG)
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert width > 400 and height > 200  # the IHDR chunk: a real picture
    alts = re.findall(r'<img [^>]*alt="([^"]+)"', page)
    assert len(alts) == CHARTS and all(len(a) > 20 for a in alts)
    assert "3 escalations over 4 weeks" in alts[0]


def test_case_text_is_escaped_everywhere_and_never_reaches_the_page_raw():
    evil = EngineCase(case_id="evil-1", start=T0, severity="P1")  # routed straight to L3
    evil.case = evil.case.model_copy(update={"title": HOSTILE})
    claim(evil, AGENT)
    note(evil, AGENT, "</dd><script>alert(2)</script>")
    resolve(evil, AGENT)
    history = evil.history()
    # The ledger's own columns are not validated like a new case's: a category could
    # be anything a database holds.
    history = history.model_copy(
        update={"facts": history.facts.model_copy(update={"category": "<b>cat</b>"})}
    )
    report, page = page_of([history], weeks=1)
    assert report.l3_reviews[0].title == HOSTILE and report.escalations.total == 0
    assert "routed there when opened" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; $x$" in page
    assert "<script>" not in page and "</script>" not in page
    assert "&lt;b&gt;cat&lt;/b&gt;" in page and "<b>cat</b>" not in page
    assert "&lt;/dd&gt;&lt;script&gt;alert(2)" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(3)&gt;" in page  # the agent's name
    assert "<img src=x" not in page and 'alt(3)">' not in page
    # A bidi override would make the line read differently: it is shown, not obeyed.
    assert "\u202e" not in page and "\\u202eevil" in page


def test_chart_labels_with_dollars_do_not_start_mathtext():
    # The compliance chart labels its bars with the report's tier keys: a key that is
    # broken mathtext must still draw, as plain text.
    report = metrics.report([quick("a", T0).history()], period_from=MONDAY, period_to=MONDAY + WEEK)
    odd = report.model_copy(
        update={"sla_compliance": metrics.Compliance(overall=0.5, by_tier={"$\\frac{$": 0.5})}
    )
    page = report_html.render(odd, [])
    assert len(images(page)) == CHARTS
    assert "$\\frac{$ 50.0 %" in page  # the alt text says what the bar shows


def test_the_figures_on_the_page_are_the_reports():
    histories = four_weeks()
    report, page = page_of(histories)
    cards = dict(
        (label, value)
        for value, label in re.findall(
            r'<div class="value">([^<]*)</div><div class="label">([^<]*)</div>', page
        )
    )
    assert cards["cases resolved"] == str(report.cases) == "4"
    assert cards["escalations"] == "3"
    assert cards["L3 reviews"] == "1"
    assert cards["MTTA median"] == report_html.duration(report.mtta_seconds.median)
    assert cards["SLA compliance"] == "75.0 %"  # only "b" breached
    assert cards["reopen rate"] == "25.0 %"
    review = page.split('<article class="review">', 1)[1].split("</article>", 1)[0]
    assert "<code>l3</code> SSO login loops" in review
    assert "from L2 on 2026-03-03 10:00 UTC, manual, by carol" in review
    assert "<li>checked the runbook</li><li>read the logs</li>" in review
    assert "cannot reproduce on staging" in review
    assert "L1 1h 30m, L2 30m 00s, L3 1h 00m" in review
    assert "Not read" in page  # no backlog asked for


def test_compliance_of_a_tier_no_case_entered_is_n_a_never_100_percent():
    report, page = page_of([quick("a", T0).history()], weeks=1)
    assert report.sla_compliance.by_tier == {"L1": 1.0}
    table = page.split("<h2>SLA compliance</h2>", 1)[1].split("</section>", 1)[0]
    assert "<td>L1</td><td>100.0 %</td>" in table
    assert "<td>L2</td><td>n/a</td>" in table and "<td>L3</td><td>n/a</td>" in table
    alts = re.findall(r'<img [^>]*alt="([^"]+)"', page)
    assert "L1 100.0 %, L2 n/a, L3 n/a, all 100.0 %" in alts[-1]
    _, empty = page_of([], weeks=1)
    assert "<td><strong>all cases</strong></td><td>n/a</td>" in empty
    assert "100.0 %" not in empty and len(images(empty)) == CHARTS


def test_an_empty_report_without_a_period_still_renders():
    page = report_html.render(metrics.report([]), [])
    assert "0 cases resolved from the beginning to now" in page
    assert len(images(page)) == CHARTS


def test_the_open_backlog_is_shown_when_read():
    backlog = {
        "total": 2,
        "by_tier": {"L1": 1, "L2": 1},
        "by_age": {"<1h": 2},
        "at_risk": [
            {"case_id": "<i>x</i>", "tier": "L1", "state": "open", "assignee": None,
             "sla_used": 0.9, "next_deadline": T0},
        ],
    }  # fmt: skip
    _, page = page_of([quick("a", T0).history()], weeks=1, open=backlog)
    section = page.split("<h2>Open now</h2>", 1)[1].split("</section>", 1)[0]
    assert "<strong>2</strong> open" in section and "L1 1, L2 1" in section
    assert "<code>&lt;i&gt;x&lt;/i&gt;</code>" in section and "90.0 %" in section
    assert "unassigned" in section


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "n/a"), (0, "0s"), (45, "45s"), (270, "4m 30s"), (7500, "2h 05m"),
     (3 * 86400 + 4 * 3600 + 59, "3d 04h")],
)  # fmt: skip
def test_durations_read_like_a_person_writes_them(seconds, shown):
    assert report_html.duration(seconds) == shown


def test_the_cli_writes_the_html_report(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path}/ledger.db"
    store = LedgerStore(url)
    for history in four_weeks():
        store.write(
            LedgerBatch(case_id=history.facts.case_id, events=history.events, case=history.facts)
        )
    store.close()
    monkeypatch.setenv("ESCALATOR_LEDGER_URL", url)
    out = tmp_path / "report.html"
    argv = ["report", "--format", "html", "--from", "2026-03-02", "--to", "2026-03-29"]
    assert cli([*argv, "--no-open", "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    assert '<div class="value">4</div><div class="label">cases resolved</div>' in page
    assert len(images(page)) == CHARTS
    assert "report written to" in capsys.readouterr().err
    # --team: the charts count the team's cases only, as the figures do.
    assert cli([*argv, "--no-open", "--out", str(out), "--team", "engineering-oncall"]) == 0
    team_page = out.read_text(encoding="utf-8")
    assert '<div class="value">1</div><div class="label">cases resolved</div>' in team_page
    assert "1 escalations over 4 weeks" not in team_page and "2 escalations over 4" in team_page


# -- in a real browser ------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Flags that keep a headless Chromium off the network this machine does not have.
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.mark.integration  # a real browser in a subprocess: not the fast unit lane
async def test_the_page_renders_its_charts_in_chromium(tmp_path):
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (make browser installs it with apt-get)")
    playwright_api = pytest.importorskip("playwright.async_api")
    evil = to_l3("evil-1", T0 + DAY, title=HOSTILE)
    _, page_html = page_of([*four_weeks(), evil.history()])
    page_file = tmp_path / "report.html"
    page_file.write_text(page_html, encoding="utf-8")
    problems: list[str] = []
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 900})
            page.on(
                "console",
                lambda m: (
                    problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning")
                    else None
                ),
            )
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("dialog", lambda d: problems.append(f"dialog: {d.message}"))
            page.on("request", lambda r: None if r.url.startswith(("data:", "file:")) else (
                problems.append(f"request: {r.url}")
            ))  # fmt: skip
            await page.goto(page_file.as_uri())
            sizes = await page.evaluate(
                "() => Array.from(document.images, i => [i.complete, i.naturalWidth, i.width])"
            )
            heading = await page.inner_text("article.review h3 >> nth=1")
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=ARTIFACTS / "report-html.png", full_page=True)
        finally:
            await browser.close()
    assert len(sizes) == CHARTS
    assert all(complete and natural > 0 and shown > 0 for complete, natural, shown in sizes), sizes
    assert "<script>alert(1)</script> & $x$" in heading  # shown as text, not run
    assert problems == []
    assert (ARTIFACTS / "report-html.png").read_bytes().startswith(PNG)
