/* tests/ref/test_refgrad.c: unit tests of the float64 reference backward (reference/ref_grad.c and the
 * adjoints in ref_eval.c).
 *
 * The spec tests (refgrad.NAME, tests/run_refgrad.sh) check every spec of the library; this file covers
 * what they do not reach and shows that the check can fail:
 *   - every op's adjoint: small specs that use each IR op (the library uses only some) in every role of
 *     a linear part, with RMS and LayerNorm, a per-channel gate, the delta rule, mLSTM without a forget
 *     gate, and a softmax part whose window is shorter than the sequences (varlen, GQA);
 *   - corrupted gradients are caught: one input's gradient scaled by 1 + 1e-4 (its direction check
 *     reports about 1e-4), one coordinate changed by 1e-3 of itself, the h0 gradient dropped, two
 *     coordinates swapped; each must push the largest error above 1e-6;
 *   - refusals: upstream gradients of the wrong sizes;
 *   - the chunkwise adjoint (ref_chunked_grad.c, what GPU backward kernels derive) against the recurrent
 *     backward on the library's additive and delta specs, with and without normalisers (denominator,
 *     RMS, LayerNorm), to 1e-10, at chunk sizes that leave partial chunks, with GQA/GVA and an initial
 *     state, mLSTM's stabiliser and a hybrid with a softmax part included (every linear variant).
 * Modules come from spec text through the public API (api_internal.h gives the checked IR).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "api_internal.h"
#include "ref.h"

#define TOLERANCE 1e-6

/* One spec, drawn, with its upstream gradients and backward: what every test starts from. */
typedef struct fixture {
    attnc_ctx *ctx;
    attnc_spec *spec;
    attnc_arena *a;
    attnc_diags diags;
    const ir_module *m;
    ref_data *d;
    ref_result *up;
    ref_grad *g;
} fixture;

static void print_diags(const attnc_diags *d)
{
    for (uint32_t i = 0; i < d->n; i++)
        print_error("diag: %s\n", d->list[i].message);
}

static void load(fixture *f, const char *text, const uint32_t *lens, uint32_t nseq, bool h0)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(attnc_ctx_new(&f->ctx), ATTNC_OK);
    attnc_status st = attnc_spec_from_string(f->ctx, "test.attn", text, strlen(text), &f->spec);
    if (st != ATTNC_OK && f->spec)
        print_error("%s", attnc_spec_diag_text(f->spec));
    assert_int_equal(st, ATTNC_OK);
    f->m = f->spec->ir;
    f->a = attnc_arena_new();
    assert_non_null(f->a);
    attnc_diags_init(&f->diags, f->a);
    ref_problem p = {.seed = 11, .seqlens = lens, .nseq = nseq, .use_h0 = h0};
    f->d = ref_draw(f->m, &p, f->a, &f->diags);
    if (!f->d)
        print_diags(&f->diags);
    assert_non_null(f->d);
    f->up = ref_draw_upstream(f->m, f->d, 5, f->a);
    assert_non_null(f->up);
    f->g = ref_backward(f->m, f->d, f->up, f->a, &f->diags);
    if (!f->g)
        print_diags(&f->diags);
    assert_non_null(f->g);
}

static void unload(fixture *f)
{
    attnc_arena_free(f->a);
    attnc_spec_free(f->spec);
    attnc_ctx_free(f->ctx);
}

static ref_gradcheck check(fixture *f, const ref_grad *g)
{
    ref_gradcheck r;
    ref_gradcheck_options o = {.seed = 3};
    bool ok = ref_gradcheck_run(f->m, f->d, f->up, g, &o, &r, f->a, &f->diags);
    if (!ok)
        print_diags(&f->diags);
    assert_true(ok);
    return r;
}

static void print_check(const char *what, const ref_gradcheck *r)
{
    print_message("%s: %u checks, max rel err %.3e\n", what, r->n, r->max_rel_err);
    for (uint32_t i = 0; i < r->n; i++)
        if (!(r->items[i].rel_err <= TOLERANCE))
            print_message("  %-16s backward % .10e  finite difference % .10e  rel err %.3e\n", r->items[i].what,
                          r->items[i].analytic, r->items[i].numeric, r->items[i].rel_err);
}

/* Loads `text`, runs the backward and requires the check to pass. */
static void expect_pass(const char *text, const uint32_t *lens, uint32_t nseq, bool h0)
{
    fixture f;
    load(&f, text, lens, nseq, h0);
    ref_gradcheck r = check(&f, f.g);
    print_check(f.m->name, &r);
    assert_true(r.n >= 1 + 2 * r.ninputs); /* all inputs, then per input: a direction, its largest coordinate */
    assert_true(r.max_rel_err <= TOLERANCE);
    unload(&f);
}

static const uint32_t lens3[] = {13, 1, 9};

/* ------------------------------------------------------------------------------------------------- */
/* every op's adjoint                                                                                 */

/* Every elementwise op, both broadcasts (a per-token scalar over channels, a per-head vector over
 * tokens), RMS, a per-channel gate and an initial state. */
static const char spec_ops[] =
    "attention ops {\n"
    "  dim K = 16, V = 16;\n"
    "  heads H = 2;\n"
    "  input q: bf16[H, K];\n"
    "  input k: bf16[H, K];\n"
    "  input v: bf16[H, V];\n"
    "  input x: fp32[H] in [0.5, 2];\n"
    "  input g: bf16[H, K];\n"
    "  param p: fp32[H, K];\n"
    "  linear {\n"
    "    query = tanh(q) * sigmoid(p) + silu(q) - relu(q) / x;\n"
    "    key   = abs(k) + min(k, p) * max(q, -0.5) + sqrt(x) * elu(k);\n"
    "    value = v * rsqrt(x) - x ^ p + exp(-x) * log(x) * v ^ 2;\n"
    "    gate  = logsigmoid(g) * sigmoid(p) - softplus(p) / 8;\n"
    "    normalize rmsnorm(1e-6);\n"
    "  }\n"
    "  mask causal, document;\n"
    "  state initial, final;\n"
    "}\n";

static void test_ops(void **state)
{
    (void)state;
    expect_pass(spec_ops, lens3, 3, true);
}

/* The vector maps, the delta rule with a scalar gate, LayerNorm, GVA (value heads finer than q/k). */
static const char spec_maps[] =
    "attention maps {\n"
    "  dim D = 5, V = 16;\n"
    "  heads Hqk = 2, Hv = 4;\n"
    "  input q: bf16[Hqk, D];\n"
    "  input k: bf16[Hqk, 21];\n"
    "  input v: bf16[Hv, V];\n"
    "  input a: bf16[Hv];\n"
    "  input b: bf16[Hv];\n"
    "  linear {\n"
    "    query = l2norm(taylor2(q));\n"
    "    key   = l2norm(k);\n"
    "    value = v;\n"
    "    gate  = logsigmoid(a);\n"
    "    beta  = sigmoid(b) * 2;\n"
    "    update delta;\n"
    "    normalize layernorm(1e-5);\n"
    "  }\n"
    "  mask causal, document;\n"
    "  state initial, final;\n"
    "}\n";

static void test_maps_delta(void **state)
{
    (void)state;
    expect_pass(spec_maps, lens3, 3, true);
}

/* mLSTM with an input gate and no forget gate (decay none), and a constant decay with DENOM. */
static const char spec_mlstm_nogate[] =
    "attention mlstm_nogate {\n"
    "  dim K = 16, V = 16;\n"
    "  heads H = 2;\n"
    "  input q: bf16[H, K];\n"
    "  input k: bf16[H, K];\n"
    "  input v: bf16[H, V];\n"
    "  input i: fp32[H];\n"
    "  linear {\n"
    "    query = q * K^-0.5;\n"
    "    key   = k;\n"
    "    value = v;\n"
    "    igate = i;\n"
    "    normalize max_floor(1e-6);\n"
    "  }\n"
    "  mask causal, document;\n"
    "  state initial, final;\n"
    "}\n";

static const char spec_const_denom[] =
    "attention const_denom {\n"
    "  dim K = 16, V = 16;\n"
    "  heads H = 2;\n"
    "  input q: bf16[H, K] in [0, 1];\n"
    "  input k: bf16[H, K] in [0, 1];\n"
    "  input v: bf16[H, V];\n"
    "  param lam: fp32[H] in [0.5, 0.9];\n"
    "  linear {\n"
    "    query = q;\n"
    "    key   = k;\n"
    "    value = v;\n"
    "    decay = lam;\n"
    "    normalize denominator(1e-6);\n"
    "  }\n"
    "  mask causal, document;\n"
    "  state initial, final;\n"
    "}\n";

static void test_mlstm_const(void **state)
{
    (void)state;
    expect_pass(spec_mlstm_nogate, lens3, 3, true);
    expect_pass(spec_const_denom, lens3, 3, true);
}

/* Softmax with a window shorter than the sequences, GQA, varlen; and bidirectional softmax plus
 * bidirectional linear attention with RMS in one module. */
static const char spec_window[] =
    "attention window {\n"
    "  dim D = 16, V = 16;\n"
    "  heads Hq = 4, Hkv = 2;\n"
    "  input q: bf16[Hq, D];\n"
    "  input k: bf16[Hkv, D];\n"
    "  input v: bf16[Hkv, V];\n"
    "  softmax {\n"
    "    query = q * D^-0.5;\n"
    "    key   = k;\n"
    "    value = v;\n"
    "    window 4;\n"
    "  }\n"
    "  mask causal, document;\n"
    "}\n";

static const char spec_bidir[] =
    "attention bidir {\n"
    "  dim K = 16, V = 16;\n"
    "  heads H = 2;\n"
    "  input q: bf16[H, K];\n"
    "  input k: bf16[H, K];\n"
    "  input v: bf16[H, V];\n"
    "  input sq: bf16[H, K];\n"
    "  input sk: bf16[H, K];\n"
    "  input sv: bf16[H, V];\n"
    "  linear {\n"
    "    query = q;\n"
    "    key   = k * K^-0.5;\n"
    "    value = v;\n"
    "    normalize rmsnorm(1e-6);\n"
    "  }\n"
    "  softmax {\n"
    "    query = sq * K^-0.5;\n"
    "    key   = sk;\n"
    "    value = sv;\n"
    "  }\n"
    "  mask none, document;\n"
    "  state initial, final;\n"
    "}\n";

static void test_softmax(void **state)
{
    (void)state;
    expect_pass(spec_window, lens3, 3, false);
    expect_pass(spec_bidir, lens3, 3, true);
}

/* ------------------------------------------------------------------------------------------------- */
/* the check fails on wrong gradients                                                                 */

/* A copy of f->g (the corruptions must not touch the original). */
static ref_grad *copy_grad(fixture *f)
{
    ref_grad *c = attnc_arena_alloc(f->a, sizeof *c);
    assert_non_null(c);
    c->tensor = attnc_arena_alloc(f->a, f->m->ntensors * sizeof *c->tensor);
    assert_non_null(c->tensor);
    for (uint32_t i = 0; i < f->m->ntensors; i++) {
        c->tensor[i] = attnc_arena_alloc(f->a, f->d->tensor_count[i] * sizeof(double));
        assert_non_null(c->tensor[i]);
        memcpy(c->tensor[i], f->g->tensor[i], f->d->tensor_count[i] * sizeof(double));
    }
    size_t n = (size_t)f->d->dims.nseq * f->d->dims.Hs * f->d->dims.K * f->d->dims.V;
    c->h0 = attnc_arena_alloc(f->a, n * sizeof(double));
    assert_non_null(c->h0);
    memcpy(c->h0, f->g->h0, n * sizeof(double));
    c->z0 = f->g->z0;
    c->m0 = f->g->m0;
    return c;
}

static uint32_t tensor_index(const ir_module *m, const char *name)
{
    for (uint32_t i = 0; i < m->ntensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return i;
    fail_msg("no tensor '%s'", name);
    return 0;
}

static const ref_gradcheck_item *item(const ref_gradcheck *r, const char *what)
{
    for (uint32_t i = 0; i < r->n; i++)
        if (strcmp(r->items[i].what, what) == 0)
            return &r->items[i];
    fail_msg("no check '%s'", what);
    return NULL;
}

static size_t argmax_abs(const double *x, size_t n)
{
    size_t at = 0;
    for (size_t i = 1; i < n; i++)
        if (fabs(x[i]) > fabs(x[at]))
            at = i;
    return at;
}

static void test_corrupted(void **state)
{
    (void)state;
    fixture f;
    load(&f, spec_ops, lens3, 3, true);
    ref_gradcheck good = check(&f, f.g);
    assert_true(good.max_rel_err <= TOLERANCE);

    /* one input's gradient 1e-4 too large: its direction check sees 1e-4 */
    uint32_t iv = tensor_index(f.m, "v");
    ref_grad *c = copy_grad(&f);
    for (size_t i = 0; i < f.d->tensor_count[iv]; i++)
        c->tensor[iv][i] *= 1.0 + 1e-4;
    ref_gradcheck r = check(&f, c);
    print_check("v scaled by 1 + 1e-4", &r);
    assert_true(r.max_rel_err > TOLERANCE);
    double e = item(&r, "v")->rel_err;
    assert_true(e > 0.5e-4 && e < 2e-4);

    /* the largest coordinate of p's gradient off by 1e-3 of itself: its coordinate check sees it */
    uint32_t ip = tensor_index(f.m, "p");
    c = copy_grad(&f);
    size_t at = argmax_abs(c->tensor[ip], f.d->tensor_count[ip]);
    c->tensor[ip][at] *= 1.0 + 1e-3;
    r = check(&f, c);
    print_check("p's largest coordinate times 1 + 1e-3", &r);
    assert_true(r.max_rel_err > TOLERANCE);
    char name[32];
    snprintf(name, sizeof name, "p[%zu]", at);
    e = item(&r, name)->rel_err;
    assert_true(e > 0.5e-3 && e < 2e-3);

    /* no gradient for h0 */
    c = copy_grad(&f);
    memset(c->h0, 0, (size_t)f.d->dims.nseq * f.d->dims.Hs * f.d->dims.K * f.d->dims.V * sizeof(double));
    r = check(&f, c);
    print_check("h0 dropped", &r);
    assert_true(item(&r, "h0")->rel_err > 0.5);

    /* two coordinates of k's gradient swapped (as a transposed index would): same norm, same sum */
    uint32_t ik = tensor_index(f.m, "k");
    c = copy_grad(&f);
    size_t i0 = argmax_abs(c->tensor[ik], f.d->tensor_count[ik]), i1 = (i0 + 1) % f.d->tensor_count[ik];
    double t = c->tensor[ik][i0];
    c->tensor[ik][i0] = c->tensor[ik][i1];
    c->tensor[ik][i1] = t;
    r = check(&f, c);
    print_check("k: two coordinates swapped", &r);
    assert_true(r.max_rel_err > TOLERANCE);
    unload(&f);
}

/* ------------------------------------------------------------------------------------------------- */
/* the chunkwise adjoint                                                                              */

static char *read_spec(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", ATTNC_SOURCE_DIR, rel);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    return buf;
}

/* max over the tensors and the initial states (h0, z0, m0) of ||a - b|| / ||b|| */
static double grad_diff(const ref_data *d, const ref_grad *a, const ref_grad *b, uint32_t ntensors)
{
    double worst = 0;
    size_t nh = (size_t)d->dims.nseq * d->dims.Hs;
    for (uint32_t i = 0; i < ntensors + 3; i++) {
        const double *x = i < ntensors ? a->tensor[i] : i == ntensors ? a->h0 : i == ntensors + 1 ? a->z0 : a->m0;
        const double *y = i < ntensors ? b->tensor[i] : i == ntensors ? b->h0 : i == ntensors + 1 ? b->z0 : b->m0;
        size_t n = i < ntensors ? d->tensor_count[i] : i == ntensors ? nh * d->dims.K * d->dims.V
                 : i == ntensors + 1 ? nh * d->dims.K : nh;
        if (!x || !y)
            continue;
        double num = 0, den = 0;
        for (size_t j = 0; j < n; j++) {
            num += (x[j] - y[j]) * (x[j] - y[j]);
            den += y[j] * y[j];
        }
        double e = den > 0 ? sqrt(num / den) : sqrt(num);
        worst = e > worst || e != e ? e : worst;
    }
    return worst;
}

static void test_chunked_adjoint(void **state)
{
    (void)state;
    static const char *const specs[] = {"specs/lightning.attn", "specs/mamba2.attn",   "specs/gla.attn",
                                        "specs/hgrn2.attn",     "specs/deltanet.attn", "specs/gated_deltanet.attn",
                                        "specs/kda.attn",       "tests/specs/gqa_gla.attn",
                                        "tests/specs/gva_gated_deltanet.attn", "specs/linear_attn.attn",
                                        "specs/based.attn",     "specs/hedgehog.attn", "specs/retnet.attn",
                                        "specs/transnormer.attn", "tests/specs/kv_asym_retnet.attn",
                                        "tests/specs/const_decay.attn", "specs/linear_bidirectional.attn",
                                        "specs/mlstm.attn",     "tests/specs/based_hybrid.attn"};
    static const uint32_t lens[] = {37, 5, 20};
    static const uint32_t chunks[] = {16, 7};
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) {
        fixture f;
        memset(&f, 0, sizeof f);
        assert_int_equal(attnc_ctx_new(&f.ctx), ATTNC_OK);
        const char *text = read_spec(specs[i]);
        assert_int_equal(attnc_spec_from_string(f.ctx, specs[i], text, strlen(text), &f.spec), ATTNC_OK);
        f.m = f.spec->ir;
        /* fewer heads and a narrower problem keep it quick under the sanitizers; GQA/GVA keep their ratio */
        if (f.m->naxes == 1)
            assert_int_equal(attnc_spec_override(f.spec, 2, -1), ATTNC_OK);
        f.a = attnc_arena_new();
        attnc_diags_init(&f.diags, f.a);
        /* packed sequences only where the spec has document boundaries (else one of 62 tokens) */
        static const uint32_t one[] = {62};
        ref_problem p = {.seed = 23, .seqlens = f.m->document ? lens : one, .nseq = f.m->document ? 3 : 1,
                         .use_h0 = f.m->state_in};
        f.d = ref_draw(f.m, &p, f.a, &f.diags);
        assert_non_null(f.d);
        f.up = ref_draw_upstream(f.m, f.d, 9, f.a);
        f.g = ref_backward(f.m, f.d, f.up, f.a, &f.diags);
        assert_non_null(f.g);
        for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++) {
            ref_grad *gc = ref_backward_chunked(f.m, f.d, f.up, chunks[c], f.a, &f.diags);
            if (!gc)
                print_diags(&f.diags);
            assert_non_null(gc);
            double e = grad_diff(f.d, gc, f.g, f.m->ntensors);
            print_message("%s chunk %u: chunkwise vs recurrent backward, max rel diff %.3e\n", specs[i], chunks[c], e);
            assert_true(e <= 1e-10);
        }
        unload(&f);
    }
}

static void test_refusals(void **state)
{
    (void)state;
    fixture f;
    load(&f, spec_ops, lens3, 3, true);
    static const uint32_t other[] = {13, 2, 9};
    ref_problem p = {.seed = 1, .seqlens = other, .nseq = 3};
    ref_data *d2 = ref_draw(f.m, &p, f.a, &f.diags);
    assert_non_null(d2);
    ref_result *up2 = ref_draw_upstream(f.m, d2, 1, f.a);
    assert_non_null(up2);
    uint32_t before = f.diags.n;
    assert_null(ref_backward(f.m, f.d, up2, f.a, &f.diags));
    assert_true(f.diags.n > before);
    assert_null(ref_backward(f.m, f.d, up2, f.a, NULL)); /* no diagnostics wanted */
    unload(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops),       cmocka_unit_test(test_maps_delta), cmocka_unit_test(test_mlstm_const),
        cmocka_unit_test(test_softmax),   cmocka_unit_test(test_corrupted),  cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_chunked_adjoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
