/* api/api_internal.h: what the API's source files share (not part of the public interface). */
#ifndef ATTNC_API_INTERNAL_H
#define ATTNC_API_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attnc.h"
#include "diag.h"
#include "ir.h"
#include "rt.h"

struct attnc_spec {
    attnc_arena *arena; /* owns everything below */
    attnc_diags diags;
    ir_module *ir;      /* NULL when the input had errors */
    char *ir_text;      /* printed on first request */
};

/* The public dtype enum is the IR's, number for number (the API casts between them). */
_Static_assert((int)ATTNC_BF16 == (int)IR_DT_BF16 && (int)ATTNC_FP16 == (int)IR_DT_FP16 &&
                   (int)ATTNC_FP32 == (int)IR_DT_FP32,
               "attnc_dtype and ir_dtype must agree");

/* Seconds on a monotonic clock (for the reports' timings). */
double api_seconds(void);

/* Record a message on ctx (which may be NULL) and return s. */
attnc_status api_fail(attnc_ctx *ctx, attnc_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Read a whole file into malloc'd memory (the caller frees *text). */
attnc_status api_read_file(attnc_ctx *ctx, const char *path, char **text, size_t *len);

/* kernel.c, shared with backward.c: NVRTC of one translation unit for attnc_emit; the cubin of a source
 * from the disk cache or NVRTC; the shape/dtype/stride/alignment check of a launch's tensor. */
attnc_status api_emit_unit(attnc_ctx *ctx, attnc_spec *spec, const char *source, attnc_emit_kind kind,
                           const attnc_compile_options *opts, attnc_blob *out);
/* cubin.c: cubins from the disk cache or NVRTC.  NVRTC's options for a unit (the quick compile's too):
 * they are part of the cache key. */
#define API_NVRTC_MAX_OPTS 6
int api_nvrtc_options(const char *opts[API_NVRTC_MAX_OPTS], bool quick);
/* Does value r (transitively) read tensor ti?  (--gate-scale scales the tensors a gate reads.) */
bool api_reads_tensor(const ir_module *m, ir_ref r, uint32_t ti);
/* Whether NVRTC compiles quickly when asked (--Ofast-compile: NVRTC 12.8 or later). */
bool api_nvrtc_has_quick(void);
/* The jit mode opts ask for (NULL opts: ATTNC_JIT_TIERED); ATTNC_JIT_OPTIMIZED where NVRTC cannot compile
 * quickly; ATTNC_ERR_USAGE for an unknown mode. */
attnc_status api_jit_mode(attnc_ctx *ctx, const attnc_compile_options *opts, attnc_jit_mode *mode);
/* How api_get_cubins gets what the cache lacks: NVRTC's optimised compile, its quick one (--Ofast-compile,
 * attnc_jit_mode; cached under keys of their own), or not at all (the misses left NULL, no error). */
typedef enum api_compile { API_COMPILE_OPTIMIZED, API_COMPILE_QUICK, API_LOOKUP } api_compile;
attnc_status api_get_cubin(attnc_ctx *ctx, const char *name, const char *src, const char *arch, bool use_cache,
                           api_compile how, void **image, size_t *size, bool *hit);
/* Compile units one call takes: every kernel of a forward (CG_MAX_KERNELS, 3) and a schedule unit; the
 * backward's units (api/backward.c, up to 10). */
#define API_MAX_UNITS 16
/* The cubins of n (at most API_MAX_UNITS) sources for `arch`: each from the cache when a verified entry
 * exists (hits[i]), else as `how` says, compiled ones stored, the misses compiled at once, each on a
 * thread of its own; images[i] malloc'd (the caller frees them; all NULL on a failure).  The cache key of
 * a source is api_cubin_key's (false without NVRTC). */
attnc_status api_get_cubins(attnc_ctx *ctx, const char *name, size_t n, const char *const *srcs, const char *arch,
                            bool use_cache, api_compile how, void **images, size_t *sizes, bool *hits);
bool api_cubin_key(const char *src, const char *arch, bool quick, char key[65]);
/* The tiered JIT's background compile: the n (at most API_MAX_UNITS) sources compiled optimised on a thread
 * of its own (copied first), each stored in the cache when use_cache; NULL when it cannot start.  Done
 * (acquire) once the thread has finished; after api_tier_join, unit j's cubin, or NULL with NVRTC's message
 * in *why.  api_tier_free joins first. */
typedef struct api_tier api_tier;
api_tier *api_tier_start(const char *name, const char *arch, bool use_cache, size_t n, const char *const *srcs);
bool api_tier_done(api_tier *t);
void api_tier_join(api_tier *t);
const void *api_tier_cubin(const api_tier *t, size_t j, size_t *size, const char **why);
double api_tier_compile_ms(const api_tier *t);
void api_tier_free(api_tier *t);
/* The cubins of n units as `jit` says (api_jit_mode's).  OPTIMIZED and QUICK: api_get_cubins's (quick[i]
 * true under QUICK).  TIERED: the optimised cubins the cache holds (hits[i]); the others compiled quickly
 * now (quick[i]; not cached) once their optimised compile has started, or, for more than three, before it
 * starts (*tier: its units are the quick ones, in order; NULL where none missed, or where it could not
 * start).  On a failure nothing is left (images NULL, *tier NULL). */
attnc_status api_jit_cubins(attnc_ctx *ctx, const char *name, size_t n, const char *const *srcs, const char *arch,
                            bool use_cache, attnc_jit_mode jit, void **images, size_t *sizes, bool *hits, bool *quick,
                            api_tier **tier);
/* The compile unit of one kernel of a forward source (codegen_cuda's): "#define ATTNC_ONLY k" (k = kind
 * + 1, a cg_kernel_kind) before the source, so that only that kernel's entry is defined, and for the chunk
 * kernel "#define ATTNC_PHASES mask" when `phases` (a mask of the phases of one schedule, CG_PHASES_*) is
 * not 0, so that only those phases are compiled, and "#define ATTNC_WS 1" with `ws` (the sequential unit as the
 * warp-specialised walk, linear_ws_kernel.cuh); malloc'd. */
char *api_unit_source(const char *source, int kind, unsigned phases, bool ws);
/* `head` then `source` (malloc'd; NULL when out of memory): a compile unit's lines before the generated text. */
char *api_headed_source(const char *head, const char *source);
attnc_status api_check_tensor(attnc_ctx *ctx, const char *kernel, const char *what, const attnc_tensor *t,
                              attnc_dtype dtype, int ndim, const int64_t *want, int64_t *got, size_t align);
/* kernel.c: the launcher's arithmetic (pure, tested by tests/unit/test_launch.c).  CTAs of a kernel one SM
 * holds at once, by its shared memory (228 KB an SM, 1 KB of it the driver's per CTA), its registers (64K
 * an SM, allocated per warp in units of 256; regs <= 0: unknown, taken as 255) and its threads (2048). */
unsigned api_ctas_per_sm(unsigned threads, unsigned smem_bytes, int regs);
/* The grouped schedule's groups for a sequential grid of `ctas` CTAs, a GPU holding `slots` CTAs at once
 * and sequences of `chunks` chunks.  AUTO (forced false): 0, keep the sequential walk, unless that grid
 * fills at most half of the slots (SMs would idle for the whole walk) and the sequences are 16 chunks or
 * more; then as many groups as fit one wave of slots (a partial second wave would double the time), each
 * of at least 8 chunks (every group's composition reads the earlier groups' records).  Forced: the same
 * count, at least 2 and at most `chunks`. */
int64_t api_grouped_groups(int64_t ctas, int64_t slots, int64_t chunks, bool forced);
/* A device workspace: held by one kernel handle, or shared by a forward and a backward handle
 * (attnc_share_workspace), and freed with its last holder. */
typedef struct api_workspace {
    uint64_t ptr;
    size_t bytes;
    unsigned holders;
} api_workspace;
api_workspace *api_workspace_new(void);   /* one holder, nothing allocated; NULL when out of memory */
void api_workspace_release(api_workspace *w);
/* Grows a workspace to at least `need` bytes; it never shrinks, and its contents do not survive growing.
 * The error names the kernel and `what` the workspace serves. */
attnc_status api_workspace_grow(attnc_ctx *ctx, api_workspace *w, size_t need, const char *kernel, const char *what);
/* backward.c: where a backward handle keeps its workspace (attnc_share_workspace, kernel.c) */
api_workspace **api_grad_workspace(attnc_grad_kernel *k);
/* backward.c: the chunk states a forward saves for this backward of N sequences (attnc_saved_states_bytes):
 * the backward's chunk, one image's rows, columns and kind ([kp][vp] per slot and output head); false where
 * it reads none. */
typedef struct api_saved_layout {
    uint32_t chunk, kp, vp, heads_out;
    bool mantissa;      /* 16-bit mantissas and a scale per row and slice of vs columns (bp_plo), else bf16 */
    uint32_t vs;
    bool uhat;          /* the delta rule: every token's U_hat row after the images, bf16 [slot][heads_out][chunk][vp] */
    uint32_t nl2;       /* the l2norm factors after those, fp32 [tokens][heads_out][nl2] (passes/grad.c's grad_l2_factors) */
} api_saved_layout;
bool api_grad_saved_layout(const attnc_grad_kernel *k, int64_t N, api_saved_layout *out);
/* The backward's slots for `tokens` tokens in N sequences; the bytes of the images of `slots` slots (where the
 * U_hat rows begin), of the images and U_hat rows (where the l2norm factors begin), and of all the saved states. */
size_t api_saved_slots(const api_saved_layout *sl, int64_t tokens, int64_t N);
size_t api_saved_images_bytes(const api_saved_layout *sl, size_t slots);
size_t api_saved_l2_offset(const api_saved_layout *sl, size_t slots);
size_t api_saved_bytes(const api_saved_layout *sl, size_t slots, int64_t tokens);
/* Whether the l2norm factors of `tokens` tokens have 32-bit indices, as the forward's kernels store them
 * (codegen/cuda.c's emit_save_l2); the images of that many tokens would not fit a GPU's memory anyway. */
bool api_saved_l2_fits(const api_saved_layout *sl, int64_t tokens);

/* kernel.c, shared with backward.c: what the forward's and the backward's kernel handles share. */
typedef struct api_tensor {
    char label[96];     /* "tensor I ('NAME')", as launch errors name it */
    bool per_token;
    uint32_t heads, len;
    attnc_dtype dtype;
    unsigned align;     /* bytes the data pointer must be aligned to */
} api_tensor;

/* Opens the device (ordinal 0) and names the arch to compile for: opts->arch, else the device's. */
/* The backward's workspace for B sequences of T tokens (attnc_grad_workspace_bytes) from its plan alone: no
 * device, nothing compiled (tests/test_grad_workspace.c). */
attnc_status api_grad_workspace_plan(attnc_ctx *ctx, attnc_spec *spec, int64_t B, int64_t T, int with_dh0, size_t *bytes);
/* The backward's compile units on a host of `cpus` CPUs (attnc_grad_kernel_new's, from the plan alone): *n
 * sources (malloc'd: the caller frees them) and the kernels each defines (bit i: cg_bwd_kernel i). */
attnc_status api_grad_units(attnc_ctx *ctx, attnc_spec *spec, long cpus, char *srcs[API_MAX_UNITS],
                            uint32_t masks[API_MAX_UNITS], size_t *n);
/* Opens the driver and the device; the arch to compile for (opts->arch, else the device's) and the jit mode
 * (api_jit_mode). */
attnc_status api_open_device(attnc_ctx *ctx, const attnc_compile_options *opts, rt_device_info *dev, char arch[16],
                             attnc_jit_mode *jit);
/* The launch metadata of m's tensors (calloc'd, at least one entry; NULL when out of memory); align[i]
 * when given and not 0, else the dtype's size. */
api_tensor *api_tensors_new(const ir_module *m, const unsigned *align);
/* Loads `entry` from a cubin (from the module `sibling` was loaded from, when not NULL: the image is
 * loaded once per kernel handle) and opts in to its dynamic shared memory above 48 KiB. */
bool api_load_function(const void *image, size_t size, rt_function *sibling, const char *entry, unsigned smem_bytes,
                       rt_function **fn, rt_error *err);
/* Checks launch tensor `t` (named `what`) against `kt`: [B, T, heads, len] per token ([B, T, heads] for
 * len 1), [heads, len] or [heads] otherwise; the first per-token tensor fixes *B and *T (-1 until then). */
attnc_status api_check_input(attnc_ctx *ctx, const char *kernel, const char *what, const api_tensor *kt,
                             const attnc_tensor *t, int64_t *B, int64_t *T);
/* The number of sequences N of a launch of B x T tokens: B, or nseq with cu_seqlens (a 'document' spec,
 * B = 1); checks the limits of the grid (65535 sequences) and of the token index (2^31). */
attnc_status api_check_sequences(attnc_ctx *ctx, const char *kernel, bool document, int64_t B, int64_t T,
                                 const int32_t *cu_seqlens, int64_t nseq, int64_t *N);

#endif
