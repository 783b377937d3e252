/* Training runs: the loop, evaluation, checkpoints and run reports. What
 * follows training (export, integer evaluation, summary.json) is run.h's. */
#ifndef QAT_TRAIN_H
#define QAT_TRAIN_H

#include <stdint.h>

#include "qat/config.h"
#include "qat/data.h"
#include "qat/dist.h"
#include "qat/nn.h"
#include "qat/optim.h"
#include "qat/rng.h"

typedef struct qat_train_opts {
    const char *out_dir; /* NULL: runs/<config name> */
    int quiet;           /* no progress bar, no per-epoch lines */
    int resume;          /* continue from out_dir/checkpoint.h5 (cfg must be its config) */
    int stop_after;      /* > 0: stop after this epoch, as if interrupted (tests) */
    qat_dist *dist;      /* the ranks to train over (mpirun); NULL: this process alone */
    int perturb_rank;    /* tests of [distributed] verify: this rank (> 0) nudges a
                            parameter before each check */
    int perturb_cluster; /* with perturb_rank: it nudges a cluster centroid instead */
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
    const double *epoch_seconds;  /* `epochs` entries (a resume's earlier epochs from
                                     metrics.csv) */
    int epochs;                   /* [train] epochs; 0 for mode = ptq, which does not train */
    int leader;                   /* this process writes the run's files (rank 0) */
    int ranks;                    /* data-parallel ranks, real or simulated (1: none) */
    size_t gradient_bytes_per_step; /* one rank's gradient message (0: one process) */
} qat_trained;

/* Trains cfg and writes into the run directory: config.ini (the resolved
 * configuration), metrics.csv and checkpoint.h5 (every checkpoint_every
 * epochs and after the last). On success *out is the finished run; on
 * failure nothing is left to free. With opts->stop_after the run stops after
 * that epoch with QAT_EINTERNAL, as if interrupted. With [train] init the
 * model starts from that checkpoint (qat_model_init_from); with mode = ptq
 * the run stops there: it writes config.ini only, and *out holds the
 * initialised model for post-training quantization (src/ptq). */
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

/* ---- starting from a checkpoint (src/train/init.c) --------------------------------- */
typedef struct qat_init_report {
    int layers;      /* conv/linear layers copied */
    int skipped;     /* layers left out or initialised fresh (init_strict = false) */
    int quant_state; /* layers whose observer or LSQ state came along */
    int held;        /* the checkpoint was pruned and holds pruned (+0) parameters */
} qat_init_report;

/* Initialises m's conv/linear layers from the checkpoint at path: weights,
 * bias, batchnorm parameters and statistics, and, where they mean the same
 * in both configs, observer ranges and LSQ state. The checkpoint's model is
 * rebuilt from its own stored config and matched by layer name; a layer
 * missing from it, an extra one, or a shape that differs is QAT_EINVAL
 * naming m's config file (and line), the checkpoint, the layer and both
 * shapes -- unless !strict, when such layers keep their fresh
 * initialisation and are listed on log (NULL: quiet), as is a summary line.
 * keep (n_params floats, or NULL) receives 0 for every copied parameter a
 * pruned checkpoint holds at +0 (its masks), 1 elsewhere. A checkpoint that
 * does not load (missing, truncated, not a checkpoint, NaN inside) is its
 * loader's QAT_EINVAL, prefixed with m's config and [train] init. */
qat_status qat_model_init_from(qat_model *m, const char *path, int strict, FILE *log,
                               float *keep, qat_init_report *rep, qat_error *err);

/* ---- knowledge distillation (src/train/distill.c) ---------------------------------- */
typedef struct qat_teacher qat_teacher;

/* Loads student->distill.teacher (a checkpoint.h5, rebuilt from its stored
 * config by qat_checkpoint_load_model) to run forward on batches of up to
 * batch examples on team; inputs_float: the student's data are float32
 * features (else uint8 pixels). A checkpoint that does not load, or a
 * teacher whose input shape, input type or class count differs from the
 * student's, is QAT_EINVAL naming student's config, [distill] teacher and
 * the file. *out is NULL (and QAT_OK) when student has no teacher or
 * [train] mode = ptq (nothing trains, so nothing is distilled into). */
qat_status qat_teacher_create(const qat_config *student, qat_team *team, int batch,
                              int inputs_float, qat_teacher **out, qat_error *err);
/* t may be NULL. */
void qat_teacher_destroy(qat_teacher *t);
/* The teacher's own configuration (the one stored in its checkpoint). */
const qat_config *qat_teacher_config(const qat_teacher *t);
/* The run log's line naming the teacher and the [distill] settings; nothing
 * for t NULL. */
void qat_teacher_print(const qat_teacher *t, FILE *f);
/* Logits [n, classes] of the teacher (eval mode, no gradients) on n
 * examples (the student's inputs); owned by t, valid until its next forward. */
const float *qat_teacher_forward(qat_teacher *t, const void *inputs, int n);
/* The step's loss (1 - alpha) task + alpha distill, recorded on tape, where
 * distill compares logits with the teacher's on the same images ([distill]
 * loss, temperature); *distill receives the distillation term alone. */
qat_tensor *qat_teacher_loss(qat_teacher *t, qat_tape *tape, qat_tensor *task,
                             qat_tensor *logits, const void *inputs, int n, double *distill);
/* Seconds the teacher's forwards took since the last call. */
double qat_teacher_take_seconds(qat_teacher *t);

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
    int ranks; /* MPI ranks of the run (attribute "ranks", kept only when > 1) */
    /* Cluster state (qat_clusterer_state), or NULL: saved as /cluster_state;
     * restored when the checkpoint has it (cluster_restored then 1). */
    float *cluster_state;
    size_t cluster_count;
    int cluster_restored;
} qat_checkpoint_meta;

/* Writes params, state, optimizer state, meta and the resolved config to
 * path atomically (temp file, fsync, rename). opt may be NULL. */
qat_status qat_checkpoint_save(const char *path, qat_model *m, qat_optim *opt,
                               const qat_checkpoint_meta *meta, qat_error *err);
/* Reads the configuration stored in a checkpoint. */
qat_status qat_checkpoint_load_config(const char *path, qat_config *cfg, qat_error *err);
/* The same with overrides ("section.key=value") applied, as qat_config_load
 * applies them to a file; messages name "<path>:/config". The stored config
 * spells out every layer's [quant] keys; they are read as the layers' own
 * only where they differ from [quant] (qat_config_write_minimal), so an
 * override of a [quant] key reaches every layer that inherited it. */
qat_status qat_checkpoint_config(const char *path, const char *const *sets, int nsets,
                                 qat_config *cfg, qat_error *err);
/* Rebuilds the model a checkpoint holds (from its stored config). */
qat_status qat_checkpoint_load_model(const char *path, qat_model **out, qat_error *err);
/* 1 if the checkpoint at path has a dataset of that name (e.g. "prune_state"). */
int qat_checkpoint_has(const char *path, const char *dataset);
/* Reads the 1-D float dataset `name` of exactly n values (QAT_EINVAL naming
 * path and dataset if missing or of another length). */
qat_status qat_checkpoint_read_f32(const char *path, const char *name, float *out, size_t n,
                                   qat_error *err);
/* Restores params, state, optimizer state and meta into an existing model
 * and optimizer of the same shape. opt may be NULL. */
qat_status qat_checkpoint_restore(const char *path, qat_model *m, qat_optim *opt,
                                  qat_checkpoint_meta *meta, qat_error *err);

#endif
