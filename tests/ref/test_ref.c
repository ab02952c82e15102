/* tests/ref/test_ref.c: unit tests of the float64 reference (reference/).
 *
 * Modules are built programmatically (mod_* helpers below) for every class the IR expresses; types come
 * from ir_infer_type, as the frontend would give them.  What is checked:
 *   - the two evaluators agree: chunked (C in 1, 3, 16, 64; T not a multiple of C; varlen with h0) equals
 *     recurrent to 1e-10 relative, for outputs and final states;
 *   - closed forms that both could get wrong together: one token (o = (q.k) v), two tokens of a constant
 *     decay, one delta step from h0, DENOM, RMS/LAYER, window 1 softmax, mLSTM one token, mLSTM against
 *     its unstabilised definition, mLSTM shift invariance with input gates 300-800, bidirectional sums;
 *   - structure: a packed varlen run equals each sequence run alone; GQA/GVA equal the same model with
 *     the shared heads replicated;
 *   - drawing: determinism, ranges, dtype rounding (ties to even, subnormals, overflow);
 *   - the op evaluator against libm formulas, taylor2's kernel identity, l2norm, head;
 *   - errors: unsupported modules and mismatched results are refused with a diagnostic.
 *
 * `test_ref --dump DIR` writes a few cases as JSON for tests/ref/crosscheck.py and runs no test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <math.h>

#include "ref.h"

/* ------------------------------------------------------------------------------------------------- */
/* fixture                                                                                            */

typedef struct fixture {
    attnc_arena *a;
    attnc_diags diags;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->a = attnc_arena_new();
    if (!f->a) {
        free(f);
        return -1;
    }
    attnc_diags_init(&f->diags, f->a);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    attnc_arena_free(f->a);
    free(f);
    return 0;
}

static void print_diags(const attnc_diags *d)
{
    for (uint32_t i = 0; i < d->n; i++)
        print_error("diag: %s\n", d->list[i].message);
}

/* ------------------------------------------------------------------------------------------------- */
/* module building                                                                                    */

#define MAX_AXES 8
#define MAX_TENSORS 32

static ir_module *mod_new(attnc_arena *a, const char *name)
{
    ir_module *m = ir_module_new(a);
    assert_non_null(m);
    m->name = name;
    m->axes = attnc_arena_alloc(a, MAX_AXES * sizeof *m->axes);
    m->tensors = attnc_arena_alloc(a, MAX_TENSORS * sizeof *m->tensors);
    assert_non_null(m->axes);
    assert_non_null(m->tensors);
    m->linear.eps = 1e-6;
    return m;
}

static uint32_t mod_axis(ir_module *m, const char *name, uint32_t count)
{
    assert_true(m->naxes < MAX_AXES);
    m->axes[m->naxes] = (ir_axis){.name = name, .count = count};
    return m->naxes++;
}

static uint32_t mod_tensor(ir_module *m, const char *name, bool per_token, uint32_t axis, uint32_t len)
{
    assert_true(m->ntensors < MAX_TENSORS);
    m->tensors[m->ntensors] = (ir_tensor){.name = name, .dtype = IR_DT_BF16, .per_token = per_token,
                                          .axis = (uint8_t)axis, .len = (uint16_t)len};
    return m->ntensors++;
}

static ir_ref mod_val(ir_module *m, ir_op op, ir_ref x, ir_ref y, uint32_t aux, double number)
{
    ir_value v = {.op = (uint8_t)op, .arg = {x, y}, .aux = aux, .num = number};
    const char *why = NULL;
    bool ok = ir_infer_type(m, op, x ? &m->values[x].type : NULL, y ? &m->values[y].type : NULL, aux, &v.type,
                            &why);
    if (!ok)
        print_error("ir_infer_type(%s): %s\n", ir_op_name(op), why ? why : "?");
    assert_true(ok);
    ir_ref r = ir_add_value(m, v);
    assert_true(r != IR_NONE);
    return r;
}

static ir_ref op1(ir_module *m, ir_op op, ir_ref x) { return mod_val(m, op, x, IR_NONE, 0, 0); }
static ir_ref op2(ir_module *m, ir_op op, ir_ref x, ir_ref y) { return mod_val(m, op, x, y, 0, 0); }
static ir_ref num(ir_module *m, double x) { return mod_val(m, IR_OP_CONST, IR_NONE, IR_NONE, 0, x); }
static ir_ref head(ir_module *m, uint32_t axis) { return mod_val(m, IR_OP_HEAD, IR_NONE, IR_NONE, axis, 0); }

/* A per-token input (or per-head parameter) tensor and the value that reads it. */
static ir_ref input(ir_module *m, const char *name, uint32_t axis, uint32_t len)
{
    return mod_val(m, IR_OP_INPUT, IR_NONE, IR_NONE, mod_tensor(m, name, true, axis, len), 0);
}

static ir_ref param(ir_module *m, const char *name, uint32_t axis, uint32_t len)
{
    return mod_val(m, IR_OP_PARAM, IR_NONE, IR_NONE, mod_tensor(m, name, false, axis, len), 0);
}

static ir_ref input_range(ir_module *m, const char *name, uint32_t axis, uint32_t len, double lo, double hi)
{
    ir_ref r = input(m, name, axis, len);
    ir_tensor *t = &m->tensors[m->ntensors - 1];
    t->has_range = true;
    t->lo = lo;
    t->hi = hi;
    return r;
}

typedef enum fmap { MAP_ID, MAP_ELU1, MAP_RELU, MAP_TAYLOR2 } fmap;

typedef enum gate_kind {
    GATE_NONE,
    GATE_RETNET,  /* log(1 - 2^(-5-h)), per head: CONST */
    GATE_MAMBA,   /* -exp(A_h) * softplus(dt_t + bias_h): SCALAR */
    GATE_LOGSIG,  /* logsigmoid(f_t): SCALAR (mLSTM forget gate, gated delta) */
    GATE_GLA,     /* logsigmoid(x_t)/16 per channel: VECTOR */
    GATE_CONSTNUM /* one number for every head: CONST without an axis */
} gate_kind;

typedef struct lin_spec {
    const char *name;
    uint32_t Hq, Hk, Hv; /* heads of q, k and the state-forming v/gate/beta/igate */
    uint32_t d, V;       /* q/k input length, value length */
    fmap map;
    bool l2, scale;      /* l2norm q and k; scale q by 1/sqrt(K) */
    gate_kind gate;
    bool delta, igate;
    double ig_lo, ig_hi; /* igate range when ig_hi > ig_lo */
    ir_norm norm;
    double eps;
    ir_mask mask;
    bool document;
} lin_spec;

static ir_ref apply_map(ir_module *m, fmap f, ir_ref x)
{
    switch (f) {
    case MAP_ELU1: return op2(m, IR_OP_ADD, op1(m, IR_OP_ELU, x), num(m, 1.0));
    case MAP_RELU: return op1(m, IR_OP_RELU, x);
    case MAP_TAYLOR2: return op1(m, IR_OP_TAYLOR2, x);
    case MAP_ID:
    default: return x;
    }
}

static ir_module *build_linear(attnc_arena *a, const lin_spec *s)
{
    ir_module *m = mod_new(a, s->name);
    uint32_t aq = mod_axis(m, "hq", s->Hq), ak = mod_axis(m, "hk", s->Hk), av = mod_axis(m, "hv", s->Hv);
    ir_ref q = apply_map(m, s->map, input(m, "q", aq, s->d));
    ir_ref k = apply_map(m, s->map, input(m, "k", ak, s->d));
    if (s->l2) {
        q = op1(m, IR_OP_L2NORM, q);
        k = op1(m, IR_OP_L2NORM, k);
    }
    if (s->scale)
        q = op2(m, IR_OP_MUL, q, num(m, 1.0 / sqrt((double)m->values[q].type.len)));
    ir_ref v = input(m, "v", av, s->V);
    ir_linear *l = &m->linear;
    l->present = true;
    l->query = q;
    l->key = k;
    l->value = v;
    switch (s->gate) {
    case GATE_NONE:
        l->decay = IR_DECAY_NONE;
        break;
    case GATE_RETNET:
        l->decay = IR_DECAY_CONST;
        l->gate = op1(m, IR_OP_LOG,
                      op2(m, IR_OP_SUB, num(m, 1.0),
                          op2(m, IR_OP_POW, num(m, 2.0), op2(m, IR_OP_SUB, num(m, -5.0), head(m, av)))));
        break;
    case GATE_CONSTNUM:
        l->decay = IR_DECAY_CONST;
        l->gate = num(m, log(0.9));
        break;
    case GATE_MAMBA:
        l->decay = IR_DECAY_SCALAR;
        l->gate = op2(m, IR_OP_MUL, op1(m, IR_OP_NEG, op1(m, IR_OP_EXP, param(m, "A_log", av, 1))),
                      op1(m, IR_OP_SOFTPLUS, op2(m, IR_OP_ADD, input(m, "dt", av, 1), param(m, "dt_bias", av, 1))));
        break;
    case GATE_LOGSIG:
        l->decay = IR_DECAY_SCALAR;
        l->gate = op1(m, IR_OP_LOGSIGMOID, input(m, "f", av, 1));
        break;
    case GATE_GLA:
        l->decay = IR_DECAY_VECTOR;
        l->gate = op2(m, IR_OP_DIV, op1(m, IR_OP_LOGSIGMOID, input(m, "gk", av, m->values[k].type.len)),
                      num(m, 16.0));
        break;
    }
    if (s->delta) {
        l->update = IR_UPDATE_DELTA;
        l->beta = op1(m, IR_OP_SIGMOID, input(m, "b", av, 1));
    }
    if (s->igate)
        l->igate = s->ig_hi > s->ig_lo ? input_range(m, "i", av, 1, s->ig_lo, s->ig_hi) : input(m, "i", av, 1);
    l->norm = s->norm;
    l->eps = s->eps;
    m->mask = s->mask;
    m->document = s->document;
    m->state_in = m->state_out = true;
    return m;
}

/* Adds a softmax part: q scaled by 1/sqrt(d), q on an axis of Hq heads, k/v on Hkv heads. */
static void add_softmax(ir_module *m, uint32_t Hq, uint32_t Hkv, uint32_t d, uint32_t V, uint32_t window)
{
    uint32_t aq = mod_axis(m, "sq", Hq), akv = mod_axis(m, "skv", Hkv);
    ir_softmax *x = &m->softmax;
    x->present = true;
    x->query = op2(m, IR_OP_MUL, input(m, "sq", aq, d), num(m, 1.0 / sqrt((double)d)));
    x->key = input(m, "sk", akv, d);
    x->value = input(m, "sv", akv, V);
    x->window = window;
}

static ir_module *build_softmax(attnc_arena *a, const char *name, uint32_t Hq, uint32_t Hkv, uint32_t window,
                                ir_mask mask)
{
    ir_module *m = mod_new(a, name);
    add_softmax(m, Hq, Hkv, 8, 6, window);
    m->mask = mask;
    m->document = true;
    return m;
}

/* ------------------------------------------------------------------------------------------------- */
/* evaluation helpers                                                                                 */

static ref_data *draw(fixture *f, const ir_module *m, const uint32_t *lens, uint32_t n, bool h0, uint64_t seed)
{
    ref_problem p = {.seed = seed, .seqlens = lens, .nseq = n, .use_h0 = h0};
    ref_data *d = ref_draw(m, &p, f->a, &f->diags);
    if (!d)
        print_diags(&f->diags);
    assert_non_null(d);
    return d;
}

static ref_result *run_recurrent(fixture *f, const ir_module *m, const ref_data *d)
{
    ref_result *r = ref_result_new(d, f->a);
    assert_non_null(r);
    bool ok = ref_forward_recurrent(m, d, r, f->a, &f->diags);
    if (!ok)
        print_diags(&f->diags);
    assert_true(ok);
    return r;
}

static ref_result *run_chunked(fixture *f, const ir_module *m, const ref_data *d, uint32_t C)
{
    ref_result *r = ref_result_new(d, f->a);
    assert_non_null(r);
    bool ok = ref_forward_chunked(m, d, C, r, f->a, &f->diags);
    if (!ok)
        print_diags(&f->diags);
    assert_true(ok);
    return r;
}

static double max_abs(const double *x, size_t n)
{
    double mx = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(isfinite(x[i]));
        mx = fmax(mx, fabs(x[i]));
    }
    return mx;
}

static size_t out_count(const ref_data *d)
{
    return (size_t)d->dims.total * d->dims.Hout * d->dims.V;
}

static void expect_close(const char *what, double got, double want, double tol)
{
    double err = fabs(got - want) / fmax(1.0, fabs(want));
    if (!(err <= tol))
        print_error("%s: got %.17g want %.17g (rel %.3g > %.3g)\n", what, got, want, err, tol);
    assert_true(err <= tol);
}

static void expect_results_equal(const char *what, const ref_result *got, const ref_result *want, double tol)
{
    ref_error e;
    assert_true(ref_compare(got, want, &e));
    if (!(e.out_rel <= tol && e.state_rel <= tol))
        print_error("%s: out rel %.3g (max %.3g), state rel %.3g (max %.3g)\n", what, e.out_rel, e.out_maxabs,
                    e.state_rel, e.state_maxabs);
    assert_true(e.out_rel <= tol);
    assert_true(e.state_rel <= tol);
}

static const uint32_t chunk_sizes[] = {1, 3, 16, 64};

/* Chunked == recurrent for every chunk size; the output is finite and not trivially zero. */
static void check_forms_agree(fixture *f, const ir_module *m, const ref_data *d)
{
    ref_result *rec = run_recurrent(f, m, d);
    assert_true(max_abs(rec->out, out_count(d)) > 1e-3);
    for (size_t i = 0; i < sizeof chunk_sizes / sizeof *chunk_sizes; i++) {
        ref_result *ch = run_chunked(f, m, d, chunk_sizes[i]);
        char what[128];
        snprintf(what, sizeof what, "%s C=%u", m->name, chunk_sizes[i]);
        expect_results_equal(what, ch, rec, 1e-10);
        if (getenv("ATTNC_REF_VERBOSE")) {
            ref_error e;
            ref_compare(ch, rec, &e);
            print_message("%-20s T=%-4u C=%-3u out rel %.1e state rel %.1e\n", m->name, d->dims.total,
                          chunk_sizes[i], e.out_rel, e.state_rel);
        }
    }
}

/* Checks a module on one long sequence, a batch with h0 and (if document) varlen {5,1,9,4} with h0. */
static void check_module(fixture *f, const ir_module *m)
{
    static const uint32_t one[] = {150}, batch[] = {37, 37}, varlen[] = {5, 1, 9, 4};
    check_forms_agree(f, m, draw(f, m, one, 1, false, 11));
    if (m->linear.present)
        check_forms_agree(f, m, draw(f, m, batch, 2, true, 12));
    if (m->document)
        check_forms_agree(f, m, draw(f, m, varlen, 4, m->linear.present, 13));
}

static void check_spec(void **state, lin_spec s)
{
    fixture *f = *state;
    if (!s.Hq)
        s.Hq = s.Hk = s.Hv = 2;
    if (!s.d)
        s.d = 8;
    if (!s.V)
        s.V = 6;
    s.document = true;
    check_module(f, build_linear(f->a, &s));
}

/* ------------------------------------------------------------------------------------------------- */
/* chunked == recurrent, every class                                                                  */

static void test_linear_maps(void **state)
{
    check_spec(state, (lin_spec){.name = "identity", .map = MAP_ID, .scale = true});
    check_spec(state, (lin_spec){.name = "elu1", .map = MAP_ELU1});
    check_spec(state, (lin_spec){.name = "relu", .map = MAP_RELU});
    check_spec(state, (lin_spec){.name = "taylor2", .map = MAP_TAYLOR2, .d = 4});
}

static void test_linear_denom(void **state)
{
    check_spec(state, (lin_spec){.name = "elu1 denom", .map = MAP_ELU1, .norm = IR_NORM_DENOM, .eps = 1e-6});
    check_spec(state, (lin_spec){.name = "relu denom", .map = MAP_RELU, .norm = IR_NORM_DENOM, .eps = 1e-6});
    check_spec(state, (lin_spec){.name = "taylor2 denom", .map = MAP_TAYLOR2, .d = 4, .norm = IR_NORM_DENOM,
                                 .eps = 1e-6});
    check_spec(state, (lin_spec){.name = "gla denom", .map = MAP_ELU1, .gate = GATE_GLA, .norm = IR_NORM_DENOM,
                                 .eps = 1e-6});
}

static void test_linear_rms_layer(void **state)
{
    check_spec(state, (lin_spec){.name = "rms", .map = MAP_ID, .scale = true, .norm = IR_NORM_RMS, .eps = 1e-6});
    check_spec(state, (lin_spec){.name = "layer", .map = MAP_ID, .norm = IR_NORM_LAYER, .eps = 1e-5});
    check_spec(state, (lin_spec){.name = "retnet rms", .map = MAP_ID, .scale = true, .gate = GATE_RETNET,
                                 .norm = IR_NORM_RMS, .eps = 1e-6});
}

static void test_const_decay(void **state)
{
    check_spec(state, (lin_spec){.name = "retnet", .Hq = 4, .Hk = 4, .Hv = 4, .scale = true, .gate = GATE_RETNET});
    check_spec(state, (lin_spec){.name = "const number", .scale = true, .gate = GATE_CONSTNUM});
}

static void test_scalar_gate(void **state)
{
    check_spec(state, (lin_spec){.name = "mamba2", .gate = GATE_MAMBA});
    check_spec(state, (lin_spec){.name = "simple gla", .scale = true, .gate = GATE_LOGSIG});
}

static void test_vector_gate(void **state)
{
    check_spec(state, (lin_spec){.name = "gla", .scale = true, .gate = GATE_GLA});
}

static void test_delta(void **state)
{
    check_spec(state, (lin_spec){.name = "deltanet", .l2 = true, .delta = true});
    check_spec(state, (lin_spec){.name = "gated deltanet", .l2 = true, .delta = true, .gate = GATE_LOGSIG});
    check_spec(state, (lin_spec){.name = "kda", .l2 = true, .delta = true, .gate = GATE_GLA});
    check_spec(state, (lin_spec){.name = "deltanet rms", .l2 = true, .delta = true, .norm = IR_NORM_RMS, .eps = 1e-6});
    /* un-normalised keys: T has large off-diagonal entries; the forms must still agree */
    check_spec(state, (lin_spec){.name = "delta raw keys", .d = 4, .scale = true, .delta = true,
                                 .gate = GATE_LOGSIG});
}

static void test_mlstm(void **state)
{
    check_spec(state, (lin_spec){.name = "mlstm", .scale = true, .gate = GATE_LOGSIG, .igate = true,
                                 .norm = IR_NORM_MAXFLOOR, .eps = 1e-6});
    check_spec(state, (lin_spec){.name = "mlstm big igate", .scale = true, .gate = GATE_LOGSIG, .igate = true,
                                 .ig_lo = 300, .ig_hi = 800, .norm = IR_NORM_MAXFLOOR, .eps = 1e-6});
    check_spec(state, (lin_spec){.name = "mlstm const decay", .scale = true, .gate = GATE_RETNET, .igate = true,
                                 .norm = IR_NORM_MAXFLOOR, .eps = 1e-6});
    check_spec(state, (lin_spec){.name = "mlstm no decay", .scale = true, .igate = true,
                                 .norm = IR_NORM_MAXFLOOR, .eps = 1e-6});
}

static void test_bidirectional(void **state)
{
    check_spec(state, (lin_spec){.name = "bidir", .scale = true, .mask = IR_MASK_NONE});
    check_spec(state, (lin_spec){.name = "bidir denom", .map = MAP_ELU1, .norm = IR_NORM_DENOM, .eps = 1e-6,
                                 .mask = IR_MASK_NONE});
}

static void test_softmax(void **state)
{
    fixture *f = *state;
    check_module(f, build_softmax(f->a, "softmax causal", 2, 2, 0, IR_MASK_CAUSAL));
    for (uint32_t w = 1; w <= 17; w += 4) {
        ir_module *m = build_softmax(f->a, "softmax window", 2, 2, w, IR_MASK_CAUSAL);
        check_module(f, m);
    }
    check_module(f, build_softmax(f->a, "softmax window 64", 2, 2, 64, IR_MASK_CAUSAL));
    check_module(f, build_softmax(f->a, "softmax gqa", 4, 2, 5, IR_MASK_CAUSAL));
    check_module(f, build_softmax(f->a, "softmax full", 2, 1, 0, IR_MASK_NONE));
}

static void test_hybrid(void **state)
{
    fixture *f = *state;
    lin_spec s = {.name = "based hybrid", .Hq = 2, .Hk = 2, .Hv = 2, .d = 4, .V = 6, .map = MAP_TAYLOR2,
                  .norm = IR_NORM_DENOM, .eps = 1e-6, .document = true};
    ir_module *m = build_linear(f->a, &s);
    add_softmax(m, 2, 1, 8, 6, 16);
    check_module(f, m);
    /* the hybrid output is the sum of the parts */
    static const uint32_t lens[] = {40};
    ref_data *d = draw(f, m, lens, 1, true, 5);
    ref_result *both = run_recurrent(f, m, d);
    m->softmax.present = false;
    ref_data *dl = draw(f, m, lens, 1, true, 5); /* same seed: same tensors and h0 */
    ref_result *lin = run_recurrent(f, m, dl);
    m->softmax.present = true;
    m->linear.present = false;
    ref_data *ds = draw(f, m, lens, 1, false, 5); /* same seed: same tensors */
    ref_result *smx = run_recurrent(f, m, ds);
    m->linear.present = true;
    for (size_t i = 0; i < out_count(d); i++)
        expect_close("hybrid sum", both->out[i], lin->out[i] + smx->out[i], 1e-13);
}

static void test_gqa_gva(void **state)
{
    /* GQA: 4 query heads read 2 states */
    check_spec(state, (lin_spec){.name = "gqa", .Hq = 4, .Hk = 2, .Hv = 2, .scale = true, .gate = GATE_LOGSIG});
    check_spec(state, (lin_spec){.name = "gqa mlstm", .Hq = 4, .Hk = 2, .Hv = 2, .scale = true, .gate = GATE_LOGSIG,
                                 .igate = true, .norm = IR_NORM_MAXFLOOR, .eps = 1e-6});
    /* GVA: q and k shared by 4 value heads (Mamba2 groups, GDN with HV > H) */
    check_spec(state, (lin_spec){.name = "gva mamba2", .Hq = 1, .Hk = 1, .Hv = 4, .gate = GATE_MAMBA});
    check_spec(state, (lin_spec){.name = "gva gdn", .Hq = 2, .Hk = 2, .Hv = 4, .l2 = true, .delta = true,
                                 .gate = GATE_LOGSIG});
    check_spec(state, (lin_spec){.name = "gva kda", .Hq = 2, .Hk = 2, .Hv = 4, .l2 = true, .delta = true,
                                 .gate = GATE_GLA});
}

/* ------------------------------------------------------------------------------------------------- */
/* closed forms                                                                                       */

static double dot(const double *x, const double *y, uint32_t n)
{
    double s = 0;
    for (uint32_t i = 0; i < n; i++)
        s += x[i] * y[i];
    return s;
}

/* One token, identity transition, no h0: o = (q.k) v; the final state is k v^T. */
static void test_closed_one_token(void **state)
{
    fixture *f = *state;
    ir_module *m = build_linear(f->a, &(lin_spec){.name = "one", .Hq = 1, .Hk = 1, .Hv = 1, .d = 5, .V = 3});
    static const uint32_t lens[] = {1};
    ref_data *d = draw(f, m, lens, 1, false, 1);
    const double *q = d->roles.q.data, *k = d->roles.k.data, *v = d->roles.v.data;
    for (uint32_t C = 1; C <= 2; C++) {
        ref_result *r = C == 1 ? run_recurrent(f, m, d) : run_chunked(f, m, d, 4);
        for (uint32_t c = 0; c < 3; c++)
            expect_close("o = (q.k) v", r->out[c], dot(q, k, 5) * v[c], 1e-15);
        for (uint32_t i = 0; i < 5; i++)
            for (uint32_t c = 0; c < 3; c++)
                expect_close("S = k v^T", r->hT[i * 3 + c], k[i] * v[c], 1e-15);
    }
}

/* Two tokens of a constant decay lambda: o_2 = lambda (q2.k1) v1 + (q2.k2) v2 (update-then-read). */
static void test_closed_const_decay(void **state)
{
    fixture *f = *state;
    ir_module *m = build_linear(f->a, &(lin_spec){.name = "retnet2", .Hq = 3, .Hk = 3, .Hv = 3, .d = 4, .V = 2,
                                                  .gate = GATE_RETNET});
    static const uint32_t lens[] = {2};
    ref_data *d = draw(f, m, lens, 1, false, 2);
    for (uint32_t h = 0; h < 3; h++)
        expect_close("retnet gate", d->roles.gate.data[h], log(1.0 - pow(2.0, -5.0 - h)), 1e-15);
    ref_result *rs[2] = {run_recurrent(f, m, d), run_chunked(f, m, d, 2)};
    for (int i = 0; i < 2; i++)
        for (uint32_t h = 0; h < 3; h++) {
            double lam = 1.0 - pow(2.0, -5.0 - h);
            const double *q2 = ref_role_at(&d->roles.q, 1, h), *k1 = ref_role_at(&d->roles.k, 0, h);
            const double *k2 = ref_role_at(&d->roles.k, 1, h), *v1 = ref_role_at(&d->roles.v, 0, h);
            const double *v2 = ref_role_at(&d->roles.v, 1, h);
            for (uint32_t c = 0; c < 2; c++)
                expect_close("const decay", rs[i]->out[(3 + h) * 2 + c],
                             lam * dot(q2, k1, 4) * v1[c] + dot(q2, k2, 4) * v2[c], 1e-14);
        }
}

/* One delta step from h0 with a scalar gate: P = e^a S0, u = beta (v - P^T k), S = P + k u^T. */
static void test_closed_delta_step(void **state)
{
    fixture *f = *state;
    ir_module *m = build_linear(f->a, &(lin_spec){.name = "delta1", .Hq = 1, .Hk = 1, .Hv = 1, .d = 3, .V = 2,
                                                  .l2 = true, .delta = true, .gate = GATE_LOGSIG});
    static const uint32_t lens[] = {1};
    ref_data *d = draw(f, m, lens, 1, true, 3);
    const double *q = d->roles.q.data, *k = d->roles.k.data, *v = d->roles.v.data, *S0 = d->h0;
    double g = exp(d->roles.gate.data[0]), beta = d->roles.beta.data[0];
    double S[3][2], u[2];
    for (int c = 0; c < 2; c++) {
        double pred = 0;
        for (int i = 0; i < 3; i++)
            pred += k[i] * g * S0[i * 2 + c];
        u[c] = beta * (v[c] - pred);
    }
    for (int i = 0; i < 3; i++)
        for (int c = 0; c < 2; c++)
            S[i][c] = g * S0[i * 2 + c] + k[i] * u[c];
    ref_result *rs[2] = {run_recurrent(f, m, d), run_chunked(f, m, d, 3)};
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 2; c++) {
            expect_close("delta o", rs[r]->out[c], q[0] * S[0][c] + q[1] * S[1][c] + q[2] * S[2][c], 1e-14);
            for (int i = 0; i < 3; i++)
                expect_close("delta S", rs[r]->hT[i * 2 + c], S[i][c], 1e-14);
        }
}

/* DENOM one token from (S0, z0): o = (S0 + k v^T)^T q / ((z0 + k).q + eps). */
static void test_closed_denom(void **state)
{
    fixture *f = *state;
    ir_module *m = build_linear(f->a, &(lin_spec){.name = "denom1", .Hq = 1, .Hk = 1, .Hv = 1, .d = 3, .V = 2,
                                                  .map = MAP_ELU1, .norm = IR_NORM_DENOM, .eps = 0.25});
    static const uint32_t lens[] = {1};
    ref_data *d = draw(f, m, lens, 1, true, 4);
    const double *q = d->roles.q.data, *k = d->roles.k.data, *v = d->roles.v.data;
    for (int i = 0; i < 3; i++) {
        assert_true(d->z0[i] >= 0.0 && d->z0[i] < 1.0);
        assert_true(q[i] > 0 && k[i] > 0); /* elu + 1 is positive */
    }
    double den = 0.25;
    for (int i = 0; i < 3; i++)
        den += (d->z0[i] + k[i]) * q[i];
    ref_result *rs[2] = {run_recurrent(f, m, d), run_chunked(f, m, d, 1)};
    for (int r = 0; r < 2; r++) {
        for (int c = 0; c < 2; c++) {
            double nm = 0;
            for (int i = 0; i < 3; i++)
                nm += (d->h0[i * 2 + c] + k[i] * v[c]) * q[i];
            expect_close("denom o", rs[r]->out[c], nm / den, 1e-14);
        }
        for (int i = 0; i < 3; i++)
            expect_close("denom zT", rs[r]->zT[i], d->z0[i] + k[i], 1e-15);
    }
}

/* RMS: every output row has mean square 1/(1 + eps/ms); LAYER: mean 0 and variance ~1. */
static void test_closed_norms(void **state)
{
    fixture *f = *state;
    static const uint32_t lens[] = {9};
    for (int which = 0; which < 2; which++) {
        ir_norm n = which ? IR_NORM_LAYER : IR_NORM_RMS;
        ir_module *m = build_linear(f->a, &(lin_spec){.name = "norm", .Hq = 1, .Hk = 1, .Hv = 1, .d = 4, .V = 8,
                                                      .norm = n, .eps = 0.0});
        ref_data *d = draw(f, m, lens, 1, false, 6);
        ref_result *r = run_chunked(f, m, d, 4);
        for (uint32_t t = 0; t < 9; t++) {
            double mean = 0, ms = 0;
            for (uint32_t c = 0; c < 8; c++)
                mean += r->out[t * 8 + c] / 8;
            for (uint32_t c = 0; c < 8; c++)
                ms += (r->out[t * 8 + c] - (which ? mean : 0)) * (r->out[t * 8 + c] - (which ? mean : 0)) / 8;
            expect_close("norm second moment", ms, 1.0, 1e-13);
            if (which)
                expect_close("layer mean", mean, 0.0, 1e-13);
        }
    }
}

/* Window 1: every token attends only to itself, o_t = v_t; with a long window the first token too. */
static void test_closed_softmax(void **state)
{
    fixture *f = *state;
    static const uint32_t lens[] = {7, 3};
    for (uint32_t w = 1; w <= 2; w++) {
        ir_module *m = build_softmax(f->a, "sw", 2, 2, w == 1 ? 1 : 0, IR_MASK_CAUSAL);
        ref_data *d = draw(f, m, lens, 2, false, 7);
        ref_result *rs[2] = {run_recurrent(f, m, d), run_chunked(f, m, d, 3)};
        for (int r = 0; r < 2; r++)
            for (uint32_t t = 0; t < 10; t++) {
                if (w == 2 && t != 0 && t != 7)
                    continue; /* full causal: only each sequence's first token is closed-form */
                for (uint32_t h = 0; h < 2; h++)
                    for (uint32_t c = 0; c < 6; c++)
                        expect_close("softmax self", rs[r]->out[(t * 2 + h) * 6 + c],
                                     ref_role_at(&d->roles.sv, t, h)[c], 1e-15);
            }
    }
}

/* mLSTM one token, eps = 0: o = (k.q) v / max(|k.q|, e^{-i}) (true units; m is irrelevant). */
static void test_closed_mlstm_token(void **state)
{
    fixture *f = *state;
    static const uint32_t lens[] = {1};
    for (int big = 0; big < 2; big++) {
        ir_module *m = build_linear(f->a, &(lin_spec){.name = "mlstm1", .Hq = 1, .Hk = 1, .Hv = 1, .d = 4, .V = 3,
                                                      .gate = GATE_LOGSIG, .igate = true, .ig_lo = big ? 500 : -3,
                                                      .ig_hi = big ? 600 : -2, .norm = IR_NORM_MAXFLOOR});
        ref_data *d = draw(f, m, lens, 1, false, 8);
        const double *q = d->roles.q.data, *k = d->roles.k.data, *v = d->roles.v.data;
        double i = d->roles.igate.data[0], qk = dot(q, k, 4);
        ref_result *rs[2] = {run_recurrent(f, m, d), run_chunked(f, m, d, 1)};
        for (int r = 0; r < 2; r++) {
            for (uint32_t c = 0; c < 3; c++)
                expect_close("mlstm one token", rs[r]->out[c], qk * v[c] / fmax(fabs(qk), exp(-i)), 1e-14);
            expect_close("mlstm m", rs[r]->mT[0], fmax(d->roles.gate.data[0], i), 1e-15);
        }
    }
}

/* Stabilised mLSTM == its unstabilised definition (moderate gates, eps = 0, with h0 in true units). */
static void test_mlstm_unstabilised(void **state)
{
    fixture *f = *state;
    static const uint32_t lens[] = {23};
    ir_module *m = build_linear(f->a, &(lin_spec){.name = "mlstm", .Hq = 1, .Hk = 1, .Hv = 1, .d = 4, .V = 3,
                                                  .scale = true, .gate = GATE_LOGSIG, .igate = true,
                                                  .norm = IR_NORM_MAXFLOOR});
    ref_data *d = draw(f, m, lens, 1, true, 9);
    ref_result *r = run_recurrent(f, m, d);
    double C[4][3], n[4];
    double m0 = d->m0[0]; /* 0: the stabilised h0 is the true h0 */
    for (int i = 0; i < 4; i++) {
        n[i] = d->z0[i] * exp(m0);
        for (int c = 0; c < 3; c++)
            C[i][c] = d->h0[i * 3 + c] * exp(m0);
    }
    for (uint32_t t = 0; t < 23; t++) {
        const double *q = ref_role_at(&d->roles.q, t, 0), *k = ref_role_at(&d->roles.k, t, 0);
        const double *v = ref_role_at(&d->roles.v, t, 0);
        double fg = exp(d->roles.gate.data[t]), ig = exp(d->roles.igate.data[t]);
        for (int i = 0; i < 4; i++) {
            n[i] = fg * n[i] + ig * k[i];
            for (int c = 0; c < 3; c++)
                C[i][c] = fg * C[i][c] + ig * k[i] * v[c];
        }
        double den = fmax(fabs(dot(n, q, 4)), 1.0);
        for (uint32_t c = 0; c < 3; c++) {
            double nm = 0;
            for (int i = 0; i < 4; i++)
                nm += C[i][c] * q[i];
            expect_close("mlstm unstabilised", r->out[t * 3 + c], nm / den, 1e-12);
        }
    }
}

/* Input gates 300-800: the unstabilised form overflows; the stabilised output stays finite and is
 * invariant to shifting every input gate by 100 (with eps = 0 and |n.q| >> 1 in true units). */
static void test_mlstm_shift_invariance(void **state)
{
    fixture *f = *state;
    static const uint32_t lens[] = {40, 40};
    ir_module *m = build_linear(f->a, &(lin_spec){.name = "mlstm big", .Hq = 2, .Hk = 2, .Hv = 2, .d = 6, .V = 4,
                                                  .scale = true, .gate = GATE_LOGSIG, .igate = true, .ig_lo = 300,
                                                  .ig_hi = 800, .norm = IR_NORM_MAXFLOOR});
    ref_data *d = draw(f, m, lens, 2, false, 10);
    double imax = -INFINITY;
    for (size_t j = 0; j < (size_t)d->dims.total * 2; j++)
        imax = fmax(imax, d->roles.igate.data[j]);
    assert_true(isinf(exp(imax))); /* the unstabilised state would overflow */
    ref_result *base = run_recurrent(f, m, d);
    check_forms_agree(f, m, d);
    uint32_t it = 0;
    while (strcmp(m->tensors[it].name, "i") != 0)
        it++;
    for (size_t j = 0; j < d->tensor_count[it]; j++)
        d->tensor[it][j] -= 100.0;
    assert_true(ref_eval_roles(m, d, f->a, &f->diags));
    ref_result *shifted = run_chunked(f, m, d, 16);
    ref_error e;
    assert_true(ref_compare(shifted, base, &e));
    assert_true(e.out_rel < 1e-12);
}

/* mask none: every token reads S0 + sum_j k_j v_j^T of its own sequence. */
static void test_closed_bidirectional(void **state)
{
    fixture *f = *state;
    static const uint32_t lens[] = {4, 6};
    ir_module *m = build_linear(f->a, &(lin_spec){.name = "bidir", .Hq = 1, .Hk = 1, .Hv = 1, .d = 3, .V = 2,
                                                  .mask = IR_MASK_NONE, .document = true});
    ref_data *d = draw(f, m, lens, 2, true, 14);
    ref_result *rs[2] = {run_recurrent(f, m, d), run_chunked(f, m, d, 4)};
    for (uint32_t n = 0; n < 2; n++) {
        double S[3][2];
        for (int i = 0; i < 3; i++)
            for (int c = 0; c < 2; c++) {
                S[i][c] = d->h0[(n * 3 + (uint32_t)i) * 2 + (uint32_t)c];
                for (uint32_t t = d->cu_seqlens[n]; t < d->cu_seqlens[n + 1]; t++)
                    S[i][c] += d->roles.k.data[t * 3 + (uint32_t)i] * d->roles.v.data[t * 2 + (uint32_t)c];
            }
        for (int r = 0; r < 2; r++)
            for (uint32_t t = d->cu_seqlens[n]; t < d->cu_seqlens[n + 1]; t++)
                for (int c = 0; c < 2; c++) {
                    const double *q = d->roles.q.data + t * 3;
                    expect_close("bidir", rs[r]->out[t * 2 + (uint32_t)c],
                                 q[0] * S[0][c] + q[1] * S[1][c] + q[2] * S[2][c], 1e-14);
                }
    }
}

/* ------------------------------------------------------------------------------------------------- */
/* structure: varlen independence, shared heads                                                       */

/* A packed varlen run equals each sequence run alone from its own h0 (outputs and final states). */
static void test_varlen_independent(void **state)
{
    fixture *f = *state;
    static const uint32_t lens[] = {5, 1, 9, 4};
    ir_module *m = build_linear(f->a, &(lin_spec){.name = "kda varlen", .Hq = 2, .Hk = 2, .Hv = 2, .d = 4, .V = 3,
                                                  .l2 = true, .delta = true, .gate = GATE_GLA, .document = true});
    ref_data *d = draw(f, m, lens, 4, true, 15);
    ref_result *packed = run_chunked(f, m, d, 4);
    const ref_dims *dm = &d->dims;
    for (uint32_t n = 0; n < 4; n++) {
        ref_data *one = draw(f, m, &lens[n], 1, true, 99);
        uint32_t bos = d->cu_seqlens[n];
        for (uint32_t i = 0; i < m->ntensors; i++) {
            size_t row = d->tensor_count[i] / dm->total; /* all tensors here are per token */
            memcpy(one->tensor[i], d->tensor[i] + bos * row, lens[n] * row * sizeof(double));
        }
        size_t ns = (size_t)dm->Hs * dm->K * dm->V;
        memcpy(one->h0, d->h0 + n * ns, ns * sizeof(double));
        assert_true(ref_eval_roles(m, one, f->a, &f->diags));
        ref_result *r = run_recurrent(f, m, one);
        for (size_t j = 0; j < (size_t)lens[n] * dm->Hout * dm->V; j++)
            expect_close("varlen out", packed->out[bos * dm->Hout * dm->V + j], r->out[j], 1e-12);
        for (size_t j = 0; j < ns; j++)
            expect_close("varlen hT", packed->hT[n * ns + j], r->hT[j], 1e-12);
    }
}

/* Shared heads equal the same model with the shared roles replicated per head.  `shared` has Hq query
 * and Hk key heads against Hv state heads; `full` has every role on Hmax heads; the replicated data
 * of role head j of `shared` goes to heads j*G .. j*G+G-1 of `full`. */
static void check_replicated(fixture *f, lin_spec shared)
{
    uint32_t Hmax = shared.Hq > shared.Hv ? shared.Hq : shared.Hv;
    lin_spec full = shared;
    full.Hq = full.Hk = full.Hv = Hmax;
    ir_module *ms = build_linear(f->a, &shared), *mf = build_linear(f->a, &full);
    static const uint32_t lens[] = {13};
    ref_data *ds = draw(f, ms, lens, 1, false, 16), *df = draw(f, mf, lens, 1, false, 16);
    for (uint32_t i = 0; i < ms->ntensors; i++) {
        const ir_tensor *ts = &ms->tensors[i];
        uint32_t hs = ms->axes[ts->axis].count, hf = mf->axes[mf->tensors[i].axis].count;
        uint32_t ntok = ts->per_token ? 13 : 1;
        for (uint32_t t = 0; t < ntok; t++)
            for (uint32_t h = 0; h < hf; h++)
                memcpy(df->tensor[i] + ((size_t)t * hf + h) * ts->len,
                       ds->tensor[i] + ((size_t)t * hs + ir_head_map(h, hf, hs)) * ts->len, ts->len * sizeof(double));
    }
    assert_true(ref_eval_roles(mf, df, f->a, &f->diags));
    ref_result *rs = run_chunked(f, ms, ds, 5), *rf = run_recurrent(f, mf, df);
    assert_int_equal(rs->dims.Hout, rf->dims.Hout);
    for (size_t j = 0; j < out_count(ds); j++)
        expect_close("replicated heads", rs->out[j], rf->out[j], 1e-12);
}

static void test_shared_heads_replicated(void **state)
{
    fixture *f = *state;
    check_replicated(f, (lin_spec){.name = "gqa", .Hq = 4, .Hk = 2, .Hv = 2, .d = 4, .V = 3, .scale = true,
                                   .gate = GATE_LOGSIG});
    check_replicated(f, (lin_spec){.name = "gva", .Hq = 1, .Hk = 1, .Hv = 4, .d = 4, .V = 3, .gate = GATE_MAMBA});
    check_replicated(f, (lin_spec){.name = "gva kda", .Hq = 2, .Hk = 2, .Hv = 4, .d = 4, .V = 3, .l2 = true,
                                   .delta = true, .gate = GATE_GLA});
}

/* ------------------------------------------------------------------------------------------------- */
/* drawing and rounding                                                                               */

static void test_round_dtype(void **state)
{
    (void)state;
    /* bf16: 8 significant bits; 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even */
    assert_true(ref_round_dtype(1.0 + 0x1p-8, IR_DT_BF16) == 1.0);
    assert_true(ref_round_dtype(1.0 + 3 * 0x1p-8, IR_DT_BF16) == 1.0 + 0x1p-6);
    assert_true(ref_round_dtype(1.0 + 0x1p-8 + 0x1p-30, IR_DT_BF16) == 1.0 + 0x1p-7);
    assert_true(ref_round_dtype(-1.0 - 0x1p-8, IR_DT_BF16) == -1.0);
    assert_true(ref_round_dtype(0x1p-134, IR_DT_BF16) == 0.0);         /* half the smallest subnormal */
    assert_true(ref_round_dtype(3 * 0x1p-134, IR_DT_BF16) == 0x1p-132); /* tie to even among subnormals */
    assert_true(isinf(ref_round_dtype(0x1.ffp127, IR_DT_BF16)));
    assert_true(ref_round_dtype(0x1.fep127, IR_DT_BF16) == 0x1.fep127);
    /* no double rounding: just above a bf16 midpoint but rounding to the midpoint in fp32 */
    assert_true(ref_round_dtype(1.0 + 0x1p-8 + 0x1p-40, IR_DT_BF16) == 1.0 + 0x1p-7);
    /* fp16 */
    assert_true(ref_round_dtype(65504.0, IR_DT_FP16) == 65504.0);
    assert_true(ref_round_dtype(65519.0, IR_DT_FP16) == 65504.0);
    assert_true(isinf(ref_round_dtype(65520.0, IR_DT_FP16)));
    assert_true(ref_round_dtype(1.0 + 0x1p-11, IR_DT_FP16) == 1.0);
    assert_true(ref_round_dtype(0x1p-25, IR_DT_FP16) == 0.0);
    assert_true(ref_round_dtype(0x1.8p-24, IR_DT_FP16) == 0x1p-23);
    /* fp32 */
    assert_true(ref_round_dtype(0.1, IR_DT_FP32) == (double)0.1f);
    assert_true(ref_round_dtype(0.0, IR_DT_BF16) == 0.0);
    assert_true(isnan(ref_round_dtype(NAN, IR_DT_BF16)));
    /* the rounding is idempotent and gives exactly representable numbers */
    for (int i = 0; i < 1000; i++) {
        double x = sin(i * 1.7) * pow(10.0, (i % 20) - 10);
        double b = ref_round_dtype(x, IR_DT_BF16);
        float fb = (float)b;
        uint32_t bits;
        memcpy(&bits, &fb, sizeof bits);
        assert_true((double)fb == b);
        assert_int_equal(bits & 0xffffu, 0);
        assert_true(ref_round_dtype(b, IR_DT_BF16) == b);
        assert_true(fabs(b - x) <= fabs(x) * 0x1p-8);
    }
}

static void test_draw(void **state)
{
    fixture *f = *state;
    ir_module *m = build_linear(f->a, &(lin_spec){.name = "draw", .Hq = 2, .Hk = 2, .Hv = 2, .d = 4, .V = 3,
                                                  .gate = GATE_LOGSIG, .igate = true, .ig_lo = -2, .ig_hi = 3,
                                                  .norm = IR_NORM_MAXFLOOR});
    m->tensors[1].dtype = IR_DT_FP16;
    m->tensors[2].dtype = IR_DT_FP32;
    static const uint32_t lens[] = {50, 50};
    ref_data *d1 = draw(f, m, lens, 2, true, 42), *d2 = draw(f, m, lens, 2, true, 42);
    ref_data *d3 = draw(f, m, lens, 2, false, 43);
    assert_int_equal(d1->dims.total, 100);
    assert_int_equal(d1->cu_seqlens[2], 100);
    double sum = 0, sumsq = 0;
    size_t cnt = 0;
    for (uint32_t i = 0; i < m->ntensors; i++) {
        const ir_tensor *t = &m->tensors[i];
        assert_int_equal(d1->tensor_count[i], (size_t)100 * 2 * t->len);
        assert_memory_equal(d1->tensor[i], d2->tensor[i], d1->tensor_count[i] * sizeof(double));
        assert_true(memcmp(d1->tensor[i], d3->tensor[i], d1->tensor_count[i] * sizeof(double)) != 0);
        for (size_t j = 0; j < d1->tensor_count[i]; j++) {
            double x = d1->tensor[i][j];
            assert_true(ref_round_dtype(x, t->dtype) == x);
            if (t->has_range)
                assert_true(x >= t->lo && x <= t->hi);
            else {
                sum += x;
                sumsq += x * x;
                cnt++;
            }
        }
    }
    /* the unranged tensors are standard normal: loose moment checks over ~2000 numbers */
    assert_true(fabs(sum / (double)cnt) < 0.1);
    assert_true(fabs(sumsq / (double)cnt - 1.0) < 0.15);
    assert_non_null(d1->h0);
    assert_non_null(d1->z0);
    assert_non_null(d1->m0);
    assert_null(d3->h0);
    assert_true(d1->m0[0] == 0.0 && d1->m0[3] == 0.0);
    assert_memory_equal(d1->h0, d2->h0, (size_t)2 * 2 * 4 * 3 * sizeof(double));
    /* a tensor's numbers do not depend on h0 being drawn */
    assert_memory_equal(d1->tensor[0], draw(f, m, lens, 2, false, 42)->tensor[0], d1->tensor_count[0] * sizeof(double));
}

/* ------------------------------------------------------------------------------------------------- */
/* op evaluation                                                                                      */

/* Evaluates fn(x) through a module whose linear value is `fn` applied to an input, for several x. */
static void test_eval_ops(void **state)
{
    fixture *f = *state;
    static const struct {
        ir_op op;
        double (*ref)(double);
    } unary[] = {{IR_OP_EXP, exp}, {IR_OP_TANH, tanh}, {IR_OP_ABS, fabs}, {IR_OP_NEG, NULL},
                 {IR_OP_SIGMOID, NULL}, {IR_OP_LOGSIGMOID, NULL}, {IR_OP_SOFTPLUS, NULL}, {IR_OP_RELU, NULL},
                 {IR_OP_ELU, NULL}, {IR_OP_SILU, NULL}};
    static const uint32_t lens[] = {3};
    for (size_t u = 0; u < sizeof unary / sizeof *unary; u++) {
        ir_module *m = build_linear(f->a, &(lin_spec){.name = "ops", .Hq = 1, .Hk = 1, .Hv = 1, .d = 2, .V = 5});
        m->linear.value = op1(m, unary[u].op, m->linear.value);
        ref_data *d = draw(f, m, lens, 1, false, 17);
        double *x = d->tensor[2];
        const double probes[] = {-800.0, -30.5, -1.0, 0.0, 0.75, 2.5, 40.0, 700.0};
        for (size_t j = 0; j < 15; j++)
            x[j] = probes[j % 8];
        assert_true(ref_eval_roles(m, d, f->a, &f->diags));
        for (size_t j = 0; j < 15; j++) {
            double a = x[j], want;
            switch (unary[u].op) {
            case IR_OP_NEG: want = -a; break;
            case IR_OP_SIGMOID: want = 1.0 / (1.0 + exp(-a)); break;
            case IR_OP_LOGSIGMOID: want = a > 30 ? -exp(-a) : a < -30 ? a : log(1.0 / (1.0 + exp(-a))); break;
            case IR_OP_SOFTPLUS: want = a > 30 ? a : a < -30 ? exp(a) : log1p(exp(a)); break;
            case IR_OP_RELU: want = a > 0 ? a : 0; break;
            case IR_OP_ELU: want = a > 0 ? a : exp(a) - 1.0; break;
            case IR_OP_SILU: want = a / (1.0 + exp(-a)); break;
            default: want = unary[u].ref(a); break;
            }
            double got = d->roles.v.data[j];
            assert_true(isfinite(got) || isinf(want));
            if (isfinite(want))
                expect_close(ir_op_name(unary[u].op), got, want, 1e-14);
        }
    }
    /* binary ops with a scalar broadcast over a vector, and the head index */
    ir_module *m = build_linear(f->a, &(lin_spec){.name = "bin", .Hq = 3, .Hk = 3, .Hv = 3, .d = 2, .V = 4});
    ir_ref x = m->linear.value, s = param(m, "p", 2, 1), h = head(m, 2);
    ir_ref e = op2(m, IR_OP_ADD, op2(m, IR_OP_MUL, x, s), h);                 /* x*p + h */
    e = op2(m, IR_OP_SUB, e, op2(m, IR_OP_DIV, op1(m, IR_OP_ABS, x), num(m, 4)));
    e = op2(m, IR_OP_ADD, e, op2(m, IR_OP_MAX, x, num(m, 0.25)));
    e = op2(m, IR_OP_ADD, e, op2(m, IR_OP_MIN, x, s));
    e = op2(m, IR_OP_ADD, e, op2(m, IR_OP_POW, op1(m, IR_OP_ABS, x), num(m, 1.5)));
    e = op2(m, IR_OP_ADD, e, op1(m, IR_OP_RSQRT, op2(m, IR_OP_ADD, op1(m, IR_OP_ABS, x), num(m, 1))));
    e = op2(m, IR_OP_ADD, e, op1(m, IR_OP_SQRT, op1(m, IR_OP_LOG, op2(m, IR_OP_ADD, op1(m, IR_OP_ABS, x), num(m, 1)))));
    m->linear.value = e;
    ref_data *d = draw(f, m, lens, 1, false, 18);
    const double *P = d->tensor[3], *X = d->tensor[2];
    for (uint32_t t = 0; t < 3; t++)
        for (uint32_t hh = 0; hh < 3; hh++)
            for (uint32_t c = 0; c < 4; c++) {
                double a = X[(t * 3 + hh) * 4 + c], p = P[hh];
                double want = a * p + hh - fabs(a) / 4 + fmax(a, 0.25) + fmin(a, p) + pow(fabs(a), 1.5) +
                              1.0 / sqrt(fabs(a) + 1) + sqrt(log(fabs(a) + 1));
                expect_close("binary ops", ref_role_at(&d->roles.v, t, hh)[c], want, 1e-14);
            }
}

/* taylor2(q).taylor2(k) = 1 + s + s^2/2 with s = q.k/sqrt(d); l2norm gives unit norm (up to 1e-6). */
static void test_eval_taylor_l2(void **state)
{
    fixture *f = *state;
    static const uint32_t lens[] = {6};
    ir_module *m = build_linear(f->a, &(lin_spec){.name = "taylor", .Hq = 1, .Hk = 1, .Hv = 1, .d = 5, .V = 2,
                                                  .map = MAP_TAYLOR2});
    ref_data *d = draw(f, m, lens, 1, false, 19);
    assert_int_equal(d->dims.K, 21);
    for (uint32_t t = 0; t < 6; t++) {
        const double *q = d->tensor[0] + t * 5, *k = d->tensor[1] + t * 5;
        double s = dot(q, k, 5) / sqrt(5.0);
        expect_close("taylor2 kernel", dot(ref_role_at(&d->roles.q, t, 0), ref_role_at(&d->roles.k, t, 0), 21),
                     1 + s + s * s / 2, 1e-14);
    }
    m = build_linear(f->a, &(lin_spec){.name = "l2", .Hq = 1, .Hk = 1, .Hv = 1, .d = 5, .V = 2, .l2 = true});
    d = draw(f, m, lens, 1, false, 20);
    for (uint32_t t = 0; t < 6; t++) {
        const double *x = d->tensor[0] + t * 5, *y = ref_role_at(&d->roles.q, t, 0);
        double n2 = dot(x, x, 5);
        expect_close("l2norm", dot(y, y, 5), n2 / (n2 + 1e-6), 1e-15);
    }
}

/* ------------------------------------------------------------------------------------------------- */
/* errors and comparison                                                                              */

static void test_errors(void **state)
{
    fixture *f = *state;
    static const uint32_t lens[] = {4, 5};
    ref_problem p = {.seed = 1, .seqlens = lens, .nseq = 2};
    /* an input gate with a vector decay is not a model the reference (or anyone) defines */
    ir_module *m = build_linear(f->a, &(lin_spec){.name = "bad", .Hq = 1, .Hk = 1, .Hv = 1, .d = 2, .V = 2,
                                                  .gate = GATE_GLA, .igate = true, .norm = IR_NORM_MAXFLOOR});
    uint32_t before = f->diags.errors;
    assert_null(ref_draw(m, &p, f->a, &f->diags));
    assert_true(f->diags.errors > before);
    /* DENOM with the delta rule */
    m = build_linear(f->a, &(lin_spec){.name = "bad2", .Hq = 1, .Hk = 1, .Hv = 1, .d = 2, .V = 2, .delta = true,
                                       .norm = IR_NORM_DENOM, .document = true});
    assert_null(ref_draw(m, &p, f->a, NULL)); /* diags may be NULL */
    /* different lengths without document */
    m = build_linear(f->a, &(lin_spec){.name = "ok", .Hq = 1, .Hk = 1, .Hv = 1, .d = 2, .V = 2});
    before = f->diags.errors;
    assert_null(ref_draw(m, &p, f->a, &f->diags));
    assert_true(f->diags.errors > before);
    /* an empty sequence, no sequences */
    static const uint32_t zero[] = {3, 0};
    p.seqlens = zero;
    m->document = true;
    assert_null(ref_draw(m, &p, f->a, &f->diags));
    p.nseq = 0;
    assert_null(ref_draw(m, &p, f->a, &f->diags));
    /* a result of other sizes is refused, and so is comparing it */
    p.seqlens = lens;
    p.nseq = 2;
    ref_data *d = ref_draw(m, &p, f->a, &f->diags);
    assert_non_null(d);
    static const uint32_t lens2[] = {4, 6};
    p.seqlens = lens2;
    ref_data *d2 = ref_draw(m, &p, f->a, &f->diags);
    ref_result *r2 = ref_result_new(d2, f->a);
    assert_false(ref_forward_recurrent(m, d, r2, f->a, &f->diags));
    assert_false(ref_forward_chunked(m, d, 4, r2, f->a, &f->diags));
    ref_result *r = run_recurrent(f, m, d);
    ref_error e;
    assert_false(ref_compare(r, r2, &e));
}

static void test_compare(void **state)
{
    fixture *f = *state;
    static const uint32_t lens[] = {6};
    ir_module *m = build_linear(f->a, &(lin_spec){.name = "cmp", .Hq = 1, .Hk = 1, .Hv = 1, .d = 2, .V = 2});
    ref_data *d = draw(f, m, lens, 1, true, 21);
    ref_result *a = run_recurrent(f, m, d), *b = run_recurrent(f, m, d);
    ref_error e;
    assert_true(ref_compare(a, b, &e));
    assert_true(e.out_rel == 0 && e.out_maxabs == 0 && e.state_rel == 0);
    b->out[3] += 0.5;
    b->hT[1] -= 0.25;
    assert_true(ref_compare(b, a, &e));
    expect_close("maxabs out", e.out_maxabs, 0.5, 1e-15);
    expect_close("maxabs state", e.state_maxabs, 0.25, 1e-15);
    double norm = 0;
    for (size_t i = 0; i < out_count(d); i++)
        norm += a->out[i] * a->out[i];
    expect_close("rel", e.out_rel, 0.5 / sqrt(norm), 1e-14);
    b->out[0] = NAN;
    assert_true(ref_compare(b, a, &e));
    assert_true(isinf(e.out_rel) && isinf(e.out_maxabs));
    assert_true(isfinite(e.state_rel));
}

/* ------------------------------------------------------------------------------------------------- */
/* the size the brief names: 1000 tokens, 16 heads, K = V = 128 (set ATTNC_REF_PERF=1 to run)         */

static void test_perf(void **state)
{
    fixture *f = *state;
    if (!getenv("ATTNC_REF_PERF")) {
        skip();
        return;
    }
    static const uint32_t lens[] = {1000};
    static const lin_spec specs[] = {
        {.name = "kda", .l2 = true, .delta = true, .gate = GATE_GLA},
        {.name = "elu1 denom", .map = MAP_ELU1, .norm = IR_NORM_DENOM, .eps = 1e-6},
        {.name = "mlstm", .scale = true, .gate = GATE_LOGSIG, .igate = true, .norm = IR_NORM_MAXFLOOR, .eps = 1e-6},
        {.name = "softmax"},
    };
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) {
        lin_spec s = specs[i];
        s.Hq = s.Hk = s.Hv = 16;
        s.d = s.V = 128;
        ir_module *m;
        if (strcmp(s.name, "softmax") == 0) {
            m = mod_new(f->a, s.name);
            add_softmax(m, 16, 16, 128, 128, 0);
        } else {
            m = build_linear(f->a, &s);
        }
        clock_t t0 = clock();
        ref_data *d = draw(f, m, lens, 1, m->linear.present, 22);
        clock_t t1 = clock();
        ref_result *rec = run_recurrent(f, m, d);
        clock_t t2 = clock();
        ref_result *ch = run_chunked(f, m, d, 64);
        clock_t t3 = clock();
        print_message("perf %-10s T=1000 H=16 K=V=128: draw %.2fs recurrent %.2fs chunked %.2fs\n", s.name,
                      (double)(t1 - t0) / CLOCKS_PER_SEC, (double)(t2 - t1) / CLOCKS_PER_SEC,
                      (double)(t3 - t2) / CLOCKS_PER_SEC);
        expect_results_equal(s.name, ch, rec, 1e-10);
    }
}

/* ------------------------------------------------------------------------------------------------- */
/* JSON cases for crosscheck.py                                                                       */

static int dump_cases(const char *dir)
{
    attnc_arena *a = attnc_arena_new();
    if (!a)
        return 1;
    static const uint32_t varlen[] = {5, 1, 9, 4}, batch[] = {7, 7};
    static const struct {
        lin_spec s;
        int softmax; /* 0 none, 1 causal, 2 window 3, 3 softmax only */
        bool h0;
    } cases[] = {
        {{.name = "linear_elu1_denom", .Hq = 2, .Hk = 2, .Hv = 2, .d = 4, .V = 3, .map = MAP_ELU1,
          .norm = IR_NORM_DENOM, .eps = 1e-6}, 0, true},
        {{.name = "retnet_rms", .Hq = 2, .Hk = 2, .Hv = 2, .d = 4, .V = 3, .scale = true, .gate = GATE_RETNET,
          .norm = IR_NORM_RMS, .eps = 1e-6}, 0, true},
        {{.name = "layer", .Hq = 1, .Hk = 1, .Hv = 1, .d = 4, .V = 5, .norm = IR_NORM_LAYER, .eps = 1e-5}, 0, false},
        {{.name = "mamba2_gva", .Hq = 1, .Hk = 1, .Hv = 2, .d = 4, .V = 3, .gate = GATE_MAMBA}, 0, true},
        {{.name = "gla", .Hq = 2, .Hk = 2, .Hv = 2, .d = 4, .V = 3, .scale = true, .gate = GATE_GLA}, 0, true},
        {{.name = "kda_gva", .Hq = 1, .Hk = 1, .Hv = 2, .d = 4, .V = 3, .l2 = true, .delta = true,
          .gate = GATE_GLA}, 0, true},
        {{.name = "gdn_gqa", .Hq = 4, .Hk = 2, .Hv = 2, .d = 4, .V = 3, .l2 = true, .delta = true,
          .gate = GATE_LOGSIG}, 0, true},
        {{.name = "mlstm", .Hq = 2, .Hk = 2, .Hv = 2, .d = 4, .V = 3, .scale = true, .gate = GATE_LOGSIG,
          .igate = true, .norm = IR_NORM_MAXFLOOR, .eps = 1e-6}, 0, true},
        {{.name = "mlstm_big", .Hq = 1, .Hk = 1, .Hv = 1, .d = 4, .V = 3, .scale = true, .gate = GATE_LOGSIG,
          .igate = true, .ig_lo = 300, .ig_hi = 800, .norm = IR_NORM_MAXFLOOR, .eps = 1e-6}, 0, false},
        {{.name = "bidir_denom", .Hq = 1, .Hk = 1, .Hv = 1, .d = 4, .V = 3, .map = MAP_ELU1,
          .norm = IR_NORM_DENOM, .eps = 1e-6, .mask = IR_MASK_NONE}, 0, true},
        {{.name = "based_hybrid", .Hq = 2, .Hk = 2, .Hv = 2, .d = 3, .V = 3, .map = MAP_TAYLOR2,
          .norm = IR_NORM_DENOM, .eps = 1e-6}, 2, false},
        {{.name = "softmax_causal_gqa"}, 1, false},
        {{.name = "softmax_window3"}, 3, false},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases && rc == 0; i++) {
        lin_spec s = cases[i].s;
        s.document = true;
        ir_module *m;
        if (cases[i].softmax == 1 || cases[i].softmax == 3) {
            m = mod_new(a, s.name);
            add_softmax(m, cases[i].softmax == 1 ? 4 : 2, 2, 4, 3, cases[i].softmax == 3 ? 3 : 0);
            m->document = true;
        } else {
            m = build_linear(a, &s);
            if (cases[i].softmax == 2)
                add_softmax(m, 2, 1, 4, 3, 3);
        }
        bool vl = i % 2 == 0;
        ref_problem p = {.seed = 100 + i, .seqlens = vl ? varlen : batch, .nseq = vl ? 4 : 2,
                         .use_h0 = cases[i].h0};
        ref_data *d = ref_draw(m, &p, a, NULL);
        ref_result *r = d ? ref_result_new(d, a) : NULL;
        if (!r || !ref_forward_chunked(m, d, 3, r, a, NULL)) {
            fprintf(stderr, "dump: case %s failed\n", s.name);
            rc = 1;
            break;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.json", dir, s.name);
        FILE *fp = fopen(path, "w");
        if (!fp || !ref_dump_json(m, d, r, fp)) {
            fprintf(stderr, "dump: cannot write %s\n", path);
            rc = 1;
        }
        if (fp && fclose(fp) != 0)
            rc = 1;
    }
    attnc_arena_free(a);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--dump") == 0)
        return dump_cases(argv[2]);
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_linear_maps),       T(test_linear_denom),         T(test_linear_rms_layer),
        T(test_const_decay),       T(test_scalar_gate),          T(test_vector_gate),
        T(test_delta),             T(test_mlstm),                T(test_bidirectional),
        T(test_softmax),           T(test_hybrid),               T(test_gqa_gva),
        T(test_closed_one_token),  T(test_closed_const_decay),   T(test_closed_delta_step),
        T(test_closed_denom),      T(test_closed_norms),         T(test_closed_softmax),
        T(test_closed_mlstm_token), T(test_mlstm_unstabilised),  T(test_mlstm_shift_invariance),
        T(test_closed_bidirectional), T(test_varlen_independent), T(test_shared_heads_replicated),
        T(test_round_dtype),       T(test_draw),                 T(test_eval_ops),
        T(test_eval_taylor_l2),    T(test_errors),               T(test_compare),
        T(test_perf),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
