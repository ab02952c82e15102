/* passes/grad_softmax.c: the backward plan of the softmax part and of the bidirectional linear part
 * (grad.h; passes/grad.c calls it; the kernels are codegen/softmax_bwd_kernel.cuh and
 * codegen/linear_bidir_bwd_kernel.cuh).
 *
 * Softmax part (algorithms.md 2.8(d)): FlashAttention-2's backward.  Nothing
 * is taken from the forward: the row statistics are recomputed (the forward kernel does not store its
 * log-sum-exp, and in a hybrid the output it writes is the sum of both parts, so Delta = dO . O_softmax
 * cannot be read from it either).  One pass over a query tile's key band recomputes, online, the row max
 * m, the sum l and acc = sum_j e^{s_j - m} (dO . v_j); then lse = m + log l and Delta = acc / l
 * (= dO . O_softmax), which go to an fp32 workspace [T, H_out] (8 bytes per row and head).  Two kernels
 * then recompute the scores tile by tile from q and k and that lse:
 *   rows: per query tile, dQ = dS K (a second pass over the same band, on chip);
 *   kv:   per key tile, over the query tiles that see it, dV = P^T dO and dK = dS^T Q,
 * with P = e^{s - lse} and dS = P o (dO V^T - Delta).  Splitting dQ from dK/dV this way is what keeps
 * every sum in a fixed order without atomics.  The five products run on the tensor cores with the
 * forward's operands (bf16 or fp16 tiles, or fp32 tiles split into three bf16 products for fp32 inputs);
 * statistics, masks, P and dS are formed in fp32, and P and dS rounded to the operand type for the
 * second products, as FlashAttention-2 does.  The role gradients go, per (token, output head), to fp32
 * workspaces and through the value DAG's adjoint (cuda_bwd.c) like the linear roles'; heads sharing a key
 * or value head (GQA) are summed by the fixed-order per-head reduction that already sums the linear
 * part's shared heads.  The tile is 64 rows, 32 when those tiles exceed a CTA's shared memory.
 *
 * Bidirectional linear part (mask none; additive, no decay, checked by ir_verify): o_t = post(q_t S),
 * S = S_0 + sum_j k_j [v_j | 1]^T over the whole sequence.  Three walks over the chunks: S; then per
 * chunk x = Q S (the pre-norm output, recomputed rather than saved, as in the causal walks), d(x) from dO
 * through the norm's backward, dQ = d(x) S^T and dS += Q^T d(x) (dS starts at dhT, dzT for the group's
 * first head); then dK = [V | 1] dS^T, dV = K dS, and dh0 = dS.
 */
#include "grad.h"

#define GRAD_MAX_SMEM (227u * 1024u)

static unsigned round128(unsigned floats)
{
    return (floats * 4 + 127) / 128 * 128;
}

static uint32_t pad16(uint32_t x)
{
    return (x + 15) / 16 * 16;
}

unsigned grad_sm_smem_bytes(uint32_t T, uint32_t D, uint32_t V, uint32_t eb)
{
    uint32_t elts = 2 * T * (pad16(D) + 8) + 2 * T * (pad16(V) + 8) + 2 * T * (T + 8);
    return (elts * eb + (2 * T * (T + 1) + 3 * T) * 4 + 127) / 128 * 128;
}

unsigned grad_bidir_smem_bytes(uint32_t C, uint32_t K, uint32_t V)
{
    return round128(2 * C * (K + 1) + 3 * C * (V + 1) + 2 * K * (V + 1) + C);
}

bool grad_softmax_plan(const ir_module *m, grad_plan *gp)
{
    const ir_plan *p = &m->plan;
    static const ir_role roles[] = {IR_ROLE_SM_QUERY, IR_ROLE_SM_KEY, IR_ROLE_SM_VALUE};
    for (size_t i = 0; i < 3; i++) {
        ir_feed f = (ir_feed)p->feed[roles[i]];
        if (f != IR_FEED_DIRECT && !(f == IR_FEED_SCALED && roles[i] == IR_ROLE_SM_QUERY))
            return false;
    }
    gp->softmax = true;
    gp->sm_d = m->tensors[m->values[p->feed_src[IR_ROLE_SM_QUERY]].aux].len;
    gp->sm_v = m->tensors[m->values[p->feed_src[IR_ROLE_SM_VALUE]].aux].len;
    /* 64 rows (4 row blocks x 2 column groups of the 8 warps), else 32 (2 x 4), whose column groups are
     * whole n-tiles only when the padded head dims are multiples of 32 */
    uint32_t eb = ir_operand_bytes(p->operands);
    gp->sm_tile = 64;
    if (grad_sm_smem_bytes(64, gp->sm_d, gp->sm_v, eb) > GRAD_MAX_SMEM) {
        gp->sm_tile = 32;
        if (pad16(gp->sm_d) % 32 || pad16(gp->sm_v) % 32)
            return false;
    }
    gp->sm_smem_bytes = grad_sm_smem_bytes(gp->sm_tile, gp->sm_d, gp->sm_v, eb);
    return gp->sm_smem_bytes <= GRAD_MAX_SMEM;
}

bool grad_bidir_plan(const ir_module *m, grad_plan *gp)
{
    (void)m;
    gp->bidir = true;
    gp->chunk = 32;
    while (gp->chunk > 8 && grad_bidir_smem_bytes(gp->chunk, gp->K, gp->V) > GRAD_MAX_SMEM)
        gp->chunk /= 2;
    gp->smem_bytes = grad_bidir_smem_bytes(gp->chunk, gp->K, gp->V);
    return gp->smem_bytes <= GRAD_MAX_SMEM;
}
