// codegen/linear_ws_kernel.cuh: the sequential walk with its warps specialised (sm_90a), after
// linear_kernel.cuh in the sequential unit that the launcher compiles with ATTNC_WS 1.
//
// Why: the walk of linear_kernel.cuh runs each chunk as one chain over barriers (staging, prologue, decayed
// keys, image, products, update) at one CTA of 8 warps an SM, and waits most of its cycles (no eligible
// warp in 66-71 % of them, ncu on the H200, bench/RESULTS.md thirtieth session): the staging, the prologue
// and the decayed keys of the next chunk do not depend on the state, yet the products wait for them.  Here
// a fourth warpgroup, the producers, forms chunk j + 1's tiles (raw rows by cp.async, the role rows, the
// gates and their cumulative sums, K * e^{b_L - b}) into the other of two tile buffers while the 8 consumer
// warps, which hold the state as the walk's warps do, run chunk j's products and update.
//
// Hand-over, per tile buffer b (chunk j uses b = j % 2), by named barriers of all 384 threads:
//   FULL(b): the producers arrive when chunk j's tiles are in b; the consumers wait there.
//   EMPTY(b): the consumers arrive when they have read chunk j's tiles (except for the last two chunks, whose
//   buffers are not filled again); the producers wait there before filling b with chunk j + 2.
// A consumer reaches FULL for chunk j + 1 only after its work on chunk j, so the image of S_in (one buffer)
// is rewritten only after every consumer has read it.  Producers and consumers have a barrier each for their
// own steps.  setmaxnreg moves registers from the producers (PRODUCER_REGS) to the consumers
// (CONSUMER_REGS): 384 threads launch at 168, which spilled the walk's body.
//
// What it covers (codegen/cuda.c's ws_eligible): the causal walk of all of V in one CTA of 8 warps, two
// state groups, a scalar or constant decay whose gates a lane forms (ATTNC_GATE_LANES), no delta rule, no
// normaliser, stabiliser or input gate, no shared scores, no staged rows held in registers.  The products are
// the walk's, in the same order: the same bits as linear_kernel.cuh's walk.

#if ATTNC_WS
static_assert(ATTNC_WS_OK, "the warp-specialised walk was asked for a plan it does not cover");

#define ATTNC_WS_CONSUMERS (ATTNC_WARPS * 32)
#define ATTNC_WS_PRODUCERS 128
#define ATTNC_WS_THREADS (ATTNC_WS_CONSUMERS + ATTNC_WS_PRODUCERS)
enum { WS_BAR_FULL = 1, WS_BAR_EMPTY = 3, WS_BAR_PRODUCERS = 5, WS_BAR_CONSUMERS = 6 };
enum { WS_PRODUCER_REGS = 56, WS_CONSUMER_REGS = 224 };   // (40 / 232: mamba2's producers spilled 12 bytes)
static_assert(ATTNC_WS_CONSUMERS * WS_CONSUMER_REGS + ATTNC_WS_PRODUCERS * WS_PRODUCER_REGS <= 65536, "registers");

// The second tile buffer, after the walk's layout and its staging: Q, K, K * e^{b_L - b}, V and the gates.
struct attnc_ws_layout {
    using L = attnc_smem_layout;
    static constexpr unsigned base = ATTNC_SMEM_BYTES + ATTNC_STAGE_BYTES;
    static constexpr unsigned q = base, k = q + L::tile_k, kd = k + L::tile_k, v = kd + L::tile_k;
    static constexpr unsigned g = v + ATTNC_C * ATTNC_LDV * sizeof(elt);
    static constexpr unsigned bytes = g + ATTNC_C * 4;
};

extern "C" __global__ void __launch_bounds__(ATTNC_WS_THREADS, 1) ATTNC_ENTRY(attnc_params p)
{
    extern __shared__ __align__(128) unsigned char smem[];
    using L = attnc_smem_layout;
    using W = attnc_ws_layout;
    constexpr unsigned ROW_ROLES = ATTNC_ROLE_Q | ATTNC_ROLE_K | ATTNC_ROLE_V;   // (the gate by lanes; no beta)
    // tile buffer b's pointers (a base and a stride each: an array of two indexed by b went to local memory)
    auto sq = [&](int b) { return (elt *)(smem + L::q + b * (W::q - L::q)); };
    auto sk = [&](int b) { return (elt *)(smem + L::k + b * (W::k - L::k)); };
    auto skd = [&](int b) { return (elt *)(smem + L::kd + b * (W::kd - L::kd)); };
    auto sv = [&](int b) { return (elt *)(smem + L::v + b * (W::v - L::v)); };
    auto sg = [&](int b) { return (float *)(smem + L::g + b * (W::g - L::g)); };
    elt *ss = (elt *)(smem + L::s);
    float *smisc = (float *)(smem + L::misc);
    unsigned char *stage = smem + ATTNC_SMEM_BYTES;

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int h = blockIdx.y, n = blockIdx.z, hs = h / (ATTNC_HOUT / ATTNC_HS);
    int bos, eos;
    attnc_seq_bounds(p.cu_seqlens, p.seqlen, n, bos, eos);
    const int nchunks = (eos - bos + ATTNC_C - 1) / ATTNC_C;
    // Padded K columns stay zero in both buffers for the whole walk; smisc[0] (m_in) is read by
    // state_decay only with a stabiliser, never here.
    for (int i = tid; i < ATTNC_C * ATTNC_LDK; i += ATTNC_WS_THREADS)
        for (int b = 0; b < 2; b++)
            sq(b)[i] = sk(b)[i] = skd(b)[i] = attnc_float_to_elt(0.f);
    if (tid == 0)
        smisc[0] = 0.f;
    __syncthreads();

    if (warp >= ATTNC_WARPS) {
        // ---- producers: chunk j's tiles into buffer j % 2 ----------------------------------------------
        attnc_regs_release<WS_PRODUCER_REGS>();
        const int ptid = tid - ATTNC_WS_CONSUMERS, pwarp = warp - ATTNC_WARPS;
        attnc_stage_held held;
        attnc_stage_issue<false, ATTNC_ROLES_ALL>(p, bos, eos, h, stage, &held);
        for (int j = 0; j < nchunks; j++) {
            const int b = j & 1, c0 = bos + j * ATTNC_C, nrows = min(ATTNC_C, eos - c0);
            attnc_stage_held_land<ATTNC_ROLES_ALL>(stage, held);
            attnc_stage_wait();
            attnc_bar_named(WS_BAR_PRODUCERS, ATTNC_WS_PRODUCERS);   // every producer's copies have landed
            if (j >= 2)
                attnc_bar_named(WS_BAR_EMPTY + b, ATTNC_WS_THREADS);   // the consumers are done with chunk j - 2
            if (pwarp == 0) {
                const float x0 = lane < ATTNC_C ? attnc_row_gate(p, lane < nrows ? c0 + lane : c0, h, lane, lane, stage,
                                                                 lane < nrows)
                                                : 0.f;
                const float x1 = ATTNC_C > 32 ? attnc_row_gate(p, lane + 32 < nrows ? c0 + lane + 32 : c0, h, lane + 32,
                                                               lane, stage, lane + 32 < nrows)
                                              : 0.f;
                attnc_scan_gates(x0, x1, lane, sg(b));
            }
            constexpr int PRO_ROWS = 2, PWARPS = ATTNC_WS_PRODUCERS / 32;
            for (int base = 0; base < ATTNC_C; base += PRO_ROWS * PWARPS) {
                attnc_row rows[PRO_ROWS];
#pragma unroll
                for (int i = 0; i < PRO_ROWS; i++) {
                    const int r = base + i * PWARPS + pwarp;
                    attnc_row_values(p, r < nrows ? c0 + r : c0, h, r, lane, stage, r < nrows, rows[i]);
                }
#pragma unroll
                for (int i = 0; i < PRO_ROWS; i++)
                    attnc_row_store<ROW_ROLES>(rows[i], base + i * PWARPS + pwarp, 0, lane, sq(b), sk(b), sv(b), sg(b),
                                               nullptr, nullptr);
            }
            attnc_bar_named(WS_BAR_PRODUCERS, ATTNC_WS_PRODUCERS);   // rows and gates formed, the staging read
            if (j + 1 < nchunks)
                attnc_stage_issue<false, ATTNC_ROLES_ALL>(p, c0 + ATTNC_C, eos, h, stage, &held);
            // K * e^{b_L - b_r}, eight channels a step
            const float *g = sg(b);
            for (int i = ptid; i < ATTNC_C * ATTNC_KP / 8; i += ATTNC_WS_PRODUCERS) {
                const int r = i / (ATTNC_KP / 8), c = (i % (ATTNC_KP / 8)) * 8;
                float x[8];
                ld8(x, sk(b) + r * ATTNC_LDK + c);
                const float f = attnc_exp2(fminf(g[ATTNC_C - 1] - g[r], 0.f));
#pragma unroll
                for (int e = 0; e < 8; e++)
                    x[e] *= f;
                st8(skd(b) + r * ATTNC_LDK + c, x);
            }
            attnc_bar_arrive(WS_BAR_FULL + b, ATTNC_WS_THREADS);
        }
        return;
    }

    // ---- consumers: the state, the outputs, the update ---------------------------------------------------
    attnc_regs_claim<WS_CONSUMER_REGS>();
    const int gr = lane >> 2, tq = lane & 3;
    const int rg = out_rg(warp), cg = warp / ATTNC_RG;
    float S[ATTNC_MTW][ATTNC_NTSW][4];
    const size_t state_base = ((size_t)n * ATTNC_HS + hs) * ATTNC_K * ATTNC_V;
#pragma unroll
    for (int i = 0; i < ATTNC_MTW; i++)
#pragma unroll
        for (int nt = 0; nt < ATTNC_NTSW; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int mt = state_mt(warp, i);
                const int row = mt * 16 + gr + (e >> 1) * 8, col = state_nt(warp, nt) * 8 + tq * 2 + (e & 1);
                S[i][nt][e] = ATTNC_STATE_IN && p.h0 && mt < ATTNC_MT && row < ATTNC_K
                                  ? p.h0[state_base + (size_t)row * ATTNC_V + col] : 0.f;
            }
    for (int j = 0; j < nchunks; j++) {
        const int b = j & 1, c0 = bos + j * ATTNC_C, nrows = min(ATTNC_C, eos - c0);
        const float *g = sg(b);
        attnc_bar_named(WS_BAR_FULL + b, ATTNC_WS_THREADS);
        // the image of S_in, then the chunk's decay on the accumulators (as the walk's decay_early)
#pragma unroll
        for (int i = 0; i < ATTNC_MTW; i++) {
            const int mt = state_mt(warp, i);
            if (mt < ATTNC_MT)
#pragma unroll
                for (int nt = 0; nt < ATTNC_NTSW; nt++)
#pragma unroll
                    for (int e2 = 0; e2 < 2; e2++)
                        st2(ss + (mt * 16 + gr + e2 * 8) * ATTNC_LDV + state_nt(warp, nt) * 8 + tq * 2,
                            S[i][nt][e2 * 2], S[i][nt][e2 * 2 + 1]);
        }
        state_apply_decay(S, g, smisc, warp, gr);
        attnc_bar_named(WS_BAR_CONSUMERS, ATTNC_WS_CONSUMERS);
        // outputs: rowfactor * (Q S_in) + P V, P = (Q K^T) * pairwise decay
        {
            float O[ATTNC_NTO][4];
#pragma unroll
            for (int nt = 0; nt < ATTNC_NTO; nt++)
                O[nt][0] = O[nt][1] = O[nt][2] = O[nt][3] = 0.f;
            mm_rows<ATTNC_NTO, ATTNC_KP / 16, true>(O, sq(b), ATTNC_LDK, rg * 16, ss, ATTNC_LDV, cg * ATTNC_BVW, lane);
            float rowf[2];
#pragma unroll
            for (int e2 = 0; e2 < 2; e2++)
                rowf[e2] = attnc_exp2(fminf(g[rg * 16 + gr + e2 * 8], 0.f));
            float P[ATTNC_C / 8][4];
            scores<false>(P, sq(b), sk(b), nullptr, g, rg, lane);
            if constexpr (ATTNC_QSCALE != 1.0f) {
#pragma unroll
                for (int nt = 0; nt < ATTNC_C / 8; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        P[nt][e] *= ATTNC_QSCALE;
            }
#pragma unroll
            for (int nt = 0; nt < ATTNC_NTO; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    O[nt][e] *= rowf[e >> 1] * ATTNC_QSCALE;
            mm_regs<ATTNC_NTO, ATTNC_C / 16>(O, P, sv(b), ATTNC_LDV, cg * ATTNC_BVW, lane);
#pragma unroll
            for (int e2 = 0; e2 < 2; e2++) {
                const int r = rg * 16 + gr + e2 * 8;
                if (r < nrows) {
                    const size_t obase = ((size_t)(c0 + r) * ATTNC_HOUT + h) * ATTNC_V + cg * ATTNC_BVW;
#pragma unroll
                    for (int nt = 0; nt < ATTNC_NTO; nt++)
                        // (+ 0: the walk's normalised form O * 1 + 0, -0 to +0)
                        attnc_store_out2(p.out, obase + nt * 8 + tq * 2, O[nt][e2 * 2] + 0.f, O[nt][e2 * 2 + 1] + 0.f);
                }
            }
        }
        // the state: S += Kd^T V (its decay applied above), a warp's two m-tiles sharing V's fragments
#pragma unroll
        for (int kt = 0; kt < ATTNC_C / 16; kt++) {
            frag bv[(ATTNC_NTSW + 1) / 2];
#pragma unroll
            for (int nt = 0; nt < ATTNC_NTSW; nt += 2)
                load_b_kn(bv[nt / 2], sv(b), ATTNC_LDV, state_nt(warp, nt) * 8, kt * 16, lane);
#pragma unroll
            for (int i = 0; i < ATTNC_MTW; i++) {
                frag a;
                load_a_t(a, skd(b), ATTNC_LDK, state_mt(warp, i) * 16, kt * 16, lane);
#pragma unroll
                for (int nt = 0; nt < ATTNC_NTSW; nt += 2) {
                    mma(S[i][nt], a, bv[nt / 2], 0);
                    if (nt + 1 < ATTNC_NTSW)
                        mma(S[i][nt + 1], a, bv[nt / 2], 1);
                }
            }
        }
        if (j + 2 < nchunks)
            attnc_bar_arrive(WS_BAR_EMPTY + b, ATTNC_WS_THREADS);
    }
    if (ATTNC_STATE_OUT && p.hT && h % (ATTNC_HOUT / ATTNC_HS) == 0) {
#pragma unroll
        for (int i = 0; i < ATTNC_MTW; i++) {
            const int mt = state_mt(warp, i);
            if (mt < ATTNC_MT)
#pragma unroll
                for (int nt = 0; nt < ATTNC_NTSW; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int row = mt * 16 + gr + (e >> 1) * 8, col = state_nt(warp, nt) * 8 + tq * 2 + (e & 1);
                        if (row < ATTNC_K)
                            p.hT[state_base + (size_t)row * ATTNC_V + col] = S[i][nt][e];
                    }
        }
    }
}
#endif
