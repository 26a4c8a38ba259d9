"""Durations as people write them in policy files.

Accepted shapes, the same in YAML, JSON and Python:
  compact   "90s", "30m", "4h", "2d", "1w", "1h30m", "1d 2h", "1.5h"
  ISO-8601  "PT4H", "P2D", "P1DT2H30M", "P1W"
  seconds   3600, 3600.0, "3600"
  timedelta timedelta(hours=4)

A policy duration is an SLA length, so it is a WHOLE number of seconds, at least 1 s:
zero and negative values are errors, and so is any value with a fraction of a second
(0.5, "59.5s", timedelta(microseconds=1)). A fraction in a bigger unit is fine when it
comes out whole ("1.5h" is 5400 s, "0.5m" is 30 s); the arithmetic is exact (decimal),
never binary floating point, so "0.1h" is exactly 360 s.

Clock notation is refused: `1:30` could mean 1 h 30 min or 1 min 30 s (and YAML 1.1
read it as the base-60 number 90, i.e. 90 *seconds*), so any h:mm or h:mm:ss text is an
error that shows the unambiguous spellings.

`format_duration` writes every accepted duration so that `parse_duration` reads it back
to exactly the same timedelta: days, hours, minutes and seconds, largest first, zero
parts left out ("1d2h3m4s", "4h", "90s" is written "1m30s"). Weeks are never written
(7 days is "7d"). For other values, which only appear in messages and the CLI, it never
fails: a fraction of a second is rounded to the nearest whole second (halves away from
zero), zero is "0s", and a negative value gets a leading "-" ("-5m"); such text is for
display only.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from fractions import Fraction

_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_NUMBER = r"\d+(?:\.\d+)?"
_COMPACT = re.compile(rf"({_NUMBER})\s*([wdhms])")
_COMPACT_WHOLE = re.compile(rf"^(?:\s*{_NUMBER}\s*[wdhms])+\s*$")
_ISO = re.compile(
    rf"^P(?:(?P<w>{_NUMBER})W)?(?:(?P<d>{_NUMBER})D)?"
    rf"(?:T(?:(?P<h>{_NUMBER})H)?(?:(?P<m>{_NUMBER})M)?(?:(?P<s>{_NUMBER})S)?)?$"
)
_PLAIN_NUMBER = re.compile(r"^\+?\d+(?:\.\d+)?$")
# h:mm and h:mm:ss (with optional fraction of a second), e.g. 1:30, 01:30, 1:30:00.
_CLOCK = re.compile(r"^\+?(\d+):(\d{1,2})(?::(\d{1,2}(?:\.\d+)?))?$")

HINT = "write it like 90s, 30m, 4h, 2d, 1h30m, PT4H or a number of seconds"
WHOLE_SECONDS = "policy durations are whole seconds, at least 1s"

_ONE_SECOND = timedelta(seconds=1)
_MICROSECONDS = 1_000_000


def parse_duration(value: object) -> timedelta:
    """Parse one policy duration: a whole number of seconds, at least 1 s.

    Raises ValueError with a one-line message that says how to fix the value.
    """
    if isinstance(value, timedelta):
        seconds = Fraction(value // timedelta(microseconds=1), _MICROSECONDS)
    elif isinstance(value, bool):  # bool is an int subclass; `true` is never a duration
        raise ValueError(f"{value!r} is not a duration; {HINT}")
    elif isinstance(value, int):
        seconds = Fraction(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a duration; {HINT}")
        seconds = Fraction(value)
    elif isinstance(value, str):
        seconds = _parse_text(value.strip())
    else:
        raise ValueError(f"{value!r} is not a duration; {HINT}")
    return _whole_seconds(seconds, value)


def _whole_seconds(seconds: Fraction, value: object) -> timedelta:
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {_shown(value)}")
    if seconds.denominator != 1:
        raise ValueError(
            f"{_shown(value)} is not a whole number of seconds ({_decimal(seconds)}s); "
            f"{WHOLE_SECONDS}"
        )
    try:
        return timedelta(seconds=seconds.numerator)
    except OverflowError:
        raise ValueError(f"duration {_shown(value)} is too large") from None


def _shown(value: object) -> str:
    """The value as the user wrote it, for messages."""
    if isinstance(value, timedelta):
        return f"timedelta({value})"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"{value[:40]!r}…"
    if isinstance(value, int) and value.bit_length() > 64:
        try:
            return f"{value:.3e}"
        except OverflowError:
            return "of more than 300 digits"
    return str(value)


def _decimal(seconds: Fraction) -> str:
    """A fraction of seconds as a short decimal, e.g. 59.123457 or 0.333333."""
    text = f"{float(seconds):.6f}".rstrip("0").rstrip(".")
    return text if Fraction(text) == seconds else f"~{text}"


def _parse_text(text: str) -> Fraction:
    if not text:
        raise ValueError(f"empty duration; {HINT}")
    if len(text) > 60:
        raise ValueError(f"duration {_shown(text)} is too long; {HINT}")
    if clock := _CLOCK.match(text):
        raise ValueError(_clock_message(text, clock))
    if text.startswith("-"):
        raise ValueError(f"duration must be positive, got {text!r}")
    if _PLAIN_NUMBER.match(text):
        return Fraction(text)
    lowered = text.lower()
    if _COMPACT_WHOLE.match(lowered):
        return sum(
            (Fraction(n) * _UNIT_SECONDS[u] for n, u in _COMPACT.findall(lowered)), Fraction(0)
        )
    iso = _ISO.match(text.upper())
    if iso and any(iso.groupdict().values()) and not text.upper().endswith("T"):
        return sum(
            (Fraction(v) * _UNIT_SECONDS[k] for k, v in iso.groupdict().items() if v),
            Fraction(0),
        )
    raise ValueError(f"cannot read duration {text!r}; {HINT}")


def _clock_message(text: str, clock: re.Match[str]) -> str:
    """Why `1:30` is refused, with the spellings that say what was meant."""
    first, second, third = clock.groups()
    a, b = int(first), int(second)
    if third is None:
        # h:mm or m:ss: name both readings, then the spellings of each.
        as_hours = a * 3600 + b * 60
        as_minutes = a * 60 + b
        choices = [
            format_duration(timedelta(seconds=as_hours)),
            f"{as_hours // 60}m",
            f"{as_minutes}s",
            _iso(as_hours),
        ]
        readings = f"{a} h {b} min or {a} min {b} s?"
        return (
            f"{text!r} is ambiguous ({readings}); write "
            f"{', '.join(dict.fromkeys(choices))} or a number of seconds"
        )
    total = Fraction(a * 3600 + b * 60) + Fraction(third)
    if total.denominator != 1 or total <= 0:
        return f"{text!r} is clock notation, which a duration cannot be; {HINT}"
    seconds = total.numerator
    choices = [format_duration(timedelta(seconds=seconds)), f"{seconds}s", _iso(seconds)]
    return (
        f"{text!r} is clock notation, which a duration cannot be ({a} h {b} min "
        f"{int(third)} s?); write {', '.join(dict.fromkeys(choices))} or a number of seconds"
    )


def _iso(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    time = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M"), (secs, "S")) if n)
    return f"P{f'{days}D' if days else ''}{f'T{time}' if time else ''}" if seconds else "PT0S"


def format_duration(value: timedelta) -> str:
    """Render compactly ("1h30m"); exact for every duration parse_duration accepts.

    parse_duration(format_duration(d)) == d for every accepted d (whole seconds >= 1).
    Anything else (only ever shown to people) is rounded to the nearest whole second,
    halves away from zero; zero is "0s" and a negative value gets a leading "-".
    """
    microseconds = value // timedelta(microseconds=1)
    sign = "-" if microseconds < 0 else ""
    whole, fraction = divmod(abs(microseconds), _MICROSECONDS)
    if fraction * 2 >= _MICROSECONDS:
        whole += 1
    if whole == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        amount, whole = divmod(whole, _UNIT_SECONDS[unit])
        if amount:
            parts.append(f"{amount}{unit}")
    return sign + "".join(parts)
