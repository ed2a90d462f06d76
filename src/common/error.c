#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char g_msg[1024];

const char *dr_last_error(void) { return g_msg; }

void error_clear(void) { g_msg[0] = 0; }

int error_set(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return code;
}

int error_prefix(int code, const char *fmt, ...) {
    char prefix[512], old[sizeof g_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_msg, sizeof old);
    snprintf(g_msg, sizeof g_msg, "%.500s: %.500s", prefix, old);
    return code;
}

const char *dr_status_name(int status) {
    switch (status) {
    case DR_OK: return "DR_OK";
    case DR_ERR_IO: return "DR_ERR_IO";
    case DR_ERR_FORMAT: return "DR_ERR_FORMAT";
    case DR_ERR_UNSUPPORTED: return "DR_ERR_UNSUPPORTED";
    case DR_ERR_NOMEM: return "DR_ERR_NOMEM";
    case DR_ERR_INVALID: return "DR_ERR_INVALID";
    case DR_ERR_LIMIT: return "DR_ERR_LIMIT";
    case DR_ERR_EXISTS: return "DR_ERR_EXISTS";
    case DR_ERR_CANCELLED: return "DR_ERR_CANCELLED";
    case DR_ERR_NUMERIC: return "DR_ERR_NUMERIC";
    default: return "DR_ERR_UNKNOWN";
    }
}

const char *dr_version(void) { return DR_VERSION_STRING; }
