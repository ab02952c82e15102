/* frontend/parse.c: runs the scanner and the parser over one registered source file.
 *
 * The scanner reads a copy of the source in which every NUL byte is replaced by 0x01: flex takes a NUL
 * for a possible end of its buffer and rescans the current token from its start at each one, which
 * makes a run of NULs quadratic (40 KB of them took seconds).  0x01 scans exactly as NUL does (a control
 * character, or a byte inside a comment), and the lexer reports the byte from the original text.
 */
#include <stdlib.h>
#include <string.h>

#include "ast.h"
#include "parse_ctx.h"
#include "parser.h"

/* From the flex-generated scanner (lexer.c); declared here to keep its header out of the build. */
typedef void *yyscan_t;
typedef struct yy_buffer_state *YY_BUFFER_STATE;
int attnc_yylex_init_extra(parse_ctx *extra, yyscan_t *scanner);
int attnc_yylex_destroy(yyscan_t scanner);
YY_BUFFER_STATE attnc_yy_scan_buffer(char *base, size_t size, yyscan_t scanner);
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
    char *buf = malloc((size_t)src->len + 2); /* flex wants two NULs at the end */
    if (buf) {
        memcpy(buf, src->text, src->len);
        buf[src->len] = buf[src->len + 1] = 0;
        for (char *p = memchr(buf, 0, src->len); p; p = memchr(p + 1, 0, (size_t)(buf + src->len - p - 1)))
            *p = 1;
    }
    if (!buf || !attnc_yy_scan_buffer(buf, (size_t)src->len + 2, scanner)) {
        attnc_yylex_destroy(scanner);
        free(buf);
        attnc_error(diags, (attnc_span){0, 0, 0}, "out of memory while parsing");
        return NULL;
    }
    uint32_t errors = diags->errors;
    int rc = attnc_yyparse(&pc, scanner);
    attnc_yylex_destroy(scanner);
    free(buf);
    if (rc == 2 && diags->errors == errors) /* exhaustion is reported by yyerror; this is a real OOM */
        attnc_error(diags, (attnc_span){file, src->len, src->len}, "out of memory while parsing");
    return pc.spec;
}
