/* Quantization for training: quantization parameters, observers and the
 * fake-quant ops.
 *
 * How QAT stays bit-exact with the integer runtime (docs/QUANTIZATION.md):
 * a quantized conv/linear runs its GEMM on integer codes held in floats
 * (activation codes relative to their zero point, weight codes relative to
 * theirs), which is exact while partial sums stay below 2^24; the
 * accumulator then goes through qat_fp_requantize, the runtime's own output
 * stage. Gradients follow from the chain rule through these ops with
 * straight-through estimators. Scales enter the ops as tensors, so learned
 * step sizes (LSQ) get their gradients from the same graph.
 *
 * Files: qparams.c (scales from ranges, bias codes), observe.c (ranges and
 * observers), mse.c (MSE-optimal clipping), policy.c (which scales a layer uses, and its state),
 * fq_ops.c and requant.c (the ops). */
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

/* Parameters covering [lo, hi] widened to include 0. Asymmetric: the full
 * range with a fitted zero point. Symmetric: zero point 0, scale
 * max(|lo|, |hi|) / qmax; restricted selects the weights' range.
 * Degenerate ranges get a tiny positive scale. */
qat_qparams qat_qparams_from_range(float lo, float hi, int bits, qat_quant_scheme scheme);
qat_qparams qat_weight_qparams_from_range(float lo, float hi, int bits, qat_quant_scheme scheme);
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
    int initialized; /* has seen a batch */
} qat_observer;
/* Folds a batch range into the observer: MINMAX keeps the running extremes,
 * EMA and PERCENTILE (whose batch range is already a percentile range)
 * blend with weight 1 - decay; the first batch sets the range. */
void qat_observer_update(qat_observer *o, qat_observer_kind kind, float batch_lo, float batch_hi,
                         float decay);
/* Range of n values for an observer kind: min/max, or for PERCENTILE the
 * (100 - p)-th and p-th percentiles (histogram of 2048 bins, bin edges). */
void qat_values_range(const float *x, size_t n, qat_observer_kind kind, float percentile,
                      float *lo, float *hi);
/* Per-row ranges of a weight matrix (rows of length k; rows = 1 for a
 * per-tensor range over all C * k values): MINMAX/EMA give min/max,
 * PERCENTILE gives percentiles of |w| (symmetric) or of w (asymmetric).
 * scratch holds k * rows floats. */
void qat_weight_ranges(const float *w, int C, size_t k, int per_channel, qat_observer_kind kind,
                       float percentile, qat_quant_scheme scheme, float *lo, float *hi,
                       float *scratch);
/* The same for a pruned model ([prune] method set): exact zeros are pruned
 * weights and take no part in a percentile (they would drag it toward 0 and
 * shrink the scale of the weights that remain); a row of only zeros gets
 * [0, 0]. MINMAX/EMA ranges are unchanged: a zero never moves a range that
 * includes 0, as every weight range does once quantized. */
void qat_weight_ranges_pruned(const float *w, int C, size_t k, int per_channel,
                              qat_observer_kind kind, float percentile, qat_quant_scheme scheme,
                              float *lo, float *hi, float *scratch);

/* MSE-optimal clipping (kind QAT_OBS_MSE, src/quant/mse.c): the range
 * t * [lo, hi] with t from the grid 1.00, 0.99, ..., 0.20 (QAT_MSE_GRID
 * ratios, qat_mse_grid_ratio(j) = 1 - j / 100) whose b-bit quantization
 * (scheme's parameters from that range) has the smallest squared error;
 * [lo, hi] is the values' range widened to include 0, and ties keep the
 * wider range. Weights: every value scored, per row of k (per_channel, C
 * rows) or over all C * k; values: a 2048-bin histogram. */
#define QAT_MSE_GRID 81
float qat_mse_grid_ratio(int j);
void qat_weight_ranges_mse(const float *w, int C, size_t k, int per_channel, int bits,
                           qat_quant_scheme scheme, float *lo, float *hi);
void qat_values_range_mse(const float *x, size_t n, int bits, qat_quant_scheme scheme, float *lo,
                          float *hi);

/* ---- ops -------------------------------------------------------------------- */
/* A one-element (or C-element) constant tensor on the tape: scales that are
 * not learned. */
qat_tensor *qat_tape_const(qat_tape *t, const float *v, int n);

/* Activation codes relative to the zero point: k = round(x / s), s =
 * scale->data[0], for x on (or near) the grid of a quantized activation.
 * Backward: dx += dk / s; dscale += sum dk * (-k / s). */
qat_tensor *qat_op_act_codes(qat_tape *t, qat_tensor *x, qat_tensor *scale);

/* Weight codes relative to the zero point, q - z with q = clamp(round(w / s)
 * + z, qmin, qmax), per output channel (scale->numel == rows of w) or per
 * tensor (numel 1); zp has that many entries or is NULL (zero). Backward
 * (STE): dw += dq / s where the unclamped code is inside [qmin, qmax] (all
 * of them with QAT_STE_IDENTITY); dscale += dq * (-w / s^2) inside, 0 where
 * clamped (LSQ). */
qat_tensor *qat_op_weight_codes(qat_tape *t, qat_tensor *w, qat_tensor *scale, const int32_t *zp,
                                int32_t qmin, int32_t qmax, qat_ste_kind ste);

/* acc_scale[c] = s_in[0] * s_w[c] (or s_w[0] per tensor), C entries. */
qat_tensor *qat_op_acc_scale(qat_tape *t, qat_tensor *s_in, qat_tensor *s_w, int C);

/* y = x forward; dx += g * dy backward (LSQ's gradient scale). */
qat_tensor *qat_op_grad_scale(qat_tape *t, qat_tensor *x, float g);

/* Output stage of a quantized conv/linear. acc holds exact integer
 * accumulators (last axis = C channels, bias not yet added). */
typedef struct qat_requant_params {
    int channels;
    const int32_t *multiplier; /* [C], from acc_scale / out scale */
    const int32_t *shift;      /* [C] */
    int32_t bias_limit;
    int32_t zero_point;        /* of the output */
    int32_t act_min, act_max;  /* clamp; fused relu: act_min = zero_point */
    qat_ste_kind ste;
} qat_requant_params;

/* Range of the real outputs (acc + bias codes) * acc_scale over the batch,
 * after the activation (relu 1 clamps the low end at 0, relu 2 is relu6:
 * both ends to [0, 6]), for qc's activation observer (PERCENTILE:
 * percentiles of the values; MSE: their MSE-optimal clipping at
 * activation_bits). */
void qat_acc_range(qat_tape *t, const qat_tensor *acc, const qat_tensor *bias,
                   const float *acc_scale, int32_t bias_limit, int relu, const qat_quant_cfg *qc,
                   float *lo, float *hi);
/* out = s_out * (requantize(acc + bias_q) - zp), the runtime's exact
 * arithmetic; bias (float, [C], may be NULL) is quantized with acc_scale.
 * Backward (STE, y = acc_scale * acc + b the real pre-activation): where
 * the unclamped code lies in [act_min, act_max], d acc = dout * acc_scale,
 * d bias = dout, d acc_scale = dout * acc; d out_scale (LSQ) = dout *
 * ((q - zp) - y / s_out) inside, dout * (q - zp) where clamped. rp's arrays
 * must outlive the step. */
qat_tensor *qat_op_requantize(qat_tape *t, qat_tensor *acc, qat_tensor *bias,
                              qat_tensor *acc_scale, qat_tensor *out_scale,
                              const qat_requant_params *rp);

/* Fake quantization of a real tensor (per tensor, scale tensor [1]):
 * s * (clamp(round(x / s) + zp) - zp). STE for x as in requantize; LSQ
 * gradient for the scale. */
qat_tensor *qat_op_fake_quant(qat_tape *t, qat_tensor *x, qat_tensor *scale, int32_t zp,
                              int32_t qmin, int32_t qmax, qat_ste_kind ste);

/* Quantized average pooling's rounding: given avg = float average of
 * quantized values with scale s, returns s * div_round(sum of codes, n), the
 * runtime's integer average. Backward: identity. */
qat_tensor *qat_op_avgpool_round(qat_tape *t, qat_tensor *avg, float scale, int window);

/* ---- a conv/linear layer's quantization, and the policy that picks it -------
 * src/quant/policy.c decides every scale a quantized layer uses: from its
 * observers, or learned (LSQ) once initialised from them. The model (nn)
 * owns one qat_layer_quant per layer and calls these from its forward. */

/* The EMA weight observer (weight_observer = ema): the running range of the
 * weights behind each weight scale. */
typedef struct qat_weight_ema {
    float *lo, *hi;  /* [Cw]; NULL unless weight_observer = ema */
    int initialized; /* a step has been folded in */
} qat_weight_ema;

/* Learned step sizes (learn_scale). */
typedef struct qat_lsq_state {
    qat_tensor s_w, s_a;        /* trained weight scales [Cw] and output scale [1], views into
                                   the model's parameters (data NULL unless learn_scale) */
    int initialized;            /* the scales have taken over from the observers */
    int32_t act_zero_point;     /* fixed from then on */
    int32_t *weight_zero_point; /* [Cw], likewise; NULL unless learn_scale */
} qat_lsq_state;

/* add, concat and global_avgpool: the integers of their output stage
 * (docs/ARITHMETIC.md §4.1), derived from the inputs' and the output's
 * quantization by qat_quant_merge_finish. */
typedef struct qat_merge_params {
    qat_layer_type type;
    int n;                          /* inputs (global_avgpool: 1) */
    qat_qparams in[QAT_MAX_INPUTS]; /* each input's quantization */
    int window;                     /* global_avgpool: H * W codes averaged */
    int32_t left_shift;             /* add: inputs scaled up by 2^left_shift first */
    int32_t in_mult[QAT_MAX_INPUTS], in_shift[QAT_MAX_INPUTS]; /* add, concat */
    int32_t out_mult, out_shift;    /* add, global_avgpool */
    qat_qparams out;
    int32_t act_min, act_max;
    qat_ste_kind ste;
} qat_merge_params;

/* The left shift of the integer add (TFLite's for 8-bit inputs): an input
 * code difference (at most 255) times 2^20 stays below 2^28. */
#define QAT_ADD_LEFT_SHIFT 20

typedef struct qat_layer_quant {
    /* fixed when the model is built (conv/linear only) */
    const qat_quant_cfg *cfg;
    int channels;          /* C: output channels */
    int wq_channels;       /* Cw: weight scales, C per channel or 1 per tensor */
    size_t fan_in;         /* weights per output channel */
    float act_count;       /* outputs per image, for LSQ's gradient scale */
    int relu;              /* the output clamp starts at the zero point */
    int relu6;             /* ...and ends at the code of 6 (relu6) */
    int skip_zero_weights; /* pruned model: exact zeros take no part in a percentile */
    /* the state that picks the scales (checkpointed: qat_quant_state_save) */
    qat_observer act_obs; /* output activations */
    qat_weight_ema w_ema;
    qat_lsq_state lsq;
    /* as of the last forward (or refresh); other layers set only in and out */
    qat_qparams in, out;      /* input and output activation parameters */
    int32_t wqmin, wqmax;     /* weight code range */
    float *w_scale;           /* [C] (per tensor: C equal entries) */
    int32_t *w_zp;            /* [C] weight zero points (0 when symmetric) */
    float *acc_scale;         /* [C] in.scale * w_scale[c] */
    int32_t *multiplier;      /* [C] */
    int32_t *shift;           /* [C] */
    int32_t act_min, act_max; /* output clamp */
    int32_t bias_limit;
    qat_merge_params merge;   /* add, concat, global_avgpool */
} qat_layer_quant;

/* Room the weight observer works in, shared by every layer of a model: lo
 * and hi [Cw], values [C * fan_in] (percentile). */
typedef struct qat_quant_scratch {
    float *lo, *hi, *values;
} qat_quant_scratch;

/* Whether the layer's scales are learned now (LSQ, initialised). */
int qat_quant_lsq_ready(const qat_layer_quant *q);

/* Weight scales and zero points (w_scale, w_zp), code range and bias budget
 * for weights w (C rows of fan_in): the learned scales once LSQ is
 * initialised, else from the weight observer, whose EMA folds in this
 * step's range when update is set (a training step, observers not frozen). */
void qat_quant_weight_params(qat_layer_quant *q, const float *w, int update,
                             const qat_quant_scratch *scratch);

/* A training batch's range into the activation observer: of the outputs y
 * (n real values after the activation), or of the exact path's accumulators
 * (acc plus the bias quantized with acc_scale, times acc_scale). Nothing
 * once LSQ is initialised: the observer is no longer read. With a
 * data-parallel tape (t may be NULL) the range is the min / max over every
 * rank's examples, so all ranks' observers stay equal. */
void qat_quant_observe_outputs(qat_layer_quant *q, qat_tape *t, const float *y, size_t n);
void qat_quant_observe_acc(qat_layer_quant *q, qat_tape *t, const qat_tensor *acc,
                           const qat_tensor *bias, const float *acc_scale);

/* At the first quantized training step of a layer that learns its scales,
 * LSQ starts from the observers: it copies this step's weight scales and
 * zero points (qat_quant_weight_params first) and the activation
 * observer's; the zero points stay fixed from then on. Otherwise nothing. */
void qat_quant_lsq_init(qat_layer_quant *q);

/* Output parameters and clamp (out, act_min, act_max): learned, or from
 * the activation observer. */
void qat_quant_act_params(qat_layer_quant *q);

/* acc_scale (in.scale * w_scale, the same float product the acc_scale op
 * forms), multipliers and shifts. Returns -1 if a multiplier cannot be
 * represented (it then saturates; export refuses such a model), else 0. */
int qat_quant_finish(qat_layer_quant *q);

/* The scales as the ops take them, on the tape: learned ones carry LSQ's
 * gradient scale 1 / sqrt(N * Qp); observed ones are constants. */
qat_tensor *qat_quant_weight_scale(qat_tape *t, qat_layer_quant *q);
qat_tensor *qat_quant_act_scale(qat_tape *t, qat_layer_quant *q);
/* Weight zero points per scale entry for qat_op_weight_codes, or NULL when
 * symmetric (all zero). */
const int32_t *qat_quant_weight_zero_points(qat_tape *t, const qat_layer_quant *q);
/* This forward's output stage for qat_op_requantize, copied onto the tape
 * (its backward reads it after the layer's arrays have moved on). */
const qat_requant_params *qat_quant_requant_params(qat_tape *t, const qat_layer_quant *q);

/* ---- add, concat, global_avgpool ------------------------------------------------
 * Their output has its own scale and zero point, from an activation observer
 * of the float output (q->act_obs, q->cfg; LSQ does not apply to them), and
 * its integers are computed from those and the inputs' (q->merge.in). */

/* q->merge from q->merge.in, q->out and the clamp (qat_quant_act_params
 * first), for a layer of `type` (global_avgpool: over `window` pixels).
 * Returns -1 if a multiplier cannot be represented (it then saturates),
 * else 0. */
int qat_quant_merge_finish(qat_layer_quant *q, qat_layer_type type, int window);
/* The exact integer ops, on inputs held as real values on their grids
 * (scale * (code - zp)); outputs likewise. Backward: straight-through
 * (clipped per the STE kind where the output code was clamped); the add
 * passes the gradient to both inputs, concat to each input's channels,
 * the average pool dy / window to every pixel. Scales are constants. */
qat_tensor *qat_op_add_exact(qat_tape *t, qat_tensor *a, qat_tensor *b, const qat_merge_params *p);
qat_tensor *qat_op_concat_exact(qat_tape *t, qat_tensor *const *x, int n,
                                const qat_merge_params *p);
qat_tensor *qat_op_global_avgpool_exact(qat_tape *t, qat_tensor *x, const qat_merge_params *p);

/* A merge layer's checkpointed state: its activation observer, as
 * lo, hi, initialised (3 floats). */
size_t qat_quant_output_state_size(void);
void qat_quant_output_state_save(const qat_layer_quant *q, float *out);
qat_status qat_quant_output_state_load(qat_layer_quant *q, const float *in, qat_error *err);

/* ---- checkpointed state -------------------------------------------------------
 * A layer's quant state as floats, in the layout checkpoints store it:
 *   activation observer   lo, hi, initialised
 *   learn_scale           initialised, activation zero point, weight zero points [Cw]
 *   weight_observer = ema lo [Cw], hi [Cw], initialised
 * Flags are 0 or 1 and zero points exact integers. */
size_t qat_quant_state_size(const qat_quant_cfg *cfg, int wq_channels);
/* A new layer's state: observers empty, LSQ uninitialised (scales 1). */
void qat_quant_state_reset(qat_layer_quant *q);
void qat_quant_state_save(const qat_layer_quant *q, float *out);
/* QAT_EINVAL naming the field if a flag is not 0 or 1 or a zero point is
 * not an integer in its code range; q is then partly loaded. */
qat_status qat_quant_state_load(qat_layer_quant *q, const float *in, qat_error *err);

#endif
