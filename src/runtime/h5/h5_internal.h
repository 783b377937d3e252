/* Pieces shared by the model file reader and writer (docs/FORMAT.md). */
#ifndef QAT_RT_H5_INTERNAL_H
#define QAT_RT_H5_INTERNAL_H

#include <hdf5.h>

#include "qat/runtime_h5.h"

#define QAT_H5_FORMAT_NAME "qat-int8-model"
#define QAT_H5_LAYERS_GROUP "layers"
/* layer i lives in /layers/<%03d of i> */
#define QAT_H5_LAYER_FMT "%03d"

/* HDF5 prints its own error stack to stderr by default; while one of our
 * calls runs it is switched off and we report errors ourselves. Restored
 * afterwards (unless the call failed, see below) so we do not change the
 * caller's HDF5 settings. */
typedef struct qat_h5_quiet {
    H5E_auto2_t func;
    void *data;
} qat_h5_quiet;

static inline void qat_h5_quiet_begin(qat_h5_quiet *q)
{
    q->func = NULL;
    q->data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* failed != 0 keeps HDF5's printing off: after HDF5 has met a corrupt
 * object header (checksum failure), 1.10 keeps internal references it never
 * releases, and with printing on its atexit shutdown then spews "infinite
 * loop closing library" after our clean error message. */
static inline void qat_h5_quiet_end(const qat_h5_quiet *q, int failed)
{
    H5Eclear2(H5E_DEFAULT);
    if (!failed)
        H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
}

/* The innermost description on HDF5's error stack (the most specific one),
 * or "" when the stack is empty. */
void qat_h5_last_error(char *buf, size_t cap);

#endif
