/* fuzz/fuzz_spec.c: libFuzzer target for the whole front end.
 *
 * Each input is parsed twice: as a spec (lexer, parser, sema, verifier, diagnostics rendering) and as
 * IR text (the IR reader and verifier).  When the spec is accepted, its IR is printed, read back and
 * printed again, and the two texts must be equal: the round trip is checked on every accepted input,
 * not only on the specs in the repository.  Any crash, leak, sanitizer report or mismatch is a bug.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    attnc_ctx *ctx;
    if (attnc_ctx_new(&ctx) != ATTNC_OK)
        abort();
    attnc_spec *spec = NULL;
    attnc_status st = attnc_spec_from_string(ctx, "fuzz.attn", (const char *)data, size, &spec);
    if (st != ATTNC_OK && st != ATTNC_ERR_INPUT)
        abort();
    (void)attnc_spec_diag_text(spec);
    (void)attnc_spec_diag_machine(spec);
    if (st == ATTNC_OK) {
        const char *ir = attnc_spec_ir(spec);
        attnc_spec *again = NULL;
        if (attnc_spec_from_ir(ctx, "fuzz.ir", ir, strlen(ir), &again) != ATTNC_OK) {
            fprintf(stderr, "printed IR does not read back:\n%s\n%s", ir, attnc_spec_diag_text(again));
            abort();
        }
        if (strcmp(ir, attnc_spec_ir(again)) != 0) {
            fprintf(stderr, "IR round trip differs:\n%s\n---\n%s", ir, attnc_spec_ir(again));
            abort();
        }
        attnc_spec_free(again);
    }
    attnc_spec_free(spec);

    attnc_spec *as_ir = NULL;
    st = attnc_spec_from_ir(ctx, "fuzz.ir", (const char *)data, size, &as_ir);
    if (st != ATTNC_OK && st != ATTNC_ERR_INPUT)
        abort();
    (void)attnc_spec_diag_text(as_ir);
    if (st == ATTNC_OK)
        (void)attnc_spec_ir(as_ir);
    attnc_spec_free(as_ir);
    attnc_ctx_free(ctx);
    return 0;
}
