"""worker.py's settings and the split into a case worker and an AI worker."""

from __future__ import annotations

import pytest
from temporalio.worker import UnsandboxedWorkflowRunner

from activities import ALL_ACTIVITIES
from escalator.assessment import ai_task_queue
from escalator.errors import EscalatorError
from escalator.worker_runtime import options_from_env, split_activities


def test_model_calls_are_split_off_by_activity_name():
    cases, ai = split_activities(ALL_ACTIVITIES)
    assert sorted(a.__name__ for a in cases) == ["post_webhook", "send_email"]
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


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ESCALATOR_MAX_CACHED_WORKFLOWS", "lots", "must be a whole number of at least 1"),
        ("ESCALATOR_MAX_CACHED_WORKFLOWS", "0", "must be a whole number of at least 1"),
        ("ESCALATOR_AI_CONCURRENCY", "-3", "must be a whole number of at least 1"),
        ("ESCALATOR_WORKFLOW_SANDBOX", "maybe", "must be on or off"),
    ],
)
def test_bad_worker_settings_are_one_line_errors_naming_the_variable(variable, value, message):
    with pytest.raises(EscalatorError) as error:
        options_from_env({variable: value})
    text = str(error.value)
    assert text.startswith(f"{variable}=") and message in text and "\n" not in text
