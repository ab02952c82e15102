#!/bin/sh
# compile.NAME: the spec compiles through NVRTC to PTX and to a cubin (ptxas) for sm_80 and sm_90a, with
# no register spills and no stack frame (over all of its kernels), and the PTX holds the entry of each part
# the spec has; the unit of its warp-specialised walk too where it has one (sm_90a).
# Exit 77 (skip) when libnvrtc is not installed.
#   sh tests/run_compile.sh ATTNC SPEC
set -u
attnc=$1 spec=$2
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
for arch in sm_80 sm_90a; do
  if ! "$attnc" compile --arch $arch --emit ptx -o "$tmp/k.ptx" "$spec" 2>"$tmp/err"; then
    if grep -q "libnvrtc" "$tmp/err"; then cat "$tmp/err"; exit 77; fi
    cat "$tmp/err"; exit 1
  fi
  for part in linear softmax; do
    if grep -q "^ *$part *{" "$spec" && ! grep -q "\.entry attnc_$part" "$tmp/k.ptx"; then
      echo "$spec: no attnc_$part entry in the PTX for $arch"; exit 1
    fi
  done
  "$attnc" compile --arch $arch --emit cubin -o "$tmp/k.cubin" "$spec" 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
  report=$(tail -n 1 "$tmp/err")
  echo "$report"
  case "$report" in *" 0 bytes spilled"*) ;; *) echo "$spec: register spills for $arch"; exit 1 ;; esac
  # nor local memory of any other kind (an array indexed at run time: akk_tiles' B fragment once)
  case "$report" in *" 0 bytes of stack frame") ;; *) echo "$spec: a stack frame for $arch"; exit 1 ;; esac
done
# The warp-specialised walk's unit (what the JIT runs on sm_90a where the plan has one): no spills, no stack
# (the delta rule's register split is chosen per unit so: codegen/linear_ws_kernel.cuh's WS_DELTA_PRODUCER_REGS).
if "$attnc" compile --emit cuda "$spec" 2>/dev/null | grep -q "^#define ATTNC_WS_OK 1"; then
  "$attnc" compile --arch sm_90a --warp-specialized --emit cubin -o "$tmp/w.cubin" "$spec" 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
  report=$(tail -n 1 "$tmp/err")
  echo "warp-specialized: $report"
  case "$report" in *" 0 bytes spilled, 0 bytes of stack frame") ;; *) echo "$spec: spills or a stack frame in the warp-specialised walk"; exit 1 ;; esac
fi
