#!/bin/bash
# bench/experiments/delta-rounding/gpu_check.sh: one device call for the known defect's fix (fifty-sixth session),
# from the repository root, with two Release builds (attnc, libattnc.so; bench/build_patched.sh makes the old one):
#   bash bench/experiments/delta-rounding/gpu_check.sh NEW_DIR OLD_DIR
# 1. the GPU cases matching CASES (default 'gated_deltanet|gva'; none: no cases) on NEW; 2. `attnc run --grad` at the defect's
# shape for seeds 300-331 on both builds (a file each; the summary names those that FAIL); 3. Gated DeltaNet's and
# the gated delta rule's kernel times, OLD against NEW (bench/ab.sh, ROUNDS rounds).  Logs under $OUT/o.tgz
# (the device tool brings back few files: one archive).  LIM1..LIM3: each step's time limit (LIM3=0: no kernel times).
set -u
new=$1 old=$2
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
real=${OUT:-device-out}
mkdir -p "$real"
R=$(mktemp -d)/o
mkdir -p "$R"
SECONDS=0
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$R/gpu.txt"
if [ "${CASES:-}" != none ]; then   # (CASES=none: no cases)
  timeout "${LIM1:-200}" sh tests/gpu/run.sh "$new/attnc" "${CASES:-gated_deltanet|gva}" 12 > "$R/cases.txt" 2>&1
  echo "cases ($SECONDS s): $(tail -1 "$R/cases.txt")"
  grep " FAIL " "$R/cases.txt" | cut -c1-300
fi
for dir in ${SEED_BUILDS:-$new $old}; do   # (SEED_BUILDS: the builds whose seeds run)
  b=$(basename "$dir")
  export ATTNC_CACHE_DIR=/tmp/cache_$b
  run="$dir/attnc run specs/gated_deltanet.attn --grad --tokens 1000 --batch 2 --heads 4 --initial-state --seed"
  timeout 80 $run 300 > "$R/seed_${b}_300.txt" 2>&1   # (compiles the kernels into the cache once)
  seq 301 331 | timeout "${LIM2:-90}" xargs -P 12 -I{} sh -c "$run {} > $R/seed_${b}_{}.txt 2>&1"
  printf '%s: seeds that FAIL:' "$b"
  for f in "$R"/seed_"${b}"_*.txt; do grep -q FAIL "$f" && printf ' %s' "$(basename "$f" .txt | sed 's/.*_//')"; done
  echo " ($SECONDS s)"
done
unset ATTNC_CACHE_DIR
[ "${LIM3:-110}" = 0 ] || OUT=$R FWD=0 OPS=gated_deltanet,gated_delta KT=8192 ROUNDS=${ROUNDS:-2} timeout "${LIM3:-110}" bash bench/ab.sh "$old" "$new" > "$R/ab.txt" 2>&1
grep -E "==|T=8192|bwdp" "$R/ab.txt" | cut -c1-100 | head -60
tar czf "$real/o.tgz" -C "$(dirname "$R")" o
