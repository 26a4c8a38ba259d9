"""The `escalator` command line.

Exit codes: 0 success; 1 the case refused the action (e.g. already claimed);
2 usage or validation error, or unknown case; 3 Temporal could not be reached.
Every error is one line on stderr, never a traceback.

Case text is untrusted, so everything printed is terminal-safe
(escalator.domain.terminal_text): control and format characters in a title, a note, a
name or an error that echoes input are shown as visible escapes like `\\x1b`.
`--json` output is still the same JSON, with such characters as `\\u` escapes.

Longer than most modules: the whole command line (parser, commands and their
error mapping) is one table a user's `--help` mirrors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from escalator.adapters.settings import DEFAULT_TASK_QUEUE, TemporalSettings
from escalator.domain.errors import EscalatorError, InvalidInput
from escalator.domain.terminal_text import json_terminal_safe, terminal_safe

EXIT_OK, EXIT_REFUSED, EXIT_INVALID, EXIT_UNAVAILABLE = 0, 1, 2, 3
DEFAULT_POLICY = "policies/default.yaml"

EXAMPLES = """\
examples:
  escalator up                                   # dev server + worker + mail catcher + Web UI
  escalator start --case-id 123 --title "Outlook fails to sync" --severity P2 \\
      --policy policies/demo.yaml --customer-email jane@acme.example --description "..."
  escalator status 123                           # tier, assignee, next deadline, timeline
  escalator claim 123 --user alice --role engineer
  escalator escalate 123 --user alice --reason "needs backend access" \\
      --tried "re-uploaded cert" --tried "checked runbook"
  escalator note 123 --user alice --text "customer sent logs"
  escalator resolve 123 --user bob --role engineer --summary "cleared cert cache"
  escalator list --status open --json
  escalator draft 123 --audience client_update   # re-word the saved AI assessment
  escalator hold 123 --user alice --reason "waiting on the customer's logs"
  escalator deescalate 123 --user bob --reason "fix deployed; L1 monitors"
  escalator severity 123 --user alice P1         # raising re-routes; lowering never demotes
  escalator queue --team support-specialists     # unclaimed, nearest deadline first
  escalator report --since 30d                   # MTTA, MTTR, escalations, SLA compliance
  escalator simulate --policy new.yaml --since 30d   # what new.yaml would have done
  escalator policy check policies/default.yaml   # warnings a valid policy may still deserve
  escalator review schedule --cron "0 9 1 * *" --timezone Europe/Berlin \\
      --to supervisors@example.com               # mail last month's review (docs/review.md)

exit codes: 0 ok, 1 refused by the case, 2 invalid input or unknown case,
            3 Temporal (or the ledger's database) unreachable
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line that points at --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        line = terminal_safe(f"{self.prog}: {message} (see `{self.prog} --help`)")
        self.exit(EXIT_INVALID, line + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="escalator",
        description="Durable escalation workflows: every case is a Temporal workflow.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--address", help="Temporal address (default: $TEMPORAL_ADDRESS)")
    parser.add_argument("--namespace", help="Temporal namespace (default: $TEMPORAL_NAMESPACE)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, help: str, example: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help,
            description=help,
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    up = command("up", "run Temporal (SQLite), the worker, a mail catcher and the Web UI",
                 "escalator up --data-dir .data --port 7233 --ui-port 8233")  # fmt: skip
    up.add_argument("--data-dir", type=Path, default=Path(".data"), help="default: .data")
    up.add_argument("--port", type=_port, default=7233, help="Temporal gRPC port (7233)")
    up.add_argument("--ui-port", type=_port, default=8233, help="Web UI port (8233)")
    up.add_argument("--mail-port", type=_port, default=1025, help="mail catcher port (1025)")
    up.add_argument("--no-mail", action="store_true", help="do not run the mail catcher")
    up.add_argument("--api-port", type=_port, default=8000, help="HTTP API port (8000)")
    up.add_argument("--no-api", action="store_true", help="do not run the HTTP API")

    command("worker", "run a worker (configured by environment variables)", "escalator worker")
    keygen = command(
        "keygen",
        "print a new ESCALATOR_ENCRYPTION_KEY entry (id:key)",
        "escalator keygen --id k2026",
    )
    keygen.add_argument("--id", help="key id (default: k<YYYYMMDD>)")
    codec = command(
        "codec-server",
        "let the Web UI decrypt payloads (needs the worker's keys)",
        "escalator codec-server --port 8888 --origin http://localhost:8080",
    )
    codec.add_argument("--host", default="127.0.0.1", help="listen address (127.0.0.1)")
    codec.add_argument("--port", type=_port, default=8888, help="port (8888)")
    codec.add_argument(
        "--origin",
        action="append",
        type=_origin,
        metavar="URL",
        help="Web UI origin allowed to call it (repeat; default :8233 and :8080 on localhost)",
    )

    start = command("start", "open a case", 'escalator start --case-id 123 --title "VPN down"')
    start.add_argument("--case-id", required=True)
    start.add_argument("--title", required=True)
    start.add_argument("--description", default="")
    start.add_argument("--description-file", type=Path, help="read the description from a file")
    start.add_argument("--severity", default="P3", help="P0..P4 (default P3)")
    start.add_argument("--policy", type=Path, default=Path(DEFAULT_POLICY))
    start.add_argument("--customer-name")
    start.add_argument("--customer-email")
    start.add_argument("--account", default="default")
    start.add_argument("--category", help="a report dimension, e.g. sso or billing")
    start.add_argument("--customer-tier", help="e.g. enterprise (reports; routing overrides)")
    start.add_argument("--data", action="append", default=[], metavar="KEY=VALUE")

    def acting(name: str, help: str, example: str) -> argparse.ArgumentParser:
        sub = command(name, help, example)
        sub.add_argument("case_id")
        sub.add_argument("--user", required=True)
        sub.add_argument("--role", default="engineer", help="viewer|engineer|admin|owner")
        sub.add_argument("--account", default="default")
        sub.add_argument(
            "--no-wait", action="store_true", help="send a signal instead of waiting for an answer"
        )
        return sub

    acting("claim", "take ownership of a case", "escalator claim 123 --user alice")
    resolve = acting(
        "resolve", "resolve a case", 'escalator resolve 123 --user bob --summary "fixed"'
    )
    resolve.add_argument("--summary", default="")
    escalate = acting(
        "escalate",
        "escalate to the next tier with a note",
        'escalator escalate 123 --user alice --reason "needs DBA" --tried "restarted"',
    )
    escalate.add_argument("--reason", default="", help="why the next tier is needed (required)")
    escalate.add_argument(
        "--tried", action="append", default=[], help="a step already taken (repeat)"
    )
    escalate.add_argument("--symptom", action="append", default=[], help="a symptom (repeat)")
    escalate.add_argument("--impact", help="customer impact")
    escalate.add_argument("--next-step", help="suggested next step for the receiving tier")
    note = acting("note", "add a note to a case", 'escalator note 123 --user alice --text "..."')
    note.add_argument("--text", required=True)
    hold = acting(
        "hold",
        "pause the SLA clocks while the case waits",
        'escalator hold 123 --user alice --reason "waiting on logs"',
    )
    hold.add_argument("--reason", default="", help="what the case waits for (required)")
    hold.add_argument("--until", help="resume by itself then (ISO time, e.g. 2026-12-01T09:00Z)")
    acting("resume", "end a hold; the SLA clocks run again", "escalator resume 123 --user alice")
    deescalate = acting(
        "deescalate",
        "return the case to a lower tier for follow-up",
        'escalator deescalate 123 --user bob --reason "fix deployed; monitor"',
    )
    deescalate.add_argument("--reason", default="", help="why (required)")
    deescalate.add_argument("--to-level", type=int, help="default: the next lower tier")
    severity = acting(
        "severity", "change the severity (raising re-routes)", "escalator severity 123 --user a P1"
    )
    severity.add_argument("severity", help="P0..P4")
    reopen = acting(
        "reopen", "reopen a resolved case within the reopen window", "escalator reopen 123 --user a"
    )
    reopen.add_argument("--reason", default="")

    draft = command(
        "draft",
        "re-word the case's saved AI assessment for an audience",
        "escalator draft 123 --audience client_update",
    )
    draft.add_argument("case_id")
    draft.add_argument(
        "--audience", required=True, choices=["ticket_notes", "client_update", "email_draft"]
    )
    draft.add_argument("--user", default=os.environ.get("USER") or "cli")
    draft.add_argument("--role", default="viewer", help="reading is enough (default viewer)")
    draft.add_argument("--account", default="default")
    draft.add_argument("--json", action="store_true", help="print JSON")

    status = command("status", "show a case", "escalator status 123 --json")
    status.add_argument("case_id")
    status.add_argument("--json", action="store_true", help="print JSON")

    queue = command(
        "queue",
        "unclaimed open cases, nearest deadline first",
        "escalator queue --team support-specialists",
    )
    queue.add_argument("--tier", type=int)
    queue.add_argument("--team")
    queue.add_argument("--severity")
    queue.add_argument("--limit", type=int, default=200)
    queue.add_argument("--json", action="store_true", help="print JSON")

    from escalator.cli import report

    report.add_arguments(
        command(
            "report",
            "the supervisor's figures from the case ledger (docs/metrics.md)",
            "escalator report --since 30d --format json --out report.json",
        )
    )

    from escalator.cli import review

    review.add_arguments(
        command(
            "review",
            "mail last month's review on a Temporal Schedule (docs/review.md)",
            'escalator review schedule --cron "0 9 1 * *" --timezone Europe/Berlin '
            "--to supervisors@example.com",
        ),
        _Parser,
    )

    from escalator.cli import ledger

    ledger.add_arguments(
        command(
            "ledger",
            "the case ledger: backfill closed cases from Temporal, or count its rows",
            "escalator ledger backfill --since 30d",
        ),
        _Parser,
    )

    from escalator.cli import policy

    policy.add_arguments(
        command(
            "policy",
            "check a policy file's configuration hygiene (docs/policy-check.md)",
            "escalator policy check policies/default.yaml",
        ),
        _Parser,
    )

    from escalator.cli import simulate

    simulate.add_arguments(
        command(
            "simulate",
            "what a policy would have done to past cases, from the ledger (docs/simulator.md)",
            "escalator simulate --policy new.yaml --since 30d --assume same-delay",
        )
    )

    api = command(
        "api",
        "serve the HTTP API (bearer tokens from `escalator token create`)",
        "escalator api --host 127.0.0.1 --port 8000 --policies policies/",
    )
    api.add_argument("--host", default="127.0.0.1", help="listen address (127.0.0.1)")
    api.add_argument("--port", type=_port, default=8000, help="port (8000)")
    api.add_argument("--data-dir", type=Path, default=Path(".data"), help="tokens (.data)")
    api.add_argument("--policies", type=Path, default=Path("policies"), help="policies/")

    from escalator.cli import token

    token.add_arguments(
        command(
            "token",
            "make, list and revoke the HTTP API's bearer tokens",
            "escalator token create --user alice --role engineer --account acme --expires 90d",
        ),
        _Parser,
    )

    listing = command("list", "list cases", "escalator list --status open")
    listing.add_argument("--status", choices=["open", "claimed", "resolved"])
    listing.add_argument("--tier", type=int)
    listing.add_argument("--team")
    listing.add_argument("--severity")
    listing.add_argument("--assignee")
    listing.add_argument("--category")
    listing.add_argument("--customer-tier")
    listing.add_argument("--policy-version", help="cases started on this version (name@hash)")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1-65535)")
    return port


# -- commands ---------------------------------------------------------------------


async def _run(args: argparse.Namespace) -> int:
    if args.command == "up":
        from escalator.devstack.stack import Stack, StackOptions

        options = StackOptions(
            data_dir=args.data_dir,
            port=args.port,
            ui_port=args.ui_port,
            mail_port=args.mail_port,
            mail=not args.no_mail,
            api_port=args.api_port,
            api=not args.no_api,
            task_queue=os.environ.get("ESCALATOR_TASK_QUEUE") or DEFAULT_TASK_QUEUE,
        )
        return await Stack(options).run()
    if args.command == "keygen":
        from datetime import UTC, datetime

        from escalator.adapters.codec import generate_key_entry

        print(generate_key_entry(args.id or f"k{datetime.now(UTC):%Y%m%d}"))
        return EXIT_OK
    if args.command == "codec-server":
        import logging

        from escalator.adapters.codec_server import DEFAULT_ORIGINS, run_codec_server

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        await run_codec_server(args.host, args.port, args.origin or list(DEFAULT_ORIGINS))
        return EXIT_OK
    if args.command == "worker":
        from escalator.runtime.worker import run_worker

        await run_worker(_settings(args))
        return EXIT_OK
    if args.command == "start":
        case = _case_from_args(args)  # validated (and its size checked) before connecting
        escalator = await _connect(args)
        workflow_id = await escalator.start_case(case)
        _say(f"started case {case.case_id} ({workflow_id})")
        _say(f"  {_ui_link(args, workflow_id)}")
        return EXIT_OK
    if args.command in {
        "claim",
        "resolve",
        "escalate",
        "note",
        "hold",
        "resume",
        "deescalate",
        "severity",
        "reopen",
    }:
        return await _act(args)
    if args.command == "status":
        from escalator.cli.output import render_status
        from starter import check_case_id

        check_case_id(args.case_id)  # before connecting
        escalator = await _connect(args)
        status = await escalator.status(args.case_id)
        print(_json(status.model_dump_json(indent=2)) if args.json else render_status(status))
        return EXIT_OK
    if args.command in {"list", "queue"}:
        return await _list(args)
    if args.command == "report":
        from escalator.cli import report

        return await report.run(args, _connect)
    if args.command == "review":
        from escalator.cli import review

        return await review.run(args, _connect)
    if args.command == "ledger":
        from escalator.cli import ledger

        return await ledger.run(args, _connect)
    if args.command == "policy":
        from escalator.cli import policy

        return policy.run(args)
    if args.command == "simulate":
        from escalator.cli import simulate

        return await asyncio.to_thread(simulate.run, args)
    if args.command == "api":
        from escalator.adapters.settings import LedgerSettings
        from escalator.adapters.token_store import TokenStore, token_store_url
        from escalator.api.serve import load_policies, serve

        policies = load_policies(args.policies)  # every policy checked before listening
        ledger_url = LedgerSettings.from_env().url.get_secret_value()
        tokens = TokenStore(token_store_url(args.data_dir, ledger_url))
        _say(f"Escalator API on http://{args.host}:{args.port} (docs at /docs); "
             f"policies: {', '.join(policies)}")  # fmt: skip
        await serve(host=args.host, port=args.port, policies=policies, tokens=tokens,
                    connect=lambda: _connect(args))  # fmt: skip
        return EXIT_OK
    if args.command == "token":
        from escalator.cli import token

        return await token.run(args)
    if args.command == "draft":
        from escalator.domain.models import DraftInput
        from starter import check_case_id

        check_case_id(args.case_id)  # before connecting
        actor = {"user": args.user, "role": args.role, "account": args.account}
        request = _validated_flags(DraftInput, {"actor": actor, "audience": args.audience})
        escalator = await _connect(args)
        draft = await escalator.draft(args.case_id, request.actor, request.audience)
        if args.json:
            print(_json(draft.model_dump_json(indent=2)))
        else:
            label = "offline template" if draft.source == "offline" else draft.model
            _say(f"# {draft.audience} for case {args.case_id} ({label})")
            print()
            print(terminal_safe(draft.text, multiline=True))  # the draft's own lines
        return EXIT_OK
    raise InvalidInput(f"unknown command {args.command}")


# What each action's request fields are called on the command line.
_FLAGS = {
    "actor.user": "--user",
    "actor.role": "--role",
    "actor.account": "--account",
    "note.reason": "--reason",
    "note.steps_taken": "--tried",
    "note.symptoms": "--symptom",
    "note.customer_impact": "--impact",
    "note.suggested_next_step": "--next-step",
}


def _request_from_args(args: argparse.Namespace):
    """The action's request, validated (every flag) before anything connects."""
    from escalator.domain import models
    from escalator.domain.policy import SEVERITIES
    from starter import check_case_id, request_problem

    check_case_id(args.case_id)
    actor = {"user": args.user, "role": args.role, "account": args.account}
    command = args.command
    if command == "severity" and args.severity not in SEVERITIES:
        raise InvalidInput(f"severity: {args.severity!r} is not one of {', '.join(SEVERITIES)}")
    models_by_command = {
        "claim": models.ClaimRequest,
        "resolve": models.ResolveRequest,
        "escalate": models.EscalateRequest,
        "note": models.AddNoteRequest,
        "hold": models.HoldRequest,
        "resume": models.ResumeRequest,
        "deescalate": models.DeescalateRequest,
        "severity": models.SetSeverityRequest,
        "reopen": models.ReopenRequest,
    }
    model, fields = models_by_command[command], {}
    if command == "resolve":
        fields = {"summary": args.summary}
    elif command == "note":
        fields = {"text": args.text}
    elif command == "severity":
        fields = {"severity": args.severity}
    elif command in {"reopen", "hold", "deescalate"}:
        fields = {"reason": args.reason}
    if command == "hold":
        fields["until"] = _parse_time(args.until) if args.until else None
    elif command == "deescalate":
        fields["to_level"] = args.to_level
    elif command == "escalate":
        fields["note"] = {
            "reason": args.reason,
            "steps_taken": args.tried,
            "symptoms": args.symptom,
            "customer_impact": args.impact,
            "suggested_next_step": args.next_step,
        }
    request = _validated_flags(model, {"actor": actor, **fields})
    problem = request_problem(request)
    if problem:
        raise InvalidInput(_flag_message(problem))
    return request


async def _act(args: argparse.Namespace) -> int:
    request = _request_from_args(args)  # validated before connecting
    wait = not args.no_wait
    escalator = await _connect(args)
    case_id, actor = args.case_id, request.actor
    if args.command == "claim":
        answer = await escalator.claim(case_id, actor, wait=wait)
    elif args.command == "resolve":
        answer = await escalator.resolve(case_id, actor, request.summary, wait=wait)
    elif args.command == "note":
        answer = await escalator.add_note(case_id, actor, request.text, wait=wait)
    elif args.command == "hold":
        answer = await escalator.hold(
            case_id, actor, request.reason, until=request.until, wait=wait
        )
    elif args.command == "resume":
        answer = await escalator.resume(case_id, actor, wait=wait)
    elif args.command == "deescalate":
        answer = await escalator.deescalate(
            case_id, actor, request.reason, to_level=request.to_level, wait=wait
        )
    elif args.command == "severity":
        answer = await escalator.set_severity(case_id, actor, request.severity, wait=wait)
    elif args.command == "reopen":
        answer = await escalator.reopen(case_id, actor, request.reason, wait=wait)
    else:
        answer = await escalator.escalate(case_id, actor, request.note, wait=wait)
    if answer is None:
        _say(f"case {case_id}: {args.command} sent (signal; see `escalator status`)")
    else:
        who = f", assignee {answer.assignee}" if answer.assignee else ""
        _say(f"case {case_id}: {answer.message} (L{answer.tier_level}, {answer.state}{who})")
    return EXIT_OK


async def _list(args: argparse.Namespace) -> int:
    from escalator.adapters.visibility import case_query
    from escalator.cli.output import case_row, render_rows

    queue = args.command == "queue"
    escalator = await _connect(args)
    query = case_query(
        status="open" if queue else args.status,  # open means unclaimed
        tier=args.tier,
        team=args.team,
        severity=args.severity,
        assignee=None if queue else args.assignee,
        category=None if queue else args.category,
        customer_tier=None if queue else args.customer_tier,
        policy_version=None if queue else args.policy_version,
    )
    rows = []
    async for execution in escalator.client.list_workflows(query, limit=args.limit):
        rows.append(case_row(execution))
    if queue:
        # SQLite visibility cannot ORDER BY custom attributes, so sort here; ISO
        # timestamps in UTC sort correctly as text. Cases with no deadline go last.
        rows.sort(key=lambda row: (row["next_deadline"] is None, row["next_deadline"] or ""))
    print(_json(json.dumps(rows, indent=2, default=str)) if args.json else render_rows(rows))
    return EXIT_OK


def _case_from_args(args: argparse.Namespace):
    from escalator.adapters.policy_files import load_policy
    from escalator.domain.models import CaseInput, case_input_problem

    description = args.description
    if args.description_file:
        try:
            description = args.description_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise InvalidInput(
                f"--description-file: cannot read {args.description_file} "
                f"({error.__class__.__name__})"
            ) from None
    customer = None
    if args.customer_name or args.customer_email:
        customer = {"name": args.customer_name, "email": args.customer_email}
    data = {}
    for pair in args.data:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--data: {pair!r} is not KEY=VALUE")
        data[key] = value
    fields = {
        "case_id": args.case_id,
        "title": args.title,
        "description": description,
        "severity": args.severity,
        "customer": customer,
        "account": args.account,
        "category": args.category,
        "customer_tier": args.customer_tier,
        "data": data,
        "policy": load_policy(args.policy),
    }
    case = _validated_flags(CaseInput, fields)
    problem = case_input_problem(case)
    if problem:
        field, reason = problem
        raise InvalidInput(f"{_flag(field)}: {reason}" if field else f"the case {reason}")
    return case


def _validated_flags(model, fields: dict):
    """Validate `fields`; on error, name the flag the user typed, not the model field."""
    from pydantic import ValidationError

    from escalator.domain.errors import describe_validation_error

    try:
        return model.model_validate(fields)
    except ValidationError as error:
        message = describe_validation_error(error)
        field, _, reason = message.partition(": ")
        raise InvalidInput(f"{_flag(field)}: {reason}") from None


def _flag(field: str) -> str:
    """The flag for a model field: `customer.email` -> `--customer-email`, `note.steps_taken[0]`
    -> `--tried` (a repeated flag's index is dropped)."""
    field = re.sub(r"\[\d+\]", "", field)
    return _FLAGS.get(field) or "--" + field.replace(".", "-").replace("_", "-")


def _flag_message(problem: str) -> str:
    """`note.reason is required: ...` -> `--reason is required: ...`."""
    field, sep, rest = problem.partition(" ")
    return f"{_flag(field)}{sep}{rest}" if re.fullmatch(r"[a-z_.\[\]0-9]+", field) else problem


def _parse_time(text: str):
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"--until: {text!r} is not an ISO time like 2026-12-01T09:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _origin(text: str) -> str:
    from escalator.adapters.codec_server import check_origin

    try:
        return check_origin(text)
    except InvalidInput as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _settings(args: argparse.Namespace) -> TemporalSettings:
    settings = TemporalSettings.from_env()
    overrides = {}
    if args.address:
        overrides["address"] = args.address
    if args.namespace:
        overrides["namespace"] = args.namespace
    return TemporalSettings(**{**settings.__dict__, **overrides})


async def _connect(args: argparse.Namespace):
    from starter import EscalatorClient

    return await EscalatorClient.connect(_settings(args))


def _ui_link(args: argparse.Namespace, workflow_id: str) -> str:
    base = os.environ.get("ESCALATOR_UI_URL", "http://localhost:8233").rstrip("/")
    return f"{base}/namespaces/{_settings(args).namespace}/workflows/{workflow_id}"


# -- output -----------------------------------------------------------------------


def _say(line: str, *, file=None) -> None:
    """Print one line that may hold case text or echo input: newlines show as `\\n`."""
    print(terminal_safe(line), file=file or sys.stdout)


def _json(text: str) -> str:
    """`--json` output: the same JSON, with control and format characters `\\u`-escaped."""
    return json_terminal_safe(text)


# -- entry point ------------------------------------------------------------------


def run(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130
    except EscalatorError as error:
        _say(f"escalator: {error}", file=sys.stderr)
        return _exit_code(error)


def _exit_code(error: EscalatorError) -> int:
    from escalator.adapters.temporal_client import TemporalUnavailable
    from escalator.cli.report import LedgerUnreadable
    from starter import ActionRefused

    if isinstance(error, ActionRefused):
        return EXIT_REFUSED
    if isinstance(error, (TemporalUnavailable, LedgerUnreadable)):
        return EXIT_UNAVAILABLE
    return EXIT_INVALID


def main() -> None:
    code = run()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter finalization: the SDK's native threads can abort a short
    # process at exit (sdk-python #300), turning a success into exit code 134.
    os._exit(code)


if __name__ == "__main__":
    main()
