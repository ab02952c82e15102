#!/bin/sh
# tools/cuda_cpu/apply_break.sh: a negative control's sed expression (-E) applied to a generated unit in place.
#   sh tools/cuda_cpu/apply_break.sh EXPR FILE
# Exit 0 when the expression changed the file; else (a bad expression, or no match) a message and exit 1, on
# which the caller exits 0, so that the WILL_FAIL test of a void control fails rather than passing on an error
# of its own (run.sh's CUDA_CPU_BREAK, fwd_run.sh's FWD_CPU_BREAK).
set -u
expr=$1 file=$2
cp "$file" "$file.orig"
if ! sed -i -E "$expr" "$file" || cmp -s "$file" "$file.orig"; then
  echo "break '$expr' changed nothing in $(basename "$file"): the negative control is void"
  exit 1
fi
