#!/bin/sh
# tools/cuda_cpu/same_digest.sh: run.sh twice on the same arguments, the second time with the environment
# assignment VAR=VALUE, each within its bound, and the digests of every bit the parallel schedule wrote
# (CUDA_CPU_DIGEST=1) the same: a path meant to give the same bits, e.g. CUDA_CPU_SAVED=1, whose saved l2norm
# factors are formed by the code that forms them where none were saved.
#   sh tools/cuda_cpu/same_digest.sh VAR=VALUE ATTNC SPEC HEADS SEED BOUND LENS [DTYPE]
set -u
assign=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
first=$(CUDA_CPU_DIGEST=1 sh "$here/run.sh" "$@")
rc=$?
echo "$first" | tail -2
[ $rc -eq 0 ] || exit $rc
second=$(env "$assign" CUDA_CPU_DIGEST=1 sh "$here/run.sh" "$@")
rc=$?
echo "$assign:"
echo "$second" | tail -2
[ $rc -eq 0 ] || exit $rc
a=$(echo "$first" | awk '/^digest /{print $2}')
b=$(echo "$second" | awk '/^digest /{print $2}')
[ -n "$a" ] && [ "$a" = "$b" ] || { echo "digests differ: '$a' and, with $assign, '$b'"; exit 1; }
echo "the same digest $a"
