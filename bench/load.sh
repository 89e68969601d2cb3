#!/usr/bin/env bash
# Load (issue 6 item 5): a node under redis-benchmark at full speed keeps gossiping (its
# peers' writes reach it, its own reach them), and its client latency stays bounded while
# a peer floods it with gossip.
#
# Three real `gossipkv node` processes on 127.A.B.1-3 (A = the node under load, B = a
# peer that writes probes, C = the peer that floods), gossip every INTERVAL_MS. Each phase
# runs redis-benchmark (SET and GET, -c 50, random keys, 32-byte values) against A while
# bench/lib/load_probe.py PUTs a probe key at B every 250 ms and times how long until GET
# at A returns it (gossip B -> A while A is saturated):
#
#   idle    no flood: A's latency and the B -> A delay under client load alone;
#   gossip  C is bulk-loaded with FLOOD_KEYS keys through redis-cli --pipe at the same
#           time: a burst of rumors, anti-entropy and bulk catch-up lands on A;
#   junk    a hostile peer sends random UDP datagrams at A's gossip port as fast as it can.
#
# After each phase: seconds until every node has the same digest root (A's benchmark
# writes and C's keys spread everywhere). Prints a table: rps, p50/p99/max latency (ms),
# probe delay p50/p90/max (ms), probes missing, convergence time. Needs redis-benchmark,
# redis-cli and python3 (not used by CI). Results: docs/reliability.md.
#
# Env: REQUESTS (300000 per test), FLOOD_KEYS (300000), INTERVAL_MS (200), SKIP_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS="${REQUESTS:-300000}"
FLOOD_KEYS="${FLOOD_KEYS:-300000}"
INTERVAL_MS="${INTERVAL_MS:-200}"
for tool in redis-benchmark redis-cli python3; do
    command -v "$tool" >/dev/null || { echo "load.sh needs $tool" >&2; exit 2; }
done
if [[ "${SKIP_BUILD:-}" != 1 ]]; then
    cargo build --release --bin gossipkv
fi
BIN=target/release/gossipkv
PREFIX="127.$((60 + $$ % 100)).$(($$ / 100 % 200 + 1))"
RESP_PORT=23379
GOSSIP_PORT=23946
WORK=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
host() { echo "$PREFIX.$(($1 + 1))"; }
peers() {
    local out=() j
    for j in 0 1 2; do [[ $j != "$1" ]] && out+=("$(host "$j"):$GOSSIP_PORT"); done
    (IFS=,; echo "${out[*]}")
}
for i in 0 1 2; do
    env -u GOSSIPKV_CONFIG "$BIN" node --id "$i" --listen "$(host "$i"):$RESP_PORT" \
        --gossip "$(host "$i"):$GOSSIP_PORT" --peers "$(peers "$i")" \
        --interval-ms "$INTERVAL_MS" --fresh --threads 1 >"$WORK/node-$i.log" 2>&1 &
    pids+=($!)
done
A=$(host 0); B=$(host 1); C=$(host 2)
for h in "$A" "$B" "$C"; do
    for _ in $(seq 100); do redis-cli -h "$h" -p "$RESP_PORT" PING >/dev/null 2>&1 && break; sleep 0.1; done
done
info() { redis-cli -h "$1" -p "$RESP_PORT" INFO gossip | tr -d '\r' | sed -n "s/^$2://p"; }
converge() { # seconds until the three digest roots agree (bounded: 120 s)
    local t0 now
    t0=$(date +%s.%N)
    for _ in $(seq 1200); do
        if [[ "$(info "$A" digest_root)" == "$(info "$B" digest_root)" &&
              "$(info "$B" digest_root)" == "$(info "$C" digest_root)" ]]; then
            now=$(date +%s.%N); echo "$now - $t0" | bc; return
        fi
        sleep 0.1
    done
    echo "not-converged"
}
bench() {
    nice -n 5 redis-benchmark -h "$A" -p "$RESP_PORT" -t set,get -n "$REQUESTS" -c 50 \
        -r 100000 -d 32 --csv 2>/dev/null | tr -d '"' | awk -F, '/^(SET|GET),/ {
        printf "%s rps=%.0f p50=%s p99=%s max=%s\n", $1, $2, $5, $7, $8 }'
}
printf '%-7s %-44s %-44s %-52s %s\n' phase SET GET "probe B->A" converge_s
for phase in idle gossip junk; do
    python3 bench/lib/load_probe.py probe "$B:$RESP_PORT" "$A:$RESP_PORT" 600 250 "$phase" \
        >"$WORK/probe.out" &
    probe_pid=$!
    flood_pid=
    case $phase in
        gossip)
            (source bench/lib/gen_resp.sh; N="$FLOOD_KEYS" gen_resp |
                redis-cli -h "$C" -p "$RESP_PORT" --pipe >"$WORK/pipe.out" 2>&1) &
            flood_pid=$! ;;
        junk)
            python3 bench/lib/load_probe.py flood "$A:$GOSSIP_PORT" 600 >"$WORK/flood.out" &
            flood_pid=$! ;;
    esac
    sleep 1
    bench >"$WORK/bench.out"
    if [[ $phase == junk ]]; then kill "$flood_pid" 2>/dev/null || true; fi
    if [[ -n "$flood_pid" ]]; then wait "$flood_pid" 2>/dev/null || true; fi
    kill "$probe_pid" 2>/dev/null || true
    wait "$probe_pid" 2>/dev/null || true
    conv=$(converge)
    printf '%-7s %-44s %-44s %-52s %s\n' "$phase" "$(sed -n 1p "$WORK/bench.out")" \
        "$(sed -n 2p "$WORK/bench.out")" "$(cat "$WORK/probe.out")" "$conv"
done
echo "junk flood: $(cat "$WORK/flood.out" 2>/dev/null)"
echo "A: $(info "$A" keys) keys, decode_errors $(info "$A" decode_errors), rumors_dropped $(info "$A" rumors_dropped), rounds $(info "$A" rounds)"
