// codegen/linear_bidir_bwd_kernel.cuh: the backward of the bidirectional linear part (mask none: the
// plain additive recurrence, no decay; issue 4).  codegen/cuda_bwd.c emits it instead of the causal walks
// of linear_bwd_kernel.cuh (ATTNC_B_CAUSAL_LINEAR 0), with the same ATTNC_B_* constants, parameter block
// and generated attnc_bwd_roles; the value DAG's adjoint and the sums are linear_bwd_kernel.cuh's.
//
// Every token reads the state of its whole sequence, o_t = post(q_t^T S) with S = S_0 + sum_j k_j [v_j|1]^T
// (the running denominator is the value column of ones, as in the causal kernel: ATTNC_B_V = ATTNC_B_VO
// + 1).  attnc_bwd_linear, one CTA per (sequence, output head), walks the chunks three times:
//   1. S = h0 (| z0) + sum over the chunks of K^T V;
//   2. per chunk: x = Q S (pre-norm rows, normalisers only), d(x) from dO through the norm's backward
//      (the causal kernel's formulas), dQ = d(x) S^T into ws_dq, dS += Q^T d(x) with dS seeded by dhT
//      (| dzT) in the group's first output head (the one that returns hT);
//   3. per chunk: dK = V dS^T (the ones column gives dk its dz term), dV = K dS, into ws_dk, ws_dv;
// and dh0 (| dz0) = dS into ws_dh0 (| ws_dz0).  Output heads that share a state head carry a copy of S
// each: the copies' dS, and so dk, dv and dh0, are summed by attnc_bwd_sum_heads in a fixed order.
// fp32 on the CUDA cores, every sum in a fixed order, no atomics.

#define ATTNC_B_LDK (ATTNC_B_K + 1)   // odd row strides: column walks hit distinct banks
#define ATTNC_B_LDV (ATTNC_B_V + 1)

enum { BNORM_NONE = 0, BNORM_DENOM = 1, BNORM_RMS = 3, BNORM_LAYER = 4 };   // ir_norm

struct attnc_bwd_layout {   // offsets in floats
    static constexpr unsigned q = 0;                                  // Q rows (role values, fp32)
    static constexpr unsigned k = q + ATTNC_B_C * ATTNC_B_LDK;        // K rows
    static constexpr unsigned v = k + ATTNC_B_C * ATTNC_B_LDK;        // V rows (| 1)
    static constexpr unsigned dout = v + ATTNC_B_C * ATTNC_B_LDV;     // dO rows, then d(x)
    static constexpr unsigned x = dout + ATTNC_B_C * ATTNC_B_LDV;     // pre-norm output rows
    static constexpr unsigned s = x + ATTNC_B_C * ATTNC_B_LDV;        // S
    static constexpr unsigned ds = s + ATTNC_B_K * ATTNC_B_LDV;       // dS
    static constexpr unsigned g = ds + ATTNC_B_K * ATTNC_B_LDV;       // the roles' gate slot (unused)
    static constexpr unsigned floats = g + ATTNC_B_C;
    static constexpr unsigned bytes = (floats * 4 + 127) / 128 * 128;
};

// The chunk's role rows (and dO with `with_dout`); rows past nrows are zero (the ones column too).
__device__ void attnc_bidir_load(const attnc_bwd_params &p, int c0, int nrows, int h, float *sm, bool with_dout)
{
    using L = attnc_bwd_layout;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    for (int r = warp; r < ATTNC_B_C; r += ATTNC_B_WARPS) {
        float *q = sm + L::q + r * ATTNC_B_LDK, *k = sm + L::k + r * ATTNC_B_LDK, *v = sm + L::v + r * ATTNC_B_LDV;
        if (r < nrows) {
            attnc_bwd_roles(p, c0 + r, h, lane, q, k, v, sm + L::g + r, nullptr, nullptr);
        } else {
            for (int c = lane; c < ATTNC_B_K; c += 32)
                q[c] = k[c] = 0.f;
            for (int c = lane; c < ATTNC_B_V; c += 32)
                v[c] = 0.f;
        }
        if constexpr (ATTNC_B_V > ATTNC_B_VO)
            if (lane == 0)
                v[ATTNC_B_VO] = r < nrows ? 1.f : 0.f;
    }
    if (with_dout)
        for (int i = tid; i < ATTNC_B_C * ATTNC_B_V; i += ATTNC_B_THREADS) {
            const int r = i / ATTNC_B_V, c = i % ATTNC_B_V;
            float x = 0.f;
            if (r < nrows && c < ATTNC_B_VO)
                x = attnc_load<ATTNC_OUT_DTYPE>(p.dout, ((size_t)(c0 + r) * ATTNC_HOUT + h) * ATTNC_B_VO + c);
            sm[L::dout + r * ATTNC_B_LDV + c] = x;
        }
    __syncthreads();
}

// The norm's backward per row (one warp), dO -> d(x) in place; x holds the pre-norm rows.
__device__ void attnc_bidir_norm_rows(int nrows, float *sm)
{
    using L = attnc_bwd_layout;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    constexpr float inv_n = 1.f / ATTNC_B_VO;
    for (int r = warp; r < nrows; r += ATTNC_B_WARPS) {
        const float *x = sm + L::x + r * ATTNC_B_LDV;
        float *dy = sm + L::dout + r * ATTNC_B_LDV;
        if constexpr (ATTNC_B_NORM == BNORM_DENOM) {
            // o = x / den, den = q.z + eps: d(x) = dO / den, d(q.z) = -(dO . x) / den^2
            const float den = x[ATTNC_B_VO] + ATTNC_B_EPS;
            float xd = 0.f;
            for (int c = lane; c < ATTNC_B_VO; c += 32)
                xd += x[c] * dy[c];
            xd = attnc_warp_sum(xd);
            __syncwarp();
            for (int c = lane; c < ATTNC_B_VO; c += 32)
                dy[c] = dy[c] / den;
            if (lane == 0)
                dy[ATTNC_B_VO] = -xd / (den * den);
        } else if constexpr (ATTNC_B_NORM == BNORM_RMS) {
            float ss = 0.f, xd = 0.f;
            for (int c = lane; c < ATTNC_B_VO; c += 32) {
                ss += x[c] * x[c];
                xd += x[c] * dy[c];
            }
            ss = attnc_warp_sum(ss);
            xd = attnc_warp_sum(xd);
            const float rs = rsqrtf(ss * inv_n + ATTNC_B_EPS);
            __syncwarp();
            for (int c = lane; c < ATTNC_B_VO; c += 32)
                dy[c] = rs * dy[c] - rs * rs * rs * xd * x[c] * inv_n;
        } else {
            float mean = 0.f;
            for (int c = lane; c < ATTNC_B_VO; c += 32)
                mean += x[c];
            mean = attnc_warp_sum(mean) * inv_n;
            float var = 0.f;
            for (int c = lane; c < ATTNC_B_VO; c += 32)
                var += (x[c] - mean) * (x[c] - mean);
            const float rs = rsqrtf(attnc_warp_sum(var) * inv_n + ATTNC_B_EPS);
            float md = 0.f, mdo = 0.f;
            for (int c = lane; c < ATTNC_B_VO; c += 32) {
                md += dy[c];
                mdo += dy[c] * (x[c] - mean) * rs;
            }
            md = attnc_warp_sum(md) * inv_n;
            mdo = attnc_warp_sum(mdo) * inv_n;
            __syncwarp();
            for (int c = lane; c < ATTNC_B_VO; c += 32)
                dy[c] = rs * (dy[c] - md - (x[c] - mean) * rs * mdo);
        }
    }
}

#if ATTNC_BWD_WANT(ATTNC_BK_LINEAR)
extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS, 1) attnc_bwd_linear(attnc_bwd_params p)
{
    extern __shared__ __align__(128) float sm[];
    using L = attnc_bwd_layout;
    const int tid = threadIdx.x;
    const int h = blockIdx.y, n = blockIdx.x;
    constexpr int G = ATTNC_HOUT / ATTNC_HS;   // output heads per state head
    const int hs = h / G;
    const bool seeded = h % G == 0;             // this copy of the state returns hT (and zT)
    int bos, eos;
    attnc_seq_bounds(p.cu_seqlens, p.seqlen, n, bos, eos);
    const size_t state_base = ((size_t)n * ATTNC_HS + hs) * ATTNC_B_K * ATTNC_B_VO;   // h0, dhT
    const size_t z_base = ((size_t)n * ATTNC_HS + hs) * ATTNC_B_K;                    // z0, dzT
    float *S = sm + L::s, *dS = sm + L::ds;

    // S and dS start at (h0 | z0) and (dhT | dzT)
    for (int i = tid; i < ATTNC_B_K * ATTNC_B_V; i += ATTNC_B_THREADS) {
        const int d = i / ATTNC_B_V, c = i % ATTNC_B_V;
        float x = 0.f, y = 0.f;
        if (c < ATTNC_B_VO) {
            x = p.h0 ? p.h0[state_base + d * ATTNC_B_VO + c] : 0.f;
            y = seeded && p.dhT ? p.dhT[state_base + d * ATTNC_B_VO + c] : 0.f;
        } else {
            x = p.z0 ? p.z0[z_base + d] : 0.f;
            y = seeded && p.dzT ? p.dzT[z_base + d] : 0.f;
        }
        S[d * ATTNC_B_LDV + c] = x;
        dS[d * ATTNC_B_LDV + c] = y;
    }
    __syncthreads();
    // ---- 1. S = S_0 + sum K^T V ----
    for (int c0 = bos; c0 < eos; c0 += ATTNC_B_C) {
        const int nrows = min(ATTNC_B_C, eos - c0);
        attnc_bidir_load(p, c0, nrows, h, sm, false);
        for (int i = tid; i < ATTNC_B_K * ATTNC_B_V; i += ATTNC_B_THREADS) {
            const int d = i / ATTNC_B_V, c = i % ATTNC_B_V;
            float s = S[d * ATTNC_B_LDV + c];
            for (int j = 0; j < nrows; j++)
                s += sm[L::k + j * ATTNC_B_LDK + d] * sm[L::v + j * ATTNC_B_LDV + c];
            S[d * ATTNC_B_LDV + c] = s;
        }
        __syncthreads();
    }
    // ---- 2. d(x), dQ = d(x) S^T, dS += Q^T d(x) ----
    for (int c0 = bos; c0 < eos; c0 += ATTNC_B_C) {
        const int nrows = min(ATTNC_B_C, eos - c0);
        attnc_bidir_load(p, c0, nrows, h, sm, true);
        if constexpr (ATTNC_B_NORM != BNORM_NONE) {
            for (int i = tid; i < nrows * ATTNC_B_V; i += ATTNC_B_THREADS) {
                const int r = i / ATTNC_B_V, c = i % ATTNC_B_V;
                const float *qr = sm + L::q + r * ATTNC_B_LDK;
                float s = 0.f;
                for (int d = 0; d < ATTNC_B_K; d++)
                    s += qr[d] * S[d * ATTNC_B_LDV + c];
                sm[L::x + r * ATTNC_B_LDV + c] = s;
            }
            __syncthreads();
            attnc_bidir_norm_rows(nrows, sm);
            __syncthreads();
        }
        for (int i = tid; i < nrows * ATTNC_B_K; i += ATTNC_B_THREADS) {
            const int r = i / ATTNC_B_K, d = i % ATTNC_B_K;
            const float *dx = sm + L::dout + r * ATTNC_B_LDV, *sr = S + d * ATTNC_B_LDV;
            float s = 0.f;
            for (int c = 0; c < ATTNC_B_V; c++)
                s += dx[c] * sr[c];
            p.ws_dq[((size_t)(c0 + r) * ATTNC_HOUT + h) * ATTNC_B_K + d] = s;
        }
        for (int i = tid; i < ATTNC_B_K * ATTNC_B_V; i += ATTNC_B_THREADS) {
            const int d = i / ATTNC_B_V, c = i % ATTNC_B_V;
            float s = dS[d * ATTNC_B_LDV + c];
            for (int r = 0; r < nrows; r++)
                s += sm[L::q + r * ATTNC_B_LDK + d] * sm[L::dout + r * ATTNC_B_LDV + c];
            dS[d * ATTNC_B_LDV + c] = s;
        }
        __syncthreads();
    }
    // ---- 3. dK = V dS^T, dV = K dS ----
    for (int c0 = bos; c0 < eos; c0 += ATTNC_B_C) {
        const int nrows = min(ATTNC_B_C, eos - c0);
        attnc_bidir_load(p, c0, nrows, h, sm, false);
        for (int i = tid; i < nrows * ATTNC_B_V; i += ATTNC_B_THREADS) {
            const int j = i / ATTNC_B_V, c = i % ATTNC_B_V;
            const float *kj = sm + L::k + j * ATTNC_B_LDK;
            float s = 0.f;
            for (int d = 0; d < ATTNC_B_K; d++)
                s += kj[d] * dS[d * ATTNC_B_LDV + c];
            p.ws_dv[((size_t)(c0 + j) * ATTNC_HOUT + h) * ATTNC_B_V + c] = s;
        }
        for (int i = tid; i < nrows * ATTNC_B_K; i += ATTNC_B_THREADS) {
            const int j = i / ATTNC_B_K, d = i % ATTNC_B_K;
            const float *vj = sm + L::v + j * ATTNC_B_LDV, *dr = dS + d * ATTNC_B_LDV;
            float s = 0.f;
            for (int c = 0; c < ATTNC_B_V; c++)
                s += vj[c] * dr[c];
            p.ws_dk[((size_t)(c0 + j) * ATTNC_HOUT + h) * ATTNC_B_K + d] = s;
        }
        __syncthreads();
    }
    if (p.ws_dh0)
        for (int i = tid; i < ATTNC_B_K * ATTNC_B_VO; i += ATTNC_B_THREADS) {
            const int d = i / ATTNC_B_VO, c = i % ATTNC_B_VO;
            p.ws_dh0[((size_t)n * ATTNC_HOUT + h) * ATTNC_B_K * ATTNC_B_VO + i] = dS[d * ATTNC_B_LDV + c];
        }
    if (ATTNC_B_V > ATTNC_B_VO && p.ws_dz0)
        for (int d = tid; d < ATTNC_B_K; d += ATTNC_B_THREADS)
            p.ws_dz0[((size_t)n * ATTNC_HOUT + h) * ATTNC_B_K + d] = dS[d * ATTNC_B_LDV + ATTNC_B_VO];
}
#endif
