"""Cases already running keep replaying: every recorded history replays with the
current EscalationWorkflow code.

tests/histories/*.json are real histories of the main scenarios, recorded by
tests/record_histories.py: `<scenario>.json` from the current code, and
`<scenario>.<label>.json` kept from older code while a patch for it is live.
A change to the workflow that would send a running case down a different path
(a new activity, timer or marker; a reordering) makes its replay fail here with a
nondeterminism error. Put the change behind `workflow.patched` instead
(docs/changing-workflows.md; tests/test_patching.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from record_histories import (
    CONVERTER,
    HISTORIES,
    LAST_EVENTS,
    SCENARIOS,
    load_history,
    scenario_of,
)
from temporalio.api.enums.v1 import EventType
from temporalio.worker import Replayer

from workflows.escalation import EscalationWorkflow

# The scenarios the replay must cover whatever else is recorded.
REQUIRED = {
    "three_tiers_unclaimed",
    "claimed_then_resolution_breach",
    "manual_escalation_hold_deescalation_severity",
    "resolve_and_reopen",
    "ai_stage",
    "notes_and_refusals",
    "stale_claim_webhook_and_final_tier_repeats",
    "business_hours_then_continue_as_new",
}
RECORDED = sorted(HISTORIES.glob("*.json"))


def replayer() -> Replayer:
    # What the worker uses: the product's converter (pydantic, unencrypted as the
    # histories were recorded) and the default sandbox.
    return Replayer(workflows=[EscalationWorkflow], data_converter=CONVERTER)


def test_the_recorded_histories_are_the_scenarios():
    assert REQUIRED <= set(SCENARIOS), "a required scenario was dropped from the recorder"
    current = {path.stem for path in RECORDED if "." not in path.stem}
    unknown = sorted(path.name for path in RECORDED if scenario_of(path) not in SCENARIOS)
    missing = sorted(set(SCENARIOS) - current)
    assert not missing and not unknown, (
        f"missing: {missing}, unknown: {unknown}; run .venv/bin/python tests/record_histories.py"
    )


@pytest.mark.parametrize("path", RECORDED, ids=lambda path: path.name.removesuffix(".json"))
async def test_a_recorded_history_replays_with_the_current_code(path: Path):
    history = load_history(path)
    # A whole case's life, from start to outcome, so replay checks all of it.
    kinds = [event.event_type for event in history.events]
    assert kinds[0] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    assert kinds[-1] in LAST_EVENTS, EventType.Name(kinds[-1])
    assert kinds.count(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) >= 5

    result = await replayer().replay_workflow(history, raise_on_replay_failure=False)
    if result.replay_failure is not None:
        pytest.fail(f"{path.name} no longer replays: {result.replay_failure}", pytrace=False)
