#!/usr/bin/env bash
# Runs the fuzz targets one after another (libFuzzer through cargo-fuzz, on the stable
# toolchain with RUSTC_BOOTSTRAP=1), each for a number of executions or of seconds.
#
#   fuzz/run.sh                          # every target, 60 s each
#   fuzz/run.sh --time 600 resp_parser   # one target for 10 minutes
#   fuzz/run.sh --runs 2000000           # every target for 2 million executions
#   fuzz/run.sh --build-only
#
# Corpora grow in fuzz/corpus/<target>, crashes land in fuzz/artifacts/<target>, and each
# run's libFuzzer output in fuzz/logs/<target>.log; the last line printed per target is the
# executions done. Environment: NICE (default 10), FUZZ_ARGS (extra libFuzzer flags),
# GOSSIPKV_FUZZ_ALLOW (issues the gossip_node target tolerates, see docs/fuzzing.md).
# Reproduce a crash: fuzz/run.sh --repro <target> <file>.
set -euo pipefail

ALL=(resp_parser wire_decode gossip_node auth_envelope)
mode=time
amount=60
targets=()
repro=""
build_only=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --time) mode=time; amount="$2"; shift 2 ;;
        --runs) mode=runs; amount="$2"; shift 2 ;;
        --repro) repro="$(realpath "$3")"; targets=("$2"); shift 3 ;;
        --build-only) build_only=1; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) targets+=("$1"); shift ;;
    esac
done
[[ ${#targets[@]} -eq 0 ]] && targets=("${ALL[@]}")
cd "$(dirname "$0")"

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

# -a: debug assertions and overflow checks on, so an arithmetic overflow is a crash too.
mkdir -p logs
for t in "${targets[@]}"; do
    echo "== build $t"
    if ! nice -n "${NICE:-10}" cargo fuzz build -a "$t" >"logs/build-$t.log" 2>&1; then
        tail -n 40 "logs/build-$t.log"
        exit 1
    fi
done
[[ $build_only -eq 1 ]] && exit 0

if [[ -n "$repro" ]]; then
    exec cargo fuzz run -a "${targets[0]}" "$repro"
fi

# Per target: the longest input tried (dictionaries of protocol tokens: dict/<target>.dict).
max_len() {
    case "$1" in
        gossip_node) echo 16384 ;;
        *) echo 4096 ;;
    esac
}

status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    flags=(-max_len="$(max_len "$t")" -timeout=20 -print_final_stats=1)
    [[ -f "dict/$t.dict" ]] && flags+=(-dict="dict/$t.dict")
    if [[ $mode == time ]]; then flags+=(-max_total_time="$amount"); else flags+=(-runs="$amount"); fi
    # shellcheck disable=SC2206
    flags+=(${FUZZ_ARGS:-})
    echo "== $t: ${mode} ${amount} ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
    start=$(date +%s)
    if nice -n "${NICE:-10}" cargo fuzz run -a "$t" "corpus/$t" -- "${flags[@]}" >"logs/$t.log" 2>&1; then
        result=ok
    else
        result="CRASH (see logs/$t.log and artifacts/$t/)"
        status=1
    fi
    runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "logs/$t.log" | grep -Eo '[0-9]+$' || true)
    [[ -z "$runs" ]] && runs=$(grep -Eo '^#[0-9]+' "logs/$t.log" | tail -n 1 | tr -d '#')
    cov=$(grep -Eo 'cov: [0-9]+' "logs/$t.log" | tail -n 1 || true)
    echo "$t: ${runs:-?} executions in $(($(date +%s) - start)) s, ${cov:-cov: ?}, corpus $(find "corpus/$t" -type f | wc -l) inputs: $result"
done
exit $status
