/* The status codes and the error struct: the part of qat/status.h that the
 * runtime's public API (qat/runtime.h) uses, apart so that an installed
 * runtime.h declares nothing the shared runtime library does not export
 * (its API is qat_rt_* only; qat_rt_status_name names a status). */
#ifndef QAT_STATUS_TYPES_H
#define QAT_STATUS_TYPES_H

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

#endif
