/* api/ref.c: attnc_ref_check and attnc_ref_grad_check, the public face of the float64 reference
 * (reference/ref.h).
 *
 * attnc_ref_check draws the inputs once, runs the recurrent evaluation once and the chunkwise one per
 * requested chunk size, and reports the relative disagreement of outputs and final states.
 * attnc_ref_grad_check draws the same inputs and random upstream gradients, runs the backward and its
 * finite-difference check.  Both draw through draw_problem.  All memory comes from a scratch arena that
 * lives for one call only; the spec is not modified.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "api_internal.h"
#include "ref.h"

#define REF_TOLERANCE 1e-10
#define GRAD_TOLERANCE 1e-6

static double rms(const double *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i] * x[i];
    return n ? sqrt(s / (double)n) : 0.0;
}

static uint64_t fnv1a(const double *x, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        uint64_t bits;
        memcpy(&bits, &x[i], sizeof bits);
        for (int b = 0; b < 8; b++)
            h = (h ^ ((bits >> (8 * b)) & 0xff)) * 1099511628211ull;
    }
    return h;
}

/* A diagnostic left by the reference, as the context's error message. */
static attnc_status ref_fail(attnc_ctx *ctx, const attnc_diags *d, attnc_status st, const char *what)
{
    const char *msg = d->n ? d->list[d->n - 1].message : "failed";
    return api_fail(ctx, st, "%s: %s", what, msg);
}

/* The sequences `opt` asks for, drawn for `m` (the problem options both checks share). */
static attnc_status draw_problem(attnc_ctx *ctx, const ir_module *m, const attnc_ref_options *opt, attnc_arena *a,
                                 attnc_diags *d, ref_data **data)
{
    if (opt->initial_state && !m->state_in)
        return api_fail(ctx, ATTNC_ERR_USAGE, "the spec takes no initial state (it has no 'state initial')");
    uint32_t nseq = opt->seqlens ? opt->nseq : opt->batch;
    uint32_t *lens = attnc_arena_alloc(a, (nseq ? nseq : 1) * sizeof *lens);
    if (!lens)
        return api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
    uint64_t total = 0;
    for (uint32_t i = 0; i < nseq; i++) {
        lens[i] = opt->seqlens ? opt->seqlens[i] : opt->tokens;
        total += lens[i];
    }
    if (nseq == 0 || total == 0 || total > (1u << 24))
        return api_fail(ctx, ATTNC_ERR_USAGE, "between 1 and 16777216 tokens in at least one sequence");
    ref_problem p = {.seed = opt->seed, .seqlens = lens, .nseq = nseq, .use_h0 = opt->initial_state != 0};
    *data = ref_draw(m, &p, a, d);
    if (!*data)
        return ref_fail(ctx, d, attnc_arena_failed(a) ? ATTNC_ERR_NOMEM : ATTNC_ERR_USAGE, "cannot draw inputs");
    return ATTNC_OK;
}

static const uint32_t default_chunks[] = {1, 16, 64, 13};

attnc_status attnc_ref_check(attnc_ctx *ctx, attnc_spec *spec, const attnc_ref_options *opt, attnc_ref_report *out)
{
    if (!spec || !spec->ir || !opt || !out)
        return api_fail(ctx, ATTNC_ERR_USAGE, "attnc_ref_check needs a checked spec, options and a report");
    memset(out, 0, sizeof *out);
    const ir_module *m = spec->ir;
    const uint32_t *chunks = opt->chunks ? opt->chunks : default_chunks;
    uint32_t nchunks = opt->chunks ? opt->nchunks : (uint32_t)(sizeof default_chunks / sizeof *default_chunks);
    if (nchunks == 0 || nchunks > ATTNC_REF_MAX_CHUNKS)
        return api_fail(ctx, ATTNC_ERR_USAGE, "between 1 and %d chunk sizes, not %u", ATTNC_REF_MAX_CHUNKS, nchunks);
    for (uint32_t i = 0; i < nchunks; i++)
        if (chunks[i] == 0)
            return api_fail(ctx, ATTNC_ERR_USAGE, "a chunk size must be at least 1");

    attnc_arena *a = attnc_arena_new();
    if (!a)
        return api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
    attnc_diags d;
    attnc_diags_init(&d, a);
    ref_data *data;
    attnc_status st = draw_problem(ctx, m, opt, a, &d, &data);
    if (st != ATTNC_OK)
        goto done;
    ref_result *want = ref_result_new(data, a);
    double t0 = api_seconds();
    if (!want || !ref_forward_recurrent(m, data, want, a, &d)) {
        st = ref_fail(ctx, &d, ATTNC_ERR_NOMEM, "recurrent evaluation");
        goto done;
    }
    out->seconds_recurrent = api_seconds() - t0;
    const ref_dims *dims = &data->dims;
    out->total_tokens = dims->total;
    out->nseq = dims->nseq;
    out->key_dim = dims->linear ? dims->K : dims->sK;
    out->value_dim = dims->V;
    out->heads_out = dims->Hout;
    out->heads_state = dims->Hs;
    size_t nout = (size_t)dims->total * dims->Hout * dims->V;
    out->out_rms = rms(want->out, nout);
    if (want->hT)
        out->state_rms = rms(want->hT, (size_t)dims->nseq * dims->Hs * dims->K * dims->V);
    out->out_hash = fnv1a(want->out, nout);

    ref_result *got = ref_result_new(data, a);
    t0 = api_seconds();
    for (uint32_t i = 0; i < nchunks && got; i++) {
        if (!ref_forward_chunked(m, data, chunks[i], got, a, &d)) {
            st = ref_fail(ctx, &d, ATTNC_ERR_NOMEM, "chunkwise evaluation");
            goto done;
        }
        ref_error e;
        if (!ref_compare(got, want, &e)) {
            st = api_fail(ctx, ATTNC_ERR_NUMERIC, "chunkwise and recurrent results differ in size");
            goto done;
        }
        out->chunk[i] = chunks[i];
        out->out_rel_err[i] = e.out_rel;
        out->state_rel_err[i] = m->state_out ? e.state_rel : 0.0;
        double worst = out->out_rel_err[i] > out->state_rel_err[i] ? out->out_rel_err[i] : out->state_rel_err[i];
        if (!(worst <= out->max_rel_err)) /* also takes NaN */
            out->max_rel_err = worst;
        out->nchunks = i + 1;
    }
    if (!got) {
        st = api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
        goto done;
    }
    out->seconds_chunked = api_seconds() - t0;
    if (!isfinite(out->out_rms) || !(out->max_rel_err <= REF_TOLERANCE))
        st = api_fail(ctx, ATTNC_ERR_NUMERIC, "chunkwise and recurrent disagree: max relative error %.3e", out->max_rel_err);
    if (opt->dump_json) {
        FILE *f = fopen(opt->dump_json, "w");
        bool ok = f && ref_dump_json(m, data, want, f);
        if (f && fclose(f) != 0)
            ok = false;
        if (!ok && st == ATTNC_OK)
            st = api_fail(ctx, ATTNC_ERR_IO, "cannot write '%s'", opt->dump_json);
    }
done:
    attnc_arena_free(a);
    return st;
}

attnc_status attnc_ref_grad_check(attnc_ctx *ctx, attnc_spec *spec, const attnc_ref_options *opt,
                                  attnc_ref_grad_report *out)
{
    if (!spec || !spec->ir || !opt || !out)
        return api_fail(ctx, ATTNC_ERR_USAGE, "attnc_ref_grad_check needs a checked spec, options and a report");
    memset(out, 0, sizeof *out);
    const ir_module *m = spec->ir;
    attnc_arena *a = attnc_arena_new();
    if (!a)
        return api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
    attnc_diags d;
    attnc_diags_init(&d, a);
    ref_data *data;
    attnc_status st = draw_problem(ctx, m, opt, a, &d, &data);
    if (st != ATTNC_OK)
        goto done;
    out->total_tokens = data->dims.total;
    out->nseq = data->dims.nseq;
    out->tolerance = GRAD_TOLERANCE;

    ref_result *up = ref_draw_upstream(m, data, opt->seed, a);
    double t0 = api_seconds();
    ref_grad *g = up ? ref_backward(m, data, up, a, &d) : NULL;
    if (!g) {
        st = up ? ref_fail(ctx, &d, ATTNC_ERR_NOMEM, "backward") : api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
        goto done;
    }
    out->seconds_backward = api_seconds() - t0;

    t0 = api_seconds();
    ref_gradcheck_options co = {.seed = opt->seed};
    ref_gradcheck r;
    if (!ref_gradcheck_run(m, data, up, g, &co, &r, a, &d)) {
        st = ref_fail(ctx, &d, ATTNC_ERR_NOMEM, "finite-difference check");
        goto done;
    }
    out->seconds_check = api_seconds() - t0;
    out->ninputs = r.ninputs;
    out->loss = r.loss;
    out->eps = r.eps;
    out->eps_coord = r.eps_coord;
    out->nchecks = r.n;
    out->nforward = r.nforward;
    out->max_rel_err = r.max_rel_err;
    for (uint32_t i = 0; i < r.n && i < ATTNC_REF_GRAD_MAX_CHECKS; i++) {
        attnc_ref_grad_item *c = &out->check[i];
        snprintf(c->what, sizeof c->what, "%s", r.items[i].what);
        c->analytic = r.items[i].analytic;
        c->numeric = r.items[i].numeric;
        c->rel_err = r.items[i].rel_err;
    }
    if (!isfinite(r.loss) || !(r.max_rel_err <= GRAD_TOLERANCE))
        st = api_fail(ctx, ATTNC_ERR_NUMERIC, "backward and finite differences disagree: max relative error %.3e",
                      r.max_rel_err);
done:
    attnc_arena_free(a);
    return st;
}
