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
 *
 * The backward (ref_eval_roles_backward) walks the same plan in reverse for every (token, head): it
 * evaluates the values forward again, seeds the root's adjoint with the role's gradient and applies one
 * adjoint rule per op (written next to the op's evaluation below), down to the tensors, where the adjoints
 * are added to the tensor's gradient at the row the value read.  Adding, rather than storing, is what
 * sums the gradient of a parameter over the tokens that read it and of a tensor over the roles that read
 * it (Mamba2's step size in the value and the gate); heads that share a role row (GQA, GVA) were summed
 * by the caller.  A broadcast operand (a scalar over channels) sums its adjoint over the channels.  Kinks
 * take the branch the forward took: relu and abs have slope 0 at 0, min and max pass the adjoint to the
 * operand they returned (y on a tie); elu's slope is continuous.  Only values that depend on a tensor
 * get adjoints (constants and head indices have none), so pow's log(x), for the exponent, is formed only
 * where the exponent carries data, never for a constant exponent over a negative base.
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

/* d/dx of elem1 at x, where y = elem1(op, x), times the adjoint g. */
static double elem1_grad(ir_op op, double x, double y, double g)
{
    switch (op) {
    case IR_OP_NEG: return -g;
    case IR_OP_EXP: return g * y;
    case IR_OP_LOG: return g / x;
    case IR_OP_SQRT: return 0.5 * g / y;
    case IR_OP_RSQRT: return -0.5 * g * y * y * y;
    case IR_OP_ABS: return x > 0 ? g : x < 0 ? -g : 0.0;
    case IR_OP_TANH: return g * (1.0 - y * y);
    case IR_OP_SIGMOID: return g * y * sigmoid(-x); /* 1 - sigmoid(x) without the cancellation */
    case IR_OP_LOGSIGMOID: return g * sigmoid(-x);
    case IR_OP_SOFTPLUS: return g * sigmoid(x);
    case IR_OP_RELU: return x > 0 ? g : 0.0;
    case IR_OP_ELU: return x > 0 ? g : g * exp(x);
    case IR_OP_SILU: {
        double s = sigmoid(x);
        return g * (s + x * s * sigmoid(-x));
    }
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

/* The adjoints of elem2's operands: *gx += dz/dx g and *gy += dz/dy g, each only where wanted (want_x,
 * want_y), so that pow's derivatives are never formed for constant operands (log of a negative base). */
static void elem2_grad(ir_op op, double x, double y, double g, double *gx, double *gy, bool want_x, bool want_y)
{
    double dx = 0, dy = 0;
    switch (op) {
    case IR_OP_ADD: dx = g; dy = g; break;
    case IR_OP_SUB: dx = g; dy = -g; break;
    case IR_OP_MUL: dx = g * y; dy = g * x; break;
    case IR_OP_DIV: dx = g / y; dy = -g * x / (y * y); break;
    case IR_OP_POW:
        if (want_x)
            dx = g * y * pow(x, y - 1.0);
        if (want_y)
            dy = g * pow(x, y) * log(x);
        break;
    case IR_OP_MIN: /* the operand elem2 returned: y on a tie */
        if (x < y)
            dx = g;
        else
            dy = g;
        break;
    case IR_OP_MAX:
        if (x > y)
            dx = g;
        else
            dy = g;
        break;
    default: dx = dy = NAN; break;
    }
    if (want_x)
        *gx += dx;
    if (want_y)
        *gy += dy;
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

/* gx += J^T g for l2norm: y = x r, r = (|x|^2 + 1e-6)^-1/2, so dx = r g - r^3 (x.g) x. */
static void vec_l2norm_grad(const double *x, uint32_t n, const double *g, double *gx)
{
    double ss = 0, xg = 0;
    for (uint32_t i = 0; i < n; i++) {
        ss += x[i] * x[i];
        xg += x[i] * g[i];
    }
    double r = 1.0 / sqrt(ss + 1e-6);
    for (uint32_t i = 0; i < n; i++)
        gx[i] += r * g[i] - r * r * r * xg * x[i];
}

/* gx += J^T g for taylor2, in vec_taylor2's output order (the constant 1 has no derivative). */
static void vec_taylor2_grad(const double *x, uint32_t d, const double *g, double *gx)
{
    double rd = sqrt((double)d);
    double c1 = 1.0 / sqrt(rd), c2 = 1.0 / (sqrt(2.0) * rd), c3 = 1.0 / rd;
    size_t o = 1;
    for (uint32_t i = 0; i < d; i++)
        gx[i] += g[o++] * c1;
    for (uint32_t i = 0; i < d; i++)
        gx[i] += g[o++] * 2.0 * x[i] * c2;
    for (uint32_t i = 0; i < d; i++)
        for (uint32_t j = i + 1; j < d; j++) {
            gx[i] += g[o] * x[j] * c3;
            gx[j] += g[o] * x[i] * c3;
            o++;
        }
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

/* The row of tensor `tn` that a tensor value reads at token t, value head hv. */
static size_t tensor_row(const ir_module *m, const ir_tensor *tn, uint32_t t, uint32_t hv)
{
    size_t heads = tn->axis != IR_NO_AXIS && tn->axis < m->naxes ? m->axes[tn->axis].count : 1;
    return tn->per_token ? (size_t)t * heads + hv : hv;
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
                memcpy(out, d->tensor[v->aux] + tensor_row(m, tn, t, hv) * len, len * sizeof *out);
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

/* The adjoints of one (token, head), after eval_at filled the values: adj holds the root's gradient in its
 * slot on entry and zeros elsewhere; every value's adjoint is complete when its turn comes, because its
 * users have larger indices.  `needs` marks the values that depend on a tensor. */
static void backward_at(const ir_module *m, const eval_plan *p, const bool *needs, double *adj, uint32_t t,
                        uint32_t h, double **dtensor)
{
    for (uint32_t k = p->n; k-- > 0;) {
        uint32_t i = p->order[k];
        if (!needs[i])
            continue;
        const ir_value *v = &m->values[i];
        const double *g = adj + p->slot[i];
        const double *y = p->scratch + p->slot[i];
        uint32_t len = v->type.len;
        uint32_t hv = v->type.axis == IR_NO_AXIS ? 0 : h;
        ir_op op = (ir_op)v->op;
        switch (ir_op_kind_of(op)) {
        case IR_KIND_LEAF:
            if (op == IR_OP_INPUT || op == IR_OP_PARAM) {
                double *dt = dtensor[v->aux] + tensor_row(m, &m->tensors[v->aux], t, hv) * len;
                for (uint32_t c = 0; c < len; c++)
                    dt[c] += g[c];
            }
            break;
        case IR_KIND_ELEM: {
            ir_ref ra = v->arg[0];
            const double *xa = p->scratch + p->slot[ra];
            double *ga = adj + p->slot[ra];
            uint32_t sa = m->values[ra].type.len == 1 ? 0 : 1; /* a broadcast operand sums its adjoint */
            if (ir_op_arity(op) == 1) {
                for (uint32_t c = 0; c < len; c++)
                    ga[c * sa] += elem1_grad(op, xa[c * sa], y[c], g[c]);
            } else {
                ir_ref rb = v->arg[1];
                const double *xb = p->scratch + p->slot[rb];
                double *gb = adj + p->slot[rb];
                uint32_t sb = m->values[rb].type.len == 1 ? 0 : 1;
                for (uint32_t c = 0; c < len; c++)
                    elem2_grad(op, xa[c * sa], xb[c * sb], g[c], &ga[c * sa], &gb[c * sb], needs[ra], needs[rb]);
            }
            break;
        }
        case IR_KIND_VEC: {
            ir_ref ra = v->arg[0];
            const double *xa = p->scratch + p->slot[ra];
            double *ga = adj + p->slot[ra];
            if (op == IR_OP_L2NORM)
                vec_l2norm_grad(xa, len, g, ga);
            else
                vec_taylor2_grad(xa, m->values[ra].type.len, g, ga);
            break;
        }
        }
    }
}

/* Adds the tensor gradients that role gradient `dr` implies for the role rooted at `root`. */
static bool backward_role(const ir_module *m, const ref_data *d, ir_ref root, const ref_role *role,
                          const ref_role *dr, double **dtensor, attnc_arena *a, attnc_diags *diags)
{
    if (root == IR_NONE || !dr->data)
        return true;
    if (dr->heads != role->heads || dr->len != role->len || dr->per_head != role->per_head)
        return ref_fail(diags, m->values[root].span, "a role gradient does not have its role's shape");
    eval_plan p = {0};
    if (!plan_role(m, root, role->heads, &p, a, diags))
        return false;
    bool *needs = attnc_arena_alloc(a, m->nvalues * sizeof *needs);
    size_t total = p.slot[root] + role->len; /* the root has the largest index, hence the last slot */
    double *adj = ref_doubles(a, total);
    if (!needs || !adj)
        return ref_fail(diags, m->span, "out of memory");
    for (uint32_t k = 0; k < p.n; k++) {
        uint32_t i = p.order[k];
        const ir_value *v = &m->values[i];
        if (v->op == IR_OP_INPUT || v->op == IR_OP_PARAM)
            needs[i] = true;
        for (int j = 0; j < ir_op_arity((ir_op)v->op); j++)
            needs[i] = needs[i] || needs[v->arg[j]];
    }
    uint32_t ntok = role->per_head ? 1 : d->dims.total;
    for (uint32_t t = 0; t < ntok; t++)
        for (uint32_t h = 0; h < role->heads; h++) {
            const double *g = dr->data + ((size_t)t * role->heads + h) * role->len;
            bool zero = true;
            for (uint32_t c = 0; c < role->len && zero; c++)
                zero = g[c] == 0.0;
            if (zero)
                continue; /* nothing to propagate (a token no output reads, a role the loss ignores) */
            if (!eval_at(m, d, &p, t, h, diags))
                return false;
            memset(adj, 0, total * sizeof *adj);
            memcpy(adj + p.slot[root], g, role->len * sizeof *g);
            backward_at(m, &p, needs, adj, t, h, dtensor);
        }
    return true;
}

bool ref_eval_roles_backward(const ir_module *m, const ref_data *d, const ref_roles *dr, double **dtensor,
                             attnc_arena *a, attnc_diags *diags)
{
    const ref_roles *r = &d->roles;
    const ir_linear *l = &m->linear;
    const ir_softmax *x = &m->softmax;
    if (l->present) {
        if (!backward_role(m, d, l->query, &r->q, &dr->q, dtensor, a, diags) ||
            !backward_role(m, d, l->key, &r->k, &dr->k, dtensor, a, diags) ||
            !backward_role(m, d, l->value, &r->v, &dr->v, dtensor, a, diags) ||
            !backward_role(m, d, l->gate, &r->gate, &dr->gate, dtensor, a, diags) ||
            !backward_role(m, d, l->beta, &r->beta, &dr->beta, dtensor, a, diags) ||
            !backward_role(m, d, l->igate, &r->igate, &dr->igate, dtensor, a, diags))
            return false;
    }
    if (x->present) {
        if (!backward_role(m, d, x->query, &r->sq, &dr->sq, dtensor, a, diags) ||
            !backward_role(m, d, x->key, &r->sk, &dr->sk, dtensor, a, diags) ||
            !backward_role(m, d, x->value, &r->sv, &dr->sv, dtensor, a, diags))
            return false;
    }
    return true;
}
