#!/usr/bin/env bash
# Issue 28's "simulations do not slow intake", side by side in one session: the same
# release server, runs at RATE referrals/s for DURATION, alternating A (intake alone) and
# B (intake while two clients post what-if simulations back to back, each replaying a
# year of the territory's referrals with one change), ROUNDS times each.
#
# The year of history: a first run of the generator (its structures kept), whose profiles
# are then copied HISTORY_COPIES times into the past year, each copy a new referral at
# the same place with the same needs (SQL on this benchmark's own database: the matcher
# has no other way in for referrals that never happened). The simulations read them
# through the API like any other.
#
# Prints each run's submit and submit → offered percentiles, where the CPU went, and for
# B how many simulations ran and how long each took; then the medians of A's and B's p99
# and their ratio. It measures and asserts nothing.
#
#   tests/load/bench/simulation-intake.sh
#   RATE=100 DURATION=60s ROUNDS=2 HISTORY_COPIES=33 tests/load/bench/simulation-intake.sh
#
# Needs the release binaries (`cargo build --release -p aiguillage -p aiguillage-load`,
# in CARGO_TARGET_DIR or target/), PostgreSQL and RabbitMQ. Uses its own database and
# namespace, removed at the end.
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
copies=${HISTORY_COPIES:-33}
bench_release
bench_env sim-intake 18480
clients=()
stop_clients() {
  for pid in "${clients[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${clients[@]}"; do wait "$pid" 2>/dev/null || true; done
  clients=()
}
cleanup() {
  stop_clients
  bench_stop
}
trap cleanup EXIT
# Every service runs, notify too (its queue would otherwise hold the run's events, and
# the generator waits for an empty backlog), with capture SMTP and SMS servers.
bench_capture 2592 8192
bench_serve all

# The history: one run whose structures stay, its profiles copied into the past year.
"$release/aiguillage-load" --rate "$rate" --duration 30s --no-ceilings --keep-structures \
  --appointments 0.5 --accept-only --seed 0 >"$work/history.json" 2>"$work/history.log"
psql -q -h /var/run/postgresql -d "$database" -v ON_ERROR_STOP=1 -v copies="$copies" <<'SQL'
INSERT INTO matcher.profiles (referral_id, state, organisation_id, commune_code, territory, lat, lon, needs,
                              modes, languages, accessibility, urgency, deadline, max_distance_km, submitted_at)
SELECT gen_random_uuid(), 'closed', organisation_id, commune_code, territory, lat, lon, needs, modes, languages,
       accessibility, urgency, NULL, max_distance_km,
       submitted_at - make_interval(days => k * (360 / :copies), secs => (random() * 86400)::int)
FROM matcher.profiles, generate_series(1, :copies) k
WHERE submitted_at IS NOT NULL;
ANALYZE matcher.profiles;
SQL
territory=$(psql -h /var/run/postgresql -d "$database" -tAc \
  "SELECT territory FROM matcher.profiles GROUP BY territory ORDER BY count(*) DESC LIMIT 1")
structure=$(psql -h /var/run/postgresql -d "$database" -tAc \
  "SELECT structure_id FROM matcher.reservations GROUP BY structure_id ORDER BY count(*) DESC LIMIT 1")
history=$(psql -h /var/run/postgresql -d "$database" -tAc "SELECT count(*) FROM matcher.profiles")
admin=$("$release/aiguillage" token issue --role admin --ttl 2h)
to=$(TZ=Europe/Paris date +%F)
from=$(TZ=Europe/Paris date -d "$to - 364 days" +%F)
request="{\"territory\": \"$territory\", \"from\": \"$from\", \"to\": \"$to\", \"seed\": 1,
          \"changes\": [{\"structure_id\": \"$structure\", \"weekly_capacity\": 0}]}"
echo "history: $history profiles in $territory; each simulation replays $from to $to twice"

# simulate LOG: posts the simulation until killed, one line per answer.
simulate() {
  while true; do
    curl -sS -o "$1.body" -w '%{http_code} %{time_total}\n' -H "Authorization: Bearer $admin" \
      -H 'Content-Type: application/json' -d "$request" "$AIGUILLAGE_BASE_URL/api/v1/simulations" >>"$1" || true
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["baseline"]["referrals"], d["elapsed_ms"])' \
      "$1.body" >>"$1.elapsed" 2>/dev/null || true
  done
}

run() {
  local label=$1 n=$2
  local out="$work/$label$n.json"
  if [ "$label" = B ]; then
    simulate "$work/B$n.sim1" &
    clients+=($!)
    simulate "$work/B$n.sim2" &
    clients+=($!)
  fi
  python3 tests/load/bench/cpu_split.py "$work/$label$n.cpu.json" -- \
    "$release/aiguillage-load" --rate "$rate" --duration "$duration" --no-ceilings --seed "$n" \
    >"$out" 2>"$work/$label$n.log"
  stop_clients
  python3 - "$label$n" "$out" "$work" <<'PY'
import glob, json, statistics, sys
label, path, work = sys.argv[1:]
r = json.load(open(path))
s, o = r["submit_latency_ms"], r["submit_to_offered_ms"]
print(f"{label}: submit p50 {s['p50']} p99 {s['p99']} ms; submit→offered p50 {o['p50']} p99 {o['p99']} ms "
      f"(n={o['count']}); created {r.get('created_201')}, consistent {r.get('consistent')}")
sims = [l.split() for f in glob.glob(f"{work}/{label}.sim*.elapsed") for l in open(f)]
codes = [l.split()[0] for f in glob.glob(f"{work}/{label}.sim?") for l in open(f)]
if codes:
    ms = sorted(int(e) for _, e in sims)
    print(f"    simulations answered: {len(codes)} ({', '.join(sorted(set(codes)))}), "
          f"{sims[0][0] if sims else '?'} referrals each, replayed in median {statistics.median(ms) if ms else '?'} ms")
PY
  python3 - "$work/$label$n.cpu.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
print("    cores used: " + ", ".join(f"{g} {v:.2f}" for g, v in sorted(c["cores"].items(), key=lambda kv: -kv[1])))
PY
}

for n in $(seq 1 "$rounds"); do
  run A "$n"
  run B "$n"
done

python3 - "$work" "$rounds" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
for key in ("submit_latency_ms", "submit_to_offered_ms"):
    for q in ("p50", "p99"):
        side = lambda l: [json.load(open(f"{work}/{l}{n}.json"))[key][q] for n in range(1, rounds + 1)]
        a, b = statistics.median(side("A")), statistics.median(side("B"))
        print(f"median {key} {q}: intake alone {a} ms, with two simulations running {b} ms: ratio {b / a:.3f}")
PY
