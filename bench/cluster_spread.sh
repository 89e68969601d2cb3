#!/usr/bin/env bash
# How fast a PUT at node 0 reaches every node of a 1,000-node `gossipkv cluster` with 10%
# injected gossip loss, and what the cluster process costs.
#
# Starts `gossipkv cluster --nodes $NODES --base-port P --drop-rate $DROP_RATE --quiet`
# (default fanout and interval), waits until every node answers PING plus $WARMUP_S seconds,
# measures the idle cluster's CPU over $IDLE_S seconds, then runs the spread_probe example
# (crates/gossipkv-node/examples/spread_probe.rs) $PROBES times: each PUTs a fresh key
# (probe-<pid>) at node 0 and polls GET at every node over RESP until all saw it (gives up
# after 60 s). Reports, per probe and as medians, when 50/90/99/100% of nodes had the value,
# in ms and in gossip intervals (judged: 100% within 10 intervals), plus the cluster
# process's RSS and CPU. Always stops the cluster (SIGTERM, then SIGKILL).
#
# Env:
#   NODES (1000) DROP_RATE (0.1) BASE_PORT (20000; RESP P..P+NODES-1, gossip P+10000..)
#   INTERVAL_MS (1000: the cluster's default; set it to pass --interval-ms)
#   PROBES (5) WARMUP_S (5) IDLE_S (10) START_TIMEOUT_S (120)
#   CLUSTER_ARGS ("")  extra flags for `gossipkv cluster`
#   SKIP_BUILD=1       use the already-built binaries
# Output ends with machine-readable lines:
#   probe n=.. seen=.. p50_ms=.. p90_ms=.. p99_ms=.. p100_ms=.. p100_intervals=..
#   spread nodes=.. drop_rate=.. probes=.. median_p100_ms=.. median_p100_intervals=..
#          max_p100_intervals=.. within_10_intervals=K/PROBES rss_mb=.. idle_cpu_pct=.. ...
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
NODES="${NODES:-1000}"
DROP_RATE="${DROP_RATE:-0.1}"
BASE_PORT="${BASE_PORT:-20000}"
INTERVAL_MS="${INTERVAL_MS:-}"
PROBES="${PROBES:-5}"
WARMUP_S="${WARMUP_S:-5}"
IDLE_S="${IDLE_S:-10}"
START_TIMEOUT_S="${START_TIMEOUT_S:-120}"
CLUSTER_ARGS="${CLUSTER_ARGS:-}"

command -v redis-cli >/dev/null || { echo "needs redis-cli (apt-get install -y redis-tools)" >&2; exit 1; }

cd "$ROOT"
if [[ -z "${SKIP_BUILD:-}" ]]; then
  cargo build --release -q -p gossipkv
  cargo build --release -q -p gossipkv-node --example spread_probe
fi
REL="${CARGO_TARGET_DIR:-$ROOT/target}/release"
BIN="$REL/gossipkv"
PROBE="$REL/examples/spread_probe"
for b in "$BIN" "$PROBE"; do [[ -x "$b" ]] || { echo "missing $b" >&2; exit 1; }; done

# The probe holds one connection per node; the cluster raises its own limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < NODES + 64)); then
  echo "open-file limit $(ulimit -n) is too low for $NODES probe connections" >&2
  exit 1
fi

WORKDIR="$(mktemp -d)"
CLUSTER_PID=""
cleanup() {
  if [[ -n "$CLUSTER_PID" ]] && kill -0 "$CLUSTER_PID" 2>/dev/null; then
    kill "$CLUSTER_PID" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$CLUSTER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$CLUSTER_PID" 2>/dev/null || true
    wait "$CLUSTER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORKDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Any listener (TCP or UDP) in [lo, hi]?
range_busy() {
  ss -Htuln | awk -v lo="$1" -v hi="$2" '{ n = split($5, a, ":"); p = a[n] + 0; if (p >= lo && p <= hi) f = 1 } END { exit !f }'
}
P="$BASE_PORT"
while range_busy "$P" $((P + NODES - 1)) || range_busy $((P + 10000)) $((P + 10000 + NODES - 1)); do
  P=$((P + NODES))
  ((P + 10000 + NODES <= 65535)) || { echo "no free port range" >&2; exit 1; }
done

INTERVAL="${INTERVAL_MS:-1000}"
extra=()
[[ -n "$INTERVAL_MS" ]] && extra+=(--interval-ms "$INTERVAL_MS")
echo "machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)," \
  "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "command: gossipkv cluster --nodes $NODES --base-port $P --drop-rate $DROP_RATE --quiet" \
  "${extra[*]} $CLUSTER_ARGS"
: >"$WORKDIR/cluster.log"
t0="$(date +%s.%N)"
# shellcheck disable=SC2086
"$BIN" cluster --nodes "$NODES" --base-port "$P" --drop-rate "$DROP_RATE" --quiet "${extra[@]}" \
  $CLUSTER_ARGS >"$WORKDIR/cluster.log" 2>&1 &
CLUSTER_PID=$!

# Up: the summary line is printed and the first and last nodes answer PING.
deadline=$((SECONDS + START_TIMEOUT_S))
until grep -q 'nodes up' "$WORKDIR/cluster.log" \
  && redis-cli -p "$P" ping 2>/dev/null | grep -q PONG \
  && redis-cli -p $((P + NODES - 1)) ping 2>/dev/null | grep -q PONG; do
  if ! kill -0 "$CLUSTER_PID" 2>/dev/null || ((SECONDS > deadline)); then
    echo "cluster did not come up" >&2
    cat "$WORKDIR/cluster.log" >&2
    exit 1
  fi
  sleep 0.1
done
t1="$(date +%s.%N)"
echo "$(cat "$WORKDIR/cluster.log")"
echo "up in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s (pid $CLUSTER_PID); warming up $WARMUP_S s"
sleep "$WARMUP_S"

status_kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$CLUSTER_PID/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$CLUSTER_PID/stat"; }
HZ="$(getconf CLK_TCK)"
pct() { awk -v a="$1" -v b="$2" -v s="$3" -v e="$4" -v hz="$HZ" 'BEGIN { printf "%.0f", 100 * (b - a) / hz / (e - s) }'; }
gossip_field() { redis-cli -p "$1" info gossip | tr -d '\r' | awk -F: -v k="$2" '$1 == k { print $2 }'; }

# Idle cost: CPU of the whole process (100% = one core) while it only gossips.
c0="$(cpu_ticks)"; s0="$(date +%s.%N)"
b0="$(gossip_field "$P" bytes_sent)"; m0="$(gossip_field "$P" messages_sent)"; r0="$(gossip_field "$P" rounds)"
sleep "$IDLE_S"
c1="$(cpu_ticks)"; s1="$(date +%s.%N)"
b1="$(gossip_field "$P" bytes_sent)"; m1="$(gossip_field "$P" messages_sent)"; r1="$(gossip_field "$P" rounds)"
IDLE_CPU="$(pct "$c0" "$c1" "$s0" "$s1")"
echo "idle: cluster CPU ${IDLE_CPU}% of one core over ${IDLE_S} s; RSS $(status_kb VmRSS) kB," \
  "threads $(status_kb Threads); node 0: $((r1 - r0)) rounds, $((m1 - m0)) messages / $((b1 - b0)) bytes sent"

RESULTS="$WORKDIR/probes.txt"
: >"$RESULTS"
ms_of() { sed -n "s/^ *$1 of nodes by *\([0-9.]*\) ms.*/\1/p" "$2"; }
PROBE_CPU=""
for i in $(seq 1 "$PROBES"); do
  echo "=== probe $i/$PROBES"
  c0="$(cpu_ticks)"; s0="$(date +%s.%N)"
  rc=0
  timeout 120 "$PROBE" "$P" "$NODES" "$INTERVAL" >"$WORKDIR/probe.out" 2>&1 || rc=$?
  c1="$(cpu_ticks)"; s1="$(date +%s.%N)"
  cat "$WORKDIR/probe.out"
  seen="$(sed -n 's/.*saw the PUT: \([0-9]*\).*/\1/p' "$WORKDIR/probe.out")"
  p100="$(ms_of 100% "$WORKDIR/probe.out")"
  [[ "$rc" == 0 && "$seen" == "$NODES" ]] || p100="inf"
  cpu="$(pct "$c0" "$c1" "$s0" "$s1")"
  PROBE_CPU+=" $cpu"
  echo "probe n=$NODES seen=${seen:-0} p50_ms=$(ms_of 50% "$WORKDIR/probe.out") p90_ms=$(ms_of 90% "$WORKDIR/probe.out")" \
    "p99_ms=$(ms_of 99% "$WORKDIR/probe.out") p100_ms=$p100" \
    "p100_intervals=$(awk -v m="$p100" -v i="$INTERVAL" 'BEGIN { if (m == "inf") print "inf"; else printf "%.2f", m / i }')" \
    "cluster_cpu_pct=$cpu" | tee -a "$RESULTS"
  sleep 1
done

field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "na"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

RSS_KB="$(status_kb VmRSS)"
HWM_KB="$(status_kb VmHWM)"
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "node 0 gossip: $(redis-cli -p "$P" info gossip | tr -d '\r' | grep -E '^(rounds|messages_sent|bytes_sent|max_datagram|dropped_injected_send|dropped_injected_recv|bulk_catchups|keys):' | tr '\n' ' ')"
within="$(field p100_intervals <"$RESULTS" | awk '$1 != "inf" && $1 <= 10 { n++ } END { print n + 0 }')"
echo "=== $PROBES probes, interval $INTERVAL ms: 100% of $NODES nodes had the PUT after (ms):" \
  "$(field p100_ms <"$RESULTS" | tr '\n' ' ')"
echo "spread nodes=$NODES drop_rate=$DROP_RATE probes=$PROBES interval_ms=$INTERVAL" \
  "median_p50_ms=$(field p50_ms <"$RESULTS" | median) median_p90_ms=$(field p90_ms <"$RESULTS" | median)" \
  "median_p99_ms=$(field p99_ms <"$RESULTS" | median) median_p100_ms=$(field p100_ms <"$RESULTS" | median)" \
  "median_p100_intervals=$(field p100_intervals <"$RESULTS" | median)" \
  "max_p100_intervals=$(field p100_intervals <"$RESULTS" | sort -g | tail -n 1)" \
  "within_10_intervals=$within/$PROBES rss_mb=$((RSS_KB / 1024)) hwm_mb=$((HWM_KB / 1024))" \
  "idle_cpu_pct=$IDLE_CPU probing_cpu_pct_median=$(echo "$PROBE_CPU" | tr ' ' '\n' | grep -v '^$' | median)"
