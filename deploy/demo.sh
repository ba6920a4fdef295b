#!/usr/bin/env bash
# Runs the Aiguillage demo: every service in one process on the local PostgreSQL and
# RabbitMQ (started, or installed on a machine that lacks them), with the real Charente
# directory loaded, one token printed per role, and sign-in through a local OpenID
# provider with demo agents.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/dev/services.sh
ensure_services
if command -v mold >/dev/null 2>&1; then
  export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="${CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS:--C link-arg=-fuse-ld=mold}"
fi

# Sign-in: the development OpenID provider (ProConnect-like, never for production) on
# 127.0.0.1:8090, with the demo agents of deploy/dev/oidc/agents.json. Set
# AIGUILLAGE_OIDC_ISSUER yourself to use another provider.
if [ -z "${AIGUILLAGE_OIDC_ISSUER:-}" ]; then
  export OIDC_PORT="${OIDC_PORT:-8090}"
  export OIDC_RP_URL="${AIGUILLAGE_PUBLIC_URL:-http://${AIGUILLAGE_LISTEN:-127.0.0.1:8080}}"
  export OIDC_LOG=quiet
  start_oidc_provider
  trap stop_oidc_provider EXIT
  export AIGUILLAGE_OIDC_ISSUER="http://127.0.0.1:$OIDC_PORT"
  export AIGUILLAGE_OIDC_CLIENT_ID="${OIDC_CLIENT_ID:-aiguillage-demo}"
  export AIGUILLAGE_OIDC_CLIENT_SECRET="${OIDC_CLIENT_SECRET:-aiguillage-demo-secret-dev-only-0000000000}"
  export AIGUILLAGE_DEMO_AGENTS="$PWD/deploy/dev/oidc/agents.json"
fi
# E-mail: the capture SMTP server of deploy/dev/smtp on 127.0.0.1:2525, which writes every
# message the demo sends to a folder instead of delivering it. Set AIGUILLAGE_SMTP_URL
# yourself to use another server.
if [ -z "${AIGUILLAGE_SMTP_URL:-}" ]; then
  source deploy/dev/tools.sh
  export SMTP_PORT="${SMTP_PORT:-2525}"
  export SMTP_MAILDIR="${SMTP_MAILDIR:-$AIGUILLAGE_CACHE_DIR/smtp-$SMTP_PORT/mail}"
  ensure_smtp_server "$SMTP_PORT"
  export AIGUILLAGE_SMTP_URL="smtp://127.0.0.1:$SMTP_PORT"
  echo "E-mails sent by the demo: read them in $SMTP_MAILDIR (one .eml and one .json each)"
fi
# SMS to the people referred (appointments): the capture SMS server of deploy/dev/sms on
# 127.0.0.1:8095, which speaks the Brevo-compatible API and writes every message to a
# folder instead of sending it. Set AIGUILLAGE_SMS_URL (and AIGUILLAGE_SMS_API_KEY) yourself
# to use a real provider.
if [ -z "${AIGUILLAGE_SMS_URL:-}" ]; then
  source deploy/dev/tools.sh
  export SMS_PORT="${SMS_PORT:-8095}"
  export SMS_API_KEY="${SMS_API_KEY:-aiguillage-dev-sms-key}"
  export SMS_DIR="${SMS_DIR:-$AIGUILLAGE_CACHE_DIR/sms-$SMS_PORT/sms}"
  ensure_sms_server "$SMS_PORT"
  export AIGUILLAGE_SMS_URL="http://127.0.0.1:$SMS_PORT"
  export AIGUILLAGE_SMS_API_KEY="$SMS_API_KEY"
  echo "SMS sent by the demo: read them in $SMS_DIR (one .json each: recipient, content, segments)"
fi
cargo run --release --locked -p aiguillage -- demo "$@"
