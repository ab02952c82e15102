/* tests/unit/test_grad_softmax.c: the backward's plan and generator for the softmax part, hybrids and the
 * bidirectional linear part (passes/grad_softmax.c, codegen/cuda_bwd_softmax.c).
 *
 * The tile and its shared memory (halved for wide heads), the band constants (a window only when causal),
 * the score scale folded from the query's constant, the role gradients seeding the value DAG's adjoint,
 * which kernels a spec gets, the bidirectional plan, and the located error for softmax roles the
 * generator does not take. */
#include "test_util.h"

#include <string.h>

#include "cuda_bwd.h"
#include "grad.h"
#include "passes.h"

static void lowered(unit_src *u, const char *text)
{
    unit_spec(u, text);
    assert_non_null(u->m);
    assert_int_equal(u->diags.errors, 0);
    pass_options po = {0};
    assert_true(passes_run(u->m, &po, -1, &u->diags));
}

static void softmax_spec(char *text, size_t n, unsigned D, unsigned V, const char *query, const char *extra,
                         const char *mask)
{
    snprintf(text, n,
             "attention s { dim D = %u, V = %u; heads Hq = 8, Hkv = 2;\n"
             "  input q: bf16[Hq, D]; input k: bf16[Hkv, D]; input v: bf16[Hkv, V];\n"
             "  softmax { query = %s; key = k; value = v; %s }\n"
             "  mask %s; }\n",
             D, V, query, extra, mask);
}

/* Sliding window, causal: the window reaches the kernel, the scale is c log2(e), no linear kernel. */
static void test_window(void **state)
{
    (void)state;
    char text[1024];
    softmax_spec(text, sizeof text, 128, 128, "q * D^-0.5", "window 512;", "causal, document");
    unit_src u;
    lowered(&u, text);
    cg_bwd_output out;
    assert_true(codegen_cuda_bwd(u.m, u.arena, &u.diags, &out));
    assert_true(out.plan.ok);
    assert_true(out.plan.softmax);
    assert_false(out.plan.linear);
    assert_int_equal(out.plan.sm_d, 128);
    assert_int_equal(out.plan.sm_v, 128);
    assert_int_equal(out.plan.sm_tile, 64);
    assert_int_equal(out.plan.sm_smem_bytes, grad_sm_smem_bytes(64, 128, 128, 2));
    assert_true(out.plan.sm_smem_bytes <= 227u * 1024u);
    assert_int_equal(out.plan.vo, 128);
    assert_non_null(strstr(out.source, "#define ATTNC_SB_CAUSAL 1\n"));
    assert_non_null(strstr(out.source, "#define ATTNC_SB_WINDOW 512\n"));
    assert_non_null(strstr(out.source, "#define ATTNC_SB_QSCALE (0.0883883476f)"));
    assert_non_null(strstr(out.source, "#define ATTNC_SB_SCALE (0.127517431f)"));
    assert_non_null(strstr(out.source, "#define ATTNC_SB_HQ 8\n"));
    assert_non_null(strstr(out.source, "#define ATTNC_SB_HK 2\n"));
    assert_non_null(strstr(out.source, "#define ATTNC_B_CAUSAL_LINEAR 0\n"));
    assert_non_null(strstr(out.source, "attnc_bwd_sm_rows(attnc_bwd_params p)"));
    assert_non_null(strstr(out.source, "attnc_bwd_sm_kv(attnc_bwd_params p)"));
    assert_null(strstr(out.source, "void attnc_bwd_roles("));   /* no linear roles function */
    /* the role gradients seed the adjoint; the query's through its constant */
    assert_non_null(strstr(out.source, "+= p.ws_sdq[hrow * ATTNC_SB_D + lane + 0];"));
    assert_non_null(strstr(out.source, "+= p.ws_sdk[hrow * ATTNC_SB_D + lane + 96];"));
    assert_non_null(strstr(out.source, "+= p.ws_sdv[hrow * ATTNC_SB_V + lane + 96];"));
    assert_non_null(strstr(out.source, "// mul"));
    unit_close(&u);
}

/* Bidirectional (sema allows a window only with mask causal): no band; an unscaled query has constant 1. */
static void test_bidirectional_softmax(void **state)
{
    (void)state;
    char text[1024];
    softmax_spec(text, sizeof text, 64, 64, "q", "", "none");
    unit_src u;
    lowered(&u, text);
    cg_bwd_output out;
    assert_true(codegen_cuda_bwd(u.m, u.arena, &u.diags, &out));
    assert_non_null(strstr(out.source, "#define ATTNC_SB_CAUSAL 0\n"));
    assert_non_null(strstr(out.source, "#define ATTNC_SB_WINDOW 0\n"));
    assert_non_null(strstr(out.source, "#define ATTNC_SB_QSCALE (1.0f)"));
    unit_close(&u);
}

/* Wide heads with fp32 inputs (fp32 tiles): the tile halves to 32 rows to fit a CTA's shared memory. */
static void test_wide_heads(void **state)
{
    (void)state;
    assert_true(grad_sm_smem_bytes(64, 256, 256, 4) > 227u * 1024u);
    char text[1024];
    snprintf(text, sizeof text,
             "attention s { dim D = 256, V = 256; heads Hq = 8, Hkv = 2;\n"
             "  input q: fp32[Hq, D]; input k: fp32[Hkv, D]; input v: fp32[Hkv, V];\n"
             "  softmax { query = q; key = k; value = v; }\n  mask causal; }\n");
    unit_src u;
    lowered(&u, text);
    grad_plan gp;
    assert_true(grad_derive(u.m, u.arena, &gp));
    assert_true(gp.ok);
    assert_int_equal(gp.sm_tile, 32);
    assert_int_equal(gp.sm_smem_bytes, grad_sm_smem_bytes(32, 256, 256, 4));
    assert_true(gp.sm_smem_bytes <= 227u * 1024u);
    unit_close(&u);
}

/* A computed softmax role: a located error (the forward does not take it either). */
static void test_computed_role(void **state)
{
    (void)state;
    char text[1024];
    softmax_spec(text, sizeof text, 64, 64, "l2norm(q)", "", "causal");
    unit_src u;
    lowered(&u, text);
    uint32_t before = u.diags.n;
    cg_bwd_output out;
    assert_false(codegen_cuda_bwd(u.m, u.arena, &u.diags, &out));
    assert_int_equal(u.diags.n, before + 1);
    unit_expect_diag(&u, before, ATTNC_SEV_ERROR, 3, 3, "backward not generated yet for softmax roles computed from the inputs (the forward takes them as stored)");
    unit_close(&u);
}

/* A hybrid: both parts' kernels, both parts' roles seeded. */
static void test_hybrid(void **state)
{
    (void)state;
    unit_src u;
    lowered(&u, "attention b { dim D = 16, V = 64, W = 64; heads H = 4;\n"
                "  input q: bf16[H, D]; input k: bf16[H, D]; input v: bf16[H, V];\n"
                "  input sq: bf16[H, W]; input sk: bf16[H, W]; input sv: bf16[H, V];\n"
                "  linear { query = taylor2(q); key = taylor2(k); value = v; normalize denominator(1e-6); }\n"
                "  softmax { query = sq * W^-0.5; key = sk; value = sv; window 64; }\n"
                "  mask causal, document; chunk 64; }\n");
    cg_bwd_output out;
    assert_true(codegen_cuda_bwd(u.m, u.arena, &u.diags, &out));
    assert_true(out.plan.linear);
    assert_false(out.plan.bidir);
    assert_true(out.plan.softmax);
    assert_int_equal(out.plan.vo, 64);
    assert_non_null(strstr(out.source, "#define ATTNC_B_CAUSAL_LINEAR 1\n"));
    assert_non_null(strstr(out.source, "attnc_bwd_linear(attnc_bwd_params p)"));
    assert_non_null(strstr(out.source, "attnc_bwd_sm_rows(attnc_bwd_params p)"));
    assert_non_null(strstr(out.source, "+= p.ws_dq[hrow * ATTNC_B_K + lane + 0];"));
    assert_non_null(strstr(out.source, "+= p.ws_sdq[hrow * ATTNC_SB_D + lane + 0];"));
    unit_close(&u);
}

/* The bidirectional linear part: its own kernel, the denominator's column of ones, the chunk's budget. */
static void test_bidirectional_linear(void **state)
{
    (void)state;
    unit_src u;
    lowered(&u, "attention x { dim K = 128, V = 128; heads H = 2;\n"
                "  input q: bf16[H, K]; input k: bf16[H, K]; input v: bf16[H, V];\n"
                "  linear { query = elu(q) + 1; key = elu(k) + 1; value = v; normalize denominator(1e-6); }\n"
                "  mask none; state initial, final; chunk 64; }\n");
    cg_bwd_output out;
    assert_true(codegen_cuda_bwd(u.m, u.arena, &u.diags, &out));
    assert_true(out.plan.ok);
    assert_true(out.plan.linear);
    assert_true(out.plan.bidir);
    assert_false(out.plan.softmax);
    assert_int_equal(out.plan.V, 129);
    assert_int_equal(out.plan.vo, 128);
    assert_int_equal(out.plan.chunk, 32);
    assert_int_equal(out.plan.smem_bytes, grad_bidir_smem_bytes(32, 128, 129));
    assert_true(out.plan.smem_bytes <= 227u * 1024u);
    assert_non_null(strstr(out.source, "#define ATTNC_B_CAUSAL_LINEAR 0\n"));
    assert_non_null(strstr(out.source, "attnc_bidir_load("));
    assert_non_null(strstr(out.source, "attnc_bwd_linear(attnc_bwd_params p)"));
    assert_null(strstr(out.source, "attnc_bwd_sm_rows"));
    unit_close(&u);
    /* a state too large for one CTA halves the chunk */
    assert_true(grad_bidir_smem_bytes(32, 128, 193) > 227u * 1024u);
    lowered(&u, "attention y { dim K = 128, V = 192; heads H = 2;\n"
                "  input q: bf16[H, K]; input k: bf16[H, K]; input v: bf16[H, V];\n"
                "  linear { query = q; key = k; value = v; normalize denominator(1e-6); }\n"
                "  mask none; chunk 64; }\n");
    grad_plan gp;
    assert_true(grad_derive(u.m, u.arena, &gp));
    assert_true(gp.ok);
    assert_true(gp.chunk < 32);
    assert_int_equal(gp.smem_bytes, grad_bidir_smem_bytes(gp.chunk, 128, 193));
    assert_true(gp.smem_bytes <= 227u * 1024u);
    unit_close(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window),       cmocka_unit_test(test_bidirectional_softmax),
        cmocka_unit_test(test_wide_heads),   cmocka_unit_test(test_computed_role),
        cmocka_unit_test(test_hybrid),       cmocka_unit_test(test_bidirectional_linear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
