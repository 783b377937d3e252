/* The runtime core against the naive oracle of rt_fixture.h: the example
 * CNN, every weight width 2..8, thread counts, the accumulator at its bound,
 * and the model owning its arrays. Links only the runtime core. */
#include <criterion/criterion.h>

#include "rt_fixture.h"

/* Runs n images through the runtime (threads, max_batch) and the oracle and
 * demands identical codes; returns how many distinct logit codes appeared so
 * callers can insist the comparison was not vacuous. */
static int expect_matches_oracle(const fx_model *fx, int threads, int max_batch, int n,
                                 uint64_t seed)
{
    qat_error e;
    qat_rt_model *m = NULL;
    cr_assert_eq(qat_rt_model_create(&fx->desc, &m, &e), QAT_OK, "%s", e.msg);
    size_t in = qat_rt_model_input_size(m);
    int nc = qat_rt_model_num_classes(m);
    uint8_t *px = malloc((size_t)n * in);
    int8_t *got = malloc((size_t)n * (size_t)nc), *want = malloc((size_t)nc);
    fx_images(seed, px, (size_t)n * in);
    cr_assert_eq(fx_run(m, threads, max_batch, px, n, got, &e), QAT_OK, "%s", e.msg);
    int seen[256] = {0}, distinct = 0;
    for (int b = 0; b < n; b++) {
        cr_assert_eq(fx_oracle(fx, px + (size_t)b * in, want), 0, "oracle accumulator overflow");
        for (int c = 0; c < nc; c++) {
            cr_assert_eq(got[(size_t)b * nc + c], want[c],
                         "image %d class %d: runtime %d, oracle %d (threads %d, batch %d)", b, c,
                         got[(size_t)b * nc + c], want[c], threads, n);
            distinct += !seen[want[c] + 128]++;
        }
    }
    free(px);
    free(got);
    free(want);
    qat_rt_model_destroy(m);
    return distinct;
}

Test(runtime, cnn_matches_oracle_batch_1_and_5)
{
    fx_model fx;
    fx_build_cnn(&fx, 11, 8);
    cr_assert_geq(expect_matches_oracle(&fx, 1, 1, 1, 100), 3);
    cr_assert_geq(expect_matches_oracle(&fx, 1, 5, 5, 101), 5);
    fx_free(&fx);
}

Test(runtime, cnn_matches_oracle_across_chunks_and_threads)
{
    fx_model fx;
    fx_build_cnn(&fx, 12, 8);
    /* 37 images: several chunks per member, ragged last chunk */
    for (int t = 1; t <= 3; t++)
        cr_assert_geq(expect_matches_oracle(&fx, t, 40, 37, 200), 5);
    /* fewer images than threads */
    expect_matches_oracle(&fx, 3, 8, 2, 201);
    fx_free(&fx);
}

Test(runtime, every_weight_width_2_to_8_matches_oracle)
{
    for (int bits = 2; bits <= 8; bits++) {
        fx_model fx;
        fx_build_cnn(&fx, 300 + (uint64_t)bits, bits);
        cr_assert_geq(expect_matches_oracle(&fx, 2, 5, 5, 400 + (uint64_t)bits), 3, "bits %d",
                      bits);
        fx_free(&fx);
    }
}

Test(runtime, nonzero_weight_zero_points_and_narrow_activations)
{
    fx_model fx;
    fx_begin(&fx, 7, 9, 3, 21);
    qat_rt_layer_desc *l = fx_push(&fx, QAT_RT_CONV2D, "conv_zp");
    l->kernel_h = 3;
    l->kernel_w = 2;
    l->stride_h = 2;
    l->stride_w = 3;
    l->pad_h = 2;
    l->pad_w = 1;
    l->out_h = fx_out(7, 3, 2, 2);
    l->out_w = fx_out(9, 2, 3, 1);
    l->out_c = 5;
    fx_fill_weights(&fx, l, 6, 1, 4, 9); /* 6-bit weights, zp spread, 4-bit acts */
    fx_commit(&fx, l);
    fx_flatten(&fx, "flat");
    l = fx_push(&fx, QAT_RT_LINEAR, "fc_zp");
    l->out_h = l->out_w = 1;
    l->out_c = 3;
    fx_fill_weights(&fx, l, 3, 0, 8, 2);
    fx_commit(&fx, l);
    fx_finish(&fx);
    int nonzero = 0;
    for (int c = 0; c < 5; c++)
        nonzero += fx.wzp[0][c] != 0;
    cr_assert_gt(nonzero, 0);
    expect_matches_oracle(&fx, 2, 9, 9, 22);
    fx_free(&fx);
}

Test(runtime, logits_identical_for_threads_1_2_3)
{
    fx_model fx;
    fx_build_cnn(&fx, 13, 4);
    qat_error e;
    qat_rt_model *m;
    cr_assert_eq(qat_rt_model_create(&fx.desc, &m, &e), QAT_OK, "%s", e.msg);
    const int n = 23;
    size_t in = qat_rt_model_input_size(m);
    uint8_t *px = malloc(n * in);
    fx_images(5, px, n * in);
    int8_t ref[23 * 10], got[23 * 10];
    cr_assert_eq(fx_run(m, 1, n, px, n, ref, &e), QAT_OK, "%s", e.msg);
    for (int t = 2; t <= 3; t++) {
        memset(got, 0x55, sizeof got);
        cr_assert_eq(fx_run(m, t, n, px, n, got, &e), QAT_OK, "%s", e.msg);
        cr_assert_arr_eq(got, ref, sizeof ref, "threads %d differ from threads 1", t);
    }
    free(px);
    qat_rt_model_destroy(m);
    fx_free(&fx);
}

Test(runtime, accumulator_at_the_validated_bound_is_exact)
{
    /* K * 255 * 255 + |bias| = 2^31 - 1: the largest accumulator validation
     * accepts, reached with every weight at -128 vs zp 127 (or 127 vs -128)
     * and every pixel at 255. */
    const int K = 33000;
    const int32_t bias_mag = 2147483647 - K * 255 * 255;
    fx_model fx;
    fx_begin(&fx, 1, 1, K, 1);
    qat_rt_layer_desc *l = fx_push(&fx, QAT_RT_LINEAR, "edge");
    l->out_h = l->out_w = 1;
    l->out_c = 2;
    fx_fill_weights(&fx, l, 8, 0, 8, 0);
    for (int i = 0; i < K; i++) {
        fx.w[0][i] = -128;
        fx.w[0][K + i] = 127;
    }
    free(fx.packed[0]);
    l->weights_bytes = fx_pack(fx.w[0], 2 * (size_t)K, 8, &fx.packed[0]);
    l->weights = fx.packed[0];
    fx.wzp[0][0] = 127;
    fx.wzp[0][1] = -128;
    fx.bias[0][0] = -bias_mag;
    fx.bias[0][1] = bias_mag;
    for (int c = 0; c < 2; c++) /* acc / 2^31 * 100: lands inside int8 */
        cr_assert_eq(qat_fp_quantize_multiplier(100.0 / 2147483648.0, &fx.mult[0][c],
                                                &fx.shift[0][c]), 0);
    l->output_zero_point = 0;
    fx_commit(&fx, l);
    fx_finish(&fx);

    qat_error e;
    qat_rt_model *m;
    cr_assert_eq(qat_rt_model_create(&fx.desc, &m, &e), QAT_OK, "%s", e.msg);
    uint8_t *px = malloc(K);
    memset(px, 255, K);
    int8_t got[2], want[2];
    cr_assert_eq(fx_run(m, 1, 1, px, 1, got, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(fx_oracle(&fx, px, want), 0);
    cr_assert_eq(want[0], -100); /* acc = -(2^31 - 1) */
    cr_assert_eq(want[1], 100);
    cr_assert_eq(got[0], want[0]);
    cr_assert_eq(got[1], want[1]);
    /* one more unit of bias and validation must refuse the model */
    fx.bias[0][1] = bias_mag + 1;
    qat_rt_model *bad = NULL;
    cr_assert_eq(qat_rt_model_create(&fx.desc, &bad, &e), QAT_EINVAL);
    cr_assert_null(bad);
    free(px);
    qat_rt_model_destroy(m);
    fx_free(&fx);
}

Test(runtime, model_owns_its_arrays)
{
    fx_model fx;
    fx_build_cnn(&fx, 14, 5);
    qat_error e;
    qat_rt_model *m;
    cr_assert_eq(qat_rt_model_create(&fx.desc, &m, &e), QAT_OK, "%s", e.msg);
    const int n = 4;
    size_t in = qat_rt_model_input_size(m);
    uint8_t px[4 * 13 * 11];
    fx_images(9, px, n * in);
    int8_t want[4 * 10], got[4 * 10];
    for (int b = 0; b < n; b++)
        fx_oracle(&fx, px + b * in, want + b * 10);
    /* scribble over and free everything the description pointed to */
    for (int i = 0; i < fx.desc.num_layers; i++) {
        qat_rt_layer_desc *l = &fx.layers[i];
        if (fx.packed[i])
            memset(fx.packed[i], 0x77, l->weights_bytes);
        if (fx.bias[i]) {
            memset(fx.bias[i], 0x77, (size_t)l->out_c * 4);
            memset(fx.mult[i], 0x77, (size_t)l->out_c * 4);
            memset(fx.shift[i], 0x77, (size_t)l->out_c * 4);
            memset(fx.wzp[i], 0x77, (size_t)l->out_c * 4);
        }
    }
    memset(fx.layers, 0x77, sizeof fx.layers);
    fx_free(&fx);
    cr_assert_eq(fx_run(m, 2, n, px, n, got, &e), QAT_OK, "%s", e.msg);
    cr_assert_arr_eq(got, want, sizeof got);
    qat_rt_model_destroy(m);
}

Test(runtime, accessors_argmax_and_dequantize)
{
    fx_model fx;
    fx_build_cnn(&fx, 15, 8);
    qat_error e;
    qat_rt_model *m;
    cr_assert_eq(qat_rt_model_create(&fx.desc, &m, &e), QAT_OK, "%s", e.msg);
    const qat_rt_layer_desc *last = &fx.layers[fx.desc.num_layers - 1];
    cr_assert_eq(qat_rt_model_num_classes(m), 10);
    cr_assert_eq(qat_rt_model_input_size(m), 13u * 11u);
    cr_assert_eq(qat_rt_model_output_scale(m), last->output_scale);
    cr_assert_eq(qat_rt_model_output_zero_point(m), last->output_zero_point);
    int8_t q[10] = {-128, 127, 5}; /* one row is num_classes (10) codes */
    float f[10];
    qat_rt_dequantize_logits(m, q, 1, f);
    int8_t row[10] = {1, 7, 3, 7, -128, 7, 0, 0, 0, 0};
    float fr[10];
    qat_rt_dequantize_logits(m, row, 1, fr);
    for (int c = 0; c < 10; c++)
        cr_assert_float_eq(fr[c], last->output_scale * (float)(row[c] - last->output_zero_point),
                           0.0f);
    cr_assert_eq(qat_rt_argmax(row, 10), 1, "ties go to the lowest index");
    int8_t all_min[4] = {-128, -128, -128, -128};
    cr_assert_eq(qat_rt_argmax(all_min, 4), 0);
    cr_assert_eq(qat_rt_argmax(q, 3), 1);
    (void)f;
    qat_rt_model_destroy(m);
    fx_free(&fx);
}

Test(runtime, run_checks_batch_bounds)
{
    fx_model fx;
    fx_build_cnn(&fx, 16, 8);
    qat_error e;
    qat_rt_model *m;
    cr_assert_eq(qat_rt_model_create(&fx.desc, &m, &e), QAT_OK, "%s", e.msg);
    qat_rt_options o = {.threads = 2, .max_batch = 3};
    qat_rt_session *s;
    cr_assert_eq(qat_rt_session_create(m, &o, &s, &e), QAT_OK, "%s", e.msg);
    uint8_t px[4 * 13 * 11] = {0};
    int8_t lg[40];
    cr_assert_eq(qat_rt_run(s, px, 4, lg, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "max_batch"), "%s", e.msg);
    cr_assert_eq(qat_rt_run(s, px, -1, lg, &e), QAT_EINVAL);
    cr_assert_eq(qat_rt_run(s, NULL, 0, NULL, &e), QAT_OK);
    cr_assert_eq(qat_rt_run(s, px, 3, lg, &e), QAT_OK, "%s", e.msg);
    qat_rt_session_destroy(s);
    o.threads = 0;
    cr_assert_eq(qat_rt_session_create(m, &o, &s, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "threads"), "%s", e.msg);
    o.threads = 1;
    o.max_batch = 0;
    cr_assert_eq(qat_rt_session_create(m, &o, &s, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "max_batch"), "%s", e.msg);
    qat_rt_model_destroy(m);
    fx_free(&fx);
}

Test(runtime, packing_matches_format_for_every_width)
{
    qat_rng r;
    qat_rng_seed(&r, 77, 0);
    for (int bits = 2; bits <= 8; bits++) {
        for (size_t n = 1; n <= 11; n++) {
            int8_t w[11], back[11];
            for (size_t i = 0; i < n; i++)
                w[i] = (int8_t)(-(1 << (bits - 1)) + (int)qat_rng_below(&r, 1u << bits));
            uint8_t *mine;
            size_t bytes = fx_pack(w, n, bits, &mine);
            cr_assert_eq(qat_rt_packed_weight_bytes(n, bits), bytes, "bits %d n %zu", bits, n);
            uint8_t theirs[11];
            memset(theirs, 0xEE, sizeof theirs);
            qat_rt_pack_weights(w, n, bits, theirs);
            cr_assert_arr_eq(theirs, mine, bytes, "bits %d n %zu", bits, n);
            qat_rt_unpack_weights(mine, n, bits, back);
            cr_assert_arr_eq(back, w, n, "bits %d n %zu", bits, n);
            free(mine);
        }
    }
    /* spot values straight from FORMAT.md's table */
    const int8_t w4[3] = {-1, 3, -8};
    uint8_t p4[2];
    qat_rt_pack_weights(w4, 3, 4, p4);
    cr_assert_eq(p4[0], 0x3F);
    cr_assert_eq(p4[1], 0x08);
    const int8_t w2[5] = {1, -2, -1, 0, -1};
    uint8_t p2[2];
    qat_rt_pack_weights(w2, 5, 2, p2);
    cr_assert_eq(p2[0], 0x39); /* 01 | 10<<2 | 11<<4 | 00<<6 */
    cr_assert_eq(p2[1], 0x03);
    cr_assert_eq(qat_rt_packed_weight_bytes(5, 1), 0u);
    cr_assert_eq(qat_rt_packed_weight_bytes(5, 9), 0u);
}
