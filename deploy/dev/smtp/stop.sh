#!/usr/bin/env bash
# Stops the capture SMTP server that start.sh started on $SMTP_PORT (default 2525):
# SIGTERM, then SIGKILL after 5 s. Does nothing when none runs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
port=${SMTP_PORT:-2525}
cache=${AIGUILLAGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/aiguillage}
pidfile="${SMTP_STATE_DIR:-$cache/smtp-$port}/server.pid"

CAPTURE_NAME=SMTP CAPTURE_SERVER="$here/server.py" CAPTURE_PIDFILE="$pidfile"
# shellcheck source=deploy/dev/capture.sh
source "$here/../capture.sh"
capture_stop
