"""Business hours: SLA clocks that only run while a team is at work.

A calendar is plain data, written in a policy as:

    calendar:
      timezone: Europe/Berlin
      hours: {mon: ["09:00-17:00"], tue: ["09:00-17:00"], wed: ["09:00-17:00"],
              thu: ["09:00-17:00"], fri: ["09:00-16:00"]}
      holidays: [2026-12-24, 2026-12-25]

  timezone  an IANA name; hours and holidays are local wall-clock times in it.
  hours     per weekday (mon..sun), one or more "HH:MM-HH:MM" ranges; "24:00" may end
            a range. A weekday that is missing (or empty) is closed. Leaving `hours`
            out altogether means open around the clock on every day that is not a
            holiday.
  holidays  whole local days that are closed.

The calendar with neither hours nor holidays is `ALWAYS_OPEN` (24x7); its clocks are
plain elapsed time.

Everything here runs inside Temporal workflow code, so it is pure: no clock reads, no
randomness, no I/O beyond zoneinfo's own look-ups. All arithmetic is on UTC instants
and timedeltas, exact to the microsecond.

Daylight saving time. A range is open from the first instant the local clock reads
its start until the first instant it reads its end (real elapsed time, never wall
time). So a 09:00-17:00 day is 8 h on every day whose change happens at night; a
01:00-03:00 range on the night Europe/Berlin springs forward is 1 h; 00:00-04:00 on
the night it falls back is 5 h; a start inside the skipped hour opens when the clock
jumps past it; a range lying entirely inside the repeated hour counts only its first
pass. "24:00" is the next local midnight.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, field_validator

from escalator.domain.durations import format_duration

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
# Index = date.weekday(), so WEEKDAYS[day.weekday()] is that day's key.
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES: dict[str, Weekday] = {
    **{day: day for day in WEEKDAYS},
    "monday": "mon",
    "tuesday": "tue",
    "wednesday": "wed",
    "thursday": "thu",
    "friday": "fri",
    "saturday": "sat",
    "sunday": "sun",
}

_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_MINUTES_PER_DAY = 24 * 60
_ONE_DAY = timedelta(days=1)
_ONE_MICROSECOND = timedelta(microseconds=1)
# add_business_time gives up after this much calendar time. A calendar with any hours
# opens every week, so only an absurd duration or years of holidays get here; the
# bound keeps a workflow task from spinning on them.
SEARCH_YEARS = 20
_SEARCH_DAYS = SEARCH_YEARS * 366


Holiday = Annotated[date, BeforeValidator(lambda value: _holiday(value))]


class BusinessCalendar(BaseModel):
    """When SLA clocks run. The default (no hours, no holidays) is 24x7."""

    # Unknown keys are errors, as everywhere in a policy: `holiday:` must not
    # silently leave Christmas open.
    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = Field(
        default="UTC", description="IANA time zone the hours and holidays are read in."
    )
    hours: dict[Weekday, tuple[str, ...]] = Field(
        default_factory=dict,
        description='Open ranges per weekday, e.g. {mon: ["09:00-17:00"]}; a missing day '
        "is closed; no hours at all means open around the clock.",
    )
    holidays: tuple[Holiday, ...] = Field(default=(), description="Whole local days off.")

    # Derived from the fields above in model_post_init; not part of the data.
    _week: tuple[tuple[tuple[int, int], ...], ...] = PrivateAttr(default=())
    _closed_days: frozenset[date] = PrivateAttr(default=frozenset())

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            # OSError: a key such as "Europe" names a directory of zones, not a zone.
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin"
            ) from None
        return value

    @field_validator("hours", mode="before")
    @classmethod
    def _day_keys(cls, value: object) -> object:
        if value is None:
            return {}
        if not isinstance(value, dict):
            return value  # pydantic reports the wrong type
        days: dict[str, object] = {}
        for key, ranges in value.items():
            day = _DAY_NAMES.get(key.strip().lower()) if isinstance(key, str) else None
            if day is None:
                raise ValueError(
                    f"unknown weekday {key!r}; use mon, tue, wed, thu, fri, sat or sun"
                )
            if day in days:
                raise ValueError(f"{day} is given twice; list all its ranges under one key")
            # `sat:` with nothing after it reads as None in YAML: closed, like [].
            # A single range may be written without the list brackets.
            days[day] = () if ranges is None else (ranges,) if isinstance(ranges, str) else ranges
        return days

    @field_validator("hours")
    @classmethod
    def _ranges_are_sane(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        if value and not any(value.values()):
            raise ValueError("calendar has no business hours; add hours or remove the calendar")
        canonical: dict[str, tuple[str, ...]] = {}
        for day in WEEKDAYS:  # weekday order, so a dumped calendar reads naturally
            parsed = sorted(_parse_range(day, text) for text in value.get(day, ()))
            for (start, end), (next_start, next_end) in pairwise(parsed):
                if next_start < end:
                    raise ValueError(
                        f"{day}: {_format_range(start, end)} and "
                        f"{_format_range(next_start, next_end)} overlap; merge them into one "
                        "range or move one"
                    )
            if parsed:  # an empty day is closed, the same as leaving it out
                canonical[day] = tuple(_format_range(s, e) for s, e in parsed)
        return canonical

    @field_validator("holidays")
    @classmethod
    def _sorted_holidays(cls, value: tuple[date, ...]) -> tuple[date, ...]:
        return tuple(sorted(set(value)))

    def model_post_init(self, context: object, /) -> None:
        # Parsed once here rather than on every day a clock walks through.
        full_day = ((0, _MINUTES_PER_DAY),)
        self._week = tuple(
            tuple(_parse_range(day, text) for text in self.hours.get(day, ()))
            if self.hours
            else full_day
            for day in WEEKDAYS
        )
        self._closed_days = frozenset(self.holidays)

    # pydantic's frozen hash would choke on the dict; hash what equality compares.
    def __hash__(self) -> int:
        return hash((self.timezone, tuple(self.hours.items()), self.holidays))

    @property
    def always_open(self) -> bool:
        """True for the 24x7 calendar (no hours, no holidays): business time is real time."""
        return not self.hours and not self.holidays

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.timezone)

    def ranges_on(self, day: date) -> tuple[tuple[int, int], ...]:
        """Open ranges of a local day as (start, end) minutes after midnight; () if closed."""
        # Read directly: this runs for every day walked. Never None once validated.
        private: dict[str, Any] = self.__pydantic_private__  # type: ignore[assignment]
        if day in private["_closed_days"]:
            return ()
        week: tuple[tuple[tuple[int, int], ...], ...] = private["_week"]
        return week[day.weekday()]


ALWAYS_OPEN = BusinessCalendar()


def _holiday(value: object) -> object:
    """A holiday as a date; a string must be an ISO date such as 2026-12-24.

    Names the bad value and the expected shape, which pydantic's message does not.
    """
    if isinstance(value, date):
        return value  # a datetime too: pydantic accepts it only at midnight
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError as error:
            why = "" if str(error).startswith("Invalid isoformat") else f" ({error})"
            raise ValueError(
                f"{value!r} is not a valid date{why}; write it as YYYY-MM-DD, e.g. 2026-12-24"
            ) from None
    raise ValueError(f"{value!r} is not a valid date; write it as YYYY-MM-DD, e.g. 2026-12-24")


def _parse_range(day: str, text: object) -> tuple[int, int]:
    if not isinstance(text, str) or not (match := _RANGE.match(text)):
        raise ValueError(f"{day}: {text!r} is not a time range; write it like 09:00-17:00")
    start_h, start_m, end_h, end_m = (int(part) for part in match.groups())
    for hour, minute in ((start_h, start_m), (end_h, end_m)):
        if hour > 24 or minute > 59 or (hour == 24 and minute):
            raise ValueError(f"{day}: {text!r} has a time that does not exist; use 00:00 to 24:00")
    start, end = start_h * 60 + start_m, end_h * 60 + end_m
    if start >= end:
        raise ValueError(
            f"{day}: {text.strip()!r} does not end after it starts; a range cannot cross "
            "midnight, so split a night shift, e.g. 22:00-24:00 and 00:00-06:00 the next day"
        )
    return start, end


def _format_range(start: int, end: int) -> str:
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


# -- the engine ---------------------------------------------------------------


def _zone(key: str) -> ZoneInfo:
    zone = ZoneInfo(key)  # cached by key, so this is cheap
    # Imported inside Temporal's workflow sandbox without being passed through, this
    # module sees a restricted proxy of ZoneInfo whose instances datetime refuses as a
    # tzinfo. A bound method's __self__ is the real zone, here and outside the sandbox.
    real: ZoneInfo = zone.utcoffset.__self__  # type: ignore[attr-defined]
    return real


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"{name} must be timezone-aware, e.g. datetime(..., tzinfo=UTC); got naive "
            f"{moment.isoformat()}"
        )
    return moment.astimezone(UTC)


# Deadlines are recomputed after every change to a case, over the same few days; the
# answer depends only on the arguments, so a bounded cache is safe and deterministic.
@lru_cache(maxsize=8192)
def _first_reading(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first UTC instant at which the local clock reads `wall` or later.

    Ordinary wall times have one instant. A repeated one (autumn) gets its first pass,
    fold=0. A skipped one (spring) gets the moment the clock jumps past it.
    """
    local = wall.replace(tzinfo=zone)
    offset = local.utcoffset()
    if offset is not None and local.replace(fold=1).utcoffset() == offset:
        return (wall - offset).replace(tzinfo=UTC)  # the usual case: one reading
    first, second = sorted(
        (
            wall.replace(tzinfo=zone, fold=0).astimezone(UTC),
            wall.replace(tzinfo=zone, fold=1).astimezone(UTC),
        )
    )
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # Skipped: the clock reads before `wall` at `first` and after it at `second`; the
    # jump is in between. Bisect to the microsecond (about 32 steps for an hour), which
    # lands exactly on the transition.
    while second - first > _ONE_MICROSECOND:
        middle = first + (second - first) // 2
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            second = middle
        else:
            first = middle
    return second


def _plus_days(day: date, days: int) -> date:
    # Saturate at the ends of the calendar instead of overflowing in year 9999.
    try:
        return day + timedelta(days=days)
    except OverflowError:
        return date.max if days > 0 else date.min


def _wall(day: date, minutes: int) -> datetime:
    # 24:00 is midnight of the next day.
    return datetime.combine(day, time()) + timedelta(minutes=minutes)


def _raw_intervals(
    start: datetime, calendar: BusinessCalendar, last_day: date
) -> Iterator[tuple[datetime, datetime]]:
    """Open (from, to) UTC intervals ending after `start`, in order, day by day through
    the local day `last_day`; clipped at `start`, not merged across range boundaries."""
    zone = calendar.zone
    ranges_on = calendar.ranges_on
    # A day's ranges end no later than the next local midnight, so the day before
    # start's local date is the earliest that can still reach past start.
    day = _plus_days(start.astimezone(zone).date(), -1)
    # date.max itself is never walked: its 24:00 is not a representable datetime.
    while day <= last_day and day < date.max:
        for begin, end in ranges_on(day):
            opens = _first_reading(_wall(day, begin), zone)
            closes = _first_reading(_wall(day, end), zone)
            if closes > start and closes > opens:  # a range inside a skipped hour is empty
                yield max(opens, start), closes
        day += _ONE_DAY


def open_intervals(
    start: datetime, end: datetime, calendar: BusinessCalendar = ALWAYS_OPEN
) -> Iterator[tuple[datetime, datetime]]:
    """The open (from, to) UTC intervals within [start, end], in order.

    Intervals are non-empty, disjoint and maximal: ranges that touch (17:00-24:00 then
    00:00-08:00 the next day) come out as one. Both bounds must be timezone-aware.
    """
    start, end = _utc(start, "start"), _utc(end, "end")
    if end <= start:
        return
    if calendar.always_open:
        yield start, end
        return
    # One local day past end's date covers ranges that a fall-back night moves there.
    last_day = _plus_days(end.astimezone(calendar.zone).date(), 1)
    pending: tuple[datetime, datetime] | None = None
    for opens, closes in _raw_intervals(start, calendar, last_day):
        if opens >= end:
            break
        closes = min(closes, end)
        if pending is not None and pending[1] == opens:
            pending = (pending[0], closes)
            continue
        if pending is not None:
            yield pending
        pending = (opens, closes)
    if pending is not None:
        yield pending


def business_time_between(
    start: datetime, end: datetime, calendar: BusinessCalendar = ALWAYS_OPEN
) -> timedelta:
    """Open time within [start, end]; zero if end <= start. Exact to the microsecond.

    Inverse of add_business_time:
        business_time_between(s, add_business_time(s, d, c), c) == d
    """
    return sum((to - fro for fro, to in open_intervals(start, end, calendar)), timedelta(0))


def add_business_time(
    start: datetime, duration: timedelta, calendar: BusinessCalendar = ALWAYS_OPEN
) -> datetime:
    """The earliest instant t >= start with exactly `duration` of open time in [start, t], in UTC.

    A start outside business hours begins counting at the next opening. A duration
    that runs out exactly at a closing time returns that closing time, not the next
    opening. Zero returns start itself (as UTC). Properties, for any calendar c:
      inverse     business_time_between(s, add_business_time(s, d, c), c) == d
      monotonic   d1 <= d2  implies  add_business_time(s, d1, c) <= add_business_time(s, d2, c)
      additive    add_business_time(add_business_time(s, a, c), b, c)
                    == add_business_time(s, a + b, c)
      tight       for d > 0 the microsecond before the result is open
      24x7        add_business_time(s, d, ALWAYS_OPEN) == s + d (real elapsed time)
    Raises ValueError for a naive start, a negative duration, or a result not reached
    within SEARCH_YEARS years of start.
    """
    start = _utc(start, "start")
    if duration < timedelta(0):
        raise ValueError(f"duration must not be negative, got -{format_duration(-duration)}")
    if duration == timedelta(0):
        return start
    if calendar.always_open:
        return start + duration  # UTC + timedelta: real time, DST cannot bend it
    remaining = duration
    last_day = _plus_days(start.astimezone(calendar.zone).date(), _SEARCH_DAYS)
    for opens, closes in _raw_intervals(start, calendar, last_day):
        if closes - opens >= remaining:
            return opens + remaining
        remaining -= closes - opens
    raise ValueError(
        f"cannot fit {format_duration(duration)} of business time within {SEARCH_YEARS} years of "
        f"{start.isoformat()}; shorten the duration or check the calendar's holidays"
    )
