#!/usr/bin/env bash
# Seeds a running server for the contract run and prints the tokens, as export lines:
#
#   eval "$(deploy/dev/schemathesis/seed.sh http://127.0.0.1:18080)"
#
# It issues the tokens with the aiguillage binary ($AIGUILLAGE, default `aiguillage`
# on PATH) in the same environment as the server (DATABASE_URL and the rest), then,
# through the API: one referrer organisation, three structures in Charente (one that
# offers every service near Angoulême, so that every referral from there is offered
# to it, one in Cognac, one that is not accepting), and four referrals: one left
# offered, one accepted, one declined, one cancelled. Prints ST_TOKEN_ADMIN,
# ST_TOKEN_REFERRER, ST_TOKEN_MEDIATOR (of the structure the referrals went to),
# ST_TOKEN_COORDINATOR (territory 16), and ST_SEED_* ids. Progress goes to stderr.
# Meant for a throw-away database: each run adds another organisation and referrals.
set -euo pipefail
base=${1:?usage: seed.sh BASE_URL}
base=${base%/}
aig=${AIGUILLAGE:-aiguillage}
if ! command -v curl >/dev/null 2>&1; then
  # shellcheck source=deploy/dev/tools.sh
  source "$(dirname "$0")/../tools.sh"
  apt_install curl
fi

token() { "$aig" token issue --ttl 1d "$@"; }
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
call() { # METHOD PATH TOKEN [BODY]: the response body; fails on a non-2xx answer
  local method=$1 path=$2 bearer=$3 body=${4:-}
  local args=(-sS --fail-with-body -X "$method" -H "Authorization: Bearer $bearer")
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
  curl "${args[@]}" "$base$path"
}

admin=$(token --role admin)
org=$(call POST /api/v1/organisations "$admin" \
  '{"name":"CCAS de test (contrat)","kind":"social_service","territory":"16"}' | json_field id)

all_needs='["aide_demarches_administratives","maitrise_outils_numeriques","insertion_professionnelle","utilisation_securisee","parentalite_education","loisirs_creations","comprehension_monde_numerique","acces_internet_materiel","acquisition_materiel_solidaire"]'
call PUT /api/v1/structures/contract-angouleme "$admin" "{
  \"name\":\"Médiathèque de test, Angoulême\",\"services\":$all_needs,
  \"modes\":[\"individual\",\"workshop\",\"remote\"],\"languages\":[\"fr\",\"en\",\"ar\"],\"other_languages\":true,
  \"accessibility\":[\"deaf\",\"visual\",\"motor\",\"mental\",\"illiteracy\"],
  \"address\":{\"street\":\"1 Rue de Test\",\"postcode\":\"16000\",\"commune\":\"Angoulême\",\"commune_code\":\"16015\"},
  \"location\":{\"lat\":45.6484,\"lon\":0.1562},\"opening_hours\":\"Mo-Fr 09:00-17:00; PH off\",
  \"weekly_capacity\":10000,\"accepting\":true,
  \"contact\":{\"phone\":\"+33545000000\",\"email\":\"contrat-angouleme@example.org\"}}" >/dev/null
call PUT /api/v1/structures/contract-cognac "$admin" '{
  "name":"France services de test, Cognac","services":["aide_demarches_administratives","insertion_professionnelle"],
  "modes":["individual"],"languages":["fr"],
  "address":{"street":"2 Place de Test","postcode":"16100","commune":"Cognac","commune_code":"16102"},
  "location":{"lat":45.6958,"lon":-0.3287},"weekly_capacity":5,"accepting":true}' >/dev/null
call PUT /api/v1/structures/contract-closed "$admin" '{
  "name":"Association de test (complet)","services":["maitrise_outils_numeriques"],
  "address":{"street":"3 Rue de Test","postcode":"16000","commune":"Angoulême","commune_code":"16015"},
  "location":{"lat":45.65,"lon":0.16},"weekly_capacity":0,"accepting":false}' >/dev/null

referrer=$(token --role referrer --organisation "$org")
coordinator=$(token --role coordinator --territory 16)

submit() {
  call POST /api/v1/referrals "$referrer" "{
    \"person\":{\"first_name\":\"Test\",\"last_name\":\"Contrat $1\",\"phone\":\"06 12 34 56 7$1\",\"commune_code\":\"16015\"},
    \"needs\":[\"aide_demarches_administratives\"],\"consent\":{\"obtained\":true,\"method\":\"oral\"}}" | json_field id
}
wait_offered() { # the referral is offered once the matcher has run
  local status=""
  for _ in $(seq 1 100); do
    status=$(call GET "/api/v1/referrals/$1" "$admin" | json_field status)
    [ "$status" = offered ] && return 0
    sleep 0.1
  done
  echo "referral $1 is $status, not offered, after 10 s: is the matcher running?" >&2
  return 1
}

offered_to() {
  call GET "/api/v1/referrals/$1" "$admin" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["current_offer"]["structure_id"])'
}

ids=()
for n in 1 2 3 4; do ids+=("$(submit "$n")"); done
for id in "${ids[@]}"; do wait_offered "$id"; done
# The mediator is the one of the structure the matcher chose (contract-angouleme on a
# database with nothing else near Angoulême), so that accept and decline are in scope.
structure=$(offered_to "${ids[0]}")
for id in "${ids[@]:1:2}"; do
  if [ "$(offered_to "$id")" != "$structure" ]; then
    echo "referral $id went to another structure than $structure: seed a fresh database" >&2
    exit 1
  fi
done
mediator=$(token --role mediator --structure "$structure")
call POST "/api/v1/referrals/${ids[1]}/accept" "$mediator" '{}' >/dev/null
call POST "/api/v1/referrals/${ids[2]}/decline" "$mediator" '{"reason":"no_capacity","comment":"test"}' >/dev/null
call POST "/api/v1/referrals/${ids[3]}/cancel" "$referrer" '{"reason":"test"}' >/dev/null
echo "seeded organisation $org, 3 structures, referrals ${ids[*]} (offered to $structure)" >&2

cat <<EOF
export ST_TOKEN_ADMIN=$admin
export ST_TOKEN_REFERRER=$referrer
export ST_TOKEN_MEDIATOR=$mediator
export ST_TOKEN_COORDINATOR=$coordinator
export ST_SEED_ORGANISATION=$org
export ST_SEED_STRUCTURE=$structure
export ST_SEED_REFERRAL_OFFERED=${ids[0]}
export ST_SEED_REFERRAL_ACCEPTED=${ids[1]}
export ST_SEED_REFERRAL_IDS="${ids[*]}"
EOF
