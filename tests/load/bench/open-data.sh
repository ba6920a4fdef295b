#!/usr/bin/env bash
# The open statistics' read benchmark at national size (issue 25): a database of its own
# with REFERRALS referrals in insights' facts (tests/load/bench/open-data-facts.sql), the
# release server on it, then:
#   - the first computation of the published table (what the first reader, and then the
#     refresher every ten minutes, pays), timed on the first request;
#   - aiguillage-readbench on the files, the schema and the public page, p50/p90/p99.
# It measures and asserts nothing. The database and the namespace are dropped at the end.
#
#   tests/load/bench/open-data.sh                 a million referrals
#   REFERRALS=100000 tests/load/bench/open-data.sh
#
# Needs the release binaries (`cargo build --release -p aiguillage -p aiguillage-load`,
# found in CARGO_TARGET_DIR or target/), PostgreSQL and RabbitMQ (deploy/dev/services.sh).
set -euo pipefail
cd "$(dirname "$0")/../../.."
source deploy/dev/services.sh
source tests/load/bench/lib.sh
ensure_postgres
ensure_rabbitmq

referrals=${REFERRALS:-1000000}
requests=${REQUESTS:-500}
bench_release aiguillage aiguillage-readbench

database="aig_bench_opendata_$$"
port=${PORT:-18$((RANDOM % 900 + 100))}
export DATABASE_URL="postgres://$(id -un)@%2Fvar%2Frun%2Fpostgresql/$database"
export AIGUILLAGE_NAMESPACE="bench-opendata-$$"
export AIGUILLAGE_LISTEN="127.0.0.1:$port"
export RUST_LOG=${RUST_LOG:-warn}
server=""
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  psql -q -h /var/run/postgresql -d postgres -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
}
trap cleanup EXIT

"$release/aiguillage" migrate >/dev/null
started=$(date +%s%N)
psql -q -h /var/run/postgresql -v referrals="$referrals" -f tests/load/bench/open-data-facts.sql "$database"
echo "seeded $referrals referrals in $((($(date +%s%N) - started) / 1000000)) ms"
psql -h /var/run/postgresql -tAc "SELECT 'insights.referrals: ' || pg_size_pretty(pg_total_relation_size('insights.referrals'))
  || ', insights.events: ' || pg_size_pretty(pg_total_relation_size('insights.events'))
  || ' (' || (SELECT count(*) FROM insights.events) || ' rows)'" "$database"

"$release/aiguillage" serve --services insights,web >"/tmp/$database.log" 2>&1 &
server=$!
base="http://$AIGUILLAGE_LISTEN"
deadline=$((SECONDS + 60))
until curl -fs "$base/healthz" >/dev/null; do
  if [ "$SECONDS" -gt "$deadline" ] || ! kill -0 "$server" 2>/dev/null; then
    echo "the server did not start:" >&2
    cat "/tmp/$database.log" >&2
    exit 1
  fi
  sleep 0.2
done

echo "first computation of the published table (the first request, $referrals referrals):"
curl -s -o /dev/null -w '  %{http_code} in %{time_total} s\n' "$base/api/v1/open-data/referrals.csv"
psql -h /var/run/postgresql -tAc "SELECT '  published rows: ' || count(*) || ', of which with a secret cell: '
  || count(*) FILTER (WHERE secret <> '') FROM insights.open_data" "$database"

"$release/aiguillage-readbench" --base "$base" --requests "$requests" \
  /api/v1/open-data/referrals.csv \
  /api/v1/open-data/referrals.json \
  '/api/v1/open-data/referrals.json?departement=16' \
  /api/v1/open-data/schema.json \
  /statistiques \
  '/statistiques?departement=75'
