#!/usr/bin/env bash
# A single-node Apache Kafka (KRaft: broker and controller in one process) on 127.0.0.1, from Maven Central's
# jars, for tests and CI on machines without Docker. Needs Java 17+ and Maven; after the first fetch it works
# offline from Maven's local cache.
#
#   deploy/local/kafka.sh start    fetch if needed, format storage, start, wait until ready, create topics
#   deploy/local/kafka.sh stop     stop the broker started by this script (and wait for it to exit)
#   deploy/local/kafka.sh status   exit 0 when our broker is running
#   deploy/local/kafka.sh fetch    only fetch the jars
#
# Settings (environment): KAFKA_LOCAL_DIR (state: data, logs, pid; default <repo>/.data/kafka-local),
# KAFKA_LOCAL_LIBS (the fetched jars; default <repo>/.data/kafka-jars),
# KAFKA_LOCAL_PORT (default 9092), KAFKA_LOCAL_CONTROLLER_PORT (default 9093), KAFKA_LOCAL_HEAP (default 512m),
# KAFKA_LOCAL_READY_SECONDS (default 90), KAFKA_LOCAL_FRESH=1 to wipe the data directory before starting.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dir="${KAFKA_LOCAL_DIR:-$root/.data/kafka-local}"
port="${KAFKA_LOCAL_PORT:-9092}"
cport="${KAFKA_LOCAL_CONTROLLER_PORT:-9093}"
heap="${KAFKA_LOCAL_HEAP:-512m}"
ready_seconds="${KAFKA_LOCAL_READY_SECONDS:-90}"
libs="${KAFKA_LOCAL_LIBS:-$root/.data/kafka-jars}"
pidfile="$dir/kafka.pid"
topics_file="$root/deploy/kafka-topics.txt"

die() { echo "kafka.sh: $*" >&2; exit 1; }

need_tools() {
  command -v java >/dev/null 2>&1 || die "Java 17 or later is needed (java not found)"
  local v; v="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
  [ "${v:-0}" -ge 17 ] || die "Java 17 or later is needed (found ${v:-unknown})"
}

fetch() {
  need_tools
  if [ -f "$libs/.complete" ] && cmp -s "$here/kafka/pom.xml" "$libs/.complete"; then return 0; fi
  command -v mvn >/dev/null 2>&1 || die "Maven is needed to fetch Kafka's jars (mvn not found)"
  rm -rf "$libs"; mkdir -p "$libs"
  echo "kafka.sh: fetching Kafka jars with Maven into $libs" >&2
  # -o first: offline from the local cache when it already holds everything.
  mvn -q -B -o -f "$here/kafka/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libs" >/dev/null 2>&1 ||
    mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libs" ||
    die "Maven could not fetch Kafka (org.apache.kafka:kafka_2.13)"
  cp "$here/kafka/pom.xml" "$libs/.complete"
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
  fetch
  if running; then echo "kafka.sh: already running (pid $(cat "$pidfile"))" >&2; ready; return 0; fi
  port_busy "$port" && die "port $port is taken by another process; set KAFKA_LOCAL_PORT"
  port_busy "$cport" && die "port $cport is taken by another process; set KAFKA_LOCAL_CONTROLLER_PORT"
  [ "${KAFKA_LOCAL_FRESH:-0}" = 1 ] && rm -rf "$dir/data"
  mkdir -p "$dir/data" "$dir/logs"
  cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=24
PROPS
  cat > "$dir/log4j.properties" <<PROPS
log4j.rootLogger=WARN, file
log4j.logger.kafka.server.KafkaRaftServer=INFO
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$dir/logs/server.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
PROPS
  if [ ! -f "$dir/data/meta.properties" ]; then
    local cid; cid="$(java -cp "$libs/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
    java -Dlog4j.configuration="file:$dir/log4j.properties" -cp "$libs/*" kafka.tools.StorageTool format \
      -t "$cid" -c "$dir/server.properties" --ignore-formatted >/dev/null || die "could not format $dir/data"
  fi
  nohup java -Xms128m -Xmx"$heap" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$dir/log4j.properties" -cp "$libs/*" kafka.Kafka "$dir/server.properties" \
    >"$dir/logs/stdout.log" 2>&1 &
  echo $! > "$pidfile"
  ready || { tail -20 "$dir/logs/server.log" "$dir/logs/stdout.log" >&2 || true; stop; die "broker did not start"; }
}

ready() {
  local topics=()
  [ -f "$topics_file" ] && mapfile -t topics < <(grep -v '^\s*\(#\|$\)' "$topics_file")
  java -Dlog4j.configuration="file:$dir/log4j.properties" -cp "$libs/*" "$here/kafka/KafkaReady.java" "127.0.0.1:$port" "$ready_seconds" 3 "${topics[@]}"
}

stop() {
  running || { rm -f "$pidfile"; return 0; }
  local pid; pid="$(cat "$pidfile")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  echo "kafka.sh: stopped" >&2
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) running ;;
  fetch) fetch ;;
  *) die "usage: kafka.sh start|stop|status|fetch" ;;
esac
