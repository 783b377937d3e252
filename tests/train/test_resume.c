/* Same seed and threads give bit-identical weights; an interrupted run that
 * is resumed ends bit-identical to an uninterrupted one. */
#include <criterion/criterion.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/tmpdir.h"
#include "qat/train.h"

/* extra_c: a third override, or NULL */
static void cfg_for(const char *extra_a, const char *extra_b, const char *extra_c,
                    qat_config *cfg)
{
    const char *root = getenv("QAT_SOURCE_ROOT");
    cr_assert_not_null(root, "run through meson test");
    char path[1024], data[1024];
    snprintf(path, sizeof path, "%s/configs/mnist_cnn.ini", root);
    snprintf(data, sizeof data, "data.dir=%s/datasets/mnist-subset", root);
    const char *sets[] = {data, "train.progress=false", "train.threads=2", "train.epochs=3",
                          "data.train_limit=600", "data.test_limit=200",
                          "layer.conv1.out_channels=8", "layer.conv2.out_channels=8",
                          "layer.fc1.in_features=392", "layer.fc1.out_features=16",
                          "train.optimizer=adam", extra_a, extra_b, extra_c};
    qat_error e;
    cr_assert_eq(qat_config_load(path, sets, extra_c ? 14 : 13, cfg, &e), QAT_OK, "%s", e.msg);
}

/* params, state and optimizer state of a checkpoint, concatenated */
static float *read_all(const char *dir, size_t *n)
{
    char p[512];
    snprintf(p, sizeof p, "%s/checkpoint.h5", dir);
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert_geq(f, 0, "%s", p);
    const char *names[] = {"params", "state", "optimizer_state"};
    float *all = NULL;
    *n = 0;
    for (int i = 0; i < 3; i++) {
        hid_t d = H5Dopen2(f, names[i], H5P_DEFAULT);
        hid_t s = H5Dget_space(d);
        hsize_t m;
        H5Sget_simple_extent_dims(s, &m, NULL);
        all = realloc(all, (*n + m) * sizeof(float));
        H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, all + *n);
        *n += m;
        H5Sclose(s);
        H5Dclose(d);
    }
    H5Fclose(f);
    return all;
}

static void train_in3(const char *dir, const char *a, const char *b, const char *c,
                      int stop_after, int resume, qat_status expect)
{
    qat_config *cfg = malloc(sizeof *cfg);
    cfg_for(a, b, c, cfg);
    qat_train_opts o = {.out_dir = dir, .quiet = 1, .stop_after = stop_after, .resume = resume};
    qat_error e;
    qat_trained *t;
    qat_status st = qat_train(cfg, &o, &t, &e);
    cr_assert_eq(st, expect, "%s", e.msg);
    cr_assert((st == QAT_OK) == (t != NULL), "a finished run, and only that, is handed on");
    qat_train_end(t);
    free(cfg);
}

static void train_in(const char *dir, const char *a, const char *b, int stop_after, int resume,
                     qat_status expect)
{
    train_in3(dir, a, b, NULL, stop_after, resume, expect);
}

static void mk(char buf[64])
{
    tc_tmpdir(buf, 64, "qat-resume");
}

static void check_resume3(const char *a, const char *b, const char *c)
{
    char full[64], cut[64];
    mk(full);
    mk(cut);
    train_in3(full, a, b, c, 0, 0, QAT_OK);
    train_in3(cut, a, b, c, 1, 0, QAT_EINTERNAL); /* "killed" after epoch 1 */
    train_in3(cut, a, b, c, 0, 1, QAT_OK);
    size_t n1, n2;
    float *x = read_all(full, &n1), *y = read_all(cut, &n2);
    cr_assert_eq(n1, n2);
    cr_assert_eq(memcmp(x, y, n1 * sizeof(float)), 0, "resumed weights differ from uninterrupted");
    free(x);
    free(y);
}

static void check_resume(const char *a, const char *b) { check_resume3(a, b, NULL); }

Test(resume, interrupted_then_resumed_equals_uninterrupted_qat, .timeout = 300)
{
    check_resume("quant.enabled=true", "data.shuffle=true");
}

Test(resume, same_for_float_with_sgd_momentum, .timeout = 300)
{
    check_resume("quant.enabled=false", "train.optimizer=momentum");
}

/* Augmentation draws per (seed, epoch, example), and the validation split
 * with the seed: a resumed run gets both back exactly. */
Test(resume, same_with_augmentation_and_a_validation_split, .timeout = 300)
{
    check_resume("augment.random_crop=2", "data.val_fraction=0.2");
}

Test(resume, same_with_flips_and_cutout_and_auto_statistics, .timeout = 300)
{
    check_resume3("augment.hflip=true", "augment.cutout=6", "model.input_mean=auto");
}

/* The cluster state (assignments, centroids, the centroid optimizer's
 * moments) rides in the checkpoint: clustered in epoch 1, resumed after it. */
Test(resume, same_with_weight_clusters_tied_before_the_cut, .timeout = 300)
{
    check_resume3("quant.enabled=true", "cluster.clusters=8", "cluster.start=0.5");
}

Test(reproducible, same_seed_and_threads_give_identical_weights, .timeout = 300)
{
    char a[64], b[64], c[64];
    mk(a);
    mk(b);
    mk(c);
    train_in(a, "train.seed=7", "quant.enabled=true", 0, 0, QAT_OK);
    train_in(b, "train.seed=7", "quant.enabled=true", 0, 0, QAT_OK);
    train_in(c, "train.seed=8", "quant.enabled=true", 0, 0, QAT_OK);
    size_t n1, n2, n3;
    float *x = read_all(a, &n1), *y = read_all(b, &n2), *z = read_all(c, &n3);
    cr_assert_eq(memcmp(x, y, n1 * sizeof(float)), 0, "same seed, different weights");
    cr_assert_neq(memcmp(x, z, n1 * sizeof(float)), 0, "a different seed must change them");
    free(x);
    free(y);
    free(z);
}
