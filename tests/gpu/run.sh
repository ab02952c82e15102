#!/bin/sh
# Runs the GPU checks of tests/gpu/cases.txt with the given attnc binary, from the repository root:
#   sh tests/gpu/run.sh ATTNC [NAME-PATTERN]
# Prints one line per case and a summary; exit 77 (skip) when there is no GPU, 1 if any case failed.
set -u
attnc=$1
pattern=${2:-.}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
fail=0 pass=0 skip=0
while IFS= read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  name=${line%%:*}
  args=${line#*: }
  echo "$name" | grep -qE "$pattern" || continue
  # shellcheck disable=SC2086
  out=$("$attnc" run $args 2>&1)
  rc=$?
  if [ $rc -eq 77 ]; then
    echo "$out" >&2
    exit 77
  fi
  if [ $rc -eq 0 ]; then pass=$((pass + 1)); status=pass; else fail=$((fail + 1)); status=FAIL; fi
  printf '%-24s %s | %s\n' "$name" "$status" "$(echo "$out" | tail -n 3 | tr '\n' ' ')"
done < tests/gpu/cases.txt
echo "gpu checks: $pass passed, $fail failed"
[ $fail -eq 0 ]
