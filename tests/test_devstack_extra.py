"""aiosmtpd comes with the `devstack` extra only; a plain install must still work.

Without it, `escalator up` says in one line what to install and exits non-zero, and
nothing else of the package needs it: the CLI imports the dev stack lazily, and the
dev stack imports aiosmtpd only when a mail sink starts.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from escalator.devstack.mail_catcher import DEVSTACK_HINT, DevstackMissing
from escalator.devstack.processes import free_port
from escalator.domain.errors import EscalatorError

ROOT = Path(__file__).resolve().parent.parent
# Run before anything else in the child: aiosmtpd cannot be imported, as in an
# install without the extra (a None in sys.modules makes `import` raise ImportError).
WITHOUT_AIOSMTPD = "import sys; sys.modules['aiosmtpd'] = None; "
# What `pip install escalator` installs (pyproject.toml, [tool.setuptools]).
INSTALLED = ["escalator", "workflows", "activities", "starter", "worker.py"]


def run_without_aiosmtpd(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMTP_")}
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_AIOSMTPD + code],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def test_up_without_the_extra_is_a_one_line_error(tmp_path):
    ports = [str(free_port()) for _ in range(3)]
    argv = ["up", "--data-dir", str(tmp_path / ".data"), "--port", ports[0]]
    argv += ["--ui-port", ports[1], "--mail-port", ports[2]]
    # The real entry point (`python -m escalator.cli`), which exits with os._exit.
    result = run_without_aiosmtpd(
        f"sys.argv = ['escalator', *{argv!r}]; "
        "import runpy; runpy.run_module('escalator.cli', run_name='__main__')",
        tmp_path,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [f"escalator: {DEVSTACK_HINT}"]
    assert result.stdout == ""
    assert not (tmp_path / ".data").exists(), "it should stop before starting anything"


def test_the_package_imports_without_aiosmtpd(tmp_path):
    modules = [
        "escalator.cli.main",
        "escalator.devstack.stack",
        "escalator.devstack.mail_catcher",
        "escalator.devstack.processes",
        "escalator.runtime.worker",
        "starter",
    ]
    result = run_without_aiosmtpd(
        f"import importlib; [importlib.import_module(m) for m in {modules!r}]; "
        "from escalator.devstack.mail_catcher import DevstackMissing, SmtpSink\n"
        "try:\n"
        "    SmtpSink().start()\n"
        "except DevstackMissing as error:\n"
        "    print(error)\n",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == DEVSTACK_HINT


class _ImportTimeImports(ast.NodeVisitor):
    """Collects the aiosmtpd imports that run when the module is imported: at module
    level, in a class body or under `if`/`try`, but not inside a function."""

    def __init__(self) -> None:
        self.lines: list[int] = []

    def visit_FunctionDef(self, node) -> None:
        pass  # runs only when called

    visit_AsyncFunctionDef = visit_Lambda = visit_FunctionDef

    def visit_Import(self, node: ast.Import) -> None:
        self._note(node, [alias.name for alias in node.names])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0:
            self._note(node, [node.module or ""])

    def _note(self, node: ast.stmt, names: list[str]) -> None:
        if any(name.split(".")[0] == "aiosmtpd" for name in names):
            self.lines.append(node.lineno)


def _import_time_aiosmtpd_imports(path: Path) -> list[int]:
    visitor = _ImportTimeImports()
    visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return visitor.lines


def test_no_installed_module_imports_aiosmtpd_at_import_time():
    paths = []
    for name in INSTALLED:
        path = ROOT / name
        paths += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    found = {
        str(path.relative_to(ROOT)): lines
        for path in paths
        if (lines := _import_time_aiosmtpd_imports(path))
    }
    assert found == {}


def test_the_missing_extra_is_an_escalator_error():
    # EscalatorError is what the CLI prints as one line instead of a traceback.
    assert issubclass(DevstackMissing, EscalatorError)
    assert "pip install 'escalator[devstack]'" in DEVSTACK_HINT
