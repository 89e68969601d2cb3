#!/usr/bin/env bash
# Throughput/latency baseline with redis-benchmark (SET/GET), once without
# pipelining and once with -P $PIPELINE.
#
# Env:
#   TARGET=host:port  benchmark an already-running server (e.g. gossipkv);
#                     no redis-server is started.
#   PORT              port for the self-started redis-server (default 6399;
#                     if busy and PORT not set explicitly, next free port)
#   CLIENTS (50) REQUESTS (200000) KEYSPACE (100000) DATASIZE (32)
#   PIPELINE (16) TESTS (set,get) LABEL (redis | target)
# Output: per-run CSV from redis-benchmark, then machine-readable lines:
#   bench label=... pipeline=... test=SET rps=... avg_ms=... p50_ms=... p99_ms=...
set -euo pipefail

CLIENTS="${CLIENTS:-50}"
REQUESTS="${REQUESTS:-200000}"
KEYSPACE="${KEYSPACE:-100000}"
DATASIZE="${DATASIZE:-32}"
PIPELINE="${PIPELINE:-16}"
TESTS="${TESTS:-set,get}"
REDIS_SERVER="${REDIS_SERVER:-redis-server}"
REDIS_CLI="${REDIS_CLI:-redis-cli}"
REDIS_BENCHMARK="${REDIS_BENCHMARK:-redis-benchmark}"

port_busy() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

WORKDIR="$(mktemp -d)"
REDIS_PID=""
cleanup() {
  if [[ -n "$REDIS_PID" ]] && kill -0 "$REDIS_PID" 2>/dev/null; then
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
  fi
  rm -rf "$WORKDIR"
}
trap cleanup EXIT INT TERM

if [[ -n "${TARGET:-}" ]]; then
  HOST="${TARGET%:*}"
  PORT="${TARGET##*:}"
  LABEL="${LABEL:-target}"
  port_busy "$HOST" "$PORT" || { echo "nothing listening on $TARGET" >&2; exit 1; }
else
  HOST=127.0.0.1
  LABEL="${LABEL:-redis}"
  if [[ -n "${PORT:-}" ]]; then
    if port_busy "$HOST" "$PORT"; then echo "port $PORT already in use" >&2; exit 1; fi
  else
    PORT=6399
    while port_busy "$HOST" "$PORT"; do PORT=$((PORT + 1)); done
  fi
  "$REDIS_SERVER" --bind 127.0.0.1 --port "$PORT" --save '' --appendonly no \
    --daemonize no --dir "$WORKDIR" --logfile "$WORKDIR/redis.log" &
  REDIS_PID=$!
  for _ in $(seq 1 100); do
    if "$REDIS_CLI" -h "$HOST" -p "$PORT" ping 2>/dev/null | grep -q PONG; then break; fi
    sleep 0.05
  done
  "$REDIS_CLI" -h "$HOST" -p "$PORT" ping | grep -q PONG \
    || { echo "redis-server did not start" >&2; cat "$WORKDIR/redis.log" >&2; exit 1; }
  echo "started $("$REDIS_SERVER" --version) on $HOST:$PORT (pid $REDIS_PID)"
fi

echo "$("$REDIS_BENCHMARK" --version 2>&1 | head -n 1); target=$HOST:$PORT clients=$CLIENTS requests=$REQUESTS keyspace=$KEYSPACE datasize=$DATASIZE tests=$TESTS"

SUMMARY="$WORKDIR/summary.txt"
: >"$SUMMARY"

run() {
  local pipeline="$1"
  local out="$WORKDIR/bench_P$pipeline.csv"
  echo "--- pipeline=$pipeline"
  "$REDIS_BENCHMARK" -h "$HOST" -p "$PORT" -t "$TESTS" -c "$CLIENTS" -n "$REQUESTS" \
    -r "$KEYSPACE" -d "$DATASIZE" -P "$pipeline" --csv >"$out"
  cat "$out"
  # CSV columns (redis-benchmark >= 7.0):
  # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  tr -d '"\r' <"$out" | awk -F, -v label="$LABEL" -v p="$pipeline" '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    NF > 1 {
      printf "bench label=%s pipeline=%s test=%s rps=%s avg_ms=%s p50_ms=%s p99_ms=%s\n",
        label, p, $1, $col["rps"],
        ("avg_latency_ms" in col) ? $col["avg_latency_ms"] : "na",
        ("p50_latency_ms" in col) ? $col["p50_latency_ms"] : "na",
        ("p99_latency_ms" in col) ? $col["p99_latency_ms"] : "na"
    }' >>"$SUMMARY"
}

run 1
run "$PIPELINE"

echo "--- summary"
cat "$SUMMARY"
