/* Choosing the float scales of an ONNX export so that ONNX Runtime's float
 * requantization reproduces qat's fixed-point one (docs/ONNX.md, "Rounding").
 * Pure arithmetic, no protobuf: unit-tested on its own. */
#ifndef QAT_EXPORT_ONNX_FIT_H
#define QAT_EXPORT_ONNX_FIT_H

#include <stdint.h>

/* One output channel of qat's output stage (docs/ARITHMETIC.md §3.4) and
 * the accumulators it can see. */
typedef struct onnx_rq {
    int32_t m0, shift, zp, act_min, act_max;
    int64_t acc_lo, acc_hi; /* reachable accumulators, within int32 */
    int32_t bias;           /* the accumulator of an all-zero-point window */
} onnx_rq;

/* The code ONNX Runtime produces for accumulator acc with the float
 * multiplier s (MLAS: float(acc) * s, clamped to the int8 range, rounded
 * half to even, plus zp), then clamped to [act_min, act_max] (the Clip
 * the export adds for narrow ranges). */
int32_t onnx_fit_ort_code(const onnx_rq *r, float s, int64_t acc);

typedef struct onnx_fit {
    float param;    /* the weight scale to export */
    float s;        /* the multiplier ONNX Runtime will use */
    int offset;     /* added to the exported bias */
    int thresholds; /* output codes whose threshold was checked */
    int off;        /* of those, thresholds at another accumulator than qat's */
} onnx_fit;

/* QLinearConv forms its multiplier from the exported weight scale p as
 * (x_scale * p) / y_scale in float. Picks a bias offset in
 * [-max_offset, max_offset] and a weight scale whose multiplier makes ONNX Runtime step to each output code at the same
 * accumulator as qat for as many codes as possible over [acc_lo, acc_hi],
 * codes near the zero point counting most. (qat's two roundings step up
 * up to one accumulator early on the positive side, and late on the
 * negative one; an offset of the bias absorbs that on one side, the
 * multiplier the rest.) off == 0: agrees for every reachable accumulator. */
onnx_fit onnx_fit_channel(const onnx_rq *r, float x_scale, float y_scale, int max_offset);

/* Output scale for QLinearAveragePool / QuantizeLinear after AveragePool so
 * that ONNX Runtime's float mean, rounded half to even, reproduces qat's
 * integer mean rounded half away from zero (n = window size). */
float onnx_fit_avgpool_scale(float x_scale, int n);

#endif
