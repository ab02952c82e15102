/* frontend/sema.c: semantic analysis, from the syntax tree to a checked IR module.
 *
 * Order of work:
 *   1. declare every top-level name (dims, head axes, inputs, params, lets) in one table, so that
 *      declarations may come in any order; duplicates and clashes with built-in names are errors;
 *   2. resolve dims and head counts (constant integer expressions) and tensor shapes;
 *   3. compile the blocks' role bindings to IR values: names resolve lazily (a `let` is compiled when
 *      first used, with cycle detection), constants fold as they are built, every value is typed by
 *      ir_infer_type;
 *   4. interpret the settings (update, normalize, window, mask, state, chunk, output);
 *   5. check the variant as a whole: role kinds and shapes, head counts that divide, dims in range,
 *      gate/beta/decay ranges (by interval analysis, ir_range.c), combinations the math does not allow,
 *      a chunk size the kernels can use.
 * A failed expression yields IR_NONE and later checks skip it, so one mistake gives one diagnostic.
 */
#include "sema.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_DIM 65536     /* largest dim value (vector lengths are 16-bit) */
#define MAX_HEADS 4096    /* largest head count */
#define MAX_AXES 250      /* head axes per spec (ir_type.axis is 8-bit, 0xff = none) */
#define SEMA_MAX_NEST 2000 /* expression levels through names (a chain of lets): bounds the recursion */

typedef enum sym_kind { SYM_DIM, SYM_AXIS, SYM_TENSOR, SYM_LET } sym_kind;
typedef enum sym_state { SYM_NEW, SYM_BUSY, SYM_DONE, SYM_FAILED } sym_state;

typedef struct sym {
    const ast_name *name;
    sym_kind kind;
    const ast_item *item;
    uint32_t index;  /* dim, axis or tensor index */
    ir_ref value;    /* the resolved value (tensor leaf, let) */
    int64_t number;  /* dim value or head count */
    sym_state state;
    bool used;
} sym;

typedef struct sema {
    attnc_arena *arena;
    attnc_diags *diags;
    ir_module *m;
    sym *syms;
    uint32_t nsyms;
    uint32_t *table; /* open addressing: sym index + 1, 0 = empty */
    uint32_t tablecap;
    const ast_item *linear_block, *softmax_block;
    uint32_t nest;        /* compile_expr calls in progress, through lets and dims */
    bool nest_reported;   /* the SEMA_MAX_NEST error was given */
} sema;

static const char *const builtin_names[] = {"head"};

/* ---- names and suggestions ---------------------------------------------------------------- */

static uint32_t hash_name(const char *s, uint32_t len)
{
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static sym *lookup(sema *s, const char *name, uint32_t len)
{
    if (!s->tablecap)
        return NULL;
    for (uint32_t i = hash_name(name, len) & (s->tablecap - 1);; i = (i + 1) & (s->tablecap - 1)) {
        uint32_t e = s->table[i];
        if (!e)
            return NULL;
        sym *y = &s->syms[e - 1];
        if (y->name->len == len && memcmp(y->name->text, name, len) == 0)
            return y;
    }
}

/* Edit distance, capped: names further than 2 edits apart are not suggested. */
static unsigned edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
    if (la > 32 || lb > 32)
        return 99;
    unsigned row[33];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        unsigned diag = row[0];
        row[0] = (unsigned)i;
        for (size_t j = 1; j <= lb; j++) {
            unsigned up = row[j];
            unsigned best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The candidate closest to `name` (at most 2 edits, and fewer edits than the name is long), or NULL.
 * NULL too once errors are being dropped (ATTNC_MAX_ERRORS): the note would be dropped with its error,
 * and the search is what made a file of many misspelt names take minutes. */
static const char *closest(const sema *s, const char *name, size_t len, const char *const *cands, size_t n)
{
    if (s->diags->truncated)
        return NULL;
    const char *best = NULL;
    unsigned bestd = 3;
    for (size_t i = 0; i < n; i++) {
        unsigned d = edit_distance(name, len, cands[i], strlen(cands[i]));
        if (d < bestd && d < len) {
            bestd = d;
            best = cands[i];
        }
    }
    return best;
}

#define NAME_FMT "%.*s"
#define NAME_ARG(n) (int)((n).len > 64 ? 64 : (n).len), (n).text

static void declare(sema *s, const ast_item *it, sym_kind kind)
{
    const ast_name *name = &it->name;
    for (size_t i = 0; i < sizeof builtin_names / sizeof *builtin_names; i++)
        if (strlen(builtin_names[i]) == name->len && memcmp(builtin_names[i], name->text, name->len) == 0) {
            attnc_error(s->diags, name->span, "'" NAME_FMT "' is a built-in name and cannot be redefined",
                        NAME_ARG(*name));
            return;
        }
    if (ir_op_by_name(name->text, name->len) != IR_OP_COUNT &&
        ir_op_kind_of(ir_op_by_name(name->text, name->len)) != IR_KIND_LEAF) {
        attnc_error(s->diags, name->span, "'" NAME_FMT "' is the name of a built-in function",
                    NAME_ARG(*name));
        return;
    }
    sym *old = lookup(s, name->text, name->len);
    if (old) {
        attnc_error(s->diags, name->span, "redefinition of '" NAME_FMT "'", NAME_ARG(*name));
        attnc_note(s->diags, old->name->span, "previous definition is here");
        return;
    }
    if (2 * (s->nsyms + 1) > s->tablecap) {
        uint32_t cap = s->tablecap ? s->tablecap * 2 : 64;
        uint32_t *t = attnc_arena_alloc(s->arena, cap * sizeof *t);
        sym *ys = attnc_arena_grow(s->arena, s->syms, s->nsyms * sizeof *ys, (cap / 2) * sizeof *ys);
        if (!t || !ys)
            return;
        s->syms = ys;
        for (uint32_t k = 0; k < s->nsyms; k++) {
            uint32_t i = hash_name(ys[k].name->text, ys[k].name->len) & (cap - 1);
            while (t[i])
                i = (i + 1) & (cap - 1);
            t[i] = k + 1;
        }
        s->table = t;
        s->tablecap = cap;
    }
    sym *y = &s->syms[s->nsyms];
    memset(y, 0, sizeof *y);
    y->name = name;
    y->kind = kind;
    y->item = it;
    uint32_t i = hash_name(name->text, name->len) & (s->tablecap - 1);
    while (s->table[i])
        i = (i + 1) & (s->tablecap - 1);
    s->table[i] = ++s->nsyms;
}

/* "did you mean" over every declared name. */
static void suggest_declared(sema *s, const ast_name *name)
{
    const char *cands[64];
    size_t n = 0;
    for (uint32_t i = 0; i < s->nsyms && n < 64; i++)
        cands[n++] = s->syms[i].name->text;
    const char *c = closest(s, name->text, name->len, cands, n);
    if (c) {
        sym *y = lookup(s, c, (uint32_t)strlen(c));
        attnc_note(s->diags, y->name->span, "did you mean '%s'?", c);
    }
}

/* ---- values ------------------------------------------------------------------------------- */

static ir_ref mkval(sema *s, ir_op op, ir_ref a, ir_ref b, uint32_t aux, double num, attnc_span at)
{
    ir_module *m = s->m;
    int arity = ir_op_arity(op);
    if ((arity >= 1 && a == IR_NONE) || (arity >= 2 && b == IR_NONE))
        return IR_NONE; /* an operand already failed and was reported */
    ir_type ta = a ? m->values[a].type : (ir_type){0};
    ir_type tb = b ? m->values[b].type : (ir_type){0};
    ir_value v = {.op = (uint8_t)op, .arg = {a, b}, .aux = aux, .num = num, .span = at};
    const char *why;
    if (!ir_infer_type(m, op, &ta, &tb, aux, &v.type, &why)) {
        attnc_error(s->diags, at, "cannot apply '%s' here: %s", ir_op_name(op), why);
        return IR_NONE;
    }
    if (ir_op_kind_of(op) == IR_KIND_VEC && ta.len < 2) {
        attnc_error(s->diags, at, "'%s' needs a vector (a tensor with a channel extent), not a scalar",
                    ir_op_name(op));
        return IR_NONE;
    }
    bool all_const = ir_op_kind_of(op) == IR_KIND_ELEM && ta.vary == IR_VARY_CONST &&
                     (arity < 2 || tb.vary == IR_VARY_CONST);
    if (all_const) {
        double x = ir_apply(op, m->values[a].num, arity == 2 ? m->values[b].num : 0.0);
        if (!isfinite(x)) {
            attnc_error(s->diags, at, "this constant expression is not a finite number");
            return IR_NONE;
        }
        v = (ir_value){.op = IR_OP_CONST, .type = {IR_VARY_CONST, IR_NO_AXIS, 1}, .num = x, .span = at};
    }
    return ir_add_value(m, v);
}

static ir_ref mkconst(sema *s, double x, attnc_span at)
{
    return mkval(s, IR_OP_CONST, IR_NONE, IR_NONE, 0, x, at);
}

static ir_ref compile_expr(sema *s, const ast_expr *e);

static bool resolve_sym(sema *s, sym *y, attnc_span use);

static ir_ref compile_name(sema *s, const ast_expr *e)
{
    sym *y = lookup(s, e->name.text, e->name.len);
    if (!y) {
        attnc_error(s->diags, e->span, "use of undeclared name '" NAME_FMT "'", NAME_ARG(e->name));
        suggest_declared(s, &e->name);
        return IR_NONE;
    }
    y->used = true;
    if (!resolve_sym(s, y, e->span))
        return IR_NONE;
    switch (y->kind) {
    case SYM_DIM:
    case SYM_AXIS:
        return mkconst(s, (double)y->number, e->span);
    case SYM_TENSOR:
    case SYM_LET:
        return y->value;
    }
    return IR_NONE;
}

static ir_ref compile_call(sema *s, const ast_expr *e)
{
    if (e->name.len == 4 && memcmp(e->name.text, "head", 4) == 0) {
        /* head(AXIS): the index of the head on that axis */
        if (e->nargs != 1 || e->args->kind != AST_NAME) {
            attnc_error(s->diags, e->span, "'head' takes one argument, the name of a head axis");
            return IR_NONE;
        }
        sym *y = lookup(s, e->args->name.text, e->args->name.len);
        if (!y || y->kind != SYM_AXIS) {
            attnc_error(s->diags, e->args->span, "'" NAME_FMT "' is not a head axis (declare it with 'heads')",
                        NAME_ARG(e->args->name));
            return IR_NONE;
        }
        y->used = true;
        if (!resolve_sym(s, y, e->span))
            return IR_NONE;
        return mkval(s, IR_OP_HEAD, IR_NONE, IR_NONE, y->index, 0, e->span);
    }
    ir_op op = ir_op_by_name(e->name.text, e->name.len);
    if (op == IR_OP_COUNT || ir_op_kind_of(op) == IR_KIND_LEAF || op == IR_OP_NEG || op == IR_OP_ADD ||
        op == IR_OP_SUB || op == IR_OP_MUL || op == IR_OP_DIV || op == IR_OP_POW) {
        attnc_error(s->diags, e->name.span, "unknown function '" NAME_FMT "'", NAME_ARG(e->name));
        /* The IR's names of the arithmetic ops: point at the operator rather than at a look-alike. */
        static const char *const written[IR_OP_COUNT] = {[IR_OP_NEG] = "-a", [IR_OP_ADD] = "a + b",
            [IR_OP_SUB] = "a - b", [IR_OP_MUL] = "a * b", [IR_OP_DIV] = "a / b", [IR_OP_POW] = "a ^ b"};
        if (op != IR_OP_COUNT && written[op]) {
            attnc_note(s->diags, e->name.span, "'%s' is an operator in a spec: write '%s'", ir_op_name(op), written[op]);
            return IR_NONE;
        }
        const char *cands[IR_OP_COUNT + 1];
        size_t n = 0;
        for (int i = 0; i < IR_OP_COUNT; i++)
            if (ir_op_kind_of((ir_op)i) != IR_KIND_LEAF && i != IR_OP_NEG && i != IR_OP_ADD &&
                i != IR_OP_SUB && i != IR_OP_MUL && i != IR_OP_DIV && i != IR_OP_POW)
                cands[n++] = ir_op_name((ir_op)i);
        cands[n++] = "head";
        const char *c = closest(s, e->name.text, e->name.len, cands, n);
        if (c)
            attnc_note(s->diags, e->name.span, "did you mean '%s'?", c);
        return IR_NONE;
    }
    int arity = ir_op_arity(op);
    if ((int)e->nargs != arity) {
        attnc_error(s->diags, e->span, "'%s' takes %d argument%s, but %u %s given", ir_op_name(op), arity,
                    arity == 1 ? "" : "s", e->nargs, e->nargs == 1 ? "was" : "were");
        return IR_NONE;
    }
    ir_ref a = compile_expr(s, e->args);
    ir_ref b = arity == 2 ? compile_expr(s, e->args->next) : IR_NONE;
    return mkval(s, op, a, b, 0, 0, e->span);
}

static ir_ref compile_expr_nested(sema *s, const ast_expr *e);

/* The parser bounds one expression's depth; names chain expressions (let a = b + 1, let b = ...), so the
 * recursion through them is bounded here too. */
static ir_ref compile_expr(sema *s, const ast_expr *e)
{
    if (e->depth > AST_MAX_DEPTH)
        return IR_NONE; /* reported by the parser */
    if (s->nest >= SEMA_MAX_NEST) {
        if (!s->nest_reported)
            attnc_error(s->diags, e->span,
                        "expression is nested too deeply, counting through the names it uses (more than %d levels)",
                        SEMA_MAX_NEST);
        s->nest_reported = true;
        return IR_NONE;
    }
    s->nest++;
    ir_ref r = compile_expr_nested(s, e);
    s->nest--;
    return r;
}

static ir_ref compile_expr_nested(sema *s, const ast_expr *e)
{
    switch (e->kind) {
    case AST_NUM:
        return mkconst(s, e->num, e->span);
    case AST_NAME:
        return compile_name(s, e);
    case AST_CALL:
        return compile_call(s, e);
    case AST_NEG:
        return mkval(s, IR_OP_NEG, compile_expr(s, e->lhs), IR_NONE, 0, 0, e->span);
    case AST_BIN: {
        ir_ref a = compile_expr(s, e->lhs), b = compile_expr(s, e->rhs);
        ir_op op = e->op == '+' ? IR_OP_ADD : e->op == '-' ? IR_OP_SUB : e->op == '*' ? IR_OP_MUL
                 : e->op == '/' ? IR_OP_DIV : IR_OP_POW;
        return mkval(s, op, a, b, 0, 0, e->span);
    }
    }
    return IR_NONE;
}

/* A constant integer in [lo, hi] written as an expression; `what` names it in messages. */
static bool const_int(sema *s, const ast_expr *e, int64_t lo, int64_t hi, const char *what, int64_t *out)
{
    ir_ref r = compile_expr(s, e);
    if (r == IR_NONE)
        return false;
    const ir_value *v = &s->m->values[r];
    if (v->type.vary != IR_VARY_CONST) {
        attnc_error(s->diags, e->span, "%s must be a constant", what);
        return false;
    }
    if (v->num != floor(v->num)) {
        attnc_error(s->diags, e->span, "%s must be an integer, not %g", what, v->num);
        return false;
    }
    if (v->num < (double)lo || v->num > (double)hi) {
        attnc_error(s->diags, e->span, "%s must be between %lld and %lld, not %.17g", what, (long long)lo,
                    (long long)hi, v->num);
        return false;
    }
    *out = (int64_t)v->num;
    return true;
}

static bool const_real(sema *s, const ast_expr *e, const char *what, double *out)
{
    ir_ref r = compile_expr(s, e);
    if (r == IR_NONE)
        return false;
    if (s->m->values[r].type.vary != IR_VARY_CONST) {
        attnc_error(s->diags, e->span, "%s must be a constant", what);
        return false;
    }
    *out = s->m->values[r].num;
    return true;
}

/* ---- declarations ------------------------------------------------------------------------- */

static bool resolve_tensor(sema *s, sym *y)
{
    const ast_item *it = y->item;
    ir_module *m = s->m;
    ir_tensor t = {.name = it->name.text, .per_token = it->kind == AST_INPUT, .span = it->span};
    bool ok = true;
    if (!ir_dtype_by_name(it->dtype.text, it->dtype.len, &t.dtype)) {
        attnc_error(s->diags, it->dtype.span, "unknown dtype '" NAME_FMT "'; expected bf16, fp16 or fp32",
                    NAME_ARG(it->dtype));
        static const char *const dts[] = {"bf16", "fp16", "fp32"};
        const char *c = closest(s, it->dtype.text, it->dtype.len, dts, 3);
        if (c)
            attnc_note(s->diags, it->dtype.span, "did you mean '%s'?", c);
        ok = false;
    }
    const ast_expr *first = it->shape;
    if (it->nshape > 2) {
        attnc_error(s->diags, it->span, "%s shape is [HEADS] or [HEADS, CHANNELS], not %u extents",
                    t.per_token ? "an input's (per token)" : "a parameter's", it->nshape);
        return false;
    }
    sym *ax = first->kind == AST_NAME ? lookup(s, first->name.text, first->name.len) : NULL;
    if (!ax || ax->kind != SYM_AXIS) {
        attnc_error(s->diags, first->span, "the first extent of a shape must be a head axis (declared with 'heads')");
        return false;
    }
    ax->used = true;
    if (!resolve_sym(s, ax, first->span))
        return false;
    t.axis = (uint8_t)ax->index;
    t.len = 1;
    if (it->nshape == 2) {
        int64_t len;
        if (!const_int(s, first->next, 1, MAX_DIM - 1, "a channel extent", &len))
            return false;
        t.len = (uint16_t)len;
    }
    if (it->lo) {
        double lo = 0, hi = 0; /* set when lo_ok / hi_ok; initialised for gcc -O2 -Wmaybe-uninitialized */
        bool lo_ok = const_real(s, it->lo, "a range bound", &lo);
        bool hi_ok = const_real(s, it->hi, "a range bound", &hi);
        if (!lo_ok || !hi_ok)
            return false;
        if (lo > hi) {
            attnc_error(s->diags, attnc_span_join(it->lo->span, it->hi->span),
                        "the range [%g, %g] is empty (its lower bound is above its upper bound)", lo, hi);
            return false;
        }
        t.has_range = true;
        t.lo = lo;
        t.hi = hi;
    }
    if (!ok)
        return false;
    ir_tensor *ts = attnc_arena_push(s->arena, m->tensors, m->ntensors, sizeof *ts);
    if (!ts)
        return false;
    m->tensors = ts;
    y->index = m->ntensors;
    ts[m->ntensors++] = t;
    y->value = mkval(s, t.per_token ? IR_OP_INPUT : IR_OP_PARAM, IR_NONE, IR_NONE, y->index, 0, it->name.span);
    return y->value != IR_NONE;
}

/* Resolve a symbol on first use; a symbol that refers to itself (through lets) is an error. */
static bool resolve_sym(sema *s, sym *y, attnc_span use)
{
    if (y->state == SYM_DONE)
        return true;
    if (y->state == SYM_FAILED)
        return false;
    if (y->state == SYM_BUSY) {
        attnc_error(s->diags, use, "'" NAME_FMT "' is defined in terms of itself", NAME_ARG(*y->name));
        attnc_note(s->diags, y->name->span, "'" NAME_FMT "' is defined here", NAME_ARG(*y->name));
        y->state = SYM_FAILED;
        return false;
    }
    y->state = SYM_BUSY;
    bool ok = false;
    ir_module *m = s->m;
    switch (y->kind) {
    case SYM_DIM:
        ok = const_int(s, y->item->value, 1, MAX_DIM, "a dim", &y->number);
        if (ok) {
            ir_dim *ds = attnc_arena_push(s->arena, m->dims, m->ndims, sizeof *ds);
            if (!ds)
                return false;
            m->dims = ds;
            y->index = m->ndims;
            ds[m->ndims++] = (ir_dim){y->name->text, y->number, y->item->span};
        }
        break;
    case SYM_AXIS:
        ok = const_int(s, y->item->value, 1, MAX_HEADS, "a head count", &y->number);
        if (ok && m->naxes >= MAX_AXES) {
            attnc_error(s->diags, y->item->span, "too many head axes (at most %d)", MAX_AXES);
            ok = false;
        }
        if (ok) {
            ir_axis *as = attnc_arena_push(s->arena, m->axes, m->naxes, sizeof *as);
            if (!as)
                return false;
            m->axes = as;
            y->index = m->naxes;
            as[m->naxes++] = (ir_axis){y->name->text, (uint32_t)y->number, y->item->span};
        }
        break;
    case SYM_TENSOR:
        ok = resolve_tensor(s, y);
        break;
    case SYM_LET:
        y->value = compile_expr(s, y->item->value);
        ok = y->value != IR_NONE;
        break;
    }
    if (y->state == SYM_FAILED)
        return false;
    y->state = ok ? SYM_DONE : SYM_FAILED;
    return ok;
}

/* ---- blocks, roles and settings ----------------------------------------------------------- */

typedef struct role_slot {
    const char *name;
    ir_ref *dst;
    const ast_item *seen;
    int role; /* ir_role whose binding span to record, or -1 */
} role_slot;

/* The word at setting argument `arg`: a bare name among `choices` (or, if `call_ok`, a call of one,
 * whose arguments the caller reads); reports otherwise. */
static int setting_word(sema *s, const ast_item *setting, const ast_expr *arg, const char *const *choices, int n,
                        bool call_ok)
{
    const char *text = arg->kind == AST_NAME || arg->kind == AST_CALL ? arg->name.text : NULL;
    uint32_t len = text ? arg->name.len : 0;
    for (int i = 0; text && i < n; i++)
        if (strlen(choices[i]) == len && memcmp(choices[i], text, len) == 0) {
            if (arg->kind == AST_CALL && !call_ok) {
                attnc_error(s->diags, arg->span, "'%s' takes no arguments here", choices[i]);
                return -1;
            }
            return i;
        }
    char list[256] = "";
    size_t at = 0;
    for (int i = 0; i < n && at < sizeof list; i++)
        at += (size_t)snprintf(list + at, sizeof list - at, "%s'%s'", i == 0 ? "" : i == n - 1 ? " or " : ", ",
                               choices[i]);
    attnc_error(s->diags, arg->span, "'" NAME_FMT "' expects %s here", NAME_ARG(setting->name), list);
    const char *c = text ? closest(s, text, len, choices, (size_t)n) : NULL;
    if (c)
        attnc_note(s->diags, arg->span, "did you mean '%s'?", c);
    return -1;
}

static bool setting_nargs(sema *s, const ast_item *it, uint32_t lo, uint32_t hi)
{
    if (it->nargs >= lo && it->nargs <= hi)
        return true;
    if (lo == hi)
        attnc_error(s->diags, it->span, "'" NAME_FMT "' takes %u argument%s, but %u %s given", NAME_ARG(it->name),
                    lo, lo == 1 ? "" : "s", it->nargs, it->nargs == 1 ? "was" : "were");
    else
        attnc_error(s->diags, it->span, "'" NAME_FMT "' takes %u to %u arguments, but %u %s given",
                    NAME_ARG(it->name), lo, hi, it->nargs, it->nargs == 1 ? "was" : "were");
    return false;
}

static void unknown_item(sema *s, const ast_item *it, const char *where, const char *const *known, size_t n)
{
    attnc_error(s->diags, it->name.span, "unknown %s '" NAME_FMT "' in %s", it->kind == AST_ROLE ? "role" : "setting",
                NAME_ARG(it->name), where);
    const char *c = closest(s, it->name.text, it->name.len, known, n);
    if (c)
        attnc_note(s->diags, it->name.span, "did you mean '%s'?", c);
}

static bool name_is(const ast_name *n, const char *s)
{
    return strlen(s) == n->len && memcmp(s, n->text, n->len) == 0;
}

static void bind_role(sema *s, const ast_item *it, role_slot *slots, size_t nslots, const char *where,
                      const char *const *known, size_t nknown)
{
    for (size_t i = 0; i < nslots; i++) {
        if (!name_is(&it->name, slots[i].name))
            continue;
        if (slots[i].seen) {
            attnc_error(s->diags, it->name.span, "'%s' is bound twice in %s", slots[i].name, where);
            attnc_note(s->diags, slots[i].seen->name.span, "first bound here");
            return;
        }
        slots[i].seen = it;
        *slots[i].dst = compile_expr(s, it->value);
        if (slots[i].role >= 0)
            s->m->role_at[slots[i].role] = it->span;
        return;
    }
    unknown_item(s, it, where, known, nknown);
}

/* A setting given once per spec or block; a second one is an error with a note at the first. */
static bool once(sema *s, const ast_item *it, const ast_item **seen)
{
    if (*seen) {
        attnc_error(s->diags, it->name.span, "'" NAME_FMT "' is set twice", NAME_ARG(it->name));
        attnc_note(s->diags, (*seen)->name.span, "first set here");
        return false;
    }
    *seen = it;
    return true;
}

static const char *const norm_words[] = {"none", "denominator", "max_floor", "rmsnorm", "layernorm"};
static const double norm_default_eps[] = {0, 1e-6, 1e-6, 1e-5, 1e-5};

static void linear_setting(sema *s, const ast_item *it, ir_linear *l, const ast_item **seen_update,
                           const ast_item **seen_norm)
{
    if (name_is(&it->name, "update")) {
        if (!once(s, it, seen_update))
            return;
        static const char *const words[] = {"additive", "delta"};
        if (!setting_nargs(s, it, 1, 1))
            return;
        int w = setting_word(s, it, it->args, words, 2, false);
        if (w >= 0)
            l->update = w == 1 ? IR_UPDATE_DELTA : IR_UPDATE_ADD;
        return;
    }
    if (name_is(&it->name, "normalize")) {
        if (!once(s, it, seen_norm))
            return;
        if (!setting_nargs(s, it, 1, 1))
            return;
        const ast_expr *a = it->args;
        int w = setting_word(s, it, a, norm_words, 5, true);
        if (w < 0)
            return;
        l->norm = (ir_norm)w;
        l->eps = norm_default_eps[w];
        if (a->kind == AST_CALL) {
            if (w == IR_NORM_NONE || a->nargs != 1) {
                attnc_error(s->diags, a->span, w == IR_NORM_NONE ? "'none' takes no epsilon"
                                                                 : "'%s' takes one argument, its epsilon",
                            norm_words[w]);
                return;
            }
            double eps;
            if (!const_real(s, a->args, "an epsilon", &eps))
                return;
            if (!(eps >= 0) || eps > 1) {
                attnc_error(s->diags, a->args->span, "an epsilon must be in [0, 1], not %g", eps);
                return;
            }
            l->eps = eps;
        }
        return;
    }
    static const char *const known[] = {"query", "key", "value", "gate", "decay", "beta", "igate", "update", "normalize"};
    unknown_item(s, it, "a linear block", known, sizeof known / sizeof *known);
}

static void misplaced_in_block(sema *s, const ast_item *it)
{
    if (it->kind == AST_BLOCK)
        attnc_error(s->diags, it->name.span, "a '" NAME_FMT "' block cannot be inside another block", NAME_ARG(it->name));
    else
        attnc_error(s->diags, it->span, "declarations belong at the top level of the spec, not in a block");
}

static void compile_linear(sema *s, const ast_item *block)
{
    ir_linear *l = &s->m->linear;
    l->present = true;
    l->span = block->span;
    ir_ref decay = IR_NONE;
    role_slot slots[] = {{"query", &l->query, NULL, IR_ROLE_QUERY}, {"key", &l->key, NULL, IR_ROLE_KEY},
                         {"value", &l->value, NULL, IR_ROLE_VALUE}, {"gate", &l->gate, NULL, IR_ROLE_GATE},
                         {"decay", &decay, NULL, IR_ROLE_GATE},     {"beta", &l->beta, NULL, IR_ROLE_BETA},
                         {"igate", &l->igate, NULL, IR_ROLE_IGATE}};
    static const char *const known[] = {"query", "key", "value", "gate", "decay", "beta", "igate", "update", "normalize"};
    const ast_item *seen_update = NULL, *seen_norm = NULL;
    for (const ast_item *it = block->items; it; it = it->next) {
        if (it->kind == AST_ROLE)
            bind_role(s, it, slots, 7, "a linear block", known, 9);
        else if (it->kind == AST_SETTING)
            linear_setting(s, it, l, &seen_update, &seen_norm);
        else
            misplaced_in_block(s, it);
    }
    for (int i = 0; i < 3; i++)
        if (!slots[i].seen)
            attnc_error(s->diags, block->name.span, "the linear block has no '%s'", slots[i].name);
    if (slots[3].seen && slots[4].seen) {
        attnc_error(s->diags, slots[4].seen->name.span, "a linear block has either a 'gate' or a 'decay', not both");
        attnc_note(s->diags, slots[3].seen->name.span, "the gate is bound here");
        l->gate = IR_NONE;
        return;
    }
    if (slots[3].seen && l->gate != IR_NONE) {
        const ir_type *t = &s->m->values[l->gate].type;
        l->decay = t->len == 1 ? IR_DECAY_SCALAR : IR_DECAY_VECTOR;
    }
    if (slots[4].seen && decay != IR_NONE) {
        /* A constant decay lambda in (0, 1] is kept as its logarithm, like every gate.  The log is
         * never folded (not even of a number): the verifier checks lambda, the log's operand. */
        l->decay = IR_DECAY_CONST;
        ir_value lg = {.op = IR_OP_LOG, .type = s->m->values[decay].type, .arg = {decay, IR_NONE},
                       .span = s->m->values[decay].span};
        l->gate = ir_add_value(s->m, lg);
    }
}

static void compile_softmax(sema *s, const ast_item *block)
{
    ir_softmax *x = &s->m->softmax;
    x->present = true;
    x->span = block->span;
    role_slot slots[] = {{"query", &x->query, NULL, IR_ROLE_SM_QUERY},
                         {"key", &x->key, NULL, IR_ROLE_SM_KEY},
                         {"value", &x->value, NULL, IR_ROLE_SM_VALUE}};
    static const char *const known[] = {"query", "key", "value", "window"};
    const ast_item *seen_window = NULL;
    for (const ast_item *it = block->items; it; it = it->next) {
        if (it->kind == AST_ROLE) {
            bind_role(s, it, slots, 3, "a softmax block", known, 4);
        } else if (it->kind == AST_SETTING && name_is(&it->name, "window")) {
            if (!once(s, it, &seen_window))
                continue;
            int64_t w;
            if (setting_nargs(s, it, 1, 1) && const_int(s, it->args, 1, 1 << 24, "a window", &w))
                x->window = (uint32_t)w;
        } else if (it->kind == AST_SETTING) {
            unknown_item(s, it, "a softmax block", known, 4);
        } else {
            misplaced_in_block(s, it);
        }
    }
    for (int i = 0; i < 3; i++)
        if (!slots[i].seen)
            attnc_error(s->diags, block->name.span, "the softmax block has no '%s'", slots[i].name);
}

typedef struct top_settings {
    const ast_item *mask, *state, *chunk, *output;
} top_settings;

static void top_setting(sema *s, const ast_item *it, top_settings *seen)
{
    ir_module *m = s->m;
    if (name_is(&it->name, "mask")) {
        if (!once(s, it, &seen->mask) || !setting_nargs(s, it, 1, 2))
            return;
        static const char *const kinds[] = {"causal", "none"};
        int w = setting_word(s, it, it->args, kinds, 2, false);
        if (w >= 0)
            m->mask = w == 0 ? IR_MASK_CAUSAL : IR_MASK_NONE;
        if (it->nargs == 2) {
            static const char *const extra[] = {"document"};
            if (setting_word(s, it, it->args->next, extra, 1, false) == 0)
                m->document = true;
        }
    } else if (name_is(&it->name, "state")) {
        if (!once(s, it, &seen->state) || !setting_nargs(s, it, 1, 2))
            return;
        static const char *const words[] = {"initial", "final"};
        for (const ast_expr *a = it->args; a; a = a->next) {
            int w = setting_word(s, it, a, words, 2, false);
            bool *flag = w == 0 ? &m->state_in : w == 1 ? &m->state_out : NULL;
            if (flag && *flag)
                attnc_error(s->diags, a->span, "'%s' is listed twice", words[w]);
            if (flag)
                *flag = true;
        }
    } else if (name_is(&it->name, "chunk")) {
        if (!once(s, it, &seen->chunk) || !setting_nargs(s, it, 1, 1))
            return;
        if (it->args->kind == AST_NAME && name_is(&it->args->name, "auto")) {
            m->chunk = 0;
            return;
        }
        int64_t c;
        m->chunk_span = it->args->span;
        if (const_int(s, it->args, 1, 1 << 20, "a chunk size", &c))
            m->chunk = (uint32_t)c;
    } else if (name_is(&it->name, "output")) {
        if (!once(s, it, &seen->output) || !setting_nargs(s, it, 1, 1))
            return;
        static const char *const dts[] = {"bf16", "fp16", "fp32"};
        int w = setting_word(s, it, it->args, dts, 3, false);
        if (w >= 0)
            m->out_dtype = (ir_dtype)w;
    } else {
        static const char *const known[] = {"mask", "state", "chunk", "output"};
        unknown_item(s, it, "the spec", known, 4);
    }
}

/* The output's dtype when the spec does not say: that of the first declared input the value role
 * reads (so `x * delta` and `delta * x` agree), bf16 if it reads none. */
static ir_dtype default_out_dtype(const ir_module *m)
{
    ir_ref r = m->linear.present ? m->linear.value : m->softmax.value;
    if (!r)
        return IR_DT_BF16;
    bool *reach = attnc_arena_alloc(m->arena, m->nvalues * sizeof *reach);
    if (!reach)
        return IR_DT_BF16;
    reach[r] = true;
    uint32_t first = UINT32_MAX;
    for (uint32_t i = r + 1; i-- > 1;) {
        const ir_value *v = &m->values[i];
        if (!reach[i])
            continue;
        if (v->op == IR_OP_INPUT && v->aux < first)
            first = v->aux;
        for (int k = 0; k < ir_op_arity((ir_op)v->op); k++)
            reach[v->arg[k]] = true;
    }
    return first == UINT32_MAX ? IR_DT_BF16 : m->tensors[first].dtype;
}

/* ---- driver ------------------------------------------------------------------------------- */

ir_module *sema_check(attnc_arena *arena, attnc_diags *diags, const ast_spec *spec)
{
    uint32_t errors_before = diags->errors;
    sema s = {.arena = arena, .diags = diags, .m = ir_module_new(arena)};
    if (!s.m)
        return NULL;
    ir_module *m = s.m;
    m->name = spec->name.text;
    m->span = spec->span;

    top_settings seen = {0};
    for (const ast_item *it = spec->items; it; it = it->next) {
        switch (it->kind) {
        case AST_DIM: declare(&s, it, SYM_DIM); break;
        case AST_HEADS: declare(&s, it, SYM_AXIS); break;
        case AST_INPUT:
        case AST_PARAM: declare(&s, it, SYM_TENSOR); break;
        case AST_LET: declare(&s, it, SYM_LET); break;
        case AST_ROLE:
            attnc_error(diags, it->name.span, "a role binding belongs inside a 'linear' or 'softmax' block");
            break;
        case AST_SETTING: break;
        case AST_BLOCK: {
            const ast_item **slot = name_is(&it->name, "linear") ? &s.linear_block : &s.softmax_block;
            if (*slot) {
                attnc_error(diags, it->name.span, "a spec has at most one '" NAME_FMT "' block", NAME_ARG(it->name));
                attnc_note(diags, (*slot)->name.span, "the first one is here");
            } else {
                *slot = it;
            }
            break;
        }
        }
    }
    /* Dims, head axes and tensors in declaration order (a dim used by an earlier declaration is
     * resolved, and so listed, at its first use). */
    for (uint32_t i = 0; i < s.nsyms; i++)
        if (s.syms[i].kind != SYM_LET)
            resolve_sym(&s, &s.syms[i], s.syms[i].name->span);
    for (const ast_item *it = spec->items; it; it = it->next)
        if (it->kind == AST_SETTING)
            top_setting(&s, it, &seen);
    if (s.linear_block)
        compile_linear(&s, s.linear_block);
    if (s.softmax_block)
        compile_softmax(&s, s.softmax_block);
    for (uint32_t i = 0; i < s.nsyms; i++)
        if (s.syms[i].kind == SYM_LET && s.syms[i].state == SYM_NEW)
            resolve_sym(&s, &s.syms[i], s.syms[i].name->span); /* an unused let is still checked */
    if (!s.linear_block && !s.softmax_block)
        attnc_error(diags, spec->name.span, "the spec has neither a 'linear' nor a 'softmax' block");
    if (!s.linear_block && (m->state_in || m->state_out))
        attnc_error(diags, seen.state->name.span, "'state' needs a linear block (a softmax part has no finite state)");
    if (!seen.output)
        m->out_dtype = default_out_dtype(m);

    /* The rules of the variant as a whole (docs/language.md, "Checks") live in the verifier, so that
     * they hold for IR read from text too; its diagnostics point into the spec through value spans. */
    if (diags->errors == errors_before) {
        if (ir_compact(m))
            ir_verify(m, diags);
    } else {
        ir_verify_rules(m, diags);
    }
    for (uint32_t i = 0; i < s.nsyms && diags->errors == errors_before; i++) {
        const sym *y = &s.syms[i];
        if (!y->used && (y->kind == SYM_TENSOR || y->kind == SYM_LET))
            attnc_warning(diags, y->name->span, "'" NAME_FMT "' is declared but never used", NAME_ARG(*y->name));
    }
    if (diags->errors != errors_before || attnc_arena_failed(arena))
        return NULL;
    return m;
}
