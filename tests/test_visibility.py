"""Search attributes and UI metadata on the real dev server, after each transition."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import pytest_asyncio
from support import RecordingNotifier, actor, case_workers, eventually, seconds_policy, unique_queue

from escalator.adapters.visibility import case_query, open_case_query
from escalator.domain import search_attributes as search
from escalator.domain.policy_version import policy_version
from starter import EscalatorClient

pytestmark = pytest.mark.integration
README = Path("README.md").read_text(encoding="utf-8")
NOTE = {"reason": "needs backend access", "steps_taken": ["checked runbook"],
        "suggested_next_step": "check the certificate cache"}  # fmt: skip


@pytest_asyncio.fixture
async def escalator(dev_env):
    queue = unique_queue("visibility")
    notifier = RecordingNotifier()
    async with case_workers(
        dev_env.client,
        queue,
        notifier.activities,
    ):  # fmt: skip
        yield EscalatorClient(dev_env.client, queue)


async def visible(escalator: EscalatorClient, query: str) -> set[str]:
    ids = set()
    async for execution in escalator.client.list_workflows(query):
        ids.add(execution.id.removeprefix("case-"))
    return ids


async def attributes(escalator: EscalatorClient, case_id: str):
    description = await escalator.client.get_workflow_handle(f"case-{case_id}").describe()
    return description.typed_search_attributes


async def test_visibility_follows_every_transition(escalator):
    policy = seconds_policy(first_response=600, resolution=1200)
    await escalator.start_case({"case_id": "vis-1", "title": "VPN down", "severity": "P2",
                                "account": "acme", "policy": policy})  # fmt: skip
    await escalator.start_case({"case_id": "vis-2", "title": "Printer", "policy": policy})

    open_unclaimed = 'CaseStatus = "open" AND CaseAssignee IS NULL'
    await eventually(lambda: _contains(visible(escalator, open_unclaimed), {"vis-1", "vis-2"}))
    first = await attributes(escalator, "vis-1")
    assert first.get(search.CASE_TIER) == 1
    assert first.get(search.CASE_TEAM) == "support-generalists"
    assert first.get(search.CASE_SEVERITY) == "P2"
    assert first.get(search.CASE_ACCOUNT) == "acme"
    assert first.get(search.SLA_BREACHED) is False
    assert first.get(search.NEXT_DEADLINE) is not None

    await escalator.claim("vis-1", actor("alice", account="acme"))
    claimed_by_alice = case_query(status="claimed", assignee="alice")
    await eventually(lambda: _contains(visible(escalator, claimed_by_alice), {"vis-1"}))
    assert "vis-1" not in await visible(escalator, open_unclaimed)

    await escalator.escalate("vis-1", actor("alice", account="acme"), NOTE)
    at_l2 = case_query(status="open", tier=2, team="support-specialists", severity="P2")
    await eventually(lambda: _contains(visible(escalator, at_l2), {"vis-1"}))
    assert (await attributes(escalator, "vis-1")).get(search.CASE_ASSIGNEE) is None

    await escalator.resolve("vis-1", actor("bob", account="acme"), "fixed")
    await eventually(
        lambda: _contains(visible(escalator, case_query(status="resolved")), {"vis-1"})
    )
    assert "vis-1" not in await visible(escalator, case_query(status="open"))
    assert (await attributes(escalator, "vis-1")).get(search.NEXT_DEADLINE) is None
    # vis-2 was never touched and is still in the unclaimed queue.
    assert "vis-2" in await visible(escalator, open_unclaimed)


async def test_category_and_customer_tier_are_searchable_and_only_set_when_given(escalator):
    policy = seconds_policy(first_response=600, resolution=1200)
    tagged = {"category": "sso", "customer_tier": "enterprise"}
    await escalator.start_case({"case_id": "vis-dim-1", "title": "SSO loop", "policy": policy,
                                **tagged})  # fmt: skip
    await escalator.start_case({"case_id": "vis-dim-2", "title": "Plain", "policy": policy})
    query = case_query(category="sso", customer_tier="enterprise")
    await eventually(lambda: _contains(visible(escalator, query), {"vis-dim-1"}))
    assert "vis-dim-2" not in await visible(escalator, query)
    await eventually(lambda: _has_tier(escalator, "vis-dim-2"))
    plain = await attributes(escalator, "vis-dim-2")
    assert plain.get(search.CASE_CATEGORY) is None and plain.get(search.CUSTOMER_TIER) is None
    for case_id in ("vis-dim-1", "vis-dim-2"):
        await escalator.resolve(case_id, actor("admin", role="admin"), "done")


async def test_the_policy_version_is_searchable_and_names_the_snapshot(escalator):
    policy = seconds_policy(first_response=600, resolution=1200)
    changed = seconds_policy(first_response=900, resolution=1200)  # one SLA longer
    await escalator.start_case({"case_id": "vis-pv-1", "title": "VPN", "policy": policy})
    await escalator.start_case({"case_id": "vis-pv-2", "title": "VPN", "policy": changed})
    version = policy_version(policy)
    assert version != policy_version(changed)
    query = open_case_query(policy_version=version)
    await eventually(lambda: _contains(visible(escalator, query), {"vis-pv-1"}))
    assert "vis-pv-2" not in await visible(escalator, query)
    other = await attributes(escalator, "vis-pv-2")
    assert other.get(search.POLICY_VERSION) == policy_version(changed)
    # `escalator list --policy-version` asks the same of any case, open or not.
    listing = case_query(policy_version=policy_version(changed))
    await eventually(lambda: _contains(visible(escalator, listing), {"vis-pv-2"}))
    assert "vis-pv-1" not in await visible(escalator, listing)
    for case_id in ("vis-pv-1", "vis-pv-2"):
        await escalator.resolve(case_id, actor("admin", role="admin"), "done")


async def _has_tier(escalator: EscalatorClient, case_id: str) -> bool:
    return (await attributes(escalator, case_id)).get(search.CASE_TIER) is not None


async def test_ui_metadata_summary_details_and_live_briefing(escalator):
    await escalator.start_case({
        "case_id": "ui-1", "title": "Outlook is failing to sync email", "severity": "P1",
        "customer": {"name": "Jane Roe", "email": "jane@acme.example"},
        "policy": seconds_policy(first_response=600, resolution=1200),
    })  # fmt: skip
    handle = escalator.client.get_workflow_handle("case-ui-1")
    description = await handle.describe()
    assert await description.static_summary() == "P1 · #ui-1 · Outlook is failing to sync email"
    details = await description.static_details()
    assert "Jane Roe" in details and "**Policy:** seconds" in details

    await escalator.claim("ui-1", actor("alice"))
    await escalator.escalate("ui-1", actor("alice"), NOTE)
    metadata = await handle.query("__temporal_workflow_metadata")
    briefing = metadata.current_details
    assert "L2 Specialist Support" in briefing
    assert "Why:** needs backend access" in briefing
    assert "### Start here" in briefing and "check the certificate cache" in briefing
    assert "Next deadline:**" in briefing and "L2 first-response" in briefing


async def _contains(ids_awaitable, wanted: set[str]) -> bool:
    return wanted <= await ids_awaitable


async def test_readme_saved_view_queries_run(escalator):
    """Every query in the README's saved-view table is valid on the dev server."""
    table = README.split("| view | query |", 1)[1].split("\n\n", 1)[0]
    queries = re.findall(r"^\| [^|]+ \| `([^`]+)`", table, flags=re.MULTILINE)
    assert len(queries) >= 5
    for query in queries:
        async for _ in escalator.client.list_workflows(query, limit=1):
            break  # a bad query raises before yielding anything
