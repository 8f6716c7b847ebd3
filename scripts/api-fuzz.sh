#!/usr/bin/env bash
# Fuzzes the REST API of a `vellum node` with schemathesis, twice: against the reference node's
# OpenAPI document (docs/reference/codex-openapi.yaml: what a Codex client expects) and against
# the document Vellum serves (/api/codex/v1/openapi.json). Checks: no 5xx answer except a 503 the
# document declares (marketplace endpoints without persistence mode), and every answer of the
# status code, content type and schema the document declares.
#
# Needs python3 with venv and a built binary (`cargo build --workspace --bins`; another one with
# VELLUM_BIN). Installs schemathesis with pip into target/api-fuzz-venv on its first run. The
# node runs on loopback in a temporary directory and is stopped at the end. Bounded: a few
# examples per operation (API_FUZZ_EXAMPLES, default 30) from a fixed seed (API_FUZZ_SEED,
# default 1), well under 3 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SCHEMATHESIS_VERSION=4.32.5
VENV=target/api-fuzz-venv
BIN=${VELLUM_BIN:-target/debug/vellum}
EXAMPLES=${API_FUZZ_EXAMPLES:-30}
SEED=${API_FUZZ_SEED:-1}

if [ ! -x "$BIN" ]; then
  echo "api-fuzz: $BIN is missing: run cargo build --workspace --bins first" >&2
  exit 2
fi
if [ ! -x "$VENV/bin/schemathesis" ]; then
  echo "== api-fuzz: installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vellum-api-fuzz.XXXXXX")
NODE_PID=
stop() {
  if [ -n "$NODE_PID" ] && kill -0 "$NODE_PID" 2>/dev/null; then
    kill "$NODE_PID" 2>/dev/null || true
    wait "$NODE_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap stop EXIT INT TERM

# The node prints `REST API at http://ADDR/api/codex/v1` once it serves.
"$BIN" node --data-dir "$WORK/data" -i 127.0.0.1 --api-port 0 --udp-port 0 --log-level warn \
  >"$WORK/stdout" 2>"$WORK/node.log" &
NODE_PID=$!
BASE=
for _ in $(seq 1 300); do
  BASE=$(sed -n 's/.*REST API at \(http[^ ]*\).*/\1/p' "$WORK/stdout" 2>/dev/null | head -n 1 || true)
  [ -n "$BASE" ] && break
  if ! kill -0 "$NODE_PID" 2>/dev/null; then
    echo "api-fuzz: the node stopped:" >&2
    tail -n 20 "$WORK/node.log" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$BASE" ]; then
  echo "api-fuzz: the node did not serve within 30 s" >&2
  tail -n 20 "$WORK/node.log" >&2
  exit 1
fi
echo "== api-fuzz: node at $BASE"

# The checks: no 5xx answer but 503, which the documents declare where the node answers it (the
# marketplace without persistence mode, a peer record not yet made; status_code_conformance
# fails a 503 that an operation does not declare), and answers as the document says.
cat >"$WORK/vellum.toml" <<'TOML'
[checks]
enabled = false
not_a_server_error = { enabled = true, expected-statuses = ["2xx", "3xx", "4xx", "503"] }
status_code_conformance.enabled = true
content_type_conformance.enabled = true
response_schema_conformance.enabled = true
TOML
# The reference documents downloads as application/octet-stream only, but a node answers them
# with the media type they were uploaded with (Vellum's own document says so).
cat "$WORK/vellum.toml" - >"$WORK/reference.toml" <<'TOML'

[[operations]]
include-operation-id = ["downloadLocal", "downloadNetworkStream"]
checks.content_type_conformance.enabled = false
TOML

fuzz() {
  local what=$1 config=$2 schema=$3
  echo "== api-fuzz: schemathesis with $what"
  # Valid CIDs and peer ids are rare among generated strings; the ones the documents give as
  # examples are asked of the network, which has no peers here: a bounded wait each.
  # Run from the temporary directory: schemathesis keeps a cache in its working directory.
  (cd "$WORK" && "$ROOT/$VENV/bin/schemathesis" --config-file "$config" run "$schema" --url "$BASE" \
    --phases examples,coverage,fuzzing \
    --max-examples "$EXAMPLES" \
    --seed "$SEED" \
    --workers 2 \
    --request-timeout 20 \
    --continue-on-failure \
    --suppress-health-check all \
    --no-shrink \
    --warnings off \
    --output-truncate true)
}

status=0
fuzz "the reference document" "$WORK/reference.toml" "$ROOT/docs/reference/codex-openapi.yaml" || status=1
fuzz "Vellum's own document" "$WORK/vellum.toml" "$BASE/openapi.json" || status=1
if [ "$status" -ne 0 ]; then
  echo "== api-fuzz: failures above; the node's log:" >&2
  tail -n 40 "$WORK/node.log" >&2
fi
exit "$status"
