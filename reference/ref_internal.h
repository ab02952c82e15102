/* reference/ref_internal.h: helpers shared by the reference's files; not part of the API (ref.h).
 *
 * ref_check_module is the one place that decides which modules the reference evaluates: every other file
 * may assume what it checked (roles present with the lengths their part needs, head counts that divide
 * each other, supported combinations of decay, update, igate, norm and mask).
 */
#ifndef ATTNC_REF_INTERNAL_H
#define ATTNC_REF_INTERNAL_H

#include <math.h>
#include <stdarg.h>

#include "ref.h"

/* Reports an error at `at` when `d` is not NULL; always returns false (so `return ref_fail(...)`). */
bool ref_fail(attnc_diags *d, attnc_span at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* n doubles (zeroed) from the arena, or NULL on overflow or allocation failure. */
double *ref_doubles(attnc_arena *a, size_t n);

/* Checks that the reference supports `m` and fills the module part of *dims (all but total and nseq). */
bool ref_check_module(const ir_module *m, ref_dims *dims, attnc_diags *d);

/* True if two results or data have the same sizes. */
bool ref_dims_equal(const ref_dims *a, const ref_dims *b);

/* True if `r` has the sizes `d` implies (what a forward evaluator writes). */
bool ref_result_fits(const ref_result *r, const ref_data *d);

/* The head count of a value (1 when it is the same for every head). */
uint32_t ref_value_heads(const ir_module *m, ir_ref r);

/* ref_draw.c: ref_draw's generator for the other random numbers of the reference (the backward's
 * upstream gradients and check directions), so that there is one generator.  Fills x[0..n) from stream
 * `stream` of `seed`: standard normal times `scale`, or uniform in [0, 1). */
void ref_fill_normal(double *x, size_t n, uint64_t seed, uint64_t stream, double scale);
void ref_fill_uniform(double *x, size_t n, uint64_t seed, uint64_t stream);

/* ref_recurrent.c: one state head's scratch for the recurrent step, and the step itself, shared with the
 * backward (ref_grad.c), which replays exactly the forward's arithmetic to record the states it
 * differentiates through. */
typedef struct ref_rec_state {
    double *S;     /* K x V */
    double *z;     /* K (DENOM: key sum; MAXFLOOR: n) */
    double m;      /* MAXFLOOR stabiliser */
    double *x;     /* V: readout */
    double *pred;  /* V: delta prediction P^T k */
    double *decay; /* K: e^{a_t}, per row */
} ref_rec_state;

/* Loads the initial state of sequence n, state head s (h0, z0, m0; zero where not drawn). */
void ref_rec_start(const ref_data *d, ref_rec_state *st, uint32_t n, uint32_t s);
/* Mask none: adds every token's write k v^T (and k to z) of sequence n to the state. */
void ref_rec_sum(const ref_data *d, ref_rec_state *st, uint32_t n, uint32_t s);
/* One token of the causal recurrence for state head s: st->S, z and m go from t-1 to t. */
void ref_rec_step(const ir_module *m, const ref_data *d, ref_rec_state *st, uint32_t s, uint32_t t);

/* The softmax part's probabilities of query token t of output head h in its sequence [bos, eos): the key
 * band [*lo, *hi] the mask and window allow, p[j - bos] = softmax_j(q_t . k_j).  The forward and the
 * backward both read them from here. */
void ref_softmax_row(const ir_module *m, const ref_data *d, uint32_t h, uint32_t t, uint32_t bos, uint32_t eos,
                     double *p, uint32_t *lo, uint32_t *hi);

/* Row (t, h) of a gradient role, writable (ref_role_at is for the forward's read-only roles). */
static inline double *ref_grad_at(const ref_role *r, uint32_t t, uint32_t h)
{
    size_t row = r->per_head ? h : (size_t)t * r->heads + h;
    return r->data + row * r->len;
}

/* The statistics of RMS (center false: *mean = 0) and LayerNorm over a row of V: *mean and
 * *inv = 1 / sqrt(mean((x - mean)^2) + eps).  One definition for the forwards and the backward. */
static inline void ref_row_norm(const double *x, uint32_t V, bool center, double eps, double *mean, double *inv)
{
    double mu = 0, var = 0;
    if (center) {
        for (uint32_t c = 0; c < V; c++)
            mu += x[c];
        mu /= V;
    }
    for (uint32_t c = 0; c < V; c++)
        var += (x[c] - mu) * (x[c] - mu);
    var /= V;
    *mean = mu;
    *inv = 1.0 / sqrt(var + eps);
}

/* ref_grad.c: the adjoint of a linear output row's normaliser (ref_chunked.c's epilogue).  x: the
 * numerator row (V); zq = z . q (DENOM, MAXFLOOR); mval: the stabiliser m (MAXFLOOR); dy: the output's
 * gradient.  Sets dx (V) and *dzq (0 where z . q is not read or the floor e^{-m} won); adds to *dm where
 * the floor won. */
void ref_norm_backward(const ir_linear *l, uint32_t V, const double *x, double zq, double mval, const double *dy,
                       double *dx, double *dzq, double *dm);

/* ref_chunked_grad.c: the linear part's role gradients (added to gr, shaped like d->roles) and the
 * initial state's (dh0 [nseq, Hs, K, V] and dz0 [nseq, Hs, K], or NULL) by the chunkwise adjoint with
 * chunks of `chunk` tokens (0: 64).  Causal, without mLSTM's input gate and stabiliser and without a
 * softmax part; false with an error otherwise. */
bool ref_chunked_linear_backward(const ir_module *m, const ref_data *d, const ref_result *up, const ref_roles *gr,
                                 double *dh0, double *dz0, double *dm0, uint32_t chunk, attnc_arena *a,
                                 attnc_diags *diags);

/* Channel d of the gate role at (token t, role head h): a scalar gate broadcasts over the channels. */
static inline double ref_gate_at(const ref_role *g, uint32_t t, uint32_t h, uint32_t d)
{
    const double *p = ref_role_at(g, t, h);
    return g->len == 1 ? p[0] : p[d];
}

#endif
