#!/usr/bin/env bash
# Issue 28's trust check on a recorded run of the load generator: the release server, a
# run at RATE referrals/s for DURATION in which the places accept half of their offers at
# once (`--appointments 0.5 --accept-only`), then `POST /api/v1/simulations` for the
# run's département and day, with no change. Prints how many referrals whose first offer
# was accepted the baseline first offered to the same place, the baseline's figures and
# how long the simulation took. It measures and asserts nothing.
#
#   tests/load/bench/simulation-fidelity.sh
#   RATE=100 DURATION=60s tests/load/bench/simulation-fidelity.sh
#
# Needs the release binaries (`cargo build --release -p aiguillage -p aiguillage-load`,
# in CARGO_TARGET_DIR or target/), PostgreSQL and RabbitMQ. Uses its own database and
# namespace, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source deploy/dev/services.sh
source tests/load/bench/lib.sh
ensure_postgres
ensure_rabbitmq

rate=${RATE:-50}
duration=${DURATION:-60s}
bench_release
bench_env fidelity 18380
trap bench_stop EXIT
bench_serve referrals,directory,matcher,insights,accounts
"$release/aiguillage-load" --rate "$rate" --duration "$duration" --no-ceilings --keep-structures \
  --appointments 0.5 --accept-only >"$work/run.json" 2>"$work/run.log"
admin=$("$release/aiguillage" token issue --role admin --ttl 1h)
today=$(TZ=Europe/Paris date +%F)
territory=$(psql -h /var/run/postgresql -d "$database" -tAc \
  "SELECT territory FROM matcher.profiles GROUP BY territory ORDER BY count(*) DESC LIMIT 1")
curl -fsS -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
  -d "{\"territory\": \"$territory\", \"from\": \"$today\", \"to\": \"$today\", \"seed\": 1}" \
  "$AIGUILLAGE_BASE_URL/api/v1/simulations" >"$work/simulation.json"
python3 - "$work/run.json" "$work/simulation.json" <<'PY'
import json, sys
run, sim = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
f, b = sim["fidelity"], sim["baseline"]
print(f"run: {run.get('created_201')} created, consistent {run.get('consistent')}, "
      f"accepted {(run.get('appointments') or {}).get('accepted')}")
print(f"fidelity: {f['same_first_offer']} of {f['compared']} first offers accepted found again ({f['share']})")
print(f"baseline: {b['referrals']} referrals, {b['placed']} placed, waitlist peak {b['waitlist_peak']}, "
      f"unplaced {b['unplaced']}; baseline = scenario: {sim['baseline'] == sim['scenario']}; "
      f"simulated in {sim['elapsed_ms']} ms")
PY
