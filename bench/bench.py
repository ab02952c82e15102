#!/usr/bin/env python3
"""bench/bench.py: attnc's generated forward kernels against FLA and torch SDPA (a benchmark, not a test).

    PYTHONPATH=<fla-core on the path> python3 bench/bench.py --lib build/libattnc.so [--fla-bench path/fla_bench.py]

Shapes (issue 3): B*T = 65536 tokens, H = 16, K = V = 128, bf16, T in {2048, 8192, 32768}.
Ops (FLA's names) and the spec that computes the same thing:
    simple_gla      specs/simple_gla.attn      data-dependent scalar decay, its logits g per token
    simple_gla_gam  specs/lightning.attn       constant per-head decay
    gla             specs/gla.attn             per-channel decay
    delta_rule      specs/deltanet.attn        delta rule, l2-normalised q/k (attnc normalises in-kernel)
    gated_delta     specs/gated_delta_rule.attn  gated delta rule, its log decay from its own logits g per token
    mamba2          specs/mamba2.attn          FLA's simple_gla again, on the decay and value that Mamba-2's
                                               parametrisation gives (attnc's backward goes on to dt, A_log
                                               and dt_bias, whose gradients sum every token's; FLA's ends
                                               at g and v: its row does more work than FLA's)
    gated_deltanet  specs/gated_deltanet.attn  FLA's gated_delta again, forming Gated DeltaNet's decay
                                               -exp(A_log) softplus(a + dt_bias) in its kernel
                                               (use_gate_in_kernel, FLA 0.5): both backwards go on to
                                               A_log and dt_bias (until the fifty-fifth session torch
                                               formed the decay and FLA's backward ended at g)
Each attnc case is also checked against FLA on the same inputs: the spec's raw inputs are mapped to FLA's
arguments in torch (gates, scaled values), FLA runs, and the relative error ||attnc - fla|| / ||fla|| is
printed beside the times.

Timing: CUDA events around each call, 5 warm-up calls, median of 30 (both attnc and FLA, same helper).
FLA's first run is Triton's autotune; fla_bench.py's parallel compile warm-up and shortened autotune run
before any timing (BENCH_PAR_WARM=0 skips the warm-up, e.g. for a second process on a warm Triton cache).
FLA runs on inputs without requires_grad (inference forward) for the forward table.  TFLOP/s use fla_bench.py's FLOP model
(chunk 64).  The memory floor is the bytes each op must move (q, k, v, out in bf16 plus its gates, beta
and parameters) over 4.8 TB/s, the H200's HBM3e bandwidth.  Also timed: attnc_kernel_new with an empty
cache (generation + NVRTC + load) and again with the cache warm.

Forward + backward (issue 4; --no-backward skips it), same shapes and inputs:
    attnc   attnc_forward then attnc_backward (every input's gradient, from a random bf16 dout), through
            ctypes like the forward (an op whose backward attnc did not generate would say so in "note")
    FLA     its chunk_* function on requires_grad leaves (its own arguments: q, k, v and the gate / beta
            that fla_args derives from the spec's raw inputs), .backward(dout), gradients reset to None
            before every call (as fla_bench.py does)
    SDPA    causal flash and cuDNN, q, k, v requires_grad, .backward(dout)
Peak extra GPU memory of one forward+backward: FLA, torch.cuda.max_memory_allocated() during the call
less memory_allocated() before it (inputs and dout already allocated; its output, saved tensors and
gradients count).  attnc, what it allocates for the same call: its output and gradient buffers (the
caller's, allocated once here) plus the workspaces its handles hold after the call
(attnc_kernel_workspace_bytes, attnc_grad_workspace_allocated).  The gradients of dq and dk are checked
against FLA's (relative error of the pair), the inputs being the same numbers.
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
    'simple_gla': 'simple_gla',
    'simple_gla_gam': 'lightning',
    'gla': 'gla',
    'delta_rule': 'deltanet',
    'gated_delta': 'gated_delta_rule',
    'mamba2': 'mamba2',
    'gated_deltanet': 'gated_deltanet',
}
# the FLA op that each row runs, where it is not the row's own name
FLA_OP = {'mamba2': 'simple_gla', 'gated_deltanet': 'gated_delta'}


# ---- ctypes mirror of include/attnc.h --------------------------------------------------------------------

class Tensor(C.Structure):
    _fields_ = [('data', C.c_void_p), ('dtype', C.c_int), ('ndim', C.c_int), ('shape', C.c_int64 * 4),
                ('stride', C.c_int64 * 4)]


class ForwardArgs(C.Structure):
    _fields_ = [('inputs', C.POINTER(Tensor)), ('ninputs', C.c_size_t), ('out', Tensor), ('h0', Tensor),
                ('z0', Tensor), ('m0', Tensor), ('hT', Tensor), ('zT', Tensor), ('mT', Tensor),
                ('cu_seqlens', C.c_void_p), ('nseq', C.c_int64), ('stream', C.c_void_p),
                ('schedule', C.c_int), ('saved', C.c_void_p), ('saved_for', C.c_void_p)]


class TensorInfo(C.Structure):
    _fields_ = [('name', C.c_char_p), ('per_token', C.c_int), ('heads', C.c_uint32), ('len', C.c_uint32),
                ('dtype', C.c_int), ('has_range', C.c_int), ('lo', C.c_double), ('hi', C.c_double)]


class KernelInfo(C.Structure):
    _fields_ = [('entry', C.c_char_p), ('regs', C.c_int), ('local_bytes', C.c_int), ('threads', C.c_uint),
                ('smem_bytes', C.c_uint), ('cache_hit', C.c_int), ('compile_ms', C.c_double), ('load_ms', C.c_double),
                ('arch', C.c_char * 16), ('quick', C.c_int)]


class CompileOptions(C.Structure):
    _fields_ = [('arch', C.c_char_p), ('no_cache', C.c_int), ('jit', C.c_int)]  # jit: attnc_jit_mode


JIT_TIERED, JIT_OPTIMIZED, JIT_QUICK = 0, 1, 2


class BackwardArgs(C.Structure):
    _fields_ = [('inputs', C.POINTER(Tensor)), ('ninputs', C.c_size_t), ('dout', Tensor), ('h0', Tensor),
                ('dhT', Tensor), ('dinputs', C.POINTER(Tensor)), ('dh0', Tensor), ('cu_seqlens', C.c_void_p),
                ('nseq', C.c_int64), ('stream', C.c_void_p), ('z0', Tensor), ('dzT', Tensor), ('dz0', Tensor),
                ('m0', Tensor), ('dmT', Tensor), ('dm0', Tensor), ('saved', C.c_void_p)]


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
        L.attnc_kernel_wait_optimized.argtypes = [C.c_void_p, C.c_void_p]
        L.attnc_kernel_get_info.argtypes = [C.c_void_p, C.c_size_t, C.POINTER(KernelInfo)]
        L.attnc_forward.argtypes = [C.c_void_p, C.c_void_p, C.POINTER(ForwardArgs)]
        L.attnc_kernel_workspace_bytes.restype = C.c_size_t
        L.attnc_kernel_workspace_bytes.argtypes = [C.c_void_p]
        L.attnc_grad_kernel_new.argtypes = [C.c_void_p, C.c_void_p, C.POINTER(CompileOptions), C.POINTER(C.c_void_p)]
        L.attnc_grad_kernel_free.argtypes = [C.c_void_p]
        L.attnc_grad_kernel_wait_optimized.argtypes = [C.c_void_p, C.c_void_p]
        L.attnc_grad_kernel_quick.argtypes = [C.c_void_p]
        L.attnc_backward.argtypes = [C.c_void_p, C.c_void_p, C.POINTER(BackwardArgs)]
        L.attnc_grad_workspace_allocated.restype = C.c_size_t
        L.attnc_grad_workspace_allocated.argtypes = [C.c_void_p]
        L.attnc_version.restype = C.c_int
        self.can_share = hasattr(L, 'attnc_share_workspace')   # (a library before it has none)
        if self.can_share:
            L.attnc_share_workspace.argtypes = [C.c_void_p, C.c_void_p, C.c_void_p]
        self.can_save = hasattr(L, 'attnc_saved_states_bytes')
        if self.can_save:
            L.attnc_saved_states_bytes.restype = C.c_size_t
            L.attnc_saved_states_bytes.argtypes = [C.c_void_p, C.c_void_p, C.c_int64, C.c_int64, C.c_int64]
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

    def kernel(self, spec, no_cache=False, jit=JIT_OPTIMIZED):
        """A forward handle, its first kernel's info and attnc_kernel_new's ms.  Timed handles take the
        optimised kernels (JIT_OPTIMIZED: also the units compiled at a launch, the materialized schedule);
        the first call's column times the default, JIT_TIERED."""
        k = C.c_void_p()
        opts = CompileOptions(None, 1 if no_cache else 0, jit)
        t0 = time.perf_counter()
        st = self.lib.attnc_kernel_new(self.ctx, spec, C.byref(opts), C.byref(k))
        ms = (time.perf_counter() - t0) * 1e3
        if st:
            raise RuntimeError(f'attnc_kernel_new: {self.err()}')
        info = KernelInfo()
        self.lib.attnc_kernel_get_info(k, 0, C.byref(info))
        return k, info, ms

    def wait_optimized(self, k):
        """Waits for a tiered kernel's optimised units and loads them; the info of its first kernel then."""
        if self.lib.attnc_kernel_wait_optimized(self.ctx, k):
            raise RuntimeError(f'attnc_kernel_wait_optimized: {self.err()}')
        info = KernelInfo()
        self.lib.attnc_kernel_get_info(k, 0, C.byref(info))
        return info

    def grad_kernel(self, spec, jit=JIT_OPTIMIZED):
        """The backward's handle, or (None, the reason) where attnc does not generate it yet.  Timed handles
        take the optimised kernels (JIT_OPTIMIZED)."""
        k = C.c_void_p()
        opts = CompileOptions(None, 0, jit)
        st = self.lib.attnc_grad_kernel_new(self.ctx, spec, C.byref(opts), C.byref(k))
        if st:
            return None, self.err()
        return k, None

    def share_workspace(self, kernel, grad_kernel):
        """One workspace for the two handles (a training step's way), where the library can; True if shared."""
        if not self.can_share:
            return False
        if self.lib.attnc_share_workspace(self.ctx, kernel, grad_kernel):
            raise RuntimeError(f'attnc_share_workspace: {self.err()}')
        return True

    def workspace_bytes(self, kernel, grad_kernel, shared=False):
        fwd, bwd = self.lib.attnc_kernel_workspace_bytes(kernel), self.lib.attnc_grad_workspace_allocated(grad_kernel)
        return max(fwd, bwd) if shared else fwd + bwd

    def saved_states(self, kernel, grad_kernel, B, T, dev):
        """A buffer for the chunk states the forward saves for the backward (training), or None where the pair
        saves none, the library has no such call, or ATTNC_BENCH_SAVED=0 (the backward's own walk, for A/B)."""
        if not self.can_save or os.environ.get('ATTNC_BENCH_SAVED', '1') == '0':
            return None
        n = self.lib.attnc_saved_states_bytes(kernel, grad_kernel, B, T, 0)
        return torch.empty(n, dtype=torch.uint8, device=dev) if n else None

    def backward_fn(self, grad_kernel, inputs, dout, dinputs, saved=None):
        arr = (Tensor * len(inputs))(*[self.tensor(t) for t in inputs])
        darr = (Tensor * len(dinputs))(*[self.tensor(t) for t in dinputs])
        args = BackwardArgs()
        args.inputs = arr
        args.ninputs = len(inputs)
        args.dout = self.tensor(dout)
        args.dinputs = darr
        args.stream = torch.cuda.current_stream().cuda_stream
        args.saved = saved.data_ptr() if saved is not None else None
        keep = (arr, darr, args)

        def call():
            st = self.lib.attnc_backward(self.ctx, grad_kernel, C.byref(keep[2]))
            if st:
                raise RuntimeError(f'attnc_backward: {self.err()}')
        return call

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

    def forward_fn(self, kernel, inputs, out, schedule=0, saved=None, saved_for=None):
        arr = (Tensor * len(inputs))(*[self.tensor(t) for t in inputs])
        args = ForwardArgs()
        args.inputs = arr
        args.ninputs = len(inputs)
        args.out = self.tensor(out)
        args.stream = torch.cuda.current_stream().cuda_stream
        args.schedule = schedule   # 0 auto (by shape), 1 sequential, 2 materialized, 3 grouped
        if saved is not None:      # training: the chunk states for saved_for's backward
            args.saved = saved.data_ptr()
            args.saved_for = saved_for
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
    if op == 'simple_gla':            # simple_gla: q, k, v, g; gate logsigmoid(g)
        q, k, v, g = x
        return dict(q=q, k=k, v=v, g=F.logsigmoid(g.float()))
    if op == 'mamba2':                # mamba2: C, B, x, dt, A_log, dt_bias
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
    if op == 'gated_delta':           # gated_delta_rule: q, k, v, g, b; gate logsigmoid(g)
        q, k, v, g, b = x
        return dict(q=q, k=k, v=v, g=F.logsigmoid(g.float()), beta=torch.sigmoid(b.float()), use_qk_l2norm_in_kernel=True)
    if op == 'gated_deltanet':        # gated_deltanet: q, k, v, a, b, A_log, dt_bias; FLA forms the decay
        q, k, v, a, b, A_log, dt_bias = x   # -exp(A_log) softplus(a + dt_bias) in its kernel, and its backward
        return dict(q=q, k=k, v=v, g=a, beta=torch.sigmoid(b.float()), use_qk_l2norm_in_kernel=True,
                    use_gate_in_kernel=True, A_log=A_log.float(), dt_bias=dt_bias.float())
    raise KeyError(op)


def fla_leaves(kw):
    """FLA's tensor arguments as requires_grad leaves (fixed per-head constants such as g_gamma stay)."""
    out = {}
    for n, t in kw.items():
        if torch.is_tensor(t) and n != 'g_gamma':
            t = t.detach().clone().requires_grad_(True)
        out[n] = t
    return out


def peak_extra_mib(fn):
    """torch.cuda.max_memory_allocated() during fn() less memory_allocated() before it, MiB."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def nbytes(ts):
    return sum(t.numel() * t.element_size() for t in ts)


def bench_fwd_bwd(at, op, k, gk, infos, x, out, f_fla, dev, B, T):
    """One row of the forward+backward table (times in ms, memory in MiB; None where not run)."""
    r = dict(op=op, T=T, B=B, attnc=None, fla=None, mem_attnc=None, ws_attnc=None, mem_fla=None, err=None, note='')
    dout = torch.randn(B, T, H, D, device=dev, dtype=torch.bfloat16)
    ga = None
    if gk is not None:
        dins = [torch.empty_like(t) for t in x]
        shared = at.share_workspace(k, gk)
        saved = at.saved_states(k, gk, B, T, dev)
        fwd = at.forward_fn(k, x, out, saved=saved, saved_for=gk)
        bwd = at.backward_fn(gk, x, dout, dins, saved=saved)
        if saved is not None:
            r['note'] = 'saved states'

        def fb_attnc():
            fwd()
            bwd()
        try:
            fb_attnc()
            torch.cuda.synchronize()
            r['attnc'] = bench_ms(fb_attnc)
            ws = at.workspace_bytes(k, gk, shared)
            r['ws_attnc'] = ws / 2**20
            r['mem_attnc'] = (nbytes([out]) + nbytes(dins) + ws + (nbytes([saved]) if saved is not None else 0)) / 2**20
            ga = dins
        except RuntimeError as e:
            r['note'] = f'attnc: {str(e).splitlines()[0][:120]}'
            r['attnc'] = None
    if f_fla is not None:
        kw = fla_leaves(fla_args(op, x))
        q, kk, v = kw.pop('q'), kw.pop('k'), kw.pop('v')
        leaves = [t for t in [q, kk, v, *kw.values()] if torch.is_tensor(t) and t.requires_grad]

        def fb_fla():
            for t in leaves:
                t.grad = None
            f_fla(q, kk, v, **kw)[0].backward(dout)
        try:
            fb_fla()
            torch.cuda.synchronize()
            if ga is not None:   # the spec's q and k are FLA's q and k (delta ops: l2-normalised on both sides)
                num = sum(((a.float() - b.grad.float()).norm() ** 2).item() for a, b in ((ga[0], q), (ga[1], kk)))
                den = sum((b.grad.float().norm() ** 2).item() for b in (q, kk))
                r['err'] = (num / max(den, 1e-60)) ** 0.5
            r['fla'] = bench_ms(fb_fla)
            for t in leaves:
                t.grad = None
            r['mem_fla'] = peak_extra_mib(fb_fla)
            for t in leaves:
                t.grad = None
        except Exception as e:  # noqa: BLE001
            msg = str(e).splitlines()[0][:80] if str(e) else ''
            r['note'] = (r['note'] + '; ' if r['note'] else '') + f'FLA backward: {type(e).__name__}: {msg}'
    return r


def sdpa_fwd_bwd(B, T, dev, be):
    """SDPA causal forward+backward (ms) and its peak extra memory (MiB) on one backend."""
    from torch.nn.attention import sdpa_kernel
    q, k, v = (torch.randn(B, H, T, D, device=dev, dtype=torch.bfloat16).requires_grad_(True) for _ in range(3))
    dout = torch.randn(B, H, T, D, device=dev, dtype=torch.bfloat16)

    def fb():
        for t in (q, k, v):
            t.grad = None
        with sdpa_kernel([be]):
            F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(dout)
    fb()
    ms = bench_ms(fb)
    for t in (q, k, v):
        t.grad = None
    return ms, peak_extra_mib(fb)


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
    ap.add_argument('--no-backward', action='store_true', help='time the forward only (no forward+backward tables)')
    ap.add_argument('--attnc-cache', default=None,
                    help='attnc kernel cache directory (default: a new empty one); a later run given the same one '
                         'times cache hits in its "first call" column, as its "hit" column then says')
    a = ap.parse_args()
    # NVRTC 13.0 on a machine with a driver keeps what it compiles in the driver's compute cache
    # (~/.nv/ComputeCache, CUDA_CACHE_PATH): on the H200 host a process compiling a source that an earlier
    # process compiled took 0.04 s instead of 1.5 s (bench/RESULTS.md, thirteenth session).  The first call
    # "from an empty cache" therefore starts with an empty compute cache too, unless the caller chose one.
    os.environ.setdefault('CUDA_CACHE_PATH', tempfile.mkdtemp(prefix='cuda-compute-cache-'))
    dev = 'cuda'
    torch.manual_seed(0)
    at = Attnc(a.lib)

    fla_funcs, fla_version = {}, None
    if a.fla_bench:
        # fla_bench.py reads these when imported: its parallel compile warm-up (one child process per
        # share of each FLA op's autotune configs, filling Triton's disk cache before the timed autotune)
        # compiles at the first T asked for, and gets up to 240 s.
        os.environ.setdefault('BENCH_T', a.T.split(',')[0])
        os.environ.setdefault('BENCH_BUDGET_S', '900')
        os.environ.setdefault('BENCH_WARM_MAX_S', '240')
        sys.path.insert(0, os.path.dirname(os.path.abspath(a.fla_bench)))
        import fla_bench as fb
        fb.install_shims()
        _, fla_version, _ = fb.import_fla()
        fb.handle_640_guard()
        funcs, errs = fb.load_fla_ops(sorted({FLA_OP.get(op, op) for op in OPS}))
        fla_funcs = {op: funcs[FLA_OP.get(op, op)] for op in OPS if FLA_OP.get(op, op) in funcs}
        for op, e in errs.items():
            print(f'FLA {op}: {e}', flush=True)
        # FLA's own cost of a first run is Triton's autotune (minutes for these five ops); the timed
        # medians below do not depend on it, so it is shortened (5 ms warm-up, 25 ms per config) and
        # its compiles run in parallel first.  A warm TRITON_CACHE_DIR makes both cache hits.
        for note in fb.patch_autotuner():
            print(f'FLA autotune: {note}', flush=True)
        if os.environ.get('BENCH_PAR_WARM', '1') == '1':
            fb.parallel_warm(sorted({FLA_OP.get(op, op) for op in a.ops.split(',') if op in fla_funcs}))

    gpu = torch.cuda.get_device_name()
    print(f'# GPU {gpu}; torch {torch.__version__}; FLA {fla_version}; attnc via {a.lib}', flush=True)

    # First call with an empty cache and a cache hit, per op (one kernel each).
    cache = a.attnc_cache or tempfile.mkdtemp(prefix='attnc-cache-')
    os.environ['ATTNC_CACHE_DIR'] = cache
    kernels, rows, jit_rows = {}, [], []
    for op in a.ops.split(','):
        spec, infos = at.spec(os.path.join(a.specs, OPS[op] + '.attn'))
        # the tiered JIT (the default): kernel_new returns with quick kernels where the cache had none, and
        # the optimised ones compile on a thread; waiting for them gives when they are in (from the start)
        k1, info1, cold_ms = at.kernel(spec, jit=JIT_TIERED)
        quick, hit1 = bool(info1.quick), bool(info1.cache_hit)
        t0 = time.perf_counter()
        info1 = at.wait_optimized(k1)
        ready_ms = cold_ms + (time.perf_counter() - t0) * 1e3
        k2, info2, hit_ms = at.kernel(spec)
        if not info2.cache_hit or info2.quick:
            print(f'attnc {op}: the second kernel_new did not hit the cache with optimised kernels', flush=True)
        jit_rows.append((op, cold_ms, quick, ready_ms, hit_ms, hit1, info1.regs,
                         info1.local_bytes, info1.smem_bytes))
        at.lib.attnc_kernel_free(k1)
        # the backward's first call the same way (a training step's), then its cache hit for the timings
        bwd = ('-', '-')
        if not a.no_backward:
            t0 = time.perf_counter()
            g1, _ = at.grad_kernel(spec, jit=JIT_TIERED)
            if g1 is not None:
                g_cold = (time.perf_counter() - t0) * 1e3
                g_quick = bool(at.lib.attnc_grad_kernel_quick(g1))
                if at.lib.attnc_grad_kernel_wait_optimized(at.ctx, g1):
                    raise RuntimeError(f'attnc_grad_kernel_wait_optimized: {at.err()}')
                bwd = (f'{g_cold:.0f}{"" if g_quick else " (hit)"}', f'{(time.perf_counter() - t0) * 1e3:.0f}')
                at.lib.attnc_grad_kernel_free(g1)
        jit_rows[-1] += bwd
        gk, why = (None, 'not timed (--no-backward)') if a.no_backward else at.grad_kernel(spec)
        if gk is None and not a.no_backward:
            print(f'attnc backward {op}: {why}', flush=True)
        kernels[op] = (spec, infos, k2, gk, why)
    fb_rows = []

    for T in [int(t) for t in a.T.split(',')]:
        B = TOKENS // T
        for op in a.ops.split(','):
            spec, infos, k, gk, why = kernels[op]
            x = make_inputs(infos, B, T, dev)
            out = torch.empty(B, T, H, D, device=dev, dtype=torch.bfloat16)
            call = at.forward_fn(k, x, out)
            call()
            torch.cuda.synchronize()
            t_attnc = bench_ms(call)
            # the linear part's schedules, forced (auto picks one of them by shape); the grouped one is
            # not generated for the delta rule
            t_seq = bench_ms(at.forward_fn(k, x, torch.empty_like(out), 1))
            t_mat = bench_ms(at.forward_fn(k, x, torch.empty_like(out), 2))
            try:
                t_grp = bench_ms(at.forward_fn(k, x, torch.empty_like(out), 3))
            except RuntimeError:
                t_grp = None
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
            rows.append((op, T, B, t_attnc, fl / t_attnc / 1e9, t_fla, floor_ms(infos, B, T), err, t_seq, t_mat, t_grp))
            grp = f', grp {t_grp:.3f}' if t_grp else ''
            print(f'{op:15s} T={T:6d} attnc {t_attnc:7.3f} ms (seq {t_seq:.3f}, mat {t_mat:.3f}{grp})' + (f'  FLA {t_fla:7.3f} ms  x{t_fla / t_attnc:5.2f}'
                  f'  rel.err vs FLA {err:.2e}' if t_fla else ''), flush=True)
            if not a.no_backward:
                # a forward handle of its own: forcing the materialized and grouped schedules above grew
                # k's workspace (it never shrinks), which this schedule (AUTO) may not need
                kf = at.kernel(spec)[0]
                r = bench_fwd_bwd(at, op, kf, gk, infos, x, out, fla_funcs.get(op), dev, B, T)
                at.lib.attnc_kernel_free(kf)
                if gk is None:
                    r['note'] = (r['note'] + '; ' if r['note'] else '') + 'attnc: ' + why.split(': ')[-1]
                fb_rows.append(r)
                ta, tfl = r['attnc'], r['fla']
                print(f'{op:15s} T={T:6d} fwd+bwd attnc ' + (f'{ta:7.3f} ms' if ta else '      - ms') +
                      (f'  FLA {tfl:7.3f} ms' if tfl else '') + (f'  x{tfl / ta:5.2f}' if ta and tfl else '') +
                      (f'  extra MiB attnc {r["mem_attnc"]:.0f}' if ta else '') +
                      (f'  FLA {r["mem_fla"]:.0f}' if r['mem_fla'] is not None else '') +
                      (f'  rel.err dq,dk vs FLA {r["err"]:.2e}' if r['err'] is not None else '') +
                      (f'  ({r["note"]})' if r['note'] else ''), flush=True)
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
                        ms = bench_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))
                    fb_ms, fb_mib = (None, None) if a.no_backward else sdpa_fwd_bwd(B, T, dev, be)
                    sdpa.append((name, T, ms, fb_ms, fb_mib))
                    print(f'sdpa {name:6s} T={T:6d} fwd {ms:7.3f} ms' +
                          (f'  fwd+bwd {fb_ms:7.3f} ms  extra MiB {fb_mib:.0f}' if fb_ms else ''), flush=True)
                except Exception as e:  # noqa: BLE001
                    print(f'sdpa {name}: {e}')
    except ImportError:
        pass

    lines = [f'GPU: {gpu}; torch {torch.__version__}; FLA (fla-core) {fla_version}; B*T = {TOKENS}, H = {H}, '
             f'K = V = {D}, bf16; median of 30 (CUDA events)', '',
             '| op | T | B | attnc ms | TFLOP/s | FLA ms | attnc speed-up | floor ms | attnc / floor | rel. err vs FLA '
             '| sequential ms | materialized ms | grouped ms |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for op, T, B, ta, tf, tfl, fm, err, ts, tm, tg in rows:
        lines.append(f'| {op} | {T} | {B} | {ta:.3f} | {tf:.1f} | ' + (f'{tfl:.3f} | {tfl / ta:.2f}x' if tfl else '- | -') +
                     f' | {fm:.3f} | {ta / fm:.2f} | ' + (f'{err:.1e}' if err is not None else '-') +
                     f' | {ts:.3f} | {tm:.3f} | ' + (f'{tg:.3f}' if tg else '-') + ' |')
    if not a.no_backward:
        lines += ['', 'Forward + backward (every input\'s gradient from a random dout; FLA on requires_grad leaves); '
                  'peak extra GPU memory of one forward+backward', '',
                  '| op | T | B | attnc f+b ms | FLA f+b ms | attnc speed-up | attnc extra MiB | of which workspace MiB '
                  '| FLA extra MiB | rel. err dq,dk vs FLA | note |',
                  '|---|---|---|---|---|---|---|---|---|---|---|']
        f3 = lambda v, f: '-' if v is None else format(v, f)  # noqa: E731
        for r in fb_rows:
            sp = f'{r["fla"] / r["attnc"]:.2f}x' if r['attnc'] and r['fla'] else '-'
            lines.append(f'| {r["op"]} | {r["T"]} | {r["B"]} | {f3(r["attnc"], ".3f")} | {f3(r["fla"], ".3f")} | {sp} | '
                         f'{f3(r["mem_attnc"], ".0f")} | {f3(r["ws_attnc"], ".0f")} | {f3(r["mem_fla"], ".0f")} | '
                         f'{f3(r["err"], ".1e")} | {r["note"]} |')
    lines += ['', '| SDPA causal | T | fwd ms | fwd+bwd ms | f+b extra MiB |', '|---|---|---|---|---|']
    lines += [f'| {n} | {T} | {ms:.3f} | ' + (f'{fb:.3f} | {mib:.0f} |' if fb else '- | - |') for n, T, ms, fb, mib in sdpa]
    lines += ['', '| op | first call (ms) | quick kernels | optimised in after (ms) | cache hit (ms) | first call was a hit | regs | local bytes | smem bytes | backward first call (ms) | backward optimised in after (ms) |',
              '|---|---|---|---|---|---|---|---|---|---|---|']
    lines += [f'| {op} | {c:.0f} | {"yes" if q else "no"} | {rd:.0f} | {h:.2f} | {hit} | {r} | {lb} | {sm} | {bc} | {br} |'
              for op, c, q, rd, h, hit, r, lb, sm, bc, br in jit_rows]
    text = '\n'.join(lines)
    print(text, flush=True)
    if a.out:
        with open(a.out, 'w') as f:
            f.write(text + '\n')


if __name__ == '__main__':
    main()
