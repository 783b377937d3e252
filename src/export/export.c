/* Export: per layer, the weight codes, bias codes, multipliers and clamps
 * that the QAT forward used, in the runtime's description format. The model
 * is first built as codes (codes.h): channel pruning's dead channels are
 * removed there (remove.c) and the deployed sparsity counted, then the
 * runtime's packer packs every weight once. */
#include "qat/export.h"

#include <stdlib.h>
#include <string.h>

#include "export/codes.h"
#include "qat/fixedpoint.h"

#define ALIGN64(x) (((x) + 63) / 64 * 64)

static int maps_to_runtime(int type) { return type != QAT_LAYER_DROPOUT; }
static int has_weights(int type) { return qat_layer_type_has_weights((qat_layer_type)type); }

static qat_rt_op rt_op(int type)
{
    switch (type) {
    case QAT_LAYER_CONV2D:
    case QAT_LAYER_DEPTHWISE_CONV2D: return QAT_RT_CONV2D; /* groups say which */
    case QAT_LAYER_LINEAR: return QAT_RT_LINEAR;
    case QAT_LAYER_MAXPOOL2D: return QAT_RT_MAXPOOL2D;
    case QAT_LAYER_AVGPOOL2D: return QAT_RT_AVGPOOL2D;
    case QAT_LAYER_ADD: return QAT_RT_ADD;
    case QAT_LAYER_CONCAT: return QAT_RT_CONCAT;
    case QAT_LAYER_GLOBAL_AVGPOOL: return QAT_RT_GLOBAL_AVGPOOL;
    default: return QAT_RT_FLATTEN;
    }
}

qat_status qat_export_layer_alloc(qat_export_layer *l, int asymmetric, qat_error *err)
{
    size_t C = (size_t)l->d.out_c, wn = C * qat_export_row_len(&l->d);
    /* the int32 arrays first (bias is the allocation's start), then the
     * scales, then the codes */
    int32_t *p = malloc(C * (4 * sizeof(int32_t) + sizeof(float)) + wn + 1);
    if (!p)
        return qat_fail(err, QAT_ENOMEM, "layer '%s': out of memory", l->d.name);
    l->bias = p;
    l->multiplier = p + C;
    l->shift = p + 2 * C;
    l->weight_zero_point = asymmetric ? p + 3 * C : NULL;
    l->weight_scale = (float *)(p + 4 * C);
    l->codes = (int8_t *)(l->weight_scale + C);
    return QAT_OK;
}

void qat_export_model_free(qat_export_model *x)
{
    for (int i = 0; x->layers && i < x->d.num_layers; i++) {
        free(x->layers[i].bias);
        free(x->layers[i].fweights);
    }
    free(x->layers);
    free(x->input_arrays);
    memset(x, 0, sizeof *x);
}

/* A conv2d / linear layer's codes and arrays from its effective weights and
 * quantization parameters (refreshed by the caller). */
static void quantize_layer(const qat_layer *l, qat_export_layer *e)
{
    const qat_layer_quant *q = &l->q;
    size_t C = (size_t)l->out_c;
    for (size_t c = 0; c < C; c++) {
        for (size_t j = 0; j < l->fan_in; j++) {
            size_t idx = c * l->fan_in + j;
            e->codes[idx] = (int8_t)qat_fp_quantize(l->w_eff[idx], q->w_scale[c], q->w_zp[c],
                                                    q->wqmin, q->wqmax);
        }
        e->bias[c] = qat_quantize_bias(l->b_eff[c], q->acc_scale[c], q->bias_limit);
        e->multiplier[c] = q->multiplier[c];
        e->shift[c] = q->shift[c];
        if (e->weight_zero_point)
            e->weight_zero_point[c] = q->w_zp[c];
        e->weight_scale[c] = q->w_scale[c];
    }
    e->d.weight_bits = l->cfg->quant.weight_bits;
    e->d.act_min = q->act_min;
    e->d.act_max = q->act_max;
}

/* A float layer (quantize = false; FORMAT.md §11): its effective
 * (BN-folded) float weights and bias as the training forward used them,
 * its activation, and the output clamp of its own output parameters --
 * what the next layer reads. */
static qat_status float_layer(const qat_layer *l, qat_export_layer *e, qat_error *err)
{
    size_t C = (size_t)l->out_c, n = C * l->fan_in;
    if (!(e->fweights = malloc((n + C) * sizeof(float))))
        return qat_fail(err, QAT_ENOMEM, "layer '%s': out of memory", l->cfg->name);
    e->fbias = e->fweights + n;
    memcpy(e->fweights, l->w_eff, n * sizeof(float));
    memcpy(e->fbias, l->b_eff, C * sizeof(float));
    e->d.is_float = 1;
    e->d.float_act = l->cfg->activation == QAT_ACT_RELU    ? QAT_RT_FLOAT_ACT_RELU
                     : l->cfg->activation == QAT_ACT_RELU6 ? QAT_RT_FLOAT_ACT_RELU6
                                                           : QAT_RT_FLOAT_ACT_NONE;
    e->d.act_min = l->q.act_min;
    e->d.act_max = l->q.act_max;
    return QAT_OK;
}

/* Whether m reads anything but the layer before (or has a grouped conv or
 * a graph op): it then exports as format version 2. */
static int is_graph(qat_model *m)
{
    for (int i = 0; i < qat_model_num_layers(m); i++) {
        const qat_layer *l = qat_model_layer(m, i);
        if (l->type > QAT_LAYER_DROPOUT || l->groups > 1 || l->ninputs != 1 ||
            l->inputs[0] != i - 1)
            return 1;
    }
    return 0;
}

/* What the integer model cannot hold, as an error naming why: channel
 * removal (remove.c) follows a chain, so a channel-pruned graph model is
 * not exported. The config loader refuses that combination already; this
 * keeps export's own contract for a model built any other way. */
qat_status qat_export_check(qat_model *m, qat_error *err)
{
    for (int i = 0; i < qat_model_num_layers(m); i++)
        if (qat_model_config(m)->prune.method == QAT_PRUNE_CHANNEL &&
            qat_layer_cfg_is_float(qat_model_layer(m, i)->cfg))
            return qat_fail(err, QAT_EINVAL,
                            "layer '%s': channel pruning of a model with float layers "
                            "(quantize = false) is not exported: dead channels are removed on "
                            "integer codes; use prune.method = magnitude",
                            qat_model_layer(m, i)->cfg->name);
    if (qat_model_config(m)->prune.method == QAT_PRUNE_CHANNEL && is_graph(m))
        return qat_fail(err, QAT_EINVAL,
                        "channel pruning of a graph model (inputs, groups, add, concat, "
                        "global_avgpool) is not exported: dead channels are removed along a "
                        "chain only; use prune.method = magnitude or a chain model");
    return QAT_OK;
}

/* The runtime index of what training layer `idx` outputs: dropout layers
 * disappear, so they stand for what they read (-1: the model input). */
static int rt_index(const int *map, qat_model *m, int idx)
{
    while (idx >= 0 && qat_model_layer(m, idx)->type == QAT_LAYER_DROPOUT)
        idx = qat_model_layer(m, idx)->inputs[0];
    return idx < 0 ? -1 : map[idx];
}

/* add / concat / global_avgpool: the integers their fake-quant forward
 * used (qat_merge_params, ARITHMETIC.md §4.1). */
static void merge_layer(const qat_layer *l, qat_export_layer *e)
{
    const qat_merge_params *p = &l->q.merge;
    if (l->type == QAT_LAYER_ADD) {
        for (int k = 0; k < 2; k++) {
            e->merge_mult[k] = p->in_mult[k];
            e->merge_shift[k] = p->in_shift[k];
        }
        e->merge_mult[2] = p->out_mult;
        e->merge_shift[2] = p->out_shift;
    } else if (l->type == QAT_LAYER_CONCAT) {
        for (int k = 0; k < p->n; k++) {
            e->merge_mult[k] = p->in_mult[k];
            e->merge_shift[k] = p->in_shift[k];
        }
    } else {
        e->merge_mult[0] = p->out_mult;
        e->merge_shift[0] = p->out_shift;
    }
    e->d.act_min = p->act_min;
    e->d.act_max = p->act_max;
}

/* m's integer model as codes; dropout layers disappear, everything else
 * maps one to one. */
static qat_status build_codes(qat_model *m, qat_export_model *x, qat_error *err)
{
    memset(x, 0, sizeof *x);
    const qat_config *cfg = qat_model_config(m);
    int n = qat_model_num_layers(m), nl = 0;
    for (int i = 0; i < n; i++)
        nl += maps_to_runtime(qat_model_layer(m, i)->type);
    x->layers = calloc((size_t)nl + 1, sizeof *x->layers);
    if (!x->layers)
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    qat_rt_model_desc *md = &x->d;
    const int graph = is_graph(m);
    /* a chain stays readable by version-1 readers; a graph needs 2, and
     * pack raises it to 2 for a palettized layer */
    md->version = graph ? 2 : QAT_RT_FORMAT_VERSION_MIN;
    md->in_h = cfg->model.input_height;
    md->in_w = cfg->model.input_width;
    md->in_c = cfg->model.input_channels;
    md->input_scale = qat_input_qparams().scale;
    md->input_zero_point = qat_input_qparams().zero_point;
    md->num_classes = qat_model_num_outputs(m);
    md->num_layers = nl;
    md->task = cfg->model.task == QAT_TASK_REGRESSION ? QAT_RT_TASK_REGRESSION
                                                      : QAT_RT_TASK_CLASSIFICATION;
    const qat_model_input *in = qat_model_input_info(m);
    if (!in->ready)
        return qat_fail(err, QAT_EINVAL,
                        "the model input's statistics were never set (auto input_mean / "
                        "input_std, or a float32 input's range): train before exporting");
    if (in->is_float) {
        size_t C = (size_t)md->in_c;
        if (!(x->input_arrays = malloc(2 * C * sizeof(float))))
            return qat_fail(err, QAT_ENOMEM, "out of memory");
        memcpy(x->input_arrays, in->offset, C * sizeof(float));
        memcpy(x->input_arrays + C, in->step, C * sizeof(float));
        md->input_type = QAT_RT_INPUT_FLOAT32;
        md->input_scale = in->q.scale;
        md->input_zero_point = in->q.zero_point;
        md->input_offset = x->input_arrays;
        md->input_step = x->input_arrays + C;
    }
    int k = 0, map[QAT_MAX_LAYERS];
    for (int i = 0; i < n; i++) {
        const qat_layer *l = qat_model_layer(m, i);
        if (!maps_to_runtime(l->type))
            continue;
        map[i] = k;
        qat_export_layer *e = &x->layers[k++];
        qat_rt_layer_desc *d = &e->d;
        d->op = rt_op(l->type);
        if (graph) {
            d->num_inputs = l->ninputs;
            for (int q = 0; q < l->ninputs; q++)
                d->inputs[q] = rt_index(map, m, l->inputs[q]);
        }
        if (d->op == QAT_RT_CONV2D && l->groups > 1)
            d->groups = l->groups;
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
        if (d->op == QAT_RT_CONV2D || l->type == QAT_LAYER_MAXPOOL2D ||
            l->type == QAT_LAYER_AVGPOOL2D) {
            d->kernel_h = d->kernel_w = l->kernel;
            d->stride_h = d->stride_w = l->stride;
            d->pad_h = d->pad_w = l->padding;
        } else {
            d->kernel_h = d->kernel_w = d->stride_h = d->stride_w = 1;
        }
        d->act_min = l->q.out.qmin;
        d->act_max = l->q.out.qmax;
        if (qat_rt_op_is_merge(d->op))
            merge_layer(l, e);
        if (!has_weights(l->type))
            continue;
        if (qat_layer_cfg_is_float(l->cfg)) {
            qat_status st = float_layer(l, e, err);
            if (st != QAT_OK)
                return st;
            md->version = 3;
            continue;
        }
        /* the cluster count asked for; pack decides whether the codes fit it */
        d->palette_size = qat_config_cluster_layer(cfg, i);
        qat_status st = qat_export_layer_alloc(
            e, l->cfg->quant.weight_scheme == QAT_SCHEME_ASYMMETRIC, err);
        if (st != QAT_OK)
            return st;
        quantize_layer(l, e);
    }
    return QAT_OK;
}

/* A clustered layer's codebook and packed indices, carved at *p (sized by
 * qat_export_pack). The plain stream stays in d->weights for the tools
 * that read codes; files and generated C store only the palette. Codes
 * that do not fit K (per layer nor per channel: e.g. a first layer whose
 * input standardisation differs per channel scales each input channel's
 * taps apart) leave the layer plain, as does a palette no smaller than the
 * plain stream. */
static qat_status palettize(const qat_export_layer *e, qat_rt_layer_desc *d, unsigned char **p,
                            qat_error *err)
{
    size_t C = (size_t)d->out_c, row = qat_export_row_len(d), n = C * row;
    int k = d->palette_size;
    uint8_t *idx = malloc(n ? n : 1);
    if (!idx)
        return qat_fail(err, QAT_ENOMEM, "layer '%s': out of memory", d->name);
    int8_t *cb = (int8_t *)*p;
    int groups = qat_export_palette(e->codes, C, row, k, cb, idx);
    *p += ALIGN64(C * (size_t)k);
    /* a palette that would not be smaller (a small layer under per-channel
     * codebooks) is not worth a second encoding: the layer stays plain */
    if (groups == 0 || (size_t)groups * (size_t)k + qat_rt_palette_index_bytes(n, k) >=
                           d->weights_bytes) {
        d->palette_size = 0;
    } else {
        d->palette_groups = groups;
        d->codebook = cb;
        d->indices = *p;
        d->indices_bytes = qat_rt_palette_index_bytes(n, k);
        qat_rt_palette_pack(idx, n, k, *p);
    }
    *p += ALIGN64(qat_rt_palette_index_bytes(n, k));
    free(idx);
    return QAT_OK;
}

qat_status qat_export_pack(const qat_export_model *x, qat_rt_owned_desc *out, qat_error *err)
{
    memset(out, 0, sizeof *out);
    int nl = x->d.num_layers;
    size_t C0 = (size_t)x->d.in_c;
    size_t bytes = x->input_arrays ? ALIGN64(2 * C0 * sizeof(float)) : 0;
    for (int i = 0; i < nl; i++) {
        const qat_rt_layer_desc *d = &x->layers[i].d;
        if (qat_rt_op_is_merge(d->op))
            bytes += ALIGN64(2 * QAT_RT_MAX_INPUTS * sizeof(int32_t));
        if (x->layers[i].fweights)
            bytes += ALIGN64((size_t)d->out_c * (qat_export_row_len(d) + 1) * sizeof(float));
        if (!x->layers[i].codes)
            continue;
        size_t C = (size_t)d->out_c;
        bytes += ALIGN64(qat_rt_packed_weight_bytes(C * qat_export_row_len(d), d->weight_bits));
        bytes += ALIGN64(C * (4 * sizeof(int32_t) + sizeof(float)));
        if (d->palette_size) /* codebooks at most one per channel, then the indices */
            bytes += ALIGN64(C * (size_t)d->palette_size) +
                     ALIGN64(qat_rt_palette_index_bytes(C * qat_export_row_len(d),
                                                        d->palette_size));
    }
    out->layers = calloc((size_t)nl + 1, sizeof *out->layers);
    out->blob = calloc(1, bytes + 64);
    if (!out->layers || !out->blob) {
        qat_rt_owned_desc_free(out);
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    }
    unsigned char *p = out->blob;
    qat_status st;
    out->desc = x->d;
    if (x->input_arrays) {
        memcpy(p, x->input_arrays, 2 * C0 * sizeof(float));
        out->desc.input_offset = (const float *)p;
        out->desc.input_step = (const float *)p + C0;
        p += ALIGN64(2 * C0 * sizeof(float));
    }
    for (int i = 0; i < nl; i++) {
        const qat_export_layer *e = &x->layers[i];
        qat_rt_layer_desc *d = &out->layers[i];
        *d = e->d;
        if (qat_rt_op_is_merge(d->op)) {
            int32_t *mult = (int32_t *)p, *shift = mult + QAT_RT_MAX_INPUTS;
            memcpy(mult, e->merge_mult, sizeof e->merge_mult);
            memcpy(shift, e->merge_shift, sizeof e->merge_shift);
            d->multiplier = mult;
            d->shift = shift;
            p += ALIGN64(2 * QAT_RT_MAX_INPUTS * sizeof(int32_t));
        }
        if (e->fweights) {
            size_t n = (size_t)d->out_c * (qat_export_row_len(d) + 1);
            memcpy(p, e->fweights, n * sizeof(float));
            d->float_weights = (const float *)p;
            d->float_bias = (const float *)p + n - (size_t)d->out_c;
            p += ALIGN64(n * sizeof(float));
        }
        if (!e->codes)
            continue;
        size_t C = (size_t)d->out_c, wn = C * qat_export_row_len(d);
        d->weights_bytes = qat_rt_packed_weight_bytes(wn, d->weight_bits);
        qat_rt_pack_weights(e->codes, wn, d->weight_bits, p);
        d->weights = p;
        p += ALIGN64(d->weights_bytes);
        int32_t *bias = (int32_t *)p, *mult = bias + C, *shift = mult + C, *wzp = shift + C;
        float *wscale = (float *)(wzp + C);
        memcpy(bias, e->bias, C * sizeof *bias);
        memcpy(mult, e->multiplier, C * sizeof *mult);
        memcpy(shift, e->shift, C * sizeof *shift);
        if (e->weight_zero_point)
            memcpy(wzp, e->weight_zero_point, C * sizeof *wzp);
        memcpy(wscale, e->weight_scale, C * sizeof *wscale);
        d->bias = bias;
        d->multiplier = mult;
        d->shift = shift;
        d->weight_zero_point = e->weight_zero_point ? wzp : NULL;
        d->weight_scale = wscale;
        p += ALIGN64(C * (4 * sizeof(int32_t) + sizeof(float)));
        if (d->palette_size && (st = palettize(e, d, &p, err)) != QAT_OK) {
            qat_rt_owned_desc_free(out);
            return st;
        }
        if (d->palette_size && out->desc.version < 2)
            out->desc.version = 2;
    }
    out->desc.layers = out->layers;
    return QAT_OK;
}

/* Sparsity as deployed, counted on the codes: per conv2d / linear layer of
 * m, the codes at their zero point plus the weights channel removal took
 * out, relative to the trained shape. x holds m's layers in model order. */
static void count_sparsity(qat_model *m, const qat_export_model *x, qat_prune_stats *s)
{
    memset(s, 0, sizeof *s);
    const qat_export_layer *e = x->layers;
    for (int i = 0; i < qat_model_num_layers(m); i++) {
        const qat_layer *l = qat_model_layer(m, i);
        if (!has_weights(l->type))
            continue;
        while (!e->codes && !e->fweights) /* the runtime layer l became */
            e++;
        size_t rowlen = qat_export_row_len(&e->d), n = (size_t)e->d.out_c * rowlen, z = 0;
        for (size_t j = 0; j < n; j++)
            z += e->fweights ? e->fweights[j] == 0.0f
                             : e->codes[j] == (e->weight_zero_point
                                                   ? e->weight_zero_point[j / rowlen]
                                                   : 0);
        qat_prune_layer_stat *L = &s->layers[s->n++];
        L->name = l->cfg->name;
        L->weights = l->w.numel;
        L->zeros = z + (L->weights > n ? L->weights - n : 0);
        L->channels = l->out_c;
        L->channels_kept = e->d.out_c;
        e++;
    }
    qat_prune_stats_total(s);
}

qat_status qat_export_desc_sparsity(qat_model *m, qat_rt_owned_desc *out,
                                    qat_prune_stats *sparsity, qat_error *err)
{
    memset(out, 0, sizeof *out);
    qat_status st = qat_export_check(m, err);
    if (st == QAT_OK)
        st = qat_model_refresh_qparams(m, err);
    if (st != QAT_OK)
        return qat_error_prefix(err, "export");
    qat_export_model x;
    st = build_codes(m, &x, err);
    /* channel pruning: the pruned channels output exact zeros; take them out
     * of the integer model, with the next layer's inputs (exact, remove.c) */
    if (st == QAT_OK && qat_model_config(m)->prune.method == QAT_PRUNE_CHANNEL)
        st = qat_export_remove_channels(&x, NULL, err);
    if (st == QAT_OK && sparsity)
        count_sparsity(m, &x, sparsity);
    if (st == QAT_OK)
        st = qat_export_pack(&x, out, err);
    qat_export_model_free(&x);
    return st == QAT_OK ? QAT_OK : qat_error_prefix(err, "export");
}

qat_status qat_export_desc(qat_model *m, qat_rt_owned_desc *out, qat_error *err)
{
    return qat_export_desc_sparsity(m, out, NULL, err);
}

size_t qat_export_param_bytes(const qat_rt_model_desc *d)
{
    size_t n = 0;
    for (int i = 0; i < d->num_layers; i++) {
        const qat_rt_layer_desc *l = &d->layers[i];
        /* add / concat / global_avgpool store no weights but a multiplier
         * and a shift per rescaled input (and the add's output) */
        if (qat_rt_op_is_merge(l->op))
            n += (size_t)qat_rt_desc_merge_mults(l) * 2 * sizeof(int32_t);
        if (l->op != QAT_RT_CONV2D && l->op != QAT_RT_LINEAR)
            continue;
        if (l->is_float) { /* float32 weights and bias */
            n += ((size_t)l->kernel_h * (size_t)l->kernel_w * (size_t)l->in_c + 1) *
                 (size_t)l->out_c * sizeof(float);
            continue;
        }
        n += l->palette_size ? (size_t)l->palette_groups * (size_t)l->palette_size +
                                   l->indices_bytes
                             : l->weights_bytes;
        n += (size_t)l->out_c * 3 * sizeof(int32_t);
        if (l->weight_zero_point)
            n += (size_t)l->out_c * sizeof(int32_t);
    }
    return n;
}
