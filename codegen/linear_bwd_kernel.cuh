// codegen/linear_bwd_kernel.cuh: the backward of the causal linear part (issue 4, first tier), completed
// by codegen/cuda_bwd.c, which emits before this text the ATTNC_B_* constants (passes/grad.c chose
// them), support.cuh, the parameter block attnc_bwd_params and the generated functions
//   attnc_bwd_roles(p, t, h, lane, q, k, v, g): the spec's value DAG for token t, output head h (one warp),
//                                              fp32 role rows into shared memory (natural-log gate);
//   attnc_bwd_adjoint(p, t, h, lane):          the same DAG again, then its adjoint (one rule per IR op),
//                                              seeded with the role gradients of (t, h), storing every
//                                              tensor's partial gradient of (t, h) into p.part[i].
//
// Kernels, in launch order (api/backward.c):
//   1. attnc_bwd_linear, one CTA per (sequence, output head): the role gradients dq, dk, dv, dlog-gate
//      into fp32 workspaces, and the head's share of dh0.  Two walks over the sequence's chunks with
//      the chunk-local cumulative log2 gate b (algorithms.md 1.3, 1.4, 2.x(d)):
//        forward walk  (S from h0):  dQ = (dO S_in^T) * gamma + ((dO V^T) o D) K;   S_out = gamma_L S_in + Kd^T V
//                                    storing every chunk's S_out (fp32) for the gate gradient;
//        reverse walk  (dS from dhT): P = (Q K^T) o D,  dV = P^T dO + Kd dS_out,
//                                    dK = ((dO V^T) o D)^T Q + (V dS_out^T) * e^{b_L - b},
//                                    dL/db_s = q_s . dq_s - k_s . dk_s, reverse cumsum inside the chunk
//                                    starting from rowsum(S_out o dS_out) at the chunk's end,
//                                    dS_in = gamma_L dS_out + (Q * gamma)^T dO;  dh0 = dS_in of chunk 0
//      with D_rj = e^{b_r - b_j} (j <= r), Kd = K * e^{b_L - b}.  Every pairwise factor is formed as one
//      exp2 of a difference <= 0 (never e^{b_r} e^{-b_j}), so per-channel gates of any strength cannot
//      overflow; everything is fp32 on the CUDA cores (state, tiles and products).
//   2. attnc_bwd_inputs, one warp per (token, output head): the adjoint of the value DAG.
//   3. attnc_bwd_sum_heads / attnc_bwd_sum_param: the per-output-head partials summed over the heads that
//      share a tensor (GQA, GVA, h0 of shared state heads), and parameters also over the tokens, in a
//      fixed order, converted to the tensor's dtype.  No atomics anywhere: same bits every run.
// Normalisers (second tier): with RMS or LayerNorm over the output row, or the running denominator, the
// forward walk also recomputes each row's pre-norm output x = (Q * gamma) S_in + P V (P as in the reverse
// walk) and turns dO into d(x) with the norm's backward (one warp per row, fp32); d(x) replaces dO in
// everything after, and goes to a workspace (ws_do) that the reverse walk reads instead of dout.  The
// denominator is a value column of ones: ATTNC_B_V = ATTNC_B_VO + 1, the state's last column is z (from z0,
// its gradient seeded by dzT, returned as dz0), x's last column is q.z, and
//   d(num) = dO / (q.z + eps),  d(q.z) = -(dO . o) / (q.z + eps)  with o = num / (q.z + eps).
// Output heads that share one state head (more query heads than state heads) each carry a copy of the
// state: every copy reads h0 (so dh0 sums over them) and only the group's first head returns hT (so only
// it is seeded with dhT).

#define ATTNC_B_THREADS 256
#define ATTNC_B_WARPS (ATTNC_B_THREADS / 32)

#if ATTNC_B_CAUSAL_LINEAR   // the causal walks (else linear_bidir_bwd_kernel.cuh's, or no linear part)
#define ATTNC_B_LDK (ATTNC_B_K + 1)   // odd row strides: column walks hit distinct banks
#define ATTNC_B_LDV (ATTNC_B_V + 1)
#define ATTNC_B_LDG (ATTNC_B_GK == 1 ? 1 : ATTNC_B_GK + 1)
#define ATTNC_B_LDA (ATTNC_B_C + 1)

enum { BTR_IDENTITY = 0, BTR_CONST = 1, BTR_SCALAR = 2, BTR_DIAG = 3 };
enum { BNORM_NONE = 0, BNORM_DENOM = 1, BNORM_RMS = 3, BNORM_LAYER = 4 };   // ir_norm

struct attnc_bwd_layout {   // offsets in floats
    static constexpr unsigned q = 0;                                  // Q rows (role values, fp32)
    static constexpr unsigned k = q + ATTNC_B_C * ATTNC_B_LDK;        // K rows
    static constexpr unsigned qg = k + ATTNC_B_C * ATTNC_B_LDK;       // Q * gamma
    static constexpr unsigned kd = qg + ATTNC_B_C * ATTNC_B_LDK;      // K * e^{b_L - b}
    static constexpr unsigned dk = kd + ATTNC_B_C * ATTNC_B_LDK;      // dK of the chunk (reverse walk)
    static constexpr unsigned v = dk + ATTNC_B_C * ATTNC_B_LDK;       // V rows
    static constexpr unsigned dout = v + ATTNC_B_C * ATTNC_B_LDV;     // dO rows
    static constexpr unsigned g = dout + ATTNC_B_C * ATTNC_B_LDV;     // log gates, then cumulative log2
    static constexpr unsigned s = g + ATTNC_B_C * ATTNC_B_LDG;        // S (forward walk) or dS (reverse)
    static constexpr unsigned a = s + ATTNC_B_K * ATTNC_B_LDV;        // C x C: dO V^T or P
    static constexpr unsigned red = a + ATTNC_B_C * ATTNC_B_LDA;      // per-row sums
    static constexpr unsigned carry = red + ATTNC_B_C;                // the gate gradient's carry (K)
    static constexpr unsigned x = carry + ATTNC_B_K;                  // pre-norm output rows (normalisers)
    static constexpr unsigned floats = x + (ATTNC_B_NORM != BNORM_NONE ? ATTNC_B_C * ATTNC_B_LDV : 0);
    static constexpr unsigned bytes = (floats * 4 + 127) / 128 * 128;
};

// e^{x ln 2} for an exponent that is <= 0 where it is formed (clamped, so rounding cannot exceed 1).
__device__ __forceinline__ float attnc_bdec(float x)
{
    if constexpr (ATTNC_B_TRANSITION == BTR_IDENTITY)
        return 1.f;
    else
        return exp2f(fminf(x, 0.f));
}

// The chunk's rows into shared memory: roles through the generated DAG, dO from memory (dout, or the
// normalised d(x) of ws_do when `norm_done`); padding rows (r >= nrows) are zero with log-gate 0 (no write,
// no decay).  The denominator's value column of ones.  Then the chunk-local cumulative log2 gate.
__device__ void attnc_bwd_load_chunk(const attnc_bwd_params &p, int c0, int nrows, int h, float *sm, bool norm_done)
{
    using L = attnc_bwd_layout;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    for (int r = warp; r < ATTNC_B_C; r += ATTNC_B_WARPS) {
        float *q = sm + L::q + r * ATTNC_B_LDK, *k = sm + L::k + r * ATTNC_B_LDK, *v = sm + L::v + r * ATTNC_B_LDV;
        float *g = sm + L::g + r * ATTNC_B_LDG;
        if (r < nrows) {
            attnc_bwd_roles(p, c0 + r, h, lane, q, k, v, g);
        } else {
            for (int c = lane; c < ATTNC_B_K; c += 32)
                q[c] = k[c] = 0.f;
            for (int c = lane; c < ATTNC_B_V; c += 32)
                v[c] = 0.f;
            for (int c = lane; c < ATTNC_B_GK; c += 32)
                g[c] = 0.f;
        }
        if constexpr (ATTNC_B_V > ATTNC_B_VO)
            if (lane == 0)
                v[ATTNC_B_VO] = r < nrows ? 1.f : 0.f;
    }
    for (int i = tid; i < ATTNC_B_C * ATTNC_B_V; i += ATTNC_B_THREADS) {
        const int r = i / ATTNC_B_V, c = i % ATTNC_B_V;
        const size_t row = (size_t)(c0 + r) * ATTNC_HOUT + h;
        float x = 0.f;
        if (r < nrows) {
            if (ATTNC_B_NORM != BNORM_NONE && norm_done)
                x = p.ws_do[row * ATTNC_B_V + c];
            else if (c < ATTNC_B_VO)
                x = attnc_load<ATTNC_OUT_DTYPE>(p.dout, row * ATTNC_B_VO + c);
        }
        sm[L::dout + r * ATTNC_B_LDV + c] = x;
    }
    __syncthreads();
    if constexpr (ATTNC_B_TRANSITION != BTR_IDENTITY) {
        for (int d = tid; d < ATTNC_B_GK; d += ATTNC_B_THREADS) {
            float acc = 0.f;
            for (int r = 0; r < ATTNC_B_C; r++) {
                acc += sm[L::g + r * ATTNC_B_LDG + d] * LOG2E;
                sm[L::g + r * ATTNC_B_LDG + d] = acc;
            }
        }
    }
    __syncthreads();
    // Q * gamma and K * e^{b_L - b} (padding rows carry gate 0, so row C-1 holds b_L).
    for (int i = tid; i < ATTNC_B_C * ATTNC_B_K; i += ATTNC_B_THREADS) {
        const int r = i / ATTNC_B_K, d = i % ATTNC_B_K, gd = ATTNC_B_GK == 1 ? 0 : d;
        const float b = sm[L::g + r * ATTNC_B_LDG + gd], bl = sm[L::g + (ATTNC_B_C - 1) * ATTNC_B_LDG + gd];
        sm[L::qg + r * ATTNC_B_LDK + d] = sm[L::q + r * ATTNC_B_LDK + d] * attnc_bdec(b);
        sm[L::kd + r * ATTNC_B_LDK + d] = sm[L::k + r * ATTNC_B_LDK + d] * attnc_bdec(bl - b);
    }
    __syncthreads();
}

// sA[r][j] = (dO_r . V_j) D_rj for j <= r (scalar decays), or without D (per-channel: applied per channel).
__device__ void attnc_bwd_dov(float *sm)
{
    using L = attnc_bwd_layout;
    for (int i = threadIdx.x; i < ATTNC_B_C * ATTNC_B_C; i += ATTNC_B_THREADS) {
        const int r = i / ATTNC_B_C, j = i % ATTNC_B_C;
        float s = 0.f;
        if (j <= r) {
            const float *x = sm + L::dout + r * ATTNC_B_LDV, *y = sm + L::v + j * ATTNC_B_LDV;
            for (int c = 0; c < ATTNC_B_V; c++)
                s += x[c] * y[c];
            if constexpr (ATTNC_B_GK == 1)
                s *= attnc_bdec(sm[L::g + r] - sm[L::g + j]);
        }
        sm[L::a + r * ATTNC_B_LDA + j] = s;
    }
}

// sA = P = (Q K^T) o D (j <= r), 0 above the diagonal.
__device__ void attnc_bwd_p(float *sm)
{
    using L = attnc_bwd_layout;
    for (int i = threadIdx.x; i < ATTNC_B_C * ATTNC_B_C; i += ATTNC_B_THREADS) {
        const int r = i / ATTNC_B_C, j = i % ATTNC_B_C;
        float s = 0.f;
        if (j <= r) {
            const float *x = sm + L::q + r * ATTNC_B_LDK, *y = sm + L::k + j * ATTNC_B_LDK;
            if constexpr (ATTNC_B_GK == 1) {
                for (int d = 0; d < ATTNC_B_K; d++)
                    s += x[d] * y[d];
                s *= attnc_bdec(sm[L::g + r] - sm[L::g + j]);
            } else {
                const float *gr = sm + L::g + r * ATTNC_B_LDG, *gj = sm + L::g + j * ATTNC_B_LDG;
                for (int d = 0; d < ATTNC_B_K; d++)
                    s += x[d] * y[d] * attnc_bdec(gr[d] - gj[d]);
            }
        }
        sm[L::a + r * ATTNC_B_LDA + j] = s;
    }
}

// The normaliser's backward (forward walk, after attnc_bwd_p): x = (Q * gamma) S_in + P V, then per row
// (one warp) dO -> d(x) in place in the dO tile and into ws_do for the reverse walk.
__device__ void attnc_bwd_norm_rows(const attnc_bwd_params &p, int c0, int nrows, int h, float *sm)
{
    using L = attnc_bwd_layout;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const float *S = sm + L::s;
    for (int i = tid; i < nrows * ATTNC_B_V; i += ATTNC_B_THREADS) {
        const int r = i / ATTNC_B_V, c = i % ATTNC_B_V;
        float s = 0.f;
        const float *qg = sm + L::qg + r * ATTNC_B_LDK;
        for (int d = 0; d < ATTNC_B_K; d++)
            s += qg[d] * S[d * ATTNC_B_LDV + c];
        for (int j = 0; j <= r; j++)
            s += sm[L::a + r * ATTNC_B_LDA + j] * sm[L::v + j * ATTNC_B_LDV + c];
        sm[L::x + r * ATTNC_B_LDV + c] = s;
    }
    __syncthreads();
    constexpr float inv_n = 1.f / ATTNC_B_VO;
    for (int r = warp; r < nrows; r += ATTNC_B_WARPS) {
        const float *x = sm + L::x + r * ATTNC_B_LDV;
        float *dy = sm + L::dout + r * ATTNC_B_LDV;
        float *ws = p.ws_do + ((size_t)(c0 + r) * ATTNC_HOUT + h) * ATTNC_B_V;
        if constexpr (ATTNC_B_NORM == BNORM_DENOM) {
            // o = x / den, den = q.z + eps: d(x) = dO / den, d(q.z) = -(dO . x) / den^2
            const float den = x[ATTNC_B_VO] + ATTNC_B_EPS;
            float xd = 0.f;
            for (int c = lane; c < ATTNC_B_VO; c += 32)
                xd += x[c] * dy[c];
            xd = attnc_warp_sum(xd);
            __syncwarp();
            for (int c = lane; c < ATTNC_B_VO; c += 32) {
                dy[c] = dy[c] / den;
                ws[c] = dy[c];
            }
            if (lane == 0) {
                dy[ATTNC_B_VO] = -xd / (den * den);
                ws[ATTNC_B_VO] = dy[ATTNC_B_VO];
            }
        } else if constexpr (ATTNC_B_NORM == BNORM_RMS) {
            // o = x rs, rs = (|x|^2 / V + eps)^-1/2: d(x) = rs dO - rs^3 (x . dO) x / V
            float ss = 0.f, xd = 0.f;
            for (int c = lane; c < ATTNC_B_VO; c += 32) {
                ss += x[c] * x[c];
                xd += x[c] * dy[c];
            }
            ss = attnc_warp_sum(ss);
            xd = attnc_warp_sum(xd);
            const float rs = rsqrtf(ss * inv_n + ATTNC_B_EPS);
            __syncwarp();
            for (int c = lane; c < ATTNC_B_VO; c += 32) {
                dy[c] = rs * dy[c] - rs * rs * rs * xd * x[c] * inv_n;
                ws[c] = dy[c];
            }
        } else {
            // o = (x - mean) rs: d(x) = rs (dO - mean(dO) - o mean(dO o))
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
            for (int c = lane; c < ATTNC_B_VO; c += 32) {
                dy[c] = rs * (dy[c] - md - (x[c] - mean) * rs * mdo);
                ws[c] = dy[c];
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS, 1) attnc_bwd_linear(attnc_bwd_params p)
{
    extern __shared__ __align__(128) float sm[];
    using L = attnc_bwd_layout;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int h = blockIdx.y, n = blockIdx.x;
    constexpr int G = ATTNC_HOUT / ATTNC_HS;   // output heads per state head
    const int hs = h / G;
    const bool seeded = h % G == 0;             // this copy of the state returns hT (and zT)
    int bos, eos;
    attnc_seq_bounds(p.cu_seqlens, p.seqlen, n, bos, eos);
    const size_t state_base = ((size_t)n * ATTNC_HS + hs) * ATTNC_B_K * ATTNC_B_VO;   // h0, dhT
    const size_t z_base = ((size_t)n * ATTNC_HS + hs) * ATTNC_B_K;                    // z0, dzT
    float *S = sm + L::s;

    // ---- forward walk: S, dQ ------------------------------------------------------------------------
    for (int i = tid; i < ATTNC_B_K * ATTNC_B_V; i += ATTNC_B_THREADS) {
        const int d = i / ATTNC_B_V, c = i % ATTNC_B_V;
        float x = 0.f;
        if (c < ATTNC_B_VO)
            x = p.h0 ? p.h0[state_base + d * ATTNC_B_VO + c] : 0.f;
        else
            x = p.z0 ? p.z0[z_base + d] : 0.f;
        S[d * ATTNC_B_LDV + c] = x;
    }
    __syncthreads();
    for (int c0 = bos; c0 < eos; c0 += ATTNC_B_C) {
        const int nrows = min(ATTNC_B_C, eos - c0);
        attnc_bwd_load_chunk(p, c0, nrows, h, sm, false);
        if constexpr (ATTNC_B_NORM != BNORM_NONE) {
            attnc_bwd_p(sm);
            __syncthreads();
            attnc_bwd_norm_rows(p, c0, nrows, h, sm);
            __syncthreads();
        }
        attnc_bwd_dov(sm);
        __syncthreads();
        for (int i = tid; i < nrows * ATTNC_B_K; i += ATTNC_B_THREADS) {
            const int r = i / ATTNC_B_K, d = i % ATTNC_B_K;
            const float *dor = sm + L::dout + r * ATTNC_B_LDV, *sr = S + d * ATTNC_B_LDV;
            float inter = 0.f, intra = 0.f;
            for (int c = 0; c < ATTNC_B_V; c++)
                inter += sr[c] * dor[c];
            const float gr = sm[L::g + r * ATTNC_B_LDG + (ATTNC_B_GK == 1 ? 0 : d)];
            inter *= attnc_bdec(gr);
            for (int j = 0; j <= r; j++) {
                float f = sm[L::a + r * ATTNC_B_LDA + j] * sm[L::k + j * ATTNC_B_LDK + d];
                if constexpr (ATTNC_B_GK > 1)
                    f *= attnc_bdec(gr - sm[L::g + j * ATTNC_B_LDG + d]);
                intra += f;
            }
            p.ws_dq[((size_t)(c0 + r) * ATTNC_HOUT + h) * ATTNC_B_K + d] = inter + intra;
        }
        __syncthreads();
        for (int i = tid; i < ATTNC_B_K * ATTNC_B_V; i += ATTNC_B_THREADS) {
            const int d = i / ATTNC_B_V, c = i % ATTNC_B_V;
            const float bl = sm[L::g + (ATTNC_B_C - 1) * ATTNC_B_LDG + (ATTNC_B_GK == 1 ? 0 : d)];
            float s = S[d * ATTNC_B_LDV + c] * attnc_bdec(bl);
            for (int j = 0; j < ATTNC_B_C; j++)
                s += sm[L::kd + j * ATTNC_B_LDK + d] * sm[L::v + j * ATTNC_B_LDV + c];
            S[d * ATTNC_B_LDV + c] = s;
            if constexpr (ATTNC_B_TRANSITION != BTR_IDENTITY)   // S_out, for the gate's chunk-end term
                p.ws_s[((size_t)(c0 / ATTNC_B_C + n) * ATTNC_HOUT + h) * ATTNC_B_K * ATTNC_B_V + i] = s;
        }
        __syncthreads();
    }

    // ---- reverse walk: dS, dK, dV, dlog-gate ----------------------------------------------------------
    for (int i = tid; i < ATTNC_B_K * ATTNC_B_V; i += ATTNC_B_THREADS) {
        const int d = i / ATTNC_B_V, c = i % ATTNC_B_V;
        float x = 0.f;
        if (c < ATTNC_B_VO)
            x = seeded && p.dhT ? p.dhT[state_base + d * ATTNC_B_VO + c] : 0.f;
        else
            x = seeded && p.dzT ? p.dzT[z_base + d] : 0.f;
        S[d * ATTNC_B_LDV + c] = x;
    }
    __syncthreads();
    const int nchunks = (eos - bos + ATTNC_B_C - 1) / ATTNC_B_C;
    for (int ci = nchunks - 1; ci >= 0; ci--) {
        const int c0 = bos + ci * ATTNC_B_C, nrows = min(ATTNC_B_C, eos - c0);
        if constexpr (ATTNC_B_TRANSITION != BTR_IDENTITY) {
            // The gate gradient entering the chunk from its end: rowsum(S_out o dS_out), the derivative of
            // L under a shift of every later log gate (for the last chunk <S_T, dS_T>).  Taken from the
            // states rather than carried as the sum of every later token's q.dq - k.dk, which cancels
            // over the whole rest of the sequence and loses fp32 digits in proportion to its length.
            const float *so = p.ws_s + ((size_t)(c0 / ATTNC_B_C + n) * ATTNC_HOUT + h) * ATTNC_B_K * ATTNC_B_V;
            for (int d = tid; d < ATTNC_B_K; d += ATTNC_B_THREADS) {
                float t = 0.f;
                for (int c = 0; c < ATTNC_B_V; c++)
                    t += so[d * ATTNC_B_V + c] * S[d * ATTNC_B_LDV + c];
                sm[L::carry + d] = t;
            }
            __syncthreads();
            if constexpr (ATTNC_B_GK == 1) {
                if (tid == 0) {
                    float t = 0.f;
                    for (int d = 0; d < ATTNC_B_K; d++)
                        t += sm[L::carry + d];
                    sm[L::carry] = t;
                }
            }
        }
        attnc_bwd_load_chunk(p, c0, nrows, h, sm, true);
        attnc_bwd_p(sm);
        __syncthreads();
        // dV = P^T dO + Kd dS_out
        for (int i = tid; i < nrows * ATTNC_B_V; i += ATTNC_B_THREADS) {
            const int j = i / ATTNC_B_V, c = i % ATTNC_B_V;
            float s = 0.f;
            for (int r = j; r < nrows; r++)
                s += sm[L::a + r * ATTNC_B_LDA + j] * sm[L::dout + r * ATTNC_B_LDV + c];
            const float *kd = sm + L::kd + j * ATTNC_B_LDK;
            for (int d = 0; d < ATTNC_B_K; d++)
                s += kd[d] * S[d * ATTNC_B_LDV + c];
            p.ws_dv[((size_t)(c0 + j) * ATTNC_HOUT + h) * ATTNC_B_V + c] = s;
        }
        __syncthreads();
        attnc_bwd_dov(sm);
        __syncthreads();
        // dK = ((dO V^T) o D)^T Q + (V dS_out^T) * e^{b_L - b}
        for (int i = tid; i < nrows * ATTNC_B_K; i += ATTNC_B_THREADS) {
            const int j = i / ATTNC_B_K, d = i % ATTNC_B_K, gd = ATTNC_B_GK == 1 ? 0 : d;
            const float gj = sm[L::g + j * ATTNC_B_LDG + gd], bl = sm[L::g + (ATTNC_B_C - 1) * ATTNC_B_LDG + gd];
            float intra = 0.f, inter = 0.f;
            for (int r = j; r < nrows; r++) {
                float f = sm[L::a + r * ATTNC_B_LDA + j] * sm[L::q + r * ATTNC_B_LDK + d];
                if constexpr (ATTNC_B_GK > 1)
                    f *= attnc_bdec(sm[L::g + r * ATTNC_B_LDG + d] - gj);
                intra += f;
            }
            const float *vj = sm + L::v + j * ATTNC_B_LDV, *sr = S + d * ATTNC_B_LDV;
            for (int c = 0; c < ATTNC_B_V; c++)
                inter += vj[c] * sr[c];
            const float dk = intra + inter * attnc_bdec(bl - gj);
            sm[L::dk + j * ATTNC_B_LDK + d] = dk;
            p.ws_dk[((size_t)(c0 + j) * ATTNC_HOUT + h) * ATTNC_B_K + d] = dk;
        }
        __syncthreads();
        // dlog-gate: dL/db_s = q_s . dq_s - k_s . dk_s, reverse cumulative sum carried across chunks.
        if constexpr (ATTNC_B_TRANSITION != BTR_IDENTITY) {
            if constexpr (ATTNC_B_GK > 1) {
                for (int d = tid; d < ATTNC_B_K; d += ATTNC_B_THREADS) {
                    float carry = sm[L::carry + d];
                    for (int r = nrows - 1; r >= 0; r--) {
                        const size_t row = (size_t)(c0 + r) * ATTNC_HOUT + h;
                        carry += sm[L::q + r * ATTNC_B_LDK + d] * p.ws_dq[row * ATTNC_B_K + d] -
                                 sm[L::k + r * ATTNC_B_LDK + d] * sm[L::dk + r * ATTNC_B_LDK + d];
                        p.ws_dg[row * ATTNC_B_K + d] = carry;
                    }
                    sm[L::carry + d] = carry;
                }
            } else {
                for (int r = warp; r < nrows; r += ATTNC_B_WARPS) {
                    const size_t row = (size_t)(c0 + r) * ATTNC_HOUT + h;
                    float e = 0.f;
                    for (int d = lane; d < ATTNC_B_K; d += 32)
                        e += sm[L::q + r * ATTNC_B_LDK + d] * p.ws_dq[row * ATTNC_B_K + d] -
                             sm[L::k + r * ATTNC_B_LDK + d] * sm[L::dk + r * ATTNC_B_LDK + d];
                    e = attnc_warp_sum(e);
                    if (lane == 0)
                        sm[L::red + r] = e;
                }
                __syncthreads();
                if (tid == 0) {
                    float carry = sm[L::carry];
                    for (int r = nrows - 1; r >= 0; r--) {
                        carry += sm[L::red + r];
                        p.ws_dg[(size_t)(c0 + r) * ATTNC_HOUT + h] = carry;
                    }
                    sm[L::carry] = carry;
                }
            }
        }
        // dS_in = gamma_L dS_out + (Q * gamma)^T dO  (each thread updates only the entries it owns)
        for (int i = tid; i < ATTNC_B_K * ATTNC_B_V; i += ATTNC_B_THREADS) {
            const int d = i / ATTNC_B_V, c = i % ATTNC_B_V;
            const float bl = sm[L::g + (ATTNC_B_C - 1) * ATTNC_B_LDG + (ATTNC_B_GK == 1 ? 0 : d)];
            float s = S[d * ATTNC_B_LDV + c] * attnc_bdec(bl);
            for (int r = 0; r < nrows; r++)
                s += sm[L::qg + r * ATTNC_B_LDK + d] * sm[L::dout + r * ATTNC_B_LDV + c];
            S[d * ATTNC_B_LDV + c] = s;
        }
        __syncthreads();
    }
    if (p.ws_dh0)
        for (int i = tid; i < ATTNC_B_K * ATTNC_B_VO; i += ATTNC_B_THREADS) {
            const int d = i / ATTNC_B_VO, c = i % ATTNC_B_VO;
            p.ws_dh0[((size_t)n * ATTNC_HOUT + h) * ATTNC_B_K * ATTNC_B_VO + i] = S[d * ATTNC_B_LDV + c];
        }
    if (ATTNC_B_V > ATTNC_B_VO && p.ws_dz0)
        for (int d = tid; d < ATTNC_B_K; d += ATTNC_B_THREADS)
            p.ws_dz0[((size_t)n * ATTNC_HOUT + h) * ATTNC_B_K + d] = S[d * ATTNC_B_LDV + ATTNC_B_VO];
}

#endif   // ATTNC_B_CAUSAL_LINEAR

// ---- 2. the value DAG's adjoint, one warp per (token, output head) ----------------------------------
extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS) attnc_bwd_inputs(attnc_bwd_params p)
{
    const int lane = threadIdx.x & 31;
    const long long w = (long long)blockIdx.x * ATTNC_B_WARPS + (threadIdx.x >> 5);
    if (w >= (long long)p.total * ATTNC_HOUT)
        return;
    attnc_bwd_adjoint(p, (int)(w / ATTNC_HOUT), (int)(w % ATTNC_HOUT), lane);
}

// ---- 3. deterministic sums of the partials ----------------------------------------------------------
struct attnc_bwd_sum_params {
    const float *part;   // [rows * group, len] (per-token, h0) or [tokens, heads * group, len] (parameters)
    void *out;           // [rows, len] in `dtype`
    int dtype;           // ATTNC_DT_*
    long long rows;      // output rows (sum_heads), or output heads (sum_param)
    int group;           // partial heads per output head
    int len;
    int tokens;          // sum_param: tokens summed over
};

__device__ __forceinline__ void attnc_bwd_store(void *out, size_t i, float x, int dtype)
{
    if (dtype == ATTNC_DT_FP32)
        ((float *)out)[i] = x;
    else if (dtype == ATTNC_DT_FP16)
        ((unsigned short *)out)[i] = attnc_float_to_f16(x);
    else
        ((unsigned short *)out)[i] = attnc_float_to_bf16(x);
}

// out[row, c] = sum_{i < group} part[row * group + i, c]
extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS) attnc_bwd_sum_heads(attnc_bwd_sum_params s)
{
    const long long e = (long long)blockIdx.x * ATTNC_B_THREADS + threadIdx.x;
    if (e >= s.rows * s.len)
        return;
    const long long row = e / s.len, c = e % s.len;
    float acc = 0.f;
    for (int i = 0; i < s.group; i++)
        acc += s.part[(row * s.group + i) * s.len + c];
    attnc_bwd_store(s.out, (size_t)e, acc, s.dtype);
}

// out[hp, c] = sum_t sum_{i < group} part[t, hp * group + i, c]: one CTA per output element, a fixed
// strided walk per thread, then a fixed tree.
extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS) attnc_bwd_sum_param(attnc_bwd_sum_params s)
{
    __shared__ float red[ATTNC_B_THREADS];
    const long long hp = blockIdx.x / s.len, c = blockIdx.x % s.len;
    const long long heads = s.rows * s.group, n = (long long)s.tokens * s.group;
    float acc = 0.f;
    for (long long i = threadIdx.x; i < n; i += ATTNC_B_THREADS) {
        const long long t = i / s.group, hh = hp * s.group + i % s.group;
        acc += s.part[(t * heads + hh) * s.len + c];
    }
    red[threadIdx.x] = acc;
    __syncthreads();
    for (int o = ATTNC_B_THREADS / 2; o; o >>= 1) {
        if ((int)threadIdx.x < o)
            red[threadIdx.x] += red[threadIdx.x + o];
        __syncthreads();
    }
    if (threadIdx.x == 0)
        attnc_bwd_store(s.out, (size_t)blockIdx.x, red[0], s.dtype);
}
