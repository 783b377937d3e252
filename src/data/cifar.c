/* CIFAR-10/100 binary batches: fixed-size records, the label byte(s) then
 * 3072 pixel bytes, 1024 of red, then green, then blue, each 32 x 32 row by
 * row. The dataset keeps HWC, so the planes are interleaved here. */
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "qat/data.h"

#define SIDE 32
#define PLANE (SIDE * SIDE)
#define PIXELS (3 * PLANE)

qat_status qat_cifar_parse(const uint8_t *buf, size_t len, const char *name, int label_bytes,
                           int num_classes, qat_dataset *out, qat_error *err)
{
    QAT_ASSERT(label_bytes == 1 || label_bytes == 2);
    size_t rec = (size_t)label_bytes + PIXELS;
    if (len == 0)
        return qat_fail(err, QAT_EINVAL, "%s: empty file: a CIFAR batch holds records of %zu "
                                         "bytes", name, rec);
    if (len % rec != 0)
        return qat_fail(err, QAT_EINVAL,
                        "%s: truncated record: %zu bytes is not a whole number of %zu-byte "
                        "CIFAR records (%d label byte%s + 3072 pixels); record %zu is cut "
                        "after %zu bytes",
                        name, len, rec, label_bytes, label_bytes > 1 ? "s" : "", len / rec,
                        len % rec);
    size_t add = len / rec;
    if (add > UINT32_MAX - out->n)
        return qat_fail(err, QAT_EINVAL, "%s: more than 2^32 records", name);
    size_t n = out->n + add;
    /* label byte used: CIFAR-100 records carry (coarse, fine); 20 classes
     * take the coarse label, anything else the fine one */
    int which = label_bytes == 2 && num_classes != 20 ? 1 : 0;
    uint8_t *im = realloc(out->images, n * PIXELS);
    if (!im)
        return qat_fail(err, QAT_ENOMEM, "%s: out of memory for %zu images", name, n);
    out->images = im;
    uint8_t *lb = realloc(out->labels, n);
    if (!lb)
        return qat_fail(err, QAT_ENOMEM, "%s: out of memory for %zu labels", name, n);
    out->labels = lb;
    for (size_t r = 0; r < add; r++) {
        const uint8_t *src = buf + r * rec;
        uint8_t label = src[which];
        if ((int)label >= num_classes)
            return qat_fail(err, QAT_EINVAL,
                            "%s: record %zu (byte offset %zu) has label %u, expected < "
                            "num_classes %d",
                            name, r, r * rec + (size_t)which, (unsigned)label, num_classes);
        size_t i = out->n + r;
        out->labels[i] = label;
        const uint8_t *px = src + label_bytes;
        uint8_t *dst = out->images + i * PIXELS;
        for (int p = 0; p < PLANE; p++)
            for (int c = 0; c < 3; c++)
                dst[3 * p + c] = px[c * PLANE + p];
    }
    out->n = (uint32_t)n;
    out->h = out->w = SIDE;
    out->c = 3;
    out->num_classes = num_classes;
    return QAT_OK;
}
