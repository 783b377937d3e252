#include "qat/status.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

qat_status qat_fail(qat_error *err, qat_status s, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = s;
    }
    return s;
}

qat_status qat_error_prefix(qat_error *err, const char *fmt, ...)
{
    if (!err)
        return QAT_OK;
    char pre[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%.400s: %.600s", pre, old);
    return err->status;
}

void qat_error_clear(qat_error *err)
{
    if (err) {
        err->status = QAT_OK;
        err->msg[0] = '\0';
    }
}

const char *qat_status_name(qat_status s)
{
    switch (s) {
    case QAT_OK: return "ok";
    case QAT_EINVAL: return "invalid input";
    case QAT_EIO: return "i/o error";
    case QAT_ENOMEM: return "out of memory";
    case QAT_ENUMERIC: return "numerical failure";
    case QAT_EUNSUPPORTED: return "unsupported";
    case QAT_EINTERNAL: return "internal error";
    }
    return "unknown status";
}

int qat_status_exit_code(qat_status s)
{
    switch (s) {
    case QAT_OK: return 0;
    case QAT_EINVAL:
    case QAT_EUNSUPPORTED: return 2;
    default: return 1;
    }
}

int qat_size_mul(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return 1;
    *out = a * b;
    return 0;
}

int qat_size_add(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a)
        return 1;
    *out = a + b;
    return 0;
}

void qat_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "qat: internal invariant broken at %s:%d: %s\n", file, line, expr);
    abort();
}
