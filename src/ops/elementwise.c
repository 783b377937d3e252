/* Cheap elementwise ops: relu, relu6, add, concat, flatten, and the dot_const
 * probe. */
#include <string.h>

#include "qat/ops.h"
#include "qat/team.h"

/* ---- relu ---------------------------------------------------------------- */
typedef struct {
    const float *x;
    float *y;
    const float *dy;
    float *dx;
} relu_ctx;

/* Every loop here reads all its inputs unconditionally and selects, so it
 * vectorises: a select on a conditional load (y > 0 ? dy[i] : 0) stays a
 * scalar loop with a branch the data decides (relu6's backward was 29% of
 * a DS-CNN QAT step). */
#define QAT_EW_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

QAT_EW_CLONES static void relu_fwd(void *vctx, size_t b, size_t e)
{
    relu_ctx *c = vctx;
    for (size_t i = b; i < e; i++)
        c->y[i] = c->x[i] > 0.0f ? c->x[i] : 0.0f;
}

QAT_EW_CLONES static void relu_bwd(void *vctx, size_t b, size_t e)
{
    relu_ctx *c = vctx;
    const float *restrict y = c->y, *restrict dy = c->dy;
    float *restrict dx = c->dx;
    for (size_t i = b; i < e; i++) {
        float d = dy[i];
        dx[i] += y[i] > 0.0f ? d : 0.0f;
    }
}

/* Into a fresh gradient buffer: stored, not added, so the buffer needs no
 * zero-fill pass first. */
QAT_EW_CLONES static void relu_bwd_fresh(void *vctx, size_t b, size_t e)
{
    relu_ctx *c = vctx;
    const float *restrict y = c->y, *restrict dy = c->dy;
    float *restrict dx = c->dx;
    for (size_t i = b; i < e; i++) {
        float d = dy[i];
        dx[i] = y[i] > 0.0f ? d : 0.0f;
    }
}

static void relu_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *x = n->in[0];
    if (!qat_needs_grad(x))
        return;
    int fresh = !x->grad;
    if (fresh)
        x->grad = qat_tape_alloc(t, x->numel * sizeof(float));
    relu_ctx c = {NULL, n->out->data, n->out->grad, x->grad};
    qat_team_parallel_for(qat_tape_team(t), x->numel, QAT_ELEMWISE_GRAIN,
                     fresh ? relu_bwd_fresh : relu_bwd, &c);
}

qat_tensor *qat_op_relu(qat_tape *t, qat_tensor *x)
{
    qat_tensor *y = qat_tape_tensor(t, x->ndim, x->shape);
    relu_ctx c = {x->data, y->data, NULL, NULL};
    qat_team_parallel_for(qat_tape_team(t), x->numel, QAT_ELEMWISE_GRAIN, relu_fwd, &c);
    qat_tape_record(t, relu_backward, y, NULL, 1, &x);
    return y;
}

/* ---- relu6 --------------------------------------------------------------- */
QAT_EW_CLONES static void relu6_fwd(void *vctx, size_t b, size_t e)
{
    relu_ctx *c = vctx;
    for (size_t i = b; i < e; i++) {
        float v = c->x[i] > 0.0f ? c->x[i] : 0.0f;
        c->y[i] = v < 6.0f ? v : 6.0f;
    }
}

QAT_EW_CLONES static void relu6_bwd(void *vctx, size_t b, size_t e)
{
    relu_ctx *c = vctx;
    const float *restrict y = c->y, *restrict dy = c->dy;
    float *restrict dx = c->dx;
    for (size_t i = b; i < e; i++) {
        float v = y[i], d = dy[i];
        dx[i] += ((v > 0.0f) & (v < 6.0f)) ? d : 0.0f;
    }
}

/* Into a fresh gradient buffer (qat_tape_grad_fresh): no zero-fill pass. */
QAT_EW_CLONES static void relu6_bwd_fresh(void *vctx, size_t b, size_t e)
{
    relu_ctx *c = vctx;
    const float *restrict y = c->y, *restrict dy = c->dy;
    float *restrict dx = c->dx;
    for (size_t i = b; i < e; i++) {
        float v = y[i], d = dy[i];
        dx[i] = 0.0f + (((v > 0.0f) & (v < 6.0f)) ? d : 0.0f);
    }
}

static void relu6_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *x = n->in[0];
    if (!qat_needs_grad(x))
        return;
    int fresh;
    relu_ctx c = {NULL, n->out->data, n->out->grad, qat_tape_grad_fresh(t, x, &fresh)};
    qat_team_parallel_for(qat_tape_team(t), x->numel, QAT_ELEMWISE_GRAIN,
                          fresh ? relu6_bwd_fresh : relu6_bwd, &c);
}

qat_tensor *qat_op_relu6(qat_tape *t, qat_tensor *x)
{
    qat_tensor *y = qat_tape_tensor(t, x->ndim, x->shape);
    relu_ctx c = {x->data, y->data, NULL, NULL};
    qat_team_parallel_for(qat_tape_team(t), x->numel, QAT_ELEMWISE_GRAIN, relu6_fwd, &c);
    qat_tape_record(t, relu6_backward, y, NULL, 1, &x);
    return y;
}

/* ---- add ----------------------------------------------------------------- */
static void add_backward(qat_tape *t, const qat_node *n)
{
    const float *dy = n->out->grad;
    for (int k = 0; k < 2; k++) {
        if (!qat_needs_grad(n->in[k]))
            continue;
        int fresh;
        float *dx = qat_tape_grad_fresh(t, n->in[k], &fresh);
        if (fresh) /* the first gradient into x: stored, no zero-fill pass */
            for (size_t i = 0; i < n->out->numel; i++)
                dx[i] = 0.0f + dy[i];
        else
            for (size_t i = 0; i < n->out->numel; i++)
                dx[i] += dy[i];
    }
}

qat_tensor *qat_op_add(qat_tape *t, qat_tensor *a, qat_tensor *b)
{
    QAT_ASSERT(a->numel == b->numel);
    qat_tensor *y = qat_tape_tensor(t, a->ndim, a->shape);
    for (size_t i = 0; i < a->numel; i++)
        y->data[i] = a->data[i] + b->data[i];
    qat_tensor *in[2] = {a, b};
    qat_tape_record(t, add_backward, y, NULL, 2, in);
    return y;
}

/* ---- concat (last axis) ---------------------------------------------------- */
static void concat_backward(qat_tape *t, const qat_node *n)
{
    const float *dy = n->out->grad;
    size_t C = (size_t)n->out->shape[n->out->ndim - 1], rows = n->out->numel / C, off = 0;
    for (int k = 0; k < n->nin; k++) {
        qat_tensor *x = n->in[k];
        size_t c = (size_t)x->shape[x->ndim - 1];
        if (qat_needs_grad(x)) {
            float *dx = qat_tape_grad(t, x);
            for (size_t r = 0; r < rows; r++)
                for (size_t j = 0; j < c; j++)
                    dx[r * c + j] += dy[r * C + off + j];
        }
        off += c;
    }
}

qat_tensor *qat_op_concat(qat_tape *t, qat_tensor *const *x, int n)
{
    QAT_ASSERT(n >= 1 && n <= 4); /* a tape node holds four inputs */
    int nd = x[0]->ndim, shape[QAT_MAX_DIMS];
    memcpy(shape, x[0]->shape, sizeof shape);
    shape[nd - 1] = 0;
    for (int k = 0; k < n; k++)
        shape[nd - 1] += x[k]->shape[nd - 1];
    qat_tensor *y = qat_tape_tensor(t, nd, shape);
    size_t C = (size_t)shape[nd - 1], rows = y->numel / C, off = 0;
    for (int k = 0; k < n; k++) {
        size_t c = (size_t)x[k]->shape[nd - 1];
        QAT_ASSERT(x[k]->numel == rows * c);
        for (size_t r = 0; r < rows; r++)
            memcpy(y->data + r * C + off, x[k]->data + r * c, c * sizeof(float));
        off += c;
    }
    qat_tape_record(t, concat_backward, y, NULL, n, x);
    return y;
}

/* ---- flatten ------------------------------------------------------------- */
static void flatten_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *x = n->in[0];
    if (!qat_needs_grad(x))
        return;
    if (!x->grad) { /* the view's gradient is x's: taken over, not copied */
        x->grad = n->out->grad;
        return;
    }
    float *dx = x->grad;
    const float *dy = n->out->grad;
    for (size_t i = 0; i < x->numel; i++)
        dx[i] += dy[i];
}

qat_tensor *qat_op_flatten(qat_tape *t, qat_tensor *x)
{
    int shape[2] = {x->shape[0], (int)(x->numel / (size_t)x->shape[0])};
    qat_tensor *y = qat_tape_alloc(t, sizeof *y);
    *y = qat_tensor_view(x->data, NULL, 2, shape); /* same memory, new shape */
    qat_tape_record(t, flatten_backward, y, NULL, 1, &x);
    return y;
}

/* ---- dot with a constant vector (gradient-check probe) -------------------- */
static void dot_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *x = n->in[0];
    if (!qat_needs_grad(x))
        return;
    const float *w = n->saved;
    float g = n->out->grad[0];
    float *dx = qat_tape_grad(t, x);
    for (size_t i = 0; i < x->numel; i++)
        dx[i] += g * w[i];
}

qat_tensor *qat_op_dot_const(qat_tape *t, qat_tensor *x, const float *w)
{
    int one = 1;
    qat_tensor *y = qat_tape_tensor(t, 1, &one);
    double s = 0.0;
    for (size_t i = 0; i < x->numel; i++)
        s += (double)x->data[i] * w[i];
    y->data[0] = (float)s;
    qat_tape_record(t, dot_backward, y, (void *)w, 1, &x);
    return y;
}
