#!/usr/bin/env bash
# A real Apache Kafka broker (4.1.1, KRaft, one node that is broker and controller)
# for development and the test suite. No Kafka distribution is installed: Maven
# fetches the broker's jars once into a cache outside the repository, and the
# broker runs straight from them on loopback ports of its own.
#
#   deploy/dev/kafka.sh start          start (or find running) and print bootstrap=127.0.0.1:PORT
#   deploy/dev/kafka.sh stop [--clean] stop the broker; --clean also deletes its state and data
#   deploy/dev/kafka.sh status         print bootstrap=... if running, exit 1 if not
#
# `start` prints `bootstrap=127.0.0.1:PORT` as the last line of stdout; everything
# else goes to stderr. The first start picks free loopback ports; later starts
# reuse the ports and data of the previous one, so topics and records survive a
# restart until `stop --clean`.
#
# Environment:
#   RAGLINE_KAFKA_STATE              state dir: config, data, pid, ports, log (/tmp/ragline-kafka)
#   RAGLINE_KAFKA__MAX_INLINE_BYTES  largest record the app sends inline (16 MiB); the broker
#                                    and topic limits are sized to it plus 1 MiB of headroom
#   RAGLINE_KAFKA_START_TIMEOUT      seconds to wait for the broker to serve (60)
#   XDG_CACHE_HOME                   jars go to ${XDG_CACHE_HOME:-~/.cache}/ragline/kafka-4.1.1/libs
set -euo pipefail

KAFKA_VERSION=4.1.1
HERE="$(cd "$(dirname "$0")" && pwd)"
POM="$HERE/kafka/pom.xml"
LOG4J="$HERE/kafka/log4j2.properties"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/ragline/kafka-$KAFKA_VERSION"
LIBS="$CACHE/libs"
STATE="${RAGLINE_KAFKA_STATE:-/tmp/ragline-kafka}"
CONFIG="$STATE/server.properties"
DATA="$STATE/data"
PIDFILE="$STATE/kafka.pid"
PORTSFILE="$STATE/ports"
LOG="$STATE/server.log"
MARKER="$STATE/.ragline-kafka"  # `stop --clean` deletes only a directory this script made
START_TIMEOUT="${RAGLINE_KAFKA_START_TIMEOUT:-60}"
STOP_TIMEOUT=30
READY_LINE="Kafka Server started"  # logged by KafkaRaftServer once the broker is unfenced and serving

say() { echo "kafka.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# --- jars -------------------------------------------------------------------

# The jars of deploy/dev/kafka/pom.xml, fetched once; .complete holds the pom's hash,
# so an edited pom fetches afresh.
fetch_jars() {
  local want
  want=$(sha1sum "$POM" | cut -c1-40)
  [ "$(cat "$LIBS/.complete" 2>/dev/null)" = "$want" ] && return 0
  command -v mvn >/dev/null || die "Maven (mvn) is needed once to fetch the Kafka jars into $LIBS"
  mkdir -p "$CACHE"
  exec 8>"$CACHE/.fetch.lock"
  flock 8  # a parallel start waits for this download instead of racing it
  if [ "$(cat "$LIBS/.complete" 2>/dev/null)" != "$want" ]; then
    say "fetching Kafka $KAFKA_VERSION jars with Maven into $LIBS (once)"
    local work
    work=$(mktemp -d "$CACHE/.fetch.XXXXXX")
    cp "$POM" "$work/pom.xml"  # run Maven outside the repository: no target/ in the checkout
    # (Maven's console library writes colour resets even in batch mode: stripped)
    if ! (cd "$work" && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$work/libs" 2>&1 \
          | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^[[:space:]]*$/d' >&2); then
      rm -rf "$work"
      die "Maven could not fetch the Kafka jars (is Maven Central reachable?)"
    fi
    echo "$want" >"$work/libs/.complete"
    rm -rf "$LIBS"
    mv "$work/libs" "$LIBS"
    rm -rf "$work"
    say "cached $(find "$LIBS" -name '*.jar' | wc -l) jars ($(du -sh "$LIBS" | cut -f1))"
  fi
  exec 8>&-
}

storage_tool() {
  java -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$LOG4J" -cp "$LIBS/*" "$@"
}

# --- ports --------------------------------------------------------------------

# Print N distinct loopback ports that can be bound now, below the ephemeral range
# (outgoing connections never take them while the broker is down).
pick_ports() {
  python3 - "$1" <<'EOF'
import random, socket, sys
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except OSError:
    low = 32768
ports = []
while len(ports) < int(sys.argv[1]):
    port = random.randint(20000, max(low, 20001) - 1)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the JVM binds
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    if port not in ports:
        ports.append(port)
print(*ports)
EOF
}

port_free() {
  python3 - "$1" <<'EOF'
import socket, sys
with socket.socket() as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", int(sys.argv[1])))
    except OSError:
        sys.exit(1)
EOF
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

load_ports() {
  PORT="" CPORT=""
  [ -f "$PORTSFILE" ] && read -r PORT CPORT <"$PORTSFILE" || true
}

# --- process ------------------------------------------------------------------

# The pid of this state dir's broker if it is running, else nothing.
running_pid() {
  local pid
  [ -f "$PIDFILE" ] || return 0
  pid=$(cat "$PIDFILE" 2>/dev/null || true)
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 0
  alive "$pid" || return 0
  # the pid is ours only if that process is a broker on this state dir's config
  local cmdline
  cmdline=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null || true)
  if grep -qxF "$CONFIG" <<<"$cmdline"; then
    echo "$pid"
  fi
}

# True while the process exists and is not a zombie.
alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

log_tail() {
  if [ -f "$LOG" ]; then
    say "last lines of $LOG:"
    tail -n 40 "$LOG" | sed 's/^/    /' >&2
  fi
}

# Wait until the broker is unfenced and accepts connections; fail with the log's tail.
wait_ready() {
  local pid=$1 deadline=$((SECONDS + START_TIMEOUT))
  while :; do
    if ! alive "$pid"; then
      say "the broker (pid $pid) exited during startup"
      log_tail
      rm -f "$PIDFILE"
      exit 1
    fi
    if grep -qF "$READY_LINE" "$LOG" 2>/dev/null && port_open "$PORT"; then
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "the broker (pid $pid) did not serve 127.0.0.1:$PORT within ${START_TIMEOUT}s; stopping it"
      log_tail
      terminate "$pid"
      exit 1
    fi
    sleep 0.2
  done
}

terminate() {
  local pid=$1 deadline=$((SECONDS + STOP_TIMEOUT))
  kill -TERM "$pid" 2>/dev/null || return 0
  while alive "$pid"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "the broker (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$PIDFILE"
}

# --- config -------------------------------------------------------------------

write_config() {
  local max=${RAGLINE_KAFKA__MAX_INLINE_BYTES:-16777216}
  [[ "$max" =~ ^[0-9]+$ ]] || die "RAGLINE_KAFKA__MAX_INLINE_BYTES must be a byte count, not '$max'"
  local limit=$((max + 1048576))      # largest record batch: the inline limit plus headroom
  local request=$((limit + 1048576))  # a produce request carries one such batch plus framing
  [ "$request" -gt 104857600 ] || request=104857600  # Kafka's default, already larger
  local fetch=$((limit * 2))
  [ "$fetch" -gt 57671680 ] || fetch=57671680         # Kafka's default fetch.max.bytes
  cat >"$CONFIG" <<EOF
# Written by deploy/dev/kafka.sh on every start; edits here are lost.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DATA

# one node: every replication factor and ISR is 1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# small and quick on a 2-core machine
num.partitions=1
offsets.topic.num.partitions=4
transaction.state.log.num.partitions=4
share.coordinator.state.topic.num.partitions=4
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
num.replica.fetchers=1
log.cleaner.threads=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
delete.topic.enable=true

# records up to RAGLINE_KAFKA__MAX_INLINE_BYTES=$max plus 1 MiB of headroom
message.max.bytes=$limit
replica.fetch.max.bytes=$limit
replica.fetch.response.max.bytes=$fetch
fetch.max.bytes=$fetch
socket.request.max.bytes=$request
EOF
}

# A Kafka cluster id: 16 random bytes, base64url without padding, not starting with '-'.
cluster_id() {
  local id
  while :; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    [[ "$id" == -* ]] || { echo "$id"; return; }
  done
}

# --- commands -----------------------------------------------------------------

start() {
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  flock 9  # one start or stop at a time per state dir
  if [ ! -f "$MARKER" ] && [ -n "$(find "$STATE" -mindepth 1 -maxdepth 1 ! -name .lock -print -quit)" ]; then
    die "$STATE is not empty and was not made by kafka.sh; set RAGLINE_KAFKA_STATE to another directory"
  fi
  touch "$MARKER"
  load_ports
  local pid
  pid=$(running_pid)
  if [ -n "$pid" ]; then
    say "broker already running (pid $pid)"
    wait_ready "$pid"
    echo "bootstrap=127.0.0.1:$PORT"
    return 0
  fi

  fetch_jars
  command -v java >/dev/null || die "java is not installed (Kafka $KAFKA_VERSION needs Java 17+)"

  if [ -n "$PORT" ] && [ -n "$CPORT" ]; then
    if ! port_free "$PORT" || ! port_free "$CPORT"; then
      say "ports $PORT/$CPORT of the previous start are taken by another process; picking new ones"
      PORT="" CPORT=""
    fi
  fi
  if [ -z "$PORT" ]; then
    read -r PORT CPORT < <(pick_ports 2) || true
    [ -n "$PORT" ] && [ -n "$CPORT" ] || die "could not pick free loopback ports (python3 is needed)"
    echo "$PORT $CPORT" >"$PORTSFILE"
  fi
  write_config

  if [ ! -f "$DATA/meta.properties" ]; then
    local id
    id=$(cluster_id)
    say "formatting $DATA (cluster id $id)"
    if ! storage_tool kafka.tools.StorageTool format -t "$id" -c "$CONFIG" >"$STATE/format.log" 2>&1; then
      cat "$STATE/format.log" >&2
      die "formatting the storage in $DATA failed"
    fi
  fi

  [ -f "$LOG" ] && mv -f "$LOG" "$LOG.1"  # readiness is read from this run's log only
  # Its own session (no terminal signals); stdio and the lock fds detached, so neither
  # a caller capturing our stdout nor the next start/stop waits on the broker.
  setsid java -Xmx512m -Xms256m -XX:+UseSerialGC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$LOG4J" -cp "$LIBS/*" kafka.Kafka "$CONFIG" \
    </dev/null >"$LOG" 2>&1 8>&- 9>&- &
  pid=$!
  echo "$pid" >"$PIDFILE"
  say "starting broker (pid $pid) on 127.0.0.1:$PORT, controller 127.0.0.1:$CPORT, state $STATE"
  wait_ready "$pid"
  say "broker ready after ${SECONDS}s"
  echo "bootstrap=127.0.0.1:$PORT"
}

stop() {
  local clean=0
  case "${1:-}" in
    "") ;;
    --clean) clean=1 ;;
    *) echo "usage: $0 stop [--clean]" >&2; exit 2 ;;
  esac
  if [ ! -f "$MARKER" ]; then
    [ "$clean" = 0 ] || [ ! -d "$STATE" ] || say "not deleting $STATE: it was not made by kafka.sh"
    return 0
  fi
  exec 9>"$STATE/.lock"
  flock 9
  local pid
  pid=$(running_pid)
  if [ -n "$pid" ]; then
    terminate "$pid"
    say "broker (pid $pid) stopped"
  fi
  rm -f "$PIDFILE"
  if [ "$clean" = 1 ]; then
    rm -rf "$STATE"
    say "deleted $STATE"
  fi
}

status() {
  [ -d "$STATE" ] || exit 1
  load_ports
  [ -n "$(running_pid)" ] && port_open "$PORT" || exit 1
  echo "bootstrap=127.0.0.1:$PORT"
}

case "${1:-}" in
  start) start ;;
  stop) shift; stop "$@" ;;
  status) status ;;
  *) echo "usage: $0 start | stop [--clean] | status" >&2; exit 2 ;;
esac
