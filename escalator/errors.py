"""Errors that reach users: always one line, naming the field and the fix."""

from __future__ import annotations

from pydantic import ValidationError


class EscalatorError(Exception):
    """Base for errors we show to users as a single line (never a traceback)."""


class InvalidInput(EscalatorError):
    """Input at an edge (CLI, API, policy file) did not validate."""


class PolicyError(InvalidInput):
    """A policy file or mapping is not a valid escalation policy."""


def field_path(loc: tuple[int | str, ...]) -> str:
    """('tiers', 1, 'sla', 'first_response') -> 'tiers[1].sla.first_response'."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def describe_validation_error(error: ValidationError, *, prefix: str = "") -> str:
    """Turn pydantic's multi-line report into `prefix: field: reason (+N more)`."""
    problems = error.errors(include_url=False)
    # A misspelt key also makes the real key "missing"; naming the typo first
    # points at the actual fix.
    problems.sort(key=lambda p: p["type"] != "extra_forbidden")
    first = problems[0]
    message = first["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if first["type"] == "missing":
        message = "required field is missing"
    elif first["type"] == "extra_forbidden":
        message = "unknown field; check the spelling against the policy reference in README.md"
    location = field_path(tuple(first["loc"]))
    parts = [p for p in (prefix, location, message) if p]
    line = ": ".join(parts)
    if len(problems) > 1:
        line += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
    return " ".join(line.split())  # one line, whatever the messages contained
