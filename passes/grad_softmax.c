/* passes/grad_softmax.c: the backward plan of the softmax part and of the bidirectional linear part
 * (grad.h; passes/grad.c calls it; the kernels are codegen/softmax_bwd_kernel.cuh and
 * codegen/linear_bidir_bwd_kernel.cuh).
 *
 * Softmax part (algorithms.md 2.8(d)): FlashAttention-2's backward, in fp32 on the CUDA cores.  Nothing
 * is taken from the forward: the row statistics are recomputed (the forward kernel does not store its
 * log-sum-exp, and in a hybrid the output it writes is the sum of both parts, so Delta = dO . O_softmax
 * cannot be read from it either).  One pass over a query tile's key band recomputes, online, the row max
 * m, the sum l and acc = sum_j e^{s_j - m} (dO . v_j); then lse = m + log l and Delta = acc / l
 * (= dO . O_softmax), which go to an fp32 workspace [T, H_out] (8 bytes per row and head).  Two kernels
 * then recompute the scores tile by tile from q and k and that lse:
 *   rows: per query tile, dQ = dS K (a second pass over the same band, on chip);
 *   kv:   per key tile, over the query tiles that see it, dV = P^T dO and dK = dS^T Q,
 * with P = e^{s - lse} and dS = P o (dO V^T - Delta).  Splitting dQ from dK/dV this way is what keeps
 * every sum in a fixed order without atomics.  The role gradients go, per (token, output head), to fp32
 * workspaces and through the value DAG's adjoint (cuda_bwd.c) like the linear roles'; heads sharing a key
 * or value head (GQA) are summed by the fixed-order per-head reduction that already sums the linear
 * part's shared heads.  The tile is 64 rows, halved while the tiles exceed a CTA's shared memory.
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

unsigned grad_sm_smem_bytes(uint32_t T, uint32_t D, uint32_t V)
{
    return round128(2 * T * (D + 1) + 2 * T * (V + 1) + 2 * T * (T + 1) + 3 * T);
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
    gp->sm_tile = 64;
    while (gp->sm_tile > 16 && grad_sm_smem_bytes(gp->sm_tile, gp->sm_d, gp->sm_v) > GRAD_MAX_SMEM)
        gp->sm_tile /= 2;
    gp->sm_smem_bytes = grad_sm_smem_bytes(gp->sm_tile, gp->sm_d, gp->sm_v);
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
