/* The model's forward pass, float or quantization-aware, and the derivation
 * of each layer's quantization parameters (shared with export). */
#include <math.h>
#include <string.h>

#include "model_internal.h"
#include "qat/fixedpoint.h"
#include "qat/ops.h"

int qat_layer_derive_qparams(qat_layer *l, const float *w)
{
    const qat_quant_cfg *qc = &l->cfg->quant;
    qat_layer_quant *q = &l->q;
    int C = l->out_c;
    qat_qrange(qc->weight_bits, 1, &q->wqmin, &q->wqmax);
    qat_weight_scales_symmetric(w, C, l->fan_in, qc->weight_bits, q->w_scale);
    q->out = qat_qparams_from_range(l->obs->lo, l->obs->hi, qc->activation_bits,
                                    QAT_SCHEME_ASYMMETRIC);
    q->act_min = l->cfg->activation == QAT_ACT_RELU ? q->out.zero_point : q->out.qmin;
    q->act_max = q->out.qmax;
    q->bias_limit = qat_bias_limit(l->fan_in, qc->weight_bits);
    int bad = 0;
    for (int c = 0; c < C; c++) {
        q->acc_scale[c] = q->in.scale * q->w_scale[c];
        double M = (double)q->acc_scale[c] / (double)q->out.scale;
        if (qat_fp_quantize_multiplier(M, &q->multiplier[c], &q->shift[c]) != 0) {
            q->multiplier[c] = INT32_MAX; /* saturate; export refuses such a model */
            q->shift[c] = QAT_SHIFT_MAX;
            bad = 1;
        }
    }
    return bad ? -1 : 0;
}

qat_status qat_model_refresh_qparams(qat_model *m, qat_error *err)
{
    qat_tape *t;
    qat_status st = qat_tape_create(NULL, &t, err);
    if (st != QAT_OK)
        return st;
    qat_tape_set_grad_enabled(t, 0);
    qat_tape_set_training(t, 0);
    qat_qparams cur = qat_input_qparams();
    for (int i = 0; i < m->nlayers && st == QAT_OK; i++) {
        qat_layer *l = &m->layers[i];
        l->q.in = cur;
        if (l->type == QAT_LAYER_CONV2D || l->type == QAT_LAYER_LINEAR) {
            if (!l->obs->initialized) {
                st = qat_fail(err, QAT_EINVAL,
                              "layer '%s': its activation observer has seen no data (train "
                              "with quantization before exporting)",
                              l->cfg->name);
                break;
            }
            qat_tape_reset(t);
            qat_tensor *w, *b;
            qat_layer_effective(m, t, l, &w, &b);
            memcpy(l->w_eff, w->data, w->numel * sizeof(float));
            for (int c = 0; c < l->out_c; c++)
                l->b_eff[c] = b ? b->data[c] : 0.0f;
            if (qat_layer_derive_qparams(l, l->w_eff) != 0) {
                st = qat_fail(err, QAT_EINVAL,
                              "layer '%s': a requantization multiplier is >= 2^30 (input "
                              "scale %g, output scale %g): the weights have diverged",
                              l->cfg->name, (double)l->q.in.scale, (double)l->q.out.scale);
                break;
            }
            cur = l->q.out;
        }
        l->q.out = cur;
    }
    qat_tape_destroy(t);
    return st;
}

/* Range of a float tensor after the layer's activation, for observers while
 * fake-quant is still off (quantization delay). */
static void float_range(const qat_tensor *y, float *lo, float *hi)
{
    float a = INFINITY, b = -INFINITY;
    for (size_t i = 0; i < y->numel; i++) {
        a = y->data[i] < a ? y->data[i] : a;
        b = y->data[i] > b ? y->data[i] : b;
    }
    *lo = a;
    *hi = b;
}

static qat_tensor *as_flat(qat_tape *t, qat_tensor *x)
{
    return x->ndim == 2 ? x : qat_op_flatten(t, x);
}

static qat_tensor *compute_float(qat_model *m, qat_tape *t, qat_layer *l, qat_tensor *x)
{
    qat_tensor *w, *b, *y;
    qat_layer_effective(m, t, l, &w, &b);
    if (l->type == QAT_LAYER_CONV2D) {
        qat_conv2d_params p = {l->stride, l->stride, l->padding, l->padding};
        y = qat_op_conv2d(t, x, w, b, &p);
    } else {
        y = qat_op_linear(t, as_flat(t, x), w, b);
    }
    if (l->gamma.data)
        y = qat_op_batchnorm(t, y, &l->gamma, &l->beta, l->running_mean, l->running_var,
                             l->cfg->bn_momentum, l->cfg->bn_eps);
    if (l->cfg->activation == QAT_ACT_RELU)
        y = qat_op_relu(t, y);
    /* During the quantization delay observers still learn the range, so
     * fake-quant starts from warm statistics (as PyTorch does). */
    if (m->cfg.quant.enabled && qat_tape_training(t) && !m->observers_frozen) {
        float lo, hi;
        float_range(y, &lo, &hi);
        qat_observer_update_ema(l->obs, lo, hi, l->cfg->quant.ema_decay);
    }
    return y;
}

static qat_tensor *compute_quant(qat_model *m, qat_tape *t, qat_layer *l, qat_tensor *x,
                                 qat_qparams in)
{
    qat_layer_quant *q = &l->q;
    const qat_quant_cfg *qc = &l->cfg->quant;
    q->in = in;
    qat_tensor *xk = qat_op_act_codes(t, x, in.scale);
    qat_tensor *w, *b;
    qat_layer_effective(m, t, l, &w, &b);
    /* Scales from the current weights. The weight-codes op reads w_scale in
     * backward: snapshot it into the step's arena. */
    int C = l->out_c;
    qat_qrange(qc->weight_bits, 1, &q->wqmin, &q->wqmax);
    qat_weight_scales_symmetric(w->data, C, l->fan_in, qc->weight_bits, q->w_scale);
    float *w_scale = qat_tape_alloc(t, (size_t)C * sizeof(float));
    memcpy(w_scale, q->w_scale, (size_t)C * sizeof(float));
    qat_tensor *wk = qat_op_weight_codes(t, w, w_scale, q->wqmin, q->wqmax, QAT_STE_CLIPPED);
    qat_tensor *acc;
    if (l->type == QAT_LAYER_CONV2D) {
        qat_conv2d_params p = {l->stride, l->stride, l->padding, l->padding};
        acc = qat_op_conv2d(t, xk, wk, NULL, &p);
    } else {
        acc = qat_op_linear(t, as_flat(t, xk), wk, NULL);
    }
    q->bias_limit = qat_bias_limit(l->fan_in, qc->weight_bits);
    for (int c = 0; c < C; c++)
        q->acc_scale[c] = in.scale * q->w_scale[c];
    if (qat_tape_training(t) && !m->observers_frozen) {
        float lo, hi;
        qat_acc_range(t, acc, b, q->acc_scale, q->bias_limit,
                      l->cfg->activation == QAT_ACT_RELU, &lo, &hi);
        qat_observer_update_ema(l->obs, lo, hi, qc->ema_decay);
    }
    qat_layer_derive_qparams(l, w->data);
    /* The requant op reads these arrays during backward: snapshot them into
     * the step's arena (the layer buffers change on the next forward). */
    qat_requant_params *rp = qat_tape_alloc(t, sizeof *rp);
    float *acc_scale = qat_tape_alloc(t, (size_t)C * sizeof(float));
    int32_t *mult = qat_tape_alloc(t, (size_t)C * sizeof(int32_t));
    int32_t *shift = qat_tape_alloc(t, (size_t)C * sizeof(int32_t));
    memcpy(acc_scale, q->acc_scale, (size_t)C * sizeof(float));
    memcpy(mult, q->multiplier, (size_t)C * sizeof(int32_t));
    memcpy(shift, q->shift, (size_t)C * sizeof(int32_t));
    *rp = (qat_requant_params){C, acc_scale, mult, shift, q->bias_limit, q->out,
                               q->act_min, q->act_max, QAT_STE_CLIPPED};
    return qat_op_requantize(t, acc, b, rp);
}

qat_tensor *qat_model_forward(qat_model *m, qat_tape *t, const uint8_t *images, int n)
{
    const qat_model_cfg *mc = &m->cfg.model;
    int shape[4] = {n, mc->input_height, mc->input_width, mc->input_channels};
    qat_tensor *x = qat_tape_tensor(t, 4, shape);
    /* Exactly the dequantized model input: (p - 128 - (-128)) * (1/255).
     * Standardisation, if on, is folded into the first conv/linear layer. */
    const float s_in = qat_input_qparams().scale;
    for (size_t i = 0; i < x->numel; i++)
        x->data[i] = (float)images[i] * s_in;
    int quant = m->cfg.quant.enabled && m->quant_active;
    qat_qparams cur = qat_input_qparams();
    for (int i = 0; i < m->nlayers; i++) {
        qat_layer *l = &m->layers[i];
        switch (l->type) {
        case QAT_LAYER_CONV2D:
        case QAT_LAYER_LINEAR:
            if (quant) {
                x = compute_quant(m, t, l, x, cur);
                cur = l->q.out;
            } else {
                x = compute_float(m, t, l, x);
            }
            break;
        case QAT_LAYER_MAXPOOL2D: {
            qat_pool2d_params p = {l->kernel, l->kernel, l->stride, l->stride};
            x = qat_op_maxpool2d(t, x, &p);
            break;
        }
        case QAT_LAYER_AVGPOOL2D: {
            qat_pool2d_params p = {l->kernel, l->kernel, l->stride, l->stride};
            x = qat_op_avgpool2d(t, x, &p);
            if (quant) /* the runtime averages integer codes with rounding */
                x = qat_op_avgpool_round(t, x, cur.scale, l->kernel * l->kernel);
            break;
        }
        case QAT_LAYER_FLATTEN:
            x = qat_op_flatten(t, x);
            break;
        case QAT_LAYER_DROPOUT:
            x = qat_op_dropout(t, x, l->cfg->p);
            break;
        }
        l->q.in = l->type == QAT_LAYER_CONV2D || l->type == QAT_LAYER_LINEAR ? l->q.in : cur;
        if (!(l->type == QAT_LAYER_CONV2D || l->type == QAT_LAYER_LINEAR))
            l->q.out = cur;
    }
    return as_flat(t, x);
}
