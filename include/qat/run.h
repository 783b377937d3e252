/* A run end to end: train, export the integer model, evaluate it on the
 * integer runtime, write summary.json. The layer above train and export,
 * and with the CLI the only code that writes or reads model files
 * (runtime_h5.h); qat-train is a thin main over qat_run. */
#ifndef QAT_RUN_H
#define QAT_RUN_H

#include "qat/config.h"
#include "qat/train.h"

/* Trains cfg (qat_train, opts as there) and, with quantization on, exports
 * the integer model to <dir>/model.int8.h5 and evaluates what was written,
 * read back through the model file loader, on the test set with the
 * integer runtime. Then writes <dir>/summary.json and, unless opts->quiet,
 * prints the results. With [train] mode = ptq the training is post-training
 * quantization of the [train] init checkpoint (qat_ptq), whose result is
 * saved as <dir>/checkpoint.h5 before the same export and evaluation. */
qat_status qat_run(const qat_config *cfg, const qat_train_opts *opts, qat_error *err);

/* ---- summary.json ---------------------------------------------------------------
 * The contract between its writer (qat_run, src/run/summary.c) and its
 * reader (qat-sweep, src/sweep/summary.c): every key, named once here, in
 * the order written. One JSON object; numbers that do not apply are null.
 * README (qat-train) describes the keys for users. */
#define QAT_SUMMARY_CONFIG "config"           /* string: the config file */
#define QAT_SUMMARY_MODE "mode"               /* string: [train] mode, "qat" or "ptq" */
#define QAT_SUMMARY_INIT "init"               /* string: [train] init ("" for none) */
#define QAT_SUMMARY_EPOCHS "epochs"           /* [train] epochs */
#define QAT_SUMMARY_THREADS "threads"         /* threads the run used */
#define QAT_SUMMARY_TRAIN_IMAGES "train_images"
#define QAT_SUMMARY_TEST_IMAGES "test_images"
#define QAT_SUMMARY_QUANT_ENABLED "quant_enabled" /* 0 or 1 */
#define QAT_SUMMARY_TASK "task" /* string: "classification" or "regression" ([model] task) */
/* test accuracies in [0, 1]: float (quantization off; for mode = ptq the
 * float model quantized) or fake-quant and integer runtime (on); agreement:
 * share of test images on which those two predict the same class */
#define QAT_SUMMARY_FLOAT_ACCURACY "float_accuracy"
#define QAT_SUMMARY_FAKEQUANT_ACCURACY "fakequant_accuracy"
#define QAT_SUMMARY_INT8_ACCURACY "int8_accuracy"
#define QAT_SUMMARY_AGREEMENT "agreement"
/* Regression (null for a classifier; the accuracies above are null for a
 * regression): test mean squared error, mean absolute error and R^2 of the
 * same three models; agreement is then the share of outputs where the
 * integer runtime's code and the fake-quant model's are at most one output
 * quantization step apart. */
#define QAT_SUMMARY_FLOAT_MSE "float_mse"
#define QAT_SUMMARY_FLOAT_MAE "float_mae"
#define QAT_SUMMARY_FLOAT_R2 "float_r2"
#define QAT_SUMMARY_FAKEQUANT_MSE "fakequant_mse"
#define QAT_SUMMARY_FAKEQUANT_MAE "fakequant_mae"
#define QAT_SUMMARY_FAKEQUANT_R2 "fakequant_r2"
#define QAT_SUMMARY_INT8_MSE "int8_mse"
#define QAT_SUMMARY_INT8_MAE "int8_mae"
#define QAT_SUMMARY_INT8_R2 "int8_r2"
/* With [data] val_fraction only: the validation split's size and the
 * trained (float or fake-quant) model's accuracy, or MSE, MAE and R^2, on it */
#define QAT_SUMMARY_VAL_IMAGES "val_images"
#define QAT_SUMMARY_VAL_ACCURACY "val_accuracy"
#define QAT_SUMMARY_VAL_MSE "val_mse"
#define QAT_SUMMARY_VAL_MAE "val_mae"
#define QAT_SUMMARY_VAL_R2 "val_r2"
#define QAT_SUMMARY_EPOCH_SECONDS "epoch_seconds" /* array, one entry per epoch */
#define QAT_SUMMARY_TRAIN_SECONDS "train_seconds" /* their sum */
#define QAT_SUMMARY_TRAIN_IMAGES_PER_SECOND "train_images_per_second"
#define QAT_SUMMARY_INT8_IMAGES_PER_SECOND "int8_images_per_second"
#define QAT_SUMMARY_MODEL_BYTES_FLOAT "model_bytes_float"
#define QAT_SUMMARY_MODEL_BYTES_INT8 "model_bytes_int8" /* qat_export_param_bytes */
#define QAT_SUMMARY_MODEL_FILE_BYTES "model_file_bytes" /* size of model.int8.h5 */
/* With [prune] only: the deployed sparsity (zero weights / trained weights,
 * removed channels as zeros; int8 codes with quantization on), and two
 * objects keyed by layer name: each layer's sparsity and its channels kept */
#define QAT_SUMMARY_SPARSITY "sparsity"
#define QAT_SUMMARY_SPARSITY_LAYERS "sparsity_layers"
#define QAT_SUMMARY_CHANNELS_KEPT "channels_kept"
/* With mode = ptq only: the calibration (images, seconds of observer
 * passes), the compensation that ran ("none", or "+"-joined
 * bn_reestimate, adaround, bias_correction) and its seconds, their sum,
 * and an object keyed by layer name with each layer's numbers (qat_ptq's
 * report: round_error_nearest, round_error_learned, codes_flipped,
 * codes_mismatched, bias_error_before, bias_error_after) */
#define QAT_SUMMARY_CALIBRATION_IMAGES "calibration_images"
#define QAT_SUMMARY_CALIBRATION_SECONDS "calibration_seconds"
#define QAT_SUMMARY_COMPENSATION "compensation"
#define QAT_SUMMARY_COMPENSATION_SECONDS "compensation_seconds"
#define QAT_SUMMARY_PTQ_SECONDS "ptq_seconds"
#define QAT_SUMMARY_PTQ_LAYERS "ptq_layers"
/* Data-parallel runs only ([distributed], mpirun): ranks (real or
 * simulated), gradient_bits, and the bytes one rank sends per step. */
#define QAT_SUMMARY_RANKS "ranks"
#define QAT_SUMMARY_GRADIENT_BITS "gradient_bits"
#define QAT_SUMMARY_GRADIENT_BYTES "gradient_bytes_per_step_per_rank"
#define QAT_SUMMARY_PEAK_RSS_KB "peak_rss_kb"

#endif
