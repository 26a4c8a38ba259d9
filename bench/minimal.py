"""The bare-Temporal baseline: a minimal hand-written escalation workflow.

It does what a team would write in an afternoon, with the same timers and
activities as Escalator's canonical case, in the same order:

1. notify the tier (real SMTP);
2. sleep until the warning point (75 % of the first response) and send the
   warning, unless someone claimed first;
3. sleep until the deadline; on a breach, notify the next tier and, at the same
   time, run the assessment activity, then mail the assessment;
4. wait for a claim signal, then a resolve signal.

With three stages it is the baseline of the time-skipping simulation too.

No search attributes, no timeline, no rules, no business calendar, no policy
snapshot, no queries or updates: everything Escalator costs on top of the same
timers and activities is what the benchmark measures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

NOTIFY = "bench_notify"
ASSESS = "bench_assess"
# The same delivery retry as Escalator's (workflows/escalation.py DELIVERY_RETRY).
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
)
TIMEOUT = timedelta(seconds=30)


@dataclass
class Stage:
    recipient: str
    timeout_seconds: float | None  # None: the final stage waits for a person


@dataclass
class MinimalInput:
    case_id: str
    stages: list[Stage]
    # Absolute first deadline (the herd benchmark); else workflow start + timeout.
    first_deadline: datetime | None = None
    warn_at: float | None = 0.75  # the fraction of the first response; None: no warning


@dataclass
class Mail:
    case_id: str
    purpose: str
    recipient: str
    breached: datetime | None = None  # the deadline this mail reports, if any
    text: str = ""


@workflow.defn(name="MinimalEscalation")
class MinimalEscalation:
    def __init__(self) -> None:
        self.claimed_by: str | None = None
        self.resolved = False

    @workflow.signal
    def claim(self, user: str) -> None:
        if self.claimed_by is None:
            self.claimed_by = user

    @workflow.signal
    def resolve(self, user: str) -> None:
        self.resolved = True

    @workflow.run
    async def run(self, case: MinimalInput) -> dict:
        entered = workflow.now()
        breached: datetime | None = None
        escalations = 0
        for number, stage in enumerate(case.stages):
            entry = self._notify(Mail(case.case_id, "tier_entry", stage.recipient, breached))
            if breached is not None:
                assessment = await workflow.execute_activity(
                    ASSESS,
                    case.case_id,
                    start_to_close_timeout=TIMEOUT,
                    retry_policy=RETRY,
                )
                await entry
                await self._notify(
                    Mail(case.case_id, "assessment", stage.recipient, None, assessment)
                )
            else:
                await entry
            if stage.timeout_seconds is None:
                break
            deadline = entered + timedelta(seconds=stage.timeout_seconds)
            if number == 0 and case.first_deadline is not None:
                deadline = case.first_deadline
            if case.warn_at is not None:
                warn = deadline - timedelta(seconds=stage.timeout_seconds * (1 - case.warn_at))
                if not await self._sleep_unless_acted_on(warn):
                    break
                await self._notify(Mail(case.case_id, "warning", stage.recipient))
            if not await self._sleep_unless_acted_on(deadline):
                break  # claimed (or resolved) in time: no escalation
            breached, entered = deadline, workflow.now()
            escalations += 1
        await workflow.wait_condition(self._acted_on)
        await workflow.wait_condition(lambda: self.resolved)
        return {"case_id": case.case_id, "claimed_by": self.claimed_by, "escalations": escalations}

    def _notify(self, mail: Mail) -> workflow.ActivityHandle:
        # Started at once (not a lazy coroutine), so the escalation mail and the
        # assessment run side by side, as in Escalator.
        return workflow.start_activity(
            NOTIFY, mail, start_to_close_timeout=TIMEOUT, retry_policy=RETRY
        )

    async def _sleep_unless_acted_on(self, until: datetime) -> bool:
        """True if `until` came first; False if someone claimed or resolved before."""
        remaining = until - workflow.now()
        if remaining <= timedelta(0):
            return not self._acted_on()
        try:
            await workflow.wait_condition(self._acted_on, timeout=remaining)
            return False
        except TimeoutError:
            return True

    def _acted_on(self) -> bool:
        return self.claimed_by is not None or self.resolved
