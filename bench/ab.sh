#!/bin/bash
# bench/ab.sh: an A/B of attnc builds in one call on the GPU (machines differ by up to 10 %: compare builds
# only inside one call).  From the repository root, with each build's libattnc.so in a directory of its own:
#   bash bench/ab.sh DIR_A DIR_B ...        env: ROUNDS (2), T (8192,32768), OPS (bench.py's five), KT (8192),
#                                            FWD (1; 0: no forward timing, the kernel times alone)
# Per round and build, interleaved: the forward (bench/bench.py --no-backward, all schedules) and the
# forward+backward kernel times at each of KT's lengths (bench/kernel_times.py; comma-separated).  Logs go
# to $OUT (or ./device-out).  With FWD=0 a round of two ops at two lengths took 7-10 s a build (an H100,
# forty-third session) against about 30 with the forward's schedules.
set -u
out=${OUT:-device-out}
mkdir -p "$out"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
ops=${OPS:-simple_gla,simple_gla_gam,gla,delta_rule,gated_delta}
SECONDS=0
for round in $(seq "${ROUNDS:-2}"); do
  for dir in "$@"; do
    name=$(basename "$dir")
    log="$out/ab_${name}_$round.txt"
    : > "$log"
    [ "${FWD:-1}" = 0 ] ||
      timeout 120 python3 bench/bench.py --lib "$dir/libattnc.so" --T "${T:-8192,32768}" --ops "$ops" --no-backward > "$log" 2>&1
    timeout 120 python3 bench/kernel_times.py --lib "$dir/libattnc.so" --T "${KT:-8192}" --ops "$ops" >> "$log" 2>&1
    echo "== $name round $round ($SECONDS s)"
    grep -E "^[a-z_]+ +T=|T=[0-9]+ B=|bwdp_chunk|bwdp_wy|bwdp_states|bwdp_dstates|linear_states" "$log" | cut -c1-72
  done
done
