/* api/run.c: attnc_run_check, the GPU against the float64 reference.
 *
 * Fresh inputs are drawn by the reference (reference/ref_draw.c, already rounded to each tensor's dtype,
 * so both sides read the same numbers), copied to the device in their dtype, outputs and final states
 * are poisoned with NaN bytes, the kernel runs, and the results come back as float64 and are compared
 * with the reference: relative error = ||gpu - ref|| / ||ref|| (Frobenius), any non-finite number fails.
 * The tolerance is 1e-2 for 16-bit inputs and 1e-4 for fp32 inputs (issue 3).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "ref.h"
#include "rt.h"

/* The fp16 bits of x, which is representable (ref_round_dtype made it so) or infinite. */
static uint16_t half_bits(double x)
{
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    x = fabs(x);
    if (isnan(x))
        return 0x7e00;
    if (isinf(x) || x >= 65520.0)
        return sign | 0x7c00;
    if (x == 0)
        return sign;
    int e;
    double m = frexp(x, &e); /* x = m 2^e, m in [0.5, 1) */
    int E = e + 14;          /* the biased exponent of 1.f x 2^(e-1) */
    if (E >= 1)
        return (uint16_t)(sign | (E << 10) | (uint16_t)lround((m * 2 - 1) * 1024));
    return (uint16_t)(sign | (uint16_t)lround(x * 16777216.0)); /* subnormal: x = n 2^-24 */
}

static double half_value(uint16_t h)
{
    int E = (h >> 10) & 31, mant = h & 1023;
    double s = (h & 0x8000) ? -1.0 : 1.0;
    if (E == 31)
        return mant ? NAN : s * INFINITY;
    if (E == 0)
        return s * ldexp(mant, -24);
    return s * ldexp(1024 + mant, E - 25);
}

static void pack(const double *x, size_t n, attnc_dtype dt, void *dst)
{
    for (size_t i = 0; i < n; i++) {
        if (dt == ATTNC_FP32) {
            ((float *)dst)[i] = (float)x[i];
        } else if (dt == ATTNC_FP16) {
            ((uint16_t *)dst)[i] = half_bits(x[i]);
        } else {
            float f = (float)x[i];
            uint32_t bits;
            memcpy(&bits, &f, 4);
            ((uint16_t *)dst)[i] = (uint16_t)(bits >> 16); /* exact: x is a bf16 number */
        }
    }
}

static void unpack(const void *src, size_t n, attnc_dtype dt, double *x)
{
    for (size_t i = 0; i < n; i++) {
        if (dt == ATTNC_FP32) {
            x[i] = ((const float *)src)[i];
        } else if (dt == ATTNC_FP16) {
            x[i] = half_value(((const uint16_t *)src)[i]);
        } else {
            uint32_t bits = (uint32_t)((const uint16_t *)src)[i] << 16;
            float f;
            memcpy(&f, &bits, 4);
            x[i] = f;
        }
    }
}

/* Device buffers of one run, freed together. */
#define MAX_BUFS 80
typedef struct dev_bufs {
    uint64_t p[MAX_BUFS];
    int n;
} dev_bufs;

static bool dev_alloc(dev_bufs *b, size_t bytes, uint64_t *out, rt_error *err)
{
    if (b->n == MAX_BUFS) {
        snprintf(err->msg, sizeof err->msg, "too many device buffers");
        return false;
    }
    if (!rt_mem_alloc(out, bytes ? bytes : 16, err))
        return false;
    b->p[b->n++] = *out;
    return true;
}

static void dev_free_all(dev_bufs *b)
{
    for (int i = 0; i < b->n; i++)
        rt_mem_free(b->p[i]);
    b->n = 0;
}

/* Upload doubles as `dt` into a fresh device buffer. */
static bool upload(dev_bufs *b, const double *x, size_t n, attnc_dtype dt, uint64_t *out, rt_error *err)
{
    void *host = malloc(n * ir_dtype_bytes((ir_dtype)dt) + 16);
    if (!host) {
        snprintf(err->msg, sizeof err->msg, "out of host memory");
        return false;
    }
    pack(x, n, dt, host);
    bool ok = dev_alloc(b, n * ir_dtype_bytes((ir_dtype)dt), out, err) && rt_memcpy_htod(*out, host, n * ir_dtype_bytes((ir_dtype)dt), err);
    free(host);
    return ok;
}

/* A poisoned (all bytes 0xff: NaN in every float format) output buffer. */
static bool poisoned(dev_bufs *b, size_t bytes, uint64_t *out, rt_error *err)
{
    return dev_alloc(b, bytes, out, err) && rt_memset_d8(*out, 0xff, bytes, err);
}

static bool download(uint64_t src, size_t n, attnc_dtype dt, double *x, rt_error *err)
{
    void *host = malloc(n * ir_dtype_bytes((ir_dtype)dt) + 16);
    if (!host) {
        snprintf(err->msg, sizeof err->msg, "out of host memory");
        return false;
    }
    bool ok = rt_memcpy_dtoh(host, src, n * ir_dtype_bytes((ir_dtype)dt), err);
    if (ok)
        unpack(host, n, dt, x);
    free(host);
    return ok;
}

bool api_reads_tensor(const ir_module *m, ir_ref r, uint32_t ti)
{
    if (r == IR_NONE)
        return false;
    const ir_value *v = &m->values[r];
    if ((v->op == IR_OP_INPUT || v->op == IR_OP_PARAM) && v->aux == ti)
        return true;
    for (int k = 0; k < ir_op_arity((ir_op)v->op); k++)
        if (api_reads_tensor(m, v->arg[k], ti))
            return true;
    return false;
}

static void tensor_desc(attnc_tensor *t, uint64_t data, attnc_dtype dt, int nd, const int64_t *shape)
{
    memset(t, 0, sizeof *t);
    t->data = (void *)(uintptr_t)data;
    t->dtype = dt;
    t->ndim = nd;
    int64_t stride = 1;
    for (int i = nd - 1; i >= 0; i--) {
        t->shape[i] = shape[i];
        t->stride[i] = stride;
        stride *= shape[i];
    }
}

/* ---- what the forward check and the grad check share ------------------------------------------------- */

/* The checks of the options; *nseq: the number of sequences. */
static attnc_status check_options(attnc_ctx *ctx, const ir_module *m, const attnc_run_options *opt, uint32_t *nseq)
{
    if (opt->initial_state && !m->state_in)
        return api_fail(ctx, ATTNC_ERR_USAGE, "the spec takes no initial state (it has no 'state initial')");
    *nseq = opt->seqlens ? opt->nseq : opt->batch;
    if (*nseq == 0 || (!opt->seqlens && opt->tokens == 0))
        return api_fail(ctx, ATTNC_ERR_USAGE, "no tokens to run");
    if (opt->seqlens && !m->document)
        return api_fail(ctx, ATTNC_ERR_USAGE, "varlen batches need a spec with 'document'");
    return ATTNC_OK;
}

/* Fresh inputs as the reference draws them.  With `scale` (strong gates), every tensor that `gate` or
 * `igate` reads is multiplied by opt->gate_scale and rounded again, and the roles are evaluated anew. */
static attnc_status draw_inputs(attnc_ctx *ctx, const ir_module *m, const attnc_run_options *opt, uint32_t nseq,
                                bool scale, ir_ref gate, ir_ref igate, attnc_arena *a, attnc_diags *d,
                                ref_data **out)
{
    uint32_t *lens = attnc_arena_alloc(a, nseq * sizeof *lens);
    if (!lens)
        return api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; i < nseq; i++)
        lens[i] = opt->seqlens ? opt->seqlens[i] : opt->tokens;
    ref_problem prob = {.seed = opt->seed, .seqlens = lens, .nseq = nseq, .use_h0 = opt->initial_state != 0};
    ref_data *data = ref_draw(m, &prob, a, d);
    if (!data)
        return api_fail(ctx, ATTNC_ERR_USAGE, "drawing inputs: %s", d->n ? d->list[d->n - 1].message : "failed");
    if (scale) {
        for (uint32_t i = 0; i < m->ntensors; i++) {
            if (!api_reads_tensor(m, gate, i) && !api_reads_tensor(m, igate, i))
                continue;
            for (size_t j = 0; j < data->tensor_count[i]; j++)
                data->tensor[i][j] = ref_round_dtype(data->tensor[i][j] * opt->gate_scale, m->tensors[i].dtype);
        }
        if (!ref_eval_roles(m, data, a, d))
            return api_fail(ctx, ATTNC_ERR_USAGE, "evaluating roles: %s", d->n ? d->list[d->n - 1].message : "failed");
    }
    *out = data;
    return ATTNC_OK;
}

/* Every tensor on the device in its dtype, described in *ins (arena-allocated) as the launches take it:
 * [B, T, H, len] per token, [H, len] otherwise, without the last dimension when len is 1.  With grads:
 * also a poisoned buffer of the same size per tensor for its gradient (*dptr, described in *grads). */
static attnc_status upload_inputs(attnc_ctx *ctx, dev_bufs *bufs, attnc_arena *a, const ir_module *m,
                                  const ref_data *data, int64_t B, int64_t T, attnc_tensor **ins,
                                  attnc_tensor **grads, uint64_t **dptr)
{
    size_t n = m->ntensors ? m->ntensors : 1;
    *ins = attnc_arena_alloc(a, n * sizeof **ins);
    if (grads) {
        *grads = attnc_arena_alloc(a, n * sizeof **grads);
        *dptr = attnc_arena_alloc(a, n * sizeof **dptr);
    }
    if (!*ins || (grads && (!*grads || !*dptr)))
        return api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
    rt_error err = {{0}};
    for (uint32_t i = 0; i < m->ntensors; i++) {
        const ir_tensor *t = &m->tensors[i];
        attnc_dtype dt = (attnc_dtype)t->dtype;
        uint64_t dp;
        size_t bytes = data->tensor_count[i] * ir_dtype_bytes(t->dtype);
        if (!upload(bufs, data->tensor[i], data->tensor_count[i], dt, &dp, &err) ||
            (grads && !poisoned(bufs, bytes, &(*dptr)[i], &err)))
            return api_fail(ctx, ATTNC_ERR_IO, "%s", err.msg);
        int64_t H = m->axes[t->axis].count;
        int64_t shape[4] = {B, T, H, t->len};
        int nd = t->per_token ? (t->len == 1 ? 3 : 4) : (t->len == 1 ? 1 : 2);
        const int64_t *sh = t->per_token ? shape : shape + 2;
        tensor_desc(&(*ins)[i], dp, dt, nd, sh);
        if (grads)
            tensor_desc(&(*grads)[i], (*dptr)[i], dt, nd, sh);
    }
    return ATTNC_OK;
}

/* A varlen run's cu_seqlens (int32 [nseq + 1]) on the device at *dp. */
static attnc_status upload_seqlens(attnc_ctx *ctx, dev_bufs *bufs, attnc_arena *a, const ref_data *data, uint32_t nseq,
                                   uint64_t *dp)
{
    int32_t *cu = attnc_arena_alloc(a, (nseq + 1) * sizeof *cu);
    if (!cu)
        return api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; i <= nseq; i++)
        cu[i] = (int32_t)data->cu_seqlens[i];
    rt_error err = {{0}};
    if (!dev_alloc(bufs, (nseq + 1) * 4, dp, &err) || !rt_memcpy_htod(*dp, cu, (nseq + 1) * 4, &err))
        return api_fail(ctx, ATTNC_ERR_IO, "%s", err.msg);
    return ATTNC_OK;
}

/* An fp32 state tensor of shape[0..nd) (a prefix of [N, Hs, K, V]) on the device, described in *t: uploaded
 * from x (upload_state), or poisoned at *dp (poison_state). */
static size_t state_count(int nd, const int64_t *shape)
{
    size_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= (size_t)shape[i];
    return n;
}

static bool upload_state(dev_bufs *bufs, const double *x, int nd, const int64_t *shape, attnc_tensor *t, rt_error *err)
{
    uint64_t dp;
    if (!upload(bufs, x, state_count(nd, shape), ATTNC_FP32, &dp, err))
        return false;
    tensor_desc(t, dp, ATTNC_FP32, nd, shape);
    return true;
}

static bool poison_state(dev_bufs *bufs, int nd, const int64_t *shape, attnc_tensor *t, uint64_t *dp, rt_error *err)
{
    if (!poisoned(bufs, state_count(nd, shape) * 4, dp, err))
        return false;
    tensor_desc(t, *dp, ATTNC_FP32, nd, shape);
    return true;
}

/* Every per-token input is fp32 (the tighter tolerance). */
static bool inputs_fp32(const ir_module *m)
{
    bool fp32 = true;
    for (uint32_t i = 0; i < m->ntensors; i++)
        fp32 &= !m->tensors[i].per_token || m->tensors[i].dtype == IR_DT_FP32;
    return fp32;
}

/* One launch that rt_time_ms times: the backward when `grad` is set, else the forward. */
typedef struct timed_launch {
    attnc_ctx *ctx;
    attnc_kernel *kernel;
    const attnc_forward_args *args;
    attnc_grad_kernel *grad;
    const attnc_backward_args *grad_args;
} timed_launch;

static bool run_once(void *closure, rt_error *err)
{
    timed_launch *tl = closure;
    attnc_status st = tl->grad ? attnc_backward(tl->ctx, tl->grad, tl->grad_args)
                               : attnc_forward(tl->ctx, tl->kernel, tl->args);
    if (st != ATTNC_OK) {
        snprintf(err->msg, sizeof err->msg, "%s", attnc_errmsg(tl->ctx));
        return false;
    }
    return true;
}

/* The kernels a check runs: the optimised ones (what a tiered kernel runs once they are in), or the quick
 * ones (forward and backward). */
static attnc_jit_mode jit_mode(const attnc_run_options *opt)
{
    return opt->quick_jit ? ATTNC_JIT_QUICK : ATTNC_JIT_OPTIMIZED;
}

/* ---- attnc_run_check ---------------------------------------------------------------------------------- */

attnc_status attnc_run_check(attnc_ctx *ctx, attnc_spec *spec, const attnc_run_options *opt, attnc_run_report *out)
{
    if (!spec || !spec->ir || !opt || !out)
        return api_fail(ctx, ATTNC_ERR_USAGE, "attnc_run_check needs a checked spec, options and a report");
    memset(out, 0, sizeof *out);
    const ir_module *m = spec->ir;
    uint32_t nseq = 0;
    attnc_status st = check_options(ctx, m, opt, &nseq);
    if (st != ATTNC_OK)
        return st;

    attnc_kernel *kernel = NULL;
    if ((st = attnc_kernel_new(ctx, spec, &(attnc_compile_options){.jit = jit_mode(opt)}, &kernel)) != ATTNC_OK)
        return st;

    attnc_arena *a = attnc_arena_new();
    if (!a) {
        attnc_kernel_free(kernel);
        return api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
    }
    attnc_diags d;
    attnc_diags_init(&d, a);
    dev_bufs bufs = {0};
    rt_error err = {{0}};
    ref_data *data;
    if ((st = draw_inputs(ctx, m, opt, nseq, opt->gate_scale > 0 && m->linear.present, m->linear.gate, m->linear.igate,
                          a, &d, &data)) != ATTNC_OK)
        goto done;
    const ref_dims *dm = &data->dims;
    out->total_tokens = dm->total;
    out->nseq = dm->nseq;

    /* The reference. */
    double t0 = api_seconds();
    ref_result *want = ref_result_new(data, a);
    bool ok = want && (opt->reference_chunked ? ref_forward_chunked(m, data, 0, want, a, &d)
                                              : ref_forward_recurrent(m, data, want, a, &d));
    out->reference_s = api_seconds() - t0;
    if (!ok) {
        st = api_fail(ctx, ATTNC_ERR_NOMEM, "reference: %s", d.n ? d.list[d.n - 1].message : "failed");
        goto done;
    }

    /* Inputs on the device: [B, T, H, len] uniform, or [1, total, H, len] varlen. */
    int64_t B = opt->seqlens ? 1 : nseq, T = opt->seqlens ? dm->total : opt->tokens;
    attnc_tensor *ins;
    if ((st = upload_inputs(ctx, &bufs, a, m, data, B, T, &ins, NULL, NULL)) != ATTNC_OK)
        goto done;
    attnc_forward_args args = {.inputs = ins, .ninputs = m->ntensors, .schedule = opt->schedule};
    size_t nout = (size_t)dm->total * dm->Hout * dm->V;
    uint64_t d_out;
    if (!poisoned(&bufs, nout * ir_dtype_bytes((ir_dtype)(attnc_dtype)m->out_dtype), &d_out, &err))
        goto io_fail;
    int64_t oshape[4] = {B, T, dm->Hout, dm->V};
    tensor_desc(&args.out, d_out, (attnc_dtype)m->out_dtype, 4, oshape);
    int64_t N = dm->nseq, Hs = dm->Hs;
    int64_t hshape[4] = {N, Hs, dm->K, dm->V};
    size_t nh = (size_t)N * Hs * dm->K * dm->V, nz = (size_t)N * Hs * dm->K, nm = (size_t)N * Hs;
    uint64_t dp;
    if (m->linear.present && data->h0 &&
        (!upload_state(&bufs, data->h0, 4, hshape, &args.h0, &err) ||
         (dm->has_z && !upload_state(&bufs, data->z0, 3, hshape, &args.z0, &err)) ||
         (dm->has_m && !upload_state(&bufs, data->m0, 2, hshape, &args.m0, &err))))
        goto io_fail;
    uint64_t d_hT = 0, d_zT = 0, d_mT = 0;
    if (m->linear.present && m->state_out &&
        (!poison_state(&bufs, 4, hshape, &args.hT, &d_hT, &err) ||
         (dm->has_z && !poison_state(&bufs, 3, hshape, &args.zT, &d_zT, &err)) ||
         (dm->has_m && !poison_state(&bufs, 2, hshape, &args.mT, &d_mT, &err))))
        goto io_fail;
    if (opt->seqlens) {
        if ((st = upload_seqlens(ctx, &bufs, a, data, nseq, &dp)) != ATTNC_OK)
            goto done;
        args.cu_seqlens = (const int32_t *)(uintptr_t)dp;
        args.nseq = nseq;
    }
    if ((st = attnc_forward(ctx, kernel, &args)) != ATTNC_OK)
        goto done;
    if (!rt_synchronize(&err))
        goto io_fail;

    /* Back to float64 and compare. */
    ref_result *got = ref_result_new(data, a);
    if (!got) {
        st = api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (!download(d_out, nout, (attnc_dtype)m->out_dtype, got->out, &err))
        goto io_fail;
    if (d_hT) {
        if (!download(d_hT, nh, ATTNC_FP32, got->hT, &err) || (d_zT && !download(d_zT, nz, ATTNC_FP32, got->zT, &err)) ||
            (d_mT && !download(d_mT, nm, ATTNC_FP32, got->mT, &err)))
            goto io_fail;
    } else {
        /* No final state is returned: nothing to compare there. */
        got->hT = want->hT;
        got->zT = want->zT;
        got->mT = want->mT;
    }
    ref_error e;
    if (!ref_compare(got, want, &e)) {
        st = api_fail(ctx, ATTNC_ERR_USAGE, "internal: result sizes differ");
        goto done;
    }
    out->out_rel_err = e.out_rel;
    out->out_max_abs = e.out_maxabs;
    out->state_rel_err = e.state_rel;
    out->nonfinite = !isfinite(e.out_rel) || !isfinite(e.state_rel);
    out->tolerance = inputs_fp32(m) ? 1e-4 : 1e-2;

    timed_launch tl = {.ctx = ctx, .kernel = kernel, .args = &args};
    if (!rt_time_ms(run_once, &tl, 2, 5, &out->kernel_ms, &err))
        goto io_fail;
    if (out->nonfinite || out->out_rel_err > out->tolerance || out->state_rel_err > out->tolerance)
        st = api_fail(ctx, ATTNC_ERR_NUMERIC, "%s: GPU and float64 reference disagree (out %.3g, state %.3g, tolerance %g)",
                      m->name, out->out_rel_err, out->state_rel_err, out->tolerance);
    goto done;
io_fail:
    st = api_fail(ctx, ATTNC_ERR_IO, "%s", err.msg);
done:
    dev_free_all(&bufs);
    attnc_arena_free(a);
    attnc_kernel_free(kernel);
    return st;
}

/* ---- attnc_run_grad_check: the backward against the float64 reference backward ----------------------
 *
 * The inputs and the upstream gradients are drawn as `attnc ref --grad` draws them (dout is rounded to
 * the output's dtype first, so that both sides read the same numbers), the reference gradients come from
 * ref_backward, and the GPU runs the forward then the backward into poisoned (NaN) gradient buffers.
 * Every gradient is compared on its own; a second backward must reproduce the first bit for bit. */

/* ||got - want|| / ||want|| (the plain norm of the difference when want is all zero); +inf if not finite. */
static double rel_err(const double *got, const double *want, size_t n, int *nonfinite)
{
    double num = 0, den = 0;
    *nonfinite = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i]))
            *nonfinite = 1;
        double d = got[i] - want[i];
        num += d * d;
        den += want[i] * want[i];
    }
    if (*nonfinite)
        return INFINITY;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

attnc_status attnc_run_grad_check(attnc_ctx *ctx, attnc_spec *spec, const attnc_run_options *opt,
                                  attnc_run_grad_report *out)
{
    if (!spec || !spec->ir || !opt || !out)
        return api_fail(ctx, ATTNC_ERR_USAGE, "attnc_run_grad_check needs a checked spec, options and a report");
    memset(out, 0, sizeof *out);
    const ir_module *m = spec->ir;
    uint32_t nseq = 0;
    attnc_status st = check_options(ctx, m, opt, &nseq);
    if (st != ATTNC_OK)
        return st;
    if (m->ntensors + 3 > ATTNC_RUN_GRAD_MAX)
        return api_fail(ctx, ATTNC_ERR_USAGE, "more tensors than the report holds");

    attnc_grad_kernel *gk = NULL;
    attnc_kernel *fk = NULL;
    const attnc_compile_options jit = {.jit = jit_mode(opt)};
    if ((st = attnc_grad_kernel_new(ctx, spec, &jit, &gk)) != ATTNC_OK)
        return st;
    if ((st = attnc_kernel_new(ctx, spec, &jit, &fk)) != ATTNC_OK ||
        (st = attnc_share_workspace(ctx, fk, gk)) != ATTNC_OK) {   /* (a training step's way: one workspace) */
        attnc_grad_kernel_free(gk);
        attnc_kernel_free(fk);
        return st;
    }
    attnc_arena *a = attnc_arena_new();
    if (!a) {
        attnc_grad_kernel_free(gk);
        attnc_kernel_free(fk);
        return api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
    }
    attnc_diags d;
    attnc_diags_init(&d, a);
    dev_bufs bufs = {0};
    rt_error err = {{0}};
    ref_data *data;
    if ((st = draw_inputs(ctx, m, opt, nseq, opt->gate_scale > 0, m->linear.gate, IR_NONE, a, &d, &data)) != ATTNC_OK)
        goto done;
    const ref_dims *dm = &data->dims;
    out->total_tokens = dm->total;
    out->nseq = dm->nseq;
    size_t nout = (size_t)dm->total * dm->Hout * dm->V;
    size_t nh = (size_t)dm->nseq * dm->Hs * dm->K * dm->V, nz = (size_t)dm->nseq * dm->Hs * dm->K;

    /* The upstream gradients (rounded to what the GPU reads) and the float64 reference backward. */
    double t0 = api_seconds();
    ref_result *up = ref_draw_upstream(m, data, opt->seed, a);
    if (!up) {
        st = api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nout; i++)
        up->out[i] = ref_round_dtype(up->out[i], m->out_dtype);
    if (up->hT)
        for (size_t i = 0; i < nh; i++)
            up->hT[i] = ref_round_dtype(up->hT[i], IR_DT_FP32);
    if (up->zT && dm->has_z)
        for (size_t i = 0; i < nz; i++)
            up->zT[i] = ref_round_dtype(up->zT[i], IR_DT_FP32);
    size_t nm = (size_t)dm->nseq * dm->Hs;
    if (up->mT && dm->has_m)
        for (size_t i = 0; i < nm; i++)
            up->mT[i] = ref_round_dtype(up->mT[i], IR_DT_FP32);
    /* --chunked-ref: the chunkwise adjoint, whose memory is one state per chunk instead of one per token
     * (the recurrent backward's tape of a 65536-token head of 128 x 128 would be 8.6 GB) */
    ref_grad *want = opt->reference_chunked ? ref_backward_chunked(m, data, up, 0, a, &d) : ref_backward(m, data, up, a, &d);
    out->reference_s = api_seconds() - t0;
    if (!want) {
        st = api_fail(ctx, ATTNC_ERR_NOMEM, "reference backward: %s", d.n ? d.list[d.n - 1].message : "failed");
        goto done;
    }

    /* Device buffers: inputs, dout, h0, dhT; outputs of the forward; poisoned gradients. */
    int64_t B = opt->seqlens ? 1 : nseq, T = opt->seqlens ? dm->total : opt->tokens;
    attnc_tensor *ins, *dins;
    uint64_t *dptr;
    if ((st = upload_inputs(ctx, &bufs, a, m, data, B, T, &ins, &dins, &dptr)) != ATTNC_OK)
        goto done;
    int64_t N = dm->nseq, Hs = dm->Hs;
    int64_t hshape[4] = {N, Hs, dm->K, dm->V}, oshape[4] = {B, T, dm->Hout, dm->V};
    attnc_forward_args fa = {.inputs = ins, .ninputs = m->ntensors, .schedule = opt->schedule};
    attnc_backward_args ba = {.inputs = ins, .ninputs = m->ntensors, .dinputs = dins};
    uint64_t dp, d_dh0 = 0, d_dz0 = 0, d_dm0 = 0;
    if (!poisoned(&bufs, nout * ir_dtype_bytes(m->out_dtype), &dp, &err))
        goto io_fail;
    tensor_desc(&fa.out, dp, (attnc_dtype)m->out_dtype, 4, oshape);
    if (!upload(&bufs, up->out, nout, (attnc_dtype)m->out_dtype, &dp, &err))
        goto io_fail;
    tensor_desc(&ba.dout, dp, (attnc_dtype)m->out_dtype, 4, oshape);
    if (data->h0) {
        if (!upload_state(&bufs, data->h0, 4, hshape, &fa.h0, &err) || !poison_state(&bufs, 4, hshape, &ba.dh0, &d_dh0, &err))
            goto io_fail;
        ba.h0 = fa.h0;
    }
    if (data->z0 && dm->has_z) {
        if (!upload_state(&bufs, data->z0, 3, hshape, &fa.z0, &err) || !poison_state(&bufs, 3, hshape, &ba.dz0, &d_dz0, &err))
            goto io_fail;
        ba.z0 = fa.z0;
    }
    if (data->m0 && dm->has_m) {   /* mLSTM's stabiliser: m0 in, dm0 out, dmT in */
        if (!upload_state(&bufs, data->m0, 2, hshape, &fa.m0, &err) || !poison_state(&bufs, 2, hshape, &ba.dm0, &d_dm0, &err))
            goto io_fail;
        ba.m0 = fa.m0;
    }
    if (m->state_out && dm->has_m &&
        (!poison_state(&bufs, 2, hshape, &fa.mT, &dp, &err) ||
         (up->mT && !upload_state(&bufs, up->mT, 2, hshape, &ba.dmT, &err))))
        goto io_fail;
    if (m->state_out &&
        (!poison_state(&bufs, 4, hshape, &fa.hT, &dp, &err) ||
         (up->hT && !upload_state(&bufs, up->hT, 4, hshape, &ba.dhT, &err)) ||
         (dm->has_z && (!poison_state(&bufs, 3, hshape, &fa.zT, &dp, &err) ||
                        (up->zT && !upload_state(&bufs, up->zT, 3, hshape, &ba.dzT, &err))))))
        goto io_fail;
    if (opt->seqlens) {
        if ((st = upload_seqlens(ctx, &bufs, a, data, nseq, &dp)) != ATTNC_OK)
            goto done;
        fa.cu_seqlens = ba.cu_seqlens = (const int32_t *)(uintptr_t)dp;
        fa.nseq = ba.nseq = nseq;
    }
    if (opt->saved_states) {   /* the forward's saved states, poisoned first: a slot it leaves unwritten shows */
        size_t bytes = attnc_saved_states_bytes(fk, gk, B, T, opt->seqlens ? nseq : 0);
        if (!bytes) {
            st = api_fail(ctx, ATTNC_ERR_USAGE, "%s: the forward saves no chunk states for this backward", m->name);
            goto done;
        }
        if (!poisoned(&bufs, bytes, &dp, &err))
            goto io_fail;
        fa.saved = (void *)(uintptr_t)dp;
        fa.saved_for = gk;
        ba.saved = fa.saved;
    }
    if ((st = attnc_forward(ctx, fk, &fa)) != ATTNC_OK || (st = attnc_backward(ctx, gk, &ba)) != ATTNC_OK)
        goto done;
    if (!rt_synchronize(&err))
        goto io_fail;

    /* Compare every gradient; keep the bytes for the determinism check. */
    out->tolerance = inputs_fp32(m) ? 1e-4 : 2e-2;
    /* the gradients compared: every tensor, then dh0, dz0 and dm0 where drawn */
    uint32_t ng = m->ntensors + (d_dh0 ? 1 : 0) + (d_dz0 ? 1 : 0) + (d_dm0 ? 1 : 0);
    uint64_t *gsrc = attnc_arena_alloc(a, ng * sizeof *gsrc);
    size_t *gcount = attnc_arena_alloc(a, ng * sizeof *gcount);
    const double **gwant = attnc_arena_alloc(a, ng * sizeof *gwant);
    const char **gname = attnc_arena_alloc(a, ng * sizeof *gname);
    if (!gsrc || !gcount || !gwant || !gname) {
        st = api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (uint32_t i = 0; i < m->ntensors; i++) {
        gsrc[i] = dptr[i];
        gcount[i] = data->tensor_count[i];
        gwant[i] = want->tensor[i];
        gname[i] = m->tensors[i].name;
    }
    {
        uint32_t j = m->ntensors;
        if (d_dh0) {
            gsrc[j] = d_dh0, gcount[j] = nh, gwant[j] = want->h0, gname[j] = "h0";
            j++;
        }
        if (d_dz0) {
            gsrc[j] = d_dz0, gcount[j] = nz, gwant[j] = want->z0, gname[j] = "z0";
            j++;
        }
        if (d_dm0)
            gsrc[j] = d_dm0, gcount[j] = nm, gwant[j] = want->m0, gname[j] = "m0";
    }
    void **first = attnc_arena_alloc(a, ng * sizeof *first);
    size_t *first_bytes = attnc_arena_alloc(a, ng * sizeof *first_bytes);
    if (!first || !first_bytes) {
        st = api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
        goto done;
    }
    bool bad = false;
    for (uint32_t i = 0; i < ng; i++) {
        bool is_state = i >= m->ntensors;
        size_t n = gcount[i];
        attnc_dtype dt = is_state ? ATTNC_FP32 : (attnc_dtype)m->tensors[i].dtype;
        double *got = attnc_arena_alloc(a, n * sizeof *got);
        first_bytes[i] = n * ir_dtype_bytes((ir_dtype)dt);
        first[i] = attnc_arena_alloc(a, first_bytes[i] + 1);
        if (!got || !first[i]) {
            st = api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
            goto done;
        }
        if (!rt_memcpy_dtoh(first[i], gsrc[i], first_bytes[i], &err))
            goto io_fail;
        unpack(first[i], n, dt, got);
        attnc_run_grad_item *it = &out->item[out->n++];
        snprintf(it->name, sizeof it->name, "%s", gname[i]);
        it->rel_err = rel_err(got, gwant[i], n, &it->nonfinite);
        bad |= it->nonfinite || !(it->rel_err <= out->tolerance);
    }
    /* Determinism: poison again, run the backward again, compare the bytes. */
    out->deterministic = 1;
    for (uint32_t i = 0; i < ng; i++)
        if (!rt_memset_d8(gsrc[i], 0xff, first_bytes[i], &err))
            goto io_fail;
    if ((st = attnc_backward(ctx, gk, &ba)) != ATTNC_OK)
        goto done;
    if (!rt_synchronize(&err))
        goto io_fail;
    for (uint32_t i = 0; i < ng; i++) {
        void *again = attnc_arena_alloc(a, first_bytes[i] + 1);
        if (!again) {
            st = api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
            goto done;
        }
        if (!rt_memcpy_dtoh(again, gsrc[i], first_bytes[i], &err))
            goto io_fail;
        if (memcmp(again, first[i], first_bytes[i]) != 0)
            out->deterministic = 0;
    }
    timed_launch tl = {.ctx = ctx, .grad = gk, .grad_args = &ba};
    if (!rt_time_ms(run_once, &tl, 2, 5, &out->backward_ms, &err))
        goto io_fail;
    if (bad || !out->deterministic)
        st = api_fail(ctx, ATTNC_ERR_NUMERIC, "%s: GPU gradients and the float64 reference disagree%s", m->name,
                      out->deterministic ? "" : " (and two runs gave different bits)");
    goto done;
io_fail:
    st = api_fail(ctx, ATTNC_ERR_IO, "%s", err.msg);
done:
    dev_free_all(&bufs);
    attnc_arena_free(a);
    attnc_grad_kernel_free(gk);
    attnc_kernel_free(fk);
    return st;
}
