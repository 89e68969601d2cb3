#!/usr/bin/env bash
# The live view in a real browser: starts a 5-node `gossipkv cluster` with metrics, writes a
# few keys, loads node 0's page (http://127.0.0.1:$METRICS_PORT/) in headless Chromium, checks
# the rendered DOM lists 5 members, all alive and agreeing with node 0, and saves a screenshot.
# Not run by CI (it needs Chromium: apt-get install -y chromium); exits 77 ("skipped") when no
# Chromium is installed.
#
# Env:
#   BIN            the gossipkv binary (default target/release/gossipkv; built unless SKIP_BUILD=1)
#   BASE_PORT      RESP port of node 0 (21100); gossip on BASE_PORT+10000 (below the ephemeral
#                  port range, 32768 up, so an outgoing connection cannot hold it)
#   METRICS_PORT   metrics/live-view port of node 0 (22100)
#   OUT            the screenshot (docs/img/webview.png)
#   KEEP=1         leave the cluster running (prints its pid)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/gossipkv}"
BASE_PORT="${BASE_PORT:-21100}"
METRICS_PORT="${METRICS_PORT:-22100}"
OUT="${OUT:-$ROOT/docs/img/webview.png}"
URL="http://127.0.0.1:$METRICS_PORT/"

CHROME=""
for c in chromium chromium-browser google-chrome; do
  if command -v "$c" >/dev/null; then CHROME="$c"; break; fi
done
if [[ -z "$CHROME" ]]; then
  echo "webview_check: skipped, no Chromium (apt-get install -y chromium)" >&2
  exit 77
fi
command -v curl >/dev/null || { echo "webview_check: needs curl" >&2; exit 1; }

if [[ -z "${SKIP_BUILD:-}" ]]; then
  (cd "$ROOT" && cargo build --release -q --bin gossipkv)
fi

WORK="$(mktemp -d)"
CLUSTER_PID=""
cleanup() {
  if [[ -n "$CLUSTER_PID" && -z "${KEEP:-}" ]]; then
    kill "$CLUSTER_PID" 2>/dev/null || true
    wait "$CLUSTER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" cluster --nodes 5 --base-port "$BASE_PORT" --metrics-base-port "$METRICS_PORT" \
  --interval-ms 500 >"$WORK/cluster.log" 2>&1 &
CLUSTER_PID=$!

# the cluster answers /health (bounded wait)
for _ in $(seq 1 100); do
  if curl -fsS "${URL}health" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
curl -fsS "${URL}health" >/dev/null || { cat "$WORK/cluster.log" >&2; exit 1; }

# some data, so the page has keys to show (RESP by hand: no redis-cli needed)
{
  for i in $(seq 1 100); do
    k="key:$i" v="value:$i"
    printf '*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n' "${#k}" "$k" "${#v}" "$v"
  done
  printf '*1\r\n$4\r\nQUIT\r\n'
} >"$WORK/writes.resp"
exec 3<>"/dev/tcp/127.0.0.1/$BASE_PORT"
cat "$WORK/writes.resp" >&3
timeout 5 cat <&3 >/dev/null || true
exec 3<&- 3>&-

# node 0 knows all 5 members and agrees with all 4 peers (bounded wait)
for _ in $(seq 1 100); do
  s="$(curl -fsS "${URL}status.json" || true)"
  if [[ "$(grep -o '"status":"alive"' <<<"$s" | wc -l)" -eq 5 ]] \
    && grep -q '"peers_agreeing":4' <<<"$s" && grep -q '"keys":100,' <<<"$s"; then
    break
  fi
  sleep 0.2
done
echo "status.json: $(curl -fsS "${URL}status.json" | head -c 300)..."
# the node computes the page's rates between requests at least 1 s apart
sleep 1.5

flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --virtual-time-budget=3000)
"$CHROME" "${flags[@]}" --dump-dom "$URL" >"$WORK/dom.html" 2>"$WORK/chrome.log"
rows="$(grep -o '<tr class="member' "$WORK/dom.html" | wc -l)"
alive="$(grep -o '<td class="st alive">alive</td>' "$WORK/dom.html" | wc -l)"
agree="$(grep -o '<td class="yes">yes</td>' "$WORK/dom.html" | wc -l)"
count="$(grep -o 'id="member-count">[0-9]*<' "$WORK/dom.html" | grep -o '[0-9]*' || true)"
echo "DOM: $rows member rows, $alive alive, $agree agreeing with node 0, member count ${count:-?}"

mkdir -p "$(dirname "$OUT")"
"$CHROME" "${flags[@]}" --window-size=1280,640 --screenshot="$OUT" "$URL" >>"$WORK/chrome.log" 2>&1
size="$(stat -c %s "$OUT" 2>/dev/null || echo 0)"
echo "screenshot: $OUT ($size bytes)"
[[ -n "${KEEP:-}" ]] && echo "cluster left running: pid $CLUSTER_PID"

if [[ "$rows" -eq 5 && "$alive" -eq 5 && "$agree" -eq 5 && "${count:-0}" -eq 5 && "$size" -gt 10000 ]]; then
  echo "webview_check: ok"
else
  echo "webview_check: FAILED" >&2
  exit 1
fi
