/* tests/unit/test_units.c: the forward's compile units (api/kernel.c): each kernel of a spec compiled as a
 * unit of its own (api_unit_source), the misses of several at once (api_get_cubins), each cached under its
 * own key and read back, a damaged entry of one unit rebuilt while the others stay hits.  No GPU needed;
 * skipped without NVRTC.  The spec is based_hybrid (tests/specs): a chunk kernel, a decode kernel and a
 * softmax kernel. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, setenv, truncate, opendir */
#include "test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api_internal.h"
#include "codegen.h"
#include "cuda_bwd.h"

#define NUNITS 3
static const char *const entries[NUNITS] = {"attnc_linear", "attnc_decode", "attnc_softmax"};
static const cg_kernel_kind kinds[NUNITS] = {CG_KERNEL_LINEAR, CG_KERNEL_DECODE, CG_KERNEL_SOFTMAX};

typedef struct fixture {
    char root[64];
    char dir[4096];
    attnc_ctx *ctx;
    attnc_spec *spec;
    const char *source;       /* the whole forward source (every kernel) */
    char *units[NUNITS];      /* each kernel's unit */
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    snprintf(fx->root, sizeof fx->root, "/tmp/attnc-units-test-XXXXXX");
    if (!mkdtemp(fx->root)) {
        free(fx);
        return -1;
    }
    setenv("ATTNC_CACHE_DIR", fx->root, 1);
    rt_error err = {{0}};
    attnc_blob blob;
    if (!rt_cache_dir(fx->dir, sizeof fx->dir, &err) || attnc_ctx_new(&fx->ctx) != ATTNC_OK ||
        attnc_spec_from_file(fx->ctx, ATTNC_SOURCE_DIR "/tests/specs/based_hybrid.attn", &fx->spec) != ATTNC_OK ||
        attnc_emit(fx->ctx, fx->spec, ATTNC_EMIT_CUDA, NULL, &blob) != ATTNC_OK)
        return -1;
    fx->source = blob.data;
    for (int i = 0; i < NUNITS; i++)
        if (!(fx->units[i] = api_unit_source(fx->source, (int)kinds[i], 0, false)))
            return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    for (int i = 0; i < NUNITS; i++)
        free(fx->units[i]);
    attnc_spec_free(fx->spec);
    attnc_ctx_free(fx->ctx);
    remove_tree(fx->root);
    unsetenv("ATTNC_CACHE_DIR");
    free(fx);
    return 0;
}

static bool contains(const void *image, size_t size, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i + n <= size; i++)
        if (memcmp((const char *)image + i, s, n) == 0)
            return true;
    return false;
}

static void get_all(fixture *fx, void *images[NUNITS], size_t sizes[NUNITS], bool hits[NUNITS])
{
    attnc_status st = api_get_cubins(fx->ctx, "based_hybrid", NUNITS, (const char *const *)fx->units, "sm_80", true,
                                     API_COMPILE_OPTIMIZED, images, sizes, hits);
    if (st != ATTNC_OK)
        print_message("%s\n", attnc_errmsg(fx->ctx));
    assert_int_equal(st, ATTNC_OK);
}

static void free_all(void *images[NUNITS])
{
    for (int i = 0; i < NUNITS; i++)
        free(images[i]);
}

static void entry_path(const fixture *fx, const char *src, char *out, size_t cap)
{
    char key[65];
    assert_true(api_cubin_key(src, "sm_80", false, key));
    snprintf(out, cap, "%s/%s.bin", fx->dir, key);
}

static void units_cached_apart_and_rebuilt(void **state)
{
    fixture *fx = *state;
    skip_without_nvrtc();
    /* every unit defines its own kernel only, and has a key of its own (and not the whole source's) */
    for (int i = 0; i < NUNITS; i++) {
        assert_non_null(strstr(fx->units[i], entries[i]));
        char key[65], other[65];
        assert_true(api_cubin_key(fx->units[i], "sm_80", false, key));
        assert_true(api_cubin_key(fx->source, "sm_80", false, other));
        assert_string_not_equal(key, other);
        for (int j = 0; j < i; j++) {
            assert_true(api_cubin_key(fx->units[j], "sm_80", false, other));
            assert_string_not_equal(key, other);
        }
    }

    /* an empty cache: all three compiled (at once), each a cubin with its entry only, each stored */
    void *first[NUNITS], *images[NUNITS];
    size_t first_sizes[NUNITS], sizes[NUNITS];
    bool hits[NUNITS];
    get_all(fx, first, first_sizes, hits);
    for (int i = 0; i < NUNITS; i++) {
        assert_false(hits[i]);
        assert_non_null(first[i]);
        assert_true(first_sizes[i] > 4 && memcmp(first[i], "\177ELF", 4) == 0);
        for (int j = 0; j < NUNITS; j++)
            assert_int_equal(contains(first[i], first_sizes[i], entries[j]), i == j);
        char path[4200];
        entry_path(fx, fx->units[i], path, sizeof path);
        assert_int_equal(access(path, F_OK), 0);
    }

    /* read back: all hits, the same bytes */
    get_all(fx, images, sizes, hits);
    for (int i = 0; i < NUNITS; i++) {
        assert_true(hits[i]);
        assert_int_equal(sizes[i], first_sizes[i]);
        assert_memory_equal(images[i], first[i], sizes[i]);
    }
    free_all(images);

    /* the decode unit's entry with a flipped byte, the softmax unit's cut short: those two are rebuilt (the
     * same bytes), the chunk kernel's stays a hit; then all three are hits again */
    char path[4200];
    entry_path(fx, fx->units[1], path, sizeof path);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, (long)(24 + first_sizes[1] / 2), SEEK_SET), 0);
    int c = fgetc(f);
    assert_int_equal(fseek(f, (long)(24 + first_sizes[1] / 2), SEEK_SET), 0);
    fputc(c ^ 0x40, f);
    fclose(f);
    entry_path(fx, fx->units[2], path, sizeof path);
    assert_int_equal(truncate(path, (off_t)(24 + first_sizes[2] - 100)), 0);
    get_all(fx, images, sizes, hits);
    assert_true(hits[0]);
    assert_false(hits[1]);
    assert_false(hits[2]);
    for (int i = 0; i < NUNITS; i++) {
        assert_int_equal(sizes[i], first_sizes[i]);
        assert_memory_equal(images[i], first[i], sizes[i]);
    }
    free_all(images);
    get_all(fx, images, sizes, hits);
    for (int i = 0; i < NUNITS; i++) {
        assert_true(hits[i]);
        assert_memory_equal(images[i], first[i], sizes[i]);
    }
    free_all(images);
    free_all(first);
}

/* The chunk kernel's schedules as units of their own (attnc_kernel_new compiles the sequential and grouped
 * walks, the launcher the materialized one at its first launch): keys apart, each unit names its phases, and each has fewer
 * instructions than the unit of every phase (the other schedules' code is not compiled). */
static void schedule_units_hold_their_phases_only(void **state)
{
    fixture *fx = *state;
    skip_without_nvrtc();
    attnc_spec *spec = NULL;
    attnc_blob blob;
    assert_int_equal(attnc_spec_from_file(fx->ctx, ATTNC_SOURCE_DIR "/specs/mamba2.attn", &spec), ATTNC_OK);
    assert_int_equal(attnc_emit(fx->ctx, spec, ATTNC_EMIT_CUDA, NULL, &blob), ATTNC_OK);
    const unsigned masks[4] = {0, CG_PHASES_SEQUENTIAL, CG_PHASES_MATERIALIZED, CG_PHASES_GROUPED};
    char *units[4], keys[4][65];
    void *images[4];
    size_t sizes[4];
    bool hits[4];
    for (int i = 0; i < 4; i++) {
        assert_non_null(units[i] = api_unit_source(blob.data, CG_KERNEL_LINEAR, masks[i], false));
        char want[48];
        snprintf(want, sizeof want, "#define ATTNC_PHASES 0x%02x\n", masks[i]);
        assert_int_equal(strstr(units[i], want) == units[i] + strlen("#define ATTNC_ONLY 1\n"), masks[i] != 0);
        assert_true(api_cubin_key(units[i], "sm_80", false, keys[i]));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(keys[i], keys[j]);
    }
    assert_int_equal(api_get_cubins(fx->ctx, "mamba2", 4, (const char *const *)units, "sm_80", false,
                                    API_COMPILE_OPTIMIZED, images, sizes, hits),
                     ATTNC_OK);
    for (int i = 1; i < 4; i++)
        assert_true(sizes[i] < sizes[0]);
    for (int i = 0; i < 4; i++) {
        free(images[i]);
        free(units[i]);
    }
    attnc_spec_free(spec);
}

/* The delta rule's materialized unit holds the split schedule's state walk as a second kernel; its sequential
 * unit does not, nor does the materialized unit of a spec without the delta rule. */
static void split_state_walk_is_in_the_delta_rules_materialized_unit(void **state)
{
    fixture *fx = *state;
    skip_without_nvrtc();
    const struct { const char *spec; unsigned mask; bool walk; } cases[] = {
        {"deltanet", CG_PHASES_MATERIALIZED, true},
        {"deltanet", CG_PHASES_SEQUENTIAL, false},
        {"mamba2", CG_PHASES_MATERIALIZED, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[512];
        snprintf(path, sizeof path, ATTNC_SOURCE_DIR "/specs/%s.attn", cases[i].spec);
        attnc_spec *spec = NULL;
        attnc_blob blob;
        assert_int_equal(attnc_spec_from_file(fx->ctx, path, &spec), ATTNC_OK);
        assert_int_equal(attnc_emit(fx->ctx, spec, ATTNC_EMIT_CUDA, NULL, &blob), ATTNC_OK);
        char *unit = api_unit_source(blob.data, CG_KERNEL_LINEAR, cases[i].mask, false);
        assert_non_null(unit);
        void *image = NULL;
        size_t size = 0;
        bool hit = false;
        assert_int_equal(api_get_cubins(fx->ctx, cases[i].spec, 1, (const char *const *)&unit, "sm_80", false,
                                        API_COMPILE_OPTIMIZED, &image, &size, &hit),
                         ATTNC_OK);
        assert_true(contains(image, size, "attnc_linear"));
        assert_int_equal(contains(image, size, "attnc_linear_states"), cases[i].walk);
        free(image);
        free(unit);
        attnc_spec_free(spec);
    }
}

/* A unit that does not compile fails the whole call, with NVRTC's message, and hands out no image. */
static void a_failing_unit_fails_the_call(void **state)
{
    fixture *fx = *state;
    skip_without_nvrtc();
    const char *srcs[2] = {"extern \"C\" __global__ void ok(float *p) { p[0] = 1.f; }\n",
                           "extern \"C\" __global__ void bad(float *p) { p[0] = undeclared; }\n"};
    void *images[2] = {(void *)1, (void *)1};
    size_t sizes[2];
    bool hits[2];
    assert_int_equal(api_get_cubins(fx->ctx, "broken", 2, srcs, "sm_80", false, API_COMPILE_OPTIMIZED, images, sizes, hits), ATTNC_ERR_IO);
    assert_null(images[0]);
    assert_null(images[1]);
    assert_non_null(strstr(attnc_errmsg(fx->ctx), "undeclared"));
}

/* A directory of the fixture's for the cache of one test (so that another test's entries are not hits);
 * the test sets ATTNC_CACHE_DIR back to fx->root at its end. */
static void use_cache_subdir(fixture *fx, const char *sub)
{
    char dir[128];
    snprintf(dir, sizeof dir, "%s/%s", fx->root, sub);
    assert_int_equal(mkdir(dir, 0700), 0);
    setenv("ATTNC_CACHE_DIR", dir, 1);
}

/* The tiered JIT's steps (attnc_jit_mode): a lookup compiles nothing and fails nothing on a miss; a quick
 * compile (NVRTC --Ofast-compile, where NVRTC has it) gives another cubin under another key, which a lookup
 * of the optimised one does not find; the optimised compile is then found.  Skipped before NVRTC 12.8. */
static void quick_and_optimised_units_are_cached_apart(void **state)
{
    fixture *fx = *state;
    skip_without_nvrtc();
    if (!api_nvrtc_has_quick())
        skip();
    const char *unit = fx->units[0];   /* the chunk kernel */
    char key[65], quick_key[65];
    assert_true(api_cubin_key(unit, "sm_80", false, key));
    assert_true(api_cubin_key(unit, "sm_80", true, quick_key));
    assert_string_not_equal(key, quick_key);
    void *image = (void *)1, *quick = NULL, *optimised = NULL;
    size_t size = 1, quick_size = 0, optimised_size = 0;
    bool hit = true;
    /* the fixture's directory may hold the optimised entry from another test: a directory of its own */
    use_cache_subdir(fx, "quick");
    assert_int_equal(api_get_cubin(fx->ctx, "u", unit, "sm_80", true, API_LOOKUP, &image, &size, &hit), ATTNC_OK);
    assert_null(image);
    assert_int_equal(size, 0);
    assert_false(hit);
    assert_int_equal(api_get_cubin(fx->ctx, "u", unit, "sm_80", true, API_COMPILE_QUICK, &quick, &quick_size, &hit),
                     ATTNC_OK);
    assert_false(hit);
    assert_true(quick_size > 4 && memcmp(quick, "\177ELF", 4) == 0 && contains(quick, quick_size, "attnc_linear"));
    assert_int_equal(api_get_cubin(fx->ctx, "u", unit, "sm_80", true, API_LOOKUP, &image, &size, &hit), ATTNC_OK);
    assert_null(image);
    assert_int_equal(api_get_cubin(fx->ctx, "u", unit, "sm_80", true, API_COMPILE_QUICK, &image, &size, &hit), ATTNC_OK);
    assert_true(hit);
    assert_true(size == quick_size && memcmp(image, quick, size) == 0);
    free(image);
    assert_int_equal(api_get_cubin(fx->ctx, "u", unit, "sm_80", true, API_COMPILE_OPTIMIZED, &optimised, &optimised_size,
                                   &hit),
                     ATTNC_OK);
    assert_false(hit);
    assert_false(optimised_size == quick_size && memcmp(optimised, quick, quick_size) == 0);
    assert_int_equal(api_get_cubin(fx->ctx, "u", unit, "sm_80", true, API_LOOKUP, &image, &size, &hit), ATTNC_OK);
    assert_true(hit);
    assert_true(size == optimised_size && memcmp(image, optimised, size) == 0);
    free(image);
    free(quick);
    free(optimised);
    setenv("ATTNC_CACHE_DIR", fx->root, 1);
}

/* Captures what the quick compile of src for sm_90a writes on the process's stderr (NVRTC's ptxas writes
 * some of its notes there itself) into out; the cubin must come back. */
static void quick_compile_stderr(fixture *fx, const char *src, char *out, size_t cap)
{
    char path[128];
    snprintf(path, sizeof path, "%s/stderr.txt", fx->root);
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    close(fd);
    void *image = NULL;
    size_t size = 0;
    bool hit = true;
    attnc_status st = api_get_cubin(fx->ctx, "ws", src, "sm_90a", false, API_COMPILE_QUICK, &image, &size, &hit);
    fflush(stderr);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    assert_int_equal(st, ATTNC_OK);
    assert_true(size > 4 && memcmp(image, "\177ELF", 4) == 0);
    free(image);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = 0;
    fclose(f);
}

/* The quick compile of the warp-specialised walk (sm_90a) leaves setmaxnreg out (ATTNC_QUICK_COMPILE):
 * NVRTC's ptxas under --Ofast-compile ignored it and said so on stderr at every first call.  The control,
 * the same unit with setmaxnreg put back, shows that this NVRTC does say so (skipped where it does not). */
static void the_quick_compile_of_the_warp_specialised_walk_is_silent(void **state)
{
    fixture *fx = *state;
    skip_without_nvrtc();
    if (!api_nvrtc_has_quick())
        skip();
    attnc_spec *spec = NULL;
    attnc_blob blob;
    assert_int_equal(attnc_spec_from_file(fx->ctx, ATTNC_SOURCE_DIR "/specs/lightning.attn", &spec), ATTNC_OK);
    assert_int_equal(attnc_emit(fx->ctx, spec, ATTNC_EMIT_CUDA, NULL, &blob), ATTNC_OK);
    char *unit = api_unit_source(blob.data, CG_KERNEL_LINEAR, CG_PHASES_SEQUENTIAL, true);
    assert_non_null(unit);
    assert_non_null(strstr(unit, "setmaxnreg"));
    static char said[1 << 16];
    quick_compile_stderr(fx, unit, said, sizeof said);
    assert_null(strstr(said, "setmaxnreg"));
    size_t len = strlen(unit);
    char *control = malloc(len + 64);
    assert_non_null(control);
    snprintf(control, len + 64, "#undef ATTNC_QUICK_COMPILE\n%s", unit);
    quick_compile_stderr(fx, control, said, sizeof said);
    free(control);
    free(unit);
    attnc_spec_free(spec);
    if (!strstr(said, "setmaxnreg")) {
        print_message("skipping: this NVRTC's quick compile says nothing of setmaxnreg\n");
        skip();
    }
}

/* The tiered JIT's background compile (api_tier): done in time, its cubin the optimised compile's, stored in
 * the cache; a unit that does not compile gives no cubin and NVRTC's message. */
static void a_background_compile_reaches_the_cache(void **state)
{
    fixture *fx = *state;
    skip_without_nvrtc();
    use_cache_subdir(fx, "tier");
    const char *srcs[2] = {fx->units[1],   /* the decode kernel: the smallest unit */
                           "extern \"C\" __global__ void bad(float *p) { p[0] = undeclared; }\n"};
    api_tier *t = api_tier_start("tier", "sm_80", true, 2, srcs);
    assert_non_null(t);
    api_tier_join(t);
    assert_true(api_tier_done(t));
    size_t size = 0;
    const char *why = NULL;
    const void *image = api_tier_cubin(t, 0, &size, &why);
    assert_non_null(image);
    assert_null(why);
    void *cached = NULL;
    size_t cached_size = 0;
    bool hit = false;
    assert_int_equal(api_get_cubin(fx->ctx, "u", srcs[0], "sm_80", true, API_LOOKUP, &cached, &cached_size, &hit),
                     ATTNC_OK);
    assert_true(hit && cached_size == size && memcmp(cached, image, size) == 0);
    free(cached);
    assert_null(api_tier_cubin(t, 1, &size, &why));
    assert_non_null(why);
    assert_non_null(strstr(why, "undeclared"));
    api_tier_free(t);
    setenv("ATTNC_CACHE_DIR", fx->root, 1);
}

/* api_jit_cubins, the one place the JIT modes get their cubins: TIERED from an empty cache gives the quick
 * cubin and the optimised compile started for it, which reaches the cache; TIERED then hits, with nothing
 * started; OPTIMIZED hits the same entry; QUICK gives the quick cubin and starts nothing. */
static void the_jit_modes_get_their_cubins(void **state)
{
    fixture *fx = *state;
    skip_without_nvrtc();
    if (!api_nvrtc_has_quick())
        skip();
    use_cache_subdir(fx, "modes");
    const char *src = fx->units[1];   /* the decode kernel: the smallest unit */
    void *image = NULL, *quick_image = NULL;
    size_t size = 0, quick_size = 0;
    bool hit = true, quick = false, quick_hit;
    api_tier *tier = NULL;
    assert_int_equal(api_get_cubin(fx->ctx, "u", src, "sm_80", false, API_COMPILE_QUICK, &quick_image, &quick_size,
                                   &quick_hit),
                     ATTNC_OK);
    assert_int_equal(api_jit_cubins(fx->ctx, "u", 1, &src, "sm_80", true, ATTNC_JIT_TIERED, &image, &size, &hit, &quick,
                                    &tier),
                     ATTNC_OK);
    assert_true(quick && !hit && tier);
    assert_true(size == quick_size && memcmp(image, quick_image, size) == 0);
    free(image);
    api_tier_free(tier);
    assert_int_equal(api_jit_cubins(fx->ctx, "u", 1, &src, "sm_80", true, ATTNC_JIT_TIERED, &image, &size, &hit, &quick,
                                    &tier),
                     ATTNC_OK);
    assert_true(!quick && hit && !tier);
    void *optimised = image;
    size_t optimised_size = size;
    assert_int_equal(api_jit_cubins(fx->ctx, "u", 1, &src, "sm_80", true, ATTNC_JIT_OPTIMIZED, &image, &size, &hit,
                                    &quick, &tier),
                     ATTNC_OK);
    assert_true(!quick && hit && !tier && size == optimised_size && memcmp(image, optimised, size) == 0);
    free(image);
    free(optimised);
    assert_int_equal(api_jit_cubins(fx->ctx, "u", 1, &src, "sm_80", true, ATTNC_JIT_QUICK, &image, &size, &hit, &quick,
                                    &tier),
                     ATTNC_OK);
    assert_true(quick && !tier && size == quick_size && memcmp(image, quick_image, size) == 0);
    free(image);
    free(quick_image);
    setenv("ATTNC_CACHE_DIR", fx->root, 1);
}

/* A process that exits while a background compile runs (a kernel handle never freed) waits for it: the
 * cubin reaches the cache and the exit is clean.  The child's tier stays reachable (a global), as a
 * program's handle would. */
static api_tier *child_tier;
static void a_background_compile_outlives_exit(void **state)
{
    fixture *fx = *state;
    skip_without_nvrtc();
    use_cache_subdir(fx, "exit");
    const char *src = fx->units[0];   /* the chunk kernel: a compile of a second or more */
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        child_tier = api_tier_start("exit", "sm_80", true, 1, &src);
        exit(child_tier ? 0 : 3);   /* at once: the compile has only started */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    void *cached = NULL;
    size_t size = 0;
    bool hit = false;
    assert_int_equal(api_get_cubin(fx->ctx, "u", src, "sm_80", true, API_LOOKUP, &cached, &size, &hit), ATTNC_OK);
    assert_true(hit);
    free(cached);
    setenv("ATTNC_CACHE_DIR", fx->root, 1);
}

/* Whether a cubin defines kernel `entry` (its name as a whole string of the ELF's: "attnc_bwdp_states"
 * is not found in "attnc_bwdp_states_narrow"). */
static bool defines(const void *image, size_t size, const char *entry)
{
    size_t n = strlen(entry) + 1;
    for (size_t i = 0; i + n <= size; i++)
        if (memcmp((const char *)image + i, entry, n) == 0 && (i == 0 || ((const char *)image)[i - 1] == 0 ||
                                                              ((const char *)image)[i - 1] == '.'))
            return true;
    return false;
}

/* The backward's compile units (api/backward.c): one, the whole text, on a host of few CPUs; on one of many,
 * a unit per large kernel and one for the small ones, the kernels' masks disjoint and together the plan's,
 * and each unit's cubin defines its kernels and no other.  gva_gated_deltanet has every kind of the delta
 * rule's parallel schedule (its WY kernels, the walks wide and narrow, the chunk kernel, the small ones); the
 * narrow reverse walk's unit also holds its warp-specialised form, which an sm_80 cubin does not define. */
static void backward_units_define_their_kernels_only(void **state)
{
    fixture *fx = *state;
    skip_without_nvrtc();
    attnc_spec *spec = NULL;
    attnc_blob whole;
    assert_int_equal(attnc_spec_from_file(fx->ctx, ATTNC_SOURCE_DIR "/tests/specs/gva_gated_deltanet.attn", &spec), ATTNC_OK);
    assert_int_equal(attnc_emit_grad(fx->ctx, spec, ATTNC_EMIT_CUDA, NULL, &whole), ATTNC_OK);
    char *srcs[API_MAX_UNITS];
    uint32_t masks[API_MAX_UNITS];
    size_t n = 0;
    assert_int_equal(api_grad_units(fx->ctx, spec, 2, srcs, masks, &n), ATTNC_OK);
    assert_int_equal(n, 1);
    assert_string_equal(srcs[0], whole.data);
    uint32_t all = masks[0];
    free(srcs[0]);
    assert_int_equal(api_grad_units(fx->ctx, spec, 16, srcs, masks, &n), ATTNC_OK);
    assert_int_equal(n, 8);   /* wy, the four walks, the chunk kernel, the adjoint; the small ones */
    uint32_t ws_units = 0;   /* (the warp-specialised walk in the narrow reverse walk's unit) */
    for (size_t u = 0; u < n; u++)
        ws_units += masks[u] == (1u << CG_BK_P_DSTATES_NARROW | 1u << CG_BK_P_DSTATES_WS);
    assert_int_equal(ws_units, 1);
    uint32_t seen = 0;
    for (size_t u = 0; u < n; u++) {
        assert_int_equal(seen & masks[u], 0);
        seen |= masks[u];
    }
    assert_int_equal(seen, all);
    assert_true(masks[0] >> CG_BK_INPUTS & 1);
    void *images[API_MAX_UNITS];
    size_t sizes[API_MAX_UNITS];
    bool hits[API_MAX_UNITS];
    assert_int_equal(api_get_cubins(fx->ctx, "gva_gated_deltanet", n, (const char *const *)srcs, "sm_80", false,
                                    API_COMPILE_QUICK, images, sizes, hits),
                     ATTNC_OK);
    for (size_t u = 0; u < n; u++) {
        for (int i = 0; i < CG_BK_COUNT; i++)
            if (defines(images[u], sizes[u], cg_bwd_entries[i]) != (i != CG_BK_P_DSTATES_WS && masks[u] >> i & 1))
                fail_msg("unit %zu (mask 0x%x): %s %s", u, masks[u], cg_bwd_entries[i],
                         masks[u] >> i & 1 ? "missing" : "defined there too");
        free(images[u]);
        free(srcs[u]);
    }
    attnc_spec_free(spec);
}

/* TIERED with more units than a forward's (the backward's): the quick cubins come back and the optimised
 * compile of every one is started (after them), and reaches the cache in order. */
static void many_units_tier_after_their_quick_compile(void **state)
{
    fixture *fx = *state;
    skip_without_nvrtc();
    if (!api_nvrtc_has_quick())
        skip();
    use_cache_subdir(fx, "many");
    enum { N = 5 };
    char text[N][96];
    const char *srcs[N];
    for (int i = 0; i < N; i++) {
        snprintf(text[i], sizeof text[i], "extern \"C\" __global__ void k%d(float *p) { p[threadIdx.x] = %d.f; }\n", i, i);
        srcs[i] = text[i];
    }
    void *images[N];
    size_t sizes[N];
    bool hits[N], quick[N];
    api_tier *tier = NULL;
    assert_int_equal(api_jit_cubins(fx->ctx, "many", N, srcs, "sm_80", true, ATTNC_JIT_TIERED, images, sizes, hits, quick,
                                    &tier),
                     ATTNC_OK);
    assert_non_null(tier);
    for (int i = 0; i < N; i++) {
        assert_true(quick[i] && !hits[i] && images[i]);
        free(images[i]);
    }
    api_tier_join(tier);
    for (size_t j = 0; j < N; j++) {
        size_t size;
        const char *why;
        char entry[8];
        const void *cubin = api_tier_cubin(tier, j, &size, &why);
        snprintf(entry, sizeof entry, "k%zu", j);
        assert_true(cubin && defines(cubin, size, entry));
    }
    api_tier_free(tier);
    assert_int_equal(api_jit_cubins(fx->ctx, "many", N, srcs, "sm_80", true, ATTNC_JIT_TIERED, images, sizes, hits, quick,
                                    &tier),
                     ATTNC_OK);
    assert_null(tier);
    for (int i = 0; i < N; i++) {
        assert_true(!quick[i] && hits[i]);
        free(images[i]);
    }
    setenv("ATTNC_CACHE_DIR", fx->root, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(units_cached_apart_and_rebuilt),
        cmocka_unit_test(schedule_units_hold_their_phases_only),
        cmocka_unit_test(split_state_walk_is_in_the_delta_rules_materialized_unit),
        cmocka_unit_test(a_failing_unit_fails_the_call),
        cmocka_unit_test(quick_and_optimised_units_are_cached_apart),
        cmocka_unit_test(the_quick_compile_of_the_warp_specialised_walk_is_silent),
        cmocka_unit_test(a_background_compile_reaches_the_cache),
        cmocka_unit_test(the_jit_modes_get_their_cubins),
        cmocka_unit_test(a_background_compile_outlives_exit),
        cmocka_unit_test(backward_units_define_their_kernels_only),
        cmocka_unit_test(many_units_tier_after_their_quick_compile),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
