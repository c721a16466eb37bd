#!/usr/bin/env bash
# Local stack without Docker: Apache Kafka (KRaft, single node) and Redis on loopback.
#   scripts/stack.sh up | down | reset | status
# Idempotent. Addresses from KAFKA_BOOTSTRAP (default 127.0.0.1:9092) and REDIS_URL
# (default redis://127.0.0.1:6379/0). Broker jars come from Maven Central via Maven into
# .stack/kafka-libs (git-ignored); data and logs live under .stack/ too.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
stack="$root/.stack"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$root/deploy/kafka/pom.xml")"
libs="$stack/kafka-libs/$KAFKA_VERSION"
kafka_data="$stack/data/kafka"
redis_data="$stack/data/redis"
logs="$stack/logs"

bootstrap="${KAFKA_BOOTSTRAP:-127.0.0.1:9092}"
bootstrap="${bootstrap%%,*}"
kafka_host="${bootstrap%:*}"
kafka_port="${bootstrap##*:}"
controller_port="$((kafka_port + 1))"
redis_url="${REDIS_URL:-redis://127.0.0.1:6379/0}"
redis_hostport="${redis_url#redis://}"
redis_hostport="${redis_hostport##*@}"
redis_hostport="${redis_hostport%%/*}"
redis_host="${redis_hostport%:*}"
redis_port="${redis_hostport##*:}"
[ "$redis_port" = "$redis_hostport" ] && redis_port=6379

say() { printf 'stack: %s\n' "$*"; }
die() { printf 'stack: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_port() { # host port seconds what
  local deadline=$((SECONDS + $3))
  until port_open "$1" "$2"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}

fetch_kafka() {
  if [ -f "$libs/.complete" ]; then return 0; fi
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch the Kafka broker from Maven Central; install it (apt-get install maven)."
  command -v java >/dev/null || die "Java 17 is needed to run Kafka; install it (apt-get install openjdk-17-jre-headless)."
  say "fetching Apache Kafka $KAFKA_VERSION jars from Maven Central into $libs"
  mkdir -p "$libs"
  if ! mvn -q -B -f "$root/deploy/kafka/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$libs" -DincludeScope=runtime >"$logs/maven.log" 2>&1; then
    tail -n 20 "$logs/maven.log" >&2
    die "could not fetch Kafka $KAFKA_VERSION from Maven Central (log: $logs/maven.log)."
  fi
  touch "$libs/.complete"
}

kafka_props() {
  local props="$stack/server.properties"
  sed -e "s#^log.dirs=.*#log.dirs=$kafka_data#" \
      -e "s#^listeners=.*#listeners=PLAINTEXT://$kafka_host:$kafka_port,CONTROLLER://$kafka_host:$controller_port#" \
      -e "s#^advertised.listeners=.*#advertised.listeners=PLAINTEXT://$kafka_host:$kafka_port#" \
      -e "s#^controller.quorum.voters=.*#controller.quorum.voters=1@$kafka_host:$controller_port#" \
      "$root/deploy/kafka/server.properties" >"$props"
  echo "$props"
}

kafka_up() {
  if port_open "$kafka_host" "$kafka_port"; then say "kafka already answers on $kafka_host:$kafka_port"; return 0; fi
  fetch_kafka
  local props; props="$(kafka_props)"
  local cp="$libs/*"
  if [ ! -f "$kafka_data/meta.properties" ]; then
    mkdir -p "$kafka_data"
    local cluster_id
    cluster_id="$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
    say "formatting Kafka storage (cluster $cluster_id)"
    java -cp "$cp" -Dlog4j2.configurationFile="$root/deploy/kafka/log4j2.yaml" \
      kafka.tools.StorageTool format -t "$cluster_id" -c "$props" >"$logs/kafka-format.log" 2>&1 \
      || { cat "$logs/kafka-format.log" >&2; die "formatting Kafka storage failed."; }
  fi
  say "starting Kafka $KAFKA_VERSION on $kafka_host:$kafka_port"
  nohup java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$root/deploy/kafka/log4j2.yaml" \
    -cp "$cp" kafka.Kafka "$props" >"$logs/kafka.log" 2>&1 &
  echo $! >"$stack/kafka.pid"
  wait_port "$kafka_host" "$kafka_port" 90 || { tail -n 30 "$logs/kafka.log" >&2; die "Kafka did not answer on $kafka_host:$kafka_port within 90 s (log: $logs/kafka.log)."; }
  # The port opens before the broker is unfenced; wait for the log line that says it serves.
  local deadline=$((SECONDS + 60))
  until grep -q "Kafka Server started" "$logs/kafka.log"; do
    [ $SECONDS -lt $deadline ] || die "Kafka did not finish starting within 60 s (log: $logs/kafka.log)."
    sleep 0.2
  done
}

redis_up() {
  if port_open "$redis_host" "$redis_port"; then say "redis already answers on $redis_host:$redis_port"; return 0; fi
  if ! command -v redis-server >/dev/null; then
    say "installing Debian's redis-server"
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server; } \
      >"$logs/apt.log" 2>&1 || { tail -n 20 "$logs/apt.log" >&2; die "could not install redis-server with apt-get (log: $logs/apt.log)."; }
  fi
  mkdir -p "$redis_data"
  say "starting Redis on $redis_host:$redis_port"
  redis-server --bind "$redis_host" --port "$redis_port" --dir "$redis_data" \
    --daemonize yes --pidfile "$stack/redis.pid" --logfile "$logs/redis.log" \
    --save 60 1000 --appendonly no --protected-mode yes --stop-writes-on-bgsave-error no
  wait_port "$redis_host" "$redis_port" 30 || die "Redis did not answer on $redis_host:$redis_port within 30 s (log: $logs/redis.log)."
}

stop_pid() { # name pidfile
  local pidfile="$2"
  [ -f "$pidfile" ] || return 0
  local pid; pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping $1 (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && { say "$1 did not stop in 30 s; killing it"; kill -9 "$pid"; }
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  up)
    mkdir -p "$logs"
    t0=$SECONDS
    kafka_up
    redis_up
    say "up in $((SECONDS - t0)) s: KAFKA_BOOTSTRAP=$kafka_host:$kafka_port REDIS_URL=$redis_url"
    ;;
  down)
    stop_pid kafka "$stack/kafka.pid"
    stop_pid redis "$stack/redis.pid"
    say "down"
    ;;
  reset)
    "$0" down
    rm -rf "$stack/data" "$stack/server.properties"
    say "data wiped"
    ;;
  status)
    port_open "$kafka_host" "$kafka_port" && say "kafka: up on $kafka_host:$kafka_port" || say "kafka: down"
    port_open "$redis_host" "$redis_port" && say "redis: up on $redis_host:$redis_port" || say "redis: down"
    ;;
  *)
    echo "usage: $0 up|down|reset|status" >&2; exit 2 ;;
esac
