/* Training runs: the loop, evaluation, checkpoints and run reports. */
#ifndef QAT_TRAIN_H
#define QAT_TRAIN_H

#include <stdint.h>

#include "qat/config.h"
#include "qat/data.h"
#include "qat/nn.h"
#include "qat/optim.h"
#include "qat/rng.h"
#include "qat/runtime.h"

typedef struct qat_train_opts {
    const char *out_dir; /* NULL: runs/<config name> */
    int quiet;           /* no progress bar, no per-epoch lines */
    int resume;          /* continue from out_dir/checkpoint.h5 (cfg must be its config) */
    int stop_after;      /* > 0: stop after this epoch, as if interrupted (tests) */
} qat_train_opts;

/* Trains cfg end to end and writes into the run directory: checkpoint.h5,
 * model.int8.h5 (when quantization is on), metrics.csv, summary.json and
 * config.ini (the resolved configuration). */
qat_status qat_train(const qat_config *cfg, const qat_train_opts *opts, qat_error *err);

/* Evaluates the model (eval mode, no grad) over d; pred (d->n entries, may be
 * NULL) receives the predicted classes. Returns accuracy in [0, 1]. */
double qat_evaluate(qat_model *m, qat_tape *t, const qat_dataset *d, int batch, uint8_t *pred);

/* Runs an integer model over d with a session of `threads` threads and
 * batch `batch`; pred as above. *images_per_second may be NULL. */
qat_status qat_evaluate_int8(const qat_rt_model *m, const qat_dataset *d, int threads, int batch,
                             uint8_t *pred, double *accuracy, double *images_per_second,
                             qat_error *err);

/* ---- checkpoints ---------------------------------------------------------------- */
typedef struct qat_checkpoint_meta {
    int epoch;       /* epochs completed */
    long step;       /* optimizer steps completed */
    qat_rng shuffle; /* state of the epoch-order generator */
    qat_rng dropout; /* state of the dropout generator */
    /* Pruning state (qat_pruner_state), or NULL: saved as /prune_state, and
     * on restore read back into it (the checkpoint must then hold it). */
    float *prune_state;
    size_t prune_count;
} qat_checkpoint_meta;

/* Writes params, state, optimizer state, meta and the resolved config to
 * path atomically (temp file, fsync, rename). opt may be NULL. */
qat_status qat_checkpoint_save(const char *path, qat_model *m, qat_optim *opt,
                               const qat_checkpoint_meta *meta, qat_error *err);
/* Reads the configuration stored in a checkpoint. */
qat_status qat_checkpoint_load_config(const char *path, qat_config *cfg, qat_error *err);
/* Rebuilds the model a checkpoint holds (from its stored config). */
qat_status qat_checkpoint_load_model(const char *path, qat_model **out, qat_error *err);
/* Restores params, state, optimizer state and meta into an existing model
 * and optimizer of the same shape. opt may be NULL. */
qat_status qat_checkpoint_restore(const char *path, qat_model *m, qat_optim *opt,
                                  qat_checkpoint_meta *meta, qat_error *err);

#endif
