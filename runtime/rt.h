/* runtime/rt.h: the thin runtime under the JIT: NVRTC, the CUDA driver and the disk cache of kernels.
 *
 * Both CUDA libraries are opened with dlopen on first use, so that `attnc` and libattnc load and run
 * (parse, check, reference, emit CUDA C) on a machine with no GPU, no driver and no toolkit; only the
 * calls that need them fail, with a message that names the library that was missing.
 *
 * Invariants:
 *   - library code never prints or exits; every failure returns false and writes one line of context
 *     into the caller's rt_error (what was being done, the CUDA/NVRTC error name and string);
 *   - the driver is initialised once per process (thread-safe); a context is the device's primary
 *     context, retained once and made current on the calling thread by rt_driver_open;
 *   - the cache never hands out bytes it did not verify: every entry carries a magic, its length and
 *     the SHA-256 of its payload; anything else is a miss (and the bad file is removed).
 */
#ifndef ATTNC_RT_H
#define ATTNC_RT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rt_error {
    char msg[1024];
} rt_error;

/* Formats the message into err (which may be NULL). */
void rt_set_error(rt_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- NVRTC (runtime/nvrtc.c) ----------------------------------------------------------------- */

/* The NVRTC version, opening the library if needed.  False (with err) if libnvrtc cannot be opened. */
bool rt_nvrtc_version(int *major, int *minor, rt_error *err);

typedef struct rt_nvrtc_out {
    char *image;     /* malloc'd: PTX text (NUL-terminated) or cubin bytes */
    size_t size;     /* bytes of image (PTX: strlen + 1) */
    char *log;       /* malloc'd compile log ("" if none); set on success and on failure */
} rt_nvrtc_out;

/* Compiles CUDA C `src` (named `name` in messages) for `arch` ("sm_80", "sm_90a", ...): a cubin when
 * `cubin` is true (-arch=sm_XX), else PTX (-arch=compute_XX).  `opts` are extra NVRTC options (may be
 * NULL).  On failure err holds the first lines of the log and out->log the whole log.  The caller frees
 * out->image and out->log with free(). */
bool rt_nvrtc_compile(const char *src, const char *name, const char *arch, bool cubin,
                      const char *const *opts, int nopts, rt_nvrtc_out *out, rt_error *err);

/* ---- the CUDA driver (runtime/driver.c) ------------------------------------------------------ */

typedef struct rt_device_info {
    int ordinal;
    char name[256];
    int cc_major, cc_minor;
    int sm_count;
    size_t smem_optin;      /* max dynamic shared memory per block after opting in */
    size_t total_mem;
    int driver_version;     /* cuDriverGetVersion */
} rt_device_info;

/* Opens libcuda.so.1, cuInit(0), retains device `ordinal`'s primary context and makes it current.
 * Idempotent per ordinal.  False (with err) if there is no driver or no such device. */
bool rt_driver_open(int ordinal, rt_device_info *info, rt_error *err);
/* True if a driver and at least one device are present (never fails loudly; for test skips). */
bool rt_driver_available(void);

typedef struct rt_function rt_function; /* a loaded module and one of its kernels */

typedef struct rt_function_attrs {
    int num_regs;
    int local_bytes;        /* spills and stack per thread */
    int static_smem;
    int max_threads;
    int binary_version, ptx_version;
} rt_function_attrs;

/* Loads a cubin (or PTX, JIT-compiled by the driver) and gets kernel `entry`.  Caller frees with
 * rt_function_free. */
bool rt_function_load(const void *image, size_t size, const char *entry, rt_function **out, rt_error *err);
/* Gets kernel `entry` of the module `sibling` was loaded from, without loading the image again (a
 * module load parses and uploads the whole image: one per kernel made a cache hit pay it once per
 * entry).  The module stays loaded until its last function is freed; the functions of one module are
 * freed from one thread. */
bool rt_function_load_sibling(rt_function *sibling, const char *entry, rt_function **out, rt_error *err);
void rt_function_free(rt_function *fn);
bool rt_function_get_attrs(rt_function *fn, rt_function_attrs *attrs, rt_error *err);
/* Opts in to `bytes` of dynamic shared memory (cuFuncSetAttribute MAX_DYNAMIC_SHARED_SIZE_BYTES). */
bool rt_function_set_smem(rt_function *fn, size_t bytes, rt_error *err);
/* cuLaunchKernel with `params` (array of pointers to each argument); `stream` is a CUstream or NULL. */
bool rt_launch(rt_function *fn, const unsigned grid[3], const unsigned block[3], size_t smem, void *stream,
               void **params, rt_error *err);

/* Device memory and sync, for the CLI's `run`, the tests and the examples. */
bool rt_mem_alloc(uint64_t *dptr, size_t bytes, rt_error *err);
void rt_mem_free(uint64_t dptr);
bool rt_memcpy_htod(uint64_t dst, const void *src, size_t bytes, rt_error *err);
bool rt_memcpy_dtoh(void *dst, uint64_t src, size_t bytes, rt_error *err);
bool rt_memset_d8(uint64_t dst, unsigned char value, size_t bytes, rt_error *err);
bool rt_synchronize(rt_error *err); /* cuCtxSynchronize */
/* Elapsed milliseconds of `fn` run `reps` times by the caller's closure, timed with CUDA events on the
 * default stream.  Returns the per-run median over `reps` runs after `warmup` untimed runs. */
typedef bool (*rt_run_fn)(void *closure, rt_error *err);
bool rt_time_ms(rt_run_fn run, void *closure, int warmup, int reps, double *median_ms, rt_error *err);

/* ---- the disk cache (runtime/cache.c) -------------------------------------------------------- */

/* The cache directory: $ATTNC_CACHE_DIR, else $XDG_CACHE_HOME/attnc, else $HOME/.cache/attnc.  Created
 * (with parents, mode 0700) on first use.  False (with err) if none can be determined or made. */
bool rt_cache_dir(char *out, size_t cap, rt_error *err);

/* The 64-bit checksum of a cache entry's payload (damage detection, not identity: see cache.c). */
uint64_t rt_checksum64(const void *data, size_t n);
/* Hex SHA-256 (64 chars + NUL) of the concatenation of `nparts` strings, each preceded by its length
 * (so that ("ab","c") and ("a","bc") differ). */
void rt_cache_key(const char *const *parts, int nparts, char out[65]);

/* Looks up `key` in `dir`: true with a malloc'd copy of the payload on a verified hit; false on a miss.
 * A corrupted or truncated entry is removed and reported as a miss (*corrupt set when given). */
bool rt_cache_get(const char *dir, const char *key, void **payload, size_t *size, bool *corrupt);

/* Stores `payload` under `key`: written to a unique temporary file in `dir`, flushed, then renamed over
 * the entry, so readers in other processes see either the old entry, the new one or none. */
bool rt_cache_put(const char *dir, const char *key, const void *payload, size_t size, rt_error *err);

/* ---- SHA-256 (runtime/sha256.c) -------------------------------------------------------------- */

typedef struct rt_sha256 {
    uint32_t h[8];
    uint64_t len;
    unsigned char buf[64];
    size_t nbuf;
} rt_sha256;
void rt_sha256_init(rt_sha256 *s);
void rt_sha256_update(rt_sha256 *s, const void *data, size_t n);
void rt_sha256_final(rt_sha256 *s, unsigned char digest[32]);

#endif
