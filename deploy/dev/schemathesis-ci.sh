#!/usr/bin/env bash
# The contract run of .ci/run: schemathesis, every check, against a real server.
#
#   deploy/dev/schemathesis-ci.sh [extra `st run` options]
#
# It builds the debug binary (or takes AIGUILLAGE_BIN), makes a throw-away database and
# broker namespace, seeds them (deploy/dev/schemathesis-ci/seed.py: an organisation,
# structures, referrals in each state, a token per role), starts `aiguillage serve`,
# and runs schemathesis on the server's own /api/v1/openapi.json with every check in
# every phase (examples, coverage, fuzzing, stateful through the document's links).
# It exits non-zero on any 5xx and any failed check, except what no document can
# prevent, which hooks.py names rule by rule (a 422 naming only reference data, the
# clock, or two query parameters at once; a new referral's 404 while it is outside a
# mediator's scope) and the run lists. Everything it made is removed on exit.
#
# Environment:
#   AIGUILLAGE_BIN    a binary to test (default: build and use $CARGO_TARGET_DIR or target, /debug/aiguillage)
#   ST_MAX_EXAMPLES   examples per operation and phase (default 25)
#   ST_SEED           random seed (default 1: reproducible); `random` for a new one
#   ST_WORKERS        concurrent workers (default 2)
#   ST_REPORT_DIR     JUnit and NDJSON reports (default $cache/schemathesis-ci-report)
#   ST_IMPORT         a Mednum file to import first (e.g. the demo's Charente directory)
set -euo pipefail
cd "$(dirname "$0")/../.."
here=deploy/dev/schemathesis-ci

cache=${XDG_CACHE_HOME:-$HOME/.cache}/aiguillage
venv=$cache/schemathesis-ci-venv
# The debug binary, built (a no-op after `cargo test`) unless one is given.
if [ -z "${AIGUILLAGE_BIN:-}" ]; then
  cargo build --quiet --locked -p aiguillage
fi
bin=$(realpath "${AIGUILLAGE_BIN:-${CARGO_TARGET_DIR:-target}/debug/aiguillage}")

# schemathesis, pinned, in a virtual environment of its own (reinstalled when the pin moves).
if ! cmp -s "$here/requirements.txt" "$venv/requirements.txt" 2>/dev/null; then
  echo "== installing schemathesis in $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$venv/requirements.txt"
fi

tag=st$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
export DATABASE_URL="postgres:///$tag?host=/var/run/postgresql" AIGUILLAGE_NAMESPACE=$tag
export ST_STATE_DIR=$cache/schemathesis-ci-state/$tag
report_dir=${ST_REPORT_DIR:-$cache/schemathesis-ci-report}
log=$ST_STATE_DIR/server.log
mkdir -p "$ST_STATE_DIR" "$report_dir"

server=
# shellcheck disable=SC2317 # run by the trap
cleanup() {
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
    kill -TERM "$server"
    wait "$server" 2>/dev/null || true
  fi
  psql -q -d postgres -c "DROP DATABASE IF EXISTS \"$tag\" WITH (FORCE)" >/dev/null 2>&1 || true
  # The namespace's queues, then its exchanges (rabbitmqctl has no command for those).
  for q in $(rabbitmqctl list_queues --quiet --no-table-headers name 2>/dev/null | grep "^$tag\." || true); do
    rabbitmqctl delete_queue --quiet "$q" >/dev/null 2>&1 || true
  done
  for x in $(rabbitmqctl list_exchanges --quiet --no-table-headers name 2>/dev/null | grep "^$tag\." || true); do
    rabbitmqctl eval "rabbit_exchange:delete(rabbit_misc:r(<<\"/\">>, exchange, <<\"$x\">>), false, <<\"ci\">>)." \
      >/dev/null 2>&1 || true
  done
  rm -rf "$ST_STATE_DIR"
}
trap cleanup EXIT

echo "== server on $base (database and namespace $tag) at ${SECONDS}s"
"$bin" migrate 2>>"$log"
"$bin" serve --listen "127.0.0.1:$port" >>"$log" 2>&1 &
server=$!
for _ in $(seq 1 120); do
  curl -fsS "$base/readyz" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; echo "the server died" >&2; exit 1; }
  sleep 0.5
done
curl -fsS "$base/readyz" >/dev/null || { cat "$log"; echo "the server is not ready" >&2; exit 1; }

echo "== seeding at ${SECONDS}s"
eval "$(python3 "$here/seed.py" "$base" "$bin" ${ST_IMPORT:+"$ST_IMPORT"})"
export ST_TOKEN_ADMIN ST_TOKEN_REFERRER ST_TOKEN_MEDIATOR ST_TOKEN_COORDINATOR ST_MEDIATOR_STRUCTURE
export ST_BASE_URL=$base

args=(
  --checks all
  --max-examples "${ST_MAX_EXAMPLES:-25}"
  --workers "${ST_WORKERS:-2}"
  --request-timeout 10
  --report "junit,ndjson" --report-dir "$report_dir"
  --no-color
)
seed=${ST_SEED:-1}
[ "$seed" != random ] && args+=(--seed "$seed")

echo "== the document is valid OpenAPI 3.1 (openapi-spec-validator)"
curl -fsS "$base/api/v1/openapi.json" >"$ST_STATE_DIR/openapi.json"
"$venv/bin/python" -c 'import json, sys; from openapi_spec_validator import validate; validate(json.load(open(sys.argv[1])))' \
  "$ST_STATE_DIR/openapi.json"

echo "== schemathesis $("$venv/bin/st" --version | awk '{print $NF}') at ${SECONDS}s"
cp "$here/hooks.py" "$ST_STATE_DIR/"
{
  read -ra ids <<<"$ST_REFERRAL_IDS"
  printf 'dictionaries.referrals = { values = [%s] }\n' "$(printf '"%s", ' "${ids[@]}" | sed 's/, $//')"
  cat "$here/schemathesis.toml"
} >"$ST_STATE_DIR/schemathesis.toml"
status=0
(cd "$ST_STATE_DIR" && PYTHONPATH=. "$venv/bin/st" --config-file schemathesis.toml \
  run "$base/api/v1/openapi.json" "${args[@]}" "$@") || status=$?
if [ -s "$ST_STATE_DIR/accepted.log" ]; then
  echo "== accepted, as no document can prevent them (hooks.py), by operation and rule:"
  cut -f1,2,4 "$ST_STATE_DIR/accepted.log" | sort | uniq -c | sort -rn
fi
if grep -qE 'ERROR|panicked' "$log"; then
  echo "== server errors:"
  grep -E 'ERROR|panicked' "$log" | tail -20
fi
echo "== done in ${SECONDS}s"
exit "$status"
