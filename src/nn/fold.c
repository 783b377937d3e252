/* Folding affine maps into a layer's weights: input standardisation now,
 * batch normalisation later. Each fold is a differentiable op so training
 * sees (and quantizes) exactly the weights the exporter writes. */
/* Contraction off: the channel-scale loops run in AVX-512 / AVX2 clones
 * and must round each product and sum apart, as the baseline build does. */
#pragma GCC optimize("fp-contract=off")

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "qat/team.h"

#define QAT_FOLD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

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

/* ---- per-channel standardisation: the same folds, per input channel ----- */
typedef struct {
    const float *v;
    int C0;
} cols_saved;

static void scale_cols_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *x = n->in[0];
    if (!qat_needs_grad(x))
        return;
    const cols_saved *s = n->saved;
    float *dx = qat_tape_grad(t, x);
    size_t k = x->numel / (size_t)x->shape[0];
    for (size_t i = 0; i < x->numel; i++)
        dx[i] += s->v[(i % k) % (size_t)s->C0] * n->out->grad[i];
}

qat_tensor *qat_op_scale_cols(qat_tape *t, qat_tensor *w, const float *a, int C0)
{
    qat_tensor *y = qat_tape_tensor(t, w->ndim, w->shape);
    size_t k = w->numel / (size_t)w->shape[0];
    for (size_t i = 0; i < w->numel; i++)
        y->data[i] = a[(i % k) % (size_t)C0] * w->data[i];
    cols_saved *s = qat_tape_alloc(t, sizeof *s);
    *s = (cols_saved){a, C0};
    qat_tape_record(t, scale_cols_backward, y, s, 1, &w);
    return y;
}

static void fold_bias_cols_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *w = n->in[0], *b = n->nin > 1 ? n->in[1] : NULL;
    const cols_saved *s = n->saved;
    const float *dy = n->out->grad;
    size_t rows = (size_t)w->shape[0], k = w->numel / rows;
    if (qat_needs_grad(w)) {
        float *dw = qat_tape_grad(t, w);
        for (size_t r = 0; r < rows; r++)
            for (size_t i = 0; i < k; i++)
                dw[r * k + i] += s->v[i % (size_t)s->C0] * dy[r];
    }
    if (qat_needs_grad(b)) {
        float *db = qat_tape_grad(t, b);
        for (size_t r = 0; r < rows; r++)
            db[r] += dy[r];
    }
}

qat_tensor *qat_op_fold_bias_cols(qat_tape *t, qat_tensor *w, qat_tensor *b, const float *fc,
                                  int C0)
{
    int rows = w->shape[0];
    size_t k = w->numel / (size_t)rows;
    qat_tensor *y = qat_tape_tensor(t, 1, &rows);
    for (int r = 0; r < rows; r++) {
        /* per channel as the scalar fold sums: double, fixed order, then
         * one float product per channel (one channel: the scalar fold's bits) */
        float acc = b ? b->data[r] : 0.0f;
        for (int c = 0; c < C0; c++) {
            double s = 0.0;
            for (size_t i = (size_t)c; i < k; i += (size_t)C0)
                s += w->data[(size_t)r * k + i];
            acc += fc[c] * (float)s;
        }
        y->data[r] = acc;
    }
    cols_saved *sv = qat_tape_alloc(t, sizeof *sv);
    *sv = (cols_saved){fc, C0};
    qat_tensor *in[2] = {w, b};
    qat_tape_record(t, fold_bias_cols_backward, y, sv, b ? 2 : 1, in);
    return y;
}

void qat_layer_pre_bn(qat_model *m, qat_tape *t, qat_layer *l, qat_tensor **w, qat_tensor **b)
{
    *w = &l->w;
    *b = l->b.data ? &l->b : NULL;
    if (l != &m->layers[m->first_compute])
        return;
    if (m->norm_per_channel) {
        /* channel of fan-in element i: i % C0, through flatten and pools too */
        qat_tensor *b_e = qat_op_fold_bias_cols(t, *w, *b, m->in.fold_c, m->in.channels);
        *w = qat_op_scale_cols(t, *w, m->in.fold_a, m->in.channels);
        *b = b_e;
        return;
    }
    if (m->norm_a == 1.0f && m->norm_c == 0.0f)
        return;
    /* W x_n + b with x_n = a x + c  ==  (a W) x + (b + c sum W). */
    qat_tensor *b_e = qat_op_fold_bias(t, *w, *b, m->norm_c);
    *w = qat_op_scale(t, *w, m->norm_a);
    *b = b_e;
}

void qat_layer_effective(qat_model *m, qat_tape *t, qat_layer *l, qat_tensor **w, qat_tensor **b)
{
    qat_layer_pre_bn(m, t, l, w, b);
    if (!l->gamma.data)
        return;
    float eps = l->cfg->bn_eps;
    qat_tensor *bf = qat_op_bn_fold_bias(t, *b, &l->gamma, &l->beta, l->running_mean,
                                         l->running_var, eps);
    *w = qat_op_bn_fold_weights(t, *w, &l->gamma, l->running_var, eps);
    *b = bf;
}

/* ---- batch-norm folding (PyTorch's ConvBn QAT scheme) -------------------------
 * w_fold = w * gamma / sqrt(running_var + eps) per output channel, and
 * b_fold = beta + (b - running_mean) * gamma / sqrt(running_var + eps).
 * eps > 0 keeps the root positive; gamma = 0 gives zero weights (scale 1 in
 * the quantizer) and b_fold = beta, never NaN. */
typedef struct {
    const float *rv, *rm;
    float eps;
} bn_saved;

static float bn_sd(const bn_saved *s, int c) { return sqrtf(s->rv[c] + s->eps); }

static void bn_fold_w_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *w = n->in[0], *g = n->in[1];
    const bn_saved *s = n->saved;
    const float *dy = n->out->grad;
    size_t rows = (size_t)w->shape[0], k = w->numel / rows;
    float *dw = qat_needs_grad(w) ? qat_tape_grad(t, w) : NULL;
    float *dg = qat_needs_grad(g) ? qat_tape_grad(t, g) : NULL;
    for (size_t r = 0; r < rows; r++) {
        float inv = 1.0f / bn_sd(s, (int)r);
        double acc = 0;
        for (size_t i = r * k; i < (r + 1) * k; i++) {
            if (dw)
                dw[i] += dy[i] * g->data[r] * inv;
            acc += (double)dy[i] * w->data[i];
        }
        if (dg)
            dg[r] += (float)acc * inv;
    }
}

qat_tensor *qat_op_bn_fold_weights(qat_tape *t, qat_tensor *w, qat_tensor *gamma, const float *rv,
                                   float eps)
{
    qat_tensor *y = qat_tape_tensor(t, w->ndim, w->shape);
    size_t rows = (size_t)w->shape[0], k = w->numel / rows;
    bn_saved *s = qat_tape_alloc(t, sizeof *s);
    *s = (bn_saved){rv, NULL, eps};
    for (size_t r = 0; r < rows; r++) {
        float f = gamma->data[r] / bn_sd(s, (int)r);
        for (size_t i = r * k; i < (r + 1) * k; i++)
            y->data[i] = w->data[i] * f;
    }
    qat_tensor *in[2] = {w, gamma};
    qat_tape_record(t, bn_fold_w_backward, y, s, 2, in);
    return y;
}

static void bn_fold_b_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *g = n->in[0], *beta = n->in[1], *b = n->nin > 2 ? n->in[2] : NULL;
    const bn_saved *s = n->saved;
    const float *dy = n->out->grad;
    for (size_t c = 0; c < n->out->numel; c++) {
        float inv = 1.0f / bn_sd(s, (int)c);
        float centred = (b ? b->data[c] : 0.0f) - s->rm[c];
        if (qat_needs_grad(g))
            qat_tape_grad(t, g)[c] += dy[c] * centred * inv;
        if (qat_needs_grad(beta))
            qat_tape_grad(t, beta)[c] += dy[c];
        if (qat_needs_grad(b))
            qat_tape_grad(t, b)[c] += dy[c] * g->data[c] * inv;
    }
}

qat_tensor *qat_op_bn_fold_bias(qat_tape *t, qat_tensor *b, qat_tensor *gamma, qat_tensor *beta,
                                const float *rm, const float *rv, float eps)
{
    int C = (int)gamma->numel;
    qat_tensor *y = qat_tape_tensor(t, 1, &C);
    bn_saved *s = qat_tape_alloc(t, sizeof *s);
    *s = (bn_saved){rv, rm, eps};
    for (int c = 0; c < C; c++)
        y->data[c] = beta->data[c] + ((b ? b->data[c] : 0.0f) - rm[c]) * gamma->data[c] / bn_sd(s, c);
    qat_tensor *in[3] = {gamma, beta, b};
    qat_tape_record(t, bn_fold_b_backward, y, s, b ? 3 : 2, in);
    return y;
}

/* sqrt(running_var + eps) / gamma, 0 where gamma = 0: it undoes the folding
 * of the weights before batch statistics are applied, and a zero gamma makes
 * the BN output beta whatever it multiplies. */
static void bn_unfold_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *g = n->in[0];
    if (!qat_needs_grad(g))
        return;
    const bn_saved *s = n->saved;
    float *dg = qat_tape_grad(t, g);
    for (size_t c = 0; c < n->out->numel; c++)
        if (g->data[c] != 0.0f)
            dg[c] -= n->out->grad[c] * bn_sd(s, (int)c) / (g->data[c] * g->data[c]);
}

qat_tensor *qat_op_bn_unfold_factor(qat_tape *t, qat_tensor *gamma, const float *rv, float eps)
{
    int C = (int)gamma->numel;
    qat_tensor *y = qat_tape_tensor(t, 1, &C);
    bn_saved *s = qat_tape_alloc(t, sizeof *s);
    *s = (bn_saved){rv, NULL, eps};
    for (int c = 0; c < C; c++)
        y->data[c] = gamma->data[c] != 0.0f ? bn_sd(s, c) / gamma->data[c] : 0.0f;
    qat_tape_record(t, bn_unfold_backward, y, s, 1, &gamma);
    return y;
}

/* ---- per-channel scale and bias on the last axis ------------------------------ */
/* Rows split over the team for y and dx; the scale's gradient splits the
 * channels instead, each summed over the rows in order (the same double
 * sums as one thread). Separate loops with restrict pointers, so each
 * vectorises. */
typedef struct {
    const float *x, *s, *dy;
    float *y, *dx;
    double *ds;
    size_t C, rows;
    int fresh;
} cs_ctx;

QAT_FOLD_CLONES static void cs_fwd_rows(void *v, size_t b, size_t e)
{
    const cs_ctx *k = v;
    const float *restrict s = k->s;
    for (size_t r = b; r < e; r++) {
        const float *restrict x = k->x + r * k->C;
        float *restrict y = k->y + r * k->C;
        for (size_t c = 0; c < k->C; c++)
            y[c] = x[c] * s[c];
    }
}

QAT_FOLD_CLONES static void cs_dx_rows(void *v, size_t b, size_t e)
{
    const cs_ctx *k = v;
    const float *restrict s = k->s;
    for (size_t r = b; r < e; r++) {
        const float *restrict dy = k->dy + r * k->C;
        float *restrict dx = k->dx + r * k->C;
        if (k->fresh)
            for (size_t c = 0; c < k->C; c++)
                dx[c] = 0.0f + dy[c] * s[c];
        else
            for (size_t c = 0; c < k->C; c++)
                dx[c] += dy[c] * s[c];
    }
}

QAT_FOLD_CLONES static void cs_ds_channels(void *v, size_t c0, size_t c1)
{
    const cs_ctx *k = v;
    double *restrict ds = k->ds;
    for (size_t c = c0; c < c1; c++)
        ds[c] = 0.0;
    for (size_t r = 0; r < k->rows; r++) {
        const float *restrict dy = k->dy + r * k->C, *restrict x = k->x + r * k->C;
        for (size_t c = c0; c < c1; c++)
            ds[c] += (double)dy[c] * x[c];
    }
}

static void channel_scale_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *x = n->in[0], *s = n->in[1];
    cs_ctx k = {.x = x->data, .s = s->data, .dy = n->out->grad, .C = s->numel};
    k.rows = x->numel / k.C;
    qat_team *team = qat_tape_team(t);
    size_t grain = QAT_ELEMWISE_GRAIN / k.C + 1;
    if (qat_needs_grad(x)) {
        k.dx = qat_tape_grad_fresh(t, x, &k.fresh);
        qat_team_parallel_for(team, k.rows, grain, cs_dx_rows, &k);
    }
    if (qat_needs_grad(s)) {
        k.ds = qat_tape_alloc(t, k.C * sizeof(double));
        /* channels per thread: enough rows x channels to pay a wake-up */
        qat_team_parallel_for(team, k.C, QAT_ELEMWISE_GRAIN / (k.rows + 1) + 1, cs_ds_channels,
                              &k);
        float *g = qat_tape_grad(t, s);
        for (size_t c = 0; c < k.C; c++)
            g[c] += (float)k.ds[c];
    }
}

qat_tensor *qat_op_channel_scale(qat_tape *t, qat_tensor *x, qat_tensor *s)
{
    qat_tensor *y = qat_tape_tensor(t, x->ndim, x->shape);
    QAT_ASSERT((size_t)x->shape[x->ndim - 1] == s->numel);
    cs_ctx k = {.x = x->data, .s = s->data, .y = y->data, .C = s->numel};
    k.rows = x->numel / k.C;
    qat_team_parallel_for(qat_tape_team(t), k.rows, QAT_ELEMWISE_GRAIN / k.C + 1, cs_fwd_rows, &k);
    qat_tensor *in[2] = {x, s};
    qat_tape_record(t, channel_scale_backward, y, NULL, 2, in);
    return y;
}

/* dx (fresh: stored) and the bias's per-channel sums of dy, each channel
 * summed over the rows in order, all channels of a row at once (a row is
 * contiguous; a channel at a time strode over the whole tensor C times). */
QAT_FOLD_CLONES static void bias_bwd_rows(const float *restrict dy, float *restrict dx, int fresh,
                                          double *restrict sum, size_t rows, size_t C)
{
    if (dx && fresh)
        for (size_t i = 0; i < rows * C; i++)
            dx[i] = 0.0f + dy[i];
    else if (dx)
        for (size_t i = 0; i < rows * C; i++)
            dx[i] += dy[i];
    if (!sum)
        return;
    for (size_t c = 0; c < C; c++)
        sum[c] = 0;
    for (size_t r = 0; r < rows; r++) {
        const float *restrict d = dy + r * C;
        for (size_t c = 0; c < C; c++)
            sum[c] += d[c];
    }
}

static void add_bias_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *x = n->in[0], *b = n->in[1];
    size_t C = b->numel, rows = x->numel / C;
    int fresh = 0;
    float *dx = qat_needs_grad(x) ? qat_tape_grad_fresh(t, x, &fresh) : NULL;
    double *sum = qat_needs_grad(b) ? qat_tape_alloc(t, C * sizeof(double)) : NULL;
    bias_bwd_rows(n->out->grad, dx, fresh, sum, rows, C);
    if (sum) {
        float *db = qat_tape_grad(t, b);
        for (size_t c = 0; c < C; c++)
            db[c] += (float)sum[c];
    }
}

qat_tensor *qat_op_add_bias(qat_tape *t, qat_tensor *x, qat_tensor *b)
{
    qat_tensor *y = qat_tape_tensor(t, x->ndim, x->shape);
    size_t C = b->numel, rows = x->numel / C;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < C; c++)
            y->data[r * C + c] = x->data[r * C + c] + b->data[c];
    qat_tensor *in[2] = {x, b};
    qat_tape_record(t, add_bias_backward, y, NULL, 2, in);
    return y;
}

/* ---- writing effective weights back (post-training quantization) ---------------- */

int qat_layer_has_bias(const qat_layer *l) { return l->b.data || l->gamma.data; }

/* The layer's effective weights and bias as the forward computes them, into
 * l->w_eff / l->b_eff. */
static void store_effective(qat_model *m, qat_tape *t, qat_layer *l)
{
    qat_tape_reset(t);
    qat_tensor *w, *b;
    qat_layer_effective(m, t, l, &w, &b);
    memcpy(l->w_eff, w->data, w->numel * sizeof(float));
    for (int c = 0; c < l->out_c; c++)
        l->b_eff[c] = b ? b->data[c] : 0.0f;
}

qat_status qat_layer_set_effective(qat_model *m, qat_layer *l, const float *w_eff,
                                   const float *b_eff, qat_error *err)
{
    qat_tape *t;
    qat_status st = qat_tape_create(NULL, &t, err);
    if (st != QAT_OK)
        return st;
    qat_tape_set_grad_enabled(t, 0);
    qat_tape_set_training(t, 0);
    store_effective(m, t, l);
    int first = l == &m->layers[m->first_compute];
    float a = first ? m->norm_a : 1.0f;
    size_t k = l->fan_in;
    for (int c = 0; c < l->out_c; c++) {
        /* the per-channel factor the folds multiply the weights by */
        float f = a;
        if (l->gamma.data)
            f = f * l->gamma.data[c] / sqrtf(l->running_var[c] + l->cfg->bn_eps);
        if (f == 0.0f || !isfinite(f))
            continue; /* the folds zero this row whatever it holds */
        for (size_t i = (size_t)c * k; i < (size_t)(c + 1) * k; i++)
            if (w_eff[i] != l->w_eff[i])
                l->w.data[i] = w_eff[i] / f;
    }
    store_effective(m, t, l);
    if (b_eff) {
        float *p = l->gamma.data ? l->beta.data : l->b.data;
        for (int c = 0; p && c < l->out_c; c++)
            if (b_eff[c] != l->b_eff[c])
                p[c] += b_eff[c] - l->b_eff[c];
        store_effective(m, t, l);
    }
    qat_tape_destroy(t);
    return QAT_OK;
}
