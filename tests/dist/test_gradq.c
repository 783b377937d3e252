/* The gradient codec (src/train/gradq.c): sizes, round trips within half a
 * step, the error-feedback residual, unbiased stochastic rounding. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "gradq.h"

#define N 1000

static float g[N], acc[N], res[N];
static uint8_t msg[N * 4 + 64];

static void fill(uint64_t seed)
{
    qat_rng r;
    qat_rng_seed(&r, seed, 1);
    for (int i = 0; i < N; i++)
        g[i] = qat_rng_normal(&r) * (i < N / 2 ? 1e-3f : 1.0f);
}

Test(gradq, bytes_per_bits)
{
    size_t ends[2] = {600, N};
    int bits[] = {32, 8, 4, 2, 1};
    size_t want[] = {N * 4, 8 + 1000, 8 + 500, 8 + 250, 8 + 125};
    for (int k = 0; k < 5; k++) {
        qat_gradq q = {.bits = bits[k], .bucket_end = ends, .nbuckets = 2, .n = N};
        cr_expect_eq(qat_gradq_bytes(&q), want[k], "%d bits: %zu bytes", bits[k],
                     qat_gradq_bytes(&q));
    }
}

Test(gradq, round_trip_within_half_a_step)
{
    fill(1);
    size_t ends[2] = {N / 2, N}; /* one bucket of small values, one of large */
    for (int bits = 2; bits <= 8; bits *= 2) {
        qat_gradq q = {.bits = bits, .bucket_end = ends, .nbuckets = 2, .n = N};
        qat_gradq_encode(&q, g, NULL, NULL, msg);
        memset(acc, 0, sizeof acc);
        qat_gradq_decode_add(&q, msg, acc);
        int s = (1 << (bits - 1)) - 1;
        for (int b = 0; b < 2; b++) {
            float mx = 0;
            for (size_t i = b ? ends[0] : 0; i < ends[b]; i++)
                mx = fmaxf(mx, fabsf(g[i]));
            for (size_t i = b ? ends[0] : 0; i < ends[b]; i++)
                cr_assert_leq(fabsf(acc[i] - g[i]), 0.5f * mx / (float)s * 1.0001f,
                              "%d bits, value %zu: %g -> %g", bits, i, g[i], acc[i]);
        }
    }
    /* 32 bits: exact */
    qat_gradq q = {.bits = 32, .bucket_end = ends, .nbuckets = 2, .n = N};
    qat_gradq_encode(&q, g, NULL, NULL, msg);
    memset(acc, 0, sizeof acc);
    qat_gradq_decode_add(&q, msg, acc);
    cr_assert_eq(memcmp(acc, g, sizeof g), 0);
}

Test(gradq, one_bit_is_sign_times_mean_magnitude)
{
    fill(2);
    size_t ends[1] = {N};
    qat_gradq q = {.bits = 1, .bucket_end = ends, .nbuckets = 1, .n = N};
    qat_gradq_encode(&q, g, NULL, NULL, msg);
    memset(acc, 0, sizeof acc);
    qat_gradq_decode_add(&q, msg, acc);
    double mean = 0;
    for (int i = 0; i < N; i++)
        mean += fabsf(g[i]);
    mean /= N;
    for (int i = 0; i < N; i++)
        cr_assert_float_eq(acc[i], (g[i] >= 0 ? 1 : -1) * (float)mean, 1e-6 * mean);
}

Test(gradq, error_feedback_residual_is_what_was_not_sent)
{
    fill(3);
    size_t ends[1] = {N};
    qat_gradq q = {.bits = 2, .bucket_end = ends, .nbuckets = 1, .n = N};
    memset(res, 0, sizeof res);
    /* residual after one step: g - decoded(g) */
    qat_gradq_encode(&q, g, res, NULL, msg);
    memset(acc, 0, sizeof acc);
    qat_gradq_decode_add(&q, msg, acc);
    for (int i = 0; i < N; i++)
        cr_assert_float_eq(res[i], g[i] - acc[i], 1e-6f, "value %d", i);
    /* over many steps of the same gradient, what was sent averages to it:
     * sent_total = k g - residual_k, and the residual stays bounded */
    static float sent[N];
    memcpy(sent, acc, sizeof sent);
    int K = 200;
    for (int k = 1; k < K; k++) {
        qat_gradq_encode(&q, g, res, NULL, msg);
        qat_gradq_decode_add(&q, msg, sent);
    }
    for (int i = 0; i < N; i++) {
        cr_assert_float_eq(sent[i] + res[i], K * g[i], 1e-3f * (1 + fabsf(K * g[i])), "value %d", i);
        cr_assert_lt(fabsf(sent[i] / K - g[i]), 0.05f, "value %d: mean sent %g vs %g", i,
                     sent[i] / K, g[i]);
    }
    /* without feedback the small half of a 2-bit bucket is never sent */
    qat_gradq_encode(&q, g, NULL, NULL, msg);
    memset(acc, 0, sizeof acc);
    qat_gradq_decode_add(&q, msg, acc);
    int zeros = 0;
    for (int i = 0; i < N / 2; i++)
        zeros += acc[i] == 0.0f;
    cr_assert_eq(zeros, N / 2);
}

Test(gradq, stochastic_rounding_is_unbiased)
{
    size_t ends[1] = {4};
    float v[4] = {0.3f, -0.7f, 1.0f, 0.05f};
    qat_gradq q = {.bits = 2, .stochastic = 1, .bucket_end = ends, .nbuckets = 1, .n = 4};
    qat_rng r;
    qat_rng_seed(&r, 9, 9);
    double sum[4] = {0};
    float out[4];
    int K = 20000;
    for (int k = 0; k < K; k++) {
        memset(out, 0, sizeof out);
        qat_gradq_encode(&q, v, NULL, &r, msg);
        qat_gradq_decode_add(&q, msg, out);
        for (int i = 0; i < 4; i++)
            sum[i] += out[i];
    }
    for (int i = 0; i < 4; i++)
        cr_assert_float_eq(sum[i] / K, v[i], 0.02, "value %d: mean %g vs %g", i, sum[i] / K, v[i]);
}

Test(gradq, l2_scaling_uses_the_norm)
{
    size_t ends[1] = {2};
    float v[2] = {3.0f, -4.0f}; /* norm 5 */
    qat_gradq q = {.bits = 8, .l2 = 1, .bucket_end = ends, .nbuckets = 1, .n = 2};
    qat_gradq_encode(&q, v, NULL, NULL, msg);
    float scale;
    memcpy(&scale, msg, sizeof scale);
    cr_assert_float_eq(scale, 5.0f, 1e-6f);
    float out[2] = {0, 0};
    qat_gradq_decode_add(&q, msg, out);
    cr_assert_float_eq(out[0], 3.0f, 5.0f / 127 / 2 * 1.001f);
    cr_assert_float_eq(out[1], -4.0f, 5.0f / 127 / 2 * 1.001f);
}

/* decode_set is zeroing then decode_add, bit for bit: -0 values become
 * +0, a bucket whose scale is 0 becomes zeros, whatever acc held. */
Test(gradq, decode_set_is_zero_then_add)
{
    static float want[N], got[N];
    size_t ends[3] = {300, 700, N};
    int bits[] = {32, 8, 4, 2, 1};
    for (int k = 0; k < 5; k++) {
        fill(7 + (uint64_t)k);
        g[3] = -0.0f;
        for (size_t i = 300; i < 700; i++) /* a bucket of zeros: scale 0 */
            g[i] = bits[k] == 32 ? -0.0f : 0.0f;
        qat_gradq q = {.bits = bits[k], .bucket_end = ends, .nbuckets = 3, .n = N};
        qat_rng r;
        qat_rng_seed(&r, 3, 3);
        qat_gradq_encode(&q, g, NULL, &r, msg);
        memset(want, 0, sizeof want);
        qat_gradq_decode_add(&q, msg, want);
        for (int i = 0; i < N; i++)
            got[i] = NAN; /* what the buffer held must not matter */
        qat_gradq_decode_set(&q, msg, got);
        cr_assert_eq(memcmp(got, want, sizeof got), 0, "%d bits", bits[k]);
        cr_assert(!signbit(got[3]) && !signbit(got[400]), "%d bits: -0 + 0 is +0", bits[k]);
    }
}
