"""The ids of changes to what running cases do, for `workflow.patched`.

A case that started before a change replays its history with the old behaviour;
one that started after takes the new. Each id stays until no case that started
before it can still be open (docs/changing-workflows.md). The case engine asks
for them through a `patched` callable, so it consults them at the same moments
the workflow always has, without importing Temporal.
"""

from __future__ import annotations

SEVERITY_RAISE_ONLY = "severity-raise-only"  # lowering never promotes a case
AI_TASK_QUEUE = "ai-task-queue"  # model calls on <task queue>-ai
ASSESSMENT_NOT_CANCELLED = "assessment-not-cancelled"  # superseded ones are dropped
DEADLINES_ALWAYS_TIMED = "deadlines-always-timed"  # a due deadline waits on a timer too
CASE_INPUT_SIZE = "case-input-size"  # an oversized new case fails at once
CASE_LEDGER = "case-ledger"  # events and facts go to the ledger
POLICY_VERSION = "policy-version"  # the PolicyVersion search attribute is published


def latest(patch_id: str) -> bool:
    """Every change applies: how new cases run, and what the simulator assumes."""
    return True
