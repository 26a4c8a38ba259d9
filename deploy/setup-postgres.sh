#!/usr/bin/env bash
# One-shot PostgreSQL schema set-up for the Temporal server (the `temporal-admin-tools`
# service in docker-compose.yml; runs in the temporalio/admin-tools image, which ships
# temporal-sql-tool and the schema files under /etc/temporal/schema).
#
# Creates the `temporal` and `temporal_visibility` databases, then brings both schemas
# to the version of the admin-tools image. Every step is idempotent, so it runs on
# every `docker compose up` and also applies the migrations after a version bump.
set -euo pipefail

HOST="${POSTGRES_SEEDS:-postgresql}"
PORT="${DB_PORT:-5432}"
USER_NAME="${POSTGRES_USER:-temporal}"
# temporal-sql-tool reads the password from SQL_PASSWORD.
export SQL_PASSWORD="${SQL_PASSWORD:-temporal}"
SCHEMA_DIR="${SCHEMA_DIR:-/etc/temporal/schema/postgresql/v12}"
MAX_ATTEMPTS="${SETUP_MAX_ATTEMPTS:-60}"
RETRY_DELAY="${SETUP_RETRY_DELAY:-2}"

log() {
  echo "setup-postgres: $*"
}

# The compose healthcheck already waits for PostgreSQL; this also covers running the
# script by hand. Uses bash's /dev/tcp, so it needs no nc or pg_isready.
wait_for_postgres() {
  local attempt
  for ((attempt = 1; attempt <= MAX_ATTEMPTS; attempt++)); do
    if (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then
      log "PostgreSQL at $HOST:$PORT accepts connections"
      return 0
    fi
    log "waiting for PostgreSQL at $HOST:$PORT (attempt $attempt/$MAX_ATTEMPTS)"
    sleep "$RETRY_DELAY"
  done
  echo "setup-postgres: error: PostgreSQL at $HOST:$PORT is not reachable" >&2
  exit 1
}

sql_tool() {
  temporal-sql-tool --plugin postgres12 --ep "$HOST" -p "$PORT" -u "$USER_NAME" "$@"
}

setup_database() {
  local db="$1" versioned="$2"
  log "database $db: create, set up, update schema from $versioned"
  sql_tool --db "$db" create
  sql_tool --db "$db" setup-schema -v 0.0
  sql_tool --db "$db" update-schema -d "$versioned"
}

wait_for_postgres
setup_database temporal "$SCHEMA_DIR/temporal/versioned"
setup_database temporal_visibility "$SCHEMA_DIR/visibility/versioned"
# Escalator's case ledger gets a database of its own; the worker creates its tables.
log "database escalator_ledger: create"
sql_tool --db escalator_ledger create
log "schema set-up complete"
