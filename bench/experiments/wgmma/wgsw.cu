// wgmma with 128-byte-swizzled tiles: rows of 64 elements (128 B) per panel, a panel per 64 columns,
// 16-byte chunk index XOR (row % 8).  Tiles 1024-byte aligned.
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <cuda_bf16.h>
#include "wgmma_gen.cuh"

__device__ __host__ inline int sw(int r, int c, int R) { return ((c >> 6) * R + r) * 64 + ((((c >> 3) & 7) ^ (r & 7)) << 3) + (c & 7); }

__device__ inline unsigned long long desc(const void *p, unsigned lbo, unsigned sbo)
{
    unsigned a = (unsigned)__cvta_generic_to_shared(p);
    return (unsigned long long)((a >> 4) & 0x3FFF) | (unsigned long long)((lbo >> 4) & 0x3FFF) << 16 |
           (unsigned long long)((sbo >> 4) & 0x3FFF) << 32 | 1ull << 62;
}
__device__ inline void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ inline void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ inline void wg_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
__device__ inline void fence_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// test 0: P[64x64] = Q[64][128] K[64][128]^T            (A K-major, B K-major)
// test 1: O[64x64] = Q[64][128] S[128][128](:, half*64..) (A K-major, B MN-major, panel `half`)
// test 2: S[64x128] = Kd[64][128](:, half*64..)^T V[64][128]  (A MN-major panel `half`, B MN-major n128)
// test 3: O[64x64] = P(regs from Q[64][0..64)) V[64][128](:, half*64..)
__global__ void k(const float *ga, const float *gb, float *gd, int test, int half)
{
    extern __shared__ unsigned char smem_raw[];
    unsigned char *smem = (unsigned char *)(((size_t)smem_raw + 1023) & ~(size_t)1023);
    __nv_bfloat16 *sa = (__nv_bfloat16 *)smem, *sb = sa + 128 * 128;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, gr = lane / 4, tq = lane % 4;
    int aR = 64, bR = test == 1 ? 128 : 64;
    for (int i = tid; i < aR * 128; i += 128) sa[sw(i / 128, i % 128, aR)] = __float2bfloat16(ga[i]);
    for (int i = tid; i < bR * 128; i += 128) sb[sw(i / 128, i % 128, bR)] = __float2bfloat16(gb[i]);
    fence_async();
    __syncthreads();
    float d[64];
    for (int i = 0; i < 64; i++) d[i] = 0.f;
    wg_fence();
    if (test == 0) {
        for (int ks = 0; ks < 8; ks++) {
            int off = (ks >> 2) * aR * 64 + (ks & 3) * 16;   // panel, then 32 bytes a k-step
            wgmma_ss_n64_t00(d, desc(sa + off, 16, 1024), desc(sb + (ks >> 2) * 64 * 64 + (ks & 3) * 16, 16, 1024));
        }
    } else if (test == 1) {
        for (int ks = 0; ks < 8; ks++)
            wgmma_ss_n64_t01(d, desc(sa + (ks >> 2) * aR * 64 + (ks & 3) * 16, 16, 1024),
                             desc(sb + half * bR * 64 + ks * 16 * 64, bR * 128, 1024));
    } else if (test == 2) {
        for (int ks = 0; ks < 4; ks++)
            wgmma_ss_n128_t11(d, desc(sa + half * aR * 64 + ks * 16 * 64, aR * 128, 1024),
                              desc(sb + ks * 16 * 64, bR * 128, 1024));
    } else {
        for (int ks = 0; ks < 4; ks++) {
            unsigned a[4];
            for (int q4 = 0; q4 < 4; q4++) {
                int r = warp * 16 + gr + (q4 & 1) * 8, c = ks * 16 + tq * 2 + (q4 >> 1) * 8;
                __nv_bfloat162 v = __halves2bfloat162(sa[sw(r, c, aR)], sa[sw(r, c + 1, aR)]);
                a[q4] = *(unsigned *)&v;
            }
            wgmma_rs_n64_t1(d, a, desc(sb + half * bR * 64 + ks * 16 * 64, bR * 128, 1024));
        }
    }
    wg_commit();
    wg_wait0();
    int N = test == 2 ? 128 : 64;
    for (int i = 0; i < N / 2; i++) {
        int j = i / 4, e = i % 4;
        int r = warp * 16 + gr + (e >> 1) * 8, c = j * 8 + tq * 2 + (e & 1);
        gd[r * N + c] = d[i];
    }
}

static float bf(float x) { return __bfloat162float(__float2bfloat16(x)); }

int main(int argc, char **argv)
{
    int test = atoi(argv[1]), half = atoi(argv[2]);
    const int n = 128 * 128;
    float *ha = (float *)malloc(n * 4), *hb = (float *)malloc(n * 4), *hd = (float *)malloc(64 * 128 * 4);
    srand(1);
    for (int i = 0; i < n; i++) { ha[i] = bf((rand() % 2001 - 1000) / 1000.f); hb[i] = bf((rand() % 2001 - 1000) / 1000.f); }
    float *da, *db, *dd;
    cudaMalloc(&da, n * 4); cudaMalloc(&db, n * 4); cudaMalloc(&dd, 64 * 128 * 4);
    cudaMemcpy(da, ha, n * 4, cudaMemcpyHostToDevice); cudaMemcpy(db, hb, n * 4, cudaMemcpyHostToDevice);
    cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, 128 * 128 * 4 + 1024);
    cudaMemset(dd, 0xff, 64 * 128 * 4);
    k<<<1, 128, 128 * 128 * 4 + 1024>>>(da, db, dd, test, half);
    cudaError_t e = cudaDeviceSynchronize();
    if (e) { printf("sw test %d half %d: %s\n", test, half, cudaGetErrorString(e)); return 1; }
    cudaMemcpy(hd, dd, 64 * 128 * 4, cudaMemcpyDeviceToHost);
    int N = test == 2 ? 128 : 64, K = test <= 1 ? 128 : 64;
    double maxerr = 0;
    for (int r = 0; r < 64; r++)
        for (int c = 0; c < N; c++) {
            double ref = 0;
            for (int kk = 0; kk < K; kk++) {
                double a = test == 2 ? ha[kk * 128 + half * 64 + r] : ha[r * 128 + kk];
                double b = test == 0 ? hb[c * 128 + kk] : test == 2 ? hb[kk * 128 + c] : hb[kk * 128 + half * 64 + c];
                ref += a * b;
            }
            double err = fabs(ref - hd[r * N + c]);
            if (!(err <= maxerr)) maxerr = isnan(err) ? 1e30 : err;
        }
    printf("sw test %d half %d: max abs err %.3g %s\n", test, half, maxerr, maxerr < 1e-2 ? "OK" : "WRONG");
    return 0;
}
