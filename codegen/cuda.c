/* codegen/cuda.c: the CUDA C generator (codegen.h).
 *
 * Two halves:
 *   - constants: everything the plan fixed (chunk, padded K, V slice, warps, class, normaliser, head
 *     counts, dtypes) becomes an ATTNC_* macro, so that the kernel body (an embedded template) is
 *     specialised by the compiler and carries no run-time branches on the variant;
 *   - the prologue: the value DAG the roles reach is printed as straight-line code, one statement per
 *     value (emit_value.c, CG_LAYOUT_RUN4).  A scalar value is one float (every lane computes it); a
 *     vector value of length L is an array of 4 ceil(L/128) floats: each lane holds runs of 4 consecutive
 *     channels, slot s being channel 128 (s / 4) + 4 lane + s % 4 (cg_run4_chan), so that rows move with
 *     8- and 16-byte loads and stores; channels >= L are held at 0 so that whole-vector ops (l2norm,
 *     taylor2) see only real channels.
 * The shared-memory size is computed here and asserted against the kernel's own layout at compile time,
 * so the two can never disagree silently.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "attnc.h"
#include "codegen.h"
#include "emit_value.h"
#include "grad.h"
#include "passes.h"

extern const char attnc_support_src[];
extern const char attnc_linear_kernel_src[];
extern const char attnc_linear_ws_kernel_src[];
extern const char attnc_softmax_kernel_src[];
extern const char attnc_decode_kernel_src[];

typedef struct gen {
    const ir_module *m;
    attnc_buf b;
    ir_shape sh;
    cg_output *out;
    bool *live;       /* per value: reached by the roles being emitted */
    bool *gate_cone;  /* per value: reached by the gate role */
    attnc_arena *arena;
    /* the l2norm factors the walk saves with its states for the backward (grad_l2_factors; their count is
     * ev.nl2, 0: none): ev points at these */
    ir_ref l2_values[GRAD_MAX_L2];
    unsigned l2_roles[GRAD_MAX_L2];
    unsigned stage_off[CG_MAX_TENSORS]; /* per-token inputs: offset of their rows in the staging area */
    unsigned stage_bytes;
    unsigned stage_roles[CG_MAX_TENSORS]; /* per tensor: the roles its rows feed (CG_ROLE_* bits) */
    cg_values ev;     /* the value emitter: into b, layout CG_LAYOUT_RUN4, inputs from stage_off */
} gen;

static void mark_live(gen *g, ir_ref r)
{
    if (r == IR_NONE || g->live[r])
        return;
    g->live[r] = true;
    const ir_value *v = &g->m->values[r];
    for (int k = 0; k < ir_op_arity((ir_op)v->op); k++)
        mark_live(g, v->arg[k]);
}

/* Stores a role row (register array `row`, RUN4 slots) into a row of a shared tile: channels [lo, lo +
 * count) go to columns 0..  `lo` (a number or an expression such as "v0") and `count` are multiples of 4,
 * so a lane's run of 4 channels is wholly in or out and moves as one 8-byte store (tile rows are 16-byte
 * aligned). */
static void store_row(gen *g, const char *row, unsigned slots, bool raw, const char *tile, const char *ld, const char *lo,
                      const char *count)
{
    for (unsigned s = 0; s < slots; s += 4) {
        unsigned c = cg_run4_chan(s);
        attnc_buf_printf(&g->b, "    if (lane * 4 + %u >= %s && lane * 4 + %u < %s + %s)\n", c, lo, c, lo, count);
        if (raw)   /* a raw row (role_raw): run s / 4 as it is */
            attnc_buf_printf(&g->b, "        *(uint2 *)(%s + r * %s + lane * 4 + %u - %s) = %sr[%u];\n", tile, ld, c, lo, row,
                             s / 4);
        else
            attnc_buf_printf(&g->b, "        attnc_store4(%s + r * %s + lane * 4 + %u - %s, %s[%u], %s[%u], %s[%u], %s[%u]);\n",
                             tile, ld, c, lo, row, s, row, s + 1, row, s + 2, row, s + 3);
    }
}

/* A role as the kernel loads it: the folded input for a scaled query, else the role's value. */
static ir_ref fed(const gen *g, ir_role role)
{
    const ir_plan *p = &g->m->plan;
    return p->feed[role] == IR_FEED_SCALED ? p->feed_src[role] : *ir_role_slot((ir_module *)g->m, role);
}

/* Lays out the staging area: the rows of every per-token input the live values read. */
static void plan_stage(gen *g)
{
    const ir_module *m = g->m;
    g->stage_bytes = 0;
    for (uint32_t i = 0; i < m->ntensors; i++)
        g->stage_off[i] = ~0u;
    for (ir_ref r = 1; r < m->nvalues; r++) {
        const ir_value *v = &m->values[r];
        if (!g->live[r] || v->op != IR_OP_INPUT || g->stage_off[v->aux] != ~0u)
            continue;
        g->stage_off[v->aux] = g->stage_bytes;
        g->stage_bytes += tile_stage_bytes(m, v->aux);
    }
}

/* The values the roles reach (g->live), the staging area of the inputs they read and the roles each
 * input feeds (g->stage_roles: a kernel body that forms only some roles copies only their inputs). */
static void plan_roles(gen *g)
{
    const ir_module *m = g->m;
    ir_ref roots[] = {fed(g, IR_ROLE_QUERY), fed(g, IR_ROLE_KEY), fed(g, IR_ROLE_VALUE),
                      m->linear.gate, m->linear.beta, m->linear.igate};
    const unsigned bits[] = {CG_ROLE_Q, CG_ROLE_K, CG_ROLE_V, CG_ROLE_GATE, CG_ROLE_BETA, CG_ROLE_BETA};
    memset(g->stage_roles, 0, sizeof g->stage_roles);
    for (size_t i = 0; i < sizeof roots / sizeof *roots; i++) {
        memset(g->live, 0, m->nvalues * sizeof *g->live);
        mark_live(g, roots[i]);
        for (ir_ref r = 1; r < m->nvalues; r++)
            if (g->live[r] && m->values[r].op == IR_OP_INPUT)
                g->stage_roles[m->values[r].aux] |= bits[i];
        if (bits[i] == CG_ROLE_GATE)
            memcpy(g->gate_cone, g->live, m->nvalues * sizeof *g->live);
    }
    memset(g->live, 0, m->nvalues * sizeof *g->live);
    for (size_t i = 0; i < sizeof roots / sizeof *roots; i++)
        mark_live(g, roots[i]);
    plan_stage(g);
}

/* The number of RUN4 slots a role row of value r fills (a scalar broadcasts over a row's slots). */
static unsigned row_slots(const gen *g, ir_ref r)
{
    return cg_slots(CG_LAYOUT_RUN4, g->m->values[r].type.len);
}

/* Whether a lane forms a token's gate alone (linear_kernel.cuh's ATTNC_GATE_LANES: warp 0 forms the chunk's
 * gates, a token a lane, and their cumulative sum in the prologue, while the other warps form their rows,
 * rather than after the prologue's barrier with seven warps waiting for it at the next): a scalar or
 * constant decay whose values are all scalars, without mLSTM's input gate and stabiliser. */
static bool gate_by_lane(const gen *g)
{
    const ir_module *m = g->m;
    if (!m->linear.gate || (m->plan.transition != IR_TR_SCALAR && m->plan.transition != IR_TR_CONST) ||
        m->linear.igate != IR_NONE || m->plan.stabilized)
        return false;
    for (ir_ref r = 1; r < m->nvalues; r++)
        if (g->gate_cone[r] && m->values[r].type.len != 1)
            return false;
    return true;
}

/* Whether the warp-specialised walk (linear_ws_kernel.cuh, taken by the launcher on sm_90a) covers the plan:
 * the causal walk of all of V in one CTA with a scalar or constant decay and no normaliser (lightning,
 * mamba2), or the delta rule with such a decay or none (deltanet, gated_deltanet: its producers run the WY
 * stage), and its buffers within the shared memory a CTA may have.  The kernel itself takes per-channel
 * gates and row norms too, but at the consumers' 224 registers gla's spilled 48 bytes, retnet's 216
 * (sm_90a); the stabiliser, the input gate and the running denominator would need more of its steps moved. */
static bool ws_eligible(const gen *g, unsigned smem_bytes)
{
    const ir_module *m = g->m;
    const ir_plan *p = &m->plan;
    bool decay_ok = p->transition == IR_TR_SCALAR || p->transition == IR_TR_CONST ||
                    (p->householder && p->transition == IR_TR_IDENTITY);
    return m->mask == IR_MASK_CAUSAL && decay_ok && !p->stabilized && m->linear.igate == IR_NONE &&
           m->linear.norm == IR_NORM_NONE && p->v_tile == g->sh.V && smem_bytes <= 227u * 1024;
}

/* The warp-specialised walk's producer threads (warpgroups: setmaxnreg moves registers between whole ones):
 * one, and two for the delta rule, whose producers also run the WY stage.  With one, gated_delta's walk at
 * T = 8192 took 1.52 ms on the H200 (1.56 without warp specialisation, 1.35 with two; bench/RESULTS.md,
 * thirty-third session): 12.6 % of its stall samples were consumers waiting at FULL, hardly any producers
 * at EMPTY, and the producers alone (the consumers doing nothing) took 1.16 ms. */
static unsigned ws_producers(const gen *g)
{
    return g->m->plan.householder ? 256u : 128u;
}

/* Whether its producers also form the causal scores' excess blocks (ATTNC_WS_EXCESS, linear_kernel.cuh's
 * WS_PCAP): with a constant decay, whose producers form no gates. On the H200 (bench/RESULTS.md,
 * thirty-second session) lightning's walk went 0.620 -> 0.604 ms at T = 8192, mamba2's (a gate per token)
 * 0.639 -> 0.690: its producers became the critical path. */
static bool ws_excess(const gen *g)
{
    return g->m->plan.transition == IR_TR_CONST;
}

/* Its shared memory: the walk's layout and staging, then a second buffer of Q, K, K * e^{b_L - b}, per-channel
 * gates' K * e^{b_e - b}, V and the gates, then with the scores' excess two tiles of the blocks the producers
 * form, rows and columns (RG - cap) * 16 with cap = (RG + 1) / 2 (attnc_ws_layout, WS_PCAP), then the delta
 * rule's second -W tile and two fp32 U tiles of C rows and V + 8 columns. */
static unsigned ws_smem_bytes(const gen *g, unsigned walk_bytes)
{
    const ir_plan *p = &g->m->plan;
    bool diag = p->transition == IR_TR_DIAG;
    unsigned eb = ir_operand_bytes(p->operands), tile_k = p->chunk * (p->k_pad + 8) * eb;
    unsigned row_groups = p->chunk / 16, excess_rows = ws_excess(g) ? (row_groups - (row_groups + 1) / 2) * 16 : 0;
    unsigned gate_bytes = tile_round_up(p->chunk * (diag ? p->k_pad : 1) * 4, 16);
    unsigned delta_bytes = p->householder ? tile_k + 2 * p->chunk * (p->v_tile + 8) * 4 : 0;
    return walk_bytes + (diag ? 4 : 3) * tile_k + p->chunk * (p->v_tile + 8) * eb + gate_bytes +
           2 * excess_rows * (excess_rows + 8) * eb + delta_bytes;
}

/* The gate's slots in struct attnc_row: a lane's run of channels for a per-channel gate, else one. */
static unsigned gate_slots(const gen *g)
{
    ir_ref gate = g->m->linear.gate;
    return gate && g->m->plan.transition == IR_TR_DIAG && g->m->values[gate].type.len > 1 ? row_slots(g, gate) : 1;
}

/* Whether the tiles take a q, k or v role's staged input rows as they are (the role is an input, or a
 * query whose scale the kernel applies later, of the tiles' 16-bit type): the prologue then moves a lane's
 * four channels as 8 raw bytes (attnc_row's qr, kr, vr) instead of converting them to floats and back,
 * which gave the same bits for 14 more instructions per role and token.  Rows of one run a lane only (at
 * most 128 channels): with its V = 192 rows raw, kv_asym_retnet's kernel spilled 136 bytes on sm_90a. */
static bool role_raw(const gen *g, ir_role role)
{
    const ir_module *m = g->m;
    const ir_plan *p = &m->plan;
    if (p->feed[role] != IR_FEED_DIRECT && p->feed[role] != IR_FEED_SCALED)
        return false;
    const ir_value *v = &m->values[p->feed_src[role]];
    if (v->op != IR_OP_INPUT || g->stage_off[v->aux] == ~0u || v->type.len % 4 || v->type.len > 128)
        return false;
    ir_dtype dt = m->tensors[v->aux].dtype;
    return (dt == IR_DT_BF16 && p->operands == IR_OPERANDS_BF16) || (dt == IR_DT_FP16 && p->operands == IR_OPERANDS_FP16);
}

/* struct attnc_row and the prologue's declarations, before the kernels that use them (their definitions
 * follow the kernels' text, which defines the tile macros they use). */
static void emit_row_struct(gen *g)
{
    attnc_buf_puts(&g->b, "\n// a lane's slots of one token's roles: slot s is channel lane * 4 + (s / 4) * 128 + s % 4 (a raw\n"
                          "// role, qr / kr / vr: run j is slots 4j .. 4j + 3 as four tile elements)\nstruct attnc_row {\n");
    static const struct { ir_role role; const char *name; } roles[] = {
        {IR_ROLE_QUERY, "q"}, {IR_ROLE_KEY, "k"}, {IR_ROLE_VALUE, "v"}};
    for (size_t i = 0; i < sizeof roles / sizeof *roles; i++) {
        unsigned n = row_slots(g, fed(g, roles[i].role));
        if (role_raw(g, roles[i].role))
            attnc_buf_printf(&g->b, "    uint2 %sr[%u];\n", roles[i].name, n / 4);
        else
            attnc_buf_printf(&g->b, "    float %s[%u];\n", roles[i].name, n);
    }
    attnc_buf_printf(&g->b, "    float g[%u];\n    float beta, ig;\n", gate_slots(g));
    if (g->ev.nl2)
        attnc_buf_printf(&g->b, "    float l2[%u];   // the l2norm factors, for the saved states (attnc_row_save_l2)\n", g->ev.nl2);
    attnc_buf_puts(&g->b, "};\n");
    attnc_buf_puts(&g->b, "__device__ __forceinline__ void attnc_row_values(const attnc_params &p, int t, int h, int r, int lane,\n"
                          "                                                 const unsigned char *stage, bool real, attnc_row &o);\n"
                          "__device__ __forceinline__ float attnc_row_gate(const attnc_params &p, int t, int h, int r, int lane,\n"
                          "                                                const unsigned char *stage, bool real);\n"
                          "template <unsigned WANT>   // training: the roles whose l2norm factors it stores\n"
                          "__device__ __forceinline__ void attnc_row_save_l2(const attnc_params &p, const attnc_row &o, int t, int h, bool real,\n"
                          "                                                  int lane);\n"
                          "template <unsigned WANT = ATTNC_ROLES_ALL>   // the roles stored (ATTNC_ROLE_*)\n"
                          "__device__ __forceinline__ void attnc_row_store(const attnc_row &o, int r, int v0, int lane, elt *sq, elt *sk,\n"
                          "                                                elt *sv, float *sg, float *sbeta, float *sig);\n");
    /* (the warp-specialised walk's producers issue and land the copies: ATTNC_STAGE_THREADS) */
    cg_emit_stage_held(&g->ev, "attnc_stage_held", "ATTNC_C", "ATTNC_STAGE_THREADS", "ATTNC_STAGE_TID");
    /* The walk's copies unrolled where a thread issues at most two a tensor: on the H200 (bench/RESULTS.md,
     * twelfth session) the forward of gla, delta_rule and gated_delta (chunk 32, two 16-byte copies a
     * thread and row of 256 bytes) took 5 % less time so, simple_gla's and simple_gla_gam's (chunk 64,
     * four) 7 % more, and kv_asym_retnet (three for its rows of V = 192) spilled 40 bytes on sm_80. */
    attnc_buf_printf(&g->b, "#define ATTNC_STAGE_UNROLL %d\n",
                     cg_stage_max_pieces(&g->ev, g->m->plan.chunk, g->m->plan.warps * 32) <= 2);
}

/* Training: attnc_row_save_l2<WANT>, by lane 0 of a real row, stores the l2norm factors of the roles WANT forms
 * (attnc_row's l2, which attnc_row_values sets) for the backward (p.save_l2, [token][HOUT][nl2]), which reads
 * them instead of a warp sum per row and l2norm; the phases that form a role all store the same bits (one
 * code, one input).  Without a decay the index is 32-bit (the launcher saves no more than 2^32 factors,
 * api/kernel.c): with a 64-bit one DeltaNet's warp-specialised producers spilled 8 bytes on sm_90a, and with a
 * 32-bit one the gated delta rule's 32 (ptxas's allocation at the edge of their 104 registers, not a rule:
 * tests/run_compile.sh watches both). */
static void emit_save_l2(gen *g)
{
    attnc_buf *b = &g->b;
    attnc_buf_puts(b, "template <unsigned WANT>\n"
                      "__device__ __forceinline__ void attnc_row_save_l2(const attnc_params &p, const attnc_row &o, int t, int h, bool real,\n"
                      "                                                  int lane)\n{\n"
                      "    (void)p, (void)o, (void)t, (void)h, (void)real, (void)lane;\n");
    if (g->ev.nl2) {
        attnc_buf_printf(b, "    if (!p.save_l2 || !real || lane != 0)\n        return;\n"
                            "    float *row;\n"
                            "    if constexpr (ATTNC_TRANSITION == TR_IDENTITY)\n"
                            "        row = p.save_l2 + (unsigned)(t * ATTNC_HOUT + h) * %uu;\n"
                            "    else\n"
                            "        row = p.save_l2 + ((size_t)t * ATTNC_HOUT + h) * %u;\n",
                         g->ev.nl2, g->ev.nl2);
        for (unsigned j = 0; j < g->ev.nl2; j++)
            attnc_buf_printf(b, "    if constexpr ((WANT & %uu) != 0)\n        row[%u] = o.l2[%u];\n", g->l2_roles[j], j, j);
    }
    attnc_buf_puts(b, "}\n");
}

/* The prologue, in two steps so that a warp can have several tokens in flight (linear_kernel.cuh forms
 * ATTNC_PRO_ROWS rows per pass): attnc_row_values evaluates one token's value DAG into registers (struct
 * attnc_row, no shared-memory stores, so the compiler interleaves the tokens' loads and MUFU chains), and
 * attnc_row_store writes a row into the tiles.  A padding row (real false) holds zeros and gate 0: no
 * write, no decay; its staged rows are read and discarded (selects, never multiplies, so garbage there
 * cannot leak).  Every lane writes only its own slots.  attnc_prologue (the decode kernel's) is both. */
static void emit_linear_prologue(gen *g)
{
    const ir_module *m = g->m;
    const ir_plan *p = &m->plan;
    attnc_buf *b = &g->b;
    ir_ref q = fed(g, IR_ROLE_QUERY), k = fed(g, IR_ROLE_KEY), v = fed(g, IR_ROLE_VALUE);
    ir_ref gate = m->linear.gate, beta = m->linear.beta, ig = m->linear.igate;
    bool diag = p->transition == IR_TR_DIAG;
    unsigned ng = gate_slots(g);
    cg_emit_stage_issue(&g->ev, "attnc_stage_issue", "attnc_params", "ATTNC_C", "ATTNC_STAGE_THREADS", "ATTNC_STAGE_TID",
                        "attnc_stage_held");

    attnc_buf_puts(b, "\n// ---- the prologue: the spec's value DAG for one token (generated) ----\n"
                      "__device__ __forceinline__ void attnc_row_values(const attnc_params &p, int t, int h, int r, int lane,\n"
                      "                                                 const unsigned char *stage, bool real, attnc_row &o)\n{\n"
                      "    (void)t;\n");
    for (ir_ref r = 1; r < m->nvalues; r++)
        if (g->live[r])
            cg_emit_value(&g->ev, r);
    struct { ir_ref r; const char *name; unsigned n; bool raw; } rows[] = {
        {q, "q", row_slots(g, q), role_raw(g, IR_ROLE_QUERY)}, {k, "k", row_slots(g, k), role_raw(g, IR_ROLE_KEY)},
        {v, "v", row_slots(g, v), role_raw(g, IR_ROLE_VALUE)}, {gate, "g", ng, false}};
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        if (rows[i].raw) {   /* the staged row's bytes, zeros for a padding row */
            const ir_value *in = &m->values[rows[i].r];
            for (unsigned s = 0; s < rows[i].n; s += 4) {
                attnc_buf_printf(b, "    o.%sr[%u] = attnc_load4_raw(stage + %u, (size_t)r * %u + ", rows[i].name, s / 4,
                                 g->stage_off[in->aux], in->type.len);
                cg_put_chan(&g->ev, s);
                attnc_buf_puts(b, ", ");
                cg_put_chan(&g->ev, s);
                attnc_buf_printf(b, " < %u, real);\n", in->type.len);
            }
            continue;
        }
        for (unsigned s = 0; s < rows[i].n; s++) {
            attnc_buf_printf(b, "    o.%s[%u] = ", rows[i].name, s);
            if (rows[i].r) {
                attnc_buf_puts(b, "real ? ");
                cg_put_ref(&g->ev, 'v', rows[i].r, s);
                attnc_buf_puts(b, " : 0.f;\n");
            } else {
                attnc_buf_puts(b, "0.f;   // no decay\n");
            }
        }
    }
    if (beta)
        attnc_buf_printf(b, "    o.beta = real ? v%u : 0.f;\n", beta);
    else
        attnc_buf_puts(b, "    o.beta = 0.f;\n");
    if (ig)
        attnc_buf_printf(b, "    o.ig = real ? v%u : 0.f;\n", ig);
    else
        attnc_buf_puts(b, "    o.ig = 0.f;\n");
    for (unsigned j = 0; j < g->ev.nl2; j++)
        attnc_buf_printf(b, "    o.l2[%u] = l2inv%u;\n", j, g->l2_values[j]);
    attnc_buf_puts(b, "}\n");
    emit_save_l2(g);
    /* one token's gate alone, by one lane (gate_by_lane; the declaration stands for the kernels' text where not) */
    attnc_buf_puts(b, "__device__ __forceinline__ float attnc_row_gate(const attnc_params &p, int t, int h, int r, int lane,\n"
                      "                                                const unsigned char *stage, bool real)\n{\n"
                      "    (void)p, (void)t, (void)h, (void)r, (void)lane, (void)stage;\n");
    if (gate_by_lane(g)) {
        for (ir_ref r = 1; r < m->nvalues; r++)
            if (g->gate_cone[r])
                cg_emit_value(&g->ev, r);
        attnc_buf_printf(b, "    return real ? v%u : 0.f;\n}\n", gate);
    } else {
        attnc_buf_puts(b, "    (void)real;\n    return 0.f;   // (not called)\n}\n");
    }

    attnc_buf_puts(b, "template <unsigned WANT>\n"
                      "__device__ __forceinline__ void attnc_row_store(const attnc_row &o, int r, int v0, int lane, elt *sq, elt *sk,\n"
                      "                                                elt *sv, float *sg, float *sbeta, float *sig)\n{\n"
                      "    (void)sq, (void)sk, (void)sv, (void)sbeta, (void)sig;\n");
    /* q and k fill K's columns (the padding columns stay zero); v only the CTA's slice [v0, v0 + BV).  A role
     * WANT leaves out is neither stored nor (the row being inlined) formed. */
    attnc_buf_puts(b, "    if constexpr (WANT & ATTNC_ROLE_Q) {\n");
    store_row(g, "o.q", row_slots(g, q), role_raw(g, IR_ROLE_QUERY), "sq", "ATTNC_LDK", "0", "ATTNC_K");
    attnc_buf_puts(b, "    }\n    if constexpr (WANT & ATTNC_ROLE_K) {\n");
    store_row(g, "o.k", row_slots(g, k), role_raw(g, IR_ROLE_KEY), "sk", "ATTNC_LDK", "0", "ATTNC_K");
    attnc_buf_puts(b, "    }\n    if constexpr (WANT & ATTNC_ROLE_V) {\n");
    store_row(g, "o.v", row_slots(g, v), role_raw(g, IR_ROLE_VALUE), "sv", "ATTNC_LDV", "v0", "ATTNC_BV");
    attnc_buf_puts(b, "    }\n");
    if (diag && ng > 1) {
        for (unsigned s = 0; s < ng; s++)
            attnc_buf_printf(b, "    if (lane * 4 + %u < ATTNC_KP)\n        sg[r * ATTNC_KP + lane * 4 + %u] = lane * 4 + %u < ATTNC_K ? o.g[%u] : 0.f;\n",
                             cg_run4_chan(s), cg_run4_chan(s), cg_run4_chan(s), s);
    } else if (diag) {
        attnc_buf_puts(b, "    for (int c = lane; c < ATTNC_KP; c += 32)\n        sg[r * ATTNC_KP + c] = c < ATTNC_K ? o.g[0] : 0.f;\n");
    } else {
        attnc_buf_puts(b, "    if (WANT & ATTNC_ROLE_GATE && lane == 0)\n        sg[r] = o.g[0];\n");
    }
    attnc_buf_puts(b, "    if (WANT & ATTNC_ROLE_BETA && lane == 0) {\n        sbeta[r] = o.beta;\n        sig[r] = o.ig;\n    }\n}\n");

    attnc_buf_puts(b, "__device__ void attnc_prologue(const attnc_params &p, int t, int h, int r, int v0, int lane, elt *sq,\n"
                      "                               elt *sk, elt *sv, float *sg, float *sbeta, float *sig,\n"
                      "                               const unsigned char *stage)\n{\n"
                      "    attnc_row o;\n"
                      "    attnc_row_values(p, t < 0 ? 0 : t, h, r, lane, stage, t >= 0, o);\n"
                      "    attnc_row_store(o, r, v0, lane, sq, sk, sv, sg, sbeta, sig);\n}\n");
}

static void emit_common(gen *g)
{
    const ir_module *m = g->m;
    attnc_buf *b = &g->b;
    attnc_buf_printf(b, "// Generated by attnc %s from variant '%s'.  Do not edit: regenerate with\n"
                        "//   attnc compile --emit cuda\n",
                     ATTNC_VERSION_STRING, m->name);
    attnc_buf_puts(b, "// The kernels this compile defines: all of them, unless ATTNC_ONLY names one (1 the linear part's\n"
                      "// chunk kernel, 2 its decode kernel, 3 the softmax part's); the JIT compiles each kernel as its own\n"
                      "// unit, with a \"#define ATTNC_ONLY k\" line before this text.\n"
                      "#ifdef ATTNC_ONLY\n#define ATTNC_WANT(k) (ATTNC_ONLY == (k))\n#else\n#define ATTNC_WANT(k) 1\n#endif\n");
    attnc_buf_printf(b, "#define ATTNC_ELT_F16 %d\n#define ATTNC_SPLIT %d\n#define ATTNC_FAST_MATH %d\n#define ATTNC_OUT_DTYPE %s\n",
                     m->plan.operands == IR_OPERANDS_FP16, m->plan.operands == IR_OPERANDS_BF16X3,
                     m->plan.operands != IR_OPERANDS_BF16X3,
                     cg_dtype_macro(m->out_dtype));
    cg_emit_role_bits(b);
    attnc_buf_puts(b, attnc_support_src);
    attnc_buf_printf(b, "\n// ---- parameters ----\nstruct attnc_params {\n"
                        "    const void *in[%u];      // the spec's tensors, in declaration order (see below)\n"
                        "    void *out;               // [T, HOUT, V]\n"
                        "    const float *h0, *z0, *m0; // initial state [N, HS, K, V], [N, HS, K], [N, HS] (or null)\n"
                        "    float *hT, *zT, *mT;     // final state, same shapes (or null)\n"
                        "    const int *cu_seqlens;   // [N + 1] token offsets, or null: N sequences of seqlen tokens\n"
                        "    int seqlen;\n"
                        "    int nseq;\n"
                        "    int phase;               // linear part: 0 sequential, 1 and 2 (6, states, 2: split delta rule)\n"
                        "                             // materialized, 3 and 5 grouped\n"
                        "    elt *ws_s;               // materialized workspace: S_in per chunk slot [slot, HOUT, K, V]\n"
                        "    float *ws_z, *ws_m;      // z_in [slot, HOUT, KP], m_in [slot, HOUT]\n"
                        "    float *ws_gs, *ws_gz, *ws_gl; // grouped: each group's S [N, G, HOUT, K, V], z and log2 decay [.., KP]\n"
                        "    int group_chunks;        // grouped: chunks per group\n"
                        "    int group_fine;          // grouped: chunks per record (phase 3's groups; divides group_chunks)\n"
                        "    elt *ws_w, *ws_kd, *ws_uh; // split delta rule: -W, Kd [slot, HOUT, C, KP]; U_hat [slot, HOUT, V, C]\n"
                        "    float *ws_u, *ws_bl;     // U [slot, HOUT, C, V]; the chunk's state decay [slot, HOUT]\n"
                        "    void *save_img;          // training: S_in images for the backward [slot, HOUT, KP, V] (or null)\n"
                        "    int save_shift;          // log2 of the backward's chunk: slot = (c0 >> save_shift) + n\n"
                        "    elt *save_uh;            // training, the delta rule: every token's U_hat [slot, HOUT, C_b, V] (or null)\n"
                        "    float *save_l2;          // training: the l2norm factors [T, HOUT, NL2] (attnc_row_save_l2; or null)\n"
                        "};\n",
                     m->ntensors ? m->ntensors : 1);
    for (uint32_t i = 0; i < m->ntensors; i++)
        attnc_buf_printf(b, "//   in[%u] = %s %s\n", i, m->tensors[i].name, ir_dtype_name(m->tensors[i].dtype));
    attnc_buf_printf(b, "#define ATTNC_HOUT %u\n#define ATTNC_HS %u\n", g->sh.heads_out,
                     g->sh.heads_state ? g->sh.heads_state : g->sh.heads_out);
}

bool cg_value_bf16_input(const ir_module *m)
{
    const ir_value *val = m->linear.present ? &m->values[m->linear.value] : NULL;
    return val && val->op == IR_OP_INPUT && m->tensors[val->aux].dtype == IR_DT_BF16;
}

cg_saved_images cg_saved_image_kind(const ir_module *m, uint32_t *slice)
{
    /* (with a computed value, mamba2's, the forward's state is off by V's rounding: its long strong-gated
     * case's dA_log 4.3e-2 against 2e-2 on the H200 with saved states, bench/RESULTS.md thirty-fourth session) */
    *slice = 0;
    if (!m->linear.present || m->mask != IR_MASK_CAUSAL || m->plan.operands != IR_OPERANDS_BF16 ||
        m->plan.stabilized || m->linear.norm != IR_NORM_NONE || !cg_value_bf16_input(m))
        return CG_SAVED_NONE;
    for (ir_ref r = 1; r < m->nvalues; r++)
        if (m->values[r].op == IR_OP_PARAM) {
            /* not the delta rule's yet: the image's code took Gated DeltaNet's warp-specialised consumers (144
             * registers) into spills, 48 to 152 bytes wherever it was placed (40 at 152 registers) */
            if (m->plan.householder)
                return CG_SAVED_NONE;
            *slice = grad_image_slice((ir_module_shape(m).V + 15) / 16 * 16, false);
            return CG_SAVED_MANTISSA;
        }
    return CG_SAVED_BF16;
}

/* The decode kernel's shared memory: the same sums as attnc_dec_layout in decode_kernel.cuh. */
static unsigned decode_smem_bytes(const gen *g)
{
    const ir_plan *p = &g->m->plan;
    unsigned eb = ir_operand_bytes(p->operands), kp = p->k_pad, bv = p->v_tile, r16 = (kp * eb + 15) / 16 * 16;
    unsigned bytes = 2 * r16 + (bv * eb + 15) / 16 * 16 + kp * 4 + 32 + 2 * kp * 4 + 2 * 128 * 4 + g->sh.K * bv * 4;
    return (bytes + 127) / 128 * 128;
}

/* Chunks whose copies the split delta rule's state walk keeps in flight ahead of the one it works on. */
#define LS_AHEAD 2

/* The split delta rule's state walk's shared memory: the same sums as attnc_ls_layout in linear_kernel.cuh
 * (LS_AHEAD + 1 buffers of -W and Kd tiles, the CTA's columns of U and the chunk's decay, fp32; where the walk
 * saves bf16 images for the backward, each warp's k_pad rows of 24 elements to turn its part of the state, and
 * its chunk rows of 24 to turn its part of U_hat). */
static unsigned split_states_smem_bytes(const gen *g, unsigned ls_warps, cg_saved_images saved)
{
    const ir_plan *p = &g->m->plan;
    unsigned es = ir_operand_bytes(p->operands), tile_k = p->chunk * (p->k_pad + 8) * es;
    unsigned img = saved == CG_SAVED_BF16 ? ls_warps * (p->k_pad + p->chunk) * 24 * es : 0;
    return (LS_AHEAD + 1) * (2 * tile_k + p->chunk * (16 * ls_warps + 4) * 4 + 16) + img;
}

/* CTAs per SM that the kernel asks ptxas to fit by registers (__launch_bounds__'s second argument):
 * as many as its shared memory lets an H100/H200 SM hold (228 KB, 1 KB per CTA for the driver), as
 * long as that leaves at least 160 registers a thread.  Registers beyond what shared memory lets run
 * buy nothing, and registers that fall short of it cost CTAs: Mamba-2's kernel at 189 registers would
 * fit 2 CTAs per SM where its 75 KB of shared memory fit 3. */
static unsigned min_blocks(unsigned smem_bytes, unsigned threads)
{
    unsigned by_smem = (228u * 1024) / (smem_bytes + 1024), by_regs = 65536 / (threads * 160);
    unsigned n = by_smem < by_regs ? by_smem : by_regs;
    return n ? n : 1;
}

/* The same for the split delta rule's lean bodies (linear_kernel.cuh's attnc_linear_wy and _out): as many
 * CTAs as their shared memory fits, at most two (128 registers a thread at 8 warps: they hold no state). */
static unsigned lean_min_blocks(unsigned smem_bytes)
{
    unsigned n = (228u * 1024) / (smem_bytes + 1024);
    return n < 1 ? 1 : n > 2 ? 2 : n;
}

/* Tokens a warp's prologue pass evaluates together (linear_kernel.cuh): four with bf16 tiles where a token's
 * roles fill at most 16 slots a lane (1-3 % faster forwards than two on the H200 for the five benchmarked
 * ops, K = V = 128, no spills), else two: fp16 and fp32 tiles (gla, lightning, based, retnet, transnormer
 * spill more registers with four) and wider rows (K = 96 / V = 192 with LayerNorm spilled 64 bytes). */
static unsigned prologue_rows(const gen *g)
{
    unsigned slots = row_slots(g, fed(g, IR_ROLE_QUERY)) + row_slots(g, fed(g, IR_ROLE_KEY)) +
                     row_slots(g, fed(g, IR_ROLE_VALUE)) + gate_slots(g);
    return g->m->plan.operands == IR_OPERANDS_BF16 && slots <= 16 ? 4 : 2;
}

static bool emit_linear(gen *g)
{
    const ir_module *m = g->m;
    const ir_plan *p = &m->plan;
    const ir_linear *l = &m->linear;
    attnc_buf *b = &g->b;
    unsigned smem = tile_linear_smem_bytes(m);
    plan_roles(g);
    uint32_t save_vs;
    cg_saved_images saved = cg_saved_image_kind(m, &save_vs);
    /* the l2norm factors the walk saves with its states (in grad_l2_factors' order, the backward's) */
    unsigned nl2 = saved != CG_SAVED_NONE ? grad_l2_factors(m, g->arena, g->l2_values, g->l2_roles) : 0;
    for (unsigned j = 0; j < nl2; j++)
        if (!g->live[g->l2_values[j]])
            nl2 = 0;
    g->ev.l2_values = g->l2_values;
    g->ev.l2_roles = g->l2_roles;
    g->ev.nl2 = g->out->save_nl2 = nl2;
    double qscale = p->feed[IR_ROLE_QUERY] == IR_FEED_SCALED ? p->scale[IR_ROLE_QUERY] : 1.0;
    attnc_buf_printf(b, "\n// ---- the linear part: plan chunked %u (%s%s%s), tiles k_pad %u v_tile %u, %u warps ----\n",
                     p->chunk, ir_transition_name(p->transition), p->householder ? ", householder" : "",
                     p->stabilized ? ", stabilized" : "", p->k_pad, p->v_tile, p->warps);
    attnc_buf_printf(b, "#define ATTNC_ENTRY attnc_linear\n#define ATTNC_C %u\n#define ATTNC_K %u\n#define ATTNC_KP %u\n"
                        "#define ATTNC_V %u\n#define ATTNC_BV %u\n#define ATTNC_WARPS %u\n#define ATTNC_CG %u\n#define ATTNC_SG %u\n"
                        "#define ATTNC_P_SHARED %d\n",
                     p->chunk, g->sh.K, p->k_pad, g->sh.V, p->v_tile, p->warps, p->col_groups, p->state_groups,
                     p->shared_scores);
    attnc_buf_printf(b, "#define ATTNC_PHASES_SEQUENTIAL 0x%02x\n#define ATTNC_PHASES_MATERIALIZED 0x%02x\n"
                        "#define ATTNC_PHASES_GROUPED 0x%02x\n",
                     CG_PHASES_SEQUENTIAL, CG_PHASES_MATERIALIZED, CG_PHASES_GROUPED);
    bool split = ir_plan_split_delta(m);
    unsigned ls_warps = g->sh.V % 32 == 0 ? 2 : 1;
    unsigned wy_smem = tile_linear_smem_bytes_lean(m, 6) + g->stage_bytes;   /* the lean bodies', staging included */
    unsigned out_smem = tile_linear_smem_bytes_lean(m, 2) + g->stage_bytes;
    bool grouped = (p->schedules & IR_SCHED_GROUPED) != 0;
    unsigned group_smem = tile_linear_smem_bytes_lean(m, 3) + g->stage_bytes;
    attnc_buf_printf(b, "#define ATTNC_DSPLIT %d\n#define ATTNC_LS_WARPS %u\n#define ATTNC_LS_AHEAD %u\n", split, ls_warps,
                     LS_AHEAD);
    attnc_buf_printf(b, "#define ATTNC_TRANSITION %u\n#define ATTNC_DELTA %d\n#define ATTNC_STABILIZED %d\n"
                        "#define ATTNC_IGATE %d\n#define ATTNC_NORM %u\n#define ATTNC_EPS ",
                     p->transition, p->householder, p->stabilized, l->igate != IR_NONE, (unsigned)l->norm);
    cg_put_float(b, l->norm == IR_NORM_NONE ? 0.0 : l->eps);
    attnc_buf_puts(b, "\n#define ATTNC_QSCALE ");
    cg_put_float(b, qscale);
    attnc_buf_printf(b, "\n#define ATTNC_CAUSAL %d\n#define ATTNC_GROUPED %d\n#define ATTNC_STATE_IN %d\n#define ATTNC_STATE_OUT %d\n"
                        "#define ATTNC_SMEM_BYTES %u\n#define ATTNC_MIN_BLOCKS %u\n#define ATTNC_PRO_ROWS %u\n"
                        "#define ATTNC_GATE_LANES %d\n#define ATTNC_SAVES %d\n#define ATTNC_SAVE_VS %u\n"
                        "#define ATTNC_SAVE_NL2 %u   // the l2norm factors saved per token and output head (attnc_row_save_l2)\n",
                     m->mask == IR_MASK_CAUSAL, grouped, m->state_in, m->state_out, smem,
                     min_blocks(smem + g->stage_bytes, p->warps * 32), prologue_rows(g), gate_by_lane(g),
                     (int)saved, save_vs, g->ev.nl2);
    if (split)
        attnc_buf_printf(b, "#define ATTNC_WY_MIN_BLOCKS %u\n#define ATTNC_OUT_MIN_BLOCKS %u\n", lean_min_blocks(wy_smem),
                         lean_min_blocks(out_smem));
    if (grouped)
        attnc_buf_printf(b, "#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900   // (two CTAs' shared memory does not fit an "
                            "sm_80 SM, and at 128 registers lightning's spilled)\n#define ATTNC_GROUP_MIN_BLOCKS 1\n#else\n"
                            "#define ATTNC_GROUP_MIN_BLOCKS %u\n#endif\n",
                         p->state_groups > 2 ? 1 : lean_min_blocks(group_smem));   /* (four state groups spilled 80 bytes at 128) */
    /* The warp-specialised walk: a unit of its own (ATTNC_WS 1, api/kernel.c), where the staging is the
     * producers' (the ws_producers threads after the walk's). */
    unsigned ws_smem = ws_smem_bytes(g, smem + g->stage_bytes);
    bool ws = ws_eligible(g, ws_smem);
    attnc_buf_printf(b, "#ifndef ATTNC_WS\n#define ATTNC_WS 0\n#endif\n#define ATTNC_WS_OK %d\n#define ATTNC_WS_EXCESS %d\n"
                        "#define ATTNC_WS_PRODUCERS %u\n"
                        "#define ATTNC_STAGE_BYTES %u\n"
                        "#define ATTNC_STAGE_THREADS (ATTNC_WS ? ATTNC_WS_PRODUCERS : ATTNC_WARPS * 32)\n"
                        "#define ATTNC_STAGE_TID (ATTNC_WS ? (int)threadIdx.x - ATTNC_WARPS * 32 : (int)threadIdx.x)\n",
                     ws, ws && ws_excess(g), ws_producers(g), g->stage_bytes);
    emit_row_struct(g);
    attnc_buf_puts(b, attnc_linear_kernel_src);
    attnc_buf_puts(b, "static_assert(attnc_smem_layout::bytes == ATTNC_SMEM_BYTES, \"host and kernel disagree on shared memory\");\n");
    if (ws) {
        attnc_buf_puts(b, attnc_linear_ws_kernel_src);
        attnc_buf_printf(b, "#if ATTNC_WS\nstatic_assert(attnc_ws_layout::bytes == %uu, \"host and kernel disagree on shared memory\");\n#endif\n",
                         ws_smem);
    }
    /* the inference walk's and the saving walk's (saved: ATTNC_SAVES above; its images' rows after the rest) */
    unsigned ls_smem = split_states_smem_bytes(g, ls_warps, CG_SAVED_NONE), ls_save_smem = split_states_smem_bytes(g, ls_warps, saved);
    if (split)
        attnc_buf_printf(b, "#if ATTNC_WANT(1) && (ATTNC_PHASES == 0 || ATTNC_PHASES == ATTNC_PHASES_MATERIALIZED)\n"
                            "static_assert(attnc_ls_layout::img == %uu && attnc_ls_layout::bytes == %uu, "
                            "\"host and kernel disagree on shared memory\");\n"
                            "static_assert(attnc_smem_layout_t<6>::bytes == %uu, \"host and kernel disagree on shared memory\");\n"
                            "static_assert(attnc_smem_layout_t<2>::bytes == %uu, \"host and kernel disagree on shared memory\");\n#endif\n",
                         ls_smem, ls_save_smem, wy_smem - g->stage_bytes, out_smem - g->stage_bytes);
    if (grouped)
        attnc_buf_printf(b, "#if ATTNC_WANT(1) && (ATTNC_PHASES == 0 || ATTNC_PHASES == ATTNC_PHASES_GROUPED)\n"
                            "static_assert(attnc_smem_layout_t<3>::bytes == %uu, \"host and kernel disagree on shared memory\");\n#endif\n",
                         group_smem - g->stage_bytes);
    bool decode = m->mask == IR_MASK_CAUSAL;
    unsigned dec_smem = decode_smem_bytes(g);
    if (decode) {
        attnc_buf_printf(b, "\n// ---- the single-token decode step (same constants and prologue) ----\n#define ATTNC_DEC_SMEM_BYTES %u\n",
                         dec_smem);
        attnc_buf_puts(b, attnc_decode_kernel_src);
        attnc_buf_puts(b, "static_assert(attnc_dec_layout::bytes == ATTNC_DEC_SMEM_BYTES, \"host and kernel disagree on shared memory\");\n");
    }
    emit_linear_prologue(g);
    cg_kernel *k = &g->out->kernels[g->out->nkernels++];
    *k = (cg_kernel){.kind = CG_KERNEL_LINEAR, .entry = "attnc_linear", .threads = p->warps * 32,
                     .smem_bytes = smem + g->stage_bytes, .grid_x = g->sh.V / p->v_tile};
    if (split) {
        k->split[CG_SPLIT_WY] = (cg_entry){.entry = "attnc_linear_wy", .threads = p->warps * 32, .smem_bytes = wy_smem};
        k->split[CG_SPLIT_STATES] = (cg_entry){.entry = "attnc_linear_states", .threads = ls_warps * 32, .smem_bytes = ls_smem,
                                               .grid_x = g->sh.V / (16 * ls_warps)};
        k->split[CG_SPLIT_OUT] = (cg_entry){.entry = "attnc_linear_out", .threads = p->warps * 32, .smem_bytes = out_smem};
        if (saved == CG_SAVED_BF16) {   /* the same walk's launch, with its images' rows */
            k->split[CG_SPLIT_STATES_SAVE] = k->split[CG_SPLIT_STATES];
            k->split[CG_SPLIT_STATES_SAVE].entry = "attnc_linear_states_save";
            k->split[CG_SPLIT_STATES_SAVE].smem_bytes = ls_save_smem;
        }
    }
    if (grouped)
        k->group = (cg_entry){.entry = "attnc_linear_group", .threads = p->warps * 32, .smem_bytes = group_smem};
    if (ws)
        k->ws = (cg_entry){.entry = "attnc_linear", .threads = p->warps * 32 + ws_producers(g), .smem_bytes = ws_smem};
    if (decode) {
        k = &g->out->kernels[g->out->nkernels++];
        *k = (cg_kernel){.kind = CG_KERNEL_DECODE, .entry = "attnc_decode", .threads = 128,
                         .smem_bytes = dec_smem + g->stage_bytes, .grid_x = g->sh.V / p->v_tile};
    }
    for (uint32_t i = 0; i < m->ntensors; i++)
        if (g->stage_off[i] != ~0u)
            g->out->tensor_align[i] = cg_stage_unit(m->tensors[i].len * ir_dtype_bytes(m->tensors[i].dtype));
    return true;
}

/* The softmax part's shared memory: the same sums as attnc_sm_layout in softmax_kernel.cuh. */
static unsigned softmax_smem_bytes(unsigned dp, unsigned vp, unsigned elt_bytes)
{
    return (64 * (dp + 8) * 2 + 64 * (vp + 8)) * elt_bytes;
}

/* The softmax part: its roles must be inputs as stored (the query may carry a constant factor, folded
 * into the score scale); the kernel body is softmax_kernel.cuh. */
static bool emit_softmax(gen *g, attnc_diags *diags)
{
    const ir_module *m = g->m;
    const ir_plan *p = &m->plan;
    const ir_softmax *sm = &m->softmax;
    attnc_buf *b = &g->b;
    static const struct { ir_role role; const char *name, *tag; } roles[] = {
        {IR_ROLE_SM_QUERY, "query", "Q"}, {IR_ROLE_SM_KEY, "key", "K"}, {IR_ROLE_SM_VALUE, "value", "V"}};
    for (size_t i = 0; i < 3; i++) {
        ir_feed f = (ir_feed)p->feed[roles[i].role];
        if (f != IR_FEED_DIRECT && !(f == IR_FEED_SCALED && roles[i].role == IR_ROLE_SM_QUERY)) {
            attnc_error(diags, sm->span,
                        "the CUDA generator takes softmax roles that are inputs as stored (the query may be "
                        "scaled by a constant); the %s is computed",
                        roles[i].name);
            return false;
        }
    }
    const ir_tensor *tq = &m->tensors[m->values[p->feed_src[IR_ROLE_SM_QUERY]].aux];
    const ir_tensor *tv = &m->tensors[m->values[p->feed_src[IR_ROLE_SM_VALUE]].aux];
    unsigned D = tq->len, V = tv->len;
    if (V % 8) {
        attnc_error(diags, sm->span, "softmax values of %u channels: the CUDA generator needs a multiple of 8", V);
        return false;
    }
    double scale = p->feed[IR_ROLE_SM_QUERY] == IR_FEED_SCALED ? p->scale[IR_ROLE_SM_QUERY] : 1.0;
    attnc_buf_printf(b, "\n// ---- the softmax part: query tiles of 64 rows over their key band (%s%s) ----\n",
                     m->mask == IR_MASK_CAUSAL ? "causal" : "bidirectional", sm->window ? ", sliding window" : "");
    attnc_buf_printf(b, "#define ATTNC_SM_D %u\n#define ATTNC_SM_DP %u\n#define ATTNC_SM_V %u\n#define ATTNC_SM_VP %u\n"
                        "#define ATTNC_SM_WINDOW %u\n#define ATTNC_SM_CAUSAL %d\n#define ATTNC_SM_ADD %d\n#define ATTNC_SM_SCALE ",
                     D, tile_round_up(D, 16), V, tile_round_up(V, 16), sm->window, m->mask == IR_MASK_CAUSAL, m->linear.present);
    cg_put_float(b, scale * 1.4426950408889634);
    attnc_buf_puts(b, "  // the query's constant times log2(e)\n");
    for (size_t i = 0; i < 3; i++) {
        uint32_t ti = m->values[p->feed_src[roles[i].role]].aux;
        const ir_tensor *t = &m->tensors[ti];
        attnc_buf_printf(b, "#define ATTNC_SM_%sIN %u\n#define ATTNC_SM_%sDT %s\n#define ATTNC_SM_H%s %u\n", roles[i].tag,
                         ti, roles[i].tag, cg_dtype_macro(t->dtype), roles[i].tag, m->axes[t->axis].count);
        if (t->dtype != IR_DT_FP32 && t->len % 8 == 0 && g->out->tensor_align[ti] < 16)
            g->out->tensor_align[ti] = 16; /* the kernel copies rows in 16-byte pieces */
    }
    unsigned smem = softmax_smem_bytes(tile_round_up(D, 16), tile_round_up(V, 16), ir_operand_bytes(m->plan.operands));
    attnc_buf_printf(b, "#define ATTNC_SM_SMEM_BYTES %u\n", smem);
    attnc_buf_puts(b, attnc_softmax_kernel_src);
    attnc_buf_puts(b, "static_assert(attnc_sm_layout::bytes == ATTNC_SM_SMEM_BYTES, \"host and kernel disagree on shared memory\");\n");
    cg_kernel *k = &g->out->kernels[g->out->nkernels++];
    *k = (cg_kernel){.kind = CG_KERNEL_SOFTMAX, .entry = "attnc_softmax", .threads = 128, .smem_bytes = smem,
                     .grid_x = 0, .per_query_tile = true, .tile_rows = 64};
    return true;
}

bool codegen_cuda(const ir_module *m, attnc_arena *a, attnc_diags *diags, cg_output *out)
{
    memset(out, 0, sizeof *out);
    if (m->plan.stage != IR_PLAN_SCHEDULED) {
        attnc_error(diags, m->span, "internal: the module was not scheduled before code generation");
        return false;
    }
    if (m->ntensors > CG_MAX_TENSORS) {
        attnc_error(diags, m->span, "the CUDA generator takes at most %d tensors", CG_MAX_TENSORS);
        return false;
    }
    gen g = {.m = m, .sh = ir_module_shape(m), .out = out, .arena = a};
    g.live = attnc_arena_alloc(a, m->nvalues * sizeof *g.live);
    g.gate_cone = attnc_arena_alloc(a, m->nvalues * sizeof *g.gate_cone);
    if (!g.live || !g.gate_cone)
        return false;
    memset(g.gate_cone, 0, m->nvalues * sizeof *g.gate_cone);
    attnc_buf_init(&g.b, a);
    g.ev = (cg_values){.m = m, .b = &g.b, .layout = CG_LAYOUT_RUN4, .stage_off = g.stage_off, .stage_roles = g.stage_roles};
    emit_common(&g);
    if (m->linear.present && !emit_linear(&g))
        return false;
    if (m->softmax.present && !emit_softmax(&g, diags))
        return false;
    out->source = attnc_buf_str(&g.b);
    return out->source != NULL && !attnc_arena_failed(a);
}
