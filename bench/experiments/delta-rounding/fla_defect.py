"""bench/experiments/delta-rounding/fla_defect.py: FLA's chunk_gated_delta_rule (use_qk_l2norm_in_kernel) on
the inputs export.c wrote (2 sequences x 1000 tokens, 4 heads, K = V = 128), forward and backward with the
same upstream gradients (dout, dhT); every gradient against the exact float64 one, as attnc run --grad
compares them (Frobenius norm of the difference over that of the reference).  The gate follows the spec:
g = -exp(A_log) softplus(a + dt_bias) and beta = sigmoid(b) in fp32 autograd (FLA's own gate kernel would
round the same way or worse).
usage: python3 fla_defect.py PREFIX   (PREFIX.txt, PREFIX.bin from export.c)"""
import importlib
import sys

import numpy as np
import torch
import torch.nn.functional as F


def lift_640_guard():
    # FLA 0.5.2 refuses the gated backward on Hopper with Triton below 3.7.1 (its issue #640); the benchmark
    # (fla_bench.py) lifts the guard the same way and checks FLA's results.
    co = importlib.import_module('fla.ops.common.chunk_o')
    if co.IS_NVIDIA_HOPPER and co.TRITON_ABOVE_3_4_0 and not co.TRITON_ABOVE_3_7_1:
        co.TRITON_ABOVE_3_7_1 = True


def main():
    prefix = sys.argv[1]
    arrays, off = {}, 0
    raw = np.fromfile(prefix + '.bin', dtype=np.float32)
    for line in open(prefix + '.txt'):
        name, n = line.split()
        arrays[name] = raw[off:off + int(n)].astype(np.float64)
        off += int(n)
    lift_640_guard()
    from fla.ops.gated_delta_rule import chunk_gated_delta_rule
    B, T, H, K, V = 2, 1000, 4, 128, 128
    dev = 'cuda'

    def leaf(name, shape, dtype):
        return torch.tensor(arrays[name].reshape(shape), dtype=dtype, device=dev).requires_grad_()

    q, k = leaf('q', (B, T, H, K), torch.bfloat16), leaf('k', (B, T, H, K), torch.bfloat16)
    v = leaf('v', (B, T, H, V), torch.bfloat16)
    a, b = leaf('a', (B, T, H), torch.bfloat16), leaf('b', (B, T, H), torch.bfloat16)
    A_log, dt_bias = leaf('A_log', (H,), torch.float32), leaf('dt_bias', (H,), torch.float32)
    h0 = leaf('h0', (B, H, K, V), torch.float32)
    dout = torch.tensor(arrays['dout'].reshape(B, T, H, V), dtype=torch.float32, device=dev)
    dhT = torch.tensor(arrays['dhT'].reshape(B, H, K, V), dtype=torch.float32, device=dev)
    g = -torch.exp(A_log) * F.softplus(a.float() + dt_bias)
    beta = torch.sigmoid(b.float())
    o, hT = chunk_gated_delta_rule(q, k, v, g, beta, scale=K ** -0.5, initial_state=h0, output_final_state=True,
                                   use_qk_l2norm_in_kernel=True)
    loss = (o.float() * dout).sum() + (hT.float() * dhT).sum()
    loss.backward()
    got = {'dq': q, 'dk': k, 'dv': v, 'da': a, 'db': b, 'dA_log': A_log, 'ddt_bias': dt_bias, 'dh0': h0}
    worst = 0.0
    for name, t in got.items():
        x = t.grad.double().cpu().numpy().ravel()
        want = arrays[name]
        err = np.linalg.norm(x - want) / np.linalg.norm(want)
        worst = max(worst, err)
        print(f'  {name:<10} rel err {err:.3e}{"" if err <= 2e-2 else "  > 2e-2"}')
    print(f'FLA {prefix}: worst {worst:.3e}')


if __name__ == '__main__':
    main()
