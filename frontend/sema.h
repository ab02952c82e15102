/* frontend/sema.h: from the syntax tree to a checked IR module. */
#ifndef ATTNC_SEMA_H
#define ATTNC_SEMA_H

#include "ast.h"
#include "ir.h"

/* Resolves names, types every expression, interprets roles and settings and checks everything the
 * language promises (docs/language.md).  Every problem is a diagnostic; the module is returned only
 * if there was none (warnings allowed). */
ir_module *sema_check(attnc_arena *arena, attnc_diags *diags, const ast_spec *spec);

#endif
