/* The configuration's enum name tables: one per enum, used by the schema
 * (parsing, writing, --help-config) and by every message that names a value. */
#include "qat/config.h"

/* A table lists every value from 0 to last, then NULL; the schema parses an
 * enum key by writing its index through an int, so the enum must be one. */
#define NAMES(type, last, ...)                                                                   \
    const char *const type##_names[] = {__VA_ARGS__, NULL};                                      \
    _Static_assert(sizeof type##_names / sizeof type##_names[0] == (size_t)(last) + 2,           \
                   #type "_names names every value");                                            \
    _Static_assert(sizeof(type) == sizeof(int), #type " is stored as an int")

NAMES(qat_optim_kind, QAT_OPT_RMSPROP, "sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop");
NAMES(qat_lr_kind, QAT_LR_COSINE, "constant", "step", "cosine");
NAMES(qat_train_mode, QAT_MODE_PTQ, "qat", "ptq");
NAMES(qat_loss_kind, QAT_LOSS_HUBER, "cross_entropy", "mse", "l1", "huber");
NAMES(qat_task, QAT_TASK_REGRESSION, "classification", "regression");
NAMES(qat_input_type, QAT_INPUT_FLOAT32, "auto", "uint8", "float32");
NAMES(qat_format_kind, QAT_FMT_CSV, "auto", "idx", "hdf5", "npy", "cifar", "csv");
NAMES(qat_distill_loss, QAT_DISTILL_MSE, "kl", "mse");
NAMES(qat_cluster_init, QAT_CLUSTER_DENSITY, "kmeans++", "linear", "density");
NAMES(qat_quant_scheme, QAT_SCHEME_ASYMMETRIC, "symmetric", "asymmetric");
NAMES(qat_granularity, QAT_GRAN_PER_CHANNEL, "per_tensor", "per_channel");
NAMES(qat_observer_kind, QAT_OBS_MSE, "minmax", "ema", "percentile", "mse");
NAMES(qat_ste_kind, QAT_STE_IDENTITY, "clipped", "identity");
NAMES(qat_prune_method, QAT_PRUNE_CHANNEL, "none", "magnitude", "channel");
NAMES(qat_prune_schedule_kind, QAT_PRUNE_DYNAMIC, "one_shot", "gradual", "dynamic");
NAMES(qat_prune_scope, QAT_PRUNE_SCOPE_GLOBAL, "layer", "global");
NAMES(qat_prune_unit, QAT_PRUNE_UNIT_STEP, "epoch", "step");
NAMES(qat_norm_kind, QAT_NORM_L2, "l1", "l2");
NAMES(qat_grad_bits, QAT_GBITS_1, "32", "8", "4", "2", "1");
NAMES(qat_grad_rounding, QAT_GROUND_STOCHASTIC, "nearest", "stochastic");
NAMES(qat_grad_scaling, QAT_GSCALE_L2, "max", "l2");
NAMES(qat_layer_type, QAT_LAYER_GLOBAL_AVGPOOL, "conv2d", "linear", "maxpool2d", "avgpool2d",
      "flatten", "dropout", "depthwise_conv2d", "add", "concat", "global_avgpool");
NAMES(qat_activation, QAT_ACT_RELU6, "none", "relu", "relu6");

const char *qat_optim_kind_name(qat_optim_kind k) { return qat_enum_name(qat_optim_kind_names, (int)k); }
const char *qat_lr_kind_name(qat_lr_kind k) { return qat_enum_name(qat_lr_kind_names, (int)k); }
const char *qat_layer_type_name(qat_layer_type t) { return qat_enum_name(qat_layer_type_names, (int)t); }

int qat_grad_bits_value(qat_grad_bits b)
{
    static const int v[] = {32, 8, 4, 2, 1};
    return v[b];
}
