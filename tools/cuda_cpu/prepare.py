#!/usr/bin/env python3
"""tools/cuda_cpu/prepare.py: turns a generated translation unit (attnc compile [--grad] --emit cuda)
into C++ that tools/cuda_cpu/prelude.h runs on the CPU, one fiber per CUDA thread: the PTX inline
assembly of support.cuh (conversions, ex2, ldmatrix, mma.sync) is replaced by the prelude's emulations, the
dynamic shared memory by the CTA's buffer, and the whole unit is wrapped in a namespace so that two units
(the sequential and the parallel schedule) link into one program.
usage: prepare.py IN.cu OUT.h NAMESPACE"""
import re
import sys

src = open(sys.argv[1]).read()
ns = sys.argv[3]

# function bodies whose PTX the prelude emulates: (signature prefix, replacement body)
bodies = {
    "float attnc_f16_to_float(unsigned short x)": "{ return cpu_f16_to_float(x); }",
    "unsigned short attnc_float_to_bf16(float f)": "{ return cpu_float_to_bf16(f); }",
    "unsigned short attnc_float_to_f16(float f)": "{ return cpu_float_to_f16(f); }",
    "elt2 attnc_float2_to_elt2(float lo, float hi)": "{ return cpu_pack2(lo, hi, ATTNC_ELT_F16); }",
    "float attnc_exp2(float x)": "{ return exp2f(x); }",
    "unsigned smem_u32(const void *p)": "{ (void)p; return 0u; }",
    "void ldsm_x4(unsigned &r0, unsigned &r1, unsigned &r2, unsigned &r3, const void *p)":
        "{ cpu_ldsm(r0, r1, r2, r3, p, false); }",
    "void ldsm_x4_t(unsigned &r0, unsigned &r1, unsigned &r2, unsigned &r3, const void *p)":
        "{ cpu_ldsm(r0, r1, r2, r3, p, true); }",
    "void mma16816(float *d, const unsigned *a, unsigned b0, unsigned b1)": "{ cpu_mma16816(d, a, b0, b1, ATTNC_ELT_F16); }",
}
# bodies a unit from an older build may not have (tools/cuda_cpu/fwd_run.sh compares two builds)
optional = {
    "void attnc_bar_named(unsigned id, unsigned threads)": "{ cpu_bar_named(id, threads); }",
    "float attnc_absmax_nan(float m, float a)": "{ return cpu_absmax_nan(m, a); }",
    "unsigned bd_bf16x2(float x0, float x1)": "{ return cpu_pack2(x0, x1, 0); }",
    "int attnc_opaque(int x)": "{ return x; }",
    "void attnc_bar_arrive(unsigned id, unsigned threads)": "{ cpu_bar_arrive(id, threads); }",
    "void attnc_regs_release()": "{}",
    "void attnc_regs_claim()": "{}",
    "void bd_mma_bf16(float *d, const unsigned *a, unsigned b0, unsigned b1)": "{ cpu_mma16816(d, a, b0, b1, 0); }",
    # the bulk copies complete at once
    "void attnc_bulk_fence()": "{}",
    "void attnc_bulk_store(void *dst, const void *src, unsigned bytes)": "{ std::memcpy(dst, src, bytes); }",
    "void attnc_bulk_wait_read()": "{}",
}


def replace_body(text, sig, body):
    """Every definition of sig (a unit with wide kernels defines the kernel files' functions twice)."""
    at, done = text.find(sig), False
    while at >= 0:
        open_at = text.index("{", at + len(sig))
        depth, i = 0, open_at
        while True:
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        text, done = text[:open_at] + body + text[i + 1:], True
        at = text.find(sig, open_at + len(body))
    return text, done


for sig, body in list(bodies.items()) + list(optional.items()):
    src, done = replace_body(src, sig, body)
    if not done and sig not in optional:
        sys.exit("prepare.py: no function '%s' in the unit" % sig)
# the remaining stores of two operands (attnc_store_out2's cvt.rn.*x2) go through the emulated pack
src = re.sub(r'asm\("cvt\.rn\.(b?f16)x2\.f32 %0, %1, %2;" : "=r"\(r\) : "f"\(b\), "f"\(a\)\);',
             lambda m: "r = cpu_pack2(a, b, %d);" % (0 if m.group(1) == "bf16" else 1), src)
# the forward's staging: cp.async becomes a plain copy (the copies complete at once, so waiting and
# committing groups are no-ops)
src = re.sub(r'asm volatile\("cp\.async\.c[ag]\.shared\.global \[%0\], \[%1\], (\d+);\\n" :: "r"\(smem_u32\(to\)\), '
             r'"l"\(from\) : "memory"\);', r"std::memcpy(to, from, \1);", src)
src = src.replace('asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\\n" :: "r"(smem_u32(to)), "l"(from), '
                  '"r"(copy ? 16 : 0) : "memory");', "if (copy) std::memcpy(to, from, 16); else std::memset(to, 0, 16);")
src = src.replace('asm volatile("cp.async.wait_all;\\n" ::: "memory");', "")
src = src.replace('asm volatile("cp.async.commit_group;\\n" ::: "memory");', "")
src = re.sub(r'asm volatile\("cp\.async\.wait_group [^"]*"[^;]*\);', "(void)0;", src)
src = src.replace("extern __shared__ __align__(128) unsigned char smem[];", "unsigned char *smem = cpu_smem;")
src = src.replace('extern "C" ', "")
src = src.replace("extern __shared__ __align__(128) float sm[];", "float *sm = (float *)cpu_smem;")
src = src.replace("extern __shared__ __align__(128) unsigned char bsm[];", "unsigned char *bsm = cpu_smem;")
src = re.sub(r"__shared__ float (\w+)\[", r"static thread_local float \1[", src)
left = [l for l in src.splitlines() if re.search(r"\basm\b", l) and not l.strip().startswith("//")]
if left:
    sys.exit("prepare.py: inline assembly left:\n" + "\n".join(left))
open(sys.argv[2], "w").write("namespace %s {\n%s\n}   // namespace %s\n" % (ns, src, ns))
