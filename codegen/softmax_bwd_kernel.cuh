// codegen/softmax_bwd_kernel.cuh: the backward of the softmax part (issue 4), FlashAttention-2 style in
// fp32 on the CUDA cores.  codegen/cuda_bwd_softmax.c emits before this text the ATTNC_SB_* constants
// (passes/grad_softmax.c chose the tile): head dims D (query, key) and V, the tile rows T, causal or not,
// the window, the score scale c log2(e) (c the constant of the spec's `query = q * c`, 1 without one) and
// c itself, the input tensors with their dtypes and head counts.  Kernels, in launch order
// (api/backward.c), after the linear part's and before the value DAG's adjoint:
//   1. attnc_bwd_sm_rows, one CTA per (query tile, output head, sequence): two passes over the tile's key
//      band (causal: [max(bos, q0 - W + 1), min(eos, q0 + T)), else the whole sequence):
//        pass 1 recomputes the scores s = c q . k (log2 units) and dP = dO V^T, and keeps per row, online,
//               the max m, l = sum e^{s - m} and acc = sum e^{s - m} dP; then lse = m + log2 l and
//               Delta = acc / l = dO . O_softmax, stored to ws_lse / ws_delta [T, H_out];
//        pass 2 recomputes s and dP, forms P = 2^{s - lse}, dS = P o (dP - Delta) and dQ += dS K;
//      dQ (the gradient of the query role c q) goes to ws_sdq [T, H_out, D].
//   2. attnc_bwd_sm_kv, one CTA per (key tile, output head, sequence): over the query tiles that see
//      the key tile (causal: [j0, min(eos, j0 + T - 1 + W)), else the sequence), P and dS again from
//      ws_lse and ws_delta; dV += P^T dO, dK += dS^T Q (times c: the key role's gradient is dS^T (c q)),
//      into ws_sdv [T, H_out, V] and ws_sdk [T, H_out, D].
// Every output head writes its own rows: query heads that share a key/value head (GQA) are summed later
// by attnc_bwd_sum_heads in a fixed order.  No atomics: every sum has a fixed order, same bits every run.
// Masked scores are -inf (P = 0).  Every row of a sequence sees at least itself, so l > 0 on real rows;
// rows past the sequence's end are never stored.  Tiles: row strides D + 1, V + 1 and T + 1 (odd), so
// the column walks of the products hit distinct banks.  The products are register-blocked on the CUDA
// cores (scores: 4 x 4 per thread at T = 64; dQ, dK, dV: T/8 rows x ceil(D/32) columns per thread), with
// fp32 operands whatever the inputs' dtype; tensor cores are the next step (docs/kernels.md).

#define SB_T ATTNC_SB_TILE
#define SB_LDD (ATTNC_SB_D + 1)
#define SB_LDV (ATTNC_SB_V + 1)
#define SB_LDT (SB_T + 1)
#define SB_NEG_INF (-__int_as_float(0x7f800000))
#define SB_POS_INF (__int_as_float(0x7f800000))

struct attnc_sb_layout {   // offsets in floats
    static constexpr unsigned q = 0;                          // query rows (the raw input, fp32)
    static constexpr unsigned dout = q + SB_T * SB_LDD;       // dO rows
    static constexpr unsigned k = dout + SB_T * SB_LDV;       // key rows
    static constexpr unsigned v = k + SB_T * SB_LDD;          // value rows
    static constexpr unsigned s = v + SB_T * SB_LDV;          // scores (log2 units), then P
    static constexpr unsigned dp = s + SB_T * SB_LDT;         // dO V^T, then dS
    static constexpr unsigned stat = dp + SB_T * SB_LDT;      // per query row: m | lse, l, acc | Delta
    static constexpr unsigned floats = stat + 3 * SB_T;
    static constexpr unsigned bytes = (floats * 4 + 127) / 128 * 128;
};

// Rows [row0, row0 + nrows) of a [T, heads, LEN] tensor, head `hd`, into a tile (fp32, row stride ld);
// rows past nrows are 0.
template <int DT, int LEN>
__device__ __forceinline__ void sb_load(float *tile, int ld, const void *src, int heads, int hd, int row0, int nrows)
{
    for (int i = threadIdx.x; i < SB_T * LEN; i += ATTNC_B_THREADS) {
        const int r = i / LEN, c = i % LEN;
        tile[r * ld + c] = r < nrows ? attnc_load<DT>(src, ((size_t)(row0 + r) * heads + hd) * LEN + c) : 0.f;
    }
}

__device__ __forceinline__ float sb_warp_max(float x)
{
#pragma unroll
    for (int o = 16; o; o >>= 1)
        x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

// s[r][j] = c log2(e) q_r . k_j (-inf where masked) and dp[r][j] = dO_r . v_j (0 where masked), for query
// rows q0 + r (r < nq) and keys k0 + j (j < nk).  Register-blocked: thread (ty, tx) = (tid / 16, tid % 16)
// owns rows ty + 16 a and keys tx + 16 b (a, b < T / 16), so that each shared load feeds T / 16 products;
// a warp reads 16 key rows that fall in distinct banks (odd strides) and 2 query rows (broadcasts).
__device__ __forceinline__ void sb_scores(float *sm, int q0, int nq, int k0, int nk)
{
    using L = attnc_sb_layout;
    constexpr int RB = SB_T / 16;
    static_assert(ATTNC_B_THREADS == 256 && SB_T % 16 == 0, "the blocking assumes 16 x 16 threads");
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    float a[RB][RB], d[RB][RB];
#pragma unroll
    for (int i = 0; i < RB; i++)
#pragma unroll
        for (int j = 0; j < RB; j++)
            a[i][j] = d[i][j] = 0.f;
#pragma unroll 4
    for (int c = 0; c < ATTNC_SB_D; c++) {
        float x[RB], y[RB];
#pragma unroll
        for (int i = 0; i < RB; i++) {
            x[i] = sm[L::q + (ty + 16 * i) * SB_LDD + c];
            y[i] = sm[L::k + (tx + 16 * i) * SB_LDD + c];
        }
#pragma unroll
        for (int i = 0; i < RB; i++)
#pragma unroll
            for (int j = 0; j < RB; j++)
                a[i][j] += x[i] * y[j];
    }
#pragma unroll 4
    for (int c = 0; c < ATTNC_SB_V; c++) {
        float x[RB], y[RB];
#pragma unroll
        for (int i = 0; i < RB; i++) {
            x[i] = sm[L::dout + (ty + 16 * i) * SB_LDV + c];
            y[i] = sm[L::v + (tx + 16 * i) * SB_LDV + c];
        }
#pragma unroll
        for (int i = 0; i < RB; i++)
#pragma unroll
            for (int j = 0; j < RB; j++)
                d[i][j] += x[i] * y[j];
    }
#pragma unroll
    for (int i = 0; i < RB; i++)
#pragma unroll
        for (int j = 0; j < RB; j++) {
            const int r = ty + 16 * i, k = tx + 16 * j, t = q0 + r, kj = k0 + k;
            bool keep = r < nq && k < nk;
            if constexpr (ATTNC_SB_CAUSAL) {
                keep = keep && kj <= t;
                if constexpr (ATTNC_SB_WINDOW > 0)
                    keep = keep && t - kj < ATTNC_SB_WINDOW;
            }
            sm[L::s + r * SB_LDT + k] = keep ? a[i][j] * ATTNC_SB_SCALE : SB_NEG_INF;
            sm[L::dp + r * SB_LDT + k] = keep ? d[i][j] : 0.f;
        }
}

// acc[a][b] += sum_{i < n} A[i][row] B[i][col] (transposed: A[row][i]) for rows wy + 8 a, cols lane + 32 b,
// (wy, lane) = (warp, lane): the blocked form of the three tile products dQ = dS K, dV = P^T dO and
// dK = dS^T Q.  A's element is a broadcast within the warp, B's row is read by consecutive lanes.
template <int NC, int LEN, bool TRANS_A>
__device__ __forceinline__ void sb_accumulate(float (&acc)[SB_T / 8][NC], const float *A, const float *B, int ldb, int n)
{
    const int lane = threadIdx.x & 31, wy = threadIdx.x >> 5;
    for (int i = 0; i < n; i++) {
        float x[SB_T / 8], y[NC];
#pragma unroll
        for (int a = 0; a < SB_T / 8; a++)
            x[a] = TRANS_A ? A[i * SB_LDT + wy + 8 * a] : A[(wy + 8 * a) * SB_LDT + i];
#pragma unroll
        for (int b = 0; b < NC; b++)
            y[b] = lane + 32 * b < LEN ? B[i * ldb + lane + 32 * b] : 0.f;
#pragma unroll
        for (int a = 0; a < SB_T / 8; a++)
#pragma unroll
            for (int b = 0; b < NC; b++)
                acc[a][b] += x[a] * y[b];
    }
}

// The query rows of a tile: q (raw input of the query head) and dO (output head h).
__device__ __forceinline__ void sb_load_queries(const attnc_bwd_params &p, float *sm, int h, int q0, int nq)
{
    using L = attnc_sb_layout;
    const int hq = h / (ATTNC_HOUT / ATTNC_SB_HQ);
    sb_load<ATTNC_SB_QDT, ATTNC_SB_D>(sm + L::q, SB_LDD, p.in[ATTNC_SB_QIN], ATTNC_SB_HQ, hq, q0, nq);
    sb_load<ATTNC_OUT_DTYPE, ATTNC_SB_V>(sm + L::dout, SB_LDV, p.dout, ATTNC_HOUT, h, q0, nq);
}

__device__ __forceinline__ void sb_load_keys(const attnc_bwd_params &p, float *sm, int h, int k0, int nk)
{
    using L = attnc_sb_layout;
    const int hk = h / (ATTNC_HOUT / ATTNC_SB_HK), hv = h / (ATTNC_HOUT / ATTNC_SB_HV);
    sb_load<ATTNC_SB_KDT, ATTNC_SB_D>(sm + L::k, SB_LDD, p.in[ATTNC_SB_KIN], ATTNC_SB_HK, hk, k0, nk);
    sb_load<ATTNC_SB_VDT, ATTNC_SB_V>(sm + L::v, SB_LDV, p.in[ATTNC_SB_VIN], ATTNC_SB_HV, hv, k0, nk);
}

// dp <- dS = P o (dp - Delta) and s <- P = 2^{s - lse} (stat holds lse and Delta of the query rows).
__device__ __forceinline__ void sb_probs(float *sm)
{
    using L = attnc_sb_layout;
    for (int i = threadIdx.x; i < SB_T * SB_T; i += ATTNC_B_THREADS) {
        const int r = i / SB_T, j = i % SB_T;
        const float s = sm[L::s + r * SB_LDT + j];
        const float pr = s == SB_NEG_INF ? 0.f : exp2f(s - sm[L::stat + r]);
        sm[L::s + r * SB_LDT + j] = pr;
        sm[L::dp + r * SB_LDT + j] = pr * (sm[L::dp + r * SB_LDT + j] - sm[L::stat + 2 * SB_T + r]);
    }
}

// ---- 1. row statistics and dQ, one CTA per (query tile, output head, sequence) ----------------------
extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS, 1) attnc_bwd_sm_rows(attnc_bwd_params p)
{
    extern __shared__ __align__(128) float sm[];
    using L = attnc_sb_layout;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int h = blockIdx.y, n = blockIdx.z;
    int bos, eos;
    attnc_seq_bounds(p.cu_seqlens, p.seqlen, n, bos, eos);
    const int q0 = bos + blockIdx.x * SB_T;
    if (q0 >= eos)
        return;
    const int nq = min(SB_T, eos - q0);
    int kbeg = bos, kend = eos;
    if constexpr (ATTNC_SB_CAUSAL) {
        kend = min(eos, q0 + SB_T);
        if constexpr (ATTNC_SB_WINDOW > 0)
            kbeg = max(bos, q0 - ATTNC_SB_WINDOW + 1);
    }
    sb_load_queries(p, sm, h, q0, nq);
    for (int r = tid; r < SB_T; r += ATTNC_B_THREADS) {
        sm[L::stat + r] = SB_NEG_INF;
        sm[L::stat + SB_T + r] = 0.f;
        sm[L::stat + 2 * SB_T + r] = 0.f;
    }
    // pass 1: m, l, acc online
    for (int k0 = kbeg; k0 < kend; k0 += SB_T) {
        const int nk = min(SB_T, kend - k0);
        __syncthreads();
        sb_load_keys(p, sm, h, k0, nk);
        __syncthreads();
        sb_scores(sm, q0, nq, k0, nk);
        __syncthreads();
        for (int r = warp; r < nq; r += ATTNC_B_WARPS) {
            const float *sr = sm + L::s + r * SB_LDT, *dr = sm + L::dp + r * SB_LDT;
            const float mold = sm[L::stat + r];
            float mx = SB_NEG_INF;
            for (int j = lane; j < SB_T; j += 32)
                mx = fmaxf(mx, sr[j]);
            const float mnew = fmaxf(mold, sb_warp_max(mx)), ref = mnew == SB_NEG_INF ? 0.f : mnew;
            float ls = 0.f, as = 0.f;
            for (int j = lane; j < SB_T; j += 32) {
                const float e = sr[j] == SB_NEG_INF ? 0.f : exp2f(sr[j] - ref);
                ls += e;
                as += e * dr[j];
            }
            ls = attnc_warp_sum(ls);
            as = attnc_warp_sum(as);
            const float corr = mold == SB_NEG_INF ? 0.f : exp2f(mold - ref);
            if (lane == 0) {
                sm[L::stat + r] = mnew;
                sm[L::stat + SB_T + r] = sm[L::stat + SB_T + r] * corr + ls;
                sm[L::stat + 2 * SB_T + r] = sm[L::stat + 2 * SB_T + r] * corr + as;
            }
        }
    }
    __syncthreads();
    for (int r = tid; r < SB_T; r += ATTNC_B_THREADS) {
        const float l = sm[L::stat + SB_T + r];
        const float lse = r < nq && l > 0.f ? sm[L::stat + r] + log2f(l) : SB_POS_INF;
        const float delta = r < nq && l > 0.f ? sm[L::stat + 2 * SB_T + r] / l : 0.f;
        sm[L::stat + r] = lse;
        sm[L::stat + 2 * SB_T + r] = delta;
        if (r < nq) {
            const size_t row = (size_t)(q0 + r) * ATTNC_HOUT + h;
            p.ws_lse[row] = lse;
            p.ws_delta[row] = delta;
        }
    }
    // pass 2: dQ = dS K over the same band
    constexpr int ND = (ATTNC_SB_D + 31) / 32;
    float acc[SB_T / 8][ND];
#pragma unroll
    for (int a = 0; a < SB_T / 8; a++)
#pragma unroll
        for (int b = 0; b < ND; b++)
            acc[a][b] = 0.f;
    for (int k0 = kbeg; k0 < kend; k0 += SB_T) {
        const int nk = min(SB_T, kend - k0);
        __syncthreads();
        sb_load_keys(p, sm, h, k0, nk);
        __syncthreads();
        sb_scores(sm, q0, nq, k0, nk);
        __syncthreads();
        sb_probs(sm);
        __syncthreads();
        sb_accumulate<ND, ATTNC_SB_D, false>(acc, sm + L::dp, sm + L::k, SB_LDD, nk);
    }
#pragma unroll
    for (int a = 0; a < SB_T / 8; a++)
#pragma unroll
        for (int b = 0; b < ND; b++) {
            const int r = warp + 8 * a, d = lane + 32 * b;
            if (r < nq && d < ATTNC_SB_D)
                p.ws_sdq[((size_t)(q0 + r) * ATTNC_HOUT + h) * ATTNC_SB_D + d] = acc[a][b];
        }
}

// ---- 2. dK and dV, one CTA per (key tile, output head, sequence) -----------------------------------
extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS, 1) attnc_bwd_sm_kv(attnc_bwd_params p)
{
    extern __shared__ __align__(128) float sm[];
    using L = attnc_sb_layout;
    const int tid = threadIdx.x;
    const int h = blockIdx.y, n = blockIdx.z;
    int bos, eos;
    attnc_seq_bounds(p.cu_seqlens, p.seqlen, n, bos, eos);
    const int j0 = bos + blockIdx.x * SB_T;
    if (j0 >= eos)
        return;
    const int nk = min(SB_T, eos - j0);
    int qbeg = bos, qend = eos;
    if constexpr (ATTNC_SB_CAUSAL) {
        qbeg = j0;
        if constexpr (ATTNC_SB_WINDOW > 0)
            qend = min(eos, j0 + nk - 1 + ATTNC_SB_WINDOW);
    }
    sb_load_keys(p, sm, h, j0, nk);
    constexpr int ND = (ATTNC_SB_D + 31) / 32, NV = (ATTNC_SB_V + 31) / 32;
    float dk[SB_T / 8][ND], dv[SB_T / 8][NV];
#pragma unroll
    for (int a = 0; a < SB_T / 8; a++) {
#pragma unroll
        for (int b = 0; b < ND; b++)
            dk[a][b] = 0.f;
#pragma unroll
        for (int b = 0; b < NV; b++)
            dv[a][b] = 0.f;
    }
    for (int q0 = qbeg; q0 < qend; q0 += SB_T) {
        const int nq = min(SB_T, qend - q0);
        __syncthreads();
        sb_load_queries(p, sm, h, q0, nq);
        for (int r = tid; r < SB_T; r += ATTNC_B_THREADS) {
            const size_t row = (size_t)(q0 + r) * ATTNC_HOUT + h;
            sm[L::stat + r] = r < nq ? p.ws_lse[row] : SB_POS_INF;
            sm[L::stat + 2 * SB_T + r] = r < nq ? p.ws_delta[row] : 0.f;
        }
        __syncthreads();
        sb_scores(sm, q0, nq, j0, nk);
        __syncthreads();
        sb_probs(sm);
        __syncthreads();
        sb_accumulate<NV, ATTNC_SB_V, true>(dv, sm + L::s, sm + L::dout, SB_LDV, nq);
        sb_accumulate<ND, ATTNC_SB_D, true>(dk, sm + L::dp, sm + L::q, SB_LDD, nq);
    }
    const int lane = tid & 31, warp = tid >> 5;
#pragma unroll
    for (int a = 0; a < SB_T / 8; a++) {
        const int j = warp + 8 * a;
        if (j >= nk)
            continue;
        const size_t row = (size_t)(j0 + j) * ATTNC_HOUT + h;
#pragma unroll
        for (int b = 0; b < NV; b++)
            if (lane + 32 * b < ATTNC_SB_V)
                p.ws_sdv[row * ATTNC_SB_V + lane + 32 * b] = dv[a][b];
#pragma unroll
        for (int b = 0; b < ND; b++)
            if (lane + 32 * b < ATTNC_SB_D)
                p.ws_sdk[row * ATTNC_SB_D + lane + 32 * b] = dk[a][b] * ATTNC_SB_QSCALE;
    }
}
