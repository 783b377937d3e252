/* Quantization parameters, observers, STE masks and the exact output stage. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../ops/gradcheck_util.h"
#include "qat/fixedpoint.h"
#include "qat/quant.h"
#include "qat/rng.h"
#include "qat/team.h"

Test(qparams, ranges_for_every_bit_width)
{
    for (int b = 2; b <= 8; b++) {
        int32_t lo, hi;
        qat_qrange(b, 0, &lo, &hi);
        cr_assert_eq(lo, -(1 << (b - 1)));
        cr_assert_eq(hi, (1 << (b - 1)) - 1);
        qat_qrange(b, 1, &lo, &hi);
        cr_assert_eq(lo, -hi, "restricted range is symmetric");
    }
}

Test(qparams, asymmetric_from_known_ranges)
{
    qat_qparams p = qat_qparams_from_range(0.0f, 2.55f, 8, QAT_SCHEME_ASYMMETRIC);
    cr_assert_float_eq(p.scale, 0.01f, 1e-7);
    cr_assert_eq(p.zero_point, -128, "relu output: zero at the bottom of the range");
    p = qat_qparams_from_range(-0.64f, 1.91f, 8, QAT_SCHEME_ASYMMETRIC);
    cr_assert_float_eq(p.scale, 0.01f, 1e-7);
    cr_assert_eq(p.zero_point, -64); /* -128 - round(-64) */
    p = qat_qparams_from_range(0.5f, 3.0f, 4, QAT_SCHEME_ASYMMETRIC);
    cr_assert_float_eq(p.scale, 3.0f / 15.0f, 1e-7, "range widened to include 0");
    cr_assert_eq(p.zero_point, -8);
    cr_assert_eq(p.qmin, -8);
    cr_assert_eq(p.qmax, 7);
    p = qat_qparams_from_range(-3.0f, -1.0f, 8, QAT_SCHEME_ASYMMETRIC);
    cr_assert_eq(p.zero_point, 127, "all-negative range puts zero at the top");
    p = qat_qparams_from_range(0.0f, 0.0f, 8, QAT_SCHEME_ASYMMETRIC);
    cr_assert_eq(p.scale, FLT_EPSILON, "dead outputs get the scale floor, not 0");
    /* zero is exactly representable */
    qat_rng r;
    qat_rng_seed(&r, 3, 0);
    for (int i = 0; i < 1000; i++) {
        float lo = -10.0f * qat_rng_uniform(&r), hi = 10.0f * qat_rng_uniform(&r);
        int b = 2 + (int)qat_rng_below(&r, 7);
        p = qat_qparams_from_range(lo, hi, b, QAT_SCHEME_ASYMMETRIC);
        cr_assert(p.zero_point >= p.qmin && p.zero_point <= p.qmax);
        cr_assert_eq(qat_fp_quantize(0.0f, p.scale, p.zero_point, p.qmin, p.qmax), p.zero_point);
        /* the ends of the range land within half a step of the ends of the grid */
        cr_assert_leq(fabsf(p.scale * (float)(p.qmin - p.zero_point) - fminf(lo, 0)), p.scale * 0.51f);
    }
}

static void weight_scales(const float *w, int C, size_t k, int bits, int per_channel, int kind,
                          float pct, int scheme, float *scale, int32_t *zp)
{
    float lo[8], hi[8], scratch[64];
    qat_weight_ranges(w, C, k, per_channel, kind, pct, scheme, lo, hi, scratch);
    for (int c = 0; c < C; c++) {
        qat_qparams p = qat_weight_qparams_from_range(lo[per_channel ? c : 0],
                                                      hi[per_channel ? c : 0], bits, scheme);
        scale[c] = p.scale;
        zp[c] = p.zero_point;
    }
}

Test(qparams, symmetric_weight_scales_per_channel_and_per_tensor)
{
    float w[3][4] = {{0.5f, -1.27f, 0.1f, 0.0f}, {0, 0, 0, 0}, {0.07f, 0.02f, -0.01f, 0.0f}};
    float s[3];
    int32_t z[3];
    weight_scales(&w[0][0], 3, 4, 8, 1, QAT_OBS_MINMAX, 100, QAT_SCHEME_SYMMETRIC, s, z);
    cr_assert_float_eq(s[0], 0.01f, 1e-8);
    cr_assert_eq(s[1], 1.0f, "all-zero channel gets a harmless unit scale");
    cr_assert_float_eq(s[2], 0.07f / 127.0f, 1e-9);
    cr_assert(z[0] == 0 && z[1] == 0 && z[2] == 0);
    weight_scales(&w[0][0], 3, 4, 4, 1, QAT_OBS_MINMAX, 100, QAT_SCHEME_SYMMETRIC, s, z);
    cr_assert_float_eq(s[0], 1.27f / 7.0f, 1e-7);
    weight_scales(&w[0][0], 3, 4, 8, 0, QAT_OBS_MINMAX, 100, QAT_SCHEME_SYMMETRIC, s, z);
    cr_assert(s[0] == s[1] && s[1] == s[2], "per tensor: one scale");
    cr_assert_float_eq(s[0], 0.01f, 1e-8);
}

Test(qparams, asymmetric_weights_fit_their_range)
{
    float w[2][4] = {{0.0f, 0.51f, 1.02f, 2.55f}, {-1.0f, -0.5f, 0.2f, 0.3f}};
    float s[2];
    int32_t z[2];
    weight_scales(&w[0][0], 2, 4, 8, 1, QAT_OBS_MINMAX, 100, QAT_SCHEME_ASYMMETRIC, s, z);
    cr_assert_float_eq(s[0], 0.01f, 1e-7);
    cr_assert_eq(z[0], -128, "all-positive row: zero at the bottom");
    cr_assert_float_eq(s[1], 1.3f / 255.0f, 1e-7);
    cr_assert_eq(qat_fp_quantize(0.0f, s[1], z[1], -128, 127), z[1], "0 is exact");
}

Test(observer, percentile_of_weights_clips_outliers)
{
    float w[100];
    for (int i = 0; i < 100; i++)
        w[i] = (float)(i % 2 ? i : -i) / 100.0f; /* |w| = 0.00 .. 0.99 */
    w[7] = 50.0f;                                /* one outlier */
    float lo, hi, scratch[100];
    qat_weight_ranges(w, 1, 100, 1, QAT_OBS_PERCENTILE, 99.0f, QAT_SCHEME_SYMMETRIC, &lo, &hi,
                      scratch);
    cr_assert_float_eq(hi, 0.99f, 1e-6, "the 99th percentile of |w| skips the outlier: %g", hi);
    cr_assert_eq(lo, -hi);
    qat_weight_ranges(w, 1, 100, 1, QAT_OBS_MINMAX, 99.0f, QAT_SCHEME_SYMMETRIC, &lo, &hi, scratch);
    cr_assert_eq(hi, 50.0f);
}

Test(observer, percentile_of_activations_by_histogram)
{
    static float x[10000];
    for (int i = 0; i < 10000; i++)
        x[i] = (float)i / 10000.0f; /* uniform on [0, 1) */
    x[5] = 1000.0f;
    float lo, hi;
    qat_values_range(x, 10000, QAT_OBS_PERCENTILE, 99.0f, &lo, &hi);
    /* 2048 bins over [0, 1000]: the 99th percentile (~0.99) lands within
     * one bin width (0.49) */
    cr_assert(hi > 0.9f && hi < 1.5f, "hi %g", hi);
    cr_assert_eq(lo, 0.0f);
    qat_values_range(x, 10000, QAT_OBS_MINMAX, 99.0f, &lo, &hi);
    cr_assert_eq(hi, 1000.0f);
}

/* sum (x - dequant(quant(x)))^2 with the quantizer's own rounding. */
static double mse_of(const float *x, size_t n, qat_qparams p)
{
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t q = qat_fp_quantize(x[i], p.scale, p.zero_point, p.qmin, p.qmax);
        double d = x[i] - p.scale * (double)(q - p.zero_point);
        e += d * d;
    }
    return e;
}

Test(observer, mse_weight_range_is_the_grids_best_per_channel)
{
    enum { C = 3, K = 257 }; /* a tail the vector lanes do not cover */
    float w[C * K], lo[C], hi[C];
    qat_rng r;
    qat_rng_seed(&r, 5, 1);
    for (int i = 0; i < C * K; i++)
        w[i] = 0.1f * qat_rng_normal(&r);
    w[7] = 1.5f; /* an outlier: clipping it pays off */
    for (int k = 0; k < K; k++)
        w[2 * K + k] = 0.0f; /* a pruned channel */
    qat_weight_ranges_mse(w, C, K, 1, 4, QAT_SCHEME_SYMMETRIC, lo, hi);
    cr_assert_eq(lo[2], 0.0f);
    cr_assert_eq(hi[2], 0.0f);
    for (int c = 0; c < 2; c++) {
        const float *row = w + c * K;
        float a = 0, b = 0;
        for (int k = 0; k < K; k++) {
            a = fminf(a, row[k]);
            b = fmaxf(b, row[k]);
        }
        double chosen = mse_of(row, K, qat_weight_qparams_from_range(lo[c], hi[c], 4,
                                                                     QAT_SCHEME_SYMMETRIC));
        int on_grid = 0;
        for (int j = 0; j < QAT_MSE_GRID; j++) {
            float t = qat_mse_grid_ratio(j);
            on_grid |= lo[c] == t * a && hi[c] == t * b;
            double e = mse_of(row, K, qat_weight_qparams_from_range(t * a, t * b, 4,
                                                                    QAT_SCHEME_SYMMETRIC));
            cr_assert_leq(chosen, e * (1 + 1e-6), "row %d: ratio %g beats the chosen one", c,
                          (double)t);
        }
        cr_assert(on_grid, "row %d: [%g, %g] is not on the grid", c, (double)lo[c], (double)hi[c]);
    }
    cr_assert_lt(hi[0], 0.9f * 1.5f, "the outlier is clipped (%g)", (double)hi[0]);
    /* per tensor: one range over all values */
    float lt, ht;
    qat_weight_ranges_mse(w, C, K, 0, 4, QAT_SCHEME_ASYMMETRIC, &lt, &ht);
    cr_assert(ht > 0 && ht <= 1.5f && lt < 0);
}

Test(observer, mse_activation_range_clips_a_long_tail)
{
    enum { N = 20000 };
    static float x[N];
    qat_rng r;
    qat_rng_seed(&r, 9, 1);
    float mx = 0;
    for (int i = 0; i < N; i++) { /* relu'd Laplacian: a long tail */
        float u = qat_rng_uniform(&r);
        x[i] = u < 0.5f ? 0.0f : -logf(2.0f * (1.0f - u) + 1e-12f);
        mx = fmaxf(mx, x[i]);
    }
    float lo, hi;
    qat_values_range_mse(x, N, 4, QAT_SCHEME_ASYMMETRIC, &lo, &hi);
    cr_assert_eq(lo, 0.0f);
    cr_assert_lt(hi, 0.8f * mx, "4 bits: the tail is clipped (max %g, chosen %g)", (double)mx,
                 (double)hi);
    double chosen = mse_of(x, N, qat_qparams_from_range(lo, hi, 4, QAT_SCHEME_ASYMMETRIC));
    double full = mse_of(x, N, qat_qparams_from_range(0, mx, 4, QAT_SCHEME_ASYMMETRIC));
    cr_assert_lt(chosen, full);
    /* at 8 bits the same values keep (almost) their whole range */
    qat_values_range_mse(x, N, 8, QAT_SCHEME_ASYMMETRIC, &lo, &hi);
    cr_assert_gt(hi, 0.5f * mx);
}

Test(observer, minmax_keeps_extremes_ema_blends)
{
    qat_observer o = {0, 0, 0};
    qat_observer_update(&o, QAT_OBS_MINMAX, -1.0f, 2.0f, 0.9f);
    qat_observer_update(&o, QAT_OBS_MINMAX, -0.5f, 3.0f, 0.9f);
    cr_assert(o.lo == -1.0f && o.hi == 3.0f);
    qat_observer e = {0, 0, 0};
    qat_observer_update(&e, QAT_OBS_EMA, -1.0f, 3.0f, 0.9f);
    qat_observer_update(&e, QAT_OBS_EMA, -2.0f, 1.0f, 0.9f);
    cr_assert_float_eq(e.lo, -1.1f, 1e-6);
    cr_assert_float_eq(e.hi, 2.8f, 1e-6);
}

/* Min-max weight ranges are a scan in order: rows of every length around
 * the vectorised lanes, many ties, zeros of both signs (the first of
 * equal values wins, so -0 and +0 come out as the scan gives them). */
Test(observer, minmax_weight_ranges_equal_the_scan_in_order)
{
    qat_rng r;
    qat_rng_seed(&r, 5, 0);
    static float w[4 * 200], scratch[200];
    for (int trial = 0; trial < 400; trial++) {
        size_t k = 1 + qat_rng_below(&r, trial < 200 ? 40 : 200); /* the vector body's 32 and more */
        int C = 1 + (int)qat_rng_below(&r, 4);
        for (size_t i = 0; i < (size_t)C * k; i++) {
            uint32_t u = qat_rng_below(&r, 7);
            w[i] = u == 0 ? 0.0f : u == 1 ? -0.0f : u == 6 && trial % 3 == 0 ? NAN :
                   (float)((int)qat_rng_below(&r, 5)) * (trial % 2 ? 1.0f : -1.0f);
        }
        float lo[4], hi[4];
        qat_weight_ranges(w, C, k, 1, QAT_OBS_MINMAX, 100.0f, QAT_SCHEME_SYMMETRIC, lo, hi,
                          scratch);
        for (int c = 0; c < C; c++) {
            float a = INFINITY, b = -INFINITY;
            for (size_t i = 0; i < k; i++) {
                float x = w[(size_t)c * k + i];
                a = x < a ? x : a;
                b = x > b ? x : b;
            }
            cr_assert(memcmp(&a, &lo[c], 4) == 0 && memcmp(&b, &hi[c], 4) == 0,
                      "trial %d row %d of %zu: [%g, %g] vs [%g, %g]", trial, c, k, lo[c], hi[c],
                      a, b);
        }
    }
}

Test(qparams, bias_codes_are_clamped_to_the_accumulator_budget)
{
    int32_t lim = qat_bias_limit(3136, 8);
    cr_assert_eq(lim, INT32_MAX - 3136 * 255 * 255);
    cr_assert_eq(qat_quantize_bias(1.0f, 0.001f, lim), 1000);
    cr_assert_eq(qat_quantize_bias(-2.5f, 1.0f, lim), -3, "ties away from zero");
    cr_assert_eq(qat_quantize_bias(1e30f, 1e-10f, lim), lim);
    cr_assert_eq(qat_quantize_bias(-1e30f, 1e-10f, lim), -lim);
    cr_assert_eq(qat_quantize_bias(NAN, 1.0f, lim), -lim);
}

/* ---- ops ---------------------------------------------------------------------- */
static qat_tape *tape(void)
{
    qat_tape *t;
    cr_assert_eq(qat_tape_create(NULL, &t, NULL), QAT_OK);
    return t;
}

Test(ste, weight_codes_clipped_mask_and_identity_variant)
{
    float w[2][3] = {{0.3f, -0.9f, 2.0f}, {0.05f, 0.1f, -0.2f}};
    float g[6] = {0};
    int shape[2] = {2, 3};
    qat_tensor wt = qat_tensor_view(&w[0][0], g, 2, shape);
    float scale[2] = {0.1f, 0.1f}; /* qmax 7 (4-bit): 2.0 and -0.9 fall outside */
    for (int ste = 0; ste < 2; ste++) {
        qat_tape *t = tape();
        memset(g, 0, sizeof g);
        qat_tensor *st = qat_tape_const(t, scale, 2);
        qat_tensor *k = qat_op_weight_codes(t, &wt, st, NULL, -7, 7, ste);
        cr_assert_eq(k->data[0], 3.0f);
        cr_assert_eq(k->data[1], -7.0f, "clamped");
        cr_assert_eq(k->data[2], 7.0f, "clamped");
        float ones[6] = {1, 1, 1, 1, 1, 1};
        qat_tape_backward(t, qat_op_dot_const(t, k, ones));
        cr_assert_float_eq(g[0], 10.0f, 1e-5, "d code / d w = 1 / scale");
        if (ste == QAT_STE_CLIPPED) {
            cr_assert_eq(g[1], 0.0f, "clipped STE blocks saturated weights");
            cr_assert_eq(g[2], 0.0f);
        } else {
            cr_assert_float_eq(g[1], 10.0f, 1e-5, "identity STE passes everything");
            cr_assert_float_eq(g[2], 10.0f, 1e-5);
        }
        qat_tape_destroy(t);
    }
}

/* The weight codes' backward adds dy / scale where the STE passes (a
 * product rounded, then a sum rounded) and leaves every other gradient
 * entry as it was, bit for bit (-0 included), over rows longer than a
 * vector. */
Test(ste, weight_codes_backward_adds_only_where_it_passes)
{
    enum { R = 3, K = 37 };
    static float w[R * K], g[R * K], want[R * K], dy[R * K];
    qat_rng r;
    qat_rng_seed(&r, 9, 0);
    for (int i = 0; i < R * K; i++) {
        w[i] = 2.0f * qat_rng_normal(&r);
        g[i] = i % 3 ? qat_rng_normal(&r) : -0.0f;
        dy[i] = qat_rng_normal(&r);
    }
    int shape[2] = {R, K};
    qat_tensor wt = qat_tensor_view(w, g, 2, shape);
    float scale[R] = {0.25f, 0.3f, 0.7f};
    memcpy(want, g, sizeof g);
    for (int i = 0; i < R * K; i++) { /* 4 bits: codes -7..7 */
        float s = scale[i / K];
        float q = nearbyintf(w[i] / s);
        if (q >= -7.0f && q <= 7.0f) {
            float p = dy[i] * (1.0f / s);
            want[i] = g[i] + p;
        }
    }
    qat_tape *t = tape();
    qat_tensor *st = qat_tape_const(t, scale, R);
    qat_tensor *k = qat_op_weight_codes(t, &wt, st, NULL, -7, 7, QAT_STE_CLIPPED);
    qat_tape_backward(t, qat_op_dot_const(t, k, dy));
    for (int i = 0; i < R * K; i++)
        cr_assert(memcmp(&g[i], &want[i], 4) == 0, "entry %d: %a vs %a", i, g[i], want[i]);
    qat_tape_destroy(t);
}

/* Codes and STE mask on rows of awkward length (the vector body and its
 * tail), asymmetric zero points, per channel, with the values that decide
 * a rounding or a clip (halves, the clip edges, NaN, infinities): every
 * code is the scalar quantizer's, and the backward passes exactly where
 * the unclamped code lies inside. */
Test(ste, weight_codes_forward_equals_the_scalar_quantizer_on_every_lane)
{
    enum { R = 3, K = 53 };
    static float w[R * K], g[R * K], dy[R * K];
    float scale[R] = {0.25f, 0.1f, 0.7f};
    int32_t zp[R] = {3, -128, 0};
    const int32_t qmin = -128, qmax = 127;
    qat_rng r;
    qat_rng_seed(&r, 11, 0);
    for (int i = 0; i < R * K; i++) {
        float s = scale[i / K];
        float z = (float)zp[i / K];
        switch (i % 9) {
        case 0: w[i] = ((float)(i % 40) - 20.0f + 0.5f) * s; break; /* halves */
        case 1: w[i] = ((float)qmax + 0.5f - z) * s; break;        /* the clip edge */
        case 2: w[i] = ((float)qmin - 0.5f - z) * s; break;
        case 3: w[i] = i % 2 ? NAN : (i % 4 == 1 ? INFINITY : -INFINITY); break;
        case 4: w[i] = ((float)(i % 2 ? qmax : qmin) - z) * s; break; /* on the edge */
        default: w[i] = 60.0f * s * qat_rng_normal(&r);
        }
        dy[i] = qat_rng_normal(&r);
    }
    int shape[2] = {R, K}, sshape[1] = {R};
    float gs[R] = {0};
    qat_tensor wt = qat_tensor_view(w, g, 2, shape);
    qat_tensor stv = qat_tensor_view(scale, gs, 1, sshape);
    memset(g, 0, sizeof g);
    qat_tape *t = tape();
    qat_tensor *k = qat_op_weight_codes(t, &wt, &stv, zp, qmin, qmax, QAT_STE_CLIPPED);
    for (int i = 0; i < R * K; i++) {
        float s = scale[i / K];
        int32_t z = zp[i / K];
        float want = (float)(qat_fp_quantize_vec(w[i], s, z, qmin, qmax) - z);
        cr_assert(memcmp(&k->data[i], &want, 4) == 0, "code %d (w %a): %a vs %a", i, w[i],
                  k->data[i], want);
    }
    qat_tape_backward(t, qat_op_dot_const(t, k, dy));
    for (int i = 0; i < R * K; i++) {
        float s = scale[i / K];
        int32_t q = qat_fp_quantize_vec(w[i], s, zp[i / K], qmin - 1, qmax + 1);
        float want = q >= qmin && q <= qmax ? 0.0f + dy[i] * (1.0f / s) : 0.0f;
        cr_assert(memcmp(&g[i], &want, 4) == 0, "gradient %d (w %a, code %d): %a vs %a", i,
                  w[i], q, g[i], want);
    }
    /* LSQ's scale gradient: -dy w / s^2 where the unrounded code is inside */
    for (int row = 0; row < R; row++) {
        float inv = 1.0f / scale[row];
        double ds = 0;
        for (int i = row * K; i < (row + 1) * K; i++) {
            float u = w[i] / scale[row] + (float)zp[row];
            if (u >= (float)qmin && u <= (float)qmax)
                ds -= (double)dy[i] * w[i] * inv * inv;
        }
        float want = 0.0f + (float)ds;
        cr_assert(memcmp(&gs[row], &want, 4) == 0, "scale gradient %d: %a vs %a", row, gs[row],
                  want);
    }
    qat_tape_destroy(t);
}

Test(ste, fake_quant_forward_and_mask)
{
    float x[5] = {-3.0f, -0.26f, 0.0f, 0.74f, 5.0f}, g[5] = {0};
    int shape[1] = {5};
    qat_tensor xt = qat_tensor_view(x, g, 1, shape);
    /* scale 0.5, zp -2, codes [-8, 7]: representable reals [-3, 4.5] */
    qat_tape *t = tape();
    float half = 0.5f;
    qat_tensor *y = qat_op_fake_quant(t, &xt, qat_tape_const(t, &half, 1), -2, -8, 7,
                                      QAT_STE_CLIPPED);
    float expect[5] = {-3.0f, -0.5f, 0.0f, 0.5f, 4.5f};
    for (int i = 0; i < 5; i++)
        cr_assert_float_eq(y->data[i], expect[i], 1e-7, "i=%d got %g", i, y->data[i]);
    float ones[5] = {1, 1, 1, 1, 1};
    qat_tape_backward(t, qat_op_dot_const(t, y, ones));
    float eg[5] = {1, 1, 1, 1, 0}; /* 5.0 saturates; -3.0 sits exactly on qmin */
    for (int i = 0; i < 5; i++)
        cr_assert_eq(g[i], eg[i], "i=%d", i);
    qat_tape_destroy(t);
}

/* The STE's backward adds dy where the value passes and leaves the
 * gradient bit for bit elsewhere (-0 included): two fake-quants of one
 * tensor with different ranges, into a gradient that already holds values,
 * over a length no vector width divides. */
Test(ste, fake_quant_backward_adds_only_where_it_passes)
{
    enum { N = 37 };
    float x[N], g[N], want[N], d1[N], d2[N];
    qat_rng r;
    qat_rng_seed(&r, 21, 0);
    for (int i = 0; i < N; i++) {
        x[i] = 3.0f * qat_rng_normal(&r);
        g[i] = i % 4 ? qat_rng_normal(&r) : -0.0f;
        d1[i] = qat_rng_normal(&r);
        d2[i] = qat_rng_normal(&r);
    }
    int shape[1] = {N};
    qat_tensor xt = qat_tensor_view(x, g, 1, shape);
    float s1 = 0.5f, s2 = 0.1f; /* codes [-8, 7], zp 0 */
    memcpy(want, g, sizeof g);
    for (int i = 0; i < N; i++) { /* backward runs in reverse: the second first */
        float q2 = nearbyintf(x[i] / s2), q1 = nearbyintf(x[i] / s1); /* codes inside pass */
        if (q2 >= -8.0f && q2 <= 7.0f)
            want[i] += d2[i];
        if (q1 >= -8.0f && q1 <= 7.0f)
            want[i] += d1[i];
    }
    qat_tape *t = tape();
    qat_tensor *y1 = qat_op_fake_quant(t, &xt, qat_tape_const(t, &s1, 1), 0, -8, 7,
                                       QAT_STE_CLIPPED);
    qat_tensor *y2 = qat_op_fake_quant(t, &xt, qat_tape_const(t, &s2, 1), 0, -8, 7,
                                       QAT_STE_CLIPPED);
    qat_tensor *sum = qat_op_add(t, qat_op_dot_const(t, y1, d1), qat_op_dot_const(t, y2, d2));
    qat_tape_backward(t, sum);
    for (int i = 0; i < N; i++)
        cr_assert(memcmp(&g[i], &want[i], 4) == 0, "i=%d x=%g: %a vs %a", i, x[i], g[i],
                  want[i]);
    qat_tape_destroy(t);
}

/* The vectorised, team-split forward against qat_fp_quantize element by
 * element: ties, NaN, values far outside the range, both STEs, with and
 * without the mask, one and two threads, a length no vector width divides. */
Test(ste, fake_quant_forward_equals_the_scalar_quantizer)
{
    const size_t n = 40000 + 13;
    qat_rng r;
    qat_rng_seed(&r, 5, 9);
    float *x = malloc(n * sizeof *x), *g = malloc(n * sizeof *g);
    const float s = 0.037f;
    const int32_t zp = 3, qmin = -8, qmax = 7;
    for (size_t i = 0; i < n; i++) {
        float h = (float)((int)qat_rng_below(&r, 40) - 20) + 0.5f;
        switch (qat_rng_below(&r, 5)) {
        case 0: x[i] = s * h; break; /* a tie */
        case 1: x[i] = i % 7 ? s * h * 1e6f : NAN; break;
        default: x[i] = (float)((int)qat_rng_below(&r, 2001) - 1000) * 1e-3f; break;
        }
    }
    for (int v = 0; v < 6; v++) {
        int threads = 1 + (v & 1), grad = v < 4;
        qat_ste_kind ste = v >= 2 && v < 4 ? QAT_STE_IDENTITY : QAT_STE_CLIPPED;
        qat_team *team = NULL;
        if (threads > 1)
            cr_assert_eq(qat_team_create(threads, &team, NULL), QAT_OK);
        qat_tape *t;
        cr_assert_eq(qat_tape_create(team, &t, NULL), QAT_OK);
        memset(g, 0, n * sizeof *g);
        int shape[1] = {(int)n};
        qat_tensor xt = qat_tensor_view(x, g, 1, shape);
        xt.requires_grad = grad;
        float sv = s;
        qat_tensor *y = qat_op_fake_quant(t, &xt, qat_tape_const(t, &sv, 1), zp, qmin, qmax, ste);
        float *ones = malloc(n * sizeof *ones);
        for (size_t i = 0; i < n; i++)
            ones[i] = 1.0f;
        if (grad)
            qat_tape_backward(t, qat_op_dot_const(t, y, ones));
        for (size_t i = 0; i < n; i++) {
            int32_t raw = qat_fp_quantize(x[i], s, zp, qmin - 1, qmax + 1);
            int32_t q = raw < qmin ? qmin : raw > qmax ? qmax : raw;
            cr_assert_eq(y->data[i], s * (float)(q - zp), "variant %d element %zu", v, i);
            if (grad)
                cr_assert_eq(g[i], ste == QAT_STE_IDENTITY || raw == q ? 1.0f : 0.0f,
                             "variant %d element %zu", v, i);
        }
        free(ones);
        qat_tape_destroy(t);
        qat_team_destroy(team);
    }
    free(x);
    free(g);
}

Test(ste, act_codes_scale_gradient)
{
    float x[3] = {0.02f, 0.04f, -0.06f}, g[3] = {0};
    int shape[1] = {3};
    qat_tensor xt = qat_tensor_view(x, g, 1, shape);
    qat_tape *t = tape();
    float s = 0.02f;
    qat_tensor *k = qat_op_act_codes(t, &xt, qat_tape_const(t, &s, 1));
    cr_assert_eq(k->data[0], 1.0f);
    cr_assert_eq(k->data[1], 2.0f);
    cr_assert_eq(k->data[2], -3.0f);
    float w[3] = {1, 2, 3};
    qat_tape_backward(t, qat_op_dot_const(t, k, w));
    for (int i = 0; i < 3; i++)
        cr_assert_float_eq(g[i], w[i] / 0.02f, 1e-3);
    qat_tape_destroy(t);
}

Test(requant, forward_is_the_runtime_output_stage_and_backward_is_ste)
{
    qat_rng r;
    qat_rng_seed(&r, 8, 0);
    enum { N = 50, C = 3 };
    float acc[N * C], gacc[N * C], b[C] = {0.1f, -0.2f, 0.05f}, gb[C];
    for (int i = 0; i < N * C; i++)
        acc[i] = (float)((int)qat_rng_below(&r, 4001) - 2000);
    int as[2] = {N, C}, bs[1] = {C};
    qat_tensor at = qat_tensor_view(acc, gacc, 2, as), bt = qat_tensor_view(b, gb, 1, bs);
    float acc_scale[C] = {1e-3f, 2e-3f, 5e-4f};
    qat_qparams out = qat_qparams_from_range(0.0f, 1.5f, 8, QAT_SCHEME_ASYMMETRIC);
    int32_t mult[C], shift[C];
    for (int c = 0; c < C; c++)
        qat_fp_quantize_multiplier((double)acc_scale[c] / out.scale, &mult[c], &shift[c]);
    int32_t lim = qat_bias_limit(100, 8);
    qat_requant_params rp = {C, mult, shift, lim, out.zero_point, out.zero_point, out.qmax,
                             QAT_STE_CLIPPED};
    qat_tape *t = tape();
    memset(gacc, 0, sizeof gacc);
    memset(gb, 0, sizeof gb);
    qat_tensor *y = qat_op_requantize(t, &at, &bt, qat_tape_const(t, acc_scale, C),
                                      qat_tape_const(t, &out.scale, 1), &rp);
    float proj[N * C];
    for (int i = 0; i < N * C; i++)
        proj[i] = qat_rng_normal(&r);
    qat_tape_backward(t, qat_op_dot_const(t, y, proj));
    float db[C] = {0};
    for (int i = 0; i < N * C; i++) {
        int c = i % C;
        int32_t bq = qat_quantize_bias(b[c], acc_scale[c], lim);
        int32_t raw = qat_fp_requantize((int32_t)acc[i] + bq, mult[c], shift[c], out.zero_point,
                                        INT32_MIN, INT32_MAX);
        int32_t q = qat_fp_requantize((int32_t)acc[i] + bq, mult[c], shift[c], out.zero_point,
                                      out.zero_point, out.qmax);
        cr_assert_eq(y->data[i], out.scale * (float)(q - out.zero_point), "i=%d", i);
        int pass = raw >= out.zero_point && raw <= out.qmax;
        cr_assert_eq(gacc[i], pass ? proj[i] * acc_scale[c] : 0.0f, "i=%d", i);
        db[c] += pass ? proj[i] : 0.0f;
    }
    for (int c = 0; c < C; c++)
        cr_assert_float_eq(gb[c], db[c], 1e-4);
    /* the relu clamp must have blocked something and passed something */
    int blocked = 0;
    for (int i = 0; i < N * C; i++)
        blocked += gacc[i] == 0.0f;
    cr_assert(blocked > 5 && blocked < N * C - 5);
    qat_tape_destroy(t);
}

Test(requant, range_reports_real_values_after_relu)
{
    float acc[4] = {-100, 50, 200, -10};
    int as[2] = {2, 2};
    qat_tensor at = qat_tensor_view(acc, NULL, 2, as);
    float scale[2] = {0.01f, 0.1f};
    qat_tape *t = tape();
    float lo, hi;
    qat_quant_cfg qc = {.activation_observer = QAT_OBS_EMA, .percentile = 100,
                        .activation_bits = 8, .activation_scheme = QAT_SCHEME_ASYMMETRIC};
    qat_acc_range(t, &at, NULL, scale, 1000, 0, &qc, &lo, &hi);
    cr_assert_float_eq(lo, -1.0f, 1e-6);
    cr_assert_float_eq(hi, 5.0f, 1e-6);
    qat_acc_range(t, &at, NULL, scale, 1000, 1, &qc, &lo, &hi);
    cr_assert_eq(lo, 0.0f);
    qat_tape_destroy(t);
}

Test(avgpool_round, recovers_integer_average)
{
    /* codes {1, 2, 2, 0} / 4 = 1.25 -> 1; {3, 2, 2, 3} / 4 = 2.5 -> 3 */
    float s = 0.37f;
    float avg[2] = {s * 5.0f / 4.0f, s * 10.0f / 4.0f};
    int shape[1] = {2};
    qat_tensor at = qat_tensor_view(avg, NULL, 1, shape);
    qat_tape *t = tape();
    qat_tensor *y = qat_op_avgpool_round(t, &at, s, 4);
    cr_assert_float_eq(y->data[0], s * 1.0f, 1e-7);
    cr_assert_float_eq(y->data[1], s * 3.0f, 1e-7);
    qat_tape_destroy(t);
}
