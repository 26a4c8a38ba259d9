"""The worker's Prometheus metrics, end to end: the real worker.py process with
ESCALATOR_METRICS_ADDRESS set, on the real dev server, with real SMTP on loopback.

The test drives cases with known outcomes, scrapes /metrics, checks the text with
`promtool check metrics` (Debian's prometheus package; `make promtool` installs it),
and checks that the business counters say exactly what the test did, that no label
holds a case id, a title or a user, and that a new worker replaying the same cases
counts nothing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections import Counter

import httpx
import pytest
from support import MailSink, WorkerProcess, actor, eventually, free_port, unique_queue

from escalator.domain.policy import Policy
from starter import EscalatorClient

NOTE = {
    "reason": "needs backend access",
    "steps_taken": ["re-uploaded cert"],
    "customer_impact": "one team cannot sign in",
}
# L1 breaches its first response in 2 s; L2 gives the test a minute to act.
POLICY = Policy.model_validate(
    {
        "name": "metrics",
        "tiers": [
            {
                "level": 1,
                "name": "Front-Line Support",
                "team": "support-generalists",
                "notify": ["l1@example.com"],
                "sla": {"first_response": 2, "resolution_target": 120},
            },
            {
                "level": 2,
                "name": "Specialist Support",
                "team": "support-specialists",
                "notify": ["l2@example.com"],
                "sla": {"first_response": 120, "resolution_target": 240},
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

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """The exposition format's samples: (name, labels, value)."""
    found = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not an exposition-format sample: {line!r}"
        name, labels, value = match.groups()
        found.append((name, dict(_LABEL.findall(labels or "")), float(value)))
    return found


def counts(text: str, name: str, *keys: str, queue: str) -> Counter:
    """`name`'s samples on `queue`, summed by the labels `keys`."""
    totals: Counter = Counter()
    for sample, labels, value in samples(text):
        if sample == name and labels.get("task_queue") == queue:
            totals[tuple(labels[k] for k in keys)] += value
    return +totals  # zeroes dropped


def metric_names(text: str) -> set[str]:
    return {name for name, _, _ in samples(text)}


async def scrape(url: str) -> str:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(url)
    response.raise_for_status()
    return response.text


async def serving(url: str) -> str:
    async def answered():
        try:
            return await scrape(url)
        except httpx.HTTPError:
            return None

    return await eventually(answered, within=30, interval=0.2)


def promtool_problems(text: str) -> str:
    """What `promtool check metrics` says is wrong with `text` ('' if nothing)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (make promtool installs Debian's prometheus)")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    return "" if result.returncode == 0 else (result.stdout + result.stderr).strip() or "failed"


@pytest.mark.integration
async def test_metrics_count_what_happened_and_replay_counts_nothing(dev_env):
    tag = uuid.uuid4().hex[:10]  # in every case id, title and user name, never in a label
    queue = unique_queue("metrics")
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    sink = MailSink(free_port()).start()
    escalator = EscalatorClient(dev_env.client, queue)
    alice, bob = actor(f"alice-{tag}"), actor(f"bob-{tag}")

    def start_worker() -> WorkerProcess:
        return WorkerProcess(
            temporal_address=dev_env.client.service_client.config.target_host,
            task_queue=queue,
            smtp_port=sink.port,
            ESCALATOR_METRICS_ADDRESS=str(port),  # a bare port: 127.0.0.1
        ).start()

    async def start(name: str) -> str:
        case_id = f"metrics-{name}-{tag}"
        await escalator.start_case(
            {"case_id": case_id, "title": f"Printer {tag} on fire", "policy": POLICY}
        )
        return case_id

    worker = start_worker()
    try:
        await serving(url)
        # A: nobody answers within L1's 2 s: an SLA escalation to L2, claimed there.
        a = await start("a")
        await eventually(lambda: _at_tier(escalator, a, 2), within=20, interval=0.2)
        await escalator.claim(a, bob)
        await escalator.resolve(a, bob, f"fixed for {tag}")
        # B: claimed at L1, escalated by hand, claimed at L2.
        b = await start("b")
        await escalator.claim(b, alice)
        await escalator.escalate(b, alice, NOTE)
        await escalator.claim(b, bob)
        await escalator.resolve(b, bob)

        expected = {
            ("escalator_escalations_total", ("from_tier", "to_tier", "reason")): {
                ("L1", "L2", "sla"): 1,
                ("L1", "L2", "manual"): 1,
            },
            ("escalator_sla_breaches_total", ("tier", "clock")): {("L1", "first_response"): 1},
            ("escalator_claims_total", ("tier",)): {("L1",): 1, ("L2",): 2},
            ("escalator_time_to_claim_seconds_count", ("tier",)): {("L1",): 1, ("L2",): 2},
        }
        text = await scrape(url)
        for (name, keys), want in expected.items():
            assert counts(text, name, *keys, queue=queue) == want, (name, text)
        # A's claim came at least 0 s after it reached L2, B's L1 claim at once: the
        # sum is the SLA time those stays had used, well under L2's first minute.
        waited = counts(text, "escalator_time_to_claim_seconds_sum", queue=queue)[()]
        assert 0 <= waited < 60
        buckets = counts(text, "escalator_time_to_claim_seconds_bucket", "le", queue=queue)
        assert buckets[("+Inf",)] == 3 and ("3600",) in buckets, buckets

        # Every mail the sink received is one delivery counted as sent, none failed.
        async def deliveries_match():
            text = await scrape(url)
            sent = counts(text, "escalator_deliveries_total", "channel", "outcome", queue=queue)
            return sent == {("email", "sent"): len(sink.messages)} and len(sink.messages) >= 4

        await eventually(deliveries_match, within=30, interval=0.3)

        text = await scrape(url)
        assert {"temporal_workflow_completed_total", "temporal_request_total"} & metric_names(
            text
        ), "the SDK's own metrics are served too"
        problems = promtool_problems(text)
        assert not problems, f"promtool check metrics:\n{problems}\n\n{text}"
        for name, labels, _ in samples(text):
            for key, value in labels.items():
                for private in (tag, "Printer", "alice", "bob"):
                    assert private not in value, (name, key, value)
    finally:
        errors = worker.stop()
    assert "Traceback" not in errors, errors

    # A new worker on the same port: answering a query for A and B makes it replay
    # their whole histories (its cache is empty). That must count nothing.
    worker = start_worker()
    try:
        await serving(url)
        for case_id in (a, b):
            status = await escalator.status(case_id)
            assert status.state == "resolved" and status.escalations == 1
        text = await scrape(url)
        for name in (
            "escalator_escalations_total",
            "escalator_sla_breaches_total",
            "escalator_claims_total",
            "escalator_time_to_claim_seconds_count",
        ):
            assert counts(text, name, queue=queue) == {}, (name, text)
        # ... while what this worker does live is counted: the counters can move.
        c = await start("c")
        await escalator.claim(c, alice)
        await escalator.resolve(c, alice)
        text = await scrape(url)
        assert counts(text, "escalator_claims_total", "tier", queue=queue) == {("L1",): 1}
        assert counts(text, "escalator_escalations_total", queue=queue) == {}
        assert not promtool_problems(text)
    finally:
        errors = worker.stop()
        sink.stop()
    assert "Traceback" not in errors, errors


async def _at_tier(escalator: EscalatorClient, case_id: str, level: int) -> bool:
    return (await escalator.status(case_id)).tier_level == level


@pytest.mark.integration
def test_a_busy_metrics_port_fails_the_worker_in_one_line():
    """A worker whose metrics port is taken says so and exits 2, without a traceback."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        worker = WorkerProcess(
            temporal_address="127.0.0.1:1",  # never reached: the runtime comes first
            task_queue="unused",
            smtp_port=1,
            ESCALATOR_METRICS_ADDRESS=f"127.0.0.1:{port}",
        ).start()
        assert worker.process is not None
        _, err = worker.process.communicate(timeout=60)
        code, worker.process = worker.process.returncode, None
    assert code == 2, err
    assert f"ESCALATOR_METRICS_ADDRESS=127.0.0.1:{port}: cannot serve metrics" in err, err
    assert "Traceback" not in err, err


@pytest.mark.parametrize(("value", "line"), [("9464", "http://127.0.0.1:9464/metrics"), ("", None)])
def test_escalator_up_prints_the_metrics_address_when_on(value, line, monkeypatch, tmp_path):
    from escalator.devstack.stack import Stack, StackOptions

    monkeypatch.setenv("ESCALATOR_METRICS_ADDRESS", value)
    printed: list[str] = []
    Stack(StackOptions(data_dir=tmp_path, mail=False), announce=printed.append)._banner()
    [shown] = [row for row in printed[0].splitlines() if "Metrics" in row] or [None]
    assert shown == (f"  Metrics    {line}" if line else None)


@pytest.mark.loopback
async def test_delivery_outcomes_are_counted_by_channel_and_outcome():
    """The real activities on a real Prometheus runtime: a refused connection is a
    transient failure, an unusable URL or no recipients a permanent one."""
    from datetime import UTC, datetime

    from temporalio.exceptions import ApplicationError
    from temporalio.testing import ActivityEnvironment

    from activities.notifications import post_webhook, send_email
    from escalator.domain.models import CaseBrief, Notification, TierRef
    from escalator.runtime.worker import metrics_runtime

    port = free_port()
    runtime = metrics_runtime(f"127.0.0.1:{port}")
    env = ActivityEnvironment()
    env.metric_meter = runtime.metric_meter
    tag = uuid.uuid4().hex[:10]

    def notice(**fields) -> Notification:
        fields = {"recipients": (f"{tag}@example.com",), **fields}
        return Notification(
            message_id=f"<{tag}.1.tier_entry@escalator>",
            purpose="tier_entry",
            case=CaseBrief(
                case_id=tag,
                title=f"title {tag}",
                severity="P2",
                account="acme",
                description_excerpt="",
                customer_name=None,
            ),
            tier=TierRef(level=1, name="Service Desk", team="helpdesk"),
            occurred_at=datetime(2026, 5, 1, tzinfo=UTC),
            **fields,
        )

    closed = f"http://127.0.0.1:{free_port()}/hook/{tag}"
    for activity_fn, notification in [
        (post_webhook, notice(webhook=closed)),  # transient
        (post_webhook, notice(webhook=closed)),  # transient
        (post_webhook, notice(webhook=f"ftp://example.com/{tag}")),  # permanent
        (send_email, notice(recipients=())),  # permanent
    ]:
        with pytest.raises(ApplicationError):
            await env.run(activity_fn, notification)

    text = await serving(f"http://127.0.0.1:{port}/metrics")
    outcomes: Counter = Counter()
    for name, labels, value in samples(text):
        if name == "escalator_deliveries_total":
            outcomes[labels["channel"], labels["outcome"]] += value
    assert outcomes == {
        ("webhook", "failed_transient"): 2,
        ("webhook", "failed_permanent"): 1,
        ("email", "failed_permanent"): 1,
    }, text
    assert tag not in text
    assert not promtool_problems(text)
