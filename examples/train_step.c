/* examples/train_step.c: a training step through include/attnc.h, forward and backward, the forward saving
 * its chunk states for the backward.
 *
 *   build/train_step            (exit 77 when there is no GPU)
 *
 * The forward and backward handles share one workspace (attnc_share_workspace).  attnc_saved_states_bytes
 * sizes the buffer in which the forward leaves every chunk's incoming state for the backward, which then does
 * not walk the sequence again for them; the step is run both ways and the gradients compared (the saved states
 * come from the forward's walk, the others from the backward's own: the same math, rounded alike; for this spec,
 * whose forward and backward chunks are both 64 tokens, the same bits: on the H200 the three gradients differed
 * by 0).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

enum { B = 40, T = 500, H = 4, D = 64 };
#define N ((size_t)B * T * H * D)

static attnc_tensor tensor4(void *data)
{
    attnc_tensor x = {.data = data, .dtype = ATTNC_BF16, .ndim = 4, .shape = {B, T, H, D},
                      .stride = {(int64_t)T * H * D, H * D, D, 1}};
    return x;
}

static float bf16_to_float(unsigned short x)
{
    unsigned u = (unsigned)x << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ||a - b|| / ||b|| of two bf16 device buffers of N elements */
static double rel_diff(const void *a, const void *b, unsigned short *ha, unsigned short *hb)
{
    cudaMemcpy(ha, a, N * 2, cudaMemcpyDeviceToHost);
    cudaMemcpy(hb, b, N * 2, cudaMemcpyDeviceToHost);
    double num = 0, den = 0;
    for (size_t i = 0; i < N; i++) {
        double x = bf16_to_float(ha[i]), y = bf16_to_float(hb[i]);
        num += (x - y) * (x - y);
        den += y * y;
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* One forward and backward; saved: the forward's chunk states for the backward, or NULL. */
static int step(attnc_ctx *ctx, attnc_kernel *fwd, attnc_grad_kernel *bwd, attnc_tensor *inputs, void *out, void *dout,
                void **grads, void *saved)
{
    attnc_forward_args fa = {.inputs = inputs, .ninputs = 3, .out = tensor4(out), .saved = saved, .saved_for = bwd};
    attnc_tensor dins[3] = {tensor4(grads[0]), tensor4(grads[1]), tensor4(grads[2])};
    attnc_backward_args ba = {.inputs = inputs, .ninputs = 3, .dout = tensor4(dout), .dinputs = dins, .saved = saved};
    if (attnc_forward(ctx, fwd, &fa) != ATTNC_OK || attnc_backward(ctx, bwd, &ba) != ATTNC_OK) {
        fprintf(stderr, "train_step: %s\n", attnc_errmsg(ctx));
        return 1;
    }
    return cudaDeviceSynchronize() == cudaSuccess ? 0 : 1;
}

int main(void)
{
    if (!attnc_gpu_available()) {
        fprintf(stderr, "train_step: no GPU here: skipped\n");
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
    attnc_kernel *fwd;
    attnc_grad_kernel *bwd;
    if (attnc_kernel_new(ctx, spec, NULL, &fwd) != ATTNC_OK || attnc_grad_kernel_new(ctx, spec, NULL, &bwd) != ATTNC_OK ||
        attnc_share_workspace(ctx, fwd, bwd) != ATTNC_OK) {
        fprintf(stderr, "train_step: %s\n", attnc_errmsg(ctx));
        return 1;
    }
    attnc_spec_free(spec);

    unsigned short *ha = malloc(N * 2), *hb = malloc(N * 2);
    for (size_t i = 0; i < N; i++) {   /* bf16 numbers in [-0.5, 0.5), dout and the inputs alike */
        float x = (float)((i * 2654435761u) % 1000) / 1000.f - 0.5f;
        unsigned u;
        memcpy(&u, &x, sizeof u);
        ha[i] = (unsigned short)(u >> 16);
    }
    void *buf[11];
    for (int i = 0; i < 11; i++)
        cudaMalloc(&buf[i], N * 2);
    for (int i = 0; i < 3; i++)
        cudaMemcpy(buf[i], ha, N * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(buf[4], ha, N * 2, cudaMemcpyHostToDevice);
    attnc_tensor inputs[3] = {tensor4(buf[0]), tensor4(buf[1]), tensor4(buf[2])};
    void *out = buf[3], *dout = buf[4], *with_saved[3] = {buf[5], buf[6], buf[7]}, *without[3] = {buf[8], buf[9], buf[10]};

    /* 0 where this pair saves nothing on this shape (then pass NULL: the backward walks the chunks itself) */
    size_t bytes = attnc_saved_states_bytes(fwd, bwd, B, T, 0);
    void *saved = NULL;
    if (bytes)
        cudaMalloc(&saved, bytes);
    printf("saved states: %zu bytes for %d sequences of %d tokens\n", bytes, B, T);
    int rc = step(ctx, fwd, bwd, inputs, out, dout, with_saved, saved) ||
             step(ctx, fwd, bwd, inputs, out, dout, without, NULL);
    const char *names[3] = {"dq", "dk", "dv"};
    for (int i = 0; i < 3 && !rc; i++) {
        double d = rel_diff(with_saved[i], without[i], ha, hb);
        printf("%s: relative difference with and without saved states %.2e\n", names[i], d);
        rc |= !(d < 1e-2);
    }
    cudaFree(saved);
    for (int i = 0; i < 11; i++)
        cudaFree(buf[i]);
    free(ha);
    free(hb);
    attnc_grad_kernel_free(bwd);
    attnc_kernel_free(fwd);
    attnc_ctx_free(ctx);
    return rc || !bytes;   /* (this shape is one that saves: 0 bytes would be a regression) */
}
