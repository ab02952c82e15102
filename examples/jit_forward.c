/* examples/jit_forward.c: JIT a spec from a string and run it on the GPU through include/attnc.h.
 *
 *   build/jit_forward            (exit 77 when there is no GPU)
 *
 * The spec is Lightning Attention written inline; attnc compiles it for the GPU present (or finds it in
 * the disk cache; tiered: quick kernels first, the optimised ones from a thread), and attnc_forward launches
 * it on device buffers allocated with the CUDA runtime.
 * A wrong shape is refused with a message before anything runs (shown at the end).
 */
#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime.h>

#include "attnc.h"

static const char spec_text[] =
    "attention lightning_small {\n"
    "  dim K = 64, V = 64;\n"
    "  heads H = 4;\n"
    "  input q: bf16[H, K];\n"
    "  input k: bf16[H, K];\n"
    "  input v: bf16[H, V];\n"
    "  linear { query = q * K^-0.5; key = k; value = v; decay = 0.99; }\n"
    "  mask causal;\n"
    "  chunk 64;\n"
    "}\n";

static attnc_tensor tensor4(void *data, int64_t b, int64_t t, int64_t h, int64_t d)
{
    attnc_tensor x = {.data = data, .dtype = ATTNC_BF16, .ndim = 4, .shape = {b, t, h, d},
                      .stride = {t * h * d, h * d, d, 1}};
    return x;
}

int main(void)
{
    if (!attnc_gpu_available()) {
        fprintf(stderr, "jit_forward: no GPU here: skipped\n");
        return 77;
    }
    attnc_ctx *ctx;
    if (attnc_ctx_new(&ctx) != ATTNC_OK)
        return 1;
    attnc_spec *spec;
    if (attnc_spec_from_string(ctx, "lightning_small", spec_text, sizeof spec_text - 1, &spec) != ATTNC_OK) {
        fputs(attnc_spec_diag_text(spec), stderr);
        return 1;
    }
    attnc_kernel *kernel;
    if (attnc_kernel_new(ctx, spec, NULL, &kernel) != ATTNC_OK) {
        fprintf(stderr, "jit_forward: %s\n", attnc_errmsg(ctx));
        return 1;
    }
    attnc_kernel_info info;
    attnc_kernel_get_info(kernel, 0, &info);
    printf("kernel %s for %s: %d registers, %u bytes of shared memory, %s in %.1f ms\n", info.entry, info.arch,
           info.regs, info.smem_bytes, info.cache_hit ? "from the cache" : info.quick ? "compiled quickly" : "compiled",
           info.load_ms);
    /* The JIT is tiered: from an empty cache the first launches run quickly compiled kernels while the
     * optimised ones compile on a thread; a launch takes those when they are ready.  Waiting for them here
     * makes every launch below run them (and puts them in the disk cache). */
    if (info.quick && attnc_kernel_wait_optimized(ctx, kernel) == ATTNC_OK) {
        attnc_kernel_get_info(kernel, 0, &info);
        printf("the optimised kernel: %d registers, compiled in %.1f ms on a thread\n", info.regs, info.compile_ms);
    }
    attnc_spec_free(spec); /* the kernel keeps what it needs */

    const int64_t B = 2, T = 1000, H = 4, D = 64, n = B * T * H * D;
    unsigned short *host = malloc(n * sizeof *host);
    for (int64_t i = 0; i < n; i++)
        host[i] = 0x3c00 + (unsigned short)(i % 7); /* bf16 numbers near 0.0078 */
    void *q, *k, *v, *out;
    cudaMalloc(&q, n * 2);
    cudaMalloc(&k, n * 2);
    cudaMalloc(&v, n * 2);
    cudaMalloc(&out, n * 2);
    cudaMemcpy(q, host, n * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(k, host, n * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(v, host, n * 2, cudaMemcpyHostToDevice);
    attnc_tensor inputs[3] = {tensor4(q, B, T, H, D), tensor4(k, B, T, H, D), tensor4(v, B, T, H, D)};
    attnc_forward_args args = {.inputs = inputs, .ninputs = 3, .out = tensor4(out, B, T, H, D)};
    int rc = 0;
    if (attnc_forward(ctx, kernel, &args) != ATTNC_OK || cudaDeviceSynchronize() != cudaSuccess) {
        fprintf(stderr, "jit_forward: %s\n", attnc_errmsg(ctx));
        rc = 1;
    } else {
        cudaMemcpy(host, out, n * 2, cudaMemcpyDeviceToHost);
        printf("out[0] = 0x%04x, out[last] = 0x%04x (bf16 bits)\n", host[0], host[n - 1]);
    }
    /* A wrong shape is a clear error, not a crash. */
    args.out = tensor4(out, B, T, H, D + 1);
    if (attnc_forward(ctx, kernel, &args) == ATTNC_ERR_USAGE)
        printf("a wrong shape is refused: %s\n", attnc_errmsg(ctx));
    else
        rc = 1;
    cudaFree(q);
    cudaFree(k);
    cudaFree(v);
    cudaFree(out);
    free(host);
    attnc_kernel_free(kernel);
    attnc_ctx_free(ctx);
    return rc;
}
