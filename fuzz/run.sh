#!/usr/bin/env bash
# Build and run goheap's fuzz targets (stable toolchain, libFuzzer from the
# libfuzzer-sys crate, coverage instrumentation by plain rustc flags).
#
#   fuzz/run.sh smoke            each target for FUZZ_RUNS (default 1000) runs, seed 1,
#                                from the committed seeds only (make test)
#   fuzz/run.sh long             each target for FUZZ_SECONDS (default 300) seconds
#   fuzz/run.sh build            build only
#   FUZZ_TARGETS="api"           a subset (default: api pagealloc)
#
# The targets are built for the explicit host target, so the RUSTFLAGS
# (coverage instrumentation) reach goheap and the targets but not build
# scripts, which link without libFuzzer. Corpora grow in fuzz/work/<target>
# (not committed), starting from the small seeds in fuzz/seeds/<target>.
# Crashes land in fuzz/artifacts/<target>/ and fail the run.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$HERE"
export PATH="$HOME/.cargo/bin:$PATH"
MODE=${1:-smoke}
TARGETS=${FUZZ_TARGETS:-api pagealloc}
HOST=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
cargo build --release --quiet --target "$HOST" --target-dir "$HERE/target"
[ "$MODE" = build ] && exit 0
for t in $TARGETS; do
    bin="$HERE/target/$HOST/release/$t"
    mkdir -p "$HERE/work/$t" "$HERE/artifacts/$t" "$HERE/seeds/$t"
    case "$MODE" in
        smoke)
            # Deterministic: a fresh corpus directory, the committed seeds only.
            limit=(-runs="${FUZZ_RUNS:-1000}" -seed=1)
            corpus=$(mktemp -d /tmp/goheap-fuzz.XXXXXX) ;;
        long) limit=(-max_total_time="${FUZZ_SECONDS:-300}"); corpus="$HERE/work/$t" ;;
        *) echo "usage: fuzz/run.sh smoke|long|build" >&2; exit 2 ;;
    esac
    echo "fuzz: $t (${limit[*]})"
    t0=$(date +%s)
    if ! "$bin" "${limit[@]}" -max_len=4096 -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="$HERE/artifacts/$t/" "$corpus" "$HERE/seeds/$t" >"$HERE/work/$t.log" 2>&1; then
        [ "$MODE" = smoke ] && rm -rf "$corpus"
        tail -n 40 "$HERE/work/$t.log"
        echo "fuzz: $t FAILED (artifacts in fuzz/artifacts/$t/)"
        exit 1
    fi
    [ "$MODE" = smoke ] && rm -rf "$corpus"
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$HERE/work/$t.log" | tr '\n' ' '
    echo "cov: $(grep -o 'cov: [0-9]*' "$HERE/work/$t.log" | tail -n 1 | cut -d' ' -f2) ($(( $(date +%s) - t0 ))s)"
done
echo "fuzz: all targets passed"
