/* MNIST as a qat_dataset: locating the split's files, cross-checking images
 * against labels, and the per-epoch order/gather used to build batches. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qat/data.h"

#define PATH_CAP 4096

/* Picks <dir>/<base>, else <dir>/<base>.gz. The raw file wins when both
 * exist: it is what fetch_mnist.sh installs and needs no inflate. */
static qat_status find_split_file(const char *dir, const char *base, const char *what,
                                  char path[PATH_CAP], qat_error *err)
{
    const char *suffix[2] = {"", ".gz"};
    for (int i = 0; i < 2; i++) {
        int k = snprintf(path, PATH_CAP, "%s/%s%s", dir, base, suffix[i]);
        if (k < 0 || k >= PATH_CAP)
            return qat_fail(err, QAT_EINVAL, "%s: dataset path too long (over %d bytes)", dir,
                            PATH_CAP - 1);
        struct stat sb;
        /* Anything but "not there" (say, no permission) is left for the
         * reader, which reports the real cause with the full path. */
        if (stat(path, &sb) == 0 || (errno != ENOENT && errno != ENOTDIR))
            return QAT_OK;
    }
    return qat_fail(err, QAT_EINVAL,
                    "%s: cannot find the %s: tried %s and %s.gz (scripts/fetch_mnist.sh "
                    "downloads MNIST)",
                    dir, what, base, base);
}

/* Drops examples past keep, returning the memory, so a limited dataset
 * costs what it holds. */
static void shrink(qat_dataset *d, uint32_t keep)
{
    size_t isz = qat_dataset_image_size(d);
    d->n = keep;
    /* A failed shrink leaves the old, larger block in place: still valid. */
    uint8_t *im = realloc(d->images, (size_t)keep * isz);
    if (im)
        d->images = im;
    uint8_t *lb = realloc(d->labels, keep);
    if (lb)
        d->labels = lb;
}

qat_status qat_mnist_load(const char *dir, const char *split, int num_classes, uint32_t limit,
                          qat_dataset *out, qat_error *err)
{
    memset(out, 0, sizeof *out);
    if (!dir || !*dir || !split || !*split)
        return qat_fail(err, QAT_EINVAL, "mnist: dataset directory and split must be non-empty");
    if (num_classes < 1)
        return qat_fail(err, QAT_EINVAL, "%s: num_classes is %d, expected >= 1", dir,
                        num_classes);

    char img_base[256], lbl_base[256];
    int k1 = snprintf(img_base, sizeof img_base, "%s-images-idx3-ubyte", split);
    int k2 = snprintf(lbl_base, sizeof lbl_base, "%s-labels-idx1-ubyte", split);
    if (k1 < 0 || k2 < 0 || (size_t)k1 >= sizeof img_base || (size_t)k2 >= sizeof lbl_base)
        return qat_fail(err, QAT_EINVAL, "%s: split name '%.64s...' too long", dir, split);

    char img_path[PATH_CAP], lbl_path[PATH_CAP];
    char what[64];
    snprintf(what, sizeof what, "%s images", split);
    qat_status st = find_split_file(dir, img_base, what, img_path, err);
    if (st != QAT_OK)
        return st;
    snprintf(what, sizeof what, "%s labels", split);
    st = find_split_file(dir, lbl_base, what, lbl_path, err);
    if (st != QAT_OK)
        return st;

    qat_dataset d = {0};
    d.c = 1;
    d.num_classes = num_classes;
    uint8_t *buf = NULL;
    size_t len = 0;
    uint32_t n_lbl = 0;

    st = qat_read_file_maybe_gz(img_path, &buf, &len, err);
    if (st != QAT_OK)
        goto fail;
    st = qat_idx_parse_images(buf, len, img_path, &d.images, &d.n, &d.h, &d.w, err);
    free(buf);
    buf = NULL;
    if (st != QAT_OK)
        goto fail;

    st = qat_read_file_maybe_gz(lbl_path, &buf, &len, err);
    if (st != QAT_OK)
        goto fail;
    st = qat_idx_parse_labels(buf, len, lbl_path, &d.labels, &n_lbl, err);
    free(buf);
    buf = NULL;
    if (st != QAT_OK)
        goto fail;

    if (n_lbl != d.n) {
        st = qat_fail(err, QAT_EINVAL,
                      "count mismatch: %s holds %u images but %s holds %u labels; they must "
                      "agree",
                      img_path, (unsigned)d.n, lbl_path, (unsigned)n_lbl);
        goto fail;
    }
    /* Every label is checked, even past limit: a bad label means the file
     * is not the dataset the caller thinks it is. */
    for (uint32_t i = 0; i < n_lbl; i++) {
        if ((int)d.labels[i] >= num_classes) {
            st = qat_fail(err, QAT_EINVAL,
                          "%s: label at index %u has value %u, expected < num_classes %d",
                          lbl_path, (unsigned)i, (unsigned)d.labels[i], num_classes);
            goto fail;
        }
    }
    if (limit > 0 && limit < d.n)
        shrink(&d, limit);
    *out = d;
    return QAT_OK;

fail:
    qat_dataset_free(&d);
    return st;
}

void qat_dataset_free(qat_dataset *d)
{
    if (!d)
        return;
    free(d->images);
    free(d->labels);
    memset(d, 0, sizeof *d);
}

size_t qat_dataset_image_size(const qat_dataset *d)
{
    return (size_t)d->h * (size_t)d->w * (size_t)d->c;
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

void qat_dataset_gather(const qat_dataset *d, const uint32_t *idx, int count, uint8_t *images,
                        uint8_t *labels)
{
    QAT_ASSERT(count >= 0);
    size_t isz = qat_dataset_image_size(d);
    for (int i = 0; i < count; i++) {
        uint32_t j = idx[i];
        QAT_ASSERT(j < d->n);
        memcpy(images + (size_t)i * isz, d->images + (size_t)j * isz, isz);
        labels[i] = d->labels[j];
    }
}
