/* Batch normalisation over the last axis ([N,C] or [N,H,W,C]; M = numel / C
 * rows per channel), forward and backward side by side.
 *
 * Training: batch mean and biased variance (two passes, so no cancellation
 * from E[x^2] - E[x]^2), accumulated in double; the running statistics move
 * towards the batch mean and the unbiased variance. Backward uses the full
 * batch-statistics gradient
 *   dx = gamma * invstd / M * (M dy - sum(dy) - xhat sum(dy xhat)).
 * Eval: the same map with the running statistics, a per-channel affine map
 * whose gradient is dx = dy * gamma * invstd.
 * Both compute y = (x - mean) * (gamma * invstd) + beta; subtracting the
 * mean first avoids cancellation when |mean| >> std.
 *
 * Rows are split over the team; per-channel sums go into per-thread partials
 * reduced in thread order, so results are fixed for a fixed thread count.
 *
 * Data-parallel training (a tape with an allreduce, src/train/dist_step.c):
 * the per-channel sums and the row count are summed across ranks before
 * they are used, so every rank normalises by the global batch's statistics
 * (synchronised batchnorm) and its dx sees the global sum(dy) terms; the
 * gamma / beta gradients stay this rank's share, summed with the rest of
 * the gradient. Without an allreduce nothing changes. */
/* Its loops run in AVX-512 / AVX2 clones (bn_part); contraction off keeps
 * every product and sum rounded apart, as the baseline build computes
 * them, so a clone changes the speed, not the bits. */
#pragma GCC optimize("fp-contract=off")

#include <math.h>
#include <string.h>

#include "qat/ops.h"
#include "qat/team.h"

typedef struct {
    int training;
    size_t M;
    double m_all; /* rows over every rank (M in one process) */
    int C;
    float *mean, *invstd; /* [C]: batch or running statistics used */
} bn_saved;

typedef struct {
    const float *x, *dy, *mean, *invstd, *scale, *beta;
    float *y, *dx;
    double *part; /* per thread 2 * C doubles */
    const double *coef; /* backward: [C] sum(dy), [C] sum(dy xhat), or NULL */
    int C;
    size_t M;
    double m_all; /* BN_DX_TRAIN: rows the statistics came from, over every rank */
    int phase;
    int fresh; /* dx taken uninitialised (qat_tape_grad_fresh): stored, not added */
} bn_job;

enum { BN_SUM, BN_SQDEV, BN_AFFINE, BN_GRAD_SUMS, BN_DX_TRAIN, BN_DX_EVAL };

__attribute__((target_clones("avx512f", "avx2", "default"))) static void
bn_part(void *vctx, int tid, int nt)
{
    const bn_job *j = vctx;
    size_t b, e, C = (size_t)j->C;
    qat_team_range(j->M, tid, nt, &b, &e);
    /* phases without partial sums have no part buffer (offsetting NULL is UB) */
    double *s0 = j->part ? j->part + (size_t)tid * 2 * C : NULL, *s1 = s0 ? s0 + C : NULL;
    switch (j->phase) {
    case BN_SUM: /* s0 = sum x */
        memset(s0, 0, C * sizeof(double));
        for (size_t r = b; r < e; r++)
            for (size_t c = 0; c < C; c++)
                s0[c] += j->x[r * C + c];
        break;
    case BN_SQDEV: /* s0 = sum (x - mean)^2 */
        memset(s0, 0, C * sizeof(double));
        for (size_t r = b; r < e; r++)
            for (size_t c = 0; c < C; c++) {
                double d = (double)j->x[r * C + c] - j->mean[c];
                s0[c] += d * d;
            }
        break;
    case BN_AFFINE: /* y = (x - mean) * scale + beta */
        for (size_t r = b; r < e; r++)
            for (size_t c = 0; c < C; c++)
                j->y[r * C + c] = (j->x[r * C + c] - j->mean[c]) * j->scale[c] + j->beta[c];
        break;
    case BN_GRAD_SUMS: /* s0 = sum dy, s1 = sum dy * xhat */
        memset(s0, 0, 2 * C * sizeof(double));
        for (size_t r = b; r < e; r++)
            for (size_t c = 0; c < C; c++) {
                float xhat = (j->x[r * C + c] - j->mean[c]) * j->invstd[c];
                s0[c] += j->dy[r * C + c];
                s1[c] += (double)j->dy[r * C + c] * xhat;
            }
        break;
    case BN_DX_TRAIN: { /* dx += scale * (dy - mean(dy) - xhat * mean(dy xhat)) */
        const double *sdy = j->coef, *sdyx = j->coef + C;
        double inv_m = 1.0 / j->m_all;
        for (size_t r = b; r < e; r++)
            for (size_t c = 0; c < C; c++) {
                float xhat = (j->x[r * C + c] - j->mean[c]) * j->invstd[c];
                float g = j->dy[r * C + c] - (float)(sdy[c] * inv_m) -
                          xhat * (float)(sdyx[c] * inv_m);
                float v = j->scale[c] * g;
                if (j->fresh)
                    j->dx[r * C + c] = 0.0f + v;
                else
                    j->dx[r * C + c] += v;
            }
        break;
    }
    case BN_DX_EVAL:
        for (size_t r = b; r < e; r++)
            for (size_t c = 0; c < C; c++) {
                float v = j->dy[r * C + c] * j->scale[c];
                if (j->fresh)
                    j->dx[r * C + c] = 0.0f + v;
                else
                    j->dx[r * C + c] += v;
            }
        break;
    }
}

/* Runs one phase and, when the phase produces partials, sums them in thread
 * order into out[0 .. nsums * C). */
static void bn_run(qat_team *team, bn_job *j, int phase, double *out, int nsums)
{
    j->phase = phase;
    qat_team_run(team, bn_part, j);
    if (!out)
        return;
    int nt = qat_team_threads(team);
    size_t C = (size_t)j->C;
    for (size_t i = 0; i < (size_t)nsums * C; i++) {
        double s = 0.0;
        for (int tid = 0; tid < nt; tid++)
            s += j->part[(size_t)tid * 2 * C + i];
        out[i] = s;
    }
}

static void batchnorm_backward(qat_tape *t, const qat_node *nd)
{
    const bn_saved *s = nd->saved;
    qat_tensor *x = nd->in[0], *gamma = nd->in[1], *beta = nd->in[2];
    qat_team *team = qat_tape_team(t);
    size_t C = (size_t)s->C;
    bn_job j = {.x = x->data, .dy = nd->out->grad, .mean = s->mean, .invstd = s->invstd,
                .C = s->C, .M = s->M, .m_all = s->m_all};
    j.part = qat_tape_alloc(t, (size_t)qat_team_threads(team) * 2 * C * sizeof(double));
    double *sums = qat_tape_alloc(t, 2 * C * sizeof(double));
    bn_run(team, &j, BN_GRAD_SUMS, sums, 2);
    if (qat_needs_grad(gamma)) {
        float *dg = qat_tape_grad(t, gamma);
        for (size_t c = 0; c < C; c++)
            dg[c] += (float)sums[C + c];
    }
    if (qat_needs_grad(beta)) {
        float *db = qat_tape_grad(t, beta);
        for (size_t c = 0; c < C; c++)
            db[c] += (float)sums[c];
    }
    if (!qat_needs_grad(x))
        return;
    float *scale = qat_tape_alloc(t, C * sizeof(float)); /* gamma * invstd */
    for (size_t c = 0; c < C; c++)
        scale[c] = (gamma ? gamma->data[c] : 1.0f) * s->invstd[c];
    j.scale = scale;
    j.dx = qat_tape_grad_fresh(t, x, &j.fresh);
    /* dx needs the global batch's sums; this rank's dgamma / dbeta used its own */
    if (s->training)
        qat_tape_allreduce(t, sums, 2 * C, QAT_REDUCE_SUM);
    j.coef = sums;
    bn_run(team, &j, s->training ? BN_DX_TRAIN : BN_DX_EVAL, NULL, 0);
}

qat_tensor *qat_op_batchnorm(qat_tape *t, qat_tensor *x, qat_tensor *gamma, qat_tensor *beta,
                             float *running_mean, float *running_var, float momentum, float eps)
{
    QAT_ASSERT(x->ndim == 2 || x->ndim == 4);
    QAT_ASSERT(running_mean && running_var && eps > 0.0f);
    int C = x->shape[x->ndim - 1];
    size_t M = x->numel / (size_t)C, Cs = (size_t)C;
    QAT_ASSERT(C > 0 && M > 0);
    QAT_ASSERT(!gamma || gamma->numel == Cs);
    QAT_ASSERT(!beta || beta->numel == Cs);
    qat_team *team = qat_tape_team(t);
    qat_tensor *y = qat_tape_tensor(t, x->ndim, x->shape);
    int training = qat_tape_training(t);

    float *mean = qat_tape_alloc(t, Cs * sizeof(float));
    float *invstd = qat_tape_alloc(t, Cs * sizeof(float));
    float *scale = qat_tape_alloc(t, Cs * sizeof(float));
    float *shift = qat_tape_alloc(t, Cs * sizeof(float)); /* beta, or 0 */
    bn_job j = {.x = x->data, .y = y->data, .mean = mean, .C = C, .M = M};
    double m_all = (double)M;
    if (training) {
        j.part = qat_tape_alloc(t, (size_t)qat_team_threads(team) * 2 * Cs * sizeof(double));
        double *sums = qat_tape_alloc(t, (Cs + 1) * sizeof(double));
        bn_run(team, &j, BN_SUM, sums, 1);
        sums[Cs] = (double)M;
        qat_tape_allreduce(t, sums, Cs + 1, QAT_REDUCE_SUM);
        m_all = sums[Cs];
        for (size_t c = 0; c < Cs; c++)
            mean[c] = (float)(sums[c] / m_all);
        bn_run(team, &j, BN_SQDEV, sums, 1);
        qat_tape_allreduce(t, sums, Cs, QAT_REDUCE_SUM);
        /* M = 1 has no unbiased variance; its biased one (0) is used */
        double unbias = m_all > 1 ? m_all / (m_all - 1) : 1.0;
        for (size_t c = 0; c < Cs; c++) {
            double var = sums[c] / m_all;
            invstd[c] = (float)(1.0 / sqrt(var + (double)eps));
            running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * mean[c];
            running_var[c] =
                (1.0f - momentum) * running_var[c] + momentum * (float)(var * unbias);
        }
    } else {
        for (size_t c = 0; c < Cs; c++) {
            mean[c] = running_mean[c];
            invstd[c] = (float)(1.0 / sqrt((double)running_var[c] + (double)eps));
        }
    }
    for (size_t c = 0; c < Cs; c++) {
        scale[c] = (gamma ? gamma->data[c] : 1.0f) * invstd[c];
        shift[c] = beta ? beta->data[c] : 0.0f;
    }
    j.scale = scale;
    j.beta = shift;
    bn_run(team, &j, BN_AFFINE, NULL, 0);

    bn_saved *s = NULL;
    if (qat_tape_grad_enabled(t)) {
        s = qat_tape_alloc(t, sizeof *s);
        *s = (bn_saved){training, M, m_all, C, mean, invstd};
    }
    qat_tensor *in[3] = {x, gamma, beta};
    qat_tape_record(t, batchnorm_backward, y, s, 3, in);
    return y;
}
