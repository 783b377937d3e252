/* Quantization for training: quantization parameters, observers and the
 * fake-quant ops.
 *
 * How QAT stays bit-exact with the integer runtime (docs/QUANTIZATION.md):
 * a quantized conv/linear runs its GEMM on integer codes held in floats
 * (activation codes relative to their zero point, weight codes), which is
 * exact while partial sums stay below 2^24; the accumulator then goes through
 * qat_fp_requantize, the runtime's own output stage. Gradients follow from
 * the chain rule through these ops with straight-through estimators. */
#ifndef QAT_QUANT_H
#define QAT_QUANT_H

#include <stdint.h>

#include "qat/autograd.h"
#include "qat/config.h"

/* Integer range of a b-bit code in an int8 container: activations and
 * asymmetric weights use [-2^(b-1), 2^(b-1)-1]; symmetric weights the
 * restricted [-(2^(b-1)-1), 2^(b-1)-1]. */
void qat_qrange(int bits, int restricted, int32_t *qmin, int32_t *qmax);

typedef struct qat_qparams {
    float scale;
    int32_t zero_point;
    int32_t qmin, qmax;
} qat_qparams;

/* Asymmetric (or symmetric, zp = 0) parameters covering [lo, hi] widened to
 * include 0; degenerate ranges get a tiny positive scale. */
qat_qparams qat_qparams_from_range(float lo, float hi, int bits, int scheme);
/* Per-channel symmetric weight scales: scale[c] = max|w_c| / qmax over rows
 * of length k (channels c = 0..C-1); an all-zero row gets scale 1. */
void qat_weight_scales_symmetric(const float *w, int C, size_t k, int bits, float *scale);
/* The model input's fixed quantization: p -> p - 128, scale 1/255. */
qat_qparams qat_input_qparams(void);

/* Largest |bias code| a layer with K inputs per output may hold so that the
 * int32 accumulator can never overflow (K * (2^wbits - 1) * 255 + |bias|). */
int32_t qat_bias_limit(size_t K, int weight_bits);
/* round(b / acc_scale) clamped to [-limit, limit]. */
int32_t qat_quantize_bias(float b, float acc_scale, int32_t limit);

/* ---- observers -------------------------------------------------------------- */
typedef struct qat_observer {
    float lo, hi;
    float initialized; /* 0 or 1; float so observers live in the state buffer */
} qat_observer;
void qat_observer_update_ema(qat_observer *o, float batch_lo, float batch_hi, float decay);

/* ---- ops -------------------------------------------------------------------- */
/* Activation codes relative to the zero point: k = round(x / scale), for x on
 * (or near) the grid of a quantized activation. Backward: dx += dk / scale. */
qat_tensor *qat_op_act_codes(qat_tape *t, qat_tensor *x, float scale);

/* Weight codes clamp(round(w / scale[c]), qmin, qmax) for C = w->shape[0]
 * rows. Backward: dw += dcode / scale[c], zero where w / scale was outside
 * [qmin, qmax] (clipped STE) unless ste == QAT_STE_IDENTITY. scale must
 * outlive the step. */
qat_tensor *qat_op_weight_codes(qat_tape *t, qat_tensor *w, const float *scale, int32_t qmin,
                                int32_t qmax, int ste);

/* Output stage of a quantized conv/linear. acc holds exact integer
 * accumulators (last axis = C channels, bias not yet added). */
typedef struct qat_requant_params {
    int channels;
    const float *acc_scale;    /* [C] s_in * s_w[c]: real value of one accumulator unit */
    const int32_t *multiplier; /* [C] */
    const int32_t *shift;      /* [C] */
    int32_t bias_limit;
    qat_qparams out;           /* scale, zero point */
    int32_t act_min, act_max;  /* clamp; fused relu: act_min = out.zero_point */
    int ste;
} qat_requant_params;

/* Real-valued range of (acc + bias codes) * acc_scale over the batch,
 * after the activation (relu clamps the low end at 0). For observers. */
void qat_acc_range(qat_tape *t, const qat_tensor *acc, const qat_tensor *bias,
                   const float *acc_scale, int32_t bias_limit, int relu, float *lo, float *hi);
/* out = scale_out * (requantize(acc + bias_q) - zp_out), the runtime's exact
 * arithmetic; bias (float parameter, [C], may be NULL) is quantized with
 * acc_scale. Backward (STE): d acc = dout * acc_scale[c] where the unclamped
 * output lies in [act_min, act_max], and d bias += the same dout. rp's
 * arrays must outlive the step. */
qat_tensor *qat_op_requantize(qat_tape *t, qat_tensor *acc, qat_tensor *bias,
                              const qat_requant_params *rp);

/* Plain fake quantization of a real tensor (per tensor):
 * scale * (clamp(round(x / scale) + zp) - zp), STE per `ste`. */
qat_tensor *qat_op_fake_quant(qat_tape *t, qat_tensor *x, qat_qparams qp, int ste);

/* Quantized average pooling's rounding: given avg = float average of
 * quantized values with scale s, returns s * div_round(sum of codes, n), the
 * runtime's integer average. Backward: identity. */
qat_tensor *qat_op_avgpool_round(qat_tape *t, qat_tensor *avg, float scale, int window);

#endif
