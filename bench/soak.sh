#!/usr/bin/env bash
# Soak (issue 6 item 4): constant writes and deletes plus faults against a 10-node cluster of
# real `gossipkv node` processes for DURATION_S (30 minutes by default), sampling every
# node's RSS (VmRSS in /proc/PID/status) and `INFO gossip` tombstones every SAMPLE_S.
#
# Workload: PRELOAD keys (100,000) written once before the faults start (a resident data set:
# with only a few thousand keys a node's RSS is ~13 MB of fixed overhead, and transient
# allocations swing it by more than 10%), then 1,000 hot keys (PUT, 20% DEL) and churn keys (half the operations: each client
# creates fresh keys and deletes each a few operations later, so tombstones pile up unless
# purging bounds them), RATE operations/s over 4 clients. Tombstone grace GRACE_MS (60 s), so
# purging runs all along. Faults every FAULT_EVERY_MS: every kind of `gossipkv chaos`; nodes
# 0..NEVER_KILL-1 are never killed (a restarted node's memory starts over), so their RSS can
# be followed over the whole run.
#
# Verdict (exit 0 on PASS): every node that was never restarted ends with RSS within 10% of
# its level after WARMUP_S (the median over the five minutes after warm-up against the median
# over the last five minutes: a bulk catch-up lifts RSS by 1-3 MB for a minute, a spike is
# not growth; the maximum is printed too), the cluster converges after healing, and the
# chaos check finds no lost, stale or resurrected write.
#
# Env: DURATION_S (1800), NODES (10), RATE (500), PRELOAD (100000), SAMPLE_S (15), WARMUP_S (300),
#      GRACE_MS (60000), FAULT_EVERY_MS (3000), NEVER_KILL (7), SEED (1), SKIP_BUILD=1,
#      BIN (the gossipkv binary, target/release/gossipkv: a copy lets the tree be rebuilt
#      during a run), extra `gossipkv chaos` flags as arguments. Results: docs/reliability.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION_S="${DURATION_S:-1800}"
NODES="${NODES:-10}"
RATE="${RATE:-500}"
SAMPLE_S="${SAMPLE_S:-15}"
WARMUP_S="${WARMUP_S:-300}"
GRACE_MS="${GRACE_MS:-60000}"
FAULT_EVERY_MS="${FAULT_EVERY_MS:-3000}"
NEVER_KILL="${NEVER_KILL:-7}"
SEED="${SEED:-1}"
PRELOAD="${PRELOAD:-100000}"
BIN="${BIN:-target/release/gossipkv}"
if [[ "${SKIP_BUILD:-}" != 1 ]]; then
    cargo build --release --bin gossipkv
fi
echo "soak: $(date -u +%FT%TZ) on $(uname -n), $(nproc) cores, commit $(git rev-parse --short HEAD)"
# bounded: the run itself stops after DURATION_S, the settle and check take minutes at most
exec timeout --kill-after=30 "$((DURATION_S + 900))" nice -n 10 "$BIN" chaos \
    --nodes "$NODES" --duration-s "$DURATION_S" --seed "$SEED" --rate "$RATE" \
    --preload "$PRELOAD" --keys 1000 --churn 0.5 --tombstone-grace-ms "$GRACE_MS" --fault-every-ms "$FAULT_EVERY_MS" \
    --never-kill "$NEVER_KILL" --sample-every-s "$SAMPLE_S" --warmup-s "$WARMUP_S" "$@"
