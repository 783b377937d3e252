/* The model file reader's checked reads (h5_read.c), shared by the parts of
 * model_read.c. */
#ifndef QAT_RT_H5_READ_H
#define QAT_RT_H5_READ_H

#include "runtime/h5/h5_internal.h"

typedef struct rd {
    const char *file; /* for messages */
    qat_error *err;
    int version; /* the file's, once read */
} rd;

/* Element kinds of attributes and datasets. */
typedef enum { K_I32, K_F32, K_U8, K_I8 } kind;

/* QAT_EINVAL "<file>: <where>: <message>". */
__attribute__((format(printf, 3, 4))) qat_status h5r_fail(rd *r, const char *where,
                                                          const char *fmt, ...);
/* Attribute `name` of obj (at path opath): count < 0 a scalar, else a 1-D
 * array of count values, of kind k, into out. */
qat_status h5r_attr(rd *r, hid_t obj, const char *opath, const char *name, kind k,
                    long long count, void *out);
/* A scalar string attribute into buf (cap bytes incl. NUL); FORMAT.md §1. */
qat_status h5r_str_attr(rd *r, hid_t obj, const char *opath, const char *name, char *buf,
                        size_t cap);
/* Opens 1-D dataset gpath/name of kind k and count elements, all stored in
 * this file, into *out (closed by the caller; -1 on failure). */
qat_status h5r_open_dataset(rd *r, hid_t g, const char *gpath, const char *name, kind k,
                            long long count, hid_t *out);
/* The same, read whole into buf. */
qat_status h5r_dataset(rd *r, hid_t g, const char *gpath, const char *name, kind k,
                       long long count, void *buf);
/* QAT_EINVAL naming opath's attribute `name` when one of v[0..n) is
 * outside [lo, hi]. */
qat_status h5r_check_range(rd *r, const char *opath, const char *name, const int32_t *v, int n,
                           long long lo, long long hi);

#endif
