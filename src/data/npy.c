/* NumPy .npy arrays (format versions 1-3): the header parser and the
 * conversion of an array into a dataset's inputs or targets.
 *
 * Layout: "\x93NUMPY", major, minor, a little-endian header length (2 bytes
 * in version 1, 4 in 2 and 3), then a Python dict literal such as
 * {'descr': '<f4', 'fortran_order': False, 'shape': (100, 28, 28), }, then
 * the elements in C order. The file is read through a read-only mapping:
 * uint8 and float32 inputs are used where they lie, never copied. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "qat/data.h"

#define NPY_MAGIC "\x93NUMPY"

/* The value after 'key': in the header dict, or NULL. */
static const char *dict_value(const char *h, size_t n, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i + kl + 2 <= n; i++) {
        if ((h[i] != '\'' && h[i] != '"') || memcmp(h + i + 1, key, kl) != 0 ||
            h[i + 1 + kl] != h[i])
            continue;
        const char *p = h + i + kl + 2, *end = h + n;
        while (p < end && isspace((unsigned char)*p))
            p++;
        if (p >= end || *p != ':')
            return NULL;
        p++;
        while (p < end && isspace((unsigned char)*p))
            p++;
        return p < end ? p : NULL;
    }
    return NULL;
}

static qat_status bad(qat_error *err, const char *name, const char *what)
{
    return qat_fail(err, QAT_EINVAL, "%s: not a valid .npy file: %s", name, what);
}

static qat_status parse_descr(const char *p, const char *end, const char *name,
                              qat_npy_array *out, qat_error *err)
{
    char q = *p;
    if (q != '\'' && q != '"')
        return bad(err, name, "'descr' is not a string (structured dtypes are not supported)");
    const char *s = p + 1, *e = memchr(s, q, (size_t)(end - s));
    if (!e)
        return bad(err, name, "unterminated 'descr'");
    char d[16];
    size_t dl = (size_t)(e - s);
    if (dl >= sizeof d || dl < 2)
        return qat_fail(err, QAT_EINVAL, "%s: unsupported dtype '%.*s'", name, (int)dl, s);
    memcpy(d, s, dl);
    d[dl] = '\0';
    const char *t = d;
    char order = '=';
    if (*t == '<' || *t == '>' || *t == '|' || *t == '=')
        order = *t++;
    char kind = t[0];
    int size = atoi(t + 1);
    int size_ok = (size == 1 || size == 2 || size == 4 || size == 8) && t[1] >= '1' &&
                  t[1] <= '8' && t[2] == '\0';
    if (!strchr("uif", kind) || !size_ok || (kind == 'f' && size < 4))
        return qat_fail(err, QAT_EINVAL,
                        "%s: unsupported dtype '%s' (expected unsigned or signed integers of "
                        "1-8 bytes, float32 or float64)",
                        name, d);
    if (order == '>' && size > 1)
        return qat_fail(err, QAT_EINVAL,
                        "%s: big-endian dtype '%s' is not supported (save it little-endian: "
                        "a.astype(a.dtype.newbyteorder('<')))",
                        name, d);
    out->kind = kind;
    out->elem_size = size;
    return QAT_OK;
}

static qat_status parse_shape(const char *p, const char *end, const char *name,
                              qat_npy_array *out, qat_error *err)
{
    if (*p != '(')
        return bad(err, name, "'shape' is not a tuple");
    p++;
    out->ndims = 0;
    for (;;) {
        while (p < end && isspace((unsigned char)*p))
            p++;
        if (p < end && *p == ')')
            break;
        if (p >= end || !isdigit((unsigned char)*p))
            return bad(err, name, "'shape' holds something other than integers");
        if (out->ndims == 4)
            return qat_fail(err, QAT_EINVAL, "%s: arrays of more than 4 dimensions are not "
                                             "supported", name);
        errno = 0;
        char *e;
        unsigned long long v = strtoull(p, &e, 10);
        if (errno || e > end)
            return bad(err, name, "a 'shape' value is too large");
        out->dims[out->ndims++] = v;
        p = e;
        while (p < end && isspace((unsigned char)*p))
            p++;
        if (p < end && *p == ',')
            p++;
        else if (p >= end || *p != ')')
            return bad(err, name, "'shape' is not a tuple of integers");
    }
    return QAT_OK;
}

qat_status qat_npy_parse(const uint8_t *buf, size_t len, const char *name, qat_npy_array *out,
                         qat_error *err)
{
    memset(out, 0, sizeof *out);
    if (len < 10 || memcmp(buf, NPY_MAGIC, 6) != 0)
        return qat_fail(err, QAT_EINVAL, "%s: bad magic: not a .npy file (expected \\x93NUMPY)",
                        name);
    int major = buf[6];
    size_t hl, off;
    if (major == 1) {
        hl = (size_t)buf[8] | (size_t)buf[9] << 8;
        off = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12)
            return bad(err, name, "truncated header");
        hl = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 |
             (size_t)buf[11] << 24;
        off = 12;
    } else {
        return qat_fail(err, QAT_EINVAL, "%s: .npy format version %d.%d is not supported "
                                         "(1.0, 2.0 and 3.0 are)", name, major, buf[7]);
    }
    if (hl > len - off)
        return qat_fail(err, QAT_EINVAL,
                        "%s: truncated header: it claims %zu bytes but the file has %zu after "
                        "the preamble",
                        name, hl, len - off);
    const char *h = (const char *)buf + off, *end = h + hl;
    const char *v = dict_value(h, hl, "descr");
    if (!v)
        return bad(err, name, "the header has no 'descr'");
    qat_status st = parse_descr(v, end, name, out, err);
    if (st != QAT_OK)
        return st;
    v = dict_value(h, hl, "fortran_order");
    if (!v)
        return bad(err, name, "the header has no 'fortran_order'");
    if ((size_t)(end - v) >= 4 && memcmp(v, "True", 4) == 0)
        return qat_fail(err, QAT_EINVAL, "%s: Fortran-ordered arrays are not supported (save "
                                         "with np.ascontiguousarray)", name);
    if ((size_t)(end - v) < 5 || memcmp(v, "False", 5) != 0)
        return bad(err, name, "'fortran_order' is neither True nor False");
    v = dict_value(h, hl, "shape");
    if (!v)
        return bad(err, name, "the header has no 'shape'");
    if ((st = parse_shape(v, end, name, out, err)) != QAT_OK)
        return st;
    if (out->ndims == 0)
        return qat_fail(err, QAT_EINVAL, "%s: holds a scalar; expected an array of examples",
                        name);
    size_t count = 1, bytes;
    int overflow = 0;
    for (int i = 0; i < out->ndims; i++) {
        if (out->dims[i] == 0)
            return qat_fail(err, QAT_EINVAL, "%s: dimension %d of shape is 0: the array is empty",
                            name, i);
        overflow |= out->dims[i] > SIZE_MAX || qat_size_mul(count, (size_t)out->dims[i], &count);
    }
    overflow |= qat_size_mul(count, (size_t)out->elem_size, &bytes);
    size_t data_off = off + hl;
    if (overflow || bytes > len - data_off) {
        if (overflow)
            return qat_fail(err, QAT_EINVAL, "%s: shape too large: its size overflows", name);
        return qat_fail(err, QAT_EINVAL,
                        "%s: truncated data: the shape needs %zu bytes after the %zu-byte header, "
                        "the file has %zu",
                        name, bytes, data_off, len - data_off);
    }
    if (bytes < len - data_off)
        return qat_fail(err, QAT_EINVAL,
                        "%s: %zu trailing bytes after the %zu bytes of data the shape says", name,
                        len - data_off - bytes, bytes);
    out->count = count;
    out->data = buf + data_off;
    return QAT_OK;
}

double qat_npy_get(const qat_npy_array *a, size_t i)
{
    const uint8_t *p = a->data + i * (size_t)a->elem_size;
    uint64_t u = 0;
    for (int b = 0; b < a->elem_size; b++) /* little-endian (or single byte) */
        u |= (uint64_t)p[b] << (8 * b);
    if (a->kind == 'f') {
        if (a->elem_size == 4) {
            uint32_t w = (uint32_t)u;
            float f;
            memcpy(&f, &w, 4);
            return f;
        }
        double d;
        memcpy(&d, &u, 8);
        return d;
    }
    if (a->kind == 'u')
        return (double)u;
    int shift = 64 - 8 * a->elem_size; /* sign-extend */
    return (double)((int64_t)(u << shift) >> shift);
}
