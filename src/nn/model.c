/* Model construction: shape inference with config-located errors, flat
 * parameter/gradient/state buffers with per-layer views, initialisation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "qat/ops.h"
#include "qat/rng.h"

#define FAIL(st, ...) return qat_fail(err, st, __VA_ARGS__)

static int is_compute(int type) { return type == QAT_LAYER_CONV2D || type == QAT_LAYER_LINEAR; }

qat_status qat_layer_infer_shape(const qat_config *cfg, qat_layer *l, qat_error *err)
{
    const qat_layer_cfg *c = l->cfg;
    const char *file = cfg->path;
    switch (c->type) {
    case QAT_LAYER_CONV2D:
    case QAT_LAYER_MAXPOOL2D:
    case QAT_LAYER_AVGPOOL2D: {
        int pad = c->type == QAT_LAYER_CONV2D ? c->padding : 0;
        l->kernel = c->kernel;
        l->stride = c->stride;
        l->padding = pad;
        if (l->in_h + 2 * pad < c->kernel || l->in_w + 2 * pad < c->kernel)
            FAIL(QAT_EINVAL,
                 "%s:%d: [layer.%s] kernel %dx%d does not fit its input %dx%dx%d (padding %d)",
                 file, c->line, c->name, c->kernel, c->kernel, l->in_h, l->in_w, l->in_c, pad);
        l->out_h = qat_conv_out_size(l->in_h, c->kernel, c->stride, pad);
        l->out_w = qat_conv_out_size(l->in_w, c->kernel, c->stride, pad);
        l->out_c = c->type == QAT_LAYER_CONV2D ? c->out_channels : l->in_c;
        if (c->type == QAT_LAYER_CONV2D) {
            l->fan_in = (size_t)c->kernel * (size_t)c->kernel * (size_t)l->in_c;
            if (c->padding >= c->kernel)
                FAIL(QAT_EINVAL, "%s:%d: [layer.%s] padding %d must be smaller than kernel %d",
                     file, c->line, c->name, c->padding, c->kernel);
        }
        return QAT_OK;
    }
    case QAT_LAYER_LINEAR:
        if (l->in_h != 1 || l->in_w != 1)
            FAIL(QAT_EINVAL,
                 "%s:%d: [layer.%s] linear needs flat input but receives %dx%dx%d; add a "
                 "[layer.<name>] type = flatten before it",
                 file, c->line, c->name, l->in_h, l->in_w, l->in_c);
        if (c->in_features && c->in_features != l->in_c)
            FAIL(QAT_EINVAL,
                 "%s:%d: [layer.%s] in_features = %d but the previous layer produces %d "
                 "features",
                 file, c->line, c->name, c->in_features, l->in_c);
        l->out_h = l->out_w = 1;
        l->out_c = c->out_features;
        l->fan_in = (size_t)l->in_c;
        return QAT_OK;
    case QAT_LAYER_FLATTEN: {
        size_t f = (size_t)l->in_h * (size_t)l->in_w * (size_t)l->in_c;
        if (f > (size_t)1 << 30)
            FAIL(QAT_EINVAL, "%s:%d: [layer.%s] flattening gives %zu features (limit 2^30)", file,
                 c->line, c->name, f);
        l->out_h = l->out_w = 1;
        l->out_c = (int)f;
        return QAT_OK;
    }
    case QAT_LAYER_DROPOUT:
        l->out_h = l->in_h;
        l->out_w = l->in_w;
        l->out_c = l->in_c;
        return QAT_OK;
    }
    FAIL(QAT_EINVAL, "%s:%d: [layer.%s] unknown layer type", file, c->line, c->name);
}

static qat_status check_model(const qat_model *m, qat_error *err)
{
    const qat_config *cfg = &m->cfg;
    int last = -1;
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].type != QAT_LAYER_DROPOUT)
            last = i;
    const qat_layer *l = &m->layers[m->nlayers - 1];
    if (last < 0 || !is_compute(m->layers[last].type))
        FAIL(QAT_EINVAL,
             "%s:%d: [layer.%s] the model must end with a linear (or conv2d) layer producing "
             "the %d class scores",
             cfg->path, l->cfg->line, l->cfg->name, cfg->model.num_classes);
    if (l->out_h != 1 || l->out_w != 1 || l->out_c != cfg->model.num_classes)
        FAIL(QAT_EINVAL,
             "%s:%d: [layer.%s] the last layer outputs %dx%dx%d but the model needs %d class "
             "scores ([model] num_classes)",
             cfg->path, l->cfg->line, l->cfg->name, l->out_h, l->out_w, l->out_c,
             cfg->model.num_classes);
    return QAT_OK;
}

qat_status qat_model_create(const qat_config *cfg, qat_model **out, qat_error *err)
{
    *out = NULL;
    qat_model *m = calloc(1, sizeof *m);
    if (!m)
        FAIL(QAT_ENOMEM, "out of memory creating the model");
    m->cfg = *cfg;
    m->nlayers = cfg->nlayers;
    int h = cfg->model.input_height, w = cfg->model.input_width, c = cfg->model.input_channels;
    size_t np = 0, ns = 0, qn = 0, en = 0, maxw = 0, maxc = 0;
    qat_status st = QAT_OK;
    for (int i = 0; i < m->nlayers; i++) {
        qat_layer *l = &m->layers[i];
        l->cfg = &m->cfg.layers[i];
        l->type = l->cfg->type;
        l->in_h = h;
        l->in_w = w;
        l->in_c = c;
        if ((st = qat_layer_infer_shape(&m->cfg, l, err)) != QAT_OK)
            goto fail;
        h = l->out_h;
        w = l->out_w;
        c = l->out_c;
        if (is_compute(l->type)) {
            size_t wn = (size_t)l->out_c * l->fan_in;
            np += wn + (l->cfg->bias ? (size_t)l->out_c : 0);
            if (l->cfg->batchnorm) {
                np += 2 * (size_t)l->out_c;
                ns += 2 * (size_t)l->out_c;
            }
            ns += sizeof(qat_observer) / sizeof(float);
            qn += (size_t)l->out_c;
            en += (size_t)l->out_c * (l->fan_in + 1);
            const qat_quant_cfg *qc = &l->cfg->quant;
            l->wq_channels = qc->weight_granularity == QAT_GRAN_PER_CHANNEL ? l->out_c : 1;
            if (qc->learn_scale) {
                np += (size_t)l->wq_channels + 1;
                ns += 2 + (size_t)l->wq_channels;
            }
            if (qc->weight_observer == QAT_OBS_EMA)
                ns += 2 * (size_t)l->wq_channels + 1;
            maxw = wn > maxw ? wn : maxw;
            maxc = (size_t)l->out_c > maxc ? (size_t)l->out_c : maxc;
        }
        if (np > ((size_t)1 << 31))
            FAIL(QAT_EINVAL, "%s:%d: [layer.%s] the model would have more than 2^31 parameters",
                 cfg->path, l->cfg->line, l->cfg->name);
    }
    if ((st = check_model(m, err)) != QAT_OK)
        goto fail;
    m->nparams = np;
    m->nstate = ns;
    m->params = calloc(np + 1, sizeof(float));
    m->grads = calloc(np + 1, sizeof(float));
    m->state = calloc(ns + 1, sizeof(float));
    m->segs = calloc((size_t)m->nlayers * 5 + 1, sizeof *m->segs);
    /* per compute layer: w_scale, acc_scale (float) + multiplier, shift (int32) */
    m->qbuf = calloc(qn * 5 + 1, sizeof(float));
    m->effbuf = calloc(en + 1, sizeof(float));
    m->wscratch = calloc(maxw + 1, sizeof(float));
    m->wlo = calloc(2 * maxc + 2, sizeof(float));
    m->whi = m->wlo ? m->wlo + maxc + 1 : NULL;
    if (!m->params || !m->grads || !m->state || !m->segs || !m->qbuf || !m->effbuf ||
        !m->wscratch || !m->wlo) {
        st = qat_fail(err, QAT_ENOMEM, "out of memory allocating %zu parameters", np);
        goto fail;
    }
    size_t po = 0, so = 0, qo = 0, eo = 0;
    float *qf = m->qbuf;
    m->first_compute = -1;
    for (int i = 0; i < m->nlayers; i++) {
        qat_layer *l = &m->layers[i];
        if (!is_compute(l->type))
            continue;
        int C = l->out_c;
        if (m->first_compute < 0)
            m->first_compute = i;
        l->w_eff = m->effbuf + eo;
        l->b_eff = m->effbuf + eo + (size_t)C * l->fan_in;
        eo += (size_t)C * (l->fan_in + 1);
        int wshape4[4] = {C, l->kernel, l->kernel, l->in_c}, wshape2[2] = {C, l->in_c};
        int cs[1] = {C};
        size_t wn = (size_t)C * l->fan_in;
        m->segs[m->nsegs++] = (qat_param_seg){po, wn, 1};
        if (l->type == QAT_LAYER_CONV2D)
            l->w = qat_tensor_view(m->params + po, m->grads + po, 4, wshape4);
        else
            l->w = qat_tensor_view(m->params + po, m->grads + po, 2, wshape2);
        po += wn;
        if (l->cfg->bias) {
            m->segs[m->nsegs++] = (qat_param_seg){po, (size_t)C, 0};
            l->b = qat_tensor_view(m->params + po, m->grads + po, 1, cs);
            po += (size_t)C;
        }
        if (l->cfg->batchnorm) {
            m->segs[m->nsegs++] = (qat_param_seg){po, 2 * (size_t)C, 0};
            l->gamma = qat_tensor_view(m->params + po, m->grads + po, 1, cs);
            l->beta = qat_tensor_view(m->params + po + C, m->grads + po + C, 1, cs);
            po += 2 * (size_t)C;
            l->running_mean = m->state + so;
            l->running_var = m->state + so + C;
            so += 2 * (size_t)C;
        }
        l->obs = (qat_observer *)(m->state + so);
        so += sizeof(qat_observer) / sizeof(float);
        int Cw = l->wq_channels, one = 1;
        if (l->cfg->quant.learn_scale) {
            /* LSQ scales: trained, never weight-decayed */
            m->segs[m->nsegs++] = (qat_param_seg){po, (size_t)Cw + 1, 0};
            l->s_w = qat_tensor_view(m->params + po, m->grads + po, 1, &Cw);
            l->s_a = qat_tensor_view(m->params + po + Cw, m->grads + po + Cw, 1, &one);
            po += (size_t)Cw + 1;
            l->lsq = m->state + so;
            so += 2 + (size_t)Cw;
        }
        if (l->cfg->quant.weight_observer == QAT_OBS_EMA) {
            l->wobs = m->state + so;
            so += 2 * (size_t)Cw + 1;
        }
        l->q.w_scale = qf + qo;
        l->q.acc_scale = qf + qn + qo;
        l->q.multiplier = (int32_t *)(qf + 2 * qn + qo);
        l->q.shift = (int32_t *)(qf + 3 * qn + qo);
        l->q.w_zp = (int32_t *)(qf + 4 * qn + qo);
        qo += (size_t)C;
    }
    QAT_ASSERT(po == np && so == ns && eo == en);
    m->norm_a = 1.0f;
    m->norm_c = 0.0f;
    if (cfg->model.normalize_input) {
        m->norm_a = 1.0f / cfg->model.input_std;
        m->norm_c = -cfg->model.input_mean / cfg->model.input_std;
    }
    m->quant_active = cfg->quant.enabled;
    qat_model_init(m, (uint64_t)cfg->train.seed);
    *out = m;
    return QAT_OK;
fail:
    qat_model_destroy(m);
    return st;
}

void qat_model_destroy(qat_model *m)
{
    if (!m)
        return;
    free(m->params);
    free(m->grads);
    free(m->state);
    free(m->segs);
    free(m->qbuf);
    free(m->effbuf);
    free(m->wscratch);
    free(m->wlo);
    free(m);
}

void qat_model_init(qat_model *m, uint64_t seed)
{
    for (int i = 0; i < m->nlayers; i++) {
        qat_layer *l = &m->layers[i];
        if (!is_compute(l->type))
            continue;
        qat_rng r;
        qat_rng_seed(&r, seed, 1000 + (uint64_t)i);
        float bound = 1.0f / sqrtf((float)l->fan_in);
        for (size_t k = 0; k < l->w.numel; k++)
            l->w.data[k] = bound * (2.0f * qat_rng_uniform(&r) - 1.0f);
        if (l->b.data)
            for (size_t k = 0; k < l->b.numel; k++)
                l->b.data[k] = bound * (2.0f * qat_rng_uniform(&r) - 1.0f);
        if (l->gamma.data) {
            for (int c = 0; c < l->out_c; c++) {
                l->gamma.data[c] = 1.0f;
                l->beta.data[c] = 0.0f;
                l->running_mean[c] = 0.0f;
                l->running_var[c] = 1.0f;
            }
        }
        memset(l->obs, 0, sizeof *l->obs);
        if (l->s_w.data) { /* LSQ scales start from the observers on first use */
            for (size_t k = 0; k < l->s_w.numel; k++)
                l->s_w.data[k] = 1.0f;
            l->s_a.data[0] = 1.0f;
            memset(l->lsq, 0, (2 + (size_t)l->wq_channels) * sizeof(float));
        }
        if (l->wobs)
            memset(l->wobs, 0, (2 * (size_t)l->wq_channels + 1) * sizeof(float));
    }
}

const qat_config *qat_model_config(const qat_model *m) { return &m->cfg; }
int qat_model_num_layers(const qat_model *m) { return m->nlayers; }
qat_layer *qat_model_layer(qat_model *m, int i) { return &m->layers[i]; }

float *qat_model_params(qat_model *m, size_t *n)
{
    *n = m->nparams;
    return m->params;
}

float *qat_model_grads(qat_model *m, size_t *n)
{
    *n = m->nparams;
    return m->grads;
}

float *qat_model_state(qat_model *m, size_t *n)
{
    *n = m->nstate;
    return m->state;
}

const qat_param_seg *qat_model_segments(const qat_model *m, int *n)
{
    *n = m->nsegs;
    return m->segs;
}

void qat_model_set_quant_active(qat_model *m, int on) { m->quant_active = on; }
int qat_model_quant_active(const qat_model *m) { return m->quant_active; }
void qat_model_set_observers_frozen(qat_model *m, int frozen) { m->observers_frozen = frozen; }
void qat_model_set_bn_frozen(qat_model *m, int frozen) { m->bn_frozen = frozen; }

size_t qat_model_float_bytes(const qat_model *m)
{
    size_t n = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const qat_layer *l = &m->layers[i];
        n += l->w.numel + l->b.numel;
    }
    return n * sizeof(float);
}
