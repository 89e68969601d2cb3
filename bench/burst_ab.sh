#!/usr/bin/env bash
# The brief's burst (1,000 nodes, 100,000 keys, 10% conflicting, 10% loss, fanout 5) run by
# two or more `gossipkv` binaries, alternating, each run after a pause (docs/benchmarks.md,
# "Session 17"). The pause matters on dev-2c: it is a microVM that hands freed memory back
# to its host within seconds, and the next first touch of a page costs a host fault, so a
# run that follows another big run right away gets its 15 GB cheaper than one that does not,
# and back-to-back comparisons favour the second binary.
#
# Usage: bench/burst_ab.sh BIN_A BIN_B [BIN ...]
# Env: ROUNDS (2: each binary runs ROUNDS times, the order reversed every other round),
#      PAUSE_S (25), NODES (1000), KEYS (100000); extra `gossipkv sim` flags as SIM_FLAGS.
# Prints, per run: wall, user and system seconds, peak RSS, and the report's converged,
# rounds_to_converge, bytes_sent and value_copies_per_node (identical across binaries when
# the protocol did not change: the report is deterministic).
set -euo pipefail
if [[ $# -lt 2 ]]; then
    sed -n '2,15p' "$0"
    exit 2
fi
ROUNDS="${ROUNDS:-2}"
PAUSE_S="${PAUSE_S:-25}"
NODES="${NODES:-1000}"
KEYS="${KEYS:-100000}"
out="$(mktemp)"
trap 'rm -f "$out" "$out.time"' EXIT
echo "burst_ab: $(date -u +%FT%TZ) on $(uname -n), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
bins=("$@")
for ((r = 0; r < ROUNDS; r++)); do
    order=("${bins[@]}")
    if ((r % 2 == 1)); then
        order=()
        for ((i = ${#bins[@]} - 1; i >= 0; i--)); do order+=("${bins[i]}"); done
    fi
    for bin in "${order[@]}"; do
        sleep "$PAUSE_S"
        # shellcheck disable=SC2086
        /usr/bin/time -f "%e %U %S %M" -o "$out.time" "$bin" sim --nodes "$NODES" \
            --keys "$KEYS" --writes "$KEYS" --conflict-rate 0.1 --loss 0.1 --fanout 5 \
            ${SIM_FLAGS:-} --json --quiet >"$out"
        read -r wall user sys rss <"$out.time"
        report="$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(" ".join(f"{k}={d[k]}" for k in ["converged","rounds_to_converge","bytes_sent","value_copies_per_node"]))' "$out")"
        echo "$(date -u +%T) $bin: ${wall} s wall, ${user} s user, ${sys} s system, ${rss} KiB; $report"
    done
done
