/* passes/grad.h: the backward plan of a module (passes/grad.c). */
#ifndef ATTNC_GRAD_H
#define ATTNC_GRAD_H

#include <stdbool.h>
#include <stdint.h>

#include "diag.h"
#include "ir.h"

/* The most l2norm factors a token's saved states hold (grad_l2_factors). */
#define GRAD_MAX_L2 4u

typedef struct grad_plan {
    bool ok;              /* the backward can be generated */
    const char *missing;  /* otherwise: the feature it is not generated for yet ("the delta rule", ...) */
    attnc_span where;     /* and where the spec asks for it */
    uint32_t chunk;       /* tokens per chunk of the backward walks */
    uint32_t K, V;        /* state rows and columns (V: with the denominator's column of ones) */
    uint32_t vo;          /* output columns: V, or V - 1 with the running denominator or mLSTM's n */
    uint32_t norm;        /* ir_norm: none, denominator, max-floor (mLSTM), RMS or LayerNorm */
    double eps;           /* the normaliser's eps */
    uint32_t gk;          /* log-gate channels per token: K for per-channel gates, else 1 */
    uint32_t transition;  /* ir_transition */
    bool delta;           /* the delta rule: the chunk's WY form (T = (I + A)^-1) and its adjoint, beta's gradient */
    bool mlstm;           /* mLSTM: input gate, stabiliser m (per-row maxima) and the max-floor normaliser */
    unsigned smem_bytes;  /* shared memory of the chunk kernel (attnc_bwd_layout) */
    bool *live;           /* per value: reached by a role (linear q, k, v, gate; softmax q, k, v) */
    bool *needs;          /* per value: live and reads a tensor (so it gets an adjoint) */
    /* the bidirectional linear part and the softmax part (passes/grad_softmax.c) */
    bool linear;          /* a linear part: attnc_bwd_linear */
    bool bidir;           /* ... with mask none: codegen/linear_bidir_bwd_kernel.cuh instead of the walks */
    bool softmax;         /* a softmax part: attnc_bwd_sm_rows and attnc_bwd_sm_kv */
    uint32_t sm_d, sm_v;  /* its query/key and value head dims */
    uint32_t sm_tile;     /* query and key tile rows of its kernels */
    unsigned sm_smem_bytes; /* shared memory of its kernels (attnc_sb_layout) */
    /* the chunk-parallel schedule of the causal additive part (ATTNC_BWD_SCHEDULE=parallel;
     * codegen/linear_bwd_par_kernel.cuh), set by grad_parallel_plan where it applies */
    bool parallel;        /* attnc_bwdp_states, _rows (normalisers), _dstates, _chunk replace attnc_bwd_linear */
    bool bp_split;        /* fp32 tiles, every product three bf16 mma (fp32 inputs), else bf16 tiles */
    bool bp_vsplit;       /* the value role is computed: its bf16 tiles carry a remainder tile (two mma) */
    uint32_t bp_chunk;    /* tokens per chunk (and per state image) */
    uint32_t bp_kp, bp_vp; /* K and V rounded up to 16 (the images' and tiles' shape) */
    uint32_t bp_vs;       /* state columns per CTA of the state walks, and per scale of an image row */
    bool bp_run2;         /* the scanned walks' products have kernels of their own at two CTAs an SM
                           * (attnc_bwdp_states_run, _dstates_run): two of their CTAs fit in shared memory */
    uint32_t bp_scan_rows; /* the scan's state rows per CTA (ATTNC_BP_SCAN_ROWS): 8 warps of 32 lanes, a row
                            * VP / 8 lanes padded to a power of two */
    uint32_t bp_vw;       /* the widest walks' columns per CTA: bp_vs, or (the delta rule) all of V, whose
                           * walks come in both widths (the narrow ones where the wide would idle the GPU) */
    bool bp_slo;          /* 16-bit tiles: the chunk kernels read the images as hi + lo tiles (two mma per
                           * product), where the lo tile fits in shared memory without a smaller chunk and the
                           * precision is needed (bp_plo) */
    bool bp_plo;          /* 16-bit tiles: P and A carry a remainder tile (two mma per product with them), and
                           * the delta rule's T, dU_hat, dW, dT, X and F: where a parameter's gradient sums
                           * every token's (mamba2's, Gated DeltaNet's A_log and dt_bias) or a normaliser
                           * reads them; not where every gradient is per token (lightning, gla, DeltaNet) */
    bool bp_dg;           /* the chunk kernel forms the scalar gate's gradient (ws_dg): a tensor reaches the
                           * decay (mamba2's A_log, dt), not a constant one (lightning's, retnet's) */
    uint32_t bp_image_bytes; /* one state image (S_in or dS_out of one chunk and head): bf16 tiles KP x VP int16
                              * mantissas and a scale per (row, walk slice) with bp_plo, else KP x VP bf16;
                              * fp32 tiles KP x VP floats (grad.c's image_bytes) */
    unsigned bp_walk_smem, bp_chunk_smem; /* attnc_bp_walk_layout, attnc_bp_chunk_layout */
    uint32_t bp_chunk_warps; /* attnc_bwdp_chunk's CTA: 8 warps, or 16 (the wide kernel, ATTNC_BP_WIDE_CHUNK) */
    bool bp_chunk_two;       /* its compact layout, two CTAs of 8 warps an SM (ATTNC_BP_CHUNK2; grad.c's delta_plan) */
    uint32_t bd_adj_warps;   /* attnc_bwdp_wy_adjoint's likewise (ATTNC_BD_WIDE_ADJ), or 8 with bd_adj_two */
    bool bd_adj_two;         /* the adjoint's compact layout, two CTAs an SM (ATTNC_BD_ADJ2; grad.c's delta_plan) */
    /* the chunk's raw input rows, copied asynchronously into shared memory (cp.async) before the roles
     * are formed from them: per tensor the offset of its rows (~0u: not read by a role, or not per
     * token), and the bytes of one chunk of them; in the state walks the output gradient's rows beside
     * them, bp_do_es bytes per element (the output's dtype, fp32 where a normaliser's d(x) replaces dout) */
    unsigned bp_stage_off[64];
    unsigned bp_stage_bytes;
    /* the l2norm factors 1 / |x| (grad_l2_factors) the forward saves with its states for the parallel
     * schedule, fp32 [token][HOUT][bp_nl2] after the saved U_hat rows: with them (p.l2f) a backward l2norm
     * multiplies by its token's saved factor instead of summing the squares over the warp; their chunk of rows
     * is staged at bp_l2_off (~0u: none) */
    uint32_t bp_nl2;
    ir_ref bp_l2_values[GRAD_MAX_L2];
    unsigned bp_l2_roles[GRAD_MAX_L2];
    unsigned bp_l2_off;
    uint32_t bp_do_es;
    /* query, key, value: a role that is a bf16 input as stored (rows of a multiple of 8 channels, the
     * role's width; bf16 tiles): the offset of its staged rows, which the kernels copy into their tiles
     * as they are, with no value DAG; ~0u otherwise */
    unsigned bp_role_stage[3];
    /* query (0), key (1) and value (2; no denominator's ones column): the role is an input tensor as
     * stored (fuse's IR_FEED_DIRECT), or the query that tensor times a constant (IR_FEED_SCALED), that
     * nothing else reads, per token with one head per output head and the role's width, so the role
     * gradient times bp_direct_scale is that tensor's: the chunk kernel writes it into the caller's buffer
     * (p.direct) in its dtype, the adjoint neither seeds from the role's workspace nor writes the tensor,
     * and the host allocates no ws_dq (ws_dk, ws_dv) */
    bool bp_direct[3];
    uint32_t bp_direct_tensor[3];
    double bp_direct_scale[3];   /* where bp_direct: 1, or the query's folded constant */
    /* where bp_direct: the role is l2norm of the tensor (times bp_direct_scale), so the kernel that ends
     * the role's gradient applies the l2norm's adjoint on its fragments (the delta rule's query in the chunk
     * kernel, its key in the WY adjoint) */
    bool bp_direct_l2[3];
    ir_ref bp_direct_l2_value[3];   /* where bp_direct_l2: the role's L2NORM value (its statement's factor) */
    /* the delta rule with remainder tiles (bp_plo) whose query and key are l2norm of bf16 input tensors (both
     * bp_direct_l2, rows of a multiple of 8 channels): their tiles hold the input rows as they are (exact) and
     * the l2norm's fp32 factor times the role's constant, one per row, goes onto the products' accumulators or
     * into their fp32-formed operands (ATTNC_BP_QK_RAW, codegen/linear_bwd_delta_kernel.cuh's header), so that
     * no product sees the normalised rows rounded to bf16; bp_raw_stage: the staged rows of the two tensors */
    bool bp_qk_raw;
    unsigned bp_raw_stage[2];
    bool bp_inputs_idle;  /* every tensor's gradient is a role's that the chunk kernel writes (lightning's q, k, v):
                           * attnc_bwd_inputs has nothing to write, and the host does not launch it */
    bool bp_inputs_scalar;  /* every value attnc_bwd_inputs reads is a scalar and every tensor it writes has one
                             * channel (DeltaNet's b once q, k and v are direct): a thread per (token, output
                             * head) instead of a warp (ATTNC_B_ADJ_SCALAR) */
    /* the delta rule's parallel schedule (codegen/linear_bwd_delta_kernel.cuh): attnc_bwdp_wy before the
     * walks, attnc_bwdp_wy_adjoint after the chunk kernel, their shared memory; bp_walk_smem is its walks' */
    bool bp_delta;
    unsigned bd_wy_smem, bd_adj_smem;
    /* attnc_bwdp_wy's compact layout where the forward saved its states (set by codegen/cuda_bwd.c, which knows
     * the staged rows it holds; 0 before) */
    unsigned bd_wy_saved_smem;
    /* the narrow reverse walk with its warps specialised (attnc_bwdp_dstates_ws, sm_90a): its shared memory,
     * 0 where there are no narrow walks or its two tile buffers do not fit */
    unsigned bd_walk_ws_smem;
    unsigned bd_walk_ws_wbufs;   /* ... and its W tiles: 3 where they fit (W a chunk ahead), else 2 */
    /* the delta rule's reverse walk writes dU_hat into ws_dv, and the chunk kernel forms neither dv (dU_hat)
     * nor P's tiles: where no tile carries a remainder (DeltaNet, the gated delta rule) */
    bool bd_walk_duh;
    /* ... and stores it as the tiles' 16-bit elements, which the compact adjoint reads (it rounded the fp32 rows
     * so at once: the same bits), where ws_dv holds nothing else (the value's gradient goes to its tensor,
     * bp_direct[2]) and V is whole 16-byte units: ws_dv is then half its size (ATTNC_BD_DUH16) */
    bool bd_duh16;
    /* the chunk kernel's dk goes to the adjoint in ws_dk as 16-bit mantissas with a scale per 16 columns
     * (ATTNC_BD_DK16: KP * 9 / 4 bytes a token and head), where ws_dk holds nothing else (bp_direct[1]) */
    bool bd_dk16;
} grad_plan;

/* Derives the backward plan of a lowered module (stage CHUNKED or later).  Never fails for a module the
 * backward does not handle: gp->ok is false and gp->missing names the feature.  False only when the
 * arena is exhausted. */
bool grad_derive(const ir_module *m, attnc_arena *a, grad_plan *gp);

/* Shared memory of the chunk kernel for chunk C, state K x V, gk gate channels and (rows: a normaliser)
 * the pre-norm output rows, (delta) the WY tiles and (mlstm) mLSTM's per-row gates and maxima: the same sums as attnc_bwd_layout in codegen/linear_bwd_kernel.cuh. */
unsigned grad_smem_bytes(uint32_t C, uint32_t K, uint32_t V, uint32_t gk, bool rows, bool delta, bool mlstm);

/* The chunk-parallel schedule for a derived plan (gp->ok): sets gp->parallel and the bp_* fields when it
 * applies (a causal additive linear part, no softmax part, a scalar, constant or no decay, no normaliser,
 * the running denominator, RMS or LayerNorm, K <= 128, tiles within a CTA's shared memory); false
 * (gp->parallel false, the sequential schedule) otherwise.  split: fp32 tiles (the plan's operands
 * bf16x3); vsplit: the value role is not an input as stored.  Also decides bp_direct (above). */
bool grad_parallel_plan(const ir_module *m, grad_plan *gp, bool split, bool vsplit);
/* The columns of V that share one scale in the parallel schedule's mantissa images (bp_vs; the forward's
 * saved states form the same, codegen/cuda.c): the delta rule's narrow walks' slice, 32 (16 where VP is not a
 * multiple of 32); without it the walks' slice, the widest multiple of 16 up to 128 that divides VP. */
uint32_t grad_image_slice(uint32_t VP, bool delta);
/* Whether input tensor `tensor`'s gradient is a direct role's (bp_direct), which the chunk kernel writes. */
bool grad_tensor_direct(const grad_plan *gp, uint32_t tensor);
/* Shared memory of the parallel schedule's kernels: the state walks and the chunk kernel (and rows). */
/* diag: per-channel gates (b per row and channel, the DIAG chunk kernel); `stage`: the bytes of the staged
 * rows (bp_stage_bytes; the walks': and of dO's slice, C rows of VS columns, bp_do_es bytes each) */
unsigned grad_bp_walk_smem(uint32_t C, uint32_t KP, uint32_t VP, uint32_t VS, bool split, bool vsplit, bool diag,
                           unsigned stage);
/* slo: the states' lo tile next to their hi tile (bp_slo); plo: P's and A's (bp_plo); warps: the chunk
 * kernel's (bp_chunk_warps) */
unsigned grad_bp_chunk_smem(uint32_t C, uint32_t KP, uint32_t VP, bool split, bool vsplit, bool slo, bool plo, bool norm,
                            bool diag, unsigned stage, uint32_t warps, unsigned nfac);
/* The chunk kernel's compact layout (bp_chunk_two: the delta rule where its reverse walk forms dU_hat, 16-bit
 * tiles without remainders, 8 warps; dg: with a gate's gradient). */
unsigned grad_bp_chunk2_smem(uint32_t C, uint32_t KP, uint32_t VP, unsigned stage, bool dg);
/* The delta rule's (16-bit tiles): attnc_bwdp_wy, the walks (do_bytes: dO's slice), attnc_bwdp_wy_adjoint
 * (two: its compact layout of two CTAs an SM, bd_adj_two).  nfac (here and in grad_bp_chunk_smem): the rows
 * of C fp32 l2norm factors at the layout's end, the query's and the key's or the key's alone (bp_qk_raw), else 0. */
unsigned grad_bd_wy_smem(uint32_t C, uint32_t KP, uint32_t VP, unsigned stage, unsigned nfac);
/* ... its compact layout with the forward's saved states (attnc_bd_wy_saved_layout), whose staged rows span
 * [stage_lo, stage_hi) of the staging (codegen/cuda_bwd.c knows which tensors those are) */
unsigned grad_bd_wy_saved_smem(uint32_t C, uint32_t KP, bool plo, unsigned stage_lo, unsigned stage_hi, unsigned nfac);
/* ... the narrow reverse walk's with its warps specialised (attnc_bd_walk_ws_layout): two tile buffers */
unsigned grad_bd_walk_ws_smem(uint32_t C, uint32_t KP, uint32_t VS, bool plo, unsigned wbufs, unsigned stage,
                              unsigned do_bytes, unsigned nfac);
/* Per value, the linear part's roles it reaches (query, key, value, gate, beta, input gate as bits 1, 2, 4, 8,
 * 16, 16: codegen's CG_ROLE_*), from the arena; NULL without a linear part or memory. */
unsigned *grad_role_reach(const ir_module *m, attnc_arena *a);
/* The l2norm values whose factors 1 / sqrt(x . x + 1e-6) a forward with saved states stores per token and output
 * head: those the linear part's roles reach (grad_role_reach), in SSA order, their number (0 where more than
 * GRAD_MAX_L2).  values[j]: the j-th's value; roles[j]: the roles it reaches.  The forward's generator
 * and the backward's both call it on the same lowered module, so that they agree on the order. */
unsigned grad_l2_factors(const ir_module *m, attnc_arena *a, ir_ref values[GRAD_MAX_L2], unsigned roles[GRAD_MAX_L2]);
/* The bytes of one chunk of C tokens' staged l2norm factors (bp_nl2 floats a row; 16-byte multiples). */
unsigned grad_l2_rows_bytes(const grad_plan *gp, uint32_t C);
/* The bytes of one chunk of a tensor's staged rows (16-byte multiples: bp_stage_off's steps). */
unsigned grad_stage_rows_bytes(const ir_module *m, uint32_t tensor, uint32_t C);
unsigned grad_bd_walk_smem(uint32_t C, uint32_t KP, uint32_t VS, bool gated, unsigned stage, unsigned do_bytes,
                           unsigned nfac);
unsigned grad_bd_adj_smem(uint32_t C, uint32_t KP, uint32_t VP, unsigned stage, bool two, unsigned nfac);

/* passes/grad_softmax.c.  The softmax part's plan: false (gp untouched) when a softmax role is computed
 * rather than an input as stored (the query may carry a constant factor), which the forward does not run
 * either.  The bidirectional linear part's chunk and shared memory.  The shared-memory sums of
 * attnc_sb_layout (softmax_bwd_kernel.cuh) and of the bidirectional attnc_bwd_layout. */
bool grad_softmax_plan(const ir_module *m, grad_plan *gp);
bool grad_bidir_plan(const ir_module *m, grad_plan *gp);
unsigned grad_sm_smem_bytes(uint32_t tile, uint32_t D, uint32_t V, uint32_t operand_bytes);
unsigned grad_bidir_smem_bytes(uint32_t C, uint32_t K, uint32_t V);

#endif
