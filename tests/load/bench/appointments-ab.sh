#!/usr/bin/env bash
# Issue 24's speed criterion, side by side in one session: the same release server, runs
# at RATE referrals/s for DURATION, alternating A (`--appointments 0.5 --accept-only`: the
# places accept half of the offers, and set no appointment) and B (`--appointments 0.5`:
# the same half accepted and given an appointment, so the person is sent an SMS), ROUNDS
# times each. Both sides accept the same offers: what differs is what issue 24 adds.
# Prints each run's submit → offered p50/p99, where the CPU went (cpu_split.py: cores
# used by the server, PostgreSQL, RabbitMQ, the generator and the capture servers) and,
# for B, the person messages by kind and status and when the due ones drained; then the
# medians of A's and B's p99 and their ratio. It measures and asserts nothing.
#
#   tests/load/bench/appointments-ab.sh
#   RATE=100 DURATION=60s ROUNDS=2 tests/load/bench/appointments-ab.sh
#
# Needs the release binaries (`cargo build --release -p aiguillage -p aiguillage-load`,
# in CARGO_TARGET_DIR or target/), PostgreSQL and RabbitMQ (deploy/dev/services.sh).
# Starts its own capture SMTP and SMS servers, database and namespace; removes the
# database at the end.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source deploy/dev/services.sh
source deploy/dev/tools.sh
ensure_postgres
ensure_rabbitmq
ensure_smtp_venv

rate=${RATE:-100}
duration=${DURATION:-60s}
rounds=${ROUNDS:-2}
release="${CARGO_TARGET_DIR:-target}/release"
for bin in aiguillage aiguillage-load; do
  if [ ! -x "$release/$bin" ]; then
    echo "no $release/$bin: run \`cargo build --release -p aiguillage -p aiguillage-load\` first" >&2
    exit 1
  fi
done

database="aig_bench_appt_$$"
work=$(mktemp -d -t aiguillage-appt-ab.XXXXXX)
export DATABASE_URL="postgres://$(id -un)@%2Fvar%2Frun%2Fpostgresql/$database"
export AIGUILLAGE_NAMESPACE="bench-appt-$$"
export AIGUILLAGE_LISTEN="127.0.0.1:${PORT:-18180}"
export AIGUILLAGE_BASE_URL="http://$AIGUILLAGE_LISTEN"
export RUST_LOG=${RUST_LOG:-warn}
# The person records are sealed: a throw-away key for this run's database.
export AIGUILLAGE_MASTER_KEY=${AIGUILLAGE_MASTER_KEY:-$(openssl rand -base64 32)}
export SMTP_PORT=${BENCH_SMTP_PORT:-2591} SMTP_STATE_DIR="$work/smtp"
export SMS_PORT=${BENCH_SMS_PORT:-8191} SMS_STATE_DIR="$work/sms" SMS_API_KEY=bench-sms-key
export AIGUILLAGE_SMTP_URL="smtp://127.0.0.1:$SMTP_PORT"
export AIGUILLAGE_SMS_URL="http://127.0.0.1:$SMS_PORT" AIGUILLAGE_SMS_API_KEY=$SMS_API_KEY
server=""
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  deploy/dev/smtp/stop.sh >/dev/null 2>&1 || true
  deploy/dev/sms/stop.sh >/dev/null 2>&1 || true
  psql -q -h /var/run/postgresql -d postgres -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
  echo "run files kept in $work" >&2
}
trap cleanup EXIT

deploy/dev/smtp/start.sh >/dev/null
deploy/dev/sms/start.sh >/dev/null
"$release/aiguillage" migrate >/dev/null
"$release/aiguillage" serve --services all >"$work/server.log" 2>&1 &
server=$!
deadline=$((SECONDS + 60))
until curl -fs "$AIGUILLAGE_BASE_URL/readyz" >/dev/null; do
  if [ "$SECONDS" -gt "$deadline" ] || ! kill -0 "$server" 2>/dev/null; then
    echo "the server did not start:" >&2
    cat "$work/server.log" >&2
    exit 1
  fi
  sleep 0.2
done

run() {
  local label=$1 n=$2
  shift 2
  local out="$work/$label$n.json"
  python3 tests/load/bench/cpu_split.py "$work/$label$n.cpu.json" -- \
    "$release/aiguillage-load" --rate "$rate" --duration "$duration" --no-ceilings --seed "$n" "$@" >"$out" 2>"$work/$label$n.log"
  python3 tests/load/bench/ab_report.py run "$label$n" "$out"
}

for n in $(seq 1 "$rounds"); do
  run A "$n" --appointments 0.5 --accept-only
  run B "$n" --appointments 0.5
done

python3 tests/load/bench/ab_report.py summary "$work" "$rounds"
