#!/bin/sh
# Runs the float64 backward of one spec against central finite differences of its recurrent forward
# (`attnc ref --grad`): by default two sequences of 37 tokens, a random initial state when the spec takes
# one, seed 7; extra arguments replace the sequence options (e.g. --varlen 23,1,13).  Passes when attnc
# exits 0 AND its last line is max_rel_err=X with X a number <= 1e-6: the exit status alone would not
# notice a run that stopped printing its measure, and the line alone would not notice a crash after it.
# usage: run_refgrad.sh ATTNC SPEC [SEQUENCE OPTIONS...]
set -eu
attnc=$1
spec=$2
shift 2
[ $# -gt 0 ] || set -- --tokens 37 --batch 2
h0=""
grep -q 'state[^;]*initial' "$spec" && h0="--initial-state"
rc=0
out=$("$attnc" ref --grad "$spec" "$@" --seed 7 $h0) || rc=$?
printf '%s\n' "$out"
if [ "$rc" -ne 0 ]; then
    echo "run_refgrad: attnc exited $rc" >&2
    exit 1
fi
last=$(printf '%s\n' "$out" | tail -n 1)
if ! printf '%s\n' "$last" | grep -Eq '^max_rel_err=[0-9]\.[0-9]+e[-+][0-9]+$'; then
    echo "run_refgrad: the last line is not max_rel_err=NUMBER: '$last'" >&2
    exit 1
fi
if ! awk -v x="${last#max_rel_err=}" 'BEGIN { exit !(x + 0 <= 1e-6) }'; then
    echo "run_refgrad: ${last} exceeds 1e-6" >&2
    exit 1
fi
