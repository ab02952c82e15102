/* passes/passes.c: the one table the pipeline runs from, with the verifier between passes. */
#include <string.h>

#include "passes.h"

static const pass_info table[] = {
    {"chunk", pass_chunk, "split the recurrence into intra-chunk blocks and the carried state, per class"},
    {"tile", pass_tile, "chunk rows per warp, K padding, V slices and warps for the tensor cores"},
    {"fuse", pass_fuse, "how each role reaches the kernel: loaded, loaded and scaled, or mapped in place"},
    {"schedule", pass_schedule, "which kernels run: sequential, materialized, bidirectional, windowed"},
};

const pass_info *passes_table(size_t *count)
{
    *count = sizeof table / sizeof *table;
    return table;
}

int passes_find(const char *name)
{
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (strcmp(table[i].name, name) == 0)
            return (int)i;
    return -1;
}

bool passes_run(ir_module *m, const pass_options *opt, int last, attnc_diags *diags)
{
    int n = (int)(sizeof table / sizeof *table);
    if (last < 0 || last >= n)
        last = n - 1;
    for (int i = 0; i <= last; i++) {
        if (m->plan.stage > i) /* already lowered this far (an IR text with plan lines) */
            continue;
        if (!table[i].run(m, opt, diags))
            return false;
        if (!ir_verify(m, diags)) {
            attnc_note(diags, m->span, "the module no longer verifies after the '%s' pass", table[i].name);
            return false;
        }
    }
    return true;
}
