#!/bin/sh
# tools/cuda_cpu/run.sh: runs the backward's linear kernels of both schedules of a spec on the CPU and
# compares them (main.cpp): the parallel schedule's kernels checked as CUDA C++ code, with no GPU.
#   sh tools/cuda_cpu/run.sh ATTNC SPEC HEADS SEED BOUND LENS [DTYPE]
# e.g. sh tools/cuda_cpu/run.sh build-rel/attnc specs/mamba2.attn 2 1 2e-2 37,1,70
# CUDA_CPU_CXXFLAGS: more g++ flags, e.g. -fsanitize=thread: ThreadSanitizer then watches the emulated CTA's
# threads and their shared memory, and a race it reports fails the run (exit 66) whatever the gradients
# (ctest cuda_cpu.tsan.bwd_*); skipped (77) where g++ cannot link with the flags.
# CUDA_CPU_DIGEST=1: also a digest of every bit the parallel schedule wrote, to compare two builds' runs (a
# change meant to give the same bits; the error line has four digits); 2: of the tensors' gradients the
# parallel schedule returns, and dh0 (a change that moves a role's gradient from the adjoint to the chunk kernel).
# CUDA_CPU_PARAMS=1: also each parameter's gradient (every token's partials summed, as `attnc run --grad` compares
# it) of the parallel schedule against the sequential's; 2: and the sums themselves (tools/cuda_cpu/param_sums.py
# compares two runs'); with CUDA_CPU_INPUTS, each also against the file's float64 gradient.
# CUDA_CPU_INPUTS=PREFIX: the inputs, h0, dout and dhT from PREFIX.txt / PREFIX.bin instead of the harness's draws:
# bench/experiments/delta-rounding/export.c writes those of `attnc run --grad --tokens 1000 --batch 2
# --initial-state --seed S` with their float64 gradients (LENS 1000,1000; the known defect reproduces so).
set -eu
command -v g++ >/dev/null && command -v python3 >/dev/null || { echo "no g++ or python3: skipped"; exit 77; }
cxxflags=${CUDA_CPU_CXXFLAGS:-}
if [ -n "$cxxflags" ]; then
  # shellcheck disable=SC2086
  echo 'int main() { return 0; }' | g++ $cxxflags -x c++ - -o /dev/null 2>/dev/null ||
    { echo "g++ cannot build with '$cxxflags': skipped"; exit 77; }
fi
attnc=$1 spec=$2 heads=$3 seed=$4 bound=$5 lens=$6 dtype=${7:-}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -E "s/heads H = [0-9]+/heads H = $heads/" "$spec" > "$tmp/spec.attn"
dt=""
[ -n "$dtype" ] && dt="--dtype $dtype"
# shellcheck disable=SC2086
ATTNC_BWD_SCHEDULE=sequential "$attnc" compile "$tmp/spec.attn" --grad --emit cuda $dt -o "$tmp/seq.cu"
# shellcheck disable=SC2086
ATTNC_BWD_SCHEDULE=parallel "$attnc" compile "$tmp/spec.attn" --grad --emit cuda $dt -o "$tmp/par.cu"
grep -q "define ATTNC_BP 1" "$tmp/par.cu" || { echo "$spec: the parallel schedule does not apply"; exit 1; }
# CUDA_CPU_SEQ_ROUND=WHAT[:split]: the sequential unit with seq_round.py's roundings (what the parallel
# schedule's bf16 tiles cost a gradient; compare runs with CUDA_CPU_PARAMS=2 and param_sums.py)
if [ -n "${CUDA_CPU_SEQ_ROUND:-}" ]; then
  # shellcheck disable=SC2046
  python3 "$here/seq_round.py" "$tmp/seq.cu" $(echo "$CUDA_CPU_SEQ_ROUND" | tr ':' ' ') || exit 1
fi
python3 "$here/prepare.py" "$tmp/seq.cu" "$tmp/seq.h" seq
# CUDA_CPU_BREAK: a sed expression applied to the parallel unit first (to see the check fail); one that does
# not apply exits 0 here (apply_break.sh says why).
if [ -n "${CUDA_CPU_BREAK:-}" ]; then
  sh "$here/apply_break.sh" "$CUDA_CPU_BREAK" "$tmp/par.cu" || exit 0
fi
python3 "$here/prepare.py" "$tmp/par.cu" "$tmp/par.h" par
sh "$here/desc.sh" "$attnc" "$tmp/spec.attn" "$tmp/par.cu" > "$tmp/desc"
cp "$here"/prelude.h "$here"/host_util.h "$here"/harness.h "$here"/unit_seq.cpp "$here"/unit_par.cpp "$here"/main.cpp "$tmp/"
# (a broken unit that does not compile would make its negative control pass for nothing: exit 0, so it fails)
# shellcheck disable=SC2086
(cd "$tmp" && g++ -std=c++20 -O1 -pthread -w $cxxflags -o cuda_cpu unit_seq.cpp unit_par.cpp main.cpp) ||
  { [ -z "${CUDA_CPU_BREAK:-}" ] || { echo "CUDA_CPU_BREAK: the broken unit does not compile (a void control)"; exit 0; }; exit 1; }
"$tmp/cuda_cpu" "$tmp/desc" "$seed" "$bound" "$lens"
