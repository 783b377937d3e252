/* qat requantizes with gemmlowp's fixed point (a 31-bit multiplier, two
 * roundings, ties away from zero); ONNX Runtime multiplies float(acc) by a
 * float32 scale and rounds half to even. Both are monotone in the
 * accumulator, so they agree on every accumulator exactly when, for every
 * output code k, the smallest accumulator giving >= k is the same: the
 * code's threshold. This file finds qat's thresholds and picks the bias
 * offset and float parameter that make ONNX Runtime step at as many of
 * them as it can (docs/ONNX.md, "Rounding"). */
#include "onnx_fit.h"

#include <math.h>
#include <stdlib.h>

#include "qat/fixedpoint.h"

#define FIT_STEPS 8 /* float ulps checked on each side of a candidate */

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static int32_t qat_code(const onnx_rq *r, int64_t acc)
{
    return qat_fp_requantize((int32_t)acc, r->m0, r->shift, r->zp, r->act_min, r->act_max);
}

int32_t onnx_fit_ort_code(const onnx_rq *r, float s, int64_t acc)
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

static float multiplier(float p, float x_scale, float y_scale)
{
    float t = x_scale * p; /* two float32 roundings, as QLinearConv does */
    return t / y_scale;
}

/* One output code's threshold: qat steps to code k at accumulator t (t <=
 * acc_lo: every reachable accumulator gives >= k; t > acc_hi: none does). */
typedef struct thr {
    int32_t k;
    int64_t t;
    double weight; /* how much agreeing here matters */
} thr;

/* Whether ONNX Runtime, with bias offset c and multiplier s, steps to k at
 * the same accumulator as qat (within the reachable range). */
static int thr_ok(const onnx_rq *r, const thr *h, int c, float s)
{
    if (h->t <= r->acc_hi && onnx_fit_ort_code(r, s, max64(h->t, r->acc_lo) + c) < h->k)
        return 0;
    if (h->t - 1 >= r->acc_lo && onnx_fit_ort_code(r, s, min64(h->t - 1, r->acc_hi) + c) >= h->k)
        return 0;
    return 1;
}

/* What a threshold off costs: the accumulators between ONNX Runtime's step
 * and qat's (each gives a code one off), from the real-number estimate of
 * where ONNX Runtime steps, at least 1. */
static double miss(const onnx_rq *r, const thr *h, int c, float s)
{
    double t = ceil(((double)(h->k - r->zp) - 0.5) / (double)s) - c;
    t = fmin(fmax(t, (double)r->acc_lo), (double)r->acc_hi + 1);
    double d = fabs(t - (double)h->t);
    return d < 1 ? 1 : d;
}

/* Weighted count of accumulators whose code differs; *off: thresholds off. */
static double cost(const onnx_rq *r, const thr *h, int n, int c, float s, int *off)
{
    double sum = 0;
    *off = 0;
    for (int i = 0; i < n; i++)
        if (!thr_ok(r, &h[i], c, s)) {
            sum += h[i].weight * miss(r, &h[i], c, s);
            (*off)++;
        }
    return sum;
}

/* The real interval of s over which threshold h holds with offset c:
 * (t + c) s >= k' - 1/2 and (t - 1 + c) s < k' - 1/2, k' = k - zp (float
 * rounding and ties aside: candidates are checked exactly afterwards). */
static int thr_interval(const onnx_rq *r, const thr *h, int c, double *lo, double *hi)
{
    double kh = (double)(h->k - r->zp) - 0.5;
    *lo = 0;
    *hi = INFINITY;
    if (h->t <= r->acc_hi) {
        double a = (double)(max64(h->t, r->acc_lo) + c);
        if (a > 0)
            *lo = fmax(*lo, kh / a);
        else if (a < 0)
            *hi = fmin(*hi, kh / a);
        else if (kh > 0)
            return 0;
    }
    if (h->t - 1 >= r->acc_lo) {
        double b = (double)(min64(h->t - 1, r->acc_hi) + c);
        if (b > 0)
            *hi = fmin(*hi, kh / b);
        else if (b < 0)
            *lo = fmax(*lo, kh / b);
        else if (kh <= 0)
            return 0;
    }
    return *lo < *hi;
}

typedef struct ev {
    double at, dw;
} ev;

static int ev_cmp(const void *a, const void *b)
{
    const ev *x = a, *y = b;
    return x->at < y->at ? -1 : x->at > y->at ? 1 : (x->dw < y->dw) - (x->dw > y->dw);
}

/* The middle of the s range that lies in the heaviest set of threshold
 * intervals (a sweep over their ends). 0 if there is none. */
static int best_s(const onnx_rq *r, const thr *h, int n, int c, double *s_out)
{
    ev e[2 * 256];
    int m = 0;
    for (int i = 0; i < n; i++) {
        double lo, hi;
        if (!thr_interval(r, &h[i], c, &lo, &hi))
            continue;
        if (!isfinite(hi))
            hi = lo > 0 ? 4 * lo : 1.0;
        e[m++] = (ev){lo, h[i].weight};
        e[m++] = (ev){hi, -h[i].weight};
    }
    if (!m)
        return 0;
    qsort(e, (size_t)m, sizeof *e, ev_cmp);
    double cur = 0, best = -1;
    for (int i = 0; i + 1 < m; i++) {
        cur += e[i].dw;
        if (cur > best + 1e-12 && e[i + 1].at > e[i].at) {
            best = cur;
            *s_out = 0.5 * (e[i].at + e[i + 1].at);
        }
    }
    return best > 0;
}

onnx_fit onnx_fit_channel(const onnx_rq *r, float x_scale, float y_scale, int max_offset)
{
    /* qat's real multiplier; a zero multiplier (every output is zp) is
     * given a tiny positive one, which rounds every accumulator to 0 too */
    double M = r->m0 ? ldexp((double)r->m0, r->shift - 31) : ldexp(1.0, -40);
    thr h[256];
    int n = r->act_max - r->act_min;
    for (int i = 0; i < n; i++) {
        h[i].k = r->act_min + 1 + i;
        h[i].t = qat_threshold(r, h[i].k);
        /* activations crowd at small codes (ReLU outputs start there):
         * those thresholds are crossed most often */
        h[i].weight = 1.0 / fabs((double)(h[i].k - r->zp) - 0.5);
    }
    onnx_fit best = {0, 0, 0, n, n + 1};
    double best_cost = INFINITY;
    for (int ci = 0; ci <= 2 * max_offset; ci++) {
        int c = (ci + 1) / 2 * (ci % 2 ? 1 : -1); /* 0, 1, -1, 2, -2, ... */
        double cands[2] = {M, 0};
        int nc = 1;
        if (best_s(r, h, n, c, &cands[1]))
            nc++;
        for (int j = 0; j < nc; j++) {
            double p0 = cands[j] * y_scale / x_scale;
            float up = (float)p0, down = up;
            for (int step = 0; step <= FIT_STEPS; step++)
                for (int side = 0; side < (step ? 2 : 1); side++) {
                    float p = step == 0 ? up : side == 0 ? (up = nextafterf(up, INFINITY))
                                                         : (down = nextafterf(down, 0.0f));
                    float s = multiplier(p, x_scale, y_scale);
                    int off;
                    double co = cost(r, h, n, c, s, &off);
                    if (co < best_cost - 1e-12) {
                        best_cost = co;
                        best = (onnx_fit){p, s, c, n, off};
                    }
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
