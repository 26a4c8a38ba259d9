"""The Temporal Web UI as the case console, checked in a real headless Chromium.

Chromium is Debian's (installed by `make test`), driven by Playwright through
`executable_path`; no browser is ever downloaded. Where Chromium is missing the
test is skipped with the reason, never passed silently.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import pytest_asyncio
from support import RecordingNotifier, actor, case_workers, free_port, seconds_policy, unique_queue
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from escalator.devstack.binaries import find_binary
from escalator.domain.search_attributes import ALL_KEYS
from starter import EscalatorClient

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Flags that keep a headless Chromium off the network this machine does not have.
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
TITLE = "Outlook is failing to sync email"


@pytest_asyncio.fixture(scope="module")
async def ui_stack():
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (make test installs it with apt-get)")
    playwright_api = pytest.importorskip("playwright.async_api")
    ui_port = free_port()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=ALL_KEYS,
        ui=True,
        ui_port=ui_port,
        dev_server_log_level="error",
    )
    queue = unique_queue("ui")
    async with case_workers(
        env.client,
        queue,
        RecordingNotifier().activities,
    ):  # fmt: skip
        escalator = EscalatorClient(env.client, queue)
        await escalator.start_case({
            "case_id": "123", "title": TITLE, "severity": "P1",
            "customer": {"name": "Jane Roe", "email": "jane@acme.example"},
            "policy": seconds_policy(first_response=3600, resolution=7200),
        })  # fmt: skip
        await escalator.escalate(
            "123", actor("alice"),
            {"reason": "needs backend access", "steps_taken": ["re-uploaded cert"],
             "suggested_next_step": "check the certificate cache"},
        )  # fmt: skip
        async with playwright_api.async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1440, "height": 1000})
            yield f"http://127.0.0.1:{ui_port}", page
            await browser.close()
    await env.shutdown()


async def visible_text(page) -> str:
    """Text of the page and of its frames: the UI renders markdown (summary, details,
    current details) inside sandboxed iframes."""
    parts = []
    for frame in page.frames:
        try:
            parts.append(await frame.inner_text("body"))
        except Exception:  # a frame may be navigating or empty
            continue
    return "\n".join(parts)


async def wait_for_text(page, text: str, within: float = 30.0) -> str:
    # Polled from Python: the UI's content-security policy forbids wait_for_function.
    for _ in range(int(within * 4)):
        body = await visible_text(page)
        if text in body:
            return body
        await page.wait_for_timeout(250)
    raise AssertionError(f"{text!r} did not appear within {within}s")


QUEUE_COLUMNS = ("CaseSeverity", "CaseTierName", "CaseTeam", "CaseAssignee", "NextDeadline")


async def test_open_cases_list_reads_like_a_queue(ui_stack):
    base, page = ui_stack
    await page.goto(f'{base}/namespaces/default/workflows?query=CaseStatus="open"')
    await page.get_by_text("case-123").first.wait_for(timeout=30_000)
    # A supervisor's saved set-up: our search attributes as columns (kept by the UI
    # in local storage). UI 2.54 lists no Summary column, so the summary is checked
    # on the case page below.
    await page.get_by_test_id("workflows-summary-table-configuration-button").click()
    for column in QUEUE_COLUMNS:
        await page.get_by_test_id(f"orderable-list-item-{column}-add-button").click()
    await page.get_by_test_id("drawer-close-button").click()
    for remove in ("Run ID", "Type", "End"):  # keep the queue readable
        await page.get_by_test_id("workflows-summary-table-configuration-button").click()
        await page.get_by_test_id(f"orderable-list-item-{remove}-remove-button").click()
        await page.get_by_test_id("drawer-close-button").click()
    await page.get_by_text("Configure Workflows Table").first.wait_for(state="hidden")
    await wait_for_text(page, "Specialist Support")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "ui-open-cases.png", full_page=True)
    table = await page.inner_text("table")
    assert "case-123" in table
    for value in ("P1", "Specialist Support", "support-specialists"):
        assert value in table, f"{value!r} missing from the queue row"


async def test_case_page_shows_summary_and_live_briefing(ui_stack):
    base, page = ui_stack
    await page.goto(f"{base}/namespaces/default/workflows/case-123")
    tab = page.get_by_text("User Metadata", exact=True).first
    await tab.wait_for(timeout=30_000)
    await tab.click()
    try:
        body = await wait_for_text(page, "Start here")
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=ARTIFACTS / "ui-case-briefing.png", full_page=True)
    assert f"P1 · #123 · {TITLE}" in body  # static summary
    assert "Jane Roe" in body and "Policy: seconds" in body  # static details
    assert "L2 Specialist Support" in body  # the owning tier, in the current details
    assert "Next deadline:" in body and "L2 first-response" in body
    start_here = body.split("Start here", 1)[1]
    assert "check the certificate cache" in start_here
