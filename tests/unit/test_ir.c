/* tests/unit/test_ir.c: the IR builder (ir/ir.c): op and dtype tables, ir_add_value growth, ir_infer_type
 * broadcasting and its refusals, ir_compact, ir_apply (stable logsigmoid/softplus/sigmoid at +-1000),
 * ir_module_shape for GQA/GVA, and the interval analysis (ir/ir_range.c) on small modules. */
#include "test_util.h"

#include <math.h>

/* A module with head axes H (4 heads) and G (2 heads) and four tensors:
 *   0: input x [H, 8] in [-2, 3]     1: input s [H] (unbounded)
 *   2: param p [H] in [1, 2]         3: input y [G, 8] in [0, 4] */
static ir_module *small_module(attnc_arena *a)
{
    ir_module *m = ir_module_new(a);
    assert_non_null(m);
    m->axes = attnc_arena_alloc(a, 2 * sizeof *m->axes);
    m->axes[0] = (ir_axis){"H", 4, {0, 0, 0}};
    m->axes[1] = (ir_axis){"G", 2, {0, 0, 0}};
    m->naxes = 2;
    m->tensors = attnc_arena_alloc(a, 4 * sizeof *m->tensors);
    m->tensors[0] = (ir_tensor){.name = "x", .per_token = true, .axis = 0, .len = 8, .has_range = true, .lo = -2, .hi = 3};
    m->tensors[1] = (ir_tensor){.name = "s", .per_token = true, .axis = 0, .len = 1};
    m->tensors[2] = (ir_tensor){.name = "p", .per_token = false, .axis = 0, .len = 1, .has_range = true, .lo = 1, .hi = 2};
    m->tensors[3] = (ir_tensor){.name = "y", .per_token = true, .axis = 1, .len = 8, .has_range = true, .lo = 0, .hi = 4};
    m->ntensors = 4;
    return m;
}

/* Add a value typed by ir_infer_type (which must accept it). */
static ir_ref add(ir_module *m, ir_op op, ir_ref a, ir_ref b, uint32_t aux, double num)
{
    ir_type ta = a ? m->values[a].type : (ir_type){0};
    ir_type tb = b ? m->values[b].type : (ir_type){0};
    ir_value v = {.op = (uint8_t)op, .arg = {a, b}, .aux = aux, .num = num};
    const char *why = "";
    if (op == IR_OP_CONST)
        v.type = (ir_type){IR_VARY_CONST, IR_NO_AXIS, 1};
    else if (!ir_infer_type(m, op, &ta, &tb, aux, &v.type, &why))
        fail_msg("%s refused: %s", ir_op_name(op), why);
    return ir_add_value(m, v);
}

static void op_and_dtype_tables(void **state)
{
    (void)state;
    assert_int_equal(IR_OP_COUNT, 26);
    for (int i = 0; i < IR_OP_COUNT; i++) {
        const char *n = ir_op_name((ir_op)i);
        assert_int_equal(ir_op_by_name(n, strlen(n)), i);
    }
    assert_string_equal(ir_op_name(IR_OP_LOGSIGMOID), "logsigmoid");
    assert_int_equal(ir_op_arity(IR_OP_CONST), 0);
    assert_int_equal(ir_op_arity(IR_OP_EXP), 1);
    assert_int_equal(ir_op_arity(IR_OP_POW), 2);
    assert_int_equal(ir_op_kind_of(IR_OP_HEAD), IR_KIND_LEAF);
    assert_int_equal(ir_op_kind_of(IR_OP_SILU), IR_KIND_ELEM);
    assert_int_equal(ir_op_kind_of(IR_OP_L2NORM), IR_KIND_VEC);
    assert_int_equal(ir_op_by_name("exp", 2), IR_OP_COUNT); /* exact length only */
    assert_int_equal(ir_op_by_name("gelu", 4), IR_OP_COUNT);
    assert_string_equal(ir_op_name(IR_OP_COUNT), "?");
    ir_dtype dt;
    assert_true(ir_dtype_by_name("fp16", 4, &dt));
    assert_int_equal(dt, IR_DT_FP16);
    assert_false(ir_dtype_by_name("fp64", 4, &dt));
    assert_false(ir_dtype_by_name("bf1", 3, &dt));
    assert_string_equal(ir_dtype_name(IR_DT_BF16), "bf16");
    assert_string_equal(ir_decay_name(IR_DECAY_VECTOR), "vector");
    assert_string_equal(ir_norm_name(IR_NORM_MAXFLOOR), "max_floor");
    assert_string_equal(ir_role_name(IR_ROLE_IGATE), "input gate");
}

static void add_value_grows(void **state)
{
    (void)state;
    attnc_arena *a = attnc_arena_new();
    ir_module *m = ir_module_new(a);
    assert_int_equal(m->nvalues, 1); /* values[0] is the "none" slot */
    assert_int_equal(m->capvalues, 64);
    assert_int_equal(m->out_dtype, IR_DT_BF16);
    for (uint32_t i = 1; i <= 1000; i++) {
        ir_value v = {.op = IR_OP_CONST, .type = {IR_VARY_CONST, IR_NO_AXIS, 1}, .num = i * 0.5};
        assert_int_equal(ir_add_value(m, v), i);
    }
    assert_int_equal(m->nvalues, 1001);
    assert_int_equal(m->capvalues, 1024);
    for (uint32_t i = 1; i <= 1000; i++)
        assert_true(m->values[i].num == i * 0.5);
    assert_false(attnc_arena_failed(a));
    attnc_arena_free(a);
}

static void infer_type_broadcasting(void **state)
{
    (void)state;
    attnc_arena *a = attnc_arena_new();
    ir_module *m = small_module(a);
    ir_type t;
    const char *why;
    ir_type x = {IR_VARY_TOKEN, 0, 8}, s = {IR_VARY_TOKEN, 0, 1}, c = {IR_VARY_CONST, IR_NO_AXIS, 1};
    ir_type p = {IR_VARY_HEAD, 1, 1}, y = {IR_VARY_TOKEN, 1, 8}, hv = {IR_VARY_HEAD, IR_NO_AXIS, 8};
    /* scalar meets vector: the vector's length; const meets token: token */
    assert_true(ir_infer_type(m, IR_OP_MUL, &s, &x, 0, &t, &why));
    assert_int_equal(t.vary, IR_VARY_TOKEN);
    assert_int_equal(t.axis, 0);
    assert_int_equal(t.len, 8);
    assert_true(ir_infer_type(m, IR_OP_ADD, &c, &p, 0, &t, &why));
    assert_int_equal(t.vary, IR_VARY_HEAD);
    assert_int_equal(t.axis, 1);
    assert_int_equal(t.len, 1);
    /* a value without a head axis meets any axis */
    assert_true(ir_infer_type(m, IR_OP_SUB, &hv, &y, 0, &t, &why));
    assert_int_equal(t.axis, 1);
    assert_int_equal(t.len, 8);
    assert_int_equal(t.vary, IR_VARY_TOKEN);
    /* refusals */
    assert_false(ir_infer_type(m, IR_OP_ADD, &x, &y, 0, &t, &why));
    assert_string_equal(why, "operands on different head axes");
    ir_type x4 = {IR_VARY_TOKEN, 0, 4};
    assert_false(ir_infer_type(m, IR_OP_MAX, &x, &x4, 0, &t, &why));
    assert_string_equal(why, "vectors of different lengths");
    /* unary ops keep the type; VEC ops too, except taylor2's length */
    assert_true(ir_infer_type(m, IR_OP_EXP, &x, NULL, 0, &t, &why));
    assert_int_equal(t.len, 8);
    assert_true(ir_infer_type(m, IR_OP_L2NORM, &x, NULL, 0, &t, &why));
    assert_int_equal(t.len, 8);
    assert_true(ir_infer_type(m, IR_OP_TAYLOR2, &x, NULL, 0, &t, &why));
    assert_int_equal(t.len, ir_taylor2_len(8));
    assert_int_equal(ir_taylor2_len(8), 45);
    assert_int_equal(ir_taylor2_len(16), 153);
    ir_type wide = {IR_VARY_TOKEN, 0, 360};
    assert_true(ir_infer_type(m, IR_OP_TAYLOR2, &wide, NULL, 0, &t, &why));
    assert_int_equal(t.len, 65341);
    wide.len = 361;
    assert_false(ir_infer_type(m, IR_OP_TAYLOR2, &wide, NULL, 0, &t, &why));
    assert_string_equal(why, "taylor2 of a vector this long is too large");
    /* leaves */
    assert_true(ir_infer_type(m, IR_OP_HEAD, NULL, NULL, 1, &t, &why));
    assert_int_equal(t.vary, IR_VARY_HEAD);
    assert_int_equal(t.axis, 1);
    assert_false(ir_infer_type(m, IR_OP_HEAD, NULL, NULL, 2, &t, &why));
    assert_string_equal(why, "head index of an unknown head axis");
    assert_true(ir_infer_type(m, IR_OP_INPUT, NULL, NULL, 0, &t, &why));
    assert_int_equal(t.vary, IR_VARY_TOKEN);
    assert_int_equal(t.len, 8);
    assert_true(ir_infer_type(m, IR_OP_PARAM, NULL, NULL, 2, &t, &why));
    assert_int_equal(t.vary, IR_VARY_HEAD);
    assert_false(ir_infer_type(m, IR_OP_INPUT, NULL, NULL, 2, &t, &why));
    assert_string_equal(why, "'input' names a parameter");
    assert_false(ir_infer_type(m, IR_OP_PARAM, NULL, NULL, 0, &t, &why));
    assert_string_equal(why, "'param' names an input");
    assert_false(ir_infer_type(m, IR_OP_INPUT, NULL, NULL, 4, &t, &why));
    assert_string_equal(why, "unknown tensor");
    attnc_arena_free(a);
}

static void compact_drops_dead_values(void **state)
{
    (void)state;
    attnc_arena *a = attnc_arena_new();
    ir_module *m = small_module(a);
    ir_ref x = add(m, IR_OP_INPUT, 0, 0, 0, 0);        /* 1 live */
    ir_ref c = add(m, IR_OP_CONST, 0, 0, 0, 2);        /* 2 dead */
    ir_ref d = add(m, IR_OP_CONST, 0, 0, 0, 0.5);      /* 3 live */
    ir_ref q = add(m, IR_OP_MUL, x, d, 0, 0);          /* 4 live: query */
    ir_ref dead = add(m, IR_OP_ADD, x, c, 0, 0);       /* 5 dead */
    ir_ref k = add(m, IR_OP_L2NORM, x, 0, 0, 0);       /* 6 live: key */
    ir_ref s = add(m, IR_OP_INPUT, 0, 0, 1, 0);        /* 7 live */
    ir_ref g = add(m, IR_OP_LOGSIGMOID, s, 0, 0, 0);   /* 8 live: gate */
    (void)dead;
    m->linear.present = true;
    m->linear.query = q;
    m->linear.key = k;
    m->linear.value = x;
    m->linear.gate = g;
    m->linear.decay = IR_DECAY_SCALAR;
    assert_int_equal(m->nvalues, 9);
    assert_true(ir_compact(m));
    assert_int_equal(m->nvalues, 7);
    /* order kept, references renumbered */
    assert_int_equal(m->values[1].op, IR_OP_INPUT);
    assert_int_equal(m->values[2].op, IR_OP_CONST);
    assert_true(m->values[2].num == 0.5);
    assert_int_equal(m->values[3].op, IR_OP_MUL);
    assert_int_equal(m->values[3].arg[0], 1);
    assert_int_equal(m->values[3].arg[1], 2);
    assert_int_equal(m->values[4].op, IR_OP_L2NORM);
    assert_int_equal(m->values[4].arg[0], 1);
    assert_int_equal(m->values[4].arg[1], IR_NONE);
    assert_int_equal(m->values[6].op, IR_OP_LOGSIGMOID);
    assert_int_equal(m->values[6].arg[0], 5);
    assert_int_equal(m->linear.query, 3);
    assert_int_equal(m->linear.key, 4);
    assert_int_equal(m->linear.value, 1);
    assert_int_equal(m->linear.gate, 6);
    assert_int_equal(m->linear.beta, IR_NONE); /* absent roles stay absent */
    /* compacting again changes nothing */
    assert_true(ir_compact(m));
    assert_int_equal(m->nvalues, 7);
    assert_int_equal(m->linear.gate, 6);
    attnc_arena_free(a);
}

static void apply_values(void **state)
{
    (void)state;
    const double e = 1e-15;
    assert_true(ir_apply(IR_OP_NEG, 3, 0) == -3);
    assert_true(ir_apply(IR_OP_ADD, 1.5, 2) == 3.5);
    assert_true(ir_apply(IR_OP_SUB, 1.5, 2) == -0.5);
    assert_true(ir_apply(IR_OP_MUL, 1.5, 2) == 3);
    assert_true(ir_apply(IR_OP_DIV, 1, 4) == 0.25);
    assert_true(ir_apply(IR_OP_POW, 2, 10) == 1024);
    assert_true(fabs(ir_apply(IR_OP_POW, 128, -0.5) - 1 / sqrt(128)) < e);
    assert_true(ir_apply(IR_OP_MIN, -1, 2) == -1);
    assert_true(ir_apply(IR_OP_MAX, -1, 2) == 2);
    assert_true(ir_apply(IR_OP_EXP, 0, 0) == 1);
    assert_true(ir_apply(IR_OP_LOG, 1, 0) == 0);
    assert_true(ir_apply(IR_OP_SQRT, 9, 0) == 3);
    assert_true(ir_apply(IR_OP_RSQRT, 4, 0) == 0.5);
    assert_true(ir_apply(IR_OP_ABS, -2.5, 0) == 2.5);
    assert_true(ir_apply(IR_OP_TANH, 0, 0) == 0);
    assert_true(ir_apply(IR_OP_RELU, -3, 0) == 0);
    assert_true(ir_apply(IR_OP_RELU, 3, 0) == 3);
    assert_true(ir_apply(IR_OP_ELU, 2, 0) == 2);
    assert_true(fabs(ir_apply(IR_OP_ELU, -1, 0) - (exp(-1) - 1)) < e);
    assert_true(fabs(ir_apply(IR_OP_SIGMOID, 0, 0) - 0.5) < e);
    assert_true(fabs(ir_apply(IR_OP_SIGMOID, 2, 0) - 1 / (1 + exp(-2))) < e);
    assert_true(fabs(ir_apply(IR_OP_SIGMOID, -2, 0) - 1 / (1 + exp(2))) < e);
    assert_true(fabs(ir_apply(IR_OP_LOGSIGMOID, 0, 0) + log(2)) < e);
    assert_true(fabs(ir_apply(IR_OP_SOFTPLUS, 0, 0) - log(2)) < e);
    assert_true(fabs(ir_apply(IR_OP_LOGSIGMOID, 3, 0) - log(1 / (1 + exp(-3)))) < e);
    assert_true(fabs(ir_apply(IR_OP_SOFTPLUS, -3, 0) - log1p(exp(-3))) < e);
    assert_true(fabs(ir_apply(IR_OP_SILU, 2, 0) - 2 / (1 + exp(-2))) < e);
    assert_true(fabs(ir_apply(IR_OP_SILU, -2, 0) + 2 / (1 + exp(2))) < e);
    /* stable at the extremes: finite, and the right limits (the naive formulas give inf or NaN) */
    assert_true(ir_apply(IR_OP_LOGSIGMOID, -1000, 0) == -1000);
    assert_true(ir_apply(IR_OP_LOGSIGMOID, 1000, 0) == 0);
    assert_true(ir_apply(IR_OP_SOFTPLUS, 1000, 0) == 1000);
    assert_true(ir_apply(IR_OP_SOFTPLUS, -1000, 0) == 0);
    assert_true(ir_apply(IR_OP_SIGMOID, 1000, 0) == 1);
    assert_true(ir_apply(IR_OP_SIGMOID, -1000, 0) == 0);
    assert_true(ir_apply(IR_OP_SILU, -1000, 0) == 0);
    assert_true(ir_apply(IR_OP_SILU, 1000, 0) == 1000);
    assert_true(ir_apply(IR_OP_ELU, -1000, 0) == -1);
    assert_true(ir_apply(IR_OP_TANH, -1000, 0) == -1);
    /* moderately large arguments keep their precision */
    assert_true(fabs(ir_apply(IR_OP_LOGSIGMOID, -40, 0) - (-40 - exp(-40))) < 1e-13);
    assert_true(fabs(ir_apply(IR_OP_SOFTPLUS, 40, 0) - (40 + exp(-40))) < 1e-13);
    /* what is not an elementwise op has no value */
    assert_true(isnan(ir_apply(IR_OP_L2NORM, 1, 0)));
    assert_true(isnan(ir_apply(IR_OP_CONST, 1, 0)));
}

/* Interval analysis: sound bounds from the declared ranges, infinite where nothing is known. */
static void ranges_on_a_small_module(void **state)
{
    (void)state;
    attnc_arena *a = attnc_arena_new();
    ir_module *m = small_module(a);
    ir_ref x = add(m, IR_OP_INPUT, 0, 0, 0, 0);          /* [-2, 3] */
    ir_ref s = add(m, IR_OP_INPUT, 0, 0, 1, 0);          /* unbounded */
    ir_ref p = add(m, IR_OP_PARAM, 0, 0, 2, 0);          /* [1, 2] */
    ir_ref y = add(m, IR_OP_INPUT, 0, 0, 3, 0);          /* [0, 4] */
    ir_ref c0 = add(m, IR_OP_CONST, 0, 0, 0, 0);
    ir_ref c2 = add(m, IR_OP_CONST, 0, 0, 0, 2);
    ir_ref h = add(m, IR_OP_HEAD, 0, 0, 0, 0);           /* [0, 3] */
    struct { ir_ref r; double lo, hi; } want[] = {
        {x, -2, 3},
        {s, -INFINITY, INFINITY},
        {h, 0, 3},
        {c2, 2, 2},
        {add(m, IR_OP_NEG, x, 0, 0, 0), -3, 2},
        {add(m, IR_OP_ADD, x, p, 0, 0), -1, 5},
        {add(m, IR_OP_SUB, x, p, 0, 0), -4, 2},
        {add(m, IR_OP_MUL, x, x, 0, 0), -6, 9},         /* not tight: x*x >= 0, but sound */
        {add(m, IR_OP_MUL, c0, s, 0, 0), 0, 0},          /* 0 * anything is 0 */
        {add(m, IR_OP_DIV, x, p, 0, 0), -2, 3},
        {add(m, IR_OP_DIV, p, x, 0, 0), -INFINITY, INFINITY}, /* the divisor straddles 0 */
        {add(m, IR_OP_POW, p, c2, 0, 0), 1, 4},          /* positive base, constant exponent */
        {add(m, IR_OP_POW, c2, p, 0, 0), 2, 4},          /* constant base, monotone in the exponent */
        {add(m, IR_OP_POW, x, c2, 0, 0), -INFINITY, INFINITY},
        {add(m, IR_OP_MIN, x, p, 0, 0), -2, 2},
        {add(m, IR_OP_MAX, x, p, 0, 0), 1, 3},
        {add(m, IR_OP_EXP, c0, 0, 0, 0), 1, 1},
        {add(m, IR_OP_LOG, x, 0, 0, 0), -INFINITY, INFINITY}, /* may be NaN */
        {add(m, IR_OP_LOG, y, 0, 0, 0), -INFINITY, log(4)},
        {add(m, IR_OP_SQRT, y, 0, 0, 0), 0, 2},
        {add(m, IR_OP_RSQRT, p, 0, 0, 0), 1 / sqrt(2), 1},
        {add(m, IR_OP_RSQRT, y, 0, 0, 0), 0, INFINITY},
        {add(m, IR_OP_ABS, x, 0, 0, 0), 0, 3},
        {add(m, IR_OP_TANH, s, 0, 0, 0), -1, 1},
        {add(m, IR_OP_SIGMOID, s, 0, 0, 0), 0, 1},
        {add(m, IR_OP_LOGSIGMOID, s, 0, 0, 0), -INFINITY, 0},
        {add(m, IR_OP_SOFTPLUS, s, 0, 0, 0), 0, INFINITY},
        {add(m, IR_OP_RELU, x, 0, 0, 0), 0, 3},
        {add(m, IR_OP_ELU, s, 0, 0, 0), -1, INFINITY},
        {add(m, IR_OP_SILU, x, 0, 0, 0), -0.27846454276107380, 3},
        {add(m, IR_OP_L2NORM, x, 0, 0, 0), -1, 1},
        {add(m, IR_OP_TAYLOR2, x, 0, 0, 0), -INFINITY, INFINITY},
    };
    ir_interval *r = ir_ranges(m, a);
    assert_non_null(r);
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        ir_interval got = r[want[i].r];
        if (!(fabs(got.lo - want[i].lo) <= 1e-15 || got.lo == want[i].lo) ||
            !(fabs(got.hi - want[i].hi) <= 1e-15 || got.hi == want[i].hi))
            fail_msg("%%%u (%s): [%g, %g], expected [%g, %g]", want[i].r, ir_op_name((ir_op)m->values[want[i].r].op),
                     got.lo, got.hi, want[i].lo, want[i].hi);
    }
    attnc_arena_free(a);
}

/* The gate of GLA-style specs is proven <= 0 through logsigmoid; a decay through exp of a negative. */
static void ranges_prove_the_rules_of_real_specs(void **state)
{
    (void)state;
    unit_src u;
    unit_spec(&u, "attention t { dim K = 64; heads H = 4;\n"
                  "  input q: bf16[H, K]; input a: bf16[H]; param A_log: fp32[H]; param dt_bias: fp32[H];\n"
                  "  linear { query = q; key = q; value = q; gate = -exp(A_log) * softplus(a + dt_bias); } }");
    assert_non_null(u.m);
    ir_interval *r = ir_ranges(u.m, u.arena);
    ir_interval g = r[u.m->linear.gate];
    assert_true(g.lo == -INFINITY);
    assert_true(g.hi == 0);
    unit_close(&u);
}

/* ir_module_shape: GQA (more query heads than state heads) and GVA (more value heads). */
static void shape_gqa_gva(void **state)
{
    (void)state;
    unit_src u;
    unit_spec(&u, "attention t { dim K = 64; heads Hq = 16, Hkv = 4;\n"
                  "  input q: bf16[Hq, K]; input k: bf16[Hkv, K]; input v: bf16[Hkv, K];\n"
                  "  linear { query = q; key = k; value = v; } }");
    assert_non_null(u.m);
    ir_shape s = ir_module_shape(u.m);
    assert_int_equal(s.K, 64);
    assert_int_equal(s.V, 64);
    assert_int_equal(s.heads_q, 16);
    assert_int_equal(s.heads_k, 4);
    assert_int_equal(s.heads_v, 4);
    assert_int_equal(s.heads_state, 4);
    assert_int_equal(s.heads_out, 16);
    assert_int_equal(s.group_q, 4);
    assert_int_equal(s.group_state, 1);
    assert_int_equal(ir_head_map(13, 16, 4), 3);
    unit_close(&u);
    unit_spec(&u, "attention t { dim K = 32, V = 96; heads Hqk = 2, Hv = 8;\n"
                  "  input q: bf16[Hqk, K]; input k: bf16[Hqk, K]; input v: bf16[Hv, V]; input b: bf16[Hv];\n"
                  "  linear { query = q; key = l2norm(k); value = v; beta = sigmoid(b); update delta; } }");
    assert_non_null(u.m);
    s = ir_module_shape(u.m);
    assert_int_equal(s.K, 32);
    assert_int_equal(s.V, 96);
    assert_int_equal(s.heads_q, 2);
    assert_int_equal(s.heads_state, 8);
    assert_int_equal(s.heads_out, 8);
    assert_int_equal(s.group_q, 1);
    assert_int_equal(s.group_state, 4);
    assert_int_equal(ir_head_map(5, 8, 2), 1);
    unit_close(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(op_and_dtype_tables),
        cmocka_unit_test(add_value_grows),
        cmocka_unit_test(infer_type_broadcasting),
        cmocka_unit_test(compact_drops_dead_values),
        cmocka_unit_test(apply_values),
        cmocka_unit_test(ranges_on_a_small_module),
        cmocka_unit_test(ranges_prove_the_rules_of_real_specs),
        cmocka_unit_test(shape_gqa_gva),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
