/* Batch-norm folding: the folded layer equals conv + BN in evaluation, and
 * degenerate channels (zero variance, zero gamma) never make NaN or Inf. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model_internal.h"
#include "qat/ops.h"
#include "qat/train.h"

static const char *cnn_bn =
    "[model]\ninput_height=9\ninput_width=7\nnum_classes=3\n"
    "[layer.conv1]\ntype=conv2d\nout_channels=5\nkernel=3\npadding=1\nbatchnorm=true\nactivation=relu\n"
    "[layer.flat]\ntype=flatten\n"
    "[layer.fc]\ntype=linear\nout_features=3\nbatchnorm=true\n";

static qat_model *build(const char *extra)
{
    char text[2048];
    snprintf(text, sizeof text, "%s%s", cnn_bn, extra);
    qat_config *c = malloc(sizeof *c);
    qat_error e;
    cr_assert_eq(qat_config_parse(text, strlen(text), "bn.ini", NULL, 0, c, &e), QAT_OK, "%s", e.msg);
    qat_model *m;
    cr_assert_eq(qat_model_create(c, &m, &e), QAT_OK, "%s", e.msg);
    free(c);
    return m;
}

static void randomise_bn(qat_model *m, qat_rng *r)
{
    for (int i = 0; i < qat_model_num_layers(m); i++) {
        qat_layer *l = qat_model_layer(m, i);
        if (!l->gamma.data)
            continue;
        for (int c = 0; c < l->out_c; c++) {
            l->gamma.data[c] = 0.5f + qat_rng_uniform(r);
            l->beta.data[c] = qat_rng_normal(r) * 0.3f;
            l->running_mean[c] = qat_rng_normal(r) * 0.2f;
            l->running_var[c] = 0.1f + qat_rng_uniform(r);
        }
    }
}

Test(bnfold, folded_layer_equals_conv_plus_bn_in_eval)
{
    qat_model *m = build("[quant]\nenabled=false\n");
    qat_rng r;
    qat_rng_seed(&r, 5, 0);
    randomise_bn(m, &r);
    qat_tape *t;
    qat_tape_create(NULL, &t, NULL);
    qat_tape_set_training(t, 0);
    qat_tape_set_grad_enabled(t, 0);
    int xs[4] = {2, 9, 7, 1};
    qat_tensor *x = qat_tape_tensor(t, 4, xs);
    for (size_t i = 0; i < x->numel; i++)
        x->data[i] = qat_rng_uniform(&r);
    qat_layer *l = qat_model_layer(m, 0);
    qat_conv2d_params p = {1, 1, 1, 1};
    qat_tensor *w, *b;
    qat_layer_pre_bn(m, t, l, &w, &b);
    qat_tensor *ref = qat_op_batchnorm(t, qat_op_conv2d(t, x, w, b, &p), &l->gamma, &l->beta,
                                       l->running_mean, l->running_var, 0.1f, l->cfg->bn_eps);
    qat_layer_effective(m, t, l, &w, &b);
    qat_tensor *fold = qat_op_conv2d(t, x, w, b, &p);
    for (size_t i = 0; i < ref->numel; i++)
        cr_assert_float_eq(fold->data[i], ref->data[i], 1e-5 * (1 + fabsf(ref->data[i])),
                           "i=%zu folded %g unfolded %g", i, fold->data[i], ref->data[i]);
    qat_tape_destroy(t);
    qat_model_destroy(m);
}

/* Trains a few QAT steps with batch statistics, then evaluates and exports:
 * a zero-variance channel and a zero-gamma channel must stay finite and the
 * integer model must still agree with the simulation. */
Test(bnfold, zero_variance_and_zero_gamma_never_make_nan)
{
    const char *extra[] = {"", "[quant]\nlearn_scale=true\n", "[quant]\nfreeze_bn_epoch=1\n"};
    for (int v = 0; v < 3; v++) {
        qat_model *m = build(extra[v]);
        qat_layer *l = qat_model_layer(m, 0);
        l->gamma.data[1] = 0.0f;       /* zero gamma */
        l->running_var[2] = 0.0f;      /* zero running variance */
        for (int k = 0; k < 9; k++)    /* a filter that always outputs its bias: */
            l->w.data[3 * 9 + k] = 0.0f; /* zero batch variance */
        qat_tape *t;
        qat_tape_create(NULL, &t, NULL);
        uint8_t img[4 * 63], lab[4] = {0, 1, 2, 0};
        for (int i = 0; i < 4 * 63; i++)
            img[i] = (uint8_t)(i * 29);
        size_t np;
        float *params = qat_model_params(m, &np), *grads = qat_model_grads(m, &np);
        qat_model_set_bn_frozen(m, v == 2);
        for (int step = 0; step < 5; step++) {
            memset(grads, 0, np * sizeof(float));
            qat_tape_reset(t);
            qat_tape_set_training(t, 1);
            qat_tensor *y = qat_model_forward(m, t, img, 4);
            qat_tensor *loss = qat_op_softmax_cross_entropy(t, y, lab);
            cr_assert(isfinite(loss->data[0]), "variant %d step %d loss %g", v, step, loss->data[0]);
            qat_tape_backward(t, loss);
            for (size_t i = 0; i < np; i++) {
                cr_assert(isfinite(grads[i]), "variant %d: grad %zu is %g", v, i, grads[i]);
                params[i] -= 0.01f * grads[i];
            }
            l->gamma.data[1] = 0.0f;
        }
        qat_tape_reset(t);
        qat_tape_set_training(t, 0);
        qat_tensor *y = qat_model_forward(m, t, img, 4);
        for (size_t i = 0; i < y->numel; i++)
            cr_assert(isfinite(y->data[i]));
        qat_error e;
        cr_assert_eq(qat_model_refresh_qparams(m, &e), QAT_OK, "%s", e.msg);
        for (size_t i = 0; i < (size_t)l->out_c * l->fan_in; i++)
            cr_assert(isfinite(l->w_eff[i]));
        for (int c = 0; c < l->out_c; c++)
            cr_assert(isfinite(l->b_eff[c]));
        for (int k = 0; k < 9; k++)
            cr_assert_eq(l->w_eff[9 + k], 0.0f, "zero gamma folds to zero weights");
        qat_tape_destroy(t);
        qat_model_destroy(m);
    }
}

/* Depthwise and grouped convs fold their batchnorm into per-channel
 * weights the same way: one row of KH*KW*(Cin/groups) weights per output
 * channel. */
Test(bnfold, depthwise_and_grouped_fold_per_output_channel)
{
    static const char *text =
        "[quant]\nenabled=false\n[model]\ninput_height=6\ninput_width=5\nnum_classes=3\n"
        "[layer.c]\ntype=conv2d\nout_channels=4\nkernel=1\n"
        "[layer.dw]\ntype=depthwise_conv2d\nmultiplier=2\nstride=2\npadding=1\nbatchnorm=true\n"
        "[layer.g]\ntype=conv2d\nout_channels=6\ngroups=2\npadding=1\nbatchnorm=true\n"
        "[layer.gap]\ntype=global_avgpool\n[layer.fc]\ntype=linear\nout_features=3\n";
    qat_config *c = malloc(sizeof *c);
    qat_error e;
    cr_assert_eq(qat_config_parse(text, strlen(text), "bn.ini", NULL, 0, c, &e), QAT_OK, "%s", e.msg);
    qat_model *m;
    cr_assert_eq(qat_model_create(c, &m, &e), QAT_OK, "%s", e.msg);
    free(c);
    qat_rng r;
    qat_rng_seed(&r, 9, 0);
    randomise_bn(m, &r);
    qat_tape *t;
    qat_tape_create(NULL, &t, NULL);
    qat_tape_set_training(t, 0);
    qat_tape_set_grad_enabled(t, 0);
    for (int li = 1; li <= 2; li++) {
        qat_layer *l = qat_model_layer(m, li);
        int xs[4] = {2, l->in_h, l->in_w, l->in_c};
        qat_tensor *x = qat_tape_tensor(t, 4, xs);
        for (size_t i = 0; i < x->numel; i++)
            x->data[i] = qat_rng_normal(&r);
        qat_conv2d_params p = {l->stride, l->stride, l->padding, l->padding};
        qat_tensor *w, *b;
        qat_layer_pre_bn(m, t, l, &w, &b);
        qat_tensor *ref =
            qat_op_batchnorm(t, qat_op_conv2d_grouped(t, x, w, b, &p, l->groups), &l->gamma,
                             &l->beta, l->running_mean, l->running_var, 0.1f, l->cfg->bn_eps);
        qat_layer_effective(m, t, l, &w, &b);
        qat_tensor *fold = qat_op_conv2d_grouped(t, x, w, b, &p, l->groups);
        for (size_t i = 0; i < ref->numel; i++)
            cr_assert_float_eq(fold->data[i], ref->data[i], 1e-5 * (1 + fabsf(ref->data[i])),
                               "layer %d i=%zu folded %g unfolded %g", li, i, fold->data[i],
                               ref->data[i]);
    }
    qat_tape_destroy(t);
    qat_model_destroy(m);
}
