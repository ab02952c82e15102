/* passes/fuse.c: the fusion pass.
 *
 * Nothing a spec computes per token runs as its own pass over memory: feature maps, the L2 norm, scales,
 * gate activations and beta are evaluated in the kernel's prologue, chunk by chunk, from the raw inputs
 * (the chunk-local cumulative sum of the gate and the output normaliser are part of the kernel body).
 * This pass decides, per role, the cheapest way in:
 *   direct   the role is an input tensor as stored: its tile is copied as is (vectorised loads);
 *   scaled   the role is such an input times a compile-time constant (`q * K^-0.5`): the tile is copied
 *            as is and the constant is folded into the score and output factors, so no pass over the
 *            tile multiplies it;
 *   mapped   anything else: the prologue evaluates the value DAG per token, one warp per token, lanes
 *            over channels (vector ops such as l2norm reduce across the warp).
 * Only the query roles are scaled (a scale on the key would also have to reach the state write).
 */
#include "passes.h"

static bool is_input_of_len(const ir_module *m, ir_ref r, uint32_t len)
{
    const ir_value *v = &m->values[r];
    return v->op == IR_OP_INPUT && v->type.len == len;
}

static void classify(ir_module *m, ir_role role)
{
    ir_plan *p = &m->plan;
    ir_ref r = *ir_role_slot(m, role);
    p->feed[role] = IR_FEED_ABSENT;
    if (r == IR_NONE)
        return;
    const ir_value *v = &m->values[r];
    bool vector_role = role == IR_ROLE_QUERY || role == IR_ROLE_KEY || role == IR_ROLE_VALUE ||
                       role == IR_ROLE_SM_QUERY || role == IR_ROLE_SM_KEY || role == IR_ROLE_SM_VALUE;
    p->feed[role] = IR_FEED_MAPPED;
    if (!vector_role || v->type.vary != IR_VARY_TOKEN)
        return;
    if (is_input_of_len(m, r, v->type.len)) {
        p->feed[role] = IR_FEED_DIRECT;
        p->feed_src[role] = r;
        return;
    }
    bool query = role == IR_ROLE_QUERY || role == IR_ROLE_SM_QUERY;
    if (query && v->op == IR_OP_MUL) {
        for (int side = 0; side < 2; side++) {
            ir_ref in = v->arg[side], c = v->arg[1 - side];
            if (is_input_of_len(m, in, v->type.len) && m->values[c].op == IR_OP_CONST) {
                p->feed[role] = IR_FEED_SCALED;
                p->feed_src[role] = in;
                p->scale[role] = m->values[c].num;
                return;
            }
        }
    }
}

bool pass_fuse(ir_module *m, const pass_options *opt, attnc_diags *diags)
{
    (void)opt;
    (void)diags;
    for (unsigned r = 0; r < IR_ROLE_COUNT; r++)
        classify(m, (ir_role)r);
    m->plan.stage = IR_PLAN_FUSED;
    return true;
}
