/* Internal error helpers: every failing path sets a thread-local message and
 * returns a DR_ERR_* code. Nothing here prints or exits. */
#ifndef DR_COMMON_ERROR_H
#define DR_COMMON_ERROR_H

#include "diffrestore.h"

#if defined(__GNUC__)
#define DR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define DR_PRINTF(a, b)
#endif

/* Set the thread's error message and return code, so callers can write
 * `return error_set(DR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));` */
int error_set(int code, const char *fmt, ...) DR_PRINTF(2, 3);
/* Prefix the current message with "prefix: " (adds context on the way up). */
int error_prefix(int code, const char *fmt, ...) DR_PRINTF(2, 3);
void error_clear(void);

/* Internal invariant check for programming errors: reports file and line in
 * the error message and returns DR_ERR_INVALID from the enclosing function. */
#define DR_CHECK(cond)                                                                                                 \
    do {                                                                                                               \
        if (!(cond)) return error_set(DR_ERR_INVALID, "%s:%d: check failed: %s", __FILE__, __LINE__, #cond);           \
    } while (0)

/* Propagate a failing status. */
#define DR_TRY(expr)                                                                                                   \
    do {                                                                                                               \
        int try_rc_ = (expr);                                                                                          \
        if (try_rc_ != DR_OK) return try_rc_;                                                                          \
    } while (0)

#endif
