#!/usr/bin/env bash
# Runs deploy/postgres/roles.sql with the database name and passwords taken from the
# environment. Two callers:
# - deploy/compose.yaml's `postgres-roles` one-shot (`pgaf-node roles`, Dockerfile
#   beside this file), which points libpq at the primary through PGHOST (both data
#   nodes) and PGTARGETSESSIONATTRS=read-write, and logs in as postgres;
# - the official postgres image, for a single server: mounted in
#   /docker-entrypoint-initdb.d, it runs once when the image initialises an empty data
#   directory, as the superuser through the local socket (roles.sql then goes in a
#   sub-folder, which that entrypoint ignores).
#
# Passwords come from the environment (AIGUILLAGE_<ROLE>_DB_PASSWORD); an unset one is
# left out, so that role keeps the password it has, or none (roles.sql takes each as
# optional). AIGUILLAGE_DB_NAME names the database (aiguillage), and
# AIGUILLAGE_ROLES_SQL the script, to run this wrapper somewhere else.
#
# To apply roles.sql again later (a new password, before a release):
#   docker compose run --rm postgres-roles

aiguillage_roles() {
  local script=${AIGUILLAGE_ROLES_SQL:-/docker-entrypoint-initdb.d/aiguillage/roles.sql}
  local args=(-v ON_ERROR_STOP=1 -X -q
              --username "${POSTGRES_USER:-postgres}" --dbname postgres
              -v dbname="${AIGUILLAGE_DB_NAME:-aiguillage}")
  local role var
  for role in migrator directory matcher referrals insights accounts notify web; do
    var="AIGUILLAGE_${role^^}_DB_PASSWORD"
    if [ -n "${!var:-}" ]; then
      args+=(-v "${role}_password=${!var}")
    fi
  done
  psql "${args[@]}" -f "$script"
}

# The image's entrypoint sources a .sh file that is not executable: stay function-only
# so nothing here leaks into it, and fail its `set -e` if psql fails.
aiguillage_roles
