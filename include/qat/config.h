/* A training run's configuration: INI file + --set overrides -> typed,
 * validated structs. Every key, its default and its range is declared once in
 * the schema tables of src/config/config.c (README lists them). */
#ifndef QAT_CONFIG_H
#define QAT_CONFIG_H

#include <stdio.h>

#include "qat/ini.h"
#include "qat/status.h"

#define QAT_MAX_LAYERS 64
#define QAT_NAME_MAX 64
/* Most inputs of one layer (concat); add takes exactly 2, the rest 1. */
#define QAT_MAX_INPUTS 4

/* ---- the configuration's enums ----------------------------------------------
 * Each enum has one name table, its values' names in value order and
 * NULL-terminated (src/config/enums.c): the schema parses and writes config
 * values with it, --help-config and the README list it, and messages name a
 * value with qat_enum_name(table, value) (qat/ini.h). */

typedef enum qat_optim_kind {
    QAT_OPT_SGD = 0,  /* plain SGD; weight_decay is L2 added to the gradient */
    QAT_OPT_MOMENTUM, /* heavy ball: v = mu v + g; p -= lr v (PyTorch convention) */
    QAT_OPT_NESTEROV, /* v = mu v + g; p -= lr (g + mu v) */
    QAT_OPT_ADAM,     /* Kingma & Ba with bias correction; weight_decay is L2 */
    QAT_OPT_ADAMW,    /* Adam with decoupled decay: p -= lr wd p */
    QAT_OPT_RMSPROP   /* s = a s + (1-a) g^2; p -= lr g / (sqrt(s) + eps) */
} qat_optim_kind;
extern const char *const qat_optim_kind_names[];

typedef enum qat_lr_kind {
    QAT_LR_CONSTANT = 0,
    QAT_LR_STEP,   /* lr * gamma^floor(step / step_size) */
    QAT_LR_COSINE  /* min_lr + (lr - min_lr) (1 + cos(pi t / T)) / 2 for t < T, then min_lr */
} qat_lr_kind;
extern const char *const qat_lr_kind_names[];

/* What a run does with its model: train it (quantization-aware, or in
 * float with quantization off), or quantize a trained one post-training
 * ([train] init names it; [ptq] says how). */
typedef enum qat_train_mode { QAT_MODE_QAT = 0, QAT_MODE_PTQ } qat_train_mode;
extern const char *const qat_train_mode_names[];

typedef enum qat_loss_kind {
    QAT_LOSS_CROSS_ENTROPY = 0,
    QAT_LOSS_MSE,
    QAT_LOSS_L1,   /* mean |y - t| */
    QAT_LOSS_HUBER /* mean of 0.5 d^2 / delta for |d| < delta, |d| - delta / 2 beyond */
} qat_loss_kind;
extern const char *const qat_loss_kind_names[];

typedef enum qat_task {
    QAT_TASK_CLASSIFICATION = 0, /* class labels; accuracy */
    QAT_TASK_REGRESSION          /* float targets; MSE, MAE, R^2 */
} qat_task;
extern const char *const qat_task_names[];

/* What the model's input values are: uint8 pixels (p / 255, the fixed
 * input quantization) or float32 features (quantized with a scale and zero
 * point observed on the training inputs). auto: what the data holds. */
typedef enum qat_input_type { QAT_INPUT_AUTO = 0, QAT_INPUT_UINT8, QAT_INPUT_FLOAT32 } qat_input_type;
extern const char *const qat_input_type_names[];

/* [data] format; the same values as qat_data_format (data.h). */
typedef enum qat_format_kind {
    QAT_FMT_AUTO = 0,
    QAT_FMT_IDX,
    QAT_FMT_HDF5,
    QAT_FMT_NPY,
    QAT_FMT_CIFAR,
    QAT_FMT_CSV
} qat_format_kind;
extern const char *const qat_format_kind_names[];

/* Knowledge distillation's soft loss (src/train/distill.c): KL divergence
 * between softened probabilities, scaled by T^2, or MSE between logits. */
typedef enum qat_distill_loss { QAT_DISTILL_KL = 0, QAT_DISTILL_MSE } qat_distill_loss;
extern const char *const qat_distill_loss_names[];
/* How weight clustering picks its first centroids (src/prune/cluster.c). */
typedef enum qat_cluster_init {
    QAT_CLUSTER_KMEANSPP = 0,
    QAT_CLUSTER_LINEAR,
    QAT_CLUSTER_DENSITY
} qat_cluster_init;
extern const char *const qat_cluster_init_names[];

typedef enum qat_quant_scheme { QAT_SCHEME_SYMMETRIC = 0, QAT_SCHEME_ASYMMETRIC } qat_quant_scheme;
extern const char *const qat_quant_scheme_names[];

typedef enum qat_granularity { QAT_GRAN_PER_TENSOR = 0, QAT_GRAN_PER_CHANNEL } qat_granularity;
extern const char *const qat_granularity_names[];

typedef enum qat_observer_kind {
    QAT_OBS_MINMAX = 0,
    QAT_OBS_EMA,
    QAT_OBS_PERCENTILE,
    QAT_OBS_MSE /* the clipping range that minimises the quantization MSE (grid search) */
} qat_observer_kind;
extern const char *const qat_observer_kind_names[];

typedef enum qat_ste_kind { QAT_STE_CLIPPED = 0, QAT_STE_IDENTITY } qat_ste_kind;
extern const char *const qat_ste_kind_names[];

typedef enum qat_prune_method {
    QAT_PRUNE_NONE = 0,
    QAT_PRUNE_MAGNITUDE, /* single weights */
    QAT_PRUNE_CHANNEL    /* whole conv filters / linear neurons */
} qat_prune_method;
extern const char *const qat_prune_method_names[];

typedef enum qat_prune_schedule_kind {
    QAT_PRUNE_ONE_SHOT = 0,
    QAT_PRUNE_GRADUAL,
    QAT_PRUNE_DYNAMIC
} qat_prune_schedule_kind;
extern const char *const qat_prune_schedule_kind_names[];

typedef enum qat_prune_scope { QAT_PRUNE_SCOPE_LAYER = 0, QAT_PRUNE_SCOPE_GLOBAL } qat_prune_scope;
extern const char *const qat_prune_scope_names[];

typedef enum qat_prune_unit { QAT_PRUNE_UNIT_EPOCH = 0, QAT_PRUNE_UNIT_STEP } qat_prune_unit;
extern const char *const qat_prune_unit_names[];

typedef enum qat_norm_kind { QAT_NORM_L1 = 0, QAT_NORM_L2 } qat_norm_kind;
extern const char *const qat_norm_kind_names[];

typedef enum qat_layer_type {
    QAT_LAYER_CONV2D = 0,
    QAT_LAYER_LINEAR,
    QAT_LAYER_MAXPOOL2D,
    QAT_LAYER_AVGPOOL2D,
    QAT_LAYER_FLATTEN,
    QAT_LAYER_DROPOUT,
    QAT_LAYER_DEPTHWISE_CONV2D, /* one filter (multiplier filters) per input channel */
    QAT_LAYER_ADD,              /* elementwise sum of two same-shaped inputs */
    QAT_LAYER_CONCAT,           /* inputs side by side along the channel axis */
    QAT_LAYER_GLOBAL_AVGPOOL    /* H x W x C -> 1 x 1 x C, the mean of each channel */
} qat_layer_type;
extern const char *const qat_layer_type_names[];

typedef enum qat_activation { QAT_ACT_NONE = 0, QAT_ACT_RELU, QAT_ACT_RELU6 } qat_activation;
extern const char *const qat_activation_names[];

/* Layers with weights: conv2d, depthwise_conv2d, linear. */
static inline int qat_layer_type_has_weights(qat_layer_type t)
{
    return t == QAT_LAYER_CONV2D || t == QAT_LAYER_DEPTHWISE_CONV2D || t == QAT_LAYER_LINEAR;
}
/* Layers that quantize their output with a scale of their own: the ones
 * with weights, and add, concat and global_avgpool. The others (pools,
 * flatten, dropout) pass their input's quantization through. */
static inline int qat_layer_type_quantizes(qat_layer_type t)
{
    return qat_layer_type_has_weights(t) || t == QAT_LAYER_ADD || t == QAT_LAYER_CONCAT ||
           t == QAT_LAYER_GLOBAL_AVGPOOL;
}

/* qat_enum_name of the enums other modules print. */
const char *qat_optim_kind_name(qat_optim_kind k);
const char *qat_lr_kind_name(qat_lr_kind k);
const char *qat_layer_type_name(qat_layer_type type);

typedef struct qat_data_cfg {
    char dir[QAT_CFG_STR_MAX];
    int train_limit, test_limit; /* 0: all */
    int shuffle;
    qat_format_kind format;
    char train[QAT_CFG_STR_MAX], test[QAT_CFG_STR_MAX]; /* a split's own path ("": dir) */
    float val_fraction; /* of the training split held out for per-epoch evaluation */
    char x_name[QAT_CFG_STR_MAX], y_name[QAT_CFG_STR_MAX]; /* HDF5 dataset names */
    char target[QAT_CFG_STR_MAX];                          /* CSV target column */
} qat_data_cfg;

/* Image augmentation of training batches ([augment]); all off by default. */
typedef struct qat_augment_cfg {
    int random_crop; /* pad by this many pixels, crop back at random */
    int hflip;
    int shift;  /* random translation of up to this many pixels, edges extended */
    int cutout; /* zero a random square of this side */
} qat_augment_cfg;

/* Bits of qat_model_cfg.input_set: which shape keys the config wrote. */
enum { QAT_SET_HEIGHT = 1, QAT_SET_WIDTH = 2, QAT_SET_CHANNELS = 4 };

typedef struct qat_model_cfg {
    qat_task task;
    /* The input shape; keys the config does not write come from the data
     * (input_set says which were written: those must match it). */
    int input_height, input_width, input_channels;
    int input_set;
    qat_input_type input_type;
    int num_classes;
    /* Standardise inputs, (x - mean) / std per channel (x = p / 255 for
     * pixels). For uint8 inputs the affine map is folded into the first
     * conv/linear layer (the integer input stays p - 128); float32 inputs
     * are standardised, then quantized, on the way in. One value serves every
     * channel; n = 0 (auto): computed on the training split. */
    int normalize_input;
    qat_cfg_floats input_mean, input_std;
} qat_model_cfg;

typedef struct qat_train_cfg {
    int epochs, batch_size;
    qat_optim_kind optimizer;
    float lr, momentum, beta1, beta2, alpha, eps, weight_decay, grad_clip;
    qat_lr_kind lr_schedule;
    float lr_min, lr_gamma, lr_step_epochs, warmup_epochs;
    int seed, threads;
    qat_loss_kind loss;
    float label_smoothing;
    float huber_delta;
    int checkpoint_every; /* epochs */
    int progress;
    qat_train_mode mode;
    /* A checkpoint to start from (src/train/init.c): parameters, BN
     * statistics and compatible quantization state, matched by layer name
     * and shape; "" starts from random weights. */
    char init[QAT_CFG_STR_MAX];
    int init_strict; /* 0: layers that do not match are listed and start fresh */
} qat_train_cfg;

/* Quantization settings; [quant] holds the global values and conv2d /
 * linear sections may override the per-layer ones for that layer. */
typedef struct qat_quant_cfg {
    /* global only */
    int enabled;
    int output_bits;            /* the logits' bits (last layer) unless it sets activation_bits */
    int delay_steps;            /* float warm-up: fake-quant turns on at this step... */
    float delay_epochs;         /* ...or after this many epochs (the later of the two) */
    int freeze_observers_epoch; /* observers stop updating from this epoch on (1-based; 0 never) */
    int freeze_bn_epoch;        /* BN statistics freeze from this epoch on (0 never) */
    /* per layer */
    int weight_bits, activation_bits;
    qat_quant_scheme weight_scheme, activation_scheme;
    qat_granularity weight_granularity, activation_granularity;
    qat_observer_kind weight_observer, activation_observer;
    float ema_decay;  /* EMA observers: range = decay * range + (1 - decay) * batch range */
    float percentile; /* PERCENTILE observers, in (0, 100] */
    qat_ste_kind weight_ste, activation_ste;
    int learn_scale; /* LSQ: scales are trained, initialised from the observers */
} qat_quant_cfg;

/* Pruning ([prune]); conv2d / linear sections may keep themselves dense or
 * set their own target (src/prune, docs/PRUNING.md). */
typedef struct qat_prune_cfg {
    qat_prune_method method;
    qat_prune_schedule_kind schedule;
    qat_prune_scope scope;  /* one threshold per layer, or one across layers */
    float target_sparsity;  /* share of weights (magnitude) or channels (channel), [0, 1) */
    float initial_sparsity; /* gradual/dynamic: sparsity at start */
    qat_prune_unit unit;    /* start and end count epochs or optimizer steps */
    float start, end;       /* one_shot prunes at start; gradual/dynamic run start..end */
    int frequency;          /* gradual/dynamic: optimizer steps between mask updates */
    int regrow;             /* dynamic: pruned weights keep training and may re-enter */
    qat_norm_kind channel_norm; /* channel: rank filters/neurons by L1 or L2 norm */
} qat_prune_cfg;

/* L1/L2 penalties on weights ([regularize]; conv2d / linear may override). */
typedef struct qat_regularize_cfg {
    float l1, l2; /* penalty l1 sum |w| + l2 / 2 sum w^2 */
    int biases;   /* penalise biases too */
} qat_regularize_cfg;

/* Post-training quantization ([ptq], mode = ptq; src/ptq, docs/QUANTIZATION.md). */
typedef struct qat_ptq_cfg {
    int calibration_images; /* training images the observers see (drawn with the seed) */
    int bias_correction;    /* empirical bias correction, layer by layer */
    int adaround;           /* learned rounding (AdaRound), layer by layer */
    int adaround_iterations;
    int bn_reestimate; /* re-estimate BN statistics on the quantized model first */
} qat_ptq_cfg;

/* Knowledge distillation ([distill]): the training loss becomes
 * (1 - alpha) task + alpha distill, against a teacher checkpoint's logits. */
typedef struct qat_distill_cfg {
    char teacher[QAT_CFG_STR_MAX]; /* checkpoint.h5; "" : no distillation */
    float temperature;             /* kl: softmax(z / T) on both sides, (0, 100] */
    float alpha;                   /* weight of the distillation term, [0, 1] */
    qat_distill_loss loss;
} qat_distill_cfg;

/* Data-parallel training ([distributed], src/train/dist_step.c): how the
 * ranks' gradients travel. gradient_bits is an index into its names
 * ("32", "8", ...; qat_grad_bits_value gives the number). */
typedef enum qat_grad_bits {
    QAT_GBITS_32 = 0, QAT_GBITS_8, QAT_GBITS_4, QAT_GBITS_2, QAT_GBITS_1
} qat_grad_bits;
extern const char *const qat_grad_bits_names[];
int qat_grad_bits_value(qat_grad_bits b);
typedef enum qat_grad_rounding { QAT_GROUND_NEAREST = 0, QAT_GROUND_STOCHASTIC } qat_grad_rounding;
extern const char *const qat_grad_rounding_names[];
typedef enum qat_grad_scaling { QAT_GSCALE_MAX = 0, QAT_GSCALE_L2 } qat_grad_scaling;
extern const char *const qat_grad_scaling_names[];
typedef struct qat_distributed_cfg {
    qat_grad_bits gradient_bits;
    qat_grad_rounding gradient_rounding;
    qat_grad_scaling gradient_scaling; /* codes normalise by a bucket's max |g| or L2 norm */
    int bucket_size;                   /* gradient values per scale; 0: one per tensor */
    int error_feedback;                /* carry each step's quantization residual over */
    int simulate_ranks;                /* > 1: one process computes and sends as that many */
    int verify;                        /* hash parameters + quant state every epoch */
    int shard_optimizer;               /* each rank steps its part of the parameters */
} qat_distributed_cfg;
/* Weight sharing by clustering ([cluster]; conv2d / linear sections may set
 * their own clusters). From epoch start on, each layer's weights (or each
 * output channel's) take one of K shared values (src/prune/cluster.c). */
typedef struct qat_cluster_cfg {
    int clusters;              /* K in [2, 256]; 0: off */
    qat_cluster_init init;     /* first centroids of the k-means */
    float start;               /* epoch at which the weights are clustered and tied */
    int preserve_sparsity;     /* exact zeros (pruned weights) stay an exact zero cluster */
    qat_granularity granularity; /* one set of centroids per layer, or per output channel */
} qat_cluster_cfg;

typedef struct qat_layer_cfg {
    char name[QAT_NAME_MAX];
    int line; /* of the section header in the config file */
    qat_layer_type type;
    /* Where its input comes from (input = NAME, inputs = a, b for add and
     * concat): layer indices, each before this one; -1 is the model input.
     * Without the key, the previous layer (the model input for layer 0). */
    int ninputs;
    int inputs[QAT_MAX_INPUTS];
    int explicit_inputs; /* the section named them (written back only then) */
    /* conv2d, depthwise_conv2d */
    int out_channels, kernel, stride, padding;
    int groups;     /* conv2d: in and out channels split into this many groups */
    int multiplier; /* depthwise_conv2d: output channels per input channel */
    /* linear */
    int out_features, in_features; /* in_features 0: inferred */
    /* conv2d, depthwise_conv2d, linear (activation: add too) */
    int bias;
    qat_activation activation;
    int batchnorm;
    float bn_momentum, bn_eps;
    /* pools: kernel, stride (0: = kernel) */
    /* dropout */
    float p;
    qat_quant_cfg quant; /* effective: [quant] merged with this section's overrides */
    int explicit_activation_bits; /* the section set activation_bits itself */
    /* conv2d, linear: pruning overrides as written (resolved by
     * qat_config_prune_layer, so a written config reads back the same) */
    int prune;             /* 1 pruned, 0 kept dense, -1 not set */
    float target_sparsity; /* this layer's own target; -1 not set */
    float l1, l2;          /* effective: [regularize] merged with this section's */
    int clusters;          /* this layer's own K (0 off), -1 not set: [cluster] clusters */
    /* conv2d, linear: 0 keeps the layer in float32 in training and in the
     * exported model (docs/QUANTIZATION.md, "Float layers"); 1 by default */
    int quantize;
} qat_layer_cfg;

/* A conv2d / linear layer the config keeps in float (quantize = false). */
static inline int qat_layer_cfg_is_float(const qat_layer_cfg *l)
{
    return (l->type == QAT_LAYER_CONV2D || l->type == QAT_LAYER_LINEAR) && !l->quantize;
}

typedef struct qat_config {
    char path[QAT_CFG_STR_MAX];
    char name[QAT_NAME_MAX]; /* config file name without directory and .ini */
    qat_data_cfg data;
    qat_augment_cfg augment;
    qat_model_cfg model;
    qat_train_cfg train;
    qat_quant_cfg quant;
    qat_prune_cfg prune;
    qat_regularize_cfg regularize;
    qat_ptq_cfg ptq;
    qat_distill_cfg distill;
    qat_distributed_cfg distributed;
    qat_cluster_cfg cluster;
    int nlayers;
    qat_layer_cfg layers[QAT_MAX_LAYERS];
} qat_config;

/* Loads path, applies overrides ("section.key=value"), validates. Errors
 * name file:line (or the --set) and the key. */
qat_status qat_config_load(const char *path, const char *const *sets, int nsets, qat_config *cfg,
                           qat_error *err);
/* Same from text in memory (name is used in messages). */
qat_status qat_config_parse(const char *text, size_t len, const char *name,
                            const char *const *sets, int nsets, qat_config *cfg, qat_error *err);
/* Writes the fully resolved configuration (every key, defaults included) as
 * an INI that qat_config_parse reads back to the same struct. */
void qat_config_write(FILE *f, const qat_config *cfg);
/* The same, but a layer's [quant] keys only where they differ from what the
 * layer would inherit ([quant]'s, output_bits for the last layer's
 * activation_bits): read back, it gives the same config, and overrides of
 * [quant] keys then reach every layer that did not set its own. */
void qat_config_write_minimal(FILE *f, const qat_config *cfg);
/* Whether layer i (a conv2d / linear) is pruned under cfg->prune, and its
 * target: the section's own prune / target_sparsity, else every layer with
 * [prune] target_sparsity, except the last layer under method = channel
 * (its outputs are the class scores). 0 when method = none. */
int qat_config_prune_layer(const qat_config *cfg, int i, float *target);
/* Layer i's cluster count K: its own clusters key, else [cluster] clusters
 * for a conv2d / depthwise_conv2d / linear layer; 0 when not clustered. */
int qat_config_cluster_layer(const qat_config *cfg, int i);
/* Markdown table of every section's keys, defaults and meaning (README). */
void qat_config_write_reference(FILE *f);

#endif
