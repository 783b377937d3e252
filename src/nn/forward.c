/* The model's forward pass, float or quantization-aware, and the derivation
 * of each layer's quantization parameters (shared with export). Which
 * scales a layer uses, and when its observers and LSQ move, is decided by
 * the quantization policy (src/quant/policy.c); this file calls it.
 *
 * A quantized conv/linear takes one of two paths:
 *  - exact: integer codes in, the runtime's requantization out (eval, export,
 *    and training of layers without batchnorm or with frozen BN statistics);
 *  - BN training: the folded weights are fake-quantized and the accumulator
 *    is un-folded so batch statistics can normalise it, then the activation
 *    is fake-quantized (PyTorch's ConvBn QAT modules do the same). */
#include <string.h>

#include "model_internal.h"
#include "qat/ops.h"

static int is_compute(qat_layer_type type)
{
    return type == QAT_LAYER_CONV2D || type == QAT_LAYER_LINEAR;
}

int qat_layer_derive_qparams(qat_model *m, qat_layer *l, const float *w)
{
    qat_quant_weight_params(&l->q, w, 0, &m->scratch);
    qat_quant_act_params(&l->q);
    return qat_quant_finish(&l->q);
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
            if (!l->q.act_obs.initialized && !qat_quant_lsq_ready(&l->q)) {
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

/* *pool is the following max pool if the conv may take it in; it is set to
 * NULL unless the conv did (batchnorm sits between them). */
static qat_tensor *compute_float(qat_model *m, qat_tape *t, qat_layer *l, qat_tensor *x,
                                 const qat_pool2d_params **pool, qat_layer_tap *tap)
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
    if (tap)
        *tap = (qat_layer_tap){x, y};
    if (relu && !fused_relu)
        y = qat_op_relu(t, y);
    /* During the quantization delay observers still learn the range, so
     * fake-quant starts from warm statistics (as PyTorch does). */
    if (m->cfg.quant.enabled && qat_tape_training(t) && !m->observers_frozen)
        qat_quant_observe_outputs(&l->q, y->data, y->numel);
    return y;
}

static qat_tensor *compute_quant(qat_model *m, qat_tape *t, qat_layer *l, qat_tensor *x,
                                 qat_tensor **scale_io, qat_qparams in,
                                 const qat_pool2d_params **pool, qat_layer_tap *tap)
{
    const qat_quant_cfg *qc = &l->cfg->quant;
    qat_layer_quant *q = &l->q;
    int training = qat_tape_training(t);
    int update = (training || m->calibrating) && !m->observers_frozen;
    int bn_train = training && l->gamma.data && !m->bn_frozen;
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
    qat_quant_weight_params(q, w->data, update, &m->scratch);
    qat_tensor *s_w = qat_quant_weight_scale(t, q);
    qat_tensor *wk = qat_op_weight_codes(t, w, s_w, qat_quant_weight_zero_points(t, q), q->wqmin,
                                         q->wqmax, qc->weight_ste);
    if (bn_train)
        *pool = NULL;
    qat_tensor *acc = apply_layer(t, l, xk, wk, NULL, *pool, 0);
    if (tap)
        *tap = (qat_layer_tap){xk, acc};
    qat_tensor *acc_scale = qat_op_acc_scale(t, *scale_io, s_w, q->channels);

    if (bn_train) {
        /* real conv output, un-folded, then batch statistics */
        qat_tensor *y = qat_op_channel_scale(t, acc, acc_scale);
        y = qat_op_channel_scale(t, y, qat_op_bn_unfold_factor(t, &l->gamma, l->running_var,
                                                               l->cfg->bn_eps));
        if (b_pre)
            y = qat_op_add_bias(t, y, b_pre);
        y = qat_op_batchnorm(t, y, &l->gamma, &l->beta, l->running_mean, l->running_var,
                             l->cfg->bn_momentum, l->cfg->bn_eps);
        if (q->relu)
            y = qat_op_relu(t, y);
        if (update)
            qat_quant_observe_outputs(q, y->data, y->numel);
        if (training)
            qat_quant_lsq_init(q);
        qat_quant_act_params(q);
        qat_quant_finish(q);
        qat_tensor *s_a = qat_quant_act_scale(t, q);
        *scale_io = s_a;
        return qat_op_fake_quant(t, y, s_a, q->out.zero_point, q->act_min, q->act_max,
                                 qc->activation_ste);
    }

    if (update)
        qat_quant_observe_acc(q, t, acc, b, acc_scale->data);
    if (training)
        qat_quant_lsq_init(q);
    qat_quant_act_params(q);
    qat_quant_finish(q);
    qat_tensor *s_a = qat_quant_act_scale(t, q);
    const qat_requant_params *rp = qat_quant_requant_params(t, q);
    *scale_io = s_a;
    return qat_op_requantize(t, acc, b, acc_scale, s_a, rp);
}

/* The forward up to and including layer last; taps (or NULL) get every
 * conv/linear layer's input and pre-activation output, unfused. */
static qat_tensor *forward(qat_model *m, qat_tape *t, const uint8_t *images, int n, int last,
                           qat_layer_tap *taps)
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
    for (int i = 0; i <= last; i++) {
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
            if (l->type == QAT_LAYER_CONV2D && i + 1 <= last && !taps &&
                m->layers[i + 1].type == QAT_LAYER_MAXPOOL2D) {
                const qat_layer *pl = &m->layers[i + 1];
                pp = (qat_pool2d_params){pl->kernel, pl->kernel, pl->stride, pl->stride};
                pool = qat_conv2d_maxpool_fuses(&pp) ? &pp : NULL;
            }
            if (quant) {
                x = compute_quant(m, t, l, x, &scale, cur, &pool, taps ? &taps[i] : NULL);
                cur = l->q.out;
            } else {
                x = compute_float(m, t, l, x, &pool, taps ? &taps[i] : NULL);
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
    return last == m->nlayers - 1 ? as_flat(t, x) : x;
}

qat_tensor *qat_model_forward(qat_model *m, qat_tape *t, const uint8_t *images, int n)
{
    return forward(m, t, images, n, m->nlayers - 1, NULL);
}

qat_tensor *qat_model_forward_taps(qat_model *m, qat_tape *t, const uint8_t *images, int n,
                                   int last, qat_layer_tap *taps)
{
    QAT_ASSERT(last >= 0 && last < m->nlayers);
    return forward(m, t, images, n, last, taps);
}
