"""Temporal activities.

The worker registers `activities_for(settings)`: the methods of `NotificationActivities`,
`AssessmentActivities`, `LedgerActivities` and `ChannelActivities`, configured by one
`EscalatorSettings` loaded at start-up.
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
from activities.channels import (
    ChannelActivities,
    post_channel_webhook,
    post_slack_message,
    send_pagerduty_event,
)
from activities.ledger import LedgerActivities, record_to_ledger
from activities.notifications import NotificationActivities, post_webhook, send_email
from escalator.adapters.settings import EscalatorSettings

ALL_ACTIVITIES = [
    send_email,
    post_webhook,
    assess_case,
    draft_for_audience,
    record_to_ledger,
    post_slack_message,
    send_pagerduty_event,
    post_channel_webhook,
]


def activities_for(settings: EscalatorSettings) -> list[Callable]:
    """The activities, configured by `settings`, in `ALL_ACTIVITIES`' order."""
    notifications = NotificationActivities(settings)
    ai = AssessmentActivities(settings)
    channels = ChannelActivities(settings)
    return [
        notifications.send_email,
        notifications.post_webhook,
        ai.assess_case,
        ai.draft_for_audience,
        LedgerActivities(settings).record_to_ledger,
        channels.post_slack_message,
        channels.send_pagerduty_event,
        channels.post_channel_webhook,
    ]


__all__ = [
    "ALL_ACTIVITIES",
    "AssessmentActivities",
    "ChannelActivities",
    "LedgerActivities",
    "NotificationActivities",
    "activities_for",
    "assess_case",
    "close_clients",
    "draft_for_audience",
    "post_channel_webhook",
    "post_slack_message",
    "post_webhook",
    "record_to_ledger",
    "send_email",
    "send_pagerduty_event",
]
