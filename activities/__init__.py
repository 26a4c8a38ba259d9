"""Temporal activities.

The worker registers `activities_for(settings)`: the methods of `NotificationActivities`
and `AssessmentActivities`, configured by one `EscalatorSettings` loaded at start-up.
`ALL_ACTIVITIES` are the same activities as plain functions that read their
settings from the environment at each call (for tests and benchmarks that change the
environment while a worker runs).
"""

from __future__ import annotations

from collections.abc import Callable

from activities.assessment import (
    AssessmentActivities,
    assess_case,
    close_clients,
    draft_for_audience,
)
from activities.ledger import LedgerActivities, record_to_ledger
from activities.notifications import NotificationActivities, post_webhook, send_email
from escalator.adapters.settings import EscalatorSettings

ALL_ACTIVITIES = [send_email, post_webhook, assess_case, draft_for_audience, record_to_ledger]


def activities_for(settings: EscalatorSettings) -> list[Callable]:
    """The activities, configured by `settings`, in `ALL_ACTIVITIES`' order."""
    notifications = NotificationActivities(settings)
    ai = AssessmentActivities(settings)
    return [
        notifications.send_email,
        notifications.post_webhook,
        ai.assess_case,
        ai.draft_for_audience,
        LedgerActivities(settings).record_to_ledger,
    ]


__all__ = [
    "ALL_ACTIVITIES",
    "AssessmentActivities",
    "LedgerActivities",
    "NotificationActivities",
    "activities_for",
    "assess_case",
    "close_clients",
    "draft_for_audience",
    "post_webhook",
    "record_to_ledger",
    "send_email",
]
