/* Helpers shared by the sweep module's files (not part of the public API). */
#ifndef QAT_SWEEP_INTERNAL_H
#define QAT_SWEEP_INTERNAL_H

#include <stddef.h>
#include <stdio.h>

#include "qat/status.h"
#include "qat/sweep.h"

/* A growable array of owned strings. */
typedef struct qat_strv {
    char **v;
    int n, cap;
} qat_strv;

/* Appends a copy of s; returns 0, or -1 when out of memory. */
int qat_strv_push(qat_strv *a, const char *s);
void qat_strv_free(qat_strv *a);

/* Whole file into a NUL-terminated malloc'd buffer (*len without the NUL);
 * NULL with errno set on failure. */
char *qat_sweep_read_file(const char *path, size_t *len);
/* Creates path and its parents. */
qat_status qat_sweep_mkdir_p(const char *path, qat_error *err);
/* Writes text to path through a temporary file and rename, so a reader
 * never sees half a file. */
qat_status qat_sweep_write_atomic(const char *path, const char *text, qat_error *err);

/* The value printed in tables for a varied key of run r (sensitivity sweeps
 * have layer and bits instead of keys). */
const char *qat_sweep_status_name(int status);

#endif
