"""Errors that reach users: always one line, naming the field and the fix.

A policy error also names where the field is written: `file:line:column: field: reason`
(see `escalator.adapters.policy_files`). For that, a validator that finds a problem deeper
inside the value it checks raises `FieldValueError` with `at`, the path below its own
field, so the loader can point at the exact line without the message changing.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

Loc = tuple[int | str, ...]


class EscalatorError(Exception):
    """Base for errors we show to users as a single line (never a traceback)."""


class InvalidInput(EscalatorError):
    """Input at an edge (CLI, API, policy file) did not validate."""


class PolicyError(InvalidInput):
    """A policy file or mapping is not a valid escalation policy."""


class FieldValueError(ValueError):
    """A ValueError from a validator that also says which part of its value is wrong.

    `at` is relative to the validated field (or model): a check on `tiers` that finds
    the second tier's level repeated raises it with `at=(1, "level")`. pydantic keeps
    the exception in the error's context, and `first_problem` reads it back.
    """

    def __init__(self, message: str, *, at: Loc = ()) -> None:
        super().__init__(message)
        self.at = tuple(at)


def field_path(loc: Loc) -> str:
    """('tiers', 1, 'sla', 'first_response') -> 'tiers[1].sla.first_response'."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


@dataclass(frozen=True)
class Problem:
    """The one problem of a ValidationError that a user is shown first."""

    loc: Loc  # the field, as pydantic reports it
    at: Loc  # below `loc`: the exact spot, when a validator said so (FieldValueError)
    kind: str  # pydantic's error type, e.g. "missing", "extra_forbidden", "value_error"
    message: str  # the reason, already worded for users
    more: int  # how many other problems the error holds
    # The problem is a mapping's key (pydantic's "[key]" in `loc`, left out of `loc`
    # here): e.g. a channel name that is no name. The loader points at the key.
    on_key: bool = False

    def describe(self, prefix: str = "") -> str:
        """`prefix: field: reason (and N more problems)`, on one line."""
        parts = [p for p in (prefix, field_path(self.loc), self.message) if p]
        line = ": ".join(parts)
        if self.more:
            line += f" (and {self.more} more problem{'s' if self.more > 1 else ''})"
        return " ".join(line.split())  # one line, whatever the messages contained


def first_problem(error: ValidationError) -> Problem:
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
    cause = (first.get("ctx") or {}).get("error")
    at = cause.at if isinstance(cause, FieldValueError) else ()
    loc = tuple(first["loc"])
    on_key = loc[-1:] == ("[key]",)
    return Problem(
        loc[:-1] if on_key else loc, at, first["type"], message, len(problems) - 1, on_key
    )


def describe_validation_error(error: ValidationError, *, prefix: str = "") -> str:
    """Turn pydantic's multi-line report into `prefix: field: reason (+N more)`."""
    return first_problem(error).describe(prefix)
