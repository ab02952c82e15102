/* reference/ref_check.c: which modules the reference evaluates, and the sizes they imply.
 *
 * The IR verifier already guarantees well-typed values; this file checks what the evaluators rely on
 * beyond that, so that they can index without further tests:
 *   - linear part: query and key of one length K, value of length V; the gate matches the decay class
 *     (CONST: per head, never per token; SCALAR: a scalar; VECTOR: K channels or a scalar broadcast);
 *     DELTA has a scalar beta; an igate (mLSTM) only with the additive update, a scalar or no decay and
 *     NORM_MAXFLOOR; DENOM and MAXFLOOR not with DELTA; mask NONE only with no decay, the additive update
 *     and no stabiliser;
 *   - heads: every state-forming role's count divides Hs, Hq and Hs divide Hout = max(Hq, Hs);
 *   - softmax part: query and key of one length, value of length V (the linear part's when both are
 *     present), every role's head count divides Hout; no window with mask NONE.
 */
#include "ref_internal.h"

#include <stdio.h>

bool ref_fail(attnc_diags *d, attnc_span at, const char *fmt, ...)
{
    if (!d)
        return false;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    attnc_error(d, at, "reference: %s", msg);
    return false;
}

double *ref_doubles(attnc_arena *a, size_t n)
{
    if (n > SIZE_MAX / sizeof(double))
        return NULL;
    return attnc_arena_alloc(a, n * sizeof(double));
}

uint32_t ref_value_heads(const ir_module *m, ir_ref r)
{
    uint8_t axis = m->values[r].type.axis;
    return axis != IR_NO_AXIS && axis < m->naxes ? m->axes[axis].count : 1;
}

static bool valid_ref(const ir_module *m, ir_ref r)
{
    return r != IR_NONE && r < m->nvalues;
}

/* A role must be present, scalar if `scalar`, and its heads must divide `total`. */
static bool check_role(const ir_module *m, ir_ref r, const char *name, uint32_t total, attnc_span at,
                       attnc_diags *d)
{
    if (!valid_ref(m, r))
        return ref_fail(d, at, "the %s is missing", name);
    uint32_t h = ref_value_heads(m, r);
    if (h == 0 || total % h != 0)
        return ref_fail(d, at, "the %s has %u heads, which do not divide %u", name, h, total);
    return true;
}

static bool check_scalar(const ir_module *m, ir_ref r, const char *name, attnc_span at, attnc_diags *d)
{
    if (m->values[r].type.len != 1)
        return ref_fail(d, at, "the %s must be a scalar per token and head (it has %u channels)", name,
                        m->values[r].type.len);
    return true;
}

static bool check_linear(const ir_module *m, const ir_shape *sh, ref_dims *dims, attnc_diags *d)
{
    const ir_linear *l = &m->linear;
    attnc_span at = l->span;
    if (!valid_ref(m, l->query) || !valid_ref(m, l->key) || !valid_ref(m, l->value))
        return ref_fail(d, at, "the linear part needs a query, a key and a value");
    uint32_t K = m->values[l->query].type.len, V = m->values[l->value].type.len;
    if (m->values[l->key].type.len != K)
        return ref_fail(d, at, "query (%u) and key (%u) lengths differ", K, m->values[l->key].type.len);
    uint32_t Hq = sh->heads_q, Hs = sh->heads_state, Hout = sh->heads_out;
    if (Hq == 0 || Hs == 0 || Hout != (Hq > Hs ? Hq : Hs) || Hout % Hq != 0 || Hout % Hs != 0)
        return ref_fail(d, at, "query heads %u and state heads %u do not nest", Hq, Hs);
    if (!check_role(m, l->query, "query", Hout, at, d) || !check_role(m, l->key, "key", Hs, at, d) ||
        !check_role(m, l->value, "value", Hs, at, d))
        return false;

    switch (l->decay) {
    case IR_DECAY_NONE:
        if (l->gate != IR_NONE)
            return ref_fail(d, at, "a gate without a decay class");
        break;
    case IR_DECAY_CONST:
    case IR_DECAY_SCALAR:
    case IR_DECAY_VECTOR:
        if (!check_role(m, l->gate, "gate", Hs, at, d))
            return false;
        if (l->decay == IR_DECAY_CONST && m->values[l->gate].type.vary == IR_VARY_TOKEN)
            return ref_fail(d, at, "a constant decay's gate must not vary per token");
        if (l->decay != IR_DECAY_VECTOR && !check_scalar(m, l->gate, "gate", at, d))
            return false;
        if (l->decay == IR_DECAY_VECTOR && m->values[l->gate].type.len != 1 &&
            m->values[l->gate].type.len != K)
            return ref_fail(d, at, "the vector gate has %u channels, the key %u", m->values[l->gate].type.len,
                            K);
        break;
    default:
        return ref_fail(d, at, "unknown decay class %d", (int)l->decay);
    }

    if (l->update == IR_UPDATE_DELTA) {
        if (!check_role(m, l->beta, "beta", Hs, at, d) || !check_scalar(m, l->beta, "beta", at, d))
            return false;
        if (l->norm == IR_NORM_DENOM || l->norm == IR_NORM_MAXFLOOR)
            return ref_fail(d, at, "the delta update has no %s normaliser", ir_norm_name(l->norm));
        if (l->igate != IR_NONE)
            return ref_fail(d, at, "an input gate with the delta update");
    } else if (l->update != IR_UPDATE_ADD) {
        return ref_fail(d, at, "unknown update %d", (int)l->update);
    } else if (l->beta != IR_NONE) {
        return ref_fail(d, at, "beta without the delta update");
    }

    if (l->igate != IR_NONE) {
        if (!check_role(m, l->igate, "input gate", Hs, at, d) ||
            !check_scalar(m, l->igate, "input gate", at, d))
            return false;
        if (l->norm != IR_NORM_MAXFLOOR)
            return ref_fail(d, at, "an input gate needs the max-floor normaliser");
    }
    if (l->norm == IR_NORM_MAXFLOOR && l->decay == IR_DECAY_VECTOR)
        return ref_fail(d, at, "the max-floor normaliser with a vector decay (the stabiliser is a scalar)");
    if ((unsigned)l->norm > IR_NORM_LAYER)
        return ref_fail(d, at, "unknown norm %d", (int)l->norm);
    if (m->mask == IR_MASK_NONE &&
        (l->decay != IR_DECAY_NONE || l->update != IR_UPDATE_ADD || l->norm == IR_NORM_MAXFLOOR))
        return ref_fail(d, at, "mask none needs no decay, the additive update and no stabiliser");

    dims->linear = true;
    dims->K = K;
    dims->V = V;
    dims->Hq = Hq;
    dims->Hs = Hs;
    dims->Hout = Hout;
    dims->has_z = l->norm == IR_NORM_DENOM || l->norm == IR_NORM_MAXFLOOR;
    dims->has_m = l->norm == IR_NORM_MAXFLOOR;
    return true;
}

static bool check_softmax(const ir_module *m, const ir_shape *sh, ref_dims *dims, attnc_diags *d)
{
    const ir_softmax *x = &m->softmax;
    attnc_span at = x->span;
    if (!valid_ref(m, x->query) || !valid_ref(m, x->key) || !valid_ref(m, x->value))
        return ref_fail(d, at, "the softmax part needs a query, a key and a value");
    uint32_t sK = m->values[x->query].type.len, V = m->values[x->value].type.len;
    if (m->values[x->key].type.len != sK)
        return ref_fail(d, at, "softmax query (%u) and key (%u) lengths differ", sK,
                        m->values[x->key].type.len);
    uint32_t Hout = dims->linear ? dims->Hout : sh->heads_out;
    if (dims->linear && V != dims->V)
        return ref_fail(d, at, "softmax values have %u channels, the linear part's %u", V, dims->V);
    if (Hout == 0 || !check_role(m, x->query, "softmax query", Hout, at, d) ||
        !check_role(m, x->key, "softmax key", Hout, at, d) ||
        !check_role(m, x->value, "softmax value", Hout, at, d))
        return false;
    if (m->mask == IR_MASK_NONE && x->window != 0)
        return ref_fail(d, at, "a window with mask none");
    dims->softmax = true;
    dims->sK = sK;
    dims->V = V;
    dims->Hout = Hout;
    return true;
}

bool ref_check_module(const ir_module *m, ref_dims *dims, attnc_diags *d)
{
    *dims = (ref_dims){0};
    if (!m->linear.present && !m->softmax.present)
        return ref_fail(d, m->span, "the module has neither a linear nor a softmax part");
    if (m->mask != IR_MASK_CAUSAL && m->mask != IR_MASK_NONE)
        return ref_fail(d, m->span, "unknown mask %d", (int)m->mask);
    ir_shape sh = ir_module_shape(m);
    if (m->linear.present && !check_linear(m, &sh, dims, d))
        return false;
    if (m->softmax.present && !check_softmax(m, &sh, dims, d))
        return false;
    if (dims->V == 0 || dims->Hout == 0)
        return ref_fail(d, m->span, "empty output (V = %u, heads = %u)", dims->V, dims->Hout);
    return true;
}
