#!/usr/bin/env python3
"""bench/bench.py: attnc's generated forward kernels against FLA and torch SDPA (a benchmark, not a test).

    PYTHONPATH=<fla-core on the path> python3 bench/bench.py --lib build/libattnc.so [--fla-bench path/fla_bench.py]

Shapes (issue 3): B*T = 65536 tokens, H = 16, K = V = 128, bf16, T in {2048, 8192, 32768}.
Ops (FLA's names) and the spec that computes the same thing:
    simple_gla      specs/mamba2.attn          data-dependent scalar decay
    simple_gla_gam  specs/lightning.attn       constant per-head decay
    gla             specs/gla.attn             per-channel decay
    delta_rule      specs/deltanet.attn        delta rule, l2-normalised q/k (attnc normalises in-kernel)
    gated_delta     specs/gated_deltanet.attn  gated delta rule
Each attnc case is also checked against FLA on the same inputs: the spec's raw inputs are mapped to FLA's
arguments in torch (gates, scaled values), FLA runs, and the relative error ||attnc - fla|| / ||fla|| is
printed beside the times.

Timing: CUDA events around each call, 5 warm-up calls, median of 30 (both attnc and FLA, same helper).
FLA runs on inputs without requires_grad (inference forward).  TFLOP/s use fla_bench.py's FLOP model
(chunk 64).  The memory floor is the bytes each op must move (q, k, v, out in bf16 plus its gates, beta
and parameters) over 4.8 TB/s, the H200's HBM3e bandwidth.  Also timed: attnc_kernel_new with an empty
cache (generation + NVRTC + load) and again with the cache warm.
"""
import argparse
import ctypes as C
import os
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

HBM_BYTES_PER_S = 4.8e12
TOKENS, H, D = 65536, 16, 128
T_LIST = (2048, 8192, 32768)
OPS = {
    'simple_gla': 'mamba2',
    'simple_gla_gam': 'lightning',
    'gla': 'gla',
    'delta_rule': 'deltanet',
    'gated_delta': 'gated_deltanet',
}


# ---- ctypes mirror of include/attnc.h --------------------------------------------------------------------

class Tensor(C.Structure):
    _fields_ = [('data', C.c_void_p), ('dtype', C.c_int), ('ndim', C.c_int), ('shape', C.c_int64 * 4),
                ('stride', C.c_int64 * 4)]


class ForwardArgs(C.Structure):
    _fields_ = [('inputs', C.POINTER(Tensor)), ('ninputs', C.c_size_t), ('out', Tensor), ('h0', Tensor),
                ('z0', Tensor), ('m0', Tensor), ('hT', Tensor), ('zT', Tensor), ('mT', Tensor),
                ('cu_seqlens', C.c_void_p), ('nseq', C.c_int64), ('stream', C.c_void_p),
                ('schedule', C.c_int)]


class TensorInfo(C.Structure):
    _fields_ = [('name', C.c_char_p), ('per_token', C.c_int), ('heads', C.c_uint32), ('len', C.c_uint32),
                ('dtype', C.c_int), ('has_range', C.c_int), ('lo', C.c_double), ('hi', C.c_double)]


class KernelInfo(C.Structure):
    _fields_ = [('entry', C.c_char_p), ('regs', C.c_int), ('local_bytes', C.c_int), ('threads', C.c_uint),
                ('smem_bytes', C.c_uint), ('cache_hit', C.c_int), ('compile_ms', C.c_double), ('load_ms', C.c_double),
                ('arch', C.c_char * 16)]


class CompileOptions(C.Structure):
    _fields_ = [('arch', C.c_char_p), ('no_cache', C.c_int)]


TORCH_DTYPE = {0: torch.bfloat16, 1: torch.float16, 2: torch.float32}
ATTNC_DTYPE = {torch.bfloat16: 0, torch.float16: 1, torch.float32: 2}


class Attnc:
    def __init__(self, path):
        self.lib = L = C.CDLL(path)
        L.attnc_ctx_new_v.argtypes = [C.c_int, C.POINTER(C.c_void_p)]
        L.attnc_errmsg.restype = C.c_char_p
        L.attnc_errmsg.argtypes = [C.c_void_p]
        L.attnc_spec_from_file.argtypes = [C.c_void_p, C.c_char_p, C.POINTER(C.c_void_p)]
        L.attnc_spec_diag_text.restype = C.c_char_p
        L.attnc_spec_diag_text.argtypes = [C.c_void_p]
        L.attnc_spec_free.argtypes = [C.c_void_p]
        L.attnc_spec_tensor_count.restype = C.c_size_t
        L.attnc_spec_tensor_count.argtypes = [C.c_void_p]
        L.attnc_spec_tensor.argtypes = [C.c_void_p, C.c_size_t, C.POINTER(TensorInfo)]
        L.attnc_kernel_new.argtypes = [C.c_void_p, C.c_void_p, C.POINTER(CompileOptions), C.POINTER(C.c_void_p)]
        L.attnc_kernel_free.argtypes = [C.c_void_p]
        L.attnc_kernel_get_info.argtypes = [C.c_void_p, C.c_size_t, C.POINTER(KernelInfo)]
        L.attnc_forward.argtypes = [C.c_void_p, C.c_void_p, C.POINTER(ForwardArgs)]
        L.attnc_version.restype = C.c_int
        self.ctx = C.c_void_p()
        st = L.attnc_ctx_new_v(L.attnc_version(), C.byref(self.ctx))
        if st:
            raise RuntimeError(f'attnc_ctx_new: status {st}')

    def err(self):
        return self.lib.attnc_errmsg(self.ctx).decode()

    def spec(self, path):
        s = C.c_void_p()
        st = self.lib.attnc_spec_from_file(self.ctx, path.encode(), C.byref(s))
        if st:
            msg = self.lib.attnc_spec_diag_text(s).decode() if s else ''
            raise RuntimeError(f'{path}: {self.err()}\n{msg}')
        infos = []
        for i in range(self.lib.attnc_spec_tensor_count(s)):
            ti = TensorInfo()
            self.lib.attnc_spec_tensor(s, i, C.byref(ti))
            infos.append((ti.name.decode(), bool(ti.per_token), ti.heads, ti.len, ti.dtype))
        return s, infos

    def kernel(self, spec, no_cache=False):
        k = C.c_void_p()
        opts = CompileOptions(None, 1 if no_cache else 0)
        t0 = time.perf_counter()
        st = self.lib.attnc_kernel_new(self.ctx, spec, C.byref(opts), C.byref(k))
        ms = (time.perf_counter() - t0) * 1e3
        if st:
            raise RuntimeError(f'attnc_kernel_new: {self.err()}')
        info = KernelInfo()
        self.lib.attnc_kernel_get_info(k, 0, C.byref(info))
        return k, info, ms

    @staticmethod
    def tensor(t):
        d = Tensor()
        if t is None:
            return d
        d.data = t.data_ptr()
        d.dtype = ATTNC_DTYPE[t.dtype]
        d.ndim = t.dim()
        for i in range(t.dim()):
            d.shape[i] = t.shape[i]
            d.stride[i] = t.stride(i)
        return d

    def forward_fn(self, kernel, inputs, out, schedule=0):
        arr = (Tensor * len(inputs))(*[self.tensor(t) for t in inputs])
        args = ForwardArgs()
        args.inputs = arr
        args.ninputs = len(inputs)
        args.out = self.tensor(out)
        args.stream = torch.cuda.current_stream().cuda_stream
        args.schedule = schedule   # 0 auto (by shape), 1 sequential, 2 materialized
        keep = (arr, args)

        def call():
            st = self.lib.attnc_forward(self.ctx, kernel, C.byref(keep[1]))
            if st:
                raise RuntimeError(f'attnc_forward: {self.err()}')
        return call


# ---- timing ------------------------------------------------------------------------------------------------

def bench_ms(fn, warmup=5, reps=30):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def flops_fwd(kind, B, T):
    per = 2 * 64 * (D + D) + 4 * D * D
    if kind == 'delta':
        per += 2 * 64 * D + 2 * 64 * D + 2 * 64 * D + 2 * D * D + (2 / 3) * 64 * 64
    return per * B * T * H


def rel(a, b):
    a, b = a.float(), b.float()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


# ---- the ops -------------------------------------------------------------------------------------------------

def make_inputs(infos, B, T, dev):
    """Random inputs for a spec's tensors (normal, as the float64 reference draws them)."""
    out = []
    for name, per_token, heads, length, dt in infos:
        shape = [B, T, heads] if per_token else [heads]
        if length != 1:
            shape.append(length)
        out.append(torch.randn(*shape, device=dev, dtype=torch.float32).to(TORCH_DTYPE[dt]))
    return out


def fla_args(op, x):
    """FLA's arguments computing what the spec computes from the same raw inputs."""
    if op == 'simple_gla':            # mamba2: C, B, x, dt, A_log, dt_bias
        Cq, Bk, xv, dt, A_log, dt_bias = x
        delta = F.softplus(dt.float() + dt_bias.float())
        g = -torch.exp(A_log.float()) * delta
        v = (xv.float() * delta[..., None]).to(torch.bfloat16)
        return dict(q=Cq, k=Bk, v=v, g=g, scale=1.0)
    if op == 'simple_gla_gam':        # lightning: q, k, v; decay exp(-2^(-8(h+1)/H))
        q, k, v = x
        hh = torch.arange(H, dtype=torch.float32, device=q.device)
        g_gamma = -torch.pow(2.0, -8.0 * (hh + 1) / H)
        return dict(q=q, k=k, v=v, g_gamma=g_gamma)
    if op == 'gla':                   # gla: q, k, v, gk; gate logsigmoid(gk)/16
        q, k, v, gk = x
        return dict(q=q, k=k, v=v, g=(F.logsigmoid(gk.float()) / 16).to(torch.bfloat16))
    if op == 'delta_rule':            # deltanet: q, k, v, b
        q, k, v, b = x
        return dict(q=q, k=k, v=v, beta=torch.sigmoid(b.float()).to(torch.bfloat16), use_qk_l2norm_in_kernel=True)
    if op == 'gated_delta':           # gated_deltanet: q, k, v, a, b, A_log, dt_bias
        q, k, v, a, b, A_log, dt_bias = x
        g = -torch.exp(A_log.float()) * F.softplus(a.float() + dt_bias.float())
        return dict(q=q, k=k, v=v, g=g, beta=torch.sigmoid(b.float()), use_qk_l2norm_in_kernel=True)
    raise KeyError(op)


def floor_ms(infos, B, T):
    nbytes = B * T * H * D * 2  # out
    for name, per_token, heads, length, dt in infos:
        nbytes += (B * T if per_token else 1) * heads * length * (4 if dt == 2 else 2)
    return nbytes / HBM_BYTES_PER_S * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--lib', default='build/libattnc.so')
    ap.add_argument('--specs', default='specs')
    ap.add_argument('--fla-bench', default=None, help="path of fla_bench.py (its FLA import helpers are used)")
    ap.add_argument('--ops', default=','.join(OPS))
    ap.add_argument('--T', default=','.join(map(str, T_LIST)))
    ap.add_argument('--out', default=None, help='write the table (markdown) here too')
    a = ap.parse_args()
    dev = 'cuda'
    torch.manual_seed(0)
    at = Attnc(a.lib)

    fla_funcs, fla_version = {}, None
    if a.fla_bench:
        sys.path.insert(0, os.path.dirname(os.path.abspath(a.fla_bench)))
        import fla_bench as fb
        fb.install_shims()
        _, fla_version, _ = fb.import_fla()
        fb.handle_640_guard()
        fla_funcs, errs = fb.load_fla_ops(list(OPS))
        for op, e in errs.items():
            print(f'FLA {op}: {e}', flush=True)

    gpu = torch.cuda.get_device_name()
    print(f'# GPU {gpu}; torch {torch.__version__}; FLA {fla_version}; attnc via {a.lib}', flush=True)

    # First call with an empty cache and a cache hit, per op (one kernel each).
    cache = tempfile.mkdtemp(prefix='attnc-cache-')
    os.environ['ATTNC_CACHE_DIR'] = cache
    kernels, rows, jit_rows = {}, [], []
    for op in a.ops.split(','):
        spec, infos = at.spec(os.path.join(a.specs, OPS[op] + '.attn'))
        k1, info1, cold_ms = at.kernel(spec)
        k2, info2, hit_ms = at.kernel(spec)
        jit_rows.append((op, cold_ms, info1.compile_ms, hit_ms, bool(info2.cache_hit), info1.regs, info1.local_bytes,
                         info1.smem_bytes))
        at.lib.attnc_kernel_free(k1)
        kernels[op] = (spec, infos, k2)

    for T in [int(t) for t in a.T.split(',')]:
        B = TOKENS // T
        for op in a.ops.split(','):
            spec, infos, k = kernels[op]
            x = make_inputs(infos, B, T, dev)
            out = torch.empty(B, T, H, D, device=dev, dtype=torch.bfloat16)
            call = at.forward_fn(k, x, out)
            call()
            torch.cuda.synchronize()
            t_attnc = bench_ms(call)
            # the linear part's two schedules, forced (auto picks one of them by shape)
            t_seq = bench_ms(at.forward_fn(k, x, torch.empty_like(out), 1))
            t_mat = bench_ms(at.forward_fn(k, x, torch.empty_like(out), 2))
            kind = 'delta' if 'delta' in op else 'lin'
            fl = flops_fwd(kind, B, T)
            t_fla, err = None, None
            if op in fla_funcs:
                kw = fla_args(op, x)
                f = fla_funcs[op]
                q, kk, v = kw.pop('q'), kw.pop('k'), kw.pop('v')
                with torch.no_grad():
                    ref = f(q, kk, v, **kw)[0]
                    err = rel(out, ref)
                    t_fla = bench_ms(lambda: f(q, kk, v, **kw))
            rows.append((op, T, B, t_attnc, fl / t_attnc / 1e9, t_fla, floor_ms(infos, B, T), err, t_seq, t_mat))
            print(f'{op:15s} T={T:6d} attnc {t_attnc:7.3f} ms (seq {t_seq:.3f}, mat {t_mat:.3f})' + (f'  FLA {t_fla:7.3f} ms  x{t_fla / t_attnc:5.2f}'
                  f'  rel.err vs FLA {err:.2e}' if t_fla else ''), flush=True)
            del x, out

    # SDPA (causal, flash backend) for scale.
    sdpa = []
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        for T in [int(t) for t in a.T.split(',')]:
            B = TOKENS // T
            q, k, v = (torch.randn(B, H, T, D, device=dev, dtype=torch.bfloat16) for _ in range(3))
            for name, be in (('flash', SDPBackend.FLASH_ATTENTION), ('cudnn', getattr(SDPBackend, 'CUDNN_ATTENTION', None))):
                if be is None:
                    continue
                try:
                    with sdpa_kernel([be]):
                        sdpa.append((name, T, bench_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))))
                except Exception as e:  # noqa: BLE001
                    print(f'sdpa {name}: {e}')
    except ImportError:
        pass

    lines = [f'GPU: {gpu}; torch {torch.__version__}; FLA (fla-core) {fla_version}; B*T = {TOKENS}, H = {H}, '
             f'K = V = {D}, bf16; median of 30 (CUDA events)', '',
             '| op | T | B | attnc ms | TFLOP/s | FLA ms | attnc speed-up | floor ms | attnc / floor | rel. err vs FLA '
             '| sequential ms | materialized ms |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for op, T, B, ta, tf, tfl, fm, err, ts, tm in rows:
        lines.append(f'| {op} | {T} | {B} | {ta:.3f} | {tf:.1f} | ' + (f'{tfl:.3f} | {tfl / ta:.2f}x' if tfl else '- | -') +
                     f' | {fm:.3f} | {ta / fm:.2f} | ' + (f'{err:.1e}' if err is not None else '-') +
                     f' | {ts:.3f} | {tm:.3f} |')
    lines += ['', '| SDPA causal | T | ms |', '|---|---|---|']
    lines += [f'| {n} | {T} | {ms:.3f} |' for n, T, ms in sdpa]
    lines += ['', '| op | first call, empty cache (ms) | of which generate+NVRTC (ms) | cache hit (ms) | hit | regs | local bytes | smem bytes |',
              '|---|---|---|---|---|---|---|---|']
    lines += [f'| {op} | {c:.0f} | {nv:.0f} | {h:.2f} | {hit} | {r} | {lb} | {sm} |' for op, c, nv, h, hit, r, lb, sm in jit_rows]
    text = '\n'.join(lines)
    print(text, flush=True)
    if a.out:
        with open(a.out, 'w') as f:
            f.write(text + '\n')


if __name__ == '__main__':
    main()
