/* Training runs: the loop, evaluation, checkpoints and run reports. What
 * follows training (export, integer evaluation, summary.json) is run.h's. */
#ifndef QAT_TRAIN_H
#define QAT_TRAIN_H

#include <stdint.h>

#include "qat/config.h"
#include "qat/data.h"
#include "qat/nn.h"
#include "qat/optim.h"
#include "qat/rng.h"

typedef struct qat_train_opts {
    const char *out_dir; /* NULL: runs/<config name> */
    int quiet;           /* no progress bar, no per-epoch lines */
    int resume;          /* continue from out_dir/checkpoint.h5 (cfg must be its config) */
    int stop_after;      /* > 0: stop after this epoch, as if interrupted (tests) */
} qat_train_opts;

/* A finished training run: the trained model and what the run read, for
 * the steps after training. Everything is the run's (qat_train_end frees
 * it); cfg must outlive it. */
typedef struct qat_trained {
    const qat_config *cfg;        /* the run's: what the data resolved (input shape and
                                     type) filled in */
    const char *dir;              /* the run directory */
    int threads;                  /* [train] threads, 0 resolved to the online cores */
    qat_model *model;             /* as the last epoch left it */
    qat_tape *tape;               /* on the run's thread team, for evaluating model */
    const qat_dataset *train, *test;
    const qat_dataset *val;       /* [data] val_fraction's held-out split, or NULL */
    const double *epoch_seconds;  /* cfg->train.epochs entries (a resume's earlier
                                     epochs from metrics.csv) */
} qat_trained;

/* Trains cfg and writes into the run directory: config.ini (the resolved
 * configuration), metrics.csv and checkpoint.h5 (every checkpoint_every
 * epochs and after the last). On success *out is the finished run; on
 * failure nothing is left to free. With opts->stop_after the run stops after
 * that epoch with QAT_EINTERNAL, as if interrupted. */
qat_status qat_train(const qat_config *cfg, const qat_train_opts *opts, qat_trained **out,
                     qat_error *err);
/* Frees the run (model, tape, datasets, thread team); t may be NULL. */
void qat_train_end(qat_trained *t);

/* Evaluates the model (eval mode, no grad) over d; pred (d->n entries, may be
 * NULL) receives the predicted classes. Returns accuracy in [0, 1] (NaN if
 * out of memory). */
double qat_evaluate(qat_model *m, qat_tape *t, const qat_dataset *d, int batch, uint8_t *pred);

/* What an evaluation measured: accuracy for class labels, the regression
 * metrics for float targets (NaN where it does not apply). */
typedef struct qat_eval {
    double accuracy;
    qat_regression_metrics reg;
} qat_eval;
/* The same for any dataset (uint8 or float inputs, labels or targets);
 * outputs (d->n x the model's outputs, may be NULL) receives the model's
 * float outputs, pred (may be NULL) the predicted classes. */
qat_status qat_evaluate_set(qat_model *m, qat_tape *t, const qat_dataset *d, int batch,
                            float *outputs, uint8_t *pred, qat_eval *res, qat_error *err);

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
