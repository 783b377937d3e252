/* The model input: per-channel standardisation folded into the first layer
 * (its folds' gradients, and one value per channel equal to one value for
 * all), and float32 inputs quantized with the runtime's own codes, their
 * statistics kept in the checkpointed state. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../ops/gradcheck_util.h"
#include "nn/model_internal.h"
#include "qat/fixedpoint.h"

typedef struct {
    test_leaf x, w, b;
    float a[3], c[3], *proj;
} fold_ctx;

static qat_tensor *fold_fn(qat_tape *t, void *vctx)
{
    fold_ctx *f = vctx;
    qat_tensor *be = qat_op_fold_bias_cols(t, &f->w.t, &f->b.t, f->c, 3);
    qat_tensor *we = qat_op_scale_cols(t, &f->w.t, f->a, 3);
    return qat_op_dot_const(t, qat_op_linear(t, &f->x.t, we, be), f->proj);
}

Test(input, per_channel_folds_gradcheck)
{
    qat_rng r;
    qat_rng_seed(&r, 4, 1);
    fold_ctx f;
    int xs[2] = {3, 6}, ws[2] = {4, 6}, bs[1] = {4};
    leaf_init(&f.x, &r, 2, xs, 1.0f);
    leaf_init(&f.w, &r, 2, ws, 0.5f);
    leaf_init(&f.b, &r, 1, bs, 0.5f);
    f.proj = random_vec(&r, 12);
    for (int i = 0; i < 3; i++) {
        f.a[i] = 0.5f + (float)i;
        f.c[i] = -0.3f * (float)(i + 1);
    }
    qat_tape *t;
    cr_assert_eq(qat_tape_create(NULL, &t, NULL), QAT_OK);
    qat_tensor *leaves[3] = {&f.x.t, &f.w.t, &f.b.t};
    char where[256];
    double worst = qat_gradcheck(t, fold_fn, &f, leaves, 3, 1e-2, 2e-3, 2e-2, 0, where,
                                 sizeof where);
    cr_assert_leq(worst, 1.0, "%s", where);
    qat_tape_destroy(t);
    leaf_free(&f.x);
    leaf_free(&f.w);
    leaf_free(&f.b);
    free(f.proj);
}

static qat_model *build(const char *model_keys, const char *extra)
{
    char text[2048];
    snprintf(text, sizeof text,
             "[model]\ninput_height=4\ninput_width=3\ninput_channels=3\nnum_classes=2\n%s\n"
             "[quant]\nenabled=%s\n"
             "[layer.conv]\ntype=conv2d\nout_channels=4\nkernel=3\npadding=1\n"
             "[layer.flat]\ntype=flatten\n[layer.fc]\ntype=linear\nout_features=2\n",
             model_keys, extra);
    qat_config *c = malloc(sizeof *c);
    qat_error e;
    cr_assert_eq(qat_config_parse(text, strlen(text), "in.ini", NULL, 0, c, &e), QAT_OK, "%s",
                 e.msg);
    qat_model *m;
    cr_assert_eq(qat_model_create(c, &m, &e), QAT_OK, "%s", e.msg);
    free(c);
    return m;
}

static float *forward_u8(qat_model *m, const uint8_t *img)
{
    qat_tape *t;
    cr_assert_eq(qat_tape_create(NULL, &t, NULL), QAT_OK);
    qat_tape_set_grad_enabled(t, 0);
    qat_tensor *y = qat_model_forward(m, t, img, 2);
    float *out = malloc(4 * sizeof(float));
    memcpy(out, y->data, 4 * sizeof(float));
    qat_tape_destroy(t);
    return out;
}

Test(input, one_value_per_channel_equals_one_value_for_all)
{
    qat_model *a = build("input_mean=0.2\ninput_std=0.5", "false");
    qat_model *b = build("input_mean=0.2, 0.2, 0.2\ninput_std=0.5,0.5,0.5", "false");
    qat_model *c = build("input_mean=0.2, 0.3, 0.2\ninput_std=0.5,0.5,0.5", "false");
    uint8_t img[2 * 36];
    for (int i = 0; i < 72; i++)
        img[i] = (uint8_t)(i * 29);
    float *ya = forward_u8(a, img), *yb = forward_u8(b, img), *yc = forward_u8(c, img);
    for (int i = 0; i < 4; i++) {
        cr_assert_float_eq(ya[i], yb[i], 1e-5, "output %d: %g vs %g", i, ya[i], yb[i]);
        cr_assert(fabsf(ya[i] - yc[i]) > 1e-4, "a different channel mean must show");
    }
    free(ya), free(yb), free(yc);
    qat_model_destroy(a), qat_model_destroy(b), qat_model_destroy(c);
}

Test(input, float_inputs_enter_as_the_runtimes_codes_and_are_checkpointed)
{
    qat_model *m = build("input_type=float32\ninput_mean=auto\ninput_std=auto", "true");
    const qat_model_input *in = qat_model_input_info(m);
    cr_assert(in->is_float && in->stats_from_data && !in->ready);
    float mean[3] = {1, -2, 100}, sd[3] = {0.5f, 2, 40};
    qat_model_set_input_norm(m, mean, sd);
    float x[2 * 36];
    for (int i = 0; i < 72; i++)
        x[i] = mean[i % 3] + sd[i % 3] * (float)((i * 37) % 11 - 5) * 0.4f;
    qat_model_observe_input(m, x, 36);
    qat_model_observe_input(m, x + 36, 36);
    cr_assert(in->ready);
    cr_assert(in->lo < -1.9f && in->hi > 1.9f, "the range of both examples: [%g, %g]", in->lo,
              in->hi);
    qat_tape *t;
    cr_assert_eq(qat_tape_create(NULL, &t, NULL), QAT_OK);
    qat_qparams q;
    qat_tensor *v = qat_model_input_tensor(m, t, x, 1, 2, 1, &q);
    for (int i = 0; i < 72; i++) {
        int c = i % 3;
        int32_t code = qat_fp_quantize(x[i] - in->offset[c], in->step[c], q.zero_point, -128, 127);
        cr_assert_eq(v->data[i], q.scale * (float)(code - q.zero_point), "value %d", i);
        cr_assert_eq(in->step[c], sd[c] * q.scale);
    }
    qat_tape_destroy(t);
    /* the statistics ride in the state: 2C + 2 floats after the layers' */
    size_t n = qat_model_state_size(m);
    float *st = malloc(n * sizeof *st);
    qat_model_state_save(m, st);
    qat_model *m2 = build("input_type=float32\ninput_mean=auto\ninput_std=auto", "true");
    qat_error e;
    cr_assert_eq(qat_model_state_load(m2, st, &e), QAT_OK, "%s", e.msg);
    const qat_model_input *in2 = qat_model_input_info(m2);
    cr_assert(in2->ready);
    cr_assert_eq(memcmp(in2->step, in->step, 3 * sizeof(float)), 0);
    cr_assert_eq(in2->q.zero_point, in->q.zero_point);
    st[n - 3] = -1.0f; /* a std */

    cr_assert_eq(qat_model_state_load(m2, st, &e), QAT_EINVAL);
    cr_assert_not_null(strstr(e.msg, "std"), "%s", e.msg);
    free(st);
    qat_model_destroy(m);
    qat_model_destroy(m2);
}
