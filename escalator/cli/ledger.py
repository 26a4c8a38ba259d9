"""`escalator ledger`: the case ledger's upkeep.

- `backfill` imports closed cases that Temporal still holds (see
  escalator/runtime/backfill.py), e.g. after an upgrade or a new ledger database;
- `status` counts what the ledger holds.

The ledger is the one ESCALATOR_LEDGER_URL names (`.data/ledger.db` by default).
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from escalator.domain.terminal_text import terminal_safe


def add_arguments(ledger: argparse.ArgumentParser, parser_class) -> None:
    actions = ledger.add_subparsers(dest="ledger_command", required=True, parser_class=parser_class)
    backfill = actions.add_parser(
        "backfill",
        help="import closed cases still inside Temporal's retention",
        description="import closed cases still inside Temporal's retention",
    )
    backfill.add_argument("--account", help="only this account's cases")
    backfill.add_argument("--since", help="only cases closed in the last DURATION, e.g. 30d")
    actions.add_parser("status", help="rows in the ledger", description="rows in the ledger")


async def run(args: argparse.Namespace, connect) -> int:
    from escalator.adapters.ledger_store import LedgerStore
    from escalator.adapters.settings import LedgerSettings

    url = LedgerSettings.from_env().url.get_secret_value()
    store = LedgerStore(url)
    try:
        if args.ledger_command == "status":
            counts = await asyncio.to_thread(store.counts)
            print(f"{counts['ledger_cases']} cases, {counts['ledger_events']} events")
            return 0
        return await _backfill(args, connect, store)
    finally:
        store.close()


async def _backfill(args: argparse.Namespace, connect, store) -> int:
    from escalator.adapters.visibility import closed_case_query
    from escalator.cli.flags import duration_flag
    from escalator.runtime.backfill import backfill

    since = datetime.now(UTC) - duration_flag("--since", args.since) if args.since else None
    query = closed_case_query(account=args.account, closed_since=since)
    escalator = await connect(args)
    result = await backfill(
        escalator.client, store, query=query, progress=lambda line: print(terminal_safe(line))
    )
    print(
        f"{result.runs} closed runs read: {result.from_batches} from their ledger batches, "
        f"{result.replayed} replayed; {result.events_written} new events, "
        f"{result.cases_written} fact rows written"
    )
    for failure in result.failed:
        print(terminal_safe(f"  not imported: {failure}"))
    return 0 if not result.failed else 1
