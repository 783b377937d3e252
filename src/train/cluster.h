/* The training run's clusterer ([cluster], trainer-internal): the k-means
 * state itself is src/prune/cluster.c's; what the run adds is when it
 * starts (in steps) and the cluster state an init checkpoint carries. */
#ifndef QAT_TRAIN_CLUSTER_H
#define QAT_TRAIN_CLUSTER_H

#include "qat/prune.h"
#include "qat/train.h"

/* *out NULL (and meta untouched) when no layer of m is clustered. Else the
 * centroids get an optimizer of oc's kind, [cluster] start becomes a step
 * from steps_per_epoch, and meta->cluster_state / cluster_count point at
 * the clusterer's state (checkpoints save it from there). Unless resume (the
 * run's own checkpoint restores it), cfg's [train] init checkpoint's
 * cluster state is taken when it has one of this layout (mask: the
 * pruner's, NULL: nothing pruned); another layout clusters afresh. Both are
 * said on stdout unless quiet. */
qat_status qat_train_clusterer_create(const qat_config *cfg, qat_model *m,
                                      const qat_optim_config *oc, long steps_per_epoch,
                                      int resume, const float *mask, int quiet,
                                      qat_clusterer **out, qat_checkpoint_meta *meta,
                                      qat_error *err);

#endif
