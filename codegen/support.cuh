// codegen/support.cuh: what every generated kernel needs before its body: 16-bit float types without
// the toolkit's headers (so NVRTC needs no include path), conversions through PTX's cvt, the scalar
// functions the spec language names, loads of every input dtype and stores of every output dtype.
// The generator emits ATTNC_ELT_F16 (0: bf16 tiles and mma, 1: fp16) and ATTNC_OUT_DTYPE before this.

typedef unsigned short elt;   // one bf16 or fp16 number, as bits
typedef unsigned elt2;        // two of them, the lower column in the low half

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
#if ATTNC_ELT_F16
    return attnc_f16_to_float(x);
#else
    return attnc_bf16_to_float(x);
#endif
}

__device__ __forceinline__ elt attnc_float_to_elt(float f)
{
#if ATTNC_ELT_F16
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

// Four consecutive tile elements (8-byte aligned) in one store.
__device__ __forceinline__ void attnc_store4(elt *p, float a, float b, float c, float d)
{
    *(uint2 *)p = make_uint2(attnc_float2_to_elt2(a, b), attnc_float2_to_elt2(c, d));
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

// The scalar functions of the spec language (ir/ops.def), as the float64 reference defines them.
__device__ __forceinline__ float attnc_sigmoid(float x)
{
    return x >= 0.f ? 1.f / (1.f + expf(-x)) : expf(x) / (1.f + expf(x));
}

__device__ __forceinline__ float attnc_logsigmoid(float x)
{
    return fminf(x, 0.f) - log1pf(expf(-fabsf(x)));
}

__device__ __forceinline__ float attnc_softplus(float x)
{
    return fmaxf(x, 0.f) + log1pf(expf(-fabsf(x)));
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
// 4 (idx / 128) + idx % 4 (codegen/cuda.c, chan_base).  Every lane calls it (the shuffles need the
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
