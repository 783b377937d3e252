/* Export: per layer, the weight codes, bias codes, multipliers and clamps
 * that the QAT forward used, in the runtime's description format; channel
 * pruning's dead channels are then removed (src/prune/remove.c). */
#include "qat/export.h"

#include <stdlib.h>
#include <string.h>

#include "qat/fixedpoint.h"
#include "qat/prune.h"

static int slot_bits(int bits) { return bits >= 5 ? 8 : bits >= 3 ? 4 : 2; }

size_t qat_packed_size(size_t n, int bits)
{
    size_t per = (size_t)(8 / slot_bits(bits));
    return (n + per - 1) / per;
}

void qat_pack_weights(const int8_t *w, size_t n, int bits, uint8_t *out)
{
    int sb = slot_bits(bits);
    size_t per = (size_t)(8 / sb);
    memset(out, 0, qat_packed_size(n, bits));
    uint8_t mask = (uint8_t)((1u << sb) - 1u);
    for (size_t i = 0; i < n; i++)
        out[i / per] |= (uint8_t)(((uint8_t)w[i] & mask) << ((i % per) * (size_t)sb));
}

static int maps_to_runtime(int type) { return type != QAT_LAYER_DROPOUT; }

static qat_rt_op rt_op(int type)
{
    switch (type) {
    case QAT_LAYER_CONV2D: return QAT_RT_CONV2D;
    case QAT_LAYER_LINEAR: return QAT_RT_LINEAR;
    case QAT_LAYER_MAXPOOL2D: return QAT_RT_MAXPOOL2D;
    case QAT_LAYER_AVGPOOL2D: return QAT_RT_AVGPOOL2D;
    default: return QAT_RT_FLATTEN;
    }
}

qat_status qat_export_desc(qat_model *m, qat_rt_owned_desc *out, qat_error *err)
{
    memset(out, 0, sizeof *out);
    qat_status st = qat_model_refresh_qparams(m, err);
    if (st != QAT_OK)
        return qat_error_prefix(err, "export");
    const qat_config *cfg = qat_model_config(m);
    int n = qat_model_num_layers(m), nl = 0;
    size_t bytes = 0;
    for (int i = 0; i < n; i++) {
        const qat_layer *l = qat_model_layer(m, i);
        if (!maps_to_runtime(l->type))
            continue;
        nl++;
        if (l->type == QAT_LAYER_CONV2D || l->type == QAT_LAYER_LINEAR) {
            size_t C = (size_t)l->out_c;
            bytes += qat_packed_size(C * l->fan_in, l->cfg->quant.weight_bits) + 64;
            bytes += C * (4 * sizeof(int32_t) + sizeof(float)) + 64;
        }
    }
    out->layers = calloc((size_t)nl, sizeof *out->layers);
    out->blob = calloc(1, bytes + 64);
    int8_t *codes = NULL;
    if (!out->layers || !out->blob) {
        qat_rt_owned_desc_free(out);
        return qat_fail(err, QAT_ENOMEM, "export: out of memory");
    }
    unsigned char *p = out->blob;
    int k = 0;
    for (int i = 0; i < n; i++) {
        qat_layer *l = qat_model_layer(m, i);
        if (!maps_to_runtime(l->type))
            continue;
        qat_rt_layer_desc *d = &out->layers[k++];
        d->op = rt_op(l->type);
        snprintf(d->name, sizeof d->name, "%s", l->cfg->name);
        d->in_h = l->in_h;
        d->in_w = l->in_w;
        d->in_c = l->in_c;
        d->out_h = l->out_h;
        d->out_w = l->out_w;
        d->out_c = l->out_c;
        d->input_scale = l->q.in.scale;
        d->input_zero_point = l->q.in.zero_point;
        d->output_scale = l->q.out.scale;
        d->output_zero_point = l->q.out.zero_point;
        if (l->type == QAT_LAYER_CONV2D || l->type == QAT_LAYER_MAXPOOL2D ||
            l->type == QAT_LAYER_AVGPOOL2D) {
            d->kernel_h = d->kernel_w = l->kernel;
            d->stride_h = d->stride_w = l->stride;
            d->pad_h = d->pad_w = l->padding;
        } else {
            d->kernel_h = d->kernel_w = d->stride_h = d->stride_w = 1;
        }
        d->act_min = l->q.out.qmin;
        d->act_max = l->q.out.qmax;
        if (l->type != QAT_LAYER_CONV2D && l->type != QAT_LAYER_LINEAR)
            continue;
        const qat_layer_quant *q = &l->q;
        size_t C = (size_t)l->out_c, wn = C * l->fan_in;
        int bits = l->cfg->quant.weight_bits;
        codes = malloc(wn);
        if (!codes) {
            qat_rt_owned_desc_free(out);
            return qat_fail(err, QAT_ENOMEM, "export: out of memory");
        }
        for (size_t c = 0; c < C; c++)
            for (size_t j = 0; j < l->fan_in; j++) {
                size_t idx = c * l->fan_in + j;
                codes[idx] = (int8_t)qat_fp_quantize(l->w_eff[idx], q->w_scale[c], q->w_zp[c],
                                                     q->wqmin, q->wqmax);
            }
        d->weight_bits = bits;
        d->weights_bytes = qat_packed_size(wn, bits);
        qat_pack_weights(codes, wn, bits, p);
        d->weights = p;
        p += (d->weights_bytes + 63) / 64 * 64;
        free(codes);
        codes = NULL;
        int32_t *bias = (int32_t *)p, *mult = bias + C, *shift = mult + C, *wzp = shift + C;
        float *wscale = (float *)(wzp + C);
        for (size_t c = 0; c < C; c++) {
            bias[c] = qat_quantize_bias(l->b_eff[c], q->acc_scale[c], q->bias_limit);
            mult[c] = q->multiplier[c];
            shift[c] = q->shift[c];
            wzp[c] = q->w_zp[c];
            wscale[c] = q->w_scale[c];
        }
        d->bias = bias;
        d->multiplier = mult;
        d->shift = shift;
        d->weight_scale = wscale;
        d->weight_zero_point =
            l->cfg->quant.weight_scheme == QAT_SCHEME_ASYMMETRIC ? wzp : NULL;
        d->act_min = q->act_min;
        d->act_max = q->act_max;
        p += (C * (4 * sizeof(int32_t) + sizeof(float)) + 63) / 64 * 64;
    }
    qat_rt_model_desc *md = &out->desc;
    md->version = QAT_RT_FORMAT_VERSION;
    md->in_h = cfg->model.input_height;
    md->in_w = cfg->model.input_width;
    md->in_c = cfg->model.input_channels;
    md->input_scale = qat_input_qparams().scale;
    md->input_zero_point = qat_input_qparams().zero_point;
    md->num_classes = cfg->model.num_classes;
    md->num_layers = nl;
    md->layers = out->layers;
    /* channel pruning: the pruned channels output exact zeros; take them out
     * of the integer model, with the next layer's inputs (exact, remove.c) */
    if (cfg->prune.method == QAT_PRUNE_CHANNEL &&
        (st = qat_prune_remove_channels(out, NULL, err)) != QAT_OK) {
        qat_rt_owned_desc_free(out);
        return qat_error_prefix(err, "export");
    }
    return QAT_OK;
}

size_t qat_export_param_bytes(const qat_rt_model_desc *d)
{
    size_t n = 0;
    for (int i = 0; i < d->num_layers; i++) {
        const qat_rt_layer_desc *l = &d->layers[i];
        if (l->op != QAT_RT_CONV2D && l->op != QAT_RT_LINEAR)
            continue;
        n += l->weights_bytes + (size_t)l->out_c * 3 * sizeof(int32_t);
        if (l->weight_zero_point)
            n += (size_t)l->out_c * sizeof(int32_t);
    }
    return n;
}
