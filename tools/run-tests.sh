#!/bin/sh
# Every test: set up, build under AddressSanitizer and UndefinedBehaviorSanitizer, run the CTest suite
# (units, golden diagnostics, IR round trips, malformed inputs, reference agreement), then a short
# libFuzzer run of the front end from the spec corpus.
set -eu
cd "$(dirname "$0")/.."
sh tools/setup.sh
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build-test -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DATTNC_SANITIZE=ON >/dev/null
cmake --build build-test -j "$jobs"
ctest --test-dir build-test --output-on-failure -j "$jobs"
CC=clang cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DATTNC_FUZZ=ON -DATTNC_TESTS=OFF >/dev/null
cmake --build build-fuzz -j "$jobs" --target fuzz_spec
sh fuzz/run.sh build-fuzz/fuzz_spec 60
