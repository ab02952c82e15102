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
 *                        about as much, so today the launcher never switches by itself (min_ctas 0);
 *                        a launch can still ask for it.  Per-channel gates had min_ctas 100 while their
 *                        chunk was 64 (gla at T = 32768, 64 CTAs: sequential 15.4 ms, materialized
 *                        11.7 ms, bench/RESULTS.md 2026-11-29); at chunk 32 the sequential walk wins
 *                        (10.78 against 11.52 ms on 2026-11-30, 9.91 against 10.79 ms after the SFU
 *                        forms), as it does for every other class (delta_rule 8.47 against 11.04 ms).
 *                        The delta rule (ir_plan_split_delta) splits it three ways instead: phase 6 forms
 *                        every chunk's WY factors at once (U, -W, Kd: all that does not depend on the state),
 *                        a lean state walk of its own kernel (attnc_linear_states) carries the state in
 *                        slices of 16 or 32 columns of V (4-8 times the walk's CTAs) forming U_hat = U - W S_in
 *                        and S_out, storing S_in and U_hat per chunk, and phase 2 writes every chunk's
 *                        outputs from them.  The launcher takes it below min_ctas = 100 CTAs of the walk.
 *                        GROUPED (additive updates: no delta rule, no stabiliser): the sequence splits
 *                        into groups of chunks; a first phase walks every group from a zero state at once
 *                        and records the group's own state, z and total log decay (fp32, one record per
 *                        group); a second walks every group again from its S_in, composed from h0 and
 *                        the earlier groups' records (S_in(g+1) = Gamma_g S_in(g) + S_g: the update is
 *                        linear in the state and its transition diagonal), writing outputs.  Twice the
 *                        state work of the sequential walk, for groups-times its parallelism: the
 *                        launcher takes it when the sequential grid leaves SMs idle (few long sequences).
 *                        The delta rule's transition is a K x K matrix per chunk (no cheap composition),
 *                        and mLSTM's stabiliser rescales by a running max: both stay sequential.
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
    if (m->linear.present && m->mask != IR_MASK_NONE && !p->householder && !p->stabilized)
        p->schedules |= IR_SCHED_GROUPED;
    if (m->softmax.present)
        p->schedules |= IR_SCHED_WINDOWED;
    (void)opt;
    p->min_ctas = ir_plan_split_delta(m) ? 100 : 0;
    p->stage = IR_PLAN_SCHEDULED;
    return true;
}
