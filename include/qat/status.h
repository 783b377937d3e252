/* Status codes and error messages shared by every module, runtime included.
 * Pure C99 + libc: the runtime core links this file. The codes and the error
 * struct live in qat/status_types.h (installed with the runtime); the
 * helpers below are internal to the libraries (libqat_rt.so does not export
 * them). */
#ifndef QAT_STATUS_H
#define QAT_STATUS_H

#include <stdarg.h>
#include <stddef.h>

#include "qat/status_types.h" /* qat_status, qat_error */

#ifdef __cplusplus
extern "C" {
#endif

/* Sets status and formats msg; returns s so callers can `return qat_fail(...)`. */
qat_status qat_fail(qat_error *err, qat_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepends "prefix: " to an existing message (adds outer context). */
qat_status qat_error_prefix(qat_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void qat_error_clear(qat_error *err);
const char *qat_status_name(qat_status s);
/* CLI exit code for a status: 0 ok, 2 bad input/usage, 1 anything else. */
int qat_status_exit_code(qat_status s);

/* Overflow-checked size arithmetic: return 0 and set *out on success,
 * 1 on overflow. */
int qat_size_mul(size_t a, size_t b, size_t *out);
int qat_size_add(size_t a, size_t b, size_t *out);

/* Internal invariant check: always on (not compiled out by NDEBUG). */
void qat_assert_fail(const char *expr, const char *file, int line)
    __attribute__((noreturn));
#define QAT_ASSERT(e) ((e) ? (void)0 : qat_assert_fail(#e, __FILE__, __LINE__))

#ifdef __cplusplus
}
#endif
#endif
