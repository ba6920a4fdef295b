#!/usr/bin/env bash
# Starts the capture SMS server (server.py) on 127.0.0.1:$SMS_PORT, in the background by
# default, or in the foreground with --foreground. Idempotent: when a server started by
# this script already runs on that port with the same settings, it says so and leaves it;
# with other settings it is restarted. Prints its URL and where messages are written.
# Settings: the SMS_* variables in README.md beside this file. Python 3's standard
# library only: no virtual environment.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=deploy/dev/tools.sh
source "$here/../tools.sh"

foreground=false
case "${1:-}" in
  --foreground) foreground=true ;;
  "" | --background) ;;
  *) echo "usage: $0 [--foreground|--background]" >&2; exit 2 ;;
esac

export SMS_HOST=${SMS_HOST:-127.0.0.1}
export SMS_PORT=${SMS_PORT:-8095}
state=${SMS_STATE_DIR:-$AIGUILLAGE_CACHE_DIR/sms-$SMS_PORT}
export SMS_DIR=${SMS_DIR:-$state/sms}
# The development key is no secret (it is in README.md); a key given is never printed.
key_shown="${SMS_API_KEY:+(SMS_API_KEY)}"
export SMS_API_KEY=${SMS_API_KEY:-aiguillage-dev-sms-key}
key_shown=${key_shown:-$SMS_API_KEY}
export SMS_PIDFILE="$state/server.pid"
log="$state/server.log"
mkdir -p "$state" "$SMS_DIR"

python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null 2>&1; then
  echo "installing Python 3" >&2
  apt_install python3
fi

# What this server was asked for; a running one with other settings is restarted.
settings=$(printf '%s\n' "$SMS_HOST" "$SMS_PORT" "$SMS_DIR" "$SMS_API_KEY" \
  "${SMS_REJECT:-}" "${SMS_FAIL:-}" "${SMS_HANG:-}" "${SMS_HANG_SECONDS:-30}" "${SMS_FSYNC:-0}" \
  "$(sha256sum <"$here/server.py")" | sha256sum | cut -d' ' -f1)

describe() {
  echo "SMS capture server: http://$SMS_HOST:$SMS_PORT (pid $1, log $log)"
  echo "  for Aiguillage: AIGUILLAGE_SMS_URL=http://$SMS_HOST:$SMS_PORT AIGUILLAGE_SMS_API_KEY=$key_shown"
  echo "  messages are written to $SMS_DIR (one .json each)"
}

CAPTURE_NAME=SMS CAPTURE_SERVER="$here/server.py" CAPTURE_PYTHON="$python"
CAPTURE_HOST="$SMS_HOST" CAPTURE_PORT="$SMS_PORT" CAPTURE_STATE="$state" CAPTURE_PIDFILE="$SMS_PIDFILE"
# shellcheck source=deploy/dev/capture.sh
source "$here/../capture.sh"
capture_start "$settings" "$foreground"
