/* Integer requantization arithmetic (TFLite / gemmlowp conventions), as
 * docs/ARITHMETIC.md specifies. Header-only and pure C: the runtime kernels
 * use it as their scalar oracle, and QAT training calls the very same
 * functions so that what is simulated is exactly what ships. */
#ifndef QAT_FIXEDPOINT_H
#define QAT_FIXEDPOINT_H

#include <math.h>
#include <stdint.h>

/* Valid range of the per-channel requantization shift (left if > 0). */
#define QAT_SHIFT_MIN (-31)
#define QAT_SHIFT_MAX 30

/* round(a * b / 2^31) with ties toward +infinity, saturating the single
 * overflow case INT32_MIN * INT32_MIN (gemmlowp's
 * SaturatingRoundingDoublingHighMul). */
static inline int32_t qat_fp_srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN)
        return INT32_MAX;
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? (1LL << 30) : (1LL - (1LL << 30));
    return (int32_t)((ab + nudge) / (1LL << 31)); /* C division truncates */
}

/* x / 2^exponent rounded to nearest, ties away from zero; exponent in [0, 31]
 * (gemmlowp's RoundingDivideByPOT). */
static inline int32_t qat_fp_rdpot(int32_t x, int exponent)
{
    int32_t mask = (int32_t)((1LL << exponent) - 1);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* x * 2^left saturated to int32; left in [0, 30]. */
static inline int32_t qat_fp_sat_shl(int32_t x, int left)
{
    int64_t v = (int64_t)x * (int64_t)(1LL << left);
    return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;
}

/* The full output stage: acc (int32) -> int8 code in [act_min, act_max]. */
static inline int32_t qat_fp_requantize(int32_t acc, int32_t multiplier, int32_t shift,
                                        int32_t out_zp, int32_t act_min, int32_t act_max)
{
    int left = shift > 0 ? shift : 0;
    int right = shift > 0 ? 0 : -shift;
    int64_t v = (int64_t)qat_fp_rdpot(qat_fp_srdhm(qat_fp_sat_shl(acc, left), multiplier), right);
    v += out_zp;
    return v < act_min ? act_min : v > act_max ? act_max : (int32_t)v;
}

/* acc * M rounded: the output stage before the zero point and the clamp
 * (docs/ARITHMETIC.md §4.1 Rescale). */
static inline int32_t qat_fp_rescale(int32_t acc, int32_t multiplier, int32_t shift)
{
    int left = shift > 0 ? shift : 0;
    int right = shift > 0 ? 0 : -shift;
    return qat_fp_rdpot(qat_fp_srdhm(qat_fp_sat_shl(acc, left), multiplier), right);
}

/* The integer add (docs/ARITHMETIC.md §4.1, TFLite's ADD): a and b are input
 * code differences x - zp (|.| <= 255), each scaled up by 2^left_shift and
 * rescaled to a common scale by its multiplier (shift <= 0: M < 1, so each
 * stays below 2^28 and the sum fits in int32), then the sum requantized to
 * the output. */
static inline int32_t qat_fp_add(int32_t a, int32_t b, int left_shift, int32_t mult_a,
                                 int32_t shift_a, int32_t mult_b, int32_t shift_b,
                                 int32_t mult_out, int32_t shift_out, int32_t out_zp,
                                 int32_t act_min, int32_t act_max)
{
    int32_t ra = qat_fp_rescale(qat_fp_sat_shl(a, left_shift), mult_a, shift_a);
    int32_t rb = qat_fp_rescale(qat_fp_sat_shl(b, left_shift), mult_b, shift_b);
    return qat_fp_requantize(ra + rb, mult_out, shift_out, out_zp, act_min, act_max);
}

/* The same output stage for shift <= 0 written as floor shifts, branch-free
 * so that loops over it vectorise. gemmlowp's SRDHM (nudge, then truncate
 * toward zero) equals floor((a m + 2^30) / 2^31) for every a, m except the
 * saturating INT32_MIN * INT32_MIN (impossible here: m >= 0), and
 * RoundingDivideByPOT(v, r) equals floor((v + 2^(r-1) - [v < 0]) / 2^r)
 * for r >= 1. rnd must be 2^(r-1) for r >= 1 and 0 for r = 0. Returns the
 * unclamped code (acc * M rounded, plus zp) as int64. */
static inline int64_t qat_fp_requantize_right(int32_t acc, int32_t multiplier, int right, int64_t rnd,
                                              int32_t out_zp)
{
    int64_t v = ((int64_t)acc * multiplier + ((int64_t)1 << 30)) >> 31;
    v = (v + rnd - (int64_t)((rnd != 0) & (v < 0))) >> right;
    return v + out_zp;
}

/* Decomposes a real multiplier M = m0 * 2^(shift - 31), m0 in [2^30, 2^31).
 * M == 0 (or M below 2^-32, where every output would round to zp) gives
 * m0 = 0, shift = 0. Returns 0 on success, -1 if M is negative, not finite,
 * or too large (>= 2^30) to represent. */
static inline int qat_fp_quantize_multiplier(double M, int32_t *m0, int32_t *shift)
{
    *m0 = 0;
    *shift = 0;
    if (!(M >= 0.0) || !isfinite(M))
        return -1;
    if (M == 0.0)
        return 0;
    int e = 0;
    double q = frexp(M, &e);
    long long qf = llround(q * 2147483648.0);
    if (qf == (1LL << 31)) {
        qf /= 2;
        e++;
    }
    if (e < QAT_SHIFT_MIN) {
        return 0; /* |M| < 2^-32: output is the zero point */
    }
    if (e > QAT_SHIFT_MAX)
        return -1;
    *m0 = (int32_t)qf;
    *shift = e;
    return 0;
}

/* round(x) with ties away from zero, for |x| < 2^31 (callers clamp first).
 * Written with an int conversion instead of roundf: on baseline x86-64
 * roundf is a libm call, and this sits in every fake-quant loop. The
 * fraction x - trunc(x) is exact, so the result equals roundf(x). */
static inline int32_t qat_fp_round(float x)
{
    int32_t i = (int32_t)x; /* truncates toward zero */
    float f = x - (float)i;
    return i + (f >= 0.5f) - (f <= -0.5f);
}

/* Float -> integer quantization used everywhere a real value becomes a code:
 * clamp(round_half_away(x / scale) + zp, qmin, qmax). NaN gives qmin. */
static inline int32_t qat_fp_quantize(float x, float scale, int32_t zp, int32_t qmin, int32_t qmax)
{
    float r = x / scale;
    /* Clamp in float first so huge values cannot overflow the conversion. */
    if (!(r >= (float)(qmin - zp) - 1.0f))
        return qmin;
    if (r > (float)(qmax - zp) + 1.0f)
        return qmax;
    int32_t q = qat_fp_round(r) + zp;
    return q < qmin ? qmin : q > qmax ? qmax : q;
}

/* qat_fp_quantize without branches (the same result for every input, NaN
 * included), for loops that must vectorise. */
static inline int32_t qat_fp_quantize_vec(float x, float scale, int32_t zp, int32_t qmin, int32_t qmax)
{
    float r = x / scale;
    float lo = (float)(qmin - zp) - 1.0f, hi = (float)(qmax - zp) + 1.0f;
    r = r >= lo ? r : lo; /* NaN -> lo -> qmin */
    r = r <= hi ? r : hi;
    int32_t i = (int32_t)r;
    float f = r - (float)i;
    int32_t q = i + (f >= 0.5f) - (f <= -0.5f) + zp;
    q = q < qmin ? qmin : q;
    return q > qmax ? qmax : q;
}

/* Rounded integer average used by avgpool: round_half_away(sum / n), n > 0. */
static inline int32_t qat_fp_div_round(int32_t sum, int32_t n)
{
    return sum >= 0 ? (sum + n / 2) / n : -((-sum + n / 2) / n);
}

#endif
