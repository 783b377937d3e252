/* The two pieces of a float layer's forward in a quantized model
 * (quantize = false; docs/ARITHMETIC.md §7) that must equal the runtime bit
 * for bit: the dequantized input, and the conv / linear output in the
 * specified summation order. The gradients are the usual ones. */
#include <stdlib.h>

#include "qat/fdot.h"
#include "qat/ops.h"
#include "qat/team.h"

/* ---- dequantize: y = k * s ----------------------------------------------- */
static void dequant_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *k = n->in[0], *s = n->in[1];
    const float *dy = n->out->grad;
    double ds = 0;
    float *dk = qat_needs_grad(k) ? qat_tape_grad(t, k) : NULL;
    for (size_t i = 0; i < k->numel; i++) {
        if (dk)
            dk[i] += dy[i] * s->data[0];
        ds += (double)dy[i] * k->data[i];
    }
    if (qat_needs_grad(s))
        qat_tape_grad(t, s)[0] += (float)ds;
}

qat_tensor *qat_op_dequantize(qat_tape *t, qat_tensor *codes, qat_tensor *scale)
{
    qat_tensor *y = qat_tape_tensor(t, codes->ndim, codes->shape);
    const float s = scale->data[0];
    for (size_t i = 0; i < codes->numel; i++)
        y->data[i] = codes->data[i] * s; /* the runtime's (float)(q - zp) * scale */
    qat_tensor *in[2] = {codes, scale};
    qat_tape_record(t, dequant_backward, y, NULL, 2, in);
    return y;
}

/* ---- the output values in the runtime's order ------------------------------ */
typedef struct {
    const float *x, *w, *b;
    float *y;
    int in_h, in_w, in_c, out_h, out_w, out_c, k, stride, pad;
} exact_ctx;

/* Output pixels [p0, p1) of the batch (image-major). */
static void exact_rows(void *v, size_t p0, size_t p1)
{
    const exact_ctx *c = v;
    const size_t K = (size_t)c->k * (size_t)c->k * (size_t)c->in_c;
    const size_t pix = (size_t)c->out_h * (size_t)c->out_w;
    const size_t in_img = (size_t)c->in_h * (size_t)c->in_w * (size_t)c->in_c;
    float *col = malloc(K * sizeof *col);
    QAT_ASSERT(col);
    for (size_t r = p0; r < p1; r++) {
        size_t n = r / pix, o = r % pix;
        int oy = (int)(o / (size_t)c->out_w), ox = (int)(o % (size_t)c->out_w);
        size_t j = 0;
        for (int ky = 0; ky < c->k; ky++)
            for (int kx = 0; kx < c->k; kx++) {
                int iy = oy * c->stride - c->pad + ky, ix = ox * c->stride - c->pad + kx;
                int inside = iy >= 0 && iy < c->in_h && ix >= 0 && ix < c->in_w;
                const float *px = c->x + n * in_img +
                                  ((size_t)(inside ? iy : 0) * (size_t)c->in_w +
                                   (size_t)(inside ? ix : 0)) * (size_t)c->in_c;
                for (int ch = 0; ch < c->in_c; ch++)
                    col[j++] = inside ? px[ch] : 0.0f;
            }
        for (int oc = 0; oc < c->out_c; oc++)
            c->y[r * (size_t)c->out_c + (size_t)oc] =
                qat_f32_dot(c->w + (size_t)oc * K, col, K) + (c->b ? c->b[oc] : 0.0f);
    }
    free(col);
}

void qat_float_layer_exact(qat_tape *t, const qat_tensor *x, const qat_tensor *w,
                           const qat_tensor *b, qat_tensor *y, int kernel, int stride, int pad)
{
    exact_ctx c = {.x = x->data, .w = w->data, .b = b ? b->data : NULL, .y = y->data,
                   .k = kernel, .stride = stride, .pad = pad};
    if (y->ndim == 4) {
        c.in_h = x->shape[1], c.in_w = x->shape[2], c.in_c = x->shape[3];
        c.out_h = y->shape[1], c.out_w = y->shape[2], c.out_c = y->shape[3];
    } else { /* linear: a 1x1 conv over the flat features */
        c.in_h = c.in_w = c.out_h = c.out_w = 1;
        c.in_c = (int)(x->numel / (size_t)x->shape[0]); /* NHWC flattens as it is */
        c.out_c = y->shape[1];
        c.k = 1, c.stride = 1, c.pad = 0;
    }
    size_t rows = (size_t)x->shape[0] * (size_t)c.out_h * (size_t)c.out_w;
    qat_team_parallel_for(qat_tape_team(t), rows, 64, exact_rows, &c);
}
