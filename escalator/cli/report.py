"""`escalator report`: the supervisor's figures from the case ledger.

The figures come from the ledger (ESCALATOR_LEDGER_URL; `.data/ledger.db` by
default), which outlives Temporal's retention; only the live backlog (`open`) is
read from Temporal. When Temporal cannot be reached the report still prints, with
`open` empty and a one-line warning on stderr: the ledger is the source of truth.
docs/metrics.md defines every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from escalator.domain.errors import EscalatorError, InvalidInput
from escalator.domain.terminal_text import terminal_safe

if TYPE_CHECKING:
    from escalator.domain.ledger import CaseHistory


class LedgerUnreadable(EscalatorError):
    """The ledger's database cannot be read: exit code 3, like an unreachable Temporal."""


FORMATS = ("text", "json", "csv", "html")
STATUS_READS = 8  # status queries in flight while reading the backlog
BACKLOG_LIMIT = 2000  # open cases read for `open`; beyond it the report says so


def add_arguments(report: argparse.ArgumentParser) -> None:
    add_case_filters(report)
    report.add_argument("--format", choices=FORMATS, default="text")
    report.add_argument("--out", type=Path, help="write to FILE instead of stdout")
    report.add_argument(
        "--no-open", action="store_true", help="skip the live backlog (no Temporal needed)"
    )


def add_case_filters(parser: argparse.ArgumentParser) -> None:
    """Which resolved cases from the ledger: the period and the filters that `report`
    and `simulate` share (read back with `period` and the args' names)."""
    window = parser.add_mutually_exclusive_group()
    window.add_argument("--since", help="cases resolved in the last DURATION (default 30d)")
    window.add_argument("--from", dest="date_from", metavar="DATE", help="YYYY-MM-DD (UTC)")
    parser.add_argument("--to", dest="date_to", metavar="DATE", help="YYYY-MM-DD, inclusive")
    parser.add_argument("--team", help="cases that passed through this team's tier")
    parser.add_argument("--category")
    parser.add_argument("--account")
    parser.add_argument(
        "--policy-version",
        metavar="VERSION",
        help="cases that ran on this policy version, e.g. default@47ad1c1cdb8d",
    )


def period(args: argparse.Namespace, now: datetime) -> tuple[datetime, datetime]:
    """[from, to) in UTC from --since, or --from/--to (whole days), checked."""
    if args.date_to and not args.date_from:
        raise InvalidInput("--to: needs --from DATE as well (or use --since)")
    if args.date_from:
        start = _day(args.date_from, "--from")
        end = _day(args.date_to, "--to") + timedelta(days=1) if args.date_to else now
        if end <= start:
            raise InvalidInput("--to: must not be before --from")
        return start, end
    from escalator.cli.flags import duration_flag

    since = duration_flag("--since", args.since or "30d")
    if since <= timedelta(0):
        raise InvalidInput("--since: must be longer than zero, e.g. 30d")
    return now - since, now


def _day(text: str, flag: str) -> datetime:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{flag}: {text!r} is not a date like 2026-11-01") from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


async def run(args: argparse.Namespace, connect) -> int:
    """Build the report and write it. `connect` opens the EscalatorClient."""
    from escalator.domain import metrics

    now = datetime.now(UTC)
    start, end = period(args, now)
    histories = await asyncio.to_thread(
        read_histories,
        resolved_from=start,
        resolved_to=end,
        account=args.account,
        category=args.category,
        policy_version=args.policy_version,
    )
    report = metrics.report(histories, period_from=start, period_to=end, team=args.team)
    if not args.no_open:
        backlog = await _backlog(args, connect, now)
        report = report.model_copy(update={"open": backlog})
    write_output(args, _render(report, args.format, histories, args.team))
    return 0


def read_histories(**filters: Any) -> list[CaseHistory]:
    """The resolved cases `LedgerStore.histories(**filters)` finds in the ledger."""
    from escalator.adapters.ledger_store import LedgerStore

    store = LedgerStore(ledger_url())
    try:
        with ledger_errors():
            return store.histories(**filters)
    finally:
        store.close()


def ledger_url() -> str:
    """The ledger ESCALATOR_LEDGER_URL names; one that is not there is a one-line error."""
    from escalator.adapters.ledger_store import ledger_exists
    from escalator.adapters.settings import LedgerSettings

    url = LedgerSettings.from_env().url.get_secret_value()
    if not ledger_exists(url):
        raise InvalidInput(
            f"ledger: nothing at {url}; cases write it as they resolve "
            "(`make run`), or set ESCALATOR_LEDGER_URL"
        )
    return url


@contextmanager
def ledger_errors() -> Iterator[None]:
    """A database error while reading the ledger is LedgerUnreadable, in one line."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except SQLAlchemyError as error:  # the URL is not shown: it may hold a password
        raise LedgerUnreadable(
            f"ledger: cannot read it ({type(error).__name__}); check ESCALATOR_LEDGER_URL "
            "and that the database is up"
        ) from None


async def _backlog(args: argparse.Namespace, connect, now: datetime) -> dict | None:
    from escalator.adapters.temporal_client import TemporalUnavailable
    from escalator.adapters.visibility import open_case_query
    from escalator.domain import metrics

    try:
        escalator = await connect(args)
        ids: list[str] = []
        query = open_case_query(
            account=args.account, team=args.team, policy_version=args.policy_version
        )
        async for execution in escalator.client.list_workflows(query, limit=BACKLOG_LIMIT):
            ids.append(execution.id.removeprefix("case-"))
        gate = asyncio.Semaphore(STATUS_READS)

        async def read(case_id: str):
            async with gate:
                try:
                    return await escalator.status(case_id)
                except EscalatorError:  # closed between the listing and the query
                    return None

        statuses = [s for s in await asyncio.gather(*(read(i) for i in ids)) if s is not None]
    except TemporalUnavailable as error:
        print(terminal_safe(f"escalator: report without `open`: {error}"), file=sys.stderr)
        return None
    if args.category:
        statuses = [s for s in statuses if s.category == args.category]
    backlog = metrics.backlog(statuses, now)
    if len(ids) >= BACKLOG_LIMIT:
        backlog["truncated_at"] = BACKLOG_LIMIT
    return backlog


def _render(report, form: str, histories=(), team: str | None = None) -> str:
    from escalator.domain import report_formats

    if form == "html":
        # The charts' weeks are drawn from the very cases the figures count.
        from escalator.adapters import report_html
        from escalator.domain.report_weeks import of_team

        return report_html.render(report, of_team(histories, team))
    if form == "json":
        return report_formats.as_json(report) + "\n"
    if form == "csv":
        return report_formats.as_csv(report)
    return report_formats.as_text(report)


def write_output(args: argparse.Namespace, text: str, *, what: str = "report") -> None:
    """`text` to --out FILE, or to stdout."""
    if args.out is None:
        sys.stdout.write(text)
        return
    try:
        args.out.write_text(text, encoding="utf-8")
    except OSError as error:
        raise InvalidInput(f"--out: cannot write {args.out} ({error.strerror})") from None
    print(terminal_safe(f"{what} written to {args.out}"), file=sys.stderr)
