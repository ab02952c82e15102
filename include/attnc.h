/* attnc.h: the public interface of attnc, a compiler for linear-attention kernels.
 *
 * This header is the whole contract.  Conventions:
 *   - handles are opaque; every call that can fail returns an attnc_status, with results in out
 *     parameters (marked OUT) that come last;
 *   - strings the library returns are owned by the library and stay valid until the handle they came
 *     from is freed (or, for attnc_errmsg, until the next call on that context);
 *   - the library never prints and never exits; diagnostics about a spec are data (attnc_spec_diag*);
 *   - a context may be used by one thread at a time; different contexts are independent.
 *
 * Typical use:
 *     attnc_ctx *ctx;  attnc_ctx_new(&ctx);
 *     attnc_spec *spec;
 *     if (attnc_spec_from_file(ctx, "specs/gla.attn", &spec) != ATTNC_OK)
 *         fputs(attnc_spec_diag_text(spec), stderr);       // spec may be NULL only on ATTNC_ERR_NOMEM/IO
 *     else
 *         puts(attnc_spec_ir(spec));
 *     attnc_spec_free(spec);  attnc_ctx_free(ctx);
 */
#ifndef ATTNC_H
#define ATTNC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ATTNC_VERSION_MAJOR 0
#define ATTNC_VERSION_MINOR 2
#define ATTNC_VERSION_PATCH 0
#define ATTNC_VERSION_NUMBER (ATTNC_VERSION_MAJOR * 10000 + ATTNC_VERSION_MINOR * 100 + ATTNC_VERSION_PATCH)
#define ATTNC_VERSION_STRING "0.2.0"

/* The version of the library linked at run time (ATTNC_VERSION_NUMBER of its build).  A program
 * checks attnc_version() / 100 == ATTNC_VERSION_NUMBER / 100 (same major and minor) before use. */
int attnc_version(void);
const char *attnc_version_string(void);

typedef enum attnc_status {
    ATTNC_OK = 0,
    ATTNC_ERR_INPUT = 1,   /* the spec or IR has errors: read them with attnc_spec_diag* */
    ATTNC_ERR_USAGE = 2,   /* a bad argument to a call (NULL handle, option out of range) */
    ATTNC_ERR_IO = 3,      /* a file could not be read */
    ATTNC_ERR_NOMEM = 4,   /* out of memory */
    ATTNC_ERR_NUMERIC = 5, /* a reference check found a disagreement or a non-finite number */
    ATTNC_ERR_VERSION = 6  /* header and library do not match */
} attnc_status;

/* A static name for a status ("ATTNC_OK", ...). */
const char *attnc_status_str(attnc_status s);

/* ---- contexts ------------------------------------------------------------------------------ */

typedef struct attnc_ctx attnc_ctx;

/* `header_version` is ATTNC_VERSION_NUMBER as the caller was compiled; a library of another major or
 * minor version refuses with ATTNC_ERR_VERSION.  attnc_ctx_new() passes it for you. */
attnc_status attnc_ctx_new_v(int header_version, attnc_ctx **ctx /* OUT */);
#define attnc_ctx_new(ctx) attnc_ctx_new_v(ATTNC_VERSION_NUMBER, (ctx))
void attnc_ctx_free(attnc_ctx *ctx);
/* A message about the last failed call on `ctx` ("" if none). */
const char *attnc_errmsg(const attnc_ctx *ctx);

/* ---- specs: parse, check, inspect ---------------------------------------------------------- */

/* One compilation: the source, its diagnostics and its IR, in one arena freed by attnc_spec_free. */
typedef struct attnc_spec attnc_spec;

/* Parse and check a spec.  `name` labels diagnostics (a file name).  On ATTNC_ERR_INPUT *spec is still
 * set, so that its diagnostics can be read; on other errors it is NULL. */
attnc_status attnc_spec_from_string(attnc_ctx *ctx, const char *name, const char *text, size_t len,
                                    attnc_spec **spec /* OUT */);
/* A file that starts with "attnc-ir" is read as IR text (attnc_spec_from_ir), any other as a spec. */
attnc_status attnc_spec_from_file(attnc_ctx *ctx, const char *path, attnc_spec **spec /* OUT */);
/* Read the IR text form (what attnc_spec_ir prints) instead of a spec; same contract. */
attnc_status attnc_spec_from_ir(attnc_ctx *ctx, const char *name, const char *text, size_t len,
                                attnc_spec **spec /* OUT */);
void attnc_spec_free(attnc_spec *spec);

typedef enum attnc_severity_level { ATTNC_ERROR = 0, ATTNC_WARNING = 1, ATTNC_NOTE = 2 } attnc_severity_level;

typedef struct attnc_diagnostic {
    attnc_severity_level severity;
    const char *file;    /* "" when the diagnostic has no location */
    uint32_t line, col;  /* 1-based; 0 when there is no location */
    const char *message;
} attnc_diagnostic;

size_t attnc_spec_diag_count(const attnc_spec *spec);
size_t attnc_spec_error_count(const attnc_spec *spec);
/* The i-th diagnostic (notes follow the error or warning they belong to). */
attnc_status attnc_spec_diag(const attnc_spec *spec, size_t i, attnc_diagnostic *out /* OUT */);
/* Every diagnostic rendered: "file:line:col: error: message", the source line and a caret line. */
const char *attnc_spec_diag_text(attnc_spec *spec);
/* The same, one line each: "severity|file|line|col|message". */
const char *attnc_spec_diag_machine(attnc_spec *spec);

/* The IR text form of a checked spec (NULL if the spec had errors). */
const char *attnc_spec_ir(attnc_spec *spec);
/* The variant's name, and the shape it implies. */
const char *attnc_spec_name(const attnc_spec *spec);

typedef struct attnc_shape {
    uint32_t key_dim, value_dim;     /* K and V of the state (or of the softmax part) */
    uint32_t heads_q, heads_k, heads_v;
    uint32_t heads_state, heads_out;
    uint32_t chunk;                  /* 0 = auto */
    int has_linear, has_softmax;
} attnc_shape;

attnc_status attnc_spec_shape(const attnc_spec *spec, attnc_shape *out /* OUT */);

/* The spec's tensors (the kernel's inputs, in declaration order). */
typedef struct attnc_tensor_info {
    const char *name;
    int per_token;       /* 1: an input [B, T, heads, len]; 0: a parameter [heads, len] */
    uint32_t heads, len; /* len 1: one number per head (the last dimension is dropped) */
    int dtype;           /* an attnc_dtype */
    int has_range;       /* the spec declared `in [lo, hi]` */
    double lo, hi;
} attnc_tensor_info;

size_t attnc_spec_tensor_count(const attnc_spec *spec);
attnc_status attnc_spec_tensor(const attnc_spec *spec, size_t i, attnc_tensor_info *out /* OUT */);

/* ---- the float64 reference ----------------------------------------------------------------- */

typedef struct attnc_ref_options {
    uint32_t batch;             /* sequences of `tokens` tokens each (ignored when seqlens is set) */
    uint32_t tokens;
    const uint32_t *seqlens;    /* optional: packed sequences of these lengths (varlen) */
    uint32_t nseq;
    uint64_t seed;              /* inputs are drawn from the spec's roles with this seed */
    int initial_state;          /* draw a random initial state (specs with 'state initial') */
    const uint32_t *chunks;     /* chunk sizes to check the chunkwise evaluation at; NULL = {1, 16, 64, 13} */
    uint32_t nchunks;
    const char *dump_json;      /* optional: write inputs, role values and outputs as JSON to this file */
} attnc_ref_options;

#define ATTNC_REF_MAX_CHUNKS 16

typedef struct attnc_ref_report {
    uint32_t total_tokens, nseq;
    uint32_t key_dim, value_dim, heads_out, heads_state;
    double out_rms;             /* root mean square of the recurrent output */
    double state_rms;           /* of the final state (0 without a linear part) */
    uint64_t out_hash;          /* FNV-1a of the output's float64 bits (same seed, same hash) */
    uint32_t nchunks;
    uint32_t chunk[ATTNC_REF_MAX_CHUNKS];
    double out_rel_err[ATTNC_REF_MAX_CHUNKS];   /* chunkwise vs recurrent: ||diff|| / ||recurrent|| */
    double state_rel_err[ATTNC_REF_MAX_CHUNKS];
    double max_rel_err;         /* the largest of the above */
    double seconds_recurrent, seconds_chunked;
} attnc_ref_report;

/* Draw inputs, run the recurrent and the chunkwise float64 evaluations and compare them.  Returns
 * ATTNC_ERR_NUMERIC if they disagree beyond 1e-10 or a result is not finite (the report is filled
 * either way). */
attnc_status attnc_ref_check(attnc_ctx *ctx, attnc_spec *spec, const attnc_ref_options *opt,
                             attnc_ref_report *out /* OUT */);

/* The float64 reference backward, checked by central finite differences of the recurrent forward. */

#define ATTNC_REF_GRAD_MAX_CHECKS 64

typedef struct attnc_ref_grad_item {
    char what[48];     /* "all inputs", an input ("q", "h0"), or one coordinate of it ("q[17]") */
    double analytic;   /* <gradient, d> */
    double numeric;    /* (L(x + eps d) - L(x - eps d)) / (2 eps) */
    double rel_err;    /* |analytic - numeric| / max(|analytic|, |numeric|) */
} attnc_ref_grad_item;

typedef struct attnc_ref_grad_report {
    uint32_t total_tokens, nseq;
    uint32_t ninputs;           /* tensors and initial states differentiated */
    double loss;                /* L = <dout, out> + <dhT, hT> (+ zT, mT) at the drawn inputs */
    double eps, eps_coord;      /* the steps along directions and single coordinates, relative to each
                                   input's root mean square */
    uint32_t nchecks;           /* comparisons made; the first ATTNC_REF_GRAD_MAX_CHECKS are listed */
    attnc_ref_grad_item check[ATTNC_REF_GRAD_MAX_CHECKS];
    uint32_t nforward;          /* forward evaluations the check ran */
    double max_rel_err;         /* over every comparison */
    double tolerance;           /* 1e-6 */
    double seconds_backward, seconds_check;
} attnc_ref_grad_report;

/* Draw inputs as attnc_ref_check does (batch, tokens, seqlens, seed and initial_state of `opt`; chunks and
 * dump_json are not used), random upstream gradients dout (and dhT, dzT, dmT where the spec returns a
 * final state), run the float64 backward and compare it with central differences of the recurrent
 * forward: along a random direction over every input, along each input alone, and at single coordinates.
 * ATTNC_ERR_NUMERIC if the largest relative error exceeds 1e-6 or a number is not finite (the report is
 * filled either way). */
attnc_status attnc_ref_grad_check(attnc_ctx *ctx, attnc_spec *spec, const attnc_ref_options *opt,
                                  attnc_ref_grad_report *out /* OUT */);

/* ---- lowering and code generation (no GPU needed) ------------------------------------------ */

typedef enum attnc_dtype { ATTNC_BF16 = 0, ATTNC_FP16 = 1, ATTNC_FP32 = 2 } attnc_dtype;

/* Overrides the head count of every head axis (for experiments and checks at other sizes: `attnc run
 * --heads`) and/or the dtype of every per-token input and of the output (`--dtype`: an fp32 run is fp32
 * end to end).  `heads` 0 and `input_dtype` -1 leave them.  The module is checked again; ATTNC_ERR_INPUT
 * with diagnostics if it no longer passes. */
attnc_status attnc_spec_override(attnc_spec *spec, uint32_t heads, int input_dtype);

/* Runs the lowering passes up to and including `after_pass` (NULL: all) and returns the IR text with its
 * `plan` lines, valid until the spec is freed.  ATTNC_ERR_USAGE for an unknown pass name (the message
 * lists them), ATTNC_ERR_INPUT when a pass rejects the module (read the diagnostics). */
attnc_status attnc_spec_lower(attnc_spec *spec, const char *after_pass, const char **ir_text /* OUT */);
/* The pass names in pipeline order, NULL-terminated. */
const char *const *attnc_pass_names(void);

typedef enum attnc_emit_kind { ATTNC_EMIT_CUDA = 0, ATTNC_EMIT_PTX = 1, ATTNC_EMIT_CUBIN = 2 } attnc_emit_kind;

/* How attnc_kernel_new and attnc_grad_kernel_new get the kernels the disk cache lacks.  NVRTC's full
 * optimisation of a chunk kernel takes 1-2 s (NVVM's optimiser and ptxas on its unrolled loops), of the
 * backward's unit 2-4 s; NVRTC's --Ofast-compile=mid takes a quarter to a half of that, for kernels that
 * run several times slower (bench/RESULTS.md, twenty-third session).  Needs NVRTC 12.8 or later; with an
 * older one every mode compiles the optimised kernels. */
typedef enum attnc_jit_mode {
    ATTNC_JIT_TIERED = 0,    /* the quick kernels now; the optimised ones compile on a thread and go to the
                              * disk cache, and the first launch after they are ready takes them (which
                              * runs: attnc_kernel_info.quick, attnc_grad_kernel_quick).  A process that
                              * exits while such a compile runs waits for it (atexit), so the cache gets
                              * it.  The quick kernels may round differently in the last bits; where every
                              * launch must give the same bits from the first, ATTNC_JIT_OPTIMIZED */
    ATTNC_JIT_OPTIMIZED = 1, /* the optimised kernels, compiled before the call returns */
    ATTNC_JIT_QUICK = 2      /* the quick kernels only (cached under their own key): to check and time them */
} attnc_jit_mode;

typedef struct attnc_compile_options {
    const char *arch;     /* "sm_80", "sm_90a", ...; NULL: the GPU present (needs a driver) */
    int no_cache;         /* 1: neither read nor write the disk cache */
    attnc_jit_mode jit;   /* attnc_kernel_new, attnc_grad_kernel_new */
    int warp_specialized; /* attnc_emit: 1 = the unit of the warp-specialised sequential walk alone, what the JIT
                           * runs on sm_90a where a plan has one (ATTNC_ERR_USAGE where it has none, or for an
                           * arch other than sm_90a; the environment's ATTNC_WS=0 turns the JIT's use off) */
} attnc_compile_options;

typedef struct attnc_blob {
    const void *data;     /* CUDA C or PTX (NUL-terminated) or cubin bytes; valid until the spec is freed */
    size_t size;
    const char *log;      /* NVRTC's log, with ptxas's register and spill report ("" for CUDA C) */
    int regs, spill_bytes;  /* from ptxas (-1 when not compiled); spill_bytes = spill stores + loads */
    int stack_bytes;      /* the largest stack frame of its kernels (local memory without spills: an array
                           * indexed at run time), from ptxas (-1 when not compiled) */
} attnc_blob;

/* The kernels of a spec as CUDA C, PTX or a cubin for opts->arch.  Compiling needs NVRTC (libnvrtc is
 * opened at run time); ATTNC_ERR_IO with a message when it is missing or fails. */
attnc_status attnc_emit(attnc_ctx *ctx, attnc_spec *spec, attnc_emit_kind kind, const attnc_compile_options *opts,
                        attnc_blob *out /* OUT */);

/* ---- the JIT: kernels on the GPU present ---------------------------------------------------- */

typedef struct attnc_kernel attnc_kernel;

/* 1 when a CUDA driver and a GPU are present (opens the driver; never fails loudly). */
int attnc_gpu_available(void);

typedef struct attnc_kernel_info {
    const char *entry;
    int regs, local_bytes;        /* per thread, from the loaded function (-1 while it is not loaded) */
    unsigned threads, smem_bytes; /* per CTA */
    int cache_hit;                /* the cubin came from the disk cache */
    double compile_ms;            /* NVRTC (0 on a cache hit) */
    double load_ms;               /* total time of attnc_kernel_new (of the first launch that loaded it) */
    char arch[16];
    int quick;                    /* 1: the quickly compiled kernel runs (ATTNC_JIT_QUICK, or TIERED until
                                   * the optimised one is in) */
} attnc_kernel_info;

/* Compiles (or finds in the cache) the kernels of the spec for the current GPU and loads them, each
 * kernel a compile unit and a cache entry of its own.  The decode kernel (single-token steps of a causal
 * linear part) is compiled or read from the cache at its first launch instead: until then its info has
 * regs and local_bytes -1, and that launch can fail as this call can; so is the materialized schedule's
 * unit, at the first launch that takes it.  What the cache lacks is compiled as opts->jit says (NULL opts:
 * ATTNC_JIT_TIERED), here and at those launches.  The kernel keeps what it needs;
 * the spec may be freed afterwards.  Errors: ATTNC_ERR_IO (no driver, no NVRTC, compile or load failure,
 * with the log's first lines in attnc_errmsg). */
attnc_status attnc_kernel_new(attnc_ctx *ctx, attnc_spec *spec, const attnc_compile_options *opts,
                              attnc_kernel **kernel /* OUT */);
/* ATTNC_JIT_TIERED: waits for the optimised kernels that attnc_kernel_new left compiling and loads them
 * (ATTNC_OK at once when none are pending).  An error (their compile or load failed) is reported once;
 * the quick kernels stay and keep working. */
attnc_status attnc_kernel_wait_optimized(attnc_ctx *ctx, attnc_kernel *kernel);
/* Waits for a pending optimised compile (and stores it in the cache) before freeing. */
void attnc_kernel_free(attnc_kernel *kernel);
attnc_status attnc_kernel_get_info(const attnc_kernel *kernel, size_t i, attnc_kernel_info *out /* OUT */);
size_t attnc_kernel_count(const attnc_kernel *kernel);
/* Bytes of device workspace the kernel handle holds now (the materialized schedule's chunk states and, for
 * the split delta rule, its WY factors: about 72 KB per chunk of 32 tokens and head at K = V = 128; grown
 * on demand by attnc_forward and kept until attnc_kernel_free; 0 while no launch has needed one). */
size_t attnc_kernel_workspace_bytes(const attnc_kernel *kernel);

/* A tensor in device memory: shape and strides in elements, outermost first. */
typedef struct attnc_tensor {
    void *data;
    attnc_dtype dtype;
    int ndim;
    int64_t shape[4];
    int64_t stride[4];
} attnc_tensor;

/* Forward arguments.  Layouts (FLA's):
 *   per-token input  [B, T, H_t, len] (a scalar per head: [B, T, H_t]); parameters [H_t, len] or [H_t];
 *   out              [B, T, H_out, V] in the spec's output dtype;
 *   h0 / hT          fp32 [N, H_state, K, V]; z0 / zT fp32 [N, H_state, K] (normalisers); m0 / mT fp32
 *                    [N, H_state] (mLSTM's stabiliser); any may have data == NULL (absent);
 *   cu_seqlens       varlen: int32 [N + 1] on the device, B must be 1; the launch never reads it on the
 *                    host (no synchronisation), so the caller guarantees 0 = c_0 <= ... <= c_N = T.
 * All tensors contiguous.  Every mismatch (count, rank, shape, dtype, stride, alignment, NULL data) is
 * ATTNC_ERR_USAGE with a message naming the tensor, the dimension, what was expected and what came. */
/* How the linear part walks the chunks (passes/schedule.c): sequential keeps the state on chip, one CTA
 * per (sequence, head, V slice); materialized stores every chunk's state in a workspace owned by the
 * kernel handle, then computes all chunks' outputs in parallel (for the delta rule with a scalar or no
 * decay it is split three ways: every chunk's WY factors at once, a lean state walk in slices of V, every
 * chunk's outputs); grouped (additive updates: no delta rule,
 * no mLSTM stabiliser) walks groups of chunks in parallel twice, first for each group's own state, then
 * for the outputs from the composed states (workspace: one fp32 state per sequence, group and head).
 * Materialized and grouped take no cu_seqlens.  AUTO picks grouped when the sequential grid fills at
 * most half of the CTAs the GPU holds at once and the sequences are at least 16 chunks long (as many
 * groups as fill one wave), materialized only for the split delta rule when the sequential grid has fewer
 * than 100 CTAs on sequences of at least 8 chunks (the plan's min_ctas; 0 elsewhere: passes/schedule.c
 * says why), and the single-token decode kernel when every
 * sequence is one token (T = 1, no cu_seqlens); naming a schedule keeps the chunk kernel.  The
 * workspace makes launches of one kernel handle share memory: keep them on one stream, or ordered. */
typedef enum attnc_schedule {
    ATTNC_SCHEDULE_AUTO = 0,
    ATTNC_SCHEDULE_SEQUENTIAL = 1,
    ATTNC_SCHEDULE_MATERIALIZED = 2,
    ATTNC_SCHEDULE_GROUPED = 3
} attnc_schedule;

typedef struct attnc_forward_args {
    const attnc_tensor *inputs;  /* the spec's tensors, in declaration order */
    size_t ninputs;
    attnc_tensor out;
    attnc_tensor h0, z0, m0, hT, zT, mT;
    const int32_t *cu_seqlens;   /* device pointer or NULL */
    int64_t nseq;                /* with cu_seqlens: N */
    void *stream;                /* a CUstream, or NULL for the default stream */
    attnc_schedule schedule;     /* the linear part's schedule; ATTNC_SCHEDULE_AUTO (0) chooses by shape */
    /* Training: a device buffer of attnc_saved_states_bytes(kernel, saved_for, ...) bytes (16-byte aligned)
     * into which the forward writes the chunk states that saved_for's backward would otherwise compute
     * again; pass it to that backward as attnc_backward_args.saved.  NULL: nothing saved. */
    void *saved;
    const struct attnc_grad_kernel *saved_for;
} attnc_forward_args;

attnc_status attnc_forward(attnc_ctx *ctx, attnc_kernel *kernel, const attnc_forward_args *args);

/* ---- checks on the GPU against the float64 reference (`attnc run`) -------------------------- */

typedef struct attnc_run_options {
    uint32_t batch, tokens;       /* B sequences of T tokens, or ... */
    const uint32_t *seqlens;      /* ... varlen: these lengths packed (the spec must say `document`) */
    uint32_t nseq;
    uint64_t seed;
    int initial_state;            /* draw h0 (specs with `state initial`) */
    int reference_chunked;        /* 1: compare with the chunkwise float64 evaluation (faster at large T;
                                     with --grad, the chunkwise backward: one state per chunk in memory) */
    double gate_scale;            /* > 0: multiply every gate/decay input by this before the run (strong gates) */
    attnc_schedule schedule;      /* the linear part's schedule (AUTO: by shape) */
    int quick_jit;                /* 1: check the quickly compiled kernels (ATTNC_JIT_QUICK), forward and
                                   * backward; 0: the optimised ones */
    int saved_states;             /* with --grad: the forward saves its chunk states for the backward
                                   * (attnc_saved_states_bytes; ATTNC_ERR_USAGE where the pair saves none) */
} attnc_run_options;

typedef struct attnc_run_report {
    uint32_t total_tokens, nseq;
    double out_rel_err, state_rel_err;  /* ||gpu - ref|| / ||ref|| */
    double out_max_abs;
    int nonfinite;                      /* NaN or Inf in an output (poisoned outputs left unwritten count) */
    double tolerance;                   /* 1e-2 for 16-bit inputs, 1e-4 for fp32 */
    double kernel_ms;                   /* one launch, measured with events */
    double reference_s;
} attnc_run_report;

/* Draws fresh inputs, runs the kernels on the GPU (outputs poisoned with NaN first) and compares with the
 * float64 reference.  ATTNC_ERR_NUMERIC when the error exceeds the tolerance or anything is not finite. */
attnc_status attnc_run_check(attnc_ctx *ctx, attnc_spec *spec, const attnc_run_options *opt,
                             attnc_run_report *out /* OUT */);

/* ---- the backward (issue 4): gradients of every input on the GPU ---------------------------- */

/* The backward kernels of a spec, compiled for the GPU present (or found in the disk cache), separate
 * from the forward's (a spec whose backward is not generated still runs forward).  Generated for causal
 * linear parts with an additive update (no, constant, scalar or per-channel decay) and no normaliser,
 * the RMS or LayerNorm output norm, or the running denominator (feature maps taylor2 and l2norm
 * included), with the delta rule (any of those decays, no normaliser) and mLSTM, bidirectional (mask none)
 * linear parts with an additive update, and softmax parts (sliding-window or full, causal or bidirectional,
 * GQA, varlen; alone or with a linear part); other specs (the delta rule with a normaliser, softmax roles
 * computed from the inputs) give ATTNC_ERR_INPUT with "backward not generated yet for FEATURE" in the
 * diagnostics and attnc_errmsg.  (The language admits mask none only for additive updates.) */
typedef struct attnc_grad_kernel attnc_grad_kernel;

/* What the cache lacks is compiled as opts->jit says (NULL opts: ATTNC_JIT_TIERED), as for the forward:
 * under ATTNC_JIT_TIERED the first attnc_backward after the optimised kernels are ready takes them. */
attnc_status attnc_grad_kernel_new(attnc_ctx *ctx, attnc_spec *spec, const attnc_compile_options *opts,
                                   attnc_grad_kernel **kernel /* OUT */);
/* As attnc_kernel_wait_optimized; 1 while the quickly compiled kernels run. */
attnc_status attnc_grad_kernel_wait_optimized(attnc_ctx *ctx, attnc_grad_kernel *kernel);
int attnc_grad_kernel_quick(const attnc_grad_kernel *kernel);
/* Waits for a pending optimised compile (and stores it in the cache) before freeing. */
void attnc_grad_kernel_free(attnc_grad_kernel *kernel);

/* The backward's CUDA C, PTX or cubin (as attnc_emit does for the forward). */
attnc_status attnc_emit_grad(attnc_ctx *ctx, attnc_spec *spec, attnc_emit_kind kind, const attnc_compile_options *opts,
                             attnc_blob *out /* OUT */);

/* Backward arguments: the forward's inputs (layouts of attnc_forward_args), the output's gradient dout
 * [B, T, H_out, V] (the output's dtype), optional h0 and dhT (fp32 [N, H_state, K, V]; dhT absent = 0),
 * and where the gradients go: dinputs[i] has input i's shape and dtype (data NULL: not wanted), dh0 fp32
 * [N, H_state, K, V] (data NULL: not wanted).  Specs with the running denominator also take z0 and dzT
 * and return dz0 (fp32 [N, H_state, K], each optional likewise; ATTNC_ERR_USAGE for any other spec);
 * mLSTM takes its n as z0 / dzT / dz0 and its stabiliser as m0 and dmT, returning dm0 (fp32 [N, H_state]).  Every gradient is written whole (nothing accumulates into
 * what the buffers held).  Heads that share a tensor (GQA, GVA, parameters) get the sum over the heads
 * and tokens that read it.
 * Deterministic: no atomics; every sum runs in a fixed order, so the same inputs give the same bits on
 * every run (on one GPU model and attnc version).  The workspace (fp32 role gradients and per-head
 * partials, about 4 (3K + V) + 4 sum(len) bytes per token and output head, and with a decay, the delta
 * rule or mLSTM every chunk's state, 4 K V / C bytes per token and output head for chunks of C = 32
 * tokens, 16 for the delta rule at K = V = 128) is owned by the kernel handle and
 * grown on demand: launches of one handle must be ordered (one stream). */
typedef struct attnc_backward_args {
    const attnc_tensor *inputs;  /* the spec's tensors, in declaration order */
    size_t ninputs;
    attnc_tensor dout;
    attnc_tensor h0, dhT;
    attnc_tensor *dinputs;       /* ninputs gradients (same order) */
    attnc_tensor dh0;
    const int32_t *cu_seqlens;   /* device pointer or NULL (as attnc_forward) */
    int64_t nseq;
    void *stream;                /* a CUstream, or NULL */
    attnc_tensor z0, dzT, dz0;   /* the running denominator's state (see above); zero-filled: absent */
    attnc_tensor m0, dmT, dm0;   /* mLSTM's stabiliser fp32 [N, H_state] (z0, dzT, dz0 hold its n); zero-filled: absent */
    /* The chunk states a forward saved for this backward (attnc_forward_args.saved, saved_for this handle) on
     * these same inputs and h0; NULL: the backward walks the chunks for them itself. */
    const void *saved;
} attnc_backward_args;

attnc_status attnc_backward(attnc_ctx *ctx, attnc_grad_kernel *kernel, const attnc_backward_args *args);

/* Bytes of device workspace one attnc_backward of this shape needs (B sequences of T tokens, or with
 * nseq > 0 varlen: B = 1 and nseq sequences; with_dh0: the initial-state gradients are wanted), which
 * the handle allocates on the first launch and keeps (it grows, never shrinks).  No device call.  With
 * the chunk-parallel schedule (the default where it applies; ATTNC_BWD_SCHEDULE=sequential turns it off)
 * every tensor's gradient is counted as wanted: a launch that wants fewer allocates less.  How its state
 * walks run is read from ATTNC_BWD_WALK when the handle is made: auto, sequence (a CTA per sequence, head and
 * slice of V) or split (more CTAs: scanned, which adds each chunk's decay to the workspace, or for the delta
 * rule narrow slices of V); auto splits where the walks of the sequences would leave most SMs idle. */
size_t attnc_grad_workspace_bytes(const attnc_grad_kernel *kernel, int64_t B, int64_t T, int64_t nseq, int with_dh0);
/* Bytes of device workspace the handle holds now (0 before its first launch). */
size_t attnc_grad_workspace_allocated(const attnc_grad_kernel *kernel);
/* Lets a forward handle and a backward handle use one device workspace, grown to what either launch
 * needs, instead of one each: a training step then holds the larger of the two rather than their sum
 * (neither keeps anything in it between launches; the delta rule's split forward schedule needs 72 KB per
 * chunk of 32 tokens and head).  From then on launches of the two handles must be ordered (one stream, or
 * synchronised), as launches of one handle already must.  Whatever either shared before is let go; the
 * handles may be freed in any order, and attnc_kernel_workspace_bytes and attnc_grad_workspace_allocated
 * both report the shared workspace. */
attnc_status attnc_share_workspace(attnc_ctx *ctx, attnc_kernel *kernel, attnc_grad_kernel *grad);

/* Bytes of the buffer in which a forward of `kernel` saves its chunk states for `grad`'s backward (B
 * sequences of T tokens, or varlen: B = 1 and nseq sequences), or 0 where that pair saves none (no device
 * call).  The backward's chunk-parallel schedule stores every chunk's incoming state S_in as a 16-bit
 * image, and its first kernel, a walk over each sequence's chunks, exists to form them; the forward's walk
 * forms the same states and can write them out on the way (one image per chunk of the backward: about 2 K V
 * bytes per chunk and output head, the memory the backward's own images would take).  The delta rule's
 * forward also writes every token's U_hat row (2 V bytes per token and output head), which the backward then
 * does not form, in place of the workspace it took there.  Where the roles take l2norms (DeltaNet and the gated
 * delta rule: of q and k), the forward writes each token's factors 1 / |x| too (4 bytes each per token and
 * output head), which the backward's kernels read instead of summing the squares again.  Saved for: a causal
 * linear part on bf16 inputs whose value role is a bf16 input as stored, with no normaliser or stabiliser:
 * lightning, gla, DeltaNet, the gated delta rule with its decay from its own logits (bf16 images) and hgrn2
 * (16-bit mantissas with a scale per row); not mamba2, whose value x * dt is computed (the forward's state,
 * from V rounded to bf16, is less exact than the backward's own walk's), nor Gated DeltaNet with A_log yet.
 * A forward that saves runs the sequential or grouped schedule, or the delta rule's split walk (its
 * materialized schedule); AUTO never takes the additive materialized schedule then, and the decode kernel is
 * not used.  0 also where the backward's walks split over the sequences (few sequences and heads), except for
 * the delta rule's: the scanned walks of the additive specs form their own states. */
size_t attnc_saved_states_bytes(const attnc_kernel *kernel, const attnc_grad_kernel *grad, int64_t B, int64_t T,
                                int64_t nseq);

#define ATTNC_RUN_GRAD_MAX 66

typedef struct attnc_run_grad_item {
    char name[48];      /* the tensor ("q", "A_log") or "h0" */
    double rel_err;     /* ||gpu - ref|| / ||ref|| (Frobenius; plain norm of gpu when ref is all zero) */
    int nonfinite;      /* a NaN or Inf in the GPU's gradient */
} attnc_run_grad_item;

typedef struct attnc_run_grad_report {
    uint32_t total_tokens, nseq;
    uint32_t n;                        /* gradients compared */
    attnc_run_grad_item item[ATTNC_RUN_GRAD_MAX];
    double tolerance;                  /* 2e-2 for 16-bit inputs, 1e-4 for fp32 */
    int deterministic;                 /* a second backward gave the same bits */
    double backward_ms;                /* one backward, measured with events */
    double reference_s;
} attnc_run_grad_report;

/* Draws fresh inputs and upstream gradients (dout, and dhT where the spec returns a final state) as
 * `attnc ref --grad` does, runs the forward and the backward on the GPU with every gradient buffer
 * poisoned (NaN), and compares each gradient with the float64 reference backward.  ATTNC_ERR_NUMERIC
 * when any exceeds the tolerance, is not finite, or a second run differs in any bit. */
attnc_status attnc_run_grad_check(attnc_ctx *ctx, attnc_spec *spec, const attnc_run_options *opt,
                                  attnc_run_grad_report *out /* OUT */);

#ifdef __cplusplus
}
#endif
#endif
