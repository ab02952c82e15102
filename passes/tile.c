/* passes/tile.c: the tiling pass.
 *
 * The CUDA kernels use mma.sync m16n8k16 (bf16/fp16 in, fp32 accumulate).  A chunk of C rows is cut into
 * C/16 row groups, one warp each; a V slice of v_tile columns is one CTA's share of the state (K x
 * v_tile fp32 accumulators spread over the CTA's warps).  Choices:
 *   - K is padded to a multiple of 16 (the mma reduction step); padded channels are zero;
 *   - V is split into 64-column slices where it divides, for parallelism (B*H*V/64 CTAs; for the delta
 *     family too, since only K must stay whole there: algorithms.md 6, "Head dimensions"); RMS and
 *     LayerNorm outputs need whole rows, so their slice is all of V and extra column groups of warps
 *     share the columns;
 *   - the state's accumulators per thread, (K/16 / warps) * (v_tile/8) * 4, are kept at or under 64
 *     by narrowing the slice, so the kernels do not spill.
 * The generator handles chunks of 16, 32 and 64 rows; a larger `chunk` is an error here, with its span.
 */
#include "passes.h"

#define MAX_STATE_REGS 64

static uint32_t round_up(uint32_t x, uint32_t to)
{
    return (x + to - 1) / to * to;
}

static uint32_t state_regs(uint32_t k_pad, uint32_t v_tile, uint32_t warps)
{
    uint32_t mtiles = k_pad / 16;
    return (mtiles + warps - 1) / warps * (v_tile / 8) * 4;
}

bool pass_tile(ir_module *m, const pass_options *opt, attnc_diags *diags)
{
    (void)opt;
    ir_plan *p = &m->plan;
    ir_shape sh = ir_module_shape(m);
    if (p->chunk > 64 || p->chunk < 16) {
        attnc_error(diags, m->chunk_span.end ? m->chunk_span : m->span,
                    "the CUDA generator handles chunks of 16, 32 or 64 tokens, not %u", p->chunk);
        return false;
    }
    p->sm_tile = m->softmax.present ? 64 : 0;
    if (!m->linear.present) {
        p->k_pad = round_up(sh.K, 16);
        p->v_tile = sh.V;
        p->col_groups = 1;
        p->warps = p->chunk / 16;
        p->stage = IR_PLAN_TILED;
        return true;
    }
    bool whole_rows = m->linear.norm == IR_NORM_RMS || m->linear.norm == IR_NORM_LAYER;
    p->k_pad = round_up(sh.K, 16);
    uint32_t rows = p->chunk / 16;
    if (whole_rows) {
        p->v_tile = sh.V;
        p->col_groups = sh.V % 64 == 0 ? sh.V / 64 : 1;
    } else {
        p->v_tile = sh.V % 64 == 0 ? 64 : sh.V;
        p->col_groups = 1;
        while (p->v_tile % 16 == 0 && sh.V % (p->v_tile / 2) == 0 &&
               state_regs(p->k_pad, p->v_tile, rows) > MAX_STATE_REGS)
            p->v_tile /= 2;
    }
    p->warps = rows * p->col_groups;
    if (p->v_tile % (8 * p->col_groups)) {
        attnc_error(diags, m->span, "V = %u cannot be tiled in steps of 8 columns", sh.V);
        return false;
    }
    p->stage = IR_PLAN_TILED;
    return true;
}
