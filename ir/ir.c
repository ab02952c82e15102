/* ir/ir.c: op tables, module construction, type inference and the derived shape of a module. */
#include "ir.h"

#include <math.h>
#include <string.h>

static const struct {
    const char *name;
    int arity;
    ir_op_kind kind;
} op_table[IR_OP_COUNT] = {
#define IR_OP(e, n, ar, k) [IR_OP_##e] = {n, ar, IR_KIND_##k},
#include "ops.def"
#undef IR_OP
};

const char *ir_op_name(ir_op op)
{
    return op < IR_OP_COUNT ? op_table[op].name : "?";
}

int ir_op_arity(ir_op op)
{
    return op < IR_OP_COUNT ? op_table[op].arity : 0;
}

ir_op_kind ir_op_kind_of(ir_op op)
{
    return op < IR_OP_COUNT ? op_table[op].kind : IR_KIND_LEAF;
}

ir_op ir_op_by_name(const char *name, size_t len)
{
    for (int i = 0; i < IR_OP_COUNT; i++)
        if (strlen(op_table[i].name) == len && memcmp(op_table[i].name, name, len) == 0)
            return (ir_op)i;
    return IR_OP_COUNT;
}

static const char *const dtype_names[] = {"bf16", "fp16", "fp32"};

const char *ir_dtype_name(ir_dtype dt)
{
    return (unsigned)dt < 3 ? dtype_names[dt] : "?";
}

bool ir_dtype_by_name(const char *name, size_t len, ir_dtype *out)
{
    for (int i = 0; i < 3; i++)
        if (strlen(dtype_names[i]) == len && memcmp(dtype_names[i], name, len) == 0) {
            *out = (ir_dtype)i;
            return true;
        }
    return false;
}

const char *ir_decay_name(ir_decay d)
{
    static const char *const names[] = {"none", "const", "scalar", "vector"};
    return (unsigned)d < 4 ? names[d] : "?";
}

const char *ir_norm_name(ir_norm n)
{
    static const char *const names[] = {"none", "denominator", "max_floor", "rmsnorm", "layernorm"};
    return (unsigned)n < 5 ? names[n] : "?";
}

ir_module *ir_module_new(attnc_arena *arena)
{
    ir_module *m = attnc_arena_alloc(arena, sizeof *m);
    if (!m)
        return NULL;
    m->arena = arena;
    m->name = "";
    m->capvalues = 64;
    m->values = attnc_arena_alloc(arena, m->capvalues * sizeof *m->values);
    if (!m->values)
        return NULL;
    m->nvalues = 1; /* values[0] is the "none" slot */
    m->out_dtype = IR_DT_BF16;
    return m;
}

ir_ref *ir_role_slot(ir_module *m, ir_role role)
{
    switch (role) {
    case IR_ROLE_QUERY: return &m->linear.query;
    case IR_ROLE_KEY: return &m->linear.key;
    case IR_ROLE_VALUE: return &m->linear.value;
    case IR_ROLE_GATE: return &m->linear.gate;
    case IR_ROLE_BETA: return &m->linear.beta;
    case IR_ROLE_IGATE: return &m->linear.igate;
    case IR_ROLE_SM_QUERY: return &m->softmax.query;
    case IR_ROLE_SM_KEY: return &m->softmax.key;
    case IR_ROLE_SM_VALUE: return &m->softmax.value;
    case IR_ROLE_COUNT: break;
    }
    return NULL;
}

const char *ir_role_name(ir_role role)
{
    static const char *const names[IR_ROLE_COUNT] = {"query", "key", "value", "gate", "beta", "input gate",
                                                     "softmax query", "softmax key", "softmax value"};
    return role < IR_ROLE_COUNT ? names[role] : "?";
}

unsigned ir_dtype_bytes(ir_dtype dt)
{
    return dt == IR_DT_FP32 ? 4 : 2;
}

#define NAME_AT(table, i) ((i) < sizeof table / sizeof *table ? table[i] : NULL)

const char *ir_transition_name(unsigned t)
{
    static const char *const names[] = {"identity", "const", "scalar", "diag"};
    return NAME_AT(names, t);
}

const char *ir_operands_name(unsigned o)
{
    static const char *const names[] = {"bf16", "fp16", "bf16x3"};
    return NAME_AT(names, o);
}

unsigned ir_operand_bytes(unsigned o)
{
    return o == IR_OPERANDS_BF16X3 ? 4 : 2;
}

const char *ir_feed_name(unsigned f)
{
    static const char *const names[] = {"absent", "direct", "scaled", "mapped"};
    return NAME_AT(names, f);
}

const char *ir_role_word(unsigned role)
{
    static const char *const names[IR_ROLE_COUNT] = {"query", "key", "value", "gate", "beta", "igate",
                                                     "sm_query", "sm_key", "sm_value"};
    return NAME_AT(names, role);
}

const char *ir_sched_name(unsigned bit)
{
    static const char *const names[] = {"sequential", "materialized", "bidirectional", "windowed", "grouped"};
    return NAME_AT(names, bit);
}

const char *ir_plan_stage_name(unsigned stage)
{
    static const char *const names[] = {"none", "chunked", "tiled", "fused", "scheduled"};
    return NAME_AT(names, stage);
}

ir_ref ir_add_value(ir_module *m, ir_value v)
{
    if (m->nvalues == m->capvalues) {
        uint32_t cap = m->capvalues * 2;
        ir_value *p = attnc_arena_grow(m->arena, m->values, m->nvalues * sizeof *p, cap * sizeof *p);
        if (!p)
            return IR_NONE;
        m->values = p;
        m->capvalues = cap;
    }
    m->values[m->nvalues] = v;
    return m->nvalues++;
}

uint32_t ir_role_heads(const ir_module *m, ir_ref r)
{
    if (r == IR_NONE || r >= m->nvalues)
        return 1;
    uint8_t axis = m->values[r].type.axis;
    return axis < m->naxes ? m->axes[axis].count : 1;
}

uint32_t ir_taylor2_len(uint32_t d)
{
    return 1 + d + d * (d + 1) / 2;
}

/* Binary elementwise ops broadcast: a scalar meets any length; a value without a head axis meets any
 * axis; two different axes do not meet (their heads would not correspond). */
bool ir_infer_type(const ir_module *m, ir_op op, const ir_type *a, const ir_type *b, uint32_t aux,
                   ir_type *out, const char **why)
{
    ir_type t = {IR_VARY_CONST, IR_NO_AXIS, 1};
    *why = NULL;
    switch (ir_op_kind_of(op)) {
    case IR_KIND_LEAF:
        if (op == IR_OP_HEAD) {
            if (aux >= m->naxes) {
                *why = "head index of an unknown head axis";
                return false;
            }
            t.vary = IR_VARY_HEAD;
            t.axis = (uint8_t)aux;
        } else if (op == IR_OP_INPUT || op == IR_OP_PARAM) {
            if (aux >= m->ntensors) {
                *why = "unknown tensor";
                return false;
            }
            const ir_tensor *tn = &m->tensors[aux];
            if (tn->per_token != (op == IR_OP_INPUT)) {
                *why = op == IR_OP_INPUT ? "'input' names a parameter" : "'param' names an input";
                return false;
            }
            t.vary = tn->per_token ? IR_VARY_TOKEN : IR_VARY_HEAD;
            t.axis = tn->axis;
            t.len = tn->len;
        }
        break;
    case IR_KIND_ELEM:
        t = *a;
        if (ir_op_arity(op) == 2) {
            if (b->vary > t.vary)
                t.vary = b->vary;
            if (a->axis == IR_NO_AXIS)
                t.axis = b->axis;
            else if (b->axis != IR_NO_AXIS && b->axis != a->axis) {
                *why = "operands on different head axes";
                return false;
            }
            if (a->len == 1)
                t.len = b->len;
            else if (b->len != 1 && b->len != a->len) {
                *why = "vectors of different lengths";
                return false;
            }
        }
        break;
    case IR_KIND_VEC:
        t = *a;
        if (op == IR_OP_TAYLOR2) {
            uint32_t n = ir_taylor2_len(a->len);
            if (a->len > 360) { /* 1 + d + d(d+1)/2 fits 16 bits up to d = 360 */
                *why = "taylor2 of a vector this long is too large";
                return false;
            }
            t.len = (uint16_t)n;
        }
        break;
    }
    *out = t;
    return true;
}

bool ir_plan_can_share_scores(const ir_module *m)
{
    const ir_plan *p = &m->plan;
    return p->col_groups > 1 && m->mask == IR_MASK_CAUSAL && !p->stabilized && m->linear.norm == IR_NORM_NONE;
}

bool ir_plan_split_delta(const ir_module *m)
{
    const ir_plan *p = &m->plan;
    if (!m->linear.present)
        return false;
    uint32_t V = m->values[m->linear.value].type.len;
    return p->householder && p->transition != IR_TR_DIAG && !p->stabilized &&
           m->linear.norm == IR_NORM_NONE && m->mask == IR_MASK_CAUSAL && p->k_pad <= 128 && p->v_tile == V &&
           V % 16 == 0;
}

ir_shape ir_module_shape(const ir_module *m)
{
    ir_shape s = {0};
    const ir_linear *l = &m->linear;
    const ir_softmax *x = &m->softmax;
    if (l->present) {
        s.K = m->values[l->query].type.len;
        s.V = m->values[l->value].type.len;
        s.heads_q = ir_role_heads(m, l->query);
        s.heads_k = ir_role_heads(m, l->key);
        s.heads_v = ir_role_heads(m, l->value);
        uint32_t hs = s.heads_k > s.heads_v ? s.heads_k : s.heads_v;
        ir_ref others[] = {l->gate, l->beta, l->igate};
        for (size_t i = 0; i < 3; i++)
            if (others[i] != IR_NONE && m->values[others[i]].type.axis != IR_NO_AXIS) {
                uint32_t h = ir_role_heads(m, others[i]);
                if (h > hs)
                    hs = h;
            }
        s.heads_state = hs;
    } else if (x->present) {
        s.K = m->values[x->query].type.len;
        s.V = m->values[x->value].type.len;
        s.heads_q = ir_role_heads(m, x->query);
        s.heads_k = ir_role_heads(m, x->key);
        s.heads_v = ir_role_heads(m, x->value);
        s.heads_state = s.heads_k > s.heads_v ? s.heads_k : s.heads_v;
    }
    s.heads_out = s.heads_q > s.heads_state ? s.heads_q : s.heads_state;
    if (s.heads_state == 0 || s.heads_q == 0)
        return s;
    s.group_q = s.heads_q > s.heads_state ? s.heads_q / s.heads_state : 1;
    s.group_state = s.heads_state > s.heads_q ? s.heads_state / s.heads_q : 1;
    return s;
}

double ir_apply(ir_op op, double a, double b)
{
    switch (op) {
    case IR_OP_NEG: return -a;
    case IR_OP_ADD: return a + b;
    case IR_OP_SUB: return a - b;
    case IR_OP_MUL: return a * b;
    case IR_OP_DIV: return a / b;
    case IR_OP_POW: return pow(a, b);
    case IR_OP_MIN: return a < b ? a : b;
    case IR_OP_MAX: return a > b ? a : b;
    case IR_OP_EXP: return exp(a);
    case IR_OP_LOG: return log(a);
    case IR_OP_SQRT: return sqrt(a);
    case IR_OP_RSQRT: return 1.0 / sqrt(a);
    case IR_OP_ABS: return fabs(a);
    case IR_OP_TANH: return tanh(a);
    case IR_OP_SIGMOID: return a >= 0 ? 1.0 / (1.0 + exp(-a)) : exp(a) / (1.0 + exp(a));
    case IR_OP_LOGSIGMOID: return (a < 0 ? a : 0.0) - log1p(exp(-fabs(a)));
    case IR_OP_SOFTPLUS: return (a > 0 ? a : 0.0) + log1p(exp(-fabs(a)));
    case IR_OP_RELU: return a > 0 ? a : 0.0;
    case IR_OP_ELU: return a > 0 ? a : expm1(a);
    case IR_OP_SILU: return a >= 0 ? a / (1.0 + exp(-a)) : a * exp(a) / (1.0 + exp(a));
    default: return NAN; /* not an elementwise op */
    }
}

/* Mark what the roles reach, then slide the live values down, keeping their order (so operands still
 * come first) and rewriting every reference through the old-to-new map. */
bool ir_compact(ir_module *m)
{
    uint32_t *map = attnc_arena_alloc(m->arena, m->nvalues * sizeof *map);
    if (!map)
        return false;
    ir_ref *roles[IR_ROLE_COUNT];
    for (int i = 0; i < IR_ROLE_COUNT; i++) {
        roles[i] = ir_role_slot(m, (ir_role)i);
        if (*roles[i] && *roles[i] < m->nvalues)
            map[*roles[i]] = 1;
    }
    for (uint32_t i = m->nvalues; i-- > 1;) /* operands precede users: one backward sweep marks all */
        if (map[i])
            for (int k = 0; k < ir_op_arity((ir_op)m->values[i].op); k++)
                if (m->values[i].arg[k] < i)
                    map[m->values[i].arg[k]] = 1;
    uint32_t n = 1;
    for (uint32_t i = 1; i < m->nvalues; i++) {
        if (!map[i])
            continue;
        ir_value v = m->values[i];
        for (int k = 0; k < 2; k++)
            v.arg[k] = v.arg[k] ? map[v.arg[k]] : IR_NONE;
        map[i] = n;
        m->values[n++] = v;
    }
    m->nvalues = n;
    for (int i = 0; i < IR_ROLE_COUNT; i++)
        if (*roles[i])
            *roles[i] = map[*roles[i]];
    return true;
}
