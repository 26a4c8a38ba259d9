"""The determinism guard: the pure domain and the workflow never touch the outside world.

Temporal replays workflow code, and the domain is called from it, so neither may read
the clock, draw random numbers or ids, read the environment, open files or sockets, or
start processes. ruff's banned-api rule (TID251, pyproject.toml) catches most of this
while editing; the forbidden import-linter contract bans the modules. This test is the
backstop that needs neither tool: it walks the syntax trees of escalator/domain and
workflows/ and also catches what is not an import, such as the builtin `open(...)`.

Aliases are resolved: `from datetime import datetime as dt; dt.now(UTC)` is
`datetime.datetime.now`. A use does not have to be a call: `clock = datetime.now` is as
bad as calling it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUARDED = ("escalator/domain", "workflows")

# Qualified names that may not be used (or imported). Whole modules end with ".*".
BANNED: dict[str, str] = {
    "datetime.datetime.now": "reads the clock; take `now` as an argument (workflow.now())",
    "datetime.datetime.utcnow": "reads the clock; take `now` as an argument (workflow.now())",
    "datetime.datetime.today": "reads the clock; take `now` as an argument (workflow.now())",
    "datetime.date.today": "reads the clock; take the date as an argument",
    "time.time": "reads the clock (workflow.now())",
    "time.time_ns": "reads the clock (workflow.now())",
    "time.monotonic": "reads the clock (workflow.time())",
    "time.monotonic_ns": "reads the clock (workflow.time_ns())",
    "time.perf_counter": "reads the clock",
    "time.perf_counter_ns": "reads the clock",
    "time.process_time": "reads the clock",
    "time.sleep": "blocks the worker; use `await workflow.sleep(...)`",
    "uuid.uuid1": "not replay-safe (workflow.uuid4())",
    "uuid.uuid4": "not replay-safe (workflow.uuid4())",
    "os.environ": "reads the environment; settings live in escalator/adapters/",
    "os.environb": "reads the environment; settings live in escalator/adapters/",
    "os.getenv": "reads the environment; settings live in escalator/adapters/",
    "os.getenvb": "reads the environment; settings live in escalator/adapters/",
    "os.urandom": "not replay-safe",
    "os.system": "starts a process",
    "os.popen": "starts a process",
    "io.open": "file I/O; belongs in escalator/adapters/ or an activity",
    "random.*": "not replay-safe (workflow.random())",
    "secrets.*": "not replay-safe",
    "socket.*": "network I/O; belongs in escalator/adapters/ or an activity",
    "subprocess.*": "starts processes; belongs in escalator/devstack/ or an activity",
    "importlib.*": "dynamic imports hide dependencies from import-linter",
}
# Builtins that do I/O or bypass the import graph, when not shadowed by a local import.
BANNED_BUILTINS: dict[str, str] = {
    "open": "file I/O; belongs in escalator/adapters/ or an activity",
    "input": "reads stdin",
    "__import__": "dynamic imports hide dependencies from import-linter",
}
# Deliberate exceptions as (path relative to the repo, qualified name): none so far.
ALLOWED: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    name: str
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.name}: {self.why}"


def banned_reason(qualified: str) -> str | None:
    if qualified in BANNED:
        return BANNED[qualified]
    parts = qualified.split(".")
    for end in range(len(parts), 0, -1):
        reason = BANNED.get(".".join(parts[:end]) + ".*")
        if reason is not None:
            return reason
    return None


class _Checker(ast.NodeVisitor):
    def __init__(self, path: str, bound: set[str]) -> None:
        self.path = path
        self.bound = bound  # names the module binds anywhere: they shadow builtins
        self.aliases: dict[str, str] = {}  # local name -> qualified name
        self.found: list[Violation] = []

    def _report(self, node: ast.AST, qualified: str, why: str) -> None:
        if (self.path, qualified) not in ALLOWED:
            self.found.append(Violation(self.path, getattr(node, "lineno", 0), qualified, why))

    # -- imports: record aliases, and report banned modules or names imported ----------

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                top = alias.name.split(".")[0]
                self.aliases[top] = top
            if (why := banned_reason(alias.name)) is not None:
                self._report(node, alias.name, why)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:  # relative imports stay inside our own packages
            return
        module = node.module or ""
        for alias in node.names:
            qualified = f"{module}.{alias.name}"
            self.aliases[alias.asname or alias.name] = qualified
            if (why := banned_reason(qualified)) is not None:
                self._report(node, qualified, why)

    # -- uses: the longest dotted name an expression spells ----------------------------

    def _qualified(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self._qualified(node.value)
            return None if base is None else f"{base}.{node.attr}"
        return None

    def visit_Attribute(self, node: ast.Attribute) -> None:
        qualified = self._qualified(node)
        if qualified is not None and (why := banned_reason(qualified)) is not None:
            self._report(node, qualified, why)
            return  # one report per use, not one per prefix
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in self.aliases:
            qualified = self.aliases[node.id]
            # `from time import sleep; sleep(1)`: the import was reported; so is each use.
            if (why := banned_reason(qualified)) is not None and "." in qualified:
                self._report(node, qualified, why)
        elif node.id in BANNED_BUILTINS and node.id not in self.bound:
            self._report(node, f"builtins.{node.id}", BANNED_BUILTINS[node.id])


def _bound_names(tree: ast.AST) -> set[str]:
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
    return bound


def check_source(source: str, path: str) -> list[Violation]:
    tree = ast.parse(source, filename=path)
    checker = _Checker(path, _bound_names(tree))
    checker.visit(tree)
    return checker.found


def guarded_files() -> list[Path]:
    files = [p for d in GUARDED for p in sorted((ROOT / d).rglob("*.py"))]
    assert files, f"no Python files found under {GUARDED}"
    return files


@pytest.mark.parametrize("path", guarded_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_guarded_code_is_deterministic(path: Path) -> None:
    relative = path.relative_to(ROOT).as_posix()
    found = check_source(path.read_text(encoding="utf-8"), relative)
    assert not found, (
        "non-deterministic or I/O calls in code that Temporal replays (or that it calls):\n"
        + "\n".join(f"  {v}" for v in found)
        + "\nTake the value as an argument, or move the I/O to escalator/adapters/ or an "
        "activity. A deliberate exception goes in ALLOWED in tests/test_determinism_guard.py."
    )


# -- the guard itself ------------------------------------------------------------------

BAD_SOURCE = """\
import datetime as dt
import os
import random
import time
import uuid
from datetime import UTC, date, datetime
from time import monotonic as tick

a = datetime.now(UTC)
b = dt.datetime.utcnow()
c = date.today()
d = time.time()
e = tick()
f = uuid.uuid4()
g = os.environ["HOME"]
h = os.getenv("HOME")
i = open("policy.yaml")
j = datetime.now
time.sleep(1)
"""


def test_the_guard_catches_each_banned_use() -> None:
    found = check_source(BAD_SOURCE, "escalator/domain/bad.py")
    lines = {(v.line, v.name) for v in found}
    assert lines >= {
        (3, "random"),
        (7, "time.monotonic"),
        (9, "datetime.datetime.now"),
        (10, "datetime.datetime.utcnow"),
        (11, "datetime.date.today"),
        (12, "time.time"),
        (13, "time.monotonic"),
        (14, "uuid.uuid4"),
        (15, "os.environ"),
        (16, "os.getenv"),
        (17, "builtins.open"),
        (18, "datetime.datetime.now"),
        (19, "time.sleep"),
    }
    assert str(found[0]).startswith("escalator/domain/bad.py:3: random: ")


def test_the_guard_allows_pure_code() -> None:
    source = """\
import asyncio
from datetime import UTC, datetime, time, timedelta

from temporalio import workflow

x = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=1)
y = datetime.fromisoformat("2026-01-01T00:00:00+00:00").astimezone(UTC)
z = time(9, 0)
now = workflow.now()


async def wait() -> None:
    await asyncio.sleep(1)  # a durable timer inside a workflow
    await workflow.sleep(1)


def opened(open: bool) -> bool:  # a parameter named like a builtin is not a call to it
    return open
"""
    assert check_source(source, "workflows/good.py") == []
