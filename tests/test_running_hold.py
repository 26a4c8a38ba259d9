"""A hold still running is counted up to the moment the status is read, not to the
workflow's last task (a query cannot read the clock)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from support import RecordingNotifier, actor, case_workers, seconds_policy, unique_queue

from escalator.domain.models import CaseStatus, HoldState, with_running_hold
from starter import EscalatorClient

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def status_at(as_of: datetime | None, *, held_since: datetime | None, total: float) -> CaseStatus:
    hold = None if held_since is None else HoldState(since=held_since, reason="r", by="alice")
    return CaseStatus.model_validate(
        {
            "case_id": "c", "title": "t", "state": "claimed", "severity": "P3",
            "account": "default", "tier_level": 1, "tier_name": "L1", "team": "desk",
            "assignee": "alice", "escalations": 0, "sla_breached": False,
            "created_at": T0, "next_deadline": None, "last_escalation": None,
            "policy_name": "default", "notes": (), "timeline": (), "hold": hold,
            "total_hold_seconds": total, "as_of": as_of,
        }
    )  # fmt: skip


def test_a_running_hold_counts_on_from_as_of():
    status = status_at(T0 + timedelta(minutes=5), held_since=T0, total=300.0)
    later = with_running_hold(status, T0 + timedelta(minutes=20))
    assert later.total_hold_seconds == 1200.0


@pytest.mark.parametrize(
    "as_of, held_since, now",
    [
        (T0, None, T0 + timedelta(hours=1)),  # not on hold
        (None, T0, T0 + timedelta(hours=1)),  # from a worker without as_of
        (T0 + timedelta(minutes=5), T0, T0),  # the reader's clock is behind
    ],
)
def test_nothing_is_added_otherwise(as_of, held_since, now):
    status = status_at(as_of, held_since=held_since, total=300.0)
    assert with_running_hold(status, now).total_hold_seconds == 300.0


@pytest.mark.integration
async def test_the_client_reads_a_running_hold_up_to_now(dev_env):
    queue = unique_queue("hold-read")
    async with case_workers(dev_env.client, queue, RecordingNotifier().activities):
        escalator = EscalatorClient(dev_env.client, queue)
        await escalator.start_case(
            {"case_id": "hold-read", "title": "VPN", "policy": seconds_policy(600, 1200)}
        )
        await escalator.claim("hold-read", actor("alice"))
        await escalator.hold("hold-read", actor("alice"), "waiting on the customer")
        await asyncio.sleep(2)  # nothing happens in the case meanwhile
        status = await escalator.status("hold-read")
        # The workflow's own answer stops at its last task (the hold itself).
        assert status.as_of is not None and status.hold is not None
        assert status.as_of - status.hold.since < timedelta(seconds=1), status.as_of
        assert status.total_hold_seconds >= 2.0, status.total_hold_seconds
        await escalator.resolve("hold-read", actor("alice"), "done")
