#!/usr/bin/env bash
# Issue 5: a node killed with SIGKILL and restarted empty catches up in bulk.
# Starts 3 `gossipkv node` processes, loads N keys (16 B keys, 32 B values) into node 0,
# waits until every node holds them, kills node 2 with -9, restarts it (without --fresh, so it
# answers writes with LOADING until caught up), and measures the time until it holds all N
# keys again, in gossip intervals. Then PUTs at the restarted node and checks the other nodes
# read the new value.
# Usage: N=1000000 INTERVAL_MS=1000 bash bench/restart_catchup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
INTERVAL_MS=${INTERVAL_MS:-1000}
IP=${IP:-127.0.0.91}
BIN=target/release/gossipkv
command -v redis-cli >/dev/null || { echo "needs redis-cli (apt-get install redis-tools)"; exit 2; }
cargo build --release --quiet
source bench/lib/gen_resp.sh
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
start() { # start i [--fresh]
  local i=$1; shift
  local peers=""
  for j in 0 1 2; do [ "$j" = "$i" ] || peers="$peers${peers:+,}$IP:$((17100 + j))"; done
  "$BIN" node --id "$i" --listen "$IP:$((16100 + i))" --gossip "$IP:$((17100 + i))" \
    --peers "$peers" --interval-ms "$INTERVAL_MS" "$@" >/dev/null 2>&1 &
  pids[$i]=$!
  for _ in $(seq 200); do redis-cli -h "$IP" -p $((16100 + i)) PING >/dev/null 2>&1 && return; sleep 0.05; done
  echo "node $i did not start"; exit 1
}
dbsize() { redis-cli -h "$IP" -p $((16100 + $1)) DBSIZE 2>/dev/null || echo 0; }
now_ms() { date +%s%3N; }
for i in 0 1 2; do start "$i" --fresh; done
t=$(now_ms)
N=$N gen_resp | redis-cli -h "$IP" -p 16100 --pipe >/dev/null
echo "loaded $N keys into node 0 in $(( $(now_ms) - t )) ms"
for _ in $(seq 1200); do
  [ "$(dbsize 1)" = "$N" ] && [ "$(dbsize 2)" = "$N" ] && break; sleep 0.1
done
echo "spread to all 3 nodes after $(( $(now_ms) - t )) ms"
kill -9 "${pids[2]}"; wait "${pids[2]}" 2>/dev/null || true
t=$(now_ms)
start 2
loading=0
until out=$(redis-cli -h "$IP" -p 16102 PUT contested after-restart 2>&1) && [[ "$out" =~ ^[0-9]+$ ]]; do
  loading=$((loading + 1)); sleep 0.02
  [ $loading -lt 1000 ] || { echo "PUT never accepted: $out"; exit 1; }
done
first_put=$(( $(now_ms) - t ))
for _ in $(seq 6000); do [ "$(dbsize 2)" -ge "$((N + 1))" ] && break; sleep 0.01; done
caught=$(( $(now_ms) - t ))
size=$(dbsize 2)
ok=1
for i in 0 1; do
  for _ in $(seq 100); do
    [ "$(redis-cli -h "$IP" -p $((16100 + i)) GET contested)" = "after-restart" ] && break; sleep 0.05
  done
  [ "$(redis-cli -h "$IP" -p $((16100 + i)) GET contested)" = "after-restart" ] || ok=0
done
bulk=$(redis-cli -h "$IP" -p 16102 INFO gossip | tr -d '\r' | grep '^bulk_catchups:')
rss=$(awk '/VmRSS/ {print $2}' /proc/"${pids[2]}"/status)
echo "restarted node: $size of $((N + 1)) keys after $caught ms = $(awk -v c="$caught" -v i="$INTERVAL_MS" 'BEGIN{printf "%.2f", c/i}') intervals; first PUT accepted after $first_put ms ($loading LOADING replies); $bulk; RSS ${rss} kB"
echo "its PUT read at nodes 0 and 1: $([ $ok = 1 ] && echo yes || echo NO)"
[ "$size" -ge "$((N + 1))" ] && [ $ok = 1 ]
