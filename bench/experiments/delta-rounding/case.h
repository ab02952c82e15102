/* bench/experiments/delta-rounding/case.h: the inputs `attnc run SPEC --grad --tokens 1000 --batch 2
 * --initial-state --seed S` draws (ref_draw, ref_draw_upstream, dout rounded to the output's dtype), shared
 * by round.c and export.c. */
#include "api_internal.h"
#include "ref.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct exp_case {
    const ir_module *m;
    attnc_arena *a;
    attnc_diags d;
    ref_data *data;
    ref_result *up;
} exp_case;

/* False (with a message) where the spec does not load or the draw fails.  EXP_GATE_SCALE=X: the draws of
 * `attnc run ... --gate-scale X` (every tensor the gate reads times X, rounded again, the roles anew). */
static bool exp_case_draw(const char *spec_path, unsigned seed, exp_case *c)
{
    static uint32_t lens[2] = {1000, 1000};
    attnc_ctx *ctx;
    attnc_spec *spec;
    if (attnc_ctx_new(&ctx) != ATTNC_OK || attnc_spec_from_file(ctx, spec_path, &spec) != ATTNC_OK) {
        fprintf(stderr, "%s: cannot load the spec\n", spec_path);
        return false;
    }
    c->m = spec->ir;
    c->a = attnc_arena_new();
    attnc_diags_init(&c->d, c->a);
    ref_problem prob = {.seed = seed, .seqlens = lens, .nseq = 2, .use_h0 = true};
    c->data = ref_draw(c->m, &prob, c->a, &c->d);
    const char *gs = getenv("EXP_GATE_SCALE");
    const double scale = gs ? atof(gs) : 0.0;
    if (c->data && scale > 0) {
        const ir_module *m = c->m;
        for (uint32_t i = 0; i < m->ntensors; i++)
            if (api_reads_tensor(m, m->linear.gate, i))
                for (size_t j = 0; j < c->data->tensor_count[i]; j++)
                    c->data->tensor[i][j] = ref_round_dtype(c->data->tensor[i][j] * scale, m->tensors[i].dtype);
        if (!ref_eval_roles(m, c->data, c->a, &c->d)) {
            fprintf(stderr, "%s: cannot evaluate the roles\n", spec_path);
            return false;
        }
    }
    c->up = c->data ? ref_draw_upstream(c->m, c->data, seed, c->a) : NULL;
    if (!c->up) {
        fprintf(stderr, "%s: cannot draw the inputs\n", spec_path);
        return false;
    }
    size_t nout = (size_t)c->data->dims.total * c->data->dims.Hout * c->data->dims.V;
    for (size_t i = 0; i < nout; i++)
        c->up->out[i] = ref_round_dtype(c->up->out[i], c->m->out_dtype);
    return true;
}
