/* reference/ref_grad.c: the float64 backward of the reference, and its check by finite differences.
 *
 * The loss is L = <dout, out> + <dhT, hT> + <dzT, zT> + <dmT, mT> (ref_loss), so its gradient with
 * respect to the inputs is the vector-Jacobian product of the forward with the upstream gradients.
 * ref_backward computes it by reverse mode through the RECURRENT definition (ref_recurrent.c), the
 * simplest form that is obviously the forward's derivative; the chunkwise backward of algorithms.md 1.3
 * is what kernels will do and this is what they will be checked against.
 *
 * Linear part (algorithms.md 1.1, 2.x(a)), per sequence and state head:
 *   tape:     the forward steps of ref_recurrent.c (ref_rec_step: the same arithmetic), recording the
 *             state (S, z, m) before the first token and after every token;
 *   sweep:    dS, dz, dm start at dhT, dzT, dmT; for t = eos-1 down to bos the readouts of token t add to
 *             them (and to dq), then the step's adjoint maps them to the state before t (and adds to dk,
 *             dv, the gate, beta and the input gate); what is left is dh0, dz0, dm0.
 *   step adjoints (D = Diag(e^{a_t}); a scalar gate is a_t times the ones vector):
 *     additive:  S_t = D S + k v^T, z_t = D z + k
 *                dk += dS v + dz;  dv += dS^T k;  da_r += e^{a_r} (dS_r . S_r + dz_r z_r);  dS <- D dS
 *     delta:     P = D S;  p = P^T k;  u = beta (v - p);  S_t = P + k u^T
 *                du = dS^T k;  dk += dS u;  dbeta += du . (v - p);  dv += beta du
 *                dP = dS - beta k du^T;  dk -= beta P du;  da_r += dP_r . P_r;  dS <- D dP
 *     mLSTM:     m_t = max(a + m, i);  f = e^{a + m - m_t};  w = e^{i - m_t};  S_t = f S + w k v^T, n alike
 *                df = dS . S + dn . n;  dw = k^T dS v + dn . k;  dk += w (dS v + dn);  dv += w dS^T k;
 *                then through the exponents and the max (below);  dS <- f dS, dn <- f dn
 *   readout:  x = S_t^T q, o = post(x): dS += q dx^T, dq += S_t dx, and each norm's own terms (DENOM and
 *             MAXFLOOR: dz and dq through z.q; MAXFLOOR's floor e^{-m}: dm where the floor wins).
 *   mask none: every token reads S_full = S_0 + sum k v^T; dS_full gathers every read and dhT, then
 *             dk_t = dS_full v_t (+ dz_full), dv_t = dS_full^T k_t.
 * Softmax part (2.8(d)), per query: p = softmax(s), o = sum p_j v_j: dv_j += p_j do,
 * ds_j = p_j (do . v_j - do . o), dq += sum_j ds_j k_j, dk_j += ds_j q.
 * The role gradients then go through the value DAG (ref_eval_roles_backward) to the tensors.  Heads: a
 * role read by several state or output heads (GQA, GVA) has its gradient added at the one row they read,
 * which is the sum algorithms.md 9.10 asks for.
 *
 * mLSTM's stabiliser.  algorithms.md 2.7(d) says to treat m as a constant because the output does not
 * depend on it.  That does not hold for this loss, for two reasons, so the backward differentiates
 * through m as well:
 *   - the final state is returned in stabilised units (hT = C e^{-m}, zT = n e^{-m}, and mT itself), so
 *     <dhT, hT> + <dzT, zT> + <dmT, mT> depends on m for any upstream gradients that do not happen to
 *     satisfy the invariance; holding m constant gave errors of 0.2 to 1.1 (relative) on the gate
 *     gradients of mlstm.attn (T = 37, B = 2, with or without dmT);
 *   - even the output moves with m when eps > 0: in true units it is C^T q / (max(|n.q|, 1) + eps e^{m});
 *     with only dout, holding m constant was off by 1e-6 to 4e-6 (a one-head K = 16 mLSTM, T = 1 to 37),
 *     above the bound this check demands.
 * So the max passes m_t's adjoint to the branch the forward took (a + m_{t-1} on a tie, the value fmax
 * keeps), and the exponents a + m_{t-1} - m_t and i - m_t pass theirs to a, i, m_{t-1} and m_t.  Away
 * from ties this is the exact derivative of the forward as computed; the kinks themselves
 * (a + m_{t-1} = i, |n.q| = e^{-m}) have none, and a finite difference across one would disagree.
 * m0 is an input like h0: (h0, z0, m0) is one state in stabilised units, and dm0 is of order one.
 *
 * The check (ref_gradcheck_run) compares <g, d> with (L(x + eps d) - L(x - eps d)) / (2 eps) for
 * directions d over all inputs, over each input alone, and for single coordinates (each input's largest
 * |gradient|, and random ones).  Steps are relative to each input's root mean square.  The difference
 * L(x + eps d) - L(x - eps d) is summed as <up, out+ - out-> (outputs the step does not reach cancel
 * exactly), so what limits it is the rounding of the outputs that moved, about u |out| each (u =
 * 2^-53), divided by eps, against the truncation error eps^2 L'''/6 and, at a kink (the curvature of
 * elu at 0), a term linear in eps.  Measured at the sizes of tests/run_refgrad.sh (T = 37, B = 2):
 *   - a random direction's derivative is a Gaussian of standard deviation |g| scale; when it comes out
 *     near 0 the difference measures its own rounding (an m0 direction at 0.8% of its typical size
 *     "failed" at 7e-7 with eps = 1e-6).  Such a direction is drawn again (add_input);
 *   - directions: eps = 3e-6 (REF_GRAD_EPS).  Over every spec, seeds 1 to 3, the largest direction
 *     error was 1.0e-8 at 3e-6, 3.2e-8 at 1e-6 (rounding: mLSTM's h0) and 3.9e-8 at 1e-5 (the elu+1 keys
 *     of linear_bidirectional: the kink);
 *   - single coordinates move L by |g_i| eps_i, often 1e-3 of what a direction moves it by, with the
 *     rounding of the whole head's outputs still in it: eps = 1e-5 (REF_GRAD_EPS_COORD).  At 3e-6 a KDA
 *     gate coordinate measured 1.3e-6 (rounding), at 3e-5 the largest coordinate of based (whose DENOM
 *     denominators are small, so L is curved there) measured 3.7e-7 (truncation);
 *   - random coordinates are drawn among those whose |gradient| is at least 1e-3 of the input's largest
 *     (COORD_MIN_SHARE): below that the finite difference is the outputs' rounding, not the derivative
 *     (an h0 coordinate of a strongly decayed head of gva_gated_deltanet, gradient 1.1e-7, measured
 *     7.3e-7 at a step of 1e-5 and 5e-8 at 3e-4).  Every coordinate still counts in the directions.
 * With these the largest error over every spec and seeds 1 to 7 (147 runs) was 1.2e-7 (a coordinate of
 * gqa_gla's gate logits), so 1e-6 has a margin of 8.
 */
#include "ref_internal.h"

#include <math.h>
#include <string.h>

/* Streams of the upstream gradients and of the check's directions: far above ref_draw's (one per
 * tensor, two for the initial states), so that they never share one. */
#define STREAM_UPSTREAM (UINT64_C(1) << 40)
#define STREAM_CHECK (UINT64_C(1) << 41)

#define REF_GRAD_EPS 3e-6 /* the check's steps (see the file comment) */
#define REF_GRAD_EPS_COORD 1e-5

/* ------------------------------------------------------------------------------------------------- */
/* compensated sums                                                                                    */

typedef struct ksum {
    double s, c;
} ksum;

/* Neumaier's variant of Kahan summation: the error is about u |sum| + n u^2 sum |terms| instead of
 * n u sum |terms|, so a sum of many terms is as accurate as the terms. */
static void ksum_add(ksum *k, double x)
{
    double t = k->s + x;
    if (fabs(k->s) >= fabs(x))
        k->c += (k->s - t) + x;
    else
        k->c += (x - t) + k->s;
    k->s = t;
}

static void ksum_dot(ksum *k, const double *x, const double *y, size_t n)
{
    if (!x || !y)
        return;
    for (size_t i = 0; i < n; i++)
        ksum_add(k, x[i] * y[i]);
}

/* k += <w, x - y> (<w, x> when y is NULL); nothing where w or x is absent. */
static void ksum_dot_diff(ksum *k, const double *w, const double *x, const double *y, size_t n)
{
    if (!w || !x)
        return;
    for (size_t i = 0; i < n; i++)
        ksum_add(k, w[i] * (y ? x[i] - y[i] : x[i]));
}

/* <up, x - y> over out, hT, zT and mT (<up, x> when y is NULL), compensated. */
static double weigh(const ref_result *up, const ref_result *x, const ref_result *y)
{
    const ref_dims *dm = &x->dims;
    ksum k = {0};
    ksum_dot_diff(&k, up->out, x->out, y ? y->out : NULL, (size_t)dm->total * dm->Hout * dm->V);
    if (dm->linear) {
        size_t nh = (size_t)dm->nseq * dm->Hs;
        ksum_dot_diff(&k, up->hT, x->hT, y ? y->hT : NULL, nh * dm->K * dm->V);
        if (dm->has_z)
            ksum_dot_diff(&k, up->zT, x->zT, y ? y->zT : NULL, nh * dm->K);
        if (dm->has_m)
            ksum_dot_diff(&k, up->mT, x->mT, y ? y->mT : NULL, nh);
    }
    return k.s + k.c;
}

double ref_loss(const ref_result *res, const ref_result *up)
{
    return weigh(up, res, NULL);
}

ref_result *ref_draw_upstream(const ir_module *m, const ref_data *d, uint64_t seed, attnc_arena *a)
{
    ref_result *up = ref_result_new(d, a);
    if (!up)
        return NULL;
    const ref_dims *dm = &d->dims;
    ref_fill_normal(up->out, (size_t)dm->total * dm->Hout * dm->V, seed, STREAM_UPSTREAM, 1.0);
    if (dm->linear && m->state_out) {
        size_t nh = (size_t)dm->nseq * dm->Hs;
        ref_fill_normal(up->hT, nh * dm->K * dm->V, seed, STREAM_UPSTREAM + 1, 1.0);
        if (dm->has_z)
            ref_fill_normal(up->zT, nh * dm->K, seed, STREAM_UPSTREAM + 2, 1.0);
        if (dm->has_m)
            ref_fill_normal(up->mT, nh, seed, STREAM_UPSTREAM + 3, 1.0);
    } else {
        up->hT = up->zT = up->mT = NULL;
    }
    return up;
}

/* ------------------------------------------------------------------------------------------------- */
/* the backward                                                                                        */

/* Scratch of the linear part's backward, for one state head at a time. */
typedef struct bw_scratch {
    ref_rec_state st;          /* the forward, stepped to fill the tape */
    double *tS, *tz, *tm;      /* tape: state before token bos + j at j, after the last at len */
    double *dS, *dz;           /* adjoints of the state at the current point of the sweep */
    double dm;
    double *P;                 /* K x V: delta: D S_{t-1} */
    double *x, *dx, *p, *u, *du; /* V */
    double *dg, *decay;        /* K */
} bw_scratch;

void ref_norm_backward(const ir_linear *l, uint32_t V, const double *x, double zq, double mval, const double *dy,
                       double *dx, double *dzq, double *dm)
{
    *dzq = 0;
    switch (l->norm) {
    case IR_NORM_NONE:
        memcpy(dx, dy, V * sizeof *dx);
        break;
    case IR_NORM_DENOM:
    case IR_NORM_MAXFLOOR: { /* o = x / den: dx = do / den, dden = -(do . x) / den^2 */
        double floor = exp(-mval);
        bool through_zq = l->norm == IR_NORM_DENOM || fabs(zq) >= floor; /* the side of the max taken */
        double den = l->norm == IR_NORM_DENOM ? zq + l->eps : fmax(fabs(zq), floor) + l->eps;
        double dden = 0;
        for (uint32_t c = 0; c < V; c++) {
            dx[c] = dy[c] / den;
            dden -= dy[c] * x[c] / (den * den);
        }
        if (through_zq)
            *dzq = l->norm == IR_NORM_MAXFLOOR && zq < 0 ? -dden : dden;
        else
            *dm -= dden * floor; /* d e^{-m} / dm = -e^{-m} */
        break;
    }
    case IR_NORM_RMS: { /* o = x r, r = (|x|^2/V + eps)^-1/2: dx = r do - r^3 (x . do) x / V */
        double mean, r, xd = 0;
        ref_row_norm(x, V, false, l->eps, &mean, &r);
        for (uint32_t c = 0; c < V; c++)
            xd += x[c] * dy[c];
        for (uint32_t c = 0; c < V; c++)
            dx[c] = r * dy[c] - r * r * r * xd * x[c] / V;
        break;
    }
    case IR_NORM_LAYER: { /* o = (x - mean) r: dx = r (do - mean(do) - o mean(do o)) */
        double mean, r, md = 0, mdo = 0;
        ref_row_norm(x, V, true, l->eps, &mean, &r);
        for (uint32_t c = 0; c < V; c++) {
            md += dy[c];
            mdo += dy[c] * (x[c] - mean) * r;
        }
        md /= V;
        mdo /= V;
        for (uint32_t c = 0; c < V; c++)
            dx[c] = r * (dy[c] - md - (x[c] - mean) * r * mdo);
        break;
    }
    }
}

/* The adjoints of the readouts of token t from state head s; S, z, mval: the state after token t. */
static void readout_backward(const ir_module *m, const ref_data *d, const ref_result *up, const ref_roles *gr,
                             bw_scratch *w, const double *S, const double *z, double mval, uint32_t s, uint32_t t)
{
    const ir_linear *l = &m->linear;
    const ref_dims *dm = &d->dims;
    uint32_t K = dm->K, V = dm->V, G = dm->Hout / dm->Hs;
    double *x = w->x, *dx = w->dx;
    for (uint32_t h = s * G; h < (s + 1) * G; h++) {
        const double *dy = up->out + ((size_t)t * dm->Hout + h) * V;
        uint32_t qh = ir_head_map(h, dm->Hout, dm->Hq);
        const double *q = ref_role_at(&d->roles.q, t, qh);
        double *dq = ref_grad_at(&gr->q, t, qh);
        memset(x, 0, V * sizeof *x);
        for (uint32_t r = 0; r < K; r++)
            for (uint32_t c = 0; c < V; c++)
                x[c] += q[r] * S[(size_t)r * V + c];
        double zq = 0, dzq = 0;
        if (l->norm == IR_NORM_DENOM || l->norm == IR_NORM_MAXFLOOR)
            for (uint32_t r = 0; r < K; r++)
                zq += z[r] * q[r];
        ref_norm_backward(l, V, x, zq, mval, dy, dx, &dzq, &w->dm);
        for (uint32_t r = 0; r < K && dzq != 0; r++) {
            w->dz[r] += dzq * q[r];
            dq[r] += dzq * z[r];
        }
        for (uint32_t r = 0; r < K; r++) {
            const double *Sr = S + (size_t)r * V;
            double *dSr = w->dS + (size_t)r * V, acc = 0;
            for (uint32_t c = 0; c < V; c++) {
                dSr[c] += q[r] * dx[c];
                acc += Sr[c] * dx[c];
            }
            dq[r] += acc;
        }
    }
}

/* mLSTM's step (see the file comment): w->dS, dz, dm go from the state after token t to the one before;
 * Sp, zp, mp: the state before. */
static void mlstm_step_backward(const ref_data *d, const ref_roles *gr, bw_scratch *w, const double *Sp,
                                const double *zp, double mp, uint32_t s, uint32_t t)
{
    const ref_dims *dm = &d->dims;
    const ref_roles *ro = &d->roles;
    uint32_t K = dm->K, V = dm->V, Hs = dm->Hs;
    uint32_t kh = ir_head_map(s, Hs, ro->k.heads), vh = ir_head_map(s, Hs, ro->v.heads);
    uint32_t gh = ro->gate.data ? ir_head_map(s, Hs, ro->gate.heads) : 0;
    uint32_t ih = ro->igate.data ? ir_head_map(s, Hs, ro->igate.heads) : 0;
    const double *k = ref_role_at(&ro->k, t, kh), *v = ref_role_at(&ro->v, t, vh);
    double *dk = ref_grad_at(&gr->k, t, kh), *dv = ref_grad_at(&gr->v, t, vh);
    double a = ro->gate.data ? ref_gate_at(&ro->gate, t, gh, 0) : 0.0;
    double i = ro->igate.data ? ref_role_at(&ro->igate, t, ih)[0] : 0.0;
    double mt = fmax(a + mp, i);
    double f = exp(a + mp - mt), wt = exp(i - mt);
    double df = 0, dw = 0;
    for (uint32_t r = 0; r < K; r++) {
        const double *Sr = Sp + (size_t)r * V;
        double *dSr = w->dS + (size_t)r * V, sv = 0;
        for (uint32_t c = 0; c < V; c++) {
            df += dSr[c] * Sr[c];
            sv += dSr[c] * v[c];
            dv[c] += wt * k[r] * dSr[c];
            dSr[c] *= f;
        }
        df += w->dz[r] * zp[r];
        dw += k[r] * (sv + w->dz[r]);
        dk[r] += wt * (sv + w->dz[r]);
        w->dz[r] *= f;
    }
    double dlf = f * df, dlw = wt * dw; /* adjoints of the exponents a + m_{t-1} - m_t and i - m_t */
    double dmt = w->dm - dlf - dlw;     /* m_t: its readouts' (already in w->dm) and the exponents' */
    double da = dlf, di = dlw, dmp = dlf;
    if (a + mp >= i) { /* m_t = a + m_{t-1}: fmax's value on a tie too */
        da += dmt;
        dmp += dmt;
    } else {
        di += dmt;
    }
    if (ro->gate.data)
        ref_grad_at(&gr->gate, t, gh)[0] += da;
    if (ro->igate.data)
        ref_grad_at(&gr->igate, t, ih)[0] += di;
    w->dm = dmp;
}

/* The other transitions (see the file comment): w->dS and dz go from after token t to before it. */
static void step_backward(const ir_module *m, const ref_data *d, const ref_roles *gr, bw_scratch *w,
                          const double *Sp, const double *zp, double mp, uint32_t s, uint32_t t)
{
    const ir_linear *l = &m->linear;
    if (l->norm == IR_NORM_MAXFLOOR) {
        mlstm_step_backward(d, gr, w, Sp, zp, mp, s, t);
        return;
    }
    const ref_dims *dm = &d->dims;
    const ref_roles *ro = &d->roles;
    uint32_t K = dm->K, V = dm->V, Hs = dm->Hs;
    uint32_t kh = ir_head_map(s, Hs, ro->k.heads), vh = ir_head_map(s, Hs, ro->v.heads);
    uint32_t gh = ro->gate.data ? ir_head_map(s, Hs, ro->gate.heads) : 0;
    const double *k = ref_role_at(&ro->k, t, kh), *v = ref_role_at(&ro->v, t, vh);
    double *dk = ref_grad_at(&gr->k, t, kh), *dv = ref_grad_at(&gr->v, t, vh);
    double *dS = w->dS, *dz = w->dz, *dg = w->dg, *decay = w->decay;
    for (uint32_t r = 0; r < K; r++)
        decay[r] = ro->gate.data ? exp(ref_gate_at(&ro->gate, t, gh, r)) : 1.0;

    if (l->update == IR_UPDATE_DELTA) {
        uint32_t bh = ir_head_map(s, Hs, ro->beta.heads);
        double beta = ref_role_at(&ro->beta, t, bh)[0], dbeta = 0;
        double *P = w->P, *p = w->p, *u = w->u, *du = w->du;
        memset(p, 0, V * sizeof *p);
        memset(du, 0, V * sizeof *du);
        for (uint32_t r = 0; r < K; r++)
            for (uint32_t c = 0; c < V; c++) {
                size_t rc = (size_t)r * V + c;
                P[rc] = decay[r] * Sp[rc];
                p[c] += k[r] * P[rc];
                du[c] += k[r] * dS[rc];
            }
        for (uint32_t c = 0; c < V; c++) {
            u[c] = beta * (v[c] - p[c]);
            dbeta += du[c] * (v[c] - p[c]);
            dv[c] += beta * du[c];
        }
        ref_grad_at(&gr->beta, t, bh)[0] += dbeta;
        for (uint32_t r = 0; r < K; r++) {
            double *dSr = dS + (size_t)r * V;
            const double *Pr = P + (size_t)r * V;
            double acc = 0;
            dg[r] = 0;
            for (uint32_t c = 0; c < V; c++) {
                acc += dSr[c] * u[c] - beta * Pr[c] * du[c]; /* k's two uses: the write and P^T k */
                double dP = dSr[c] - beta * k[r] * du[c];
                dg[r] += dP * Pr[c];
                dSr[c] = decay[r] * dP;
            }
            dk[r] += acc;
        }
    } else {
        for (uint32_t r = 0; r < K; r++) {
            double *dSr = dS + (size_t)r * V;
            const double *Sr = Sp + (size_t)r * V;
            double sv = 0, ss = 0;
            for (uint32_t c = 0; c < V; c++) {
                sv += dSr[c] * v[c];
                ss += dSr[c] * Sr[c];
                dv[c] += k[r] * dSr[c];
                dSr[c] *= decay[r];
            }
            if (dm->has_z) {
                sv += dz[r];
                ss += dz[r] * zp[r];
                dz[r] *= decay[r];
            }
            dk[r] += sv;
            dg[r] = decay[r] * ss;
        }
    }
    if (ro->gate.data) {
        double *ga = ref_grad_at(&gr->gate, t, gh);
        for (uint32_t r = 0; r < K; r++)
            ga[ro->gate.len == 1 ? 0 : r] += dg[r]; /* a broadcast gate sums over the channels */
    }
}

/* The linear part of sequence n: every state head's tape and sweep. */
static void linear_backward(const ir_module *m, const ref_data *d, const ref_result *up, const ref_roles *gr,
                            ref_grad *g, bw_scratch *w, uint32_t n)
{
    const ref_dims *dm = &d->dims;
    const ref_roles *ro = &d->roles;
    uint32_t K = dm->K, V = dm->V, Hs = dm->Hs;
    uint32_t bos = d->cu_seqlens[n], eos = d->cu_seqlens[n + 1], len = eos - bos;
    size_t kv = (size_t)K * V;
    for (uint32_t s = 0; s < Hs; s++) {
        size_t sh = (size_t)n * Hs + s;
        if (up->hT)
            memcpy(w->dS, up->hT + sh * kv, kv * sizeof *w->dS);
        else
            memset(w->dS, 0, kv * sizeof *w->dS);
        if (dm->has_z && up->zT)
            memcpy(w->dz, up->zT + sh * K, K * sizeof *w->dz);
        else
            memset(w->dz, 0, K * sizeof *w->dz);
        w->dm = dm->has_m && up->mT ? up->mT[sh] : 0.0;
        ref_rec_start(d, &w->st, n, s);

        if (m->mask == IR_MASK_NONE) {
            ref_rec_sum(d, &w->st, n, s);
            for (uint32_t t = bos; t < eos; t++)
                readout_backward(m, d, up, gr, w, w->st.S, w->st.z, w->st.m, s, t);
            for (uint32_t t = bos; t < eos; t++) {
                uint32_t kh = ir_head_map(s, Hs, ro->k.heads), vh = ir_head_map(s, Hs, ro->v.heads);
                const double *k = ref_role_at(&ro->k, t, kh), *v = ref_role_at(&ro->v, t, vh);
                double *dk = ref_grad_at(&gr->k, t, kh), *dv = ref_grad_at(&gr->v, t, vh);
                for (uint32_t r = 0; r < K; r++) {
                    const double *dSr = w->dS + (size_t)r * V;
                    double acc = dm->has_z ? w->dz[r] : 0.0;
                    for (uint32_t c = 0; c < V; c++) {
                        acc += dSr[c] * v[c];
                        dv[c] += k[r] * dSr[c];
                    }
                    dk[r] += acc;
                }
            }
        } else {
            for (uint32_t j = 0;; j++) { /* the tape: state j is the one before token bos + j */
                memcpy(w->tS + j * kv, w->st.S, kv * sizeof *w->tS);
                if (dm->has_z)
                    memcpy(w->tz + (size_t)j * K, w->st.z, K * sizeof *w->tz);
                w->tm[j] = w->st.m;
                if (j == len)
                    break;
                ref_rec_step(m, d, &w->st, s, bos + j);
            }
            for (uint32_t j = len; j-- > 0;) {
                readout_backward(m, d, up, gr, w, w->tS + (j + 1) * kv, w->tz + (size_t)(j + 1) * K, w->tm[j + 1],
                                 s, bos + j);
                step_backward(m, d, gr, w, w->tS + j * kv, w->tz + (size_t)j * K, w->tm[j], s, bos + j);
            }
        }
        if (g->h0)
            memcpy(g->h0 + sh * kv, w->dS, kv * sizeof *w->dS);
        if (g->z0)
            memcpy(g->z0 + sh * K, w->dz, K * sizeof *w->dz);
        if (g->m0)
            g->m0[sh] = w->dm;
    }
}

/* The softmax part of sequence n; p and o are scratch of the longest sequence and of V. */
static void softmax_backward(const ir_module *m, const ref_data *d, const ref_result *up, const ref_roles *gr,
                             uint32_t n, double *p, double *o)
{
    const ref_dims *dm = &d->dims;
    const ref_roles *ro = &d->roles;
    uint32_t sK = dm->sK, V = dm->V, Hout = dm->Hout;
    uint32_t bos = d->cu_seqlens[n], eos = d->cu_seqlens[n + 1];
    for (uint32_t h = 0; h < Hout; h++) {
        uint32_t qh = ir_head_map(h, Hout, ro->sq.heads), kh = ir_head_map(h, Hout, ro->sk.heads);
        uint32_t vh = ir_head_map(h, Hout, ro->sv.heads);
        for (uint32_t t = bos; t < eos; t++) {
            uint32_t lo, hi;
            ref_softmax_row(m, d, h, t, bos, eos, p, &lo, &hi);   /* the forward's probabilities */
            const double *q = ref_role_at(&ro->sq, t, qh);
            const double *dy = up->out + ((size_t)t * Hout + h) * V;
            double *dq = ref_grad_at(&gr->sq, t, qh);
            memset(o, 0, V * sizeof *o);
            for (uint32_t j = lo; j <= hi; j++) {
                const double *v = ref_role_at(&ro->sv, j, vh);
                for (uint32_t c = 0; c < V; c++)
                    o[c] += p[j - bos] * v[c];
            }
            double dyo = 0;
            for (uint32_t c = 0; c < V; c++)
                dyo += dy[c] * o[c];
            for (uint32_t j = lo; j <= hi; j++) {
                const double *k = ref_role_at(&ro->sk, j, kh), *v = ref_role_at(&ro->sv, j, vh);
                double *dk = ref_grad_at(&gr->sk, j, kh), *dv = ref_grad_at(&gr->sv, j, vh);
                double pj = p[j - bos], dp = 0;
                for (uint32_t c = 0; c < V; c++) {
                    dv[c] += pj * dy[c];
                    dp += dy[c] * v[c];
                }
                double ds = pj * (dp - dyo);
                for (uint32_t c = 0; c < sK; c++) {
                    dq[c] += ds * k[c];
                    dk[c] += ds * q[c];
                }
            }
        }
    }
}

/* A zeroed gradient role with the shape of `r` (absent where r is). */
static bool grad_role(const ref_role *r, ref_role *g, const ref_data *d, attnc_arena *a)
{
    *g = *r;
    if (!r->data)
        return true;
    size_t rows = r->per_head ? r->heads : (size_t)d->dims.total * r->heads;
    g->data = ref_doubles(a, rows * r->len);
    return g->data != NULL;
}

static ref_grad *no_grad(const ir_module *m, attnc_diags *diags, const char *why)
{
    ref_fail(diags, m->span, "%s", why);
    return NULL;
}

/* ref_backward and ref_backward_chunked: the linear part by the recurrent sweep (chunk 0) or by the
 * chunkwise adjoint (ref_chunked_grad.c); the rest is shared. */
static ref_grad *backward(const ir_module *m, const ref_data *d, const ref_result *up, uint32_t chunk,
                          attnc_arena *a, attnc_diags *diags)
{
    const ref_dims *dm = &d->dims;
    if (!up || !up->out || !ref_dims_equal(&up->dims, dm))
        return no_grad(m, diags, "the upstream gradients do not have the data's sizes");
    ref_grad *g = attnc_arena_alloc(a, sizeof *g);
    if (!g || !(g->tensor = attnc_arena_alloc(a, (m->ntensors + 1) * sizeof *g->tensor)))
        return no_grad(m, diags, "out of memory");
    for (uint32_t i = 0; i < m->ntensors; i++)
        if (!(g->tensor[i] = ref_doubles(a, d->tensor_count[i])) && d->tensor_count[i])
            return no_grad(m, diags, "out of memory");
    size_t nh = (size_t)dm->nseq * dm->Hs;
    if ((d->h0 && !(g->h0 = ref_doubles(a, nh * dm->K * dm->V))) || (d->z0 && !(g->z0 = ref_doubles(a, nh * dm->K))) ||
        (d->m0 && !(g->m0 = ref_doubles(a, nh))))
        return no_grad(m, diags, "out of memory");

    const ref_roles *ro = &d->roles;
    ref_roles gr;
    if (!grad_role(&ro->q, &gr.q, d, a) || !grad_role(&ro->k, &gr.k, d, a) || !grad_role(&ro->v, &gr.v, d, a) ||
        !grad_role(&ro->gate, &gr.gate, d, a) || !grad_role(&ro->beta, &gr.beta, d, a) ||
        !grad_role(&ro->igate, &gr.igate, d, a) || !grad_role(&ro->sq, &gr.sq, d, a) ||
        !grad_role(&ro->sk, &gr.sk, d, a) || !grad_role(&ro->sv, &gr.sv, d, a))
        return no_grad(m, diags, "out of memory");

    uint32_t longest = 0;
    for (uint32_t n = 0; n < dm->nseq; n++)
        if (d->cu_seqlens[n + 1] - d->cu_seqlens[n] > longest)
            longest = d->cu_seqlens[n + 1] - d->cu_seqlens[n];
    if (dm->linear && chunk) {
        if (!ref_chunked_linear_backward(m, d, up, &gr, g->h0, g->z0, g->m0, chunk, a, diags))
            return NULL;
    } else if (dm->linear) {
        /* the tape: every state of the longest sequence (mask none reads one state: no tape) */
        size_t K = dm->K, V = dm->V, steps = m->mask == IR_MASK_NONE ? 1 : (size_t)longest + 1;
        bw_scratch w = {0};
        w.st.S = ref_doubles(a, K * V);
        w.st.z = ref_doubles(a, K);
        w.st.decay = ref_doubles(a, K);
        w.st.x = ref_doubles(a, V);
        w.st.pred = ref_doubles(a, V);
        w.tS = ref_doubles(a, steps * K * V);
        w.tz = ref_doubles(a, steps * K);
        w.tm = ref_doubles(a, steps);
        w.dS = ref_doubles(a, K * V);
        w.dz = ref_doubles(a, K);
        w.P = ref_doubles(a, K * V);
        w.x = ref_doubles(a, V);
        w.dx = ref_doubles(a, V);
        w.p = ref_doubles(a, V);
        w.u = ref_doubles(a, V);
        w.du = ref_doubles(a, V);
        w.dg = ref_doubles(a, K);
        w.decay = ref_doubles(a, K);
        if (!w.st.S || !w.st.z || !w.st.decay || !w.st.x || !w.st.pred || !w.tS || !w.tz || !w.tm || !w.dS ||
            !w.dz || !w.P || !w.x || !w.dx || !w.p || !w.u || !w.du || !w.dg || !w.decay)
            return no_grad(m, diags, "out of memory for the backward's tape");
        for (uint32_t n = 0; n < dm->nseq; n++)
            linear_backward(m, d, up, &gr, g, &w, n);
    }
    if (dm->softmax) {
        double *p = ref_doubles(a, longest), *o = ref_doubles(a, dm->V);
        if (!p || !o)
            return no_grad(m, diags, "out of memory");
        for (uint32_t n = 0; n < dm->nseq; n++)
            softmax_backward(m, d, up, &gr, n, p, o);
    }
    if (!ref_eval_roles_backward(m, d, &gr, g->tensor, a, diags))
        return NULL;
    return g;
}

ref_grad *ref_backward(const ir_module *m, const ref_data *d, const ref_result *up, attnc_arena *a,
                       attnc_diags *diags)
{
    return backward(m, d, up, 0, a, diags);
}

ref_grad *ref_backward_chunked(const ir_module *m, const ref_data *d, const ref_result *up, uint32_t chunk,
                               attnc_arena *a, attnc_diags *diags)
{
    return backward(m, d, up, chunk ? chunk : 64, a, diags);
}

/* ------------------------------------------------------------------------------------------------- */
/* the finite-difference check                                                                         */

/* One input of the forward: a tensor or an initial state. */
typedef struct fd_input {
    const char *name;
    const double *x;  /* its value in the data */
    double *px;       /* its copy in the perturbed data */
    const double *g;  /* its gradient */
    double *dir;      /* a random direction over it: normal times `scale` */
    size_t n;
    double scale;     /* root mean square of x; 1 when x is all zero (m0) */
} fd_input;

typedef struct fd_ctx {
    const ir_module *m;
    const ref_result *up;
    ref_data pd;      /* the data with every input replaced by its px */
    fd_input *in;
    uint32_t nin;
    uint32_t nforward;
    attnc_diags *diags;
} fd_ctx;

#define ALL_INPUTS UINT32_MAX
#define COORD_MIN_SHARE 1e-3 /* random coordinates: |g_i| >= this times the input's largest */
#define WHOLE_INPUT SIZE_MAX
#define DIRECTION_DRAWS 8

/* Evaluates the forward at x + step * d into a fresh result from `s`, where d is the direction of input j
 * (every input's when j is ALL_INPUTS), or, for a coordinate, scale times its unit vector. */
static ref_result *forward_at(fd_ctx *c, uint32_t j, size_t coord, double step, attnc_arena *s)
{
    for (uint32_t k = 0; k < c->nin; k++) {
        fd_input *in = &c->in[k];
        memcpy(in->px, in->x, in->n * sizeof *in->px);
        if (j == ALL_INPUTS || (j == k && coord == WHOLE_INPUT))
            for (size_t i = 0; i < in->n; i++)
                in->px[i] += step * in->dir[i];
        else if (j == k)
            in->px[coord] += step * in->scale;
    }
    ref_result *res = NULL;
    bool ok = ref_eval_roles(c->m, &c->pd, s, c->diags) && (res = ref_result_new(&c->pd, s)) != NULL &&
              ref_forward_recurrent(c->m, &c->pd, res, s, c->diags);
    if (!ok && !res)
        ref_fail(c->diags, c->m->span, "out of memory");
    c->pd.roles = (ref_roles){0}; /* they live in s */
    c->nforward++;
    return ok ? res : NULL;
}

/* L(x + step d) - L(x - step d), summed as <up, res+ - res-> (compensated): outputs that the step does
 * not reach are bitwise equal in both and cancel exactly, so the difference does not carry the rounding
 * of L itself (u |L|), only that of the outputs that moved.  Each side's scratch has an arena of its own,
 * freed here, so that a check of many evaluations needs the memory of two. */
static bool loss_diff(fd_ctx *c, uint32_t j, size_t coord, double step, double *diff)
{
    attnc_arena *sp = attnc_arena_new(), *sm = attnc_arena_new();
    ref_result *rp = NULL, *rm = NULL;
    bool ok = sp && sm;
    if (!ok)
        ref_fail(c->diags, c->m->span, "out of memory");
    ok = ok && (rp = forward_at(c, j, coord, step, sp)) != NULL && (rm = forward_at(c, j, coord, -step, sm)) != NULL;
    if (ok)
        *diff = weigh(c->up, rp, rm);
    if (sp)
        attnc_arena_free(sp);
    if (sm)
        attnc_arena_free(sm);
    return ok;
}

static double rel_err(double a, double b)
{
    if (!isfinite(a) || !isfinite(b))
        return INFINITY;
    double den = fmax(fabs(a), fabs(b));
    return den > 0 ? fabs(a - b) / den : 0.0;
}

/* One item: the analytic <g, d> against the central difference along the same d. */
static bool check_item(fd_ctx *c, uint32_t j, size_t coord, double eps, const char *what, ref_gradcheck *out)
{
    ksum an = {0};
    for (uint32_t k = 0; k < c->nin; k++) {
        const fd_input *in = &c->in[k];
        if (j == ALL_INPUTS || (j == k && coord == WHOLE_INPUT))
            ksum_dot(&an, in->g, in->dir, in->n);
        else if (j == k)
            ksum_add(&an, in->g[coord] * in->scale);
    }
    double diff;
    if (!loss_diff(c, j, coord, eps, &diff))
        return false;
    ref_gradcheck_item *it = &out->items[out->n++];
    it->what = what;
    it->analytic = an.s + an.c;
    it->numeric = diff / (2.0 * eps);
    it->rel_err = rel_err(it->analytic, it->numeric);
    if (!(it->rel_err <= out->max_rel_err)) /* also takes NaN */
        out->max_rel_err = it->rel_err;
    return true;
}

/* Adds input (x, g) to the list, with its copy in the perturbed data (*px) and its direction.
 *
 * The direction is normal times the input's rms, drawn again (up to DIRECTION_DRAWS times) while its
 * derivative <g, d> is below a tenth of its typical size |g| scale (an 8% chance each time): there the
 * central difference would measure mostly its own rounding.  It is then signed so that <g, d> > 0, so
 * that the inputs' shares add up in the all-inputs direction instead of cancelling.  Both choices read
 * only the gradient under test, never the finite differences, so a wrong gradient is as visible along
 * the chosen direction as along any other random one. */
static bool add_input(fd_ctx *c, const char *name, const double *x, const double *g, size_t n, double **px,
                      uint64_t seed, attnc_arena *a)
{
    if (!x || n == 0)
        return true;
    fd_input *in = &c->in[c->nin];
    ksum xx = {0}, gg = {0};
    ksum_dot(&xx, x, x, n);
    *in = (fd_input){.name = name, .x = x, .g = g, .n = n};
    in->scale = xx.s > 0 ? sqrt((xx.s + xx.c) / (double)n) : 1.0;
    in->px = *px = ref_doubles(a, n);
    in->dir = ref_doubles(a, n);
    if (!in->px || !in->dir)
        return ref_fail(c->diags, c->m->span, "out of memory");
    if (!g)
        return ref_fail(c->diags, c->m->span, "the gradient has no '%s'", name);
    ksum_dot(&gg, g, g, n);
    double typical = sqrt(gg.s + gg.c) * in->scale, gd = 0;
    for (uint32_t draw = 0; draw < DIRECTION_DRAWS; draw++) {
        ref_fill_normal(in->dir, n, seed, STREAM_CHECK + (uint64_t)c->nin * DIRECTION_DRAWS + draw, in->scale);
        ksum k = {0};
        ksum_dot(&k, g, in->dir, n);
        gd = k.s + k.c;
        if (!(fabs(gd) < 0.1 * typical)) /* NaN stops here too: the checks report it */
            break;
    }
    if (gd < 0)
        for (size_t i = 0; i < n; i++)
            in->dir[i] = -in->dir[i];
    c->nin++;
    return true;
}

/* Coordinate u-quantile (in index order) of those whose |gradient| is at least COORD_MIN_SHARE of the
 * largest; u < 0: the largest itself, the coordinate that matters most. */
static size_t pick_coord(const fd_input *in, double u)
{
    size_t big = 0;
    for (size_t j = 1; j < in->n; j++)
        if (fabs(in->g[j]) > fabs(in->g[big]))
            big = j;
    if (u < 0)
        return big;
    double floor = COORD_MIN_SHARE * fabs(in->g[big]);
    size_t nbig = 0;
    for (size_t j = 0; j < in->n; j++)
        nbig += fabs(in->g[j]) >= floor;
    size_t want = (size_t)(u * (double)nbig);
    for (size_t j = 0; j < in->n; j++)
        if (fabs(in->g[j]) >= floor && want-- == 0)
            return j;
    return big; /* no coordinate passes (a NaN gradient): the direction checks report it */
}

bool ref_gradcheck_run(const ir_module *m, const ref_data *d, const ref_result *up, const ref_grad *g,
                       const ref_gradcheck_options *opt, ref_gradcheck *out, attnc_arena *a,
                       attnc_diags *diags)
{
    memset(out, 0, sizeof *out);
    double eps = opt && opt->eps > 0 ? opt->eps : REF_GRAD_EPS;
    double eps_coord = opt && opt->eps_coord > 0 ? opt->eps_coord : REF_GRAD_EPS_COORD;
    uint32_t coords = opt && opt->coords ? opt->coords : 2;
    uint64_t seed = opt ? opt->seed : 0;
    fd_ctx c = {.m = m, .up = up, .pd = *d, .diags = diags};
    c.in = attnc_arena_alloc(a, (m->ntensors + 3) * sizeof *c.in);
    c.pd.tensor = attnc_arena_alloc(a, (m->ntensors + 1) * sizeof *c.pd.tensor);
    if (!c.in || !c.pd.tensor)
        return ref_fail(diags, m->span, "out of memory");
    for (uint32_t i = 0; i < m->ntensors; i++) {
        c.pd.tensor[i] = d->tensor[i]; /* an empty tensor stays as it is */
        if (!add_input(&c, m->tensors[i].name, d->tensor[i], g->tensor[i], d->tensor_count[i], &c.pd.tensor[i],
                       seed, a))
            return false;
    }
    const ref_dims *dm = &d->dims;
    size_t nh = (size_t)dm->nseq * dm->Hs;
    if (!add_input(&c, "h0", d->h0, g->h0, nh * dm->K * dm->V, &c.pd.h0, seed, a) ||
        !add_input(&c, "z0", d->z0, g->z0, nh * dm->K, &c.pd.z0, seed, a) ||
        !add_input(&c, "m0", d->m0, g->m0, nh, &c.pd.m0, seed, a))
        return false;

    out->items = attnc_arena_alloc(a, (1 + (size_t)c.nin * (1 + coords)) * sizeof *out->items);
    double *u = ref_doubles(a, coords);
    if (!out->items || !u)
        return ref_fail(diags, m->span, "out of memory");
    out->ninputs = c.nin;
    ref_result *base = ref_result_new(d, a);
    if (!base || !ref_forward_recurrent(m, d, base, a, diags))
        return false;
    out->loss = ref_loss(base, up);

    if (!check_item(&c, ALL_INPUTS, WHOLE_INPUT, eps, "all inputs", out))
        return false;
    for (uint32_t k = 0; k < c.nin; k++) {
        const fd_input *in = &c.in[k];
        if (!check_item(&c, k, WHOLE_INPUT, eps, in->name, out))
            return false;
        ref_fill_uniform(u, coords, seed, STREAM_CHECK + 4096 + k);
        for (uint32_t i = 0; i < coords && i < in->n; i++) {
            size_t at = pick_coord(in, i == 0 ? -1.0 : u[i]);
            const char *what = attnc_arena_printf(a, "%s[%zu]", in->name, at);
            if (!what || !check_item(&c, k, at, eps_coord, what, out))
                return what ? false : ref_fail(diags, m->span, "out of memory");
        }
    }
    out->nforward = c.nforward;
    out->eps = eps;
    out->eps_coord = eps_coord;
    return true;
}
