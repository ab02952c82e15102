/* tests/unit/test_tile.c: the tiling pass's choices (passes/tile.c) for the shapes the benchmark and the
 * spec library use: all of V in one CTA of 8 warps where the state fits their registers, the chunk a
 * per-channel gate or the stabiliser takes with it, KDA's slices, whole rows for RMS outputs, and wider V
 * split into slices; every choice within the registers and shared memory the pass promises; scores shared
 * between column groups for per-channel gates only, and the verifier's refusal of them with a norm. */
#include "test_util.h"

#include "passes.h"

typedef struct tile_want {
    uint32_t chunk, v_tile, warps, col_groups, state_groups;
    bool shared_scores;
} tile_want;

/* Lowers `text` through the tile pass and compares the plan with `w`. */
static void check_tiles(const char *text, tile_want w)
{
    unit_src u;
    unit_spec(&u, text);
    assert_non_null(u.m);
    assert_int_equal(u.diags.errors, 0);
    pass_options po = {0};
    assert_true(passes_run(u.m, &po, passes_find("tile"), &u.diags));
    const ir_plan *p = &u.m->plan;
    assert_int_equal(p->chunk, w.chunk);
    assert_int_equal(p->v_tile, w.v_tile);
    assert_int_equal(p->warps, w.warps);
    assert_int_equal(p->col_groups, w.col_groups);
    assert_int_equal(p->state_groups, w.state_groups);
    assert_int_equal(p->shared_scores, w.shared_scores);
    assert_int_equal(p->warps, p->chunk / 16 * p->col_groups);
    /* the state's accumulators per thread stay at or under 64 */
    uint32_t mtiles = p->k_pad / 16, group_warps = p->warps / p->state_groups;
    assert_true((mtiles + group_warps - 1) / group_warps * (p->v_tile / 8 / p->state_groups) * 4 <= 64);
    assert_true(tile_linear_smem_bytes(u.m) <= 227u * 1024u);
    unit_close(&u);
}

#define HEAD "attention t { dim K = 128, V = 128; heads H = 4;\n" \
             "  input q: bf16[H, K]; input k: bf16[H, K]; input v: bf16[H, V];\n"

static void scalar_decay_takes_all_of_v(void **state)
{
    (void)state;
    /* K = V = 128, chunk 64: 4 row groups x 2 column groups, one V slice */
    check_tiles(HEAD "  input g: fp32[H];\n"
                     "  linear { query = q; key = k; value = v; gate = -softplus(g); }\n"
                     "  mask causal; chunk 64; }\n", (tile_want){64, 128, 8, 2, 2, false});
    /* chunk 32: 2 row groups x 4 column groups */
    check_tiles(HEAD "  linear { query = q; key = k; value = v; decay = 0.99; }\n"
                     "  mask causal; chunk 32; }\n", (tile_want){32, 128, 8, 4, 2, false});
}

static void per_channel_gates_take_chunk_32(void **state)
{
    (void)state;
    /* gla at chunk 64 spilled with all of V: the pass takes 32 and 4 column groups, which share the scores */
    check_tiles(HEAD "  input gk: bf16[H, K];\n"
                     "  linear { query = q * K^-0.5; key = k; value = v; gate = logsigmoid(gk) / 16; }\n"
                     "  mask causal; chunk 64; }\n", (tile_want){32, 128, 8, 4, 2, true});
}

static void kda_keeps_its_slices(void **state)
{
    (void)state;
    /* per-channel gates and the delta rule: 64-column slices, the chunk halved for shared memory */
    check_tiles(HEAD "  input gk: bf16[H, K]; input b: bf16[H];\n"
                     "  linear { query = l2norm(q); key = l2norm(k); value = v; gate = logsigmoid(gk) / 16;\n"
                     "           beta = sigmoid(b); update delta; }\n"
                     "  mask causal; chunk 64; }\n", (tile_want){32, 64, 8, 4, 1, true});
}

static void wide_v_is_sliced(void **state)
{
    (void)state;
    /* V = 256: all of V would need 128 accumulators a thread; 64-column slices of 8 warps at chunk 64 */
    check_tiles("attention t { dim K = 128, V = 256; heads H = 4;\n"
                "  input q: bf16[H, K]; input k: bf16[H, K]; input v: bf16[H, V]; input g: fp32[H];\n"
                "  linear { query = q; key = k; value = v; gate = -softplus(g); }\n"
                "  mask causal; chunk 64; }\n", (tile_want){64, 64, 8, 2, 1, false});
}

/* Shared scores need a whole row of P in one warp to be unnecessary: the verifier refuses them with a
 * normaliser (and where the plan has one column group). */
static void verifier_refuses_shared_scores_with_a_norm(void **state)
{
    (void)state;
    unit_src u;
    unit_spec(&u, HEAD "  input gk: bf16[H, K];\n"
                       "  linear { query = q; key = k; value = v; gate = logsigmoid(gk) / 16;\n"
                       "           normalize rmsnorm(1e-5); }\n"
                       "  mask causal; }\n");
    assert_non_null(u.m);
    pass_options po = {0};
    assert_true(passes_run(u.m, &po, passes_find("tile"), &u.diags));
    assert_false(u.m->plan.shared_scores);
    assert_true(ir_verify(u.m, &u.diags));
    u.m->plan.shared_scores = true;
    assert_false(ir_verify(u.m, &u.diags));
    assert_string_equal(u.diags.list[u.diags.n - 1].message,
                        "plan: shared scores need a causal mask, several column groups, no normaliser and no stabiliser");
    unit_close(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(scalar_decay_takes_all_of_v),
        cmocka_unit_test(per_channel_gates_take_chunk_32),
        cmocka_unit_test(kda_keeps_its_slices),
        cmocka_unit_test(wide_v_is_sliced),
        cmocka_unit_test(verifier_refuses_shared_scores_with_a_norm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
