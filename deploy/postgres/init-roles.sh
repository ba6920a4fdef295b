#!/usr/bin/env bash
# Runs deploy/postgres/roles.sql once, when the official postgres image initialises an
# empty data directory (it runs /docker-entrypoint-initdb.d/*.sh as the superuser,
# through the local socket). compose.yaml mounts this file there and roles.sql in a
# sub-folder, which the image's entrypoint ignores on its own.
#
# Passwords come from the container's environment (AIGUILLAGE_<ROLE>_DB_PASSWORD); an
# unset one is left out, so that role keeps the password it has, or none (roles.sql
# takes each as optional). AIGUILLAGE_DB_NAME names the database (aiguillage), and
# AIGUILLAGE_ROLES_SQL the script, to run this wrapper somewhere else.
#
# To apply roles.sql again later (a new password, before a release), run it by hand:
#   docker compose exec postgres /docker-entrypoint-initdb.d/10-aiguillage-roles.sh

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
