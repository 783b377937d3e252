/* Quantization parameters: ranges, scales, zero points, bias codes, observers. */
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "qat/fixedpoint.h"
#include "qat/quant.h"

void qat_qrange(int bits, int restricted, int32_t *qmin, int32_t *qmax)
{
    QAT_ASSERT(bits >= 2 && bits <= 8);
    *qmax = (1 << (bits - 1)) - 1;
    *qmin = restricted ? -*qmax : -(1 << (bits - 1));
}

qat_qparams qat_qparams_from_range(float lo, float hi, int bits, int scheme)
{
    qat_qparams p;
    qat_qrange(bits, 0, &p.qmin, &p.qmax);
    lo = lo < 0.0f ? lo : 0.0f;
    hi = hi > 0.0f ? hi : 0.0f;
    if (!isfinite(lo) || !isfinite(hi)) { /* callers check for NaN; stay defined */
        lo = 0.0f;
        hi = 1.0f;
    }
    if (scheme == QAT_SCHEME_SYMMETRIC) {
        float m = fmaxf(-lo, hi);
        p.scale = m / ((float)(p.qmax - p.qmin) / 2.0f);
        p.zero_point = 0;
    } else {
        p.scale = (hi - lo) / (float)(p.qmax - p.qmin);
    }
    /* PyTorch's floor: keeps 1/scale finite for dead (all-zero) outputs. */
    if (!(p.scale > FLT_EPSILON))
        p.scale = FLT_EPSILON;
    if (scheme != QAT_SCHEME_SYMMETRIC) {
        float z = (float)p.qmin - roundf(lo / p.scale);
        p.zero_point = z < (float)p.qmin ? p.qmin : z > (float)p.qmax ? p.qmax : (int32_t)z;
    }
    return p;
}

void qat_weight_scales_symmetric(const float *w, int C, size_t k, int bits, float *scale)
{
    int32_t qmin, qmax;
    qat_qrange(bits, 1, &qmin, &qmax);
    for (int c = 0; c < C; c++) {
        float m = 0.0f;
        const float *row = w + (size_t)c * k;
        for (size_t i = 0; i < k; i++) {
            float a = fabsf(row[i]);
            m = a > m ? a : m;
        }
        scale[c] = m > 0.0f ? m / (float)qmax : 1.0f;
    }
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

void qat_observer_update_ema(qat_observer *o, float batch_lo, float batch_hi, float decay)
{
    if (!o->initialized) {
        o->lo = batch_lo;
        o->hi = batch_hi;
        o->initialized = 1.0f;
        return;
    }
    o->lo = decay * o->lo + (1.0f - decay) * batch_lo;
    o->hi = decay * o->hi + (1.0f - decay) * batch_hi;
}
