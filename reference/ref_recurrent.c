/* reference/ref_recurrent.c: the forward pass token by token, straight from the definitions.
 *
 * Linear part (algorithms.md 1.1, 2.x(a)), per sequence and state head, update-then-read:
 *     additive:  S_t = A_t S_{t-1} + k_t v_t^T              (z_t = A_t z_{t-1} + k_t for DENOM)
 *     delta:     P = A_t S_{t-1};  u = beta_t (v_t - P^T k_t);  S_t = P + k_t u^T    (decay first)
 *     mLSTM:     m_t = max(a_t + m_{t-1}, i_t);  f = e^{a_t + m_{t-1} - m_t};  w = e^{i_t - m_t}
 *                S_t = f S_{t-1} + w k_t v_t^T;  n_t = f n_{t-1} + w k_t
 *     A_t:       I (NONE), e^{g_h} I (CONST), e^{a_t} I (SCALAR), Diag(e^{a_t}) (VECTOR)
 *     readout:   x = S_t^T q_t for every output head that reads this state, then
 *                NONE x | DENOM x / (z.q + eps) | MAXFLOOR x / (max(|n.q|, e^{-m}) + eps)
 *                RMS x / sqrt(mean x^2 + eps) | LAYER (x - mean) / sqrt(var + eps)
 *     mask NONE: S_full = S_0 + sum over the whole sequence, read by every token.
 * Softmax part (2.8(a)): o_t = sum_{j in W(t)} e^{s_tj - max} v_j / sum e^{s_tj - max}, s_tj = q_t.k_j,
 * W(t) = [max(bos, t-w+1), t] (w = 0: from bos), or the whole sequence for mask NONE.
 * The output is the sum of both parts.  Cost O(T Hs K V) for the linear part, O(T W (K+V)) for softmax.
 */
#include "ref_internal.h"

#include <math.h>
#include <string.h>

/* Applies the readout's post-op to x (length V) and writes it to dst. */
static void post_linear(const ir_linear *l, const ref_dims *dm, const ref_rec_state *st, const double *q,
                        const double *x, double *dst)
{
    uint32_t K = dm->K, V = dm->V;
    switch (l->norm) {
    case IR_NORM_NONE:
        memcpy(dst, x, V * sizeof *x);
        break;
    case IR_NORM_DENOM:
    case IR_NORM_MAXFLOOR: {
        double zq = 0;
        for (uint32_t d = 0; d < K; d++)
            zq += st->z[d] * q[d];
        double den = l->norm == IR_NORM_DENOM ? zq + l->eps : fmax(fabs(zq), exp(-st->m)) + l->eps;
        for (uint32_t c = 0; c < V; c++)
            dst[c] = x[c] / den;
        break;
    }
    case IR_NORM_RMS:
    case IR_NORM_LAYER: {
        double mean, inv;
        ref_row_norm(x, V, l->norm == IR_NORM_LAYER, l->eps, &mean, &inv);
        for (uint32_t c = 0; c < V; c++)
            dst[c] = (x[c] - mean) * inv;
        break;
    }
    }
}

/* Reads the state for every output head of state head s at token t. */
static void read_out(const ir_module *m, const ref_data *d, ref_rec_state *st, uint32_t s, uint32_t t,
                     ref_result *res)
{
    const ref_dims *dm = &d->dims;
    uint32_t K = dm->K, V = dm->V, G = dm->Hout / dm->Hs;
    for (uint32_t h = s * G; h < (s + 1) * G; h++) {
        const double *q = ref_role_at(&d->roles.q, t, ir_head_map(h, dm->Hout, dm->Hq));
        memset(st->x, 0, V * sizeof *st->x);
        for (uint32_t r = 0; r < K; r++) {
            const double *row = st->S + (size_t)r * V;
            for (uint32_t c = 0; c < V; c++)
                st->x[c] += q[r] * row[c];
        }
        post_linear(&m->linear, dm, st, q, st->x, res->out + ((size_t)t * dm->Hout + h) * V);
    }
}

void ref_rec_step(const ir_module *m, const ref_data *d, ref_rec_state *st, uint32_t s, uint32_t t)
{
    const ir_linear *l = &m->linear;
    const ref_dims *dm = &d->dims;
    const ref_roles *ro = &d->roles;
    uint32_t K = dm->K, V = dm->V, Hs = dm->Hs;
    const double *k = ref_role_at(&ro->k, t, ir_head_map(s, Hs, ro->k.heads));
    const double *v = ref_role_at(&ro->v, t, ir_head_map(s, Hs, ro->v.heads));
    uint32_t gh = ro->gate.data ? ir_head_map(s, Hs, ro->gate.heads) : 0;

    if (l->norm == IR_NORM_MAXFLOOR) { /* mLSTM: scalar decay, stabilised exponential input gate */
        double a = ro->gate.data ? ref_gate_at(&ro->gate, t, gh, 0) : 0.0;
        double i = ro->igate.data ? ref_role_at(&ro->igate, t, ir_head_map(s, Hs, ro->igate.heads))[0] : 0.0;
        double m_new = fmax(a + st->m, i);
        double f = exp(a + st->m - m_new), w = exp(i - m_new);
        for (uint32_t r = 0; r < K; r++) {
            double *row = st->S + (size_t)r * V;
            for (uint32_t c = 0; c < V; c++)
                row[c] = f * row[c] + w * k[r] * v[c];
            st->z[r] = f * st->z[r] + w * k[r];
        }
        st->m = m_new;
        return;
    }

    for (uint32_t r = 0; r < K; r++)
        st->decay[r] = ro->gate.data ? exp(ref_gate_at(&ro->gate, t, gh, r)) : 1.0;
    for (uint32_t r = 0; r < K; r++) {
        double *row = st->S + (size_t)r * V;
        for (uint32_t c = 0; c < V; c++)
            row[c] *= st->decay[r];
    }
    if (l->update == IR_UPDATE_DELTA) {
        double beta = ref_role_at(&ro->beta, t, ir_head_map(s, Hs, ro->beta.heads))[0];
        memset(st->pred, 0, V * sizeof *st->pred);
        for (uint32_t r = 0; r < K; r++) {
            const double *row = st->S + (size_t)r * V;
            for (uint32_t c = 0; c < V; c++)
                st->pred[c] += k[r] * row[c];
        }
        for (uint32_t c = 0; c < V; c++)
            st->pred[c] = beta * (v[c] - st->pred[c]); /* now u */
        v = st->pred;
    }
    for (uint32_t r = 0; r < K; r++) {
        double *row = st->S + (size_t)r * V;
        for (uint32_t c = 0; c < V; c++)
            row[c] += k[r] * v[c];
    }
    if (dm->has_z)
        for (uint32_t r = 0; r < K; r++)
            st->z[r] = st->decay[r] * st->z[r] + k[r];
}

void ref_rec_start(const ref_data *d, ref_rec_state *st, uint32_t n, uint32_t s)
{
    const ref_dims *dm = &d->dims;
    uint32_t K = dm->K, V = dm->V;
    size_t sh = (size_t)n * dm->Hs + s;
    if (d->h0)
        memcpy(st->S, d->h0 + sh * K * V, (size_t)K * V * sizeof *st->S);
    else
        memset(st->S, 0, (size_t)K * V * sizeof *st->S);
    if (dm->has_z) {
        if (d->z0)
            memcpy(st->z, d->z0 + sh * K, K * sizeof *st->z);
        else
            memset(st->z, 0, K * sizeof *st->z);
    }
    st->m = d->m0 ? d->m0[sh] : 0.0;
}

void ref_rec_sum(const ref_data *d, ref_rec_state *st, uint32_t n, uint32_t s)
{
    const ref_dims *dm = &d->dims;
    const ref_roles *ro = &d->roles;
    uint32_t K = dm->K, V = dm->V, Hs = dm->Hs;
    for (uint32_t t = d->cu_seqlens[n]; t < d->cu_seqlens[n + 1]; t++) {
        const double *k = ref_role_at(&ro->k, t, ir_head_map(s, Hs, ro->k.heads));
        const double *v = ref_role_at(&ro->v, t, ir_head_map(s, Hs, ro->v.heads));
        for (uint32_t r = 0; r < K; r++) {
            double *row = st->S + (size_t)r * V;
            for (uint32_t c = 0; c < V; c++)
                row[c] += k[r] * v[c];
            if (dm->has_z)
                st->z[r] += k[r];
        }
    }
}

static void linear_sequence(const ir_module *m, const ref_data *d, ref_rec_state *st, uint32_t n, ref_result *res)
{
    const ref_dims *dm = &d->dims;
    uint32_t K = dm->K, V = dm->V, Hs = dm->Hs;
    uint32_t bos = d->cu_seqlens[n], eos = d->cu_seqlens[n + 1];
    for (uint32_t s = 0; s < Hs; s++) {
        size_t sh = (size_t)n * Hs + s;
        ref_rec_start(d, st, n, s);
        if (m->mask == IR_MASK_NONE) { /* bidirectional: the whole sequence, then every token reads */
            ref_rec_sum(d, st, n, s);
            for (uint32_t t = bos; t < eos; t++)
                read_out(m, d, st, s, t, res);
        } else {
            for (uint32_t t = bos; t < eos; t++) {
                ref_rec_step(m, d, st, s, t);
                read_out(m, d, st, s, t, res);
            }
        }
        memcpy(res->hT + sh * K * V, st->S, (size_t)K * V * sizeof *st->S);
        if (dm->has_z)
            memcpy(res->zT + sh * K, st->z, K * sizeof *st->z);
        if (dm->has_m)
            res->mT[sh] = st->m;
    }
}

void ref_softmax_row(const ir_module *m, const ref_data *d, uint32_t h, uint32_t t, uint32_t bos, uint32_t eos,
                     double *p, uint32_t *lo, uint32_t *hi)
{
    const ref_dims *dm = &d->dims;
    const ref_roles *ro = &d->roles;
    uint32_t sK = dm->sK, Hout = dm->Hout, w = m->softmax.window;
    uint32_t qh = ir_head_map(h, Hout, ro->sq.heads), kh = ir_head_map(h, Hout, ro->sk.heads);
    *lo = bos;
    *hi = m->mask == IR_MASK_NONE ? eos - 1 : t;
    if (w && m->mask != IR_MASK_NONE && t + 1 > bos + w)
        *lo = t + 1 - w;
    const double *q = ref_role_at(&ro->sq, t, qh);
    double mx = -INFINITY;
    for (uint32_t j = *lo; j <= *hi; j++) {
        const double *k = ref_role_at(&ro->sk, j, kh);
        double s = 0;
        for (uint32_t c = 0; c < sK; c++)
            s += q[c] * k[c];
        p[j - bos] = s;
        mx = fmax(mx, s);
    }
    double sum = 0;
    for (uint32_t j = *lo; j <= *hi; j++)
        sum += (p[j - bos] = exp(p[j - bos] - mx));
    for (uint32_t j = *lo; j <= *hi; j++)
        p[j - bos] /= sum;
}

/* Adds the softmax part of sequence n to res->out; p is scratch of the sequence's length. */
static void softmax_sequence(const ir_module *m, const ref_data *d, uint32_t n, double *p, ref_result *res)
{
    const ref_dims *dm = &d->dims;
    const ref_roles *ro = &d->roles;
    uint32_t V = dm->V, Hout = dm->Hout;
    uint32_t bos = d->cu_seqlens[n], eos = d->cu_seqlens[n + 1];
    for (uint32_t h = 0; h < Hout; h++) {
        uint32_t vh = ir_head_map(h, Hout, ro->sv.heads);
        for (uint32_t t = bos; t < eos; t++) {
            uint32_t lo, hi;
            ref_softmax_row(m, d, h, t, bos, eos, p, &lo, &hi);
            double *o = res->out + ((size_t)t * Hout + h) * V;
            for (uint32_t j = lo; j <= hi; j++) {
                const double *v = ref_role_at(&ro->sv, j, vh);
                for (uint32_t c = 0; c < V; c++)
                    o[c] += p[j - bos] * v[c];
            }
        }
    }
}

bool ref_forward_recurrent(const ir_module *m, const ref_data *d, ref_result *res, attnc_arena *a,
                           attnc_diags *diags)
{
    if (!ref_result_fits(res, d))
        return ref_fail(diags, m->span, "the result does not have the data's sizes");
    const ref_dims *dm = &d->dims;
    memset(res->out, 0, (size_t)dm->total * dm->Hout * dm->V * sizeof *res->out);
    if (dm->linear) {
        ref_rec_state st = {0};
        st.S = ref_doubles(a, (size_t)dm->K * dm->V);
        st.z = ref_doubles(a, dm->K);
        st.decay = ref_doubles(a, dm->K);
        st.x = ref_doubles(a, dm->V);
        st.pred = ref_doubles(a, dm->V);
        if (!st.S || !st.z || !st.decay || !st.x || !st.pred)
            return ref_fail(diags, m->span, "out of memory");
        for (uint32_t n = 0; n < dm->nseq; n++)
            linear_sequence(m, d, &st, n, res);
    }
    if (dm->softmax) {
        uint32_t longest = 0;
        for (uint32_t n = 0; n < dm->nseq; n++)
            if (d->cu_seqlens[n + 1] - d->cu_seqlens[n] > longest)
                longest = d->cu_seqlens[n + 1] - d->cu_seqlens[n];
        double *p = ref_doubles(a, longest);
        if (!p)
            return ref_fail(diags, m->span, "out of memory");
        for (uint32_t n = 0; n < dm->nseq; n++)
            softmax_sequence(m, d, n, p, res);
    }
    return true;
}
