/* Status codes and error messages shared by every module, runtime included.
 * Pure C99 + libc: the runtime core links this file. */
#ifndef QAT_STATUS_H
#define QAT_STATUS_H

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum qat_status {
    QAT_OK = 0,
    QAT_EINVAL,      /* bad input: config, data, model file, usage (exit 2) */
    QAT_EIO,         /* an OS-level read/write failure (exit 1) */
    QAT_ENOMEM,      /* allocation failed or a size would overflow (exit 1) */
    QAT_ENUMERIC,    /* NaN/Inf met while training (exit 1) */
    QAT_EUNSUPPORTED,/* valid request this build/CPU cannot serve (exit 2) */
    QAT_EINTERNAL    /* a library call failed unexpectedly (exit 1) */
} qat_status;

/* A status plus a human message with context (file, line, key, expected vs
 * found). Functions that can fail take a qat_error* (may be NULL). */
typedef struct qat_error {
    qat_status status;
    char msg[1024];
} qat_error;

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
