#!/usr/bin/env python3
"""bench/kernel_times.py: where attnc's forward+backward time goes, kernel by kernel (a profile, not a test).

    python3 bench/kernel_times.py --lib build/libattnc.so [--ops simple_gla,gla] [--T 8192] [--reps 5]

--reps 0 runs one forward+backward and prints nothing, for a profiler outside (ncu -k regex:attnc ...).

Same shapes and inputs as bench/bench.py (B*T = 65536, H = 16, K = V = 128, bf16).  Per op and T: one
forward+backward as a warm-up, then REPS of them under torch.profiler (CUPTI records the kernels that
libattnc launches through the driver API on torch's stream); prints each kernel's mean time per call and
its share, largest first.  FLA is not needed.  Every kernel stays loaded until the end: freed after its op,
a module's functions could be named after a later op's kernels (the thirty-third session's list put gla's
forward, attnc_linear, under attnc_bwdp_chunk, whose count was 2, and gated_delta's under attnc_bwdp_dstates).
"""
import argparse
import collections
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def profile_op(at, op, T, reps, specs, keep):
    B = bench.TOKENS // T
    spec, infos = at.spec(os.path.join(specs, bench.OPS[op] + '.attn'))
    k = at.kernel(spec)[0]
    gk, why = at.grad_kernel(spec)
    x = bench.make_inputs(infos, B, T, 'cuda')
    out = torch.empty(B, T, bench.H, bench.D, device='cuda', dtype=torch.bfloat16)
    dout = torch.randn_like(out)
    # a training step's: the forward saves its chunk states for the backward where the pair can
    saved = at.saved_states(k, gk, B, T, 'cuda') if gk is not None else None
    fwd = at.forward_fn(k, x, out, saved=saved, saved_for=gk)
    calls = [fwd]
    if gk is not None:
        calls.append(at.backward_fn(gk, x, dout, [torch.empty_like(t) for t in x], saved=saved))
    else:
        print(f'{op}: no backward ({why})')

    def step():
        for c in calls:
            c()
    step()
    torch.cuda.synchronize()
    keep.append((k, gk))
    if reps == 0:   # one forward+backward and nothing else: for an outside profiler (ncu)
        return
    acts = [torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=acts) as prof:
        for _ in range(reps):
            step()
        torch.cuda.synchronize()
    per = collections.defaultdict(float)
    count = collections.Counter()
    for ev in prof.events():
        if ev.device_type == torch.autograd.DeviceType.CUDA and ev.name.startswith('attnc'):
            per[ev.name] += ev.device_time_total / 1e3
            count[ev.name] += 1
    total = sum(per.values()) / reps
    print(f'\n{op} T={T} B={B}: {total:.3f} ms of attnc kernels per forward+backward')
    for name, ms in sorted(per.items(), key=lambda kv: -kv[1]):
        print(f'  {ms / reps:8.3f} ms {100 * ms / reps / total:5.1f}%  x{count[name] // reps:<3d} {name}')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--lib', default='build/libattnc.so')
    ap.add_argument('--specs', default='specs')
    ap.add_argument('--ops', default=','.join(bench.OPS))
    ap.add_argument('--T', default='8192')
    ap.add_argument('--reps', type=int, default=5)
    a = ap.parse_args()
    at = bench.Attnc(a.lib)
    keep = []
    for T in [int(t) for t in a.T.split(',')]:
        for op in a.ops.split(','):
            profile_op(at, op, T, a.reps, a.specs, keep)
    for k, gk in keep:
        at.lib.attnc_kernel_free(k)
        if gk is not None:
            at.lib.attnc_grad_kernel_free(gk)


if __name__ == '__main__':
    main()
