#!/usr/bin/env bash
# Starts the capture SMTP server (server.py) on 127.0.0.1:$SMTP_PORT, in the background
# by default, or in the foreground with --foreground. Idempotent: when a server started
# by this script already runs on that port with the same settings, it says so and
# leaves it; with other settings it is restarted. Prints where messages are written.
# Settings: the SMTP_* variables in README.md beside this file.
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

export SMTP_HOST=${SMTP_HOST:-127.0.0.1}
export SMTP_PORT=${SMTP_PORT:-2525}
state=${SMTP_STATE_DIR:-$AIGUILLAGE_CACHE_DIR/smtp-$SMTP_PORT}
export SMTP_MAILDIR=${SMTP_MAILDIR:-$state/mail}
export SMTP_TLS=${SMTP_TLS:-off}
export SMTP_PIDFILE="$state/server.pid"
log="$state/server.log"
venv="$AIGUILLAGE_CACHE_DIR/smtp-venv"
mkdir -p "$state" "$SMTP_MAILDIR"

ensure_python_venv "$venv" "$here/requirements.txt"

# A throw-away certificate authority and a localhost certificate it signed, made once
# per state directory (and again when they are about to expire). Clients trust ca.pem:
# rustls refuses a self-signed certificate used directly as a server certificate.
make_tls() {
  local dir="$state/tls"
  if [ -s "$dir/cert.pem" ] && openssl x509 -checkend 86400 -noout -in "$dir/cert.pem" >/dev/null 2>&1; then
    return 0
  fi
  command -v openssl >/dev/null 2>&1 || apt_install openssl
  mkdir -p "$dir"
  (
    umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 365 \
      -subj "/CN=Aiguillage dev SMTP CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout "$dir/key.pem" -out "$dir/cert.csr" -subj "/CN=localhost" 2>/dev/null
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" >"$dir/cert.ext"
    openssl x509 -req -in "$dir/cert.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
      -out "$dir/cert.pem" -days 364 -extfile "$dir/cert.ext" 2>/dev/null
    rm -f "$dir/cert.csr" "$dir/cert.ext" "$dir/ca.srl"
  )
  chmod 644 "$dir/ca.pem" "$dir/cert.pem"
}
if [ "$SMTP_TLS" != off ] && [ -z "${SMTP_TLS_CERT:-}" ]; then
  make_tls
  export SMTP_TLS_CERT="$state/tls/cert.pem" SMTP_TLS_KEY="$state/tls/key.pem"
fi

# What this server was asked for; a running one with other settings is restarted.
settings=$(printf '%s\n' "$SMTP_HOST" "$SMTP_PORT" "$SMTP_MAILDIR" "$SMTP_TLS" \
  "${SMTP_REQUIRE_TLS:-0}" "${SMTP_AUTH:-}" "${SMTP_REJECT:-}" "${SMTP_DEFER:-}" "${SMTP_FSYNC:-0}" \
  "${SMTP_TLS_CERT:-}" "${SMTP_TLS_KEY:-}" "$(sha256sum <"$here/server.py")" | sha256sum | cut -d' ' -f1)

describe() {
  local scheme=smtp query="" creds=""
  [ "$SMTP_TLS" = implicit ] && scheme=smtps
  [ "$SMTP_TLS" = starttls ] && query="?tls=starttls"
  [ -n "${SMTP_AUTH:-}" ] && creds="${SMTP_AUTH%%:*}:***@"
  echo "SMTP capture server: $scheme://$creds$SMTP_HOST:$SMTP_PORT$query (pid $1, log $log)"
  [ "$SMTP_TLS" != off ] && [ -s "$state/tls/ca.pem" ] && echo "  TLS: trust $state/tls/ca.pem"
  echo "  messages are written to $SMTP_MAILDIR (one .eml and one .json each)"
}

CAPTURE_NAME=SMTP CAPTURE_SERVER="$here/server.py" CAPTURE_PYTHON="$venv/bin/python"
CAPTURE_HOST="$SMTP_HOST" CAPTURE_PORT="$SMTP_PORT" CAPTURE_STATE="$state" CAPTURE_PIDFILE="$SMTP_PIDFILE"
# shellcheck source=deploy/dev/capture.sh
source "$here/../capture.sh"
capture_start "$settings" "$foreground"
