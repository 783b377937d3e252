/* Writing a model file (docs/FORMAT.md). The description is validated
 * first; the file appears atomically (qat_atomic, include/qat/fsutil.h):
 * HDF5 writes <path>.tmp.<pid>, which is fsynced and renamed over path, so a
 * reader sees either the old file or the complete new one. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/fsutil.h"
#include "runtime/h5/h5_internal.h"

typedef struct wr {
    const char *path; /* the final name, for messages */
    qat_error *err;
} wr;

__attribute__((format(printf, 2, 3))) static qat_status wfail(wr *w, const char *fmt, ...)
{
    char msg[768], h5msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    qat_h5_last_error(h5msg, sizeof h5msg);
    return qat_fail(w->err, QAT_EIO, "%s: cannot write %s%s%s", w->path, msg,
                    h5msg[0] ? ": " : "", h5msg);
}

static qat_status put_attr(wr *w, hid_t obj, const char *opath, const char *name, hid_t ftype,
                           hid_t mtype, int count, const void *v)
{
    hsize_t dims[1] = {(hsize_t)(count > 0 ? count : 1)};
    hid_t sp = count > 0 ? H5Screate_simple(1, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t a = sp < 0 ? -1 : H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, mtype, v);
    QAT_H5_CLOSE(a, sp);
    return rc < 0 ? wfail(w, "attribute '%s' of %s", name, opath) : QAT_OK;
}

static qat_status put_i32(wr *w, hid_t obj, const char *opath, const char *name, int count,
                          const int32_t *v)
{
    return put_attr(w, obj, opath, name, H5T_STD_I32LE, H5T_NATIVE_INT32, count, v);
}

static qat_status put_f32(wr *w, hid_t obj, const char *opath, const char *name, float v)
{
    return put_attr(w, obj, opath, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 0, &v);
}

/* Fixed-length, null-padded ASCII (an empty string is one NUL byte). */
static qat_status put_str(wr *w, hid_t obj, const char *opath, const char *name, const char *s)
{
    size_t len = strlen(s);
    char one[1] = {0};
    hid_t t = H5Tcopy(H5T_C_S1);
    qat_status st;
    if (t < 0 || H5Tset_size(t, len ? len : 1) < 0 || H5Tset_strpad(t, H5T_STR_NULLPAD) < 0)
        st = wfail(w, "attribute '%s' of %s", name, opath);
    else
        st = put_attr(w, obj, opath, name, t, t, 0, len ? s : one);
    if (t >= 0)
        H5Tclose(t);
    return st;
}

/* A 1-D dataset, chunked with a Fletcher-32 checksum (so corruption is
 * detected on read) and, for weights, deflate. */
static qat_status put_dataset(wr *w, hid_t g, const char *gpath, const char *name, hid_t ftype,
                              hid_t mtype, size_t count, const void *v, int deflate)
{
    hsize_t dims[1] = {(hsize_t)count};
    hsize_t chunk[1] = {(hsize_t)(count < 65536 ? count : 65536)};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    herr_t rc = (sp < 0 || dcpl < 0 || H5Pset_chunk(dcpl, 1, chunk) < 0 ||
                 H5Pset_fletcher32(dcpl) < 0 || (deflate && H5Pset_deflate(dcpl, 6) < 0))
                    ? -1
                    : 0;
    hid_t d = rc < 0 ? -1 : H5Dcreate2(g, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    rc = d < 0 ? -1 : H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    QAT_H5_CLOSE(d, dcpl, sp);
    return rc < 0 ? wfail(w, "dataset %s/%s", gpath, name) : QAT_OK;
}

/* The plain packed stream, or (version 2, FORMAT.md §10) the palette. */
static qat_status write_weights(wr *w, hid_t g, const char *gpath, const qat_rt_layer_desc *l)
{
    if (!l->palette_size)
        return put_dataset(w, g, gpath, "weights", H5T_STD_U8LE, H5T_NATIVE_UINT8,
                           l->weights_bytes, l->weights, 1);
    qat_status st;
    int32_t k = l->palette_size, groups = l->palette_groups;
    if ((st = put_i32(w, g, gpath, "palette_size", 0, &k)) ||
        (st = put_i32(w, g, gpath, "palette_groups", 0, &groups)) ||
        (st = put_dataset(w, g, gpath, "codebook", H5T_STD_I8LE, H5T_NATIVE_INT8,
                          (size_t)groups * (size_t)k, l->codebook, 0)))
        return st;
    return put_dataset(w, g, gpath, "palette_indices", H5T_STD_U8LE, H5T_NATIVE_UINT8,
                       l->indices_bytes, l->indices, 1);
}

static qat_status write_layer(wr *w, hid_t g, const char *gpath, const qat_rt_layer_desc *l,
                              int version)
{
    qat_status st;
    int32_t in[3] = {l->in_h, l->in_w, l->in_c}, out[3] = {l->out_h, l->out_w, l->out_c};
    if ((st = put_str(w, g, gpath, "op", qat_rt_op_name(l->op))) ||
        (st = put_str(w, g, gpath, "name", l->name)) ||
        (st = put_i32(w, g, gpath, "input_shape", 3, in)) ||
        (st = put_i32(w, g, gpath, "output_shape", 3, out)) ||
        (st = put_f32(w, g, gpath, "input_scale", l->input_scale)) ||
        (st = put_i32(w, g, gpath, "input_zero_point", 0, &l->input_zero_point)) ||
        (st = put_f32(w, g, gpath, "output_scale", l->output_scale)) ||
        (st = put_i32(w, g, gpath, "output_zero_point", 0, &l->output_zero_point)))
        return st;
    if (l->op == QAT_RT_CONV2D || l->op == QAT_RT_MAXPOOL2D || l->op == QAT_RT_AVGPOOL2D) {
        int32_t k[2] = {l->kernel_h, l->kernel_w}, s[2] = {l->stride_h, l->stride_w},
                p[2] = {l->pad_h, l->pad_w};
        if ((st = put_i32(w, g, gpath, "kernel", 2, k)) ||
            (st = put_i32(w, g, gpath, "stride", 2, s)) ||
            (st = put_i32(w, g, gpath, "padding", 2, p)))
            return st;
    }
    /* version 2's optional attributes (FORMAT.md §3.1): written only where
     * they say more than a chain of plain layers */
    int32_t groups = qat_rt_desc_groups(l);
    if (version >= 2 && l->num_inputs > 0 &&
        (st = put_i32(w, g, gpath, "inputs", l->num_inputs, l->inputs)))
        return st;
    if (groups > 1 && (st = put_i32(w, g, gpath, "groups", 0, &groups)))
        return st;
    if (qat_rt_op_is_merge(l->op)) {
        size_t n = (size_t)qat_rt_desc_merge_mults(l);
        if ((st = put_i32(w, g, gpath, "act_min", 0, &l->act_min)) ||
            (st = put_i32(w, g, gpath, "act_max", 0, &l->act_max)) ||
            (st = put_dataset(w, g, gpath, "multiplier", H5T_STD_I32LE, H5T_NATIVE_INT32, n,
                              l->multiplier, 0)))
            return st;
        return put_dataset(w, g, gpath, "shift", H5T_STD_I32LE, H5T_NATIVE_INT32, n, l->shift, 0);
    }
    if (l->op != QAT_RT_CONV2D && l->op != QAT_RT_LINEAR)
        return QAT_OK;
    size_t oc = (size_t)l->out_c;
    if (l->is_float) { /* version 3 (FORMAT.md §11) */
        static const char *const acts[] = {"none", "relu", "relu6"};
        size_t n = oc * (size_t)l->kernel_h * (size_t)l->kernel_w * (size_t)l->in_c;
        if ((st = put_str(w, g, gpath, "arithmetic", "float32")) ||
            (st = put_str(w, g, gpath, "activation", acts[l->float_act])) ||
            (st = put_i32(w, g, gpath, "act_min", 0, &l->act_min)) ||
            (st = put_i32(w, g, gpath, "act_max", 0, &l->act_max)) ||
            (st = put_dataset(w, g, gpath, "float_weights", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, n,
                              l->float_weights, 1)))
            return st;
        return put_dataset(w, g, gpath, "float_bias", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, oc,
                           l->float_bias, 0);
    }
    int32_t *zeros = NULL;
    const int32_t *wzp = l->weight_zero_point;
    if (!wzp) {
        if (!(zeros = calloc(oc, sizeof *zeros)))
            return qat_fail(w->err, QAT_ENOMEM, "%s: out of memory", w->path);
        wzp = zeros;
    }
    int32_t bits = l->weight_bits;
    if (!(st = put_i32(w, g, gpath, "weight_bits", 0, &bits)) &&
        !(st = put_i32(w, g, gpath, "act_min", 0, &l->act_min)) &&
        !(st = put_i32(w, g, gpath, "act_max", 0, &l->act_max)) &&
        !(st = write_weights(w, g, gpath, l)) &&
        !(st = put_dataset(w, g, gpath, "weight_zero_point", H5T_STD_I32LE, H5T_NATIVE_INT32, oc,
                           wzp, 0)) &&
        !(st = put_dataset(w, g, gpath, "bias", H5T_STD_I32LE, H5T_NATIVE_INT32, oc, l->bias,
                           0)) &&
        !(st = put_dataset(w, g, gpath, "multiplier", H5T_STD_I32LE, H5T_NATIVE_INT32, oc,
                           l->multiplier, 0)) &&
        !(st = put_dataset(w, g, gpath, "shift", H5T_STD_I32LE, H5T_NATIVE_INT32, oc, l->shift,
                           0)))
        st = put_dataset(w, g, gpath, "weight_scale", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, oc,
                         l->weight_scale, 0);
    free(zeros);
    return st;
}

static qat_status write_all(wr *w, hid_t f, const qat_rt_model_desc *d)
{
    qat_status st;
    int32_t in[3] = {d->in_h, d->in_w, d->in_c}, version = d->version;
    if ((st = put_str(w, f, "/", "format", QAT_H5_FORMAT_NAME)) ||
        (st = put_i32(w, f, "/", "version", 0, &version)) ||
        (st = put_i32(w, f, "/", "input_shape", 3, in)) ||
        (st = put_f32(w, f, "/", "input_scale", d->input_scale)) ||
        (st = put_i32(w, f, "/", "input_zero_point", 0, &d->input_zero_point)) ||
        (st = put_i32(w, f, "/", "num_classes", 0, &d->num_classes)) ||
        (st = put_i32(w, f, "/", "num_layers", 0, &d->num_layers)))
        return st;
    /* FORMAT.md §9: written only when not the defaults, so a uint8
     * classifier's file is byte for byte what it was */
    if (d->task == QAT_RT_TASK_REGRESSION && (st = put_str(w, f, "/", "task", "regression")))
        return st;
    if (d->input_type == QAT_RT_INPUT_FLOAT32 &&
        ((st = put_str(w, f, "/", "input_type", "float32")) ||
         (st = put_dataset(w, f, "", "input_offset", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT,
                           (size_t)d->in_c, d->input_offset, 0)) ||
         (st = put_dataset(w, f, "", "input_step", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT,
                           (size_t)d->in_c, d->input_step, 0))))
        return st;
    hid_t lg = H5Gcreate2(f, QAT_H5_LAYERS_GROUP, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (lg < 0)
        return wfail(w, "group /%s", QAT_H5_LAYERS_GROUP);
    for (int i = 0; i < d->num_layers && !st; i++) {
        char name[16], path[64];
        snprintf(name, sizeof name, QAT_H5_LAYER_FMT, i);
        snprintf(path, sizeof path, "/%s/%s", QAT_H5_LAYERS_GROUP, name);
        hid_t g = H5Gcreate2(lg, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0) {
            st = wfail(w, "group %s", path);
            break;
        }
        st = write_layer(w, g, path, &d->layers[i], d->version);
        H5Gclose(g);
    }
    H5Gclose(lg);
    return st;
}

qat_status qat_rt_h5_write(const char *path, const qat_rt_model_desc *d, qat_error *err)
{
    qat_status st = qat_rt_model_validate(d, err);
    if (st)
        return qat_error_prefix(err, "%s: refusing to write an invalid model", path);
    if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) <= 0 || H5Zfilter_avail(H5Z_FILTER_FLETCHER32) <= 0)
        return qat_fail(err, QAT_EUNSUPPORTED, "%s: this HDF5 library lacks deflate/fletcher32",
                        path);
    qat_atomic out;
    if ((st = qat_atomic_begin(&out, path, err)) != QAT_OK)
        return st;
    const char *tmp = out.tmp;
    wr w = {path, err};
    qat_h5_quiet q;
    qat_h5_quiet_begin(&q);
    /* 1.8-format objects: metadata carries checksums, and HDF5 >= 1.8 reads it */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    hid_t f = -1;
    if (fapl < 0 || H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) < 0)
        st = wfail(&w, "(file access properties)");
    else if ((f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl)) < 0)
        st = wfail(&w, "temporary file %s", tmp);
    if (!st)
        st = write_all(&w, f, d);
    if (!st && H5Fflush(f, H5F_SCOPE_GLOBAL) < 0)
        st = wfail(&w, "(flush of %s)", tmp);
    if (f >= 0 && H5Fclose(f) < 0 && !st)
        st = wfail(&w, "(close of %s)", tmp);
    if (fapl >= 0)
        H5Pclose(fapl);
    qat_h5_quiet_end(&q, st != QAT_OK);
    if (st) {
        qat_atomic_abort(&out);
        return st;
    }
    return qat_atomic_commit(&out, err);
}
