# Shared by bench/redis_memory.sh and bench/node_memory.sh: the RESP stream that loads
# exactly N distinct keys "k:%014d" (16 bytes) with values "v:%030d" (32 bytes).
# Usage: source bench/lib/gen_resp.sh; N=1000000 gen_resp | redis-cli --pipe
gen_resp() {
  if command -v python3 >/dev/null 2>&1; then
    python3 - "$N" <<'PY'
import sys
n = int(sys.argv[1])
out = sys.stdout.buffer
buf = []
for i in range(n):
    k = b"k:%014d" % i
    v = b"v:%030d" % i
    buf.append(b"*3\r\n$3\r\nSET\r\n$16\r\n" + k + b"\r\n$32\r\n" + v + b"\r\n")
    if len(buf) >= 10000:
        out.write(b"".join(buf)); buf.clear()
out.write(b"".join(buf))
PY
  else
    awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++)
      printf "*3\r\n$3\r\nSET\r\n$16\r\nk:%014d\r\n$32\r\nv:%030d\r\n", i, i }'
  fi
}
