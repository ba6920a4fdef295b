#!/usr/bin/env bash
# Starts the development OpenID provider (ProConnect-like) on 127.0.0.1.
#   ./start.sh            in the foreground (Ctrl-C stops it)
#   ./start.sh --daemon   in the background: pid and log in $OIDC_DATA_DIR (default .data/)
#   ./start.sh --stop     stops the background one
# Installs the npm packages first when node_modules is missing or stale. Environment: see
# README.md (OIDC_PORT, OIDC_RP_URL, OIDC_CLIENTS, ...). Never set OIDC_TEST_CONTROLS for
# the demo.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/env.sh"

print_help() {
  local issuer="$1" id="${OIDC_CLIENT_ID:-aiguillage-demo}" secret="${OIDC_CLIENT_SECRET:-aiguillage-demo-secret-dev-only-0000000000}"
  cat <<EOF

  Development OpenID provider (ProConnect-like, never for production)
    issuer          $issuer
    discovery       $issuer/.well-known/openid-configuration
EOF
  if [ -z "${OIDC_CLIENTS:-}${OIDC_CLIENTS_FILE:-}" ]; then
    cat <<EOF
    client          $id / $secret (client_secret_post, userinfo JSON)
    client (JWT)    $id-jwt / $secret-jwt (client_secret_basic, userinfo signed JWT)
    redirect URI    ${OIDC_RP_URL:-http://127.0.0.1:8080}/auth/callback

  For Aiguillage:
    AIGUILLAGE_OIDC_ISSUER=$issuer
    AIGUILLAGE_OIDC_CLIENT_ID=$id
    AIGUILLAGE_OIDC_CLIENT_SECRET=$secret
EOF
  fi
  cat <<EOF

  To sign in: "S'identifier avec ProConnect" on Aiguillage's /connexion, then choose an
  agent in the list "Agent" and press "Se connecter":
EOF
  node -e '
    const { agents } = require(process.argv[1]);
    for (const a of agents) console.log(`    ${a.given_name} ${a.usual_name}, ${a.label} <${a.email}>`);
  ' "${OIDC_AGENTS_FILE:-$here/agents.json}"
  echo
}

case "${1:-}" in
  --stop)
    stop_oidc_provider
    ;;
  --daemon)
    start_oidc_provider
    print_help "$(node -p "require('$(oidc_data_dir)/ready.json').issuer")"
    ;;
  "")
    ensure_oidc_provider
    port="${OIDC_PORT:-8090}"
    if [ "$port" != 0 ]; then print_help "http://127.0.0.1:${port}${OIDC_ISSUER_PATH:-}"; fi
    OIDC_DATA_DIR="$(oidc_data_dir)" exec node "$here/server.mjs"
    ;;
  *)
    sed -n '2,8p' "$0" >&2
    exit 2
    ;;
esac
