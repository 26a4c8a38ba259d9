# Two commands set everything up: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-unit lint format clean venv browser postgres promtool alertmanager bench bench-smoke

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,devstack]'
	@touch $(STAMP)

venv: $(STAMP)

# The benchmark suite (bench/, docs/benchmarks.md) needs the dev and bench extras.
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,devstack,bench]'
	@touch $(BENCH_STAMP)

# Escalator next to a bare-Temporal baseline: about 14 minutes on 2 CPUs.
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run

# Tiny sizes, under a minute: checks that the harness works (CI), not the goals.
bench-smoke: $(BENCH_STAMP)
	$(BIN)/python -m bench.run --smoke

run: $(STAMP)
	$(BIN)/escalator up

# The Web UI test drives Debian's Chromium (never a downloaded browser). Installing
# it needs root and apt; where that fails the test is skipped and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the Web UI test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "chromium could not be installed; the Web UI test will be skipped"; \
	  else echo "chromium not installed (needs root + apt); the Web UI test will be skipped"; fi; }

# The ledger's Postgres tests start a real server from Debian's postgresql package.
postgres:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's postgresql for the ledger tests"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null) \
	      || echo "postgresql could not be installed; the Postgres ledger tests will be skipped"; \
	  else echo "postgresql not installed (needs root + apt); the Postgres ledger tests will be skipped"; fi; }

# The metrics test checks the worker's /metrics with promtool, from Debian's prometheus.
promtool:
	@command -v promtool >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's prometheus (promtool) for the metrics test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null) \
	      || echo "prometheus could not be installed; the promtool check will be skipped"; \
	  else echo "promtool not installed (needs root + apt); the promtool check will be skipped"; fi; }

# The alert intake test sends alerts through a real Alertmanager, Debian's package.
alertmanager:
	@command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's prometheus-alertmanager for the alert intake test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null) \
	      || echo "prometheus-alertmanager could not be installed; the Alertmanager test will be skipped"; \
	  else echo "alertmanager not installed (needs root + apt); the Alertmanager test will be skipped"; fi; }

# Everything: the lint checks first, then every test (unit, Temporal, integration).
test: lint browser postgres promtool alertmanager
	$(BIN)/python -m pytest

# The pure tests only: no Temporal server, no network (a socket connect fails the test);
# tests/conftest.py marks them `unit`. Seconds, not minutes.
test-unit: $(STAMP)
	ESCALATOR_FAST_LANE=1 $(BIN)/python -m pytest -m unit -p no:cacheprovider -q

# Style, the import layers (pyproject.toml [tool.importlinter]), the determinism guard
# (ruff TID251) and the types of escalator/domain and workflows/ ([tool.mypy]).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .data .pytest_cache build *.egg-info
