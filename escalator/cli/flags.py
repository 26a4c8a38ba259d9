"""Reading flag values the same way in every command."""

from __future__ import annotations

from datetime import timedelta

from escalator.domain.durations import parse_duration
from escalator.domain.errors import InvalidInput


def duration_flag(flag: str, text: str) -> timedelta:
    """`--since 30d`, `--expires 90d`: a positive duration, or one line naming the flag."""
    try:
        return parse_duration(text)
    except ValueError as error:
        raise InvalidInput(f"{flag}: {error}") from None
