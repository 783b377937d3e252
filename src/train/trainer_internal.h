/* The training run's state, shared by the loop (trainer.c) and its step
 * (step.c); private to src/train. */
#ifndef QAT_TRAIN_TRAINER_INTERNAL_H
#define QAT_TRAIN_TRAINER_INTERNAL_H

#include <stdio.h>

#include "qat/prune.h"
#include "qat/train.h"
#include "cluster.h"
#include "dist_step.h"
#include "train_data.h"

typedef struct run {
    qat_trained pub; /* first: qat_train_end gets the run back from it */
    const qat_config *cfg; /* &rc once the data has resolved it */
    qat_config rc;
    char dir[4096];
    int threads;
    qat_run_data data;
    const qat_dataset *train, *eval; /* eval: val, or test without one */
    int regression;
    qat_augment_params aug;
    qat_team *team;
    qat_tape *tape;
    qat_model *model;
    qat_optim *opt;
    qat_lr_schedule sched;
    long steps_per_epoch;
    long quant_from_step; /* quantization delay, in optimizer steps */
    qat_batch batch;
    uint32_t *order;
    float *onehot;
    FILE *metrics;
    double *epoch_seconds;
    char *resumed_rows; /* metrics.csv rows kept from before a resume */
    qat_checkpoint_meta meta;
    int quiet;
    qat_pruner *pruner; /* NULL: [prune] method = none */
    qat_prune_schedule prune_sched;
    int regularize; /* some layer has an L1/L2 penalty */
    qat_teacher *teacher; /* NULL: no [distill] teacher */
    qat_clusterer *clusterer; /* NULL: no layer clustered */
    int resume;
    qat_dp *dp; /* data-parallel ranks (dist_step.c); NULL: one plain process */
    qat_dist *dist;
    int perturb_rank, perturb_cluster;
} run;

/* One optimizer step on the global batch at order[b .. b + n): forward and
 * backward (this process's shards of it), the gradients summed over the
 * ranks, the regularisation penalty, the non-finite checks and the
 * optimizer (sharded over the ranks or whole). Sums of this process's
 * examples into the outputs; QAT_ENUMERIC names the step and layer. */
qat_status qat_run_step(run *r, uint32_t b, int n, int epoch, int *seen, double *loss_sum,
                        double *kd_sum, double *penalty, int *correct, double *sq_err,
                        qat_error *err);

#endif
