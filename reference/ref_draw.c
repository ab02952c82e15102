/* reference/ref_draw.c: deterministic random inputs for a module, rounded to each tensor's dtype.
 *
 * Generator: xoshiro256** (Blackman and Vigna), its state seeded by splitmix64 from (seed, stream), one
 * stream per tensor and per initial state, so that numbers do not shift when another tensor is added.
 * Uniform doubles take the top 53 bits; normals use Box-Muller (cosine branch only, one normal per two
 * uniforms, simple and deterministic).
 *
 * Rounding (ref_round_dtype): to p significant bits with ties to even, done by hand on the exact
 * quotient x / quantum (a power-of-two scaling, so exact), independent of the FPU rounding mode and free
 * of double rounding (double -> float -> bf16 would round twice).  Below the smallest normal number the
 * quantum stays fixed (subnormals); a result above the largest finite number becomes +-inf.
 */
#include "ref_internal.h"

#include <math.h>
#include <string.h>

#define REF_TWO_PI 6.283185307179586476925286766559

typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static rng rng_stream(uint64_t seed, uint64_t stream)
{
    rng r;
    uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ull);
    for (int i = 0; i < 4; i++)
        r.s[i] = splitmix64(&x);
    return r;
}

static uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1). */
static double rng_uniform(rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

static double rng_normal(rng *r)
{
    double u1 = 1.0 - rng_uniform(r); /* (0, 1]: the log is finite */
    double u2 = rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(REF_TWO_PI * u2);
}

void ref_fill_normal(double *x, size_t n, uint64_t seed, uint64_t stream, double scale)
{
    rng r = rng_stream(seed, stream);
    for (size_t i = 0; i < n; i++)
        x[i] = scale * rng_normal(&r);
}

void ref_fill_uniform(double *x, size_t n, uint64_t seed, uint64_t stream)
{
    rng r = rng_stream(seed, stream);
    for (size_t i = 0; i < n; i++)
        x[i] = rng_uniform(&r);
}

/* Rounds to `p` significant bits, smallest normal exponent `emin`, largest finite `maxval`. */
static double round_bits(double x, int p, int emin, double maxval)
{
    if (x == 0.0 || !isfinite(x))
        return x;
    int e = ilogb(x);
    if (e < emin)
        e = emin;
    double quantum = ldexp(1.0, e - (p - 1));
    double y = x / quantum; /* exact: |y| < 2^p */
    double r = floor(y);
    double frac = y - r;
    if (frac > 0.5 || (frac == 0.5 && fmod(r, 2.0) != 0.0))
        r += 1.0;
    double out = r * quantum;
    if (fabs(out) > maxval)
        return copysign(INFINITY, x);
    return out;
}

double ref_round_dtype(double x, ir_dtype dt)
{
    switch (dt) {
    case IR_DT_BF16:
        return round_bits(x, 8, -126, 0x1.fep127);
    case IR_DT_FP16:
        return round_bits(x, 11, -14, 65504.0);
    case IR_DT_FP32:
    default:
        return (double)(float)x;
    }
}

static bool checked_mul(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return false;
    *out = a * b;
    return true;
}

static bool draw_tensors(const ir_module *m, const ref_problem *p, ref_data *d, attnc_arena *a,
                         attnc_diags *diags)
{
    d->tensor = attnc_arena_alloc(a, (m->ntensors + 1) * sizeof *d->tensor);
    d->tensor_count = attnc_arena_alloc(a, (m->ntensors + 1) * sizeof *d->tensor_count);
    if (!d->tensor || !d->tensor_count)
        return ref_fail(diags, m->span, "out of memory");
    for (uint32_t i = 0; i < m->ntensors; i++) {
        const ir_tensor *tn = &m->tensors[i];
        uint32_t heads = tn->axis != IR_NO_AXIS && tn->axis < m->naxes ? m->axes[tn->axis].count : 1;
        size_t n;
        if (!checked_mul((size_t)heads, tn->len, &n) || (tn->per_token && !checked_mul(n, d->dims.total, &n)))
            return ref_fail(diags, tn->span, "tensor '%s' is too large", tn->name);
        double *x = ref_doubles(a, n);
        if (!x && n != 0)
            return ref_fail(diags, tn->span, "out of memory for tensor '%s'", tn->name);
        rng r = rng_stream(p->seed, i);
        for (size_t j = 0; j < n; j++) {
            double v = tn->has_range ? tn->lo + (tn->hi - tn->lo) * rng_uniform(&r) : rng_normal(&r);
            x[j] = ref_round_dtype(v, tn->dtype);
        }
        d->tensor[i] = x;
        d->tensor_count[i] = n;
    }
    return true;
}

static bool draw_states(const ir_module *m, const ref_problem *p, ref_data *d, attnc_arena *a,
                        attnc_diags *diags)
{
    const ref_dims *dm = &d->dims;
    size_t nh = (size_t)dm->nseq * dm->Hs;
    size_t ns = nh * dm->K * dm->V, nz = nh * dm->K;
    d->h0 = ref_doubles(a, ns);
    if (dm->has_z)
        d->z0 = ref_doubles(a, nz);
    if (dm->has_m)
        d->m0 = ref_doubles(a, nh);
    if (!d->h0 || (dm->has_z && !d->z0) || (dm->has_m && !d->m0))
        return ref_fail(diags, m->span, "out of memory for the initial state");
    rng r = rng_stream(p->seed, (uint64_t)m->ntensors);
    for (size_t i = 0; i < ns; i++)
        d->h0[i] = 0.5 * rng_normal(&r);
    if (dm->has_z && m->linear.norm != IR_NORM_DENOM) {   /* DENOM: draw_denominator_state, from the roles */
        rng rz = rng_stream(p->seed, (uint64_t)m->ntensors + 1);
        for (size_t i = 0; i < nz; i++)
            d->z0[i] = rng_normal(&rz);
    }
    /* m0 stays 0 (its zeroed allocation): the stabiliser every sequence starts from. */
    return true;
}

/* The running denominator's initial state z0, a state the recurrence can reach: sum_p w_p phi(k_p) over
 * the first (at most) 8 tokens' key roles of the sequence, w_p uniform in (0, 1) (as if they had been seen
 * before, decayed).  Then q.z0 is a positive combination of the feature map's own q.k products, positive
 * wherever the map's are (based's taylor2: 1 + s + s^2/2 >= 1/2).  Independent positive numbers per
 * channel (what was drawn before) are not such a state: with taylor2's signed features q.z0 went negative
 * (-0.26 against 17 in the size of its terms, gpu case quick_based, seed 401), a denominator no model
 * state gives, whose conditioning then failed the forward's 1e-2 on every kernel. */
static void draw_denominator_state(const ir_module *m, const ref_problem *p, ref_data *d)
{
    const ref_dims *dm = &d->dims;
    const ref_role *k = &d->roles.k;
    rng rz = rng_stream(p->seed, (uint64_t)m->ntensors + 1);
    for (uint32_t n = 0; n < dm->nseq; n++) {
        uint32_t t0 = d->cu_seqlens[n], len = d->cu_seqlens[n + 1] - t0, prefix = len < 8 ? len : 8;
        for (uint32_t h = 0; h < dm->Hs; h++) {
            double *z = d->z0 + ((size_t)n * dm->Hs + h) * dm->K;
            memset(z, 0, dm->K * sizeof *z);
            for (uint32_t t = t0; t < t0 + prefix; t++) {
                double w = rng_uniform(&rz);
                const double *row = ref_role_at(k, t, ir_head_map(h, dm->Hs, k->heads));
                for (uint32_t i = 0; i < dm->K; i++)
                    z[i] += w * row[i];
            }
        }
    }
}

ref_data *ref_draw(const ir_module *m, const ref_problem *p, attnc_arena *a, attnc_diags *diags)
{
    ref_data *d = attnc_arena_alloc(a, sizeof *d);
    if (!d) {
        ref_fail(diags, m->span, "out of memory");
        return NULL;
    }
    if (!ref_check_module(m, &d->dims, diags))
        return NULL;
    if (p->nseq == 0 || !p->seqlens) {
        ref_fail(diags, m->span, "no sequences to draw");
        return NULL;
    }
    d->cu_seqlens = attnc_arena_alloc(a, ((size_t)p->nseq + 1) * sizeof *d->cu_seqlens);
    if (!d->cu_seqlens) {
        ref_fail(diags, m->span, "out of memory");
        return NULL;
    }
    uint64_t total = 0;
    for (uint32_t n = 0; n < p->nseq; n++) {
        if (p->seqlens[n] == 0) {
            ref_fail(diags, m->span, "sequence %u is empty", n);
            return NULL;
        }
        if (!m->document && p->seqlens[n] != p->seqlens[0]) {
            ref_fail(diags, m->span, "sequences of different lengths need a document (varlen) module");
            return NULL;
        }
        d->cu_seqlens[n] = (uint32_t)total;
        total += p->seqlens[n];
        if (total > UINT32_MAX / 2) {
            ref_fail(diags, m->span, "too many tokens");
            return NULL;
        }
    }
    d->cu_seqlens[p->nseq] = (uint32_t)total;
    d->dims.total = (uint32_t)total;
    d->dims.nseq = p->nseq;
    if (!draw_tensors(m, p, d, a, diags))
        return NULL;
    if (p->use_h0) {
        if (!d->dims.linear) {
            ref_fail(diags, m->span, "an initial state needs a linear part");
            return NULL;
        }
        if (!draw_states(m, p, d, a, diags))
            return NULL;
    }
    if (!ref_eval_roles(m, d, a, diags))
        return NULL;
    if (p->use_h0 && d->dims.has_z && m->linear.norm == IR_NORM_DENOM)
        draw_denominator_state(m, p, d);
    return d;
}
