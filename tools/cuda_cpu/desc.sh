#!/bin/sh
# tools/cuda_cpu/desc.sh: the tensors of a spec, in declaration order, one line each
# "name dtype token|head heads len", from the IR's shapes and a generated unit's parameter comments.
#   sh tools/cuda_cpu/desc.sh ATTNC SPEC UNIT.cu
set -eu
attnc=$1 spec=$2 unit=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$attnc" ir "$spec" | awk '
  /^heads / { n[$2] = $4 }
  /^%[0-9]+ = (input|param) / { name = $4; kind = $6; h = $7; len = $8
    print name, kind, (h ~ /^[0-9]+$/ ? h : n[h]), len }' > "$tmp/shapes"
grep -E '^//   in\[[0-9]+\] = ' "$unit" | sed -E 's#^//   in\[[0-9]+\] = ##' > "$tmp/dtypes"
awk 'NR == FNR { dt[$1] = $2; next } { print $1, dt[$1], $2, $3, $4 }' "$tmp/dtypes" "$tmp/shapes"
