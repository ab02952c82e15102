// codegen/linear_bwd_kernel.cuh: the backward of the causal linear part (issue 4, first tier), completed
// by codegen/cuda_bwd.c, which emits before this text the ATTNC_B_* constants (passes/grad.c chose
// them), support.cuh, the parameter block attnc_bwd_params and the generated functions
//   attnc_bwd_roles(p, t, h, lane, q, k, v, g, beta): the spec's value DAG for token t, output head h
//                                              (one warp), fp32 role rows into shared memory (natural-log
//                                              gate; beta for the delta rule);
//   attnc_bwd_adjoint(p, t, h, lane):          the same DAG again, then its adjoint (one rule per IR op),
//                                              seeded with the role gradients of (t, h), storing every
//                                              tensor's partial gradient of (t, h) into p.part[i].
//
// Kernels, in launch order (api/backward.c):
//   1. attnc_bwd_linear, one CTA per (sequence, output head): the role gradients dq, dk, dv, dlog-gate
//      (and dbeta) into fp32 workspaces, and the head's share of dh0.  Two walks over the sequence's chunks with
//      the chunk-local cumulative log2 gate b (algorithms.md 1.3, 1.4, 2.x(d)):
//        forward walk  (S from h0):  dQ = (dO S_in^T) * gamma + ((dO V^T) o D) K;   S_out = gamma_L S_in + Kd^T V
//                                    storing every chunk's S_out (fp32) for the gate gradient
//                                    (and the delta rule's S_in);
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
// The delta rule (ATTNC_B_DELTA): both walks first form the chunk's WY tiles from S_in (attnc_bwd_wy:
// E, T = (I + diag(beta) E)^-1, W = T diag(beta) (K * e^{b}), U_hat = T diag(beta) V - W S_in), and
// everything above then reads U_hat where it read V (L::vu): dQ, the state update, P^T dO + Kd dS_out
// (now dU_hat, kept in a tile), dK's P and Kd terms.  The reverse walk takes S_in from ws_s (S_out of the
// chunk before, stored by the forward walk; h0 for the first chunk) in global memory, then
// attnc_bwd_wy_adjoint adds dW = -dU_hat S_in^T, dT, dV = diag(beta) T^T dU_hat, dbeta, dK's Kg term and
// the pair terms of dA = -T^T dT T^T; dS_in gets -W^T dU_hat, and the gate's per-token term gains
// +2 k . dk+ (dk+: the key terms that carry e^{+b}).  Chunk 16 at K = V = 128 (the WY tiles).
// Every token's log2 decay is floored at -32 before the chunk-local sums, as in the forward kernel (not
// mLSTM's, which its forward does not floor); the generated adjoint gives a floored token's gate gradient 0.
// mLSTM (ATTNC_B_MLSTM): n is the value column of ones, the chunk's rows and maxima (m_r, m_out and their
// winners, log2 units) are formed in attnc_bwd_load_chunk from m_in, and the four factors of the chunk
// (attnc_bwd_rowf, _pairf, _keyf, _statef) are the stabilised ones, so the walks above run unchanged; the
// max-floor normaliser's backward (forward walk) sends dden to q.n or to m_r (ws_dmf), each chunk's m_out
// goes to ws_m, and attnc_bwd_mlstm_gates ends each reverse chunk: dm_in = <S_in, dS_in>, the row sums
// q.dq and k.dk, and the maxima's adjoints routed to their winners, into the gate, input-gate and dm0
// gradients.

#define ATTNC_B_THREADS 256
#define ATTNC_B_WARPS (ATTNC_B_THREADS / 32)

#if ATTNC_B_CAUSAL_LINEAR   // the causal walks (else linear_bidir_bwd_kernel.cuh's, or no linear part)
#define ATTNC_B_LDK (ATTNC_B_K + 1)   // odd row strides: column walks hit distinct banks
#define ATTNC_B_LDV (ATTNC_B_V + 1)
#define ATTNC_B_LDG (ATTNC_B_GK == 1 ? 1 : ATTNC_B_GK + 1)
#define ATTNC_B_LDA (ATTNC_B_C + 1)
// A token's log2 decay is floored at -32 before the chunk-local sums, as the forward kernel does
// (LOG2_DECAY_FLOOR in linear_kernel.cuh): the backward differentiates the forward that ran.
// mLSTM's forward does not floor (its stabiliser keeps every factor <= 1), nor does its backward.
#define ATTNC_B_LOG2_FLOOR (ATTNC_B_MLSTM ? -__int_as_float(0x7f800000) : -32.f)

enum { BTR_IDENTITY = 0, BTR_CONST = 1, BTR_SCALAR = 2, BTR_DIAG = 3 };
enum { BNORM_NONE = 0, BNORM_DENOM = 1, BNORM_MAXFLOOR = 2, BNORM_RMS = 3, BNORM_LAYER = 4 };   // ir_norm

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
    // the delta rule's WY tiles (absent otherwise)
    static constexpr unsigned DT = ATTNC_B_DELTA ? 1 : 0;
    static constexpr unsigned beta = x + (ATTNC_B_NORM != BNORM_NONE ? ATTNC_B_C * ATTNC_B_LDV : 0);   // beta (C)
    static constexpr unsigned e = beta + DT * ATTNC_B_C;              // E_rj = sum_d k_rd k_jd e^{b_rd - b_jd}, j < r
    static constexpr unsigned t = e + DT * ATTNC_B_C * ATTNC_B_LDA;   // T = (I + diag(beta) E)^-1
    static constexpr unsigned dt = t + DT * ATTNC_B_C * ATTNC_B_LDA;  // dT, then dA
    static constexpr unsigned tx = dt + DT * ATTNC_B_C * ATTNC_B_LDA; // T^T dT
    static constexpr unsigned w = tx + DT * ATTNC_B_C * ATTNC_B_LDA;  // W = T diag(beta) (K * e^{b})
    static constexpr unsigned dw = w + DT * ATTNC_B_C * ATTNC_B_LDK;  // dW
    static constexpr unsigned dkp = dw + DT * ATTNC_B_C * ATTNC_B_LDK;   // the part of dK whose key carries e^{+b}
    static constexpr unsigned uh = dkp + DT * ATTNC_B_C * ATTNC_B_LDK;   // U_hat = T diag(beta) V - W S_in
    static constexpr unsigned duh = uh + DT * ATTNC_B_C * ATTNC_B_LDV;   // dU_hat
    // mLSTM's per-row quantities (absent otherwise)
    static constexpr unsigned MS = ATTNC_B_MLSTM ? 1 : 0;
    static constexpr unsigned ig = duh + DT * ATTNC_B_C * ATTNC_B_LDV;   // log2 input gates (C)
    static constexpr unsigned mr = ig + MS * ATTNC_B_C;                  // row maxima m_r, log2 units (C)
    static constexpr unsigned win = mr + MS * ATTNC_B_C;                 // m_r's winner j, -1: the old state (C)
    static constexpr unsigned ab = win + MS * ATTNC_B_C;                 // q_r . dq_r, then k_r . dk_r (2C)
    static constexpr unsigned mx = ab + MS * 2 * ATTNC_B_C;              // m_in, m_out, m_out's winner, dm_out (8)
    static constexpr unsigned floats = mx + MS * 8;
    static constexpr unsigned vu = ATTNC_B_DELTA ? uh : v;            // the rows the state takes in: V or U_hat
    static constexpr unsigned bytes = (floats * 4 + 127) / 128 * 128;
};

// e^{x ln 2} for an exponent that is <= 0 where it is formed (clamped, so rounding cannot exceed 1).
__device__ __forceinline__ float attnc_bdec(float x)
{
    if constexpr (ATTNC_B_TRANSITION == BTR_IDENTITY)
        return 1.f;
    else
        return attnc_exp2(fminf(x, 0.f));
}

// e^{x ln 2} for an exponent that is <= 0 by construction (mLSTM's factors, each a term over the maximum
// that bounds it), clamped like attnc_bdec but never the identity transition's 1.
__device__ __forceinline__ float attnc_bexp(float x)
{
    return attnc_exp2(fminf(x, 0.f));
}

// The chunk's factors, scalar gates (b_r at sm[L::g + r]).  Additive and delta: the row factor e^{b_r}, the
// pair factor e^{b_r - b_j}, the key factor e^{b_L - b_j} and the state's e^{b_L} (gr, gj, bl: the
// caller's channel of b).  mLSTM (stabilised, log2 units): e^{b_r + m_in - m_r}, e^{b_r - b_j + i_j - m_r},
// e^{b_L - b_j + i_j - m_out} and e^{b_L + m_in - m_out} (algorithms.md 2.7(b)), each <= 1 by its maximum.
__device__ __forceinline__ float attnc_bwd_rowf(const float *sm, int r, float gr)
{
    using L = attnc_bwd_layout;
    if constexpr (ATTNC_B_MLSTM)
        return attnc_bexp(sm[L::g + r] + sm[L::mx] - sm[L::mr + r]);
    else
        return attnc_bdec(gr);
}
__device__ __forceinline__ float attnc_bwd_pairf(const float *sm, int r, int j)
{
    using L = attnc_bwd_layout;
    if constexpr (ATTNC_B_MLSTM)
        return attnc_bexp(sm[L::g + r] - sm[L::g + j] + sm[L::ig + j] - sm[L::mr + r]);
    else
        return attnc_bdec(sm[L::g + r] - sm[L::g + j]);
}
__device__ __forceinline__ float attnc_bwd_keyf(const float *sm, int j, float gj, float bl)
{
    using L = attnc_bwd_layout;
    if constexpr (ATTNC_B_MLSTM)
        return attnc_bexp(sm[L::g + ATTNC_B_C - 1] - sm[L::g + j] + sm[L::ig + j] - sm[L::mx + 1]);
    else
        return attnc_bdec(bl - gj);
}
__device__ __forceinline__ float attnc_bwd_statef(const float *sm, float bl)
{
    using L = attnc_bwd_layout;
    if constexpr (ATTNC_B_MLSTM)
        return attnc_bexp(sm[L::g + ATTNC_B_C - 1] + sm[L::mx] - sm[L::mx + 1]);
    else
        return attnc_bdec(bl);
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
            attnc_bwd_roles(p, c0 + r, h, lane, q, k, v, g, sm + L::beta + r, sm + L::ig + r);
        } else {
            for (int c = lane; c < ATTNC_B_K; c += 32)
                q[c] = k[c] = 0.f;
            for (int c = lane; c < ATTNC_B_V; c += 32)
                v[c] = 0.f;
            for (int c = lane; c < ATTNC_B_GK; c += 32)
                g[c] = 0.f;
            if (ATTNC_B_DELTA && lane == 0)
                sm[L::beta + r] = 0.f;
            if (ATTNC_B_MLSTM && lane == 0)
                sm[L::ig + r] = 0.f;
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
                acc += fmaxf(sm[L::g + r * ATTNC_B_LDG + d] * LOG2E, ATTNC_B_LOG2_FLOOR);
                sm[L::g + r * ATTNC_B_LDG + d] = acc;
            }
        }
    }
    __syncthreads();
    if constexpr (ATTNC_B_MLSTM) {
        // log input gates in log2 units (padding rows: never a term), then the maxima with m_in = sm[L::mx]:
        // m_r = max(b_r + m_in, max_{j<=r} b_r - b_j + i_j), m_out = max(b_L + m_in, max_j b_L - b_j + i_j),
        // the first strict maximum in j order winning, the old state's term on a tie (as the reference)
        for (int r = tid; r < ATTNC_B_C; r += ATTNC_B_THREADS)
            sm[L::ig + r] = r < nrows ? sm[L::ig + r] * LOG2E : -1e30f;
        __syncthreads();
        if (tid < ATTNC_B_C) {
            const float br = sm[L::g + tid];
            float m = br + sm[L::mx];
            int w = -1;
            for (int j = 0; j <= tid && j < nrows; j++) {
                const float d = br - sm[L::g + j] + sm[L::ig + j];
                if (d > m)
                    m = d, w = j;
            }
            sm[L::mr + tid] = m;
            sm[L::win + tid] = (float)w;
        } else if (tid == ATTNC_B_THREADS - 1) {
            const float bl = sm[L::g + ATTNC_B_C - 1];
            float m = bl + sm[L::mx];
            int w = -1;
            for (int j = 0; j < nrows; j++) {
                const float d = bl - sm[L::g + j] + sm[L::ig + j];
                if (d > m)
                    m = d, w = j;
            }
            sm[L::mx + 1] = m;
            sm[L::mx + 2] = (float)w;
        }
        __syncthreads();
    }
    // Q * gamma and K * e^{b_L - b} (padding rows carry gate 0, so row C-1 holds b_L).
    for (int i = tid; i < ATTNC_B_C * ATTNC_B_K; i += ATTNC_B_THREADS) {
        const int r = i / ATTNC_B_K, d = i % ATTNC_B_K, gd = ATTNC_B_GK == 1 ? 0 : d;
        const float b = sm[L::g + r * ATTNC_B_LDG + gd], bl = sm[L::g + (ATTNC_B_C - 1) * ATTNC_B_LDG + gd];
        sm[L::qg + r * ATTNC_B_LDK + d] = sm[L::q + r * ATTNC_B_LDK + d] * attnc_bwd_rowf(sm, r, b);
        sm[L::kd + r * ATTNC_B_LDK + d] = sm[L::k + r * ATTNC_B_LDK + d] * attnc_bwd_keyf(sm, r, b, bl);
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
            const float *x = sm + L::dout + r * ATTNC_B_LDV, *y = sm + L::vu + j * ATTNC_B_LDV;
            for (int c = 0; c < ATTNC_B_V; c++)
                s += x[c] * y[c];
            if constexpr (ATTNC_B_GK == 1)
                s *= attnc_bwd_pairf(sm, r, j);
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
                s *= attnc_bwd_pairf(sm, r, j);
            } else {
                const float *gr = sm + L::g + r * ATTNC_B_LDG, *gj = sm + L::g + j * ATTNC_B_LDG;
                for (int d = 0; d < ATTNC_B_K; d++)
                    s += x[d] * y[d] * attnc_bdec(gr[d] - gj[d]);
            }
        }
        sm[L::a + r * ATTNC_B_LDA + j] = s;
    }
}

// The delta rule's WY form of the chunk (ref_chunked_grad.c's chunk_forward): E_rj = sum_d k_rd k_jd
// e^{b_rd - b_jd} (j < r), T = (I + diag(beta) E)^-1 (unit lower triangular, forward substitution with one
// thread per column), W = T diag(beta) (K * e^{b}) and U_hat = T diag(beta) V - W S_in into the uh tile.
// Sin is the chunk's incoming state, rows of stride lds: the S tile in the forward walk, the ws_s
// workspace (or h0) in the reverse walk; null for a zero state.  Padding rows have beta = 0 and k = v = 0,
// so their rows of E, W and U_hat are 0 and of T the identity's.
__device__ void attnc_bwd_wy(const float *Sin, int lds, float *sm)
{
    using L = attnc_bwd_layout;
    const int tid = threadIdx.x;
    for (int i = tid; i < ATTNC_B_C * ATTNC_B_C; i += ATTNC_B_THREADS) {
        const int r = i / ATTNC_B_C, j = i % ATTNC_B_C;
        float s = 0.f;
        if (j < r) {
            const float *x = sm + L::k + r * ATTNC_B_LDK, *y = sm + L::k + j * ATTNC_B_LDK;
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
        sm[L::e + r * ATTNC_B_LDA + j] = s;
    }
    __syncthreads();
    // T_rj = [r == j] - beta_r sum_{j <= q < r} E_rq T_qj: each thread walks its own column down
    for (int j = tid; j < ATTNC_B_C; j += ATTNC_B_THREADS)
        for (int r = 0; r < ATTNC_B_C; r++) {
            float t = r == j ? 1.f : 0.f;
            if (r > j) {
                float acc = 0.f;
                for (int q = j; q < r; q++)
                    acc += sm[L::e + r * ATTNC_B_LDA + q] * sm[L::t + q * ATTNC_B_LDA + j];
                t = -sm[L::beta + r] * acc;
            }
            sm[L::t + r * ATTNC_B_LDA + j] = t;
        }
    __syncthreads();
    for (int i = tid; i < ATTNC_B_C * ATTNC_B_K; i += ATTNC_B_THREADS) {
        const int r = i / ATTNC_B_K, d = i % ATTNC_B_K, gd = ATTNC_B_GK == 1 ? 0 : d;
        float s = 0.f;
        for (int j = 0; j <= r; j++)
            s += sm[L::t + r * ATTNC_B_LDA + j] * sm[L::beta + j] * sm[L::k + j * ATTNC_B_LDK + d] *
                 attnc_bdec(sm[L::g + j * ATTNC_B_LDG + gd]);
        sm[L::w + r * ATTNC_B_LDK + d] = s;
    }
    __syncthreads();
    for (int i = tid; i < ATTNC_B_C * ATTNC_B_V; i += ATTNC_B_THREADS) {
        const int r = i / ATTNC_B_V, c = i % ATTNC_B_V;
        float s = 0.f;
        for (int j = 0; j <= r; j++)
            s += sm[L::t + r * ATTNC_B_LDA + j] * sm[L::beta + j] * sm[L::v + j * ATTNC_B_LDV + c];
        if (Sin) {
            const float *w = sm + L::w + r * ATTNC_B_LDK;
            for (int d = 0; d < ATTNC_B_K; d++)
                s -= w[d] * Sin[(size_t)d * lds + c];
        }
        sm[L::uh + r * ATTNC_B_LDV + c] = s;
    }
    __syncthreads();
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
            s += sm[L::a + r * ATTNC_B_LDA + j] * sm[L::vu + j * ATTNC_B_LDV + c];
        sm[L::x + r * ATTNC_B_LDV + c] = s;
    }
    __syncthreads();
    constexpr float inv_n = 1.f / ATTNC_B_VO;
    for (int r = warp; r < nrows; r += ATTNC_B_WARPS) {
        const float *x = sm + L::x + r * ATTNC_B_LDV;
        float *dy = sm + L::dout + r * ATTNC_B_LDV;
        float *ws = p.ws_do + ((size_t)(c0 + r) * ATTNC_HOUT + h) * ATTNC_B_V;
        if constexpr (ATTNC_B_NORM == BNORM_MAXFLOOR) {
            // mLSTM: o = x / (max(|s|, e^{-m_r}) + eps), s = q.n (x's last column): d(x) = dO / den,
            // dden = -(dO . x) / den^2 into s (its sign) where |s| won the max, else into m_r (ws_dmf:
            // d e^{-m}/dm = -e^{-m}), as ref_norm_backward
            const float s = x[ATTNC_B_VO], fl = exp2f(-sm[L::mr + r]);
            const bool through = fabsf(s) >= fl;
            const float den = fmaxf(fabsf(s), fl) + ATTNC_B_EPS;
            float xd = 0.f;
            for (int c = lane; c < ATTNC_B_VO; c += 32)
                xd += x[c] * dy[c];
            const float dden = -attnc_warp_sum(xd) / (den * den);
            __syncwarp();
            for (int c = lane; c < ATTNC_B_VO; c += 32) {
                dy[c] = dy[c] / den;
                ws[c] = dy[c];
            }
            if (lane == 0) {
                dy[ATTNC_B_VO] = through ? (s < 0.f ? -dden : dden) : 0.f;
                ws[ATTNC_B_VO] = dy[ATTNC_B_VO];
                p.ws_dmf[(size_t)(c0 + r) * ATTNC_HOUT + h] = through ? 0.f : -dden * fl;
            }
        } else if constexpr (ATTNC_B_NORM == BNORM_DENOM) {
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

// The delta rule's WY adjoint (reverse walk, after dU_hat is in its tile and dK holds the terms of P and
// of the state update): ref_chunked_grad.c's chunk_backward.  With Kg = K * e^{b}:
//   dW = -dU_hat S_in^T;  dT_rq = beta_q (dU_hat_r . V_q + dW_r . Kg_q)  (q <= r);
//   Y = T^T dU_hat, Z = T^T dW:  dV = diag(beta) Y,  dbeta_q = Y_q . V_q + Z_q . Kg_q,  dK += diag(beta) Z e^{b};
//   dA = -T^T dT T^T (strictly lower):  dbeta_r += sum_{j<r} dA_rj E_rj, and the pair terms of
//   A_rj = beta_r sum_d k_rd k_jd e^{b_rd - b_jd} into dK (both ends).
// dK's parts whose key carries e^{+b} (Kg, and A's row end r) are also kept in the dkp tile: the log-weight
// rule gives them the gate term +k . dk where the rest have -k . dk.  dV, dK and dbeta go to the workspaces.
__device__ void attnc_bwd_wy_adjoint(const attnc_bwd_params &p, int c0, int nrows, int h, const float *Sin, float *sm)
{
    using L = attnc_bwd_layout;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    for (int i = tid; i < ATTNC_B_C * ATTNC_B_K; i += ATTNC_B_THREADS) {
        const int r = i / ATTNC_B_K, d = i % ATTNC_B_K;
        float s = 0.f;
        if (Sin) {
            const float *du = sm + L::duh + r * ATTNC_B_LDV, *sd = Sin + (size_t)d * ATTNC_B_V;
            for (int c = 0; c < ATTNC_B_V; c++)
                s += du[c] * sd[c];
        }
        sm[L::dw + r * ATTNC_B_LDK + d] = -s;
    }
    __syncthreads();
    for (int i = tid; i < ATTNC_B_C * ATTNC_B_C; i += ATTNC_B_THREADS) {
        const int r = i / ATTNC_B_C, q = i % ATTNC_B_C;
        float s = 0.f;
        if (q <= r) {
            const float *du = sm + L::duh + r * ATTNC_B_LDV, *vq = sm + L::v + q * ATTNC_B_LDV;
            for (int c = 0; c < ATTNC_B_V; c++)
                s += du[c] * vq[c];
            const float *dw = sm + L::dw + r * ATTNC_B_LDK, *kq = sm + L::k + q * ATTNC_B_LDK, *gq = sm + L::g + q * ATTNC_B_LDG;
            for (int d = 0; d < ATTNC_B_K; d++)
                s += dw[d] * kq[d] * attnc_bdec(gq[ATTNC_B_GK == 1 ? 0 : d]);
            s *= sm[L::beta + q];
        }
        sm[L::dt + r * ATTNC_B_LDA + q] = s;
    }
    for (int q = warp; q < ATTNC_B_C; q += ATTNC_B_WARPS) {
        const float bq = sm[L::beta + q];
        const size_t row = (size_t)(c0 + q) * ATTNC_HOUT + h;
        float acc = 0.f;
        for (int c = lane; c < ATTNC_B_V; c += 32) {
            float y = 0.f;
            for (int r = q; r < ATTNC_B_C; r++)
                y += sm[L::t + r * ATTNC_B_LDA + q] * sm[L::duh + r * ATTNC_B_LDV + c];
            if (q < nrows)
                p.ws_dv[row * ATTNC_B_V + c] = bq * y;
            acc += y * sm[L::v + q * ATTNC_B_LDV + c];
        }
        for (int d = lane; d < ATTNC_B_K; d += 32) {
            float z = 0.f;
            for (int r = q; r < ATTNC_B_C; r++)
                z += sm[L::t + r * ATTNC_B_LDA + q] * sm[L::dw + r * ATTNC_B_LDK + d];
            const float e = attnc_bdec(sm[L::g + q * ATTNC_B_LDG + (ATTNC_B_GK == 1 ? 0 : d)]);
            acc += z * sm[L::k + q * ATTNC_B_LDK + d] * e;
            const float dkg = bq * z * e;
            sm[L::dk + q * ATTNC_B_LDK + d] += dkg;
            sm[L::dkp + q * ATTNC_B_LDK + d] = dkg;
        }
        acc = attnc_warp_sum(acc);
        if (lane == 0)
            sm[L::red + q] = acc;
    }
    __syncthreads();
    // X = T^T dT: X_rq = sum_{i >= max(r, q)} T_ir dT_iq
    for (int i = tid; i < ATTNC_B_C * ATTNC_B_C; i += ATTNC_B_THREADS) {
        const int r = i / ATTNC_B_C, q = i % ATTNC_B_C;
        float s = 0.f;
        for (int ii = r > q ? r : q; ii < ATTNC_B_C; ii++)
            s += sm[L::t + ii * ATTNC_B_LDA + r] * sm[L::dt + ii * ATTNC_B_LDA + q];
        sm[L::tx + r * ATTNC_B_LDA + q] = s;
    }
    __syncthreads();
    // dA_rj = -sum_{q <= j} X_rq T_jq  (j < r), into the dT tile
    for (int i = tid; i < ATTNC_B_C * ATTNC_B_C; i += ATTNC_B_THREADS) {
        const int r = i / ATTNC_B_C, j = i % ATTNC_B_C;
        float s = 0.f;
        if (j < r)
            for (int q = 0; q <= j; q++)
                s -= sm[L::tx + r * ATTNC_B_LDA + q] * sm[L::t + j * ATTNC_B_LDA + q];
        sm[L::dt + r * ATTNC_B_LDA + j] = s;
    }
    __syncthreads();
    for (int r = tid; r < nrows; r += ATTNC_B_THREADS) {
        float s = sm[L::red + r];
        for (int j = 0; j < r; j++)
            s += sm[L::dt + r * ATTNC_B_LDA + j] * sm[L::e + r * ATTNC_B_LDA + j];
        p.ws_db[(size_t)(c0 + r) * ATTNC_HOUT + h] = s;
    }
    for (int i = tid; i < ATTNC_B_C * ATTNC_B_K; i += ATTNC_B_THREADS) {
        const int r = i / ATTNC_B_K, d = i % ATTNC_B_K, gd = ATTNC_B_GK == 1 ? 0 : d;
        const float br = sm[L::g + r * ATTNC_B_LDG + gd];
        float plus = 0.f, minus = 0.f;
        for (int j = 0; j < r; j++)
            plus += sm[L::dt + r * ATTNC_B_LDA + j] * sm[L::k + j * ATTNC_B_LDK + d] *
                    attnc_bdec(br - sm[L::g + j * ATTNC_B_LDG + gd]);
        plus *= sm[L::beta + r];
        for (int ii = r + 1; ii < ATTNC_B_C; ii++)
            minus += sm[L::dt + ii * ATTNC_B_LDA + r] * sm[L::beta + ii] * sm[L::k + ii * ATTNC_B_LDK + d] *
                     attnc_bdec(sm[L::g + ii * ATTNC_B_LDG + gd] - br);
        const float dk = sm[L::dk + r * ATTNC_B_LDK + d] + plus + minus;
        sm[L::dk + r * ATTNC_B_LDK + d] = dk;
        sm[L::dkp + r * ATTNC_B_LDK + d] += plus;
        if (r < nrows)
            p.ws_dk[((size_t)(c0 + r) * ATTNC_HOUT + h) * ATTNC_B_K + d] = dk;
    }
    __syncthreads();
}

// mLSTM's gate gradients for one chunk of the reverse walk (ref_chunked_grad.c's mlstm_backward), after
// dS holds dS_in, with A_r = q_r . dq_r and B_r = k_r . dk_r in the ab tile.  Every factor e^{x} passes
// factor * (its coefficient's adjoint) to the terms of x, which sum per row to: db_r += A_r - B_r,
// di_r += B_r, dm_r -= A_r (+ the max floor's term), dm_in += <S_in, dS_in> (the row readouts' and the
// state decay's e^{m_in}), and at the chunk's end db_L += E = <S_out, dS_out>, dm_out -= E.  Each
// maximum then passes its adjoint to the term that won it: m_r = b_r + m_in (dm_in) or b_r - b_j + i_j
// (db_r, -db_j, di_j); likewise m_out with dm_out (dmT, or dm_in of the chunk after).  The gate's
// gradient is the reverse cumulative sum of db inside the chunk.  One thread: a C-step serial pass.
__device__ void attnc_bwd_mlstm_gates(const attnc_bwd_params &p, int c0, int ci, int nrows, int n, int h,
                                      size_t state_base, size_t z_base, float *sm)
{
    using L = attnc_bwd_layout;
    const int tid = threadIdx.x;
    // <S_in, dS_in> per state row, into the x tile (free in the reverse walk)
    const float *sin = ci > 0 ? p.ws_s + ((size_t)((c0 - ATTNC_B_C) / ATTNC_B_C + n) * ATTNC_HOUT + h) * ATTNC_B_K * ATTNC_B_V
                              : nullptr;
    for (int d = tid; d < ATTNC_B_K; d += ATTNC_B_THREADS) {
        float t = 0.f;
        for (int c = 0; c < ATTNC_B_V; c++) {
            float x;
            if (sin)
                x = sin[d * ATTNC_B_V + c];
            else if (c < ATTNC_B_VO)
                x = p.h0 ? p.h0[state_base + d * ATTNC_B_VO + c] : 0.f;
            else
                x = p.z0 ? p.z0[z_base + d] : 0.f;
            t += x * sm[L::s + d * ATTNC_B_LDV + c];
        }
        sm[L::x + d] = t;
    }
    __syncthreads();
    if (tid == 0) {
        float db[ATTNC_B_C], di[ATTNC_B_C];
        float dmin = 0.f;
        for (int d = 0; d < ATTNC_B_K; d++)
            dmin += sm[L::x + d];
        for (int r = 0; r < nrows; r++) {
            db[r] = sm[L::ab + r] - sm[L::ab + ATTNC_B_C + r];
            di[r] = sm[L::ab + ATTNC_B_C + r];
        }
        for (int r = 0; r < nrows; r++) {
            const float dmr = p.ws_dmf[(size_t)(c0 + r) * ATTNC_HOUT + h] - sm[L::ab + r];
            const int w = (int)sm[L::win + r];
            db[r] += dmr;
            if (w < 0) {
                dmin += dmr;
            } else {
                db[w] -= dmr;
                di[w] += dmr;
            }
        }
        const float E = sm[L::carry], dmo = sm[L::mx + 3] - E;
        const int wo = (int)sm[L::mx + 2];
        db[nrows - 1] += E + dmo;
        if (wo < 0) {
            dmin += dmo;
        } else {
            db[wo] -= dmo;
            di[wo] += dmo;
        }
        float acc = 0.f;
        for (int r = nrows - 1; r >= 0; r--) {
            const size_t row = (size_t)(c0 + r) * ATTNC_HOUT + h;
            acc += db[r];
            if constexpr (ATTNC_B_TRANSITION != BTR_IDENTITY)
                p.ws_dg[row] = acc;
            p.ws_di[row] = di[r];
        }
        sm[L::mx + 3] = dmin;   // dm_out of the chunk before
    }
    __syncthreads();
}

#if ATTNC_BWD_WANT(ATTNC_BK_LINEAR)
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
    const float m_init = ATTNC_B_MLSTM && p.m0 ? p.m0[(size_t)n * ATTNC_HS + hs] * LOG2E : 0.f;   // m0, log2 units
    if (ATTNC_B_MLSTM && tid == 0)
        sm[L::mx] = m_init;
    __syncthreads();
    for (int c0 = bos; c0 < eos; c0 += ATTNC_B_C) {
        const int nrows = min(ATTNC_B_C, eos - c0);
        attnc_bwd_load_chunk(p, c0, nrows, h, sm, false);
        if constexpr (ATTNC_B_DELTA)
            attnc_bwd_wy(S, ATTNC_B_LDV, sm);   // U_hat from S_in: everything below reads it for V
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
            inter *= attnc_bwd_rowf(sm, r, gr);
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
            float s = S[d * ATTNC_B_LDV + c] * attnc_bwd_statef(sm, bl);
            for (int j = 0; j < ATTNC_B_C; j++)
                s += sm[L::kd + j * ATTNC_B_LDK + d] * sm[L::vu + j * ATTNC_B_LDV + c];
            S[d * ATTNC_B_LDV + c] = s;
            // S_out, for the gate's chunk-end term and (delta, mLSTM) the next chunk's S_in in the reverse walk
            if constexpr (ATTNC_B_TRANSITION != BTR_IDENTITY || ATTNC_B_DELTA || ATTNC_B_MLSTM)
                p.ws_s[((size_t)(c0 / ATTNC_B_C + n) * ATTNC_HOUT + h) * ATTNC_B_K * ATTNC_B_V + i] = s;
        }
        __syncthreads();
        if (ATTNC_B_MLSTM && tid == 0) {   // m_out: the next chunk's m_in, and kept for the reverse walk
            sm[L::mx] = sm[L::mx + 1];
            p.ws_m[(size_t)(c0 / ATTNC_B_C + n) * ATTNC_HOUT + h] = sm[L::mx + 1];
        }
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
    if (ATTNC_B_MLSTM && tid == 0)   // dm_out of the last chunk: dmT
        sm[L::mx + 3] = seeded && p.dmT ? p.dmT[(size_t)n * ATTNC_HS + hs] : 0.f;
    __syncthreads();
    const int nchunks = (eos - bos + ATTNC_B_C - 1) / ATTNC_B_C;
    for (int ci = nchunks - 1; ci >= 0; ci--) {
        const int c0 = bos + ci * ATTNC_B_C, nrows = min(ATTNC_B_C, eos - c0);
        if (ATTNC_B_MLSTM && tid == 0)   // m_in: m_out of the chunk before, or m0
            sm[L::mx] = ci > 0 ? p.ws_m[(size_t)((c0 - ATTNC_B_C) / ATTNC_B_C + n) * ATTNC_HOUT + h] : m_init;
        if constexpr (ATTNC_B_TRANSITION != BTR_IDENTITY || ATTNC_B_MLSTM) {
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
        // the delta rule: the chunk's S_in (S_out of the chunk before, stored by the forward walk; h0 or zero
        // for the first chunk)
        const float *Sin = nullptr;
        if constexpr (ATTNC_B_DELTA) {
            if (ci > 0)
                Sin = p.ws_s + ((size_t)((c0 - ATTNC_B_C) / ATTNC_B_C + n) * ATTNC_HOUT + h) * ATTNC_B_K * ATTNC_B_V;
            else if (p.h0)
                Sin = p.h0 + state_base;
        }
        attnc_bwd_load_chunk(p, c0, nrows, h, sm, true);
        if constexpr (ATTNC_B_DELTA)
            attnc_bwd_wy(Sin, ATTNC_B_V, sm);
        attnc_bwd_p(sm);
        __syncthreads();
        // dV = P^T dO + Kd dS_out  (the delta rule: dU_hat, into its tile, every row)
        constexpr bool D = ATTNC_B_DELTA;
        for (int i = tid; i < (D ? ATTNC_B_C : nrows) * ATTNC_B_V; i += ATTNC_B_THREADS) {
            const int j = i / ATTNC_B_V, c = i % ATTNC_B_V;
            float s = 0.f;
            for (int r = j; r < nrows; r++)
                s += sm[L::a + r * ATTNC_B_LDA + j] * sm[L::dout + r * ATTNC_B_LDV + c];
            const float *kd = sm + L::kd + j * ATTNC_B_LDK;
            for (int d = 0; d < ATTNC_B_K; d++)
                s += kd[d] * S[d * ATTNC_B_LDV + c];
            if constexpr (D)
                sm[L::duh + j * ATTNC_B_LDV + c] = s;
            else
                p.ws_dv[((size_t)(c0 + j) * ATTNC_HOUT + h) * ATTNC_B_V + c] = s;
        }
        __syncthreads();
        attnc_bwd_dov(sm);
        __syncthreads();
        // dK = ((dO V^T) o D)^T Q + (V dS_out^T) * e^{b_L - b}  (the delta rule: U_hat for V, the WY terms below)
        for (int i = tid; i < (D ? ATTNC_B_C : nrows) * ATTNC_B_K; i += ATTNC_B_THREADS) {
            const int j = i / ATTNC_B_K, d = i % ATTNC_B_K, gd = ATTNC_B_GK == 1 ? 0 : d;
            const float gj = sm[L::g + j * ATTNC_B_LDG + gd], bl = sm[L::g + (ATTNC_B_C - 1) * ATTNC_B_LDG + gd];
            float intra = 0.f, inter = 0.f;
            for (int r = j; r < nrows; r++) {
                float f = sm[L::a + r * ATTNC_B_LDA + j] * sm[L::q + r * ATTNC_B_LDK + d];
                if constexpr (ATTNC_B_GK > 1)
                    f *= attnc_bdec(sm[L::g + r * ATTNC_B_LDG + d] - gj);
                intra += f;
            }
            const float *vj = sm + L::vu + j * ATTNC_B_LDV, *sr = S + d * ATTNC_B_LDV;
            for (int c = 0; c < ATTNC_B_V; c++)
                inter += vj[c] * sr[c];
            const float dk = intra + inter * attnc_bwd_keyf(sm, j, gj, bl);
            sm[L::dk + j * ATTNC_B_LDK + d] = dk;
            if constexpr (!D)
                p.ws_dk[((size_t)(c0 + j) * ATTNC_HOUT + h) * ATTNC_B_K + d] = dk;
        }
        __syncthreads();
        if constexpr (D)
            attnc_bwd_wy_adjoint(p, c0, nrows, h, Sin, sm);
        if constexpr (ATTNC_B_MLSTM) {   // mLSTM: each row's q . dq and k . dk, for the gates below
            for (int r = warp; r < nrows; r += ATTNC_B_WARPS) {
                const size_t row = (size_t)(c0 + r) * ATTNC_HOUT + h;
                float qd = 0.f, kd = 0.f;
                for (int d = lane; d < ATTNC_B_K; d += 32) {
                    qd += sm[L::q + r * ATTNC_B_LDK + d] * p.ws_dq[row * ATTNC_B_K + d];
                    kd += sm[L::k + r * ATTNC_B_LDK + d] * sm[L::dk + r * ATTNC_B_LDK + d];
                }
                qd = attnc_warp_sum(qd);
                kd = attnc_warp_sum(kd);
                if (lane == 0) {
                    sm[L::ab + r] = qd;
                    sm[L::ab + ATTNC_B_C + r] = kd;
                }
            }
        }
        // dlog-gate: dL/db_s = q_s . dq_s - k_s . dk_s, reverse cumulative sum carried across chunks.
        if constexpr (ATTNC_B_TRANSITION != BTR_IDENTITY && !ATTNC_B_MLSTM) {
            if constexpr (ATTNC_B_GK > 1) {
                for (int d = tid; d < ATTNC_B_K; d += ATTNC_B_THREADS) {
                    float carry = sm[L::carry + d];
                    for (int r = nrows - 1; r >= 0; r--) {
                        const size_t row = (size_t)(c0 + r) * ATTNC_HOUT + h;
                        carry += sm[L::q + r * ATTNC_B_LDK + d] * p.ws_dq[row * ATTNC_B_K + d] -
                                 sm[L::k + r * ATTNC_B_LDK + d] * sm[L::dk + r * ATTNC_B_LDK + d];
                        if constexpr (D)   // the keys that carry e^{+b} (A's row end, K * e^{b})
                            carry += 2.f * sm[L::k + r * ATTNC_B_LDK + d] * sm[L::dkp + r * ATTNC_B_LDK + d];
                        p.ws_dg[row * ATTNC_B_K + d] = carry;
                    }
                    sm[L::carry + d] = carry;
                }
            } else {
                for (int r = warp; r < nrows; r += ATTNC_B_WARPS) {
                    const size_t row = (size_t)(c0 + r) * ATTNC_HOUT + h;
                    float e = 0.f;
                    for (int d = lane; d < ATTNC_B_K; d += 32) {
                        e += sm[L::q + r * ATTNC_B_LDK + d] * p.ws_dq[row * ATTNC_B_K + d] -
                             sm[L::k + r * ATTNC_B_LDK + d] * sm[L::dk + r * ATTNC_B_LDK + d];
                        if constexpr (D)
                            e += 2.f * sm[L::k + r * ATTNC_B_LDK + d] * sm[L::dkp + r * ATTNC_B_LDK + d];
                    }
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
            float s = S[d * ATTNC_B_LDV + c] * attnc_bwd_statef(sm, bl);
            for (int r = 0; r < nrows; r++)
                s += sm[L::qg + r * ATTNC_B_LDK + d] * sm[L::dout + r * ATTNC_B_LDV + c];
            if constexpr (D)   // U_hat = U - W S_in
                for (int r = 0; r < nrows; r++)
                    s -= sm[L::w + r * ATTNC_B_LDK + d] * sm[L::duh + r * ATTNC_B_LDV + c];
            S[d * ATTNC_B_LDV + c] = s;
        }
        __syncthreads();
        if constexpr (ATTNC_B_MLSTM)
            attnc_bwd_mlstm_gates(p, c0, ci, nrows, n, h, state_base, z_base, sm);
    }
    if (p.ws_dh0)
        for (int i = tid; i < ATTNC_B_K * ATTNC_B_VO; i += ATTNC_B_THREADS) {
            const int d = i / ATTNC_B_VO, c = i % ATTNC_B_VO;
            p.ws_dh0[((size_t)n * ATTNC_HOUT + h) * ATTNC_B_K * ATTNC_B_VO + i] = S[d * ATTNC_B_LDV + c];
        }
    if (ATTNC_B_MLSTM && p.ws_dm0 && tid == 0)
        p.ws_dm0[(size_t)n * ATTNC_HOUT + h] = sm[L::mx + 3];
    if (ATTNC_B_V > ATTNC_B_VO && p.ws_dz0)
        for (int d = tid; d < ATTNC_B_K; d += ATTNC_B_THREADS)
            p.ws_dz0[((size_t)n * ATTNC_HOUT + h) * ATTNC_B_K + d] = S[d * ATTNC_B_LDV + ATTNC_B_VO];
}
#endif

#endif   // ATTNC_B_CAUSAL_LINEAR

// ---- 2. the value DAG's adjoint, one warp per (token, output head), or a thread (ATTNC_B_ADJ_SCALAR) ----
#if ATTNC_BWD_WANT(ATTNC_BK_INPUTS)
extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS) attnc_bwd_inputs(attnc_bwd_params p)
{
#if ATTNC_B_ADJ_SCALAR   // only scalars (passes/grad.c's bp_inputs_scalar): a thread per (token, head), as lane 0
    const long long w = (long long)blockIdx.x * ATTNC_B_THREADS + threadIdx.x;
    const int lane = 0;
#else
    const int lane = threadIdx.x & 31;
    const long long w = (long long)blockIdx.x * ATTNC_B_WARPS + (threadIdx.x >> 5);
#endif
    if (w >= (long long)p.total * ATTNC_HOUT)
        return;
    attnc_bwd_adjoint(p, (int)(w / ATTNC_HOUT), (int)(w % ATTNC_HOUT), lane);
}
#endif

// ---- 3. deterministic sums of the partials ----------------------------------------------------------
struct attnc_bwd_sum_params {
    float *part;         // [rows * group, len] (per-token, h0) or [tokens, heads * group, len] (parameters)
    void *out;           // [rows, len] in `dtype`
    int dtype;           // ATTNC_DT_*
    long long rows;      // output rows (sum_heads), or output heads (sum_param)
    int group;           // partial heads per output head
    int len;
    int tokens;          // sum_param: tokens summed over
    int span;            // sum_param: tokens per CTA of the first pass (its grid's y: the splits)
    int pass;            // sum_param: ATTNC_SUM_ONE, ATTNC_SUM_SPLITS or ATTNC_SUM_FINAL
};
#define ATTNC_SUM_ONE 0      // one pass: each CTA sums all tokens (one split) and converts
#define ATTNC_SUM_SPLITS 1   // first of two: each CTA sums its split, in place of the split's first partial
#define ATTNC_SUM_FINAL 2    // second of two: each CTA sums the splits' sums in order and converts

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
#if ATTNC_BWD_WANT(ATTNC_BK_SUM_HEADS)
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
#endif

// out[hp, c] = sum_t sum_{i < group} part[t, hp * group + i, c]: a CTA per output element and split of the
// tokens (blockIdx.y: tokens [y span, (y + 1) span)), a fixed strided walk per thread, then a fixed tree.
// One CTA per output element alone left most SMs idle and each thread's loads in a long chain (0.13 ms a
// parameter at 65536 tokens on the H200); with several splits the first pass leaves each split's sum in
// place of the split's first partial (every thread has read its own partials by the tree's barriers, and
// no other CTA reads that range) and the final pass, a CTA per output element, sums the splits in order.
#if ATTNC_BWD_WANT(ATTNC_BK_SUM_PARAM)
extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS) attnc_bwd_sum_param(attnc_bwd_sum_params s)
{
    __shared__ float red[ATTNC_B_THREADS];
    const long long hp = blockIdx.x / s.len, c = blockIdx.x % s.len;
    const long long heads = s.rows * s.group;
    const long long t0 = (long long)blockIdx.y * s.span, t1 = min((long long)s.tokens, t0 + s.span);
    // the element i of this CTA's walk: (token, partial head) = (t0 + i / group, hp group + i % group), or
    // in the final pass the split i's sum at (i span, hp group)
    const long long n = s.pass == ATTNC_SUM_FINAL ? ((long long)s.tokens + s.span - 1) / s.span : (t1 - t0) * s.group;
    float acc = 0.f;
    for (long long i = threadIdx.x; i < n; i += ATTNC_B_THREADS) {
        const long long t = s.pass == ATTNC_SUM_FINAL ? i * s.span : t0 + i / s.group;
        const long long hh = hp * s.group + (s.pass == ATTNC_SUM_FINAL ? 0 : i % s.group);
        acc += s.part[(t * heads + hh) * s.len + c];
    }
    red[threadIdx.x] = acc;
    __syncthreads();
    for (int o = ATTNC_B_THREADS / 2; o; o >>= 1) {
        if ((int)threadIdx.x < o)
            red[threadIdx.x] += red[threadIdx.x + o];
        __syncthreads();
    }
    if (threadIdx.x != 0)
        return;
    if (s.pass == ATTNC_SUM_SPLITS)
        s.part[(t0 * heads + hp * s.group) * s.len + c] = red[0];
    else
        attnc_bwd_store(s.out, (size_t)blockIdx.x, red[0], s.dtype);
}
#endif
