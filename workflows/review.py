"""MonthlyReviewWorkflow: last month's escalation review, built and mailed once.

A Temporal Schedule (`escalator review schedule`) starts it. The month it reviews
is the one before the run's *scheduled* time (the `TemporalScheduledStartTime`
search attribute Temporal sets on every scheduled run), in the input's time zone,
so a backfill of past schedule times regenerates those past months. Started by
hand, without the attribute, it reviews the month before the workflow's own start.

All the work (ledger read, report, HTML, SMTP) is one activity: the workflow only
decides the month and a stable Message-ID, and retries the activity on its own
schedule.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    # Passed through so zoneinfo's zones are the real ones, and the email-validator
    # modules behind EmailAddress are not imported afresh for every run.
    import email_validator.rfc_constants
    import email_validator.version  # noqa: F401
    import idna.core
    import idna.intranges
    import idna.package_data  # noqa: F401

    from escalator.domain.names import PERMANENT_DELIVERY_ERROR
    from escalator.domain.review import (
        REVIEW_WORKFLOW_TYPE,
        SCHEDULED_START_TIME,
        SEND_MONTHLY_REVIEW,
        ReviewInput,
        ReviewRequest,
        ReviewResult,
        previous_month,
        review_message_id,
    )

SCHEDULED_START = SearchAttributeKey.for_datetime(SCHEDULED_START_TIME)

# Building the report reads a month of the ledger and renders it: minutes at most.
# An SMTP or ledger outage is retried for up to a day with backoff; a refused
# recipient (permanent) stops at once, since retrying would only repeat the refusal.
REVIEW_ATTEMPT_TIMEOUT = timedelta(minutes=5)
REVIEW_GIVE_UP_AFTER = timedelta(hours=24)
REVIEW_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=[PERMANENT_DELIVERY_ERROR],
)


def scheduled_time(now: datetime, found: datetime | None) -> datetime:
    """The time the run stands for: the schedule's nominal time, else `now`."""
    return found if found is not None else now


@workflow.defn(name=REVIEW_WORKFLOW_TYPE)
class MonthlyReviewWorkflow:
    @workflow.run
    async def run(self, review: ReviewInput) -> ReviewResult:
        info = workflow.info()
        at = scheduled_time(workflow.now(), info.typed_search_attributes.get(SCHEDULED_START))
        month = previous_month(at, review.timezone)
        request = ReviewRequest(
            review=review,
            month=month,
            message_id=review_message_id(info.workflow_id, info.run_id, month),
            run=info.workflow_id,
        )
        result: ReviewResult = await workflow.execute_activity(
            SEND_MONTHLY_REVIEW,
            request,
            result_type=ReviewResult,
            start_to_close_timeout=REVIEW_ATTEMPT_TIMEOUT,
            schedule_to_close_timeout=REVIEW_GIVE_UP_AFTER,
            retry_policy=REVIEW_RETRY,
            summary=f"review {month.label}",
        )
        return result
