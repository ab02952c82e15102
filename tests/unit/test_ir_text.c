/* tests/unit/test_ir_text.c: the IR text form (ir/ir_print.c, ir/ir_parse.c).
 *
 *   - every spec in specs/ and tests/specs/: print -> parse -> verify -> print gives the same text;
 *   - numbers survive the trip exactly (17 significant digits);
 *   - a bad line gets one located diagnostic, and the reader goes on with the next line.
 */
#define _POSIX_C_SOURCE 200809L /* opendir */
#include "test_util.h"

#include <dirent.h>
#include <math.h>

/* Spec text -> IR text, through the internal interfaces; NULL (and a failed test) if it does not check. */
static char *spec_to_ir(unit_src *u, const char *path, const char *text)
{
    unit_spec(u, text);
    if (!u->m) {
        print_message("%s", attnc_diags_render(&u->diags, u->arena));
        fail_msg("%s does not check", path);
    }
    return ir_print(u->m, u->arena);
}

static int round_trip_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("cannot open %s", dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".attn") != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *text = unit_read_file(path, NULL);
        unit_src a, b;
        char *first = spec_to_ir(&a, path, text);
        unit_ir(&b, first);
        if (!b.m || !ir_verify(b.m, &b.diags))
            fail_msg("%s: the printed IR does not read back:\n%s\n%s", path, attnc_diags_render(&b.diags, b.arena),
                     first);
        char *second = ir_print(b.m, b.arena);
        if (strcmp(first, second) != 0)
            fail_msg("%s: the IR changes in the round trip:\n%s\n---\n%s", path, first, second);
        /* the shape a module implies survives too */
        ir_shape sa = ir_module_shape(a.m), sb = ir_module_shape(b.m);
        assert_memory_equal(&sa, &sb, sizeof sa);
        unit_close(&a);
        unit_close(&b);
        free(text);
        n++;
    }
    closedir(d);
    return n;
}

static void round_trip_every_spec(void **state)
{
    (void)state;
    assert_true(round_trip_dir(ATTNC_SOURCE_DIR "/specs") >= 15);
    assert_true(round_trip_dir(ATTNC_SOURCE_DIR "/tests/specs") >= 5);
}

/* Constants print with 17 significant digits and read back to the same double. */
static void numbers_survive_exactly(void **state)
{
    (void)state;
    unit_src a, b;
    char *ir = spec_to_ir(&a, "numbers", "attention n { dim K = 64; heads H = 4;\n"
                                         "  input q: bf16[H, K] in [-0.1, 3.0000000000000004];\n"
                                         "  linear { query = q * 0.1; key = q * 1e-300; value = q * (1/3); } }");
    assert_non_null(strstr(ir, "%2 = const 0.10000000000000001 : const - 1\n"));
    assert_non_null(strstr(ir, "input q : bf16 [H, 64] in [-0.10000000000000001, 3.0000000000000004]\n"));
    unit_ir(&b, ir);
    assert_non_null(b.m);
    for (uint32_t i = 1; i < a.m->nvalues; i++)
        assert_memory_equal(&a.m->values[i].num, &b.m->values[i].num, sizeof(double));
    assert_true(b.m->tensors[0].lo == -0.1);
    assert_true(b.m->tensors[0].hi == 3.0000000000000004);
    unit_close(&a);
    unit_close(&b);
}

static const char *const base_lines[] = {
    "attnc-ir 1",                          /* 1 */
    "variant v",                           /* 2 */
    "dim K = 64",                          /* 3 */
    "heads H = 4",                         /* 4 */
    "dim V = 32",                          /* 5: used by nothing, the slot for declaration cases */
    "input q : bf16 [H, 64]",              /* 6 */
    "input k : bf16 [H, 64]",              /* 7 */
    "input v : bf16 [H, 32]",              /* 8 */
    "input a : bf16 [H] in [-4, 4]",       /* 9 */
    "input b : bf16 [H]",                  /* 10 */
    "%1 = input q : token H 64",           /* 11 */
    "%2 = input k : token H 64",           /* 12 */
    "%3 = input v : token H 32",           /* 13 */
    "%4 = input a : token H 1",            /* 14 */
    "%5 = input b : token H 1",            /* 15 */
    "%6 = l2norm %2 : token H 64",         /* 16 */
    "%7 = logsigmoid %4 : token H 1",      /* 17 */
    "%8 = sigmoid %5 : token H 1",         /* 18 */
    "%9 = exp %4 : token H 1",             /* 19: used by no role */
    "linear {",                            /* 20 */
    "  query %1",                          /* 21 */
    "  key %6",                            /* 22 */
    "  value %3",                          /* 23 */
    "  decay scalar %7",                   /* 24 */
    "  update delta %8",                   /* 25 */
    "  normalize rmsnorm 1e-06",           /* 26 */
    "}",                                   /* 27 */
    "mask causal",                         /* 28 */
    "state initial final",                 /* 29 */
    "chunk 64",                            /* 30 */
    "output bf16",                         /* 31 */
};
enum { NLINES = sizeof base_lines / sizeof *base_lines };

/* The base IR with line `line` (1-based) replaced by `repl` (or left as it is for line 0). */
static char *ir_with(uint32_t line, const char *repl)
{
    size_t cap = 4096;
    char *s = malloc(cap), *p = s;
    for (uint32_t i = 0; i < NLINES; i++)
        p += sprintf(p, "%s\n", i + 1 == line ? repl : base_lines[i]);
    return s;
}

static void base_ir_is_valid(void **state)
{
    (void)state;
    char *text = ir_with(0, NULL);
    unit_src u;
    unit_ir(&u, text);
    assert_non_null(u.m);
    assert_true(ir_verify(u.m, &u.diags));
    assert_int_equal(u.diags.n, 0);
    assert_int_equal(u.m->nvalues, 10);
    assert_true(u.m->state_in && u.m->state_out);
    assert_int_equal(u.m->chunk, 64);
    unit_close(&u);
    free(text);
}

static void bad_lines_get_located_errors(void **state)
{
    (void)state;
    static const struct {
        uint32_t line;
        const char *text;
        uint32_t col;
        const char *msg;
    } cases[] = {
        {1, "attnc-ir 2", 10, "expected an integer from 1 to 1"},
        {1, "attnc-ir", 9, "expected a number at the end of the line"},
        {2, "variant", 8, "expected a name at the end of the line"},
        {5, "dim W = 0", 9, "expected an integer from 1 to 65536"},
        {5, "dim W 64", 7, "expected '=', found '64'"},
        {5, "dim K = 32", 5, "'K' is declared twice"},
        {5, "heads G = 4.5", 11, "expected an integer from 1 to 4096"},
        {19, "%9 = exp %4 : token H", 22, "expected a number at the end of the line"},
        {19, "%9 = exp %4 : token H 1 extra", 25, "expected the end of the line, found 'extra'"},
        {19, "%9 = frob %4 : token H 1", 6, "unknown operation 'frob'"},
        {19, "%9 = exp %10 : token H 1", 10, "%10 is not a value defined above"},
        {19, "%9 = exp %9 : token H 1", 10, "%9 is not a value defined above"},
        {19, "%9 = exp % : token H 1", 10, "expected a value reference '%N', found '%'"},
        {19, "%9 = exp 4 : token H 1", 10, "expected a value reference '%N', found '4'"},
        {19, "%9 = exp \x13 : token H 1", 10, "expected a value reference '%N', found the byte 0x13"},
        {19, "%9 = exp \xce\xbb : token H 1", 10, "expected a value reference '%N', found the byte 0xce"},
        {19, "%10 = exp %4 : token H 1", 1, "expected %9 (values are numbered in order), found %10"},
        {19, "%9 = add %4 %5 : token H 1", 13, "expected ',', found '%5'"},
        {19, "%9 = exp %4 : flat H 1", 15, "expected 'const', 'head' or 'token', found 'flat'"},
        {19, "%9 = exp %4 : token X 1", 21, "'X' is not a head axis declared above"},
        {19, "%9 = input nope : token H 1", 12, "'nope' is not a tensor declared above"},
        {19, "%9 = const 1e999 : const - 1", 12, "expected a number, found '1e999'"},
        {19, "%9 = const nan : const - 1", 12, "expected a number, found 'nan'"},
        {5, "input u : bf17 [H]", 11, "expected a dtype (bf16, fp16 or fp32), found 'bf17'"},
        {5, "input u : bf16 [G]", 17, "'G' is not a head axis declared above"},
        {5, "input u : bf16 [H] in [-4 4]", 27, "expected ',', found '4'"},
        {24, "  decay sideways %7", 9, "expected 'none', 'const', 'scalar' or 'vector', found 'sideways'"},
        {25, "  update sideways %8", 10, "expected 'additive' or 'delta', found 'sideways'"},
        {26, "  normalize l1 0", 13,
         "expected a normalisation (none, denominator, max_floor, rmsnorm, layernorm), found 'l1'"},
        {26, "  bogus", 3, "expected a linear entry (query, key, value, decay, update, igate, normalize) or '}', found 'bogus'"},
        {28, "mask sideways", 6, "expected 'causal' or 'none', found 'sideways'"},
        {29, "state initial final extra", 21, "expected the end of the line, found 'extra'"},
        {30, "chunk 12.5", 7, "expected an integer from 1 to 1048576"},
        {31, "output fp64", 8, "expected a dtype (bf16, fp16 or fp32), found 'fp64'"},
        {31, "@ output", 1, "expected a declaration, a value or a block, found '@'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *text = ir_with(cases[i].line, cases[i].text);
        unit_src u;
        unit_ir(&u, text);
        if (u.diags.errors != 1 || strcmp(u.diags.list[0].message, cases[i].msg) != 0) {
            print_message("case %zu: %s", i, attnc_diags_render(&u.diags, u.arena));
            fail_msg("case %zu ('%s'): expected exactly: %s", i, cases[i].text, cases[i].msg);
        }
        assert_null(u.m);
        uint32_t line, col;
        unit_diag_at(&u, 0, &line, &col);
        if (line != cases[i].line || col != cases[i].col)
            fail_msg("case %zu ('%s'): at %u:%u, expected %u:%u", i, cases[i].text, line, col, cases[i].line,
                     cases[i].col);
        unit_close(&u);
        free(text);
    }
}

/* The reader reports every bad line of a file, not only the first. */
static void every_bad_line_is_reported(void **state)
{
    (void)state;
    char *text = ir_with(3, "dim K = 0");
    char *p = strstr(text, "mask causal");
    memcpy(p, "mask causa!", 11);
    p = strstr(text, "output bf16");
    memcpy(p, "output bf99", 11);
    unit_src u;
    unit_ir(&u, text);
    assert_int_equal(u.diags.errors, 3);
    unit_expect_diag(&u, 0, ATTNC_SEV_ERROR, 3, 9, "expected an integer from 1 to 65536");
    unit_expect_diag(&u, 1, ATTNC_SEV_ERROR, 28, 6, "expected 'causal' or 'none', found 'causa'");
    unit_expect_diag(&u, 2, ATTNC_SEV_ERROR, 31, 8, "expected a dtype (bf16, fp16 or fp32), found 'bf99'");
    unit_close(&u);
    free(text);
    /* a bad value line keeps its number: the value lines after it are not misnumbered, and the roles
     * that use it are not reported again */
    text = ir_with(16, "%6 = l2nrm %2 : token H 64");
    p = strstr(text, "%8 = sigmoid %5 : token H 1");
    memcpy(p, "%8 = sigmoid %5 : token H !", 27);
    unit_ir(&u, text);
    assert_int_equal(u.diags.errors, 2);
    unit_expect_diag(&u, 0, ATTNC_SEV_ERROR, 16, 6, "unknown operation 'l2nrm'");
    unit_expect_diag(&u, 1, ATTNC_SEV_ERROR, 18, 27, "expected a number, found '!'");
    assert_null(u.m);
    unit_close(&u);
    free(text);
}

static void header_and_variant_are_required(void **state)
{
    (void)state;
    unit_src u;
    unit_ir(&u, "variant v\n");
    assert_null(u.m);
    unit_expect_diag(&u, 0, ATTNC_SEV_ERROR, 1, 1, "expected the header 'attnc-ir 1', found 'variant'");
    unit_close(&u);
    unit_ir(&u, "");
    assert_null(u.m);
    assert_int_equal(u.diags.errors, 1);
    assert_string_equal(u.diags.list[0].message, "expected the header 'attnc-ir 1' at the end of the line");
    unit_close(&u);
    unit_ir(&u, "\n\n# a comment\nattnc-ir 1\n# no variant\nheads H = 4\n");
    assert_null(u.m);
    assert_int_equal(u.diags.errors, 1);
    assert_string_equal(u.diags.list[0].message, "the IR has no 'variant NAME' line");
    unit_close(&u);
}

/* The module's own diagnostics point at its 'variant' line. */
static void module_diagnostics_are_located(void **state)
{
    (void)state;
    unit_src u;
    unit_ir(&u, "attnc-ir 1\nvariant empty\nheads H = 4\nstate final\n");
    assert_non_null(u.m);
    assert_false(ir_verify(u.m, &u.diags));
    assert_int_equal(u.diags.errors, 2);
    unit_expect_diag(&u, 0, ATTNC_SEV_ERROR, 2, 9, "the module has neither a linear nor a softmax part");
    unit_expect_diag(&u, 1, ATTNC_SEV_ERROR, 2, 9, "state input or output needs a linear part");
    unit_close(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_every_spec),
        cmocka_unit_test(numbers_survive_exactly),
        cmocka_unit_test(base_ir_is_valid),
        cmocka_unit_test(bad_lines_get_located_errors),
        cmocka_unit_test(every_bad_line_is_reported),
        cmocka_unit_test(header_and_variant_are_required),
        cmocka_unit_test(module_diagnostics_are_located),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
