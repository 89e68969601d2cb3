#!/usr/bin/env bash
# Client-path throughput of one gossipkv node against redis-server, same machine, same run:
# redis-benchmark SET/GET without pipelining and with -P $PIPELINE, through
# bench/redis_throughput.sh (which starts a fresh redis-server itself, or benchmarks
# TARGET=host:port). Runs alternate redis / node $RUNS times (a fresh server each time) and
# the summary prints medians side by side with the node/redis ratio.
#
# Env:
#   RUNS (3)            alternating rounds; medians are over these
#   THREADS ("1")       node worker threads; a list ("1 2") benchmarks each setting
#   NODE_PORT (7379)    first port to try for the node
#   CLIENTS REQUESTS KEYSPACE DATASIZE PIPELINE TESTS   passed on to redis_throughput.sh
#   SKIP_BUILD=1        use the already-built example binary
# Output: the raw runs, then
#   median label=... pipeline=... test=... rps=... p50_ms=... p99_ms=...
#   compare label=... pipeline=... test=... rps_ratio=... p50_ratio=... p99_ratio=...
# (rps_ratio > 1: the node is faster; p99_ratio < 1: the node's p99 is lower.)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUNS="${RUNS:-3}"
THREADS="${THREADS:-1}"
NODE_PORT="${NODE_PORT:-7379}"
export CLIENTS="${CLIENTS:-50}" REQUESTS="${REQUESTS:-200000}" KEYSPACE="${KEYSPACE:-100000}"
export DATASIZE="${DATASIZE:-32}" PIPELINE="${PIPELINE:-16}" TESTS="${TESTS:-set,get}"

command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null || {
  echo "needs redis-server and redis-benchmark (apt-get install -y redis-server redis-tools)" >&2
  exit 1
}

cd "$ROOT"
if [[ -z "${SKIP_BUILD:-}" ]]; then
  cargo build --release -q -p gossipkv-server --example single_node
fi
NODE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/single_node"
[[ -x "$NODE_BIN" ]] || { echo "missing $NODE_BIN" >&2; exit 1; }

WORKDIR="$(mktemp -d)"
NODE_PID=""
stop_node() {
  if [[ -n "$NODE_PID" ]] && kill -0 "$NODE_PID" 2>/dev/null; then
    kill "$NODE_PID" 2>/dev/null || true
    wait "$NODE_PID" 2>/dev/null || true
  fi
  NODE_PID=""
}
cleanup() { stop_node; rm -rf "$WORKDIR"; }
trap cleanup EXIT INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_node() { # $1 = worker threads
  local port="$NODE_PORT"
  while port_busy "$port"; do port=$((port + 1)); done
  "$NODE_BIN" "127.0.0.1:$port" --threads "$1" >"$WORKDIR/node.log" 2>&1 &
  NODE_PID=$!
  for _ in $(seq 1 100); do
    if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
      NODE_ADDR="127.0.0.1:$port"
      return 0
    fi
    sleep 0.05
  done
  echo "node did not start" >&2
  cat "$WORKDIR/node.log" >&2
  exit 1
}

RESULTS="$WORKDIR/results.txt"
: >"$RESULTS"
# The machine is shared: say how busy it was (the runs alternate so both sides see the same).
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)  cores: $(nproc)"
for run in $(seq 1 "$RUNS"); do
  echo "=== run $run/$RUNS: redis-server"
  LABEL=redis bash "$ROOT/bench/redis_throughput.sh" | tee "$WORKDIR/out.txt"
  grep '^bench ' "$WORKDIR/out.txt" >>"$RESULTS"
  for t in $THREADS; do
    echo "=== run $run/$RUNS: gossipkv node, $t worker thread(s)"
    start_node "$t"
    TARGET="$NODE_ADDR" LABEL="gossipkv-t$t" bash "$ROOT/bench/redis_throughput.sh" \
      | tee "$WORKDIR/out.txt"
    grep '^bench ' "$WORKDIR/out.txt" >>"$RESULTS"
    stop_node
  done
done

# field VALUE from a "bench k=v ..." line
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "na"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "=== medians over $RUNS run(s): clients=$CLIENTS requests=$REQUESTS keyspace=$KEYSPACE datasize=$DATASIZE"
MEDIANS="$WORKDIR/medians.txt"
: >"$MEDIANS"
labels="redis"
for t in $THREADS; do labels="$labels gossipkv-t$t"; done
for label in $labels; do
  for p in 1 "$PIPELINE"; do
    for test in $(echo "$TESTS" | tr 'a-z,' 'A-Z '); do
      sel="$(grep "^bench label=$label pipeline=$p test=$test " "$RESULTS" || true)"
      rps="$(field rps <<<"$sel" | median)"
      p50="$(field p50_ms <<<"$sel" | median)"
      p99="$(field p99_ms <<<"$sel" | median)"
      echo "median label=$label pipeline=$p test=$test rps=$rps p50_ms=$p50 p99_ms=$p99" \
        | tee -a "$MEDIANS"
    done
  done
done

echo
printf '%-14s %-3s %-4s %12s %12s %7s %9s %9s %7s\n' \
  node P test node_rps redis_rps ratio node_p99 redis_p99 p99_x
for label in $labels; do
  [[ "$label" == redis ]] && continue
  for p in 1 "$PIPELINE"; do
    for test in $(echo "$TESTS" | tr 'a-z,' 'A-Z '); do
      n="$(grep "^median label=$label pipeline=$p test=$test " "$MEDIANS")"
      r="$(grep "^median label=redis pipeline=$p test=$test " "$MEDIANS")"
      nr="$(field rps <<<"$n")" rr="$(field rps <<<"$r")"
      n50="$(field p50_ms <<<"$n")" r50="$(field p50_ms <<<"$r")"
      n99="$(field p99_ms <<<"$n")" r99="$(field p99_ms <<<"$r")"
      ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "na" }'; }
      printf '%-14s %-3s %-4s %12s %12s %7s %9s %9s %7s\n' \
        "$label" "$p" "$test" "$nr" "$rr" "$(ratio "$nr" "$rr")" "$n99" "$r99" "$(ratio "$n99" "$r99")"
      echo "compare label=$label pipeline=$p test=$test rps_ratio=$(ratio "$nr" "$rr") p50_ratio=$(ratio "$n50" "$r50") p99_ratio=$(ratio "$n99" "$r99")" >>"$WORKDIR/compare.txt"
    done
  done
done
echo
cat "$WORKDIR/compare.txt"
