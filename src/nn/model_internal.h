/* The model struct, shared by the files of src/nn only. */
#ifndef QAT_NN_MODEL_INTERNAL_H
#define QAT_NN_MODEL_INTERNAL_H

#include "qat/nn.h"

struct qat_model {
    qat_config cfg;
    int nlayers;
    qat_layer layers[QAT_MAX_LAYERS];
    float *params, *grads;
    size_t nparams, nstate; /* nstate: floats of qat_model_state_save */
    qat_param_seg *segs;
    int nsegs;
    /* backing stores of the layers' views */
    float *bnstats; /* running_mean / running_var */
    float *qfloat;  /* qat_layer_quant: w_scale, acc_scale, w_ema lo / hi */
    int32_t *qint;  /* qat_layer_quant: w_zp, multiplier, shift, LSQ weight zero points */
    float *effbuf;  /* w_eff / b_eff */
    int first_compute; /* index of the first conv/linear layer */
    int readers[QAT_MAX_LAYERS]; /* how many layers read each layer's output */
    float norm_a, norm_c; /* input standardisation x -> a x + c (a = 1, c = 0: off) */
    qat_model_input in;   /* per-channel normalisation, float input quantization (input.c) */
    int norm_per_channel; /* uint8 inputs: the fold uses in.fold_a / fold_c, not norm_a / c */
    float *inbuf;         /* backing store of in's arrays */
    int quant_active;
    int observers_frozen;
    int calibrating; /* observers update in eval mode (post-training calibration) */
    int bn_frozen;
    qat_quant_scratch scratch; /* lo, hi [max out_c]; values: the largest weight tensor */
};

/* Sets up m->in from the config (input.c); the model's other fields are in
 * place. */
qat_status qat_model_input_init(qat_model *m, qat_error *err);
/* Floats the input statistics add to the checkpointed state, and their
 * save / load (after the layers' state). */
size_t qat_model_input_state_size(const qat_model *m);
void qat_model_input_state_save(const qat_model *m, float *out);
qat_status qat_model_input_state_load(qat_model *m, const float *in, qat_error *err);
/* The first layer's input tensor for n examples (uint8 or float), as the
 * forward feeds it, and its quantization. */
qat_tensor *qat_model_input_tensor(qat_model *m, qat_tape *t, const void *x, int is_float, int n,
                                   int quant, qat_qparams *q);

/* y = W scaled per input channel: w[r, i] * a[i % C0]; and the bias fold
 * b[r] + sum over channels c of fc[c] * (sum of w[r, i] with i % C0 = c). */
qat_tensor *qat_op_scale_cols(qat_tape *t, qat_tensor *w, const float *a, int C0);
qat_tensor *qat_op_fold_bias_cols(qat_tape *t, qat_tensor *w, qat_tensor *b, const float *fc,
                                  int C0);

/* The shape pass: points each of layers[0 .. cfg->nlayers) at its config
 * and fills its type, input and output shapes, kernel/stride/padding and
 * fan_in, each layer's output feeding the next, or explains with file:line
 * why a shape cannot be. The memory estimate (limits.c) uses it too, so it
 * sees the same shapes. */
qat_status qat_layers_infer_shapes(const qat_config *cfg, qat_layer *layers, qat_error *err);

/* Derives layer l's quantization from its effective weights w (out_c rows of
 * fan_in), its observer and its input quantization (already in l->q.in),
 * filling l->q. Returns 0, or -1 if a multiplier cannot be represented (then
 * it saturates). */
int qat_layer_derive_qparams(qat_model *m, qat_layer *l, const float *w);

/* The weights and bias layer l applies before batch normalisation (on the
 * tape, differentiable): the parameters themselves, or with the input
 * standardisation folded in for the first conv/linear layer. *b may be NULL
 * (no bias, nothing folded). */
void qat_layer_pre_bn(qat_model *m, qat_tape *t, qat_layer *l, qat_tensor **w, qat_tensor **b);
/* The same with batch normalisation folded in with its running statistics:
 * what the exported layer computes. */
void qat_layer_effective(qat_model *m, qat_tape *t, qat_layer *l, qat_tensor **w, qat_tensor **b);

/* Folding ops (src/nn/fold.c); see there for the formulas. */
qat_tensor *qat_op_bn_fold_weights(qat_tape *t, qat_tensor *w, qat_tensor *gamma, const float *rv,
                                   float eps);
qat_tensor *qat_op_bn_fold_bias(qat_tape *t, qat_tensor *b, qat_tensor *gamma, qat_tensor *beta,
                                const float *rm, const float *rv, float eps);
qat_tensor *qat_op_bn_unfold_factor(qat_tape *t, qat_tensor *gamma, const float *rv, float eps);
/* y[.., c] = x[.., c] * s[c];  y[.., c] = x[.., c] + b[c] */
qat_tensor *qat_op_channel_scale(qat_tape *t, qat_tensor *x, qat_tensor *s);
qat_tensor *qat_op_add_bias(qat_tape *t, qat_tensor *x, qat_tensor *b);
/* y = a * x. */
qat_tensor *qat_op_scale(qat_tape *t, qat_tensor *x, float a);
/* b_e[r] = b[r] + c * sum_k w[r, k] over the rows of w; b may be NULL. */
qat_tensor *qat_op_fold_bias(qat_tape *t, qat_tensor *w, qat_tensor *b, float c);

#endif
