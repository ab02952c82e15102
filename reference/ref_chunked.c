/* reference/ref_chunked.c: the forward pass in the chunkwise forms a kernel uses (algorithms.md 1.2, 2.x(b)).
 *
 * Chunks of C tokens restart at every sequence start; the last chunk of a sequence uses its real length
 * L.  Per chunk, with b_r = sum_{i<=r} a_i the chunk-local cumulative log gate (per channel for a vector
 * gate; a_i = g_h for a constant decay, 0 for none) and gamma_r = e^{b_r}:
 *
 *   effective values  Uh = [V | 1]                        additive update (the ones column is the
 *                                                          normaliser z, present for DENOM only)
 *                     Uh = U - W S_in                      delta update, through the WY/UT transform:
 *                          Akk_rj = beta_r sum_d k_rd k_jd e^{b_rd - b_jd}  (j < r; zero diagonal)
 *                          T = (I + Akk)^-1 by forward substitution (unit lower triangular)
 *                          W = T diag(beta) (K * gamma),  U = T diag(beta) V
 *   output            O_r = (q_r * gamma_r) S_in + sum_{j<=r} (sum_d q_rd k_jd e^{b_rd - b_jd}) Uh_j
 *   state             S_out = Diag(gamma_L) S_in + sum_j (k_j * e^{b_L - b_j}) Uh_j^T
 * Pairwise decays are always formed as e^{b_r - b_j} with j <= r (never e^{b_r} e^{-b_j}).
 *
 *   mLSTM (MAXFLOOR, 2.7b): D_rj = b_r - b_j + i_j,  m_r = max(b_r + m_in, max_{j<=r} D_rj) (per row),
 *     [num | den]_r = e^{b_r + m_in - m_r} [C | n]_in^T q_r + sum_j e^{D_rj - m_r} (q_r.k_j) [v_j | 1],
 *     h_r = num / (max(|den|, e^{-m_r}) + eps);  alpha_j = b_L - b_j + i_j,
 *     m_out = max(b_L + m_in, max_j alpha_j),  [C|n]_out = e^{b_L + m_in - m_out} [C|n]_in
 *                                                         + sum_j e^{alpha_j - m_out} k_j [v_j|1]^T.
 *   mask NONE: S_total = S_0 + sum over chunks of K_c^T [V_c | 1], then O = Q S_total per chunk.
 *   Epilogues: DENOM num / (den + eps); RMS and LAYER over the V channels of the numerator.
 *   Softmax part (2.8b): query tiles and key tiles of C tokens; a running max, sum and accumulator per
 *   row; key tiles entirely outside the causal band or window are skipped, partial ones are masked.
 *
 * The state is carried as K x Vw with Vw = V + 1 where a normaliser column exists.  Cost per chunk
 * O(L^2 (K + V) + L K V) (plus L^3 for the delta solve): O(T C (K + V) + T K V) per head overall.
 */
#include "ref_internal.h"

#include <math.h>
#include <string.h>

typedef struct chunk_ws {
    uint32_t C, K, V, Vw, glen;
    double *S;     /* K x Vw: the carried state (with z or n as column V) */
    double *b;     /* C x glen: chunk-local cumulative log gate */
    double *Uh;    /* C x Vw: effective values */
    double *Akk;   /* C x C */
    double *T;     /* C x C */
    double *W;     /* C x K */
    double *mrow;  /* C: mLSTM per-row stabiliser */
    double *o;     /* Vw: one output row */
    double *acc;   /* C x V: softmax accumulators */
    double *sm, *sl, *srow; /* C each: softmax running max, sum; one row of scores */
} chunk_ws;

static double gate_val(const ref_role *g, uint32_t t, uint32_t h)
{
    return ref_role_at(g, t, h)[0];
}

/* b[r][d] for the chunk [c0, c0 + L) of state head s. */
static void chunk_cumsum(const ref_data *d, chunk_ws *w, uint32_t s, uint32_t c0, uint32_t L)
{
    const ref_role *g = &d->roles.gate;
    uint32_t gh = g->data ? ir_head_map(s, d->dims.Hs, g->heads) : 0;
    for (uint32_t r = 0; r < L; r++)
        for (uint32_t c = 0; c < w->glen; c++) {
            double a = g->data ? ref_role_at(g, c0 + r, gh)[g->len == 1 ? 0 : c] : 0.0;
            w->b[(size_t)r * w->glen + c] = (r ? w->b[(size_t)(r - 1) * w->glen + c] : 0.0) + a;
        }
}

/* sum_d x_d y_d e^{b_rd - b_jd} (scalar gate: (x.y) e^{b_r - b_j}); requires j <= r. */
static double decayed_dot(const chunk_ws *w, const double *x, const double *y, uint32_t r, uint32_t j)
{
    const double *br = w->b + (size_t)r * w->glen, *bj = w->b + (size_t)j * w->glen;
    double s = 0;
    if (w->glen == 1) {
        for (uint32_t d = 0; d < w->K; d++)
            s += x[d] * y[d];
        return s * exp(br[0] - bj[0]);
    }
    for (uint32_t d = 0; d < w->K; d++)
        s += x[d] * y[d] * exp(br[d] - bj[d]);
    return s;
}

static double b_at(const chunk_ws *w, uint32_t r, uint32_t d)
{
    return w->b[(size_t)r * w->glen + (w->glen == 1 ? 0 : d)];
}

/* Epilogue of one linear output row: o has Vw entries (numerator, then the denominator column). */
static void epilogue(const ir_linear *l, const chunk_ws *w, const double *o, double mr, double *dst)
{
    uint32_t V = w->V;
    if (l->norm == IR_NORM_DENOM || l->norm == IR_NORM_MAXFLOOR) {
        double den = l->norm == IR_NORM_DENOM ? o[V] + l->eps : fmax(fabs(o[V]), exp(-mr)) + l->eps;
        for (uint32_t c = 0; c < V; c++)
            dst[c] = o[c] / den;
    } else if (l->norm == IR_NORM_RMS || l->norm == IR_NORM_LAYER) {
        double mean, scale;
        ref_row_norm(o, V, l->norm == IR_NORM_LAYER, l->eps, &mean, &scale);
        for (uint32_t c = 0; c < V; c++)
            dst[c] = (o[c] - mean) * scale;
    } else {
        memcpy(dst, o, V * sizeof *o);
    }
}

/* Effective values of an additive chunk: [v_j | 1]. */
static void values_additive(const ref_data *d, chunk_ws *w, uint32_t s, uint32_t c0, uint32_t L)
{
    const ref_role *v = &d->roles.v;
    uint32_t vh = ir_head_map(s, d->dims.Hs, v->heads);
    for (uint32_t j = 0; j < L; j++) {
        memcpy(w->Uh + (size_t)j * w->Vw, ref_role_at(v, c0 + j, vh), w->V * sizeof(double));
        if (w->Vw > w->V)
            w->Uh[(size_t)j * w->Vw + w->V] = 1.0;
    }
}

/* Effective values of a delta chunk: Uh = U - W S_in through the UT transform. */
static void values_delta(const ref_data *d, chunk_ws *w, uint32_t s, uint32_t c0, uint32_t L)
{
    const ref_roles *ro = &d->roles;
    uint32_t Hs = d->dims.Hs, K = w->K, V = w->V, C = w->C;
    uint32_t kh = ir_head_map(s, Hs, ro->k.heads), vh = ir_head_map(s, Hs, ro->v.heads);
    uint32_t bh = ir_head_map(s, Hs, ro->beta.heads);
    /* Akk: strictly lower, row r scaled by beta_r. */
    for (uint32_t r = 0; r < L; r++) {
        const double *kr = ref_role_at(&ro->k, c0 + r, kh);
        double br = gate_val(&ro->beta, c0 + r, bh);
        for (uint32_t j = 0; j < r; j++)
            w->Akk[(size_t)r * C + j] = br * decayed_dot(w, kr, ref_role_at(&ro->k, c0 + j, kh), r, j);
    }
    /* T = (I + Akk)^-1, row by row: T_r = e_r - sum_{j<r} Akk_rj T_j. */
    for (uint32_t r = 0; r < L; r++) {
        double *Tr = w->T + (size_t)r * C;
        memset(Tr, 0, C * sizeof *Tr);
        Tr[r] = 1.0;
        for (uint32_t j = 0; j < r; j++) {
            double a = w->Akk[(size_t)r * C + j];
            const double *Tj = w->T + (size_t)j * C;
            for (uint32_t c = 0; c <= j; c++)
                Tr[c] -= a * Tj[c];
        }
    }
    /* W = T diag(beta) (K * gamma), U = T diag(beta) V; then Uh = U - W S_in. */
    for (uint32_t r = 0; r < L; r++) {
        double *Wr = w->W + (size_t)r * K, *Ur = w->Uh + (size_t)r * w->Vw;
        memset(Wr, 0, K * sizeof *Wr);
        memset(Ur, 0, V * sizeof *Ur);
        for (uint32_t j = 0; j <= r; j++) {
            double tb = w->T[(size_t)r * C + j] * gate_val(&ro->beta, c0 + j, bh);
            const double *kj = ref_role_at(&ro->k, c0 + j, kh), *vj = ref_role_at(&ro->v, c0 + j, vh);
            for (uint32_t dd = 0; dd < K; dd++)
                Wr[dd] += tb * kj[dd] * exp(b_at(w, j, dd));
            for (uint32_t c = 0; c < V; c++)
                Ur[c] += tb * vj[c];
        }
        for (uint32_t dd = 0; dd < K; dd++) {
            const double *Sd = w->S + (size_t)dd * w->Vw;
            for (uint32_t c = 0; c < V; c++)
                Ur[c] -= Wr[dd] * Sd[c];
        }
    }
}

/* Outputs of every head reading state head s, for the chunk (additive and delta forms). */
static void chunk_outputs(const ir_module *m, const ref_data *d, chunk_ws *w, uint32_t s, uint32_t c0,
                          uint32_t L, ref_result *res)
{
    const ref_dims *dm = &d->dims;
    const ref_roles *ro = &d->roles;
    uint32_t K = w->K, Vw = w->Vw, G = dm->Hout / dm->Hs;
    uint32_t kh = ir_head_map(s, dm->Hs, ro->k.heads);
    for (uint32_t h = s * G; h < (s + 1) * G; h++) {
        uint32_t qh = ir_head_map(h, dm->Hout, dm->Hq);
        for (uint32_t r = 0; r < L; r++) {
            const double *q = ref_role_at(&ro->q, c0 + r, qh);
            memset(w->o, 0, Vw * sizeof *w->o);
            for (uint32_t dd = 0; dd < K; dd++) { /* inter: (q * gamma_r) S_in */
                double qg = q[dd] * exp(b_at(w, r, dd));
                const double *Sd = w->S + (size_t)dd * Vw;
                for (uint32_t c = 0; c < Vw; c++)
                    w->o[c] += qg * Sd[c];
            }
            for (uint32_t j = 0; j <= r; j++) { /* intra: masked decayed scores times Uh */
                double p = decayed_dot(w, q, ref_role_at(&ro->k, c0 + j, kh), r, j);
                const double *u = w->Uh + (size_t)j * Vw;
                for (uint32_t c = 0; c < Vw; c++)
                    w->o[c] += p * u[c];
            }
            epilogue(&m->linear, w, w->o, 0.0, res->out + ((size_t)(c0 + r) * dm->Hout + h) * dm->V);
        }
    }
}

/* S_out = Diag(gamma_L) S_in + sum_j (k_j * e^{b_L - b_j}) Uh_j^T. */
static void chunk_state(const ref_data *d, chunk_ws *w, uint32_t s, uint32_t c0, uint32_t L)
{
    const ref_role *k = &d->roles.k;
    uint32_t kh = ir_head_map(s, d->dims.Hs, k->heads), Vw = w->Vw;
    for (uint32_t dd = 0; dd < w->K; dd++) {
        double *Sd = w->S + (size_t)dd * Vw;
        double bL = b_at(w, L - 1, dd), gL = exp(bL);
        for (uint32_t c = 0; c < Vw; c++)
            Sd[c] *= gL;
        for (uint32_t j = 0; j < L; j++) {
            double f = ref_role_at(k, c0 + j, kh)[dd] * exp(bL - b_at(w, j, dd));
            const double *u = w->Uh + (size_t)j * Vw;
            for (uint32_t c = 0; c < Vw; c++)
                Sd[c] += f * u[c];
        }
    }
}

/* The mLSTM chunk: per-row stabilisers, outputs, then the stabilised state and m. */
static void chunk_mlstm(const ir_module *m, const ref_data *d, chunk_ws *w, double *mstate, uint32_t s,
                        uint32_t c0, uint32_t L, ref_result *res)
{
    const ref_dims *dm = &d->dims;
    const ref_roles *ro = &d->roles;
    uint32_t K = w->K, Vw = w->Vw, G = dm->Hout / dm->Hs;
    uint32_t kh = ir_head_map(s, dm->Hs, ro->k.heads);
    uint32_t ih = ro->igate.data ? ir_head_map(s, dm->Hs, ro->igate.heads) : 0;
    double m_in = *mstate;
#define IG(j) (ro->igate.data ? gate_val(&ro->igate, c0 + (j), ih) : 0.0)
    for (uint32_t r = 0; r < L; r++) {
        double mr = w->b[r] + m_in;
        for (uint32_t j = 0; j <= r; j++)
            mr = fmax(mr, w->b[r] - w->b[j] + IG(j));
        w->mrow[r] = mr;
    }
    for (uint32_t h = s * G; h < (s + 1) * G; h++) {
        uint32_t qh = ir_head_map(h, dm->Hout, dm->Hq);
        for (uint32_t r = 0; r < L; r++) {
            const double *q = ref_role_at(&ro->q, c0 + r, qh);
            double mr = w->mrow[r], fi = exp(w->b[r] + m_in - mr);
            memset(w->o, 0, Vw * sizeof *w->o);
            for (uint32_t dd = 0; dd < K; dd++) {
                const double *Sd = w->S + (size_t)dd * Vw;
                for (uint32_t c = 0; c < Vw; c++)
                    w->o[c] += fi * q[dd] * Sd[c];
            }
            for (uint32_t j = 0; j <= r; j++) {
                const double *kj = ref_role_at(&ro->k, c0 + j, kh);
                double qk = 0;
                for (uint32_t dd = 0; dd < K; dd++)
                    qk += q[dd] * kj[dd];
                double p = exp(w->b[r] - w->b[j] + IG(j) - mr) * qk;
                const double *u = w->Uh + (size_t)j * Vw;
                for (uint32_t c = 0; c < Vw; c++)
                    w->o[c] += p * u[c];
            }
            epilogue(&m->linear, w, w->o, mr, res->out + ((size_t)(c0 + r) * dm->Hout + h) * dm->V);
        }
    }
    double bL = w->b[L - 1], m_out = bL + m_in;
    for (uint32_t j = 0; j < L; j++)
        m_out = fmax(m_out, bL - w->b[j] + IG(j));
    double fs = exp(bL + m_in - m_out);
    for (uint32_t dd = 0; dd < K; dd++) {
        double *Sd = w->S + (size_t)dd * Vw;
        for (uint32_t c = 0; c < Vw; c++)
            Sd[c] *= fs;
        for (uint32_t j = 0; j < L; j++) {
            double f = exp(bL - w->b[j] + IG(j) - m_out) * ref_role_at(&ro->k, c0 + j, kh)[dd];
            const double *u = w->Uh + (size_t)j * Vw;
            for (uint32_t c = 0; c < Vw; c++)
                Sd[c] += f * u[c];
        }
    }
#undef IG
    *mstate = m_out;
}

/* Bidirectional: S_total = S_0 + sum of chunk states, then every chunk reads S_total. */
static void sequence_bidirectional(const ir_module *m, const ref_data *d, chunk_ws *w, uint32_t s,
                                   uint32_t bos, uint32_t eos, ref_result *res)
{
    const ref_role *k = &d->roles.k;
    uint32_t kh = ir_head_map(s, d->dims.Hs, k->heads), Vw = w->Vw;
    for (uint32_t c0 = bos; c0 < eos; c0 += w->C) {
        uint32_t L = eos - c0 < w->C ? eos - c0 : w->C;
        values_additive(d, w, s, c0, L);
        for (uint32_t dd = 0; dd < w->K; dd++) {
            /* The chunk's own state K^T U (row dd) from zero, then added: summed in another order than
             * the recurrent token-by-token accumulation, so the two evaluations check each other. */
            double *local = w->o;
            memset(local, 0, Vw * sizeof *local);
            for (uint32_t j = 0; j < L; j++) {
                double kj = ref_role_at(k, c0 + j, kh)[dd];
                for (uint32_t c = 0; c < Vw; c++)
                    local[c] += kj * w->Uh[(size_t)j * Vw + c];
            }
            double *Sd = w->S + (size_t)dd * Vw;
            for (uint32_t c = 0; c < Vw; c++)
                Sd[c] += local[c];
        }
    }
    const ref_dims *dm = &d->dims;
    uint32_t G = dm->Hout / dm->Hs;
    for (uint32_t c0 = bos; c0 < eos; c0 += w->C) {
        uint32_t L = eos - c0 < w->C ? eos - c0 : w->C;
        for (uint32_t h = s * G; h < (s + 1) * G; h++)
            for (uint32_t r = 0; r < L; r++) {
                const double *q = ref_role_at(&d->roles.q, c0 + r, ir_head_map(h, dm->Hout, dm->Hq));
                memset(w->o, 0, Vw * sizeof *w->o);
                for (uint32_t dd = 0; dd < w->K; dd++)
                    for (uint32_t c = 0; c < Vw; c++)
                        w->o[c] += q[dd] * w->S[(size_t)dd * Vw + c];
                epilogue(&m->linear, w, w->o, 0.0, res->out + ((size_t)(c0 + r) * dm->Hout + h) * dm->V);
            }
    }
}

static void linear_chunked(const ir_module *m, const ref_data *d, chunk_ws *w, ref_result *res)
{
    const ref_dims *dm = &d->dims;
    const ir_linear *l = &m->linear;
    uint32_t K = w->K, V = w->V, Vw = w->Vw;
    for (uint32_t n = 0; n < dm->nseq; n++) {
        uint32_t bos = d->cu_seqlens[n], eos = d->cu_seqlens[n + 1];
        for (uint32_t s = 0; s < dm->Hs; s++) {
            size_t sh = (size_t)n * dm->Hs + s;
            memset(w->S, 0, (size_t)K * Vw * sizeof *w->S);
            for (uint32_t dd = 0; dd < K; dd++) {
                if (d->h0)
                    memcpy(w->S + (size_t)dd * Vw, d->h0 + (sh * K + dd) * V, V * sizeof(double));
                if (dm->has_z && d->z0)
                    w->S[(size_t)dd * Vw + V] = d->z0[sh * K + dd];
            }
            double mstate = d->m0 ? d->m0[sh] : 0.0;
            if (m->mask == IR_MASK_NONE) {
                sequence_bidirectional(m, d, w, s, bos, eos, res);
            } else {
                for (uint32_t c0 = bos; c0 < eos; c0 += w->C) {
                    uint32_t L = eos - c0 < w->C ? eos - c0 : w->C;
                    chunk_cumsum(d, w, s, c0, L);
                    if (l->norm == IR_NORM_MAXFLOOR) {
                        values_additive(d, w, s, c0, L);
                        chunk_mlstm(m, d, w, &mstate, s, c0, L, res);
                        continue;
                    }
                    if (l->update == IR_UPDATE_DELTA)
                        values_delta(d, w, s, c0, L);
                    else
                        values_additive(d, w, s, c0, L);
                    chunk_outputs(m, d, w, s, c0, L, res);
                    chunk_state(d, w, s, c0, L);
                }
            }
            for (uint32_t dd = 0; dd < K; dd++) {
                memcpy(res->hT + (sh * K + dd) * V, w->S + (size_t)dd * Vw, V * sizeof(double));
                if (dm->has_z)
                    res->zT[sh * K + dd] = w->S[(size_t)dd * Vw + V];
            }
            if (dm->has_m)
                res->mT[sh] = mstate;
        }
    }
}

/* Online softmax over key tiles for query tile [qs, qe) of head h; adds acc / l to the output. */
static void softmax_tile(const ir_module *m, const ref_data *d, chunk_ws *w, uint32_t h, uint32_t bos,
                         uint32_t eos, uint32_t qs, uint32_t qe, ref_result *res)
{
    const ref_dims *dm = &d->dims;
    const ref_roles *ro = &d->roles;
    uint32_t V = dm->V, Hout = dm->Hout, win = m->softmax.window;
    bool causal = m->mask == IR_MASK_CAUSAL;
    uint32_t qh = ir_head_map(h, Hout, ro->sq.heads), kh = ir_head_map(h, Hout, ro->sk.heads);
    uint32_t vh = ir_head_map(h, Hout, ro->sv.heads);
    for (uint32_t r = 0; r < qe - qs; r++) {
        w->sm[r] = -INFINITY;
        w->sl[r] = 0;
    }
    memset(w->acc, 0, (size_t)(qe - qs) * V * sizeof *w->acc);
    for (uint32_t ks = bos; ks < eos; ks += w->C) {
        uint32_t ke = eos - ks < w->C ? eos : ks + w->C;
        if (causal && ks > qe - 1)
            break; /* this and every later tile lie above the diagonal */
        if (causal && win && ke + win <= qs + 1)
            continue; /* the whole tile lies left of the first row's window: never read */
        for (uint32_t i = qs; i < qe; i++) {
            uint32_t r = i - qs;
            const double *q = ref_role_at(&ro->sq, i, qh);
            double mt = -INFINITY;
            for (uint32_t j = ks; j < ke; j++) {
                bool ok = !causal || (j <= i && (!win || j + win > i));
                double sc = -INFINITY;
                if (ok) {
                    const double *k = ref_role_at(&ro->sk, j, kh);
                    sc = 0;
                    for (uint32_t c = 0; c < dm->sK; c++)
                        sc += q[c] * k[c];
                }
                w->srow[j - ks] = sc;
                mt = fmax(mt, sc);
            }
            if (mt == -INFINITY)
                continue; /* row fully masked in this tile */
            double m_new = fmax(w->sm[r], mt);
            double alpha = w->sm[r] == -INFINITY ? 0.0 : exp(w->sm[r] - m_new);
            double *acc = w->acc + (size_t)r * V;
            for (uint32_t c = 0; c < V; c++)
                acc[c] *= alpha;
            w->sl[r] *= alpha;
            for (uint32_t j = ks; j < ke; j++) {
                if (w->srow[j - ks] == -INFINITY)
                    continue;
                double p = exp(w->srow[j - ks] - m_new);
                w->sl[r] += p;
                const double *v = ref_role_at(&ro->sv, j, vh);
                for (uint32_t c = 0; c < V; c++)
                    acc[c] += p * v[c];
            }
            w->sm[r] = m_new;
        }
    }
    for (uint32_t i = qs; i < qe; i++) {
        uint32_t r = i - qs;
        double *o = res->out + ((size_t)i * Hout + h) * V;
        for (uint32_t c = 0; c < V; c++)
            o[c] += w->acc[(size_t)r * V + c] / w->sl[r];
    }
}

bool ref_forward_chunked(const ir_module *m, const ref_data *d, uint32_t chunk, ref_result *res,
                         attnc_arena *a, attnc_diags *diags)
{
    if (!ref_result_fits(res, d))
        return ref_fail(diags, m->span, "the result does not have the data's sizes");
    const ref_dims *dm = &d->dims;
    uint32_t C = chunk ? chunk : m->chunk ? m->chunk : 64;
    if (C > (1u << 16))
        return ref_fail(diags, m->span, "chunk size %u is too large", C);
    chunk_ws w = {0};
    w.C = C;
    w.K = dm->K;
    w.V = dm->V;
    w.Vw = dm->V + (dm->has_z ? 1 : 0);
    w.glen = d->roles.gate.data ? d->roles.gate.len : 1;
    size_t CC = (size_t)C * C;
    w.o = ref_doubles(a, w.Vw);
    if (!w.o)
        return ref_fail(diags, m->span, "out of memory");
    memset(res->out, 0, (size_t)dm->total * dm->Hout * dm->V * sizeof *res->out);
    if (dm->linear) {
        w.S = ref_doubles(a, (size_t)w.K * w.Vw);
        w.b = ref_doubles(a, (size_t)C * w.glen);
        w.Uh = ref_doubles(a, (size_t)C * w.Vw);
        w.mrow = ref_doubles(a, C);
        if (m->linear.update == IR_UPDATE_DELTA) {
            w.Akk = ref_doubles(a, CC);
            w.T = ref_doubles(a, CC);
            w.W = ref_doubles(a, (size_t)C * w.K);
            if (!w.Akk || !w.T || !w.W)
                return ref_fail(diags, m->span, "out of memory");
        }
        if (!w.S || !w.b || !w.Uh || !w.mrow)
            return ref_fail(diags, m->span, "out of memory");
        linear_chunked(m, d, &w, res);
    }
    if (dm->softmax) {
        w.acc = ref_doubles(a, (size_t)C * dm->V);
        w.sm = ref_doubles(a, C);
        w.sl = ref_doubles(a, C);
        w.srow = ref_doubles(a, C);
        if (!w.acc || !w.sm || !w.sl || !w.srow)
            return ref_fail(diags, m->span, "out of memory");
        for (uint32_t n = 0; n < dm->nseq; n++) {
            uint32_t bos = d->cu_seqlens[n], eos = d->cu_seqlens[n + 1];
            for (uint32_t h = 0; h < dm->Hout; h++)
                for (uint32_t qs = bos; qs < eos; qs += C)
                    softmax_tile(m, d, &w, h, bos, eos, qs, eos - qs < C ? eos : qs + C, res);
        }
    }
    return true;
}
