"""worker.py's settings and the split into a case worker and an AI worker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.worker import UnsandboxedWorkflowRunner

from activities import ALL_ACTIVITIES
from escalator.domain.assessment import ai_task_queue
from escalator.domain.errors import EscalatorError
from escalator.runtime.worker import (
    build_workers,
    graceful_shutdown_timeout,
    options_from_env,
    split_activities,
)


def test_model_calls_are_split_off_by_activity_name():
    cases, ai = split_activities(ALL_ACTIVITIES)
    assert sorted(a.__name__ for a in cases) == [
        "post_channel_webhook",
        "post_slack_message",
        "post_webhook",
        "record_to_ledger",
        "send_email",
        "send_pagerduty_event",
    ]
    assert sorted(a.__name__ for a in ai) == ["assess_case", "draft_for_audience"]
    assert ai_task_queue("escalations") == "escalations-ai"


def test_production_runs_unsandboxed_unless_told_otherwise():
    assert isinstance(options_from_env({})["workflow_runner"], UnsandboxedWorkflowRunner)
    assert "workflow_runner" not in options_from_env({"ESCALATOR_WORKFLOW_SANDBOX": "on"})
    off = options_from_env({"ESCALATOR_WORKFLOW_SANDBOX": "OFF"})
    assert isinstance(off["workflow_runner"], UnsandboxedWorkflowRunner)


def test_the_production_cache_is_bounded_by_default():
    assert options_from_env({})["max_cached_workflows"] == 800


def test_tuning_values_are_read():
    options = options_from_env(
        {"ESCALATOR_MAX_CACHED_WORKFLOWS": "300", "ESCALATOR_AI_CONCURRENCY": " 50 "}
    )
    assert (options["max_cached_workflows"], options["ai_concurrency"]) == (300, 50)


def test_the_worker_drains_for_a_delivery_attempt_and_keeps_the_sdk_sticky_timeout():
    options = options_from_env({})
    assert options["graceful_shutdown_timeout"] == timedelta(seconds=30)
    assert options["sticky_queue_schedule_to_start_timeout"] == timedelta(seconds=10)
    assert graceful_shutdown_timeout({}) == timedelta(seconds=30)


def test_shutdown_and_sticky_timeouts_are_read_in_seconds():
    options = options_from_env(
        {"ESCALATOR_GRACEFUL_SHUTDOWN_TIMEOUT": " 12.5 ", "ESCALATOR_STICKY_TIMEOUT": "3"}
    )
    assert options["graceful_shutdown_timeout"] == timedelta(seconds=12.5)
    assert options["sticky_queue_schedule_to_start_timeout"] == timedelta(seconds=3)
    # 0 means "cancel activities at once", the SDK's own default.
    assert graceful_shutdown_timeout({"ESCALATOR_GRACEFUL_SHUTDOWN_TIMEOUT": "0"}) == timedelta()


async def test_both_workers_get_the_drain_time(dev_env):
    workers = build_workers(
        dev_env.client,
        "drain-config",
        graceful_shutdown_timeout=timedelta(seconds=7),
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=4),
    )
    assert [w.config()["graceful_shutdown_timeout"] for w in workers] == [timedelta(seconds=7)] * 2
    # The sticky queue is the case worker's alone: the AI worker runs no workflows.
    assert workers[0].config()["sticky_queue_schedule_to_start_timeout"] == timedelta(seconds=4)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ESCALATOR_MAX_CACHED_WORKFLOWS", "lots", "must be a whole number of at least 1"),
        ("ESCALATOR_MAX_CACHED_WORKFLOWS", "0", "must be a whole number of at least 1"),
        ("ESCALATOR_AI_CONCURRENCY", "-3", "must be a whole number of at least 1"),
        ("ESCALATOR_WORKFLOW_SANDBOX", "maybe", "must be on or off"),
        ("ESCALATOR_GRACEFUL_SHUTDOWN_TIMEOUT", "soon", "seconds from 0 to 3600"),
        ("ESCALATOR_GRACEFUL_SHUTDOWN_TIMEOUT", "-1", "seconds from 0 to 3600"),
        ("ESCALATOR_GRACEFUL_SHUTDOWN_TIMEOUT", "inf", "seconds from 0 to 3600"),
        ("ESCALATOR_STICKY_TIMEOUT", "0", "more than 0 and at most 3600"),
        ("ESCALATOR_STICKY_TIMEOUT", "nan", "more than 0 and at most 3600"),
        ("ESCALATOR_STICKY_TIMEOUT", "10s", "more than 0 and at most 3600"),
    ],
)
def test_bad_worker_settings_are_one_line_errors_naming_the_variable(variable, value, message):
    with pytest.raises(EscalatorError) as error:
        options_from_env({variable: value})
    text = str(error.value)
    assert text.startswith(f"{variable}=") and message in text and "\n" not in text
