/* tests/unit/test_verify.c: the verifier (ir/ir_verify.c).  A valid module is read from IR text, broken
 * in one place by hand, and each structural invariant and each rule of a variant must reject it with its
 * own message. */
#include "test_util.h"

#include <math.h>

static const char base_ir[] =
    "attnc-ir 1\n"
    "variant v\n"
    "dim K = 64\n"
    "dim V = 32\n"
    "heads H = 4\n"
    "input q : bf16 [H, 64]\n"
    "input k : bf16 [H, 64]\n"
    "input v : bf16 [H, 32]\n"
    "input a : bf16 [H] in [-4, 4]\n"
    "input b : bf16 [H]\n"
    "%1 = input q : token H 64\n"
    "%2 = input k : token H 64\n"
    "%3 = input v : token H 32\n"
    "%4 = input a : token H 1\n"
    "%5 = input b : token H 1\n"
    "%6 = l2norm %2 : token H 64\n"
    "%7 = logsigmoid %4 : token H 1\n"
    "%8 = sigmoid %5 : token H 1\n"
    "linear {\n"
    "  query %1\n"
    "  key %6\n"
    "  value %3\n"
    "  decay scalar %7\n"
    "  update delta %8\n"
    "  normalize rmsnorm 9.9999999999999995e-07\n"
    "}\n"
    "mask causal\n"
    "state none\n"
    "chunk 64\n"
    "output bf16\n";

static int setup(void **state)
{
    unit_src *u = malloc(sizeof *u);
    unit_ir(u, base_ir);
    assert_non_null(u->m);
    assert_int_equal(u->diags.n, 0);
    *state = u;
    return 0;
}

static int teardown(void **state)
{
    unit_src *u = *state;
    unit_close(u);
    free(u);
    return 0;
}

/* ir_verify refuses the module, and one of its diagnostics is exactly `msg`. */
static void expect_refused(unit_src *u, const char *msg)
{
    uint32_t before = u->diags.n;
    assert_false(ir_verify(u->m, &u->diags));
    for (uint32_t i = before; i < u->diags.n; i++)
        if (strcmp(u->diags.list[i].message, msg) == 0)
            return;
    for (uint32_t i = before; i < u->diags.n; i++)
        print_message("  got: %s\n", u->diags.list[i].message);
    fail_msg("no diagnostic '%s'", msg);
}

static void base_module_is_valid(void **state)
{
    unit_src *u = *state;
    assert_true(ir_verify(u->m, &u->diags));
    assert_int_equal(u->diags.n, 0);
    assert_true(ir_verify_rules(u->m, &u->diags));
}

/* ---- structure ----------------------------------------------------------------------------- */

static void forward_reference(void **state)
{
    unit_src *u = *state;
    u->m->values[6].arg[0] = 7;
    expect_refused(u, "%6 uses %7, which is not defined before it");
}

static void missing_operand(void **state)
{
    unit_src *u = *state;
    u->m->values[7].arg[0] = IR_NONE;
    expect_refused(u, "%7 uses %0, which is not defined before it");
}

static void self_reference(void **state)
{
    unit_src *u = *state;
    u->m->values[8].arg[0] = 8;
    expect_refused(u, "%8 uses %8, which is not defined before it");
}

static void operand_the_op_does_not_take(void **state)
{
    unit_src *u = *state;
    u->m->values[6].arg[1] = 1;
    expect_refused(u, "%6 has an operand its op does not take");
}

static void invalid_op(void **state)
{
    unit_src *u = *state;
    u->m->values[8].op = IR_OP_COUNT;
    expect_refused(u, "%8 has an invalid op");
}

static void wrong_type(void **state)
{
    unit_src *u = *state;
    u->m->values[6].type.len = 32;
    expect_refused(u, "%6: its type is not the one its op and operands give");
}

static void wrong_vary(void **state)
{
    unit_src *u = *state;
    u->m->values[7].type.vary = IR_VARY_HEAD;
    expect_refused(u, "%7: its type is not the one its op and operands give");
}

static void vector_op_on_a_scalar(void **state)
{
    unit_src *u = *state;
    u->m->values[7].op = IR_OP_L2NORM; /* of %4, a scalar */
    expect_refused(u, "%7: 'l2norm' needs a vector operand");
}

static void operands_that_do_not_meet(void **state)
{
    unit_src *u = *state;
    ir_value *v = &u->m->values[8];
    v->op = IR_OP_ADD;
    v->arg[0] = 1; /* 64 channels */
    v->arg[1] = 3; /* 32 channels */
    expect_refused(u, "%8: cannot apply 'add': vectors of different lengths");
}

static void constant_not_finite(void **state)
{
    unit_src *u = *state;
    ir_value c = {.op = IR_OP_CONST, .type = {IR_VARY_CONST, IR_NO_AXIS, 1}, .num = INFINITY};
    assert_int_equal(ir_add_value(u->m, c), 9);
    expect_refused(u, "%9 is a constant that is not finite");
}

static void tensor_without_head_axis(void **state)
{
    unit_src *u = *state;
    u->m->tensors[0].axis = 7;
    expect_refused(u, "tensor 'q' has no valid head axis");
}

static void tensor_with_an_empty_range(void **state)
{
    unit_src *u = *state;
    u->m->tensors[3].lo = 5;
    expect_refused(u, "tensor 'a' has an invalid range [5, 4]");
}

static void missing_role(void **state)
{
    unit_src *u = *state;
    u->m->linear.query = IR_NONE;
    expect_refused(u, "the linear part has no valid query");
}

static void role_out_of_range(void **state)
{
    unit_src *u = *state;
    u->m->linear.value = 99;
    expect_refused(u, "the linear part has no valid value");
}

static void gate_without_decay_kind(void **state)
{
    unit_src *u = *state;
    u->m->linear.decay = IR_DECAY_NONE;
    expect_refused(u, "the linear part's gate does not match its decay kind");
}

static void decay_kind_without_gate(void **state)
{
    unit_src *u = *state;
    u->m->linear.gate = IR_NONE;
    expect_refused(u, "the linear part's gate does not match its decay kind");
}

static void constant_decay_not_a_log(void **state)
{
    unit_src *u = *state;
    u->m->linear.decay = IR_DECAY_CONST; /* the gate %7 is a logsigmoid, not log(lambda) */
    expect_refused(u, "a constant decay's gate must be a 'log' of the decay");
}

static void dangling_beta(void **state)
{
    unit_src *u = *state;
    u->m->linear.beta = 50;
    expect_refused(u, "the linear part's beta is not a valid value");
}

static void dangling_input_gate(void **state)
{
    unit_src *u = *state;
    u->m->linear.igate = 50;
    expect_refused(u, "the linear part's input gate is not a valid value");
}

static void bad_normaliser(void **state)
{
    unit_src *u = *state;
    u->m->linear.eps = 2;
    expect_refused(u, "the linear part's normalisation is invalid");
}

static void no_part(void **state)
{
    unit_src *u = *state;
    u->m->linear.present = false;
    expect_refused(u, "the module has neither a linear nor a softmax part");
}

static void state_without_linear_part(void **state)
{
    unit_src *u = *state;
    u->m->linear.present = false;
    u->m->state_out = true;
    expect_refused(u, "state input or output needs a linear part");
}

static void softmax_without_roles(void **state)
{
    unit_src *u = *state;
    u->m->softmax.present = true;
    u->m->softmax.query = 1;
    u->m->softmax.key = 2;
    expect_refused(u, "the softmax part needs a valid query, key and value");
}

/* ---- the rules of a variant ---------------------------------------------------------------- */

static void query_must_vary_per_token(void **state)
{
    unit_src *u = *state;
    u->m->values[1] = (ir_value){.op = IR_OP_CONST, .type = {IR_VARY_CONST, IR_NO_AXIS, 1}, .num = 1};
    expect_refused(u, "the query must vary per token (it must depend on an input)");
}

static void key_length_must_match_query(void **state)
{
    unit_src *u = *state;
    u->m->linear.key = 3; /* 32 features against the query's 64 */
    expect_refused(u, "the key has 32 features but the query has 64");
}

static void gate_must_be_provably_nonpositive(void **state)
{
    unit_src *u = *state;
    u->m->values[7].op = IR_OP_SIGMOID; /* of a in [-4, 4] */
    char msg[200];
    snprintf(msg, sizeof msg, "the gate is a log-space decay and must be <= 0; here it lies in [%g, %g]",
             ir_apply(IR_OP_SIGMOID, -4, 0), ir_apply(IR_OP_SIGMOID, 4, 0));
    assert_string_equal(msg, "the gate is a log-space decay and must be <= 0; here it lies in [0.0179862, 0.982014]");
    expect_refused(u, msg);
    /* located at the gate's value (IR text has no role bindings): line 17 */
    for (uint32_t i = 0; i < u->diags.n; i++)
        if (strcmp(u->diags.list[i].message, msg) == 0) {
            uint32_t line, col;
            unit_diag_at(u, i, &line, &col);
            assert_int_equal(line, 17);
            assert_int_equal(col, 1);
        }
}

static void scalar_decay_needs_a_scalar_gate(void **state)
{
    unit_src *u = *state;
    u->m->linear.gate = 6; /* a vector of K (and not <= 0) under 'decay scalar' */
    expect_refused(u, "a 'scalar' decay needs a gate of one number, not a vector of 64");
}

static void beta_must_lie_in_0_2(void **state)
{
    unit_src *u = *state;
    u->m->values[8].op = IR_OP_EXP; /* exp of an unbounded b */
    expect_refused(u, "beta must lie in [0, 2]; here it lies in [0, inf]");
}

static void delta_rule_needs_beta(void **state)
{
    unit_src *u = *state;
    u->m->linear.beta = IR_NONE;
    expect_refused(u, "'update delta' needs a 'beta' (the write strength)");
}

static void beta_needs_the_delta_rule(void **state)
{
    unit_src *u = *state;
    u->m->linear.update = IR_UPDATE_ADD;
    expect_refused(u, "'beta' is used only by the delta rule ('update delta')");
}

static void delta_rule_has_no_denominator(void **state)
{
    unit_src *u = *state;
    u->m->linear.norm = IR_NORM_DENOM;
    expect_refused(u, "the delta rule has no running denominator; use rmsnorm, layernorm or none");
}

static void mask_none_needs_a_plain_linear_part(void **state)
{
    unit_src *u = *state;
    u->m->mask = IR_MASK_NONE;
    expect_refused(u, "'mask none' (bidirectional) needs a linear part without gate, decay, delta rule, input gate or "
                      "max_floor normaliser");
}

static void chunk_sizes(void **state)
{
    unit_src *u = *state;
    u->m->chunk = 48;
    expect_refused(u, "a chunk size must be a power of two from 16 to 256, not 48");
    u->m->chunk = 8;
    expect_refused(u, "a chunk size must be a power of two from 16 to 256, not 8");
    u->m->chunk = 256;
    expect_refused(u, "the delta rule works with chunks of at most 128 tokens, not 256");
    u->m->chunk = 128;
    assert_true(ir_verify(u->m, &u->diags));
    u->m->chunk = 0; /* auto */
    assert_true(ir_verify(u->m, &u->diags));
}

static void delta_without_l2norm_is_only_a_warning(void **state)
{
    unit_src *u = *state;
    u->m->linear.key = 2;
    assert_true(ir_verify(u->m, &u->diags));
    assert_int_equal(u->diags.errors, 0);
    assert_int_equal(u->diags.warnings, 1);
    assert_string_equal(u->diags.list[0].message,
                        "the delta rule is stable only for unit-norm keys; consider 'key = l2norm(...)'");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(base_module_is_valid),
        T(forward_reference),
        T(missing_operand),
        T(self_reference),
        T(operand_the_op_does_not_take),
        T(invalid_op),
        T(wrong_type),
        T(wrong_vary),
        T(vector_op_on_a_scalar),
        T(operands_that_do_not_meet),
        T(constant_not_finite),
        T(tensor_without_head_axis),
        T(tensor_with_an_empty_range),
        T(missing_role),
        T(role_out_of_range),
        T(gate_without_decay_kind),
        T(decay_kind_without_gate),
        T(constant_decay_not_a_log),
        T(dangling_beta),
        T(dangling_input_gate),
        T(bad_normaliser),
        T(no_part),
        T(state_without_linear_part),
        T(softmax_without_roles),
        T(query_must_vary_per_token),
        T(key_length_must_match_query),
        T(gate_must_be_provably_nonpositive),
        T(scalar_decay_needs_a_scalar_gate),
        T(beta_must_lie_in_0_2),
        T(delta_rule_needs_beta),
        T(beta_needs_the_delta_rule),
        T(delta_rule_has_no_denominator),
        T(mask_none_needs_a_plain_linear_part),
        T(chunk_sizes),
        T(delta_without_l2norm_is_only_a_warning),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
