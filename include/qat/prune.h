/* Pruning and regularisation: masks over a model's parameters, sparsity
 * schedules, L1/L2 penalties and sparsity counts. The physical removal of
 * pruned channels is export's (src/export/remove.c). docs/PRUNING.md
 * explains the design.
 *
 * A pruned parameter is an exact +0 in the model's parameter buffer, so the
 * forward, the observers, BN folding and export see the pruned model without
 * knowing about masks; the pruner keeps it at 0 through the optimizer. */
#ifndef QAT_PRUNE_H
#define QAT_PRUNE_H

#include <stddef.h>
#include <stdio.h>

#include "qat/config.h"
#include "qat/nn.h"
#include "qat/optim.h"

/* ---- schedules (src/prune/schedule.c) ------------------------------------------ */
typedef struct qat_prune_schedule {
    int kind;        /* QAT_PRUNE_ONE_SHOT / GRADUAL / DYNAMIC */
    long start, end; /* optimizer steps (0-based) of the first and last mask update */
    long frequency;  /* steps between updates (gradual, dynamic) */
} qat_prune_schedule;

/* [prune] start / end in steps (epochs x steps_per_epoch, rounded). The last
 * update must come before total_steps: QAT_EINVAL naming the config file and
 * the [prune] key otherwise. */
qat_status qat_prune_schedule_resolve(const qat_config *cfg, long steps_per_epoch,
                                      long total_steps, qat_prune_schedule *out, qat_error *err);
/* 1 if the masks are recomputed before optimizer step `step`: one_shot at
 * start; gradual/dynamic at start, every frequency steps after it, and at end. */
int qat_prune_is_update(const qat_prune_schedule *s, long step);
/* The sparsity masks hold during step `step` for a layer going from
 * `initial` to `target`: 0 before start; one_shot: target from start on;
 * gradual/dynamic: Zhu & Gupta's target + (initial - target) (1 - p)^3 with
 * p = (u - start) / (end - start) at the last update u <= step. */
double qat_prune_sparsity_at(const qat_prune_schedule *s, double initial, double target,
                             long step);
/* Entries a sparsity s prunes out of n: round(s n), never all n (n - 1 at most). */
size_t qat_prune_count(double s, size_t n);

/* ---- masks (src/prune/mask.c) ----------------------------------------------------- */
typedef struct qat_pruner qat_pruner;

/* Masks over every parameter of m (all kept), for m's config ([prune] and the
 * layers' overrides). m must outlive the pruner. A run without pruning needs
 * no pruner: every function below accepts p == NULL as "nothing pruned". */
qat_status qat_pruner_create(qat_model *m, const qat_prune_schedule *s, qat_pruner **out,
                             qat_error *err);
void qat_pruner_destroy(qat_pruner *p);
/* A run initialised from a pruned checkpoint keeps what it pruned: the
 * parameters with keep[i] == 0 (n_params floats; they hold +0) are pruned
 * from the start (a weight row held whole is a pruned channel), until the
 * schedule's next update ranks them -- below every kept one, as pruned
 * entries always rank. */
void qat_pruner_hold(qat_pruner *p, const float *keep);
/* A pruner that only holds masks, for such a run whose own config prunes
 * nothing: masks from keep (NULL: all kept, for a resume to restore), never
 * updated. Its state is the n_params mask. */
qat_status qat_pruner_create_hold(qat_model *m, const float *keep, qat_pruner **out,
                                  qat_error *err);
/* Before optimizer step `step`: when the schedule says so, recomputes the
 * masks (magnitudes or channel norms; per layer or one global threshold)
 * and zeroes the pruned parameters. Returns 1 if it updated the masks. */
int qat_pruner_update(qat_pruner *p, long step);
/* Recomputes the masks as the schedule stands at `step`, update step or not. */
void qat_pruner_recompute(qat_pruner *p, long step);
/* n_params floats: 1 kept, 0 pruned (NULL for p == NULL). */
const float *qat_pruner_mask(const qat_pruner *p);
/* Zeroes the gradients of pruned parameters (call before clipping so they
 * do not count in the norm). With regrow the dense copy needs them: no-op. */
void qat_pruner_mask_grads(const qat_pruner *p, float *grads);
/* One optimizer step on the model's parameters and gradients (the model's
 * buffers, or a copy of the same length). Pruned parameters stay exactly +0
 * and their optimizer state 0 (qat_optim_step's mask). With regrow
 * (schedule dynamic) the step runs on the dense weights, whose pruned
 * entries the forward never sees; the next mask update may bring them back. */
void qat_pruner_optim_step(qat_pruner *p, qat_optim *o, float *params, const float *grads,
                           float lr);
/* Checkpoint state (masks, channel masks, dense copy when regrowing):
 * *count floats owned by p; restoring writes the same layout back. */
float *qat_pruner_state(qat_pruner *p, size_t *count);
/* After restoring the state: masks hold only 0 and 1 and every masked
 * parameter is +0, else QAT_EINVAL naming the layer (a damaged checkpoint). */
qat_status qat_pruner_check_state(qat_pruner *p, qat_error *err);
/* Share of layer i's weights the mask prunes (0 for dense layers). */
double qat_pruner_layer_sparsity(const qat_pruner *p, int i);
/* One row of the training log's sparsity table (header the first time):
 * step, epoch, overall and per-layer mask sparsity. */
void qat_pruner_print_update(qat_pruner *p, FILE *f, long step, long steps_per_epoch);

/* ---- weight sharing (src/prune/cluster.c) --------------------------------------- */
/* 1-D k-means of v[0..n) into k centroids (ascending) in cent and each
 * value's nearest centroid in idx; deterministic for a seed (kmeans++ draws
 * from it). scratch holds n floats. At most 100 Lloyd iterations. */
void qat_kmeans_1d(const float *v, size_t n, int k, qat_cluster_init init, uint64_t seed,
                   float *cent, uint8_t *idx, float *scratch);

typedef struct qat_clusterer qat_clusterer;
/* Cluster state for m's config ([cluster] and the layers' clusters keys);
 * *out NULL when no layer is clustered (every function below accepts NULL).
 * oc configures the centroids' optimizer (the run's). A K above a layer's
 * (or channel's) weight count is QAT_EINVAL naming file:line and layer. */
qat_status qat_clusterer_create(qat_model *m, const qat_optim_config *oc, long start_step,
                                qat_clusterer **out, qat_error *err);
void qat_clusterer_destroy(qat_clusterer *c);
/* Before optimizer step `step`: at the start step (or later, if not yet
 * clustered) runs the k-means on the current weights and ties them.
 * mask: the pruner's (NULL: nothing pruned). Returns 1 if it clustered. */
int qat_clusterer_update(qat_clusterer *c, long step, const float *mask);
/* Clusters now, whatever the step. */
void qat_clusterer_cluster(qat_clusterer *c, const float *mask);
int qat_clusterer_active(const qat_clusterer *c);
/* cgrad[j] = sum of the gradients of centroid j's members (all centroids). */
void qat_clusterer_centroid_grads(qat_clusterer *c, const float *grads, float *cgrad);
/* After the model's optimizer step: steps the centroids on their members'
 * summed gradients and writes the members back from them. */
void qat_clusterer_step(qat_clusterer *c, const float *grads, const float *mask, float lr);
/* Checkpoint state (clustered flag, centroids, assignments, the centroid
 * optimizer's state): *count floats owned by c; restore by writing the same
 * layout into it and calling qat_clusterer_restored. */
float *qat_clusterer_state(qat_clusterer *c, size_t *count);
/* The tied model: the centroids followed by every clustered weight's
 * assignment (as a float), count of them in all, inside c (writable only
 * for tests that make ranks diverge). NULL and 0 for c NULL. */
float *qat_clusterer_tied(qat_clusterer *c, size_t *count);
/* After a restore: re-ties the weights; QAT_EINVAL for an impossible
 * assignment (a damaged checkpoint). */
qat_status qat_clusterer_restored(qat_clusterer *c, const float *mask, qat_error *err);
/* One log line naming the clustered layers and their K. */
void qat_clusterer_print(const qat_clusterer *c, FILE *f, long step);

/* ---- sparsity as deployed (src/prune/stats.c) ------------------------------------- */
typedef struct qat_prune_layer_stat {
    const char *name;            /* the model's layer name */
    size_t weights;              /* as trained: out_c * fan_in */
    size_t zeros;                /* zero weights (int8: codes at the zero point) + removed ones */
    int channels, channels_kept; /* output channels as trained / as exported */
} qat_prune_layer_stat;

typedef struct qat_prune_stats {
    int n; /* conv2d / linear layers, in model order */
    qat_prune_layer_stat layers[QAT_MAX_LAYERS];
    size_t weights, zeros;
    double sparsity; /* zeros / weights */
} qat_prune_stats;

/* From the float weights: exact zeros. (The int8 count, from the exported
 * codes, is qat_export_desc_sparsity's.) */
void qat_prune_stats_float(qat_model *m, qat_prune_stats *s);
/* Fills weights, zeros and sparsity from the s->n layer rows. */
void qat_prune_stats_total(qat_prune_stats *s);
/* Per-layer table: weights, zeros, sparsity, channels kept. */
void qat_prune_stats_print(FILE *f, const qat_prune_stats *s, const char *title);

/* ---- regularisation (src/prune/regularize.c) ------------------------------------- */
/* 1 if any conv2d / linear layer has an L1 or L2 penalty. */
int qat_regularize_active(const qat_config *cfg);
/* sum over conv2d / linear layers of l1 sum |w| + l2 / 2 sum w^2 with each
 * layer's own l1 / l2, over its weights (and biases with [regularize]
 * biases = true). */
double qat_regularize_penalty(qat_model *m);
/* Adds the penalty's gradient, l1 sign(w) + l2 w (sign(0) = 0), into m's
 * gradient buffer and returns the penalty. */
double qat_regularize_apply(qat_model *m);

#endif
