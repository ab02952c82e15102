/* api/attnc.c: the public interface (include/attnc.h) over the frontend, the IR and the reference.
 *
 * An attnc_spec is one compilation: it owns the arena in which the source, the diagnostics, the syntax
 * tree, the IR and every string handed out live.  Nothing here prints or exits.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "attnc.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_internal.h"
#include "ast.h"
#include "ir.h"
#include "sema.h"

struct attnc_ctx {
    char errmsg[512];
};

int attnc_version(void)
{
    return ATTNC_VERSION_NUMBER;
}

const char *attnc_version_string(void)
{
    return ATTNC_VERSION_STRING;
}

const char *attnc_status_str(attnc_status s)
{
    switch (s) {
    case ATTNC_OK: return "ATTNC_OK";
    case ATTNC_ERR_INPUT: return "ATTNC_ERR_INPUT";
    case ATTNC_ERR_USAGE: return "ATTNC_ERR_USAGE";
    case ATTNC_ERR_IO: return "ATTNC_ERR_IO";
    case ATTNC_ERR_NOMEM: return "ATTNC_ERR_NOMEM";
    case ATTNC_ERR_NUMERIC: return "ATTNC_ERR_NUMERIC";
    case ATTNC_ERR_VERSION: return "ATTNC_ERR_VERSION";
    }
    return "ATTNC_ERR_UNKNOWN";
}

attnc_status api_fail(attnc_ctx *ctx, attnc_status s, const char *fmt, ...)
{
    if (ctx) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->errmsg, sizeof ctx->errmsg, fmt, ap);
        va_end(ap);
    }
    return s;
}

attnc_status attnc_ctx_new_v(int header_version, attnc_ctx **ctx)
{
    if (!ctx)
        return ATTNC_ERR_USAGE;
    *ctx = NULL;
    if (header_version / 100 != ATTNC_VERSION_NUMBER / 100)
        return ATTNC_ERR_VERSION;
    *ctx = calloc(1, sizeof **ctx);
    return *ctx ? ATTNC_OK : ATTNC_ERR_NOMEM;
}

void attnc_ctx_free(attnc_ctx *ctx)
{
    free(ctx);
}

const char *attnc_errmsg(const attnc_ctx *ctx)
{
    return ctx ? ctx->errmsg : "no context";
}

static attnc_spec *spec_new(void)
{
    attnc_arena *a = attnc_arena_new();
    if (!a)
        return NULL;
    attnc_spec *s = attnc_arena_alloc(a, sizeof *s);
    if (!s) {
        attnc_arena_free(a);
        return NULL;
    }
    s->arena = a;
    attnc_diags_init(&s->diags, a);
    return s;
}

typedef enum { FROM_SPEC, FROM_IR } source_kind;

static attnc_status spec_build(attnc_ctx *ctx, const char *name, const char *text, size_t len, source_kind kind,
                               attnc_spec **out)
{
    if (!out)
        return api_fail(ctx, ATTNC_ERR_USAGE, "no place for the result (spec is NULL)");
    *out = NULL;
    if (!text && len)
        return api_fail(ctx, ATTNC_ERR_USAGE, "text is NULL");
    if (!name)
        name = "<string>";
    attnc_spec *s = spec_new();
    if (!s)
        return api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
    *out = s;
    if (len > ATTNC_MAX_SOURCE) {
        attnc_diags_add_file(&s->diags, name, "", 0);
        attnc_error(&s->diags, (attnc_span){0, 0, 0}, "%s: the input is larger than the limit of %zu bytes", name,
                    (size_t)ATTNC_MAX_SOURCE);
        return api_fail(ctx, ATTNC_ERR_INPUT, "the input is too large");
    }
    uint32_t file = attnc_diags_add_file(&s->diags, name, text ? text : "", len);
    if (!file) {
        attnc_spec_free(s);
        *out = NULL;
        return api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
    }
    if (kind == FROM_SPEC) {
        ast_spec *ast = ast_parse(s->arena, &s->diags, file);
        if (ast && s->diags.errors == 0)
            s->ir = sema_check(s->arena, &s->diags, ast);
    } else {
        s->ir = ir_parse(s->arena, &s->diags, file);
        if (s->ir && !ir_verify(s->ir, &s->diags))
            s->ir = NULL;
    }
    if (attnc_arena_failed(s->arena)) {
        attnc_spec_free(s);
        *out = NULL;
        return api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
    }
    if (!s->ir || s->diags.errors) {
        s->ir = NULL;
        return api_fail(ctx, ATTNC_ERR_INPUT, "%s: %u error%s", name, s->diags.errors, s->diags.errors == 1 ? "" : "s");
    }
    return ATTNC_OK;
}

attnc_status attnc_spec_from_string(attnc_ctx *ctx, const char *name, const char *text, size_t len, attnc_spec **spec)
{
    return spec_build(ctx, name, text, len, FROM_SPEC, spec);
}

attnc_status attnc_spec_from_ir(attnc_ctx *ctx, const char *name, const char *text, size_t len, attnc_spec **spec)
{
    return spec_build(ctx, name, text, len, FROM_IR, spec);
}

attnc_status api_read_file(attnc_ctx *ctx, const char *path, char **text, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return api_fail(ctx, ATTNC_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    /* At most ATTNC_MAX_SOURCE + 1 bytes are read: one byte past the limit says the file is too large
     * (the caller reports it) without reading the rest. */
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap || cap > ATTNC_MAX_SOURCE)
            break;
        size_t ncap = cap * 2 > ATTNC_MAX_SOURCE ? ATTNC_MAX_SOURCE + 1 : cap * 2;
        char *nb = realloc(buf, ncap);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap = ncap;
    }
    bool err = ferror(f);
    fclose(f);
    if (!buf)
        return api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory reading '%s'", path);
    if (err) {
        free(buf);
        return api_fail(ctx, ATTNC_ERR_IO, "cannot read '%s'", path);
    }
    *text = buf;
    *len = n;
    return ATTNC_OK;
}

attnc_status attnc_spec_from_file(attnc_ctx *ctx, const char *path, attnc_spec **spec)
{
    if (!path || !spec)
        return api_fail(ctx, ATTNC_ERR_USAGE, "path or spec is NULL");
    *spec = NULL;
    char *text;
    size_t len;
    attnc_status st = api_read_file(ctx, path, &text, &len);
    if (st != ATTNC_OK)
        return st;
    size_t lead = 0; /* the IR reader, like this test, allows blank lines before its header */
    while (lead < len && (text[lead] == ' ' || text[lead] == '\t' || text[lead] == '\r' || text[lead] == '\n'))
        lead++;
    bool is_ir = len - lead >= 8 && memcmp(text + lead, "attnc-ir", 8) == 0;
    st = spec_build(ctx, path, text, len, is_ir ? FROM_IR : FROM_SPEC, spec);
    free(text);
    return st;
}

void attnc_spec_free(attnc_spec *spec)
{
    if (spec)
        attnc_arena_free(spec->arena);
}

size_t attnc_spec_diag_count(const attnc_spec *spec)
{
    return spec ? spec->diags.n : 0;
}

size_t attnc_spec_error_count(const attnc_spec *spec)
{
    return spec ? spec->diags.errors : 0;
}

attnc_status attnc_spec_diag(const attnc_spec *spec, size_t i, attnc_diagnostic *out)
{
    if (!spec || !out || i >= spec->diags.n)
        return ATTNC_ERR_USAGE;
    const attnc_diag_entry *e = &spec->diags.list[i];
    const attnc_source *src = attnc_diags_file(&spec->diags, e->span.file);
    out->severity = (attnc_severity_level)e->severity;
    out->message = e->message;
    out->file = src ? src->name : "";
    out->line = out->col = 0;
    if (src)
        attnc_line_col(src, e->span.start, &out->line, &out->col);
    return ATTNC_OK;
}

const char *attnc_spec_diag_text(attnc_spec *spec)
{
    return spec ? attnc_diags_render(&spec->diags, spec->arena) : "";
}

const char *attnc_spec_diag_machine(attnc_spec *spec)
{
    return spec ? attnc_diags_render_machine(&spec->diags, spec->arena) : "";
}

const char *attnc_spec_ir(attnc_spec *spec)
{
    if (!spec || !spec->ir)
        return NULL;
    if (!spec->ir_text)
        spec->ir_text = ir_print(spec->ir, spec->arena);
    return spec->ir_text;
}

const char *attnc_spec_name(const attnc_spec *spec)
{
    return spec && spec->ir ? spec->ir->name : "";
}

attnc_status attnc_spec_shape(const attnc_spec *spec, attnc_shape *out)
{
    if (!spec || !spec->ir || !out)
        return ATTNC_ERR_USAGE;
    ir_shape sh = ir_module_shape(spec->ir);
    *out = (attnc_shape){
        .key_dim = sh.K,
        .value_dim = sh.V,
        .heads_q = sh.heads_q,
        .heads_k = sh.heads_k,
        .heads_v = sh.heads_v,
        .heads_state = sh.heads_state,
        .heads_out = sh.heads_out,
        .chunk = spec->ir->chunk,
        .has_linear = spec->ir->linear.present,
        .has_softmax = spec->ir->softmax.present,
    };
    return ATTNC_OK;
}

size_t attnc_spec_tensor_count(const attnc_spec *spec)
{
    return spec && spec->ir ? spec->ir->ntensors : 0;
}

attnc_status attnc_spec_tensor(const attnc_spec *spec, size_t i, attnc_tensor_info *out)
{
    if (!spec || !spec->ir || !out || i >= spec->ir->ntensors)
        return ATTNC_ERR_USAGE;
    const ir_tensor *t = &spec->ir->tensors[i];
    *out = (attnc_tensor_info){.name = t->name, .per_token = t->per_token, .heads = spec->ir->axes[t->axis].count,
                               .len = t->len, .dtype = (int)t->dtype, .has_range = t->has_range, .lo = t->lo,
                               .hi = t->hi};
    return ATTNC_OK;
}

double api_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
