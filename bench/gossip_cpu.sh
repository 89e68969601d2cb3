#!/usr/bin/env bash
# CPU time of a 3-node `gossipkv cluster`'s threads over a fixed SET load, to compare builds'
# replication cost (docs/benchmarks.md, "Node, key and value inside the entry").
#
# Starts `BIN cluster --nodes 3 --base-port PORT --quiet`, warms it up with 200,000 SETs
# (-c 50 -r 100000 -d 32) and 3 s of gossip, then runs 400,000 SETs and 2,000,000 SETs at
# -P 16, waits 4 s for the replicas to catch up, and prints each thread's utime + stime
# (clock ticks, /proc/PID/task/TID/stat) over that window: the client thread (named after the
# binary) and `gossipkv-gossip` (all three nodes' gossip drivers). The load's duration sets
# how many gossip rounds happen, so compare builds in alternating runs.
#
# Usage: bench/gossip_cpu.sh [BIN (target/release/gossipkv)] [PORT (7800)]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${1:-$ROOT/target/release/gossipkv}"
P="${2:-7800}"
for tool in redis-benchmark; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install -y redis-tools)" >&2; exit 1; }
done
"$BIN" cluster --nodes 3 --base-port "$P" --quiet >/dev/null 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null || true' EXIT
sleep 1.5
bench() { redis-benchmark -p "$P" -t set -c 50 -r 100000 -d 32 "$@" -q 2>/dev/null | tr '\r' '\n' | grep -v 'rps=' | grep . | tail -1; }
bench -n 200000 >/dev/null
sleep 3
snap() { for t in /proc/"$PID"/task/*; do echo "$(cat "$t/comm") $(awk '{ print $14 + $15 }' "$t/stat")"; done | sort; }
before="$(snap)"
bench -n 400000
bench -n 2000000 -P 16
sleep 4
after="$(snap)"
paste <(echo "$before") <(echo "$after") | awk '{ print "thread", $1, "ticks", $4 - $2 }'
