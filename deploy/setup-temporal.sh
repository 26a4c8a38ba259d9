#!/usr/bin/env bash
# One-shot set-up of the Temporal cluster for Escalator (the `temporal-setup` service
# in docker-compose.yml; runs in the temporalio/admin-tools image, which has the
# `temporal` CLI and bash).
#
#   1. wait until the frontend at $TEMPORAL_ADDRESS answers `cluster health`;
#   2. create the namespace $TEMPORAL_NAMESPACE unless it exists;
#   3. create every custom search attribute Escalator upserts.
#
# Safe to run again: an existing namespace or search attribute is left alone, but a
# search attribute that exists with a different type is an error.
# Written from scratch on purpose: upstream's create-namespace.sh has a typo on its
# failure path that `set -u` turns into a confusing "unbound variable" error.
set -euo pipefail

ADDRESS="${TEMPORAL_ADDRESS:-temporal:7233}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
RETENTION="${TEMPORAL_NAMESPACE_RETENTION:-72h}"
MAX_ATTEMPTS="${SETUP_MAX_ATTEMPTS:-60}"
RETRY_DELAY="${SETUP_RETRY_DELAY:-2}"

# Must match escalator/domain/search_attributes.py (ALL_KEYS, cli_type); tests/test_compose.py
# fails when the two differ. One Name=Type per line between the markers.
# BEGIN search-attributes
SEARCH_ATTRIBUTES=(
  CaseStatus=Keyword
  CaseTier=Int
  CaseTierName=Keyword
  CaseTeam=Keyword
  CaseSeverity=Keyword
  CaseAssignee=Keyword
  CaseAccount=Keyword
  SlaBreached=Bool
  NextDeadline=Datetime
  NeedsReview=Bool
  CaseCategory=Keyword
  CustomerTier=Keyword
  PolicyVersion=Keyword
)
# END search-attributes

log() {
  echo "setup-temporal: $*"
}

fail() {
  echo "setup-temporal: error: $*" >&2
  exit 1
}

# Prefer an IPv4 address for the frontend: the server binds 0.0.0.0 only, and a
# name that resolves to an IPv6 address first would never answer.
resolve_ipv4() {
  local host="${ADDRESS%:*}" port="${ADDRESS##*:}" ip=""
  [[ "$ADDRESS" == *:* ]] || return 0
  if command -v getent >/dev/null 2>&1; then
    ip="$(getent ahostsv4 "$host" 2>/dev/null | awk 'NR == 1 { print $1 }' || true)"
  fi
  if [[ -n "$ip" ]]; then
    ADDRESS="$ip:$port"
  fi
}

wait_for_server() {
  local attempt
  for ((attempt = 1; attempt <= MAX_ATTEMPTS; attempt++)); do
    if temporal operator cluster health --address "$ADDRESS" >/dev/null 2>&1; then
      log "server at $ADDRESS is serving"
      return 0
    fi
    log "waiting for the server at $ADDRESS (attempt $attempt/$MAX_ATTEMPTS)"
    sleep "$RETRY_DELAY"
  done
  fail "the server at $ADDRESS did not become healthy after $MAX_ATTEMPTS attempts"
}

ensure_namespace() {
  local output
  if temporal operator namespace describe --address "$ADDRESS" \
    --namespace "$NAMESPACE" >/dev/null 2>&1; then
    log "namespace '$NAMESPACE' already exists"
    return 0
  fi
  if output="$(temporal operator namespace create --address "$ADDRESS" \
    --namespace "$NAMESPACE" --retention "$RETENTION" 2>&1)"; then
    log "created namespace '$NAMESPACE' (retention $RETENTION)"
    return 0
  fi
  if [[ "${output,,}" == *"already exists"* || "${output,,}" == *"already registered"* ]]; then
    log "namespace '$NAMESPACE' already exists"
    return 0
  fi
  fail "could not create namespace '$NAMESPACE': $output"
}

# A new namespace takes a few seconds to reach every frontend's cache, so "not found"
# answers are retried like connection errors.
create_search_attribute() {
  local name="$1" type="$2" output attempt
  for ((attempt = 1; attempt <= MAX_ATTEMPTS; attempt++)); do
    if output="$(temporal operator search-attribute create --address "$ADDRESS" \
      --namespace "$NAMESPACE" --name "$name" --type "$type" 2>&1)"; then
      log "created search attribute $name ($type)"
      return 0
    fi
    # The CLI says "already exists and has different type" for a clash: not fine.
    if [[ "${output,,}" == *"different type"* ]]; then
      fail "search attribute $name exists with another type than $type: $output"
    fi
    if [[ "${output,,}" == *"already exists"* ]]; then
      log "search attribute $name already exists"
      return 0
    fi
    log "could not create search attribute $name yet (attempt $attempt/$MAX_ATTEMPTS): $output"
    sleep "$RETRY_DELAY"
  done
  fail "could not create search attribute $name ($type) after $MAX_ATTEMPTS attempts"
}

main() {
  command -v temporal >/dev/null 2>&1 || fail "the temporal CLI is not on PATH"
  resolve_ipv4
  wait_for_server
  ensure_namespace
  local entry
  for entry in "${SEARCH_ATTRIBUTES[@]}"; do
    create_search_attribute "${entry%%=*}" "${entry#*=}"
  done
  log "done: namespace '$NAMESPACE' has ${#SEARCH_ATTRIBUTES[@]} Escalator search attributes"
}

main "$@"
