/* tests/test_grad_workspace.c: the backward's workspace at the benchmark's shape (bench/bench.py: B = 8,
 * T = 8192, the specs' H = 16, K = V = 128, bf16; no initial state), from api/backward.c's own sizing
 * (api_grad_workspace_plan: the plan alone, no device), and the extra memory of one forward+backward it
 * implies: that workspace, the output and every input's gradient (bench/RESULTS.md's "attnc MiB": 2585,
 * 3085 and 4873 MiB before the images carried 16-bit mantissas).  Each must stay at or below FLA's
 * (simple_gla 3080, simple_gla_gam 3072, gla 6144, delta_rule 4234, gated_delta_rule 4248 MiB; the delta rule's
 * workspace holds every chunk's T too).
 * usage: test_grad_workspace [SPEC_DIR] */
#include <stdio.h>

#include "api_internal.h"

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ATTNC_SOURCE_DIR "/specs";
    static const struct {
        const char *op, *spec;
        double fla_mib;
    } cases[] = {{"simple_gla", "mamba2", 3080},       {"simple_gla_gam", "lightning", 3072},
                 {"gla", "gla", 6144},                  {"delta_rule", "deltanet", 4234},
                 {"gated_delta_rule", "gated_deltanet", 4248}, {"gated_delta_rule", "gated_delta_rule", 4248}};
    const int64_t B = 8, T = 8192;
    const size_t rows = (size_t)(B * T);
    int failures = 0;
    attnc_ctx *ctx = NULL;
    if (attnc_ctx_new(&ctx) != ATTNC_OK)
        return 1;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s.attn", dir, cases[i].spec);
        attnc_spec *spec = NULL;
        size_t ws = 0;
        if (attnc_spec_from_file(ctx, path, &spec) != ATTNC_OK ||
            api_grad_workspace_plan(ctx, spec, B, T, 0, &ws) != ATTNC_OK) {
            fprintf(stderr, "%s: %s\n", path, spec ? attnc_spec_diag_text(spec) : attnc_errmsg(ctx));
            return 1;
        }
        const ir_module *m = spec->ir;
        ir_shape sh = ir_module_shape(m);
        size_t out = rows * sh.heads_out * sh.V * ir_dtype_bytes(m->out_dtype), grads = 0;
        for (uint32_t t = 0; t < m->ntensors; t++) {
            const ir_tensor *x = &m->tensors[t];
            grads += (x->per_token ? rows : 1) * m->axes[x->axis].count * x->len * ir_dtype_bytes(x->dtype);
        }
        double mib = 1024.0 * 1024.0, extra = (double)(ws + out + grads) / mib;
        bool ok = extra <= cases[i].fla_mib;
        failures += !ok;
        printf("%-15s (%s) workspace %.0f MiB, output %.0f, gradients %.0f: extra %.0f MiB against FLA's %.0f %s\n",
               cases[i].op, cases[i].spec, (double)ws / mib, (double)out / mib, (double)grads / mib, extra, cases[i].fla_mib, ok ? "ok" : "FAIL");
        attnc_spec_free(spec);
    }
    attnc_ctx_free(ctx);
    return failures ? 1 : 0;
}
