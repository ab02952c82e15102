/* api/api_internal.h: what the API's source files share (not part of the public interface). */
#ifndef ATTNC_API_INTERNAL_H
#define ATTNC_API_INTERNAL_H

#include <stdarg.h>

#include "attnc.h"
#include "diag.h"
#include "ir.h"

struct attnc_spec {
    attnc_arena *arena; /* owns everything below */
    attnc_diags diags;
    ir_module *ir;      /* NULL when the input had errors */
    char *ir_text;      /* printed on first request */
};

/* The public dtype enum is the IR's, number for number (the API casts between them). */
_Static_assert((int)ATTNC_BF16 == (int)IR_DT_BF16 && (int)ATTNC_FP16 == (int)IR_DT_FP16 &&
                   (int)ATTNC_FP32 == (int)IR_DT_FP32,
               "attnc_dtype and ir_dtype must agree");

/* Seconds on a monotonic clock (for the reports' timings). */
double api_seconds(void);

/* Record a message on ctx (which may be NULL) and return s. */
attnc_status api_fail(attnc_ctx *ctx, attnc_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Read a whole file into malloc'd memory (the caller frees *text). */
attnc_status api_read_file(attnc_ctx *ctx, const char *path, char **text, size_t *len);

#endif
