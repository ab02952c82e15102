#!/bin/bash
# bench/device_check.sh: one call on the lent GPU, from the repository root: the GPU cases CASES names (JOBS at a
# time), then the benchmark with FLA beside attnc at each T, then the per-kernel times at 8192.  Carry a Release
# build (attnc, libattnc.so: cmake -DCMAKE_BUILD_TYPE=Release -DATTNC_TESTS=OFF), FLA's wheel and fla_bench.py:
#   bash bench/device_check.sh BUILD_DIR FLA_BENCH_PY WHEEL_DIR [T ...]      (T defaults to 8192 2048 32768; none: no benchmark)
# Logs go to $OUT (the device tool's output folder) or ./device-out; a short table is printed.  Each step has a
# time limit so that the whole stays within one 600 s call.
set -u
build=$1 fla_bench=$2 wheels=$3
shift 3
[ $# -gt 0 ] || set -- 8192 2048 32768
out=${OUT:-device-out}
mkdir -p "$out"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
SECONDS=0
# CASES: the GPU cases' name pattern (default the backward's; "." every case; "none" none)
cases=${CASES:-'^(grad_|pgrad_|sgrad_)'}
if [ "$cases" != none ]; then
  timeout "${CASES_LIMIT:-240}" sh tests/gpu/run.sh "$build/attnc" "$cases" "${JOBS:-6}" > "$out/cases.txt" 2>&1
  echo "GPU cases '$cases' ($SECONDS s): $(tail -1 "$out/cases.txt")"
  grep " FAIL " "$out/cases.txt" | cut -c1-300
fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$wheels"/*.whl || exit 1
export PYTHONPATH=/tmp/site
first=1
[ "$1" = none ] && shift
for T in "$@"; do
  [ $first = 1 ] || export BENCH_PAR_WARM=0   # Triton's cache is warm after the first run
  first=0
  timeout $((585 - SECONDS)) python3 bench/bench.py --lib "$build/libattnc.so" --fla-bench "$fla_bench" --T "$T" \
      --attnc-cache /tmp/attnc-bench --out "$out/bench_$T.md" > "$out/bench_$T.txt" 2>&1
  echo "bench T=$T ($SECONDS s)"
  grep -E "^[a-z_]+ +T=|^sdpa" "$out/bench_$T.txt" | cut -c1-200
  if [ "$T" = 8192 ]; then
    timeout 60 python3 bench/kernel_times.py --lib "$build/libattnc.so" --T 8192 > "$out/times.txt" 2>&1
    echo "kernel times ($SECONDS s)"
    grep -v "^$\|Warn\|warn" "$out/times.txt" | cut -c1-100
  fi
done
