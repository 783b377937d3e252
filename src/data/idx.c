/* IDX file parsing (the MNIST container format), from an in-memory buffer.
 *
 * Layout: a 4-byte big-endian magic 00 00 <type> <ndims>, ndims big-endian
 * uint32 dimensions, then the payload, row-major. Only unsigned bytes
 * (type 0x08) are accepted: that is what MNIST ships and what the integer
 * pipeline keeps in memory. The parser is strict -- exact length, no
 * trailing bytes -- because a silently mis-sized dataset trains on garbage. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "qat/data.h"

#define IDX_TYPE_UBYTE 0x08u
#define IDX_TYPE_FLOAT 0x0Du

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Says what a wrong magic probably is, to turn "bad magic" into a fix. */
static const char *magic_hint(const uint8_t *buf, uint32_t magic)
{
    if (buf[0] == 0x1f && buf[1] == 0x8b)
        return " (this is gzip data that was not decompressed)";
    if (magic == 0x00000801u)
        return " (this is an IDX label file)";
    if (magic == 0x00000803u)
        return " (this is an IDX image file)";
    if (buf[0] == 0 && buf[1] == 0 && buf[3] >= 1 && buf[2] != IDX_TYPE_UBYTE)
        return " (an IDX file whose element type is not unsigned byte)";
    if (buf[0] == 0 && buf[1] == 0 && buf[2] == IDX_TYPE_UBYTE)
        return " (an unsigned-byte IDX file with the wrong number of dimensions)";
    return " (not an IDX file)";
}

/* The header of an IDX buffer: its element type, dims and payload size,
 * checked against what the caller accepts (rank min_rank..max_rank, float
 * elements if float_ok). what names the content for messages. */
typedef struct idx_header {
    uint32_t type, ndims;
    uint32_t dims[4];
    size_t header, payload; /* bytes */
} idx_header;

static qat_status parse_header(const uint8_t *buf, size_t len, const char *name, const char *what,
                               uint32_t min_rank, uint32_t max_rank, int float_ok, idx_header *h,
                               qat_error *err)
{
    if (len < 4)
        return qat_fail(err, QAT_EINVAL,
                        "%s: truncated header: expected at least %zu bytes for an IDX %s "
                        "header, found %zu",
                        name, (size_t)4 + 4 * (size_t)min_rank, what, len);
    uint32_t magic = be32(buf);
    uint32_t type = buf[2], ndims = buf[3];
    int type_ok = type == IDX_TYPE_UBYTE || (float_ok && type == IDX_TYPE_FLOAT);
    if (buf[0] != 0 || buf[1] != 0 || !type_ok || ndims < min_rank || ndims > max_rank) {
        if (min_rank == max_rank && !float_ok)
            return qat_fail(err, QAT_EINVAL,
                            "%s: bad magic number 0x%08x, expected 0x%08x (IDX %s: unsigned "
                            "byte, %u dims)%s",
                            name, (unsigned)magic, (unsigned)(IDX_TYPE_UBYTE << 8 | min_rank),
                            what, (unsigned)min_rank, magic_hint(buf, magic));
        return qat_fail(err, QAT_EINVAL,
                        "%s: bad magic number 0x%08x, expected 0x000008RR%s with rank RR in "
                        "%u..%u (IDX %s)%s",
                        name, (unsigned)magic, float_ok ? " or 0x00000dRR" : "",
                        (unsigned)min_rank, (unsigned)max_rank, what, magic_hint(buf, magic));
    }
    const size_t header = 4 + 4 * (size_t)ndims;
    const size_t elem = type == IDX_TYPE_FLOAT ? 4 : 1;
    if (len < header)
        return qat_fail(err, QAT_EINVAL,
                        "%s: truncated header: expected %zu bytes for an IDX %s header, found %zu",
                        name, header, what, len);

    size_t total = elem;
    int overflow = 0;
    uint32_t *dims = h->dims;
    for (uint32_t i = 0; i < ndims; i++) {
        dims[i] = be32(buf + 4 + 4 * i);
        if (dims[i] == 0)
            return qat_fail(err, QAT_EINVAL,
                            "%s: zero dimension: dim %u of the IDX %s header is 0, expected > 0",
                            name, (unsigned)i, what);
        overflow |= qat_size_mul(total, dims[i], &total);
    }
    /* Overflow and the cap are both "the header is corrupt": a real dataset
     * of that size would not fit in memory, so this is bad input, not OOM. */
    /* Sample sides (every dim after the count) become ints in qat_dataset,
     * and the byte cap alone would still allow a side of 2^31. */
    int side_too_big = 0;
    for (uint32_t i = 1; i < ndims; i++)
        side_too_big |= dims[i] > INT_MAX;
    if (overflow || total > QAT_IDX_MAX_BYTES || side_too_big) {
        char shape[96];
        int off = 0;
        for (uint32_t i = 0; i < ndims; i++)
            off += snprintf(shape + off, sizeof shape - (size_t)off, "%s%u", i ? " x " : "",
                            (unsigned)dims[i]);
        if (side_too_big && !overflow)
            return qat_fail(err, QAT_EINVAL,
                            "%s: dimensions %s too large: each side after the count must be "
                            "<= %d",
                            name, shape, INT_MAX);
        if (overflow)
            return qat_fail(err, QAT_EINVAL,
                            "%s: dimensions %s too large: payload size overflows (limit %zu "
                            "bytes)",
                            name, shape, (size_t)QAT_IDX_MAX_BYTES);
        return qat_fail(err, QAT_EINVAL,
                        "%s: dimensions %s too large: payload of %zu bytes exceeds the limit "
                        "of %zu bytes",
                        name, shape, total, (size_t)QAT_IDX_MAX_BYTES);
    }

    size_t expect = header + total; /* cannot overflow: total <= 2^31 */
    if (len < expect)
        return qat_fail(err, QAT_EINVAL,
                        "%s: truncated payload: expected %zu bytes (%zu header + %zu data), "
                        "found %zu",
                        name, expect, header, total, len);
    if (len > expect)
        return qat_fail(err, QAT_EINVAL,
                        "%s: %zu trailing bytes after the payload: expected %zu bytes "
                        "(%zu header + %zu data), found %zu",
                        name, len - expect, expect, header, total, len);
    h->type = type;
    h->ndims = ndims;
    h->header = header;
    h->payload = total;
    return QAT_OK;
}

static qat_status copy_payload(const uint8_t *src, size_t size, const char *name, uint8_t **dst,
                               qat_error *err)
{
    *dst = malloc(size);
    if (!*dst)
        return qat_fail(err, QAT_ENOMEM, "%s: cannot allocate %zu bytes", name, size);
    memcpy(*dst, src, size);
    return QAT_OK;
}

qat_status qat_idx_parse_images(const uint8_t *buf, size_t len, const char *name,
                                uint8_t **pixels, uint32_t *n, int *h, int *w, qat_error *err)
{
    *pixels = NULL;
    idx_header hd;
    qat_status st = parse_header(buf, len, name, "images", 3, 3, 0, &hd, err);
    if (st != QAT_OK)
        return st;
    st = copy_payload(buf + 16, hd.payload, name, pixels, err);
    if (st != QAT_OK)
        return st;
    *n = hd.dims[0];
    *h = (int)hd.dims[1];
    *w = (int)hd.dims[2];
    return QAT_OK;
}

qat_status qat_idx_parse_labels(const uint8_t *buf, size_t len, const char *name,
                                uint8_t **labels, uint32_t *n, qat_error *err)
{
    *labels = NULL;
    idx_header hd;
    qat_status st = parse_header(buf, len, name, "labels", 1, 1, 0, &hd, err);
    if (st != QAT_OK)
        return st;
    st = copy_payload(buf + 8, hd.payload, name, labels, err);
    if (st != QAT_OK)
        return st;
    *n = hd.dims[0];
    return QAT_OK;
}

qat_status qat_idx_parse(const uint8_t *buf, size_t len, const char *name, const char *what,
                         int min_rank, int max_rank, int float_ok, uint32_t limit,
                         size_t mem_available, qat_idx_array *out, qat_error *err)
{
    QAT_ASSERT(min_rank >= 1 && max_rank <= 4 && min_rank <= max_rank);
    memset(out, 0, sizeof *out);
    idx_header hd;
    qat_status st = parse_header(buf, len, name, what, (uint32_t)min_rank, (uint32_t)max_rank,
                                 float_ok, &hd, err);
    if (st != QAT_OK)
        return st;
    out->kept = limit && limit < hd.dims[0] ? limit : hd.dims[0];
    size_t bytes = hd.payload / hd.dims[0] * out->kept; /* payload <= 2^31: exact */
    st = qat_data_check_memory(name, bytes, mem_available, err);
    if (st == QAT_OK)
        st = copy_payload(buf + hd.header, bytes, name, (uint8_t **)&out->data, err);
    if (st != QAT_OK)
        return st;
    out->ndims = (int)hd.ndims;
    memcpy(out->dims, hd.dims, sizeof out->dims);
    out->type = hd.type == IDX_TYPE_FLOAT ? QAT_DATA_F32 : QAT_DATA_U8;
    if (out->type == QAT_DATA_F32) {
        /* big-endian in the file: read each word by bytes, store native */
        uint8_t *p = out->data;
        for (size_t i = 0; i < bytes; i += 4) {
            uint32_t u = be32(p + i);
            memcpy(p + i, &u, 4);
        }
    }
    return QAT_OK;
}
