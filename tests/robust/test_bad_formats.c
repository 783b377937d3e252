/* Catalogue, the dataset formats beside MNIST's IDX: broken .npy, CSV,
 * CIFAR, HDF5 and float IDX files reaching qat-train through [data] (and
 * qat-infer through --data). Each case starts from small generated files
 * that train (the first test proves it) and breaks one thing; the message
 * must name the file and the record or line. */
#include <hdf5.h>
#include <math.h>

#include "data_fixture.h"
#include "robust.h"

#define NTRAIN 60
#define NTEST 20
#define F 4

/* d/{train,test}.csv: F features, 3 classes */
static void write_csv(const char *name, int n, const char *bad_row, int bad_at)
{
    char *text = malloc(64 * (size_t)(n + 2));
    size_t k = (size_t)sprintf(text, "a,b,c,d,target\n");
    for (int i = 0; i < n; i++) {
        if (i == bad_at && bad_row)
            k += (size_t)sprintf(text + k, "%s\n", bad_row);
        else
            k += (size_t)sprintf(text + k, "%d,%g,%d,%g,%d\n", i, i * 0.5, i % 7, -i * 0.25,
                                 i % 3);
    }
    rb_write(name, text, k);
    free(text);
}

static void csv_setup(void)
{
    rb_setup();
    cr_assert_eq(mkdir(rb_path("d"), 0755), 0);
    write_csv("d/train.csv", NTRAIN, NULL, -1);
    write_csv("d/test.csv", NTEST, NULL, -1);
    rb_printf("c.ini",
              "[data]\ndir = %s\ntarget = target\n[model]\nnum_classes = 3\n"
              "input_mean = auto\ninput_std = auto\n[train]\nepochs = 1\nbatch_size = 16\n"
              "threads = 1\n[layer.fc]\ntype = linear\nout_features = 3\n",
              rb_path("d"));
}

#define TRAIN_BAD(...)                                                                             \
    RB_EXPECT_BAD("qat-train", RB_ARGS(rb_path("c.ini"), "--out", rb_path("run"), "--quiet"),     \
                  __VA_ARGS__)
/* the same with one --set */
#define TRAIN_BAD_SET(set, ...)                                                                    \
    RB_EXPECT_BAD("qat-train",                                                                     \
                  RB_ARGS(rb_path("c.ini"), "--set", set, "--out", rb_path("run"), "--quiet"),    \
                  __VA_ARGS__)

/* "data.dir=<temp>/d2" */
static const char *npy_dir(void)
{
    static char buf[600];
    snprintf(buf, sizeof buf, "data.dir=%s", rb_path("d2"));
    return buf;
}

TestSuite(bad_formats, .init = csv_setup, .fini = rb_teardown, .timeout = 120);

Test(bad_formats, base_csv_trains_and_infers)
{
    int code = rb_run("qat-train", RB_ARGS(rb_path("c.ini"), "--out", rb_path("run"), "--quiet"));
    cr_assert_eq(code, 0, "the base CSV dataset must train\n%s", rb_err);
    code = rb_run("qat-infer", RB_ARGS(rb_path("run/model.int8.h5"), "--data", rb_path("d")));
    cr_assert_eq(code, 0, "and its model must run on the test split\n%s", rb_err);
}

Test(bad_formats, csv_ragged_row)
{
    write_csv("d/train.csv", NTRAIN, "1,2,3,0", 7);
    TRAIN_BAD("d/train.csv:9", "ragged row");
}

Test(bad_formats, csv_non_numeric_cell)
{
    write_csv("d/test.csv", NTEST, "1,2,three,4,0", 2);
    TRAIN_BAD("d/test.csv:4", "'three' is not a number");
}

Test(bad_formats, csv_missing_value)
{
    write_csv("d/train.csv", NTRAIN, "1,,3,4,0", 0);
    TRAIN_BAD("d/train.csv:2", "missing value", "column 2");
}

Test(bad_formats, csv_label_outside_the_classes)
{
    write_csv("d/train.csv", NTRAIN, "1,2,3,4,3", 10);
    TRAIN_BAD("d/train.csv:12", "label 3", "[0, 3)");
}

Test(bad_formats, csv_nan_target_of_a_regression)
{
    write_csv("d/train.csv", NTRAIN, "1,2,3,4,nan", 5);
    TRAIN_BAD_SET("model.task=regression", "d/train.csv:7", "finite");
}

Test(bad_formats, csv_empty_split)
{
    rb_write_text("d/test.csv", "a,b,c,d,target\n");
    TRAIN_BAD("d/test.csv", "empty");
}

Test(bad_formats, csv_without_the_target_column)
{
    rb_write_text("d/train.csv", "a,b,c,d,label\n1,2,3,4,0\n");
    TRAIN_BAD("d/train.csv:1", "no column named 'target'", "[data] target");
}

/* ---- .npy --------------------------------------------------------------------- */

static void put_npy(const char *name, const char *descr, const char *shape, const void *v,
                    size_t bytes)
{
    size_t len;
    uint8_t *b = fx_npy(descr, shape, v, bytes, &len);
    rb_write(name, b, len);
    free(b);
}

/* d2/{x,y}_{train,test}.npy, float features and int64 labels (or float
 * targets) */
static void npy_dataset(int regression, float target_nan_at)
{
    cr_assert_eq(mkdir(rb_path("d2"), 0755), 0);
    for (int s = 0; s < 2; s++) {
        int n = s ? NTEST : NTRAIN;
        float x[NTRAIN * F];
        int64_t y[NTRAIN];
        float t[NTRAIN];
        for (int i = 0; i < n * F; i++)
            x[i] = (float)(i % 13) * 0.3f;
        for (int i = 0; i < n; i++) {
            y[i] = i % 3;
            t[i] = (float)i * 0.1f;
        }
        if (target_nan_at >= 0 && !s)
            t[(int)target_nan_at] = NAN;
        char shape[32];
        snprintf(shape, sizeof shape, "(%d, %d)", n, F);
        put_npy(s ? "d2/x_test.npy" : "d2/x_train.npy", "<f4", shape, x, (size_t)n * F * 4);
        snprintf(shape, sizeof shape, "(%d,)", n);
        if (regression)
            put_npy(s ? "d2/y_test.npy" : "d2/y_train.npy", "<f4", shape, t, (size_t)n * 4);
        else
            put_npy(s ? "d2/y_test.npy" : "d2/y_train.npy", "<i8", shape, y, (size_t)n * 8);
    }
}

#define NPY_BAD(...) TRAIN_BAD_SET(npy_dir(), __VA_ARGS__)

Test(bad_formats, npy_base_trains)
{
    npy_dataset(0, -1);
    int code = rb_run("qat-train", RB_ARGS(rb_path("c.ini"), "--set", npy_dir(), "--out",
                                           rb_path("run"), "--quiet"));
    cr_assert_eq(code, 0, "the base .npy dataset must train\n%s", rb_err);
}

Test(bad_formats, npy_wrong_magic)
{
    npy_dataset(0, -1);
    FILE *f = fopen(rb_path("d2/x_train.npy"), "r+b");
    fputc('P', f);
    fclose(f);
    NPY_BAD("d2/x_train.npy", "bad magic");
}

Test(bad_formats, npy_truncated)
{
    npy_dataset(0, -1);
    struct stat sb;
    stat(rb_path("d2/x_test.npy"), &sb);
    cr_assert_eq(truncate(rb_path("d2/x_test.npy"), sb.st_size - 6), 0);
    NPY_BAD("d2/x_test.npy", "truncated data");
}

Test(bad_formats, npy_label_outside_the_classes)
{
    npy_dataset(0, -1);
    int64_t y[NTRAIN];
    for (int i = 0; i < NTRAIN; i++)
        y[i] = i == 17 ? 5 : 0;
    put_npy("d2/y_train.npy", "<i8", "(60,)", y, sizeof y);
    NPY_BAD("d2/y_train.npy", "index 17", "value 5");
}

Test(bad_formats, npy_nan_target)
{
    npy_dataset(1, 23);
    RB_EXPECT_BAD("qat-train",
                  RB_ARGS(rb_path("c.ini"), "--set", npy_dir(), "--set", "model.task=regression",
                          "--set", "layer.fc.out_features=1", "--out", rb_path("run"), "--quiet"),
                  "d2/y_train.npy", "record 23", "finite");
}

/* ---- HDF5 ----------------------------------------------------------------------- */

static void h5_put(const char *file, const char *name, hid_t type, int rank, const hsize_t *dims,
                   const void *v)
{
    hid_t f = H5Fopen(rb_path(file), H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0)
        f = H5Fcreate(rb_path(file), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    if (H5Lexists(f, name, H5P_DEFAULT) > 0)
        H5Ldelete(f, name, H5P_DEFAULT);
    hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), 0);
    H5Dclose(d);
    H5Sclose(sp);
    H5Fclose(f);
}

/* d3/train.h5 and d3/test.h5, uint8 4x4 images and int32 labels */
static void h5_dataset(void)
{
    cr_assert_eq(mkdir(rb_path("d3"), 0755), 0);
    uint8_t x[NTRAIN * 16];
    int32_t y[NTRAIN];
    for (int i = 0; i < NTRAIN * 16; i++)
        x[i] = (uint8_t)(i * 5);
    for (int i = 0; i < NTRAIN; i++)
        y[i] = i % 3;
    for (int s = 0; s < 2; s++) {
        hsize_t xd[3] = {s ? NTEST : NTRAIN, 4, 4}, yd[1] = {xd[0]};
        const char *file = s ? "d3/test.h5" : "d3/train.h5";
        h5_put(file, "x", H5T_NATIVE_UINT8, 3, xd, x);
        h5_put(file, "y", H5T_NATIVE_INT32, 1, yd, y);
    }
    rb_printf("c3.ini",
              "[data]\ndir = %s\n[model]\nnum_classes = 3\n[train]\nepochs = 1\n"
              "batch_size = 16\nthreads = 1\n[layer.flatten]\ntype = flatten\n[layer.fc]\n"
              "type = linear\nout_features = 3\n",
              rb_path("d3"));
}

#define H5_BAD(...)                                                                                \
    RB_EXPECT_BAD("qat-train", RB_ARGS(rb_path("c3.ini"), "--out", rb_path("run"), "--quiet"),    \
                  __VA_ARGS__)

Test(bad_formats, hdf5_base_trains)
{
    h5_dataset();
    int code = rb_run("qat-train", RB_ARGS(rb_path("c3.ini"), "--out", rb_path("run"), "--quiet"));
    cr_assert_eq(code, 0, "the base HDF5 dataset must train\n%s", rb_err);
}

Test(bad_formats, hdf5_inputs_of_the_wrong_rank)
{
    h5_dataset();
    hsize_t d[1] = {NTRAIN};
    h5_put("d3/train.h5", "x", H5T_NATIVE_UINT8, 1, d, (uint8_t[NTRAIN]){0});
    H5_BAD("d3/train.h5", "/x", "rank 1");
}

Test(bad_formats, hdf5_inputs_of_the_wrong_type)
{
    h5_dataset();
    hsize_t d[3] = {NTEST, 4, 4};
    h5_put("d3/test.h5", "x", H5T_NATIVE_INT16, 3, d, (int16_t[NTEST * 16]){0});
    H5_BAD("d3/test.h5", "/x", "int16");
}

Test(bad_formats, hdf5_label_outside_the_classes)
{
    h5_dataset();
    int32_t y[NTEST] = {0};
    y[4] = -1;
    hsize_t d[1] = {NTEST};
    h5_put("d3/test.h5", "y", H5T_NATIVE_INT32, 1, d, y);
    H5_BAD("d3/test.h5", "/y", "index 4", "value -1");
}

Test(bad_formats, hdf5_counts_differ)
{
    h5_dataset();
    hsize_t d[1] = {NTRAIN - 1};
    h5_put("d3/train.h5", "y", H5T_NATIVE_INT32, 1, d, (int32_t[NTRAIN]){0});
    H5_BAD("d3/train.h5", "/x holds 60", "/y holds 59");
}

/* ---- CIFAR ---------------------------------------------------------------------- */

static void cifar_dataset(int n_train, uint8_t bad_label)
{
    cr_assert_eq(mkdir(rb_path("d4"), 0755), 0);
    size_t rec = 3073;
    uint8_t *b = calloc((size_t)n_train, rec);
    for (int i = 0; i < n_train; i++)
        b[(size_t)i * rec] = (uint8_t)(i % 10);
    if (bad_label)
        b[3 * rec] = bad_label;
    rb_write("d4/data_batch_1.bin", b, (size_t)n_train * rec);
    rb_write("d4/test_batch.bin", b, 16 * rec);
    free(b);
    rb_printf("c4.ini",
              "[data]\ndir = %s\n[train]\nepochs = 1\nbatch_size = 8\nthreads = 1\n"
              "[layer.flatten]\ntype = flatten\n[layer.fc]\ntype = linear\nout_features = 10\n",
              rb_path("d4"));
}

#define CIFAR_BAD(...)                                                                             \
    RB_EXPECT_BAD("qat-train", RB_ARGS(rb_path("c4.ini"), "--out", rb_path("run"), "--quiet"),    \
                  __VA_ARGS__)

Test(bad_formats, cifar_base_trains)
{
    cifar_dataset(32, 0);
    int code = rb_run("qat-train", RB_ARGS(rb_path("c4.ini"), "--out", rb_path("run"), "--quiet"));
    cr_assert_eq(code, 0, "the base CIFAR batches must train\n%s", rb_err);
}

Test(bad_formats, cifar_truncated_record)
{
    cifar_dataset(32, 0);
    cr_assert_eq(truncate(rb_path("d4/data_batch_1.bin"), 32 * 3073 - 100), 0);
    CIFAR_BAD("d4/data_batch_1.bin", "truncated record", "record 31");
}

Test(bad_formats, cifar_label_outside_the_classes)
{
    cifar_dataset(32, 11);
    CIFAR_BAD("d4/data_batch_1.bin", "record 3", "label 11");
}

/* ---- what the data and the config must agree on ------------------------------------ */

Test(bad_formats, regression_outputs_not_the_targets)
{
    TRAIN_BAD_SET("model.task=regression", "c.ini", "[layer.fc]", "3 outputs", "1 targets");
}

Test(bad_formats, input_type_not_the_datas)
{
    TRAIN_BAD_SET("model.input_type=uint8", "c.ini", "input_type = uint8", "float32");
}

Test(bad_formats, val_fraction_leaves_nothing)
{
    TRAIN_BAD_SET("data.val_fraction=0.001", "c.ini", "val_fraction", "0 for validation");
}

Test(bad_formats, infer_float_model_on_uint8_images)
{
    cr_assert_eq(rb_run("qat-train", RB_ARGS(rb_path("c.ini"), "--out", rb_path("run"),
                                             "--quiet")),
                 0, "%s", rb_err);
    h5_dataset();
    RB_EXPECT_BAD("qat-infer", RB_ARGS(rb_path("run/model.int8.h5"), "--data", rb_path("d3")),
                  "d3", "16 pixels", "model.int8.h5", "expects 4 values");
    /* the right size, but pixels where the model takes features */
    cr_assert_eq(mkdir(rb_path("d5"), 0755), 0);
    hsize_t xd[2] = {8, 4}, yd[1] = {8};
    h5_put("d5/test.h5", "x", H5T_NATIVE_UINT8, 2, xd, (uint8_t[32]){0});
    h5_put("d5/test.h5", "y", H5T_NATIVE_INT32, 1, yd, (int32_t[8]){0});
    RB_EXPECT_BAD("qat-infer", RB_ARGS(rb_path("run/model.int8.h5"), "--data", rb_path("d5")),
                  "d5", "uint8 inputs", "takes float32 features");
}

#ifdef QAT_HAVE_ONNX
/* ONNX's input stage is one QuantizeLinear of pixels / 255: a float-input
 * model's per-channel offset and step have no place there */
Test(bad_formats, onnx_export_of_a_float_input_model)
{
    cr_assert_eq(rb_run("qat-train", RB_ARGS(rb_path("c.ini"), "--out", rb_path("run"),
                                             "--quiet")),
                 0, "%s", rb_err);
    RB_EXPECT_BAD("qat-export", RB_ARGS(rb_path("run/model.int8.h5"), "-o", rb_path("m.onnx"),
                                        "--format", "onnx"),
                  "float32 features", "--format onnx writes only uint8-pixel models");
}
#endif
