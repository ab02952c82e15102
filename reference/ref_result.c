/* reference/ref_result.c: result buffers and the error measures between two results.
 *
 * Relative error is the Frobenius norm of the difference over the Frobenius norm of the reference
 * (`want`), accumulated with scaling (as LAPACK's dnrm2) so that neither overflows nor underflows; when
 * the reference is all zero it is the plain norm of the difference.  Any non-finite number on either
 * side makes both measures +inf: the reference is finite by construction, so a NaN or inf is always a
 * failure, never something a tolerance should absorb.
 */
#include "ref_internal.h"

#include <math.h>

ref_result *ref_result_new(const ref_data *d, attnc_arena *a)
{
    ref_result *r = attnc_arena_alloc(a, sizeof *r);
    if (!r)
        return NULL;
    const ref_dims *dm = &d->dims;
    r->dims = *dm;
    r->out = ref_doubles(a, (size_t)dm->total * dm->Hout * dm->V);
    if (!r->out)
        return NULL;
    if (dm->linear) {
        size_t nh = (size_t)dm->nseq * dm->Hs;
        r->hT = ref_doubles(a, nh * dm->K * dm->V);
        if (!r->hT)
            return NULL;
        if (dm->has_z && !(r->zT = ref_doubles(a, nh * dm->K)))
            return NULL;
        if (dm->has_m && !(r->mT = ref_doubles(a, nh)))
            return NULL;
    }
    return r;
}

bool ref_dims_equal(const ref_dims *a, const ref_dims *b)
{
    return a->total == b->total && a->nseq == b->nseq && a->Hout == b->Hout && a->V == b->V &&
           a->linear == b->linear && a->softmax == b->softmax && a->K == b->K && a->Hq == b->Hq &&
           a->Hs == b->Hs && a->has_z == b->has_z && a->has_m == b->has_m && a->sK == b->sK;
}

bool ref_result_fits(const ref_result *r, const ref_data *d)
{
    const ref_dims *dm = &r->dims;
    return r->out && ref_dims_equal(dm, &d->dims) && (!dm->linear || r->hT) && (!dm->has_z || r->zT) &&
           (!dm->has_m || r->mT);
}

/* Scaled sum of squares: the norm is scale * sqrt(ssq). */
typedef struct norm_acc {
    double scale, ssq, maxabs;
    bool nonfinite;
} norm_acc;

static void acc_add(norm_acc *n, double x)
{
    if (!isfinite(x)) {
        n->nonfinite = true;
        return;
    }
    double ax = fabs(x);
    if (ax > n->maxabs)
        n->maxabs = ax;
    if (ax == 0)
        return;
    if (ax > n->scale) {
        n->ssq = 1.0 + n->ssq * (n->scale / ax) * (n->scale / ax);
        n->scale = ax;
    } else {
        n->ssq += (ax / n->scale) * (ax / n->scale);
    }
}

static double acc_norm(const norm_acc *n)
{
    return n->scale * sqrt(n->ssq);
}

typedef struct pair_acc {
    norm_acc diff, ref;
} pair_acc;

static void pair_add(pair_acc *p, const double *got, const double *want, size_t n)
{
    if (!got || !want)
        return;
    for (size_t i = 0; i < n; i++) {
        acc_add(&p->ref, want[i]);
        if (!isfinite(got[i]))
            p->diff.nonfinite = true;
        else
            acc_add(&p->diff, got[i] - want[i]);
    }
}

static void pair_result(const pair_acc *p, double *rel, double *maxabs)
{
    if (p->diff.nonfinite || p->ref.nonfinite) {
        *rel = *maxabs = INFINITY;
        return;
    }
    double dn = acc_norm(&p->diff), rn = acc_norm(&p->ref);
    *rel = rn > 0 ? dn / rn : dn;
    *maxabs = p->diff.maxabs;
}

bool ref_compare(const ref_result *got, const ref_result *want, ref_error *err)
{
    const ref_dims *dm = &want->dims;
    if (!ref_dims_equal(&got->dims, dm))
        return false;
    pair_acc out = {0}, st = {0};
    pair_add(&out, got->out, want->out, (size_t)dm->total * dm->Hout * dm->V);
    if (dm->linear) {
        size_t nh = (size_t)dm->nseq * dm->Hs;
        pair_add(&st, got->hT, want->hT, nh * dm->K * dm->V);
        if (dm->has_z)
            pair_add(&st, got->zT, want->zT, nh * dm->K);
        if (dm->has_m)
            pair_add(&st, got->mT, want->mT, nh);
    }
    pair_result(&out, &err->out_rel, &err->out_maxabs);
    pair_result(&st, &err->state_rel, &err->state_maxabs);
    return true;
}
