#!/usr/bin/env python3
"""bench/fla_param_grads.py: how close FLA's bf16 Gated DeltaNet comes to float64 on the gradients that sum
every token's (A_log's, dt_bias's), on the shape and input distribution of attnc's GPU case
`defect_grad_dA_log_gated_deltanet` (tests/gpu/cases.txt: T = 1000, B = 2, H = 4, K = V = 128, an initial
state; every input N(0, 1) as reference/ref_draw.c draws them, h0 0.5 N(0, 1), dO and dhT N(0, 1)), over
many seeds, with the metric `attnc run --grad` uses (||g - g64|| / ||g64||).  FLA's chunk_gated_delta_rule
(use_qk_l2norm_in_kernel) on the decay -exp(A_log) softplus(a + dt_bias) and beta = sigmoid(b), formed in
fp32 by torch as bench.py forms them; the float64 side is the recurrence itself under torch's autograd,
  S_t = e^{g_t} (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,  o_t = S_t^T q_t,
with q and k through x / sqrt(x . x + 1e-6) (q then times K^-0.5), on the same bf16-rounded inputs.
usage: python3 bench/fla_param_grads.py [--seeds N] [--first S] [--tokens T] [--fla-bench PATH/fla_bench.py]
--fla-bench: FLA imported through fla_bench.py's helpers, as bench.py imports it (the shims for the GPU machine's
missing packages, the Hopper guard of FLA #640 lifted, a shortened autotune); without it `import fla`.
Each seed's line says how long the float64 side and each FLA call took (the first FLA call autotunes)."""
import argparse
import math
import os
import sys
import time

import torch
import torch.nn.functional as F


def draw(seed, B, T, H, K, V, dev):
    g = torch.Generator(device='cpu').manual_seed(seed)
    n = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)
    x = dict(q=n(B, T, H, K), k=n(B, T, H, K), v=n(B, T, H, V), a=n(B, T, H), b=n(B, T, H))
    x = {name: t.to(torch.bfloat16) for name, t in x.items()}
    x.update(A_log=n(H).float(), dt_bias=n(H).float(), h0=(0.5 * n(B, H, K, V)).float())
    up = dict(do=n(B, T, H, V).to(torch.bfloat16), dht=n(B, H, K, V).float())
    return {k: t.to(dev) for k, t in x.items()}, {k: t.to(dev) for k, t in up.items()}


def l2n(x):
    return x / torch.sqrt((x * x).sum(-1, keepdim=True) + 1e-6)


def ref64(x, up):
    """Every gradient in float64, through the recurrence."""
    L = {k: t.detach().double().requires_grad_(True) for k, t in x.items()}
    K = L['q'].shape[-1]
    q, k = l2n(L['q']) * K ** -0.5, l2n(L['k'])
    g = -torch.exp(L['A_log']) * F.softplus(L['a'] + L['dt_bias'])
    beta = torch.sigmoid(L['b'])
    S, outs = L['h0'], []
    for t in range(q.shape[1]):
        kt, bt = k[:, t], beta[:, t, :, None]
        S = S * torch.exp(g[:, t])[..., None, None]
        u = bt * (L['v'][:, t] - torch.einsum('bhkv,bhk->bhv', S, kt))
        S = S + kt[..., :, None] * u[..., None, :]
        outs.append(torch.einsum('bhkv,bhk->bhv', S, q[:, t]))
    o = torch.stack(outs, 1)
    loss = (o * up['do'].double()).sum() + (S * up['dht'].double()).sum()
    loss.backward()
    return {n: t.grad for n, t in L.items()}


CHUNK_GATED_DELTA_RULE = None


def fla(x, up, in_kernel):
    """in_kernel: FLA forms the decay itself (use_gate_in_kernel with A_log and dt_bias), else torch does."""
    chunk_gated_delta_rule = CHUNK_GATED_DELTA_RULE
    L = {k: t.detach().clone().requires_grad_(True) for k, t in x.items()}
    K = L['q'].shape[-1]
    beta = torch.sigmoid(L['b'].float())
    if in_kernel:
        extra = dict(use_gate_in_kernel=True, A_log=L['A_log'], dt_bias=L['dt_bias'])
        g = L['a']
    else:
        extra = {}
        g = -torch.exp(L['A_log']) * F.softplus(L['a'].float() + L['dt_bias'])
    o, ht = chunk_gated_delta_rule(L['q'], L['k'], L['v'], g, beta, scale=K ** -0.5, initial_state=L['h0'],
                                   output_final_state=True, use_qk_l2norm_in_kernel=True, **extra)
    loss = (o.float() * up['do'].float()).sum() + (ht.float() * up['dht']).sum()
    loss.backward()
    return {n: t.grad for n, t in L.items()}


def rel(got, want):
    if got is None:   # (a gradient FLA did not return)
        return math.nan
    got = got.double()
    if not torch.isfinite(got).all():
        return math.inf
    return (torch.linalg.vector_norm(got - want) / torch.linalg.vector_norm(want)).item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--seeds', type=int, default=16)
    ap.add_argument('--first', type=int, default=0)
    ap.add_argument('--tokens', type=int, default=1000)
    ap.add_argument('--fla-bench', default=None)
    a = ap.parse_args()
    dev = 'cuda'
    global CHUNK_GATED_DELTA_RULE
    if a.fla_bench:
        sys.path.insert(0, os.path.dirname(os.path.abspath(a.fla_bench)))
        import fla_bench as fb
        fb.install_shims()
        fb.import_fla()
        print('FLA #640:', fb.handle_640_guard(), flush=True)
        funcs, errs = fb.load_fla_ops(['gated_delta'])
        if 'gated_delta' not in funcs:
            print('FLA gated_delta: %s' % errs.get('gated_delta'), flush=True)
            return 1
        for note in fb.patch_autotuner():
            print('FLA autotune: %s' % note, flush=True)
        CHUNK_GATED_DELTA_RULE = funcs['gated_delta']
    else:
        from fla.ops.gated_delta_rule import chunk_gated_delta_rule
        CHUNK_GATED_DELTA_RULE = chunk_gated_delta_rule
    names = ['q', 'k', 'v', 'a', 'b', 'A_log', 'dt_bias', 'h0']
    modes = ('torch', 'kernel')   # who forms the decay: torch (as bench.py), or FLA's kernel
    print('seed gate   ' + ' '.join('%9s' % n for n in names))
    worst = {(m, n): 0.0 for m in modes for n in names}
    over = {m: 0 for m in modes}
    for s in range(a.first, a.first + a.seeds):
        x, up = draw(s, 2, a.tokens, 4, 128, 128, dev)
        t0 = time.time()
        want = ref64(x, up)
        print('%4d float64 %.1f s' % (s, time.time() - t0), flush=True)
        for m in modes:
            t0 = time.time()
            try:
                got = fla(x, up, m == 'kernel')
            except Exception as ex:   # (an FLA without the in-kernel gate)
                print('%4d %-6s %s: %s' % (s, m, type(ex).__name__, ex), flush=True)
                continue
            torch.cuda.synchronize()
            print('%4d %-6s FLA %.1f s' % (s, m, time.time() - t0), flush=True)
            e = {n: rel(got[n], want[n]) for n in names}
            for n in names:
                worst[m, n] = max(worst[m, n], e[n])
            over[m] += any(not v <= 2e-2 for v in e.values())
            print('%4d %-6s ' % (s, m) + ' '.join('%9.3e' % e[n] for n in names), flush=True)
    for m in modes:
        print('worst (%s gate) ' % m + ' '.join('%s %.3e' % (n, worst[m, n]) for n in names))
        print('FLA (%s gate): %d of %d seeds with a gradient above 2e-2' % (m, over[m], a.seeds))
    return 0


if __name__ == '__main__':
    sys.exit(main())
