"""`escalator report` end to end: 30 real cases on the dev server, the real ledger
activity writing to SQLite and to a real Postgres, and the real CLI reading it.

The test computes every figure on its own. It times each action on its side: a
duration it expects is an interval, from (the later action's send minus the
earlier one's answer) to (the later one's answer minus the earlier one's send),
and each reported mean, median and p95 must lie between the same statistic of
the lower and of the upper bounds (order statistics are monotone, so this holds
exactly). Counts, shares and lists must match exactly.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from support import RecordingNotifier, actor, case_workers, eventually, seconds_policy

from escalator.domain import metrics
from escalator.domain.errors import EscalatorError
from escalator.domain.models import CaseInput
from escalator.domain.policy import Policy
from escalator.domain.policy_version import policy_version
from starter import EscalatorClient

pytestmark = pytest.mark.integration
ESCALATOR = [sys.executable, "-m", "escalator.cli"]
# seconds: L1 and L2 breach when unclaimed this long. Long enough that a case the
# script claims at once never breaches first, even with 30 cases on 2 busy cores.
FIRST_RESPONSE = 8
NOTE = {"reason": "needs backend access", "steps_taken": ["checked the runbook"]}


def report_policy(**changes) -> Policy:
    data = seconds_policy(first_response=FIRST_RESPONSE, resolution=60).model_dump(mode="json")
    data["severity_overrides"] = [{"severity": "P1", "route_to": 3}]
    return Policy.model_validate({**data, **changes})


# Only the reopened cases keep running after their resolve, waiting out the window.
REOPENABLE = report_policy(reopen_window=120)
# The backlog: cases that stay open, with an hour to claim.
SLOW = Policy.model_validate(
    {**report_policy().model_dump(mode="json"), "tiers": [
        {**t, "sla": {"first_response": 3600, "resolution_target": 7200}} if t.get("sla") else t
        for t in report_policy().model_dump(mode="json")["tiers"]
    ]}
)  # fmt: skip


@dataclass
class Span:
    """When something happened, as the test can know it: between lo and hi."""

    lo: float
    hi: float

    def __sub__(self, other: Span) -> Span:
        return Span(self.lo - other.hi, self.hi - other.lo)


@dataclass
class Script:
    """One case and what the test did to it, each step timed on the test's clock."""

    case_id: str
    kind: str
    category: str
    created: Span | None = None
    steps: list[tuple[str, str, Span]] = field(default_factory=list)  # (what, who, when)

    def at(self, what: str, nth: int = 0) -> Span:
        return [span for w, _, span in self.steps if w == what][nth]


class Desk:
    def __init__(self, escalator: EscalatorClient, account: str) -> None:
        self.escalator, self.account = escalator, account
        self.policy = report_policy()

    async def timed(self, script: Script, what: str, who: str, call) -> None:
        lo = time.time()
        await call
        script.steps.append((what, who, Span(lo, time.time())))

    async def open(self, script: Script, severity: str = "P3", policy=None) -> None:
        lo = time.time()
        case = CaseInput(
            case_id=script.case_id,
            title=f"{script.kind} case",
            severity=severity,
            account=self.account,
            category=script.category,
            policy=policy or self.policy,
        )
        await self.escalator.start_case(case)
        await eventually(self._answers(script.case_id), within=30)  # created_at is set

        script.created = Span(lo, time.time())

    def _answers(self, case_id: str):
        async def status():
            try:  # a query waits for the case's first workflow task
                return await self.escalator.status(case_id)
            except EscalatorError:
                return None

        return status

    def who(self, user: str):
        return actor(user, account=self.account)

    async def claim(self, s: Script, user: str) -> None:
        await self.timed(s, "claim", user, self.escalator.claim(s.case_id, self.who(user)))

    async def resolve(self, s: Script, user: str) -> None:
        call = self.escalator.resolve(s.case_id, self.who(user), "fixed")
        await self.timed(s, "resolve", user, call)

    async def wait_for_tier(self, s: Script, level: int) -> None:
        lo = time.time()

        async def there():
            status = await self.escalator.status(s.case_id)
            return status.tier_level == level or None

        await eventually(there, within=30)
        s.steps.append(("breach", "system", Span(lo, time.time())))


async def quick(desk: Desk, s: Script, i: int) -> None:
    await asyncio.sleep(0.2 * i)
    await desk.claim(s, "alice")
    await asyncio.sleep(0.3)
    call = desk.escalator.add_note(s.case_id, desk.who("alice"), "restarted the sync")
    await desk.timed(s, "note", "alice", call)
    await desk.resolve(s, "alice")


async def breached(desk: Desk, s: Script, i: int) -> None:
    await desk.wait_for_tier(s, 2)  # nobody claims within L1's first response
    s.steps[-1] = ("breach", "system", Span(s.created.lo + FIRST_RESPONSE, s.steps[-1][2].hi))
    await asyncio.sleep(0.1 * i)
    await desk.claim(s, "bob")
    await desk.resolve(s, "bob")


async def to_l3(desk: Desk, s: Script, i: int) -> None:
    await desk.claim(s, "alice")
    tried = {**NOTE, "steps_taken": ["checked the runbook", f"restarted node {i}"]}
    call = desk.escalator.escalate(s.case_id, desk.who("alice"), tried)
    await desk.timed(s, "escalate", "alice", call)
    await desk.claim(s, "carol")
    call = desk.escalator.escalate(s.case_id, desk.who("carol"), NOTE)
    await desk.timed(s, "escalate", "carol", call)
    await desk.claim(s, "dave")
    call = desk.escalator.add_note(s.case_id, desk.who("dave"), f"bad deploy {i}")
    await desk.timed(s, "note", "dave", call)
    await desk.resolve(s, "dave")


async def held(desk: Desk, s: Script, i: int) -> None:
    await desk.claim(s, "erin")
    call = desk.escalator.hold(s.case_id, desk.who("erin"), "waiting on the customer")
    await desk.timed(s, "hold", "erin", call)
    await asyncio.sleep(0.5 + 0.1 * i)
    await desk.timed(s, "resume", "erin", desk.escalator.resume(s.case_id, desk.who("erin")))
    await desk.resolve(s, "erin")


async def reopened(desk: Desk, s: Script, i: int) -> None:
    await desk.claim(s, "frank")
    await desk.resolve(s, "frank")
    call = desk.escalator.reopen(s.case_id, desk.who("frank"), "still broken")
    await desk.timed(s, "reopen", "frank", call)
    await asyncio.sleep(0.2)
    await desk.claim(s, "frank")
    await desk.resolve(s, "frank")


async def raised(desk: Desk, s: Script, i: int) -> None:
    call = desk.escalator.set_severity(s.case_id, desk.who("gina"), "P1")
    await desk.timed(s, "severity", "gina", call)  # P1 routes to L3
    await desk.claim(s, "gina")
    await desk.resolve(s, "gina")


SCRIPTS = {
    "quick": ("sso", quick),
    "breached": ("billing", breached),
    "to_l3": ("network", to_l3),
    "held": ("billing", held),
    "reopened": ("sso", reopened),
    "raised": ("network", raised),
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.loopback)])
def ledger_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.db"
    return request.getfixturevalue("postgres_url")


async def test_the_report_matches_thirty_cases_the_test_timed_itself(dev_env, ledger_url):
    account = f"acct-{uuid.uuid4().hex[:8]}"  # the shared dev server holds other tests' cases
    queue = f"report-{uuid.uuid4().hex[:8]}"
    notifier = RecordingNotifier(ledger_url=ledger_url)
    escalator = EscalatorClient(dev_env.client, queue)
    desk = Desk(escalator, account)
    scripts = [
        Script(f"{account}-{kind}-{i}", kind, category)
        for kind, (category, _) in SCRIPTS.items()
        for i in range(5)
    ]
    start_day = datetime.now(UTC).date()
    async with case_workers(dev_env.client, queue, notifier.activities):
        # Each script starts as soon as its case is open: opening all 30 first would
        # let the first ones' L1 clocks run out before anyone touched them.
        running = []
        for s in scripts:
            await desk.open(s, policy=REOPENABLE if s.kind == "reopened" else None)
            script = SCRIPTS[s.kind][1](desk, s, int(s.case_id.rsplit("-", 1)[1]))
            running.append(asyncio.create_task(script))
        await asyncio.gather(*running)
        # Two cases stay open: the live backlog.
        backlog = [Script(f"{account}-open-{i}", "open", "sso") for i in range(2)]
        for s in backlog:
            await desk.open(s, policy=SLOW)
        await desk.claim(backlog[1], "alice")

        async def all_written():
            counts = notifier.ledger.counts()
            facts = [notifier.ledger.case(s.case_id) for s in scripts]
            done = (
                all(f is not None for f in facts)
                and all(
                    f.reopened == 1
                    for f, s in zip(facts, scripts, strict=True)
                    if s.kind == "reopened"
                )
                # and every batch has landed: they are separate activities, and a
                # reopened case's first batch may land after its second
                and all(
                    len(notifier.ledger.events_of(s.case_id)) >= f.events
                    for f, s in zip(facts, scripts, strict=True)
                )
            )
            return counts if done else None

        await eventually(all_written, within=60)
        try:
            to = (start_day + timedelta(days=1)).isoformat()
            cli = await asyncio.to_thread(
                subprocess.run,
                [*ESCALATOR, "report", "--from", start_day.isoformat(), "--to", to,
                 "--account", account, "--format", "json"],
                capture_output=True, text=True, timeout=120,
                env={**os.environ, "ESCALATOR_LEDGER_URL": ledger_url,
                     "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host},
            )  # fmt: skip
            # By policy version: the reopenable policy's cases from the ledger, and the
            # slow policy's cases, none resolved, from the live backlog.
            by_version = {}
            for policy, extra in ((REOPENABLE, ["--no-open"]), (SLOW, [])):
                run = await asyncio.to_thread(
                    subprocess.run,
                    [*ESCALATOR, "report", "--from", start_day.isoformat(), "--to", to,
                     "--account", account, "--format", "json",
                     "--policy-version", policy_version(policy), *extra],
                    capture_output=True, text=True, timeout=120,
                    env={**os.environ, "ESCALATOR_LEDGER_URL": ledger_url,
                         "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host},
                )  # fmt: skip
                assert run.returncode == 0, run.stderr
                by_version[policy_version(policy)] = json.loads(run.stdout)
        finally:
            for s in backlog + by_kind(scripts)["reopened"]:
                await dev_env.client.get_workflow_handle(f"case-{s.case_id}").terminate("test over")
    assert cli.returncode == 0, cli.stderr
    assert "Traceback" not in cli.stderr
    check_report(json.loads(cli.stdout), scripts)
    reopenable = by_version[policy_version(REOPENABLE)]
    assert (reopenable["cases"], reopenable["reopen_rate"], reopenable["open"]) == (5, 1.0, None)
    slow = by_version[policy_version(SLOW)]
    assert (slow["cases"], slow["open"]["total"]) == (0, 2)


def by_kind(scripts: list[Script]) -> dict[str, list[Script]]:
    kinds: dict[str, list[Script]] = {}
    for s in scripts:
        kinds.setdefault(s.kind, []).append(s)
    return kinds


def check_report(report: dict, scripts: list[Script]) -> None:
    kinds = by_kind(scripts)
    assert report["cases"] == 30 and report["unclaimed"] == 0

    # -- durations: each reported statistic between those of the bounds
    mtta = [s.at("claim") - s.created for s in scripts]
    within(report["mtta_seconds"], mtta)
    within(report["mtta_seconds"]["business"], mtta)  # 24x7, and no hold before a claim
    # creation to the last resolve
    mttr = [s.at("resolve", 1 if s.kind == "reopened" else 0) - s.created for s in scripts]
    within(report["mttr_seconds"], mttr)
    holds = {s.case_id: s.at("resume") - s.at("hold") for s in kinds["held"]}
    business_mttr = [
        Span(span.lo - holds[s.case_id].hi, span.hi - holds[s.case_id].lo)
        if s.case_id in holds
        else span
        for s, span in zip(scripts, mttr, strict=True)
    ]
    within(report["mttr_seconds"]["business"], business_mttr)
    within(report["hold_seconds"], list(holds.values()))

    # claim to the claimer's next note, escalate, hold or resolve
    first_actions: list[Span] = []
    for s in scripts:
        for i, (what, who, span) in enumerate(s.steps):
            if what == "claim":
                following = next(
                    t for w, u, t in s.steps[i + 1 :] if u == who and w in FIRST_ACTION_STEPS
                )
                first_actions.append(following - span)
    within(report["first_action_seconds"], first_actions)

    l1 = [s.at("claim") - s.created for s in scripts if s.kind in ("quick", "to_l3", "held")]
    l1 += [s.at("claim") - s.created for s in kinds["reopened"]]
    l1 += [s.at("claim", 1) - s.at("reopen") for s in kinds["reopened"]]
    within(report["mtta_by_tier_seconds"]["L1"], l1)
    l2 = [s.at("claim") - s.at("breach") for s in kinds["breached"]]
    l2 += [s.at("claim", 1) - s.at("escalate", 0) for s in kinds["to_l3"]]
    within(report["mtta_by_tier_seconds"]["L2"], l2)
    l3 = [s.at("claim", 2) - s.at("escalate", 1) for s in kinds["to_l3"]]
    l3 += [s.at("claim") - s.at("severity") for s in kinds["raised"]]
    within(report["mtta_by_tier_seconds"]["L3"], l3)

    # -- counts, shares and lists: exact
    escalations = report["escalations"]
    assert escalations["total"] == 5 + 10 + 5
    assert escalations["by_tier"] == {"L1": 15, "L2": 5}
    assert escalations["by_reason"] == {"sla": 5, "manual": 10, "severity": 5, "ai": 0}
    assert escalations["by_category"] == {"network": 15, "billing": 5}
    assert escalations["by_agent"] == {"alice": 5, "carol": 5, "gina": 5}
    assert escalations["deescalations"] == 0
    # L1: all 30 entered, 15 left upwards; L2: 10 entered, 5 left; L3: 10, none left
    assert escalations["rate_by_tier"] == {"L1": 0.5, "L2": 0.5, "L3": 0.0}
    assert escalations["hops_per_case"]["mean"] == round((5 * 1 + 5 * 2 + 5 * 1) / 30, 3)
    assert report["sla_compliance"] == {
        "overall": round(25 / 30, 4),
        "by_tier": {"L1": round(25 / 30, 4), "L2": 1.0, "L3": 1.0},
    }
    assert report["reopen_rate"] == round(5 / 30, 4)
    assert report["needs_review"] == {"count": 0, "case_ids": []}

    reviews = {r["case_id"]: r for r in report["l3_reviews"]}
    assert set(reviews) == {s.case_id for s in kinds["to_l3"] + kinds["raised"]}
    for s in kinds["to_l3"]:
        review, i = reviews[s.case_id], s.case_id.rsplit("-", 1)[1]
        assert review["reached_by"]["from_tier"] == "L2"
        assert (review["reached_by"]["reason"], review["reached_by"]["by"]) == ("manual", "carol")
        assert review["steps_taken"] == ["checked the runbook", f"restarted node {i}"]
        assert [n["text"] for n in review["notes"]] == [f"bad deploy {i}"]
        assert set(review["time_in_tier_seconds"]) == {"L1", "L2", "L3"}
    for s in kinds["raised"]:
        assert reviews[s.case_id]["reached_by"]["reason"] == "severity"

    assert report["open"]["total"] == 2
    assert report["open"]["by_tier"] == {"L1": 2}
    assert report["open"]["by_age"]["<1h"] == 2
    assert report["open"]["at_risk"] == []  # an hour's SLA, seconds old


FIRST_ACTION_STEPS = {"note", "escalate", "hold", "resolve"}
SLACK = 0.01  # seconds: the report rounds to milliseconds
# The bounds are as wide as the round trips: about 0.3 to 0.9 s with 30 cases at once on
# 2 cores. A wrong definition (the wrong start or end event) is off by seconds.


def within(figure: dict, spans: list[Span]) -> None:
    low = metrics.Summary.of([s.lo for s in spans])
    high = metrics.Summary.of([s.hi for s in spans])
    assert figure["n"] == len(spans), figure
    for statistic in ("mean", "median", "p95"):
        value = figure[statistic]
        lo, hi = getattr(low, statistic), getattr(high, statistic)
        assert lo - SLACK <= value <= hi + SLACK, (statistic, lo, value, hi)
