/* The run configuration's schema: every section, key, default and range. */
#include "qat/config.h"

#include "config_internal.h"

#include <float.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define BIG 1e9

#define D(f) offsetof(qat_data_cfg, f)
static const qat_cfg_key data_keys[] = {
    {"dir", QAT_CFG_STRING, D(dir), "datasets/mnist", 0, 0, 0, NULL,
     "folder with the four MNIST IDX files, raw or .gz (relative to the working directory)"},
    {"train_limit", QAT_CFG_INT, D(train_limit), "0", 0, BIG, 0, NULL, "use only the first N training images (0: all)"},
    {"test_limit", QAT_CFG_INT, D(test_limit), "0", 0, BIG, 0, NULL, "use only the first N test images (0: all)"},
    {"shuffle", QAT_CFG_BOOL, D(shuffle), "true", 0, 0, 0, NULL, "reshuffle the training set every epoch"},
    {"format", QAT_CFG_ENUM, D(format), "auto", 0, 0, 0, qat_format_kind_names, "file format of the dataset (auto: told from the files; README, Datasets)"},
    {"train", QAT_CFG_STRING, D(train), "", 0, 0, 0, NULL, "the training split's own file or folder (empty: from dir)"},
    {"test", QAT_CFG_STRING, D(test), "", 0, 0, 0, NULL, "the test split's own file or folder (empty: from dir)"},
    {"val_fraction", QAT_CFG_FLOAT, D(val_fraction), "0", 0, 1, QAT_CFG_MAX_EXCL, NULL, "hold out this share of the training split (drawn with the seed) for per-epoch evaluation; the test set is used only at the end (0: evaluate on test every epoch)"},
    {"x_name", QAT_CFG_STRING, D(x_name), "x", 0, 0, 0, NULL, "HDF5: the inputs dataset"},
    {"y_name", QAT_CFG_STRING, D(y_name), "y", 0, 0, 0, NULL, "HDF5: the targets dataset"},
    {"target", QAT_CFG_STRING, D(target), "target", 0, 0, 0, NULL, "CSV: the target column (every other column is a feature)"},
};
#undef D

#define A(f) offsetof(qat_augment_cfg, f)
static const qat_cfg_key augment_keys[] = {
    {"random_crop", QAT_CFG_INT, A(random_crop), "0", 0, 64, 0, NULL, "pad each training image by this many zeros on every side and crop it back at a random offset (0: off)"},
    {"hflip", QAT_CFG_BOOL, A(hflip), "false", 0, 0, 0, NULL, "mirror training images left-right with probability 1/2"},
    {"shift", QAT_CFG_INT, A(shift), "0", 0, 64, 0, NULL, "translate training images by up to this many pixels, extending the edge pixels (0: off)"},
    {"cutout", QAT_CFG_INT, A(cutout), "0", 0, 4096, 0, NULL, "zero a square of this side at a random centre of each training image (0: off)"},
};
#undef A

#define M(f) offsetof(qat_model_cfg, f)
static const qat_cfg_key model_keys[] = {
    {"input_height", QAT_CFG_INT, M(input_height), "28", 1, 4096, 0, NULL, "image height (unset: from the data; set: must match it)"},
    {"input_width", QAT_CFG_INT, M(input_width), "28", 1, 4096, 0, NULL, "image width (unset: from the data; set: must match it)"},
    {"input_channels", QAT_CFG_INT, M(input_channels), "1", 1, 65536, 0, NULL, "image channels, or features of flat data (unset: from the data; set: must match it)"},
    {"num_classes", QAT_CFG_INT, M(num_classes), "10", 2, 128, 0, NULL, "classification: number of classes, the last layer's outputs"},
    {"task", QAT_CFG_ENUM, M(task), "classification", 0, 0, 0, qat_task_names, "class labels (accuracy) or float targets (MSE, MAE, R^2; the last layer has one output per target)"},
    {"input_type", QAT_CFG_ENUM, M(input_type), "auto", 0, 0, 0, qat_input_type_names, "uint8 pixels (p / 255, fixed input quantization) or float32 features (input scale and zero point observed on the training split); auto: as the data stores them"},
    {"normalize_input", QAT_CFG_BOOL, M(normalize_input), "true", 0, 0, 0, NULL, "train on (x - input_mean) / input_std (x = p/255 for pixels): folded into the first conv/linear layer for uint8 inputs, applied before quantization for float32"},
    {"input_mean", QAT_CFG_FLOATS, M(input_mean), "0.1307", -10, 10, QAT_CFG_AUTO, NULL, "mean subtracted by normalize_input: one value, one per channel, or auto (computed on the training split); default MNIST's"},
    {"input_std", QAT_CFG_FLOATS, M(input_std), "0.3081", 0, 10, QAT_CFG_MIN_EXCL | QAT_CFG_AUTO, NULL, "standard deviation divided by normalize_input: one value, one per channel, or auto; default MNIST's"},
};
#undef M

#define T(f) offsetof(qat_train_cfg, f)
static const qat_cfg_key train_keys[] = {
    {"epochs", QAT_CFG_INT, T(epochs), "5", 1, 100000, 0, NULL, "passes over the training set"},
    {"batch_size", QAT_CFG_INT, T(batch_size), "64", 1, 65536, 0, NULL, "images per optimizer step"},
    {"optimizer", QAT_CFG_ENUM, T(optimizer), "adam", 0, 0, 0, qat_optim_kind_names, "update rule"},
    {"lr", QAT_CFG_FLOAT, T(lr), "0.001", 0, 10, QAT_CFG_MIN_EXCL, NULL, "base learning rate"},
    {"momentum", QAT_CFG_FLOAT, T(momentum), "0.9", 0, 1, QAT_CFG_MAX_EXCL, NULL, "momentum/nesterov factor; rmsprop momentum"},
    {"beta1", QAT_CFG_FLOAT, T(beta1), "0.9", 0, 1, QAT_CFG_MAX_EXCL, NULL, "adam/adamw first-moment decay"},
    {"beta2", QAT_CFG_FLOAT, T(beta2), "0.999", 0, 1, QAT_CFG_MAX_EXCL, NULL, "adam/adamw second-moment decay"},
    {"alpha", QAT_CFG_FLOAT, T(alpha), "0.99", 0, 1, QAT_CFG_MAX_EXCL, NULL, "rmsprop smoothing constant"},
    {"eps", QAT_CFG_FLOAT, T(eps), "1e-8", 0, 1, QAT_CFG_MIN_EXCL, NULL, "adam/adamw/rmsprop denominator term"},
    {"weight_decay", QAT_CFG_FLOAT, T(weight_decay), "0", 0, 1, 0, NULL, "weights only; decoupled for adamw, L2 in the gradient otherwise"},
    {"grad_clip", QAT_CFG_FLOAT, T(grad_clip), "0", 0, 1e6, 0, NULL, "clip the global gradient L2 norm to this (0: off)"},
    {"lr_schedule", QAT_CFG_ENUM, T(lr_schedule), "constant", 0, 0, 0, qat_lr_kind_names, "learning-rate schedule"},
    {"lr_min", QAT_CFG_FLOAT, T(lr_min), "0", 0, 10, 0, NULL, "cosine: final learning rate"},
    {"lr_gamma", QAT_CFG_FLOAT, T(lr_gamma), "0.1", 0, 1, QAT_CFG_MIN_EXCL, NULL, "step: factor applied every lr_step_epochs"},
    {"lr_step_epochs", QAT_CFG_FLOAT, T(lr_step_epochs), "1", 0, BIG, QAT_CFG_MIN_EXCL, NULL, "step: period in epochs"},
    {"warmup_epochs", QAT_CFG_FLOAT, T(warmup_epochs), "0", 0, BIG, 0, NULL, "linear warm-up length in epochs (fractions allowed)"},
    {"seed", QAT_CFG_INT, T(seed), "1", 0, 2147483647.0, 0, NULL, "seed for initialisation, shuffling and dropout"},
    {"threads", QAT_CFG_INT, T(threads), "0", 0, 256, 0, NULL, "threads for all parallel work (0: all online cores)"},
    {"loss", QAT_CFG_ENUM, T(loss), "cross_entropy", 0, 0, 0, qat_loss_kind_names, "training loss (classification: mse, l1, huber on one-hot targets; regression: mse unless set)"},
    {"label_smoothing", QAT_CFG_FLOAT, T(label_smoothing), "0", 0, 1, QAT_CFG_MAX_EXCL, NULL, "cross_entropy: target (1 - e) onehot + e / classes"},
    {"huber_delta", QAT_CFG_FLOAT, T(huber_delta), "1", 0, 1e6, QAT_CFG_MIN_EXCL, NULL, "huber: where the loss turns from quadratic to linear"},
    {"checkpoint_every", QAT_CFG_INT, T(checkpoint_every), "1", 0, 100000, 0, NULL, "write a checkpoint every N epochs (0: only the last)"},
    {"progress", QAT_CFG_BOOL, T(progress), "true", 0, 0, 0, NULL, "show a progress bar when stderr is a terminal"},
    {"mode", QAT_CFG_ENUM, T(mode), "qat", 0, 0, 0, qat_train_mode_names, "qat: train (quantization-aware, or float with quant.enabled = false); ptq: quantize the init checkpoint post-training ([ptq]), no training"},
    {"init", QAT_CFG_STRING, T(init), "", 0, 0, 0, NULL, "checkpoint.h5 to start from: parameters, BN statistics and compatible observer/LSQ state, matched by layer name and shape (relative to the working directory; empty: random init)"},
    {"init_strict", QAT_CFG_BOOL, T(init_strict), "true", 0, 0, 0, NULL, "a layer missing from init, an extra one or a shape mismatch is an error (false: list them and initialise them fresh)"},
};
#undef T

#define Q(f) offsetof(qat_quant_cfg, f)
/* Keys that only make sense globally. */
static const qat_cfg_key quant_global_keys[] = {
    {"enabled", QAT_CFG_BOOL, Q(enabled), "true", 0, 0, 0, NULL, "simulate quantization while training (false: plain float)"},
    {"output_bits", QAT_CFG_INT, Q(output_bits), "8", 2, 8, 0, NULL, "bits of the logits (the last layer's activation_bits unless its section sets one)"},
    {"delay_steps", QAT_CFG_INT, Q(delay_steps), "0", 0, 1e9, 0, NULL, "train in float for this many steps before fake-quant turns on"},
    {"delay_epochs", QAT_CFG_FLOAT, Q(delay_epochs), "0", 0, 1e6, 0, NULL, "the same in epochs (fractions allowed); the later of the two applies"},
    {"freeze_observers_epoch", QAT_CFG_INT, Q(freeze_observers_epoch), "0", 0, 1e6, 0, NULL, "observers stop updating from this (1-based) epoch on (0: never)"},
    {"freeze_bn_epoch", QAT_CFG_INT, Q(freeze_bn_epoch), "0", 0, 1e6, 0, NULL, "batchnorm statistics freeze from this epoch on (0: never)"},
};
/* Keys valid in [quant] and, as per-layer overrides, in layer sections. */
static const qat_cfg_key quant_keys[] = {
    {"weight_bits", QAT_CFG_INT, Q(weight_bits), "8", 2, 8, 0, NULL, "weight bit-width"},
    {"activation_bits", QAT_CFG_INT, Q(activation_bits), "8", 2, 8, 0, NULL, "bit-width of the layer's output activations"},
    {"weight_scheme", QAT_CFG_ENUM, Q(weight_scheme), "symmetric", 0, 0, 0, qat_quant_scheme_names, "weights: zero point 0 (symmetric) or fitted (asymmetric)"},
    {"activation_scheme", QAT_CFG_ENUM, Q(activation_scheme), "asymmetric", 0, 0, 0, qat_quant_scheme_names, "activations: fitted zero point (asymmetric) or 0 (symmetric)"},
    {"weight_granularity", QAT_CFG_ENUM, Q(weight_granularity), "per_channel", 0, 0, 0, qat_granularity_names, "one weight scale per output channel, or one per tensor"},
    {"activation_granularity", QAT_CFG_ENUM, Q(activation_granularity), "per_tensor", 0, 0, 0, qat_granularity_names, "activations are always per_tensor"},
    {"weight_observer", QAT_CFG_ENUM, Q(weight_observer), "minmax", 0, 0, 0, qat_observer_kind_names, "weight range: current min/max, an EMA of it, a percentile of the magnitudes, or the clipping that minimises the quantization MSE (per tensor or per channel)"},
    {"activation_observer", QAT_CFG_ENUM, Q(activation_observer), "ema", 0, 0, 0, qat_observer_kind_names, "activation range: running min/max, EMA of batch ranges, EMA of batch percentiles, or EMA of the batches' MSE-optimal clipping"},
    {"ema_decay", QAT_CFG_FLOAT, Q(ema_decay), "0.99", 0, 1, QAT_CFG_MAX_EXCL, NULL, "ema observers: weight of the running range"},
    {"percentile", QAT_CFG_FLOAT, Q(percentile), "99.99", 0, 100, QAT_CFG_MIN_EXCL, NULL, "percentile observers: the share of values the range keeps, in (0, 100]"},
    {"weight_ste", QAT_CFG_ENUM, Q(weight_ste), "clipped", 0, 0, 0, qat_ste_kind_names, "weights' straight-through estimator: zero outside the range (clipped) or pass all"},
    {"activation_ste", QAT_CFG_ENUM, Q(activation_ste), "clipped", 0, 0, 0, qat_ste_kind_names, "activations' straight-through estimator"},
    {"learn_scale", QAT_CFG_BOOL, Q(learn_scale), "false", 0, 0, 0, NULL, "LSQ: train weight and activation scales (initialised from the observers)"},
};
#undef Q

#define P(f) offsetof(qat_prune_cfg, f)
/* The defaults prune over epochs 1..3 of a 5-epoch run and leave the last
 * epochs to recover at the final mask (docs/PRUNING.md). */
static const qat_cfg_key prune_keys[] = {
    {"method", QAT_CFG_ENUM, P(method), "none", 0, 0, 0, qat_prune_method_names, "what to prune: single weights by magnitude, or whole conv filters / linear neurons (removed at export)"},
    {"schedule", QAT_CFG_ENUM, P(schedule), "gradual", 0, 0, 0, qat_prune_schedule_kind_names, "one_shot at start; gradual: Zhu & Gupta cubic ramp start..end; dynamic: the same ramp, masks recomputed from dense weights"},
    {"scope", QAT_CFG_ENUM, P(scope), "global", 0, 0, 0, qat_prune_scope_names, "one magnitude threshold per layer, or one across all pruned layers"},
    {"target_sparsity", QAT_CFG_FLOAT, P(target_sparsity), "0.5", 0, 1, QAT_CFG_MAX_EXCL, NULL, "final share of pruned weights (magnitude) or channels (channel), in [0, 1)"},
    {"initial_sparsity", QAT_CFG_FLOAT, P(initial_sparsity), "0", 0, 1, QAT_CFG_MAX_EXCL, NULL, "gradual/dynamic: sparsity of the first mask update, in [0, 1)"},
    {"unit", QAT_CFG_ENUM, P(unit), "epoch", 0, 0, 0, qat_prune_unit_names, "start and end count epochs (fractions allowed) or optimizer steps"},
    {"start", QAT_CFG_FLOAT, P(start), "1", 0, 1e9, 0, NULL, "first mask update (one_shot: the only one), in unit"},
    {"end", QAT_CFG_FLOAT, P(end), "3", 0, 1e9, 0, NULL, "gradual/dynamic: last mask update, reaching target_sparsity, in unit"},
    {"frequency", QAT_CFG_INT, P(frequency), "100", 1, 1e9, 0, NULL, "gradual/dynamic: optimizer steps between mask updates"},
    {"regrow", QAT_CFG_BOOL, P(regrow), "true", 0, 0, 0, NULL, "dynamic: pruned weights keep training on a dense copy and re-enter when they outgrow kept ones"},
    {"channel_norm", QAT_CFG_ENUM, P(channel_norm), "l1", 0, 0, 0, qat_norm_kind_names, "channel: rank filters/neurons by the L1 or L2 norm of their weights"},
};
#undef P

#define R(f) offsetof(qat_regularize_cfg, f)
static const qat_cfg_key regularize_keys[] = {
    {"l1", QAT_CFG_FLOAT, R(l1), "0", 0, 10, 0, NULL, "L1 penalty l1 * sum abs(w) on weights, added to the loss (reported apart)"},
    {"l2", QAT_CFG_FLOAT, R(l2), "0", 0, 10, 0, NULL, "L2 penalty l2 / 2 * sum w^2 on weights; unlike adamw's weight_decay it goes through the gradient"},
    {"biases", QAT_CFG_BOOL, R(biases), "false", 0, 0, 0, NULL, "penalise biases too"},
};
#undef R

#define PT(f) offsetof(qat_ptq_cfg, f)
static const qat_cfg_key ptq_keys[] = {
    {"calibration_images", QAT_CFG_INT, PT(calibration_images), "1000", 1, BIG, 0, NULL, "mode = ptq: training images the observers see, drawn with [train] seed (at most the training set)"},
    {"bias_correction", QAT_CFG_BOOL, PT(bias_correction), "false", 0, 0, 0, NULL, "mode = ptq: correct each layer's bias by the mean difference of its float and quantized outputs on the calibration images"},
    {"adaround", QAT_CFG_BOOL, PT(adaround), "false", 0, 0, 0, NULL, "mode = ptq: learn each weight's rounding (up or down) to reconstruct the layer's float outputs (AdaRound), layer by layer"},
    {"adaround_iterations", QAT_CFG_INT, PT(adaround_iterations), "1000", 1, 1e7, 0, NULL, "mode = ptq: AdaRound optimizer steps per layer"},
    {"bn_reestimate", QAT_CFG_BOOL, PT(bn_reestimate), "false", 0, 0, 0, NULL, "mode = ptq: re-estimate batchnorm statistics on the quantized model (checkpoints with batchnorm)"},
};
#undef PT

#define L(f) offsetof(qat_layer_cfg, f)
/* Per-layer pruning / regularisation overrides (conv2d, linear). prune and
 * target_sparsity stay "not set" (-1) unless written, so a layer without
 * them follows [prune] whatever it says. */
static const qat_cfg_key layer_prune_keys[] = {
    {"prune", QAT_CFG_BOOL, L(prune), "true", 0, 0, 0, NULL, "false keeps this layer dense (unset: pruned when [prune] method is set, except the last layer under channel)"},
    {"target_sparsity", QAT_CFG_FLOAT, L(target_sparsity), "0.5", 0, 1, QAT_CFG_MAX_EXCL, NULL, "this layer's own target; ranked on its own under scope = global"},
    {"l1", QAT_CFG_FLOAT, L(l1), "0", 0, 10, 0, NULL, "this layer's L1 penalty"},
    {"l2", QAT_CFG_FLOAT, L(l2), "0", 0, 10, 0, NULL, "this layer's L2 penalty"},
    {"clusters", QAT_CFG_INT, L(clusters), "0", 0, 256, 0, NULL, "this layer's own cluster count K (2..256; 0 keeps it unclustered)"},
};
static const qat_cfg_key conv_keys[] = {
    {"out_channels", QAT_CFG_INT, L(out_channels), NULL, 1, 65536, 0, NULL, "output channels"},
    {"kernel", QAT_CFG_INT, L(kernel), "3", 1, 64, 0, NULL, "square kernel size"},
    {"stride", QAT_CFG_INT, L(stride), "1", 1, 64, 0, NULL, "stride"},
    {"padding", QAT_CFG_INT, L(padding), "0", 0, 64, 0, NULL, "zero padding on each side"},
    {"groups", QAT_CFG_INT, L(groups), "1", 1, 65536, 0, NULL, "grouped convolution: input and output channels in this many groups, each output seeing only its group's inputs (both channel counts must divide)"},
    {"bias", QAT_CFG_BOOL, L(bias), "true", 0, 0, 0, NULL, "learn a bias"},
    {"activation", QAT_CFG_ENUM, L(activation), "none", 0, 0, 0, qat_activation_names, "activation after the layer (relu6: clamp to [0, 6])"},
    {"batchnorm", QAT_CFG_BOOL, L(batchnorm), "false", 0, 0, 0, NULL, "batch normalisation before the activation"},
    {"bn_momentum", QAT_CFG_FLOAT, L(bn_momentum), "0.1", 0, 1, QAT_CFG_MIN_EXCL, NULL, "batchnorm running-statistics momentum"},
    {"bn_eps", QAT_CFG_FLOAT, L(bn_eps), "1e-5", 0, 1, QAT_CFG_MIN_EXCL, NULL, "batchnorm epsilon"},
    {"quantize", QAT_CFG_BOOL, L(quantize), "true", 0, 0, 0, NULL, "false keeps the layer in float32: no fake-quant of its weights in training, float32 weights and arithmetic in the exported model (its input is the dequantized int8 activation; its output is quantized for the next layer, or float logits when it is the last)"},
};
static const qat_cfg_key depthwise_keys[] = {
    {"multiplier", QAT_CFG_INT, L(multiplier), "1", 1, 256, 0, NULL, "output channels per input channel (out = in x multiplier)"},
    {"kernel", QAT_CFG_INT, L(kernel), "3", 1, 64, 0, NULL, "square kernel size"},
    {"stride", QAT_CFG_INT, L(stride), "1", 1, 64, 0, NULL, "stride"},
    {"padding", QAT_CFG_INT, L(padding), "0", 0, 64, 0, NULL, "zero padding on each side"},
    {"bias", QAT_CFG_BOOL, L(bias), "true", 0, 0, 0, NULL, "learn a bias"},
    {"activation", QAT_CFG_ENUM, L(activation), "none", 0, 0, 0, qat_activation_names, "activation after the layer"},
    {"batchnorm", QAT_CFG_BOOL, L(batchnorm), "false", 0, 0, 0, NULL, "batch normalisation before the activation"},
    {"bn_momentum", QAT_CFG_FLOAT, L(bn_momentum), "0.1", 0, 1, QAT_CFG_MIN_EXCL, NULL, "batchnorm running-statistics momentum"},
    {"bn_eps", QAT_CFG_FLOAT, L(bn_eps), "1e-5", 0, 1, QAT_CFG_MIN_EXCL, NULL, "batchnorm epsilon"},
};
static const qat_cfg_key add_keys[] = {
    {"activation", QAT_CFG_ENUM, L(activation), "none", 0, 0, 0, qat_activation_names, "activation after the sum"},
};
static const qat_cfg_key linear_keys[] = {
    {"out_features", QAT_CFG_INT, L(out_features), NULL, 1, 1 << 20, 0, NULL, "output features"},
    {"in_features", QAT_CFG_INT, L(in_features), "0", 0, 1 << 30, 0, NULL, "expected input features (0: inferred; else checked)"},
    {"bias", QAT_CFG_BOOL, L(bias), "true", 0, 0, 0, NULL, "learn a bias"},
    {"activation", QAT_CFG_ENUM, L(activation), "none", 0, 0, 0, qat_activation_names, "activation after the layer"},
    {"batchnorm", QAT_CFG_BOOL, L(batchnorm), "false", 0, 0, 0, NULL, "batch normalisation before the activation"},
    {"bn_momentum", QAT_CFG_FLOAT, L(bn_momentum), "0.1", 0, 1, QAT_CFG_MIN_EXCL, NULL, "batchnorm running-statistics momentum"},
    {"bn_eps", QAT_CFG_FLOAT, L(bn_eps), "1e-5", 0, 1, QAT_CFG_MIN_EXCL, NULL, "batchnorm epsilon"},
    {"quantize", QAT_CFG_BOOL, L(quantize), "true", 0, 0, 0, NULL, "false keeps the layer in float32: no fake-quant of its weights in training, float32 weights and arithmetic in the exported model (its input is the dequantized int8 activation; its output is quantized for the next layer, or float logits when it is the last)"},
};
static const qat_cfg_key pool_keys[] = {
    {"kernel", QAT_CFG_INT, L(kernel), "2", 1, 64, 0, NULL, "square window size"},
    {"stride", QAT_CFG_INT, L(stride), "0", 0, 64, 0, NULL, "stride (0: same as kernel)"},
};
static const qat_cfg_key dropout_keys[] = {
    {"p", QAT_CFG_FLOAT, L(p), "0.5", 0, 1, QAT_CFG_MAX_EXCL, NULL, "probability of zeroing an element while training"},
};
#undef L

typedef struct {
    const qat_cfg_key *keys;
    int n;
    int quant_overrides; /* layer type accepts per-layer quant keys */
    int prune_overrides; /* ...and per-layer pruning / regularisation keys */
} type_schema;

static const type_schema type_schemas[] = {
    [QAT_LAYER_CONV2D] = {conv_keys, COUNT(conv_keys), 1, 1},
    [QAT_LAYER_LINEAR] = {linear_keys, COUNT(linear_keys), 1, 1},
    [QAT_LAYER_MAXPOOL2D] = {pool_keys, COUNT(pool_keys), 0, 0},
    [QAT_LAYER_AVGPOOL2D] = {pool_keys, COUNT(pool_keys), 0, 0},
    [QAT_LAYER_FLATTEN] = {NULL, 0, 0, 0},
    [QAT_LAYER_DROPOUT] = {dropout_keys, COUNT(dropout_keys), 0, 0},
    [QAT_LAYER_DEPTHWISE_CONV2D] = {depthwise_keys, COUNT(depthwise_keys), 1, 1},
    [QAT_LAYER_ADD] = {add_keys, COUNT(add_keys), 1, 0},
    [QAT_LAYER_CONCAT] = {NULL, 0, 1, 0},
    [QAT_LAYER_GLOBAL_AVGPOOL] = {NULL, 0, 1, 0},
};

static const char *const fixed_sections[] = {"data",  "augment",    "model", "train",   "quant",
                                             "prune", "regularize", "ptq",   "distill",
                                             "cluster", "distributed", NULL};

static int is_fixed(const char *name)
{
    for (int i = 0; fixed_sections[i]; i++)
        if (strcmp(name, fixed_sections[i]) == 0)
            return 1;
    return 0;
}

static qat_status apply_fixed(qat_ini *ini, const char *name, const qat_cfg_key *keys, int n,
                              void *out, qat_error *err)
{
    qat_ini_section *s = qat_ini_find(ini, name);
    if (!s)
        return QAT_OK;
    qat_status st = qat_cfg_apply(ini, s, keys, n, out, 1, err);
    if (st != QAT_OK)
        return st;
    char valid[1024] = "";
    qat_cfg_names(keys, n, valid, sizeof valid);
    return qat_cfg_check_unused(ini, s, valid, err);
}

/* Cross-key checks of quantization settings that ranges cannot express;
 * the message points at the line that set the offending key (the layer's
 * own, else [quant]'s). */
static qat_status check_quant(qat_ini *ini, qat_ini_section *s, const qat_quant_cfg *q,
                              qat_error *err)
{
    if (q->activation_granularity != QAT_GRAN_PER_CHANNEL)
        return QAT_OK;
    qat_ini_entry *e = qat_ini_section_get(s, "activation_granularity");
    qat_ini_section *qs = qat_ini_find(ini, "quant");
    if (!e && qs) {
        e = qat_ini_section_get(qs, "activation_granularity");
        s = qs;
    }
    char where[600] = "";
    if (e)
        qat_ini_where(ini, e, where, sizeof where);
    return qat_fail(err, QAT_EINVAL,
                    "%s: [%s] activation_granularity = per_channel: activations are quantized "
                    "per tensor (one scale and zero point per layer output); per_channel "
                    "applies to weights only",
                    e ? where : ini->path, s->name);
}

static qat_status parse_layer(qat_ini *ini, qat_ini_section *s, const qat_quant_cfg *global,
                              const qat_regularize_cfg *reg, qat_layer_cfg *l, qat_error *err)
{
    static const qat_cfg_key type_key[] = {
        {"type", QAT_CFG_ENUM, offsetof(qat_layer_cfg, type), NULL, 0, 0, 0, qat_layer_type_names, "layer type"},
    };
    memset(l, 0, sizeof *l);
    const char *lname = s->name + strlen("layer.");
    if (*lname == '\0' || strlen(lname) >= QAT_NAME_MAX)
        return qat_fail(err, QAT_EINVAL, "%s:%d: [%s] layer names must have 1 to %d characters",
                        ini->path, s->line, s->name, QAT_NAME_MAX - 1);
    strcpy(l->name, lname);
    l->line = s->line;
    qat_status st = qat_cfg_apply(ini, s, type_key, 1, l, 1, err);
    if (st != QAT_OK)
        return st;
    const type_schema *ts = &type_schemas[l->type];
    qat_cfg_defaults(ts->keys, ts->n, l);
    if (ts->n && (st = qat_cfg_apply(ini, s, ts->keys, ts->n, l, 1, err)) != QAT_OK)
        return st;
    l->quant = *global;
    l->prune = -1;
    l->target_sparsity = -1.0f;
    l->clusters = -1;
    l->l1 = reg->l1;
    l->l2 = reg->l2;
    char valid[1024] = "type";
    qat_cfg_names(ts->keys, ts->n, valid, sizeof valid);
    if (ts->quant_overrides) {
        st = qat_cfg_apply(ini, s, quant_keys, COUNT(quant_keys), &l->quant, 0, err);
        if (st != QAT_OK || (st = check_quant(ini, s, &l->quant, err)) != QAT_OK)
            return st;
        l->explicit_activation_bits = qat_ini_section_get(s, "activation_bits") != NULL;
        qat_cfg_names(quant_keys, COUNT(quant_keys), valid, sizeof valid);
    }
    if (ts->prune_overrides) {
        st = qat_cfg_apply(ini, s, layer_prune_keys, COUNT(layer_prune_keys), l, 0, err);
        if (st != QAT_OK)
            return st;
        qat_cfg_names(layer_prune_keys, COUNT(layer_prune_keys), valid, sizeof valid);
    }
    /* a float layer is a plain conv2d or linear (docs/ARITHMETIC.md §7):
     * other types have no weights to keep, or (grouped) no float kernel */
    qat_ini_entry *fq = qat_ini_section_get(s, "quantize");
    int can_float = (l->type == QAT_LAYER_CONV2D && l->groups == 1) || l->type == QAT_LAYER_LINEAR;
    if (fq && !can_float && (qat_layer_cfg_is_float(l) || l->type != QAT_LAYER_CONV2D)) {
        char where[600];
        qat_ini_where(ini, fq, where, sizeof where);
        return qat_fail(err, QAT_EINVAL, "%s: [%s] quantize: only a conv2d (groups = 1) or linear "
                        "layer can be kept in float, this is a %s%s", where, s->name,
                        qat_layer_type_name(l->type), l->groups > 1 ? " with groups > 1" : "");
    }
    /* input / inputs are read once every layer is known (graph.c) */
    qat_config_mark_input_keys(s, l->type, valid, sizeof valid);
    if ((l->type == QAT_LAYER_MAXPOOL2D || l->type == QAT_LAYER_AVGPOOL2D) && l->stride == 0)
        l->stride = l->kernel;
    return qat_cfg_check_unused(ini, s, valid, err);
}

static void config_name(const char *path, char *name)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    if (n > 4 && strcmp(b + n - 4, ".ini") == 0)
        n -= 4;
    if (n >= QAT_NAME_MAX)
        n = QAT_NAME_MAX - 1;
    memcpy(name, b, n);
    name[n] = '\0';
}

static qat_status build(qat_ini *ini, const char *const *sets, int nsets, qat_config *cfg,
                        qat_error *err)
{
    qat_status st;
    for (int i = 0; i < nsets; i++) {
        /* --set may introduce a fixed section the file leaves at defaults,
         * but never a new layer. */
        char sec[256] = "";
        const char *eq = strchr(sets[i], '=');
        const char *dot = NULL;
        for (const char *p = sets[i]; eq && p < eq; p++)
            if (*p == '.')
                dot = p;
        if (dot && (size_t)(dot - sets[i]) < sizeof sec) {
            memcpy(sec, sets[i], (size_t)(dot - sets[i]));
            sec[dot - sets[i]] = '\0';
        }
        if ((st = qat_ini_override(ini, sets[i], is_fixed(sec), err)) != QAT_OK)
            return st;
    }
    qat_cfg_defaults(data_keys, COUNT(data_keys), &cfg->data);
    qat_cfg_defaults(augment_keys, COUNT(augment_keys), &cfg->augment);
    qat_cfg_defaults(model_keys, COUNT(model_keys), &cfg->model);
    qat_cfg_defaults(train_keys, COUNT(train_keys), &cfg->train);
    qat_cfg_defaults(quant_global_keys, COUNT(quant_global_keys), &cfg->quant);
    qat_cfg_defaults(quant_keys, COUNT(quant_keys), &cfg->quant);
    qat_cfg_defaults(prune_keys, COUNT(prune_keys), &cfg->prune);
    qat_cfg_defaults(regularize_keys, COUNT(regularize_keys), &cfg->regularize);
    qat_cfg_defaults(ptq_keys, COUNT(ptq_keys), &cfg->ptq);
    qat_cfg_defaults(qat_distill_keys, qat_distill_nkeys, &cfg->distill);
    qat_cfg_defaults(qat_distributed_keys, qat_distributed_nkeys, &cfg->distributed);
    qat_cfg_defaults(qat_cluster_keys, qat_cluster_nkeys, &cfg->cluster);
    if ((st = apply_fixed(ini, "data", data_keys, COUNT(data_keys), &cfg->data, err)) ||
        (st = apply_fixed(ini, "augment", augment_keys, COUNT(augment_keys), &cfg->augment,
                          err)) ||
        (st = apply_fixed(ini, "model", model_keys, COUNT(model_keys), &cfg->model, err)) ||
        (st = apply_fixed(ini, "train", train_keys, COUNT(train_keys), &cfg->train, err)) ||
        (st = apply_fixed(ini, "prune", prune_keys, COUNT(prune_keys), &cfg->prune, err)) ||
        (st = apply_fixed(ini, "regularize", regularize_keys, COUNT(regularize_keys),
                          &cfg->regularize, err)) ||
        (st = apply_fixed(ini, "ptq", ptq_keys, COUNT(ptq_keys), &cfg->ptq, err)) ||
        (st = apply_fixed(ini, "distill", qat_distill_keys, qat_distill_nkeys, &cfg->distill,
                          err)) ||
        (st = apply_fixed(ini, "distributed", qat_distributed_keys, qat_distributed_nkeys,
                          &cfg->distributed, err)) ||
        (st = apply_fixed(ini, "cluster", qat_cluster_keys, qat_cluster_nkeys, &cfg->cluster,
                          err)))
        return st;
    qat_ini_section *q = qat_ini_find(ini, "quant");
    if (q) {
        if ((st = qat_cfg_apply(ini, q, quant_global_keys, COUNT(quant_global_keys), &cfg->quant,
                                1, err)) ||
            (st = qat_cfg_apply(ini, q, quant_keys, COUNT(quant_keys), &cfg->quant, 1, err)))
            return st;
        char valid[1024] = "";
        qat_cfg_names(quant_global_keys, COUNT(quant_global_keys), valid, sizeof valid);
        qat_cfg_names(quant_keys, COUNT(quant_keys), valid, sizeof valid);
        if ((st = qat_cfg_check_unused(ini, q, valid, err)) || (st = check_quant(ini, q, &cfg->quant, err)))
            return st;
    }
    for (int i = 0; i < ini->nsections; i++) {
        qat_ini_section *s = &ini->sections[i];
        if (is_fixed(s->name))
            continue;
        if (strncmp(s->name, "layer.", 6) != 0)
            return qat_fail(err, QAT_EINVAL,
                            "%s:%d: unknown section [%s] (valid: [data], [augment], [model], "
                            "[train], [quant], [prune], [regularize], [ptq], [distill], [cluster], "
                            "[distributed], "
                            "[layer.<name>])",
                            ini->path, s->line, s->name);
        if (cfg->nlayers == QAT_MAX_LAYERS)
            return qat_fail(err, QAT_EINVAL, "%s:%d: more than %d layers", ini->path, s->line,
                            QAT_MAX_LAYERS);
        if ((st = parse_layer(ini, s, &cfg->quant, &cfg->regularize, &cfg->layers[cfg->nlayers],
                              err)))
            return st;
        cfg->nlayers++;
    }
    if (cfg->nlayers == 0)
        return qat_fail(err, QAT_EINVAL, "%s: no [layer.<name>] sections: the model is empty",
                        ini->path);
    if ((st = qat_config_resolve_inputs(ini, cfg, err)) != QAT_OK)
        return st;
    /* The logits get output_bits unless the last layer says otherwise. */
    for (int i = cfg->nlayers - 1; i >= 0; i--) {
        qat_layer_cfg *l = &cfg->layers[i];
        if (!qat_layer_type_has_weights(l->type))
            continue;
        if (!l->explicit_activation_bits)
            l->quant.activation_bits = cfg->quant.output_bits;
        break;
    }
    if ((st = qat_config_check_model(ini, cfg, err)) != QAT_OK)
        return st;
    if ((st = qat_config_check_prune(ini, cfg, err)) != QAT_OK ||
        (st = qat_config_check_cluster(ini, cfg, err)) != QAT_OK ||
        (st = qat_config_check_distill(ini, cfg, err)) != QAT_OK)
        return st;
    return qat_config_check_mode(ini, cfg, err);
}

qat_status qat_config_parse(const char *text, size_t len, const char *name,
                            const char *const *sets, int nsets, qat_config *cfg, qat_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    qat_ini *ini;
    qat_status st = qat_ini_parse(text, len, name, &ini, err);
    if (st != QAT_OK)
        return st;
    snprintf(cfg->path, sizeof cfg->path, "%s", name);
    config_name(name, cfg->name);
    st = build(ini, sets, nsets, cfg, err);
    qat_ini_free(ini);
    return st;
}

qat_status qat_config_load(const char *path, const char *const *sets, int nsets, qat_config *cfg,
                           qat_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    qat_ini *ini;
    qat_status st = qat_ini_load(path, &ini, err);
    if (st != QAT_OK)
        return st;
    snprintf(cfg->path, sizeof cfg->path, "%s", path);
    config_name(path, cfg->name);
    st = build(ini, sets, nsets, cfg, err);
    qat_ini_free(ini);
    return st;
}

/* The value a layer's quant key takes when its section does not set it:
 * [quant]'s, except the logits' bits (output_bits) for the last layer. */
static int inherits(const qat_config *cfg, int i, const qat_cfg_key *key)
{
    const qat_layer_cfg *l = &cfg->layers[i];
    char mine[QAT_CFG_STR_MAX + 32], global[QAT_CFG_STR_MAX + 32];
    qat_cfg_format(key, &l->quant, mine, sizeof mine);
    if (key->offset == offsetof(qat_quant_cfg, activation_bits) && i == qat_config_last_compute(cfg))
        snprintf(global, sizeof global, "%d", cfg->quant.output_bits);
    else
        qat_cfg_format(key, &cfg->quant, global, sizeof global);
    return strcmp(mine, global) == 0;
}

static void write_config(FILE *f, const qat_config *cfg, int minimal)
{
    fprintf(f, "[data]\n");
    qat_cfg_write(f, data_keys, COUNT(data_keys), &cfg->data);
    fprintf(f, "\n[augment]\n");
    qat_cfg_write(f, augment_keys, COUNT(augment_keys), &cfg->augment);
    fprintf(f, "\n[model]\n");
    /* a shape key the file left to the data stays unwritten: written, it
     * would pin the shape (and input_mean/std's per-channel count) */
    static const char *const shape_keys[3] = {"input_height", "input_width", "input_channels"};
    for (int k = 0; k < COUNT(model_keys); k++) {
        int skip = 0;
        for (int s = 0; s < 3; s++)
            skip |= strcmp(model_keys[k].name, shape_keys[s]) == 0 &&
                    !(cfg->model.input_set & (1 << s));
        if (!skip)
            qat_cfg_write(f, &model_keys[k], 1, &cfg->model);
    }
    fprintf(f, "\n[train]\n");
    qat_cfg_write(f, train_keys, COUNT(train_keys), &cfg->train);
    fprintf(f, "\n[quant]\n");
    qat_cfg_write(f, quant_global_keys, COUNT(quant_global_keys), &cfg->quant);
    qat_cfg_write(f, quant_keys, COUNT(quant_keys), &cfg->quant);
    fprintf(f, "\n[prune]\n");
    qat_cfg_write(f, prune_keys, COUNT(prune_keys), &cfg->prune);
    fprintf(f, "\n[regularize]\n");
    qat_cfg_write(f, regularize_keys, COUNT(regularize_keys), &cfg->regularize);
    fprintf(f, "\n[ptq]\n");
    qat_cfg_write(f, ptq_keys, COUNT(ptq_keys), &cfg->ptq);
    qat_config_write_distill(f, cfg);
    qat_config_write_distributed(f, cfg);
    qat_config_write_cluster(f, cfg);
    for (int i = 0; i < cfg->nlayers; i++) {
        const qat_layer_cfg *l = &cfg->layers[i];
        const type_schema *ts = &type_schemas[l->type];
        fprintf(f, "\n[layer.%s]\ntype = %s\n", l->name, qat_layer_type_name(l->type));
        qat_config_write_inputs(f, cfg, i);
        qat_cfg_write(f, ts->keys, ts->n, l);
        for (int k = 0; ts->quant_overrides && k < COUNT(quant_keys); k++) {
            if (minimal && inherits(cfg, i, &quant_keys[k]))
                continue;
            char v[QAT_CFG_STR_MAX + 32];
            qat_cfg_format(&quant_keys[k], &l->quant, v, sizeof v);
            fprintf(f, "%s = %s\n", quant_keys[k].name, v);
        }
        if (!ts->prune_overrides)
            continue;
        /* prune / target_sparsity only as written: a default must keep
         * following [prune] when the file is read back */
        for (int k = 0; k < COUNT(layer_prune_keys); k++) {
            const qat_cfg_key *key = &layer_prune_keys[k];
            if ((key->offset == offsetof(qat_layer_cfg, prune) && l->prune < 0) ||
                (key->offset == offsetof(qat_layer_cfg, target_sparsity) && l->target_sparsity < 0) ||
                (key->offset == offsetof(qat_layer_cfg, clusters) && l->clusters < 0))
                continue;
            char v[64];
            qat_cfg_format(key, l, v, sizeof v);
            fprintf(f, "%s = %s\n", key->name, v);
        }
    }
}

void qat_config_write(FILE *f, const qat_config *cfg) { write_config(f, cfg, 0); }

void qat_config_write_minimal(FILE *f, const qat_config *cfg) { write_config(f, cfg, 1); }

static void reference_table(FILE *f, const char *section, const qat_cfg_key *keys, int n)
{
    for (int i = 0; i < n; i++) {
        const qat_cfg_key *k = &keys[i];
        fprintf(f, "| `[%s]` | `%s` | %s | ", section, k->name, k->def ? k->def : "*required*");
        if (k->type == QAT_CFG_ENUM) {
            fprintf(f, "one of ");
            for (int c = 0; k->choices[c]; c++)
                fprintf(f, "%s`%s`", c ? ", " : "", k->choices[c]);
            fprintf(f, "; ");
        }
        fprintf(f, "%s |\n", k->doc);
    }
}

void qat_config_write_reference(FILE *f)
{
    fprintf(f, "| section | key | default | meaning |\n|---|---|---|---|\n");
    reference_table(f, "data", data_keys, COUNT(data_keys));
    reference_table(f, "augment", augment_keys, COUNT(augment_keys));
    reference_table(f, "model", model_keys, COUNT(model_keys));
    reference_table(f, "train", train_keys, COUNT(train_keys));
    reference_table(f, "quant", quant_global_keys, COUNT(quant_global_keys));
    reference_table(f, "quant", quant_keys, COUNT(quant_keys));
    reference_table(f, "prune", prune_keys, COUNT(prune_keys));
    reference_table(f, "regularize", regularize_keys, COUNT(regularize_keys));
    reference_table(f, "ptq", ptq_keys, COUNT(ptq_keys));
    reference_table(f, "distill", qat_distill_keys, qat_distill_nkeys);
    reference_table(f, "distributed", qat_distributed_keys, qat_distributed_nkeys);
    reference_table(f, "cluster", qat_cluster_keys, qat_cluster_nkeys);
    fprintf(f, "| `[layer.*]` | `type` | *required* | one of ");
    for (int c = 0; qat_layer_type_names[c]; c++)
        fprintf(f, "%s`%s`", c ? ", " : "", qat_layer_type_names[c]);
    fprintf(f, " |\n");
    fprintf(f, "| `[layer.*]` | `input` | the previous layer | the layer whose output this "
               "one reads (an earlier one: the model is a graph in file order) |\n"
               "| `[layer.*] add/concat` | `inputs` | *required* | the layers it reads, "
               "comma-separated (add: two of the same shape; concat: 2 to %d of the same "
               "height and width) |\n",
            QAT_MAX_INPUTS);
    reference_table(f, "layer.* conv2d", conv_keys, COUNT(conv_keys));
    reference_table(f, "layer.* depthwise_conv2d", depthwise_keys, COUNT(depthwise_keys));
    reference_table(f, "layer.* linear", linear_keys, COUNT(linear_keys));
    reference_table(f, "layer.* add", add_keys, COUNT(add_keys));
    reference_table(f, "layer.* maxpool2d/avgpool2d", pool_keys, COUNT(pool_keys));
    reference_table(f, "layer.* dropout", dropout_keys, COUNT(dropout_keys));
    fprintf(f, "\nconv2d, depthwise_conv2d, linear, add, concat and global_avgpool sections "
               "(the layers with an output scale of their own) also accept the per-layer "
               "`[quant]` overrides: ");
    for (int i = 0; i < COUNT(quant_keys); i++)
        fprintf(f, "%s`%s`", i ? ", " : "", quant_keys[i].name);
    fprintf(f, ".\n\nconv2d, depthwise_conv2d and linear sections also accept these pruning, "
               "regularisation and clustering overrides:\n\n| key | default | meaning |\n|---|---|---|\n");
    for (int i = 0; i < COUNT(layer_prune_keys); i++) {
        const qat_cfg_key *k = &layer_prune_keys[i];
        const char *from = k->offset == offsetof(qat_layer_cfg, target_sparsity) ? "prune"
                           : k->offset == offsetof(qat_layer_cfg, clusters)      ? "cluster"
                                                                                 : "regularize";
        if (k->type == QAT_CFG_BOOL)
            fprintf(f, "| `%s` | `true` | %s |\n", k->name, k->doc);
        else
            fprintf(f, "| `%s` | `[%s] %s` | %s |\n", k->name, from, k->name, k->doc);
    }
}
