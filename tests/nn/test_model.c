/* Model construction: shapes, parameter layout, config-located shape errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qat/nn.h"
#include "qat/ops.h"

static qat_status build(const char *text, qat_model **m, qat_error *e)
{
    qat_config *c = malloc(sizeof *c);
    qat_status st = qat_config_parse(text, strlen(text), "m.ini", NULL, 0, c, e);
    if (st == QAT_OK)
        st = qat_model_create(c, m, e);
    free(c);
    return st;
}

static const char *cnn =
    "[layer.conv1]\ntype=conv2d\nout_channels=32\nkernel=3\npadding=1\nactivation=relu\n"
    "[layer.pool1]\ntype=maxpool2d\nkernel=2\n"
    "[layer.conv2]\ntype=conv2d\nout_channels=64\nkernel=3\npadding=1\nactivation=relu\n"
    "[layer.pool2]\ntype=maxpool2d\nkernel=2\n"
    "[layer.flat]\ntype=flatten\n"
    "[layer.fc1]\ntype=linear\nin_features=3136\nout_features=128\nactivation=relu\n"
    "[layer.fc2]\ntype=linear\nout_features=10\n";

Test(model, cnn_shapes_and_parameter_layout)
{
    qat_model *m;
    qat_error e;
    cr_assert_eq(build(cnn, &m, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(qat_model_num_layers(m), 7);
    qat_layer *l = qat_model_layer(m, 2);
    cr_assert(l->in_h == 14 && l->in_w == 14 && l->in_c == 32);
    cr_assert(l->out_h == 14 && l->out_c == 64);
    cr_assert_eq(l->fan_in, 288u);
    cr_assert_eq(qat_model_layer(m, 4)->out_c, 3136);
    size_t np;
    qat_model_params(m, &np);
    size_t expect = 32 * 9 + 32 + 64 * 288 + 64 + 128 * 3136 + 128 + 10 * 128 + 10;
    cr_assert_eq(np, expect);
    /* segments tile the buffer; only weights decay */
    int ns;
    const qat_param_seg *s = qat_model_segments(m, &ns);
    size_t covered = 0;
    for (int i = 0; i < ns; i++) {
        cr_assert_eq(s[i].offset, covered);
        covered += s[i].count;
        cr_assert_eq(s[i].decay, i % 2 == 0);
    }
    cr_assert_eq(covered, np);
    /* init bound 1/sqrt(fan_in) */
    l = qat_model_layer(m, 5);
    float bound = 1.0f / sqrtf(3136.0f), mx = 0;
    for (size_t i = 0; i < l->w.numel; i++)
        mx = fmaxf(mx, fabsf(l->w.data[i]));
    cr_assert(mx <= bound && mx > 0.9f * bound);
    qat_model_destroy(m);
}

Test(model, same_seed_same_init)
{
    qat_model *a, *b;
    qat_error e;
    cr_assert_eq(build(cnn, &a, &e), QAT_OK);
    cr_assert_eq(build(cnn, &b, &e), QAT_OK);
    size_t n;
    float *pa = qat_model_params(a, &n), *pb = qat_model_params(b, &n);
    cr_assert_eq(memcmp(pa, pb, n * sizeof(float)), 0);
    qat_model_init(b, 2);
    cr_assert_neq(memcmp(pa, pb, n * sizeof(float)), 0);
    qat_model_destroy(a);
    qat_model_destroy(b);
}

static void expect_shape_error(const char *text, const char *n1, const char *n2)
{
    qat_model *m = NULL;
    qat_error e;
    qat_error_clear(&e);
    cr_assert_eq(build(text, &m, &e), QAT_EINVAL, "expected a shape error: %s", n1);
    cr_assert(strstr(e.msg, n1), "'%s' lacks '%s'", e.msg, n1);
    if (n2)
        cr_assert(strstr(e.msg, n2), "'%s' lacks '%s'", e.msg, n2);
    cr_assert_null(m);
}

Test(model_errors, kernel_larger_than_input)
{
    expect_shape_error("[layer.p]\ntype=maxpool2d\nkernel=8\n[layer.p2]\ntype=maxpool2d\nkernel=8\n"
                       "[layer.f]\ntype=flatten\n[layer.fc]\ntype=linear\nout_features=10\n",
                       "m.ini:4: [layer.p2]", "does not fit its input 3x3x1");
}

Test(model_errors, flatten_feeding_wrong_size)
{
    expect_shape_error("[layer.c]\ntype=conv2d\nout_channels=4\n[layer.f]\ntype=flatten\n"
                       "[layer.fc]\ntype=linear\nin_features=3136\nout_features=10\n",
                       "m.ini:6: [layer.fc]", "in_features = 3136 but the previous layer produces 2704");
}

Test(model_errors, linear_on_images_needs_flatten)
{
    expect_shape_error("[layer.fc]\ntype=linear\nout_features=10\n", "m.ini:1: [layer.fc]",
                       "flatten");
}

Test(model_errors, last_layer_must_give_class_scores)
{
    expect_shape_error("[layer.f]\ntype=flatten\n[layer.fc]\ntype=linear\nout_features=7\n",
                       "m.ini:3: [layer.fc]", "10 class scores");
    expect_shape_error("[layer.f]\ntype=flatten\n[layer.fc]\ntype=linear\nout_features=10\n"
                       "[layer.p]\ntype=dropout\n[layer.x]\ntype=flatten\n",
                       "m.ini:8: [layer.x]", "must end with");
}

Test(model_errors, padding_not_smaller_than_kernel)
{
    expect_shape_error("[layer.c]\ntype=conv2d\nout_channels=4\nkernel=3\npadding=3\n"
                       "[layer.f]\ntype=flatten\n[layer.fc]\ntype=linear\nout_features=10\n",
                       "m.ini:1: [layer.c]", "padding 3");
}

Test(forward, float_and_quant_forward_give_class_scores)
{
    qat_model *m;
    qat_error e;
    cr_assert_eq(build(cnn, &m, &e), QAT_OK);
    qat_tape *t;
    qat_tape_create(NULL, &t, NULL);
    uint8_t img[3 * 784];
    for (int i = 0; i < 3 * 784; i++)
        img[i] = (uint8_t)(i * 37);
    qat_blas_init();
    for (int quant = 0; quant < 2; quant++) {
        qat_model_set_quant_active(m, quant);
        qat_tape_reset(t);
        qat_tape_set_training(t, 1);
        qat_tensor *y = qat_model_forward(m, t, img, 3);
        cr_assert_eq(y->ndim, 2);
        cr_assert(y->shape[0] == 3 && y->shape[1] == 10);
        for (int i = 0; i < 30; i++)
            cr_assert(isfinite(y->data[i]));
    }
    /* after a training-mode forward with quant, observers are warm and
     * quantization can be derived */
    cr_assert_eq(qat_model_refresh_qparams(m, &e), QAT_OK, "%s", e.msg);
    qat_tape_destroy(t);
    qat_model_destroy(m);
}

/* The checkpoint's "state" dataset: per conv/linear layer in order, BN
 * running statistics, then the layer's quant state. Checkpoints written by
 * earlier builds must keep loading, so this layout is pinned here. */
Test(model_state, layout_of_checkpoint_version_1_and_round_trip)
{
    static const char *text =
        "[quant]\nweight_observer=ema\n"
        "[layer.c]\ntype=conv2d\nout_channels=2\nkernel=3\nbatchnorm=true\nlearn_scale=true\n"
        "[layer.f]\ntype=flatten\n"
        "[layer.fc]\ntype=linear\nout_features=10\nweight_granularity=per_tensor\n"
        "weight_observer=minmax\n";
    qat_model *m, *m2;
    qat_error e;
    cr_assert_eq(build(text, &m, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(build(text, &m2, &e), QAT_OK, "%s", e.msg);
    size_t n = qat_model_state_size(m);
    /* conv: BN 2 + 2, observer 3, LSQ 2 + 2, EMA 2 + 2 + 1; fc: observer 3 */
    cr_assert_eq(n, 4 + 3 + 4 + 5 + 3);
    qat_layer *c = qat_model_layer(m, 0), *fc = qat_model_layer(m, 2);
    c->running_mean[1] = 0.5f;
    c->running_var[0] = 2.0f;
    c->q.act_obs = (qat_observer){-1.0f, 3.0f, 1};
    c->q.lsq.initialized = 1;
    c->q.lsq.act_zero_point = -7;
    c->q.lsq.weight_zero_point[1] = 0;
    c->q.w_ema.hi[1] = 0.25f;
    c->q.w_ema.initialized = 1;
    fc->q.act_obs = (qat_observer){-4.0f, 5.0f, 1};
    float s[19];
    qat_model_state_save(m, s);
    const float want[19] = {0, 0.5f, 2.0f, 1, -1, 3, 1, 1, -7, 0, 0, 0, 0, 0, 0.25f, 1, -4, 5, 1};
    cr_assert_eq(memcmp(s, want, sizeof want), 0, "the stored layout moved");
    cr_assert_eq(qat_model_state_load(m2, s, &e), QAT_OK, "%s", e.msg);
    float s2[19];
    qat_model_state_save(m2, s2);
    cr_assert_eq(memcmp(s, s2, sizeof s), 0);
    cr_assert_eq(qat_model_layer(m2, 0)->q.lsq.act_zero_point, -7);
    /* an impossible value names the layer and the field */
    s[18] = 0.5f;
    cr_assert_eq(qat_model_state_load(m2, s, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "layer 'fc': the activation observer's 'initialised' flag is 0.5"),
              "%s", e.msg);
    qat_model_destroy(m);
    qat_model_destroy(m2);
}
