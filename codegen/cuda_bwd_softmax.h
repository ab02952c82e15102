/* codegen/cuda_bwd_softmax.h: the backward's softmax part and bidirectional linear part
 * (codegen/cuda_bwd_softmax.c), emitted into cuda_bwd.c's translation unit. */
#ifndef ATTNC_CUDA_BWD_SOFTMAX_H
#define ATTNC_CUDA_BWD_SOFTMAX_H

#include "arena.h"
#include "grad.h"
#include "ir.h"

/* The ATTNC_SB_* constants of the softmax part's plan and softmax_bwd_kernel.cuh (kernels
 * attnc_bwd_sm_rows, attnc_bwd_sm_kv), with a compile-time check of its shared memory. */
void cg_bwd_emit_softmax(const ir_module *m, const grad_plan *gp, attnc_buf *b);
/* linear_bidir_bwd_kernel.cuh (kernel attnc_bwd_linear of a mask-none linear part). */
void cg_bwd_emit_bidir(attnc_buf *b);

#endif
