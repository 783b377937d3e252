/* qat requantizes with gemmlowp's fixed point (a 31-bit multiplier, two
 * roundings, ties away from zero); ONNX Runtime multiplies float(acc) by a
 * float32 scale and rounds half to even. Both are monotone in the
 * accumulator, so they agree on every accumulator exactly when, for every
 * output code k, the smallest accumulator giving >= k is the same. This
 * file finds those thresholds for qat and searches the float32 parameters
 * near the exact multiplier for the one that moves the fewest of them. */
#include "onnx_fit.h"

#include <math.h>

#include "qat/fixedpoint.h"

#define FIT_STEPS 384 /* ulps searched on each side of the exact parameter */

static int32_t qat_code(const onnx_rq *r, int64_t acc)
{
    return qat_fp_requantize((int32_t)acc, r->m0, r->shift, r->zp, r->act_min, r->act_max);
}

int32_t onnx_fit_ort_code(const onnx_rq *r, float s, int32_t acc)
{
    float v = (float)acc * s;
    float lo = (float)(-128 - r->zp), hi = (float)(127 - r->zp);
    v = v < lo ? lo : v > hi ? hi : v;
    int32_t q = (int32_t)nearbyintf(v) + r->zp; /* default rounding: half to even */
    return q < r->act_min ? r->act_min : q > r->act_max ? r->act_max : q;
}

/* Smallest acc in [lo, hi] with qat_code >= k, or hi + 1. */
static int64_t qat_threshold(const onnx_rq *r, int32_t k)
{
    int64_t lo = r->acc_lo, hi = r->acc_hi + 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (qat_code(r, mid) >= k)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static float multiplier(onnx_fit_mode mode, float p, float x_scale, float y_scale)
{
    if (mode == ONNX_FIT_DIRECT)
        return p;
    float t = x_scale * p; /* two float32 roundings, as QLinearConv does */
    return t / y_scale;
}

/* Thresholds where ORT with multiplier s steps elsewhere than qat. */
static int count_off(const onnx_rq *r, const int64_t *thr, int n, float s)
{
    int off = 0;
    for (int i = 0; i < n; i++) {
        int32_t k = r->act_min + 1 + i;
        int64_t t = thr[i];
        if (t <= r->acc_hi && onnx_fit_ort_code(r, s, (int32_t)t) < k)
            off++;
        else if (t - 1 >= r->acc_lo && onnx_fit_ort_code(r, s, (int32_t)(t - 1)) >= k)
            off++;
    }
    return off;
}

onnx_fit onnx_fit_channel(const onnx_rq *r, onnx_fit_mode mode, float x_scale, float y_scale)
{
    /* qat's real multiplier; a zero multiplier (every output is zp) is
     * given a tiny positive one, which rounds every accumulator to 0 too */
    double M = r->m0 ? ldexp((double)r->m0, r->shift - 31) : ldexp(1.0, -40);
    double p0 = mode == ONNX_FIT_DIRECT ? M : M * (double)y_scale / (double)x_scale;
    int64_t thr[256];
    int n = r->act_max - r->act_min;
    for (int i = 0; i < n; i++)
        thr[i] = qat_threshold(r, r->act_min + 1 + i);
    float center = (float)p0;
    onnx_fit best = {center, multiplier(mode, center, x_scale, y_scale), n, n + 1};
    float up = center, down = center;
    for (int step = 0; step <= FIT_STEPS && best.off > 0; step++) {
        for (int side = 0; side < (step ? 2 : 1); side++) {
            float p = step == 0 ? center : side == 0 ? (up = nextafterf(up, INFINITY))
                                                    : (down = nextafterf(down, 0.0f));
            float s = multiplier(mode, p, x_scale, y_scale);
            int off = count_off(r, thr, n, s);
            if (off < best.off) {
                best.param = p;
                best.s = s;
                best.off = off;
            }
        }
    }
    return best;
}

float onnx_fit_avgpool_scale(float x_scale, int n)
{
    /* qat: DivRound(sum, n), ties away from zero. ORT: the float mean m =
     * sum / n (in code units) rounded half to even. With n odd, sum / n is
     * never a tie and sits at least 1/(2n) from one: the plain scale works.
     * With n even, dividing by a scale 1/(256 n) smaller pushes a tie
     * (|m| >= 1/2) outward by >= 1/(512 n), enough to beat float error in
     * the mean, while no non-tie (>= 1/n from a tie, |m| <= 255) crosses. */
    if (n % 2)
        return x_scale;
    return (float)((double)x_scale * (1.0 - 1.0 / (256.0 * n)));
}
