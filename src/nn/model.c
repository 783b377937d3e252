/* Model construction, in three passes over the layers: shapes (each
 * layer's output feeding the next, errors located in the config), sizes
 * (what every buffer must hold) and binding (the layers' views into the
 * buffers); then initialisation, and the checkpointed state. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "qat/ops.h"
#include "qat/rng.h"

#define FAIL(st, ...) return qat_fail(err, st, __VA_ARGS__)

static int is_compute(qat_layer_type type)
{
    return type == QAT_LAYER_CONV2D || type == QAT_LAYER_LINEAR;
}

/* ---- shapes --------------------------------------------------------------------- */

static qat_status infer_shape(const qat_config *cfg, qat_layer *l, qat_error *err)
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

qat_status qat_layers_infer_shapes(const qat_config *cfg, qat_layer *layers, qat_error *err)
{
    int h = cfg->model.input_height, w = cfg->model.input_width, c = cfg->model.input_channels;
    for (int i = 0; i < cfg->nlayers; i++) {
        qat_layer *l = &layers[i];
        l->cfg = &cfg->layers[i];
        l->type = l->cfg->type;
        l->in_h = h;
        l->in_w = w;
        l->in_c = c;
        qat_status st = infer_shape(cfg, l, err);
        if (st != QAT_OK)
            return st;
        h = l->out_h;
        w = l->out_w;
        c = l->out_c;
    }
    return QAT_OK;
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

/* ---- sizes ---------------------------------------------------------------------- */

static int weight_scales(const qat_layer *l)
{
    return l->cfg->quant.weight_granularity == QAT_GRAN_PER_CHANNEL ? l->out_c : 1;
}

/* What one conv/linear layer takes from each buffer. The size pass adds
 * these up and the binding pass hands them out, so the two agree. */
typedef struct layer_size {
    size_t params; /* weights, bias, BN gamma and beta, LSQ scales */
    int segs;      /* optimizer segments, one per kind of parameter */
    size_t bnstats, qfloat, qint, eff;
    size_t state; /* floats of the checkpointed state */
} layer_size;

static layer_size size_of(const qat_layer *l)
{
    const qat_quant_cfg *qc = &l->cfg->quant;
    size_t C = (size_t)l->out_c, Cw = (size_t)weight_scales(l);
    int bias = l->cfg->bias, bn = l->cfg->batchnorm, lsq = qc->learn_scale;
    int ema = qc->weight_observer == QAT_OBS_EMA;
    layer_size s;
    s.params = C * l->fan_in + (bias ? C : 0) + (bn ? 2 * C : 0) + (lsq ? Cw + 1 : 0);
    s.segs = 1 + bias + bn + lsq;
    s.bnstats = bn ? 2 * C : 0;
    s.qfloat = 2 * C + (ema ? 2 * Cw : 0);  /* w_scale, acc_scale; EMA lo, hi */
    s.qint = 3 * C + (lsq ? Cw : 0);        /* w_zp, multiplier, shift; LSQ zero points */
    s.eff = C * (l->fan_in + 1);            /* w_eff, b_eff */
    s.state = s.bnstats + qat_quant_state_size(qc, (int)Cw);
    return s;
}

static void add_size(layer_size *total, const layer_size *s)
{
    total->params += s->params;
    total->segs += s->segs;
    total->bnstats += s->bnstats;
    total->qfloat += s->qfloat;
    total->qint += s->qint;
    total->eff += s->eff;
    total->state += s->state;
}

/* Totals over the model, and the scratch the weight observer needs: the
 * largest weight tensor and the most output channels of a layer. */
static qat_status count_sizes(const qat_model *m, layer_size *total, size_t *max_weights,
                              size_t *max_channels, qat_error *err)
{
    memset(total, 0, sizeof *total);
    *max_weights = *max_channels = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const qat_layer *l = &m->layers[i];
        if (!is_compute(l->type))
            continue;
        layer_size s = size_of(l);
        add_size(total, &s);
        size_t wn = (size_t)l->out_c * l->fan_in;
        *max_weights = wn > *max_weights ? wn : *max_weights;
        *max_channels = (size_t)l->out_c > *max_channels ? (size_t)l->out_c : *max_channels;
        if (total->params > ((size_t)1 << 31))
            FAIL(QAT_EINVAL, "%s:%d: [layer.%s] the model would have more than 2^31 parameters",
                 m->cfg.path, l->cfg->line, l->cfg->name);
    }
    return QAT_OK;
}

/* calloc for n elements; an empty array is NULL, which is no failure (every
 * model has a conv/linear layer, but not necessarily batchnorm). */
static void *zalloc(size_t n, size_t size, int *failed)
{
    if (n == 0)
        return NULL;
    void *p = calloc(n, size);
    *failed |= p == NULL;
    return p;
}

static qat_status allocate(qat_model *m, const layer_size *total, size_t max_weights,
                           size_t max_channels, qat_error *err)
{
    int failed = 0;
    m->params = zalloc(total->params, sizeof(float), &failed);
    m->grads = zalloc(total->params, sizeof(float), &failed);
    m->segs = zalloc((size_t)total->segs, sizeof *m->segs, &failed);
    m->bnstats = zalloc(total->bnstats, sizeof(float), &failed);
    m->qfloat = zalloc(total->qfloat, sizeof(float), &failed);
    m->qint = zalloc(total->qint, sizeof(int32_t), &failed);
    m->effbuf = zalloc(total->eff, sizeof(float), &failed);
    m->scratch.values = zalloc(max_weights, sizeof(float), &failed);
    m->scratch.lo = zalloc(2 * max_channels, sizeof(float), &failed);
    m->scratch.hi = m->scratch.lo ? m->scratch.lo + max_channels : NULL;
    if (failed)
        FAIL(QAT_ENOMEM, "out of memory allocating %zu parameters", total->params);
    m->nparams = total->params;
    m->nstate = total->state;
    return QAT_OK;
}

/* ---- binding -------------------------------------------------------------------- */

/* Points layer l's views at the buffers from the offsets in at, and moves
 * at past what it took. The parameter order (weights, bias, gamma, beta,
 * LSQ scales) is the checkpoint's. */
static void bind_layer(qat_model *m, qat_layer *l, layer_size *at)
{
    int C = l->out_c, Cw = weight_scales(l), one = 1;
    int wshape4[4] = {C, l->kernel, l->kernel, l->in_c}, wshape2[2] = {C, l->in_c};
    size_t po = at->params, wn = (size_t)C * l->fan_in;
    m->segs[m->nsegs++] = (qat_param_seg){po, wn, 1};
    if (l->type == QAT_LAYER_CONV2D)
        l->w = qat_tensor_view(m->params + po, m->grads + po, 4, wshape4);
    else
        l->w = qat_tensor_view(m->params + po, m->grads + po, 2, wshape2);
    po += wn;
    if (l->cfg->bias) {
        m->segs[m->nsegs++] = (qat_param_seg){po, (size_t)C, 0};
        l->b = qat_tensor_view(m->params + po, m->grads + po, 1, &C);
        po += (size_t)C;
    }
    if (l->cfg->batchnorm) {
        m->segs[m->nsegs++] = (qat_param_seg){po, 2 * (size_t)C, 0};
        l->gamma = qat_tensor_view(m->params + po, m->grads + po, 1, &C);
        l->beta = qat_tensor_view(m->params + po + C, m->grads + po + C, 1, &C);
        po += 2 * (size_t)C;
        l->running_mean = m->bnstats + at->bnstats;
        l->running_var = l->running_mean + C;
    }
    qat_layer_quant *q = &l->q;
    const qat_quant_cfg *qc = &l->cfg->quant;
    if (qc->learn_scale) { /* LSQ scales: trained, never weight-decayed */
        m->segs[m->nsegs++] = (qat_param_seg){po, (size_t)Cw + 1, 0};
        q->lsq.s_w = qat_tensor_view(m->params + po, m->grads + po, 1, &Cw);
        q->lsq.s_a = qat_tensor_view(m->params + po + Cw, m->grads + po + Cw, 1, &one);
        po += (size_t)Cw + 1;
        q->lsq.weight_zero_point = m->qint + at->qint + 3 * (size_t)C;
    }
    q->w_scale = m->qfloat + at->qfloat;
    q->acc_scale = q->w_scale + C;
    if (qc->weight_observer == QAT_OBS_EMA) {
        q->w_ema.lo = q->acc_scale + C;
        q->w_ema.hi = q->w_ema.lo + Cw;
    }
    q->w_zp = m->qint + at->qint;
    q->multiplier = q->w_zp + C;
    q->shift = q->multiplier + C;
    l->w_eff = m->effbuf + at->eff;
    l->b_eff = l->w_eff + wn;
    q->cfg = qc;
    q->channels = C;
    q->wq_channels = Cw;
    q->fan_in = l->fan_in;
    q->act_count = (float)l->out_h * (float)l->out_w * (float)l->out_c;
    q->relu = l->cfg->activation == QAT_ACT_RELU;
    /* the config decides, not a mask, so export derives the same scales */
    q->skip_zero_weights = m->cfg.prune.method != QAT_PRUNE_NONE;
    layer_size s = size_of(l);
    add_size(at, &s);
    QAT_ASSERT(po == at->params);
}

qat_status qat_model_create(const qat_config *cfg, qat_model **out, qat_error *err)
{
    *out = NULL;
    qat_model *m = calloc(1, sizeof *m);
    if (!m)
        FAIL(QAT_ENOMEM, "out of memory creating the model");
    m->cfg = *cfg;
    m->nlayers = cfg->nlayers;
    layer_size total, at = {0};
    size_t max_weights, max_channels;
    qat_status st;
    if ((st = qat_layers_infer_shapes(&m->cfg, m->layers, err)) != QAT_OK ||
        (st = check_model(m, err)) != QAT_OK ||
        (st = count_sizes(m, &total, &max_weights, &max_channels, err)) != QAT_OK ||
        (st = allocate(m, &total, max_weights, max_channels, err)) != QAT_OK) {
        qat_model_destroy(m);
        return st;
    }
    m->first_compute = -1;
    for (int i = 0; i < m->nlayers; i++) {
        if (!is_compute(m->layers[i].type))
            continue;
        if (m->first_compute < 0)
            m->first_compute = i;
        bind_layer(m, &m->layers[i], &at);
    }
    QAT_ASSERT(at.params == total.params && at.bnstats == total.bnstats &&
               at.qfloat == total.qfloat && at.qint == total.qint && at.eff == total.eff &&
               at.state == total.state && m->nsegs == total.segs);
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
}

void qat_model_destroy(qat_model *m)
{
    if (!m)
        return;
    free(m->params);
    free(m->grads);
    free(m->segs);
    free(m->bnstats);
    free(m->qfloat);
    free(m->qint);
    free(m->effbuf);
    free(m->scratch.values);
    free(m->scratch.lo); /* hi shares it */
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
        qat_quant_state_reset(&l->q);
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

size_t qat_model_state_size(const qat_model *m) { return m->nstate; }

void qat_model_state_save(const qat_model *m, float *out)
{
    for (int i = 0; i < m->nlayers; i++) {
        const qat_layer *l = &m->layers[i];
        if (!is_compute(l->type))
            continue;
        size_t C = (size_t)l->out_c;
        if (l->running_mean) {
            memcpy(out, l->running_mean, C * sizeof(float));
            memcpy(out + C, l->running_var, C * sizeof(float));
            out += 2 * C;
        }
        qat_quant_state_save(&l->q, out);
        out += qat_quant_state_size(l->q.cfg, l->q.wq_channels);
    }
}

qat_status qat_model_state_load(qat_model *m, const float *in, qat_error *err)
{
    for (int i = 0; i < m->nlayers; i++) {
        qat_layer *l = &m->layers[i];
        if (!is_compute(l->type))
            continue;
        size_t C = (size_t)l->out_c;
        if (l->running_mean) {
            memcpy(l->running_mean, in, C * sizeof(float));
            memcpy(l->running_var, in + C, C * sizeof(float));
            in += 2 * C;
        }
        qat_status st = qat_quant_state_load(&l->q, in, err);
        if (st != QAT_OK) {
            qat_error_prefix(err, "layer '%s'", l->cfg->name);
            return st;
        }
        in += qat_quant_state_size(l->q.cfg, l->q.wq_channels);
    }
    return QAT_OK;
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
void qat_model_set_calibrating(qat_model *m, int on) { m->calibrating = on; }

size_t qat_model_float_bytes(const qat_model *m)
{
    size_t n = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const qat_layer *l = &m->layers[i];
        n += l->w.numel + l->b.numel;
    }
    return n * sizeof(float);
}
