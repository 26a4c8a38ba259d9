"""Record the histories of the main scenarios into tests/histories/<scenario>.json.

    .venv/bin/python tests/record_histories.py             # every scenario
    .venv/bin/python tests/record_histories.py ai_stage    # only the ones named
    .venv/bin/python tests/record_histories.py --keep-as before-x   # keep the old ones too

Each scenario drives one case on the time-skipping test server, with the current
workflow code and recording stand-in activities, until the workflow completes.
tests/test_replay.py replays every recorded history against the current code, so
a change that would break cases already running fails CI.

Re-recording replaces the evidence that cases started under the old code still
replay. Do it on purpose only (docs/changing-workflows.md): with --keep-as while
a patch is live, so the old histories keep guarding the old path; plainly once
no case from before the patch can still be running.

Running it again is safe: every history is checked (the case completed, and it
replays with the code that recorded it) before anything is written, files are
replaced atomically, and histories of scenarios that no longer exist are removed.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This checkout's code, even where the venv has another one installed (editable).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import contextlib
import json
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from temporalio.api.enums.v1 import EventType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from escalator.adapters.codec import data_converter
from escalator.adapters.policy_files import load_policy
from escalator.devstack.binaries import find_binary
from escalator.domain.models import Actor, workflow_id_for
from escalator.domain.policy import Policy
from escalator.domain.search_attributes import indexed_types
from starter import ActionRefused, EscalatorClient
from workflows.escalation import EscalationWorkflow

ROOT = Path(__file__).resolve().parent.parent
HISTORIES = ROOT / "tests" / "histories"
TASK_QUEUE = "record-histories"
# The product's converter (pydantic). Never encrypted, whatever the environment
# holds: the histories are committed and replayed without keys.
CONVERTER = data_converter(environ={})
LABEL = re.compile(r"[a-z0-9][a-z0-9-]*")
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
NOTE = {
    "reason": "needs backend access",
    "steps_taken": ["re-uploaded cert", "checked runbook"],
    "customer_impact": "nobody on the team can sign in",
}
CUSTOMER = {"name": "Jane", "email": "jane@acme.example"}


def actor(user: str, role: str = "engineer", account: str = "default") -> Actor:
    return Actor(user=user, role=role, account=account)


def policy(name: str, **changes) -> Policy:
    """A policy file of this repo, snapshotted into the case input as usual."""
    loaded = load_policy(ROOT / "policies" / f"{name}.yaml")
    return Policy.model_validate({**loaded.model_dump(), **changes}) if changes else loaded


@dataclass
class Desk:
    env: WorkflowEnvironment
    escalator: EscalatorClient

    async def pause(self, duration: timedelta = MINUTE) -> None:
        """Let `duration` of server time pass. The time-skipping server only skips
        ahead once no activity is running, so the mail and assessments started so
        far have landed when this returns: the recorded order is the natural one."""
        await self.env.sleep(duration)


# -- the scenarios: each drives one case until the workflow completes -----------------


async def three_tiers_unclaimed(desk: Desk, case_id: str) -> None:
    """Nobody claims: L1 (4h) and L2 (2h) breach first response after their warnings;
    L3 claims and resolves."""
    e = desk.escalator
    await e.start_case(
        {"case_id": case_id, "title": "VPN down", "policy": policy("default"), "customer": CUSTOMER}
    )
    await desk.pause(6 * HOUR + MINUTE)
    await e.claim(case_id, actor("carol"))
    await desk.pause()
    # A signal: the case closes in a task that took no update, and the closing
    # ledger batch is a local activity.
    await e.resolve(case_id, actor("carol"), "fixed the tunnel", wait=False)


async def claimed_then_resolution_breach(desk: Desk, case_id: str) -> None:
    """Claimed at L1 but not resolved within 24h: the resolution SLA escalates it to
    L2, whose engineer must claim it anew."""
    e = desk.escalator
    await e.start_case({"case_id": case_id, "title": "Slow reports", "policy": policy("default")})
    await e.claim(case_id, actor("alice"))
    await e.add_note(case_id, actor("alice"), "reproduced on staging", wait=False)  # a signal
    await desk.pause(24 * HOUR + MINUTE)
    await e.claim(case_id, actor("bob"))
    await desk.pause()
    await e.resolve(case_id, actor("bob"), "index rebuilt")


async def manual_escalation_hold_deescalation_severity(desk: Desk, case_id: str) -> None:
    """P2 starts at L2: claim, hold for 3h, resume, escalate by hand with a note,
    de-escalate back, then a raise to P1 re-routes it to L3 (and flags needs_review)."""
    e = desk.escalator
    case = {"case_id": case_id, "title": "SSO fails", "severity": "P2", "policy": policy("default")}
    await e.start_case({**case, "customer": CUSTOMER})
    await e.claim(case_id, actor("alice"))
    await e.hold(case_id, actor("alice"), "waiting on the IdP metadata")
    await desk.pause(3 * HOUR)
    await e.resume(case_id, actor("alice"))
    await e.escalate(case_id, actor("alice"), NOTE)
    await desk.pause()
    await e.claim(case_id, actor("dave"))
    await e.deescalate(case_id, actor("dave"), "cache flushed; L2 monitors")
    await desk.pause()
    await e.set_severity(case_id, actor("dave"), "P1", wait=False)  # a signal
    await desk.pause()
    await e.resolve(case_id, actor("erin", role="admin"), "monitored for a day")


async def resolve_and_reopen(desk: Desk, case_id: str) -> None:
    """Resolved, reopened by the customer within the 1h window, resolved again; the
    workflow completes when the window closes."""
    e = desk.escalator
    await e.start_case(
        {"case_id": case_id, "title": "Printer", "policy": policy("default", reopen_window=HOUR)}
    )
    await e.claim(case_id, actor("alice"))
    await e.resolve(case_id, actor("alice"), "replaced toner")
    await desk.pause()
    await e.reopen(case_id, actor("jane", role="customer"), "still streaky")
    await desk.pause()
    await e.resolve(case_id, actor("alice"), "replaced drum")
    await desk.pause(HOUR + MINUTE)


async def ai_stage(desk: Desk, case_id: str) -> None:
    """The demo policy (seconds): L1 → L2 → L3 → the AI-agent stage, an assessment per
    escalation and the stage's recommendation; a draft from the saved assessment;
    a person resolves."""
    e = desk.escalator
    await e.start_case(
        {
            "case_id": case_id,
            "title": "Outlook sync",
            "policy": policy("demo"),
            "customer": CUSTOMER,
        }
    )
    await desk.pause(2 * MINUTE + timedelta(seconds=10))  # three 40s first responses
    await e.draft(case_id, actor("victor", role="viewer"), "client_update")
    await e.resolve(case_id, actor("carol"), "re-sent the certificate")


async def notes_and_refusals(desk: Desk, case_id: str) -> None:
    """Many notes (updates and signals) and every kind of refusal that leaves history:
    a viewer's signal, another account's update, a malformed signal."""
    e = desk.escalator
    await e.start_case({"case_id": case_id, "title": "Label printer", "policy": policy("default")})
    await e.claim(case_id, actor("alice"))
    for n in range(24):
        await e.add_note(case_id, actor("alice"), f"note {n}: tried step {n}", wait=n % 2 == 1)
    await e.claim(case_id, actor("victor", role="viewer"), wait=False)
    try:
        await e.add_note(case_id, actor("mallory", account="other"), "hi")
    except ActionRefused:
        pass  # refused in the handler, after the timeline recorded it
    handle = desk.env.client.get_workflow_handle(workflow_id_for(case_id))
    await handle.signal("claim", {"actor": {"user": "bot"}})  # no role: malformed
    await e.add_note(case_id, actor("jane", role="customer"), "it works again")
    await e.resolve(case_id, actor("alice"), "printer driver updated")


def policy_with_tiers(name: str, tier_changes: dict[int, dict], **changes) -> Policy:
    """A policy file of this repo with some tiers' fields changed (by level)."""
    data = policy(name).model_dump(mode="json")
    for level, fields in tier_changes.items():
        next(t for t in data["tiers"] if t["level"] == level).update(fields)
    return Policy.model_validate({**data, **changes})


async def stale_claim_webhook_and_final_tier_repeats(desk: Desk, case_id: str) -> None:
    """L1 (with a webhook) claims and goes quiet: reminded at 2h, released at 4h,
    then breaches first response; L2 breaches too; unclaimed at L3, the final tier
    is re-notified twice; L3 claims and resolves."""
    e = desk.escalator
    tiers = {
        1: {"stale_after": "2h", "webhook": "https://hooks.example/l1"},
        3: {"repeat_every": "30m", "max_repeats": 2},
    }
    await e.start_case(
        {
            "case_id": case_id,
            "title": "Mailbox quota",
            "policy": policy_with_tiers("default", tiers),
        }
    )
    await e.claim(case_id, actor("alice"))
    await desk.pause(5 * HOUR)  # reminder at 2h, release at 4h
    await desk.pause(5 * HOUR)  # L1 first response again (4h from the release): L2
    await desk.pause(6 * HOUR)  # L2 (2h): L3, whose first response (1h) then repeats
    await e.claim(case_id, actor("carol"))
    await desk.pause()
    await e.resolve(case_id, actor("carol"), "raised the quota")


async def business_hours_then_continue_as_new(desk: Desk, case_id: str) -> None:
    """Office hours in Berlin count the SLA; a flood of notes makes the case
    continue as new. The recorded history is the first run, which ends there."""
    e = desk.escalator
    office = {
        "timezone": "Europe/Berlin",
        "hours": {day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
    }
    await e.start_case(
        {
            "case_id": case_id,
            "title": "Chatty VPN case",
            "policy": policy("default", calendar=office),
            "continue_as_new_after": 150,
        }
    )
    await e.claim(case_id, actor("alice"))
    for n in range(40):
        await e.add_note(case_id, actor("alice"), f"note {n}", wait=n % 4 == 0)
    await desk.pause()
    await e.resolve(case_id, actor("alice"), "rebuilt the profile")


async def slack_and_pagerduty_channels(desk: Desk, case_id: str) -> None:
    """A P2 case starts at L2, which is on Slack; unclaimed, it breaches into L3,
    which pages PagerDuty; the claim acknowledges the page and the resolve resolves
    it. The snapshot names the channels' environment variables, never a secret."""
    e = desk.escalator
    channels = {
        "slack_oncall": {"kind": "slack", "url_env": "SLACK_ONCALL_URL"},
        "pagerduty": {"kind": "pagerduty", "routing_key_env": "PAGERDUTY_ROUTING_KEY"},
    }
    tiers = {2: {"channels": ["slack_oncall"]}, 3: {"channels": ["pagerduty"]}}
    await e.start_case(
        {
            "case_id": case_id,
            "title": "Checkout returns 502",
            "severity": "P2",
            "policy": policy_with_tiers(
                "default",
                tiers,
                channels=channels,
                severity_overrides=[
                    {"severity": "P0", "route_to": 3, "notification": "pagerduty"},
                    {"severity": "P2", "route_to": 2},
                ],
            ),
        }
    )
    await desk.pause(3 * HOUR)  # L2's first response (2h) passes: L3 is paged
    await e.claim(case_id, actor("carol"))
    await desk.pause()
    await e.resolve(case_id, actor("carol"), "rolled back the deploy")


Scenario = Callable[[Desk, str], Awaitable[None]]
SCENARIOS: dict[str, Scenario] = {
    scenario.__name__: scenario
    for scenario in (
        three_tiers_unclaimed,
        claimed_then_resolution_breach,
        manual_escalation_hold_deescalation_severity,
        resolve_and_reopen,
        ai_stage,
        notes_and_refusals,
        stale_claim_webhook_and_final_tier_repeats,
        business_hours_then_continue_as_new,
        slack_and_pagerduty_channels,
    )
}
# How a recorded history may end: a case that continued as new is recorded up to
# there (its first run), so that the continue-as-new command itself is replayed.
LAST_EVENTS = (
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
)


def case_id_for(scenario: str) -> str:
    return f"replay-{scenario.replace('_', '-')}"


def history_path(scenario: str, label: str | None = None) -> Path:
    """`<scenario>.json`, or `<scenario>.<label>.json` for one kept from older code."""
    return HISTORIES / (f"{scenario}.{label}.json" if label else f"{scenario}.json")


def scenario_of(path: Path) -> str:
    return path.name.split(".")[0]


def load_history(path: Path) -> WorkflowHistory:
    case_id = case_id_for(scenario_of(path))
    return WorkflowHistory.from_json(workflow_id_for(case_id), path.read_text(encoding="utf-8"))


# -- recording ----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def case_workers(client: Client, task_queue: str, workflows: list[type], activities):
    """A worker for the cases and their activities, and one for activities only on
    `<task queue>-ai`, where the model calls go in a split deployment; code that
    schedules them on the case's queue simply never uses the second."""
    async with (
        Worker(
            client,
            task_queue=task_queue,
            workflows=workflows,
            activities=activities,
            # A workflow bug fails the case at once instead of retrying forever.
            workflow_failure_exception_types=[Exception],
        ),
        Worker(client, task_queue=f"{task_queue}-ai", activities=activities),
    ):
        yield


async def record(names: list[str]) -> dict[str, WorkflowHistory]:
    from support import RecordingNotifier  # tests/ is on sys.path (script dir, conftest)

    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"),
        data_converter=CONVERTER,
    )
    histories: dict[str, WorkflowHistory] = {}
    try:
        # Unregistered search attributes make the time-skipping server hang.
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace, search_attributes=indexed_types()
            )
        )
        activities = RecordingNotifier().activities
        async with case_workers(env.client, TASK_QUEUE, [EscalationWorkflow], activities):
            desk = Desk(env, EscalatorClient(env.client, TASK_QUEUE))
            for name in names:
                case_id = case_id_for(name)
                await SCENARIOS[name](desk, case_id)
                handle = env.client.get_workflow_handle(workflow_id_for(case_id))
                await handle.result()  # follows the case into any later run
                latest = await handle.fetch_history()
                started = latest.events[0].workflow_execution_started_event_attributes
                first_run = env.client.get_workflow_handle(
                    workflow_id_for(case_id), run_id=started.first_execution_run_id
                )
                histories[name] = await first_run.fetch_history()
    finally:
        await env.shutdown()
    return histories


async def check(histories: dict[str, WorkflowHistory]) -> None:
    """Write nothing unless every case completed and replays with this code."""
    replayer = Replayer(workflows=[EscalationWorkflow], data_converter=CONVERTER)
    for name, history in histories.items():
        last = history.events[-1].event_type
        if last not in LAST_EVENTS:
            raise SystemExit(f"{name}: the case did not complete ({EventType.Name(last)})")
        await replayer.replay_workflow(history)


def write(path: Path, history: WorkflowHistory) -> None:
    """One compact event per line: small, and a re-recording diffs event by event."""
    events = history.to_json_dict()["events"]
    lines = ",\n".join(json.dumps(event, separators=(",", ":")) for event in events)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text('{"events": [\n' + lines + "\n]}\n", encoding="utf-8")
    temporary.replace(path)


def parse_arguments(argv: list[str] | None) -> tuple[list[str], str | None]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", help=f"default: all of {', '.join(SCENARIOS)}")
    parser.add_argument(
        "--keep-as",
        metavar="LABEL",
        help="keep each history being replaced as <scenario>.LABEL.json, so that it still "
        "checks the old path (e.g. --keep-as before-duty-manager)",
    )
    arguments = parser.parse_args(argv)
    names = arguments.scenarios or list(SCENARIOS)
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    label = arguments.keep_as
    if label is not None and not LABEL.fullmatch(label):
        parser.error("--keep-as: use lower-case letters, digits and '-'")
    if label is not None:
        taken = [history_path(n, label) for n in names if history_path(n, label).exists()]
        if taken:
            parser.error(f"--keep-as {label}: {taken[0].name} exists; choose another label")
    return names, label


async def main(argv: list[str] | None = None) -> None:
    names, label = parse_arguments(argv)
    os.chdir(ROOT)  # tests/support.py reads policies by relative path
    histories = await record(names)
    await check(histories)
    HISTORIES.mkdir(exist_ok=True)
    for name, history in histories.items():
        path = history_path(name)
        if label is not None and path.exists():
            path.replace(history_path(name, label))
            print(f"kept the previous one as tests/histories/{history_path(name, label).name}")
        write(path, history)
        size = path.stat().st_size // 1024
        print(f"recorded tests/histories/{path.name}: {len(history.events)} events, {size} KiB")
    for stale in sorted(HISTORIES.glob("*.json")):
        if scenario_of(stale) not in SCENARIOS:
            stale.unlink()
            print(f"removed tests/histories/{stale.name} (no such scenario)")


if __name__ == "__main__":
    asyncio.run(main())
