#!/bin/sh
# Runs the float64 reference on one spec: packed sequences of lengths 37, 1, 70 and 9 (when the spec
# has document boundaries; else two of 59), chunk sizes 1, 13, 16 and 64, and a random initial state
# when the spec takes one.  `attnc ref` exits 1 unless the recurrent and chunkwise evaluations agree
# to 1e-10 (relative), outputs and final states.
# usage: run_ref.sh ATTNC SPEC
set -eu
attnc=$1
spec=$2
if grep -q 'document' "$spec"; then shape="--varlen 37,1,70,9"; else shape="--tokens 59 --batch 2"; fi
h0=""
grep -q 'state[^;]*initial' "$spec" && h0="--initial-state"
exec "$attnc" ref "$spec" $shape --chunks 1,13,16,64 --seed 7 $h0
