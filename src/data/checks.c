/* What every loaded split goes through, whatever its format: memory, the
 * shapes an array may have, labels and targets, limits. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/data_internal.h"
#include "qat/data.h"

const char *const qat_data_format_names[] = {"auto", "idx", "hdf5", "npy", "cifar", "csv", NULL};

int qat_data_format_parse(const char *s)
{
    for (int i = 0; s && qat_data_format_names[i]; i++)
        if (strcmp(s, qat_data_format_names[i]) == 0)
            return i;
    return -1;
}

qat_status qat_data_map(const char *path, uint8_t **p, size_t *len, qat_error *err)
{
    *p = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return qat_fail(err, e == ENOENT || e == ENOTDIR ? QAT_EINVAL : QAT_EIO,
                        "%s: cannot open: %s", path, strerror(e));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return qat_fail(err, QAT_EINVAL, "%s: not a regular file", path);
    }
    if (sb.st_size == 0) {
        close(fd);
        return qat_fail(err, QAT_EINVAL, "%s: empty file", path);
    }
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED)
        return qat_fail(err, QAT_EIO, "%s: cannot map %lld bytes: %s", path,
                        (long long)sb.st_size, strerror(e));
    *p = m;
    *len = (size_t)sb.st_size;
    return QAT_OK;
}

qat_status qat_data_check_memory(const char *path, size_t bytes, size_t available,
                                 qat_error *err)
{
    if (bytes <= available)
        return QAT_OK;
    double gib = 1024.0 * 1024.0 * 1024.0;
    return qat_fail(err, QAT_EINVAL,
                    "%s: the dataset needs %.2f GiB of memory but only %.2f GiB is available "
                    "(MemAvailable, or the container's limit); it would not fit",
                    path, (double)bytes / gib, (double)available / gib);
}

qat_status qat_data_check_records(const qat_dataset *d, uint32_t from, uint32_t to,
                                  const char *targets_name, qat_error *err)
{
    if (d->labels)
        for (uint32_t i = from; i < to; i++)
            if ((int)d->labels[i] >= d->num_classes)
                return qat_fail(err, QAT_EINVAL,
                                "%s: label at index %u has value %u, expected < num_classes %d",
                                targets_name, (unsigned)i, (unsigned)d->labels[i],
                                d->num_classes);
    if (d->targets) {
        size_t k = (size_t)d->target_dim;
        for (size_t i = (size_t)from * k; i < (size_t)to * k; i++)
            if (!isfinite(d->targets[i]))
                return qat_fail(err, QAT_EINVAL,
                                "%s: target %zu of record %zu is %g: targets must be finite",
                                targets_name, i % k, i / k, (double)d->targets[i]);
    }
    return QAT_OK;
}

qat_status qat_data_check_split(const qat_dataset *d, const char *inputs_name,
                                const char *targets_name, qat_error *err)
{
    if (d->n == 0)
        return qat_fail(err, QAT_EINVAL, "%s: holds no examples: the split is empty", inputs_name);
    if (qat_dataset_image_size(d) > QAT_DATA_MAX_EXAMPLE)
        return qat_fail(err, QAT_EINVAL, "%s: examples of %dx%dx%d values are larger than the "
                                         "limit of 2^26", inputs_name, d->h, d->w, d->c);
    /* Every label is checked, even past a limit: a bad label means the
     * file is not the dataset the caller thinks it is. */
    qat_status st = qat_data_check_records(d, 0, d->n, targets_name, err);
    if (st != QAT_OK)
        return st;
    if (d->features) {
        size_t isz = qat_dataset_image_size(d);
        for (size_t i = 0; i < (size_t)d->n * isz; i++)
            if (!isfinite(d->features[i]))
                return qat_fail(err, QAT_EINVAL,
                                "%s: value %zu of record %zu is %g: inputs must be finite",
                                inputs_name, i % isz, i / isz, (double)d->features[i]);
    }
    return QAT_OK;
}

void qat_data_limit(qat_dataset *d, uint32_t limit)
{
    if (limit == 0 || limit >= d->n)
        return;
    d->n = limit; /* the arrays keep their size: a mapping cannot shrink, a copy costs more */
}

qat_status qat_data_set_inputs(qat_dataset *d, const char *name, qat_data_type type, int ndims,
                               const uint64_t *dims, void *data, qat_error *err)
{
    if (ndims < 2 || ndims > 4)
        return qat_fail(err, QAT_EINVAL,
                        "%s: inputs of rank %d: expected N x F features (rank 2), N x H x W "
                        "images (3) or N x H x W x C (4)",
                        name, ndims);
    uint64_t h = ndims >= 3 ? dims[1] : 1, w = ndims >= 3 ? dims[2] : 1;
    uint64_t c = ndims == 4 ? dims[3] : ndims == 2 ? dims[1] : 1;
    if (dims[0] > UINT32_MAX || h > 4096 || w > 4096 || c > 65536)
        return qat_fail(err, QAT_EINVAL,
                        "%s: shape %llu x %llu x %llu x %llu is too large (at most 2^32 - 1 "
                        "examples of 4096 x 4096 x 65536)",
                        name, (unsigned long long)dims[0], (unsigned long long)h,
                        (unsigned long long)w, (unsigned long long)c);
    d->n = (uint32_t)dims[0];
    d->h = (int)h;
    d->w = (int)w;
    d->c = (int)c;
    if (type == QAT_DATA_F32)
        d->features = data;
    else
        d->images = data;
    return QAT_OK;
}
