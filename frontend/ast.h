/* frontend/ast.h: the syntax tree of one .attn file, as the parser builds it.
 *
 * The tree is close to the text: a spec is a list of items; an item is a declaration (dim, heads,
 * input, param, let), a role binding (NAME = expr), a setting (NAME args) or a block (linear { ... },
 * softmax { ... }).  Role and setting names are plain identifiers here; sema gives them meaning, so
 * that a misspelt name gets a "did you mean" diagnostic instead of a syntax error.
 * Every node carries its span.  Everything lives in the compilation's arena.
 */
#ifndef ATTNC_AST_H
#define ATTNC_AST_H

#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "diag.h"

#define AST_MAX_DEPTH 200 /* deeper expressions are refused (sema recurses over them) */

typedef struct ast_name {
    const char *text; /* NUL-terminated */
    uint32_t len;
    attnc_span span;
} ast_name;

typedef enum ast_expr_kind {
    AST_NUM,  /* number literal */
    AST_NAME, /* identifier */
    AST_CALL, /* name(args) */
    AST_BIN,  /* lhs op rhs, op one of + - * / ^ */
    AST_NEG   /* -lhs */
} ast_expr_kind;

typedef struct ast_expr {
    ast_expr_kind kind;
    attnc_span span;
    uint32_t depth;        /* 1 + the depth of the deepest operand */
    double num;            /* AST_NUM */
    ast_name name;         /* AST_NAME, AST_CALL */
    char op;               /* AST_BIN */
    struct ast_expr *lhs, *rhs;
    struct ast_expr *next; /* next argument in a call or a setting */
    struct ast_expr *args; /* AST_CALL */
    uint32_t nargs;
} ast_expr;

typedef enum ast_item_kind {
    AST_DIM,     /* dim NAME = expr */
    AST_HEADS,   /* heads NAME = expr */
    AST_INPUT,   /* input NAME : DTYPE [shape] (in [lo, hi])? */
    AST_PARAM,   /* param NAME : DTYPE [shape] (in [lo, hi])? */
    AST_LET,     /* let NAME = expr */
    AST_ROLE,    /* NAME = expr (inside a block) */
    AST_SETTING, /* NAME args */
    AST_BLOCK    /* linear { items } or softmax { items } */
} ast_item_kind;

typedef struct ast_item {
    ast_item_kind kind;
    attnc_span span;
    ast_name name;          /* declared name, role, setting, or block keyword */
    ast_expr *value;        /* DIM, HEADS, LET, ROLE */
    ast_name dtype;         /* INPUT, PARAM */
    ast_expr *shape;        /* INPUT, PARAM: list linked by next */
    uint32_t nshape;
    ast_expr *lo, *hi;      /* INPUT, PARAM: declared range, or NULL */
    ast_expr *args;         /* SETTING: list linked by next */
    uint32_t nargs;
    struct ast_item *items; /* BLOCK */
    struct ast_item *next;
} ast_item;

typedef struct ast_spec {
    ast_name name;
    attnc_span span;
    ast_item *items;
} ast_spec;

/* parse.y: parse one file (already registered in diags).  Returns NULL if nothing could be parsed;
 * syntax errors are in diags either way. */
ast_spec *ast_parse(attnc_arena *arena, attnc_diags *diags, uint32_t file);

#endif
