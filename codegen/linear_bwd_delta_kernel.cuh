// codegen/linear_bwd_delta_kernel.cuh: the chunk-parallel backward of the delta rule (ATTNC_BP_DELTA: scalar,
// constant or no decay, 16-bit inputs, K, V <= 128, no normaliser; DeltaNet, Gated DeltaNet), completed by
// codegen/cuda_bwd.c after linear_bwd_par_kernel.cuh, whose helpers (bp_mma, bp_role_row, bp_slot_chunk, the
// staging) and chunk kernel it uses.  The math is the sequential kernel's (linear_bwd_kernel.cuh,
// attnc_bwd_wy and attnc_bwd_wy_adjoint; passes/grad.c's header), split so that only the two state
// recurrences walk the chunks and everything else runs per chunk on the tensor cores.  Per chunk, with
// b the chunk-local cumulative log2 gate, Kg = K e^{b}, E_rj = (k_r . k_j) e^{b_r - b_j} (j < r),
// T = (I + diag(beta) E)^-1, W = T diag(beta) Kg, U = T diag(beta) V:
//   U_hat = U - W S_in,  S_out = e^{b_L} S_in + Kd^T U_hat,  O = (Q e^{b}) S_in + P U_hat
// so the additive chunk runs on U_hat where it had V.  Kernels, in launch order (api/backward.c):
//   attnc_bwdp_wy          grid (slots, H_out): E, T (fp32), W and U into ws_w, ws_u (tile type), T's tiles
//                          into ws_t (with the forward's saved states, p.bd_uhat_saved: no U, no V rows;
//                          ws_u is then the forward's U_hat, a row per token, and attnc_bwdp_states is not run);
//   attnc_bwdp_states      grid (N, H_out, 1): the forward walk; per chunk U_hat = U - W S_in on the tensor
//                          cores from the S_in image, written over U in ws_u (the chunk kernel's V), then
//                          S_out = e^{b_L} S_in + Kd^T U_hat; every S_in image stored (ws_sin);
//   attnc_bwdp_dstates     grid (N, H_out, 1): the reverse walk; per chunk P = (Q K^T) o D,
//                          dU_hat = P^T dO + Kd dS_out, dS_in = e^{b_L} dS_out + Qg^T dO - W^T dU_hat; every
//                          dS_out image stored (ws_dso), dh0; without remainder tiles (DeltaNet, the gated
//                          delta rule: ATTNC_BD_WALK_DUH) dU_hat into ws_dv (16-bit: ATTNC_BD_DUH16); W of
//                          the next chunk copied under each chunk's work;
//   attnc_bwdp_chunk       the additive chunk kernel with U_hat for V: dq (final), dk's P and state terms,
//                          dU_hat into ws_dv (unless the walk wrote it), the gate's additive terms into ws_dg
//                          (U_hat held fixed);
//   attnc_bwdp_wy_adjoint  grid (slots, H_out): E again, T's tiles from ws_t, dW = -dU_hat S_in^T, dT_rq = beta_q (dU_hat_r
//                          . v_q + e^{b_q} dW_r . k_q), Y = T^T dU_hat, Z = T^T dW, dA = -T^T dT T^T (strictly
//                          lower); dv = diag(beta) Y over ws_dv, dbeta_q = Y_q . v_q + e^{b_q} Z_q . k_q +
//                          sum_j dA_qj E_qj, dk += diag(beta e^{b}) Z + F K + F^T K with
//                          F_rj = beta_r dA_rj e^{b_r - b_j}, and the gate's WY terms added to ws_dg.  dv,
//                          and dk where the key is a tensor (or its l2norm: bp_l2_finish), go straight
//                          into the tensors' gradients (ATTNC_BP_DV_TENSOR, ATTNC_BP_DK_TENSOR).
// The adjoint and the chunk kernel run 16 warps where passes/grad.c's chunk_warps says so (chunk 64, K, V >=
// 128): defined in the wide pass of codegen/cuda_bwd.c (ATTNC_BD_WIDE_ADJ; linear_bwd_par_kernel.cuh's header);
// the adjoint without lo tiles (DeltaNet, and Gated DeltaNet with its decay from its own logits) instead runs two
// CTAs of 8 warps an SM in a compact layout (ATTNC_BD_ADJ2, below), and so does the chunk kernel where the reverse
// walk writes dU_hat (DeltaNet, the gated delta rule: ATTNC_BP_CHUNK2, linear_bwd_par_kernel.cuh).
// The gate's WY terms, per factor (the log-weight rule; terms that do not cancel): each Kg_r = k_r e^{b_r}
// gives G_r = e^{b_r} beta_r (k_r . Z_r) to every s <= r, each E_rj gives beta_r dA_rj E_rj to every
// j < s <= r:  da_s += sum_{r >= s} (G_r + sum_{j < s} beta_r dA_rj E_rj).
// Saved versus recomputed: W and U (then U_hat) per chunk in the tile type (C (K + V) elements per chunk
// and head: both walks and the chunk kernel read them); in a training step the forward's walk saves every
// token's U_hat row (U_hat_t = beta_t (v_t - S_{t-1}^T k_t) with the decay's factor, the same whatever the
// chunking: linear_kernel.cuh's save_uhat_rows) with its S_in images, so that this file forms neither U nor
// U_hat (on an H100 at T = 8192 attnc_bwdp_wy 1.336 -> 0.791 ms for DeltaNet, the forward +0.02 ms); T as the
// adjoint's operand tiles (C x C, hi and, with remainders, lo: 128 or 256 MiB at the benchmark's shape, within
// FLA's memory), since the solve, a
// chain of short steps, was the adjoint's longest stage when it formed T again; the images as in the
// additive schedule.  Products are bf16 mma
// with fp32 accumulators; T, dU_hat, dW and F carry a bf16 remainder tile (hi + lo) where they are
// operands, so that only q, k, v, dO, the images, W, U_hat and the walks' dU_hat are rounded once; that is
// for the gate's gradient (Gated DeltaNet's A_log and dt_bias sum it over every token): without a gate
// (DeltaNet, ATTNC_BP_PLO 0) every operand is a hi tile, as in FLA (bd_mma_split, bd_put_split).  There the
// query and key are not rounded either where they are the l2norm of bf16 inputs (ATTNC_BP_QK_RAW,
// linear_bwd_par_kernel.cuh): the tiles hold the input rows and each row's fp32 factor goes onto E's, P's and
// K dS_out's accumulators and into W's left factor, Kd, Qg, A and F before they are rounded.  On the known
// defect's case (the CPU emulation, seed 315) that took dA_log from 2.61e-2 to 1.61e-2 (seed 314: 2.88e-2 to
// 1.61e-2), with no product added (bench/RESULTS.md, fifty-sixth session).

#if ATTNC_BP_DELTA
static_assert(!ATTNC_SPLIT && !ATTNC_BP_DIAG && ATTNC_B_NORM == 0 && ATTNC_BP_VW == ATTNC_BP_VP &&
              ATTNC_BP_KP <= 128 && ATTNC_BP_VP <= 128 && ATTNC_BP_C * 4 <= ATTNC_B_THREADS,
              "the delta rule's parallel backward: 16-bit tiles, wide walks of all of V, K, V <= 128 (passes/grad.c's delta_plan)");

#define ATTNC_BD_LDF (ATTNC_BP_C + 1)   // fp32 C x C rows

// ATTNC_BD_DUH16 (passes/grad.c's bd_duh16): dU_hat from the reverse walk to the two-CTA adjoint in ws_dv as the
// tiles' 16-bit elements, [T][HOUT][V] (ws_dv half its fp32 size): that adjoint rounds it so for its products (it
// keeps no remainder tile), so the walk's rounding gives the same bits and the bytes are halved both ways.  Only
// where ws_dv is not also the value's fp32 gradient (the adjoint writes dv into the tensor's) and the rows are
// whole 16-byte units (cp.async).
static_assert(!ATTNC_BD_DUH16 || (ATTNC_BD_WALK_DUH && ATTNC_BD_ADJ2 && ATTNC_BP_DV_TENSOR >= 0 &&
                                  ATTNC_B_V == ATTNC_BP_VP && ATTNC_B_V * sizeof(elt) % 16 == 0),
              "the 16-bit dU_hat: the compact adjoint, dv into its tensor, whole 16-byte rows");
// ATTNC_BD_DK16 (passes/grad.c's bd_dk16): the chunk kernel's dk to the adjoint in ws_dk as bd_dk16_store's rows,
// where ws_dk holds nothing else (the adjoint writes the key's gradient into its tensor's).
static_assert(!ATTNC_BD_DK16 || ATTNC_BP_DK_TENSOR >= 0, "the compact dk: the key's gradient into its tensor");

__device__ __forceinline__ size_t bd_wtile(int slot, int h)
{
    return ((size_t)slot * ATTNC_HOUT + h) * ATTNC_BP_C * ATTNC_BP_KP;
}
__device__ __forceinline__ size_t bd_utile(int slot, int h)
{
    return ((size_t)slot * ATTNC_HOUT + h) * ATTNC_BP_C * ATTNC_BP_VP;
}
// T of every chunk in ws_t, from attnc_bwdp_wy to the adjoint: a C x C hi tile, then (where the products take
// remainder tiles) its lo tile
#define ATTNC_BD_T_TILES (ATTNC_BP_PLO ? 2 : 1)
__device__ __forceinline__ size_t bd_ttile(int slot, int h)
{
    return ((size_t)slot * ATTNC_HOUT + h) * ATTNC_BD_T_TILES * ATTNC_BP_C * ATTNC_BP_C;
}

// x into tile hi at i, and its rounding remainder into lo where the products take remainder tiles
// (ATTNC_BP_PLO; passes/grad.c's delta_plan)
__device__ __forceinline__ void bd_put_split(elt *hi, elt *lo, int i, float x)
{
    elt h, l;
    bp_split(x, h, l);
    hi[i] = h;
    if constexpr (ATTNC_BP_PLO)
        lo[i] = l;
}

// acc += (Ah + Al)(Bh + Bl) without the lo x lo term: the products of operands carried as bf16 hi + lo tiles
// (Bl null: B is a single tile, two products).  Layouts as bp_mma's.
template <int NT, bool AT, bool BKN>
__device__ __forceinline__ void bd_mma_split(float (*acc)[4], const elt *Ah, const elt *Al, int lda, int m0, const elt *Bh,
                                             const elt *Bl, int ldb, int n0, int k0, int k1, int lane)
{
    bp_mma<NT, AT, BKN>(acc, Ah, lda, m0, Bh, ldb, n0, k0, k1, lane);
    if constexpr (ATTNC_BP_PLO) {
        bp_mma<NT, AT, BKN>(acc, Al, lda, m0, Bh, ldb, n0, k0, k1, lane);
        if (Bl)
            bp_mma<NT, AT, BKN>(acc, Ah, lda, m0, Bl, ldb, n0, k0, k1, lane);
    }
}

// The chunk's key and value roles into K and V tiles, its log2 gates into g (then, gated, the chunk-local
// sums) and beta into beta[r] (0 on padding rows), once the staged rows have landed; 2 PAIRS rows per warp
// and pass through registers (bp_roles): with two pairs, the two pairs' chains (the l2norm's warp sums) run
// side by side, where the kernel has the registers (attnc_bwdp_wy: the roles' warp sums were 8 % of its stall
// samples, ncu on an H100).
template <bool WITH_V, int PAIRS = 1>
__device__ __forceinline__ void bd_rows_kv(const attnc_bwd_params &p, int c0, int nrows, int h, elt *K, elt *V, float *g,
                                           float *beta, const unsigned char *stage, float *fk)
{
    static_assert(ATTNC_BP_C % (2 * PAIRS * ATTNC_B_WARPS) == 0, "whole passes");
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    constexpr int WANT = (ATTNC_BP_K_STAGE < 0 ? ATTNC_ROLE_K : 0) | (WITH_V && ATTNC_BP_V_STAGE < 0 ? ATTNC_ROLE_V : 0);
    attnc_stage_wait();
    __syncthreads();
    for (int pass = warp; pass < ATTNC_BP_C; pass += 2 * PAIRS * ATTNC_B_WARPS) {
        bp_roles x[PAIRS][2];
#pragma unroll
        for (int pr = 0; pr < PAIRS; pr++)
            bp_role_rows2<WANT>(p, c0, nrows, h, lane, pass + 2 * pr * ATTNC_B_WARPS, stage, x[pr]);
#pragma unroll
        for (int pr = 0; pr < PAIRS; pr++) {
            const int r0 = pass + 2 * pr * ATTNC_B_WARPS;
            bp_qk_tile_rows2<ATTNC_BP_K_STAGE, ATTNC_ROLE_K>(stage, x[pr], r0, nrows, K, lane, fk);
            if constexpr (WITH_V && ATTNC_BP_V_STAGE >= 0)
                bp_copy_rows2<ATTNC_BP_VP>(stage, ATTNC_BP_V_STAGE, ATTNC_B_V, r0, 0, nrows, V, ATTNC_BP_LDV, lane);
            bp_store_gates2(x[pr], r0, g, beta, lane);
            if constexpr (WITH_V && ATTNC_BP_V_STAGE < 0)
#pragma unroll
                for (int i = 0; i < 2; i++) {
                    elt *row = V + (r0 + i * ATTNC_B_WARPS) * ATTNC_BP_LDV;
                    bp_regs_row<ATTNC_BP_VP, false>(x[pr][i].v, 0, row, row, lane);
                }
        }
    }
    __syncthreads();
    if constexpr (ATTNC_BP_GATED) {
        if (warp == 0)
            bp_scan(g, g, lane);
        __syncthreads();
    }
}

// Two floats as a bf16 pair (x0 in the low half), whatever the tiles' type.
__device__ __forceinline__ unsigned bd_bf16x2(float x0, float x1)
{
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(x1), "f"(x0));
    return r;
}

__device__ __forceinline__ void bd_mma_bf16(float *d, const unsigned *a, unsigned b0, unsigned b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// acc (16 x 16) += X[r0.., k0..k0+16) Y[yk0..yk0+16, c0..c0+16) for fp32 row-major X (row stride LDF) and Y (row
// stride ldy), each operand split in bf16 hi + lo (hi + lo carries about 16 bits) and the lo x lo product
// left out, in bf16 whatever the tiles' type (fp16's range would not hold T).
__device__ __forceinline__ void bd_mma16_f32(float (*acc)[4], const float *X, int r0, int k0, const float *Y, int yk0, int c0,
                                             int lane, int ldy = ATTNC_BD_LDF)
{
    const int gr = lane >> 2, tq = lane & 3;
    unsigned ah[4], al[4], bh[4], bl[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {   // A: rows gr + 8 (i & 1), columns 2 tq + 8 (i >> 1)
        const float *x = X + (r0 + gr + 8 * (i & 1)) * ATTNC_BD_LDF + k0 + 2 * tq + 8 * (i >> 1);
        ah[i] = bd_bf16x2(x[0], x[1]);
        al[i] = bd_bf16x2(x[0] - __uint_as_float(ah[i] << 16), x[1] - __uint_as_float(ah[i] & 0xffff0000u));
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {   // B: n = gr + 8 (i >> 1), k = 2 tq + 8 (i & 1)
        const float *y = Y + (yk0 + 2 * tq + 8 * (i & 1)) * ldy + c0 + gr + 8 * (i >> 1);
        bh[i] = bd_bf16x2(y[0], y[ldy]);
        bl[i] = bd_bf16x2(y[0] - __uint_as_float(bh[i] << 16), y[ldy] - __uint_as_float(bh[i] & 0xffff0000u));
    }
#pragma unroll
    for (int nt = 0; nt < 2; nt++) {
        bd_mma_bf16(acc[nt], al, bh[2 * nt], bh[2 * nt + 1]);
        bd_mma_bf16(acc[nt], ah, bl[2 * nt], bl[2 * nt + 1]);
        bd_mma_bf16(acc[nt], ah, bh[2 * nt], bh[2 * nt + 1]);
    }
}

// E_rj = (k_r . k_j) e^{b_r - b_j} (j < r, else 0) on the tensor cores, then T = (I + A)^-1, A = diag(beta) E
// (unit lower triangular), in fp32 by blocks of 16: first every diagonal block by forward substitution,
// T_rj = -beta_r sum_{j <= q < r} E_rq T_qj, a lane per column j, right-looking (each T_qj's terms added to
// the later rows' sums in registers as soon as it is known: a chain of 15 short steps; four lanes per
// column, each row's sum formed when its turn came, had a chain of 15 sums, butterflies and warp syncs);
// then the blocks below, one distance d from the diagonal at a time, T_ij = -T_ii sum_{j <= k < i} A_ik T_kj,
// through M (scratch, (C/16 - 1) * 256 floats).  A column-by-column solve had a chain of C - 1 rows (measured
// on the H200: the solve was about half of attnc_bwdp_wy's time and 40% of the adjoint's).
// bd_form_e forms E, no barrier: the caller's makes it visible.  The solve runs in attnc_bwdp_wy alone, which
// saves T for the adjoint (ws_t): the adjoint solved it again, with half its warps while the other half
// formed dW and dT.
// E_rj from its product k_r . k_j and pair factor f = e^{b_r - b_j} (bp_pair_decay; 0 on and above the diagonal).
__device__ __forceinline__ float bd_e_elem(float kk, float f, int r, int j)
{
    return j < r ? kk * f : 0.f;
}

// fk: the key rows' factors (ATTNC_BP_QK_RAW: K holds raw rows).
__device__ __forceinline__ void bd_form_e(const elt *K, const float *g, float *E, const float *fk)
{
    constexpr int C = ATTNC_BP_C, NB = C / 16, LDF = ATTNC_BD_LDF, NW = ATTNC_B_WARPS;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int item = warp; item < NB * NB; item += NW) {
        const int mi = item / NB, nj = item % NB;
        float acc[2][4];
        bp_zero<2>(acc);
        float fd[2][4];
        bp_pair_decay(g, mi, nj, lane, fd);
        bp_pair_rf(fk, fk, mi, nj, lane, fd);
        if (nj <= mi)
            bp_mma<2, false, false>(acc, K, ATTNC_BP_LDK, mi * 16, K, ATTNC_BP_LDK, nj * 16, 0, ATTNC_BP_KP, lane);
#pragma unroll
        for (int nt = 0; nt < 2; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int r = bp_row(mi * 16, lane, i), j = bp_col(nj * 16, nt, lane, i);
                E[r * LDF + j] = bd_e_elem(acc[nt][i], fd[nt][i], r, j);
            }
    }
}

// A 16 x 16 block of products (acc: rows r0.., 16 columns), each row times beta_r, into a dense block of M.
__device__ __forceinline__ void bd_store_block(float *blk, const float (*acc)[4], const float *beta, int r0, int lane)
{
#pragma unroll
    for (int nt = 0; nt < 2; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int r = bp_row(r0, lane, i), c = bp_col(0, nt, lane, i);
            blk[(r - r0) * 16 + c] = beta[r] * acc[nt][i];
        }
}

// -acc (a 16 x 16 block of products: rows r0.., 16 columns) into T's block at rows r0.., columns c0...
__device__ __forceinline__ void bd_store_neg_block(float *T, const float (*acc)[4], int r0, int c0, int lane)
{
#pragma unroll
    for (int nt = 0; nt < 2; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            T[bp_row(r0, lane, e) * ATTNC_BD_LDF + c0 + bp_col(0, nt, lane, e)] = -acc[nt][e];
}

// T_ib,jb for neighbouring diagonal blocks (ib = jb + 1): T_ij = -T_ii diag(beta) E_ij T_jj, through M's block jb.
__device__ __forceinline__ void bd_solve_pair(const float *beta, const float *E, float *T, float *M, int jb, int ib, int lane)
{
    float acc[2][4];
    bp_zero<2>(acc);
    bd_mma16_f32(acc, E, ib * 16, jb * 16, T, jb * 16, jb * 16, lane);
    bd_store_block(M + (jb << 8), acc, beta, ib * 16, lane);
    __syncwarp();
    bp_zero<2>(acc);
    bd_mma16_f32(acc, T, ib * 16, ib * 16, M + (jb << 8) - ib * 16 * 16, ib * 16, 0, lane, 16);
    bd_store_neg_block(T, acc, ib * 16, jb * 16, lane);
}

__device__ __forceinline__ void bd_solve_t(const float *beta, const float *E, float *T, float *M)
{
    constexpr int C = ATTNC_BP_C, NB = C / 16, LDF = ATTNC_BD_LDF, NW = ATTNC_B_WARPS, NT = ATTNC_B_THREADS;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    // right-looking, a lane per column j: once T_qj is known its terms E_rq T_qj go into every later row's sum
    // (independent FMAs), so the chain is one FMA and one product a row; the rows' sums in registers
    for (int j = tid; j < C; j += NT) {
        const int b0 = j & ~15, c = j - b0;
        float sum[16];
#pragma unroll
        for (int r = 0; r < 16; r++)
            sum[r] = 0.f;
#pragma unroll
        for (int q = 0; q < 16; q++) {
            const float t = q < c ? 0.f : q == c ? 1.f : -beta[b0 + q] * sum[q];
            if (q > c)
                T[(b0 + q) * LDF + j] = t;
#pragma unroll
            for (int r = q + 1; r < 16; r++)
                sum[r] += E[(b0 + r) * LDF + b0 + q] * t;
        }
    }
    __syncthreads();
    // The blocks below the diagonal on the tensor cores, a warp per block pair, fp32 operands split in bf16
    // hi + lo (three products: about 16 bits of each operand, the fp32 accumulation; the scalar loops they
    // replace were 27 % of attnc_bwdp_wy's instructions and 17 % of the adjoint's).
    if constexpr (NB == 4) {
        // By halves (the inverse of a 2 x 2 block lower-triangular matrix): T_10 and T_32 as below; then,
        // with A = diag(beta) E, the 32 x 32 block T_[2,4),[0,2) = -T_[2,4),[2,4) X, X = A_[2,4),[0,2) T_[0,2),[0,2),
        // a warp per column block j of X and of that block (its own X: no barrier between them).  A chain of
        // six products and two barriers, where the distances below take nine and three.
        for (int jb = 2 * warp; jb < NB; jb += 2 * NW)
            bd_solve_pair(beta, E, T, M, jb, jb + 1, lane);
        __syncthreads();
        if (warp < 2) {
            const int j = warp;
            for (int i = 2; i < 4; i++) {   // X_ij = diag(beta) sum_{j <= k < 2} E_ik T_kj, into M block (i - 2) * 2 + j
                float acc[2][4];
                bp_zero<2>(acc);
                for (int k = j; k < 2; k++)
                    bd_mma16_f32(acc, E, i * 16, k * 16, T, k * 16, j * 16, lane);
                bd_store_block(M + ((i - 2) * 2 + j) * 256, acc, beta, i * 16, lane);
            }
            __syncwarp();
            for (int i = 2; i < 4; i++) {   // T_ij = -sum_{2 <= k <= i} T_ik X_kj
                float acc[2][4];
                bp_zero<2>(acc);
                for (int k = 2; k <= i; k++)
                    bd_mma16_f32(acc, T, i * 16, k * 16, M + ((k - 2) * 2 + j) * 256 - k * 16 * 16, k * 16, 0, lane, 16);
                bd_store_neg_block(T, acc, i * 16, j * 16, lane);
            }
        }
        __syncthreads();
        return;
    }
    for (int d = 1; d < NB; d++) {
        for (int jb = warp; jb < NB - d; jb += NW) {   // M = diag(beta) E_i,[j, i) T_[j, i),j
            const int ib = jb + d;
            float acc[2][4];
            bp_zero<2>(acc);
            for (int q0 = jb * 16; q0 < ib * 16; q0 += 16)
                bd_mma16_f32(acc, E, ib * 16, q0, T, q0, jb * 16, lane);
            bd_store_block(M + (jb << 8), acc, beta, ib * 16, lane);
        }
        // the warp that wrote a pair's M reads it (the same jb), and no pair at distance d reads another's
        // block: a warp's own ordering is enough here, the group's barrier only between distances
        __syncwarp();
        for (int jb = warp; jb < NB - d; jb += NW) {   // T_ij = -T_ii M (T_ii lower triangular)
            const int ib = jb + d;
            float acc[2][4];
            bp_zero<2>(acc);
            bd_mma16_f32(acc, T, ib * 16, ib * 16, M + (jb << 8) - ib * 16 * 16, ib * 16, 0, lane, 16);
            bd_store_neg_block(T, acc, ib * 16, jb * 16, lane);
        }
        __syncthreads();
    }
}

// ---- attnc_bwdp_wy: W and U of every chunk ---------------------------------------------------------------
struct attnc_bd_wy_layout {   // offsets in bytes
    static constexpr unsigned CC = ATTNC_BP_C * ATTNC_BP_LDC * sizeof(elt);             // one C x C tile
    static constexpr unsigned k = 0;                                                     // K [C][LDK]
    static constexpr unsigned v = k + ATTNC_BP_C * ATTNC_BP_LDK * sizeof(elt);            // V [C][LDV]
    static constexpr unsigned g = v + ATTNC_BP_C * ATTNC_BP_LDV * sizeof(elt);            // b [C]
    static constexpr unsigned beta = g + ATTNC_BP_C * 4;                                  // beta [C]
    static constexpr unsigned t = beta + ATTNC_BP_C * 4;                                  // T [C][C+1] fp32
    // one region: the staged input rows, then E and the solve's left factors
    static constexpr unsigned stage = t + ATTNC_BP_C * ATTNC_BD_LDF * 4;
    static constexpr unsigned e = stage;                                                 // E [C][C+1] fp32
    static constexpr unsigned wh = e + ATTNC_BP_C * ATTNC_BD_LDF * 4;                     // T diag(beta e^b) hi
    static constexpr unsigned uh = wh + CC;                                              // T diag(beta) hi
    static constexpr unsigned wl = uh + CC;                                              // their lo tiles (PLO)
    static constexpr unsigned ul = wl + CC;
    static constexpr unsigned end_a = stage + ATTNC_BP_STAGE_BYTES, end_b = ul + CC;
    static constexpr unsigned fk = end_a > end_b ? end_a : end_b;                         // the key's factors (QK_RAW)
    static constexpr unsigned bytes = fk + (ATTNC_BP_QK_RAW ? ATTNC_BP_C * 4 : 0);
};
static_assert(attnc_bd_wy_layout::v % 16 == 0 && attnc_bd_wy_layout::t % 16 == 0 && attnc_bd_wy_layout::stage % 16 == 0 &&
              attnc_bd_wy_layout::wh % 16 == 0 && attnc_bd_wy_layout::CC % 16 == 0 &&
              4 * attnc_bd_wy_layout::CC >= (ATTNC_BP_C / 16) * 256 * 4, "16-byte tiles; the solve's scratch");
// With the forward's saved states (p.bd_uhat_saved) the kernel forms no U and reads no V rows: K, b, beta, T, then
// the key's, beta's and gate's staged rows, which span [ATTNC_BD_WY_STAGE_LO, ATTNC_BD_WY_STAGE_HI) of the staging
// (codegen/cuda_bwd.c), from E's place (the staging's base that much lower: the rows of the other roles, not
// copied here, would lie over T and the tiles before it), E over them once read, then W's left factor (hi, and
// lo with remainder tiles) with the solve's scratch in it.  About 67 KB at K = 128 against the full layout's
// 105, so that three CTAs share an SM on sm_90 (the kernel's stages are short and each ends at a barrier: one
// CTA's loads and solve run under the others' products).  The host launches with these bytes there (passes/grad.c's bd_wy_saved_smem).
struct attnc_bd_wy_saved_layout {   // offsets in bytes
    static constexpr unsigned CC = attnc_bd_wy_layout::CC;
    static constexpr unsigned k = 0;                                                     // K [C][LDK]
    static constexpr unsigned g = k + ATTNC_BP_C * ATTNC_BP_LDK * sizeof(elt);            // b [C]
    static constexpr unsigned beta = g + ATTNC_BP_C * 4;                                  // beta [C]
    static constexpr unsigned t = beta + ATTNC_BP_C * 4;                                  // T [C][C+1] fp32
    static constexpr unsigned e = t + ATTNC_BP_C * ATTNC_BD_LDF * 4;                      // the rows, then E [C][C+1]
    static constexpr unsigned stage = e - (ATTNC_BD_WY_STAGE_LO <= e ? ATTNC_BD_WY_STAGE_LO : 0);
    static constexpr unsigned wh = e + ATTNC_BP_C * ATTNC_BD_LDF * 4;                     // T diag(beta e^b) hi
    static constexpr unsigned wl = wh + CC;                                              // its lo tile (PLO)
    static constexpr unsigned end_a = stage + ATTNC_BD_WY_STAGE_HI, end_b = wl + (ATTNC_BP_PLO ? CC : 0);
    static constexpr unsigned fk = end_a > end_b ? end_a : end_b;                         // the key's factors (QK_RAW)
    static constexpr unsigned bytes = fk + (ATTNC_BP_QK_RAW ? ATTNC_BP_C * 4 : 0);
};
static_assert(attnc_bd_wy_saved_layout::e % 16 == 0 && attnc_bd_wy_saved_layout::stage % 16 == 0 &&
              attnc_bd_wy_saved_layout::wh % 16 == 0 && attnc_bd_wy_saved_layout::bytes <= attnc_bd_wy_layout::bytes,
              "16-byte tiles; the compact layout within the full one (the function's shared memory attribute)");

// acc (rows m0.., NT n-tiles from n0) = (hi + lo) X over the causal range of a lower-triangular C x C
// left factor (row-major [r][j], j <= r).
template <int NT>
__device__ __forceinline__ void bd_lower_mm(float (*acc)[4], const elt *Fh, const elt *Fl, const elt *X, int ldx, int m0,
                                            int n0, int lane)
{
    bp_zero<NT>(acc);
    bd_mma_split<NT, false, true>(acc, Fh, Fl, ATTNC_BP_LDC, m0, X, nullptr, ldx, n0, 0, m0 + 16, lane);
}

// acc (16 rows from m0, NT n-tiles from n0) rounded into a dense global tile of row stride ld.
template <int NT>
__device__ __forceinline__ void bd_store_tile(elt *dst, int ld, const float (*acc)[4], int m0, int n0, int lane)
{
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int i = 0; i < 4; i += 2)
            st2(dst + (size_t)bp_row(m0, lane, i) * ld + bp_col(n0, nt, lane, i), acc[nt][i], acc[nt][i + 1]);
}

// U_hat = U - W S_in for an item of rows m0.., NT n-tiles from n0: WS holds W S_in (its mma accumulators),
// u_at(nt, e, r, c) gives U's element as the tile type holds it, put(r, c, x0, x1) stores each pair (the state
// walk's forward and, with saved states, attnc_bwdp_wy: the same arithmetic).
template <int NT, typename UAt, typename Put>
__device__ __forceinline__ void bd_uhat_pairs(const float (*WS)[4], int m0, int n0, int lane, UAt u_at, Put put)
{
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int i = 0; i < 4; i += 2) {
            const int r = bp_row(m0, lane, i), c = bp_col(n0, nt, lane, i);
            put(r, c, u_at(nt, i, r, c) - WS[nt][i], u_at(nt, i + 1, r, c + 1) - WS[nt][i + 1]);
        }
}

#if !ATTNC_BP_WIDE_PASS
// two CTAs per multiprocessor (the layout is about half of its shared memory): one solves while the other loads;
// three with the saved states' compact layout, on sm_90 (228 KB an SM; sm_80's 164 KB hold two)
#if ATTNC_BWD_WANT(ATTNC_BK_P_WY)
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define ATTNC_BD_WY_CTAS 3
#else
#define ATTNC_BD_WY_CTAS 2
#endif
extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS, ATTNC_BD_WY_CTAS) attnc_bwdp_wy(attnc_bwd_params p)
{
    extern __shared__ __align__(128) unsigned char bsm[];
    using L = attnc_bd_wy_layout;
    using LS = attnc_bd_wy_saved_layout;
    constexpr int C = ATTNC_BP_C, LDF = ATTNC_BD_LDF;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int slot = blockIdx.x, h = blockIdx.y;
    int n, c0, eos;
    if (!bp_slot_chunk(p, slot, n, c0, eos))
        return;
    const int nrows = min(C, eos - c0);
    // With the forward's saved states (p.bd_uhat_saved) ws_u holds the forward's U_hat already: no U, and no V
    // rows, in the compact layout.
    const bool want_u = !p.bd_uhat_saved;
    elt *K = (elt *)(bsm + L::k), *V = (elt *)(bsm + L::v);
    elt *Wh = (elt *)(bsm + (want_u ? L::wh : LS::wh)), *Wl = (elt *)(bsm + (want_u ? L::wl : LS::wl));
    elt *Uh = (elt *)(bsm + L::uh), *Ul = (elt *)(bsm + L::ul);
    float *g = (float *)(bsm + (want_u ? L::g : LS::g)), *beta = (float *)(bsm + (want_u ? L::beta : LS::beta));
    float *E = (float *)(bsm + (want_u ? L::e : LS::e)), *T = (float *)(bsm + (want_u ? L::t : LS::t));
    float *fk = (float *)(bsm + (want_u ? L::fk : LS::fk));
    static_assert(L::k == LS::k, "K first in both layouts");

    if (want_u) {
        attnc_bwd_stage_issue<true, bp_stage_want(ATTNC_ROLE_K | ATTNC_ROLE_V)>(p, c0, eos, h, bsm + L::stage);   // (no q rows)
        bd_rows_kv<true>(p, c0, nrows, h, K, V, g, beta, bsm + L::stage, fk);
    } else {
        attnc_bwd_stage_issue<true, bp_stage_want(ATTNC_ROLE_K)>(p, c0, eos, h, bsm + LS::stage);
        constexpr int PAIRS = ATTNC_BP_C % (4 * ATTNC_B_WARPS) == 0 ? 2 : 1;
        bd_rows_kv<false, PAIRS>(p, c0, nrows, h, K, V, g, beta, bsm + LS::stage, fk);
    }
    bd_form_e(K, g, E, fk);
    for (int i = tid; i < C * C; i += ATTNC_B_THREADS)   // T = I, the solve's start
        T[(i / C) * LDF + i % C] = i / C == i % C ? 1.f : 0.f;
    __syncthreads();
    bd_solve_t(beta, E, T, (float *)Wh);   // M over the left factors' place
    // the solve's left factors with beta_j (and e^{b_j} for W) on their columns, hi + lo; and T itself for
    // the adjoint (zero above the diagonal, as formed)
    elt *tg = (elt *)p.ws_t + bd_ttile(slot, h);
    for (int i = tid; i < C * C; i += ATTNC_B_THREADS) {
        const int r = i / C, j = i % C;
        const float t = j <= r ? T[r * LDF + j] * beta[j] : 0.f;
        bd_put_split(Wh, Wl, r * ATTNC_BP_LDC + j, t * bp_dec(g[j]) * bp_rf(fk, j));   // (raw rows: W = (T diag(beta e^b f)) K)
        if (want_u)
            bd_put_split(Uh, Ul, r * ATTNC_BP_LDC + j, t);
        bd_put_split(tg, tg + C * C, i, T[r * LDF + j]);
    }
    __syncthreads();
    elt *w = (elt *)p.ws_w + bd_wtile(slot, h), *u = (elt *)p.ws_u + bd_utile(slot, h);
    {   // W = T diag(beta e^{b}) K
        constexpr int NT = ATTNC_BP_NT(ATTNC_BP_KP), NG = ATTNC_BP_KP / (8 * NT);
        for (int item = warp; item < C / 16 * NG; item += ATTNC_B_WARPS) {
            const int m0 = item / NG * 16, n0 = item % NG * 8 * NT;
            float acc[NT][4];
            bd_lower_mm<NT>(acc, Wh, Wl, K, ATTNC_BP_LDK, m0, n0, lane);
            bd_store_tile<NT>(w, ATTNC_BP_KP, acc, m0, n0, lane);
        }
    }
    if (!want_u)
        return;
    {   // U = T diag(beta) V, for the forward walk (attnc_bwdp_states), which forms U_hat over it
        constexpr int NT = ATTNC_BP_NT(ATTNC_BP_VP), NG = ATTNC_BP_VP / (8 * NT);
        for (int item = warp; item < C / 16 * NG; item += ATTNC_B_WARPS) {
            const int m0 = item / NG * 16, n0 = item % NG * 8 * NT;
            float acc[NT][4];
            bd_lower_mm<NT>(acc, Uh, Ul, V, ATTNC_BP_LDV, m0, n0, lane);
            bd_store_tile<NT>(u, ATTNC_BP_VP, acc, m0, n0, lane);
        }
    }
}
#endif
#endif   // !ATTNC_BP_WIDE_PASS

// ---- the state walks -------------------------------------------------------------------------------------
// The walks come in two widths W (columns of V per CTA): all of V (ATTNC_BP_VW), and slices of ATTNC_BP_VS
// for few sequences and heads (4x the CTAs; api/backward.c's walks_split).  Columns of the state are
// independent in both recurrences (W, K and Q act on its rows), so a slice needs only its own columns of
// U, dO and the state; the C x C and C x K tiles (P, Kd, Qg, W) are formed by every slice's CTA.
template <int W>
struct attnc_bd_walk_layout_w {   // offsets in bytes; the forward walk uses x, w, y, s
    static constexpr unsigned LDW = W + 8;   // the slice's tiles' row stride
    static constexpr unsigned x = 0;                                                     // K or Q (bp_walk_frag), else Kd or Qg [C][LDK]
    static constexpr unsigned k = x + ATTNC_BP_C * ATTNC_BP_LDK * sizeof(elt);            // K, then Kd (rev)
    static constexpr unsigned w = k + ATTNC_BP_C * ATTNC_BP_LDK * sizeof(elt);            // W
    static constexpr unsigned y = w + ATTNC_BP_C * ATTNC_BP_LDK * sizeof(elt);            // U then U_hat, or dO [C][LDW]
    static constexpr unsigned z = y + ATTNC_BP_C * LDW * sizeof(elt);                     // -dU_hat (rev)
    static constexpr unsigned p = z + ATTNC_BP_C * LDW * sizeof(elt);                     // P hi, lo (rev) [C][LDC]
    static constexpr unsigned plo = p + ATTNC_BP_C * ATTNC_BP_LDC * sizeof(elt);
    static constexpr unsigned s = plo + ATTNC_BP_C * ATTNC_BP_LDC * sizeof(elt);          // the state image [KP][LDW]
    static constexpr unsigned w2 = s + ATTNC_BP_KP * LDW * sizeof(elt);                   // the next chunk's W (rev)
    static constexpr unsigned g = w2 + ATTNC_BP_C * ATTNC_BP_LDK * sizeof(elt);           // b [C]
    static constexpr unsigned stage = g + ATTNC_BP_C * 4;                                 // the chunk's input rows
    static constexpr unsigned dstage = stage + ATTNC_BP_STAGE_BYTES;                      // its dO [C][W]
    static constexpr unsigned gw = dstage + ATTNC_BP_C * W * ATTNC_BP_DO_ES;           // each warp's b (gated) [8][C]
    static constexpr unsigned fq = gw + (ATTNC_BP_GATED ? ATTNC_B_WARPS * ATTNC_BP_C * 4 : 0);   // the factors (QK_RAW)
    static constexpr unsigned fk = fq + ATTNC_BP_C * 4;
    static constexpr unsigned bytes = fq + (ATTNC_BP_QK_RAW ? 2 * ATTNC_BP_C * 4 : 0);
    static_assert(k % 16 == 0 && w % 16 == 0 && y % 16 == 0 && z % 16 == 0 && p % 16 == 0 && plo % 16 == 0 &&
                  s % 16 == 0 && w2 % 16 == 0 && stage % 16 == 0 && dstage % 16 == 0 && LDW * sizeof(elt) % 16 == 0,
                  "16-byte tiles");
};
using attnc_bd_walk_layout = attnc_bd_walk_layout_w<ATTNC_BP_VW>;   // the larger: the walks' shared memory
static_assert(attnc_bd_walk_layout_w<ATTNC_BP_VS>::bytes <= attnc_bd_walk_layout::bytes, "the narrow walks fit");

// The walks' chunk rows, none of them depending on the state: the key role into Kt (the reverse walk's also the
// query's into X and the dO slice into Y), the log2 gates into g; two rows per pass (bp_roles), or two pairs in
// the reverse walk, whose pairs' chains (the l2norm's warp sums) then run side by side: the walk has the
// registers (one CTA an SM).  By the 8 warps of threads 0 .. 255 (the plain walk's, the specialised walk's
// producers), once the chunk's staged rows have landed.
template <bool REV, int W, int WANT>
__device__ __forceinline__ void bd_walk_rows(const attnc_bwd_params &p, int c0, int nrows, int h, int v0, int warp,
                                             int lane, const unsigned char *stage, const unsigned char *dstage, elt *X,
                                             elt *Kt, elt *Y, float *g, float *fq, float *fk)
{
    constexpr int C = ATTNC_BP_C, PAIRS = REV && C % (4 * ATTNC_B_WARPS) == 0 ? 2 : 1;
    for (int pass = warp; pass < C; pass += 2 * PAIRS * ATTNC_B_WARPS) {
        bp_roles x[PAIRS][2];
        float dy[PAIRS][2][ATTNC_BP_NY(W)];   // reverse: the dO slice, read before the stores
#pragma unroll
        for (int pr = 0; pr < PAIRS; pr++) {
            bp_role_rows2<WANT>(p, c0, nrows, h, lane, pass + 2 * pr * ATTNC_B_WARPS, stage, x[pr]);
            if constexpr (REV)
                bp_dout_load2<W>(dstage, pass + 2 * pr * ATTNC_B_WARPS, v0, nrows, lane, dy[pr]);
        }
#pragma unroll
        for (int pr = 0; pr < PAIRS; pr++) {
            const int r0 = pass + 2 * pr * ATTNC_B_WARPS;
            bp_qk_tile_rows2<ATTNC_BP_K_STAGE, ATTNC_ROLE_K>(stage, x[pr], r0, nrows, REV ? Kt : X, lane, fk);
            if constexpr (REV) {
                bp_qk_tile_rows2<ATTNC_BP_Q_STAGE, ATTNC_ROLE_Q>(stage, x[pr], r0, nrows, X, lane, fq);
                bp_dout_store2<W>(dy[pr], Y, r0, lane);
            }
            bp_store_gates2(x[pr], r0, g, nullptr, lane);
        }
    }
}

// The reverse walk's P = (Q K^T) o D from the undecayed tiles X and Kt (hi, and lo with remainder tiles): its
// 16 x 16 blocks on and below the diagonal numbered row by row (block i: rows 16 mi, columns 16 nj <= mi, with
// i = mi (mi + 1) / 2 + nj) and dealt over 8 warps (warp: this one's index among them); g: the chunk-local sums
// b.  (Dealing the C / 16 x C / 16 blocks and skipping those above the diagonal gave the same bits, and a
// warp-specialised walk 10 % slower with this on its consumers: bench/RESULTS.md, forty-fourth session.)
__device__ __forceinline__ void bd_walk_scores(const elt *X, const elt *Kt, const float *g, elt *P, elt *Plo, int warp,
                                               int lane, const float *fq, const float *fk)
{
    constexpr int BLOCKS = ATTNC_BP_C / 16 * (ATTNC_BP_C / 16 + 1) / 2;
    for (int blk = warp; blk < BLOCKS; blk += ATTNC_B_WARPS) {
        int mi = 0;
        while ((mi + 1) * (mi + 2) / 2 <= blk)
            mi++;
        const int nj = blk - mi * (mi + 1) / 2;
        float ap[2][4];
        bp_zero<2>(ap);
        float fd[2][4];
        bp_pair_decay(g, mi, nj, lane, fd);
        bp_pair_rf(fq, fk, mi, nj, lane, fd);
        bp_mma<2, false, false>(ap, X, ATTNC_BP_LDK, mi * 16, Kt, ATTNC_BP_LDK, nj * 16, 0, ATTNC_BP_KP, lane);
#pragma unroll
        for (int nt = 0; nt < 2; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int r = bp_row(mi * 16, lane, i), j = bp_col(nj * 16, nt, lane, i);
                bd_put_split(P, Plo, r * ATTNC_BP_LDC + j, j <= r ? ap[nt][i] * fd[nt][i] : 0.f);
            }
    }
}

// A chunk's incoming state (a warp's rows m0 .., the accumulators) as an image (global: bp_img_store's 16-bit
// mantissas and row scales; and rounded into S [KP][W + 8] for the products), then decayed by fl = e^{b_L}.
template <int NT, int W>
__device__ __forceinline__ void bd_walk_image(unsigned char *img, elt *S, float (*acc)[4], float fl, int m0, int v0,
                                              int lane)
{
    bp_img_store<NT>(img, acc, m0, v0, lane);
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int i = 0; i < 4; i += 2) {
            const int d = bp_row(m0, lane, i), c = bp_col(v0, nt, lane, i);
            st2(S + d * (W + 8) + c - v0, acc[nt][i], acc[nt][i + 1]);
            acc[nt][i] *= fl;
            acc[nt][i + 1] *= fl;
        }
}

// The reverse walk's dU_hat = P^T dO + Kd dS_out, 16 rows and NTU n-tiles an item, the items dealt over NW warps
// (warp: this one's index among them), into Z negated (the update subtracts W^T dU_hat: W^T (-dU_hat), the same
// bits as (-W)^T dU_hat, rounding being symmetric), and into ws_dv where the adjoint reads it from there.
// Y: the dO slice, S: dS_out rounded, both of row stride W + 8; Kt: K undecayed.  With a decay, Kd dS_out is
// K dS_out with its rows scaled by e^{b_L - b} in fp32 (Kd is never rounded into a tile: the walk's chain has no
// pass that scales K), and P^T dO is accumulated onto it.
template <int W, int NTU, int NW>
__device__ __forceinline__ void bd_walk_duh(const attnc_bwd_params &p, const elt *P, const elt *Plo, const elt *Y,
                                            const elt *Kt, const elt *S, const float *g, elt *Z, int c0, int nrows,
                                            int h, int v0, int warp, int lane, const float *fk)
{
    constexpr int LDW = W + 8, NB = ATTNC_BP_C / 16, NGU = W / (8 * NTU);
    static_assert(W % (8 * NTU) == 0, "whole items");
    for (int item = warp; item < NB * NGU; item += NW) {
        const int r0 = item / NGU * 16, n0 = item % NGU * 8 * NTU;
        float a2[NTU][4];
        bp_zero<NTU>(a2);
        if constexpr (ATTNC_BP_GATED) {   // Kd dS_out first (its rows' factors), P^T dO onto it
            bp_mma<NTU, false, true>(a2, Kt, ATTNC_BP_LDK, r0, S, LDW, n0, 0, ATTNC_BP_KP, lane);
            const float bl = g[ATTNC_BP_C - 1];
            const int ra = bp_row(r0, lane, 0), rb = bp_row(r0, lane, 2);   // (raw rows: Kd's factors with the key's)
            const float f0 = bp_dec(bl - g[ra]) * bp_rf(fk, ra), f1 = bp_dec(bl - g[rb]) * bp_rf(fk, rb);
#pragma unroll
            for (int nt = 0; nt < NTU; nt++)
#pragma unroll
                for (int i = 0; i < 4; i++)
                    a2[nt][i] *= i < 2 ? f0 : f1;
        }
        bd_mma_split<NTU, true, true>(a2, P, Plo, ATTNC_BP_LDC, r0, Y, nullptr, LDW, n0, r0, ATTNC_BP_C, lane);
        if constexpr (!ATTNC_BP_GATED)   // (then K dS_out: the order the ungated walk has always summed in)
            bp_mma<NTU, false, true>(a2, Kt, ATTNC_BP_LDK, r0, S, LDW, n0, 0, ATTNC_BP_KP, lane);
#pragma unroll
        for (int nt = 0; nt < NTU; nt++)
#pragma unroll
            for (int i = 0; i < 4; i += 2) {
                const int r = bp_row(r0, lane, i), c = bp_col(n0, nt, lane, i);
                st2(Z + r * LDW + c, -a2[nt][i], -a2[nt][i + 1]);
            }
        if constexpr (ATTNC_BD_DUH16)   // the adjoint's dU_hat, formed here (passes/grad.c's bd_walk_duh)
#pragma unroll
            for (int nt = 0; nt < NTU; nt++)
#pragma unroll
                for (int i = 0; i < 4; i += 2) {
                    const int r = bp_row(r0, lane, i), c = v0 + bp_col(n0, nt, lane, i);
                    elt *const duh = (elt *)p.ws_dv + ((size_t)(c0 + r) * ATTNC_HOUT + h) * ATTNC_B_V + c;
                    if (r < nrows)
                        *reinterpret_cast<elt2 *>(duh) = attnc_float2_to_elt2(a2[nt][i], a2[nt][i + 1]);
                }
        else if constexpr (ATTNC_BD_WALK_DUH)
#pragma unroll
            for (int nt = 0; nt < NTU; nt++)
                bp_role_grad_frag<-1, ATTNC_DT_FP32, ATTNC_B_V>(p.ws_dv, nullptr, a2[nt], r0, v0 + n0, nt, lane, c0,
                                                                nrows, h);
    }
}

// W of the chunk in slot `slot` (ws_w, from attnc_bwdp_wy) into the tile dst [C][LDK] by cp.async, every thread of
// threads 0 .. 255 a share (committed by the caller).
__device__ __forceinline__ void bd_walk_copy_w(const attnc_bwd_params &p, int slot, int h, elt *dst)
{
    attnc_cp_rows<ATTNC_BP_C, ATTNC_BP_KP * (int)sizeof(elt) / 16, ATTNC_B_THREADS>(
        dst, ATTNC_BP_LDK * sizeof(elt), (const elt *)p.ws_w + bd_wtile(slot, h), ATTNC_BP_KP * sizeof(elt), true);
}

template <bool REV, int W, bool L2F = false>
__device__ __forceinline__ void bd_walk(const attnc_bwd_params &p)
{
    extern __shared__ __align__(128) unsigned char bsm[];
    using L = attnc_bd_walk_layout_w<W>;
    constexpr int C = ATTNC_BP_C, NT = W / 8, NB = C / 16, LDW = L::LDW;
    constexpr int NTU = ATTNC_BP_NT(W), NGU = W / (8 * NTU);   // U_hat, dU_hat items
    elt *X = (elt *)(bsm + L::x), *Kt = (elt *)(bsm + L::k), *Y = (elt *)(bsm + L::y);
    elt *Z = (elt *)(bsm + L::z), *P = (elt *)(bsm + L::p), *Plo = (elt *)(bsm + L::plo), *S = (elt *)(bsm + L::s);
    float *g = (float *)(bsm + L::g), *fq = (float *)(bsm + L::fq), *fk = (float *)(bsm + L::fk);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    // the chunk-local sums b: with a decay each warp scans the gates into a copy of its own, so that no barrier
    // waits for one warp's scan
    float *const b = ATTNC_BP_GATED ? (float *)(bsm + L::gw) + warp * C : g;
    const int n = blockIdx.x, h = blockIdx.y, v0 = blockIdx.z * W;
    unsigned char *stage = bsm + L::stage, *dstage = bsm + L::dstage;
    int bos, eos;
    attnc_seq_bounds(p.cu_seqlens, p.seqlen, n, bos, eos);
    const int m0 = warp * 16;
    const bool owner = m0 < ATTNC_BP_KP;   // this warp holds state rows m0 .. m0 + 15
    unsigned char *image = (unsigned char *)(REV ? p.ws_dso : p.ws_sin);
    float acc[NT][4];
    bp_walk_init<REV, NT>(p, acc, n, h, m0, v0, lane);
    // the roles formed through the value DAG: k (forward), q and k (reverse), those that are not bf16 inputs
    // as stored (those are copied from the staged rows)
    // (the forward walk runs only where the forward saved no states: ATTNC_ROLE_UNSAVED, no saved l2norm factors)
    constexpr int WANT = (ATTNC_BP_K_STAGE < 0 ? ATTNC_ROLE_K : 0) | (REV && ATTNC_BP_Q_STAGE < 0 ? ATTNC_ROLE_Q : 0) |
                         (REV ? 0 : ATTNC_ROLE_UNSAVED) | (L2F ? ATTNC_ROLE_L2F : 0);
    // the rows it copies: the reverse walk's q and k; the forward walk k with remainder tiles (Gated DeltaNet:
    // with every row it spilled 4 bytes on sm_90a, 8 on sm_80), else all (DeltaNet: with k alone its registers
    // grew by one to 255 and spilled 4 bytes, sm_90a; it runs only where the forward saved no states).  ptxas's
    // allocation at 255 registers, not a rule: tests/CMakeLists.txt's compile_grad_parallel.* watch both.
    constexpr unsigned SW =
        REV ? bp_stage_want(ATTNC_ROLE_K | ATTNC_ROLE_Q)
            : ATTNC_BP_PLO ? bp_stage_want(ATTNC_ROLE_K | ATTNC_ROLE_UNSAVED) : ATTNC_ROLES_ALL | ATTNC_ROLE_UNSAVED;
    const int nchunks = (eos - bos + C - 1) / C;
    // W of a chunk, copied (cp.async): the reverse walk copies the next chunk's into the other buffer under this
    // chunk's work (W2), the forward walk W and U at the chunk's start, under the roles' forming (it runs only
    // where the forward saved no states).  Copied by plain loads and stores after the roles, each walk step
    // waited for global memory with nothing else to do.
    auto wbuf = [&](int it) { return (elt *)(bsm + (REV && (it & 1) ? L::w2 : L::w)); };   // (no array: a stack frame)
    auto issue_w = [&](int it, elt *dst) { bd_walk_copy_w(p, bp_walk_c0<REV>(bos, nchunks, it) / C + n, h, dst); };
    attnc_bwd_stage_held held;   // the next chunk's rows of 2 bytes, loaded under this chunk's work
    if (nchunks > 0) {
        bp_walk_issue<REV, W, SW>(p, bp_walk_c0<REV>(bos, nchunks, 0), eos, h, v0, stage, dstage, &held);
        if constexpr (REV) {
            issue_w(0, wbuf(0));
            asm volatile("cp.async.commit_group;\n" ::: "memory");
        }
    }
    for (int it = 0; it < nchunks; it++) {
        const int c0 = bp_walk_c0<REV>(bos, nchunks, it), nrows = min(C, eos - c0);
        const int slot = c0 / C + n;
        elt *const Wt = wbuf(it);
        attnc_bwd_stage_held_land(stage, held);
        attnc_stage_wait();   // (and the reverse walk's W)
        __syncthreads();
        elt *u = (elt *)p.ws_u + bd_utile(slot, h) + v0;
        if constexpr (!REV) {
            issue_w(it, Wt);
            attnc_cp_rows<C, W * (int)sizeof(elt) / 16, ATTNC_B_THREADS>(Y, LDW * sizeof(elt), u, ATTNC_BP_VP * sizeof(elt), true);
            asm volatile("cp.async.commit_group;\n" ::: "memory");
        }
        bd_walk_rows<REV, W, WANT>(p, c0, nrows, h, v0, warp, lane, stage, dstage, X, Kt, Y, g, fq, fk);
        if constexpr (!REV)
            asm volatile("cp.async.wait_group 0;\n" ::: "memory");   // (W and U: nothing else is in flight)
        __syncthreads();
        if (it + 1 < nchunks) {   // the next chunk's rows (and W) arrive while this one is used
            bp_walk_issue<REV, W, SW>(p, bp_walk_c0<REV>(bos, nchunks, it + 1), eos, h, v0, stage, dstage, &held);
            if constexpr (REV) {   // into the buffer the previous chunk's update read, before the loop top's barrier
                issue_w(it + 1, wbuf(it + 1));
                asm volatile("cp.async.commit_group;\n" ::: "memory");
            }
        }
        if constexpr (ATTNC_BP_GATED) {   // (the raw gates are written again only after the loop top's barrier)
            bp_scan(g, b, lane);
            __syncwarp();
        }
        if constexpr (REV)   // P = (Q K^T) o D from the undecayed tiles (hi, lo)
            bd_walk_scores(X, Kt, b, P, Plo, warp, lane, fq, fk);
        else if constexpr (ATTNC_BP_GATED && !bp_walk_frag<false>())   // Kd = K e^{b_L - b}, rounded once more
            bp_scale_rows<true>(X, b, (int)threadIdx.x, fk);
        // this chunk's incoming state as an image, then its decay
        if (owner)
            bd_walk_image<NT, W>(image + bp_image(slot, h), S, acc, ATTNC_BP_GATED ? bp_dec(b[C - 1]) : 1.f, m0, v0,
                                 lane);
        __syncthreads();
        // forward: U_hat = U - W S_in over U (in Y, and in ws_u for the chunk kernel); reverse: dU_hat into Z, and
        // Qg = Q e^{b} for the update, P having read Q (16-bit tiles: in the update's fragments, bp_walk_product)
        if constexpr (REV) {
            bd_walk_duh<W, NTU, ATTNC_B_WARPS>(p, P, Plo, Y, Kt, S, b, Z, c0, nrows, h, v0, warp, lane, fk);
            if constexpr (ATTNC_BP_GATED && !bp_walk_frag<true>())
                bp_scale_rows<false>(X, b, (int)threadIdx.x, fq);
        } else {
            for (int item = warp; item < NB * NGU; item += ATTNC_B_WARPS) {
                const int r0 = item / NGU * 16, n0 = item % NGU * 8 * NTU;
                float a2[NTU][4];
                bp_zero<NTU>(a2);
                bp_mma<NTU, false, true>(a2, Wt, ATTNC_BP_LDK, r0, S, LDW, n0, 0, ATTNC_BP_KP, lane);
                bd_uhat_pairs<NTU>(
                    a2, r0, n0, lane, [&](int, int, int r, int c) { return attnc_elt_to_float(Y[r * LDW + c]); },
                    [&](int r, int c, float x0, float x1) {
                        st2(Y + r * LDW + c, x0, x1);
                        st2(u + (size_t)r * ATTNC_BP_VP + c, x0, x1);
                    });
            }
        }
        __syncthreads();
        // the update: S_out = e^{b_L} S_in + Kd^T U_hat, or dS_in = e^{b_L} dS_out + Qg^T dO - W^T dU_hat
        if (owner) {
            bp_walk_product<NT, REV>(acc, X, Y, LDW, b, m0, lane, REV ? fq : fk);
            if constexpr (REV)
                bp_mma<NT, true, true>(acc, Wt, ATTNC_BP_LDK, m0, Z, LDW, 0, 0, C, lane);
        }
        // (no barrier here: the next chunk's tiles are written only after the one at the loop's top, and the
        // held rows' landing before it writes only the staging, which no product reads)
    }
    if (REV)
        bp_walk_dh0<NT>(p, acc, n, h, m0, v0, lane);
}

// ---- the narrow reverse walk with its warps specialised (sm_90a) -----------------------------------------
// Why: the narrow reverse walk (few sequences and heads, T = 32768 on the benchmark's shape) runs each chunk as
// one chain over barriers at one CTA of 8 warps an SM and waits most of its cycles (ncu on an H100, DeltaNet:
// no eligible warp in 61 % of them; forming the q and k roles 26.5 % of the stall samples, bench/RESULTS.md
// forty-third session), though only the image, dU_hat and the update carry the state.  Here the CTA has two
// groups of 8 warps.  The producers (threads 0 .. 255, so that the staging and the copies, which count
// threadIdx.x from 0, run as in bd_walk) form chunk j + 1's rows (the q and k roles, the dO slice, the gates
// and their sums) into the other of two tile buffers and copy its W into a ring of two or three W tiles
// (ATTNC_BD_WALK_WS_WBUFS: with three, a chunk ahead), while the consumers (threads 256 .. 511, a warp per 16
// state rows) run chunk j's image, P, dU_hat (with Kd dS_out) and Qg, and the update.  P and the scaling sit with
// the consumers because the roles alone kept the producers the longer chain: with P on the producers the consumers
// waited for them in 16 % of all stall samples and the walk ran 2.13-2.15 / 3.16-3.23 ms (DeltaNet / the gated
// delta rule, H100, T = 32768) where the narrow walk took 2.19-2.20 / 3.17-3.29; with P on the consumers 2.10 /
// 2.57 (bench/RESULTS.md, forty-fourth session).  The same helpers in the same order: the same bits as
// attnc_bwdp_dstates_narrow (tools/cuda_cpu's CUDA_CPU_NARROW=ws compares them).
//
// Hand-over per tile buffer b (chunk j uses b = j % 2), by named barriers of all 512 threads:
//   FULL(b): the producers arrive when chunk j's rows are in b and its W in tile j % WBUFS; the consumers wait
//   there.
//   EMPTY(b): the consumers arrive when they are done with chunk j's tiles (except for the last two chunks,
//   whose buffers are not filled again); the producers wait there before filling b with chunk j + 2, and W's
//   tile of chunk j with chunk j + WBUFS's.
// S and Z (the consumers' own) are rewritten only after a consumer barrier that every reader of them has passed.
// setmaxnreg moves registers from the consumers (96: their state is a 16 x W slice) to the producers (160: the
// roles' rows side by side); ptxas reports no spill.
#if ATTNC_BD_WALK_WS
template <int W>
struct attnc_bd_walk_ws_layout_w {   // offsets in bytes
    static constexpr unsigned LDW = W + 8;
    // a tile buffer (two of them, from 0 and from buf)
    static constexpr unsigned x = 0;                                                     // Q (bp_walk_frag), else Qg [C][LDK]
    static constexpr unsigned k = x + ATTNC_BP_C * ATTNC_BP_LDK * sizeof(elt);            // K, then Kd
    static constexpr unsigned y = k + ATTNC_BP_C * ATTNC_BP_LDK * sizeof(elt);            // dO [C][LDW]
    static constexpr unsigned p = y + ATTNC_BP_C * LDW * sizeof(elt);                     // P hi, lo [C][LDC]
    static constexpr unsigned plo = p + ATTNC_BP_C * ATTNC_BP_LDC * sizeof(elt);
    static constexpr unsigned g = plo + (ATTNC_BP_PLO ? ATTNC_BP_C * ATTNC_BP_LDC * sizeof(elt) : 0);   // b [C]
    static constexpr unsigned fq = g + ATTNC_BP_C * 4, fk = fq + ATTNC_BP_C * 4;        // the factors (QK_RAW)
    static constexpr unsigned buf = fq + (ATTNC_BP_QK_RAW ? 2 * ATTNC_BP_C * 4 : 0);
    // W's ring (chunk j's in tile j % WBUFS), the consumers' tiles, then the producers' staging
    static constexpr unsigned WBUFS = ATTNC_BD_WALK_WS_WBUFS, wtile = ATTNC_BP_C * ATTNC_BP_LDK * sizeof(elt);
    static constexpr unsigned w = 2 * buf;
    static constexpr unsigned z = w + WBUFS * wtile;                                      // -dU_hat [C][LDW]
    static constexpr unsigned s = z + ATTNC_BP_C * LDW * sizeof(elt);                     // dS_out [KP][LDW]
    static constexpr unsigned stage = s + ATTNC_BP_KP * LDW * sizeof(elt);                // the chunk's input rows
    static constexpr unsigned dstage = stage + ATTNC_BP_STAGE_BYTES;                      // its dO [C][W]
    static constexpr unsigned bytes = dstage + ATTNC_BP_C * W * ATTNC_BP_DO_ES;
    static_assert(k % 16 == 0 && w % 16 == 0 && y % 16 == 0 && p % 16 == 0 && plo % 16 == 0 && buf % 16 == 0 &&
                  s % 16 == 0 && stage % 16 == 0 && dstage % 16 == 0 && LDW * sizeof(elt) % 16 == 0 &&
                  (WBUFS == 2 || WBUFS == 3), "16-byte tiles; two or three W tiles");
};
using attnc_bd_walk_ws_layout = attnc_bd_walk_ws_layout_w<ATTNC_BP_VS>;

enum { BD_WS_BAR_FULL = 1, BD_WS_BAR_EMPTY = 3, BD_WS_BAR_PRODUCERS = 5, BD_WS_BAR_CONSUMERS = 6 };
enum { BD_WS_THREADS = 2 * ATTNC_B_THREADS, BD_WS_CONSUMER_REGS = 96, BD_WS_PRODUCER_REGS = 256 - BD_WS_CONSUMER_REGS };

// The producers: chunk it's rows and gates into buffer it % 2, its W into the ring.
template <int W>
__device__ __forceinline__ void bd_walk_ws_produce(const attnc_bwd_params &p, unsigned char *bsm, int n, int h, int v0,
                                                   int bos, int eos, int nchunks)
{
    using L = attnc_bd_walk_ws_layout_w<W>;
    constexpr int C = ATTNC_BP_C;
    constexpr int WANT = (ATTNC_BP_K_STAGE < 0 ? ATTNC_ROLE_K : 0) | (ATTNC_BP_Q_STAGE < 0 ? ATTNC_ROLE_Q : 0);
    constexpr unsigned SW = bp_stage_want(ATTNC_ROLE_K | ATTNC_ROLE_Q);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    unsigned char *stage = bsm + L::stage, *dstage = bsm + L::dstage;
    // W of chunk j into tile j % WBUFS, AHEAD chunks before the chunk's turn: the tile's previous chunk, j - WBUFS,
    // is the one whose EMPTY the producers waited for at the top of iteration j - AHEAD
    constexpr int AHEAD = L::WBUFS - 2;
    auto issue_w = [&](int j) {
        bd_walk_copy_w(p, bp_walk_c0<true>(bos, nchunks, j) / C + n, h, (elt *)(bsm + L::w + j % L::WBUFS * L::wtile));
        asm volatile("cp.async.commit_group;\n" ::: "memory");
    };
    attnc_bwd_stage_held held;
    if (nchunks > 0)
        bp_walk_issue<true, W, SW>(p, bp_walk_c0<true>(bos, nchunks, 0), eos, h, v0, stage, dstage, &held);
    asm volatile("cp.async.commit_group;\n" ::: "memory");
    for (int j = 0; j < AHEAD && j < nchunks; j++)
        issue_w(j);
    for (int it = 0; it < nchunks; it++) {
        const int c0 = bp_walk_c0<true>(bos, nchunks, it), nrows = min(C, eos - c0), b = it & 1;
        unsigned char *const B = bsm + b * L::buf;
        elt *X = (elt *)(B + L::x), *Kt = (elt *)(B + L::k), *Y = (elt *)(B + L::y);
        float *g = (float *)(B + L::g), *fq = (float *)(B + L::fq), *fk = (float *)(B + L::fk);
        if (it >= 2)
            attnc_bar_named(BD_WS_BAR_EMPTY + b, BD_WS_THREADS);   // the consumers are done with chunk it - 2
        attnc_bwd_stage_held_land(stage, held);
        attnc_stage_wait();
        attnc_bar_named(BD_WS_BAR_PRODUCERS, ATTNC_B_THREADS);   // every producer's copies have landed (W's too)
        if (it + AHEAD < nchunks)
            issue_w(it + AHEAD);
        bd_walk_rows<true, W, WANT>(p, c0, nrows, h, v0, warp, lane, stage, dstage, X, Kt, Y, g, fq, fk);
        attnc_bar_named(BD_WS_BAR_PRODUCERS, ATTNC_B_THREADS);   // the staging read
        if (it + 1 < nchunks)
            bp_walk_issue<true, W, SW>(p, bp_walk_c0<true>(bos, nchunks, it + 1), eos, h, v0, stage, dstage, &held);
        asm volatile("cp.async.commit_group;\n" ::: "memory");
        if constexpr (ATTNC_BP_GATED) {
            if (warp == 0)
                bp_scan(g, g, lane);
            attnc_bar_named(BD_WS_BAR_PRODUCERS, ATTNC_B_THREADS);
        }
        if constexpr (AHEAD == 0)
            asm volatile("cp.async.wait_group 1;\n" ::: "memory");   // this chunk's W (the next one's rows may fly)
        attnc_bar_arrive(BD_WS_BAR_FULL + b, BD_WS_THREADS);
    }
}

// The consumers: the state's rows 16 cw .. (warp cw of 8); chunk it's image, P, dU_hat and Qg (in place, or in the
// update's fragments: bp_walk_product), and the update from buffer it % 2.
template <int W>
__device__ __forceinline__ void bd_walk_ws_consume(const attnc_bwd_params &p, unsigned char *bsm, int n, int h, int v0,
                                                   int bos, int eos, int nchunks)
{
    using L = attnc_bd_walk_ws_layout_w<W>;
    constexpr int C = ATTNC_BP_C, NT = W / 8, LDW = L::LDW;
    constexpr int NTU = W % 16 == 0 ? 2 : 1;   // dU_hat's items: 16 x 16, all 8 warps busy at W = 32
    const int lane = threadIdx.x & 31, cw = (threadIdx.x >> 5) - ATTNC_B_WARPS, m0 = cw * 16;
    const bool owner = m0 < ATTNC_BP_KP;
    elt *Z = (elt *)(bsm + L::z), *S = (elt *)(bsm + L::s);
    float acc[NT][4];
    bp_walk_init<true, NT>(p, acc, n, h, m0, v0, lane);
    for (int it = 0; it < nchunks; it++) {
        const int c0 = bp_walk_c0<true>(bos, nchunks, it), nrows = min(C, eos - c0), b = it & 1, slot = c0 / C + n;
        unsigned char *const B = bsm + b * L::buf;
        elt *X = (elt *)(B + L::x), *Kt = (elt *)(B + L::k), *Y = (elt *)(B + L::y), *P = (elt *)(B + L::p);
        elt *Plo = (elt *)(B + L::plo), *Wt = (elt *)(bsm + L::w + it % L::WBUFS * L::wtile);
        const float *g = (const float *)(B + L::g), *fq = (const float *)(B + L::fq), *fk = (const float *)(B + L::fk);
        attnc_bar_named(BD_WS_BAR_FULL + b, BD_WS_THREADS);
        if (owner)
            bd_walk_image<NT, W>((unsigned char *)p.ws_dso + bp_image(slot, h), S, acc,
                                 ATTNC_BP_GATED ? bp_dec(g[C - 1]) : 1.f, m0, v0, lane);
        bd_walk_scores(X, Kt, g, P, Plo, cw, lane, fq, fk);
        attnc_bar_named(BD_WS_BAR_CONSUMERS, ATTNC_B_THREADS);
        bd_walk_duh<W, NTU, ATTNC_B_WARPS>(p, P, Plo, Y, Kt, S, g, Z, c0, nrows, h, v0, cw, lane, fk);
        if constexpr (ATTNC_BP_GATED && !bp_walk_frag<true>())   // Qg for the update (P read Q undecayed)
            bp_scale_rows<false>(X, g, (int)threadIdx.x - ATTNC_B_THREADS, fq);
        attnc_bar_named(BD_WS_BAR_CONSUMERS, ATTNC_B_THREADS);
        if (owner) {
            bp_walk_product<NT, true>(acc, X, Y, LDW, g, m0, lane, fq);
            bp_mma<NT, true, true>(acc, Wt, ATTNC_BP_LDK, m0, Z, LDW, 0, 0, C, lane);
        }
        if (it + 2 < nchunks)
            attnc_bar_arrive(BD_WS_BAR_EMPTY + b, BD_WS_THREADS);
    }
    bp_walk_dh0<NT>(p, acc, n, h, m0, v0, lane);
}
#endif   // ATTNC_BD_WALK_WS

#if !ATTNC_BP_WIDE_PASS   // (the wide pass: the adjoint alone, codegen/cuda_bwd.c)
#if ATTNC_BWD_WANT(ATTNC_BK_P_STATES)
extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS, 1) attnc_bwdp_states(attnc_bwd_params p)
{
    bd_walk<false, ATTNC_BP_VW>(p);
}
#endif

#if ATTNC_BWD_WANT(ATTNC_BK_P_DSTATES)
extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS, 1) attnc_bwdp_dstates(attnc_bwd_params p)
{
    // the saved l2norm factors chosen once for the whole walk, two instantiations, not once per pair of rows in
    // its loop (whose rows' code that choice had duplicated): on an H200 at T = 8192 the gated delta rule's walk
    // 1.074 / 1.073 -> 0.989 / 0.983 ms (bench/RESULTS.md, fifty-fifth session); the same bits
    if (ATTNC_BP_NL2 > 0 && p.l2f)
        bd_walk<true, ATTNC_BP_VW, true>(p);
    else
        bd_walk<true, ATTNC_BP_VW>(p);
}
#endif

#if ATTNC_BP_VS != ATTNC_BP_VW
#if ATTNC_BWD_WANT(ATTNC_BK_P_STATES_NARROW)
extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS, 1) attnc_bwdp_states_narrow(attnc_bwd_params p)
{
    bd_walk<false, ATTNC_BP_VS>(p);
}
#endif

#if ATTNC_BWD_WANT(ATTNC_BK_P_DSTATES_NARROW)
extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS, 1) attnc_bwdp_dstates_narrow(attnc_bwd_params p)
{
    bd_walk<true, ATTNC_BP_VS>(p);
}
#endif

// (sm_90a only: setmaxnreg; api/backward.c takes attnc_bwdp_dstates_narrow where this one is not in the cubin)
#if ATTNC_BD_WALK_WS && ATTNC_BWD_WANT(ATTNC_BK_P_DSTATES_WS) &&                                                 \
    (!defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL))
extern "C" __global__ void __launch_bounds__(BD_WS_THREADS, 1) attnc_bwdp_dstates_ws(attnc_bwd_params p)
{
    extern __shared__ __align__(128) unsigned char bsm[];
    const int n = blockIdx.x, h = blockIdx.y, v0 = blockIdx.z * ATTNC_BP_VS;
    int bos, eos;
    attnc_seq_bounds(p.cu_seqlens, p.seqlen, n, bos, eos);
    const int nchunks = (eos - bos + ATTNC_BP_C - 1) / ATTNC_BP_C;
    if (threadIdx.x < ATTNC_B_THREADS) {
        attnc_regs_claim<BD_WS_PRODUCER_REGS>();
        bd_walk_ws_produce<ATTNC_BP_VS>(p, bsm, n, h, v0, bos, eos, nchunks);
    } else {
        attnc_regs_release<BD_WS_CONSUMER_REGS>();
        bd_walk_ws_consume<ATTNC_BP_VS>(p, bsm, n, h, v0, bos, eos, nchunks);
    }
}
#endif
#endif
#endif   // !ATTNC_BP_WIDE_PASS

// ---- attnc_bwdp_wy_adjoint: the WY form's adjoint, per chunk ---------------------------------------------
#if ATTNC_BD_ADJ2
// Two CTAs of 8 warps an SM (passes/grad.c's bd_adj_two: no remainder tiles; DeltaNet, gated_delta_rule), so that one
// CTA's loads run under the other's products: the kernel's stages are short and each waits at a barrier, and
// at one CTA of 16 warps no warp was eligible 63 % of the time (ncu, bench/RESULTS.md).  About half the
// shared memory of the layout below: no lo tiles; E not kept (formed again where dbeta's pair terms read it);
// dW held in the warps' accumulators over a barrier and stored over S_in's image, dT after it; X over V
// and F over dU_hat once those are read; the row sums Y_q . v_q and Z_q . k_q taken in the dT stage as
// sum_r T_rq (dU_hat_r . v_q) and sum_r T_rq (dW_r . k_q), from the products dT is formed of, so that V is
// not read after it.  With a gate, its pair terms beta_r dA_rj E_rj (fp32) lie after dW in the image's place,
// over dT, which X has read by then.
struct attnc_bd_adj_layout {   // offsets in bytes
    static constexpr unsigned CC = ATTNC_BP_C * ATTNC_BP_LDC * sizeof(elt);             // one C x C tile
    static constexpr unsigned CK = ATTNC_BP_C * ATTNC_BP_LDK * sizeof(elt), CV = ATTNC_BP_C * ATTNC_BP_LDV * sizeof(elt);
    static constexpr unsigned NB = ATTNC_BP_C / 16;
    static constexpr unsigned k = 0;                                                     // K [C][LDK]
    static constexpr unsigned v = k + CK;                                                // V [C][LDV], then X [C][LDC]
    static constexpr unsigned g = v + CV;                                                // b [C]
    static constexpr unsigned beta = g + ATTNC_BP_C * 4;                                  // beta [C]
    static constexpr unsigned t = beta + ATTNC_BP_C * 4;                                  // the l2norm's row sums [2 KP/16][C]
    static constexpr unsigned red = t + 2 * (ATTNC_BP_KP / 16) * ATTNC_BP_C * 4;          // y, z, pair parts [NB][C] each
    static constexpr unsigned red_y = red, red_z = red_y + NB * ATTNC_BP_C * 4, red_p = red_z + NB * ATTNC_BP_C * 4;
    static constexpr unsigned th = red_p + NB * ATTNC_BP_C * 4;                           // T [C][LDC]
    // one region: first the staged input rows, then S_in's image, then dW [C][LDK] and dT [C][LDC] over it
    static constexpr unsigned s = th + CC;                                               // S_in [KP][LDV]
    static constexpr unsigned duh = s + ATTNC_BP_KP * ATTNC_BP_LDV * sizeof(elt);         // dU_hat [C][LDV], then F [C][LDC]
    static constexpr unsigned dwh = s, dth = s + CK, xh = v, fh = duh;
    static constexpr unsigned e = dth;                                                   // the gate's pair terms [C][LDF]
    static constexpr unsigned tl = th, dtl = dth, dul = duh, dwl = dwh, xl = xh, fl = fh;   // (none: no lo tiles)
    static constexpr unsigned stage = s;
    static constexpr unsigned end_a = duh + CV, end_b = stage + ATTNC_BP_STAGE_BYTES;
    static constexpr unsigned bytes = end_a > end_b ? end_a : end_b;
    static constexpr unsigned fk = bytes;   // (no raw rows: those come with remainder tiles)
};
static_assert(!ATTNC_BP_PLO && attnc_bd_adj_layout::CK + attnc_bd_adj_layout::CC <= attnc_bd_adj_layout::duh - attnc_bd_adj_layout::s &&
                  attnc_bd_adj_layout::CC <= attnc_bd_adj_layout::CV &&
                  (!ATTNC_BP_GATED || attnc_bd_adj_layout::e + ATTNC_BP_C * ATTNC_BD_LDF * 4 <= attnc_bd_adj_layout::duh),
              "the two-CTA adjoint: hi tiles; dW and dT (or the gate's pair terms) within the image's place, X and F "
              "within V's and dU_hat's");
#else
struct attnc_bd_adj_layout {   // offsets in bytes
    static constexpr unsigned CC = ATTNC_BP_C * ATTNC_BP_LDC * sizeof(elt);             // one C x C tile
    static constexpr unsigned k = 0;                                                     // K [C][LDK]
    static constexpr unsigned v = k + ATTNC_BP_C * ATTNC_BP_LDK * sizeof(elt);            // V [C][LDV]
    static constexpr unsigned g = v + ATTNC_BP_C * ATTNC_BP_LDV * sizeof(elt);            // b [C]
    static constexpr unsigned beta = g + ATTNC_BP_C * 4;                                  // beta [C]
    static constexpr unsigned e = beta + ATTNC_BP_C * 4;                                  // E, then the gate's pair terms
    static constexpr unsigned t = e + ATTNC_BP_C * ATTNC_BD_LDF * 4;                      // fp32 scratch (the l2norm's row sums)
    static constexpr unsigned th = t + ATTNC_BP_C * ATTNC_BD_LDF * 4;                     // T hi, lo [C][LDC]
    static constexpr unsigned tl = th + CC;
    static constexpr unsigned dth = tl + CC;                                              // dT hi, lo
    static constexpr unsigned dtl = dth + CC;
    static constexpr unsigned red = dtl + CC;                                             // row sums [8][C] x 2, [4][C]
    static constexpr unsigned red_y = red, red_z = red_y + 8 * ATTNC_BP_C * 4, red_p = red_z + 8 * ATTNC_BP_C * 4;
    // one region: first the staged input rows, then S_in's image, dU_hat and dW (hi, lo);
    // X = T^T dT (hi, lo) over the image once dW is formed, F (hi, lo) over dU_hat once dT and Y are, each
    // where it fits (K >= C, V >= C), else after the region (passes/grad.c's grad_bd_adj_smem: the same sums)
    static constexpr unsigned s = red + 20 * ATTNC_BP_C * 4;                              // S_in [KP][LDV]
    static constexpr unsigned duh = s + ATTNC_BP_KP * ATTNC_BP_LDV * sizeof(elt);         // dU_hat hi, lo [C][LDV]
    static constexpr unsigned dul = duh + ATTNC_BP_C * ATTNC_BP_LDV * sizeof(elt);
    static constexpr unsigned dwh = dul + ATTNC_BP_C * ATTNC_BP_LDV * sizeof(elt);        // dW hi, lo [C][LDK]
    static constexpr unsigned dwl = dwh + ATTNC_BP_C * ATTNC_BP_LDK * sizeof(elt);
    static constexpr unsigned end0 = dwl + ATTNC_BP_C * ATTNC_BP_LDK * sizeof(elt);
    static constexpr bool x_in_s = 2 * CC <= duh - s, f_in_du = 2 * CC <= dwh - duh;
    static constexpr unsigned xh = x_in_s ? s : end0, xl = xh + CC;
    static constexpr unsigned fh = f_in_du ? duh : end0 + (x_in_s ? 0 : 2 * CC), fl = fh + CC;
    static constexpr unsigned stage = s;
    static constexpr unsigned end_a = end0 + (x_in_s ? 0 : 2 * CC) + (f_in_du ? 0 : 2 * CC);
    static constexpr unsigned end_b = stage + ATTNC_BP_STAGE_BYTES;
    static constexpr unsigned fk = end_a > end_b ? end_a : end_b;                         // the key's factors (QK_RAW)
    static constexpr unsigned bytes = fk + (ATTNC_BP_QK_RAW ? ATTNC_BP_C * 4 : 0);
};
#endif
static_assert(attnc_bd_adj_layout::v % 16 == 0 && attnc_bd_adj_layout::e % 16 == 0 && attnc_bd_adj_layout::th % 16 == 0 &&
              attnc_bd_adj_layout::CC % 16 == 0 && attnc_bd_adj_layout::s % 16 == 0 && attnc_bd_adj_layout::duh % 16 == 0 &&
              attnc_bd_adj_layout::dul % 16 == 0 && attnc_bd_adj_layout::dwh % 16 == 0 && attnc_bd_adj_layout::dwl % 16 == 0 &&
              attnc_bd_adj_layout::xh % 16 == 0 && attnc_bd_adj_layout::fh % 16 == 0,
              "16-byte tiles");

// Row sums of an accumulator's products with a tile's rows: per 16-row item and column group cg, the quad
// sums of acc_rc * X_rc into red[cg * C + r].
template <int NT>
__device__ __forceinline__ void bd_row_dots(const float (*acc)[4], const elt *X, int ldx, int m0, int n0, int cg, float *red,
                                            int lane)
{
    float part[2] = {0.f, 0.f};
    bp_row_dots<NT>(acc, X, ldx, m0, n0, part, lane);
    bp_quad_parts(part, red + cg * ATTNC_BP_C, m0, lane);
}

// The two-CTA adjoint's column sums (y and z of its dT stage): for a 16 x 16 block of a1_rq = dU_hat_r . v_q
// and a2_rq = dW_r . k_q (rows r0.., columns q0..), sum_r T_rq a1_rq and sum_r T_rq a2_rq (T_rq for q <= r)
// per column q into ry[q], rz[q] (bp_column_sums of the weighted terms).
__device__ __forceinline__ void bd_column_parts(const float (*a1)[4], const float (*a2)[4], const elt *Th, int r0, int q0, float *ry,
                                                float *rz, int lane)
{
    float y[2][4], z[2][4];
#pragma unroll
    for (int nt = 0; nt < 2; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int r = bp_row(r0, lane, i), q = bp_col(q0, nt, lane, i);
            const float t = q <= r ? attnc_elt_to_float(Th[r * ATTNC_BP_LDC + q]) : 0.f;
            y[nt][i] = t * a1[nt][i];
            z[nt][i] = t * a2[nt][i];
        }
    bp_column_sums<2>(y, ry, q0, lane);
    bp_column_sums<2>(z, rz, q0, lane);
}

#if ATTNC_BP_WIDE_PASS == ATTNC_BD_WIDE_ADJ   // the unit's one adjoint: 8 warps, or 16 in the wide pass
#if ATTNC_BWD_WANT(ATTNC_BK_P_WY_ADJOINT)
// Two of the compact layout's CTAs share an SM only where it has 228 KB of shared memory (sm_90 and later);
// on sm_80's 164 KB one CTA runs alone, so asking ptxas for two there would only cap its registers at 128
// and spill.
#if ATTNC_BD_ADJ2 && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define ATTNC_BD_ADJ_CTAS 2
#else
#define ATTNC_BD_ADJ_CTAS 1
#endif
extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS, ATTNC_BD_ADJ_CTAS) attnc_bwdp_wy_adjoint(attnc_bwd_params p)
{
    extern __shared__ __align__(128) unsigned char bsm[];
    using L = attnc_bd_adj_layout;
    constexpr bool TWO = ATTNC_BD_ADJ2;   // the two-CTA form (its layout's comment)
    static_assert(!ATTNC_BP_QK_RAW || (!TWO && ATTNC_BP_GATED), "raw rows: remainder tiles (not the compact form), a decay");
    constexpr int C = ATTNC_BP_C, LDF = ATTNC_BD_LDF, NB = C / 16;
    constexpr int NTK = ATTNC_BP_NT(ATTNC_BP_KP), NGK = ATTNC_BP_KP / (8 * NTK);
    constexpr int NTV = ATTNC_BP_NT(ATTNC_BP_VP), NGV = ATTNC_BP_VP / (8 * NTV);
    static_assert(NGK <= 8 && NGV <= 8, "column groups of the row sums");
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int slot = blockIdx.x, h = blockIdx.y;
    int n, c0, eos;
    if (!bp_slot_chunk(p, slot, n, c0, eos))
        return;
    const int nrows = min(C, eos - c0);
    elt *K = (elt *)(bsm + L::k), *V = (elt *)(bsm + L::v), *S = (elt *)(bsm + L::s);
    elt *Th = (elt *)(bsm + L::th), *Tl = (elt *)(bsm + L::tl), *DUh = (elt *)(bsm + L::duh), *DUl = (elt *)(bsm + L::dul);
    elt *DWh = (elt *)(bsm + L::dwh), *DWl = (elt *)(bsm + L::dwl), *Fh = (elt *)(bsm + L::fh), *Fl = (elt *)(bsm + L::fl);
    elt *dTh = (elt *)(bsm + L::dth), *dTl = (elt *)(bsm + L::dtl), *Xh = (elt *)(bsm + L::xh), *Xl = (elt *)(bsm + L::xl);
    float *g = (float *)(bsm + L::g), *beta = (float *)(bsm + L::beta), *E = (float *)(bsm + L::e), *T = (float *)(bsm + L::t);
    float *red_y = (float *)(bsm + L::red_y), *red_z = (float *)(bsm + L::red_z), *red_p = (float *)(bsm + L::red_p);
    float *fk = (float *)(bsm + L::fk);   // (ATTNC_BP_QK_RAW)
    const unsigned char *img_in = (const unsigned char *)p.ws_sin + bp_image(slot, h);

    attnc_bwd_stage_issue<true, bp_stage_want(ATTNC_ROLE_K | ATTNC_ROLE_V)>(p, c0, eos, h, bsm + L::stage);   // (no q rows)
    {   // T's tiles as attnc_bwdp_wy saved them, copied with the staged rows (bd_rows_kv waits for both)
        const elt *tg = (const elt *)p.ws_t + bd_ttile(slot, h);
        constexpr int UNITS = C * (int)sizeof(elt) / 16;
        attnc_cp_rows<C, UNITS, ATTNC_B_THREADS>(Th, ATTNC_BP_LDC * sizeof(elt), tg, C * sizeof(elt), true);
        if constexpr (ATTNC_BP_PLO)
            attnc_cp_rows<C, UNITS, ATTNC_B_THREADS>(Tl, ATTNC_BP_LDC * sizeof(elt), tg + C * C, C * sizeof(elt), true);
        asm volatile("cp.async.commit_group;\n" ::: "memory");
    }
    bp_img_regs img;   // S_in's image: its loads issued now, under the rows and E, and waited for after them
    bp_image_issue(img_in, img);
    bd_rows_kv<true>(p, c0, nrows, h, K, V, g, beta, bsm + L::stage, fk);
    if constexpr (!TWO)
        bd_form_e(K, g, E, fk);   // E for dbeta's and the gate's pair terms
    // S_in's image and dU_hat (the chunk kernel's dv, hi, lo) over the staged rows
    bp_image_finish<false, false>(img, S, nullptr);   // hi only: no room for a lo tile here
    if constexpr (ATTNC_BD_DUH16) {   // the walk's rows as they are (cp.async; issued before the finish, they spilled)
        attnc_cp_rows_zfill<C, ATTNC_B_V * (int)sizeof(elt) / 16, ATTNC_B_THREADS>(
            DUh, ATTNC_BP_LDV * sizeof(elt), (const elt *)p.ws_dv + ((size_t)c0 * ATTNC_HOUT + h) * ATTNC_B_V,
            ATTNC_HOUT * ATTNC_B_V * sizeof(elt), nrows);
        attnc_stage_wait();
    } else {   // every load issued before the first is used: 16 bytes each where the rows allow
        constexpr int PER = ATTNC_B_V % 4 == 0 ? 4 : 1, ROW = ATTNC_BP_VP / PER;
        constexpr int N = (C * ROW + ATTNC_B_THREADS - 1) / ATTNC_B_THREADS;
        float x[N][PER];
#pragma unroll
        for (int it = 0; it < N; it++) {
            const int i = tid + it * ATTNC_B_THREADS, r = i / ROW, c = i % ROW * PER;
            const float *src = p.ws_dv + ((size_t)(c0 + r) * ATTNC_HOUT + h) * ATTNC_B_V + c;
            const bool in = i < C * ROW && r < nrows && c < ATTNC_B_V;
            if constexpr (PER == 4) {
                const float4 y = in ? *reinterpret_cast<const float4 *>(src) : make_float4(0.f, 0.f, 0.f, 0.f);
                x[it][0] = y.x, x[it][1] = y.y, x[it][2] = y.z, x[it][3] = y.w;
            } else {
                x[it][0] = in ? *src : 0.f;
            }
        }
#pragma unroll
        for (int it = 0; it < N; it++) {
            const int i = tid + it * ATTNC_B_THREADS, r = i / ROW, c = i % ROW * PER;
            if (i < C * ROW)
#pragma unroll
                for (int e = 0; e < PER; e++) {
                    bd_put_split(DUh, DUl, r * ATTNC_BP_LDV + c + e, x[it][e]);
                }
        }
    }
    __syncthreads();
    // dW = -dU_hat S_in^T (hi, lo); the two-CTA form holds it over a barrier and stores it over the image
    if constexpr (TWO) {
        constexpr int NI = (NB * NGK + ATTNC_B_WARPS - 1) / ATTNC_B_WARPS;
        float acc[NI][NTK][4];
#pragma unroll
        for (int it = 0; it < NI; it++) {
            const int item = warp + it * ATTNC_B_WARPS;
            bp_zero<NTK>(acc[it]);
            if (item < NB * NGK)
                bp_mma<NTK, false, false>(acc[it], DUh, ATTNC_BP_LDV, item / NGK * 16, S, ATTNC_BP_LDV, item % NGK * 8 * NTK, 0,
                                          ATTNC_BP_VP, lane);
        }
        __syncthreads();   // every warp has read the image
#pragma unroll
        for (int it = 0; it < NI; it++) {
            const int item = warp + it * ATTNC_B_WARPS;
            if (item < NB * NGK)
#pragma unroll
                for (int nt = 0; nt < NTK; nt++)
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        const int r = bp_row(item / NGK * 16, lane, i), c = bp_col(item % NGK * 8 * NTK, nt, lane, i);
                        bd_put_split(DWh, DWl, r * ATTNC_BP_LDK + c, -acc[it][nt][i]);
                    }
        }
    } else {
        for (int item = warp; item < NB * NGK; item += ATTNC_B_WARPS) {
            const int m0 = item / NGK * 16, n0 = item % NGK * 8 * NTK;
            float acc[NTK][4];
            bp_zero<NTK>(acc);
            bd_mma_split<NTK, false, false>(acc, DUh, DUl, ATTNC_BP_LDV, m0, S, nullptr, ATTNC_BP_LDV, n0, 0, ATTNC_BP_VP, lane);
#pragma unroll
            for (int nt = 0; nt < NTK; nt++)
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    const int r = bp_row(m0, lane, i), c = bp_col(n0, nt, lane, i);
                    bd_put_split(DWh, DWl, r * ATTNC_BP_LDK + c, -acc[nt][i]);
                }
        }
    }
    __syncthreads();
    // dT_rq = beta_q (dU_hat_r . v_q + e^{b_q} dW_r . k_q), q <= r; in the two-CTA form also the parts of
    // y_q = Y_q . v_q = sum_r T_rq (dU_hat_r . v_q) and z_q = Z_q . k_q = sum_r T_rq (dW_r . k_q) over this
    // item's rows, per column (every (block row, column) written: zero above the diagonal)
    for (int item = warp; item < NB * NB; item += ATTNC_B_WARPS) {
        const int mi = item / NB, nj = item % NB;
        float a1[2][4], a2[2][4];
        bp_zero<2>(a1);
        bp_zero<2>(a2);
        if (nj <= mi) {
            bd_mma_split<2, false, false>(a1, DUh, DUl, ATTNC_BP_LDV, mi * 16, V, nullptr, ATTNC_BP_LDV, nj * 16, 0, ATTNC_BP_VP, lane);
            bd_mma_split<2, false, false>(a2, DWh, DWl, ATTNC_BP_LDK, mi * 16, K, nullptr, ATTNC_BP_LDK, nj * 16, 0, ATTNC_BP_KP, lane);
        }
        // (a lane's four columns' factors before the stores: after them the compiler cannot know g unchanged, and
        // formed each element's again, the same for rows r and r + 8)
        float ebq[2][2];
#pragma unroll
        for (int nt = 0; nt < 2; nt++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int q = bp_col(nj * 16, nt, lane, e);
                ebq[nt][e] = bp_dec(g[q]) * bp_rf(fk, q);   // (raw rows: dW_r . k_q from the raw row)
            }
#pragma unroll
        for (int nt = 0; nt < 2; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int r = bp_row(mi * 16, lane, i), q = bp_col(nj * 16, nt, lane, i);
                bd_put_split(dTh, dTl, r * ATTNC_BP_LDC + q, q <= r ? beta[q] * (a1[nt][i] + ebq[nt][i & 1] * a2[nt][i]) : 0.f);
            }
        if constexpr (TWO)
            bd_column_parts(a1, a2, Th, mi * 16, nj * 16, red_y + mi * C, red_z + mi * C, lane);
    }
    __syncthreads();
    // Y = T^T dU_hat: dv = diag(beta) Y over the chunk kernel's dU_hat, or into the value tensor's gradient
    // where the role is that tensor (ATTNC_BP_DV_TENSOR; null: not wanted), and the row sums Y_q . v_q
    void *const dv_direct = bp_direct<ATTNC_BP_DV_TENSOR>(p);
    for (int item = warp; item < NB * NGV; item += ATTNC_B_WARPS) {
        const int m0 = item / NGV * 16, cg = item % NGV, n0 = cg * 8 * NTV;
        float acc[NTV][4];
        bp_zero<NTV>(acc);
        bd_mma_split<NTV, true, true>(acc, Th, Tl, ATTNC_BP_LDC, m0, DUh, DUl, ATTNC_BP_LDV, n0, m0, C, lane);
        if constexpr (!TWO)
            bd_row_dots<NTV>(acc, V, ATTNC_BP_LDV, m0, n0, cg, red_y, lane);
#pragma unroll
        for (int nt = 0; nt < NTV; nt++) {
#pragma unroll
            for (int i = 0; i < 4; i++)
                acc[nt][i] *= beta[bp_row(m0, lane, i)];
            bp_role_grad_frag<ATTNC_BP_DV_TENSOR, ATTNC_BP_DV_DTYPE, ATTNC_B_V>(p.ws_dv, dv_direct, acc[nt], m0, n0, nt,
                                                                               lane, c0, nrows, h);
        }
    }
    // X = T^T dT: X_rq = sum_{i >= max(r, q)} T_ir dT_iq (hi, lo), over the image (dW is formed; Y does not read it),
    // in the two-CTA form over V (read by dT alone there)
    for (int item = warp; item < NB * NB; item += ATTNC_B_WARPS) {
        const int m0 = item / NB * 16, n0 = item % NB * 16;
        float acc[2][4];
        bp_zero<2>(acc);
        const int k0 = m0 > n0 ? m0 : n0;
        bd_mma_split<2, true, true>(acc, Th, Tl, ATTNC_BP_LDC, m0, dTh, dTl, ATTNC_BP_LDC, n0, k0, C, lane);
#pragma unroll
        for (int nt = 0; nt < 2; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int r = bp_row(m0, lane, i), q = bp_col(n0, nt, lane, i);
                bd_put_split(Xh, Xl, r * ATTNC_BP_LDC + q, acc[nt][i]);
            }
    }
    __syncthreads();
    // dA_rj = -sum_{q <= j} X_rq T_jq (j < r), in the epilogue: F_rj = beta_r dA_rj e^{b_r - b_j} (hi, lo) over
    // dU_hat, the pair part of dbeta (sum_j dA_rj E_rj, per block column) and the gate's pair terms
    // X_rj = beta_r dA_rj E_rj: over E, or in the two-CTA form (which forms its block of E here: bd_e_elem, as
    // bd_form_e) only their column sums per block row, colbelow_j's parts, over E's place (the tail's d_t:
    // rowleft_t = beta_t sum_j dA_tj E_tj is dbeta's pair part times beta_t).  Storing X and summing it again in
    // the tail, a thread per (token, quarter) and a branch a term, was 4.9 % of the gated delta rule's adjoint in
    // ncu (H100, forty-eighth session).
    float *const colp = E;   // [NB][C] (two-CTA, gated)
    for (int item = warp; item < NB * NB; item += ATTNC_B_WARPS) {
        const int mi = item / NB, nj = item % NB;
        float acc[2][4], ek[2][4];
        bp_zero<2>(acc);
        bp_zero<2>(ek);
        if (nj <= mi) {
            bd_mma_split<2, false, false>(acc, Xh, Xl, ATTNC_BP_LDC, mi * 16, Th, Tl, ATTNC_BP_LDC, nj * 16, 0, nj * 16 + 16, lane);
            if constexpr (TWO)
                bp_mma<2, false, false>(ek, K, ATTNC_BP_LDK, mi * 16, K, ATTNC_BP_LDK, nj * 16, 0, ATTNC_BP_KP, lane);
        }
        float part[2] = {0.f, 0.f}, gpair[2][4];   // (the gate's pair terms X_rj)
        float fd[2][4];   // (F's and E's factors: once, before F's store; see dT's above)
        bp_pair_decay(g, mi, nj, lane, fd);
        if constexpr (!TWO)   // (raw rows: F' = diag(f) F diag(f), read both ways by dk's products; E has its own)
            bp_pair_rf(fk, fk, mi, nj, lane, fd);
#pragma unroll
        for (int nt = 0; nt < 2; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int r = bp_row(mi * 16, lane, i), j = bp_col(nj * 16, nt, lane, i);
                const float da = j < r ? -acc[nt][i] : 0.f;
                const float dec = fd[nt][i];
                bd_put_split(Fh, Fl, r * ATTNC_BP_LDC + j, beta[r] * da * dec);
                if constexpr (TWO) {
                    const float t = da * (j < r ? ek[nt][i] * dec : 0.f);   // (bd_e_elem's E_rj)
                    part[i >> 1] += t;
                    gpair[nt][i] = beta[r] * t;
                } else {
                    const float t = da * E[r * LDF + j];
                    part[i >> 1] += t;
                    E[r * LDF + j] = beta[r] * t;
                }
            }
        bp_quad_parts(part, red_p + nj * C, mi * 16, lane);
        if constexpr (TWO && ATTNC_BP_GATED)
            bp_column_sums<2>(gpair, colp + mi * C, nj * 16, lane);
    }
    __syncthreads();
    // dk += diag(beta e^{b}) Z + F K + F^T K, Z = T^T dW (and its row sums Z_q . k_q): the key role's gradient,
    // over the chunk kernel's in ws_dk, or into the key tensor's gradient where the role is that tensor
    // (ATTNC_BP_DK_TENSOR; null: not wanted), or its l2norm (ATTNC_BP_DK_L2: a warp's items and their raw rows
    // held over the next barrier, their rows' sums over the column groups meeting in T's fp32 place, which no
    // one reads any more)
    void *const dk_direct = bp_direct<ATTNC_BP_DK_TENSOR>(p);
    static_assert(!ATTNC_BP_DK_L2 || 2 * NGK <= (TWO ? 2 * (ATTNC_BP_KP / 16) : LDF), "the l2norm's row sums in T's place");
    auto dk_item = [&](int item, float (*acc)[4]) {
        const int m0 = item / NGK * 16, cg = item % NGK, n0 = cg * 8 * NTK;
        // the chunk kernel's dk in fp32, loaded before the products so that they cover the latency: a pair of
        // adjacent columns a load where K is even (8 bytes, aligned: the pair's first column is even); compact
        // (ATTNC_BD_DK16), loaded after them (bd_dk16_fetch)
        float old[NTK][4];   // (one of old and raw is used: the other takes no register)
        bd_dk16_raw<NTK> raw;
        if constexpr (!ATTNC_BD_DK16) {
#pragma unroll
            for (int nt = 0; nt < NTK; nt++)
#pragma unroll
                for (int i = 0; i < 4; i += 2) {
                    const int q = bp_row(m0, lane, i), c = bp_col(n0, nt, lane, i);
                    const float *src = p.ws_dk + ((size_t)(c0 + q) * ATTNC_HOUT + h) * ATTNC_B_K + c;
                    if constexpr (ATTNC_B_K % 2 == 0) {
                        const float2 x = q < nrows && c < ATTNC_B_K ? *reinterpret_cast<const float2 *>(src) : make_float2(0.f, 0.f);
                        old[nt][i] = x.x, old[nt][i + 1] = x.y;
                    } else {
#pragma unroll
                        for (int k = 0; k < 2; k++)
                            old[nt][i + k] = q < nrows && c + k < ATTNC_B_K ? src[k] : 0.f;
                    }
                }
        }
        bp_zero<NTK>(acc);
        bd_mma_split<NTK, true, true>(acc, Th, Tl, ATTNC_BP_LDC, m0, DWh, DWl, ATTNC_BP_LDK, n0, m0, C, lane);
        if constexpr (!TWO)
            bd_row_dots<NTK>(acc, K, ATTNC_BP_LDK, m0, n0, cg, red_z, lane);
#pragma unroll
        for (int nt = 0; nt < NTK; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int q = bp_row(m0, lane, i);
                // (raw rows: f_q dk, as F' K gives and as the chunk kernel's dk is; bp_role_grad_items)
                acc[nt][i] *= beta[q] * bp_dec(g[q]) * bp_rf(fk, q);
            }
        bd_mma_split<NTK, false, true>(acc, Fh, Fl, ATTNC_BP_LDC, m0, K, nullptr, ATTNC_BP_LDK, n0, 0, m0 + 16, lane);
        bd_mma_split<NTK, true, true>(acc, Fh, Fl, ATTNC_BP_LDC, m0, K, nullptr, ATTNC_BP_LDK, n0, m0, C, lane);
        if constexpr (ATTNC_BD_DK16)   // (late: no registers held over the products; the other CTA covers the loads)
            bd_dk16_fetch<NTK>(p.ws_dk, m0, n0, lane, c0, nrows, h, raw);
#pragma unroll
        for (int nt = 0; nt < NTK; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++)
                acc[nt][i] += ATTNC_BD_DK16 ? bd_dk16_value(raw, nt, i) : old[nt][i];
    };
    bp_role_grad_items<NTK, NGK, NB * NGK, ATTNC_BP_DK_L2, ATTNC_BP_DK_TENSOR, ATTNC_BP_DK_DTYPE, ATTNC_B_K>(
        p, dk_item, p.ws_dk, dk_direct, ATTNC_BP_DK_SCALE, T, warp, lane, c0, nrows, h);
    // dbeta (with the pair part sum_j dA_rj E_rj), and the gate's WY terms: G_r = beta_r e^{b_r} (k_r . Z_r) for
    // every s <= r, and the pairs, R_s = sum_{j < s <= r} beta_r dA_rj E_rj (its rows past nrows are zero, beta
    // being zero there) as in the chunk kernel's tail: the prefix sum of d_t = colbelow_t - rowleft_t (from the
    // column sums and dbeta's pair part in the two-CTA form, else bp_pair_diff_parts over E), then one warp's
    // scans (the row prefixes and each token's sum over r >= s were two chains of up to C steps before)
    if (tid < C) {
        float y = 0.f, z = 0.f, pair = 0.f;
        for (int cg = 0; cg < (TWO ? NB : NGV); cg++)   // (two-CTA: per block row)
            y += red_y[cg * C + tid];
        for (int cg = 0; cg < (TWO ? NB : NGK); cg++)
            z += red_z[cg * C + tid];
        for (int nj = 0; nj < NB; nj++)
            pair += red_p[nj * C + tid];
        z *= bp_rf(fk, tid);   // (raw rows: Z_q . k_q from the raw row)
        const float eb = bp_dec(g[tid]);
        if (tid < nrows)
            p.ws_db[(size_t)(c0 + tid) * ATTNC_HOUT + h] = y + eb * z + pair;
        red_y[tid] = beta[tid] * eb * z;   // G_r (the row sums are read)
        if constexpr (TWO && ATTNC_BP_GATED) {   // d_t over this token's own row sums (the others' are not its)
            float below = 0.f;
            for (int mi = 0; mi < NB; mi++)
                below += colp[mi * C + tid];
            red_z[tid] = below - beta[tid] * pair;
        }
    }
    if constexpr (ATTNC_BP_GATED) {
        constexpr int RED = TWO ? NB : 8;   // red_z's floats, in C's
        constexpr int P = ATTNC_B_THREADS / C < RED ? ATTNC_B_THREADS / C : RED;
        __syncthreads();   // red_z's row sums read, G_r in red_y (two-CTA: d_t in red_z)
        if constexpr (!TWO) {
            bp_pair_diff_parts<P>(E, LDF, nrows, red_z);
            __syncthreads();
        }
        if (warp == 0) {
            constexpr int R = (C + 31) / 32;
            float dx[R], gx[R], cross[R], gsuf[R];
#pragma unroll
            for (int i = 0; i < R; i++) {
                const int r = lane * R + i;
                dx[i] = gx[i] = 0.f;
                if (r < nrows) {
                    dx[i] = TWO ? red_z[r] : bp_pair_diff<P>(red_z, r);
                    gx[i] = red_y[r];
                }
            }
            bp_warp_scan<R, false>(dx, cross, lane);
            bp_warp_scan<R, true>(gx, gsuf, lane);
#pragma unroll
            for (int i = 0; i < R; i++) {
                const int r = lane * R + i;
                if (r < nrows)
                    p.ws_dg[(size_t)(c0 + r) * ATTNC_HOUT + h] += gsuf[i] + cross[i];
            }
        }
    }
}
#endif
#endif   // ATTNC_BP_WIDE_PASS == ATTNC_BD_WIDE_ADJ
#endif   // ATTNC_BP_DELTA
