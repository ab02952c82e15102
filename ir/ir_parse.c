/* ir/ir_parse.c: reads the IR text form (docs/ir.md) that ir_print writes.
 *
 * A small hand-written scanner (words, %refs, numbers, punctuation, newlines) and a line-oriented
 * reader: each line is one declaration, value or block entry.  A malformed line gets a located
 * diagnostic and the reader skips to the next line, so one run reports every bad line.  The reader
 * checks syntax and name resolution only; ir_verify checks the module's meaning (types, roles, ranges).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

#define MAX_DECLS 4096 /* dims, axes or tensors in one module */

typedef enum tok_kind { T_EOF, T_NL, T_WORD, T_REF, T_NUM, T_PUNCT, T_BAD } tok_kind;

typedef struct tok {
    tok_kind kind;
    uint32_t start, end;
    char punct;
    double num;
    uint32_t ref;
} tok;

typedef struct reader {
    attnc_arena *arena;
    attnc_diags *diags;
    uint32_t file;
    const char *text;
    uint32_t len, pos;
    tok t;        /* current token */
    bool line_bad; /* an error was reported on this line */
    ir_module *m;
} reader;

static attnc_span span_of(const reader *r, const tok *t)
{
    return (attnc_span){r->file, t->start, t->end};
}

static void next(reader *r)
{
    const char *s = r->text;
    while (r->pos < r->len && (s[r->pos] == ' ' || s[r->pos] == '\t' || s[r->pos] == '\r'))
        r->pos++;
    tok t = {.start = r->pos};
    if (r->pos >= r->len) {
        t.kind = T_EOF;
    } else if (s[r->pos] == '\n') {
        t.kind = T_NL;
        r->pos++;
    } else if (s[r->pos] == '#') { /* comment to the end of the line */
        while (r->pos < r->len && s[r->pos] != '\n')
            r->pos++;
        r->t.start = r->pos;
        next(r);
        return;
    } else if (s[r->pos] == '_' || ((s[r->pos] | 32) >= 'a' && (s[r->pos] | 32) <= 'z')) {
        t.kind = T_WORD;
        while (r->pos < r->len && (s[r->pos] == '_' || s[r->pos] == '-' || ((s[r->pos] | 32) >= 'a' && (s[r->pos] | 32) <= 'z') ||
                                   (s[r->pos] >= '0' && s[r->pos] <= '9')))
            r->pos++;
    } else if (s[r->pos] == '%') {
        t.kind = T_REF;
        r->pos++;
        uint64_t n = 0;
        uint32_t digits = 0;
        while (r->pos < r->len && s[r->pos] >= '0' && s[r->pos] <= '9') {
            if (n < 100000000u)
                n = n * 10 + (uint64_t)(s[r->pos] - '0');
            r->pos++;
            digits++;
        }
        if (!digits || n >= 100000000u)
            t.kind = T_BAD;
        t.ref = (uint32_t)n;
    } else if ((s[r->pos] >= '0' && s[r->pos] <= '9') || s[r->pos] == '-' || s[r->pos] == '+' || s[r->pos] == '.') {
        char buf[64];
        uint32_t n = 0;
        while (r->pos < r->len && n < sizeof buf - 1 && strchr("0123456789+-.eEinfa", s[r->pos]) && s[r->pos]) {
            buf[n++] = s[r->pos++];
        }
        buf[n] = 0;
        char *end;
        errno = 0;
        t.num = strtod(buf, &end);
        t.kind = (*end == 0 && n > 0 && isfinite(t.num)) ? T_NUM : T_BAD;
    } else if (s[r->pos] && strchr("=:[],{}", s[r->pos])) {
        t.kind = T_PUNCT;
        t.punct = s[r->pos++];
    } else {
        t.kind = T_BAD;
        r->pos++;
    }
    t.end = r->pos;
    r->t = t;
}

static void fail(reader *r, const char *what)
{
    if (!r->line_bad) {
        unsigned char c = (unsigned char)r->text[r->t.start];
        if (r->t.kind == T_NL || r->t.kind == T_EOF)
            attnc_error(r->diags, span_of(r, &r->t), "expected %s at the end of the line", what);
        else if (r->t.kind == T_BAD && (c < 0x20 || c > 0x7e)) /* a stray byte: never copied into a message */
            attnc_error(r->diags, span_of(r, &r->t), "expected %s, found the byte 0x%02x", what, c);
        else
            attnc_error(r->diags, span_of(r, &r->t), "expected %s, found '%.*s'", what,
                        (int)(r->t.end - r->t.start > 30 ? 30 : r->t.end - r->t.start), r->text + r->t.start);
    }
    r->line_bad = true;
}

static bool is_word(reader *r, const char *w)
{
    return r->t.kind == T_WORD && strlen(w) == r->t.end - r->t.start && memcmp(r->text + r->t.start, w, strlen(w)) == 0;
}

static bool accept_word(reader *r, const char *w)
{
    if (!is_word(r, w))
        return false;
    next(r);
    return true;
}

static bool expect_punct(reader *r, char c)
{
    if (r->t.kind == T_PUNCT && r->t.punct == c) {
        next(r);
        return true;
    }
    char what[8] = {'\'', c, '\'', 0};
    fail(r, what);
    return false;
}

static const char *name(reader *r)
{
    if (r->t.kind != T_WORD) {
        fail(r, "a name");
        return NULL;
    }
    const char *n = attnc_arena_strndup(r->arena, r->text + r->t.start, r->t.end - r->t.start);
    next(r);
    return n;
}

static bool number(reader *r, double *out)
{
    if (r->t.kind != T_NUM) {
        fail(r, "a number");
        return false;
    }
    *out = r->t.num;
    next(r);
    return true;
}

static bool integer(reader *r, double lo, double hi, uint32_t *out)
{
    tok at = r->t;
    double x;
    if (!number(r, &x))
        return false;
    if (x != floor(x) || x < lo || x > hi) {
        attnc_error(r->diags, span_of(r, &at), "expected an integer from %.0f to %.0f", lo, hi);
        r->line_bad = true;
        return false;
    }
    *out = (uint32_t)x;
    return true;
}

static bool ref(reader *r, ir_ref *out)
{
    if (r->t.kind != T_REF) {
        fail(r, "a value reference '%N'");
        return false;
    }
    if (r->t.ref == 0 || r->t.ref >= r->m->nvalues) {
        attnc_error(r->diags, span_of(r, &r->t), "%%%u is not a value defined above", r->t.ref);
        r->line_bad = true;
        return false;
    }
    *out = r->t.ref;
    next(r);
    return true;
}

static bool end_line(reader *r)
{
    if (r->t.kind == T_NL) {
        next(r);
        return true;
    }
    if (r->t.kind == T_EOF)
        return true;
    fail(r, "the end of the line");
    return false;
}

static void skip_line(reader *r)
{
    while (r->t.kind != T_NL && r->t.kind != T_EOF)
        next(r);
    if (r->t.kind == T_NL)
        next(r);
    r->line_bad = false;
}

static int find_axis(reader *r, const char *n)
{
    for (uint32_t i = 0; i < r->m->naxes; i++)
        if (strcmp(r->m->axes[i].name, n) == 0)
            return (int)i;
    return -1;
}

/* A second declaration of a dim, axis or tensor name is an error (the names share one space). */
static bool name_taken(reader *r, const char *n, attnc_span at)
{
    const ir_module *m = r->m;
    bool taken = false;
    for (uint32_t i = 0; i < m->ndims && !taken; i++)
        taken = strcmp(m->dims[i].name, n) == 0;
    for (uint32_t i = 0; i < m->naxes && !taken; i++)
        taken = strcmp(m->axes[i].name, n) == 0;
    for (uint32_t i = 0; i < m->ntensors && !taken; i++)
        taken = strcmp(m->tensors[i].name, n) == 0;
    if (taken) {
        attnc_error(r->diags, at, "'%s' is declared twice", n);
        r->line_bad = true;
    }
    return taken;
}

static bool axis_ref(reader *r, bool allow_none, uint8_t *out)
{
    tok at = r->t;
    /* '-' (no axis) is scanned as a malformed number */
    if (allow_none && r->t.kind == T_BAD && r->t.end - r->t.start == 1 && r->text[r->t.start] == '-') {
        next(r);
        *out = IR_NO_AXIS;
        return true;
    }
    const char *n = name(r);
    if (!n)
        return false;
    int a = find_axis(r, n);
    if (a < 0) {
        attnc_error(r->diags, span_of(r, &at), "'%s' is not a head axis declared above", n);
        r->line_bad = true;
        return false;
    }
    *out = (uint8_t)a;
    return true;
}

static void *grow(reader *r, void *p, uint32_t n, size_t elem)
{
    return attnc_arena_push(r->arena, p, n, elem);
}

static bool too_many(reader *r, uint32_t n)
{
    if (n < MAX_DECLS)
        return false;
    attnc_error(r->diags, span_of(r, &r->t), "too many declarations (at most %d)", MAX_DECLS);
    r->line_bad = true;
    return true;
}

static void read_dim_or_heads(reader *r, bool heads)
{
    tok at = r->t;
    const char *n = name(r);
    uint32_t v;
    if (!n || name_taken(r, n, span_of(r, &at)) || !expect_punct(r, '=') ||
        !integer(r, 1, heads ? 4096 : 65536, &v) || !end_line(r))
        return;
    ir_module *m = r->m;
    if (heads) {
        if (too_many(r, m->naxes))
            return;
        if (m->naxes >= 250) {
            attnc_error(r->diags, span_of(r, &at), "too many head axes (at most 250)");
            r->line_bad = true;
            return;
        }
        ir_axis *a = grow(r, m->axes, m->naxes, sizeof *a);
        if (!a)
            return;
        m->axes = a;
        a[m->naxes++] = (ir_axis){n, v, span_of(r, &at)};
    } else {
        if (too_many(r, m->ndims))
            return;
        ir_dim *d = grow(r, m->dims, m->ndims, sizeof *d);
        if (!d)
            return;
        m->dims = d;
        d[m->ndims++] = (ir_dim){n, v, span_of(r, &at)};
    }
}

static void read_tensor(reader *r, bool per_token)
{
    tok at = r->t;
    ir_tensor t = {.per_token = per_token, .len = 1};
    t.name = name(r);
    if (!t.name || name_taken(r, t.name, span_of(r, &at)) || !expect_punct(r, ':'))
        return;
    tok dt = r->t;
    if (dt.kind != T_WORD || !ir_dtype_by_name(r->text + dt.start, dt.end - dt.start, &t.dtype)) {
        fail(r, "a dtype (bf16, fp16 or fp32)");
        return;
    }
    next(r);
    if (!expect_punct(r, '[') || !axis_ref(r, false, &t.axis))
        return;
    if (r->t.kind == T_PUNCT && r->t.punct == ',') {
        next(r);
        uint32_t len;
        if (!integer(r, 1, 65535, &len))
            return;
        t.len = (uint16_t)len;
    }
    if (!expect_punct(r, ']'))
        return;
    if (accept_word(r, "in")) {
        if (!expect_punct(r, '[') || !number(r, &t.lo) || !expect_punct(r, ',') || !number(r, &t.hi) ||
            !expect_punct(r, ']'))
            return;
        t.has_range = true;
    }
    if (!end_line(r) || too_many(r, r->m->ntensors))
        return;
    t.span = span_of(r, &at);
    ir_tensor *ts = grow(r, r->m->tensors, r->m->ntensors, sizeof *ts);
    if (!ts)
        return;
    r->m->tensors = ts;
    ts[r->m->ntensors++] = t;
}

static void read_value_body(reader *r, tok at);

static void read_value(reader *r)
{
    ir_module *m = r->m;
    tok at = r->t;
    if (r->t.ref != m->nvalues) {
        attnc_error(r->diags, span_of(r, &at), "expected %%%u (values are numbered in order), found %%%u", m->nvalues,
                    r->t.ref);
        r->line_bad = true;
        return;
    }
    next(r);
    uint32_t n = m->nvalues;
    read_value_body(r, at);
    if (m->nvalues == n) {
        /* The line was bad (and reported): its number stays taken by a placeholder, so that the lines
         * after it are not all misnumbered.  A module with errors is discarded, placeholder and all. */
        ir_value hole = {.op = IR_OP_CONST, .type = {IR_VARY_CONST, IR_NO_AXIS, 1}, .span = span_of(r, &at)};
        ir_add_value(m, hole);
    }
}

static void read_value_body(reader *r, tok at)
{
    ir_module *m = r->m;
    if (!expect_punct(r, '='))
        return;
    tok opt = r->t;
    if (opt.kind != T_WORD) {
        fail(r, "an operation");
        return;
    }
    ir_op op = ir_op_by_name(r->text + opt.start, opt.end - opt.start);
    if (op == IR_OP_COUNT) {
        attnc_error(r->diags, span_of(r, &opt), "unknown operation '%.*s'", (int)(opt.end - opt.start > 30 ? 30 : opt.end - opt.start),
                    r->text + opt.start);
        r->line_bad = true;
        return;
    }
    next(r);
    ir_value v = {.op = (uint8_t)op};
    if (op == IR_OP_CONST) {
        if (!number(r, &v.num))
            return;
    } else if (op == IR_OP_INPUT || op == IR_OP_PARAM) {
        tok nt = r->t;
        const char *n = name(r);
        if (!n)
            return;
        uint32_t i = 0;
        while (i < m->ntensors && strcmp(m->tensors[i].name, n) != 0)
            i++;
        if (i == m->ntensors) {
            attnc_error(r->diags, span_of(r, &nt), "'%s' is not a tensor declared above", n);
            r->line_bad = true;
            return;
        }
        v.aux = i;
    } else if (op == IR_OP_HEAD) {
        uint8_t a;
        if (!axis_ref(r, false, &a))
            return;
        v.aux = a;
    } else {
        for (int k = 0; k < ir_op_arity(op); k++)
            if ((k && !expect_punct(r, ',')) || !ref(r, &v.arg[k]))
                return;
    }
    if (!expect_punct(r, ':'))
        return;
    static const char *const varies[] = {"const", "head", "token"};
    int vary = -1;
    for (int i = 0; i < 3; i++)
        if (is_word(r, varies[i]))
            vary = i;
    if (vary < 0) {
        fail(r, "'const', 'head' or 'token'");
        return;
    }
    next(r);
    v.type.vary = (uint8_t)vary;
    uint32_t len;
    if (!axis_ref(r, true, &v.type.axis) || !integer(r, 1, 65535, &len) || !end_line(r))
        return;
    v.type.len = (uint16_t)len;
    v.span = span_of(r, &at);
    ir_add_value(m, v);
}

static bool read_block_ref(reader *r, ir_ref *dst)
{
    return ref(r, dst) && end_line(r);
}

static void read_linear(reader *r)
{
    ir_linear *l = &r->m->linear;
    l->present = true;
    l->span = span_of(r, &r->t);
    if (!expect_punct(r, '{') || !end_line(r))
        skip_line(r);
    while (r->t.kind != T_EOF && !(r->t.kind == T_PUNCT && r->t.punct == '}')) {
        if (r->t.kind == T_NL) {
            next(r);
            continue;
        }
        bool ok = true;
        if (accept_word(r, "query"))
            ok = read_block_ref(r, &l->query);
        else if (accept_word(r, "key"))
            ok = read_block_ref(r, &l->key);
        else if (accept_word(r, "value"))
            ok = read_block_ref(r, &l->value);
        else if (accept_word(r, "igate"))
            ok = read_block_ref(r, &l->igate);
        else if (accept_word(r, "decay")) {
            int d = -1;
            for (int i = 0; i < 4; i++)
                if (is_word(r, ir_decay_name((ir_decay)i)))
                    d = i;
            if (d < 0) {
                fail(r, "'none', 'const', 'scalar' or 'vector'");
                ok = false;
            } else {
                next(r);
                l->decay = (ir_decay)d;
                ok = d == IR_DECAY_NONE ? end_line(r) : read_block_ref(r, &l->gate);
            }
        } else if (accept_word(r, "update")) {
            if (accept_word(r, "additive")) {
                l->update = IR_UPDATE_ADD;
                ok = end_line(r);
            } else if (accept_word(r, "delta")) {
                l->update = IR_UPDATE_DELTA;
                ok = read_block_ref(r, &l->beta);
            } else {
                fail(r, "'additive' or 'delta'");
                ok = false;
            }
        } else if (accept_word(r, "normalize")) {
            int n = -1;
            for (int i = 0; i < 5; i++)
                if (is_word(r, ir_norm_name((ir_norm)i)))
                    n = i;
            if (n < 0) {
                fail(r, "a normalisation (none, denominator, max_floor, rmsnorm, layernorm)");
                ok = false;
            } else {
                next(r);
                l->norm = (ir_norm)n;
                ok = n == IR_NORM_NONE ? end_line(r) : number(r, &l->eps) && end_line(r);
            }
        } else {
            fail(r, "a linear entry (query, key, value, decay, update, igate, normalize) or '}'");
            ok = false;
        }
        if (!ok)
            skip_line(r);
    }
    if (expect_punct(r, '}'))
        end_line(r);
}

static void read_softmax(reader *r)
{
    ir_softmax *x = &r->m->softmax;
    x->present = true;
    x->span = span_of(r, &r->t);
    if (!expect_punct(r, '{') || !end_line(r))
        skip_line(r);
    while (r->t.kind != T_EOF && !(r->t.kind == T_PUNCT && r->t.punct == '}')) {
        if (r->t.kind == T_NL) {
            next(r);
            continue;
        }
        bool ok;
        if (accept_word(r, "query"))
            ok = read_block_ref(r, &x->query);
        else if (accept_word(r, "key"))
            ok = read_block_ref(r, &x->key);
        else if (accept_word(r, "value"))
            ok = read_block_ref(r, &x->value);
        else if (accept_word(r, "window"))
            ok = integer(r, 0, 1 << 24, &x->window) && end_line(r);
        else {
            fail(r, "a softmax entry (query, key, value, window) or '}'");
            ok = false;
        }
        if (!ok)
            skip_line(r);
    }
    if (expect_punct(r, '}'))
        end_line(r);
}

/* `name VALUE` with VALUE an integer in [lo, hi]. */
static bool keyed_integer(reader *r, const char *key, double lo, double hi, uint32_t *out)
{
    if (!accept_word(r, key)) {
        char what[48];
        snprintf(what, sizeof what, "'%s'", key);
        fail(r, what);
        return false;
    }
    return integer(r, lo, hi, out);
}

/* Which of `count` names (from `name_of`) the current word is; -1 (after a diagnostic) if none. */
static int one_of(reader *r, const char *(*name_of)(unsigned), const char *what)
{
    for (unsigned i = 0; name_of(i); i++)
        if (accept_word(r, name_of(i)))
            return (int)i;
    fail(r, what);
    return -1;
}

/* `plan STAGE ...`: the stages come in order, each once (ir_print's print_plan writes them). */
static void read_plan(reader *r)
{
    ir_plan *p = &r->m->plan;
    tok at = r->t;
    int stage = one_of(r, ir_plan_stage_name, "a plan stage (chunked, tiled, fused, scheduled)");
    if (stage < 0)
        return;
    if (stage != p->stage + 1) {
        attnc_error(r->diags, span_of(r, &at), "plan stage '%s' out of order (after '%s')",
                    ir_plan_stage_name((unsigned)stage), ir_plan_stage_name(p->stage));
        r->line_bad = true;
        return;
    }
    uint32_t flag, flag2;
    int t;
    switch (stage) {
    case IR_PLAN_CHUNKED:
        if (!integer(r, 1, 1 << 20, &p->chunk) || !accept_word(r, "transition") ||
            (t = one_of(r, ir_transition_name, "a transition class")) < 0 ||
            !keyed_integer(r, "householder", 0, 1, &flag) || !keyed_integer(r, "stabilized", 0, 1, &flag2) ||
            !keyed_integer(r, "subchunk", 0, 1 << 20, &p->subchunk))
            return;
        p->transition = (uint8_t)t;
        p->householder = flag;
        p->stabilized = flag2;
        break;
    case IR_PLAN_TILED:
        if (!keyed_integer(r, "k_pad", 1, 4096, &p->k_pad) || !keyed_integer(r, "v_tile", 1, 4096, &p->v_tile) ||
            !keyed_integer(r, "warps", 1, 32, &p->warps) || !keyed_integer(r, "col_groups", 1, 32, &p->col_groups) ||
            !keyed_integer(r, "state_groups", 1, 32, &p->state_groups) ||
            !keyed_integer(r, "shared_scores", 0, 1, &flag) ||
            !keyed_integer(r, "sm_tile", 0, 4096, &p->sm_tile) || !accept_word(r, "operands") ||
            (t = one_of(r, ir_operands_name, "tensor-core operands (bf16, fp16, bf16x3)")) < 0)
            return;
        p->operands = (uint8_t)t;
        p->shared_scores = flag;
        break;
    case IR_PLAN_FUSED:
        while (r->t.kind == T_WORD) {
            int role = one_of(r, ir_role_word, "a role");
            int feed = role < 0 ? -1 : one_of(r, ir_feed_name, "a feed (direct, scaled, mapped)");
            if (feed < 0)
                return;
            p->feed[role] = (uint8_t)feed;
            if ((feed == IR_FEED_DIRECT || feed == IR_FEED_SCALED) && !ref(r, &p->feed_src[role]))
                return;
            if (feed == IR_FEED_SCALED && !number(r, &p->scale[role]))
                return;
        }
        break;
    case IR_PLAN_SCHEDULED:
        p->schedules = 0;
        while (r->t.kind == T_WORD && !is_word(r, "min_ctas")) {
            int bit = one_of(r, ir_sched_name, "a schedule");
            if (bit < 0)
                return;
            p->schedules |= 1u << bit;
        }
        if (!keyed_integer(r, "min_ctas", 0, 1u << 30, &p->min_ctas))
            return;
        break;
    }
    p->stage = (uint8_t)stage;
    end_line(r);
}

static void read_line(reader *r)
{
    ir_module *m = r->m;
    if (r->t.kind == T_REF) {
        read_value(r);
    } else if (accept_word(r, "variant")) {
        tok at = r->t;
        const char *n = name(r);
        if (n && end_line(r)) {
            m->name = n;
            m->span = span_of(r, &at); /* where the module's own diagnostics point */
        }
    } else if (accept_word(r, "dim")) {
        read_dim_or_heads(r, false);
    } else if (accept_word(r, "heads")) {
        read_dim_or_heads(r, true);
    } else if (accept_word(r, "input")) {
        read_tensor(r, true);
    } else if (accept_word(r, "param")) {
        read_tensor(r, false);
    } else if (accept_word(r, "linear")) {
        read_linear(r);
    } else if (accept_word(r, "softmax")) {
        read_softmax(r);
    } else if (accept_word(r, "mask")) {
        if (accept_word(r, "causal"))
            m->mask = IR_MASK_CAUSAL;
        else if (accept_word(r, "none"))
            m->mask = IR_MASK_NONE;
        else {
            fail(r, "'causal' or 'none'");
            return;
        }
        m->document = accept_word(r, "document");
        end_line(r);
    } else if (accept_word(r, "state")) {
        if (!accept_word(r, "none")) {
            m->state_in = accept_word(r, "initial");
            m->state_out = accept_word(r, "final");
        }
        end_line(r);
    } else if (accept_word(r, "chunk")) {
        m->chunk_span = span_of(r, &r->t);
        if (accept_word(r, "auto"))
            m->chunk = 0;
        else if (!integer(r, 1, 1 << 20, &m->chunk))
            return;
        end_line(r);
    } else if (accept_word(r, "plan")) {
        read_plan(r);
    } else if (accept_word(r, "output")) {
        tok dt = r->t;
        if (dt.kind != T_WORD || !ir_dtype_by_name(r->text + dt.start, dt.end - dt.start, &m->out_dtype))
            fail(r, "a dtype (bf16, fp16 or fp32)");
        else {
            next(r);
            end_line(r);
        }
    } else {
        fail(r, "a declaration, a value or a block");
    }
}

ir_module *ir_parse(attnc_arena *arena, attnc_diags *diags, uint32_t file)
{
    const attnc_source *src = attnc_diags_file(diags, file);
    if (!src)
        return NULL;
    reader r = {.arena = arena, .diags = diags, .file = file, .text = src->text, .len = src->len};
    r.m = ir_module_new(arena);
    if (!r.m)
        return NULL;
    uint32_t errors = diags->errors;
    next(&r);
    while (r.t.kind == T_NL)
        next(&r);
    if (!accept_word(&r, "attnc-ir")) {
        fail(&r, "the header 'attnc-ir 1'");
        return NULL;
    }
    uint32_t version;
    if (!integer(&r, 1, 1, &version) || !end_line(&r))
        return NULL;
    while (r.t.kind != T_EOF) {
        if (r.t.kind == T_NL) {
            next(&r);
            continue;
        }
        read_line(&r);
        if (r.line_bad)
            skip_line(&r);
        if (diags->errors >= ATTNC_MAX_ERRORS)
            break;
    }
    if (diags->errors == errors && !*r.m->name)
        attnc_error(diags, (attnc_span){file, src->len, src->len}, "the IR has no 'variant NAME' line");
    if (diags->errors != errors || attnc_arena_failed(arena))
        return NULL;
    return r.m;
}
