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
} onnx_rq;

/* The code ONNX Runtime produces for accumulator acc with the float
 * multiplier s (MLAS: float(acc) * s, clamped to the int8 range, rounded
 * half to even, plus zp), then clamped to [act_min, act_max] (the Clip
 * the export adds for narrow ranges). */
int32_t onnx_fit_ort_code(const onnx_rq *r, float s, int32_t acc);

/* How ONNX Runtime forms the multiplier from the exported parameter p:
 * DIRECT: s = p (Mul by p, then QuantizeLinear with scale 1);
 * PRODUCT: s = (x_scale * p) / y_scale in float, as QLinearConv computes
 * its output scale from x_scale, the weight scale p and y_scale. */
typedef enum { ONNX_FIT_DIRECT, ONNX_FIT_PRODUCT } onnx_fit_mode;

typedef struct onnx_fit {
    float param;    /* the value to export (Mul operand or weight scale) */
    float s;        /* the multiplier ONNX Runtime will use */
    int thresholds; /* output codes whose threshold was checked */
    int off;        /* of those, thresholds at another accumulator than qat's */
} onnx_fit;

/* Searches float parameters around the exact one (a few hundred ulps) for
 * the one whose multiplier agrees with qat on the most output-code
 * thresholds over [acc_lo, acc_hi], the nearest to exact among equals.
 * off == 0 means the channel's output agrees for every reachable
 * accumulator. */
onnx_fit onnx_fit_channel(const onnx_rq *r, onnx_fit_mode mode, float x_scale, float y_scale);

/* Output scale for QLinearAveragePool / QuantizeLinear after AveragePool so
 * that ONNX Runtime's float mean, rounded half to even, reproduces qat's
 * integer mean rounded half away from zero (n = window size). */
float onnx_fit_avgpool_scale(float x_scale, int n);

#endif
