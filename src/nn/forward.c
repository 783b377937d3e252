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

static int is_compute(qat_layer_type type) { return qat_layer_type_has_weights(type); }

int qat_layer_derive_qparams(qat_model *m, qat_layer *l, const float *w)
{
    qat_quant_weight_params(&l->q, w, 0, &m->scratch);
    qat_quant_act_params(&l->q);
    return qat_quant_finish(&l->q);
}

/* The quantization of what input k of layer l reads. */
static qat_qparams input_qparams(const qat_model *m, const qat_layer *l, int k)
{
    int idx = l->inputs[k];
    if (idx >= 0)
        return m->layers[idx].q.out;
    return m->in.is_float ? m->in.q : qat_input_qparams();
}

static int is_merge(qat_layer_type type)
{
    return qat_layer_type_quantizes(type) && !qat_layer_type_has_weights(type);
}

/* A merge layer's output parameters and integers from its observer and
 * its inputs' quantization; -1 if a multiplier cannot be represented. */
static int merge_qparams(qat_model *m, qat_layer *l)
{
    qat_layer_quant *q = &l->q;
    qat_quant_act_params(q);
    q->merge.n = l->ninputs;
    for (int k = 0; k < l->ninputs; k++)
        q->merge.in[k] = input_qparams(m, l, k);
    return qat_quant_merge_finish(q, l->type, l->in_h * l->in_w);
}

qat_status qat_model_refresh_qparams(qat_model *m, qat_error *err)
{
    qat_tape *t;
    qat_status st = qat_tape_create(NULL, &t, err);
    if (st != QAT_OK)
        return st;
    qat_tape_set_grad_enabled(t, 0);
    qat_tape_set_training(t, 0);
    for (int i = 0; i < m->nlayers && st == QAT_OK; i++) {
        qat_layer *l = &m->layers[i];
        l->q.in = input_qparams(m, l, 0);
        if (qat_layer_type_quantizes(l->type) && !l->q.act_obs.initialized &&
            !qat_quant_lsq_ready(&l->q)) {
            st = qat_fail(err, QAT_EINVAL,
                          "layer '%s': its activation observer has seen no data (train "
                          "with quantization before exporting)",
                          l->cfg->name);
            break;
        }
        if (is_compute(l->type)) {
            qat_tape_reset(t);
            qat_tensor *w, *b;
            qat_layer_effective(m, t, l, &w, &b);
            memcpy(l->w_eff, w->data, w->numel * sizeof(float));
            for (int c = 0; c < l->out_c; c++)
                l->b_eff[c] = b ? b->data[c] : 0.0f;
            if (qat_layer_cfg_is_float(l->cfg)) { /* no weight scales, no multipliers */
                qat_quant_act_params(&l->q);
                continue;
            }
            if (qat_layer_derive_qparams(m, l, l->w_eff) != 0) {
                st = qat_fail(err, QAT_EINVAL,
                              "layer '%s': a requantization multiplier is >= 2^30 (input "
                              "scale %g, output scale %g): the weights have diverged",
                              l->cfg->name, (double)l->q.in.scale, (double)l->q.out.scale);
                break;
            }
        } else if (is_merge(l->type)) {
            if (merge_qparams(m, l) != 0) {
                st = qat_fail(err, QAT_EINVAL,
                              "layer '%s': a rescaling multiplier is >= 2^30 (output scale "
                              "%g): the activations have diverged",
                              l->cfg->name, (double)l->q.out.scale);
                break;
            }
        } else {
            l->q.out = l->q.in;
        }
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
    if (l->type != QAT_LAYER_LINEAR) {
        qat_conv2d_params p = {l->stride, l->stride, l->padding, l->padding};
        return pool ? qat_op_conv2d_maxpool(t, x, w, b, &p, pool, relu)
                    : qat_op_conv2d_grouped(t, x, w, b, &p, l->groups);
    }
    return qat_op_linear(t, as_flat(t, x), w, b);
}

static qat_tensor *activation(qat_tape *t, const qat_layer *l, qat_tensor *y)
{
    switch (l->cfg->activation) {
    case QAT_ACT_RELU: return qat_op_relu(t, y);
    case QAT_ACT_RELU6: return qat_op_relu6(t, y);
    case QAT_ACT_NONE: break;
    }
    return y;
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
    int fused_relu = l->cfg->activation == QAT_ACT_RELU && *pool;
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
    if (!fused_relu)
        y = activation(t, l, y);
    /* During the quantization delay observers still learn the range, so
     * fake-quant starts from warm statistics (as PyTorch does). */
    if (m->cfg.quant.enabled && qat_tape_training(t) && !m->observers_frozen)
        qat_quant_observe_outputs(&l->q, t, y->data, y->numel);
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
        y = activation(t, l, y);
        if (update)
            qat_quant_observe_outputs(q, t, y->data, y->numel);
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

/* Whether layer i's output is the model's (only flattens and dropouts,
 * which pass it on unchanged, follow it). */
static int is_output_layer(const qat_model *m, int i)
{
    for (int j = i + 1; j < m->nlayers; j++) {
        const qat_layer *l = &m->layers[j];
        if ((l->type != QAT_LAYER_FLATTEN && l->type != QAT_LAYER_DROPOUT) || l->inputs[0] != j - 1)
            return 0;
    }
    return 1;
}

/* A float layer (quantize = false) in the quantized forward, computed as
 * the runtime computes it (docs/ARITHMETIC.md §7): the input's codes
 * dequantized, the effective (BN-folded) float weights summed in the
 * runtime's order, the activation, then the output fake-quantized with its
 * own observed parameters -- what the next layer reads -- or, as the
 * model's output, returned as float logits. Training with live batchnorm
 * statistics takes the float path on the dequantized input instead (the
 * fold needs running statistics), as the integer layers' BN path does. */
static qat_tensor *compute_float_layer(qat_model *m, qat_tape *t, qat_layer *l, int i,
                                       qat_tensor *x, qat_tensor **scale_io, qat_qparams in,
                                       qat_layer_tap *tap)
{
    qat_layer_quant *q = &l->q;
    int training = qat_tape_training(t);
    int bn_train = training && l->gamma.data && !m->bn_frozen;
    q->in = in;
    qat_tensor *xr = qat_op_dequantize(t, qat_op_act_codes(t, x, *scale_io), *scale_io);
    qat_tensor *y;
    if (bn_train) {
        const qat_pool2d_params *nopool = NULL;
        y = compute_float(m, t, l, xr, &nopool, tap); /* observes the outputs */
    } else {
        qat_tensor *w, *b;
        qat_layer_effective(m, t, l, &w, &b);
        y = apply_layer(t, l, xr, w, b, NULL, 0);
        qat_float_layer_exact(t, xr, w, b, y, l->kernel, l->stride, l->padding);
        if (tap)
            *tap = (qat_layer_tap){xr, y};
        y = activation(t, l, y);
        if ((training || m->calibrating) && !m->observers_frozen)
            qat_quant_observe_outputs(q, t, y->data, y->numel);
    }
    qat_quant_act_params(q);
    if (is_output_layer(m, i))
        return y;
    qat_tensor *s_a = qat_quant_act_scale(t, q);
    *scale_io = s_a;
    return qat_op_fake_quant(t, y, s_a, q->out.zero_point, q->act_min, q->act_max,
                             l->cfg->quant.activation_ste);
}

/* The float output of a merge layer (add with its activation, concat, the
 * channel means). */
static qat_tensor *merge_float(qat_tape *t, qat_layer *l, qat_tensor *const *x)
{
    switch (l->type) {
    case QAT_LAYER_ADD: return activation(t, l, qat_op_add(t, x[0], x[1]));
    case QAT_LAYER_CONCAT: return qat_op_concat(t, x, l->ninputs);
    default: {
        qat_pool2d_params p = {l->in_h, l->in_w, l->in_h, l->in_w};
        return qat_op_avgpool2d(t, x[0], &p);
    }
    }
}

/* add, concat, global_avgpool. Observers see the float output while
 * training (also in the quantization delay); quantized, the output is the
 * runtime's integer op on the inputs' codes. */
static qat_tensor *compute_merge(qat_model *m, qat_tape *t, qat_layer *l, qat_tensor *const *x,
                                 int quant, qat_tensor **scale_out)
{
    qat_layer_quant *q = &l->q;
    int observe = m->cfg.quant.enabled && qat_tape_training(t) && !m->observers_frozen;
    if (!quant) {
        qat_tensor *y = merge_float(t, l, x);
        if (observe)
            qat_quant_observe_outputs(q, t, y->data, y->numel);
        return y;
    }
    if (observe) { /* off the tape: only its range is needed */
        int grad = qat_tape_grad_enabled(t);
        qat_tape_set_grad_enabled(t, 0);
        qat_tensor *y = merge_float(t, l, x);
        qat_tape_set_grad_enabled(t, grad);
        qat_quant_observe_outputs(q, t, y->data, y->numel);
    }
    merge_qparams(m, l);
    qat_merge_params *p = qat_tape_alloc(t, sizeof *p); /* backward outlives this forward */
    *p = q->merge;
    *scale_out = qat_tape_const(t, &q->out.scale, 1);
    switch (l->type) {
    case QAT_LAYER_ADD: return qat_op_add_exact(t, x[0], x[1], p);
    case QAT_LAYER_CONCAT: return qat_op_concat_exact(t, x, l->ninputs, p);
    default: return qat_op_global_avgpool_exact(t, x[0], p);
    }
}

/* The max pool that may run inside conv layer i (or NULL): the next layer,
 * a tiling max pool, the only reader of the conv's output. */
static const qat_pool2d_params *fused_pool(const qat_model *m, int i, qat_pool2d_params *pp)
{
    const qat_layer *l = &m->layers[i];
    if (l->type != QAT_LAYER_CONV2D || l->groups != 1 || i + 1 >= m->nlayers ||
        m->readers[i] != 1)
        return NULL;
    const qat_layer *pl = &m->layers[i + 1];
    if (pl->type != QAT_LAYER_MAXPOOL2D || pl->inputs[0] != i)
        return NULL;
    *pp = (qat_pool2d_params){pl->kernel, pl->kernel, pl->stride, pl->stride};
    return qat_conv2d_maxpool_fuses(pp) ? pp : NULL;
}

/* The forward from the model input x0 (quantized as in0 when quant) up to
 * and including layer last; taps (or NULL) get every conv/linear layer's
 * input and pre-activation output, unfused. */
static qat_tensor *forward(qat_model *m, qat_tape *t, qat_tensor *x0, qat_qparams in0, int quant,
                           int last, qat_layer_tap *taps)
{
    qat_tensor *s0 = quant ? qat_tape_const(t, &in0.scale, 1) : NULL;
    /* each layer's output and, quantized, the tensor of its scale (LSQ's
     * gradients reach a learned scale through it) */
    qat_tensor *outs[QAT_MAX_LAYERS] = {0}, *scales[QAT_MAX_LAYERS] = {0};
    for (int i = 0; i <= last; i++) {
        qat_layer *l = &m->layers[i];
        qat_tape_set_tag(t, i + 1); /* tag 0: input and loss */
        qat_tensor *xs[QAT_MAX_INPUTS];
        for (int k = 0; k < l->ninputs; k++)
            xs[k] = l->inputs[k] < 0 ? x0 : outs[l->inputs[k]];
        qat_tensor *x = xs[0], *scale = l->inputs[0] < 0 ? s0 : scales[l->inputs[0]];
        qat_qparams cur = input_qparams(m, l, 0);
        l->q.in = cur;
        switch (l->type) {
        case QAT_LAYER_CONV2D:
        case QAT_LAYER_DEPTHWISE_CONV2D:
        case QAT_LAYER_LINEAR: {
            /* A conv followed by a tiling max pool runs as one op (see
             * conv2d.c). Max pooling commutes exactly with everything
             * between them -- bias, relu, and the requantization, which is
             * monotone in the accumulator -- so values and winners are the
             * same as layer by layer, and the runtime fuses the same way. */
            qat_pool2d_params pp;
            const qat_pool2d_params *pool = i + 1 <= last && !taps ? fused_pool(m, i, &pp) : NULL;
            if (quant && qat_layer_cfg_is_float(l->cfg)) {
                pool = NULL;
                x = compute_float_layer(m, t, l, i, x, &scale, cur, taps ? &taps[i] : NULL);
            } else if (quant)
                x = compute_quant(m, t, l, x, &scale, cur, &pool, taps ? &taps[i] : NULL);
            else
                x = compute_float(m, t, l, x, &pool, taps ? &taps[i] : NULL);
            if (pool) { /* the pool layer is done */
                outs[i] = x;
                scales[i] = scale;
                i++;
                m->layers[i].q.in = l->q.out;
                m->layers[i].q.out = l->q.out;
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
        case QAT_LAYER_ADD:
        case QAT_LAYER_CONCAT:
        case QAT_LAYER_GLOBAL_AVGPOOL:
            x = compute_merge(m, t, l, xs, quant, &scale);
            break;
        }
        if (!qat_layer_type_quantizes(l->type))
            l->q.out = cur;
        outs[i] = x;
        scales[i] = scale;
    }
    qat_tape_set_tag(t, 0); /* whatever follows (the loss) counts as tag 0 */
    return last == m->nlayers - 1 ? as_flat(t, outs[last]) : outs[last];
}

qat_tensor *qat_model_forward(qat_model *m, qat_tape *t, const uint8_t *images, int n)
{
    int quant = m->cfg.quant.enabled && m->quant_active;
    qat_qparams in0;
    qat_tensor *x0 = qat_model_input_tensor(m, t, images, 0, n, quant, &in0);
    return forward(m, t, x0, in0, quant, m->nlayers - 1, NULL);
}

qat_tensor *qat_model_forward_f32(qat_model *m, qat_tape *t, const float *x, int n)
{
    int quant = m->cfg.quant.enabled && m->quant_active;
    qat_qparams in0;
    qat_tensor *x0 = qat_model_input_tensor(m, t, x, 1, n, quant, &in0);
    return forward(m, t, x0, in0, quant, m->nlayers - 1, NULL);
}

qat_tensor *qat_model_forward_taps(qat_model *m, qat_tape *t, const void *inputs, int n,
                                   int last, qat_layer_tap *taps)
{
    QAT_ASSERT(last >= 0 && last < m->nlayers);
    int quant = m->cfg.quant.enabled && m->quant_active;
    qat_qparams in0;
    qat_tensor *x0 = qat_model_input_tensor(m, t, inputs, m->in.is_float, n, quant, &in0);
    return forward(m, t, x0, in0, quant, last, taps);
}
