"""`escalator policy check FILE`: a policy's configuration hygiene (docs/policy-check.md).

One line per warning, `FILE:LINE:COL: warning: FIELD: message`, then a summary line.
The checks themselves are pure (escalator.domain.policy_check); this module reads the
file and, unless `--no-ledger`, the last 30 days of resolved cases from the case
ledger (ESCALATOR_LEDGER_URL), to say how often the policy's first responses would
have been missed. No ledger: that check is skipped quietly; a ledger that cannot be
read: one line on stderr, and the other checks still run.

Exit codes: 0 no warnings, 1 warnings, 2 the file is missing or not a valid policy
(the usual one-line PolicyError).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta

from escalator.domain.terminal_text import json_terminal_safe, terminal_safe

LEDGER_DAYS = 30
EXIT_CLEAN, EXIT_WARNINGS = 0, 1


def add_arguments(policy: argparse.ArgumentParser, parser_class=None) -> None:
    options = {"parser_class": parser_class} if parser_class is not None else {}
    actions = policy.add_subparsers(dest="policy_command", required=True, **options)
    check = actions.add_parser(
        "check",
        help="warn about a valid policy that probably does not do what was meant",
        description="warn about a valid policy that probably does not do what was meant "
        "(docs/policy-check.md); exit 0 clean, 1 warnings, 2 invalid file",
    )
    check.add_argument("file", metavar="FILE", help="the policy file, e.g. policies/default.yaml")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.add_argument(
        "--no-ledger",
        action="store_true",
        help=f"skip the check against the ledger's last {LEDGER_DAYS} days of cases",
    )


def run(args: argparse.Namespace) -> int:
    from escalator.adapters.policy_files import load_policy_with_locations
    from escalator.domain.policy_check import check_policy, ledger_warnings
    from escalator.domain.policy_version import policy_version

    located = load_policy_with_locations(args.file)  # PolicyError: exit 2, one line
    policy, positions = located.policy, located.tier_positions
    warnings = check_policy(policy, located.locate, tier_positions=positions)
    ledger: dict = {"status": "skipped", "cases": None}
    if not args.no_ledger:
        histories, ledger = _recent_histories()
        if histories:
            warnings += ledger_warnings(
                policy,
                histories,
                located.locate,
                tier_positions=positions,
                period=f"in the last {LEDGER_DAYS} days",
            )
    if args.json:
        document = _as_json(args.file, policy.name, warnings, ledger)
        document["version"] = policy_version(policy)
        print(json_terminal_safe(json.dumps(document)))
    else:
        for w in warnings:
            where = f"{w.line}:{w.column}:" if w.line is not None else ""
            print(terminal_safe(f"{args.file}:{where} warning: {w.field}: {w.message}"))
        print(terminal_safe(_summary(args.file, policy_version(policy), len(warnings))))
    return EXIT_WARNINGS if warnings else EXIT_CLEAN


def _summary(file: str, version: str, count: int) -> str:
    """The last line; the version (`name@hash`) is what `escalator report` and
    `escalator simulate --policy-version` filter the cases that ran on it by."""
    if not count:
        return f"{file}: no warnings (policy {version})"
    return f"{file}: {count} warning{'s' if count != 1 else ''} (policy {version})"


def _as_json(file: str, name: str, warnings: list, ledger: dict) -> dict:
    return {
        "file": file,
        "policy": name,
        "warnings": [
            {
                "code": w.code,
                "field": w.field,
                "line": w.line,
                "column": w.column,
                "message": w.message,
            }
            for w in warnings
        ],
        "ledger": ledger,
    }


def _recent_histories() -> tuple[list, dict]:
    """(resolved cases of the last LEDGER_DAYS days, what became of the ledger check)."""
    from sqlalchemy.exc import SQLAlchemyError

    from escalator.adapters.ledger_store import LedgerStore, ledger_exists
    from escalator.adapters.settings import LedgerSettings
    from escalator.domain.errors import EscalatorError

    try:
        url = LedgerSettings.from_env().url.get_secret_value()
    except EscalatorError as error:
        _note(f"the ledger check is skipped: {error}")
        return [], {"status": "unreadable", "cases": None}
    if not ledger_exists(url):
        return [], {"status": "absent", "cases": None}
    now = datetime.now(UTC)
    store = LedgerStore(url)
    try:
        histories = store.histories(
            resolved_from=now - timedelta(days=LEDGER_DAYS), resolved_to=now
        )
    except EscalatorError as error:  # e.g. a ledger made by an older Escalator
        _note(f"the ledger check is skipped: {error}")
        return [], {"status": "unreadable", "cases": None}
    except (SQLAlchemyError, ValueError) as error:  # the URL is not shown: it may hold a password
        _note(
            f"the ledger check is skipped: cannot read the ledger ({type(error).__name__}); "
            "check ESCALATOR_LEDGER_URL, or pass --no-ledger"
        )
        return [], {"status": "unreadable", "cases": None}
    finally:
        store.close()
    return histories, {"status": "checked", "cases": len(histories)}


def _note(line: str) -> None:
    print(terminal_safe(f"escalator: {line}"), file=sys.stderr)
