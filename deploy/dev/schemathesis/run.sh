#!/usr/bin/env bash
# Runs schemathesis against a running server's own document:
#
#   deploy/dev/schemathesis/run.sh BASE_URL [extra `st run` options]
#
# It tests BASE_URL/api/v1/openapi.json with every check (--checks all), in every
# phase (examples, coverage, fuzzing, stateful), calling each operation with the token
# of the role that owns it (schemathesis.toml beside this file). It exits non-zero on
# any failure: a 5xx, a response that breaks the document, a schema-valid request
# rejected, an undocumented status code, and the rest of the checks, but for what no
# document can prevent, which hooks.py names rule by rule and the run lists.
#
# Environment:
#   ST_TOKEN_ADMIN, ST_TOKEN_REFERRER, ST_TOKEN_MEDIATOR, ST_TOKEN_COORDINATOR
#                     required (seed.sh prints them)
#   ST_SEED_REFERRAL_IDS  optional, space-separated (seed.sh prints it): referral ids
#                     that {id} operations draw half the time, so they reach real
#                     referrals in every phase, not only in stateful sequences
#   ST_MAX_EXAMPLES   examples per operation and phase (default 25)
#   ST_SEED           the random seed (default 1, so CI runs are reproducible);
#                     `random` lets schemathesis pick one, which it prints
#   ST_WORKERS        concurrent workers (default 1: with the same seed, the same
#                     failures; 2 is no faster, the server being the bottleneck)
#   ST_MAX_TIME       optional time budget in seconds for the whole run
#   ST_REPORT_DIR     where the JUnit and NDJSON reports go
#                     (default $AIGUILLAGE_CACHE_DIR/schemathesis-report)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=deploy/dev/tools.sh
source "$here/../tools.sh"

base=${1:?usage: run.sh BASE_URL [st run options]}
base=${base%/}
shift
for var in ST_TOKEN_ADMIN ST_TOKEN_REFERRER ST_TOKEN_MEDIATOR ST_TOKEN_COORDINATOR; do
  if [ -z "${!var:-}" ]; then
    echo "$var is not set (eval \"\$(deploy/dev/schemathesis/seed.sh $base)\" prints all four)" >&2
    exit 2
  fi
done

ensure_schemathesis
venv="$AIGUILLAGE_CACHE_DIR/schemathesis-venv"
export ST_STATE_DIR="$AIGUILLAGE_CACHE_DIR/schemathesis-state"
report_dir=${ST_REPORT_DIR:-$AIGUILLAGE_CACHE_DIR/schemathesis-report}
mkdir -p "$ST_STATE_DIR" "$report_dir"

args=(
  --checks all
  --max-examples "${ST_MAX_EXAMPLES:-25}"
  --workers "${ST_WORKERS:-1}"
  --request-timeout 10
  --wait-for-schema 30
  --report "junit,ndjson" --report-dir "$report_dir"
  --no-color
)
seed=${ST_SEED:-1}
[ "$seed" != random ] && args+=(--seed "$seed")
[ -n "${ST_MAX_TIME:-}" ] && args+=(--max-time "$ST_MAX_TIME")

# The configuration run: schemathesis.toml, plus the seeded referral ids when given.
config="$ST_STATE_DIR/schemathesis.toml"
{
  if [ -n "${ST_SEED_REFERRAL_IDS:-}" ]; then
    values=""
    for id in $ST_SEED_REFERRAL_IDS; do
      [[ $id =~ ^[0-9A-Za-z_-]+$ ]] || { echo "not an id in ST_SEED_REFERRAL_IDS: $id" >&2; exit 2; }
      values+="${values:+, }\"$id\""
    done
    echo "dictionaries.referrals = { values = [$values] }"
  fi
  cat "$here/schemathesis.toml"
  if [ -n "${ST_SEED_REFERRAL_IDS:-}" ]; then
    printf '\n%s\n%s\n%s\n' "[[operations]]" \
      'include-name-regex = "^(GET|POST) .*/referrals/\\{[^}]+\\}(/[a-z]+)?$"' \
      'parameters = { "path.id" = { dictionary = "referrals", probability = 0.5 } }'
  fi
} >"$config"

echo "schemathesis $("$venv/bin/st" --version | awk '{print $NF}') against $base/api/v1/openapi.json (reports in $report_dir)"
# Which token each operation gets, read back through schemathesis itself.
"$venv/bin/python" - "$config" "$base/api/v1/openapi.json" <<'PY' || true
import os, sys
import schemathesis
from schemathesis.config import SchemathesisConfig

config = SchemathesisConfig.from_path(sys.argv[1])
schema = schemathesis.openapi.from_url(sys.argv[2], config=config)
names = {os.environ[k]: k.removeprefix("ST_TOKEN_").lower() for k in
         ("ST_TOKEN_ADMIN", "ST_TOKEN_REFERRER", "ST_TOKEN_MEDIATOR", "ST_TOKEN_COORDINATOR")}
by_role = {}
for result in schema.get_all_operations():
    operation = result.ok()
    auth = schema.config.headers_for(operation=operation).get("Authorization", "")
    by_role.setdefault(names.get(auth.removeprefix("Bearer "), "?"), []).append(operation.label)
for role, labels in sorted(by_role.items()):
    print(f"  {role}: {len(labels)} operations" if role == "admin" else f"  {role}: " + ", ".join(labels))
PY

# Run from the state directory, so nothing schemathesis writes lands in the repository.
# Its cache starts empty, so that a run does not depend on the one before (the cache of
# this run is what `st replay` reads afterwards).
rm -rf "$ST_STATE_DIR/cache" "$ST_STATE_DIR/accepted.log"
cd "$ST_STATE_DIR"
# hooks.py: what no document can prevent, rule by rule; each failure it lets through is
# noted in accepted.log and listed below.
export ST_BASE_URL=$base SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
status=0
"$venv/bin/st" --config-file "$config" run "$base/api/v1/openapi.json" "${args[@]}" "$@" || status=$?
if [ -s "$ST_STATE_DIR/accepted.log" ]; then
  echo "accepted, as no document can prevent them (hooks.py), by operation and rule:"
  cut -f1,2,4 "$ST_STATE_DIR/accepted.log" | sort | uniq -c | sort -rn
fi
exit "$status"
