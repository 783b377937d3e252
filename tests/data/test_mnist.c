/* qat_mnist_load on synthetic directories and on the committed subset, plus
 * epoch order and gather. */
#include "data_fixture.h"

#define TRAIN_IMG "train-images-idx3-ubyte"
#define TRAIN_LBL "train-labels-idx1-ubyte"

/* Writes a train split of n h x w images into dir, raw or gzipped. */
static void write_split(const char *dir, uint32_t n, uint32_t h, uint32_t w, uint32_t classes,
                        int gz)
{
    char p[160];
    size_t len, llen;
    uint8_t *b = fx_images(n, h, w, &len);
    uint8_t *l = fx_labels(n, classes, &llen);
    if (gz) {
        size_t zl;
        uint8_t *z = fx_gzip(b, len, &zl);
        fx_path(p, sizeof p, dir, TRAIN_IMG ".gz");
        fx_write(p, z, zl);
        free(z);
        z = fx_gzip(l, llen, &zl);
        fx_path(p, sizeof p, dir, TRAIN_LBL ".gz");
        fx_write(p, z, zl);
        free(z);
    } else {
        fx_path(p, sizeof p, dir, TRAIN_IMG);
        fx_write(p, b, len);
        fx_path(p, sizeof p, dir, TRAIN_LBL);
        fx_write(p, l, llen);
    }
    free(b);
    free(l);
}

static qat_status load(const char *dir, int classes, uint32_t limit, qat_dataset *d,
                       qat_error *e)
{
    qat_error_clear(e);
    return qat_mnist_load(dir, "train", classes, limit, d, e);
}

Test(load, raw_and_gz_directories_give_identical_datasets)
{
    char a[64], b[64];
    fx_mkdtemp(a);
    fx_mkdtemp(b);
    write_split(a, 30, 6, 5, 10, 0);
    write_split(b, 30, 6, 5, 10, 1);
    qat_dataset da, db;
    qat_error e;
    cr_assert_eq(load(a, 10, 0, &da, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(load(b, 10, 0, &db, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(da.n, 30u);
    cr_assert_eq(da.h, 6);
    cr_assert_eq(da.w, 5);
    cr_assert_eq(da.c, 1);
    cr_assert_eq(da.num_classes, 10);
    cr_assert_eq(qat_dataset_image_size(&da), 30u);
    cr_assert_eq(db.n, da.n);
    cr_assert_eq(db.h, da.h);
    cr_assert_eq(db.w, da.w);
    cr_assert_eq(db.c, da.c);
    cr_assert_eq(memcmp(da.images, db.images, 30 * 30), 0);
    cr_assert_eq(memcmp(da.labels, db.labels, 30), 0);
    for (uint32_t i = 0; i < 30; i++) {
        cr_assert_eq(da.labels[i], i % 10);
        cr_assert_eq(da.images[i * 30 + 29], fx_pixel(i, 29));
    }
    qat_dataset_free(&da);
    qat_dataset_free(&db);
    cr_assert_null(da.images, "free must reset the struct");
    cr_assert_eq(da.n, 0u);
    qat_dataset_free(&da); /* and be safe to call again */
    fx_rmtree(a);
    fx_rmtree(b);
}

Test(load, raw_file_preferred_over_gz)
{
    char dir[64], p[160];
    fx_mkdtemp(dir);
    write_split(dir, 8, 4, 4, 10, 0);
    /* A .gz beside each raw file that would fail if it were read. */
    static const uint8_t junk[] = {0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad};
    fx_path(p, sizeof p, dir, TRAIN_IMG ".gz");
    fx_write(p, junk, sizeof junk);
    fx_path(p, sizeof p, dir, TRAIN_LBL ".gz");
    fx_write(p, junk, sizeof junk);
    qat_dataset d;
    qat_error e;
    cr_assert_eq(load(dir, 10, 0, &d, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(d.n, 8u);
    qat_dataset_free(&d);

    /* Without the raw image file the .gz is used -- and its error names it. */
    fx_path(p, sizeof p, dir, TRAIN_IMG);
    cr_assert_eq(unlink(p), 0);
    fx_path(p, sizeof p, dir, TRAIN_IMG ".gz");
    EXPECT_ERR(load(dir, 10, 0, &d, &e), e, QAT_EINVAL, p, "truncated gzip");
    cr_assert_null(d.images);
    fx_rmtree(dir);
}

Test(load, missing_files_name_dir_and_names_tried)
{
    char dir[64], p[160];
    fx_mkdtemp(dir);
    qat_dataset d;
    qat_error e;
    EXPECT_ERR(load(dir, 10, 0, &d, &e), e, QAT_EINVAL, dir, "cannot find",
               TRAIN_IMG " and " TRAIN_IMG ".gz");

    /* Images present, labels absent. */
    size_t len;
    uint8_t *b = fx_images(3, 2, 2, &len);
    fx_path(p, sizeof p, dir, TRAIN_IMG);
    fx_write(p, b, len);
    EXPECT_ERR(load(dir, 10, 0, &d, &e), e, QAT_EINVAL, dir, "cannot find",
               TRAIN_LBL " and " TRAIN_LBL ".gz");
    cr_assert_null(d.images);

    /* A directory that does not exist at all. */
    EXPECT_ERR(load("/nonexistent-qat-mnist", 10, 0, &d, &e), e, QAT_EINVAL,
               "/nonexistent-qat-mnist", TRAIN_IMG);
    free(b);
    fx_rmtree(dir);
}

Test(load, count_mismatch_names_both_files_and_counts)
{
    char dir[64], pi[160], pl[160];
    fx_mkdtemp(dir);
    size_t len, llen;
    uint8_t *b = fx_images(5, 3, 3, &len);
    uint8_t *l = fx_labels(4, 10, &llen);
    fx_path(pi, sizeof pi, dir, TRAIN_IMG);
    fx_path(pl, sizeof pl, dir, TRAIN_LBL);
    fx_write(pi, b, len);
    fx_write(pl, l, llen);
    qat_dataset d;
    qat_error e;
    EXPECT_ERR(load(dir, 10, 0, &d, &e), e, QAT_EINVAL, "mismatch", pi, pl, "5 images",
               "4 labels");
    cr_assert_null(d.images);
    free(b);
    free(l);

    /* And the other way round: more labels than images. */
    b = fx_images(4, 3, 3, &len);
    l = fx_labels(6, 10, &llen);
    fx_write(pi, b, len);
    fx_write(pl, l, llen);
    EXPECT_ERR(load(dir, 10, 0, &d, &e), e, QAT_EINVAL, "mismatch", pi, pl, "4 images",
               "6 labels");
    free(b);
    free(l);
    fx_rmtree(dir);
}

Test(load, label_out_of_range_names_file_index_and_value)
{
    char dir[64], pl[160];
    fx_mkdtemp(dir);
    write_split(dir, 6, 3, 3, 10, 0);
    size_t llen;
    uint8_t *l = fx_labels(6, 10, &llen);
    l[8 + 3] = 10;
    fx_path(pl, sizeof pl, dir, TRAIN_LBL);
    fx_write(pl, l, llen);
    qat_dataset d;
    qat_error e;
    EXPECT_ERR(load(dir, 10, 0, &d, &e), e, QAT_EINVAL, pl, "index 3", "value 10",
               "num_classes 10");
    cr_assert_null(d.labels);
    /* The same file is fine for an 11-class problem. */
    cr_assert_eq(load(dir, 11, 0, &d, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(d.labels[3], 10);
    qat_dataset_free(&d);
    free(l);
    fx_rmtree(dir);
}

Test(load, parse_errors_name_the_file_on_disk)
{
    char dir[64], pi[160];
    fx_mkdtemp(dir);
    write_split(dir, 6, 3, 3, 10, 0);
    size_t len;
    uint8_t *b = fx_images(6, 3, 3, &len);
    fx_path(pi, sizeof pi, dir, TRAIN_IMG);
    fx_write(pi, b, len - 5);
    qat_dataset d;
    qat_error e;
    EXPECT_ERR(load(dir, 10, 0, &d, &e), e, QAT_EINVAL, pi, "truncated payload");
    EXPECT_ERR(load(dir, 0, 0, &d, &e), e, QAT_EINVAL, "num_classes");
    free(b);
    fx_rmtree(dir);
}

/* raw files are mapped and only the kept examples copied; gzip is inflated */
static void limit_keeps_first(int gz)
{
    char dir[64];
    fx_mkdtemp(dir);
    write_split(dir, 10, 4, 3, 10, gz);
    qat_dataset d;
    qat_error e;
    cr_assert_eq(load(dir, 10, 4, &d, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(d.n, 4u);
    for (uint32_t i = 0; i < 4; i++) {
        cr_assert_eq(d.labels[i], i);
        for (size_t k = 0; k < 12; k++)
            cr_assert_eq(d.images[i * 12 + k], fx_pixel(i, k));
    }
    qat_dataset_free(&d);
    cr_assert_eq(load(dir, 10, 0, &d, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(d.n, 10u, "limit 0 keeps everything");
    cr_assert_eq(d.images[9 * 12 + 11], fx_pixel(9, 11));
    qat_dataset_free(&d);
    cr_assert_eq(load(dir, 10, 1000, &d, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(d.n, 10u, "a limit above n keeps everything");
    qat_dataset_free(&d);
    fx_rmtree(dir);
}

Test(load, limit_keeps_first_examples) { limit_keeps_first(1); }
Test(load, limit_keeps_first_examples_of_a_raw_file) { limit_keeps_first(0); }

/* Past a limit the images are not copied, but the file is still checked
 * whole: a bad label or a short payload there is an error all the same. */
static void limit_still_checks_the_whole_file(int gz)
{
    char dir[64], pl[160], pi[160];
    fx_mkdtemp(dir);
    write_split(dir, 10, 3, 3, 10, gz);
    size_t llen, len;
    uint8_t *l = fx_labels(10, 10, &llen);
    l[8 + 8] = 12;
    fx_path(pl, sizeof pl, dir, gz ? TRAIN_LBL ".gz" : TRAIN_LBL);
    fx_path(pi, sizeof pi, dir, gz ? TRAIN_IMG ".gz" : TRAIN_IMG);
    uint8_t *b = fx_images(10, 3, 3, &len);
    uint8_t *z = NULL;
    size_t zl = llen;
    if (gz)
        z = fx_gzip(l, llen, &zl);
    fx_write(pl, z ? z : l, zl);
    free(z);
    qat_dataset d;
    qat_error e;
    EXPECT_ERR(load(dir, 10, 4, &d, &e), e, QAT_EINVAL, pl, "index 8", "value 12",
               "num_classes 10");
    cr_assert_eq(load(dir, 13, 4, &d, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(d.n, 4u);
    qat_dataset_free(&d);
    z = gz ? fx_gzip(b, len - 1, &zl) : NULL;
    fx_write(pi, z ? z : b, z ? zl : len - 1);
    free(z);
    EXPECT_ERR(load(dir, 13, 4, &d, &e), e, QAT_EINVAL, pi, "truncated payload");
    z = NULL;
    uint8_t *longer = calloc(len + 3, 1);
    memcpy(longer, b, len);
    if (gz)
        z = fx_gzip(longer, len + 3, &zl);
    fx_write(pi, z ? z : longer, z ? zl : len + 3);
    free(z);
    EXPECT_ERR(load(dir, 13, 4, &d, &e), e, QAT_EINVAL, pi, "3 trailing bytes");
    free(longer);
    free(b);
    free(l);
    fx_rmtree(dir);
}

Test(load, limit_still_checks_labels_and_length_of_a_raw_file)
{
    limit_still_checks_the_whole_file(0);
}
Test(load, limit_still_checks_labels_and_length_of_a_gz_file)
{
    limit_still_checks_the_whole_file(1);
}

/* ---- the committed subset of real MNIST ----------------------------------------- */

static void subset_dir(char *out, size_t cap)
{
    const char *root = getenv("QAT_SOURCE_ROOT");
    cr_assert_not_null(root, "QAT_SOURCE_ROOT not set (run through meson test)");
    int k = snprintf(out, cap, "%s/datasets/mnist-subset", root);
    cr_assert(k > 0 && (size_t)k < cap);
}

static void check_subset(const char *split, uint32_t n, uint8_t first_label)
{
    char dir[4096];
    subset_dir(dir, sizeof dir);
    qat_dataset d;
    qat_error e;
    qat_error_clear(&e);
    cr_assert_eq(qat_mnist_load(dir, split, 10, 0, &d, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(d.n, n);
    cr_assert_eq(d.h, 28);
    cr_assert_eq(d.w, 28);
    cr_assert_eq(d.c, 1);
    int count[10] = {0};
    for (uint32_t i = 0; i < d.n; i++)
        count[d.labels[i]]++;
    for (int c = 0; c < 10; c++)
        cr_assert_gt(count[c], (int)(n / 20), "%s: class %d has only %d examples", split, c,
                     count[c]);
    /* Known facts about real MNIST: its first labels, and that digits are
     * drawn on a black border with saturated strokes. */
    cr_assert_eq(d.labels[0], first_label);
    uint8_t mx = 0;
    for (size_t k = 0; k < 28 * 28; k++)
        mx = d.images[k] > mx ? d.images[k] : mx;
    cr_assert_geq(mx, 250);
    cr_assert_eq(d.images[0], 0);
    qat_dataset_free(&d);
}

Test(subset, train_is_3000_real_mnist_examples)
{
    check_subset("train", 3000, 5);
}

Test(subset, t10k_is_1000_real_mnist_examples)
{
    check_subset("t10k", 1000, 7);
}

Test(subset, committed_raw_and_gz_agree)
{
    static const char *names[] = {TRAIN_IMG, TRAIN_LBL, "t10k-images-idx3-ubyte",
                                  "t10k-labels-idx1-ubyte"};
    char dir[4096], p[4200], pz[4200];
    subset_dir(dir, sizeof dir);
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        snprintf(pz, sizeof pz, "%s/%s.gz", dir, names[i]);
        uint8_t *a, *b;
        size_t la, lb;
        qat_error e;
        qat_error_clear(&e);
        cr_assert_eq(qat_read_file_maybe_gz(p, &a, &la, &e), QAT_OK, "%s", e.msg);
        cr_assert_eq(qat_read_file_maybe_gz(pz, &b, &lb, &e), QAT_OK, "%s", e.msg);
        cr_assert_eq(la, lb, "%s: raw %zu bytes, gz inflates to %zu", names[i], la, lb);
        cr_assert_eq(memcmp(a, b, la), 0, "%s differs from its .gz", names[i]);
        free(a);
        free(b);
    }
}

/* ---- epoch order and gather ------------------------------------------------------ */

Test(order, shuffle_is_a_reproducible_permutation)
{
    enum { N = 1000 };
    static uint32_t o1[N], o2[N], o3[N];
    qat_rng r1, r2, r3;
    qat_rng_seed(&r1, 42, 7);
    qat_rng_seed(&r2, 42, 7);
    qat_rng_seed(&r3, 43, 7);
    qat_dataset_order(N, 1, &r1, o1);
    qat_dataset_order(N, 1, &r2, o2);
    qat_dataset_order(N, 1, &r3, o3);
    cr_assert_eq(memcmp(o1, o2, sizeof o1), 0, "same seed, different order");
    cr_assert_neq(memcmp(o1, o3, sizeof o1), 0, "different seeds, same order");
    static unsigned char seen[N];
    int fixed = 0;
    for (uint32_t i = 0; i < N; i++) {
        cr_assert_lt(o1[i], (uint32_t)N);
        cr_assert_eq(seen[o1[i]], 0, "index %u appears twice", o1[i]);
        seen[o1[i]] = 1;
        fixed += o1[i] == i;
    }
    /* A uniform permutation has ~1 fixed point; near-identity means no shuffle. */
    cr_assert_lt(fixed, 20);
    /* The next epoch draws a fresh order from the advanced stream. */
    qat_dataset_order(N, 1, &r1, o2);
    cr_assert_neq(memcmp(o1, o2, sizeof o1), 0);
}

Test(order, identity_without_shuffle)
{
    uint32_t o[17];
    memset(o, 0xff, sizeof o);
    qat_rng r;
    qat_rng_seed(&r, 1, 0);
    qat_rng before = r;
    qat_dataset_order(17, 0, &r, o);
    for (uint32_t i = 0; i < 17; i++)
        cr_assert_eq(o[i], i);
    cr_assert(r.state == before.state, "no shuffle must not consume randomness");
    qat_dataset_order(17, 0, NULL, o); /* rng is not needed then */
    cr_assert_eq(o[16], 16u);
}

Test(gather, copies_the_indexed_examples)
{
    char dir[64];
    fx_mkdtemp(dir);
    write_split(dir, 12, 5, 4, 10, 0);
    qat_dataset d;
    qat_error e;
    cr_assert_eq(load(dir, 10, 0, &d, &e), QAT_OK, "%s", e.msg);
    const uint32_t idx[] = {11, 0, 7, 7, 3};
    uint8_t img[5 * 20], lbl[5];
    memset(img, 0xee, sizeof img);
    qat_dataset_gather(&d, idx, 5, img, lbl);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(lbl[i], idx[i] % 10, "batch slot %d", i);
        for (size_t k = 0; k < 20; k++)
            cr_assert_eq(img[i * 20 + k], fx_pixel(idx[i], k), "slot %d pixel %zu", i, k);
    }
    qat_dataset_free(&d);
    fx_rmtree(dir);
}
