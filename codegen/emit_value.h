/* codegen/emit_value.h: the spec's value DAG as straight-line CUDA C, one statement per value, shared by
 * the forward generator (cuda.c, the prologue) and the backward's (cuda_bwd.c, roles and adjoint).
 *
 * One warp evaluates the values of one (token, output head).  A scalar value is one float that every lane
 * holds ("vR"); a vector value of length L is an array of slots per lane ("vR[s]"), channels >= L held at
 * 0 so that whole-vector ops (l2norm, taylor2) see only real channels.  The two generators differ only in
 * what cg_values says: how a lane's slots map to channels (the layout), where per-token inputs are read
 * from (staged rows in shared memory or global memory), and how min/max are written.
 */
#ifndef ATTNC_EMIT_VALUE_H
#define ATTNC_EMIT_VALUE_H

#include <stdbool.h>

#include "arena.h"
#include "ir.h"

typedef enum cg_layout {
    CG_LAYOUT_RUN4, /* forward: 4 ceil(L/128) slots, slot s is channel 4 lane + cg_run4_chan(s): each lane
                       holds runs of 4 consecutive channels, so that rows move with 8- and 16-byte loads */
    CG_LAYOUT_LANE  /* backward: ceil(L/32) slots, slot s is channel lane + 32 s */
} cg_layout;

typedef struct cg_values {
    const ir_module *m;
    attnc_buf *b;               /* where the statements go */
    cg_layout layout;
    const unsigned *stage_off;  /* per tensor: offset of a per-token input's rows in the staging area
                                   ("stage", row r; attnc_stage_issue); NULL: per-token inputs are read
                                   from global memory (p.in[], token t) */
    const unsigned *stage_roles; /* per tensor: the roles its rows feed (CG_ROLE_* bits); non-NULL: the
                                   staging copies a tensor only where the template argument WANT (a mask
                                   of roles) asks for one of them */
    bool select_minmax;         /* min/max as x < w ? x : w and x > w ? x : w (w on a tie, the branch the
                                   reference and the adjoint take); false: fminf/fmaxf */
    /* The l2norm factors a forward with saved states stores (passes/grad.c's grad_l2_factors): l2_values[j],
     * j < nl2, reaching the roles l2_roles[j].  Every l2norm value R forms its factor as "l2invR", in scope
     * after its statement (the adjoint's rule reads it).  l2_saved (the backward's parallel schedule): factor j
     * of the token is the saved one, from the staged rows at l2_stage_off (row r: nl2 floats) where the staged
     * forms' WANT has ATTNC_ROLE_L2F, or, with no stage_off, from p.l2f (token t, output head h) where set */
    const ir_ref *l2_values;
    const unsigned *l2_roles;
    unsigned nl2;
    bool l2_saved;
    unsigned l2_stage_off;
} cg_values;

/* Slots per lane of a value of length `len` (> 1) in `layout`. */
unsigned cg_slots(cg_layout layout, unsigned len);
/* CG_LAYOUT_RUN4: slot s of a lane holds channel lane * 4 + cg_run4_chan(s) (support.cuh's attnc_fetch
 * reads it the same way). */
unsigned cg_run4_chan(unsigned s);
/* The channel expression of slot s ("lane * 4 + N" or "lane + N"). */
void cg_put_chan(const cg_values *e, unsigned s);

/* A float literal that C++ reads back as the same float ("3" -> "(3.0f)"). */
void cg_put_float(attnc_buf *b, double x);
/* The ATTNC_DT_* macro of an ir_dtype. */
const char *cg_dtype_macro(int dt);
/* The roles as bits of a mask, WANT in the generated code: the roles a kernel body forms and whose inputs
 * its staging copies (beta's bit stands for the input gate too).  Every unit defines them as ATTNC_ROLE_*
 * (cg_emit_role_bits), so that the kernels' text and the generated code spell them alike. */
enum { CG_ROLE_Q = 1, CG_ROLE_K = 2, CG_ROLE_V = 4, CG_ROLE_GATE = 8, CG_ROLE_BETA = 16, CG_ROLES_ALL = 31 };
/* Not roles, two WANT bits of the backward's kernels: L2F, the rows' l2norm factors are the forward's saved ones
 * (p.l2f), read from the staged rows rather than formed by a warp sum (the kernels choose once for a group of
 * rows, not per l2norm: a branch in each split the rows' code, and the reverse walk grew slower); UNSAVED, the
 * kernel runs only where the forward saved no states (the backward's forward walks), so neither copies nor
 * reads them. */
enum { CG_ROLE_L2F = 32, CG_ROLE_UNSAVED = 64 };
void cg_emit_role_bits(attnc_buf *b);
/* The head of axis `axis` that output head `h` reads. */
void cg_put_head(const cg_values *e, unsigned axis);
/* "<prefix>R" for a scalar, "<prefix>R[s]" for slot s of a vector (prefix v: values, g: adjoints); a
 * scalar broadcasts over the slots. */
void cg_put_ref(const cg_values *e, char prefix, ir_ref r, unsigned s);

/* j where r is cg_values' l2_values[j], else ~0u. */
unsigned cg_l2_index(const cg_values *e, ir_ref r);
/* The roles any of n l2norm factors reaches (the union of roles[0 .. n - 1], CG_ROLE_* bits). */
unsigned cg_l2_roles_any(const unsigned *roles, unsigned n);
/* The statement(s) that compute value r from its operands (already emitted). */
void cg_emit_value(const cg_values *e, ir_ref r);

/* The copy unit of a staged row: the largest cp.async size that divides it (2: plain loads); a staged
 * tensor's address must be aligned to it. */
unsigned cg_stage_unit(unsigned row_bytes);
/* `fn`(const `params` &p, int c0, int eos, int h, unsigned char *stage[, `held` *held]): starts the
 * asynchronous copies (cp.async, one commit group) of rows [c0, min(c0 + `chunk`, eos)) of every tensor
 * with a stage_off into the staging area, `threads` threads sharing them (thread index `tid`) (generated; the forward's and the
 * parallel backward's).  Rows of 2 bytes have no cp.async: loaded into *held (cg_emit_stage_held's type),
 * which `held`_land stores later, or, with no held type or a null pointer, loaded and stored at once.  A template on
 * bool UNROLL: each thread's copies unrolled (fewer instructions a copy, more registers), else one loop. */
void cg_emit_stage_issue(const cg_values *e, const char *fn, const char *params, const char *chunk, const char *threads,
                         const char *tid, const char *held);
/* The most copies one of `threads` threads issues for one staged tensor of a `chunk`-row chunk (rows of 2 bytes,
 * which cg_emit_stage_held keeps in registers, aside). */
unsigned cg_stage_max_pieces(const cg_values *e, unsigned chunk, unsigned threads);
/* struct `held` (the registers of the 2-byte rows of one chunk, for each of the `threads` threads that issue
 * them) and `held`_land(unsigned char *stage, const `held` &), which stores them in the staging area, by thread
 * `tid` of them; emitted before the kernel body that uses them. */
void cg_emit_stage_held(const cg_values *e, const char *held, const char *chunk, const char *threads, const char *tid);

#endif
