/* ir/diag.h: source files, spans and diagnostics of one compilation.
 *
 * A span is a byte range in one source file; line and column are computed only when a diagnostic is
 * rendered (as jq's locfile does).  Diagnostics accumulate: nothing here prints or exits.  Each error or
 * warning may carry notes that point at related places ("previous definition is here").
 *
 * Rendered form (docs/diagnostics.md):
 *     FILE:LINE:COL: error: MESSAGE
 *      LINE | source line
 *           | ^~~~~
 *     FILE:LINE:COL: note: MESSAGE
 */
#ifndef ATTNC_DIAG_H
#define ATTNC_DIAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"

typedef struct attnc_span {
    uint32_t file;  /* index into the file table; 0 = no location */
    uint32_t start; /* byte offsets, end exclusive */
    uint32_t end;
} attnc_span;

typedef enum attnc_severity { ATTNC_SEV_ERROR, ATTNC_SEV_WARNING, ATTNC_SEV_NOTE } attnc_severity;

typedef struct attnc_diag_entry {
    attnc_severity severity;
    attnc_span span;
    const char *message;
} attnc_diag_entry;

typedef struct attnc_source {
    const char *name;
    const char *text;   /* NUL-terminated copy; may also contain NUL bytes before len */
    uint32_t len;
    uint32_t *lines;    /* byte offset of each line start */
    uint32_t nlines;
} attnc_source;

#define ATTNC_MAX_ERRORS 50 /* after this many errors, further ones are dropped (one note says so) */
#define ATTNC_MAX_SOURCE ((size_t)64 << 20) /* a spec larger than 64 MiB is refused */

typedef struct attnc_diags {
    attnc_arena *arena;
    attnc_source *files; /* files[0] unused: span.file 0 means "no location" */
    uint32_t nfiles;
    attnc_diag_entry *list;
    uint32_t n, cap;
    uint32_t errors, warnings;
    bool truncated;      /* errors beyond ATTNC_MAX_ERRORS were dropped */
} attnc_diags;

void attnc_diags_init(attnc_diags *d, attnc_arena *a);
/* Copies `text` into the arena and returns the new file's index (0 on allocation failure). */
uint32_t attnc_diags_add_file(attnc_diags *d, const char *name, const char *text, size_t len);
const attnc_source *attnc_diags_file(const attnc_diags *d, uint32_t file);

void attnc_error(attnc_diags *d, attnc_span at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void attnc_warning(attnc_diags *d, attnc_span at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A note belongs to the error or warning reported just before it. */
void attnc_note(attnc_diags *d, attnc_span at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* 1-based line and column (in characters, UTF-8 aware) of a byte offset. */
void attnc_line_col(const attnc_source *src, uint32_t offset, uint32_t *line, uint32_t *col);
/* All diagnostics rendered as text, in the order reported. */
char *attnc_diags_render(const attnc_diags *d, attnc_arena *a);
/* One line per diagnostic: severity|file|line|col|message (for test runners). */
char *attnc_diags_render_machine(const attnc_diags *d, attnc_arena *a);

static inline attnc_span attnc_span_join(attnc_span a, attnc_span b)
{
    if (a.file == 0)
        return b;
    if (b.file == 0 || b.file != a.file)
        return a;
    attnc_span s = a;
    if (b.start < s.start)
        s.start = b.start;
    if (b.end > s.end)
        s.end = b.end;
    return s;
}

#endif
