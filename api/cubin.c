/* api/cubin.c: cubins for the JIT, from the disk cache or NVRTC (attnc.h, "the JIT").
 *
 * The cache key of a cubin is the SHA-256 of everything that changes the binary: attnc's version, NVRTC's
 * version, the arch, the NVRTC options (the quick compile's among them) and the source compiled.  Misses
 * compile at once, each on a thread of its own (api_get_cubins), or, for the tiered JIT (attnc_jit_mode),
 * optimised on a thread that outlives the call (api_tier): it touches nothing but its own record (never a
 * context, the driver or a kernel handle), stores what it compiled in the cache and then says it is done;
 * the handle that started it loads the cubins in its caller's thread.
 */
#define _POSIX_C_SOURCE 200809L   /* nanosleep */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_internal.h"
#include "rt.h"

/* NVRTC's options.  --split-compile=0: NVVM's optimisation runs on as many threads as the machine has
 * CPUs (the forward's chunk kernel and decode kernel at once); the instructions come out the same, and
 * NVRTC + ptxas to an sm_90a cubin took 0.57 s instead of 0.72 s for mamba2, 1.42 s instead of 1.58 s
 * for gla, 0.99 s instead of 1.14 s for gated_deltanet on a 2-core machine.  -lineinfo only where
 * ATTNC_LINEINFO=1 asks for it (ncu's per-source-line counts, bench/RESULTS.md): it changes no
 * instruction but makes the cubins 2.6-4x larger (gla 575 KB against 140 KB), which every cache hit
 * reads, checks and loads.  A quick compile (attnc_jit_mode) adds --Ofast-compile=mid: NVVM and ptxas
 * optimise less (CPU seconds for the sequential units of the benchmark's five specs, 0.28-0.50 against
 * 0.89-1.76 on a 2-core machine); its ptxas ignores setmaxnreg and says so on stderr, so the quick
 * compile defines ATTNC_QUICK_COMPILE, which leaves it out (codegen/support.cuh).  The options are part
 * of the cache key. */
int api_nvrtc_options(const char *opts[API_NVRTC_MAX_OPTS], bool quick)
{
    int n = 0;
    opts[n++] = "--ptxas-options=-v";
    opts[n++] = "-DNDEBUG";
    opts[n++] = "--split-compile=0";
    if (quick) {
        opts[n++] = "--Ofast-compile=mid";
        opts[n++] = "-DATTNC_QUICK_COMPILE=1";
    }
    const char *lineinfo = getenv("ATTNC_LINEINFO");
    if (lineinfo && strcmp(lineinfo, "1") == 0)
        opts[n++] = "-lineinfo";
    return n;
}

bool api_nvrtc_has_quick(void)
{
    rt_error err;
    int maj = 0, min = 0;
    return rt_nvrtc_version(&maj, &min, &err) && (maj > 12 || (maj == 12 && min >= 8));
}

attnc_status api_jit_mode(attnc_ctx *ctx, const attnc_compile_options *opts, attnc_jit_mode *mode)
{
    *mode = opts ? opts->jit : ATTNC_JIT_TIERED;
    if ((int)*mode < (int)ATTNC_JIT_TIERED || (int)*mode > (int)ATTNC_JIT_QUICK)
        return api_fail(ctx, ATTNC_ERR_USAGE, "unknown jit mode %d (tiered 0, optimized 1, quick 2)", (int)*mode);
    if (!api_nvrtc_has_quick())
        *mode = ATTNC_JIT_OPTIMIZED;
    return ATTNC_OK;
}

/* The cache key of the cubin of `src` for `arch` under NVRTC `nv` ("nvrtc MAJOR.MINOR") and the options. */
static void cubin_key(const char *nv, const char *src, const char *arch, bool quick, char key[65])
{
    char optstr[256] = "";
    const char *nvrtc_opts[API_NVRTC_MAX_OPTS];
    int nopts = api_nvrtc_options(nvrtc_opts, quick);
    for (int i = 0; i < nopts; i++) {
        strncat(optstr, nvrtc_opts[i], sizeof optstr - strlen(optstr) - 2);
        strcat(optstr, " ");
    }
    const char *parts[] = {"attnc " ATTNC_VERSION_STRING, nv, arch, optstr, src};
    rt_cache_key(parts, 5, key);
}

bool api_cubin_key(const char *src, const char *arch, bool quick, char key[65])
{
    rt_error err;
    int maj = 0, min = 0;
    if (!rt_nvrtc_version(&maj, &min, &err))
        return false;
    char nv[32];
    snprintf(nv, sizeof nv, "nvrtc %d.%d", maj, min);
    cubin_key(nv, src, arch, quick, key);
    return true;
}

/* One NVRTC compile of api_get_cubins, run on a thread of its own when several miss the cache. */
typedef struct cubin_job {
    const char *name, *src, *arch;
    const char *const *opts;
    int nopts;
    rt_nvrtc_out out;
    bool ok;
    rt_error err;
} cubin_job;

static void *cubin_job_run(void *arg)
{
    cubin_job *j = arg;
    j->ok = rt_nvrtc_compile(j->src, j->name, j->arch, true, j->opts, j->nopts, &j->out, &j->err);
    free(j->out.log);
    j->out.log = NULL;
    return NULL;
}

/* The jobs at once: every one but the last on a thread of its own (inline when none can start). */
static void cubin_jobs_run(cubin_job *jobs, size_t njobs)
{
    pthread_t threads[API_MAX_UNITS];
    bool started[API_MAX_UNITS] = {false};
    for (size_t j = 0; j + 1 < njobs; j++)
        started[j] = pthread_create(&threads[j], NULL, cubin_job_run, &jobs[j]) == 0;
    if (njobs)
        cubin_job_run(&jobs[njobs - 1]);
    for (size_t j = 0; j + 1 < njobs; j++) {
        if (started[j])
            pthread_join(threads[j], NULL);
        else
            cubin_job_run(&jobs[j]);
    }
}

attnc_status api_get_cubins(attnc_ctx *ctx, const char *name, size_t n, const char *const *srcs, const char *arch,
                            bool use_cache, api_compile how, void **images, size_t *sizes, bool *hits)
{
    rt_error err;
    int maj = 0, min = 0;
    for (size_t i = 0; i < n; i++) {
        images[i] = NULL;
        sizes[i] = 0;
        hits[i] = false;
    }
    if (n > API_MAX_UNITS)
        return api_fail(ctx, ATTNC_ERR_USAGE, "%s: %zu compile units, at most %d", name, n, API_MAX_UNITS);
    if (!rt_nvrtc_version(&maj, &min, &err))
        return api_fail(ctx, ATTNC_ERR_IO, "%s", err.msg);
    char dir[4096], keys[API_MAX_UNITS][65], nv[32];
    snprintf(nv, sizeof nv, "nvrtc %d.%d", maj, min);
    bool have_dir = use_cache && rt_cache_dir(dir, sizeof dir, &err);
    bool quick = how == API_COMPILE_QUICK;
    const char *nvrtc_opts[API_NVRTC_MAX_OPTS];
    int nopts = api_nvrtc_options(nvrtc_opts, quick);
    cubin_job jobs[API_MAX_UNITS];
    size_t njobs = 0, unit_of[API_MAX_UNITS];
    for (size_t i = 0; i < n; i++) {
        cubin_key(nv, srcs[i], arch, quick, keys[i]);
        if (have_dir && rt_cache_get(dir, keys[i], &images[i], &sizes[i], NULL)) {
            hits[i] = true;
            continue;
        }
        if (how == API_LOOKUP)
            continue;
        jobs[njobs] = (cubin_job){.name = name, .src = srcs[i], .arch = arch, .opts = nvrtc_opts, .nopts = nopts};
        unit_of[njobs++] = i;
    }
    cubin_jobs_run(jobs, njobs);
    attnc_status st = ATTNC_OK;
    for (size_t j = 0; j < njobs; j++) {
        size_t i = unit_of[j];
        if (!jobs[j].ok) {
            if (st == ATTNC_OK)
                st = api_fail(ctx, ATTNC_ERR_IO, "%s", jobs[j].err.msg);
            continue;
        }
        images[i] = jobs[j].out.image;
        sizes[i] = jobs[j].out.size;
        if (have_dir) /* a cache that cannot be written only costs time */
            (void)rt_cache_put(dir, keys[i], images[i], sizes[i], &err);
    }
    if (st != ATTNC_OK)
        for (size_t i = 0; i < n; i++) {
            free(images[i]);
            images[i] = NULL;
            sizes[i] = 0;
        }
    return st;
}

attnc_status api_get_cubin(attnc_ctx *ctx, const char *name, const char *src, const char *arch, bool use_cache,
                           api_compile how, void **image, size_t *size, bool *hit)
{
    return api_get_cubins(ctx, name, 1, &src, arch, use_cache, how, image, size, hit);
}


/* ---- a background optimised compile (the tiered JIT) ------------------------------------------------ */

struct api_tier {
    pthread_t thread;
    bool joined;
    api_tier *next_live;       /* the list of started ones not yet freed (live_tiers, under live_lock) */
    atomic_bool done;          /* set last by the thread (release); read before joining (acquire) */
    size_t n;
    char *srcs[API_MAX_UNITS];
    cubin_job jobs[API_MAX_UNITS];
    const char *opts[API_NVRTC_MAX_OPTS];
    char name[64], arch[16], dir[4096], keys[API_MAX_UNITS][65];
    bool have_dir;
    double compile_ms;
};

/* Every started compile not yet freed, waited for at exit: a process that ends without freeing its kernel
 * handles would otherwise run libnvrtc's static destructors while a thread of ours is inside NVRTC (and
 * what the thread compiles reaches the cache this way too).  The wait is for `done` (set after the thread's
 * last NVRTC call and cache write), not a join, so that it never races with a handle's own join; the lock
 * guards the list only. */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static api_tier *live_tiers;
static pthread_once_t live_once = PTHREAD_ONCE_INIT;

static void wait_live_tiers(void)
{
    pthread_mutex_lock(&live_lock);
    for (api_tier *t = live_tiers; t; t = t->next_live)
        while (!atomic_load_explicit(&t->done, memory_order_acquire))
            nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    pthread_mutex_unlock(&live_lock);
}

static void wait_live_tiers_at_exit(void)
{
    (void)atexit(wait_live_tiers);   /* (when it cannot be registered, exit goes on as before) */
}

static void *tier_run(void *arg)
{
    api_tier *t = arg;
    double t0 = api_seconds();
    cubin_jobs_run(t->jobs, t->n);
    t->compile_ms = (api_seconds() - t0) * 1e3;
    rt_error err;
    for (size_t j = 0; j < t->n; j++)
        if (t->jobs[j].ok && t->have_dir)   /* a cache that cannot be written only costs time */
            (void)rt_cache_put(t->dir, t->keys[j], t->jobs[j].out.image, t->jobs[j].out.size, &err);
    atomic_store_explicit(&t->done, true, memory_order_release);
    return NULL;
}

static void tier_release(api_tier *t)
{
    for (size_t j = 0; j < t->n; j++) {
        free(t->srcs[j]);
        free(t->jobs[j].out.image);
    }
    free(t);
}

api_tier *api_tier_start(const char *name, const char *arch, bool use_cache, size_t n, const char *const *srcs)
{
    rt_error err;
    int maj = 0, min = 0;
    api_tier *t = n <= API_MAX_UNITS ? calloc(1, sizeof *t) : NULL;
    if (!t || !rt_nvrtc_version(&maj, &min, &err)) {
        free(t);
        return NULL;
    }
    char nv[32];
    snprintf(nv, sizeof nv, "nvrtc %d.%d", maj, min);
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(t->arch, sizeof t->arch, "%s", arch);
    t->have_dir = use_cache && rt_cache_dir(t->dir, sizeof t->dir, &err);
    int nopts = api_nvrtc_options(t->opts, false);
    atomic_init(&t->done, false);
    bool ok = true;
    for (size_t j = 0; j < n; j++, t->n++) {
        size_t len = strlen(srcs[j]) + 1;
        ok &= (t->srcs[j] = malloc(len)) != NULL;
        if (t->srcs[j])
            memcpy(t->srcs[j], srcs[j], len);
        cubin_key(nv, srcs[j], arch, false, t->keys[j]);
        t->jobs[j] = (cubin_job){.name = t->name, .src = t->srcs[j], .arch = t->arch, .opts = t->opts, .nopts = nopts};
    }
    pthread_once(&live_once, wait_live_tiers_at_exit);
    pthread_mutex_lock(&live_lock);
    bool started = ok && pthread_create(&t->thread, NULL, tier_run, t) == 0;
    if (started) {
        t->next_live = live_tiers;
        live_tiers = t;
    }
    pthread_mutex_unlock(&live_lock);
    if (!started) {
        tier_release(t);
        return NULL;
    }
    return t;
}

bool api_tier_done(api_tier *t)
{
    return atomic_load_explicit(&t->done, memory_order_acquire);
}

void api_tier_join(api_tier *t)
{
    if (!t->joined)
        pthread_join(t->thread, NULL);
    t->joined = true;
}

const void *api_tier_cubin(const api_tier *t, size_t j, size_t *size, const char **why)
{
    *size = t->jobs[j].ok ? t->jobs[j].out.size : 0;
    *why = t->jobs[j].ok ? NULL : t->jobs[j].err.msg;
    return t->jobs[j].ok ? t->jobs[j].out.image : NULL;
}

double api_tier_compile_ms(const api_tier *t)
{
    return t->compile_ms;
}

void api_tier_free(api_tier *t)
{
    if (!t)
        return;
    api_tier_join(t);
    pthread_mutex_lock(&live_lock);
    for (api_tier **p = &live_tiers; *p; p = &(*p)->next_live)
        if (*p == t) {
            *p = t->next_live;
            break;
        }
    pthread_mutex_unlock(&live_lock);
    tier_release(t);
}

attnc_status api_jit_cubins(attnc_ctx *ctx, const char *name, size_t n, const char *const *srcs, const char *arch,
                            bool use_cache, attnc_jit_mode jit, void **images, size_t *sizes, bool *hits, bool *quick,
                            api_tier **tier)
{
    *tier = NULL;
    for (size_t i = 0; i < n; i++)
        quick[i] = jit == ATTNC_JIT_QUICK;
    if (jit != ATTNC_JIT_TIERED)
        return api_get_cubins(ctx, name, n, srcs, arch, use_cache,
                              jit == ATTNC_JIT_QUICK ? API_COMPILE_QUICK : API_COMPILE_OPTIMIZED, images, sizes, hits);
    attnc_status st = api_get_cubins(ctx, name, n, srcs, arch, use_cache, API_LOOKUP, images, sizes, hits);
    const char *miss[API_MAX_UNITS];
    size_t miss_of[API_MAX_UNITS], nmiss = 0;
    for (size_t i = 0; st == ATTNC_OK && i < n; i++)
        if (!hits[i]) {
            miss_of[nmiss] = i;
            miss[nmiss++] = srcs[i];
        }
    if (st != ATTNC_OK || nmiss == 0)
        return st;
    /* A forward's few units (up to QUICK_FIRST_UNITS): the optimised compile starts first; on the H200 host
     * (16 CPUs, the benchmark's five specs, two rounds, bench/RESULTS.md twenty-third session) the first call
     * took 0.40-0.58 s this way against 0.30-0.47 s with the quick compile alone first, and the optimised
     * kernels were in after 0.93-2.28 s against 1.22-2.41 s.  More units (the backward's): the quick ones
     * first, since their optimised compiles at once would take the CPUs from them (twenty-fourth session). */
    enum { QUICK_FIRST_UNITS = 3 };
    bool quick_first = nmiss > QUICK_FIRST_UNITS;
    if (!quick_first)
        *tier = api_tier_start(name, arch, use_cache, nmiss, miss);
    void *quick_images[API_MAX_UNITS];
    size_t quick_sizes[API_MAX_UNITS];
    bool quick_hits[API_MAX_UNITS];
    st = api_get_cubins(ctx, name, nmiss, miss, arch, false, API_COMPILE_QUICK, quick_images, quick_sizes, quick_hits);
    if (quick_first && st == ATTNC_OK)
        *tier = api_tier_start(name, arch, use_cache, nmiss, miss);
    if (st != ATTNC_OK) {
        api_tier_free(*tier);   /* (joins: the optimised cubins still reach the cache) */
        *tier = NULL;
        for (size_t i = 0; i < n; i++) {
            free(images[i]);
            images[i] = NULL;
            sizes[i] = 0;
        }
        return st;
    }
    for (size_t j = 0; j < nmiss; j++) {
        images[miss_of[j]] = quick_images[j];
        sizes[miss_of[j]] = quick_sizes[j];
        quick[miss_of[j]] = true;
    }
    return ATTNC_OK;
}
