/* Folding affine maps into a layer's weights: input standardisation now,
 * batch normalisation later. Each fold is a differentiable op so training
 * sees (and quantizes) exactly the weights the exporter writes. */
#include <stdlib.h>

#include "model_internal.h"

static void scale_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *x = n->in[0];
    if (!qat_needs_grad(x))
        return;
    float a = *(const float *)n->saved;
    float *dx = qat_tape_grad(t, x);
    for (size_t i = 0; i < x->numel; i++)
        dx[i] += a * n->out->grad[i];
}

qat_tensor *qat_op_scale(qat_tape *t, qat_tensor *x, float a)
{
    qat_tensor *y = qat_tape_tensor(t, x->ndim, x->shape);
    for (size_t i = 0; i < x->numel; i++)
        y->data[i] = a * x->data[i];
    float *s = qat_tape_alloc(t, sizeof *s);
    *s = a;
    qat_tape_record(t, scale_backward, y, s, 1, &x);
    return y;
}

static void fold_bias_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *w = n->in[0], *b = n->nin > 1 ? n->in[1] : NULL;
    float c = *(const float *)n->saved;
    const float *dy = n->out->grad;
    size_t rows = (size_t)w->shape[0], k = w->numel / rows;
    if (qat_needs_grad(w)) {
        float *dw = qat_tape_grad(t, w);
        for (size_t r = 0; r < rows; r++)
            for (size_t i = r * k; i < (r + 1) * k; i++)
                dw[i] += c * dy[r];
    }
    if (qat_needs_grad(b)) {
        float *db = qat_tape_grad(t, b);
        for (size_t r = 0; r < rows; r++)
            db[r] += dy[r];
    }
}

qat_tensor *qat_op_fold_bias(qat_tape *t, qat_tensor *w, qat_tensor *b, float c)
{
    int rows = w->shape[0];
    size_t k = w->numel / (size_t)rows;
    qat_tensor *y = qat_tape_tensor(t, 1, &rows);
    for (int r = 0; r < rows; r++) {
        double s = 0.0; /* fixed order, double: the exporter gets the same bits */
        for (size_t i = (size_t)r * k; i < (size_t)(r + 1) * k; i++)
            s += w->data[i];
        y->data[r] = (b ? b->data[r] : 0.0f) + c * (float)s;
    }
    float *sv = qat_tape_alloc(t, sizeof *sv);
    *sv = c;
    qat_tensor *in[2] = {w, b};
    qat_tape_record(t, fold_bias_backward, y, sv, b ? 2 : 1, in);
    return y;
}

void qat_layer_effective(qat_model *m, qat_tape *t, qat_layer *l, qat_tensor **w, qat_tensor **b)
{
    *w = &l->w;
    *b = l->b.data ? &l->b : NULL;
    if (l != &m->layers[m->first_compute] || (m->norm_a == 1.0f && m->norm_c == 0.0f))
        return;
    /* W x_n + b with x_n = a x + c  ==  (a W) x + (b + c sum W). */
    qat_tensor *b_e = qat_op_fold_bias(t, *w, *b, m->norm_c);
    *w = qat_op_scale(t, *w, m->norm_a);
    *b = b_e;
}
