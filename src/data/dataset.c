/* Datasets in memory: ownership, subsets and the validation split, the
 * per-epoch order and the batches built from it, and input statistics. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "data/data_internal.h"
#include "qat/data.h"

void qat_dataset_free(qat_dataset *d)
{
    if (!d)
        return;
    for (int i = 0; i < QAT_DATA_BLOCKS; i++) {
        if (!d->own[i].p)
            continue;
        if (d->own[i].map_len)
            munmap(d->own[i].p, d->own[i].map_len);
        else
            free(d->own[i].p);
    }
    free(d->index);
    memset(d, 0, sizeof *d);
}

void qat_data_own(qat_dataset *d, void *p, size_t map_len)
{
    if (!p)
        return;
    for (int i = 0; i < QAT_DATA_BLOCKS; i++)
        if (!d->own[i].p) {
            d->own[i] = (qat_data_block){p, map_len};
            return;
        }
    QAT_ASSERT(!"more blocks than QAT_DATA_BLOCKS");
}

size_t qat_dataset_image_size(const qat_dataset *d)
{
    return (size_t)d->h * (size_t)d->w * (size_t)d->c;
}

qat_data_type qat_dataset_type(const qat_dataset *d)
{
    return d->features ? QAT_DATA_F32 : QAT_DATA_U8;
}

static size_t elem_size(const qat_dataset *d)
{
    return d->features ? sizeof(float) : 1;
}

size_t qat_dataset_bytes(const qat_dataset *d)
{
    size_t per = qat_dataset_image_size(d) * elem_size(d) +
                 (d->targets ? (size_t)d->target_dim * sizeof(float) : 1);
    return per * (size_t)d->n;
}

/* Stored position of example i. */
static uint32_t at(const qat_dataset *d, uint32_t i)
{
    QAT_ASSERT(i < d->n);
    return d->index ? d->index[i] : i;
}

qat_status qat_dataset_subset(const qat_dataset *d, const uint32_t *idx, uint32_t n,
                              qat_dataset *out, qat_error *err)
{
    memset(out, 0, sizeof *out);
    uint32_t *map = malloc(((size_t)n + 1) * sizeof *map);
    if (!map)
        return qat_fail(err, QAT_ENOMEM, "out of memory for a subset of %u examples",
                        (unsigned)n);
    for (uint32_t i = 0; i < n; i++)
        map[i] = at(d, idx[i]);
    *out = *d;
    memset(out->own, 0, sizeof out->own); /* the storage stays d's */
    out->index = map;
    out->n = n;
    return QAT_OK;
}

qat_status qat_dataset_split(const qat_dataset *d, double fraction, qat_rng *rng,
                             qat_dataset *train, qat_dataset *val, qat_error *err)
{
    memset(train, 0, sizeof *train);
    memset(val, 0, sizeof *val);
    uint32_t nv = (uint32_t)llround(fraction * (double)d->n);
    if (nv == 0 || nv >= d->n)
        return qat_fail(err, QAT_EINVAL,
                        "val_fraction %g of %u training examples leaves %u for validation and "
                        "%u for training; both need at least one",
                        fraction, (unsigned)d->n, (unsigned)nv, (unsigned)(d->n - nv));
    /* perm: a random order; its first nv examples are held out. Each side
     * keeps the stored order, so the split only chooses, never reorders. */
    uint32_t *perm = malloc((size_t)d->n * sizeof *perm);
    uint32_t *sides = malloc((size_t)d->n * sizeof *sides);
    uint8_t *is_val = calloc(d->n, 1);
    qat_status st = QAT_OK;
    if (!perm || !sides || !is_val) {
        st = qat_fail(err, QAT_ENOMEM, "out of memory for the validation split");
        goto done;
    }
    qat_dataset_order(d->n, 1, rng, perm);
    for (uint32_t i = 0; i < nv; i++)
        is_val[perm[i]] = 1;
    uint32_t nt = 0, k = d->n - nv; /* train at [0, nt), val at [n - nv, n) */
    for (uint32_t i = 0; i < d->n; i++)
        sides[is_val[i] ? k++ : nt++] = i;
    st = qat_dataset_subset(d, sides, nt, train, err);
    if (st == QAT_OK)
        st = qat_dataset_subset(d, sides + nt, nv, val, err);
done:
    free(perm);
    free(sides);
    free(is_val);
    if (st != QAT_OK) {
        qat_dataset_free(train);
        qat_dataset_free(val);
    }
    return st;
}

void qat_dataset_order(uint32_t n, int shuffle, qat_rng *rng, uint32_t *order)
{
    for (uint32_t i = 0; i < n; i++)
        order[i] = i;
    if (shuffle) {
        QAT_ASSERT(rng != NULL);
        qat_rng_shuffle_u32(rng, order, n);
    }
}

void qat_dataset_batch(const qat_dataset *d, const uint32_t *idx, uint32_t first, int count,
                       void *inputs, uint8_t *labels, float *targets)
{
    QAT_ASSERT(count >= 0);
    size_t isz = qat_dataset_image_size(d) * elem_size(d);
    const uint8_t *src = d->features ? (const uint8_t *)d->features : d->images;
    size_t k = (size_t)d->target_dim;
    for (int i = 0; i < count; i++) {
        uint32_t j = at(d, idx ? idx[i] : first + (uint32_t)i);
        if (inputs)
            memcpy((uint8_t *)inputs + (size_t)i * isz, src + (size_t)j * isz, isz);
        if (labels && d->labels)
            labels[i] = d->labels[j];
        if (targets && d->targets)
            memcpy(targets + (size_t)i * k, d->targets + (size_t)j * k, k * sizeof(float));
    }
}

void qat_dataset_gather(const qat_dataset *d, const uint32_t *idx, int count, uint8_t *images,
                        uint8_t *labels)
{
    QAT_ASSERT(d->images != NULL);
    qat_dataset_batch(d, idx, 0, count, images, labels, NULL);
}

void qat_dataset_channel_stats(const qat_dataset *d, float *mean, float *std)
{
    int C = d->c;
    size_t per = (size_t)d->h * (size_t)d->w, isz = qat_dataset_image_size(d);
    double *s = calloc(2 * (size_t)C, sizeof *s);
    QAT_ASSERT(s != NULL);
    /* two passes in double, in a fixed order: the same numbers on every run */
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t i = 0; i < d->n; i++) {
            uint32_t j = at(d, i);
            for (size_t p = 0; p < per; p++)
                for (int c = 0; c < C; c++) {
                    size_t o = (size_t)j * isz + p * (size_t)C + (size_t)c;
                    double v = d->features ? (double)d->features[o]
                                           : (double)((float)d->images[o] * (1.0f / 255.0f));
                    if (pass == 0)
                        s[c] += v;
                    else
                        s[C + c] += (v - s[c]) * (v - s[c]);
                }
        }
        double count = (double)d->n * (double)per;
        for (int c = 0; c < C; c++)
            if (pass == 0)
                s[c] = count > 0 ? s[c] / count : 0.0;
            else
                s[C + c] = count > 0 ? s[C + c] / count : 1.0;
    }
    for (int c = 0; c < C; c++) {
        mean[c] = (float)s[c];
        double sd = sqrt(s[C + c]);
        std[c] = sd > 1e-6 ? (float)sd : 1e-6f;
    }
    free(s);
}
