#!/bin/bash
# Runs every benchmark of tests/bench from a fresh optimized build (README "Benchmarks"):
#   1 command round trip   2 frame path   3 decode (+ plot against concurrent streams)   4 control plane
# Each prints a table of ratios against a baseline measured in the same run and writes a JSON result to
# $BENCH_RESULTS_DIR (default build-bench/results). Benchmarks never fail on a number, only on an error.
# BENCH_RUNS=n takes the best of n runs instead of 3 (steadier figures on a shared machine).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
out=${BUILD_DIR:-$src/build-bench}
"$src/tools/deps.sh"

if [ -f "$out/build.ninja" ]; then
        meson setup --reconfigure "$out" "$src" -Dbuildtype=release -Db_ndebug=false -Dbench=true >/dev/null
else
        meson setup "$out" "$src" -Dbuildtype=release -Db_ndebug=false -Dbench=true >/dev/null
fi
ninja -C "$out"

export BENCH_RESULTS_DIR=${BENCH_RESULTS_DIR:-$out/results}
mkdir -p "$BENCH_RESULTS_DIR"
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
status=0
for b in bench-roundtrip bench-frame-path bench-decode bench-control; do
        exe="$out/tests/bench/$b"
        [ -x "$exe" ] || { echo "== $b: not built (missing feature)"; continue; }
        echo
        echo "== $b"
        "$exe" || { echo "$b FAILED"; status=1; }
done
echo
echo "Results: $BENCH_RESULTS_DIR"
exit $status
