/* The model's forward pass, float or quantization-aware, and the derivation
 * of each layer's quantization parameters (shared with export).
 *
 * A quantized conv/linear takes one of two paths:
 *  - exact: integer codes in, the runtime's requantization out (eval, export,
 *    and training of layers without batchnorm or with frozen BN statistics);
 *  - BN training: the folded weights are fake-quantized and the accumulator
 *    is un-folded so batch statistics can normalise it, then the activation
 *    is fake-quantized (PyTorch's ConvBn QAT modules do the same). */
#include <float.h>
#include <math.h>
#include <string.h>

#include "model_internal.h"
#include "qat/fixedpoint.h"
#include "qat/ops.h"

static int is_compute(int type) { return type == QAT_LAYER_CONV2D || type == QAT_LAYER_LINEAR; }
static int lsq_ready(const qat_layer *l) { return l->lsq && l->lsq[0] != 0.0f; }

/* Keeps learned scales usable: LSQ may push a step size to 0 or below. */
static float clamp_scale(float *s)
{
    if (!(*s > FLT_EPSILON))
        *s = FLT_EPSILON;
    return *s;
}

/* Weight scales and zero points from the weight observer (update: fold this
 * step's range into an EMA observer). */
static void weight_q_observed(qat_model *m, qat_layer *l, const float *w, int update)
{
    const qat_quant_cfg *qc = &l->cfg->quant;
    int C = l->out_c, Cw = l->wq_channels;
    float *lo = m->wlo, *hi = m->whi;
    /* Pruned weights are exact zeros: a percentile must not count them. The
     * config decides, not a mask, so qat-export (no masks) derives the same
     * scales from the checkpoint as training did. */
    if (m->cfg.prune.method != QAT_PRUNE_NONE)
        qat_weight_ranges_pruned(w, C, l->fan_in, Cw == C && C > 1, qc->weight_observer,
                                 qc->percentile, qc->weight_scheme, lo, hi, m->wscratch);
    else
        qat_weight_ranges(w, C, l->fan_in, Cw == C && C > 1, qc->weight_observer,
                          qc->percentile, qc->weight_scheme, lo, hi, m->wscratch);
    if (l->wobs) { /* EMA over steps */
        float *olo = l->wobs, *ohi = l->wobs + Cw, *init = l->wobs + 2 * Cw;
        for (int c = 0; c < Cw && update; c++) {
            qat_observer o = {olo[c], ohi[c], *init};
            qat_observer_update(&o, QAT_OBS_EMA, lo[c], hi[c], qc->ema_decay);
            olo[c] = o.lo;
            ohi[c] = o.hi;
        }
        if (update)
            *init = 1.0f;
        if (*init)
            for (int c = 0; c < Cw; c++) {
                lo[c] = olo[c];
                hi[c] = ohi[c];
            }
    }
    for (int c = 0; c < C; c++) {
        int k = Cw == C ? c : 0;
        qat_qparams p = qat_weight_qparams_from_range(lo[k], hi[k], qc->weight_bits,
                                                      qc->weight_scheme);
        l->q.w_scale[c] = p.scale;
        l->q.w_zp[c] = p.zero_point;
    }
}

/* Weight quantization for this forward: learned (LSQ) or observed. */
static void weight_q(qat_model *m, qat_layer *l, const float *w, int update)
{
    const qat_quant_cfg *qc = &l->cfg->quant;
    qat_qrange(qc->weight_bits, qc->weight_scheme == QAT_SCHEME_SYMMETRIC, &l->q.wqmin,
               &l->q.wqmax);
    if (!lsq_ready(l)) {
        weight_q_observed(m, l, w, update);
        return;
    }
    int C = l->out_c, Cw = l->wq_channels;
    for (int c = 0; c < C; c++) {
        int k = Cw == C ? c : 0;
        l->q.w_scale[c] = clamp_scale(&l->s_w.data[k]);
        l->q.w_zp[c] = (int32_t)l->lsq[2 + k];
    }
}

/* Output activation parameters: learned (LSQ) or from the observer. */
static void act_q(qat_layer *l)
{
    const qat_quant_cfg *qc = &l->cfg->quant;
    if (lsq_ready(l)) {
        qat_qrange(qc->activation_bits, 0, &l->q.out.qmin, &l->q.out.qmax);
        l->q.out.scale = clamp_scale(&l->s_a.data[0]);
        l->q.out.zero_point = (int32_t)l->lsq[1];
    } else {
        l->q.out = qat_qparams_from_range(l->obs->lo, l->obs->hi, qc->activation_bits,
                                          qc->activation_scheme);
    }
    l->q.act_min = l->cfg->activation == QAT_ACT_RELU ? l->q.out.zero_point : l->q.out.qmin;
    if (l->q.act_min < l->q.out.qmin) /* relu with a symmetric zero point */
        l->q.act_min = l->q.out.qmin;
    l->q.act_max = l->q.out.qmax;
}

/* LSQ starts from the observers: the first quantized training step copies
 * their scales (and zero points, which then stay fixed) into the learned
 * parameters. */
static void lsq_init(qat_layer *l)
{
    int Cw = l->wq_channels;
    for (int k = 0; k < Cw; k++) {
        int c = Cw == l->out_c ? k : 0;
        l->s_w.data[k] = l->q.w_scale[c];
        l->lsq[2 + k] = (float)l->q.w_zp[c];
    }
    qat_qparams o = qat_qparams_from_range(l->obs->lo, l->obs->hi, l->cfg->quant.activation_bits,
                                           l->cfg->quant.activation_scheme);
    l->s_a.data[0] = o.scale;
    l->lsq[1] = (float)o.zero_point;
    l->lsq[0] = 1.0f;
}

/* acc_scale (in.scale * w_scale, the same float product the acc_scale op
 * forms), multipliers and shifts. Returns -1 if a multiplier cannot be
 * represented (it then saturates; export refuses such a model). */
static int finish_q(qat_layer *l)
{
    qat_layer_quant *q = &l->q;
    q->bias_limit = qat_bias_limit(l->fan_in, l->cfg->quant.weight_bits);
    int bad = 0;
    for (int c = 0; c < l->out_c; c++) {
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

int qat_layer_derive_qparams(qat_model *m, qat_layer *l, const float *w)
{
    weight_q(m, l, w, 0);
    act_q(l);
    return finish_q(l);
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
        if (is_compute(l->type)) {
            if (!l->obs->initialized && !lsq_ready(l)) {
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
            if (qat_layer_derive_qparams(m, l, l->w_eff) != 0) {
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

static qat_tensor *as_flat(qat_tape *t, qat_tensor *x)
{
    return x->ndim == 2 ? x : qat_op_flatten(t, x);
}

/* pool: the max pool that follows a conv, fused into it (or NULL); relu:
 * the fused op applies the relu too. */
static qat_tensor *apply_layer(qat_tape *t, qat_layer *l, qat_tensor *x, qat_tensor *w,
                               qat_tensor *b, const qat_pool2d_params *pool, int relu)
{
    if (l->type == QAT_LAYER_CONV2D) {
        qat_conv2d_params p = {l->stride, l->stride, l->padding, l->padding};
        return pool ? qat_op_conv2d_maxpool(t, x, w, b, &p, pool, relu)
                    : qat_op_conv2d(t, x, w, b, &p);
    }
    return qat_op_linear(t, as_flat(t, x), w, b);
}

static void observe_values(qat_layer *l, const qat_tensor *y)
{
    const qat_quant_cfg *qc = &l->cfg->quant;
    float lo, hi;
    qat_values_range(y->data, y->numel, qc->activation_observer, qc->percentile, &lo, &hi);
    qat_observer_update(l->obs, qc->activation_observer, lo, hi, qc->ema_decay);
}

/* *pool is the following max pool if the conv may take it in; it is set to
 * NULL unless the conv did (batchnorm sits between them). */
static qat_tensor *compute_float(qat_model *m, qat_tape *t, qat_layer *l, qat_tensor *x,
                                 const qat_pool2d_params **pool)
{
    qat_tensor *w, *b;
    qat_layer_pre_bn(m, t, l, &w, &b);
    if (l->gamma.data)
        *pool = NULL;
    int relu = l->cfg->activation == QAT_ACT_RELU, fused_relu = relu && *pool;
    qat_tensor *y = apply_layer(t, l, x, w, b, *pool, fused_relu);
    if (l->gamma.data) {
        /* frozen BN normalises with (and keeps) its running statistics */
        int training = qat_tape_training(t);
        if (m->bn_frozen)
            qat_tape_set_training(t, 0);
        y = qat_op_batchnorm(t, y, &l->gamma, &l->beta, l->running_mean, l->running_var,
                             l->cfg->bn_momentum, l->cfg->bn_eps);
        qat_tape_set_training(t, training);
    }
    if (relu && !fused_relu)
        y = qat_op_relu(t, y);
    /* During the quantization delay observers still learn the range, so
     * fake-quant starts from warm statistics (as PyTorch does). */
    if (m->cfg.quant.enabled && qat_tape_training(t) && !m->observers_frozen)
        observe_values(l, y);
    return y;
}

/* The scales this forward multiplies by, as tensors: learned ones carry
 * LSQ's gradient scale 1 / sqrt(N * Qp). */
static qat_tensor *weight_scale_tensor(qat_tape *t, qat_layer *l)
{
    if (lsq_ready(l)) {
        float n = (float)(l->wq_channels == l->out_c ? l->fan_in : l->fan_in * (size_t)l->out_c);
        return qat_op_grad_scale(t, &l->s_w, 1.0f / sqrtf(n * (float)l->q.wqmax));
    }
    int Cw = l->wq_channels;
    float *v = qat_tape_alloc(t, (size_t)Cw * sizeof(float));
    for (int k = 0; k < Cw; k++)
        v[k] = l->q.w_scale[Cw == l->out_c ? k : 0];
    return qat_tape_const(t, v, Cw);
}

static qat_tensor *act_scale_tensor(qat_tape *t, qat_layer *l)
{
    if (lsq_ready(l)) {
        float n = (float)l->out_h * (float)l->out_w * (float)l->out_c;
        return qat_op_grad_scale(t, &l->s_a, 1.0f / sqrtf(n * (float)l->q.out.qmax));
    }
    return qat_tape_const(t, &l->q.out.scale, 1);
}

/* Weight zero points as the op wants them: per scale entry, or NULL. */
static const int32_t *weight_zps(qat_tape *t, qat_layer *l)
{
    if (l->cfg->quant.weight_scheme == QAT_SCHEME_SYMMETRIC)
        return NULL;
    int Cw = l->wq_channels;
    int32_t *z = qat_tape_alloc(t, (size_t)Cw * sizeof *z);
    for (int k = 0; k < Cw; k++)
        z[k] = l->q.w_zp[Cw == l->out_c ? k : 0];
    return z;
}

static qat_tensor *compute_quant(qat_model *m, qat_tape *t, qat_layer *l, qat_tensor *x,
                                 qat_tensor **scale_io, qat_qparams in,
                                 const qat_pool2d_params **pool)
{
    const qat_quant_cfg *qc = &l->cfg->quant;
    qat_layer_quant *q = &l->q;
    int training = qat_tape_training(t), update = training && !m->observers_frozen;
    int bn_train = training && l->gamma.data && !m->bn_frozen;
    int C = l->out_c, relu = l->cfg->activation == QAT_ACT_RELU;
    q->in = in;
    qat_tensor *xk = qat_op_act_codes(t, x, *scale_io);
    qat_tensor *w, *b, *b_pre = NULL;
    if (bn_train) {
        qat_tensor *w1;
        qat_layer_pre_bn(m, t, l, &w1, &b_pre);
        w = qat_op_bn_fold_weights(t, w1, &l->gamma, l->running_var, l->cfg->bn_eps);
        b = NULL;
    } else {
        qat_layer_effective(m, t, l, &w, &b);
    }
    weight_q(m, l, w->data, update && !lsq_ready(l));
    qat_tensor *s_w = weight_scale_tensor(t, l);
    qat_tensor *wk = qat_op_weight_codes(t, w, s_w, weight_zps(t, l), q->wqmin, q->wqmax,
                                         qc->weight_ste);
    if (bn_train)
        *pool = NULL;
    qat_tensor *acc = apply_layer(t, l, xk, wk, NULL, *pool, 0);
    qat_tensor *acc_scale = qat_op_acc_scale(t, *scale_io, s_w, C);
    q->bias_limit = qat_bias_limit(l->fan_in, qc->weight_bits);

    if (bn_train) {
        /* real conv output, un-folded, then batch statistics */
        qat_tensor *y = qat_op_channel_scale(t, acc, acc_scale);
        y = qat_op_channel_scale(t, y, qat_op_bn_unfold_factor(t, &l->gamma, l->running_var,
                                                               l->cfg->bn_eps));
        if (b_pre)
            y = qat_op_add_bias(t, y, b_pre);
        y = qat_op_batchnorm(t, y, &l->gamma, &l->beta, l->running_mean, l->running_var,
                             l->cfg->bn_momentum, l->cfg->bn_eps);
        if (relu)
            y = qat_op_relu(t, y);
        if (update && !lsq_ready(l))
            observe_values(l, y);
        if (training && l->lsq && !lsq_ready(l))
            lsq_init(l);
        act_q(l);
        finish_q(l);
        qat_tensor *s_a = act_scale_tensor(t, l);
        *scale_io = s_a;
        return qat_op_fake_quant(t, y, s_a, q->out.zero_point, q->act_min, q->act_max,
                                 qc->activation_ste);
    }

    if (update && !lsq_ready(l)) {
        float lo, hi;
        qat_acc_range(t, acc, b, acc_scale->data, q->bias_limit, relu, qc->activation_observer,
                      qc->percentile, &lo, &hi);
        qat_observer_update(l->obs, qc->activation_observer, lo, hi, qc->ema_decay);
    }
    if (training && l->lsq && !lsq_ready(l))
        lsq_init(l);
    act_q(l);
    finish_q(l);
    qat_tensor *s_a = act_scale_tensor(t, l);
    /* The requant op reads these in backward: snapshot them into the arena
     * (the layer's buffers change at the next forward). */
    qat_requant_params *rp = qat_tape_alloc(t, sizeof *rp);
    int32_t *mult = qat_tape_alloc(t, (size_t)C * sizeof(int32_t));
    int32_t *shift = qat_tape_alloc(t, (size_t)C * sizeof(int32_t));
    memcpy(mult, q->multiplier, (size_t)C * sizeof(int32_t));
    memcpy(shift, q->shift, (size_t)C * sizeof(int32_t));
    *rp = (qat_requant_params){C, mult, shift, q->bias_limit, q->out.zero_point, q->act_min,
                               q->act_max, qc->activation_ste};
    *scale_io = s_a;
    return qat_op_requantize(t, acc, b, acc_scale, s_a, rp);
}

qat_tensor *qat_model_forward(qat_model *m, qat_tape *t, const uint8_t *images, int n)
{
    const qat_model_cfg *mc = &m->cfg.model;
    int shape[4] = {n, mc->input_height, mc->input_width, mc->input_channels};
    qat_tensor *x = qat_tape_tensor(t, 4, shape);
    /* Exactly the dequantized model input: (p - 128 - (-128)) * (1/255).
     * Standardisation, if on, is folded into the first conv/linear layer. */
    qat_qparams cur = qat_input_qparams();
    for (size_t i = 0; i < x->numel; i++)
        x->data[i] = (float)images[i] * cur.scale;
    int quant = m->cfg.quant.enabled && m->quant_active;
    qat_tensor *scale = quant ? qat_tape_const(t, &cur.scale, 1) : NULL;
    for (int i = 0; i < m->nlayers; i++) {
        qat_layer *l = &m->layers[i];
        qat_tape_set_tag(t, i + 1); /* tag 0: input and loss */
        if (!is_compute(l->type))
            l->q.in = cur;
        switch (l->type) {
        case QAT_LAYER_CONV2D:
        case QAT_LAYER_LINEAR: {
            /* A conv followed by a tiling max pool runs as one op (see
             * conv2d.c). Max pooling commutes exactly with everything
             * between them -- bias, relu, and the requantization, which is
             * monotone in the accumulator -- so values and winners are the
             * same as layer by layer, and the runtime fuses the same way. */
            const qat_pool2d_params *pool = NULL;
            qat_pool2d_params pp;
            if (l->type == QAT_LAYER_CONV2D && i + 1 < m->nlayers &&
                m->layers[i + 1].type == QAT_LAYER_MAXPOOL2D) {
                const qat_layer *pl = &m->layers[i + 1];
                pp = (qat_pool2d_params){pl->kernel, pl->kernel, pl->stride, pl->stride};
                pool = qat_conv2d_maxpool_fuses(&pp) ? &pp : NULL;
            }
            if (quant) {
                x = compute_quant(m, t, l, x, &scale, cur, &pool);
                cur = l->q.out;
            } else {
                x = compute_float(m, t, l, x, &pool);
            }
            if (pool) { /* the pool layer is done */
                i++;
                m->layers[i].q.in = cur;
                m->layers[i].q.out = cur;
            }
            break;
        }
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
        if (!is_compute(l->type))
            l->q.out = cur;
    }
    qat_tape_set_tag(t, 0); /* whatever follows (the loss) counts as tag 0 */
    return as_flat(t, x);
}
