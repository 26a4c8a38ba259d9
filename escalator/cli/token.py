"""`escalator token`: make, list and revoke the HTTP API's bearer tokens.

`create` prints the new token once, alone on its last line (so a script can take
`tail -n 1`), and stores only its hash; `list` never shows a secret.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from pathlib import Path

from escalator.domain.errors import InvalidInput
from escalator.domain.terminal_text import terminal_safe


def add_arguments(token: argparse.ArgumentParser, parser_class) -> None:
    actions = token.add_subparsers(dest="token_command", required=True, parser_class=parser_class)
    create = actions.add_parser(
        "create", help="make a token (shown once)", description="make a token (shown once)"
    )
    who = create.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="a person's token: the user the API acts as")
    who.add_argument("--integration", help="an alert source's token, e.g. alertmanager")
    create.add_argument("--role", help="viewer|engineer|admin|owner|customer (with --user)")
    create.add_argument("--account", default="default", help="the account it acts in")
    create.add_argument("--policy", help="integrations: the policy new cases use (default)")
    create.add_argument("--expires", help="e.g. 90d; default: never")
    listing = actions.add_parser("list", help="the tokens, without secrets", description="list")
    revoke = actions.add_parser("revoke", help="revoke a token by id", description="revoke")
    revoke.add_argument("token_id", help="the id `token list` shows")
    for sub in (create, listing, revoke):
        sub.add_argument("--data-dir", type=Path, default=Path(".data"), help="default: .data")


def _grant(args: argparse.Namespace):
    from pydantic import ValidationError

    from escalator.domain.errors import describe_validation_error
    from escalator.domain.tokens import TokenGrant

    if args.user is not None:
        if args.role is None:
            raise InvalidInput("--role: a person's token needs a role, e.g. --role engineer")
        if args.policy is not None:
            raise InvalidInput("--policy: only integration tokens open cases with a policy")
        fields = {"kind": "person", "user": args.user, "role": args.role}
    else:
        if args.role is not None:
            raise InvalidInput("--role: an integration token acts as `system`, not a role")
        fields = {"kind": "integration", "integration": args.integration,
                  "policy": args.policy or "default"}  # fmt: skip
    try:
        return TokenGrant.model_validate({**fields, "account": args.account})
    except ValidationError as error:
        field, _, reason = describe_validation_error(error).partition(": ")
        raise InvalidInput(f"--{field.replace('_', '-')}: {reason}") from None


async def run(args: argparse.Namespace) -> int:
    from escalator.adapters.settings import LedgerSettings
    from escalator.adapters.token_store import TokenStore, token_store_url

    grant, expires = None, None
    if args.token_command == "create":  # every flag checked before the store is opened
        grant = _grant(args)
        if args.expires:
            from escalator.cli.flags import duration_flag

            expires = duration_flag("--expires", args.expires)
    ledger_url = LedgerSettings.from_env().url.get_secret_value()
    store = TokenStore(token_store_url(args.data_dir, ledger_url))
    try:
        if args.token_command == "create":
            assert grant is not None
            text, record = await asyncio.to_thread(store.create, grant, expires_in=expires)
            until = f", expires {record.expires_at:%Y-%m-%d %H:%M} UTC" if expires else ""
            print(terminal_safe(f"token {record.token_id} for {grant.label}{until}"))
            print("Shown once: keep it now. The API takes it as `Authorization: Bearer <token>`.")
            print(text)
            return 0
        if args.token_command == "list":
            now = datetime.now(UTC)
            records = await asyncio.to_thread(store.all)
            if not records:
                print("no tokens; make one with `escalator token create`")
            for record in records:
                expires_at = f"{record.expires_at:%Y-%m-%d}" if record.expires_at else "never"
                print(terminal_safe(
                    f"{record.token_id}  {record.status(now):<8} {record.grant.label}  "
                    f"created {record.created_at:%Y-%m-%d}, expires {expires_at}"
                ))  # fmt: skip
            return 0
        if not await asyncio.to_thread(store.revoke, args.token_id):
            raise InvalidInput(f"token {args.token_id!r}: no such active token (see `token list`)")
        print(terminal_safe(f"token {args.token_id} revoked"))
        return 0
    finally:
        store.close()
