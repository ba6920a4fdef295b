#!/usr/bin/env bash
# A local PostgreSQL pair under pg_auto_failover for tests and trials: a monitor, a
# primary and a synchronous standby, beside the machine's own PostgreSQL (port 5432),
# which it never touches.
#
# Usage: deploy/cluster/postgres.sh COMMAND
#   start              create (the first time) and run the monitor and both nodes
#                      (installing pg_auto_failover if needed), wait for a primary and a
#                      secondary, and print one line on stdout: DATABASE_URL=<multi-host URI>
#   stop               stop the three pg_autoctl services cleanly (data is kept)
#   status             the monitor's view of the nodes (pg_autoctl show state)
#   primary            print the port of the current primary
#   kill-primary       kill -9 the primary's postmaster and pg_autoctl processes (a crash
#                      its keeper cannot repair), and print which node it was
#   restart-node NAME  run NAME (node1, node2 or monitor) again; a former primary
#                      rejoins as a standby
#
# The monitor listens on port 5801, node1 on 5802, node2 on 5803, all on 127.0.0.1 with
# trust authentication and no TLS (a local trial). Files live under
# $AIGUILLAGE_CLUSTER_DIR/postgres (default /var/tmp/aiguillage-cluster): one data
# directory and one log per node, and pg_autoctl's own configuration and state. Everything
# but the DATABASE_URL line (and the answers of status and primary) goes to stderr.
set -euo pipefail

# as_root and apt_install.
# shellcheck source=deploy/dev/services.sh
source "$(dirname "${BASH_SOURCE[0]}")/../dev/services.sh"

# Callers read only the answer on stdout: keep stdout as fd 3, everything else to stderr.
# Processes that outlive the script get fd 3 closed (3>&-), or a caller reading
# $(postgres.sh start) would wait for them to end.
exec 3>&1 1>&2

STATE_DIR="${AIGUILLAGE_CLUSTER_DIR:-/var/tmp/aiguillage-cluster}/postgres"
DBNAME=aiguillage
MONITOR_PORT=5801
DATA_NODES=(node1 node2)
# How long the nodes may take to reach primary + secondary, or a node to rejoin. A first
# start takes ~20 s, a failover ~50 s (pg_auto_failover's defaults, see README.md).
READY_TIMEOUT_SECONDS=180

node_port() {
  case "$1" in
    monitor) echo "$MONITOR_PORT" ;;
    node1) echo 5802 ;;
    node2) echo 5803 ;;
    *) echo "unknown node '$1' (expected node1, node2 or monitor)" >&2; exit 2 ;;
  esac
}
pgdata() { echo "$STATE_DIR/$1"; }

# The newest PostgreSQL installed: pg_auto_failover's extension must match it.
pg_version() {
  find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1
}

ensure_pg_auto_failover() {
  local version
  version=$(pg_version)
  if [ -z "$version" ]; then
    echo "installing PostgreSQL"
    apt_install postgresql
    version=$(pg_version)
  fi
  if ! command -v pg_autoctl >/dev/null 2>&1 ||
    [ ! -f "/usr/share/postgresql/$version/extension/pgautofailover.control" ]; then
    echo "installing pg_auto_failover for PostgreSQL $version"
    apt_install "postgresql-$version-auto-failover"
  fi
  PG_BIN="/usr/lib/postgresql/$version/bin"
}

# Runs a command as the postgres user (pg_autoctl refuses root), with pg_autoctl's
# configuration, state and pid files kept in the state directory rather than in the
# postgres user's home (XDG_*), and this PostgreSQL's pg_ctl first on the PATH.
as_postgres() {
  (cd "$STATE_DIR" && as_root runuser -u postgres -- env \
    PATH="$PG_BIN:/usr/bin:/bin" \
    XDG_CONFIG_HOME="$STATE_DIR/config" \
    XDG_DATA_HOME="$STATE_DIR/share" \
    XDG_RUNTIME_DIR="$STATE_DIR/run" \
    "$@")
}

# Starts a pg_autoctl command in the background, in its own session (so it outlives this
# script and its terminal), its output appended to NAME.log.
as_postgres_in_background() {
  local name=$1
  shift
  # shellcheck disable=SC2016 # expanded by that sh
  as_postgres setsid -f sh -c 'log=$1; shift; exec "$@" >>"$log" 2>&1 </dev/null' \
    sh "$STATE_DIR/$name.log" "$@" 3>&-
}

prepare_state_dir() {
  # The parent is shared with the RabbitMQ cluster: postgres and rabbitmq must cross it
  # (whatever the caller's umask).
  local parent
  parent=$(dirname "$STATE_DIR")
  [ -d "$parent" ] || as_root mkdir -p -m 755 "$parent"
  as_root mkdir -p "$STATE_DIR/run"
  as_root chown postgres:postgres "$STATE_DIR" "$STATE_DIR/run"
  as_root chmod 700 "$STATE_DIR"
}

# pg_autoctl writes its configuration at creation; without it the node is new.
is_created() { as_root test -f "$STATE_DIR/config/pg_autoctl$(pgdata "$1")/pg_autoctl.cfg"; }

# The pid of a node's pg_autoctl supervisor, from the pid file it keeps while it runs
# (under XDG_RUNTIME_DIR, named after the data directory); nothing if there is none.
supervisor_pid() {
  as_root head -n 1 "$STATE_DIR/run/pg_autoctl$(pgdata "$1")/pg_autoctl.pid" 2>/dev/null || true
}

# A supervisor runs (`pg_autoctl status` says no while it is still shutting down).
is_running() {
  local pid
  pid=$(supervisor_pid "$1")
  [ -n "$pid" ] && ps -o stat= -p "$pid" | grep -qv '^Z'
}

# Waits until a node's supervisor has gone, pid file or process. `pg_autoctl run`
# refuses to start while the pid in the file exists, even as a zombie that the
# machine's init has not reaped yet (after a kill -9).
await_exit() {
  local name=$1 pid deadline=$((SECONDS + 60))
  pid=$(supervisor_pid "$name")
  [ -n "$pid" ] || return 0
  while as_root kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$name's pg_autoctl (pid $pid) did not exit within 60s" >&2
      exit 1
    fi
    sleep 0.5
  done
}

launch_monitor() {
  if is_running monitor; then
    echo "the monitor is already running"
    return
  fi
  await_exit monitor
  if is_created monitor; then
    echo "running the monitor on port $MONITOR_PORT"
    as_postgres_in_background monitor pg_autoctl run --pgdata "$(pgdata monitor)"
  else
    echo "creating the monitor on port $MONITOR_PORT"
    as_postgres_in_background monitor pg_autoctl create monitor --run \
      --pgdata "$(pgdata monitor)" --pgport "$MONITOR_PORT" --hostname 127.0.0.1 \
      --auth trust --no-ssl
  fi
}

# SQL on the monitor's pg_auto_failover database (its local socket, as postgres).
monitor_sql() {
  as_postgres psql -X -q -t -A -p "$MONITOR_PORT" -d pg_auto_failover -c "$1"
}

await_monitor() {
  local deadline=$((SECONDS + READY_TIMEOUT_SECONDS))
  until monitor_sql "SELECT 1 FROM pgautofailover.formation LIMIT 1" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "the monitor did not come up; the end of $STATE_DIR/monitor.log:" >&2
      as_root tail -n 20 "$STATE_DIR/monitor.log" >&2
      exit 1
    fi
    sleep 1
  done
}

monitor_uri() { as_postgres pg_autoctl show uri --pgdata "$(pgdata monitor)" --formation monitor; }

launch_node() {
  local name=$1
  if is_running "$name"; then
    echo "$name is already running"
    return
  fi
  await_exit "$name"
  if is_created "$name"; then
    echo "running $name on port $(node_port "$name")"
    as_postgres_in_background "$name" pg_autoctl run --pgdata "$(pgdata "$name")"
  else
    local monitor
    monitor=$(monitor_uri)
    echo "creating $name on port $(node_port "$name")"
    # The first node becomes the primary and creates the database; the next one
    # registers as its standby (pg_basebackup) with replication-quorum on, so the
    # monitor makes the primary's commits wait for it (synchronous_standby_names).
    as_postgres_in_background "$name" pg_autoctl create postgres --run \
      --pgdata "$(pgdata "$name")" --pgport "$(node_port "$name")" \
      --hostname 127.0.0.1 --listen 127.0.0.1 --name "$name" --dbname "$DBNAME" \
      --monitor "$monitor" --auth trust --no-ssl
  fi
}

# How many data nodes the monitor sees in STATE (reported = assigned), by a report
# made after SINCE (the monitor keeps the states of before a stop until the keepers
# report again).
nodes_in_state() {
  monitor_sql "SELECT count(*) FROM pgautofailover.node
                WHERE reportedstate = '$1' AND goalstate = '$1'
                  AND reporttime > '$2'" 2>/dev/null || echo 0
}

# Waits until the monitor reports each of the given states for at least one node, e.g.
# `await_states primary secondary`, from reports made after this call.
await_states() {
  local deadline=$((SECONDS + READY_TIMEOUT_SECONDS)) state missing since
  since=$(monitor_sql "SELECT now()")
  while :; do
    missing=
    for state in "$@"; do
      [ "$(nodes_in_state "$state" "$since")" -ge 1 ] || missing="$missing $state"
    done
    [ -z "$missing" ] && return
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "no node reached:$missing within ${READY_TIMEOUT_SECONDS}s; logs in $STATE_DIR" >&2
      show_state >&2 || true
      exit 1
    fi
    sleep 1
  done
}

# The current primary as "name port", from the monitor; nothing during a failover.
current_primary() {
  monitor_sql "SELECT primary_name || ' ' || primary_port FROM pgautofailover.get_primary()" \
    2>/dev/null || true
}

# Commits on the primary must wait for the standby: pg_auto_failover sets
# synchronous_standby_names once the standby is `secondary`. Checked through the URL we
# print, which also proves that it reaches a writable node and that the database exists.
check_synchronous_replication() {
  local url names deadline=$((SECONDS + 30))
  url=$(database_url)
  url=${url#DATABASE_URL=}
  until names=$(as_postgres psql -X -t -A "$url" -c "SHOW synchronous_standby_names" 2>/dev/null) &&
    [ -n "$names" ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "the primary has no synchronous standby (or $url does not answer)" >&2
      exit 1
    fi
    sleep 1
  done
  echo "primary on port $(current_primary | cut -d' ' -f2), synchronous_standby_names = $names"
}

# The form of `pg_autoctl show uri --formation default`: every node, and
# target_session_attrs=read-write so that a client settles on whichever is the primary.
# Written out rather than taken from it, as that lists the current primary first: the
# line stays the same across failovers. No sslmode: the nodes have no TLS here, and a
# client's default (prefer) falls back to plain connections, as libpq does.
database_url() {
  local name hosts=()
  for name in "${DATA_NODES[@]}"; do hosts+=("127.0.0.1:$(node_port "$name")"); done
  (IFS=,; echo "DATABASE_URL=postgres://postgres@${hosts[*]}/$DBNAME?target_session_attrs=read-write")
}

# pg_autoctl runs pg_basebackup without --checkpoint=fast, so a new standby waits for the
# primary's spread checkpoint: 90 s on an idle node, most of a first start. Unspread,
# it takes a moment. postgresql.auto.conf goes into the base backup, so every node has it.
speed_up_base_backups() {
  as_postgres psql -X -q -h 127.0.0.1 -p "$(current_primary | cut -d' ' -f2)" -d postgres \
    -c "ALTER SYSTEM SET checkpoint_completion_target = 0" -c "SELECT pg_reload_conf()"
}

# Starts the Postgres of an existing node before its keeper, when the monitor knows the
# node in a settled role (a killed primary, which the monitor has since demoted, is left
# to its keeper). A keeper that starts with its Postgres still down reports "not
# running" to the monitor, which takes the node for failed at once: without this, each
# of five restarts here set the standby back to catchingup, and one failed the primary
# over. With Postgres already up (with the options pg_autoctl gives it), `pg_autoctl
# run` adopts it and reports it running.
prestart_postgres() {
  local name=$1 role
  role=$(monitor_sql "SELECT reportedstate FROM pgautofailover.node
                       WHERE nodename = '$name' AND reportedstate = goalstate
                         AND reportedstate IN ('primary', 'wait_primary', 'secondary')")
  [ -n "$role" ] || return 0
  if as_postgres pg_ctl status -D "$(pgdata "$name")" >/dev/null 2>&1; then return 0; fi
  echo "starting $name's Postgres ($role) before its keeper"
  as_postgres pg_ctl start -w -s -D "$(pgdata "$name")" -l "$STATE_DIR/$name.log" \
    -o "-p $(node_port "$name") -h 127.0.0.1" 3>&-
}

start_cluster() {
  local started=$SECONDS name
  ensure_pg_auto_failover
  prepare_state_dir
  launch_monitor
  await_monitor
  for name in "${DATA_NODES[@]}"; do
    if is_created "$name" && ! is_running "$name"; then prestart_postgres "$name"; fi
  done
  for name in "${DATA_NODES[@]}"; do
    if is_created "$name"; then launch_node "$name"; fi
  done
  # A first start: the first node becomes the primary, and the standby is copied from
  # it once it leads.
  if ! is_created node1; then
    launch_node node1
    await_states single
    speed_up_base_backups
  fi
  if ! is_created node2; then launch_node node2; fi
  await_states primary secondary
  check_synchronous_replication
  echo "primary and secondary ready in $((SECONDS - started))s; logs in $STATE_DIR/*.log"
  database_url >&3
}

# Asks a node's pg_autoctl to stop (it stops its postgres too) and waits for it.
stop_node() {
  local name=$1
  if ! is_running "$name"; then
    echo "$name is not running"
    return
  fi
  echo "stopping $name"
  as_postgres pg_autoctl stop --pgdata "$(pgdata "$name")"
  await_exit "$name"
}

# The standby first, then the primary (stopped first, it would be failed over), then the
# monitor.
stop_cluster() {
  [ -d "$STATE_DIR" ] || { echo "no cluster under $STATE_DIR"; return; }
  ensure_pg_auto_failover
  local primary name
  primary=$(current_primary | cut -d' ' -f1)
  for name in "${DATA_NODES[@]}"; do
    [ "$name" = "$primary" ] || stop_node "$name"
  done
  if [ -n "$primary" ]; then stop_node "$primary"; fi
  stop_node monitor
}

show_state() {
  as_postgres pg_autoctl show state --pgdata "$(pgdata monitor)"
}

show_status() {
  if is_running monitor; then
    show_state
  else
    echo "the monitor is not running (state directory: $STATE_DIR)"
  fi
}

print_primary_port() {
  local primary
  primary=$(current_primary)
  if [ -z "$primary" ]; then
    echo "no primary right now" >&2
    exit 1
  fi
  echo "${primary#* }"
}

# The pids of a node's pg_autoctl processes: the supervisor (first line of its pid file)
# and the services it forks (the keeper, and the one that starts postgres).
pg_autoctl_pids() {
  local supervisor
  supervisor=$(supervisor_pid "$1")
  [ -n "$supervisor" ] || return 0
  echo "$supervisor"
  ps -o pid= -o comm= --ppid "$supervisor" | awk '$2 == "pg_autoctl" { print $1 }'
}

# A crash of the primary's machine, as far as this machine can play it: the keeper goes
# first (else it would restart postgres at once), then the postmaster.
kill_primary() {
  local primary name port pids postmaster
  primary=$(current_primary)
  if [ -z "$primary" ]; then
    echo "no primary right now" >&2
    exit 1
  fi
  name=${primary% *}
  port=${primary#* }
  pids=$(pg_autoctl_pids "$name" | tr '\n' ' ')
  postmaster=$(as_root head -n 1 "$(pgdata "$name")/postmaster.pid" 2>/dev/null || true)
  # shellcheck disable=SC2086 # one pid per word
  [ -z "$pids" ] || as_root kill -9 $pids
  [ -z "$postmaster" ] || as_root kill -9 "$postmaster"
  echo "killed the primary, $name (port $port): pg_autoctl ${pids}and postmaster $postmaster"
  echo "$name" >&3
}

restart_node() {
  local name=$1
  node_port "$name" >/dev/null
  ensure_pg_auto_failover
  if [ "$name" = monitor ]; then
    launch_monitor
    await_monitor
    return
  fi
  launch_node "$name"
  echo "waiting for $name to rejoin"
  local deadline=$((SECONDS + READY_TIMEOUT_SECONDS)) state
  while :; do
    # The monitor's view of a dead node is stale until its keeper reports again: wait for
    # the state it reports to be the one it is assigned.
    state=$(monitor_sql "SELECT reportedstate FROM pgautofailover.node
                          WHERE nodename = '$name' AND reportedstate = goalstate")
    case "$state" in secondary | primary) break ;; esac
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$name has not rejoined after ${READY_TIMEOUT_SECONDS}s; see $STATE_DIR/$name.log" >&2
      exit 1
    fi
    sleep 1
  done
  echo "$name is $state"
}

case "${1:-}" in
  start) start_cluster ;;
  stop) stop_cluster ;;
  status) ensure_pg_auto_failover; show_status >&3 ;;
  primary) ensure_pg_auto_failover; print_primary_port >&3 ;;
  kill-primary) ensure_pg_auto_failover; kill_primary ;;
  restart-node) restart_node "${2:-}" ;;
  *)
    sed -n '6,16p' "$0" >&2
    exit 2
    ;;
esac
