/* runtime/nvrtc.c: CUDA C to PTX or cubin with NVRTC, loaded at run time; see rt.h.
 *
 * libnvrtc is opened with dlopen on first use (once per process, pthread_once) and its entry points are
 * resolved with dlsym, so that nothing here needs the CUDA toolkit to build or to load: without the
 * library only rt_nvrtc_version and rt_nvrtc_compile fail, with a message naming what was tried.  The
 * few NVRTC types are declared here, with the layouts nvrtc.h gives them, instead of including nvrtc.h.
 */
#include "rt.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int nvrtcResult; /* NVRTC_SUCCESS = 0 */
typedef struct nvrtc_program_opaque *nvrtcProgram;
#define NVRTC_SUCCESS 0

#define LOG_BYTES_IN_ERROR 800 /* how much of a failed compile's log goes into rt_error */

/* dlsym returns an object pointer; it is copied into a function pointer byte for byte (ISO C has no
 * conversion between the two, POSIX guarantees the representation is the same). */
_Static_assert(sizeof(void (*)(void)) == sizeof(void *), "function and object pointers differ in size");

static struct {
    char open_error[512]; /* empty when the library and all its symbols were found */
    void *library;
    nvrtcResult (*version)(int *major, int *minor);
    nvrtcResult (*create_program)(nvrtcProgram *prog, const char *src, const char *name, int num_headers,
                                  const char *const *headers, const char *const *include_names);
    nvrtcResult (*compile_program)(nvrtcProgram prog, int num_options, const char *const *options);
    nvrtcResult (*get_program_log_size)(nvrtcProgram prog, size_t *size);
    nvrtcResult (*get_program_log)(nvrtcProgram prog, char *log);
    nvrtcResult (*get_ptx_size)(nvrtcProgram prog, size_t *size);
    nvrtcResult (*get_ptx)(nvrtcProgram prog, char *ptx);
    nvrtcResult (*get_cubin_size)(nvrtcProgram prog, size_t *size);
    nvrtcResult (*get_cubin)(nvrtcProgram prog, char *cubin);
    nvrtcResult (*destroy_program)(nvrtcProgram *prog);
    const char *(*get_error_string)(nvrtcResult result);
} nvrtc;

static pthread_once_t nvrtc_once = PTHREAD_ONCE_INIT;

static bool resolve_symbol(const char *name, void *function_slot)
{
    void *symbol = dlsym(nvrtc.library, name);
    if (!symbol) {
        snprintf(nvrtc.open_error, sizeof nvrtc.open_error, "nvrtc: symbol %s not found in libnvrtc", name);
        return false;
    }
    memcpy(function_slot, &symbol, sizeof symbol);
    return true;
}

static void open_nvrtc(void)
{
    static const char *const library_names[] = {"libnvrtc.so.13", "libnvrtc.so", "libnvrtc.so.12"};
    const char *last_dlerror = "";
    for (size_t i = 0; i < sizeof library_names / sizeof library_names[0] && !nvrtc.library; i++) {
        nvrtc.library = dlopen(library_names[i], RTLD_NOW | RTLD_LOCAL);
        if (!nvrtc.library) {
            const char *message = dlerror();
            last_dlerror = message ? message : "";
        }
    }
    if (!nvrtc.library) {
        snprintf(nvrtc.open_error, sizeof nvrtc.open_error,
                 "nvrtc: cannot open libnvrtc (tried libnvrtc.so.13, libnvrtc.so, libnvrtc.so.12): %.300s",
                 last_dlerror);
        return;
    }
    bool found = resolve_symbol("nvrtcVersion", &nvrtc.version) &&
                 resolve_symbol("nvrtcCreateProgram", &nvrtc.create_program) &&
                 resolve_symbol("nvrtcCompileProgram", &nvrtc.compile_program) &&
                 resolve_symbol("nvrtcGetProgramLogSize", &nvrtc.get_program_log_size) &&
                 resolve_symbol("nvrtcGetProgramLog", &nvrtc.get_program_log) &&
                 resolve_symbol("nvrtcGetPTXSize", &nvrtc.get_ptx_size) &&
                 resolve_symbol("nvrtcGetPTX", &nvrtc.get_ptx) &&
                 resolve_symbol("nvrtcGetCUBINSize", &nvrtc.get_cubin_size) &&
                 resolve_symbol("nvrtcGetCUBIN", &nvrtc.get_cubin) &&
                 resolve_symbol("nvrtcDestroyProgram", &nvrtc.destroy_program) &&
                 resolve_symbol("nvrtcGetErrorString", &nvrtc.get_error_string);
    if (!found) {
        dlclose(nvrtc.library);
        nvrtc.library = NULL;
    }
}

static bool nvrtc_ready(rt_error *err)
{
    pthread_once(&nvrtc_once, open_nvrtc);
    if (!nvrtc.library) {
        rt_set_error(err, "%s", nvrtc.open_error);
        return false;
    }
    return true;
}

static const char *result_string(nvrtcResult result)
{
    const char *text = nvrtc.get_error_string(result);
    return text ? text : "unknown NVRTC error";
}

bool rt_nvrtc_version(int *major, int *minor, rt_error *err)
{
    if (!nvrtc_ready(err))
        return false;
    nvrtcResult result = nvrtc.version(major, minor);
    if (result != NVRTC_SUCCESS) {
        rt_set_error(err, "nvrtc: nvrtcVersion failed: %s", result_string(result));
        return false;
    }
    return true;
}

static char *copy_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = malloc(n);
    if (copy)
        memcpy(copy, s, n);
    return copy;
}

/* "sm_" followed by 2 or 3 digits and at most one letter suffix ("a", "f"). */
static bool arch_is_valid(const char *arch)
{
    if (!arch || strncmp(arch, "sm_", 3) != 0)
        return false;
    size_t digits = 0;
    const char *p = arch + 3;
    for (; *p >= '0' && *p <= '9'; p++)
        digits++;
    if (*p >= 'a' && *p <= 'z')
        p++;
    return digits >= 2 && digits <= 3 && *p == '\0';
}

/* The whole program log as a malloc'd string ("" if there is none or it cannot be read). */
static char *program_log(nvrtcProgram program)
{
    size_t size = 0;
    if (nvrtc.get_program_log_size(program, &size) != NVRTC_SUCCESS || size == 0)
        return copy_string("");
    char *log = malloc(size + 1);
    if (!log)
        return NULL;
    if (nvrtc.get_program_log(program, log) != NVRTC_SUCCESS)
        log[0] = '\0';
    log[size] = '\0';
    return log;
}

bool rt_nvrtc_compile(const char *src, const char *name, const char *arch, bool cubin,
                      const char *const *opts, int nopts, rt_nvrtc_out *out, rt_error *err)
{
    out->image = NULL;
    out->size = 0;
    out->log = NULL;
    if (!name)
        name = "kernel.cu";
    if (!src || !arch_is_valid(arch) || nopts < 0 || (nopts > 0 && !opts)) {
        rt_set_error(err, "nvrtc: compiling %.200s: invalid arguments (arch '%.40s')", name, arch ? arch : "(null)");
        out->log = copy_string("");
        return false;
    }
    if (!nvrtc_ready(err)) {
        out->log = copy_string("");
        return false;
    }

    char arch_option[64];
    snprintf(arch_option, sizeof arch_option, "-arch=%s%s", cubin ? "sm_" : "compute_", arch + 3);
    const char **options = malloc(((size_t)nopts + 2) * sizeof *options);
    if (!options) {
        rt_set_error(err, "nvrtc: compiling %.200s: out of memory", name);
        out->log = copy_string("");
        return false;
    }
    int noptions = 0;
    options[noptions++] = arch_option;
    options[noptions++] = "-std=c++17";
    for (int i = 0; i < nopts; i++)
        options[noptions++] = opts[i];

    nvrtcProgram program = NULL;
    nvrtcResult result = nvrtc.create_program(&program, src, name, 0, NULL, NULL);
    if (result != NVRTC_SUCCESS) {
        free(options);
        rt_set_error(err, "nvrtc: nvrtcCreateProgram for %.200s failed: %s", name, result_string(result));
        out->log = copy_string("");
        return false;
    }
    result = nvrtc.compile_program(program, noptions, options);
    free(options);
    out->log = program_log(program);
    if (!out->log) {
        nvrtc.destroy_program(&program);
        rt_set_error(err, "nvrtc: compiling %.200s: out of memory", name);
        return false;
    }
    if (result != NVRTC_SUCCESS) {
        /* the log from its first error on: warnings before it would fill the message (all of it is in out->log) */
        const char *detail = out->log[0] ? out->log : result_string(result), *first = strstr(out->log, "error");
        if (first) {
            while (first > out->log && first[-1] != '\n')
                first--;
            detail = first;
        }
        rt_set_error(err, "nvrtc: compiling %.200s for %s failed: %.*s", name, arch, LOG_BYTES_IN_ERROR, detail);
        nvrtc.destroy_program(&program);
        return false;
    }

    size_t size = 0;
    result = cubin ? nvrtc.get_cubin_size(program, &size) : nvrtc.get_ptx_size(program, &size);
    if (result == NVRTC_SUCCESS && size > 0) {
        out->image = malloc(size);
        if (!out->image) {
            nvrtc.destroy_program(&program);
            rt_set_error(err, "nvrtc: compiling %.200s: out of memory for a %zu-byte image", name, size);
            return false;
        }
        result = cubin ? nvrtc.get_cubin(program, out->image) : nvrtc.get_ptx(program, out->image);
    }
    nvrtc.destroy_program(&program);
    if (result != NVRTC_SUCCESS || size == 0) {
        free(out->image);
        out->image = NULL;
        rt_set_error(err, "nvrtc: getting the %s of %.200s for %s failed: %s", cubin ? "cubin" : "PTX", name, arch,
                  result != NVRTC_SUCCESS ? result_string(result) : "empty image");
        return false;
    }
    out->size = size;
    return true;
}
