/* tests/unit/test_diag.c: the file table, line:column with UTF-8 and tabs, text and machine rendering
 * (caret, notes, windows on long lines, unprintable bytes) and the error cap (ir/diag.c). */
#include "test_util.h"

typedef struct fixture {
    attnc_arena *arena;
    attnc_diags d;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->arena = attnc_arena_new();
    attnc_diags_init(&f->d, f->arena);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    attnc_arena_free(f->arena);
    free(f);
    return 0;
}

static attnc_span at(uint32_t file, uint32_t start, uint32_t end)
{
    return (attnc_span){file, start, end};
}

static void files_and_line_table(void **state)
{
    fixture *f = *state;
    assert_int_equal(f->d.nfiles, 1); /* file 0 is "no location" */
    assert_null(attnc_diags_file(&f->d, 0));
    uint32_t a = attnc_diags_add_file(&f->d, "a.attn", "x\ny\n\nz", 6);
    uint32_t b = attnc_diags_add_file(&f->d, "b.attn", "a\0b", 3);
    assert_int_equal(a, 1);
    assert_int_equal(b, 2);
    const attnc_source *s = attnc_diags_file(&f->d, a);
    assert_string_equal(s->name, "a.attn");
    assert_int_equal(s->len, 6);
    assert_int_equal(s->nlines, 4);
    assert_int_equal(s->lines[0], 0);
    assert_int_equal(s->lines[1], 2);
    assert_int_equal(s->lines[2], 4);
    assert_int_equal(s->lines[3], 5);
    const attnc_source *t = attnc_diags_file(&f->d, b);
    assert_int_equal(t->len, 3);
    assert_memory_equal(t->text, "a\0b", 4); /* NUL inside kept, and a NUL after */
    assert_null(attnc_diags_file(&f->d, 3));
    /* a source over the limit is refused */
    assert_int_equal(attnc_diags_add_file(&f->d, "big", "", ATTNC_MAX_SOURCE + 1), 0);
}

static void line_col_counts_characters(void **state)
{
    fixture *f = *state;
    /* line 2: tab, 'é' (2 bytes), 'λ' (2 bytes), '注' (3 bytes), an invalid byte 0xff, 'x' */
    const char text[] = "ab\n\t\xc3\xa9\xce\xbb\xe6\xb3\xa8\xffx\nlast";
    uint32_t file = attnc_diags_add_file(&f->d, "u.attn", text, sizeof text - 1);
    const attnc_source *s = attnc_diags_file(&f->d, file);
    struct { uint32_t off, line, col; } cases[] = {
        {0, 1, 1},  {1, 1, 2},  {2, 1, 3},   /* the newline itself is the last column of line 1 */
        {3, 2, 1},  {4, 2, 2},               /* after the tab: a tab is one column */
        {6, 2, 3},  {8, 2, 4},  {11, 2, 5},  /* é, λ and 注 each count once */
        {12, 2, 6}, {13, 2, 7},              /* the invalid byte counts once */
        {14, 3, 1}, {18, 3, 5},              /* end of file: one past the last character */
        {1000, 3, 5},                        /* offsets past the end are clamped */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint32_t line, col;
        attnc_line_col(s, cases[i].off, &line, &col);
        assert_int_equal(line, cases[i].line);
        assert_int_equal(col, cases[i].col);
    }
    /* a truncated UTF-8 sequence at the end of the text counts byte by byte */
    uint32_t g = attnc_diags_add_file(&f->d, "v.attn", "a\xe6\xb3", 3);
    uint32_t line, col;
    attnc_line_col(attnc_diags_file(&f->d, g), 3, &line, &col);
    assert_int_equal(line, 1);
    assert_int_equal(col, 4);
}

static void render_error_with_note(void **state)
{
    fixture *f = *state;
    const char *text = "attention t {\n  dim K = 64;\n  dim K = 32;\n}\n";
    uint32_t file = attnc_diags_add_file(&f->d, "dup.attn", text, strlen(text));
    attnc_error(&f->d, at(file, 34, 35), "redefinition of '%s'", "K");
    attnc_note(&f->d, at(file, 20, 21), "previous definition is here");
    attnc_warning(&f->d, at(file, 30, 41), "a warning over %d characters", 11);
    assert_int_equal(f->d.errors, 1);
    assert_int_equal(f->d.warnings, 1);
    assert_int_equal(f->d.n, 3);
    assert_string_equal(attnc_diags_render(&f->d, f->arena),
                        "dup.attn:3:7: error: redefinition of 'K'\n"
                        "    3 |   dim K = 32;\n"
                        "      |       ^\n"
                        "dup.attn:2:7: note: previous definition is here\n"
                        "    2 |   dim K = 64;\n"
                        "      |       ^\n"
                        "dup.attn:3:3: warning: a warning over 11 characters\n"
                        "    3 |   dim K = 32;\n"
                        "      |   ^~~~~~~~~~~\n");
    assert_string_equal(attnc_diags_render_machine(&f->d, f->arena),
                        "error|dup.attn|3|7|redefinition of 'K'\n"
                        "note|dup.attn|2|7|previous definition is here\n"
                        "warning|dup.attn|3|3|a warning over 11 characters\n");
}

static void render_special_spans(void **state)
{
    fixture *f = *state;
    /* line 1 ends in CRLF; line 2 starts with tabs; line 3 has no newline at the end */
    const char *text = "key = k\r\n\t\tgate\t= g;\nend";
    uint32_t file = attnc_diags_add_file(&f->d, "s.attn", text, strlen(text));
    attnc_error(&f->d, at(file, 7, 7), "empty span at the end of a line");
    attnc_error(&f->d, at(file, 11, 15), "after tabs");
    attnc_error(&f->d, at(file, 4, 13), "a span over two lines");
    attnc_error(&f->d, at(file, 24, 24), "end of file");
    attnc_error(&f->d, at(0, 0, 0), "no location");
    assert_string_equal(attnc_diags_render(&f->d, f->arena),
                        "s.attn:1:8: error: empty span at the end of a line\n"
                        "    1 | key = k\n"
                        "      |        ^\n"
                        "s.attn:2:3: error: after tabs\n"
                        "    2 | \t\tgate\t= g;\n"
                        "      | \t\t^~~~\n"
                        "s.attn:1:5: error: a span over two lines\n"
                        "    1 | key = k\n"
                        "      |     ^~~\n"
                        "s.attn:3:4: error: end of file\n"
                        "    3 | end\n"
                        "      |    ^\n"
                        "attnc: error: no location\n");
    assert_string_equal(attnc_diags_render_machine(&f->d, f->arena),
                        "error|s.attn|1|8|empty span at the end of a line\n"
                        "error|s.attn|2|3|after tabs\n"
                        "error|s.attn|1|5|a span over two lines\n"
                        "error|s.attn|3|4|end of file\n"
                        "error||0|0|no location\n");
}

static void render_unprintable_bytes(void **state)
{
    fixture *f = *state;
    /* control bytes, DEL, invalid UTF-8, a C1 control (U+0085 as UTF-8) and ESC all show as '?',
     * valid UTF-8 as it is; each shown character gets one mark */
    const char text[] = "a\x01\x7f\xff\xc2\x85\x1b[31m\xce\xbb z";
    uint32_t file = attnc_diags_add_file(&f->d, "b.attn", text, sizeof text - 1);
    attnc_error(&f->d, at(file, 1, 8), "bad bytes");
    attnc_error(&f->d, at(file, 14, 15), "after lambda");
    assert_string_equal(attnc_diags_render(&f->d, f->arena),
                        "b.attn:1:2: error: bad bytes\n"
                        "    1 | a?????[31m\xce\xbb z\n"
                        "      |  ^~~~~~\n"
                        "b.attn:1:13: error: after lambda\n"
                        "    1 | a?????[31m\xce\xbb z\n"
                        "      |             ^\n");
}

/* A long line shows 200 characters and " ..."; a span far into it gets a window that starts with "... ". */
static void render_long_lines(void **state)
{
    fixture *f = *state;
    char line[501];
    for (int i = 0; i < 500; i++)
        line[i] = (char)('a' + i % 26);
    line[500] = 0;
    uint32_t file = attnc_diags_add_file(&f->d, "l.attn", line, 500);
    attnc_error(&f->d, at(file, 2, 3), "near the start");
    attnc_error(&f->d, at(file, 400, 403), "far in");
    char *out = attnc_diags_render(&f->d, f->arena);
    /* first: the line's first 200 characters, then " ..." */
    char expect1[512];
    snprintf(expect1, sizeof expect1, "l.attn:1:3: error: near the start\n    1 | %.200s ...\n      |   ^\n", line);
    assert_memory_equal(out, expect1, strlen(expect1));
    /* second: a window putting the span 160 characters in */
    const char *second = out + strlen(expect1);
    char expect2[600];
    snprintf(expect2, sizeof expect2, "l.attn:1:401: error: far in\n    1 | ... %.200s ...\n      |     %*s^~~\n",
             line + 240, 160, "");
    assert_string_equal(second, expect2);
}

static void messages_are_capped_at_511_bytes(void **state)
{
    fixture *f = *state;
    char big[2000];
    memset(big, 'm', sizeof big - 1);
    big[sizeof big - 1] = 0;
    attnc_error(&f->d, at(0, 0, 0), "%s", big);
    assert_int_equal(strlen(f->d.list[0].message), 511);
}

static void error_cap(void **state)
{
    fixture *f = *state;
    uint32_t file = attnc_diags_add_file(&f->d, "c.attn", "x\n", 2);
    for (int i = 0; i < ATTNC_MAX_ERRORS + 10; i++) {
        attnc_error(&f->d, at(file, 0, 1), "error %d", i);
        attnc_note(&f->d, at(file, 0, 1), "note %d", i);
        attnc_warning(&f->d, at(file, 0, 1), "warning %d", i);
    }
    assert_int_equal(f->d.errors, ATTNC_MAX_ERRORS + 10); /* counted ... */
    assert_true(f->d.truncated);
    assert_int_equal(f->d.warnings, ATTNC_MAX_ERRORS + 10); /* warnings are never dropped */
    uint32_t kept_errors = 0, kept_notes = 0, kept_warnings = 0;
    for (uint32_t i = 0; i < f->d.n; i++) {
        kept_errors += f->d.list[i].severity == ATTNC_SEV_ERROR;
        kept_notes += f->d.list[i].severity == ATTNC_SEV_NOTE;
        kept_warnings += f->d.list[i].severity == ATTNC_SEV_WARNING;
    }
    assert_int_equal(kept_errors, ATTNC_MAX_ERRORS); /* ... but only the first 50 are kept, */
    assert_int_equal(kept_notes, ATTNC_MAX_ERRORS);  /* with their notes only */
    assert_int_equal(kept_warnings, ATTNC_MAX_ERRORS + 10);
    assert_string_equal(f->d.list[3 * ATTNC_MAX_ERRORS - 3].message, "error 49");
    assert_string_equal(f->d.list[3 * ATTNC_MAX_ERRORS].message, "warning 50");
    char *out = attnc_diags_render(&f->d, f->arena);
    const char *tail = "attnc: note: 10 more errors not shown (the limit is 50)\n";
    assert_true(strlen(out) > strlen(tail));
    assert_string_equal(out + strlen(out) - strlen(tail), tail);
    assert_null(strstr(out, "error 50"));
    assert_non_null(strstr(out, "warning 59"));
    char *machine = attnc_diags_render_machine(&f->d, f->arena);
    const char *mtail = "note||0|0|10 more errors not shown (the limit is 50)\n";
    assert_string_equal(machine + strlen(machine) - strlen(mtail), mtail);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(files_and_line_table, setup, teardown),
        cmocka_unit_test_setup_teardown(line_col_counts_characters, setup, teardown),
        cmocka_unit_test_setup_teardown(render_error_with_note, setup, teardown),
        cmocka_unit_test_setup_teardown(render_special_spans, setup, teardown),
        cmocka_unit_test_setup_teardown(render_unprintable_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(render_long_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(messages_are_capped_at_511_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(error_cap, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
