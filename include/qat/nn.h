/* Models built from a config: layers in file order, each layer's output
 * shape feeding the next. Parameters and gradients live in two flat float
 * buffers (an optimizer is a loop over them); BN running statistics and
 * the quantization state in the model's own arrays. Layers hold views.
 *
 * The model is an opaque handle; its layers are plain structs that export
 * and reporting code may read. */
#ifndef QAT_NN_H
#define QAT_NN_H

#include <stddef.h>
#include <stdint.h>

#include "qat/autograd.h"
#include "qat/config.h"
#include "qat/optim.h"
#include "qat/quant.h"

typedef struct qat_layer {
    const qat_layer_cfg *cfg; /* points into the model's copy of the config */
    qat_layer_type type;
    /* what it reads: layer indices before it, -1 the model input (the
     * config's, resolved) */
    int ninputs;
    int inputs[QAT_MAX_INPUTS];
    int in_h, in_w, in_c;     /* per image; flat features: h = w = 1; concat: all inputs */
    int out_h, out_w, out_c;
    int kernel, stride, padding;
    int groups;    /* conv2d: its groups; depthwise_conv2d: in_c; linear: 1 */
    size_t fan_in; /* inputs per output (conv: k*k*in_c / groups) */
    /* views into the model's buffers (data NULL when absent) */
    qat_tensor w, b, gamma, beta;
    float *running_mean, *running_var;
    /* Effective weights and bias, [out_c * fan_in] and [out_c]: what the
     * layer really applies once input standardisation (first layer) is
     * folded in. Filled by qat_model_refresh_qparams; export reads them. */
    float *w_eff, *b_eff;
    /* conv/linear: the quantization policy's state (observers, LSQ) and the
     * parameters it derived at the last forward; other layers: only in/out */
    qat_layer_quant q;
} qat_layer;

typedef struct qat_model qat_model;

/* The model input: how examples are standardised and, for float32 inputs,
 * quantized on the way in (docs/QUANTIZATION.md, "Model inputs"). */
typedef struct qat_model_input {
    int is_float;       /* float32 features (else uint8 pixels p / 255) */
    int channels;       /* C: the input's last axis */
    int normalize;      /* [model] normalize_input */
    int stats_from_data; /* mean / std are auto: set by qat_model_set_input_norm */
    int stats_set;       /* auto mean / std are known (set, loaded or taken from [train] init) */
    int ready;          /* everything below is known (auto stats set, float range observed) */
    const float *mean, *std; /* [C] the standardisation (x - mean) / std */
    const float *fold_a, *fold_c; /* [C] uint8: 1 / std and -mean / std, folded into layer 1 */
    /* float32 inputs: the standardised inputs' observed range and its
     * quantization (8 bits, asymmetric), and per channel the affine map of
     * the runtime's float entry: q = quantize(x - offset[c], step[c], zp) */
    float lo, hi;
    qat_qparams q;
    const float *offset, *step; /* [C] offset = mean (0 without normalize), step = std * scale */
} qat_model_input;

/* Builds the layers, inferring shapes over the graph; an impossible shape is
 * QAT_EINVAL naming the config file, line and layer. Parameters are
 * initialised from cfg->train.seed. The model keeps its own copy of cfg.
 * cfg->model.input_type float32 makes a float-input model (auto: uint8). */
qat_status qat_model_create(const qat_config *cfg, qat_model **out, qat_error *err);
void qat_model_destroy(qat_model *m);
const qat_config *qat_model_config(const qat_model *m);

/* PyTorch's default init: weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in));
 * BN gamma 1, beta 0, running mean 0, var 1; observers empty. */
void qat_model_init(qat_model *m, uint64_t seed);

int qat_model_num_layers(const qat_model *m);
qat_layer *qat_model_layer(qat_model *m, int i);
float *qat_model_params(qat_model *m, size_t *n);
float *qat_model_grads(qat_model *m, size_t *n);
/* The state a checkpoint keeps beside the parameters, as floats: for each
 * conv/linear layer in order, its BN running mean [C] and variance [C]
 * (batchnorm), then its quantization state (qat_quant_state_save has the
 * layout); then, for auto input statistics, the input mean [C] and std [C],
 * and for float32 inputs their observed range (lo, hi). This is checkpoint
 * version 1's "state" dataset. */
size_t qat_model_state_size(const qat_model *m);
void qat_model_state_save(const qat_model *m, float *out);
/* Restores what qat_model_state_save wrote; QAT_EINVAL naming the layer and
 * field when a flag or zero point is impossible (the model is then partly
 * restored). */
qat_status qat_model_state_load(qat_model *m, const float *in, qat_error *err);
/* Optimizer segments: weights decay, everything else does not. */
const qat_param_seg *qat_model_segments(const qat_model *m, int *n);

/* Simulated quantization on/off (config quant.enabled; delay turns it on
 * later). With it off the forward is plain float. */
void qat_model_set_quant_active(qat_model *m, int on);
int qat_model_quant_active(const qat_model *m);
/* Frozen observers keep their range (eval mode never updates them). */
void qat_model_set_observers_frozen(qat_model *m, int frozen);
/* Frozen BN uses (and no longer updates) its running statistics in training
 * too, folded exactly as the export folds them. */
void qat_model_set_bn_frozen(qat_model *m, int frozen);

/* Calibration (post-training quantization): observers update in eval mode
 * too, where BN uses its running statistics and dropout is off. */
void qat_model_set_calibrating(qat_model *m, int on);

/* Forward over n images (n * H * W * C uint8) -> logits [n, num_classes].
 * In training mode (qat_tape_training) observers and BN statistics update. */
qat_tensor *qat_model_forward(qat_model *m, qat_tape *t, const uint8_t *images, int n);
/* The same for a float32-input model: n * H * W * C features. */
qat_tensor *qat_model_forward_f32(qat_model *m, qat_tape *t, const float *x, int n);

/* The model input's standardisation and quantization (valid until the
 * model is destroyed). */
const qat_model_input *qat_model_input_info(const qat_model *m);
/* Sets the per-channel mean and std of an auto-normalised model (C
 * values each; std > 0), e.g. from qat_dataset_channel_stats, or from the
 * [train] init checkpoint, whose first layer's weights were trained for
 * its statistics. */
void qat_model_set_input_norm(qat_model *m, const float *mean, const float *std);
/* A float32-input model: widens the observed range of the standardised
 * training inputs by x (count values of whole examples, channel i % C; the
 * first call after creation or qat_model_set_input_norm starts it) and
 * derives their quantization. Call after qat_model_set_input_norm when the
 * stats are auto. */
void qat_model_observe_input(qat_model *m, const float *x, size_t count);
/* Outputs of the last layer (num_classes, or the regression targets). */
int qat_model_num_outputs(const qat_model *m);

/* What a conv/linear layer read and produced in a forward (tape-owned,
 * channels last). Quantized: in holds the input's activation codes relative
 * to its zero point (real value: code * q.in.scale), out the exact integer
 * accumulators before the bias codes are added. Float: the real input, and
 * the output after batchnorm, before the activation. */
typedef struct qat_layer_tap {
    qat_tensor *in, *out;
} qat_layer_tap;
/* qat_model_forward up to and including layer last, recording taps[i] for
 * every conv/linear layer i <= last (other entries untouched); returns layer
 * last's output. A conv and the max pool after it run unfused (the same
 * values), so out holds every conv output, not just the pooled ones.
 * inputs: n examples of the model's input type (uint8 pixels, or float32
 * values for a float-input model). */
qat_tensor *qat_model_forward_taps(qat_model *m, qat_tape *t, const void *inputs, int n,
                                   int last, qat_layer_tap *taps);

/* Sets layer l's parameters (conv/linear) so that its effective weights and
 * bias -- w_eff, b_eff after refresh, what the quantized forward and export
 * use -- become w_eff [out_c * fan_in] and b_eff [out_c] (NULL: keep the
 * bias): the input standardisation and batchnorm folds are undone per
 * channel. Entries equal to the current effective value keep their
 * parameter bit for bit; others come back within float rounding. The bias
 * goes into beta with batchnorm, else the bias; a layer with neither
 * (qat_layer_has_bias 0) keeps the bias its folds give. Refreshes l->w_eff
 * and l->b_eff; the quantization parameters need qat_model_refresh_qparams. */
qat_status qat_layer_set_effective(qat_model *m, qat_layer *l, const float *w_eff,
                                   const float *b_eff, qat_error *err);
int qat_layer_has_bias(const qat_layer *l);

/* Recomputes every layer's quantization (scales, multipliers, clamps) from
 * the weights and observer state, exactly as an eval forward would; export
 * calls this. Fails if a layer's observer has never seen data or a
 * multiplier cannot be represented. */
qat_status qat_model_refresh_qparams(qat_model *m, qat_error *err);

/* Bytes of the float parameters (4 per weight/bias). */
size_t qat_model_float_bytes(const qat_model *m);

/* ---- memory limits (src/nn/limits.c) -------------------------------------------
 * What a training run of a config needs, from its shapes alone: nothing is
 * allocated, so an absurd config can be refused before it is built. Every
 * figure is a lower bound (what the run cannot do without), so a refusal is
 * never a false alarm; sizes saturate at SIZE_MAX instead of wrapping. */
typedef struct qat_model_memory {
    size_t params;      /* parameter count */
    size_t param_bytes; /* parameters, gradients, effective weights, optimizer state */
    size_t train_bytes; /* one training step: the input and every layer's output with
                           their gradients, plus the weight codes (QAT) with theirs */
    size_t eval_bytes;  /* one evaluation batch: the same without gradients */
    size_t total_bytes; /* param_bytes + the larger of train_bytes and eval_bytes */
    int peak_layer;     /* index of the layer with the most output values per image */
    size_t peak_values; /* that many */
} qat_model_memory;

/* Shape errors are reported as qat_model_create reports them. */
qat_status qat_model_memory_estimate(const qat_config *cfg, int train_batch, int eval_batch,
                                     qat_model_memory *out, qat_error *err);
/* QAT_EINVAL naming the config, the largest layer (file:line) and
 * [train] batch_size, with the computed requirement, when the estimate
 * exceeds available bytes. */
qat_status qat_model_check_memory(const qat_config *cfg, int train_batch, int eval_batch,
                                  size_t available, qat_error *err);
/* Bytes this process may still allocate: /proc/meminfo MemAvailable, capped
 * by a cgroup (v2 or v1) memory limit; SIZE_MAX when nothing says. */
size_t qat_memory_available(void);

#endif
