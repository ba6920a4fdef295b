#!/usr/bin/env bash
# Issue 26's hot spot of one person (item 3): a client that submits the same person again
# and again (retrying without an Idempotency-Key, or a loop). The release server; first
# PRIOR submissions of that person (a run at RATE, not reported), then RUNS runs at RATE
# referrals/s for DURATION with `--same-person --soak`, each in its own organisation, as
# every generator run is: the possible-duplicates lookup reads the person's referrals of
# every organisation, and lists the run's own. Prints, per 10-s window, how many earlier
# submissions of the person there were, the achieved rate and the submit p50/p99; then
# each run's overall figures. It measures and asserts nothing.
#
#   tests/load/bench/same-person.sh
#   RATE=150 DURATION=30s PRIOR=2000 RUNS=1 tests/load/bench/same-person.sh
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

rate=${RATE:-150}
duration=${DURATION:-30s}
prior=${PRIOR:-2000}
runs=${RUNS:-1}
bench_release
bench_env same-person 18580
trap bench_stop EXIT
bench_serve referrals,directory,matcher,insights,accounts

# Every referral of this database is about the one person.
earlier() { psql -h /var/run/postgresql -d "$database" -tAc "SELECT count(*) FROM referrals.referrals"; }

if [ "$prior" -gt 0 ]; then
  seconds=$(python3 -c "import math; print(math.ceil($prior / $rate))")
  echo "priming: $prior submissions of the person at $rate/s (${seconds} s)"
  "$release/aiguillage-load" --rate "$rate" --duration "${seconds}s" --no-ceilings --same-person \
    >"$work/prior.json" 2>"$work/prior.log"
fi

for n in $(seq 1 "$runs"); do
  before=$(earlier)
  "$release/aiguillage-load" --rate "$rate" --duration "$duration" --no-ceilings --same-person --soak \
    >"$work/run$n.json" 2>"$work/run$n.log"
  python3 - "$work/run$n.json" "$n" "$before" <<'PY'
import json, sys
run, n, before = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3])
print(f"run {n}: {run['target_rate']}/s for {run['duration_s']:.0f} s, {before} earlier submissions of the person")
earlier, last = before, 0.0
for w in run.get("soak") or []:
    lat = w["window_submit_latency_ms"]
    print(f"  t={w['elapsed_s']:>5.1f} s  earlier {earlier:>6}  {w['window_rate']:>6.1f}/s  "
          f"submit p50 {lat['p50']} ms  p99 {lat['p99']} ms  ({lat['count']} answers)")
    earlier += round(w["window_rate"] * (w["elapsed_s"] - last))
    last = w["elapsed_s"]
lat = run["submit_latency_ms"]
print(f"  overall: {run['achieved_rate']}/s achieved, {run['created_201']} created, {run['dropped']} dropped, "
      f"errors {run['errors']}; submit p50 {lat['p50']} ms p99 {lat['p99']} ms max {lat['max']} ms; "
      f"consistent {run['consistent']}")
PY
done
