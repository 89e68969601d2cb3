#!/usr/bin/env bash
# Memory per key of the gossipkv replica store next to redis-server, in the same run.
#
# Loads N keys "k:%014d" (16 bytes) with values "v:%030d" (32 bytes) -- timestamp and origin
# included, each key written through Replica::put -- into a release binary and reports the
# process RSS delta (VmRSS in /proc/self/status) per key, under:
#   glibc            the system allocator (glibc malloc)
#   mimalloc         mimalloc (crate `mimalloc`, default features: v3, may use transparent
#                    huge pages via madvise)
#   mimalloc_no_thp  the same binary with MIMALLOC_ALLOW_THP=0 (what the crate's `no_thp`
#                    feature gives at build time)
# then runs bench/redis_memory.sh (redis-server, same keys and values) and prints each
# allocator's ratio to redis-server's RSS per key. Each measurement is repeated RUNS times;
# the median is reported.
#
# Env: N (default 1000000), RUNS (default 3), plus bench/redis_memory.sh's PORT,
#      REDIS_SERVER, REDIS_CLI. Needs redis-server and redis-cli
#      (Debian: apt-get install -y redis-server redis-tools).
# Output: per-run lines, then a summary and a final machine-readable line:
#   store_memory keys=<N> runs=<R> redis_rss_per_key=<B> glibc_rss_per_key=<B> glibc_ratio=<x> ...
set -euo pipefail

N="${N:-1000000}"
RUNS="${RUNS:-3}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

for tool in "${REDIS_SERVER:-redis-server}" "${REDIS_CLI:-redis-cli}"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "$tool not found; install it (Debian: apt-get install -y redis-server redis-tools)" >&2
    exit 1
  fi
done

echo "== build (cargo build --release -p gossipkv-bench)"
cargo build --release -p gossipkv-bench >&2
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
TARGET_DIR="${TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/release"

field() { # field NAME LINE -> value of NAME=... in LINE
  tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1==k {print $2}'
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {
  if (NR==0) {print "nan"} else if (NR%2) {print a[(NR+1)/2]} else {printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}}'; }

declare -A RSS
CONFIGS=(glibc mimalloc mimalloc_no_thp redis)

echo "machine: $(nproc) cores, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)," \
  "THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo n/a)," \
  "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "keys=$N runs=$RUNS"

for run in $(seq 1 "$RUNS"); do
  for cfg in "${CONFIGS[@]}"; do
    case "$cfg" in
      glibc) line=$("$BIN/store_rss_glibc" --keys "$N" | grep '^gossipkv ') ;;
      mimalloc) line=$("$BIN/store_rss_mimalloc" --keys "$N" | grep '^gossipkv ') ;;
      mimalloc_no_thp)
        line=$(MIMALLOC_ALLOW_THP=0 "$BIN/store_rss_mimalloc" --keys "$N" | grep '^gossipkv ') ;;
      redis) line=$(N="$N" bash "$ROOT/bench/redis_memory.sh" | grep '^redis keys=') ;;
    esac
    echo "run $run $cfg: $line"
    RSS[$cfg]="${RSS[$cfg]:-} $(field rss_per_key "$line")"
  done
done

redis_med=$(median <<<"${RSS[redis]}")
echo
echo "== median RSS bytes per key over $RUNS runs (N=$N; 16-byte keys, 32-byte values)"
printf '%-16s %8s %8s   runs\n' config rss/key vs-redis
summary="store_memory keys=$N runs=$RUNS redis_rss_per_key=$redis_med"
for cfg in "${CONFIGS[@]}"; do
  med=$(median <<<"${RSS[$cfg]}")
  ratio=$(awk -v a="$med" -v b="$redis_med" 'BEGIN {printf "%.3f", a/b}')
  printf '%-16s %8s %8s  %s\n' "$cfg" "$med" "$ratio" "${RSS[$cfg]# }"
  if [[ "$cfg" != redis ]]; then
    summary+=" ${cfg}_rss_per_key=$med ${cfg}_ratio=$ratio"
  fi
done
echo "$summary"
