#!/usr/bin/env bash
# Gossip-thread CPU of an idle `gossipkv cluster`: starts NODES nodes (default 1,000) with
# DROP (default 0.1) injected gossip loss, waits SETTLE_S seconds (default 40: membership has
# settled), then reads the gossip thread's user + system clock ticks (USER_HZ, 100 a second)
# from /proc over WINDOWS windows of 10 s. Prints one line per run:
#   idle bin=.. nodes=.. drop=.. ticks_per_10s=a,b,c rss_kb=..
# usage: bench/idle_cpu.sh [BIN]   (BIN defaults to target/release/gossipkv)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${1:-$ROOT/target/release/gossipkv}"
NODES="${NODES:-1000}"; DROP="${DROP:-0.1}"; SETTLE_S="${SETTLE_S:-40}"; WINDOWS="${WINDOWS:-3}"
BASE_PORT="${BASE_PORT:-20000}"
[[ -x "$BIN" ]] || { echo "missing $BIN (cargo build --release)" >&2; exit 1; }
"$BIN" cluster --nodes "$NODES" --base-port "$BASE_PORT" --drop-rate "$DROP" --quiet \
  >/dev/null 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true' EXIT
sleep "$SETTLE_S"
TID=""
for t in /proc/$PID/task/*; do
  [[ "$(cat "$t/comm")" == gossipkv-gossip ]] && TID="${t##*/}"
done
[[ -n "$TID" ]] || { echo "no gossipkv-gossip thread in $PID" >&2; exit 1; }
ticks() { awk '{print $14 + $15}' "/proc/$PID/task/$TID/stat"; }
out=()
for _ in $(seq 1 "$WINDOWS"); do
  a=$(ticks); sleep 10; b=$(ticks); out+=("$((b - a))")
done
echo "idle bin=$BIN nodes=$NODES drop=$DROP ticks_per_10s=$(IFS=,; echo "${out[*]}")" \
  "rss_kb=$(awk '/VmRSS/{print $2}' /proc/$PID/status)"
