// codegen/support.cuh: what every generated kernel needs before its body: 16-bit float types without
// the toolkit's headers (so NVRTC needs no include path), conversions through PTX's cvt, the scalar
// functions the spec language names, loads of every input dtype and stores of every output dtype, and
// the tensor-core helpers (ldmatrix, mma.sync m16n8k16, fragment loads) both kernel bodies share.
// The generator emits ATTNC_ELT_F16 (1: fp16 tiles and mma), ATTNC_SPLIT (1: fp32 tiles, each product
// three bf16 mma; the plan's operands bf16x3, for fp32 inputs) and ATTNC_OUT_DTYPE before this, and
// may emit ATTNC_FAST_MATH (below).

// ATTNC_FAST_MATH 1: the spec's transcendental functions through the SFU's approximations (__expf,
// __logf, __fdividef: errors of a few 1e-7 over the ranges the functions below feed them, absolute for
// the logarithms (log-space gates, where that is a relative 1e-7 on a decay factor), relative
// otherwise), for kernels whose tiles are bf16 or fp16, where 2^-8 and 2^-11 of rounding dwarf it.  Under ncu the
// IEEE forms were 14% of gla's forward instructions (logsigmoid) and 5% of the delta rule's (sigmoid).
// Kernels with fp32 operands (1e-4 bounds) keep the IEEE forms; the backward's units follow the same rule.
#ifndef ATTNC_FAST_MATH
#define ATTNC_FAST_MATH 0
#endif

#if ATTNC_SPLIT
typedef float elt;            // one tile element: fp32, split into bf16 hi + lo at each mma
#else
typedef unsigned short elt;   // one bf16 or fp16 number, as bits
#endif
typedef unsigned elt2;        // two mma operands (bf16 or fp16), the lower column in the low half

#define ATTNC_DT_BF16 0
#define ATTNC_DT_FP16 1
#define ATTNC_DT_FP32 2

__device__ __forceinline__ float attnc_bf16_to_float(unsigned short x)
{
    return __uint_as_float(((unsigned)x) << 16);
}

__device__ __forceinline__ float attnc_f16_to_float(unsigned short x)
{
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x));
    return f;
}

__device__ __forceinline__ unsigned short attnc_float_to_bf16(float f)
{
    unsigned short x;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(x) : "f"(f));
    return x;
}

__device__ __forceinline__ unsigned short attnc_float_to_f16(float f)
{
    unsigned short x;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(x) : "f"(f));
    return x;
}

__device__ __forceinline__ float attnc_elt_to_float(elt x)
{
#if ATTNC_SPLIT
    return x;
#elif ATTNC_ELT_F16
    return attnc_f16_to_float(x);
#else
    return attnc_bf16_to_float(x);
#endif
}

__device__ __forceinline__ elt attnc_float_to_elt(float f)
{
#if ATTNC_SPLIT
    return f;
#elif ATTNC_ELT_F16
    return attnc_float_to_f16(f);
#else
    return attnc_float_to_bf16(f);
#endif
}

__device__ __forceinline__ elt2 attnc_float2_to_elt2(float lo, float hi)
{
    unsigned r;
#if ATTNC_ELT_F16
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
#else
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
#endif
    return r;
}

#if ATTNC_ELT_F16
#define ATTNC_MMA_TYPE "f16"
#else
#define ATTNC_MMA_TYPE "bf16"
#endif

// Element i of a tensor stored as bf16, fp16 or fp32.
template <int DT>
__device__ __forceinline__ float attnc_load(const void *base, size_t i)
{
    if constexpr (DT == ATTNC_DT_BF16)
        return attnc_bf16_to_float(((const unsigned short *)base)[i]);
    else if constexpr (DT == ATTNC_DT_FP16)
        return attnc_f16_to_float(((const unsigned short *)base)[i]);
    else
        return ((const float *)base)[i];
}

// Waits for every asynchronous copy (cp.async) this thread issued: the staged input rows of the forward and
// the parallel backward (then a barrier makes them everyone's).
__device__ __forceinline__ void attnc_stage_wait()
{
    asm volatile("cp.async.wait_all;\n" ::: "memory");
}

// Element i of an input tensor (the generated value DAGs' loads): a read-only global load (ld.global.nc),
// which also tells the compiler that it cannot alias the shared-memory stores around it, so the loads of
// several tokens' rows may be in flight together (bp_role_rows2).  Inputs are never written by a kernel.
template <int DT>
__device__ __forceinline__ float attnc_load_in(const void *base, size_t i)
{
    if constexpr (DT == ATTNC_DT_BF16)
        return attnc_bf16_to_float(__ldg((const unsigned short *)base + i));
    else if constexpr (DT == ATTNC_DT_FP16)
        return attnc_f16_to_float(__ldg((const unsigned short *)base + i));
    else
        return __ldg((const float *)base + i);
}

// Elements i .. i+3 (i a multiple of 4, the row 16-byte aligned) in one 8- or 16-byte load; zeros where
// `in_range` is false (the lanes past the end of a row).
template <int DT>
__device__ __forceinline__ void attnc_load4(const void *base, size_t i, float *x, bool in_range)
{
    if (!in_range) {
        x[0] = x[1] = x[2] = x[3] = 0.f;
    } else if constexpr (DT == ATTNC_DT_FP32) {
        const float4 u = *(const float4 *)((const float *)base + i);
        x[0] = u.x, x[1] = u.y, x[2] = u.z, x[3] = u.w;
    } else {
        const uint2 u = *(const uint2 *)((const unsigned short *)base + i);
        const unsigned short h[4] = {(unsigned short)(u.x & 0xffffu), (unsigned short)(u.x >> 16),
                                     (unsigned short)(u.y & 0xffffu), (unsigned short)(u.y >> 16)};
#pragma unroll
        for (int j = 0; j < 4; j++)
            x[j] = DT == ATTNC_DT_BF16 ? attnc_bf16_to_float(h[j]) : attnc_f16_to_float(h[j]);
    }
}

// Elements i .. i+3 of a staged 16-bit row as they are (8 bytes; i a multiple of 4): zeros past the row's
// end (in_range false: no load) and for a padding row (real false: loaded, then dropped, so that the
// load needs no branch; a chunk's staged rows all lie inside the staging area).
__device__ __forceinline__ uint2 attnc_load4_raw(const unsigned char *stage, size_t i, bool in_range, bool real)
{
    const uint2 u = in_range ? *(const uint2 *)(stage + 2 * i) : make_uint2(0u, 0u);
    return real ? u : make_uint2(0u, 0u);
}

// Four consecutive tile elements (aligned to their size) in one store.
__device__ __forceinline__ void attnc_store4(elt *p, float a, float b, float c, float d)
{
#if ATTNC_SPLIT
    *(float4 *)p = make_float4(a, b, c, d);
#else
    *(uint2 *)p = make_uint2(attnc_float2_to_elt2(a, b), attnc_float2_to_elt2(c, d));
#endif
}

// Two adjacent output elements (i even).
__device__ __forceinline__ void attnc_store_out2(void *base, size_t i, float a, float b)
{
#if ATTNC_OUT_DTYPE == ATTNC_DT_FP32
    *(float2 *)((float *)base + i) = make_float2(a, b);
#elif ATTNC_OUT_DTYPE == ATTNC_DT_FP16
    unsigned r;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(b), "f"(a));
    *(unsigned *)((unsigned short *)base + i) = r;
#else
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(b), "f"(a));
    *(unsigned *)((unsigned short *)base + i) = r;
#endif
}

// x, opaque to the compiler: what is formed from it is formed where it is used (codegen/emit_value.c reads
// the head index through it, so that a value of the head alone is not hoisted out of the chunk loop and held
// in a register across it: kernels at their register cap spilled so).
__device__ __forceinline__ int attnc_opaque(int x)
{
    asm volatile("" : "+r"(x));
    return x;
}

// 2^x in one SFU instruction (ex2.approx.ftz): what exp2f does, less its rescaling of results under
// 2^-126, which the kernels' decay factors would only round to zero anyway.
__device__ __forceinline__ float attnc_exp2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

__device__ __forceinline__ float attnc_exp(float x)
{
#if ATTNC_FAST_MATH
    return __expf(x);
#else
    return expf(x);
#endif
}

// log(1 + e^-|x|), e^-|x| in (0, 1]: under fast math, __logf(1 + y) except where y < 2^-12, where
// 1 + y would lose y's digits and log1p(y) = y - y^2/2 to fp32 precision.
__device__ __forceinline__ float attnc_log1p_exp_neg_abs(float x)
{
#if ATTNC_FAST_MATH
    const float y = __expf(-fabsf(x));
    return y < 2.44140625e-4f ? y - 0.5f * y * y : __logf(1.f + y);
#else
    return log1pf(expf(-fabsf(x)));
#endif
}

// The scalar functions of the spec language (ir/ops.def), as the float64 reference defines them.
__device__ __forceinline__ float attnc_sigmoid(float x)
{
#if ATTNC_FAST_MATH
    const float y = __expf(-fabsf(x));   // in (0, 1]: no overflow, the quotient's divisor in [1, 2]
    return x >= 0.f ? __fdividef(1.f, 1.f + y) : __fdividef(y, 1.f + y);
#else
    return x >= 0.f ? 1.f / (1.f + expf(-x)) : expf(x) / (1.f + expf(x));
#endif
}

__device__ __forceinline__ float attnc_logsigmoid(float x)
{
    return fminf(x, 0.f) - attnc_log1p_exp_neg_abs(x);
}

__device__ __forceinline__ float attnc_softplus(float x)
{
    return fmaxf(x, 0.f) + attnc_log1p_exp_neg_abs(x);
}

__device__ __forceinline__ float attnc_elu(float x)
{
    return x > 0.f ? x : expm1f(x);
}

__device__ __forceinline__ float attnc_silu(float x)
{
    return x * attnc_sigmoid(x);
}

__device__ __forceinline__ float attnc_warp_sum(float x)
{
#pragma unroll
    for (int o = 16; o; o >>= 1)
        x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

// Channel `idx` of a vector spread over the warp's lanes: lane (idx % 128) / 4 holds it in slot
// 4 (idx / 128) + idx % 4 (codegen/emit_value.c, cg_run4_chan).  Every lane calls it (the shuffles need the
// whole warp).
template <int NS>
__device__ __forceinline__ float attnc_fetch(const float (&x)[NS], int idx)
{
    float r = 0.f;
    const int slot = (idx >> 7) * 4 + (idx & 3);
#pragma unroll
    for (int s = 0; s < NS; s++) {
        float t = __shfl_sync(0xffffffffu, x[s], (idx & 127) >> 2);
        if (slot == s)
            r = t;
    }
    return r;
}

// Output channel c of taylor2 over d inputs: [1, x/d^(1/4), x_i^2/(sqrt2 sqrt d), x_i x_j/sqrt d (i<j)].
template <int NS>
__device__ __forceinline__ float attnc_taylor2(const float (&x)[NS], int d, int c)
{
    int kind, ia = 0, ib = 0;
    if (c == 0) {
        kind = 0;
    } else if (c <= d) {
        kind = 1;
        ia = c - 1;
    } else if (c <= 2 * d) {
        kind = 2;
        ia = c - d - 1;
    } else {
        kind = 3;
        int p = c - 2 * d - 1, i = 0;
        while (i < d - 1 && p >= d - 1 - i) {
            p -= d - 1 - i;
            i++;
        }
        ia = i;
        ib = min(i + 1 + p, d - 1);
    }
    float xa = attnc_fetch(x, ia), xb = attnc_fetch(x, ib);
    float rd = sqrtf((float)d);
    if (kind == 0)
        return 1.f;
    if (kind == 1)
        return xa * rsqrtf(rd);
    if (kind == 2)
        return xa * xa / (1.41421356237309515f * rd);
    return xa * xb / rd;
}

// Tokens [bos, eos) of sequence n: from cu_seqlens, or n * seqlen onwards when the batch is uniform.
__device__ __forceinline__ void attnc_seq_bounds(const int *cu_seqlens, int seqlen, int n, int &bos, int &eos)
{
    if (cu_seqlens) {
        bos = cu_seqlens[n];
        eos = cu_seqlens[n + 1];
    } else {
        bos = n * seqlen;
        eos = bos + seqlen;
    }
}

#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f
#define NEG_BIG (-1.0e30f)

// ---- tensor-core helpers ----------------------------------------------------------------------------
__device__ __forceinline__ unsigned smem_u32(const void *p)
{
    return (unsigned)__cvta_generic_to_shared(p);
}

// 16 bytes from global to shared memory, asynchronously (cp.async; attnc_stage_wait or a wait_group then
// a barrier before they are read).
__device__ __forceinline__ void attnc_cp16(void *to, const void *from)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(smem_u32(to)), "l"(from) : "memory");
}

// attnc_cp16, or 16 zero bytes where `copy` is false (from is then not read, but must be a global address)
__device__ __forceinline__ void attnc_cp16_zfill(void *to, const void *from, bool copy)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(smem_u32(to)), "l"(from), "r"(copy ? 16 : 0) : "memory");
}
// One float (a chunk's decay that a walk reads a few chunks later: a global load on the walk's chain waited
// about a thousand cycles).
__device__ __forceinline__ void attnc_cp4(void *to, const void *from)
{
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" :: "r"(smem_u32(to)), "l"(from) : "memory");
}

// ROWS rows of UNITS 16-byte units from src (row stride src_ld bytes) into dst (dst_ld) by a CTA of THREADS,
// with attnc_cp16; each thread's share unrolled with constant strides (a loop over units with its index
// arithmetic per copy took 61 % of the split delta rule's state walk's stall samples, ncu on the H200);
// none where `any` is false.
template <int ROWS, int UNITS, int THREADS>
__device__ __forceinline__ void attnc_cp_rows(void *dst, int dst_ld, const void *src, size_t src_ld, bool any)
{
    constexpr int N = ROWS * UNITS;
#pragma unroll
    for (int k = 0; k < (N + THREADS - 1) / THREADS; k++) {
        const int u = (int)threadIdx.x + k * THREADS;
        if (any && (N % THREADS == 0 || u < N))
            attnc_cp16((unsigned char *)dst + (u / UNITS) * dst_ld + (u % UNITS) * 16,
                       (const unsigned char *)src + (size_t)(u / UNITS) * src_ld + (u % UNITS) * 16);
    }
}

// The same copy with rows nrows .. ROWS - 1 as zeros (their source is not read): a chunk's rows past its
// sequence's end.  Each thread's share a loop of constant trip count, not unrolled: unrolled, the delta rule's
// two-CTA adjoint spilled 12 bytes at 128 registers (gated_delta_rule), and with u < N as its condition
// (DeltaNet); ptxas's allocation, not a rule.
template <int ROWS, int UNITS, int THREADS>
__device__ __forceinline__ void attnc_cp_rows_zfill(void *dst, int dst_ld, const void *src, size_t src_ld, int nrows)
{
    constexpr int N = ROWS * UNITS;
#pragma unroll 1
    for (int k = 0; k < (N + THREADS - 1) / THREADS; k++) {
        const int u = (int)threadIdx.x + k * THREADS, r = u / UNITS;
        if (N % THREADS == 0 || u < N)
            attnc_cp16_zfill((unsigned char *)dst + r * dst_ld + (u % UNITS) * 16,
                             (const unsigned char *)src + (size_t)min(r, nrows - 1) * src_ld + (u % UNITS) * 16,
                             r < nrows);
    }
}

__device__ __forceinline__ void ldsm_x4(unsigned &r0, unsigned &r1, unsigned &r2, unsigned &r3, const void *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(smem_u32(p)));
}

__device__ __forceinline__ void ldsm_x4_t(unsigned &r0, unsigned &r1, unsigned &r2, unsigned &r3, const void *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(smem_u32(p)));
}

// max(m, |a|), NaN where either is NaN (max.NaN, sm_80 and later: one instruction where a compare and a
// select per element kept the NaN before).
__device__ __forceinline__ float attnc_absmax_nan(float m, float a)
{
    float r;
    asm("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(m), "f"(fabsf(a)));
    return r;
}

// ---- state images of 16-bit mantissas with a power-of-two scale per row and slice ----------------------
// (the backward's chunk-parallel schedule stores every chunk's state so, linear_bwd_par_kernel.cuh's bp_img_store;
// the forward's walk forms the same images where it saves its states for the backward, linear_kernel.cuh)
// An image row's scale from its max |x| mx (a NaN kept): e = ilogb(mx) - 14 (at least -126); returns 2^e (NaN
// for a row with an inf or NaN) and sets up = 2^-e, the factor that makes the mantissas.
__device__ __forceinline__ float attnc_img_exp(float mx, float &up)
{
    const int ex = mx > 0.f ? max(((__float_as_int(mx) >> 23) & 0xff) - 127 - 14, -126) : 0;
    up = __int_as_float((127 - ex) << 23);
    return mx <= 3.402823466e38f ? __int_as_float((127 + ex) << 23) : __int_as_float(0x7fffffff);
}

// Two mantissas (x, y already scaled: |x|, |y| < 2^15) as one word, x in the low half: rint(x) (ties to
// even) saturated to 32767, as cvt.rni.sat.s16.f32 gives it, through the float adder rather than the
// conversion unit (a quarter of the rate: 8 % of the walks' stall samples, ncu).  x + 1.5 * 2^23 rounds x to
// an integer in the low bits of the sum's mantissa (the sum stays in [2^23, 2^24) for |x| < 2^22), whose low
// 16 bits are then its two's complement; the min saturates a rounding up to 2^15.  A NaN or an inf gives
// another mantissa than the conversion's, in a row whose scale is NaN (attnc_img_exp): the image decodes the same.
__device__ __forceinline__ unsigned attnc_pack_s16(float x, float y)
{
    constexpr float ROUND = 12582912.f, TOP = ROUND + 32767.f;
    return (__float_as_uint(fminf(x + ROUND, TOP)) & 0xffffu) | (__float_as_uint(fminf(y + ROUND, TOP)) << 16);
}

// A quad's 4 x 4 words transposed: lane q's w[j] (its column pair of n-tile j of an mma fragment row)
// becomes the quad's lane j's word of n-tile q, so that each lane holds 8 consecutive columns, one 16-byte
// store instead of four of 4 bytes (ncu, scanned walks at T = 32768: the 4-byte image stores backed up
// the store queue, a quarter of the walk's stall samples).  Two exchanges of 2 x 2 blocks.
__device__ __forceinline__ void attnc_quad_transpose(unsigned (&w)[4], int lane)
{
#pragma unroll
    for (int o = 2; o > 0; o >>= 1) {   // o = 2: across lanes q ^ 2 (blocks); o = 1: within them
        const bool hi = lane & o;
#pragma unroll
        for (int j = 0; j < 4; j++)
            if ((j & o) == 0) {
                const unsigned got = __shfl_xor_sync(0xffffffffu, hi ? w[j] : w[j + o], o);
                if (hi)
                    w[j] = got;
                else
                    w[j + o] = got;
            }
    }
}

// A barrier for `threads` threads (whole warps) of the CTA, id 1..15 (0 is __syncthreads').
__device__ __forceinline__ void attnc_bar_named(unsigned id, unsigned threads)
{
    asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}
// Arrives at barrier id without waiting: what this thread wrote before is visible to the threads that
// complete the barrier's bar.sync (a producer handing shared memory to consumers).
__device__ __forceinline__ void attnc_bar_arrive(unsigned id, unsigned threads)
{
    asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(threads) : "memory");
}
// Bulk copies from shared to global memory by the TMA unit (cp.async.bulk, sm_90): a row of bytes a thread, off
// the issuing warps' load/store path.  The writers of the source fence it for the async proxy before the
// barrier after which it is copied (attnc_bulk_fence); the issuer waits until its copies have read their
// source before that memory is written again (attnc_bulk_wait_read).  ATTNC_BULK_STORE: where they exist
// (and on tools/cuda_cpu, which copies at once).
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900
#define ATTNC_BULK_STORE 1
#else
#define ATTNC_BULK_STORE 0
#endif
__device__ __forceinline__ void attnc_bulk_fence()
{
#if ATTNC_BULK_STORE
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void attnc_bulk_store(void *dst, const void *src, unsigned bytes)
{
#if ATTNC_BULK_STORE
    asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;\ncp.async.bulk.commit_group;\n"
                 ::"l"(dst), "r"(smem_u32(src)), "r"(bytes) : "memory");
#endif
}
__device__ __forceinline__ void attnc_bulk_wait_read()
{
#if ATTNC_BULK_STORE
    asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
#endif
}
// Hopper's register reallocation between the warpgroups of a CTA (setmaxnreg, sm_90a): the warp-specialised
// walk's producers give registers up, its consumers take them.  A no-op elsewhere (the walk is chosen only
// for sm_90a) and in the JIT's quick compile (ATTNC_QUICK_COMPILE, api/cubin.c), whose ptxas ignores
// setmaxnreg anyway and says so on the process's stderr.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL) && !defined(ATTNC_QUICK_COMPILE)
#define ATTNC_SETMAXNREG 1
#else
#define ATTNC_SETMAXNREG 0
#endif
template <unsigned N>
__device__ __forceinline__ void attnc_regs_release()
{
#if ATTNC_SETMAXNREG
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
#endif
}
template <unsigned N>
__device__ __forceinline__ void attnc_regs_claim()
{
#if ATTNC_SETMAXNREG
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
#endif
}

__device__ __forceinline__ void mma16816(float *d, const unsigned *a, unsigned b0, unsigned b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." ATTNC_MMA_TYPE "." ATTNC_MMA_TYPE
                 ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two mma operands (bf16 or fp16) from floats.
__device__ __forceinline__ unsigned pack2(float lo, float hi)
{
    return attnc_float2_to_elt2(lo, hi);
}

struct __align__(16) attnc_u4 {
    unsigned x, y, z, w;
};

// An mma operand fragment: A (16 x 16) or B (two n-tiles of 16 x 8: registers 0-1 the first, 2-3 the
// second), four registers of operand pairs in the layout of mma.m16n8k16.  With bf16x3 operands it also
// holds the low parts, lo = bf16(x - hi), so that hi*hi + hi*lo + lo*hi carries about 16 bits of x.
struct frag {
    unsigned hi[4];
#if ATTNC_SPLIT
    unsigned lo[4];
#endif
};

__device__ __forceinline__ void frag_set(frag &f, int i, float x0, float x1)
{
    const unsigned h = pack2(x0, x1);
    f.hi[i] = h;
#if ATTNC_SPLIT
    f.lo[i] = pack2(x0 - __uint_as_float(h << 16), x1 - __uint_as_float(h & 0xffff0000u));
#endif
}

// d (16 x 8) += A * (n-tile `half` of B).  bf16x3: the small products first.
__device__ __forceinline__ void mma(float *d, const frag &a, const frag &b, int half)
{
#if ATTNC_SPLIT
    mma16816(d, a.lo, b.hi[2 * half], b.hi[2 * half + 1]);
    mma16816(d, a.hi, b.lo[2 * half], b.lo[2 * half + 1]);
#endif
    mma16816(d, a.hi, b.hi[2 * half], b.hi[2 * half + 1]);
}

// Tile elements as floats and back: eight consecutive elements of a row (16-byte aligned), two (aligned
// to the pair), and a copy of eight (zeros when src is null).
__device__ __forceinline__ void ld8(float *x, const elt *p)
{
#if ATTNC_SPLIT
    const float4 a = *reinterpret_cast<const float4 *>(p), b = *reinterpret_cast<const float4 *>(p + 4);
    x[0] = a.x, x[1] = a.y, x[2] = a.z, x[3] = a.w, x[4] = b.x, x[5] = b.y, x[6] = b.z, x[7] = b.w;
#else
    const attnc_u4 u = *reinterpret_cast<const attnc_u4 *>(p);
    const unsigned w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        x[2 * i] = attnc_elt_to_float((elt)(w[i] & 0xffffu));
        x[2 * i + 1] = attnc_elt_to_float((elt)(w[i] >> 16));
    }
#endif
}

__device__ __forceinline__ void st8(elt *p, const float *x)
{
#if ATTNC_SPLIT
    *reinterpret_cast<float4 *>(p) = make_float4(x[0], x[1], x[2], x[3]);
    *reinterpret_cast<float4 *>(p + 4) = make_float4(x[4], x[5], x[6], x[7]);
#else
    *reinterpret_cast<attnc_u4 *>(p) = attnc_u4{pack2(x[0], x[1]), pack2(x[2], x[3]), pack2(x[4], x[5]), pack2(x[6], x[7])};
#endif
}

// Two consecutive tile elements as floats, the first at an even index: one 4-byte shared load (8 for fp32
// tiles) where two 2-byte loads were (gla's fragments built element by element; bench/RESULTS.md thirteenth
// session); and two consecutive floats likewise.
__device__ __forceinline__ float2 ld2(const elt *p)
{
#if ATTNC_SPLIT
    return *reinterpret_cast<const float2 *>(p);
#else
    const unsigned u = *reinterpret_cast<const unsigned *>(p);
    return make_float2(attnc_elt_to_float((elt)(u & 0xffffu)), attnc_elt_to_float((elt)(u >> 16)));
#endif
}

__device__ __forceinline__ float2 ldf2(const float *p)
{
    return *reinterpret_cast<const float2 *>(p);
}
__device__ __forceinline__ void stf2(float *p, float a, float b)
{
    *reinterpret_cast<float2 *>(p) = make_float2(a, b);
}

__device__ __forceinline__ void st2(elt *p, float a, float b)
{
#if ATTNC_SPLIT
    *reinterpret_cast<float2 *>(p) = make_float2(a, b);
#else
    *reinterpret_cast<unsigned *>(p) = pack2(a, b);
#endif
}

__device__ __forceinline__ void copy8(elt *dst, const elt *src)
{
    constexpr int N = 8 * sizeof(elt) / 16;   // 16-byte units
#pragma unroll
    for (int i = 0; i < N; i++)
        reinterpret_cast<attnc_u4 *>(dst)[i] = src ? reinterpret_cast<const attnc_u4 *>(src)[i] : attnc_u4{0u, 0u, 0u, 0u};
}

// Fragment loads from shared tiles.  16-bit tiles go through ldmatrix; fp32 tiles are read element by
// element at the positions ldmatrix would deliver (lane: row group gr = lane / 4, column pair tq = lane % 4)
// and split.  Register i of a fragment covers rows gr + 8 (i & 1) and columns 2 tq + 8 (i >> 1) of A, or
// n = gr + 8 (i >> 1), k = 2 tq + 8 (i & 1) of B.

// A: rows [r0, r0+16), reduction columns [c0, c0+16) of a row-major tile.
__device__ __forceinline__ void load_a(frag &a, const elt *tile, int ld, int r0, int c0, int lane)
{
#if ATTNC_SPLIT
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float2 x = *reinterpret_cast<const float2 *>(tile + (r0 + (lane >> 2) + (i & 1) * 8) * ld + c0 +
                                                           (lane & 3) * 2 + (i >> 1) * 8);
        frag_set(a, i, x.x, x.y);
    }
#else
    ldsm_x4(a.hi[0], a.hi[1], a.hi[2], a.hi[3], tile + (r0 + (lane & 15)) * ld + c0 + (lane >> 4) * 8);
#endif
}

// A of the transpose of a row-major tile: A[m][kr] = tile[kr][m], m in [m0, m0+16), kr in [k0, k0+16).
__device__ __forceinline__ void load_a_t(frag &a, const elt *tile, int ld, int m0, int k0, int lane)
{
#if ATTNC_SPLIT
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const elt *t = tile + (k0 + (lane & 3) * 2 + (i >> 1) * 8) * ld + m0 + (lane >> 2) + (i & 1) * 8;
        frag_set(a, i, t[0], t[ld]);
    }
#else
    int mi = lane >> 3;
    ldsm_x4_t(a.hi[0], a.hi[1], a.hi[2], a.hi[3], tile + (k0 + (lane & 7) + (mi >> 1) * 8) * ld + m0 + (mi & 1) * 8);
#endif
}

// B of two n-tiles [n0, n0+16) x reduction [k0, k0+16) from a tile stored [n][k] (n-major).
__device__ __forceinline__ void load_b_nk(frag &b, const elt *tile, int ld, int n0, int k0, int lane)
{
#if ATTNC_SPLIT
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float2 x = *reinterpret_cast<const float2 *>(tile + (n0 + (lane >> 2) + (i >> 1) * 8) * ld + k0 +
                                                           (lane & 3) * 2 + (i & 1) * 8);
        frag_set(b, i, x.x, x.y);
    }
#else
    int mi = lane >> 3;
    ldsm_x4(b.hi[0], b.hi[1], b.hi[2], b.hi[3], tile + (n0 + (lane & 7) + (mi >> 1) * 8) * ld + k0 + (mi & 1) * 8);
#endif
}

// The same from a tile stored [k][n] (k-major), through ldmatrix.trans.
__device__ __forceinline__ void load_b_kn(frag &b, const elt *tile, int ld, int n0, int k0, int lane)
{
#if ATTNC_SPLIT
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const elt *t = tile + (k0 + (lane & 3) * 2 + (i & 1) * 8) * ld + n0 + (lane >> 2) + (i >> 1) * 8;
        frag_set(b, i, t[0], t[ld]);
    }
#else
    int mi = lane >> 3;
    ldsm_x4_t(b.hi[0], b.hi[1], b.hi[2], b.hi[3], tile + (k0 + (lane & 7) + (mi & 1) * 8) * ld + n0 + (mi >> 1) * 8);
#endif
}

// acc[16 x 8*NT] += a * B's k-step kt (rows kt*16 .. kt*16 + 15 of B), NT n-tiles from n0; B from a tile
// stored [n][k] (B_KMAJOR false) or [k][n] (true, through ldmatrix.trans).
template <int NT, bool B_KMAJOR>
__device__ __forceinline__ void mma_kstep(float (*acc)[4], const frag &a, const elt *b_tile, int ldb, int n0, int kt, int lane)
{
#pragma unroll
    for (int nt = 0; nt < NT; nt += 2) {
        frag b;
        if constexpr (B_KMAJOR)
            load_b_kn(b, b_tile, ldb, n0 + nt * 8, kt * 16, lane);
        else
            load_b_nk(b, b_tile, ldb, n0 + nt * 8, kt * 16, lane);
        mma(acc[nt], a, b, 0);
        if (nt + 1 < NT)
            mma(acc[nt + 1], a, b, 1);
    }
}

// The A fragment of k-step kt from a 16-row block held in registers in accumulator layout (n-tiles 2 kt and
// 2 kt + 1 of p), rounded to the tiles' type.
__device__ __forceinline__ void frag_from_acc(frag &a, const float (*p)[4], int kt)
{
    frag_set(a, 0, p[2 * kt][0], p[2 * kt][1]);
    frag_set(a, 1, p[2 * kt][2], p[2 * kt][3]);
    frag_set(a, 2, p[2 * kt + 1][0], p[2 * kt + 1][1]);
    frag_set(a, 3, p[2 * kt + 1][2], p[2 * kt + 1][3]);
}

// acc[16 x 8*NT] += A[16 x 16*KT] * B, A from a row-major tile at row r0; B as mma_kstep's.
template <int NT, int KT, bool B_KMAJOR>
__device__ __forceinline__ void mm_rows(float (*acc)[4], const elt *a_tile, int lda, int r0, const elt *b_tile, int ldb,
                                        int n0, int lane)
{
#pragma unroll
    for (int kt = 0; kt < KT; kt++) {
        frag a;
        load_a(a, a_tile, lda, r0, kt * 16, lane);
        mma_kstep<NT, B_KMAJOR>(acc, a, b_tile, ldb, n0, kt, lane);
    }
}

// acc[16 x 8*NT] += P * B where P (16 x 16*KT) is held in registers in accumulator layout; B as mma_kstep's.
template <int NT, int KT, bool B_KMAJOR = true>
__device__ __forceinline__ void mm_regs(float (*acc)[4], const float (*p)[4], const elt *b_tile, int ldb, int n0, int lane)
{
#pragma unroll
    for (int kt = 0; kt < KT; kt++) {
        frag a;
        frag_from_acc(a, p, kt);
        mma_kstep<NT, B_KMAJOR>(acc, a, b_tile, ldb, n0, kt, lane);
    }
}

// Reduce over the 4 lanes of a quad (the lanes holding one accumulator row).
__device__ __forceinline__ float quad_sum(float x)
{
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

__device__ __forceinline__ float quad_max(float x)
{
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
