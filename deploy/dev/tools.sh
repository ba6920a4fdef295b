# shellcheck shell=bash
# Sourced by .ci/run, the demo script and the scripts under deploy/dev/: installs and
# starts the non-Rust development and test tools, idempotently, on a fresh Debian
# machine. Everything comes from Debian's packages, PyPI or the npm registry, pinned by
# the lock files beside each tool; virtual environments live in a cache outside the
# repository, so a new clone or worktree reuses them.
#
#   ensure_python_venv DIR REQUIREMENTS   a venv at DIR with exactly those pins
#   ensure_smtp_server [PORT]             the capture SMTP server (deploy/dev/smtp)
#   ensure_sms_server [PORT]              the capture SMS server (deploy/dev/sms)
#   ensure_schemathesis                   schemathesis in its venv (deploy/dev/schemathesis)
#   ensure_chromium                       Debian's chromium at /usr/bin/chromium
#   ensure_browser_deps                   node, npm and tests/browser/node_modules
#   ensure_caddy                          Debian's caddy: the proxy of a split deployment
#                                         (deploy/proxy/Caddyfile), which tests/e2e/split.rs runs

# as_root and apt_install come from services.sh.
if ! declare -F apt_install >/dev/null; then
  # shellcheck source=deploy/dev/services.sh
  source "$(dirname "${BASH_SOURCE[0]}")/services.sh"
fi

AIGUILLAGE_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
AIGUILLAGE_CACHE_DIR=${AIGUILLAGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/aiguillage}
export AIGUILLAGE_CACHE_DIR

# A virtual environment at DIR holding exactly the hash-pinned REQUIREMENTS. It is
# (re)installed when missing, when the requirements file changed, or when the Python it
# was made with is gone; otherwise this does nothing. Installs go to PyPI only.
ensure_python_venv() {
  local dir=$1 requirements=$2 python=${PYTHON:-python3}
  if ! command -v "$python" >/dev/null 2>&1; then
    echo "installing Python 3" >&2
    apt_install python3
  fi
  mkdir -p "$(dirname "$dir")"
  # One installer at a time per venv (two CI steps, or a test and the demo).
  local lock_fd
  exec {lock_fd}>"$dir.lock"
  flock "$lock_fd"
  local want
  want="$(sha256sum <"$requirements" | cut -d' ' -f1) $("$python" -c 'import sys; print(sys.version.split()[0])')"
  if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.aiguillage-stamp" 2>/dev/null)" = "$want" ] \
    && "$dir/bin/python" -c '' 2>/dev/null; then
    exec {lock_fd}>&-
    return 0
  fi
  echo "preparing $dir from ${requirements#"$AIGUILLAGE_REPO"/}" >&2
  rm -rf "$dir"
  if ! "$python" -m venv "$dir" >/dev/null 2>&1; then
    # Debian ships venv's pip bootstrap separately.
    rm -rf "$dir"
    echo "installing python3-venv" >&2
    apt_install python3-venv
    "$python" -m venv "$dir"
  fi
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$dir/bin/pip" install --quiet --no-input \
    --require-hashes --only-binary=:all: -r "$requirements" >&2
  echo "$want" >"$dir/.aiguillage-stamp"
  exec {lock_fd}>&-
}

# The capture SMTP server on PORT (default SMTP_PORT, else 2525), started in the
# background unless it already runs with the same settings. The SMTP_* variables of
# deploy/dev/smtp/README.md configure it; SMTP_MAILDIR says where messages go.
# Only the capture SMTP server's virtual environment, for tests that start their own
# servers on their own ports (start.sh makes the same one).
ensure_smtp_venv() {
  ensure_python_venv "$AIGUILLAGE_CACHE_DIR/smtp-venv" "$AIGUILLAGE_REPO/deploy/dev/smtp/requirements.txt"
}

ensure_smtp_server() {
  SMTP_PORT=${1:-${SMTP_PORT:-2525}} "$AIGUILLAGE_REPO/deploy/dev/smtp/start.sh"
}

# The capture SMS server on PORT (default SMS_PORT, else 8095), started in the background
# unless it already runs with the same settings. The SMS_* variables of
# deploy/dev/sms/README.md configure it; SMS_DIR says where messages go, SMS_API_KEY the
# key it wants (AIGUILLAGE_SMS_API_KEY on Aiguillage's side).
ensure_sms_server() {
  SMS_PORT=${1:-${SMS_PORT:-8095}} "$AIGUILLAGE_REPO/deploy/dev/sms/start.sh"
}

# schemathesis in its virtual environment; deploy/dev/schemathesis/run.sh uses it.
ensure_schemathesis() {
  ensure_python_venv "$AIGUILLAGE_CACHE_DIR/schemathesis-venv" \
    "$AIGUILLAGE_REPO/deploy/dev/schemathesis/requirements.txt"
}

# Debian's Chromium: the browser tests drive it; nothing downloads a browser of its own.
ensure_chromium() {
  if [ ! -x /usr/bin/chromium ]; then
    echo "installing Chromium" >&2
    apt_install chromium
  fi
  # Fonts for readable screenshots; the chromium package does not pull them in.
  # (fc-list's whole output first: grep -q would end the pipe early under pipefail.)
  local fonts
  fonts=$(fc-list 2>/dev/null || true)
  if ! grep -qi 'dejavu\|liberation' <<<"$fonts"; then
    apt_install fonts-dejavu-core fonts-liberation
  fi
}

# Caddy, the reverse proxy of deploy/proxy/Caddyfile. Only the binary: the package's
# own service is not started (no systemd here), each test runs its own proxy.
ensure_caddy() {
  if ! command -v caddy >/dev/null 2>&1; then
    echo "installing Caddy" >&2
    apt_install caddy
  fi
}

# Node.js, npm, and tests/browser/node_modules as package-lock.json pins it: `npm ci`
# runs when node_modules is missing or the lock file changed since the last install.
ensure_browser_deps() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "installing Node.js and npm" >&2
    apt_install nodejs npm
  fi
  # playwright-core 1.65 wants Node.js 20 or later; Debian 12's own nodejs is 18.
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt 20 ]; then
    echo "warning: Node.js $(node --version) is older than the 20 that playwright-core 1.65 supports" >&2
  fi
  local dir="$AIGUILLAGE_REPO/tests/browser" want
  want=$(sha256sum <"$dir/package-lock.json" | cut -d' ' -f1)
  if [ -d "$dir/node_modules" ] && [ "$(cat "$dir/node_modules/.aiguillage-stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  echo "installing tests/browser dependencies (npm ci)" >&2
  # playwright-core never downloads a browser; the variable keeps it that way should a
  # dependency ever pull in the full playwright package.
  (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "$want" >"$dir/node_modules/.aiguillage-stamp"
}
