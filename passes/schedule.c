/* passes/schedule.c: the schedule pass.
 *
 * Picks the kernels the generator emits; the launcher picks among them by the actual shape.
 *   causal linear part   SEQUENTIAL: one CTA per (sequence, head, V slice) walks its chunks with the
 *                        state on chip and writes outputs as it goes; no state goes through memory.  Its
 *                        parallelism is N * H * V/v_tile CTAs.
 *                        MATERIALIZED (not generated yet): for shapes where that is far below the SM
 *                        count, a state pass would store every chunk's S_in and an output pass would run
 *                        all chunks in parallel; until it exists min_ctas stays 0 (never switch).
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
        p->schedules |= m->mask == IR_MASK_NONE ? IR_SCHED_BIDIRECTIONAL : IR_SCHED_SEQUENTIAL;
    if (m->softmax.present)
        p->schedules |= IR_SCHED_WINDOWED;
    (void)opt;
    p->min_ctas = 0;
    p->stage = IR_PLAN_SCHEDULED;
    return true;
}
