/* Losses: softmax cross-entropy and mean squared error (scalar outputs). */
#include <math.h>
#include <string.h>

#include "qat/ops.h"
#include "qat/team.h"

typedef struct {
    float *prob; /* softmax, [N, C] */
    const uint8_t *labels;
    float eps; /* label smoothing */
} ce_saved;

static void ce_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *x = n->in[0];
    if (!qat_needs_grad(x))
        return;
    const ce_saved *s = n->saved;
    int N = x->shape[0], C = x->shape[1];
    float g = n->out->grad[0] / (float)N;
    float *dx = qat_tape_grad(t, x);
    float off = s->eps / (float)C, on = 1.0f - s->eps + off;
    for (int i = 0; i < N; i++) {
        float *d = dx + (size_t)i * C;
        const float *p = s->prob + (size_t)i * C;
        for (int c = 0; c < C; c++)
            d[c] += g * (p[c] - (c == s->labels[i] ? on : off));
    }
}

qat_tensor *qat_op_softmax_cross_entropy(qat_tape *t, qat_tensor *x, const uint8_t *labels)
{
    return qat_op_softmax_cross_entropy_smooth(t, x, labels, 0.0f);
}

qat_tensor *qat_op_softmax_cross_entropy_smooth(qat_tape *t, qat_tensor *x, const uint8_t *labels,
                                                float eps)
{
    QAT_ASSERT(eps >= 0.0f && eps < 1.0f);
    QAT_ASSERT(x->ndim == 2);
    int N = x->shape[0], C = x->shape[1];
    int one = 1;
    qat_tensor *y = qat_tape_tensor(t, 1, &one);
    int record = qat_tape_grad_enabled(t) && x->requires_grad;
    float *prob = record ? qat_tape_alloc(t, x->numel * sizeof(float)) : NULL;
    double total = 0.0;
    for (int i = 0; i < N; i++) {
        const float *z = x->data + (size_t)i * C;
        QAT_ASSERT(labels[i] < C);
        float m = z[0];
        for (int c = 1; c < C; c++)
            m = z[c] > m ? z[c] : m;
        double se = 0.0;
        for (int c = 0; c < C; c++)
            se += exp((double)(z[c] - m));
        double lse = (double)m + log(se);
        double mean_z = 0.0;
        for (int c = 0; c < C && eps > 0.0f; c++)
            mean_z += (double)z[c] / C;
        /* -sum_c target_c log p_c = lse - (1 - eps) z_y - eps mean(z) */
        total += lse - (1.0 - eps) * (double)z[labels[i]] - (double)eps * mean_z;
        if (prob)
            for (int c = 0; c < C; c++)
                prob[(size_t)i * C + c] = (float)exp((double)z[c] - lse);
    }
    y->data[0] = (float)(total / N);
    if (record) {
        ce_saved *s = qat_tape_alloc(t, sizeof *s);
        s->prob = prob;
        s->labels = labels;
        s->eps = eps;
        qat_tape_record(t, ce_backward, y, s, 1, &x);
    }
    return y;
}

static void mse_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *x = n->in[0];
    if (!qat_needs_grad(x))
        return;
    const float *target = n->saved;
    float g = 2.0f * n->out->grad[0] / (float)x->numel;
    float *dx = qat_tape_grad(t, x);
    for (size_t i = 0; i < x->numel; i++)
        dx[i] += g * (x->data[i] - target[i]);
}

qat_tensor *qat_op_mse(qat_tape *t, qat_tensor *x, const float *target)
{
    int one = 1;
    qat_tensor *y = qat_tape_tensor(t, 1, &one);
    double s = 0.0;
    for (size_t i = 0; i < x->numel; i++) {
        double d = (double)x->data[i] - target[i];
        s += d * d;
    }
    y->data[0] = (float)(s / (double)x->numel);
    qat_tape_record(t, mse_backward, y, (void *)target, 1, &x);
    return y;
}

/* L1 and Huber: elementwise robust losses, mean over every element. The
 * saved record holds the target and Huber's delta (0 for L1). */
typedef struct robust_saved {
    const float *target;
    float delta;
} robust_saved;

/* d loss / d x of one element, before the 1 / numel of the mean. */
static float robust_grad(float d, float delta)
{
    if (delta == 0.0f) /* L1: the subgradient sign(d), 0 at 0 */
        return (float)((d > 0.0f) - (d < 0.0f));
    return d > delta ? 1.0f : d < -delta ? -1.0f : d / delta;
}

static void robust_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *x = n->in[0];
    if (!qat_needs_grad(x))
        return;
    const robust_saved *s = n->saved;
    float g = n->out->grad[0] / (float)x->numel;
    float *dx = qat_tape_grad(t, x);
    for (size_t i = 0; i < x->numel; i++)
        dx[i] += g * robust_grad(x->data[i] - s->target[i], s->delta);
}

static qat_tensor *robust_loss(qat_tape *t, qat_tensor *x, const float *target, float delta)
{
    int one = 1;
    qat_tensor *y = qat_tape_tensor(t, 1, &one);
    double s = 0.0;
    for (size_t i = 0; i < x->numel; i++) {
        double d = fabs((double)x->data[i] - target[i]);
        if (delta == 0.0f)
            s += d;
        else
            s += d < delta ? 0.5 * d * d / delta : d - 0.5 * delta;
    }
    y->data[0] = (float)(s / (double)x->numel);
    robust_saved *sv = qat_tape_alloc(t, sizeof *sv);
    *sv = (robust_saved){target, delta};
    qat_tape_record(t, robust_backward, y, sv, 1, &x);
    return y;
}

qat_tensor *qat_op_l1(qat_tape *t, qat_tensor *x, const float *target)
{
    return robust_loss(t, x, target, 0.0f);
}

qat_tensor *qat_op_huber(qat_tape *t, qat_tensor *x, const float *target, float delta)
{
    QAT_ASSERT(delta > 0.0f);
    return robust_loss(t, x, target, delta);
}

/* ---- distillation --------------------------------------------------------- */
typedef struct {
    float *q;       /* the student's softened probabilities softmax(z / T), [N, C] */
    float *p;       /* the teacher's, [N, C] */
    float scale;    /* dL/dz = scale (q - p): T^2 / T / N */
} kd_saved;

static void kd_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *x = n->in[0];
    if (!qat_needs_grad(x))
        return;
    const kd_saved *s = n->saved;
    float g = n->out->grad[0] * s->scale;
    float *dx = qat_tape_grad(t, x);
    for (size_t i = 0; i < x->numel; i++)
        dx[i] += g * (s->q[i] - s->p[i]);
}

/* log softmax(z / T) of one row into out (double for the sums). */
static void log_softmax_t(const float *z, int C, double T, double *out)
{
    double m = z[0];
    for (int c = 1; c < C; c++)
        m = z[c] > m ? z[c] : m;
    double se = 0.0;
    for (int c = 0; c < C; c++)
        se += exp(((double)z[c] - m) / T);
    double lse = log(se);
    for (int c = 0; c < C; c++)
        out[c] = ((double)z[c] - m) / T - lse;
}

qat_tensor *qat_op_distill_kl(qat_tape *t, qat_tensor *x, const float *teacher, float temperature)
{
    QAT_ASSERT(x->ndim == 2 && temperature > 0.0f);
    int N = x->shape[0], C = x->shape[1];
    int one = 1;
    qat_tensor *y = qat_tape_tensor(t, 1, &one);
    int record = qat_tape_grad_enabled(t) && x->requires_grad;
    kd_saved *s = record ? qat_tape_alloc(t, sizeof *s) : NULL;
    double *lq = qat_tape_alloc(t, 2 * (size_t)C * sizeof(double)), *lp = lq + C;
    if (s) {
        s->q = qat_tape_alloc(t, x->numel * sizeof(float));
        s->p = qat_tape_alloc(t, x->numel * sizeof(float));
        s->scale = temperature / (float)N; /* T^2 (1 / T) (1 / N) */
    }
    double T = temperature, total = 0.0;
    for (int i = 0; i < N; i++) {
        log_softmax_t(x->data + (size_t)i * C, C, T, lq);
        log_softmax_t(teacher + (size_t)i * C, C, T, lp);
        for (int c = 0; c < C; c++) {
            double p = exp(lp[c]);
            total += p * (lp[c] - lq[c]);
            if (s) {
                s->q[(size_t)i * C + c] = (float)exp(lq[c]);
                s->p[(size_t)i * C + c] = (float)p;
            }
        }
    }
    y->data[0] = (float)(T * T * total / N);
    if (record)
        qat_tape_record(t, kd_backward, y, s, 1, &x);
    return y;
}

static void blend_backward(qat_tape *t, const qat_node *n)
{
    const float *alpha = n->saved;
    float g = n->out->grad[0];
    if (qat_needs_grad(n->in[0]))
        qat_tape_grad(t, n->in[0])[0] += g * (1.0f - *alpha);
    if (qat_needs_grad(n->in[1]))
        qat_tape_grad(t, n->in[1])[0] += g * *alpha;
}

qat_tensor *qat_op_loss_blend(qat_tape *t, qat_tensor *a, qat_tensor *b, float alpha)
{
    QAT_ASSERT(a->numel == 1 && b->numel == 1);
    int one = 1;
    qat_tensor *y = qat_tape_tensor(t, 1, &one);
    y->data[0] = (float)((1.0 - alpha) * a->data[0] + (double)alpha * b->data[0]);
    float *saved = qat_tape_alloc(t, sizeof *saved);
    *saved = alpha;
    qat_tensor *in[2] = {a, b};
    qat_tape_record(t, blend_backward, y, saved, 2, in);
    return y;
}
