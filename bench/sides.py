"""The two sides of every comparison, behind one small interface.

`EscalatorSide` drives real cases through `starter.EscalatorClient` (the product's
API: validated input, static summary and details, signals). `MinimalSide` drives
`bench.minimal.MinimalEscalation` with plain client calls. A scenario says what to
start (first-response seconds, optional herd instant, tiers); each side turns that
into its own input.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio.client import Client

from bench.minimal import MinimalInput, Stage
from escalator.domain.policy import Policy
from starter import EscalatorClient

DESCRIPTION = (
    "Outlook stopped syncing for the whole finance team after this morning's "
    "certificate rotation. Web mail works. Re-adding the account did not help."
)
ENGINEER = {"user": "bench-engineer", "role": "engineer"}
ADMIN = {"user": "bench-admin", "role": "admin"}
TIER_NAMES = [
    ("Front-Line Support", "support-generalists", "l1"),
    ("Specialist Support", "support-specialists", "l2"),
    ("Engineering", "engineering-oncall", "l3"),
]


@dataclass(frozen=True)
class Plan:
    """What a case looks like, in terms both sides understand.

    `timeouts` has one entry per tier: the first-response time in seconds, or None
    for the final tier (which waits for a person). `opens_at` starts the first
    tier's clock at that instant for every case (the herd benchmark): Escalator
    gets a business calendar opening then, the minimal workflow an absolute
    deadline.
    """

    timeouts: tuple[float | None, ...]
    opens_at: datetime | None = None
    warn_at: float = 0.75


@functools.lru_cache(maxsize=32)
def escalator_policy(plan: Plan) -> Policy:
    tiers = []
    for level, timeout in enumerate(plan.timeouts, start=1):
        name, team, mailbox = TIER_NAMES[level - 1]
        tier: dict = {
            "level": level,
            "name": name,
            "team": team,
            "notify": [f"{mailbox}@example.com"],
        }
        if timeout is not None:
            tier["sla"] = {"first_response": timeout, "resolution_target": timeout * 10}
        tiers.append(tier)
    data: dict = {"name": "bench", "warn_at": plan.warn_at, "tiers": tiers}
    if plan.opens_at is not None:
        data["calendar"] = opening_calendar(plan.opens_at)
    return Policy.model_validate(data)


def opening_calendar(opens_at: datetime) -> dict:
    """A UTC calendar closed until `opens_at` (a whole minute), then open 24x7."""
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    today = days[opens_at.weekday()]
    tomorrow = days[(opens_at.weekday() + 1) % 7]
    return {
        "timezone": "UTC",
        "hours": {today: [f"{opens_at:%H:%M}-24:00"], tomorrow: ["00:00-24:00"]},
    }


class EscalatorSide:
    kind = "escalator"
    label = "Escalator"

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.api = EscalatorClient(client, task_queue)
        self._created: dict[str, datetime] = {}

    def workflow_id(self, case_id: str) -> str:
        return f"case-{case_id}"

    async def start(self, case_id: str, plan: Plan) -> None:
        await self.api.start_case(
            {
                "case_id": case_id,
                "title": "Outlook fails to sync",
                "description": DESCRIPTION,
                "policy": escalator_policy(plan),
            }
        )

    async def claim(self, case_id: str) -> None:
        await self.api.claim(case_id, ENGINEER, wait=False)

    async def resolve(self, case_id: str) -> None:
        await self.api.resolve(case_id, ADMIN, "bench: resolved", wait=False)

    async def result(self, case_id: str):
        return await self.api.outcome(case_id)

    async def deadline_of(self, case_id: str, plan: Plan) -> datetime:
        """The first tier's breach deadline, exactly as the case computed it: its
        first-response clock starts when it is created, or when its calendar opens."""
        created_at = self._created.get(case_id)
        if created_at is None:
            created_at = self._created[case_id] = (await self.api.status(case_id)).created_at
        clock_starts = max(created_at, plan.opens_at) if plan.opens_at else created_at
        return clock_starts + timedelta(seconds=plan.timeouts[0])


class MinimalSide:
    kind = "minimal"
    label = "bare Temporal"

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    def workflow_id(self, case_id: str) -> str:
        return f"min-{case_id}"

    async def start(self, case_id: str, plan: Plan) -> None:
        stages = [
            Stage(recipient=TIER_NAMES[number][2], timeout_seconds=timeout)
            for number, timeout in enumerate(plan.timeouts)
        ]
        first_deadline = None
        if plan.opens_at is not None:
            first_deadline = plan.opens_at + timedelta(seconds=plan.timeouts[0])
        await self.client.start_workflow(
            "MinimalEscalation",
            MinimalInput(
                case_id=case_id,
                stages=stages,
                first_deadline=first_deadline,
                warn_at=plan.warn_at,
            ),
            id=self.workflow_id(case_id),
            task_queue=self.task_queue,
        )

    def _handle(self, case_id: str):
        return self.client.get_workflow_handle(self.workflow_id(case_id))

    async def claim(self, case_id: str) -> None:
        await self._handle(case_id).signal("claim", ENGINEER["user"])

    async def resolve(self, case_id: str) -> None:
        await self._handle(case_id).signal("resolve", ADMIN["user"])

    async def result(self, case_id: str):
        return await self._handle(case_id).result()


SIDES = {"escalator": EscalatorSide, "minimal": MinimalSide}
