/* frontend/parse_ctx.h: state shared by the scanner (lexer.l) and the parser (parser.y). */
#ifndef ATTNC_PARSE_CTX_H
#define ATTNC_PARSE_CTX_H

#include "ast.h"

typedef struct parse_ctx parse_ctx;

#define PARSE_MAX_OPEN 64 /* open '{' remembered for "to match this '{'" notes */

struct parse_ctx {
    attnc_arena *arena;
    attnc_diags *diags;
    uint32_t file;
    const attnc_source *src;
    uint32_t offset;        /* byte offset of the scanner in src */
    uint32_t comment_start; /* where the open block comment began */
    attnc_span open[PARSE_MAX_OPEN]; /* spans of the '{' not yet closed (innermost last) */
    uint32_t nopen;         /* may exceed PARSE_MAX_OPEN; only the first ones are kept */
    bool bad_run;           /* the previous token was an invalid character (reported once per run) */
    uint32_t last_end;      /* end of the last token scanned (the parser's lookahead) */
    uint32_t prev_end;      /* end of the token before it (where a missing ';' is reported) */
    ast_spec *spec;
};

#endif
