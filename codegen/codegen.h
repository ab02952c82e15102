/* codegen/codegen.h: CUDA C from a scheduled module (passes/ ran to the end).
 *
 * The translation unit is: a header comment naming the variant and its plan; the ATTNC_* constants;
 * support.cuh (16-bit types, conversions, the spec's scalar functions); the parameter block; the kernel
 * bodies (linear_kernel.cuh, decode_kernel.cuh, softmax_kernel.cuh); and the generated prologue, which
 * evaluates the spec's per-token value DAG in registers (one warp per token, lanes over channels) and
 * stores the role rows into shared memory.  The text is meant to be read: `attnc compile --emit cuda`.
 */
#ifndef ATTNC_CODEGEN_H
#define ATTNC_CODEGEN_H

#include <stdbool.h>

#include "arena.h"
#include "diag.h"
#include "ir.h"

#define CG_MAX_KERNELS 3
#define CG_MAX_TENSORS 64

/* The chunk kernel's compile units by schedule: "#define ATTNC_PHASES mask" before the source keeps that
 * mask's phases only (linear_kernel.cuh; the generated source defines the same masks as ATTNC_PHASES_*). */
#define CG_PHASES_SEQUENTIAL 0x01u    /* phase 0: the walk (also the bidirectional one) */
#define CG_PHASES_MATERIALIZED 0x46u  /* phases 1 and 2; the split delta rule 6 (then its state walk) and 2 */
#define CG_PHASES_GROUPED 0x28u       /* phases 3 and 5 */

/* LINEAR and DECODE are alternatives for the linear part (the launcher takes DECODE when every sequence
 * is one token long); SOFTMAX runs after either and adds its part. */
/* The generated source numbers a kind kind + 1 (ATTNC_ONLY, ATTNC_WANT: a compile unit of one kernel). */
typedef enum cg_kernel_kind { CG_KERNEL_LINEAR, CG_KERNEL_DECODE, CG_KERNEL_SOFTMAX } cg_kernel_kind;

/* The kernels of the split delta rule's materialized unit (ir_plan_split_delta), one per phase, all in the
 * chunk kernel's materialized unit: phase 6, every chunk's WY factors (attnc_linear_wy); the state walk
 * (attnc_linear_states, the launcher's phase 7); phase 2, every chunk's outputs (attnc_linear_out); and the
 * state walk that also saves the backward's images (attnc_linear_states_save, phase 7 of a training launch;
 * entry NULL where the walk saves none).  Entry NULL where there is no split; grid_x: the state walks' CTAs
 * per (head, sequence), the others' set per launch. */
typedef enum cg_split_pass { CG_SPLIT_WY, CG_SPLIT_STATES, CG_SPLIT_OUT, CG_SPLIT_STATES_SAVE, CG_SPLIT_PASSES } cg_split_pass;
typedef struct cg_entry {
    const char *entry;
    unsigned threads, smem_bytes, grid_x;
} cg_entry;

typedef struct cg_kernel {
    cg_kernel_kind kind;
    const char *entry;    /* extern "C" name */
    unsigned threads;     /* per CTA */
    unsigned smem_bytes;  /* dynamic shared memory per CTA */
    unsigned grid_x;      /* CTAs along x (V slices or query tiles); y = output heads, z = sequences */
    bool per_query_tile;  /* grid_x is computed per launch from the longest sequence (softmax) */
    unsigned tile_rows;   /* query rows per CTA (softmax) */
    cg_entry split[CG_SPLIT_PASSES]; /* the linear kernel's split delta rule (cg_split_pass) */
    cg_entry group;       /* the linear kernel's grouped phase 3 (attnc_linear_group), in the grouped unit */
    cg_entry ws;          /* the warp-specialised walk (linear_ws_kernel.cuh): the sequential unit compiled with
                             ATTNC_WS 1 for sm_90a; entry NULL where the plan has none */
} cg_kernel;

typedef struct cg_output {
    const char *source;   /* one CUDA C translation unit with every kernel */
    cg_kernel kernels[CG_MAX_KERNELS];
    unsigned nkernels;
    unsigned tensor_align[CG_MAX_TENSORS]; /* bytes a tensor's address must be aligned to (0: its dtype's) */
    unsigned save_nl2;    /* the l2norm factors per token and output head the walk saves with its states
                             (passes/grad.c's grad_l2_factors; attnc_params.save_l2) */
} cg_output;

/* Generates the kernels of `m` (stage IR_PLAN_SCHEDULED).  False with a diagnostic for what the
 * generator does not handle. */
bool codegen_cuda(const ir_module *m, attnc_arena *a, attnc_diags *diags, cg_output *out);

/* The images in which the chunk kernel's walk saves its chunk states for the backward (ATTNC_SAVES; the
 * launch's attnc_forward_args.saved), those of the backward's chunk-parallel schedule: bf16 tiles, or
 * 16-bit mantissas with a power-of-two scale per row and slice of *slice columns where a parameter's
 * gradient sums every token's (passes/grad.c's bp_plo: hgrn2).  NONE: a linear part that is not causal, not
 * on bf16 tiles, whose value role is computed (cg_value_bf16_input: mamba2's x * dt), or that has a
 * stabiliser or normaliser.  The launcher saves only where the
 * backward's plan reads images of the same kind (api/backward.c's api_grad_saved_layout). */
typedef enum cg_saved_images { CG_SAVED_NONE, CG_SAVED_BF16, CG_SAVED_MANTISSA } cg_saved_images;
/* Whether the linear part's value role is a bf16 input tensor as stored: otherwise the backward's tiles of it
 * carry a remainder (the parallel schedule's ATTNC_BP_VLO), and the forward's state, updated from V rounded to
 * bf16, is not the backward's to save. */
bool cg_value_bf16_input(const ir_module *m);
cg_saved_images cg_saved_image_kind(const ir_module *m, uint32_t *slice);

#endif
