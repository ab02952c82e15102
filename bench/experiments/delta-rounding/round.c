/* bench/experiments/delta-rounding/round.c: how far rounding roles (after the value DAG) and, with a mask
 * (model.patch), the chunked backward's stored intermediates to bf16 moves each gradient of a spec, on the
 * inputs `attnc run --grad --tokens 1000 --batch 2 --initial-state --seed S` draws (README.md).
 * usage: round SPEC SEED ROLES [MASK]   (ROLES: letters of q k v b g, or -) */
#include "case.h"
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
    const char *what = argv[3]; /* letters: q k v b g */
    exp_case c;
    if (!exp_case_draw(argv[1], (unsigned)atoi(argv[2]), &c))
        return 1;
    const ir_module *m = c.m;
    ref_data *data = c.data;
    ref_result *up = c.up;
    ref_grad *ge = ref_backward(m, data, up, c.a, &c.d);   /* exact: recurrent, float64 */
    size_t T = data->dims.total;
    if (strchr(what, 'q')) round_role(&data->roles.q, T);
    if (strchr(what, 'k')) round_role(&data->roles.k, T);
    if (strchr(what, 'v')) round_role(&data->roles.v, T);
    if (strchr(what, 'b')) round_role(&data->roles.beta, T);
    if (strchr(what, 'g')) round_role(&data->roles.gate, T);
    extern unsigned ref_exp_round;
    ref_exp_round = argc > 4 ? (unsigned)atoi(argv[4]) : 0;
    ref_grad *gr = argc > 4 ? ref_backward_chunked(m, data, up, 64, c.a, &c.d) : ref_backward(m, data, up, c.a, &c.d);
    for (uint32_t i = 0; i < m->ntensors; i++)
        printf("%s %.3e  ", m->tensors[i].name, rel(gr->tensor[i], ge->tensor[i], data->tensor_count[i]));
    printf("\n");
    return 0;
}
