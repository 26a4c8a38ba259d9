"""`escalator review`: the monthly escalation review, on a Temporal Schedule.

- `schedule` creates the schedule, or updates it if it exists. Each run starts
  `MonthlyReviewWorkflow` on the case task queue, which mails last month's report
  (docs/review.md). `--backfill N` also asks Temporal to run the schedule over the
  last N months' schedule times, so each of those months is reviewed (again).
- `show` prints the schedule's spec, its next runs and its recent ones.
- `delete` removes the schedule (runs already started finish; mail sent stays sent).

Every flag is checked before connecting, and each bad one is a one-line error naming
the flag and the fix (exit 2); an unreachable Temporal exits 3.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from datetime import UTC, datetime, timedelta

from escalator.domain.errors import InvalidInput
from escalator.domain.review import (
    DEFAULT_SCHEDULE_ID,
    REVIEW_WORKFLOW_TYPE,
    ReviewInput,
    cron_problem,
    months_back,
    months_before,
    previous_month,
    time_zone_problem,
)
from escalator.domain.terminal_text import terminal_safe

MAX_BACKFILL_MONTHS = 120
# A run missed while Temporal was down is still started if it is this late at most;
# an older one is better regenerated on purpose, with --backfill.
CATCHUP_WINDOW = timedelta(days=7)
NEXT_RUNS_SHOWN = 3
_SCHEDULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def add_arguments(review: argparse.ArgumentParser, parser_class) -> None:
    actions = review.add_subparsers(dest="review_command", required=True, parser_class=parser_class)
    schedule = actions.add_parser(
        "schedule",
        help="create or update the schedule that mails last month's review",
        description="create or update the schedule that mails last month's review",
        epilog='example:\n  escalator review schedule --cron "0 9 1 * *" '
        "--timezone Europe/Berlin --to supervisors@example.com --backfill 3",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    schedule.add_argument(
        "--cron", action="append", required=True, metavar="EXPR",
        help='when to run, in --timezone, e.g. "0 9 1 * *" (repeat for more)',
    )  # fmt: skip
    schedule.add_argument(
        "--timezone", required=True, metavar="TZ",
        help="IANA time zone for the cron and the month boundaries, e.g. Europe/Berlin",
    )  # fmt: skip
    schedule.add_argument(
        "--to", action="append", required=True, metavar="ADDR", help="recipient (repeat)"
    )
    schedule.add_argument("--team", help="only cases that passed through this team's tier")
    schedule.add_argument("--account", help="only this account's cases")
    schedule.add_argument("--backfill", metavar="N", help="also review the last N whole months now")
    schedule.add_argument("--schedule-id", default=DEFAULT_SCHEDULE_ID, help="(monthly-review)")
    for name, help in (("show", "show the schedule"), ("delete", "delete the schedule")):
        action = actions.add_parser(name, help=help, description=help)
        action.add_argument("--schedule-id", default=DEFAULT_SCHEDULE_ID, help="(monthly-review)")


@dataclasses.dataclass(frozen=True)
class Plan:
    """What `review schedule` will ask of Temporal, every flag checked."""

    schedule_id: str
    crons: tuple[str, ...]
    review: ReviewInput
    backfill: int | None


def plan(args: argparse.Namespace) -> Plan:
    """The checked flags; InvalidInput (one line naming the flag) on the first bad one."""
    from escalator.domain.policy import check_email

    schedule_id = _schedule_id(args.schedule_id)
    problem = time_zone_problem(args.timezone)
    if problem:
        raise InvalidInput(f"--timezone: {problem}")
    for expression in args.cron:
        problem = cron_problem(expression)
        if problem:
            raise InvalidInput(f"--cron: {problem}")
    recipients = []
    for address in args.to:
        try:
            recipients.append(check_email(address))
        except ValueError as error:
            raise InvalidInput(f"--to: {error}") from None
    for flag, value in (("--team", args.team), ("--account", args.account)):
        if value is not None and not value.strip():
            raise InvalidInput(f"{flag}: must not be empty; leave it out for every case")
    from pydantic import ValidationError

    from escalator.domain.errors import describe_validation_error

    try:
        review = ReviewInput(
            recipients=tuple(recipients),
            timezone=args.timezone,
            team=args.team,
            account=args.account,
        )
    except ValidationError as error:  # e.g. too many recipients
        field, _, reason = describe_validation_error(error).partition(": ")
        flag = {"recipients": "--to"}.get(field, f"--{field}")
        raise InvalidInput(f"{flag}: {reason}") from None
    return Plan(schedule_id, tuple(" ".join(c.split()) for c in args.cron), review,
                _backfill(args.backfill))  # fmt: skip


def _schedule_id(text: str) -> str:
    if not _SCHEDULE_ID.fullmatch(text):
        raise InvalidInput(
            f"--schedule-id: {text!r} is not valid: use up to 100 letters, digits, '.', '_' "
            "or '-', e.g. monthly-review"
        )
    return text


def _backfill(text: str | None) -> int | None:
    if text is None:
        return None
    value = text.strip()
    if not value.isdigit() or int(value) < 1:
        raise InvalidInput(
            f"--backfill: {text!r} is not a positive whole number of months, e.g. --backfill 3"
        )
    if int(value) > MAX_BACKFILL_MONTHS:
        raise InvalidInput(
            f"--backfill: {int(value)} months is more than {MAX_BACKFILL_MONTHS}; "
            "backfill fewer months at a time"
        )
    return int(value)


def build_schedule(plan: Plan, task_queue: str):
    """The Temporal Schedule for `plan`: its cron in its time zone, starting the review."""
    from temporalio.client import (
        Schedule,
        ScheduleActionStartWorkflow,
        ScheduleOverlapPolicy,
        SchedulePolicy,
        ScheduleSpec,
        ScheduleState,
    )

    return Schedule(
        action=ScheduleActionStartWorkflow(
            REVIEW_WORKFLOW_TYPE,
            plan.review,
            # Temporal appends each run's scheduled time to this id.
            id=plan.schedule_id,
            task_queue=task_queue,
            # The activity gives up after a day; the run cannot outlive it by much.
            execution_timeout=timedelta(hours=25),
            static_summary=f"monthly review ({plan.review.timezone})",
        ),
        spec=ScheduleSpec(cron_expressions=list(plan.crons), time_zone_name=plan.review.timezone),
        # A run still going when the next one is due (a day-long SMTP outage on a
        # daily cron) is left to finish: the next one is skipped, not stacked.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW),
        state=ScheduleState(note="escalator review schedule"),
    )


def backfill_for(plan: Plan, now: datetime):
    """The backfill over the last `plan.backfill` months' schedule times (or None).

    Every run reviews the month before its scheduled time, so the runs that review the
    N months before this one are those scheduled from the 1st of the month N-1 months
    ago (local time) up to now. They may overlap each other: ALLOW_ALL runs them all."""
    if plan.backfill is None:
        return None
    from temporalio.client import ScheduleBackfill, ScheduleOverlapPolicy

    start, end = months_back(now, plan.review.timezone, plan.backfill)
    return ScheduleBackfill(start_at=start, end_at=end, overlap=ScheduleOverlapPolicy.ALLOW_ALL)


async def run(args: argparse.Namespace, connect) -> int:
    if args.review_command == "schedule":
        checked = plan(args)  # before connecting
        escalator = await connect(args)
        return await _schedule(escalator, checked)
    schedule_id = _schedule_id(args.schedule_id)
    escalator = await connect(args)
    handle = escalator.client.get_schedule_handle(schedule_id)
    if args.review_command == "delete":
        await _call(handle.delete(), schedule_id)
        print(terminal_safe(f"deleted schedule {schedule_id}"))
        return 0
    description = await _call(handle.describe(), schedule_id)
    for line in await describe_lines(description, escalator.client):
        print(terminal_safe(line))
    return 0


async def _schedule(escalator, plan: Plan) -> int:
    from temporalio.client import ScheduleAlreadyRunningError, ScheduleUpdate

    client = escalator.client
    schedule = build_schedule(plan, escalator.task_queue)
    now = datetime.now(UTC)
    backfill = backfill_for(plan, now)
    try:
        handle = await _call(
            client.create_schedule(
                plan.schedule_id, schedule, backfill=[backfill] if backfill else []
            ),
            plan.schedule_id,
        )
        verb = "created"
    except ScheduleAlreadyRunningError:
        handle = client.get_schedule_handle(plan.schedule_id)

        def updated(previous):
            # Keep what an operator set in the Web UI: paused, and its note.
            state = previous.description.schedule.state
            return ScheduleUpdate(schedule=dataclasses.replace(schedule, state=state))

        await _call(handle.update(updated), plan.schedule_id)
        if backfill:
            await _call(handle.backfill(backfill), plan.schedule_id)
        verb = "updated"
    review = plan.review
    who = ", ".join(review.recipients)
    scope = "".join(
        f", {name} {value}" for name, value in (("team", review.team), ("account", review.account))
        if value
    )  # fmt: skip
    print(terminal_safe(
        f"{verb} schedule {plan.schedule_id}: {' | '.join(plan.crons)} ({review.timezone}) "
        f"mails last month's review to {who}{scope}"
    ))  # fmt: skip
    description = await _call(handle.describe(), plan.schedule_id)
    upcoming = description.info.next_action_times[:1]
    if upcoming:
        at = upcoming[0]
        month = previous_month(at, review.timezone).label
        print(terminal_safe(f"  next run {_local(at, review.timezone)}: reviews {month}"))
    if backfill:
        months = _backfilled_months(plan, now)
        print(terminal_safe(
            f"  backfilling {plan.backfill} month{'s' if plan.backfill != 1 else ''}: "
            f"{', '.join(months)} (each mails when the worker runs it)"
        ))  # fmt: skip
    return 0


def _backfilled_months(plan: Plan, now: datetime) -> list[str]:
    """The months the backfill regenerates, oldest first (for a monthly cron)."""
    return [m.label for m in months_before(now, plan.review.timezone, plan.backfill or 0)]


async def describe_lines(description, client) -> list[str]:
    """`review show`: the schedule's spec, action, state and runs, one fact a line."""
    from temporalio.client import ScheduleActionStartWorkflow

    schedule, info = description.schedule, description.info
    spec, lines = schedule.spec, [f"schedule {description.id}"]
    zone = spec.time_zone_name or "UTC"
    crons = list(spec.cron_expressions) or [_calendar_text(c) for c in spec.calendars]
    lines.append(f"  when      {' | '.join(crons) or '(no calendar)'} ({zone})")
    action = schedule.action
    if isinstance(action, ScheduleActionStartWorkflow):
        lines.append(f"  starts    {action.workflow} on {action.task_queue}")
        review = await _review_input(action, client)
        if review is not None:
            scope = ", ".join(
                f"{k} {v}" for k, v in (("team", review.team), ("account", review.account)) if v
            )
            lines.append(f"  mails to  {', '.join(review.recipients)}")
            lines.append(f"  months in {review.timezone}; cases: {scope or 'all'}")
    state = schedule.state
    lines.append(f"  state     {'paused' if state.paused else 'active'}"
                 + (f" ({state.note})" if state.note else ""))  # fmt: skip
    for at in info.next_action_times[:NEXT_RUNS_SHOWN]:
        lines.append(f"  next      {_local(at, zone)}")
    if not info.recent_actions:
        lines.append("  recent    none yet")
    for result in info.recent_actions[-10:]:
        workflow_id = getattr(result.action, "workflow_id", "")
        lines.append(
            f"  ran       scheduled {_local(result.scheduled_at, zone)}, started "
            f"{_local(result.started_at, zone)}: {workflow_id}"
        )
    lines.append(
        f"  actions   {info.num_actions} run, {info.num_actions_skipped_overlap} skipped "
        f"(overlap), {info.num_actions_missed_catchup_window} missed (catch-up window)"
    )
    return lines


async def _review_input(action, client) -> ReviewInput | None:
    # A described schedule holds its arguments as raw payloads.
    try:
        values = await client.data_converter.decode(list(action.args), [ReviewInput])
        return values[0] if values and isinstance(values[0], ReviewInput) else None
    except Exception:  # another program's schedule under this id: show the rest
        return None


# The server keeps a cron expression as calendar ranges; a field's full range reads "*".
_FULL_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


def _calendar_text(calendar) -> str:
    """A calendar spec as cron-like text, e.g. `0 9 1 * *`."""
    if calendar.comment:
        return calendar.comment

    def ranges(items, full: tuple[int, int]) -> str:
        parts = []
        for r in items:
            end = max(r.end, r.start)
            if (r.start, end) == full and r.step <= 1:
                return "*"
            text = str(r.start) if end == r.start else f"{r.start}-{end}"
            parts.append(text + (f"/{r.step}" if r.step > 1 else ""))
        return ",".join(parts) or "*"

    fields = (calendar.minute, calendar.hour, calendar.day_of_month, calendar.month,
              calendar.day_of_week)  # fmt: skip
    return " ".join(ranges(f, full) for f, full in zip(fields, _FULL_RANGES, strict=True))


def _local(at: datetime, zone: str) -> str:
    from zoneinfo import ZoneInfo

    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


async def _call(awaitable, schedule_id: str):
    """Temporal's answer; its refusals as one line (exit 2), not a traceback."""
    from temporalio.client import ScheduleAlreadyRunningError
    from temporalio.service import RPCError, RPCStatusCode

    try:
        return await awaitable
    except ScheduleAlreadyRunningError:
        raise
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise InvalidInput(
                f"schedule {schedule_id!r} not found; create it with `escalator review "
                'schedule --cron "0 9 1 * *" --timezone ... --to ...`'
            ) from None
        if error.status == RPCStatusCode.UNAVAILABLE:
            from escalator.adapters.temporal_client import TemporalUnavailable

            raise TemporalUnavailable(
                f"Temporal is unavailable: {' '.join(error.message.split())[:200]}"
            ) from None
        raise InvalidInput(
            f"schedule {schedule_id}: Temporal refused it: {' '.join(error.message.split())[:300]}"
        ) from None
