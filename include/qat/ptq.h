/* Post-training quantization of a trained model ([train] mode = ptq): its
 * observers run over calibration images drawn from the training set, with
 * no weight update, then error compensation corrects what quantization
 * lost -- batchnorm re-estimation, learned rounding (AdaRound) and
 * empirical bias correction, layer by layer. The result is an ordinary
 * model whose quantized forward is the exact integer path export writes.
 * docs/QUANTIZATION.md ("Post-training quantization") has the methods. */
#ifndef QAT_PTQ_H
#define QAT_PTQ_H

#include <stdio.h>

#include "qat/train.h"

/* What compensation did to one conv/linear layer; NaN where it did not run. */
typedef struct qat_ptq_layer_report {
    const char *name; /* the model's layer name */
    /* AdaRound: the layer's reconstruction error on the sampled calibration
     * outputs, mean over outputs of sum over channels of (quantized - float)^2
     * after the activation, with round-to-nearest and with the learned
     * rounding; weights whose code differs from round-to-nearest; learned
     * codes the quantizer did not reproduce from the written weights
     * (always 0: export writes the learned rounding); a learned rounding
     * that reconstructs worse than round-to-nearest is not used */
    double round_error_nearest, round_error_learned;
    long codes_flipped, codes_mismatched;
    int rounding_kept_nearest; /* the learned rounding was no better: not used */
    /* bias correction: mean over channels of |E[float] - E[quantized]| of
     * the pre-activation outputs on the calibration images, before and
     * after the correction; 0 channels corrected when the layer has no
     * bias to correct */
    double bias_error_before, bias_error_after;
    int bias_corrected;
} qat_ptq_layer_report;

typedef struct qat_ptq_report {
    int calibration_images;
    double calibration_seconds;  /* observers over the calibration images */
    double compensation_seconds; /* BN re-estimation, AdaRound, bias correction */
    int bn_layers_reestimated;
    int nlayers; /* conv/linear layers, model order */
    qat_ptq_layer_report layers[QAT_MAX_LAYERS];
} qat_ptq_report;

/* Quantizes t's model (initialised from [train] init by qat_train) as its
 * config's [ptq] and [quant] say: calibration_images training images drawn
 * with [train] seed (more than the training set holds is QAT_EINVAL naming
 * the config and the key), observers reset and run in eval mode, then each
 * compensation that is on. Quantization stays on. Progress goes to log
 * (NULL: quiet). */
qat_status qat_ptq(qat_trained *t, FILE *log, qat_ptq_report *rep, qat_error *err);

/* ---- AdaRound's per-layer problem (src/ptq/adaround.c) ---------------------------
 * Exposed for its tests. A conv/linear layer's effective weights w [C, K]
 * are quantized with per-row scale[c] and zero point zp[c] into codes
 * [qmin, qmax]; a weight may round down to floor(w / s) + zp or one code up,
 * chosen through h(v) = clamp(sigmoid(v) (zeta - gamma) + gamma, 0, 1) with
 * zeta = 1.1, gamma = -0.1 (the rectified sigmoid). Exact zeros and the
 * extremes of each scale group stay at round-to-nearest, and no other
 * weight leaves the group's value range, so the weight observer finds the
 * same scales in the rounded weights. */
typedef struct qat_adaround {
    int C;
    size_t K;
    const float *w;       /* [C * K] */
    const float *bias;    /* [C] the bias the quantized layer adds (real units) */
    const float *scale;   /* [C] */
    const int32_t *zp;    /* [C] */
    int32_t qmin, qmax;
    int relu;             /* the loss compares outputs after the relu */
    int per_tensor;       /* one scale group (the extremes pinned over all rows) */
    /* set up by qat_adaround_init */
    float *v;             /* [C * K] rounding variables */
    int32_t *down;        /* [C * K] the lower code, or the fixed one */
    unsigned char *kind;  /* [C * K] 0 free, 1 fixed, 2 pinned (keeps its float value) */
    float *wq;            /* [C * K] scratch: soft-quantized weights */
    float *dwq;           /* [C * K] scratch: their gradient */
    float *h, *dh;        /* [C * K] scratch: h(v) and dh/dv of the last objective */
} qat_adaround;

/* Allocates the arrays and starts v where h(v) is each weight's fractional
 * code (so the soft weights begin at the float ones). */
qat_status qat_adaround_init(qat_adaround *a, qat_error *err);
void qat_adaround_free(qat_adaround *a);
/* The objective on B rows: X [B, K] inputs (real values), T [B, C] the
 * float layer's outputs before the activation. Returns
 *   (1/B) sum (f(X wq^T + bias) - f(T))^2 + lambda sum_free (1 - |2h - 1|^beta)
 * with f the relu (or identity) and wq the soft weights; dv (C * K, or NULL)
 * receives its gradient in v. y is scratch [B, C]. */
double qat_adaround_objective(qat_adaround *a, qat_team *team, const float *X, const float *T,
                              int B, float beta, float lambda, float *dv, float *y);
/* The chosen codes: h(v) >= 1/2 rounds up; fixed and pinned weights keep
 * theirs (pinned: their round-to-nearest code). */
void qat_adaround_codes(const qat_adaround *a, int32_t *codes);
/* Round-to-nearest codes of the same weights, for comparison. */
void qat_adaround_nearest(const qat_adaround *a, int32_t *codes);
/* (1/R) sum (f(X wq^T + bias) - f(T))^2 with wq = scale (codes - zp) (the
 * dequantized weights of codes); y scratch [R, C]. */
double qat_adaround_error(const qat_adaround *a, qat_team *team, const int32_t *codes,
                          const float *X, const float *T, size_t R, float *y);
/* Runs iterations Adam steps (learning rate 0.01) on batches of up to 256
 * rows of X [R, K] / T [R, C], which it shuffles in place with rng (pairs
 * stay together) and walks through in windows; lambda = 0.01 after a 20%
 * warm-up without it, beta annealed from 20 to 2 (cosine), as in Nagel et
 * al. 2020 and AIMET's defaults. */
qat_status qat_adaround_optimize(qat_adaround *a, qat_team *team, float *X, float *T, size_t R,
                                 int iterations, qat_rng *rng, qat_error *err);

#endif
