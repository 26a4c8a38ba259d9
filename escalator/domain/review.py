"""The monthly review: which month a run reviews, and the models that cross Temporal.

`MonthlyReviewWorkflow` (workflows/review.py) runs from a Temporal Schedule. The
month it reviews comes from the run's *scheduled* time, never from the clock it
happens to run at, so that a backfill of past schedule times regenerates those past
months and a run delayed by an outage still reviews the month it was meant for.

Pure code: safe to import in workflow code (zoneinfo only reads the tz database).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from escalator.domain.policy import EmailAddress
from escalator.domain.records import Model

# Names Temporal matches across processes (see escalator/domain/names.py): never rename.
REVIEW_WORKFLOW_TYPE = "MonthlyReviewWorkflow"
SEND_MONTHLY_REVIEW = "send_monthly_review"
DEFAULT_SCHEDULE_ID = "monthly-review"
# Set by Temporal on every run a schedule starts: the run's nominal (scheduled) time.
SCHEDULED_START_TIME = "TemporalScheduledStartTime"

MAX_RECIPIENTS = 50


def time_zone_problem(name: str) -> str | None:
    """Why `name` is not an IANA time zone, or None if it is one."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a key such as "Europe" names a directory of zones, not a zone.
        return f"{name!r} is not a time zone, e.g. Europe/Berlin"
    return None


class ReviewInput(Model):
    """The schedule's workflow input: who gets the review, and in which time zone the
    months begin and end."""

    recipients: tuple[EmailAddress, ...] = Field(min_length=1, max_length=MAX_RECIPIENTS)
    timezone: str = "UTC"
    team: str | None = None  # cases that passed through this team's tier
    account: str | None = None  # one customer account's cases

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        problem = time_zone_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class ReviewMonth(Model):
    """A calendar month in a time zone, as the UTC instants it begins and ends at."""

    key: str  # "2026-11"
    label: str  # "November 2026"
    timezone: str
    start: datetime  # the first day, 00:00 local (as UTC): included
    end: datetime  # the next month's first day, 00:00 local (as UTC): excluded


class ReviewRequest(Model):
    """The activity's input: one month's review, for these recipients."""

    review: ReviewInput
    month: ReviewMonth
    message_id: str  # stable for this run and month, so a retried send is recognisable
    run: str = ""  # the workflow id of the run, for the X-Escalator-Run header


class ReviewResult(Model):
    month: str  # "2026-11"
    cases: int
    recipients: tuple[str, ...]
    message_id: str


_MONTHS = (
    "January February March April May June July August September October November December"
).split()


def _zone(name: str) -> ZoneInfo:
    zone = ZoneInfo(name)
    # Inside the workflow sandbox a module that is not passed through sees a proxy of
    # ZoneInfo that datetime refuses as a tzinfo; a bound method's __self__ is the real
    # zone (the same trick as escalator/domain/business_time.py).
    real: ZoneInfo = zone.utcoffset.__self__  # type: ignore[attr-defined]
    return real


def previous_month(scheduled: datetime, timezone: str) -> ReviewMonth:
    """The calendar month before the one `scheduled` falls in, in `timezone`:
    [its first day 00:00, this month's first day 00:00), local time."""
    if scheduled.tzinfo is None or scheduled.utcoffset() is None:
        raise ValueError(f"scheduled must be timezone-aware; got {scheduled.isoformat()}")
    zone = _zone(timezone)
    local = scheduled.astimezone(zone)
    year, month = (local.year, local.month - 1) if local.month > 1 else (local.year - 1, 12)
    # Local midnight on the 1st exists in every zone we know of (DST moves happen at
    # night but not at 00:00 on the 1st); fold=0 picks the earlier reading if not.
    start = datetime(year, month, 1, tzinfo=zone)
    end = datetime(local.year, local.month, 1, tzinfo=zone)
    return ReviewMonth(
        key=f"{year:04d}-{month:02d}",
        label=f"{_MONTHS[month - 1]} {year}",
        timezone=timezone,
        start=start.astimezone(UTC),
        end=end.astimezone(UTC),
    )


def months_back(now: datetime, timezone: str, count: int) -> tuple[datetime, datetime]:
    """[from, to) that holds the scheduled times of the runs reviewing the last `count`
    whole months before `now`'s month (in `timezone`): from the first day 00:00 of the
    month `count - 1` months before `now`'s month, to `now`. A monthly schedule fires
    once in each of those months, and each of those runs reviews the month before it."""
    if count < 1:
        raise ValueError("count must be at least 1")
    zone = _zone(timezone)
    local = now.astimezone(zone)
    index = local.year * 12 + (local.month - 1) - (count - 1)
    start = datetime(index // 12, index % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(UTC), now.astimezone(UTC)


def months_before(now: datetime, timezone: str, count: int) -> list[ReviewMonth]:
    """The `count` whole months before `now`'s month in `timezone`, oldest first."""
    local = now.astimezone(_zone(timezone))
    index = local.year * 12 + (local.month - 1)
    months = []
    for back in range(count, 0, -1):
        first = index - back + 1  # the month after the reviewed one
        at = datetime(first // 12, first % 12 + 1, 1, 12, tzinfo=_zone(timezone))
        months.append(previous_month(at, timezone))
    return months


def review_message_id(workflow_id: str, run_id: str, month: ReviewMonth) -> str:
    """`<review.2026-11.3f9c0a1b2c3d4e5f@escalator>`: the month, and a digest of the run.

    Every attempt of one run's send carries the same id, so a receiver can drop a
    retried duplicate. A backfill that regenerates the month is a new run of the same
    workflow id, so its mail gets a new id and is not mistaken for a duplicate. A
    digest keeps the header on one line (SMTP folds at 78 columns, and a folded id
    arrives with a leading blank); the run itself is in X-Escalator-Run."""
    digest = hashlib.blake2b(f"{workflow_id}/{run_id}".encode(), digest_size=8).hexdigest()
    return f"<review.{month.key}.{digest}@escalator>"


def review_subject(month: ReviewMonth, cases: int) -> str:
    return f"Escalation review: {month.label} ({cases} case{'' if cases == 1 else 's'})"


# -- cron --------------------------------------------------------------------------------

CRON_SHORTHANDS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
_MONTH_NAMES = {m[:3].lower(): i for i, m in enumerate(_MONTHS, start=1)}
_DAY_NAMES = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
# (name, lowest, highest, names allowed): the five fields of a standard cron expression.
_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTH_NAMES),
    ("day of week", 0, 7, _DAY_NAMES),  # 0 and 7 are both Sunday
)
_CRON_EXAMPLE = '"0 9 1 * *" (09:00 on the 1st of every month)'


def cron_problem(expression: str) -> str | None:
    """Why `expression` is not a five-field cron expression (minute hour day-of-month
    month day-of-week, or a shorthand such as @monthly), or None if it is one.

    Checked before anything is sent to Temporal, so a typo is one line naming the
    field rather than a server error; Temporal parses it again."""
    text = " ".join(expression.split())
    if text.lower() in CRON_SHORTHANDS:
        return None
    fields = text.split(" ") if text else []
    if len(fields) != len(_CRON_FIELDS):
        return (
            f"{expression!r} has {len(fields)} field{'' if len(fields) == 1 else 's'}; a cron "
            f"expression has 5 (minute hour day-of-month month day-of-week), e.g. {_CRON_EXAMPLE}"
        )
    for value, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for item in value.split(","):
            if not _cron_item_ok(item.lower(), low, high, names):
                return (
                    f"{expression!r}: {name} {value!r} is not valid (use *, a number from "
                    f"{low} to {high}, a range a-b, a list a,b or a step */n), e.g. {_CRON_EXAMPLE}"
                )
    return None


def _cron_item_ok(item: str, low: int, high: int, names: dict[str, int]) -> bool:
    base, slash, step = item.partition("/")
    if slash and not (step.isdigit() and int(step) >= 1):
        return False
    if base in ("*", "?"):
        return True
    start, dash, end = base.partition("-")
    bounds = [start, end] if dash else [start]
    values = []
    for bound in bounds:
        if bound.isdigit():
            values.append(int(bound))
        elif bound in names:
            values.append(names[bound])
        else:
            return False
    if not all(low <= v <= high for v in values):
        return False
    return not dash or values[0] <= values[1]
