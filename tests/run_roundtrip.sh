#!/bin/sh
# tests/run_roundtrip.sh ATTNC SPEC: a valid spec passes `attnc check` silently (exit 0, no diagnostic),
# and its IR survives the text round trip: `attnc ir SPEC` printed, read back with `attnc ir`, printed
# again, byte for byte the same.
set -u
if [ $# -ne 2 ]; then
    echo "usage: run_roundtrip.sh ATTNC SPEC" >&2
    exit 2
fi
attnc=$1
spec=$2
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
fail=0
"$attnc" check "$spec" 2>"$tmp/check.err"
status=$?
if [ "$status" -ne 0 ] || [ -s "$tmp/check.err" ]; then
    echo "roundtrip: 'attnc check $spec' exited $status with:"
    cat "$tmp/check.err"
    fail=1
fi
if ! "$attnc" ir "$spec" >"$tmp/first.ir" 2>"$tmp/first.err" || [ -s "$tmp/first.err" ]; then
    echo "roundtrip: 'attnc ir $spec' failed:"
    cat "$tmp/first.err"
    exit 1
fi
if ! head -n 1 "$tmp/first.ir" | grep -qx 'attnc-ir 1'; then
    echo "roundtrip: the IR of $spec does not start with 'attnc-ir 1'"
    exit 1
fi
if ! "$attnc" ir "$tmp/first.ir" >"$tmp/second.ir" 2>"$tmp/second.err" || [ -s "$tmp/second.err" ]; then
    echo "roundtrip: the printed IR of $spec does not read back:"
    cat "$tmp/second.err"
    cat "$tmp/first.ir"
    exit 1
fi
if ! cmp -s "$tmp/first.ir" "$tmp/second.ir"; then
    echo "roundtrip: the IR of $spec changes when read back and printed (- first, + second):"
    diff -u "$tmp/first.ir" "$tmp/second.ir" | sed '1,2d'
    fail=1
fi
exit $fail
