#!/usr/bin/env bash
# The fast test tier, to run after each change: every unit and property test, and each
# service's in-process HTTP tests (`tests/http.rs`: `#[sqlx::test]`, one database per
# test, the router called with `oneshot`, no server and no broker). The end-to-end suite
# (real processes, RabbitMQ, browsers) stays in .ci/run.
#
#   deploy/dev/fast-tests.sh                 everything of the tier
#   deploy/dev/fast-tests.sh -p notify       one crate (any `cargo test` arguments)
#
# Needs the local PostgreSQL (deploy/dev/services.sh starts it); the tests create and drop
# their databases through DATABASE_URL, a superuser's URL (default: the current user on
# the local socket).
set -euo pipefail
cd "$(dirname "$0")/../.."
export DATABASE_URL="${DATABASE_URL:-postgres://$(id -un)@%2Fvar%2Frun%2Fpostgresql/postgres}"
export SQLX_OFFLINE=true
if command -v mold >/dev/null 2>&1; then
  export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="${CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS:--C link-arg=-fuse-ld=mold}"
fi
if [ "$#" -eq 0 ]; then
  set -- --workspace
fi
# `--test http` only where it exists: with -p of a crate that has none, cargo refuses it.
http=(--test http)
args=("$@")
for i in "${!args[@]}"; do
  if [ "${args[$i]}" = "-p" ] || [ "${args[$i]}" = "--package" ]; then
    crate=${args[$((i + 1))]:-}
    if [ ! -f services/"$crate"/tests/http.rs ] && [ ! -f shared/"$crate"/tests/http.rs ]; then
      http=()
    fi
  fi
done
exec cargo test --locked "$@" --lib --bins "${http[@]}"
