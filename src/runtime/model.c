/* Building a model from a validated description. The model picks its kernel
 * table once, here, and owns everything it runs with in one allocation: the
 * weights packed into that table's layout, the folded biases and the
 * requantization arrays. It never refers to the caller's arrays again, so a
 * description (an HDF5 read, generated C, anything) may be freed at once. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qat/fixedpoint.h"
#include "runtime/rt_internal.h"

/* Bump-assigns 64-byte aligned pieces of one blob; a first pass with
 * base == NULL only measures. */
typedef struct {
    unsigned char *base;
    size_t used;
    int overflow;
} carve;

static void *carve_take(carve *cv, size_t count, size_t elem)
{
    size_t bytes, aligned, end;
    if (qat_size_mul(count, elem, &bytes) || qat_size_add(cv->used, 63, &aligned)) {
        cv->overflow = 1;
        return NULL;
    }
    aligned &= ~(size_t)63;
    if (qat_size_add(aligned, bytes, &end)) {
        cv->overflow = 1;
        return NULL;
    }
    cv->used = end;
    return cv->base ? cv->base + aligned : NULL;
}

static void conv_from_desc(qat_rt_conv_params *p, const qat_rt_layer_desc *l)
{
    *p = (qat_rt_conv_params){
        .in_h = l->in_h, .in_w = l->in_w, .in_c = l->in_c,
        .out_h = l->out_h, .out_w = l->out_w, .out_c = l->out_c,
        .kernel_h = l->kernel_h, .kernel_w = l->kernel_w,
        .stride_h = l->stride_h, .stride_w = l->stride_w,
        .pad_h = l->pad_h, .pad_w = l->pad_w,
        .in_zp = l->input_zero_point, .out_zp = l->output_zero_point,
        .act_min = l->act_min, .act_max = l->act_max,
        .groups = qat_rt_desc_groups(l),
    };
}

/* Lays out (or, with cv->base set, fills) every array of layer l. w is
 * scratch for the layer's unpacked weights (fill pass only). */
static void carve_layer(carve *cv, const qat_rt_kernels *k, qat_rt_layer *dst,
                        const qat_rt_layer_desc *l, int8_t *w)
{
    if (l->op == QAT_RT_ADD) { /* the path's own data, if it packs any */
        size_t n = k->add_packed_size ? k->add_packed_size(&dst->merge) : 0;
        void *packed = n ? carve_take(cv, n, 1) : NULL;
        if (cv->base && packed)
            k->add_pack(&dst->merge, packed);
        dst->merge.packed = packed;
        return;
    }
    if (l->op != QAT_RT_CONV2D && l->op != QAT_RT_LINEAR)
        return;
    if (l->is_float) { /* the float32 weights and bias, as they are */
        size_t n = (size_t)l->kernel_h * (size_t)l->kernel_w * (size_t)l->in_c * (size_t)l->out_c;
        float *fw = carve_take(cv, n, sizeof(float));
        float *fb = carve_take(cv, (size_t)l->out_c, sizeof(float));
        if (!cv->base)
            return;
        memcpy(fw, l->float_weights, n * sizeof(float));
        memcpy(fb, l->float_bias, (size_t)l->out_c * sizeof(float));
        dst->fl.weights = fw;
        dst->fl.bias = fb;
        return;
    }
    const int grouped = qat_rt_desc_groups(l) > 1;
    size_t kk = (size_t)l->kernel_h * (size_t)l->kernel_w * (size_t)(l->in_c / qat_rt_desc_groups(l));
    size_t oc = (size_t)l->out_c;
    int32_t *wzp = carve_take(cv, oc, sizeof(int32_t));
    int32_t *bias = carve_take(cv, oc, sizeof(int32_t));
    int32_t *mult = carve_take(cv, oc, sizeof(int32_t));
    int32_t *shift = carve_take(cv, oc, sizeof(int32_t));
    /* a grouped conv keeps its weights unpacked (the reference reads them
     * so), and gets the path's gconv layout if it has one; a plain one gets
     * the path's packed layout */
    int8_t *gw = grouped ? carve_take(cv, kk * oc, 1) : NULL;
    void *packed = !grouped              ? carve_take(cv, k->conv_packed_size(&dst->conv), 1)
                   : k->gconv_packed_size ? carve_take(cv, k->gconv_packed_size(&dst->conv), 1)
                                          : NULL;
    if (!cv->base)
        return;
    if (grouped)
        w = gw;
    qat_rt_layer_weights(l, w); /* plain or palettized; validated: kk * oc <= 2^30 */
    for (size_t c = 0; c < oc; c++) {
        wzp[c] = l->weight_zero_point ? l->weight_zero_point[c] : 0;
        long long sum = 0;
        for (size_t j = 0; j < kk; j++)
            sum += (long long)w[c * kk + j] - wzp[c];
        /* fits int32: |bias - x_zp * sum| <= |bias| + 128 * K * max|w - wzp|,
         * below the validated accumulator bound */
        bias[c] = (int32_t)((long long)l->bias[c] - (long long)l->input_zero_point * sum);
    }
    memcpy(mult, l->multiplier, oc * sizeof(int32_t));
    memcpy(shift, l->shift, oc * sizeof(int32_t));
    dst->conv.weight_zp = wzp;
    dst->conv.bias_folded = bias;
    dst->conv.multiplier = mult;
    dst->conv.shift = shift;
    dst->conv.weights = w;
    if (grouped) { /* the weights stay, unpacked, in the blob */
        if (packed)
            k->gconv_pack(&dst->conv, packed);
        dst->conv.packed = packed;
        return;
    }
    k->conv_pack(&dst->conv, packed);
    dst->conv.weights = NULL; /* the scratch is freed after creation */
    dst->conv.packed = packed;
}

/* The integers of add / concat / global_avgpool; the inputs' zero points
 * are what the layers they read produce. */
static void merge_from_desc(qat_rt_merge_params *p, const qat_rt_model_desc *d, int i)
{
    const qat_rt_layer_desc *l = &d->layers[i];
    *p = (qat_rt_merge_params){.n = qat_rt_desc_ninputs(l), .out_c = l->out_c,
                               .window = l->in_h * l->in_w, .out_zp = l->output_zero_point,
                               .act_min = l->act_min, .act_max = l->act_max};
    for (int k = 0; k < p->n; k++) {
        int src = qat_rt_desc_input(l, i, k);
        p->c[k] = src < 0 ? d->in_c : d->layers[src].out_c;
        p->in_zp[k] = src < 0 ? d->input_zero_point : d->layers[src].output_zero_point;
    }
    if (l->op == QAT_RT_ADD) {
        for (int k = 0; k < 2; k++) {
            p->in_mult[k] = l->multiplier[k];
            p->in_shift[k] = l->shift[k];
        }
        p->out_mult = l->multiplier[2];
        p->out_shift = l->shift[2];
    } else if (l->op == QAT_RT_CONCAT) {
        for (int k = 0; k < p->n; k++) {
            p->in_mult[k] = l->multiplier[k];
            p->in_shift[k] = l->shift[k];
        }
    } else {
        p->out_mult = l->multiplier[0];
        p->out_shift = l->shift[0];
    }
}

static void layer_from_desc(qat_rt_layer *dst, const qat_rt_model_desc *d, int i)
{
    const qat_rt_layer_desc *l = &d->layers[i];
    dst->ninputs = qat_rt_desc_ninputs(l);
    for (int k = 0; k < dst->ninputs; k++)
        dst->inputs[k] = qat_rt_desc_input(l, i, k);
    if (qat_rt_op_is_merge(l->op))
        merge_from_desc(&dst->merge, d, i);
    dst->op = l->op;
    memcpy(dst->name, l->name, QAT_RT_NAME_MAX);
    dst->in_size = (size_t)l->in_h * (size_t)l->in_w * (size_t)l->in_c;
    dst->out_size = (size_t)l->out_h * (size_t)l->out_w * (size_t)l->out_c;
    dst->rows = (size_t)l->out_h * (size_t)l->out_w;
    if ((l->op == QAT_RT_CONV2D || l->op == QAT_RT_LINEAR) && l->is_float) {
        conv_from_desc(&dst->conv, l); /* its shape: how a session splits the layer */
        dst->is_float = 1;
        dst->fl = (qat_rt_float_params){
            .in_h = l->in_h, .in_w = l->in_w, .in_c = l->in_c,
            .out_h = l->out_h, .out_w = l->out_w, .out_c = l->out_c,
            .kernel_h = l->kernel_h, .kernel_w = l->kernel_w,
            .stride_h = l->stride_h, .stride_w = l->stride_w,
            .pad_h = l->pad_h, .pad_w = l->pad_w,
            .in_scale = l->input_scale, .out_scale = l->output_scale,
            .in_zp = l->input_zero_point, .out_zp = l->output_zero_point,
            .act_min = l->act_min, .act_max = l->act_max, .act = l->float_act,
            .float_out = i == qat_rt_desc_output_layer(d),
        };
        dst->macs = (double)dst->out_size * (double)l->kernel_h * (double)l->kernel_w *
                    (double)l->in_c;
    } else if (l->op == QAT_RT_CONV2D || l->op == QAT_RT_LINEAR) {
        conv_from_desc(&dst->conv, l);
        dst->macs = (double)dst->out_size * (double)l->kernel_h * (double)l->kernel_w *
                    (double)(l->in_c / qat_rt_desc_groups(l));
    } else if (l->op == QAT_RT_MAXPOOL2D || l->op == QAT_RT_AVGPOOL2D) {
        dst->pool = (qat_rt_pool_params){
            .in_h = l->in_h, .in_w = l->in_w, .c = l->in_c,
            .out_h = l->out_h, .out_w = l->out_w,
            .kernel_h = l->kernel_h, .kernel_w = l->kernel_w,
            .stride_h = l->stride_h, .stride_w = l->stride_w,
            .zp = l->input_zero_point,
        };
        qat_rt_pool_divisor(l->kernel_h * l->kernel_w, &dst->pool.div_mul,
                            &dst->pool.div_shift);
    }
}

qat_status qat_rt_model_create_isa(const qat_rt_model_desc *d, const char *isa,
                                   qat_rt_model **out, qat_error *err)
{
    *out = NULL;
    qat_status st = qat_rt_model_validate(d, err);
    if (st)
        return st;
    const qat_rt_kernels *k;
    if ((st = qat_rt_kernels_select(isa, &k, err)))
        return st;
    qat_rt_model *m = calloc(1, sizeof *m);
    qat_rt_layer *layers = calloc((size_t)d->num_layers, sizeof *layers);
    if (!m || !layers) {
        free(m);
        free(layers);
        return qat_fail(err, QAT_ENOMEM, "model: out of memory for %d layers", d->num_layers);
    }
    carve cv = {0};
    size_t max_weights = 1;
    for (int i = 0; i < d->num_layers; i++) {
        const qat_rt_layer_desc *l = &d->layers[i];
        layer_from_desc(&layers[i], d, i);
        carve_layer(&cv, k, &layers[i], l, NULL);
        if ((l->op == QAT_RT_CONV2D || l->op == QAT_RT_LINEAR) && !l->is_float) {
            size_t n = (size_t)l->kernel_h * (size_t)l->kernel_w *
                       (size_t)(l->in_c / qat_rt_desc_groups(l)) * (size_t)l->out_c;
            max_weights = n > max_weights ? n : max_weights;
        }
    }
    int8_t *w = NULL;
    float *inq = malloc(2 * (size_t)d->in_c * sizeof *inq);
    /* 64-byte aligned: the carve offsets are, and SIMD kernels load aligned */
    if (cv.overflow || cv.used > SIZE_MAX - 64 || !inq ||
        !(cv.base = aligned_alloc(64, (cv.used + 64) & ~(size_t)63)) ||
        !(w = malloc(max_weights))) {
        free(cv.base);
        free(inq);
        free(m);
        free(layers);
        return qat_fail(err, QAT_ENOMEM, "model: out of memory for %zu bytes of weights", cv.used);
    }
    /* the input stage: a uint8 model's pixels p as floats x = p / 255 get
     * round_half_away(x / (1/255)) - 128 = p - 128 back */
    m->input_type = d->input_type;
    m->task = d->task;
    m->input_zero_point = d->input_zero_point;
    m->input_offset = inq;
    m->input_step = inq + d->in_c;
    for (int c = 0; c < d->in_c; c++) {
        int f = d->input_type == QAT_RT_INPUT_FLOAT32;
        m->input_offset[c] = f ? d->input_offset[c] : 0.0f;
        m->input_step[c] = f ? d->input_step[c] : d->input_scale;
    }
    m->k = k;
    m->blob = cv.base;
    cv.used = 0;
    m->in_h = d->in_h;
    m->in_w = d->in_w;
    m->in_c = d->in_c;
    m->input_size = (size_t)d->in_h * (size_t)d->in_w * (size_t)d->in_c;
    m->num_classes = d->num_classes;
    m->float_logits = qat_rt_desc_float_logits(d);
    m->num_layers = d->num_layers;
    m->layers = layers;
    for (int i = 0; i < d->num_layers; i++)
        carve_layer(&cv, k, &layers[i], &d->layers[i], w);
    free(w);
    /* conv2d + 2x2/2 maxpool in one pass where the path has the kernel (the
     * pool needs no padding: validated pools have none), when the pool is
     * the conv's only reader */
    for (int i = 0; k->conv2d_maxpool && i + 1 < d->num_layers; i++) {
        qat_rt_layer *c = &layers[i], *pl = &layers[i + 1];
        int readers = 0;
        for (int j = i + 1; j < d->num_layers; j++)
            for (int q = 0; q < layers[j].ninputs; q++)
                readers += layers[j].inputs[q] == i;
        if (c->op == QAT_RT_CONV2D && !c->is_float && c->conv.groups <= 1 &&
            pl->op == QAT_RT_MAXPOOL2D &&
            pl->inputs[0] == i && readers == 1 && pl->pool.kernel_h == 2 &&
            pl->pool.kernel_w == 2 && pl->pool.stride_h == 2 && pl->pool.stride_w == 2) {
            c->fused_pool = 1;
            c->rows = pl->rows;
            pl->done_by_previous = 1;
        }
    }
    if ((st = qat_rt_plan_arena(m, err))) {
        qat_rt_model_destroy(m);
        return st;
    }
    const qat_rt_layer_desc *last = &d->layers[d->num_layers - 1];
    m->output_scale = m->float_logits ? 1.0f : last->output_scale;
    m->output_zero_point = m->float_logits ? 0 : last->output_zero_point;
    *out = m;
    return QAT_OK;
}

qat_status qat_rt_model_create(const qat_rt_model_desc *d, qat_rt_model **out, qat_error *err)
{
    return qat_rt_model_create_isa(d, NULL, out, err);
}

void qat_rt_model_destroy(qat_rt_model *m)
{
    if (!m)
        return;
    free(m->blob);
    free(m->layers);
    free(m->input_offset); /* input_step shares it */
    free(m);
}

qat_rt_input_type qat_rt_model_input_type(const qat_rt_model *m) { return m->input_type; }
qat_rt_task qat_rt_model_task(const qat_rt_model *m) { return m->task; }

void qat_rt_quantize_float(const qat_rt_model *m, const float *x, size_t count, int8_t *q)
{
    /* one scalar function for every kernel path (ARITHMETIC.md §6): the
     * same codes whatever the ISA */
    size_t C = (size_t)m->in_c;
    for (size_t i = 0, c = 0; i < count; i++, c = c + 1 == C ? 0 : c + 1)
        q[i] = (int8_t)qat_fp_quantize(x[i] - m->input_offset[c], m->input_step[c],
                                       m->input_zero_point, -128, 127);
}

int qat_rt_model_num_classes(const qat_rt_model *m) { return m->num_classes; }
int qat_rt_model_float_logits(const qat_rt_model *m) { return m->float_logits; }
size_t qat_rt_model_input_size(const qat_rt_model *m) { return m->input_size; }
float qat_rt_model_output_scale(const qat_rt_model *m) { return m->output_scale; }
int32_t qat_rt_model_output_zero_point(const qat_rt_model *m) { return m->output_zero_point; }
const char *qat_rt_model_isa(const qat_rt_model *m) { return m->k->isa; }

qat_status qat_rt_isa_resolve(const char *isa, const char **name, qat_error *err)
{
    const qat_rt_kernels *k;
    qat_status st = qat_rt_kernels_select(isa, &k, err);
    *name = st ? NULL : k->isa;
    return st;
}

int qat_rt_model_num_layers(const qat_rt_model *m) { return m->num_layers; }
size_t qat_rt_model_activation_bytes(const qat_rt_model *m) { return m->arena; }

void qat_rt_dequantize_logits(const qat_rt_model *m, const int8_t *q, int n, float *out)
{
    size_t total = (size_t)(n > 0 ? n : 0) * (size_t)m->num_classes;
    for (size_t i = 0; i < total; i++)
        out[i] = m->output_scale * (float)((int32_t)q[i] - m->output_zero_point);
}

int qat_rt_argmax(const int8_t *logits, int num_classes)
{
    int best = 0;
    for (int i = 1; i < num_classes; i++)
        if (logits[i] > logits[best])
            best = i;
    return best;
}

int qat_rt_argmax_f32(const float *logits, int num_classes)
{
    int best = 0;
    for (int i = 1; i < num_classes; i++)
        if (logits[i] > logits[best])
            best = i;
    return best;
}

void qat_rt_classify(const qat_rt_model *m, const int8_t *logits, int n, int *classes)
{
    for (int i = 0; i < n; i++)
        classes[i] = qat_rt_argmax(logits + (size_t)i * (size_t)m->num_classes, m->num_classes);
}
