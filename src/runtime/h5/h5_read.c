/* Checked reads of a model file's attributes and datasets (docs/FORMAT.md):
 * before a value is read its presence, class, sign, size, rank and extent
 * are checked, and a dataset must be stored in this file. Errors name the
 * file and the object path. Used by model_read.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/h5/h5_read.h"

qat_status h5r_fail(rd *r, const char *where, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qat_fail(r->err, QAT_EINVAL, "%s: %s: %s", r->file, where, msg);
}

static const char *kind_name(kind k)
{
    return k == K_I32 ? "int32" : k == K_F32 ? "float32" : k == K_U8 ? "uint8" : "int8";
}

static int type_is(hid_t t, kind k)
{
    H5T_class_t cls = H5Tget_class(t);
    size_t size = H5Tget_size(t);
    switch (k) {
    case K_I32: return cls == H5T_INTEGER && size == 4 && H5Tget_sign(t) == H5T_SGN_2;
    case K_F32: return cls == H5T_FLOAT && size == 4;
    case K_U8: return cls == H5T_INTEGER && size == 1 && H5Tget_sign(t) == H5T_SGN_NONE;
    case K_I8: return cls == H5T_INTEGER && size == 1 && H5Tget_sign(t) == H5T_SGN_2;
    }
    return 0;
}

static hid_t mem_type(kind k)
{
    return k == K_I32   ? H5T_NATIVE_INT32
           : k == K_F32 ? H5T_NATIVE_FLOAT
           : k == K_U8  ? H5T_NATIVE_UINT8
                        : H5T_NATIVE_INT8;
}

/* Checks a dataspace: count < 0 means scalar, else rank 1 with count
 * elements. Describes what was found into buf on mismatch. */
static int space_is(hid_t sp, long long count, char *buf, size_t cap)
{
    qat_h5_describe_space(sp, buf, cap);
    H5S_class_t cls = H5Sget_simple_extent_type(sp);
    if (cls == H5S_SCALAR)
        return count < 0;
    hsize_t dims[1];
    return count >= 0 && cls == H5S_SIMPLE && H5Sget_simple_extent_ndims(sp) == 1 &&
           H5Sget_simple_extent_dims(sp, dims, NULL) == 1 && dims[0] == (hsize_t)count;
}

static void describe_want(long long count, char *buf, size_t cap)
{
    if (count < 0)
        snprintf(buf, cap, "a scalar");
    else
        snprintf(buf, cap, "shape (%lld)", count);
}

/* The type (kind k) and shape (count < 0: a scalar, else 1-D of count) of an
 * attribute or dataset at `where`, with expected vs found on a mismatch. */
static qat_status check_type_shape(rd *r, const char *where, hid_t t, hid_t sp, kind k,
                                   long long count)
{
    char found[128], want[64];
    if (t < 0 || sp < 0)
        return h5r_fail(r, where, "cannot read its type or shape");
    if (!type_is(t, k)) {
        qat_h5_describe_type(t, found, sizeof found);
        return h5r_fail(r, where, "expected dtype %s, found %s", kind_name(k), found);
    }
    if (!space_is(sp, count, found, sizeof found)) {
        describe_want(count, want, sizeof want);
        return h5r_fail(r, where, "expected %s, found %s", want, found);
    }
    return QAT_OK;
}

/* Reads attribute `name` of obj (at path opath): count < 0 a scalar, else a
 * 1-D array of count values, of kind k, into out. */
qat_status h5r_attr(rd *r, hid_t obj, const char *opath, const char *name, kind k,
                    long long count, void *out)
{
    char where[160];
    snprintf(where, sizeof where, "%s: attribute '%s'", opath, name);
    htri_t ex = H5Aexists(obj, name);
    if (ex < 0)
        return h5r_fail(r, where, "cannot be looked up (corrupt object header?)");
    if (ex == 0)
        return h5r_fail(r, where, "missing");
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0)
        return h5r_fail(r, where, "cannot be opened");
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    qat_status st = check_type_shape(r, where, t, sp, k, count);
    if (st == QAT_OK && H5Aread(a, mem_type(k), out) < 0)
        st = h5r_fail(r, where, "cannot be read");
    QAT_H5_CLOSE(t, sp, a);
    return st;
}

/* A scalar string attribute into buf (cap bytes incl. NUL); FORMAT.md §1. */
qat_status h5r_str_attr(rd *r, hid_t obj, const char *opath, const char *name, char *buf,
                        size_t cap)
{
    char where[160], why[256];
    if (qat_h5_read_str_attr(obj, name, buf, cap, why, sizeof why) == 0)
        return QAT_OK;
    snprintf(where, sizeof where, "%s: attribute '%s'", opath, name);
    return h5r_fail(r, where, "%s", why);
}

/* Whether all count elements of 1-D dataset d are stored in this file. HDF5
 * serves fill values for chunks never written and follows external-storage
 * links to other files: a model that claims arrays without holding them
 * must not run on zeros, make us allocate what a few header bytes claim, or
 * read some other file. Says why not into why. */
static int stored_in_file(hid_t d, long long count, char *why, size_t cap)
{
    hid_t dcpl = H5Dget_create_plist(d);
    int ok = 0;
    snprintf(why, cap, "unreadable storage layout");
    if (dcpl < 0)
        return 0;
    H5D_layout_t layout = H5Pget_layout(dcpl);
    hsize_t chunk[1] = {0}, have = 0;
    if (H5Pget_external_count(dcpl) != 0) {
        snprintf(why, cap, "its data is stored outside the file (external storage)");
    } else if (layout == H5D_COMPACT) {
        ok = 1;
    } else if (layout == H5D_CONTIGUOUS) {
        ok = H5Dget_storage_size(d) > 0; /* allocated all at once, when written */
        if (!ok)
            snprintf(why, cap, "its data was never written");
    } else if (layout == H5D_CHUNKED && H5Pget_chunk(dcpl, 1, chunk) == 1 && chunk[0] > 0) {
        hsize_t want = ((hsize_t)count + chunk[0] - 1) / chunk[0];
        hid_t sp = H5Dget_space(d);
        ok = sp >= 0 && H5Dget_num_chunks(d, sp, &have) >= 0 && have == want;
        if (sp >= 0)
            H5Sclose(sp);
        if (!ok)
            snprintf(why, cap, "its data was never written (%llu of %llu chunks stored)",
                     (unsigned long long)have, (unsigned long long)want);
        /* Every chunk is checked before H5Dread meets it (both found by
         * fuzz_model):
         *  - HDF5 1.10's Fletcher-32 filter reads far out of bounds for a
         *    chunk stored in fewer bytes than its 4-byte checksum;
         *  - HDF5 allocates a chunk's stored size, and the filters a whole
         *    chunk, before reading: a size patched to gigabytes had it
         *    allocate them. A chunk must lie within the file, and hold no
         *    more elements than the array (HDF5 itself never writes one
         *    larger). */
        unsigned flags = 0, fv[1];
        size_t nfv = 0;
        int fletcher = H5Pget_filter_by_id2(dcpl, H5Z_FILTER_FLETCHER32, &flags, &nfv, fv, 0,
                                            NULL, NULL) >= 0;
        hsize_t fsize = 0;
        hid_t f = ok ? H5Iget_file_id(d) : -1;
        if (ok && (f < 0 || H5Fget_filesize(f, &fsize) < 0)) {
            ok = 0;
            snprintf(why, cap, "cannot tell the file's size");
        }
        if (f >= 0)
            H5Fclose(f);
        if (ok && chunk[0] > (hsize_t)count) {
            ok = 0;
            snprintf(why, cap, "chunks of %llu elements for an array of %lld (corrupt)",
                     (unsigned long long)chunk[0], count);
        }
        if (ok && want > ((hsize_t)1 << 20)) {
            ok = 0;
            snprintf(why, cap, "stored in %llu chunks (at most 2^20 are read)",
                     (unsigned long long)want);
        }
        for (hsize_t c = 0; ok && c < want; c++) {
            hsize_t off[1] = {c * chunk[0]}, size = 0;
            unsigned mask = 0;
            haddr_t addr = 0;
            if (H5Dget_chunk_info_by_coord(d, off, &mask, &addr, &size) < 0 ||
                (fletcher && size < 4)) {
                ok = 0;
                snprintf(why, cap,
                         "chunk %llu is stored in %llu bytes, less than its 4-byte "
                         "checksum (corrupt)",
                         (unsigned long long)c, (unsigned long long)size);
            } else if (addr == HADDR_UNDEF || addr > fsize || size > fsize - addr) {
                ok = 0;
                snprintf(why, cap,
                         "chunk %llu claims %llu bytes at offset %llu, beyond the end of the "
                         "file (%llu bytes; truncated or corrupt)",
                         (unsigned long long)c, (unsigned long long)size,
                         (unsigned long long)addr, (unsigned long long)fsize);
            }
        }
    }
    H5Pclose(dcpl);
    return ok;
}

/* Opens dataset `name` of group g (at gpath) after checking it is a 1-D
 * array of `count` values of kind k; on success the caller closes *out. */
qat_status h5r_open_dataset(rd *r, hid_t g, const char *gpath, const char *name, kind k,
                            long long count, hid_t *out)
{
    char where[160];
    snprintf(where, sizeof where, "dataset %s/%s", gpath, name);
    *out = -1;
    htri_t ex = H5Lexists(g, name, H5P_DEFAULT);
    if (ex < 0)
        return h5r_fail(r, where, "cannot be looked up (corrupt group?)");
    if (ex == 0)
        return h5r_fail(r, where, "missing");
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0)
        return h5r_fail(r, where, "is not a dataset or cannot be opened");
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
    char found[128];
    qat_status st = check_type_shape(r, where, t, sp, k, count);
    if (st == QAT_OK && !stored_in_file(d, count, found, sizeof found))
        st = h5r_fail(r, where, "%s", found);
    QAT_H5_CLOSE(t, sp);
    if (st)
        H5Dclose(d);
    else
        *out = d;
    return st;
}

qat_status h5r_dataset(rd *r, hid_t g, const char *gpath, const char *name, kind k,
                       long long count, void *buf)
{
    hid_t d;
    qat_status st = h5r_open_dataset(r, g, gpath, name, k, count, &d);
    if (st)
        return st;
    if (H5Dread(d, mem_type(k), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        char h5msg[256], where[160];
        qat_h5_last_error(h5msg, sizeof h5msg);
        snprintf(where, sizeof where, "dataset %s/%s", gpath, name);
        st = h5r_fail(r, where, "cannot read data (corrupt?)%s%s", h5msg[0] ? ": " : "", h5msg);
    }
    H5Dclose(d);
    return st;
}

qat_status h5r_check_range(rd *r, const char *opath, const char *name, const int32_t *v, int n,
                           long long lo, long long hi)
{
    for (int i = 0; i < n; i++)
        if (v[i] < lo || v[i] > hi) {
            char where[160];
            snprintf(where, sizeof where, "%s: attribute '%s'", opath, name);
            return h5r_fail(r, where, "expected %s in [%lld, %lld], found %d",
                         n > 1 ? "each value" : "a value", lo, hi, v[i]);
        }
    return QAT_OK;
}
