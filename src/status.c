/* status.c - thread-local error text and the version string. */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

static _Thread_local char last_error[512];

mg_status mg_fail(mg_status status, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, args);
    va_end(args);
    return status;
}

void mg_clear_error(void) { last_error[0] = '\0'; }

const char *mg_last_error(void) { return last_error; }

const char *mg_version(void) { return MG_VERSION_STRING; }
