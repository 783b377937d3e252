/* Requantization helpers against exact/long-double math on random and edge
 * inputs. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include <stdint.h>

#include "qat/fixedpoint.h"
#include "qat/rng.h"

static int32_t rand_i32(qat_rng *r) { return (int32_t)qat_rng_u32(r); }

static int32_t ref_srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN)
        return INT32_MAX;
    long double v = (long double)a * (long double)b / 2147483648.0L;
    return (int32_t)floorl(v + 0.5L); /* ties toward +inf */
}

static int32_t ref_rdpot(int32_t x, int e)
{
    return (int32_t)roundl((long double)x / ldexpl(1.0L, e)); /* ties away */
}

Test(fixedpoint, srdhm_matches_exact_on_edges_and_random)
{
    const int32_t edges[] = {INT32_MIN, INT32_MIN + 1, -1073741824, -2, -1, 0, 1, 2,
                             1073741824, INT32_MAX - 1, INT32_MAX};
    size_t ne = sizeof edges / sizeof edges[0];
    for (size_t i = 0; i < ne; i++)
        for (size_t j = 0; j < ne; j++)
            cr_assert_eq(qat_fp_srdhm(edges[i], edges[j]), ref_srdhm(edges[i], edges[j]),
                         "a=%d b=%d", edges[i], edges[j]);
    cr_assert_eq(qat_fp_srdhm(INT32_MIN, INT32_MIN), INT32_MAX);
    qat_rng r;
    qat_rng_seed(&r, 1, 0);
    for (int i = 0; i < 200000; i++) {
        int32_t a = rand_i32(&r), b = rand_i32(&r);
        cr_assert_eq(qat_fp_srdhm(a, b), ref_srdhm(a, b), "a=%d b=%d", a, b);
    }
}

Test(fixedpoint, rdpot_rounds_half_away_for_every_exponent)
{
    qat_rng r;
    qat_rng_seed(&r, 2, 0);
    for (int e = 0; e <= 31; e++) {
        const int32_t edges[] = {INT32_MIN, INT32_MIN + 1, -3, -2, -1, 0, 1, 2, 3, INT32_MAX};
        for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
            cr_assert_eq(qat_fp_rdpot(edges[i], e), ref_rdpot(edges[i], e), "x=%d e=%d",
                         edges[i], e);
        for (int i = 0; i < 5000; i++) {
            int32_t x = rand_i32(&r);
            cr_assert_eq(qat_fp_rdpot(x, e), ref_rdpot(x, e), "x=%d e=%d", x, e);
        }
    }
    /* exact ties */
    cr_assert_eq(qat_fp_rdpot(5, 1), 3);
    cr_assert_eq(qat_fp_rdpot(-5, 1), -3);
    cr_assert_eq(qat_fp_rdpot(-6, 2), -2);
}

Test(fixedpoint, multiplier_decomposition_is_within_half_ulp)
{
    qat_rng r;
    qat_rng_seed(&r, 3, 0);
    for (int i = 0; i < 100000; i++) {
        double M = ldexp(0.5 + 0.5 * qat_rng_uniform(&r), (int)qat_rng_below(&r, 60) - 31);
        int32_t m0, sh;
        cr_assert_eq(qat_fp_quantize_multiplier(M, &m0, &sh), 0);
        cr_assert(m0 >= (1 << 30) && m0 <= INT32_MAX, "m0=%d", m0);
        cr_assert(sh >= QAT_SHIFT_MIN && sh <= QAT_SHIFT_MAX);
        double back = ldexp((double)m0, sh - 31);
        cr_assert_leq(fabs(back - M) / M, ldexp(1.0, -31), "M=%g", M);
    }
    int32_t m0, sh;
    cr_assert_eq(qat_fp_quantize_multiplier(0.0, &m0, &sh), 0);
    cr_assert(m0 == 0 && sh == 0);
    cr_assert_eq(qat_fp_quantize_multiplier(ldexp(1.0, -40), &m0, &sh), 0);
    cr_assert(m0 == 0 && sh == 0, "tiny multipliers collapse to the zero point");
    cr_assert_eq(qat_fp_quantize_multiplier(-1.0, &m0, &sh), -1);
    cr_assert_eq(qat_fp_quantize_multiplier(NAN, &m0, &sh), -1);
    cr_assert_eq(qat_fp_quantize_multiplier(INFINITY, &m0, &sh), -1);
    cr_assert_eq(qat_fp_quantize_multiplier(ldexp(1.0, 30), &m0, &sh), -1);
    /* fraction rounding up to 1.0 renormalises */
    cr_assert_eq(qat_fp_quantize_multiplier(nextafter(1.0, 0.0), &m0, &sh), 0);
    cr_assert_eq(m0, 1 << 30);
    cr_assert_eq(sh, 1);
    /* both ends of the shift range */
    cr_assert_eq(qat_fp_quantize_multiplier(ldexp(0.75, -31), &m0, &sh), 0);
    cr_assert_eq(sh, -31);
    cr_assert_eq(qat_fp_quantize_multiplier(ldexp(0.75, 30), &m0, &sh), 0);
    cr_assert_eq(sh, 30);
}

Test(fixedpoint, requantize_tracks_real_product_within_double_rounding)
{
    qat_rng r;
    qat_rng_seed(&r, 4, 0);
    for (int i = 0; i < 200000; i++) {
        int32_t acc = (int32_t)(qat_rng_u32(&r) >> (qat_rng_below(&r, 31) + 1));
        if (qat_rng_u32(&r) & 1)
            acc = -acc;
        double M = ldexp(0.5 + 0.5 * qat_rng_uniform(&r), -(int)qat_rng_below(&r, 31));
        int32_t m0, sh;
        qat_fp_quantize_multiplier(M, &m0, &sh);
        double exact = (double)acc * ldexp((double)m0, sh - 31);
        int32_t out = qat_fp_requantize(acc, m0, sh, 0, INT32_MIN, INT32_MAX);
        int right = sh > 0 ? 0 : -sh;
        double bound = 0.5 + 0.5 * ldexp(1.0, -right) + 1e-9;
        cr_assert_leq(fabs((double)out - exact), bound, "acc=%d M=%.17g out=%d exact=%.6f", acc,
                      M, out, exact);
    }
}

Test(fixedpoint, requantize_edges_left_shift_saturates_and_clamps)
{
    int32_t m0, sh;
    qat_fp_quantize_multiplier(4.0, &m0, &sh);
    cr_assert_eq(sh, 3);
    cr_assert_eq(qat_fp_requantize(100, m0, sh, 0, -1000, 1000), 400);
    /* the shift saturates first, then the 0.5x mantissa halves it */
    cr_assert_eq(qat_fp_requantize(INT32_MAX, m0, sh, 0, INT32_MIN, INT32_MAX), 1073741824);
    cr_assert_eq(qat_fp_requantize(INT32_MIN, m0, sh, 0, INT32_MIN, INT32_MAX), -1073741824);
    /* relu fused as act_min = zp, and the int8 clamp */
    qat_fp_quantize_multiplier(0.01, &m0, &sh);
    cr_assert_eq(qat_fp_requantize(-5000, m0, sh, -10, -10, 127), -10);
    cr_assert_eq(qat_fp_requantize(50000, m0, sh, -10, -128, 127), 127);
    cr_assert_eq(qat_fp_requantize(250, m0, sh, -10, -128, 127), -7); /* 2.5 -> 3 */
    cr_assert_eq(qat_fp_requantize(-250, m0, sh, 0, -128, 127), -3);  /* -2.5 -> -3 */
    cr_assert_eq(qat_fp_requantize(INT32_MIN, m0, sh, 0, -128, 127), -128);
    /* multiplier 0 outputs the zero point */
    cr_assert_eq(qat_fp_requantize(123456, 0, 0, 7, -128, 127), 7);
}

Test(fixedpoint, float_quantize_ties_away_and_clamps)
{
    cr_assert_eq(qat_fp_quantize(2.5f, 1.0f, 0, -127, 127), 3);
    cr_assert_eq(qat_fp_quantize(-2.5f, 1.0f, 0, -127, 127), -3);
    cr_assert_eq(qat_fp_quantize(0.25f, 0.5f, -128, -128, 127), -127);
    cr_assert_eq(qat_fp_quantize(1e30f, 0.1f, 0, -127, 127), 127);
    cr_assert_eq(qat_fp_quantize(-1e30f, 0.1f, 0, -127, 127), -127);
    cr_assert_eq(qat_fp_quantize(NAN, 0.1f, 0, -8, 7), -8);
    cr_assert_eq(qat_fp_div_round(5, 2), 3);
    cr_assert_eq(qat_fp_div_round(-5, 2), -3);
    cr_assert_eq(qat_fp_div_round(4, 3), 1);
    cr_assert_eq(qat_fp_div_round(-5, 3), -2);
    cr_assert_eq(qat_fp_div_round(0, 4), 0);
}

Test(fixedpoint, inline_round_equals_roundf)
{
    const float edges[] = {0.0f, -0.0f, 0.5f, -0.5f, 1.5f, -1.5f, 2.5f, -2.5f, 0.49999997f,
                           -0.49999997f, 8388607.5f, -8388607.5f, 16777216.0f, 2147483520.0f,
                           -2147483520.0f, 1e-30f};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        cr_assert_eq(qat_fp_round(edges[i]), (int32_t)roundf(edges[i]), "x=%.9g", edges[i]);
    qat_rng r;
    qat_rng_seed(&r, 5, 0);
    for (int i = 0; i < 1000000; i++) {
        uint32_t bits = qat_rng_u32(&r);
        float x;
        memcpy(&x, &bits, sizeof x);
        if (!(fabsf(x) < 2.1e9f))
            continue;
        cr_assert_eq(qat_fp_round(x), (int32_t)roundf(x), "x=%.9g", x);
        float h = (float)((int)qat_rng_below(&r, 2000) - 1000) + 0.5f; /* exact ties */
        cr_assert_eq(qat_fp_round(h), (int32_t)roundf(h), "x=%.9g", h);
    }
}

Test(fixedpoint, branch_free_right_shift_stage_equals_the_oracle)
{
    qat_rng r;
    qat_rng_seed(&r, 9, 0);
    for (int i = 0; i < 2000000; i++) {
        int32_t acc = (int32_t)qat_rng_u32(&r);
        if (i % 3 == 0)
            acc >>= qat_rng_below(&r, 31);
        int32_t m = (int32_t)(qat_rng_u32(&r) >> 1);
        if (i % 7 == 0)
            m = (int32_t)(1u << 30) + (int32_t)qat_rng_below(&r, 1000);
        int right = (int)qat_rng_below(&r, 32);
        int64_t rnd = right ? (int64_t)1 << (right - 1) : 0;
        int32_t zp = (int32_t)qat_rng_below(&r, 256) - 128;
        int64_t fast = qat_fp_requantize_right(acc, m, right, rnd, zp);
        int32_t ref = qat_fp_requantize(acc, m, -right, zp, INT32_MIN, INT32_MAX);
        int64_t clamped = fast < INT32_MIN ? INT32_MIN : fast > INT32_MAX ? INT32_MAX : fast;
        cr_assert_eq(clamped, ref, "acc=%d m=%d right=%d zp=%d", acc, m, right, zp);
    }
    const int32_t edges[] = {INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX};
    for (int a = 0; a < 6; a++)
        for (int right = 0; right <= 31; right++) {
            int64_t rnd = right ? (int64_t)1 << (right - 1) : 0;
            int64_t fast = qat_fp_requantize_right(edges[a], INT32_MAX, right, rnd, 0);
            cr_assert_eq(fast, qat_fp_requantize(edges[a], INT32_MAX, -right, 0, INT32_MIN, INT32_MAX));
        }
}

Test(fixedpoint, vector_quantize_equals_scalar_quantize)
{
    qat_rng r;
    qat_rng_seed(&r, 10, 0);
    for (int i = 0; i < 1000000; i++) {
        uint32_t bits = qat_rng_u32(&r);
        float x;
        memcpy(&x, &bits, sizeof x);
        if (i % 2)
            x = (float)((int)qat_rng_below(&r, 4001) - 2000) * 0.25f; /* ties */
        float s = i % 5 ? 0.5f : 1e-3f + qat_rng_uniform(&r);
        int32_t zp = (int32_t)qat_rng_below(&r, 256) - 128;
        int bits_w = 2 + (int)qat_rng_below(&r, 7);
        int32_t qmin = -(1 << (bits_w - 1)), qmax = (1 << (bits_w - 1)) - 1;
        zp = zp < qmin ? qmin : zp > qmax ? qmax : zp;
        cr_assert_eq(qat_fp_quantize_vec(x, s, zp, qmin, qmax), qat_fp_quantize(x, s, zp, qmin, qmax),
                     "x=%.9g s=%g zp=%d", x, s, zp);
    }
    cr_assert_eq(qat_fp_quantize_vec(NAN, 0.1f, 3, -8, 7), -8);
    cr_assert_eq(qat_fp_quantize_vec(INFINITY, 0.1f, 3, -8, 7), 7);
    cr_assert_eq(qat_fp_quantize_vec(-INFINITY, 0.1f, 3, -8, 7), -8);
}
