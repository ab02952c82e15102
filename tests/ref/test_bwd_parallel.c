/* tests/ref/test_bwd_parallel.c: a CPU emulation of the chunk-parallel backward schedule of the causal
 * additive linear part with a scalar, constant or no decay (ATTNC_BWD_SCHEDULE=parallel; passes/grad.c's
 * header and codegen/linear_bwd_par_kernel.cuh), checked against the float64 recurrent backward
 * (reference/ref_grad.c's ref_backward) before the CUDA ever runs.
 *
 * The emulation (bwd_parallel_emu.inc) is the kernels' algorithm, pass by pass:
 *   1.  S from h0, every chunk's S_in stored (the state image: in the bf16 mode 16-bit mantissas under a
 *       power-of-two scale per row and walk slice, emu_image, as the kernels store it);
 *   1b. normalisers: x = (Q * gamma) S_in + P V per row from the stored S_in, dO -> d(x) by the norm's
 *       backward (ref_norm_backward, the reference's own), into a per-token buffer (the kernels' ws_do);
 *   2.  dS from dhT in reverse, dS_in = gamma_L dS_out + (Q * gamma)^T d(x), every chunk's dS_out stored;
 *   3.  per chunk, independently: P, A1 = (dO V^T) o D, dq = e^{b} dO S_in^T + A1 K, dk = A1^T Q +
 *       e^{b_L - b} V dS_out^T, dv = P^T dO + Kd dS_out, and the gate per factor of the chunk:
 *       da_s = e^{b_L} <S_in, dS_out> + sum_{j < s} k_j . dk_inter_j + sum_{r >= s} q_r . dq_inter_r
 *              + sum_{j < s <= r} (dO_r . v_j) P_rj
 *       (the first two terms are the chunk-end term <S_out, dS_out> less what later tokens cancel; S_out
 *       is not stored);
 * then the role gradients go through the value DAG's adjoint (ref_eval_roles_backward) and are compared
 * per tensor (and dh0, dz0) with the recurrent backward: relative Frobenius error.
 * Three precisions: double (the algebra: <= 1e-9), float (fp32 arithmetic, fp32 tiles: the kernels'
 * fp32-input path up to the bf16x3 split, <= 1e-4) and float with bf16 operands (the kernels' bf16-input
 * path: q, k, v, dO tiles rounded to bf16, both state images as the kernels store them (their values reach
 * the products exactly: the chunk kernels' hi + lo tiles); the C x C operands P and dP, and v where
 * the value role is computed rather than an input as stored, split into bf16 hi + lo, two mma; decay
 * factors applied in fp32 epilogues where the product allows: <= 2e-2, the GPU checks' bound).  dout is
 * rounded to the output's dtype first, as the GPU harness (api/run.c) does.
 * The gate gradient is formed per factor (the log-weight rule applied to each e^{x} of the chunk, no
 * q . dq - k . dk difference): measured here, the difference form put mamba2's dt_bias off by 1.1e-4 in
 * float at C = 64 and by 0.13-0.17 with bf16 operands, the per-factor form by 1.7e-5 and 8e-3.
 * Shapes: odd lengths, varlen with a length-1 sequence, T = 1, strong gates (every tensor the gate reads
 * scaled by 8, as attnc run --gate-scale 8: tokens floored at -32, so the double emulation, which
 * differentiates the floored forward as the kernels do, differs from the unfloored reference by 3.6e-9;
 * bound 1e-7 there), the plan's chunk (64) and 16 (many partial chunks), an initial and a final state (dhT).
 * Measured at the GPU checks' shape (test_bwd_parallel specs mamba2 4 1000,1000), bf16 mode: 1.7e-3 (h0),
 * and with --gate-scale 8 (2 heads) 4.4e-3 (A_log) at C = 64; the small varlen case is the worst seen
 * (dt_bias 1.6e-2 at C = 16, 8.2e-3 at C = 64, most of it from the bf16 state images: fp32 images gave
 * 3.3e-3 and 1.4e-3).  At the H200's failing shape (test_bwd_parallel specs mamba2 2 65536 spec 8, with
 * ATTNC_EMU_BF16_ONLY=1 a minute): A_log 2.70e-2 at C = 64 with bf16 images (ATTNC_EMU_IMAGE=bf16), 8.74e-3
 * with the 16-bit mantissas, 8.58e-3 with exact images (ATTNC_EMU_IMAGE=exact).  Two corrupted
 * emulations (the gate's chunk-end term dropped; dS_out not carried between chunks) must fail, so the
 * check can fail.
 * Per-channel gates (gla, hgrn2; chunk_diag in bwd_parallel_emu.inc, at C = 16, 32 and 64): the chunk by
 * 16-row blocks, in-block pairs exact in fp32, block pairs through reference-scaled bf16 operands, the gate
 * per channel and per factor.  Measured, bf16 mode: gla 1.9e-3 to 3.4e-3 (strong gates: logsigmoid(64 x)),
 * hgrn2 2.3e-3 (lb, C = 64) and 4.3e-3 (C = 32); with the off-diagonal pairs as a difference
 * (q dq_off - k dk_off) hgrn2's lb was off by 1.9e-2 at C = 64.  Two more corruptions for them (dq without
 * its off-diagonal blocks; the gate without its pair terms) must fail.
 * usage: test_bwd_parallel [SPEC_DIR [SPEC HEADS LEN1,LEN2,... [fp32]]]   (ATTNC_SOURCE_DIR/specs by default;
 *        with SPEC: that one shape only, e.g. test_bwd_parallel specs mamba2 4 1000,1000 spec 8: gates
 *        scaled by 8 as attnc run --gate-scale 8 does)
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "ref.h"
#include "ref_internal.h"

#define EMU_LOG2E 1.4426950408889634
#define EMU_FLOOR (-32.0)

enum { EMU_IMAGE_BFP, EMU_IMAGE_BF16, EMU_IMAGE_EXACT };

enum { EMU_CORRUPT_NONE, EMU_CORRUPT_DROP_E, EMU_CORRUPT_SHIFT, EMU_CORRUPT_OFFDIAG, EMU_CORRUPT_PAIRS };

typedef struct emu_ctx {
    const ir_module *m;
    const ref_data *d;
    const ref_result *up;
    uint32_t C, K, V, Vv;
    uint32_t gk;   /* the gate's length: 1, or K (per-channel, IR_TR_DIAG) */
    bool bf16;     /* round every mma operand to bf16, the state images to the kernels' image type */
    int image;     /* bf16 mode's state images: EMU_IMAGE_BFP (the kernels'), _BF16 (before), _EXACT (trials) */
    bool vsplit;   /* the value role is computed (not an input as stored): its tiles carry hi + lo */
    int corrupt;
} emu_ctx;

static double bf16_round(double x)
{
    float f = (float)x;
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0x7f800000u)
        return f;
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

static double emu_split(const emu_ctx *e, double x);

static double emu_op(const emu_ctx *e, double x)
{
    return e->bf16 ? bf16_round(x) : x;
}

/* A C x C operand (P, dP) split into bf16 hi + lo: two mma with the same bf16 partner. */
static double emu_split(const emu_ctx *e, double x)
{
    if (!e->bf16)
        return x;
    double hi = bf16_round(x);
    return hi + bf16_round(x - hi);
}

/* The kernels' state image of n elements (one row of a state and one walk slice of its columns): 16-bit
 * mantissas under one power-of-two scale 2^e per (row, slice), e = ilogb(max |x|) - 14 (at least -126), so
 * that the largest element keeps 16 bits and every element is m 2^e with -32768 <= m <= 32767 (rounded to
 * nearest; the chunk kernel's hi + lo bf16 tiles hold m 2^e exactly).  bf16 mode only; trials (ATTNC_EMU_IMAGE=bf16 or
 * exact) round each element to bf16 (the images before) or keep it. */
static void emu_image(const emu_ctx *e, const double *x, double *out, uint32_t n)
{
    if (!e->bf16 || e->image == EMU_IMAGE_EXACT) {
        memcpy(out, x, n * sizeof *out);
        return;
    }
    if (e->image == EMU_IMAGE_BF16) {
        for (uint32_t i = 0; i < n; i++)
            out[i] = bf16_round(x[i]);
        return;
    }
    float mx = 0.f;
    for (uint32_t i = 0; i < n; i++)
        if (fabsf((float)x[i]) > mx)
            mx = fabsf((float)x[i]);
    int ex = mx > 0.f ? ilogbf(mx) - 14 : 0;
    if (ex < -126)
        ex = -126;
    for (uint32_t i = 0; i < n; i++) {
        float m = rintf(ldexpf((float)x[i], -ex));
        m = m > 32767.f ? 32767.f : m < -32768.f ? -32768.f : m;
        out[i] = ldexpf(m, ex);
    }
}

/* The walks' slice of VP columns (passes/grad.c's grad_parallel_plan): an image's scales are per row and slice. */
static uint32_t emu_slice(uint32_t V)
{
    uint32_t VP = (V + 15) / 16 * 16;
    for (uint32_t vs = 128; vs > 16; vs -= 16)
        if (VP % vs == 0)
            return vs;
    return 16;
}

#define REAL double
#define FN(name) name##_d
#include "bwd_parallel_emu.inc"
#undef REAL
#undef FN
#define REAL float
#define FN(name) name##_f
#include "bwd_parallel_emu.inc"
#undef REAL
#undef FN

static int emu_image_mode(void)
{
    const char *s = getenv("ATTNC_EMU_IMAGE");
    return !s ? EMU_IMAGE_BFP : strcmp(s, "bf16") == 0 ? EMU_IMAGE_BF16 : strcmp(s, "exact") == 0 ? EMU_IMAGE_EXACT : EMU_IMAGE_BFP;
}

static double rel_err(const double *got, const double *want, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double dd = got[i] - want[i];
        if (!isfinite(got[i]))
            return INFINITY;
        num += dd * dd;
        den += want[i] * want[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static bool new_role(const ref_role *r, ref_role *g, const ref_data *d)
{
    *g = *r;
    if (!r->data)
        return true;
    size_t rows = r->per_head ? r->heads : (size_t)d->dims.total * r->heads;
    g->data = calloc(rows * r->len, sizeof *g->data);
    return g->data != NULL;
}

/* The emulation's gradients of every tensor (and h0, z0) against the recurrent backward's: the largest
 * relative error, and which. */
static double run_one(const ir_module *m, const ref_data *d, const ref_result *up, const ref_grad *want, uint32_t C,
                      int prec, int corrupt, attnc_arena *a, attnc_diags *diags, char *worst, size_t wn)
{
    const ref_dims *dm = &d->dims;
    emu_ctx e = {.m = m, .d = d, .up = up, .C = C, .K = dm->K, .Vv = dm->V, .V = dm->V + (dm->has_z ? 1 : 0),
                 .gk = m->linear.decay == IR_DECAY_VECTOR ? dm->K : 1,
                 .bf16 = prec == 2, .corrupt = corrupt, .image = emu_image_mode(),
                 .vsplit = m->values[m->linear.value].op != IR_OP_INPUT};
    ref_roles gr = {0};
    const ref_roles *ro = &d->roles;
    if (!new_role(&ro->q, &gr.q, d) || !new_role(&ro->k, &gr.k, d) || !new_role(&ro->v, &gr.v, d) ||
        !new_role(&ro->gate, &gr.gate, d))
        return INFINITY;
    size_t nh0 = (size_t)dm->nseq * dm->Hs * dm->K * dm->V, nz0 = (size_t)dm->nseq * dm->Hs * dm->K;
    double *dh0 = calloc(nh0, sizeof *dh0), *dz0 = calloc(nz0, sizeof *dz0);
    bool ok = prec == 0 ? emulate_d(&e, &gr, dh0, dz0) : emulate_f(&e, &gr, dh0, dz0);
    double **dt = calloc(m->ntensors + 1, sizeof *dt);
    for (uint32_t i = 0; ok && i < m->ntensors; i++)
        ok = (dt[i] = calloc(d->tensor_count[i], sizeof *dt[i])) != NULL;
    ok = ok && ref_eval_roles_backward(m, d, &gr, dt, a, diags);
    double worst_err = ok ? 0 : INFINITY;
    for (uint32_t i = 0; ok && i < m->ntensors; i++) {
        double r = rel_err(dt[i], want->tensor[i], d->tensor_count[i]);
        if (!(r <= worst_err)) {
            worst_err = r;
            snprintf(worst, wn, "%s", m->tensors[i].name);
        }
    }
    if (ok && want->h0) {
        double r = rel_err(dh0, want->h0, nh0);
        if (!(r <= worst_err))
            worst_err = r, snprintf(worst, wn, "h0");
    }
    if (ok && want->z0) {
        double r = rel_err(dz0, want->z0, nz0);
        if (!(r <= worst_err))
            worst_err = r, snprintf(worst, wn, "z0");
    }
    for (uint32_t i = 0; i < m->ntensors; i++)
        free(dt[i]);
    free(dt), free(dh0), free(dz0), free(gr.q.data), free(gr.k.data), free(gr.v.data), free(gr.gate.data);
    return worst_err;
}

typedef struct emu_case {
    const char *spec;
    uint32_t lens[4], nseq;
    uint32_t heads;
    int dtype;   /* -1: the spec's */
    double gate_scale;   /* 0: none; else every tensor the gate reads is scaled (as attnc run --gate-scale) */
} emu_case;

static bool reads(const ir_module *m, ir_ref r, uint32_t tensor)
{
    if (r == IR_NONE)
        return false;
    const ir_value *v = &m->values[r];
    if (v->op == IR_OP_INPUT || v->op == IR_OP_PARAM)
        return v->aux == tensor;
    for (int k = 0; k < ir_op_arity((ir_op)v->op); k++)
        if (reads(m, v->arg[k], tensor))
            return true;
    return false;
}

int main(int argc, char **argv)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", argc > 1 ? argv[1] : ATTNC_SOURCE_DIR "/specs");
    static const emu_case cases[] = {
        {"mamba2", {37, 1, 70}, 3, 2, -1, 0},        /* varlen with a length-1 sequence, odd lengths */
        {"mamba2", {1, 1, 1}, 3, 2, -1, 0},          /* T = 1 */
        {"mamba2", {45, 45}, 2, 2, ATTNC_FP32, 0},   /* fp32 inputs */
        {"mamba2", {200, 37}, 2, 2, -1, 8},     /* strong gates (--gate-scale 8): floored tokens */
        {"lightning", {45, 45}, 2, 2, -1, 0},        /* constant decay: a per-head gate */
        {"lightning", {37, 1, 70}, 3, 2, -1, 0},
        {"linear_attn", {45, 45}, 2, 2, -1, 0},      /* no decay, the running denominator (a ones column) */
        {"linear_attn", {37, 1, 70}, 3, 2, -1, 0},
        {"retnet", {45, 45}, 2, 2, -1, 0},           /* constant decay, LayerNorm */
        {"retnet", {37, 1, 70}, 3, 2, -1, 0},
        {"gla", {37, 1, 70}, 3, 2, -1, 0},           /* per-channel gates (IR_TR_DIAG) */
        {"gla", {45, 45}, 2, 2, ATTNC_FP32, 0},
        {"gla", {200, 37}, 2, 2, -1, 64},            /* strong: logsigmoid(64 x) / 16, tokens floored */
        {"hgrn2", {37, 1, 70}, 3, 2, -1, 0},         /* the key tied to the gate; lb a per-head parameter */
        {"hgrn2", {130, 37}, 2, 2, -1, 0},           /* (no --gate-scale: it would scale lb past 1) */
    };
    /* one-off shapes: test_bwd_parallel SPEC_DIR SPEC HEADS LEN1,LEN2,... [fp32|spec] [GATE_SCALE] */
    emu_case one = {0};
    if (argc > 4) {
        one.spec = argv[2];
        one.heads = (uint32_t)atoi(argv[3]);
        one.dtype = argc > 5 && strcmp(argv[5], "fp32") == 0 ? ATTNC_FP32 : -1;
        one.gate_scale = argc > 6 ? atof(argv[6]) : 0;
        for (char *t = strtok(argv[4], ","); t && one.nseq < 4; t = strtok(NULL, ","))
            one.lens[one.nseq++] = (uint32_t)atoi(t);
    }
    const emu_case *list = argc > 4 ? &one : cases;
    size_t ncases = argc > 4 ? 1 : sizeof cases / sizeof *cases;
    static const double bound[3] = {1e-9, 1e-4, 2e-2};
    static const char *const pname[3] = {"double", "float", "bf16"};
    int failures = 0;
    attnc_ctx *ctx = NULL;
    if (attnc_ctx_new(&ctx) != ATTNC_OK)
        return 1;
    for (size_t ci = 0; ci < ncases; ci++) {
        const emu_case *c = &list[ci];
        char path[1200];
        snprintf(path, sizeof path, "%s/%s.attn", dir, c->spec);
        attnc_spec *spec = NULL;
        if (attnc_spec_from_file(ctx, path, &spec) != ATTNC_OK ||
            attnc_spec_override(spec, c->heads, c->dtype) != ATTNC_OK) {
            fprintf(stderr, "%s: cannot load: %s\n", path, spec ? attnc_spec_diag_text(spec) : "");
            return 1;
        }
        const ir_module *m = spec->ir;
        attnc_arena *a = attnc_arena_new();
        attnc_diags diags;
        attnc_diags_init(&diags, a);
        ref_problem p = {.seed = 23 + (uint64_t)ci, .seqlens = c->lens, .nseq = c->nseq, .use_h0 = true};
        ref_data *d = ref_draw(m, &p, a, &diags);
        if (d && c->gate_scale > 0) {
            for (uint32_t i = 0; i < m->ntensors; i++)
                if (reads(m, m->linear.gate, i))
                    for (size_t j = 0; j < d->tensor_count[i]; j++)
                        d->tensor[i][j] = ref_round_dtype(d->tensor[i][j] * c->gate_scale, m->tensors[i].dtype);
            if (!ref_eval_roles(m, d, a, &diags))
                d = NULL;
        }
        ref_result *up = d ? ref_draw_upstream(m, d, 9 + ci, a) : NULL;
        /* dout as the GPU reads it: in the output's dtype (api/run.c rounds it likewise) */
        for (size_t i = 0; up && i < (size_t)d->dims.total * d->dims.Hout * d->dims.V; i++)
            up->out[i] = ref_round_dtype(up->out[i], (ir_dtype)m->out_dtype);
        ref_grad *want = up ? ref_backward(m, d, up, a, &diags) : NULL;
        if (!want) {
            fprintf(stderr, "%s: the reference failed: %s\n", c->spec, diags.n ? diags.list[0].message : "");
            return 1;
        }
        for (uint32_t C = 16; C <= 64; C *= m->linear.decay == IR_DECAY_VECTOR ? 2 : 4)   /* per-channel: 32 too */
            for (int prec = 0; prec < 3; prec++) {
                if (getenv("ATTNC_EMU_BF16_ONLY") && prec != 2)   /* long one-off shapes: the bf16 mode alone */
                    continue;
                char worst[64] = "-";
                double err = run_one(m, d, up, want, C, prec, EMU_CORRUPT_NONE, a, &diags, worst, sizeof worst);
                /* strong gates: the emulation differentiates the floored forward (-32 per token in log2, as the
                 * kernels), the reference the unfloored one; they differ by terms of order 2^-32 */
                double bd = prec == 0 && c->gate_scale > 0 ? 1e-7 : bound[prec];
                bool pass = err <= bd;
                failures += !pass;
                printf("%-12s%s lens", c->spec, c->gate_scale > 0 ? " strong" : "");
                for (uint32_t i = 0; i < c->nseq; i++)
                    printf("%s%u", i ? "," : " ", c->lens[i]);
                printf(" %s C=%-2u %-6s max_rel_err=%.3e (%s) bound %.0e %s\n", c->dtype == ATTNC_FP32 ? "fp32" : "    ",
                       C, pname[prec], err, worst, bd, pass ? "ok" : "FAIL");
            }
        /* the check can fail: corrupted emulations must exceed the float bound by far */
        if (m->linear.decay != IR_DECAY_NONE && c->nseq == 3 && c->lens[0] == 37) {
            int kinds[4] = {EMU_CORRUPT_DROP_E, EMU_CORRUPT_SHIFT, EMU_CORRUPT_OFFDIAG, EMU_CORRUPT_PAIRS};
            static const char *const what[4] = {"no chunk-end gate term", "dS_out not carried",
                                                "dq without its off-diagonal blocks", "gate without its pair terms"};
            int nk = m->linear.decay == IR_DECAY_VECTOR ? 4 : 2;
            for (int i = m->linear.decay == IR_DECAY_CONST ? 1 : 0; i < nk; i++) {   /* a constant gate has no gradient */
                char worst[64] = "-";
                /* the per-channel chunk's corruptions at the plan's chunk (64: off-diagonal blocks exist) */
                double err = run_one(m, d, up, want, i >= 2 ? 64 : 16, 0, kinds[i], a, &diags, worst, sizeof worst);
                bool caught = err > 1e-3;
                failures += !caught;
                printf("%-12s corrupted (%s): max_rel_err=%.3e (%s) %s\n", c->spec, what[i], err, worst,
                       caught ? "caught" : "NOT CAUGHT");
            }
        }
        attnc_arena_free(a);
        attnc_spec_free(spec);
    }
    attnc_ctx_free(ctx);
    printf("%s\n", failures ? "FAIL" : "PASS");
    return failures ? 1 : 0;
}
