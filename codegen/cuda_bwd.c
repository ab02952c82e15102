/* codegen/cuda_bwd.c: the CUDA C generator of the backward (cuda_bwd.h; passes/grad.c plans it).
 *
 * The translation unit: a header comment, support.cuh, the parameter block attnc_bwd_params, the
 * ATTNC_B_* constants of the plan, two generated functions, then the fixed kernel bodies of
 * linear_bwd_kernel.cuh (its causal walks only for a causal linear part in the sequential schedule;
 * with the chunk-parallel schedule, codegen_cuda_bwd_sched's parallel, the ATTNC_BP_* constants and
 * linear_bwd_par_kernel.cuh instead), and from cuda_bwd_softmax.c
 * linear_bidir_bwd_kernel.cuh (mask none) and the softmax part's constants and softmax_bwd_kernel.cuh.  The generated functions print the spec's value DAG as straight-line code, one
 * warp per (token, output head):
 *   - attnc_bwd_roles evaluates the values the linear roles reach (forward) and stores the fp32 rows of
 *     q, k, v and the log gate (the parallel schedule: attnc_bwd_roles_staged from the chunk's staged
 *     rows, and attnc_bwd_roles_regs, the same values in registers, slot s of a role channel lane + 32 s);
 *   - attnc_bwd_adjoint evaluates them again, seeds the roles' adjoints with the role gradients from the
 *     workspaces (the linear part's and the softmax part's: where both parts read one value, both add), and applies one adjoint rule per op in reverse SSA order (the rules of
 *     reference/ref_eval.c: kinks take the branch the forward took, a broadcast scalar operand sums its
 *     adjoint over the channels, only values that read a tensor get adjoints), ending in the tensors'
 *     partial gradients of this (token, head).
 * Value layout: a scalar is one float that every lane holds; a vector of length L is ceil(L/32) floats
 * per lane, slot s holding channel 32 s + lane (0 past L, so whole-vector sums see only real channels).
 * The forward code of the values is emit_value.c's, shared with the forward generator (CG_LAYOUT_LANE,
 * inputs from global memory, min/max selected as the reference does); the adjoint rules are here.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "attnc.h"
#include "codegen.h"
#include "cuda_bwd.h"
#include "cuda_bwd_softmax.h"
#include "emit_value.h"

extern const char attnc_support_src[];
extern const char attnc_linear_bwd_kernel_src[];
extern const char attnc_linear_bwd_par_kernel_src[];
extern const char attnc_linear_bwd_delta_kernel_src[];

typedef struct bgen {
    const ir_module *m;
    const grad_plan *gp;
    attnc_buf b;
    cg_values ev;   /* the value emitter: into b, layout CG_LAYOUT_LANE, inputs from global memory */
} bgen;

static unsigned nslots(unsigned len)
{
    return cg_slots(CG_LAYOUT_LANE, len);
}

static unsigned vlen(const bgen *g, ir_ref r)
{
    return g->m->values[r].type.len;
}

static void put_ref(bgen *g, char prefix, ir_ref r, unsigned s)
{
    cg_put_ref(&g->ev, prefix, r, s);
}

/* The live values (the roles' functions), or (adjoint) those the adjoint reads: the values it forms a
 * gradient for (needs) and their operands, not those only a direct role reads (passes/grad.c's
 * drop_direct_chains), whose loads and l2norms' warp sums would stay in the kernel for nothing. */
static void emit_forward_values(bgen *g, bool adjoint)
{
    const ir_module *m = g->m;
    for (ir_ref r = 1; r < m->nvalues; r++) {
        bool read = !adjoint || g->gp->needs[r];
        for (ir_ref u = r + 1; u < m->nvalues && !read; u++)
            for (int k = 0; k < ir_op_arity((ir_op)m->values[u].op); k++)
                read |= g->gp->needs[u] && m->values[u].arg[k] == r;
        if (g->gp->live[r] && read)
            cg_emit_value(&g->ev, r);
    }
}

/* d/d(operand `which`) of elementwise op `op` times the adjoint g_, in terms of x (operand 0), w (operand
 * 1) and y (the result): the rules of reference/ref_eval.c. */
static const char *adjoint_rule(ir_op op, int which)
{
    switch (op) {
    case IR_OP_NEG: return "-g_";
    case IR_OP_ADD: return "g_";
    case IR_OP_SUB: return which ? "-g_" : "g_";
    case IR_OP_MUL: return which ? "g_ * x" : "g_ * w";
    case IR_OP_DIV: return which ? "-g_ * x / (w * w)" : "g_ / w";
    case IR_OP_POW: return which ? "g_ * y * logf(x)" : "g_ * w * powf(x, w - 1.f)";
    case IR_OP_MIN: return which ? "(x < w ? 0.f : g_)" : "(x < w ? g_ : 0.f)";
    case IR_OP_MAX: return which ? "(x > w ? 0.f : g_)" : "(x > w ? g_ : 0.f)";
    case IR_OP_EXP: return "g_ * y";
    case IR_OP_LOG: return "g_ / x";
    case IR_OP_SQRT: return "0.5f * g_ / y";
    case IR_OP_RSQRT: return "-0.5f * g_ * y * y * y";
    case IR_OP_ABS: return "(x > 0.f ? g_ : x < 0.f ? -g_ : 0.f)";
    case IR_OP_TANH: return "g_ * (1.f - y * y)";
    case IR_OP_SIGMOID: return "g_ * y * attnc_sigmoid(-x)";
    case IR_OP_LOGSIGMOID: return "g_ * attnc_sigmoid(-x)";
    case IR_OP_SOFTPLUS: return "g_ * attnc_sigmoid(x)";
    case IR_OP_RELU: return "(x > 0.f ? g_ : 0.f)";
    case IR_OP_ELU: return "(x > 0.f ? g_ : g_ * expf(x))";
    case IR_OP_SILU: return "g_ * (attnc_sigmoid(x) + x * attnc_sigmoid(x) * attnc_sigmoid(-x))";
    default: return NULL;
    }
}

/* The adjoint of elementwise value r into its operands' adjoints. */
static void emit_elem_adjoint(bgen *g, ir_ref r)
{
    const ir_value *v = &g->m->values[r];
    attnc_buf *b = &g->b;
    ir_op op = (ir_op)v->op;
    int arity = ir_op_arity(op);
    unsigned len = v->type.len;
    attnc_buf_printf(b, "    {   // %s\n", ir_op_name(op));
    bool bcast[2] = {false, false};
    for (int k = 0; k < arity; k++) {
        ir_ref a = v->arg[k];
        bcast[k] = g->gp->needs[a] && len > 1 && vlen(g, a) == 1;
        if (bcast[k])
            attnc_buf_printf(b, "        float sum%d = 0.f;   // a scalar operand broadcast over the channels\n", k);
    }
    for (unsigned s = 0; s < (len == 1 ? 1 : nslots(len)); s++) {
        if (len > 1)
            attnc_buf_printf(b, "        if (lane + %u < %u) {\n", 32 * s, len);
        else
            attnc_buf_puts(b, "        {\n");
        attnc_buf_puts(b, "            const float g_ = ");
        put_ref(g, 'g', r, s);
        attnc_buf_puts(b, ", x = ");
        put_ref(g, 'v', v->arg[0], s);
        attnc_buf_puts(b, ", w = ");
        if (arity == 2)
            put_ref(g, 'v', v->arg[1], s);
        else
            attnc_buf_puts(b, "0.f");
        attnc_buf_puts(b, ", y = ");
        put_ref(g, 'v', r, s);
        attnc_buf_puts(b, ";\n            (void)x, (void)w, (void)y;\n");
        for (int k = 0; k < arity; k++) {
            ir_ref a = v->arg[k];
            if (!g->gp->needs[a])
                continue;
            if (bcast[k]) {
                attnc_buf_printf(b, "            sum%d += %s;\n", k, adjoint_rule(op, k));
            } else {
                attnc_buf_puts(b, "            ");
                put_ref(g, 'g', a, s);
                attnc_buf_printf(b, " += %s;\n", adjoint_rule(op, k));
            }
        }
        attnc_buf_puts(b, "        }\n");
    }
    for (int k = 0; k < arity; k++)
        if (bcast[k])
            attnc_buf_printf(b, "        g%u += attnc_warp_sum(sum%d);\n", v->arg[k], k);
    attnc_buf_puts(b, "    }\n");
}

static void emit_adjoint_of(bgen *g, ir_ref r)
{
    const ir_module *m = g->m;
    const ir_value *v = &m->values[r];
    attnc_buf *b = &g->b;
    unsigned ns = nslots(v->type.len);
    switch ((ir_op)v->op) {
    case IR_OP_INPUT:
    case IR_OP_PARAM:
        if (v->type.len == 1)
            attnc_buf_printf(b, "    d%u[0] += g%u;   // into %s's gradient\n", v->aux, r, m->tensors[v->aux].name);
        else
            for (unsigned s = 0; s < ns; s++)
                attnc_buf_printf(b, "    d%u[%u] += g%u[%u];\n", v->aux, s, r, s);
        return;
    case IR_OP_L2NORM: {
        ir_ref x = v->arg[0];
        /* (inv: the factor the value's statement formed or took from the saved states, l2inv<r>) */
        attnc_buf_puts(b, "    {   // l2norm: dx = inv (g - y (g . y))\n        float gy = 0.f;\n");
        for (unsigned s = 0; s < ns; s++)
            attnc_buf_printf(b, "        gy += g%u[%u] * v%u[%u];\n", r, s, r, s);
        attnc_buf_puts(b, "        gy = attnc_warp_sum(gy);\n");
        for (unsigned s = 0; s < ns; s++)
            attnc_buf_printf(b, "        g%u[%u] += l2inv%u * (g%u[%u] - v%u[%u] * gy);\n", x, s, r, r, s, r, s);
        attnc_buf_puts(b, "    }\n");
        return;
    }
    case IR_OP_TAYLOR2: {
        /* gx_i += g_o (1/d^(1/4) | 2 x_i / (sqrt2 sqrt d) | x_j / sqrt d), gx_j += g_o x_i / sqrt d: each lane
         * forms its outputs' contributions, then one fixed-order warp sum per input channel */
        ir_ref x = v->arg[0];
        unsigned d = vlen(g, x), nx = nslots(d), len = v->type.len;
        double rd = sqrt((double)d);
        attnc_buf_printf(b, "    {   // taylor2\n        int ti[%u], tj[%u];\n        float ai[%u], aj[%u];\n", ns, ns, ns, ns);
        for (unsigned s = 0; s < ns; s++) {
            attnc_buf_printf(b, "        {\n            int kind;\n            attnc_taylor2_index(%u + lane, %u, kind, ti[%u], tj[%u]);\n", 32 * s, d, s, s);
            attnc_buf_puts(b, "            float xi = 0.f, xj = 0.f;\n");
            for (unsigned t = 0; t < nx; t++)
                attnc_buf_printf(b, "            { const float a = __shfl_sync(0xffffffffu, v%u[%u], ti[%u] & 31), c = __shfl_sync(0xffffffffu, v%u[%u], tj[%u] & 31);\n"
                                    "              if ((ti[%u] >> 5) == %u) xi = a;\n              if ((tj[%u] >> 5) == %u) xj = c; }\n",
                                 x, t, s, x, t, s, s, t, s, t);
            attnc_buf_printf(b, "            const float go = %u + lane < %u ? g%u[%u] : 0.f;\n", 32 * s, len, r, s);
            attnc_buf_puts(b, "            ai[" );
            attnc_buf_printf(b, "%u] = kind == 0 ? 0.f : kind == 1 ? go * ", s);
            cg_put_float(b, 1.0 / sqrt(rd));
            attnc_buf_puts(b, " : kind == 2 ? go * 2.f * xi * ");
            cg_put_float(b, 1.0 / (sqrt(2.0) * rd));
            attnc_buf_puts(b, " : go * xj * ");
            cg_put_float(b, 1.0 / rd);
            attnc_buf_printf(b, ";\n            aj[%u] = kind == 3 ? go * xi * ", s);
            cg_put_float(b, 1.0 / rd);
            attnc_buf_puts(b, " : 0.f;\n        }\n");
        }
        attnc_buf_printf(b, "        for (int m = 0; m < %u; m++) {\n            float sum = 0.f;\n", d);
        for (unsigned s = 0; s < ns; s++)
            attnc_buf_printf(b, "            sum += (ti[%u] == m ? ai[%u] : 0.f) + (tj[%u] == m ? aj[%u] : 0.f);\n", s, s, s, s);
        attnc_buf_puts(b, "            sum = attnc_warp_sum(sum);\n");
        for (unsigned t = 0; t < nx; t++)
            attnc_buf_printf(b, "            if ((m >> 5) == %u && lane == (m & 31))\n                g%u[%u] += sum;\n", t, x, t);
        attnc_buf_puts(b, "        }\n    }\n");
        return;
    }
    default:
        emit_elem_adjoint(g, r);
        return;
    }
}

/* The register form's slots of a role or the gate (CG_LAYOUT_LANE, slot s channel lane + 32 s): as many as
 * the role's tile row has columns (KP or VP, rounded up to 32), and one for a scalar gate (per-channel gates:
 * KP's). */
static unsigned regs_slots_k(const bgen *g)
{
    return (g->gp->bp_kp + 31) / 32;
}
static unsigned regs_slots_v(const bgen *g)
{
    return (g->gp->bp_vp + 31) / 32;
}
static unsigned regs_slots_g(const bgen *g)
{
    return g->gp->transition == IR_TR_DIAG ? regs_slots_k(g) : 1;
}

/* The register form's slots of role value r into array dst of n slots: channel lane + 32 s, 0 past the
 * value's length and past its slots (the staged form leaves those channels of the role row at the zero
 * bp_zero_roles put there), 0 where WANT does not ask for the role. */
static void emit_regs_role(bgen *g, ir_ref r, const char *dst, unsigned n, const char *want)
{
    attnc_buf *b = &g->b;
    unsigned len = vlen(g, r), ns = nslots(len);
    attnc_buf_printf(b, "    if constexpr (WANT & %s) {\n", want);
    for (unsigned s = 0; s < n; s++) {
        if (s < ns) {
            attnc_buf_printf(b, "        %s[%u] = lane + %u < %u ? v%u", dst, s, 32 * s, len, r);
            if (len > 1)
                attnc_buf_printf(b, "[%u]", s);
            attnc_buf_puts(b, " : 0.f;\n");
        } else {
            attnc_buf_printf(b, "        %s[%u] = 0.f;\n", dst, s);
        }
    }
    attnc_buf_puts(b, "    } else {\n");
    for (unsigned s = 0; s < n; s++)
        attnc_buf_printf(b, "        %s[%u] = 0.f;\n", dst, s);
    attnc_buf_puts(b, "    }\n");
}

/* Role row stores (roles function: global inputs, or the staged rows), the register form of the staged
 * one (regs), and role gradient seeds (adjoint function). */
static void emit_roles_fn(bgen *g, bool staged, bool regs)
{
    const ir_module *m = g->m;
    const ir_linear *l = &m->linear;
    attnc_buf *b = &g->b;
    if (regs)
        attnc_buf_puts(b, "\n// ---- the roles of row r of the staged chunk (token t), output head h, in registers (generated): the\n"
                          "// staged form's values bit for bit, slot s of each role channel lane + 32 s (0 past the role's length\n"
                          "// and where WANT does not ask for it), the gate as the value DAG gives it (a scalar in every lane;\n"
                          "// per channel: slot s channel lane + 32 s), beta and ig in every lane ----\n"
                          "template <int WANT>\n"
                          "__device__ __forceinline__ void attnc_bwd_roles_regs(const attnc_bwd_params &p, int t, int h, int lane,\n"
                          "                                float (&q)[ATTNC_BP_NQ], float (&k)[ATTNC_BP_NK], float (&v)[ATTNC_BP_NV],\n"
                          "                                float (&g)[ATTNC_BP_NG], float &beta, float &ig, float (&qkf)[2], const unsigned char *stage,\n"
                          "                                int r)\n{\n"
                          "    (void)t;\n");
    else if (staged)
        attnc_buf_puts(b, "\n// ---- the roles of row r of the staged chunk (token t), output head h (generated); only those\n"
                          "// WANT asks for (ATTNC_ROLE_*): the compiler drops the values only the others need ----\n"
                          "template <int WANT>\n"
                          "__device__ __forceinline__ void attnc_bwd_roles_staged(const attnc_bwd_params &p, int t, int h, int lane, float *q,\n"
                          "                                float *k, float *v, float *g, float *beta, float *ig, const unsigned char *stage, int r)\n{\n"
                          "    (void)t;\n");
    else
        attnc_buf_puts(b, "\n// ---- the roles of token t, output head h: the spec's value DAG (generated) ----\n"
                          "__device__ __forceinline__ void attnc_bwd_roles(const attnc_bwd_params &p, int t, int h, int lane, float *q, float *k,\n"
                          "                                float *v, float *g, float *beta, float *ig)\n{\n");
    cg_values global = g->ev;
    if (staged)
        g->ev.stage_off = g->gp->bp_stage_off;
    emit_forward_values(g, false);
    g->ev = global;
    if (regs) {
        attnc_buf_puts(b, "    // the roles' slots\n");
        emit_regs_role(g, l->query, "q", regs_slots_k(g), "ATTNC_ROLE_Q");
        emit_regs_role(g, l->key, "k", regs_slots_k(g), "ATTNC_ROLE_K");
        emit_regs_role(g, l->value, "v", regs_slots_v(g), "ATTNC_ROLE_V");
        unsigned ng = regs_slots_g(g);
        attnc_buf_puts(b, "    if constexpr (WANT & ATTNC_ROLE_GATE) {\n");
        for (unsigned s = 0; s < ng; s++) {
            if (l->gate == IR_NONE)
                attnc_buf_printf(b, "        g[%u] = 0.f;   // no decay\n", s);
            else if (vlen(g, l->gate) == 1)   /* the staged form's g[c] = v for c < GK (lane 0's g[0] with GK 1) */
                attnc_buf_printf(b, "        g[%u] = lane + %u < ATTNC_B_GK ? v%u : 0.f;\n", s, 32 * s, l->gate);
            else if (s < nslots(vlen(g, l->gate)))
                attnc_buf_printf(b, "        g[%u] = lane + %u < %u ? v%u[%u] : 0.f;\n", s, 32 * s, vlen(g, l->gate), l->gate, s);
            else
                attnc_buf_printf(b, "        g[%u] = 0.f;\n", s);
        }
        attnc_buf_puts(b, "    } else {\n");
        for (unsigned s = 0; s < ng; s++)
            attnc_buf_printf(b, "        g[%u] = 0.f;\n", s);
        attnc_buf_puts(b, "    }\n");
        if (g->gp->delta)
            attnc_buf_printf(b, "    beta = v%u;   // the delta rule's write strength\n", l->beta);
        else
            attnc_buf_puts(b, "    beta = 0.f;\n");
        if (g->gp->mlstm)
            attnc_buf_printf(b, "    ig = v%u;   // mLSTM's log input gate\n", l->igate);
        else
            attnc_buf_puts(b, "    ig = 0.f;\n");
        if (g->gp->bp_qk_raw)   /* (the role's constant: the same literal as ATTNC_BP_DQ_SCALE) */
            for (int i = 0; i < 2; i++) {
                attnc_buf_printf(b, "    qkf[%d] = l2inv%u * ", i, g->gp->bp_direct_l2_value[i]);
                cg_put_float(b, g->gp->bp_direct_scale[i]);
                attnc_buf_printf(b, ";   // the %s's l2norm factor (ATTNC_BP_QK_RAW)\n", i ? "key" : "query");
            }
        else
            attnc_buf_puts(b, "    qkf[0] = qkf[1] = 1.f;\n");
        attnc_buf_puts(b, "}\n");
        return;
    }
    attnc_buf_puts(b, "    // the role rows\n");
    struct { ir_ref r; const char *dst, *bit; } rows[] = {
        {l->query, "q", "ATTNC_ROLE_Q"}, {l->key, "k", "ATTNC_ROLE_K"}, {l->value, "v", "ATTNC_ROLE_V"}};
    for (size_t i = 0; i < 3; i++) {
        unsigned len = vlen(g, rows[i].r);
        if (staged)
            attnc_buf_printf(b, "    if constexpr (WANT & %s) {\n", rows[i].bit);
        for (unsigned s = 0; s < nslots(len); s++)
            attnc_buf_printf(b, "    if (lane + %u < %u)\n        %s[lane + %u] = v%u[%u];\n", 32 * s, len, rows[i].dst, 32 * s,
                             rows[i].r, s);
        if (staged)
            attnc_buf_puts(b, "    }\n");
    }
    if (staged)
        attnc_buf_puts(b, "    if constexpr (WANT & ATTNC_ROLE_GATE) {\n");
    if (l->gate != IR_NONE) {
        unsigned len = vlen(g, l->gate);
        if (len == 1 && g->gp->gk > 1)
            attnc_buf_printf(b, "    for (int c = lane; c < ATTNC_B_GK; c += 32)\n        g[c] = v%u;   // one gate over every channel\n", l->gate);
        else if (len == 1)
            attnc_buf_printf(b, "    if (lane == 0)\n        g[0] = v%u;\n", l->gate);
        else
            for (unsigned s = 0; s < nslots(len); s++)
                attnc_buf_printf(b, "    if (lane + %u < %u)\n        g[lane + %u] = v%u[%u];\n", 32 * s, len, 32 * s, l->gate, s);
    } else {
        attnc_buf_puts(b, "    if (lane == 0)\n        g[0] = 0.f;   // no decay\n");
    }
    if (staged)
        attnc_buf_puts(b, "    }\n");
    if (g->gp->delta)
        attnc_buf_printf(b, "    if (lane == 0)\n        beta[0] = v%u;   // the delta rule's write strength\n", l->beta);
    else
        attnc_buf_puts(b, "    (void)beta;\n");
    if (g->gp->mlstm)
        attnc_buf_printf(b, "    if (lane == 0)\n        ig[0] = v%u;   // mLSTM's log input gate\n", l->igate);
    else
        attnc_buf_puts(b, "    (void)ig;\n");
    attnc_buf_puts(b, "}\n");
}

/* The l2norm factors of token t, output head h, formed from the inputs as the roles' statements form them where
 * none was saved: the forward's saved factors' stand-in in the CPU emulation (tools/cuda_cpu/unit_par.cpp's
 * CUDA_CPU_SAVED).  No kernel calls it. */
static void emit_l2_factors_fn(bgen *g)
{
    attnc_buf *b = &g->b;
    attnc_buf_puts(b, "\n// ---- the l2norm factors of token t, output head h, formed (generated; for the CPU emulation) ----\n"
                      "__device__ __forceinline__ void attnc_bwd_l2_factors(const attnc_bwd_params &p, int t, int h, int lane, float *dst)\n{\n");
    cg_values saved = g->ev;
    g->ev.l2_saved = false;
    emit_forward_values(g, false);
    g->ev = saved;
    for (unsigned j = 0; j < g->gp->bp_nl2; j++)
        attnc_buf_printf(b, "    if (lane == 0)\n        dst[%u] = l2inv%u;\n", j, g->gp->bp_l2_values[j]);
    attnc_buf_puts(b, "}\n");
}

static void emit_adjoint_fn(bgen *g)
{
    const ir_module *m = g->m;
    const ir_linear *l = &m->linear;
    const grad_plan *gp = g->gp;
    attnc_buf *b = &g->b;
    attnc_buf_puts(b, "\n// ---- the adjoint of the value DAG for token t, output head h (generated) ----\n"
                      "__device__ __forceinline__ void attnc_bwd_adjoint(const attnc_bwd_params &p, int t, int h, int lane)\n{\n");
    emit_forward_values(g, true);
    attnc_buf_puts(b, "    // adjoints: the tensors' partial gradients, then every value that reads a tensor\n");
    for (uint32_t i = 0; i < m->ntensors; i++)
        attnc_buf_printf(b, "    float d%u[%u] = {};   // %s\n", i, nslots(m->tensors[i].len), m->tensors[i].name);
    for (ir_ref r = 1; r < m->nvalues; r++) {
        if (!gp->needs[r])
            continue;
        if (vlen(g, r) == 1)
            attnc_buf_printf(b, "    float g%u = 0.f;\n", r);
        else
            attnc_buf_printf(b, "    float g%u[%u] = {};\n", r, nslots(vlen(g, r)));
    }
    attnc_buf_puts(b, "    const size_t hrow = (size_t)t * ATTNC_HOUT + h;\n    // the role gradients\n");
    struct { ir_ref r; const char *ws; const char *n; } seeds[] = {
        {l->query, "p.ws_dq", "ATTNC_B_K"}, {l->key, "p.ws_dk", "ATTNC_B_K"}, {l->value, "p.ws_dv", "ATTNC_B_V"},
        {gp->transition == IR_TR_IDENTITY ? IR_NONE : l->gate, "p.ws_dg", "ATTNC_B_GK"},
        {m->softmax.query, "p.ws_sdq", "ATTNC_SB_D"}, {m->softmax.key, "p.ws_sdk", "ATTNC_SB_D"},
        {m->softmax.value, "p.ws_sdv", "ATTNC_SB_V"},
        {gp->delta ? l->beta : IR_NONE, "p.ws_db", "1"},
        {gp->mlstm ? l->igate : IR_NONE, "p.ws_di", "1"}};
    for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++) {
        ir_ref r = seeds[i].r;
        if (r == IR_NONE || (!gp->needs[r] && !(i < 3 && gp->parallel && gp->bp_direct[i])))
            continue;
        if (i < 3 && gp->parallel && gp->bp_direct[i]) {   /* no workspace: the chunk kernel wrote the tensor's gradient */
            attnc_buf_printf(b, "    // the %s role's gradient is %s's: the %s wrote it (p.direct)\n",
                             i == 0 ? "query" : i == 1 ? "key" : "value", m->tensors[gp->bp_direct_tensor[i]].name,
                             gp->bp_delta && i > 0 ? "WY adjoint" : "chunk kernel");
            continue;
        }
        unsigned len = vlen(g, r);
        if (i == 3)
            attnc_buf_puts(b, "    // a token whose log2 decay the forward floors (ATTNC_B_LOG2_FLOOR) does not reach the output\n"
                              "    // through its gate: its gradient is 0 (the rule's value there is only cancellation noise)\n");
        if (len == 1 && i == 3 && gp->gk > 1) {
            attnc_buf_printf(b, "    if (v%u * LOG2E >= ATTNC_B_LOG2_FLOOR) {   // one gate over every channel: the sum of the channels' gradients\n"
                                "        float s = 0.f;\n"
                                "        for (int c = lane; c < ATTNC_B_GK; c += 32)\n"
                                "            s += %s[hrow * ATTNC_B_GK + c];\n"
                                "        g%u += attnc_warp_sum(s);\n    }\n",
                             r, seeds[i].ws, r);
        } else if (len == 1 && i == 3) {
            attnc_buf_printf(b, "    if (v%u * LOG2E >= ATTNC_B_LOG2_FLOOR)\n        g%u += %s[hrow * %s];\n", r, r, seeds[i].ws,
                             seeds[i].n);
        } else if (len == 1) {
            attnc_buf_printf(b, "    g%u += %s[hrow * %s];\n", r, seeds[i].ws, seeds[i].n);
        } else {
            for (unsigned s = 0; s < nslots(len); s++) {
                attnc_buf_printf(b, "    if (lane + %u < %u", 32 * s, len);
                if (i == 3)
                    attnc_buf_printf(b, " && v%u[%u] * LOG2E >= ATTNC_B_LOG2_FLOOR", r, s);
                attnc_buf_printf(b, ")\n        g%u[%u] += %s[hrow * %s + lane + %u];\n", r, s, seeds[i].ws, seeds[i].n, 32 * s);
            }
        }
    }
    attnc_buf_puts(b, "    // the adjoint rules, in reverse order of the values\n");
    for (ir_ref r = m->nvalues - 1; r >= 1; r--)
        if (gp->needs[r])
            emit_adjoint_of(g, r);
    attnc_buf_puts(b, gp->bp_inputs_idle
                          ? "    // every tensor's gradient is the chunk kernel's: nothing to write here, and the host does not launch\n"
                            "    // attnc_bwd_inputs (passes/grad.c's bp_inputs_idle)\n"
                          : "    // this (token, head)'s partial gradient of every tensor\n");
    for (uint32_t i = 0; i < m->ntensors; i++) {
        unsigned len = m->tensors[i].len;
        if (gp->parallel && grad_tensor_direct(gp, i)) {
            /* its gradient is a role's, written by the chunk kernel (the delta rule's key and value: by its WY
             * adjoint): here it would be 0 over it */
            bool adj = gp->bp_delta && !(gp->bp_direct[0] && gp->bp_direct_tensor[0] == i);
            attnc_buf_printf(b, "    // %s: written by the %s\n", m->tensors[i].name, adj ? "WY adjoint" : "chunk kernel");
            continue;
        }
        if (gp->parallel) {
            /* the parallel schedule: a per-token tensor of every output head's own goes straight into the
             * caller's gradient in its dtype (p.direct), no partial; an unwanted one nowhere */
            if (len == 1)
                attnc_buf_printf(b, "    if (lane == 0) {\n        if (p.direct[%u])\n            attnc_bwd_store(p.direct[%u], hrow, d%u[0], p.direct_dtype[%u]);\n"
                                    "        else if (p.part[%u])\n            p.part[%u][hrow] = d%u[0];\n    }\n",
                                 i, i, i, i, i, i, i);
            else
                for (unsigned s = 0; s < nslots(len); s++)
                    attnc_buf_printf(b, "    if (lane + %u < %u) {\n        if (p.direct[%u])\n"
                                        "            attnc_bwd_store(p.direct[%u], hrow * %u + lane + %u, d%u[%u], p.direct_dtype[%u]);\n"
                                        "        else if (p.part[%u])\n            p.part[%u][hrow * %u + lane + %u] = d%u[%u];\n    }\n",
                                     32 * s, len, i, i, len, 32 * s, i, s, i, i, i, len, 32 * s, i, s);
            continue;
        }
        if (len == 1)
            attnc_buf_printf(b, "    if (lane == 0)\n        p.part[%u][hrow] = d%u[0];\n", i, i);
        else
            for (unsigned s = 0; s < nslots(len); s++)
                attnc_buf_printf(b, "    if (lane + %u < %u)\n        p.part[%u][hrow * %u + lane + %u] = d%u[%u];\n", 32 * s, len, i,
                                 len, 32 * s, i, s);
    }
    attnc_buf_puts(b, "}\n");
}

/* The span [lo, hi) of the staging that the delta rule's attnc_bwdp_wy copies with saved states: the rows of the
 * key, beta and gate (bp_stage_want(ATTNC_ROLE_K)), their saved l2norm factors, and of any tensor no role reads,
 * which its compact layout holds (attnc_bd_wy_saved_layout, passes/grad.c's grad_bd_wy_saved_smem). */
static void wy_saved_stage_span(const ir_module *m, const grad_plan *gp, const unsigned *roles, unsigned *lo, unsigned *hi)
{
    *lo = ~0u;
    *hi = 0;
    for (uint32_t i = 0; i < m->ntensors && i < CG_MAX_TENSORS; i++) {
        if (gp->bp_stage_off[i] == ~0u || !(roles[i] & (CG_ROLE_K | CG_ROLE_GATE | CG_ROLE_BETA)))
            continue;
        unsigned end = gp->bp_stage_off[i] + grad_stage_rows_bytes(m, i, gp->bp_chunk);
        *lo = gp->bp_stage_off[i] < *lo ? gp->bp_stage_off[i] : *lo;
        *hi = end > *hi ? end : *hi;
    }
    if (gp->bp_l2_off != ~0u && (cg_l2_roles_any(gp->bp_l2_roles, gp->bp_nl2) & (CG_ROLE_K | CG_ROLE_GATE | CG_ROLE_BETA))) {   /* the saved factors' rows */
        unsigned end = gp->bp_l2_off + grad_l2_rows_bytes(gp, gp->bp_chunk);
        *lo = gp->bp_l2_off < *lo ? gp->bp_l2_off : *lo;
        *hi = end > *hi ? end : *hi;
    }
    if (*lo == ~0u)
        *lo = 0;
}

/* Per staged tensor, the roles its rows feed (CG_ROLE_* bits): each kernel of the parallel schedule copies
 * only the rows of the roles it reads (the WANT of attnc_bwd_stage_issue, linear_bwd_par_kernel.cuh's
 * bp_stage_want), e.g. no q in the delta rule's attnc_bwdp_wy and adjoint, no v in its chunk kernel, which
 * reads U_hat.  A staged tensor no role reads is copied for every kernel. */
static void plan_stage_roles(const ir_module *m, attnc_arena *a, const unsigned *stage_off, unsigned *roles)
{
    _Static_assert(CG_ROLE_Q == 1 && CG_ROLE_K == 2 && CG_ROLE_V == 4 && CG_ROLE_GATE == 8 && CG_ROLE_BETA == 16,
                   "grad_role_reach's bits are the roles'");
    const unsigned *reach = grad_role_reach(m, a);   /* the roles each value feeds */
    memset(roles, 0, CG_MAX_TENSORS * sizeof *roles);
    for (ir_ref r = 1; reach && r < m->nvalues; r++)
        if (m->values[r].op == IR_OP_INPUT && m->values[r].aux < CG_MAX_TENSORS)
            roles[m->values[r].aux] |= reach[r];
    for (uint32_t i = 0; i < m->ntensors && i < CG_MAX_TENSORS; i++)
        if (stage_off[i] != ~0u && roles[i] == 0)
            roles[i] = CG_ROLES_ALL;
}

/* The chunk kernel and the delta rule's adjoint at 16 warps, in the wide pass (emit_wide_pass). */
static bool wide_chunk(const grad_plan *gp)
{
    return gp->bp_chunk_warps > CG_BWD_WARPS;
}
static bool wide_adj(const grad_plan *gp)
{
    return gp->bp_delta && gp->bd_adj_warps > CG_BWD_WARPS;
}

const char *const cg_bwd_entries[CG_BK_COUNT] = {
    "attnc_bwd_linear", "attnc_bwd_inputs", "attnc_bwd_sum_heads", "attnc_bwd_sum_param", "attnc_bwd_sm_rows",
    "attnc_bwd_sm_kv", "attnc_bwdp_states", "attnc_bwdp_rows", "attnc_bwdp_dstates", "attnc_bwdp_chunk",
    "attnc_bwdp_wy", "attnc_bwdp_wy_adjoint", "attnc_bwdp_scan_states", "attnc_bwdp_scan_dstates",
    "attnc_bwdp_states_narrow", "attnc_bwdp_dstates_narrow", "attnc_bwdp_states_run", "attnc_bwdp_dstates_run",
    "attnc_bwdp_dstates_ws"};

/* Which kernels this compile defines (cuda_bwd.h): ATTNC_BK_<NAME> numbers kernel attnc_bwd_name
 * (attnc_bwdp_name: P_NAME) as cg_bwd_kernel does. */
static void emit_kernel_numbers(attnc_buf *b)
{
    attnc_buf_puts(b, "// The kernels this compile defines: all of them, unless ATTNC_BWD_ONLY is a mask of their numbers\n"
                      "// (bit k: ATTNC_BK_* k); the JIT compiles them in units of a few kernels each, with a\n"
                      "// \"#define ATTNC_BWD_ONLY mask\" line before this text, on a host with the CPUs for it.\n"
                      "#ifdef ATTNC_BWD_ONLY\n#define ATTNC_BWD_WANT(k) (((ATTNC_BWD_ONLY) >> (k)) & 1)\n#else\n"
                      "#define ATTNC_BWD_WANT(k) 1\n#endif\n");
    for (int k = 0; k < CG_BK_COUNT; k++) {
        const char *e = cg_bwd_entries[k];
        bool par = strncmp(e, "attnc_bwdp_", 11) == 0;
        attnc_buf_puts(b, par ? "#define ATTNC_BK_P_" : "#define ATTNC_BK_");
        for (const char *c = e + (par ? 11 : 10); *c; c++)
            attnc_buf_printf(b, "%c", toupper((unsigned char)*c));
        attnc_buf_printf(b, " %d\n", k);
    }
}

/* The staging function's declaration (its definition comes at the unit's end, with the role functions). */
static const char stage_issue_decl[] =
    "template <bool UNROLL, unsigned WANT = ATTNC_ROLES_ALL>\n"
    "__device__ __forceinline__ void attnc_bwd_stage_issue(const attnc_bwd_params &p, int c0, int eos, int h, unsigned char *stage,\n"
    "                                                      attnc_bwd_stage_held *held = nullptr);\n";

/* The parallel schedule's per-chunk kernels of 16 warps (passes/grad.c's bp_chunk_warps, bd_adj_warps: the
 * chunk kernel and the delta rule's adjoint, latency-bound at one CTA of 8 warps per SM).  The kernel files'
 * text comes a second time, in namespace attnc_wide, with ATTNC_B_THREADS 512 (and so half the n-tiles per
 * item, ATTNC_BP_NT: twice the items), and the staging code (sized by the thread count) is emitted again there: every helper
 * those kernels call is compiled for 16 warps while the walks keep theirs.  That pass defines the wide
 * kernels alone, the first pass every other (ATTNC_BP_WIDE_PASS, ATTNC_BP_WIDE_CHUNK, ATTNC_BD_WIDE_ADJ).
 * Then the checks that host and kernels agree on their shared memory, and their CTAs as constants
 * (tools/cuda_cpu). */
static void emit_wide_pass(attnc_buf *b, const grad_plan *gp, const cg_values *staged)
{
    bool chunk = wide_chunk(gp), adj = wide_adj(gp);
    if (chunk || adj) {
        attnc_buf_printf(b, "\n// ---- the per-chunk kernels at 16 warps: the kernel files' text again (passes/grad.c) ----\n"
                            "#undef ATTNC_B_THREADS\n#define ATTNC_B_THREADS %u\n#undef ATTNC_BP_WIDE_PASS\n#define ATTNC_BP_WIDE_PASS 1\n"
                            "// (a name of its own: argument-dependent lookup would find the unit's too)\n"
                            "#define attnc_bwd_stage_issue attnc_bwd_stage_issue_wide\n"
                            "namespace attnc_wide {\n",
                         2 * CG_BWD_THREADS);
        cg_emit_stage_held(staged, "attnc_bwd_stage_held", "ATTNC_BP_C", "ATTNC_B_THREADS", "threadIdx.x");
        attnc_buf_puts(b, stage_issue_decl);
        attnc_buf_puts(b, attnc_linear_bwd_par_kernel_src);
        if (gp->bp_delta)
            attnc_buf_puts(b, attnc_linear_bwd_delta_kernel_src);
        cg_emit_stage_issue(staged, "attnc_bwd_stage_issue", "attnc_bwd_params", "ATTNC_BP_C", "ATTNC_B_THREADS",
                            "threadIdx.x", "attnc_bwd_stage_held");
        attnc_buf_printf(b, "}   // namespace attnc_wide\n%s%s#undef attnc_bwd_stage_issue\n"
                            "#undef ATTNC_B_THREADS\n#define ATTNC_B_THREADS %u\n#undef ATTNC_BP_WIDE_PASS\n#define ATTNC_BP_WIDE_PASS 0\n",
                         chunk ? "#if ATTNC_BWD_WANT(ATTNC_BK_P_CHUNK)\nusing attnc_wide::attnc_bwdp_chunk;\n#endif\n" : "",
                         adj ? "#if ATTNC_BWD_WANT(ATTNC_BK_P_WY_ADJOINT)\nusing attnc_wide::attnc_bwdp_wy_adjoint;\n#endif\n" : "",
                         CG_BWD_THREADS);
    }
    attnc_buf_printf(b, "static_assert(%sattnc_bp_chunk_layout::bytes == %uu, \"host and kernel disagree on shared memory\");\n"
                        "constexpr unsigned attnc_bp_chunk_threads = %u, attnc_bp_chunk_bytes = %uu;   // its CTA\n",
                     chunk ? "attnc_wide::" : "", gp->bp_chunk_smem, 32 * gp->bp_chunk_warps, gp->bp_chunk_smem);
    if (gp->bp_delta)
        attnc_buf_printf(b, "static_assert(%sattnc_bd_adj_layout::bytes == %uu, \"host and kernel disagree on shared memory\");\n"
                            "constexpr unsigned attnc_bd_adj_threads = %u;   // the adjoint's CTA\n",
                         adj ? "attnc_wide::" : "", gp->bd_adj_smem, 32 * gp->bd_adj_warps);
}

bool codegen_cuda_bwd(const ir_module *m, attnc_arena *a, attnc_diags *diags, cg_bwd_output *out)
{
    return codegen_cuda_bwd_sched(m, a, diags, false, out);
}

bool codegen_cuda_bwd_sched(const ir_module *m, attnc_arena *a, attnc_diags *diags, bool parallel, cg_bwd_output *out)
{
    memset(out, 0, sizeof *out);
    if (m->plan.stage != IR_PLAN_SCHEDULED) {
        attnc_error(diags, m->span, "internal: the module was not scheduled before code generation");
        return false;
    }
    if (!grad_derive(m, a, &out->plan))
        return false;
    const grad_plan *gp = &out->plan;
    if (!gp->ok) {
        attnc_error(diags, gp->where, "backward not generated yet for %s", gp->missing);
        return false;
    }
    if (parallel) {
        /* the value role's tiles need a remainder unless the value is a bf16 input as stored */
        grad_parallel_plan(m, &out->plan, m->plan.operands == IR_OPERANDS_BF16X3, !cg_value_bf16_input(m));
    }
    if (m->ntensors > 64) {
        attnc_error(diags, m->span, "the backward generator takes at most 64 tensors");
        return false;
    }
    bgen g = {.m = m, .gp = gp};
    ir_shape sh = ir_module_shape(m);
    attnc_buf *b = &g.b;
    attnc_buf_init(b, a);
    g.ev = (cg_values){.m = m, .b = b, .layout = CG_LAYOUT_LANE, .stage_off = NULL, .select_minmax = true};
    if (gp->parallel) {   /* (the forward saves l2norm factors for this schedule only) */
        g.ev.l2_values = gp->bp_l2_values;
        g.ev.l2_roles = gp->bp_l2_roles;
        g.ev.nl2 = gp->bp_nl2;
        g.ev.l2_saved = true;
        g.ev.l2_stage_off = gp->bp_l2_off;
    }
    attnc_buf_printf(b, "// Generated by attnc %s from variant '%s': the backward.  Do not edit: regenerate with\n"
                        "//   attnc compile --grad --emit cuda\n",
                     ATTNC_VERSION_STRING, m->name);
    emit_kernel_numbers(b);
    /* the tiles' operand type: the softmax part's mma tiles use the plan's (the linear kernels use none) */
    attnc_buf_printf(b, "#define ATTNC_ELT_F16 %d\n", gp->softmax && m->plan.operands == IR_OPERANDS_FP16);
    if (gp->softmax)
        attnc_buf_printf(b, "#define ATTNC_SPLIT %d\n", m->plan.operands == IR_OPERANDS_BF16X3);
    else if (gp->parallel)   /* the parallel schedule's tiles: bf16, or fp32 split in three bf16 mma */
        attnc_buf_printf(b, "#define ATTNC_SPLIT %d\n", gp->bp_split ? 1 : 0);
    attnc_buf_printf(b, "#define ATTNC_OUT_DTYPE %s\n", cg_dtype_macro(m->out_dtype));
    /* the spec's functions in their SFU forms where the inputs are 16-bit, as the forward's (support.cuh) */
    attnc_buf_printf(b, "#define ATTNC_FAST_MATH %d\n", m->plan.operands != IR_OPERANDS_BF16X3);
    cg_emit_role_bits(b);
    attnc_buf_puts(b, attnc_support_src);
    attnc_buf_puts(b, "\n// ---- parameters ----\nstruct attnc_bwd_params {\n"
                      "    const void *in[64];      // the spec's tensors, in declaration order (see below)\n"
                      "    float *part[64];         // per tensor: partial gradients per (token, output head) [T, HOUT, len]\n"
                      "    const void *dout;        // [T, HOUT, V], the output's dtype\n"
                      "    const float *h0, *dhT;   // [N, HS, K, V] (or null)\n"
                      "    const int *cu_seqlens;   // [N + 1] token offsets, or null: N sequences of seqlen tokens\n"
                      "    int seqlen, nseq, total, pad_;\n"
                      "    float *ws_dq, *ws_dk;    // role gradients [T, HOUT, K]\n"
                      "    float *ws_dv;            // [T, HOUT, V]\n"
                      "    float *ws_dg;            // d log-gate [T, HOUT, GK]\n"
                      "    float *ws_dh0;           // [N, HOUT, K, V] (or null)\n"
                      "    float *ws_s;             // S_out of every chunk [slot, HOUT, K, V], slot = c0 / C + n\n"
                      "    const float *z0, *dzT;   // the denominator's state [N, HS, K] (or null)\n"
                      "    float *ws_do;            // normalisers: d(pre-norm output) [T, HOUT, V]\n"
                      "    float *ws_dz0;           // [N, HOUT, K] (or null)\n"
                      "    float *ws_sdq, *ws_sdk;  // softmax part: role gradients [T, HOUT, D]\n"
                      "    float *ws_sdv;           // [T, HOUT, V]\n"
                      "    float *ws_lse, *ws_delta; // per (token, output head): log2-sum-exp, dO . O_softmax\n"
                      "    float *ws_db;            // the delta rule: d beta [T, HOUT]\n"
                      "    const float *m0, *dmT;   // mLSTM's stabiliser [N, HS] (or null)\n"
                      "    float *ws_m;             // mLSTM: m_out of every chunk [slot, HOUT] (log2 units)\n"
                      "    float *ws_di;            // mLSTM: d log input gate [T, HOUT]\n"
                      "    float *ws_dmf;           // mLSTM: d m_r through the max floor [T, HOUT]\n"
                      "    float *ws_dm0;           // mLSTM: [N, HOUT] (or null)\n");
    if (gp->parallel)
        attnc_buf_puts(b, "    void *ws_sin, *ws_dso;   // parallel schedule: S_in and dS_out images [slot, HOUT, KP, VP], elt\n"
                          "    void *direct[64];        // per tensor: the caller's gradient [T, HOUT, len] written directly, or null\n"
                          "    int direct_dtype[64];    // its ATTNC_DT_*\n"
                          "    void *ws_w, *ws_u;       // the delta rule: W, U (then U_hat) of every chunk [slot, HOUT, C, KP or VP], elt\n"
                          "    void *ws_t;              // the delta rule: T of every chunk [slot, HOUT, hi (, lo), C, C], elt\n"
                          "    float *ws_decay;         // the scanned walks: e^{b_L} of every chunk [slot, HOUT, GK] (gated specs)\n"
                          "    int bp_run;              // the walks: 0 walks each sequence; R > 0, runs of R slots (chunk products)\n"
                          "    int bd_uhat_saved;       // the delta rule with the forward's saved states: ws_u is the forward's U_hat\n"
                          "    const float *l2f;        // the forward's saved l2norm factors [T, HOUT, NL2] (or null: formed here)\n");
    attnc_buf_puts(b, "};\n");
    for (uint32_t i = 0; i < m->ntensors; i++)
        attnc_buf_printf(b, "//   in[%u] = %s %s\n", i, m->tensors[i].name, ir_dtype_name(m->tensors[i].dtype));
    attnc_buf_printf(b, "#define ATTNC_HOUT %u\n#define ATTNC_HS %u\n", sh.heads_out, sh.heads_state ? sh.heads_state : sh.heads_out);
    attnc_buf_printf(b, "\n// ---- the plan (passes/grad.c): %s transition, chunk %u, state %u x %u ----\n",
                     ir_transition_name(gp->transition), gp->chunk, gp->K, gp->V);
    attnc_buf_printf(b, "#define ATTNC_B_ADJ_SCALAR %d   // attnc_bwd_inputs: a thread per (token, output head) (passes/grad.c)\n",
                     gp->parallel && gp->bp_inputs_scalar);
    attnc_buf_printf(b, "#define ATTNC_B_C %u\n#define ATTNC_B_K %u\n#define ATTNC_B_V %u\n#define ATTNC_B_GK %u\n"
                        "#define ATTNC_B_TRANSITION %u\n#define ATTNC_B_DELTA %d\n#define ATTNC_B_MLSTM %d\n#define ATTNC_B_SMEM_BYTES %u\n",
                     gp->chunk, gp->K, gp->V, gp->gk, gp->transition, gp->delta ? 1 : 0, gp->mlstm ? 1 : 0, gp->smem_bytes);
    attnc_buf_printf(b, "#define ATTNC_B_VO %u   // output columns (V less the denominator's column of ones)\n"
                        "#define ATTNC_B_NORM %u   // ir_norm\n#define ATTNC_B_EPS ",
                     gp->vo, gp->norm);
    cg_put_float(b, gp->norm != IR_NORM_NONE ? gp->eps : 0.0);
    attnc_buf_puts(b, "\n");
    attnc_buf_puts(b, "\n// taylor2's output channel o of an input of length d: kind 0 (the constant), 1 (x_i), 2 (x_i^2) or 3\n"
                      "// (x_i x_j, i < j, row-major); i and j are 0 where unused (out-of-range o: kind 0)\n"
                      "__device__ __forceinline__ void attnc_taylor2_index(int o, int d, int &kind, int &i, int &j)\n{\n"
                      "    kind = 0, i = 0, j = 0;\n"
                      "    if (o == 0 || o >= 1 + 2 * d + d * (d - 1) / 2)\n        return;\n"
                      "    if (o <= d) {\n        kind = 1, i = o - 1;\n        return;\n    }\n"
                      "    if (o <= 2 * d) {\n        kind = 2, i = o - d - 1;\n        return;\n    }\n"
                      "    int p = o - 2 * d - 1;\n    kind = 3;\n"
                      "    while (p >= d - 1 - i) {\n        p -= d - 1 - i;\n        i++;\n    }\n"
                      "    j = i + 1 + p;\n}\n");
    if (gp->linear)
        attnc_buf_puts(b, "__device__ __forceinline__ void attnc_bwd_roles(const attnc_bwd_params &p, int t, int h, int lane, float *q, float *k,\n"
                          "                                float *v, float *g, float *beta, float *ig);\n");
    attnc_buf_puts(b, "__device__ __forceinline__ void attnc_bwd_adjoint(const attnc_bwd_params &p, int t, int h, int lane);\n");
    attnc_buf_printf(b, "#define ATTNC_B_CAUSAL_LINEAR %d\n", gp->linear && !gp->bidir && !gp->parallel);
    cg_values staged = g.ev;   /* the parallel schedule's staged rows (passes/grad.c's bp_stage_off) */
    unsigned stage_roles[CG_MAX_TENSORS];
    staged.stage_off = gp->bp_stage_off;
    unsigned wy_lo = 0, wy_hi = 0;
    if (gp->parallel) {
        plan_stage_roles(m, a, gp->bp_stage_off, stage_roles);
        staged.stage_roles = stage_roles;
        if (gp->bp_delta) {
            wy_saved_stage_span(m, gp, stage_roles, &wy_lo, &wy_hi);
            out->plan.bd_wy_saved_smem = grad_bd_wy_saved_smem(gp->bp_chunk, gp->bp_kp, gp->bp_plo, wy_lo, wy_hi, gp->bp_qk_raw ? 1 : 0);
        }
    }
    attnc_buf_puts(b, attnc_linear_bwd_kernel_src);
    if (gp->parallel) {
        attnc_buf_printf(b, "\n// ---- the chunk-parallel schedule (passes/grad.c): chunk %u, tiles K %u, V %u, V slice %u ----\n"
                            "#define ATTNC_BP 1\n#define ATTNC_BP_C %u\n#define ATTNC_BP_KP %u\n#define ATTNC_BP_VP %u\n"
                            "#define ATTNC_BP_VS %u\n#define ATTNC_BP_VW %u\n#define ATTNC_BP_RUN2 %d\n#define ATTNC_BP_VSPLIT %d\n#define ATTNC_BP_IMG_BYTES %u\n#define ATTNC_BP_SLO %d\n"
                            "#define ATTNC_BP_PLO %d   // P and A carry remainder tiles\n"
                            "#define ATTNC_BP_DG %d   // the chunk kernel forms the scalar gate's gradient\n#define ATTNC_BP_DELTA %d\n"
                            "#define ATTNC_BD_WALK_DUH %d   // the reverse walk writes dU_hat; the chunk kernel forms no dv, no P tiles\n"
                            "#define ATTNC_BD_DUH16 %d   // ... in 16 bits, for the compact adjoint\n"
                            "#define ATTNC_BD_DK16 %d   // the chunk kernel's dk for the adjoint as 16-bit mantissas\n"
                            "#define ATTNC_BP_WIDE_CHUNK %d   // attnc_bwdp_chunk at 16 warps, in the wide pass at the unit's end\n"
                            "#define ATTNC_BD_WIDE_ADJ %d   // attnc_bwdp_wy_adjoint likewise\n#define ATTNC_BP_WIDE_PASS 0\n"
                            "#define ATTNC_BD_ADJ2 %d   // attnc_bwdp_wy_adjoint's compact layout, two CTAs an SM\n"
                            "#define ATTNC_BP_CHUNK2 %d   // attnc_bwdp_chunk's likewise\n"
                            "#define ATTNC_BD_WALK_WS %d   // attnc_bwdp_dstates_ws (sm_90a)\n"
                            "#define ATTNC_BD_WALK_WS_WBUFS %u\n",
                         gp->bp_chunk, gp->bp_kp, gp->bp_vp, gp->bp_vs, gp->bp_chunk, gp->bp_kp, gp->bp_vp, gp->bp_vs,
                         gp->bp_vw, gp->bp_run2 ? 1 : 0, gp->bp_vsplit ? 1 : 0, gp->bp_image_bytes, gp->bp_slo ? 1 : 0, gp->bp_plo ? 1 : 0,
                         gp->bp_dg ? 1 : 0, gp->bp_delta ? 1 : 0, gp->bd_walk_duh ? 1 : 0, gp->bd_duh16 ? 1 : 0, gp->bd_dk16 ? 1 : 0,
                         wide_chunk(gp) ? 1 : 0, wide_adj(gp) ? 1 : 0, gp->bd_adj_two ? 1 : 0, gp->bp_chunk_two ? 1 : 0,
                         gp->bd_walk_ws_smem ? 1 : 0, gp->bd_walk_ws_wbufs);
        /* a query, key or value role that is an input tensor of its own (gp->bp_direct): the chunk kernel
         * writes its gradient into that tensor's (p.direct), in the tensor's dtype, instead of ws_dq / ws_dk
         * / ws_dv */
        const char *tag[3] = {"DQ", "DK", "DV"};
        for (int i = 0; i < 3; i++) {
            if (gp->bp_direct[i]) {
                attnc_buf_printf(b, "#define ATTNC_BP_%s_TENSOR %u   // %s\n#define ATTNC_BP_%s_DTYPE %s\n#define ATTNC_BP_%s_SCALE ",
                                 tag[i], gp->bp_direct_tensor[i], m->tensors[gp->bp_direct_tensor[i]].name, tag[i],
                                 cg_dtype_macro(m->tensors[gp->bp_direct_tensor[i]].dtype), tag[i]);
                /* the same literal as the adjoint's constant (cg_put_float), so the same product */
                cg_put_float(b, gp->bp_direct_scale[i]);
                attnc_buf_puts(b, gp->bp_direct_scale[i] == 1.0 ? "\n" : "   // the role is the tensor times this\n");
                attnc_buf_printf(b, "#define ATTNC_BP_%s_L2 %d%s\n", tag[i], gp->bp_direct_l2[i] ? 1 : 0,
                                 gp->bp_direct_l2[i] ? "   // of the tensor's l2norm: its adjoint on the fragments" : "");
            } else {
                attnc_buf_printf(b, "#define ATTNC_BP_%s_TENSOR -1   // the workspace\n#define ATTNC_BP_%s_DTYPE ATTNC_DT_FP32\n"
                                    "#define ATTNC_BP_%s_SCALE (1.0f)\n#define ATTNC_BP_%s_L2 0\n",
                                 tag[i], tag[i], tag[i], tag[i]);
            }
        }
        /* the staged rows (passes/grad.c's bp_stage_off) and dO's beside them */
        unsigned do_cols = gp->norm != IR_NORM_NONE ? gp->V : gp->vo;
        attnc_buf_printf(b, "#define ATTNC_BP_STAGE_BYTES %u\n#define ATTNC_BP_DO_ES %u\n#define ATTNC_BP_DO_COLS %u\n"
                            "#define ATTNC_BP_DO_UNIT %u\n"
                            "#define ATTNC_BD_WY_STAGE_LO %uu   // the staged rows of attnc_bwdp_wy with saved states\n"
                            "#define ATTNC_BD_WY_STAGE_HI %uu\n",
                         gp->bp_stage_bytes, gp->bp_do_es, do_cols, cg_stage_unit(do_cols * gp->bp_do_es), wy_lo, wy_hi);
        const char *role_tag[3] = {"Q", "K", "V"};
        for (int i = 0; i < 3; i++)   /* a bf16 input as stored: its tile rows are its staged rows */
            attnc_buf_printf(b, "#define ATTNC_BP_%s_STAGE %d\n", role_tag[i],
                             gp->bp_role_stage[i] == ~0u ? -1 : (int)gp->bp_role_stage[i]);
        /* the query's and key's tiles as their input rows, with their l2norm factors (grad_plan's bp_qk_raw) */
        attnc_buf_printf(b, "#define ATTNC_BP_QK_RAW %d\n#define ATTNC_BP_Q_RAW_STAGE %d\n#define ATTNC_BP_K_RAW_STAGE %d\n",
                         gp->bp_qk_raw ? 1 : 0, gp->bp_qk_raw ? (int)gp->bp_raw_stage[0] : -1,
                         gp->bp_qk_raw ? (int)gp->bp_raw_stage[1] : -1);
        /* the register form's slots per role (attnc_bwd_roles_regs) */
        attnc_buf_printf(b, "#define ATTNC_BP_NQ %u\n#define ATTNC_BP_NK %u\n#define ATTNC_BP_NV %u\n#define ATTNC_BP_NG %u\n",
                         regs_slots_k(&g), regs_slots_k(&g), regs_slots_v(&g), regs_slots_g(&g));
        attnc_buf_printf(b, "#define ATTNC_BP_NL2 %u   // the l2norm factors of a token's saved states (p.l2f)\n", gp->bp_nl2);
        attnc_buf_puts(b, "template <int WANT>\n"
                          "__device__ __forceinline__ void attnc_bwd_roles_regs(const attnc_bwd_params &p, int t, int h, int lane,\n"
                          "                                float (&q)[ATTNC_BP_NQ], float (&k)[ATTNC_BP_NK], float (&v)[ATTNC_BP_NV],\n"
                          "                                float (&g)[ATTNC_BP_NG], float &beta, float &ig, float (&qkf)[2], const unsigned char *stage,\n"
                          "                                int r);\n");
        cg_emit_stage_held(&staged, "attnc_bwd_stage_held", "ATTNC_BP_C", "ATTNC_B_THREADS", "threadIdx.x");
        attnc_buf_puts(b, "template <int WANT>\n"
                          "__device__ __forceinline__ void attnc_bwd_roles_staged(const attnc_bwd_params &p, int t, int h, int lane, float *q,\n"
                          "                                float *k, float *v, float *g, float *beta, float *ig, const unsigned char *stage, int r);\n");
        attnc_buf_puts(b, stage_issue_decl);
        /* in a namespace of their own, so that the wide pass (emit_wide_pass) can define the same helpers
         * again without argument-dependent lookup finding both */
        attnc_buf_puts(b, "namespace attnc_bp {\n");
        attnc_buf_puts(b, attnc_linear_bwd_par_kernel_src);
        if (gp->bp_delta)
            attnc_buf_puts(b, attnc_linear_bwd_delta_kernel_src);
        attnc_buf_puts(b, "}   // namespace attnc_bp\nusing namespace attnc_bp;\n");
        if (gp->bp_delta) {
            attnc_buf_printf(b, "static_assert(attnc_bd_walk_layout::bytes == %uu && attnc_bd_wy_layout::bytes == %uu &&\n"
                                "              attnc_bd_wy_saved_layout::bytes == %uu, \"host and kernel disagree on shared memory\");\n",
                             gp->bp_walk_smem, gp->bd_wy_smem, gp->bd_wy_saved_smem);
            if (gp->bd_walk_ws_smem)
                attnc_buf_printf(b, "static_assert(attnc_bd_walk_ws_layout::bytes == %uu,\n"
                                    "              \"host and kernel disagree on shared memory\");\n",
                                 gp->bd_walk_ws_smem);
        } else {
            attnc_buf_printf(b, "static_assert(attnc_bp_walk_layout::bytes == %uu, \"host and kernel disagree on shared memory\");\n"
                                "static_assert(ATTNC_BP_SCAN_ROWS == %u, \"host and kernel disagree on the scan's rows per CTA\");\n",
                             gp->bp_walk_smem, gp->bp_scan_rows);
        }
    }
    if (gp->bidir)
        cg_bwd_emit_bidir(b);
    if (gp->linear && !gp->parallel)
        attnc_buf_puts(b, "static_assert(attnc_bwd_layout::bytes == ATTNC_B_SMEM_BYTES, \"host and kernel disagree on shared memory\");\n");
    if (gp->softmax)
        cg_bwd_emit_softmax(m, gp, b);
    if (gp->linear)
        emit_roles_fn(&g, false, false);
    if (gp->parallel) {
        emit_roles_fn(&g, true, false);
        emit_roles_fn(&g, true, true);
        cg_emit_stage_issue(&staged, "attnc_bwd_stage_issue", "attnc_bwd_params", "ATTNC_BP_C", "ATTNC_B_THREADS",
                            "threadIdx.x", "attnc_bwd_stage_held");
        if (gp->bp_nl2)
            emit_l2_factors_fn(&g);
    }
    emit_adjoint_fn(&g);
    if (gp->parallel)
        emit_wide_pass(b, gp, &staged);
    out->source = attnc_buf_str(b);
    return out->source != NULL && !attnc_arena_failed(a);
}
