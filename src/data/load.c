/* Loading a split: where its files are (a folder holding both splits under
 * standard names, or a split's own file), which format they are in, and
 * each format's way from files to a qat_dataset. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "data/data_internal.h"
#include "qat/data.h"

#define PATH_CAP 4096

static int is_file(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* "dir/name"; 0 if it does not fit. */
static int join(char *out, const char *dir, const char *name)
{
    int k = snprintf(out, PATH_CAP, "%s/%s", dir, name);
    return k > 0 && k < PATH_CAP;
}

static const char *base_name(const char *p)
{
    const char *b = strrchr(p, '/');
    return b ? b + 1 : p;
}

/* The names a split's files carry: IDX calls the test split t10k. */
static const char *const *split_names(const char *split, int idx)
{
    static const char *const train[] = {"train", NULL};
    static const char *const test[] = {"test", NULL}, *const t10k[] = {"t10k", "test", NULL};
    return strcmp(split, "train") == 0 ? train : idx ? t10k : test;
}

qat_data_format qat_data_sniff(const char *path)
{
    unsigned char b[8] = {0};
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(b, 1, sizeof b, f) : 0;
    if (f)
        fclose(f);
    if (n >= 8 && memcmp(b, "\x89HDF\r\n\x1a\n", 8) == 0)
        return QAT_FORMAT_HDF5;
    if (n >= 6 && memcmp(b, "\x93NUMPY", 6) == 0)
        return QAT_FORMAT_NPY;
    if (n >= 4 && b[0] == 0 && b[1] == 0 && (b[2] == 0x08 || b[2] == 0x0D) && b[3] >= 1 &&
        b[3] <= 4)
        return QAT_FORMAT_IDX;
    if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b)
        return QAT_FORMAT_IDX; /* gzip: only IDX files are read compressed */
    size_t l = strlen(path);
    if (l > 4 && strcmp(path + l - 4, ".csv") == 0)
        return QAT_FORMAT_CSV;
    if (l > 4 && strcmp(path + l - 4, ".bin") == 0)
        return QAT_FORMAT_CIFAR;
    return QAT_FORMAT_AUTO;
}

/* ---- IDX ------------------------------------------------------------------------ */

/* <dir>/<prefix>-<kind>-idx<r>-ubyte, raw or .gz, for the ranks listed: the
 * raw file wins (what fetch_mnist.sh installs; no inflate). */
static int find_idx(const char *dir, const char *prefix, const char *kind, const char *ranks,
                    char *path)
{
    for (const char *r = ranks; *r; r++)
        for (int gz = 0; gz < 2; gz++) {
            char name[300];
            snprintf(name, sizeof name, "%s-%s-idx%c-ubyte%s", prefix, kind, *r, gz ? ".gz" : "");
            if (join(path, dir, name) && is_file(path))
                return 1;
        }
    return 0;
}

/* Reads an IDX file of rank min..max, keeping the first limit examples (0:
 * all); the copy must fit in mem_available. A regular file is mapped, not
 * read: a raw one is parsed in place, so with a limit only the kept
 * examples' pages are touched (3,000 of MNIST's 60,000 training images: 2.4
 * of 47 MB) and without one the data is copied once instead of read and
 * then copied; a gzip one is inflated from the mapping. The whole file is
 * checked either way, its length exactly. */
static qat_status read_idx(const char *path, const char *what, int min_rank, int max_rank,
                           int float_ok, size_t mem_available, uint32_t limit, qat_idx_array *a,
                           qat_error *err)
{
    uint8_t *map = NULL, *buf = NULL; /* the mapping; what was read or inflated */
    size_t map_len = 0, len = 0;
    qat_error quiet = {0}; /* not mappable: the read below names the reason */
    qat_status st = QAT_OK;
    if (qat_data_map(path, &map, &map_len, &quiet) != QAT_OK)
        st = qat_read_file_maybe_gz(path, &buf, &len, err);
    else if (map_len >= 2 && map[0] == 0x1f && map[1] == 0x8b)
        st = qat_data_gunzip(map, map_len, QAT_DATA_MAX_FILE_BYTES, path, &buf, &len, err);
    if (st == QAT_OK && buf)
        st = qat_data_check_memory(path, len, mem_available, err);
    if (st == QAT_OK)
        st = qat_idx_parse(buf ? buf : map, buf ? len : map_len, path, what, min_rank, max_rank,
                           float_ok, limit, mem_available, a, err);
    if (map)
        munmap(map, map_len);
    free(buf);
    return st;
}

/* Targets of a regression from a uint8 or float array of n or n x k. */
static qat_status float_targets(qat_dataset *d, const char *name, qat_data_type type,
                                int ndims, const uint64_t *dims, const void *data, qat_error *err)
{
    uint64_t k = ndims == 2 ? dims[1] : 1;
    if (k > QAT_DATA_MAX_TARGETS)
        return qat_fail(err, QAT_EINVAL, "%s: %llu targets per example (limit %d)", name,
                        (unsigned long long)k, QAT_DATA_MAX_TARGETS);
    size_t count = (size_t)dims[0] * (size_t)k;
    float *t = malloc(count ? count * sizeof *t : 1);
    if (!t)
        return qat_fail(err, QAT_ENOMEM, "%s: out of memory for %zu targets", name, count);
    for (size_t i = 0; i < count; i++)
        t[i] = type == QAT_DATA_F32 ? ((const float *)data)[i] : (float)((const uint8_t *)data)[i];
    d->targets = t;
    d->target_dim = (int)k;
    qat_data_own(d, t, 0);
    return QAT_OK;
}

/* An IDX pair: inputs of rank 2..4 (strict: the MNIST image file, rank 3
 * unsigned bytes) and their labels or targets. */
static qat_status load_idx_pair(const char *ipath, const char *tpath, int strict, int regression,
                                int num_classes, size_t mem, uint32_t limit, qat_dataset *out,
                                qat_error *err)
{
    memset(out, 0, sizeof *out);
    qat_idx_array a = {0}, b = {0};
    qat_status st = read_idx(ipath, "images", strict ? 3 : 2, strict ? 3 : 4, !strict, mem,
                             limit, &a, err);
    if (st != QAT_OK)
        return st;
    qat_data_own(out, a.data, 0);
    uint64_t dims[4] = {a.kept, a.dims[1], a.dims[2], a.dims[3]};
    if ((st = qat_data_set_inputs(out, ipath, a.type, a.ndims, dims, a.data, err)) != QAT_OK ||
        (st = read_idx(tpath, "labels", 1, regression ? 2 : 1, regression, SIZE_MAX, 0, &b,
                       err)) != QAT_OK)
        goto fail;
    if (b.dims[0] != a.dims[0]) {
        st = qat_fail(err, QAT_EINVAL,
                      "count mismatch: %s holds %u images but %s holds %u labels; they must "
                      "agree",
                      ipath, (unsigned)a.dims[0], tpath, (unsigned)b.dims[0]);
        goto fail;
    }
    if (regression) {
        uint64_t td[2] = {b.dims[0], b.dims[1]};
        st = float_targets(out, tpath, b.type, b.ndims, td, b.data, err);
        free(b.data);
        b.data = NULL;
        if (st != QAT_OK)
            goto fail;
    } else {
        out->labels = b.data;
        out->num_classes = num_classes;
        qat_data_own(out, b.data, 0);
        b.data = NULL;
    }
    /* the examples past the limit were not copied; their labels are
     * checked all the same (qat_data_check_split covers the kept ones) */
    if (a.kept < a.dims[0] && (st = qat_data_check_records(out, a.kept, a.dims[0], tpath, err)) !=
                                  QAT_OK)
        goto fail;
    return QAT_OK;
fail:
    free(b.data);
    qat_dataset_free(out);
    return st;
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
    if (strlen(split) > 200)
        return qat_fail(err, QAT_EINVAL, "%s: split name '%.64s...' too long", dir, split);
    char ipath[PATH_CAP], lpath[PATH_CAP];
    const char *what[2] = {"images", "labels"};
    char *paths[2] = {ipath, lpath};
    for (int i = 0; i < 2; i++)
        if (!find_idx(dir, split, what[i], i ? "1" : "3", paths[i])) {
            char base[256];
            snprintf(base, sizeof base, "%s-%s-idx%d-ubyte", split, what[i], i ? 1 : 3);
            if (!join(paths[i], dir, base))
                return qat_fail(err, QAT_EINVAL, "%s: dataset path too long (over %d bytes)",
                                dir, PATH_CAP - 1);
            return qat_fail(err, QAT_EINVAL,
                            "%s: cannot find the %s %s: tried %s and %s.gz "
                            "(scripts/fetch_mnist.sh downloads MNIST)",
                            dir, split, what[i], base, base);
        }
    qat_status st = load_idx_pair(ipath, lpath, 1, 0, num_classes, SIZE_MAX, limit, out, err);
    if (st == QAT_OK && (st = qat_data_check_split(out, ipath, lpath, err)) != QAT_OK)
        qat_dataset_free(out);
    if (st == QAT_OK)
        qat_data_limit(out, limit);
    return st;
}

/* ---- NumPy ------------------------------------------------------------------------ */

static qat_status load_npy_pair(const char *ipath, const char *tpath, int regression,
                                int num_classes, size_t mem, qat_dataset *out, qat_error *err)
{
    memset(out, 0, sizeof *out);
    uint8_t *map = NULL, *tmap = NULL;
    size_t len = 0, tlen = 0;
    qat_npy_array a, b;
    qat_status st = qat_data_map(ipath, &map, &len, err);
    if (st != QAT_OK)
        return st;
    qat_data_own(out, map, len);
    if ((st = qat_npy_parse(map, len, ipath, &a, err)) != QAT_OK ||
        (st = qat_data_check_memory(ipath, a.count * (size_t)a.elem_size, mem, err)) != QAT_OK)
        goto fail;
    /* uint8 and float32 stay in the mapping (the data of a .npy file is
     * 64-byte aligned); float64 is the one type worth converting */
    void *data = (void *)a.data;
    qat_data_type type = QAT_DATA_U8;
    if (a.kind == 'f') {
        type = QAT_DATA_F32;
        if (a.elem_size != 4 || ((uintptr_t)a.data & 3)) {
            float *f = malloc(a.count * sizeof *f);
            if (!f) {
                st = qat_fail(err, QAT_ENOMEM, "%s: out of memory converting to float32", ipath);
                goto fail;
            }
            for (size_t i = 0; i < a.count; i++)
                f[i] = (float)qat_npy_get(&a, i);
            qat_data_own(out, f, 0);
            data = f;
        }
    } else if (!(a.kind == 'u' && a.elem_size == 1)) {
        st = qat_fail(err, QAT_EINVAL,
                      "%s: inputs of dtype %c%d: expected uint8 (pixels) or float32/float64 "
                      "(features)",
                      ipath, a.kind, a.elem_size);
        goto fail;
    }
    if ((st = qat_data_set_inputs(out, ipath, type, a.ndims, a.dims, data, err)) != QAT_OK ||
        (st = qat_data_map(tpath, &tmap, &tlen, err)) != QAT_OK)
        goto fail;
    if ((st = qat_npy_parse(tmap, tlen, tpath, &b, err)) != QAT_OK)
        goto fail_t;
    if (b.dims[0] != a.dims[0] || b.ndims > 2) {
        st = qat_fail(err, QAT_EINVAL,
                      "%s: targets of shape %llu%s: expected %llu (one per example in %s)%s",
                      tpath, (unsigned long long)b.dims[0], b.ndims > 1 ? " x ..." : "",
                      (unsigned long long)a.dims[0], ipath, regression ? " or N x K" : "");
        goto fail_t;
    }
    if (regression) {
        float *t = malloc(b.count * sizeof *t);
        if (!t) {
            st = qat_fail(err, QAT_ENOMEM, "%s: out of memory", tpath);
            goto fail_t;
        }
        for (size_t i = 0; i < b.count; i++)
            t[i] = (float)qat_npy_get(&b, i);
        out->targets = t;
        out->target_dim = b.ndims == 2 ? (int)b.dims[1] : 1;
        qat_data_own(out, t, 0);
    } else {
        if (b.kind == 'f' || b.ndims != 1) {
            st = qat_fail(err, QAT_EINVAL,
                          "%s: holds %s; [model] task = classification needs one integer label "
                          "per example",
                          tpath, b.kind == 'f' ? "floats" : "more than one value per example");
            goto fail_t;
        }
        uint8_t *l = malloc(b.count);
        if (!l) {
            st = qat_fail(err, QAT_ENOMEM, "%s: out of memory", tpath);
            goto fail_t;
        }
        qat_data_own(out, l, 0);
        out->labels = l;
        out->num_classes = num_classes;
        for (size_t i = 0; i < b.count; i++) {
            double v = qat_npy_get(&b, i);
            if (v < 0 || v >= num_classes) {
                st = qat_fail(err, QAT_EINVAL,
                              "%s: label at index %zu has value %.0f, expected in [0, "
                              "num_classes %d)",
                              tpath, i, v, num_classes);
                goto fail_t;
            }
            l[i] = (uint8_t)v;
        }
    }
    munmap(tmap, tlen);
    return QAT_OK;
fail_t:
    munmap(tmap, tlen);
fail:
    qat_dataset_free(out);
    return st;
}

/* ---- CIFAR, CSV ------------------------------------------------------------------ */

/* Reads a whole raw file (no gzip), refusing one over mem bytes. */
static qat_status slurp(const char *path, size_t mem, uint8_t **buf, size_t *len, qat_error *err)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
        qat_status st = qat_data_check_memory(path, (size_t)sb.st_size, mem, err);
        if (st != QAT_OK)
            return st;
    }
    return qat_read_file_maybe_gz(path, buf, len, err);
}

/* CIFAR-100's files (train.bin, test.bin) carry two label bytes. */
static int cifar_label_bytes(const char *path)
{
    const char *b = base_name(path);
    return strcmp(b, "train.bin") == 0 || strcmp(b, "test.bin") == 0 ? 2 : 1;
}

static qat_status load_cifar(char **paths, int npaths, int num_classes, size_t mem,
                             qat_dataset *out, qat_error *err)
{
    memset(out, 0, sizeof *out);
    qat_status st = QAT_OK;
    /* the batches accumulate: each may have only what the ones before left */
    size_t used = 0;
    for (int i = 0; i < npaths && st == QAT_OK; i++) {
        uint8_t *buf = NULL;
        size_t len = 0;
        st = slurp(paths[i], mem - used, &buf, &len, err);
        used += len < mem - used ? len : mem - used;
        if (st == QAT_OK)
            st = qat_cifar_parse(buf, len, paths[i], cifar_label_bytes(paths[i]), num_classes,
                                 out, err);
        free(buf);
    }
    /* the arrays grew by realloc: owned only now that they stay put */
    qat_data_own(out, out->images, 0);
    qat_data_own(out, out->labels, 0);
    if (st != QAT_OK)
        qat_dataset_free(out);
    return st;
}

static qat_status load_csv(const char *path, const char *target, int regression,
                           int num_classes, size_t mem, qat_dataset *out, qat_error *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    memset(out, 0, sizeof *out);
    qat_status st = slurp(path, mem, &buf, &len, err);
    if (st == QAT_OK)
        st = qat_csv_parse((const char *)buf, len, path, target, regression, num_classes, out,
                           err);
    free(buf);
    return st;
}

/* ---- locating a split ---------------------------------------------------------- */

/* The files of one split, once found. */
typedef struct located {
    qat_data_format format;
    char inputs[PATH_CAP], targets[PATH_CAP]; /* targets: IDX and npy only */
    char group[16]; /* HDF5: the split's group; IDX: the files' prefix (train, t10k, test) */
    int group_required;
    char *batches[64];                        /* CIFAR: the batch files */
    int nbatches;
} located;

static void located_free(located *l)
{
    for (int i = 0; i < l->nbatches; i++)
        free(l->batches[i]);
}

static int add_batch(located *l, const char *path)
{
    if (l->nbatches == 64 || !(l->batches[l->nbatches] = strdup(path)))
        return 0;
    l->nbatches++;
    return 1;
}

/* Looks for the split's files of one format in dir; 1 if found. */
static int find_in_dir(const char *dir, const char *split, qat_data_format f, located *l)
{
    const char *const *names = split_names(split, f == QAT_FORMAT_IDX);
    char name[300], p[PATH_CAP];
    l->format = f;
    for (; *names; names++) {
        switch (f) {
        case QAT_FORMAT_IDX:
            if (find_idx(dir, *names, "images", "342", l->inputs)) {
                if (!find_idx(dir, *names, "labels", "12", l->targets))
                    l->targets[0] = '\0'; /* locate reports it */
                snprintf(l->group, sizeof l->group, "%s", *names);
                return 1;
            }
            break;
        case QAT_FORMAT_NPY:
            snprintf(name, sizeof name, "x_%s.npy", *names);
            if (join(l->inputs, dir, name) && is_file(l->inputs)) {
                snprintf(name, sizeof name, "y_%s.npy", *names);
                join(l->targets, dir, name);
                return 1;
            }
            break;
        case QAT_FORMAT_HDF5:
            for (int e = 0; e < 2; e++) {
                snprintf(name, sizeof name, "%s.%s", *names, e ? "hdf5" : "h5");
                if (join(l->inputs, dir, name) && is_file(l->inputs))
                    return 1;
            }
            break;
        case QAT_FORMAT_CSV:
            snprintf(name, sizeof name, "%s.csv", *names);
            if (join(l->inputs, dir, name) && is_file(l->inputs))
                return 1;
            break;
        case QAT_FORMAT_CIFAR:
            if (strcmp(split, "train") == 0) {
                for (int i = 1; i <= 64; i++) {
                    snprintf(name, sizeof name, "data_batch_%d.bin", i);
                    if (!join(p, dir, name) || !is_file(p) || !add_batch(l, p))
                        break;
                }
                if (l->nbatches == 0 && join(p, dir, "train.bin") && is_file(p))
                    add_batch(l, p);
            } else {
                if ((join(p, dir, "test_batch.bin") && is_file(p)) ||
                    (join(p, dir, "test.bin") && is_file(p)))
                    add_batch(l, p);
            }
            if (l->nbatches)
                return 1;
            break;
        case QAT_FORMAT_AUTO:
            break;
        }
    }
    return 0;
}

static qat_status not_found(const char *dir, const char *split, qat_data_format f,
                            qat_error *err)
{
    const char *s = split_names(split, f == QAT_FORMAT_IDX || f == QAT_FORMAT_AUTO)[0];
    int train = strcmp(split, "train") == 0;
    switch (f) {
    case QAT_FORMAT_AUTO:
    case QAT_FORMAT_IDX:
        return qat_fail(err, QAT_EINVAL,
                        "%s: cannot find the %s images: tried %s-images-idx3-ubyte and "
                        "%s-images-idx3-ubyte.gz (scripts/fetch_mnist.sh downloads MNIST)%s",
                        dir, s, s, s,
                        f == QAT_FORMAT_AUTO
                            ? "; nor the files of another format (x_<split>.npy, <split>.h5, "
                              "CIFAR's data_batch_*.bin / test_batch.bin, <split>.csv)"
                            : "");
    case QAT_FORMAT_NPY:
        return qat_fail(err, QAT_EINVAL, "%s: cannot find x_%s.npy (the %s inputs)", dir, s,
                        split);
    case QAT_FORMAT_HDF5:
        return qat_fail(err, QAT_EINVAL, "%s: cannot find %s.h5 or %s.hdf5", dir, s, s);
    case QAT_FORMAT_CSV:
        return qat_fail(err, QAT_EINVAL, "%s: cannot find %s.csv", dir, s);
    case QAT_FORMAT_CIFAR:
        return qat_fail(err, QAT_EINVAL, "%s: cannot find %s", dir,
                        train ? "data_batch_1.bin or train.bin" : "test_batch.bin or test.bin");
    }
    return QAT_EINVAL;
}

/* An IDX folder with the split's images but not its labels (MNIST's
 * message: the name most folders use). */
static qat_status missing_labels(const char *dir, const located *l, qat_error *err)
{
    if (l->format != QAT_FORMAT_IDX || l->targets[0])
        return QAT_OK;
    return qat_fail(err, QAT_EINVAL,
                    "%s: cannot find the %s labels: tried %s-labels-idx1-ubyte and "
                    "%s-labels-idx1-ubyte.gz (scripts/fetch_mnist.sh downloads MNIST)",
                    dir, l->group, l->group, l->group);
}

/* The targets file beside an inputs file: x*.npy -> y*.npy, and for IDX the
 * name with "images" replaced by "labels" (idx1 or idx2). */
static qat_status sibling(const char *inputs, qat_data_format f, char *out, qat_error *err)
{
    const char *b = base_name(inputs);
    size_t dl = (size_t)(b - inputs);
    if (f == QAT_FORMAT_NPY) {
        if (b[0] != 'x' && b[0] != 'X')
            return qat_fail(err, QAT_EINVAL,
                            "%s: cannot tell where its targets are: a .npy inputs file is "
                            "named x*.npy, with its targets in y*.npy beside it",
                            inputs);
        snprintf(out, PATH_CAP, "%.*s%c%s", (int)dl, inputs, b[0] == 'x' ? 'y' : 'Y', b + 1);
        return QAT_OK;
    }
    const char *im = strstr(b, "images-idx");
    if (!im || !im[10])
        return qat_fail(err, QAT_EINVAL,
                        "%s: cannot tell where its labels are: an IDX inputs file is named "
                        "*-images-idx<N>-ubyte, with *-labels-idx<M>-ubyte beside it",
                        inputs);
    for (char r = '1'; r <= '2'; r++) {
        snprintf(out, PATH_CAP, "%.*slabels-idx%c%s", (int)(im - inputs), inputs, r, im + 11);
        if (is_file(out))
            return QAT_OK;
    }
    snprintf(out, PATH_CAP, "%.*slabels-idx1%s", (int)(im - inputs), inputs, im + 11);
    return QAT_OK; /* missing: the loader names it */
}

static qat_status locate(const qat_data_source *src, const char *split, const char *path,
                         located *l, qat_error *err)
{
    memset(l, 0, sizeof *l);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return qat_fail(err, QAT_EINVAL, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) {
        if (src->format != QAT_FORMAT_AUTO) {
            if (!find_in_dir(path, split, src->format, l))
                return not_found(path, split, src->format, err);
            return missing_labels(path, l, err);
        }
        static const qat_data_format order[] = {QAT_FORMAT_IDX, QAT_FORMAT_NPY, QAT_FORMAT_HDF5,
                                                QAT_FORMAT_CIFAR, QAT_FORMAT_CSV};
        for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
            if (find_in_dir(path, split, order[i], l))
                return missing_labels(path, l, err);
        /* an incomplete MNIST folder keeps its old message */
        char p[PATH_CAP];
        const char *s = split_names(split, 1)[0];
        if (find_idx(path, s, "labels", "12", p))
            return not_found(path, split, QAT_FORMAT_IDX, err);
        return not_found(path, split, QAT_FORMAT_AUTO, err);
    }
    qat_data_format f = src->format != QAT_FORMAT_AUTO ? src->format : qat_data_sniff(path);
    if (f == QAT_FORMAT_AUTO)
        return qat_fail(err, QAT_EINVAL,
                        "%s: cannot tell its format from its first bytes or its name (set "
                        "[data] format)",
                        path);
    l->format = f;
    snprintf(l->inputs, PATH_CAP, "%s", path);
    if (f == QAT_FORMAT_IDX || f == QAT_FORMAT_NPY)
        return sibling(path, f, l->targets, err);
    if (f == QAT_FORMAT_CIFAR)
        return add_batch(l, path) ? QAT_OK : qat_fail(err, QAT_ENOMEM, "out of memory");
    if (f == QAT_FORMAT_HDF5) {
        /* one file for both splits keeps them in groups "train" and "test" */
        const char *other = strcmp(split, "train") == 0 ? src->test : src->train;
        snprintf(l->group, sizeof l->group, "%s", split);
        l->group_required = other && *other && strcmp(other, path) == 0;
    }
    return QAT_OK;
}

static qat_status load_located(const qat_data_source *src, located *l, uint32_t limit,
                               qat_dataset *out, qat_error *err)
{
    size_t mem = src->mem_available;
    switch (l->format) {
    case QAT_FORMAT_IDX:
        return load_idx_pair(l->inputs, l->targets, 0, src->regression, src->num_classes, mem,
                             limit, out, err);
    case QAT_FORMAT_NPY:
        return load_npy_pair(l->inputs, l->targets, src->regression, src->num_classes, mem, out,
                             err);
    case QAT_FORMAT_CIFAR:
        if (src->regression)
            return qat_fail(err, QAT_EINVAL, "%s: CIFAR batches hold class labels; [model] "
                                             "task = regression needs float targets",
                            l->batches[0]);
        return load_cifar(l->batches, l->nbatches, src->num_classes, mem, out, err);
    case QAT_FORMAT_CSV:
        return load_csv(l->inputs, src->target, src->regression, src->num_classes, mem, out,
                        err);
    case QAT_FORMAT_HDF5:
        if (!src->h5)
            return qat_fail(err, QAT_EUNSUPPORTED, "%s: HDF5 datasets are not supported here",
                            l->inputs);
        return src->h5(l->inputs, l->group, l->group_required, src->x_name, src->y_name,
                       src->regression, src->num_classes, mem, out, err);
    case QAT_FORMAT_AUTO:
        break;
    }
    return qat_fail(err, QAT_EINTERNAL, "unknown data format");
}

qat_status qat_data_load(const qat_data_source *src, const char *split, uint32_t limit,
                         qat_dataset *out, char *where, size_t where_len, qat_error *err)
{
    memset(out, 0, sizeof *out);
    const char *own = strcmp(split, "train") == 0 ? src->train : src->test;
    const char *path = own && *own ? own : src->dir;
    if (where)
        snprintf(where, where_len, "%s", path);
    located l;
    qat_status st = locate(src, split, path, &l, err);
    if (st == QAT_OK)
        st = load_located(src, &l, limit, out, err);
    const char *tname = l.format == QAT_FORMAT_IDX || l.format == QAT_FORMAT_NPY ? l.targets
                        : l.nbatches ? l.batches[0] : l.inputs;
    const char *iname = l.nbatches ? l.batches[0] : l.inputs;
    if (st == QAT_OK && (st = qat_data_check_split(out, iname, tname, err)) != QAT_OK)
        qat_dataset_free(out);
    located_free(&l);
    if (st == QAT_OK)
        qat_data_limit(out, limit);
    return st;
}

qat_status qat_data_load_pair(qat_data_format format, const char *inputs, const char *targets,
                              int regression, int num_classes, size_t mem_available,
                              qat_dataset *out, qat_error *err)
{
    memset(out, 0, sizeof *out);
    if (format == QAT_FORMAT_AUTO)
        format = qat_data_sniff(inputs) == QAT_FORMAT_NPY ? QAT_FORMAT_NPY : QAT_FORMAT_IDX;
    qat_status st = format == QAT_FORMAT_NPY
                        ? load_npy_pair(inputs, targets, regression, num_classes, mem_available,
                                        out, err)
                        : load_idx_pair(inputs, targets, 0, regression, num_classes,
                                        mem_available, 0, out, err);
    if (st == QAT_OK && (st = qat_data_check_split(out, inputs, targets, err)) != QAT_OK)
        qat_dataset_free(out);
    return st;
}
