// codegen/softmax_bwd_kernel.cuh: the backward of the softmax part (issue 4), FlashAttention-2 style, its
// five products on the tensor cores (mma.sync m16n8k16 through support.cuh's helpers, the forward's).
// codegen/cuda_bwd_softmax.c emits before this text the ATTNC_SB_* constants (passes/grad_softmax.c chose
// the tile): head dims D (query, key) and V and their padded DP, VP, the tile rows T, causal or not,
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
// rows past the sequence's end are never stored.
// Operands: q, k, v and dO are staged as mma tiles (elt: bf16 or fp16 as the inputs, or fp32 split into
// three bf16 products for fp32 inputs, the plan's operands), zero past their rows and columns; S and
// dO V^T accumulate in fp32 and go to fp32 tiles, where the masks, the row statistics and
// P = 2^{s - lse}, dS = P o (dP - Delta) are formed in fp32; P and dS are then rounded to elt for the
// second products (dQ = dS K, dV = P^T dO, dK = dS^T Q; the transposes through ldmatrix.trans), whose
// accumulators stay in registers across the tiles.  Warps: T / 16 row blocks times 8 / (T / 16) column
// groups.  fp32 accumulation everywhere.

#define SB_T ATTNC_SB_TILE
#define SB_RB (SB_T / 16)                  // row blocks of 16 rows
#define SB_CG (ATTNC_B_WARPS / SB_RB)      // column groups
#define SB_LDQ (ATTNC_SB_DP + 8)           // elt tiles: rows 16-byte aligned, ldmatrix without conflicts
#define SB_LDV (ATTNC_SB_VP + 8)
#define SB_LDE (SB_T + 8)                  // elt tiles of P and dS
#define SB_LDS (SB_T + 1)                  // fp32 tiles of the scores and dP
#define SB_NEG_INF (-__int_as_float(0x7f800000))
#define SB_POS_INF (__int_as_float(0x7f800000))

static_assert(ATTNC_B_WARPS % SB_RB == 0 && (SB_T / SB_CG) % 8 == 0 && (ATTNC_SB_DP / SB_CG) % 8 == 0 &&
                  (ATTNC_SB_VP / SB_CG) % 8 == 0,
              "the warps' column groups must be whole n-tiles of 8");

struct attnc_sb_layout {   // offsets in bytes
    static constexpr unsigned q = 0;                                      // query rows (elt)
    static constexpr unsigned k = q + SB_T * SB_LDQ * sizeof(elt);        // key rows
    static constexpr unsigned v = k + SB_T * SB_LDQ * sizeof(elt);        // value rows
    static constexpr unsigned dout = v + SB_T * SB_LDV * sizeof(elt);     // dO rows
    static constexpr unsigned pe = dout + SB_T * SB_LDV * sizeof(elt);    // P as an operand
    static constexpr unsigned dse = pe + SB_T * SB_LDE * sizeof(elt);     // dS as an operand
    static constexpr unsigned s = dse + SB_T * SB_LDE * sizeof(elt);      // scores (log2 units), then P (fp32)
    static constexpr unsigned dp = s + SB_T * SB_LDS * 4;                 // dO V^T, then dS (fp32)
    static constexpr unsigned stat = dp + SB_T * SB_LDS * 4;              // per query row: m | lse, l, acc | Delta
    static constexpr unsigned bytes = (stat + 3 * SB_T * 4 + 127) / 128 * 128;
};

struct sb_tiles {
    elt *q, *k, *v, *dout, *pe, *dse;
    float *s, *dp, *stat;
    __device__ explicit sb_tiles(unsigned char *sm)
        : q((elt *)(sm + attnc_sb_layout::q)), k((elt *)(sm + attnc_sb_layout::k)), v((elt *)(sm + attnc_sb_layout::v)),
          dout((elt *)(sm + attnc_sb_layout::dout)), pe((elt *)(sm + attnc_sb_layout::pe)),
          dse((elt *)(sm + attnc_sb_layout::dse)), s((float *)(sm + attnc_sb_layout::s)),
          dp((float *)(sm + attnc_sb_layout::dp)), stat((float *)(sm + attnc_sb_layout::stat))
    {
    }
};

// Rows [row0, row0 + nrows) of a [T, heads, LEN] tensor, head `hd`, into an elt tile of LENP columns (row
// stride ld); rows past nrows and columns past LEN are 0.
template <int DT, int LEN, int LENP>
__device__ __forceinline__ void sb_load(elt *tile, int ld, const void *src, int heads, int hd, int row0, int nrows)
{
    for (int i = threadIdx.x; i < SB_T * LENP; i += ATTNC_B_THREADS) {
        const int r = i / LENP, c = i % LENP;
        float x = 0.f;
        if (r < nrows && c < LEN)
            x = attnc_load<DT>(src, ((size_t)(row0 + r) * heads + hd) * LEN + c);
        tile[r * ld + c] = attnc_float_to_elt(x);
    }
}

__device__ __forceinline__ float sb_warp_max(float x)
{
#pragma unroll
    for (int o = 16; o; o >>= 1)
        x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

// acc[16 x 8 NT] += A^T B with A^T[m][kr] = a_tile[kr][m] (m in [m0, m0 + 16), kr over 16 KT rows) and B
// stored [kr][n] (k-major): dV = P^T dO and dK = dS^T Q.
template <int NT, int KT>
__device__ __forceinline__ void sb_mm_t(float (*acc)[4], const elt *a_tile, int lda, int m0, const elt *b_tile, int ldb,
                                        int n0, int lane)
{
#pragma unroll
    for (int kt = 0; kt < KT; kt++) {
        frag a;
        load_a_t(a, a_tile, lda, m0, kt * 16, lane);
        mma_kstep<NT, true>(acc, a, b_tile, ldb, n0, kt, lane);
    }
}

// s[r][j] = c log2(e) q_r . k_j (-inf where masked) and dp[r][j] = dO_r . v_j (0 where masked), for query
// rows q0 + r (r < nq) and keys k0 + j (j < nk): warp (rb, g) = (warp % RB, warp / RB) forms rows
// [16 rb, 16 rb + 16) and columns [g T / CG, (g + 1) T / CG) of both on the tensor cores.
__device__ __forceinline__ void sb_scores(const sb_tiles &m, int q0, int nq, int k0, int nk)
{
    constexpr int NT = SB_T / SB_CG / 8;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gr = lane >> 2, tq = lane & 3;
    const int r0 = (warp % SB_RB) * 16, n0 = (warp / SB_RB) * (SB_T / SB_CG);
    float a[NT][4], d[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            a[nt][e] = d[nt][e] = 0.f;
    mm_rows<NT, ATTNC_SB_DP / 16, false>(a, m.q, SB_LDQ, r0, m.k, SB_LDQ, n0, lane);
    mm_rows<NT, ATTNC_SB_VP / 16, false>(d, m.dout, SB_LDV, r0, m.v, SB_LDV, n0, lane);
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int r = r0 + gr + (e >> 1) * 8, j = n0 + nt * 8 + tq * 2 + (e & 1), t = q0 + r, kj = k0 + j;
            bool keep = r < nq && j < nk;
            if constexpr (ATTNC_SB_CAUSAL) {
                keep = keep && kj <= t;
                if constexpr (ATTNC_SB_WINDOW > 0)
                    keep = keep && t - kj < ATTNC_SB_WINDOW;
            }
            m.s[r * SB_LDS + j] = keep ? a[nt][e] * ATTNC_SB_SCALE : SB_NEG_INF;
            m.dp[r * SB_LDS + j] = keep ? d[nt][e] : 0.f;
        }
}

// The query rows of a tile: q (raw input of the query head) and dO (output head h).
__device__ __forceinline__ void sb_load_queries(const attnc_bwd_params &p, const sb_tiles &m, int h, int q0, int nq)
{
    const int hq = h / (ATTNC_HOUT / ATTNC_SB_HQ);
    sb_load<ATTNC_SB_QDT, ATTNC_SB_D, ATTNC_SB_DP>(m.q, SB_LDQ, p.in[ATTNC_SB_QIN], ATTNC_SB_HQ, hq, q0, nq);
    sb_load<ATTNC_OUT_DTYPE, ATTNC_SB_V, ATTNC_SB_VP>(m.dout, SB_LDV, p.dout, ATTNC_HOUT, h, q0, nq);
}

__device__ __forceinline__ void sb_load_keys(const attnc_bwd_params &p, const sb_tiles &m, int h, int k0, int nk)
{
    const int hk = h / (ATTNC_HOUT / ATTNC_SB_HK), hv = h / (ATTNC_HOUT / ATTNC_SB_HV);
    sb_load<ATTNC_SB_KDT, ATTNC_SB_D, ATTNC_SB_DP>(m.k, SB_LDQ, p.in[ATTNC_SB_KIN], ATTNC_SB_HK, hk, k0, nk);
    sb_load<ATTNC_SB_VDT, ATTNC_SB_V, ATTNC_SB_VP>(m.v, SB_LDV, p.in[ATTNC_SB_VIN], ATTNC_SB_HV, hv, k0, nk);
}

// P = 2^{s - lse} and dS = P o (dp - Delta) (stat holds lse and Delta of the query rows), in fp32 in s and
// dp and as operands in pe and dse.
__device__ __forceinline__ void sb_probs(const sb_tiles &m)
{
    for (int i = threadIdx.x; i < SB_T * SB_T; i += ATTNC_B_THREADS) {
        const int r = i / SB_T, j = i % SB_T;
        const float s = m.s[r * SB_LDS + j];
        const float pr = s == SB_NEG_INF ? 0.f : exp2f(s - m.stat[r]);
        const float ds = pr * (m.dp[r * SB_LDS + j] - m.stat[2 * SB_T + r]);
        m.s[r * SB_LDS + j] = pr;
        m.dp[r * SB_LDS + j] = ds;
        m.pe[r * SB_LDE + j] = attnc_float_to_elt(pr);
        m.dse[r * SB_LDE + j] = attnc_float_to_elt(ds);
    }
}

// ---- 1. row statistics and dQ, one CTA per (query tile, output head, sequence) ----------------------
#if ATTNC_BWD_WANT(ATTNC_BK_SM_ROWS)
extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS, 1) attnc_bwd_sm_rows(attnc_bwd_params p)
{
    extern __shared__ __align__(128) unsigned char smem[];
    const sb_tiles m(smem);
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
    sb_load_queries(p, m, h, q0, nq);
    for (int r = tid; r < SB_T; r += ATTNC_B_THREADS) {
        m.stat[r] = SB_NEG_INF;
        m.stat[SB_T + r] = 0.f;
        m.stat[2 * SB_T + r] = 0.f;
    }
    // pass 1: m, l, acc online
    for (int k0 = kbeg; k0 < kend; k0 += SB_T) {
        const int nk = min(SB_T, kend - k0);
        __syncthreads();
        sb_load_keys(p, m, h, k0, nk);
        __syncthreads();
        sb_scores(m, q0, nq, k0, nk);
        __syncthreads();
        for (int r = warp; r < nq; r += ATTNC_B_WARPS) {
            const float *sr = m.s + r * SB_LDS, *dr = m.dp + r * SB_LDS;
            const float mold = m.stat[r];
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
                m.stat[r] = mnew;
                m.stat[SB_T + r] = m.stat[SB_T + r] * corr + ls;
                m.stat[2 * SB_T + r] = m.stat[2 * SB_T + r] * corr + as;
            }
        }
    }
    __syncthreads();
    for (int r = tid; r < SB_T; r += ATTNC_B_THREADS) {
        const float l = m.stat[SB_T + r];
        const float lse = r < nq && l > 0.f ? m.stat[r] + log2f(l) : SB_POS_INF;
        const float delta = r < nq && l > 0.f ? m.stat[2 * SB_T + r] / l : 0.f;
        m.stat[r] = lse;
        m.stat[2 * SB_T + r] = delta;
        if (r < nq) {
            const size_t row = (size_t)(q0 + r) * ATTNC_HOUT + h;
            p.ws_lse[row] = lse;
            p.ws_delta[row] = delta;
        }
    }
    // pass 2: dQ = dS K over the same band, warp (rb, g): rows [16 rb, 16 rb + 16), columns g DP / CG on
    constexpr int NQ = ATTNC_SB_DP / SB_CG / 8;
    const int r0 = (warp % SB_RB) * 16, n0 = (warp / SB_RB) * (ATTNC_SB_DP / SB_CG), gr = lane >> 2, tq = lane & 3;
    float acc[NQ][4];
#pragma unroll
    for (int nt = 0; nt < NQ; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            acc[nt][e] = 0.f;
    for (int k0 = kbeg; k0 < kend; k0 += SB_T) {
        const int nk = min(SB_T, kend - k0);
        __syncthreads();
        sb_load_keys(p, m, h, k0, nk);
        __syncthreads();
        sb_scores(m, q0, nq, k0, nk);
        __syncthreads();
        sb_probs(m);
        __syncthreads();
        mm_rows<NQ, SB_T / 16, true>(acc, m.dse, SB_LDE, r0, m.k, SB_LDQ, n0, lane);
    }
#pragma unroll
    for (int nt = 0; nt < NQ; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int r = r0 + gr + (e >> 1) * 8, d = n0 + nt * 8 + tq * 2 + (e & 1);
            if (r < nq && d < ATTNC_SB_D)
                p.ws_sdq[((size_t)(q0 + r) * ATTNC_HOUT + h) * ATTNC_SB_D + d] = acc[nt][e];
        }
}
#endif

// ---- 2. dK and dV, one CTA per (key tile, output head, sequence) -----------------------------------
#if ATTNC_BWD_WANT(ATTNC_BK_SM_KV)
extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS, 1) attnc_bwd_sm_kv(attnc_bwd_params p)
{
    extern __shared__ __align__(128) unsigned char smem[];
    const sb_tiles m(smem);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, gr = lane >> 2, tq = lane & 3;
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
    sb_load_keys(p, m, h, j0, nk);
    // warp (rb, g): key rows [16 rb, 16 rb + 16), columns g DP / CG (dK) and g VP / CG (dV) on
    constexpr int ND = ATTNC_SB_DP / SB_CG / 8, NV = ATTNC_SB_VP / SB_CG / 8;
    const int m0 = (warp % SB_RB) * 16, g = warp / SB_RB;
    float dk[ND][4], dv[NV][4];
#pragma unroll
    for (int nt = 0; nt < ND; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            dk[nt][e] = 0.f;
#pragma unroll
    for (int nt = 0; nt < NV; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            dv[nt][e] = 0.f;
    for (int q0 = qbeg; q0 < qend; q0 += SB_T) {
        const int nq = min(SB_T, qend - q0);
        __syncthreads();
        sb_load_queries(p, m, h, q0, nq);
        for (int r = tid; r < SB_T; r += ATTNC_B_THREADS) {
            const size_t row = (size_t)(q0 + r) * ATTNC_HOUT + h;
            m.stat[r] = r < nq ? p.ws_lse[row] : SB_POS_INF;
            m.stat[2 * SB_T + r] = r < nq ? p.ws_delta[row] : 0.f;
        }
        __syncthreads();
        sb_scores(m, q0, nq, j0, nk);
        __syncthreads();
        sb_probs(m);
        __syncthreads();
        sb_mm_t<NV, SB_T / 16>(dv, m.pe, SB_LDE, m0, m.dout, SB_LDV, g * (ATTNC_SB_VP / SB_CG), lane);
        sb_mm_t<ND, SB_T / 16>(dk, m.dse, SB_LDE, m0, m.q, SB_LDQ, g * (ATTNC_SB_DP / SB_CG), lane);
    }
#pragma unroll
    for (int e = 0; e < 4; e++) {
        const int j = m0 + gr + (e >> 1) * 8;
        if (j >= nk)
            continue;
        const size_t row = (size_t)(j0 + j) * ATTNC_HOUT + h;
#pragma unroll
        for (int nt = 0; nt < NV; nt++) {
            const int c = g * (ATTNC_SB_VP / SB_CG) + nt * 8 + tq * 2 + (e & 1);
            if (c < ATTNC_SB_V)
                p.ws_sdv[row * ATTNC_SB_V + c] = dv[nt][e];
        }
#pragma unroll
        for (int nt = 0; nt < ND; nt++) {
            const int d = g * (ATTNC_SB_DP / SB_CG) + nt * 8 + tq * 2 + (e & 1);
            if (d < ATTNC_SB_D)
                p.ws_sdk[row * ATTNC_SB_D + d] = dk[nt][e] * ATTNC_SB_QSCALE;
        }
    }
}
#endif
