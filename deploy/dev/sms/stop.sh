#!/usr/bin/env bash
# Stops the capture SMS server that start.sh started on $SMS_PORT (default 8095):
# SIGTERM, then SIGKILL after 5 s. Does nothing when none runs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
port=${SMS_PORT:-8095}
cache=${AIGUILLAGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/aiguillage}
pidfile="${SMS_STATE_DIR:-$cache/sms-$port}/server.pid"

CAPTURE_NAME=SMS CAPTURE_SERVER="$here/server.py" CAPTURE_PIDFILE="$pidfile"
# shellcheck source=deploy/dev/capture.sh
source "$here/../capture.sh"
capture_stop
