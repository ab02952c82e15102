#!/bin/sh
# tests/run_golden.sh ATTNC DIR NAME: the golden diagnostic test NAME.
#
# Runs `attnc check NAME.attn` inside DIR (a bare file name, so the expected output holds no paths) and
# compares its stderr with DIR/NAME.err byte for byte, printing a diff on a mismatch.  The exit status
# must be 1 when NAME.err holds an error and 0 when it holds only warnings; stdout must be empty.
# A sanitizer report or a leak changes stderr and the status, so it fails the test too.
set -u
if [ $# -ne 3 ]; then
    echo "usage: run_golden.sh ATTNC DIR NAME" >&2
    exit 2
fi
attnc=$1
dir=$2
name=$3
cd "$dir" || exit 1
[ -f "$name.attn" ] && [ -f "$name.err" ] || { echo "golden $name: missing $name.attn or $name.err" >&2; exit 1; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
"$attnc" check "$name.attn" >"$tmp/out" 2>"$tmp/err"
status=$?
# Diagnostic headers start in column 1 ("FILE:L:C: error: " or "attnc: error: "); excerpts are indented.
if grep -q '^[^ ].*: error: ' "$name.err"; then expect=1; else expect=0; fi
fail=0
if ! cmp -s "$name.err" "$tmp/err"; then
    echo "golden $name: stderr differs from $name.err (- expected, + actual):"
    diff -u "$name.err" "$tmp/err" | sed '1,2d'
    fail=1
fi
if [ "$status" -ne "$expect" ]; then
    echo "golden $name: exit status $status, expected $expect"
    fail=1
fi
if [ -s "$tmp/out" ]; then
    echo "golden $name: unexpected output on stdout:"
    cat "$tmp/out"
    fail=1
fi
exit $fail
