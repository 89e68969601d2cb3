#!/usr/bin/env bash
# Memory per key of a running `gossipkv node` next to redis-server, in the same run.
#
# Starts a fresh `gossipkv node` (defaults: gossiping every 1000 ms, no peers; free ports
# picked), bulk-loads exactly N distinct keys "k:%014d" (16 bytes) with values "v:%030d"
# (32 bytes) through `redis-cli --pipe` (the same RESP generator as bench/redis_memory.sh),
# checks DBSIZE = N, and reports the node process's RSS delta (VmRSS in /proc/PID/status,
# right after the load minus after start-up) per key; also SETTLE_S seconds later
# (settled_rss_per_key), when the gossip driver has caught up with the writes. Then runs
# bench/redis_memory.sh (fresh redis-server, same keys, same way) and prints the ratio.
# Repeated RUNS times, alternating; medians are reported.
#
# Env: N (1000000), RUNS (3), NODE_PORT (7500; first RESP port to try, gossip on +10000),
#      NODE_ARGS ("") extra flags for `gossipkv node`, SETTLE_S (3), SKIP_BUILD=1 (use the
#      built binary); the environment reaches the node (e.g. MIMALLOC_PURGE_DELAY=0),
#      plus bench/redis_memory.sh's REDIS_SERVER, REDIS_CLI.
# Output: per-run lines, then a table and a final machine-readable line:
#   node_memory keys=<N> runs=<R> node_rss_per_key=<B> redis_rss_per_key=<B> ratio=<x>
set -euo pipefail

N="${N:-1000000}"
RUNS="${RUNS:-3}"
NODE_PORT="${NODE_PORT:-7500}"
NODE_ARGS="${NODE_ARGS:-}"
SETTLE_S="${SETTLE_S:-3}"
REDIS_CLI="${REDIS_CLI:-redis-cli}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

for tool in "${REDIS_SERVER:-redis-server}" "$REDIS_CLI"; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "$tool not found (Debian: apt-get install -y redis-server redis-tools)" >&2
    exit 1
  }
done

if [[ -z "${SKIP_BUILD:-}" ]]; then
  cargo build --release -q -p gossipkv
fi
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/gossipkv"
[[ -x "$BIN" ]] || { echo "missing $BIN" >&2; exit 1; }

WORKDIR="$(mktemp -d)"
NODE_PID=""
stop_node() {
  if [[ -n "$NODE_PID" ]] && kill -0 "$NODE_PID" 2>/dev/null; then
    kill "$NODE_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$NODE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$NODE_PID" 2>/dev/null || true
    wait "$NODE_PID" 2>/dev/null || true
  fi
  NODE_PID=""
}
cleanup() { stop_node; rm -rf "$WORKDIR"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
udp_busy() { ss -Hlun "sport = :$1" 2>/dev/null | grep -q .; }

# The same RESP stream as bench/redis_memory.sh: exactly N distinct SETs.
source "$ROOT/bench/lib/gen_resp.sh"

status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

node_run() { # prints "gossipkv keys=.. rss_per_key=.. ..."
  local port="$NODE_PORT"
  while port_busy "$port" || port_busy $((port + 10000)) || udp_busy $((port + 10000)); do
    port=$((port + 1))
  done
  # shellcheck disable=SC2086
  "$BIN" node --listen "127.0.0.1:$port" --gossip "127.0.0.1:$((port + 10000))" $NODE_ARGS \
    >"$WORKDIR/node.log" 2>&1 &
  NODE_PID=$!
  local cli=("$REDIS_CLI" -h 127.0.0.1 -p "$port")
  for _ in $(seq 1 200); do
    "${cli[@]}" ping 2>/dev/null | grep -q PONG && break
    sleep 0.05
  done
  "${cli[@]}" ping | grep -q PONG || { echo "node did not start" >&2; cat "$WORKDIR/node.log" >&2; exit 1; }
  local before after hwm t0 t1 dbsize
  before="$(status_kb "$NODE_PID" VmRSS)"
  t0="$(date +%s.%N)"
  gen_resp | timeout 600 "${cli[@]}" --pipe >"$WORKDIR/pipe.out" 2>&1 \
    || { cat "$WORKDIR/pipe.out" >&2; exit 1; }
  t1="$(date +%s.%N)"
  grep -q 'errors: 0,' "$WORKDIR/pipe.out" || { cat "$WORKDIR/pipe.out" >&2; exit 1; }
  dbsize="$("${cli[@]}" dbsize | tr -d '\r')"
  [[ "$dbsize" == "$N" ]] || echo "WARNING: node dbsize=$dbsize != N=$N" >&2
  after="$(status_kb "$NODE_PID" VmRSS)"
  sleep "$SETTLE_S"
  settled="$(status_kb "$NODE_PID" VmRSS)"
  hwm="$(status_kb "$NODE_PID" VmHWM)"
  stop_node
  awk -v n="$dbsize" -v b="$before" -v a="$after" -v s="$settled" -v h="$hwm" -v t0="$t0" -v t1="$t1" 'BEGIN {
    printf "gossipkv keys=%d rss_per_key=%.1f settled_rss_per_key=%.1f rss_before_kb=%d rss_after_kb=%d settled_kb=%d hwm_kb=%d load_s=%.2f\n",
      n, (a - b) * 1024 / n, (s - b) * 1024 / n, b, a, s, h, t1 - t0 }'
}

field() { tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k { print $2 }'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END {
  if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.1f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)," \
  "THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo n/a)," \
  "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "keys=$N runs=$RUNS node: $BIN node $NODE_ARGS; $("${REDIS_SERVER:-redis-server}" --version | cut -d' ' -f1-3)"

NODE_RSS=""
NODE_SETTLED=""
REDIS_RSS=""
for run in $(seq 1 "$RUNS"); do
  line="$(node_run)"
  echo "run $run node:  $line"
  NODE_RSS+=" $(field rss_per_key "$line")"
  NODE_SETTLED+=" $(field settled_rss_per_key "$line")"
  line="$(N="$N" bash "$ROOT/bench/redis_memory.sh" | grep '^redis keys=')"
  echo "run $run redis: $line"
  REDIS_RSS+=" $(field rss_per_key "$line")"
done

node_med="$(median <<<"$NODE_RSS")"
settled_med="$(median <<<"$NODE_SETTLED")"
redis_med="$(median <<<"$REDIS_RSS")"
ratio="$(awk -v a="$node_med" -v b="$redis_med" 'BEGIN { printf "%.3f", a / b }')"
echo
echo "== median RSS bytes per key over $RUNS runs (N=$N; 16-byte keys, 32-byte values)"
settled_ratio="$(awk -v a="$settled_med" -v b="$redis_med" 'BEGIN { printf "%.3f", a / b }')"
printf '%-22s %8s %8s   runs\n' process rss/key vs-redis
printf '%-22s %8s %8s  %s\n' "gossipkv node" "$node_med" "$ratio" "${NODE_RSS# }"
printf '%-22s %8s %8s  %s\n' "gossipkv node +${SETTLE_S}s" "$settled_med" "$settled_ratio" "${NODE_SETTLED# }"
printf '%-22s %8s %8s  %s\n' "redis-server" "$redis_med" "1.000" "${REDIS_RSS# }"
echo "node_memory keys=$N runs=$RUNS node_rss_per_key=$node_med redis_rss_per_key=$redis_med ratio=$ratio" \
  "node_settled_rss_per_key=$settled_med settled_ratio=$settled_ratio"
