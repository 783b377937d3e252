/* The quantization policy of a conv/linear layer: which scales and zero
 * points it uses at each forward (observed or learned), when its observers
 * move, when LSQ takes over, and the state behind those decisions as the
 * checkpoint stores it. The arithmetic lives in qparams.c and fixedpoint.h,
 * the range measurements in observe.c. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "qat/fixedpoint.h"
#include "qat/quant.h"

/* Keeps learned scales usable: LSQ may push a step size to 0 or below. */
static float clamp_scale(float *s)
{
    if (!(*s > FLT_EPSILON))
        *s = FLT_EPSILON;
    return *s;
}

/* The scale entry (0 per tensor) that output channel c uses. */
static int scale_index(const qat_layer_quant *q, int c)
{
    return q->wq_channels == q->channels ? c : 0;
}

int qat_quant_lsq_ready(const qat_layer_quant *q) { return q->lsq.initialized; }

/* Weight scales and zero points from the weight observer. */
static void weight_observed(qat_layer_quant *q, const float *w, int update,
                            const qat_quant_scratch *s)
{
    const qat_quant_cfg *qc = q->cfg;
    int C = q->channels, Cw = q->wq_channels;
    float *lo = s->lo, *hi = s->hi;
    /* Pruned weights are exact zeros: a percentile must not count them. The
     * config decides, not a mask, so qat-export (no masks) derives the same
     * scales from the checkpoint as training did. */
    if (qc->weight_observer == QAT_OBS_MSE) /* zeros cost nothing: no pruned variant */
        qat_weight_ranges_mse(w, C, q->fan_in, Cw == C && C > 1, qc->weight_bits,
                              qc->weight_scheme, lo, hi);
    else if (q->skip_zero_weights)
        qat_weight_ranges_pruned(w, C, q->fan_in, Cw == C && C > 1, qc->weight_observer,
                                 qc->percentile, qc->weight_scheme, lo, hi, s->values);
    else
        qat_weight_ranges(w, C, q->fan_in, Cw == C && C > 1, qc->weight_observer,
                          qc->percentile, qc->weight_scheme, lo, hi, s->values);
    qat_weight_ema *e = &q->w_ema;
    if (e->lo) { /* EMA over steps */
        for (int k = 0; k < Cw && update; k++) {
            qat_observer o = {e->lo[k], e->hi[k], e->initialized};
            qat_observer_update(&o, QAT_OBS_EMA, lo[k], hi[k], qc->ema_decay);
            e->lo[k] = o.lo;
            e->hi[k] = o.hi;
        }
        if (update)
            e->initialized = 1;
        if (e->initialized)
            for (int k = 0; k < Cw; k++) {
                lo[k] = e->lo[k];
                hi[k] = e->hi[k];
            }
    }
    for (int c = 0; c < C; c++) {
        int k = scale_index(q, c);
        qat_qparams p = qat_weight_qparams_from_range(lo[k], hi[k], qc->weight_bits,
                                                      qc->weight_scheme);
        q->w_scale[c] = p.scale;
        q->w_zp[c] = p.zero_point;
    }
}

void qat_quant_weight_params(qat_layer_quant *q, const float *w, int update,
                             const qat_quant_scratch *scratch)
{
    const qat_quant_cfg *qc = q->cfg;
    qat_qrange(qc->weight_bits, qc->weight_scheme == QAT_SCHEME_SYMMETRIC, &q->wqmin, &q->wqmax);
    q->bias_limit = qat_bias_limit(q->fan_in, qc->weight_bits);
    if (!qat_quant_lsq_ready(q)) {
        weight_observed(q, w, update, scratch);
        return;
    }
    for (int c = 0; c < q->channels; c++) {
        int k = scale_index(q, c);
        q->w_scale[c] = clamp_scale(&q->lsq.s_w.data[k]);
        q->w_zp[c] = q->lsq.weight_zero_point[k];
    }
}

/* The global batch's range from each rank's (min and max commute, so the
 * result is what one process sees). */
static void ranks_range(qat_tape *t, float *lo, float *hi)
{
    if (!t)
        return;
    double v[2] = {-(double)*lo, (double)*hi};
    qat_tape_allreduce(t, v, 2, QAT_REDUCE_MAX);
    *lo = (float)-v[0];
    *hi = (float)v[1];
}

void qat_quant_observe_outputs(qat_layer_quant *q, qat_tape *t, const float *y, size_t n)
{
    if (qat_quant_lsq_ready(q))
        return;
    const qat_quant_cfg *qc = q->cfg;
    float lo, hi;
    if (qc->activation_observer == QAT_OBS_MSE)
        qat_values_range_mse(y, n, qc->activation_bits, qc->activation_scheme, &lo, &hi);
    else
        qat_values_range(y, n, qc->activation_observer, qc->percentile, &lo, &hi);
    ranks_range(t, &lo, &hi);
    qat_observer_update(&q->act_obs, qc->activation_observer, lo, hi, qc->ema_decay);
}

void qat_quant_observe_acc(qat_layer_quant *q, qat_tape *t, const qat_tensor *acc,
                           const qat_tensor *bias, const float *acc_scale)
{
    if (qat_quant_lsq_ready(q))
        return;
    const qat_quant_cfg *qc = q->cfg;
    float lo, hi;
    qat_acc_range(t, acc, bias, acc_scale, q->bias_limit, q->relu6 ? 2 : q->relu, qc, &lo,
                  &hi);
    ranks_range(t, &lo, &hi);
    qat_observer_update(&q->act_obs, qc->activation_observer, lo, hi, qc->ema_decay);
}

void qat_quant_lsq_init(qat_layer_quant *q)
{
    qat_lsq_state *s = &q->lsq;
    if (!q->cfg->learn_scale || s->initialized)
        return;
    for (int k = 0; k < q->wq_channels; k++) {
        int c = q->wq_channels == q->channels ? k : 0; /* a channel with scale k */
        s->s_w.data[k] = q->w_scale[c];
        s->weight_zero_point[k] = q->w_zp[c];
    }
    qat_qparams o = qat_qparams_from_range(q->act_obs.lo, q->act_obs.hi, q->cfg->activation_bits,
                                           q->cfg->activation_scheme);
    s->s_a.data[0] = o.scale;
    s->act_zero_point = o.zero_point;
    s->initialized = 1;
}

void qat_quant_act_params(qat_layer_quant *q)
{
    const qat_quant_cfg *qc = q->cfg;
    if (qat_quant_lsq_ready(q)) {
        qat_qrange(qc->activation_bits, 0, &q->out.qmin, &q->out.qmax);
        q->out.scale = clamp_scale(&q->lsq.s_a.data[0]);
        q->out.zero_point = q->lsq.act_zero_point;
    } else {
        q->out = qat_qparams_from_range(q->act_obs.lo, q->act_obs.hi, qc->activation_bits,
                                        qc->activation_scheme);
    }
    q->act_min = q->relu ? q->out.zero_point : q->out.qmin;
    if (q->act_min < q->out.qmin) /* relu with a symmetric zero point */
        q->act_min = q->out.qmin;
    q->act_max = q->out.qmax;
    if (q->relu6) {
        /* the code of real 6: quantizing is monotone, so clamping codes here
         * is exactly quantizing min(x, 6) (docs/ARITHMETIC.md §4.1, relu6) */
        double six = (double)q->out.zero_point + round(6.0 / (double)q->out.scale);
        if (six < (double)q->act_max)
            q->act_max = six < (double)q->act_min ? q->act_min : (int32_t)six;
    }
}

int qat_quant_finish(qat_layer_quant *q)
{
    int bad = 0;
    for (int c = 0; c < q->channels; c++) {
        q->acc_scale[c] = q->in.scale * q->w_scale[c];
        double M = (double)q->acc_scale[c] / (double)q->out.scale;
        if (qat_fp_quantize_multiplier(M, &q->multiplier[c], &q->shift[c]) != 0) {
            q->multiplier[c] = INT32_MAX;
            q->shift[c] = QAT_SHIFT_MAX;
            bad = 1;
        }
    }
    return bad ? -1 : 0;
}

qat_tensor *qat_quant_weight_scale(qat_tape *t, qat_layer_quant *q)
{
    int C = q->channels, Cw = q->wq_channels;
    if (qat_quant_lsq_ready(q)) {
        float n = (float)(Cw == C ? q->fan_in : q->fan_in * (size_t)C);
        return qat_op_grad_scale(t, &q->lsq.s_w, 1.0f / sqrtf(n * (float)q->wqmax));
    }
    float *v = qat_tape_alloc(t, (size_t)Cw * sizeof(float));
    for (int k = 0; k < Cw; k++)
        v[k] = q->w_scale[Cw == C ? k : 0];
    return qat_tape_const(t, v, Cw);
}

qat_tensor *qat_quant_act_scale(qat_tape *t, qat_layer_quant *q)
{
    if (qat_quant_lsq_ready(q))
        return qat_op_grad_scale(t, &q->lsq.s_a,
                                 1.0f / sqrtf(q->act_count * (float)q->out.qmax));
    return qat_tape_const(t, &q->out.scale, 1);
}

const int32_t *qat_quant_weight_zero_points(qat_tape *t, const qat_layer_quant *q)
{
    if (q->cfg->weight_scheme == QAT_SCHEME_SYMMETRIC)
        return NULL;
    int Cw = q->wq_channels;
    int32_t *z = qat_tape_alloc(t, (size_t)Cw * sizeof *z);
    for (int k = 0; k < Cw; k++)
        z[k] = q->w_zp[Cw == q->channels ? k : 0];
    return z;
}

const qat_requant_params *qat_quant_requant_params(qat_tape *t, const qat_layer_quant *q)
{
    int C = q->channels;
    qat_requant_params *rp = qat_tape_alloc(t, sizeof *rp);
    int32_t *mult = qat_tape_alloc(t, (size_t)C * sizeof(int32_t));
    int32_t *shift = qat_tape_alloc(t, (size_t)C * sizeof(int32_t));
    memcpy(mult, q->multiplier, (size_t)C * sizeof(int32_t));
    memcpy(shift, q->shift, (size_t)C * sizeof(int32_t));
    *rp = (qat_requant_params){.channels = C,
                               .multiplier = mult,
                               .shift = shift,
                               .bias_limit = q->bias_limit,
                               .zero_point = q->out.zero_point,
                               .act_min = q->act_min,
                               .act_max = q->act_max,
                               .ste = q->cfg->activation_ste};
    return rp;
}

/* ---- checkpointed state ------------------------------------------------------- */

size_t qat_quant_state_size(const qat_quant_cfg *cfg, int wq_channels)
{
    size_t Cw = (size_t)wq_channels, n = 3;
    if (cfg->learn_scale)
        n += 2 + Cw;
    if (cfg->weight_observer == QAT_OBS_EMA)
        n += 2 * Cw + 1;
    return n;
}

void qat_quant_state_reset(qat_layer_quant *q)
{
    size_t Cw = (size_t)q->wq_channels;
    memset(&q->act_obs, 0, sizeof q->act_obs);
    qat_lsq_state *s = &q->lsq;
    if (q->cfg->learn_scale) { /* LSQ scales start from the observers on first use */
        for (size_t k = 0; k < Cw; k++)
            s->s_w.data[k] = 1.0f;
        s->s_a.data[0] = 1.0f;
        s->initialized = 0;
        s->act_zero_point = 0;
        memset(s->weight_zero_point, 0, Cw * sizeof *s->weight_zero_point);
    }
    if (q->cfg->weight_observer == QAT_OBS_EMA) {
        memset(q->w_ema.lo, 0, Cw * sizeof(float));
        memset(q->w_ema.hi, 0, Cw * sizeof(float));
        q->w_ema.initialized = 0;
    }
}

void qat_quant_state_save(const qat_layer_quant *q, float *out)
{
    int Cw = q->wq_channels;
    *out++ = q->act_obs.lo;
    *out++ = q->act_obs.hi;
    *out++ = (float)q->act_obs.initialized;
    if (q->cfg->learn_scale) {
        *out++ = (float)q->lsq.initialized;
        *out++ = (float)q->lsq.act_zero_point;
        for (int k = 0; k < Cw; k++)
            *out++ = (float)q->lsq.weight_zero_point[k];
    }
    if (q->cfg->weight_observer == QAT_OBS_EMA) {
        for (int k = 0; k < Cw; k++)
            *out++ = q->w_ema.lo[k];
        for (int k = 0; k < Cw; k++)
            *out++ = q->w_ema.hi[k];
        *out++ = (float)q->w_ema.initialized;
    }
}

static qat_status load_flag(float v, const char *what, int *out, qat_error *err)
{
    if (v != 0.0f && v != 1.0f)
        return qat_fail(err, QAT_EINVAL, "%s is %g, expected 0 or 1", what, (double)v);
    *out = v == 1.0f;
    return QAT_OK;
}

/* A zero point stored as a float: an integer in the code range of bits. */
static qat_status load_zero_point(float v, int bits, int restricted, const char *what,
                                  int32_t *out, qat_error *err)
{
    int32_t qmin, qmax;
    qat_qrange(bits, restricted, &qmin, &qmax);
    if (!(v >= (float)qmin && v <= (float)qmax) || v != floorf(v))
        return qat_fail(err, QAT_EINVAL, "%s is %g, expected an integer in [%d, %d]", what,
                        (double)v, (int)qmin, (int)qmax);
    *out = (int32_t)v;
    return QAT_OK;
}

qat_status qat_quant_state_load(qat_layer_quant *q, const float *in, qat_error *err)
{
    const qat_quant_cfg *qc = q->cfg;
    int Cw = q->wq_channels;
    qat_status st;
    q->act_obs.lo = *in++;
    q->act_obs.hi = *in++;
    if ((st = load_flag(*in++, "the activation observer's 'initialised' flag",
                        &q->act_obs.initialized, err)) != QAT_OK)
        return st;
    if (qc->learn_scale) {
        if ((st = load_flag(*in++, "LSQ's 'initialised' flag", &q->lsq.initialized, err)) ||
            (st = load_zero_point(*in++, qc->activation_bits, 0, "LSQ's activation zero point",
                                  &q->lsq.act_zero_point, err)))
            return st;
        for (int k = 0; k < Cw; k++) {
            char what[64];
            snprintf(what, sizeof what, "LSQ's weight zero point %d", k);
            if ((st = load_zero_point(*in++, qc->weight_bits,
                                      qc->weight_scheme == QAT_SCHEME_SYMMETRIC, what,
                                      &q->lsq.weight_zero_point[k], err)))
                return st;
        }
    }
    if (qc->weight_observer == QAT_OBS_EMA) {
        for (int k = 0; k < Cw; k++)
            q->w_ema.lo[k] = *in++;
        for (int k = 0; k < Cw; k++)
            q->w_ema.hi[k] = *in++;
        if ((st = load_flag(*in++, "the EMA weight observer's 'initialised' flag",
                            &q->w_ema.initialized, err)))
            return st;
    }
    return QAT_OK;
}
