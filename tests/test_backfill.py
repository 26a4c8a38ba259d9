"""`escalator ledger backfill`: closed cases still in Temporal go into the ledger.

The recorded histories give the strongest check: each scenario was recorded
twice, once by code from before the ledger (`<scenario>.before-case-ledger.json`)
and once by the current code, which sent its ledger batches. Replaying the old
history must describe the same events and facts the new run really sent. Then a
dev-server test backfills real closed cases through the CLI into an empty ledger
and compares it with the ledger the worker wrote, and backfills again to show that
nothing is counted twice.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections import Counter

import pytest
from record_histories import CONVERTER, HISTORIES, SCENARIOS, load_history
from support import RecordingNotifier, actor, case_workers, seconds_policy

from escalator.adapters.ledger_store import LedgerStore
from escalator.domain.ledger import LedgerBatch, LedgerEvent
from escalator.runtime.backfill import replayed_batches
from starter import EscalatorClient

ESCALATOR = [sys.executable, "-m", "escalator.cli"]
NOTE = {"reason": "needs backend access", "steps_taken": ["checked the runbook"]}


def _events(batches: list[LedgerBatch]) -> list[LedgerEvent]:
    return [event for batch in batches for event in batch.events]


def _comparable(events: list[LedgerEvent]) -> tuple[list[int], list[tuple]]:
    """The sequence numbers, and the events without them or their times: the two
    recordings ran at different moments, and background activities (a mail, an
    assessment) may finish in either order."""
    described = [(e.kind, e.tier_level, e.actor, e.from_level, e.reason) for e in events]
    return [e.seq for e in events], sorted(described, key=repr)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_replaying_a_run_from_before_the_ledger_describes_what_the_ledger_would_hold(
    scenario,
):
    old = HISTORIES / f"{scenario}.before-case-ledger.json"
    new = HISTORIES / f"{scenario}.json"
    if not old.exists():
        pytest.skip(f"{scenario} has no history from before the ledger")
    old_run, new_run = load_history(old), load_history(new)
    old_replay = await replayed_batches(CONVERTER, old_run)
    # What the current code sent, as its own replay re-sends it (the closing batch
    # is a local activity, whose input the history does not hold). The dev-server
    # test below checks a backfill against the ledger the cases really wrote.
    new_replay = await replayed_batches(CONVERTER, new_run)
    assert not old_replay.wrote_to_ledger
    replayed, sent = old_replay.batches, new_replay.batches
    assert _events(replayed), "the replay describes the run's events"
    if scenario.endswith("continue_as_new"):
        # Each recording continued as new at its own history length, so one first
        # run may hold a few more entries: the shorter describes a part of the longer.
        (old_seqs, old_described), (new_seqs, new_described) = (
            _comparable(_events(replayed)),
            _comparable(_events(sent)),
        )
        assert old_seqs == list(range(1, len(old_seqs) + 1))
        assert new_seqs == list(range(1, len(new_seqs) + 1))
        short, long = sorted([old_described, new_described], key=len)
        assert not Counter(short) - Counter(long), (short, long)
        return
    assert _comparable(_events(replayed)) == _comparable(_events(sent))
    old_facts = [b.case for b in replayed if b.case is not None]
    new_facts = [b.case for b in sent if b.case is not None]
    assert len(old_facts) == len(new_facts[-1:])
    if new_facts:
        keep = {"case_id", "final_tier", "escalations", "tier_moves", "sla_breached", "reopened"}
        assert old_facts[-1].model_dump(include=keep) == new_facts[-1].model_dump(include=keep)


async def test_backfill_rebuilds_a_lost_ledger_and_counts_nothing_twice(dev_env, tmp_path):
    queue = f"backfill-{uuid.uuid4().hex[:8]}"
    account = f"acct-{uuid.uuid4().hex[:8]}"
    notifier = RecordingNotifier()
    escalator = EscalatorClient(dev_env.client, queue)
    policy = seconds_policy(first_response=600, resolution=1200)
    ids = [f"{account}-{i}" for i in range(3)]
    who = actor("alice", account=account)
    async with case_workers(dev_env.client, queue, notifier.activities):
        for case_id in ids:
            await escalator.start_case(
                {"case_id": case_id, "title": "VPN down", "account": account, "policy": policy}
            )
            await escalator.claim(case_id, who)
            await escalator.escalate(case_id, who, NOTE)
            await escalator.resolve(case_id, who, "fixed")
            await escalator.outcome(case_id)  # closed: its facts are in the ledger
    target = f"sqlite:///{tmp_path}/rebuilt.db"
    env = {
        **os.environ,
        "ESCALATOR_LEDGER_URL": target,
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
    }
    command = [*ESCALATOR, "ledger", "backfill", "--account", account]
    first = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, env=env, timeout=120
    )
    assert first.returncode == 0, first.stderr
    rebuilt = LedgerStore(target)
    for case_id in ids:
        assert rebuilt.events_of(case_id) == notifier.ledger.events_of(case_id)
        assert rebuilt.case(case_id) == notifier.ledger.case(case_id)
    assert "3 closed runs read" in first.stdout
    again = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, env=env, timeout=120
    )
    assert again.returncode == 0, again.stderr
    assert "0 new events" in again.stdout, again.stdout
    assert rebuilt.counts() == {
        "ledger_events": sum(len(notifier.ledger.events_of(i)) for i in ids),
        "ledger_cases": 3,
    }
