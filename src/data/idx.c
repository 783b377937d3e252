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

#include "qat/data.h"

#define IDX_TYPE_UBYTE 0x08u

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

/* Validates header and length of an ndims-dimensional ubyte IDX buffer and
 * returns its dims and payload size. what names the content for messages. */
static qat_status parse_header(const uint8_t *buf, size_t len, const char *name, const char *what,
                               uint32_t ndims, uint32_t *dims, size_t *payload, qat_error *err)
{
    const uint32_t want_magic = IDX_TYPE_UBYTE << 8 | ndims;
    const size_t header = 4 + 4 * (size_t)ndims;

    if (len < 4)
        return qat_fail(err, QAT_EINVAL,
                        "%s: truncated header: expected at least %zu bytes for an IDX %s "
                        "header, found %zu",
                        name, header, what, len);
    uint32_t magic = be32(buf);
    if (magic != want_magic)
        return qat_fail(err, QAT_EINVAL,
                        "%s: bad magic number 0x%08x, expected 0x%08x (IDX %s: unsigned byte, "
                        "%u dims)%s",
                        name, (unsigned)magic, (unsigned)want_magic, what, (unsigned)ndims,
                        magic_hint(buf, magic));
    if (len < header)
        return qat_fail(err, QAT_EINVAL,
                        "%s: truncated header: expected %zu bytes for an IDX %s header, found %zu",
                        name, header, what, len);

    size_t total = 1;
    int overflow = 0;
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
    *payload = total;
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
    uint32_t dims[3] = {0};
    size_t payload = 0;
    qat_status st = parse_header(buf, len, name, "images", 3, dims, &payload, err);
    if (st != QAT_OK)
        return st;
    st = copy_payload(buf + 16, payload, name, pixels, err);
    if (st != QAT_OK)
        return st;
    *n = dims[0];
    *h = (int)dims[1];
    *w = (int)dims[2];
    return QAT_OK;
}

qat_status qat_idx_parse_labels(const uint8_t *buf, size_t len, const char *name,
                                uint8_t **labels, uint32_t *n, qat_error *err)
{
    *labels = NULL;
    uint32_t dims[1] = {0};
    size_t payload = 0;
    qat_status st = parse_header(buf, len, name, "labels", 1, dims, &payload, err);
    if (st != QAT_OK)
        return st;
    st = copy_payload(buf + 8, payload, name, labels, err);
    if (st != QAT_OK)
        return st;
    *n = dims[0];
    return QAT_OK;
}
