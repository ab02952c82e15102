/* runtime/error.c: the one way the runtime fills an rt_error (rt.h). */
#include <stdarg.h>
#include <stdio.h>

#include "rt.h"

void rt_set_error(rt_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}
