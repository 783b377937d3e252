/* The root `format` attribute of a qat HDF5 file: lets a tool accept a
 * checkpoint or a model file and tell them apart before reading either. */
#include <stdio.h>
#include <string.h>

#include "runtime/h5/h5_internal.h"

static qat_status read_format(hid_t f, const char *path, char *buf, size_t cap, qat_error *err)
{
    char why[256];
    if (qat_h5_read_str_attr(f, "format", buf, cap, why, sizeof why) != 0)
        return qat_fail(err, QAT_EINVAL, "%s: attribute 'format' at /: %s", path, why);
    return QAT_OK;
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
