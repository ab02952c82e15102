#!/bin/sh
# Runs the GPU checks of tests/gpu/cases.txt with the given attnc binary, from the repository root:
#   sh tests/gpu/run.sh ATTNC [NAME-PATTERN [JOBS]]
# Prints one line per case (in the file's order) and a summary; exit 77 (skip) when there is no GPU, 1 if
# any case failed.  JOBS > 1 runs that many cases at once (the float64 references run on the CPU while
# other cases use the GPU), each with a kernel cache directory of its own.
set -u
if [ "${1:-}" = "--one" ]; then   # internal: one case file -> FILE.out, FILE.rc
  line=$(cat "$3")
  # shellcheck disable=SC2086
  out=$(eval "$4" "$2" run ${line#*: } 2>&1)
  echo $? > "$3.rc"
  printf '%s\n' "$out" > "$3.out"
  exit 0
fi
attnc=$1
pattern=${2:-.}
jobs=${3:-1}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
while IFS= read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  echo "${line%%:*}" | grep -qE "$pattern" || continue
  n=$((n + 1))
  printf '%s\n' "$line" > "$tmp/$(printf '%04d' $n).case"
done < tests/gpu/cases.txt
[ "$n" -gt 0 ] || { echo "gpu checks: no case matches '$pattern'"; exit 1; }
if [ "$jobs" -gt 1 ]; then
  ls "$tmp"/*.case | xargs -P "$jobs" -I{} sh "$0" --one "$attnc" {} "ATTNC_CACHE_DIR={}.cache"
else
  for c in "$tmp"/*.case; do sh "$0" --one "$attnc" "$c" ""; done
fi
fail=0 pass=0
for c in "$tmp"/*.case; do
  rc=$(cat "$c.rc")
  if [ "$rc" -eq 77 ]; then
    cat "$c.out" >&2
    exit 77
  fi
  if [ "$rc" -eq 0 ]; then pass=$((pass + 1)); status=pass; else fail=$((fail + 1)); status=FAIL; fi
  line=$(cat "$c")
  # a failed case shows its failing checks (they may be above the last three lines)
  shown=$(tail -n 3 "$c.out")
  [ "$status" = FAIL ] && shown=$( (grep 'FAIL' "$c.out" | head -n 4; tail -n 1 "$c.out") | uniq)
  printf '%-24s %s | %s\n' "${line%%:*}" "$status" "$(printf '%s\n' "$shown" | tr '\n' ' ')"
done
echo "gpu checks: $pass passed, $fail failed"
[ $fail -eq 0 ]
