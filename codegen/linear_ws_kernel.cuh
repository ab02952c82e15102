// codegen/linear_ws_kernel.cuh: the sequential walk with its warps specialised (sm_90a), after
// linear_kernel.cuh in the sequential unit that the launcher compiles with ATTNC_WS 1.
//
// Why: the walk of linear_kernel.cuh runs each chunk as one chain over barriers (staging, prologue, gates,
// decayed keys, image, products, update) at one CTA of 8 warps an SM, and waits most of its cycles (no
// eligible warp in 66-71 % of them, ncu on the H200, bench/RESULTS.md thirtieth session): the staging, the
// prologue and the decayed keys of the next chunk do not depend on the state, yet the products wait for
// them.  Here more warpgroups, the producers, form chunk j + 1's tiles (raw rows by cp.async, the role rows,
// the gates and their cumulative sums, the decayed keys; with a constant decay also the causal scores' excess
// blocks, ATTNC_WS_EXCESS; for the delta rule its WY stage, U and -W, attnc_ws_wy) into the other of two tile
// buffers while the walk's 8 warps, the consumers, run chunk j's image, products and update:
// attnc_linear_body itself, in its ATTNC_WS mode (steps 1 and 2, the decayed tiles and the delta rule's step 4
// up to U_hat left to the producers, its barriers its own).  One warpgroup of producers, two for the delta rule
// (codegen/cuda.c's ws_producers).
//
// Hand-over, per tile buffer b (chunk j uses b = j % 2), by named barriers of all ATTNC_WS_THREADS threads:
//   FULL(b): the producers arrive when chunk j's tiles are in b; the consumers wait there.
//   EMPTY(b): the consumers arrive when they have read chunk j's tiles (except for the last two chunks, whose
//   buffers are not filled again); the producers wait there before filling b with chunk j + 2.
// A consumer reaches FULL for chunk j + 1 only after its work on chunk j, so the image of S_in (one buffer)
// is rewritten only after every consumer has read it.  setmaxnreg moves registers from the producers
// (WS_PRODUCER_REGS) to the consumers (WS_CONSUMER_REGS): 384 threads launch at 168, which spilled the body.
//
// What it covers (codegen/cuda.c's ws_eligible): the causal walk of all of V in one CTA with a scalar or
// constant decay, no normaliser (lightning, mamba2), and the delta rule with such a decay or none (deltanet,
// gated_deltanet).  Per-channel gates and row norms run here too (the producers sum the gates, the body's steps
// are generic) but spilled at these register splits; the stabiliser, the input gate and the running
// denominator would need more of the chunk's steps moved.  The products are the walk's, in the same order: the
// same bits.

#if ATTNC_WS
static_assert(ATTNC_WS_OK, "the warp-specialised walk was asked for a plan it does not cover");
// The registers the producers release are those the consumers take: 112 x 128 = 56 x 256, and with the
// scores' excess 96 x 128 = 48 x 256 (lightning's walk at T = 8192 0.604 ms there, 0.611 at 56 / 224; 40 / 232:
// mamba2's producers spilled 12 bytes).
// The delta rule's two warpgroups of producers (512 threads launch at 128 registers) take what the consumers
// can spare: their WY stage is the walk's critical path.  The most each plan's consumers spared without a spill
// on sm_90a: with a scalar decay 144 (gated_deltanet, its GVA form), without one 152 (deltanet, whose consumers
// spilled at 144).  H200, T = 8192 (bench/RESULTS.md, thirty-third session): gated_delta's walk 1.428 ms at
// 96 / 160, 1.350 at 112 / 144; delta_rule's 1.349 -> 1.215 at 104 / 152.  A decayed walk that saves bf16
// images for the backward (ATTNC_SAVES 1: the gated delta rule's training forward) spilled 16 bytes at
// 112 / 144 and none at 104 / 152 (1.435 -> 1.417 ms on the H200, forty-fourth session), where the same walk
// without saves (gated_deltanet, its GVA form) spills 8 and 12 bytes: each at the split where it spills nothing.
enum { WS_DELTA_PRODUCER_REGS = ATTNC_TRANSITION == TR_IDENTITY || ATTNC_SAVES == 1 ? 104 : 112 };
enum {
    WS_PRODUCER_REGS = ATTNC_DELTA ? WS_DELTA_PRODUCER_REGS : ATTNC_WS_EXCESS ? 72 : 56,
    WS_CONSUMER_REGS = ATTNC_DELTA ? 256 - WS_DELTA_PRODUCER_REGS : ATTNC_WS_EXCESS ? 216 : 224
};
static_assert(ATTNC_THREADS * WS_CONSUMER_REGS + ATTNC_WS_PRODUCERS * WS_PRODUCER_REGS <= 65536, "registers");

// The scores' excess blocks (rg, kb < rg + 1 - WS_PCAP: linear_kernel.cuh's WS_PCAP) of the chunk into its
// tile sp, a block a producer warp: each block's k-steps, decay and the query's scale as scores<false> and
// the walk's outputs form them (these blocks lie left of the diagonal: no mask), rounded to the tile's type
// as mm_regs rounds its A fragments.
__device__ __forceinline__ void attnc_ws_scores(const elt *sq, const elt *sk, const float *sg, elt *sp, int pwarp, int lane)
{
    static_assert(ATTNC_TRANSITION != TR_DIAG, "a scalar, constant or no decay (ws_eligible)");
    constexpr int BLOCKS = (ATTNC_RG - WS_PCAP) * (ATTNC_RG - WS_PCAP + 1) / 2;   // row group WS_PCAP + x has x + 1
    const int gr = lane >> 2, tq = lane & 3;
    for (int i = pwarp; i < BLOCKS; i += ATTNC_WS_PRODUCERS / 32) {
        int x = 0;   // block i: row group WS_PCAP + x, key block kb (x + 1 of them in that row group)
        while ((x + 1) * (x + 2) / 2 <= i)
            x++;
        const int rg = WS_PCAP + x, kb = i - x * (x + 1) / 2;
        float acc[2][4] = {};
#pragma unroll
        for (int kt = 0; kt < ATTNC_KP / 16; kt++) {
            frag a, b;
            load_a(a, sq, ATTNC_LDK, rg * 16, kt * 16, lane);
            load_b_nk(b, sk, ATTNC_LDK, kb * 16, kt * 16, lane);
            mma(acc[0], a, b, 0);
            mma(acc[1], a, b, 1);
        }
#pragma unroll
        for (int t = 0; t < 2; t++)
#pragma unroll
            for (int e2 = 0; e2 < 2; e2++) {
                const int r = rg * 16 + gr + e2 * 8, j = kb * 16 + t * 8 + tq * 2;
                float x0 = acc[t][e2 * 2] * pair_decay(sg, r, j), x1 = acc[t][e2 * 2 + 1] * pair_decay(sg, r, j + 1);
                if constexpr (ATTNC_QSCALE != 1.0f) {
                    x0 *= ATTNC_QSCALE;
                    x1 *= ATTNC_QSCALE;
                }
                st2(sp + (r - WS_PCAP * 16) * WS_LDP + j, x0, x1);
            }
    }
}

// The delta rule's WY stage on the producers (step 4 of the walk up to U_hat): T = (I + Akk)^-1 and
// T diag(beta) (wy_inverse), then U = T diag(beta) V into the buffer's fp32 tile and -W into its -W tile, a
// row group's columns dealt over its PW / RG warps.  The consumers load U into the accumulators that the
// walk's U products leave it in and go on with U_hat = U + (-W) S_in: the same bits.
__device__ __forceinline__ void attnc_ws_wy(const attnc_ws_tiles &t, const elt *sqg, const float *sbeta, float *saf,
                                            float *stf, float *sx, elt *stb, int ptid)
{
    constexpr int PW = ATTNC_WS_PRODUCERS / 32, PCG = PW / ATTNC_RG, NTU = ATTNC_V / 8 / PCG;
    static_assert(PW % ATTNC_RG == 0 && ATTNC_V % (8 * PCG) == 0, "the producers' warps cover the row groups and V");
    const int lane = ptid & 31, pwarp = ptid >> 5, rg = pwarp % ATTNC_RG, cg = pwarp / ATTNC_RG;
    wy_inverse<PW>(t.k, t.ke, t.g, sbeta, saf, stf, sx, stb, ptid,
                   [] { attnc_bar_named(WS_BAR_PRODUCERS, ATTNC_WS_PRODUCERS); });
    {
        float U[NTU][4];
        wy_u<NTU>(U, stb, t.v, rg, cg * NTU * 8, lane);
        frag_rows_store<NTU>(t.u, WS_LDU, rg * 16, cg * NTU * 8, U, lane);
    }
    // (K's n-tiles dealt evenly: eight a warp left half of two warpgroups' warps idle)
    constexpr int NTW = ATTNC_KP / 8 / PCG < 8 ? ATTNC_KP / 8 / PCG : 8;
    wy_w<NTW>(stb, sqg, t.w, rg, cg, PCG, lane);
}

// The producers (the last ATTNC_WS_PRODUCERS threads): chunk j's tiles into buffer j % 2.
__device__ __forceinline__ void attnc_ws_produce(const attnc_params &p, unsigned char *smem, int h, int bos, int eos)
{
    using L = attnc_smem_layout;
    // a scalar decay's gates by lanes (as the walk: GATE_LANES), else in the rows and summed after them
    constexpr bool GATE_LANES = ATTNC_GATE_LANES != 0;
    constexpr unsigned ROW_ROLES = ATTNC_ROLE_Q | ATTNC_ROLE_K | ATTNC_ROLE_V | (GATE_LANES ? 0u : ATTNC_ROLE_GATE) |
                                   (ATTNC_DELTA ? ATTNC_ROLE_BETA : 0u);
    attnc_regs_release<WS_PRODUCER_REGS>();
    const int ptid = threadIdx.x - ATTNC_THREADS, lane = ptid & 31, pwarp = ptid >> 5;
    const int nchunks = (eos - bos + ATTNC_C - 1) / ATTNC_C;
    unsigned char *stage = smem + ATTNC_SMEM_BYTES;
    float *sig = (float *)(smem + L::ig), *smisc = (float *)(smem + L::misc);
    // the delta rule's WY stage: the producers' own tiles in the walk's layout (the consumers read none of them)
    float *sbeta = (float *)(smem + L::beta), *saf = (float *)(smem + L::af), *stf = (float *)(smem + L::tf);
    float *sx = (float *)(smem + L::x);
    elt *sqg = (elt *)(smem + L::qg), *stb = (elt *)(smem + L::tb);
    (void)sbeta, (void)saf, (void)stf, (void)sx, (void)sqg, (void)stb;
    attnc_stage_held held;
    attnc_stage_issue<false, ATTNC_ROLES_ALL>(p, bos, eos, h, stage, &held);
    for (int j = 0; j < nchunks; j++) {
        const int b = j & 1, c0 = bos + j * ATTNC_C, nrows = min(ATTNC_C, eos - c0);
        const attnc_ws_tiles t = attnc_ws_buffer(smem, b);
        attnc_stage_held_land<ATTNC_ROLES_ALL>(stage, held);
        attnc_stage_wait();
        attnc_bar_named(WS_BAR_PRODUCERS, ATTNC_WS_PRODUCERS);   // every producer's copies have landed
        if (j >= 2)
            attnc_bar_named(WS_BAR_EMPTY + b, ATTNC_WS_THREADS);   // the consumers are done with chunk j - 2
        if constexpr (GATE_LANES)
            if (pwarp == 0)
                attnc_lane_gates(p, c0, nrows, h, lane, stage, t.g);
        constexpr int PRO_ROWS = 2, PWARPS = ATTNC_WS_PRODUCERS / 32;
        for (int base = 0; base < ATTNC_C; base += PRO_ROWS * PWARPS) {
            attnc_row rows[PRO_ROWS];
#pragma unroll
            for (int i = 0; i < PRO_ROWS; i++) {
                const int r = base + i * PWARPS + pwarp;
                attnc_row_values(p, r < nrows ? c0 + r : c0, h, r, lane, stage, r < nrows, rows[i]);
                attnc_row_save_l2<ATTNC_ROLES_ALL>(p, rows[i], c0 + r, h, r < nrows, lane);   // (training)
            }
#pragma unroll
            for (int i = 0; i < PRO_ROWS; i++)
                attnc_row_store<ROW_ROLES>(rows[i], base + i * PWARPS + pwarp, 0, lane, t.q, t.k, t.v, t.g, sbeta, sig);
        }
        attnc_bar_named(WS_BAR_PRODUCERS, ATTNC_WS_PRODUCERS);   // rows (and lanes' gates) formed, the staging read
        if (j + 1 < nchunks)
            attnc_stage_issue<false, ATTNC_ROLES_ALL>(p, c0 + ATTNC_C, eos, h, stage, &held);
        if constexpr (!GATE_LANES) {
            attnc_chunk_gates<false>(t.g, sig, nrows, ptid, ATTNC_WS_PRODUCERS);
            attnc_bar_named(WS_BAR_PRODUCERS, ATTNC_WS_PRODUCERS);
        }
        attnc_decayed_tiles<0>(t.k, t.kd, sqg, t.ke, t.g, sig, smisc, ptid, ATTNC_WS_PRODUCERS);
        if constexpr (ATTNC_WS_EXCESS)
            attnc_ws_scores(t.q, t.k, t.g, t.p, pwarp, lane);
        if constexpr (ATTNC_DELTA)
            attnc_ws_wy(t, sqg, sbeta, saf, stf, sx, stb, ptid);
        attnc_bar_arrive(WS_BAR_FULL + b, ATTNC_WS_THREADS);
    }
}

extern "C" __global__ void __launch_bounds__(ATTNC_WS_THREADS, 1) ATTNC_ENTRY(attnc_params p)
{
    extern __shared__ __align__(128) unsigned char smem[];
    const int tid = threadIdx.x;
    // Padded K columns stay zero in both buffers for the whole walk, and so do the blocks of the delta rule's
    // T diag(beta) right of its diagonal (the WY stage writes the others).
    for (int b = 0; b < 2; b++) {
        const attnc_ws_tiles t = attnc_ws_buffer(smem, b);
        for (int i = tid; i < ATTNC_C * ATTNC_LDK; i += ATTNC_WS_THREADS) {
            t.q[i] = t.k[i] = t.kd[i] = attnc_float_to_elt(0.f);
            if constexpr (ATTNC_TRANSITION == TR_DIAG)
                t.ke[i] = attnc_float_to_elt(0.f);
        }
    }
    if constexpr (ATTNC_DELTA)
        for (int i = tid; i < ATTNC_C * ATTNC_LDC; i += ATTNC_WS_THREADS)
            ((elt *)(smem + attnc_smem_layout::tb))[i] = attnc_float_to_elt(0.f);
    __syncthreads();
    if (tid >= ATTNC_THREADS) {
        int bos, eos;
        attnc_seq_bounds(p.cu_seqlens, p.seqlen, blockIdx.z, bos, eos);
        attnc_ws_produce(p, smem, blockIdx.y, bos, eos);
        return;
    }
    attnc_regs_claim<WS_CONSUMER_REGS>();
    attnc_linear_body<0>(p);
}
#endif
