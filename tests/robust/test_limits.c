/* Limits: qat-train refuses runs that cannot fit in memory up front, with
 * the computed requirement. The estimate must be a lower bound of what a
 * real training step uses (a refusal is never a false alarm) and close
 * enough to it to catch absurd configs; sizes saturate instead of
 * wrapping. */
#include <stdint.h>

#include "qat/nn.h"
#include "qat/ops.h"
#include "robust.h"

static qat_config *parse(const char *text)
{
    qat_config *cfg = malloc(sizeof *cfg);
    qat_error e;
    cr_assert_not_null(cfg);
    cr_assert_eq(qat_config_parse(text, strlen(text), "c.ini", NULL, 0, cfg, &e), QAT_OK, "%s",
                 e.msg);
    return cfg;
}

static const char mlp[] = "[layer.flatten]\ntype = flatten\n[layer.fc1]\ntype = linear\n"
                          "out_features = 64\nactivation = relu\n[layer.fc2]\ntype = linear\n"
                          "out_features = 10\n";
static const char cnn[] =
    "[train]\noptimizer = sgd\n[layer.conv1]\ntype = conv2d\nout_channels = 8\nkernel = 3\n"
    "padding = 1\nactivation = relu\n[layer.pool1]\ntype = maxpool2d\n[layer.conv2]\n"
    "type = conv2d\nout_channels = 16\nkernel = 3\npadding = 1\nbatchnorm = true\n"
    "activation = relu\n[layer.pool2]\ntype = avgpool2d\n[layer.d]\ntype = dropout\n"
    "[layer.flatten]\ntype = flatten\n[layer.fc]\ntype = linear\nout_features = 10\n";

/* One training step and one evaluation batch of n images with a real tape:
 * the estimate may not exceed what they actually used. */
static void check_lower_bound(const char *text, int n)
{
    qat_config *cfg = parse(text);
    qat_error e;
    qat_model_memory est;
    cr_assert_eq(qat_model_memory_estimate(cfg, n, n, &est, &e), QAT_OK, "%s", e.msg);
    qat_model *m;
    cr_assert_eq(qat_model_create(cfg, &m, &e), QAT_OK, "%s", e.msg);
    size_t np;
    qat_model_params(m, &np);
    cr_assert_leq(est.params, np);
    cr_assert_geq(est.params, np - np / 100, "estimate %zu of %zu parameters", est.params, np);

    size_t isz = (size_t)cfg->model.input_height * (size_t)cfg->model.input_width;
    uint8_t *img = malloc((size_t)n * isz), *lab = malloc((size_t)n);
    for (size_t i = 0; i < (size_t)n * isz; i++)
        img[i] = (uint8_t)(i * 97u);
    for (int i = 0; i < n; i++)
        lab[i] = (uint8_t)(i % 10);
    qat_tape *t;
    cr_assert_eq(qat_tape_create(NULL, &t, &e), QAT_OK);
    qat_tape_set_training(t, 1);
    qat_tape_set_grad_enabled(t, 1);
    qat_tensor *logits = qat_model_forward(m, t, img, n);
    qat_tape_backward(t, qat_op_softmax_cross_entropy(t, logits, lab));
    size_t train_used = qat_arena_high_water(qat_tape_arena(t));
    qat_tape_destroy(t);
    cr_assert_eq(qat_tape_create(NULL, &t, &e), QAT_OK);
    qat_tape_set_training(t, 0);
    qat_tape_set_grad_enabled(t, 0);
    qat_model_forward(m, t, img, n);
    size_t eval_used = qat_arena_high_water(qat_tape_arena(t));
    qat_tape_destroy(t);

    cr_assert_leq(est.train_bytes, train_used, "training: estimate %zu > used %zu",
                  est.train_bytes, train_used);
    cr_assert_leq(est.eval_bytes, eval_used, "evaluation: estimate %zu > used %zu",
                  est.eval_bytes, eval_used);
    /* and not uselessly low: within a small factor of the truth */
    cr_assert_geq(est.train_bytes * 8, train_used, "training: estimate %zu, used %zu",
                  est.train_bytes, train_used);
    cr_assert_geq(est.eval_bytes * 8, eval_used, "evaluation: estimate %zu, used %zu",
                  est.eval_bytes, eval_used);
    cr_log_info("estimate/used: training %zu/%zu, evaluation %zu/%zu", est.train_bytes,
                train_used, est.eval_bytes, eval_used);
    free(img);
    free(lab);
    qat_model_destroy(m);
    free(cfg);
}

Test(limits_lib, estimate_is_a_lower_bound_of_a_real_step_mlp) { check_lower_bound(mlp, 64); }
Test(limits_lib, estimate_is_a_lower_bound_of_a_real_step_cnn) { check_lower_bound(cnn, 16); }

Test(limits_lib, refusal_names_layer_batch_and_requirement)
{
    qat_config *cfg = parse(cnn);
    qat_error e;
    qat_model_memory est;
    cr_assert_eq(qat_model_memory_estimate(cfg, 64, 256, &est, &e), QAT_OK);
    cr_assert_eq(qat_model_check_memory(cfg, 64, 256, est.total_bytes, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(qat_model_check_memory(cfg, 64, 256, est.total_bytes - 1, &e), QAT_EINVAL);
    /* conv1 (line 3) outputs the most values: 28 x 28 x 8 (with 256 test
     * images, evaluation needs more than a training step of 64) */
    cr_assert_not_null(strstr(e.msg, "c.ini:3: [layer.conv1]"), "%s", e.msg);
    cr_assert_not_null(strstr(e.msg, "GiB"), "%s", e.msg);
    cr_assert_not_null(strstr(e.msg, "6272 values per image"), "%s", e.msg);
    cr_assert_not_null(strstr(e.msg, "evaluation batch of 256"), "%s", e.msg);
    free(cfg);
}

Test(limits_lib, sizes_saturate_instead_of_wrapping)
{
    /* 60 layers of 4096 x 4096 x 65536 values, values and gradients of 4
     * bytes, 65536 images: 60 * 2^40 * 8 * 2^16 > 2^64 */
    char text[8192] = "[model]\ninput_height = 4096\ninput_width = 4096\n";
    for (int i = 0; i < 60; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text),
                 "[layer.c%d]\ntype = conv2d\nout_channels = 65536\nkernel = 1\n", i);
    qat_config *cfg = parse(text);
    qat_error e;
    qat_model_memory est;
    cr_assert_eq(qat_model_memory_estimate(cfg, 65536, 256, &est, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(est.train_bytes, SIZE_MAX);
    cr_assert_eq(est.total_bytes, SIZE_MAX);
    cr_assert_eq(qat_model_check_memory(cfg, 65536, 256, (size_t)1 << 40, &e), QAT_EINVAL);
    free(cfg);
}

Test(limits_lib, shape_errors_as_model_create_reports_them)
{
    qat_config *cfg = parse("[layer.c]\ntype = conv2d\nout_channels = 2\nkernel = 40\n"
                            "[layer.fc]\ntype = linear\nout_features = 10\n");
    qat_error e1, e2;
    qat_model_memory est;
    qat_model *m = NULL;
    cr_assert_eq(qat_model_memory_estimate(cfg, 1, 1, &est, &e1), QAT_EINVAL);
    cr_assert_eq(qat_model_create(cfg, &m, &e2), QAT_EINVAL);
    cr_assert_str_eq(e1.msg, e2.msg);
    free(cfg);
}

Test(limits_lib, available_memory_is_plausible)
{
    size_t a = qat_memory_available();
    cr_assert_gt(a, (size_t)16 << 20, "less than 16 MiB available? %zu", a);
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    cr_assert_leq(a, (size_t)pages * (size_t)psz, "more available than physical memory");
}

/* ---- through qat-train (part of the catalogue) -------------------------------- */

TestSuite(bad_limits, .init = rb_setup, .fini = rb_teardown, .timeout = 120);

Test(bad_limits, activations_larger_than_the_machine)
{
    /* 28 x 28 x 65536 floats per image, and their gradients, for 3000
     * images: over a terabyte */
    rb_printf("c.ini",
              "[data]\ndir = %s\n[train]\nbatch_size = 3000\nthreads = 1\n[layer.c]\n"
              "type = conv2d\nout_channels = 65536\nkernel = 3\npadding = 1\n[layer.p]\n"
              "type = maxpool2d\nkernel = 28\n[layer.flatten]\ntype = flatten\n[layer.fc]\n"
              "type = linear\nout_features = 10\n",
              rb_src("datasets/mnist-subset"));
    RB_EXPECT_BAD("qat-train", RB_ARGS(rb_path("c.ini"), "--out", rb_path("run"), "--quiet"),
                  "c.ini:6: [layer.c]", "needs at least", "GiB", "batch_size = 3000",
                  "51380224 values per image");
}

Test(bad_limits, parameters_larger_than_the_machine)
{
    /* 784 -> 2^20 -> 2^11 -> 10: 3 * 10^9 weights, 56 GiB with gradients,
     * effective weights and two Adam moments. Refused by the memory check,
     * or on a machine that big by the 2^31-parameter limit: never built. */
    rb_printf("c.ini",
              "[data]\ndir = %s\ntrain_limit = 64\ntest_limit = 64\n[train]\nbatch_size = 1\n"
              "threads = 1\n[layer.flatten]\ntype = flatten\n[layer.fc1]\ntype = linear\n"
              "out_features = 1048576\n[layer.fc2]\ntype = linear\nout_features = 2048\n"
              "[layer.fc3]\ntype = linear\nout_features = 10\n",
              rb_src("datasets/mnist-subset"));
    int code = rb_run("qat-train", RB_ARGS(rb_path("c.ini"), "--out", rb_path("run"), "--quiet"));
    cr_assert_eq(code, 2, "%s", rb_err);
    cr_assert_not_null(strstr(rb_err, "c.ini"), "%s", rb_err);
    cr_assert_not_null(strstr(rb_err, "parameters"), "%s", rb_err);
}
