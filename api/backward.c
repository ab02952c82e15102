/* api/backward.c: the backward on the GPU (attnc.h, "the backward").
 *
 * A grad kernel is the backward's own translation unit (codegen/cuda_bwd.c, planned by passes/grad.c),
 * compiled through the same disk cache as the forward.  A launch (attnc_backward) checks every tensor as
 * attnc_forward does, then runs, on one stream:
 *   1. attnc_bwd_linear   grid (N, H_out): role gradients into the workspace, each head's dh0 share
 *      (a linear part: the causal walks, or the bidirectional ones for mask none); or, the chunk-parallel
 *      schedule where it applies, attnc_bwdp_states, (normalisers) attnc_bwdp_rows, attnc_bwdp_dstates
 *      and attnc_bwdp_chunk (codegen/linear_bwd_par_kernel.cuh), for the delta rule between
 *      attnc_bwdp_wy and attnc_bwdp_wy_adjoint (codegen/linear_bwd_delta_kernel.cuh);
 *      attnc_bwd_sm_rows, then attnc_bwd_sm_kv   grid (query or key tiles, H_out, N): the softmax part's
 *      row statistics and dq, then dk and dv (a softmax part);
 *   2. attnc_bwd_inputs   a warp per (token, output head): the value DAG's adjoint, per-head partials;
 *   3. per wanted gradient, a fixed-order sum of the partials into the caller's buffer, in its dtype:
 *      attnc_bwd_sum_heads for per-token tensors and dh0, attnc_bwd_sum_param for parameters.
 * No atomics and no host synchronisation (cu_seqlens is never read on the host).
 */
#define _POSIX_C_SOURCE 200809L   /* sysconf */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_internal.h"
#include "cuda_bwd.h"
#include "codegen.h"
#include "emit_value.h"
#include "passes.h"
#include "rt.h"

/* How the parallel schedule's state walks run (ATTNC_BWD_WALK): "sequence", each sequence's chunks walked by
 * one CTA per (sequence, head, widest V slice); "split", spread over more CTAs: without the delta rule every
 * chunk's product on its own and then a scan per state row (codegen/linear_bwd_par_kernel.cuh, "scanned"),
 * with it walks of narrow V slices (codegen/linear_bwd_delta_kernel.cuh); auto: split where the walks of
 * the sequences would leave more than half the SMs idle. */
typedef enum { WALK_AUTO, WALK_SEQUENCE, WALK_SPLIT } walk_mode;

struct attnc_grad_kernel {
    char name[64];
    uint32_t ntensors;
    api_tensor *tensors;  /* aligned to their dtype's size */
    ir_shape sh;
    uint32_t K, V, gk, chunk;
    uint32_t vo;        /* output columns (V less the denominator's column of ones) */
    bool norm;          /* a normaliser: d(pre-norm output) passes through ws_do */
    bool has_z;         /* the running denominator: z0, dzT, dz0 */
    bool gated;         /* a decay or the delta rule: the chunk kernel stores every chunk's S_out */
    bool delta;         /* the delta rule: beta's role gradient */
    bool mlstm;         /* mLSTM: m0, dmT, dm0; the chunks' m_out, the input gate's gradient */
    attnc_dtype out_dtype;
    unsigned dout_align;  /* bytes dout's address must be aligned to (the parallel schedule copies its rows) */
    bool state_in, state_out, document;
    unsigned smem_bytes;
    bool linear;        /* attnc_bwd_linear (causal or bidirectional) */
    bool softmax;       /* attnc_bwd_sm_rows, attnc_bwd_sm_kv */
    uint32_t sm_d, sm_v, sm_tile;
    unsigned sm_smem_bytes;
    bool parallel;      /* the chunk-parallel schedule (the default where it applies; ATTNC_BWD_SCHEDULE) */
    uint32_t bp_kp, bp_vp, bp_vs, bp_vw, bp_image;   /* its image shape, state walk slices (narrow: the images'
                                                      * scales', wide), bytes of one image */
    uint32_t bp_scan_rows;  /* the scan's state rows per CTA */
    unsigned bp_walk_smem, bp_chunk_smem;
    unsigned bp_chunk_threads, bd_adj_threads;   /* attnc_bwdp_chunk's and _wy_adjoint's CTAs: 256, or 512
                                                  * (passes/grad.c's bp_chunk_warps, bd_adj_warps) */
    bool bp_direct[3];  /* the query (key, value) role's gradient is written by the chunk kernel into its tensor's: no ws_dq (ws_dk, ws_dv;
                         * the delta rule's value by its adjoint, ws_dv kept for dU_hat) */
    bool bp_inputs_idle; /* attnc_bwd_inputs would write nothing (the plan's): not launched */
    bool bp_inputs_scalar; /* attnc_bwd_inputs runs a thread per (token, output head), not a warp (the plan's) */
    bool bp_delta;      /* the delta rule's parallel schedule: attnc_bwdp_wy first, attnc_bwdp_wy_adjoint after the chunks */
    bool bp_plo;        /* remainder tiles of P, A (and the delta rule's T) where a parameter sums every token's */
    bool bd_duh16;      /* the delta rule's dU_hat in ws_dv as 16-bit elements: ws_dv half its fp32 size */
    bool bd_dk16;       /* the chunk kernel's dk in ws_dk as 16-bit mantissas: KP * 9 / 16 floats a row */
    bool bp_decay;      /* the parallel schedule's walks decay the state (the scanned walks keep each chunk's e^{b_L}) */
    walk_mode walk;
    bool bp_run2;       /* the scanned walks' products have kernels of their own for two CTAs an SM */
    unsigned run_per_sm; /* CTAs of those an SM holds (1 without them) */
    int sm_count;       /* the device's (0 where none was opened: 132 assumed) */
    unsigned bd_wy_smem, bd_adj_smem;
    unsigned bd_wy_saved_smem;   /* attnc_bwdp_wy's with the forward's saved states (its compact layout) */
    uint32_t bp_nl2;             /* the l2norm factors per token and output head its kernels read from saved states */
    unsigned bd_walk_ws_smem;    /* attnc_bwdp_dstates_ws's (0: not planned) */
    size_t nunits;      /* compile units (grad_unit_plan) and the kernels each defines (bit i: CG_BK_* i) */
    uint32_t unit_mask[API_MAX_UNITS];
    rt_function *fn[CG_BK_COUNT];
    api_workspace *ws;
    /* ATTNC_JIT_TIERED (api/kernel.c says how): fn[] from a quick compile while the optimised one compiles on
     * a thread (tier); the quick functions it replaced, kept until attnc_grad_kernel_free (a launch on some
     * stream may still run them); why the optimised ones are not in, until attnc_grad_kernel_wait_optimized
     * says it. */
    bool quick;
    uint32_t quick_units;   /* bit u: unit u's functions are the quick ones */
    api_tier *tier;
    rt_function *retired[CG_BK_COUNT];
    char tier_error[256];
};

/* The parameter blocks of the generated kernels (attnc_bwd_params, attnc_bwd_sum_params). */
typedef struct bwd_params {
    const void *in[64];
    float *part[64];
    const void *dout;
    const float *h0, *dhT;
    const int *cu_seqlens;
    int seqlen, nseq, total, pad_;
    float *ws_dq, *ws_dk, *ws_dv, *ws_dg, *ws_dh0;
    float *ws_s;
    const float *z0, *dzT;
    float *ws_do, *ws_dz0;
    float *ws_sdq, *ws_sdk, *ws_sdv, *ws_lse, *ws_delta;
    float *ws_db;
    const float *m0, *dmT;
    float *ws_m, *ws_di, *ws_dmf, *ws_dm0;
    void *ws_sin, *ws_dso;   /* the parallel schedule's state images (absent from the sequential kernels' block) */
    void *direct[64];        /* the parallel schedule: a tensor's gradient written by the adjoint directly */
    int direct_dtype[64];
    void *ws_w, *ws_u;       /* the delta rule's parallel schedule: W, U (then U_hat) per chunk, tile type */
    void *ws_t;              /* ... and T per chunk (hi, and lo with remainder tiles) */
    float *ws_decay;         /* the scanned walks: e^{b_L} per chunk and output head (gated specs) */
    int bp_run;              /* the walks' mode: 0 walks each sequence, R > 0 runs of R slots */
    int bd_uhat_saved;       /* the delta rule with the forward's saved states: ws_u is the forward's U_hat (no U formed) */
    const float *l2f;        /* the forward's saved l2norm factors [T, HOUT, nl2], or null */
} bwd_params;

typedef struct bwd_sum_params {
    float *part;
    void *out;
    int dtype;
    long long rows;
    int group;
    int len;
    int tokens;
    int span;
    int pass;
} bwd_sum_params;
enum { SUM_ONE, SUM_SPLITS, SUM_FINAL };   /* attnc_bwd_sum_param's passes (ATTNC_SUM_*) */

/* The backward's schedule, ATTNC_BWD_SCHEDULE: unset, empty, "auto" or "parallel": the chunk-parallel
 * schedule of the causal additive part (codegen/linear_bwd_par_kernel.cuh) where it applies, else the
 * sequential one; "sequential": always the sequential schedule.  Parallel is the default since both ran
 * every GPU case (docs/gpu-checks.md) and it measured 3x faster at the benchmark's shape (bench/RESULTS.md). */
static attnc_status bwd_schedule(attnc_ctx *ctx, bool *parallel)
{
    const char *s = getenv("ATTNC_BWD_SCHEDULE");
    *parallel = !s || !*s || strcmp(s, "auto") == 0 || strcmp(s, "parallel") == 0;
    if (!*parallel && strcmp(s, "sequential") != 0)
        return api_fail(ctx, ATTNC_ERR_USAGE, "ATTNC_BWD_SCHEDULE is '%s': auto, sequential or parallel", s);
    return ATTNC_OK;
}

static attnc_status bwd_walk_mode(attnc_ctx *ctx, walk_mode *mode)
{
    const char *s = getenv("ATTNC_BWD_WALK");
    if (!s || !*s || strcmp(s, "auto") == 0)
        *mode = WALK_AUTO;
    else if (strcmp(s, "sequence") == 0)
        *mode = WALK_SEQUENCE;
    else if (strcmp(s, "split") == 0)
        *mode = WALK_SPLIT;
    else
        return api_fail(ctx, ATTNC_ERR_USAGE, "ATTNC_BWD_WALK is '%s': auto, sequence or split", s);
    return ATTNC_OK;
}

static attnc_status generate_bwd(attnc_ctx *ctx, attnc_spec *spec, cg_bwd_output *out)
{
    if (!spec || !spec->ir)
        return api_fail(ctx, ATTNC_ERR_USAGE, "the spec has errors or is NULL");
    bool parallel;
    attnc_status sst = bwd_schedule(ctx, &parallel);
    if (sst != ATTNC_OK)
        return sst;
    pass_options po = {0};
    if (!passes_run(spec->ir, &po, -1, &spec->diags))
        return api_fail(ctx, ATTNC_ERR_INPUT, "%s: the lowering passes rejected the module", spec->ir->name);
    size_t before = spec->diags.n;
    if (!codegen_cuda_bwd_sched(spec->ir, spec->arena, &spec->diags, parallel, out)) {
        const char *msg = spec->diags.n > before ? spec->diags.list[spec->diags.n - 1].message : "failed";
        return api_fail(ctx, ATTNC_ERR_INPUT, "%s: %s", spec->ir->name, msg);
    }
    return ATTNC_OK;
}

attnc_status attnc_emit_grad(attnc_ctx *ctx, attnc_spec *spec, attnc_emit_kind kind, const attnc_compile_options *opts,
                             attnc_blob *out)
{
    if (!out)
        return api_fail(ctx, ATTNC_ERR_USAGE, "no place for the result");
    memset(out, 0, sizeof *out);
    out->regs = out->spill_bytes = out->stack_bytes = -1;
    cg_bwd_output cg;
    attnc_status st = generate_bwd(ctx, spec, &cg);
    if (st != ATTNC_OK)
        return st;
    return api_emit_unit(ctx, spec, cg.source, kind, opts, out);
}

api_workspace **api_grad_workspace(attnc_grad_kernel *k)
{
    return &k->ws;
}

void attnc_grad_kernel_free(attnc_grad_kernel *k)
{
    if (!k)
        return;
    api_tier_free(k->tier);   /* joins: what it compiled reaches the cache */
    for (int i = 0; i < CG_BK_COUNT; i++) {
        rt_function_free(k->fn[i]);
        rt_function_free(k->retired[i]);
    }
    api_workspace_release(k->ws);
    free(k->tensors);
    free(k);
}

/* The backward's kernel object from the generated unit's plan (no device: nothing loaded, no workspace). */
static attnc_status grad_kernel_plan(attnc_ctx *ctx, attnc_spec *spec, cg_bwd_output *cg, attnc_grad_kernel **out)
{
    walk_mode walk = WALK_AUTO;
    attnc_status wst = bwd_walk_mode(ctx, &walk);
    if (wst != ATTNC_OK)
        return wst;
    attnc_status st = generate_bwd(ctx, spec, cg);
    if (st != ATTNC_OK)
        return st;
    const ir_module *m = spec->ir;
    /* the parallel schedule copies the rows of the inputs its roles read, and dout's, with cp.async in
     * units of up to 16 bytes: their addresses must be aligned to those units (as the forward's) */
    unsigned align[CG_MAX_TENSORS] = {0};
    for (uint32_t i = 0; cg->plan.parallel && i < m->ntensors && i < CG_MAX_TENSORS; i++)
        if (cg->plan.bp_stage_off[i] != ~0u)
            align[i] = cg_stage_unit(m->tensors[i].len * ir_dtype_bytes(m->tensors[i].dtype));
    attnc_grad_kernel *k = calloc(1, sizeof *k);
    *out = NULL;
    if (!k || !(k->tensors = api_tensors_new(m, align)) || !(k->ws = api_workspace_new())) {
        if (k)
            free(k->tensors);
        free(k);
        return api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
    }
    snprintf(k->name, sizeof k->name, "%s", m->name);
    k->ntensors = m->ntensors;
    k->sh = ir_module_shape(m);
    if (!k->sh.heads_state)
        k->sh.heads_state = k->sh.heads_out;
    k->K = cg->plan.K;
    k->V = cg->plan.V;
    k->vo = cg->plan.vo;
    k->norm = cg->plan.norm != IR_NORM_NONE;
    k->gk = cg->plan.gk;
    k->chunk = cg->plan.chunk;
    k->gated = cg->plan.transition != IR_TR_IDENTITY || cg->plan.delta || cg->plan.mlstm;
    k->delta = cg->plan.delta;
    k->mlstm = cg->plan.mlstm;
    k->has_z = cg->plan.norm == IR_NORM_DENOM || cg->plan.mlstm;
    k->out_dtype = (attnc_dtype)m->out_dtype;
    k->dout_align = cg->plan.parallel && cg->plan.norm == IR_NORM_NONE ? cg_stage_unit(cg->plan.vo * ir_dtype_bytes(m->out_dtype))
                                                                      : ir_dtype_bytes(m->out_dtype);
    k->state_in = m->state_in;
    k->state_out = m->state_out;
    k->document = m->document;
    k->smem_bytes = cg->plan.smem_bytes;
    k->linear = cg->plan.linear;
    k->softmax = cg->plan.softmax;
    k->sm_d = cg->plan.sm_d;
    k->sm_v = cg->plan.sm_v;
    k->sm_tile = cg->plan.sm_tile;
    k->sm_smem_bytes = cg->plan.sm_smem_bytes;
    k->parallel = cg->plan.parallel;
    k->walk = walk;
    if (k->parallel) {
        k->chunk = cg->plan.bp_chunk;
        k->gated = false;   /* no S_out workspace: the images take its place */
        k->bp_kp = cg->plan.bp_kp;
        k->bp_vp = cg->plan.bp_vp;
        k->bp_vs = cg->plan.bp_vs;
        k->bp_vw = cg->plan.bp_vw;
        k->bp_scan_rows = cg->plan.bp_scan_rows;
        k->bp_image = cg->plan.bp_image_bytes;
        k->bp_walk_smem = cg->plan.bp_walk_smem;
        k->bp_chunk_smem = cg->plan.bp_chunk_smem;
        k->bp_chunk_threads = 32 * cg->plan.bp_chunk_warps;
        k->bd_adj_threads = 32 * cg->plan.bd_adj_warps;
        k->bp_direct[0] = cg->plan.bp_direct[0];
        k->bp_direct[1] = cg->plan.bp_direct[1];
        k->bp_direct[2] = cg->plan.bp_direct[2];
        k->bp_inputs_idle = cg->plan.bp_inputs_idle;
        k->bp_inputs_scalar = cg->plan.bp_inputs_scalar;
        k->bp_delta = cg->plan.bp_delta;
        k->bp_plo = cg->plan.bp_plo;
        k->bd_duh16 = cg->plan.bd_duh16;
        k->bd_dk16 = cg->plan.bd_dk16;
        k->bp_decay = cg->plan.transition != IR_TR_IDENTITY;
        k->bp_run2 = cg->plan.bp_run2;
        k->bd_wy_smem = cg->plan.bd_wy_smem;
        k->bd_wy_saved_smem = cg->plan.bd_wy_saved_smem;
        k->bp_nl2 = cg->plan.bp_nl2;
        k->bd_walk_ws_smem = cg->plan.bd_walk_ws_smem;
        k->bd_adj_smem = cg->plan.bd_adj_smem;
    }
    *out = k;
    return ATTNC_OK;
}

/* Whether the plan launches kernel i (CG_BK_*); load_functions loads exactly these. */
static bool kernel_defined(const attnc_grad_kernel *k, int i)
{
    switch ((cg_bwd_kernel)i) {
    case CG_BK_LINEAR: return k->linear && !k->parallel;
    case CG_BK_INPUTS: case CG_BK_SUM_HEADS: case CG_BK_SUM_PARAM: return true;
    case CG_BK_SM_ROWS: case CG_BK_SM_KV: return k->softmax;
    case CG_BK_P_STATES: case CG_BK_P_DSTATES: case CG_BK_P_CHUNK: return k->parallel;
    case CG_BK_P_ROWS: return k->parallel && k->norm;
    case CG_BK_P_WY: case CG_BK_P_WY_ADJOINT: return k->bp_delta;
    case CG_BK_P_SCAN_STATES: case CG_BK_P_SCAN_DSTATES: return k->parallel && !k->bp_delta;
    case CG_BK_P_STATES_NARROW: case CG_BK_P_DSTATES_NARROW: return k->bp_delta && k->bp_vw != k->bp_vs;
    case CG_BK_P_STATES_RUN: case CG_BK_P_DSTATES_RUN: return k->parallel && k->bp_run2;
    case CG_BK_P_DSTATES_WS: return k->bp_delta && k->bd_walk_ws_smem;
    case CG_BK_COUNT: break;
    }
    return false;
}

/* ---- compile units ---------------------------------------------------------------------------------
 * The backward's kernels compile in units of their own, all at once (api_get_cubins' threads), on a host
 * with GRAD_SPLIT_CPUS CPUs or more: one unit holding every kernel spends most of its time in NVVM and ptxas
 * one kernel after another.  Each large kernel is a unit; the small ones (the adjoint of the inputs, the
 * head sums, the normaliser's rows, the scans and their runs, the softmax part's row statistics) share one,
 * which every plan has (attnc_bwd_inputs); the narrow reverse walk's warp-specialised form shares the narrow
 * reverse walk's (the two are one walk's forms, and the first is compiled for sm_90a alone).  NVRTC for
 * sm_90a on a 2-core machine (bench/RESULTS.md, twenty-fourth session): gated_deltanet's one unit 4.4 s, its
 * kernels 0.1-1.6 s each, 7.3 s in all (each unit parses the whole text); at once on 2 cores 5.3 s, hence one
 * unit there. */
#define GRAD_SPLIT_CPUS 4
static const uint32_t small_kernels = 1u << CG_BK_INPUTS | 1u << CG_BK_SUM_HEADS | 1u << CG_BK_SUM_PARAM |
                                      1u << CG_BK_SM_ROWS | 1u << CG_BK_P_ROWS | 1u << CG_BK_P_SCAN_STATES |
                                      1u << CG_BK_P_SCAN_DSTATES | 1u << CG_BK_P_STATES_RUN | 1u << CG_BK_P_DSTATES_RUN;

/* The units for a host of `cpus` CPUs: the kernels each defines (bit i: CG_BK_* i); their number. */
static size_t grad_unit_plan(const attnc_grad_kernel *k, long cpus, uint32_t masks[API_MAX_UNITS])
{
    uint32_t all = 0;
    for (int i = 0; i < CG_BK_COUNT; i++)
        all |= kernel_defined(k, i) ? 1u << i : 0;
    size_t n = 0;
    masks[n++] = cpus >= GRAD_SPLIT_CPUS ? all & small_kernels : all;
    const uint32_t ws = 1u << CG_BK_P_DSTATES_WS;
    for (int i = 0; cpus >= GRAD_SPLIT_CPUS && i < CG_BK_COUNT; i++)
        if ((all & ~small_kernels & ~ws) >> i & 1) {
            uint32_t mask = 1u << i | (i == CG_BK_P_DSTATES_NARROW ? all & ws : 0);
            if (n < API_MAX_UNITS)
                masks[n++] = mask;
            else
                masks[0] |= mask;   /* (not reached: 9 large kernels) */
        }
    _Static_assert(CG_BK_COUNT <= 32, "a unit's kernels are bits of a uint32_t");
    return n;
}

/* The units' sources (malloc'd; NULL when out of memory): the whole text where there is one unit (as
 * attnc_compile --grad --emit cuda prints it), else each with its ATTNC_BWD_ONLY line first. */
static bool grad_unit_sources(const char *source, size_t n, const uint32_t *masks, char *srcs[API_MAX_UNITS])
{
    bool ok = true;
    for (size_t u = 0; u < n; u++) {
        char head[48] = "";
        if (n > 1)
            snprintf(head, sizeof head, "#define ATTNC_BWD_ONLY 0x%xu\n", masks[u]);
        ok &= (srcs[u] = api_headed_source(head, source)) != NULL;
    }
    return ok;
}

static long online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

attnc_status api_grad_units(attnc_ctx *ctx, attnc_spec *spec, long cpus, char *srcs[API_MAX_UNITS],
                            uint32_t masks[API_MAX_UNITS], size_t *n)
{
    cg_bwd_output cg;
    attnc_grad_kernel *k = NULL;
    *n = 0;
    attnc_status st = grad_kernel_plan(ctx, spec, &cg, &k);
    if (st != ATTNC_OK)
        return st;
    size_t units = grad_unit_plan(k, cpus, masks);
    attnc_grad_kernel_free(k);
    if (!grad_unit_sources(cg.source, units, masks, srcs)) {
        for (size_t u = 0; u < units; u++)
            free(srcs[u]);
        return api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
    }
    *n = units;
    return ATTNC_OK;
}

/* Loads the functions of the kernels that units `which` (bit u) define from their cubins (images[u]) into
 * fn[], leaving the other entries as they are; on a failure none of those it loaded is left. */
static attnc_status load_functions(attnc_ctx *ctx, attnc_grad_kernel *k, void *const *images, const size_t *sizes,
                                   uint32_t which, rt_function *fn[CG_BK_COUNT])
{
    rt_error err;
    rt_function *first[API_MAX_UNITS] = {NULL};   /* each module's first kernel: the others come from its module */
    uint32_t loaded_here = 0;
    for (size_t u = 0; u < k->nunits; u++) {
        for (int i = 0; (which >> u & 1) && i < CG_BK_COUNT; i++) {
            if (!(k->unit_mask[u] >> i & 1))
                continue;
            bool pk = i == CG_BK_P_STATES || i == CG_BK_P_ROWS || i == CG_BK_P_DSTATES || i == CG_BK_P_CHUNK;
            bool dk = i == CG_BK_P_WY || i == CG_BK_P_WY_ADJOINT;
            bool nk = i == CG_BK_P_STATES_NARROW || i == CG_BK_P_DSTATES_NARROW;
            bool rk = i == CG_BK_P_STATES_RUN || i == CG_BK_P_DSTATES_RUN;
            bool ws = i == CG_BK_P_DSTATES_WS;
            unsigned smem = i == CG_BK_LINEAR ? k->smem_bytes : i == CG_BK_SM_ROWS || i == CG_BK_SM_KV ? k->sm_smem_bytes : 0;
            if (pk)
                smem = i == CG_BK_P_STATES || i == CG_BK_P_DSTATES ? k->bp_walk_smem : k->bp_chunk_smem;
            if (nk || rk)
                smem = k->bp_walk_smem;
            if (dk)
                smem = i == CG_BK_P_WY ? k->bd_wy_smem : k->bd_adj_smem;
            if (ws)
                smem = k->bd_walk_ws_smem;
            fn[i] = NULL;
            bool loaded = api_load_function(images[u], sizes[u], first[u], cg_bwd_entries[i], smem, &fn[i], &err);
            if (loaded && !first[u])
                first[u] = fn[i];
            if (loaded) {
                loaded_here |= 1u << i;
                continue;
            }
            rt_function_free(fn[i]);   /* (loaded, but its shared memory refused) */
            fn[i] = NULL;
            if (rk || ws)   /* compiled for sm_90 (a) only: elsewhere the walk kernels run */
                continue;
            for (int j = 0; j < CG_BK_COUNT; j++)
                if (loaded_here >> j & 1) {
                    rt_function_free(fn[j]);
                    fn[j] = NULL;
                }
            return api_fail(ctx, ATTNC_ERR_IO, "%s backward: %s", k->name, err.msg);
        }
    }
    return ATTNC_OK;
}

/* The scanned walks' products' CTAs an SM (1 without their kernels of their own). */
static void set_run_per_sm(attnc_grad_kernel *k)
{
    rt_error err;
    rt_function_attrs at;
    k->run_per_sm = 1;
    if (k->fn[CG_BK_P_STATES_RUN] && rt_function_get_attrs(k->fn[CG_BK_P_STATES_RUN], &at, &err))
        k->run_per_sm = api_ctas_per_sm(CG_BWD_THREADS, k->bp_walk_smem, at.num_regs);
}

/* Joins the optimised compile (waiting for it if it is still running) and loads its functions in place of
 * the quick ones: the tier's cubin j is that of the j-th quick unit.  A failure leaves the quick ones and
 * its message in k->tier_error. */
static void grad_tier_finish(attnc_grad_kernel *k)
{
    api_tier *t = k->tier;
    k->tier = NULL;
    api_tier_join(t);
    void *images[API_MAX_UNITS] = {NULL};
    size_t sizes[API_MAX_UNITS] = {0}, j = 0;
    const char *why = NULL;
    for (size_t u = 0; u < k->nunits; u++)
        if (k->quick_units >> u & 1) {
            const char *w = NULL;
            images[u] = (void *)api_tier_cubin(t, j++, &sizes[u], &w);
            why = why ? why : w;
        }
    rt_function *optimised[CG_BK_COUNT] = {NULL};
    if (!why && load_functions(NULL, k, images, sizes, k->quick_units, optimised) == ATTNC_OK) {
        for (size_t u = 0; u < k->nunits; u++)
            for (int i = 0; (k->quick_units >> u & 1) && i < CG_BK_COUNT; i++)
                if (k->unit_mask[u] >> i & 1) {
                    k->retired[i] = k->fn[i];
                    k->fn[i] = optimised[i];
                }
        k->quick = false;
        k->quick_units = 0;
        set_run_per_sm(k);
    } else {
        snprintf(k->tier_error, sizeof k->tier_error, "%s backward: the optimised kernels %s%s", k->name,
                 why ? "did not compile: " : "could not be loaded", why ? why : "");
    }
    api_tier_free(t);
}

attnc_status attnc_grad_kernel_wait_optimized(attnc_ctx *ctx, attnc_grad_kernel *kernel)
{
    if (!kernel)
        return api_fail(ctx, ATTNC_ERR_USAGE, "attnc_grad_kernel_wait_optimized: kernel is NULL");
    if (kernel->tier)
        grad_tier_finish(kernel);
    if (!kernel->tier_error[0])
        return ATTNC_OK;
    attnc_status st = api_fail(ctx, ATTNC_ERR_IO, "%s", kernel->tier_error);
    kernel->tier_error[0] = 0;
    return st;
}

int attnc_grad_kernel_quick(const attnc_grad_kernel *kernel)
{
    return kernel && kernel->quick;
}

attnc_status attnc_grad_kernel_new(attnc_ctx *ctx, attnc_spec *spec, const attnc_compile_options *opts,
                                   attnc_grad_kernel **kernel)
{
    if (!kernel)
        return api_fail(ctx, ATTNC_ERR_USAGE, "no place for the result (kernel is NULL)");
    *kernel = NULL;
    rt_device_info dev;
    char arch[16];
    attnc_jit_mode jit;
    attnc_status st = api_open_device(ctx, opts, &dev, arch, &jit);
    if (st != ATTNC_OK)
        return st;
    cg_bwd_output cg;
    attnc_grad_kernel *k = NULL;
    if ((st = grad_kernel_plan(ctx, spec, &cg, &k)) != ATTNC_OK)
        return st;
    const ir_module *m = spec->ir;
    k->nunits = grad_unit_plan(k, online_cpus(), k->unit_mask);
    char *srcs[API_MAX_UNITS] = {NULL};
    void *images[API_MAX_UNITS] = {NULL};
    size_t sizes[API_MAX_UNITS];
    bool hits[API_MAX_UNITS], quick[API_MAX_UNITS];
    if (!grad_unit_sources(cg.source, k->nunits, k->unit_mask, srcs))
        st = api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
    else
        st = api_jit_cubins(ctx, m->name, k->nunits, (const char *const *)srcs, arch, !(opts && opts->no_cache), jit,
                            images, sizes, hits, quick, &k->tier);
    for (size_t u = 0; u < k->nunits; u++) {
        free(srcs[u]);
        k->quick_units |= st == ATTNC_OK && quick[u] ? 1u << u : 0;
    }
    k->quick = k->quick_units != 0;
    if (st == ATTNC_OK && jit == ATTNC_JIT_TIERED && k->quick && !k->tier)
        snprintf(k->tier_error, sizeof k->tier_error, "%s backward: the optimised kernels' compile did not start", m->name);
    k->sm_count = dev.sm_count;
    if (st == ATTNC_OK)
        st = load_functions(ctx, k, images, sizes, (1u << k->nunits) - 1, k->fn);
    for (size_t u = 0; u < k->nunits; u++)
        free(images[u]);
    if (st != ATTNC_OK) {
        attnc_grad_kernel_free(k);
        return st;
    }
    set_run_per_sm(k);
    *kernel = k;
    return ATTNC_OK;
}

static size_t align256(size_t x)
{
    return (x + 255) / 256 * 256;
}

/* The workspace: role gradients (not the query's or key's where the parallel schedule's chunk kernel writes
 * them into their tensor's gradient: bp_direct), dh0 (and dz0) per output head, every chunk's S_out (gated specs and the
 * delta rule), the normalised output gradient (normalisers), the softmax part's role gradients and row
 * statistics, beta's role gradient (the delta rule), mLSTM's chunk maxima and gradients, every tensor's
 * partials (fp32).  Chunk slots: c0 / C + n, below total / C + N + 1. */
#define WS_FIXED 24
/* The parallel schedule's adjoint writes the gradient of a per-token tensor that no two output heads
 * share straight into the caller's buffer, in its dtype: such a tensor needs no partials (nor a head sum). */
static bool direct_tensor(const attnc_grad_kernel *k, uint32_t i)
{
    return k->parallel && k->tensors[i].per_token && k->tensors[i].heads == k->sh.heads_out;
}

/* The chunk slots of total tokens in N sequences: chunk c0 of sequence n is slot c0 / C + n, so that each
 * sequence's last, partial chunk has a slot of its own (api_saved_slots counts the forward's the same way). */
static int64_t chunk_slots(const attnc_grad_kernel *k, int64_t total, int64_t N)
{
    return total / k->chunk + N + 1;
}

/* The device's SMs (132 where none was opened: a workspace query without a device). */
static int64_t sm_count(const attnc_grad_kernel *k)
{
    return k->sm_count > 0 ? k->sm_count : 132;
}

/* Whether the parallel schedule's walks for N sequences split (walk_mode).  A walk is latency-bound, one
 * chunk after another, so it pays only where its CTAs fill the GPU. */
static bool walks_split(const attnc_grad_kernel *k, int64_t N)
{
    if (!k->parallel || k->walk == WALK_SEQUENCE || (k->bp_delta && k->bp_vw == k->bp_vs))
        return false;
    return k->walk == WALK_SPLIT || N * k->sh.heads_out * (k->bp_vp / k->bp_vw) * 2 <= sm_count(k);
}

/* The scanned walks' runs: slots per CTA of the chunks' products, as many CTAs as the SMs hold at once (two
 * an SM with the products' own kernels, bp_run2; 0: not scanned). */
static int64_t scan_run(const attnc_grad_kernel *k, int64_t total, int64_t N)
{
    if (k->bp_delta || !walks_split(k, N))
        return 0;
    int64_t sms = sm_count(k) * (int64_t)(k->run_per_sm ? k->run_per_sm : 1);
    int64_t per_slot = (int64_t)k->sh.heads_out * (k->bp_vp / k->bp_vs);
    int64_t slots = chunk_slots(k, total, N), across = sms / per_slot > 0 ? sms / per_slot : 1;
    return (slots + across - 1) / across;
}

static bool walks_split(const attnc_grad_kernel *k, int64_t N);

bool api_grad_saved_layout(const attnc_grad_kernel *k, int64_t N, api_saved_layout *out)
{
    /* 16-bit images, bf16 tiles or mantissas with row scales (not fp32: the forward's tiles are bf16); the
     * states of the running denominator, mLSTM and the normalisers' rows the forward does not save.  The delta
     * rule's forward saves every token's U_hat too (the backward's forward walk formed it; the chunk kernel
     * reads it for V), so attnc_bwdp_wy forms no U.  Split walks (few sequences and
     * heads): the scanned ones form their own images, keeping each chunk's decay from their forward walk; the
     * delta rule's narrow reverse walk needs no more than the wide one, so its forward walk is skipped the same
     * way (and the forward's split walk saves, api/kernel.c's split_saves). */
    if (!k || !k->parallel || k->norm || k->has_z || k->mlstm || k->softmax || k->bp_vp != k->V || !k->bp_vs ||
        (walks_split(k, N) && !k->bp_delta))
        return false;
    uint32_t plain = k->bp_kp * k->bp_vp * 2, scales = k->bp_kp * (k->bp_vp / k->bp_vs) * 4;
    if (k->bp_image != (k->bp_plo ? plain + scales : plain) || (k->bp_delta && k->bp_plo))
        return false;   /* (no forward saves mantissa images for the delta rule) */
    *out = (api_saved_layout){.chunk = k->chunk, .kp = k->bp_kp, .vp = k->bp_vp, .heads_out = k->sh.heads_out,
                              .mantissa = k->bp_plo, .vs = k->bp_vs, .uhat = k->bp_delta, .nl2 = k->bp_nl2};
    return true;
}

size_t api_saved_slots(const api_saved_layout *sl, int64_t tokens, int64_t N)
{
    return (size_t)tokens / sl->chunk + (size_t)N + 1;   /* the backward's slots: c0 / C + n */
}

size_t api_saved_images_bytes(const api_saved_layout *sl, size_t slots)
{
    size_t image = (size_t)sl->kp * sl->vp * 2 + (sl->mantissa ? (size_t)sl->kp * (sl->vp / sl->vs) * 4 : 0);
    return slots * sl->heads_out * image;
}

size_t api_saved_l2_offset(const api_saved_layout *sl, size_t slots)
{
    return api_saved_images_bytes(sl, slots) + (sl->uhat ? slots * sl->heads_out * sl->chunk * sl->vp * 2 : 0);
}

bool api_saved_l2_fits(const api_saved_layout *sl, int64_t tokens)
{
    return (uint64_t)tokens * sl->heads_out * sl->nl2 <= UINT32_MAX;
}

size_t api_saved_bytes(const api_saved_layout *sl, size_t slots, int64_t tokens)
{
    return api_saved_l2_offset(sl, slots) + (size_t)tokens * sl->heads_out * sl->nl2 * 4;
}

/* wanted: per tensor, whether its gradient is asked for (NULL: every one).  The parallel schedule's adjoint
 * writes no partials for an unwanted tensor; the sequential one writes them all. */
static size_t workspace_sizes(const attnc_grad_kernel *k, int64_t total, int64_t N, bool dh0, bool dz0,
                              const bool *wanted, bool saved, size_t sizes[WS_FIXED + 64])
{
    size_t rows = (size_t)total * k->sh.heads_out;
    size_t slots = (size_t)chunk_slots(k, total, N);
    sizes[0] = k->bp_direct[0] ? 0 : rows * k->K;   /* written into the query (key) tensor's gradient instead */
    /* the delta rule's: the chunk kernel's dk (where bd_dk16 a row of KP 16-bit mantissas and KP / 16 scales) */
    sizes[1] = k->bp_direct[1] && !k->bp_delta ? 0 : k->parallel && k->bd_dk16 ? rows * k->bp_kp * 9 / 16 : rows * k->K;
    /* the delta rule's: dU_hat, dv direct (in 16 bits where bd_duh16: half the floats) */
    sizes[2] = k->bp_direct[2] && !k->bp_delta ? 0 : k->parallel && k->bd_duh16 ? (rows * k->V + 1) / 2 : rows * k->V;
    sizes[3] = rows * k->gk;
    sizes[4] = dh0 ? (size_t)N * k->sh.heads_out * k->K * k->vo : 0;
    sizes[5] = k->gated ? slots * k->sh.heads_out * k->K * k->V : 0;
    sizes[6] = k->norm ? rows * k->V : 0;
    sizes[7] = dz0 && k->has_z ? (size_t)N * k->sh.heads_out * k->K : 0;
    sizes[8] = k->softmax ? rows * k->sm_d : 0;
    sizes[9] = k->softmax ? rows * k->sm_d : 0;
    sizes[10] = k->softmax ? rows * k->sm_v : 0;
    sizes[11] = k->softmax ? rows : 0;
    sizes[12] = k->softmax ? rows : 0;
    sizes[13] = k->delta ? rows : 0;
    sizes[14] = k->mlstm ? slots * k->sh.heads_out : 0;
    sizes[15] = k->mlstm ? rows : 0;
    sizes[16] = k->mlstm ? rows : 0;
    sizes[17] = k->mlstm ? (size_t)N * k->sh.heads_out : 0;
    /* the parallel schedule's S_in and dS_out images (one per slot and output head), in floats' worth */
    size_t img = k->parallel ? (slots * k->sh.heads_out * k->bp_image + 3) / 4 : 0;
    sizes[18] = saved ? 0 : img;   /* S_in's images: in the forward's saved states */
    sizes[19] = img;
    /* the delta rule's W and U (U_hat) of every chunk: C x KP and C x VP elements per slot and head */
    size_t tile = k->bp_delta ? slots * k->sh.heads_out * k->chunk * 2 : 0;   /* 16-bit tiles only */
    sizes[20] = (tile * k->bp_kp + 3) / 4;
    sizes[21] = saved ? 0 : (tile * k->bp_vp + 3) / 4;   /* U_hat: in the forward's saved states */
    /* the scanned walks: every chunk's decay e^{b_L} (per channel with a vector gate) */
    sizes[22] = k->bp_decay && scan_run(k, total, N) > 0 ? slots * k->sh.heads_out * k->gk : 0;
    /* the delta rule's T, C x C (hi, and lo where the products take remainder tiles), saved by attnc_bwdp_wy
     * for the adjoint, which solved it again before */
    sizes[23] = (tile * k->chunk * (k->bp_plo ? 2 : 1) + 3) / 4;
    for (uint32_t i = 0; i < k->ntensors; i++)
        sizes[WS_FIXED + i] = k->parallel && (direct_tensor(k, i) || (wanted && !wanted[i])) ? 0 : rows * k->tensors[i].len;
    size_t need = 0;
    for (size_t i = 0; i < WS_FIXED + k->ntensors; i++)
        need += align256(sizes[i] * 4);
    return need;
}

size_t attnc_grad_workspace_bytes(const attnc_grad_kernel *k, int64_t B, int64_t T, int64_t nseq, int with_dh0)
{
    if (!k || B < 1 || T < 0)
        return 0;
    size_t sizes[WS_FIXED + 64];
    return workspace_sizes(k, B * T, nseq > 0 ? nseq : B, with_dh0 != 0, with_dh0 != 0, NULL, false, sizes);
}

attnc_status api_grad_workspace_plan(attnc_ctx *ctx, attnc_spec *spec, int64_t B, int64_t T, int with_dh0, size_t *bytes)
{
    cg_bwd_output cg;
    attnc_grad_kernel *k = NULL;
    attnc_status st = grad_kernel_plan(ctx, spec, &cg, &k);
    if (st != ATTNC_OK)
        return st;
    *bytes = attnc_grad_workspace_bytes(k, B, T, 0, with_dh0);
    attnc_grad_kernel_free(k);
    return ATTNC_OK;
}

size_t attnc_grad_workspace_allocated(const attnc_grad_kernel *k)
{
    return k && k->ws ? k->ws->bytes : 0;
}

static attnc_status workspace(attnc_ctx *ctx, attnc_grad_kernel *k, int64_t total, int64_t N, bool dh0, bool dz0,
                              const bool *wanted, const void *saved, bwd_params *lp)
{
    size_t sizes[WS_FIXED + 64];
    size_t need = workspace_sizes(k, total, N, dh0, dz0, wanted, saved != NULL, sizes), n = WS_FIXED + k->ntensors;
    attnc_status st = api_workspace_grow(ctx, k->ws, need, k->name, "backward");
    if (st != ATTNC_OK)
        return st;
    float *ptr[WS_FIXED + 64];
    uint64_t at = k->ws->ptr;
    for (size_t i = 0; i < n; i++) {
        ptr[i] = sizes[i] ? (float *)(uintptr_t)at : NULL;
        at += align256(sizes[i] * 4);
    }
    lp->ws_dq = ptr[0];
    lp->ws_dk = ptr[1];
    lp->ws_dv = ptr[2];
    lp->ws_dg = ptr[3];
    lp->ws_dh0 = ptr[4];
    lp->ws_s = ptr[5];
    lp->ws_do = ptr[6];
    lp->ws_dz0 = ptr[7];
    lp->ws_sdq = ptr[8];
    lp->ws_sdk = ptr[9];
    lp->ws_sdv = ptr[10];
    lp->ws_lse = ptr[11];
    lp->ws_delta = ptr[12];
    lp->ws_db = ptr[13];
    lp->ws_m = ptr[14];
    lp->ws_di = ptr[15];
    lp->ws_dmf = ptr[16];
    lp->ws_dm0 = ptr[17];
    lp->ws_sin = saved ? (void *)saved : ptr[18];
    lp->ws_dso = ptr[19];
    lp->ws_w = ptr[20];
    lp->ws_u = ptr[21];
    lp->ws_decay = ptr[22];
    lp->ws_t = ptr[23];
    for (uint32_t i = 0; i < k->ntensors; i++)
        lp->part[i] = ptr[WS_FIXED + i];
    return ATTNC_OK;
}

/* A parameter's sum over the tokens in splits of at least 256 tokens, enough of them for about 1024 CTAs in
 * all, then (more than one split) a second pass over the splits' sums (codegen/linear_bwd_kernel.cuh). */
static attnc_status launch_sum(attnc_ctx *ctx, attnc_grad_kernel *k, int which, bwd_sum_params sp, void *stream)
{
    rt_error err;
    unsigned block[3] = {CG_BWD_THREADS, 1, 1};
    unsigned grid[3] = {1, 1, 1};
    void *params[] = {&sp};
    if (which == CG_BK_SUM_HEADS) {
        grid[0] = (unsigned)(((size_t)sp.rows * (size_t)sp.len + CG_BWD_THREADS - 1) / CG_BWD_THREADS);
    } else {
        long long outputs = sp.rows * sp.len, tokens = sp.tokens > 0 ? sp.tokens : 1;
        long long splits = outputs >= 1024 || outputs <= 0 ? 1 : 1024 / outputs, most = (tokens + 255) / 256;
        if (splits > most)
            splits = most;
        sp.span = (int)((tokens + splits - 1) / splits);
        splits = (tokens + sp.span - 1) / sp.span;
        grid[0] = (unsigned)outputs;
        grid[1] = (unsigned)splits;
        sp.pass = splits > 1 ? SUM_SPLITS : SUM_ONE;
    }
    if (grid[0] == 0)
        return ATTNC_OK;
    if (!rt_launch(k->fn[which], grid, block, 0, stream, params, &err))
        return api_fail(ctx, ATTNC_ERR_IO, "%s backward: %s", k->name, err.msg);
    if (which == CG_BK_SUM_PARAM && sp.pass == SUM_SPLITS) {   /* then the splits' sums, a CTA per element */
        grid[1] = 1;
        sp.pass = SUM_FINAL;
        if (!rt_launch(k->fn[which], grid, block, 0, stream, params, &err))
            return api_fail(ctx, ATTNC_ERR_IO, "%s backward: %s", k->name, err.msg);
    }
    return ATTNC_OK;
}

attnc_status attnc_backward(attnc_ctx *ctx, attnc_grad_kernel *k, const attnc_backward_args *a)
{
    if (!k || !a)
        return api_fail(ctx, ATTNC_ERR_USAGE, "kernel or args is NULL");
    if (a->ninputs != k->ntensors || (k->ntensors && (!a->inputs || !a->dinputs)))
        return api_fail(ctx, ATTNC_ERR_USAGE, "%s backward takes %u tensors and as many gradients, got %zu", k->name,
                        k->ntensors, a->ninputs);
    attnc_status st;
    int64_t B = -1, T = -1, N;
    char what[128];
    for (int pass = 0; pass < 2; pass++)
        for (uint32_t i = 0; i < k->ntensors; i++) {
            const attnc_tensor *t = pass == 0 ? &a->inputs[i] : &a->dinputs[i];
            if (pass == 1 && !t->data)
                continue;   /* not wanted */
            snprintf(what, sizeof what, "%s%s", pass ? "the gradient of " : "", k->tensors[i].label);
            if ((st = api_check_input(ctx, k->name, what, &k->tensors[i], t, &B, &T)) != ATTNC_OK)
                return st;
        }
    if ((st = api_check_sequences(ctx, k->name, k->document, B, T, a->cu_seqlens, a->nseq, &N)) != ATTNC_OK)
        return st;
    if (k->tier && api_tier_done(k->tier))   /* the optimised kernels are ready: from this launch on */
        grad_tier_finish(k);
    int64_t wo[4] = {B, T, k->sh.heads_out, k->vo};
    if ((st = api_check_tensor(ctx, k->name, "dout", &a->dout, k->out_dtype, 4, wo, NULL, k->dout_align)) != ATTNC_OK)
        return st;
    int64_t hs[4] = {N, k->sh.heads_state, k->K, k->vo};
    /* kind 0: [N, HS, K, V]; 1: the denominator's (or mLSTM's n) [N, HS, K]; 2: mLSTM's m [N, HS] */
    struct { const char *name; const attnc_tensor *t; bool allowed; int kind; } states[] = {
        {"h0", &a->h0, k->state_in, 0},  {"dhT", &a->dhT, k->state_out, 0}, {"dh0", &a->dh0, k->state_in, 0},
        {"z0", &a->z0, k->state_in, 1},  {"dzT", &a->dzT, k->state_out, 1}, {"dz0", &a->dz0, k->state_in, 1},
        {"m0", &a->m0, k->state_in, 2},  {"dmT", &a->dmT, k->state_out, 2}, {"dm0", &a->dm0, k->state_in, 2}};
    for (size_t i = 0; i < sizeof states / sizeof *states; i++) {
        if (!states[i].t->data)
            continue;
        if (states[i].kind == 1 && !k->has_z)
            return api_fail(ctx, ATTNC_ERR_USAGE, "%s: %s given but the spec has no running denominator", k->name,
                            states[i].name);
        if (states[i].kind == 2 && !k->mlstm)
            return api_fail(ctx, ATTNC_ERR_USAGE, "%s: %s given but the spec has no stabiliser", k->name, states[i].name);
        if (!states[i].allowed)
            return api_fail(ctx, ATTNC_ERR_USAGE, "%s: %s given but the spec has no %s state", k->name, states[i].name,
                            i % 3 == 1 ? "final" : "initial");
        if ((st = api_check_tensor(ctx, k->name, states[i].name, states[i].t, ATTNC_FP32, 4 - states[i].kind, hs, NULL,
                                   4)) != ATTNC_OK)
            return st;
    }
    int64_t total = B * T;
    bwd_params lp;
    memset(&lp, 0, sizeof lp);
    bool wanted[64];
    for (uint32_t i = 0; i < k->ntensors; i++)
        wanted[i] = a->dinputs[i].data != NULL;
    /* the forward's saved states stand for the images of the backward's forward walk, which is then not run */
    api_saved_layout sl = {0};
    if (a->saved && !api_grad_saved_layout(k, N, &sl))
        return api_fail(ctx, ATTNC_ERR_USAGE, "%s backward: saved states given, but this backward reads none on "
                        "this shape (attnc_saved_states_bytes is 0 for it)", k->name);
    if (a->saved && (uintptr_t)a->saved % 16)
        return api_fail(ctx, ATTNC_ERR_USAGE, "%s backward: the saved states are not 16-byte aligned", k->name);
    const void *saved = a->saved;
    if ((st = workspace(ctx, k, total, N, a->dh0.data != NULL, a->dz0.data != NULL, wanted, saved, &lp)) != ATTNC_OK)
        return st;
    if (saved && sl.uhat)   /* the delta rule: the forward's U_hat rows, after its images, for the chunk kernel */
        lp.ws_u = (unsigned char *)(uintptr_t)saved + api_saved_images_bytes(&sl, api_saved_slots(&sl, total, N));
    if (saved && sl.nl2)   /* the l2norm factors, after those */
        lp.l2f = (const float *)(const void *)((const unsigned char *)saved + api_saved_l2_offset(&sl, api_saved_slots(&sl, total, N)));
    for (uint32_t i = 0; i < k->ntensors; i++)
        if (direct_tensor(k, i) && wanted[i]) {
            lp.direct[i] = a->dinputs[i].data;
            lp.direct_dtype[i] = (int)k->tensors[i].dtype;
        }
    for (uint32_t i = 0; i < k->ntensors; i++)
        lp.in[i] = a->inputs[i].data;
    lp.dout = a->dout.data;
    lp.h0 = a->h0.data;
    lp.dhT = a->dhT.data;
    lp.z0 = a->z0.data;
    lp.dzT = a->dzT.data;
    lp.m0 = a->m0.data;
    lp.dmT = a->dmT.data;
    lp.cu_seqlens = a->cu_seqlens;
    lp.seqlen = a->cu_seqlens ? 0 : (int)T;
    lp.nseq = (int)N;
    lp.total = (int)total;
    rt_error err;
    void *params[] = {&lp};
    unsigned block[3] = {CG_BWD_THREADS, 1, 1};
    unsigned g1[3] = {(unsigned)N, k->sh.heads_out, 1};
    if (k->linear && !k->parallel && !rt_launch(k->fn[CG_BK_LINEAR], g1, block, k->smem_bytes, a->stream, params, &err))
        return api_fail(ctx, ATTNC_ERR_IO, "%s backward: %s", k->name, err.msg);
    if (k->parallel) {
        /* the state walks per (sequence, head, V slice): of the widest slices, or split (walks_split): scanned
         * (the chunks' products in runs of bp_run slots, then a warp per state row and sequence) or, the delta
         * rule, of narrow slices; then every chunk on its own (slot c0 / C + n) */
        bool split = walks_split(k, N), narrow = split && k->bp_delta;
        int64_t slots = chunk_slots(k, total, N), run = scan_run(k, total, N);
        lp.bp_run = (int)run;
        lp.bd_uhat_saved = saved && k->bp_delta;
        unsigned gw[3] = {(unsigned)(run ? (slots + run - 1) / run : N), k->sh.heads_out,
                          k->bp_vp / (narrow ? k->bp_vs : k->bp_vw)};
        unsigned gs[3] = {(unsigned)N, k->sh.heads_out, run ? (k->bp_kp + k->bp_scan_rows - 1) / k->bp_scan_rows : 0};
        unsigned gc[3] = {(unsigned)slots, k->sh.heads_out, 1}, chunk_block[3] = {k->bp_chunk_threads, 1, 1};
        unsigned adj_block[3] = {k->bd_adj_threads, 1, 1};
        bool run2 = run && k->fn[CG_BK_P_STATES_RUN];
        rt_function *walk_fwd = k->fn[narrow ? CG_BK_P_STATES_NARROW : run2 ? CG_BK_P_STATES_RUN : CG_BK_P_STATES];
        rt_function *walk_rev = k->fn[narrow ? CG_BK_P_DSTATES_NARROW : run2 ? CG_BK_P_DSTATES_RUN : CG_BK_P_DSTATES];
        /* the narrow reverse walk with its warps specialised, where the cubin has it (sm_90a): 16 warps */
        bool rev_ws = narrow && k->fn[CG_BK_P_DSTATES_WS];
        unsigned rev_block[3] = {rev_ws ? 2 * CG_BWD_THREADS : CG_BWD_THREADS, 1, 1};
        if (rev_ws)
            walk_rev = k->fn[CG_BK_P_DSTATES_WS];
        unsigned wy_smem = saved ? k->bd_wy_saved_smem : k->bd_wy_smem;
        if ((k->bp_delta && !rt_launch(k->fn[CG_BK_P_WY], gc, block, wy_smem, a->stream, params, &err)) ||
            (!saved && !rt_launch(walk_fwd, gw, block, k->bp_walk_smem, a->stream, params, &err)) ||
            (run && !rt_launch(k->fn[CG_BK_P_SCAN_STATES], gs, block, 0, a->stream, params, &err)) ||
            (k->norm && !rt_launch(k->fn[CG_BK_P_ROWS], gc, block, k->bp_chunk_smem, a->stream, params, &err)) ||
            !rt_launch(walk_rev, gw, rev_block, rev_ws ? k->bd_walk_ws_smem : k->bp_walk_smem, a->stream, params,
                       &err) ||
            (run && !rt_launch(k->fn[CG_BK_P_SCAN_DSTATES], gs, block, 0, a->stream, params, &err)) ||
            !rt_launch(k->fn[CG_BK_P_CHUNK], gc, chunk_block, k->bp_chunk_smem, a->stream, params, &err) ||
            (k->bp_delta && !rt_launch(k->fn[CG_BK_P_WY_ADJOINT], gc, adj_block, k->bd_adj_smem, a->stream, params, &err)))
            return api_fail(ctx, ATTNC_ERR_IO, "%s backward: %s", k->name, err.msg);
    }
    if (k->softmax && total > 0) {
        /* tiles of the longest possible sequence (varlen: every token; cu_seqlens is not read here) */
        int64_t longest = a->cu_seqlens ? total : T;
        unsigned gs[3] = {(unsigned)((longest + k->sm_tile - 1) / k->sm_tile), k->sh.heads_out, (unsigned)N};
        if (!rt_launch(k->fn[CG_BK_SM_ROWS], gs, block, k->sm_smem_bytes, a->stream, params, &err) ||
            !rt_launch(k->fn[CG_BK_SM_KV], gs, block, k->sm_smem_bytes, a->stream, params, &err))
            return api_fail(ctx, ATTNC_ERR_IO, "%s backward: %s", k->name, err.msg);
    }
    size_t rows = (size_t)total * k->sh.heads_out, per_cta = k->bp_inputs_scalar ? CG_BWD_WARPS * 32 : CG_BWD_WARPS;
    unsigned g2[3] = {(unsigned)((rows + per_cta - 1) / per_cta), 1, 1};
    if (!k->bp_inputs_idle && !rt_launch(k->fn[CG_BK_INPUTS], g2, block, 0, a->stream, params, &err))
        return api_fail(ctx, ATTNC_ERR_IO, "%s backward: %s", k->name, err.msg);
    for (uint32_t i = 0; i < k->ntensors; i++) {
        const api_tensor *gt = &k->tensors[i];
        if (!a->dinputs[i].data || direct_tensor(k, i))
            continue;   /* not wanted, or written by the adjoint itself */
        bwd_sum_params sp = {.part = lp.part[i], .out = a->dinputs[i].data, .dtype = (int)gt->dtype,
                             .group = (int)(k->sh.heads_out / gt->heads), .len = (int)gt->len, .tokens = (int)total};
        sp.rows = gt->per_token ? total * (long long)gt->heads : (long long)gt->heads;
        if ((st = launch_sum(ctx, k, gt->per_token ? CG_BK_SUM_HEADS : CG_BK_SUM_PARAM, sp, a->stream)) != ATTNC_OK)
            return st;
    }
    if (a->dh0.data) {
        bwd_sum_params sp = {.part = lp.ws_dh0, .out = a->dh0.data, .dtype = ATTNC_FP32,
                             .rows = N * (long long)k->sh.heads_state, .group = (int)(k->sh.heads_out / k->sh.heads_state),
                             .len = (int)(k->K * k->vo), .tokens = (int)total};
        if ((st = launch_sum(ctx, k, CG_BK_SUM_HEADS, sp, a->stream)) != ATTNC_OK)
            return st;
    }
    if (a->dm0.data) {
        bwd_sum_params sp = {.part = lp.ws_dm0, .out = a->dm0.data, .dtype = ATTNC_FP32,
                             .rows = N * (long long)k->sh.heads_state, .group = (int)(k->sh.heads_out / k->sh.heads_state),
                             .len = 1, .tokens = (int)total};
        if ((st = launch_sum(ctx, k, CG_BK_SUM_HEADS, sp, a->stream)) != ATTNC_OK)
            return st;
    }
    if (a->dz0.data) {
        bwd_sum_params sp = {.part = lp.ws_dz0, .out = a->dz0.data, .dtype = ATTNC_FP32,
                             .rows = N * (long long)k->sh.heads_state, .group = (int)(k->sh.heads_out / k->sh.heads_state),
                             .len = (int)k->K, .tokens = (int)total};
        if ((st = launch_sum(ctx, k, CG_BK_SUM_HEADS, sp, a->stream)) != ATTNC_OK)
            return st;
    }
    return ATTNC_OK;
}
