#!/usr/bin/env bash
# The entrypoint of deploy/postgres/Dockerfile: one pg_auto_failover node per container
# of deploy/compose.yaml, or the one-shot that applies roles.sql.
#
#   pgaf-node run      PGAF_ROLE=monitor: the monitor, which decides failovers.
#                      PGAF_ROLE=postgres: a data node (the first to register becomes
#                      the primary, the next its synchronous standby), registered with
#                      the monitor at PGAF_MONITOR_HOST under the name PGAF_NODE_NAME.
#   pgaf-node healthy  exit 0 once this node can do its part: the monitor once nodes
#                      can log in to it, a data node once it is a standby or a primary
#                      whose replication password is set (the compose health checks).
#   pgaf-node roles    roles.sql on whichever of PGHOST accepts writes
#                      (PGTARGETSESSIONATTRS=read-write), as postgres; waits for one.
#
# Both `run`s use `pg_autoctl create … --run`, which pg_auto_failover makes safe to run
# again: a node that exists already just runs. Passwords come from the compose secrets
# in /run/secrets: pgaf_password (autoctl_node on the monitor, pgautofailover_replicator
# on the data nodes) and postgres_password (the superuser, for the roles one-shot).
# Authentication is pg_hba.conf's (SCRAM over the network, no TLS: the services' database
# client has none, see deploy/README.md). PGPORT, PGAF_MONITOR_PORT (5432),
# PGAF_SOCKET_DIR and PGAF_SECRETS_DIR change the image's defaults, to run this
# elsewhere (several nodes on one machine, as when it was tried out).
set -euo pipefail

PORT=${PGPORT:-5432}
SOCKET_DIR=${PGAF_SOCKET_DIR:-/var/run/postgresql}
SECRETS_DIR=${PGAF_SECRETS_DIR:-/run/secrets}
DBNAME=${AIGUILLAGE_DB_NAME:-aiguillage}

secret() {
  local file=$SECRETS_DIR/$1 value
  value=$(cat "$file" 2>/dev/null || true)
  if [ -z "$value" ]; then
    echo "pgaf-node: the secret $1 is missing or empty (see deploy/.env.example)" >&2
    exit 1
  fi
  printf '%s' "$value"
}

# The local Postgres, over its socket (trust, pg_hba.conf), in DATABASE.
local_sql() {
  local database=$1
  shift
  psql -X -q -t -A -v ON_ERROR_STOP=1 -h "$SOCKET_DIR" -p "$PORT" -d "$database" "$@"
}

# libpq reads ~/.pgpass for every connection made as this user without a password:
# pg_autoctl's to the monitor, and to the primary as pgautofailover_replicator (first in
# the application's database, to prepare the standby, then pg_basebackup's and the
# walreceiver's replication connections; the walreceiver runs inside Postgres, as this
# user, so an environment variable would not reach it). ':' and '\' are escaped as the
# file's format wants.
write_pgpass() {
  local password
  password=$(secret pgaf_password | sed 's/[\\:]/\\&/g')
  (
    umask 077
    printf '*:*:pg_auto_failover:autoctl_node:%s\n*:*:*:pgautofailover_replicator:%s\n' \
      "$password" "$password" >"$HOME/.pgpass"
  )
}

# Runs SQL once the local Postgres answers and CONDITION (a query) returns t, in the
# background for as long as the node runs: pg_autoctl creates the roles this sets only
# after it has started Postgres. Detached twice so that pg_autoctl, which takes over
# this process, never sees it as a child; tini (compose `init: true`) reaps it.
when_ready() {
  local database=$1 condition=$2 sql=$3
  (
    (
      while :; do
        state=$(local_sql "$database" -c "$condition" 2>/dev/null || true)
        case "$state" in
          t) local_sql "$database" -v pgaf="$(secret pgaf_password)" \
               -v superuser="$(secret postgres_password)" <<<"$sql" && exit 0 ;;
          skip) exit 0 ;;
        esac
        sleep 2
      done
    ) &
  )
}

run_monitor() {
  write_pgpass
  # Every start: a changed AIGUILLAGE_PGAF_PASSWORD takes effect with a restart.
  when_ready pg_auto_failover \
    "SELECT 't' FROM pg_roles WHERE rolname = 'autoctl_node'" \
    "ALTER ROLE autoctl_node PASSWORD :'pgaf';"
  exec pg_autoctl create monitor --run \
    --pgdata "$PGDATA" --pgport "$PORT" --hostname "${PGAF_HOSTNAME:-$(hostname)}" \
    --skip-pg-hba --no-ssl
}

run_postgres() {
  local name=${PGAF_NODE_NAME:-$(hostname)}
  write_pgpass
  # On the primary only (a standby is read-only and gets these by replication): the
  # replication password, which the standby needs for its base backup, and the
  # superuser's, which the roles one-shot logs in with.
  when_ready postgres \
    "SELECT CASE WHEN pg_is_in_recovery() THEN 'skip' ELSE 't' END
       FROM pg_roles WHERE rolname = 'pgautofailover_replicator'" \
    "ALTER ROLE pgautofailover_replicator PASSWORD :'pgaf';
     ALTER ROLE postgres PASSWORD :'superuser';"
  # --replication-quorum (the default, said again): the monitor lists this node in the
  # primary's synchronous_standby_names once it is a secondary, so a commit waits for it.
  exec pg_autoctl create postgres --run \
    --pgdata "$PGDATA" --pgport "$PORT" --hostname "${PGAF_HOSTNAME:-$(hostname)}" \
    --name "$name" --dbname "$DBNAME" \
    --monitor "postgres://autoctl_node@${PGAF_MONITOR_HOST:-postgres-monitor}:${PGAF_MONITOR_PORT:-5432}/pg_auto_failover?sslmode=disable" \
    --replication-quorum true \
    --skip-pg-hba --no-ssl
}

healthy() {
  case "${PGAF_ROLE:-}" in
    monitor)
      [ "$(local_sql pg_auto_failover -c \
        "SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = 'autoctl_node'")" = t ]
      ;;
    postgres)
      [ "$(local_sql postgres -c \
        "SELECT pg_is_in_recovery() OR rolpassword IS NOT NULL
           FROM pg_authid WHERE rolname = 'pgautofailover_replicator'")" = t ]
      ;;
    *) echo "pgaf-node: PGAF_ROLE must be monitor or postgres" >&2; return 2 ;;
  esac
}

apply_roles() {
  local deadline=$((SECONDS + ${ROLES_TIMEOUT_SECONDS:-300}))
  PGPASSWORD=$(secret postgres_password)
  export PGPASSWORD PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-5}
  : "${PGHOST:?PGHOST lists the data nodes}" "${PGTARGETSESSIONATTRS:?set it to read-write}"
  until psql -X -q -d postgres -U postgres -c 'SELECT 1' >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "pgaf-node: no primary among $PGHOST accepted the superuser within the time given" >&2
      psql -X -q -d postgres -U postgres -c 'SELECT 1' || true
      exit 1
    fi
    sleep 2
  done
  echo "applying roles.sql on the primary among $PGHOST"
  AIGUILLAGE_ROLES_SQL=/usr/local/share/aiguillage/roles.sql \
    POSTGRES_USER=postgres /usr/local/share/aiguillage/init-roles.sh
}

case "${1:-run}" in
  run)
    mkdir -p "$XDG_RUNTIME_DIR"
    case "${PGAF_ROLE:-}" in
      monitor) run_monitor ;;
      postgres) run_postgres ;;
      *) echo "pgaf-node: PGAF_ROLE must be monitor or postgres" >&2; exit 2 ;;
    esac
    ;;
  healthy) healthy ;;
  roles) apply_roles ;;
  *) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
