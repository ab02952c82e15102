#!/bin/bash
# bench/ncu_profile.sh: ncu of attnc kernels with line information, on the GPU, from the repository root:
#   bash bench/ncu_profile.sh LIBDIR "OP KERNEL_REGEX [T]" ...      e.g. bash bench/ncu_profile.sh build "gla attnc_linear"
# For each pair: one forward+backward of OP (bench/kernel_times.py --reps 0, the benchmark's shape) under
# ncu --set full, the first launch whose name matches the regex; writes $OUT/OP_KERNEL.csv (per SASS
# instruction, with its source line: bench/ncu_lines.py reads it) and prints the headline metrics.
set -u
lib=$1
shift
out=${OUT:-device-out}
mkdir -p "$out"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export ATTNC_LINEINFO=1 ATTNC_CACHE_DIR=$(mktemp -d)
ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
SECONDS=0
for cfg in "$@"; do
  set -- $cfg
  op=$1 kernel=$2 T=${3:-8192}
  rep=$(mktemp -d)/rep
  timeout 200 "$ncu" --set full --import-source yes -k "regex:$kernel" -c 1 -f -o "$rep" \
      python3 bench/kernel_times.py --lib "$lib/libattnc.so" --ops "$op" --T "$T" --reps 0 > "$rep.log" 2>&1
  echo "== $op $kernel T=$T ($SECONDS s)"
  tail -1 "$rep.log"
  "$ncu" -i "$rep.ncu-rep" --page source --csv --print-source cuda,sass > "$out/${op}_${kernel//[^A-Za-z0-9_]/}.csv" 2>&1
  "$ncu" -i "$rep.ncu-rep" --page details --csv 2>&1 |
    grep -E '"(Duration|Registers Per Thread|No Eligible|Grid Size|Dynamic Shared Memory Per Block|Executed Ipc Active|DRAM Throughput|Memory Throughput)"' |
    awk -F'","' '{print "  " $13 ": " $15}' | tr -d '"'
done
