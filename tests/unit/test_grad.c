/* tests/unit/test_grad.c: the backward's plan (passes/grad.c) and generator (codegen/cuda_bwd.c).
 *
 * What is derived for each transition class, which values get adjoints (those that read a tensor, the
 * value shared by hgrn2's key and gate once), the shared memory budget, and the located "backward not
 * generated yet for FEATURE" errors of every feature outside the first tier. */
#include <math.h>

#include "test_util.h"

#include "codegen.h"
#include "cuda_bwd.h"
#include "grad.h"
#include "passes.h"

static const char *const gla_text =
    "attention g { dim K = 128, V = 128; heads H = 4;\n"
    "  input q: bf16[H, K]; input k: bf16[H, K]; input v: bf16[H, V]; input gk: bf16[H, K];\n"
    "  linear { query = q * K^-0.5; key = k; value = v; gate = logsigmoid(gk) / 16; }\n"
    "  mask causal; state initial, final; chunk 64; }\n";

static void lowered(unit_src *u, const char *text)
{
    unit_spec(u, text);
    assert_non_null(u->m);
    assert_int_equal(u->diags.errors, 0);
    pass_options po = {0};
    assert_true(passes_run(u->m, &po, -1, &u->diags));
}

static void test_diag_gate(void **state)
{
    (void)state;
    unit_src u;
    lowered(&u, gla_text);
    grad_plan gp;
    assert_true(grad_derive(u.m, u.arena, &gp));
    assert_true(gp.ok);
    assert_int_equal(gp.transition, IR_TR_DIAG);
    assert_int_equal(gp.K, 128);
    assert_int_equal(gp.V, 128);
    assert_int_equal(gp.gk, 128);
    assert_int_equal(gp.chunk, 32);
    assert_int_equal(gp.smem_bytes, grad_smem_bytes(32, 128, 128, 128, false, false, false));
    assert_true(gp.smem_bytes <= 227u * 1024u);
    /* every role reads a tensor, so every role value gets an adjoint */
    assert_true(gp.needs[u.m->linear.query] && gp.needs[u.m->linear.key] && gp.needs[u.m->linear.gate]);
    unit_close(&u);
}

static void test_scalar_and_const(void **state)
{
    (void)state;
    unit_src u;
    lowered(&u, "attention m { dim N = 64, P = 64; heads H = 2;\n"
                "  input C: bf16[H, N]; input B: bf16[H, N]; input x: bf16[H, P]; input dt: fp32[H];\n"
                "  param A_log: fp32[H];\n"
                "  linear { query = C; key = B; value = x * softplus(dt); gate = -exp(A_log) * softplus(dt); }\n"
                "  mask causal; chunk 64; }\n");
    grad_plan gp;
    assert_true(grad_derive(u.m, u.arena, &gp));
    assert_true(gp.ok);
    assert_int_equal(gp.transition, IR_TR_SCALAR);
    assert_int_equal(gp.gk, 1);
    assert_true(gp.needs[u.m->linear.gate]);
    unit_close(&u);
    /* a constant decay reads no tensor: no adjoint for the gate, and none reaches anything */
    lowered(&u, "attention c { dim K = 64, V = 64; heads H = 2;\n"
                "  input q: bf16[H, K]; input k: bf16[H, K]; input v: bf16[H, V];\n"
                "  linear { query = q; key = k; value = v; decay = 0.9; }\n  mask causal; chunk 64; }\n");
    assert_true(grad_derive(u.m, u.arena, &gp));
    assert_true(gp.ok);
    assert_int_equal(gp.transition, IR_TR_CONST);
    assert_false(gp.needs[u.m->linear.gate]);
    assert_true(gp.live[u.m->linear.gate]);
    unit_close(&u);
}

/* hgrn2: the key is the gate's operand; the generated adjoint seeds both roles and emits that value's
 * rule once, after both paths have added into it (reverse SSA order). */
static void test_shared_value(void **state)
{
    (void)state;
    unit_src u;
    lowered(&u, "attention h { dim K = 64, V = 64; heads H = 2;\n"
                "  input q: bf16[H, K]; input f: bf16[H, K]; input v: bf16[H, V];\n"
                "  let om = sigmoid(-f);\n"
                "  linear { query = q; key = om; value = v; gate = log(1 - om); }\n  mask causal; chunk 64; }\n");
    cg_bwd_output out;
    assert_true(codegen_cuda_bwd(u.m, u.arena, &u.diags, &out));
    ir_ref key = u.m->linear.key;
    char seed[64], rule[64];
    snprintf(seed, sizeof seed, "g%u[0] += p.ws_dk[", key);
    assert_non_null(strstr(out.source, seed));
    /* the key's own rule (sigmoid) comes after the gate's path added into g<key> */
    const char *gate_path = strstr(out.source, "// sub"), *sig = strstr(out.source, "// sigmoid");
    assert_non_null(gate_path);
    assert_non_null(sig);
    assert_true(gate_path < sig);
    snprintf(rule, sizeof rule, "float g%u[2] = {};", key);
    assert_non_null(strstr(out.source, rule));
    assert_non_null(strstr(out.source, "attnc_bwd_linear"));
    unit_close(&u);
}

/* Normalisers (second tier): the denominator is a value column of ones (V + 1 state columns, V output
 * columns), the row norms keep V; every one stores the pre-norm rows, and the generated unit carries the
 * norm's constants.  taylor2 (based) gets its generated forward and adjoint. */
static void test_norms(void **state)
{
    (void)state;
    static const struct { const char *norm; unsigned kind, extra; const char *eps; } cases[] = {
        {"denominator(1e-6)", IR_NORM_DENOM, 1, "#define ATTNC_B_EPS (1e-06f)"},
        {"rmsnorm(1e-6)", IR_NORM_RMS, 0, "#define ATTNC_B_EPS (1e-06f)"},
        {"layernorm(1e-5)", IR_NORM_LAYER, 0, "#define ATTNC_B_EPS (1e-05f)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char text[1024];
        snprintf(text, sizeof text,
                 "attention n { dim K = 64, V = 64; heads H = 2;\n"
                 "  input q: bf16[H, K]; input k: bf16[H, K]; input v: bf16[H, V];\n"
                 "  linear { query = elu(q) + 1; key = elu(k) + 1; value = v; normalize %s; }\n"
                 "  mask causal; state initial, final; chunk 64; }\n",
                 cases[i].norm);
        unit_src u;
        lowered(&u, text);
        cg_bwd_output out;
        assert_true(codegen_cuda_bwd(u.m, u.arena, &u.diags, &out));
        assert_true(out.plan.ok);
        assert_int_equal(out.plan.norm, cases[i].kind);
        assert_int_equal(out.plan.vo, 64);
        assert_int_equal(out.plan.V, 64 + cases[i].extra);
        assert_int_equal(out.plan.smem_bytes, grad_smem_bytes(out.plan.chunk, 64, 64 + cases[i].extra, 1, true, false, false));
        assert_non_null(strstr(out.source, cases[i].eps));
        unit_close(&u);
    }
    unit_src u;
    lowered(&u, "attention b { dim D = 16, V = 64; heads H = 2;\n"
                "  input q: bf16[H, D]; input k: bf16[H, D]; input v: bf16[H, V];\n"
                "  linear { query = taylor2(q); key = taylor2(k); value = v; normalize denominator(1e-6); }\n"
                "  mask causal; chunk 64; }\n");
    cg_bwd_output out;
    assert_true(codegen_cuda_bwd(u.m, u.arena, &u.diags, &out));
    assert_int_equal(out.plan.K, 153);
    assert_non_null(strstr(out.source, "// taylor2"));
    assert_non_null(strstr(out.source, "attnc_taylor2_index(128 + lane, 16, kind, i, j)"));
    unit_close(&u);
}

/* Features outside the first tier: a located error, never a crash. */
static void test_not_generated(void **state)
{
    (void)state;
    static const struct { const char *linear, *rest, *msg; unsigned line, col; } cases[] = {
        {"linear { query = q; key = k; value = v; beta = sigmoid(b); update delta; normalize rmsnorm(1e-6); }", "mask causal;",
         "backward not generated yet for the delta rule with an output normaliser", 3, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char text[1024];
        snprintf(text, sizeof text,
                 "attention x { dim K = 64, V = 64; heads H = 2;\n"
                 "  input q: bf16[H, K]; input k: bf16[H, K]; input v: bf16[H, V]; input b: bf16[H];\n"
                 "  %s\n  %s chunk 64; }\n",
                 cases[i].linear, cases[i].rest);
        unit_src u;
        lowered(&u, text);
        uint32_t before = u.diags.n;
        cg_bwd_output out;
        assert_false(codegen_cuda_bwd(u.m, u.arena, &u.diags, &out));
        assert_int_equal(u.diags.n, before + 1);
        unit_expect_diag(&u, before, ATTNC_SEV_ERROR, cases[i].line, cases[i].col, cases[i].msg);
        unit_close(&u);
    }
}

/* The delta rule (KDA's per-channel gate, GVA's shared keys): its WY tiles halve the chunk to 16 at
 * K = V = 128, beta is a role with an adjoint (seeded from ws_db), the roles store its row. */
static void test_delta(void **state)
{
    (void)state;
    unit_src u;
    lowered(&u, "attention kda { dim K = 128, V = 128; heads Hqk = 2, Hv = 4;\n"
                "  input q: bf16[Hqk, K]; input k: bf16[Hqk, K]; input v: bf16[Hv, V]; input g: bf16[Hv, K];\n"
                "  input b: bf16[Hv]; param A_log: fp32[Hv];\n"
                "  linear { query = l2norm(q) * K^-0.5; key = l2norm(k); value = v; gate = -exp(A_log) * softplus(g);\n"
                "           beta = sigmoid(b); update delta; }\n"
                "  mask causal, document; state initial, final; chunk 64; }\n");
    cg_bwd_output out;
    assert_true(codegen_cuda_bwd(u.m, u.arena, &u.diags, &out));
    const grad_plan *gp = &out.plan;
    assert_true(gp->ok);
    assert_true(gp->delta);
    assert_int_equal(gp->transition, IR_TR_DIAG);
    assert_int_equal(gp->gk, 128);
    assert_int_equal(gp->chunk, 16);
    assert_int_equal(gp->smem_bytes, grad_smem_bytes(16, 128, 128, 128, false, true, false));
    assert_true(gp->smem_bytes <= 227u * 1024u);
    assert_true(grad_smem_bytes(32, 128, 128, 128, false, true, false) > 227u * 1024u);
    assert_true(grad_smem_bytes(16, 128, 128, 128, false, true, false) > grad_smem_bytes(16, 128, 128, 128, false, false, false));
    assert_true(gp->needs[u.m->linear.beta]);
    assert_non_null(strstr(out.source, "#define ATTNC_B_DELTA 1"));
    assert_non_null(strstr(out.source, "p.ws_db[hrow * 1]"));
    assert_non_null(strstr(out.source, "beta[0] = v"));
    /* the gate's seed is masked where the forward floors the token's log2 decay */
    assert_non_null(strstr(out.source, "[0] * LOG2E >= ATTNC_B_LOG2_FLOOR)"));
    unit_close(&u);
    /* an additive spec keeps the delta tiles out */
    lowered(&u, gla_text);
    assert_true(codegen_cuda_bwd(u.m, u.arena, &u.diags, &out));
    assert_false(out.plan.delta);
    assert_non_null(strstr(out.source, "#define ATTNC_B_DELTA 0"));
    assert_null(strstr(out.source, "p.ws_db[hrow"));
    unit_close(&u);
}

/* mLSTM: the state gets n as a column of ones (V + 1), the input gate is a role with an adjoint (seeded
 * from ws_di), the max-floor normaliser keeps its rows; an input gate without the stabiliser's normaliser
 * is a located error. */
static void test_mlstm(void **state)
{
    (void)state;
    unit_src u;
    lowered(&u, "attention m { dim K = 128, V = 128; heads H = 2;\n"
                "  input q: bf16[H, K]; input k: bf16[H, K]; input v: bf16[H, V]; input i: fp32[H]; input f: fp32[H];\n"
                "  linear { query = q * K^-0.5; key = k; value = v; gate = logsigmoid(f); igate = i;\n"
                "           normalize max_floor(1e-6); }\n"
                "  mask causal, document; state initial, final; chunk 64; }\n");
    cg_bwd_output out;
    assert_true(codegen_cuda_bwd(u.m, u.arena, &u.diags, &out));
    const grad_plan *gp = &out.plan;
    assert_true(gp->ok);
    assert_true(gp->mlstm);
    assert_false(gp->delta);
    assert_int_equal(gp->norm, IR_NORM_MAXFLOOR);
    assert_int_equal(gp->vo, 128);
    assert_int_equal(gp->V, 129);
    assert_int_equal(gp->gk, 1);
    assert_int_equal(gp->chunk, 32);
    assert_int_equal(gp->smem_bytes, grad_smem_bytes(32, 128, 129, 1, true, false, true));
    assert_true(gp->smem_bytes <= 227u * 1024u);
    assert_true(gp->needs[u.m->linear.igate]);
    assert_non_null(strstr(out.source, "#define ATTNC_B_MLSTM 1"));
    assert_non_null(strstr(out.source, "p.ws_di[hrow * 1]"));
    assert_non_null(strstr(out.source, "ig[0] = v"));
    unit_close(&u);
}

/* The chunk halves while the tiles exceed a CTA's shared memory; the sums match the kernel's layout. */
static void test_smem_budget(void **state)
{
    (void)state;
    assert_true(grad_smem_bytes(32, 128, 128, 128, false, false, false) <= 227u * 1024u);
    assert_true(grad_smem_bytes(32, 128, 129, 1, true, false, false) <= 227u * 1024u);   /* linear_attn: V + 1, the x rows */
    assert_true(grad_smem_bytes(32, 128, 129, 1, true, false, false) > grad_smem_bytes(32, 128, 129, 1, false, false, false));
    assert_true(grad_smem_bytes(32, 256, 128, 256, false, false, false) > 227u * 1024u);
    unit_src u;
    lowered(&u, "attention w { dim K = 256, V = 128; heads H = 2;\n"
                "  input q: bf16[H, K]; input k: bf16[H, K]; input v: bf16[H, V]; input gk: bf16[H, K];\n"
                "  linear { query = q; key = k; value = v; gate = logsigmoid(gk); }\n  mask causal; chunk 64; }\n");
    grad_plan gp;
    assert_true(grad_derive(u.m, u.arena, &gp));
    assert_true(gp.ok);
    assert_true(gp.chunk < 32);
    assert_true(gp.smem_bytes <= 227u * 1024u);
    unit_close(&u);
}

/* The chunk-parallel schedule (ATTNC_BWD_SCHEDULE=parallel): where it applies its plan and kernels
 * replace attnc_bwd_linear; elsewhere (a per-channel gate) the sequential schedule stays, and the default
 * (parallel false) is the sequential source. */
static void test_parallel_schedule(void **state)
{
    (void)state;
    unit_src u;
    static const char *const mamba2_text =
        "attention m { dim N = 128, P = 128; heads H = 2;\n"
        "  input C: bf16[H, N]; input B: bf16[H, N]; input x: bf16[H, P]; input dt: fp32[H];\n"
        "  param A_log: fp32[H];\n"
        "  linear { query = C; key = B; value = x * softplus(dt); gate = -exp(A_log) * softplus(dt); }\n"
        "  mask causal, document; state initial, final; chunk 32; }\n";
    lowered(&u, mamba2_text);
    cg_bwd_output out;
    assert_true(codegen_cuda_bwd_sched(u.m, u.arena, &u.diags, true, &out));
    assert_true(out.plan.parallel);
    assert_int_equal(out.plan.bp_chunk, 64);
    assert_int_equal(out.plan.bp_kp, 128);
    assert_int_equal(out.plan.bp_vp, 128);
    assert_true(out.plan.bp_vsplit);   /* x * softplus(dt) is computed: its tiles carry a remainder */
    assert_false(out.plan.bp_split);
    assert_true(out.plan.bp_slo);   /* the state images as hi + lo tiles */
    assert_true(out.plan.bp_plo && out.plan.bp_dg);   /* A_log and dt_bias sum every token's gradient: P and A hi + lo */
    assert_non_null(strstr(out.source, "#define ATTNC_BP_PLO 1"));
    assert_non_null(strstr(out.source, "#define ATTNC_BP_DG 1"));
    /* the scalar-gate chunk kernel at chunk 64 and K = V = 128: 16 warps (the wide pass), in its shared memory */
    assert_int_equal(out.plan.bp_chunk_warps, 16);
    assert_int_equal(out.plan.bp_chunk_smem, grad_bp_chunk_smem(64, 128, 128, false, true, true, true, false, false, out.plan.bp_stage_bytes, 16, 0));
    assert_non_null(strstr(out.source, "#define ATTNC_BP_WIDE_CHUNK 1"));
    /* C, B and x: 64 rows of 256 bytes each; dt: 64 rows of 4 bytes */
    assert_int_equal(out.plan.bp_stage_bytes, 3 * 64 * 256 + 256);
    /* the query and key are C and B as stored: their tile rows are the staged rows; the value is computed */
    assert_int_equal(out.plan.bp_role_stage[0], 0);
    assert_int_equal(out.plan.bp_role_stage[1], 64 * 256);
    assert_int_equal(out.plan.bp_role_stage[2], ~0u);
    assert_non_null(strstr(out.source, "#define ATTNC_BP_K_STAGE 16384"));
    assert_true(out.plan.bp_chunk_smem <= 227u * 1024u);
    assert_non_null(strstr(out.source, "attnc_bwdp_chunk"));
    assert_non_null(strstr(out.source, "#define ATTNC_B_CAUSAL_LINEAR 0"));
    unit_close(&u);
    /* the default: the sequential source, no parallel kernels */
    lowered(&u, mamba2_text);
    assert_true(codegen_cuda_bwd(u.m, u.arena, &u.diags, &out));
    assert_false(out.plan.parallel);
    assert_null(strstr(out.source, "ATTNC_BP 1"));
    assert_non_null(strstr(out.source, "#define ATTNC_B_CAUSAL_LINEAR 1"));
    unit_close(&u);
    /* the running denominator: V + 1 columns, padded to 144 */
    lowered(&u, "attention l { dim D = 128, V = 128; heads H = 2;\n"
                "  input q: bf16[H, D]; input k: bf16[H, D]; input v: bf16[H, V];\n"
                "  linear { query = elu(q) + 1; key = elu(k) + 1; value = v; normalize denominator(1e-6); }\n"
                "  mask causal; chunk 64; }\n");
    assert_true(codegen_cuda_bwd_sched(u.m, u.arena, &u.diags, true, &out));
    assert_true(out.plan.parallel);
    assert_int_equal(out.plan.bp_vp, 144);
    assert_false(out.plan.bp_vsplit);
    assert_int_equal(out.plan.bp_vs, 48);   /* 144 = 3 x 48: the widest slice of 16-multiples up to 128 */
    assert_true(out.plan.bp_plo);   /* the normaliser keeps P's and A's lo tiles */
    unit_close(&u);
    /* a scalar gate from a bf16 tensor and no parameter: the gate's gradient, no remainder tiles, and the
     * scanned walks' products at one CTA an SM (their 2-byte rows held in registers spilled at two) */
    lowered(&u, "attention s { dim K = 128, V = 128; heads H = 4;\n"
                "  input q: bf16[H, K]; input k: bf16[H, K]; input v: bf16[H, V]; input g: bf16[H];\n"
                "  linear { query = q * K^-0.5; key = k; value = v; gate = logsigmoid(g) / 16; }\n"
                "  mask causal; chunk 64; }\n");
    assert_true(codegen_cuda_bwd_sched(u.m, u.arena, &u.diags, true, &out));
    assert_true(out.plan.parallel && out.plan.bp_dg);
    assert_false(out.plan.bp_plo || out.plan.bp_slo);
    assert_false(out.plan.bp_run2);
    unit_close(&u);
    /* a constant decay (lightning's): no tensor reaches the gate, so no gate gradient (bp_dg) and, with no
     * normaliser, P, A and the images in hi tiles alone (bp_plo, bp_slo), less shared memory */
    lowered(&u, "attention c { dim K = 128, V = 128; heads H = 4;\n"
                "  input q: bf16[H, K]; input k: bf16[H, K]; input v: bf16[H, V];\n"
                "  linear { query = q * K^-0.5; key = k; value = v; decay = exp(-2^(-8 * (head(H) + 1) / H)); }\n"
                "  mask causal, document; state initial, final; chunk 64; }\n");
    assert_true(codegen_cuda_bwd_sched(u.m, u.arena, &u.diags, true, &out));
    assert_true(out.plan.parallel);
    assert_false(out.plan.bp_dg);
    assert_false(out.plan.bp_plo);
    assert_false(out.plan.bp_slo);
    assert_non_null(strstr(out.source, "#define ATTNC_BP_PLO 0"));
    assert_non_null(strstr(out.source, "#define ATTNC_BP_DG 0"));
    assert_int_equal(out.plan.bp_chunk_smem, grad_bp_chunk_smem(64, 128, 128, false, false, false, false, false, false,
                                                                out.plan.bp_stage_bytes, out.plan.bp_chunk_warps, 0));
    assert_true(out.plan.bp_chunk_smem < grad_bp_chunk_smem(64, 128, 128, false, false, true, true, false, false,
                                                            out.plan.bp_stage_bytes, out.plan.bp_chunk_warps, 0));
    unit_close(&u);
    /* a per-channel gate: the parallel schedule's DIAG chunk kernel, chunks of 32 (two 16-row blocks) */
    lowered(&u, gla_text);
    assert_true(codegen_cuda_bwd_sched(u.m, u.arena, &u.diags, true, &out));
    assert_true(out.plan.parallel);
    assert_int_equal(out.plan.bp_chunk, 32);
    /* gk reaches the gate and no parameter: every gradient per token, no remainder tiles */
    assert_true(out.plan.bp_dg);
    assert_false(out.plan.bp_plo || out.plan.bp_slo);
    assert_int_equal(out.plan.bp_chunk_smem, grad_bp_chunk_smem(32, 128, 128, false, false, false, false, false, true,
                                                                out.plan.bp_stage_bytes, 8, 0));
    assert_int_equal(out.plan.bp_vs, 128);
    assert_int_equal(out.plan.bp_walk_smem, grad_bp_walk_smem(32, 128, 128, 128, false, false, true, out.plan.bp_stage_bytes + 32 * 128 * 2));
    assert_true(out.plan.bp_chunk_smem <= 227u * 1024u);
    assert_non_null(strstr(out.source, "ATTNC_BP 1"));
    unit_close(&u);
    /* a per-channel gate with a normaliser: not covered (attnc_bwdp_rows has no per-channel P), sequential */
    lowered(&u, "attention g { dim K = 128, V = 128; heads H = 4;\n"
                "  input q: bf16[H, K]; input k: bf16[H, K]; input v: bf16[H, V]; input gk: bf16[H, K];\n"
                "  linear { query = q; key = k; value = v; gate = logsigmoid(gk) / 16; normalize rmsnorm(1e-6); }\n"
                "  mask causal; chunk 64; }\n");
    assert_true(codegen_cuda_bwd_sched(u.m, u.arena, &u.diags, true, &out));
    assert_false(out.plan.parallel);
    assert_null(strstr(out.source, "ATTNC_BP 1"));
    unit_close(&u);
    /* the delta rule: chunk 64; no gate and hi tiles alone, so its adjoint and (the reverse walk forming dU_hat)
     * its chunk kernel at 8 warps in their compact layouts, two CTAs an SM */
    lowered(&u, "attention d { dim K = 128, V = 128; heads H = 2;\n"
                "  input q: bf16[H, K]; input k: bf16[H, K]; input v: bf16[H, V]; input b: bf16[H];\n"
                "  linear { query = l2norm(q); key = l2norm(k); value = v; beta = sigmoid(b); update delta; }\n"
                "  mask causal; chunk 32; }\n");
    assert_true(codegen_cuda_bwd_sched(u.m, u.arena, &u.diags, true, &out));
    assert_true(out.plan.parallel && out.plan.bp_delta);
    assert_int_equal(out.plan.bp_chunk, 64);
    assert_int_equal(out.plan.bp_chunk_warps, 8);
    assert_true(out.plan.bd_walk_duh && out.plan.bp_chunk_two);
    assert_int_equal(out.plan.bp_chunk_smem, grad_bp_chunk2_smem(64, 128, 128, out.plan.bp_stage_bytes, false));
    assert_true(2 * (out.plan.bp_chunk_smem + 1024) <= 228 * 1024);
    assert_int_equal(out.plan.bd_adj_warps, 8);
    assert_true(out.plan.bd_adj_two);
    assert_int_equal(out.plan.bd_adj_smem, grad_bd_adj_smem(64, 128, 128, out.plan.bp_stage_bytes, true, 0));
    assert_true(2 * (out.plan.bd_adj_smem + 1024) <= 228 * 1024);
    assert_true(out.plan.bp_direct[2]);   /* v as stored: the adjoint writes its gradient (ws_dv kept for dU_hat) */
    assert_true(out.plan.bd_duh16);   /* ... in 16 bits, for the compact adjoint */
    assert_non_null(strstr(out.source, "#define ATTNC_BD_DUH16 1"));
    assert_true(out.plan.bp_direct[1] && out.plan.bd_dk16);   /* the adjoint writes k's: the chunk kernel's dk compact */
    assert_non_null(strstr(out.source, "#define ATTNC_BD_DK16 1"));
    assert_false(out.plan.bp_dg);   /* no decay */
    assert_false(out.plan.bp_plo);   /* no gate gradient: hi tiles alone, in the adjoint too */
    assert_false(out.plan.bp_slo);
    assert_non_null(strstr(out.source, "#define ATTNC_BP_PLO 0"));
    assert_non_null(strstr(out.source, "#define ATTNC_BP_WIDE_CHUNK 0"));
    assert_null(strstr(out.source, "namespace attnc_wide {"));   /* nothing at 16 warps: no wide pass */
    assert_non_null(strstr(out.source, "#define ATTNC_BD_ADJ2 1"));
    assert_non_null(strstr(out.source, "#define ATTNC_BP_CHUNK2 1"));
    assert_non_null(strstr(out.source, "constexpr unsigned attnc_bd_adj_threads = 256;"));
    assert_non_null(strstr(out.source, "constexpr unsigned attnc_bp_chunk_threads = 256,"));
    unit_close(&u);
    /* Gated DeltaNet's decay reads A_log, summed over every token: the gate's gradient and the remainder tiles */
    lowered(&u, "attention g { dim K = 128, V = 128; heads H = 2;\n"
                "  input q: bf16[H, K]; input k: bf16[H, K]; input v: bf16[H, V]; input b: bf16[H]; input a: bf16[H];\n"
                "  param A_log: fp32[H];\n"
                "  linear { query = l2norm(q); key = l2norm(k); value = v; gate = -exp(A_log) * softplus(a);\n"
                "           beta = sigmoid(b); update delta; }\n"
                "  mask causal; chunk 64; }\n");
    assert_true(codegen_cuda_bwd_sched(u.m, u.arena, &u.diags, true, &out));
    assert_true(out.plan.parallel && out.plan.bp_delta);
    assert_true(out.plan.bp_dg && out.plan.bp_plo && out.plan.bp_slo);
    assert_non_null(strstr(out.source, "#define ATTNC_BP_PLO 1"));
    assert_false(out.plan.bd_adj_two);   /* lo tiles: the 16-warp adjoint, and chunk kernel */
    assert_int_equal(out.plan.bd_adj_warps, 16);
    assert_false(out.plan.bp_chunk_two);
    assert_int_equal(out.plan.bp_chunk_warps, 16);
    assert_false(out.plan.bd_walk_duh);   /* the chunk kernel forms dU_hat with its lo tiles */
    assert_false(out.plan.bd_duh16);   /* (in fp32, for the 16-warp adjoint's hi and lo tiles) */
    assert_non_null(strstr(out.source, "#define ATTNC_BD_DUH16 0"));
    assert_non_null(strstr(out.source, "using attnc_wide::attnc_bwdp_wy_adjoint;"));
    /* its query and key: l2norm of bf16 inputs, so the tiles hold the input rows and the factors lie beside
     * them (the staged rows of q and k, and each layout's factor rows in the plan's byte sums) */
    assert_true(out.plan.bp_qk_raw);
    assert_non_null(strstr(out.source, "#define ATTNC_BP_QK_RAW 1"));
    assert_int_equal(out.plan.bp_raw_stage[0], out.plan.bp_stage_off[0]);
    assert_int_equal(out.plan.bp_raw_stage[1], out.plan.bp_stage_off[1]);
    assert_int_equal(out.plan.bd_adj_smem, grad_bd_adj_smem(64, 128, 128, out.plan.bp_stage_bytes, false, 1));
    assert_int_equal(out.plan.bd_wy_smem, grad_bd_wy_smem(64, 128, 128, out.plan.bp_stage_bytes, 1));
    assert_non_null(strstr(out.source, "qkf[0] = l2inv"));
    unit_close(&u);
    /* the gated delta rule with its decay from its own logits (specs/gated_delta_rule.attn): the gate's
     * gradient per token, hi tiles alone, so the compact adjoint at two CTAs an SM with the gate's pair terms */
    lowered(&u, "attention g { dim K = 128, V = 128; heads H = 2;\n"
                "  input q: bf16[H, K]; input k: bf16[H, K]; input v: bf16[H, V]; input b: fp32[H]; input g: fp32[H];\n"
                "  linear { query = l2norm(q); key = l2norm(k); value = v; gate = logsigmoid(g);\n"
                "           beta = sigmoid(b); update delta; }\n"
                "  mask causal; chunk 32; }\n");
    assert_true(codegen_cuda_bwd_sched(u.m, u.arena, &u.diags, true, &out));
    assert_true(out.plan.parallel && out.plan.bp_delta && out.plan.bp_dg);
    assert_false(out.plan.bp_plo || out.plan.bp_slo);
    assert_true(out.plan.bd_adj_two);
    assert_int_equal(out.plan.bd_adj_warps, 8);
    assert_true(2 * (out.plan.bd_adj_smem + 1024) <= 228 * 1024);
    assert_non_null(strstr(out.source, "#define ATTNC_BD_ADJ2 1"));
    assert_true(out.plan.bd_walk_duh);   /* no lo tiles: the reverse walk stores dU_hat with its decay */
    assert_false(out.plan.bp_qk_raw);   /* (and the normalised rows rounded in its tiles, as FLA's) */
    assert_non_null(strstr(out.source, "#define ATTNC_BP_QK_RAW 0"));
    assert_true(out.plan.bd_duh16);
    assert_non_null(strstr(out.source, "#define ATTNC_BD_WALK_DUH 1"));
    /* and the chunk kernel in the compact layout too, its gate's pair sums over dO */
    assert_true(out.plan.bp_chunk_two);
    assert_int_equal(out.plan.bp_chunk_warps, 8);
    assert_int_equal(out.plan.bp_chunk_smem, grad_bp_chunk2_smem(64, 128, 128, out.plan.bp_stage_bytes, true));
    assert_true(out.plan.bp_chunk_smem > grad_bp_chunk2_smem(64, 128, 128, out.plan.bp_stage_bytes, false));
    assert_true(2 * (out.plan.bp_chunk_smem + 1024) <= 228 * 1024);
    assert_non_null(strstr(out.source, "#define ATTNC_BP_CHUNK2 1"));
    unit_close(&u);
}

/* The parallel plan's direct roles of a spec (bp_direct) as a mask: 1 query, 2 key, 4 value; and, where any
 * role is not direct, attnc_bwd_inputs still launched (bp_inputs_idle false). */
static unsigned direct_roles(const char *text)
{
    unit_src u;
    cg_bwd_output out;
    lowered(&u, text);
    assert_true(codegen_cuda_bwd_sched(u.m, u.arena, &u.diags, true, &out));
    assert_true(out.plan.parallel);
    unsigned mask = 0;
    for (int i = 0; i < 3; i++)
        mask |= out.plan.bp_direct[i] ? 1u << i : 0u;
    assert_non_null(strstr(out.source, mask & 1 ? "#define ATTNC_BP_DQ_TENSOR 0" : "#define ATTNC_BP_DQ_TENSOR -1"));
    if (mask != 7)
        assert_false(out.plan.bp_inputs_idle);
    unit_close(&u);
    return mask;
}

/* Which role gradients the chunk kernel writes into their tensors (bp_direct): a role that is the tensor as
 * stored, or the query that tensor times a constant (its K^-0.5, applied as the adjoint would), where
 * nothing else reads the tensor; not where something else does. */
static void test_direct_roles(void **state)
{
    (void)state;
    unit_src u;
    cg_bwd_output out;
    lowered(&u, "attention l { dim K = 128, V = 128; heads H = 4;\n"
                "  input q: bf16[H, K]; input k: bf16[H, K]; input v: bf16[H, V];\n"
                "  linear { query = q * K^-0.5; key = k; value = v; decay = 0.99; }\n  mask causal; chunk 64; }\n");
    assert_true(codegen_cuda_bwd_sched(u.m, u.arena, &u.diags, true, &out));
    assert_true(out.plan.parallel);
    assert_true(out.plan.bp_direct[0] && out.plan.bp_direct[1] && out.plan.bp_direct[2]);
    assert_int_equal(out.plan.bp_direct_tensor[0], 0);
    assert_true(fabs(out.plan.bp_direct_scale[0] - 1.0 / sqrt(128.0)) < 1e-15);
    assert_true(out.plan.bp_direct_scale[1] == 1.0 && out.plan.bp_direct_scale[2] == 1.0);
    assert_non_null(strstr(out.source, "#define ATTNC_BP_DQ_SCALE (0.0883883476f)"));
    assert_non_null(strstr(out.source, "#define ATTNC_BP_DK_SCALE (1.0f)"));
    assert_non_null(strstr(out.source, "// the query role's gradient is q's: the chunk kernel wrote it (p.direct)"));
    assert_non_null(strstr(out.source, "// q: written by the chunk kernel"));
    assert_true(out.plan.bp_inputs_idle);   /* q, k and v all the chunk kernel's: attnc_bwd_inputs not launched */
    unit_close(&u);
    /* the same query with a per-channel gate: its chunk kernel was slower writing it (passes/grad.c); q's and
     * gk's gradients are the adjoint's */
    assert_int_equal(direct_roles(gla_text), 2 | 4);
    /* q read twice (the query's product and the key): neither role's gradient is q's alone */
    assert_int_equal(direct_roles("attention g { dim K = 128, V = 128; heads H = 4;\n"
                                  "  input q: bf16[H, K]; input v: bf16[H, V];\n"
                                  "  linear { query = q * K^-0.5; key = q; value = v; }\n  mask causal; chunk 64; }\n"),
                     4);
    /* a scale that is not a constant (a parameter): the query is computed, its gradient goes through the adjoint */
    assert_int_equal(direct_roles("attention g { dim K = 128, V = 128; heads H = 4;\n"
                                  "  input q: bf16[H, K]; input k: bf16[H, K]; input v: bf16[H, V]; param s: fp32[H];\n"
                                  "  linear { query = q * s; key = k; value = v; }\n  mask causal; chunk 64; }\n"),
                     2 | 4);
}

/* DeltaNet's roles with k read twice (the key's l2norm and the value): the key's l2norm stays the adjoint's */
static const char *const delta_key_read_twice =
    "attention d { dim K = 128, V = 128; heads H = 4;\n"
    "  input q: bf16[H, K]; input k: bf16[H, K]; input b: bf16[H];\n"
    "  linear { query = l2norm(q); key = l2norm(k); value = k; beta = sigmoid(b); update delta; }\n"
    "  mask causal; chunk 32; }\n";

/* The delta rule's l2-normed query and key (DeltaNet's l2norm(q) * K^-0.5, l2norm(k)): their tensors' gradients
 * are written by the chunk kernel (the query) and the WY adjoint (the key), which apply the l2norm's adjoint on
 * their fragments (bp_direct_l2); the adjoint kernel no longer evaluates them.  Not where the tensor is read
 * elsewhere, nor for a query whose K is not a multiple of 32 (its row sums would not fit the chunk kernel's ek). */
static void test_delta_l2_roles(void **state)
{
    (void)state;
    unit_src u;
    cg_bwd_output out;
    lowered(&u, "attention d { dim K = 128, V = 128; heads H = 4;\n"
                "  input q: bf16[H, K]; input k: bf16[H, K]; input v: bf16[H, V]; input b: bf16[H];\n"
                "  linear { query = l2norm(q) * K^-0.5; key = l2norm(k); value = v; beta = sigmoid(b); update delta; }\n"
                "  mask causal; chunk 32; }\n");
    assert_true(codegen_cuda_bwd_sched(u.m, u.arena, &u.diags, true, &out));
    assert_true(out.plan.parallel && out.plan.bp_delta);
    assert_true(out.plan.bp_direct[0] && out.plan.bp_direct[1] && out.plan.bp_direct[2]);
    assert_true(out.plan.bp_direct_l2[0] && out.plan.bp_direct_l2[1] && !out.plan.bp_direct_l2[2]);
    assert_int_equal(out.plan.bp_direct_tensor[0], 0);
    assert_int_equal(out.plan.bp_direct_tensor[1], 1);
    assert_true(fabs(out.plan.bp_direct_scale[0] - 1.0 / sqrt(128.0)) < 1e-15 && out.plan.bp_direct_scale[1] == 1.0);
    assert_non_null(strstr(out.source, "#define ATTNC_BP_DQ_L2 1"));
    assert_non_null(strstr(out.source, "#define ATTNC_BP_DK_L2 1"));
    assert_non_null(strstr(out.source, "// q: written by the chunk kernel"));
    assert_non_null(strstr(out.source, "// k: written by the WY adjoint"));
    assert_non_null(strstr(out.source, "// the key role's gradient is k's: the WY adjoint wrote it (p.direct)"));
    assert_null(strstr(out.source, "// l2norm: dx"));   /* the adjoint kernel forms no l2norm gradient */
    assert_false(out.plan.bp_inputs_idle);              /* b's is still its */
    /* and b's sigmoid is all it has left: a thread per (token, head) */
    assert_true(out.plan.bp_inputs_scalar);
    assert_non_null(strstr(out.source, "#define ATTNC_B_ADJ_SCALAR 1"));
    unit_close(&u);
    /* the key's l2norm left to the adjoint (read twice): vectors, a warp per (token, head) */
    lowered(&u, delta_key_read_twice);
    assert_true(codegen_cuda_bwd_sched(u.m, u.arena, &u.diags, true, &out));
    assert_false(out.plan.bp_inputs_scalar);
    assert_non_null(strstr(out.source, "#define ATTNC_B_ADJ_SCALAR 0"));
    unit_close(&u);
    /* k read twice (the key's l2norm and the value): neither is direct; K = 80: the key only */
    assert_int_equal(direct_roles(delta_key_read_twice), 1);
    assert_int_equal(direct_roles("attention d { dim K = 80, V = 48; heads H = 4;\n"
                                  "  input q: bf16[H, K]; input k: bf16[H, K]; input v: bf16[H, V]; input b: bf16[H];\n"
                                  "  linear { query = l2norm(q); key = l2norm(k); value = v; beta = sigmoid(b); update delta; }\n"
                                  "  mask causal; chunk 32; }\n"),
                     2 | 4);
    /* the additive schedule keeps an l2-normed role's workspace (its kernels do not apply the norm's adjoint) */
    assert_int_equal(direct_roles("attention a { dim K = 128, V = 128; heads H = 4;\n"
                                  "  input q: bf16[H, K]; input k: bf16[H, K]; input v: bf16[H, V];\n"
                                  "  linear { query = l2norm(q); key = l2norm(k); value = v; decay = 0.99; }\n"
                                  "  mask causal; chunk 64; }\n"),
                     4);
}

/* The images the forward's walk saves for the backward (codegen/cuda.c's cg_saved_image_kind): the delta rule
 * with a decay from its own logits and DeltaNet save bf16 images, from the warp-specialised walk too (one unit,
 * ATTNC_SAVES for both walks); Gated DeltaNet's A_log (summed over every token) saves none. */
static void test_saved_images(void **state)
{
    (void)state;
    static const char *const specs[] = {
        "attention g { dim K = 128, V = 128; heads H = 2;\n"
        "  input q: bf16[H, K]; input k: bf16[H, K]; input v: bf16[H, V]; input b: fp32[H]; input g: fp32[H];\n"
        "  linear { query = l2norm(q); key = l2norm(k); value = v; gate = logsigmoid(g); beta = sigmoid(b); update delta; }\n"
        "  mask causal; chunk 32; }\n",
        "attention d { dim K = 128, V = 128; heads H = 2;\n"
        "  input q: bf16[H, K]; input k: bf16[H, K]; input v: bf16[H, V]; input b: bf16[H];\n"
        "  linear { query = l2norm(q); key = l2norm(k); value = v; beta = sigmoid(b); update delta; }\n"
        "  mask causal; chunk 32; }\n",
        "attention g { dim K = 128, V = 128; heads H = 2;\n"
        "  input q: bf16[H, K]; input k: bf16[H, K]; input v: bf16[H, V]; input b: bf16[H]; input a: bf16[H];\n"
        "  param A_log: fp32[H];\n"
        "  linear { query = l2norm(q); key = l2norm(k); value = v; gate = -exp(A_log) * softplus(a);\n"
        "           beta = sigmoid(b); update delta; }\n"
        "  mask causal; chunk 32; }\n",
    };
    const cg_saved_images kind[] = {CG_SAVED_BF16, CG_SAVED_BF16, CG_SAVED_NONE};
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) {
        unit_src u;
        lowered(&u, specs[i]);
        uint32_t slice;
        assert_int_equal(cg_saved_image_kind(u.m, &slice), kind[i]);
        cg_output out;
        assert_true(codegen_cuda(u.m, u.arena, &u.diags, &out));
        assert_int_equal(out.kernels[0].kind, CG_KERNEL_LINEAR);
        assert_non_null(out.kernels[0].ws.entry);
        assert_non_null(strstr(out.source, kind[i] == CG_SAVED_BF16 ? "#define ATTNC_SAVES 1\n" : "#define ATTNC_SAVES 0\n"));
        unit_close(&u);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diag_gate),     cmocka_unit_test(test_scalar_and_const),
        cmocka_unit_test(test_shared_value),  cmocka_unit_test(test_not_generated),
        cmocka_unit_test(test_smem_budget),   cmocka_unit_test(test_norms),
        cmocka_unit_test(test_delta),         cmocka_unit_test(test_mlstm),
        cmocka_unit_test(test_parallel_schedule), cmocka_unit_test(test_direct_roles),
        cmocka_unit_test(test_delta_l2_roles), cmocka_unit_test(test_saved_images),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
