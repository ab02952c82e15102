/* codegen/cuda_bwd.h: CUDA C of the backward (codegen/cuda_bwd.c), a translation unit of its own. */
#ifndef ATTNC_CUDA_BWD_H
#define ATTNC_CUDA_BWD_H

#include <stdbool.h>

#include "arena.h"
#include "diag.h"
#include "grad.h"
#include "ir.h"

#define CG_BWD_THREADS 256u   /* every backward kernel's CTA (ATTNC_B_THREADS) */
#define CG_BWD_WARPS 8u

/* The backward's kernels.  A plan defines some of them (api/backward.c launches those); the generated
 * source numbers each as ATTNC_BK_<NAME> (cg_bwd_macros) and defines those for which ATTNC_BWD_WANT(k) holds:
 * all, unless a "#define ATTNC_BWD_ONLY mask" line (bit k: kernel k) comes before the text, as in the JIT's
 * compile units of a few kernels each. */
typedef enum cg_bwd_kernel {
    CG_BK_LINEAR, CG_BK_INPUTS, CG_BK_SUM_HEADS, CG_BK_SUM_PARAM, CG_BK_SM_ROWS, CG_BK_SM_KV, CG_BK_P_STATES,
    CG_BK_P_ROWS, CG_BK_P_DSTATES, CG_BK_P_CHUNK, CG_BK_P_WY, CG_BK_P_WY_ADJOINT, CG_BK_P_SCAN_STATES,
    CG_BK_P_SCAN_DSTATES, CG_BK_P_STATES_NARROW, CG_BK_P_DSTATES_NARROW, CG_BK_P_STATES_RUN, CG_BK_P_DSTATES_RUN,
    CG_BK_P_DSTATES_WS, CG_BK_COUNT
} cg_bwd_kernel;
extern const char *const cg_bwd_entries[CG_BK_COUNT];   /* their extern "C" names */

typedef struct cg_bwd_output {
    const char *source;   /* the backward's translation unit (kernels attnc_bwd_linear with a linear part,
                             attnc_bwd_sm_rows and attnc_bwd_sm_kv with a softmax part, attnc_bwd_inputs,
                             attnc_bwd_sum_heads, attnc_bwd_sum_param) */
    grad_plan plan;
} cg_bwd_output;

/* Generates the backward of `m` (scheduled).  When the backward is not generated for a feature of the
 * spec: false with the error "backward not generated yet for FEATURE" at the spec's place for it. */
bool codegen_cuda_bwd(const ir_module *m, attnc_arena *a, attnc_diags *diags, cg_bwd_output *out);
/* The same with the schedule chosen: parallel asks for the chunk-parallel schedule of the causal additive
 * part (codegen/linear_bwd_par_kernel.cuh: attnc_bwdp_states, attnc_bwdp_rows with a normaliser,
 * attnc_bwdp_dstates and attnc_bwdp_chunk in place of attnc_bwd_linear) where it applies
 * (out->plan.parallel tells); elsewhere, and with parallel false, the sequential schedule. */
bool codegen_cuda_bwd_sched(const ir_module *m, attnc_arena *a, attnc_diags *diags, bool parallel, cg_bwd_output *out);

#endif
