#!/usr/bin/env bash
# Stops the capture SMS server that start.sh started on $SMS_PORT (default 8095):
# SIGTERM, then SIGKILL after 5 s. Does nothing when none runs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
port=${SMS_PORT:-8095}
cache=${AIGUILLAGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/aiguillage}
pidfile="${SMS_STATE_DIR:-$cache/sms-$port}/server.pid"

pid=$(cat "$pidfile" 2>/dev/null || true)
if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null \
  || ! [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == *"$here/server.py"* ]]; then
  rm -f "$pidfile"
  exit 0
fi
kill -TERM "$pid"
for _ in $(seq 1 50); do
  kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; echo "stopped the SMS capture server (pid $pid)"; exit 0; }
  sleep 0.1
done
kill -KILL "$pid" 2>/dev/null || true
rm -f "$pidfile"
echo "killed the SMS capture server (pid $pid)"
