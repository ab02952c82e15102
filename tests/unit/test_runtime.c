/* tests/unit/test_runtime.c: the runtime under the JIT (runtime/): SHA-256 against the FIPS 180-4
 * examples, the disk cache (round trip, every kind of damaged entry, key separation, replacement), NVRTC
 * (PTX and cubin of a tiny kernel, a syntax error's log) and the driver's quiet absence without a GPU.
 * NVRTC cases skip when libnvrtc cannot be opened; the kernel launch runs only where a GPU is present. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, setenv, truncate, opendir */
#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt.h"

/* ---- SHA-256 ------------------------------------------------------------------------------------ */

static void hex_digest(const unsigned char digest[32], char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

static void assert_sha256(const char *message, const char *expected_hex)
{
    rt_sha256 hash;
    unsigned char digest[32];
    char hex[65];
    rt_sha256_init(&hash);
    rt_sha256_update(&hash, message, strlen(message));
    rt_sha256_final(&hash, digest);
    hex_digest(digest, hex);
    assert_string_equal(hex, expected_hex);
}

static void sha256_fips_examples(void **state)
{
    (void)state;
    assert_sha256("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    assert_sha256("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* One million 'a', fed in uneven pieces so that the partial-block buffering is exercised too. */
static void sha256_million_a(void **state)
{
    (void)state;
    static char chunk[997];
    memset(chunk, 'a', sizeof chunk);
    rt_sha256 hash;
    rt_sha256_init(&hash);
    size_t left = 1000000;
    for (size_t piece = 1; left > 0; piece = (piece * 7 + 5) % sizeof chunk + 1) { /* 1..997 bytes */
        size_t n = piece < left ? piece : left;
        rt_sha256_update(&hash, chunk, n);
        left -= n;
    }
    unsigned char digest[32];
    char hex[65];
    rt_sha256_final(&hash, digest);
    hex_digest(digest, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* ---- the disk cache ----------------------------------------------------------------------------- */

typedef struct cache_fixture {
    char root[64];   /* the mkdtemp directory */
    char dir[4096];  /* what rt_cache_dir returned: root/nested/cache, created by it */
} cache_fixture;

static int cache_setup(void **state)
{
    cache_fixture *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    snprintf(fx->root, sizeof fx->root, "/tmp/attnc-rt-test-XXXXXX");
    if (!mkdtemp(fx->root)) {
        free(fx);
        return -1;
    }
    char wanted[4096];
    snprintf(wanted, sizeof wanted, "%s/nested/cache", fx->root);
    setenv("ATTNC_CACHE_DIR", wanted, 1);
    rt_error err = {{0}};
    if (!rt_cache_dir(fx->dir, sizeof fx->dir, &err) || strcmp(fx->dir, wanted) != 0) {
        remove_tree(fx->root);
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int cache_teardown(void **state)
{
    cache_fixture *fx = *state;
    remove_tree(fx->root);
    unsetenv("ATTNC_CACHE_DIR");
    free(fx);
    return 0;
}

static void entry_path(const cache_fixture *fx, const char *key, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s.bin", fx->dir, key);
}

static bool file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static size_t count_files(const char *dir)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void cache_dir_is_created_private(void **state)
{
    cache_fixture *fx = *state;
    struct stat st;
    assert_int_equal(stat(fx->dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
}

static void cache_round_trip(void **state)
{
    cache_fixture *fx = *state;
    const char *parts[] = {"kernel source", "sm_90a", "-O3"};
    char key[65];
    rt_cache_key(parts, 3, key);
    assert_int_equal(strlen(key), 64);

    void *payload = (void *)1;
    size_t size = 1;
    bool corrupt = true;
    assert_false(rt_cache_get(fx->dir, key, &payload, &size, &corrupt)); /* nothing there yet */
    assert_null(payload);
    assert_false(corrupt);

    unsigned char data[3000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 7 + 3);
    rt_error err = {{0}};
    assert_true(rt_cache_put(fx->dir, key, data, sizeof data, &err));
    assert_true(rt_cache_get(fx->dir, key, &payload, &size, &corrupt));
    assert_false(corrupt);
    assert_int_equal(size, sizeof data);
    assert_memory_equal(payload, data, sizeof data);
    free(payload);

    char path[4200];
    entry_path(fx, key, path, sizeof path);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 24 + (off_t)sizeof data); /* magic, length, checksum, payload */
    assert_int_equal(count_files(fx->dir), 1); /* no temporary file left behind */

    assert_true(rt_cache_put(fx->dir, "empty", "", 0, &err)); /* an empty payload is a valid entry */
    assert_true(rt_cache_get(fx->dir, "empty", &payload, &size, &corrupt));
    assert_int_equal(size, 0);
    free(payload);
}

typedef enum damage { TRUNCATE, FLIP_PAYLOAD_BYTE, WRONG_MAGIC, TRAILING_GARBAGE } damage;

static void damage_file(const char *path, damage how)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    if (how == TRUNCATE) {
        assert_int_equal(truncate(path, st.st_size - 1), 0);
        return;
    }
    FILE *f = fopen(path, how == TRAILING_GARBAGE ? "ab" : "r+b");
    assert_non_null(f);
    if (how == TRAILING_GARBAGE) {
        fputs("garbage", f);
    } else {
        long offset = how == WRONG_MAGIC ? 7 : 24 + 100; /* the header is 24 bytes */
        assert_int_equal(fseek(f, offset, SEEK_SET), 0);
        int c = fgetc(f);
        assert_int_equal(fseek(f, offset, SEEK_SET), 0);
        fputc(c ^ 0x20, f);
    }
    assert_int_equal(fclose(f), 0);
}

static void cache_damaged_entries_are_misses_and_removed(void **state)
{
    cache_fixture *fx = *state;
    static const damage kinds[] = {TRUNCATE, FLIP_PAYLOAD_BYTE, WRONG_MAGIC, TRAILING_GARBAGE};
    unsigned char data[500];
    memset(data, 0x5a, sizeof data);
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        char key[32], path[4200];
        snprintf(key, sizeof key, "damaged-%zu", k);
        entry_path(fx, key, path, sizeof path);
        rt_error err = {{0}};
        assert_true(rt_cache_put(fx->dir, key, data, sizeof data, &err));
        damage_file(path, kinds[k]);

        void *payload = NULL;
        size_t size = 0;
        bool corrupt = false;
        assert_false(rt_cache_get(fx->dir, key, &payload, &size, &corrupt));
        assert_true(corrupt);
        assert_null(payload);
        assert_false(file_exists(path));

        /* and the slot works again */
        assert_true(rt_cache_put(fx->dir, key, data, sizeof data, &err));
        assert_true(rt_cache_get(fx->dir, key, &payload, &size, &corrupt));
        assert_false(corrupt);
        free(payload);
    }
}

/* The payload checksum changes under every single-bit flip, a zeroed word, a dropped last byte and an
 * appended zero byte, at every length around the 32-byte block and 8-byte word edges. */
static void checksum_detects_damage(void **state)
{
    (void)state;
    unsigned char buf[300];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 37 + 11);
    static const size_t lengths[] = {0, 1, 7, 8, 9, 31, 32, 33, 63, 64, 65, 100, 255, 299};
    for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
        size_t n = lengths[l];
        uint64_t good = rt_checksum64(buf, n);
        assert_true(rt_checksum64(buf, n) == good);
        for (size_t bit = 0; bit < 8 * n; bit++) {
            buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
            assert_true(rt_checksum64(buf, n) != good);
            buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        }
        if (n >= 8) {
            unsigned char saved[8];
            memcpy(saved, buf + n - 8, 8);
            memset(buf + n - 8, 0, 8);
            assert_true(rt_checksum64(buf, n) != good);
            memcpy(buf + n - 8, saved, 8);
        }
        if (n > 0)
            assert_true(rt_checksum64(buf, n - 1) != good);
        unsigned char saved = buf[n];
        buf[n] = 0;
        assert_true(rt_checksum64(buf, n + 1) != good);
        buf[n] = saved;
    }
}

static void cache_keys_separate_parts(void **state)
{
    (void)state;
    const char *ab_c[] = {"ab", "c"}, *a_bc[] = {"a", "bc"}, *abc[] = {"abc"};
    char k1[65], k2[65], k3[65], k1_again[65];
    rt_cache_key(ab_c, 2, k1);
    rt_cache_key(a_bc, 2, k2);
    rt_cache_key(abc, 1, k3);
    rt_cache_key(ab_c, 2, k1_again);
    assert_string_not_equal(k1, k2);
    assert_string_not_equal(k1, k3);
    assert_string_not_equal(k2, k3);
    assert_string_equal(k1, k1_again);
    for (int i = 0; i < 64; i++)
        assert_non_null(strchr("0123456789abcdef", k1[i]));
}

static void cache_put_replaces_an_entry(void **state)
{
    cache_fixture *fx = *state;
    rt_error err = {{0}};
    assert_true(rt_cache_put(fx->dir, "replaced", "first version", 14, &err));
    assert_true(rt_cache_put(fx->dir, "replaced", "second, longer version", 23, &err));
    void *payload = NULL;
    size_t size = 0;
    bool corrupt = false;
    assert_true(rt_cache_get(fx->dir, "replaced", &payload, &size, &corrupt));
    assert_int_equal(size, 23);
    assert_string_equal(payload, "second, longer version");
    free(payload);
    assert_int_equal(count_files(fx->dir), 1);
}

static void cache_rejects_keys_that_are_not_file_names(void **state)
{
    cache_fixture *fx = *state;
    rt_error err = {{0}};
    assert_false(rt_cache_put(fx->dir, "../escape", "x", 1, &err));
    assert_non_null(strstr(err.msg, "invalid key"));
    assert_false(rt_cache_put(fx->dir, "", "x", 1, &err));
    void *payload = NULL;
    size_t size = 0;
    assert_false(rt_cache_get(fx->dir, "a/b", &payload, &size, NULL));
}

/* ---- NVRTC -------------------------------------------------------------------------------------- */

static const char tiny_kernel[] = "extern \"C\" __global__ void k(float *p) { p[threadIdx.x] = 1.f; }\n";

static void nvrtc_compiles_ptx(void **state)
{
    (void)state;
    skip_without_nvrtc();
    rt_nvrtc_out out;
    rt_error err = {{0}};
    bool ok = rt_nvrtc_compile(tiny_kernel, "tiny.cu", "sm_80", false, NULL, 0, &out, &err);
    if (!ok)
        print_message("%s\n", err.msg);
    assert_true(ok);
    assert_non_null(out.image);
    assert_non_null(out.log);
    assert_int_equal(out.size, strlen(out.image) + 1);
    assert_non_null(strstr(out.image, ".target sm_80"));
    assert_non_null(strstr(out.image, ".entry k"));
    free(out.image);
    free(out.log);
}

static void nvrtc_compiles_cubin(void **state)
{
    (void)state;
    skip_without_nvrtc();
    rt_nvrtc_out out;
    rt_error err = {{0}};
    const char *opts[] = {"-lineinfo"};
    bool ok = rt_nvrtc_compile(tiny_kernel, "tiny.cu", "sm_90a", true, opts, 1, &out, &err);
    if (!ok)
        print_message("%s\n", err.msg);
    assert_true(ok);
    assert_true(out.size > 4);
    assert_memory_equal(out.image, "\x7f" "ELF", 4);
    free(out.image);
    free(out.log);
}

static void nvrtc_reports_a_syntax_error(void **state)
{
    (void)state;
    skip_without_nvrtc();
    rt_nvrtc_out out;
    rt_error err = {{0}};
    const char broken[] = "extern \"C\" __global__ void k(float *p) { p[threadIdx.x] = 1.f }\n";
    assert_false(rt_nvrtc_compile(broken, "broken.cu", "sm_80", false, NULL, 0, &out, &err));
    assert_null(out.image);
    assert_non_null(out.log);
    assert_non_null(strstr(out.log, "error"));
    assert_non_null(strstr(err.msg, "nvrtc: compiling broken.cu for sm_80 failed: "));
    assert_non_null(strstr(err.msg, "error"));
    free(out.log);
}

/* A failed compile's message starts at the log's first error, however many warnings come before it (the
 * message holds only the first 800 bytes of the log). */
static void nvrtc_reports_the_error_after_warnings(void **state)
{
    (void)state;
    skip_without_nvrtc();
    char src[4096];
    size_t n = 0;
    for (int i = 0; i < 24; i++)   /* each an unused variable: warning #177-D or #550-D */
        n += (size_t)snprintf(src + n, sizeof src - n, "__device__ void unused_%d() { int variable_never_used_%d = %d; }\n", i, i, i);
    snprintf(src + n, sizeof src - n, "extern \"C\" __global__ void k(float *p) { p[threadIdx.x] = undeclared_name; }\n");
    rt_nvrtc_out out;
    rt_error err = {{0}};
    assert_false(rt_nvrtc_compile(src, "warned.cu", "sm_80", false, NULL, 0, &out, &err));
    assert_non_null(out.log);
    const char *first_error = strstr(out.log, "error"), *first_warning = strstr(out.log, "warning");
    assert_non_null(first_error);
    if (first_warning)   /* the warnings fill more than the message holds: the test means something */
        assert_true(first_error - first_warning > 800);
    assert_non_null(strstr(err.msg, "undeclared_name"));
    free(out.log);
}

static void nvrtc_rejects_a_malformed_arch(void **state)
{
    (void)state;
    rt_nvrtc_out out;
    rt_error err = {{0}};
    assert_false(rt_nvrtc_compile(tiny_kernel, "tiny.cu", "compute_80", false, NULL, 0, &out, &err));
    assert_null(out.image);
    free(out.log);
}

/* ---- the driver --------------------------------------------------------------------------------- */

typedef struct launch_closure {
    rt_function *fn;
    void **params;
} launch_closure;

static bool launch_tiny(void *closure, rt_error *err)
{
    launch_closure *c = closure;
    const unsigned grid[3] = {1, 1, 1}, block[3] = {32, 1, 1};
    return rt_launch(c->fn, grid, block, 0, NULL, c->params, err);
}

/* Without a GPU: false, quietly, and rt_driver_open says why.  With one: compile, load, run, time. */
static void driver_absent_or_runs_a_kernel(void **state)
{
    (void)state;
    rt_error err = {{0}};
    rt_device_info info;
    if (!rt_driver_available()) {
        assert_false(rt_driver_open(0, &info, &err));
        assert_memory_equal(err.msg, "cuda: ", 6);
        uint64_t dptr = 1;
        assert_false(rt_mem_alloc(&dptr, 16, &err));
        return;
    }
    assert_true(rt_driver_open(0, &info, &err));
    assert_true(rt_driver_open(0, &info, &err)); /* idempotent */
    assert_true(info.cc_major >= 7 && info.sm_count > 0 && info.total_mem > 0 && info.driver_version > 0);
    assert_false(rt_driver_open(1000, &info, &err));

    char arch[16];
    snprintf(arch, sizeof arch, "sm_%d%d", info.cc_major, info.cc_minor);
    rt_nvrtc_out out;
    bool compiled = rt_nvrtc_compile(tiny_kernel, "tiny.cu", arch, true, NULL, 0, &out, &err);
    if (!compiled)
        print_message("%s\n", err.msg);
    assert_true(compiled);
    rt_function *fn = NULL;
    assert_true(rt_function_load(out.image, out.size, "k", &fn, &err));
    rt_function *missing = NULL;
    assert_false(rt_function_load(out.image, out.size, "no_such_kernel", &missing, &err));
    assert_non_null(strstr(err.msg, "CUDA_ERROR_NOT_FOUND"));
    free(out.image);
    free(out.log);

    rt_function_attrs attrs;
    assert_true(rt_function_get_attrs(fn, &attrs, &err));
    assert_true(attrs.num_regs > 0 && attrs.max_threads >= 32 && attrs.binary_version > 0);
    assert_true(rt_function_set_smem(fn, 1024, &err));

    uint64_t dptr = 0;
    float host[32];
    assert_true(rt_mem_alloc(&dptr, sizeof host, &err));
    assert_true(rt_memset_d8(dptr, 0, sizeof host, &err));
    void *params[] = {&dptr};
    launch_closure closure = {fn, params};
    double median = -1.0;
    assert_true(rt_time_ms(launch_tiny, &closure, 2, 5, &median, &err));
    assert_true(median >= 0.0);
    print_message("ran on %s (sm_%d%d, %d SMs): median %.4f ms\n", info.name, info.cc_major, info.cc_minor,
                  info.sm_count, median);
    assert_true(rt_synchronize(&err));
    assert_true(rt_memcpy_dtoh(host, dptr, sizeof host, &err));
    for (int i = 0; i < 32; i++)
        assert_true(host[i] == 1.0f);
    /* A sibling shares fn's module: it outlives fn (the module stays loaded) and runs the same kernel. */
    rt_function *sibling = NULL, *absent = NULL;
    assert_true(rt_function_load_sibling(fn, "k", &sibling, &err));
    assert_false(rt_function_load_sibling(fn, "no_such_kernel", &absent, &err));
    assert_null(absent);
    rt_function_free(fn);
    assert_true(rt_memset_d8(dptr, 0, sizeof host, &err));
    closure.fn = sibling;
    assert_true(rt_time_ms(launch_tiny, &closure, 1, 1, &median, &err));
    assert_true(rt_synchronize(&err));
    assert_true(rt_memcpy_dtoh(host, dptr, sizeof host, &err));
    for (int i = 0; i < 32; i++)
        assert_true(host[i] == 1.0f);
    rt_mem_free(dptr);
    rt_function_free(sibling);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sha256_fips_examples),
        cmocka_unit_test(sha256_million_a),
        cmocka_unit_test_setup_teardown(cache_dir_is_created_private, cache_setup, cache_teardown),
        cmocka_unit_test_setup_teardown(cache_round_trip, cache_setup, cache_teardown),
        cmocka_unit_test_setup_teardown(cache_damaged_entries_are_misses_and_removed, cache_setup, cache_teardown),
        cmocka_unit_test(checksum_detects_damage),
        cmocka_unit_test(cache_keys_separate_parts),
        cmocka_unit_test_setup_teardown(cache_put_replaces_an_entry, cache_setup, cache_teardown),
        cmocka_unit_test_setup_teardown(cache_rejects_keys_that_are_not_file_names, cache_setup, cache_teardown),
        cmocka_unit_test(nvrtc_compiles_ptx),
        cmocka_unit_test(nvrtc_compiles_cubin),
        cmocka_unit_test(nvrtc_reports_a_syntax_error),
        cmocka_unit_test(nvrtc_reports_the_error_after_warnings),
        cmocka_unit_test(nvrtc_rejects_a_malformed_arch),
        cmocka_unit_test(driver_absent_or_runs_a_kernel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
