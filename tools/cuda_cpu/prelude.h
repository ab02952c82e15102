// tools/cuda_cpu/prelude.h: just enough of CUDA to run a generated backward unit on the CPU, for checking
// kernels where no GPU is at hand.  Each CUDA thread of a CTA is a fiber (CTAs one after another), run on
// one OS thread by a scheduler that switches only at barriers: __syncthreads over the CTA, named barriers,
// __syncwarp and every warp primitive over the warp (all 32 lanes must reach them, as the kernels' full
// masks promise).  Which waiting fiber runs next is drawn from a seeded generator, so that an order a
// missing barrier depends on is not always the same one, yet every run is repeatable; a CTA whose fibers
// all wait at barriers that cannot complete is a deadlock, reported and aborted rather than hung.
// Under ThreadSanitizer (-fsanitize=thread) each fiber is also one of the sanitizer's fibers, switched
// without synchronisation, so that a barrier is the only happens-before edge between CUDA threads: every
// arrival releases the phase's token, every thread leaving the phase acquires it.  A fiber's end
// synchronises with the scheduler, so that the next CTA's fibers, made by it, reuse the stacks and shared
// memory after it.
// ldmatrix and mma.sync m16n8k16 are emulated from their PTX definitions (fragment layouts of the PTX ISA);
// products are exact in float (bf16 x bf16) and summed in float in k order, as the tensor cores' fp32
// accumulation (up to its internal order).  Not a performance model, and not a check of anything the
// hardware adds (timing, memory ordering beyond the barriers).
#pragma once
#include <cmath>
#include <cstdio>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <sys/mman.h>
#include <vector>
#if !defined(__x86_64__)
#include <ucontext.h>   // the fibers' switch elsewhere (below)
#endif
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define CPU_TSAN 1
// the scheduler's and the barriers' own bookkeeping, which fibers and the scheduler share with no
// happens-before edge of their own (they take turns on one OS thread), is not the kernels' to check
#define CPU_NO_TSAN __attribute__((no_sanitize_thread))
#else
#define CPU_TSAN 0
#define CPU_NO_TSAN
#endif

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
inline dim3c gridDim, blockDim, blockIdx;
inline dim3c cpu_thread;   // the running fiber's threadIdx, set by the scheduler as it enters one
CPU_NO_TSAN inline dim3c cpu_thread_idx() { return cpu_thread; }
#define threadIdx cpu_thread_idx()

// The fibers' switch.  On x86-64 it saves the SysV callee-saved registers on the stack it leaves and
// pops them from the one it enters (no system call: glibc's swapcontext also saves the signal mask, and
// that call was two thirds of a run); elsewhere ucontext's.
#if defined(__x86_64__)
extern "C" void cpu_switch_stack(void **save_sp, void *to_sp);
__asm__(".text\n.weak cpu_switch_stack\n.type cpu_switch_stack,@function\ncpu_switch_stack:\n"
        "pushq %rbp\npushq %rbx\npushq %r12\npushq %r13\npushq %r14\npushq %r15\n"
        "movq %rsp, (%rdi)\nmovq %rsi, %rsp\n"
        "popq %r15\npopq %r14\npopq %r13\npopq %r12\npopq %rbx\npopq %rbp\nret\n");
struct cpu_context {
    void *sp = nullptr;
    void *tsan = nullptr;   // ThreadSanitizer's fiber
};
CPU_NO_TSAN inline void cpu_context_jump(cpu_context &from, cpu_context &to) { cpu_switch_stack(&from.sp, to.sp); }
// A fiber's first entry: cpu_switch_stack pops six zero registers, then returns into start, whose own
// return slot (never used: start does not return) keeps the stack aligned as at a call.
inline void cpu_context_make(cpu_context &c, unsigned char *stack, size_t size, void (*start)())
{
    void **top = (void **)(((uintptr_t)(stack + size)) & ~(uintptr_t)15);
    *--top = nullptr;
    *--top = (void *)start;
    for (int i = 0; i < 6; i++)
        *--top = nullptr;
    c.sp = top;
}
#else
struct cpu_context {
    ucontext_t uc;
    void *tsan = nullptr;
};
CPU_NO_TSAN inline void cpu_context_jump(cpu_context &from, cpu_context &to) { swapcontext(&from.uc, &to.uc); }
inline void cpu_context_make(cpu_context &c, unsigned char *stack, size_t size, void (*start)())
{
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = stack;
    c.uc.uc_stack.ss_size = size;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, start, 0);
}
#endif
// with no happens-before edge between the two (the barriers make those)
CPU_NO_TSAN inline void cpu_context_switch(cpu_context &from, cpu_context &to)
{
#if CPU_TSAN
    __tsan_switch_to_fiber(to.tsan, __tsan_switch_to_fiber_no_sync);
#endif
    cpu_context_jump(from, to);
}

// The fibers of one CTA and the order they run in.  A fiber runs until it waits at a barrier or ends; the
// barrier's last arrival makes its waiters ready again.  A barrier's waiters are a list through the
// fibers' next.  Plain arrays, not std::vector: what the fibers touch here is all in CPU_NO_TSAN code,
// and a library template called from it would be instrumented.
struct cpu_sched {
    static constexpr size_t STACK = 1u << 20;   // per fiber; a PROT_NONE page below catches overflow
    static constexpr unsigned MAX_THREADS = 1024;
    struct fiber {
        cpu_context ctx;
        unsigned char *stack = nullptr;
        unsigned next = 0;
    };
    cpu_context main;
    fiber fibers[MAX_THREADS];
    unsigned ready[MAX_THREADS];   // nready of them are ready
    unsigned nready = 0, cur = 0, live = 0;
    char ended;                    // ThreadSanitizer: each fiber's end releases it, the CTA's end acquires it
    unsigned long long rng = 0x9e3779b97f4a7c15ull;
    ~cpu_sched()
    {
        for (auto &f : fibers)
            if (f.stack)
                munmap(f.stack, STACK + 4096);
    }
    CPU_NO_TSAN unsigned take()   // a ready fiber, drawn by xorshift64*
    {
        rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
        const unsigned at = (unsigned)((rng * 2685821657736338717ull) >> 33) % nready;
        const unsigned f = ready[at];
        ready[at] = ready[--nready];
        return f;
    }
    CPU_NO_TSAN void block() { cpu_context_switch(fibers[cur].ctx, main); }   // the current fiber waits
};
inline cpu_sched *cpu_fibers;

// A phase's arrivals release its token and its waiters acquire it.  Two tokens: no thread arrives in phase
// p + 2 before every waiter of phase p has left it (phase p + 1 needs them all).
struct cpu_barrier {
    ptrdiff_t expected, arrived = 0;
    unsigned phase = 0, first = ~0u;   // first: the waiters' list
    char token[2];
    explicit cpu_barrier(ptrdiff_t n) : expected(n) {}
    CPU_NO_TSAN unsigned count()   // one arrival; the phase it arrived in, whose waiters are ready once complete
    {
        const unsigned p = phase;
#if CPU_TSAN
        __tsan_release(&token[p & 1]);
#endif
        if (++arrived == expected) {
            cpu_sched &s = *cpu_fibers;
            for (unsigned f = first; f != ~0u; f = s.fibers[f].next)
                s.ready[s.nready++] = f;
            first = ~0u, arrived = 0, phase++;
        }
        return p;
    }
    CPU_NO_TSAN void arrive_and_wait()
    {
        const unsigned p = count();
        if (phase == p) {
            cpu_sched &s = *cpu_fibers;
            s.fibers[s.cur].next = first;
            first = s.cur;
            s.block();
        }
#if CPU_TSAN
        __tsan_acquire(&token[p & 1]);
#endif
    }
    void arrive() { (void)count(); }
};

struct cpu_cta {
    cpu_barrier *all;
    cpu_barrier *warp[32];
    unsigned char *smem;
    alignas(16) unsigned char xbuf[32][32][64];   // per warp, per lane: exchange slots
    cpu_barrier *named[16] = {};                  // named barriers (bar.sync id, threads), made at first use
};
inline cpu_cta *cpu_cur;
inline unsigned char *cpu_smem;

inline void __syncthreads() { cpu_cur->all->arrive_and_wait(); }
[[noreturn]] inline void __trap() { std::abort(); }
// bar.sync id, threads: the first thread to arrive makes the barrier for that many threads
CPU_NO_TSAN inline cpu_barrier *cpu_bar_get(unsigned id, unsigned threads)
{
    if (!cpu_cur->named[id])
        cpu_cur->named[id] = new cpu_barrier((ptrdiff_t)threads);
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
    // this lane's outputs read rows gr and gr + 8 of A (held by lanes 4 gr .. 4 gr + 3) and columns 2 tq and
    // 2 tq + 1 of B (lanes 8 tq .. 8 tq + 3 and 8 tq + 4 .. 8 tq + 7)
    const int gr = cpu_lane() / 4, tq = cpu_lane() % 4;
    float A[2][16], B[2][16];
    for (int q = 0; q < 4; q++) {
        unsigned v[6];
        std::memcpy(v, buf[4 * gr + q], sizeof v);
        for (int h = 0; h < 2; h++) {   // h: row gr (a0, a2) or gr + 8 (a1, a3)
            A[h][2 * q] = cpu_half((unsigned short)(v[h] & 0xffffu), f16);
            A[h][2 * q + 1] = cpu_half((unsigned short)(v[h] >> 16), f16);
            A[h][2 * q + 8] = cpu_half((unsigned short)(v[h + 2] & 0xffffu), f16);
            A[h][2 * q + 9] = cpu_half((unsigned short)(v[h + 2] >> 16), f16);
        }
        for (int j = 0; j < 2; j++) {   // j: column 2 tq + j, held as b0, b1 by the lanes whose gr it is
            std::memcpy(v, buf[4 * (2 * tq + j) + q], sizeof v);
            B[j][2 * q] = cpu_half((unsigned short)(v[4] & 0xffffu), f16);
            B[j][2 * q + 1] = cpu_half((unsigned short)(v[4] >> 16), f16);
            B[j][2 * q + 8] = cpu_half((unsigned short)(v[5] & 0xffffu), f16);
            B[j][2 * q + 9] = cpu_half((unsigned short)(v[5] >> 16), f16);
        }
    }
    __syncwarp();
    for (int i = 0; i < 4; i++) {
        const float *ar = A[i >> 1], *bc = B[i & 1];
        float s = d[i];
        for (int k = 0; k < 16; k++)
            s += ar[k] * bc[k];
        d[i] = s;
    }
}

// ---- launches: CTAs one after another, a fiber per CUDA thread ---------------------------------------
template <class P>
struct cpu_fiber_entry {
    static inline void (*kernel)(P);
    static inline const P *params;
    [[noreturn]] CPU_NO_TSAN static void run()
    {
        kernel(*params);
        cpu_sched &sched = *cpu_fibers;
        sched.live--;
#if CPU_TSAN
        __tsan_release(&sched.ended);
#endif
        sched.block();   // never resumed: no barrier lists it
        std::abort();
    }
};

// Runs the CTA's threads as fibers until all have ended; a CTA left with fibers waiting and none ready
// is a deadlock (a barrier that some thread never reaches, or counts that do not match).
template <class P>
CPU_NO_TSAN inline void cpu_run_cta(cpu_sched &sched, void (*kernel)(P), unsigned threads, const P &params)
{
    cpu_fiber_entry<P>::kernel = kernel;
    cpu_fiber_entry<P>::params = &params;
    if (threads > cpu_sched::MAX_THREADS) {
        std::fprintf(stderr, "cuda_cpu: %u threads a CTA, more than CUDA's %u\n", threads, cpu_sched::MAX_THREADS);
        std::abort();
    }
#if CPU_TSAN
    sched.main.tsan = __tsan_get_current_fiber();
#endif
    sched.nready = 0;
    for (unsigned t = 0; t < threads; t++) {
        auto &f = sched.fibers[t];
        if (!f.stack) {
            void *m = mmap(nullptr, cpu_sched::STACK + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (m == MAP_FAILED) {
                std::fprintf(stderr, "cuda_cpu: no memory for a fiber's stack\n");
                std::abort();
            }
            mprotect(m, 4096, PROT_NONE);
            f.stack = (unsigned char *)m;
        }
        cpu_context_make(f.ctx, f.stack + 4096, cpu_sched::STACK, cpu_fiber_entry<P>::run);
#if CPU_TSAN
        f.ctx.tsan = __tsan_create_fiber(0);
#endif
        sched.ready[sched.nready++] = t;
    }
    sched.live = threads;
    while (sched.nready) {
        sched.cur = sched.take();
        cpu_thread = dim3c{sched.cur, 0, 0};
        cpu_context_switch(sched.main, sched.fibers[sched.cur].ctx);
    }
    if (sched.live) {
        std::fprintf(stderr, "cuda_cpu: deadlock: %u of %u threads of CTA (%u, %u, %u) wait at barriers that cannot complete\n",
                     sched.live, threads, blockIdx.x, blockIdx.y, blockIdx.z);
        std::abort();
    }
#if CPU_TSAN
    __tsan_acquire(&sched.ended);
    for (unsigned t = 0; t < threads; t++)
        __tsan_destroy_fiber(sched.fibers[t].ctx.tsan);
#endif
}

template <class P>
inline void cpu_launch(void (*kernel)(P), dim3c grid, unsigned threads, size_t smem, const P &params)
{
    std::vector<unsigned char> mem(smem + 128);
    // CUDA_CPU_SMEM_POISON=ff: every CTA's shared memory starts as 0xff bytes (NaN in bf16 and fp32) instead of
    // 0xcd (finite), so that a value formed from bytes no one wrote shows as NaN, as a GPU's stale bytes can
    const char *poison = std::getenv("CUDA_CPU_SMEM_POISON");
    const int fill = poison && std::strcmp(poison, "ff") == 0 ? 0xff : 0xcd;
    gridDim = grid;
    blockDim = dim3c{threads, 1, 1};
    cpu_sched &sched = *new cpu_sched;   // 100 KB: not on the stack
    cpu_fibers = &sched;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                std::memset(mem.data(), fill, mem.size());   // stale bytes, not zeros
                cpu_barrier all((ptrdiff_t)threads);
                std::vector<cpu_barrier *> warps;
                cpu_cta cta;
                cta.all = &all;
                for (unsigned w = 0; w < threads / 32; w++) {
                    warps.push_back(new cpu_barrier(32));
                    cta.warp[w] = warps.back();
                }
                cta.smem = (unsigned char *)(((uintptr_t)mem.data() + 127) / 128 * 128);
                blockIdx = dim3c{x, y, z};
                cpu_cur = &cta;
                cpu_smem = cta.smem;
                cpu_run_cta(sched, kernel, threads, params);
                for (auto *w : warps)
                    delete w;
                for (auto *b : cta.named)
                    delete b;
            }
    cpu_fibers = nullptr;
    delete &sched;
}
