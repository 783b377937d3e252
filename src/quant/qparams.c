/* Quantization parameters: ranges, scales, zero points, bias codes, observers. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qat/fixedpoint.h"
#include "qat/quant.h"
#include "qat/select.h"

void qat_qrange(int bits, int restricted, int32_t *qmin, int32_t *qmax)
{
    QAT_ASSERT(bits >= 2 && bits <= 8);
    *qmax = (1 << (bits - 1)) - 1;
    *qmin = restricted ? -*qmax : -(1 << (bits - 1));
}

static qat_qparams from_range(float lo, float hi, int32_t qmin, int32_t qmax, int scheme)
{
    qat_qparams p = {1.0f, 0, qmin, qmax};
    lo = lo < 0.0f ? lo : 0.0f;
    hi = hi > 0.0f ? hi : 0.0f;
    if (!isfinite(lo) || !isfinite(hi)) { /* callers check for NaN; stay defined */
        lo = 0.0f;
        hi = 1.0f;
    }
    if (scheme == QAT_SCHEME_SYMMETRIC) {
        float m = -lo > hi ? -lo : hi;
        /* restricted ranges map +-m to +-qmax; full ones to the half range */
        p.scale = qmin == -qmax ? m / (float)qmax : m / ((float)(qmax - qmin) / 2.0f);
    } else {
        p.scale = (hi - lo) / (float)(qmax - qmin);
    }
    /* PyTorch's floor: keeps 1/scale finite for dead (all-zero) outputs. */
    if (!(p.scale > FLT_EPSILON))
        p.scale = FLT_EPSILON;
    if (scheme != QAT_SCHEME_SYMMETRIC) {
        float z = (float)qmin - (float)qat_fp_round(lo / p.scale);
        p.zero_point = z < (float)qmin ? qmin : z > (float)qmax ? qmax : (int32_t)z;
    }
    return p;
}

qat_qparams qat_qparams_from_range(float lo, float hi, int bits, int scheme)
{
    int32_t qmin, qmax;
    qat_qrange(bits, 0, &qmin, &qmax);
    return from_range(lo, hi, qmin, qmax, scheme);
}

qat_qparams qat_weight_qparams_from_range(float lo, float hi, int bits, int scheme)
{
    int32_t qmin, qmax;
    qat_qrange(bits, scheme == QAT_SCHEME_SYMMETRIC, &qmin, &qmax);
    qat_qparams p = from_range(lo, hi, qmin, qmax, scheme);
    if (scheme == QAT_SCHEME_SYMMETRIC && !(lo < 0.0f || hi > 0.0f))
        p.scale = 1.0f; /* an all-zero (e.g. pruned) channel: any scale works */
    return p;
}

qat_qparams qat_input_qparams(void)
{
    qat_qparams p = {1.0f / 255.0f, -128, -128, 127};
    return p;
}

int32_t qat_bias_limit(size_t K, int weight_bits)
{
    int64_t worst = (int64_t)K * (((int64_t)1 << weight_bits) - 1) * 255;
    int64_t lim = (int64_t)INT32_MAX - worst;
    return lim < 0 ? 0 : (int32_t)lim;
}

int32_t qat_quantize_bias(float b, float acc_scale, int32_t limit)
{
    double r = round((double)b / (double)acc_scale);
    if (!(r >= -(double)limit)) /* also NaN */
        return -limit;
    if (r > (double)limit)
        return limit;
    return (int32_t)r;
}

void qat_observer_update(qat_observer *o, int kind, float batch_lo, float batch_hi, float decay)
{
    if (!o->initialized) {
        o->lo = batch_lo;
        o->hi = batch_hi;
        o->initialized = 1.0f;
        return;
    }
    if (kind == QAT_OBS_MINMAX) {
        o->lo = batch_lo < o->lo ? batch_lo : o->lo;
        o->hi = batch_hi > o->hi ? batch_hi : o->hi;
        return;
    }
    o->lo = decay * o->lo + (1.0f - decay) * batch_lo;
    o->hi = decay * o->hi + (1.0f - decay) * batch_hi;
}

#define HIST_BINS 2048

/* Percentiles by histogram: the edge of the bin where the cumulative count
 * crosses the share. Bin edges, not interpolation: cheap, and within one bin
 * width ((hi - lo) / 2048) of the exact order statistic. */
void qat_values_range(const float *x, size_t n, int kind, float percentile, float *lo, float *hi)
{
    float a = INFINITY, b = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        a = x[i] < a ? x[i] : a;
        b = x[i] > b ? x[i] : b;
    }
    *lo = a;
    *hi = b;
    if (kind != QAT_OBS_PERCENTILE || percentile >= 100.0f || !(b > a))
        return;
    uint32_t hist[HIST_BINS];
    memset(hist, 0, sizeof hist);
    float w = (b - a) / HIST_BINS;
    for (size_t i = 0; i < n; i++) {
        int k = (int)((x[i] - a) / w);
        hist[k < 0 ? 0 : k >= HIST_BINS ? HIST_BINS - 1 : k]++;
    }
    double tail = (1.0 - (double)percentile / 100.0) * (double)n;
    double c = 0;
    int k;
    for (k = 0; k < HIST_BINS - 1 && c + hist[k] <= tail; k++)
        c += hist[k];
    *lo = a + w * (float)k;
    c = 0;
    for (k = HIST_BINS - 1; k > 0 && c + hist[k] <= tail; k--)
        c += hist[k];
    *hi = a + w * (float)(k + 1);
    if (*lo > 0.0f && a <= 0.0f)
        *lo = 0.0f;
}

static void weight_ranges(const float *w, int C, size_t k, int per_channel, int kind,
                          float percentile, int scheme, int skip_zeros, float *lo, float *hi,
                          float *scratch)
{
    int rows = per_channel ? C : 1;
    size_t len = per_channel ? k : (size_t)C * k;
    for (int r = 0; r < rows; r++) {
        const float *row = w + (size_t)r * len;
        if (kind != QAT_OBS_PERCENTILE || percentile >= 100.0f) {
            float a = INFINITY, b = -INFINITY;
            for (size_t i = 0; i < len; i++) {
                a = row[i] < a ? row[i] : a;
                b = row[i] > b ? row[i] : b;
            }
            lo[r] = a;
            hi[r] = b;
            continue;
        }
        /* Percentile of the magnitudes (symmetric) or of the values. */
        size_t n = 0;
        for (size_t i = 0; i < len; i++)
            if (!skip_zeros || row[i] != 0.0f)
                scratch[n++] = scheme == QAT_SCHEME_SYMMETRIC ? fabsf(row[i]) : row[i];
        if (n == 0) { /* a fully pruned row */
            lo[r] = hi[r] = 0.0f;
            continue;
        }
        size_t top = (size_t)ceil((double)percentile / 100.0 * (double)n);
        top = top == 0 ? 0 : top - 1;
        hi[r] = qat_select_kth(scratch, n, top);
        lo[r] = scheme == QAT_SCHEME_SYMMETRIC ? -hi[r] : qat_select_kth(scratch, n, n - 1 - top);
    }
}

void qat_weight_ranges(const float *w, int C, size_t k, int per_channel, int kind,
                       float percentile, int scheme, float *lo, float *hi, float *scratch)
{
    weight_ranges(w, C, k, per_channel, kind, percentile, scheme, 0, lo, hi, scratch);
}

void qat_weight_ranges_pruned(const float *w, int C, size_t k, int per_channel, int kind,
                              float percentile, int scheme, float *lo, float *hi,
                              float *scratch)
{
    weight_ranges(w, C, k, per_channel, kind, percentile, scheme, 1, lo, hi, scratch);
}
