/* The root `format` attribute of a qat HDF5 file: lets a tool accept a
 * checkpoint or a model file and tell them apart before reading either. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/h5/h5_internal.h"

static qat_status read_format(hid_t f, const char *path, char *buf, size_t cap, qat_error *err)
{
    htri_t ex = H5Aexists(f, "format");
    if (ex <= 0)
        return qat_fail(err, QAT_EINVAL, "%s: attribute 'format' at /: %s", path,
                        ex < 0 ? "cannot be looked up (corrupt file?)" : "missing");
    hid_t a = H5Aopen(f, "format", H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1, mt = -1;
    qat_status st = QAT_OK;
    if (t < 0 || H5Tget_class(t) != H5T_STRING) {
        st = qat_fail(err, QAT_EINVAL, "%s: attribute 'format' at /: expected a string", path);
    } else if (H5Tis_variable_str(t) > 0) {
        char *s = NULL;
        mt = H5Tcopy(H5T_C_S1);
        if (mt < 0 || H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Aread(a, mt, &s) < 0 || !s)
            st = qat_fail(err, QAT_EINVAL, "%s: attribute 'format' at /: cannot be read", path);
        else
            snprintf(buf, cap, "%s", s);
        if (s)
            H5free_memory(s);
    } else {
        size_t size = H5Tget_size(t);
        char *tmp = size && size < 4096 ? calloc(1, size + 1) : NULL;
        mt = H5Tcopy(H5T_C_S1);
        if (!tmp || mt < 0 || H5Tset_size(mt, size + 1) < 0 ||
            H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0 || H5Aread(a, mt, tmp) < 0)
            st = qat_fail(err, QAT_EINVAL, "%s: attribute 'format' at /: cannot be read", path);
        else
            snprintf(buf, cap, "%s", tmp);
        free(tmp);
    }
    QAT_H5_CLOSE(mt, t, a);
    return st;
}

qat_status qat_rt_h5_file_format(const char *path, char *buf, size_t cap, qat_error *err)
{
    if (cap)
        buf[0] = '\0';
    qat_status st = qat_h5_check_openable(path, "", err);
    if (st)
        return st;
    qat_h5_quiet q;
    qat_h5_quiet_begin(&q);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        st = qat_fail(err, QAT_EINVAL, "%s: not a readable HDF5 file (truncated or corrupt?)",
                      path);
    } else {
        st = read_format(f, path, buf, cap, err);
        H5Fclose(f);
    }
    qat_h5_quiet_end(&q, st != QAT_OK);
    return st;
}
