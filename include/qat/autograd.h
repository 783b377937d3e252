/* Tensors and the reverse-mode tape.
 *
 * A step records each op as a node (backward function + saved context) on a
 * tape; qat_tape_backward walks the nodes in reverse. Activations, their
 * gradients and saved contexts live in the tape's arena, which is reset at
 * the next step. Parameters are leaves whose data and grad point into flat
 * buffers owned by the model (see nn.h), so an optimizer is a loop over
 * floats. */
#ifndef QAT_AUTOGRAD_H
#define QAT_AUTOGRAD_H

#include <stddef.h>

#include "qat/arena.h"
#include "qat/team.h"
#include "qat/rng.h"
#include "qat/status.h"

#define QAT_MAX_DIMS 4

/* Dense float tensor, row-major. Image activations are NHWC [N,H,W,C];
 * features are [N,F]; conv weights [Cout,KH,KW,Cin]; linear weights
 * [Out,In]. */
typedef struct qat_tensor {
    float *data;
    float *grad; /* NULL until someone needs it */
    int ndim;
    int shape[QAT_MAX_DIMS];
    size_t numel;
    int requires_grad;
} qat_tensor;

typedef struct qat_tape qat_tape;
typedef struct qat_node qat_node;
typedef void (*qat_backward_fn)(qat_tape *t, const qat_node *n);

struct qat_node {
    qat_backward_fn backward;
    qat_tensor *out;
    qat_tensor *in[4];
    int nin;
    int tag;     /* profiling: the layer that recorded it */
    void *saved; /* op context, allocated from the tape */
};

/* pool may be NULL (single-threaded); the tape does not own it. */
qat_status qat_tape_create(qat_team *team, qat_tape **out, qat_error *err);
void qat_tape_destroy(qat_tape *t);
/* Starts a new step: forgets all nodes and recycles the arena. */
void qat_tape_reset(qat_tape *t);
/* When off (evaluation), ops record nothing and keep no saved state. */
void qat_tape_set_grad_enabled(qat_tape *t, int on);
int qat_tape_grad_enabled(const qat_tape *t);
/* Training mode selects batch statistics, dropout, observer updates. */
void qat_tape_set_training(qat_tape *t, int on);
int qat_tape_training(const qat_tape *t);
qat_team *qat_tape_team(qat_tape *t);
qat_arena *qat_tape_arena(qat_tape *t);
/* The step's RNG (dropout); the trainer seeds it per step. */
qat_rng *qat_tape_rng(qat_tape *t);

/* Data-parallel training: how ops that need the whole global batch (batch
 * statistics, observer ranges) combine their per-rank values. fn must leave
 * the same result on every rank (it is a collective: every rank's tape
 * calls it in the same order). */
typedef enum qat_reduce_op { QAT_REDUCE_SUM, QAT_REDUCE_MIN, QAT_REDUCE_MAX } qat_reduce_op;
typedef void (*qat_allreduce_fn)(void *ctx, double *v, size_t n, qat_reduce_op op);
/* fn NULL (the default): one process, nothing to combine. stream (the
 * rank) keeps the ranks' dropout masks apart; 0 draws what one process does. */
void qat_tape_set_allreduce(qat_tape *t, qat_allreduce_fn fn, void *ctx, int stream);
/* Combines v[0..n) across ranks in place; a no-op without an allreduce. */
void qat_tape_allreduce(qat_tape *t, double *v, size_t n, qat_reduce_op op);
/* The dropout stream set with the allreduce (0 by default). */
int qat_tape_stream(const qat_tape *t);

/* Uninitialised activation tensor from the arena. */
qat_tensor *qat_tape_tensor(qat_tape *t, int ndim, const int *shape);
/* Scratch/saved memory from the arena, 64-byte aligned. */
void *qat_tape_alloc(qat_tape *t, size_t bytes);
/* Records out = op(in...) if grad is enabled and any input requires grad;
 * marks out->requires_grad accordingly. Returns 1 if recorded. */
int qat_tape_record(qat_tape *t, qat_backward_fn fn, qat_tensor *out, void *saved, int nin,
                    qat_tensor *const *in);
/* True if backward should produce a gradient for x. */
static inline int qat_needs_grad(const qat_tensor *x) { return x && x->requires_grad; }
/* x->grad, allocated zero-filled in the arena if it was NULL. Backward
 * functions accumulate (+=) into it. */
float *qat_tape_grad(qat_tape *t, qat_tensor *x);
/* x->grad for a backward that writes every element: when x had no gradient
 * yet the buffer is taken uninitialised and *fresh = 1, and the caller must
 * store 0.0f + v where it would have added v (the same bits as adding into a
 * zero-filled buffer, -0.0 included, without the zero-fill pass). */
float *qat_tape_grad_fresh(qat_tape *t, qat_tensor *x, int *fresh);
/* Seeds d(loss)/d(loss) = 1 (loss must have one element) and runs every
 * recorded node in reverse. Parameter grads accumulate into their buffers. */
void qat_tape_backward(qat_tape *t, qat_tensor *loss);
/* The same with d(loss)/d(loss) = w (a data-parallel shard's share of the
 * global batch, so the ranks' gradients sum to the batch's). */
void qat_tape_backward_weighted(qat_tape *t, qat_tensor *loss, float w);
/* Number of nodes recorded since the last reset. */
int qat_tape_num_nodes(const qat_tape *t);

/* Profiling (benchmarks, qat-train never turns it on). While on, nodes are
 * tagged with the current tag (set before each layer's ops), forward time
 * between tag changes and backward time of each node accumulate per tag
 * (tags 0 .. QAT_TAPE_MAX_TAGS-1); tag -1 pauses the forward clock. */
#define QAT_TAPE_MAX_TAGS 64
void qat_tape_set_profiling(qat_tape *t, int on);
void qat_tape_set_tag(qat_tape *t, int tag);
/* Seconds accumulated since profiling was turned on; arrays of
 * QAT_TAPE_MAX_TAGS entries. */
void qat_tape_profile(const qat_tape *t, double *fwd, double *bwd);

/* Leaf view over caller memory (parameters, inputs). grad may be NULL. */
qat_tensor qat_tensor_view(float *data, float *grad, int ndim, const int *shape);
size_t qat_shape_numel(int ndim, const int *shape);

/* Finite-difference gradient check (central differences, step eps) of the
 * scalar function built by fn over the given leaves (their data and grad must
 * be caller-owned). fn records onto t and returns a one-element loss. Every
 * element of every leaf is probed unless max_probes > 0 caps it per leaf
 * (probes then spread evenly). An element passes if
 * |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|); the
 * return value is the worst |diff| / (atol + rtol * max), so <= 1 means all
 * passed, and where[] names the worst element. */
typedef qat_tensor *(*qat_gradcheck_fn)(qat_tape *t, void *ctx);
double qat_gradcheck(qat_tape *t, qat_gradcheck_fn fn, void *ctx, qat_tensor *const *leaves,
                     int nleaves, double eps, double atol, double rtol, int max_probes,
                     char *where, size_t where_len);

#endif
