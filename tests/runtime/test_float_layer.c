/* Float layers (FORMAT.md §11, ARITHMETIC.md §7) in the runtime: the
 * synthetic CNN with chosen layers in float32 against an independent oracle
 * on every kernel path, thread count and batch split; float logits; and the
 * description checks a float layer adds. */
#include <criterion/criterion.h>
#include <math.h>

#include "float_fixture.h"
#include "qat/runtime.h"

static const char *const isas[] = {"ref", "avx2", "avx512vnni", "neon-plain", "neon-dot"};

#define N_IMG 23

/* Runs m on every available path with 1..3 threads and batches that split
 * images and layers; every result must equal the oracle's bytes. */
static void check_against_oracle(fx_model *fx, int float_logits)
{
    const qat_rt_model_desc *d = &fx->desc;
    size_t isz = (size_t)d->in_h * d->in_w * d->in_c;
    int C = d->num_classes;
    uint8_t *px = malloc(N_IMG * isz);
    fx_images(99, px, N_IMG * isz);
    int8_t *want = malloc((size_t)N_IMG * C), *got = malloc((size_t)N_IMG * C);
    float *fwant = malloc((size_t)N_IMG * C * sizeof(float));
    float *fgot = malloc((size_t)N_IMG * C * sizeof(float));
    for (int i = 0; i < N_IMG; i++)
        cr_assert_eq(fx_oracle_f(fx, px + i * isz, want + (size_t)i * C,
                                 float_logits ? fwant + (size_t)i * C : NULL),
                     0);
    qat_error e;
    int paths = 0;
    for (int k = 0; k < 5; k++) {
        qat_rt_model *rm;
        qat_status st = qat_rt_model_create_isa(d, isas[k], &rm, &e);
        if (st == QAT_EUNSUPPORTED || (st == QAT_EINVAL && k > 0))
            continue;
        cr_assert_eq(st, QAT_OK, "%s: %s", isas[k], e.msg);
        cr_assert_eq(qat_rt_model_float_logits(rm), float_logits);
        paths++;
        for (int threads = 1; threads <= 3; threads++)
            for (int batch = 1; batch <= N_IMG; batch += 11) {
                qat_rt_options o = {.threads = threads, .max_batch = batch};
                qat_rt_session *s;
                cr_assert_eq(qat_rt_session_create(rm, &o, &s, &e), QAT_OK, "%s", e.msg);
                for (int i = 0; i < N_IMG; i += batch) {
                    int n = N_IMG - i < batch ? N_IMG - i : batch;
                    if (float_logits) {
                        cr_assert_eq(qat_rt_run(s, px + i * isz, n, got, &e), QAT_EINVAL);
                        cr_assert(strstr(e.msg, "float"), "%s", e.msg);
                        cr_assert_eq(qat_rt_run_logits(s, px + i * isz, n, fgot + (size_t)i * C,
                                                       &e),
                                     QAT_OK, "%s", e.msg);
                    } else {
                        cr_assert_eq(qat_rt_run(s, px + i * isz, n, got + (size_t)i * C, &e),
                                     QAT_OK, "%s", e.msg);
                    }
                }
                if (float_logits)
                    cr_assert(memcmp(fgot, fwant, (size_t)N_IMG * C * sizeof(float)) == 0,
                              "%s, %d threads, batch %d: float logits differ from the oracle",
                              isas[k], threads, batch);
                else
                    cr_assert(memcmp(got, want, (size_t)N_IMG * C) == 0,
                              "%s, %d threads, batch %d: logits differ from the oracle",
                              isas[k], threads, batch);
                qat_rt_session_destroy(s);
            }
        qat_rt_model_destroy(rm);
    }
    cr_assert_geq(paths, 1);
    free(px);
    free(want);
    free(got);
    free(fwant);
    free(fgot);
}

/* conv1 (3x3, pad 1, relu) and fc float: float logits */
Test(float_layer, first_and_last_float_match_the_oracle_on_every_path)
{
    fx_model fx;
    fx_float f;
    fx_build_cnn(&fx, 17, 4);
    fx_floatize(&fx, &f, 1u << 0 | 1u << 5);
    cr_assert_eq(fx.layers[0].float_act, QAT_RT_FLOAT_ACT_RELU);
    check_against_oracle(&fx, 1);
    fx_float_free(&f);
    fx_free(&fx);
}

/* conv2 (stride 2, pad 1) float between integer layers: its output is
 * quantized for the pool and fc after it */
Test(float_layer, a_middle_float_layer_feeds_integer_layers)
{
    fx_model fx;
    fx_float f;
    fx_build_cnn(&fx, 23, 8);
    fx_floatize(&fx, &f, 1u << 2);
    check_against_oracle(&fx, 0);
    /* the pool after a float conv is not fused into it: relu6 clamps too */
    fx.layers[2].float_act = QAT_RT_FLOAT_ACT_RELU6;
    check_against_oracle(&fx, 0);
    fx_float_free(&f);
    fx_free(&fx);
}

Test(float_layer, int8_models_give_dequantized_float_logits)
{
    fx_model fx;
    fx_build_cnn(&fx, 5, 8);
    qat_error e;
    qat_rt_model *rm;
    cr_assert_eq(qat_rt_model_create(&fx.desc, &rm, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(qat_rt_model_float_logits(rm), 0);
    uint8_t px[3 * 13 * 11];
    fx_images(3, px, sizeof px);
    int8_t q[30];
    float f[30], want[30];
    qat_rt_options o = {.threads = 2, .max_batch = 3};
    qat_rt_session *s;
    cr_assert_eq(qat_rt_session_create(rm, &o, &s, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(qat_rt_run(s, px, 3, q, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(qat_rt_run_logits(s, px, 3, f, &e), QAT_OK, "%s", e.msg);
    qat_rt_dequantize_logits(rm, q, 3, want);
    cr_assert(memcmp(f, want, sizeof f) == 0);
    cr_assert_eq(qat_rt_run_logits(s, px, 3, NULL, &e), QAT_EINVAL);
    cr_assert_eq(qat_rt_run_float_logits(s, NULL, 3, f, &e), QAT_EINVAL);
    const float row[4] = {0.5f, 2.0f, 2.0f, -1.0f};
    cr_assert_eq(qat_rt_argmax_f32(row, 4), 1, "ties go to the lowest index");
    qat_rt_session_destroy(s);
    qat_rt_model_destroy(rm);
    fx_free(&fx);
}

/* ---- what validation refuses ---- */

static void expect_invalid(const qat_rt_model_desc *d, const char *want)
{
    qat_error e;
    cr_assert_eq(qat_rt_model_validate(d, &e), QAT_EINVAL, "accepted; expected '%s'", want);
    cr_assert(strstr(e.msg, want), "message '%s' lacks '%s'", e.msg, want);
}

Test(float_layer, non_finite_float_weights_and_biases_are_refused)
{
    fx_model fx;
    fx_float f;
    fx_build_cnn(&fx, 17, 4);
    fx_floatize(&fx, &f, 1u << 2);
    float keep = f.w[2][40];
    f.w[2][40] = NAN;
    expect_invalid(&fx.desc, "layer 2 'conv2': float_weights[40] (channel 0): expected finite");
    f.w[2][40] = INFINITY;
    expect_invalid(&fx.desc, "float_weights[40]");
    f.w[2][40] = keep;
    f.b[2][5] = -INFINITY;
    expect_invalid(&fx.desc, "layer 2 'conv2': float_bias[5]: expected finite, found -inf");
    f.b[2][5] = 0.0f;
    fx.layers[2].float_bias = NULL;
    expect_invalid(&fx.desc, "float_bias: missing (NULL)");
    fx.layers[2].float_bias = f.b[2];
    fx.layers[2].float_act = (qat_rt_float_act)3;
    expect_invalid(&fx.desc, "float_act: expected none(0), relu(1) or relu6(2), found 3");
    fx.layers[2].float_act = QAT_RT_FLOAT_ACT_NONE;
    fx.layers[2].act_min = 100;
    fx.layers[2].act_max = 50;
    expect_invalid(&fx.desc, "act_min: expected <= act_max 50, found 100");
    fx.layers[2].act_min = -128;
    fx.layers[2].act_max = 127;
    qat_error e;
    cr_assert_eq(qat_rt_model_validate(&fx.desc, &e), QAT_OK, "%s", e.msg);
    fx.desc.version = 2;
    expect_invalid(&fx.desc, "is_float: a float layer needs format version 3, the model says 2");
    fx.desc.version = 3;
    fx.layers[1].is_float = 1; /* the max pool */
    expect_invalid(&fx.desc, "is_float: expected 0, or 1 on a conv2d / linear layer, found 1 on "
                             "maxpool2d");
    fx.layers[1].is_float = 0;
    fx.layers[2].is_float = 2;
    expect_invalid(&fx.desc, "is_float: expected 0, or 1");
    fx.layers[2].is_float = 1;
    fx_float_free(&f);
    fx_free(&fx);
}

Test(float_layer, a_grouped_float_conv_is_refused)
{
    fx_model fx;
    fx_float f;
    fx_build_graph(&fx, 7, 8); /* has grouped and depthwise convs */
    int g = -1;
    for (int i = 0; i < fx.desc.num_layers && g < 0; i++)
        if (fx.layers[i].op == QAT_RT_CONV2D && fx.layers[i].groups > 1)
            g = i;
    cr_assert_geq(g, 0);
    fx_floatize(&fx, &f, 0);
    static float w[1 << 16], b[1024];
    fx.layers[g].is_float = 1;
    fx.layers[g].float_weights = w;
    fx.layers[g].float_bias = b;
    expect_invalid(&fx.desc, "groups: a float layer expects 1");
    fx_float_free(&f);
    fx_free(&fx);
}
