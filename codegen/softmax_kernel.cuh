// codegen/softmax_kernel.cuh: the softmax part (full or sliding-window attention), flash-attention style.
//
// The generator (codegen/cuda.c) emits, before this text, the ATTNC_SM_* constants: head dims (D for
// query and key, V for values, each padded to the mma step), the window, causal or not, the score scale
// folded from the spec's `query = q * c` (times log2 e: the softmax runs in exp2), the input tensors and
// their dtypes and head counts, and whether a linear part wrote the output first (then this kernel adds
// its part: the spec's output is the sum of both).
//
// One CTA owns (query tile of 64 rows, output head, sequence); warp w owns rows 16w..16w+15.  The key
// band of the tile, [max(bos, q0 - W + 1), min(eos, q0 + 64)) when causal with window W, is walked in
// tiles of 64 keys; scores, the row max and sum stay in registers (online softmax, fp32), P goes from
// the score accumulators straight into the P V product.  Masked scores are -inf; a row whose keys are
// all masked so far uses 0 as its reference, so exp2 gives 0 and never inf - inf.
//
// The grid's x covers the longest possible sequence (for varlen, all B*T tokens: the host does not read
// cu_seqlens), and a CTA whose tile starts past its sequence's end returns at once.

#define SM_BM 64
#define SM_BN 64
#define SM_WARPS 4
#define SM_LDQ (ATTNC_SM_DP + 8)
#define SM_LDV (ATTNC_SM_VP + 8)
#define SM_NEG_INF (-__int_as_float(0x7f800000))

struct attnc_sm_layout {
    static constexpr unsigned q = 0;
    static constexpr unsigned k = q + SM_BM * SM_LDQ * sizeof(elt);
    static constexpr unsigned v = k + SM_BN * SM_LDQ * sizeof(elt);
    static constexpr unsigned bytes = v + SM_BN * SM_LDV * sizeof(elt);
};

// Rows [row0, row0 + nrows) of a [T, heads, len] input, head `hd`, into a tile with row stride ld;
// rows past nrows and columns past len become 0.
template <int DT, int LEN, int LENP>
__device__ __forceinline__ void sm_load_tile(elt *tile, int ld, const void *src, int heads, int hd, int row0,
                                             int nrows)
{
    constexpr int ELT_DT = ATTNC_SPLIT ? ATTNC_DT_FP32 : ATTNC_ELT_F16 ? ATTNC_DT_FP16 : ATTNC_DT_BF16;
    if constexpr (DT == ELT_DT && LEN % 8 == 0) {
        // stored as the tiles are: copies of 8 elements
        for (int i = threadIdx.x; i < 64 * (LENP / 8); i += SM_WARPS * 32) {
            const int r = i / (LENP / 8), c = (i % (LENP / 8)) * 8;
            copy8(tile + r * ld + c, r < nrows && c < LEN ? (const elt *)src + ((size_t)(row0 + r) * heads + hd) * LEN + c
                                                          : nullptr);
        }
    } else {
        for (int i = threadIdx.x; i < 64 * LENP; i += SM_WARPS * 32) {
            const int r = i / LENP, c = i % LENP;
            float x = 0.f;
            if (r < nrows && c < LEN)
                x = attnc_load<DT>(src, ((size_t)(row0 + r) * heads + hd) * LEN + c);
            tile[r * ld + c] = attnc_float_to_elt(x);
        }
    }
}

#if ATTNC_WANT(3)
extern "C" __global__ void __launch_bounds__(SM_WARPS * 32) attnc_softmax(attnc_params p)
{
    extern __shared__ __align__(128) unsigned char smem[];
    using L = attnc_sm_layout;
    elt *sq = (elt *)(smem + L::q), *sk = (elt *)(smem + L::k), *sv = (elt *)(smem + L::v);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gr = lane >> 2, tq = lane & 3;
    const int h = blockIdx.y, n = blockIdx.z;
    int bos, eos;
    attnc_seq_bounds(p.cu_seqlens, p.seqlen, n, bos, eos);
    const int q0 = bos + blockIdx.x * SM_BM;
    if (q0 >= eos)
        return;
    const int hq = h / (ATTNC_HOUT / ATTNC_SM_HQ), hk = h / (ATTNC_HOUT / ATTNC_SM_HK),
              hv = h / (ATTNC_HOUT / ATTNC_SM_HV);
    sm_load_tile<ATTNC_SM_QDT, ATTNC_SM_D, ATTNC_SM_DP>(sq, SM_LDQ, p.in[ATTNC_SM_QIN], ATTNC_SM_HQ, hq, q0,
                                                      min(SM_BM, eos - q0));
    int kbeg = bos, kend = eos;
    if constexpr (ATTNC_SM_CAUSAL) {
        kend = min(eos, q0 + SM_BM);
        if constexpr (ATTNC_SM_WINDOW > 0)
            kbeg = max(bos, q0 - ATTNC_SM_WINDOW + 1);
    }
    float O[ATTNC_SM_VP / 8][4];
#pragma unroll
    for (int nt = 0; nt < ATTNC_SM_VP / 8; nt++)
        O[nt][0] = O[nt][1] = O[nt][2] = O[nt][3] = 0.f;
    float mrow[2] = {SM_NEG_INF, SM_NEG_INF}, lrow[2] = {0.f, 0.f};
    for (int k0 = kbeg; k0 < kend; k0 += SM_BN) {
        const int nk = min(SM_BN, kend - k0);
        __syncthreads();   // every warp is done with the previous K and V tiles
        sm_load_tile<ATTNC_SM_KDT, ATTNC_SM_D, ATTNC_SM_DP>(sk, SM_LDQ, p.in[ATTNC_SM_KIN], ATTNC_SM_HK, hk, k0, nk);
        sm_load_tile<ATTNC_SM_VDT, ATTNC_SM_V, ATTNC_SM_VP>(sv, SM_LDV, p.in[ATTNC_SM_VIN], ATTNC_SM_HV, hv, k0, nk);
        __syncthreads();
        float S[SM_BN / 8][4];
#pragma unroll
        for (int nt = 0; nt < SM_BN / 8; nt++)
            S[nt][0] = S[nt][1] = S[nt][2] = S[nt][3] = 0.f;
        mm_rows<SM_BN / 8, ATTNC_SM_DP / 16, false>(S, sq, SM_LDQ, warp * 16, sk, SM_LDQ, 0, lane);
        float mx[2] = {mrow[0], mrow[1]};
#pragma unroll
        for (int nt = 0; nt < SM_BN / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int t = q0 + warp * 16 + gr + (e >> 1) * 8, j = k0 + nt * 8 + tq * 2 + (e & 1);
                bool keep = j < kend;
                if constexpr (ATTNC_SM_CAUSAL) {
                    keep = keep && j <= t;
                    if constexpr (ATTNC_SM_WINDOW > 0)
                        keep = keep && t - j < ATTNC_SM_WINDOW;
                }
                const float s = keep ? S[nt][e] * ATTNC_SM_SCALE : SM_NEG_INF;
                S[nt][e] = s;
                mx[e >> 1] = fmaxf(mx[e >> 1], s);
            }
        float ref[2], corr[2], sum[2] = {0.f, 0.f};
#pragma unroll
        for (int e2 = 0; e2 < 2; e2++) {
            mx[e2] = quad_max(mx[e2]);
            ref[e2] = mx[e2] == SM_NEG_INF ? 0.f : mx[e2];
            corr[e2] = exp2f(mrow[e2] - ref[e2]);
            mrow[e2] = mx[e2];
        }
#pragma unroll
        for (int nt = 0; nt < SM_BN / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                S[nt][e] = exp2f(S[nt][e] - ref[e >> 1]);
                sum[e >> 1] += S[nt][e];
            }
#pragma unroll
        for (int e2 = 0; e2 < 2; e2++)
            lrow[e2] = lrow[e2] * corr[e2] + quad_sum(sum[e2]);
#pragma unroll
        for (int nt = 0; nt < ATTNC_SM_VP / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                O[nt][e] *= corr[e >> 1];
        mm_regs<ATTNC_SM_VP / 8, SM_BN / 16>(O, S, sv, SM_LDV, 0, lane);
    }
#pragma unroll
    for (int e2 = 0; e2 < 2; e2++) {
        const int t = q0 + warp * 16 + gr + e2 * 8;
        if (t >= eos)
            continue;
        const float inv = lrow[e2] > 0.f ? 1.f / lrow[e2] : 0.f;
        const size_t obase = ((size_t)t * ATTNC_HOUT + h) * ATTNC_SM_V;
#pragma unroll
        for (int nt = 0; nt < ATTNC_SM_VP / 8; nt++) {
            const int c = nt * 8 + tq * 2;
            if (c >= ATTNC_SM_V)
                continue;
            float a = O[nt][e2 * 2] * inv, b = O[nt][e2 * 2 + 1] * inv;
            if constexpr (ATTNC_SM_ADD) {   // the linear part's output is already there
                a += attnc_load<ATTNC_OUT_DTYPE>(p.out, obase + c);
                b += attnc_load<ATTNC_OUT_DTYPE>(p.out, obase + c + 1);
            }
            attnc_store_out2(p.out, obase + c, a, b);
        }
    }
}
#endif
