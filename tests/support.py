"""Helpers shared by the tests: recording activities, actors and policies."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio import activity

from escalator.models import Actor, DeliveryReceipt, Notification
from escalator.policy import Policy
from escalator.policy_files import load_policy

DEFAULT_POLICY = load_policy("policies/default.yaml")


def actor(user: str = "alice", role: str = "engineer", account: str = "default") -> Actor:
    return Actor(user=user, role=role, account=account)


def unique_queue(prefix: str = "test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class RecordingNotifier:
    """Stand-in notification activities for workflow-logic tests: they record
    what the workflow asked to send and succeed at once."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    @property
    def activities(self):
        @activity.defn(name="send_email")
        async def send_email(notification: Notification) -> DeliveryReceipt:
            self.sent.append(notification)
            return DeliveryReceipt(
                message_id=notification.message_id,
                channel="email",
                accepted=notification.recipients,
                detail="recorded",
            )

        @activity.defn(name="post_webhook")
        async def post_webhook(notification: Notification) -> DeliveryReceipt:
            self.sent.append(notification)
            return DeliveryReceipt(
                message_id=notification.message_id, channel="webhook", detail="recorded"
            )

        return [send_email, post_webhook]

    def purposes(self, case_id: str | None = None) -> list[tuple[str, int]]:
        return [
            (n.purpose, n.tier.level)
            for n in self.sent
            if case_id is None or n.case.case_id == case_id
        ]


def seconds_policy(first_response: float = 3, resolution: float = 10) -> Policy:
    """Three tiers measured in seconds; the final tier has no SLA."""
    return Policy.model_validate(
        {
            "name": "seconds",
            "tiers": [
                {
                    "level": 1,
                    "name": "Front-Line Support",
                    "team": "support-generalists",
                    "notify": ["l1@example.com"],
                    "sla": {"first_response": first_response, "resolution_target": resolution},
                },
                {
                    "level": 2,
                    "name": "Specialist Support",
                    "team": "support-specialists",
                    "notify": ["l2@example.com"],
                    "sla": {"first_response": first_response, "resolution_target": resolution},
                },
                {
                    "level": 3,
                    "name": "Engineering",
                    "team": "engineering-oncall",
                    "notify": ["oncall@example.com"],
                },
            ],
        }
    )


HOUR = timedelta(hours=1)


async def eventually(predicate, *, within: float = 10.0, interval: float = 0.05):
    """Poll `predicate` (sync or async) until it returns something truthy."""
    import asyncio
    import inspect

    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)
