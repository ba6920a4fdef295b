#!/usr/bin/env bash
# Issue 27's full scenarios: the release server on the local clusters of deploy/cluster
# (three RabbitMQ nodes, PostgreSQL under pg_auto_failover), aiguillage-load at RATE
# referrals/s for DURATION per scenario, a fault injected FAULT_AT into each run, and the
# generator's consistency check (0 lost, 0 doubled, 0 overbooked, every accepted
# submission offered or waitlisted exactly once). Prints, per scenario, the generator's
# throughput, submit p99, errors, whether it was consistent, and the time to recovery
# (from the fault to the end of the first 10 s window back at the full rate with
# submit→offered p99 within twice its value before the fault). Asserts nothing.
#
#   tests/load/bench/cluster-faults.sh                    every scenario
#   SCENARIOS="broker-kill db-kill" tests/load/bench/cluster-faults.sh
#
# Scenarios: broker-kill (kill -9 of the node that leads most queues, then its restart),
# broker-stop (node 2 stopped for 60 s), broker-partition (the node that leads most
# queues cut off from the other two for 60 s, then healed), db-kill (kill -9 of the
# primary, the standby promoted, the old primary back as a standby at the end). Node 3,
# where the generator listens, is never the node killed or cut off. Needs the release binaries
# (`cargo build --release -p aiguillage -p aiguillage-load`, in CARGO_TARGET_DIR or
# target/). Leaves the clusters running (deploy/cluster/*.sh stop).
set -euo pipefail
cd "$(dirname "$0")/../../.."

rate=${RATE:-100}
duration=${DURATION:-120s}
fault_at=${FAULT_AT:-30}
scenarios=${SCENARIOS:-broker-kill broker-stop broker-partition db-kill}
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
    broker-kill)
      leader=$(deploy/cluster/rabbitmq.sh leader | grep -vx 3 | head -n 1)
      deploy/cluster/rabbitmq.sh kill "$leader"; sleep 20; deploy/cluster/rabbitmq.sh start-node "$leader" ;;
    broker-stop) deploy/cluster/rabbitmq.sh stop-node 2; sleep 60; deploy/cluster/rabbitmq.sh start-node 2 ;;
    broker-partition)
      leader=$(deploy/cluster/rabbitmq.sh leader | grep -vx 3 | head -n 1)
      deploy/cluster/rabbitmq.sh partition "$leader"; sleep 60; deploy/cluster/rabbitmq.sh heal ;;
    db-kill) date +%s.%N >"$work/db-kill.at"; deploy/cluster/postgres.sh kill-primary >"$work/old-primary" ;;
  esac
}

for scenario in $scenarios; do
  inject "$scenario" >"$work/$scenario.inject.log" 2>&1 &
  injector=$!
  "$release/aiguillage-load" --rate "$rate" --duration "$duration" --no-ceilings --soak --idempotency-keys \
    --amqp-url "$generator_amqp" \
    >"$work/$scenario.json" 2>"$work/$scenario.log" || true
  wait "$injector" || true
  if [ "$scenario" = db-kill ]; then
    deploy/cluster/postgres.sh restart-node "$(cat "$work/old-primary")" >>"$work/$scenario.inject.log" 2>&1
  fi
  python3 - "$scenario" "$work/$scenario.json" "$fault_at" "$rate" <<'PY'
import json, statistics, sys
name, path, fault_at, rate = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
r = json.load(open(path))
# Time to recovery, from the 10 s windows of --soak: from the fault to the end of the
# first window after it in which as many referrals were created as were sent (90 %) and
# submit→offered p99 was back within twice its median before the fault.
windows = r.get("soak", [])
before = [w["window_submit_to_offered_ms"]["p99"] for w in windows
          if w["elapsed_s"] <= fault_at and w["window_submit_to_offered_ms"].get("p99") is not None]
baseline = statistics.median(before) if before else None
recovered = None
if baseline is not None:
    for w in windows:
        p99 = w["window_submit_to_offered_ms"].get("p99")
        if w["elapsed_s"] > fault_at + 10 and w["window_rate"] >= 0.9 * rate and p99 is not None and p99 <= 2 * baseline:
            recovered = w["elapsed_s"] - fault_at
            break
print(f"{name}: consistent {r.get('consistent')}, end to end {r.get('end_to_end_rate')}/s, "
      f"submit p99 {r['submit_latency_ms']['p99']} ms, created {r.get('created_201')} of {r.get('submitted')}, submit→offered p99 {r['submit_to_offered_ms']['p99']} ms, "
      f"errors {r.get('errors')} (of which committed anyway: {(r.get('indeterminate') or {}).get('committed_anyway')}), recovered {'after ' + str(round(recovered)) + ' s' if recovered is not None else 'not within the run'} "
      f"(offered p99 before the fault {baseline} ms)")
PY
done
