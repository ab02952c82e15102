// codegen/linear_kernel.cuh: the chunkwise linear-attention kernel body that attnc's generator completes.
//
// The generator (codegen/cuda.c) emits, before this text: the ATTNC_* constants of one scheduled module
// (chunk, padded K, V slice, warps, transition class, delta, normaliser, ...), the element type `elt`,
// the parameter block `attnc_params`, and `attnc_prologue`, which evaluates the spec's per-token value
// DAG (feature maps, l2norm, gate activations, beta) for one token with one warp and stores the role rows
// into the shared tiles.  Everything here is written once for every variant; `if constexpr` on the
// constants removes what a variant does not use.
//
// One CTA owns (sequence, output head, V slice) and walks the sequence's chunks (the SEQUENTIAL schedule,
// passes/schedule.c); the state slice S (K x BV, fp32) lives in the warps' mma accumulators for the whole
// walk, and an image of it in shared memory, in the tiles' element type (bf16, fp16, or fp32 with bf16x3
// operands), feeds the tensor cores (algorithms.md 3: the master copy stays fp32).  Per chunk:
//   1. prologue: roles of the chunk's C tokens into shared tiles (padding rows get neutral values:
//      q = k = v = 0, log-gate 0, beta 0, log input gate -inf);
//   2. chunk-local cumulative sums of the log gates, in log2 units (exp2 maps to the SFU), each token's
//      floored (LOG2_DECAY_FLOOR);
//   3. decayed copies of K (and, for per-channel gates, K decayed to its 16-row block end), the image of S_in;
//   4. delta family: Akk, T = (I + Akk)^-1 by column-parallel forward substitution in fp32,
//      W = T diag(beta) (K * gamma), U = T diag(beta) V, U_hat = U - W S_in (replaces V);
//   5. outputs: P = (Q K^T) * pairwise decay (causal), O = rowfactor * (Q S_in) + P V, normalised;
//   6. the state: S = Diag(gamma_L) S + (K * e^{b_L - b})^T V.
// Per-channel gates form P in 16-row sub-chunks: off-diagonal blocks as tensor-core products of factors
// that are all <= 1 (reference row = the key block's last row), diagonal blocks elementwise in fp32
// (algorithms.md 2.4(b), way 2).  mLSTM stabilises per row with the running max m (algorithms.md 2.7(b)).

#define ATTNC_RG (ATTNC_C / 16)            // row groups of 16 chunk rows
#define ATTNC_THREADS (ATTNC_WARPS * 32)
#define ATTNC_BVW (ATTNC_BV / ATTNC_CG)    // output columns per warp
#define ATTNC_NTO (ATTNC_BVW / 8)          // output n-tiles per warp
#define ATTNC_NTS (ATTNC_BV / 8)           // state n-tiles
#define ATTNC_MT (ATTNC_KP / 16)           // state m-tiles
// The state's accumulators: ATTNC_SG groups of warps split its columns (n-tiles); inside a group, warp
// w owns m-tiles w, w + WPS, ...  (state_mt / state_nt below map a warp's tile index to the slice's).
#define ATTNC_WPS (ATTNC_WARPS / ATTNC_SG)  // warps per state column group
#define ATTNC_NTSW (ATTNC_NTS / ATTNC_SG)   // state n-tiles per warp
#define ATTNC_MTW ((ATTNC_MT + ATTNC_WPS - 1) / ATTNC_WPS)
#define ATTNC_LDK (ATTNC_KP + 8)           // row strides (elements) with 16 bytes of padding: ldmatrix
#define ATTNC_LDV (ATTNC_BV + 8)           // rows then fall in different banks
#define ATTNC_LDC (ATTNC_C + 8)
#define ATTNC_LDF (ATTNC_C + 1)
// ATTNC_P_SHARED (the plan's shared_scores, chosen in passes/tile.c): the column groups of a row group
// share its scores P: each sums a share of the channels of every key block, the fp32 partials meet in the
// pf region, each adds up its key-block pairs into the pt tile, and all read P back for P V.  Only without
// a normaliser (0: NORM_NONE): the stabiliser and the running denominator need a whole row of P in one warp,
// and with RMS or LayerNorm outputs the tile cost kv_asym_retnet 40 bytes of spills.
static_assert(!ATTNC_P_SHARED || (ATTNC_CG > 1 && ATTNC_CAUSAL && !ATTNC_STABILIZED && ATTNC_NORM == 0),
              "shared scores need column groups, a causal mask, no stabiliser and no normaliser");

// Generated after this text: the roles of token t (t < 0: a padding row) for output head h into row r of
// the tiles; one warp per call.
__device__ void attnc_prologue(const attnc_params &p, int t, int h, int r, int v0, int lane, elt *sq, elt *sk,
                               elt *sv, float *sg, float *sbeta, float *sig, const unsigned char *stage);
// Generated too: starts asynchronous copies (cp.async) of the raw input rows of tokens [c0, min(c0 + C, eos))
// into the staging area, which the prologue then reads; the copies of chunk n+1 run under chunk n's math.
// Rows of 2 bytes (no cp.async) are loaded into *held, which attnc_stage_held_land stores before the wait
// (the decode step passes none: stored at once).
// UNROLL: each thread's copies unrolled (the walk: ATTNC_STAGE_UNROLL, codegen/cuda.c says where).  WANT: the
// roles whose inputs are copied (lean_roles below).
template <bool UNROLL, unsigned WANT = ATTNC_ROLES_ALL>
__device__ __forceinline__ void attnc_stage_issue(const attnc_params &p, int c0, int eos, int h, unsigned char *stage,
                                                  attnc_stage_held *held);

__device__ __forceinline__ int state_mt(int warp, int i)
{
    return warp % ATTNC_WPS + i * ATTNC_WPS;
}
__device__ __forceinline__ int state_nt(int warp, int nt)
{
    return warp / ATTNC_WPS * ATTNC_NTSW + nt;
}
// The row group of a warp's outputs (its column group is warp / RG).  A causal row group's scores and P V
// grow with its index, and warps w and w + 4 share a scheduler (an SM sub-partition), so the second four
// warps take the row groups in reverse: each scheduler then holds a light and a heavy row group instead of
// two of one kind (warps 3 and 7 both had row group 3, the walk's last to reach each chunk's barrier).
// Forward at T = 8192 (bench/RESULTS.md, thirtieth session): gla 2.10 -> 1.84 ms, simple_gla 0.795 -> 0.775,
// simple_gla_gam 0.737 -> 0.721, delta_rule level; gated_delta 1.607 -> 1.631, so not the delta rule's; nor
// with other than two state groups (kv_asym_retnet's four spilled 56 bytes on sm_90a so).
__device__ __forceinline__ int out_rg(int warp)
{
    if constexpr (4 % ATTNC_RG != 0 || ATTNC_DELTA || ATTNC_SG != 2)   // (4 % RG: a column group's warps would straddle the halves)
        return warp % ATTNC_RG;
    return (warp >> 2) & 1 ? ATTNC_RG - 1 - warp % ATTNC_RG : warp % ATTNC_RG;
}

// Training with mantissa images (ATTNC_SAVES 2: the backward's images where a parameter's gradient sums every
// token's, support.cuh's attnc_img_*): the warp's state accumulators as the backward's walk would store them,
// per row and slice of ATTNC_SAVE_VS columns e = ilogb(max |x|) - 14 and the 16-bit mantissas rint(x 2^-e),
// four n-tiles a 16-byte store (attnc_quad_transpose), and the scale 2^e.  A slice wider than a warp's columns
// (all of V across the column groups: mamba2's 128 at two state groups) meets its groups' maxima in red (the
// normalisers' row sums, unused without one) over one more barrier (sync).
enum { SAVE_NSL = ATTNC_SAVES == 2 ? ATTNC_V / ATTNC_SAVE_VS : 1 };
// The bf16 image (ATTNC_SAVES 1) copied out by the TMA unit (support.cuh's attnc_bulk_*) in the warp-specialised
// walk, whose consumers wait on its producers: H200, T = 8192, the forward with saved states 0.693 -> 0.659 ms
// (lightning; 0.611 without saving).  Not in the other walks, whose chain the wait for the copies' reads
// lengthens (gla 2.012 -> 2.344, against 1.889), nor the delta rule's, whose consumers (152 registers) spilled
// 24 bytes with it and which hides the plain copy anyway (1.219 -> 1.251 with it).  (bench/RESULTS.md,
// thirty-fourth session.)
constexpr bool SAVE_BULK = ATTNC_SAVES == 1 && ATTNC_BULK_STORE && ATTNC_WS && !ATTNC_DELTA;
// The delta rule's saved U_hat rows (save_uhat_rows) by the TMA unit in the warp-specialised walk: its
// consumers spilled 16 bytes with the plain copy.
constexpr bool SAVE_UH_BULK = ATTNC_SAVES == 1 && ATTNC_BULK_STORE && ATTNC_WS && ATTNC_DELTA;
// The delta rule's U_hat rows of the chunk from token c0 of sequence n (from bos), tile rows [nrows][LDV] of
// the CTA's columns from v0, into the backward's saved U_hat, bf16 [slot][HOUT][C_b][V] (C_b = 2^save_shift;
// slot = (c0_b >> save_shift) + n for the backward's chunk c0_b that holds the rows, as the images' slots).
// U_hat_t = beta_t (v_t - S_{t-1}^T k_t) (with the decay's factor) is every token's own, whatever the chunking,
// so this walk's rows stand for the backward's; rows past the sequence's end are not written (the backward's
// chunk kernel reads zeros there).  BULK (the warp-specialised walk, whose consumers spilled 16 bytes with the
// plain copy): a row a thread by the TMA unit, the rows' writes fenced for it before the barrier that precedes
// this, and waited for before the tile is written again; else 16 bytes a thread at a time.  (saved_uhat_row0:
// where the chunk's first row goes, for the split walk too.)
__device__ __forceinline__ elt *saved_uhat_row0(const attnc_params &p, int c0, int bos, int n, int h)
{
    const int off = (c0 - bos) & ((1 << p.save_shift) - 1);
    return p.save_uh + ((size_t)(((c0 - off) >> p.save_shift) + n) * ATTNC_HOUT + h) * ((size_t)ATTNC_V << p.save_shift) +
           (size_t)off * ATTNC_V;
}
template <bool BULK>
__device__ __forceinline__ void save_uhat_rows(const attnc_params &p, const elt *sv, int c0, int bos, int nrows, int n,
                                               int h, int v0, int tid)
{
    elt *dst = saved_uhat_row0(p, c0, bos, n, h) + v0;
    if constexpr (BULK) {
        if (tid < nrows)
            attnc_bulk_store(dst + (size_t)tid * ATTNC_V, sv + tid * ATTNC_LDV, ATTNC_BV * sizeof(elt));
    } else {
        constexpr int PER = 16 / (int)sizeof(elt), UNITS = ATTNC_BV / PER;
        for (int i = tid; i < nrows * UNITS; i += ATTNC_THREADS) {
            const int row = i / UNITS, col = i % UNITS * PER;
            *reinterpret_cast<attnc_u4 *>(dst + (size_t)row * ATTNC_V + col) =
                *reinterpret_cast<const attnc_u4 *>(sv + row * ATTNC_LDV + col);
        }
    }
}
enum { SAVE_IMG_BYTES = ATTNC_KP * ATTNC_V * 2 + (ATTNC_SAVES == 2 ? ATTNC_KP * SAVE_NSL * 4 : 0) };
template <typename Sync>
__device__ __forceinline__ void save_mantissa_image(unsigned char *img, const float (&S)[ATTNC_MTW][ATTNC_NTSW][4],
                                                    int v0, int warp, int lane, float *red, Sync sync)
{
#if ATTNC_SAVES == 2
    constexpr int GN = ATTNC_SAVE_VS / 8;      // n-tiles per scale
    constexpr bool CROSS = GN > ATTNC_NTSW;    // a slice spans the column groups' warps
    static_assert(CROSS ? GN == ATTNC_NTS && ATTNC_BV == ATTNC_V && ATTNC_KP * ATTNC_SG <= ATTNC_C * ATTNC_CG * 2
                        : ATTNC_NTSW % GN == 0 && GN % 4 == 0,
                  "scale slices of whole n-tile quads within a warp, or all of V (maxima in the row sums' place)");
    short *man = (short *)img;
    float *scale = (float *)(img + ATTNC_KP * ATTNC_V * 2);
    const int gr = lane >> 2, tq = lane & 3;
    if constexpr (CROSS) {   // each column group's maxima of its rows
#pragma unroll
        for (int i = 0; i < ATTNC_MTW; i++) {
            const int mt = state_mt(warp, i);
#pragma unroll
            for (int e2 = 0; e2 < 2; e2++) {
                float mx = 0.f;
#pragma unroll
                for (int nt = 0; nt < ATTNC_NTSW; nt++)
                    mx = attnc_absmax_nan(attnc_absmax_nan(mx, S[i][nt][2 * e2]), S[i][nt][2 * e2 + 1]);
                mx = attnc_absmax_nan(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = attnc_absmax_nan(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                if (mt < ATTNC_MT && tq == 0)
                    red[(mt * 16 + gr + 8 * e2) * ATTNC_SG + warp / ATTNC_WPS] = mx;
            }
        }
        sync();
    }
#pragma unroll
    for (int i = 0; i < ATTNC_MTW; i++) {
        const int mt = state_mt(warp, i);
        if (mt >= ATTNC_MT)
            continue;
#pragma unroll
        for (int e2 = 0; e2 < 2; e2++) {
            const int row = mt * 16 + gr + 8 * e2;
#pragma unroll
            for (int g0 = 0; g0 < ATTNC_NTSW; g0 += CROSS ? ATTNC_NTSW : GN) {
                float mx = 0.f;
                if constexpr (CROSS) {
#pragma unroll
                    for (int sg = 0; sg < ATTNC_SG; sg++)
                        mx = attnc_absmax_nan(mx, red[row * ATTNC_SG + sg]);
                } else {
#pragma unroll
                    for (int nt = g0; nt < g0 + GN; nt++)
                        mx = attnc_absmax_nan(attnc_absmax_nan(mx, S[i][nt][2 * e2]), S[i][nt][2 * e2 + 1]);
                    mx = attnc_absmax_nan(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                    mx = attnc_absmax_nan(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                }
                float up;
                const float sc = attnc_img_exp(mx, up);
#pragma unroll
                for (int t = g0; t < g0 + (CROSS ? ATTNC_NTSW : GN); t += 4) {
                    unsigned w[4];
#pragma unroll
                    for (int j = 0; j < 4; j++)
                        w[j] = attnc_pack_s16(S[i][t + j][2 * e2] * up, S[i][t + j][2 * e2 + 1] * up);
                    attnc_quad_transpose(w, lane);
                    *reinterpret_cast<attnc_u4 *>(man + (size_t)row * ATTNC_V + v0 + 8 * (state_nt(warp, t) + tq)) =
                        attnc_u4{w[0], w[1], w[2], w[3]};
                }
                const int col = v0 + state_nt(warp, g0) * 8;
                if (tq == 0 && (!CROSS || col == 0))
                    scale[row * SAVE_NSL + col / ATTNC_SAVE_VS] = sc;
            }
        }
    }
#else
    (void)img, (void)S, (void)v0, (void)warp, (void)lane, (void)red, (void)sync;
#endif
}

// A token's log2 decay is floored at -32 before the chunk-local cumulative sums.  Without the floor, gates
// of thousands of nats per token make the sums b so large that their differences b_r - b_j, the only thing
// the kernel exponentiates, lose their low bits (at |b| = 2^17 the spacing of fp32 is 2^-6: 1% error in
// every pairwise factor, seen as 1.7e-2 on strong KDA); with it |b| <= 32 C and the spacing is 2^-12 or
// finer.  What the floor lets through, 2^-32 of the state before such a token, is below fp32's resolution
// unless the state is 2^8 times larger than what follows; nothing here can make it so except an
// exponential input gate, so mLSTM (stabilised, whose i_j can outweigh any decay) keeps its gates as they are.
#define LOG2_DECAY_FLOOR (ATTNC_STABILIZED ? -__int_as_float(0x7f800000) : -32.f)

enum { TR_IDENTITY = 0, TR_CONST = 1, TR_SCALAR = 2, TR_DIAG = 3 };
enum { NORM_NONE = 0, NORM_DENOM = 1, NORM_MAXFLOOR = 2, NORM_RMS = 3, NORM_LAYER = 4 };

// The grouped schedule's record j of sequence n for output head h: phase 3 writes one a p.group_fine chunks
// (sequences of one length, p.seqlen), phase 5 walks groups of p.group_chunks, a multiple of that.
__device__ __forceinline__ size_t group_slot(const attnc_params &p, int n, int j, int h)
{
    const int records = (p.seqlen + ATTNC_C * p.group_fine - 1) / (ATTNC_C * p.group_fine);
    return ((size_t)n * records + j) * ATTNC_HOUT + h;
}

// The chunk-local cumulative log2 gates of a scalar or constant decay, by one warp: row r's log decay (log2
// units, floored at LOG2_DECAY_FLOOR) summed over rows 0 .. r into sg[r].  g0, g1: the gates (natural log)
// of rows lane and lane + 32; padding rows come in as 0, so the chunk's last row holds its total.
__device__ __forceinline__ void attnc_scan_gates(float g0, float g1, int lane, float *sg)
{
    float x0 = fmaxf(g0 * LOG2E, LOG2_DECAY_FLOOR);
    float x1 = ATTNC_C > 32 ? fmaxf(g1 * LOG2E, LOG2_DECAY_FLOOR) : 0.f;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        float y0 = __shfl_up_sync(0xffffffffu, x0, o), y1 = __shfl_up_sync(0xffffffffu, x1, o);
        if (lane >= o) {
            x0 += y0;
            x1 += y1;
        }
    }
    float tot0 = __shfl_sync(0xffffffffu, x0, 31);
    if (lane < ATTNC_C)
        sg[lane] = x0;
    if (ATTNC_C > 32)
        sg[lane + 32] = x1 + tot0;
}

// A scalar decay's gates of the chunk at c0 (nrows real rows), a token a lane of one warp (the generated
// attnc_row_gate), and their cumulative sums into sg (ATTNC_GATE_LANES: the walk's warp 0 during the prologue,
// the warp-specialised walk's first producer warp).
__device__ __forceinline__ void attnc_lane_gates(const attnc_params &p, int c0, int nrows, int h, int lane,
                                                 const unsigned char *stage, float *sg)
{
    const float x0 = lane < ATTNC_C ? attnc_row_gate(p, lane < nrows ? c0 + lane : c0, h, lane, lane, stage, lane < nrows)
                                    : 0.f;
    const float x1 = ATTNC_C > 32 ? attnc_row_gate(p, lane + 32 < nrows ? c0 + lane + 32 : c0, h, lane + 32, lane, stage,
                                                   lane + 32 < nrows)
                                  : 0.f;
    attnc_scan_gates(x0, x1, lane, sg);
}

// ---- shared memory layout (offsets in bytes, all 16-byte aligned) --------------------------------------
// LEAN 0: the walk's layout, every tile.  The split delta rule's parallel phases have kernels of their own
// (attnc_linear_wy, phase 6; attnc_linear_out, phase 2) whose layouts keep only what the phase reads, so
// that two CTAs share an SM where the walk's layout fits one (phase 6 waited at its WY stage's barriers with
// nothing else to run: 57 % of its stall samples, ncu on the H200): LEAN 6 has no Q tile and a state image
// only as large as U's staging rows; LEAN 2 no decayed keys, no K * gamma and no W.  So does the grouped
// schedule's phase 3 (attnc_linear_group), which writes no outputs: LEAN 3 has no Q tile, no image, no
// per-block keys and no shared scores.  The tiles a layout drops have size 0 and alias the next; the bodies
// never touch them (passes/tile.c sums the same sizes).
template <int LEAN>
struct attnc_smem_layout_t {
    static constexpr bool wy = LEAN == 6, out = LEAN == 2, grp = LEAN == 3;
    static constexpr unsigned tile_k = ATTNC_C * ATTNC_LDK * sizeof(elt);
    static constexpr unsigned q = 0;                                  // Q rows (elt)
    static constexpr unsigned k = q + (wy || grp ? 0 : tile_k);       // K rows
    static constexpr unsigned kd = k + tile_k;                        // K * e^{b_L - b} (state write)
    static constexpr unsigned qg = kd + (out ? 0 : tile_k);           // delta: K * e^{b} (for W)
    static constexpr unsigned w = qg + (ATTNC_DELTA && !out ? tile_k : 0);
    static constexpr unsigned ke = w + (ATTNC_DELTA && !out ? tile_k : 0);    // DIAG: K * e^{b_e(J) - b} per block
    static constexpr unsigned v = ke + (ATTNC_TRANSITION == TR_DIAG && !grp ? tile_k : 0);
    static constexpr unsigned s = v + ATTNC_C * ATTNC_LDV * sizeof(elt);        // image of S_in (tile elements)
    // ([KP][LDV]; the split delta rule's output pass reads S_in^T, [V][LDK]; its WY pass stages U's rows
    // there, [C][V + 4] fp32)
    static constexpr unsigned s_elems =
        wy ? (ATTNC_C * (ATTNC_V + 4) * 4 + sizeof(elt) - 1) / sizeof(elt)
        : grp ? 0
        : ATTNC_DSPLIT && ATTNC_V * ATTNC_LDK > ATTNC_KP * ATTNC_LDV ? ATTNC_V * ATTNC_LDK : ATTNC_KP * ATTNC_LDV;
    static constexpr unsigned g = s + (s_elems * sizeof(elt) + 15) / 16 * 16;  // log2 gates (cumsum)
    static constexpr unsigned g_bytes = (ATTNC_TRANSITION == TR_DIAG ? ATTNC_C * ATTNC_KP : ATTNC_C) * 4;
    static constexpr unsigned beta = g + ((g_bytes + 15) / 16) * 16;
    static constexpr unsigned ig = beta + ATTNC_C * 4;
    static constexpr unsigned rowq = ig + ATTNC_C * 4;                          // per-row q . z_in
    static constexpr unsigned rowred = rowq + ATTNC_C * 4;                      // cross-warp row sums
    static constexpr unsigned z = rowred + ATTNC_C * ATTNC_CG * 2 * 4;          // z / n_hat (fp32, KP)
    static constexpr unsigned misc = z + ATTNC_KP * 4;                          // m_in, m_out, ...
    static constexpr unsigned af = misc + 64;                                   // delta: Akk, T (fp32)
    static constexpr unsigned tf = af + (ATTNC_DELTA ? ATTNC_C * ATTNC_LDF * 4 : 0);    // delta: T (fp32)
    static constexpr unsigned x = tf + (ATTNC_DELTA ? ATTNC_C * ATTNC_LDF * 4 : 0);     // delta: block sums
    static constexpr unsigned tb = x + (ATTNC_DELTA ? (ATTNC_RG - 1) * 256 * 4 : 0);
    static constexpr unsigned pt = tb + (ATTNC_DELTA ? ATTNC_C * ATTNC_LDC * sizeof(elt) : 0);  // shared P
    static constexpr unsigned pf = pt + (ATTNC_P_SHARED && !ATTNC_DELTA && !grp ? ATTNC_C * ATTNC_LDC * sizeof(elt) : 0);
    static constexpr unsigned bytes_raw = pf + (ATTNC_P_SHARED && !grp ? ATTNC_RG * ATTNC_CG * 16 * ATTNC_C * 4 : 0);  // shared P's partials (fp32)
    static constexpr unsigned bytes = (bytes_raw + 127) / 128 * 128;
};
using attnc_smem_layout = attnc_smem_layout_t<0>;

// ---- scores ------------------------------------------------------------------------------------------
// One score of a per-channel-gated diagonal block in fp32, sum_d A_rd K_jd e^{b_rd - b_jd}: the path for
// blocks whose gate span is too wide to factor.  Rarely taken, so kept out of line: inlined into every
// unrolled (n-tile, element) site it cost 0.4 s of gla's 2.2 s NVRTC + ptxas time.
__device__ __noinline__ float score_elementwise(const elt *a_tile, const elt *k_tile, const float *g, int r, int j)
{
    const elt *ar = a_tile + r * ATTNC_LDK, *kr = k_tile + j * ATTNC_LDK;
    const float *gr = g + r * ATTNC_KP, *gj = g + j * ATTNC_KP;
    float sum = 0.f;
    for (int d = 0; d < ATTNC_K; d++)
        sum += attnc_elt_to_float(ar[d]) * attnc_elt_to_float(kr[d]) * attnc_exp2(fminf(gr[d] - gj[d], 0.f));
    return sum;
}

// The pairwise decay e^{b_r - b_j} (log2 units, never above 1) of a scalar or constant decay, applied to a
// score after its product; 1 otherwise.  (mLSTM applies its whole log weight b_r - b_j + i_j - m_r in one
// exp2 later: split in two factors, one of them overflows under strong gates.)
__device__ __forceinline__ float pair_decay(const float *g, int r, int j)
{
    if constexpr ((ATTNC_TRANSITION == TR_SCALAR || ATTNC_TRANSITION == TR_CONST) && !ATTNC_STABILIZED)
        return attnc_exp2(fminf(g[r] - g[j], 0.f));
    return 1.f;
}

// acc = sum_d A_{r,d} K_{j,d} e^{b_{r,d} - b_{j,d}} * (j <= r, or j < r when STRICT), for rows
// [rg*16, rg*16+16) and all C key columns (blocks right of the diagonal are left 0).  For scalar decays
// (and none) the factor is applied after the product; for per-channel gates the off-diagonal blocks use
// reference row e = the key block's last row (both factors <= 1) and the diagonal block is fp32.
// Only the k-steps (16 channels) kt with kt % kparts == kpart are summed: a share of the sum over channels
// (the elementwise path's whole sum goes to kpart 0); scalar decays: key blocks from kb_first on (the ones
// left of it are left 0: the warp-specialised walk's producers form them).
template <bool STRICT>
__device__ __forceinline__ void scores(float (*acc)[4], const elt *a_tile, const elt *k_tile, const elt *ke_tile,
                                       const float *g, int rg, int lane, int kpart = 0, int kparts = 1, int kb_first = 0)
{
    constexpr int NT = ATTNC_C / 8;
    const int gr = lane >> 2, tq = lane & 3;
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
        acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.f;
    if constexpr (ATTNC_TRANSITION != TR_DIAG) {
#pragma unroll
        for (int kt = 0; kt < ATTNC_KP / 16; kt++) {
            if (kt % kparts != kpart)
                continue;
            frag a;
            load_a(a, a_tile, ATTNC_LDK, rg * 16, kt * 16, lane);
#pragma unroll
            for (int nt = 0; nt < NT; nt += 2) {
                if (nt * 8 < (rg + 1) * 16 && nt >= 2 * kb_first) {
                    frag b;
                    load_b_nk(b, k_tile, ATTNC_LDK, nt * 8, kt * 16, lane);
                    mma(acc[nt], a, b, 0);
                    mma(acc[nt + 1], a, b, 1);
                }
            }
        }
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int r = rg * 16 + gr + (e >> 1) * 8, j = nt * 8 + tq * 2 + (e & 1);
                bool keep = STRICT ? j < r : j <= r;
                const float f = pair_decay(g, r, j);
                acc[nt][e] = keep ? acc[nt][e] * f : 0.f;
            }
    } else {
        // Off-diagonal key blocks J < rg: (A_r * e^{b_r - b_e}) . (K_j * e^{b_e - b_j}), e = 16J + 15.
        // (J and the diagonal index are unrolled so that the accumulators stay in registers.)
#pragma unroll
        for (int J = 0; J < ATTNC_RG - 1; J++) {
            if (J >= rg)
                continue;
            const int e_row = J * 16 + 15;
#pragma unroll
            for (int kt = 0; kt < ATTNC_KP / 16; kt++) {
                if (kt % kparts != kpart)
                    continue;
                frag a;
                // A fragment built in registers: rows rg*16 + gr (+8), columns kt*16 + 2tq (+1, +8, +9).
#pragma unroll
                for (int q4 = 0; q4 < 4; q4++) {
                    int r = rg * 16 + gr + (q4 & 1) * 8, c = kt * 16 + tq * 2 + (q4 >> 1) * 8;
                    float x0 = attnc_elt_to_float(a_tile[r * ATTNC_LDK + c]);
                    float x1 = attnc_elt_to_float(a_tile[r * ATTNC_LDK + c + 1]);
                    x0 *= attnc_exp2(fminf(g[r * ATTNC_KP + c] - g[e_row * ATTNC_KP + c], 0.f));
                    x1 *= attnc_exp2(fminf(g[r * ATTNC_KP + c + 1] - g[e_row * ATTNC_KP + c + 1], 0.f));
                    frag_set(a, q4, x0, x1);
                }
                frag b;
                load_b_nk(b, ke_tile, ATTNC_LDK, J * 16, kt * 16, lane);
                mma(acc[2 * J], a, b, 0);
                mma(acc[2 * J + 1], a, b, 1);
            }
        }
        // Diagonal block: factored around its first row f, (A_r e^{b_r - b_f}) . (K_j e^{b_f - b_j}), when the
        // block's gate span b_f - b_{f+15} (log2) is under 100: every factor then lies in [2^-100, 2^100]
        // and nothing overflows; else elementwise in fp32 (algorithms.md 2.4(b)).
        const int f_row = rg * 16;
        float span = 0.f;
        for (int d = lane; d < ATTNC_KP; d += 32)
            span = fmaxf(span, g[f_row * ATTNC_KP + d] - g[(f_row + 15) * ATTNC_KP + d]);
#pragma unroll
        for (int o = 16; o; o >>= 1)
            span = fmaxf(span, __shfl_xor_sync(0xffffffffu, span, o));
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            if ((nt >> 1) != rg)
                continue;
            if (span < 100.f) {
#pragma unroll
                for (int kt = 0; kt < ATTNC_KP / 16; kt++) {
                    if (kt % kparts != kpart)
                        continue;
                    frag a, b;
#pragma unroll
                    for (int q4 = 0; q4 < 4; q4++) {
                        int r = f_row + gr + (q4 & 1) * 8, c = kt * 16 + tq * 2 + (q4 >> 1) * 8;
                        const float2 x = ld2(a_tile + r * ATTNC_LDK + c), gx = ldf2(g + r * ATTNC_KP + c),
                                     gf = ldf2(g + f_row * ATTNC_KP + c);
                        frag_set(a, q4, x.x * attnc_exp2(fminf(gx.x - gf.x, 0.f)), x.y * attnc_exp2(fminf(gx.y - gf.y, 0.f)));
                    }
#pragma unroll
                    for (int h2 = 0; h2 < 2; h2++) {
                        int j = nt * 8 + gr, c = kt * 16 + tq * 2 + h2 * 8;
                        const float2 y = ld2(k_tile + j * ATTNC_LDK + c), gf = ldf2(g + f_row * ATTNC_KP + c),
                                     gj = ldf2(g + j * ATTNC_KP + c);
                        frag_set(b, h2, y.x * attnc_exp2(fmaxf(gf.x - gj.x, 0.f)), y.y * attnc_exp2(fmaxf(gf.y - gj.y, 0.f)));
                    }
                    mma(acc[nt], a, b, 0);
                }
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int r = f_row + gr + (e >> 1) * 8, j = nt * 8 + tq * 2 + (e & 1);
                    if (!(STRICT ? j < r : j <= r))
                        acc[nt][e] = 0.f;
                }
            } else {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int r = f_row + gr + (e >> 1) * 8, j = nt * 8 + tq * 2 + (e & 1);
                    acc[nt][e] = (STRICT ? j < r : j <= r) && kpart == 0 ? score_elementwise(a_tile, k_tile, g, r, j) : 0.f;
                }
            }
        }
    }
}

// The state's decay over a chunk for its row (key channel) c: the state's and the normaliser's.
__device__ __forceinline__ float state_decay(const float *sg, const float *smisc, int c)
{
    float f = 1.f;
    if constexpr (ATTNC_STABILIZED)
        f = attnc_exp2(sg[ATTNC_C - 1] + smisc[0] - smisc[1]);
    else if constexpr (ATTNC_TRANSITION == TR_SCALAR || ATTNC_TRANSITION == TR_CONST)
        f = attnc_exp2(fminf(sg[ATTNC_C - 1], 0.f));
    else if constexpr (ATTNC_TRANSITION == TR_DIAG)
        f = attnc_exp2(fminf(sg[(ATTNC_C - 1) * ATTNC_KP + c], 0.f));
    return f;
}

// The delta rule's Akk = diag(beta) ((K K^T) o D), strictly lower, for 16-row block bi and n-tiles nt ..
// nt + N - 1 (N = 2: the pair an x4 fragment load gives, nt even), into saf (fp32).  Each tile's k-steps are
// summed in order, as scores() sums them: the same bits whichever warp forms it.  Not for per-channel gates.
template <int N>
__device__ __forceinline__ void akk_tiles(float *saf, const elt *sk, const float *sg, const float *sbeta, int bi, int nt,
                                          int lane)
{
    static_assert((N == 1 || N == 2) && ATTNC_TRANSITION != TR_DIAG, "one tile or an x4 pair; scalar decay");
    const int gr = lane >> 2, tq = lane & 3;
    float acc[N][4] = {};
#pragma unroll
    for (int kt = 0; kt < ATTNC_KP / 16; kt++) {
        frag a, b;
        load_a(a, sk, ATTNC_LDK, bi * 16, kt * 16, lane);
        load_b_nk(b, sk, ATTNC_LDK, (nt & ~1) * 8, kt * 16, lane);
        if constexpr (N == 2) {
            mma(acc[0], a, b, 0);
            mma(acc[1], a, b, 1);
        } else if (nt & 1) {   // (a constant half each: a run-time one indexed b in local memory)
            mma(acc[0], a, b, 1);
        } else {
            mma(acc[0], a, b, 0);
        }
    }
#pragma unroll
    for (int t = 0; t < N; t++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int r = bi * 16 + gr + (e >> 1) * 8, j = (nt + t) * 8 + tq * 2 + (e & 1);
            const float f = pair_decay(sg, r, j);
            saf[r * ATTNC_LDF + j] = (j < r ? acc[t][e] * f : 0.f) * sbeta[r];
        }
}

// T's diagonal block at b0 (16 x 16, unit lower triangular) by forward substitution in fp32, lane c < 16
// forming column c: T = (I + Akk)^-1 on the block, into stf, and T diag(beta) in the tiles' type into stb.
__device__ __forceinline__ void wy_solve_diag(const float *saf, float *stf, elt *stb, const float *sbeta, int b0, int c)
{
    float col[16];
#pragma unroll
    for (int r = 0; r < 16; r++) {
        float acc = 0.f;
#pragma unroll
        for (int j = 0; j < r; j++)
            acc += saf[(b0 + r) * ATTNC_LDF + b0 + j] * col[j];
        col[r] = r < c ? 0.f : r == c ? 1.f : -acc;
    }
    const float beta = sbeta[b0 + c];
#pragma unroll
    for (int r = 0; r < 16; r++) {
        stf[(b0 + r) * ATTNC_LDF + b0 + c] = col[r];
        stb[(b0 + r) * ATTNC_LDC + b0 + c] = attnc_float_to_elt(r >= c ? col[r] * beta : 0.f);
    }
}

// Step 4's inverse (attnc_linear_body; the warp-specialised walk's producers run it too, linear_ws_kernel.cuh)
// by the NW warps of a group, thread tid of them, bar() their barrier: T = (I + Akk)^-1 in fp32 (stf) by
// 16 x 16 blocks (algorithms.md 2.5(b)), the diagonal blocks by forward substitution, a warp each
// (wy_solve_diag), then block row by block row below them, T_ij = -T_ii sum_{k=j}^{i-1} A_ik T_kj; and
// T diag(beta) in the tiles' type (stb, whose blocks right of the diagonal the caller keeps zero).  Ends
// with a barrier: stb is then complete for every warp of the group.
template <int NW, typename Bar>
__device__ __forceinline__ void wy_inverse(const elt *sk, const elt *ske, const float *sg, const float *sbeta, float *saf,
                                           float *stf, float *sx, elt *stb, int tid, Bar bar)
{
    static_assert(NW >= ATTNC_RG, "a warp a diagonal block");
    constexpr int NTHREADS = NW * 32;
    const int warp = tid >> 5, lane = tid & 31;
    (void)ske;
    if constexpr (ATTNC_TRANSITION != TR_DIAG) {
        // Akk in 16 x 8 tiles, the tiles dealt to every warp (formed by a row group's warp each, the
        // other warps waited at a barrier: 17 % of phase 6's stall samples, delta_rule at T = 32768,
        // ncu on the H200): warp i < RG forms diagonal block i's two tiles and solves that block at
        // once (its own rows: no barrier), while the warps from RG on form the tiles below the
        // diagonal blocks (row block i has 2 i).  The same k-steps in the same order as scores().
        if (warp < ATTNC_RG) {
            akk_tiles<2>(saf, sk, sg, sbeta, warp, 2 * warp, lane);
            __syncwarp();
            if (lane < 16)
                wy_solve_diag(saf, stf, stb, sbeta, warp * 16, lane);
        }
        for (int item = (warp + NW - ATTNC_RG) % NW; item < ATTNC_RG * (ATTNC_RG - 1); item += NW) {
            int bi = 1;
            while (bi * (bi + 1) <= item)
                bi++;
            akk_tiles<1>(saf, sk, sg, sbeta, bi, item - (bi - 1) * bi, lane);
        }
    } else {
        const int gr = lane >> 2, tq = lane & 3;
        if (warp < ATTNC_RG) {
            float A[ATTNC_C / 8][4];
            scores<true>(A, sk, sk, ske, sg, warp, lane);
#pragma unroll
            for (int nt = 0; nt < ATTNC_C / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int r = warp * 16 + gr + (e >> 1) * 8, j = nt * 8 + tq * 2 + (e & 1);
                    saf[r * ATTNC_LDF + j] = A[nt][e] * sbeta[r];
                }
        }
        bar();
        if (warp < ATTNC_RG && lane < 16)
            wy_solve_diag(saf, stf, stb, sbeta, warp * 16, lane);
    }
    bar();
#pragma unroll
    for (int bi = 1; bi < ATTNC_RG; bi++) {
        // X_j = sum_{k=j}^{bi-1} A_{bi,k} T_{k,j} for every j < bi, into sx[j]
        for (int e = tid; e < bi * 256; e += NTHREADS) {
            const int bj = e >> 8, r = (e >> 4) & 15, c = e & 15;
            float acc = 0.f;
            for (int m = bj * 16; m < bi * 16; m++)
                acc += saf[(bi * 16 + r) * ATTNC_LDF + m] * stf[m * ATTNC_LDF + bj * 16 + c];
            sx[e] = acc;
        }
        bar();
        for (int e = tid; e < bi * 256; e += NTHREADS) {
            const int bj = e >> 8, r = (e >> 4) & 15, c = e & 15;
            float acc = 0.f;
#pragma unroll
            for (int m = 0; m < 16; m++)
                acc += stf[(bi * 16 + r) * ATTNC_LDF + bi * 16 + m] * sx[(bj << 8) + m * 16 + c];
            stf[(bi * 16 + r) * ATTNC_LDF + bj * 16 + c] = -acc;
            stb[(bi * 16 + r) * ATTNC_LDC + bj * 16 + c] = attnc_float_to_elt(-acc * sbeta[bj * 16 + c]);
        }
        bar();
    }
}

// U = T diag(beta) V for row group rg and the NTU n-tiles from column n0, into U (fp32 accumulators).
template <int NTU>
__device__ __forceinline__ void wy_u(float (*U)[4], const elt *stb, const elt *sv, int rg, int n0, int lane)
{
#pragma unroll
    for (int nt = 0; nt < NTU; nt++)
        U[nt][0] = U[nt][1] = U[nt][2] = U[nt][3] = 0.f;
    mm_rows<NTU, ATTNC_C / 16, true>(U, stb, ATTNC_LDC, rg * 16, sv, ATTNC_LDV, n0, lane);
}

// -W = -T diag(beta) (K * gamma) into sw (negated, so that U_hat = U + (-W) S_in) for row group rg: K's n-tiles
// dealt NTW at a time over the row group's ncg warps, cg of them (each n-tile's k-steps the same whatever NTW).
template <int NTW>
__device__ __forceinline__ void wy_w(const elt *stb, const elt *sqg, elt *sw, int rg, int cg, int ncg, int lane)
{
    const int gr = lane >> 2, tq = lane & 3;
    constexpr int NTK = ATTNC_KP / 8;
    for (int nt0 = cg * NTW; nt0 < NTK; nt0 += NTW * ncg) {
        float Wacc[NTW][4];
#pragma unroll
        for (int nt = 0; nt < NTW; nt++)
            Wacc[nt][0] = Wacc[nt][1] = Wacc[nt][2] = Wacc[nt][3] = 0.f;
        if (nt0 + NTW <= NTK)
            mm_rows<NTW, ATTNC_C / 16, true>(Wacc, stb, ATTNC_LDC, rg * 16, sqg, ATTNC_LDK, nt0 * 8, lane);
        else
            mm_rows<(NTK % NTW) ? (NTK % NTW) : NTW, ATTNC_C / 16, true>(Wacc, stb, ATTNC_LDC, rg * 16, sqg, ATTNC_LDK,
                                                                      nt0 * 8, lane);
#pragma unroll
        for (int nt = 0; nt < NTW; nt++)
            if (nt0 + nt < NTK)
#pragma unroll
                for (int e2 = 0; e2 < 2; e2++) {
                    int row = rg * 16 + gr + e2 * 8, col = (nt0 + nt) * 8 + tq * 2;
                    st2(sw + row * ATTNC_LDK + col, -Wacc[nt][e2 * 2], -Wacc[nt][e2 * 2 + 1]);
                }
    }
}

// A warp's 16 x 8 NT accumulator tile into rows r0 .. r0 + 15, columns from c0, of a tile (shared or global, row
// stride ld elements), a pair of adjacent columns a store: rounded as the tiles round it where T is the tile
// type, as they are where T is float (the delta rule's U into the warp-specialised walk's fp32 buffer; the
// fp32 units' tiles are float anyway, and st2 stores them so).
template <int NT, typename T>
__device__ __forceinline__ void frag_rows_store(T *tile, int ld, int r0, int c0, const float (*acc)[4], int lane)
{
    const int gr = lane >> 2, tq = lane & 3;
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int e2 = 0; e2 < 2; e2++) {
            T *at = tile + (r0 + gr + e2 * 8) * ld + c0 + nt * 8 + tq * 2;
            if constexpr (sizeof(T) == 4)
                *reinterpret_cast<float2 *>(at) = make_float2(acc[nt][e2 * 2], acc[nt][e2 * 2 + 1]);
            else
                st2(at, acc[nt][e2 * 2], acc[nt][e2 * 2 + 1]);
        }
}

// S *= the chunk's decay, every accumulator of the warp's state tiles (a row's factor for per-channel gates).
template <typename Acc>
__device__ __forceinline__ void state_apply_decay(Acc &S, const float *sg, const float *smisc, int warp, int gr)
{
#pragma unroll
    for (int i = 0; i < ATTNC_MTW; i++)
        if (state_mt(warp, i) < ATTNC_MT)
#pragma unroll
            for (int nt = 0; nt < ATTNC_NTSW; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    S[i][nt][e] *= state_decay(sg, smisc, state_mt(warp, i) * 16 + gr + (e >> 1) * 8);
}

// Step 2 of the walk (attnc_linear_body): the chunk's cumulative log2 gates, in place, by threads tid of
// nthreads (a warp's worth from tid 0 for a scalar decay's scan); the warp-specialised walk's producers
// (linear_ws_kernel.cuh) run it too.  GATE_LANES: a scalar decay's gates were summed in the prologue.
template <bool GATE_LANES>
__device__ __forceinline__ void attnc_chunk_gates(float *sg, float *sig, int nrows, int tid, int nthreads)
{
    const int lane = tid & 31, warp = tid >> 5;
    (void)sig, (void)nrows, (void)nthreads;
    if constexpr ((ATTNC_TRANSITION == TR_SCALAR || ATTNC_TRANSITION == TR_CONST) && !GATE_LANES) {
        if (warp == 0)
            attnc_scan_gates(sg[lane], ATTNC_C > 32 ? sg[lane + 32] : 0.f, lane, sg);
    } else if constexpr (ATTNC_TRANSITION == TR_DIAG) {
        for (int c = tid; c < ATTNC_KP; c += nthreads) {
            float acc = 0.f;
            for (int r = 0; r < ATTNC_C; r++) {
                acc += fmaxf(sg[r * ATTNC_KP + c] * LOG2E, LOG2_DECAY_FLOOR);
                sg[r * ATTNC_KP + c] = acc;
            }
        }
    }
    if constexpr (ATTNC_IGATE)
        if (tid < ATTNC_C)
            sig[tid] = tid < nrows ? sig[tid] * LOG2E : NEG_BIG;
}

// Step 3's decayed tiles (attnc_linear_body), by threads tid of nthreads: K * e^{b_L - b} (the state's
// write), per-channel gates' K * e^{b_e(J) - b} (the scores' key blocks), the delta rule's K * e^{b} (W).
// Eight channels per step (16-byte shared loads and stores: this phase was a quarter of the kernel's
// instructions when it went element by element).  The split output pass reads none of them.
template <int LEAN>
__device__ __forceinline__ void attnc_decayed_tiles(const elt *sk, elt *skd, elt *sqg, elt *ske, const float *sg,
                                                    const float *sig, const float *smisc, int tid, int nthreads)
{
    using L = attnc_smem_layout_t<LEAN>;
    (void)sqg, (void)ske, (void)sig, (void)smisc;
    for (int i = tid; i < (L::out ? 0 : ATTNC_C * ATTNC_KP / 8); i += nthreads) {
        const int r = i / (ATTNC_KP / 8), c = (i % (ATTNC_KP / 8)) * 8;
        float kx[8], fd[8], fg[8];   // K; e^{b_L - b_r} (state write); e^{b_r} (gamma)
        ld8(kx, sk + r * ATTNC_LDK + c);
        if constexpr (ATTNC_STABILIZED) {
            const float f = attnc_exp2(sg[ATTNC_C - 1] - sg[r] + sig[r] - smisc[1]);
#pragma unroll
            for (int j = 0; j < 8; j++)
                fd[j] = f, fg[j] = 1.f;
        } else if constexpr (ATTNC_TRANSITION == TR_SCALAR || ATTNC_TRANSITION == TR_CONST) {
            const float f = attnc_exp2(fminf(sg[ATTNC_C - 1] - sg[r], 0.f)), f2 = attnc_exp2(fminf(sg[r], 0.f));
#pragma unroll
            for (int j = 0; j < 8; j++)
                fd[j] = f, fg[j] = f2;
        } else if constexpr (ATTNC_TRANSITION == TR_DIAG) {
            const int e_row = (r / 16) * 16 + 15;
            float ke[8];
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const float b = sg[r * ATTNC_KP + c + j];
                fd[j] = attnc_exp2(fminf(sg[(ATTNC_C - 1) * ATTNC_KP + c + j] - b, 0.f));
                fg[j] = attnc_exp2(fminf(b, 0.f));
                ke[j] = kx[j] * attnc_exp2(fminf(sg[e_row * ATTNC_KP + c + j] - b, 0.f));
            }
            if constexpr (!L::grp)   // (the outputs' scores read it)
                st8(ske + r * ATTNC_LDK + c, ke);
        } else {
#pragma unroll
            for (int j = 0; j < 8; j++)
                fd[j] = fg[j] = 1.f;
        }
        float out[8];
#pragma unroll
        for (int j = 0; j < 8; j++)
            out[j] = kx[j] * fd[j];
        st8(skd + r * ATTNC_LDK + c, out);
        if constexpr (ATTNC_DELTA) {   // K * gamma, for W
#pragma unroll
            for (int j = 0; j < 8; j++)
                out[j] = kx[j] * fg[j];
            st8(sqg + r * ATTNC_LDK + c, out);
        }
    }
}

// The warp-specialised walk (ATTNC_WS, linear_ws_kernel.cuh): this body is its consumers' (the first
// ATTNC_THREADS threads), ATTNC_WS_PRODUCERS producer threads after them (the generator's, codegen/cuda.c,
// which the staging's thread range uses too); named barriers above the shared scores' 1 + rg.
enum { WS_BAR_FULL = 8, WS_BAR_EMPTY = 10, WS_BAR_PRODUCERS = 12, WS_BAR_CONSUMERS = 13 };
#define ATTNC_WS_THREADS (ATTNC_THREADS + ATTNC_WS_PRODUCERS)
// The causal scores' excess (ATTNC_WS_EXCESS: a constant decay, codegen/cuda.c's ws_excess): row group rg's
// scores span rg + 1 key blocks, and the consumers wait at their barrier for the row group with the most
// (11 % of their samples, ncu, thirtieth session).  The consumers form at most WS_PCAP blocks a row group
// (those at and left of the diagonal); the producers form the ones left of them, blocks (rg, kb < rg + 1 -
// WS_PCAP), into a tile of rows WS_PCAP * 16 .. C and the first (RG - WS_PCAP) * 16 key columns, one a
// buffer.  (Every block on the producers was slower, and the excess too where the producers form a gate
// per token: the producers became the critical path; bench/RESULTS.md, thirty-second session.)
enum { WS_PCAP = ATTNC_WS_EXCESS ? (ATTNC_RG + 1) / 2 : ATTNC_RG, WS_PROWS = (ATTNC_RG - WS_PCAP) * 16, WS_LDP = WS_PROWS + 8 };
// Its second tile buffer, after the walk's layout and its staging: Q, K, K * e^{b_L - b}, per-channel gates'
// K * e^{b_e - b}, V and the gates; then the scores' excess tile of either buffer; then the delta rule's
// second -W tile and U (fp32, [C][WS_LDU]) of either buffer: its producers run the WY stage (codegen/cuda.c's
// ws_smem_bytes sums the same).
enum { WS_LDU = ATTNC_V + 8 };   // (a quad's 8-byte stores and loads of four rows fill the banks once)
struct attnc_ws_layout {
    using L = attnc_smem_layout;
    static constexpr unsigned q = ATTNC_SMEM_BYTES + ATTNC_STAGE_BYTES, k = q + L::tile_k, kd = k + L::tile_k;
    static constexpr unsigned ke = kd + L::tile_k;
    static constexpr unsigned v = ke + (ATTNC_TRANSITION == TR_DIAG ? L::tile_k : 0);
    static constexpr unsigned g = v + ATTNC_C * ATTNC_LDV * sizeof(elt);
    static constexpr unsigned p_tile = WS_PROWS * WS_LDP * sizeof(elt);
    static constexpr unsigned p = g + (L::g_bytes + 15) / 16 * 16;
    static constexpr unsigned w = p + 2 * p_tile;
    static constexpr unsigned u_tile = ATTNC_DELTA ? ATTNC_C * WS_LDU * 4 : 0;
    static constexpr unsigned u = w + (ATTNC_DELTA ? L::tile_k : 0);
    static constexpr unsigned bytes = u + 2 * u_tile;
};
// Tile buffer b's pointers (0: the walk's layout, 1: attnc_ws_layout's), with its excess scores' tile and the
// delta rule's -W and U.
struct attnc_ws_tiles {
    elt *q, *k, *kd, *ke, *v, *p, *w;
    float *g, *u;
};
__device__ __forceinline__ attnc_ws_tiles attnc_ws_buffer(unsigned char *smem, int b)
{
    using L = attnc_smem_layout;
    using W = attnc_ws_layout;
    attnc_ws_tiles t;
    t.q = (elt *)(smem + L::q + b * (W::q - L::q));
    t.k = (elt *)(smem + L::k + b * (W::k - L::k));
    t.kd = (elt *)(smem + L::kd + b * (W::kd - L::kd));
    t.ke = (elt *)(smem + L::ke + b * (W::ke - L::ke));
    t.v = (elt *)(smem + L::v + b * (W::v - L::v));
    t.g = (float *)(smem + L::g + b * (W::g - L::g));
    t.p = ATTNC_WS_EXCESS ? (elt *)(smem + W::p + b * W::p_tile) : nullptr;
    t.w = ATTNC_DELTA ? (elt *)(smem + (b ? W::w : L::w)) : nullptr;
    t.u = ATTNC_DELTA ? (float *)(smem + W::u + b * W::u_tile) : nullptr;
    return t;
}
// O += P V over the chunk's key blocks for row group rg: blocks left of kb0 from the producers' tile sp, the
// others from the warp's P (mm_regs' fragments): the same A values as mm_regs, so the same bits.
__device__ __forceinline__ void ws_pv(float (*O)[4], const float (*P)[4], const elt *sp, int rg, int kb0, const elt *sv,
                                      int n0, int lane)
{
#pragma unroll
    for (int kt = 0; kt < ATTNC_C / 16; kt++) {
        frag a;
        if (kt < kb0)
            load_a(a, sp, WS_LDP, (rg - WS_PCAP) * 16, kt * 16, lane);
        else
            frag_from_acc(a, P, kt);
        mma_kstep<ATTNC_NTO, true>(O, a, sv, ATTNC_LDV, n0, kt, lane);
    }
}

// ---- the kernel --------------------------------------------------------------------------------------
#ifndef ATTNC_PHASES
#define ATTNC_PHASES 0   // every schedule's phases (see `phase` below)
#endif
#if ATTNC_WANT(1)
// The roles a body forms (attnc_row_store's and the staging's WANT, ATTNC_ROLE_*): the split delta rule's WY
// pass reads no query, its output pass no value and no beta.
__host__ __device__ constexpr unsigned lean_roles(int lean)
{
    return lean == 6   ? ATTNC_ROLE_K | ATTNC_ROLE_V | ATTNC_ROLE_GATE | ATTNC_ROLE_BETA
           : lean == 2 ? ATTNC_ROLE_Q | ATTNC_ROLE_K | ATTNC_ROLE_GATE
           : lean == 3 ? ATTNC_ROLE_K | ATTNC_ROLE_V | ATTNC_ROLE_GATE
                       : ATTNC_ROLES_ALL;
}

// The body of every chunk kernel: LEAN 0 the unit's phases (ATTNC_PHASES), LEAN 6 / 2 the split delta rule's
// WY and output passes alone, LEAN 3 the grouped schedule's phase 3, each on its own layout
// (attnc_smem_layout_t).
template <int LEAN>
__device__ __forceinline__ void attnc_linear_body(attnc_params p)
{
    extern __shared__ __align__(128) unsigned char smem[];
    using L = attnc_smem_layout_t<LEAN>;
    constexpr unsigned ROLES = lean_roles(LEAN);
    // ATTNC_GATE_LANES (codegen/cuda.c's gate_by_lane): warp 0 forms the chunk's gates, a token a lane, and
    // their cumulative sum during the prologue (attnc_scan_gates); the rows leave the gate out.  Not in the
    // grouped phase 3's lean body (at 128 registers retnet's spilled 12 bytes on sm_90a so).
    constexpr bool GATE_LANES = ATTNC_GATE_LANES && (ROLES & ATTNC_ROLE_GATE) && !L::grp;
    constexpr unsigned ROW_ROLES = GATE_LANES ? ROLES & ~ATTNC_ROLE_GATE : ROLES;
    // The warp-specialised walk's consumers (ATTNC_WS): producer warps form each chunk's tiles (steps 1 to 3's
    // decayed tiles) into one of two buffers, handed over at named barriers; the consumers' own barrier
    // stands for the CTA's.
    constexpr bool WS = ATTNC_WS && LEAN == 0;
    auto sync = [] {
        if constexpr (WS)
            attnc_bar_named(WS_BAR_CONSUMERS, ATTNC_THREADS);
        else
            __syncthreads();
    };
    elt *sq = (elt *)(smem + L::q), *sk = (elt *)(smem + L::k), *skd = (elt *)(smem + L::kd);
    elt *sqg = (elt *)(smem + L::qg), *sw = (elt *)(smem + L::w), *ske = (elt *)(smem + L::ke);
    elt *sv = (elt *)(smem + L::v), *ss = (elt *)(smem + L::s), *stb = (elt *)(smem + L::tb);
    float *sg = (float *)(smem + L::g), *sbeta = (float *)(smem + L::beta), *sig = (float *)(smem + L::ig);
    float *srowq = (float *)(smem + L::rowq), *srowred = (float *)(smem + L::rowred);
    float *sz = (float *)(smem + L::z), *smisc = (float *)(smem + L::misc), *saf = (float *)(smem + L::af);
    float *stf = (float *)(smem + L::tf), *sx = (float *)(smem + L::x);
    elt *sp = nullptr;   // the warp-specialised walk's excess scores, from its producers (attnc_ws_buffer)
    float *su = nullptr;   // and the delta rule's U
    // The split output pass's U_hat^T [V][SPLIT_LDUH], where the WY stage's scratch (af .. pt) holds it.
    // Without shared scores (whose P tile lies in that scratch) the outputs' product reads it there as the
    // n-major B operand; else (or where it does not fit) it is transposed into the V tile first.
    constexpr int SPLIT_LDUH = ATTNC_C + 8;
    constexpr bool SPLIT_UH_SCRATCH = ATTNC_DSPLIT && L::pt - L::af >= ATTNC_V * SPLIT_LDUH * sizeof(elt);
    constexpr bool SPLIT_UH_DIRECT = SPLIT_UH_SCRATCH && !ATTNC_P_SHARED;
    elt *suh = (elt *)(smem + L::af);

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int gr = lane >> 2, tq = lane & 3;
    // The schedules (passes/schedule.c) are phases of this one body, chosen per launch: phase 0 walks
    // the chunks with the state on chip and writes the outputs (sequential); the materialized schedule
    // runs phase 1, the same walk storing every chunk's S_in (its image), z_in and m_in in the
    // workspace p.ws_* instead of writing outputs, then phase 2, one CTA per (V slice, chunk) that reads
    // its chunk's S_in back and writes the chunk's outputs, all chunks in parallel.  Workspace slot of
    // the chunk at c0 of sequence n: c0 / C + n (distinct for every chunk, also across sequences).
    // The grouped schedule (ATTNC_GROUPED) splits each sequence into groups of p.group_chunks chunks, one
    // CTA per (V slice, group): phase 3 walks its group from a zero state and records the group's own
    // state S_g (fp32), z_g and total log2 decay l_g (p.ws_g*); phase 5 composes its group's S_in from h0
    // and the earlier groups' records, S_in(j + 1) = 2^{l_j} S_in(j) + S_j (the transition is diagonal),
    // and walks the group as phase 0 does; the last group writes the final state.  Phase 3 runs in its lean
    // body (attnc_linear_group: no query, no image, two CTAs an SM where they fit) and records groups of
    // p.group_fine chunks, p.group_chunks / p.group_fine of them in each group that phase 5 walks, so that
    // it fills the SMs' slots as phase 5 fills its own.
    // A unit holds the phases of one schedule (ATTNC_PHASES, one of the ATTNC_PHASES_* masks; api/kernel.c
    // compiles each schedule as a unit of its own) or of all (0: attnc compile's one unit).  The launch's
    // phase is a constant where the unit holds one, so that the other schedules' code is not compiled at
    // all: NVRTC took a tenth to a fifth less time for the sequential unit (bench/RESULTS.md, thirteenth
    // session).
    // The split delta rule's phases 6 and 2 run only in their lean bodies; its LEAN 0 body is the walk.
    if (LEAN ? p.phase != LEAN : (ATTNC_PHASES && !((ATTNC_PHASES >> p.phase) & 1)) || (ATTNC_DSPLIT && p.phase != 0))
        __trap();   // (a launcher that asks a unit for a phase it does not hold)
#if ATTNC_PHASES == ATTNC_PHASES_SEQUENTIAL
    const int phase = LEAN;
#elif ATTNC_PHASES == ATTNC_PHASES_MATERIALIZED
    const int phase = LEAN ? LEAN : ATTNC_DSPLIT ? 0 : (p.phase == 1 ? 1 : 2);
#elif ATTNC_PHASES == ATTNC_PHASES_GROUPED
    // (phase 5 alone here, the launcher taking phase 3's lean body, was measured with the phase a constant:
    // mamba2's phase 5 at T = 32768 0.765 -> 0.846 ms, gla's 2.197 -> 2.118 (bench/RESULTS.md, twenty-eighth
    // session); the run-time test stays)
    const int phase = LEAN ? LEAN : p.phase == 3 ? 3 : 5;
#else
    const int phase = LEAN ? LEAN : ATTNC_DSPLIT ? 0 : p.phase;
#endif
    constexpr int NVS = ATTNC_V / ATTNC_BV;                               // V slices
    const int v0 = (phase >= 2 ? blockIdx.x % NVS : blockIdx.x) * ATTNC_BV;
    const int h = blockIdx.y;               // output head
    const int n = blockIdx.z;               // sequence
    const int hs = h / (ATTNC_HOUT / ATTNC_HS);
    int bos, eos;
    attnc_seq_bounds(p.cu_seqlens, p.seqlen, n, bos, eos);
    // The split delta rule's WY pass (phase 6: every chunk's WY factors into the workspace, nothing else);
    // a constant false elsewhere, so that the unit of every phase is compiled as it was without it.
    const bool wy_pass = ATTNC_DSPLIT && phase == 6;
    // The split schedule's parallel phases take p.group_chunks consecutive chunks a CTA (one CTA a chunk
    // paid its set-up and its first chunk's copies every chunk); the additive schedule's phase 2 one (runs
    // there took kv_asym_retnet's unit of every phase past 255 registers, into spills).
    int c_first = bos, c_end = eos;
    if (phase == 2 || wy_pass) {
        const int group = ATTNC_DSPLIT ? max(p.group_chunks, 1) : 1;
        c_first = bos + (int)(blockIdx.x / NVS) * group * ATTNC_C;
        if (c_first >= eos)
            return;
        c_end = min(eos, c_first + group * ATTNC_C);
    }
    if (ATTNC_GROUPED && (phase == 3 || phase == 5)) {
        c_first = bos + (int)(blockIdx.x / NVS) * p.group_chunks * ATTNC_C;
        if (c_first >= eos)
            return;
        c_end = min(eos, c_first + p.group_chunks * ATTNC_C);
    }
    // The state slice (see ATTNC_SG).
    float S[ATTNC_MTW][ATTNC_NTSW][4];
    const size_t state_base = ((size_t)n * ATTNC_HS + hs) * ATTNC_K * ATTNC_V;
#pragma unroll
    for (int i = 0; i < ATTNC_MTW; i++)
#pragma unroll
        for (int nt = 0; nt < ATTNC_NTSW; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int mt = state_mt(warp, i);
                int row = mt * 16 + gr + (e >> 1) * 8, col = v0 + state_nt(warp, nt) * 8 + tq * 2 + (e & 1);
                float x = 0.f;
                if (ATTNC_STATE_IN && p.h0 && phase != 2 && phase != 3 && !wy_pass && mt < ATTNC_MT && row < ATTNC_K)
                    x = p.h0[state_base + (size_t)row * ATTNC_V + col];
                S[i][nt][e] = x;
            }
    // Grouped phase 5: S_in of the group, S_in(j + 1) = 2^{l_j} S_in(j) + S_j over the earlier groups' records.
    if (ATTNC_GROUPED && phase == 5) {
#pragma unroll 1
        for (int j = 0; j < (int)(blockIdx.x / NVS) * (p.group_chunks / p.group_fine); j++) {
            const size_t js = group_slot(p, n, j, h);
#pragma unroll
            for (int i = 0; i < ATTNC_MTW; i++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int mt = state_mt(warp, i), row = mt * 16 + gr + (e >> 1) * 8;
                    if (mt < ATTNC_MT && row < ATTNC_K) {
                        const float f = attnc_exp2(p.ws_gl[js * ATTNC_KP + row]);
                        const float *rec = p.ws_gs + (js * ATTNC_K + row) * ATTNC_V + v0 + tq * 2 + (e & 1);
#pragma unroll
                        for (int nt = 0; nt < ATTNC_NTSW; nt++)
                            S[i][nt][e] = f * S[i][nt][e] + rec[state_nt(warp, nt) * 8];
                    }
                }
        }
    }
    for (int c = tid; c < ATTNC_KP; c += ATTNC_THREADS) {
        float x = 0.f;
        if constexpr (ATTNC_NORM == NORM_DENOM || ATTNC_NORM == NORM_MAXFLOOR)
            if (ATTNC_STATE_IN && p.z0 && phase != 3 && c < ATTNC_K)
                x = p.z0[((size_t)n * ATTNC_HS + hs) * ATTNC_K + c];
        if (ATTNC_GROUPED && (ATTNC_NORM == NORM_DENOM) && phase == 5 && c < ATTNC_K)
            for (int j = 0; j < (int)(blockIdx.x / NVS) * (p.group_chunks / p.group_fine); j++) {
                const size_t js = group_slot(p, n, j, h);
                x = attnc_exp2(p.ws_gl[js * ATTNC_KP + c]) * x + p.ws_gz[js * ATTNC_KP + c];
            }
        sz[c] = x;
    }
    if (tid == 0) {
        float m0 = 0.f;
        if constexpr (ATTNC_NORM == NORM_MAXFLOOR)
            if (ATTNC_STATE_IN && p.m0)
                m0 = p.m0[(size_t)n * ATTNC_HS + hs] * LOG2E;
        smisc[0] = m0;   // m_in, log2 units
    }
    // Padded K columns stay zero in every tile for the whole walk (both buffers: the warp-specialised entry).
    for (int i = tid; i < (WS ? 0 : ATTNC_C * ATTNC_LDK); i += ATTNC_THREADS) {
        if constexpr (!L::wy && !L::grp)
            sq[i] = attnc_float_to_elt(0.f);
        sk[i] = attnc_float_to_elt(0.f);
        if constexpr (!L::out)
            skd[i] = attnc_float_to_elt(0.f);
        if constexpr (ATTNC_DELTA && !L::out)
            sqg[i] = attnc_float_to_elt(0.f);
        if constexpr (ATTNC_TRANSITION == TR_DIAG && !L::grp)
            ske[i] = attnc_float_to_elt(0.f);
    }
    // The delta rule's T diag(beta) tile: the WY stage (step 4) writes its blocks at and left of the diagonal
    // only; those right of it stay zero for the whole walk.
    // (the warp-specialised walk's entry clears it: its producers form it)
    for (int i = tid; i < (ATTNC_DELTA && !L::out && !WS ? ATTNC_C * ATTNC_LDC : 0); i += ATTNC_THREADS)
        stb[i] = attnc_float_to_elt(0.f);
    sync();

    unsigned char *stage = smem + L::bytes;
    attnc_stage_held held;
    if constexpr (!WS)
        attnc_stage_issue<ATTNC_STAGE_UNROLL, ROLES>(p, c_first, eos, h, stage, &held);
    constexpr bool bidir = !ATTNC_CAUSAL;
    // A bidirectional CTA walks the sequence twice: pass 0 sums the state, pass 1 reads it.
    for (int pass = 0; pass < (bidir ? 2 : 1); pass++) {
    for (int c0 = c_first; c0 < c_end; c0 += ATTNC_C) {
        const int nrows = min(ATTNC_C, eos - c0);
        const size_t slot = (size_t)(c0 / ATTNC_C + n) * ATTNC_HOUT + h;   // materialized: workspace slot
        if constexpr (ATTNC_NORM == NORM_DENOM || ATTNC_NORM == NORM_MAXFLOOR) {
            if (phase == 1) {
                for (int c = tid; c < ATTNC_KP; c += ATTNC_THREADS)
                    p.ws_z[slot * ATTNC_KP + c] = sz[c];
                if (tid == 0)
                    p.ws_m[slot] = smisc[0];
            } else if (phase == 2) {
                for (int c = tid; c < ATTNC_KP; c += ATTNC_THREADS)
                    sz[c] = p.ws_z[slot * ATTNC_KP + c];
                if (tid == 0)
                    smisc[0] = p.ws_m[slot];
            }
        }
        bool staged_next = false;   // (the next chunk's raw rows were issued)
        if constexpr (WS) {   // chunk j's tiles from the producers, in buffer j % 2
            const int b = (c0 - c_first) / ATTNC_C & 1;
            attnc_bar_named(WS_BAR_FULL + b, ATTNC_WS_THREADS);
            const attnc_ws_tiles t = attnc_ws_buffer(smem, b);
            sq = t.q, sk = t.k, skd = t.kd, ske = t.ke, sv = t.v, sg = t.g, sp = t.p, sw = t.w, su = t.u;
        } else {
            // ---- 1. prologue --------------------------------------------------------------------------
            attnc_stage_held_land<ROLES>(stage, held);
            attnc_stage_wait();
            sync();
            // The split output pass: S_in^T's image into ss and U_hat^T into the WY stage's scratch, copied
            // under the prologue (waited for in step 3).
            if (ATTNC_DSPLIT && phase == 2) {
                constexpr int KU = ATTNC_KP * (int)sizeof(elt) / 16, CU = ATTNC_C * (int)sizeof(elt) / 16;
                attnc_cp_rows<ATTNC_V, KU, ATTNC_THREADS>(ss, ATTNC_LDK * sizeof(elt), p.ws_s + slot * ATTNC_V * ATTNC_KP,
                                                          ATTNC_KP * sizeof(elt), true);
                attnc_cp_rows<ATTNC_V, CU, ATTNC_THREADS>(suh, SPLIT_LDUH * sizeof(elt), p.ws_uh + slot * ATTNC_V * ATTNC_C,
                                                          ATTNC_C * sizeof(elt), SPLIT_UH_SCRATCH);
                asm volatile("cp.async.commit_group;\n" ::: "memory");
            }
            // ATTNC_PRO_ROWS tokens per warp and pass (codegen/cuda.c's prologue_rows), all evaluated into
            // registers before any is stored: one token's value DAG is a chain of dependent loads and MUFU ops,
            // and the compiler can interleave chains only when no shared-memory store lies between them (a warp
            // forming one row at a time spent 39 % of mamba2's forward waiting on them, ncu on the H200)
            // (phase 3's lean body two at most: it holds all of its state at two CTAs an SM, 128 registers)
            constexpr int PRO_ROWS = L::grp && ATTNC_PRO_ROWS > 2 ? 2 : ATTNC_PRO_ROWS;
            if constexpr (GATE_LANES)
                if (warp == 0)
                    attnc_lane_gates(p, c0, nrows, h, lane, stage, sg);
            for (int base = 0; base < ATTNC_C; base += PRO_ROWS * ATTNC_WARPS) {
                attnc_row rows[PRO_ROWS];
#pragma unroll
                for (int i = 0; i < PRO_ROWS; i++) {
                    const int r = base + i * ATTNC_WARPS + warp;
                    if (ATTNC_C % (PRO_ROWS * ATTNC_WARPS) == 0 || r < ATTNC_C) {
                        attnc_row_values(p, r < nrows ? c0 + r : c0, h, r, lane, stage, r < nrows, rows[i]);
                        attnc_row_save_l2<ROLES>(p, rows[i], c0 + r, h, r < nrows, lane);   // (training)
                    }
                }
#pragma unroll
                for (int i = 0; i < PRO_ROWS; i++) {
                    const int r = base + i * ATTNC_WARPS + warp;
                    if (ATTNC_C % (PRO_ROWS * ATTNC_WARPS) == 0 || r < ATTNC_C)
                        attnc_row_store<ROW_ROLES>(rows[i], r, v0, lane, sq, sk, sv, sg, sbeta, sig);
                }
            }
            sync();
            // the next chunk's raw rows (a bidirectional walk starts over for its second pass)
            int next = c0 + ATTNC_C;
            if (bidir && pass == 0 && next >= eos)
                next = bos;
            staged_next = next < c_end;
            if (staged_next)
                attnc_stage_issue<ATTNC_STAGE_UNROLL, ROLES>(p, next, eos, h, stage, &held);
            // ---- 2. chunk-local cumulative log2 gates ----------------------------------------------------
            // (formed in the prologue with GATE_LANES; with no decay, nor an input gate, there is nothing to form
            // here and no barrier: the prologue's orders the tiles step 3 reads)
            constexpr bool GATES_HERE = ((ATTNC_TRANSITION == TR_SCALAR || ATTNC_TRANSITION == TR_CONST) && !GATE_LANES) ||
                                        ATTNC_TRANSITION == TR_DIAG || ATTNC_IGATE;
            attnc_chunk_gates<GATE_LANES>(sg, sig, nrows, tid, ATTNC_THREADS);
            if constexpr (GATES_HERE)
                sync();
        }

        // ---- 3. decayed tiles, stabiliser, S_in image, q . z ------------------------------------------
        // b_L: the chunk total (padding rows carry log-gate 0, so the last row holds it).
        if constexpr (ATTNC_STABILIZED) {
            // alpha_j = b_L - b_j + i_j; m_out = max(b_L + m_in, max_j alpha_j)  (log2 units)
            if (warp == 0) {
                float bl = sg[ATTNC_C - 1], mx = bl + smisc[0];
                for (int j = lane; j < ATTNC_C; j += 32)
                    mx = fmaxf(mx, bl - sg[j] + sig[j]);
#pragma unroll
                for (int o = 16; o; o >>= 1)
                    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
                if (lane == 0)
                    smisc[1] = mx;
            }
            sync();
        }
        if constexpr (!WS)   // (the warp-specialised walk's producers form them)
            attnc_decayed_tiles<LEAN>(sk, skd, sqg, ske, sg, sig, smisc, tid, ATTNC_THREADS);
        // The image of S_in: from the accumulators (phase 1 also stores it), or read back (phase 2); grouped
        // phase 3 writes no outputs and has no WY stage, so it needs no image (nor q . z below).
        if (ATTNC_DSPLIT && phase == 2) {   // S_in^T [V][KP] from the split walk, copied in step 1
            if (staged_next)   // (the next chunk's rows, committed after it, may still be on their way)
                asm volatile("cp.async.wait_group 1;\n" ::: "memory");
            else
                attnc_stage_wait();
        } else if (phase == 2) {
            for (int i = tid; i < ATTNC_KP * (ATTNC_BV / 8); i += ATTNC_THREADS) {
                const int row = i / (ATTNC_BV / 8), col = (i % (ATTNC_BV / 8)) * 8;
                copy8(ss + row * ATTNC_LDV + col, row < ATTNC_K ? p.ws_s + (slot * ATTNC_K + row) * ATTNC_V + v0 + col : nullptr);
            }
        } else if (!(ATTNC_GROUPED && phase == 3) && !wy_pass) {
#pragma unroll
            for (int i = 0; i < ATTNC_MTW; i++) {
                int mt = state_mt(warp, i);
                if (mt < ATTNC_MT)
#pragma unroll
                    for (int nt = 0; nt < ATTNC_NTSW; nt++)
#pragma unroll
                        for (int e2 = 0; e2 < 2; e2++) {
                            int row = mt * 16 + gr + e2 * 8, col = state_nt(warp, nt) * 8 + tq * 2;
                            const float x0 = S[i][nt][e2 * 2], x1 = S[i][nt][e2 * 2 + 1];
                            st2(ss + row * ATTNC_LDV + col, x0, x1);
                            if (phase == 1 && row < ATTNC_K)
                                st2(p.ws_s + (slot * ATTNC_K + row) * ATTNC_V + v0 + col, x0, x1);
                        }
            }
            // Training: mantissa images (ATTNC_SAVES 2) from the accumulators, before their decay below; the bf16
            // image (ATTNC_SAVES 1) is copied out of ss after the barrier below, by the TMA unit where there is one,
            // which reads ss through the async proxy: this thread's writes fenced for it first
            if (ATTNC_SAVES && (phase == 0 || phase == 5) && p.save_img && ((c0 - bos) & ((1 << p.save_shift) - 1)) == 0) {
                if constexpr (ATTNC_SAVES == 2) {
                    unsigned char *img = (unsigned char *)p.save_img;
                    save_mantissa_image(img + ((size_t)((c0 >> p.save_shift) + n) * ATTNC_HOUT + h) * SAVE_IMG_BYTES,
                                        S, v0, warp, lane, srowred, sync);
                } else if constexpr (SAVE_BULK) {
                    attnc_bulk_fence();
                }
            }
        }
        // The walks' state decay, applied now that the image holds S_in (nothing reads the accumulators
        // again before the update in step 6): at the update's start its shared load, exp2 and multiplies
        // were a chain that every mma of the update waited for (4.7 % of gated_delta's stall samples, ncu on
        // the H200; simple_gla_gam's walk at T = 8192 0.824 / 0.828 -> 0.799 / 0.808 ms).  Each accumulator
        // takes its decay and then its k-steps: the same bits.  Not in the grouped phases (about 1 % slower
        // there), nor with the stabiliser, whose decay needs this chunk's running maximum, known only in
        // step 5, nor with other than two state groups (kv_asym_retnet's four spilled 56 bytes on sm_90a).
        const bool decay_early = !ATTNC_STABILIZED && ATTNC_TRANSITION != TR_IDENTITY && ATTNC_SG == 2 &&
                                 (phase == 0 || phase == 1) && (!bidir || pass == 0);
        if (decay_early)
            state_apply_decay(S, sg, smisc, warp, gr);
        if constexpr (ATTNC_NORM == NORM_DENOM || ATTNC_NORM == NORM_MAXFLOOR) {
            // q_r . z_in (gamma and the stabiliser are applied per row later); DIAG uses Q * gamma.
            for (int r = warp; r < (ATTNC_GROUPED && phase == 3 ? 0 : ATTNC_C); r += ATTNC_WARPS) {
                float acc = 0.f;
                for (int c = lane; c < ATTNC_KP; c += 32) {
                    float qx = attnc_elt_to_float(sq[r * ATTNC_LDK + c]);
                    if constexpr (ATTNC_TRANSITION == TR_DIAG)
                        qx *= attnc_exp2(fminf(sg[r * ATTNC_KP + c], 0.f));
                    acc += qx * sz[c];
                }
                acc = attnc_warp_sum(acc);
                if (lane == 0)
                    srowq[r] = acc;
            }
        }
        sync();
        // Training (p.save_img, api/kernel.c's saved states): S_in's image as the backward's chunk-parallel
        // schedule stores it (bf16 [KP][V] per backward slot c0 / C_b + n and output head, C_b = 2^save_shift), at every
        // chunk that starts one of the backward's chunks (a multiple of this walk's), so that the backward
        // need not walk the sequence again for it.  The image is complete after the barrier above and is not
        // written again before the products of this chunk have passed the barriers of steps 5 and 6.  Only
        // where the backward reads such images (ATTNC_SAVES 1, codegen/cuda.c's cg_saved_image_kind): elsewhere the
        // code is not compiled.  (The gated delta rule's warp-specialised consumers spill 16 bytes with it, sm_90a;
        // its walk still saves 0.22 ms against the plain walk's saving at T = 8192: bench/RESULTS.md, forty-third
        // session.)
        if (ATTNC_SAVES == 1 && (phase == 0 || phase == 5) && p.save_img && ((c0 - bos) & ((1 << p.save_shift) - 1)) == 0) {
            constexpr int PER = 16 / (int)sizeof(elt), UNITS = ATTNC_BV / PER;
            elt *dst = (elt *)p.save_img + ((size_t)((c0 >> p.save_shift) + n) * ATTNC_HOUT + h) * ATTNC_KP * ATTNC_V + v0;
            if constexpr (SAVE_BULK) {   // a row a thread (waited for at the chunk's end)
                if (tid < ATTNC_KP)
                    attnc_bulk_store(dst + (size_t)tid * ATTNC_V, ss + tid * ATTNC_LDV, ATTNC_BV * sizeof(elt));
            } else {
                for (int i = tid; i < ATTNC_KP * UNITS; i += ATTNC_THREADS) {
                    const int row = i / UNITS, col = i % UNITS * PER;
                    *reinterpret_cast<attnc_u4 *>(dst + (size_t)row * ATTNC_V + col) =
                        *reinterpret_cast<const attnc_u4 *>(ss + row * ATTNC_LDV + col);
                }
            }
        }

        // ---- 4. the delta family's WY stage ---------------------------------------------------------
        // The split schedule's output pass takes U_hat from the state walk ([V][C] there), read in place
        // (SPLIT_UH_DIRECT) or transposed into sv.
        if (ATTNC_DSPLIT && phase == 2) {
            if constexpr (!SPLIT_UH_DIRECT) {
                for (int i = tid; i < ATTNC_V * (ATTNC_C / 8); i += ATTNC_THREADS) {
                    const int col = i / (ATTNC_C / 8), row = (i % (ATTNC_C / 8)) * 8;
                    float x[8];
                    if constexpr (SPLIT_UH_SCRATCH)
                        ld8(x, suh + col * SPLIT_LDUH + row);
                    else
                        ld8(x, p.ws_uh + (slot * ATTNC_V + col) * ATTNC_C + row);
#pragma unroll
                    for (int j = 0; j < 8; j++)
                        sv[(row + j) * ATTNC_LDV + col] = attnc_float_to_elt(x[j]);
                }
                sync();
            }
        } else if constexpr (ATTNC_DELTA && WS) {
            // The warp-specialised walk's producers formed U (fp32, su) and -W (sw): U_hat = U + (-W) S_in
            // replaces V, which no consumer reads (the same k-steps on the same accumulators as below).
            const int rg = warp % ATTNC_RG, cg = warp / ATTNC_RG;
            float U[ATTNC_NTO][4];
#pragma unroll
            for (int nt = 0; nt < ATTNC_NTO; nt++)
#pragma unroll
                for (int e2 = 0; e2 < 2; e2++) {
                    const float2 u = *reinterpret_cast<const float2 *>(
                        su + (rg * 16 + gr + e2 * 8) * WS_LDU + cg * ATTNC_BVW + nt * 8 + tq * 2);
                    U[nt][e2 * 2] = u.x;
                    U[nt][e2 * 2 + 1] = u.y;
                }
            mm_rows<ATTNC_NTO, ATTNC_KP / 16, true>(U, sw, ATTNC_LDK, rg * 16, ss, ATTNC_LDV, cg * ATTNC_BVW, lane);
            frag_rows_store<ATTNC_NTO>(sv, ATTNC_LDV, rg * 16, cg * ATTNC_BVW, U, lane);
            if (SAVE_UH_BULK && p.save_uh)   // (the TMA unit reads U_hat's rows: save_uhat_rows)
                attnc_bulk_fence();
            sync();
        } else if constexpr (ATTNC_DELTA) {
            const int rg = warp % ATTNC_RG;
            wy_inverse<ATTNC_WARPS>(sk, ske, sg, sbeta, saf, stf, sx, stb, tid, sync);
            // W = T diag(beta) (K * gamma)  -> sw (negated, so that U_hat = U + (-W) S_in);  U = T diag(beta) V.
            float U[ATTNC_NTO][4];
            const int cg = warp / ATTNC_RG;
            // The split schedule's WY pass: U (fp32), -W, Kd and the chunk's state decay into the workspace
            // for the state walk, which forms U_hat from them (attnc_linear_states).  U goes out in 16-byte
            // stores through the image's tile (unused in this phase) where it fits: the accumulators' own
            // 8-byte stores filled the memory pipeline (lg_throttle, 12 % of the samples, ncu on the H200).
            // Its rows go there before W is formed (held across W's products they took the lean body past 128
            // registers: 8 bytes of spills for gated_deltanet).
            constexpr int LDUS = ATTNC_V + 4;
            constexpr bool U_STAGED = ATTNC_C * LDUS * 4 <= L::s_elems * sizeof(elt);
            float *sus = reinterpret_cast<float *>(ss);
            {
                wy_u<ATTNC_NTO>(U, stb, sv, rg, cg * ATTNC_BVW, lane);
                // (frag_rows_store on fp32 here changed this pass's code, 128 bytes more for deltanet on sm_90a,
                // where the warp-specialised walk's came out the same: this pass keeps its own stores)
                if (wy_pass) {
#pragma unroll
                    for (int nt = 0; nt < ATTNC_NTO; nt++)
#pragma unroll
                        for (int e2 = 0; e2 < 2; e2++) {
                            const int row = rg * 16 + gr + e2 * 8, col = cg * ATTNC_BVW + nt * 8 + tq * 2;
                            *reinterpret_cast<float2 *>(U_STAGED ? sus + row * LDUS + col
                                                                 : p.ws_u + (slot * ATTNC_C + row) * ATTNC_V + col) =
                                make_float2(U[nt][e2 * 2], U[nt][e2 * 2 + 1]);
                        }
                }
                wy_w<8>(stb, sqg, sw, rg, cg, ATTNC_CG, lane);
            }
            sync();
            if (wy_pass) {
                for (int i = tid; i < ATTNC_C * (ATTNC_KP / 8); i += ATTNC_THREADS) {
                    const int r = i / (ATTNC_KP / 8), c = (i % (ATTNC_KP / 8)) * 8;
                    copy8(p.ws_w + (slot * ATTNC_C + r) * ATTNC_KP + c, sw + r * ATTNC_LDK + c);
                    copy8(p.ws_kd + (slot * ATTNC_C + r) * ATTNC_KP + c, skd + r * ATTNC_LDK + c);
                }
                for (int i = tid; i < (U_STAGED ? ATTNC_C * ATTNC_V / 4 : 0); i += ATTNC_THREADS) {
                    const int r = i / (ATTNC_V / 4), c = (i % (ATTNC_V / 4)) * 4;
                    *reinterpret_cast<float4 *>(p.ws_u + (slot * ATTNC_C + r) * ATTNC_V + c) =
                        *reinterpret_cast<const float4 *>(sus + r * LDUS + c);
                }
                if (tid == 0)
                    p.ws_bl[slot] = state_decay(sg, smisc, 0);
            } else {
                mm_rows<ATTNC_NTO, ATTNC_KP / 16, true>(U, sw, ATTNC_LDK, rg * 16, ss, ATTNC_LDV, cg * ATTNC_BVW, lane);
                sync();   // every warp has read V before U_hat replaces it
                frag_rows_store<ATTNC_NTO>(sv, ATTNC_LDV, rg * 16, cg * ATTNC_BVW, U, lane);
            }
            sync();
        }

        // Training, the delta rule (p.save_uh): the chunk's U_hat rows, now in sv, for the backward's chunk
        // kernel, which reads them for V (save_uhat_rows).
        if constexpr (ATTNC_SAVES == 1 && ATTNC_DELTA)
            if ((phase == 0 || phase == 5) && p.save_uh && !wy_pass)
                save_uhat_rows<SAVE_UH_BULK>(p, sv, c0, bos, nrows, n, h, v0, tid);

        // ---- 5. outputs -----------------------------------------------------------------------------
        if ((!bidir || pass == 1) && phase != 1 && phase != 3 && !wy_pass) {
            const int rg = out_rg(warp), cg = warp / ATTNC_RG;
            float O[ATTNC_NTO][4];
#pragma unroll
            for (int nt = 0; nt < ATTNC_NTO; nt++)
                O[nt][0] = O[nt][1] = O[nt][2] = O[nt][3] = 0.f;
            // Inter-chunk part first: Q S_in (Q * gamma for per-channel gates, built below).
            if (ATTNC_DSPLIT && phase == 2)   // (S_in^T: n-major)
                mm_rows<ATTNC_NTO, ATTNC_KP / 16, false>(O, sq, ATTNC_LDK, rg * 16, ss, ATTNC_LDK, cg * ATTNC_BVW, lane);
            else if constexpr (ATTNC_TRANSITION != TR_DIAG)
                mm_rows<ATTNC_NTO, ATTNC_KP / 16, true>(O, sq, ATTNC_LDK, rg * 16, ss, ATTNC_LDV, cg * ATTNC_BVW, lane);
            float rowf[2], den[2] = {0.f, 0.f}, mrow[2] = {0.f, 0.f};
#pragma unroll
            for (int e2 = 0; e2 < 2; e2++) {
                int r = rg * 16 + gr + e2 * 8;
                float f = 1.f;
                if constexpr (ATTNC_TRANSITION == TR_SCALAR || ATTNC_TRANSITION == TR_CONST)
                    if constexpr (!ATTNC_STABILIZED)
                        f = attnc_exp2(fminf(sg[r], 0.f));
                rowf[e2] = f;   // per-channel gates: gamma rides in the Q * gamma fragments below
            }
            if constexpr (ATTNC_TRANSITION == TR_DIAG) {
                // Per-channel gates: Q * gamma as A fragments built in registers, not a shared tile (the
                // tile's 8.5 KB kept gla at 117 KB of shared memory, one CTA per SM; KDA's sqg holds
                // K * gamma for W).
#pragma unroll
                for (int kt = 0; kt < ATTNC_KP / 16; kt++) {
                    frag a;
#pragma unroll
                    for (int q4 = 0; q4 < 4; q4++) {
                        int r = rg * 16 + gr + (q4 & 1) * 8, c = kt * 16 + tq * 2 + (q4 >> 1) * 8;
                        // (a pair a load from each: sg's rows of KP floats put a fragment's eight rows on the
                        // same banks, 8-way per 4-byte load, 4-way per 8-byte one; ncu had the two loads of
                        // each a 5 % line of gla's forward, H100)
                        const float2 x = ld2(sq + r * ATTNC_LDK + c), lg = ldf2(sg + r * ATTNC_KP + c);
                        frag_set(a, q4, x.x * attnc_exp2(fminf(lg.x, 0.f)), x.y * attnc_exp2(fminf(lg.y, 0.f)));
                    }
#pragma unroll
                    for (int nt = 0; nt < ATTNC_NTO; nt += 2) {
                        frag b;
                        load_b_kn(b, ss, ATTNC_LDV, cg * ATTNC_BVW + nt * 8, kt * 16, lane);
                        mma(O[nt], a, b, 0);
                        if (nt + 1 < ATTNC_NTO)
                            mma(O[nt + 1], a, b, 1);
                    }
                }
            }
            if constexpr (ATTNC_CAUSAL) {
                float P[ATTNC_C / 8][4];
                // shared scores: this warp's share of the channels of every key block of the row group
                // (the warp-specialised walk: the key blocks from kb0 on; the producers formed those left of it)
                const int kb0 = WS && ATTNC_WS_EXCESS ? max(0, rg + 1 - WS_PCAP) : 0;
                scores<false>(P, sq, sk, ske, sg, rg, lane, ATTNC_P_SHARED ? cg : 0, ATTNC_P_SHARED ? ATTNC_CG : 1, kb0);
                if constexpr (ATTNC_STABILIZED) {
                    // D_rj = b_r - b_j + i_j; m_r = max(b_r + m_in, max_{j<=r} D_rj)
                    float mx[2];
#pragma unroll
                    for (int e2 = 0; e2 < 2; e2++)
                        mx[e2] = sg[rg * 16 + gr + e2 * 8] + smisc[0];
#pragma unroll
                    for (int nt = 0; nt < ATTNC_C / 8; nt++)
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            int r = rg * 16 + gr + (e >> 1) * 8, j = nt * 8 + tq * 2 + (e & 1);
                            if (j <= r)
                                mx[e >> 1] = fmaxf(mx[e >> 1], sg[r] - sg[j] + sig[j]);
                        }
#pragma unroll
                    for (int e2 = 0; e2 < 2; e2++) {
                        mx[e2] = quad_max(mx[e2]);
                        mrow[e2] = mx[e2];
                        rowf[e2] = attnc_exp2(sg[rg * 16 + gr + e2 * 8] + smisc[0] - mx[e2]);
                    }
#pragma unroll
                    for (int nt = 0; nt < ATTNC_C / 8; nt++)
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            int r = rg * 16 + gr + (e >> 1) * 8, j = nt * 8 + tq * 2 + (e & 1);
                            // the stabilised weight e^{D_rj - m_r} (exponent <= 0 by the choice of m_r)
                            P[nt][e] = j <= r ? P[nt][e] * attnc_exp2(fminf(sg[r] - sg[j] + sig[j] - mx[e >> 1], 0.f)) : 0.f;
                        }
                }
                if constexpr (ATTNC_QSCALE != 1.0f) {
#pragma unroll
                    for (int nt = 0; nt < ATTNC_C / 8; nt++)
#pragma unroll
                        for (int e = 0; e < 4; e++)
                            P[nt][e] *= ATTNC_QSCALE;
                }
                if constexpr (ATTNC_NORM == NORM_DENOM || ATTNC_NORM == NORM_MAXFLOOR) {
#pragma unroll
                    for (int e2 = 0; e2 < 2; e2++) {
                        float s = 0.f;
#pragma unroll
                        for (int nt = 0; nt < ATTNC_C / 8; nt++)
                            s += P[nt][e2 * 2] + P[nt][e2 * 2 + 1];
                        den[e2] = quad_sum(s);
                    }
                }
#pragma unroll
                for (int nt = 0; nt < ATTNC_NTO; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        O[nt][e] *= rowf[e >> 1] * ATTNC_QSCALE;
                if constexpr (ATTNC_P_SHARED) {
                    // The row group's warps each summed a share of the channels (the whole row group's key
                    // blocks: with one or two 16-key blocks a row group at chunk 32, a share of the blocks
                    // left two or three of its four warps waiting at the barrier, 16 % of gla's samples).
                    // Their fp32 partials meet in pf (barrier 1 + rg); each warp adds up its key-block pairs,
                    // partials in warp order, into the pt tile (the delta rule's T tile, free after the WY
                    // stage), blocks right of the diagonal as zeros; at the second barrier every warp
                    // multiplies all of P by its V columns.
                    float *spf = (float *)(smem + L::pf) + (size_t)rg * ATTNC_CG * 16 * ATTNC_C;
                    elt *spt = (elt *)(smem + (ATTNC_DELTA ? L::tb : L::pt));
#pragma unroll
                    for (int nt = 0; nt < ATTNC_C / 8; nt++)
                        if (nt * 8 < (rg + 1) * 16)
#pragma unroll
                            for (int e2 = 0; e2 < 2; e2++)
                                *reinterpret_cast<float2 *>(spf + (cg * 16 + gr + e2 * 8) * ATTNC_C + nt * 8 + tq * 2) =
                                    make_float2(P[nt][e2 * 2], P[nt][e2 * 2 + 1]);
                    attnc_bar_named(1 + rg, ATTNC_CG * 32);
#pragma unroll
                    for (int nt = 0; nt < ATTNC_C / 8; nt++)
                        if ((nt >> 1) % ATTNC_CG == cg)
#pragma unroll
                            for (int e2 = 0; e2 < 2; e2++) {
                                float x0 = 0.f, x1 = 0.f;
                                if (nt * 8 < (rg + 1) * 16)
                                    for (int w = 0; w < ATTNC_CG; w++) {
                                        const float2 y = *reinterpret_cast<const float2 *>(
                                            spf + (w * 16 + gr + e2 * 8) * ATTNC_C + nt * 8 + tq * 2);
                                        x0 += y.x;
                                        x1 += y.y;
                                    }
                                st2(spt + (rg * 16 + gr + e2 * 8) * ATTNC_LDC + nt * 8 + tq * 2, x0, x1);
                            }
                    attnc_bar_named(1 + rg, ATTNC_CG * 32);
                    mm_rows<ATTNC_NTO, ATTNC_C / 16, true>(O, spt, ATTNC_LDC, rg * 16, sv, ATTNC_LDV, cg * ATTNC_BVW, lane);
                } else if (SPLIT_UH_DIRECT && phase == 2) {   // U_hat^T [V][C]: n-major
                    mm_regs<ATTNC_NTO, ATTNC_C / 16, false>(O, P, suh, SPLIT_LDUH, cg * ATTNC_BVW, lane);
                } else if constexpr (WS && ATTNC_WS_EXCESS) {
                    ws_pv(O, P, sp, rg, kb0, sv, cg * ATTNC_BVW, lane);
                } else {
                    mm_regs<ATTNC_NTO, ATTNC_C / 16>(O, P, sv, ATTNC_LDV, cg * ATTNC_BVW, lane);
                }
            } else {
#pragma unroll
                for (int nt = 0; nt < ATTNC_NTO; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        O[nt][e] *= rowf[e >> 1] * ATTNC_QSCALE;
            }
            // Normalise and store.  Norms over the whole row (RMS, LayerNorm) first add up the row's sums
            // across the column groups' warps through shared memory.
            constexpr bool row_norm = ATTNC_NORM == NORM_RMS || ATTNC_NORM == NORM_LAYER;
            float row_s1[2] = {0.f, 0.f}, row_s2[2] = {0.f, 0.f};
            if constexpr (row_norm) {
#pragma unroll
                for (int e2 = 0; e2 < 2; e2++) {
                    float s1 = 0.f, s2 = 0.f;
#pragma unroll
                    for (int nt = 0; nt < ATTNC_NTO; nt++) {
                        s1 += O[nt][e2 * 2] + O[nt][e2 * 2 + 1];
                        s2 += O[nt][e2 * 2] * O[nt][e2 * 2] + O[nt][e2 * 2 + 1] * O[nt][e2 * 2 + 1];
                    }
                    row_s1[e2] = quad_sum(s1);
                    row_s2[e2] = quad_sum(s2);
                    if constexpr (ATTNC_CG > 1) {
                        const int r = rg * 16 + gr + e2 * 8;
                        if (tq == 0) {
                            srowred[(r * ATTNC_CG + cg) * 2] = row_s1[e2];
                            srowred[(r * ATTNC_CG + cg) * 2 + 1] = row_s2[e2];
                        }
                    }
                }
                if constexpr (ATTNC_CG > 1) {
                    sync();
#pragma unroll
                    for (int e2 = 0; e2 < 2; e2++) {
                        const int r = rg * 16 + gr + e2 * 8;
                        row_s1[e2] = row_s2[e2] = 0.f;
#pragma unroll
                        for (int c = 0; c < ATTNC_CG; c++) {
                            row_s1[e2] += srowred[(r * ATTNC_CG + c) * 2];
                            row_s2[e2] += srowred[(r * ATTNC_CG + c) * 2 + 1];
                        }
                    }
                }
            }
#pragma unroll
            for (int e2 = 0; e2 < 2; e2++) {
                const int r = rg * 16 + gr + e2 * 8;
                float scale = 1.f, shift = 0.f;
                if constexpr (ATTNC_NORM == NORM_DENOM) {
                    float d = den[e2] + rowf[e2] * ATTNC_QSCALE * srowq[r];
                    scale = 1.f / (d + ATTNC_EPS);
                } else if constexpr (ATTNC_NORM == NORM_MAXFLOOR) {
                    float d = den[e2] + rowf[e2] * ATTNC_QSCALE * srowq[r];
                    scale = 1.f / (fmaxf(fabsf(d), attnc_exp2(-mrow[e2])) + ATTNC_EPS);
                } else if constexpr (row_norm) {
                    float mean = row_s1[e2] / ATTNC_V, ms = row_s2[e2] / ATTNC_V;
                    if constexpr (ATTNC_NORM == NORM_RMS) {
                        scale = rsqrtf(ms + ATTNC_EPS);
                    } else {
                        scale = rsqrtf(fmaxf(ms - mean * mean, 0.f) + ATTNC_EPS);
                        shift = -mean * scale;
                    }
                }
                if (r < nrows) {
                    size_t obase = ((size_t)(c0 + r) * ATTNC_HOUT + h) * ATTNC_V + v0 + cg * ATTNC_BVW;
#pragma unroll
                    for (int nt = 0; nt < ATTNC_NTO; nt++)
                        attnc_store_out2(p.out, obase + nt * 8 + tq * 2, O[nt][e2 * 2] * scale + shift,
                                         O[nt][e2 * 2 + 1] * scale + shift);
                }
            }
        }

        // ---- 6. the state -------------------------------------------------------------------------
        if ((!bidir || pass == 0) && phase != 2 && !wy_pass) {
            // S += Kd^T V.  With two state groups (all of V in one CTA, passes/tile.c) a warp's two m-tiles
            // share each k-step's B fragments of V, loaded once (every decay first, then the k-steps);
            // other splits keep one m-tile at a time, its decay then its k-steps (holding the fragments
            // across m-tiles cost kv_asym_retnet's four groups 88 bytes of spills).  Each accumulator
            // takes its decay and then its k-steps in order either way: the same bits.
            if constexpr (ATTNC_SG == 2) {
                if (!decay_early)
                    state_apply_decay(S, sg, smisc, warp, gr);
#pragma unroll
                for (int kt = 0; kt < ATTNC_C / 16; kt++) {
                    frag bv[(ATTNC_NTSW + 1) / 2];
#pragma unroll
                    for (int nt = 0; nt < ATTNC_NTSW; nt += 2)
                        load_b_kn(bv[nt / 2], sv, ATTNC_LDV, state_nt(warp, nt) * 8, kt * 16, lane);
#pragma unroll
                    for (int i = 0; i < ATTNC_MTW; i++) {
                        frag a;
                        load_a_t(a, skd, ATTNC_LDK, state_mt(warp, i) * 16, kt * 16, lane);
#pragma unroll
                        for (int nt = 0; nt < ATTNC_NTSW; nt += 2) {
                            mma(S[i][nt], a, bv[nt / 2], 0);
                            if (nt + 1 < ATTNC_NTSW)
                                mma(S[i][nt + 1], a, bv[nt / 2], 1);
                        }
                    }
                }
            } else {
#pragma unroll
                for (int i = 0; i < ATTNC_MTW; i++) {
                    const int mt = state_mt(warp, i);
                    if (mt < ATTNC_MT) {   // (no early decay with other than two state groups)
#pragma unroll
                        for (int nt = 0; nt < ATTNC_NTSW; nt++)
#pragma unroll
                            for (int e = 0; e < 4; e++)
                                S[i][nt][e] *= state_decay(sg, smisc, mt * 16 + gr + (e >> 1) * 8);
#pragma unroll
                        for (int kt = 0; kt < ATTNC_C / 16; kt++) {
                            frag a;
                            load_a_t(a, skd, ATTNC_LDK, mt * 16, kt * 16, lane);
#pragma unroll
                            for (int nt = 0; nt < ATTNC_NTSW; nt += 2) {
                                frag b;
                                load_b_kn(b, sv, ATTNC_LDV, state_nt(warp, nt) * 8, kt * 16, lane);
                                mma(S[i][nt], a, b, 0);
                                if (nt + 1 < ATTNC_NTSW)
                                    mma(S[i][nt + 1], a, b, 1);
                            }
                        }
                    }
                }
            }
            // Grouped phase 3: the group's total log2 decay per state row, sum of fminf(b_L, 0) as applied
            // above, kept in the group's record (V slice 0 writes it; each row by one thread).
            if (ATTNC_GROUPED && phase == 3 && v0 == 0)
                for (int c = tid; c < ATTNC_KP; c += ATTNC_THREADS) {
                    float l = 0.f;
                    if constexpr (ATTNC_TRANSITION == TR_SCALAR || ATTNC_TRANSITION == TR_CONST)
                        l = fminf(sg[ATTNC_C - 1], 0.f);
                    else if constexpr (ATTNC_TRANSITION == TR_DIAG)
                        l = fminf(sg[(ATTNC_C - 1) * ATTNC_KP + c], 0.f);
                    float *gl = p.ws_gl + group_slot(p, n, blockIdx.x / NVS, h) * ATTNC_KP + c;
                    *gl = (c0 == c_first ? 0.f : *gl) + l;
                }
            if constexpr (ATTNC_NORM == NORM_DENOM || ATTNC_NORM == NORM_MAXFLOOR) {
                for (int c = tid; c < ATTNC_KP; c += ATTNC_THREADS) {
                    float acc = sz[c] * state_decay(sg, smisc, c);
                    for (int r = 0; r < ATTNC_C; r++)
                        acc += attnc_elt_to_float(skd[r * ATTNC_LDK + c]);
                    sz[c] = acc;
                }
            }
        }
        // The next chunk's first barrier orders what follows: every tile and scratch row is written after
        // it, and the staging that its held rows land in is read only by the prologue, before this chunk
        // issued the next copies.  Not so for the stabiliser's m_in (tid 0 moves m_out into it) nor for a
        // normaliser's z, which the materialized phases store or load at the chunk's top.
        if constexpr (ATTNC_STABILIZED || ATTNC_NORM == NORM_DENOM || ATTNC_NORM == NORM_MAXFLOOR) {
            sync();
            if constexpr (ATTNC_STABILIZED)
                if (tid == 0)
                    smisc[0] = smisc[1];
        }
        // (the saved image's bulk copies have read ss before the next chunk's barriers let it be written)
        if ((SAVE_BULK && p.save_img && tid < ATTNC_KP) || (SAVE_UH_BULK && p.save_uh && tid < ATTNC_C))
            attnc_bulk_wait_read();
        // (the warp-specialised walk: this chunk's buffer is free; the last two are not filled again)
        if constexpr (WS)
            if ((c0 - c_first) / ATTNC_C + 2 < (c_end - c_first + ATTNC_C - 1) / ATTNC_C)
                attnc_bar_arrive(WS_BAR_EMPTY + ((c0 - c_first) / ATTNC_C & 1), ATTNC_WS_THREADS);
    }
    }

    // ---- the group's record (grouped phase 3) -----------------------------------------------------------
    if (ATTNC_GROUPED && phase == 3) {
        const size_t gs = group_slot(p, n, blockIdx.x / NVS, h);
#pragma unroll
        for (int i = 0; i < ATTNC_MTW; i++) {
            int mt = state_mt(warp, i);
            if (mt < ATTNC_MT)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int row = mt * 16 + gr + (e >> 1) * 8;
                    if (row >= ATTNC_K)
                        continue;
#pragma unroll
                    for (int nt = 0; nt < ATTNC_NTSW; nt++)
                        p.ws_gs[(gs * ATTNC_K + row) * ATTNC_V + v0 + state_nt(warp, nt) * 8 + tq * 2 + (e & 1)] = S[i][nt][e];
                }
        }
        if (ATTNC_NORM == NORM_DENOM && v0 == 0)
            for (int c = tid; c < ATTNC_K; c += ATTNC_THREADS)
                p.ws_gz[gs * ATTNC_KP + c] = sz[c];
        return;
    }

    // ---- final state ----------------------------------------------------------------------------------
    if (ATTNC_STATE_OUT && p.hT && (phase <= 1 || (phase == 5 && c_end == eos)) && h % (ATTNC_HOUT / ATTNC_HS) == 0) {
        // (the lane's rows and columns formed again, not the h0 load's offsets held across the walk: the
        // delta rule's warp-specialised consumers spilled them at 160 registers)
        const int ftid = attnc_opaque(tid), fwarp = ftid >> 5, fgr = (ftid & 31) >> 2, ftq = ftid & 3;
#pragma unroll
        for (int i = 0; i < ATTNC_MTW; i++) {
            int mt = state_mt(fwarp, i);
            if (mt < ATTNC_MT)
#pragma unroll
                for (int nt = 0; nt < ATTNC_NTSW; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        int row = mt * 16 + fgr + (e >> 1) * 8, col = v0 + state_nt(fwarp, nt) * 8 + ftq * 2 + (e & 1);
                        if (row < ATTNC_K)
                            p.hT[state_base + (size_t)row * ATTNC_V + col] = S[i][nt][e];
                    }
        }
        if constexpr (ATTNC_NORM == NORM_DENOM || ATTNC_NORM == NORM_MAXFLOOR)
            if (v0 == 0 && p.zT)
                for (int c = tid; c < ATTNC_K; c += ATTNC_THREADS)
                    p.zT[((size_t)n * ATTNC_HS + hs) * ATTNC_K + c] = sz[c];
        if constexpr (ATTNC_NORM == NORM_MAXFLOOR)
            if (v0 == 0 && tid == 0 && p.mT)
                p.mT[(size_t)n * ATTNC_HS + hs] = smisc[0] * LN2;
    }
}

// The entries.  The split delta rule's materialized unit holds its two lean bodies (and the state walk
// below), not the walk's; the grouped unit the walk (phase 5) and phase 3's lean body; ATTNC_WY_MIN_BLOCKS,
// ATTNC_OUT_MIN_BLOCKS, ATTNC_GROUP_MIN_BLOCKS: the CTAs per SM their layouts fit (codegen/cuda.c).  The
// warp-specialised unit (ATTNC_WS) has linear_ws_kernel.cuh's entry instead of the walk's.
#if !(ATTNC_DSPLIT && ATTNC_PHASES == ATTNC_PHASES_MATERIALIZED) && !ATTNC_WS
extern "C" __global__ void __launch_bounds__(ATTNC_THREADS, ATTNC_MIN_BLOCKS) ATTNC_ENTRY(attnc_params p)
{
    attnc_linear_body<0>(p);
}
#endif
#if ATTNC_DSPLIT && (ATTNC_PHASES == 0 || ATTNC_PHASES == ATTNC_PHASES_MATERIALIZED)
extern "C" __global__ void __launch_bounds__(ATTNC_THREADS, ATTNC_WY_MIN_BLOCKS) attnc_linear_wy(attnc_params p)
{
    attnc_linear_body<6>(p);
}
extern "C" __global__ void __launch_bounds__(ATTNC_THREADS, ATTNC_OUT_MIN_BLOCKS) attnc_linear_out(attnc_params p)
{
    attnc_linear_body<2>(p);
}
#endif
#if ATTNC_GROUPED && (ATTNC_PHASES == 0 || ATTNC_PHASES == ATTNC_PHASES_GROUPED)
extern "C" __global__ void __launch_bounds__(ATTNC_THREADS, ATTNC_GROUP_MIN_BLOCKS) attnc_linear_group(attnc_params p)
{
    attnc_linear_body<3>(p);
}
#endif
#endif

// ---- the split delta rule's state walk (ATTNC_DSPLIT; the materialized schedule, passes/schedule.c) ------
// Phase 6 of the chunk kernel stored, for every chunk in parallel, U = T diag(beta) V (fp32), -W, Kd (tile
// elements) and the chunk's state decay e^{b_L}.  This walk carries the state through the chunks with only
// what depends on it:  U_hat = U + (-W) S_in,  S_out = e^{b_L} S_in + Kd^T U_hat,  storing every chunk's
// S_in image and U_hat for the output pass (phase 2).  It holds the transposed state S^T, one warp per 16
// columns of V (rows of S^T, K of them a row in its accumulators), so that S^T is the A operand of the
// first product straight from the accumulators and U_hat^T of the second: no image round trip through
// shared memory on the walk's critical path, and a grid of V / (16 ATTNC_LS_WARPS) CTAs per sequence and
// head where the walk has one.  The next ATTNC_LS_AHEAD chunks' -W, Kd and U slices are on their way
// (cp.async) into buffers of their own while this chunk is worked on (two ahead: 1.195 -> 1.116 ms at
// T = 32768 against one), and so is each chunk's decay (a load at the chunk's start still held up the
// state's decay: 1.108 -> 1.006 ms).  The products and their order are phase 0's (U_hat, then the state
// update, each summed over the same index in the same steps): the same bits on the CPU emulation.
#if ATTNC_WANT(1) && ATTNC_DSPLIT && (ATTNC_PHASES == 0 || ATTNC_PHASES == ATTNC_PHASES_MATERIALIZED)
#define ATTNC_LS_BV (16 * ATTNC_LS_WARPS)   // V columns per CTA
#define ATTNC_LS_LDU (ATTNC_LS_BV + 4)      // U slice rows (fp32)
#define ATTNC_LS_LDI 24                     // a warp's saved image rows (16 columns; 48 bytes: no bank conflicts)
struct attnc_ls_layout {
    static constexpr unsigned tile_k = ATTNC_C * ATTNC_LDK * sizeof(elt);
    static constexpr unsigned w = 0;                                   // -W [C][LDK], per buffer
    static constexpr unsigned kd = w + tile_k;                         // Kd
    static constexpr unsigned u = kd + tile_k;                         // U's columns of this CTA [C][LDU] (fp32)
    static constexpr unsigned bl = u + ATTNC_C * ATTNC_LS_LDU * 4;     // the chunk's decay e^{b_L} (fp32)
    static constexpr unsigned buffer = bl + 16;
    // training (ATTNC_SAVES 1): each warp's S_in turned to the backward's [KP][V] rows, its 16 columns
    static constexpr unsigned img = (ATTNC_LS_AHEAD + 1) * buffer;
    static constexpr unsigned img_warp = ATTNC_SAVES == 1 ? ATTNC_KP * ATTNC_LS_LDI * sizeof(elt) : 0;
    // and its U_hat rows [C][16 columns] for the backward's saved U_hat
    static constexpr unsigned uh = img + ATTNC_LS_WARPS * img_warp;
    static constexpr unsigned uh_warp = ATTNC_SAVES == 1 ? ATTNC_C * ATTNC_LS_LDI * sizeof(elt) : 0;
    static constexpr unsigned bytes = uh + ATTNC_LS_WARPS * uh_warp;
    static_assert(img % 16 == 0 && ATTNC_LS_LDI * sizeof(elt) % 16 == 0, "16-byte rows");
};

// One chunk's -W, Kd, U slice and decay into a buffer, then one commit: a group for every chunk, empty past
// the sequence's end (`any` false).
__device__ __forceinline__ void ls_issue(const attnc_params &p, size_t slot, int vc0, unsigned char *buf, bool any)
{
    using L = attnc_ls_layout;
    constexpr int KU = ATTNC_KP * (int)sizeof(elt) / 16, UU = ATTNC_LS_BV * 4 / 16;   // 16-byte units a row
    constexpr int THREADS = ATTNC_LS_WARPS * 32;
    const size_t tile = slot * ATTNC_C * ATTNC_KP;
    attnc_cp_rows<ATTNC_C, KU, THREADS>(buf + L::w, ATTNC_LDK * sizeof(elt), p.ws_w + tile, ATTNC_KP * sizeof(elt), any);
    attnc_cp_rows<ATTNC_C, KU, THREADS>(buf + L::kd, ATTNC_LDK * sizeof(elt), p.ws_kd + tile, ATTNC_KP * sizeof(elt), any);
    attnc_cp_rows<ATTNC_C, UU, THREADS>(buf + L::u, ATTNC_LS_LDU * 4, p.ws_u + slot * ATTNC_C * ATTNC_V + vc0, ATTNC_V * 4,
                                        any);
    if (any && threadIdx.x == 0)
        attnc_cp4(buf + L::bl, p.ws_bl + slot);
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

// SAVE: the training walk, which also writes the backward's images (attnc_linear_states_save, launched only
// with p.save_img).  The inference walk is a kernel of its own so that it carries none of that code: with it
// compiled in and skipped, the forward's split walk took 0.19 ms more at T = 32768 (bench/RESULTS.md).
template <bool SAVE>
__device__ __forceinline__ void linear_states_walk(const attnc_params &p)
{
    extern __shared__ __align__(128) unsigned char smem[];
    using L = attnc_ls_layout;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gr = lane >> 2, tq = lane & 3;
    const int vc0 = blockIdx.x * ATTNC_LS_BV, vw = vc0 + warp * 16;   // the CTA's and the warp's V columns
    const int h = blockIdx.y, n = blockIdx.z, hs = h / (ATTNC_HOUT / ATTNC_HS);
    int bos, eos;
    attnc_seq_bounds(p.cu_seqlens, p.seqlen, n, bos, eos);
    const size_t state_base = ((size_t)n * ATTNC_HS + hs) * ATTNC_K * ATTNC_V;
    // S^T: rows vw + gr (+ 8), columns (K) nt * 8 + 2 tq (+ 1); padded K columns stay 0 (Kd's are 0).
    float St[ATTNC_KP / 8][4];
#pragma unroll
    for (int nt = 0; nt < ATTNC_KP / 8; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int k = nt * 8 + tq * 2 + (e & 1), v = vw + gr + (e >> 1) * 8;
            St[nt][e] = ATTNC_STATE_IN && p.h0 && k < ATTNC_K ? p.h0[state_base + (size_t)k * ATTNC_V + v] : 0.f;
        }
    // Every iteration commits one group of copies (empty past the end), so that waiting for all but the
    // newest AHEAD groups is waiting for this chunk's.
    const size_t slot0 = (size_t)(bos / ATTNC_C + n) * ATTNC_HOUT + h;
#pragma unroll
    for (int a = 0; a < ATTNC_LS_AHEAD; a++)
        ls_issue(p, slot0 + a * ATTNC_HOUT, vc0, smem + a * L::buffer, bos + a * ATTNC_C < eos);
#pragma unroll 1
    for (int c0 = bos, it = 0; c0 < eos; c0 += ATTNC_C, it++) {
        const size_t slot = slot0 + (size_t)it * ATTNC_HOUT;
        const unsigned char *buf = smem + (it % (ATTNC_LS_AHEAD + 1)) * L::buffer;
        asm volatile("cp.async.wait_group %0;\n" ::"n"(ATTNC_LS_AHEAD - 1) : "memory");
        __syncthreads();   // this chunk's buffer has landed; every warp is done with the one refilled next
        ls_issue(p, slot + ATTNC_LS_AHEAD * ATTNC_HOUT, vc0,
                 smem + ((it + ATTNC_LS_AHEAD) % (ATTNC_LS_AHEAD + 1)) * L::buffer, c0 + ATTNC_LS_AHEAD * ATTNC_C < eos);
        const elt *sw = (const elt *)(buf + L::w), *skd = (const elt *)(buf + L::kd);
        const float *su = (const float *)(buf + L::u);
        const float decay = *(const float *)(buf + L::bl);
        // S_in's image for the output pass, [slot][V][KP]
        frag_rows_store<ATTNC_KP / 8>(p.ws_s + (slot * ATTNC_V + vw) * ATTNC_KP, ATTNC_KP, 0, 0, St, lane);
        // Training (p.save_img, as the sequential walk saves): at each chunk that starts one of the backward's,
        // S_in's bf16 image as the backward stores it, [KP][V] per backward slot and output head.  The warp
        // holds S^T: its 16 columns go through its own rows of shared memory (one element a store), then out 16
        // bytes at a time.  The same rounding as the image above.  Off the walk's critical path: the rows are
        // written after U_hat's product is issued and copied out after the state's.
        const bool saving = SAVE && ((c0 - bos) & ((1 << p.save_shift) - 1)) == 0;
        elt *rows = (elt *)(smem + L::img + warp * L::img_warp), *uh_rows = (elt *)(smem + L::uh + warp * L::uh_warp);
        // U_hat^T = U^T + S_in^T (-W)^T   (16 x C)
        float Uh[ATTNC_C / 8][4];
#pragma unroll
        for (int nt = 0; nt < ATTNC_C / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                Uh[nt][e] = su[(nt * 8 + tq * 2 + (e & 1)) * ATTNC_LS_LDU + warp * 16 + gr + (e >> 1) * 8];
        mm_regs<ATTNC_C / 8, ATTNC_KP / 16, false>(Uh, St, sw, ATTNC_LDK, 0, lane);
        if (saving)
#pragma unroll
            for (int nt = 0; nt < ATTNC_KP / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    rows[(nt * 8 + tq * 2 + (e & 1)) * ATTNC_LS_LDI + gr + (e >> 1) * 8] = attnc_float_to_elt(St[nt][e]);
        // U_hat for the output pass, [slot][V][C], as the tiles round it
        frag_rows_store<ATTNC_C / 8>(p.ws_uh + (slot * ATTNC_V + vw) * ATTNC_C, ATTNC_C, 0, 0, Uh, lane);
        if (SAVE)   // and its rows [C][16] for the backward's saved U_hat, the same rounding (written out below)
#pragma unroll
            for (int nt = 0; nt < ATTNC_C / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    uh_rows[(nt * 8 + tq * 2 + (e & 1)) * ATTNC_LS_LDI + gr + (e >> 1) * 8] = attnc_float_to_elt(Uh[nt][e]);
        // S_out^T = e^{b_L} S_in^T + U_hat^T Kd
#pragma unroll
        for (int nt = 0; nt < ATTNC_KP / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                St[nt][e] *= decay;
        mm_regs<ATTNC_KP / 8, ATTNC_C / 16>(St, Uh, skd, ATTNC_LDK, 0, lane);
        if (saving) {
            __syncwarp();
            elt *dst = (elt *)p.save_img + ((size_t)((c0 >> p.save_shift) + n) * ATTNC_HOUT + h) * ATTNC_KP * ATTNC_V + vw;
#pragma unroll
            for (int i = lane; i < ATTNC_KP * 2; i += 32)
                *reinterpret_cast<attnc_u4 *>(dst + (size_t)(i >> 1) * ATTNC_V + (i & 1) * 8) =
                    *reinterpret_cast<const attnc_u4 *>(rows + (i >> 1) * ATTNC_LS_LDI + (i & 1) * 8);
            __syncwarp();   // (the rows are written again only at the next saved chunk)
        }
        if (SAVE && p.save_uh) {   // the U_hat rows, laid out as save_uhat_rows lays them
            __syncwarp();
            const int nrows = min(ATTNC_C, eos - c0);
            elt *dst = saved_uhat_row0(p, c0, bos, n, h) + vw;
            for (int i = lane; i < nrows * 2; i += 32)
                *reinterpret_cast<attnc_u4 *>(dst + (size_t)(i >> 1) * ATTNC_V + (i & 1) * 8) =
                    *reinterpret_cast<const attnc_u4 *>(uh_rows + (i >> 1) * ATTNC_LS_LDI + (i & 1) * 8);
            __syncwarp();   // (before the next chunk's rows)
        }
    }
    if (ATTNC_STATE_OUT && p.hT && h % (ATTNC_HOUT / ATTNC_HS) == 0)
#pragma unroll
        for (int nt = 0; nt < ATTNC_KP / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int k = nt * 8 + tq * 2 + (e & 1), v = vw + gr + (e >> 1) * 8;
                if (k < ATTNC_K)
                    p.hT[state_base + (size_t)k * ATTNC_V + v] = St[nt][e];
            }
}

extern "C" __global__ void __launch_bounds__(ATTNC_LS_WARPS * 32) attnc_linear_states(attnc_params p)
{
    linear_states_walk<false>(p);
}
#if ATTNC_SAVES == 1
extern "C" __global__ void __launch_bounds__(ATTNC_LS_WARPS * 32) attnc_linear_states_save(attnc_params p)
{
    linear_states_walk<true>(p);
}
#endif
#endif
