#!/usr/bin/env bash
# The contract run of .ci/run: schemathesis, every check, against a real server.
#
#   deploy/dev/schemathesis-ci.sh [extra `st run` options]
#
# It builds the debug binary (or takes AIGUILLAGE_BIN), makes a throw-away database and
# broker namespace, starts `aiguillage serve` on them, seeds it (schemathesis/seed.sh: an
# organisation, structures, referrals, a token per role), and runs schemathesis/run.sh:
# the server's own /api/v1/openapi.json, every check in every phase, stateful sequences
# through the document's links. It fails on any 5xx and any failed check but what no
# document can prevent (schemathesis/hooks.py names it rule by rule, the run lists it).
# Everything it made is removed on exit.
#
# Environment: run.sh's (ST_MAX_EXAMPLES, ST_SEED, ST_WORKERS, ST_REPORT_DIR …), and
#   AIGUILLAGE_BIN    a binary to test (default: build and use $CARGO_TARGET_DIR or target, /debug/aiguillage)
set -euo pipefail
cd "$(dirname "$0")/../.."

# The debug binary, built (a no-op after `cargo test`) unless one is given.
if [ -z "${AIGUILLAGE_BIN:-}" ]; then
  cargo build --quiet --locked -p aiguillage
fi
bin=$(realpath "${AIGUILLAGE_BIN:-${CARGO_TARGET_DIR:-target}/debug/aiguillage}")

tag=st$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
export DATABASE_URL="postgres:///$tag?host=/var/run/postgresql" AIGUILLAGE_NAMESPACE=$tag
# A throw-away master key for the throw-away database (personal data is sealed with it).
export AIGUILLAGE_MASTER_KEY="${AIGUILLAGE_MASTER_KEY:-$(openssl rand -base64 32)}"
log=$(mktemp -t "aiguillage-$tag.XXXXXX.log")

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
  rm -f "$log"
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
eval "$(AIGUILLAGE=$bin deploy/dev/schemathesis/seed.sh "$base")"
export ST_TOKEN_ADMIN ST_TOKEN_REFERRER ST_TOKEN_MEDIATOR ST_TOKEN_COORDINATOR ST_SEED_STRUCTURE ST_SEED_REFERRAL_IDS

echo "== schemathesis at ${SECONDS}s"
status=0
deploy/dev/schemathesis/run.sh "$base" "$@" || status=$?
if grep -qE 'ERROR|panicked' "$log"; then
  echo "== server errors:"
  grep -E 'ERROR|panicked' "$log" | tail -20
fi
echo "== done in ${SECONDS}s"
exit "$status"
