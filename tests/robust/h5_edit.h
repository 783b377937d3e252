/* Editing a model file in place with the HDF5 API, for the catalogue's
 * model-file cases (test_bad_model.c, test_bad_palette.c). */
#ifndef QAT_TEST_ROBUST_H5_EDIT_H
#define QAT_TEST_ROBUST_H5_EDIT_H

#include <hdf5.h>

#include "robust.h"

static inline hid_t open_rw(const char *name)
{
    hid_t f = H5Fopen(rb_path(name), H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert_geq(f, 0, "cannot open %s", name);
    return f;
}

/* Replaces attribute attr of object obj with a new one of file type ftype
 * (count 0: scalar) holding v in memory type mtype. */
static inline void set_attr(const char *file, const char *obj, const char *attr, hid_t ftype,
                            hid_t mtype, int count, const void *v)
{
    hid_t f = open_rw(file);
    hid_t o = H5Oopen(f, obj, H5P_DEFAULT);
    cr_assert_geq(o, 0, "no object %s", obj);
    if (H5Aexists(o, attr) > 0)
        cr_assert_geq(H5Adelete(o, attr), 0);
    hsize_t dims[1] = {(hsize_t)(count > 0 ? count : 1)};
    hid_t sp = count > 0 ? H5Screate_simple(1, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(o, attr, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(a, 0);
    cr_assert_geq(H5Awrite(a, mtype, v), 0);
    H5Aclose(a);
    H5Sclose(sp);
    H5Oclose(o);
    H5Fclose(f);
}

/* Replaces dataset path with a 1-D one of count elements. */
static inline void set_dataset(const char *file, const char *path, hid_t ftype, hid_t mtype,
                               size_t count, const void *v)
{
    hid_t f = open_rw(file);
    if (H5Lexists(f, path, H5P_DEFAULT) > 0)
        cr_assert_geq(H5Ldelete(f, path, H5P_DEFAULT), 0);
    hsize_t dims[1] = {count};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t d = H5Dcreate2(f, path, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(d, 0, "cannot create %s", path);
    cr_assert_geq(H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), 0);
    H5Dclose(d);
    H5Sclose(sp);
    H5Fclose(f);
}

static inline void set_i32(const char *obj, const char *attr, int count, const int32_t *v)
{
    set_attr("m.h5", obj, attr, H5T_STD_I32LE, H5T_NATIVE_INT32, count, v);
}

/* qat-infer on m.h5 with the catalogue's images must fail naming m.h5 */
#define INFER_BAD(...)                                                                             \
    RB_EXPECT_BAD("qat-infer",                                                                     \
                  RB_ARGS(rb_path("m.h5"), "--images", rb_path("img"), "--labels", rb_path("lab")), \
                  "m.h5", __VA_ARGS__)

#endif
