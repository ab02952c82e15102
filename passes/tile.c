/* passes/tile.c: the tiling pass.
 *
 * The CUDA kernels use mma.sync m16n8k16 (bf16/fp16 in, fp32 accumulate).  A chunk of C rows is cut into
 * C/16 row groups, one warp each; a V slice of v_tile columns is one CTA's share of the state (K x
 * v_tile fp32 accumulators spread over the CTA's warps).  Choices:
 *   - K is padded to a multiple of 16 (the mma reduction step); padded channels are zero;
 *   - all of V in one CTA of 8 warps where the state fits their registers (below); else V is split into
 *     64-column slices where it divides, for parallelism (B*H*V/64 CTAs; for the delta
 *     family too, since only K must stay whole there: algorithms.md 6, "Head dimensions"); RMS and
 *     LayerNorm outputs need whole rows, so their slice is all of V and extra column groups of warps
 *     share the columns; other slices get two column groups of warps (8 warps for a 64-row chunk);
 *   - the state's accumulators per thread, (K/16 / warps) * (v_tile/8) * 4, are kept at or under 64
 *     by narrowing the slice, or, where rows must stay whole, by splitting the slice's columns among
 *     groups of warps (state_groups), so the kernels do not spill.
 *   - the operands: bf16 (fp16 for fp16 inputs) tiles and mma; fp32 tiles and three bf16 mma per product
 *     (bf16x3) for fp32 inputs, which doubles the tiles' bytes (see choose_operands);
 *   - when the tiles and the staging area of the raw inputs exceed a CTA's shared memory (227 KB), the
 *     chunk is halved (KDA at K = 128: 64 -> 32) and the column groups doubled, which keeps 8 warps;
 * The generator handles chunks of 16, 32 and 64 rows; a larger `chunk` is an error here, with its span.
 */
#include <limits.h>

#include "passes.h"

#define MAX_STATE_REGS 64
#define MAX_SMEM (227u * 1024) /* dynamic shared memory per CTA on sm_80 and sm_90 (opt-in) */

uint32_t tile_round_up(uint32_t x, uint32_t to)
{
    return (x + to - 1) / to * to;
}

static uint32_t state_regs(uint32_t k_pad, uint32_t v_tile, uint32_t warps, uint32_t groups)
{
    uint32_t mtiles = k_pad / 16, group_warps = warps / groups;
    return (mtiles + group_warps - 1) / group_warps * (v_tile / 8 / groups) * 4;
}

/* With all of V in one CTA: the chunk a class takes (per-channel gates and the stabiliser at most 32,
 * see pass_tile). */
static uint32_t whole_v_chunk(const ir_plan *p)
{
    return p->chunk > 32 && (p->transition == IR_TR_DIAG || p->stabilized) ? 32 : p->chunk;
}

/* Whether a CTA of 8 warps takes all of V (see pass_tile): the state's accumulators fit (at most 64 a
 * thread), the columns split into 8 / rows groups of 8, and not KDA's class (per-channel gates and the
 * delta rule). */
static bool whole_v(const ir_plan *p, ir_shape sh)
{
    uint32_t rows = whole_v_chunk(p) / 16;
    return !(p->transition == IR_TR_DIAG && p->householder) && sh.V % (64 / rows) == 0 &&
           state_regs(p->k_pad, sh.V, 8, 1) <= MAX_STATE_REGS;
}

/* Column groups for norms over whole rows (the slice is all of V): the count whose estimate of live
 * accumulators per thread (outputs V/groups/8*4, scores C/8*4, state K*V/threads) leaves the most
 * registers under the cap that the CTA's thread count sets (65536 per SM, 255 per thread at most).
 * K = V = 128 gets 2 groups (8 warps); K = 96, V = 192 gets 2 too (3 groups, 12 warps, spilled at 168). */
static uint32_t whole_row_groups(uint32_t k_pad, uint32_t V, uint32_t rows)
{
    uint32_t best = 1;
    int best_margin = INT_MIN;
    for (uint32_t cg = 1; cg <= 8; cg++) {
        uint32_t threads = rows * cg * 32;
        if (V % (8 * cg) || threads > 1024)
            continue;
        uint32_t cap = 65536 / threads / 8 * 8;
        cap = cap > 255 ? 255 : cap;
        uint32_t live = V / cg / 8 * 4 + rows * 16 / 8 * 4 + k_pad * V / threads;
        int margin = (int)cap - (int)live;
        if (margin > best_margin) {
            best = cg;
            best_margin = margin;
        }
    }
    return best;
}

/* The linear kernel's shared-memory layout in bytes: the same sums as attnc_smem_layout_t<lean> in
 * codegen/linear_kernel.cuh (the generated source asserts that the two agree).  lean 0: the walk's, every
 * tile; 6 and 2: the split delta rule's WY pass (no Q tile, the image only as large as U's staged rows) and
 * output pass (no decayed keys, no K * gamma, no W); 3: the grouped phase 3 (no Q tile, no image, no
 * per-block keys, no shared scores). */
unsigned tile_linear_smem_bytes_lean(const ir_module *m, unsigned lean)
{
    const ir_plan *p = &m->plan;
    unsigned C = p->chunk, KP = p->k_pad, BV = p->v_tile;
    bool diag = p->transition == IR_TR_DIAG, delta = p->householder, wy = lean == 6, out = lean == 2, grp = lean == 3;
    unsigned ldk = KP + 8, ldv = BV + 8, ldc = C + 8, ldf = C + 1;
    const unsigned elt_bytes = ir_operand_bytes(p->operands);
    unsigned tile_k = C * ldk * elt_bytes;
    unsigned off = (wy || grp ? 0 : tile_k) + tile_k;  /* q, k */
    off += out ? 0 : tile_k;                           /* kd */
    off += delta && !out ? 2 * tile_k : 0;             /* qg: K * gamma for W; w */
    off += diag && !grp ? tile_k : 0;                  /* ke */
    off += C * ldv * elt_bytes;                        /* v */
    /* s: the image of S_in [KP][ldv]; the split delta rule's output pass reads it as [V][ldk] (S_in^T), its
     * WY pass stages U's rows there ([C][V + 4] fp32) */
    unsigned V = ir_module_shape(m).V, s_elems = KP * ldv;
    if (ir_plan_split_delta(m) && V * ldk > s_elems)
        s_elems = V * ldk;
    if (wy)
        s_elems = (C * (V + 4) * 4 + elt_bytes - 1) / elt_bytes;
    if (grp)
        s_elems = 0;
    off += (s_elems * elt_bytes + 15) / 16 * 16;
    unsigned g_bytes = (diag ? C * KP : C) * 4;
    off += (g_bytes + 15) / 16 * 16;                   /* g */
    off += C * 4 * 3;                                  /* beta, ig, rowq */
    off += C * p->col_groups * 2 * 4;                  /* rowred */
    off += KP * 4 + 64;                                /* z, misc */
    off += delta ? 2 * C * ldf * 4 : 0;                /* af, tf */
    off += delta ? (C / 16 - 1) * 256 * 4 : 0;         /* x */
    off += delta ? C * ldc * elt_bytes : 0;            /* tb */
    off += p->shared_scores && !delta && !grp ? C * ldc * elt_bytes : 0;   /* pt (the delta rule's in tb) */
    off += p->shared_scores && !grp ? C * p->col_groups * C * 4 : 0;       /* pf: P's partials, fp32, a row group's warps each */
    return (off + 127) / 128 * 128;
}

unsigned tile_linear_smem_bytes(const ir_module *m)
{
    return tile_linear_smem_bytes_lean(m, 0);
}

unsigned tile_stage_bytes(const ir_module *m, uint32_t tensor)
{
    const ir_tensor *t = &m->tensors[tensor];
    return (m->plan.chunk * t->len * ir_dtype_bytes(t->dtype) + 15) / 16 * 16;
}

/* An upper bound of the staging area: one chunk of every per-token input's rows. */
static unsigned stage_bound(const ir_module *m)
{
    unsigned bytes = 0;
    for (uint32_t i = 0; i < m->ntensors; i++)
        if (m->tensors[i].per_token)
            bytes += tile_stage_bytes(m, i);
    return bytes;
}

/* The CTA's whole shared memory under the plan as it stands: the tiles and the staging area. */
static unsigned plan_smem(const ir_module *m)
{
    return tile_linear_smem_bytes(m) + stage_bound(m);
}

/* The tensor cores' operands: fp32 inputs that are vectors per token (rows of q, k, v, gates; not a
 * per-head scalar like Mamba-2's dt) ask for fp32 accuracy, so their tiles stay fp32 and each product is
 * split in three bf16 mma; else fp16 tiles where any per-token input is fp16, bf16 otherwise. */
static ir_operands choose_operands(const ir_module *m)
{
    bool fp16 = false;
    for (uint32_t i = 0; i < m->ntensors; i++) {
        const ir_tensor *t = &m->tensors[i];
        if (t->per_token && t->dtype == IR_DT_FP32 && t->len > 1)
            return IR_OPERANDS_BF16X3;
        fp16 |= t->per_token && t->dtype == IR_DT_FP16;
    }
    return fp16 ? IR_OPERANDS_FP16 : IR_OPERANDS_BF16;
}

bool pass_tile(ir_module *m, const pass_options *opt, attnc_diags *diags)
{
    (void)opt;
    ir_plan *p = &m->plan;
    ir_shape sh = ir_module_shape(m);
    p->operands = (uint8_t)choose_operands(m);
    if (p->chunk > 64 || p->chunk < 16) {
        attnc_error(diags, m->chunk_span.end ? m->chunk_span : m->span,
                    "the CUDA generator handles chunks of 16, 32 or 64 tokens, not %u", p->chunk);
        return false;
    }
    p->sm_tile = m->softmax.present ? 64 : 0;
    if (!m->linear.present) {
        p->k_pad = tile_round_up(sh.K, 16);
        p->v_tile = sh.V;
        p->col_groups = 1;
        p->state_groups = 1;
        p->warps = p->chunk / 16;
        p->stage = IR_PLAN_TILED;
        return true;
    }
    bool whole_rows = m->linear.norm == IR_NORM_RMS || m->linear.norm == IR_NORM_LAYER;
    p->k_pad = tile_round_up(sh.K, 16);
    uint32_t rows = p->chunk / 16;
    if (whole_rows) {
        p->v_tile = sh.V;
        p->col_groups = whole_row_groups(p->k_pad, sh.V, rows);
    } else if (whole_v(p, sh)) {
        /* All of V in one CTA of 8 warps (8 / rows column groups) where its state fits their registers
         * (K = V = 128): each token's roles, decayed keys and factors are formed once, not once per V
         * slice.  On the H200 (bench/bench.py --no-backward, B T = 65536, H = 16, 2026-11-30): mamba2 at
         * chunk 64 1.098 -> 0.801 ms at T = 8192, 0.947 -> 0.808 at 2048; gla 4.07 -> 3.91 at chunk 32
         * (3.56 at 64, but 252 registers there: gqa_gla spilled); the delta rule at chunk 32 2.11 -> 1.88
         * at 8192 but 7.04 -> 7.35 at 32768, where its grid (one CTA per sequence and head) leaves 100 of
         * 132 SMs idle.  Per-channel gates and the stabiliser hold more per thread (the gates' factors,
         * the running max): they take all of V at chunk 32 (4 column groups), which halves the outputs'
         * and scores' accumulators (at 64 they spilled on sm_80 or sm_90a); KDA (per-channel gates and
         * the delta rule) spilled even so and keeps its slices. */
        p->chunk = whole_v_chunk(p);
        p->subchunk = p->subchunk > p->chunk ? p->chunk : p->subchunk;
        rows = p->chunk / 16;
        p->v_tile = sh.V;
        p->col_groups = 8 / rows;
    } else {
        p->v_tile = sh.V % 64 == 0 ? 64 : sh.V;
        /* Two column groups: 8 warps for a 64-row chunk, so that each scheduler has two warps to switch
         * between (one warp per scheduler left the kernel latency-bound, IPC 1.1 under ncu). */
        p->col_groups = p->v_tile % 32 == 0 ? 2 : 1;
    }
    p->warps = rows * p->col_groups;
    /* Shared memory: halve the chunk until the tiles and the staging area fit (the chunkwise form is
     * exact for any chunk, so this changes speed, not results). */
    while (p->chunk > 16 && plan_smem(m) > MAX_SMEM) {
        p->chunk /= 2;
        p->subchunk = p->subchunk > p->chunk ? p->chunk : p->subchunk;
        /* Fewer row groups: more column groups keep the warp count (and split the state wider). */
        if (!whole_rows && p->v_tile % (16 * p->col_groups) == 0)
            p->col_groups *= 2;
        p->warps = p->chunk / 16 * p->col_groups;
    }
    p->state_groups = 1;
    while (!whole_rows && p->v_tile % 16 == 0 && sh.V % (p->v_tile / 2) == 0 &&
           state_regs(p->k_pad, p->v_tile, p->warps, 1) > MAX_STATE_REGS)
        p->v_tile /= 2;
    /* Whole rows keep the slice; more warps than the state has m-tiles then split its columns instead
     * (K = 96, V = 192 with LayerNorm: 8 warps, 6 m-tiles; one group would leave 6 warps holding 96
     * accumulators each and 2 none, four groups give every warp 72, and the kernel does not spill). */
    for (uint32_t sg = 2; state_regs(p->k_pad, p->v_tile, p->warps, 1) > MAX_STATE_REGS && sg <= p->warps; sg *= 2)
        if (p->warps % sg == 0 && (p->v_tile / 8) % sg == 0 &&
            state_regs(p->k_pad, p->v_tile, p->warps, sg) <
                state_regs(p->k_pad, p->v_tile, p->warps, p->state_groups))
            p->state_groups = sg;
    if (plan_smem(m) > MAX_SMEM) {
        attnc_error(diags, m->span, "the kernel needs %u bytes of shared memory, more than the %u a CTA can have",
                    plan_smem(m), MAX_SMEM);
        return false;
    }
    /* All of V in one CTA: two state groups, each warp two m-tiles and half the columns (the same 64
     * accumulators), so that the state update loads each k-step's V fragments once for two m-tiles. */
    if (!whole_rows && p->v_tile == sh.V && p->state_groups == 1 && p->warps == 8 && (p->v_tile / 8) % 2 == 0 &&
        p->k_pad / 16 >= 8)
        p->state_groups = 2;
    if (p->v_tile % (8 * p->col_groups)) {
        attnc_error(diags, m->span, "V = %u cannot be tiled in steps of 8 columns", sh.V);
        return false;
    }
    /* Per-channel gates: the column groups share the scores P (their pairwise factors cost a sub-chunk of
     * exponentials per block), each summing a share of the channels.  On the H200 (.dev A/B, one call,
     * 2026-11-30, T = 8192) gla went 3.81 -> 2.52 ms with a share of the key blocks each, and 3.15 -> 3.08
     * at T = 32768 with a share of the channels (2026-12-01); with scalar decay the barrier and the tile
     * cost more than they saved (mamba2 0.804 -> 0.85, the delta rule 1.774 -> 1.81). */
    p->shared_scores = p->transition == IR_TR_DIAG && ir_plan_can_share_scores(m);
    if (p->shared_scores && plan_smem(m) > MAX_SMEM)
        p->shared_scores = false;
    p->stage = IR_PLAN_TILED;
    return true;
}
