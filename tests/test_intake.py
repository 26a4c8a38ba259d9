"""Alert intake on the real dev server: PagerDuty Events v2 events and a real
Alertmanager's webhooks open, acknowledge and resolve cases.

Requests go to the FastAPI app (httpx's ASGI transport, or uvicorn on loopback for
Alertmanager to reach), which talks to the dev server and a real worker; tokens are
real, in a SQLite token store. The Alertmanager is Debian's prometheus-alertmanager
(`make alertmanager`), started here on loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
from support import RecordingNotifier, case_workers, eventually, free_port, seconds_policy

from escalator.adapters.settings import TemporalSettings
from escalator.adapters.token_store import TokenStore
from escalator.adapters.visibility import case_query
from escalator.api.app import create_app
from escalator.domain import alerts
from escalator.domain.models import workflow_id_for
from escalator.domain.tokens import TokenGrant
from starter import EscalatorClient

pytestmark = pytest.mark.integration
POLICY = seconds_policy(first_response=600, resolution=1200)
REOPENABLE = POLICY.model_copy(update={"reopen_window": timedelta(hours=1)})


class Intake:
    def __init__(self, http, tokens: TokenStore, cases: EscalatorClient, account: str) -> None:
        self.http, self.tokens, self.cases, self.account = http, tokens, cases, account

    def integration(self, name: str = "pagerduty", policy: str = "default") -> tuple[str, str]:
        grant = TokenGrant(kind="integration", integration=name, account=self.account,
                           policy=policy)  # fmt: skip
        text, record = self.tokens.create(grant)
        return text, record.token_id

    def person(self) -> str:
        grant = TokenGrant(kind="person", user="alice", role="engineer", account=self.account)
        return self.tokens.create(grant)[0]

    async def event(self, token: str, action: str = "trigger", **fields) -> httpx.Response:
        body = {"routing_key": token, "event_action": action, **fields}
        if action == "trigger":
            body.setdefault("payload", {"summary": "Disk full on db-1", "source": "db-1",
                                        "severity": "critical"})  # fmt: skip
        return await self.http.post("/v2/enqueue", json=body)

    def pd_case(self, dedup_key: str, name: str = "pagerduty") -> str:
        return alerts.pagerduty_case_id(self.account, name, dedup_key)


@pytest_asyncio.fixture
async def intake(dev_env, tmp_path):
    queue = f"intake-{uuid.uuid4().hex[:8]}"
    tokens = TokenStore(f"sqlite:///{tmp_path}/tokens.db")
    cases = EscalatorClient(dev_env.client, queue)

    async def connect() -> EscalatorClient:
        return cases

    app = create_app(connect, tokens, {"default": POLICY, "reopenable": REOPENABLE})
    async with (
        case_workers(dev_env.client, queue, RecordingNotifier().activities),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http,
    ):
        intake = Intake(http, tokens, cases, f"acct-{uuid.uuid4().hex[:6]}")
        intake.app = app
        yield intake
    tokens.close()


async def _updates_in_history(cases: EscalatorClient, case_id: str) -> int:
    history = await cases.client.get_workflow_handle(workflow_id_for(case_id)).fetch_history()
    return sum(
        1
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    )


# -- PagerDuty Events v2 ----------------------------------------------------------------


async def test_two_triggers_with_one_dedup_key_are_one_case_then_acknowledge_and_resolve(intake):
    token, _ = intake.integration()
    first = await intake.event(token, dedup_key="disk-db-1")
    assert first.status_code == 202, first.text
    assert first.json() == {"status": "success", "message": "Event processed",
                            "dedup_key": "disk-db-1"}  # fmt: skip
    again = await intake.event(token, dedup_key="disk-db-1")
    assert again.status_code == 202 and again.json() == first.json()
    case_id = intake.pd_case("disk-db-1")
    status = await intake.cases.status(case_id)
    assert status.account == intake.account and status.severity == "P1"
    assert status.title == "Disk full on db-1" and status.policy_name == POLICY.name
    assert status.notes_total == 1, status.notes  # the identical repeat added nothing
    assert status.notes[0].text.startswith("[pagerduty] trigger: Disk full on db-1")
    assert await intake.cases.run_status(alerts.case_id_generation(case_id, 2)) is None

    changed = {"summary": "Disk full on db-1 (99%)", "source": "db-1", "severity": "error"}
    assert (await intake.event(token, dedup_key="disk-db-1", payload=changed)).status_code == 202
    assert (await intake.cases.status(case_id)).notes_total == 2

    acked = await intake.event(token, "acknowledge", dedup_key="disk-db-1")
    assert acked.status_code == 202, acked.text
    status = await intake.cases.status(case_id)
    assert status.state == "claimed" and status.assignee == alerts.INTEGRATION_USER
    resolved = await intake.event(token, "resolve", dedup_key="disk-db-1")
    assert resolved.status_code == 202 and resolved.json()["dedup_key"] == "disk-db-1"
    outcome = await asyncio.wait_for(intake.cases.outcome(case_id), 30)
    assert outcome.resolved_by == "system" and outcome.summary == "resolved at source"

    # The case has closed for good: the same key's next trigger opens its next case.
    assert (await intake.event(token, dedup_key="disk-db-1")).status_code == 202
    second = await intake.cases.status(alerts.case_id_generation(case_id, 2))
    assert second.state == "open" and second.notes_total == 1
    # ...and acknowledge and resolve go to that one.
    assert (await intake.event(token, "resolve", dedup_key="disk-db-1")).status_code == 202
    outcome = await asyncio.wait_for(
        intake.cases.outcome(alerts.case_id_generation(case_id, 2)), 30
    )
    assert outcome.summary == "resolved at source"


async def test_a_trigger_for_a_resolved_case_reopens_it_within_the_reopen_window(intake):
    token, _ = intake.integration(policy="reopenable")
    assert (await intake.event(token, dedup_key="flap")).status_code == 202
    case_id = intake.pd_case("flap")
    assert (await intake.event(token, "resolve", dedup_key="flap")).status_code == 202
    assert (await intake.cases.status(case_id)).state == "resolved"
    # The same alert again: the case is reopened, and this stay records it anew.
    assert (await intake.event(token, dedup_key="flap")).status_code == 202
    status = await intake.cases.status(case_id)
    assert status.state == "open" and status.reopened == 1 and status.notes_total == 2
    assert (await intake.event(token, dedup_key="flap")).status_code == 202
    assert (await intake.cases.status(case_id)).notes_total == 2
    assert await intake.cases.run_status(alerts.case_id_generation(case_id, 2)) is None

    unknown, _ = intake.integration(policy="gone")
    refused = await intake.event(unknown, dedup_key="flap-2")
    assert refused.status_code == 400 and "'gone' is not loaded" in refused.json()["errors"][0]


async def test_a_storm_of_identical_triggers_lands_on_one_case_as_one_note(intake):
    token, _ = intake.integration()
    answers = await asyncio.gather(*(intake.event(token, dedup_key="storm") for _ in range(40)))
    assert {a.status_code for a in answers} == {202}, {a.text for a in answers}
    case_id = intake.pd_case("storm")
    assert (await intake.cases.status(case_id)).notes_total == 1
    assert await _updates_in_history(intake.cases, case_id) == 1  # 40 requests, one update
    assert await intake.cases.run_status(alerts.case_id_generation(case_id, 2)) is None


async def test_a_trigger_without_dedup_key_gets_one_and_the_others_need_it(intake):
    token, _ = intake.integration()
    made = await intake.event(token)
    assert made.status_code == 202
    key = made.json()["dedup_key"]
    assert len(key) == 32
    assert (await intake.cases.status(intake.pd_case(key))).state == "open"
    for action in ("acknowledge", "resolve"):
        refused = await intake.event(token, action)
        assert refused.status_code == 400
        assert refused.json()["status"] == "invalid event"
        assert refused.json()["errors"][0].startswith("dedup_key: is required"), refused.json()
    # A resolve for a key with no case is accepted and changes nothing, as PagerDuty does.
    assert (await intake.event(token, "resolve", dedup_key="never-seen")).status_code == 202
    assert await intake.cases.run_status(intake.pd_case("never-seen")) is None


async def test_invalid_events_answer_400_in_pagerdutys_shape_naming_the_field(intake):
    token, _ = intake.integration()
    payload = {"summary": "x", "source": "y", "severity": "critical"}
    cases = [
        ({"event_action": "trigger", "payload": payload}, "routing_key"),
        ({"routing_key": token, "event_action": "page", "payload": payload}, "event_action"),
        ({"routing_key": token, "event_action": "trigger"}, "payload"),
        ({"routing_key": token, "event_action": "trigger",
          "payload": {**payload, "severity": "sev1"}}, "payload.severity"),
        ({"routing_key": token, "event_action": "trigger",
          "payload": {"source": "y", "severity": "info"}}, "payload.summary"),
        ({"routing_key": token, "event_action": "trigger", "dedup_key": "k" * 256,
          "payload": payload}, "dedup_key"),
    ]  # fmt: skip
    for body, field in cases:
        answer = await intake.http.post("/v2/enqueue", json=body)
        assert answer.status_code == 400, (body, answer.text)
        reply = answer.json()
        assert reply["status"] == "invalid event" and reply["message"] == "Event object is invalid"
        assert reply["errors"][0].startswith(f"{field}: "), reply
        assert "\n" not in " ".join(reply["errors"])
    garbled = await intake.http.post("/v2/enqueue", content=b"{nope")
    assert garbled.status_code == 400 and garbled.json()["errors"] == [
        "body: not JSON; send a JSON object"
    ]
    # Nothing was started by any of them.
    assert await intake.cases.run_status(intake.pd_case("k" * 256)) is None


async def test_two_live_tokens_per_integration_for_rotation_and_only_integration_tokens(intake):
    old, old_id = intake.integration()
    new, _ = intake.integration()
    for token in (old, new):
        answer = await intake.event(token, dedup_key="rotate")
        assert answer.status_code == 202, answer.text
    # Both are the one integration: one case, one note (the second was a repeat).
    assert (await intake.cases.status(intake.pd_case("rotate"))).notes_total == 1
    assert intake.tokens.revoke(old_id)
    revoked = await intake.event(old, dedup_key="rotate")
    assert revoked.status_code == 400
    assert revoked.json()["errors"][0].startswith("routing_key: not an active integration")
    assert (await intake.event(new, "resolve", dedup_key="rotate")).status_code == 202

    person = intake.person()
    assert (await intake.event(person, dedup_key="p")).status_code == 400
    assert await intake.cases.run_status(intake.pd_case("p")) is None
    # An integration token is refused on the case routes, a person's on the intake.
    case_route = await intake.http.get("/v1/cases", headers={"Authorization": f"Bearer {new}"})
    assert case_route.status_code == 401
    am = "/v1/intake/alertmanager"
    assert (await intake.http.post(am, json={})).status_code == 401
    by_person = await intake.http.post(am, json={}, headers={"Authorization": f"Bearer {person}"})
    assert by_person.status_code == 403 and "integration token" in by_person.json()["error"]


# -- Alertmanager -------------------------------------------------------------------------


def _notification(status: str = "firing", **changes) -> dict:
    alert = {"status": status, "labels": {"alertname": "DiskFull", "severity": "warning",
             "instance": "db-1"}, "annotations": {"summary": "Disk full on db-1"},
             "startsAt": "2026-12-01T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
             "generatorURL": "http://prometheus/graph", "fingerprint": "a1b2c3d4e5f60718"}  # fmt: skip
    body = {"version": "4", "groupKey": '{}:{alertname="DiskFull"}', "truncatedAlerts": 0,
            "status": status, "receiver": "escalator", "groupLabels": {"alertname": "DiskFull"},
            "commonLabels": alert["labels"], "commonAnnotations": alert["annotations"],
            "externalURL": "http://alertmanager", "alerts": [alert]}  # fmt: skip
    body.update(changes)
    return body


async def test_alertmanager_payloads_are_checked_naming_the_field(intake):
    token, _ = intake.integration("alertmanager")
    who = {"Authorization": f"Bearer {token}"}
    url = "/v1/intake/alertmanager"
    bad_alert = dict(_notification()["alerts"][0], fingerprint=None)
    cases = [
        (_notification(version="3"), "version"),
        (_notification(groupKey=""), "groupKey"),
        (_notification(status="pending"), "status"),
        (_notification(alerts=[bad_alert]), "alerts[0].fingerprint"),
        (_notification(commonLabels={"severity": 3}), "commonLabels.severity"),
        ([], "body"),
    ]
    for body, field in cases:
        answer = await intake.http.post(url, json=body, headers=who)
        assert answer.status_code == 422, (field, answer.text)
        assert answer.json()["error"].startswith(f"{field}: "), answer.json()
    assert (await intake.http.post(url, content=b"<xml/>", headers=who)).status_code == 400

    # A valid one opens the group's case: title, severity and each alert as a note.
    opened = await intake.http.post(url, json=_notification(), headers=who)
    assert opened.status_code == 200, opened.text
    case_id = opened.json()["case_id"]
    assert case_id == alerts.alertmanager_case_id(intake.account, '{}:{alertname="DiskFull"}')
    status = await intake.cases.status(case_id)
    assert status.title == "Disk full on db-1" and status.severity == "P3"
    assert "fingerprint a1b2c3d4e5f60718" in status.notes[0].text
    assert "  instance: db-1" in status.notes[0].text


async def test_alert_text_is_bounded_and_plain(intake):
    token, _ = intake.integration("alertmanager")
    long = "x" * 5000
    alert = dict(_notification()["alerts"][0])
    alert["labels"] = {"alertname": "Evil\x1b[2J\nforged line", "blob": long}
    body = _notification(groupKey="evil", alerts=[alert],
                         commonAnnotations={"summary": "S" * 500 + "\x07"})  # fmt: skip
    answer = await intake.http.post(
        "/v1/intake/alertmanager", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200, answer.text
    status = await intake.cases.status(answer.json()["case_id"])
    assert len(status.title) == 200 and status.title.endswith("…")
    text = status.notes[0].text
    assert "\x1b" not in text and "alertname: Evil\\x1b[2J forged line\n" in text
    assert len(text) < 2000 and "x" * 300 not in text


async def test_an_unreachable_temporal_is_a_503_with_retry_after(tmp_path):
    tokens = TokenStore(f"sqlite:///{tmp_path}/tokens.db")
    grant = TokenGrant(kind="integration", integration="alertmanager", account="x")
    token, _ = tokens.create(grant)

    async def connect() -> EscalatorClient:
        return await EscalatorClient.connect(TemporalSettings(address=f"127.0.0.1:{free_port()}"))

    app = create_app(connect, tokens, {"default": POLICY})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as http:
        am = await http.post("/v1/intake/alertmanager", json=_notification(),
                             headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        pd = await http.post("/v2/enqueue", json={"routing_key": token, "event_action": "trigger",
                             "payload": {"summary": "s", "source": "s", "severity": "info"}})  # fmt: skip
    for answer in (am, pd):
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "5", answer.text
    tokens.close()


# -- a real Alertmanager ------------------------------------------------------------------


def _alertmanager_binary() -> str | None:
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


@pytest_asyncio.fixture
async def served(intake):
    """The intake's app on uvicorn, on a loopback port Alertmanager can reach."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(intake.app, host="127.0.0.1", port=port, log_level="warning",
                            access_log=False, lifespan="off")  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, within=10)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, 10)


@pytest.fixture
def alertmanager_factory(tmp_path):
    started: list[subprocess.Popen] = []

    def start(webhook_url: str, token: str) -> str:
        binary = _alertmanager_binary()
        port = free_port()
        config = tmp_path / "alertmanager.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"resolve_timeout": "5s"},
            "route": {"receiver": "escalator", "group_by": ["alertname"], "group_wait": "1s",
                      "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "escalator", "webhook_configs": [{
                "url": webhook_url, "send_resolved": True,
                "http_config": {"authorization": {"credentials": token}}}]}],
        }))  # fmt: skip
        os.chmod(config, 0o600)
        log = open(tmp_path / "alertmanager.log", "wb")
        process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.path={tmp_path / 'am-data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
             "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        started.append(process)
        return f"http://127.0.0.1:{port}"

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.skipif(
    _alertmanager_binary() is None,
    reason="Debian's prometheus-alertmanager is not installed (make alertmanager installs it)",
)
async def test_a_real_alertmanager_opens_the_case_once_and_resolves_it(
    intake, served, alertmanager_factory, tmp_path
):
    token, _ = intake.integration("alertmanager")
    am = alertmanager_factory(f"{served}/v1/intake/alertmanager", token)
    now = datetime.now(UTC)

    def alert(instance: str, ends: datetime) -> dict:
        return {"labels": {"alertname": "DiskFull", "severity": "critical", "instance": instance},
                "annotations": {"summary": "Disk full"}, "startsAt": now.isoformat(),
                "endsAt": ends.isoformat(), "generatorURL": "http://prometheus/graph"}  # fmt: skip

    async with httpx.AsyncClient(base_url=am, timeout=10) as http:
        await eventually(lambda: _ready(http), within=20, interval=0.2)
        later = now + timedelta(hours=1)
        posted = await http.post(
            "/api/v2/alerts", json=[alert("db-1", later), alert("db-2", later)]
        )
        assert posted.status_code == 200, posted.text
        query = case_query(account=intake.account)

        async def listed() -> list[str]:
            rows = [e.id async for e in intake.cases.client.list_workflows(query)]
            return rows

        rows = await eventually(listed, within=30, interval=0.25)
        case_id = rows[0].removeprefix("case-")
        assert case_id.startswith("am-")

        async def both_noted():
            status = await intake.cases.status(case_id)
            return status if status.notes_total >= 2 else None

        status = await eventually(both_noted, within=30, interval=0.25)
        assert status.state == "open" and status.severity == "P1" and status.title == "Disk full"
        assert {"  instance: db-1", "  instance: db-2"} <= {
            line for note in status.notes for line in note.text.splitlines()
        }
        # Let Alertmanager repeat the group for a few intervals: still one case.
        await asyncio.sleep(3)

        past = datetime.now(UTC) - timedelta(seconds=1)
        resolved = await http.post(
            "/api/v2/alerts", json=[alert("db-1", past), alert("db-2", past)]
        )
        assert resolved.status_code == 200, resolved.text
        outcome = await asyncio.wait_for(intake.cases.outcome(case_id), 60)
    assert outcome.resolved_by == "system" and outcome.summary == "resolved at source"
    assert await listed() == [f"case-{case_id}"]  # opened once
    assert await intake.cases.run_status(alerts.case_id_generation(case_id, 2)) is None
    log = (tmp_path / "alertmanager.log").read_bytes()
    assert token.encode() not in log


async def _ready(http: httpx.AsyncClient) -> bool:
    try:
        return (await http.get("/-/ready")).status_code == 200
    except httpx.TransportError:
        return False
