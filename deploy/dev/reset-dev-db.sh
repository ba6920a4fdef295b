#!/usr/bin/env bash
# Recreates the development database that sqlx's query macros check against at compile
# time, from every schema's SQL migrations. Only needed when changing SQL, and
# deploy/dev/sqlx-prepare.sh runs it; builds use the offline data in .sqlx/
# (SQLX_OFFLINE=true) and need no database.
set -euo pipefail
cd "$(dirname "$0")/../.."
db=${DEV_DATABASE:-aiguillage_dev}
psql -q -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" -c "CREATE DATABASE \"$db\""
for dir in shared/platform services/directory services/matcher services/referrals services/insights services/accounts services/notify services/web; do
  schema=$(basename "$dir")
  psql -q -v ON_ERROR_STOP=1 -d "$db" -c "CREATE SCHEMA IF NOT EXISTS $schema"
  for f in "$dir"/migrations/*.sql; do
    [ -e "$f" ] && psql -q -v ON_ERROR_STOP=1 -d "$db" -f "$f"
  done
done
echo "reset $db"
