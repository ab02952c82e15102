#!/bin/sh
# compile_grad.NAME: the backward of a spec.
#   sh tests/run_compile_grad.sh ATTNC SPEC yes   the backward compiles through NVRTC to PTX and to a cubin
#                                                 for sm_80 and sm_90a with no register spills, and the PTX
#                                                 holds the backward's entries (attnc_bwd_linear for a linear
#                                                 part, attnc_bwd_sm_rows and attnc_bwd_sm_kv for a softmax
#                                                 part, the adjoint and the sums always);
#   sh tests/run_compile_grad.sh ATTNC SPEC no    `attnc compile --grad` exits 1 with a located
#                                                 "backward not generated yet for ..." error (no crash).
# With ATTNC_BWD_SCHEDULE=sequential in the environment (compile_grad.NAME) the linear part's entry is
# attnc_bwd_linear; otherwise (compile_grad_parallel.NAME: parallel, or unset, the default, on specs where
# it applies) the chunk-parallel schedule's: attnc_bwdp_states, attnc_bwdp_dstates, attnc_bwdp_chunk (and
# attnc_bwdp_rows with a normaliser).
# Exit 77 (skip) when libnvrtc is not installed.
set -u
attnc=$1 spec=$2 want=$3
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
if [ "$want" = no ]; then
  "$attnc" compile --grad --emit cuda -o "$tmp/k.cu" "$spec" 2>"$tmp/err"
  rc=$?
  cat "$tmp/err"
  [ $rc -eq 1 ] || { echo "$spec: exit $rc, expected 1"; exit 1; }
  grep -q "^[^:]*:[0-9]*:[0-9]*: error: backward not generated yet for " "$tmp/err" || {
    echo "$spec: no located 'backward not generated yet' error"; exit 1; }
  exit 0
fi
for arch in sm_80 sm_90a; do
  if ! "$attnc" compile --grad --arch $arch --emit ptx -o "$tmp/k.ptx" "$spec" 2>"$tmp/err"; then
    if grep -q "libnvrtc" "$tmp/err"; then cat "$tmp/err"; exit 77; fi
    cat "$tmp/err"; exit 1
  fi
  entries="attnc_bwd_inputs attnc_bwd_sum_heads attnc_bwd_sum_param"
  if [ "${ATTNC_BWD_SCHEDULE:-}" != sequential ]; then
    entries="attnc_bwdp_states attnc_bwdp_dstates attnc_bwdp_chunk $entries"
    grep -q 'normalize' "$spec" && entries="attnc_bwdp_rows $entries"
  else
    grep -q '^ *linear *{' "$spec" && entries="attnc_bwd_linear $entries"
  fi
  grep -q '^ *softmax *{' "$spec" && entries="$entries attnc_bwd_sm_rows attnc_bwd_sm_kv"
  for entry in $entries; do
    grep -q "\.entry $entry" "$tmp/k.ptx" || { echo "$spec: no $entry entry in the PTX for $arch"; exit 1; }
  done
  "$attnc" compile --grad --arch $arch --emit cubin -o "$tmp/k.cubin" "$spec" 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
  report=$(tail -n 1 "$tmp/err")
  echo "$report"
  case "$report" in *" 0 bytes spilled"*) ;; *) echo "$spec: register spills for $arch"; exit 1 ;; esac
done
