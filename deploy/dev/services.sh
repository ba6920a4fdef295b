# Sourced by .ci/run and the demo script: starts PostgreSQL and RabbitMQ when they are
# down, and installs them (Debian packages) on a machine that has neither.

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_postgres() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "installing PostgreSQL"
    apt_install postgresql
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  if ! pg_isready -q -h /var/run/postgresql; then
    echo "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  fi
  for _ in $(seq 1 60); do pg_isready -q -h /var/run/postgresql && break; sleep 0.5; done
  pg_isready -h /var/run/postgresql
  # The current user needs a role that may create databases (a fresh install has only postgres).
  local me
  me=$(id -un)
  if ! psql -h /var/run/postgresql -d postgres -tAc "SELECT 1" >/dev/null 2>&1; then
    as_root su postgres -c "psql -q -c \"CREATE ROLE \\\"$me\\\" SUPERUSER LOGIN\"" || true
  fi
}

ensure_rabbitmq() {
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    echo "installing RabbitMQ"
    apt_install rabbitmq-server
  fi
  if ! as_root rabbitmqctl -q status >/dev/null 2>&1; then
    echo "starting RabbitMQ"
    as_root rabbitmq-server -detached || true
  fi
  as_root rabbitmqctl -q await_startup --timeout 120
}

ensure_mold() {
  command -v mold >/dev/null 2>&1 || apt_install mold || true
}

# The development OpenID provider (deploy/dev/oidc): Node.js and its npm packages.
source "$(dirname "${BASH_SOURCE[0]}")/oidc/env.sh"

# The web app's third-party assets (the DSFR), from services/web/assets/package-lock.json:
# the web crate's build.rs embeds them, so this must run before cargo. Needs Node.js
# (ensure_oidc_provider installs it). node_modules is git-ignored; a stamp of the lock
# file says when it is stale.
WEB_ASSETS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../services/web/assets" && pwd)"
ensure_web_assets() {
  local stamp="$WEB_ASSETS_DIR/node_modules/.aiguillage-lock-sha256"
  local lock
  lock=$(sha256sum "$WEB_ASSETS_DIR/package-lock.json" | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock" ]; then
    echo "installing the web app's npm assets (DSFR)"
    (cd "$WEB_ASSETS_DIR" && npm ci --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error) || return 1
    echo "$lock" >"$stamp"
  fi
}

ensure_services() {
  ensure_postgres
  ensure_rabbitmq
  ensure_mold
  ensure_oidc_provider
  ensure_web_assets
}
