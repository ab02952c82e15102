/* reference/ref_internal.h: helpers shared by the reference's files; not part of the API (ref.h).
 *
 * ref_check_module is the one place that decides which modules the reference evaluates: every other file
 * may assume what it checked (roles present with the lengths their part needs, head counts that divide
 * each other, supported combinations of decay, update, igate, norm and mask).
 */
#ifndef ATTNC_REF_INTERNAL_H
#define ATTNC_REF_INTERNAL_H

#include <stdarg.h>

#include "ref.h"

/* Reports an error at `at` when `d` is not NULL; always returns false (so `return ref_fail(...)`). */
bool ref_fail(attnc_diags *d, attnc_span at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* n doubles (zeroed) from the arena, or NULL on overflow or allocation failure. */
double *ref_doubles(attnc_arena *a, size_t n);

/* Checks that the reference supports `m` and fills the module part of *dims (all but total and nseq). */
bool ref_check_module(const ir_module *m, ref_dims *dims, attnc_diags *d);

/* True if `r` has the sizes `d` implies (what a forward evaluator writes). */
bool ref_result_fits(const ref_result *r, const ref_data *d);

/* The head count of a value (1 when it is the same for every head). */
uint32_t ref_value_heads(const ir_module *m, ir_ref r);

#endif
