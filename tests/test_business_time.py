"""Business time: worked examples, every error's wording, and properties over random calendars."""

from __future__ import annotations

import time as stopwatch
import uuid
from bisect import bisect_right
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
import yaml
from examples_budget import examples
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from escalator.domain.business_time import (
    ALWAYS_OPEN,
    WEEKDAYS,
    BusinessCalendar,
    add_business_time,
    business_time_between,
    open_intervals,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
US = timedelta(microseconds=1)


def calendar(timezone: str = "Europe/Berlin", **fields: object) -> BusinessCalendar:
    return BusinessCalendar.model_validate({"timezone": timezone, **fields})


def office_hours(timezone: str = "Europe/Berlin", **fields: object) -> BusinessCalendar:
    """Mon-Fri 09:00-17:00."""
    week = {day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
    return calendar(timezone, hours=week, **fields)


def at(zone: ZoneInfo, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=zone)


# -- worked examples ----------------------------------------------------------


def test_friday_afternoon_rolls_over_the_weekend():
    # 16:00-17:00 Friday is 1 h; the other 3 h run Monday 09:00-12:00.
    friday_4pm = at(BERLIN, 2026, 6, 5, 16)
    result = add_business_time(friday_4pm, timedelta(hours=4), office_hours())
    assert result == at(BERLIN, 2026, 6, 8, 12)
    assert result.tzinfo is UTC
    assert result.hour == 10  # 12:00 CEST
    # Two hours left on Friday leaves two for Monday: 11:00.
    friday_3pm = at(BERLIN, 2026, 6, 5, 15)
    assert add_business_time(friday_3pm, timedelta(hours=4), office_hours()) == at(
        BERLIN, 2026, 6, 8, 11
    )


def test_a_duration_that_ends_at_closing_time_returns_the_closing_time():
    friday_4pm = at(BERLIN, 2026, 6, 5, 16)
    assert add_business_time(friday_4pm, timedelta(hours=1), office_hours()) == at(
        BERLIN, 2026, 6, 5, 17
    )


def test_a_case_opened_on_saturday_starts_counting_at_monday_opening():
    saturday = at(BERLIN, 2026, 6, 6, 10, 30)
    monday_9am = at(BERLIN, 2026, 6, 8, 9)
    cal = office_hours()
    assert business_time_between(saturday, monday_9am, cal) == timedelta(0)
    assert add_business_time(saturday, timedelta(hours=1), cal) == at(BERLIN, 2026, 6, 8, 10)
    assert add_business_time(saturday, US, cal) == monday_9am + US
    assert list(open_intervals(saturday, monday_9am + timedelta(hours=1), cal)) == [
        (monday_9am, monday_9am + timedelta(hours=1))
    ]


def test_holidays_are_skipped():
    # 2025: Dec 24 Wed, Dec 25 Thu, Dec 26 Fri.
    tuesday_4pm = at(BERLIN, 2025, 12, 23, 16)
    plain = office_hours()
    festive = office_hours(holidays=["2025-12-24", "2025-12-25"])
    assert add_business_time(tuesday_4pm, timedelta(hours=2), plain) == at(BERLIN, 2025, 12, 24, 10)
    assert add_business_time(tuesday_4pm, timedelta(hours=2), festive) == at(
        BERLIN, 2025, 12, 26, 10
    )
    week = (at(BERLIN, 2025, 12, 22), at(BERLIN, 2025, 12, 27))
    assert business_time_between(*week, plain) == timedelta(hours=40)
    assert business_time_between(*week, festive) == timedelta(hours=24)


def test_a_split_day_skips_lunch():
    cal = calendar(hours={"mon": ["13:00-17:00", "08:00-12:00"]})  # any order
    monday = date(2026, 6, 8)

    def local(hour: int, minute: int = 0) -> datetime:
        return datetime.combine(monday, time(hour, minute), tzinfo=BERLIN)

    assert add_business_time(local(11), timedelta(hours=2), cal) == local(14)
    assert add_business_time(local(11), timedelta(hours=1), cal) == local(12)
    assert add_business_time(local(12, 30), timedelta(minutes=30), cal) == local(13, 30)
    assert business_time_between(local(0), local(23), cal) == timedelta(hours=8)
    assert list(open_intervals(local(0), local(23), cal)) == [
        (local(8), local(12)),
        (local(13), local(17)),
    ]


def test_ranges_that_touch_come_out_as_one_interval():
    cal = calendar(hours={"mon": ["17:00-24:00"], "tue": ["00:00-08:00", "08:00-09:00"]})
    intervals = list(open_intervals(at(BERLIN, 2026, 6, 8), at(BERLIN, 2026, 6, 10), cal))
    assert intervals == [(at(BERLIN, 2026, 6, 8, 17), at(BERLIN, 2026, 6, 9, 9))]
    assert add_business_time(at(BERLIN, 2026, 6, 8, 23), timedelta(hours=2), cal) == at(
        BERLIN, 2026, 6, 9, 1
    )


# Each calendar is open only on the weekday of the transition day, so the business
# time over that day is exactly the range's real length.
DST_RANGES = [
    # Europe/Berlin springs forward 2026-03-29 02:00 -> 03:00.
    ("Europe/Berlin", date(2026, 3, 29), "09:00-17:00", timedelta(hours=8)),
    ("Europe/Berlin", date(2026, 3, 29), "01:00-03:00", timedelta(hours=1)),
    ("Europe/Berlin", date(2026, 3, 29), "00:00-06:00", timedelta(hours=5)),
    ("Europe/Berlin", date(2026, 3, 29), "02:30-04:00", timedelta(hours=1)),  # opens at 03:00
    ("Europe/Berlin", date(2026, 3, 29), "02:00-03:00", timedelta(0)),  # all skipped
    ("Europe/Berlin", date(2026, 3, 29), "00:00-24:00", timedelta(hours=23)),
    # ...and falls back 2026-10-25 03:00 -> 02:00.
    ("Europe/Berlin", date(2026, 10, 25), "00:00-04:00", timedelta(hours=5)),
    ("Europe/Berlin", date(2026, 10, 25), "00:00-03:00", timedelta(hours=4)),
    ("Europe/Berlin", date(2026, 10, 25), "02:15-02:45", timedelta(minutes=30)),  # first pass
    ("Europe/Berlin", date(2026, 10, 25), "09:00-17:00", timedelta(hours=8)),
    ("Europe/Berlin", date(2026, 10, 25), "00:00-24:00", timedelta(hours=25)),
    # America/New_York springs forward 2026-03-08 02:00 -> 03:00.
    ("America/New_York", date(2026, 3, 8), "00:00-06:00", timedelta(hours=5)),
    ("America/New_York", date(2026, 3, 8), "01:30-02:30", timedelta(minutes=30)),
    ("America/New_York", date(2026, 3, 8), "00:00-24:00", timedelta(hours=23)),
    # ...and falls back 2026-11-01 02:00 -> 01:00.
    ("America/New_York", date(2026, 11, 1), "00:00-06:00", timedelta(hours=7)),
    ("America/New_York", date(2026, 11, 1), "01:00-02:00", timedelta(hours=2)),
    ("America/New_York", date(2026, 11, 1), "01:15-01:45", timedelta(minutes=30)),
    ("America/New_York", date(2026, 11, 1), "00:00-24:00", timedelta(hours=25)),
    # Australia/Lord_Howe moves by 30 minutes: 02:00 -> 01:30 and 02:00 -> 02:30.
    ("Australia/Lord_Howe", date(2026, 4, 5), "00:00-24:00", timedelta(hours=24, minutes=30)),
    ("Australia/Lord_Howe", date(2026, 4, 5), "01:00-03:00", timedelta(hours=2, minutes=30)),
    ("Australia/Lord_Howe", date(2026, 10, 4), "00:00-24:00", timedelta(hours=23, minutes=30)),
    ("Australia/Lord_Howe", date(2026, 10, 4), "01:00-03:00", timedelta(hours=1, minutes=30)),
]


@pytest.mark.parametrize(("zone", "day", "text", "expected"), DST_RANGES)
def test_ranges_on_dst_days_count_real_elapsed_time(zone, day, text, expected):
    cal = calendar(zone, hours={WEEKDAYS[day.weekday()]: [text]})
    tz = ZoneInfo(zone)
    before = datetime.combine(day - timedelta(days=1), time(12), tzinfo=tz)
    after = datetime.combine(day + timedelta(days=1), time(12), tzinfo=tz)
    assert business_time_between(before, after, cal) == expected
    if expected:
        assert add_business_time(before, expected, cal) == max(
            to for _, to in open_intervals(before, after, cal)
        )


def test_counting_across_the_spring_forward_gap():
    # Sunday 00:00-06:00 on 2026-03-29: 00:00-02:00 CET, then 03:00-06:00 CEST.
    cal = calendar(hours={"sun": ["00:00-06:00"]})
    saturday_night = at(BERLIN, 2026, 3, 28, 23)
    assert add_business_time(saturday_night, timedelta(minutes=90), cal) == at(
        BERLIN, 2026, 3, 29, 1, 30
    )
    # Two real hours from midnight reach the jump; the wall clock then reads 03:00.
    two_hours = add_business_time(saturday_night, timedelta(hours=2), cal)
    assert two_hours == datetime(2026, 3, 29, 1, tzinfo=UTC)
    assert two_hours.astimezone(BERLIN).hour == 3
    assert add_business_time(saturday_night, timedelta(hours=3), cal) == at(BERLIN, 2026, 3, 29, 4)


def test_counting_through_the_fall_back_repeat():
    # Sunday 00:00-04:00 on 2026-10-25 lasts 5 h; 3.5 h in is the second 02:30.
    cal = calendar(hours={"sun": ["00:00-04:00"]})
    midnight = at(BERLIN, 2026, 10, 25)
    result = add_business_time(midnight, timedelta(hours=3, minutes=30), cal)
    assert result == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    local = result.astimezone(BERLIN)
    assert (local.hour, local.minute, local.fold) == (2, 30, 1)
    assert add_business_time(midnight, timedelta(hours=5), cal) == datetime(
        2026, 10, 25, 3, tzinfo=UTC
    )


def test_a_weekend_with_a_dst_change_in_new_york():
    # Friday 2026-03-06 15:00 EST; clocks spring forward on Sunday. 2 h on Friday,
    # 2 h on Monday: 11:00 EDT, which is 15:00 UTC (it would be 16:00 UTC in EST).
    friday = at(NEW_YORK, 2026, 3, 6, 15)
    result = add_business_time(friday, timedelta(hours=4), office_hours("America/New_York"))
    assert result == datetime(2026, 3, 9, 15, tzinfo=UTC)
    assert result.astimezone(NEW_YORK).hour == 11


def test_always_open_is_plain_elapsed_time():
    assert BusinessCalendar() == ALWAYS_OPEN
    assert ALWAYS_OPEN.always_open
    # Across Berlin's spring-forward night: 24 real hours, so the wall clock moves 25.
    start = at(BERLIN, 2026, 3, 29)
    result = add_business_time(start, timedelta(hours=24), ALWAYS_OPEN)
    assert result == datetime(2026, 3, 29, 23, tzinfo=UTC)
    assert result.astimezone(BERLIN) == at(BERLIN, 2026, 3, 30, 1)
    assert result != start + timedelta(hours=24)  # aware + timedelta is wall-clock time
    end = at(BERLIN, 2026, 3, 30)
    assert business_time_between(start, end, ALWAYS_OPEN) == timedelta(hours=23)
    assert list(open_intervals(start, end)) == [(start, end)]


def test_a_calendar_with_only_holidays_is_open_around_the_clock_except_those_days():
    cal = calendar(holidays=[date(2026, 12, 25)])
    assert not cal.always_open
    christmas_eve_noon = at(BERLIN, 2026, 12, 24, 12)
    assert add_business_time(christmas_eve_noon, timedelta(hours=24), cal) == at(
        BERLIN, 2026, 12, 26, 12
    )
    # The days around the holiday are one long open stretch each.
    intervals = list(open_intervals(at(BERLIN, 2026, 12, 20), at(BERLIN, 2026, 12, 30), cal))
    assert intervals == [
        (at(BERLIN, 2026, 12, 20), at(BERLIN, 2026, 12, 25)),
        (at(BERLIN, 2026, 12, 26), at(BERLIN, 2026, 12, 30)),
    ]


def test_zero_duration_returns_the_start_even_when_closed():
    saturday = at(BERLIN, 2026, 6, 6, 10)
    result = add_business_time(saturday, timedelta(0), office_hours())
    assert result == saturday
    assert result.tzinfo is UTC


def test_end_before_start_has_no_business_time():
    monday = at(BERLIN, 2026, 6, 8, 10)
    assert business_time_between(monday, monday - timedelta(hours=1), office_hours()) == timedelta(
        0
    )
    assert business_time_between(monday, monday, office_hours()) == timedelta(0)
    assert list(open_intervals(monday, monday - timedelta(hours=1), office_hours())) == []


def test_microseconds_are_kept_exactly():
    start = at(BERLIN, 2026, 6, 5, 16, 59, 59, 999_999)
    result = add_business_time(start, timedelta(microseconds=2), office_hours())
    assert result == at(BERLIN, 2026, 6, 8, 9, 0, 0, 1)


def test_long_durations_finish_quickly():
    cal = office_hours(holidays=[date(2027, 12, 24), date(2028, 1, 3)])
    start = at(BERLIN, 2026, 6, 5, 16)
    begun = stopwatch.perf_counter()
    result = add_business_time(start, timedelta(days=400), cal)
    assert stopwatch.perf_counter() - begun < 2
    assert business_time_between(start, result, cal) == timedelta(days=400)
    # 9600 h at 40 h a week is 240 weeks: a little over 4.5 years later.
    assert datetime(2030, 12, 1, tzinfo=UTC) < result < datetime(2031, 3, 1, tzinfo=UTC)


def test_long_runs_of_holidays_are_crossed():
    first = date(2026, 1, 1)
    two_years = [first + timedelta(days=n) for n in range(730)]
    cal = office_hours(holidays=two_years)
    result = add_business_time(at(BERLIN, 2026, 1, 1, 10), timedelta(hours=1), cal)
    assert result == at(BERLIN, 2028, 1, 3, 10)  # the first Monday after them


def test_a_duration_that_cannot_fit_in_twenty_years_is_an_error():
    with pytest.raises(ValueError, match=r"cannot fit 10950d of business time within 20 years"):
        add_business_time(at(BERLIN, 2026, 6, 8), timedelta(days=30 * 365), office_hours())


# -- inside Temporal's workflow sandbox ---------------------------------------

SANDBOXED_WORKFLOW = """
from datetime import UTC, datetime, timedelta

from temporalio import workflow

# Deliberately not passed through: the sandbox re-imports the module and hands it a
# restricted proxy of zoneinfo.ZoneInfo.
from escalator.domain.business_time import BusinessCalendar, add_business_time


@workflow.defn(sandboxed=True)
class CalendarInSandbox:
    @workflow.run
    async def run(self) -> str:
        cal = BusinessCalendar(timezone="Europe/Berlin", hours={"sun": ["02:30-04:00"]})
        start = datetime(2026, 3, 28, 12, tzinfo=UTC)
        return add_business_time(start, timedelta(minutes=90), cal).isoformat()
"""


async def test_calendars_work_inside_the_workflow_sandbox(ts_env, tmp_path, monkeypatch):
    from importlib import import_module

    from temporalio.worker import Worker

    name = f"sandboxed_calendar_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(SANDBOXED_WORKFLOW)
    monkeypatch.syspath_prepend(str(tmp_path))
    workflow_class = import_module(name).CalendarInSandbox
    queue = f"business-time-{uuid.uuid4().hex[:8]}"
    async with Worker(
        ts_env.client,
        task_queue=queue,
        workflows=[workflow_class],
        workflow_failure_exception_types=[Exception],  # fail the test, not retry forever
    ):
        result = await ts_env.client.execute_workflow(
            workflow_class.run, id=queue, task_queue=queue
        )
    # 02:30 does not exist that night: open 03:00-04:00 CEST, then a week later 30 min.
    assert result == "2026-04-05T01:00:00+00:00"


# -- the YAML shape -----------------------------------------------------------

POLICY_SNIPPET = """
calendar:
  timezone: Europe/Berlin
  hours: {mon: ["09:00-17:00"], tue: ["09:00-17:00"], wed: ["09:00-17:00"], thu: ["09:00-17:00"], fri: ["09:00-16:00"]}
  holidays: [2026-12-24, 2026-12-25]
"""


def test_the_documented_yaml_shape_loads():
    cal = BusinessCalendar.model_validate(yaml.safe_load(POLICY_SNIPPET)["calendar"])
    assert cal.timezone == "Europe/Berlin"
    assert cal.hours["fri"] == ("09:00-16:00",)
    assert set(cal.hours) == {"mon", "tue", "wed", "thu", "fri"}
    assert cal.holidays == (date(2026, 12, 24), date(2026, 12, 25))
    assert not cal.always_open
    # Wednesday 2026-12-23 15:00: 2 h that day, then Thu/Fri are holidays -> Monday 11:00.
    assert add_business_time(at(BERLIN, 2026, 12, 23, 15), timedelta(hours=4), cal) == at(
        BERLIN, 2026, 12, 28, 11
    )


def test_friendly_spellings_are_normalised():
    cal = BusinessCalendar.model_validate(
        yaml.safe_load(
            """
            timezone: America/New_York
            hours:
              Monday: 09:00-17:00
              tue: [" 13:00 - 17:00", "8:00-12:00"]
              sat:
            holidays: [2026-07-03, 2026-07-03, 2026-01-01]
            """
        )
    )
    assert cal.hours == {"mon": ("09:00-17:00",), "tue": ("08:00-12:00", "13:00-17:00")}
    assert cal.holidays == (date(2026, 1, 1), date(2026, 7, 3))


def test_a_calendar_round_trips_through_json_and_is_hashable():
    cal = office_hours(holidays=["2026-12-25"])
    again = BusinessCalendar.model_validate_json(cal.model_dump_json())
    assert again == cal
    assert hash(again) == hash(cal)
    assert again != office_hours()
    assert len({cal, again, ALWAYS_OPEN}) == 2


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"timezone": "Mars/Olympus_Mons"},
            "unknown time zone 'Mars/Olympus_Mons'; use an IANA name such as Europe/Berlin",
        ),
        ({"timezone": "Europe"}, "unknown time zone 'Europe'"),
        ({"timezone": "europe/berlin"}, "unknown time zone 'europe/berlin'"),
        ({"timezone": "../etc/passwd"}, "unknown time zone"),
        (
            {"hours": {"mon": ["17:00-09:00"]}},
            "mon: '17:00-09:00' does not end after it starts; a range cannot cross midnight",
        ),
        ({"hours": {"mon": ["09:00-09:00"]}}, "does not end after it starts"),
        (
            {"hours": {"mon": ["08:00-12:00", "11:00-13:00"]}},
            "mon: 08:00-12:00 and 11:00-13:00 overlap; merge them",
        ),
        (
            {"hours": {"tue": ["08:00-17:00", "12:00-13:00"]}},
            "tue: 08:00-17:00 and 12:00-13:00 overlap",
        ),
        ({"hours": {"mon": ["9-5"]}}, "mon: '9-5' is not a time range; write it like 09:00-17:00"),
        ({"hours": {"mon": ["09:00-24:30"]}}, "has a time that does not exist; use 00:00 to 24:00"),
        ({"hours": {"mon": ["09:60-17:00"]}}, "has a time that does not exist"),
        ({"hours": {"mon": ["24:00-24:00"]}}, "does not end after it starts"),
        (
            {"hours": {"funday": ["09:00-17:00"]}},
            "unknown weekday 'funday'; use mon, tue, wed, thu, fri, sat or sun",
        ),
        ({"hours": {"mon": ["09:00-12:00"], "Monday": ["13:00-17:00"]}}, "mon is given twice"),
        (
            {"hours": {"sat": [], "sun": []}},
            "calendar has no business hours; add hours or remove the calendar",
        ),
        ({"holiday": ["2026-12-25"]}, "Extra inputs are not permitted"),
        ({"holidays": ["Christmas"]}, "valid date"),
    ],
)
def test_bad_calendars_say_what_to_fix(fields, message):
    with pytest.raises(ValidationError) as caught:
        BusinessCalendar.model_validate(fields)
    assert message in str(caught.value)


def test_calendars_cannot_be_changed_in_place():
    with pytest.raises(ValidationError, match="frozen"):
        office_hours().timezone = "UTC"  # type: ignore[misc]


def test_naive_datetimes_are_refused():
    naive = datetime(2026, 6, 8, 10)
    aware = at(BERLIN, 2026, 6, 8, 10)
    with pytest.raises(ValueError, match="start must be timezone-aware"):
        add_business_time(naive, timedelta(hours=1), office_hours())
    with pytest.raises(ValueError, match="start must be timezone-aware"):
        add_business_time(naive, timedelta(hours=1), ALWAYS_OPEN)
    with pytest.raises(ValueError, match="end must be timezone-aware"):
        business_time_between(aware, naive, office_hours())
    with pytest.raises(ValueError, match="start must be timezone-aware"):
        list(open_intervals(naive, aware, office_hours()))


def test_negative_durations_are_refused():
    with pytest.raises(ValueError, match="duration must not be negative, got -1h"):
        add_business_time(at(BERLIN, 2026, 6, 8), timedelta(hours=-1), office_hours())


# -- properties ---------------------------------------------------------------

ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC")
WINDOW = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2029, 1, 1, tzinfo=UTC))


def _transitions(zone: ZoneInfo) -> list[datetime]:
    """UTC instants in WINDOW where the zone's offset changes (found hourly, then exactly)."""
    found = []
    moment, offset = WINDOW[0], WINDOW[0].astimezone(zone).utcoffset()
    while moment < WINDOW[1]:
        later = moment + timedelta(hours=6)
        if later.astimezone(zone).utcoffset() != offset:
            low, high = moment, later
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) // 2
                if middle.astimezone(zone).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            found.append(high)
            offset = later.astimezone(zone).utcoffset()
        moment = later
    return found


TRANSITIONS = {name: _transitions(ZoneInfo(name)) for name in ZONES}


def test_the_property_zones_have_the_expected_transitions():
    # Four years, two changes a year where DST applies; none where it does not.
    assert [len(TRANSITIONS[name]) for name in ZONES] == [8, 8, 8, 0, 0]


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _parse(text: str) -> tuple[int, int]:
    start, end = text.split("-")
    return _minutes(start), _minutes(end)


def open_by_the_wall_clock(moment: datetime, cal: BusinessCalendar) -> bool | None:
    """Independent oracle: is the local wall-clock reading inside a range of its day?

    None for the second pass of a repeated hour, where a wall reading alone cannot
    tell (ranges count the first pass only).
    """
    local = moment.astimezone(ZoneInfo(cal.timezone))
    if local.fold:
        return None
    if local.date() in cal.holidays:
        return False
    if not cal.hours:
        return True
    # Subtraction within one zone is wall-clock arithmetic: exactly the reading.
    since_midnight = local - local.replace(hour=0, minute=0, second=0, microsecond=0)
    ranges = cal.hours.get(WEEKDAYS[local.weekday()], ())
    return any(
        timedelta(minutes=start) <= since_midnight < timedelta(minutes=end)
        for start, end in map(_parse, ranges)
    )


# Strategies are built once here: building them inside the composites below costs
# more than the business-time arithmetic they feed.
KINDS = st.sampled_from(("hours", "hours", "hours", "hours", "holidays only", "24x7"))
DAYS = st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7)
# Quarter-hour cut points, paired off into ranges; 0 and 96 give 00:00 and 24:00. Many
# fall in 01:00-03:15, where the zones above change their clocks (in the skipped or
# repeated hour, or right on the change).
CUTS = st.lists(st.integers(0, 96) | st.integers(4, 13), min_size=2, max_size=6, unique=True)
NIGHT_CUTS = st.lists(st.integers(4, 13), min_size=2, max_size=6, unique=True)
ANY_HOLIDAY = st.dates(date(2025, 1, 1), date(2028, 12, 31))
HOLIDAYS = {
    # Days around each change, or any day of the four years.
    name: st.lists(
        st.sampled_from(
            [
                (t.astimezone(ZoneInfo(name)) + timedelta(days=shift)).date()
                for t in TRANSITIONS[name]
                for shift in (-1, 0, 1)
            ]
        )
        | ANY_HOLIDAY
        if TRANSITIONS[name]
        else ANY_HOLIDAY,
        max_size=6,
    )
    for name in ZONES
}
CHANGES = {name: st.sampled_from(TRANSITIONS[name]) for name in ZONES if TRANSITIONS[name]}
NEAR = st.timedeltas(-timedelta(days=2), timedelta(days=2))
ANY_INSTANT = st.datetimes(datetime(2025, 1, 1), datetime(2028, 12, 31), timezones=st.just(UTC))
# Callers pass datetimes in all sorts of zones; the answer must not depend on it.
SHOWN_IN = {name: st.sampled_from((UTC, ZoneInfo(name), BERLIN)) for name in ZONES}
SOON = st.lists(st.integers(-1, 14), min_size=1, max_size=4)


def _range_text(begin: int, end: int) -> str:
    return f"{begin * 15 // 60:02d}:{begin * 15 % 60:02d}-{end * 15 // 60:02d}:{end * 15 % 60:02d}"


@st.composite
def calendars(draw: st.DrawFn) -> BusinessCalendar:
    zone = draw(st.sampled_from(ZONES))
    kind = draw(KINDS)
    hours: dict[str, list[str]] = {}
    if kind == "hours":
        days = set(draw(DAYS))
        if draw(st.booleans()):
            days.add("sun")  # every DST change in these zones happens on a Sunday
        for day in sorted(days):
            # Half the Sundays get only the night hours of a change.
            night = day == "sun" and draw(st.booleans())
            cuts = sorted(draw(NIGHT_CUTS if night else CUTS))
            cuts = cuts[: len(cuts) // 2 * 2]
            hours[day] = [_range_text(a, b) for a, b in zip(cuts[::2], cuts[1::2], strict=True)]
    holidays = draw(HOLIDAYS[zone]) if kind != "24x7" else []
    return BusinessCalendar.model_validate({"timezone": zone, "hours": hours, "holidays": holidays})


@st.composite
def starts(draw: st.DrawFn, zone: str) -> datetime:
    """An aware instant in 2025-2028, often within a couple of days of a DST change."""
    if zone in CHANGES and draw(st.booleans()):
        moment = draw(CHANGES[zone]) + draw(NEAR)
    else:
        moment = draw(ANY_INSTANT)
    if draw(st.booleans()):
        # On a quarter hour (local too: every zone here is a whole quarter hour off
        # UTC), where range boundaries are, so counts can end exactly at a closing.
        moment = moment.replace(minute=moment.minute // 15 * 15, second=0, microsecond=0)
    return moment.astimezone(draw(SHOWN_IN[zone]))


def weekly_open_time(cal: BusinessCalendar) -> timedelta:
    if not cal.hours:
        return timedelta(days=7)
    return sum(
        (
            timedelta(minutes=end - start)
            for ranges in cal.hours.values()
            for start, end in map(_parse, ranges)
        ),
        timedelta(0),
    )


@st.composite
def durations(draw: st.DrawFn, cal: BusinessCalendar) -> timedelta:
    # Up to 30 days, but no more than about 20 weeks of this calendar's opening, so a
    # calendar open 15 minutes a week does not walk for decades.
    longest = min(timedelta(days=30), weekly_open_time(cal) * 20)
    quarter = timedelta(minutes=15)
    quarters = st.integers(0, longest // quarter).map(lambda n: n * quarter)
    return draw(st.timedeltas(timedelta(0), longest) | quarters)


@st.composite
def cases(draw: st.DrawFn) -> tuple[BusinessCalendar, datetime, timedelta]:
    cal = draw(calendars())
    start = draw(starts(cal.timezone))
    if not cal.always_open and draw(st.booleans()):
        # Holidays drawn over four years rarely land where a case runs; put some there.
        first = start.astimezone(ZoneInfo(cal.timezone)).date()
        extra = [first + timedelta(days=n) for n in draw(SOON)]
        cal = BusinessCalendar.model_validate(
            {**cal.model_dump(), "holidays": [*cal.holidays, *extra]}
        )
    return cal, start, draw(durations(cal))


PROPERTY_SETTINGS = settings(max_examples=examples(200), deadline=None, database=None)


@PROPERTY_SETTINGS
@given(cases())
def test_add_then_measure_gives_back_the_duration(case):
    cal, start, duration = case
    result = add_business_time(start, duration, cal)
    assert result.tzinfo is UTC
    assert result >= start
    assert result - start >= duration  # business time never runs faster than real time
    assert business_time_between(start, result, cal) == duration
    # Nothing to count, nothing to wait for, even when closed. (Compared in UTC: Python
    # says a fold=1 datetime never equals one in another zone.)
    assert add_business_time(start, timedelta(0), cal) == start.astimezone(UTC)


@PROPERTY_SETTINGS
@given(cases())
def test_the_result_is_never_inside_a_closed_period(case):
    cal, start, duration = case
    assume(duration > timedelta(0))
    result = add_business_time(start, duration, cal)
    just_before = result - US
    # The microsecond before the result is open: counting ends on open time, never after
    # waiting through a closed stretch...
    assert business_time_between(just_before, result, cal) == US
    assert any(fro <= just_before < to for fro, to in open_intervals(start, result, cal))
    # ...which the wall clock confirms independently of the engine.
    assert open_by_the_wall_clock(just_before, cal) in (True, None)
    # And it is the earliest such instant.
    assert business_time_between(start, just_before, cal) == duration - US


@PROPERTY_SETTINGS
@given(st.data())
def test_adding_in_two_steps_equals_adding_once(data):
    cal, start, first = data.draw(cases())
    second = data.draw(durations(cal))
    in_two = add_business_time(add_business_time(start, first, cal), second, cal)
    assert in_two == add_business_time(start, first + second, cal)


@PROPERTY_SETTINGS
@given(st.data())
def test_longer_durations_never_end_earlier(data):
    cal, start, one = data.draw(cases())
    other = data.draw(durations(cal))
    shorter, longer = sorted((one, other))
    assert add_business_time(start, shorter, cal) <= add_business_time(start, longer, cal)


@PROPERTY_SETTINGS
@given(st.data())
def test_intervals_agree_with_the_wall_clock(data):
    cal, start, span = data.draw(cases())
    # In UTC: aware + timedelta in a ZoneInfo zone is wall-clock arithmetic.
    start = start.astimezone(UTC)
    if TRANSITIONS[cal.timezone] and data.draw(st.booleans()):
        # A window around a DST change, where the wall clock and real time part ways.
        change = data.draw(st.sampled_from(TRANSITIONS[cal.timezone]))
        start = change - data.draw(st.timedeltas(timedelta(0), timedelta(days=2)))
        span = change - start + data.draw(st.timedeltas(timedelta(0), timedelta(days=2)))
    end = start + span
    intervals = list(open_intervals(start, end, cal))
    # In order, inside [start, end], non-empty, and maximal (no two touch).
    for fro, to in intervals:
        assert start <= fro < to <= end
        assert fro.tzinfo is UTC and to.tzinfo is UTC
    for (_, to), (fro, _) in pairwise(intervals):
        assert to < fro
    total = sum((to - fro for fro, to in intervals), timedelta(0))
    assert total == business_time_between(start, end, cal)
    # Splitting the span anywhere splits the business time the same way.
    middle = start + data.draw(st.timedeltas(timedelta(0), span)) if span else start
    assert (
        business_time_between(start, middle, cal) + business_time_between(middle, end, cal) == total
    )
    # Probe instants: inside an interval exactly when the wall clock says open. The
    # probes sit where mistakes hide: on and next to every interval boundary, around
    # every DST change in the window (quarter-hour range ends land on them), and at
    # random.
    probes = [start + data.draw(st.timedeltas(timedelta(0), span)) for _ in range(5)]
    for fro, to in intervals:
        probes += [fro - US, fro, to - US, to]
    for change in TRANSITIONS[cal.timezone]:
        if start - timedelta(hours=3) <= change <= end + timedelta(hours=3):
            probes += [change + k * timedelta(minutes=7.5) for k in range(-24, 25)]
            probes += [change - US, change + US]
    starts_of = [fro for fro, _ in intervals]
    for moment in probes:
        if not start <= moment < end:
            continue
        expected = open_by_the_wall_clock(moment, cal)
        if expected is None:
            continue
        index = bisect_right(starts_of, moment) - 1
        inside = index >= 0 and moment < intervals[index][1]
        assert inside == expected, f"{moment} (local {moment.astimezone(ZoneInfo(cal.timezone))})"


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])
@pytest.mark.parametrize("which", [0, 1], ids=["first change of 2026", "second change of 2026"])
def test_every_night_range_on_a_dst_day_agrees_with_the_wall_clock(zone, which):
    # Exhaustive where random draws are thin: every quarter-hour range within
    # 00:00-04:00 on the day of a change, probed every 7.5 minutes and a microsecond
    # either side, across the six hours around it.
    change = [t for t in TRANSITIONS[zone] if t.year == 2026][which]
    day = change.astimezone(ZoneInfo(zone)).date()
    window = (change - timedelta(hours=5), change + timedelta(hours=5))
    probes = [change + k * timedelta(minutes=7.5) for k in range(-40, 41)]
    probes += [p + d for p in probes for d in (-US, US)]
    for begin in range(16):
        for end in range(begin + 1, 17):
            text = _range_text(begin, end)
            cal = calendar(zone, hours={WEEKDAYS[day.weekday()]: [text]})
            intervals = list(open_intervals(*window, cal))
            for moment in probes:
                expected = open_by_the_wall_clock(moment, cal)
                if expected is not None:
                    inside = any(fro <= moment < to for fro, to in intervals)
                    assert inside == expected, (text, moment)


@PROPERTY_SETTINGS
@given(st.data())
def test_always_open_is_plain_addition(data):
    zone = data.draw(st.sampled_from(ZONES))
    start = data.draw(starts(zone))
    duration = data.draw(st.timedeltas(timedelta(0), timedelta(days=30)))
    result = add_business_time(start, duration, ALWAYS_OPEN)
    assert result == start.astimezone(UTC) + duration
    assert business_time_between(start, result, ALWAYS_OPEN) == duration
    # A calendar open 00:00-24:00 every day is the same clock, walked day by day.
    every_day = BusinessCalendar(timezone=zone, hours={day: ("00:00-24:00",) for day in WEEKDAYS})
    assert not every_day.always_open
    assert add_business_time(start, duration, every_day) == result
