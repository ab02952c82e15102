#!/usr/bin/env python3
"""bench/jit_tiers.py: the tiered JIT's two kinds of kernel side by side (a benchmark, not a test).

    python3 bench/jit_tiers.py --lib build/libattnc.so [--ops simple_gla,gla] [--T 8192,2048,32768]

For each op of bench/bench.py (same specs, shapes and inputs: B*T = 65536, H = 16, K = V = 128, bf16) and
each T: the forward compiled quick (ATTNC_JIT_QUICK: NVRTC --Ofast-compile=mid, what the default tiered
JIT runs until the optimised kernel is in) and optimised (ATTNC_JIT_OPTIMIZED), each from an empty kernel
cache and an empty CUDA compute cache: attnc_kernel_new's time, the forward's median time (CUDA events),
and whether the two outputs have the same bits (else their relative difference).  The schedule is the
one AUTO takes for the shape.
"""
import argparse
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--lib', default='build/libattnc.so')
    ap.add_argument('--specs', default='specs')
    ap.add_argument('--ops', default=','.join(bench.OPS))
    ap.add_argument('--T', default='8192')
    a = ap.parse_args()
    os.environ.setdefault('CUDA_CACHE_PATH', tempfile.mkdtemp(prefix='cuda-compute-cache-'))
    at = bench.Attnc(a.lib)
    torch.manual_seed(0)
    print(f'# GPU {torch.cuda.get_device_name()}; attnc via {a.lib}; kernel_new ms from an empty cache; forward ms')
    print('| op | T | kernel_new quick | kernel_new optimised | fwd quick | fwd optimised | quick / optimised | same bits |')
    print('|---|---|---|---|---|---|---|---|')
    for op in a.ops.split(','):
        spec, infos = at.spec(os.path.join(a.specs, bench.OPS[op] + '.attn'))
        made = {}
        for jit in (bench.JIT_QUICK, bench.JIT_OPTIMIZED):
            os.environ['ATTNC_CACHE_DIR'] = tempfile.mkdtemp(prefix='attnc-cache-')
            k, info, ms = at.kernel(spec, jit=jit)
            if bool(info.quick) != (jit == bench.JIT_QUICK):
                sys.exit(f'{op}: jit mode {jit} gave info.quick {info.quick}')
            made[jit] = (k, ms)
        for T in [int(t) for t in a.T.split(',')]:
            B = bench.TOKENS // T
            x = bench.make_inputs(infos, B, T, 'cuda')
            outs, times = {}, {}
            for jit, (k, _) in made.items():
                out = torch.full((B, T, bench.H, bench.D), float('nan'), device='cuda', dtype=torch.bfloat16)
                fwd = at.forward_fn(k, x, out)
                fwd()
                torch.cuda.synchronize()
                outs[jit] = out.clone()
                times[jit] = bench.bench_ms(fwd)
            q, o = outs[bench.JIT_QUICK], outs[bench.JIT_OPTIMIZED]
            same = torch.equal(q.view(torch.int16), o.view(torch.int16))
            diff = 'yes' if same else f'no ({bench.rel(q, o):.2e})'
            if not torch.isfinite(q).all() or not torch.isfinite(o).all():
                diff += ', NOT FINITE'
            tq, to = times[bench.JIT_QUICK], times[bench.JIT_OPTIMIZED]
            print(f'| {op} | {T} | {made[bench.JIT_QUICK][1]:.0f} | {made[bench.JIT_OPTIMIZED][1]:.0f} | {tq:.3f} | '
                  f'{to:.3f} | {tq / to:.2f} | {diff} |', flush=True)
        for k, _ in made.values():
            at.lib.attnc_kernel_free(k)


if __name__ == '__main__':
    main()
