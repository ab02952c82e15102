/* tests/unit/test_staging.c: the generated staging's choices (codegen/emit_value.c's cg_emit_stage_issue and
 * cg_emit_stage_held, codegen/cuda.c): rows of 2 bytes, which have no cp.async, held in registers between a
 * walk's issue and its land (forward and backward walks); the forward walk's copies unrolled only where a
 * thread issues at most two a tensor (measured on the H200: faster at chunk 32, slower at chunk 64, and
 * three spilled), the backward walks' never, its chunk kernels' always.  The generated text only: no NVRTC. */
#include "test_util.h"

#include <string.h>

#include "attnc.h"

typedef struct emitted {
    attnc_ctx *ctx;
    attnc_spec *spec;
    attnc_blob fwd, bwd;
} emitted;

static void emit_both(emitted *e, const char *path)
{
    memset(e, 0, sizeof *e);
    assert_int_equal(attnc_ctx_new(&e->ctx), ATTNC_OK);
    assert_int_equal(attnc_spec_from_file(e->ctx, path, &e->spec), ATTNC_OK);
    assert_int_equal(attnc_emit(e->ctx, e->spec, ATTNC_EMIT_CUDA, NULL, &e->fwd), ATTNC_OK);
    assert_int_equal(attnc_emit_grad(e->ctx, e->spec, ATTNC_EMIT_CUDA, NULL, &e->bwd), ATTNC_OK);
}

static void emitted_free(emitted *e)   /* the blobs are the spec's */
{
    attnc_spec_free(e->spec);
    attnc_ctx_free(e->ctx);
}

static bool has(const attnc_blob *b, const char *text)
{
    return strstr((const char *)b->data, text) != NULL;
}

/* The delta rule at chunk 32: beta (bf16, 2 bytes a token) held in registers in both walks, which land it
 * before they wait, each thread the pieces it issued (the forward's staging threads: the warp-specialised
 * walk's producers there); the forward's 16-byte copies (two a thread) unrolled, each input's behind the roles
 * it feeds; the backward's likewise, by the roles each kernel reads. */
static void two_byte_rows_are_held_and_chunk_32_unrolls(void **state)
{
    (void)state;
    emitted e;
    emit_both(&e, ATTNC_SOURCE_DIR "/specs/deltanet.attn");
    assert_true(has(&e.fwd, "#define ATTNC_STAGE_UNROLL 1\n"));
    assert_true(has(&e.fwd, "struct attnc_stage_held {\n    unsigned short x[1 + (ATTNC_C * 1 + ATTNC_STAGE_THREADS - 1) / "
                            "ATTNC_STAGE_THREADS];"));
    assert_true(has(&e.fwd, "const unsigned i = ATTNC_STAGE_TID + j * ATTNC_STAGE_THREADS;\n"
                            "            if (i < ATTNC_C * 1u)"));
    assert_true(has(&e.bwd, "const unsigned i = threadIdx.x + j * ATTNC_B_THREADS;\n"));
    assert_true(has(&e.fwd, "// b: rows of 2 bytes, 2-byte loads held in registers"));
    assert_true(has(&e.fwd, "attnc_stage_held_land<ROLES>(stage, held);\n            attnc_stage_wait();"));
    /* each input copied only where the body forms a role it feeds (the split passes' lean bodies) */
    assert_true(has(&e.fwd, "if constexpr (WANT & 1u) {   // q: rows of 256 bytes"));
    assert_true(has(&e.fwd, "if constexpr (WANT & 4u) {   // v: rows of 256 bytes"));
    assert_true(has(&e.fwd, "if constexpr (WANT & 16u) {   // b: rows of 2 bytes, 2-byte loads held in registers"));
    /* the backward's too, by the roles each kernel reads (bp_stage_want: no q rows in the WY kernels, no v in
     * the delta rule's chunk kernel) */
    assert_true(has(&e.bwd, "if constexpr (WANT & 1u) {   // q: rows of 256 bytes"));
    assert_true(has(&e.bwd, "if constexpr (WANT & 4u) {   // v: rows of 256 bytes"));
    assert_true(has(&e.bwd, "template <bool UNROLL, unsigned WANT = ATTNC_ROLES_ALL>"));
    assert_true(has(&e.bwd, "struct attnc_bwd_stage_held {"));
    assert_true(has(&e.bwd, "attnc_bwd_stage_held_land(stage, held);\n        attnc_stage_wait();"));
    assert_true(has(&e.bwd, "attnc_bwd_stage_issue<false, SW>(p, c0, eos, h, stage, held);"));
    assert_true(has(&e.bwd, "attnc_bwd_stage_issue<true, bp_stage_want(ATTNC_ROLE_K | ATTNC_ROLE_V)>(p, c0, eos, h, bsm + L::stage);"));
    emitted_free(&e);
}

/* Mamba-2 at chunk 64: four 16-byte copies a thread, so the forward keeps the loop; no row of 2 bytes (dt is
 * fp32: 4-byte copies), so nothing is held. */
static void chunk_64_keeps_the_loop(void **state)
{
    (void)state;
    emitted e;
    emit_both(&e, ATTNC_SOURCE_DIR "/specs/mamba2.attn");
    assert_true(has(&e.fwd, "#define ATTNC_STAGE_UNROLL 0\n"));
    assert_true(has(&e.fwd, "struct attnc_stage_held {\n    unsigned short x[1];"));
    assert_false(has(&e.fwd, "loads held in registers"));
    assert_true(has(&e.fwd, "// dt: rows of 4 bytes, 4-byte copies"));
    emitted_free(&e);
}

/* V = 192 at chunk 32: rows of 384 bytes are three 16-byte copies a thread, which spilled unrolled. */
static void three_copies_keep_the_loop(void **state)
{
    (void)state;
    emitted e;
    emit_both(&e, ATTNC_SOURCE_DIR "/tests/specs/kv_asym_retnet.attn");
    assert_true(has(&e.fwd, "#define ATTNC_STAGE_UNROLL 0\n"));
    emitted_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(two_byte_rows_are_held_and_chunk_32_unrolls),
        cmocka_unit_test(chunk_64_keeps_the_loop),
        cmocka_unit_test(three_copies_keep_the_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
