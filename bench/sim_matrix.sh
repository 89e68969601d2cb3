#!/usr/bin/env bash
# Gossip simulator figures for docs/benchmarks.md, from the sim's own JSON.
#   bench/sim_matrix.sh            # fanout x loss table (n=1000, default workload) + one-write rounds over 20 seeds
# Env: NODES (1000), SEEDS (20), BIN (target/release/gossipkv)
set -euo pipefail
cd "$(dirname "$0")/.."
NODES="${NODES:-1000}"
SEEDS="${SEEDS:-20}"
BIN="${BIN:-target/release/gossipkv}"
[[ -x "$BIN" ]] || cargo build --release --quiet
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(' '.join(str(d.get(k)) for k in sys.argv[1:]))" "$@"; }

echo "## default workload (1,000 keys, 10% conflicting, 5% deletes), n=$NODES, seed 1"
echo "| k | loss | converged | rounds | MB sent | value copies | idle B/node/round | max datagram | wall ms |"
echo "|---|---|---|---|---|---|---|---|---|"
for k in 1 3 5 10; do
  for loss in 0 0.1; do
    read -r conv rounds bytes copies idle maxd wall < <("$BIN" sim --nodes "$NODES" --fanout "$k" --loss "$loss" --json --quiet \
      | field converged rounds_to_converge bytes_sent value_copies_per_node idle_bytes_per_node_per_round max_datagram_bytes wall_ms)
    printf '| %s | %s | %s | %s | %.1f | %.3f | %.0f | %s | %s |\n' "$k" "$loss" "$conv" "$rounds" \
      "$(python3 -c "print($bytes/1e6)")" "$copies" "$idle" "$maxd" "$wall"
  done
done

echo
echo "## one write, n=$NODES, 10% loss: rounds_to_converge over seeds 1..$SEEDS"
for k in 1 3 5 10; do
  rs=()
  for s in $(seq 1 "$SEEDS"); do
    rs+=("$("$BIN" sim --nodes "$NODES" --keys 1 --writes 1 --conflict-rate 0 --delete-rate 0 --loss 0.1 \
      --fanout "$k" --seed "$s" --json --quiet | field rounds_to_converge)")
  done
  python3 - "$k" "${rs[@]}" <<'PY'
import sys, statistics
k = sys.argv[1]; r = [int(x) for x in sys.argv[2:]]
print(f"k={k}: mean {statistics.mean(r):.2f}, max {max(r)}, all: {' '.join(map(str, r))}")
PY
done
