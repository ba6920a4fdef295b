#!/usr/bin/env bash
# Issue 27's full scenarios: the release server on the local clusters of deploy/cluster
# (three RabbitMQ nodes, PostgreSQL under pg_auto_failover), aiguillage-load at RATE
# referrals/s for DURATION per scenario, a fault injected FAULT_AT into each run, and the
# generator's consistency check (0 lost, 0 doubled, 0 overbooked, every accepted
# submission offered or waitlisted exactly once). Prints, per scenario, the generator's
# throughput, submit p99, errors and whether it was consistent. Asserts nothing.
#
#   tests/load/bench/cluster-faults.sh                    every scenario
#   SCENARIOS="broker-kill db-kill" tests/load/bench/cluster-faults.sh
#
# Scenarios: broker-kill (kill -9 of node 1, then its restart), broker-stop (node 2
# stopped for 60 s), db-kill (kill -9 of the primary, the standby promoted, the old
# primary back as a standby at the end). Needs the release binaries
# (`cargo build --release -p aiguillage -p aiguillage-load`, in CARGO_TARGET_DIR or
# target/). Leaves the clusters running (deploy/cluster/*.sh stop).
set -euo pipefail
cd "$(dirname "$0")/../../.."

rate=${RATE:-100}
duration=${DURATION:-120s}
fault_at=${FAULT_AT:-30}
scenarios=${SCENARIOS:-broker-kill broker-stop db-kill}
release="${CARGO_TARGET_DIR:-target}/release"
work=$(mktemp -d -t aiguillage-cluster-faults.XXXXXX)

export "$(deploy/cluster/rabbitmq.sh start)"
export "$(deploy/cluster/postgres.sh start)"
# A database of this run's own on the cluster: the URL's path replaced, its query kept.
database="aig_cluster_$$"
base=${DATABASE_URL%%\?*}
export DATABASE_URL="${base%/*}/$database?${DATABASE_URL#*\?}"
# The generator listens for the run's events on node 3, which no scenario stops (the
# server is given all three nodes).
generator_amqp=${AMQP_URL##*,}
export AIGUILLAGE_NAMESPACE="cluster-$$" AIGUILLAGE_LISTEN="127.0.0.1:${PORT:-18280}"
export AIGUILLAGE_BASE_URL="http://$AIGUILLAGE_LISTEN" RUST_LOG=${RUST_LOG:-warn}
export AIGUILLAGE_MASTER_KEY=${AIGUILLAGE_MASTER_KEY:-$(openssl rand -base64 32)}
"$release/aiguillage" migrate >/dev/null
"$release/aiguillage" serve --services referrals,directory,matcher,insights,accounts,web >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; echo "run files in $work" >&2' EXIT
until curl -fs "$AIGUILLAGE_BASE_URL/readyz" >/dev/null; do sleep 0.5; done

inject() {
  sleep "$fault_at"
  case $1 in
    broker-kill) deploy/cluster/rabbitmq.sh kill 1; sleep 20; deploy/cluster/rabbitmq.sh start-node 1 ;;
    broker-stop) deploy/cluster/rabbitmq.sh stop-node 2; sleep 60; deploy/cluster/rabbitmq.sh start-node 2 ;;
    db-kill) date +%s.%N >"$work/db-kill.at"; deploy/cluster/postgres.sh kill-primary >"$work/old-primary" ;;
  esac
}

for scenario in $scenarios; do
  inject "$scenario" >"$work/$scenario.inject.log" 2>&1 &
  injector=$!
  "$release/aiguillage-load" --rate "$rate" --duration "$duration" --no-ceilings --soak --amqp-url "$generator_amqp" \
    >"$work/$scenario.json" 2>"$work/$scenario.log" || true
  wait "$injector" || true
  if [ "$scenario" = db-kill ]; then
    deploy/cluster/postgres.sh restart-node "$(cat "$work/old-primary")" >>"$work/$scenario.inject.log" 2>&1
  fi
  python3 - "$scenario" "$work/$scenario.json" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))
print(f"{name}: consistent {r.get('consistent')}, end to end {r.get('end_to_end_rate')}/s, "
      f"submit p99 {r['submit_latency_ms']['p99']} ms, created {r.get('created_201')} of {r.get('submitted')}, submit→offered p99 {r['submit_to_offered_ms']['p99']} ms, "
      f"errors {r.get('errors')}")
PY
done
