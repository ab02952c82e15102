/* codegen/cuda_bwd_softmax.c: the softmax part's backward kernels and the bidirectional linear part's
 * (cuda_bwd_softmax.h; passes/grad_softmax.c plans them).
 *
 * The translation unit's operand type (ATTNC_ELT_F16, ATTNC_SPLIT, emitted by cuda_bwd.c) is the plan's,
 * as in the forward, when there is a softmax part: its kernel stages its tiles in it.
 * The softmax part's roles are inputs as stored, the query possibly scaled by a constant c (the forward
 * generator's restriction, which grad_softmax_plan checks): the kernels read q, k and v from the input
 * tensors and fold c into the score scale, and their gradients are those of the roles (c q, k, v), which
 * cuda_bwd.c's value-DAG adjoint then takes to the tensors (through c for the query) like any role's.
 */
#include "cuda_bwd_softmax.h"

#include "emit_value.h"

extern const char attnc_softmax_bwd_kernel_src[];
extern const char attnc_linear_bidir_bwd_kernel_src[];

void cg_bwd_emit_softmax(const ir_module *m, const grad_plan *gp, attnc_buf *b)
{
    const ir_plan *p = &m->plan;
    const ir_softmax *sm = &m->softmax;
    double c = p->feed[IR_ROLE_SM_QUERY] == IR_FEED_SCALED ? p->scale[IR_ROLE_SM_QUERY] : 1.0;
    attnc_buf_printf(b, "\n// ---- the softmax part's backward (passes/grad_softmax.c): %s%s, tiles of %u rows ----\n",
                     m->mask == IR_MASK_CAUSAL ? "causal" : "bidirectional", sm->window ? ", sliding window" : "",
                     gp->sm_tile);
    attnc_buf_printf(b, "#define ATTNC_SB_D %u\n#define ATTNC_SB_V %u\n#define ATTNC_SB_DP %u\n#define ATTNC_SB_VP %u\n"
                        "#define ATTNC_SB_TILE %u\n#define ATTNC_SB_CAUSAL %d\n"
                        "#define ATTNC_SB_WINDOW %u\n#define ATTNC_SB_SMEM_BYTES %u\n#define ATTNC_SB_QSCALE ",
                     gp->sm_d, gp->sm_v, (gp->sm_d + 15) / 16 * 16, (gp->sm_v + 15) / 16 * 16, gp->sm_tile,
                     m->mask == IR_MASK_CAUSAL, m->mask == IR_MASK_CAUSAL ? sm->window : 0, gp->sm_smem_bytes);
    cg_put_float(b, c);
    attnc_buf_puts(b, "   // the query role's constant\n#define ATTNC_SB_SCALE ");
    cg_put_float(b, c * 1.4426950408889634);
    attnc_buf_puts(b, "   // times log2(e): scores in log2 units\n");
    static const struct { ir_role role; const char *tag; } roles[] = {
        {IR_ROLE_SM_QUERY, "Q"}, {IR_ROLE_SM_KEY, "K"}, {IR_ROLE_SM_VALUE, "V"}};
    for (size_t i = 0; i < 3; i++) {
        uint32_t ti = m->values[p->feed_src[roles[i].role]].aux;
        const ir_tensor *t = &m->tensors[ti];
        attnc_buf_printf(b, "#define ATTNC_SB_%sIN %u\n#define ATTNC_SB_%sDT %s\n#define ATTNC_SB_H%s %u\n", roles[i].tag, ti,
                         roles[i].tag, cg_dtype_macro(t->dtype), roles[i].tag, m->axes[t->axis].count);
    }
    attnc_buf_puts(b, attnc_softmax_bwd_kernel_src);
    attnc_buf_puts(b, "static_assert(attnc_sb_layout::bytes == ATTNC_SB_SMEM_BYTES, \"host and kernel disagree on shared memory\");\n");
}

void cg_bwd_emit_bidir(attnc_buf *b)
{
    attnc_buf_puts(b, attnc_linear_bidir_bwd_kernel_src);
}
