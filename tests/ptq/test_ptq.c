/* Post-training quantization on the committed MNIST subset: a float MLP
 * trained once per test, then quantized with each compensation; what every
 * step reports must hold (the export side is tests/e2e's). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/tmpdir.h"
#include "qat/fixedpoint.h"
#include "qat/ptq.h"
#include "qat/run.h"

static char dir[64];

static void setup(void)
{
    tc_tmpdir(dir, sizeof dir, "qat-ptq");
}

static void load(const char *config, const char *const *extra, int nextra, qat_config *cfg)
{
    const char *root = getenv("QAT_SOURCE_ROOT");
    cr_assert_not_null(root, "run through meson test");
    char path[1024], data[1024];
    snprintf(path, sizeof path, "%s/%s", root, config);
    snprintf(data, sizeof data, "data.dir=%s/datasets/mnist-subset", root);
    const char *sets[24] = {data, "train.progress=false", "train.threads=2", "train.epochs=1",
                            "data.train_limit=1500", "data.test_limit=500"};
    int n = 6;
    for (int i = 0; i < nextra; i++)
        sets[n++] = extra[i];
    qat_error e;
    cr_assert_eq(qat_config_load(path, sets, n, cfg, &e), QAT_OK, "%s", e.msg);
}

/* Trains the float model of config into dir/float. */
static void train_float(const char *config, const char *const *extra, int nextra)
{
    qat_config *cfg = malloc(sizeof *cfg);
    const char *sets[16] = {"quant.enabled=false"};
    for (int i = 0; i < nextra; i++)
        sets[i + 1] = extra[i];
    load(config, sets, nextra + 1, cfg);
    char out[128];
    snprintf(out, sizeof out, "%s/float", dir);
    qat_train_opts o = {.out_dir = out, .quiet = 1};
    qat_error e;
    cr_assert_eq(qat_run(cfg, &o, &e), QAT_OK, "%s", e.msg);
    free(cfg);
}

/* qat_train in mode = ptq from dir/float, then qat_ptq; returns the run
 * (the caller ends it) and fills rep. */
static qat_trained *ptq(const char *config, const char *const *extra, int nextra,
                        qat_ptq_report *rep, qat_config *cfg)
{
    char init[128];
    snprintf(init, sizeof init, "train.init=%s/float/checkpoint.h5", dir);
    const char *sets[20] = {"train.mode=ptq", init, "ptq.calibration_images=500"};
    for (int i = 0; i < nextra; i++)
        sets[i + 3] = extra[i];
    load(config, sets, nextra + 3, cfg);
    char out[128];
    snprintf(out, sizeof out, "%s/ptq", dir);
    qat_train_opts o = {.out_dir = out, .quiet = 1};
    qat_error e;
    qat_trained *t;
    cr_assert_eq(qat_train(cfg, &o, &t, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(qat_ptq(t, NULL, rep, &e), QAT_OK, "%s", e.msg);
    return t;
}

static double accuracy(qat_trained *t)
{
    qat_model_set_quant_active(t->model, 1);
    return qat_evaluate(t->model, t->tape, t->test, 250, NULL);
}

TestSuite(ptq, .init = setup, .timeout = 240);

Test(ptq, calibration_alone_sets_every_observer)
{
    train_float("configs/mnist_mlp.ini", NULL, 0);
    qat_config *cfg = malloc(sizeof *cfg);
    qat_ptq_report rep;
    qat_trained *t = ptq("configs/mnist_mlp.ini", NULL, 0, &rep, cfg);
    cr_assert_eq(rep.calibration_images, 500);
    cr_assert_eq(rep.nlayers, 2);
    for (int i = 0; i < qat_model_num_layers(t->model); i++) {
        qat_layer *l = qat_model_layer(t->model, i);
        if (l->type == QAT_LAYER_LINEAR)
            cr_assert(l->q.act_obs.initialized, "layer %s", l->cfg->name);
    }
    cr_assert(isnan(rep.layers[0].bias_error_before), "no compensation asked for");
    cr_assert_gt(accuracy(t), 0.6);
    qat_train_end(t);
    free(cfg);
}

/* 3-bit per-tensor weights round with a visible bias: after the
 * correction the mean output difference must nearly vanish. */
Test(ptq, bias_correction_removes_the_mean_output_error)
{
    train_float("configs/mnist_mlp.ini", NULL, 0);
    qat_config *cfg = malloc(sizeof *cfg);
    qat_ptq_report rep;
    const char *x[] = {"quant.weight_bits=3", "quant.weight_granularity=per_tensor",
                       "ptq.bias_correction=true"};
    qat_trained *t = ptq("configs/mnist_mlp.ini", x, 3, &rep, cfg);
    for (int k = 0; k < rep.nlayers; k++) {
        const qat_ptq_layer_report *l = &rep.layers[k];
        cr_assert(l->bias_corrected, "%s", l->name);
        cr_assert_gt(l->bias_error_before, 1e-3, "%s: a visible bias to start from", l->name);
        cr_assert_lt(l->bias_error_after, 0.1 * l->bias_error_before, "%s: %g -> %g", l->name,
                     l->bias_error_before, l->bias_error_after);
    }
    qat_train_end(t);
    free(cfg);
}

Test(ptq, adaround_beats_nearest_and_its_codes_are_the_weights_codes)
{
    train_float("configs/mnist_mlp.ini", NULL, 0);
    qat_config *cfg = malloc(sizeof *cfg);
    qat_ptq_report rep;
    const char *x[] = {"quant.weight_bits=3", "quant.weight_scheme=asymmetric",
                       "ptq.adaround=true", "ptq.adaround_iterations=150"};
    qat_trained *t = ptq("configs/mnist_mlp.ini", x, 4, &rep, cfg);
    long flipped = 0;
    for (int k = 0; k < rep.nlayers; k++) {
        const qat_ptq_layer_report *l = &rep.layers[k];
        cr_assert_lt(l->round_error_learned, l->round_error_nearest, "%s: %g vs %g", l->name,
                     l->round_error_learned, l->round_error_nearest);
        cr_assert_eq(l->codes_mismatched, 0, "%s: the written weights give other codes", l->name);
        flipped += l->codes_flipped;
    }
    cr_assert_gt(flipped, 100);
    qat_train_end(t);
    free(cfg);
}

/* The squared quantization error of every conv/linear layer's effective
 * weights at the scales the model uses now. */
static double weight_error(qat_model *m)
{
    qat_error e;
    cr_assert_eq(qat_model_refresh_qparams(m, &e), QAT_OK, "%s", e.msg);
    double s = 0;
    for (int i = 0; i < qat_model_num_layers(m); i++) {
        qat_layer *l = qat_model_layer(m, i);
        if (l->type != QAT_LAYER_LINEAR && l->type != QAT_LAYER_CONV2D)
            continue;
        for (size_t k = 0; k < l->w.numel; k++) {
            int c = (int)(k / l->fan_in);
            int32_t q = qat_fp_quantize(l->w_eff[k], l->q.w_scale[c], l->q.w_zp[c], l->q.wqmin,
                                        l->q.wqmax);
            double d = l->w_eff[k] - l->q.w_scale[c] * (float)(q - l->q.w_zp[c]);
            s += d * d;
        }
    }
    return s;
}

Test(ptq, mse_clipping_quantizes_the_weights_closer_than_minmax)
{
    train_float("configs/mnist_mlp.ini", NULL, 0);
    double err[2];
    for (int k = 0; k < 2; k++) {
        qat_config *cfg = malloc(sizeof *cfg);
        qat_ptq_report rep;
        const char *x[] = {"quant.weight_bits=2",
                           k ? "quant.weight_observer=mse" : "quant.weight_observer=minmax",
                           k ? "quant.activation_observer=mse" : "quant.activation_observer=ema"};
        qat_trained *t = ptq("configs/mnist_mlp.ini", x, 3, &rep, cfg);
        err[k] = weight_error(t->model);
        cr_assert_gt(accuracy(t), 0.3, "still a classifier");
        qat_train_end(t);
        free(cfg);
    }
    cr_assert_lt(err[1], 0.9 * err[0], "mse %g vs minmax %g", err[1], err[0]);
}

Test(ptq, bn_reestimate_refreshes_the_statistics_of_a_qat_checkpoint)
{
    /* a QAT-trained model with batchnorm: its statistics are recomputed on
     * the quantized model, and the result still classifies */
    const char *bn[] = {"layer.fc1.batchnorm=true", "quant.enabled=true"};
    qat_config *cfg = malloc(sizeof *cfg);
    load("configs/mnist_mlp.ini", bn, 2, cfg);
    char out[128];
    snprintf(out, sizeof out, "%s/float", dir); /* ptq() reads from there */
    qat_train_opts o = {.out_dir = out, .quiet = 1};
    qat_error e;
    cr_assert_eq(qat_run(cfg, &o, &e), QAT_OK, "%s", e.msg);
    qat_ptq_report rep;
    const char *x[] = {"layer.fc1.batchnorm=true", "ptq.bn_reestimate=true"};
    qat_trained *t = ptq("configs/mnist_mlp.ini", x, 2, &rep, cfg);
    cr_assert_eq(rep.bn_layers_reestimated, 1);
    qat_layer *fc1 = NULL;
    for (int i = 0; i < qat_model_num_layers(t->model); i++)
        if (strcmp(qat_model_layer(t->model, i)->cfg->name, "fc1") == 0)
            fc1 = qat_model_layer(t->model, i);
    cr_assert_not_null(fc1);
    for (int c = 0; c < fc1->out_c; c++)
        cr_assert(isfinite(fc1->running_mean[c]) && fc1->running_var[c] >= 0.0f);
    cr_assert_gt(accuracy(t), 0.6);
    qat_train_end(t);
    free(cfg);
}

Test(ptq, more_calibration_images_than_training_images_is_an_error)
{
    train_float("configs/mnist_mlp.ini", NULL, 0);
    qat_config *cfg = malloc(sizeof *cfg);
    char init[128];
    snprintf(init, sizeof init, "train.init=%s/float/checkpoint.h5", dir);
    const char *x[] = {"train.mode=ptq", init, "ptq.calibration_images=2000"};
    load("configs/mnist_mlp.ini", x, 3, cfg);
    char out[128];
    snprintf(out, sizeof out, "%s/ptq", dir);
    qat_train_opts o = {.out_dir = out, .quiet = 1};
    qat_error e;
    qat_trained *t;
    cr_assert_eq(qat_train(cfg, &o, &t, &e), QAT_OK, "%s", e.msg);
    qat_ptq_report rep;
    cr_assert_eq(qat_ptq(t, NULL, &rep, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "[ptq] calibration_images = 2000"), "%s", e.msg);
    cr_assert(strstr(e.msg, "1500 images"), "%s", e.msg);
    qat_train_end(t);
    free(cfg);
}
