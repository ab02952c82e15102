/* ir/ir_print.c: the IR's text form (docs/ir.md).
 *
 * One declaration or value per line, in module order; ir_parse reads exactly this back, and printing
 * what it read gives the same text.  Numbers are printed with 17 significant digits so that every
 * double survives the trip.  Each value line ends with its type (vary, head axis, length), which is
 * redundant with the ops but lets a reader (and the verifier) check it.
 */
#include "ir.h"

static const char *vary_name(uint8_t v)
{
    return v == IR_VARY_CONST ? "const" : v == IR_VARY_HEAD ? "head" : "token";
}

static const char *axis_name(const ir_module *m, uint8_t axis)
{
    return axis < m->naxes ? m->axes[axis].name : "-";
}

static void print_role(attnc_buf *b, const char *role, ir_ref r)
{
    if (r)
        attnc_buf_printf(b, "  %s %%%u\n", role, r);
}

/* One line per stage the passes reached (docs/ir.md, "plan"). */
static void print_plan(attnc_buf *b, const ir_plan *p)
{
    if (p->stage >= IR_PLAN_CHUNKED)
        attnc_buf_printf(b, "plan chunked %u transition %s householder %d stabilized %d subchunk %u\n", p->chunk,
                         ir_transition_name(p->transition), p->householder, p->stabilized, p->subchunk);
    if (p->stage >= IR_PLAN_TILED)
        attnc_buf_printf(b, "plan tiled k_pad %u v_tile %u warps %u col_groups %u state_groups %u shared_scores %d "
                            "sm_tile %u operands %s\n",
                         p->k_pad, p->v_tile, p->warps, p->col_groups, p->state_groups, p->shared_scores, p->sm_tile,
                         ir_operands_name(p->operands));
    if (p->stage >= IR_PLAN_FUSED) {
        attnc_buf_puts(b, "plan fused");
        for (unsigned r = 0; r < IR_ROLE_COUNT; r++) {
            if (p->feed[r] == IR_FEED_ABSENT)
                continue;
            attnc_buf_printf(b, " %s %s", ir_role_word(r), ir_feed_name(p->feed[r]));
            if (p->feed[r] == IR_FEED_DIRECT || p->feed[r] == IR_FEED_SCALED)
                attnc_buf_printf(b, " %%%u", p->feed_src[r]);
            if (p->feed[r] == IR_FEED_SCALED)
                attnc_buf_printf(b, " %.17g", p->scale[r]);
        }
        attnc_buf_puts(b, "\n");
    }
    if (p->stage >= IR_PLAN_SCHEDULED) {
        attnc_buf_puts(b, "plan scheduled");
        for (unsigned bit = 0; ir_sched_name(bit); bit++)
            if (p->schedules & (1u << bit))
                attnc_buf_printf(b, " %s", ir_sched_name(bit));
        attnc_buf_printf(b, " min_ctas %u\n", p->min_ctas);
    }
}

char *ir_print(const ir_module *m, attnc_arena *arena)
{
    attnc_buf b;
    attnc_buf_init(&b, arena);
    attnc_buf_printf(&b, "attnc-ir 1\nvariant %s\n", m->name);
    for (uint32_t i = 0; i < m->ndims; i++)
        attnc_buf_printf(&b, "dim %s = %lld\n", m->dims[i].name, (long long)m->dims[i].value);
    for (uint32_t i = 0; i < m->naxes; i++)
        attnc_buf_printf(&b, "heads %s = %u\n", m->axes[i].name, m->axes[i].count);
    for (uint32_t i = 0; i < m->ntensors; i++) {
        const ir_tensor *t = &m->tensors[i];
        attnc_buf_printf(&b, "%s %s : %s [%s", t->per_token ? "input" : "param", t->name, ir_dtype_name(t->dtype),
                         axis_name(m, t->axis));
        if (t->len != 1)
            attnc_buf_printf(&b, ", %u", t->len);
        attnc_buf_puts(&b, "]");
        if (t->has_range)
            attnc_buf_printf(&b, " in [%.17g, %.17g]", t->lo, t->hi);
        attnc_buf_puts(&b, "\n");
    }
    for (uint32_t i = 1; i < m->nvalues; i++) {
        const ir_value *v = &m->values[i];
        attnc_buf_printf(&b, "%%%u = %s", i, ir_op_name((ir_op)v->op));
        switch ((ir_op)v->op) {
        case IR_OP_CONST: attnc_buf_printf(&b, " %.17g", v->num); break;
        case IR_OP_INPUT:
        case IR_OP_PARAM: attnc_buf_printf(&b, " %s", v->aux < m->ntensors ? m->tensors[v->aux].name : "?"); break;
        case IR_OP_HEAD: attnc_buf_printf(&b, " %s", axis_name(m, (uint8_t)v->aux)); break;
        default:
            for (int k = 0; k < ir_op_arity((ir_op)v->op); k++)
                attnc_buf_printf(&b, "%s%%%u", k ? ", " : " ", v->arg[k]);
        }
        attnc_buf_printf(&b, " : %s %s %u\n", vary_name(v->type.vary), axis_name(m, v->type.axis), v->type.len);
    }
    const ir_linear *l = &m->linear;
    if (l->present) {
        attnc_buf_puts(&b, "linear {\n");
        print_role(&b, "query", l->query);
        print_role(&b, "key", l->key);
        print_role(&b, "value", l->value);
        if (l->decay == IR_DECAY_NONE)
            attnc_buf_puts(&b, "  decay none\n");
        else
            attnc_buf_printf(&b, "  decay %s %%%u\n", ir_decay_name(l->decay), l->gate);
        if (l->update == IR_UPDATE_DELTA)
            attnc_buf_printf(&b, "  update delta %%%u\n", l->beta);
        else
            attnc_buf_puts(&b, "  update additive\n");
        print_role(&b, "igate", l->igate);
        if (l->norm == IR_NORM_NONE)
            attnc_buf_puts(&b, "  normalize none\n");
        else
            attnc_buf_printf(&b, "  normalize %s %.17g\n", ir_norm_name(l->norm), l->eps);
        attnc_buf_puts(&b, "}\n");
    }
    const ir_softmax *x = &m->softmax;
    if (x->present) {
        attnc_buf_puts(&b, "softmax {\n");
        print_role(&b, "query", x->query);
        print_role(&b, "key", x->key);
        print_role(&b, "value", x->value);
        attnc_buf_printf(&b, "  window %u\n", x->window);
        attnc_buf_puts(&b, "}\n");
    }
    attnc_buf_printf(&b, "mask %s%s\n", m->mask == IR_MASK_CAUSAL ? "causal" : "none", m->document ? " document" : "");
    attnc_buf_printf(&b, "state%s%s%s\n", m->state_in ? " initial" : "", m->state_out ? " final" : "",
                     m->state_in || m->state_out ? "" : " none");
    if (m->chunk)
        attnc_buf_printf(&b, "chunk %u\n", m->chunk);
    else
        attnc_buf_puts(&b, "chunk auto\n");
    attnc_buf_printf(&b, "output %s\n", ir_dtype_name(m->out_dtype));
    print_plan(&b, &m->plan);
    return attnc_buf_str(&b);
}
