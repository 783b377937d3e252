/* Quantization parameters: code ranges, scales and zero points from a range,
 * bias codes and their budget. */
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

static qat_qparams from_range(float lo, float hi, int32_t qmin, int32_t qmax,
                              qat_quant_scheme scheme)
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

qat_qparams qat_qparams_from_range(float lo, float hi, int bits, qat_quant_scheme scheme)
{
    int32_t qmin, qmax;
    qat_qrange(bits, 0, &qmin, &qmax);
    return from_range(lo, hi, qmin, qmax, scheme);
}

qat_qparams qat_weight_qparams_from_range(float lo, float hi, int bits, qat_quant_scheme scheme)
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
