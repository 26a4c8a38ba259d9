"""What a case tells the ledger: its events, and one fact row once it resolves.

Temporal cannot be the reporting store (visibility cannot group by tier, category
or agent, and closed cases vanish at the namespace's retention), so every case
exports its facts. The engine (escalator/domain/case.py) describes each timeline
entry as a `LedgerEvent` as it records it; the workflow sends them in batches to
the `record_to_ledger` activity, with the case's `LedgerCase` row when it
resolves. Each event is keyed by (case id, sequence number): the sequence is the
timeline entry's number over the case's whole life, so retries and replays write
nothing twice, and runs after continue-as-new go on counting.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from escalator.domain.policy import Policy
from escalator.domain.records import EscalationNote, Model

# What moved a case between tiers. `sla`: a breach escalated it; `manual`: a person
# escalated or de-escalated it; `severity`: a raised severity re-routed it. Reports
# also count hand-offs to the AI-agent stage apart (docs/metrics.md).
MoveReason = Literal["sla", "manual", "severity"]


class LedgerEvent(Model):
    case_id: str
    seq: int = Field(ge=1, description="The timeline entry's number in the case's whole life.")
    at: datetime
    kind: str  # the timeline kind: created, claimed, escalated, sla_warning, ...
    tier_level: int  # the tier the case is at once the event has happened
    actor: str | None = None
    detail: str = ""
    from_level: int | None = None  # moves only
    reason: MoveReason | None = None  # moves only
    note: EscalationNote | None = None  # moves only: what travelled to the next tier
    # Holds only: when the hold ends by itself, as the person asked.
    until: datetime | None = None
    # Notes only: the author's role, since a customer's reply also ends a hold (the
    # simulator replays it as one).
    role: str | None = None


class LedgerCase(Model):
    """One row per case, written when it resolves and rewritten if it reopens."""

    case_id: str
    account: str
    title: str
    category: str | None = None
    customer_tier: str | None = None
    severity: str
    policy_name: str
    created_at: datetime
    first_claim_at: datetime | None
    resolved_at: datetime | None
    resolved_by: str | None
    final_tier: int
    escalations: int  # upward moves
    tier_moves: int  # every move, up or down
    sla_breached: bool
    reopened: int
    hold_seconds: float
    needs_review: bool
    events: int  # timeline entries in the case's whole life
    # The policy snapshot the case ran with: its calendars give the business-time
    # figures, and its tiers the names and teams a report shows.
    policy: Policy
    # `<name>@<12 hex>` of that snapshot (escalator/domain/policy_version.py). None in
    # a batch from an older worker (the store computes it then), and in rows of an
    # older ledger whose policy no longer validates.
    policy_version: str | None = None


class LedgerBatch(Model):
    """Input of `record_to_ledger`: events (oldest first) and, once resolved, the row."""

    case_id: str
    events: tuple[LedgerEvent, ...] = ()
    case: LedgerCase | None = None


class LedgerReceipt(Model):
    events_written: int  # new rows; events already in the ledger are skipped
    case_written: bool


class CaseHistory(Model):
    """A resolved case as the ledger holds it: its fact row and its events in order."""

    facts: LedgerCase
    events: tuple[LedgerEvent, ...]
