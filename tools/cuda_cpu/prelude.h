// tools/cuda_cpu/prelude.h: just enough of CUDA to run a generated backward unit on the CPU, one
// std::thread per CUDA thread of a CTA (CTAs one after another), for checking kernels where no GPU is
// at hand.  Barriers: __syncthreads over the CTA, __syncwarp and every warp primitive over the warp
// (all 32 lanes must reach them, as the kernels' full masks promise).  ldmatrix and mma.sync m16n8k16
// are emulated from their PTX definitions (fragment layouts of the PTX ISA); products are exact in
// float (bf16 x bf16) and summed in float in k order, as the tensor cores' fp32 accumulation (up to
// its internal order).  Not a performance model, and not a check of anything the hardware adds
// (timing, memory ordering beyond the barriers).
#pragma once
#include <barrier>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#define __device__
#define __global__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __restrict__

struct dim3c { unsigned x = 0, y = 0, z = 0; };
struct float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
inline float2 make_float2(float a, float b) { return {a, b}; }
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
inline uint2 make_uint2(unsigned a, unsigned b) { return {a, b}; }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }

inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline float __int_as_float(int u) { float f; std::memcpy(&f, &u, 4); return f; }
inline int __float_as_int(float f) { int u; std::memcpy(&u, &f, 4); return u; }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.f / sqrtf(x); }

// ---- the CTA being run ---------------------------------------------------------------------------
struct cpu_cta {
    std::barrier<> *all;
    std::barrier<> *warp[32];
    unsigned char *smem;
    alignas(16) unsigned char xbuf[32][32][64];   // per warp, per lane: exchange slots
    std::mutex named_mu;                          // named barriers (bar.sync id, threads), made at first use
    std::barrier<> *named[16] = {};
};
inline thread_local dim3c threadIdx, blockIdx;
inline thread_local cpu_cta *cpu_cur;
inline thread_local unsigned char *cpu_smem;
inline dim3c gridDim, blockDim;

inline void __syncthreads() { cpu_cur->all->arrive_and_wait(); }
[[noreturn]] inline void __trap() { std::abort(); }
// bar.sync id, threads: the first thread to arrive makes the barrier for that many threads
inline std::barrier<> *cpu_bar_get(unsigned id, unsigned threads)
{
    std::lock_guard<std::mutex> lock(cpu_cur->named_mu);
    if (!cpu_cur->named[id])
        cpu_cur->named[id] = new std::barrier<>((ptrdiff_t)threads);
    return cpu_cur->named[id];
}
inline void cpu_bar_named(unsigned id, unsigned threads) { cpu_bar_get(id, threads)->arrive_and_wait(); }
// bar.arrive id, threads: counts this thread in the barrier's phase and goes on
inline void cpu_bar_arrive(unsigned id, unsigned threads) { (void)cpu_bar_get(id, threads)->arrive(); }
// max.NaN.f32 of m and |a|; cvt.rni.sat.s16.f32 (ties to even, saturated, NaN to 0)
inline float cpu_absmax_nan(float m, float a)
{
    const float b = std::fabs(a);
    return m != m || b != b ? NAN : b > m ? b : m;
}
inline int cpu_lane() { return threadIdx.x & 31; }
inline int cpu_warp() { return threadIdx.x >> 5; }
inline void __syncwarp(unsigned = 0xffffffffu) { cpu_cur->warp[cpu_warp()]->arrive_and_wait(); }
template <class T>
inline T __ldg(const T *p) { return *p; }   // the read-only load: a load here

template <class T>
inline T cpu_shfl(T x, int src, bool keep)
{
    static_assert(sizeof(T) <= 64);
    unsigned char(*buf)[64] = cpu_cur->xbuf[cpu_warp()];
    std::memcpy(buf[cpu_lane()], &x, sizeof(T));
    __syncwarp();
    T y = x;
    if (!keep)
        std::memcpy(&y, buf[src & 31], sizeof(T));
    __syncwarp();
    return y;
}
template <class T> inline T __shfl_sync(unsigned, T x, int src) { return cpu_shfl(x, src, false); }
template <class T> inline T __shfl_xor_sync(unsigned, T x, int o) { return cpu_shfl(x, cpu_lane() ^ o, false); }
template <class T> inline T __shfl_up_sync(unsigned, T x, unsigned d) { return cpu_shfl(x, cpu_lane() - (int)d, cpu_lane() < (int)d); }
template <class T> inline T __shfl_down_sync(unsigned, T x, unsigned d) { return cpu_shfl(x, cpu_lane() + (int)d, cpu_lane() + (int)d > 31); }

// ---- conversions (round to nearest even) -------------------------------------------------------
inline unsigned short cpu_float_to_bf16(float f)
{
    unsigned u = __float_as_uint(f);
    if ((u & 0x7f800000u) == 0x7f800000u)
        return (unsigned short)((u >> 16) | ((u & 0xffffu) ? 0x40u : 0u));
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}
inline float cpu_f16_to_float(unsigned short h)
{
    unsigned s = (h >> 15) & 1, e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0 ? std::ldexp((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : std::ldexp((float)(m | 1024), (int)e - 25);
    return s ? -v : v;
}
inline unsigned short cpu_float_to_f16(float f)
{
    // through the nearest f16 by search (slow, exact; only the fp16 paths use it)
    if (std::isnan(f)) return 0x7e00;
    unsigned short best = 0;
    float bd = INFINITY;
    unsigned short sign = std::signbit(f) ? 0x8000 : 0;
    float a = std::fabs(f);
    if (a >= 65520.f) return sign | 0x7c00;
    int lo = 0, hi = 0x7bff;
    while (lo < hi) {   // largest h with value(h) <= a
        int mid = (lo + hi + 1) / 2;
        if (cpu_f16_to_float((unsigned short)mid) <= a) lo = mid; else hi = mid - 1;
    }
    for (int c = lo; c <= lo + 1 && c <= 0x7c00; c++) {
        float d = std::fabs(cpu_f16_to_float((unsigned short)c) - a);
        if (d < bd || (d == bd && (c & 1) == 0)) bd = d, best = (unsigned short)c;
    }
    return sign | best;
}
inline unsigned cpu_pack2(float lo, float hi, int f16)
{
    unsigned a = f16 ? cpu_float_to_f16(lo) : cpu_float_to_bf16(lo), b = f16 ? cpu_float_to_f16(hi) : cpu_float_to_bf16(hi);
    return a | (b << 16);
}
inline float cpu_half(unsigned short x, int f16) { return f16 ? cpu_f16_to_float(x) : __uint_as_float((unsigned)x << 16); }

// ---- ldmatrix.x4 (.trans) and mma.sync.m16n8k16.row.col.f32 --------------------------------------
// ldmatrix: lanes 8i .. 8i+7 give the row addresses of matrix i; lane t receives from each matrix i the
// pair (row t/4, columns 2(t%4), 2(t%4)+1), or with .trans (rows 2(t%4), 2(t%4)+1, column t/4).
inline void cpu_ldsm(unsigned &r0, unsigned &r1, unsigned &r2, unsigned &r3, const void *p, bool trans)
{
    const unsigned char *addr[32];
    unsigned char(*buf)[64] = cpu_cur->xbuf[cpu_warp()];
    std::memcpy(buf[cpu_lane()], &p, sizeof p);
    __syncwarp();
    for (int l = 0; l < 32; l++)
        std::memcpy(&addr[l], buf[l], sizeof p);
    __syncwarp();
    const int t = cpu_lane();
    unsigned r[4];
    for (int i = 0; i < 4; i++) {
        unsigned short e0, e1;
        if (!trans) {
            std::memcpy(&e0, addr[8 * i + t / 4] + 4 * (t % 4), 2);
            std::memcpy(&e1, addr[8 * i + t / 4] + 4 * (t % 4) + 2, 2);
        } else {
            std::memcpy(&e0, addr[8 * i + 2 * (t % 4)] + 2 * (t / 4), 2);
            std::memcpy(&e1, addr[8 * i + 2 * (t % 4) + 1] + 2 * (t / 4), 2);
        }
        r[i] = (unsigned)e0 | ((unsigned)e1 << 16);
    }
    r0 = r[0], r1 = r[1], r2 = r[2], r3 = r[3];
}

// A (16 x 16, row): lane t = 4 gr + tq holds a0 = A[gr][2tq..+1], a1 = A[gr+8][2tq..+1], a2 = A[gr][2tq+8..+9],
// a3 = A[gr+8][2tq+8..+9]; B (16 x 8, col): b0 = B[2tq..+1][gr], b1 = B[2tq+8..+9][gr]; D: d0, d1 = D[gr][2tq..+1],
// d2, d3 = D[gr+8][2tq..+1].  The lower index in the low half.
inline void cpu_mma16816(float *d, const unsigned *a, unsigned b0, unsigned b1, int f16)
{
    unsigned char(*buf)[64] = cpu_cur->xbuf[cpu_warp()];
    unsigned mine[6] = {a[0], a[1], a[2], a[3], b0, b1};
    std::memcpy(buf[cpu_lane()], mine, sizeof mine);
    __syncwarp();
    float A[16][16], B[16][8];
    for (int l = 0; l < 32; l++) {
        unsigned v[6];
        std::memcpy(v, buf[l], sizeof v);
        const int gr = l / 4, tq = l % 4;
        const int ar[4] = {gr, gr + 8, gr, gr + 8}, ac[4] = {2 * tq, 2 * tq, 2 * tq + 8, 2 * tq + 8};
        for (int i = 0; i < 4; i++) {
            A[ar[i]][ac[i]] = cpu_half((unsigned short)(v[i] & 0xffffu), f16);
            A[ar[i]][ac[i] + 1] = cpu_half((unsigned short)(v[i] >> 16), f16);
        }
        B[2 * tq][gr] = cpu_half((unsigned short)(v[4] & 0xffffu), f16);
        B[2 * tq + 1][gr] = cpu_half((unsigned short)(v[4] >> 16), f16);
        B[2 * tq + 8][gr] = cpu_half((unsigned short)(v[5] & 0xffffu), f16);
        B[2 * tq + 9][gr] = cpu_half((unsigned short)(v[5] >> 16), f16);
    }
    __syncwarp();
    const int gr = cpu_lane() / 4, tq = cpu_lane() % 4;
    for (int i = 0; i < 4; i++) {
        const int r = gr + 8 * (i >> 1), c = 2 * tq + (i & 1);
        float s = d[i];
        for (int k = 0; k < 16; k++)
            s += A[r][k] * B[k][c];
        d[i] = s;
    }
}

// ---- launches: CTAs one after another, a std::thread per CUDA thread ---------------------------------
template <class P>
inline void cpu_launch(void (*kernel)(P), dim3c grid, unsigned threads, size_t smem, const P &params)
{
    std::vector<unsigned char> mem(smem + 128);
    gridDim = grid;
    blockDim = dim3c{threads, 1, 1};
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                std::memset(mem.data(), 0xcd, mem.size());   // stale bytes, not zeros
                std::barrier<> all((ptrdiff_t)threads);
                std::vector<std::barrier<> *> warps;
                cpu_cta cta;
                cta.all = &all;
                for (unsigned w = 0; w < threads / 32; w++) {
                    warps.push_back(new std::barrier<>(32));
                    cta.warp[w] = warps.back();
                }
                cta.smem = (unsigned char *)(((uintptr_t)mem.data() + 127) / 128 * 128);
                std::vector<std::thread> ts;
                for (unsigned t = 0; t < threads; t++)
                    ts.emplace_back([&, t] {
                        threadIdx = dim3c{t, 0, 0};
                        blockIdx = dim3c{x, y, z};
                        cpu_cur = &cta;
                        cpu_smem = cta.smem;
                        kernel(params);
                    });
                for (auto &th : ts)
                    th.join();
                for (auto *w : warps)
                    delete w;
                for (auto *b : cta.named)
                    delete b;
            }
}
