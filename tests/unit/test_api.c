/* tests/unit/test_api.c: the public interface (include/attnc.h, api/attnc.c) as a user sees it: version
 * checks, statuses and messages for bad arguments, the diagnostic accessors, files and IR text, shapes. */
#define _POSIX_C_SOURCE 200809L /* mkstemp, fdopen, strdup */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"

static const char valid_spec[] = "attention ok {\n"
                                 "  dim K = 64, V = 32;\n"
                                 "  heads H = 4;\n"
                                 "  input q: bf16[H, K];\n"
                                 "  input v: fp16[H, V];\n"
                                 "  linear { query = q; key = q; value = v; }\n"
                                 "}\n";

static attnc_ctx *new_ctx(void)
{
    attnc_ctx *ctx = NULL;
    assert_int_equal(attnc_ctx_new(&ctx), ATTNC_OK);
    assert_non_null(ctx);
    assert_string_equal(attnc_errmsg(ctx), "");
    return ctx;
}

static void versions(void **state)
{
    (void)state;
    assert_int_equal(attnc_version(), ATTNC_VERSION_NUMBER);
    assert_string_equal(attnc_version_string(), ATTNC_VERSION_STRING);
    assert_int_equal(ATTNC_VERSION_NUMBER, ATTNC_VERSION_MAJOR * 10000 + ATTNC_VERSION_MINOR * 100 + ATTNC_VERSION_PATCH);
    attnc_ctx *ctx = (attnc_ctx *)&ctx; /* must be overwritten with NULL on refusal */
    /* another minor or major version is refused */
    assert_int_equal(attnc_ctx_new_v(ATTNC_VERSION_NUMBER + 100, &ctx), ATTNC_ERR_VERSION);
    assert_null(ctx);
    ctx = (attnc_ctx *)&ctx;
    assert_int_equal(attnc_ctx_new_v(ATTNC_VERSION_NUMBER - 100 + 10000, &ctx), ATTNC_ERR_VERSION);
    assert_null(ctx);
    assert_int_equal(attnc_ctx_new_v(0, &ctx), ATTNC_VERSION_NUMBER / 100 == 0 ? ATTNC_OK : ATTNC_ERR_VERSION);
    attnc_ctx_free(ctx);
    /* another patch level is accepted */
    ctx = NULL;
    assert_int_equal(attnc_ctx_new_v(ATTNC_VERSION_NUMBER + 1, &ctx), ATTNC_OK);
    assert_non_null(ctx);
    attnc_ctx_free(ctx);
    /* no place for the context */
    assert_int_equal(attnc_ctx_new_v(ATTNC_VERSION_NUMBER, NULL), ATTNC_ERR_USAGE);
}

static void status_names(void **state)
{
    (void)state;
    assert_string_equal(attnc_status_str(ATTNC_OK), "ATTNC_OK");
    assert_string_equal(attnc_status_str(ATTNC_ERR_INPUT), "ATTNC_ERR_INPUT");
    assert_string_equal(attnc_status_str(ATTNC_ERR_USAGE), "ATTNC_ERR_USAGE");
    assert_string_equal(attnc_status_str(ATTNC_ERR_IO), "ATTNC_ERR_IO");
    assert_string_equal(attnc_status_str(ATTNC_ERR_NOMEM), "ATTNC_ERR_NOMEM");
    assert_string_equal(attnc_status_str(ATTNC_ERR_NUMERIC), "ATTNC_ERR_NUMERIC");
    assert_string_equal(attnc_status_str(ATTNC_ERR_VERSION), "ATTNC_ERR_VERSION");
    assert_string_equal(attnc_status_str((attnc_status)99), "ATTNC_ERR_UNKNOWN");
}

static void null_arguments(void **state)
{
    (void)state;
    attnc_ctx *ctx = new_ctx();
    attnc_spec *spec = (attnc_spec *)&spec;
    assert_int_equal(attnc_spec_from_string(ctx, "x", valid_spec, sizeof valid_spec - 1, NULL), ATTNC_ERR_USAGE);
    assert_string_equal(attnc_errmsg(ctx), "no place for the result (spec is NULL)");
    assert_int_equal(attnc_spec_from_string(ctx, "x", NULL, 10, &spec), ATTNC_ERR_USAGE);
    assert_null(spec);
    assert_string_equal(attnc_errmsg(ctx), "text is NULL");
    assert_int_equal(attnc_spec_from_ir(ctx, "x", NULL, 10, &spec), ATTNC_ERR_USAGE);
    assert_null(spec);
    assert_int_equal(attnc_spec_from_file(ctx, NULL, &spec), ATTNC_ERR_USAGE);
    assert_string_equal(attnc_errmsg(ctx), "path or spec is NULL");
    assert_int_equal(attnc_spec_from_file(ctx, "specs/gla.attn", NULL), ATTNC_ERR_USAGE);
    /* a NULL context is allowed: only the message is lost */
    assert_int_equal(attnc_spec_from_string(NULL, "x", NULL, 10, &spec), ATTNC_ERR_USAGE);
    assert_string_equal(attnc_errmsg(NULL), "no context");
    /* accessors on NULL */
    attnc_diagnostic d;
    attnc_shape sh;
    assert_int_equal(attnc_spec_diag(NULL, 0, &d), ATTNC_ERR_USAGE);
    assert_int_equal(attnc_spec_shape(NULL, &sh), ATTNC_ERR_USAGE);
    assert_int_equal(attnc_spec_diag_count(NULL), 0);
    assert_int_equal(attnc_spec_error_count(NULL), 0);
    assert_string_equal(attnc_spec_diag_text(NULL), "");
    assert_string_equal(attnc_spec_diag_machine(NULL), "");
    assert_null(attnc_spec_ir(NULL));
    assert_string_equal(attnc_spec_name(NULL), "");
    attnc_spec_free(NULL);
    assert_int_equal(attnc_share_workspace(ctx, NULL, NULL), ATTNC_ERR_USAGE);
    assert_string_equal(attnc_errmsg(ctx), "attnc_share_workspace: kernel or grad is NULL");
    assert_int_equal(attnc_kernel_workspace_bytes(NULL), 0);
    assert_int_equal(attnc_grad_workspace_allocated(NULL), 0);
    assert_int_equal(attnc_saved_states_bytes(NULL, NULL, 8, 8192, 0), 0);
    attnc_ctx_free(NULL);
    attnc_ctx_free(ctx);
}

static void a_valid_spec(void **state)
{
    (void)state;
    attnc_ctx *ctx = new_ctx();
    attnc_spec *spec = NULL;
    assert_int_equal(attnc_spec_from_string(ctx, "ok.attn", valid_spec, sizeof valid_spec - 1, &spec), ATTNC_OK);
    assert_non_null(spec);
    assert_int_equal(attnc_spec_diag_count(spec), 0);
    assert_int_equal(attnc_spec_error_count(spec), 0);
    assert_string_equal(attnc_spec_diag_text(spec), "");
    assert_string_equal(attnc_spec_name(spec), "ok");
    const char *ir = attnc_spec_ir(spec);
    assert_non_null(ir);
    assert_ptr_equal(ir, attnc_spec_ir(spec)); /* printed once */
    assert_memory_equal(ir, "attnc-ir 1\nvariant ok\n", 22);
    assert_non_null(strstr(ir, "output fp16\n")); /* by default, the dtype of the input the value reads */
    attnc_shape sh;
    assert_int_equal(attnc_spec_shape(spec, NULL), ATTNC_ERR_USAGE);
    assert_int_equal(attnc_spec_shape(spec, &sh), ATTNC_OK);
    assert_int_equal(sh.key_dim, 64);
    assert_int_equal(sh.value_dim, 32);
    assert_int_equal(sh.heads_q, 4);
    assert_int_equal(sh.heads_out, 4);
    assert_int_equal(sh.chunk, 0);
    assert_true(sh.has_linear);
    assert_false(sh.has_softmax);
    /* the IR text reads back through the API, with the same text */
    attnc_spec *again = NULL;
    assert_int_equal(attnc_spec_from_ir(ctx, "ok.ir", ir, strlen(ir), &again), ATTNC_OK);
    assert_string_equal(attnc_spec_ir(again), ir);
    attnc_spec_free(again);
    attnc_spec_free(spec);
    attnc_ctx_free(ctx);
}

static void diagnostics_of_a_bad_spec(void **state)
{
    (void)state;
    attnc_ctx *ctx = new_ctx();
    const char text[] = "attention bad {\n"
                        "  dim K = 64;\n"
                        "  heads H = 4;\n"
                        "  input q: bf16[H, K];\n"
                        "  let K = 2;\n"
                        "  linear { query = q; key = q; value = qq; }\n"
                        "}\n";
    attnc_spec *spec = NULL;
    assert_int_equal(attnc_spec_from_string(ctx, "bad.attn", text, sizeof text - 1, &spec), ATTNC_ERR_INPUT);
    assert_non_null(spec); /* set on ATTNC_ERR_INPUT, so that its diagnostics can be read */
    assert_string_equal(attnc_errmsg(ctx), "bad.attn: 2 errors");
    assert_int_equal(attnc_spec_error_count(spec), 2);
    assert_int_equal(attnc_spec_diag_count(spec), 4);
    attnc_diagnostic d;
    assert_int_equal(attnc_spec_diag(spec, 0, &d), ATTNC_OK);
    assert_int_equal(d.severity, ATTNC_ERROR);
    assert_string_equal(d.file, "bad.attn");
    assert_int_equal(d.line, 5);
    assert_int_equal(d.col, 7);
    assert_string_equal(d.message, "redefinition of 'K'");
    assert_int_equal(attnc_spec_diag(spec, 1, &d), ATTNC_OK);
    assert_int_equal(d.severity, ATTNC_NOTE);
    assert_int_equal(d.line, 2);
    assert_int_equal(d.col, 7);
    assert_string_equal(d.message, "previous definition is here");
    assert_int_equal(attnc_spec_diag(spec, 2, &d), ATTNC_OK);
    assert_string_equal(d.message, "use of undeclared name 'qq'");
    assert_int_equal(d.line, 6);
    assert_int_equal(d.col, 40);
    assert_int_equal(attnc_spec_diag(spec, 3, &d), ATTNC_OK);
    assert_int_equal(d.severity, ATTNC_NOTE);
    assert_string_equal(d.message, "did you mean 'q'?");
    assert_int_equal(attnc_spec_diag(spec, 4, &d), ATTNC_ERR_USAGE);
    assert_int_equal(attnc_spec_diag(spec, 0, NULL), ATTNC_ERR_USAGE);
    assert_string_equal(attnc_spec_diag_text(spec),
                        "bad.attn:5:7: error: redefinition of 'K'\n"
                        "    5 |   let K = 2;\n"
                        "      |       ^\n"
                        "bad.attn:2:7: note: previous definition is here\n"
                        "    2 |   dim K = 64;\n"
                        "      |       ^\n"
                        "bad.attn:6:40: error: use of undeclared name 'qq'\n"
                        "    6 |   linear { query = q; key = q; value = qq; }\n"
                        "      |                                        ^~\n"
                        "bad.attn:4:9: note: did you mean 'q'?\n"
                        "    4 |   input q: bf16[H, K];\n"
                        "      |         ^\n");
    assert_string_equal(attnc_spec_diag_machine(spec),
                        "error|bad.attn|5|7|redefinition of 'K'\n"
                        "note|bad.attn|2|7|previous definition is here\n"
                        "error|bad.attn|6|40|use of undeclared name 'qq'\n"
                        "note|bad.attn|4|9|did you mean 'q'?\n");
    /* a spec with errors has no IR, no name and no shape */
    assert_null(attnc_spec_ir(spec));
    assert_string_equal(attnc_spec_name(spec), "");
    attnc_shape sh;
    assert_int_equal(attnc_spec_shape(spec, &sh), ATTNC_ERR_USAGE);
    attnc_spec_free(spec);
    /* the default name of a string */
    assert_int_equal(attnc_spec_from_string(ctx, NULL, "x", 1, &spec), ATTNC_ERR_INPUT);
    assert_string_equal(attnc_spec_diag_machine(spec), "error|<string>|1|1|unexpected name 'x', expected 'attention'\n");
    attnc_spec_free(spec);
    attnc_ctx_free(ctx);
}

static void warnings_do_not_fail(void **state)
{
    (void)state;
    attnc_ctx *ctx = new_ctx();
    const char text[] = "attention w { dim K = 64; heads H = 4; input q: bf16[H, K]; input unused: bf16[H];\n"
                        "  linear { query = q; key = q; value = q; } }";
    attnc_spec *spec = NULL;
    assert_int_equal(attnc_spec_from_string(ctx, "w.attn", text, sizeof text - 1, &spec), ATTNC_OK);
    assert_int_equal(attnc_spec_error_count(spec), 0);
    assert_int_equal(attnc_spec_diag_count(spec), 1);
    attnc_diagnostic d;
    assert_int_equal(attnc_spec_diag(spec, 0, &d), ATTNC_OK);
    assert_int_equal(d.severity, ATTNC_WARNING);
    assert_string_equal(d.message, "'unused' is declared but never used");
    assert_non_null(attnc_spec_ir(spec));
    attnc_spec_free(spec);
    attnc_ctx_free(ctx);
}

static void files(void **state)
{
    (void)state;
    attnc_ctx *ctx = new_ctx();
    attnc_spec *spec = (attnc_spec *)&spec;
    assert_int_equal(attnc_spec_from_file(ctx, "/nonexistent/dir/missing.attn", &spec), ATTNC_ERR_IO);
    assert_null(spec);
    assert_string_equal(attnc_errmsg(ctx), "cannot open '/nonexistent/dir/missing.attn': No such file or directory");
    /* a directory opens but cannot be read */
    spec = (attnc_spec *)&spec;
    assert_int_equal(attnc_spec_from_file(ctx, ATTNC_SOURCE_DIR "/specs", &spec), ATTNC_ERR_IO);
    assert_null(spec);
    /* a real spec file, named by its path */
    assert_int_equal(attnc_spec_from_file(ctx, ATTNC_SOURCE_DIR "/specs/gla.attn", &spec), ATTNC_OK);
    assert_string_equal(attnc_spec_name(spec), "gla");
    char *ir = strdup(attnc_spec_ir(spec));
    attnc_spec_free(spec);
    /* a file that starts with the IR header (blank lines allowed before it) is read as IR */
    char path[] = "/tmp/attnc_test_api_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "\n\n%s", ir);
    fclose(f);
    assert_int_equal(attnc_spec_from_file(ctx, path, &spec), ATTNC_OK);
    assert_string_equal(attnc_spec_ir(spec), ir);
    attnc_spec_free(spec);
    remove(path);
    free(ir);
    attnc_ctx_free(ctx);
}

/* The shapes of the test specs: GQA, GVA, K != V and the hybrid. */
static void shapes_of_the_test_specs(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        attnc_shape want;
    } cases[] = {
        {"gqa_gla.attn", {128, 128, 16, 4, 4, 4, 16, 64, 1, 0}},
        {"gva_gated_deltanet.attn", {128, 128, 4, 4, 16, 16, 16, 64, 1, 0}},
        {"kv_asym_retnet.attn", {96, 192, 8, 8, 8, 8, 8, 64, 1, 0}},
        {"const_decay.attn", {64, 64, 8, 8, 8, 8, 8, 64, 1, 0}},
        {"based_hybrid.attn", {153, 64, 16, 16, 16, 16, 16, 64, 1, 1}},
        {"softmax_bidirectional_gqa.attn", {64, 64, 12, 4, 4, 4, 12, 0, 0, 1}},
    };
    attnc_ctx *ctx = new_ctx();
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/tests/specs/%s", ATTNC_SOURCE_DIR, cases[i].file);
        attnc_spec *spec = NULL;
        attnc_status st = attnc_spec_from_file(ctx, path, &spec);
        if (st != ATTNC_OK)
            fail_msg("%s: %s\n%s", cases[i].file, attnc_status_str(st), attnc_spec_diag_text(spec));
        assert_int_equal(attnc_spec_diag_count(spec), 0);
        attnc_shape sh;
        assert_int_equal(attnc_spec_shape(spec, &sh), ATTNC_OK);
        const attnc_shape *w = &cases[i].want;
        if (memcmp(&sh, w, sizeof sh) != 0)
            fail_msg("%s: K=%u V=%u q=%u k=%u v=%u state=%u out=%u chunk=%u linear=%d softmax=%d", cases[i].file,
                     sh.key_dim, sh.value_dim, sh.heads_q, sh.heads_k, sh.heads_v, sh.heads_state, sh.heads_out,
                     sh.chunk, sh.has_linear, sh.has_softmax);
        attnc_spec_free(spec);
    }
    attnc_ctx_free(ctx);
}

/* Contexts are independent, and a context's message is that of its last failed call. */
static void contexts_are_independent(void **state)
{
    (void)state;
    attnc_ctx *a = new_ctx(), *b = new_ctx();
    attnc_spec *spec = NULL;
    assert_int_equal(attnc_spec_from_string(a, "a.attn", "x", 1, &spec), ATTNC_ERR_INPUT);
    attnc_spec_free(spec);
    assert_string_equal(attnc_errmsg(a), "a.attn: 1 error");
    assert_string_equal(attnc_errmsg(b), "");
    attnc_ctx_free(a);
    attnc_ctx_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(versions),
        cmocka_unit_test(status_names),
        cmocka_unit_test(null_arguments),
        cmocka_unit_test(a_valid_spec),
        cmocka_unit_test(diagnostics_of_a_bad_spec),
        cmocka_unit_test(warnings_do_not_fail),
        cmocka_unit_test(files),
        cmocka_unit_test(shapes_of_the_test_specs),
        cmocka_unit_test(contexts_are_independent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
