/* passes/passes.h: the lowering pipeline from a checked module to a kernel plan.
 *
 * Every pass reads the module and fills the next stage of module->plan (ir.h); passes never change the
 * value DAG or the variant, so the float64 reference and the kernels read one module.  The pipeline is
 * one table (passes.c): the verifier runs after every pass, and `attnc ir --after NAME` prints the IR
 * text (with its `plan` lines) after any of them.
 */
#ifndef ATTNC_PASSES_H
#define ATTNC_PASSES_H

#include <stdbool.h>
#include <stddef.h>

#include "diag.h"
#include "ir.h"

typedef struct pass_options {
    unsigned sm_count;   /* multiprocessors of the target (schedule choice); 0 = unknown */
} pass_options;

typedef bool (*pass_fn)(ir_module *m, const pass_options *opt, attnc_diags *diags);

typedef struct pass_info {
    const char *name;    /* as `attnc ir --after NAME` spells it */
    pass_fn run;
    const char *summary;
} pass_info;

/* The passes in pipeline order; *count set to their number. */
const pass_info *passes_table(size_t *count);
/* The index of the pass named `name`, or -1. */
int passes_find(const char *name);
/* Runs the passes in order up to and including `last` (-1: all), verifying after each.  A failed pass or
 * verification leaves its diagnostics and returns false. */
bool passes_run(ir_module *m, const pass_options *opt, int last, attnc_diags *diags);

bool pass_chunk(ir_module *m, const pass_options *opt, attnc_diags *diags);
bool pass_tile(ir_module *m, const pass_options *opt, attnc_diags *diags);
bool pass_fuse(ir_module *m, const pass_options *opt, attnc_diags *diags);
bool pass_schedule(ir_module *m, const pass_options *opt, attnc_diags *diags);

/* The linear kernel's shared memory for the module's plan (stage TILED or later), without the staging
 * area of raw inputs (codegen adds that). */
unsigned tile_linear_smem_bytes(const ir_module *m);
/* The same for a lean body of the split delta rule (lean 6: its WY pass, 2: its output pass; 0: the walk's). */
unsigned tile_linear_smem_bytes_lean(const ir_module *m, unsigned lean);
/* The staging area one chunk of per-token input `tensor` takes (16-byte aligned). */
unsigned tile_stage_bytes(const ir_module *m, uint32_t tensor);
/* x rounded up to a multiple of `to` (the padding of K here; codegen pads the softmax part's D and V with it). */
uint32_t tile_round_up(uint32_t x, uint32_t to);

#endif
