/* Pieces shared by the model file reader and writer (docs/FORMAT.md). */
#ifndef QAT_RT_H5_INTERNAL_H
#define QAT_RT_H5_INTERNAL_H

#include <hdf5.h>

#include "qat/runtime_h5.h"
#include "qat/status.h"

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

/* Closes each of ids[0..n) that is open (>= 0) with the close call of its
 * kind, so a function releases what it opened in one line on every path.
 * QAT_H5_CLOSE(a, b, ...) passes the list. */
static inline void qat_h5_close_ids(const hid_t *ids, int n)
{
    for (int i = 0; i < n; i++) {
        hid_t id = ids[i];
        if (id < 0)
            continue;
        switch (H5Iget_type(id)) {
        case H5I_FILE: H5Fclose(id); break;
        case H5I_GROUP: H5Gclose(id); break;
        case H5I_DATATYPE: H5Tclose(id); break;
        case H5I_DATASPACE: H5Sclose(id); break;
        case H5I_DATASET: H5Dclose(id); break;
        case H5I_ATTR: H5Aclose(id); break;
        case H5I_GENPROP_LST: H5Pclose(id); break;
        default: QAT_ASSERT(!"qat_h5_close_ids: an id of a kind we never open"); break;
        }
    }
}
#define QAT_H5_CLOSE(...)                                                                          \
    qat_h5_close_ids((const hid_t[]){__VA_ARGS__},                                                 \
                     (int)(sizeof((hid_t[]){__VA_ARGS__}) / sizeof(hid_t)))

/* The innermost description on HDF5's error stack (the most specific one),
 * or "" when the stack is empty. */
void qat_h5_last_error(char *buf, size_t cap);
/* QAT_OK when path opens for reading, else QAT_EINVAL
 * "<path>: cannot open <what>: <OS reason>" (what may be ""): checked before
 * H5Fopen, whose failure does not say whether the file is missing, unreadable
 * or not HDF5. */
qat_status qat_h5_check_openable(const char *path, const char *what, qat_error *err);

/* Longest string attribute we read, in bytes (names are < 64). */
#define QAT_H5_MAX_STR 256

/* Reads the scalar string attribute `name` of obj into buf (cap bytes with
 * the NUL): fixed- or variable-length, declared ASCII or UTF-8, its bytes
 * valid UTF-8 either way (docs/FORMAT.md §1). Returns 0, or -1 with why
 * saying what was expected and what was found ("missing", "expected a
 * string, found int32", ...). */
int qat_h5_read_str_attr(hid_t obj, const char *name, char *buf, size_t cap, char *why,
                         size_t why_cap);
/* Offset of the first byte of s[0..n) that does not start a well-formed
 * UTF-8 sequence (no overlong forms, surrogates or code points above
 * U+10FFFF), or n if all of it is well-formed. */
size_t qat_h5_utf8_invalid_at(const char *s, size_t n);
/* "int32", "float64", "a variable-length string (UTF-8)", "compound (8
 * bytes)", ... for messages. */
void qat_h5_describe_type(hid_t t, char *buf, size_t cap);
/* "a scalar", "shape (3, 2)", ... for messages. */
void qat_h5_describe_space(hid_t sp, char *buf, size_t cap);

#endif
