#!/usr/bin/env python3
"""bench/fla_kernel_times.py: where FLA's forward+backward time goes, kernel by kernel (a profile, not a test).

    PYTHONPATH=<fla wheel dir> python3 bench/fla_kernel_times.py --fla-bench fla_bench.py [--ops ...] [--T 8192] [--reps 5]

The counterpart of bench/kernel_times.py for the peer: the same shapes and input generators as fla_bench.py
(B*T = 65536, H = 16, K = V = 128, bf16), FLA imported through fla_bench.py's shims (the #640 guard lifted as
there).  Per op and T: Triton's autotuning is done by fla_bench.py's parallel warm-up and one forward+backward,
then REPS forward+backward steps run under torch.profiler, and each kernel's mean time per step and its share
are printed, largest first, with the step's kernel total.  Setting BENCH_PAR_WARM=0 skips the warm-up (when
Triton's cache is already warm).
"""
import argparse
import collections
import importlib.util
import os
import sys


def load_fla_bench(path):
    spec = importlib.util.spec_from_file_location('fla_bench', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def profile_op(torch, make, call, B, T, reps):
    x = make(B, T)
    leaves = [t for t in x.values() if isinstance(t, torch.Tensor) and t.requires_grad]
    o = call(x)
    dout = torch.randn_like(o)

    def step():
        for t in leaves:
            t.grad = None
        call(x).backward(dout)
    step()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            step()
        torch.cuda.synchronize()
    per = collections.defaultdict(float)
    for ev in prof.events():
        if ev.device_type == torch.autograd.DeviceType.CUDA:
            per[ev.name] += ev.device_time_total / 1e3
    return {name: ms / reps for name, ms in per.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--fla-bench', required=True)
    ap.add_argument('--ops', default='simple_gla,simple_gla_gam,gla,delta_rule,gated_delta')
    ap.add_argument('--T', default='8192')
    ap.add_argument('--reps', type=int, default=5)
    args = ap.parse_args()
    ops = [op for op in args.ops.split(',') if op]
    Ts = [int(t) for t in args.T.split(',') if t]
    os.environ.setdefault('BENCH_T', str(Ts[0]))
    fb = load_fla_bench(args.fla_bench)
    fb.install_shims()
    import torch
    import torch.nn.functional as F
    fb.import_fla()
    funcs, errors = fb.load_fla_ops(ops)
    for op, why in errors.items():
        print(f'{op}: FLA import failed: {why}')
    print(fb.handle_640_guard())
    if os.environ.get('BENCH_PAR_WARM', '1') != '0':
        fb.parallel_warm([op for op in ops if op in funcs])
    specs, _, _ = fb.build_specs(torch, F, funcs)
    for op in ops:
        if op not in specs:
            continue
        _, make, call = specs[op]
        for T in Ts:
            per = profile_op(torch, make, call, fb.TOKENS // T, T, args.reps)
            total = sum(per.values())
            print(f'{op} T={T} kernels {total:.3f} ms per forward+backward')
            for name, ms in sorted(per.items(), key=lambda kv: -kv[1]):
                if ms >= 0.005:
                    print(f'  {ms:8.3f} ms {100 * ms / total:5.1f} %  {name[:90]}')
            sys.stdout.flush()
    return 0


if __name__ == '__main__':
    sys.exit(main())
