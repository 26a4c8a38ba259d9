"""Durations as people write them in policy files.

Accepted shapes, the same in YAML, JSON and Python:
  compact   "90s", "30m", "4h", "2d", "1h30m", "1d 2h"
  ISO-8601  "PT4H", "P2D", "P1DT2H30M"
  seconds   3600, 3600.5, "3600"
  timedelta timedelta(hours=4)

Durations in a policy are SLA lengths, so zero and negative values are errors.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_COMPACT = re.compile(r"(\d+(?:\.\d+)?)\s*([wdhms])")
_COMPACT_WHOLE = re.compile(r"^(?:\s*\d+(?:\.\d+)?\s*[wdhms])+\s*$")
_ISO = re.compile(
    r"^P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)

HINT = "write it like 90s, 30m, 4h, 2d, 1h30m, PT4H or a number of seconds"


def parse_duration(value: object) -> timedelta:
    """Parse one duration; raise ValueError with a message that says how to fix it."""
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, bool):  # bool is an int subclass; `true` is never a duration
        raise ValueError(f"{value!r} is not a duration; {HINT}")
    elif isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a duration; {HINT}")
        result = timedelta(seconds=value)
    elif isinstance(value, str):
        result = _parse_text(value.strip())
    else:
        raise ValueError(f"{value!r} is not a duration; {HINT}")
    if result <= timedelta(0):
        raise ValueError(f"duration must be positive, got {value!r}")
    return result


def _parse_text(text: str) -> timedelta:
    if not text:
        raise ValueError(f"empty duration; {HINT}")
    if text.startswith("-"):
        raise ValueError(f"duration must be positive, got {text!r}")
    try:
        return timedelta(seconds=float(text)) if _looks_numeric(text) else _parse_units(text)
    except OverflowError:
        raise ValueError(f"duration {text!r} is too large") from None


def _looks_numeric(text: str) -> bool:
    return re.fullmatch(r"[+-]?\d+(?:\.\d+)?", text) is not None


def _parse_units(text: str) -> timedelta:
    lowered = text.lower()
    if _COMPACT_WHOLE.match(lowered):
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _COMPACT.findall(lowered))
        return timedelta(seconds=seconds)
    iso = _ISO.match(text.upper())
    if iso and any(iso.groupdict().values()) and not text.upper().endswith("T"):
        parts = {k: float(v) for k, v in iso.groupdict().items() if v}
        return timedelta(
            weeks=parts.get("w", 0),
            days=parts.get("d", 0),
            hours=parts.get("h", 0),
            minutes=parts.get("m", 0),
            seconds=parts.get("s", 0),
        )
    raise ValueError(f"cannot read duration {text!r}; {HINT}")


def format_duration(value: timedelta) -> str:
    """Render compactly ("1h30m"); parse_duration reads it back to the same value."""
    total = value.total_seconds()
    if total <= 0:
        return "0s"
    whole = int(total)
    fraction = total - whole
    parts = []
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        amount, whole = divmod(whole, size)
        if amount:
            parts.append(f"{amount}{unit}")
    if fraction:
        seconds = (int(total) % 60) + fraction
        parts = [p for p in parts if not p.endswith("s")] + [f"{seconds:g}s"]
    return "".join(parts)
