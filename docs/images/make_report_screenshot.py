"""Regenerate docs/images/report.png: the HTML report of ~30 cases over four weeks.

    .venv/bin/python docs/images/make_report_screenshot.py

The cases are driven through the pure case engine with a clock this script moves
(no Temporal server), written to a throw-away SQLite ledger, and reported by the
real CLI (`escalator report --format html`). Debian's chromium (`make browser`)
takes the screenshot through Playwright; no browser is downloaded. The same seed
gives the same cases, so the picture only changes when the report does.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from escalator.adapters.ledger_store import LedgerStore  # noqa: E402
from escalator.adapters.policy_files import load_policy  # noqa: E402
from escalator.domain import case as engine  # noqa: E402
from escalator.domain import case_view  # noqa: E402
from escalator.domain.ledger import LedgerBatch  # noqa: E402
from escalator.domain.models import (  # noqa: E402
    AddNoteRequest,
    CaseInput,
    ClaimRequest,
    EscalateRequest,
    HoldRequest,
    ReopenRequest,
    ResolveRequest,
    ResumeRequest,
)
from escalator.domain.records import Actor  # noqa: E402

OUT = ROOT / "docs" / "images" / "report.png"
START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)  # a Monday; the report covers four weeks
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
TITLES = [
    "Outlook is failing to sync email", "VPN drops every 10 minutes", "SSO login loops",
    "Invoice PDF is blank", "Cannot reset password", "API returns 502 on /orders",
    "Printer queue stuck", "Webhook deliveries delayed", "Export to CSV times out",
    "MFA codes rejected", "Dashboard shows stale data", "Refund not applied",
]  # fmt: skip
CATEGORIES = ["email", "network", "sso", "billing", "api"]
AGENTS = ["alice", "bob", "carol", "dave", "erin"]
MIN = timedelta(minutes=1)


class Case:
    """One case and its clock, as the workflow would run it (minus the durability)."""

    def __init__(self, case_id: str, start: datetime, rng: random.Random, policy) -> None:
        self.case = CaseInput(
            case_id=case_id,
            title=rng.choice(TITLES),
            severity=rng.choices(["P1", "P2", "P3", "P4"], [1, 3, 8, 3])[0],
            category=rng.choice(CATEGORIES),
            policy=policy,
        )
        self.now = start
        self.state = engine.new_state(self.case, start)
        self.events: list = []
        self._take(engine.open_case(self.state, self.case, start))

    def _take(self, step: engine.Step) -> None:
        self.state = step.state
        self.events += [e.entry for e in step.effects if isinstance(e, engine.Recorded)]

    def wait(self, minutes: float) -> None:
        until = self.now + minutes * MIN
        self._take(engine.advance(self.state, self.case, self.now, until))
        self.now = until

    def do(self, action, request) -> None:
        self._take(action(self.state, self.case, request, self.now))


def who(user: str) -> Actor:
    return Actor(user=user, role="engineer")


def play(case: Case, rng: random.Random) -> None:
    """A plausible life: claimed (or left to breach), sometimes escalated, resolved."""
    agent = rng.choice(AGENTS)
    if case.state.tier_level == 1 and rng.random() < 0.2:
        case.wait(4 * 60 + rng.uniform(5, 50))  # L1's 4 h first response passes
    else:
        case.wait(rng.uniform(3, 150) if case.state.tier_level == 1 else rng.uniform(3, 45))
    case.do(engine.claim, ClaimRequest(actor=who(agent)))
    case.wait(rng.uniform(2, 30))
    case.do(engine.add_note, AddNoteRequest(actor=who(agent), text="reproduced on a test account"))
    if rng.random() < 0.2:
        case.do(engine.hold, HoldRequest(actor=who(agent), reason="waiting on the customer"))
        case.wait(rng.uniform(30, 240))
        case.do(engine.resume, ResumeRequest(actor=who(agent)))
    while case.state.tier_level < 3 and rng.random() < 0.35:
        case.wait(rng.uniform(10, 90))
        steps = rng.sample(["checked the runbook", "restarted the service", "read the logs"], 2)
        note = {"reason": "needs backend access", "steps_taken": steps}
        case.do(engine.escalate, EscalateRequest(actor=who(agent), note=note))
        agent = rng.choice(AGENTS)
        case.wait(rng.uniform(5, 60))
        case.do(engine.claim, ClaimRequest(actor=who(agent)))
    case.wait(rng.uniform(20, 400))
    case.do(engine.resolve, ResolveRequest(actor=who(agent), summary="fixed"))
    if rng.random() < 0.1:  # the customer says it is still broken
        case.state = engine.reopen_window_opened(case.state, case.case)
        case.wait(rng.uniform(60, 600))
        case.do(engine.reopen, ReopenRequest(actor=who(agent), reason="still broken"))
        case.wait(rng.uniform(10, 60))
        case.do(engine.claim, ClaimRequest(actor=who(agent)))
        case.wait(rng.uniform(10, 60))
        case.do(engine.resolve, ResolveRequest(actor=who(agent), summary="fixed for good"))


def build_ledger(url: str) -> None:
    rng = random.Random(7)
    policy = load_policy(ROOT / "policies" / "default.yaml")
    policy = policy.model_copy(update={"reopen_window": timedelta(days=3)})
    store = LedgerStore(url)
    for n in range(30):
        start = START + timedelta(days=rng.uniform(0, 26.5))
        case = Case(f"{4100 + n}", start, rng, policy)
        play(case, rng)
        facts = case_view.ledger_case(case.state, case.case)
        store.write(LedgerBatch(case_id=case.case.case_id, events=tuple(case.events), case=facts))
    store.close()


def main() -> int:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium is not installed: run `make browser` first", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="escalator-report-shot-") as tmp:
        url = f"sqlite:///{tmp}/ledger.db"
        build_ledger(url)
        page_file = Path(tmp) / "report.html"
        subprocess.run(
            [sys.executable, "-m", "escalator.cli", "report", "--format", "html",
             "--from", "2026-11-02", "--to", "2026-11-29", "--no-open", "--out", str(page_file)],
            check=True, cwd=ROOT, env={**os.environ, "ESCALATOR_LEDGER_URL": url},
        )  # fmt: skip
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 1600})
            page.goto(page_file.as_uri())
            page.screenshot(path=OUT, clip={"x": 0, "y": 0, "width": 1200, "height": 1600})
            browser.close()
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
