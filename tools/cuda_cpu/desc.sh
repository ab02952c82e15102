#!/bin/sh
# tools/cuda_cpu/desc.sh: the tensors of a spec, in declaration order, one line each
# "name dtype token|head heads len lo hi", from the IR's shapes and a generated unit's parameter comments;
# lo hi: the range the spec declares (`in [lo, hi]`, drawn uniformly as `attnc run` draws it), else "- -".
#   sh tools/cuda_cpu/desc.sh ATTNC SPEC UNIT.cu
set -eu
attnc=$1 spec=$2 unit=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$attnc" ir "$spec" | awk '
  /^heads / { n[$2] = $4 }
  /^(input|param) .* in \[/ { r = $0; sub(/.* in \[/, "", r); sub(/\].*/, "", r); gsub(/,/, " ", r); range[$2] = r }
  /^%[0-9]+ = (input|param) / { name = $4; kind = $6; h = $7; len = $8
    print name, kind, (h ~ /^[0-9]+$/ ? h : n[h]), len, (name in range ? range[name] : "- -") }' > "$tmp/shapes"
grep -E '^//   in\[[0-9]+\] = ' "$unit" | sed -E 's#^//   in\[[0-9]+\] = ##' > "$tmp/dtypes"
awk 'NR == FNR { dt[$1] = $2; next } { print $1, dt[$1], $2, $3, $4, $5, $6 }' "$tmp/dtypes" "$tmp/shapes"
