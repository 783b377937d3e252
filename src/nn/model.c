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

static int is_compute(qat_layer_type type) { return qat_layer_type_has_weights(type); }

static qat_status check_model(const qat_model *m, qat_error *err)
{
    const qat_config *cfg = &m->cfg;
    int last = -1;
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].type != QAT_LAYER_DROPOUT)
            last = i;
    const qat_layer *l = &m->layers[m->nlayers - 1];
    int regression = cfg->model.task == QAT_TASK_REGRESSION;
    if (last < 0 || !is_compute(m->layers[last].type)) {
        if (regression)
            FAIL(QAT_EINVAL,
                 "%s:%d: [layer.%s] the model must end with a linear (or conv2d) layer "
                 "producing the regression outputs",
                 cfg->path, l->cfg->line, l->cfg->name);
        FAIL(QAT_EINVAL,
             "%s:%d: [layer.%s] the model must end with a linear (or conv2d) layer producing "
             "the %d class scores",
             cfg->path, l->cfg->line, l->cfg->name, cfg->model.num_classes);
    }
    if (regression && (l->out_h != 1 || l->out_w != 1))
        FAIL(QAT_EINVAL,
             "%s:%d: [layer.%s] the last layer outputs %dx%dx%d but a regression model needs "
             "flat outputs (one per target)",
             cfg->path, l->cfg->line, l->cfg->name, l->out_h, l->out_w, l->out_c);
    if (!regression && (l->out_h != 1 || l->out_w != 1 || l->out_c != cfg->model.num_classes))
        FAIL(QAT_EINVAL,
             "%s:%d: [layer.%s] the last layer outputs %dx%dx%d but the model needs %d class "
             "scores ([model] num_classes)",
             cfg->path, l->cfg->line, l->cfg->name, l->out_h, l->out_w, l->out_c,
             cfg->model.num_classes);
    /* Standardisation is folded into the first conv/linear layer, exact only
     * if every path from the model input runs through it: the layers up to
     * it must be a chain, and none after it may read around it. */
    int first = -1;
    for (int i = 0; i < m->nlayers && first < 0; i++)
        if (is_compute(m->layers[i].type))
            first = i;
    for (int i = 0; cfg->model.normalize_input && i < m->nlayers; i++) {
        const qat_layer *x = &m->layers[i];
        for (int k = 0; k < x->ninputs; k++) {
            int ok = i <= first ? x->ninputs == 1 && x->inputs[0] == i - 1 : x->inputs[k] >= first;
            if (!ok)
                FAIL(QAT_EINVAL,
                     "%s:%d: [layer.%s] reads %s%s%s, around the first conv/linear layer "
                     "'%s' that [model] normalize_input is folded into; set normalize_input = "
                     "false or route the model input through '%s' only",
                     cfg->path, x->cfg->line, x->cfg->name, x->inputs[k] < 0 ? "" : "'",
                     x->inputs[k] < 0 ? "the model input" : m->layers[x->inputs[k]].cfg->name,
                     x->inputs[k] < 0 ? "" : "'",
                     m->layers[first].cfg->name, m->layers[first].cfg->name);
        }
    }
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
        if (qat_layer_type_quantizes(l->type) && !is_compute(l->type))
            total->state += qat_quant_output_state_size();
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
    int wshape4[4] = {C, l->kernel, l->kernel, l->in_c / l->groups}, wshape2[2] = {C, l->in_c};
    size_t po = at->params, wn = (size_t)C * l->fan_in;
    m->segs[m->nsegs++] = (qat_param_seg){po, wn, 1};
    if (l->type != QAT_LAYER_LINEAR)
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
    q->relu = l->cfg->activation != QAT_ACT_NONE;
    q->relu6 = l->cfg->activation == QAT_ACT_RELU6;
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
    for (int i = 0; i < m->nlayers; i++)
        for (int k = 0; k < m->layers[i].ninputs; k++)
            if (m->layers[i].inputs[k] >= 0)
                m->readers[m->layers[i].inputs[k]]++;
    for (int i = 0; i < m->nlayers; i++) {
        qat_layer *l = &m->layers[i];
        if (qat_layer_type_quantizes(l->type) && !is_compute(l->type)) {
            /* add, concat, global_avgpool: an observer, no weights */
            l->q.cfg = &l->cfg->quant;
            l->q.relu = l->cfg->activation != QAT_ACT_NONE;
            l->q.relu6 = l->cfg->activation == QAT_ACT_RELU6;
            at.state += qat_quant_output_state_size();
        }
        if (!is_compute(l->type))
            continue;
        if (m->first_compute < 0)
            m->first_compute = i;
        bind_layer(m, &m->layers[i], &at);
    }
    QAT_ASSERT(at.params == total.params && at.bnstats == total.bnstats &&
               at.qfloat == total.qfloat && at.qint == total.qint && at.eff == total.eff &&
               at.state == total.state && m->nsegs == total.segs);
    if ((st = qat_model_input_init(m, err)) != QAT_OK) {
        qat_model_destroy(m);
        return st;
    }
    m->nstate += qat_model_input_state_size(m);
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
    free(m->inbuf);
    free(m);
}

void qat_model_init(qat_model *m, uint64_t seed)
{
    for (int i = 0; i < m->nlayers; i++) {
        qat_layer *l = &m->layers[i];
        memset(&l->q.act_obs, 0, sizeof l->q.act_obs);
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

int qat_model_num_outputs(const qat_model *m) { return m->layers[m->nlayers - 1].out_c; }
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
        if (qat_layer_type_quantizes(l->type) && !is_compute(l->type)) {
            qat_quant_output_state_save(&l->q, out);
            out += qat_quant_output_state_size();
        }
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
    qat_model_input_state_save(m, out);
}

qat_status qat_model_state_load(qat_model *m, const float *in, qat_error *err)
{
    for (int i = 0; i < m->nlayers; i++) {
        qat_layer *l = &m->layers[i];
        if (qat_layer_type_quantizes(l->type) && !is_compute(l->type)) {
            qat_status st = qat_quant_output_state_load(&l->q, in, err);
            if (st != QAT_OK)
                return qat_error_prefix(err, "layer '%s'", l->cfg->name);
            in += qat_quant_output_state_size();
        }
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
    return qat_model_input_state_load(m, in, err);
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
