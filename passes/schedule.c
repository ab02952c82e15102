/* passes/schedule.c: the schedule pass.
 *
 * Picks the kernels the generator emits; the launcher picks among them by the actual shape.
 *   causal linear part   SEQUENTIAL: one CTA per (sequence, head, V slice) walks its chunks with the
 *                        state on chip and writes outputs as it goes; no state goes through memory.  Its
 *                        parallelism is N * H * V/v_tile CTAs.
 *                        MATERIALIZED: when that is below min_ctas (and the sequences are several
 *                        chunks long and of one length), a state pass (the same walk, without outputs)
 *                        stores every chunk's S_in in a workspace and an output pass runs all chunks
 *                        in parallel.  Both are phases of the one generated kernel (a launch
 *                        parameter), so choosing costs no second compilation.  The state pass is the
 *                        same walk as the sequential kernel minus the outputs, and on the H200 it costs
 *                        about as much (bench/RESULTS.md, 2026-11-29: simple_gla at T = 32768, 64 CTAs,
 *                        sequential 3.75 ms, materialized 4.98 ms; gla 15.4 against 11.7 ms).  So the
 *                        launcher switches by itself only for per-channel gates, whose outputs (the
 *                        sub-chunked scores) are most of the work: min_ctas = 100 there (below it most of
 *                        a current GPU's SMs, 108 on A100 and 132 on H100/H200, would idle), 0 (never)
 *                        for the other classes, which can still ask for it per launch.
 *   mask none            BIDIRECTIONAL: the same CTA sums the whole sequence's state, then reads it.
 *   softmax part         WINDOWED: query tiles in parallel, each over its band of key tiles.
 */
#include "passes.h"

bool pass_schedule(ir_module *m, const pass_options *opt, attnc_diags *diags)
{
    (void)diags;
    ir_plan *p = &m->plan;
    p->schedules = 0;
    if (m->linear.present)
        p->schedules |= m->mask == IR_MASK_NONE ? IR_SCHED_BIDIRECTIONAL : IR_SCHED_SEQUENTIAL | IR_SCHED_MATERIALIZED;
    if (m->softmax.present)
        p->schedules |= IR_SCHED_WINDOWED;
    (void)opt;
    p->min_ctas = (p->schedules & IR_SCHED_MATERIALIZED) && p->transition == IR_TR_DIAG ? 100 : 0;
    p->stage = IR_PLAN_SCHEDULED;
    return true;
}
