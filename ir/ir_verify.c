/* ir/ir_verify.c: every invariant of a module, as diagnostics.
 *
 * Two layers:
 *   - structure: ops, operand order (SSA), operand and tensor indices, every value's type equal to what
 *     ir_infer_type derives, finite constants and ranges;
 *   - the rules of a variant (docs/language.md, "Checks"): role kinds and shapes, K and V in range, head
 *     counts that divide, gates <= 0, beta in [0, 2] and decays in (0, 1] proven by interval analysis,
 *     combinations the math does not allow, a chunk size the kernels can use.
 * Sema relies on the second layer for its variant checks, so a spec and its IR text obey one set of
 * rules; value spans point the diagnostics into whichever file the module came from.
 */
#include <math.h>

#include "ir.h"

#define MIN_KV 16           /* key and value dims the kernels support */
#define MAX_KV 256
#define MIN_CHUNK 16        /* tensor-core tiles are 16 rows */
#define MAX_CHUNK 256
#define MAX_DELTA_CHUNK 128 /* the delta rule's per-chunk triangular solve grows as C^3 */

typedef struct vctx {
    const ir_module *m;
    attnc_diags *d;
} vctx;

static bool valid_ref(const ir_module *m, ir_ref r)
{
    return r != IR_NONE && r < m->nvalues;
}

static bool check_structure(vctx *s)
{
    const ir_module *m = s->m;
    uint32_t errors = s->d->errors;
    for (uint32_t i = 0; i < m->ntensors; i++) {
        const ir_tensor *t = &m->tensors[i];
        if (t->axis >= m->naxes)
            attnc_error(s->d, t->span, "tensor '%s' has no valid head axis", t->name);
        if (t->has_range && !(isfinite(t->lo) && isfinite(t->hi) && t->lo <= t->hi))
            attnc_error(s->d, t->span, "tensor '%s' has an invalid range [%g, %g]", t->name, t->lo, t->hi);
    }
    for (uint32_t i = 1; i < m->nvalues; i++) {
        const ir_value *v = &m->values[i];
        if (v->op >= IR_OP_COUNT) {
            attnc_error(s->d, v->span, "%%%u has an invalid op", i);
            continue;
        }
        int arity = ir_op_arity((ir_op)v->op);
        bool ok = true;
        for (int k = 0; k < 2; k++) {
            if (k < arity && (v->arg[k] == IR_NONE || v->arg[k] >= i)) {
                attnc_error(s->d, v->span, "%%%u uses %%%u, which is not defined before it", i, v->arg[k]);
                ok = false;
            } else if (k >= arity && v->arg[k] != IR_NONE) {
                attnc_error(s->d, v->span, "%%%u has an operand its op does not take", i);
                ok = false;
            }
        }
        if (!ok)
            continue;
        if (v->op == IR_OP_CONST && !isfinite(v->num))
            attnc_error(s->d, v->span, "%%%u is a constant that is not finite", i);
        ir_type t;
        const char *why;
        const ir_type *a = arity >= 1 ? &m->values[v->arg[0]].type : NULL;
        const ir_type *b = arity >= 2 ? &m->values[v->arg[1]].type : NULL;
        if (!ir_infer_type(m, (ir_op)v->op, a, b, v->aux, &t, &why)) {
            attnc_error(s->d, v->span, "%%%u: cannot apply '%s': %s", i, ir_op_name((ir_op)v->op), why);
            continue;
        }
        if (ir_op_kind_of((ir_op)v->op) == IR_KIND_VEC && a->len < 2)
            attnc_error(s->d, v->span, "%%%u: '%s' needs a vector operand", i, ir_op_name((ir_op)v->op));
        else if (t.vary != v->type.vary || t.axis != v->type.axis || t.len != v->type.len)
            attnc_error(s->d, v->span, "%%%u: its type is not the one its op and operands give", i);
    }
    const ir_linear *l = &m->linear;
    const ir_softmax *x = &m->softmax;
    if (l->present) {
        const ir_ref need[] = {l->query, l->key, l->value};
        static const char *const names[] = {"query", "key", "value"};
        for (int k = 0; k < 3; k++)
            if (!valid_ref(m, need[k]))
                attnc_error(s->d, l->span, "the linear part has no valid %s", names[k]);
        if ((l->decay == IR_DECAY_NONE) != (l->gate == IR_NONE) || (l->gate && !valid_ref(m, l->gate)))
            attnc_error(s->d, l->span, "the linear part's gate does not match its decay kind");
        else if (l->decay == IR_DECAY_CONST && m->values[l->gate].op != IR_OP_LOG)
            attnc_error(s->d, l->span, "a constant decay's gate must be a 'log' of the decay");
        /* beta without the delta rule, or the delta rule without beta, is a rule of the variant
         * (check_linear says which); here only a dangling reference. */
        if (l->beta && !valid_ref(m, l->beta))
            attnc_error(s->d, l->span, "the linear part's beta is not a valid value");
        if (l->igate && !valid_ref(m, l->igate))
            attnc_error(s->d, l->span, "the linear part's input gate is not a valid value");
        if (l->norm > IR_NORM_LAYER || !(l->eps >= 0 && l->eps <= 1))
            attnc_error(s->d, l->span, "the linear part's normalisation is invalid");
    }
    if (x->present) {
        if (!valid_ref(m, x->query) || !valid_ref(m, x->key) || !valid_ref(m, x->value))
            attnc_error(s->d, x->span, "the softmax part needs a valid query, key and value");
    }
    if (!l->present && !x->present)
        attnc_error(s->d, m->span, "the module has neither a linear nor a softmax part");
    if (!l->present && (m->state_in || m->state_out))
        attnc_error(s->d, m->span, "state input or output needs a linear part");
    return s->d->errors == errors;
}

/* ---- the rules of a variant ---------------------------------------------------------------- */

/* Where the spec bound the role that holds `r`, else where the value was written. */
static attnc_span role_span(vctx *s, ir_ref r)
{
    ir_module *m = (ir_module *)s->m; /* ir_role_slot only reads here */
    for (int i = 0; r && i < IR_ROLE_COUNT; i++)
        if (*ir_role_slot(m, (ir_role)i) == r && m->role_at[i].file)
            return m->role_at[i];
    return r ? m->values[r].span : (attnc_span){0, 0, 0};
}

static bool check_token_vector(vctx *s, ir_ref r, const char *role)
{
    if (r == IR_NONE)
        return false;
    const ir_type *t = &s->m->values[r].type;
    if (t->vary != IR_VARY_TOKEN) {
        attnc_error(s->d, role_span(s, r), "the %s must vary per token (it must depend on an input)", role);
        return false;
    }
    if (t->len < 2) {
        attnc_error(s->d, role_span(s, r), "the %s must be a vector per token and head, not a scalar", role);
        return false;
    }
    return true;
}

static bool check_token_scalar(vctx *s, ir_ref r, const char *role)
{
    const ir_type *t = &s->m->values[r].type;
    if (t->vary != IR_VARY_TOKEN) {
        attnc_error(s->d, role_span(s, r), "the %s must vary per token (it must depend on an input)", role);
        return false;
    }
    if (t->len != 1) {
        attnc_error(s->d, role_span(s, r), "the %s must be one number per token and head, not a vector of %u",
                    role, t->len);
        return false;
    }
    return true;
}

static void check_dim_range(vctx *s, ir_ref r, const char *what, const char *letter)
{
    uint32_t n = s->m->values[r].type.len;
    if (n < MIN_KV || n > MAX_KV)
        attnc_error(s->d, role_span(s, r), "the %s dimension %s = %u is out of range (%d..%d)", what, letter, n,
                    MIN_KV, MAX_KV);
}

static void range_note(vctx *s, ir_ref r)
{
    attnc_note(s->d, role_span(s, r),
               "write it through a bounding function (logsigmoid, sigmoid, ...) or declare the input's range "
               "with 'in [lo, hi]'");
}

static bool has_l2norm(const ir_module *m, ir_ref r)
{
    while (r) {
        const ir_value *v = &m->values[r];
        if (v->op == IR_OP_L2NORM)
            return true;
        if ((v->op == IR_OP_MUL || v->op == IR_OP_DIV) && m->values[v->arg[1]].op == IR_OP_CONST)
            r = v->arg[0];
        else if (v->op == IR_OP_MUL && m->values[v->arg[0]].op == IR_OP_CONST)
            r = v->arg[1];
        else
            return false;
    }
    return false;
}

/* Every state-forming role's head count divides the state's; the query's divides it or is a multiple. */
static void check_heads(vctx *s, const char *part, ir_ref q, const ir_ref *roles, const char *const *names, int n,
                        uint32_t hs)
{
    for (int i = 0; i < n; i++) {
        if (!roles[i] || s->m->values[roles[i]].type.axis == IR_NO_AXIS)
            continue;
        uint32_t h = ir_role_heads(s->m, roles[i]);
        if (hs % h) {
            attnc_error(s->d, role_span(s, roles[i]),
                        "the %s has %u heads, which does not divide the %u heads of the %s state", names[i], h, hs,
                        part);
        }
    }
    uint32_t hq = ir_role_heads(s->m, q);
    if (hs % hq && hq % hs)
        attnc_error(s->d, role_span(s, q),
                    "the query has %u heads; it must divide the %u state heads (GVA) or be a multiple of them (GQA)",
                    hq, hs);
}

static void check_linear(vctx *s, const ir_interval *rg)
{
    const ir_module *m = s->m;
    const ir_linear *l = &m->linear;
    bool q = check_token_vector(s, l->query, "query");
    bool k = check_token_vector(s, l->key, "key");
    bool v = check_token_vector(s, l->value, "value");
    if (q && k && m->values[l->query].type.len != m->values[l->key].type.len) {
        attnc_error(s->d, role_span(s, l->key), "the key has %u features but the query has %u",
                    m->values[l->key].type.len, m->values[l->query].type.len);
        attnc_note(s->d, role_span(s, l->query), "the query is bound here");
        k = false;
    }
    if (q)
        check_dim_range(s, l->query, "key", "K");
    if (v)
        check_dim_range(s, l->value, "value", "V");
    uint32_t K = q ? m->values[l->query].type.len : 0;

    if (l->decay == IR_DECAY_CONST && l->gate) {
        ir_ref lam = m->values[l->gate].arg[0]; /* the gate is log(lambda) (check_structure) */
        attnc_span at = role_span(s, l->gate);  /* the 'decay = ...' binding */
        if (m->values[lam].type.vary == IR_VARY_TOKEN) {
            attnc_error(s->d, at,
                        "a decay is constant per head; a decay that varies per token is a 'gate' (in log space)");
        } else if (m->values[lam].type.len != 1) {
            attnc_error(s->d, at, "a decay is one number per head, not a vector");
        } else if (!(rg[lam].lo > 0 && rg[lam].hi <= 1)) {
            attnc_error(s->d, at, "a decay must lie in (0, 1]; here it lies in [%g, %g]", rg[lam].lo, rg[lam].hi);
        }
    } else if (l->gate) {
        const ir_type *t = &m->values[l->gate].type;
        if (t->vary != IR_VARY_TOKEN) {
            attnc_error(s->d, role_span(s, l->gate),
                        "the gate must vary per token; a fixed per-head decay is written 'decay = lambda' (in (0, 1])");
        } else if (q && t->len != 1 && t->len != K) {
            attnc_error(s->d, role_span(s, l->gate),
                        "the gate must be a scalar per head or a vector of K = %u features, not a vector of %u", K,
                        t->len);
        } else if ((l->decay == IR_DECAY_SCALAR) != (t->len == 1)) {
            attnc_error(s->d, role_span(s, l->gate), "a '%s' decay needs a gate of %s, not a vector of %u",
                        ir_decay_name(l->decay), l->decay == IR_DECAY_SCALAR ? "one number" : "K features", t->len);
        } else if (rg[l->gate].hi > 0) {
            attnc_error(s->d, role_span(s, l->gate),
                        "the gate is a log-space decay and must be <= 0; here it lies in [%g, %g]", rg[l->gate].lo,
                        rg[l->gate].hi);
            range_note(s, l->gate);
        }
    }
    if (l->update == IR_UPDATE_DELTA && !l->beta)
        attnc_error(s->d, l->span, "'update delta' needs a 'beta' (the write strength)");
    if (l->beta) {
        if (l->update != IR_UPDATE_DELTA) {
            attnc_error(s->d, role_span(s, l->beta), "'beta' is used only by the delta rule ('update delta')");
        } else if (check_token_scalar(s, l->beta, "beta") && (rg[l->beta].lo < 0 || rg[l->beta].hi > 2)) {
            attnc_error(s->d, role_span(s, l->beta), "beta must lie in [0, 2]; here it lies in [%g, %g]",
                        rg[l->beta].lo, rg[l->beta].hi);
            range_note(s, l->beta);
        }
    }
    if (l->igate && check_token_scalar(s, l->igate, "input gate")) {
        if (l->update == IR_UPDATE_DELTA)
            attnc_error(s->d, role_span(s, l->igate), "an input gate ('igate') needs 'update additive'");
        else if (l->decay == IR_DECAY_VECTOR)
            attnc_error(s->d, role_span(s, l->igate),
                        "an input gate needs a scalar gate: its stabiliser is one number per head");
        else if (l->norm != IR_NORM_MAXFLOOR)
            attnc_error(s->d, role_span(s, l->igate),
                        "an input gate needs 'normalize max_floor': the stabiliser cancels only in the ratio");
    }
    if (l->norm == IR_NORM_MAXFLOOR && !l->igate) {
        /* max_floor without an input gate is the mLSTM normaliser with i = 0: it has the same limits. */
        if (l->update == IR_UPDATE_DELTA)
            attnc_error(s->d, l->span, "'normalize max_floor' needs 'update additive' (the mLSTM normaliser)");
        else if (l->decay == IR_DECAY_VECTOR)
            attnc_error(s->d, role_span(s, l->gate),
                        "'normalize max_floor' needs a scalar gate: its stabiliser is one number per head");
    }
    if (l->update == IR_UPDATE_DELTA && l->norm == IR_NORM_DENOM)
        attnc_error(s->d, l->span, "the delta rule has no running denominator; use rmsnorm, layernorm or none");
    if (l->update == IR_UPDATE_DELTA && k && !has_l2norm(m, l->key))
        attnc_warning(s->d, role_span(s, l->key),
                      "the delta rule is stable only for unit-norm keys; consider 'key = l2norm(...)'");
    if (m->mask == IR_MASK_NONE &&
        (l->decay != IR_DECAY_NONE || l->update != IR_UPDATE_ADD || l->igate || l->norm == IR_NORM_MAXFLOOR))
        attnc_error(s->d, l->span,
                    "'mask none' (bidirectional) needs a linear part without gate, decay, delta rule, input gate or "
                    "max_floor normaliser");

    if (q && k && v) {
        ir_ref roles[] = {l->key, l->value, l->decay == IR_DECAY_CONST ? IR_NONE : l->gate, l->beta, l->igate};
        static const char *const names[] = {"key", "value", "gate", "beta", "input gate"};
        ir_shape sh = ir_module_shape(m);
        check_heads(s, "linear", l->query, roles, names, 5, sh.heads_state);
        if (l->decay == IR_DECAY_CONST && m->values[l->gate].type.axis != IR_NO_AXIS &&
            sh.heads_state % ir_role_heads(m, l->gate))
            attnc_error(s->d, role_span(s, l->gate), "the decay's heads do not divide the %u state heads",
                        sh.heads_state);
    }
}

static void check_softmax(vctx *s)
{
    const ir_module *m = s->m;
    const ir_softmax *x = &m->softmax;
    bool q = check_token_vector(s, x->query, "softmax query");
    bool k = check_token_vector(s, x->key, "softmax key");
    bool v = check_token_vector(s, x->value, "softmax value");
    if (q && k && m->values[x->query].type.len != m->values[x->key].type.len) {
        attnc_error(s->d, role_span(s, x->key), "the softmax key has %u features but its query has %u",
                    m->values[x->key].type.len, m->values[x->query].type.len);
        k = false;
    }
    if (q)
        check_dim_range(s, x->query, "softmax key", "K");
    if (v)
        check_dim_range(s, x->value, "softmax value", "V");
    if (k && v && ir_role_heads(m, x->key) != ir_role_heads(m, x->value))
        attnc_error(s->d, role_span(s, x->value), "the softmax key and value must have the same heads (%u vs %u)",
                    ir_role_heads(m, x->key), ir_role_heads(m, x->value));
    else if (q && k && ir_role_heads(m, x->query) % ir_role_heads(m, x->key))
        attnc_error(s->d, role_span(s, x->query),
                    "the softmax query's %u heads must be a multiple of the key's %u heads (GQA)",
                    ir_role_heads(m, x->query), ir_role_heads(m, x->key));
    if (x->window && m->mask == IR_MASK_NONE)
        attnc_error(s->d, x->span, "a sliding window needs 'mask causal'");
    if (q && v && m->linear.present && m->linear.query && m->linear.value) {
        ir_shape sh = ir_module_shape(m);
        if (m->values[x->value].type.len != sh.V)
            attnc_error(s->d, role_span(s, x->value),
                        "the softmax value has %u channels but the linear part's has %u; the outputs are summed",
                        m->values[x->value].type.len, sh.V);
        if (ir_role_heads(m, x->query) != sh.heads_out)
            attnc_error(s->d, role_span(s, x->query),
                        "the softmax part has %u query heads but the linear part has %u output heads; the outputs "
                        "are summed",
                        ir_role_heads(m, x->query), sh.heads_out);
    }
}

static void check_chunk(vctx *s)
{
    const ir_module *m = s->m;
    uint32_t c = m->chunk;
    if (c == 0)
        return;
    attnc_span at = m->chunk_span;
    if (c < MIN_CHUNK || c > MAX_CHUNK || (c & (c - 1))) {
        attnc_error(s->d, at, "a chunk size must be a power of two from %d to %d, not %u", MIN_CHUNK, MAX_CHUNK, c);
        return;
    }
    if (m->linear.present && m->linear.update == IR_UPDATE_DELTA && c > MAX_DELTA_CHUNK) {
        attnc_error(s->d, at, "the delta rule works with chunks of at most %d tokens, not %u", MAX_DELTA_CHUNK, c);
        attnc_note(s->d, m->linear.span, "the delta rule's triangular solve per chunk grows as C^3");
    }
}


bool ir_verify_rules(const ir_module *m, attnc_diags *diags)
{
    vctx s = {m, diags};
    uint32_t errors = diags->errors;
    ir_interval *rg = ir_ranges(m, diags->arena);
    if (!rg)
        return false;
    if (m->linear.present)
        check_linear(&s, rg);
    if (m->softmax.present)
        check_softmax(&s);
    check_chunk(&s);
    return diags->errors == errors;
}

/* The plan's invariants (passes/ fill it stage by stage; the kernel generator trusts it). */
static bool check_plan(vctx *s)
{
    const ir_module *m = s->m;
    const ir_plan *p = &m->plan;
    uint32_t errors = s->d->errors;
    if (p->stage == IR_PLAN_NONE)
        return true;
    ir_shape sh = ir_module_shape(m);
    const ir_linear *l = &m->linear;
    if (p->chunk == 0 || (p->chunk & (p->chunk - 1)) || p->chunk > MAX_CHUNK)
        attnc_error(s->d, m->span, "plan: chunk %u is not a power of two up to %d", p->chunk, MAX_CHUNK);
    if (l->present) {
        unsigned want = l->decay == IR_DECAY_NONE ? IR_TR_IDENTITY : l->decay == IR_DECAY_CONST ? IR_TR_CONST
                        : l->decay == IR_DECAY_SCALAR ? IR_TR_SCALAR : IR_TR_DIAG;
        if (p->transition != want || p->householder != (l->update == IR_UPDATE_DELTA) ||
            p->stabilized != (l->norm == IR_NORM_MAXFLOOR))
            attnc_error(s->d, m->span, "plan: the chunked class does not match the linear part");
        if (p->subchunk && (p->chunk % p->subchunk || p->transition != IR_TR_DIAG))
            attnc_error(s->d, m->span, "plan: sub-chunk %u does not fit", p->subchunk);
    }
    if (p->stage >= IR_PLAN_TILED && l->present) {
        if (p->k_pad < sh.K || p->k_pad % 16)
            attnc_error(s->d, m->span, "plan: k_pad %u does not cover K = %u in steps of 16", p->k_pad, sh.K);
        if (p->v_tile == 0 || p->v_tile % 8 || sh.V % p->v_tile)
            attnc_error(s->d, m->span, "plan: v_tile %u does not divide V = %u in steps of 8", p->v_tile, sh.V);
        if (p->col_groups == 0 || p->warps != p->col_groups * (p->chunk / 16) ||
            p->v_tile % (8 * p->col_groups))
            attnc_error(s->d, m->span, "plan: %u warps in %u column groups do not tile the chunk", p->warps,
                        p->col_groups);
        if (p->state_groups == 0 || p->warps % p->state_groups || (p->v_tile / 8) % p->state_groups)
            attnc_error(s->d, m->span, "plan: %u state groups do not split %u warps and %u state columns", p->state_groups,
                        p->warps, p->v_tile);
        if (p->shared_scores && !ir_plan_can_share_scores(m))
            attnc_error(s->d, m->span, "plan: shared scores need a causal mask, several column groups, no "
                        "normaliser and no stabiliser");
    }
    if (p->stage >= IR_PLAN_FUSED)
        for (unsigned r = 0; r < IR_ROLE_COUNT; r++) {
            bool bound = *ir_role_slot((ir_module *)m, (ir_role)r) != IR_NONE;
            bool src_ok = p->feed[r] != IR_FEED_DIRECT && p->feed[r] != IR_FEED_SCALED
                          ? true : valid_ref(m, p->feed_src[r]) && m->values[p->feed_src[r]].op == IR_OP_INPUT;
            if (p->feed[r] > IR_FEED_MAPPED || bound != (p->feed[r] != IR_FEED_ABSENT) || !src_ok)
                attnc_error(s->d, m->span, "plan: the feed of the %s is inconsistent", ir_role_name((ir_role)r));
        }
    if (p->stage >= IR_PLAN_SCHEDULED && (p->schedules == 0 || p->schedules >= 32))
        attnc_error(s->d, m->span, "plan: no valid schedule");
    return s->d->errors == errors;
}

bool ir_verify(const ir_module *m, attnc_diags *diags)
{
    vctx s = {m, diags};
    return check_structure(&s) && ir_verify_rules(m, diags) && check_plan(&s);
}
