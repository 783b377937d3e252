/* Data-parallel training steps (the trainer's side of include/qat/dist.h):
 * which examples of a global batch this process computes, how the shards'
 * gradients (quantized or not) are summed, and the checks that every rank
 * still holds the same model. One process without [distributed] settings
 * has no qat_dp at all, and the trainer runs exactly as before. */
#ifndef QAT_TRAIN_DIST_STEP_H
#define QAT_TRAIN_DIST_STEP_H

#include "qat/dist.h"
#include "qat/train.h"

typedef struct qat_dp qat_dp;

/* NULL in *out when the run is one plain process (no ranks, no simulated
 * ranks, 32-bit gradients). Checks what data parallelism cannot do (a
 * global batch smaller than the rank count, percentile / MSE observers
 * across ranks, configs that differ between ranks: QAT_EINVAL naming the
 * key), and installs the ranks' allreduce on the tape. */
qat_status qat_dp_create(qat_dist *dist, const qat_config *cfg, qat_model *m, qat_tape *t,
                         uint32_t train_n, qat_dp **out, qat_error *err);
void qat_dp_destroy(qat_dp *dp);
/* Ranks the batch is split over (real or simulated) and this process's. */
int qat_dp_ranks(const qat_dp *dp);
int qat_dp_rank(const qat_dp *dp);
/* 1: this process writes the run's files (rank 0, or no dp). */
int qat_dp_leader(const qat_dp *dp);
/* Shards this process computes per step: 1, or simulate_ranks. */
int qat_dp_local_shards(const qat_dp *dp);
/* The shard this process's local shard k is. */
int qat_dp_shard_index(const qat_dp *dp, int k);
/* Shard r of a global batch of n: examples [*off, *off + *cnt); uneven
 * batches give the first n % ranks shards one more. */
void qat_dp_shard(const qat_dp *dp, int n, int r, int *off, int *cnt);
/* Takes the shard's gradient (grads, then zeroed): quantized (with its
 * error feedback) into the step's message, or summed. */
void qat_dp_add_shard(qat_dp *dp, int k, float *grads, long step);
/* grads = the sum of every shard's decoded gradient, in shard order:
 * the same bits on every rank (sharded: in this rank's part only). */
void qat_dp_reduce(qat_dp *dp, float *grads);
/* Shards the optimizer over the ranks (ZeRO stage 1): from here on
 * qat_dp_reduce sums only this rank's part of the gradient, the caller
 * steps only that part (qat_dp_part) and qat_dp_gather_params gives every
 * rank the others' parts. The optimizer state is then current only in the
 * rank's own part until qat_dp_gather_state. Only for real ranks sending
 * 32-bit gradients (else a no-op); the caller decides that its step is
 * elementwise (no clustering, no regrowing pruner). */
qat_status qat_dp_shard_optimizer(qat_dp *dp, qat_error *err);
/* 1 and this rank's parameters [*lo, *hi) when the optimizer is sharded. */
int qat_dp_part(const qat_dp *dp, size_t *lo, size_t *hi);
/* Every rank's part of v (the parameters) to every rank. */
void qat_dp_gather_params(qat_dp *dp, float *v);
/* The optimizer state (count floats, arrays of the parameter count, as
 * qat_optim_state) made whole on every rank. */
void qat_dp_gather_state(qat_dp *dp, float *state, size_t count);
/* The largest v over the ranks (v on one process). */
double qat_dp_max_over_ranks(qat_dp *dp, double v);
/* Parameters and model state from rank 0 to every rank. */
void qat_dp_broadcast_model(qat_dp *dp, qat_model *m);
/* v[0..n) summed over ranks (epoch metrics). */
void qat_dp_sum(qat_dp *dp, double *v, int n);
/* Bytes one rank sends per step (its encoded gradient). */
size_t qat_dp_bytes_per_step(const qat_dp *dp);
/* Evaluation split over the ranks (classification; regression evaluates
 * the whole set on every rank): the same qat_eval on every rank. */
qat_status qat_dp_evaluate(qat_dp *dp, qat_model *m, qat_tape *t, const qat_dataset *d,
                           qat_eval *ev, qat_error *err);
/* [distributed] verify: hashes parameters and model state (observers,
 * LSQ, BN statistics), and apart the clusterer's centroids and assignments
 * (tied, ntied: qat_clusterer_tied; NULL, 0 without clustering), and
 * compares ranks; QAT_EINVAL naming the ranks that differ from rank 0 and
 * which of the two differs. */
/* drift (tests of verify only): 1 nudges a parameter, 2 a centroid first. */
qat_status qat_dp_verify(qat_dp *dp, qat_model *m, float *tied, size_t ntied, int drift,
                         int epoch, qat_error *err);

#endif
