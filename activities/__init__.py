"""Temporal activities. The worker registers `ALL_ACTIVITIES`."""

from activities.assessment import assess_case, draft_for_audience
from activities.notifications import post_webhook, send_email

ALL_ACTIVITIES = [send_email, post_webhook, assess_case, draft_for_audience]

__all__ = ["ALL_ACTIVITIES", "assess_case", "draft_for_audience", "post_webhook", "send_email"]
