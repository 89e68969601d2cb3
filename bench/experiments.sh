#!/usr/bin/env bash
# The experiments of docs/experiments.md: tables on stdout, JSON in $OUT, plots in docs/img/.
#   bash bench/experiments.sh          # about 1 minute on 2 cores (most of it the real-protocol runs)
# Env: BIN (target/release/gossipkv), OUT (target/experiments), SEED (1),
#      DEMERS_TRIALS (10000), PP_TRIALS (1000), PROTOCOL_SEEDS (20), THREADS (0 = all cores)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-target/release/gossipkv}"
OUT="${OUT:-target/experiments}"
SEED="${SEED:-1}"
DEMERS_TRIALS="${DEMERS_TRIALS:-10000}"
PP_TRIALS="${PP_TRIALS:-1000}"
PROTOCOL_SEEDS="${PROTOCOL_SEEDS:-20}"
THREADS="${THREADS:-0}"
[[ -x "$BIN" ]] || cargo build --release --quiet
mkdir -p "$OUT" docs/img

echo "# gossipkv experiments"
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ *//'), $(date -u +%Y-%m-%d)"
echo

run() { # run NAME ARGS...: the table on stdout, the JSON in $OUT/NAME.json
  local name=$1
  shift
  echo "## $name: gossipkv experiment $* --seed $SEED"
  echo
  "$BIN" experiment "$@" --seed "$SEED" --threads "$THREADS" --json-out "$OUT/$name.json"
  echo
}

# 1. Demers et al. 1987, Table 1, and the two modelling choices the paper's numbers pin down
run demers demers --trials "$DEMERS_TRIALS" \
  --plot docs/img/demers-table1.svg --plot-spread docs/img/demers-spread.svg
run demers-sequential demers --trials "$DEMERS_TRIALS" --judge sequential
run demers-no-reset demers --trials "$DEMERS_TRIALS" --no-reset
# the paper's Table 2 (blind, coin) by the same code: the control for Table 1's t_ave column
run demers-blind-coin demers --trials "$DEMERS_TRIALS" --removal blind-coin

# 2. Push-pull rounds against fanout and loss, beside theory and gossipkv's protocol
run push-pull push-pull --trials "$PP_TRIALS" --protocol-seeds "$PROTOCOL_SEEDS" --quiet \
  --plot docs/img/push-pull-rounds.svg
run push-pull-two-way push-pull --trials "$PP_TRIALS" --exchange two-way --fanouts 1,3,5,10 \
  --losses 0.1 --protocol-seeds 0 --quiet
run push-pull-rumor push-pull --trials "$PP_TRIALS" --exchange rumor --fanouts 3,5 \
  --protocol-seeds 0 --quiet

echo "plots: docs/img/demers-table1.svg docs/img/demers-spread.svg docs/img/push-pull-rounds.svg"
echo "JSON:  $OUT/*.json"
