/* bench/experiments/delta-rounding/export.c: the inputs `attnc run SPEC --grad --tokens 1000 --batch 2
 * --initial-state --seed S` draws (tensors, h0, dout rounded to bf16, dhT) and their exact float64 gradients
 * (recurrent ref_backward), as raw float32 arrays (exact for the bf16 inputs) in OUT.bin with an index OUT.txt ("name count" per line,
 * in file order), so that fla_defect.py can run FLA on the same numbers.
 * usage: export SPEC SEED OUT */
#include "case.h"
#include <stdio.h>
#include <stdlib.h>

static void put(FILE *bin, FILE *idx, const char *name, const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float f = (float)x[i];
        fwrite(&f, sizeof f, 1, bin);
    }
    fprintf(idx, "%s %zu\n", name, n);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: export SPEC SEED OUT\n");
        return 2;
    }
    exp_case c;
    if (!exp_case_draw(argv[1], (unsigned)atoi(argv[2]), &c))
        return 1;
    const ir_module *m = c.m;
    ref_data *data = c.data;
    ref_result *up = c.up;
    const ref_dims *dm = &data->dims;
    size_t nout = (size_t)dm->total * dm->Hout * dm->V, nh = (size_t)dm->nseq * dm->Hs * dm->K * dm->V;
    ref_grad *g = ref_backward(m, data, up, c.a, &c.d);
    if (!g)
        return 1;
    char path[4096];
    snprintf(path, sizeof path, "%s.bin", argv[3]);
    FILE *bin = fopen(path, "wb");
    snprintf(path, sizeof path, "%s.txt", argv[3]);
    FILE *idx = fopen(path, "w");
    if (!bin || !idx)
        return 1;
    for (uint32_t i = 0; i < m->ntensors; i++)
        put(bin, idx, m->tensors[i].name, data->tensor[i], data->tensor_count[i]);
    put(bin, idx, "h0", data->h0, nh);
    put(bin, idx, "dout", up->out, nout);
    put(bin, idx, "dhT", up->hT, nh);
    for (uint32_t i = 0; i < m->ntensors; i++) {
        char name[128];
        snprintf(name, sizeof name, "d%s", m->tensors[i].name);
        put(bin, idx, name, g->tensor[i], data->tensor_count[i]);
    }
    put(bin, idx, "dh0", g->h0, nh);
    fclose(bin);
    fclose(idx);
    return 0;
}
