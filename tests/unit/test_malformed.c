/* tests/unit/test_malformed.c: hostile inputs through the public API.
 *
 * Every input here is generated (deterministically) by the test.  Each must come back quickly with
 * ATTNC_ERR_INPUT and a located diagnostic (or ATTNC_OK where the input is in fact valid), render to clean
 * text, and leak nothing (ASan's leak checker runs at exit).  CTest runs one case per process:
 * `test_malformed CASE` (the argument is a cmocka test filter); with no argument every case runs.
 */
#define _POSIX_C_SOURCE 200809L /* mkstemp */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attnc.h"

#define MIB ((size_t)1 << 20)
#define LIMIT ((size_t)64 << 20) /* ATTNC_MAX_SOURCE */

static attnc_ctx *ctx;

static int setup(void **state)
{
    (void)state;
    return attnc_ctx_new(&ctx) == ATTNC_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    attnc_ctx_free(ctx);
    return 0;
}

/* xorshift64*: the same bytes on every run. */
static uint64_t rng_state;
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static char *gen_bytes(size_t n, uint64_t seed)
{
    char *p = malloc(n + 1);
    assert_non_null(p);
    rng_state = seed;
    for (size_t i = 0; i < n; i++)
        p[i] = (char)(rng() >> 56);
    p[n] = 0;
    return p;
}

/* `head`, then `unit` n times, then `tail`, in malloc'd memory; *len is its length. */
static char *repeat(const char *head, const char *unit, size_t n, const char *tail, size_t *len)
{
    size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
    *len = hl + ul * n + tl;
    char *s = malloc(*len + 1);
    assert_non_null(s);
    memcpy(s, head, hl);
    for (size_t i = 0; i < n; i++)
        memcpy(s + hl + ul * i, unit, ul);
    memcpy(s + hl + ul * n, tail, tl + 1);
    return s;
}

/* The rendered diagnostics are clean text: no control bytes but newline and tab, no DEL, no C1 controls. */
static void assert_clean_text(const char *t)
{
    for (const unsigned char *p = (const unsigned char *)t; *p; p++) {
        if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] < 0xa0))
            fail_msg("control byte 0x%02x at offset %zu of the rendered diagnostics", *p, (size_t)(p - (const unsigned char *)t));
    }
}

/* Parse `len` bytes as a spec named `name`: ATTNC_ERR_INPUT, the first diagnostic an error located in
 * `name` at line:col (0 = any), with `msg` (NULL = any; a trailing '*' matches a prefix). */
static attnc_spec *expect_input_error(const char *name, const char *text, size_t len, uint32_t line, uint32_t col,
                                      const char *msg)
{
    attnc_spec *spec = NULL;
    attnc_status st = attnc_spec_from_string(ctx, name, text, len, &spec);
    assert_int_equal(st, ATTNC_ERR_INPUT);
    assert_non_null(spec);
    assert_true(attnc_spec_error_count(spec) >= 1);
    attnc_diagnostic d;
    assert_int_equal(attnc_spec_diag(spec, 0, &d), ATTNC_OK);
    assert_int_equal(d.severity, ATTNC_ERROR);
    assert_string_equal(d.file, name);
    assert_true(d.line >= 1 && d.col >= 1);
    if (line)
        assert_int_equal(d.line, line);
    if (col)
        assert_int_equal(d.col, col);
    if (msg) {
        size_t ml = strlen(msg);
        if (ml && msg[ml - 1] == '*')
            assert_memory_equal(d.message, msg, ml - 1);
        else
            assert_string_equal(d.message, msg);
    }
    assert_null(attnc_spec_ir(spec));
    assert_clean_text(attnc_spec_diag_text(spec));
    assert_clean_text(attnc_spec_diag_machine(spec));
    return spec;
}

static void check_error(const char *name, const char *text, size_t len, uint32_t line, uint32_t col, const char *msg)
{
    attnc_spec_free(expect_input_error(name, text, len, line, col, msg));
}

/* The 1-based column of `needle` in the one-line text t. */
static uint32_t col_of(const char *t, const char *needle)
{
    const char *p = strstr(t, needle);
    assert_non_null(p);
    return (uint32_t)(p - t) + 1;
}

/* The i-th diagnostic has this message. */
static void assert_diag(attnc_spec *spec, size_t i, const char *msg)
{
    attnc_diagnostic d;
    assert_int_equal(attnc_spec_diag(spec, i, &d), ATTNC_OK);
    assert_string_equal(d.message, msg);
}

static const char spec_head[] = "attention t {\n  dim K = 64, V = 64;\n  heads H = 4;\n"
                                "  input q: bf16[H, K];\n  input k: bf16[H, K];\n  input v: bf16[H, V];\n";
static const char spec_tail[] = "  linear { query = q; key = k; value = v; }\n}\n";

/* ---- the cases ------------------------------------------------------------------------------ */

static void empty(void **state)
{
    (void)state;
    check_error("empty.attn", "", 0, 1, 1, "unexpected end of file, expected 'attention'");
    /* a NULL text of length 0 is an empty input too */
    check_error("null.attn", NULL, 0, 1, 1, "unexpected end of file, expected 'attention'");
    /* and as IR */
    attnc_spec *spec = NULL;
    assert_int_equal(attnc_spec_from_ir(ctx, "empty.ir", "", 0, &spec), ATTNC_ERR_INPUT);
    assert_diag(spec, 0, "expected the header 'attnc-ir 1' at the end of the line");
    attnc_spec_free(spec);
}

static void blank(void **state)
{
    (void)state;
    check_error("blank.attn", "   \n\t\n", 6, 3, 1, "unexpected end of file, expected 'attention'");
    check_error("comment.attn", "// nothing but a comment\n/* and another */", 42, 2, 18,
                "unexpected end of file, expected 'attention'");
}

static void random_bytes(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 64; seed++) {
        char *p = gen_bytes(4096, seed);
        check_error("random.attn", p, 4096, 0, 0, NULL);
        /* the same bytes as IR text */
        attnc_spec *spec = NULL;
        assert_int_equal(attnc_spec_from_ir(ctx, "random.ir", p, 4096, &spec), ATTNC_ERR_INPUT);
        assert_true(attnc_spec_error_count(spec) >= 1);
        assert_clean_text(attnc_spec_diag_text(spec));
        attnc_spec_free(spec);
        free(p);
    }
    /* random bytes after a valid beginning reach the parser and sema's error paths */
    for (uint64_t seed = 100; seed < 132; seed++) {
        char *p = gen_bytes(512, seed);
        size_t hl = strlen(spec_head);
        char *t = malloc(hl + 512);
        memcpy(t, spec_head, hl);
        memcpy(t + hl, p, 512);
        check_error("random2.attn", t, hl + 512, 0, 0, NULL);
        free(t);
        free(p);
    }
}

static void garbage_1mb(void **state)
{
    (void)state;
    char *p = gen_bytes(MIB, 7);
    attnc_spec *spec = expect_input_error("garbage.attn", p, MIB, 0, 0, NULL);
    attnc_spec_free(spec);
    /* printable garbage: random words and punctuation */
    static const char *const words[] = {"attention", "{", "}", "linear", "softmax", "dim", "=", ";", "(", ")", "q",
                                        "1e9", "-", "*", "^", ",", "[", "]", "input", "let", "\n"};
    size_t n = 0;
    char *g = malloc(MIB + 16);
    rng_state = 11;
    while (n < MIB) {
        const char *w = words[rng() % (sizeof words / sizeof *words)];
        size_t wl = strlen(w);
        memcpy(g + n, w, wl);
        n += wl;
        g[n++] = ' ';
    }
    spec = expect_input_error("words.attn", g, n, 0, 0, NULL);
    attnc_spec_free(spec);
    free(g);
    free(p);
}

/* Every strict prefix of a real spec that is not itself valid is ATTNC_ERR_INPUT with a located error;
 * the same for the IR text of the spec. */
static void truncate_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *text = malloc(65536);
    size_t len = fread(text, 1, 65536, f);
    fclose(f);
    assert_true(len > 100 && len < 65536);
    text[len] = 0;
    const char *last_brace = strrchr(text, '}');
    assert_non_null(last_brace);
    size_t complete = (size_t)(last_brace - text) + 1; /* the shortest prefix that can be valid */
    size_t valid = 0;
    for (size_t n = 0; n < len; n++) {
        attnc_spec *spec = NULL;
        attnc_status st = attnc_spec_from_string(ctx, "prefix.attn", text, n, &spec);
        if (st == ATTNC_OK) {
            assert_true(n >= complete);
            valid++;
        } else {
            assert_int_equal(st, ATTNC_ERR_INPUT);
            attnc_diagnostic d;
            assert_int_equal(attnc_spec_diag(spec, 0, &d), ATTNC_OK);
            assert_int_equal(d.severity, ATTNC_ERROR);
            assert_string_equal(d.file, "prefix.attn");
            assert_true(d.line >= 1 && d.col >= 1);
        }
        attnc_spec_free(spec);
    }
    assert_int_equal(valid, len - complete);
    /* the IR text, truncated likewise: never a crash, an error is located; the full text is valid */
    attnc_spec *spec = NULL;
    assert_int_equal(attnc_spec_from_string(ctx, "full.attn", text, len, &spec), ATTNC_OK);
    char *ir = strdup(attnc_spec_ir(spec));
    attnc_spec_free(spec);
    size_t irlen = strlen(ir);
    for (size_t n = 0; n <= irlen; n++) {
        attnc_status st = attnc_spec_from_ir(ctx, "prefix.ir", ir, n, &spec);
        assert_true(st == ATTNC_OK || st == ATTNC_ERR_INPUT);
        if (st == ATTNC_ERR_INPUT) {
            attnc_diagnostic d;
            assert_int_equal(attnc_spec_diag(spec, 0, &d), ATTNC_OK);
            assert_string_equal(d.file, "prefix.ir");
            assert_true(d.line >= 1 && d.col >= 1);
        } else {
            assert_non_null(attnc_spec_ir(spec));
        }
        attnc_spec_free(spec);
    }
    free(ir);
    free(text);
}

static void truncated_every_offset(void **state)
{
    (void)state;
    truncate_file(ATTNC_SOURCE_DIR "/specs/gated_deltanet.attn");
    truncate_file(ATTNC_SOURCE_DIR "/specs/mlstm.attn");
    truncate_file(ATTNC_SOURCE_DIR "/tests/specs/based_hybrid.attn");
}

static void huge_numbers(void **state)
{
    (void)state;
    const char *t = "attention t { dim K = 1e999999; }";
    check_error("n.attn", t, strlen(t), 1, 23, "number '1e999999' is out of range");
    t = "attention t { dim K = 123456789012345678901234567890123456789012345678901234567890123456789; }";
    check_error("n.attn", t, strlen(t), 1, 23, "number '12345678901234567890...' is too long");
    t = "attention t { let x = 1e308 * 10; }";
    check_error("n.attn", t, strlen(t), 1, 23, "this constant expression is not a finite number");
    t = "attention t { let x = 2 ^ 2 ^ 2 ^ 2 ^ 2 ^ 2; }"; /* 2^65536 overflows: at the second '2' */
    check_error("n.attn", t, strlen(t), 1, 27, "this constant expression is not a finite number");
}

static void huge_dim(void **state)
{
    (void)state;
    const char *t = "attention t { dim K = 99999999999999999999999; }";
    check_error("d.attn", t, strlen(t), 1, col_of(t, "999"), "a dim must be between 1 and 65536, not 9.9999999999999992e+22");
    t = "attention t { heads H = 99999999999999999999999; }";
    check_error("d.attn", t, strlen(t), 1, col_of(t, "999"),
                "a head count must be between 1 and 4096, not 9.9999999999999992e+22");
    t = "attention t { dim K = 65536; heads H = 4; input q: bf16[H, K]; }";
    check_error("d.attn", t, strlen(t), 1, col_of(t, "K]"), "a channel extent must be between 1 and 65535, not 65536");
    t = "attention t { heads H = 4; input q: bf16[H, 99999999999999999999999]; }";
    check_error("d.attn", t, strlen(t), 1, col_of(t, "999"),
                "a channel extent must be between 1 and 65535, not 9.9999999999999992e+22");
    t = "attention t { dim K = 64; linear { query = q; key = q; value = q; } chunk 99999999999999999999999; }";
    check_error("d.attn", t, strlen(t), 0, 0, NULL);
}

static void deep_parens(void **state)
{
    (void)state;
    size_t len;
    char *t = repeat("attention t {\n  let x = ", "(", 100000, "1", &len);
    attnc_spec *spec = expect_input_error("p.attn", t, len, 2, 0, "the input is nested too deeply or is too large to parse");
    assert_int_equal(attnc_spec_error_count(spec), 1);
    attnc_spec_free(spec);
    free(t);
    /* balanced, just deep enough for the parser's stack: the parentheses add no depth of their own */
    char *open = repeat("attention t { let x = ", "(", 2000, "1", &len);
    t = repeat(open, ")", 2000, "; }", &len);
    check_error("p.attn", t, len, 1, 11, "the spec has neither a 'linear' nor a 'softmax' block");
    free(open);
    free(t);
}

static void deep_minus(void **state)
{
    (void)state;
    size_t len;
    char *t = repeat("attention t {\n  let x = ", "-", 100000, "1;\n}\n", &len);
    check_error("m.attn", t, len, 2, 0, "the input is nested too deeply or is too large to parse");
    free(t);
    t = repeat("attention t {\n  let x = ", "-", 1000, "1;\n}\n", &len);
    check_error("m.attn", t, len, 2, 0, "expression is nested too deeply (more than 200 levels)");
    free(t);
}

static void deep_blocks(void **state)
{
    (void)state;
    size_t len;
    char *open = repeat("attention t {\n", "linear {", 10000, "", &len);
    char *t = repeat(open, "}", 10000, "\n}\n", &len);
    check_error("b.attn", t, len, 2, 0, "the input is nested too deeply or is too large to parse");
    free(open);
    free(t);
    /* shallow nesting parses, and sema says what is wrong with it */
    t = repeat("attention t {\n", "linear {", 3, "} } }\n}\n", &len);
    check_error("b.attn", t, len, 2, 9, "a 'linear' block cannot be inside another block");
    free(t);
}

static void deep_calls(void **state)
{
    (void)state;
    size_t len;
    char *open = repeat("attention t {\n  let x = ", "exp(", 100000, "1", &len);
    char *t = repeat(open, ")", 100000, ";\n}\n", &len);
    check_error("c.attn", t, len, 2, 0, "the input is nested too deeply or is too large to parse");
    free(open);
    free(t);
    open = repeat("attention t {\n  let x = ", "exp(", 500, "1", &len);
    t = repeat(open, ")", 500, ";\n}\n", &len);
    check_error("c.attn", t, len, 2, 0, "expression is nested too deeply (more than 200 levels)");
    free(open);
    free(t);
}

/* A chain of lets (or dims) resolves recursively: its depth is bounded too. */
static void deep_let_chain(void **state)
{
    (void)state;
    enum { N = 100000 };
    size_t cap = strlen(spec_head) + (size_t)N * 40 + 200, n = 0;
    char *t = malloc(cap);
    n += (size_t)sprintf(t + n, "%s", spec_head);
    for (int i = 0; i < N; i++)
        n += (size_t)sprintf(t + n, "  let x%d = x%d * 1;\n", i, i + 1);
    n += (size_t)sprintf(t + n, "  let x%d = q;\n  linear { query = x0; key = k; value = v; }\n}\n", N);
    check_error("l.attn", t, n, 0, 0,
                "expression is nested too deeply, counting through the names it uses (more than 2000 levels)");
    n = (size_t)sprintf(t, "%s", spec_head);
    for (int i = 0; i < N; i++)
        n += (size_t)sprintf(t + n, "  dim D%d = D%d;\n", i, i + 1);
    n += (size_t)sprintf(t + n, "  dim D%d = 64;\n%s", N, spec_tail);
    check_error("l.attn", t, n, 0, 0,
                "expression is nested too deeply, counting through the names it uses (more than 2000 levels)");
    free(t);
}

static void invalid_utf8(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\xc0\xaf",         /* overlong '/' */
        "\xed\xa0\x80",     /* a UTF-16 surrogate */
        "\xf5\x80\x80\x80", /* beyond U+10FFFF */
        "\xe6\xb3",         /* truncated */
        "\x80\x80",         /* continuation bytes alone */
        "\xff\xfe",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char t[256];
        int n = snprintf(t, sizeof t, "attention t {\n  let x = 1 %s 2;\n}\n", bad[i]);
        check_error("u.attn", t, (size_t)n, 2, 13, "non-ASCII text is allowed only in comments");
        /* in a comment, any bytes are fine */
        n = snprintf(t, sizeof t, "// %s\n%s", bad[i], "attention t { dim K = 64; heads H = 4; input q: bf16[H, K];"
                                                        " linear { query = q; key = q; value = q; } }");
        attnc_spec *spec = NULL;
        assert_int_equal(attnc_spec_from_string(ctx, "u.attn", t, (size_t)n, &spec), ATTNC_OK);
        attnc_spec_free(spec);
    }
    /* columns after valid UTF-8 count characters */
    const char *t = "attention t { /* \xce\xbb\xce\xbb */ let \xce\xbb = 1; }";
    check_error("u.attn", t, strlen(t), 1, 28, "non-ASCII text is allowed only in comments");
}

static void nul_bytes(void **state)
{
    (void)state;
    const char t[] = "attention t {\0 dim K = 64;\n  let x = 1\0\0\0;\n}\n";
    attnc_spec *spec = expect_input_error("z.attn", t, sizeof t - 1, 1, 14, "control character 0x00 in the source");
    assert_int_equal(attnc_spec_error_count(spec), 2);
    assert_diag(spec, 1, "control character 0x00 in the source");
    attnc_diagnostic d;
    attnc_spec_diag(spec, 1, &d);
    assert_int_equal(d.line, 2);
    assert_int_equal(d.col, 12);
    /* the excerpt shows each NUL as '?' */
    assert_non_null(strstr(attnc_spec_diag_text(spec), "    1 | attention t {? dim K = 64;\n"));
    attnc_spec_free(spec);
    /* NUL bytes in comments are fine */
    char v[512];
    int n = snprintf(v, sizeof v, "%s  // a%cb\n  /* c%cd */\n%s", spec_head, 0, 0, spec_tail);
    assert_int_equal(attnc_spec_from_string(ctx, "z.attn", v, (size_t)n, &spec), ATTNC_OK);
    attnc_spec_free(spec);
}

/* A megabyte of NUL bytes: one diagnostic for the run, quickly (flex rescans at NUL bytes). */
static void nul_megabyte(void **state)
{
    (void)state;
    char *t = calloc(1, MIB);
    attnc_spec *spec = expect_input_error("zero.attn", t, MIB, 1, 1, "control character 0x00 in the source");
    assert_int_equal(attnc_spec_error_count(spec), 2);
    assert_diag(spec, 1, "unexpected end of file, expected 'attention'");
    attnc_spec_free(spec);
    /* and inside a comment */
    memcpy(t, "/*", 2);
    memcpy(t + MIB - 2, "*/", 2);
    spec = expect_input_error("zero.attn", t, MIB, 1, 0, "unexpected end of file, expected 'attention'");
    attnc_spec_free(spec);
    free(t);
}

static void too_large_string(void **state)
{
    (void)state;
    char *t = calloc(1, LIMIT + 1); /* never touched by the library: it refuses by the length */
    attnc_spec *spec = NULL;
    assert_int_equal(attnc_spec_from_string(ctx, "big.attn", t, LIMIT + 1, &spec), ATTNC_ERR_INPUT);
    assert_int_equal(attnc_spec_error_count(spec), 1);
    attnc_diagnostic d;
    assert_int_equal(attnc_spec_diag(spec, 0, &d), ATTNC_OK);
    assert_string_equal(d.message, "big.attn: the input is larger than the limit of 67108864 bytes");
    assert_string_equal(d.file, "");
    assert_int_equal(d.line, 0);
    assert_string_equal(attnc_spec_diag_text(spec),
                        "attnc: error: big.attn: the input is larger than the limit of 67108864 bytes\n");
    assert_string_equal(attnc_errmsg(ctx), "the input is too large");
    attnc_spec_free(spec);
    assert_int_equal(attnc_spec_from_ir(ctx, "big.ir", t, LIMIT + 1, &spec), ATTNC_ERR_INPUT);
    assert_int_equal(attnc_spec_error_count(spec), 1);
    attnc_spec_free(spec);
    free(t);
}

/* A file of 64 MiB + 1 byte (sparse, so the test writes almost nothing) is refused, as is a 1 GiB one. */
static void too_large_file(void **state)
{
    (void)state;
    static const size_t sizes[] = {((size_t)64 << 20) + 1, (size_t)1 << 30};
    for (size_t i = 0; i < 2; i++) {
        char path[] = "/tmp/attnc_big_XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t)sizes[i]), 0);
        close(fd);
        attnc_spec *spec = NULL;
        attnc_status st = attnc_spec_from_file(ctx, path, &spec);
        remove(path);
        assert_int_equal(st, ATTNC_ERR_INPUT);
        assert_int_equal(attnc_spec_error_count(spec), 1);
        char want[128];
        snprintf(want, sizeof want, "%s: the input is larger than the limit of 67108864 bytes", path);
        assert_diag(spec, 0, want);
        attnc_spec_free(spec);
    }
}

static void comment_10mb(void **state)
{
    (void)state;
    size_t len;
    size_t hl = strlen(spec_head);
    /* a valid spec with a 10 MB block comment and a 10 MB line comment */
    char *t = repeat(spec_head, "comment * / text ", 10 * MIB / 17, "", &len);
    char *u = malloc(len + 20 * MIB);
    size_t n = 0;
    memcpy(u, spec_head, hl);
    n = hl;
    memcpy(u + n, "/*", 2);
    n += 2;
    memcpy(u + n, t + hl, len - hl);
    n += len - hl;
    memcpy(u + n, "*/\n//", 5);
    n += 5;
    memset(u + n, 'x', 10 * MIB);
    n += 10 * MIB;
    memcpy(u + n, "\n", 1);
    n += 1;
    memcpy(u + n, spec_tail, strlen(spec_tail));
    n += strlen(spec_tail);
    attnc_spec *spec = NULL;
    assert_int_equal(attnc_spec_from_string(ctx, "c.attn", u, n, &spec), ATTNC_OK);
    assert_int_equal(attnc_spec_diag_count(spec), 0);
    attnc_spec_free(spec);
    /* unterminated: located at its start */
    spec = expect_input_error("c.attn", u, hl + 2 + (len - hl), 7, 1, "unterminated comment");
    attnc_spec_free(spec);
    free(u);
    free(t);
}

static void many_declarations(void **state)
{
    (void)state;
    enum { N = 20000 };
    char *t = malloc((size_t)N * 40 + 512);
    size_t n = (size_t)sprintf(t, "%s", spec_head);
    for (int i = 0; i < N; i++)
        n += (size_t)sprintf(t + n, "  input i%d: bf16[H];\n", i);
    n += (size_t)sprintf(t + n, "%s", spec_tail);
    attnc_spec *spec = NULL;
    assert_int_equal(attnc_spec_from_string(ctx, "many.attn", t, n, &spec), ATTNC_OK);
    assert_int_equal(attnc_spec_diag_count(spec), N); /* one warning each: never used */
    assert_int_equal(attnc_spec_error_count(spec), 0);
    attnc_spec_free(spec);
    free(t);
}

static void many_errors(void **state)
{
    (void)state;
    enum { N = 100000 };
    char *t = malloc((size_t)N * 48 + 512);
    size_t n = (size_t)sprintf(t, "attention t {\n  dim alpha_beta_gamma_delta_epsilon = 1;\n");
    for (int i = 0; i < N; i++)
        n += (size_t)sprintf(t + n, "  let l%d = alpha_beta_gamma_delta_epsilom;\n", i);
    n += (size_t)sprintf(t + n, "}\n");
    attnc_spec *spec = expect_input_error("e.attn", t, n, 3, 12, "use of undeclared name 'alpha_beta_gamma_delta_epsilom'");
    assert_int_equal(attnc_spec_error_count(spec), N + 1);
    assert_int_equal(attnc_spec_diag_count(spec), 100); /* 50 errors with their notes */
    const char *text = attnc_spec_diag_text(spec);
    char want[128];
    snprintf(want, sizeof want, "attnc: note: %d more errors not shown (the limit is 50)\n", N + 1 - 50);
    assert_string_equal(text + strlen(text) - strlen(want), want);
    attnc_spec_free(spec);
    free(t);
}

/* A megabyte on one line, with errors at its end: located, and the excerpt is a window of the line. */
static void long_line(void **state)
{
    (void)state;
    size_t len;
    char *t = repeat("attention t { ", "dim a = 1; ", MIB / 11, "dim b = ; }", &len);
    attnc_spec *spec = expect_input_error("long.attn", t, len, 1, (uint32_t)len - 2, "unexpected ';'");
    const char *text = attnc_spec_diag_text(spec);
    const char *nl = strchr(text, '\n');
    const char *excerpt = nl + 1;
    assert_memory_equal(excerpt, "    1 | ... ", 12);
    assert_true(strlen(text) < 700);
    attnc_spec_free(spec);
    free(t);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(empty),
        cmocka_unit_test(blank),
        cmocka_unit_test(random_bytes),
        cmocka_unit_test(garbage_1mb),
        cmocka_unit_test(truncated_every_offset),
        cmocka_unit_test(huge_numbers),
        cmocka_unit_test(huge_dim),
        cmocka_unit_test(deep_parens),
        cmocka_unit_test(deep_minus),
        cmocka_unit_test(deep_blocks),
        cmocka_unit_test(deep_calls),
        cmocka_unit_test(deep_let_chain),
        cmocka_unit_test(invalid_utf8),
        cmocka_unit_test(nul_bytes),
        cmocka_unit_test(nul_megabyte),
        cmocka_unit_test(too_large_string),
        cmocka_unit_test(too_large_file),
        cmocka_unit_test(comment_10mb),
        cmocka_unit_test(many_declarations),
        cmocka_unit_test(many_errors),
        cmocka_unit_test(long_line),
    };
    if (argc > 1) {
        /* one case by its exact name: a name that matches nothing must fail, not pass vacuously */
        size_t i = 0, n = sizeof tests / sizeof *tests;
        while (i < n && strcmp(tests[i].name, argv[1]) != 0)
            i++;
        if (i == n) {
            fprintf(stderr, "test_malformed: no case named '%s'\n", argv[1]);
            return 1;
        }
        cmocka_set_test_filter(argv[1]);
    }
    return cmocka_run_group_tests(tests, setup, teardown);
}
