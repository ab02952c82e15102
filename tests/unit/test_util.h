/* tests/unit/test_util.h: what the cmocka unit tests share.
 *
 * cmocka.h needs <stdarg.h>, <stddef.h>, <stdint.h> and <setjmp.h> first.  The helpers parse and check
 * spec text through the internal interfaces (diag, ast_parse, sema_check), so that a test can look at
 * the syntax tree, the IR and every diagnostic, and they read whole files for the IR round trips.
 */
#ifndef ATTNC_TEST_UTIL_H
#define ATTNC_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ast.h"
#include "diag.h"
#include "ir.h"
#include "rt.h"
#include "sema.h"

/* One compilation of a piece of text, through the internal interfaces. */
typedef struct unit_src {
    attnc_arena *arena;
    attnc_diags diags;
    uint32_t file;
    ast_spec *ast;
    ir_module *m;
} unit_src;

static inline void unit_open(unit_src *u, const char *name, const char *text, size_t len)
{
    memset(u, 0, sizeof *u);
    u->arena = attnc_arena_new();
    assert_non_null(u->arena);
    attnc_diags_init(&u->diags, u->arena);
    u->file = attnc_diags_add_file(&u->diags, name, text, len);
    assert_int_not_equal(u->file, 0);
}

/* Parse `text` as a spec; sema runs only on a clean parse (as the API does). */
static inline void unit_spec(unit_src *u, const char *text)
{
    unit_open(u, "t.attn", text, strlen(text));
    u->ast = ast_parse(u->arena, &u->diags, u->file);
    if (u->ast && u->diags.errors == 0)
        u->m = sema_check(u->arena, &u->diags, u->ast);
}

/* Parse `text` as IR text (without verifying it). */
static inline void unit_ir(unit_src *u, const char *text)
{
    unit_open(u, "t.ir", text, strlen(text));
    u->m = ir_parse(u->arena, &u->diags, u->file);
}

static inline void unit_close(unit_src *u)
{
    attnc_arena_free(u->arena);
    memset(u, 0, sizeof *u);
}

/* Line and column of diagnostic i. */
static inline void unit_diag_at(const unit_src *u, uint32_t i, uint32_t *line, uint32_t *col)
{
    const attnc_source *src = attnc_diags_file(&u->diags, u->diags.list[i].span.file);
    assert_non_null(src);
    attnc_line_col(src, u->diags.list[i].span.start, line, col);
}

/* Diagnostic i is `sev` at line:col with exactly `msg`. */
static inline void unit_expect_diag(const unit_src *u, uint32_t i, attnc_severity sev, uint32_t line, uint32_t col,
                                    const char *msg)
{
    assert_true(i < u->diags.n);
    assert_int_equal(u->diags.list[i].severity, sev);
    assert_string_equal(u->diags.list[i].message, msg);
    uint32_t l, c;
    unit_diag_at(u, i, &l, &c);
    assert_int_equal(l, line);
    assert_int_equal(c, col);
}

/* A whole file in malloc'd memory, NUL-terminated; fails the test if it cannot be read. */
static inline char *unit_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (size_t got; (got = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    fclose(f);
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

/* Removes a file or a directory tree (the cache tests' temporary directories). */
static inline void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        for (struct dirent *e; (e = readdir(d));) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char child[4096];
            if (snprintf(child, sizeof child, "%s/%s", path, e->d_name) < (int)sizeof child)
                remove_tree(child);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* Skips the test where NVRTC cannot be loaded (no CUDA toolkit); else it is one the runtime supports. */
static inline void skip_without_nvrtc(void)
{
    int major = 0, minor = 0;
    rt_error err = {{0}};
    if (!rt_nvrtc_version(&major, &minor, &err)) {
        print_message("skipping: %s\n", err.msg);
        skip();
    }
    assert_true(major >= 11);
}

#endif
