/* Optimizers over flat parameter/gradient buffers, and LR schedules.
 *
 * A model's parameters live in one float array (nn.h); segments say which
 * ranges get weight decay (weights: yes; biases, BN affine, quant scales: no).
 * An optional mask (pruning) pins masked entries: their gradient is ignored,
 * their optimizer state is zeroed and the parameter stays exactly 0. */
#ifndef QAT_OPTIM_H
#define QAT_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "qat/config.h" /* qat_optim_kind, qat_lr_kind and their names */
#include "qat/status.h"
#include "qat/team.h"

typedef struct qat_optim_config {
    qat_optim_kind kind;
    float momentum;     /* MOMENTUM, NESTEROV; also RMSprop's momentum if > 0 */
    float beta1, beta2; /* ADAM, ADAMW */
    float alpha;        /* RMSPROP smoothing constant */
    float eps;          /* ADAM, ADAMW, RMSPROP */
    float weight_decay; /* L2 coupled into the gradient, except ADAMW (decoupled) */
} qat_optim_config;

/* Fills the defaults: momentum 0.9, beta1 0.9, beta2 0.999, alpha 0.99,
 * eps 1e-8, weight_decay 0. */
void qat_optim_config_defaults(qat_optim_config *c, qat_optim_kind kind);

typedef struct qat_param_seg {
    size_t offset, count;
    int decay; /* 1: weight decay applies to this range */
} qat_param_seg;

typedef struct qat_optim qat_optim;

/* Allocates all state for n > 0 parameters up front. segs must tile [0, n)
 * exactly (any order, no gaps, no overlap, no empty segment, decay 0 or 1).
 * Only the fields the kind uses are validated. On error *out is NULL and err
 * names the offending field or segment. */
qat_status qat_optim_create(const qat_optim_config *c, size_t n, const qat_param_seg *segs,
                            int nsegs, qat_optim **out, qat_error *err);
void qat_optim_destroy(qat_optim *o);
/* One update at learning rate lr; never allocates. mask (n entries, 0 or 1)
 * may be NULL; where it is 0 the parameter and every state entry become +0
 * and the gradient (even NaN) is ignored. */
void qat_optim_step(qat_optim *o, float *params, const float *grads, const float *mask, float lr);
/* The same step on parameters [lo, hi) only (the step counter advances
 * once): a data-parallel rank updates its share, with the bits the whole
 * step gives those entries. */
void qat_optim_step_range(qat_optim *o, float *params, const float *grads, const float *mask,
                          float lr, size_t lo, size_t hi);
/* Later steps split their elementwise update over team (NULL: the calling
 * thread alone); every element is computed the same way, so the result does
 * not depend on the team. */
void qat_optim_set_team(qat_optim *o, qat_team *team);
/* Flat optimizer state for checkpoints: *count floats at the returned
 * pointer (owned by o, never NULL, *count 0 for SGD), plus the step counter.
 * Layout, n floats each: MOMENTUM/NESTEROV v; ADAM/ADAMW m, v; RMSPROP s,
 * then b if momentum > 0. Restoring writes the same layout into an optimizer
 * created with the same config and n; it then continues bit-identically. */
float *qat_optim_state(qat_optim *o, size_t *count);
long qat_optim_steps(const qat_optim *o);
void qat_optim_set_steps(qat_optim *o, long steps);

/* Scales grads so their global L2 norm is at most max_norm (max_norm <= 0:
 * no clipping). Returns the norm before clipping. */
double qat_clip_grad_norm(float *grads, size_t n, double max_norm);
/* Its two halves, for a norm summed over parts held apart: the sum of
 * squares (fixed order, in double), and the scaling of grads by
 * max_norm / norm when norm > max_norm > 0. */
double qat_grad_sq_sum(const float *grads, size_t n);
void qat_clip_grad_to(float *grads, size_t n, double norm, double max_norm);

typedef struct qat_lr_schedule {
    qat_lr_kind kind;
    float base_lr;
    float min_lr;      /* COSINE floor */
    float gamma;       /* STEP factor */
    long step_size;    /* STEP period, in optimizer steps */
    long total_steps;  /* COSINE horizon, in optimizer steps (after warmup) */
    long warmup_steps; /* linear ramp from base_lr/warmup_steps to base_lr; 0: none */
} qat_lr_schedule;

/* Checks the fields the kind uses: base_lr > 0; warmup_steps >= 0; STEP:
 * step_size >= 1, gamma in (0, 1]; COSINE: total_steps >= 1, min_lr in
 * [0, base_lr]. The message names the field. */
qat_status qat_lr_schedule_check(const qat_lr_schedule *s, qat_error *err);
/* Learning rate for 0-based optimizer step `step` (negative counts as 0) of a
 * schedule that passed qat_lr_schedule_check. Warmup: step k < warmup_steps
 * gets base_lr (k + 1) / warmup_steps; then the schedule runs on
 * t = step - warmup_steps. */
float qat_lr_at(const qat_lr_schedule *s, long step);

#endif
