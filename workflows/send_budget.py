"""How much activity input one workflow task may schedule.

One task's completion carries every activity it schedules, and gRPC refuses more
than 4 MiB. A burst of messages handled in one task could schedule more, and that
task would fail on every retry: the case would be stuck. So past
limits.TASK_SEND_BYTES the rest waits for the next task, which the activities
already scheduled bring.
"""

from __future__ import annotations

from pydantic_core import to_json
from temporalio import workflow

from escalator.domain import limits


class SendBudget:
    def __init__(self) -> None:
        self._task = -1  # the workflow task (by history length) of _bytes
        self._bytes = 0  # activity input scheduled in that task

    async def wait_for_room(self, activity_input: object) -> None:
        """Return once `activity_input` fits in the current workflow task. The history
        length tells tasks apart, the same live and on replay."""
        size = len(to_json(activity_input))
        while True:
            task = workflow.info().get_current_history_length()
            if task != self._task:
                self._task, self._bytes = task, 0
            if self._bytes == 0 or self._bytes + size <= limits.TASK_SEND_BYTES:
                self._bytes += size
                return

            def next_task(seen: int = task) -> bool:
                return workflow.info().get_current_history_length() != seen

            await workflow.wait_condition(next_task)
