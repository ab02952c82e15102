/* codegen/emit_value.c: the value DAG as CUDA C statements (emit_value.h), one rule per op for both
 * generators.  What differs between them comes from cg_values: the channel of a slot (cg_put_chan), the
 * slot count (cg_slots), the source of per-token inputs (staged rows or global memory) and min/max.
 * taylor2 is the one op whose code depends on the layout as a whole: the forward's runs of 4 channels
 * call support.cuh's attnc_taylor2, the backward's one-channel-per-lane layout gathers x_i and x_j from
 * their lanes with shuffles (attnc_taylor2_index, defined by cuda_bwd.c).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "emit_value.h"

unsigned cg_slots(cg_layout layout, unsigned len)
{
    return layout == CG_LAYOUT_RUN4 ? (len + 127) / 128 * 4 : (len + 31) / 32;
}

unsigned cg_run4_chan(unsigned s)
{
    return s / 4 * 128 + s % 4;
}

void cg_put_chan(const cg_values *e, unsigned s)
{
    if (e->layout == CG_LAYOUT_RUN4)
        attnc_buf_printf(e->b, "lane * 4 + %u", cg_run4_chan(s));
    else
        attnc_buf_printf(e->b, "lane + %u", 32 * s);
}

void cg_put_float(attnc_buf *b, double x)
{
    char s[48];
    snprintf(s, sizeof s, "%.9g", x);
    if (!strpbrk(s, ".eEn"))
        strcat(s, ".0");
    attnc_buf_printf(b, "(%sf)", s);
}

const char *cg_dtype_macro(int dt)
{
    return dt == IR_DT_BF16 ? "ATTNC_DT_BF16" : dt == IR_DT_FP16 ? "ATTNC_DT_FP16" : "ATTNC_DT_FP32";
}

void cg_emit_role_bits(attnc_buf *b)
{
    attnc_buf_printf(b, "// the roles as bits of a mask (WANT: the roles a kernel body forms and whose inputs it copies)\n"
                        "#define ATTNC_ROLE_Q %uu\n#define ATTNC_ROLE_K %uu\n#define ATTNC_ROLE_V %uu\n#define ATTNC_ROLE_GATE %uu\n"
                        "#define ATTNC_ROLE_BETA %uu   // beta and the input gate\n#define ATTNC_ROLES_ALL %uu\n"
                        "#define ATTNC_ROLE_L2F %uu   // (not a role) the l2norm factors are the saved ones (p.l2f), staged\n"
                        "#define ATTNC_ROLE_UNSAVED %uu   // (not a role) the kernel runs only where no states were saved\n",
                     CG_ROLE_Q, CG_ROLE_K, CG_ROLE_V, CG_ROLE_GATE, CG_ROLE_BETA, CG_ROLES_ALL, CG_ROLE_L2F, CG_ROLE_UNSAVED);
}

/* The head of `axis` that output head `out_head` (an expression) reads. */
static void put_head_of(const cg_values *e, unsigned axis, const char *out_head)
{
    attnc_buf_printf(e->b, "(%s / (ATTNC_HOUT / %u))", out_head, e->m->axes[axis].count);
}

void cg_put_head(const cg_values *e, unsigned axis)
{
    put_head_of(e, axis, "h");
}

void cg_put_ref(const cg_values *e, char prefix, ir_ref r, unsigned s)
{
    if (e->m->values[r].type.len == 1)
        attnc_buf_printf(e->b, "%c%u", prefix, r);
    else
        attnc_buf_printf(e->b, "%c%u[%u]", prefix, r, s);
}

static const char *elem_fn(ir_op op)
{
    switch (op) {
    case IR_OP_POW: return "powf";
    case IR_OP_MIN: return "fminf";
    case IR_OP_MAX: return "fmaxf";
    case IR_OP_EXP: return "attnc_exp";
    case IR_OP_LOG: return "logf";
    case IR_OP_SQRT: return "sqrtf";
    case IR_OP_RSQRT: return "rsqrtf";
    case IR_OP_ABS: return "fabsf";
    case IR_OP_TANH: return "tanhf";
    case IR_OP_SIGMOID: return "attnc_sigmoid";
    case IR_OP_LOGSIGMOID: return "attnc_logsigmoid";
    case IR_OP_SOFTPLUS: return "attnc_softplus";
    case IR_OP_ELU: return "attnc_elu";
    case IR_OP_SILU: return "attnc_silu";
    default: return NULL;
    }
}

/* Two identities that spare a token's values their costliest calls, both closer to the reference's float64
 * than the calls they replace: 2^w as exp2f(w) (powf's general path for a constant base of 2: lightning's
 * and retnet's decays), and log(exp(x)) as x (lightning's gate, the log of its decay exp(...)).  The
 * operand exp(x) keeps its own statement, for any other reader and for the adjoint, which reads it. */
static bool is_const(const ir_module *m, ir_ref r, double x)
{
    return m->values[r].op == IR_OP_CONST && m->values[r].num == x;
}

/* The expression of elementwise value v at slot s (operands x = arg 0, w = arg 1). */
static void put_elem(const cg_values *e, const ir_value *v, unsigned s)
{
    attnc_buf *b = e->b;
    ir_op op = (ir_op)v->op;
    static const char infix[IR_OP_COUNT] = {[IR_OP_ADD] = '+', [IR_OP_SUB] = '-', [IR_OP_MUL] = '*', [IR_OP_DIV] = '/'};
    if (op == IR_OP_LOG && e->m->values[v->arg[0]].op == IR_OP_EXP &&
        e->m->values[v->arg[0]].type.len == v->type.len) {
        attnc_buf_puts(b, "(");
        cg_put_ref(e, 'v', e->m->values[v->arg[0]].arg[0], s);
        attnc_buf_puts(b, ")");
    } else if (op == IR_OP_POW && is_const(e->m, v->arg[0], 2.0)) {
        attnc_buf_puts(b, "exp2f(");
        cg_put_ref(e, 'v', v->arg[1], s);
        attnc_buf_puts(b, ")");
    } else if (op == IR_OP_NEG) {
        attnc_buf_puts(b, "(-");
        cg_put_ref(e, 'v', v->arg[0], s);
        attnc_buf_puts(b, ")");
    } else if (infix[op]) {
        attnc_buf_puts(b, "(");
        cg_put_ref(e, 'v', v->arg[0], s);
        attnc_buf_printf(b, " %c ", infix[op]);
        cg_put_ref(e, 'v', v->arg[1], s);
        attnc_buf_puts(b, ")");
    } else if (op == IR_OP_RELU) {
        attnc_buf_puts(b, "fmaxf(");
        cg_put_ref(e, 'v', v->arg[0], s);
        attnc_buf_puts(b, ", 0.f)");
    } else if (e->select_minmax && (op == IR_OP_MIN || op == IR_OP_MAX)) {
        /* as the reference: x < w ? x : w (min), x > w ? x : w (max), w on a tie */
        attnc_buf_puts(b, "(");
        cg_put_ref(e, 'v', v->arg[0], s);
        attnc_buf_puts(b, op == IR_OP_MIN ? " < " : " > ");
        cg_put_ref(e, 'v', v->arg[1], s);
        attnc_buf_puts(b, " ? ");
        cg_put_ref(e, 'v', v->arg[0], s);
        attnc_buf_puts(b, " : ");
        cg_put_ref(e, 'v', v->arg[1], s);
        attnc_buf_puts(b, ")");
    } else {
        attnc_buf_printf(b, "%s(", elem_fn(op));
        cg_put_ref(e, 'v', v->arg[0], s);
        if (ir_op_arity(op) == 2) {
            attnc_buf_puts(b, ", ");
            cg_put_ref(e, 'v', v->arg[1], s);
        }
        attnc_buf_puts(b, ")");
    }
}

/* A tensor's value: the row of this token (input) or head (param), then its channels. */
static void emit_load(const cg_values *e, ir_ref r)
{
    const ir_module *m = e->m;
    const ir_value *v = &m->values[r];
    const ir_tensor *t = &m->tensors[v->aux];
    attnc_buf *b = e->b;
    unsigned len = v->type.len, ns = cg_slots(e->layout, len);
    bool input = v->op == IR_OP_INPUT, staged = input && e->stage_off;
    attnc_buf_printf(b, "    // %s %s: %s [%s%s%u]\n", input ? "input" : "param", t->name, ir_dtype_name(t->dtype),
                     input ? "T, " : "", m->axes[t->axis].name, t->len);
    char src[64];
    if (staged) {
        snprintf(src, sizeof src, "stage + %u", e->stage_off[v->aux]);
        attnc_buf_printf(b, "    const size_t row%u = (size_t)r * %u;\n", r, t->len);
    } else {
        snprintf(src, sizeof src, "p.in[%u]", v->aux);
        attnc_buf_printf(b, "    const size_t row%u = (size_t)", r);
        if (input)
            attnc_buf_printf(b, "((size_t)t * %u + ", m->axes[t->axis].count);
        cg_put_head(e, t->axis);
        attnc_buf_printf(b, "%s * %u;\n", input ? ")" : "", t->len);
    }
    const char *dt = cg_dtype_macro(t->dtype);
    if (len == 1) {
        attnc_buf_printf(b, "    const float v%u = attnc_load%s<%s>(%s, row%u);\n", r, staged ? "" : "_in", dt, src, r);
    } else if (staged && e->layout == CG_LAYOUT_RUN4 && len % 4 == 0) {
        /* Staged rows are 16-byte aligned and len % 4 == 0: a lane's run of four channels in one load. */
        attnc_buf_printf(b, "    float v%u[%u];\n", r, ns);
        for (unsigned s = 0; s < ns; s += 4) {
            attnc_buf_printf(b, "    attnc_load4<%s>(%s, row%u + ", dt, src, r);
            cg_put_chan(e, s);
            attnc_buf_printf(b, ", v%u + %u, ", r, s);
            cg_put_chan(e, s);
            attnc_buf_printf(b, " < %u);\n", len);
        }
    } else {
        attnc_buf_printf(b, "    float v%u[%u];\n", r, ns);
        for (unsigned s = 0; s < ns; s++) {
            attnc_buf_printf(b, "    v%u[%u] = ", r, s);
            cg_put_chan(e, s);
            attnc_buf_printf(b, " < %u ? attnc_load%s<%s>(%s, row%u + ", len, staged ? "" : "_in", dt, src, r);
            cg_put_chan(e, s);
            attnc_buf_puts(b, ") : 0.f;\n");
        }
    }
}

/* out = [1, x / d^(1/4), x_i^2 / (sqrt2 sqrt d), x_i x_j / sqrt d (i < j, row-major)] (ref_eval.c). */
static void emit_taylor2(const cg_values *e, ir_ref r)
{
    attnc_buf *b = e->b;
    ir_ref x = e->m->values[r].arg[0];
    unsigned len = e->m->values[r].type.len, ns = cg_slots(e->layout, len), d = e->m->values[x].type.len;
    attnc_buf_printf(b, "    float v%u[%u];\n", r, ns);
    if (e->layout == CG_LAYOUT_RUN4) {
        /* support.cuh's attnc_taylor2 reads x from the run-of-4 layout; every lane calls it on every slot
         * (its shuffles need the whole warp) */
        for (unsigned s = 0; s < ns; s++) {
            attnc_buf_printf(b, "    v%u[%u] = ", r, s);
            cg_put_chan(e, s);
            attnc_buf_printf(b, " < %u ? attnc_taylor2(v%u, %u, ", len, x, d);
            cg_put_chan(e, s);
            attnc_buf_printf(b, ") : (attnc_taylor2(v%u, %u, 0), 0.f);\n", x, d);
        }
        return;
    }
    /* each output channel finds its (kind, i, j) and reads x_i, x_j from their lanes */
    unsigned nx = cg_slots(e->layout, d);
    double rd = sqrt((double)d);
    for (unsigned s = 0; s < ns; s++) {
        attnc_buf_printf(b, "    {\n        int kind, i, j;\n        attnc_taylor2_index(%u + lane, %u, kind, i, j);\n", 32 * s, d);
        attnc_buf_puts(b, "        float xi = 0.f, xj = 0.f;\n");
        for (unsigned t = 0; t < nx; t++)
            attnc_buf_printf(b, "        { const float a = __shfl_sync(0xffffffffu, v%u[%u], i & 31), c = __shfl_sync(0xffffffffu, v%u[%u], j & 31);\n"
                                "          if ((i >> 5) == %u) xi = a;\n          if ((j >> 5) == %u) xj = c; }\n",
                             x, t, x, t, t, t);
        attnc_buf_printf(b, "        v%u[%u] = %u + lane >= %u ? 0.f : kind == 0 ? 1.f : kind == 1 ? xi * ", r, s, 32 * s, len);
        cg_put_float(b, 1.0 / sqrt(rd));
        attnc_buf_puts(b, " : kind == 2 ? xi * xi * ");
        cg_put_float(b, 1.0 / (sqrt(2.0) * rd));
        attnc_buf_puts(b, " : xi * xj * ");
        cg_put_float(b, 1.0 / rd);
        attnc_buf_puts(b, ";\n    }\n");
    }
}

unsigned cg_l2_index(const cg_values *e, ir_ref r)
{
    for (unsigned j = 0; j < e->nl2; j++)
        if (e->l2_values[j] == r)
            return j;
    return ~0u;
}

unsigned cg_l2_roles_any(const unsigned *roles, unsigned n)
{
    unsigned any = 0;
    for (unsigned j = 0; j < n; j++)
        any |= roles[j];
    return any;
}

void cg_emit_value(const cg_values *e, ir_ref r)
{
    const ir_value *v = &e->m->values[r];
    attnc_buf *b = e->b;
    unsigned len = v->type.len, ns = cg_slots(e->layout, len);
    switch ((ir_op)v->op) {
    case IR_OP_CONST:
        attnc_buf_printf(b, "    const float v%u = ", r);
        cg_put_float(b, v->num);
        attnc_buf_puts(b, ";\n");
        return;
    case IR_OP_HEAD:
        /* (read through attnc_opaque: a value of the head alone is then formed where it is used, support.cuh) */
        attnc_buf_printf(b, "    const float v%u = (float)", r);
        put_head_of(e, v->aux, "attnc_opaque(h)");
        attnc_buf_puts(b, ";\n");
        return;
    case IR_OP_INPUT:
    case IR_OP_PARAM:
        emit_load(e, r);
        return;
    case IR_OP_L2NORM: {
        ir_ref x = v->arg[0];
        attnc_buf_printf(b, "    float v%u[%u], l2inv%u;\n    {\n        float ss = 0.f;\n", r, ns, r);
        for (unsigned s = 0; s < ns; s++)
            attnc_buf_printf(b, "        ss += v%u[%u] * v%u[%u];\n", x, s, x, s);
        unsigned j = cg_l2_index(e, r);
        if (e->l2_saved && j < e->nl2) {   /* the forward's factor where it saved one: no warp sum */
            /* a staged form is a template on WANT (attnc_bwd_roles_staged, _regs), whose ATTNC_ROLE_L2F its
             * caller sets where p.l2f is: no branch here */
            if (e->stage_off)
                attnc_buf_printf(b, "        if constexpr ((WANT & ATTNC_ROLE_L2F) != 0)\n"
                                    "            l2inv%u = ((const float *)(stage + %u))[r * %u + %u];   // (staged)\n",
                                 r, e->l2_stage_off, e->nl2, j);
            else
                attnc_buf_printf(b, "        if (p.l2f)\n            l2inv%u = p.l2f[((size_t)t * ATTNC_HOUT + h) * %u + %u];\n", r,
                                 e->nl2, j);
            attnc_buf_puts(b, "        else\n    ");
        }
        attnc_buf_printf(b, "        l2inv%u = rsqrtf(attnc_warp_sum(ss) + 1e-6f);\n", r);
        for (unsigned s = 0; s < ns; s++)
            attnc_buf_printf(b, "        v%u[%u] = v%u[%u] * l2inv%u;\n", r, s, x, s, r);
        attnc_buf_puts(b, "    }\n");
        return;
    }
    case IR_OP_TAYLOR2:
        emit_taylor2(e, r);
        return;
    default:
        break;
    }
    if (len == 1) {
        attnc_buf_printf(b, "    const float v%u = ", r);
        put_elem(e, v, 0);
        attnc_buf_puts(b, ";\n");
        return;
    }
    attnc_buf_printf(b, "    float v%u[%u];\n", r, ns);
    for (unsigned s = 0; s < ns; s++) {
        attnc_buf_printf(b, "    v%u[%u] = ", r, s);
        cg_put_chan(e, s);
        attnc_buf_printf(b, " < %u ? ", len);
        put_elem(e, v, s);
        attnc_buf_puts(b, " : 0.f;\n");
    }
}

unsigned cg_stage_unit(unsigned row_bytes)
{
    return row_bytes % 16 == 0 ? 16 : row_bytes % 8 == 0 ? 8 : row_bytes % 4 == 0 ? 4 : 2;
}

/* The most pieces of a tensor's chunk of rows one thread issues, per_row pieces a row: thread t's j-th is
 * piece t + j * threads. */
static void put_pieces_per_thread(attnc_buf *b, unsigned per_row, const char *chunk, const char *threads)
{
    attnc_buf_printf(b, "(%s * %u + %s - 1) / %s", chunk, per_row, threads, threads);
}

/* Rows of 2 bytes have no cp.async (its sizes are 4, 8 and 16): a plain load whose shared-memory store
 * waits for it held the whole CTA at the next barrier (ncu on the H200: the delta rule's beta, 4 % of the
 * forward's samples at that barrier).  With a held type the issue leaves them in registers, which
 * `held`_land stores before the copies are waited for, a chunk later. */
static bool staged_by_plain_loads(const cg_values *e, uint32_t i, unsigned *row_bytes)
{
    const ir_tensor *t = &e->m->tensors[i];
    *row_bytes = t->len * ir_dtype_bytes(t->dtype);
    return e->stage_off[i] != ~0u && cg_stage_unit(*row_bytes) == 2;
}

/* "    if constexpr (WANT & mask) " before tensor i's copies where the staging has a WANT (cg_values.stage_roles),
 * else the indent alone. */
static void put_want_guard(const cg_values *e, uint32_t i)
{
    attnc_buf_puts(e->b, "    ");
    if (e->stage_roles)
        attnc_buf_printf(e->b, "if constexpr (WANT & %uu) ", e->stage_roles[i]);
}

void cg_emit_stage_held(const cg_values *e, const char *held, const char *chunk, const char *threads, const char *tid)
{
    const ir_module *m = e->m;
    attnc_buf *b = e->b;
    attnc_buf_printf(b, "\n// ---- staging: rows of 2 bytes, held in registers from the issue to the land (generated) ----\n"
                        "struct %s {\n    unsigned short x[1", held);
    unsigned rb;
    for (uint32_t i = 0; i < m->ntensors; i++)
        if (staged_by_plain_loads(e, i, &rb)) {
            attnc_buf_puts(b, " + ");
            put_pieces_per_thread(b, rb / 2, chunk, threads);
        }
    attnc_buf_printf(b, "];\n};\n%s"
                        "__device__ __forceinline__ void %s_land(unsigned char *stage, const %s &held)\n{\n"
                        "    int slot = 0;\n    (void)stage, (void)held, (void)slot;\n",
                     e->stage_roles ? "template <unsigned WANT = ATTNC_ROLES_ALL>\n" : "", held, held);
    for (uint32_t i = 0; i < m->ntensors; i++) {
        if (!staged_by_plain_loads(e, i, &rb))
            continue;
        put_want_guard(e, i);
        attnc_buf_printf(b, "{   // %s\n#pragma unroll\n        for (int j = 0; j < ", m->tensors[i].name);
        put_pieces_per_thread(b, rb / 2, chunk, threads);
        attnc_buf_printf(b, "; j++, slot++) {\n"
                            "            const unsigned i = %s + j * %s;\n"
                            "            if (i < %s * %uu)\n"
                            "                *(unsigned short *)(stage + %u + i / %u * %u + i %% %u * 2) = held.x[slot];\n"
                            "        }\n    }\n",
                         tid, threads, chunk, rb / 2, e->stage_off[i], rb / 2, rb, rb / 2);
    }
    attnc_buf_puts(b, "}\n");
}

/* One piece's copy from `from` to `to` (cp.async, or a plain load and store for 2 bytes). */
static void put_stage_copy(attnc_buf *b, unsigned unit, const char *indent)
{
    if (unit == 2)
        attnc_buf_printf(b, "%s            *(unsigned short *)to = *(const unsigned short *)from;\n", indent);
    else
        attnc_buf_printf(b, "%s            asm volatile(\"cp.async.%s.shared.global [%%0], [%%1], %u;\\n\" :: \"r\"(smem_u32(to)), \"l\"(from) : \"memory\");\n",
                         indent, unit == 16 ? "cg" : "ca", unit);
}

unsigned cg_stage_max_pieces(const cg_values *e, unsigned chunk, unsigned threads)
{
    unsigned most = 0, rb;
    for (uint32_t i = 0; i < e->m->ntensors; i++)
        if (e->stage_off[i] != ~0u && !staged_by_plain_loads(e, i, &rb)) {
            unsigned pieces = (chunk * (rb / cg_stage_unit(rb)) + threads - 1) / threads;
            most = pieces > most ? pieces : most;
        }
    return most;
}

/* The copies of one staged block's chunk of rows (a tensor's, or the l2norm factors'), after its opening line
 * and its `src` (the chunk's first row, a row every `stride` bytes): n rows of rb bytes into stage + off. */
static void emit_stage_copies(const cg_values *e, unsigned rb, unsigned stride, unsigned off, bool held, const char *chunk,
                              const char *threads, const char *tid)
{
    attnc_buf *b = e->b;
    unsigned unit = cg_stage_unit(rb), per_row = rb / unit;
    bool in_registers = unit == 2 && held;
    /* UNROLL: loops of constant trip count, unrolled (thread t copies pieces t, t + threads, ... of the
     * chunk's rows; with threads a multiple of a row's pieces, each piece's addresses are the first's
     * plus constants); else one loop over the pieces.  Rows held in registers are always unrolled:
     * their slots are registers. */
    if (!in_registers) {
        attnc_buf_printf(b, "        if constexpr (!UNROLL) {\n"
                            "            for (int i = %s; i < n * %u; i += %s) {\n"
                            "                const unsigned r = (unsigned)i / %u, u = (unsigned)i %% %u;\n"
                            "                const unsigned char *from = src + (r * %uu + u * %u);\n"
                            "                unsigned char *to = stage + %u + r * %u + u * %u;\n",
                         tid, per_row, threads, per_row, per_row, stride, unit, off, rb, unit);
        put_stage_copy(b, unit, "    ");
        attnc_buf_puts(b, "            }\n        } else\n");
    }
    attnc_buf_puts(b, "#pragma unroll\n        for (int j = 0; j < ");
    put_pieces_per_thread(b, per_row, chunk, threads);
    attnc_buf_printf(b, "; j++%s) {\n"
                        "            const unsigned i = %s + j * %s, r = i / %u, u = i %% %u;\n"
                        "            const unsigned char *from = src + (r * %uu + u * %u);\n",
                     in_registers ? ", slot++" : "", tid, threads, per_row, per_row, stride, unit);
    if (in_registers)
        attnc_buf_printf(b, "            if (held)\n"
                            "                held->x[slot] = i < (unsigned)n * %uu ? *(const unsigned short *)from : 0;\n"
                            "            else if (i < (unsigned)n * %uu)\n"
                            "                *(unsigned short *)(stage + %u + r * %u + u * 2) = *(const unsigned short *)from;\n",
                         per_row, per_row, off, rb);
    else {
        attnc_buf_printf(b, "            unsigned char *to = stage + %u + r * %u + u * %u;\n"
                            "            if (i < (unsigned)n * %uu)\n",
                         off, rb, unit, per_row);
        put_stage_copy(b, unit, "    ");
    }
    attnc_buf_puts(b, "        }\n    }\n");
}

void cg_emit_stage_issue(const cg_values *e, const char *fn, const char *params, const char *chunk, const char *threads,
                         const char *tid, const char *held)
{
    const ir_module *m = e->m;
    attnc_buf *b = e->b;
    attnc_buf_printf(b, "\n// ---- staging: the raw input rows of one chunk, copied asynchronously (generated) ----\n"
                        "template <bool UNROLL%s>\n"
                        "__device__ __forceinline__ void %s(const %s &p, int c0, int eos, int h, unsigned char *stage",
                     e->stage_roles ? ", unsigned WANT" : "", fn, params);
    if (held)
        attnc_buf_printf(b, ", %s *held", held);
    attnc_buf_printf(b, ")\n{\n    const int n = min(%s, eos - c0);\n", chunk);
    if (held)
        attnc_buf_puts(b, "    int slot = 0;\n    (void)held, (void)slot;\n");
    for (uint32_t i = 0; i < m->ntensors; i++) {
        if (e->stage_off[i] == ~0u)
            continue;
        const ir_tensor *t = &m->tensors[i];
        unsigned rb = t->len * ir_dtype_bytes(m->tensors[i].dtype), unit = cg_stage_unit(rb);
        /* Row c0 of the head in 64 bits once, then 32-bit offsets (a row is under 64 KB, a chunk 64
         * rows): the 64-bit address of every copy cost about 30 instructions (nvdisasm of Mamba-2's
         * kernel: 495 instructions of staging per chunk, 399 now). */
        unsigned heads = m->axes[t->axis].count;
        bool in_registers = unit == 2 && held;
        put_want_guard(e, i);
        attnc_buf_printf(b, "{   // %s: rows of %u bytes, %u-byte %s\n"
                            "        const unsigned char *src = (const unsigned char *)p.in[%u] + ((size_t)c0 * %u + ",
                         t->name, rb, unit, in_registers ? "loads held in registers" : unit == 2 ? "loads" : "copies", i, heads);
        cg_put_head(e, t->axis);
        attnc_buf_printf(b, ") * %u;\n", rb);
        emit_stage_copies(e, rb, heads * rb, e->stage_off[i], held != NULL, chunk, threads, tid);
    }
    if (e->l2_saved && e->nl2 && e->l2_stage_off != ~0u) {   /* the forward's l2norm factors, where it saved them */
        unsigned want = cg_l2_roles_any(e->l2_roles, e->nl2), rb = e->nl2 * 4;
        attnc_buf_puts(b, "    ");
        if (e->stage_roles)
            attnc_buf_printf(b, "if constexpr ((WANT & %uu) && !(WANT & ATTNC_ROLE_UNSAVED)) ", want);
        attnc_buf_printf(b, "if (p.l2f) {   // the saved l2norm factors: rows of %u bytes, %u-byte copies\n"
                            "        const unsigned char *src = (const unsigned char *)p.l2f + ((size_t)c0 * ATTNC_HOUT + h) * %u;\n",
                         rb, cg_stage_unit(rb), rb);
        emit_stage_copies(e, rb, ir_module_shape(m).heads_out * rb, e->l2_stage_off, false, chunk, threads, tid);
    }
    attnc_buf_puts(b, "    asm volatile(\"cp.async.commit_group;\\n\" ::: \"memory\");\n}\n");
}
