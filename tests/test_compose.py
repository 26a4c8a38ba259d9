"""Static checks of the Docker Compose deployment (docker-compose.yml, Dockerfile, deploy/).

There is no Docker engine here, so nothing is started: the files are parsed and
checked against the code they configure (the settings the worker reads, the search
attributes it upserts), and the set-up script runs against a stand-in `temporal` CLI.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath

import pytest
import yaml

from escalator.adapters.settings import DEFAULT_TASK_QUEUE, TemporalSettings
from escalator.adapters.smtp_settings import SmtpSettings
from escalator.devstack.stack import WORKFLOW_TASK_TIMEOUT, dynamic_config_flags
from escalator.domain.search_attributes import ALL_KEYS, cli_type
from escalator.runtime.worker import graceful_shutdown_timeout

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
SETUP_SCRIPT = ROOT / "deploy" / "setup-temporal.sh"
SCHEMA_SCRIPT = ROOT / "deploy" / "setup-postgres.sh"

EXPECTED_SERVICES = {
    "postgresql",
    "temporal-admin-tools",
    "temporal",
    "temporal-setup",
    "temporal-ui",
    "mailpit",
    "worker",
}
# What the worker needs to reach the cluster and Mailpit.
REQUIRED_WORKER_ENV = {
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "ESCALATOR_TASK_QUEUE",
    "SMTP_HOST",
    "SMTP_PORT",
    "MAIL_FROM",
}
# Read by the settings but only needed for Temporal Cloud or a real SMTP relay.
OPTIONAL_WORKER_ENV = {"TEMPORAL_API_KEY", "TEMPORAL_TLS", "SMTP_USERNAME", "SMTP_PASSWORD"}
EXPECTED_SEARCH_ATTRIBUTES = {key.name: cli_type(key) for key in ALL_KEYS}

needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


# --- reading the compose file ------------------------------------------------------

_VARIABLE = re.compile(r"\$\{(\w+)(?:(:?-)([^}]*))?\}")


def interpolate(value: str, environ: Mapping[str, str]) -> str:
    """Compose's ${VAR}, ${VAR-default} and ${VAR:-default}, as seen with `environ`."""

    def replace(match: re.Match[str]) -> str:
        name, operator, default = match.groups()
        if operator == ":-":
            return environ.get(name) or default
        if operator == "-":
            return environ.get(name, default)
        return environ.get(name, "")

    return _VARIABLE.sub(replace, value)


@pytest.fixture(scope="module")
def compose() -> dict:
    with COMPOSE_FILE.open() as f:
        data = yaml.safe_load(f)
    assert isinstance(data, dict), "docker-compose.yml must be a mapping"
    return data


@pytest.fixture(scope="module")
def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


def environment(service: dict, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A service's environment as the container sees it (host variables: `environ`)."""
    environ = {} if environ is None else environ
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
    # A bare `KEY:` passes the host's value through; with no host value it is unset.
    return {
        key: interpolate(str(value), environ) for key, value in raw.items() if value is not None
    }


def depends_on(service: dict) -> dict[str, str]:
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


def ports(service: dict) -> list[tuple[int | None, int]]:
    """(published host port or None, container port) for each `ports` entry."""
    result = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            published = entry.get("published")
            result.append((int(published) if published else None, int(entry["target"])))
            continue
        parts = str(entry).split("/")[0].split(":")
        published = int(parts[-2]) if len(parts) > 1 else None
        result.append((published, int(parts[-1])))
    return result


def command_words(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(word) for word in value]


def host_path(service: dict, container_path: PurePosixPath) -> Path | None:
    """The file on the host that a bind mount puts at `container_path`, if any."""
    for volume in service.get("volumes") or []:
        source, _, rest = str(volume).partition(":")
        target = PurePosixPath(rest.split(":")[0])
        if not source.startswith((".", "/")):
            continue  # a named volume
        if container_path == target or target in container_path.parents:
            return (ROOT / source / container_path.relative_to(target)).resolve()
    return None


def script_of(service: dict) -> Path:
    """The host file of the script that a one-shot service runs (entrypoint + command)."""
    words = command_words(service.get("entrypoint")) + command_words(service.get("command"))
    scripts = [word for word in words if word.endswith(".sh")]
    assert len(scripts) == 1, f"expected one script in {words}"
    path = host_path(service, PurePosixPath(scripts[0]))
    assert path is not None, f"{scripts[0]} is not bind-mounted from the project"
    return path


# --- services and start-up order ---------------------------------------------------


def test_compose_file_has_the_expected_services(compose: dict, services: dict) -> None:
    assert EXPECTED_SERVICES <= set(services), EXPECTED_SERVICES - set(services)
    assert services["postgresql"]["image"].startswith("postgres:")
    assert services["temporal"]["image"].startswith("temporalio/server:")
    assert services["temporal-admin-tools"]["image"].startswith("temporalio/admin-tools:")
    assert services["temporal-setup"]["image"].startswith("temporalio/admin-tools:")
    assert services["temporal-ui"]["image"].startswith("temporalio/ui:")
    assert services["mailpit"]["image"].startswith("axllent/mailpit")
    # PostgreSQL keeps its data in a named volume declared at the top level.
    named = [
        str(v).split(":")[0]
        for v in services["postgresql"].get("volumes", [])
        if not str(v).startswith((".", "/"))
    ]
    assert named and all(name in (compose.get("volumes") or {}) for name in named)


def test_every_dependency_exists_and_its_condition_can_be_met(services: dict) -> None:
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            assert target in services, f"{name} depends on unknown service {target}"
            if condition == "service_healthy":
                assert services[target].get("healthcheck", {}).get("test"), (
                    f"{name} waits for {target} to be healthy, but it has no healthcheck"
                )
            elif condition == "service_completed_successfully":
                # A job that is restarted after success never counts as completed.
                assert services[target].get("restart", "no") in ("no", "on-failure"), (
                    f"{name} waits for {target} to complete, but {target} restarts"
                )
            else:
                assert condition == "service_started", f"{name}: unknown condition {condition}"


def test_start_up_order_ends_with_the_worker_after_the_setup_job(services: dict) -> None:
    assert depends_on(services["temporal-admin-tools"]) == {"postgresql": "service_healthy"}
    assert depends_on(services["temporal"]) == {
        "temporal-admin-tools": "service_completed_successfully"
    }
    assert depends_on(services["temporal-setup"]) == {"temporal": "service_healthy"}
    worker = depends_on(services["worker"])
    assert worker["temporal-setup"] == "service_completed_successfully"
    assert worker["mailpit"] in ("service_started", "service_healthy")


def test_the_documented_ports_are_published(services: dict) -> None:
    # docs/docker-compose.md: Temporal on localhost:7233, UI on 8080, Mailpit on 8025.
    assert (7233, 7233) in ports(services["temporal"])
    assert (8080, 8080) in ports(services["temporal-ui"])
    assert (8025, 8025) in ports(services["mailpit"])
    assert 1025 in {target for _, target in ports(services["mailpit"])}


def test_every_port_is_published_on_loopback_only(services: dict) -> None:
    for name, service in services.items():
        for entry in service.get("ports") or []:
            host = entry.get("host_ip") if isinstance(entry, dict) else str(entry).split(":")[0]
            assert host == "127.0.0.1", f"{name} publishes {entry} beyond this machine"


def test_the_api_runs_as_a_service_next_to_the_worker(services: dict) -> None:
    api, worker = services["api"], services["worker"]
    assert api["build"] == worker["build"]
    words = command_words(api["command"])
    assert words[:2] == ["escalator", "api"]
    assert words[words.index("--policies") + 1] == "/app/policies"
    assert (8000, 8000) in ports(api)
    assert depends_on(api) == {"temporal-setup": "service_completed_successfully"}
    for key in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "ESCALATOR_TASK_QUEUE"):
        assert api["environment"][key] == worker["environment"][key], key
    # Tokens live in the ledger's database, which every replica shares.
    assert (
        api["environment"]["ESCALATOR_LEDGER_URL"] == worker["environment"]["ESCALATOR_LEDGER_URL"]
    )
    assert "container_name" not in api  # it can be scaled


def test_images_are_pinned_and_admin_tools_match_the_server(services: dict) -> None:
    for name, service in services.items():
        if "image" not in service or "build" in service:
            continue
        image = interpolate(service["image"], {})
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: pin a version, not {image!r}"
    # The schema job must set up the schema of the server version that runs.
    server_tag = interpolate(services["temporal"]["image"], {}).rpartition(":")[2]
    for job in ("temporal-admin-tools", "temporal-setup"):
        assert interpolate(services[job]["image"], {}).rpartition(":")[2] == server_tag


# --- the worker --------------------------------------------------------------------


def test_worker_environment_reaches_the_cluster_and_mailpit(services: dict) -> None:
    env = environment(services["worker"])
    missing = {name for name in REQUIRED_WORKER_ENV if not env.get(name)}
    assert not missing, f"worker environment lacks {sorted(missing)}"

    temporal = TemporalSettings.from_env(env)
    host, _, port = temporal.address.rpartition(":")
    assert host in services, f"TEMPORAL_ADDRESS host {host!r} is not a service"
    assert int(port) in {target for _, target in ports(services[host])}
    assert services[host]["image"].startswith("temporalio/server:")
    assert temporal.task_queue == DEFAULT_TASK_QUEUE
    assert temporal.tls is False and temporal.api_key is None

    smtp = SmtpSettings.from_env(env)  # raises on a bad SMTP_PORT or MAIL_FROM
    assert smtp.host in services, f"SMTP_HOST {smtp.host!r} is not a service"
    assert services[smtp.host]["image"].startswith("axllent/mailpit")
    assert smtp.port in {target for _, target in ports(services[smtp.host])}
    assert smtp.starttls is False  # Mailpit speaks plain SMTP by default
    assert smtp.username is None and smtp.password is None


class RecordingEnviron(Mapping[str, str]):
    """An environment that remembers which variables were looked up."""

    def __init__(self) -> None:
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        raise KeyError(key)

    def get(self, key, default=None):
        self.read.add(key)
        return default

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def test_worker_sets_every_variable_the_settings_read(services: dict) -> None:
    recorder = RecordingEnviron()
    TemporalSettings.from_env(recorder)
    SmtpSettings.from_env(recorder)
    assert recorder.read >= REQUIRED_WORKER_ENV  # this test's list is still current
    unset = recorder.read - environment(services["worker"]).keys()
    assert unset <= OPTIONAL_WORKER_ENV, (
        f"the settings read {sorted(unset - OPTIONAL_WORKER_ENV)}, which the worker "
        "service does not set: add them to docker-compose.yml"
    )


def test_worker_and_setup_job_agree_on_the_cluster_and_namespace(services: dict) -> None:
    for environ in ({}, {"TEMPORAL_NAMESPACE": "support"}):
        worker = environment(services["worker"], environ)
        setup = environment(services["temporal-setup"], environ)
        assert setup["TEMPORAL_ADDRESS"] == worker["TEMPORAL_ADDRESS"]
        assert setup["TEMPORAL_NAMESPACE"] == worker["TEMPORAL_NAMESPACE"]
        assert worker["TEMPORAL_NAMESPACE"] == environ.get("TEMPORAL_NAMESPACE", "default")


def test_worker_passes_the_anthropic_key_through_optionally(services: dict) -> None:
    worker = services["worker"]
    assert environment(worker, {}).get("ANTHROPIC_API_KEY") == ""
    assert environment(worker, {"ANTHROPIC_API_KEY": "k"})["ANTHROPIC_API_KEY"] == "k"


def test_worker_is_built_from_the_dockerfile_and_runs_worker_py(services: dict) -> None:
    worker = services["worker"]
    build = worker["build"]
    if isinstance(build, str):
        build = {"context": build}
    context = (ROOT / build.get("context", ".")).resolve()
    dockerfile = context / build.get("dockerfile", "Dockerfile")
    assert dockerfile.is_file()
    assert (context / "worker.py").is_file()

    lines = [line.strip() for line in dockerfile.read_text().splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    assert instructions[0] == "FROM python:3.11-slim"
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "the worker must not run as root"
    installs = [line for line in instructions if "pip install" in line]
    assert installs and all("--no-cache-dir" in line for line in installs)
    assert not any("[dev]" in line for line in installs), "no dev extras in the image"
    cmds = [line for line in instructions if line.startswith("CMD ")]
    assert json.loads(cmds[-1].removeprefix("CMD ")) == ["python", "worker.py"]
    if "command" in worker:
        assert command_words(worker["command"]) == ["python", "worker.py"]
    assert worker.get("restart") == "unless-stopped"


def test_worker_can_be_scaled(services: dict) -> None:
    # `docker compose up --scale worker=3` fails on a fixed name or host port.
    worker = services["worker"]
    assert "container_name" not in worker
    assert all(published is None for published, _ in ports(worker))


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    patterns = {
        line.strip().removeprefix("**/").rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".data", ".git", "tests/artifacts", "__pycache__"} <= patterns
    assert not {"pyproject.toml", "worker.py", "escalator", "policies"} & patterns


# --- the Temporal server and its one-shot jobs ---------------------------------------


def test_temporal_server_uses_postgres_and_our_dynamic_config(services: dict) -> None:
    server = services["temporal"]
    env = environment(server)
    assert env["DB"] == "postgres12"
    assert env["BIND_ON_IP"] == "0.0.0.0"
    assert env["POSTGRES_SEEDS"] in services
    # The server resolves a relative DYNAMIC_CONFIG_FILE_PATH against /etc/temporal.
    config_path = PurePosixPath("/etc/temporal") / env["DYNAMIC_CONFIG_FILE_PATH"]
    host_file = host_path(server, config_path)
    assert host_file == ROOT / "deploy" / "dynamicconfig" / "development-sql.yaml"
    config = yaml.safe_load(host_file.read_text())
    assert config["limit.maxIDLength"][0]["value"] == 255
    assert config["system.forceSearchAttributesCacheRefreshOnRead"][0]["value"] is True


def test_the_server_default_workflow_task_timeout_matches_escalator_up(services: dict) -> None:
    # `escalator up` passes the same value to the dev server (escalator/devstack/stack.py).
    server = services["temporal"]
    config_path = PurePosixPath("/etc/temporal") / environment(server)["DYNAMIC_CONFIG_FILE_PATH"]
    config = yaml.safe_load(host_path(server, config_path).read_text())
    [entry] = config["history.defaultWorkflowTaskTimeout"]
    assert entry == {"value": WORKFLOW_TASK_TIMEOUT, "constraints": {}}
    assert dynamic_config_flags() == [
        "--dynamic-config-value",
        f'history.defaultWorkflowTaskTimeout="{WORKFLOW_TASK_TIMEOUT}"',
    ]


def _seconds(duration: str) -> float:
    """A compose duration such as 45s, 1m30s or 2m."""
    units = {"h": 3600, "m": 60, "s": 1}
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_compose_waits_longer_than_the_worker_drains(services: dict) -> None:
    worker = services["worker"]
    drain = graceful_shutdown_timeout(environment(worker)).total_seconds()
    assert _seconds(str(worker["stop_grace_period"])) >= drain + 10


def test_schema_job_runs_our_postgres_script(services: dict) -> None:
    job = services["temporal-admin-tools"]
    assert script_of(job) == SCHEMA_SCRIPT
    assert environment(job)["POSTGRES_SEEDS"] in services
    text = SCHEMA_SCRIPT.read_text()
    for database in ("temporal", "temporal_visibility"):
        assert re.search(rf"setup_database {database} ", text), database
    for step in ("create", "setup-schema", "update-schema"):
        assert step in text


def test_setup_job_runs_our_setup_script(services: dict) -> None:
    assert script_of(services["temporal-setup"]) == SETUP_SCRIPT
    code = [
        line for line in SETUP_SCRIPT.read_text().splitlines() if not line.lstrip().startswith("#")
    ]
    assert not any("create-namespace.sh" in line for line in code), "upstream's script has a typo"


def search_attributes_in_script(text: str) -> dict[str, str]:
    block = re.search(r"# BEGIN search-attributes\n(.*?)# END search-attributes", text, re.S)
    assert block, "setup-temporal.sh lost its search-attributes markers"
    pairs = re.findall(r"^\s*([A-Za-z]\w*)=(\w+)\s*$", block.group(1), re.M)
    names = [name for name, _ in pairs]
    assert len(names) == len(set(names)), f"duplicate search attributes in {names}"
    return dict(pairs)


def test_setup_script_lists_every_search_attribute_with_its_type() -> None:
    listed = search_attributes_in_script(SETUP_SCRIPT.read_text())
    assert listed == EXPECTED_SEARCH_ATTRIBUTES, (
        "deploy/setup-temporal.sh must list exactly escalator.domain.search_attributes.ALL_KEYS"
    )


@pytest.mark.parametrize("script", [SETUP_SCRIPT, SCHEMA_SCRIPT], ids=lambda p: p.name)
@needs_bash
def test_shell_scripts_pass_bash_syntax_check(script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert script.read_text().startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in script.read_text()


# --- running setup-temporal.sh against a stand-in CLI ----------------------------------

_FAKE_TEMPORAL = r"""#!/usr/bin/env bash
# Records each call (arguments separated by \x1f) and answers like the temporal CLI.
(IFS=$'\x1f'; printf '%s\n' "$*") >> "$FAKE_LOG"
case "$*" in
  "operator cluster health"*) exit "${FAKE_HEALTH_RC:-0}" ;;
  "operator namespace describe"*) exit "${FAKE_DESCRIBE_RC:-1}" ;;
  "operator namespace create"*) exit 0 ;;
  "operator search-attribute create"*)
    count=$(( $(cat "$FAKE_COUNT" 2>/dev/null || echo 0) + 1 ))
    echo "$count" > "$FAKE_COUNT"
    if (( count <= ${FAKE_NOT_FOUND_FIRST:-0} )); then
      echo "Error: unable to add search attributes: Namespace not found" >&2; exit 1
    fi
    if [[ -n "${FAKE_CREATE_ERROR:-}" ]]; then echo "$FAKE_CREATE_ERROR" >&2; exit 1; fi
    exit 0 ;;
esac
echo "fake temporal: unexpected call: $*" >&2
exit 2
"""


def run_setup(tmp_path: Path, script: Path = SETUP_SCRIPT, **fake: str):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    cli = bin_dir / "temporal"
    cli.write_text(_FAKE_TEMPORAL)
    cli.chmod(0o755)
    log = tmp_path / "calls.log"
    log.unlink(missing_ok=True)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "FAKE_LOG": str(log),
        "FAKE_COUNT": str(tmp_path / "count"),
        "TEMPORAL_ADDRESS": "127.0.0.1:7233",
        "TEMPORAL_NAMESPACE": "support",
        "SETUP_MAX_ATTEMPTS": "3",
        "SETUP_RETRY_DELAY": "0",
        **fake,
    }
    result = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    calls = [line.split("\x1f") for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls


def flag(call: list[str], name: str) -> str | None:
    return call[call.index(name) + 1] if name in call else None


def created_search_attributes(calls: list[list[str]]) -> dict[str, str]:
    creates = [c for c in calls if c[:3] == ["operator", "search-attribute", "create"]]
    return {flag(c, "--name"): flag(c, "--type") for c in creates}


@needs_bash
def test_setup_script_creates_namespace_and_every_search_attribute(tmp_path: Path) -> None:
    result, calls = run_setup(tmp_path)
    assert result.returncode == 0, result.stderr
    assert calls[0][:3] == ["operator", "cluster", "health"]
    namespace_creates = [c for c in calls if c[:3] == ["operator", "namespace", "create"]]
    assert len(namespace_creates) == 1
    assert flag(namespace_creates[0], "--namespace") == "support"
    assert created_search_attributes(calls) == EXPECTED_SEARCH_ATTRIBUTES
    for call in calls:
        assert flag(call, "--address") == "127.0.0.1:7233"
        if call[:2] != ["operator", "cluster"]:
            assert flag(call, "--namespace") == "support"


@needs_bash
def test_setup_script_check_fails_when_a_key_is_missing_from_the_script(tmp_path: Path) -> None:
    # The comparison above is what catches a key added to ALL_KEYS but not the script.
    dropped = next(iter(EXPECTED_SEARCH_ATTRIBUTES))
    text = SETUP_SCRIPT.read_text()
    line = f"  {dropped}={EXPECTED_SEARCH_ATTRIBUTES[dropped]}\n"
    assert line in text
    stale = tmp_path / "stale-setup.sh"
    stale.write_text(text.replace(line, ""))
    assert search_attributes_in_script(stale.read_text()) != EXPECTED_SEARCH_ATTRIBUTES
    result, calls = run_setup(tmp_path, script=stale)
    assert result.returncode == 0, result.stderr
    assert dropped not in created_search_attributes(calls)


@needs_bash
def test_setup_script_is_idempotent(tmp_path: Path) -> None:
    result, calls = run_setup(
        tmp_path,
        FAKE_DESCRIBE_RC="0",
        FAKE_CREATE_ERROR="Error: unable to add search attributes: Search attribute "
        "CaseStatus already exists.",
    )
    assert result.returncode == 0, result.stderr
    assert not [c for c in calls if c[:3] == ["operator", "namespace", "create"]]
    # Tried once each, not retried: "already exists" is success.
    assert len(created_search_attributes(calls)) == len(EXPECTED_SEARCH_ATTRIBUTES)
    assert sum(c[:2] == ["operator", "search-attribute"] for c in calls) == len(ALL_KEYS)


@needs_bash
def test_setup_script_retries_until_the_new_namespace_is_visible(tmp_path: Path) -> None:
    result, calls = run_setup(tmp_path, FAKE_NOT_FOUND_FIRST="2")
    assert result.returncode == 0, result.stderr
    assert created_search_attributes(calls) == EXPECTED_SEARCH_ATTRIBUTES
    first = next(iter(EXPECTED_SEARCH_ATTRIBUTES))
    assert sum(flag(c, "--name") == first for c in calls) == 3


@needs_bash
def test_setup_script_fails_on_a_search_attribute_of_another_type(tmp_path: Path) -> None:
    result, _ = run_setup(
        tmp_path,
        FAKE_DESCRIBE_RC="0",
        FAKE_CREATE_ERROR="Error: search attribute CaseStatus already exists and has "
        "different type Text",
    )
    assert result.returncode != 0
    assert "another type" in result.stderr


@needs_bash
def test_setup_script_gives_up_when_the_server_never_answers(tmp_path: Path) -> None:
    result, calls = run_setup(tmp_path, FAKE_HEALTH_RC="1")
    assert result.returncode != 0
    assert "did not become healthy" in result.stderr
    assert all(c[:3] == ["operator", "cluster", "health"] for c in calls)
    assert len(calls) == 3
