/* ir/ir_range.c: interval analysis over the value list.
 *
 * Each value gets an interval that contains every number it can take, given the declared ranges of
 * the tensors (a tensor without a range is unbounded).  Sema uses it to prove that a gate is <= 0,
 * that beta lies in [0, 2] and that a constant decay lies in (0, 1]; intervals are sound but not tight
 * (x - x is [-inf, inf] for unbounded x), so a spec may need a range declaration to pass.
 */
#include <math.h>

#include "ir.h"

static ir_interval iv(double lo, double hi)
{
    ir_interval r = {lo, hi};
    return r;
}

static double min4(double a, double b, double c, double d)
{
    double m = a;
    m = b < m ? b : m;
    m = c < m ? c : m;
    return d < m ? d : m;
}

static double max4(double a, double b, double c, double d)
{
    double m = a;
    m = b > m ? b : m;
    m = c > m ? c : m;
    return d > m ? d : m;
}

/* 0 * inf is taken as 0 (a zero factor bounds the product). */
static double mul0(double a, double b)
{
    return (a == 0 || b == 0) ? 0.0 : a * b;
}

static ir_interval monotone(ir_op op, ir_interval a)
{
    return iv(ir_apply(op, a.lo, 0), ir_apply(op, a.hi, 0));
}

static ir_interval range_of(const ir_module *m, const ir_value *v, const ir_interval *r)
{
    const double inf = INFINITY;
    ir_interval a = v->arg[0] ? r[v->arg[0]] : iv(-inf, inf);
    ir_interval b = v->arg[1] ? r[v->arg[1]] : iv(-inf, inf);
    switch ((ir_op)v->op) {
    case IR_OP_CONST:
        return iv(v->num, v->num);
    case IR_OP_INPUT:
    case IR_OP_PARAM: {
        const ir_tensor *t = &m->tensors[v->aux];
        return t->has_range ? iv(t->lo, t->hi) : iv(-inf, inf);
    }
    case IR_OP_HEAD:
        return iv(0, v->type.axis < m->naxes ? m->axes[v->type.axis].count - 1.0 : inf);
    case IR_OP_NEG:
        return iv(-a.hi, -a.lo);
    case IR_OP_ADD:
        return iv(a.lo + b.lo, a.hi + b.hi);
    case IR_OP_SUB:
        return iv(a.lo - b.hi, a.hi - b.lo);
    case IR_OP_MUL:
        return iv(min4(mul0(a.lo, b.lo), mul0(a.lo, b.hi), mul0(a.hi, b.lo), mul0(a.hi, b.hi)),
                  max4(mul0(a.lo, b.lo), mul0(a.lo, b.hi), mul0(a.hi, b.lo), mul0(a.hi, b.hi)));
    case IR_OP_DIV:
        if (b.lo > 0 || b.hi < 0) {
            double lo = min4(a.lo / b.lo, a.lo / b.hi, a.hi / b.lo, a.hi / b.hi);
            double hi = max4(a.lo / b.lo, a.lo / b.hi, a.hi / b.lo, a.hi / b.hi);
            if (!isnan(lo) && !isnan(hi))
                return iv(lo, hi);
        }
        return iv(-inf, inf);
    case IR_OP_POW:
        if (a.lo > 0 && b.lo == b.hi) { /* positive base, constant exponent: monotone in the base */
            double x = pow(a.lo, b.lo), y = pow(a.hi, b.lo);
            return iv(x < y ? x : y, x < y ? y : x);
        }
        if (a.lo == a.hi && a.lo > 0) { /* constant positive base: monotone in the exponent */
            double x = pow(a.lo, b.lo), y = pow(a.lo, b.hi);
            return iv(x < y ? x : y, x < y ? y : x);
        }
        return iv(-inf, inf);
    case IR_OP_MIN:
        return iv(a.lo < b.lo ? a.lo : b.lo, a.hi < b.hi ? a.hi : b.hi);
    case IR_OP_MAX:
        return iv(a.lo > b.lo ? a.lo : b.lo, a.hi > b.hi ? a.hi : b.hi);
    case IR_OP_EXP:
    case IR_OP_TANH:
    case IR_OP_SIGMOID:
    case IR_OP_LOGSIGMOID:
    case IR_OP_SOFTPLUS:
    case IR_OP_RELU:
    case IR_OP_ELU:
        return monotone((ir_op)v->op, a);
    case IR_OP_LOG:
    case IR_OP_SQRT:
        if (a.lo < 0)
            return iv(-inf, inf); /* may be NaN */
        return monotone((ir_op)v->op, a);
    case IR_OP_RSQRT:
        if (a.lo <= 0)
            return iv(0, inf);
        return iv(1 / sqrt(a.hi), 1 / sqrt(a.lo));
    case IR_OP_ABS:
        if (a.lo >= 0)
            return a;
        if (a.hi <= 0)
            return iv(-a.hi, -a.lo);
        return iv(0, -a.lo > a.hi ? -a.lo : a.hi);
    case IR_OP_SILU:
        return iv(a.lo >= 0 ? ir_apply(IR_OP_SILU, a.lo, 0) : -0.27846454276107380, /* min of silu */
                  a.hi > 0 ? a.hi : 0.0);
    case IR_OP_L2NORM:
        return iv(-1, 1);
    case IR_OP_TAYLOR2:
        return iv(-inf, inf);
    case IR_OP_COUNT:
        break;
    }
    return iv(-inf, inf);
}

ir_interval *ir_ranges(const ir_module *m, attnc_arena *arena)
{
    ir_interval *r = attnc_arena_alloc(arena, m->nvalues * sizeof *r);
    if (!r)
        return NULL;
    for (uint32_t i = 1; i < m->nvalues; i++) {
        r[i] = range_of(m, &m->values[i], r);
        if (isnan(r[i].lo) || isnan(r[i].hi))
            r[i] = iv(-INFINITY, INFINITY);
    }
    return r;
}
