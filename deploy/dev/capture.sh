# Shared by the capture servers' scripts (deploy/dev/smtp, deploy/dev/sms): starting
# server.py once, idempotently, in the background or the foreground, and stopping it.
# Source it after setting:
#   CAPTURE_NAME     what to call it in messages ("SMTP", "SMS")
#   CAPTURE_SERVER   the server.py to run; CAPTURE_PYTHON the interpreter
#   CAPTURE_HOST, CAPTURE_PORT, CAPTURE_STATE (its state directory), CAPTURE_PIDFILE
# and define `describe PID`, which prints where it listens and where messages go.

# The pid in the pid file, if it is a live server.py of this folder (not a reused pid).
capture_running_pid() {
  local pid
  pid=$(cat "$CAPTURE_PIDFILE" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
    && [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == *"$CAPTURE_SERVER"* ]] && echo "$pid"
}

capture_port_open() { (exec 3<>"/dev/tcp/$CAPTURE_HOST/$CAPTURE_PORT") 2>/dev/null; }

# capture_stop: SIGTERM, then SIGKILL after 5 s. Does nothing when none runs.
capture_stop() {
  local pid
  if ! pid=$(capture_running_pid); then
    rm -f "$CAPTURE_PIDFILE"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$CAPTURE_PIDFILE"; echo "stopped the $CAPTURE_NAME capture server (pid $pid)"; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$CAPTURE_PIDFILE"
  echo "killed the $CAPTURE_NAME capture server (pid $pid)"
}

# capture_start SETTINGS FOREGROUND: a server already running with the same SETTINGS (a
# digest of what it was asked for) is left as it is; with other settings it is
# restarted. FOREGROUND (true/false) execs it in this process.
capture_start() {
  local settings=$1 foreground=$2 pid log="$CAPTURE_STATE/server.log"
  if pid=$(capture_running_pid); then
    if [ "$(cat "$CAPTURE_STATE/settings" 2>/dev/null)" = "$settings" ] && capture_port_open && ! $foreground; then
      describe "$pid"
      return 0
    fi
    echo "restarting the $CAPTURE_NAME capture server (pid $pid) with new settings" >&2
    capture_stop
  fi
  rm -f "$CAPTURE_PIDFILE"
  if capture_port_open; then
    echo "port $CAPTURE_HOST:$CAPTURE_PORT is taken by another program; choose another ${CAPTURE_NAME}_PORT" >&2
    return 1
  fi
  echo "$settings" >"$CAPTURE_STATE/settings"

  if $foreground; then
    describe $$
    exec "$CAPTURE_PYTHON" "$CAPTURE_SERVER"
  fi

  nohup "$CAPTURE_PYTHON" "$CAPTURE_SERVER" >>"$log" 2>&1 </dev/null &
  local child=$!
  # server.py writes its pid file once it listens.
  for _ in $(seq 1 100); do
    if [ "$(cat "$CAPTURE_PIDFILE" 2>/dev/null)" = "$child" ] && capture_port_open; then
      describe "$child"
      return 0
    fi
    if ! kill -0 "$child" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "the $CAPTURE_NAME capture server did not start; the end of $log:" >&2
  tail -n 20 "$log" >&2
  kill "$child" 2>/dev/null || true
  return 1
}
