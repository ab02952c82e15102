/* runtime/cache.c: the disk cache of compiled kernels; see rt.h.
 *
 * One file per entry, `<dir>/<key>.bin`:
 *     8 bytes   magic "ATTNCK02"
 *     8 bytes   payload length, uint64 little-endian
 *     8 bytes   rt_checksum64 of the payload, little-endian
 *     payload
 * A reader trusts nothing it did not check: a wrong magic (an entry of another format too), a file longer
 * or shorter than the header says, or a checksum mismatch makes the entry a miss, and the file is removed
 * so that the next put replaces it.  The key names the entry (SHA-256 of everything that changes the
 * binary, rt_cache_key); the checksum only has to catch damage (truncation, flipped or zeroed bytes), which
 * a 64-bit hash does, about 20 times faster than SHA-256: SHA-256 of a 600 KB cubin took 2 ms here,
 * a third of a cache hit.
 * A writer never exposes a half-written entry: it writes a unique temporary file in the same directory,
 * fsyncs it and renames it over the entry (rename is atomic within one file system), so that concurrent
 * processes see the old entry, the new one or none.
 */
#define _POSIX_C_SOURCE 200809L /* mkstemp, fsync */
#include "rt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE_MAGIC "ATTNCK02"
#define CACHE_MAGIC_BYTES 8
#define CACHE_HEADER_BYTES (CACHE_MAGIC_BYTES + 8 + 8)
#define CACHE_MAX_KEY 128
#define CACHE_MAX_PATH 4096

/* Formats into a fixed buffer; false if the result did not fit. */
static bool format_path(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool format_path(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < cap;
}

/* mkdir -p with mode 0700 for the directories it creates. */
static bool make_directories(const char *path, rt_error *err)
{
    char partial[CACHE_MAX_PATH];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof partial) {
        rt_set_error(err, "cache: directory path '%.200s' is empty or too long", path);
        return false;
    }
    memcpy(partial, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (partial[i] != '/' && partial[i] != '\0')
            continue;
        char saved = partial[i];
        partial[i] = '\0';
        if (mkdir(partial, 0700) != 0 && errno != EEXIST) {
            rt_set_error(err, "cache: creating directory %s failed: %s", partial, strerror(errno));
            return false;
        }
        partial[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        rt_set_error(err, "cache: %s is not a directory", path);
        return false;
    }
    return true;
}

static const char *nonempty_env(const char *name)
{
    const char *value = getenv(name);
    return value && value[0] ? value : NULL;
}

bool rt_cache_dir(char *out, size_t cap, rt_error *err)
{
    const char *explicit_dir = nonempty_env("ATTNC_CACHE_DIR");
    const char *xdg = nonempty_env("XDG_CACHE_HOME");
    const char *home = nonempty_env("HOME");
    bool fits;
    if (explicit_dir)
        fits = format_path(out, cap, "%s", explicit_dir);
    else if (xdg)
        fits = format_path(out, cap, "%s/attnc", xdg);
    else if (home)
        fits = format_path(out, cap, "%s/.cache/attnc", home);
    else {
        rt_set_error(err, "cache: no cache directory: none of ATTNC_CACHE_DIR, XDG_CACHE_HOME, HOME is set");
        return false;
    }
    if (!fits) {
        rt_set_error(err, "cache: the cache directory path does not fit in %zu bytes", cap);
        return false;
    }
    return make_directories(out, err);
}

static void put_le64(unsigned char out[8], uint64_t value)
{
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)(value >> (8 * i));
}

static uint64_t get_le64(const unsigned char in[8])
{
    uint64_t value = 0;
    for (int i = 7; i >= 0; i--)
        value = value << 8 | in[i];
    return value;
}

/* Four independent lanes of multiply-rotate rounds over 8-byte words (each round is a bijection of the
 * word for a given lane state, so a changed word always changes its lane), the tail and the length
 * folded in, then a final avalanche. */
static uint64_t rotl64(uint64_t x, unsigned r)
{
    return x << r | x >> (64 - r);
}

/* An unaligned little-endian load (one instruction on little-endian machines). */
static uint64_t load_le64(const unsigned char *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    x = __builtin_bswap64(x);
#endif
    return x;
}

static uint64_t checksum_round(uint64_t lane, uint64_t word)
{
    return rotl64(lane + word * 0xc2b2ae3d27d4eb4fULL, 31) * 0x9e3779b185ebca87ULL;
}

uint64_t rt_checksum64(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t lane[4] = {0x243f6a8885a308d3ULL, 0x13198a2e03707344ULL, 0xa4093822299f31d0ULL, 0x082efa98ec4e6c89ULL};
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int j = 0; j < 4; j++)
            lane[j] = checksum_round(lane[j], load_le64(p + i + 8 * j));
    uint64_t h = (uint64_t)n * 0x9e3779b185ebca87ULL;
    for (int j = 0; j < 4; j++)
        h = checksum_round(h, lane[j]) ^ rotl64(lane[j], 7 * (unsigned)j + 1);
    for (; i + 8 <= n; i += 8)
        h = checksum_round(h, load_le64(p + i));
    if (i < n) {
        unsigned char last[8] = {0};
        memcpy(last, p + i, n - i);
        h = checksum_round(h, load_le64(last) ^ (uint64_t)(n - i) << 59);
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    return h ^ h >> 33;
}

void rt_cache_key(const char *const *parts, int nparts, char out[65])
{
    static const char hex_digits[] = "0123456789abcdef";
    rt_sha256 hash;
    rt_sha256_init(&hash);
    for (int i = 0; i < nparts; i++) {
        const char *part = parts[i] ? parts[i] : "";
        size_t len = strlen(part);
        unsigned char len_bytes[8];
        put_le64(len_bytes, len);
        rt_sha256_update(&hash, len_bytes, sizeof len_bytes);
        rt_sha256_update(&hash, part, len);
    }
    unsigned char digest[32];
    rt_sha256_final(&hash, digest);
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex_digits[digest[i] >> 4];
        out[2 * i + 1] = hex_digits[digest[i] & 15];
    }
    out[64] = '\0';
}

/* A key becomes a file name: letters, digits, '-', '_' and '.' only, not starting with '.'. */
static bool key_is_valid(const char *key)
{
    size_t len = key ? strlen(key) : 0;
    if (len == 0 || len > CACHE_MAX_KEY || key[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = key[i];
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
                  c == '_' || c == '.';
        if (!ok)
            return false;
    }
    return true;
}

static bool read_exactly(FILE *f, void *buf, size_t n)
{
    return fread(buf, 1, n, f) == n;
}

/* Removes a bad entry, unless another process has already renamed a new file over it. */
static void remove_if_same_file(const char *path, const struct stat *bad)
{
    struct stat now;
    if (stat(path, &now) == 0 && now.st_dev == bad->st_dev && now.st_ino == bad->st_ino)
        unlink(path);
}

bool rt_cache_get(const char *dir, const char *key, void **payload, size_t *size, bool *corrupt)
{
    *payload = NULL;
    *size = 0;
    if (corrupt)
        *corrupt = false;
    char path[CACHE_MAX_PATH];
    if (!dir || !key_is_valid(key) || !format_path(path, sizeof path, "%s/%s.bin", dir, key))
        return false;
    FILE *f = fopen(path, "rb");
    if (!f)
        return false; /* absent (or unreadable): a plain miss */
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return false;
    }

    unsigned char header[CACHE_HEADER_BYTES];
    unsigned char *bytes = NULL;
    bool valid = false;
    if (read_exactly(f, header, sizeof header) && memcmp(header, CACHE_MAGIC, CACHE_MAGIC_BYTES) == 0) {
        uint64_t length = get_le64(header + CACHE_MAGIC_BYTES);
        uint64_t file_bytes = (uint64_t)st.st_size;
        /* The file must be exactly header + payload: shorter is truncated, longer has trailing bytes. */
        if (file_bytes >= CACHE_HEADER_BYTES && length == file_bytes - CACHE_HEADER_BYTES && length <= SIZE_MAX - 1) {
            bytes = malloc(length ? (size_t)length : 1);
            if (!bytes) {
                fclose(f);
                return false; /* out of memory is a miss, not a corruption */
            }
            if (read_exactly(f, bytes, (size_t)length) && fgetc(f) == EOF) {
                if (rt_checksum64(bytes, (size_t)length) == get_le64(header + CACHE_MAGIC_BYTES + 8)) {
                    *payload = bytes;
                    *size = (size_t)length;
                    valid = true;
                }
            }
        }
    }
    fclose(f);
    if (valid)
        return true;
    free(bytes);
    remove_if_same_file(path, &st);
    if (corrupt)
        *corrupt = true;
    return false;
}

static bool write_all(int fd, const void *data, size_t n)
{
    const unsigned char *p = data;
    while (n > 0) {
        ssize_t written = write(fd, p, n);
        if (written < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        p += written;
        n -= (size_t)written;
    }
    return true;
}

bool rt_cache_put(const char *dir, const char *key, const void *payload, size_t size, rt_error *err)
{
    if (!dir || !key_is_valid(key)) {
        rt_set_error(err, "cache: invalid key '%.200s'", key ? key : "(null)");
        return false;
    }
    char path[CACHE_MAX_PATH], temp_path[CACHE_MAX_PATH];
    if (!format_path(path, sizeof path, "%s/%s.bin", dir, key) ||
        !format_path(temp_path, sizeof temp_path, "%s/.%s.tmp.XXXXXX", dir, key)) {
        rt_set_error(err, "cache: the entry path under %.200s is too long", dir);
        return false;
    }

    unsigned char header[CACHE_HEADER_BYTES];
    memcpy(header, CACHE_MAGIC, CACHE_MAGIC_BYTES);
    put_le64(header + CACHE_MAGIC_BYTES, size);
    put_le64(header + CACHE_MAGIC_BYTES + 8, rt_checksum64(payload, size));

    int fd = mkstemp(temp_path);
    if (fd < 0) {
        rt_set_error(err, "cache: creating a temporary file in %s failed: %s", dir, strerror(errno));
        return false;
    }
    const char *failed_step = NULL;
    if (!write_all(fd, header, sizeof header) || !write_all(fd, payload, size))
        failed_step = "writing";
    else if (fsync(fd) != 0)
        failed_step = "flushing";
    int saved_errno = errno;
    if (close(fd) != 0 && !failed_step) {
        failed_step = "closing";
        saved_errno = errno;
    }
    if (!failed_step && rename(temp_path, path) != 0) {
        failed_step = "renaming";
        saved_errno = errno;
    }
    if (failed_step) {
        unlink(temp_path);
        rt_set_error(err, "cache: %s %s failed: %s", failed_step, temp_path, strerror(saved_errno));
        return false;
    }
    return true;
}
