/* reference/ref_eval.c: float64 evaluation of the IR value DAG, giving the role vectors.
 *
 * For each role, the values it depends on are marked (one backward sweep: values are in SSA order, so
 * every operand has a smaller index), given a slot in a scratch vector, and evaluated in index order for
 * every (token, head) of the role.  A value's head is the role's head when it lies on the role's axis,
 * and 0 when it has no axis (the IR does not mix two axes in one op, so no other case arises).  A
 * per-head value is the same for every token, a constant the same everywhere.  Elementwise ops broadcast
 * an operand of length 1 over the other's channels.
 *
 * This file is deliberately independent of the compiler's own constant folding: it is the reference.
 * Formulas follow ops.def; the numerically delicate ones are written in their stable forms:
 *   sigmoid(x)    = 1/(1+e^-x) for x >= 0, e^x/(1+e^x) otherwise
 *   logsigmoid(x) = min(x,0) - log1p(e^-|x|)        softplus(x) = max(x,0) + log1p(e^-|x|)
 *   elu(x)        = x > 0 ? x : expm1(x)             silu(x)     = x * sigmoid(x)
 *   l2norm(x)     = x / sqrt(sum x^2 + 1e-6)         rsqrt(x)    = 1 / sqrt(x)
 *   taylor2(x)    = [1, x/d^(1/4), x_i^2/(sqrt2 sqrt d) (i), x_i x_j/sqrt d (i<j, row-major)], d = len x
 */
#include "ref_internal.h"

#include <math.h>
#include <string.h>

static double sigmoid(double x)
{
    if (x >= 0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

static double elem1(ir_op op, double x)
{
    switch (op) {
    case IR_OP_NEG: return -x;
    case IR_OP_EXP: return exp(x);
    case IR_OP_LOG: return log(x);
    case IR_OP_SQRT: return sqrt(x);
    case IR_OP_RSQRT: return 1.0 / sqrt(x);
    case IR_OP_ABS: return fabs(x);
    case IR_OP_TANH: return tanh(x);
    case IR_OP_SIGMOID: return sigmoid(x);
    case IR_OP_LOGSIGMOID: return fmin(x, 0.0) - log1p(exp(-fabs(x)));
    case IR_OP_SOFTPLUS: return fmax(x, 0.0) + log1p(exp(-fabs(x)));
    case IR_OP_RELU: return x > 0 ? x : 0.0;
    case IR_OP_ELU: return x > 0 ? x : expm1(x);
    case IR_OP_SILU: return x * sigmoid(x);
    default: return NAN;
    }
}

static double elem2(ir_op op, double x, double y)
{
    switch (op) {
    case IR_OP_ADD: return x + y;
    case IR_OP_SUB: return x - y;
    case IR_OP_MUL: return x * y;
    case IR_OP_DIV: return x / y;
    case IR_OP_POW: return pow(x, y);
    case IR_OP_MIN: return x < y ? x : y;
    case IR_OP_MAX: return x > y ? x : y;
    default: return NAN;
    }
}

static void vec_l2norm(const double *x, uint32_t n, double *out)
{
    double ss = 0;
    for (uint32_t i = 0; i < n; i++)
        ss += x[i] * x[i];
    double inv = 1.0 / sqrt(ss + 1e-6);
    for (uint32_t i = 0; i < n; i++)
        out[i] = x[i] * inv;
}

static void vec_taylor2(const double *x, uint32_t d, double *out)
{
    double rd = sqrt((double)d);
    double c1 = 1.0 / sqrt(rd), c2 = 1.0 / (sqrt(2.0) * rd), c3 = 1.0 / rd;
    size_t o = 0;
    out[o++] = 1.0;
    for (uint32_t i = 0; i < d; i++)
        out[o++] = x[i] * c1;
    for (uint32_t i = 0; i < d; i++)
        out[o++] = x[i] * x[i] * c2;
    for (uint32_t i = 0; i < d; i++)
        for (uint32_t j = i + 1; j < d; j++)
            out[o++] = x[i] * x[j] * c3;
}

/* The evaluation plan of one role: which values, where each lives in the scratch vector. */
typedef struct eval_plan {
    uint32_t *order;  /* marked values, ascending */
    uint32_t n;
    size_t *slot;     /* per value: offset in scratch */
    double *scratch;
} eval_plan;

static bool plan_role(const ir_module *m, ir_ref root, uint32_t heads, eval_plan *p, attnc_arena *a,
                      attnc_diags *diags)
{
    bool *mark = attnc_arena_alloc(a, m->nvalues * sizeof *mark);
    p->order = attnc_arena_alloc(a, m->nvalues * sizeof *p->order);
    p->slot = attnc_arena_alloc(a, m->nvalues * sizeof *p->slot);
    if (!mark || !p->order || !p->slot)
        return ref_fail(diags, m->span, "out of memory");
    mark[root] = true;
    for (uint32_t i = root; i > 0; i--) {
        if (!mark[i])
            continue;
        const ir_value *v = &m->values[i];
        int arity = ir_op_arity((ir_op)v->op);
        for (int k = 0; k < arity; k++) {
            if (v->arg[k] == IR_NONE || v->arg[k] >= i)
                return ref_fail(diags, v->span, "value %u has operand %u out of SSA order", i, v->arg[k]);
            mark[v->arg[k]] = true;
        }
    }
    size_t total = 0;
    p->n = 0;
    for (uint32_t i = 1; i <= root; i++) {
        if (!mark[i])
            continue;
        const ir_value *v = &m->values[i];
        if (v->type.axis != IR_NO_AXIS && ref_value_heads(m, i) != heads)
            return ref_fail(diags, v->span, "value %u is on a head axis of %u heads inside a role of %u", i,
                            ref_value_heads(m, i), heads);
        if (v->op >= IR_OP_COUNT || v->type.len == 0)
            return ref_fail(diags, v->span, "value %u is malformed", i);
        p->order[p->n++] = i;
        p->slot[i] = total;
        total += v->type.len;
    }
    p->scratch = ref_doubles(a, total);
    if (!p->scratch)
        return ref_fail(diags, m->span, "out of memory");
    return true;
}

/* Evaluates every planned value at token t, role head h; the root's vector ends in its slot. */
static bool eval_at(const ir_module *m, const ref_data *d, const eval_plan *p, uint32_t t, uint32_t h,
                    attnc_diags *diags)
{
    for (uint32_t k = 0; k < p->n; k++) {
        uint32_t i = p->order[k];
        const ir_value *v = &m->values[i];
        double *out = p->scratch + p->slot[i];
        uint32_t len = v->type.len;
        uint32_t hv = v->type.axis == IR_NO_AXIS ? 0 : h;
        ir_op op = (ir_op)v->op;
        switch (ir_op_kind_of(op)) {
        case IR_KIND_LEAF:
            if (op == IR_OP_CONST) {
                for (uint32_t c = 0; c < len; c++)
                    out[c] = v->num;
            } else if (op == IR_OP_HEAD) {
                for (uint32_t c = 0; c < len; c++)
                    out[c] = (double)hv;
            } else {
                if (v->aux >= m->ntensors || m->tensors[v->aux].len != len)
                    return ref_fail(diags, v->span, "value %u reads a tensor that does not match", i);
                const ir_tensor *tn = &m->tensors[v->aux];
                size_t heads = tn->axis != IR_NO_AXIS && tn->axis < m->naxes ? m->axes[tn->axis].count : 1;
                if (hv >= heads)
                    return ref_fail(diags, v->span, "value %u reads head %u of a tensor of %zu", i, hv,
                                    heads);
                size_t row = tn->per_token ? (size_t)t * heads + hv : hv;
                memcpy(out, d->tensor[v->aux] + row * len, len * sizeof *out);
            }
            break;
        case IR_KIND_ELEM: {
            const ir_value *va = &m->values[v->arg[0]];
            const double *xa = p->scratch + p->slot[v->arg[0]];
            uint32_t sa = va->type.len == 1 ? 0 : 1;
            if (ir_op_arity(op) == 1) {
                for (uint32_t c = 0; c < len; c++)
                    out[c] = elem1(op, xa[c * sa]);
            } else {
                const ir_value *vb = &m->values[v->arg[1]];
                const double *xb = p->scratch + p->slot[v->arg[1]];
                uint32_t sb = vb->type.len == 1 ? 0 : 1;
                if ((sa && va->type.len != len) || (sb && vb->type.len != len))
                    return ref_fail(diags, v->span, "value %u: operand lengths do not broadcast", i);
                for (uint32_t c = 0; c < len; c++)
                    out[c] = elem2(op, xa[c * sa], xb[c * sb]);
            }
            break;
        }
        case IR_KIND_VEC: {
            const ir_value *va = &m->values[v->arg[0]];
            const double *xa = p->scratch + p->slot[v->arg[0]];
            if (op == IR_OP_L2NORM && va->type.len == len)
                vec_l2norm(xa, len, out);
            else if (op == IR_OP_TAYLOR2 && ir_taylor2_len(va->type.len) == len)
                vec_taylor2(xa, va->type.len, out);
            else
                return ref_fail(diags, v->span, "value %u: vector op of the wrong length", i);
            break;
        }
        }
    }
    return true;
}

static bool eval_role(const ir_module *m, ref_data *d, ir_ref root, bool per_head, ref_role *role,
                      attnc_arena *a, attnc_diags *diags)
{
    *role = (ref_role){0};
    if (root == IR_NONE)
        return true;
    const ir_value *rv = &m->values[root];
    role->heads = ref_value_heads(m, root);
    role->len = rv->type.len;
    role->per_head = per_head;
    if (per_head && rv->type.vary == IR_VARY_TOKEN)
        return ref_fail(diags, rv->span, "a per-head role varies per token");
    uint32_t ntok = per_head ? 1 : d->dims.total;
    role->data = ref_doubles(a, (size_t)ntok * role->heads * role->len);
    if (!role->data)
        return ref_fail(diags, rv->span, "out of memory");
    eval_plan p = {0};
    if (!plan_role(m, root, role->heads, &p, a, diags))
        return false;
    const double *res = p.scratch + p.slot[root];
    for (uint32_t t = 0; t < ntok; t++)
        for (uint32_t h = 0; h < role->heads; h++) {
            if (!eval_at(m, d, &p, t, h, diags))
                return false;
            memcpy(role->data + ((size_t)t * role->heads + h) * role->len, res, role->len * sizeof *res);
        }
    return true;
}

bool ref_eval_roles(const ir_module *m, ref_data *d, attnc_arena *a, attnc_diags *diags)
{
    ref_roles *r = &d->roles;
    const ir_linear *l = &m->linear;
    const ir_softmax *x = &m->softmax;
    *r = (ref_roles){0};
    if (l->present) {
        if (!eval_role(m, d, l->query, false, &r->q, a, diags) ||
            !eval_role(m, d, l->key, false, &r->k, a, diags) ||
            !eval_role(m, d, l->value, false, &r->v, a, diags) ||
            !eval_role(m, d, l->gate, l->decay == IR_DECAY_CONST, &r->gate, a, diags) ||
            !eval_role(m, d, l->beta, false, &r->beta, a, diags) ||
            !eval_role(m, d, l->igate, false, &r->igate, a, diags))
            return false;
    }
    if (x->present) {
        if (!eval_role(m, d, x->query, false, &r->sq, a, diags) ||
            !eval_role(m, d, x->key, false, &r->sk, a, diags) ||
            !eval_role(m, d, x->value, false, &r->sv, a, diags))
            return false;
    }
    return true;
}
