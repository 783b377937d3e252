/* The shape pass over the model's graph: each layer's input shape from the
 * layers it reads (in file order, so every input is known), its output
 * shape from its type, and a message with file:line for every shape that
 * cannot be. */
#include "model_internal.h"
#include "qat/ops.h"

#define FAIL(st, ...) return qat_fail(err, st, __VA_ARGS__)

/* "'name' gives HxWxC" of input k of l, for messages. */
static void describe_input(const qat_config *cfg, const qat_layer *layers, int idx, char *buf,
                           size_t len)
{
    if (idx < 0)
        snprintf(buf, len, "the model input gives %dx%dx%d", cfg->model.input_height,
                 cfg->model.input_width, cfg->model.input_channels);
    else
        snprintf(buf, len, "'%s' gives %dx%dx%d", layers[idx].cfg->name, layers[idx].out_h,
                 layers[idx].out_w, layers[idx].out_c);
}

static void shape_of(const qat_config *cfg, const qat_layer *layers, int idx, int *h, int *w,
                     int *c)
{
    if (idx < 0) {
        *h = cfg->model.input_height;
        *w = cfg->model.input_width;
        *c = cfg->model.input_channels;
    } else {
        *h = layers[idx].out_h;
        *w = layers[idx].out_w;
        *c = layers[idx].out_c;
    }
}

/* Input shape of a layer with several inputs: add needs them equal, concat
 * equal but for the channels, which it sums. */
static qat_status merge_inputs(const qat_config *cfg, const qat_layer *layers, qat_layer *l,
                               qat_error *err)
{
    const qat_layer_cfg *c = l->cfg;
    int h0, w0, c0;
    shape_of(cfg, layers, l->inputs[0], &h0, &w0, &c0);
    long long total = c0;
    for (int k = 1; k < l->ninputs; k++) {
        int h, w, ch;
        shape_of(cfg, layers, l->inputs[k], &h, &w, &ch);
        int same = c->type == QAT_LAYER_ADD ? h == h0 && w == w0 && ch == c0 : h == h0 && w == w0;
        if (!same) {
            char a[160], b[160];
            describe_input(cfg, layers, l->inputs[0], a, sizeof a);
            describe_input(cfg, layers, l->inputs[k], b, sizeof b);
            FAIL(QAT_EINVAL,
                 "%s:%d: [layer.%s] inputs: %s needs inputs of the same %s, but %s and %s",
                 cfg->path, c->line, c->name, qat_layer_type_name(c->type),
                 c->type == QAT_LAYER_ADD ? "shape" : "height and width", a, b);
        }
        total += ch;
    }
    if (total > 65536)
        FAIL(QAT_EINVAL, "%s:%d: [layer.%s] concat gives %lld channels (limit 65536)", cfg->path,
             c->line, c->name, total);
    l->in_h = h0;
    l->in_w = w0;
    l->in_c = c->type == QAT_LAYER_ADD ? c0 : (int)total;
    return QAT_OK;
}

static qat_status conv_shape(const qat_config *cfg, qat_layer *l, qat_error *err)
{
    const qat_layer_cfg *c = l->cfg;
    const char *file = cfg->path;
    int conv = qat_layer_type_has_weights(c->type);
    int pad = conv ? c->padding : 0;
    l->kernel = c->kernel;
    l->stride = c->stride;
    l->padding = pad;
    if (l->in_h + 2 * pad < c->kernel || l->in_w + 2 * pad < c->kernel)
        FAIL(QAT_EINVAL,
             "%s:%d: [layer.%s] kernel %dx%d does not fit its input %dx%dx%d (padding %d)", file,
             c->line, c->name, c->kernel, c->kernel, l->in_h, l->in_w, l->in_c, pad);
    l->out_h = qat_conv_out_size(l->in_h, c->kernel, c->stride, pad);
    l->out_w = qat_conv_out_size(l->in_w, c->kernel, c->stride, pad);
    l->out_c = l->in_c;
    if (!conv)
        return QAT_OK;
    if (c->padding >= c->kernel)
        FAIL(QAT_EINVAL, "%s:%d: [layer.%s] padding %d must be smaller than kernel %d", file,
             c->line, c->name, c->padding, c->kernel);
    if (c->type == QAT_LAYER_DEPTHWISE_CONV2D) {
        l->groups = l->in_c;
        if ((long long)l->in_c * c->multiplier > 65536)
            FAIL(QAT_EINVAL,
                 "%s:%d: [layer.%s] %d input channels x multiplier %d gives more than 65536 "
                 "output channels",
                 file, c->line, c->name, l->in_c, c->multiplier);
        l->out_c = l->in_c * c->multiplier;
    } else {
        l->groups = c->groups;
        if (l->in_c % c->groups || c->out_channels % c->groups)
            FAIL(QAT_EINVAL,
                 "%s:%d: [layer.%s] groups = %d must divide both its input channels (%d) and "
                 "out_channels (%d)",
                 file, c->line, c->name, c->groups, l->in_c, c->out_channels);
        l->out_c = c->out_channels;
    }
    l->fan_in = (size_t)c->kernel * (size_t)c->kernel * (size_t)(l->in_c / l->groups);
    return QAT_OK;
}

static qat_status infer_shape(const qat_config *cfg, qat_layer *l, qat_error *err)
{
    const qat_layer_cfg *c = l->cfg;
    const char *file = cfg->path;
    l->groups = 1;
    switch (c->type) {
    case QAT_LAYER_CONV2D:
    case QAT_LAYER_DEPTHWISE_CONV2D:
    case QAT_LAYER_MAXPOOL2D:
    case QAT_LAYER_AVGPOOL2D:
        return conv_shape(cfg, l, err);
    case QAT_LAYER_LINEAR:
        if (l->in_h != 1 || l->in_w != 1)
            FAIL(QAT_EINVAL,
                 "%s:%d: [layer.%s] linear needs flat input but receives %dx%dx%d; add a "
                 "[layer.<name>] type = flatten (or global_avgpool) before it",
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
    case QAT_LAYER_GLOBAL_AVGPOOL:
        /* the runtime sums a channel's H * W codes in int32 */
        if ((long long)l->in_h * l->in_w > (1LL << 23))
            FAIL(QAT_EINVAL, "%s:%d: [layer.%s] global_avgpool over %dx%d pixels (limit 2^23)",
                 file, c->line, c->name, l->in_h, l->in_w);
        l->out_h = l->out_w = 1;
        l->out_c = l->in_c;
        return QAT_OK;
    case QAT_LAYER_DROPOUT:
    case QAT_LAYER_ADD:
    case QAT_LAYER_CONCAT:
        l->out_h = l->in_h;
        l->out_w = l->in_w;
        l->out_c = l->in_c;
        return QAT_OK;
    }
    FAIL(QAT_EINVAL, "%s:%d: [layer.%s] unknown layer type", file, c->line, c->name);
}

qat_status qat_layers_infer_shapes(const qat_config *cfg, qat_layer *layers, qat_error *err)
{
    for (int i = 0; i < cfg->nlayers; i++) {
        qat_layer *l = &layers[i];
        l->cfg = &cfg->layers[i];
        l->type = l->cfg->type;
        l->ninputs = l->cfg->ninputs;
        for (int k = 0; k < l->ninputs; k++)
            l->inputs[k] = l->cfg->inputs[k];
        if (l->ninputs == 0) { /* a config not from the parser: a chain */
            l->ninputs = 1;
            l->inputs[0] = i - 1;
        }
        qat_status st;
        if (l->ninputs > 1)
            st = merge_inputs(cfg, layers, l, err);
        else
            shape_of(cfg, layers, l->inputs[0], &l->in_h, &l->in_w, &l->in_c), st = QAT_OK;
        if (st == QAT_OK)
            st = infer_shape(cfg, l, err);
        if (st != QAT_OK)
            return st;
    }
    return QAT_OK;
}
