/* The dataset formats beside MNIST's IDX, each on small generated buffers and
 * files: IDX of any rank and float32, .npy, CIFAR batches, CSV and HDF5
 * (qat_data_h5_read); qat_data_load's file finding; subsets and the
 * validation split; channel statistics; augmentation's determinism. */
#include <hdf5.h>
#include <math.h>
#include <sys/stat.h>

#include "data/data_internal.h"
#include "data_fixture.h"
#include "qat/data_h5.h"

/* ---- .npy ------------------------------------------------------------------------ */

static void write_file(const char *path, const void *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(b, 1, len, f), len);
    fclose(f);
}

Test(npy, parses_dtypes_and_shapes)
{
    float v[6] = {1.5f, -2, 3, 4, 5, 6.25f};
    size_t len;
    uint8_t *b = fx_npy("<f4", "(2, 3)", v, sizeof v, &len);
    qat_npy_array a;
    qat_error e;
    cr_assert_eq(qat_npy_parse(b, len, "a.npy", &a, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(a.kind, 'f');
    cr_assert_eq(a.ndims, 2);
    cr_assert_eq(a.dims[1], 3u);
    cr_assert_eq(qat_npy_get(&a, 5), 6.25);
    free(b);
    int64_t l[3] = {-1, 7, 1LL << 40};
    b = fx_npy("<i8", "(3,)", l, sizeof l, &len);
    cr_assert_eq(qat_npy_parse(b, len, "l.npy", &a, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(qat_npy_get(&a, 0), -1.0);
    cr_assert_eq(qat_npy_get(&a, 2), (double)(1LL << 40));
    free(b);
}

Test(npy, rejects_what_it_cannot_read_naming_the_file)
{
    float v[4] = {0};
    size_t len;
    qat_npy_array a;
    qat_error e;
    uint8_t *b = fx_npy("<f4", "(2, 2)", v, sizeof v, &len);
    b[0] = 'X';
    EXPECT_ERR(qat_npy_parse(b, len, "m.npy", &a, &e), e, QAT_EINVAL, "m.npy", "bad magic");
    b[0] = 0x93;
    EXPECT_ERR(qat_npy_parse(b, len - 3, "t.npy", &a, &e), e, QAT_EINVAL, "t.npy", "truncated");
    free(b);
    b = fx_npy(">f4", "(2, 2)", v, sizeof v, &len);
    EXPECT_ERR(qat_npy_parse(b, len, "be.npy", &a, &e), e, QAT_EINVAL, "be.npy", "big-endian");
    free(b);
    b = fx_npy("<c8", "(2,)", v, 16, &len);
    EXPECT_ERR(qat_npy_parse(b, len, "c.npy", &a, &e), e, QAT_EINVAL, "c.npy", "dtype");
    free(b);
    b = fx_npy("<f4", "(0, 2)", v, 0, &len);
    EXPECT_ERR(qat_npy_parse(b, len, "z.npy", &a, &e), e, QAT_EINVAL, "z.npy", "empty");
    free(b);
}

/* ---- CSV ------------------------------------------------------------------------- */

#define CSV(text) text, strlen(text)

Test(csv, features_and_labels_in_file_order)
{
    qat_dataset d;
    qat_error e;
    const char *t = "a, \"b\" ,target\r\n1,2.5,0\n\n-3,4e1,2\n";
    cr_assert_eq(qat_csv_parse(CSV(t), "t.csv", "target", 0, 3, &d, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(d.n, 2u);
    cr_assert_eq(d.c, 2);
    cr_assert_eq(d.features[1], 2.5f);
    cr_assert_eq(d.features[3], 40.0f);
    cr_assert_eq(d.labels[1], 2);
    qat_dataset_free(&d);
    /* a target column in the middle; regression keeps floats */
    cr_assert_eq(qat_csv_parse(CSV("y,x\n0.5,1\n"), "r.csv", "y", 1, 0, &d, &e), QAT_OK);
    cr_assert_eq(d.targets[0], 0.5f);
    cr_assert_eq(d.features[0], 1.0f);
    qat_dataset_free(&d);
}

Test(csv, bad_rows_name_the_line)
{
    qat_dataset d;
    qat_error e;
    EXPECT_ERR(qat_csv_parse(CSV("a,target\n1,0\n2\n"), "r.csv", "target", 0, 2, &d, &e), e,
               QAT_EINVAL, "r.csv:3", "ragged");
    EXPECT_ERR(qat_csv_parse(CSV("a,target\n1,0,5\n"), "r.csv", "target", 0, 2, &d, &e), e,
               QAT_EINVAL, "r.csv:2", "ragged");
    EXPECT_ERR(qat_csv_parse(CSV("a,target\n1,0\nabc,1\n"), "n.csv", "target", 0, 2, &d, &e), e,
               QAT_EINVAL, "n.csv:3", "'abc' is not a number");
    EXPECT_ERR(qat_csv_parse(CSV("a,target\n,0\n"), "m.csv", "target", 0, 2, &d, &e), e,
               QAT_EINVAL, "m.csv:2", "missing value");
    EXPECT_ERR(qat_csv_parse(CSV("a,target\n1,nan\n"), "f.csv", "target", 1, 0, &d, &e), e,
               QAT_EINVAL, "f.csv:2", "finite");
    EXPECT_ERR(qat_csv_parse(CSV("a,target\n1,3\n"), "l.csv", "target", 0, 3, &d, &e), e,
               QAT_EINVAL, "l.csv:2", "label 3");
    EXPECT_ERR(qat_csv_parse(CSV("a,b\n1,3\n"), "h.csv", "target", 0, 3, &d, &e), e,
               QAT_EINVAL, "h.csv:1", "no column named 'target'");
    EXPECT_ERR(qat_csv_parse(CSV("a,target\n"), "e.csv", "target", 0, 3, &d, &e), e, QAT_EINVAL,
               "e.csv", "empty");
}

/* ---- CIFAR ----------------------------------------------------------------------- */

Test(cifar, planes_become_hwc_and_labels_are_checked)
{
    size_t rec = 1 + 3072;
    uint8_t *b = calloc(2, rec);
    b[0] = 3;
    b[1 + 5] = 10;            /* red of pixel 5 */
    b[1 + 1024 + 5] = 20;     /* green */
    b[1 + 2048 + 5] = 30;     /* blue */
    b[rec] = 9;
    qat_dataset d = {0};
    qat_error e;
    cr_assert_eq(qat_cifar_parse(b, 2 * rec, "b.bin", 1, 10, &d, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(d.n, 2u);
    cr_assert_eq(d.h, 32);
    cr_assert_eq(d.c, 3);
    cr_assert_eq(d.labels[0], 3);
    cr_assert_eq(d.images[15], 10);
    cr_assert_eq(d.images[16], 20);
    cr_assert_eq(d.images[17], 30);
    free(d.images);
    free(d.labels);
    memset(&d, 0, sizeof d);
    EXPECT_ERR(qat_cifar_parse(b, 2 * rec - 1, "t.bin", 1, 10, &d, &e), e, QAT_EINVAL, "t.bin",
               "truncated record", "record 1");
    b[rec] = 12;
    EXPECT_ERR(qat_cifar_parse(b, 2 * rec, "l.bin", 1, 10, &d, &e), e, QAT_EINVAL, "l.bin",
               "record 1", "label 12");
    free(d.images);
    free(d.labels);
    free(b);
}

/* ---- IDX of any rank ---------------------------------------------------------------- */

Test(idx_any, float_and_four_dims)
{
    uint8_t b[4 + 16 + 4 * 4];
    fx_be32(b, 0x00000d04u);
    uint32_t dims[4] = {1, 2, 1, 2};
    for (int i = 0; i < 4; i++)
        fx_be32(b + 4 + 4 * i, dims[i]);
    float v[4] = {1.0f, -2.5f, 3e-3f, 1e6f};
    for (int i = 0; i < 4; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        fx_be32(b + 20 + 4 * i, u);
    }
    qat_idx_array a;
    qat_error e;
    cr_assert_eq(qat_idx_parse(b, sizeof b, "f.idx", "inputs", 2, 4, 1, 0, SIZE_MAX, &a, &e), QAT_OK, "%s",
                 e.msg);
    cr_assert_eq(a.type, QAT_DATA_F32);
    cr_assert_eq(a.ndims, 4);
    cr_assert_eq(((float *)a.data)[1], -2.5f);
    cr_assert_eq(((float *)a.data)[3], 1e6f);
    free(a.data);
    EXPECT_ERR(qat_idx_parse(b, sizeof b, "f.idx", "inputs", 2, 4, 0, 0, SIZE_MAX, &a, &e), e, QAT_EINVAL,
               "f.idx", "bad magic");
    EXPECT_ERR(qat_idx_parse(b, sizeof b, "f.idx", "labels", 1, 2, 1, 0, SIZE_MAX, &a, &e), e, QAT_EINVAL,
               "f.idx", "rank");
}

/* ---- qat_data_load: files, HDF5 and the checks ---------------------------------------- */

static void h5_write(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims,
                     const void *v)
{
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(loc, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(d, 0);
    cr_assert_geq(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), 0);
    H5Dclose(d);
    H5Sclose(sp);
}

static qat_data_source source(const char *dir, int regression)
{
    return (qat_data_source){.dir = dir, .x_name = "x", .y_name = "y", .target = "target",
                             .regression = regression, .num_classes = 4,
                             .mem_available = SIZE_MAX, .h5 = qat_data_h5_read};
}

Test(load, hdf5_groups_and_the_checks)
{
    char dir[64], p[160];
    fx_mkdtemp(dir);
    snprintf(p, sizeof p, "%s/both.h5", dir);
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    float x[6] = {1, 2, 3, 4, 5, 6};
    int64_t y[3] = {0, 3, 1};
    hsize_t xd[2] = {3, 2}, yd[1] = {3};
    for (int g = 0; g < 2; g++) {
        hid_t grp = H5Gcreate2(f, g ? "test" : "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        h5_write(grp, "x", H5T_NATIVE_FLOAT, 2, xd, x);
        h5_write(grp, "y", H5T_NATIVE_INT64, 1, yd, y);
        H5Gclose(grp);
    }
    h5_write(f, "bad", H5T_NATIVE_INT16, 2, xd, (int16_t[6]){0});
    h5_write(f, "y", H5T_NATIVE_INT64, 1, yd, y);
    h5_write(f, "flat", H5T_NATIVE_FLOAT, 1, yd, x);
    H5Fclose(f);
    qat_data_source s = source(dir, 0);
    s.train = s.test = p;
    qat_dataset d;
    qat_error e;
    cr_assert_eq(qat_data_load(&s, "test", 0, &d, NULL, 0, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(d.n, 3u);
    cr_assert_eq(d.c, 2);
    cr_assert_eq(d.features[5], 6.0f);
    cr_assert_eq(d.labels[1], 3);
    qat_dataset_free(&d);
    s.num_classes = 3;
    EXPECT_ERR(qat_data_load(&s, "train", 0, &d, NULL, 0, &e), e, QAT_EINVAL, "both.h5",
               "/train/y", "index 1", "value 3");
    s.num_classes = 4;
    s.x_name = "bad";
    EXPECT_ERR(qat_data_load(&s, "train", 0, &d, NULL, 0, &e), e, QAT_EINVAL, "both.h5",
               "/train/bad", "no dataset");
    cr_assert_eq(qat_data_h5_read(p, "", 0, "bad", "y", 0, 4, SIZE_MAX, &d, &e), QAT_EINVAL);
    cr_assert_not_null(strstr(e.msg, "int16"), "%s", e.msg);
    cr_assert_eq(qat_data_h5_read(p, "", 0, "flat", "y", 0, 4, SIZE_MAX, &d, &e), QAT_EINVAL);
    cr_assert_not_null(strstr(e.msg, "rank 1"), "%s", e.msg);
    cr_assert_eq(qat_data_h5_read(p, "train", 1, "x", "y", 0, 4, 8, &d, &e), QAT_EINVAL);
    cr_assert_not_null(strstr(e.msg, "GiB"), "a dataset over the memory: %s", e.msg);
    fx_rmtree(dir);
}

Test(load, npy_pair_is_mapped_and_found_by_name)
{
    char dir[64], p[200];
    fx_mkdtemp(dir);
    uint8_t px[2 * 3 * 3] = {0};
    px[17] = 200;
    float t[2] = {0.5f, NAN};
    size_t len;
    uint8_t *b = fx_npy("|u1", "(2, 3, 3)", px, sizeof px, &len);
    snprintf(p, sizeof p, "%s/x_train.npy", dir);
    write_file(p, b, len);
    free(b);
    b = fx_npy("<f4", "(2,)", t, sizeof t, &len);
    snprintf(p, sizeof p, "%s/y_train.npy", dir);
    write_file(p, b, len);
    free(b);
    qat_data_source s = source(dir, 1);
    qat_dataset d;
    qat_error e;
    EXPECT_ERR(qat_data_load(&s, "train", 0, &d, NULL, 0, &e), e, QAT_EINVAL, "y_train.npy",
               "record 1", "finite");
    t[1] = 2.0f;
    b = fx_npy("<f4", "(2,)", t, sizeof t, &len);
    write_file(p, b, len);
    free(b);
    cr_assert_eq(qat_data_load(&s, "train", 0, &d, NULL, 0, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(d.n, 2u);
    cr_assert_eq(d.h, 3);
    cr_assert_eq(d.c, 1);
    cr_assert_eq(d.images[17], 200);
    cr_assert_eq(d.own[0].map_len > 0, 1, "uint8 inputs stay mapped");
    cr_assert_eq(d.targets[1], 2.0f);
    qat_dataset_free(&d);
    /* the test split is missing: the message says what was looked for */
    EXPECT_ERR(qat_data_load(&s, "test", 0, &d, NULL, 0, &e), e, QAT_EINVAL, dir);
    fx_rmtree(dir);
}

/* A split bigger than the memory is refused before it is read, with the
 * sizes, in every format: IDX (its decompressed size), .npy (the mapped
 * array), CSV (the file) and CIFAR, whose batches add up. */
static void expect_too_big(const char *dir, size_t mem, const char *file)
{
    qat_data_source s = source(dir, 0);
    s.num_classes = 10;
    s.mem_available = mem;
    qat_dataset d;
    qat_error e;
    EXPECT_ERR(qat_data_load(&s, "train", 0, &d, NULL, 0, &e), e, QAT_EINVAL, file, "GiB",
               "would not fit");
    s.mem_available = SIZE_MAX;
    cr_assert_eq(qat_data_load(&s, "train", 0, &d, NULL, 0, &e), QAT_OK, "%s: %s", dir, e.msg);
    qat_dataset_free(&d);
}

Test(load, every_format_refuses_a_split_over_the_memory_up_front)
{
    char root[64], dir[160], p[220];
    fx_mkdtemp(root);
    size_t len;
    /* IDX: 4 images of 8x8 */
    snprintf(dir, sizeof dir, "%s/idx", root);
    cr_assert_eq(mkdir(dir, 0700), 0);
    uint8_t *b = fx_images(4, 8, 8, &len);
    fx_path(p, sizeof p, dir, "train-images-idx3-ubyte");
    fx_write(p, b, len);
    free(b);
    b = fx_labels(4, 10, &len);
    fx_path(p, sizeof p, dir, "train-labels-idx1-ubyte");
    fx_write(p, b, len);
    free(b);
    expect_too_big(dir, 64, "train-images-idx3-ubyte");
    /* .npy */
    snprintf(dir, sizeof dir, "%s/npy", root);
    cr_assert_eq(mkdir(dir, 0700), 0);
    uint8_t px[4 * 16] = {0};
    b = fx_npy("|u1", "(4, 4, 4)", px, sizeof px, &len);
    fx_path(p, sizeof p, dir, "x_train.npy");
    write_file(p, b, len);
    free(b);
    int64_t y[4] = {0, 1, 2, 3};
    b = fx_npy("<i8", "(4,)", y, sizeof y, &len);
    fx_path(p, sizeof p, dir, "y_train.npy");
    write_file(p, b, len);
    free(b);
    expect_too_big(dir, 32, "x_train.npy");
    /* CSV */
    snprintf(dir, sizeof dir, "%s/csv", root);
    cr_assert_eq(mkdir(dir, 0700), 0);
    const char *csv = "a,b,target\n1,2,0\n3,4,1\n5,6,2\n";
    fx_path(p, sizeof p, dir, "train.csv");
    write_file(p, csv, strlen(csv));
    expect_too_big(dir, 16, "train.csv");
    /* CIFAR: two batches of two records; each fits alone, not both */
    snprintf(dir, sizeof dir, "%s/cifar", root);
    cr_assert_eq(mkdir(dir, 0700), 0);
    size_t rec = 1 + 3072;
    uint8_t *recs = calloc(2, rec);
    recs[rec] = 1;
    for (int i = 1; i <= 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "data_batch_%d.bin", i);
        fx_path(p, sizeof p, dir, name);
        write_file(p, recs, 2 * rec);
    }
    free(recs);
    expect_too_big(dir, 3 * rec, "data_batch_2.bin");
    fx_rmtree(root);
}

/* ---- datasets ----------------------------------------------------------------------- */

static void small_set(qat_dataset *d, uint32_t n)
{
    memset(d, 0, sizeof *d);
    d->n = n;
    d->h = d->w = 4;
    d->c = 2;
    d->images = malloc((size_t)n * 32);
    d->labels = malloc(n);
    for (size_t i = 0; i < (size_t)n * 32; i++)
        d->images[i] = (uint8_t)(i * 7);
    for (uint32_t i = 0; i < n; i++)
        d->labels[i] = (uint8_t)(i % 3);
    d->num_classes = 3;
    qat_data_own(d, d->images, 0);
    qat_data_own(d, d->labels, 0);
}

Test(dataset, split_is_a_deterministic_partition)
{
    qat_dataset d, tr, va, tr2, va2;
    small_set(&d, 50);
    qat_rng r1, r2;
    qat_rng_seed(&r1, 5, 3);
    qat_rng_seed(&r2, 5, 3);
    qat_error e;
    cr_assert_eq(qat_dataset_split(&d, 0.2, &r1, &tr, &va, &e), QAT_OK);
    cr_assert_eq(qat_dataset_split(&d, 0.2, &r2, &tr2, &va2, &e), QAT_OK);
    cr_assert_eq(va.n, 10u);
    cr_assert_eq(tr.n, 40u);
    cr_assert_eq(memcmp(va.index, va2.index, 10 * sizeof(uint32_t)), 0);
    int seen[50] = {0};
    for (uint32_t i = 0; i < tr.n; i++)
        seen[tr.index[i]]++;
    for (uint32_t i = 0; i < va.n; i++)
        seen[va.index[i]]++;
    for (int i = 0; i < 50; i++)
        cr_assert_eq(seen[i], 1, "example %d in %d splits", i, seen[i]);
    uint8_t img[32], lab;
    qat_dataset_batch(&va, NULL, 3, 1, img, &lab, NULL);
    cr_assert_eq(memcmp(img, d.images + (size_t)va.index[3] * 32, 32), 0);
    cr_assert_eq(lab, d.labels[va.index[3]]);
    qat_dataset_free(&tr2);
    qat_dataset_free(&va2);
    /* a refused split leaves both sides empty: nothing to free */
    EXPECT_ERR(qat_dataset_split(&d, 0.001, &r1, &tr2, &va2, &e), e, QAT_EINVAL, "val_fraction");
    cr_assert(tr2.index == NULL && va2.index == NULL);
    qat_dataset_free(&tr);
    qat_dataset_free(&va);
    qat_dataset_free(&d);
}

Test(dataset, channel_stats_per_channel)
{
    float f[8] = {1, 10, 3, 30, 5, 50, 7, 70};
    qat_dataset d = {.features = f, .n = 2, .h = 1, .w = 2, .c = 2};
    float mean[2], sd[2];
    qat_dataset_channel_stats(&d, mean, sd);
    cr_assert_float_eq(mean[0], 4.0f, 1e-6);
    cr_assert_float_eq(mean[1], 40.0f, 1e-5);
    cr_assert_float_eq(sd[0], sqrtf(5.0f), 1e-6);
    cr_assert_float_eq(sd[1], sqrtf(500.0f), 1e-4);
}

/* The augmentation of an example depends on (seed, epoch, example) only:
 * not on where in the batch or the epoch it is, nor on anything else. */
Test(augment, deterministic_per_example_and_epoch)
{
    qat_augment_params p = {.crop_pad = 2, .hflip = 1, .shift = 1, .cutout = 3};
    uint8_t base[6 * 5 * 3], a[sizeof base], b[sizeof base], scratch[sizeof base];
    for (size_t i = 0; i < sizeof base; i++)
        base[i] = (uint8_t)(i * 11 + 1);
    int differs = 0;
    for (uint32_t ex = 0; ex < 20; ex++) {
        memcpy(a, base, sizeof a);
        memcpy(b, base, sizeof b);
        qat_augment_example(&p, 9, 2, ex, QAT_DATA_U8, 6, 5, 3, a, scratch);
        /* in between, other examples and epochs are augmented */
        qat_augment_example(&p, 9, 3, ex + 1, QAT_DATA_U8, 6, 5, 3, b, scratch);
        memcpy(b, base, sizeof b);
        qat_augment_example(&p, 9, 2, ex, QAT_DATA_U8, 6, 5, 3, b, scratch);
        cr_assert_eq(memcmp(a, b, sizeof a), 0, "example %u augmented two ways", ex);
        differs |= memcmp(a, base, sizeof a) != 0;
    }
    cr_assert(differs, "augmentation must change some example");
    /* float images take the same transforms */
    float fa[6 * 5 * 3], fs[sizeof fa / sizeof fa[0]];
    for (size_t i = 0; i < sizeof fa / sizeof fa[0]; i++)
        fa[i] = base[i];
    memcpy(a, base, sizeof a);
    qat_augment_example(&p, 9, 2, 4, QAT_DATA_U8, 6, 5, 3, a, scratch);
    qat_augment_example(&p, 9, 2, 4, QAT_DATA_F32, 6, 5, 3, fa, fs);
    for (size_t i = 0; i < sizeof a; i++)
        cr_assert_eq(fa[i], (float)a[i]);
}

Test(augment, hflip_alone_mirrors_or_keeps)
{
    qat_augment_params p = {.hflip = 1};
    uint8_t img[2 * 3], scratch[6];
    int flipped = 0, kept = 0;
    for (uint32_t ex = 0; ex < 16; ex++) {
        for (int i = 0; i < 6; i++)
            img[i] = (uint8_t)i;
        qat_augment_example(&p, 1, 0, ex, QAT_DATA_U8, 2, 3, 1, img, scratch);
        if (img[0] == 2 && img[1] == 1 && img[2] == 0 && img[3] == 5)
            flipped++;
        else if (img[0] == 0 && img[5] == 5)
            kept++;
    }
    cr_assert_eq(flipped + kept, 16);
    cr_assert(flipped > 0 && kept > 0);
}
