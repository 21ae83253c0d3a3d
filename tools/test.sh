#!/bin/bash
# The whole test suite, as CI runs it (README "Run the tests"):
#   lane 1: gcc, -Dwerror=true, every feature enabled: unit, integration, system and VM suites;
#   lane 2: clang with -Db_sanitize=address,undefined: the same suites (but the VM one) again, then the
#           libFuzzer targets for a bounded time.
# Benchmarks are not part of it (tools/bench.sh). Exits non-zero when anything fails.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
out=${BUILD_DIR:-$src/build-test}
"$src/tools/deps.sh"

setup() {
        local dir=$1
        shift
        if [ -f "$dir/build.ninja" ]; then
                meson setup --reconfigure "$dir" "$src" "$@" >/dev/null
        else
                meson setup "$dir" "$src" "$@" >/dev/null
        fi
}

echo "=== lane 1: gcc, werror"
CC=gcc setup "$out/gcc" -Dwerror=true -Dauto_features=enabled -Dbench=true
ninja -C "$out/gcc"
meson test -C "$out/gcc" --no-rebuild --print-errorlogs --no-suite fuzz --no-suite bench

echo "=== lane 2: clang, address and undefined behaviour sanitizers"
CC=clang setup "$out/asan" -Dwerror=true -Dauto_features=enabled -Db_sanitize=address,undefined \
        -Db_lundef=false -Dfuzz=true -Dvm-tests=disabled -Dman=disabled -Dbench=false
ninja -C "$out/asan"
meson test -C "$out/asan" --no-rebuild --print-errorlogs --no-suite fuzz
meson test -C "$out/asan" --no-rebuild --print-errorlogs --suite fuzz

echo "All lanes passed."
