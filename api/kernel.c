/* api/kernel.c: lowering, emission and the JIT (attnc.h, "lowering and code generation" and "the JIT").
 *
 * The path of a kernel: spec -> passes (passes/) -> CUDA C (codegen/) -> NVRTC cubin, or the disk cache
 * (api/cubin.c, runtime/cache.c) -> the driver (runtime/driver.c).  The source compiled spells out the
 * spec, the plan, the dtypes and, for the JIT, the one kernel it defines.  The JIT compiles each kernel of the forward as a unit of its own ("#define ATTNC_ONLY k" before the
 * generated source, api_unit_source), cached under its own key: the chunk kernel and the softmax part's
 * in attnc_kernel_new (at once, on threads of their own, when both miss), the decode kernel at its first
 * launch.  The chunk kernel's schedules are units of their own too ("#define ATTNC_PHASES mask"): the
 * sequential and the grouped walk in attnc_kernel_new, the materialized schedule at the first launch that
 * takes it.  Each kernel's instructions, with all its phases, are the same as in the one unit of every kernel
 * (`attnc compile` still compiles that; bench/first_call.py checks both and times them).  What the cache
 * lacks at attnc_kernel_new is, by default (ATTNC_JIT_TIERED), compiled twice: quickly for the first
 * launches, and optimised on a thread whose cubins replace the quick ones at a later launch (the tiered
 * JIT, below attnc_kernel_new's helpers).  A kernel copies what launches
 * need (tensor metadata, shapes) so that the spec can be freed after attnc_kernel_new; launches of one
 * handle must not run concurrently (the workspace, and the decode kernel loaded at its first launch).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "codegen.h"
#include "passes.h"
#include "rt.h"

/* ---- lowering -------------------------------------------------------------------------------------- */

const char *const *attnc_pass_names(void)
{
    static const char *names[16];
    if (!names[0]) {
        size_t n;
        const pass_info *t = passes_table(&n);
        for (size_t i = 0; i < n && i < 15; i++)
            names[i] = t[i].name;
    }
    return names;
}

attnc_status attnc_spec_override(attnc_spec *spec, uint32_t heads, int input_dtype)
{
    if (!spec || !spec->ir)
        return ATTNC_ERR_USAGE;
    ir_module *m = spec->ir;
    if (input_dtype > ATTNC_FP32 || heads > 4096)
        return ATTNC_ERR_USAGE;
    if (heads)
        for (uint32_t i = 0; i < m->naxes; i++)
            m->axes[i].count = heads;
    if (input_dtype >= 0) {
        for (uint32_t i = 0; i < m->ntensors; i++)
            if (m->tensors[i].per_token)
                m->tensors[i].dtype = (ir_dtype)input_dtype;
        m->out_dtype = (ir_dtype)input_dtype;
    }
    spec->ir_text = NULL;
    m->plan = (ir_plan){0};
    return ir_verify(m, &spec->diags) ? ATTNC_OK : ATTNC_ERR_INPUT;
}

static attnc_status lower(attnc_ctx *ctx, attnc_spec *spec, int last)
{
    if (!spec || !spec->ir)
        return api_fail(ctx, ATTNC_ERR_USAGE, "the spec has errors or is NULL");
    pass_options po = {0};
    if (!passes_run(spec->ir, &po, last, &spec->diags))
        return api_fail(ctx, ATTNC_ERR_INPUT, "%s: the lowering passes rejected the module", spec->ir->name);
    return ATTNC_OK;
}

attnc_status attnc_spec_lower(attnc_spec *spec, const char *after_pass, const char **ir_text)
{
    if (!spec || !spec->ir || !ir_text)
        return ATTNC_ERR_USAGE;
    int last = -1;
    if (after_pass && (last = passes_find(after_pass)) < 0)
        return ATTNC_ERR_USAGE;
    attnc_status st = lower(NULL, spec, last);
    if (st != ATTNC_OK)
        return st;
    *ir_text = ir_print(spec->ir, spec->arena);
    return *ir_text ? ATTNC_OK : ATTNC_ERR_NOMEM;
}

/* ---- emission ---------------------------------------------------------------------------------------- */

static attnc_status generate(attnc_ctx *ctx, attnc_spec *spec, cg_output *out)
{
    attnc_status st = lower(ctx, spec, -1);
    if (st != ATTNC_OK)
        return st;
    if (!codegen_cuda(spec->ir, spec->arena, &spec->diags, out))
        return api_fail(ctx, ATTNC_ERR_INPUT, "%s: the CUDA generator cannot handle this module", spec->ir->name);
    return ATTNC_OK;
}

/* Where the number that ptxas prints just before `words` starts ("ptxas         .     256 bytes stack frame,
 * 0 bytes spill stores, ..."): back over the spaces, then over the digits. */
static const char *number_before(const char *log, const char *words)
{
    const char *start = words;
    while (start > log && start[-1] == ' ')
        start--;
    while (start > log && start[-1] >= '0' && start[-1] <= '9')
        start--;
    return start;
}

/* From ptxas -v, over every kernel of the unit: the most registers any uses ("Used N registers"), the
 * spilled bytes of all together ("N bytes spill stores, M bytes spill loads") and the largest stack frame
 * ("N bytes stack frame"); -1 if absent. */
static void parse_ptxas(const char *log, int *regs, int *spills, int *stack)
{
    *regs = -1;
    *spills = -1;
    *stack = -1;
    for (const char *p = log; p && (p = strstr(p, "Used ")) != NULL; p += 5) {
        int r;
        if (sscanf(p, "Used %d registers", &r) == 1 && r > *regs)
            *regs = r;
    }
    for (const char *q = log; q && (q = strstr(q, "bytes spill stores")) != NULL; q++) {
        int st = 0, ld = 0;
        if (sscanf(number_before(log, q), "%d bytes spill stores, %d bytes spill loads", &st, &ld) == 2)
            *spills = (*spills < 0 ? 0 : *spills) + st + ld;
    }
    for (const char *q = log; q && (q = strstr(q, "bytes stack frame")) != NULL; q++) {
        int f = 0;
        if (sscanf(number_before(log, q), "%d bytes stack frame", &f) == 1 && f > *stack)
            *stack = f;
    }
}

attnc_status attnc_emit(attnc_ctx *ctx, attnc_spec *spec, attnc_emit_kind kind, const attnc_compile_options *opts,
                        attnc_blob *out)
{
    if (!out)
        return api_fail(ctx, ATTNC_ERR_USAGE, "no place for the result");
    memset(out, 0, sizeof *out);
    out->regs = out->spill_bytes = out->stack_bytes = -1;
    cg_output cg;
    attnc_status st = generate(ctx, spec, &cg);
    if (st != ATTNC_OK)
        return st;
    if (!opts || !opts->warp_specialized)
        return api_emit_unit(ctx, spec, cg.source, kind, opts, out);
    if (!opts->arch || strcmp(opts->arch, "sm_90a") != 0)
        return api_fail(ctx, ATTNC_ERR_USAGE, "%s: the warp-specialised walk is compiled for sm_90a only, not %s",
                        spec->ir->name, opts->arch ? opts->arch : "the GPU present");
    if (cg.nkernels == 0 || cg.kernels[0].kind != CG_KERNEL_LINEAR || !cg.kernels[0].ws.entry)
        return api_fail(ctx, ATTNC_ERR_USAGE, "%s: its plan has no warp-specialised walk (codegen/cuda.c's ws_eligible)",
                        spec->ir->name);
    char *unit = api_unit_source(cg.source, CG_KERNEL_LINEAR, CG_PHASES_SEQUENTIAL, true);
    const char *kept = unit ? attnc_arena_strndup(spec->arena, unit, strlen(unit)) : NULL;
    free(unit);
    if (!kept)
        return api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
    return api_emit_unit(ctx, spec, kept, kind, opts, out);
}

attnc_status api_emit_unit(attnc_ctx *ctx, attnc_spec *spec, const char *source, attnc_emit_kind kind,
                           const attnc_compile_options *opts, attnc_blob *out)
{
    memset(out, 0, sizeof *out);
    out->regs = out->spill_bytes = out->stack_bytes = -1;
    if (kind == ATTNC_EMIT_CUDA) {
        out->data = source;
        out->size = strlen(source);
        out->log = "";
        return ATTNC_OK;
    }
    const char *arch = opts && opts->arch ? opts->arch : NULL;
    rt_device_info dev;
    rt_error err;
    char archbuf[16];
    if (!arch) {
        if (!rt_driver_open(0, &dev, &err))
            return api_fail(ctx, ATTNC_ERR_IO, "no --arch given and no GPU to compile for: %s", err.msg);
        snprintf(archbuf, sizeof archbuf, "sm_%d%d", dev.cc_major, dev.cc_minor);
        arch = archbuf;
    }
    rt_nvrtc_out no;
    const char *nvrtc_opts[API_NVRTC_MAX_OPTS];
    int nopts = api_nvrtc_options(nvrtc_opts, false);
    if (!rt_nvrtc_compile(source, spec->ir->name, arch, kind == ATTNC_EMIT_CUBIN, nvrtc_opts, nopts, &no, &err))
        return api_fail(ctx, ATTNC_ERR_IO, "%s", err.msg);
    void *img = attnc_arena_alloc(spec->arena, no.size + 1);
    char *log = attnc_arena_strndup(spec->arena, no.log ? no.log : "", no.log ? strlen(no.log) : 0);
    if (img) {
        memcpy(img, no.image, no.size);
        ((char *)img)[no.size] = 0;
    }
    free(no.image);
    free(no.log);
    if (!img || !log)
        return api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
    out->data = img;
    out->size = no.size;
    out->log = log;
    parse_ptxas(log, &out->regs, &out->spill_bytes, &out->stack_bytes);
    return ATTNC_OK;
}

int attnc_gpu_available(void)
{
    return rt_driver_available();
}

/* ---- the JIT ---------------------------------------------------------------------------------------- */

/* The chunk kernel's units besides its own (the sequential walk), each a compile unit of its phases: the
 * other schedules. */
typedef enum sched_unit { SCHED_MATERIALIZED, SCHED_GROUPED, SCHED_UNITS } sched_unit;
static const unsigned sched_phases[SCHED_UNITS] = {CG_PHASES_MATERIALIZED, CG_PHASES_GROUPED};

typedef struct loaded_kernel {
    rt_function *fn;
    cg_kernel cg;
    attnc_kernel_info info;
    unsigned quick_units;   /* its units loaded from a quick compile: bit 0 its own, bit 1 + s schedule s */
    /* fn is the warp-specialised walk (cg.ws: its own unit, ATTNC_WS 1), which the sequential schedule
     * launches with cg.ws's threads and shared memory. */
    bool ws;
} loaded_kernel;

/* A pending optimised compile of a tiered kernel (api_tier) and where each of its units goes.  A kernel has
 * up to three: attnc_kernel_new's units, the materialized schedule's and the decode kernel's; the quick
 * functions they replace are every unit's, the schedules', the split delta rule's passes and the grouped
 * phase 3 (tier_load_unit). */
typedef struct kernel_tier {
    api_tier *tier;
    size_t n;
    size_t kernel_of[API_MAX_UNITS];   /* the loaded_kernel each unit is a unit of */
    int sched_of[API_MAX_UNITS];       /* -1: the kernel's own unit; else its sched_unit */
} kernel_tier;
#define JIT_MAX_TIERS 3
#define JIT_MAX_RETIRED (API_MAX_UNITS + SCHED_UNITS + CG_SPLIT_PASSES + 1)

struct attnc_kernel {
    char name[64];
    uint32_t ntensors;
    api_tensor *tensors;
    ir_shape sh;
    attnc_dtype out_dtype;
    bool state_in, state_out, has_z, has_m, document;
    size_t nkernels;
    loaded_kernel k[CG_MAX_KERNELS];
    /* The linear part's schedules (passes/schedule.c) and the materialized one's workspace, grown on
     * demand and kept for the kernel's life (so launches of one kernel handle must be on one stream, or
     * ordered: the workspace is shared). */
    bool materialized, grouped;
    bool has_decode;    /* a single-token decode kernel was generated (causal linear part) */
    /* Each kernel is a compile unit and a cubin of its own (api_unit_source).  The decode kernel is
     * compiled (or read from the cache) at its first launch, not by attnc_kernel_new: until then its
     * unit's source waits here and its function is NULL. */
    char *lazy_src[CG_MAX_KERNELS];
    /* The chunk kernel's other units (sched_unit), each a unit of its own: the grouped one loaded by
     * attnc_kernel_new, the materialized one at the first launch that takes it (its source waits here until
     * then); the chunk kernel's own unit (k[linear].fn) holds the sequential walk. */
    rt_function *sched_fn[SCHED_UNITS];
    char *sched_src[SCHED_UNITS];
    /* The split delta rule's materialized unit (cg_split_pass): sched_fn[SCHED_MATERIALIZED] is its WY pass,
     * these its state walk and output pass, from the same module. */
    rt_function *split_fn[CG_SPLIT_PASSES];
    /* The grouped unit's phase 3 (cg_kernel.group), from the same module as sched_fn[SCHED_GROUPED]. */
    rt_function *group_fn;
    char arch[16];
    bool use_cache;
    attnc_jit_mode jit;
    /* ATTNC_JIT_TIERED: the optimised units compiling on threads (one compile for attnc_kernel_new's units,
     * one for each unit left for a launch), and the quick functions they replaced, kept until
     * attnc_kernel_free (a launch on some stream may still run them). */
    kernel_tier tiers[JIT_MAX_TIERS];
    size_t ntiers;
    rt_function *retired[JIT_MAX_RETIRED];
    size_t nretired;
    char tier_error[256];      /* why the optimised units are not in, until attnc_kernel_wait_optimized says it */
    uint32_t min_ctas, chunk, k_pad;
    unsigned elt_bytes;        /* bytes of one tile element (the plan's operands): the workspace's S_in */
    cg_saved_images saves;     /* the images its walk writes for the backward's saved states where asked */
    uint32_t save_vs;          /* and their scales' slice (codegen/cuda.c's cg_saved_image_kind) */
    uint32_t save_nl2;         /* and the l2norm factors it saves per token and output head (cg_output's save_nl2) */
    uint32_t bv;               /* the walk's V slice (columns of the image a CTA writes) */
    int sm_count;
    api_workspace *ws;
};

void attnc_kernel_free(attnc_kernel *kernel)
{
    if (!kernel)
        return;
    for (size_t i = 0; i < kernel->ntiers; i++)
        api_tier_free(kernel->tiers[i].tier);   /* joins: what it compiled reaches the cache */
    for (size_t i = 0; i < kernel->nretired; i++)
        rt_function_free(kernel->retired[i]);
    for (size_t i = 0; i < kernel->nkernels; i++) {
        rt_function_free(kernel->k[i].fn);
        free(kernel->lazy_src[i]);
    }
    for (size_t s = 0; s < SCHED_UNITS; s++) {
        rt_function_free(kernel->sched_fn[s]);
        free(kernel->sched_src[s]);
    }
    for (size_t s = 0; s < CG_SPLIT_PASSES; s++)
        rt_function_free(kernel->split_fn[s]);
    rt_function_free(kernel->group_fn);
    api_workspace_release(kernel->ws);
    free(kernel->tensors);
    free(kernel);
}

size_t attnc_kernel_count(const attnc_kernel *kernel)
{
    return kernel ? kernel->nkernels : 0;
}

size_t attnc_kernel_workspace_bytes(const attnc_kernel *kernel)
{
    return kernel && kernel->ws ? kernel->ws->bytes : 0;
}

attnc_status attnc_kernel_get_info(const attnc_kernel *kernel, size_t i, attnc_kernel_info *out)
{
    if (!kernel || !out || i >= kernel->nkernels)
        return ATTNC_ERR_USAGE;
    *out = kernel->k[i].info;
    return ATTNC_OK;
}

char *api_headed_source(const char *head, const char *source)
{
    size_t h = strlen(head), n = strlen(source);
    char *s = malloc(h + n + 1);
    if (s) {
        memcpy(s, head, h);
        memcpy(s + h, source, n + 1);
    }
    return s;
}

char *api_unit_source(const char *source, int kind, unsigned phases, bool ws)
{
    char head[96];
    if (phases)
        snprintf(head, sizeof head, "#define ATTNC_ONLY %d\n#define ATTNC_PHASES 0x%02x\n%s", kind + 1, phases,
                 ws ? "#define ATTNC_WS 1\n" : "");
    else
        snprintf(head, sizeof head, "#define ATTNC_ONLY %d\n", kind + 1);
    return api_headed_source(head, source);
}

/* Whether the sequential unit is the warp-specialised walk: the plan has one (cg.ws), the unit is compiled for
 * sm_90a (setmaxnreg), and ATTNC_WS is not 0 (the environment's switch back to linear_kernel.cuh's walk). */
static bool ws_wanted(const loaded_kernel *lk, const char *arch)
{
    const char *env = getenv("ATTNC_WS");
    return lk->cg.ws.entry && strcmp(arch, "sm_90a") == 0 && !(env && strcmp(env, "0") == 0);
}

attnc_status api_open_device(attnc_ctx *ctx, const attnc_compile_options *opts, rt_device_info *dev, char arch[16],
                             attnc_jit_mode *jit)
{
    rt_error err;
    attnc_status st = api_jit_mode(ctx, opts, jit);
    if (st != ATTNC_OK)
        return st;
    if (!rt_driver_open(0, dev, &err))
        return api_fail(ctx, ATTNC_ERR_IO, "%s", err.msg);
    if (opts && opts->arch)
        snprintf(arch, 16, "%s", opts->arch);
    else
        snprintf(arch, 16, "sm_%d%d%s", dev->cc_major, dev->cc_minor, dev->cc_major == 9 && dev->cc_minor == 0 ? "a" : "");
    return ATTNC_OK;
}

api_tensor *api_tensors_new(const ir_module *m, const unsigned *align)
{
    api_tensor *ts = calloc(m->ntensors ? m->ntensors : 1, sizeof *ts);
    for (uint32_t i = 0; ts && i < m->ntensors; i++) {
        const ir_tensor *t = &m->tensors[i];
        api_tensor *kt = &ts[i];
        snprintf(kt->label, sizeof kt->label, "tensor %u ('%.60s')", i, t->name);
        kt->per_token = t->per_token;
        kt->heads = m->axes[t->axis].count;
        kt->len = t->len;
        kt->dtype = (attnc_dtype)t->dtype;
        kt->align = align && align[i] ? align[i] : ir_dtype_bytes(t->dtype);
    }
    return ts;
}

bool api_load_function(const void *image, size_t size, rt_function *sibling, const char *entry, unsigned smem_bytes,
                       rt_function **fn, rt_error *err)
{
    bool loaded = sibling ? rt_function_load_sibling(sibling, entry, fn, err) : rt_function_load(image, size, entry, fn, err);
    return loaded && (smem_bytes <= 48 * 1024 || rt_function_set_smem(*fn, smem_bytes, err));
}

/* Loads kernel i of k from its cubin and fills in its info (the attributes of the loaded function). */
static attnc_status load_unit(attnc_ctx *ctx, attnc_kernel *k, size_t i, const void *image, size_t size, bool hit,
                              double compile_ms)
{
    rt_error err;
    loaded_kernel *lk = &k->k[i];
    if (!api_load_function(image, size, NULL, lk->cg.entry, lk->ws ? lk->cg.ws.smem_bytes : lk->cg.smem_bytes, &lk->fn, &err)) {
        rt_function_free(lk->fn); /* (loaded, but its shared memory refused: not launchable) */
        lk->fn = NULL;
        return api_fail(ctx, ATTNC_ERR_IO, "%s: %s", k->name, err.msg);
    }
    rt_function_attrs at;
    attnc_kernel_info *info = &lk->info;
    if (rt_function_get_attrs(lk->fn, &at, &err)) {
        info->regs = at.num_regs;
        info->local_bytes = at.local_bytes;
    }
    info->cache_hit = hit;
    info->compile_ms = hit ? 0 : compile_ms;
    return ATTNC_OK;
}

/* The chunk kernel's unit of schedule s from its cubin. */
static attnc_status load_schedule_image(attnc_ctx *ctx, attnc_kernel *k, const loaded_kernel *lk, sched_unit s,
                                        const void *image, size_t size)
{
    rt_error err;
    bool split = s == SCHED_MATERIALIZED && lk->cg.split[CG_SPLIT_WY].entry;   /* the split delta rule's unit */
    const cg_entry *first = split ? &lk->cg.split[CG_SPLIT_WY] : &(cg_entry){.entry = lk->cg.entry, .smem_bytes = lk->cg.smem_bytes};
    bool ok = api_load_function(image, size, NULL, first->entry, first->smem_bytes, &k->sched_fn[s], &err);
    for (int pass = CG_SPLIT_STATES; ok && split && pass < CG_SPLIT_PASSES; pass++)
        ok = !lk->cg.split[pass].entry ||   /* (the saving walk: only where the unit saves) */
             api_load_function(NULL, 0, k->sched_fn[s], lk->cg.split[pass].entry, lk->cg.split[pass].smem_bytes,
                               &k->split_fn[pass], &err);
    bool group = s == SCHED_GROUPED && lk->cg.group.entry;
    if (ok && group)
        ok = api_load_function(NULL, 0, k->sched_fn[s], lk->cg.group.entry, lk->cg.group.smem_bytes, &k->group_fn, &err);
    if (!ok) {
        rt_function_free(k->sched_fn[s]);
        k->sched_fn[s] = NULL;
        for (int pass = 0; split && pass < CG_SPLIT_PASSES; pass++) {
            rt_function_free(k->split_fn[pass]);
            k->split_fn[pass] = NULL;
        }
        if (group) {
            rt_function_free(k->group_fn);
            k->group_fn = NULL;
        }
        return api_fail(ctx, ATTNC_ERR_IO, "%s: %s", k->name, err.msg);
    }
    free(k->sched_src[s]);
    k->sched_src[s] = NULL;
    return ATTNC_OK;
}

/* ---- the tiered JIT: quick kernels first, the optimised ones from a thread --------------------------
 *
 * Under ATTNC_JIT_TIERED, attnc_kernel_new (and the launch that first needs a unit left for it) compiles
 * the units the cache lacks quickly and loads them, and starts their optimised compile on a thread
 * (api_tier, cubin.c), which stores them in the cache.  The launch that finds it done (attnc_forward) or
 * attnc_kernel_wait_optimized loads the optimised cubins in the caller's thread; attnc_kernel_free joins
 * it, so that what it compiled reaches the cache. */

/* Keeps the optimised compile api_jit_cubins started for the n units whose quick[u] is set (ATTNC_JIT_TIERED;
 * kernel_of, sched_of: where each unit goes); where none started though some unit is quick, says so in
 * tier_error: the quick kernels then stay. */
static void tier_keep(attnc_kernel *k, api_tier *tier, size_t n, const bool *quick, const size_t *kernel_of,
                      const int *sched_of)
{
    size_t nquick = 0;
    for (size_t u = 0; u < n; u++)
        nquick += quick[u];
    if (nquick == 0)
        return;
    if (!tier || k->ntiers == JIT_MAX_TIERS) {   /* (the second: not reached, a kernel has three at most) */
        api_tier_free(tier);
        if (!k->tier_error[0])
            snprintf(k->tier_error, sizeof k->tier_error, "%s: the optimised kernels' compile did not start", k->name);
        return;
    }
    kernel_tier *kt = &k->tiers[k->ntiers++];
    kt->tier = tier;
    kt->n = 0;
    for (size_t u = 0; u < n; u++)
        if (quick[u]) {
            kt->kernel_of[kt->n] = kernel_of[u];
            kt->sched_of[kt->n++] = sched_of[u];
        }
}

/* Keeps a quick function that an optimised one replaced (until attnc_kernel_free). */
static void retire(attnc_kernel *k, rt_function *fn)
{
    if (fn && k->nretired < JIT_MAX_RETIRED)
        k->retired[k->nretired++] = fn;
    else
        rt_function_free(fn);   /* (not reached: JIT_MAX_RETIRED counts every unit's functions) */
}

/* Loads unit j of the joined compile t in place of its quick functions; false (the quick ones kept) when
 * it does not load. */
static bool tier_load_unit(attnc_kernel *k, const kernel_tier *kt, size_t j, const void *image, size_t size)
{
    size_t i = kt->kernel_of[j];
    int s = kt->sched_of[j];
    attnc_ctx *quiet = NULL;   /* a failure is reported through tier_error, not a context */
    if (s < 0) {
        rt_function *quick = k->k[i].fn;
        k->k[i].fn = NULL;
        if (load_unit(quiet, k, i, image, size, false, api_tier_compile_ms(kt->tier)) != ATTNC_OK) {
            k->k[i].fn = quick;
            return false;
        }
        retire(k, quick);
        return true;
    }
    /* a schedule's unit, with the split delta rule's passes or the grouped phase 3 taken from the same module */
    rt_function *quick = k->sched_fn[s], *quick_split[CG_SPLIT_PASSES], *quick_group = NULL;
    k->sched_fn[s] = NULL;
    bool split = s == SCHED_MATERIALIZED, group = s == SCHED_GROUPED;
    for (int pass = 0; pass < CG_SPLIT_PASSES; pass++) {
        quick_split[pass] = split ? k->split_fn[pass] : NULL;
        if (split)
            k->split_fn[pass] = NULL;
    }
    if (group) {
        quick_group = k->group_fn;
        k->group_fn = NULL;
    }
    if (load_schedule_image(quiet, k, &k->k[i], (sched_unit)s, image, size) != ATTNC_OK) {
        k->sched_fn[s] = quick;
        for (int pass = 0; split && pass < CG_SPLIT_PASSES; pass++)
            k->split_fn[pass] = quick_split[pass];
        if (group)
            k->group_fn = quick_group;
        return false;
    }
    retire(k, quick);
    for (int pass = 0; pass < CG_SPLIT_PASSES; pass++)
        retire(k, quick_split[pass]);
    retire(k, quick_group);
    return true;
}

/* Joins pending compile number `which` (waiting for it if it is still running) and loads its units in
 * place of the quick ones.  A failure leaves the quick functions and its message in k->tier_error. */
static void tier_finish(attnc_kernel *k, size_t which)
{
    kernel_tier kt = k->tiers[which];
    k->tiers[which] = k->tiers[--k->ntiers];
    api_tier_join(kt.tier);
    for (size_t j = 0; j < kt.n; j++) {
        loaded_kernel *lk = &k->k[kt.kernel_of[j]];
        size_t size;
        const char *why;
        const void *image = api_tier_cubin(kt.tier, j, &size, &why);
        if (image && tier_load_unit(k, &kt, j, image, size))
            lk->quick_units &= ~(1u << (kt.sched_of[j] + 1));
        else if (!k->tier_error[0])
            snprintf(k->tier_error, sizeof k->tier_error, "%s: the optimised kernels %s%s", k->name,
                     image ? "could not be loaded" : "did not compile: ", image ? "" : why);
        lk->info.quick = lk->quick_units != 0;
    }
    api_tier_free(kt.tier);
}

/* Loads the optimised units of every pending compile that is done (all of them, waiting, with `wait`). */
static void tiers_take(attnc_kernel *k, bool wait)
{
    for (size_t i = k->ntiers; i-- > 0;)
        if (wait || api_tier_done(k->tiers[i].tier))
            tier_finish(k, i);
}

attnc_status attnc_kernel_wait_optimized(attnc_ctx *ctx, attnc_kernel *kernel)
{
    if (!kernel)
        return api_fail(ctx, ATTNC_ERR_USAGE, "attnc_kernel_wait_optimized: kernel is NULL");
    tiers_take(kernel, true);
    if (!kernel->tier_error[0])
        return ATTNC_OK;
    attnc_status st = api_fail(ctx, ATTNC_ERR_IO, "%s", kernel->tier_error);
    kernel->tier_error[0] = 0;
    return st;
}

/* The cubin of a unit left for its first launch (unit `sched` of kernel i: -1 its own, else a sched_unit),
 * as the kernel's jit mode says: under ATTNC_JIT_TIERED a miss is compiled quickly now (the unit's bit in
 * quick_units) and optimised on a thread, which a later launch takes. */
static attnc_status lazy_cubin(attnc_ctx *ctx, attnc_kernel *k, const char *src, size_t i, int sched, void **image,
                               size_t *size, bool *hit)
{
    bool quick;
    api_tier *tier;
    attnc_status st = api_jit_cubins(ctx, k->name, 1, &src, k->arch, k->use_cache, k->jit, image, size, hit, &quick,
                                     &tier);
    if (st != ATTNC_OK)
        return st;
    if (k->jit == ATTNC_JIT_TIERED)
        tier_keep(k, tier, 1, &quick, &i, &sched);
    if (quick)
        k->k[i].quick_units |= 1u << (sched + 1);
    k->k[i].info.quick = k->k[i].quick_units != 0;
    return ATTNC_OK;
}

/* A schedule left for the first launch that takes it: from the cache or NVRTC, then loaded. */
static attnc_status load_schedule(attnc_ctx *ctx, attnc_kernel *k, size_t i, sched_unit s)
{
    void *image = NULL;
    size_t size = 0;
    bool hit = false;
    attnc_status st = lazy_cubin(ctx, k, k->sched_src[s], i, (int)s, &image, &size, &hit);
    if (st != ATTNC_OK)
        return st;
    st = load_schedule_image(ctx, k, &k->k[i], s, image, size);
    free(image);
    return st;
}

/* A kernel left for its first launch (the decode kernel): its unit from the cache or NVRTC, then loaded. */
static attnc_status load_lazy(attnc_ctx *ctx, attnc_kernel *k, size_t i)
{
    double t0 = api_seconds() * 1e3;
    void *image = NULL;
    size_t size = 0;
    bool hit = false;
    attnc_status st = lazy_cubin(ctx, k, k->lazy_src[i], i, -1, &image, &size, &hit);
    if (st != ATTNC_OK)
        return st;
    double t1 = api_seconds() * 1e3;
    st = load_unit(ctx, k, i, image, size, hit, t1 - t0);
    free(image);
    if (st != ATTNC_OK)
        return st;
    free(k->lazy_src[i]);
    k->lazy_src[i] = NULL;
    k->k[i].info.load_ms = api_seconds() * 1e3 - t0;
    return ATTNC_OK;
}

attnc_status attnc_kernel_new(attnc_ctx *ctx, attnc_spec *spec, const attnc_compile_options *opts,
                              attnc_kernel **kernel)
{
    if (!kernel)
        return api_fail(ctx, ATTNC_ERR_USAGE, "no place for the result (kernel is NULL)");
    *kernel = NULL;
    double t0 = (api_seconds() * 1e3);
    rt_device_info dev;
    char arch[16];
    attnc_jit_mode jit;
    attnc_status st = api_open_device(ctx, opts, &dev, arch, &jit);
    if (st != ATTNC_OK)
        return st;
    cg_output cg;
    if ((st = generate(ctx, spec, &cg)) != ATTNC_OK)
        return st;
    const ir_module *m = spec->ir;
    attnc_kernel *k = calloc(1, sizeof *k);
    if (!k || !(k->tensors = api_tensors_new(m, cg.tensor_align)) || !(k->ws = api_workspace_new())) {
        if (k)
            free(k->tensors);
        free(k);
        return api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
    }
    snprintf(k->name, sizeof k->name, "%s", m->name);
    snprintf(k->arch, sizeof k->arch, "%s", arch);
    k->use_cache = !(opts && opts->no_cache);
    k->jit = jit;
    k->ntensors = m->ntensors;
    k->sh = ir_module_shape(m);
    k->out_dtype = (attnc_dtype)m->out_dtype;
    k->state_in = m->state_in;
    k->state_out = m->state_out;
    k->has_z = m->linear.present && (m->linear.norm == IR_NORM_DENOM || m->linear.norm == IR_NORM_MAXFLOOR);
    k->has_m = m->linear.present && m->linear.norm == IR_NORM_MAXFLOOR;
    k->document = m->document;
    k->materialized = m->plan.schedules & IR_SCHED_MATERIALIZED;
    k->grouped = m->plan.schedules & IR_SCHED_GROUPED;
    k->min_ctas = m->plan.min_ctas;
    k->chunk = m->plan.chunk;
    k->k_pad = m->plan.k_pad;
    k->elt_bytes = ir_operand_bytes(m->plan.operands);
    k->saves = cg_saved_image_kind(m, &k->save_vs);
    k->save_nl2 = cg.save_nl2;
    k->bv = m->plan.v_tile;
    k->sm_count = dev.sm_count;
    /* Every kernel its own unit: the chunk kernel and the softmax part's (what every launch but a decode
     * step runs) now, at once on threads of their own when both miss the cache; the decode kernel at its
     * first launch.  One unit for all took NVVM and ptxas through the decode kernel too, which a launch
     * of more than one token never runs: NVRTC to an sm_90a cubin, CPU seconds of the one unit against
     * the chunk kernel's, mamba2 0.84 -> 0.67, lightning 0.75 -> 0.62, gla 1.69 -> 1.51, deltanet 1.05 ->
     * 0.81, gated_deltanet 1.14 -> 0.91 (bf16, 2 cores; bench/first_call.py, bench/RESULTS.md seventh
     * session); the instructions of each kernel come out the same either way on sm_90a.  The chunk
     * kernel's schedules are units apart (ATTNC_PHASES): the sequential walk and, where there is one, the
     * grouped walk (what the launcher takes for few long sequences) now, at once; the materialized one
     * (taken only when a launch asks for it) at its first launch.  Each unit then compiles its own phases
     * only: NVRTC's CPU time for the sequential unit against the chunk kernel with every phase, mamba2
     * and lightning about a fifth less, gla and the delta rule about a tenth; the first call, the grouped
     * unit's time where there is one (2-16 % less than the kernel with every phase; bench/RESULTS.md
     * thirteenth session, bench/first_call.py --schedules). */
    const char *srcs[API_MAX_UNITS];
    size_t now_units[API_MAX_UNITS], nnow = 0;
    int now_sched[API_MAX_UNITS];   /* -1: the kernel's own unit; else the chunk kernel's sched_unit */
    k->nkernels = cg.nkernels;
    for (unsigned i = 0; i < cg.nkernels; i++) {
        loaded_kernel *lk = &k->k[i];
        lk->cg = cg.kernels[i];
        k->has_decode |= lk->cg.kind == CG_KERNEL_DECODE;
        attnc_kernel_info *info = &lk->info;
        info->entry = lk->cg.entry;
        info->regs = info->local_bytes = -1;
        bool linear = lk->cg.kind == CG_KERNEL_LINEAR;
        lk->ws = linear && ws_wanted(lk, arch);
        info->threads = lk->ws ? lk->cg.ws.threads : lk->cg.threads;
        info->smem_bytes = lk->ws ? lk->cg.ws.smem_bytes : lk->cg.smem_bytes;
        snprintf(info->arch, sizeof info->arch, "%s", arch);
        bool sched_wanted[SCHED_UNITS] = {linear && k->materialized, linear && k->grouped}, nomem = false;
        nomem |= !(k->lazy_src[i] = api_unit_source(cg.source, (int)lk->cg.kind, linear ? CG_PHASES_SEQUENTIAL : 0, lk->ws));
        for (int s = 0; s < SCHED_UNITS; s++)
            nomem |= sched_wanted[s] && !(k->sched_src[s] = api_unit_source(cg.source, (int)lk->cg.kind, sched_phases[s], false));
        if (nomem) {
            attnc_kernel_free(k);
            return api_fail(ctx, ATTNC_ERR_NOMEM, "out of memory");
        }
        if (lk->cg.kind != CG_KERNEL_DECODE) {
            srcs[nnow] = k->lazy_src[i];
            now_sched[nnow] = -1;
            now_units[nnow++] = i;
        }
        if (sched_wanted[SCHED_GROUPED]) {
            srcs[nnow] = k->sched_src[SCHED_GROUPED];
            now_sched[nnow] = SCHED_GROUPED;
            now_units[nnow++] = i;
        }
    }
    double t_gen = (api_seconds() * 1e3);
    void *images[API_MAX_UNITS];
    size_t sizes[API_MAX_UNITS];
    bool hits[API_MAX_UNITS], quick[API_MAX_UNITS];
    api_tier *tier;
    st = api_jit_cubins(ctx, m->name, nnow, srcs, arch, k->use_cache, jit, images, sizes, hits, quick, &tier);
    if (st == ATTNC_OK && jit == ATTNC_JIT_TIERED)
        tier_keep(k, tier, nnow, quick, now_units, now_sched);
    if (st != ATTNC_OK) {
        attnc_kernel_free(k);
        return st;
    }
    double t_compiled = (api_seconds() * 1e3);
    for (size_t u = 0; u < nnow; u++) {
        size_t i = now_units[u];
        if (quick[u])
            k->k[i].quick_units |= 1u << (now_sched[u] + 1);
        k->k[i].info.quick = k->k[i].quick_units != 0;
        if (st == ATTNC_OK && now_sched[u] >= 0)
            st = load_schedule_image(ctx, k, &k->k[i], (sched_unit)now_sched[u], images[u], sizes[u]);
        else if (st == ATTNC_OK &&
                 (st = load_unit(ctx, k, i, images[u], sizes[u], hits[u], t_compiled - t_gen)) == ATTNC_OK) {
            free(k->lazy_src[i]);
            k->lazy_src[i] = NULL;
        }
        free(images[u]);
    }
    if (st != ATTNC_OK) {
        attnc_kernel_free(k);
        return st;
    }
    double t_end = (api_seconds() * 1e3);
    for (size_t u = 0; u < nnow; u++)
        if (now_sched[u] < 0)
            k->k[now_units[u]].info.load_ms = t_end - t0;
    *kernel = k;
    return ATTNC_OK;
}

/* ---- launches ---------------------------------------------------------------------------------------- */

static const char *dtype_name(attnc_dtype d)
{
    return d == ATTNC_BF16 ? "bf16" : d == ATTNC_FP16 ? "fp16" : d == ATTNC_FP32 ? "fp32" : "an unknown dtype";
}

/* Checks `t` against the expected dims (want[i] < 0: any size, reported back in got[i]). */
/* `kernel` and `what` name the tensor in messages ("NAME: WHAT: ..."); they are only formatted on a
 * failure, so that a launch that passes its checks formats nothing. */
attnc_status api_check_tensor(attnc_ctx *ctx, const char *kernel, const char *what, const attnc_tensor *t,
                              attnc_dtype dtype, int ndim, const int64_t *want, int64_t *got, size_t align)
{
    if (!t->data)
        return api_fail(ctx, ATTNC_ERR_USAGE, "%s: %s: data is NULL", kernel, what);
    if (t->dtype != dtype)
        return api_fail(ctx, ATTNC_ERR_USAGE, "%s: %s: dtype %s, expected %s", kernel, what, dtype_name(t->dtype),
                        dtype_name(dtype));
    if (t->ndim != ndim)
        return api_fail(ctx, ATTNC_ERR_USAGE, "%s: %s: %d dimensions, expected %d", kernel, what, t->ndim, ndim);
    int64_t stride = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        if (t->shape[i] <= 0 || (want[i] >= 0 && t->shape[i] != want[i]))
            return api_fail(ctx, ATTNC_ERR_USAGE, "%s: %s: dimension %d is %lld, expected %lld", kernel, what, i,
                            (long long)t->shape[i], (long long)want[i]);
        if (got)
            got[i] = t->shape[i];
        if (t->shape[i] > 1 && t->stride[i] != stride)
            return api_fail(ctx, ATTNC_ERR_USAGE, "%s: %s: stride of dimension %d is %lld, expected %lld (contiguous)",
                            kernel, what, i, (long long)t->stride[i], (long long)stride);
        stride *= t->shape[i];
    }
    if ((uintptr_t)t->data % align)
        return api_fail(ctx, ATTNC_ERR_USAGE, "%s: %s: data is not aligned to %zu bytes", kernel, what, align);
    return ATTNC_OK;
}

attnc_status api_check_input(attnc_ctx *ctx, const char *kernel, const char *what, const api_tensor *kt,
                             const attnc_tensor *t, int64_t *B, int64_t *T)
{
    int64_t want[4] = {*B, *T, kt->heads, kt->len}, got[4];
    int nd = kt->per_token ? (kt->len == 1 ? 3 : 4) : (kt->len == 1 ? 1 : 2);
    const int64_t *w = kt->per_token ? want : want + 2;
    attnc_status st = api_check_tensor(ctx, kernel, what, t, kt->dtype, nd, w, got, kt->align);
    if (st == ATTNC_OK && kt->per_token) {
        *B = got[0];
        *T = got[1];
    }
    return st;
}

attnc_status api_check_sequences(attnc_ctx *ctx, const char *kernel, bool document, int64_t B, int64_t T,
                                 const int32_t *cu_seqlens, int64_t nseq, int64_t *N)
{
    if (B < 0)
        return api_fail(ctx, ATTNC_ERR_USAGE, "%s: no per-token input fixes B and T", kernel);
    *N = B;
    if (cu_seqlens) {
        if (!document)
            return api_fail(ctx, ATTNC_ERR_USAGE, "%s: cu_seqlens given but the spec does not say 'document'", kernel);
        if (B != 1)
            return api_fail(ctx, ATTNC_ERR_USAGE, "%s: with cu_seqlens the batch must be 1, got %lld", kernel, (long long)B);
        if (nseq < 1 || nseq > 65535)
            return api_fail(ctx, ATTNC_ERR_USAGE, "%s: nseq %lld out of range 1..65535", kernel, (long long)nseq);
        *N = nseq;
    } else if (*N > 65535) {
        return api_fail(ctx, ATTNC_ERR_USAGE, "%s: batch %lld exceeds 65535", kernel, (long long)*N);
    }
    if (B * T > INT32_MAX)
        return api_fail(ctx, ATTNC_ERR_USAGE, "%s: %lld tokens exceed 2^31", kernel, (long long)(B * T));
    return ATTNC_OK;
}

/* The parameter block of the generated kernels (struct attnc_params in codegen/cuda.c's output). */
typedef struct launch_params {
    const void *in[CG_MAX_TENSORS];
    void *out;
    const float *h0, *z0, *m0;
    float *hT, *zT, *mT;
    const int *cu_seqlens;
    int seqlen, nseq;
    int phase;
    void *ws_s;
    float *ws_z, *ws_m;
    float *ws_gs, *ws_gz, *ws_gl;
    int group_chunks, group_fine;
    void *ws_w, *ws_kd, *ws_uh;
    float *ws_u, *ws_bl;
    void *save_img;
    int save_shift;
    void *save_uh;
    float *save_l2;
} launch_params;

/* Whether this launch of the linear part takes the materialized schedule: asked for, or (auto) when the
 * sequential one would launch fewer than min_ctas CTAs on sequences at least 8 chunks long.  Varlen
 * batches stay sequential: the output pass's grid would have to cover every sequence's chunk count,
 * which the host does not know without reading cu_seqlens. */
static bool use_materialized(const attnc_kernel *k, const attnc_forward_args *a, int64_t N, int64_t T,
                             unsigned vslices)
{
    if (!k->materialized || a->cu_seqlens || a->schedule == ATTNC_SCHEDULE_SEQUENTIAL)
        return false;
    if (a->schedule == ATTNC_SCHEDULE_MATERIALIZED)
        return true;
    return (int64_t)vslices * k->sh.heads_out * N < k->min_ctas && T >= 8 * (int64_t)k->chunk;
}

unsigned api_ctas_per_sm(unsigned threads, unsigned smem_bytes, int regs)
{
    unsigned warps = (threads + 31) / 32, r = regs > 0 ? (unsigned)regs : 255;
    if (warps == 0)
        return 1;
    unsigned by_smem = (228u * 1024) / (smem_bytes + 1024);
    unsigned by_regs = 65536 / (warps * ((r * 32 + 255) / 256 * 256));
    unsigned by_threads = 2048 / (warps * 32), n = by_smem;
    n = by_regs < n ? by_regs : n;
    n = by_threads < n ? by_threads : n;
    return n ? n : 1;
}

int64_t api_grouped_groups(int64_t ctas, int64_t slots, int64_t chunks, bool forced)
{
    if (ctas < 1 || chunks < 1)
        return 0;
    int64_t groups = slots / ctas;
    if (!forced) {   /* (fewer than 2 groups fit: the grid fills more than half of the slots) */
        if (chunks < 16)
            return 0;
        if (groups > chunks / 8)
            groups = chunks / 8;
        return groups < 2 ? 0 : groups;
    }
    return groups < 2 ? (chunks < 2 ? chunks : 2) : groups > chunks ? chunks : groups;
}

/* The grouped schedule's chunks per group for this launch, or 0 for another schedule (asked for, or
 * AUTO's choice by api_grouped_groups).  Sequences of one length only: the grid covers groups of the
 * longest, which the host does not know from cu_seqlens without reading them. */
static int64_t grouped_chunks(const attnc_kernel *k, const loaded_kernel *lk, const attnc_forward_args *a, int64_t N,
                              int64_t T)
{
    if (!k->grouped || lk->cg.kind != CG_KERNEL_LINEAR || a->cu_seqlens ||
        (a->schedule != ATTNC_SCHEDULE_AUTO && a->schedule != ATTNC_SCHEDULE_GROUPED))
        return 0;
    int64_t chunks = (T + k->chunk - 1) / k->chunk, ctas = (int64_t)lk->cg.grid_x * k->sh.heads_out * N;
    int64_t slots = (int64_t)(k->sm_count > 0 ? k->sm_count : 132) *
                    api_ctas_per_sm(lk->cg.threads, lk->cg.smem_bytes, lk->info.regs);
    int64_t groups = api_grouped_groups(ctas, slots, chunks, a->schedule == ATTNC_SCHEDULE_GROUPED);
    return groups ? (chunks + groups - 1) / groups : 0;
}

/* Chunks per record of the grouped schedule's phase 3 (attnc_linear_group) for phase 5's groups of *gc chunks:
 * *gc / R, R the CTAs of it an SM holds for each CTA of the walk (two against one where its lean layout fits
 * twice), so that phase 3 fills the SMs as phase 5 does; *gc is rounded up to a multiple of the result. */
static int64_t grouped_fine(const attnc_kernel *k, const loaded_kernel *lk, int64_t *gc)
{
    rt_error err;
    rt_function_attrs at, walk;
    if (!k->group_fn || !rt_function_get_attrs(k->group_fn, &at, &err) ||
        !rt_function_get_attrs(k->sched_fn[SCHED_GROUPED], &walk, &err))
        return *gc;
    int64_t r = api_ctas_per_sm(lk->cg.group.threads, lk->cg.group.smem_bytes, at.num_regs) /
                api_ctas_per_sm(lk->cg.threads, lk->cg.smem_bytes, walk.num_regs);
    r = r < 1 ? 1 : r > *gc ? *gc : r;
    int64_t fine = (*gc + r - 1) / r;
    *gc = fine * r;
    return fine;
}

/* Chunks a CTA of the split delta rule's parallel phases (6, 2) takes in turn: enough CTAs for about 8 waves
 * of one CTA per SM, no more (each CTA pays its set-up once and overlaps its next chunk's copies). */
static int64_t parallel_chunks(const attnc_kernel *k, const loaded_kernel *lk, int64_t N, int64_t T)
{
    int64_t chunks = (T + k->chunk - 1) / k->chunk, sms = k->sm_count > 0 ? k->sm_count : 132;
    int64_t per = chunks * N * k->sh.heads_out * lk->cg.grid_x / (8 * sms);
    return per < 1 ? 1 : per > chunks ? chunks : per;
}

api_workspace *api_workspace_new(void)
{
    api_workspace *w = calloc(1, sizeof *w);
    if (w)
        w->holders = 1;
    return w;
}

void api_workspace_release(api_workspace *w)
{
    if (!w || --w->holders)
        return;
    if (w->ptr)
        rt_mem_free(w->ptr);
    free(w);
}

attnc_status api_workspace_grow(attnc_ctx *ctx, api_workspace *w, size_t need, const char *kernel, const char *what)
{
    if (need <= w->bytes)
        return ATTNC_OK;
    rt_error err;
    if (w->ptr)
        rt_mem_free(w->ptr);
    w->ptr = 0;
    w->bytes = 0;
    if (!rt_mem_alloc(&w->ptr, need, &err))
        return api_fail(ctx, ATTNC_ERR_IO, "%s: the %s's workspace (%zu bytes): %s", kernel, what, need, err.msg);
    w->bytes = need;
    return ATTNC_OK;
}

attnc_status attnc_share_workspace(attnc_ctx *ctx, attnc_kernel *kernel, attnc_grad_kernel *grad)
{
    if (!kernel || !grad)
        return api_fail(ctx, ATTNC_ERR_USAGE, "attnc_share_workspace: kernel or grad is NULL");
    api_workspace **g = api_grad_workspace(grad);
    if (*g == kernel->ws)
        return ATTNC_OK;
    /* the larger allocation stays; the other holder lets its own go */
    api_workspace *keep = kernel->ws->bytes >= (*g)->bytes ? kernel->ws : *g;
    api_workspace *drop = keep == kernel->ws ? *g : kernel->ws;
    keep->holders++;
    kernel->ws = keep;
    *g = keep;
    api_workspace_release(drop);
    return ATTNC_OK;
}

/* The materialized schedule's workspace: every chunk slot's S_in (tile elements), z_in and m_in (fp32). */
static attnc_status workspace(attnc_ctx *ctx, attnc_kernel *k, int64_t N, int64_t T, launch_params *lp)
{
    size_t slots = (size_t)((N * T + k->chunk - 1) / k->chunk + N) * k->sh.heads_out;
    size_t s_bytes = (slots * k->sh.K * k->sh.V * k->elt_bytes + 255) / 256 * 256;
    size_t z_bytes = (slots * k->k_pad * 4 + 255) / 256 * 256;
    attnc_status st = api_workspace_grow(ctx, k->ws, s_bytes + z_bytes + slots * 4, k->name, "materialized schedule");
    if (st != ATTNC_OK)
        return st;
    lp->ws_s = (void *)(uintptr_t)k->ws->ptr;
    lp->ws_z = (float *)(uintptr_t)(k->ws->ptr + s_bytes);
    lp->ws_m = (float *)(uintptr_t)(k->ws->ptr + s_bytes + z_bytes);
    return ATTNC_OK;
}

/* The split delta rule's materialized schedule's workspace, per chunk slot: S_in^T's image [V][KP], -W and
 * Kd [C][KP], U_hat [V][C] (tile elements); U [C][V] and the state decay (fp32). */
static attnc_status workspace_split(attnc_ctx *ctx, attnc_kernel *k, int64_t N, int64_t T, launch_params *lp)
{
    size_t slots = (size_t)((N * T + k->chunk - 1) / k->chunk + N) * k->sh.heads_out, C = k->chunk, eb = k->elt_bytes;
    size_t sizes[6] = {slots * k->sh.V * k->k_pad * eb, slots * C * k->k_pad * eb, slots * C * k->k_pad * eb,
                       slots * k->sh.V * C * eb, slots * C * k->sh.V * 4, slots * 4};
    size_t off[6], total = 0;
    for (int i = 0; i < 6; i++) {
        off[i] = total;
        total += (sizes[i] + 255) / 256 * 256;
    }
    attnc_status st = api_workspace_grow(ctx, k->ws, total, k->name, "materialized schedule");
    if (st != ATTNC_OK)
        return st;
    lp->ws_s = (void *)(uintptr_t)(k->ws->ptr + off[0]);
    lp->ws_w = (void *)(uintptr_t)(k->ws->ptr + off[1]);
    lp->ws_kd = (void *)(uintptr_t)(k->ws->ptr + off[2]);
    lp->ws_uh = (void *)(uintptr_t)(k->ws->ptr + off[3]);
    lp->ws_u = (float *)(uintptr_t)(k->ws->ptr + off[4]);
    lp->ws_bl = (float *)(uintptr_t)(k->ws->ptr + off[5]);
    return ATTNC_OK;
}

/* The grouped schedule's workspace: every (sequence, group, head)'s record, S_g fp32 [K, V], z_g and the
 * log2 decay l_g fp32 [KP] each. */
static attnc_status workspace_grouped(attnc_ctx *ctx, attnc_kernel *k, int64_t N, int64_t groups, launch_params *lp)
{
    size_t slots = (size_t)N * groups * k->sh.heads_out;
    size_t s_bytes = (slots * k->sh.K * k->sh.V * 4 + 255) / 256 * 256, v_bytes = (slots * k->k_pad * 4 + 255) / 256 * 256;
    attnc_status st = api_workspace_grow(ctx, k->ws, s_bytes + 2 * v_bytes, k->name, "grouped schedule");
    if (st != ATTNC_OK)
        return st;
    lp->ws_gs = (float *)(uintptr_t)k->ws->ptr;
    lp->ws_gz = (float *)(uintptr_t)(k->ws->ptr + s_bytes);
    lp->ws_gl = (float *)(uintptr_t)(k->ws->ptr + s_bytes + v_bytes);
    return ATTNC_OK;
}

/* Whether a forward of k writes the states grad's backward reads (its images' layout in *sl): images of the
 * same kind (bf16, or mantissas with scales over the same slices) and shape, written at the chunks that start
 * one of the backward's (a multiple of the forward's chunk). */
static bool saves_for(const attnc_kernel *k, const attnc_grad_kernel *grad, int64_t N, api_saved_layout *sl)
{
    return k->saves != CG_SAVED_NONE && api_grad_saved_layout(grad, N, sl) &&
           sl->mantissa == (k->saves == CG_SAVED_MANTISSA) && (!sl->mantissa || sl->vs == k->save_vs) &&
           sl->heads_out == k->sh.heads_out && sl->kp == k->k_pad && sl->vp == k->sh.V && sl->chunk % k->chunk == 0 &&
           (sl->chunk & (sl->chunk - 1)) == 0 && k->bv % 8 == 0 && sl->nl2 == k->save_nl2;
}

/* Whether the materialized schedule of k saves states where asked: the delta rule's split walk
 * (attnc_linear_states_save) stores bf16 images as the sequential walk does; phase 1 of the additive schedule saves
 * none (the backward's walks of such specs split where this schedule runs, and then read no saved states). */
static bool split_saves(const attnc_kernel *k)
{
    for (size_t i = 0; i < k->nkernels; i++)
        if (k->k[i].cg.kind == CG_KERNEL_LINEAR)
            return k->k[i].cg.split[CG_SPLIT_STATES_SAVE].entry != NULL;
    return false;
}

size_t attnc_saved_states_bytes(const attnc_kernel *k, const attnc_grad_kernel *grad, int64_t B, int64_t T, int64_t nseq)
{
    api_saved_layout sl;
    if (!k || !grad || B < 1 || T < 0 || !saves_for(k, grad, nseq > 0 ? nseq : B, &sl) || !api_saved_l2_fits(&sl, B * T))
        return 0;
    return api_saved_bytes(&sl, api_saved_slots(&sl, B * T, nseq > 0 ? nseq : B), B * T);
}

attnc_status attnc_forward(attnc_ctx *ctx, attnc_kernel *k, const attnc_forward_args *a)
{
    if (!k || !a)
        return api_fail(ctx, ATTNC_ERR_USAGE, "kernel or args is NULL");
    if (a->ninputs != k->ntensors || (k->ntensors && !a->inputs))
        return api_fail(ctx, ATTNC_ERR_USAGE, "%s takes %u tensors, got %zu", k->name, k->ntensors, a->ninputs);
    attnc_status st;
    int64_t B = -1, T = -1, N;
    for (uint32_t i = 0; i < k->ntensors; i++)
        if ((st = api_check_input(ctx, k->name, k->tensors[i].label, &k->tensors[i], &a->inputs[i], &B, &T)) != ATTNC_OK)
            return st;
    if ((st = api_check_sequences(ctx, k->name, k->document, B, T, a->cu_seqlens, a->nseq, &N)) != ATTNC_OK)
        return st;
    int64_t wo[4] = {B, T, k->sh.heads_out, k->sh.V};
    if ((st = api_check_tensor(ctx, k->name, "out", &a->out, k->out_dtype, 4, wo, NULL, ir_dtype_bytes((ir_dtype)k->out_dtype) * 2)) != ATTNC_OK)
        return st;
    uint32_t Hs = k->sh.heads_state ? k->sh.heads_state : k->sh.heads_out;
    struct { const char *name; const attnc_tensor *t; int nd; int64_t dims[4]; bool allowed; } st_tensors[] = {
        {"h0", &a->h0, 4, {N, Hs, k->sh.K, k->sh.V}, k->state_in},
        {"z0", &a->z0, 3, {N, Hs, k->sh.K}, k->state_in && k->has_z},
        {"m0", &a->m0, 2, {N, Hs}, k->state_in && k->has_m},
        {"hT", &a->hT, 4, {N, Hs, k->sh.K, k->sh.V}, k->state_out},
        {"zT", &a->zT, 3, {N, Hs, k->sh.K}, k->state_out && k->has_z},
        {"mT", &a->mT, 2, {N, Hs}, k->state_out && k->has_m},
    };
    for (size_t i = 0; i < sizeof st_tensors / sizeof *st_tensors; i++) {
        if (!st_tensors[i].t->data)
            continue;
        if (!st_tensors[i].allowed)
            return api_fail(ctx, ATTNC_ERR_USAGE, "%s: %s given but the spec takes none", k->name, st_tensors[i].name);
        if ((st = api_check_tensor(ctx, k->name, st_tensors[i].name, st_tensors[i].t, ATTNC_FP32, st_tensors[i].nd, st_tensors[i].dims, NULL, 4)) != ATTNC_OK)
            return st;
    }
    launch_params lp = {0};
    for (uint32_t i = 0; i < k->ntensors; i++)
        lp.in[i] = a->inputs[i].data;
    lp.out = a->out.data;
    lp.h0 = a->h0.data;
    lp.z0 = a->z0.data;
    lp.m0 = a->m0.data;
    lp.hT = a->hT.data;
    lp.zT = a->zT.data;
    lp.mT = a->mT.data;
    lp.cu_seqlens = a->cu_seqlens;
    lp.seqlen = a->cu_seqlens ? 0 : (int)T;
    lp.nseq = (int)N;
    if (a->schedule < ATTNC_SCHEDULE_AUTO || a->schedule > ATTNC_SCHEDULE_GROUPED)
        return api_fail(ctx, ATTNC_ERR_USAGE, "%s: unknown schedule %d", k->name, (int)a->schedule);
    if (a->schedule == ATTNC_SCHEDULE_MATERIALIZED && (!k->materialized || a->cu_seqlens))
        return api_fail(ctx, ATTNC_ERR_USAGE, "%s: the materialized schedule needs a causal linear part and no cu_seqlens",
                        k->name);
    if (a->schedule == ATTNC_SCHEDULE_GROUPED && (!k->grouped || a->cu_seqlens))
        return api_fail(ctx, ATTNC_ERR_USAGE, "%s: the grouped schedule needs a causal linear part with an additive update "
                        "(no delta rule, no stabiliser) and no cu_seqlens", k->name);
    api_saved_layout sl;
    if (a->saved) {   /* training: the walk writes S_in's images for saved_for's backward */
        if (!a->saved_for || !saves_for(k, a->saved_for, N, &sl) || !api_saved_l2_fits(&sl, B * T))
            return api_fail(ctx, ATTNC_ERR_USAGE, "%s: saved states asked for, but %s", k->name,
                            a->saved_for ? "this forward saves none for that backward on this shape "
                                           "(attnc_saved_states_bytes is 0)"
                                         : "saved_for (the backward's handle) is NULL");
        if ((uintptr_t)a->saved % 16)
            return api_fail(ctx, ATTNC_ERR_USAGE, "%s: the saved states' buffer is not 16-byte aligned", k->name);
        if (a->schedule == ATTNC_SCHEDULE_MATERIALIZED && !split_saves(k))
            return api_fail(ctx, ATTNC_ERR_USAGE, "%s: the materialized schedule saves no states here (sequential or "
                            "grouped do; materialized only the delta rule's split walk)", k->name);
        lp.save_img = a->saved;
        while ((1u << lp.save_shift) < sl.chunk)   /* (chunks are powers of two: passes/grad.c, passes/tile.c) */
            lp.save_shift++;
        if (sl.uhat)   /* the delta rule's U_hat rows, after the images */
            lp.save_uh = (unsigned char *)a->saved + api_saved_images_bytes(&sl, api_saved_slots(&sl, B * T, N));
        if (sl.nl2)   /* the l2norm factors, after those */
            lp.save_l2 = (float *)(void *)((unsigned char *)a->saved + api_saved_l2_offset(&sl, api_saved_slots(&sl, B * T, N)));
    }
    /* One token per sequence (a decode step): the decode kernel replaces the chunk kernel, unless the
     * launch asks for a schedule of the chunk kernel or saves states (the chunk kernel's walk writes them). */
    bool decode = k->has_decode && T == 1 && !a->cu_seqlens && a->schedule == ATTNC_SCHEDULE_AUTO && !a->saved;
    tiers_take(k, false);
    rt_error err;
    for (size_t i = 0; i < k->nkernels; i++) {
        const loaded_kernel *lk = &k->k[i];
        if ((lk->cg.kind == CG_KERNEL_DECODE && !decode) || (lk->cg.kind == CG_KERNEL_LINEAR && decode))
            continue;
        if (!lk->fn && (st = load_lazy(ctx, k, i)) != ATTNC_OK)
            return st;
        /* Query tiles cover the longest sequence; with cu_seqlens that is bounded by all T tokens (the
         * host does not read cu_seqlens), and tiles past a sequence's end return at once. */
        unsigned gx = lk->cg.per_query_tile ? (unsigned)((T + lk->cg.tile_rows - 1) / lk->cg.tile_rows) : lk->cg.grid_x;
        /* phases: {0} sequential; {1, 2} materialized (state pass, then all chunks in parallel), the split
         * delta rule's {6, 7, 2} (every chunk's WY, the state walk, every chunk's outputs; 7 is the walk's own
         * kernel); {3, 5} grouped (every group's own state, then every group's outputs from its composed S_in) */
        int phases[3] = {0, 0, 0}, nphases = 1;
        int64_t gc = grouped_chunks(k, lk, a, N, T), fine = 0;
        if (gc) {   /* phase 3's records, fine chunks each (its kernel loaded first); phase 5's groups, gc */
            if (!k->sched_fn[SCHED_GROUPED] && (st = load_schedule(ctx, k, i, SCHED_GROUPED)) != ATTNC_OK)
                return st;
            fine = grouped_fine(k, lk, &gc);
            if ((st = workspace_grouped(ctx, k, N, (T + fine * k->chunk - 1) / (fine * k->chunk), &lp)) != ATTNC_OK)
                return st;
            lp.group_fine = (int)fine;
            phases[0] = 3;
            phases[1] = 5;
            nphases = 2;
        } else if (lk->cg.kind == CG_KERNEL_LINEAR && (!a->saved || split_saves(k)) && use_materialized(k, a, N, T, lk->cg.grid_x)) {
            bool split = lk->cg.split[CG_SPLIT_WY].entry != NULL;
            if ((st = split ? workspace_split(ctx, k, N, T, &lp) : workspace(ctx, k, N, T, &lp)) != ATTNC_OK)
                return st;
            phases[0] = split ? 6 : 1;
            phases[1] = split ? 7 : 2;
            phases[2] = 2;
            nphases = split ? 3 : 2;
            lp.group_chunks = split ? (int)parallel_chunks(k, lk, N, T) : 1;
        }
        rt_function *fn = lk->fn;
        bool ws = lk->ws;   /* the warp-specialised walk runs phase 0 */
        if (phases[0] != 0) {   /* another schedule */
            sched_unit s = phases[0] == 1 || phases[0] == 6 ? SCHED_MATERIALIZED : SCHED_GROUPED;
            if (!k->sched_fn[s] && (st = load_schedule(ctx, k, i, s)) != ATTNC_OK)
                return st;
            fn = k->sched_fn[s];
            ws = false;
        }
        for (int ph = 0; ph < nphases; ph++) {
            lp.phase = phases[ph];
            unsigned grid[3] = {gx, k->sh.heads_out, (unsigned)N};
            rt_function *f = fn;
            unsigned threads[3] = {lk->cg.threads, 1, 1}, smem = lk->cg.smem_bytes;
            if (lp.phase == 0 && ws) {
                threads[0] = lk->cg.ws.threads;
                smem = lk->cg.ws.smem_bytes;
            }
            if (lp.phase == 3 || lp.phase == 5)
                lp.group_chunks = (int)(lp.phase == 3 ? fine : gc);
            if (lp.phase == 3 && k->group_fn) {   /* its lean body, from the grouped unit */
                f = k->group_fn;
                threads[0] = lk->cg.group.threads;
                smem = lk->cg.group.smem_bytes;
            }
            /* the split delta rule's passes: kernels of their own (phase 6 is the unit's first, fn) */
            int pass = !lk->cg.split[CG_SPLIT_WY].entry ? -1 : lp.phase == 6 ? CG_SPLIT_WY : lp.phase == 7 ? CG_SPLIT_STATES
                                                                                              : CG_SPLIT_OUT;
            if (pass == CG_SPLIT_STATES && lp.save_img && k->split_fn[CG_SPLIT_STATES_SAVE])
                pass = CG_SPLIT_STATES_SAVE;   /* training: the walk that also writes the images */
            if (pass >= 0 && phases[0] == 6) {
                f = pass == CG_SPLIT_WY ? fn : k->split_fn[pass];
                threads[0] = lk->cg.split[pass].threads;
                smem = lk->cg.split[pass].smem_bytes;
            }
            if (lp.phase == 2 || lp.phase == 6) {
                grid[0] = gx * (unsigned)((T + k->chunk * lp.group_chunks - 1) / (k->chunk * lp.group_chunks));
            } else if (lp.phase == 7) {
                grid[0] = lk->cg.split[CG_SPLIT_STATES].grid_x;
            } else if (lp.phase >= 3) {
                grid[0] = gx * (unsigned)((T + k->chunk * lp.group_chunks - 1) / (k->chunk * lp.group_chunks));
            }
            /* The kernel's struct has in[ntensors] (at least 1): move the tail down to match. */
            unsigned char buf[sizeof lp];
            size_t nin = k->ntensors ? k->ntensors : 1, head = nin * sizeof(void *);
            memcpy(buf, &lp, head);
            memcpy(buf + head, &lp.out, sizeof lp - offsetof(launch_params, out));
            void *params[] = {buf};
            if (!rt_launch(f, grid, threads, smem, a->stream, params, &err))
                return api_fail(ctx, ATTNC_ERR_IO, "%s: %s", k->name, err.msg);
        }
    }
    return ATTNC_OK;
}
