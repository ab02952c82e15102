/* ir/ir.h: the typed IR of one attention variant.
 *
 * A module holds what a spec says, resolved and checked:
 *   - named dims (compile-time integers) and head axes (named head counts);
 *   - tensors: per-token inputs [T, heads, len] and per-head parameters [heads, len], with a dtype and
 *     an optional declared value range;
 *   - an SSA list of values: elementwise and whole-vector operations over tensors, literals and the
 *     head index, evaluated per (token, head).  Values refer to earlier values by index (ir_ref), so a
 *     module is printed, parsed, hashed and copied without pointer chasing;
 *   - at most one linear part (the recurrence S_t = A_t S_{t-1} + k_t w_t^T with its transition class,
 *     gate in log space, write scale, normaliser) and at most one softmax part (full or sliding-window);
 *     the output is their sum;
 *   - the mask, document boundaries (varlen), state I/O and the chunk size.
 *
 * Invariants (checked by ir_verify):
 *   - values[0] is unused; every operand ref is smaller than the value's own index (SSA order);
 *   - every type is what its op and operands imply (ir_infer_type);
 *   - the linear part's gate is in log space (<= 0); a constant decay is a per-head value, never per token.
 *
 * Everything lives in the module's arena; nothing is freed one by one.
 */
#ifndef ATTNC_IR_H
#define ATTNC_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "diag.h"

typedef uint32_t ir_ref; /* index into ir_module.values; IR_NONE means "absent" */
#define IR_NONE 0u
#define IR_NO_AXIS 0xffu /* ir_type.axis of a value that is the same for every head */

typedef enum ir_op {
#define IR_OP(e, name, arity, kind) IR_OP_##e,
#include "ops.def"
#undef IR_OP
    IR_OP_COUNT
} ir_op;

typedef enum ir_op_kind { IR_KIND_LEAF, IR_KIND_ELEM, IR_KIND_VEC } ir_op_kind;

const char *ir_op_name(ir_op op);
int ir_op_arity(ir_op op);
ir_op_kind ir_op_kind_of(ir_op op);
/* The op whose text name is `name`, or IR_OP_COUNT. */
ir_op ir_op_by_name(const char *name, size_t len);

typedef enum ir_dtype { IR_DT_BF16, IR_DT_FP16, IR_DT_FP32 } ir_dtype;
const char *ir_dtype_name(ir_dtype dt);
unsigned ir_dtype_bytes(ir_dtype dt); /* 2 for bf16 and fp16, 4 for fp32 */
bool ir_dtype_by_name(const char *name, size_t len, ir_dtype *out);

/* What a value depends on: nothing (a number known at compile time), the head, or the token and head. */
typedef enum ir_vary { IR_VARY_CONST, IR_VARY_HEAD, IR_VARY_TOKEN } ir_vary;

typedef struct ir_type {
    uint8_t vary;  /* ir_vary */
    uint8_t axis;  /* head axis index, IR_NO_AXIS when the value is the same for every head */
    uint16_t len;  /* vector length per (token, head); 1 for a scalar */
} ir_type;

typedef struct ir_dim {
    const char *name;
    int64_t value;
    attnc_span span;
} ir_dim;

typedef struct ir_axis {
    const char *name;
    uint32_t count; /* number of heads */
    attnc_span span;
} ir_axis;

typedef struct ir_tensor {
    const char *name;
    ir_dtype dtype;
    bool per_token;  /* input [T, heads, len] (true) or parameter [heads, len] (false) */
    uint8_t axis;    /* head axis index */
    uint16_t len;    /* channels; 1 for a scalar per head */
    bool has_range;  /* the spec declared `in [lo, hi]` */
    double lo, hi;   /* declared range (both finite, lo <= hi) */
    attnc_span span;
} ir_tensor;

typedef struct ir_value {
    uint8_t op;       /* ir_op */
    ir_type type;
    ir_ref arg[2];    /* operands, IR_NONE where the op has fewer */
    uint32_t aux;     /* INPUT/PARAM: tensor index; HEAD: axis index */
    double num;       /* CONST: the number */
    attnc_span span;  /* where the spec wrote it (empty for values made by passes) */
} ir_value;

/* How A_t acts on the state between tokens. */
typedef enum ir_decay {
    IR_DECAY_NONE,   /* A_t = I */
    IR_DECAY_CONST,  /* A_t = lambda_h I, a fixed per-head decay (gate is log lambda, per head) */
    IR_DECAY_SCALAR, /* A_t = exp(a_t) I, a_t a per-token scalar <= 0 */
    IR_DECAY_VECTOR  /* A_t = Diag(exp(a_t)), a_t in R^K, every entry <= 0 */
} ir_decay;

typedef enum ir_update {
    IR_UPDATE_ADD,  /* S_t = A_t S_{t-1} + k_t w_t^T */
    IR_UPDATE_DELTA /* S_t = (I - beta_t k_t k_t^T) A_t S_{t-1} + beta_t k_t v_t^T (Householder) */
} ir_update;

typedef enum ir_norm {
    IR_NORM_NONE,
    IR_NORM_DENOM,    /* o = S^T q / (z^T q + eps), z = running sum of keys (a ones column of values) */
    IR_NORM_MAXFLOOR, /* mLSTM: o = C^T q / (max(|n^T q|, exp(-m)) + eps), stabilised by the running max m */
    IR_NORM_RMS,      /* TransNormer: RMSNorm over V of S^T q (no denominator) */
    IR_NORM_LAYER     /* TransNormer: LayerNorm over V of S^T q (no affine part) */
} ir_norm;

typedef enum ir_mask {
    IR_MASK_CAUSAL, /* token t sees tokens <= t (update-then-read: its own write included) */
    IR_MASK_NONE    /* bidirectional: every token sees the whole sequence */
} ir_mask;

typedef struct ir_linear {
    bool present;
    ir_ref query, key, value; /* vectors: [K] per q head, [K] per k head, [V] per v head */
    ir_decay decay;
    ir_ref gate;   /* log-space decay: per token (SCALAR, VECTOR) or per head (CONST); IR_NONE for NONE */
    ir_update update;
    ir_ref beta;   /* DELTA: per-token scalar write strength, in [0, 2] */
    ir_ref igate;  /* log input gate: the write is scaled by exp(igate), stabilised (mLSTM); or IR_NONE */
    ir_norm norm;
    double eps;    /* for DENOM, MAXFLOOR, RMS, LAYER */
    attnc_span span;
} ir_linear;

typedef struct ir_softmax {
    bool present;
    ir_ref query, key, value; /* the score is query . key (scale folded into query) */
    uint32_t window;          /* sliding window in tokens, self included; 0 = unlimited */
    attnc_span span;
} ir_softmax;

/* Every role a value can be bound to, across both parts. */
typedef enum ir_role {
    IR_ROLE_QUERY, IR_ROLE_KEY, IR_ROLE_VALUE, IR_ROLE_GATE, IR_ROLE_BETA, IR_ROLE_IGATE,
    IR_ROLE_SM_QUERY, IR_ROLE_SM_KEY, IR_ROLE_SM_VALUE,
    IR_ROLE_COUNT
} ir_role;

/* The lowering plan the passes (passes/) attach to a module, stage by stage; the kernel generator reads
 * only this and the module.  Each stage's fields are meaningful once `stage` reached it; the text form
 * prints one `plan` line per reached stage (docs/ir.md), so `attnc ir --after PASS` shows it. */
typedef enum ir_plan_stage {
    IR_PLAN_NONE, IR_PLAN_CHUNKED, IR_PLAN_TILED, IR_PLAN_FUSED, IR_PLAN_SCHEDULED
} ir_plan_stage;

/* The transition class of the chunked recurrence (algorithms.md 1.1). */
typedef enum ir_transition { IR_TR_IDENTITY, IR_TR_CONST, IR_TR_SCALAR, IR_TR_DIAG } ir_transition;

/* The tensor cores' operands (tiling): bf16 or fp16 tiles and mma, or, for fp32 inputs, fp32 tiles whose
 * products are three bf16 mma (hi*hi + hi*lo + lo*hi, hi and lo the bf16 split of each fp32 number), about
 * 16 significant bits instead of 8: what the 1e-4 bound of fp32 inputs needs. */
typedef enum ir_operands { IR_OPERANDS_BF16, IR_OPERANDS_FP16, IR_OPERANDS_BF16X3 } ir_operands;

/* How a role's tile reaches the kernel (fusion): loaded as stored, loaded and scaled by a compile-time
 * constant that is folded into the score and output factors, or computed per token in the kernel's
 * prologue from the value DAG. */
typedef enum ir_feed { IR_FEED_ABSENT, IR_FEED_DIRECT, IR_FEED_SCALED, IR_FEED_MAPPED } ir_feed;

/* Which kernels run, chosen at launch by the shape (passes/schedule.c). */
typedef enum ir_sched_kind {
    IR_SCHED_SEQUENTIAL = 1,    /* one CTA per (sequence, head, V-slice) walks the chunks, state on chip */
    IR_SCHED_MATERIALIZED = 2,  /* a state pass stores every chunk's S_in, then all chunks in parallel */
    IR_SCHED_BIDIRECTIONAL = 4, /* mask none: a pass that sums the state, then a pass that reads it */
    IR_SCHED_WINDOWED = 8,      /* the softmax part: query tiles in parallel over their key band */
    IR_SCHED_GROUPED = 16       /* groups of chunks in parallel: each group's own state, composed per group */
} ir_sched_kind;

typedef struct ir_plan {
    uint8_t stage;          /* ir_plan_stage */
    /* chunked */
    uint32_t chunk;         /* C, tokens per chunk */
    uint8_t transition;     /* ir_transition */
    bool householder;       /* delta family: WY/UT stage, T = (I + Akk)^-1 per chunk */
    bool stabilized;        /* mLSTM: the running max m rides with the state */
    uint32_t subchunk;      /* DIAG gates: sub-chunk for the pairwise decay (0 = none) */
    /* tiled */
    uint32_t k_pad;         /* K rounded up to the tensor-core step (16) */
    uint32_t v_tile;        /* V columns per CTA */
    uint32_t warps;         /* warps per CTA */
    uint32_t col_groups;    /* warps that split a chunk's output columns (for norms that need whole rows) */
    uint32_t state_groups;  /* groups of warps that split the state slice's columns (its accumulators) */
    bool shared_scores;     /* a row group's column groups share its scores P through shared memory */
    uint32_t sm_tile;       /* softmax part: query and key tile rows */
    uint8_t operands;       /* ir_operands */
    /* fused */
    uint8_t feed[IR_ROLE_COUNT]; /* ir_feed per role (ir_role order) */
    double scale[IR_ROLE_COUNT]; /* IR_FEED_SCALED: the folded constant */
    ir_ref feed_src[IR_ROLE_COUNT]; /* DIRECT/SCALED: the INPUT value loaded as is */
    /* scheduled */
    uint32_t schedules;     /* ir_sched_kind bits */
    uint32_t min_ctas;      /* below this many CTAs the sequential schedule gives way (0 = never) */
} ir_plan;

typedef struct ir_module {
    attnc_arena *arena;
    const char *name;
    ir_dim *dims;       uint32_t ndims;
    ir_axis *axes;      uint32_t naxes;
    ir_tensor *tensors; uint32_t ntensors;
    ir_value *values;   uint32_t nvalues, capvalues; /* values[0] unused */
    ir_linear linear;
    ir_softmax softmax;
    ir_mask mask;
    bool document;      /* sequences packed with boundaries (cu_seqlens): nothing crosses them */
    bool state_in;      /* an initial state is accepted (linear part) */
    bool state_out;     /* the final state is returned (linear part) */
    uint32_t chunk;     /* chunk size in tokens; 0 = auto */
    attnc_span chunk_span;
    ir_dtype out_dtype;
    attnc_span span;
    attnc_span role_at[IR_ROLE_COUNT]; /* where the spec bound each role (for diagnostics) */
    ir_plan plan;       /* filled by the passes; stage NONE for a module fresh from a spec */
} ir_module;

/* Shapes a module implies, derived by ir_shape (after verification). */
typedef struct ir_shape {
    uint32_t K, V;        /* state rows (key features) and columns (value channels) */
    uint32_t heads_q, heads_k, heads_v; /* head counts of the roles (the softmax part's if no linear) */
    uint32_t heads_state; /* heads of the state: max over the state-forming roles */
    uint32_t heads_out;   /* heads of the output: max(heads_q, heads_state) */
    uint32_t group_q;     /* query heads per state head (GQA), or 1 */
    uint32_t group_state; /* state heads per query head (GVA), or 1 */
} ir_shape;

/* The head index of `role_heads` that output/state head `h` (of `total`) reads. */
static inline uint32_t ir_head_map(uint32_t h, uint32_t total, uint32_t role_heads)
{
    return h / (total / role_heads);
}

/* ir.c */
ir_module *ir_module_new(attnc_arena *arena);
/* The slot holding a role's value (IR_NONE when unbound). */
ir_ref *ir_role_slot(ir_module *m, ir_role role);
const char *ir_role_name(ir_role role);
ir_ref ir_add_value(ir_module *m, ir_value v);
const char *ir_decay_name(ir_decay d);
const char *ir_norm_name(ir_norm n);
/* Names in the plan's text form (one word each); NULL past the end, so readers can loop over them. */
const char *ir_transition_name(unsigned t);
const char *ir_feed_name(unsigned f);
const char *ir_operands_name(unsigned o);  /* "bf16", "fp16", "bf16x3" */
unsigned ir_operand_bytes(unsigned o);      /* bytes of one tile element: 2, or 4 for bf16x3 */
const char *ir_role_word(unsigned role);   /* "query", ..., "sm_value" */
const char *ir_sched_name(unsigned bit);   /* bit index 0.. of ir_sched_kind */
const char *ir_plan_stage_name(unsigned stage);
uint32_t ir_role_heads(const ir_module *m, ir_ref r); /* heads of a value's axis (1 if none) */
/* The type an op yields from its operands; false (and *why set) if the operands do not fit. */
bool ir_infer_type(const ir_module *m, ir_op op, const ir_type *a, const ir_type *b, uint32_t aux,
                   ir_type *out, const char **why);
uint32_t ir_taylor2_len(uint32_t d);
/* The elementwise op applied to numbers (b ignored for unary ops); the one definition of every op's
 * arithmetic, used by constant folding and by the float64 reference. */
double ir_apply(ir_op op, double a, double b);
ir_shape ir_module_shape(const ir_module *m);
/* Whether the plan's column groups can share a row group's scores P through shared memory (each sums a
 * share of the channels; ir_plan.shared_scores, linear_kernel.cuh's ATTNC_P_SHARED): a causal mask,
 * more than one column group, no stabiliser and no normaliser (those need a whole row in one warp). */
bool ir_plan_can_share_scores(const ir_module *m);
/* Whether the delta rule's materialized schedule is the split one (passes/schedule.c): a WY pass per chunk,
 * a lean state walk in 16-column slices of V, then all chunks' outputs (scalar, constant or no decay, no
 * normaliser or stabiliser, causal, K <= 128, all of V in one CTA, V a multiple of 16). */
bool ir_plan_split_delta(const ir_module *m);
/* Drop the values no role reaches and renumber the rest in order (constants folded away by sema,
 * dims and settings evaluated as expressions).  False on allocation failure. */
bool ir_compact(ir_module *m);

/* ir_print.c: the text form (docs/ir.md).  Returns a NUL-terminated string in the arena. */
char *ir_print(const ir_module *m, attnc_arena *arena);

/* ir_parse.c: read the text form back; errors go to `diags` with spans in `file`. */
ir_module *ir_parse(attnc_arena *arena, attnc_diags *diags, uint32_t file);

/* ir_verify.c: check every invariant; each violation is a diagnostic.  Returns true if none. */
bool ir_verify(const ir_module *m, attnc_diags *diags);
/* Only the rules of a variant (roles, shapes, heads, ranges, chunk), skipping what is IR_NONE: sema runs
 * them even after other errors, so that one run reports every problem it can. */
bool ir_verify_rules(const ir_module *m, attnc_diags *diags);

/* ir_range.c: interval of every value, from the tensors' declared ranges (unbounded if none). */
typedef struct ir_interval {
    double lo, hi;
} ir_interval;
ir_interval *ir_ranges(const ir_module *m, attnc_arena *arena);

#endif
