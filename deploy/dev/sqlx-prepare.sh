#!/usr/bin/env bash
# After changing SQL checked at compile time (`sqlx::query!` and friends): recreates the
# development database from the migrations (reset-dev-db.sh), builds every target against
# it, and writes the offline data that builds use (`.sqlx/`, committed). Installs sqlx-cli
# (the version of the workspace's sqlx) when missing.
#
#   deploy/dev/sqlx-prepare.sh            then commit .sqlx/
set -euo pipefail
cd "$(dirname "$0")/../.."
db=${DEV_DATABASE:-aiguillage_dev}
if ! cargo sqlx --version >/dev/null 2>&1; then
  echo "installing sqlx-cli" >&2
  cargo install sqlx-cli --version '^0.9' --no-default-features --features postgres,rustls --locked
fi
DEV_DATABASE="$db" deploy/dev/reset-dev-db.sh
# The macros connect from the compiler's process: name the user, the socket and the database.
export DATABASE_URL="postgres://$(id -un)@%2Fvar%2Frun%2Fpostgresql/$db"
export SQLX_OFFLINE=false
if command -v mold >/dev/null 2>&1; then
  export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="${CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS:--C link-arg=-fuse-ld=mold}"
fi
cargo sqlx prepare --workspace -- --all-targets
