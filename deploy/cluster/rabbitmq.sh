#!/usr/bin/env bash
# A local three-node RabbitMQ cluster for tests and trials, beside the machine's own
# node (rabbit@…, port 5672), which it never touches.
#
# Usage: deploy/cluster/rabbitmq.sh COMMAND
#   start         start the three nodes (installing RabbitMQ if needed), cluster them,
#                 and print one line on stdout: AMQP_URL=<the three URIs, comma-separated>
#   stop          stop the three nodes cleanly (their data is kept for the next start)
#   status        the cluster's status, as node 1 (or the first node that answers) sees it
#   kill N        kill -9 node N's Erlang VM (N = 1, 2 or 3): a crash, for fault tests
#   stop-node N   stop node N cleanly
#   start-node N  start node N again and wait until it has booted
#   partition N   cut node N off from the other two (their Erlang distribution traffic is
#                 dropped by an nftables table of our own; clients still reach every node)
#   heal          remove that table, and wait until the three nodes run together again
#   leader        the numbers of the nodes that lead quorum queues, most queues first
#
# Node N is aigN@localhost, AMQP port 570N, Erlang distribution port 2570N, no
# management plugin. Its connections to the other nodes leave from 127.0.1.N (every
# 127/8 address is this machine's), so that `partition` can tell them apart from the
# command-line tools' and the clients', which use 127.0.0.1. Its files live under $AIGUILLAGE_CLUSTER_DIR/rabbitmq/nodeN
# (default /var/tmp/aiguillage-cluster). Everything but the AMQP_URL line goes to stderr,
# so `eval "$(deploy/cluster/rabbitmq.sh start)"` or `export "$(…)"` works.
set -euo pipefail

# as_root and apt_install.
# shellcheck source=deploy/dev/services.sh
source "$(dirname "${BASH_SOURCE[0]}")/../dev/services.sh"

# The AMQP_URL line is the only thing callers read on stdout: keep stdout as fd 3 and send
# everything else (our messages, RabbitMQ's tools) to stderr. The nodes get fd 3 closed
# (3>&-), or a caller reading $(rabbitmq.sh start) would wait for them to end.
exec 3>&1 1>&2

STATE_DIR="${AIGUILLAGE_CLUSTER_DIR:-/var/tmp/aiguillage-cluster}/rabbitmq"
RABBITMQ_BIN=/usr/lib/rabbitmq/bin
NODES=(1 2 3)
# How long a node may take to boot, and the cluster to show three running nodes.
BOOT_TIMEOUT_SECONDS=120

node_name() { echo "aig$1@localhost"; }
amqp_port() { echo $((5700 + $1)); }
# RabbitMQ's own convention: the distribution port is the AMQP port + 20000.
dist_port() { echo $((25700 + $1)); }
node_dir() { echo "$STATE_DIR/node$1"; }
pid_file() { echo "$(node_dir "$1")/rabbitmq.pid"; }

check_node_number() {
  case "${1:-}" in
    1 | 2 | 3) ;;
    *) echo "expected a node number, 1, 2 or 3; got '${1:-}'" >&2; exit 2 ;;
  esac
}

ensure_rabbitmq_installed() {
  if [ ! -x "$RABBITMQ_BIN/rabbitmq-server" ]; then
    echo "installing RabbitMQ"
    apt_install rabbitmq-server
  fi
}

# Runs a RabbitMQ tool for node N as the rabbitmq user (the owner of the packaged node's
# files, so the nodes here never run as root), with the node's own environment file and a
# HOME of our own: the Erlang cookie is read from $HOME/.erlang.cookie by the server and
# by rabbitmqctl alike, and the machine's cookie in /var/lib/rabbitmq stays out of it.
rabbitmq_tool() {
  local n=$1 tool=$2
  shift 2
  (cd "$STATE_DIR" && as_root runuser -u rabbitmq -- env \
    HOME="$STATE_DIR/home" \
    RABBITMQ_CONF_ENV_FILE="$(node_dir "$n")/rabbitmq-env.conf" \
    "$RABBITMQ_BIN/$tool" "$@")
}

ctl() {
  local n=$1
  shift
  rabbitmq_tool "$n" rabbitmqctl -n "$(node_name "$n")" "$@"
}

# The files shared by the three nodes (cookie, configuration), then each node's own
# environment file. Rewritten at every start, so an edit here reaches existing clusters;
# the cookie and the data directories are kept.
write_state() {
  # The parent is shared with the PostgreSQL cluster: rabbitmq and postgres must cross it
  # (whatever the caller's umask).
  local parent
  parent=$(dirname "$STATE_DIR")
  [ -d "$parent" ] || as_root mkdir -p -m 755 "$parent"
  as_root mkdir -p "$STATE_DIR/home"
  as_root chown rabbitmq:rabbitmq "$STATE_DIR" "$STATE_DIR/home"
  local cookie="$STATE_DIR/home/.erlang.cookie"
  if ! as_root test -s "$cookie"; then
    od -An -tx1 -N20 /dev/urandom | tr -d ' \n' | as_root tee "$cookie" >/dev/null
  fi
  as_root chown rabbitmq:rabbitmq "$cookie"
  as_root chmod 400 "$cookie"

  as_root tee "$STATE_DIR/rabbitmq.conf" >/dev/null <<'EOF'
# Written by deploy/cluster/rabbitmq.sh: settings shared by the three local nodes.
cluster_name = aiguillage-local
# A node cut off from the other two stops serving rather than diverge; quorum queues
# need a majority (2 of 3) anyway.
cluster_partition_handling = pause_minority
# guest/guest, from loopback only (RabbitMQ's default, said again).
loopback_users.guest = true
# As deploy/rabbitmq/rabbitmq.conf: consumers ack after their transaction commits.
consumer_timeout = 1800000
# Three nodes share this machine's memory (each would otherwise take 40% as its own).
vm_memory_high_watermark.relative = 0.2
log.console = false
log.file.level = info
EOF
  # Quorum queues (declared by the services with x-queue-type: quorum) get this many
  # replicas. 3 is RabbitMQ 3.10's default; 3.10's rabbitmq.conf has no key for it
  # (quorum_queue.* there holds only compute_checksums), hence advanced.config.
  # A peer that stops answering is declared down after 3/4 to 5/4 of net_ticktime: 15 s
  # instead of Erlang's 60 lets `partition` take effect in 11-19 s, in a test's time.
  # On three machines keep the default, which rides out short network hiccups.
  as_root tee "$STATE_DIR/advanced.config" >/dev/null <<'EOF'
[{rabbit, [{quorum_cluster_size, 3}]},
 {kernel, [{net_ticktime, 15}]}].
EOF
  echo "[]." | as_root tee "$STATE_DIR/enabled_plugins" >/dev/null
  as_root chown rabbitmq:rabbitmq "$STATE_DIR/rabbitmq.conf" "$STATE_DIR/advanced.config" \
    "$STATE_DIR/enabled_plugins"

  local n dir
  for n in "${NODES[@]}"; do
    dir=$(node_dir "$n")
    as_root mkdir -p "$dir/mnesia" "$dir/log"
    # Every path is ours, so nothing is read from /etc/rabbitmq (the machine's node's
    # rabbitmq-env.conf names that node, and its conf.d would apply to ours).
    as_root tee "$dir/rabbitmq-env.conf" >/dev/null <<EOF
# Written by deploy/cluster/rabbitmq.sh: node $n of the local cluster.
NODENAME=$(node_name "$n")
NODE_IP_ADDRESS=127.0.0.1
NODE_PORT=$(amqp_port "$n")
DIST_PORT=$(dist_port "$n")
MNESIA_BASE=$dir/mnesia
LOG_BASE=$dir/log
PID_FILE=$(pid_file "$n")
CONFIG_FILE=$STATE_DIR/rabbitmq.conf
CONFIG_FILES=$dir/conf.d
ADVANCED_CONFIG_FILE=$STATE_DIR/advanced.config
ENABLED_PLUGINS_FILE=$STATE_DIR/enabled_plugins
# Erlang distribution on loopback only, as the machine's node does; connections to the
# other nodes from this node's own address (see partition_node).
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} -kernel inet_dist_connect_options [{ip,{127,0,1,$n}}]"
EOF
    as_root chown -R rabbitmq:rabbitmq "$dir"
  done
}

node_is_up() { rabbitmq_tool "$1" rabbitmq-diagnostics -n "$(node_name "$1")" -q ping >/dev/null 2>&1; }

# Starts node N's VM in the background (the VM writes the pid file itself).
launch_node() {
  local n=$1
  if node_is_up "$n"; then
    echo "$(node_name "$n") is already running"
    return
  fi
  echo "starting $(node_name "$n") on port $(amqp_port "$n")"
  # A pid file left by a killed VM would be taken for the new one by await_node.
  as_root rm -f "$(pid_file "$n")"
  rabbitmq_tool "$n" rabbitmq-server -detached 3>&-
}

# `wait` waits for the pid file, then for the VM to answer, then for RabbitMQ to boot
# (await_startup alone fails if the VM has not registered its name yet).
await_node() {
  if ! ctl "$1" -q wait --timeout "$BOOT_TIMEOUT_SECONDS" "$(pid_file "$1")"; then
    echo "$(node_name "$1") did not boot; see $(node_dir "$1")/log" >&2
    exit 1
  fi
}

# The nodes node 1 knows as cluster members (all or running), one per line, from
# `cluster_status --formatter json`, e.g. "disk_nodes":["aig1@localhost",…].
cluster_nodes() {
  local kind=$1
  ctl 1 -q cluster_status --formatter json 2>/dev/null |
    grep -o "\"$kind\":\[[^]]*\]" | grep -o 'aig[0-9]@[a-z]*' || true
}

# Joins nodes 2 and 3 to node 1, once: a node already a member is left alone (a
# restarted cluster finds its members again by itself).
join_nodes() {
  local n members
  members=$(cluster_nodes disk_nodes)
  for n in "${NODES[@]:1}"; do
    if grep -qx "$(node_name "$n")" <<<"$members"; then continue; fi
    echo "joining $(node_name "$n") to $(node_name 1)"
    ctl "$n" -q stop_app
    ctl "$n" -q join_cluster "$(node_name 1)"
    ctl "$n" -q start_app
  done
}

await_three_running() {
  local deadline=$((SECONDS + BOOT_TIMEOUT_SECONDS))
  until [ "$(cluster_nodes running_nodes | wc -l)" -eq 3 ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "the cluster did not show three running nodes within ${BOOT_TIMEOUT_SECONDS}s" >&2
      ctl 1 cluster_status >&2 || true
      exit 1
    fi
    sleep 1
  done
}

amqp_url() {
  local n urls=()
  for n in "${NODES[@]}"; do urls+=("amqp://guest:guest@127.0.0.1:$(amqp_port "$n")/%2f"); done
  (IFS=,; echo "AMQP_URL=${urls[*]}")
}

start_cluster() {
  ensure_rabbitmq_installed
  write_state
  local n
  # All three boot together: after a full stop, each node waits at boot for the
  # members it last saw running, so starting them one by one could deadlock.
  for n in "${NODES[@]}"; do launch_node "$n"; done
  for n in "${NODES[@]}"; do await_node "$n"; done
  join_nodes
  await_three_running
  echo "three nodes running; logs under $STATE_DIR/node*/log"
  amqp_url >&3
}

stop_node() {
  local n=$1
  if ! node_is_up "$n"; then
    echo "$(node_name "$n") is not running"
    return
  fi
  echo "stopping $(node_name "$n")"
  # With the pid file, rabbitmqctl returns only once the VM has exited.
  ctl "$n" -q stop "$(pid_file "$n")"
}

stop_cluster() {
  [ -d "$STATE_DIR" ] || { echo "no cluster under $STATE_DIR"; return; }
  heal_partition
  local n
  for n in 3 2 1; do stop_node "$n"; done
}

kill_node() {
  local n=$1 pid
  pid=$(as_root cat "$(pid_file "$n")" 2>/dev/null || true)
  if [ -z "$pid" ] || ! as_root kill -0 "$pid" 2>/dev/null; then
    echo "$(node_name "$n") is not running" >&2
    exit 1
  fi
  as_root kill -9 "$pid"
  echo "killed $(node_name "$n") (pid $pid)"
}

start_node() {
  local n=$1
  write_state
  launch_node "$n"
  await_node "$n"
  echo "$(node_name "$n") is running"
}

# The nftables table that cuts a node off. One at a time: a new partition replaces it.
PARTITION_TABLE="inet aiguillage_cluster_partition"

# Drops node N's distribution traffic to and from the other nodes, in both directions of
# every connection whoever opened it: from N's address to their distribution ports and
# back, and from their addresses to N's distribution port and back. With
# pause_minority, node N then pauses (its clients are disconnected and go to the other
# nodes) and the other two go on as the majority.
partition_node() {
  local n=$1 m sources=() ports=()
  command -v nft >/dev/null 2>&1 || apt_install nftables
  for m in "${NODES[@]}"; do
    [ "$m" = "$n" ] && continue
    sources+=("127.0.1.$m")
    ports+=("$(dist_port "$m")")
  done
  local others_ip others_port
  others_ip=$(IFS=,; echo "${sources[*]}")
  others_port=$(IFS=,; echo "${ports[*]}")
  heal_partition
  as_root nft -f - <<EOF
table $PARTITION_TABLE {
  chain output {
    type filter hook output priority 0; policy accept;
    ip saddr 127.0.1.$n tcp dport { $others_port } drop
    ip daddr 127.0.1.$n tcp sport { $others_port } drop
    ip saddr { $others_ip } tcp dport $(dist_port "$n") drop
    ip daddr { $others_ip } tcp sport $(dist_port "$n") drop
  }
}
EOF
  echo "$(node_name "$n") cut off from the other nodes (heal with: $0 heal)"
}

heal_partition() {
  if command -v nft >/dev/null 2>&1 && as_root nft list table $PARTITION_TABLE >/dev/null 2>&1; then
    as_root nft delete table $PARTITION_TABLE
    echo "partition healed"
  fi
}

# The nodes that lead quorum queues (a publish is written there first), the one that
# leads most first: the one whose loss matters most.
leading_node() {
  local n
  for n in "${NODES[@]}"; do
    if node_is_up "$n"; then
      local leaders
      leaders=$(ctl "$n" -q list_queues leader --no-table-headers 2>/dev/null | grep -o 'aig[0-9]@' || true)
      if [ -z "$leaders" ]; then
        echo "the cluster has no quorum queue yet" >&2
        exit 1
      fi
      sort <<<"$leaders" | uniq -c | sort -rn | awk '{ print substr($2, 4, 1) }'
      return
    fi
  done
  echo "no node of the local cluster is running" >&2
  exit 1
}

show_status() {
  local n
  [ -d "$STATE_DIR" ] || { echo "no cluster under $STATE_DIR"; return; }
  for n in "${NODES[@]}"; do
    if node_is_up "$n"; then
      ctl "$n" cluster_status
      return
    fi
  done
  echo "no node of the local cluster is running"
}

case "${1:-}" in
  start) start_cluster ;;
  stop) stop_cluster ;;
  status) show_status >&3 ;;
  kill) check_node_number "${2:-}"; kill_node "$2" ;;
  stop-node) check_node_number "${2:-}"; stop_node "$2" ;;
  start-node) check_node_number "${2:-}"; start_node "$2" ;;
  partition) check_node_number "${2:-}"; partition_node "$2" ;;
  heal) heal_partition; await_three_running; echo "three nodes running" ;;
  leader) leading_node >&3 ;;
  *)
    sed -n '5,16p' "$0" >&2
    exit 2
    ;;
esac
