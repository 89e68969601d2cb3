#!/usr/bin/env bash
# Peer baseline: memory cost per key of redis-server for N keys
# (16-byte keys "k:%014d", 32-byte values "v:%030d").
#
# Env: N (default 1000000), PORT (default 6399; if busy and PORT not set
#      explicitly, the next free port is used), REDIS_SERVER, REDIS_CLI.
# Output: human-readable details plus a final machine-readable line:
#   redis keys=<dbsize> used_memory_per_key=<B> rss_per_key=<B> ...
set -euo pipefail

N="${N:-1000000}"
REDIS_SERVER="${REDIS_SERVER:-redis-server}"
REDIS_CLI="${REDIS_CLI:-redis-cli}"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [[ -n "${PORT:-}" ]]; then
  if port_busy "$PORT"; then echo "port $PORT already in use" >&2; exit 1; fi
else
  PORT=6399
  while port_busy "$PORT"; do PORT=$((PORT + 1)); done
fi

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

"$REDIS_SERVER" --bind 127.0.0.1 --port "$PORT" --save '' --appendonly no \
  --daemonize no --dir "$WORKDIR" --logfile "$WORKDIR/redis.log" &
REDIS_PID=$!

cli() { "$REDIS_CLI" -h 127.0.0.1 -p "$PORT" "$@"; }

for _ in $(seq 1 100); do
  if cli ping 2>/dev/null | grep -q PONG; then break; fi
  sleep 0.05
done
cli ping | grep -q PONG || { echo "redis-server did not start" >&2; cat "$WORKDIR/redis.log" >&2; exit 1; }

info_field() { cli info memory | tr -d '\r' | awk -F: -v k="$1" '$1==k {print $2}'; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$REDIS_PID/status"; }

used_before=$(info_field used_memory)
rss_before_kb=$(rss_kb)

# Exactly N distinct SET commands in RESP, bulk-loaded.
source "$(dirname "$0")/lib/gen_resp.sh"

t0=$(date +%s.%N)
gen_resp | cli --pipe >"$WORKDIR/pipe.out" 2>&1 || { cat "$WORKDIR/pipe.out" >&2; exit 1; }
t1=$(date +%s.%N)
tail -n 2 "$WORKDIR/pipe.out"

dbsize=$(cli dbsize | tr -d '\r')
sample_key=$(cli randomkey | tr -d '\r')
sample_val=$(cli get "$sample_key")
used_after=$(info_field used_memory)
rss_after_kb=$(rss_kb)
used_rss_after=$(info_field used_memory_rss)
frag=$(info_field mem_fragmentation_ratio)
allocator=$(info_field mem_allocator)

if [[ "$dbsize" -ne "$N" ]]; then
  echo "WARNING: dbsize=$dbsize != N=$N" >&2
fi

echo "redis version: $("$REDIS_SERVER" --version)"
echo "port=$PORT N=$N dbsize=$dbsize allocator=$allocator"
echo "sample key='$sample_key' (len ${#sample_key}), value len ${#sample_val}"
echo "load time: $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f s", b-a}')"
echo "used_memory: before=$used_before after=$used_after delta=$((used_after - used_before))"
echo "VmRSS (kB): before=$rss_before_kb after=$rss_after_kb delta=$((rss_after_kb - rss_before_kb))"
echo "used_memory_rss after=$used_rss_after mem_fragmentation_ratio=$frag"

awk -v n="$dbsize" -v ub="$used_before" -v ua="$used_after" \
    -v rb="$rss_before_kb" -v ra="$rss_after_kb" -v klen="${#sample_key}" -v vlen="${#sample_val}" 'BEGIN {
  printf "redis keys=%d key_len=%d val_len=%d used_memory_per_key=%.1f rss_per_key=%.1f used_memory_delta=%d rss_delta=%d\n",
    n, klen, vlen, (ua-ub)/n, (ra-rb)*1024/n, ua-ub, (ra-rb)*1024
}'
