/* runtime/driver.c: the CUDA driver API, loaded at run time; see rt.h.
 *
 * libcuda.so.1 is opened with dlopen and initialised (cuInit) once per process, under pthread_once, and
 * its entry points are resolved with dlsym, so that the library builds without the toolkit and loads on
 * machines with no GPU: only these calls fail there, and rt_driver_available() says so quietly.  Where
 * the driver exports a versioned entry point (cuMemAlloc_v2, ...) that is the one resolved, as cuda.h's
 * macros would.  The handful of driver types and enum values are declared here, checked against cuda.h.
 *
 * Contexts are the devices' primary contexts, retained once per ordinal (a small table under a mutex)
 * and made current on the calling thread by each rt_driver_open.
 */
#include "rt.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult; /* CUDA_SUCCESS = 0 */
typedef int CUdevice;
typedef struct cu_context_opaque *CUcontext;
typedef struct cu_module_opaque *CUmodule;
typedef struct cu_function_opaque *CUfunction;
typedef struct cu_stream_opaque *CUstream;
typedef struct cu_event_opaque *CUevent;
typedef unsigned long long CUdeviceptr;

#define CUDA_SUCCESS 0
#define CU_EVENT_DEFAULT 0u

enum { /* CUdevice_attribute */
    CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16,
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
    CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97,
};
enum { /* CUfunction_attribute */
    CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 0,
    CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES = 1,
    CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES = 3,
    CU_FUNC_ATTRIBUTE_NUM_REGS = 4,
    CU_FUNC_ATTRIBUTE_PTX_VERSION = 5,
    CU_FUNC_ATTRIBUTE_BINARY_VERSION = 6,
    CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8,
};

#define MAX_DEVICES 64

/* dlsym returns an object pointer; it is copied into a function pointer byte for byte (ISO C has no
 * conversion between the two, POSIX guarantees the representation is the same). */
_Static_assert(sizeof(void (*)(void)) == sizeof(void *), "function and object pointers differ in size");

static struct {
    char open_error[sizeof(rt_error)]; /* empty when the library, its symbols and cuInit all succeeded */
    bool ready;
    void *library;
    CUresult (*init)(unsigned flags);
    CUresult (*driver_get_version)(int *version);
    CUresult (*get_error_name)(CUresult error, const char **name);
    CUresult (*get_error_string)(CUresult error, const char **text);
    CUresult (*device_get)(CUdevice *device, int ordinal);
    CUresult (*device_get_count)(int *count);
    CUresult (*device_get_name)(char *name, int len, CUdevice device);
    CUresult (*device_get_attribute)(int *value, int attribute, CUdevice device);
    CUresult (*device_total_mem)(size_t *bytes, CUdevice device);
    CUresult (*primary_ctx_retain)(CUcontext *context, CUdevice device);
    CUresult (*ctx_set_current)(CUcontext context);
    CUresult (*ctx_synchronize)(void);
    CUresult (*mem_alloc)(CUdeviceptr *dptr, size_t bytes);
    CUresult (*mem_free)(CUdeviceptr dptr);
    CUresult (*memcpy_htod)(CUdeviceptr dst, const void *src, size_t bytes);
    CUresult (*memcpy_dtoh)(void *dst, CUdeviceptr src, size_t bytes);
    CUresult (*memset_d8)(CUdeviceptr dst, unsigned char value, size_t bytes);
    CUresult (*module_load_data)(CUmodule *module, const void *image);
    CUresult (*module_unload)(CUmodule module);
    CUresult (*module_get_function)(CUfunction *function, CUmodule module, const char *name);
    CUresult (*func_get_attribute)(int *value, int attribute, CUfunction function);
    CUresult (*func_set_attribute)(CUfunction function, int attribute, int value);
    CUresult (*launch_kernel)(CUfunction function, unsigned grid_x, unsigned grid_y, unsigned grid_z,
                              unsigned block_x, unsigned block_y, unsigned block_z, unsigned shared_bytes,
                              CUstream stream, void **params, void **extra);
    CUresult (*event_create)(CUevent *event, unsigned flags);
    CUresult (*event_record)(CUevent event, CUstream stream);
    CUresult (*event_synchronize)(CUevent event);
    CUresult (*event_elapsed_time)(float *milliseconds, CUevent start, CUevent end);
    CUresult (*event_destroy)(CUevent event);
} cuda;

static pthread_once_t cuda_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t contexts_lock = PTHREAD_MUTEX_INITIALIZER;
static CUcontext retained_contexts[MAX_DEVICES];

/* A loaded module, shared by the functions taken from it (rt_function_load_sibling). */
typedef struct rt_module {
    CUmodule module;
    unsigned refs;
} rt_module;

struct rt_function {
    rt_module *module;
    CUfunction function;
};

/* "cuda: <what> failed: <CUDA_ERROR_NAME> (<string>)"; returns false so that callers can return it. */
static bool cuda_failed(rt_error *err, const char *what, CUresult result)
{
    const char *name = NULL, *text = NULL;
    char unknown_name[40];
    if (cuda.get_error_name(result, &name) != CUDA_SUCCESS || !name) {
        snprintf(unknown_name, sizeof unknown_name, "CUDA error %d", result);
        name = unknown_name;
    }
    if (cuda.get_error_string(result, &text) != CUDA_SUCCESS || !text)
        text = "no description";
    rt_set_error(err, "cuda: %s failed: %s (%s)", what, name, text);
    return false;
}

/* Resolves the first of `names` (NULL-terminated) that the driver exports. */
static bool resolve_symbol(void *function_slot, const char *const *names)
{
    for (const char *const *name = names; *name; name++) {
        void *symbol = dlsym(cuda.library, *name);
        if (symbol) {
            memcpy(function_slot, &symbol, sizeof symbol);
            return true;
        }
    }
    snprintf(cuda.open_error, sizeof cuda.open_error, "cuda: symbol %s not found in libcuda.so.1", names[0]);
    return false;
}

#define RESOLVE(slot, ...) resolve_symbol(&cuda.slot, (const char *const[]){__VA_ARGS__, NULL})

static void open_driver(void)
{
    cuda.library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!cuda.library) {
        const char *message = dlerror();
        snprintf(cuda.open_error, sizeof cuda.open_error, "cuda: cannot open libcuda.so.1 (no driver?): %.300s",
                 message ? message : "");
        return;
    }
    bool found = RESOLVE(init, "cuInit") && RESOLVE(driver_get_version, "cuDriverGetVersion") &&
                 RESOLVE(get_error_name, "cuGetErrorName") && RESOLVE(get_error_string, "cuGetErrorString") &&
                 RESOLVE(device_get, "cuDeviceGet") && RESOLVE(device_get_count, "cuDeviceGetCount") &&
                 RESOLVE(device_get_name, "cuDeviceGetName") &&
                 RESOLVE(device_get_attribute, "cuDeviceGetAttribute") &&
                 RESOLVE(device_total_mem, "cuDeviceTotalMem_v2") &&
                 RESOLVE(primary_ctx_retain, "cuDevicePrimaryCtxRetain") &&
                 RESOLVE(ctx_set_current, "cuCtxSetCurrent") && RESOLVE(ctx_synchronize, "cuCtxSynchronize") &&
                 RESOLVE(mem_alloc, "cuMemAlloc_v2") && RESOLVE(mem_free, "cuMemFree_v2") &&
                 RESOLVE(memcpy_htod, "cuMemcpyHtoD_v2") && RESOLVE(memcpy_dtoh, "cuMemcpyDtoH_v2") &&
                 RESOLVE(memset_d8, "cuMemsetD8_v2") && RESOLVE(module_load_data, "cuModuleLoadData") &&
                 RESOLVE(module_unload, "cuModuleUnload") &&
                 RESOLVE(module_get_function, "cuModuleGetFunction") &&
                 RESOLVE(func_get_attribute, "cuFuncGetAttribute") &&
                 RESOLVE(func_set_attribute, "cuFuncSetAttribute") && RESOLVE(launch_kernel, "cuLaunchKernel") &&
                 RESOLVE(event_create, "cuEventCreate") && RESOLVE(event_record, "cuEventRecord") &&
                 RESOLVE(event_synchronize, "cuEventSynchronize") &&
                 /* CUDA 13's cuda.h maps cuEventElapsedTime to _v2; older drivers have only the first */
                 RESOLVE(event_elapsed_time, "cuEventElapsedTime_v2", "cuEventElapsedTime") &&
                 RESOLVE(event_destroy, "cuEventDestroy_v2", "cuEventDestroy");
    if (!found)
        return;
    CUresult result = cuda.init(0);
    if (result != CUDA_SUCCESS) {
        rt_error init_error;
        cuda_failed(&init_error, "cuInit", result);
        memcpy(cuda.open_error, init_error.msg, sizeof cuda.open_error);
        return;
    }
    cuda.ready = true;
}

static bool driver_ready(rt_error *err)
{
    pthread_once(&cuda_once, open_driver);
    if (!cuda.ready) {
        rt_set_error(err, "%s", cuda.open_error);
        return false;
    }
    return true;
}

bool rt_driver_available(void)
{
    pthread_once(&cuda_once, open_driver);
    int count = 0;
    return cuda.ready && cuda.device_get_count(&count) == CUDA_SUCCESS && count > 0;
}

static bool device_attribute(int *value, int attribute, CUdevice device, const char *what, rt_error *err)
{
    CUresult result = cuda.device_get_attribute(value, attribute, device);
    return result == CUDA_SUCCESS || cuda_failed(err, what, result);
}

static bool describe_device(int ordinal, CUdevice device, rt_device_info *info, rt_error *err)
{
    memset(info, 0, sizeof *info);
    info->ordinal = ordinal;
    int smem_optin = 0;
    CUresult result;
    if ((result = cuda.device_get_name(info->name, (int)sizeof info->name, device)) != CUDA_SUCCESS)
        return cuda_failed(err, "cuDeviceGetName", result);
    info->name[sizeof info->name - 1] = '\0';
    if (!device_attribute(&info->cc_major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device,
                          "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MAJOR)", err) ||
        !device_attribute(&info->cc_minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device,
                          "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MINOR)", err) ||
        !device_attribute(&info->sm_count, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, device,
                          "cuDeviceGetAttribute(MULTIPROCESSOR_COUNT)", err) ||
        !device_attribute(&smem_optin, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, device,
                          "cuDeviceGetAttribute(MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)", err))
        return false;
    info->smem_optin = smem_optin > 0 ? (size_t)smem_optin : 0;
    if ((result = cuda.device_total_mem(&info->total_mem, device)) != CUDA_SUCCESS)
        return cuda_failed(err, "cuDeviceTotalMem", result);
    if ((result = cuda.driver_get_version(&info->driver_version)) != CUDA_SUCCESS)
        return cuda_failed(err, "cuDriverGetVersion", result);
    return true;
}

bool rt_driver_open(int ordinal, rt_device_info *info, rt_error *err)
{
    if (!driver_ready(err))
        return false;
    int count = 0;
    CUresult result = cuda.device_get_count(&count);
    if (result != CUDA_SUCCESS)
        return cuda_failed(err, "cuDeviceGetCount", result);
    if (ordinal < 0 || ordinal >= count || ordinal >= MAX_DEVICES) {
        rt_set_error(err, "cuda: no device %d (the driver sees %d)", ordinal, count);
        return false;
    }
    CUdevice device;
    if ((result = cuda.device_get(&device, ordinal)) != CUDA_SUCCESS)
        return cuda_failed(err, "cuDeviceGet", result);

    pthread_mutex_lock(&contexts_lock);
    if (!retained_contexts[ordinal]) {
        CUcontext context = NULL;
        result = cuda.primary_ctx_retain(&context, device);
        if (result == CUDA_SUCCESS)
            retained_contexts[ordinal] = context;
    }
    CUcontext context = retained_contexts[ordinal];
    pthread_mutex_unlock(&contexts_lock);
    if (!context)
        return cuda_failed(err, "cuDevicePrimaryCtxRetain", result);
    if ((result = cuda.ctx_set_current(context)) != CUDA_SUCCESS)
        return cuda_failed(err, "cuCtxSetCurrent", result);
    return !info || describe_device(ordinal, device, info, err);
}

/* A cubin and a fat binary start with their magic; anything else is PTX and must be NUL-terminated
 * within `size`, since cuModuleLoadData reads up to the NUL. */
static bool image_is_loadable(const void *image, size_t size)
{
    static const unsigned char elf_magic[4] = {0x7f, 'E', 'L', 'F'};
    static const unsigned char fatbin_magic[4] = {0x50, 0xed, 0x55, 0xba};
    if (!image || size == 0)
        return false;
    if (size >= 4 && (memcmp(image, elf_magic, 4) == 0 || memcmp(image, fatbin_magic, 4) == 0))
        return true;
    return memchr(image, '\0', size) != NULL;
}

/* Gets `entry` from `module` into a new function that holds one reference to it. */
static bool function_from(rt_module *module, const char *entry, rt_function **out, rt_error *err)
{
    rt_function *fn = calloc(1, sizeof *fn);
    if (!fn) {
        rt_set_error(err, "cuda: loading a kernel: out of memory");
        return false;
    }
    CUresult result = cuda.module_get_function(&fn->function, module->module, entry);
    if (result != CUDA_SUCCESS) {
        free(fn);
        char what[256];
        snprintf(what, sizeof what, "cuModuleGetFunction(%.200s)", entry);
        return cuda_failed(err, what, result);
    }
    fn->module = module;
    module->refs++;
    *out = fn;
    return true;
}

static void module_release(rt_module *module)
{
    if (--module->refs > 0)
        return;
    if (cuda.ready)
        cuda.module_unload(module->module);
    free(module);
}

bool rt_function_load(const void *image, size_t size, const char *entry, rt_function **out, rt_error *err)
{
    *out = NULL;
    if (!driver_ready(err))
        return false;
    if (!entry || !image_is_loadable(image, size)) {
        rt_set_error(err, "cuda: loading a module: the image is empty, or PTX without a terminating NUL");
        return false;
    }
    rt_module *module = calloc(1, sizeof *module);
    if (!module) {
        rt_set_error(err, "cuda: loading a module: out of memory");
        return false;
    }
    CUresult result = cuda.module_load_data(&module->module, image);
    if (result != CUDA_SUCCESS) {
        free(module);
        return cuda_failed(err, "cuModuleLoadData", result);
    }
    module->refs = 1; /* held while the first function is taken */
    bool ok = function_from(module, entry, out, err);
    module_release(module);
    return ok;
}

bool rt_function_load_sibling(rt_function *sibling, const char *entry, rt_function **out, rt_error *err)
{
    *out = NULL;
    if (!driver_ready(err))
        return false;
    if (!sibling || !entry) {
        rt_set_error(err, "cuda: loading a kernel: no module or no entry name");
        return false;
    }
    return function_from(sibling->module, entry, out, err);
}

void rt_function_free(rt_function *fn)
{
    if (!fn)
        return;
    module_release(fn->module);
    free(fn);
}

bool rt_function_get_attrs(rt_function *fn, rt_function_attrs *attrs, rt_error *err)
{
    static const struct {
        int attribute;
        size_t offset;
        const char *what;
    } wanted[] = {
        {CU_FUNC_ATTRIBUTE_NUM_REGS, offsetof(rt_function_attrs, num_regs), "cuFuncGetAttribute(NUM_REGS)"},
        {CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, offsetof(rt_function_attrs, local_bytes),
         "cuFuncGetAttribute(LOCAL_SIZE_BYTES)"},
        {CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, offsetof(rt_function_attrs, static_smem),
         "cuFuncGetAttribute(SHARED_SIZE_BYTES)"},
        {CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, offsetof(rt_function_attrs, max_threads),
         "cuFuncGetAttribute(MAX_THREADS_PER_BLOCK)"},
        {CU_FUNC_ATTRIBUTE_BINARY_VERSION, offsetof(rt_function_attrs, binary_version),
         "cuFuncGetAttribute(BINARY_VERSION)"},
        {CU_FUNC_ATTRIBUTE_PTX_VERSION, offsetof(rt_function_attrs, ptx_version),
         "cuFuncGetAttribute(PTX_VERSION)"},
    };
    memset(attrs, 0, sizeof *attrs);
    if (!driver_ready(err))
        return false;
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
        int value = 0;
        CUresult result = cuda.func_get_attribute(&value, wanted[i].attribute, fn->function);
        if (result != CUDA_SUCCESS)
            return cuda_failed(err, wanted[i].what, result);
        memcpy((char *)attrs + wanted[i].offset, &value, sizeof value);
    }
    return true;
}

bool rt_function_set_smem(rt_function *fn, size_t bytes, rt_error *err)
{
    if (!driver_ready(err))
        return false;
    if (bytes > (size_t)0x7fffffff) {
        rt_set_error(err, "cuda: %zu bytes of dynamic shared memory is more than any device has", bytes);
        return false;
    }
    CUresult result =
        cuda.func_set_attribute(fn->function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, (int)bytes);
    return result == CUDA_SUCCESS ||
           cuda_failed(err, "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)", result);
}

bool rt_launch(rt_function *fn, const unsigned grid[3], const unsigned block[3], size_t smem, void *stream,
               void **params, rt_error *err)
{
    if (!driver_ready(err))
        return false;
    if (smem > 0xffffffffu) {
        rt_set_error(err, "cuda: launching with %zu bytes of dynamic shared memory: too many", smem);
        return false;
    }
    CUresult result = cuda.launch_kernel(fn->function, grid[0], grid[1], grid[2], block[0], block[1], block[2],
                                         (unsigned)smem, (CUstream)stream, params, NULL);
    if (result != CUDA_SUCCESS) {
        char what[160];
        snprintf(what, sizeof what, "cuLaunchKernel(grid %ux%ux%u, block %ux%ux%u, smem %zu)", grid[0], grid[1],
                 grid[2], block[0], block[1], block[2], smem);
        return cuda_failed(err, what, result);
    }
    return true;
}

bool rt_mem_alloc(uint64_t *dptr, size_t bytes, rt_error *err)
{
    *dptr = 0;
    if (!driver_ready(err))
        return false;
    CUdeviceptr allocated = 0;
    CUresult result = cuda.mem_alloc(&allocated, bytes);
    if (result != CUDA_SUCCESS) {
        char what[80];
        snprintf(what, sizeof what, "cuMemAlloc(%zu bytes)", bytes);
        return cuda_failed(err, what, result);
    }
    *dptr = allocated;
    return true;
}

void rt_mem_free(uint64_t dptr)
{
    if (dptr && cuda.ready)
        cuda.mem_free(dptr);
}

bool rt_memcpy_htod(uint64_t dst, const void *src, size_t bytes, rt_error *err)
{
    if (!driver_ready(err))
        return false;
    CUresult result = cuda.memcpy_htod(dst, src, bytes);
    return result == CUDA_SUCCESS || cuda_failed(err, "cuMemcpyHtoD", result);
}

bool rt_memcpy_dtoh(void *dst, uint64_t src, size_t bytes, rt_error *err)
{
    if (!driver_ready(err))
        return false;
    CUresult result = cuda.memcpy_dtoh(dst, src, bytes);
    return result == CUDA_SUCCESS || cuda_failed(err, "cuMemcpyDtoH", result);
}

bool rt_memset_d8(uint64_t dst, unsigned char value, size_t bytes, rt_error *err)
{
    if (!driver_ready(err))
        return false;
    CUresult result = cuda.memset_d8(dst, value, bytes);
    return result == CUDA_SUCCESS || cuda_failed(err, "cuMemsetD8", result);
}

bool rt_synchronize(rt_error *err)
{
    if (!driver_ready(err))
        return false;
    CUresult result = cuda.ctx_synchronize();
    return result == CUDA_SUCCESS || cuda_failed(err, "cuCtxSynchronize", result);
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One timed run: start event, the caller's run, end event, wait, elapsed time. */
static bool time_one_run(rt_run_fn run, void *closure, CUevent start, CUevent end, double *ms, rt_error *err)
{
    CUresult result;
    if ((result = cuda.event_record(start, NULL)) != CUDA_SUCCESS)
        return cuda_failed(err, "cuEventRecord(start)", result);
    if (!run(closure, err))
        return false;
    if ((result = cuda.event_record(end, NULL)) != CUDA_SUCCESS)
        return cuda_failed(err, "cuEventRecord(end)", result);
    if ((result = cuda.event_synchronize(end)) != CUDA_SUCCESS)
        return cuda_failed(err, "cuEventSynchronize", result);
    float elapsed = 0.0f;
    if ((result = cuda.event_elapsed_time(&elapsed, start, end)) != CUDA_SUCCESS)
        return cuda_failed(err, "cuEventElapsedTime", result);
    *ms = elapsed;
    return true;
}

bool rt_time_ms(rt_run_fn run, void *closure, int warmup, int reps, double *median_ms, rt_error *err)
{
    *median_ms = 0.0;
    if (!driver_ready(err))
        return false;
    if (reps <= 0 || warmup < 0) {
        rt_set_error(err, "cuda: timing needs at least one run (reps %d, warmup %d)", reps, warmup);
        return false;
    }
    for (int i = 0; i < warmup; i++)
        if (!run(closure, err))
            return false;
    if (!rt_synchronize(err))
        return false;

    double *times = malloc((size_t)reps * sizeof *times);
    if (!times) {
        rt_set_error(err, "cuda: timing: out of memory for %d runs", reps);
        return false;
    }
    CUevent start = NULL, end = NULL;
    CUresult result;
    bool ok = false;
    if ((result = cuda.event_create(&start, CU_EVENT_DEFAULT)) != CUDA_SUCCESS)
        cuda_failed(err, "cuEventCreate", result);
    else if ((result = cuda.event_create(&end, CU_EVENT_DEFAULT)) != CUDA_SUCCESS)
        cuda_failed(err, "cuEventCreate", result);
    else {
        ok = true;
        for (int i = 0; i < reps && ok; i++)
            ok = time_one_run(run, closure, start, end, &times[i], err);
    }
    if (ok) {
        qsort(times, (size_t)reps, sizeof *times, compare_doubles);
        *median_ms = reps % 2 ? times[reps / 2] : 0.5 * (times[reps / 2 - 1] + times[reps / 2]);
    }
    if (start)
        cuda.event_destroy(start);
    if (end)
        cuda.event_destroy(end);
    free(times);
    return ok;
}
