#!/usr/bin/env python3
"""bench/phase_times.py: each kernel of one forward, in launch order, per schedule (a profile, not a test).

    python3 bench/phase_times.py --lib build/libattnc.so [--ops delta_rule,gated_delta] [--T 8192,32768]
                                 [--schedules 1,2]

Same shapes and inputs as bench/bench.py (B*T = 65536, H = 16, K = V = 128, bf16).  For each op, T and forced
schedule (1 sequential, 2 materialized, 3 grouped; attnc_schedule): three forwards as a warm-up, three under
torch.profiler, then each kernel's mean time over those three in ms.  The phases of one kernel show up as
launches of the same name; the split delta rule's three are kernels of their own (attnc_linear_wy,
attnc_linear_states, attnc_linear_out).  FLA is not needed.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--lib', default='build/libattnc.so')
    ap.add_argument('--specs', default='specs')
    ap.add_argument('--ops', default='delta_rule,gated_delta')
    ap.add_argument('--T', default='8192,32768')
    ap.add_argument('--schedules', default='1,2')
    a = ap.parse_args()
    at = bench.Attnc(a.lib)
    for op in a.ops.split(','):
        spec, infos = at.spec(os.path.join(a.specs, bench.OPS[op] + '.attn'))
        for T in map(int, a.T.split(',')):
            B = bench.TOKENS // T
            k = at.kernel(spec)[0]
            x = bench.make_inputs(infos, B, T, 'cuda')
            out = torch.empty(B, T, bench.H, bench.D, device='cuda', dtype=torch.bfloat16)
            for sched in map(int, a.schedules.split(',')):
                fn = at.forward_fn(k, x, out, schedule=sched)
                for _ in range(3):
                    fn()
                torch.cuda.synchronize()
                with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                    for _ in range(3):
                        fn()
                    torch.cuda.synchronize()
                evs = [e for e in prof.events()
                       if e.device_type == torch.autograd.DeviceType.CUDA and e.name.startswith('attnc')]
                n = len(evs) // 3   # each kernel's mean over the three forwards, in launch order
                print(f'{op} T={T} schedule={sched}: ' +
                      ', '.join(f'{evs[i].name} {sum(evs[i + j * n].device_time_total for j in range(3)) / 3e3:.3f}'
                                for i in range(n)))
            at.lib.attnc_kernel_free(k)


if __name__ == '__main__':
    main()
