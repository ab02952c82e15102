#!/bin/sh
# roundtrip.plan.NAME: after every pass, the IR text (with its plan lines) reads back and prints identically.
#   sh tests/run_roundtrip_plan.sh ATTNC SPEC
set -u
attnc=$1 spec=$2
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
for pass in chunk tile fuse schedule; do
  "$attnc" ir --after $pass "$spec" >"$tmp/a.ir" || { echo "$spec: lowering through '$pass' failed"; exit 1; }
  grep -q "^plan " "$tmp/a.ir" || { echo "$spec: no plan lines after '$pass'"; exit 1; }
  "$attnc" ir "$tmp/a.ir" >"$tmp/b.ir" || { echo "$spec: the IR after '$pass' does not read back"; exit 1; }
  cmp -s "$tmp/a.ir" "$tmp/b.ir" || { echo "$spec: the IR after '$pass' prints differently"; diff "$tmp/a.ir" "$tmp/b.ir"; exit 1; }
done
