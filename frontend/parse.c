/* frontend/parse.c: runs the scanner and the parser over one registered source file. */
#include "ast.h"
#include "parse_ctx.h"
#include "parser.h"

/* From the flex-generated scanner (lexer.c); declared here to keep its header out of the build. */
typedef void *yyscan_t;
typedef struct yy_buffer_state *YY_BUFFER_STATE;
int attnc_yylex_init_extra(parse_ctx *extra, yyscan_t *scanner);
int attnc_yylex_destroy(yyscan_t scanner);
YY_BUFFER_STATE attnc_yy_scan_bytes(const char *bytes, int len, yyscan_t scanner);
int attnc_yyparse(parse_ctx *pc, void *scanner);

ast_spec *ast_parse(attnc_arena *arena, attnc_diags *diags, uint32_t file)
{
    const attnc_source *src = attnc_diags_file(diags, file);
    if (!src)
        return NULL;
    parse_ctx pc = {.arena = arena, .diags = diags, .file = file, .src = src};
    yyscan_t scanner;
    if (attnc_yylex_init_extra(&pc, &scanner) != 0) {
        attnc_error(diags, (attnc_span){0, 0, 0}, "out of memory while parsing");
        return NULL;
    }
    if (!attnc_yy_scan_bytes(src->text, (int)src->len, scanner)) {
        attnc_yylex_destroy(scanner);
        attnc_error(diags, (attnc_span){0, 0, 0}, "out of memory while parsing");
        return NULL;
    }
    uint32_t errors = diags->errors;
    int rc = attnc_yyparse(&pc, scanner);
    attnc_yylex_destroy(scanner);
    if (rc == 2 && diags->errors == errors) /* exhaustion is reported by yyerror; this is a real OOM */
        attnc_error(diags, (attnc_span){file, src->len, src->len}, "out of memory while parsing");
    return pc.spec;
}
