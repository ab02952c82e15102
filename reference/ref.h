/* reference/ref.h: the float64 CPU reference of a module (the oracle every generated kernel is checked
 * against).
 *
 * Pipeline:   ref_draw           random inputs for every tensor of the module (rounded to each tensor's
 *                                dtype, so that a GPU kernel sees exactly these numbers), optional initial
 *                                states, and the role vectors (ref_eval_roles);
 *             ref_eval_roles     evaluates the IR value DAG in float64 for every (token, head), giving the
 *                                vectors the recurrence consumes (q, k, v, gate, beta, igate, softmax q/k/v);
 *             ref_forward_*      two forward evaluators written independently of each other:
 *                                  recurrent: token by token from the definition (algorithms.md 1.1, 2.x);
 *                                  chunked:   the chunkwise forms a kernel uses (1.2, 2.x(b), 2.8(b));
 *             ref_compare        relative and max-abs error between two results.
 * Backward:   ref_backward       gradients of L = <dout, out> + <dhT, hT> + <dzT, zT> + <dmT, mT> with
 *                                respect to every drawn tensor and initial state, by reverse mode through
 *                                the recurrent definition and the value DAG (ref_eval_roles_backward);
 *             ref_gradcheck_run  those gradients against central finite differences of the recurrent
 *                                forward.
 *
 * Layout (as FLA with batch 1 and cu_seqlens): all sequences are packed one after another; sequence n
 * occupies tokens [cu_seqlens[n], cu_seqlens[n+1]).  A batch of B sequences of length T is nseq = B, all T.
 *   per-token tensor / role   [total, heads, len]     row-major, len fastest
 *   per-head tensor / role    [heads, len]
 *   initial / final state     S [nseq, Hs, K, V], z [nseq, Hs, K] (DENOM: running key sum; MAXFLOOR: the
 *                             stabilised normaliser n), m [nseq, Hs] (MAXFLOOR: the stabiliser)
 *   output                    [total, Hout, V]
 * Heads (ir_shape): Hs = heads of the state, Hout = max(Hq, Hs).  Output head h reads state head
 * ir_head_map(h, Hout, Hs) and query head ir_head_map(h, Hout, Hq); a state-forming role of H_r heads is
 * read at ir_head_map(s, Hs, H_r).  The softmax part maps output head h to ir_head_map(h, Hout, H_role).
 *
 * Invariants:
 *   - everything (data, roles, results and the evaluators' scratch) comes from an attnc_arena; nothing
 *     is freed one by one;
 *   - library code never prints or exits: a failure returns NULL/false with an error in the attnc_diags
 *     (which may be NULL when the caller does not want the message);
 *   - drawing is deterministic: the same module, problem and seed give bit-identical data.  Tensor i
 *     draws from its own stream keyed by (seed, i), in memory order; S0 and z0 from streams keyed by
 *     (seed, ntensors + 0/1) (m0 is 0), so adding a tensor or h0 does not change the other numbers;
 *   - all arithmetic is float64; rounding to a dtype happens only to the drawn tensor values.
 */
#ifndef ATTNC_REF_H
#define ATTNC_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "arena.h"
#include "diag.h"
#include "ir.h"

/* What to draw: the sequences and whether they start from a random state. */
typedef struct ref_problem {
    uint64_t seed;
    const uint32_t *seqlens; /* nseq lengths, each >= 1 */
    uint32_t nseq;           /* >= 1 */
    bool use_h0;             /* draw S0 (and z0, m0) for every sequence; needs a linear part.  The
                                reference does not read m->state_in / state_out: a harness passes
                                use_h0 = m->state_in and compares the final state only if state_out */
} ref_problem;

/* One role vector, evaluated for every token and head (or for every head only). */
typedef struct ref_role {
    double *data;     /* [total, heads, len], or [heads, len] when per_head; NULL when the role is absent */
    uint32_t heads;   /* heads of the role's axis (1 when the value is the same for every head) */
    uint32_t len;     /* channels */
    bool per_head;    /* the constant decay's gate: one value per head, no token axis */
} ref_role;

/* The role vectors of both parts.  Absent roles have data == NULL. */
typedef struct ref_roles {
    ref_role q, k, v;    /* linear part */
    ref_role gate;       /* log-space decay: [T,Hg,1] scalar, [T,Hg,K] vector (or [T,Hg,1] broadcast over K),
                            per_head [Hg,1] for IR_DECAY_CONST */
    ref_role beta;       /* DELTA: [T,Hb,1] */
    ref_role igate;      /* mLSTM log input gate: [T,Hi,1] */
    ref_role sq, sk, sv; /* softmax part */
} ref_roles;

/* Sizes the module and problem imply, resolved once by ref_draw. */
typedef struct ref_dims {
    uint32_t total, nseq;  /* tokens over all sequences, number of sequences */
    uint32_t Hout, V;      /* output heads and channels */
    bool linear, softmax;  /* which parts are present */
    uint32_t K, Hq, Hs;    /* linear part: state rows, query heads, state heads (0 without a linear part) */
    bool has_z, has_m;     /* the state carries z (DENOM, MAXFLOOR) and m (MAXFLOOR) */
    uint32_t sK;           /* softmax part: query/key length (0 without a softmax part) */
} ref_dims;

/* Everything a forward evaluation reads.  Fill by ref_draw; the tensors may be edited afterwards (then
 * call ref_eval_roles again). */
typedef struct ref_data {
    ref_dims dims;
    uint32_t *cu_seqlens;  /* nseq + 1 prefix sums */
    double **tensor;       /* per module tensor: [total, heads, len] or [heads, len], already rounded */
    size_t *tensor_count;  /* number of doubles of each tensor */
    double *h0, *z0, *m0;  /* initial states (NULL when not drawn; z0/m0 only where dims says so) */
    ref_roles roles;
} ref_data;

/* A forward result, or the same sizes filled from a kernel's outputs for comparison. */
typedef struct ref_result {
    ref_dims dims;
    double *out;           /* [total, Hout, V] */
    double *hT, *zT, *mT;  /* final states (NULL where absent, as in ref_dims) */
} ref_result;

/* ref_draw.c */

/* Rounds x to the nearest number of the dtype (ties to even; subnormals kept; beyond the largest
 * finite number: +-inf).  FP32 is the C conversion to float. */
double ref_round_dtype(double x, ir_dtype dt);

/* Draws every tensor of `m` for problem `p` and evaluates the roles.  Per-token tensors get
 * [total, heads, len], parameters [heads, len]; a tensor with a declared range draws uniform in [lo, hi],
 * others standard normal; every number is then rounded to the tensor's dtype.  With p->use_h0:
 * S0 normal * 0.5; z0 for DENOM sum_p w_p k_p over the key roles of the sequence's first (at most) 8
 * tokens, w_p uniform(0,1) (a state the recurrence can reach), normal for MAXFLOOR; m0 = 0.
 * Sequences of different lengths need m->document.  `m` must have passed ir_verify.  Returns NULL (with
 * an error in `diags`) when the reference does not support the module or the problem is malformed. */
ref_data *ref_draw(const ir_module *m, const ref_problem *p, attnc_arena *a, attnc_diags *diags);

/* ref_eval.c */

/* (Re)evaluates data->roles from data->tensor by walking the value DAG for every (token, head) in
 * float64, into fresh arrays from `a`.  Elementwise ops broadcast a scalar over a vector, a per-head
 * value over tokens and a constant over everything.  False (with an error) if a role does not have the
 * shape its part needs. */
bool ref_eval_roles(const ir_module *m, ref_data *d, attnc_arena *a, attnc_diags *diags);

/* Adds to dtensor[i] (one array per module tensor, the layout of d->tensor) the gradients of the tensors
 * that the role gradients `dr` imply (dr has the layout of d->roles; a role whose data is NULL has no
 * gradient).  d->roles must be current.  Scratch from `a`.  False (with an error) on allocation failure
 * or a role gradient of the wrong shape. */
bool ref_eval_roles_backward(const ir_module *m, const ref_data *d, const ref_roles *dr, double **dtensor,
                             attnc_arena *a, attnc_diags *diags);

/* ref_result.c */

/* A zeroed result with the sizes of `d` (for a forward evaluation or for a kernel's outputs). */
ref_result *ref_result_new(const ref_data *d, attnc_arena *a);

typedef struct ref_error {
    double out_rel;      /* ||got - want|| / ||want|| over out (Frobenius; plain norm of the difference
                            when want is all zero); +inf if any number is not finite */
    double out_maxabs;   /* max |got - want| over out */
    double state_rel;    /* the same over hT, zT and mT together (0 when there is no state) */
    double state_maxabs;
} ref_error;

/* Compares two results of the same sizes.  False (errors left unset) when the sizes differ. */
bool ref_compare(const ref_result *got, const ref_result *want, ref_error *err);

/* ref_recurrent.c */

/* Token by token from the recurrent definition (update-then-read), per sequence and output head; the
 * softmax part as an explicit sum over the window.  Scratch from `a`.  False (with an error) on an
 * allocation failure or if `res` does not have the sizes of `d`. */
bool ref_forward_recurrent(const ir_module *m, const ref_data *d, ref_result *res, attnc_arena *a,
                           attnc_diags *diags);

/* ref_chunked.c */

/* The chunkwise forms with chunk size `chunk` (>= 1; 0 means m->chunk, or 64 when that is 0 too): chunks
 * restart at every sequence start and the last one may be shorter.  Same contract as the recurrent one. */
bool ref_forward_chunked(const ir_module *m, const ref_data *d, uint32_t chunk, ref_result *res,
                         attnc_arena *a, attnc_diags *diags);

/* ref_grad.c */

/* A vector over the inputs a forward evaluation reads: one array per module tensor (the layout and
 * counts of ref_data.tensor) and the initial states.  It holds gradients (ref_backward) and directions
 * (ref_gradcheck).  h0, z0 and m0 are NULL where the data has none. */
typedef struct ref_grad {
    double **tensor;
    double *h0, *z0, *m0;
} ref_grad;

/* Upstream gradients with the sizes of `d`: dout standard normal; where m->state_out, dhT, dzT and dmT
 * too (NULL otherwise: a final state nobody reads has no gradient).  Deterministic in `seed`, from
 * streams of their own. */
ref_result *ref_draw_upstream(const ir_module *m, const ref_data *d, uint64_t seed, attnc_arena *a);

/* L = <up, res>: the sum over out, hT, zT and mT of up times res (a NULL array of `up` is zero),
 * compensated (Neumaier), so that finite differences of L lose nothing to the summation. */
double ref_loss(const ref_result *res, const ref_result *up);

/* The gradient of L = ref_loss(forward(d), up) with respect to every tensor of d and its initial states
 * (h0, z0 and the stabiliser m0, where drawn).  Reverse mode through the recurrent definition: per
 * sequence and state head the forward states are recorded (O(T K V) doubles for the longest sequence),
 * then swept backward; the softmax part is differentiated per query; the role gradients then flow
 * through the value DAG.  Tensors shared by several heads (GQA, GVA, per-head parameters) get the sum.
 * Returns NULL (with an error) on allocation failure or when `up` does not have the sizes of `d`. */
ref_grad *ref_backward(const ir_module *m, const ref_data *d, const ref_result *up, attnc_arena *a,
                       attnc_diags *diags);

/* The same gradient with the linear part's adjoint taken in the chunkwise form (chunks of `chunk`
 * tokens, 0: 64), the derivation GPU backward kernels follow (ref_chunked_grad.c): every linear variant
 * (additive or delta update, any transition, every normaliser, mLSTM's stabiliser, causal or
 * bidirectional); a softmax part as ref_backward does it.  NULL with an error on allocation failure. */
ref_grad *ref_backward_chunked(const ir_module *m, const ref_data *d, const ref_result *up, uint32_t chunk,
                               attnc_arena *a, attnc_diags *diags);

typedef struct ref_gradcheck_options {
    uint64_t seed;    /* the random directions and coordinates */
    double eps;       /* step along directions, relative to each input's root mean square (0: 3e-6) */
    double eps_coord; /* step of single coordinates, relative likewise (0: 1e-5) */
    uint32_t coords;  /* single coordinates per input: its largest |gradient| and coords-1 random ones
                         among those at least 1e-3 of the largest (0: 2) */
} ref_gradcheck_options;

/* One comparison of <grad, dir> with (L(x + eps dir) - L(x - eps dir)) / (2 eps). */
typedef struct ref_gradcheck_item {
    const char *what;   /* "all inputs", an input's name ("q", "h0"), or a coordinate ("q[17]") */
    double analytic, numeric;
    double rel_err;     /* |analytic - numeric| / max(|analytic|, |numeric|); 0 when both are 0; +inf
                           when either is not finite */
} ref_gradcheck_item;

typedef struct ref_gradcheck {
    ref_gradcheck_item *items;
    uint32_t n;
    uint32_t ninputs;     /* tensors and initial states checked */
    uint32_t nforward;    /* forward evaluations run */
    double eps, eps_coord; /* the steps used */
    double loss;          /* L at x */
    double max_rel_err;   /* over the items */
} ref_gradcheck;

/* Checks `g` (normally from ref_backward; a test may corrupt it) against central differences of L, with
 * the inputs perturbed as float64 numbers (not rounded to their dtype again).  The directions: every
 * input at once (normal, scaled by each input's rms), each input alone, and single coordinates of each
 * input.  Each evaluation's scratch lives in an arena of its own, freed after it, so memory stays that
 * of one forward.  False (with an error) on allocation failure; a large error is a result, not a
 * failure. */
bool ref_gradcheck_run(const ir_module *m, const ref_data *d, const ref_result *up, const ref_grad *g,
                       const ref_gradcheck_options *opt, ref_gradcheck *out, attnc_arena *a,
                       attnc_diags *diags);

/* ref_dump.c */

/* Writes the module's resolved setting, the sequence lengths, the role vectors, the initial states and
 * (if res is not NULL) the result as one JSON object (numbers with 17 significant digits, non-finite
 * numbers as null).  The layout is what tests/ref/crosscheck.py reads.  False on a write error. */
bool ref_dump_json(const ir_module *m, const ref_data *d, const ref_result *res, FILE *f);

/* Pointer to the vector of role `r` at token t, role head h (t is ignored for per-head roles). */
static inline const double *ref_role_at(const ref_role *r, uint32_t t, uint32_t h)
{
    size_t row = r->per_head ? h : (size_t)t * r->heads + h;
    return r->data + row * r->len;
}

#endif
