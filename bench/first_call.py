#!/usr/bin/env python3
"""bench/first_call.py: what a forward handle's first call from an empty kernel cache compiles, timed
(NVRTC only: no GPU or driver needed).

    python3 bench/first_call.py [--lib build/libattnc.so] [--arch sm_90a] [--dtype bf16|fp16|fp32]
                                [--repeat N] [--grad] [spec ...]

For each spec (default: the benchmark's five, bench/bench.py) it generates the forward's CUDA C as
attnc_kernel_new does, then times NVRTC (with no cache) on:
    one unit   the whole translation unit, every kernel in it (what attnc_kernel_new compiled up to the
               seventh session, and what `attnc compile --emit cubin` still compiles)
    now        the units attnc_kernel_new compiles before it returns: the chunk kernel's sequential walk
               and, where the spec has one, its grouped walk (the materialized schedule is a unit compiled
               at its first launch), the softmax part's kernel, each its own unit, at once on threads of
 their own (api_get_cubins), optimised (ATTNC_JIT_OPTIMIZED) and quick (--Ofast-compile=mid: what
               the default ATTNC_JIT_TIERED compiles before it returns, the optimised ones then on a thread)
    decode     the decode kernel's unit, compiled at the first single-token launch
and checks that every kernel comes out the same in the one unit as in its own with all its phases (kernel_facts: its
instructions, registers, shared memory, parameters and .nv.info records, byte for byte).  Times are the
minimum of --repeat runs (default 3), in seconds: wall clock, and in parentheses the process's CPU time
(all threads; steadier than the wall clock on a shared machine).  With --grad, the backward's instead: its
one unit against the units attnc_grad_kernel_new compiles on a host of this many CPUs (api/backward.c),
optimised and quick, and the same check of each kernel's code.
"""
import argparse
import ctypes as C
import os
import re
import struct
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPECS = ['mamba2', 'lightning', 'gla', 'deltanet', 'gated_deltanet']
DTYPES = {'bf16': 0, 'fp16': 1, 'fp32': 2}
KINDS = {'attnc_linear': 0, 'attnc_decode': 1, 'attnc_softmax': 2}  # cg_kernel_kind


class CompileOptions(C.Structure):
    _fields_ = [('arch', C.c_char_p), ('no_cache', C.c_int), ('jit', C.c_int)]


class Blob(C.Structure):
    _fields_ = [('data', C.c_void_p), ('size', C.c_size_t), ('log', C.c_char_p), ('regs', C.c_int),
                ('spill_bytes', C.c_int), ('stack_bytes', C.c_int)]


def elf_sections(image):
    """{name: bytes} of an ELF64 little-endian image (a cubin)."""
    shoff, = struct.unpack_from('<Q', image, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from('<HHH', image, 0x3A)
    heads = [struct.unpack_from('<IIQQQQIIQQ', image, shoff + i * shentsize) for i in range(shnum)]
    strtab = heads[shstrndx]
    names = image[strtab[4]:strtab[4] + strtab[5]]
    out = {}
    for h in heads:
        name = names[h[0]:names.index(b'\0', h[0])].decode()
        out[name] = image[h[4]:h[4] + h[5]] if h[1] != 8 else b''  # 8: NOBITS
    return out


def eiattrs(data):
    """The records of an .nv.info section: [(attribute, payload)]."""
    out, i = [], 0
    while i + 4 <= len(data):
        fmt, attr = data[i], data[i + 1]
        if fmt == 4:  # EIFMT_SVAL: a 16-bit size, then the payload
            size, = struct.unpack_from('<H', data, i + 2)
            out.append((attr, data[i + 4:i + 4 + size]))
            i += 4 + size
        else:         # EIFMT_NVAL, BVAL, HVAL: the value in the 2 bytes that follow
            out.append((attr, data[i + 2:i + 4]))
            i += 4
    return out


def kernel_facts(image, entry):
    """What must not differ for `entry` between two cubins: its instructions, shared memory, parameter
    bank and .nv.info records (their symbol indices, which depend on the other symbols of the image,
    left out), and its registers, stack and frame from the image's .nv.info."""
    sec = elf_sections(image)
    symtab, strtab = sec['.symtab'], sec['.strtab']
    syms = {}
    for i in range(len(symtab) // 24):
        name_off, = struct.unpack_from('<I', symtab, i * 24)
        syms[i] = strtab[name_off:strtab.index(b'\0', name_off)].decode()
    info = [(a, p[4:] if a == 0x0a else p) for a, p in eiattrs(sec[f'.nv.info.{entry}'])]  # 0x0a: PARAM_CBANK
    glob = sorted((a, p[4:]) for a, p in eiattrs(sec['.nv.info'])
                  if len(p) == 8 and syms.get(struct.unpack_from('<I', p)[0]) == entry)
    return (sec[f'.text.{entry}'], sec.get(f'.nv.shared.{entry}'), sec.get(f'.nv.constant0.{entry}'), info, glob)


def low(x, y):
    """The smaller wall and CPU times of two (wall, CPU) pairs."""
    return min(x[0], y[0]), min(x[1], y[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--lib', default=os.path.join(ROOT, 'build', 'libattnc.so'))
    ap.add_argument('--arch', default='sm_90a')
    ap.add_argument('--dtype', choices=sorted(DTYPES), default=None)
    ap.add_argument('--repeat', type=int, default=3)
    ap.add_argument('--schedules', action='store_true',
                    help="then a second table: the chunk kernel's unit with every phase, its sequential unit and its "
                         "grouped unit, each alone (CPU seconds, minimum of --repeat)")
    ap.add_argument('--grad', action='store_true',
                    help="the backward instead: its one unit against the units attnc_grad_kernel_new compiles on "
                         "this host (api/backward.c's grad_unit_plan), optimised and quick, and each kernel's code "
                         "in both")
    ap.add_argument('--cpus', type=int, default=os.cpu_count() or 1,
                    help="--grad: the units of a host of this many CPUs (default this one's)")
    ap.add_argument('specs', nargs='*', default=SPECS)
    a = ap.parse_args()
    L = C.CDLL(a.lib)
    L.attnc_ctx_new_v.argtypes = [C.c_int, C.POINTER(C.c_void_p)]
    L.attnc_spec_from_file.argtypes = [C.c_void_p, C.c_char_p, C.POINTER(C.c_void_p)]
    L.attnc_spec_override.argtypes = [C.c_void_p, C.c_uint32, C.c_int]
    L.attnc_emit.argtypes = [C.c_void_p, C.c_void_p, C.c_int, C.POINTER(CompileOptions), C.POINTER(Blob)]
    L.attnc_errmsg.restype = C.c_char_p
    L.attnc_errmsg.argtypes = [C.c_void_p]
    L.api_unit_source.restype = C.c_void_p
    L.api_unit_source.argtypes = [C.c_char_p, C.c_int, C.c_uint]
    L.api_get_cubins.argtypes = [C.c_void_p, C.c_char_p, C.c_size_t, C.POINTER(C.c_char_p), C.c_char_p, C.c_bool,
                                 C.c_int, C.POINTER(C.c_void_p), C.POINTER(C.c_size_t), C.POINTER(C.c_bool)]
    L.api_grad_units.argtypes = [C.c_void_p, C.c_void_p, C.c_long, C.POINTER(C.c_void_p), C.POINTER(C.c_uint32),
                                 C.POINTER(C.c_size_t)]
    libc = C.CDLL(None)
    libc.free.argtypes = [C.c_void_p]
    ctx = C.c_void_p()
    if L.attnc_ctx_new_v(L.attnc_version(), C.byref(ctx)):
        sys.exit('attnc_ctx_new failed')

    runs = [0]

    def cubins(srcs, quick=False):
        """[(image bytes)] of the sources compiled together (no cache; quick: api_compile's
        API_COMPILE_QUICK, what a tiered attnc_kernel_new compiles before it returns), and (wall, CPU)
        seconds.  Each compile's text starts with a declaration of its own (unused: no code changes): NVRTC 13
        on a host with a driver keeps what it compiles in a cache where a repeat would find it (bench/bench.py),
        and a comment did not make it miss there (the preprocessed text is what counts, it seems)."""
        n = len(srcs)
        runs[0] += 1
        arr = (C.c_char_p * n)(*[b'static __device__ int attnc_first_call_run_%d;\n' % runs[0] + s for s in srcs])
        imgs, sizes, hits = (C.c_void_p * n)(), (C.c_size_t * n)(), (C.c_bool * n)()
        t0, c0 = time.perf_counter(), time.process_time()
        st = L.api_get_cubins(ctx, b'unit', n, arr, a.arch.encode(), False, 1 if quick else 0, imgs, sizes, hits)
        t = (time.perf_counter() - t0, time.process_time() - c0)
        if st:
            sys.exit(L.attnc_errmsg(ctx).decode())
        out = [C.string_at(imgs[i], sizes[i]) for i in range(n)]
        for i in range(n):
            libc.free(imgs[i])
        return out, t

    # NVRTC's own start (opening the library, its first program) is paid once per process, by whichever
    # compile comes first: a tiny kernel pays it here, outside the times.
    cubins([b'extern "C" __global__ void warm(float *p) { p[threadIdx.x] = 1.f; }\n'])
    if a.grad:
        return grad_table(a, L, ctx, cubins, libc)
    dtype = a.dtype or "the spec's"
    print(f'# NVRTC to {a.arch} cubins, {os.cpu_count()} CPUs, minimum of {a.repeat} runs, s wall (s CPU); dtype {dtype}')
    print('| spec | one unit | now (optimised) | now (quick: the tiered JIT\'s first call) | decode (first decode launch) | now / one unit | same code |')
    print('|---|---|---|---|---|---|---|')
    sched_rows = []
    for name in a.specs:
        spec = C.c_void_p()
        path = name if name.endswith('.attn') else os.path.join(ROOT, 'specs', name + '.attn')
        if L.attnc_spec_from_file(ctx, path.encode(), C.byref(spec)):
            sys.exit(f'{path}: does not load')
        if a.dtype and L.attnc_spec_override(spec, 0, DTYPES[a.dtype]):
            sys.exit(f'{path}: --dtype {a.dtype} rejected')
        blob = Blob()
        if L.attnc_emit(ctx, spec, 0, None, C.byref(blob)):
            sys.exit(L.attnc_errmsg(ctx).decode())
        source = C.string_at(blob.data, blob.size)
        kernels = [e for e in KINDS if f'{e}('.encode() in source or
                   (e == 'attnc_linear' and b'#define ATTNC_ENTRY attnc_linear' in source)]
        def unit(e, phases):
            p = L.api_unit_source(source, KINDS[e], phases)
            u = C.string_at(p)
            libc.free(p)
            return u
        # each kernel alone with all its phases (the same code as in the one unit), and what
        # attnc_kernel_new compiles: the chunk kernel's sequential walk (codegen/codegen.h's
        # CG_PHASES_SEQUENTIAL, 0x01; CG_PHASES_GROUPED is 0x28), the softmax part's kernel
        units = {e: unit(e, 0) for e in kernels}
        now = [unit(e, 1 if e == 'attnc_linear' else 0) for e in kernels if e != 'attnc_decode']
        if b'#define ATTNC_GROUPED 1' in source:   # and the grouped walk's unit, at once (api/kernel.c)
            now.append(unit('attnc_linear', 0x28))
        best = {'one': (1e9, 1e9), 'now': (1e9, 1e9), 'quick': (1e9, 1e9), 'dec': (1e9, 1e9)}
        for _ in range(a.repeat):
            (whole,), t = cubins([source])
            best['one'] = low(best['one'], t)
            now_imgs, t = cubins(now)
            best['now'] = low(best['now'], t)
            best['quick'] = low(best['quick'], cubins(now, quick=True)[1])
            if 'attnc_decode' in units:
                (dec_img,), t = cubins([units['attnc_decode']])
                best['dec'] = low(best['dec'], t)
        # the same instructions: each kernel's sections in the one unit and in its own (all phases)
        same = True
        alone = [e for e in kernels if e != 'attnc_decode']
        own = dict(zip(alone, cubins([units[e] for e in alone])[0]))
        if 'attnc_decode' in units:
            own['attnc_decode'] = dec_img
        for e, img in own.items():
            fw, fo = kernel_facts(whole, e), kernel_facts(img, e)
            if fw != fo:
                same = False
                tw, to = fw[0], fo[0]
                ins = lambda t: [t[i:i + 16] for i in range(0, len(t), 16)]
                diff = sum(x != y for x, y in zip(ins(tw), ins(to)))
                ops = sorted(x[:2] for x in ins(tw)) == sorted(x[:2] for x in ins(to))
                print(f'# {name}: {e} differs: {"only the instructions" if fw[1:] == fo[1:] else "not only the instructions"}, '
                      f'{diff} of {len(tw) // 16} ({len(to) // 16}) differ, the same opcodes: {ops}', file=sys.stderr)
        fmt = lambda t: f'{t[0]:.3f} ({t[1]:.3f})'
        dec = fmt(best['dec']) if 'attnc_decode' in units else '-'
        print(f'| {name} | {fmt(best["one"])} | {fmt(best["now"])} | {fmt(best["quick"])} | {dec} | {best["now"][0] / best["one"][0]:.2f} | '
              f'{"yes" if same else "NO"} |')
        if a.schedules:
            cols = [units['attnc_linear'], unit('attnc_linear', 0x01)]
            cols.append(unit('attnc_linear', 0x28) if b'#define ATTNC_GROUPED 1' in source else None)
            cpu = [min(cubins([u])[1][1] for _ in range(a.repeat)) if u else None for u in cols]
            sched_rows.append(f'| {name} | ' + ' | '.join(f'{t:.3f}' if t is not None else '-' for t in cpu) + ' |')
    if a.schedules:
        print('\n# the chunk kernel alone, NVRTC CPU seconds (api/kernel.c compiles the sequential and grouped units at once)')
        print('| spec | every phase | sequential unit | grouped unit |\n|---|---|---|---|')
        print('\n'.join(sched_rows))

def static_shared(image, entry):
    """The bytes of `entry`'s .nv.shared section (its static shared memory), None where it has none."""
    shoff, = struct.unpack_from('<Q', image, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from('<HHH', image, 0x3A)
    heads = [struct.unpack_from('<IIQQQQIIQQ', image, shoff + i * shentsize) for i in range(shnum)]
    names = image[heads[shstrndx][4]:heads[shstrndx][4] + heads[shstrndx][5]]
    want = f'.nv.shared.{entry}'.encode()
    return next((h[5] for h in heads if names[h[0]:names.index(b'\0', h[0])] == want), None)


def same_code(name, whole, imgs, entries):
    """Whether every kernel of `entries` (unit index -> names) has the same code in its unit as in `whole`
    (kernel_facts but the .nv.shared section, whose size is reported: NVRTC's optimised compile gives every
    kernel of gated_deltanet's one unit a section of 1024 bytes that the kernels alone do not have); what
    differs goes to stderr."""
    same = True
    for u, names in entries.items():
        for e in names:
            fw, fo = kernel_facts(whole, e), kernel_facts(imgs[u], e)
            if fw[:1] + fw[2:] != fo[:1] + fo[2:]:
                same = False
                print(f'# {name}: {e} differs between the one unit and its own', file=sys.stderr)
            sw, so = static_shared(whole, e), static_shared(imgs[u], e)
            if sw != so:
                print(f'# {name}: {e}: static shared memory {sw} bytes in the one unit, {so} in its own', file=sys.stderr)
    return same


def grad_table(a, L, ctx, cubins, libc):
    """The backward's first compile: its one unit (every kernel) against the units attnc_grad_kernel_new
    compiles on a host of this many CPUs, at once (api_grad_units, as the handle plans them), optimised and
    quick; and whether each kernel's code is the same in both."""
    cpus = a.cpus
    print(f'# the backward, NVRTC to {a.arch} cubins, {os.cpu_count()} CPUs (units planned for {cpus}), minimum of {a.repeat} runs, s wall (s CPU)')
    print('| spec | units | one unit | units (optimised) | one unit quick | units (quick) | slowest unit alone, quick | units / one unit | same code |')
    print('|---|---|---|---|---|---|---|---|---|')
    for name in a.specs:
        spec = C.c_void_p()
        path = name if name.endswith('.attn') else os.path.join(ROOT, 'specs', name + '.attn')
        if L.attnc_spec_from_file(ctx, path.encode(), C.byref(spec)):
            sys.exit(f'{path}: does not load')
        def units(n_cpus):
            srcs, masks, n = (C.c_void_p * 16)(), (C.c_uint32 * 16)(), C.c_size_t()
            if L.api_grad_units(ctx, spec, n_cpus, srcs, masks, C.byref(n)):
                sys.exit(L.attnc_errmsg(ctx).decode())
            out = [C.string_at(srcs[u]) for u in range(n.value)]
            for u in range(n.value):
                libc.free(srcs[u])
            return out, [masks[u] for u in range(n.value)]
        (whole_src,), _ = units(1)
        split, masks = units(cpus)
        best = {k: (1e9, 1e9) for k in ('one', 'units', 'one_q', 'units_q')}
        for _ in range(a.repeat):
            (whole,), t = cubins([whole_src])
            best['one'] = low(best['one'], t)
            imgs, t = cubins(split)
            best['units'] = low(best['units'], t)
            best['one_q'] = low(best['one_q'], cubins([whole_src], quick=True)[1])
            best['units_q'] = low(best['units_q'], cubins(split, quick=True)[1])
        # the slowest unit alone, quick: the floor of the tiered JIT's first call on any number of CPUs
        alone = [(cubins([u], quick=True)[1][0], i) for i, u in enumerate(split)]
        slowest = max(alone)
        names = dict(re.findall(rb'#define ATTNC_BK_(\w+) (\d+)', whole_src))
        entry = {int(v): ('attnc_bwdp_' + k[2:].decode().lower() if k.startswith(b'P_') else 'attnc_bwd_' + k.decode().lower())
                 for k, v in names.items()}
        # kernels compiled for another arch only (the scanned walks' runs: sm_90) are in neither
        held = {u: [entry[i] for i in entry if m >> i & 1 and f'.text.{entry[i]}' in elf_sections(imgs[u])]
                for u, m in enumerate(masks)}
        same = same_code(name, whole, imgs, held)
        fmt = lambda t: f'{t[0]:.3f} ({t[1]:.3f})'
        slow = '+'.join(entry[i] for i in entry if masks[slowest[1]] >> i & 1)
        print(f'| {name} | {len(split)} | {fmt(best["one"])} | {fmt(best["units"])} | {fmt(best["one_q"])} | '
              f'{fmt(best["units_q"])} | {slowest[0]:.3f} ({slow}) | {best["units"][0] / best["one"][0]:.2f} | '
              f'{"yes" if same else "NO"} |')


if __name__ == '__main__':
    main()
