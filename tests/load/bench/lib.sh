# What the single-server benchmarks share (appointments-ab.sh, simulation-intake.sh,
# same-person.sh, simulation-fidelity.sh): the release binaries, a database, namespace and
# port of their own, and a release server started and ready. Sourced, from the repository
# root, after deploy/dev/services.sh.

# bench_release [BINARY...]: checks the release binaries (default aiguillage and
# aiguillage-load) and sets `release` to their directory.
bench_release() {
  release="${CARGO_TARGET_DIR:-target}/release"
  local bins=("$@")
  [ ${#bins[@]} -gt 0 ] || bins=(aiguillage aiguillage-load)
  for bin in "${bins[@]}"; do
    if [ ! -x "$release/$bin" ]; then
      echo "no $release/$bin: run \`cargo build --release -p aiguillage -p aiguillage-load\` first" >&2
      exit 1
    fi
  done
}

# bench_env NAME PORT: a database `aig_bench_NAME_PID`, a run directory `work`, the
# namespace `bench-NAME-PID`, the server on PORT (or $PORT), and throw-away keys.
bench_env() {
  database="aig_bench_${1//-/_}_$$"
  work=$(mktemp -d -t "aiguillage-$1.XXXXXX")
  export DATABASE_URL="postgres://$(id -un)@%2Fvar%2Frun%2Fpostgresql/$database"
  export AIGUILLAGE_NAMESPACE="bench-$1-$$"
  export AIGUILLAGE_LISTEN="127.0.0.1:${PORT:-$2}"
  export AIGUILLAGE_BASE_URL="http://$AIGUILLAGE_LISTEN"
  export RUST_LOG=${RUST_LOG:-warn}
  # The person records are sealed: a throw-away key for this run's database.
  export AIGUILLAGE_MASTER_KEY=${AIGUILLAGE_MASTER_KEY:-$(openssl rand -base64 32)}
  export AIGUILLAGE_TOKEN_SECRET=${AIGUILLAGE_TOKEN_SECRET:-$(openssl rand -hex 32)}
  server=""
  captured=""
}

# bench_capture SMTP_PORT SMS_PORT: capture SMTP and SMS servers of the run's own (ports
# overridden by BENCH_SMTP_PORT and BENCH_SMS_PORT), which the server is pointed at.
bench_capture() {
  export SMTP_PORT=${BENCH_SMTP_PORT:-$1} SMTP_STATE_DIR="$work/smtp"
  export SMS_PORT=${BENCH_SMS_PORT:-$2} SMS_STATE_DIR="$work/sms" SMS_API_KEY=bench-sms-key
  export AIGUILLAGE_SMTP_URL="smtp://127.0.0.1:$SMTP_PORT"
  export AIGUILLAGE_SMS_URL="http://127.0.0.1:$SMS_PORT" AIGUILLAGE_SMS_API_KEY=$SMS_API_KEY
  captured=1
  deploy/dev/smtp/start.sh >/dev/null
  deploy/dev/sms/start.sh >/dev/null
}

# bench_serve SERVICES: migrates, starts `serve --services SERVICES` (its log in
# $work/server.log, its pid in `server`) and waits until it is ready.
bench_serve() {
  "$release/aiguillage" migrate >/dev/null
  "$release/aiguillage" serve --services "$1" >"$work/server.log" 2>&1 &
  server=$!
  local deadline=$((SECONDS + 60))
  until curl -fs "$AIGUILLAGE_BASE_URL/readyz" >/dev/null; do
    if [ "$SECONDS" -gt "$deadline" ] || ! kill -0 "$server" 2>/dev/null; then
      echo "the server did not start:" >&2
      cat "$work/server.log" >&2
      exit 1
    fi
    sleep 0.2
  done
}

# bench_stop: stops the server (removing its namespace) and the capture servers, and drops
# the database (for the scripts' EXIT traps).
bench_stop() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    # Its queues and exchanges too, once nothing consumes them.
    "$release/aiguillage-load" --cleanup-namespace >/dev/null 2>&1 || true
  fi
  if [ -n "$captured" ]; then
    deploy/dev/smtp/stop.sh >/dev/null 2>&1 || true
    deploy/dev/sms/stop.sh >/dev/null 2>&1 || true
  fi
  psql -q -h /var/run/postgresql -d postgres -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
  echo "run files kept in $work" >&2
}
