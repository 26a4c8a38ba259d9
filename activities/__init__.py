"""Temporal activities. The worker registers `ALL_ACTIVITIES`."""

from activities.notifications import post_webhook, send_email

ALL_ACTIVITIES = [send_email, post_webhook]

__all__ = ["ALL_ACTIVITIES", "post_webhook", "send_email"]
