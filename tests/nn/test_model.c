/* Model construction: shapes, parameter layout, config-located shape errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qat/export.h"
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

/* ---- graph models ----------------------------------------------------------------- */

/* 12x10x1 -> c1 (4) -> dw (x2, BN, relu6) -> pw (groups 2) -> add(c1) ->
 * concat(add, c1) -> gap -> fc */
static const char *graph =
    "[model]\ninput_height=12\ninput_width=10\nnum_classes=3\n"
    "[layer.c1]\ntype=conv2d\nout_channels=4\nkernel=3\npadding=1\nactivation=relu\n"
    "[layer.dw]\ntype=depthwise_conv2d\nmultiplier=2\npadding=1\nbatchnorm=true\nactivation=relu6\n"
    "[layer.pw]\ntype=conv2d\nout_channels=4\nkernel=1\ngroups=2\nbatchnorm=true\n"
    "[layer.sum]\ntype=add\ninputs=pw, c1\nactivation=relu\n"
    "[layer.cat]\ntype=concat\ninputs=sum, c1\n"
    "[layer.gap]\ntype=global_avgpool\n"
    "[layer.fc]\ntype=linear\nout_features=3\n";

Test(graph, shapes_parameters_and_state_layout)
{
    qat_model *m;
    qat_error e;
    cr_assert_eq(build(graph, &m, &e), QAT_OK, "%s", e.msg);
    qat_layer *dw = qat_model_layer(m, 1), *pw = qat_model_layer(m, 2);
    cr_assert(dw->out_c == 8 && dw->groups == 4 && dw->fan_in == 9);
    cr_assert(dw->w.ndim == 4 && dw->w.shape[0] == 8 && dw->w.shape[3] == 1);
    cr_assert(pw->in_c == 8 && pw->groups == 2 && pw->fan_in == 4 && pw->w.shape[3] == 4);
    qat_layer *cat = qat_model_layer(m, 4), *gap = qat_model_layer(m, 5);
    cr_assert(cat->in_c == 8 && cat->out_c == 8 && cat->ninputs == 2);
    cr_assert(gap->out_h == 1 && gap->out_w == 1 && gap->out_c == 8);
    size_t np;
    qat_model_params(m, &np);
    cr_assert_eq(np, (4 * 9 + 4) + (8 * 9 + 8 + 16) + (4 * 4 + 4 + 8) + (3 * 8 + 3));
    /* state: conv/linear as before, in layer order with add, concat and
     * global_avgpool's observers (3 floats each) */
    cr_assert_eq(qat_model_state_size(m), 3 + (16 + 3) + (8 + 3) + 3 + 3 + 3 + 3);
    qat_layer *sum = qat_model_layer(m, 3);
    sum->q.act_obs = (qat_observer){-0.5f, 2.5f, 1};
    float s[46];
    qat_model_state_save(m, s);
    cr_assert(s[33] == -0.5f && s[34] == 2.5f && s[35] == 1.0f, "add's observer follows pw's");
    qat_model *m2;
    cr_assert_eq(build(graph, &m2, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(qat_model_state_load(m2, s, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(qat_model_layer(m2, 3)->q.act_obs.hi, 2.5f);
    s[35] = 2.0f;
    cr_assert_eq(qat_model_state_load(m2, s, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "layer 'sum'"), "%s", e.msg);
    qat_model_destroy(m);
    qat_model_destroy(m2);
}

static qat_model *grad_model;
static uint8_t grad_img[2 * 120];
static const uint8_t grad_lab[2] = {1, 2};

static qat_tensor *model_loss(qat_tape *t, void *v)
{
    (void)v;
    return qat_op_softmax_cross_entropy(t, qat_model_forward(grad_model, t, grad_img, 2), grad_lab);
}

Test(graph, float_gradients_match_finite_differences)
{
    qat_error e;
    /* graph, but c1 without its relu: a weight step moves c1's many
     * near-zero outputs across the kink, which no finite difference
     * survives (a plain conv-relu-conv chain fails the same way) */
    char text[2048];
    snprintf(text, sizeof text, "[quant]\nenabled=false\n%s", graph);
    char *relu = strstr(text, "activation=relu\n");
    memcpy(relu, "activation=none\n", strlen("activation=none\n"));
    cr_assert_eq(build(text, &grad_model, &e), QAT_OK, "%s", e.msg);
    for (int i = 0; i < 240; i++)
        grad_img[i] = (uint8_t)(i * 53 + 17);
    qat_tape *t;
    qat_tape_create(NULL, &t, NULL);
    qat_tape_set_training(t, 0); /* running BN statistics: a fixed function */
    qat_tensor *leaves[16];
    int n = 0;
    for (int i = 0; i < qat_model_num_layers(grad_model); i++) {
        qat_layer *l = qat_model_layer(grad_model, i);
        if (l->w.data)
            leaves[n++] = &l->w;
        if (l->b.data)
            leaves[n++] = &l->b;
        if (l->gamma.data) {
            leaves[n++] = &l->gamma;
            leaves[n++] = &l->beta;
        }
    }
    char where[256];
    double worst = qat_gradcheck(t, model_loss, NULL, leaves, n, 1e-3, 1e-4, 3e-2, 40, where,
                                 sizeof where);
    cr_assert_leq(worst, 1.0, "%s", where);
    qat_tape_destroy(t);
    qat_model_destroy(grad_model);
}

Test(graph, quantized_training_steps_and_refresh)
{
    qat_model *m;
    qat_error e;
    cr_assert_eq(build(graph, &m, &e), QAT_OK, "%s", e.msg);
    qat_tape *t;
    qat_tape_create(NULL, &t, NULL);
    uint8_t img[4 * 120], lab[4] = {0, 1, 2, 1};
    for (int i = 0; i < 4 * 120; i++)
        img[i] = (uint8_t)(i * 29 + 3);
    size_t np;
    float *params = qat_model_params(m, &np), *grads = qat_model_grads(m, &np);
    for (int step = 0; step < 4; step++) {
        memset(grads, 0, np * sizeof(float));
        qat_tape_reset(t);
        qat_tape_set_training(t, 1);
        qat_tensor *y = qat_model_forward(m, t, img, 4);
        qat_tensor *loss = qat_op_softmax_cross_entropy(t, y, lab);
        cr_assert(isfinite(loss->data[0]));
        qat_tape_backward(t, loss);
        for (size_t i = 0; i < np; i++) {
            cr_assert(isfinite(grads[i]));
            params[i] -= 0.01f * grads[i];
        }
    }
    cr_assert_eq(qat_model_refresh_qparams(m, &e), QAT_OK, "%s", e.msg);
    qat_layer *sum = qat_model_layer(m, 3), *cat = qat_model_layer(m, 4);
    cr_assert(sum->q.act_obs.initialized && sum->q.act_min == sum->q.out.zero_point,
              "add with relu clamps at its zero point");
    cr_assert_eq(sum->q.merge.in[1].scale, qat_model_layer(m, 0)->q.out.scale);
    cr_assert_eq(cat->q.merge.n, 2);
    /* relu6: the top of the clamp is the code of 6 */
    qat_layer *dw = qat_model_layer(m, 1);
    cr_assert_leq(dw->q.act_max, dw->q.out.zero_point + (int32_t)lrintf(6.0f / dw->q.out.scale));
    qat_tape_destroy(t);
    qat_model_destroy(m);
}

Test(graph, standardisation_needs_every_input_path_through_the_first_layer)
{
    char text[1024];
    qat_model *m;
    qat_error e;
    /* reading c1's output twice (after the fold) is fine */
    const char *fine = "[model]\ninput_height=6\ninput_width=6\nnum_classes=2\n"
                       "[layer.c1]\ntype=conv2d\nout_channels=1\nkernel=3\npadding=1\n"
                       "[layer.c2]\ntype=conv2d\nout_channels=1\nkernel=3\npadding=1\n"
                       "[layer.sum]\ntype=add\ninputs=c2, c1\n"
                       "[layer.gap]\ntype=global_avgpool\n"
                       "[layer.fc]\ntype=linear\nout_features=2\n";
    cr_assert_eq(build(fine, &m, &e), QAT_OK, "%s", e.msg);
    qat_model_destroy(m);
    /* the add reads the pooled model input around c1, where the
     * standardisation lives */
    const char *around = "[model]\ninput_height=6\ninput_width=6\nnum_classes=2\n%s"
                         "[layer.p]\ntype=maxpool2d\nkernel=1\n"
                         "[layer.c1]\ntype=conv2d\nout_channels=1\nkernel=1\n"
                         "[layer.sum]\ntype=add\ninputs=c1, p\n"
                         "[layer.gap]\ntype=global_avgpool\n"
                         "[layer.fc]\ntype=linear\nout_features=2\n";
    snprintf(text, sizeof text, around, "");
    cr_assert_eq(build(text, &m, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "m.ini:12: [layer.sum] reads 'p', around the first conv/linear "
                            "layer 'c1'"),
              "%s", e.msg);
    snprintf(text, sizeof text, around, "normalize_input=false\n");
    cr_assert_eq(build(text, &m, &e), QAT_OK, "%s", e.msg);
    qat_model_destroy(m);
}

/* Graph models pass the export check (their export and agreement:
 * tests/e2e); channel pruning, whose removal of dead channels follows a
 * chain, is refused for them when the config loads. */
Test(graph, export_check_passes_graphs_and_channel_pruning_stays_refused)
{
    qat_model *m;
    qat_error e;
    cr_assert_eq(build(graph, &m, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(qat_export_check(m, &e), QAT_OK, "%s", e.msg);
    qat_model_destroy(m);
    char text[2048];
    snprintf(text, sizeof text, "%s[prune]\nmethod=channel\ntarget_sparsity=0.5\n", graph);
    cr_assert_eq(build(text, &m, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "[prune] method = channel") && strstr(e.msg, "[layer.dw]"), "%s",
              e.msg);
}
