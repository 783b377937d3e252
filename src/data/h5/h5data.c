/* HDF5 datasets (h5py's f.create_dataset('x', data=...)): inputs and
 * targets as two datasets, at the root or in a group per split. Each is
 * read once, through HDF5's type conversion, into one buffer. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "qat/data_h5.h"

#define MAX_RANK 4

typedef struct h5ds {
    hid_t id;
    char path[300]; /* "/train/x", for messages */
    int rank;
    hsize_t dims[MAX_RANK];
    H5T_class_t cls;
    size_t size;
    H5T_sign_t sign;
} h5ds;

static qat_status open_ds(hid_t loc, const char *file, const char *group, const char *name,
                          const char *role, int min_rank, int max_rank, h5ds *d, qat_error *err)
{
    memset(d, 0, sizeof *d);
    d->id = -1;
    snprintf(d->path, sizeof d->path, "%s%s/%s", *group ? "/" : "", group, name);
    if (!*name || strchr(name, '/') || H5Lexists(loc, name, H5P_DEFAULT) <= 0)
        return qat_fail(err, QAT_EINVAL,
                        "%s: no dataset %s (the %s; [data] %s names it)", file, d->path, role,
                        strcmp(role, "inputs") == 0 ? "x_name" : "y_name");
    H5O_info_t info;
#if H5_VERSION_GE(1, 12, 0)
    herr_t r = H5Oget_info_by_name3(loc, name, &info, H5O_INFO_BASIC, H5P_DEFAULT);
#else
    herr_t r = H5Oget_info_by_name2(loc, name, &info, H5O_INFO_BASIC, H5P_DEFAULT);
#endif
    if (r < 0 || info.type != H5O_TYPE_DATASET)
        return qat_fail(err, QAT_EINVAL, "%s: %s is not a dataset", file, d->path);
    d->id = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d->id < 0)
        return qat_fail(err, QAT_EINVAL, "%s: cannot open dataset %s", file, d->path);
    hid_t sp = H5Dget_space(d->id), ty = H5Dget_type(d->id);
    d->rank = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
    if (d->rank >= 1 && d->rank <= MAX_RANK)
        H5Sget_simple_extent_dims(sp, d->dims, NULL);
    d->cls = ty < 0 ? H5T_NO_CLASS : H5Tget_class(ty);
    d->size = ty < 0 ? 0 : H5Tget_size(ty);
    d->sign = d->cls == H5T_INTEGER ? H5Tget_sign(ty) : H5T_SGN_ERROR;
    if (sp >= 0)
        H5Sclose(sp);
    if (ty >= 0)
        H5Tclose(ty);
    if (d->rank < min_rank || d->rank > max_rank)
        return qat_fail(err, QAT_EINVAL, "%s: dataset %s has rank %d; the %s must have rank %d..%d",
                        file, d->path, d->rank, role, min_rank, max_rank);
    return QAT_OK;
}

static void close_ds(h5ds *d)
{
    if (d->id >= 0)
        H5Dclose(d->id);
    d->id = -1;
}

static const char *type_text(const h5ds *d, char *buf, size_t n)
{
    if (d->cls == H5T_INTEGER)
        snprintf(buf, n, "%sint%zu", d->sign == H5T_SGN_NONE ? "u" : "", 8 * d->size);
    else if (d->cls == H5T_FLOAT)
        snprintf(buf, n, "float%zu", 8 * d->size);
    else
        snprintf(buf, n, "a non-numeric type");
    return buf;
}

static qat_status read_all(const h5ds *d, hid_t mem, void *buf, const char *file, qat_error *err)
{
    if (H5Dread(d->id, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        return qat_fail(err, QAT_EINVAL, "%s: cannot read dataset %s (damaged file?)", file,
                        d->path);
    return QAT_OK;
}

static qat_status read_split(hid_t f, const char *file, const char *group, int group_required,
                             const char *x_name, const char *y_name, int regression,
                             int num_classes, size_t mem, qat_dataset *out, qat_error *err)
{
    hid_t loc = f;
    const char *gname = "";
    if (group && *group) {
        int has = H5Lexists(f, group, H5P_DEFAULT) > 0;
        if (!has && group_required)
            return qat_fail(err, QAT_EINVAL,
                            "%s: no group /%s: a file that holds both splits keeps each in a "
                            "group named train or test",
                            file, group);
        if (has) {
            loc = H5Gopen2(f, group, H5P_DEFAULT);
            if (loc < 0)
                return qat_fail(err, QAT_EINVAL, "%s: /%s is not a group", file, group);
            gname = group;
        }
    }
    h5ds x, y;
    char tb[32];
    qat_status st = open_ds(loc, file, gname, x_name, "inputs", 2, 4, &x, err);
    if (st == QAT_OK)
        st = open_ds(loc, file, gname, y_name, "targets", 1, regression ? 2 : 1, &y, err);
    if (st != QAT_OK)
        goto done;
    int is_u8 = x.cls == H5T_INTEGER && x.size == 1 && x.sign == H5T_SGN_NONE;
    if (!is_u8 && !(x.cls == H5T_FLOAT && (x.size == 4 || x.size == 8))) {
        st = qat_fail(err, QAT_EINVAL,
                      "%s: dataset %s is %s; inputs must be uint8 (pixels) or float32/float64 "
                      "(features)",
                      file, x.path, type_text(&x, tb, sizeof tb));
        goto done;
    }
    if (y.cls != H5T_INTEGER && !(regression && y.cls == H5T_FLOAT)) {
        st = qat_fail(err, QAT_EINVAL, "%s: dataset %s is %s; %s", file, y.path,
                      type_text(&y, tb, sizeof tb),
                      regression ? "regression targets must be numbers"
                                 : "[model] task = classification needs integer labels");
        goto done;
    }
    if (x.dims[0] != y.dims[0]) {
        st = qat_fail(err, QAT_EINVAL, "%s: %s holds %llu examples but %s holds %llu", file,
                      x.path, (unsigned long long)x.dims[0], y.path,
                      (unsigned long long)y.dims[0]);
        goto done;
    }
    if (x.dims[0] == 0) {
        st = qat_fail(err, QAT_EINVAL, "%s: dataset %s holds no examples: the split is empty",
                      file, x.path);
        goto done;
    }
    uint64_t dims[4];
    size_t count = 1, bytes;
    int overflow = 0;
    for (int i = 0; i < x.rank; i++) {
        dims[i] = x.dims[i];
        overflow |= x.dims[i] > SIZE_MAX || qat_size_mul(count, (size_t)x.dims[i], &count);
    }
    overflow |= qat_size_mul(count, is_u8 ? 1 : sizeof(float), &bytes);
    if (overflow) {
        st = qat_fail(err, QAT_EINVAL, "%s: dataset %s is too large to address", file, x.path);
        goto done;
    }
    if ((st = qat_data_check_memory(file, bytes, mem, err)) != QAT_OK ||
        (st = qat_data_set_inputs(out, file, is_u8 ? QAT_DATA_U8 : QAT_DATA_F32, x.rank, dims,
                                  NULL, err)) != QAT_OK)
        goto done;
    void *xb = malloc(bytes);
    if (!xb) {
        st = qat_fail(err, QAT_ENOMEM, "%s: out of memory for %zu bytes of %s", file, bytes,
                      x.path);
        goto done;
    }
    qat_data_own(out, xb, 0);
    if (is_u8)
        out->images = xb;
    else
        out->features = xb;
    if ((st = read_all(&x, is_u8 ? H5T_NATIVE_UCHAR : H5T_NATIVE_FLOAT, xb, file, err)) != QAT_OK)
        goto done;
    size_t n = (size_t)y.dims[0], k = y.rank == 2 ? (size_t)y.dims[1] : 1;
    if (regression) {
        if (k > QAT_DATA_MAX_TARGETS || k == 0) {
            st = qat_fail(err, QAT_EINVAL, "%s: dataset %s has %zu targets per example "
                                           "(expected 1..%d)", file, y.path, k,
                          QAT_DATA_MAX_TARGETS);
            goto done;
        }
        float *t = malloc(n * k * sizeof *t);
        if (!t) {
            st = qat_fail(err, QAT_ENOMEM, "%s: out of memory", file);
            goto done;
        }
        qat_data_own(out, t, 0);
        out->targets = t;
        out->target_dim = (int)k;
        st = read_all(&y, H5T_NATIVE_FLOAT, t, file, err);
    } else {
        long long *v = malloc(n * sizeof *v);
        uint8_t *l = malloc(n);
        if (!v || !l) {
            free(v);
            free(l);
            st = qat_fail(err, QAT_ENOMEM, "%s: out of memory", file);
            goto done;
        }
        qat_data_own(out, l, 0);
        out->labels = l;
        out->num_classes = num_classes;
        st = read_all(&y, H5T_NATIVE_LLONG, v, file, err);
        for (size_t i = 0; st == QAT_OK && i < n; i++) {
            if (v[i] < 0 || v[i] >= num_classes)
                st = qat_fail(err, QAT_EINVAL,
                              "%s: dataset %s: label at index %zu has value %lld, expected in "
                              "[0, num_classes %d)",
                              file, y.path, i, v[i], num_classes);
            else
                l[i] = (uint8_t)v[i];
        }
        free(v);
    }
done:
    close_ds(&x);
    close_ds(&y);
    if (loc != f)
        H5Gclose(loc);
    return st;
}

static qat_status read_file(hid_t f, const char *name, const char *group, int group_required,
                            const char *x_name, const char *y_name, int regression,
                            int num_classes, size_t mem, qat_dataset *out, qat_error *err)
{
    memset(out, 0, sizeof *out);
    if (f < 0)
        return qat_fail(err, QAT_EINVAL, "%s: not a readable HDF5 file (truncated or corrupt?)",
                        name);
    qat_status st = read_split(f, name, group, group_required, x_name, y_name, regression,
                               num_classes, mem, out, err);
    H5Fclose(f);
    if (st != QAT_OK)
        qat_dataset_free(out);
    return st;
}

qat_status qat_data_h5_read(const char *path, const char *group, int group_required,
                            const char *x_name, const char *y_name, int regression,
                            int num_classes, size_t mem_available, qat_dataset *out,
                            qat_error *err)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    return read_file(f, path, group, group_required, x_name, y_name, regression, num_classes,
                     mem_available, out, err);
}

qat_status qat_data_h5_read_image(const void *buf, size_t len, const char *name,
                                  const char *group, int group_required, const char *x_name,
                                  const char *y_name, int regression, int num_classes,
                                  qat_dataset *out, qat_error *err)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    hid_t f = -1;
    /* core driver without a backing store: the image is the whole file */
    if (fapl >= 0 && H5Pset_fapl_core(fapl, 1 << 16, 0) >= 0 &&
        H5Pset_file_image(fapl, (void *)buf, len) >= 0)
        f = H5Fopen(name, H5F_ACC_RDONLY, fapl);
    if (fapl >= 0)
        H5Pclose(fapl);
    return read_file(f, name, group, group_required, x_name, y_name, regression, num_classes,
                     SIZE_MAX, out, err);
}
