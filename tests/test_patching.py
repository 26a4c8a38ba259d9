"""Changing stage logic without breaking running cases: `workflow.patched`.

PYTEST_DONT_REWRITE: the sandbox re-imports this module for every workflow run it
replays, and pytest's assertion rewriting would double the time; asserts carry
their own messages instead.

The change under test: every upward escalation also mails the duty manager, one
more `send_email` activity right after the receiving tier, customer and assessment
(see docs/changing-workflows.md). Three versions of it, each registered under the
product's workflow name "EscalationWorkflow" as the real change would be:

- Unguarded: the new step, as one would first write it. Cases recorded before it
  (tests/histories/) no longer replay: NondeterminismError.
- Guarded: the same step behind `if workflow.patched(PATCH):`. Old histories replay
  on the old path; new cases take the new path and record a marker.
- Deprecated: `workflow.deprecate_patch(PATCH)` and the new path only, the next
  step once no case started before the patch is still running.

The variants subclass EscalationWorkflow: the SDK lets a @workflow.defn class
inherit the signal, query and update handlers and the @workflow.init constructor;
only @workflow.run must be redeclared on the subclass. They run in the default
sandbox like the product's workflow: no UnsandboxedWorkflowRunner, no monkeypatching.
"""

from __future__ import annotations

import json
from datetime import timedelta

from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from workflows.escalation import EscalationWorkflow

# The sandbox re-imports this module to run the variants, and workflows.escalation
# with it, as in production. Everything else it takes from outside as it is: the
# models, as workflows/escalation.py does, and the test tooling.
with workflow.unsafe.imports_passed_through():
    from record_histories import CONVERTER, HISTORIES, case_workers, load_history
    from support import RecordingNotifier, actor, unique_queue

    from escalator.adapters.policy_files import load_policy
    from escalator.domain import case as engine
    from escalator.domain.case_notices import notification
    from escalator.domain.models import CaseOutcome
    from escalator.domain.names import SEND_EMAIL
    from starter import EscalatorClient

PATCH = "duty-manager-on-escalation"
DUTY_MANAGER = "duty-manager@example.com"
NOTE = {"reason": "needs backend access", "steps_taken": ["re-uploaded cert"]}


class _DutyManagerStep(EscalationWorkflow):
    """The new step itself (not a workflow: the variants below are): after a step
    of the case engine that moved the case up, the duty manager is told too."""

    @staticmethod
    def _moved_up(step: engine.Step) -> bool:
        return any(
            isinstance(effect, engine.Recorded) and effect.event.kind == "escalated"
            for effect in step.effects
        )

    def _notify_duty_manager(self) -> None:
        number = self._state.notifications_sent + 1
        state = self._state.model_copy(update={"notifications_sent": number})
        notice = notification(
            state,
            self._case,
            "tier_entry",
            number=number,
            now=self._now(),
            recipients=(DUTY_MANAGER,),
            webhook=None,
            from_tier=None,
            channel=None,
        )
        deliver = engine.Deliver(SEND_EMAIL, notice, "tell the duty manager")
        EscalationWorkflow._apply(self, engine.Step(state, (deliver,)))


@workflow.defn(name="EscalationWorkflow")
class Unguarded(_DutyManagerStep):
    @workflow.run
    async def run(self, *payloads: object) -> CaseOutcome:
        return await super().run(*payloads)

    def _apply(self, step: engine.Step) -> str:
        answer = super()._apply(step)
        if self._moved_up(step):
            self._notify_duty_manager()
        return answer


@workflow.defn(name="EscalationWorkflow")
class Guarded(_DutyManagerStep):
    @workflow.run
    async def run(self, *payloads: object) -> CaseOutcome:
        return await super().run(*payloads)

    def _apply(self, step: engine.Step) -> str:
        answer = super()._apply(step)
        # Ask only where the paths part: the marker is recorded on the first
        # upward move of a new case, and replays of older cases answer False.
        if self._moved_up(step) and workflow.patched(PATCH):
            self._notify_duty_manager()
        return answer


@workflow.defn(name="EscalationWorkflow")
class Deprecated(_DutyManagerStep):
    @workflow.run
    async def run(self, *payloads: object) -> CaseOutcome:
        return await super().run(*payloads)

    def _apply(self, step: engine.Step) -> str:
        answer = super()._apply(step)
        if self._moved_up(step):
            workflow.deprecate_patch(PATCH)
            self._notify_duty_manager()
        return answer


def recorded() -> dict[str, WorkflowHistory]:
    paths = sorted(HISTORIES.glob("*.json"))
    histories = {path.name.removesuffix(".json"): load_history(path) for path in paths}
    assert histories, "no recorded histories; run .venv/bin/python tests/record_histories.py"
    return histories


def escalates(history: WorkflowHistory) -> bool:
    """Whether the case ever moved up: each upward move schedules an assessment."""
    return any(
        event.activity_task_scheduled_event_attributes.activity_type.name == "assess_case"
        for event in history.events
    )


async def replay_failures(
    workflow_class: type, histories: dict[str, WorkflowHistory]
) -> dict[str, Exception]:
    """Replay `histories` with `workflow_class`; the failures by scenario name."""
    replayer = Replayer(workflows=[workflow_class], data_converter=CONVERTER)
    names = {history.run_id: name for name, history in histories.items()}

    async def each():
        for history in histories.values():
            yield history

    failures = {}
    async with replayer.workflow_replay_iterator(each()) as results:
        async for result in results:
            if result.replay_failure is not None:
                failures[names[result.history.run_id]] = result.replay_failure
    return failures


async def test_an_unguarded_change_breaks_the_recorded_cases_that_escalate():
    histories = recorded()
    escalating = {name for name, history in histories.items() if escalates(history)}
    assert {"three_tiers_unclaimed", "ai_stage"} <= escalating < set(histories), escalating

    failures = await replay_failures(Unguarded, histories)

    # Exactly the cases that reach the changed code fail, and for the right reason.
    assert set(failures) == escalating, f"failed: {sorted(failures)}; escalate: {escalating}"
    for name, failure in failures.items():
        assert isinstance(failure, NondeterminismError), f"{name}: {failure!r}"
        assert "Nondeterminism error" in str(failure), f"{name}: {failure}"


async def test_the_guarded_change_replays_every_recorded_case():
    failures = await replay_failures(Guarded, recorded())
    assert failures == {}, failures


async def test_a_new_case_takes_the_new_path_and_its_history_replays(ts_env):
    notifier = RecordingNotifier()
    queue = unique_queue("patch")
    async with case_workers(ts_env.client, queue, [Guarded], notifier.activities):
        escalator = EscalatorClient(ts_env.client, queue)
        case_id = f"{queue}-case"
        policy = load_policy("policies/default.yaml")
        workflow_id = await escalator.start_case(
            {"case_id": case_id, "title": "VPN down", "policy": policy}
        )
        await escalator.escalate(case_id, actor("alice"), NOTE)
        await ts_env.sleep(timedelta(minutes=1))  # server time: lets the mail land
        await escalator.resolve(case_id, actor("bob", role="admin"), "fixed")
        outcome = await escalator.outcome(case_id)
        history = await ts_env.client.get_workflow_handle(workflow_id).fetch_history()

    # The new path was taken, once, for the one upward move.
    assert outcome.escalations == 1, outcome
    duty_mail = [
        (n.purpose, n.tier.level) for n in notifier.sent if n.recipients == (DUTY_MANAGER,)
    ]
    assert duty_mail == [("tier_entry", 2)], [(n.purpose, n.recipients) for n in notifier.sent]
    # ...and the case says so in its history: one marker for this patch (the
    # product's own patches may add theirs), not deprecated.
    markers = [
        event.marker_recorded_event_attributes
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
    ]
    patches = [
        json.loads(payload.data)
        for marker in markers
        for details in marker.details.values()
        for payload in details.payloads
    ]
    ours = [patch for patch in patches if patch.get("id") == PATCH]
    assert ours == [{"id": PATCH, "deprecated": False}], patches

    new_cases = {case_id: history}
    assert await replay_failures(Guarded, new_cases) == {}, "the new case does not replay"
    # The next step of the lifecycle keeps the new cases replaying...
    assert await replay_failures(Deprecated, new_cases) == {}, "deprecate_patch breaks new cases"
    # ...but rolling back to the code before the change would break them.
    rollback = await replay_failures(EscalationWorkflow, new_cases)
    assert isinstance(rollback.get(case_id), NondeterminismError), rollback
    assert "patch marker" in str(rollback[case_id]), rollback[case_id]


async def test_deprecating_the_patch_is_only_safe_once_the_old_cases_are_closed():
    histories = recorded()
    failures = await replay_failures(Deprecated, histories)
    escalating = {name for name, history in histories.items() if escalates(history)}
    assert set(failures) == escalating, f"failed: {sorted(failures)}; escalate: {escalating}"


def test_the_variants_are_registered_as_the_product_workflow():
    # The same name and handlers as the product's, so a worker would run them for
    # the cases already running.
    product = workflow._Definition.must_from_class(EscalationWorkflow)
    for variant in (Unguarded, Guarded, Deprecated):
        definition = workflow._Definition.must_from_class(variant)
        assert definition.name == "EscalationWorkflow"
        assert definition.updates.keys() == product.updates.keys()
        assert definition.signals.keys() == product.signals.keys()
        assert definition.queries.keys() == product.queries.keys()
