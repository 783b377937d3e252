/* [distill]: a student trains against a teacher checkpoint of another
 * architecture. The teacher only adds a term to the loss: with alpha = 0
 * the student is bit for bit the one trained without a teacher (the
 * teacher draws no random numbers and changes no student state), with
 * alpha > 0 it differs; distillation combines with LSQ, pruning and
 * [train] init. */
#include <criterion/criterion.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/tmpdir.h"
#include "qat/run.h"

static char dir[64];

static void setup(void)
{
    tc_tmpdir(dir, sizeof dir, "qat-distill");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* Trains the MLP (784-64-10, W4A4) on a few subset images with the extra
 * sets into dir/name; returns the run directory (static buffer). */
static const char *train(const char *name, const char *const *extra, int nextra)
{
    const char *root = getenv("QAT_SOURCE_ROOT");
    cr_assert_not_null(root, "run through meson test");
    char path[1024], data[1024];
    snprintf(path, sizeof path, "%s/configs/mnist_mlp.ini", root);
    snprintf(data, sizeof data, "data.dir=%s/datasets/mnist-subset", root);
    const char *sets[24] = {data, "train.progress=false", "train.threads=2", "train.epochs=1",
                            "data.train_limit=300", "data.test_limit=100",
                            "quant.weight_bits=4", "quant.activation_bits=4"};
    int n = 8;
    for (int i = 0; i < nextra; i++)
        sets[n++] = extra[i];
    qat_config *cfg = malloc(sizeof *cfg);
    qat_error e;
    cr_assert_eq(qat_config_load(path, sets, n, cfg, &e), QAT_OK, "%s", e.msg);
    static char out[256];
    snprintf(out, sizeof out, "%s/%s", dir, name);
    qat_train_opts o = {.out_dir = out, .quiet = 1};
    cr_assert_eq(qat_run(cfg, &o, &e), QAT_OK, "%s", e.msg);
    free(cfg);
    return out;
}

/* A float teacher twice as wide as the student: dir/teacher/checkpoint.h5. */
static const char *teacher(void)
{
    static char set[300];
    const char *x[] = {"quant.enabled=false", "layer.fc1.out_features=128", "train.seed=7"};
    snprintf(set, sizeof set, "distill.teacher=%s/checkpoint.h5", train("teacher", x, 3));
    return set;
}

static qat_model *load(const char *run)
{
    char ck[300];
    snprintf(ck, sizeof ck, "%s/checkpoint.h5", run);
    qat_model *m;
    qat_error e;
    cr_assert_eq(qat_checkpoint_load_model(ck, &m, &e), QAT_OK, "%s", e.msg);
    return m;
}

static int same_params(const char *a, const char *b)
{
    qat_model *ma = load(a), *mb = load(b);
    size_t na, nb;
    const float *pa = qat_model_params(ma, &na), *pb = qat_model_params(mb, &nb);
    int same = na == nb && memcmp(pa, pb, na * sizeof *pa) == 0;
    qat_model_destroy(ma);
    qat_model_destroy(mb);
    return same;
}

static void metrics_header(const char *run, char *line, size_t n)
{
    char path[300];
    snprintf(path, sizeof path, "%s/metrics.csv", run);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(line, (int)n, f));
    fclose(f);
}

TestSuite(distill, .init = setup, .timeout = 240);

Test(distill, alpha_zero_is_the_plain_student_and_alpha_half_is_not)
{
    const char *t = teacher();
    char plain[256], zero[256], kl[256], mse[256];
    snprintf(plain, sizeof plain, "%s", train("plain", NULL, 0));
    const char *x0[] = {t, "distill.alpha=0"};
    snprintf(zero, sizeof zero, "%s", train("alpha0", x0, 2));
    const char *x1[] = {t};
    snprintf(kl, sizeof kl, "%s", train("kl", x1, 1));
    const char *x2[] = {t, "distill.loss=mse"};
    snprintf(mse, sizeof mse, "%s", train("mse", x2, 2));
    cr_assert(same_params(plain, zero), "alpha = 0: the teacher must not change the student");
    cr_assert(!same_params(plain, kl), "alpha = 0.5 (kl) must change the student");
    cr_assert(!same_params(plain, mse), "alpha = 0.5 (mse) must change the student");
    cr_assert(!same_params(kl, mse));
    char h[512];
    metrics_header(kl, h, sizeof h);
    cr_assert(strstr(h, ",distill_loss,teacher_ms_per_step"), "%s", h);
    metrics_header(plain, h, sizeof h);
    cr_assert(!strstr(h, "distill"), "%s", h);
}

Test(distill, with_lsq_pruning_and_init_from_a_checkpoint)
{
    const char *t = teacher();
    char init[300];
    snprintf(init, sizeof init, "train.init=%s/checkpoint.h5", train("start", NULL, 0));
    const char *x[] = {t, init, "quant.learn_scale=true", "prune.method=magnitude",
                       "prune.schedule=one_shot", "prune.start=0", "prune.target_sparsity=0.5"};
    const char *run = train("combined", x, 7);
    char h[512];
    metrics_header(run, h, sizeof h);
    cr_assert(strstr(h, ",sparsity,distill_loss,teacher_ms_per_step"), "%s", h);
    qat_model *m = load(run);
    size_t n, zeros = 0;
    const float *p = qat_model_params(m, &n);
    for (size_t i = 0; i < n; i++)
        zeros += p[i] == 0.0f;
    cr_assert_gt(zeros, n / 3, "pruned to half of the weights: %zu of %zu zero", zeros, n);
    qat_model_destroy(m);
}
