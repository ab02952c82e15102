/* frontend/parser.y: the grammar of .attn files (docs/language.md).
 *
 *   spec     := 'attention' NAME '{' item* '}'
 *   item     := 'dim' NAME '=' expr (',' NAME '=' expr)* ';'
 *             | 'heads' NAME '=' expr (',' NAME '=' expr)* ';'
 *             | ('input' | 'param') NAME ':' DTYPE '[' expr (',' expr)* ']' ('in' '[' expr ',' expr ']')? ';'
 *             | 'let' NAME '=' expr ';'
 *             | NAME '=' expr ';'                        role binding
 *             | NAME (expr (',' expr)*)? ';'             setting
 *             | ('linear' | 'softmax') '{' item* '}'
 *   expr     := the usual: + - (left), * / (left), unary -, ^ (right, binds tighter than unary -),
 *               numbers, names, calls name(expr, ...), parentheses.
 *
 * Pure and reentrant, with locations (byte spans), custom syntax-error messages that name what was
 * expected, LAC so that the expected-token list is exact, and error-recovery rules at ';' and '}' so
 * that one run reports every syntax error it can.
 */
%require "3.7"
%define api.pure full
%define api.prefix {attnc_yy}
%define parse.error custom
%define parse.lac full
%define api.location.type {attnc_span}
%locations
%expect 0

%code requires {
#include "ast.h"
typedef struct parse_ctx parse_ctx;
typedef struct item_list { ast_item *head, *tail; } item_list;
typedef struct expr_list { ast_expr *head, *tail; uint32_t n; } expr_list;
}

%code provides {
int attnc_yylex(ATTNC_YYSTYPE *lval, ATTNC_YYLTYPE *lloc, void *scanner);
}

%code {
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse_ctx.h"

#define YYLLOC_DEFAULT(cur, rhs, n)                                                                \
    do {                                                                                           \
        if (n) {                                                                                   \
            (cur).file = YYRHSLOC(rhs, 1).file;                                                    \
            (cur).start = YYRHSLOC(rhs, 1).start;                                                  \
            (cur).end = YYRHSLOC(rhs, n).end;                                                      \
        } else {                                                                                   \
            (cur).file = YYRHSLOC(rhs, 0).file;                                                    \
            (cur).start = (cur).end = YYRHSLOC(rhs, 0).end;                                        \
        }                                                                                          \
    } while (0)

static void attnc_yyerror(const ATTNC_YYLTYPE *loc, parse_ctx *pc, void *scanner, const char *msg);
static ast_name mkname(parse_ctx *pc, attnc_span at);
static ast_expr *mknum(parse_ctx *pc, attnc_span at);
static ast_expr *mkexpr(parse_ctx *pc, ast_expr_kind kind, attnc_span at);
static ast_expr *mkbin(parse_ctx *pc, char op, ast_expr *l, ast_expr *r, attnc_span at);
static ast_item *mkitem(parse_ctx *pc, ast_item_kind kind, attnc_span at);
static void push_item(item_list *l, ast_item *it);
static void push_expr(expr_list *l, ast_expr *e);
static void set_decl_kind(item_list *l, ast_item_kind kind, attnc_span at);

#define ALLOC_CHECK(p) do { if (!(p)) { YYNOMEM; } } while (0)
}

%parse-param {parse_ctx *pc} {void *scanner}
%lex-param {void *scanner}

%union {
    ast_expr *expr;
    ast_item *item;
    item_list items;
    expr_list exprs;
}

%token ATTENTION "'attention'" DIM "'dim'" HEADS "'heads'" INPUT "'input'" PARAM "'param'"
%token LET "'let'" LINEAR "'linear'" SOFTMAX "'softmax'" IN "'in'"
%token IDENT "name" INTEGER "integer" REAL "number"

%type <expr> expr term unary power primary number
%type <exprs> args arglist shape
%type <item> item decl block tensor_head
%type <items> items binding_list

%%

spec:
    ATTENTION IDENT '{' items '}' {
        pc->spec = attnc_arena_alloc(pc->arena, sizeof *pc->spec);
        ALLOC_CHECK(pc->spec);
        pc->spec->name = mkname(pc, @2);
        pc->spec->span = @$;
        pc->spec->items = $4.head;
    }
  | ATTENTION IDENT '{' items error '}' {
        pc->spec = attnc_arena_alloc(pc->arena, sizeof *pc->spec);
        ALLOC_CHECK(pc->spec);
        pc->spec->name = mkname(pc, @2);
        pc->spec->span = @$;
        pc->spec->items = $4.head;
    }
  ;

items:
    %empty          { $$.head = $$.tail = NULL; }
  | items item      { $$ = $1; if ($2) push_item(&$$, $2); }
  ;

item:
    decl ';'        { $$ = $1; }
  | block           { $$ = $1; }
  | error ';'       { $$ = NULL; yyerrok; }
  ;

decl:
    DIM binding_list        { set_decl_kind(&$2, AST_DIM, @1); $$ = $2.head; }
  | HEADS binding_list      { set_decl_kind(&$2, AST_HEADS, @1); $$ = $2.head; }
  | tensor_head             { $$ = $1; }
  | tensor_head IN '[' expr ',' expr ']' { $$ = $1; $$->lo = $4; $$->hi = $6; $$->span = @$; }
  | LET IDENT '=' expr {
        ALLOC_CHECK($$ = mkitem(pc, AST_LET, @$));
        $$->name = mkname(pc, @2);
        $$->value = $4;
    }
  | IDENT '=' expr {
        ALLOC_CHECK($$ = mkitem(pc, AST_ROLE, @$));
        $$->name = mkname(pc, @1);
        $$->value = $3;
    }
  | IDENT args {
        ALLOC_CHECK($$ = mkitem(pc, AST_SETTING, @$));
        $$->name = mkname(pc, @1);
        $$->args = $2.head;
        $$->nargs = $2.n;
    }
  ;

/* `dim K = 128, V = 64` becomes one item per name, chained; set_decl_kind fixes their kind. */
binding_list:
    IDENT '=' expr {
        ast_item *it = mkitem(pc, AST_DIM, @$);
        ALLOC_CHECK(it);
        it->name = mkname(pc, @1);
        it->value = $3;
        $$.head = $$.tail = it;
    }
  | binding_list ',' IDENT '=' expr {
        ast_item *it = mkitem(pc, AST_DIM, attnc_span_join(@3, @5));
        ALLOC_CHECK(it);
        it->name = mkname(pc, @3);
        it->value = $5;
        $$ = $1;
        $$.tail->next = it;
        $$.tail = it;
    }
  ;

tensor_head:
    INPUT IDENT ':' IDENT '[' shape ']' {
        ALLOC_CHECK($$ = mkitem(pc, AST_INPUT, @$));
        $$->name = mkname(pc, @2);
        $$->dtype = mkname(pc, @4);
        $$->shape = $6.head;
        $$->nshape = $6.n;
    }
  | PARAM IDENT ':' IDENT '[' shape ']' {
        ALLOC_CHECK($$ = mkitem(pc, AST_PARAM, @$));
        $$->name = mkname(pc, @2);
        $$->dtype = mkname(pc, @4);
        $$->shape = $6.head;
        $$->nshape = $6.n;
    }
  ;

shape:
    expr            { $$.head = $$.tail = NULL; $$.n = 0; push_expr(&$$, $1); }
  | shape ',' expr  { $$ = $1; push_expr(&$$, $3); }
  ;

block:
    LINEAR '{' items '}'        { ALLOC_CHECK($$ = mkitem(pc, AST_BLOCK, @$)); $$->name = mkname(pc, @1); $$->items = $3.head; }
  | LINEAR '{' items error '}'  { ALLOC_CHECK($$ = mkitem(pc, AST_BLOCK, @$)); $$->name = mkname(pc, @1); $$->items = $3.head; }
  | SOFTMAX '{' items '}'       { ALLOC_CHECK($$ = mkitem(pc, AST_BLOCK, @$)); $$->name = mkname(pc, @1); $$->items = $3.head; }
  | SOFTMAX '{' items error '}' { ALLOC_CHECK($$ = mkitem(pc, AST_BLOCK, @$)); $$->name = mkname(pc, @1); $$->items = $3.head; }
  ;

args:
    %empty          { $$.head = $$.tail = NULL; $$.n = 0; }
  | arglist         { $$ = $1; }
  ;

arglist:
    expr             { $$.head = $$.tail = NULL; $$.n = 0; push_expr(&$$, $1); }
  | arglist ',' expr { $$ = $1; push_expr(&$$, $3); }
  ;

expr:
    expr '+' term   { ALLOC_CHECK($$ = mkbin(pc, '+', $1, $3, @$)); }
  | expr '-' term   { ALLOC_CHECK($$ = mkbin(pc, '-', $1, $3, @$)); }
  | term            { $$ = $1; }
  ;

term:
    term '*' unary  { ALLOC_CHECK($$ = mkbin(pc, '*', $1, $3, @$)); }
  | term '/' unary  { ALLOC_CHECK($$ = mkbin(pc, '/', $1, $3, @$)); }
  | unary           { $$ = $1; }
  ;

unary:
    '-' unary       { ALLOC_CHECK($$ = mkbin(pc, 0, $2, NULL, @$)); }
  | power           { $$ = $1; }
  ;

power:
    primary '^' unary { ALLOC_CHECK($$ = mkbin(pc, '^', $1, $3, @$)); }
  | primary         { $$ = $1; }
  ;

primary:
    number          { $$ = $1; }
  | IDENT           { ALLOC_CHECK($$ = mkexpr(pc, AST_NAME, @$)); $$->name = mkname(pc, @1); }
  | IDENT '(' args ')' {
        ALLOC_CHECK($$ = mkexpr(pc, AST_CALL, @$));
        $$->name = mkname(pc, @1);
        $$->args = $3.head;
        $$->nargs = $3.n;
        for (ast_expr *a = $$->args; a; a = a->next)
            if (a->depth + 1 > $$->depth)
                $$->depth = a->depth + 1;
        if ($$->depth == AST_MAX_DEPTH + 1) /* as in mkbin: sema skips what is deeper */
            attnc_error(pc->diags, @$, "expression is nested too deeply (more than %d levels)", AST_MAX_DEPTH);
    }
  | '(' expr ')'    { $$ = $2; }
  ;

number:
    INTEGER         { ALLOC_CHECK($$ = mknum(pc, @1)); }
  | REAL            { ALLOC_CHECK($$ = mknum(pc, @1)); }
  ;

%%

static const char *tok_text(parse_ctx *pc, attnc_span at, int *len)
{
    *len = (int)(at.end - at.start);
    return pc->src->text + at.start;
}

static ast_name mkname(parse_ctx *pc, attnc_span at)
{
    int len;
    const char *t = tok_text(pc, at, &len);
    ast_name n = {attnc_arena_strndup(pc->arena, t, (size_t)len), (uint32_t)len, at};
    if (!n.text)
        n.text = "", n.len = 0;
    return n;
}

static ast_expr *mkexpr(parse_ctx *pc, ast_expr_kind kind, attnc_span at)
{
    ast_expr *e = attnc_arena_alloc(pc->arena, sizeof *e);
    if (e) {
        e->kind = kind;
        e->span = at;
        e->depth = 1;
    }
    return e;
}

static ast_expr *mknum(parse_ctx *pc, attnc_span at)
{
    ast_expr *e = mkexpr(pc, AST_NUM, at);
    if (!e)
        return NULL;
    int len;
    const char *t = tok_text(pc, at, &len);
    char buf[64];
    if (len >= (int)sizeof buf) {
        attnc_error(pc->diags, at, "number '%.20s...' is too long", t);
        e->num = 0;
        return e;
    }
    memcpy(buf, t, (size_t)len);
    buf[len] = 0;
    errno = 0;
    char *end;
    e->num = strtod(buf, &end);
    if (errno == ERANGE && !isfinite(e->num)) {
        attnc_error(pc->diags, at, "number '%s' is out of range", buf);
        e->num = 0;
    }
    return e;
}

static ast_expr *mkbin(parse_ctx *pc, char op, ast_expr *l, ast_expr *r, attnc_span at)
{
    ast_expr *e = mkexpr(pc, op ? AST_BIN : AST_NEG, at);
    if (!e)
        return NULL;
    e->op = op;
    e->lhs = l;
    e->rhs = r;
    uint32_t d = l->depth;
    if (r && r->depth > d)
        d = r->depth;
    e->depth = d + 1;
    if (e->depth == AST_MAX_DEPTH + 1)
        attnc_error(pc->diags, at, "expression is nested too deeply (more than %d levels)", AST_MAX_DEPTH);
    return e;
}

static ast_item *mkitem(parse_ctx *pc, ast_item_kind kind, attnc_span at)
{
    ast_item *it = attnc_arena_alloc(pc->arena, sizeof *it);
    if (it) {
        it->kind = kind;
        it->span = at;
    }
    return it;
}

static void push_item(item_list *l, ast_item *it)
{
    ast_item *last = it;
    while (last->next) /* a `dim` with several names is a chain */
        last = last->next;
    if (l->tail)
        l->tail->next = it;
    else
        l->head = it;
    l->tail = last;
}

static void push_expr(expr_list *l, ast_expr *e)
{
    if (l->tail)
        l->tail->next = e;
    else
        l->head = e;
    l->tail = e;
    l->n++;
}

/* `at` is the keyword: the first item's span starts there (`dim K = 1`), the others' at their name. */
static void set_decl_kind(item_list *l, ast_item_kind kind, attnc_span at)
{
    for (ast_item *it = l->head; it; it = it->next)
        it->kind = kind;
    if (l->head)
        l->head->span = attnc_span_join(at, l->head->span);
}

static void note_open_brace(parse_ctx *pc)
{
    if (pc->nopen > 0 && pc->nopen <= PARSE_MAX_OPEN)
        attnc_note(pc->diags, pc->open[pc->nopen - 1], "to match this '{'");
}

static int yyreport_syntax_error(const yypcontext_t *ctx, parse_ctx *pc, void *scanner)
{
    (void)scanner;
    enum { MAX_EXPECTED = 6 };
    yysymbol_kind_t expected[MAX_EXPECTED];
    int n = yypcontext_expected_tokens(ctx, expected, MAX_EXPECTED);
    yysymbol_kind_t got = yypcontext_token(ctx);
    const ATTNC_YYLTYPE *loc = yypcontext_location(ctx);
    char msg[400];
    int len;
    /* A ';' that could end the previous line and a token on a later line: the ';' is missing, so say
     * that where it belongs rather than at the next line's first token. */
    yysymbol_kind_t all[YYNTOKENS];
    int nall = yypcontext_expected_tokens(ctx, all, YYNTOKENS);
    bool semi = false;
    for (int i = 0; i < nall; i++)
        semi = semi || strcmp(yysymbol_name(all[i]), "';'") == 0;
    if (semi && got != YYSYMBOL_YYEOF && pc->prev_end < loc->start &&
        memchr(pc->src->text + pc->prev_end, '\n', loc->start - pc->prev_end)) {
        int tl;
        const char *t = tok_text(pc, *loc, &tl);
        attnc_error(pc->diags, (attnc_span){loc->file, pc->prev_end, pc->prev_end}, "expected ';' before '%.*s'",
                    tl > 30 ? 30 : tl, t);
        return 0;
    }
    if (got == YYSYMBOL_YYEOF)
        len = snprintf(msg, sizeof msg, "unexpected end of file");
    else {
        int tl;
        const char *t = tok_text(pc, *loc, &tl);
        if (tl > 30)
            tl = 30;
        const char *what = yysymbol_name(got);
        if (what[0] == '\'')
            len = snprintf(msg, sizeof msg, "unexpected %s", what);
        else
            len = snprintf(msg, sizeof msg, "unexpected %s '%.*s'", what, tl, t);
    }
    if (n > 0 && n <= MAX_EXPECTED - 2) {
        len += snprintf(msg + len, sizeof msg - (size_t)len, ", expected ");
        for (int i = 0; i < n; i++)
            len += snprintf(msg + len, sizeof msg - (size_t)len, "%s%s",
                            i == 0 ? "" : i == n - 1 ? " or " : ", ", yysymbol_name(expected[i]));
    }
    attnc_error(pc->diags, *loc, "%s", msg);
    if (got == YYSYMBOL_YYEOF)
        note_open_brace(pc);
    return 0;
}

static void attnc_yyerror(const ATTNC_YYLTYPE *loc, parse_ctx *pc, void *scanner, const char *msg)
{
    (void)scanner;
    if (strcmp(msg, "memory exhausted") == 0)
        attnc_error(pc->diags, *loc, "the input is nested too deeply or is too large to parse");
    else
        attnc_error(pc->diags, *loc, "%s", msg);
}
