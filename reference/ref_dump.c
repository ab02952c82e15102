/* reference/ref_dump.c: a module's evaluated problem and result as JSON (read by tests/ref/crosscheck.py).
 *
 * Layout (one object; arrays flat, row-major as in ref.h):
 *   "linear", "softmax": booleans; "decay": none|const|scalar|vector; "update": add|delta;
 *   "norm": none|denom|maxfloor|rms|layer; "eps"; "mask": causal|none; "window";
 *   "seqlens", "cu_seqlens"; "dims": {total, nseq, Hout, V, K, Hq, Hs, sK};
 *   "roles": {q, k, v, gate, beta, igate, sq, sk, sv: {heads, len, per_head, data}} (present roles only);
 *   "h0", "z0", "m0", "out", "hT", "zT", "mT": arrays or null.
 * Numbers are printed with 17 significant digits (they read back exactly); non-finite ones as null.
 * The strings are this file's own spelling, kept stable for the checker, not the IR printer's.
 */
#include "ref_internal.h"

#include <math.h>

static void put_array(FILE *f, const double *x, size_t n)
{
    if (!x) {
        fputs("null", f);
        return;
    }
    fputc('[', f);
    for (size_t i = 0; i < n; i++) {
        if (i)
            fputc(',', f);
        if (isfinite(x[i]))
            fprintf(f, "%.17g", x[i]);
        else
            fputs("null", f);
    }
    fputc(']', f);
}

static void put_role(FILE *f, const char *name, const ref_role *r, uint32_t total, bool *first)
{
    if (!r->data)
        return;
    fprintf(f, "%s\n  \"%s\": {\"heads\": %u, \"len\": %u, \"per_head\": %s, \"data\": ", *first ? "" : ",",
            name,
            r->heads, r->len, r->per_head ? "true" : "false");
    put_array(f, r->data, (size_t)(r->per_head ? 1 : total) * r->heads * r->len);
    fputc('}', f);
    *first = false;
}

bool ref_dump_json(const ir_module *m, const ref_data *d, const ref_result *res, FILE *f)
{
    static const char *const decay[] = {"none", "const", "scalar", "vector"};
    static const char *const norm[] = {"none", "denom", "maxfloor", "rms", "layer"};
    const ref_dims *dm = &d->dims;
    const ir_linear *l = &m->linear;
    fprintf(f, "{\n \"name\": \"%s\",\n", m->name ? m->name : "");
    fprintf(f, " \"linear\": %s, \"softmax\": %s,\n", dm->linear ? "true" : "false",
            dm->softmax ? "true" : "false");
    fprintf(f, " \"decay\": \"%s\", \"update\": \"%s\", \"norm\": \"%s\", \"eps\": %.17g,\n",
            (unsigned)l->decay < 4 ? decay[l->decay] : "?", l->update == IR_UPDATE_DELTA ? "delta" : "add",
            (unsigned)l->norm < 5 ? norm[l->norm] : "?", l->eps);
    fprintf(f, " \"mask\": \"%s\", \"window\": %u,\n", m->mask == IR_MASK_NONE ? "none" : "causal",
            m->softmax.window);
    fputs(" \"seqlens\": [", f);
    for (uint32_t n = 0; n < dm->nseq; n++)
        fprintf(f, "%s%u", n ? "," : "", d->cu_seqlens[n + 1] - d->cu_seqlens[n]);
    fputs("],\n \"cu_seqlens\": [", f);
    for (uint32_t n = 0; n <= dm->nseq; n++)
        fprintf(f, "%s%u", n ? "," : "", d->cu_seqlens[n]);
    fprintf(f, "],\n \"dims\": {\"total\": %u, \"nseq\": %u, \"Hout\": %u, \"V\": %u, \"K\": %u, \"Hq\": %u, "
               "\"Hs\": %u, \"sK\": %u},\n \"roles\": {",
            dm->total, dm->nseq, dm->Hout, dm->V, dm->K, dm->Hq, dm->Hs, dm->sK);
    const ref_roles *r = &d->roles;
    bool first = true;
    put_role(f, "q", &r->q, dm->total, &first);
    put_role(f, "k", &r->k, dm->total, &first);
    put_role(f, "v", &r->v, dm->total, &first);
    put_role(f, "gate", &r->gate, dm->total, &first);
    put_role(f, "beta", &r->beta, dm->total, &first);
    put_role(f, "igate", &r->igate, dm->total, &first);
    put_role(f, "sq", &r->sq, dm->total, &first);
    put_role(f, "sk", &r->sk, dm->total, &first);
    put_role(f, "sv", &r->sv, dm->total, &first);
    size_t nh = (size_t)dm->nseq * dm->Hs;
    const char *names[] = {"h0", "z0", "m0", "out", "hT", "zT", "mT"};
    const double *arrays[] = {d->h0, d->z0, d->m0, res ? res->out : NULL, res ? res->hT : NULL,
                              res ? res->zT : NULL, res ? res->mT : NULL};
    size_t sizes[] = {nh * dm->K * dm->V, nh * dm->K, nh, (size_t)dm->total * dm->Hout * dm->V,
                      nh * dm->K * dm->V, nh * dm->K, nh};
    fputs("\n },", f);
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        fprintf(f, "%s\n \"%s\": ", i ? "," : "", names[i]);
        put_array(f, arrays[i], sizes[i]);
    }
    fputs("\n}\n", f);
    return !ferror(f);
}
