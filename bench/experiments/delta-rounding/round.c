/* bench/experiments/delta-rounding/round.c: how far rounding roles (after the value DAG) and, with a mask
 * (model.patch), the chunked backward's stored intermediates to bf16 moves each gradient of a spec, on the
 * inputs `attnc run --grad --tokens 1000 --batch 2 --initial-state --seed S` draws (README.md).
 * usage: round SPEC SEED ROLES [MASK]   (ROLES: letters of q k v b g, or -) */
#include "api_internal.h"
#include "ref.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double rel(const double *a, const double *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += b[i] * b[i];
    }
    return sqrt(num / den);
}

static void round_role(ref_role *r, size_t total)
{
    if (!r->data)
        return;
    size_t n = (r->per_head ? 1 : total) * r->heads * r->len;
    for (size_t i = 0; i < n; i++)
        r->data[i] = ref_round_dtype(r->data[i], IR_DT_BF16);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: round SPEC SEED ROLES [MASK]\n");
        return 2;
    }
    const char *path = argv[1];
    unsigned seed = (unsigned)atoi(argv[2]);
    const char *what = argv[3]; /* letters: q k v b g */
    attnc_ctx *ctx;
    attnc_ctx_new(&ctx);
    attnc_spec *spec;
    if (attnc_spec_from_file(ctx, path, &spec) != ATTNC_OK) {
        fprintf(stderr, "spec\n");
        return 1;
    }
    const ir_module *m = spec->ir;
    attnc_arena *a = attnc_arena_new();
    attnc_diags d;
    attnc_diags_init(&d, a);
    uint32_t lens[2] = {1000, 1000};
    ref_problem prob = {.seed = seed, .seqlens = lens, .nseq = 2, .use_h0 = true};
    ref_data *data = ref_draw(m, &prob, a, &d);
    ref_result *up = ref_draw_upstream(m, data, seed, a);
    size_t nout = (size_t)data->dims.total * data->dims.Hout * data->dims.V;
    for (size_t i = 0; i < nout; i++)
        up->out[i] = ref_round_dtype(up->out[i], m->out_dtype);
    ref_grad *ge = ref_backward(m, data, up, a, &d);   /* exact: recurrent, float64 */
    size_t T = data->dims.total;
    if (strchr(what, 'q')) round_role(&data->roles.q, T);
    if (strchr(what, 'k')) round_role(&data->roles.k, T);
    if (strchr(what, 'v')) round_role(&data->roles.v, T);
    if (strchr(what, 'b')) round_role(&data->roles.beta, T);
    if (strchr(what, 'g')) round_role(&data->roles.gate, T);
    extern unsigned ref_exp_round;
    ref_exp_round = argc > 4 ? (unsigned)atoi(argv[4]) : 0;
    ref_grad *gr = argc > 4 ? ref_backward_chunked(m, data, up, 64, a, &d) : ref_backward(m, data, up, a, &d);
    for (uint32_t i = 0; i < m->ntensors; i++)
        printf("%s %.3e  ", m->tensors[i].name, rel(gr->tensor[i], ge->tensor[i], data->tensor_count[i]));
    printf("\n");
    return 0;
}
