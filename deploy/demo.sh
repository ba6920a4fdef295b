#!/usr/bin/env bash
# Runs the Aiguillage demo: every service in one process on the local PostgreSQL and
# RabbitMQ (started, or installed on a machine that lacks them), with the real Charente
# directory loaded and one token printed per role.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/dev/services.sh
ensure_services
if command -v mold >/dev/null 2>&1; then
  export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="${CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS:--C link-arg=-fuse-ld=mold}"
fi
exec cargo run --release --locked -p aiguillage -- demo "$@"
