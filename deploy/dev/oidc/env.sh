# Sourced by deploy/dev/services.sh (and start.sh): makes the development OpenID provider
# runnable. ensure_oidc_provider installs Node.js when it is missing (Debian packages) and
# the provider's npm dependencies when node_modules is missing or older than the lock file.
# start_oidc_provider / stop_oidc_provider run it in the background for the demo.

OIDC_PROVIDER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OIDC_NODE_MAJOR_MIN=20

_oidc_as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

_oidc_lock_stamp() { sha256sum "$OIDC_PROVIDER_DIR/package-lock.json" | cut -d' ' -f1; }

ensure_oidc_provider() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "installing Node.js"
    if declare -F apt_install >/dev/null; then
      apt_install nodejs npm
    else
      _oidc_as_root apt-get update -qq
      _oidc_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    fi
  fi
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt "$OIDC_NODE_MAJOR_MIN" ]; then
    echo "the development OpenID provider needs Node.js $OIDC_NODE_MAJOR_MIN or later, found $(node --version)" >&2
    return 1
  fi
  local stamp="$OIDC_PROVIDER_DIR/node_modules/.aiguillage-lock-sha256"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$(_oidc_lock_stamp)" ]; then
    echo "installing the development OpenID provider's npm packages"
    (cd "$OIDC_PROVIDER_DIR" && npm ci --no-audit --no-fund --prefer-offline --loglevel=error) || return 1
    _oidc_lock_stamp >"$stamp"
  fi
}

# The data directory of the background provider: keys, pid file and log.
oidc_data_dir() { echo "${OIDC_DATA_DIR:-$OIDC_PROVIDER_DIR/.data}"; }

_oidc_running_pid() {
  local pidfile pid
  pidfile="$(oidc_data_dir)/oidc.pid"
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  # Only our own server process, never whatever reused the pid.
  if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$OIDC_PROVIDER_DIR/server.mjs"; then
    echo "$pid"
    return 0
  fi
  return 1
}

# Starts the provider in the background (unless it already runs) and waits until its
# discovery document answers. Environment as for server.mjs (OIDC_PORT, OIDC_RP_URL, ...).
start_oidc_provider() {
  ensure_oidc_provider || return 1
  local dir pid
  dir="$(oidc_data_dir)"
  mkdir -p "$dir"
  if pid=$(_oidc_running_pid); then
    echo "the development OpenID provider already runs (pid $pid)"
  else
    rm -f "$dir/ready.json"
    OIDC_DATA_DIR="$dir" nohup node "$OIDC_PROVIDER_DIR/server.mjs" >>"$dir/oidc.log" 2>&1 &
    echo $! >"$dir/oidc.pid"
  fi
  local issuer="" deadline=$((SECONDS + 30))
  while [ $SECONDS -lt $deadline ]; do
    if [ -f "$dir/ready.json" ]; then
      issuer=$(node -p "require('$dir/ready.json').issuer" 2>/dev/null || true)
      if [ -n "$issuer" ] && curl -fsS -o /dev/null "$issuer/.well-known/openid-configuration"; then
        echo "development OpenID provider: $issuer (log: $dir/oidc.log)"
        return 0
      fi
    fi
    if ! _oidc_running_pid >/dev/null; then break; fi
    sleep 0.2
  done
  echo "the development OpenID provider did not start; see $dir/oidc.log" >&2
  tail -n 20 "$dir/oidc.log" >&2 || true
  return 1
}

stop_oidc_provider() {
  local pid
  if pid=$(_oidc_running_pid); then
    kill "$pid"
    rm -f "$(oidc_data_dir)/oidc.pid"
    echo "stopped the development OpenID provider (pid $pid)"
  fi
}
