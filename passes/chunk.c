/* passes/chunk.c: the chunking pass.
 *
 * Splits the recurrence into the intra-chunk part (a masked C x C block with its pairwise decay
 * factors e^{b_r - b_j}, b the chunk-local cumulative log gate) and the inter-chunk part (the carried
 * state), by transition class (algorithms.md 1.2):
 *   identity / const / scalar  the pairwise factor is one number per (r, j): the block is a plain matmul
 *                              followed by an elementwise factor;
 *   diag                       per-channel factors: the block is formed in sub-chunks of 16 rows around a
 *                              reference row, so that every exponent is <= 0 (algorithms.md 2.4(b), way 2);
 *   householder                the delta family adds the WY/UT stage: Akk, T = (I + Akk)^-1 per chunk,
 *                              W = T diag(beta) (K * gamma), U = T diag(beta) V, U_hat = U - W S_in;
 *   stabilized                 mLSTM carries its running max m with the state and stabilises per row.
 * The chunk is the spec's, or 64 (`chunk auto`): the size every FLA kernel and the tensor-core tiles
 * favour at K = V = 128 (algorithms.md 5, "Chunk-size trade-off").
 */
#include "passes.h"

bool pass_chunk(ir_module *m, const pass_options *opt, attnc_diags *diags)
{
    (void)opt;
    (void)diags;
    ir_plan *p = &m->plan;
    const ir_linear *l = &m->linear;
    p->chunk = m->chunk ? m->chunk : 64;
    if (l->present) {
        static const uint8_t cls[] = {[IR_DECAY_NONE] = IR_TR_IDENTITY, [IR_DECAY_CONST] = IR_TR_CONST,
                                      [IR_DECAY_SCALAR] = IR_TR_SCALAR, [IR_DECAY_VECTOR] = IR_TR_DIAG};
        p->transition = cls[l->decay];
        p->householder = l->update == IR_UPDATE_DELTA;
        p->stabilized = l->norm == IR_NORM_MAXFLOOR;
        p->subchunk = p->transition == IR_TR_DIAG ? (p->chunk < 16 ? p->chunk : 16) : 0;
    }
    p->stage = IR_PLAN_CHUNKED;
    return true;
}
