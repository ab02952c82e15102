/* reference/ref_chunked_grad.c: the backward of the linear part in the chunkwise form a kernel uses,
 * in float64, checked against the recurrent backward of ref_grad.c (ref_backward_chunked).
 *
 * It is the derivation the GPU backward follows, written where it can be tested to 1e-12: the adjoint of
 * ref_chunked.c's forms, chunk by chunk in reverse, for causal linear parts with an additive or a delta
 * update, any transition (none, constant, scalar, per-channel), and no normaliser, a denominator (a state
 * column of ones: the values extended by 1, d(z . q) its output gradient), RMS or LayerNorm (dout turned
 * into the gradient of the pre-norm row by ref_norm_backward, shared with the recurrent backward).  mLSTM
 * (input gate, stabiliser, max floor) and the bidirectional mask (no decay) have paths of their own
 * (mlstm_backward, bidirectional_backward).  A softmax part is differentiated per query by ref_grad.c.
 * Per chunk of L rows with
 * b the chunk-local cumulative log gate (per channel; a scalar gate broadcasts), S the incoming state:
 *
 *   forward   Kg = K * e^{b},  Kd = K * e^{b_L - b},  Qg = Q * e^{b},  P_rj = sum_d q_rd k_jd e^{b_rd - b_jd} (j <= r)
 *             delta:    A_rj = beta_r sum_d k_rd k_jd e^{b_rd - b_jd} (j < r),  T = (I + A)^-1,
 *                       W = T diag(beta) Kg,  U = T diag(beta) V,  Uh = U - W S
 *             additive: Uh = V
 *             O = Qg S + P Uh  (each output head of the state head, with its own Q and dO),
 *             S' = Diag(e^{b_L}) S + Kd^T Uh
 *   backward  (dS' from the next chunk, dhT at the last)
 *             dUh = Kd dS' + sum_h P^T dO,   dKd = Uh dS'^T,   dS = Diag(e^{b_L}) dS' + sum_h Qg^T dO,
 *             dQg = dO S^T,   dP = dO Uh^T (j <= r)
 *             delta:    dU = dUh,  dW = -dUh S^T,  dS -= W^T dUh,
 *                       dT = dU (beta V)^T + dW (beta Kg)^T,  d(beta V) = T^T dU,  d(beta Kg) = T^T dW,
 *                       dA = -T^T dT T^T (strictly lower part)
 *             additive: dV = dUh
 *   gates     every factor is e^{x} with x a difference of b's; its adjoint adds factor * (its
 *             coefficient's adjoint) to db at the + end and subtracts it at the - end (the log-weight
 *             rule, algorithms.md 1.4); then da_t = sum_{r >= t} db_r inside the chunk (b is chunk-local).
 *
 * The chunk's incoming states come from a forward pass over the chunks with the same formulas, stored
 * per chunk (O(T/C K V) doubles for the longest sequence); everything else is recomputed in the reverse
 * sweep.  Cost per chunk O(L^2 (K + V) + L K V + L^3).
 */
#include "ref_internal.h"

#include <math.h>
#include <string.h>

typedef struct cg_ws {
    uint32_t C, K, V;   /* V: the state's columns, the values' Vv and a ones column where there is a denominator */
    uint32_t Vv;
    double *xr, *dO, *prow;                                    /* one readout row, its adjoint, one row of P */
    double *b, *Kg, *Kd, *A, *T, *W, *U, *Uh, *Sn;            /* one chunk's forward quantities */
    double *dUh, *dW, *dT, *X, *dKg, *dKd, *db, *dS;           /* and their adjoints */
    double *states;                                            /* incoming state of every chunk */
    double *mstates, *mrow, *dmr;                              /* mLSTM: incoming m per chunk; row maxima, adjoints */
    double *mb, *mig, *mdb, *mdi;                              /* mLSTM: b, i and their adjoints (C each) */
    int32_t *mwin;                                             /* mLSTM: each row's winning term (-1: the old state) */
} cg_ws;

/* Column x of value row v extended by the denominator's column of ones. */
static double vext(const double *v, uint32_t Vv, uint32_t x)
{
    return x < Vv ? v[x] : 1.0;
}

/* w->dO = the gradient of the readout row w->xr (numerator, then z . q where a denominator exists) from
 * the output's gradient dy, through the normaliser; mval and *dm: mLSTM's stabiliser and its adjoint. */
static void readout_adjoint(const ir_linear *l, cg_ws *w, const double *dy, double mval, double *dm)
{
    double dzq;
    ref_norm_backward(l, w->Vv, w->xr, w->V > w->Vv ? w->xr[w->Vv] : 0.0, mval, dy, w->dO, &dzq, dm);
    if (w->V > w->Vv)
        w->dO[w->Vv] = dzq;
}

/* The chunk [c0, c0 + L) of state head s: b, Kg, Kd and (delta) A, T, W, U; then Uh from S. */
static void chunk_forward(const ir_module *m, const ref_data *d, cg_ws *w, uint32_t s, uint32_t c0, uint32_t L,
                          const double *S)
{
    const ref_roles *ro = &d->roles;
    const ref_dims *dm = &d->dims;
    uint32_t K = w->K, V = w->V, Hs = dm->Hs;
    uint32_t kh = ir_head_map(s, Hs, ro->k.heads), vh = ir_head_map(s, Hs, ro->v.heads);
    uint32_t gh = ro->gate.data ? ir_head_map(s, Hs, ro->gate.heads) : 0;
    bool delta = m->linear.update == IR_UPDATE_DELTA;
    for (uint32_t r = 0; r < L; r++)
        for (uint32_t c = 0; c < K; c++)
            w->b[r * K + c] = (r ? w->b[(r - 1) * K + c] : 0.0) + (ro->gate.data ? ref_gate_at(&ro->gate, c0 + r, gh, c) : 0.0);
    const double *bL = w->b + (size_t)(L - 1) * K;
    for (uint32_t r = 0; r < L; r++) {
        const double *k = ref_role_at(&ro->k, c0 + r, kh);
        for (uint32_t c = 0; c < K; c++) {
            w->Kg[r * K + c] = k[c] * exp(w->b[r * K + c]);
            w->Kd[r * K + c] = k[c] * exp(bL[c] - w->b[r * K + c]);
        }
    }
    if (!delta) {
        for (uint32_t r = 0; r < L; r++)
            for (uint32_t x = 0; x < V; x++)
                w->Uh[r * V + x] = vext(ref_role_at(&ro->v, c0 + r, vh), w->Vv, x);
        return;
    }
    uint32_t bh = ir_head_map(s, Hs, ro->beta.heads);
    for (uint32_t r = 0; r < L; r++) {
        const double *kr = ref_role_at(&ro->k, c0 + r, kh);
        double beta = ref_role_at(&ro->beta, c0 + r, bh)[0];
        for (uint32_t j = 0; j < L; j++) {
            double e = 0;
            if (j < r) {
                const double *kj = ref_role_at(&ro->k, c0 + j, kh);
                for (uint32_t c = 0; c < K; c++)
                    e += kr[c] * kj[c] * exp(w->b[r * K + c] - w->b[j * K + c]);
            }
            w->A[r * L + j] = beta * e;
        }
    }
    /* T = (I + A)^-1, unit lower triangular: row r of (I + A) T = I gives T_rj = [r == j] - sum_{m<r} A_rm T_mj */
    for (uint32_t r = 0; r < L; r++)
        for (uint32_t j = 0; j < L; j++) {
            double t = r == j ? 1.0 : 0.0;
            for (uint32_t q = j; q < r; q++)
                t -= w->A[r * L + q] * w->T[q * L + j];
            w->T[r * L + j] = j <= r ? t : 0.0;
        }
    for (uint32_t r = 0; r < L; r++) {
        for (uint32_t c = 0; c < K; c++)
            w->W[r * K + c] = 0;
        for (uint32_t c = 0; c < V; c++)
            w->U[r * V + c] = 0;
        for (uint32_t j = 0; j <= r; j++) {
            double tb = w->T[r * L + j] * ref_role_at(&ro->beta, c0 + j, bh)[0];
            const double *v = ref_role_at(&ro->v, c0 + j, vh);
            for (uint32_t c = 0; c < K; c++)
                w->W[r * K + c] += tb * w->Kg[j * K + c];
            for (uint32_t c = 0; c < V; c++)
                w->U[r * V + c] += tb * vext(v, w->Vv, c);
        }
        for (uint32_t c = 0; c < V; c++) {
            double ws = 0;
            for (uint32_t q = 0; q < K; q++)
                ws += w->W[r * K + q] * S[(size_t)q * V + c];
            w->Uh[r * V + c] = w->U[r * V + c] - ws;
        }
    }
}

/* S' = Diag(e^{b_L}) S + Kd^T Uh, into w->Sn. */
static void chunk_state(cg_ws *w, uint32_t L, const double *S)
{
    uint32_t K = w->K, V = w->V;
    const double *bL = w->b + (size_t)(L - 1) * K;
    for (uint32_t c = 0; c < K; c++)
        for (uint32_t x = 0; x < V; x++) {
            double acc = exp(bL[c]) * S[(size_t)c * V + x];
            for (uint32_t r = 0; r < L; r++)
                acc += w->Kd[r * K + c] * w->Uh[r * V + x];
            w->Sn[(size_t)c * V + x] = acc;
        }
}

/* The pair terms sum_d x_rd y_jd e^{b_rd - b_jd} with adjoint g (one score P_rj or one A_rj / beta_r):
 * adds g e^{..} y_jd to dx_r, g e^{..} x_rd to dy_j, and the log-weight terms to db. */
static void pair_backward(cg_ws *w, uint32_t r, uint32_t j, double g, const double *x, const double *y, double *dx,
                          double *dy)
{
    uint32_t K = w->K;
    for (uint32_t c = 0; c < K; c++) {
        double e = exp(w->b[r * K + c] - w->b[j * K + c]), t = g * x[c] * y[c] * e;
        dx[c] += g * e * y[c];
        dy[c] += g * e * x[c];
        w->db[r * K + c] += t;
        w->db[j * K + c] -= t;
    }
}

/* The reverse sweep of one chunk: w->dS holds dS' on entry and dS on return. */
static void chunk_backward(const ir_module *m, const ref_data *d, const ref_result *up, const ref_roles *gr,
                           cg_ws *w, uint32_t s, uint32_t c0, uint32_t L, const double *S)
{
    const ref_roles *ro = &d->roles;
    const ref_dims *dm = &d->dims;
    uint32_t K = w->K, V = w->V, Hs = dm->Hs, G = dm->Hout / Hs;
    uint32_t kh = ir_head_map(s, Hs, ro->k.heads), vh = ir_head_map(s, Hs, ro->v.heads);
    bool delta = m->linear.update == IR_UPDATE_DELTA;
    const double *bL = w->b + (size_t)(L - 1) * K;
    double *dS = w->dS;
    memset(w->db, 0, (size_t)L * K * sizeof *w->db);
    memset(w->dKg, 0, (size_t)L * K * sizeof *w->dKg);

    /* S' = Diag(e^{b_L}) S + Kd^T Uh */
    for (uint32_t r = 0; r < L; r++) {
        for (uint32_t x = 0; x < V; x++) {
            double acc = 0;
            for (uint32_t c = 0; c < K; c++)
                acc += w->Kd[r * K + c] * dS[(size_t)c * V + x];
            w->dUh[r * V + x] = acc;
        }
        for (uint32_t c = 0; c < K; c++) {
            double acc = 0;
            for (uint32_t x = 0; x < V; x++)
                acc += w->Uh[r * V + x] * dS[(size_t)c * V + x];
            w->dKd[r * K + c] = acc;
        }
    }
    for (uint32_t c = 0; c < K; c++) {
        double f = exp(bL[c]), ss = 0;
        for (uint32_t x = 0; x < V; x++) {
            ss += dS[(size_t)c * V + x] * S[(size_t)c * V + x];
            dS[(size_t)c * V + x] *= f;
        }
        w->db[(L - 1) * K + c] += f * ss;
    }

    /* O = Qg S + P Uh, for every output head reading this state; then the normaliser of each row */
    for (uint32_t h = s * G; h < (s + 1) * G; h++) {
        uint32_t qh = ir_head_map(h, dm->Hout, dm->Hq);
        for (uint32_t r = 0; r < L; r++) {
            const double *q = ref_role_at(&ro->q, c0 + r, qh), *dy = up->out + ((size_t)(c0 + r) * dm->Hout + h) * w->Vv;
            double *dq = ref_grad_at(&gr->q, c0 + r, qh), *dO = w->dO, dm_unused = 0;
            for (uint32_t j = 0; j <= r; j++) {
                const double *k = ref_role_at(&ro->k, c0 + j, kh);
                double p = 0;
                for (uint32_t c = 0; c < K; c++)
                    p += q[c] * k[c] * exp(w->b[r * K + c] - w->b[j * K + c]);
                w->prow[j] = p;
            }
            for (uint32_t x = 0; x < V; x++) {
                double acc = 0;
                for (uint32_t c = 0; c < K; c++)
                    acc += q[c] * exp(w->b[r * K + c]) * S[(size_t)c * V + x];
                for (uint32_t j = 0; j <= r; j++)
                    acc += w->prow[j] * w->Uh[j * V + x];
                w->xr[x] = acc;
            }
            readout_adjoint(&m->linear, w, dy, 0.0, &dm_unused);
            for (uint32_t c = 0; c < K; c++) {
                double acc = 0, e = exp(w->b[r * K + c]);
                for (uint32_t x = 0; x < V; x++) {
                    acc += dO[x] * S[(size_t)c * V + x];
                    dS[(size_t)c * V + x] += q[c] * e * dO[x];
                }
                dq[c] += acc * e;
                w->db[r * K + c] += acc * q[c] * e;
            }
            for (uint32_t j = 0; j <= r; j++) {
                const double *k = ref_role_at(&ro->k, c0 + j, kh);
                double p = w->prow[j], dp = 0;
                for (uint32_t x = 0; x < V; x++) {
                    dp += dO[x] * w->Uh[j * V + x];
                    w->dUh[j * V + x] += p * dO[x];
                }
                pair_backward(w, r, j, dp, q, k, dq, ref_grad_at(&gr->k, c0 + j, kh));
            }
        }
    }

    if (!delta) {
        for (uint32_t r = 0; r < L; r++) {
            double *dv = ref_grad_at(&gr->v, c0 + r, vh);
            for (uint32_t x = 0; x < w->Vv; x++)
                dv[x] += w->dUh[r * V + x];
        }
    } else {
        uint32_t bh = ir_head_map(s, Hs, ro->beta.heads);
        /* Uh = U - W S */
        for (uint32_t r = 0; r < L; r++)
            for (uint32_t c = 0; c < K; c++) {
                double acc = 0;
                for (uint32_t x = 0; x < V; x++) {
                    acc += w->dUh[r * V + x] * S[(size_t)c * V + x];
                    dS[(size_t)c * V + x] -= w->W[r * K + c] * w->dUh[r * V + x];
                }
                w->dW[r * K + c] = -acc;
            }
        /* U = T (beta V), W = T (beta Kg): dT, and the adjoints of beta V and beta Kg through T^T */
        for (uint32_t r = 0; r < L; r++)
            for (uint32_t q = 0; q < L; q++) {
                double acc = 0;
                if (q <= r) {
                    double beta = ref_role_at(&ro->beta, c0 + q, bh)[0];
                    const double *v = ref_role_at(&ro->v, c0 + q, vh);
                    for (uint32_t x = 0; x < V; x++)
                        acc += w->dUh[r * V + x] * beta * vext(v, w->Vv, x);
                    for (uint32_t c = 0; c < K; c++)
                        acc += w->dW[r * K + c] * beta * w->Kg[q * K + c];
                }
                w->dT[r * L + q] = acc;
            }
        for (uint32_t q = 0; q < L; q++) {
            double beta = ref_role_at(&ro->beta, c0 + q, bh)[0], dbeta = 0;
            const double *v = ref_role_at(&ro->v, c0 + q, vh);
            double *dv = ref_grad_at(&gr->v, c0 + q, vh);
            for (uint32_t x = 0; x < V; x++) {
                double acc = 0;
                for (uint32_t r = q; r < L; r++)
                    acc += w->T[r * L + q] * w->dUh[r * V + x];
                if (x < w->Vv)
                    dv[x] += beta * acc;
                dbeta += acc * vext(v, w->Vv, x);
            }
            for (uint32_t c = 0; c < K; c++) {
                double acc = 0;
                for (uint32_t r = q; r < L; r++)
                    acc += w->T[r * L + q] * w->dW[r * K + c];
                w->dKg[q * K + c] += beta * acc;
                dbeta += acc * w->Kg[q * K + c];
            }
            ref_grad_at(&gr->beta, c0 + q, bh)[0] += dbeta;
        }
        /* T = (I + A)^-1: dA = -T^T dT T^T, of which the strictly lower part reaches A */
        for (uint32_t r = 0; r < L; r++)
            for (uint32_t q = 0; q < L; q++) {
                double acc = 0;
                for (uint32_t i = 0; i < L; i++)
                    acc += w->T[i * L + r] * w->dT[i * L + q];
                w->X[r * L + q] = acc;
            }
        for (uint32_t r = 0; r < L; r++) {
            const double *kr = ref_role_at(&ro->k, c0 + r, kh);
            double beta = ref_role_at(&ro->beta, c0 + r, bh)[0], dbeta = 0;
            double *dkr = ref_grad_at(&gr->k, c0 + r, kh);
            for (uint32_t j = 0; j < r; j++) {
                double dA = 0, e = 0;
                for (uint32_t q = 0; q < L; q++)
                    dA -= w->X[r * L + q] * w->T[j * L + q];
                const double *kj = ref_role_at(&ro->k, c0 + j, kh);
                for (uint32_t c = 0; c < K; c++)
                    e += kr[c] * kj[c] * exp(w->b[r * K + c] - w->b[j * K + c]);
                dbeta += dA * e;
                pair_backward(w, r, j, dA * beta, kr, kj, dkr, ref_grad_at(&gr->k, c0 + j, kh));
            }
            ref_grad_at(&gr->beta, c0 + r, bh)[0] += dbeta;
        }
    }

    /* Kg = K e^{b}, Kd = K e^{b_L - b} */
    for (uint32_t r = 0; r < L; r++) {
        double *dk = ref_grad_at(&gr->k, c0 + r, kh);
        for (uint32_t c = 0; c < K; c++) {
            double tg = w->dKg[r * K + c] * w->Kg[r * K + c], td = w->dKd[r * K + c] * w->Kd[r * K + c];
            dk[c] += w->dKg[r * K + c] * exp(w->b[r * K + c]) + w->dKd[r * K + c] * exp(bL[c] - w->b[r * K + c]);
            w->db[r * K + c] += tg - td;
            w->db[(L - 1) * K + c] += td;
        }
    }

    /* b is the chunk-local cumulative sum of the log gates: da_t = sum_{r >= t} db_r */
    if (ro->gate.data) {
        uint32_t gh = ir_head_map(s, Hs, ro->gate.heads);
        for (uint32_t c = 0; c < K; c++) {
            double acc = 0;
            for (uint32_t r = L; r-- > 0;) {
                acc += w->db[r * K + c];
                ref_grad_at(&gr->gate, c0 + r, gh)[ro->gate.len == 1 ? 0 : c] += acc;
            }
        }
    }
}

/* Mask none (no decay, additive): every token reads S = S_0 + sum over the chunks of K_c^T [V_c | 1].
 * dS = dhT + sum_t q_t dx_t^T (dx through the normaliser), dq_t = S dx_t, then per chunk dK = [V | 1] dS^T,
 * dV = K dS; dh0 = dS.  w->Sn holds S_0 on entry and w->dS dhT. */
static void bidirectional_backward(const ir_module *m, const ref_data *d, const ref_result *up, const ref_roles *gr,
                                   cg_ws *w, uint32_t s, uint32_t bos, uint32_t eos)
{
    const ref_roles *ro = &d->roles;
    const ref_dims *dm = &d->dims;
    uint32_t K = w->K, V = w->V, Hs = dm->Hs, G = dm->Hout / Hs;
    uint32_t kh = ir_head_map(s, Hs, ro->k.heads), vh = ir_head_map(s, Hs, ro->v.heads);
    double *S = w->Sn, *dS = w->dS;
    for (uint32_t t = bos; t < eos; t++) {
        const double *k = ref_role_at(&ro->k, t, kh), *v = ref_role_at(&ro->v, t, vh);
        for (uint32_t c = 0; c < K; c++)
            for (uint32_t x = 0; x < V; x++)
                S[(size_t)c * V + x] += k[c] * vext(v, w->Vv, x);
    }
    for (uint32_t h = s * G; h < (s + 1) * G; h++) {
        uint32_t qh = ir_head_map(h, dm->Hout, dm->Hq);
        for (uint32_t t = bos; t < eos; t++) {
            const double *q = ref_role_at(&ro->q, t, qh), *dy = up->out + ((size_t)t * dm->Hout + h) * w->Vv;
            double *dq = ref_grad_at(&gr->q, t, qh), *dO = w->dO, dm_unused = 0;
            for (uint32_t x = 0; x < V; x++) {
                double acc = 0;
                for (uint32_t c = 0; c < K; c++)
                    acc += q[c] * S[(size_t)c * V + x];
                w->xr[x] = acc;
            }
            readout_adjoint(&m->linear, w, dy, 0.0, &dm_unused);
            for (uint32_t c = 0; c < K; c++) {
                double acc = 0;
                for (uint32_t x = 0; x < V; x++) {
                    acc += S[(size_t)c * V + x] * dO[x];
                    dS[(size_t)c * V + x] += q[c] * dO[x];
                }
                dq[c] += acc;
            }
        }
    }
    for (uint32_t t = bos; t < eos; t++) {
        const double *k = ref_role_at(&ro->k, t, kh), *v = ref_role_at(&ro->v, t, vh);
        double *dk = ref_grad_at(&gr->k, t, kh), *dv = ref_grad_at(&gr->v, t, vh);
        for (uint32_t c = 0; c < K; c++)
            for (uint32_t x = 0; x < V; x++) {
                dk[c] += dS[(size_t)c * V + x] * vext(v, w->Vv, x);
                if (x < w->Vv)
                    dv[x] += dS[(size_t)c * V + x] * k[c];
            }
    }
}

/* mLSTM (algorithms.md 2.7(b)): the state (C | n) in units of e^{m}, one scalar log forget gate per token
 * (b its chunk-local sum) and a log input gate i.  Per chunk, with m_in the incoming stabiliser:
 *   m_r = max(b_r + m_in, max_{j<=r} D_rj),  D_rj = b_r - b_j + i_j;  F0_r = e^{b_r + m_in - m_r},
 *   F_rj = e^{D_rj - m_r};  [num | den]_r = F0_r q_r^T (C | n)_in + sum_j F_rj (q_r . k_j) [v_j | 1];
 *   h_r = num / (max(|den|, e^{-m_r}) + eps);  m_out = max(b_L + m_in, max_j (b_L - b_j + i_j)),
 *   (C | n)_out = e^{b_L + m_in - m_out} (C | n)_in + sum_j e^{b_L - b_j + i_j - m_out} k_j [v_j | 1]^T.
 * The adjoint differentiates through the maxima like the recurrent backward (ref_grad.c's comment): each
 * exponent passes its adjoint to its b's, i's and m's, and a max passes its own to the term that won it
 * (the old state's on a tie, as fmax keeps it). */
static double mlstm_gate(const ref_role *g, uint32_t t, uint32_t h)
{
    return g->data ? ref_role_at(g, t, h)[0] : 0.0;
}

/* The chunk [c0, c0 + L)'s chunk-local sums b of the log forget gates and its log input gates i. */
static void mlstm_chunk_gates(const ref_roles *ro, uint32_t gh, uint32_t ih, uint32_t c0, uint32_t L, double *b,
                              double *ig)
{
    for (uint32_t r = 0; r < L; r++) {
        b[r] = (r ? b[r - 1] : 0.0) + mlstm_gate(&ro->gate, c0 + r, gh);
        ig[r] = mlstm_gate(&ro->igate, c0 + r, ih);
    }
}

/* m_r and its winner for the rows of a chunk; returns m_out and sets *win_out. */
static double mlstm_maxima(cg_ws *w, const double *b, const double *ig, uint32_t L, double m_in, int32_t *win_out)
{
    for (uint32_t r = 0; r < L; r++) {
        double mr = b[r] + m_in;
        int32_t win = -1;
        for (uint32_t j = 0; j <= r; j++)
            if (b[r] - b[j] + ig[j] > mr) {
                mr = b[r] - b[j] + ig[j];
                win = (int32_t)j;
            }
        w->mrow[r] = mr;
        w->mwin[r] = win;
    }
    double bL = b[L - 1], mo = bL + m_in;
    *win_out = -1;
    for (uint32_t j = 0; j < L; j++)
        if (bL - b[j] + ig[j] > mo) {
            mo = bL - b[j] + ig[j];
            *win_out = (int32_t)j;
        }
    return mo;
}

/* Passes adjoint g of a max to its winner: the old state's term (b_r + m_in) or D_rj = b_r - b_j + i_j. */
static void mlstm_max_backward(double g, uint32_t r, int32_t win, double *db, double *di, double *dm_in)
{
    db[r] += g;
    if (win < 0) {
        *dm_in += g;
    } else {
        db[win] -= g;
        di[win] += g;
    }
}

static void mlstm_backward(const ir_module *m, const ref_data *d, const ref_result *up, const ref_roles *gr, cg_ws *w,
                           uint32_t s, uint32_t bos, uint32_t eos, double *dm)
{
    const ref_roles *ro = &d->roles;
    const ref_dims *dm_ = &d->dims;
    uint32_t C = w->C, K = w->K, V = w->V, Vv = w->Vv, Hs = dm_->Hs, G = dm_->Hout / Hs;
    uint32_t kh = ir_head_map(s, Hs, ro->k.heads), vh = ir_head_map(s, Hs, ro->v.heads);
    uint32_t gh = ro->gate.data ? ir_head_map(s, Hs, ro->gate.heads) : 0, ih = ir_head_map(s, Hs, ro->igate.heads);
    size_t kv = (size_t)K * V;
    double *b = w->mb, *ig = w->mig, *db = w->mdb, *di = w->mdi;
    /* forward over the chunks: each chunk's incoming (C | n) and m */
    double m_in = w->mstates[0];
    uint32_t nc = 0;
    for (uint32_t c0 = bos; c0 < eos; c0 += C, nc++) {
        uint32_t L = eos - c0 < C ? eos - c0 : C;
        double *S = w->states + nc * kv;
        memcpy(S, w->Sn, kv * sizeof *S);
        w->mstates[nc] = m_in;
        mlstm_chunk_gates(ro, gh, ih, c0, L, b, ig);
        int32_t wo;
        double mo = mlstm_maxima(w, b, ig, L, m_in, &wo), bL = b[L - 1], e0 = exp(bL + m_in - mo);
        for (uint32_t c = 0; c < K; c++)
            for (uint32_t x = 0; x < V; x++) {
                double acc = e0 * S[(size_t)c * V + x];
                for (uint32_t j = 0; j < L; j++)
                    acc += exp(bL - b[j] + ig[j] - mo) * ref_role_at(&ro->k, c0 + j, kh)[c] *
                           vext(ref_role_at(&ro->v, c0 + j, vh), Vv, x);
                w->Sn[(size_t)c * V + x] = acc;
            }
        m_in = mo;
    }
    /* reverse: w->dS holds d(C | n)_out, *dm dm_out */
    while (nc-- > 0) {
        uint32_t c0 = bos + nc * C, L = eos - c0 < C ? eos - c0 : C;
        const double *S = w->states + (size_t)nc * kv;
        double mi = w->mstates[nc], dm_in = 0, *dS = w->dS;
        mlstm_chunk_gates(ro, gh, ih, c0, L, b, ig);
        for (uint32_t r = 0; r < L; r++)
            db[r] = di[r] = w->dmr[r] = 0;
        int32_t wo;
        double mo = mlstm_maxima(w, b, ig, L, mi, &wo), bL = b[L - 1], e0 = exp(bL + mi - mo);
        /* (C | n)_out */
        double dmo = *dm, de0 = 0;
        for (size_t i = 0; i < kv; i++)
            de0 += dS[i] * S[i];
        for (uint32_t j = 0; j < L; j++) {
            const double *k = ref_role_at(&ro->k, c0 + j, kh), *v = ref_role_at(&ro->v, c0 + j, vh);
            double *dk = ref_grad_at(&gr->k, c0 + j, kh), *dv = ref_grad_at(&gr->v, c0 + j, vh);
            double ej = exp(bL - b[j] + ig[j] - mo), dej = 0;
            for (uint32_t c = 0; c < K; c++) {
                double acc = 0;
                for (uint32_t x = 0; x < V; x++) {
                    acc += dS[(size_t)c * V + x] * vext(v, Vv, x);
                    if (x < Vv)
                        dv[x] += ej * dS[(size_t)c * V + x] * k[c];
                }
                dk[c] += ej * acc;
                dej += k[c] * acc;
            }
            double t = ej * dej;
            db[L - 1] += t;
            db[j] -= t;
            di[j] += t;
            dmo -= t;
        }
        db[L - 1] += e0 * de0;
        dm_in += e0 * de0;
        dmo -= e0 * de0;
        mlstm_max_backward(dmo, L - 1, wo, db, di, &dm_in);
        for (size_t i = 0; i < kv; i++)
            dS[i] *= e0;
        /* the rows */
        for (uint32_t h = s * G; h < (s + 1) * G; h++) {
            uint32_t qh = ir_head_map(h, dm_->Hout, dm_->Hq);
            for (uint32_t r = 0; r < L; r++) {
                const double *q = ref_role_at(&ro->q, c0 + r, qh), *dy = up->out + ((size_t)(c0 + r) * dm_->Hout + h) * Vv;
                double *dq = ref_grad_at(&gr->q, c0 + r, qh), *dO = w->dO, mr = w->mrow[r];
                double f0 = exp(b[r] + mi - mr);
                for (uint32_t x = 0; x < V; x++) {
                    double acc = 0;
                    for (uint32_t c = 0; c < K; c++)
                        acc += q[c] * S[(size_t)c * V + x];
                    w->xr[x] = f0 * acc;
                }
                for (uint32_t j = 0; j <= r; j++) {
                    const double *k = ref_role_at(&ro->k, c0 + j, kh), *v = ref_role_at(&ro->v, c0 + j, vh);
                    double sj = 0, f = exp(b[r] - b[j] + ig[j] - mr);
                    for (uint32_t c = 0; c < K; c++)
                        sj += q[c] * k[c];
                    w->prow[j] = sj;
                    for (uint32_t x = 0; x < V; x++)
                        w->xr[x] += f * sj * vext(v, Vv, x);
                }
                readout_adjoint(&m->linear, w, dy, mr, &w->dmr[r]);
                double df0 = 0;
                for (uint32_t c = 0; c < K; c++) {
                    double acc = 0;
                    for (uint32_t x = 0; x < V; x++) {
                        acc += S[(size_t)c * V + x] * dO[x];
                        dS[(size_t)c * V + x] += f0 * q[c] * dO[x];
                    }
                    dq[c] += f0 * acc;
                    df0 += q[c] * acc;
                }
                db[r] += f0 * df0;
                dm_in += f0 * df0;
                w->dmr[r] -= f0 * df0;
                for (uint32_t j = 0; j <= r; j++) {
                    const double *k = ref_role_at(&ro->k, c0 + j, kh), *v = ref_role_at(&ro->v, c0 + j, vh);
                    double *dk = ref_grad_at(&gr->k, c0 + j, kh), *dv = ref_grad_at(&gr->v, c0 + j, vh);
                    double f = exp(b[r] - b[j] + ig[j] - mr), sj = w->prow[j], g = 0;
                    for (uint32_t x = 0; x < V; x++) {
                        g += dO[x] * vext(v, Vv, x);
                        if (x < Vv)
                            dv[x] += f * sj * dO[x];
                    }
                    for (uint32_t c = 0; c < K; c++) {
                        dq[c] += f * g * k[c];
                        dk[c] += f * g * q[c];
                    }
                    double t = f * sj * g;
                    db[r] += t;
                    db[j] -= t;
                    di[j] += t;
                    w->dmr[r] -= t;
                }
            }
        }
        for (uint32_t r = 0; r < L; r++)
            mlstm_max_backward(w->dmr[r], r, w->mwin[r], db, di, &dm_in);
        /* b is the chunk-local sum of the log forget gates */
        double acc = 0;
        for (uint32_t r = L; r-- > 0;) {
            acc += db[r];
            if (ro->gate.data)
                ref_grad_at(&gr->gate, c0 + r, gh)[0] += acc;
            ref_grad_at(&gr->igate, c0 + r, ih)[0] += di[r];
        }
        *dm = dm_in;
    }
}

/* Additive and delta updates, causal: a forward pass over the chunks stores each one's incoming state,
 * then the chunks are swept in reverse (w->Sn: S_0 on entry; w->dS: dhT on entry, dh0 on return). */
static void chunks_backward(const ir_module *m, const ref_data *d, const ref_result *up, const ref_roles *gr,
                            cg_ws *w, uint32_t s, uint32_t bos, uint32_t eos)
{
    uint32_t C = w->C, nc = 0;
    size_t kv = (size_t)w->K * w->V;
    for (uint32_t c0 = bos; c0 < eos; c0 += C, nc++) {
        uint32_t L = eos - c0 < C ? eos - c0 : C;
        double *S = w->states + nc * kv;
        memcpy(S, w->Sn, kv * sizeof *S);
        chunk_forward(m, d, w, s, c0, L, S);
        chunk_state(w, L, S);
    }
    while (nc-- > 0) {
        uint32_t c0 = bos + nc * C, L = eos - c0 < C ? eos - c0 : C;
        const double *S = w->states + (size_t)nc * kv;
        chunk_forward(m, d, w, s, c0, L, S);
        chunk_backward(m, d, up, gr, w, s, c0, L, S);
    }
}

bool ref_chunked_linear_backward(const ir_module *m, const ref_data *d, const ref_result *up, const ref_roles *gr,
                                 double *dh0, double *dz0, double *dm0, uint32_t chunk, attnc_arena *a,
                                 attnc_diags *diags)
{
    const ir_linear *l = &m->linear;
    const ref_dims *dm = &d->dims;
    if ((l->norm == IR_NORM_MAXFLOOR) != (l->igate != IR_NONE) || (l->norm == IR_NORM_MAXFLOOR && m->mask != IR_MASK_CAUSAL))
        return ref_fail(diags, m->span, "the chunked backward takes the input gate and the max-floor normaliser "
                                        "together (mLSTM), causal");
    uint32_t C = chunk ? chunk : 64, K = dm->K, V = dm->V + (dm->has_z ? 1 : 0), Hs = dm->Hs, longest = 0;
    for (uint32_t n = 0; n < dm->nseq; n++)
        if (d->cu_seqlens[n + 1] - d->cu_seqlens[n] > longest)
            longest = d->cu_seqlens[n + 1] - d->cu_seqlens[n];
    size_t ck = (size_t)C * K, cv = (size_t)C * V, cc = (size_t)C * C, kv = (size_t)K * V;
    cg_ws w = {.C = C, .K = K, .V = V, .Vv = dm->V};
    double **arrays[] = {&w.b, &w.Kg, &w.Kd, &w.W, &w.dW, &w.dKg, &w.dKd, &w.db};
    for (size_t i = 0; i < sizeof arrays / sizeof *arrays; i++)
        if (!(*arrays[i] = ref_doubles(a, ck)))
            return ref_fail(diags, m->span, "out of memory");
    if (!(w.A = ref_doubles(a, cc)) || !(w.T = ref_doubles(a, cc)) || !(w.dT = ref_doubles(a, cc)) ||
        !(w.X = ref_doubles(a, cc)) || !(w.U = ref_doubles(a, cv)) ||
        !(w.Uh = ref_doubles(a, cv)) || !(w.dUh = ref_doubles(a, cv)) || !(w.Sn = ref_doubles(a, kv)) ||
        !(w.dS = ref_doubles(a, kv)) || !(w.states = ref_doubles(a, ((size_t)longest + C - 1) / C * kv)) ||
        !(w.xr = ref_doubles(a, V)) || !(w.dO = ref_doubles(a, V)) || !(w.prow = ref_doubles(a, C)) ||
        !(w.mstates = ref_doubles(a, ((size_t)longest + C - 1) / C + 1)) || !(w.mrow = ref_doubles(a, C)) ||
        !(w.dmr = ref_doubles(a, C)) || !(w.mb = ref_doubles(a, C)) || !(w.mig = ref_doubles(a, C)) ||
        !(w.mdb = ref_doubles(a, C)) || !(w.mdi = ref_doubles(a, C)) ||
        !(w.mwin = attnc_arena_alloc(a, C * sizeof *w.mwin)))
        return ref_fail(diags, m->span, "out of memory");

    ref_rec_state st = {0};
    if (!(st.S = ref_doubles(a, (size_t)K * dm->V)) || !(st.z = ref_doubles(a, K)))
        return ref_fail(diags, m->span, "out of memory");
    for (uint32_t n = 0; n < dm->nseq; n++) {
        uint32_t bos = d->cu_seqlens[n], eos = d->cu_seqlens[n + 1];
        for (uint32_t s = 0; s < Hs; s++) {
            size_t sh = (size_t)n * Hs + s;
            ref_rec_start(d, &st, n, s);
            for (uint32_t c = 0; c < K; c++)
                for (uint32_t x = 0; x < V; x++)
                    w.Sn[(size_t)c * V + x] = x < dm->V ? st.S[(size_t)c * dm->V + x] : st.z[c];
            for (uint32_t c = 0; c < K; c++)
                for (uint32_t x = 0; x < V; x++)
                    w.dS[(size_t)c * V + x] = x < dm->V ? (up->hT ? up->hT[(sh * K + c) * dm->V + x] : 0.0)
                                                        : (up->zT ? up->zT[sh * K + c] : 0.0);
            if (m->mask == IR_MASK_NONE) {
                bidirectional_backward(m, d, up, gr, &w, s, bos, eos);
            } else if (l->norm == IR_NORM_MAXFLOOR) {
                double dmv = up->mT ? up->mT[sh] : 0.0;
                w.mstates[0] = st.m;
                mlstm_backward(m, d, up, gr, &w, s, bos, eos, &dmv);
                if (dm0)
                    dm0[sh] = dmv;
            } else {
                chunks_backward(m, d, up, gr, &w, s, bos, eos);
            }
            for (uint32_t c = 0; c < K; c++)
                for (uint32_t x = 0; x < V; x++) {
                    if (x < dm->V && dh0)
                        dh0[(sh * K + c) * dm->V + x] = w.dS[(size_t)c * V + x];
                    if (x == dm->V && dz0)
                        dz0[sh * K + c] = w.dS[(size_t)c * V + x];
                }
        }
    }
    return true;
}
