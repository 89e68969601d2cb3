#!/usr/bin/env bash
# Client-path throughput and latency of node 0 of a gossiping 3-node `gossipkv cluster`
# against redis-server, same machine, same run.
#
# Starts `gossipkv cluster --nodes 3 --base-port P --quiet` (default gossip interval, fanout
# and threads), one redis-server, and (unless REDIS_REPLICAS=0) a redis-server primary with
# REDIS_REPLICAS replicas (`--replicaof`; two beside 3 nodes), all kept up for the whole run,
# then runs redis-benchmark (-t set,get -c 50 -r 100000 -d 32, once with -P 1 and once with
# -P 16) against node 0 and each Redis side in turn for $RUNS rounds (which side goes first
# rotates). Prints the raw runs, medians side by side and the ratios: node 0 against the lone
# redis-server (the judged comparison: "compare" lines) and against the replicated primary,
# Redis deployed with the cluster's replication factor ("compare_replicated"). Afterwards it checks that the cluster
# gossiped during the load: node 0's gossip rounds advanced while the benchmark ran, the other
# nodes applied versions received by gossip, and after a few intervals every node has node 0's
# DBSIZE and digest root; and that the Redis replicas reached their primary's replication
# offset. server_cpu_pct is the CPU time of the whole gossipkv process(es) (all nodes), of
# redis-server, or of the Redis primary and its replicas, over the benchmark (100 = one core).
#
# Env:
#   RUNS (3)              rounds (who goes first rotates); medians are over these
#   BASE_PORT (7400)      first RESP port to try for the cluster (gossip on +10000)
#   CLIENTS (50) KEYSPACE (100000) DATASIZE (32) PIPELINE (16) TESTS (set,get)
#   REQUESTS (200000)     requests per test without pipelining
#   REQUESTS_P (1000000)  requests per test with -P $PIPELINE (it is ~5x faster)
#   CLUSTER_ARGS ("")     extra flags for `gossipkv cluster` (e.g. "--threads 1")
#   MODE (cluster)        "processes": instead of `gossipkv cluster`, NODES `gossipkv node`
#                         processes (default flags plus NODE_ARGS, each told the others as peers)
#   NODE_ARGS ("")        extra flags for each `gossipkv node` in MODE=processes
#   REPLICA_NICE (0)      MODE=processes: nice value of nodes 1.. (node 0 runs at 0). On one
#                         machine the replicas take cores node 0 would have to itself if they
#                         were other hosts; 19 approximates that (they still gossip, and the
#                         run still checks they applied versions during the load)
#   NODES (3)             cluster size (NODES=1: a lone node, for comparison)
#   PIN ("")              "CLIENT_CPUS/SERVER_CPUS", e.g. "0/1": redis-benchmark runs under
#                         `taskset -c CLIENT_CPUS`, redis-server and every gossipkv process under
#                         `taskset -c SERVER_CPUS`, so the load generator (which saturates a
#                         core at -P 1) and the servers do not take each other's CPU; empty: the
#                         scheduler places everything
#   REDIS_REPLICAS (NODES-1)  also benchmark a redis-server primary with this many replicas
#                         (`--replicaof`, same machine, same rounds): Redis deployed with the
#                         cluster's replication factor, the like-for-like peer of node 0 of a
#                         NODES-node cluster. Reported apart ("compare_replicated" lines); the
#                         judged ratios stay node 0 against the lone redis-server. 0: skip it
#   SETTLE_S (30)         max seconds to wait, after the load, for the cluster's replicas to agree
#                         (and again for the Redis replicas to reach their primary's offset)
#   SKIP_BUILD=1          use the already-built target/release/gossipkv
#   BIN                   benchmark this gossipkv binary instead (e.g. an older build; implies
#                         SKIP_BUILD)
# Output ends with machine-readable lines:
#   median label=node0|redis|redis_repl pipeline=.. test=.. rps=.. p50_ms=.. p99_ms=..
#   compare pipeline=.. test=.. rps_ratio=.. p50_ratio=.. p99_ratio=..   (node / redis, of the medians)
#           rps_ratio_rounds=MIN-MAX p99_ratio_rounds=MIN-MAX  (the same ratios round by round)
#   compare_replicated ...  the same against the redis primary with REDIS_REPLICAS replicas
#   gossip during_load_node0_rounds=[..] replicas_versions_applied_during_load=.. converged=yes|no ...
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUNS="${RUNS:-3}"
BASE_PORT="${BASE_PORT:-7400}"
CLIENTS="${CLIENTS:-50}"
KEYSPACE="${KEYSPACE:-100000}"
DATASIZE="${DATASIZE:-32}"
PIPELINE="${PIPELINE:-16}"
TESTS="${TESTS:-set,get}"
REQUESTS="${REQUESTS:-200000}"
REQUESTS_P="${REQUESTS_P:-1000000}"
CLUSTER_ARGS="${CLUSTER_ARGS:-}"
MODE="${MODE:-cluster}"
NODE_ARGS="${NODE_ARGS:-}"
REPLICA_NICE="${REPLICA_NICE:-0}"
SETTLE_S="${SETTLE_S:-30}"
NODES="${NODES:-3}"
PIN="${PIN:-}"
REDIS_REPLICAS="${REDIS_REPLICAS:-$((NODES - 1))}"
ON_CLIENT=()
ON_SERVER=()
if [[ -n "$PIN" ]]; then
  [[ "$PIN" == */* ]] || { echo "PIN must be CLIENT_CPUS/SERVER_CPUS, e.g. 0/1" >&2; exit 1; }
  command -v taskset >/dev/null || { echo "PIN needs taskset (util-linux)" >&2; exit 1; }
  ON_CLIENT=(taskset -c "${PIN%%/*}")
  ON_SERVER=(taskset -c "${PIN##*/}")
fi

for tool in redis-server redis-cli redis-benchmark; do
  command -v "$tool" >/dev/null || {
    echo "needs $tool (apt-get install -y redis-server redis-tools)" >&2
    exit 1
  }
done

cd "$ROOT"
if [[ -z "${SKIP_BUILD:-}" && -z "${BIN:-}" ]]; then
  cargo build --release -q -p gossipkv
fi
BIN="${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/gossipkv}"
[[ -x "$BIN" ]] || { echo "missing $BIN" >&2; exit 1; }

WORKDIR="$(mktemp -d)"
CLUSTER_PIDS=()
REDIS_PID=""
REPL_PIDS=()
stop() { # $1 = pid; SIGTERM, then SIGKILL after 10 s
  local pid="$1"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local pid
  for pid in "${CLUSTER_PIDS[@]}"; do stop "$pid"; done
  stop "$REDIS_PID"
  for pid in "${REPL_PIDS[@]}"; do stop "$pid"; done
  rm -rf "$WORKDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
udp_busy() { ss -Hlun "sport = :$1" 2>/dev/null | grep -q .; }
range_free() { # $1 = first port: RESP P.. and gossip P+10000.. for NODES nodes (TCP and UDP)
  local i
  for i in $(seq 0 $((NODES - 1))); do
    port_busy $(($1 + i)) && return 1
    port_busy $(($1 + 10000 + i)) && return 1
    udp_busy $(($1 + 10000 + i)) && return 1
  done
  return 0
}
wait_pong() { # $1 = port, $2 = pid
  for _ in $(seq 1 200); do
    redis-cli -p "$1" ping 2>/dev/null | grep -q PONG && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
cli() { local p="$1"; shift; redis-cli -p "$p" "$@" | tr -d '\r'; }
info_field() { # $1 = port, $2 = section, $3 = field
  cli "$1" info "$2" | awk -F: -v k="$3" '$1 == k { print $2 }'
}

# --- start both servers
P="$BASE_PORT"
until range_free "$P"; do P=$((P + NODES)); done
case "$MODE" in
  cluster)
    # shellcheck disable=SC2086
    "${ON_SERVER[@]}" "$BIN" cluster --nodes "$NODES" --base-port "$P" --quiet $CLUSTER_ARGS >"$WORKDIR/cluster.log" 2>&1 &
    CLUSTER_PIDS=($!)
    for i in $(seq 0 $((NODES - 1))); do
      wait_pong $((P + i)) "${CLUSTER_PIDS[0]}" \
        || { echo "cluster did not start" >&2; cat "$WORKDIR/cluster.log" >&2; exit 1; }
    done
    echo "cluster: $(head -n 1 "$WORKDIR/cluster.log") (pid ${CLUSTER_PIDS[0]}, $BIN)"
    ;;
  processes)
    for i in $(seq 0 $((NODES - 1))); do
      peers=""
      for j in $(seq 0 $((NODES - 1))); do
        [[ "$j" == "$i" ]] || peers+="${peers:+,}127.0.0.1:$((P + 10000 + j))"
      done
      nice_i=0
      [[ "$i" == 0 ]] || nice_i="$REPLICA_NICE"
      # shellcheck disable=SC2086
      "${ON_SERVER[@]}" nice -n "$nice_i" "$BIN" node --id "$i" --listen "127.0.0.1:$((P + i))" --gossip "127.0.0.1:$((P + 10000 + i))" \
        ${peers:+--peers "$peers"} $NODE_ARGS >"$WORKDIR/node$i.log" 2>&1 &
      CLUSTER_PIDS+=($!)
    done
    for i in $(seq 0 $((NODES - 1))); do
      wait_pong $((P + i)) "${CLUSTER_PIDS[$i]}" \
        || { echo "node $i did not start" >&2; cat "$WORKDIR/node$i.log" >&2; exit 1; }
    done
    echo "cluster: $NODES \`gossipkv node\` processes (pids ${CLUSTER_PIDS[*]}), RESP on 127.0.0.1:$P-$((P + NODES - 1)), $BIN"
    ;;
  *) echo "MODE must be cluster or processes" >&2; exit 1 ;;
esac

# start_redis PORT DIR [redis-server flags...]: a redis-server without persistence, its pid in
# STARTED_PID once it answers PING (exits with its log if it does not)
start_redis() {
  local port="$1" dir="$2"
  shift 2
  mkdir -p "$dir"
  "${ON_SERVER[@]}" redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
    --daemonize no --dir "$dir" --logfile "$dir/redis.log" "$@" &
  STARTED_PID=$!
  wait_pong "$port" "$STARTED_PID" || {
    echo "redis-server on port $port did not start" >&2
    cat "$dir/redis.log" >&2
    stop "$STARTED_PID"
    exit 1
  }
}
RP=6399
while port_busy "$RP"; do RP=$((RP + 1)); done
start_redis "$RP" "$WORKDIR"
REDIS_PID="$STARTED_PID"
echo "redis: $(redis-server --version | cut -d' ' -f1-3) on 127.0.0.1:$RP (pid $REDIS_PID)"
SIDES="redis node0"
RPR=""
if ((REDIS_REPLICAS > 0)); then
  # a primary and its replicas, each on the next free port, each with its own directory
  RPR=$((RP + 1))
  ports=()
  for i in $(seq 0 "$REDIS_REPLICAS"); do
    while port_busy "$RPR"; do RPR=$((RPR + 1)); done
    ports+=("$RPR")
    RPR=$((RPR + 1))
  done
  RPR="${ports[0]}"
  for i in $(seq 0 "$REDIS_REPLICAS"); do
    extra=()
    ((i == 0)) || extra=(--replicaof 127.0.0.1 "$RPR")
    start_redis "${ports[$i]}" "$WORKDIR/repl$i" "${extra[@]}"
    REPL_PIDS+=("$STARTED_PID")
  done
  for i in $(seq 1 "$REDIS_REPLICAS"); do
    for _ in $(seq 1 200); do
      [[ "$(info_field "${ports[$i]}" replication master_link_status)" == up ]] && break
      sleep 0.05
    done
    [[ "$(info_field "${ports[$i]}" replication master_link_status)" == up ]] \
      || {
        echo "redis replica ${ports[$i]} did not link to its primary" >&2
        cat "$WORKDIR/repl$i/redis.log" >&2
        exit 1
      }
  done
  echo "redis primary with $REDIS_REPLICAS replicas: 127.0.0.1:$RPR (pids ${REPL_PIDS[*]}), replicas on ports ${ports[*]:1}"
  SIDES="redis node0 redis_repl"
fi
echo "$(redis-benchmark --version): -t $TESTS -c $CLIENTS -r $KEYSPACE -d $DATASIZE;" \
  "-n $REQUESTS without pipelining, -n $REQUESTS_P with -P $PIPELINE; $RUNS rounds"
[[ -z "$PIN" ]] || echo "pinned: redis-benchmark on cpu ${PIN%%/*}, servers on cpu ${PIN##*/}"
echo "machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)," \
  "load before: $(cut -d' ' -f1-3 /proc/loadavg)"

RESULTS="$WORKDIR/results.txt"
GOSSIPLOG="$WORKDIR/gossip.txt"
: >"$RESULTS"
: >"$GOSSIPLOG"

cpu_ticks() { # utime + stime, summed over the given pids
  local pid t=0
  for pid in "$@"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$pid/stat"))); done
  echo "$t"
}

applied_sum() { # versions nodes 1.. applied from gossip
  local i t=0
  for i in $(seq 1 $((NODES - 1))); do t=$((t + $(info_field $((P + i)) gossip versions_applied))); done
  echo "$t"
}

bench() { # $1 = label, $2 = port, $3 = pipeline
  local label="$1" port="$2" p="$3" n="$REQUESTS" out="$WORKDIR/bench.csv"
  [[ "$p" == 1 ]] || n="$REQUESTS_P"
  local r0 c0 a r1 c1 b i applied
  if [[ "$label" == node0 ]]; then
    r0="$(info_field "$P" gossip rounds)"
    a="$(applied_sum)"
    c0="$(cpu_ticks "${CLUSTER_PIDS[@]}")"
  elif [[ "$label" == redis_repl ]]; then
    c0="$(cpu_ticks "${REPL_PIDS[@]}")"
  else
    c0="$(cpu_ticks "$REDIS_PID")"
  fi
  local t0 t1
  t0="$(date +%s.%N)"
  timeout 600 "${ON_CLIENT[@]}" redis-benchmark -h 127.0.0.1 -p "$port" -t "$TESTS" -c "$CLIENTS" -n "$n" \
    -r "$KEYSPACE" -d "$DATASIZE" -P "$p" --csv >"$out"
  t1="$(date +%s.%N)"
  if [[ "$label" == node0 ]]; then
    r1="$(info_field "$P" gossip rounds)"
    b="$(applied_sum)"
    c1="$(cpu_ticks "${CLUSTER_PIDS[@]}")"
    echo "gossip-during pipeline=$p seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')" \
      "node0_rounds=$((r1 - r0)) replicas_versions_applied=$((b - a))" \
      | tee -a "$GOSSIPLOG"
  elif [[ "$label" == redis_repl ]]; then
    c1="$(cpu_ticks "${REPL_PIDS[@]}")"
  else
    c1="$(cpu_ticks "$REDIS_PID")"
  fi
  local cpu
  cpu="$(awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.0f", 100 * (b - a) / hz / (e - s) }')"
  # CSV (redis-benchmark >= 7.0): "test","rps","avg_latency_ms","min_latency_ms",
  # "p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  tr -d '"\r' <"$out" | awk -F, -v label="$label" -v p="$p" -v cpu="$cpu" '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    NF > 1 {
      printf "bench label=%s pipeline=%s test=%s rps=%s avg_ms=%s p50_ms=%s p99_ms=%s server_cpu_pct=%s\n",
        label, p, $1, $col["rps"], $col["avg_latency_ms"], $col["p50_latency_ms"],
        $col["p99_latency_ms"], cpu
    }' | tee -a "$RESULTS"
}

port_of() { case "$1" in redis) echo "$RP" ;; node0) echo "$P" ;; redis_repl) echo "$RPR" ;; esac; }
read -r -a sides <<<"$SIDES"
for run in $(seq 1 "$RUNS"); do
  # each side goes first in turn: rotate the order by one every round
  order=()
  for k in $(seq 0 $((${#sides[@]} - 1))); do
    order+=("${sides[$(((run - 1 + k) % ${#sides[@]}))]}")
  done
  for side in "${order[@]}"; do
    echo "=== run $run/$RUNS: $side"
    for p in 1 "$PIPELINE"; do bench "$side" "$(port_of "$side")" "$p"; done
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- did the cluster gossip, and did it converge?
echo
echo "=== gossip after the load (settling up to $SETTLE_S s)"
converged=no
for _ in $(seq 1 $((SETTLE_S * 2))); do
  d0="$(cli "$P" dbsize)"
  r0="$(info_field "$P" gossip digest_root)"
  same=yes
  for i in $(seq 1 $((NODES - 1))); do
    [[ "$(cli $((P + i)) dbsize)" == "$d0" ]] || same=no
    [[ "$(info_field $((P + i)) gossip digest_root)" == "$r0" ]] || same=no
  done
  if [[ "$same" == yes ]]; then converged=yes; break; fi
  sleep 0.5
done
for i in $(seq 0 $((NODES - 1))); do
  echo "node $i: dbsize=$(cli $((P + i)) dbsize) digest_root=$(info_field $((P + i)) gossip digest_root)" \
    "rounds=$(info_field $((P + i)) gossip rounds) messages_sent=$(info_field $((P + i)) gossip messages_sent)" \
    "versions_applied=$(info_field $((P + i)) gossip versions_applied)" \
    "bulk_catchups=$(info_field $((P + i)) gossip bulk_catchups)"
done
echo "redis: dbsize=$(cli "$RP" dbsize)"
repl_caught_up=na
if [[ -n "$RPR" ]]; then
  repl_caught_up=no
  for _ in $(seq 1 $((SETTLE_S * 2))); do
    off="$(info_field "$RPR" replication master_repl_offset)"
    all=yes
    for i in $(seq 1 "$REDIS_REPLICAS"); do
      [[ "$(info_field "${ports[$i]}" replication slave_repl_offset)" == "$off" ]] || all=no
    done
    if [[ "$all" == yes ]]; then repl_caught_up=yes; break; fi
    sleep 0.5
  done
  echo "redis primary: dbsize=$(cli "$RPR" dbsize) master_repl_offset=$(info_field "$RPR" replication master_repl_offset);" \
    "replicas: $(for i in $(seq 1 "$REDIS_REPLICAS"); do printf '%s ' "dbsize=$(cli "${ports[$i]}" dbsize)/offset=$(info_field "${ports[$i]}" replication slave_repl_offset)"; done)"
fi
for pid in "${CLUSTER_PIDS[@]}"; do
  echo "gossipkv process $pid: VmRSS $(awk '/^VmRSS:/ { print $2, $3 }' "/proc/$pid/status")," \
    "threads $(awk '/^Threads:/ { print $2 }' "/proc/$pid/status")"
done

# --- medians and ratios
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "na"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "na" }'; }

echo
echo "=== medians over $RUNS round(s)"
MEDIANS="$WORKDIR/medians.txt"
: >"$MEDIANS"
for label in $SIDES; do
  for p in 1 "$PIPELINE"; do
    for test in $(echo "$TESTS" | tr 'a-z,' 'A-Z '); do
      sel="$(grep "^bench label=$label pipeline=$p test=$test " "$RESULTS" || true)"
      echo "median label=$label pipeline=$p test=$test rps=$(field rps <<<"$sel" | median)" \
        "p50_ms=$(field p50_ms <<<"$sel" | median) p99_ms=$(field p99_ms <<<"$sel" | median)" \
        "server_cpu_pct=$(field server_cpu_pct <<<"$sel" | median)" | tee -a "$MEDIANS"
    done
  done
done

compare_with() { # $1 = peer label, $2 = prefix of the machine-readable lines
  local peer="$1" prefix="$2" p test n r nr rr n50 r50 n99 r99 ranges
  echo
  echo "--- node 0 against $peer"
  printf '%-3s %-4s %11s %11s %7s %8s %8s %7s %8s %8s %7s\n' \
    P test node0_rps peer_rps ratio node_p50 peer_p50 p50_x node_p99 peer_p99 p99_x
  for p in 1 "$PIPELINE"; do
    for test in $(echo "$TESTS" | tr 'a-z,' 'A-Z '); do
      n="$(grep "^median label=node0 pipeline=$p test=$test " "$MEDIANS")"
      r="$(grep "^median label=$peer pipeline=$p test=$test " "$MEDIANS")"
      nr="$(field rps <<<"$n")" rr="$(field rps <<<"$r")"
      n50="$(field p50_ms <<<"$n")" r50="$(field p50_ms <<<"$r")"
      n99="$(field p99_ms <<<"$n")" r99="$(field p99_ms <<<"$r")"
      printf '%-3s %-4s %11s %11s %7s %8s %8s %7s %8s %8s %7s\n' "$p" "$test" "$nr" "$rr" \
        "$(ratio "$nr" "$rr")" "$n50" "$r50" "$(ratio "$n50" "$r50")" "$n99" "$r99" "$(ratio "$n99" "$r99")"
      # round-by-round ratios (the k-th node 0 run against the k-th run of the peer, same
      # test): their range says how much one round can be trusted
      ranges="$(awk -v p="$p" -v t="$test" -v peer="label=$peer" '
        function f(k,   i, a) { for (i = 1; i <= NF; i++) { split($i, a, "="); if (a[1] == k) return a[2] } }
        $1 == "bench" && $3 == "pipeline=" p && $4 == "test=" t {
          if ($2 == "label=node0") { nn++; nrps[nn] = f("rps"); n99[nn] = f("p99_ms") }
          else if ($2 == peer) { rn++; rrps[rn] = f("rps"); r99[rn] = f("p99_ms") } }
        END {
          m = nn < rn ? nn : rn
          for (i = 1; i <= m; i++) {
            if (rrps[i] > 0) { x = nrps[i] / rrps[i]; if (!lo1 || x < lo1) lo1 = x; if (x > hi1) hi1 = x }
            if (r99[i] > 0) { y = n99[i] / r99[i]; if (!lo2 || y < lo2) lo2 = y; if (y > hi2) hi2 = y } }
          if (m == 0) print "na na"; else printf "%.3f-%.3f %.3f-%.3f\n", lo1, hi1, lo2, hi2 }' "$RESULTS")"
      echo "$prefix pipeline=$p test=$test rps_ratio=$(ratio "$nr" "$rr")" \
        "p50_ratio=$(ratio "$n50" "$r50") p99_ratio=$(ratio "$n99" "$r99")" \
        "rps_ratio_rounds=${ranges% *} p99_ratio_rounds=${ranges#* }" >>"$WORKDIR/compare.txt"
    done
  done
}
: >"$WORKDIR/compare.txt"
compare_with redis compare
[[ -z "$RPR" ]] || compare_with redis_repl compare_replicated
echo "(ratio > 1: node 0 is faster; p99_x > 1: node 0's p99 is higher)"
echo
cat "$WORKDIR/compare.txt"
rounds_during="$(field node0_rounds <"$GOSSIPLOG" | tr '\n' ' ' | sed 's/ $//')"
applied_during="$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^replicas_versions_applied=/) { split($i, a, "="); s += a[2] } } END { print s + 0 }' "$GOSSIPLOG")"
echo "gossip during_load_node0_rounds=[${rounds_during// /,}] replicas_versions_applied_during_load=$applied_during" \
  "converged=$converged dbsize_node0=$(cli "$P" dbsize) redis_replicas_caught_up=$repl_caught_up"
