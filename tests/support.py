"""Helpers shared by the tests: recording activities, actors and policies."""

from __future__ import annotations

import contextlib
import email
import email.policy
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio import activity
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.ledger import LedgerActivities
from escalator.adapters.policy_files import load_policy
from escalator.adapters.settings import EscalatorSettings, LedgerSettings
from escalator.devstack import processes
from escalator.devstack.mail_catcher import SmtpSink
from escalator.devstack.processes import free_port
from escalator.domain import case as engine
from escalator.domain import case_view
from escalator.domain.assessment import (
    AssessmentRequest,
    AssessmentResult,
    Draft,
    DraftRequest,
    offline_assessment,
    offline_draft,
)
from escalator.domain.ledger import CaseHistory, LedgerEvent
from escalator.domain.models import (
    Actor,
    CaseInput,
    CaseStatus,
    ChannelSend,
    DeliveryReceipt,
    Notification,
    ResolveRequest,
)
from escalator.domain.names import (
    POST_CHANNEL_WEBHOOK,
    POST_SLACK_MESSAGE,
    SEND_EMAIL,
    SEND_PAGERDUTY_EVENT,
)
from escalator.domain.policy import Policy
from starter import EscalatorClient
from workflows.escalation import EscalationWorkflow

DEFAULT_POLICY = load_policy("policies/default.yaml")
ENGINE_T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday: where EngineCase starts
ESCALATOR = [sys.executable, "-m", "escalator.cli"]  # the CLI, as a user runs it


def policy_with(**changes) -> Policy:
    """The default policy with top-level fields changed and tiers patched by level
    (`tier_changes={1: {...}}`), validated like any policy file."""
    data = DEFAULT_POLICY.model_dump(mode="json")
    for level, fields in changes.pop("tier_changes", {}).items():
        next(t for t in data["tiers"] if t["level"] == level).update(fields)
    data.update(changes)
    return Policy.model_validate(data)


def actor(user: str = "alice", role: str = "engineer", account: str = "default") -> Actor:
    return Actor(user=user, role=role, account=account)


def unique_queue(prefix: str = "test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class RecordingNotifier:
    """Stand-in notification activities for workflow-logic tests: they record
    what the workflow asked to send and succeed at once."""

    def __init__(self, assessor=None, *, ledger_url: str | None = None) -> None:
        # The ledger is the real activity on a real SQLite file (or the database
        # `ledger_url` names), so every case the tests run also writes its events and
        # facts, as in production.
        url = ledger_url or f"sqlite:///{tempfile.mkdtemp(prefix='ledger-')}/ledger.db"
        self.ledger_activities = LedgerActivities(
            EscalatorSettings.defaults(ledger=LedgerSettings(url=SecretStr(url)))
        )
        self.ledger = self.ledger_activities.store
        self.sent: list[Notification] = []
        self.channel_sends: list[ChannelSend] = []  # to the policy's named channels
        self.assessments: list[AssessmentRequest] = []
        self.drafts: list[DraftRequest] = []
        # The real offline assessor by default: deterministic, and no network.
        self.assessor = assessor or offline_assessment

    @property
    def activities(self):
        @activity.defn(name="send_email")
        async def send_email(notification: Notification) -> DeliveryReceipt:
            self.sent.append(notification)
            return DeliveryReceipt(
                message_id=notification.message_id,
                channel="email",
                accepted=notification.recipients,
                detail="recorded",
            )

        @activity.defn(name="post_webhook")
        async def post_webhook(notification: Notification) -> DeliveryReceipt:
            self.sent.append(notification)
            return DeliveryReceipt(
                message_id=notification.message_id, channel="webhook", detail="recorded"
            )

        @activity.defn(name="assess_case")
        async def assess_case(request: AssessmentRequest) -> AssessmentResult:
            self.assessments.append(request)
            result = self.assessor(request)
            if isinstance(result, Exception):
                raise result
            return result

        @activity.defn(name="draft_for_audience")
        async def draft_for_audience(request: DraftRequest) -> Draft:
            self.drafts.append(request)
            return offline_draft(request)

        def channel(name: str, kind: str):
            @activity.defn(name=name)
            async def send(message: ChannelSend) -> DeliveryReceipt:
                self.channel_sends.append(message)
                return DeliveryReceipt(
                    message_id=message.message_id,
                    channel=kind,
                    accepted=(message.channel,),
                    detail=f"{message.channel}: recorded",
                )

            return send

        return [
            send_email,
            post_webhook,
            assess_case,
            draft_for_audience,
            self.ledger_activities.record_to_ledger,
            channel(POST_SLACK_MESSAGE, "slack"),
            channel(SEND_PAGERDUTY_EVENT, "pagerduty"),
            channel(POST_CHANNEL_WEBHOOK, "webhook"),
        ]

    def purposes(self, case_id: str | None = None) -> list[tuple[str, int]]:
        return [
            (n.purpose, n.tier.level)
            for n in self.sent
            if case_id is None or n.case.case_id == case_id
        ]


def seconds_policy(first_response: float = 3, resolution: float = 10) -> Policy:
    """Three tiers measured in seconds; the final tier has no SLA."""
    return Policy.model_validate(
        {
            "name": "seconds",
            "tiers": [
                {
                    "level": 1,
                    "name": "Front-Line Support",
                    "team": "support-generalists",
                    "notify": ["l1@example.com"],
                    "sla": {"first_response": first_response, "resolution_target": resolution},
                },
                {
                    "level": 2,
                    "name": "Specialist Support",
                    "team": "support-specialists",
                    "notify": ["l2@example.com"],
                    "sla": {"first_response": first_response, "resolution_target": resolution},
                },
                {
                    "level": 3,
                    "name": "Engineering",
                    "team": "engineering-oncall",
                    "notify": ["oncall@example.com"],
                },
            ],
        }
    )


HOUR = timedelta(hours=1)


async def eventually(predicate, *, within: float = 10.0, interval: float = 0.05):
    """Poll `predicate` (sync or async) until it returns something truthy."""
    import asyncio
    import inspect

    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)


class MailSink(SmtpSink):
    """The one SMTP sink (escalator.devstack.mail_catcher), keeping what it receives:
    each message parsed, with its envelope recipients in an `X-Envelope-To` header.

    It can be stopped and started again on the same port, to stage SMTP outages.
    """

    def __init__(self, port: int | None = None) -> None:
        super().__init__(port)
        self.messages: list = []  # email.message.EmailMessage, in arrival order

    async def receive(self, envelope) -> str:
        self.messages.append(self.parse(envelope))
        return "250 OK"

    @staticmethod
    def parse(envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        return message

    def to(self, address: str) -> list:
        return [m for m in self.messages if address in m["X-Envelope-To"]]

    def with_purpose(self, case_id: str, purpose: str) -> list:
        return [
            m
            for m in self.messages
            if m["X-Escalator-Case"] == case_id and m["X-Escalator-Purpose"] == purpose
        ]


class WorkerProcess:
    """The real `worker.py`, run as a subprocess the way an operator runs it."""

    def __init__(self, *, temporal_address: str, task_queue: str, smtp_port: int, **env) -> None:
        # A developer's own key must not make the worker encrypt what the tests'
        # plain clients read.
        inherited = {k: v for k, v in os.environ.items() if k != "ESCALATOR_ENCRYPTION_KEY"}
        self.env = {
            **inherited,
            "TEMPORAL_ADDRESS": temporal_address,
            "TEMPORAL_NAMESPACE": "default",
            "ESCALATOR_TASK_QUEUE": task_queue,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp_port),
            # Each worker its own ledger, so tests never read each other's cases.
            "ESCALATOR_LEDGER_URL": f"sqlite:///{tempfile.mkdtemp(prefix='ledger-')}/ledger.db",
            **env,
        }
        self.command = [sys.executable, "worker.py"]
        self.process = None

    def start(self) -> WorkerProcess:
        self.process = processes.spawn(
            self.command,
            env=self.env,
            new_session=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        return self

    def stop(self) -> str:
        """Stop gracefully (SIGTERM) and return what the worker wrote to stderr."""
        if self.process is None:
            return ""
        _, err = processes.stop(self.process, grace=15)
        self.process = None
        return err


class EscalatorUp:
    """`escalator up` as a subprocess, as a user types it: on free ports of its own
    and a data dir of its own, with the mail catcher filing mail under it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port, self.ui_port, self.mail_port = free_port(), free_port(), free_port()
        self.api_port = free_port()
        self.process: subprocess.Popen | None = None
        self.output = ""

    def up(self, *, within: float = 90) -> EscalatorUp:
        """Start it; return once it prints that it is ready."""
        command = [
            *ESCALATOR, "up", "--data-dir", str(self.data_dir), "--port", str(self.port),
            "--ui-port", str(self.ui_port), "--mail-port", str(self.mail_port),
            "--api-port", str(self.api_port),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("SMTP_HOST", None)
        self.process = processes.spawn(
            command,
            env=env,
            new_session=False,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready, lines = processes.read_until(self.process, "Escalator is ready.", within=within)
        self.output = "".join(lines)  # what this run printed
        if ready:
            return self
        self.down()
        raise AssertionError(f"escalator up did not become ready:\n{self.output}")

    def down(self, *, within: float = 45) -> int:
        """Ctrl-C (SIGINT), and wait for it to exit; its exit code."""
        if self.process is None:
            return 0
        rest, _ = processes.stop(self.process, grace=within, signum=signal.SIGINT)
        self.output += rest or ""
        code, self.process = self.process.returncode, None
        return code

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """One `escalator` command against this stack."""
        env = {**os.environ, "TEMPORAL_ADDRESS": f"127.0.0.1:{self.port}"}
        return subprocess.run(
            [*ESCALATOR, *args], capture_output=True, text=True, env=env, timeout=60
        )

    def mail(self) -> list[str]:
        """The caught mails' text, oldest first."""
        return [
            p.read_text(errors="replace") for p in sorted((self.data_dir / "mail").glob("*.eml"))
        ]


@dataclass
class Desk:
    env: WorkflowEnvironment
    escalator: EscalatorClient
    notifier: RecordingNotifier
    started: list[str] = field(default_factory=list)

    async def start(self, case_id: str, policy: Policy = DEFAULT_POLICY, **fields) -> None:
        case = {"case_id": case_id, "title": f"case {case_id}", "policy": policy, **fields}
        await self.start_case(CaseInput.model_validate(case))

    async def start_case(self, case: CaseInput) -> None:
        self.started.append(await self.escalator.start_case(case))

    async def close_open_cases(self) -> None:
        # A case left running after its worker stops holds tasks that no one polls,
        # and the time-skipping server then refuses to skip time for later tests.
        # Terminating mid-task leaks its time-skipping lock too, so cases are closed
        # the normal way: an admin resolves them and we wait for the outcome.
        # Likewise an activity cancelled by the resolve (an assessment still running)
        # leaks one, so first let every escalation's assessment land.
        closer = ResolveRequest(actor=actor("teardown", role="admin"), summary="test end")
        for workflow_id in self.started:
            handle = self.env.client.get_workflow_handle(workflow_id)
            with contextlib.suppress(RPCError):  # already closed
                await eventually(lambda h=handle: _assessments_landed(h))
                await handle.signal(EscalationWorkflow.resolve, closer)
            await handle.result()

    async def status(self, case_id: str) -> CaseStatus:
        return await self.escalator.status(case_id)

    async def after(self, duration: timedelta) -> None:
        await self.env.sleep(duration)


async def _assessments_landed(handle) -> bool:
    status = await handle.query(EscalationWorkflow.status)
    landed = sum(e.kind in {"assessment", "assessment_unavailable"} for e in status.timeline)
    return status.state == "resolved" or landed >= status.escalations


def case_workers(client, task_queue: str, activities, **options):
    """Run the product's two workers (cases and mail; model calls on `<queue>-ai`)
    with these activities, as `async with case_workers(...):`."""
    from escalator.runtime.worker import build_workers, running

    return running(build_workers(client, task_queue, activities, **options))


# -- the case engine without Temporal ------------------------------------------------


class EngineCase:
    """One case and a clock: what the workflow does, minus the durability. It keeps
    the ledger entries the engine records, as the workflow sends them."""

    def __init__(
        self,
        policy: Policy = DEFAULT_POLICY,
        severity: str = "P3",
        case_id: str = "c-1",
        start: datetime = ENGINE_T0,
        title: str = "Printer on fire",
        **fields,
    ) -> None:
        self.case = CaseInput(
            case_id=case_id, title=title, severity=severity, policy=policy, **fields
        )
        self.now = start
        self.state = engine.new_state(self.case, self.now)
        self.effects: list[engine.Effect] = []
        self.ledger: list[LedgerEvent] = []
        self._take(engine.open_case(self.state, self.case, self.now))

    def _take(self, step: engine.Step) -> str:
        self.state = step.state
        self.effects.extend(step.effects)
        self.ledger.extend(e.entry for e in step.effects if isinstance(e, engine.Recorded))
        if self.state.phase == "resolved" and self.state.reopen_until is None:
            self.state = engine.reopen_window_opened(self.state, self.case)
        return step.answer

    def after(self, delta: timedelta) -> None:
        until = self.now + delta
        self._take(engine.advance(self.state, self.case, self.now, until))
        self.now = until

    def do(self, action, request, **options) -> str:
        return self._take(action(self.state, self.case, request, self.now, **options))

    def refused(self, action, request) -> str:
        before = self.state
        with pytest.raises(engine.Refused) as refusal:
            action(self.state, self.case, request, self.now)
        assert self.state is before
        return refusal.value.reason

    # -- what happened

    def timeline(self, kind: str) -> list:
        return [e for e in self.state.timeline if e.kind == kind]

    def hours(self, kind: str) -> list[float]:
        return [round((e.at - ENGINE_T0).total_seconds() / 3600, 3) for e in self.timeline(kind)]

    def sent(self, activity: str = SEND_EMAIL) -> list:
        return [
            e.notification
            for e in self.effects
            if isinstance(e, engine.Deliver) and e.activity == activity
        ]

    def purposes(self) -> list[tuple[str, int]]:
        return [(n.purpose, n.tier.level) for n in self.sent()]

    @property
    def deadline(self):
        return case_view.next_deadline(self.state, self.case)

    def history(self) -> CaseHistory:
        """The case as the ledger holds it once resolved."""
        return CaseHistory(
            facts=case_view.ledger_case(self.state, self.case), events=tuple(self.ledger)
        )


# -- a real Postgres server ------------------------------------------------------------


def postgres_bin() -> Path | None:
    """Debian's postgresql binaries (`make test` installs the package), if there."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


class PostgresServer:
    """A throwaway Postgres cluster on loopback with an `escalator_ledger` database.

    Postgres refuses to run as root, so as root the server runs as the `postgres`
    user that the Debian package creates. `stop()` and `start()` make an outage."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.workdir = Path(tempfile.mkdtemp(prefix="ledger-pg-"))
        self.data, self.port = self.workdir / "data", free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "escalator_ledger")  # fmt: skip

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/escalator_ledger"

    def _run(self, tool: str, *args: str) -> None:
        command = [*self.as_user, str(self.bin_dir / tool), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.workdir / "log"), "-w", "start")  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
