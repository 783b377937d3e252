/* The arithmetic the ONNX export rests on (docs/ONNX.md, "Rounding"):
 *  - qat's two-rounding output stage equals one rounding with a tie band,
 *    floor(acc M + 1/2 + sign(acc) e), the formula the exact route writes
 *    as ONNX nodes (checked here against qat_fp_requantize itself);
 *  - the avgpool output scale makes a float mean rounded half to even give
 *    qat's DivRound;
 *  - the scale fit counts exactly the thresholds where ONNX Runtime's
 *    float requantization steps elsewhere (checked by brute force). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>

#include "../../src/export/onnx_fit.h"
#include "qat/fixedpoint.h"
#include "qat/rng.h"

/* The exact route's formula, in double as the exported graph computes it. */
static int32_t band_formula(int32_t acc, int32_t m0, int32_t shift, int32_t zp, int32_t lo,
                            int32_t hi)
{
    int r = shift < 0 ? -shift : 0;
    double M = ldexp((double)m0, shift - 31);
    double e = r >= 1 ? ldexp(1.0, -(r + 1)) : 0.0;
    double s = acc > 0 ? 1.0 : acc < 0 ? -1.0 : 0.0;
    double v = floor((double)acc * M + (0.5 + s * e));
    v = fmin(fmax(v, (double)(lo - zp)), (double)(hi - zp));
    return (int32_t)v + zp;
}

Test(onnx_fit, tie_band_formula_equals_fixed_point)
{
    qat_rng rng;
    qat_rng_seed(&rng, 7, 1);
    long n = 0;
    for (int round = 0; round < 4000; round++) {
        int32_t shift = (int32_t)(qat_rng_u32(&rng) % 40) - 31; /* [-31, 8] */
        int32_t m0 = (int32_t)((1u << 30) + (qat_rng_u32(&rng) & ((1u << 30) - 1)));
        if (round % 50 == 0)
            m0 = 1 << 30; /* f = 1/2 exactly: the band is a whole accumulator */
        int32_t zp = (int32_t)(qat_rng_u32(&rng) % 256) - 128;
        int32_t lo = -128, hi = 127;
        if (round % 3 == 0)
            lo = zp; /* fused relu */
        /* accumulators around each code step and at random */
        double M = ldexp((double)m0, shift - 31);
        for (int k = -140; k <= 140; k++) {
            double t = ((double)k - 0.5) / M;
            if (fabs(t) > 2e9)
                continue;
            for (int d = -3; d <= 3; d++) {
                int32_t acc = (int32_t)llround(t) + d;
                cr_assert_eq(band_formula(acc, m0, shift, zp, lo, hi),
                             qat_fp_requantize(acc, m0, shift, zp, lo, hi),
                             "acc %d m0 %d shift %d zp %d", acc, m0, shift, zp);
                n++;
            }
        }
        for (int i = 0; i < 64; i++) {
            int32_t acc = (int32_t)qat_rng_u32(&rng) >> (qat_rng_u32(&rng) % 31);
            cr_assert_eq(band_formula(acc, m0, shift, zp, lo, hi),
                         qat_fp_requantize(acc, m0, shift, zp, lo, hi), "acc %d m0 %d shift %d",
                         acc, m0, shift);
            n++;
        }
    }
    cr_assert_gt(n, 1000000);
}

/* ONNX Runtime's QLinearAveragePool: dequantize, sum in window order,
 * divide by the count, y / y_scale + zp rounded half to even. */
static int32_t ort_avgpool(const int32_t *x, int n, int32_t zp, float xs, float ys)
{
    float sum = 0;
    for (int i = 0; i < n; i++)
        sum += xs * (float)(x[i] - zp);
    sum /= (float)n;
    int32_t q = (int32_t)nearbyintf(sum / ys + (float)zp);
    return q < -128 ? -128 : q > 127 ? 127 : q;
}

static int32_t div_round(int32_t s, int32_t n)
{
    return s >= 0 ? (s + n / 2) / n : -((-s + n / 2) / n);
}

Test(onnx_fit, avgpool_scale_reproduces_divround)
{
    qat_rng rng;
    qat_rng_seed(&rng, 11, 1);
    const int windows[] = {2, 3, 4, 6, 8, 9};
    for (int wi = 0; wi < 6; wi++) {
        int n = windows[wi];
        for (int round = 0; round < 20000; round++) {
            float xs = 0.001f + 0.0001f * (float)(qat_rng_u32(&rng) % 500);
            int32_t zp = (int32_t)(qat_rng_u32(&rng) % 256) - 128, x[9], s = 0;
            for (int i = 0; i < n; i++) {
                uint32_t v = qat_rng_u32(&rng);
                /* extremes and values near the zero point, as activations are */
                x[i] = (v & 3) == 0 ? -128 : (v & 3) == 1 ? 127 : zp + (int32_t)((v >> 8) % 7) - 3;
                x[i] = x[i] < -128 ? -128 : x[i] > 127 ? 127 : x[i];
                s += x[i] - zp;
            }
            int32_t q = zp + div_round(s, n);
            q = q < -128 ? -128 : q > 127 ? 127 : q;
            cr_assert_eq(ort_avgpool(x, n, zp, xs, onnx_fit_avgpool_scale(xs, n)), q,
                         "window %d, sum %d, zp %d, scale %g", n, s, zp, (double)xs);
        }
    }
}

/* The fit's report is what a brute-force scan of every reachable
 * accumulator finds: the code steps at which ONNX Runtime (bias + offset,
 * multiplier s) and qat differ. A relu channel with m0 = 2^30 (tie band of
 * exactly one accumulator) is matched everywhere with offset 1. */
Test(onnx_fit, fit_report_matches_brute_force)
{
    qat_rng rng;
    qat_rng_seed(&rng, 3, 1);
    for (int round = 0; round < 60; round++) {
        onnx_rq r;
        r.m0 = round == 0 ? 1 << 30 : (int32_t)((1u << 30) + (qat_rng_u32(&rng) & ((1u << 30) - 1)));
        r.shift = -(int32_t)(6 + qat_rng_u32(&rng) % 6);
        r.zp = round == 0 ? -128 : (int32_t)(qat_rng_u32(&rng) % 64) - 32;
        r.act_min = (round % 2 == 0) ? r.zp : -128;
        r.act_max = 127;
        r.acc_lo = -60000;
        r.acc_hi = 60000;
        r.bias = (int32_t)(qat_rng_u32(&rng) % 2000) - 1000;
        float xs = 0.02f, ys = 0.05f;
        onnx_fit f = onnx_fit_channel(&r, xs, ys, 2);
        cr_assert_eq(f.s, (xs * f.param) / ys, "s is QLinearConv's (x_scale * w_scale) / y_scale");
        /* first accumulator reaching each code, on each side (monotone) */
        int64_t first_q[256], first_o[256];
        for (int k = 0; k < 256; k++)
            first_q[k] = first_o[k] = r.acc_hi + 1;
        int32_t pq = -129, po = -129;
        for (int64_t acc = r.acc_lo; acc <= r.acc_hi; acc++) {
            int32_t q = qat_fp_requantize((int32_t)acc, r.m0, r.shift, r.zp, r.act_min, r.act_max);
            int32_t o = onnx_fit_ort_code(&r, f.s, acc + f.offset);
            for (int32_t k = pq + 1; k <= q; k++)
                first_q[k + 128] = acc;
            for (int32_t k = po + 1; k <= o; k++)
                first_o[k + 128] = acc;
            pq = q > pq ? q : pq;
            po = o > po ? o : po;
        }
        int off = 0;
        for (int32_t k = r.act_min + 1; k <= r.act_max; k++)
            off += first_q[k + 128] != first_o[k + 128];
        cr_assert_eq(f.off, off, "round %d: fit reports %d thresholds off, brute force %d", round,
                     f.off, off);
        if (round == 0)
            cr_assert_eq(f.off, 0, "m0 = 2^30 with a relu: exact with offset %d", f.offset);
    }
}
