#!/usr/bin/env bash
# Issue 24's speed criterion, side by side in one session: the same release server, runs
# at RATE referrals/s for DURATION, A (`--appointments 0.5 --accept-only`: the places
# accept half of the offers, and set no appointment) and B (`--appointments 0.5`: the same
# half accepted and given an appointment, so the person is sent an SMS), ROUNDS times
# each, in the order A B B A A B…: the database grows with every run, and each side gets
# as many early runs as late ones. Both sides accept the same offers: what differs is
# what issue 24 adds.
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
source tests/load/bench/lib.sh
ensure_postgres
ensure_rabbitmq
ensure_smtp_venv

rate=${RATE:-100}
duration=${DURATION:-60s}
rounds=${ROUNDS:-2}
bench_release
bench_env appt 18180
trap bench_stop EXIT
bench_capture 2591 8191
bench_serve all

# The run's database's commits and the cluster's WAL (records, bytes, flushes to disk):
# what a run waits on when it is not short of CPU.
wal_counters() {
  psql -h /var/run/postgresql -d postgres -tA -F ' ' -c \
    "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = '$database'),
            wal_records, wal_bytes, wal_sync FROM pg_stat_wal"
}

run() {
  local label=$1 n=$2
  shift 2
  local out="$work/$label$n.json" before after
  before=$(wal_counters)
  python3 tests/load/bench/cpu_split.py "$work/$label$n.cpu.json" -- \
    "$release/aiguillage-load" --rate "$rate" --duration "$duration" --no-ceilings --seed "$n" "$@" >"$out" 2>"$work/$label$n.log"
  after=$(wal_counters)
  python3 tests/load/bench/ab_report.py run "$label$n" "$out"
  echo "$before $after" | awk '{ printf "    database: %d commits, WAL %d records, %.1f MB, %d flushes to disk\n", $5 - $1, $6 - $2, ($7 - $3) / 1e6, $8 - $4 }'
}

for n in $(seq 1 "$rounds"); do
  if ((n % 2)); then
    run A "$n" --appointments 0.5 --accept-only
    run B "$n" --appointments 0.5
  else
    run B "$n" --appointments 0.5
    run A "$n" --appointments 0.5 --accept-only
  fi
done

python3 tests/load/bench/ab_report.py summary "$work" "$rounds"
