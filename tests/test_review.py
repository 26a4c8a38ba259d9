"""The monthly review: which month a run reviews, what it mails, and the schedule.

- unit: the month comes from the scheduled time, in the schedule's time zone (not
  UTC, not the wall clock); the backfill window; the cron and flag checks;
- loopback: the activity against a real SMTP sink (aiosmtpd), an empty ledger;
- integration, on the Temporal dev server (the time-skipping server has no reliable
  Schedules): the real CLI creates the schedule with `--backfill 2`, the real worker
  code runs the backfilled reviews, and one mail per month arrives with the month's
  cases; creating it again updates it; `show` and `delete` work.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr, ValidationError
from support import EngineCase, MailSink, actor, case_workers, eventually, unique_queue
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.review import ReviewActivities, summary_text
from escalator.adapters.ledger_store import LedgerStore
from escalator.adapters.settings import EscalatorSettings, LedgerSettings, SmtpSettings
from escalator.cli.main import run as cli_run
from escalator.domain import case as engine
from escalator.domain.ledger import LedgerBatch
from escalator.domain.models import ClaimRequest, EscalateRequest, ResolveRequest
from escalator.domain.review import (
    ReviewInput,
    ReviewRequest,
    ReviewResult,
    cron_problem,
    months_back,
    months_before,
    previous_month,
    review_message_id,
    review_subject,
    time_zone_problem,
)
from workflows.review import scheduled_time

BERLIN = ZoneInfo("Europe/Berlin")
ROOT = Path(__file__).resolve().parent.parent
ESCALATOR = [sys.executable, "-m", "escalator.cli"]


# -- which month: unit -----------------------------------------------------------------


def test_a_run_on_the_1st_reviews_the_month_before_in_its_time_zone():
    month = previous_month(datetime(2026, 12, 1, 9, 0, tzinfo=BERLIN), "Europe/Berlin")
    assert (month.key, month.label) == ("2026-11", "November 2026")
    # Berlin's midnights, as UTC instants (CET is UTC+1 in both).
    assert month.start == datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    assert month.end == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)


def test_the_month_is_berlins_even_when_utc_is_still_in_the_month_before():
    # 23:30 UTC on 30 November is 00:30 on 1 December in Berlin.
    scheduled = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    assert previous_month(scheduled, "Europe/Berlin").key == "2026-11"
    assert previous_month(scheduled, "UTC").key == "2026-10"
    # And the other way round: 23:30 on 31 October in Berlin is still October's.
    assert previous_month(datetime(2026, 10, 31, 22, 30, tzinfo=UTC), "Europe/Berlin").key == (
        "2026-09"
    )


def test_january_reviews_the_december_before():
    month = previous_month(datetime(2027, 1, 1, 9, 0, tzinfo=BERLIN), "Europe/Berlin")
    assert (month.key, month.label) == ("2026-12", "December 2026")
    assert month.start == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    assert month.end == datetime(2026, 12, 31, 23, 0, tzinfo=UTC)


def test_a_month_across_a_dst_change_ends_at_local_midnight():
    # October 2026: CEST (UTC+2) at its start, CET (UTC+1) at its end.
    month = previous_month(datetime(2026, 11, 1, 9, 0, tzinfo=BERLIN), "Europe/Berlin")
    assert month.start == datetime(2026, 9, 30, 22, 0, tzinfo=UTC)
    assert month.end == datetime(2026, 10, 31, 23, 0, tzinfo=UTC)


def test_a_naive_time_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        previous_month(datetime(2026, 12, 1, 9, 0), "Europe/Berlin")


def test_the_scheduled_time_wins_over_the_clock():
    now = datetime(2027, 3, 5, 12, 0, tzinfo=UTC)  # a backfilled run, started late
    scheduled = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    assert scheduled_time(now, scheduled) == scheduled
    assert scheduled_time(now, None) == now  # started by hand: its own start


def test_the_backfill_window_holds_one_run_per_month_of_a_monthly_cron():
    now = datetime(2026, 12, 3, 10, 30, tzinfo=UTC)
    start, end = months_back(now, "Europe/Berlin", 2)
    assert start == datetime(2026, 10, 31, 23, 0, tzinfo=UTC)  # 1 November 00:00 in Berlin
    assert end == now
    assert [m.label for m in months_before(now, "Europe/Berlin", 3)] == [
        "September 2026",
        "October 2026",
        "November 2026",
    ]
    # Across a new year, and in a zone already in the next month.
    jan = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)  # 00:30 on 1 January in Berlin
    assert [m.key for m in months_before(jan, "Europe/Berlin", 2)] == ["2026-11", "2026-12"]
    assert [m.key for m in months_before(jan, "UTC", 2)] == ["2026-10", "2026-11"]


def test_the_message_id_is_stable_per_run_and_month_and_fits_one_header_line():
    month = previous_month(datetime(2026, 12, 1, 9, tzinfo=BERLIN), "Europe/Berlin")
    run, run_id = "monthly-review-2026-12-01T08:00:00Z", "0b9e6c1e-run-1"
    first = review_message_id(run, run_id, month)
    assert first == review_message_id(run, run_id, month)  # every retry of the run
    assert first.startswith("<review.2026-11.") and first.endswith("@escalator>")
    # A backfill that regenerates the month is a new run: a new message.
    assert review_message_id(run, "0b9e6c1e-run-2", month) != first
    other = previous_month(datetime(2026, 11, 1, 9, tzinfo=BERLIN), "Europe/Berlin")
    assert review_message_id(run, run_id, other) != first
    # Whatever the workflow id holds, one short header line (SMTP folds at 78 columns).
    odd = review_message_id("x\r\nBcc: a@b" + "y" * 200, run_id, month)
    assert len("Message-ID: " + odd) <= 78 and odd.isprintable() and " " not in odd


def test_subject():
    month = previous_month(datetime(2026, 12, 1, 9, tzinfo=BERLIN), "Europe/Berlin")
    assert review_subject(month, 42) == "Escalation review: November 2026 (42 cases)"
    assert review_subject(month, 1) == "Escalation review: November 2026 (1 case)"


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("0 9 1 * *", None),
        ("@monthly", None),
        ("*/15 9-17 * jan-mar mon-fri", None),
        ("0 9 1,15 * 0,7", None),
        ("0 9 1 *", "has 4 fields"),
        ("0 9 1 * * 2026", "has 6 fields"),
        ("0 25 1 * *", "hour '25' is not valid"),
        ("0 9 32 * *", "day of month '32' is not valid"),
        ("0 9 1 13 *", "month '13' is not valid"),
        ("0 9 1 * funday", "day of week 'funday' is not valid"),
        ("0 9 5-1 * *", "day of month '5-1' is not valid"),
        ("*/0 9 1 * *", "minute '*/0' is not valid"),
    ],
)
def test_cron_expressions_are_checked(expression, problem):
    found = cron_problem(expression)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found and "\n" not in found


def test_time_zones_are_checked():
    assert time_zone_problem("Europe/Berlin") is None
    assert (
        time_zone_problem("Europe/Berln") == "'Europe/Berln' is not a time zone, e.g. Europe/Berlin"
    )
    assert time_zone_problem("Europe") is not None  # a directory of zones
    with pytest.raises(ValidationError):
        ReviewInput(recipients=("a@example.com",), timezone="Mars/Base")
    with pytest.raises(ValidationError):
        ReviewInput(recipients=(), timezone="UTC")
    with pytest.raises(ValidationError):
        ReviewInput(recipients=("not-an-address",), timezone="UTC")


# -- bad flags: one line, exit 2, nothing connects ---------------------------------------

SCHEDULE = ["review", "schedule", "--cron", "0 9 1 * *", "--timezone", "Europe/Berlin",
            "--to", "supervisors@example.com"]  # fmt: skip


def _with(flag: str, value: str) -> list[str]:
    args = list(SCHEDULE)
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    return args


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (_with("--timezone", "Europe/Berln"),
         "escalator: --timezone: 'Europe/Berln' is not a time zone, e.g. Europe/Berlin"),
        (_with("--cron", "0 9 1 *"), "escalator: --cron: '0 9 1 *' has 4 fields; a cron"),
        (_with("--to", "supervisors"), "escalator: --to: 'supervisors' is not an email address"),
        (_with("--backfill", "0"), "escalator: --backfill: '0' is not a positive whole number of months"),
        (_with("--backfill", "two"), "escalator: --backfill: 'two' is not a positive whole number"),
        (_with("--backfill", "-3"), "escalator: --backfill: '-3' is not a positive whole number"),
        (_with("--schedule-id", "a/b"), "escalator: --schedule-id: 'a/b' is not valid"),
        (["review", "schedule", "--timezone", "UTC", "--to", "a@example.com"],
         "escalator review schedule: the following arguments are required: --cron"),
        (["review", "show", "--schedule-id", "no spaces"], "escalator: --schedule-id: 'no spaces'"),
    ],
)  # fmt: skip
def test_bad_flags_are_one_line_and_exit_2(args, expected, capsys, monkeypatch):
    # Nothing listens there: had the CLI connected, it would exit 3, not 2.
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:9")
    try:
        code = cli_run(args)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(expected), err


# -- the activity, against a real SMTP sink -------------------------------------------------


def _request(month_of: datetime, **review) -> ReviewRequest:
    fields = {"recipients": ("supervisors@example.com",), "timezone": "Europe/Berlin", **review}
    month = previous_month(month_of, "Europe/Berlin")
    return ReviewRequest(
        review=ReviewInput(**fields),
        month=month,
        message_id=review_message_id("monthly-review-test", "run-1", month),
    )


@pytest.mark.loopback
async def test_a_missing_ledger_is_an_empty_review_not_a_crash(tmp_path):
    sink = MailSink().start()
    try:
        url = f"sqlite:///{tmp_path}/nothing-here/ledger.db"
        settings = EscalatorSettings.defaults(
            smtp=SmtpSettings(host="127.0.0.1", port=sink.port),
            ledger=LedgerSettings(url=SecretStr(url)),
        )
        request = _request(datetime(2026, 12, 1, 9, tzinfo=BERLIN))
        result = await ActivityEnvironment().run(
            ReviewActivities(settings).send_monthly_review, request
        )
    finally:
        sink.stop()
    assert (result.month, result.cases, result.recipients) == (
        "2026-11",
        0,
        ("supervisors@example.com",),
    )
    assert not (tmp_path / "nothing-here").exists()  # reading never creates a ledger
    [mail] = sink.messages
    assert mail["Subject"] == "Escalation review: November 2026 (0 cases)"
    assert mail["Message-ID"] == request.message_id
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "Cases resolved: 0" in text and "November 2026 (Europe/Berlin)" in text
    assert html.lstrip().lower().startswith("<!doctype html>") and "0 cases" in html


@pytest.mark.loopback
async def test_a_refused_recipient_is_permanent_and_the_password_never_shows(tmp_path):
    class Refusing(MailSink):
        def refuse_recipient(self, address: str) -> str | None:
            return "550 no such mailbox"

    sink = Refusing().start()
    try:
        settings = EscalatorSettings.defaults(
            smtp=SmtpSettings(host="127.0.0.1", port=sink.port, password=SecretStr("hunter2")),
            ledger=LedgerSettings(url=SecretStr(f"sqlite:///{tmp_path}/ledger.db")),
        )
        with pytest.raises(ApplicationError) as failure:
            await ActivityEnvironment().run(
                ReviewActivities(settings).send_monthly_review,
                _request(datetime(2026, 12, 1, 9, tzinfo=BERLIN)),
            )
    finally:
        sink.stop()
    assert failure.value.type == "PermanentDeliveryError" and failure.value.non_retryable
    assert "550" in str(failure.value) and "hunter2" not in str(failure.value)
    assert "hunter2" not in repr(ReviewActivities(settings))


def test_the_text_part_names_the_scope():
    from escalator.domain import metrics

    request = _request(datetime(2026, 12, 1, 9, tzinfo=BERLIN), team="support-specialists")
    text = summary_text(request, metrics.report([]))
    assert "Scope: team support-specialists" in text and "MTTA (mean): n/a" in text


# -- the schedule, end to end on the dev server --------------------------------------------


def _resolved_case(case_id: str, resolved_at: datetime, *, to_l3: bool = False):
    """A case (through the real engine) that resolves at `resolved_at`."""
    took = timedelta(hours=3) if to_l3 else timedelta(hours=1)
    c = EngineCase(case_id=case_id, start=resolved_at - took)
    c.after(timedelta(minutes=10))
    c.do(engine.claim, ClaimRequest(actor=actor("alice")))
    if to_l3:
        for user in ("alice", "carol"):
            note = {"reason": "needs backend access", "steps_taken": ["checked the runbook"]}
            c.do(engine.escalate, EscalateRequest(actor=actor(user), note=note))
            c.after(timedelta(minutes=20))
            c.do(engine.claim, ClaimRequest(actor=actor("carol" if user == "alice" else "dave")))
    c.after(resolved_at - c.now)
    c.do(engine.resolve, ResolveRequest(actor=actor("dave" if to_l3 else "alice"), summary="ok"))
    assert c.state.phase == "resolved" and c.now == resolved_at
    return c.history()


def _cli(address: str, queue: str, ledger_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ESCALATOR_ENCRYPTION_KEY"}
    env.update(
        TEMPORAL_ADDRESS=address, ESCALATOR_TASK_QUEUE=queue, ESCALATOR_LEDGER_URL=ledger_url
    )
    return subprocess.run(
        [*ESCALATOR, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60
    )


@pytest.mark.integration
async def test_the_schedule_backfills_one_review_per_month_and_updates_in_place(dev_env, tmp_path):
    tz = "Europe/Berlin"
    now = datetime.now(UTC)
    older, last = months_before(now, tz, 2)  # the two whole months before this one
    tag = uuid.uuid4().hex[:6]
    ids = {name: f"rev-{name}-{tag}" for name in ("old", "quick", "l3", "edge", "now", "other")}
    ledger_url = f"sqlite:///{tmp_path}/ledger.db"
    store = LedgerStore(ledger_url)
    histories = [
        _resolved_case(ids["old"], older.start + timedelta(days=3)),
        _resolved_case(ids["quick"], last.start + timedelta(days=2)),
        _resolved_case(ids["l3"], last.end - timedelta(days=2), to_l3=True),
        # 30 min after Berlin's midnight: still the month before in UTC, but `last` here.
        _resolved_case(ids["edge"], last.start + timedelta(minutes=30)),
        _resolved_case(ids["now"], last.end + timedelta(minutes=30)),  # this month: no review
    ]
    other = _resolved_case(ids["other"], last.start + timedelta(days=4))
    other = other.model_copy(update={"facts": other.facts.model_copy(update={"account": "other"})})
    for history in [*histories, other]:
        store.write(LedgerBatch(case_id=history.facts.case_id, events=history.events,
                                case=history.facts))  # fmt: skip
    store.close()

    sink = MailSink().start()
    queue = unique_queue("review")
    schedule_id = f"monthly-review-{tag}"
    address = dev_env.client.service_client.config.target_host
    settings = EscalatorSettings.defaults(
        smtp=SmtpSettings(host="127.0.0.1", port=sink.port),
        ledger=LedgerSettings(url=SecretStr(ledger_url)),
    )
    to = ["supervisors@example.com", "lead@example.com"]
    schedule = ["review", "schedule", "--schedule-id", schedule_id, "--cron", "0 0 1 * *",
                "--timezone", tz, "--to", to[0], "--to", to[1], "--account", "default"]  # fmt: skip

    async def cli(*args: str) -> subprocess.CompletedProcess:
        return await asyncio.to_thread(_cli, address, queue, ledger_url, *args)

    handle = dev_env.client.get_schedule_handle(schedule_id)
    try:
        async with case_workers(
            dev_env.client, queue, [ReviewActivities(settings).send_monthly_review]
        ):
            created = await cli(*schedule, "--backfill", "2")
            assert created.returncode == 0, created.stderr
            assert created.stdout.startswith(f"created schedule {schedule_id}: 0 0 1 * * ({tz})")
            assert f"backfilling 2 months: {older.label}, {last.label}" in created.stdout

            await eventually(lambda: len(sink.messages) >= 2, within=90, interval=0.5)
            await asyncio.sleep(2)  # any third mail would have come by now
            assert len(sink.messages) == 2, [m["Subject"] for m in sink.messages]
            by_month = {m["X-Escalator-Review-Month"]: m for m in sink.messages}
            assert set(by_month) == {older.key, last.key}

            first, second = by_month[older.key], by_month[last.key]
            assert first["Subject"] == f"Escalation review: {older.label} (1 case)"
            assert second["Subject"] == f"Escalation review: {last.label} (3 cases)"
            for mail in (first, second):
                assert sorted(mail["X-Envelope-To"].split(", ")) == sorted(to)
                assert mail["To"] == ", ".join(to)
                assert mail.get_content_type() == "multipart/alternative"
            html = second.get_body(("html",)).get_content()
            assert "3 cases resolved" in html
            assert ids["l3"] in html  # the L3 case is up for review
            for absent in (ids["now"], ids["other"], ids["old"]):
                assert absent not in html
            assert "Cases resolved: 3" in second.get_body(("plain",)).get_content()
            assert "Cases resolved: 1" in first.get_body(("plain",)).get_content()
            # Each run knew its month from its scheduled time, and says which run it was.
            assert second["Message-ID"].startswith(f"<review.{last.key}.")
            assert first["Message-ID"].startswith(f"<review.{older.key}.")
            assert second["X-Escalator-Run"].startswith(f"{schedule_id}-")

            # The runs' results, as Temporal keeps them.
            description = await handle.describe()
            runs = [a.action.workflow_id for a in description.info.recent_actions]
            assert len(runs) == 2
            results = [
                await dev_env.client.get_workflow_handle(r, result_type=ReviewResult).result()
                for r in runs
            ]
            assert sorted((r.month, r.cases) for r in results) == [(older.key, 1), (last.key, 3)]

            # Again, with another recipient: the schedule is updated, nothing fails.
            again = await cli(*schedule[:-4], "--to", "boss@example.com")
            assert again.returncode == 0, again.stderr
            assert again.stdout.startswith(f"updated schedule {schedule_id}:")
            shown = await cli("review", "show", "--schedule-id", schedule_id)
            assert shown.returncode == 0, shown.stderr
            assert f"mails to  {to[0]}, boss@example.com\n" in shown.stdout  # the new list
            assert "cases: all\n" in shown.stdout  # --account was left out this time
            assert f"when      0 0 1 * * ({tz})" in shown.stdout
            assert "next " in shown.stdout and "2 run" in shown.stdout
            assert len(sink.messages) == 2  # an update starts nothing

            # Backfilling the updated schedule regenerates last month with its new input:
            # every account now, so one more case, and a new message (a new run).
            regenerated = await cli(*schedule[:-4], "--to", "boss@example.com", "--backfill", "1")
            assert regenerated.returncode == 0, regenerated.stderr
            assert f"backfilling 1 month: {last.label}" in regenerated.stdout
            await eventually(lambda: len(sink.messages) >= 3, within=90, interval=0.5)
            third = sink.messages[2]
            assert third["Subject"] == f"Escalation review: {last.label} (4 cases)"
            assert sorted(third["X-Envelope-To"].split(", ")) == sorted([to[0], "boss@example.com"])
            assert third["Message-ID"] != second["Message-ID"]
            assert third["X-Escalator-Run"] == second["X-Escalator-Run"]  # the same time, re-run

            # A bad flag against a live Temporal: still one line, exit 2, nothing changed.
            bad = await cli(*schedule[:6], "--timezone", "Europe/Berln", "--to", to[0])
            assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
            assert "--timezone: 'Europe/Berln' is not a time zone" in bad.stderr

            deleted = await cli("review", "delete", "--schedule-id", schedule_id)
            assert deleted.returncode == 0, deleted.stderr
            gone = await cli("review", "show", "--schedule-id", schedule_id)
            assert gone.returncode == 2 and "not found" in gone.stderr, gone.stderr
    finally:
        sink.stop()
        try:
            await handle.delete()
        except Exception:
            pass  # deleted by the test itself
