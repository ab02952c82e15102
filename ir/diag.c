/* ir/diag.c: the file table, diagnostic accumulation and rendering.
 *
 * Rendering turns byte offsets into line:column only when printing.  Columns count characters (UTF-8
 * sequences count once); bytes that are not printable (control bytes, invalid UTF-8) are shown as '?'
 * so that a diagnostic about a binary file is still one clean line of text.
 */
#include "diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void attnc_diags_init(attnc_diags *d, attnc_arena *a)
{
    memset(d, 0, sizeof *d);
    d->arena = a;
    d->files = attnc_arena_alloc(a, sizeof *d->files);
    d->nfiles = 1;
}

uint32_t attnc_diags_add_file(attnc_diags *d, const char *name, const char *text, size_t len)
{
    if (!d->files || len > ATTNC_MAX_SOURCE)
        return 0;
    attnc_source *files = attnc_arena_grow(d->arena, d->files, d->nfiles * sizeof *files,
                                           (d->nfiles + 1) * sizeof *files);
    if (!files)
        return 0;
    d->files = files;
    attnc_source *s = &files[d->nfiles];
    s->name = attnc_arena_strndup(d->arena, name, strlen(name));
    s->text = attnc_arena_strndup(d->arena, text, len);
    s->len = (uint32_t)len;
    uint32_t n = 1;
    for (size_t i = 0; i < len; i++)
        n += text[i] == '\n';
    s->lines = attnc_arena_alloc(d->arena, n * sizeof *s->lines);
    if (!s->name || !s->text || !s->lines)
        return 0;
    s->nlines = 0;
    s->lines[s->nlines++] = 0;
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\n')
            s->lines[s->nlines++] = (uint32_t)i + 1;
    return d->nfiles++;
}

const attnc_source *attnc_diags_file(const attnc_diags *d, uint32_t file)
{
    return file > 0 && file < d->nfiles ? &d->files[file] : NULL;
}

static void add(attnc_diags *d, attnc_severity sev, attnc_span at, const char *fmt, va_list ap)
{
    if (sev == ATTNC_SEV_ERROR) {
        if (d->errors >= ATTNC_MAX_ERRORS) {
            d->truncated = true;
            d->errors++;
            return;
        }
        d->errors++;
    } else if (sev == ATTNC_SEV_WARNING) {
        d->warnings++;
    } else if (d->truncated) {
        return; /* the note of a dropped error */
    }
    if (d->n == d->cap) {
        uint32_t cap = d->cap ? d->cap * 2 : 16;
        attnc_diag_entry *p = attnc_arena_grow(d->arena, d->list, d->n * sizeof *p, cap * sizeof *p);
        if (!p)
            return;
        d->list = p;
        d->cap = cap;
    }
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    d->list[d->n].severity = sev;
    d->list[d->n].span = at;
    d->list[d->n].message = attnc_arena_strndup(d->arena, buf, strlen(buf));
    d->n++;
}

#define DEFINE_REPORT(fn, sev)                                                                     \
    void fn(attnc_diags *d, attnc_span at, const char *fmt, ...)                                   \
    {                                                                                              \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        add(d, sev, at, fmt, ap);                                                                  \
        va_end(ap);                                                                                \
    }
DEFINE_REPORT(attnc_error, ATTNC_SEV_ERROR)
DEFINE_REPORT(attnc_warning, ATTNC_SEV_WARNING)
DEFINE_REPORT(attnc_note, ATTNC_SEV_NOTE)

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t min;
    if (s[0] < 0x80)
        return 1;
    else if ((s[0] & 0xe0) == 0xc0)
        len = 2, min = 0x80;
    else if ((s[0] & 0xf0) == 0xe0)
        len = 3, min = 0x800;
    else if ((s[0] & 0xf8) == 0xf0)
        len = 4, min = 0x10000;
    else
        return 0;
    if (len > n)
        return 0;
    uint32_t cp = s[0] & (0x7fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

void attnc_line_col(const attnc_source *src, uint32_t offset, uint32_t *line, uint32_t *col)
{
    if (offset > src->len)
        offset = src->len;
    uint32_t lo = 0, hi = src->nlines; /* last line start <= offset */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (src->lines[mid] <= offset)
            lo = mid;
        else
            hi = mid;
    }
    *line = lo + 1;
    uint32_t c = 1;
    const unsigned char *t = (const unsigned char *)src->text;
    for (uint32_t i = src->lines[lo]; i < offset;) {
        size_t n = utf8_len(t + i, src->len - i);
        i += n ? (uint32_t)n : 1;
        c++;
    }
    *col = c;
}

static const char *sev_name(attnc_severity s)
{
    return s == ATTNC_SEV_ERROR ? "error" : s == ATTNC_SEV_WARNING ? "warning" : "note";
}

#define MAX_SHOWN_LINE 200 /* characters of a source line shown under a diagnostic */

/* The source line of `span`, sanitised, and a caret line under the span's part of that line. */
static void render_excerpt(attnc_buf *b, const attnc_source *src, attnc_span span, uint32_t line)
{
    uint32_t ls = src->lines[line - 1];
    uint32_t le = line < src->nlines ? src->lines[line] - 1 : src->len;
    if (le > ls && src->text[le - 1] == '\r')
        le--;
    uint32_t start = span.start < ls ? ls : span.start;
    uint32_t end = span.end > le ? le : span.end;
    char gutter[16];
    int gw = snprintf(gutter, sizeof gutter, "%5u", line);
    attnc_buf text, marks;
    attnc_buf_init(&text, b->arena);
    attnc_buf_init(&marks, b->arena);
    const unsigned char *t = (const unsigned char *)src->text;
    /* A span far into a long line: show a window that begins shortly before it. */
    uint32_t from = ls, skipped = 0;
    for (uint32_t i = ls, chars = 0; i < start; chars++) {
        size_t n = utf8_len(t + i, le - i);
        i += n ? (uint32_t)n : 1;
        if (chars >= MAX_SHOWN_LINE - 40) {
            size_t m = utf8_len(t + from, le - from);
            from += m ? (uint32_t)m : 1;
            skipped = 1;
        }
    }
    if (skipped) {
        attnc_buf_puts(&text, "... ");
        attnc_buf_puts(&marks, "    ");
    }
    uint32_t shown = 0;
    for (uint32_t i = from; i < le && shown < MAX_SHOWN_LINE; shown++) {
        size_t n = utf8_len(t + i, le - i);
        bool c1 = n == 2 && t[i] == 0xc2 && t[i + 1] < 0xa0; /* U+0080..U+009F: C1 control characters */
        bool printable = (n > 1 && !c1) || (n == 1 && (t[i] >= 0x20 || t[i] == '\t') && t[i] != 0x7f);
        if (printable)
            attnc_buf_put(&text, (const char *)t + i, n);
        else
            attnc_buf_put(&text, "?", 1);
        const char *mark = " ";
        if (i == start)
            mark = "^";
        else if (i > start && i < end)
            mark = "~";
        if (t[i] == '\t' && i < start)
            mark = "\t";
        attnc_buf_puts(&marks, mark);
        i += n ? (uint32_t)n : 1;
    }
    if (start >= le && shown < MAX_SHOWN_LINE) /* a span at the end of the line (e.g. a missing ';') */
        attnc_buf_puts(&marks, "^");
    if (le - ls > 0 && shown >= MAX_SHOWN_LINE)
        attnc_buf_puts(&text, " ...");
    /* Trim trailing blanks of the caret line. */
    char *ms = attnc_buf_str(&marks);
    size_t ml = strlen(ms);
    while (ml > 0 && ms[ml - 1] == ' ')
        ms[--ml] = 0;
    attnc_buf_printf(b, "%s | %s\n%*s | %s\n", gutter, attnc_buf_str(&text), gw, "", ms);
}

char *attnc_diags_render(const attnc_diags *d, attnc_arena *a)
{
    attnc_buf b;
    attnc_buf_init(&b, a);
    for (uint32_t i = 0; i < d->n; i++) {
        const attnc_diag_entry *e = &d->list[i];
        const attnc_source *src = attnc_diags_file(d, e->span.file);
        if (!src) {
            attnc_buf_printf(&b, "attnc: %s: %s\n", sev_name(e->severity), e->message);
            continue;
        }
        uint32_t line, col;
        attnc_line_col(src, e->span.start, &line, &col);
        attnc_buf_printf(&b, "%s:%u:%u: %s: %s\n", src->name, line, col, sev_name(e->severity),
                         e->message);
        render_excerpt(&b, src, e->span, line);
    }
    if (d->truncated)
        attnc_buf_printf(&b, "attnc: note: %u more errors not shown (the limit is %d)\n",
                         d->errors - ATTNC_MAX_ERRORS, ATTNC_MAX_ERRORS);
    return attnc_buf_str(&b);
}

char *attnc_diags_render_machine(const attnc_diags *d, attnc_arena *a)
{
    attnc_buf b;
    attnc_buf_init(&b, a);
    for (uint32_t i = 0; i < d->n; i++) {
        const attnc_diag_entry *e = &d->list[i];
        const attnc_source *src = attnc_diags_file(d, e->span.file);
        uint32_t line = 0, col = 0;
        if (src)
            attnc_line_col(src, e->span.start, &line, &col);
        attnc_buf_printf(&b, "%s|%s|%u|%u|%s\n", sev_name(e->severity), src ? src->name : "", line, col,
                         e->message);
    }
    if (d->truncated)
        attnc_buf_printf(&b, "note||0|0|%u more errors not shown (the limit is %d)\n", d->errors - ATTNC_MAX_ERRORS,
                         ATTNC_MAX_ERRORS);
    return attnc_buf_str(&b);
}
