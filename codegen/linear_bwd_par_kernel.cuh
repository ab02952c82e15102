// codegen/linear_bwd_par_kernel.cuh: the chunk-parallel schedule of the causal linear backward (the
// default where it applies, ATTNC_BWD_SCHEDULE; issue 4), for an additive update with a scalar, constant
// or no decay and no normaliser, the running denominator, RMS or LayerNorm, and with a per-channel gate
// and no normaliser (ATTNC_BP_DIAG: b per row and channel, its own attnc_bwdp_chunk below); the delta rule
// (ATTNC_BP_DELTA) uses its helpers and chunk kernel, with its own walks (linear_bwd_delta_kernel.cuh).  codegen/cuda_bwd.c emits it
// after linear_bwd_kernel.cuh (whose causal walks it replaces: ATTNC_B_CAUSAL_LINEAR is 0), with the
// ATTNC_BP_* constants of passes/grad.c's plan.  Every product is an mma.sync m16n8k16 (support.cuh):
// bf16 tiles with fp32 accumulators for 16-bit inputs, fp32 tiles split into three bf16 mma for fp32
// inputs (ATTNC_SPLIT).  The derivation and what is saved versus recomputed: passes/grad.c's header;
// the algorithm step by step on the CPU: tests/ref/test_bwd_parallel.c.
//
// Kernels, in launch order (api/backward.c):
//   attnc_bwdp_states   grid (N, H_out, VP / BP_VS): S from h0 walked forward over the chunks, a V slice
//                       per CTA, the state in the warps' accumulators (warp w: state rows 16w..16w+15);
//                       every chunk's S_in stored as an image (ws_sin [slot, H_out]: 16-bit tiles int16
//                       mantissas [KP][VP] and a scale 2^e per row and slice, bp_img_store; fp32 tiles
//                       floats).  S_out = e^{b_L} S_in + Kd^T V  (Kd = K * e^{b_L - b}).
//   attnc_bwdp_rows     grid (slots, H_out), normalisers only: x = e^{b} (Q S_in) + P V per row, then the
//                       norm's backward dO -> d(x) into ws_do (fp32, the sequential kernel's buffer).
//   attnc_bwdp_dstates  grid (N, H_out, VP / BP_VS): dS from dhT walked in reverse, dS_in = e^{b_L} dS_out
//                       + Qg^T dO (Qg = Q * e^{b}); every chunk's dS_out stored (ws_dso); dh0 (and dz0).
//   attnc_bwdp_chunk    grid (slots, H_out): one chunk from S_in, dS_out (each as hi + lo tiles, ATTNC_BP_SLO:
//                       every product with a state two mma, bp_mma_s) and its rows:
//                       P = (Q K^T) o D, A = (dO V^T) o D  (D_rj = e^{b_r - b_j}, j <= r; hi + lo bf16 tiles),
//                       dq = e^{b} (dO S_in^T) + A K,  dk = e^{b_L - b} (V dS_out^T) + A^T Q,
//                       dv = e^{b_L - b} (K dS_out) + P^T dO,
//                       da_s = e^{b_L} <S_in, dS_out> (from the images' values) + sum_{j<s} k_j . dk_inter_j + sum_{r>=s} q_r . dq_inter_r
//                              + sum_{j<s<=r} (dO_r . v_j) P_rj   (the log-weight rule per factor; only where a
//                              tensor reaches the gate, ATTNC_BP_DG: not for lightning's constant decay)
//                       into the sequential kernel's fp32 workspaces (ws_dq, ws_dk, ws_dv, ws_dg), dq, dk or
//                       dv into the caller's gradient of the tensor where the role is an input tensor of its
//                       own (ATTNC_BP_DQ_TENSOR, ATTNC_BP_DK_TENSOR, ATTNC_BP_DV_TENSOR; bp_role_grad_frag);
//   then attnc_bwd_inputs and the fixed-order head sums, as in the sequential schedule.
// attnc_bwdp_chunk has 8 warps, or 16 at chunk 64 with K, V >= 128 (ATTNC_BP_WIDE_CHUNK, passes/grad.c's
// bp_chunk_warps): codegen/cuda_bwd.c then emits this file's text a second time, in namespace attnc_wide with
// ATTNC_B_THREADS 512 and half the n-tiles per item (ATTNC_BP_NT), and that pass (ATTNC_BP_WIDE_PASS)
// defines the chunk kernel alone while the first defines everything else.  Where the delta rule's reverse
// walk forms dU_hat (DeltaNet, the gated delta rule), it has 8 warps and a compact layout, two CTAs an SM
// (ATTNC_BP_CHUNK2).
// A chunk's slot is c0 / C + n (c0 its first token, n its sequence): distinct over all chunks of all
// sequences, below total / C + N + 1; attnc_bwdp_chunk finds n by bisection over cu_seqlens and exits
// for the slots no chunk has.  Every kernel forms its chunk's roles from the chunk's raw input rows copied
// into shared memory (cp.async: the generated attnc_bwd_stage_issue; the walks also copy their dO slice
// and start the next chunk's copies once this chunk's rows are formed), through the generated
// attnc_bwd_roles_regs<WANT>, which forms only the roles the kernel reads, into registers, two rows per
// warp and pass (bp_roles; the forward walk of a V slice at a v0 not a multiple of 32 through the fp32 role
// row of attnc_bwd_roles_staged instead); a role that is a bf16 input as stored (ATTNC_BP_Q/K/V_STAGE)
// skips it, its staged rows copied into its tile as they are (bp_copy_row, bp_copy_rows2).
// Padding rows (past a sequence's end) are zero with log gate 0.  Every
// token's log2 decay is floored at -32 before the chunk-local sums, as in the forward; every pairwise
// factor is one exp2 of a difference <= 0, or (per-channel gates, within a 16-row block whose gate spans at
// most ATTNC_BP_DIAG_SPAN in the channel) the product of two factors about the block's first row, both in
// fp32's normal range.  No atomics: every sum has a fixed order.
// The decay factors are applied to fp32 accumulators (epilogues) wherever the product allows (rows of
// dq, dk, dv, x), so that only q, k, v, dO, and Kd (pass 1) / Qg (pass 2) are rounded to the tiles' type;
// P and A, v where the value role is computed rather than an input (ATTNC_BP_VSPLIT), and the state images
// (16-bit mantissas: their hi + lo tiles hold them exactly; ATTNC_BP_SLO) carry a second bf16 tile with the
// rounding remainder (lo), one more mma each.  The images were bf16 before: at T = 65536 with gates x 8 that
// put mamba2's dt_bias off by 2.4e-2 on the H200 (passes/grad.c).  Those remainders are for the gradients
// summed over every token (a parameter's): where every gradient is per token and no normaliser reads P
// (lightning, gla, DeltaNet) P, A and the images are hi tiles only (ATTNC_BP_PLO, ATTNC_BP_SLO 0), and the
// images are stored as that tile, bf16 (ATTNC_BP_MIMG 0).

#if ATTNC_BP
#define ATTNC_BP_LDK (ATTNC_BP_KP + 8)    // tile row strides: 16-byte rows, ldmatrix rows off the banks
#define ATTNC_BP_LDV (ATTNC_BP_VP + 8)
#define ATTNC_BP_LDC (ATTNC_BP_C + 8)
#define ATTNC_BP_LDS (ATTNC_BP_VS + 8)
#define ATTNC_BP_LO (!ATTNC_SPLIT)               // 16-bit tiles: images of mantissas, remainders possible (PLO)
#define ATTNC_BP_VLO (ATTNC_BP_LO && ATTNC_BP_VSPLIT)
// ATTNC_BP_PLO (the plan's bp_plo): P and A carry their lo tiles, one more mma each, where a parameter's
// gradient sums every token's (mamba2's A_log, dt_bias) and for normalisers; without them every gradient is
// per token (lightning's, gla's, DeltaNet's) and the products take hi tiles, as the images do then (SLO 0)
static_assert(!ATTNC_BP_PLO || ATTNC_BP_LO, "P's and A's lo tiles with 16-bit tiles only");
static_assert(ATTNC_BP_PLO == ATTNC_BP_LO || ATTNC_B_NORM == 0,
              "P and A in hi tiles alone only without a normaliser (passes/grad.c's grad_parallel_plan)");
static_assert(!ATTNC_BP_DG || ATTNC_B_TRANSITION != 0, "a gate's gradient with a gate");
// The state images (ws_sin, ws_dso), ATTNC_BP_IMG_BYTES per (slot, head).  Where a parameter's gradient sums
// every token's (ATTNC_BP_MIMG: PLO with 16-bit tiles): KP x VP int16 mantissas m, then a scale 2^e per (row,
// walk slice) [KP][NSL] (fp32), the element m 2^e (bp_img_store, bp_load_image): 16 bits of the row's
// largest element (bf16: 8), and two bf16 tiles hi + lo hold every element exactly.  Otherwise KP x VP
// elements of the tiles' type, as the products read them: bf16 where every operand is a hi tile (no
// mantissas to scale and decode, rounded once), fp32 with fp32 tiles.
#define ATTNC_BP_MIMG (ATTNC_BP_LO && ATTNC_BP_PLO)
#if ATTNC_BP_MIMG
#define ATTNC_BP_NSL (ATTNC_BP_VP / ATTNC_BP_VS)
#define ATTNC_BP_IMG_OWN (ATTNC_BP_KP * ATTNC_BP_VP * 2 + ATTNC_BP_KP * ATTNC_BP_NSL * 4)
#else
#define ATTNC_BP_IMG_OWN (ATTNC_BP_KP * ATTNC_BP_VP * (int)sizeof(elt))
#endif
static_assert(ATTNC_BP_IMG_OWN == ATTNC_BP_IMG_BYTES, "the plan's image size (api/backward.c's workspace)");
// ATTNC_BP_SLO (the plan's bp_slo): the chunk kernels hold the images as hi + lo tiles, every product with a
// state two mma; 16-bit tiles only, and only where the lo tile fits without a smaller chunk (hi alone else)
static_assert(!ATTNC_BP_SLO || ATTNC_BP_MIMG, "a states' lo tile with 16-bit tiles and mantissa images only");
#define ATTNC_BP_GATED (ATTNC_B_TRANSITION != 0)   // ir_transition: not the identity
// ATTNC_BP_QK_RAW (the plan's bp_qk_raw: the delta rule with remainder tiles whose query and key are the l2norm of
// bf16 inputs, Gated DeltaNet): the query's and key's tiles hold the l2norm's input rows as they are, exact, and
// each row's factor f (1 / |x| times the role's constant, fp32) lies beside them (fac[C], bp_qk_tile_rows2).  A
// product whose output rows or columns are the tokens takes f on its fp32 accumulator (Q K^T: f_q f_k; K K^T;
// K dS_out), one that sums over the tokens takes it in its fp32-formed operand before that is rounded (W's left
// factor, A, F: hi + lo tiles; Kd and Qg: hi + lo fragments, bp_mma_at_decayed); where A or F is read both ways
// it carries both rows' factors, so that dq and dk come out times their own rows' factors, which the l2norm's
// adjoint takes as they are (bp_l2_finish's RAW).  A padding row's factor is 0 (bp_role_regs).  The normalised
// rows rounded to bf16 moved Gated DeltaNet's dA_log by 3.1e-2 on the known defect's case
// (bench/experiments/delta-rounding/); as input rows they are not rounded at all.
static_assert(!ATTNC_BP_QK_RAW || (ATTNC_BP_DELTA && ATTNC_BP_PLO && !ATTNC_SPLIT && ATTNC_BP_Q_RAW_STAGE >= 0 &&
                                   ATTNC_BP_K_RAW_STAGE >= 0), "raw query and key tiles: the delta rule with remainder tiles");
// Row r's factor fac[r] where the tiles hold raw rows, else 1 (a product by 1.f: the same bits).
__device__ __forceinline__ float bp_rf(const float *fac, int r)
{
#if ATTNC_BP_QK_RAW
    return fac[r];
#else
    (void)fac, (void)r;
    return 1.f;
#endif
}
#define ATTNC_BP_LOG2_FLOOR (-32.f)
#define ATTNC_B_LOG2_FLOOR ATTNC_BP_LOG2_FLOOR   // the generated adjoint's test of a floored token
#define ATTNC_BP_DIAG (ATTNC_B_TRANSITION == 3)   // per-channel gates (IR_TR_DIAG): b per (row, channel)
#define ATTNC_BP_LDG (ATTNC_BP_KP + 4)             // b [C][LDG] (per-channel gates)
// The per-channel chunk kernel's scaled rows Qh, Kh [C][LDH] fp32: a warp of P's diagonal block reads 16 rows of
// Kh at one column, so unpadded rows (512 bytes at KP = 128) put them on the same banks
#define ATTNC_BP_LDH (ATTNC_BP_KP + 4)
// ... and its four gate-term arrays GP, GS, BP, BS [C][LDT] fp32, which dq's and dk's epilogues read and write at
// their fragments' places (eight rows, two columns a lane, in float2): rows of KP floats put all eight rows on
// the same banks, 8-way a 4-byte access; KP + 8 puts a half warp's 16 pairs on 32 banks
#define ATTNC_BP_LDT (ATTNC_BP_KP + 8)
#define ATTNC_BP_STG (2 * ATTNC_BP_KP + ATTNC_BP_VP + (ATTNC_BP_DIAG ? ATTNC_BP_KP : 8))   // one warp's fp32 role row: q, k, v, gate
// b of row r (channel c): per channel with a vector gate, else per row
#if ATTNC_BP_DIAG
#define BP_B(g, r, c) (g)[(r) * ATTNC_BP_LDG + (c)]
// Eight consecutive floats from and to 16-byte aligned shared memory: a row's log2 gates (b: rows of LDG floats,
// 16-byte multiples), the per-channel chunk kernel's fp32 rows.
__device__ __forceinline__ void bp_ld_f8(float *x, const float *p)
{
    const float4 a = *reinterpret_cast<const float4 *>(p), b = *reinterpret_cast<const float4 *>(p + 4);
    x[0] = a.x, x[1] = a.y, x[2] = a.z, x[3] = a.w, x[4] = b.x, x[5] = b.y, x[6] = b.z, x[7] = b.w;
}
__device__ __forceinline__ void bp_st_f8(float *p, const float *x)
{
    *reinterpret_cast<float4 *>(p) = make_float4(x[0], x[1], x[2], x[3]);
    *reinterpret_cast<float4 *>(p + 4) = make_float4(x[4], x[5], x[6], x[7]);
}
static_assert(ATTNC_BP_C <= 32 && ATTNC_B_NORM == 0, "per-channel gates: chunks of 16 or 32, no normaliser (grad_parallel_plan)");
#else
#define BP_B(g, r, c) (g)[(r)]
#endif


static_assert(ATTNC_BP_KP % 16 == 0 && ATTNC_BP_VP % 16 == 0 && ATTNC_BP_KP <= 128, "tile shapes");
static_assert(ATTNC_BP_C % 16 == 0 && ATTNC_BP_C <= 64 && ATTNC_BP_VP % ATTNC_BP_VS == 0 && ATTNC_BP_VS % 16 == 0 &&
              ATTNC_BP_VW % ATTNC_BP_VS == 0 && ATTNC_BP_VP % ATTNC_BP_VW == 0 && (ATTNC_BP_VW == ATTNC_BP_VS || ATTNC_BP_DELTA),
              "chunk and slice shapes");

#define ATTNC_BP_NORM_NONE 0   // ir_norm
#define ATTNC_BP_NORM_DENOM 1
#define ATTNC_BP_NORM_RMS 3
#define ATTNC_BP_NORM_LAYER 4

// e^{x ln 2} for an exponent <= 0 where it is formed (clamped, so rounding cannot exceed 1); 1 without decay.
// attnc_exp2, not exp2f: the same ex2 without exp2f's rescaling of results under 2^-126 (three instructions
// more a factor, for values no gradient would keep).
__device__ __forceinline__ float bp_dec(float x)
{
#if ATTNC_BP_GATED
    return attnc_exp2(fminf(x, 0.f));
#else
    (void)x;
    return 1.f;
#endif
}

// column groups of the outputs: NT n-tiles of 8 (even, dividing the width); at 16 warps (the wide pass) at
// most 4, so that twice the warps have twice the items
#define ATTNC_BP_NT(W) ((W) % 64 == 0 && ATTNC_B_THREADS <= 256 ? 8 : (W) % 32 == 0 ? 4 : 2)

// A fragment's two rows' partial sums (rows m0 + lane / 4 and that + 8) summed over their quad into out[row].
__device__ __forceinline__ void bp_quad_parts(float *part, float *out, int m0, int lane)
{
    part[0] = quad_sum(part[0]);
    part[1] = quad_sum(part[1]);
    if ((lane & 3) == 0) {
        out[m0 + (lane >> 2)] = part[0];
        out[m0 + (lane >> 2) + 8] = part[1];
    }
}

// The A fragment of rows [m0, m0 + 16) and reduction columns [k, k + 16): from a row-major [m][k] tile, or
// (AT) one stored [k][m]; the B fragment of two n-tiles from n0: from a tile stored [k][n] (BKN) or [n][k].
template <bool AT>
__device__ __forceinline__ void bp_frag_a(frag &a, const elt *A, int lda, int m0, int k, int lane)
{
    if constexpr (AT)
        load_a_t(a, A, lda, m0, k, lane);
    else
        load_a(a, A, lda, m0, k, lane);
}
template <bool BKN>
__device__ __forceinline__ void bp_frag_b(frag &b, const elt *B, int ldb, int n0, int k, int lane)
{
    if constexpr (BKN)
        load_b_kn(b, B, ldb, n0, k, lane);
    else
        load_b_nk(b, B, ldb, n0, k, lane);
}

// One k-step of bp_mma with A's fragment a loaded: acc (8 NT columns from n0) += a B[k .. k + 15], and with LO
// a Blo after it into each accumulator.
template <int NT, bool BKN, bool LO = false>
__device__ __forceinline__ void bp_mma_step(float (*acc)[4], const frag &a, const elt *B, int ldb, int n0, int k, int lane,
                                            const elt *Blo = nullptr)
{
#pragma unroll
    for (int nt = 0; nt < NT; nt += 2) {
        frag b;
        bp_frag_b<BKN>(b, B, ldb, n0 + nt * 8, k, lane);
        mma(acc[nt], a, b, 0);
        mma(acc[nt + 1], a, b, 1);
        if constexpr (LO) {
            bp_frag_b<BKN>(b, Blo, ldb, n0 + nt * 8, k, lane);
            mma(acc[nt], a, b, 0);
            mma(acc[nt + 1], a, b, 1);
        }
    }
}

// acc (16 rows from m0, 8 NT columns from n0) += A (16 x [k0, k1)) B, and with LO A Blo too (B's lo tile, each
// A fragment loaded once).  A: row-major [m][k] tile, or (AT) stored [k][m]; B, Blo: stored [k][n] (BKN) or
// [n][k].
template <int NT, bool AT, bool BKN, bool LO = false>
__device__ __forceinline__ void bp_mma(float (*acc)[4], const elt *A, int lda, int m0, const elt *B, int ldb, int n0,
                                       int k0, int k1, int lane, const elt *Blo = nullptr)
{
    for (int k = k0; k < k1; k += 16) {
        frag a;
        bp_frag_a<AT>(a, A, lda, m0, k, lane);
        bp_mma_step<NT, BKN, LO>(acc, a, B, ldb, n0, k, lane, Blo);
    }
}

// A product with a state image: acc += A (B + Blo) where the images carry lo tiles (ATTNC_BP_SLO), else A B.
template <int NT, bool AT, bool BKN>
__device__ __forceinline__ void bp_mma_s(float (*acc)[4], const elt *A, int lda, int m0, const elt *B, const elt *Blo,
                                         int ldb, int n0, int k0, int k1, int lane)
{
    bp_mma<NT, AT, BKN, ATTNC_BP_SLO>(acc, A, lda, m0, B, ldb, n0, k0, k1, lane, Blo);
}

#if !ATTNC_SPLIT && !ATTNC_BP_DIAG
// acc (16 rows from m0, 8 NT columns from n0) += (G A)^T B over [k0, k1), A stored [k][m] (a chunk's rows) and
// G = diag(e^{b_k}), or (KD) diag(e^{b_L - b_k}) with b_L = b[C - 1]: each reduction row's factor applied to A's
// fragment as it is loaded, the fp32 product rounded once to the tile type, the bits bp_scale_rows<KD> gave the
// tile (the walks' Qg^T dO, Kd^T V), so that no pass over the tile, and no barrier after it, sits before the
// update.  16-bit tiles (fp32 tiles are split into hi and lo at each load); a scalar decay.  B stored [k][n].
// fac: the rows' l2norm factors where A holds raw rows (ATTNC_BP_QK_RAW: each row's factor times its decay's).
// With raw rows the scaled fragments go in as hi + lo (two mma a step).
template <int NT, bool KD = false>
__device__ __forceinline__ void bp_mma_at_decayed(float (*acc)[4], const elt *A, int lda, int m0, const elt *B, int ldb,
                                                  int n0, int k0, int k1, const float *b, int lane, const float *fac = nullptr)
{
    const float bl = KD ? b[ATTNC_BP_C - 1] : 0.f;
    auto dec = [&](int r) { return (KD ? bp_dec(bl - b[r]) : bp_dec(b[r])) * bp_rf(fac, r); };
    // a pair of elements scaled, rounded (the low half: the even reduction row), and with raw rows their bf16
    // remainder into rem: every other product takes the exact rows f x, so Kd and Qg rounded here once would be
    // the one rounded use of them; with a weak decay the rounded tiles before raw rows were exact here (bf16(q
    // e^{b}) = q where e^{b} rounds to 1), and this rounding alone took grad_strong_gated_deltanet's dA_log (A_log
    // x 8: the decay about 1) from 2.6e-3 to 5.5e-2 (3.0e-2 with the remainder; CPU emulation of its GPU inputs,
    // bench/RESULTS.md 57th session)
    auto scaled = [](unsigned u, float f0, float f1, unsigned &rem) {
        const float x0 = attnc_elt_to_float((elt)(u & 0xffffu)) * f0, x1 = attnc_elt_to_float((elt)(u >> 16)) * f1;
        const unsigned h = pack2(x0, x1);
        if constexpr (ATTNC_BP_QK_RAW)
            rem = pack2(x0 - attnc_elt_to_float((elt)(h & 0xffffu)), x1 - attnc_elt_to_float((elt)(h >> 16)));
        return h;
    };
    for (int k = k0; k < k1; k += 16) {
        frag a, rem;
        load_a_t(a, A, lda, m0, k, lane);
        // registers 0 and 1 hold reduction rows kr and kr + 1, registers 2 and 3 rows kr + 8 and kr + 9
        const int kr = k + (lane & 3) * 2;
        const float f0 = dec(kr), f1 = dec(kr + 1), f8 = dec(kr + 8), f9 = dec(kr + 9);
        a.hi[0] = scaled(a.hi[0], f0, f1, rem.hi[0]);
        a.hi[1] = scaled(a.hi[1], f0, f1, rem.hi[1]);
        a.hi[2] = scaled(a.hi[2], f8, f9, rem.hi[2]);
        a.hi[3] = scaled(a.hi[3], f8, f9, rem.hi[3]);
        bp_mma_step<NT, true>(acc, a, B, ldb, n0, k, lane);
        if constexpr (ATTNC_BP_QK_RAW)   // (raw rows: the remainder's mma)
            bp_mma_step<NT, true>(acc, rem, B, ldb, n0, k, lane);
    }
}
#endif

// Whether a walk's product takes its rows' decay factors in its fragments (bp_mma_at_decayed) rather than from a
// pass over the tile: a scalar decay and 16-bit tiles, and not the forward walk with V's remainder tile, whose
// second product reads X again (the delta rule's walks: the reverse one)
template <bool REV>
__device__ constexpr bool bp_walk_frag()
{
    return ATTNC_BP_GATED && !ATTNC_BP_DIAG && !ATTNC_SPLIT && (REV || !ATTNC_BP_VLO);
}
static_assert(!ATTNC_BP_QK_RAW || (bp_walk_frag<false>() && bp_walk_frag<true>()),
              "raw rows: the walks' Kd and Qg in bp_mma_at_decayed's hi + lo fragments, never rounded by bp_scale_rows");

// A walk's chunk product from X [C][LDK]: acc += Kd^T Y (forward: Y is V, or the delta rule's U_hat) or Qg^T dO
// (reverse), X holding K or Q as formed where bp_walk_frag, else Kd or Qg (bp_scale_rows before the product).
template <int NT, bool REV>
__device__ __forceinline__ void bp_walk_product(float (*acc)[4], const elt *X, const elt *Y, int ldy, const float *g, int m0,
                                                int lane, const float *fac = nullptr)
{
#if !ATTNC_SPLIT && !ATTNC_BP_DIAG
    if constexpr (bp_walk_frag<REV>()) {
        bp_mma_at_decayed<NT, !REV>(acc, X, ATTNC_BP_LDK, m0, Y, ldy, 0, 0, ATTNC_BP_C, g, lane, fac);
        return;
    }
#endif
    (void)g;
    bp_mma<NT, true, true>(acc, X, ATTNC_BP_LDK, m0, Y, ldy, 0, 0, ATTNC_BP_C, lane);
}

template <int NT>
__device__ __forceinline__ void bp_zero(float (*acc)[4])
{
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
        acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.f;
}

// Element (row, col) of accumulator register i of n-tile nt: row m0 + lane / 4 + 8 (i >> 1), column
// n0 + 8 nt + 2 (lane % 4) + (i & 1).
__device__ __forceinline__ int bp_row(int m0, int lane, int i)
{
    return m0 + (lane >> 2) + 8 * (i >> 1);
}
__device__ __forceinline__ int bp_col(int n0, int nt, int lane, int i)
{
    return n0 + 8 * nt + 2 * (lane & 3) + (i & 1);
}

// An accumulator's products with a tile's rows over its item's columns (16 rows from m0, 8 NT columns from n0),
// added to the lane's two rows' parts (part[0]: row m0 + lane / 4, part[1]: 8 rows below), in the order of the
// elements; bp_quad_parts then sums a row's parts over its quad.
template <int NT>
__device__ __forceinline__ void bp_row_dots(const float (*acc)[4], const elt *X, int ldx, int m0, int n0, float (&part)[2],
                                            int lane)
{
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++)
            part[i >> 1] += acc[nt][i] * attnc_elt_to_float(X[bp_row(m0, lane, i) * ldx + bp_col(n0, nt, lane, i)]);
}

// The pair factors e^{b_r - b_j} of a lane's elements of the 16 x 16 block (mi, nj) of a chunk's C x C scores
// (j <= r; 0 above the diagonal, with no ex2 for blocks wholly there), g the chunk-local sums b.  Below the
// diagonal each is e^{b_r - b_m} e^{b_m - b_j}, m = 16 nj + 15 the block's last column: b does not increase,
// so both exponents are <= 0, neither factor overflows, and their product underflows only where e^{b_r - b_j}
// does; 2 ex2 for the rows and 4 for the columns where the elements took 16.  On the diagonal each element's
// own (through a reference inside the block one factor could overflow).  Formed before the caller's stores,
// after which the compiler would load g again.
__device__ __forceinline__ void bp_pair_decay(const float *g, int mi, int nj, int lane, float (&f)[2][4])
{
    if (nj < mi) {
        const float bm = g[nj * 16 + 15];
        const float fr0 = bp_dec(g[bp_row(mi * 16, lane, 0)] - bm), fr1 = bp_dec(g[bp_row(mi * 16, lane, 2)] - bm);
#pragma unroll
        for (int nt = 0; nt < 2; nt++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const float fc = bp_dec(bm - g[bp_col(nj * 16, nt, lane, e)]);
                f[nt][e] = fr0 * fc;
                f[nt][e + 2] = fr1 * fc;
            }
    } else if (nj == mi) {
#pragma unroll
        for (int nt = 0; nt < 2; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int r = bp_row(mi * 16, lane, i), j = bp_col(nj * 16, nt, lane, i);
                f[nt][i] = j <= r ? bp_dec(g[r] - g[j]) : 0.f;
            }
    } else {
        bp_zero<2>(f);
    }
}

// Raw rows (ATTNC_BP_QK_RAW): the rows' factors f_q[r] f_k[j] onto a block's pair factors f (bp_pair_decay's), read
// once before the caller's stores (after them the compiler would load every element's again); nothing otherwise.
__device__ __forceinline__ void bp_pair_rf(const float *fq, const float *fk, int mi, int nj, int lane, float (&f)[2][4])
{
#if ATTNC_BP_QK_RAW
    const float r0 = fq[bp_row(mi * 16, lane, 0)], r1 = fq[bp_row(mi * 16, lane, 2)];
#pragma unroll
    for (int nt = 0; nt < 2; nt++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const float c = fk[bp_col(nj * 16, nt, lane, e)];
            f[nt][e] *= r0 * c;
            f[nt][e + 2] *= r1 * c;
        }
#else
    (void)fq, (void)fk, (void)mi, (void)nj, (void)lane, (void)f;
#endif
}

// A 16-row fragment block's sums per column (NT n-tiles from n0; bp_quad_parts sums its rows), over the lanes of
// a column's eight row groups, into out[column] by lanes 0 .. 3.
template <int NT>
__device__ __forceinline__ void bp_column_sums(const float (*v)[4], float *out, int n0, int lane)
{
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            float s = v[nt][e] + v[nt][e + 2];
#pragma unroll
            for (int o = 4; o < 32; o <<= 1)
                s += __shfl_xor_sync(0xffffffffu, s, o);
            if (lane < 4)
                out[bp_col(n0, nt, lane, e)] = s;
        }
}

// x as a tile element, and (16-bit tiles) the remainder x - hi as a second one.
__device__ __forceinline__ void bp_split(float x, elt &hi, elt &lo)
{
    hi = attnc_float_to_elt(x);
#if ATTNC_BP_LO
    lo = attnc_float_to_elt(x - attnc_elt_to_float(hi));
#else
    lo = hi;
    (void)lo;
#endif
}

// Fixed-order scans over a warp of C values held R to a lane (index lane * R + i): the exclusive prefix sums
// (SUFFIX false: y_t = sum_{u < t} x_u) or the inclusive suffix sums (true: y_t = sum_{u >= t} x_u).
template <int R, bool SUFFIX>
__device__ __forceinline__ void bp_warp_scan(const float (&x)[R], float (&y)[R], int lane)
{
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < R; i++)
        s += x[SUFFIX ? R - 1 - i : i];
    float inc = s;   // this lane's and the lanes before it (after it, for SUFFIX)
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const float v = SUFFIX ? __shfl_down_sync(0xffffffffu, inc, o) : __shfl_up_sync(0xffffffffu, inc, o);
        if (SUFFIX ? lane + o < 32 : lane >= o)
            inc += v;
    }
    const float other = SUFFIX ? __shfl_down_sync(0xffffffffu, inc, 1) : __shfl_up_sync(0xffffffffu, inc, 1);
    float acc = (SUFFIX ? lane < 31 : lane > 0) ? other : 0.f;
#pragma unroll
    for (int i = 0; i < R; i++) {
        const int k = SUFFIX ? R - 1 - i : i;
        if constexpr (SUFFIX) {
            acc += x[k];
            y[k] = acc;
        } else {
            y[k] = acc;
            acc += x[k];
        }
    }
}

// The scalar gate's pair terms R_s = sum_{j < s <= r < n} X_rj of a C x C matrix X (row stride ld; only its
// strictly lower part is read) as the prefix sum of d_t = colbelow_t - rowleft_t, since R_{s+1} - R_s =
// sum_{s < r < n} X_rs - sum_{j < s} X_sj.  bp_pair_diff_parts: P threads per t (threads below P * C), each
// every P-th term of both sums, into red[part * C + t] (bank t + x in both loads at ld = C + 1 and C = 32,
// 64); after the caller's barrier bp_pair_diff(red, t) is d_t.  The chunk kernel's and the WY adjoint's.
template <int P>
__device__ __forceinline__ void bp_pair_diff_parts(const float *X, int ld, int nrows, float *red)
{
    constexpr int C = ATTNC_BP_C;
    if ((int)threadIdx.x >= P * C)
        return;
    const int t = threadIdx.x % C, part = threadIdx.x / C;
    float d = 0.f;
    if (t < nrows)
        for (int x = part; x < nrows; x += P) {
            if (x > t)
                d += X[x * ld + t];
            else if (x < t)
                d -= X[t * ld + x];
        }
    red[part * C + t] = d;
}

template <int P>
__device__ __forceinline__ float bp_pair_diff(const float *red, int t)
{
    float d = 0.f;
    for (int part = 0; part < P; part++)
        d += red[part * ATTNC_BP_C + t];
    return d;
}

// The chunk's log2 gates g[r] (already floored) into chunk-local inclusive sums b[r], one warp; into b in place,
// or into another array (a warp's own copy: bd_walk).
__device__ __forceinline__ void bp_scan(const float *g, float *b, int lane)
{
    constexpr int R = (ATTNC_BP_C + 31) / 32;
    float x[R], s = 0.f;
#pragma unroll
    for (int i = 0; i < R; i++) {
        const int r = lane * R + i;
        x[i] = r < ATTNC_BP_C ? g[r] : 0.f;
        s += x[i];
    }
    float inc = s;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const float y = __shfl_up_sync(0xffffffffu, inc, o);
        if (lane >= o)
            inc += y;
    }
    float acc = inc - s;
    __syncwarp();
#pragma unroll
    for (int i = 0; i < R; i++) {
        const int r = lane * R + i;
        acc += x[i];
        if (r < ATTNC_BP_C)
            b[r] = acc;
    }
}

// A warp's role row, zero (once per kernel, and for a padding row: bp_role_row).
__device__ __forceinline__ void bp_zero_roles(float *stg, int lane)
{
    for (int c = lane; c < ATTNC_BP_STG; c += 32)
        stg[c] = 0.f;
    __syncwarp();
}

// Whether rows formed for WANT take the forward's saved l2norm factors (ATTNC_ROLE_L2F): where it saved them
// (p.l2f) and the kernel runs with saved states (not ATTNC_ROLE_UNSAVED).  The callers choose once for a group
// of rows: a branch in every l2norm split the rows' code apart.
template <int WANT>
__device__ __forceinline__ bool bp_saved_l2(const attnc_bwd_params &p)
{
    if constexpr ((WANT & ATTNC_ROLE_L2F) != 0)   // (chosen by the caller: bd_walk's L2F)
        return true;
    return ATTNC_BP_NL2 > 0 && !(WANT & ATTNC_ROLE_UNSAVED) && p.l2f != nullptr;
}

// Row r of the chunk (token t) through the generated roles WANT asks for (ATTNC_ROLE_*; the gate always),
// from the chunk's staged input rows (one warp, fp32 role row stg), the floored log2 gate into g[r] (and
// the delta rule's beta into *beta where asked); the staged form, left to the forward walk of a V slice
// whose columns are other lanes' channels (bp_walk's REGS; everywhere else bp_role_regs);
// padding rows zero.  The role row's columns past K and V (to KP, VP) are zero from bp_zero_roles on: no
// role writes them.  The caller converts the row into its tiles.
template <int WANT>
__device__ __forceinline__ void bp_role_row(const attnc_bwd_params &p, int t, bool real, int h, int lane, float *stg,
                                            float *g, int r, const unsigned char *stage, float *beta = nullptr)
{
    float *q = stg, *k = stg + ATTNC_BP_KP, *v = stg + 2 * ATTNC_BP_KP, *gg = v + ATTNC_BP_VP;
    float dummy[2];
    if (beta && !real && lane == 0)
        *beta = 0.f;   // the delta rule: a padding row writes nothing
    if (real) {
        if (bp_saved_l2<WANT>(p))
            attnc_bwd_roles_staged<WANT | ATTNC_ROLE_GATE | ATTNC_ROLE_L2F>(p, t, h, lane, q, k, v, gg, beta ? beta : dummy,
                                                                            dummy + 1, stage, r);
        else
            attnc_bwd_roles_staged<WANT | ATTNC_ROLE_GATE>(p, t, h, lane, q, k, v, gg, beta ? beta : dummy, dummy + 1,
                                                           stage, r);
        if constexpr (ATTNC_B_V > ATTNC_B_VO && (WANT & ATTNC_ROLE_V))
            if (lane == 0)
                v[ATTNC_B_VO] = 1.f;   // the denominator's column of ones
    } else {
        bp_zero_roles(stg, lane);
    }
    __syncwarp();
#if ATTNC_BP_DIAG
    for (int c = lane; c < ATTNC_BP_KP; c += 32)   // per channel: the floored log2 decays of row r
        g[r * ATTNC_BP_LDG + c] = real ? fmaxf(gg[c] * LOG2E, ATTNC_BP_LOG2_FLOOR) : 0.f;
#else
    if (lane == 0)
        g[r] = ATTNC_BP_GATED && real ? fmaxf(gg[0] * LOG2E, ATTNC_BP_LOG2_FLOOR) : 0.f;
#endif
}

// Per-channel gates: the chunk's log2 gates into chunk-local inclusive sums per channel (a thread per channel).
__device__ __forceinline__ void bp_scan_diag(float *g)
{
    for (int c = threadIdx.x; c < ATTNC_BP_KP; c += ATTNC_B_THREADS) {
        float acc = 0.f;
        for (int r = 0; r < ATTNC_BP_C; r++) {
            acc += g[r * ATTNC_BP_LDG + c];
            g[r * ATTNC_BP_LDG + c] = acc;
        }
    }
}

// Row r of a role that is a bf16 input as stored (ATTNC_BP_Q/K/V_STAGE: the offset of its staged rows of
// `len` channels): tile columns [0, W) from channels [c_lo, c_lo + W) of the staged row, 16 bytes at a time,
// zero past the row or (not `real`) past the chunk.  The same bits as the value DAG's row rounded back.
// In two steps, a lane's pieces loaded then stored, so that two rows' loads can go before their stores.
template <int W>
struct bp_row_piece {   // a lane's 16-byte pieces of a staged row: columns lane * 8 + 256 j
    static_assert(W % 8 == 0 && sizeof(elt) == 2, "16-byte pieces of bf16 rows");
    attnc_u4 x[(W + 255) / 256];
};
template <int W>
__device__ __forceinline__ void bp_copy_load(const unsigned char *stage, int off, int len, int r, int c_lo, bool real,
                                             bp_row_piece<W> &pc, int lane)
{
#pragma unroll
    for (int j = 0; j < (W + 255) / 256; j++) {
        const int c = lane * 8 + 256 * j;
        pc.x[j] = {0u, 0u, 0u, 0u};
        if (c < W)
            if (real && c_lo + c < len)
                pc.x[j] = *reinterpret_cast<const attnc_u4 *>(stage + off + ((size_t)r * len + c_lo + c) * 2);
    }
}
template <int W>
__device__ __forceinline__ void bp_copy_store(const bp_row_piece<W> &pc, elt *dst, int lane)
{
#pragma unroll
    for (int j = 0; j < (W + 255) / 256; j++)
        if (lane * 8 + 256 * j < W)
            *reinterpret_cast<attnc_u4 *>(dst + lane * 8 + 256 * j) = pc.x[j];
}
template <int W>
__device__ __forceinline__ void bp_copy_row(const unsigned char *stage, int off, int len, int r, int c_lo, bool real,
                                            elt *dst, int lane)
{
    bp_row_piece<W> pc;
    bp_copy_load<W>(stage, off, len, r, c_lo, real, pc, lane);
    bp_copy_store<W>(pc, dst, lane);
}

// Tile row r (KP columns) of the query or key role: its staged bf16 input row as it is (STAGE >= 0, the
// offset of the staged rows), else the value DAG's fp32 row `src` rounded; `real`: r is inside the chunk.
template <int STAGE>
__device__ __forceinline__ void bp_qk_tile_row(const unsigned char *stage, const float *src, int r, bool real, elt *dst,
                                               int lane)
{
    if constexpr (STAGE >= 0) {
        bp_copy_row<ATTNC_BP_KP>(stage, STAGE, ATTNC_B_K, r, 0, real, dst, lane);
    } else {
        for (int c = lane; c < ATTNC_BP_KP; c += 32)
            dst[c] = attnc_float_to_elt(src[c]);
    }
}

// ---- the role rows in registers, two rows per warp and pass ------------------------------------------------
// Forming a row's roles is a serial latency chain: the staged inputs' loads, the per-head parameters' global
// loads, the value DAG's MUFU chains, then (the staged form) the fp32 row into shared memory, __syncwarp and
// the row read back per column, each load waiting on the store before it (the compiler cannot tell them
// apart).  A warp forming its rows one after another waits on every link.  So the role loops form two rows
// per pass, r0 and r0 + ATTNC_B_WARPS: both rows' roles into registers first (attnc_bwd_roles_regs,
// straight-line code, so that the two chains interleave), every shared-memory read of the pass (the staged
// rows, dO) issued before its first store, then both rows' tile writes.  Slot s of a role holds channel
// lane + 32 s (CG_LAYOUT_LANE), so tile column c of a row is written by lane c % 32 from its slot c / 32:
// no role row in shared memory and no __syncwarp.  The values, tiles, gates and betas are the staged form's
// bit for bit (the same value DAG code; padding rows selected to zero rather than branched around).
static_assert(ATTNC_BP_C % (2 * ATTNC_B_WARPS) == 0, "two rows per warp and pass");
static_assert(ATTNC_BP_NQ * 32 >= ATTNC_BP_KP && ATTNC_BP_NK * 32 >= ATTNC_BP_KP && ATTNC_BP_NV * 32 >= ATTNC_BP_VP &&
              (!ATTNC_BP_DIAG || ATTNC_BP_NG * 32 >= ATTNC_BP_KP), "a role's slots cover its tile row");

struct bp_roles {   // one row's roles, CG_LAYOUT_LANE slots; g: the floored log2 gate (per channel: slots)
    float q[ATTNC_BP_NQ], k[ATTNC_BP_NK], v[ATTNC_BP_NV], g[ATTNC_BP_NG];
    float beta;     // the delta rule's (0 on padding rows)
    float qkf[2];   // the query's and key's l2norm factors where their tiles hold the input rows (ATTNC_BP_QK_RAW)
};

// Row r of the chunk (token t; `real`: inside the sequence) into registers: the roles WANT asks for
// (ATTNC_ROLE_*; 0 for the others), the floored log2 gate and beta; a padding row zero with gate 0.  t of a
// padding row is any real token's (the generated code reads no per-token input there but the staged rows).
template <int WANT>
__device__ __forceinline__ void bp_role_regs(const attnc_bwd_params &p, int t, bool real, int h, int lane, int r,
                                             const unsigned char *stage, bp_roles &x)
{
    float ig;
    attnc_bwd_roles_regs<WANT | ATTNC_ROLE_GATE>(p, t, h, lane, x.q, x.k, x.v, x.g, x.beta, ig, x.qkf, stage, r);
    (void)ig;
    if constexpr (ATTNC_B_V > ATTNC_B_VO && (WANT & ATTNC_ROLE_V))
        if (lane == ATTNC_B_VO % 32)
            x.v[ATTNC_B_VO / 32] = 1.f;   // the denominator's column of ones
#pragma unroll
    for (int s = 0; s < ATTNC_BP_NQ; s++)
        x.q[s] = real ? x.q[s] : 0.f;
#pragma unroll
    for (int s = 0; s < ATTNC_BP_NK; s++)
        x.k[s] = real ? x.k[s] : 0.f;
#pragma unroll
    for (int s = 0; s < ATTNC_BP_NV; s++)
        x.v[s] = real ? x.v[s] : 0.f;
#if ATTNC_BP_DIAG
#pragma unroll
    for (int s = 0; s < ATTNC_BP_NG; s++)   // per channel (0 past the gate's channels: fmaxf(0, floor))
        x.g[s] = real ? fmaxf(x.g[s] * LOG2E, ATTNC_BP_LOG2_FLOOR) : 0.f;
#else
    x.g[0] = ATTNC_BP_GATED && real ? fmaxf(x.g[0] * LOG2E, ATTNC_BP_LOG2_FLOOR) : 0.f;
#endif
    x.beta = real ? x.beta : 0.f;
    // (a padding row's staged input is whatever shared memory held: its factor, formed from it, could be NaN, and
    // 0 * NaN in the products; 0 like its roles)
    x.qkf[0] = real ? x.qkf[0] : 0.f;
    x.qkf[1] = real ? x.qkf[1] : 0.f;
}

// Rows r0 and r0 + ATTNC_B_WARPS of the chunk from token c0 (nrows of them real) into x[0], x[1].
template <int WANT>
__device__ __forceinline__ void bp_role_pair(const attnc_bwd_params &p, int c0, int nrows, int h, int lane, int r0,
                                             const unsigned char *stage, bp_roles (&x)[2])
{
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const int r = r0 + i * ATTNC_B_WARPS;
        bp_role_regs<WANT>(p, min(c0 + r, c0 + nrows - 1), r < nrows, h, lane, r, stage, x[i]);
    }
}

// ... with the saved l2norm factors where there are (bp_saved_l2: one branch for both rows).
template <int WANT>
__device__ __forceinline__ void bp_role_rows2(const attnc_bwd_params &p, int c0, int nrows, int h, int lane, int r0,
                                              const unsigned char *stage, bp_roles (&x)[2])
{
    if (bp_saved_l2<WANT>(p))
        bp_role_pair<WANT | ATTNC_ROLE_L2F>(p, c0, nrows, h, lane, r0, stage, x);
    else
        bp_role_pair<WANT>(p, c0, nrows, h, lane, r0, stage, x);
}

// Their gates into g (per channel: row r's [LDG] row) and, where asked, betas into beta[r].
__device__ __forceinline__ void bp_store_gates2(const bp_roles (&x)[2], int r0, float *g, float *beta, int lane)
{
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const int r = r0 + i * ATTNC_B_WARPS;
#if ATTNC_BP_DIAG
#pragma unroll
        for (int s = 0; s < ATTNC_BP_NG; s++)
            if (lane + 32 * s < ATTNC_BP_KP)
                g[r * ATTNC_BP_LDG + lane + 32 * s] = x[i].g[s];
#else
        if (lane == 0)
            g[r] = x[i].g[0];
#endif
        if (beta && lane == 0)
            beta[r] = x[i].beta;
    }
}

// Tile columns [0, W) of a row from a role's slots x: column c from slot s0 + c / 32 of lane c % 32 (0 past
// the slots), rounded into hi and, with LO, the remainder into lo (bp_split).  s0 (v0 / 32 for a V slice at
// v0) is a multiple of STEP below N, dispatched over its values here so that every slot index is a
// constant: a runtime index would put the slots in local memory.
template <int W, bool LO, int STEP = 1, int S0 = 0, int N>
__device__ __forceinline__ void bp_regs_row(const float (&x)[N], int s0, elt *hi, elt *lo, int lane)
{
    if constexpr (S0 + STEP < N)
        if (s0 != S0) {
            bp_regs_row<W, LO, STEP, S0 + STEP>(x, s0, hi, lo, lane);
            return;
        }
#pragma unroll
    for (int j = 0; j < (W + 31) / 32; j++) {
        const int s = S0 + j, c = lane + 32 * j;
        const float y = s < N ? x[s < N ? s : 0] : 0.f;
        if (c < W) {
            elt eh, el;
            bp_split(y, eh, el);
            hi[c] = eh;
            if constexpr (LO)
                lo[c] = el;
        }
    }
}

// bp_copy_row of rows r0 and r0 + ATTNC_B_WARPS of a tile of row stride ld: both rows' loads, then both
// stores.
template <int W>
__device__ __forceinline__ void bp_copy_rows2(const unsigned char *stage, int off, int len, int r0, int c_lo, int nrows,
                                              elt *dst, int ld, int lane)
{
    bp_row_piece<W> pc[2];
#pragma unroll
    for (int i = 0; i < 2; i++)
        bp_copy_load<W>(stage, off, len, r0 + i * ATTNC_B_WARPS, c_lo, r0 + i * ATTNC_B_WARPS < nrows, pc[i], lane);
#pragma unroll
    for (int i = 0; i < 2; i++)
        bp_copy_store<W>(pc[i], dst + (r0 + i * ATTNC_B_WARPS) * ld, lane);
}

// Tile rows r0 and r0 + ATTNC_B_WARPS (KP columns, row stride LDK) of the query or key role: its staged bf16
// input rows as they are (STAGE >= 0), else the slots x[i] (the query's or the key's: QK ATTNC_ROLE_Q or
// ATTNC_ROLE_K) rounded; where the tiles hold the l2norm's input rows (ATTNC_BP_QK_RAW) those, and the rows'
// factors into fac[r] (bp_rf).
template <int STAGE, int QK>
__device__ __forceinline__ void bp_qk_tile_rows2(const unsigned char *stage, const bp_roles (&x)[2], int r0, int nrows,
                                                 elt *dst, int lane, float *fac)
{
    constexpr int RAW = QK == ATTNC_ROLE_Q ? ATTNC_BP_Q_RAW_STAGE : ATTNC_BP_K_RAW_STAGE;
    constexpr int FROM = ATTNC_BP_QK_RAW ? RAW : STAGE;   // the staged rows copied as they are, if any
    if constexpr (FROM >= 0) {
        bp_copy_rows2<ATTNC_BP_KP>(stage, FROM, ATTNC_B_K, r0, 0, nrows, dst, ATTNC_BP_LDK, lane);
        if (ATTNC_BP_QK_RAW && lane == 0)
#pragma unroll
            for (int i = 0; i < 2; i++)
                fac[r0 + i * ATTNC_B_WARPS] = x[i].qkf[QK == ATTNC_ROLE_Q ? 0 : 1];
    } else {
        (void)fac;
#pragma unroll
        for (int i = 0; i < 2; i++) {
            elt *row = dst + (r0 + i * ATTNC_B_WARPS) * ATTNC_BP_LDK;
            if constexpr (QK == ATTNC_ROLE_Q)
                bp_regs_row<ATTNC_BP_KP, false>(x[i].q, 0, row, row, lane);
            else
                bp_regs_row<ATTNC_BP_KP, false>(x[i].k, 0, row, row, lane);
        }
    }
}

// The walks' Kd = K e^{b_L - b} (KD) or Qg = Q e^{b} in place over the tile X [C][LDK], each element rounded
// once more to the tile type (attnc_float_to_elt(attnc_elt_to_float(x) * f)); one thread per 8 consecutive
// columns of a row (one 16-byte load and store of 16-bit tiles), the row's factor formed once (per column
// with per-channel gates).  g: the chunk-local sums b.  By ATTNC_B_THREADS threads, this one tid among them.
template <bool KD>
__device__ __forceinline__ void bp_scale_rows(elt *X, const float *g, int tid = (int)threadIdx.x, const float *fac = nullptr)
{
    constexpr int ROW = ATTNC_BP_KP / 8;
    for (int i = tid; i < ATTNC_BP_C * ROW; i += ATTNC_B_THREADS) {
        const int r = i / ROW, c = i % ROW * 8;
        float x[8];
        ld8(x, X + r * ATTNC_BP_LDK + c);
#if ATTNC_BP_DIAG
#pragma unroll
        for (int e = 0; e < 8; e++)
            x[e] *= KD ? bp_dec(BP_B(g, ATTNC_BP_C - 1, c + e) - BP_B(g, r, c + e)) : bp_dec(BP_B(g, r, c + e));
#else
        const float f = (KD ? bp_dec(g[ATTNC_BP_C - 1] - g[r]) : bp_dec(g[r])) * bp_rf(fac, r);   // (fac: bp_mma_at_decayed's)
#pragma unroll
        for (int e = 0; e < 8; e++)
            x[e] *= f;
#endif
        st8(X + r * ATTNC_BP_LDK + c, x);
    }
}

// Staging: every kernel of the schedule waits on its chunk's rows, so they are copied asynchronously
// (cp.async) into shared memory: the spec's per-token inputs (the generated attnc_bwd_stage_issue, as the
// forward's) and the output gradient's rows (bp_stage_dout), the walks issuing the next chunk's copies as
// soon as this one's rows are formed (attnc_stage_wait, support.cuh).  One row of the output gradient there: W columns from c_lo of dout,
// or of d(x) (ws_do, fp32) with a normaliser; columns past the row's end are not copied (bp_staged_dout
// reads them as 0).
template <int W>
__device__ __forceinline__ void bp_stage_dout(const attnc_bwd_params &p, int c0, int n, int h, int c_lo, unsigned char *dst)
{
    constexpr int ES = ATTNC_BP_DO_ES, NC = ATTNC_BP_DO_COLS, UNIT = ATTNC_BP_DO_UNIT, PER = UNIT / ES, U = W / PER;
    static_assert(W % PER == 0, "whole copy units per staged row");
    const unsigned char *src = ATTNC_B_NORM != ATTNC_BP_NORM_NONE ? (const unsigned char *)p.ws_do : (const unsigned char *)p.dout;
    for (int i = threadIdx.x; i < n * U; i += ATTNC_B_THREADS) {
        const int r = i / U, c = c_lo + (i % U) * PER;
        if (c >= NC)
            continue;
        const unsigned char *from = src + (((size_t)(c0 + r) * ATTNC_HOUT + h) * NC + c) * ES;
        unsigned char *to = dst + ((size_t)r * W + (c - c_lo)) * ES;
        if constexpr (UNIT == 2)
            *(unsigned short *)to = *(const unsigned short *)from;
        else if constexpr (UNIT == 16)
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(smem_u32(to)), "l"(from) : "memory");
        else if constexpr (UNIT == 8)
            asm volatile("cp.async.ca.shared.global [%0], [%1], 8;\n" :: "r"(smem_u32(to)), "l"(from) : "memory");
        else
            asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" :: "r"(smem_u32(to)), "l"(from) : "memory");
    }
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

// Element (r, c) (c relative to c_lo) of the staged output gradient; 0 past its row's end or past the chunk.
template <int W>
__device__ __forceinline__ float bp_staged_dout(const unsigned char *st, int r, int c_lo, int c, int nrows)
{
    if (r >= nrows || c_lo + c >= ATTNC_BP_DO_COLS)
        return 0.f;
    if constexpr (ATTNC_B_NORM != ATTNC_BP_NORM_NONE)
        return ((const float *)st)[r * W + c];
    else
        return attnc_load<ATTNC_OUT_DTYPE>(st, (size_t)r * W + c);
}

// The reverse walks' dO slice rows r0 and r0 + ATTNC_B_WARPS, two rows per pass (bp_roles): columns lane + 32 j
// read into registers with the pass's other reads, then written into the tile Y [C][LDS], rounded.
// W: the slice's columns (the walk's), Y's row stride W + 8.
#define ATTNC_BP_NY(W) (((W) + 31) / 32)
template <int W = ATTNC_BP_VS>
__device__ __forceinline__ void bp_dout_load2(const unsigned char *dstage, int r0, int v0, int nrows, int lane,
                                              float (&dy)[2][ATTNC_BP_NY(W)])
{
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < ATTNC_BP_NY(W); j++)
            dy[i][j] = lane + 32 * j < W ? bp_staged_dout<W>(dstage, r0 + i * ATTNC_B_WARPS, v0, lane + 32 * j, nrows) : 0.f;
}
template <int W = ATTNC_BP_VS>
__device__ __forceinline__ void bp_dout_store2(const float (&dy)[2][ATTNC_BP_NY(W)], elt *Y, int r0, int lane)
{
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < ATTNC_BP_NY(W); j++)
            if (lane + 32 * j < W)
                Y[(r0 + i * ATTNC_B_WARPS) * (W + 8) + lane + 32 * j] = attnc_float_to_elt(dy[i][j]);
}

// Sequence n's chunk of slot `slot`: false when no chunk has the slot.
__device__ __forceinline__ bool bp_slot_chunk(const attnc_bwd_params &p, int slot, int &n, int &c0, int &eos)
{
    int lo = 0, hi = p.nseq - 1, bos;
    while (lo < hi) {
        const int mid = (lo + hi + 1) >> 1;
        int b, e;
        attnc_seq_bounds(p.cu_seqlens, p.seqlen, mid, b, e);
        if (b / ATTNC_BP_C + mid <= slot)
            lo = mid;
        else
            hi = mid - 1;
    }
    n = lo;
    attnc_seq_bounds(p.cu_seqlens, p.seqlen, n, bos, eos);
    const int ci = slot - (bos / ATTNC_BP_C + n);
    c0 = bos + ci * ATTNC_BP_C;
    return ci >= 0 && c0 < eos;
}

// The image of (slot, h): its byte offset in ws_sin or ws_dso.
__device__ __forceinline__ size_t bp_image(int slot, int h)
{
    return ((size_t)slot * ATTNC_HOUT + h) * ATTNC_BP_IMG_BYTES;
}

// The scale 2^e of the mantissas of G n-tiles from g0, row half hf (registers 2 hf, 2 hf + 1: rows lane / 4 and 8
// below) of a warp's accumulators, the max taken over the quad that holds the row (attnc_img_exp; every lane
// must call it: the shuffles); up = 2^-e.
template <int G>
__device__ __forceinline__ float bp_group_scale(const float (*acc)[4], int g0, int hf, float &up)
{
    float mx = 0.f;
#pragma unroll
    for (int nt = g0; nt < g0 + G; nt++) {
        mx = attnc_absmax_nan(mx, acc[nt][2 * hf]);
        mx = attnc_absmax_nan(mx, acc[nt][2 * hf + 1]);
    }
    mx = attnc_absmax_nan(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = attnc_absmax_nan(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    return attnc_img_exp(mx, up);
}

// A warp's 16 state rows from m0 (its accumulators, NT n-tiles from column v0: the walk's slice) into the
// image (16-bit tiles): per row and image slice (ATTNC_BP_VS columns: the walk's, or a quarter of the delta
// rule's wide walks'), e = ilogb(max |x|) - 14 (at least -126; the max from the quad that holds the row,
// keeping a NaN: a NaN state gives a NaN image row), m = rint(x 2^-e) saturated to 16 bits (|x 2^-e| < 2^15,
// so only a rounding up to 2^15 saturates), the scale 2^e (NaN for a row with an inf or NaN).
template <int NT>
__device__ __forceinline__ void bp_img_store(unsigned char *img, float (*acc)[4], int m0, int v0, int lane)
{
#if ATTNC_BP_MIMG
    constexpr int GN = ATTNC_BP_VS / 8;   // n-tiles per image slice (a scale each): the walk's NT, or (the
    static_assert(NT % GN == 0, "whole image slices");   // delta rule's wide walks) a part of it
    short *man = (short *)img;
    float *scale = (float *)(img + ATTNC_BP_KP * ATTNC_BP_VP * 2);
#pragma unroll
    for (int hf = 0; hf < 2; hf++)   // rows m0 + lane / 4 (registers 0, 1) and 8 below (2, 3)
#pragma unroll
        for (int g0 = 0; g0 < NT; g0 += GN) {
            float up;
            const float sc = bp_group_scale<GN>(acc, g0, hf, up);
            const int d = bp_row(m0, lane, 2 * hf);
            // four n-tiles at a time: 16-byte stores (attnc_quad_transpose); not in the delta rule's narrow
            // walks (4 n-tiles), which measured 3 % slower with them (their stores are few, their chain short)
            if constexpr (GN % 4 == 0 && NT >= 8) {
#pragma unroll
                for (int t = g0; t < g0 + GN; t += 4) {
                    unsigned w[4];
#pragma unroll
                    for (int j = 0; j < 4; j++)
                        w[j] = attnc_pack_s16(acc[t + j][2 * hf] * up, acc[t + j][2 * hf + 1] * up);
                    attnc_quad_transpose(w, lane);
                    *reinterpret_cast<attnc_u4 *>(man + (size_t)d * ATTNC_BP_VP + v0 + 8 * (t + (lane & 3))) =
                        attnc_u4{w[0], w[1], w[2], w[3]};
                }
            } else {
#pragma unroll
                for (int nt = g0; nt < g0 + GN; nt++)
                    *reinterpret_cast<unsigned *>(man + (size_t)d * ATTNC_BP_VP + bp_col(v0, nt, lane, 0)) =
                        attnc_pack_s16(acc[nt][2 * hf] * up, acc[nt][2 * hf + 1] * up);
            }
            if ((lane & 3) == 0)
                scale[d * ATTNC_BP_NSL + v0 / ATTNC_BP_VS + g0 / GN] = sc;
        }
#elif ATTNC_BP_LO   // bf16 images: each pair rounded once, four n-tiles a 16-byte store as above
    elt *x = (elt *)img;
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {
        const int d = bp_row(m0, lane, 2 * hf);
        if constexpr (NT % 4 == 0 && NT >= 8) {
#pragma unroll
            for (int t = 0; t < NT; t += 4) {
                unsigned w[4];
#pragma unroll
                for (int j = 0; j < 4; j++)
                    w[j] = pack2(acc[t + j][2 * hf], acc[t + j][2 * hf + 1]);
                attnc_quad_transpose(w, lane);
                *reinterpret_cast<attnc_u4 *>(x + (size_t)d * ATTNC_BP_VP + v0 + 8 * (t + (lane & 3))) = attnc_u4{w[0], w[1], w[2], w[3]};
                // one group's exchanges at a time: without this ptxas interleaved them all and the runs'
                // kernels at 128 registers spilled 40 to 96 bytes (lightning, sm_90a)
                __syncwarp();
            }
        } else {
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
                *reinterpret_cast<unsigned *>(x + (size_t)d * ATTNC_BP_VP + bp_col(v0, nt, lane, 0)) =
                    pack2(acc[nt][2 * hf], acc[nt][2 * hf + 1]);
        }
    }
#else   // fp32 images: the accumulators as they are (the walk stores its own as it scales them)
    elt *x = (elt *)img;
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int i = 0; i < 4; i += 2)
            st2(x + (size_t)bp_row(m0, lane, i) * ATTNC_BP_VP + bp_col(v0, nt, lane, i), acc[nt][i], acc[nt][i + 1]);
#endif
}

// The delta rule's chunk kernel's dk for the WY adjoint, compact (ATTNC_BD_DK16, passes/grad.c's bd_dk16): a row per
// token and head of KP 16-bit mantissas and KP / 16 scales, ATTNC_BD_DK16_ROW bytes, each scale for 16 columns (a
// quad's two n-tiles), formed as bp_img_store's (attnc_img_exp: 2^-15 of the group's largest at worst, far below
// the bf16 rounding that follows).  In fp32 those rows were 512 bytes a token and head at K = 128, written by one
// kernel and read by the next; here 288.  A warp's item: 16 rows from m0 and NT n-tiles from n0.
// Within a group of 16 columns the words lie in the quads' order, not the columns': lane q of a quad (q = lane & 3)
// holds the pairs at columns 2q and 8 + 2q of the group, and they sit side by side at byte 8q, so that each lane
// moves a group's row in one 8-byte access (in column order each pair was a 4-byte access of its own: 16 a lane
// and item where now 8); an item's scales go in one access where they align (bd_dk16_scales).
#define ATTNC_BD_DK16_ROW (ATTNC_BP_KP * 2 + ATTNC_BP_KP / 16 * 4)
// The widest access (in floats) for N consecutive scales of a row from group n0 / 16 (n0 a multiple of 8 N).
template <int N>
__host__ __device__ constexpr int bd_dk16_scale_width()
{
    return N % 4 == 0 && ATTNC_BD_DK16_ROW % 16 == 0 ? 4 : N % 2 == 0 && ATTNC_BD_DK16_ROW % 8 == 0 ? 2 : 1;
}
template <int N, bool LOAD>
__device__ __forceinline__ void bd_dk16_scales(const unsigned char *at, float (&sc)[N])
{
    constexpr int VW = bd_dk16_scale_width<N>();
#pragma unroll
    for (int i = 0; i < N; i += VW) {
        if constexpr (VW == 4) {
            float4 *v = (float4 *)(at + 4 * i);
            if constexpr (LOAD) {
                const float4 x = *v;
                sc[i] = x.x, sc[i + 1] = x.y, sc[i + 2] = x.z, sc[i + 3] = x.w;
            } else
                *v = make_float4(sc[i], sc[i + 1], sc[i + 2], sc[i + 3]);
        } else if constexpr (VW == 2) {
            float2 *v = (float2 *)(at + 4 * i);
            if constexpr (LOAD) {
                const float2 x = *v;
                sc[i] = x.x, sc[i + 1] = x.y;
            } else
                *v = make_float2(sc[i], sc[i + 1]);
        } else if constexpr (LOAD)
            sc[i] = *(const float *)(at + 4 * i);
        else
            *(float *)(at + 4 * i) = sc[i];
    }
}
// Byte offsets in a row: the words of group n0 / 16 + g for this lane, the scales of group n0 / 16.
__device__ __forceinline__ int bd_dk16_words_at(int n0, int g, int lane)
{
    return 2 * (n0 + 16 * g) + 8 * (lane & 3);
}
__device__ __forceinline__ int bd_dk16_scales_at(int n0)
{
    return ATTNC_BP_KP * 2 + n0 / 16 * 4;
}
template <int NT>
__device__ __forceinline__ void bd_dk16_store(void *ws, const float (*acc)[4], int m0, int n0, int lane, int c0, int nrows,
                                              int h)
{
    static_assert(NT % 2 == 0, "whole 16-column groups");
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {   // rows m0 + lane / 4 (registers 0, 1) and 8 below (2, 3)
        const int r = bp_row(m0, lane, 2 * hf);
        unsigned char *row = (unsigned char *)ws + ((size_t)(c0 + r) * ATTNC_HOUT + h) * ATTNC_BD_DK16_ROW;
        float sc[NT / 2];
#pragma unroll
        for (int g = 0; g < NT / 2; g++) {
            float up;
            sc[g] = bp_group_scale<2>(acc, 2 * g, hf, up);
            if (r < nrows)
                *reinterpret_cast<uint2 *>(row + bd_dk16_words_at(n0, g, lane)) =
                    make_uint2(attnc_pack_s16(acc[2 * g][2 * hf] * up, acc[2 * g][2 * hf + 1] * up),
                               attnc_pack_s16(acc[2 * g + 1][2 * hf] * up, acc[2 * g + 1][2 * hf + 1] * up));
        }
        if (r < nrows && (lane & 3) == 0)
            bd_dk16_scales<NT / 2, false>(row + bd_dk16_scales_at(n0), sc);
    }
}

// The same item's fragments read back (the WY adjoint): bd_dk16_fetch loads the words, then the scales (rows past
// nrows zeros), after the adjoint's products, and bd_dk16_value decodes each value where it is added, so that no
// register is held over the products (with the gated delta rule's terms the 32 floats held there spilled at its
// 128 registers, and so did the words alone).
template <int NT>
struct bd_dk16_raw {
    unsigned w[NT][2];       // n-tile nt's two column pairs, rows r and r + 8
    float sc[2][NT / 2];     // their groups' scales, rows r and r + 8
};
template <int NT>
__device__ __forceinline__ void bd_dk16_fetch(const void *ws, int m0, int n0, int lane, int c0, int nrows, int h,
                                              bd_dk16_raw<NT> &raw)
{
    auto row_at = [&](int hf) {
        return (const unsigned char *)ws + ((size_t)(c0 + bp_row(m0, lane, 2 * hf)) * ATTNC_HOUT + h) * ATTNC_BD_DK16_ROW;
    };
#pragma unroll
    for (int hf = 0; hf < 2; hf++)
#pragma unroll
        for (int g = 0; g < NT / 2; g++) {
            const bool in = bp_row(m0, lane, 2 * hf) < nrows;
            const uint2 w = in ? *reinterpret_cast<const uint2 *>(row_at(hf) + bd_dk16_words_at(n0, g, lane)) : make_uint2(0u, 0u);
            raw.w[2 * g][hf] = w.x;
            raw.w[2 * g + 1][hf] = w.y;
        }
#pragma unroll
    for (int hf = 0; hf < 2; hf++)
        if (bp_row(m0, lane, 2 * hf) < nrows)
            bd_dk16_scales<NT / 2, true>(row_at(hf) + bd_dk16_scales_at(n0), raw.sc[hf]);
        else
#pragma unroll
            for (int g = 0; g < NT / 2; g++)
                raw.sc[hf][g] = 0.f;
}
// Register i (mma fragment order) of n-tile nt.
template <int NT>
__device__ __forceinline__ float bd_dk16_value(const bd_dk16_raw<NT> &raw, int nt, int i)
{
    const unsigned w = raw.w[nt][i >> 1];
    return (float)(short)(i & 1 ? w >> 16 : w & 0xffffu) * raw.sc[i >> 1][nt / 2];
}

// Element (d, c) of an image, as the chunk kernel's tiles hold it (16-bit: hi + lo, m 2^e exactly).
__device__ __forceinline__ float bp_img_at(const unsigned char *img, int d, int c)
{
#if ATTNC_BP_MIMG
    return (float)((const short *)img)[(size_t)d * ATTNC_BP_VP + c] *
           ((const float *)(img + ATTNC_BP_KP * ATTNC_BP_VP * 2))[d * ATTNC_BP_NSL + c / ATTNC_BP_VS];
#else
    return attnc_elt_to_float(((const elt *)img)[(size_t)d * ATTNC_BP_VP + c]);
#endif
}

// Element (r, c) of the chunk's output gradient: d(x) (normalisers, ws_do) or dout.
__device__ __forceinline__ float bp_dout(const attnc_bwd_params &p, int t, int h, int c)
{
    const size_t row = (size_t)t * ATTNC_HOUT + h;
    if constexpr (ATTNC_B_NORM != ATTNC_BP_NORM_NONE)
        return c < ATTNC_B_V ? p.ws_do[row * ATTNC_B_V + c] : 0.f;
    else
        return c < ATTNC_B_VO ? attnc_load<ATTNC_OUT_DTYPE>(p.dout, row * ATTNC_B_VO + c) : 0.f;
}

// A query, key or value role gradient [T, HOUT, LEN] (LEN: K or V): into its fp32 workspace ws (TENSOR < 0), or
// (TENSOR >= 0: the role is that input tensor as stored, or times `scale`, and nothing else reads it,
// passes/grad.c's bp_direct)
// straight into the caller's gradient of the tensor in its dtype DT, where it is wanted (direct non-null): the
// adjoint neither reads it back nor writes the tensor, and the host allocates no workspace for the role.
// These are the four accumulator elements x of n-tile nt of a product's row block m0 (rows bp_row, columns
// bp_col: two rows of two adjacent columns), for the chunk's rows from token c0, rows r < nrows only.  Each
// pair of columns goes as one store where both exist and LEN is even (the pair's address is then aligned: a
// direct tensor is staged, so api/backward.c holds its gradient to the staging unit of its rows, 4 bytes or
// more for an even LEN): one store a pair halved the stores whose queue stalled simple_gla's chunk kernel
// (ncu on the H200: 7 % of its samples on single 2-byte stores).
// The caller's gradient of input tensor TENSOR (null where not wanted), for bp_role_grad_frag's direct
// writes; null for TENSOR < 0 (the role has a workspace).
template <int TENSOR>
__device__ __forceinline__ void *bp_direct(const attnc_bwd_params &p)
{
    if constexpr (TENSOR >= 0)
        return p.direct[TENSOR];
    else
        return nullptr;
}

// A role that is the tensor times a constant (scale, ATTNC_BP_DQ_SCALE: the query's folded K^-0.5) has the
// tensor's gradient 0 + x * scale, the value DAG's adjoint's arithmetic (its sums start at 0), so the bits are
// those attnc_bwd_inputs would write from the workspace.
template <int TENSOR, int DT, int LEN>
__device__ __forceinline__ void bp_role_grad_frag(float *ws, void *direct, const float xr[4], int m0, int n0, int nt,
                                                  int lane, int c0, int nrows, int h, float scale = 1.f)
{
    if (TENSOR >= 0 && !direct)
        return;
    float x[4];
#pragma unroll
    for (int i = 0; i < 4; i++)
        x[i] = TENSOR < 0 || scale == 1.f ? xr[i] : 0.f + xr[i] * scale;
#pragma unroll
    for (int i = 0; i < 4; i += 2) {
        const int r = bp_row(m0, lane, i), c = bp_col(n0, nt, lane, i);
        if (r >= nrows || c >= LEN)
            continue;
        const size_t e = ((size_t)(c0 + r) * ATTNC_HOUT + h) * LEN + c;   // even when LEN is
        if constexpr (LEN % 2 == 0) {
            if (TENSOR < 0 || DT == ATTNC_DT_FP32)
                *reinterpret_cast<float2 *>((TENSOR < 0 ? ws : (float *)direct) + e) = make_float2(x[i], x[i + 1]);
            else if (DT == ATTNC_DT_FP16)
                ((unsigned *)direct)[e / 2] = attnc_float_to_f16(x[i]) | (unsigned)attnc_float_to_f16(x[i + 1]) << 16;
            else
                ((unsigned *)direct)[e / 2] = attnc_float_to_bf16(x[i]) | (unsigned)attnc_float_to_bf16(x[i + 1]) << 16;
        } else {
            for (int k = 0; k < 2 && c + k < LEN; k++) {
                if constexpr (TENSOR < 0)
                    ws[e + k] = x[i + k];
                else
                    attnc_bwd_store(direct, e + k, x[i + k], DT);
            }
        }
    }
}

// The l2norm's adjoint for a direct role that is s * l2norm(x) of an input tensor x of LEN channels
// (ATTNC_BP_DQ_L2, ATTNC_BP_DK_L2: passes/grad.c's bp_direct_l2): the tensor's gradient from the role's, dx =
// inv (g - y (g . y)) with g = s * (the role's gradient), y = x inv, inv = 1 / sqrt(x . x + 1e-6), the rule
// attnc_bwd_inputs' adjoint applies, here on a product's fragments, whose rows' columns lie in ng column
// groups of warps.  bp_l2_load: the fragment's raw x (issued before the products, which cover its latency);
// bp_l2_parts: its rows' partial sums of g . x and x . x over the fragment's columns into red[cg][C] and
// red[ng + cg][C]; after a barrier, bp_l2_finish turns acc into dx from the sums over every group, in a fixed
// order.
template <int NT, int TENSOR, int DT, int LEN>
__device__ __forceinline__ void bp_l2_load(const attnc_bwd_params &p, float (*x)[4], int m0, int n0, int lane, int c0, int nrows,
                                           int h)
{
    static_assert(TENSOR >= 0, "the role is an input tensor's l2norm");
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int i = 0; i < 4; i += 2) {
            const int r = bp_row(m0, lane, i), c = bp_col(n0, nt, lane, i);
            const size_t e = ((size_t)(c0 + r) * ATTNC_HOUT + h) * LEN + c;   // even when LEN is
            if constexpr (LEN % 2 == 0 && DT != ATTNC_DT_FP32) {   // the pair at once (a staged tensor: aligned)
                const unsigned w = r < nrows && c < LEN ? __ldg((const unsigned *)p.in[TENSOR] + e / 2) : 0u;
                x[nt][i] = DT == ATTNC_DT_BF16 ? attnc_bf16_to_float((unsigned short)(w & 0xffffu))
                                               : attnc_f16_to_float((unsigned short)(w & 0xffffu));
                x[nt][i + 1] = DT == ATTNC_DT_BF16 ? attnc_bf16_to_float((unsigned short)(w >> 16))
                                                   : attnc_f16_to_float((unsigned short)(w >> 16));
            } else {
#pragma unroll
                for (int k = 0; k < 2; k++)
                    x[nt][i + k] = r < nrows && c + k < LEN ? attnc_load_in<DT>(p.in[TENSOR], e + k) : 0.f;
            }
        }
}

template <int NT>
__device__ __forceinline__ void bp_l2_parts(const float (*acc)[4], const float (*x)[4], float s, int m0, int cg, int ng,
                                            float *red, int lane)
{
    float gx[2] = {0.f, 0.f}, xx[2] = {0.f, 0.f};
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            gx[i >> 1] += s * acc[nt][i] * x[nt][i];
            xx[i >> 1] += x[nt][i] * x[nt][i];
        }
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {
        gx[hf] = quad_sum(gx[hf]);
        xx[hf] = quad_sum(xx[hf]);
        if ((lane & 3) == 0) {
            red[cg * ATTNC_BP_C + m0 + (lane >> 2) + 8 * hf] = gx[hf];
            red[(ng + cg) * ATTNC_BP_C + m0 + (lane >> 2) + 8 * hf] = xx[hf];
        }
    }
}

// With raw rows (RAW: acc holds f dy, f = s inv the l2norm's factor times the role's constant, ATTNC_BP_QK_RAW) the
// same dx is acc - x inv^2 (acc . x), s being 1 in the parts' sums.
template <int NT, bool RAW = false>
__device__ __forceinline__ void bp_l2_finish(float (*acc)[4], const float (*x)[4], float s, int m0, int ng, const float *red,
                                             int lane)
{
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {
        const int r = m0 + (lane >> 2) + 8 * hf;
        float gx = 0.f, xx = 0.f;
        for (int cg = 0; cg < ng; cg++) {
            gx += red[cg * ATTNC_BP_C + r];
            xx += red[(ng + cg) * ATTNC_BP_C + r];
        }
        const float inv = 1.f / sqrtf(xx + 1e-6f), gy = gx * inv * inv;   // y (g . y) = x inv^2 (g . x)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int i = 2 * hf; i < 2 * hf + 2; i++)
                if constexpr (RAW)
                    acc[nt][i] -= x[nt][i] * gy;
                else
                    acc[nt][i] = inv * (s * acc[nt][i] - x[nt][i] * gy);
    }
}

// A role's gradient (query or key), NITEMS items of 16 rows and 8 NT columns (NG column groups a row), each
// formed by form(item, acc), into its workspace or tensor (bp_role_grad_frag, scale applied); where the role
// is the tensor's l2norm (L2), through the norm's adjoint: a warp's items and their raw rows held over a
// barrier, the rows' sums in red ([2 NG][C] floats the caller's threads read nothing else of until the next
// barrier).  Every thread of the CTA comes here; a barrier follows the items either way.  Where the tiles hold
// raw rows (ATTNC_BP_QK_RAW: every role through an l2norm here is the delta rule's query or key) form gives the
// gradient times the row's factor, which the norm's adjoint takes as it is (bp_l2_finish's RAW).
template <int NT, int NG, int NITEMS, bool L2, int TENSOR, int DT, int LEN, typename Form>
__device__ __forceinline__ void bp_role_grad_items(const attnc_bwd_params &p, Form form, float *ws, void *direct, float scale,
                                                   float *red, int warp, int lane, int c0, int nrows, int h)
{
    constexpr bool RAW = L2 && ATTNC_BP_QK_RAW;
    if constexpr (RAW)
        scale = 1.f;
    if constexpr (!L2) {
        for (int item = warp; item < NITEMS; item += ATTNC_B_WARPS) {
            float acc[NT][4];
            form(item, acc);
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
                bp_role_grad_frag<TENSOR, DT, LEN>(ws, direct, acc[nt], item / NG * 16, item % NG * 8 * NT, nt, lane, c0, nrows, h,
                                                   scale);
        }
        __syncthreads();
    } else {
        constexpr int ITEMS = (NITEMS + ATTNC_B_WARPS - 1) / ATTNC_B_WARPS;
        float acc[ITEMS][NT][4], x[ITEMS][NT][4];
#pragma unroll
        for (int it = 0; it < ITEMS; it++) {
            const int item = warp + it * ATTNC_B_WARPS;
            if (item < NITEMS) {
                bp_l2_load<NT, TENSOR, DT, LEN>(p, x[it], item / NG * 16, item % NG * 8 * NT, lane, c0, nrows, h);
                form(item, acc[it]);
                bp_l2_parts<NT>(acc[it], x[it], scale, item / NG * 16, item % NG, NG, red, lane);
            }
        }
        __syncthreads();
#pragma unroll
        for (int it = 0; it < ITEMS; it++) {
            const int item = warp + it * ATTNC_B_WARPS;
            if (item < NITEMS) {
                bp_l2_finish<NT, RAW>(acc[it], x[it], scale, item / NG * 16, NG, red, lane);
#pragma unroll
                for (int nt = 0; nt < NT; nt++)
                    bp_role_grad_frag<TENSOR, DT, LEN>(ws, direct, acc[it][nt], item / NG * 16, item % NG * 8 * NT, nt, lane, c0,
                                                       nrows, h);
            }
        }
    }
}

// ---- passes 1 and 2: the state walks ------------------------------------------------------------------
// The walks' chunk `it` of their order (forward: first to last; reverse: last to first): its first token.
template <bool REV>
__device__ __forceinline__ int bp_walk_c0(int bos, int nchunks, int it)
{
    return bos + (REV ? nchunks - 1 - it : it) * ATTNC_BP_C;
}

// The staged input rows a kernel copies (attnc_bwd_stage_issue's WANT): those of the roles it reads (formed
// through the value DAG or copied from the rows as they are), and always the gates' and beta's (a few bytes a
// row); the generated staging copies a tensor where any role it feeds is wanted (codegen/cuda_bwd.c's
// plan_stage_roles).
__host__ __device__ constexpr unsigned bp_stage_want(unsigned roles)
{
    return roles | ATTNC_ROLE_GATE | ATTNC_ROLE_BETA;
}

// The copies of a walk's chunk from token c0 into shared memory: the input rows of the roles SW (a mask) and
// (reverse) its dO slice; issued for the first chunk before the walk, and for the next while this one is used.
template <bool REV, int W, unsigned SW>
__device__ __forceinline__ void bp_walk_issue(const attnc_bwd_params &p, int c0, int eos, int h, int v0, unsigned char *stage,
                                              unsigned char *dstage, attnc_bwd_stage_held *held)
{
    attnc_bwd_stage_issue<false, SW>(p, c0, eos, h, stage, held);   // (unrolled, gated_deltanet's bwdp_states spilled)
    if constexpr (REV)
        bp_stage_dout<W>(p, c0, min(ATTNC_BP_C, eos - c0), h, v0, dstage);
}

// Element (d, c) of the walks' state at the start: h0 and z0 (forward), or dhT and dzT (reverse; only the
// first output head of a state head's group is seeded); zero where absent.
template <bool REV>
__device__ __forceinline__ float bp_state_start(const attnc_bwd_params &p, int n, int h, int d, int c)
{
    constexpr int G = ATTNC_HOUT / ATTNC_HS;
    const int hs = h / G;
    const bool seeded = h % G == 0;
    const size_t state_base = ((size_t)n * ATTNC_HS + hs) * ATTNC_B_K * ATTNC_B_VO;
    const size_t z_base = ((size_t)n * ATTNC_HS + hs) * ATTNC_B_K;
    if (d >= ATTNC_B_K)
        return 0.f;
    if (c < ATTNC_B_VO)
        return REV ? (seeded && p.dhT ? p.dhT[state_base + (size_t)d * ATTNC_B_VO + c] : 0.f)
                   : (p.h0 ? p.h0[state_base + (size_t)d * ATTNC_B_VO + c] : 0.f);
    if (c < ATTNC_B_V)
        return REV ? (seeded && p.dzT ? p.dzT[z_base + d] : 0.f) : (p.z0 ? p.z0[z_base + d] : 0.f);
    return 0.f;
}

// The reverse walk's end, element (d, c): dS_in of the first chunk is this output head's share of dh0 (and dz0).
__device__ __forceinline__ void bp_state_dh0(const attnc_bwd_params &p, int n, int h, int d, int c, float x)
{
    if (d >= ATTNC_B_K)
        return;
    if (c < ATTNC_B_VO && p.ws_dh0)
        p.ws_dh0[(((size_t)n * ATTNC_HOUT + h) * ATTNC_B_K + d) * ATTNC_B_VO + c] = x;
    else if (c == ATTNC_B_VO && ATTNC_B_V > ATTNC_B_VO && p.ws_dz0)
        p.ws_dz0[((size_t)n * ATTNC_HOUT + h) * ATTNC_B_K + d] = x;
}

// The walks' state slice (warp rows m0.., NT n-tiles from column v0) at the start.
template <bool REV, int NT>
__device__ __forceinline__ void bp_walk_init(const attnc_bwd_params &p, float (*acc)[4], int n, int h, int m0, int v0, int lane)
{
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++)
            acc[nt][i] = m0 < ATTNC_BP_KP ? bp_state_start<REV>(p, n, h, bp_row(m0, lane, i), bp_col(v0, nt, lane, i)) : 0.f;
}

// The reverse walk's end: its state slice into dh0 (and dz0).
template <int NT>
__device__ __forceinline__ void bp_walk_dh0(const attnc_bwd_params &p, const float (*acc)[4], int n, int h, int m0, int v0,
                                            int lane)
{
    if (m0 >= ATTNC_BP_KP)
        return;
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++)
            bp_state_dh0(p, n, h, bp_row(m0, lane, i), bp_col(v0, nt, lane, i), acc[nt][i]);
}

#if !ATTNC_BP_DELTA && !ATTNC_BP_WIDE_PASS   // the delta rule's walks: linear_bwd_delta_kernel.cuh
struct attnc_bp_walk_layout {   // offsets in bytes
    static constexpr unsigned x = 0;                                                   // K or Q (bp_walk_frag), else Kd or Qg [C][LDK]
    static constexpr unsigned y = x + ATTNC_BP_C * ATTNC_BP_LDK * sizeof(elt);          // V or dO slice [C][LDS]
    static constexpr unsigned ylo = y + ATTNC_BP_C * ATTNC_BP_LDS * sizeof(elt);        // V's remainder
    static constexpr unsigned g = ylo + (ATTNC_BP_VLO ? ATTNC_BP_C * ATTNC_BP_LDS * sizeof(elt) : 0);   // b [C]
    static constexpr unsigned stg = g + ATTNC_BP_C * (ATTNC_BP_DIAG ? ATTNC_BP_LDG : 1) * 4;   // role rows, per warp (!REGS)
    static constexpr unsigned stage = stg + ATTNC_B_WARPS * ATTNC_BP_STG * 4;           // the chunk's input rows
    static constexpr unsigned dstage = stage + ATTNC_BP_STAGE_BYTES;                    // its dO slice [C][VS]
    static constexpr unsigned bytes = dstage + ATTNC_BP_C * ATTNC_BP_VS * ATTNC_BP_DO_ES;
};
// ldmatrix reads 16-byte rows: every tile starts and every row stride is a multiple of 16 bytes
static_assert(attnc_bp_walk_layout::y % 16 == 0 && attnc_bp_walk_layout::ylo % 16 == 0 &&
              attnc_bp_walk_layout::stage % 16 == 0 && attnc_bp_walk_layout::dstage % 16 == 0 &&
              ATTNC_BP_LDK * sizeof(elt) % 16 == 0 && ATTNC_BP_LDS * sizeof(elt) % 16 == 0 &&
              ATTNC_BP_LDV * sizeof(elt) % 16 == 0 && ATTNC_BP_LDC * sizeof(elt) % 16 == 0, "16-byte tile rows");

template <bool REV, bool RUNS_ONLY = false>
__device__ __forceinline__ void bp_walk(const attnc_bwd_params &p)
{
    extern __shared__ __align__(128) unsigned char bsm[];
    using L = attnc_bp_walk_layout;
    elt *X = (elt *)(bsm + L::x), *Y = (elt *)(bsm + L::y), *Ylo = (elt *)(bsm + L::ylo);
    float *g = (float *)(bsm + L::g);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int n = blockIdx.x, h = blockIdx.y, v0 = blockIdx.z * ATTNC_BP_VS;
    constexpr int NT = ATTNC_BP_VS / 8;
    float *stg = (float *)(bsm + L::stg) + warp * ATTNC_BP_STG;
    unsigned char *stage = bsm + L::stage, *dstage = bsm + L::dstage;
    // p.bp_run == 0: the walk of sequence n's chunks (its order), the state carried from one to the next;
    // R > 0: the chunks of slots [blockIdx.x R, + R) each on its own, its product alone into its slot's image
    // (and, forward, its decay into ws_decay) for bp_scan_walk.  RUNS_ONLY: the _run kernels, launched for runs
    // alone, compile no walk (its carried state spilled simple_gla's forward one at 128 registers)
    const int run = p.bp_run;
    const bool walk = !RUNS_ONLY && run == 0;
    int bos = 0, eos = 0, first = 0, end;
    if (walk) {
        attnc_seq_bounds(p.cu_seqlens, p.seqlen, n, bos, eos);
        end = (eos - bos + ATTNC_BP_C - 1) / ATTNC_BP_C;
    } else {
        first = n * run;
        end = min(first + run, p.total / ATTNC_BP_C + p.nseq + 1);
    }
    // the CTA's chunk `it` (walk: of its order, `end` chunks; runs: the slot): its sequence, first token and
    // the sequence's end; from `it` on, the first that exists (a slot with no chunk is skipped), `end` where
    // none does
    auto chunk_from = [&](int it, int &cn, int &cc0, int &ceos) -> int {
        if (walk) {
            cn = n, cc0 = bp_walk_c0<REV>(bos, end, it), ceos = eos;
            return it;
        }
        while (it < end && !bp_slot_chunk(p, it, cn, cc0, ceos))
            it++;
        return it;
    };
    const int m0 = warp * 16;
    const bool owner = m0 < ATTNC_BP_KP;   // this warp holds state rows m0 .. m0 + 15
    unsigned char *image = REV ? (unsigned char *)p.ws_dso : (unsigned char *)p.ws_sin;
    float acc[NT][4];
    if (walk)
        bp_walk_init<REV, NT>(p, acc, n, h, m0, v0, lane);
    else
        bp_zero<NT>(acc);
    // the roles formed through the value DAG: q (reverse) or k and v (forward), those that are not bf16
    // inputs as stored (those are copied from the staged rows: XSTAGE, ATTNC_BP_V_STAGE)
    constexpr int XSTAGE = REV ? ATTNC_BP_Q_STAGE : ATTNC_BP_K_STAGE;
    // (the forward walk runs only where the forward saved no states: ATTNC_ROLE_UNSAVED, no saved l2norm factors)
    constexpr int WANT = REV ? (XSTAGE < 0 ? ATTNC_ROLE_Q : 0)
                             : (XSTAGE < 0 ? ATTNC_ROLE_K : 0) | (ATTNC_BP_V_STAGE < 0 ? ATTNC_ROLE_V : 0) | ATTNC_ROLE_UNSAVED;
    constexpr unsigned SW = bp_stage_want(REV ? ATTNC_ROLE_Q : ATTNC_ROLE_K | ATTNC_ROLE_V | ATTNC_ROLE_UNSAVED);   // the rows it copies
    // the rows in registers (bp_roles) unless the forward walk forms a V slice whose columns are not its lanes'
    constexpr bool REGS = REV || ATTNC_BP_V_STAGE >= 0 || ATTNC_BP_VS % 32 == 0 || ATTNC_BP_VS == ATTNC_BP_VP;
    if constexpr (!REGS)
        bp_zero_roles(stg, lane);
    attnc_bwd_stage_held held;   // the next chunk's rows of 2 bytes, loaded under this chunk's work
    int cn, c0, ceos;
    int it = chunk_from(first, cn, c0, ceos);
    if (it < end)
        bp_walk_issue<REV, ATTNC_BP_VS, SW>(p, c0, ceos, h, v0, stage, dstage, &held);
    while (it < end) {
        const int nrows = min(ATTNC_BP_C, ceos - c0);
        const int slot = c0 / ATTNC_BP_C + cn;
        int next_n, next_c0, next_eos;
        const int next = chunk_from(it + 1, next_n, next_c0, next_eos);
        attnc_bwd_stage_held_land(stage, held);
        attnc_stage_wait();
        __syncthreads();
        // the chunk's rows: k and the V slice (forward), q and the dO slice (reverse), the log2 gates
        if constexpr (REGS) {   // two rows per warp and pass, in registers (bp_roles)
            for (int r0 = warp; r0 < ATTNC_BP_C; r0 += 2 * ATTNC_B_WARPS) {
                bp_roles x[2];
                bp_role_rows2<WANT>(p, c0, nrows, h, lane, r0, stage, x);
                float dy[2][ATTNC_BP_NY(ATTNC_BP_VS)];   // reverse: the dO slice, read before the stores
                if constexpr (REV)
                    bp_dout_load2(dstage, r0, v0, nrows, lane, dy);
                bp_qk_tile_rows2<XSTAGE, REV ? ATTNC_ROLE_Q : ATTNC_ROLE_K>(stage, x, r0, nrows, X, lane, nullptr);
                if constexpr (!REV && ATTNC_BP_V_STAGE >= 0)
                    bp_copy_rows2<ATTNC_BP_VS>(stage, ATTNC_BP_V_STAGE, ATTNC_B_V, r0, v0, nrows, Y, ATTNC_BP_LDS, lane);
                bp_store_gates2(x, r0, g, nullptr, lane);
                if constexpr (REV)
                    bp_dout_store2(dy, Y, r0, lane);
                else if constexpr (ATTNC_BP_V_STAGE < 0)
#pragma unroll
                    for (int i = 0; i < 2; i++) {
                        // one slice: v0 is 0; else v0 / 32 a multiple of VS / 32
                        constexpr bool ONE = ATTNC_BP_VS == ATTNC_BP_VP;
                        const int r = r0 + i * ATTNC_B_WARPS;
                        bp_regs_row<ATTNC_BP_VS, ATTNC_BP_VLO, ONE ? ATTNC_BP_NV : ATTNC_BP_VS / 32>(
                            x[i].v, ONE ? 0 : v0 / 32, Y + r * ATTNC_BP_LDS, Ylo + r * ATTNC_BP_LDS, lane);
                    }
            }
        } else {   // a V slice at a v0 not a multiple of 32: its columns' channels are other lanes' (the role row)
            for (int r = warp; r < ATTNC_BP_C; r += ATTNC_B_WARPS) {
                bp_role_row<WANT>(p, c0 + r, r < nrows, h, lane, stg, g, r, stage);
                bp_qk_tile_row<XSTAGE>(stage, REV ? stg : stg + ATTNC_BP_KP, r, r < nrows, X + r * ATTNC_BP_LDK, lane);
                for (int c = lane; c < ATTNC_BP_VS; c += 32) {
                    elt hi, lo;
                    bp_split(stg[2 * ATTNC_BP_KP + v0 + c], hi, lo);
                    Y[r * ATTNC_BP_LDS + c] = hi;
                    if constexpr (ATTNC_BP_VLO)
                        Ylo[r * ATTNC_BP_LDS + c] = lo;
                }
                __syncwarp();
            }
        }
        __syncthreads();
        if (next < end)   // the next chunk's rows arrive while this one is used
            bp_walk_issue<REV, ATTNC_BP_VS, SW>(p, next_c0, next_eos, h, v0, stage, dstage, &held);
        if constexpr (ATTNC_BP_DIAG) {
            bp_scan_diag(g);
            __syncthreads();
        } else if constexpr (ATTNC_BP_GATED) {
            if (warp == 0)
                bp_scan(g, g, lane);
            __syncthreads();
        }
        if constexpr (!REV && ATTNC_BP_GATED)   // runs: the chunk's decay, once (the first V slice)
            if (!walk && blockIdx.z == 0)
                for (int d = tid; d < ATTNC_B_GK; d += ATTNC_B_THREADS)
                    p.ws_decay[((size_t)slot * ATTNC_HOUT + h) * ATTNC_B_GK + d] = bp_dec(BP_B(g, ATTNC_BP_C - 1, d));
        // Kd = K e^{b_L - b} (forward) or Qg = Q e^{b} (reverse), rounded once more to the tile type: in the
        // product's fragments (bp_walk_frag), else over the tile (per channel with a vector gate, fp32
        // tiles, and the forward walk's V remainder, whose second product reads the tile again)
        if constexpr (ATTNC_BP_GATED && !bp_walk_frag<REV>()) {
            bp_scale_rows<!REV>(X, g);
            __syncthreads();
        }
        // this chunk's incoming state (forward: S_in; reverse: dS_out) as an image, then the update
        // (state row d times e^{b_L} of its channel)
        // (the products written out in both branches: one shared copy between the walk's image store and the
        // runs' measured 3-6 % slower walks on the H200, simple_gla and gla at 8192 and 32768, fifteenth session)
        if (owner && !walk) {   // the chunk's product alone
            bp_walk_product<NT, REV>(acc, X, Y, ATTNC_BP_LDS, g, m0, lane);
            if constexpr (!REV && ATTNC_BP_VLO)
                bp_mma<NT, true, true>(acc, X, ATTNC_BP_LDK, m0, Ylo, ATTNC_BP_LDS, 0, 0, ATTNC_BP_C, lane);
            bp_img_store<NT>(image + bp_image(slot, h), acc, m0, v0, lane);
            bp_zero<NT>(acc);
        } else if (owner) {
#if ATTNC_BP_LO
            bp_img_store<NT>(image + bp_image(slot, h), acc, m0, v0, lane);
            if constexpr (ATTNC_BP_GATED) {
#pragma unroll
                for (int nt = 0; nt < NT; nt++)
#pragma unroll
                    for (int i = 0; i < 4; i += 2) {
                        const float fl = bp_dec(BP_B(g, ATTNC_BP_C - 1, bp_row(m0, lane, i)));
                        acc[nt][i] *= fl;
                        acc[nt][i + 1] *= fl;
                    }
            }
#else   // fp32 images: each pair stored as it is scaled
            elt *img = (elt *)(image + bp_image(slot, h));
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int i = 0; i < 4; i += 2) {
                    const int d = bp_row(m0, lane, i), c = bp_col(v0, nt, lane, i);
                    st2(img + (size_t)d * ATTNC_BP_VP + c, acc[nt][i], acc[nt][i + 1]);
                    const float fl = ATTNC_BP_GATED ? bp_dec(BP_B(g, ATTNC_BP_C - 1, d)) : 1.f;
                    acc[nt][i] *= fl;
                    acc[nt][i + 1] *= fl;
                }
#endif
            bp_walk_product<NT, REV>(acc, X, Y, ATTNC_BP_LDS, g, m0, lane);
            if constexpr (!REV && ATTNC_BP_VLO)
                bp_mma<NT, true, true>(acc, X, ATTNC_BP_LDK, m0, Ylo, ATTNC_BP_LDS, 0, 0, ATTNC_BP_C, lane);
        }
        // (no barrier here: the next chunk writes X, Y and g only after the one at the loop's top, and what
        // comes before it, the held rows' landing, writes only the staging, which no product reads)
        it = next, cn = next_n, c0 = next_c0, ceos = next_eos;
    }
    if (REV && walk)
        bp_walk_dh0<NT>(p, acc, n, h, m0, v0, lane);
}

#if ATTNC_BWD_WANT(ATTNC_BK_P_STATES)
extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS, 1) attnc_bwdp_states(attnc_bwd_params p)
{
    bp_walk<false>(p);
}
#endif

#if ATTNC_BWD_WANT(ATTNC_BK_P_DSTATES)
extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS, 1) attnc_bwdp_dstates(attnc_bwd_params p)
{
    bp_walk<true>(p);
}
#endif

#if ATTNC_BP_RUN2 && (!defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900)
// (sm_90 only: lightning's spilled at 128 registers on sm_80, where two CTAs' shared memory does not fit anyway.)
// The same kernels for the scanned walks' runs of products (p.bp_run > 0) at two CTAs an SM, where two fit
// in shared memory (passes/grad.c's bp_run2): a product carries no state from one chunk to the next, so a
// second CTA's work fills the barriers and latencies of the first; the walks, which carry a state in
// their registers, keep one CTA an SM and all the registers it wants.
#if ATTNC_BWD_WANT(ATTNC_BK_P_STATES_RUN)
extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS, 2) attnc_bwdp_states_run(attnc_bwd_params p)
{
    bp_walk<false, true>(p);
}
#endif

#if ATTNC_BWD_WANT(ATTNC_BK_P_DSTATES_RUN)
extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS, 2) attnc_bwdp_dstates_run(attnc_bwd_params p)
{
    bp_walk<true, true>(p);
}
#endif
#endif

// ---- passes 1 and 2 scanned: every chunk's product, then the recurrence elementwise -------------------
// A walk above carries its state through one sequence's chunks: latency-bound, one CTA per (sequence, head,
// V slice), so with fewer of those than SMs (B = 2, H = 16 at T = 32768: 32 CTAs for 132 SMs) most of the
// GPU idles.  Without the delta rule the recurrences are elementwise in the state, S_in(c+1) = e^{b_L(c)}
// S_in(c) + L_c with L_c = Kd_c^T V_c (forward), dS_out(c-1) = e^{b_L(c)} dS_out(c) + L'_c with L'_c = Qg_c^T
// d(x)_c (reverse), so they split: the walk kernels with p.bp_run = R > 0 form every chunk's product on its
// own (runs of R slots per CTA, as many CTAs as SMs) into the chunk's image slot and its decay e^{b_L} into
// ws_decay, then attnc_bwdp_scan_states (scan_dstates) walks the chunks once per state row (8 columns a
// lane, a row's lanes in one warp), the products read ATTNC_BP_SCAN_AHEAD chunks ahead and each slot
// overwritten with the state (the image format the chunk kernel reads: same rounding, same scale per row
// and slice).  The products pass through the image format (16-bit mantissas of the row's scale, or fp32):
// one rounding more than the walk, as fine as the state's own.  api/backward.c chooses the scan where the
// walks would have fewer CTAs than half the SMs.
#define ATTNC_BP_SCAN_AHEAD 8
// A lane holds 8 consecutive columns of a row (one 16-byte load of mantissas); a row takes LPR lanes, padded
// to a group of G (a power of two), so a warp holds 32 / G rows.  (A lane's columns lie in one image slice:
// slices are multiples of 16 columns.)  Eight columns a lane, not two: the scan is instruction-bound, and
// the per-step work of a row (its slices' maxima, its addresses) is shared by more columns.
#define ATTNC_BP_SCAN_LPR (ATTNC_BP_VP / 8)
#define ATTNC_BP_SCAN_G (ATTNC_BP_SCAN_LPR <= 2 ? 2 : ATTNC_BP_SCAN_LPR <= 4 ? 4 : ATTNC_BP_SCAN_LPR <= 8 ? 8 : ATTNC_BP_SCAN_LPR <= 16 ? 16 : 32)
#define ATTNC_BP_SCAN_RPW (32 / ATTNC_BP_SCAN_G)
#define ATTNC_BP_SCAN_ROWS (ATTNC_B_WARPS * ATTNC_BP_SCAN_RPW)   // state rows per CTA (api/backward.c's grid)
#define ATTNC_BP_SCAN_NSL (ATTNC_BP_VP / ATTNC_BP_VS)
static_assert(ATTNC_BP_SCAN_LPR <= 32, "a row in one warp");

struct bp_scan_item {   // a lane's 8 columns of one chunk's product row, their slice's scale, the row's decay
#if ATTNC_BP_LO
    attnc_u4 m;   // 8 mantissas (their scale sc) or 8 bf16
    float sc;
#else
    float4 x[2];
#endif
    float f;
};

// img: the lane's first column in the slot's image; scale: its slice's scale there; decay: the row's
// e^{b_L} (null: no decay).  Lanes without columns (active false) load nothing.
__device__ __forceinline__ void bp_scan_load(const unsigned char *img, const float *scale, const float *decay, bool active,
                                             bp_scan_item &r)
{
#if ATTNC_BP_LO
    r.m = active ? *reinterpret_cast<const attnc_u4 *>(img) : attnc_u4{0u, 0u, 0u, 0u};
    r.sc = active && ATTNC_BP_MIMG ? *scale : 0.f;
#else
    (void)scale;
    r.x[0] = active ? reinterpret_cast<const float4 *>(img)[0] : make_float4(0.f, 0.f, 0.f, 0.f);
    r.x[1] = active ? reinterpret_cast<const float4 *>(img)[1] : make_float4(0.f, 0.f, 0.f, 0.f);
#endif
    r.f = active && decay ? *decay : 1.f;
}

template <bool REV>
__device__ __forceinline__ void bp_scan_walk(const attnc_bwd_params &p)
{
    constexpr int AHEAD = ATTNC_BP_SCAN_AHEAD, G = ATTNC_BP_SCAN_G, NSL = ATTNC_BP_SCAN_NSL;
    const int lane = threadIdx.x & 31, li = lane % G;
    const int d = (blockIdx.z * ATTNC_B_WARPS + (threadIdx.x >> 5)) * ATTNC_BP_SCAN_RPW + lane / G;
    const int n = blockIdx.x, h = blockIdx.y, c = li * 8, sl = c / ATTNC_BP_VS;
    // every lane takes part in the shuffles; only those with columns of a row load and store
    const bool active = li < ATTNC_BP_SCAN_LPR && d < ATTNC_BP_KP;
    int bos, eos;
    attnc_seq_bounds(p.cu_seqlens, p.seqlen, n, bos, eos);
    const int nchunks = (eos - bos + ATTNC_BP_C - 1) / ATTNC_BP_C;
    // the lane's columns in the image of the walk's first chunk, and the step to the next chunk's (slots
    // are consecutive: forward up, reverse down)
    const int slot0 = bp_walk_c0<REV>(bos, nchunks, 0) / ATTNC_BP_C + n;
    const long long step = (REV ? -1ll : 1ll) * ATTNC_HOUT * ATTNC_BP_IMG_BYTES;
    const int drow = active ? d : 0;
    unsigned char *img = (unsigned char *)(REV ? p.ws_dso : p.ws_sin) + bp_image(slot0, h);
#if ATTNC_BP_MIMG
    unsigned char *col = img + ((size_t)drow * ATTNC_BP_VP + c) * 2;
    unsigned char *scl = img + ATTNC_BP_KP * ATTNC_BP_VP * 2 + (size_t)(drow * NSL + sl) * 4;
#elif ATTNC_BP_LO
    unsigned char *col = img + ((size_t)drow * ATTNC_BP_VP + c) * 2;
    unsigned char *scl = col;
    (void)sl;
#else
    unsigned char *col = img + ((size_t)drow * ATTNC_BP_VP + c) * 4;
    unsigned char *scl = col;
#endif
    const float *dec = nullptr;
    long long dstep = 0;
    if constexpr (ATTNC_BP_GATED) {
        dec = p.ws_decay + ((size_t)slot0 * ATTNC_HOUT + h) * ATTNC_B_GK + (ATTNC_B_GK > 1 && d < ATTNC_B_K ? d : 0);
        dstep = (REV ? -1ll : 1ll) * ATTNC_HOUT * ATTNC_B_GK;
        if (ATTNC_B_GK > 1 && d >= ATTNC_B_K)
            dstep = 0, dec = nullptr;   // padding rows: no decay (their state is 0)
    }
    float s[8];
#pragma unroll
    for (int e = 0; e < 8; e++)
        s[e] = active && c + e < ATTNC_BP_VP ? bp_state_start<REV>(p, n, h, d, c + e) : 0.f;
    bp_scan_item ring[AHEAD];
#pragma unroll
    for (int a = 0; a < AHEAD; a++)
        bp_scan_load(col + a * step, (const float *)(scl + a * step), dec ? dec + a * dstep : nullptr, active && a < nchunks,
                     ring[a]);
#pragma unroll 1
    for (int it0 = 0; it0 < nchunks; it0 += AHEAD)
#pragma unroll
        for (int a = 0; a < AHEAD; a++) {
            const int it = it0 + a;
            if (it >= nchunks)
                break;
            unsigned char *here = col + (long long)it * step;
            // the chunk's product, decoded (its loads complete) before its slot is overwritten
            float x[8];
#if ATTNC_BP_MIMG
            const short *mm = reinterpret_cast<const short *>(&ring[a].m);
#pragma unroll
            for (int e = 0; e < 8; e++)
                x[e] = (float)mm[e] * ring[a].sc;
#elif ATTNC_BP_LO
            const elt *xe = reinterpret_cast<const elt *>(&ring[a].m);
#pragma unroll
            for (int e = 0; e < 8; e++)
                x[e] = attnc_elt_to_float(xe[e]);
#else
            x[0] = ring[a].x[0].x, x[1] = ring[a].x[0].y, x[2] = ring[a].x[0].z, x[3] = ring[a].x[0].w;
            x[4] = ring[a].x[1].x, x[5] = ring[a].x[1].y, x[6] = ring[a].x[1].z, x[7] = ring[a].x[1].w;
#endif
            const float f = ring[a].f;
            __syncwarp();   // every lane's read of the row's scales before a lane writes them
            const long long ahead = (long long)(it + AHEAD) * step;
            bp_scan_load(col + ahead, (const float *)(scl + ahead), dec ? dec + (long long)(it + AHEAD) * dstep : nullptr,
                         active && it + AHEAD < nchunks, ring[a]);
            // the state into the slot, as bp_img_store forms it
#if ATTNC_BP_MIMG
            float mx = 0.f;
#pragma unroll
            for (int e = 0; e < 8; e++)
                mx = attnc_absmax_nan(mx, s[e]);
            if constexpr (NSL == 1 || ((ATTNC_BP_VS / 8) & (ATTNC_BP_VS / 8 - 1)) == 0) {
                // the slice's lanes are an aligned power-of-two group: a butterfly over it
#pragma unroll
                for (int o = (NSL == 1 ? G : ATTNC_BP_VS / 8) / 2; o > 0; o >>= 1)
                    mx = attnc_absmax_nan(mx, __shfl_xor_sync(0xffffffffu, mx, o));
            } else {   // slices of 48, 80, 96 or 112 columns: each slice's maximum over the row's group
                float mine = 0.f;
#pragma unroll
                for (int t = 0; t < NSL; t++) {
                    float m = sl == t ? mx : 0.f;
#pragma unroll
                    for (int o = G / 2; o > 0; o >>= 1)
                        m = attnc_absmax_nan(m, __shfl_xor_sync(0xffffffffu, m, o));
                    mine = sl == t ? m : mine;
                }
                mx = mine;
            }
            float up;
            const float sc = attnc_img_exp(mx, up);
            if (active) {
                unsigned w[4];
#pragma unroll
                for (int e = 0; e < 4; e++)
                    w[e] = attnc_pack_s16(s[2 * e] * up, s[2 * e + 1] * up);
                *reinterpret_cast<attnc_u4 *>(here) = attnc_u4{w[0], w[1], w[2], w[3]};
                if (c % ATTNC_BP_VS == 0)   // the slice's first lane
                    *reinterpret_cast<float *>(scl + (long long)it * step) = sc;
            }
#elif ATTNC_BP_LO
            if (active)
                *reinterpret_cast<attnc_u4 *>(here) = attnc_u4{pack2(s[0], s[1]), pack2(s[2], s[3]), pack2(s[4], s[5]), pack2(s[6], s[7])};
#else
            if (active) {
                reinterpret_cast<float4 *>(here)[0] = make_float4(s[0], s[1], s[2], s[3]);
                reinterpret_cast<float4 *>(here)[1] = make_float4(s[4], s[5], s[6], s[7]);
            }
#endif
#pragma unroll
            for (int e = 0; e < 8; e++)
                s[e] = fmaf(f, s[e], x[e]);
        }
    if constexpr (REV)
        if (active)
#pragma unroll
            for (int e = 0; e < 8; e++)
                bp_state_dh0(p, n, h, d, c + e, s[e]);
}

#if ATTNC_BWD_WANT(ATTNC_BK_P_SCAN_STATES)
extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS) attnc_bwdp_scan_states(attnc_bwd_params p)
{
    bp_scan_walk<false>(p);
}
#endif

#if ATTNC_BWD_WANT(ATTNC_BK_P_SCAN_DSTATES)
extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS) attnc_bwdp_scan_dstates(attnc_bwd_params p)
{
    bp_scan_walk<true>(p);
}
#endif

#endif   // !ATTNC_BP_DELTA && !ATTNC_BP_WIDE_PASS

// ---- pass 3 (and the normalisers' rows): one chunk ---------------------------------------------------
#if ATTNC_BP_DIAG
struct attnc_bp_chunk_layout {   // offsets in bytes; per-channel gates (passes/grad.c's grad_bp_chunk_smem, diag)
    static constexpr unsigned CK = ATTNC_BP_C * ATTNC_BP_LDK * sizeof(elt), CV = ATTNC_BP_C * ATTNC_BP_LDV * sizeof(elt);
    static constexpr unsigned CC = ATTNC_BP_C * ATTNC_BP_LDC * sizeof(elt), CKF = ATTNC_BP_C * ATTNC_BP_LDT * 4;
    static constexpr unsigned q = 0;                                           // Q, then Kd (dk's epilogue) [C][LDK]
    static constexpr unsigned k = q + CK;
    static constexpr unsigned v = k + CK;
    static constexpr unsigned vlo = v + CV;
    static constexpr unsigned dout = vlo + (ATTNC_BP_VLO ? CV : 0);
    static constexpr unsigned s = dout + CV;                                   // S_in, then dS_out [KP][LDV] (hi)
    static constexpr unsigned slo = s + ATTNC_BP_KP * ATTNC_BP_LDV * sizeof(elt);   // their remainder (lo)
    static constexpr unsigned p = slo + (ATTNC_BP_SLO ? ATTNC_BP_KP * ATTNC_BP_LDV * sizeof(elt) : 0);   // P hi
    static constexpr unsigned plo = p + CC;
    static constexpr unsigned a = plo + (ATTNC_BP_PLO ? CC : 0);                // A = dP (masked j <= r) hi
    static constexpr unsigned alo = a + CC;
    static constexpr unsigned m = alo + (ATTNC_BP_PLO ? CC : 0);                // E_d's partials (the role rows are in registers); as passes/grad.c sizes it
    static constexpr unsigned g = m + ATTNC_B_WARPS * ATTNC_BP_STG * 4;        // b [C][LDG]
    static constexpr unsigned z = g + ATTNC_BP_C * ATTNC_BP_LDG * 4;           // Z [C][LDK]
    static constexpr unsigned eb = z + CK;                                     // E_d = e^{b_Ld} <S_in, dS_out>_d [KP]
    static constexpr unsigned gp = eb + ATTNC_BP_KP * 4;                       // dk's in-block part, then k dk_inter [C][LDT]
    static constexpr unsigned gs = gp + CKF;                                   // q dq_inter
    static constexpr unsigned bp = gs + CKF;                                   // the in-block prefix terms
    static constexpr unsigned bs = bp + CKF;                                   // dq's in-block part, then q dq_off
    static constexpr unsigned red = bs + CKF;                                  // P's diagonal blocks' split flags
    // the chunk's staged input rows over S, P and A (as below)
    static constexpr unsigned stage = s + ATTNC_BP_STAGE_BYTES <= m ? s : red + ATTNC_B_THREADS * 4;
    static constexpr unsigned end = stage == s ? red + ATTNC_B_THREADS * 4 : stage + ATTNC_BP_STAGE_BYTES;
    static constexpr unsigned fq = end, fk = end;   // (no raw rows: ATTNC_BP_QK_RAW is the delta rule's)
    static constexpr unsigned bytes = (end + 127) / 128 * 128;
};
static_assert(ATTNC_BP_C * ATTNC_BP_LDH * 4 <= 2 * attnc_bp_chunk_layout::CKF, "Qh, Kh over GP + GS and BP + BS");
static_assert(attnc_bp_chunk_layout::z % 16 == 0 && attnc_bp_chunk_layout::gp % 16 == 0 && attnc_bp_chunk_layout::bp % 16 == 0 &&
              attnc_bp_chunk_layout::g % 16 == 0 && attnc_bp_chunk_layout::slo % 16 == 0 && attnc_bp_chunk_layout::m % 16 == 0 && attnc_bp_chunk_layout::p % 16 == 0 &&
              attnc_bp_chunk_layout::a % 16 == 0 && attnc_bp_chunk_layout::s % 16 == 0 &&
              attnc_bp_chunk_layout::stage % 16 == 0, "16-byte tiles");
#elif ATTNC_BP_CHUNK2
// The compact layout, two CTAs of 8 warps an SM (passes/grad.c's grad_bp_chunk2_smem): where the delta rule's
// reverse walk forms dU_hat, the chunk kernel reads q, k, U_hat, dO and the two images and forms A's tiles alone
// (no P tiles, hi tiles alone).  The staged rows lie over dO, the image and A, which are written only once the
// roles are formed.  With a gate, no M tile fits: the kernel takes the gate's pair terms from q . dq and k . dk
// (attnc_bwdp_chunk), and the gate's eq and red get places of their own.  The names of what this form has not (P,
// the lo tiles) alias the places of A, V and S, so that the helpers compile unchanged: none of their code that
// reads them runs here.
static_assert(ATTNC_BD_WALK_DUH && !ATTNC_BP_PLO && !ATTNC_BP_SLO && !ATTNC_BP_VLO && ATTNC_B_NORM == ATTNC_BP_NORM_NONE &&
              ATTNC_B_THREADS == 256, "the compact chunk kernel's case");
struct attnc_bp_chunk_layout {   // offsets in bytes
    static constexpr unsigned CK = ATTNC_BP_C * ATTNC_BP_LDK * sizeof(elt), CV = ATTNC_BP_C * ATTNC_BP_LDV * sizeof(elt);
    static constexpr unsigned CC = ATTNC_BP_C * ATTNC_BP_LDC * sizeof(elt);
    static constexpr unsigned NGQ = ATTNC_BP_KP / (8 * ATTNC_BP_NT(ATTNC_BP_KP));   // dq's column groups
    static constexpr unsigned q = 0;
    static constexpr unsigned k = q + CK;
    static constexpr unsigned v = k + CK;                                      // U_hat
    static constexpr unsigned dout = v + CV;
    static constexpr unsigned s = dout + CV;                                   // S_in, then dS_out [KP][LDV]
    static constexpr unsigned a = s + ATTNC_BP_KP * ATTNC_BP_LDV * sizeof(elt);   // A = dO U_hat^T (masked j <= r)
    static constexpr unsigned g = a + CC;                                      // b [C]
    static constexpr unsigned ek = g + ATTNC_BP_C * 4;   // dq's l2norm row sums [2 NGQ][C], then k . dk_inter's partials
    static constexpr unsigned eq = ek + 2 * NGQ * ATTNC_BP_C * 4;              // q . dq_inter's partials [NGQ][C]
    static constexpr unsigned red = eq + (ATTNC_BP_DG ? NGQ * ATTNC_BP_C * 4 : 0);   // the block sums' [2][WARPS]
    static constexpr unsigned m = dout;   // (no M tile: a name for bp_scores, which writes none here)
    static constexpr unsigned vlo = v, slo = s, p = a, plo = a, alo = a;
    static constexpr unsigned tiles_end = red + (ATTNC_BP_DG ? 2 * ATTNC_B_WARPS * 4 : 0);
    static constexpr unsigned stage = ATTNC_BP_STAGE_BYTES <= g - dout ? dout : tiles_end;
    static constexpr unsigned end = stage == dout ? tiles_end : stage + ATTNC_BP_STAGE_BYTES;
    static constexpr unsigned fq = end, fk = end;   // (no raw rows: those come with remainder tiles)
    static constexpr unsigned bytes = (end + 127) / 128 * 128;
};
static_assert(attnc_bp_chunk_layout::k % 16 == 0 && attnc_bp_chunk_layout::v % 16 == 0 && attnc_bp_chunk_layout::dout % 16 == 0 &&
              attnc_bp_chunk_layout::s % 16 == 0 && attnc_bp_chunk_layout::a % 16 == 0 && attnc_bp_chunk_layout::g % 16 == 0 &&
              attnc_bp_chunk_layout::stage % 16 == 0, "16-byte tiles");
#else
struct attnc_bp_chunk_layout {   // offsets in bytes
    static constexpr unsigned CK = ATTNC_BP_C * ATTNC_BP_LDK * sizeof(elt), CV = ATTNC_BP_C * ATTNC_BP_LDV * sizeof(elt);
    static constexpr unsigned CC = ATTNC_BP_C * ATTNC_BP_LDC * sizeof(elt);
    static constexpr unsigned q = 0;
    static constexpr unsigned k = q + CK;
    static constexpr unsigned v = k + CK;
    static constexpr unsigned vlo = v + CV;
    static constexpr unsigned dout = vlo + (ATTNC_BP_VLO ? CV : 0);
    static constexpr unsigned s = dout + CV;                                   // S_in, then dS_out [KP][LDV] (hi)
    static constexpr unsigned slo = s + ATTNC_BP_KP * ATTNC_BP_LDV * sizeof(elt);   // their remainder (lo)
    static constexpr unsigned p = slo + (ATTNC_BP_SLO ? ATTNC_BP_KP * ATTNC_BP_LDV * sizeof(elt) : 0);   // P hi
    static constexpr unsigned plo = p + CC;
    static constexpr unsigned a = plo + (ATTNC_BP_PLO ? CC : 0);                // A = (dO V^T) o D hi
    static constexpr unsigned alo = a + CC;
    static constexpr unsigned m = alo + (ATTNC_BP_PLO ? CC : 0);                // fp32 [C][C + 1]: M, then x
    static constexpr unsigned mfloats = ATTNC_BP_C * (ATTNC_BP_C + 1) > ATTNC_B_WARPS * ATTNC_BP_STG
                                            ? ATTNC_BP_C * (ATTNC_BP_C + 1) : ATTNC_B_WARPS * ATTNC_BP_STG;
    static constexpr unsigned xfloats = ATTNC_B_NORM != ATTNC_BP_NORM_NONE ? ATTNC_BP_C * (ATTNC_BP_VP + 1) : 0;
    static constexpr unsigned g = m + 4 * (mfloats > xfloats ? mfloats : xfloats);   // b [C]
    static constexpr unsigned eq = g + ATTNC_BP_C * 4;                         // q_r . dq_inter_r partials [8][C]
    static constexpr unsigned ek = eq + 8 * ATTNC_BP_C * 4;                    // k_j . dk_inter_j partials [8][C]
    static constexpr unsigned red = ek + 8 * ATTNC_BP_C * 4;                   // block sums [THREADS]
    // the chunk's staged input rows over S, P and A (not yet in use while the rows are formed, in registers:
    // M's room for role rows is the size passes/grad.c gives) where they fit before M, else after everything
    static constexpr unsigned stage = s + ATTNC_BP_STAGE_BYTES <= m ? s : red + ATTNC_B_THREADS * 4;
    static constexpr unsigned end = stage == s ? red + ATTNC_B_THREADS * 4 : stage + ATTNC_BP_STAGE_BYTES;
    static constexpr unsigned fq = end, fk = fq + ATTNC_BP_C * 4;   // the query's and key's factors (ATTNC_BP_QK_RAW)
    static constexpr unsigned bytes = (end + (ATTNC_BP_QK_RAW ? 2 * ATTNC_BP_C * 4 : 0) + 127) / 128 * 128;
};
static_assert(attnc_bp_chunk_layout::k % 16 == 0 && attnc_bp_chunk_layout::v % 16 == 0 && attnc_bp_chunk_layout::vlo % 16 == 0 &&
              attnc_bp_chunk_layout::dout % 16 == 0 && attnc_bp_chunk_layout::s % 16 == 0 && attnc_bp_chunk_layout::slo % 16 == 0 && attnc_bp_chunk_layout::p % 16 == 0 &&
              attnc_bp_chunk_layout::plo % 16 == 0 && attnc_bp_chunk_layout::a % 16 == 0 && attnc_bp_chunk_layout::alo % 16 == 0 &&
              attnc_bp_chunk_layout::m % 16 == 0 && attnc_bp_chunk_layout::stage % 16 == 0, "16-byte tiles");
#endif

// The chunk's output gradient into the tile D [C][LDV] (zero past the chunk's rows), straight from global
// memory, every element an independent load.
__device__ __forceinline__ void bp_load_dout(const attnc_bwd_params &p, int c0, int nrows, int h, elt *D)
{
    const int tid = threadIdx.x;
    if constexpr (ATTNC_B_NORM == ATTNC_BP_NORM_NONE && ATTNC_OUT_DTYPE == ATTNC_DT_BF16 && !ATTNC_SPLIT && !ATTNC_ELT_F16 &&
                  ATTNC_B_VO % 8 == 0) {
        // dout's bf16 rows are the tile's rows as they are: 16 bytes at a time, every load issued first
        constexpr int ROW = ATTNC_BP_VP / 8, N = (ATTNC_BP_C * ROW + ATTNC_B_THREADS - 1) / ATTNC_B_THREADS;
        attnc_u4 x[N];
#pragma unroll
        for (int it = 0; it < N; it++) {
            const int i = tid + it * ATTNC_B_THREADS, r = i / ROW, c = i % ROW * 8;
            x[it] = {0u, 0u, 0u, 0u};
            if (i < ATTNC_BP_C * ROW && r < nrows && c < ATTNC_B_VO)
                x[it] = *reinterpret_cast<const attnc_u4 *>((const elt *)p.dout + ((size_t)(c0 + r) * ATTNC_HOUT + h) * ATTNC_B_VO + c);
        }
#pragma unroll
        for (int it = 0; it < N; it++) {
            const int i = tid + it * ATTNC_B_THREADS;
            if (i < ATTNC_BP_C * ROW)
                *reinterpret_cast<attnc_u4 *>(D + i / ROW * ATTNC_BP_LDV + i % ROW * 8) = x[it];
        }
    } else {
        for (int i = tid; i < ATTNC_BP_C * ATTNC_BP_VP; i += ATTNC_B_THREADS) {
            const int r = i / ATTNC_BP_VP, c = i % ATTNC_BP_VP;
            D[r * ATTNC_BP_LDV + c] = attnc_float_to_elt(r < nrows ? bp_dout(p, c0 + r, h, c) : 0.f);
        }
    }
}

// The chunk's rows into the tiles (q, k, v (+ lo), dO (reverse kernels) and log2 gates; the delta rule's v:
// U_hat of chunk `slot`, which its forward walk wrote into ws_u), once the copies
// of the chunk's input rows (attnc_bwd_stage_issue into L::stage) have landed, two rows per warp and pass
// through registers (bp_roles); dO (with_dout) before the wait, under the copies.
__device__ __forceinline__ void bp_load_rows(const attnc_bwd_params &p, int c0, int nrows, int h, unsigned char *bsm,
                                             bool with_dout, int slot = 0)
{
    using L = attnc_bp_chunk_layout;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    elt *Q = (elt *)(bsm + L::q), *K = (elt *)(bsm + L::k), *V = (elt *)(bsm + L::v), *Vlo = (elt *)(bsm + L::vlo);
    float *g = (float *)(bsm + L::g);
    const unsigned char *stage = bsm + L::stage;
    if constexpr (ATTNC_BP_DELTA) {
        // the delta rule: U_hat of chunk `slot` (the forward walk's, ws_u) for V, by cp.async, landing with the staged
        // rows (rows past the sequence's end as zeros: the forward's saved U_hat, api/kernel.c, has none there).
        // Loaded by plain loads in the roles' loop below, the barrier after the loop waited on them (ncu, the gated
        // delta rule's chunk kernel: 10 % of its stall samples, bench/RESULTS.md, forty-fifth session)
        static_assert(ATTNC_BP_VP * sizeof(elt) % 16 == 0, "whole 16-byte units a row");
        attnc_cp_rows_zfill<ATTNC_BP_C, ATTNC_BP_VP * (int)sizeof(elt) / 16, ATTNC_B_THREADS>(
            V, ATTNC_BP_LDV * sizeof(elt),
            (const elt *)p.ws_u + ((size_t)slot * ATTNC_HOUT + h) * ATTNC_BP_C * ATTNC_BP_VP,
            ATTNC_BP_VP * sizeof(elt), nrows);
    }
    if (with_dout)
        bp_load_dout(p, c0, nrows, h, (elt *)(bsm + L::dout));
    attnc_stage_wait();
    __syncthreads();
    constexpr int WANT = (ATTNC_BP_Q_STAGE < 0 ? ATTNC_ROLE_Q : 0) | (ATTNC_BP_K_STAGE < 0 ? ATTNC_ROLE_K : 0) |
                         (ATTNC_BP_V_STAGE < 0 && !ATTNC_BP_DELTA ? ATTNC_ROLE_V : 0);
    for (int r0 = warp; r0 < ATTNC_BP_C; r0 += 2 * ATTNC_B_WARPS) {   // two rows per pass (bp_roles)
        bp_roles x[2];
        bp_role_rows2<WANT>(p, c0, nrows, h, lane, r0, stage, x);
        bp_qk_tile_rows2<ATTNC_BP_Q_STAGE, ATTNC_ROLE_Q>(stage, x, r0, nrows, Q, lane, (float *)(bsm + L::fq));
        bp_qk_tile_rows2<ATTNC_BP_K_STAGE, ATTNC_ROLE_K>(stage, x, r0, nrows, K, lane, (float *)(bsm + L::fk));
        if constexpr (!ATTNC_BP_DELTA && ATTNC_BP_V_STAGE >= 0) {   // (the delta rule's V: U_hat, above)
            bp_copy_rows2<ATTNC_BP_VP>(stage, ATTNC_BP_V_STAGE, ATTNC_B_V, r0, 0, nrows, V, ATTNC_BP_LDV, lane);
        }
        bp_store_gates2(x, r0, g, nullptr, lane);
        if constexpr (!ATTNC_BP_DELTA && ATTNC_BP_V_STAGE < 0)
#pragma unroll
            for (int i = 0; i < 2; i++) {
                const int r = r0 + i * ATTNC_B_WARPS;
                bp_regs_row<ATTNC_BP_VP, ATTNC_BP_VLO>(x[i].v, 0, V + r * ATTNC_BP_LDV, Vlo + r * ATTNC_BP_LDV, lane);
            }
    }
}

// The pieces of an image row bp_load_image moves at a time: 8 int16 mantissas (16-bit tiles), else 16 bytes.
#define ATTNC_BP_IMG_PIECES (ATTNC_BP_LO ? ATTNC_BP_VP / 8 : ATTNC_BP_VP / (16 / (int)sizeof(elt)))

// An image's loads in flight, a thread's share (16-bit tiles: its pieces of 8 mantissas and their scales):
// bp_image_issue starts them, bp_image_finish waits and writes the tiles, so that a kernel can issue the
// next image's loads before work that does not need it (the loads' latency was 14 % of the chunk kernel
// where they were waited on at once, ncu).  With fp32 tiles (too many registers for a whole image) finish
// does the loads itself.
struct bp_img_regs {
#if ATTNC_BP_LO
    static constexpr int N = (ATTNC_BP_KP * (ATTNC_BP_VP / 8) + ATTNC_B_THREADS - 1) / ATTNC_B_THREADS;
    attnc_u4 raw[N];   // 8 mantissas (their scale sc) or 8 bf16
#if ATTNC_BP_MIMG
    float sc[N];
#endif
#endif
    const unsigned char *img;
};

__device__ __forceinline__ void bp_image_issue(const unsigned char *img, bp_img_regs &r)
{
    r.img = img;
#if ATTNC_BP_LO
    constexpr int ROW = ATTNC_BP_VP / 8;
    const short *man = (const short *)img;   // (or bf16: 2 bytes an element either way)
#if ATTNC_BP_MIMG
    const float *scale = (const float *)(img + ATTNC_BP_KP * ATTNC_BP_VP * 2);
#endif
#pragma unroll
    for (int it = 0; it < bp_img_regs::N; it++) {
        const int i = threadIdx.x + it * ATTNC_B_THREADS, d = i / ROW, c = (i % ROW) * 8;
        if (i < ATTNC_BP_KP * ROW) {
#if ATTNC_BP_MIMG
            r.sc[it] = scale[d * ATTNC_BP_NSL + c / ATTNC_BP_VS];   // 8 columns of one slice
#endif
            r.raw[it] = *reinterpret_cast<const attnc_u4 *>(man + (size_t)d * ATTNC_BP_VP + c);
        }
    }
#endif
}

// An image [KP][VP] (issued into r) into the S tile (16-bit tiles: m 2^e rounded into S and, with
// ATTNC_BP_SLO, the remainder into Slo: hi + lo is m 2^e exactly), and (DOT) this thread's share of the dot
// product of the new image with the one it replaces there (the tiles' values: hi + lo), in a fixed order
// (0 without DOT); with ROWS instead each piece's share into rowpart[d * ATTNC_BP_IMG_PIECES + piece], so
// that the per-row products (the per-channel gate's E_d) are summed in a fixed order from shared memory.
template <bool DOT, bool LO = ATTNC_BP_SLO, bool ROWS = false>
__device__ __forceinline__ float bp_image_finish(const bp_img_regs &r, elt *S, elt *Slo, float *rowpart = nullptr)
{
    float dot = 0.f;
#if ATTNC_BP_LO
    constexpr int ROW = ATTNC_BP_VP / 8;
#pragma unroll
    for (int it = 0; it < bp_img_regs::N; it++) {
        const int i = threadIdx.x + it * ATTNC_B_THREADS, d = i / ROW, c = (i % ROW) * 8;
        if (i >= ATTNC_BP_KP * ROW)
            break;
        // the piece's 8 values: m 2^e, or the bf16 as stored (then hi is the piece itself, and no lo)
        float x[8];
#if ATTNC_BP_MIMG
        const float sc = r.sc[it];
        const short *mm = reinterpret_cast<const short *>(&r.raw[it]);
#pragma unroll
        for (int j = 0; j < 8; j++)
            x[j] = (float)mm[j] * sc;
#else
        static_assert(!LO, "bf16 images have no remainder");
        const elt *xe = reinterpret_cast<const elt *>(&r.raw[it]);
#pragma unroll
        for (int j = 0; j < 8; j++)
            x[j] = attnc_elt_to_float(xe[j]);
#endif
        attnc_u4 *to = reinterpret_cast<attnc_u4 *>(S + d * ATTNC_BP_LDV + c);
        attnc_u4 *tolo = reinterpret_cast<attnc_u4 *>(Slo + d * ATTNC_BP_LDV + c);
        attnc_u4 hv, lv;
        if constexpr (DOT) {
            const attnc_u4 wh = *to;
            const elt *was = reinterpret_cast<const elt *>(&wh);
            float w[8];
#pragma unroll
            for (int j = 0; j < 8; j++)
                w[j] = attnc_elt_to_float(was[j]);
            if constexpr (LO) {
                const attnc_u4 wl = *tolo;
                const elt *wlo = reinterpret_cast<const elt *>(&wl);
#pragma unroll
                for (int j = 0; j < 8; j++)
                    w[j] += attnc_elt_to_float(wlo[j]);
            }
            if constexpr (ROWS) {
                float part = 0.f;
#pragma unroll
                for (int j = 0; j < 8; j++)
                    part += w[j] * x[j];
                rowpart[i] = part;
            } else {
#pragma unroll
                for (int j = 0; j < 8; j++)
                    dot += w[j] * x[j];
            }
        }
#if ATTNC_BP_MIMG
        // two elements a conversion (cvt.rn.*x2, the same rounding as one at a time)
        unsigned *hw = reinterpret_cast<unsigned *>(&hv), *lw = reinterpret_cast<unsigned *>(&lv);
#pragma unroll
        for (int j = 0; j < 8; j += 2) {
            const unsigned hp = pack2(x[j], x[j + 1]);
            hw[j / 2] = hp;
            lw[j / 2] = pack2(x[j] - attnc_elt_to_float((elt)(hp & 0xffffu)), x[j + 1] - attnc_elt_to_float((elt)(hp >> 16)));
        }
#else
        hv = r.raw[it], lv = hv;
#endif
        *to = hv;
        if constexpr (LO)
            *tolo = lv;
    }
#else
    (void)Slo;
    constexpr int PER = 16 / sizeof(elt), ROW = ATTNC_BP_VP / PER;
    const elt *e = (const elt *)r.img;
    for (int i = threadIdx.x; i < ATTNC_BP_KP * ROW; i += ATTNC_B_THREADS) {
        const int d = i / ROW, c = (i % ROW) * PER;
        attnc_u4 *to = reinterpret_cast<attnc_u4 *>(S + d * ATTNC_BP_LDV + c);
        const attnc_u4 x = *reinterpret_cast<const attnc_u4 *>(e + (size_t)d * ATTNC_BP_VP + c);
        if constexpr (DOT) {
            const elt *was = reinterpret_cast<const elt *>(to), *now = reinterpret_cast<const elt *>(&x);
            float part = 0.f;
#pragma unroll
            for (int j = 0; j < PER; j++)
                (ROWS ? part : dot) += attnc_elt_to_float(was[j]) * attnc_elt_to_float(now[j]);
            if constexpr (ROWS)
                rowpart[i] = part;
        }
        *to = x;
    }
#endif
    return dot;
}

// Both at once: every load issued before the first is used.
template <bool DOT, bool LO = ATTNC_BP_SLO>
__device__ __forceinline__ float bp_load_image(const unsigned char *img, elt *S, elt *Slo)
{
    bp_img_regs r;
    bp_image_issue(img, r);
    return bp_image_finish<DOT, LO>(r, S, Slo);
}

// Block (mi, nj)'s products before their factors, 16 x 16 each: ap = Q K^T (WANT_P) and, with `dp`, aa = dO V^T
// (with the value's lo tile where it has one); zero where not formed.  bp_scores'.
template <bool WANT_P>
__device__ __forceinline__ void bp_block_scores(const unsigned char *bsm, int mi, int nj, bool dp, float (&ap)[2][4],
                                                float (&aa)[2][4], int lane)
{
    using L = attnc_bp_chunk_layout;
    const elt *Q = (const elt *)(bsm + L::q), *K = (const elt *)(bsm + L::k), *V = (const elt *)(bsm + L::v);
    const elt *Vlo = (const elt *)(bsm + L::vlo), *D = (const elt *)(bsm + L::dout);
    bp_zero<2>(ap);
    bp_zero<2>(aa);
    if constexpr (WANT_P)
        bp_mma<2, false, false>(ap, Q, ATTNC_BP_LDK, mi * 16, K, ATTNC_BP_LDK, nj * 16, 0, ATTNC_BP_KP, lane);
    if (dp) {
        bp_mma<2, false, false>(aa, D, ATTNC_BP_LDV, mi * 16, V, ATTNC_BP_LDV, nj * 16, 0, ATTNC_BP_VP, lane);
        if constexpr (ATTNC_BP_VLO)
            bp_mma<2, false, false>(aa, D, ATTNC_BP_LDV, mi * 16, Vlo, ATTNC_BP_LDV, nj * 16, 0, ATTNC_BP_VP, lane);
    }
}

// P = (Q K^T) o D (hi, lo tiles) and, with `dp`, A = (dO V^T) o D (hi, lo) and, for the gate's gradient
// (ATTNC_BP_DG), M_rj = (dO_r . v_j) P_rj (fp32, its pair terms): 16 x 16 blocks on and below the diagonal, one
// warp each in turn.  Not P's tiles where only dv would read them and the delta rule's walk formed dv
// (ATTNC_BD_WALK_DUH), nor P at all unless the M tile needs it (M_TILE; the compact chunk kernel takes its
// pair terms from q . dq and k . dk instead: attnc_bwdp_chunk).
template <bool M_TILE = ATTNC_BP_DG>
__device__ __forceinline__ void bp_scores(unsigned char *bsm, bool dp)
{
    constexpr bool want_p = !ATTNC_BD_WALK_DUH || M_TILE, store_p = !ATTNC_BD_WALK_DUH;
    using L = attnc_bp_chunk_layout;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    elt *P = (elt *)(bsm + L::p), *Plo = (elt *)(bsm + L::plo), *A = (elt *)(bsm + L::a), *Alo = (elt *)(bsm + L::alo);
    float *M = (float *)(bsm + L::m);
    const float *g = (const float *)(bsm + L::g), *fq = (const float *)(bsm + L::fq), *fk = (const float *)(bsm + L::fk);
    constexpr int NB = ATTNC_BP_C / 16;
    for (int item = warp; item < NB * NB; item += ATTNC_B_WARPS) {
        const int mi = item / NB, nj = item % NB;
        if (nj > mi)
            continue;
        float ap[2][4], aa[2][4];
        float fd[2][4];
        bp_pair_decay(g, mi, nj, lane, fd);
        bp_pair_rf(fq, fk, mi, nj, lane, fd);   // (raw rows: P, and A' = diag(f_q) A diag(f_k) for dq and dk)
        bp_block_scores<want_p>(bsm, mi, nj, dp, ap, aa, lane);
#pragma unroll
        for (int nt = 0; nt < 2; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int r = bp_row(mi * 16, lane, i), j = bp_col(nj * 16, nt, lane, i);
                const float f = fd[nt][i];
                const float pv = ap[nt][i] * f;
                elt hi, lo;
                if constexpr (store_p) {
                    bp_split(pv, hi, lo);
                    P[r * ATTNC_BP_LDC + j] = hi;
                    if constexpr (ATTNC_BP_PLO)
                        Plo[r * ATTNC_BP_LDC + j] = lo;
                }
                if (dp) {
                    bp_split(aa[nt][i] * f, hi, lo);
                    A[r * ATTNC_BP_LDC + j] = hi;
                    if constexpr (ATTNC_BP_PLO)
                        Alo[r * ATTNC_BP_LDC + j] = lo;
                    if constexpr (M_TILE)
                        M[r * (ATTNC_BP_C + 1) + j] = aa[nt][i] * pv;
                }
            }
    }
}

// dv's rows m0.. and columns n0.. (acc holding the state term): + P^T dO (hi and lo tiles of P), then into
// ws_dv.  Both chunk kernels end dv so.
template <int NT>
__device__ __forceinline__ void bp_dv_finish(const attnc_bwd_params &p, float (*acc)[4], unsigned char *bsm, int m0, int n0,
                                             int c0, int nrows, int h, int lane)
{
    using L = attnc_bp_chunk_layout;
    const elt *P = (const elt *)(bsm + L::p), *Plo = (const elt *)(bsm + L::plo), *D = (const elt *)(bsm + L::dout);
    bp_mma<NT, true, true>(acc, P, ATTNC_BP_LDC, m0, D, ATTNC_BP_LDV, n0, m0, ATTNC_BP_C, lane);
    if constexpr (ATTNC_BP_PLO)
        bp_mma<NT, true, true>(acc, Plo, ATTNC_BP_LDC, m0, D, ATTNC_BP_LDV, n0, m0, ATTNC_BP_C, lane);
    // the value tensor's own gradient where the role is that tensor (ATTNC_BP_DV_TENSOR; null: not wanted);
    // the delta rule's dU_hat always into ws_dv (its adjoint writes the value's gradient)
    constexpr int DVT = ATTNC_BP_DELTA ? -1 : ATTNC_BP_DV_TENSOR, DVD = ATTNC_BP_DELTA ? ATTNC_DT_FP32 : ATTNC_BP_DV_DTYPE;
    void *const dv_direct = bp_direct<DVT>(p);
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
        bp_role_grad_frag<DVT, DVD, ATTNC_B_V>(p.ws_dv, dv_direct, acc[nt], m0, n0, nt, lane, c0, nrows, h);
}

// N block sums in a fixed order (every thread gets them), over one pair of barriers: each warp's butterfly (the
// same bits in every lane: IEEE addition commutes), then the warps' sums in warp order (a tree over the threads
// in shared memory took log2(THREADS) + 2 barriers); red [N][WARPS].
template <int N>
__device__ __forceinline__ void bp_block_sums(float (&x)[N], float *red)
{
#pragma unroll
    for (int j = 0; j < N; j++)
        x[j] = attnc_warp_sum(x[j]);
    if ((threadIdx.x & 31) == 0)
#pragma unroll
        for (int j = 0; j < N; j++)
            red[j * ATTNC_B_WARPS + (threadIdx.x >> 5)] = x[j];
    __syncthreads();
    float s[N] = {};
#pragma unroll
    for (int w = 0; w < ATTNC_B_WARPS; w++)
#pragma unroll
        for (int j = 0; j < N; j++)
            s[j] += red[j * ATTNC_B_WARPS + w];
    __syncthreads();
#pragma unroll
    for (int j = 0; j < N; j++)
        x[j] = s[j];
}

__device__ __forceinline__ float bp_block_sum(float x, float *red)
{
    float s[1] = {x};
    bp_block_sums(s, red);
    return s[0];
}

#if !ATTNC_BP_DIAG
#if ATTNC_BP_WIDE_PASS == ATTNC_BP_WIDE_CHUNK   // the unit's one chunk kernel: 8 warps, or 16 in the wide pass
#if ATTNC_BWD_WANT(ATTNC_BK_P_CHUNK)
// (two CTAs an SM where the compact layout applies, on sm_90 and later: two do not fit an sm_80 SM's 164 KB)
#if ATTNC_BP_CHUNK2 && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define ATTNC_BP_CHUNK_CTAS 2
#else
#define ATTNC_BP_CHUNK_CTAS 1
#endif
extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS, ATTNC_BP_CHUNK_CTAS) attnc_bwdp_chunk(attnc_bwd_params p)
{
    extern __shared__ __align__(128) unsigned char bsm[];
    using L = attnc_bp_chunk_layout;
    // the compact form (ATTNC_BP_CHUNK2): the staged rows lie over dO and the image, so those are loaded once
    // the roles are formed, and each image when it is needed (cp.async; with a gate dS_out's through registers,
    // for <S_in, dS_out>): the other CTA's work covers the wait
    constexpr bool TWO = ATTNC_BP_CHUNK2;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int slot = blockIdx.x, h = blockIdx.y;
    int n, c0, eos;
    if (!bp_slot_chunk(p, slot, n, c0, eos))
        return;
    const int nrows = min(ATTNC_BP_C, eos - c0);
    const elt *Q = (const elt *)(bsm + L::q), *K = (const elt *)(bsm + L::k), *V = (const elt *)(bsm + L::v);
    const elt *Vlo = (const elt *)(bsm + L::vlo), *D = (const elt *)(bsm + L::dout);
    const elt *P = (const elt *)(bsm + L::p), *Plo = (const elt *)(bsm + L::plo);
    const elt *A = (const elt *)(bsm + L::a), *Alo = (const elt *)(bsm + L::alo);
    elt *S = (elt *)(bsm + L::s), *Slo = (elt *)(bsm + L::slo);
    float *M = (float *)(bsm + L::m), *g = (float *)(bsm + L::g), *eq = (float *)(bsm + L::eq), *ek = (float *)(bsm + L::ek);
    float *red = (float *)(bsm + L::red);
    const float *fq = (const float *)(bsm + L::fq), *fk = (const float *)(bsm + L::fk);   // (ATTNC_BP_QK_RAW)
    static_assert(!ATTNC_BP_QK_RAW || !TWO, "raw rows come with remainder tiles: not the compact form");
    const unsigned char *img_in = (const unsigned char *)p.ws_sin + bp_image(slot, h);
    const unsigned char *img_out = (const unsigned char *)p.ws_dso + bp_image(slot, h);
    // the query and key tensors' own gradients where the roles are those tensors (null: not wanted); the
    // delta rule's dk always into ws_dk (its WY adjoint ends it and writes the key's gradient)
    constexpr int DKT = ATTNC_BP_DELTA ? -1 : ATTNC_BP_DK_TENSOR, DKD = ATTNC_BP_DELTA ? ATTNC_DT_FP32 : ATTNC_BP_DK_DTYPE;
    void *const dq_direct = bp_direct<ATTNC_BP_DQ_TENSOR>(p);
    void *const dk_direct = bp_direct<DKT>(p);

    // (the delta rule's value role is U_hat: no v rows)
    attnc_bwd_stage_issue<true, bp_stage_want(ATTNC_ROLE_Q | ATTNC_ROLE_K | (ATTNC_BP_DELTA ? 0 : ATTNC_ROLE_V))>(p, c0, eos, h,
                                                                                                           bsm + L::stage);
    bp_img_regs img;
    if constexpr (!TWO)
        bp_image_issue(img_in, img);    // in flight while the rows are formed
    bp_load_rows(p, c0, nrows, h, bsm, !TWO, slot);
    __syncthreads();   // the staged rows (over S; TWO: over dO, S and A) are read
    // (TWO: an image [KP][VP] of bf16 rows into S by cp.async, waited for by attnc_stage_wait)
    auto image_async = [&](const unsigned char *img) {
        attnc_cp_rows<ATTNC_BP_KP, ATTNC_BP_VP * 2 / 16, ATTNC_B_THREADS>(S, ATTNC_BP_LDV * 2, img, ATTNC_BP_VP * 2, true);
    };
    if constexpr (TWO) {
        image_async(img_in);
        bp_load_dout(p, c0, nrows, h, (elt *)D);
        attnc_stage_wait();
    } else {
        bp_image_finish<false>(img, S, Slo);
        bp_image_issue(img_out, img);   // in flight through the scores and dq
    }
    __syncthreads();
    if constexpr (ATTNC_BP_GATED) {
        if (warp == 0)
            bp_scan(g, g, lane);
        __syncthreads();
    }
    const float bl = ATTNC_BP_GATED ? g[ATTNC_BP_C - 1] : 0.f;
    // (TWO with a gate: the pair terms come from q . dq and k . dk taken after the in-chunk products, below; no
    // Q K^T here)
    bp_scores<ATTNC_BP_DG && !TWO>(bsm, true);
    __syncthreads();
    float pairs_all = 0.f;   // (TWO with a gate: this thread's part of sum_{j <= r} M_rj, q . (A K) over its items)

    // dq = e^{b} (dO S_in^T) + A K; where the query is the tensor's l2norm (times a constant), the rows' sums of
    // the norm's adjoint meet in ek (the key terms' partials, written after the barrier after the next)
    {
        constexpr int NT = ATTNC_BP_NT(ATTNC_BP_KP), NG = ATTNC_BP_KP / (8 * NT), NB = ATTNC_BP_C / 16;
        static_assert(!ATTNC_BP_DQ_L2 || 2 * NG <= 8, "the l2norm's row sums in ek (passes/grad.c: KP a multiple of 32)");
        // item's 16 rows and 8 NT columns of the query role's gradient, and their q . dq_inter partials
        auto dq_item = [&](int item, float (*acc)[4]) {
            const int mi = item / NG, cg = item % NG, m0 = mi * 16, n0 = cg * 8 * NT;
            bp_zero<NT>(acc);
            bp_mma_s<NT, false, false>(acc, D, ATTNC_BP_LDV, m0, S, Slo, ATTNC_BP_LDV, n0, 0, ATTNC_BP_VP, lane);
            float part[2] = {0.f, 0.f};
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    const int r = bp_row(m0, lane, i), c = bp_col(n0, nt, lane, i);
                    // (raw rows: f_q dq, which A' K gives, and the raw row's dot with it is q . dq; the l2norm's
                    // adjoint takes f_q dq as it is, bp_l2_finish)
                    acc[nt][i] *= bp_dec(g[r]) * bp_rf(fq, r);
                    if constexpr (ATTNC_BP_DG)
                        part[i >> 1] += attnc_elt_to_float(Q[r * ATTNC_BP_LDK + c]) * acc[nt][i];
                }
            if constexpr (ATTNC_BP_DG && !TWO)
                bp_quad_parts(part, eq + cg * ATTNC_BP_C, m0, lane);
            bp_mma<NT, false, true>(acc, A, ATTNC_BP_LDC, m0, K, ATTNC_BP_LDK, n0, 0, m0 + 16, lane);
            if constexpr (ATTNC_BP_PLO)
                bp_mma<NT, false, true>(acc, Alo, ATTNC_BP_LDC, m0, K, ATTNC_BP_LDK, n0, 0, m0 + 16, lane);
            if constexpr (ATTNC_BP_DG && TWO) {   // q . dq with the in-chunk part: eq, and what that part added
                float full[2] = {0.f, 0.f};
                bp_row_dots<NT>(acc, Q, ATTNC_BP_LDK, m0, n0, full, lane);
                pairs_all += (full[0] - part[0]) + (full[1] - part[1]);
                bp_quad_parts(full, eq + cg * ATTNC_BP_C, m0, lane);
            }
        };
        bp_role_grad_items<NT, NG, NB * NG, ATTNC_BP_DQ_L2, ATTNC_BP_DQ_TENSOR, ATTNC_BP_DQ_DTYPE, ATTNC_B_K>(
            p, dq_item, p.ws_dq, dq_direct, ATTNC_BP_DQ_SCALE, ek, warp, lane, c0, nrows, h);
    }
    // dS_out over S_in, and <S_in, dS_out> (the gate's state term) on the way, fixed order; the compact form with
    // a gate puts its pair terms' sums over dO meanwhile, dS_out's loads in flight
    float e_in = 0.f;
    if constexpr (TWO && !ATTNC_BP_DG) {
        image_async(img_out);
        attnc_stage_wait();
    } else {
        if constexpr (TWO)
            bp_image_issue(img_out, img);
        e_in = bp_image_finish<ATTNC_BP_DG>(img, S, Slo);
    }
    // (a block sum's barriers publish S too)
    if constexpr (ATTNC_BP_DG && TWO) {
        float sums[2] = {e_in, pairs_all};
        bp_block_sums(sums, red);
        e_in = sums[0], pairs_all = sums[1];
    }
    else if constexpr (ATTNC_BP_DG)
        e_in = bp_block_sum(e_in, red);
    else
        __syncthreads();
    // dk = e^{b_L - b} (V dS_out^T) + A^T Q
    {
        constexpr int NT = ATTNC_BP_NT(ATTNC_BP_KP), NG = ATTNC_BP_KP / (8 * NT), NB = ATTNC_BP_C / 16;
        for (int item = warp; item < NB * NG; item += ATTNC_B_WARPS) {
            const int mj = item / NG, cg = item % NG, m0 = mj * 16, n0 = cg * 8 * NT;
            float acc[NT][4];
            bp_zero<NT>(acc);
            bp_mma_s<NT, false, false>(acc, V, ATTNC_BP_LDV, m0, S, Slo, ATTNC_BP_LDV, n0, 0, ATTNC_BP_VP, lane);
            if constexpr (ATTNC_BP_VLO)
                bp_mma<NT, false, false>(acc, Vlo, ATTNC_BP_LDV, m0, S, ATTNC_BP_LDV, n0, 0, ATTNC_BP_VP, lane);
            float part[2] = {0.f, 0.f};
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    const int j = bp_row(m0, lane, i), c = bp_col(n0, nt, lane, i);
                    acc[nt][i] *= bp_dec(bl - g[j]) * bp_rf(fk, j);   // (raw rows: f_k dk, as dq's, for the adjoint)
                    if constexpr (ATTNC_BP_DG && !TWO)
                        part[i >> 1] += attnc_elt_to_float(K[j * ATTNC_BP_LDK + c]) * acc[nt][i];
                }
            if constexpr (ATTNC_BP_DG && !TWO)
                bp_quad_parts(part, ek + cg * ATTNC_BP_C, m0, lane);
            bp_mma<NT, true, true>(acc, A, ATTNC_BP_LDC, m0, Q, ATTNC_BP_LDK, n0, m0, ATTNC_BP_C, lane);
            if constexpr (ATTNC_BP_PLO)
                bp_mma<NT, true, true>(acc, Alo, ATTNC_BP_LDC, m0, Q, ATTNC_BP_LDK, n0, m0, ATTNC_BP_C, lane);
            if constexpr (ATTNC_BP_DG && TWO) {   // k . dk with the in-chunk part
                bp_row_dots<NT>(acc, K, ATTNC_BP_LDK, m0, n0, part, lane);
                bp_quad_parts(part, ek + cg * ATTNC_BP_C, m0, lane);
            }
            if constexpr (ATTNC_BD_DK16)
                bd_dk16_store<NT>(p.ws_dk, acc, m0, n0, lane, c0, nrows, h);
            else
#pragma unroll
                for (int nt = 0; nt < NT; nt++)
                    bp_role_grad_frag<DKT, DKD, ATTNC_B_K>(p.ws_dk, dk_direct, acc[nt], m0, n0, nt, lane, c0, nrows, h);
        }
    }
    // dv = e^{b_L - b} (K dS_out) + P^T dO (the delta rule's dU_hat: the reverse walk's where it stored it)
    if constexpr (!ATTNC_BD_WALK_DUH) {
        constexpr int NT = ATTNC_BP_NT(ATTNC_BP_VP), NG = ATTNC_BP_VP / (8 * NT), NB = ATTNC_BP_C / 16;
        for (int item = warp; item < NB * NG; item += ATTNC_B_WARPS) {
            const int mj = item / NG, cg = item % NG, m0 = mj * 16, n0 = cg * 8 * NT;
            float acc[NT][4];
            bp_zero<NT>(acc);
            bp_mma_s<NT, false, true>(acc, K, ATTNC_BP_LDK, m0, S, Slo, ATTNC_BP_LDV, n0, 0, ATTNC_BP_KP, lane);
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int i = 0; i < 4; i++)
                    acc[nt][i] *= bp_dec(bl - g[bp_row(m0, lane, i)]) * bp_rf(fk, bp_row(m0, lane, i));
            bp_dv_finish<NT>(p, acc, bsm, m0, n0, c0, nrows, h, lane);
        }
    }
    if constexpr (ATTNC_BP_DG) {
        // dg_s = e^{b_L} <S_in, dS_out> + sum_{j < s} ek_j + sum_{s <= r < n} eq_r + R_s, the pair terms R_s of M
        // by bp_pair_diff_parts (every thread), then one warp's fixed-order scans.  (Two warps formed every
        // token's sums one term at a time before: a chain of about 200 shared-memory loads at the kernel's end.)
        // The compact form (TWO) has no M: its eq and ek include the in-chunk products, q_r . (A K)_r =
        // sum_{j <= r} M_rj and k_j . (A^T Q)_j = sum_{r >= j} M_rj, and sum_{r >= s} of the first plus
        // sum_{j < s} of the second is R_s plus every pair term once (pairs_all), so dg_s is their scans less
        // pairs_all.  (It formed Q K^T beside dO U_hat^T for M and summed it per block before: 16 more mma a
        // block and the sums' shuffles.)
        constexpr int C = ATTNC_BP_C, P = ATTNC_B_THREADS / C;
        static_assert(ATTNC_B_THREADS % C == 0, "whole parts per token");
        __syncthreads();
        if constexpr (!TWO) {
            bp_pair_diff_parts<P>(M, C + 1, nrows, red);
            __syncthreads();
        }
        if (warp == 0) {
            constexpr int R = (C + 31) / 32, NGQ = ATTNC_BP_KP / (8 * ATTNC_BP_NT(ATTNC_BP_KP));
            float dx[R], qx[R], kx[R], cross[R], kin[R], qin[R];
#pragma unroll
            for (int i = 0; i < R; i++) {
                const int r = lane * R + i;
                dx[i] = qx[i] = kx[i] = 0.f;
                if (r < nrows) {
                    if constexpr (!TWO)
                        dx[i] = bp_pair_diff<P>(red, r);
                    for (int cg = 0; cg < NGQ; cg++) {
                        qx[i] += eq[cg * C + r];
                        kx[i] += ek[cg * C + r];
                    }
                }
            }
            if constexpr (TWO)   // (eq and ek hold the pair terms, every one of them once too many)
#pragma unroll
                for (int i = 0; i < R; i++)
                    cross[i] = -pairs_all;
            else
                bp_warp_scan<R, false>(dx, cross, lane);
            bp_warp_scan<R, false>(kx, kin, lane);
            bp_warp_scan<R, true>(qx, qin, lane);
            const float e = bp_dec(bl) * e_in;
#pragma unroll
            for (int i = 0; i < R; i++) {
                const int r = lane * R + i;
                if (r < nrows)
                    p.ws_dg[(size_t)(c0 + r) * ATTNC_HOUT + h] = e + kin[i] + qin[i] + cross[i];
            }
        }
    }
}
#endif
#endif   // ATTNC_BP_WIDE_PASS == ATTNC_BP_WIDE_CHUNK
#else
// The per-channel chunk kernel's in-block pair sums for one 16-row block from r0 and one channel: dq_in_r =
// sum_{j <= r} A_rj e^{b_r - b_j} k_j and dk_in_j = sum_{r >= j} A_rj e^{b_r - b_j} q_r.  EXACT: qs, ks are q, k and
// each pair takes its own factor (one exp2 a pair: 136 a block, which bounded the loop on the exp2 unit).
// Otherwise the block's span in the channel, b_0 - b_15, is at most ATTNC_BP_DIAG_SPAN (log2) and the factor is
// split about the block's first row, e^{b_r - b_0} e^{b_0 - b_j}, both in fp32's normal range: qs = q e^{b - b_0},
// ks = k e^{b_0 - b}, and the sums here are dq_in e^{b_0 - b_r} and dk_in e^{b_j - b_0}, their factors applied by the
// caller (32 exp2 a block).  (The forward factors its diagonal blocks so too, algorithms.md 2.4(b): scores() in
// linear_kernel.cuh, below a span of 100, on the tensor cores; here the terms stay fp32, and 64 leaves the
// scaled rows' products more room below fp32's overflow.)  A's rows in 16-byte loads (its rows and r0 are
// 16-byte aligned).
#define ATTNC_BP_DIAG_SPAN 64.f
// Whether a channel's pair factors in a block split about its first row: b0, b15 its first and last rows' b.
__device__ __forceinline__ bool bp_diag_split(float b0, float b15)
{
    return b0 - b15 <= ATTNC_BP_DIAG_SPAN;   // (b is non-increasing: the block's span in the channel)
}
template <bool EXACT>
__device__ __forceinline__ void bp_diag_inblock(const elt *A, const elt *Alo, int r0, const float (&bv)[16], const float (&qs)[16],
                                                const float (&ks)[16], float (&dqi)[16], float (&dki)[16])
{
#pragma unroll
    for (int r = 0; r < 16; r++) {
        float a[16], lo[8];
        const elt *row = A + (r0 + r) * ATTNC_BP_LDC + r0, *rowlo = Alo + (r0 + r) * ATTNC_BP_LDC + r0;
#pragma unroll
        for (int h8 = 0; h8 <= r / 8; h8++) {
            ld8(a + 8 * h8, row + 8 * h8);
            if constexpr (ATTNC_BP_PLO) {
                ld8(lo, rowlo + 8 * h8);
#pragma unroll
                for (int u = 0; u < 8; u++)
                    a[8 * h8 + u] += lo[u];
            }
        }
#pragma unroll
        for (int j = 0; j <= r; j++) {
            const float t = EXACT ? a[j] * bp_dec(bv[r] - bv[j]) : a[j];
            dqi[r] += t * ks[j];
            dki[j] += t * qs[r];
        }
    }
}

// Per-channel gates (ATTNC_BP_DIAG; chunks of 32 or 16: one or two 16-row blocks).  The pairwise factor
// e^{b_rd - b_jd} is per channel, so it cannot be applied to P or dP after the product:
//   A = dP = dO V^T masked (j <= r), no factor (hi + lo tiles);
//   P on the diagonal blocks in fp32, sum_d q_rd k_jd e^{b_rd - b_jd}: sum_d Qh_rd Kh_jd with Qh = q e^{b - b_0},
//     Kh = k e^{b_0 - b} (b_0 the block's first row's) where the channel's span in the block b_0 - b_15 is at
//     most ATTNC_BP_DIAG_SPAN, else one exp2 of a difference <= 0 per term, as the in-block parts of dq and dk
//     (bp_diag_inblock); P's block (1, 0) on the tensor cores from Z: rows < 16 K e^{b_16 - b}, rows >= 16
//     Q e^{b - b_16} (b_16: row 16's, the reference between the blocks: both exponents <= 0);
//   dq = e^{b} o (dO S_in^T) + [in-block: sum_{j in I, j <= r} A_rj e^{b_r - b_j} k_j, fp32]
//        + e^{b - b_16} o (A_{r, 0..15} Z_{0..15})            (row block 1);
//   dk = e^{b_L - b} o (V dS_out^T) + [in-block: sum_{r in J, r >= j} A_rj e^{b_r - b_j} q_r, fp32]
//        + e^{b_16 - b} o (A_{16..31, j}^T Z_{16..31})        (row block 0);
//   dv = Kd dS_out + P^T dO, Kd = K o e^{b_L - b} (a tile: the factor is on the contraction index);
//   the gate per channel and factor (tests/ref/bwd_parallel_emu.inc's chunk_diag, every term once):
//   da_sd = E_d + sum_{j < s} k_jd dk_inter_jd + sum_{r >= s} q_rd dq_inter_rd
//           + sum_{t in B, t < s} (k_td dk_off_td + k_td dk_in_td - q_td dq_in_td) + sum_{r in B, r >= s} q_rd dq_off_rd
//   (B: s's block; E_d = e^{b_Ld} <S_in, dS_out>_d, row d of the images).
// bp_diag_pairs: dq's and dk's epilogues read every shared value an item needs before they write GS, BS, GP and
// BP (those writes may alias the reads as far as the compiler knows, so each element's loads waited behind the
// element before's stores), and a lane's two adjacent columns in one 8-byte access each, in rows of LDT floats
// (ncu, H100: the epilogues' lines 13 % of the stall samples, short scoreboard, 8-way conflicts at rows of KP).
// An fp32 pair's component u.
__device__ __forceinline__ float bp_f2(const float2 &v, int u)
{
    return u ? v.y : v.x;
}
#if ATTNC_BWD_WANT(ATTNC_BK_P_CHUNK)
extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS, 1) attnc_bwdp_chunk(attnc_bwd_params p)
{
    extern __shared__ __align__(128) unsigned char bsm[];
    using L = attnc_bp_chunk_layout;
    constexpr int NB = ATTNC_BP_C / 16, KP = ATTNC_BP_KP, LDG = ATTNC_BP_LDG;
    constexpr int NT = ATTNC_BP_KP % 32 == 0 ? 4 : 2, NG = KP / (8 * NT);   // dq, dk items: 16 rows x 8 NT columns
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int slot = blockIdx.x, h = blockIdx.y;
    int n, c0, eos;
    if (!bp_slot_chunk(p, slot, n, c0, eos))
        return;
    const int nrows = min(ATTNC_BP_C, eos - c0);
    const elt *Q = (const elt *)(bsm + L::q), *K = (const elt *)(bsm + L::k), *V = (const elt *)(bsm + L::v);
    const elt *Vlo = (const elt *)(bsm + L::vlo), *D = (const elt *)(bsm + L::dout);
    elt *P = (elt *)(bsm + L::p), *Plo = (elt *)(bsm + L::plo), *A = (elt *)(bsm + L::a), *Alo = (elt *)(bsm + L::alo);
    elt *S = (elt *)(bsm + L::s), *Slo = (elt *)(bsm + L::slo), *Z = (elt *)(bsm + L::z);
    float *g = (float *)(bsm + L::g), *eb = (float *)(bsm + L::eb);
    float *GP = (float *)(bsm + L::gp), *GS = (float *)(bsm + L::gs), *BP = (float *)(bsm + L::bp), *BS = (float *)(bsm + L::bs);
    int *split8 = (int *)(bsm + L::red);   // per 16-row block and eight channels: whether all eight split (bp_diag_split)
    const unsigned char *img_in = (const unsigned char *)p.ws_sin + bp_image(slot, h);
    const unsigned char *img_out = (const unsigned char *)p.ws_dso + bp_image(slot, h);
    void *const dq_direct = bp_direct<ATTNC_BP_DQ_TENSOR>(p);
    void *const dk_direct = bp_direct<ATTNC_BP_DK_TENSOR>(p);
    static_assert(NB * KP / 8 <= ATTNC_B_THREADS, "the split flags fit the reduction slots");

    attnc_bwd_stage_issue<true>(p, c0, eos, h, bsm + L::stage);
    bp_img_regs img;
    bp_image_issue(img_in, img);    // in flight while the rows are formed
    bp_load_rows(p, c0, nrows, h, bsm, true);
    __syncthreads();   // the staged rows (over S) are read
    bp_image_finish<false>(img, S, Slo);
    bp_image_issue(img_out, img);   // in flight through P, A and dq
    __syncthreads();
    bp_scan_diag(g);
    __syncthreads();
    // E_d: row d of <S_in, dS_out> times e^{b_Ld}: where the tiles hold the images exactly (hi + lo, or fp32)
    // or no remainder is kept at all (ATTNC_BP_PLO 0: S_in's hi tile against dS_out's exact values),
    // from S_in's tiles as dS_out's image replaces them (bp_image_finish's per-piece partials, in L::m, the
    // region the role rows had before they moved to registers); else here, one warp per row from global memory
    // (the images read twice: 28 % of gla's chunk kernel in ncu, every load a long scoreboard wait)
    constexpr bool ED_TILES = (ATTNC_BP_SLO || !ATTNC_BP_PLO) &&
                              ATTNC_BP_KP * ATTNC_BP_IMG_PIECES <= ATTNC_B_WARPS * ATTNC_BP_STG;
    float *ed_part = (float *)(bsm + L::m);
    for (int d = warp; d < (ED_TILES ? 0 : KP); d += ATTNC_B_WARPS) {
        float e = 0.f;
        for (int c = lane; c < ATTNC_BP_VP; c += 32)
            e += bp_img_at(img_in, d, c) * bp_img_at(img_out, d, c);
        e = attnc_warp_sum(e);
        if (lane == 0)
            eb[d] = e * bp_dec(BP_B(g, ATTNC_BP_C - 1, d));
    }
    // Z (two blocks): rows < 16 K e^{b_16 - b}, rows >= 16 Q e^{b - b_16}; eight channels a step
    if constexpr (NB == 2)
        for (int i = tid; i < ATTNC_BP_C * KP / 8; i += ATTNC_B_THREADS) {
            const int r = i / (KP / 8), c = i % (KP / 8) * 8;
            float x[8], br[8], b16[8];
            ld8(x, (r < 16 ? K : Q) + r * ATTNC_BP_LDK + c);
            bp_ld_f8(br, &BP_B(g, r, c));
            bp_ld_f8(b16, &BP_B(g, 16, c));
#pragma unroll
            for (int u = 0; u < 8; u++)
                x[u] *= bp_dec(r < 16 ? b16[u] - br[u] : br[u] - b16[u]);
            st8(Z + r * ATTNC_BP_LDK + c, x);
        }
    // P's diagonal blocks' operands, fp32 [C][LDH]: Qh over GP (and the start of GS), Kh over BP (and of BS), all
    // free until the in-block sums; a channel whose factors do not split keeps its q and k
    for (int i = tid; i < ATTNC_BP_C * KP / 8; i += ATTNC_B_THREADS) {
        const int r = i / (KP / 8), c = i % (KP / 8) * 8, r0 = r / 16 * 16;
        float q8[8], k8[8], b0[8], b15[8], br[8];
        ld8(q8, Q + r * ATTNC_BP_LDK + c);
        ld8(k8, K + r * ATTNC_BP_LDK + c);
        bp_ld_f8(b0, &BP_B(g, r0, c));
        bp_ld_f8(b15, &BP_B(g, r0 + 15, c));
        bp_ld_f8(br, &BP_B(g, r, c));
        bool all = true;   // (every row's thread finds its block's flag; the first row's stores it)
#pragma unroll
        for (int u = 0; u < 8; u++)
            if (bp_diag_split(b0[u], b15[u])) {
                q8[u] *= bp_dec(br[u] - b0[u]);
                k8[u] *= attnc_exp2(b0[u] - br[u]);
            } else {
                all = false;
            }
        bp_st_f8(GP + r * ATTNC_BP_LDH + c, q8);
        bp_st_f8(BP + r * ATTNC_BP_LDH + c, k8);
        if (r == r0)
            split8[r0 / 16 * (KP / 8) + c / 8] = all;
    }
    __syncthreads();
    // A = dP (masked) on the 16 x 16 blocks on and below the diagonal, and P's block (1, 0) from Z: a warp per
    // (block, n-tile of 8), so that at C = 32 all eight warps share the eight products (a warp per block kept
    // three busy, one of them with both of block (1, 0)'s products: 15 % of gla's chunk kernel in ncu)
    {
        constexpr int NA = NB * (NB + 1) / 2, NU = 2 * (NA + NB * (NB - 1) / 2);
        for (int u = warp; u < NU; u += ATTNC_B_WARPS) {
            const int half = u & 1, blk = u >> 1;
            const bool is_p = blk >= NA;   // blocks: A's (row-major, nj <= mi), then P's (nj < mi)
            int mi = is_p ? 1 : 0, nj = is_p ? blk - NA : blk;
            while (nj > (is_p ? mi - 1 : mi)) {   // block row mi holds mi + 1 of A's blocks, mi of P's
                nj -= is_p ? mi : mi + 1;
                mi++;
            }
            float acc[4] = {0.f, 0.f, 0.f, 0.f};
            // (the n-tile as a constant: a fragment register chosen at run time would go through local memory)
            auto mma_half = [&](const frag &a, const frag &b) { half ? mma(acc, a, b, 1) : mma(acc, a, b, 0); };
            for (int k = 0; k < (is_p ? KP : ATTNC_BP_VP); k += 16) {
                frag a, b;
                bp_frag_a<false>(a, is_p ? Z : D, is_p ? ATTNC_BP_LDK : ATTNC_BP_LDV, mi * 16, k, lane);
                bp_frag_b<false>(b, is_p ? Z : V, is_p ? ATTNC_BP_LDK : ATTNC_BP_LDV, nj * 16, k, lane);
                mma_half(a, b);
                if constexpr (ATTNC_BP_VLO)
                    if (!is_p) {
                        bp_frag_b<false>(b, Vlo, ATTNC_BP_LDV, nj * 16, k, lane);
                        mma_half(a, b);
                    }
            }
            elt *hi_tile = is_p ? P : A, *lo_tile = is_p ? Plo : Alo;
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int r = bp_row(mi * 16, lane, i), j = bp_col(nj * 16, half, lane, i);
                elt hi, lo;
                bp_split(is_p || j <= r ? acc[i] : 0.f, hi, lo);
                hi_tile[r * ATTNC_BP_LDC + j] = hi;
                if constexpr (ATTNC_BP_PLO)
                    lo_tile[r * ATTNC_BP_LDC + j] = lo;
            }
        }
    }
    // P's diagonal blocks in fp32 (a thread per key and two query rows, whose pairs share the key's loads; zero
    // above the diagonal), from the scaled rows: a channel whose gate spans at most ATTNC_BP_DIAG_SPAN within the
    // block (every lane of a warp is in one block, so the test is the warp's) takes Qh_r Kh_j = q_r k_j e^{b_r - b_j},
    // with no exp2 a term; past that span Qh, Kh are q, k and the term takes its own factor, as every term did before
    // (the exp2 unit bounded this loop; then the loads: the split flags and the key shared halve them)
    for (int i = tid; i < NB * 128; i += ATTNC_B_THREADS) {
        const int r0 = i / 128 * 16, r = r0 + i % 128 / 16 * 2, j = r0 + i % 16;
        float x[2] = {0.f, 0.f};   // rows r, r + 1 (row r's term at j = r + 1 is formed and dropped)
        if (j <= r + 1)   // eight channels a step (rows of Qh, Kh and b are 16-byte aligned), in order
            for (int c = 0; c < KP; c += 8) {
                float q8[2][8], k8[8];
                bp_ld_f8(q8[0], GP + r * ATTNC_BP_LDH + c);
                bp_ld_f8(q8[1], GP + (r + 1) * ATTNC_BP_LDH + c);
                bp_ld_f8(k8, BP + j * ATTNC_BP_LDH + c);
                if (split8[r0 / 16 * (KP / 8) + c / 8]) {
#pragma unroll
                    for (int t = 0; t < 2; t++)
#pragma unroll
                        for (int u = 0; u < 8; u++)
                            x[t] += q8[t][u] * k8[u];
                } else {
                    float b0[8], b15[8], bj[8], br[8];
                    bp_ld_f8(b0, &BP_B(g, r0, c));
                    bp_ld_f8(b15, &BP_B(g, r0 + 15, c));
                    bp_ld_f8(bj, &BP_B(g, j, c));
#pragma unroll
                    for (int t = 0; t < 2; t++) {
                        bp_ld_f8(br, &BP_B(g, r + t, c));
#pragma unroll
                        for (int u = 0; u < 8; u++)
                            x[t] += bp_diag_split(b0[u], b15[u]) ? q8[t][u] * k8[u]
                                                                 : q8[t][u] * k8[u] * bp_dec(br[u] - bj[u]);
                    }
                }
            }
#pragma unroll
        for (int t = 0; t < 2; t++) {
            elt hi, lo;
            bp_split(j <= r + t ? x[t] : 0.f, hi, lo);
            P[(r + t) * ATTNC_BP_LDC + j] = hi;
            if constexpr (ATTNC_BP_PLO)
                Plo[(r + t) * ATTNC_BP_LDC + j] = lo;
        }
    }
    __syncthreads();
    // the in-block parts of dq and dk (a thread per (block, channel), fp32, the same terms for both):
    // dq_in into BS, dk_in into GP, k dk_in - q dq_in into BP (bp_diag_inblock)
    for (int i = tid; i < NB * KP; i += ATTNC_B_THREADS) {
        const int r0 = i / KP * 16, c = i % KP;
        float dqi[16], dki[16], qs[16], ks[16], bv[16], sq[16], sk[16];
#pragma unroll
        for (int t = 0; t < 16; t++) {
            dqi[t] = dki[t] = 0.f;
            qs[t] = attnc_elt_to_float(Q[(r0 + t) * ATTNC_BP_LDK + c]);
            ks[t] = attnc_elt_to_float(K[(r0 + t) * ATTNC_BP_LDK + c]);
            bv[t] = BP_B(g, r0 + t, c);
        }
        if (bp_diag_split(bv[0], bv[15])) {
#pragma unroll
            for (int t = 0; t < 16; t++) {
                sq[t] = bp_dec(bv[t] - bv[0]);
                sk[t] = attnc_exp2(bv[0] - bv[t]);
                qs[t] *= sq[t];
                ks[t] *= sk[t];
            }
            bp_diag_inblock<false>(A, Alo, r0, bv, qs, ks, dqi, dki);
        } else {
#pragma unroll
            for (int t = 0; t < 16; t++)
                sq[t] = sk[t] = 1.f;
            bp_diag_inblock<true>(A, Alo, r0, bv, qs, ks, dqi, dki);
        }
#pragma unroll
        for (int t = 0; t < 16; t++) {
            BS[(r0 + t) * ATTNC_BP_LDT + c] = sq[t] * dqi[t];
            GP[(r0 + t) * ATTNC_BP_LDT + c] = sk[t] * dki[t];
            BP[(r0 + t) * ATTNC_BP_LDT + c] = ks[t] * dki[t] - qs[t] * dqi[t];
        }
    }
    __syncthreads();
    // dq = e^{b} o (dO S_in^T) + in-block + e^{b - b_16} o (A Z) (row block 1)
    for (int item = warp; item < NB * NG; item += ATTNC_B_WARPS) {
        const int mi = item / NG, m0 = mi * 16, n0 = item % NG * 8 * NT;
        float acc[NT][4], off[NT][4];
        bp_zero<NT>(acc);
        bp_zero<NT>(off);
        bp_mma_s<NT, false, false>(acc, D, ATTNC_BP_LDV, m0, S, Slo, ATTNC_BP_LDV, n0, 0, ATTNC_BP_VP, lane);
        if (mi > 0) {
            bp_mma<NT, false, true>(off, A, ATTNC_BP_LDC, m0, Z, ATTNC_BP_LDK, n0, 0, 16, lane);
            if constexpr (ATTNC_BP_PLO)
                bp_mma<NT, false, true>(off, Alo, ATTNC_BP_LDC, m0, Z, ATTNC_BP_LDK, n0, 0, 16, lane);
        }
        // the epilogue's shared-memory reads, all before its writes, a lane's two columns in one access each
        // (bp_diag_pairs)
        float2 qf[NT][2], br[NT][2], b16[NT][2], din[NT][2];
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int e2 = 0; e2 < 2; e2++) {
                const int r = bp_row(m0, lane, 2 * e2), c = bp_col(n0, nt, lane, 2 * e2);
                qf[nt][e2] = ld2(Q + r * ATTNC_BP_LDK + c);
                br[nt][e2] = ldf2(&BP_B(g, r, c));
                b16[nt][e2] = ldf2(&BP_B(g, 16 * (NB - 1), c));
                din[nt][e2] = ldf2(BS + r * ATTNC_BP_LDT + c);
            }
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            float dq[4];
#pragma unroll
            for (int e2 = 0; e2 < 2; e2++) {
                const int r = bp_row(m0, lane, 2 * e2), c = bp_col(n0, nt, lane, 2 * e2);
                float out_gs[2], out_bs[2];
#pragma unroll
                for (int u = 0; u < 2; u++) {
                    const int i = 2 * e2 + u;
                    const float q = bp_f2(qf[nt][e2], u), b = bp_f2(br[nt][e2], u);
                    const float inter = acc[nt][i] * bp_dec(b);
                    const float o = mi > 0 ? off[nt][i] * bp_dec(b - bp_f2(b16[nt][e2], u)) : 0.f;
                    dq[i] = inter + bp_f2(din[nt][e2], u) + o;
                    out_gs[u] = q * inter;
                    out_bs[u] = q * o;
                }
                stf2(GS + r * ATTNC_BP_LDT + c, out_gs[0], out_gs[1]);
                stf2(BS + r * ATTNC_BP_LDT + c, out_bs[0], out_bs[1]);
            }
            bp_role_grad_frag<ATTNC_BP_DQ_TENSOR, ATTNC_BP_DQ_DTYPE, ATTNC_B_K>(p.ws_dq, dq_direct, dq, m0, n0, nt, lane, c0,
                                                                               nrows, h, ATTNC_BP_DQ_SCALE);
        }
    }
    __syncthreads();
    bp_image_finish<ED_TILES, ATTNC_BP_SLO, true>(img, S, Slo, ed_part);
    __syncthreads();
    if constexpr (ED_TILES)   // (read by the gate's loop, after the barriers below)
        for (int d = tid; d < KP; d += ATTNC_B_THREADS) {
            float e = 0.f;
            for (int j = 0; j < ATTNC_BP_IMG_PIECES; j++)
                e += ed_part[d * ATTNC_BP_IMG_PIECES + j];
            eb[d] = e * bp_dec(BP_B(g, ATTNC_BP_C - 1, d));
        }
    // dk = e^{b_L - b} o (V dS_out^T) + in-block + e^{b_16 - b} o (A^T Z) (row block 0), and Kd = K o e^{b_L - b}
    // over Q (read by no one since dq's epilogue) for dv's contraction index, with the factor dk takes (a pass of
    // its own formed each factor again, after a barrier, and had one more before dv)
    elt *const Kd = (elt *)(bsm + L::q);
    for (int item = warp; item < NB * NG; item += ATTNC_B_WARPS) {
        const int mj = item / NG, m0 = mj * 16, n0 = item % NG * 8 * NT;
        float acc[NT][4], off[NT][4];
        bp_zero<NT>(acc);
        bp_zero<NT>(off);
        bp_mma_s<NT, false, false>(acc, V, ATTNC_BP_LDV, m0, S, Slo, ATTNC_BP_LDV, n0, 0, ATTNC_BP_VP, lane);
        if constexpr (ATTNC_BP_VLO)
            bp_mma<NT, false, false>(acc, Vlo, ATTNC_BP_LDV, m0, S, ATTNC_BP_LDV, n0, 0, ATTNC_BP_VP, lane);
        if (mj < NB - 1) {
            bp_mma<NT, true, true>(off, A, ATTNC_BP_LDC, m0, Z, ATTNC_BP_LDK, n0, 16, ATTNC_BP_C, lane);
            if constexpr (ATTNC_BP_PLO)
                bp_mma<NT, true, true>(off, Alo, ATTNC_BP_LDC, m0, Z, ATTNC_BP_LDK, n0, 16, ATTNC_BP_C, lane);
        }
        float2 kf[NT][2], bj[NT][2], bl[NT][2], b16[NT][2], din[NT][2], pre[NT][2];   // (bp_diag_pairs)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int e2 = 0; e2 < 2; e2++) {
                const int j = bp_row(m0, lane, 2 * e2), c = bp_col(n0, nt, lane, 2 * e2);
                kf[nt][e2] = ld2(K + j * ATTNC_BP_LDK + c);
                bj[nt][e2] = ldf2(&BP_B(g, j, c));
                bl[nt][e2] = ldf2(&BP_B(g, ATTNC_BP_C - 1, c));
                b16[nt][e2] = ldf2(&BP_B(g, 16 * (NB - 1), c));
                din[nt][e2] = ldf2(GP + j * ATTNC_BP_LDT + c);
                pre[nt][e2] = ldf2(BP + j * ATTNC_BP_LDT + c);
            }
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            float dk[4];
#pragma unroll
            for (int e2 = 0; e2 < 2; e2++) {
                const int j = bp_row(m0, lane, 2 * e2), c = bp_col(n0, nt, lane, 2 * e2);
                float out_gp[2], out_bp[2], kd[2];
#pragma unroll
                for (int u = 0; u < 2; u++) {
                    const int i = 2 * e2 + u;
                    const float k = bp_f2(kf[nt][e2], u), b = bp_f2(bj[nt][e2], u);
                    const float fl = bp_dec(bp_f2(bl[nt][e2], u) - b);
                    const float inter = acc[nt][i] * fl;
                    const float o = mj < NB - 1 ? off[nt][i] * bp_dec(bp_f2(b16[nt][e2], u) - b) : 0.f;
                    dk[i] = inter + bp_f2(din[nt][e2], u) + o;
                    out_gp[u] = k * inter;
                    out_bp[u] = bp_f2(pre[nt][e2], u) + k * o;
                    kd[u] = k * fl;
                }
                stf2(GP + j * ATTNC_BP_LDT + c, out_gp[0], out_gp[1]);
                stf2(BP + j * ATTNC_BP_LDT + c, out_bp[0], out_bp[1]);
                st2(Kd + j * ATTNC_BP_LDK + c, kd[0], kd[1]);
            }
            bp_role_grad_frag<ATTNC_BP_DK_TENSOR, ATTNC_BP_DK_DTYPE, ATTNC_B_K>(p.ws_dk, dk_direct, dk, m0, n0, nt, lane, c0,
                                                                               nrows, h);
        }
    }
    __syncthreads();
    // dv = Kd dS_out + P^T dO
    {
        // 16 rows x 32 columns per item (x 16 where VP is not a multiple of 32): every warp busy at C = 32
        constexpr int NTV = ATTNC_BP_VP % 32 == 0 ? 4 : 2, NGV = ATTNC_BP_VP / (8 * NTV);
        for (int item = warp; item < NB * NGV; item += ATTNC_B_WARPS) {
            const int mj = item / NGV, m0 = mj * 16, n0 = item % NGV * 8 * NTV;
            float acc[NTV][4];
            bp_zero<NTV>(acc);
            bp_mma_s<NTV, false, true>(acc, Kd, ATTNC_BP_LDK, m0, S, Slo, ATTNC_BP_LDV, n0, 0, KP, lane);
            bp_dv_finish<NTV>(p, acc, bsm, m0, n0, c0, nrows, h, lane);
        }
    }
    // the gate, a thread per channel and 16-row block (two per channel at C = 32: a channel's tokens were one
    // thread's chain while half the threads idled): E_d + keys before + queries from s on + the pair terms
    // of s's block; a block's thread starts from its own sums of the rows before and after its first row
    constexpr int NBK = ATTNC_BP_C / 16;
    for (int i = tid; i < ATTNC_B_K * NBK; i += ATTNC_B_THREADS) {
        const int c = i % ATTNC_B_K, t0 = i / ATTNC_B_K * 16, t1 = min(t0 + 16, nrows);
        float w = 0.f, kin = 0.f, bpre = 0.f, bsuf = 0.f;
        for (int r = t0; r < ATTNC_BP_C; r++)
            w += GS[r * ATTNC_BP_LDT + c];
        for (int t = 0; t < t0; t++)
            kin += GP[t * ATTNC_BP_LDT + c];
        for (int r = t0; r < t0 + 16; r++)
            bsuf += BS[r * ATTNC_BP_LDT + c];
        for (int t = t0; t < t1; t++) {
            const float da = eb[c] + kin + w + bpre + bsuf;
            p.ws_dg[((size_t)(c0 + t) * ATTNC_HOUT + h) * ATTNC_B_K + c] = da;
            kin += GP[t * ATTNC_BP_LDT + c];
            w -= GS[t * ATTNC_BP_LDT + c];
            bpre += BP[t * ATTNC_BP_LDT + c];
            bsuf -= BS[t * ATTNC_BP_LDT + c];
        }
    }
}
#endif
#endif

#if ATTNC_B_NORM != ATTNC_BP_NORM_NONE
// The normalisers' rows: x = e^{b} (Q S_in) + P V, then d(x) from dout into ws_do (the sequential
// kernel's attnc_bwd_norm_rows, one warp per row, fp32).
#if ATTNC_BWD_WANT(ATTNC_BK_P_ROWS)
extern "C" __global__ void __launch_bounds__(ATTNC_B_THREADS, 1) attnc_bwdp_rows(attnc_bwd_params p)
{
    extern __shared__ __align__(128) unsigned char bsm[];
    using L = attnc_bp_chunk_layout;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int slot = blockIdx.x, h = blockIdx.y;
    int n, c0, eos;
    if (!bp_slot_chunk(p, slot, n, c0, eos))
        return;
    const int nrows = min(ATTNC_BP_C, eos - c0);
    const elt *Q = (const elt *)(bsm + L::q), *V = (const elt *)(bsm + L::v), *Vlo = (const elt *)(bsm + L::vlo);
    const elt *P = (const elt *)(bsm + L::p), *Plo = (const elt *)(bsm + L::plo);
    elt *S = (elt *)(bsm + L::s), *Slo = (elt *)(bsm + L::slo);
    float *X = (float *)(bsm + L::m), *g = (float *)(bsm + L::g);
    attnc_bwd_stage_issue<true>(p, c0, eos, h, bsm + L::stage);
    bp_load_rows(p, c0, nrows, h, bsm, false);
    __syncthreads();   // the staged rows (over S) are read
    bp_load_image<false>((const unsigned char *)p.ws_sin + bp_image(slot, h), S, Slo);
    __syncthreads();
    if constexpr (ATTNC_BP_GATED) {
        if (warp == 0)
            bp_scan(g, g, lane);
        __syncthreads();
    }
    bp_scores(bsm, false);
    __syncthreads();
    {
        constexpr int NT = ATTNC_BP_NT(ATTNC_BP_VP), NG = ATTNC_BP_VP / (8 * NT), NB = ATTNC_BP_C / 16;
        for (int item = warp; item < NB * NG; item += ATTNC_B_WARPS) {
            const int mi = item / NG, cg = item % NG, m0 = mi * 16, n0 = cg * 8 * NT;
            float acc[NT][4];
            bp_zero<NT>(acc);
            bp_mma_s<NT, false, true>(acc, Q, ATTNC_BP_LDK, m0, S, Slo, ATTNC_BP_LDV, n0, 0, ATTNC_BP_KP, lane);
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int i = 0; i < 4; i++)
                    acc[nt][i] *= bp_dec(g[bp_row(m0, lane, i)]);
            bp_mma<NT, false, true>(acc, P, ATTNC_BP_LDC, m0, V, ATTNC_BP_LDV, n0, 0, m0 + 16, lane);
            if constexpr (ATTNC_BP_PLO)
                bp_mma<NT, false, true>(acc, Plo, ATTNC_BP_LDC, m0, V, ATTNC_BP_LDV, n0, 0, m0 + 16, lane);
            if constexpr (ATTNC_BP_VLO)
                bp_mma<NT, false, true>(acc, P, ATTNC_BP_LDC, m0, Vlo, ATTNC_BP_LDV, n0, 0, m0 + 16, lane);
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int i = 0; i < 4; i++)
                    X[bp_row(m0, lane, i) * (ATTNC_BP_VP + 1) + bp_col(n0, nt, lane, i)] = acc[nt][i];
        }
    }
    __syncthreads();
    constexpr float inv_n = 1.f / ATTNC_B_VO;
    for (int r = warp; r < nrows; r += ATTNC_B_WARPS) {
        const float *x = X + r * (ATTNC_BP_VP + 1);
        const size_t row = (size_t)(c0 + r) * ATTNC_HOUT + h;
        float *ws = p.ws_do + row * ATTNC_B_V;
        float dy[(ATTNC_B_VO + 31) / 32];
#pragma unroll
        for (int s = 0; s < (ATTNC_B_VO + 31) / 32; s++) {
            const int c = lane + 32 * s;
            dy[s] = c < ATTNC_B_VO ? attnc_load<ATTNC_OUT_DTYPE>(p.dout, row * ATTNC_B_VO + c) : 0.f;
        }
        if constexpr (ATTNC_B_NORM == ATTNC_BP_NORM_DENOM) {
            // o = x / den, den = q.z + eps: d(x) = dO / den, d(q.z) = -(dO . x) / den^2
            const float den = x[ATTNC_B_VO] + ATTNC_B_EPS;
            float xd = 0.f;
#pragma unroll
            for (int s = 0; s < (ATTNC_B_VO + 31) / 32; s++)
                if (lane + 32 * s < ATTNC_B_VO)
                    xd += x[lane + 32 * s] * dy[s];
            xd = attnc_warp_sum(xd);
#pragma unroll
            for (int s = 0; s < (ATTNC_B_VO + 31) / 32; s++)
                if (lane + 32 * s < ATTNC_B_VO)
                    ws[lane + 32 * s] = dy[s] / den;
            if (lane == 0)
                ws[ATTNC_B_VO] = -xd / (den * den);
        } else if constexpr (ATTNC_B_NORM == ATTNC_BP_NORM_RMS) {
            // o = x rs, rs = (|x|^2 / V + eps)^-1/2: d(x) = rs dO - rs^3 (x . dO) x / V
            float ss = 0.f, xd = 0.f;
#pragma unroll
            for (int s = 0; s < (ATTNC_B_VO + 31) / 32; s++)
                if (lane + 32 * s < ATTNC_B_VO) {
                    ss += x[lane + 32 * s] * x[lane + 32 * s];
                    xd += x[lane + 32 * s] * dy[s];
                }
            ss = attnc_warp_sum(ss);
            xd = attnc_warp_sum(xd);
            const float rs = rsqrtf(ss * inv_n + ATTNC_B_EPS);
#pragma unroll
            for (int s = 0; s < (ATTNC_B_VO + 31) / 32; s++)
                if (lane + 32 * s < ATTNC_B_VO)
                    ws[lane + 32 * s] = rs * dy[s] - rs * rs * rs * xd * x[lane + 32 * s] * inv_n;
        } else {
            // o = (x - mean) rs: d(x) = rs (dO - mean(dO) - o mean(dO o))
            float mean = 0.f;
#pragma unroll
            for (int s = 0; s < (ATTNC_B_VO + 31) / 32; s++)
                if (lane + 32 * s < ATTNC_B_VO)
                    mean += x[lane + 32 * s];
            mean = attnc_warp_sum(mean) * inv_n;
            float var = 0.f;
#pragma unroll
            for (int s = 0; s < (ATTNC_B_VO + 31) / 32; s++)
                if (lane + 32 * s < ATTNC_B_VO)
                    var += (x[lane + 32 * s] - mean) * (x[lane + 32 * s] - mean);
            const float rs = rsqrtf(attnc_warp_sum(var) * inv_n + ATTNC_B_EPS);
            float md = 0.f, mdo = 0.f;
#pragma unroll
            for (int s = 0; s < (ATTNC_B_VO + 31) / 32; s++)
                if (lane + 32 * s < ATTNC_B_VO) {
                    md += dy[s];
                    mdo += dy[s] * (x[lane + 32 * s] - mean) * rs;
                }
            md = attnc_warp_sum(md) * inv_n;
            mdo = attnc_warp_sum(mdo) * inv_n;
#pragma unroll
            for (int s = 0; s < (ATTNC_B_VO + 31) / 32; s++)
                if (lane + 32 * s < ATTNC_B_VO)
                    ws[lane + 32 * s] = rs * (dy[s] - md - (x[lane + 32 * s] - mean) * rs * mdo);
        }
    }
}
#endif
#endif

#endif   // ATTNC_BP
