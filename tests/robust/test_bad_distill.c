/* Catalogue: bad [distill] settings and teacher checkpoints given to
 * qat-train. Each case must end with exit code 2 naming the file and the
 * field, and write nothing but the run folder's config.ini. */
#include <hdf5.h>

#include "qat/runtime_h5.h"
#include "qat/train.h"
#include "robust.h"
#include "rt_fixture.h"

#define MLP "[layer.flatten]\ntype = flatten\n[layer.fc1]\ntype = linear\nout_features = 16\n" \
            "activation = relu\n[layer.fc2]\ntype = linear\nout_features = %d\n"

/* A checkpoint of an untrained MLP whose [model] section is model (a
 * teacher that cannot teach c.ini's student). */
static void untrained_checkpoint(const char *name, const char *model, int classes)
{
    char ini[64];
    snprintf(ini, sizeof ini, "%s.ini", name);
    rb_printf(ini, "[model]\n%s\n" MLP, model, classes);
    qat_config *cfg = malloc(sizeof *cfg);
    qat_error e;
    cr_assert_eq(qat_config_load(rb_path(ini), NULL, 0, cfg, &e), QAT_OK, "%s", e.msg);
    qat_model *m;
    cr_assert_eq(qat_model_create(cfg, &m, &e), QAT_OK, "%s", e.msg);
    qat_checkpoint_meta meta = {0};
    char h5[64];
    snprintf(h5, sizeof h5, "%s.h5", name);
    cr_assert_eq(qat_checkpoint_save(rb_path(h5), m, NULL, &meta, &e), QAT_OK, "%s", e.msg);
    qat_model_destroy(m);
    free(cfg);
}

/* c.ini: the MLP on 64 subset images; ck.h5: it trained in float (a good
 * teacher); m.h5: an integer model file; shape.h5 / classes.h5: teachers of
 * 32x28 images and of 12 classes. */
static void setup(void)
{
    rb_setup();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    rb_printf("c.ini",
              "[data]\ndir = %s\ntrain_limit = 64\ntest_limit = 32\n[train]\nepochs = 1\n"
              "batch_size = 16\nthreads = 1\n[quant]\nenabled = false\n" MLP,
              rb_src("datasets/mnist-subset"), 10);
    int code = rb_run("qat-train", RB_ARGS(rb_path("c.ini"), "--out", rb_path("run"), "--quiet"));
    cr_assert_eq(code, 0, "%s", rb_err);
    rb_copy(rb_path("run/checkpoint.h5"), rb_path("ck.h5"));
    fx_model fx;
    fx_build_cnn(&fx, 17, 8);
    qat_error e;
    cr_assert_eq(qat_rt_h5_write(rb_path("m.h5"), &fx.desc, &e), QAT_OK, "%s", e.msg);
    fx_free(&fx);
    untrained_checkpoint("shape", "input_height = 32", 10);
    untrained_checkpoint("classes", "num_classes = 12", 12);
}

TestSuite(bad_distill, .init = setup, .fini = rb_teardown, .timeout = 120);

/* qat-train c.ini --set distill.teacher=<teacher> [--set extra] */
#define TEACHER_BAD(teacher, extra, ...)                                                           \
    do {                                                                                           \
        char set_[512];                                                                            \
        snprintf(set_, sizeof set_, "distill.teacher=%s", rb_path(teacher));                       \
        RB_EXPECT_BAD("qat-train",                                                                 \
                      RB_ARGS(rb_path("c.ini"), "--set", set_, "--set", extra, "--out",            \
                              rb_path("out"), "--quiet"),                                          \
                      __VA_ARGS__);                                                                \
        rb_only_config_written("out");                                                                         \
    } while (0)

Test(bad_distill, base_teacher_distills)
{
    char set[512];
    snprintf(set, sizeof set, "distill.teacher=%s", rb_path("ck.h5"));
    int code = rb_run("qat-train", RB_ARGS(rb_path("c.ini"), "--set", set, "--out",
                                           rb_path("out"), "--quiet"));
    cr_assert_eq(code, 0, "%s", rb_err);
    size_t n;
    free(rb_read(rb_path("out/checkpoint.h5"), &n));
    char csv[RB_OUT_CAP];
    rb_slurp(rb_path("out/metrics.csv"), csv);
    cr_assert_not_null(strstr(csv, "distill_loss"), "%s", csv);
}

Test(bad_distill, teacher_missing)
{
    TEACHER_BAD("nope.h5", "distill.alpha=0.5", "c.ini", "[distill] teacher = ", "nope.h5",
                "cannot open checkpoint");
}

Test(bad_distill, model_file_instead_of_a_checkpoint)
{
    TEACHER_BAD("m.h5", "distill.alpha=0.5", "c.ini", "[distill] teacher", "m.h5",
                "not a checkpoint");
}

Test(bad_distill, truncated_teacher)
{
    size_t n;
    unsigned char *b = rb_read(rb_path("ck.h5"), &n);
    rb_write("ck.h5", b, n / 2);
    free(b);
    TEACHER_BAD("ck.h5", "distill.alpha=0.5", "c.ini", "[distill] teacher", "ck.h5",
                "truncated or corrupt");
}

Test(bad_distill, teacher_of_another_input_shape)
{
    TEACHER_BAD("shape.h5", "distill.alpha=0.5", "c.ini", "[distill] teacher", "shape.h5",
                "32x28x1", "28x28x1", "input_height");
}

Test(bad_distill, teacher_of_another_class_count)
{
    TEACHER_BAD("classes.h5", "distill.alpha=0.5", "c.ini", "[distill] teacher", "classes.h5",
                "12 classes", "num_classes", "student 10");
}

Test(bad_distill, temperature_zero)
{
    TEACHER_BAD("ck.h5", "distill.temperature=0", "distill.temperature=0",
                "[distill] temperature", "(0, 100]");
}

Test(bad_distill, temperature_negative_in_the_file)
{
    rb_printf("t.ini", "[distill]\nalpha = 0.3\ntemperature = -2\n" MLP, 10);
    RB_EXPECT_BAD("qat-train", RB_ARGS(rb_path("t.ini"), "--out", rb_path("out")), "t.ini:3",
                  "[distill] temperature", "found -2");
    rb_only_config_written("out");
}

Test(bad_distill, alpha_above_one)
{
    TEACHER_BAD("ck.h5", "distill.alpha=1.5", "distill.alpha=1.5", "[distill] alpha", "[0, 1]");
}

Test(bad_distill, alpha_negative_in_the_file)
{
    rb_printf("a.ini", "[distill]\nalpha = -0.1\n" MLP, 10);
    RB_EXPECT_BAD("qat-train", RB_ARGS(rb_path("a.ini"), "--out", rb_path("out")), "a.ini:2",
                  "[distill] alpha", "[0, 1]");
    rb_only_config_written("out");
}

Test(bad_distill, unknown_loss)
{
    TEACHER_BAD("ck.h5", "distill.loss=ce", "distill.loss=ce", "[distill] loss",
                "expected one of kl, mse");
}

Test(bad_distill, kl_with_a_regression_student)
{
    rb_printf("r.ini", "[model]\ntask = regression\n[distill]\nteacher = %s\nloss = kl\n" MLP,
              rb_path("ck.h5"), 1);
    RB_EXPECT_BAD("qat-train", RB_ARGS(rb_path("r.ini"), "--out", rb_path("out")), "r.ini:5",
                  "[distill] loss = kl", "task = regression", "loss = mse");
    rb_only_config_written("out");
    /* kl by default: the teacher's line is the one to blame */
    TEACHER_BAD("ck.h5", "model.task=regression", "distill.teacher=", "[distill] loss = kl",
                "regression");
}

Test(bad_distill, unknown_key)
{
    rb_printf("k.ini", "[distill]\ntemp = 2\n" MLP, 10);
    RB_EXPECT_BAD("qat-train", RB_ARGS(rb_path("k.ini"), "--out", rb_path("out")), "k.ini:2",
                  "[distill] unknown key 'temp'", "temperature");
    rb_only_config_written("out");
}
