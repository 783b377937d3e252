/* Synthetic integer models for the runtime tests, and an independent naive
 * executor (plain loops + qat_fp_requantize, int64 accumulation checked
 * against int32) that the runtime's logits are compared with. Written from
 * docs/ARITHMETIC.md and docs/FORMAT.md, not from the runtime's code: the
 * packer below is this file's own. */
#ifndef QAT_TEST_RT_FIXTURE_H
#define QAT_TEST_RT_FIXTURE_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/fixedpoint.h"
#include "qat/rng.h"
#include "qat/runtime.h"

#define FX_MAX_LAYERS 16

typedef struct fx_model {
    qat_rt_model_desc desc;
    qat_rt_layer_desc layers[FX_MAX_LAYERS];
    int8_t *w[FX_MAX_LAYERS]; /* unpacked weights the oracle uses */
    uint8_t *packed[FX_MAX_LAYERS];
    int32_t *wzp[FX_MAX_LAYERS], *bias[FX_MAX_LAYERS], *mult[FX_MAX_LAYERS],
        *shift[FX_MAX_LAYERS];
    float *wscale[FX_MAX_LAYERS];
    qat_rng rng;
    int cur_h, cur_w, cur_c; /* shape the next layer consumes */
    float scale;     /* its quantization */
    int32_t zp;
} fx_model;

static inline int32_t fx_rand(fx_model *m, int32_t lo, int32_t hi)
{
    return lo + (int32_t)qat_rng_below(&m->rng, (uint32_t)(hi - lo + 1));
}

static inline void fx_begin(fx_model *m, int h, int w, int c, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    qat_rng_seed(&m->rng, seed, 7);
    m->desc.version = QAT_RT_FORMAT_VERSION_MIN; /* fx_palettize raises it */
    m->desc.in_h = m->cur_h = h;
    m->desc.in_w = m->cur_w = w;
    m->desc.in_c = m->cur_c = c;
    m->desc.input_scale = m->scale = 1.0f / 255.0f;
    m->desc.input_zero_point = m->zp = -128;
    m->desc.layers = m->layers;
}

static inline qat_rt_layer_desc *fx_push(fx_model *m, qat_rt_op op, const char *name)
{
    if (m->desc.num_layers >= FX_MAX_LAYERS)
        abort();
    qat_rt_layer_desc *l = &m->layers[m->desc.num_layers++];
    memset(l, 0, sizeof *l);
    l->op = op;
    snprintf(l->name, sizeof l->name, "%s", name);
    l->in_h = m->cur_h;
    l->in_w = m->cur_w;
    l->in_c = m->cur_c;
    l->input_scale = m->scale;
    l->input_zero_point = m->zp;
    l->output_scale = m->scale;
    l->output_zero_point = m->zp;
    l->kernel_h = l->kernel_w = l->stride_h = l->stride_w = 1;
    l->act_min = -128;
    l->act_max = 127;
    return l;
}

static inline void fx_commit(fx_model *m, qat_rt_layer_desc *l)
{
    m->cur_h = l->out_h;
    m->cur_w = l->out_w;
    m->cur_c = l->out_c;
    m->scale = l->output_scale;
    m->zp = l->output_zero_point;
}

/* FORMAT.md packing, written independently of the runtime's packer. */
static inline size_t fx_pack(const int8_t *w, size_t n, int bits, uint8_t **out)
{
    int slot = bits >= 5 ? 8 : bits >= 3 ? 4 : 2;
    size_t per = 8 / (size_t)slot, bytes = (n + per - 1) / per;
    uint8_t *p = calloc(bytes, 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v = (unsigned)(w[i] & ((1 << slot) - 1));
        p[i / per] = (uint8_t)(p[i / per] | (v << ((i % per) * (size_t)slot)));
    }
    *out = p;
    return bytes;
}

/* Weights, zero points, biases and requantization for a conv/linear layer.
 * wzp_spread > 0 gives nonzero weight zero points; act_bits < 8 narrows the
 * output range (b-bit activations in an int8 container). */
static inline void fx_fill_weights(fx_model *m, qat_rt_layer_desc *l, int bits, int relu,
                                   int act_bits, int wzp_spread)
{
    int li = m->desc.num_layers - 1;
    size_t k = (size_t)l->kernel_h * (size_t)l->kernel_w *
               (size_t)(l->in_c / (l->groups > 1 ? l->groups : 1));
    size_t oc = (size_t)l->out_c, n = k * oc;
    int32_t wmin = -(1 << (bits - 1)), wmax = (1 << (bits - 1)) - 1;
    m->w[li] = malloc(n);
    m->wzp[li] = malloc(oc * sizeof(int32_t));
    m->bias[li] = malloc(oc * sizeof(int32_t));
    m->mult[li] = malloc(oc * sizeof(int32_t));
    m->shift[li] = malloc(oc * sizeof(int32_t));
    m->wscale[li] = malloc(oc * sizeof(float));
    for (size_t i = 0; i < n; i++)
        m->w[li][i] = (int8_t)fx_rand(m, wmin, wmax);
    int32_t amin = -(1 << (act_bits - 1)), amax = (1 << (act_bits - 1)) - 1;
    l->output_zero_point = fx_rand(m, amin / 4, amax / 4);
    l->output_scale = 0.01f + 0.001f * (float)fx_rand(m, 0, 50);
    l->act_min = relu ? l->output_zero_point : amin;
    l->act_max = amax;
    double typical = sqrt((double)k) * (double)(1 << (bits - 1)) * 70.0;
    for (size_t c = 0; c < oc; c++) {
        m->wzp[li][c] = wzp_spread ? fx_rand(m, -wzp_spread, wzp_spread) : 0;
        if (m->wzp[li][c] < wmin)
            m->wzp[li][c] = wmin;
        if (m->wzp[li][c] > wmax)
            m->wzp[li][c] = wmax;
        m->bias[li][c] = fx_rand(m, -3000, 3000);
        /* spread outputs over the int8 range; channel 0 uses a left shift */
        double M = c == 0 ? 1.5 + (double)fx_rand(m, 0, 10) : 60.0 / typical *
                                                              (0.5 + qat_rng_uniform(&m->rng));
        if (qat_fp_quantize_multiplier(M, &m->mult[li][c], &m->shift[li][c]) != 0)
            abort();
        m->wscale[li][c] = 0.01f;
    }
    l->weight_bits = bits;
    l->weights_bytes = fx_pack(m->w[li], n, bits, &m->packed[li]);
    l->weights = m->packed[li];
    l->weight_zero_point = m->wzp[li];
    l->bias = m->bias[li];
    l->multiplier = m->mult[li];
    l->shift = m->shift[li];
    l->weight_scale = m->wscale[li];
}

static inline int fx_out(int in, int k, int s, int pad) { return (in + 2 * pad - k) / s + 1; }

static inline qat_rt_layer_desc *fx_conv(fx_model *m, const char *name, int out_c, int k, int s,
                                         int pad, int bits, int relu)
{
    qat_rt_layer_desc *l = fx_push(m, QAT_RT_CONV2D, name);
    l->kernel_h = l->kernel_w = k;
    l->stride_h = l->stride_w = s;
    l->pad_h = l->pad_w = pad;
    l->out_h = fx_out(l->in_h, k, s, pad);
    l->out_w = fx_out(l->in_w, k, s, pad);
    l->out_c = out_c;
    fx_fill_weights(m, l, bits, relu, 8, 0);
    fx_commit(m, l);
    return l;
}

static inline qat_rt_layer_desc *fx_linear(fx_model *m, const char *name, int out_c, int bits,
                                           int relu)
{
    qat_rt_layer_desc *l = fx_push(m, QAT_RT_LINEAR, name);
    l->out_h = l->out_w = 1;
    l->out_c = out_c;
    fx_fill_weights(m, l, bits, relu, 8, 0);
    fx_commit(m, l);
    return l;
}

static inline qat_rt_layer_desc *fx_pool(fx_model *m, qat_rt_op op, const char *name, int k,
                                         int s)
{
    qat_rt_layer_desc *l = fx_push(m, op, name);
    l->kernel_h = l->kernel_w = k;
    l->stride_h = l->stride_w = s;
    l->out_h = fx_out(l->in_h, k, s, 0);
    l->out_w = fx_out(l->in_w, k, s, 0);
    l->out_c = l->in_c;
    fx_commit(m, l);
    return l;
}

static inline qat_rt_layer_desc *fx_flatten(fx_model *m, const char *name)
{
    qat_rt_layer_desc *l = fx_push(m, QAT_RT_FLATTEN, name);
    l->out_h = l->out_w = 1;
    l->out_c = l->in_h * l->in_w * l->in_c;
    fx_commit(m, l);
    return l;
}

static inline void fx_finish(fx_model *m) { m->desc.num_classes = m->cur_c; }

/* ---- graph layers (format version 2) ---- */

/* The next layer reads layer `from` (-1: the model input) instead of the
 * last one; fx_push then records it as the layer's input 0. */
static inline void fx_from(fx_model *m, int from)
{
    const qat_rt_layer_desc *s = from >= 0 ? &m->layers[from] : NULL;
    m->cur_h = s ? s->out_h : m->desc.in_h;
    m->cur_w = s ? s->out_w : m->desc.in_w;
    m->cur_c = s ? s->out_c : m->desc.in_c;
    m->scale = s ? s->output_scale : m->desc.input_scale;
    m->zp = s ? s->output_zero_point : m->desc.input_zero_point;
}

static inline void fx_inputs(qat_rt_layer_desc *l, int n, const int *src)
{
    l->num_inputs = n;
    for (int k = 0; k < n; k++)
        l->inputs[k] = src[k];
}

/* A conv with `groups` groups (groups = in_c: depthwise) reading `from`. */
static inline qat_rt_layer_desc *fx_gconv(fx_model *m, const char *name, int from, int out_c,
                                          int k, int s, int pad, int groups, int bits, int relu)
{
    fx_from(m, from);
    qat_rt_layer_desc *l = fx_push(m, QAT_RT_CONV2D, name);
    fx_inputs(l, 1, &from);
    l->groups = groups;
    l->kernel_h = l->kernel_w = k;
    l->stride_h = l->stride_w = s;
    l->pad_h = l->pad_w = pad;
    l->out_h = fx_out(l->in_h, k, s, pad);
    l->out_w = fx_out(l->in_w, k, s, pad);
    l->out_c = out_c;
    fx_fill_weights(m, l, bits, relu, 8, 2);
    fx_commit(m, l);
    return l;
}

/* add / concat / global_avgpool of the layers src[0 .. n), with their own
 * output scale and multipliers from the scales as the exporter derives them
 * (ARITHMETIC.md 4.1); relu6 != 0 clamps at the code of 6. */
static inline qat_rt_layer_desc *fx_merge(fx_model *m, qat_rt_op op, const char *name, int n,
                                          const int *src, int relu, int relu6)
{
    fx_from(m, src[0]);
    qat_rt_layer_desc *l = fx_push(m, op, name);
    fx_inputs(l, n, src);
    int li = m->desc.num_layers - 1;
    m->mult[li] = malloc(4 * sizeof(int32_t));
    m->shift[li] = malloc(4 * sizeof(int32_t));
    int32_t *mu = m->mult[li], *sh = m->shift[li];
    l->multiplier = mu;
    l->shift = sh;
    l->output_scale = 0.02f + 0.002f * (float)fx_rand(m, 0, 40);
    l->output_zero_point = fx_rand(m, -20, 20);
    l->act_min = relu ? l->output_zero_point : -128;
    l->act_max = 127;
    if (relu6) {
        long six = l->output_zero_point + lround(6.0 / (double)l->output_scale);
        l->act_max = six < l->act_max ? (int32_t)(six < l->act_min ? l->act_min : six) : 127;
    }
    double so = l->output_scale, sc[QAT_RT_MAX_INPUTS];
    int oc = 0;
    for (int k = 0; k < n; k++) {
        const qat_rt_layer_desc *s = src[k] >= 0 ? &m->layers[src[k]] : NULL;
        sc[k] = s ? s->output_scale : m->desc.input_scale;
        oc += s ? s->out_c : m->desc.in_c;
    }
    int bad = 0;
    if (op == QAT_RT_ADD) {
        double t = 2.0 * (sc[0] > sc[1] ? sc[0] : sc[1]);
        bad |= qat_fp_quantize_multiplier(sc[0] / t, &mu[0], &sh[0]);
        bad |= qat_fp_quantize_multiplier(sc[1] / t, &mu[1], &sh[1]);
        bad |= qat_fp_quantize_multiplier(t / ((double)(1 << 20) * so), &mu[2],
                                          &sh[2]);
        l->out_h = l->in_h, l->out_w = l->in_w, l->out_c = l->in_c;
    } else if (op == QAT_RT_CONCAT) {
        for (int k = 0; k < n; k++)
            bad |= qat_fp_quantize_multiplier(sc[k] / so, &mu[k], &sh[k]);
        l->out_h = l->in_h, l->out_w = l->in_w, l->out_c = oc;
    } else {
        bad |= qat_fp_quantize_multiplier(sc[0] / ((double)l->in_h * l->in_w * so),
                                          &mu[0], &sh[0]);
        l->out_h = l->out_w = 1, l->out_c = l->in_c;
    }
    if (bad)
        abort();
    fx_commit(m, l);
    return l;
}

/* A small residual + depthwise-separable + concat network over awkward
 * sizes: every graph op, inputs reaching back over several layers, the
 * model input read twice, a stride-2 depthwise conv and relu6. */
static inline void fx_build_graph_hwc(fx_model *m, int h, int w, int c, uint64_t seed, int bits)
{
    fx_begin(m, h, w, c, seed);
    m->desc.version = 2;
    fx_conv(m, "stem", 6, 3, 1, 1, bits, 1);                       /* 0: 11x9x6 */
    fx_gconv(m, "dw", 0, 12, 3, 1, 1, 6, bits, 1);                 /* 1: depthwise x2 */
    fx_gconv(m, "pw", 1, 6, 1, 1, 0, 1, bits, 0);                  /* 2: pointwise */
    fx_merge(m, QAT_RT_ADD, "res", 2, (int[]){2, 0}, 1, 0);        /* 3: 11x9x6 */
    fx_gconv(m, "grp", -1, 6, 3, 2, 1, c, bits, 1);                /* 4: 6x5x6 from input */
    fx_gconv(m, "dw2", 3, 6, 3, 2, 1, 6, bits, 1);                 /* 5: 6x5x6, stride 2 */
    fx_merge(m, QAT_RT_CONCAT, "cat", 3, (int[]){5, 4, 5}, 0, 1);  /* 6: 6x5x18, relu6 */
    fx_merge(m, QAT_RT_GLOBAL_AVGPOOL, "gap", 1, (int[]){6}, 0, 0); /* 7: 1x1x18 */
    fx_linear(m, "fc", 10, bits, 0);                               /* 8 */
    fx_finish(m);
}

static inline void fx_build_graph(fx_model *m, uint64_t seed, int bits)
{
    fx_build_graph_hwc(m, 11, 9, 3, seed, bits);
}


static inline void fx_free(fx_model *m)
{
    for (int i = 0; i < FX_MAX_LAYERS; i++) {
        free(m->w[i]);
        free(m->packed[i]);
        free(m->wzp[i]);
        free(m->bias[i]);
        free(m->mult[i]);
        free(m->shift[i]);
        free(m->wscale[i]);
    }
}

/* The conv2d/linear/maxpool/avgpool example network of the tests: odd
 * spatial sizes, channels 1 -> 7 -> 33, padding, strides, relu. */
static inline void fx_build_cnn(fx_model *m, uint64_t seed, int bits)
{
    fx_begin(m, 13, 11, 1, seed);
    fx_conv(m, "conv1", 7, 3, 1, 1, bits, 1);          /* 13x11x7 */
    fx_pool(m, QAT_RT_MAXPOOL2D, "pool1", 2, 2);       /* 6x5x7 */
    fx_conv(m, "conv2", 33, 3, 2, 1, bits, 0);         /* 3x3x33 */
    fx_pool(m, QAT_RT_AVGPOOL2D, "pool2", 2, 1);       /* 2x2x33 */
    fx_flatten(m, "flatten");                          /* 1x1x132 */
    fx_linear(m, "fc", 10, bits, 0);
    fx_finish(m);
}

static inline void fx_images(uint64_t seed, uint8_t *px, size_t n)
{
    qat_rng r;
    qat_rng_seed(&r, seed, 3);
    for (size_t i = 0; i < n; i++) {
        uint32_t v = qat_rng_u32(&r);
        /* plenty of both extremes, as real images have */
        px[i] = (uint8_t)((v & 3) == 0 ? 0 : (v & 3) == 1 ? 255 : (v >> 8) & 255);
    }
}

/* ---- the naive oracle: one image, int32 tensors, no tricks ---- */

static inline int32_t fx_clamp8(long long v) { return v < -128 ? -128 : v > 127 ? 127 : (int32_t)v; }

/* ARITHMETIC.md §7 for layer l on one image's int8 input x: out gets
 * out_h * out_w * out_c int8 codes, or floats (fout non-NULL). Each product
 * goes through a volatile so no compiler fuses it into the sum. */
static inline void fx_float_oracle(const qat_rt_layer_desc *l, const int8_t *x, int8_t *out,
                                   float *fout)
{
    const int K = l->kernel_h * l->kernel_w * l->in_c;
    for (int oy = 0; oy < l->out_h; oy++)
        for (int ox = 0; ox < l->out_w; ox++)
            for (int c = 0; c < l->out_c; c++) {
                float acc = 0.0f;
                int j = 0;
                for (int ky = 0; ky < l->kernel_h; ky++)
                    for (int kx = 0; kx < l->kernel_w; kx++)
                        for (int ci = 0; ci < l->in_c; ci++, j++) {
                            int iy = oy * l->stride_h - l->pad_h + ky;
                            int ix = ox * l->stride_w - l->pad_w + kx;
                            float v = 0.0f;
                            if (iy >= 0 && iy < l->in_h && ix >= 0 && ix < l->in_w)
                                v = (float)(x[(iy * l->in_w + ix) * l->in_c + ci] -
                                            l->input_zero_point) *
                                    l->input_scale;
                            volatile float p = l->float_weights[(size_t)c * (size_t)K +
                                                                (size_t)j] *
                                               v;
                            acc += p;
                        }
                float y = acc + l->float_bias[c];
                if (l->float_act != QAT_RT_FLOAT_ACT_NONE && !(y > 0.0f))
                    y = 0.0f;
                if (l->float_act == QAT_RT_FLOAT_ACT_RELU6 && y > 6.0f)
                    y = 6.0f;
                size_t o = ((size_t)oy * (size_t)l->out_w + (size_t)ox) * (size_t)l->out_c +
                           (size_t)c;
                if (fout)
                    fout[o] = y;
                else
                    out[o] = (int8_t)qat_fp_quantize(y, l->output_scale, l->output_zero_point,
                                                     l->act_min, l->act_max);
            }
}

/* Returns 0 on success, -1 if an accumulator left int32 (a test failure).
 * Keeps every layer's output, so graph layers read what they name. A
 * float layer (float_fixture.h) runs fx_float_oracle; flogits (may be
 * NULL) gets the logits of a model whose last layer is float. */
static inline int fx_oracle_f(const fx_model *m, const uint8_t *px, int8_t *logits,
                              float *flogits)
{
    const qat_rt_model_desc *d = &m->desc;
    int32_t *outs[FX_MAX_LAYERS + 1]; /* [0] the model input, [i + 1] layer i */
    int32_t zps[FX_MAX_LAYERS + 1];
    size_t isz = (size_t)d->in_h * (size_t)d->in_w * (size_t)d->in_c;
    outs[0] = malloc(isz * sizeof(int32_t));
    zps[0] = d->input_zero_point;
    for (size_t i = 0; i < isz; i++)
        outs[0][i] = (int32_t)px[i] - 128;
    int rc = 0;
    for (int li = 0; li < d->num_layers; li++) {
        const qat_rt_layer_desc *l = &d->layers[li];
        const int H = l->in_h, W = l->in_w, C = l->in_c;
        const int g = l->op == QAT_RT_CONV2D && l->groups > 1 ? l->groups : 1;
        const int cg = C / g, og = l->out_c / g;
        int src[QAT_RT_MAX_INPUTS], n = l->num_inputs ? l->num_inputs : 1;
        for (int k = 0; k < n; k++)
            src[k] = (l->num_inputs ? l->inputs[k] : li - 1) + 1;
        const int32_t *x = outs[src[0]];
        int32_t *y = malloc((size_t)l->out_h * l->out_w * l->out_c * sizeof *y);
        outs[li + 1] = y;
        zps[li + 1] = l->output_zero_point;
#define AT(t, yy, xx, cc, WW, CC) (t)[((size_t)(yy) * (WW) + (xx)) * (CC) + (cc)]
        if (l->is_float) {
            size_t ni = (size_t)H * W * C, no = (size_t)l->out_h * l->out_w * l->out_c;
            int8_t *x8 = malloc(ni), *y8 = malloc(no);
            for (size_t i = 0; i < ni; i++)
                x8[i] = (int8_t)x[i];
            int last = li == d->num_layers - 1;
            fx_float_oracle(l, x8, y8, last ? flogits : NULL);
            for (size_t i = 0; i < no; i++)
                y[i] = last && flogits ? 0 : y8[i];
            free(x8);
            free(y8);
            continue;
        }
        switch (l->op) {
        case QAT_RT_CONV2D:
        case QAT_RT_LINEAR:
            for (int oy = 0; oy < l->out_h; oy++)
                for (int ox = 0; ox < l->out_w; ox++)
                    for (int oc = 0; oc < l->out_c; oc++) {
                        long long acc = l->bias[oc];
                        for (int ky = 0; ky < l->kernel_h; ky++)
                            for (int kx = 0; kx < l->kernel_w; kx++)
                                for (int j = 0; j < cg; j++) {
                                    int ic = oc / og * cg + j;
                                    int iy = oy * l->stride_h - l->pad_h + ky;
                                    int ix = ox * l->stride_w - l->pad_w + kx;
                                    int32_t xv = (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                                     ? l->input_zero_point
                                                     : AT(x, iy, ix, ic, W, C);
                                    int32_t wv = m->w[li][(((size_t)oc * l->kernel_h + ky) *
                                                               l->kernel_w + kx) * cg + j];
                                    acc += (long long)(wv - m->wzp[li][oc]) *
                                           (xv - l->input_zero_point);
                                }
                        if (acc < INT32_MIN || acc > INT32_MAX)
                            rc = -1;
                        AT(y, oy, ox, oc, l->out_w, l->out_c) = qat_fp_requantize(
                            (int32_t)acc, l->multiplier[oc], l->shift[oc],
                            l->output_zero_point, l->act_min, l->act_max);
                    }
            break;
        case QAT_RT_MAXPOOL2D:
        case QAT_RT_AVGPOOL2D:
            for (int oy = 0; oy < l->out_h; oy++)
                for (int ox = 0; ox < l->out_w; ox++)
                    for (int c = 0; c < C; c++) {
                        int32_t mx = -1000, sum = 0;
                        for (int ky = 0; ky < l->kernel_h; ky++)
                            for (int kx = 0; kx < l->kernel_w; kx++) {
                                int32_t v = AT(x, oy * l->stride_h + ky, ox * l->stride_w + kx,
                                               c, W, C);
                                mx = v > mx ? v : mx;
                                sum += v - l->input_zero_point;
                            }
                        AT(y, oy, ox, c, l->out_w, C) =
                            l->op == QAT_RT_MAXPOOL2D
                                ? mx
                                : fx_clamp8(l->output_zero_point +
                                            qat_fp_div_round(sum, l->kernel_h * l->kernel_w));
                    }
            break;
        case QAT_RT_FLATTEN:
            memcpy(y, x, (size_t)H * W * C * sizeof *y);
            break;
        case QAT_RT_ADD: /* ARITHMETIC.md 4.1, spelled out */
            for (size_t i = 0; i < (size_t)H * W * C; i++) {
                int64_t r[2];
                for (int k = 0; k < 2; k++) {
                    int64_t v = (int64_t)(outs[src[k]][i] - zps[src[k]]) * (1 << 20);
                    r[k] = qat_fp_rdpot(qat_fp_srdhm((int32_t)v, l->multiplier[k]), -l->shift[k]);
                }
                if (r[0] + r[1] < INT32_MIN || r[0] + r[1] > INT32_MAX)
                    rc = -1;
                y[i] = qat_fp_requantize((int32_t)(r[0] + r[1]), l->multiplier[2], l->shift[2],
                                         l->output_zero_point, l->act_min, l->act_max);
            }
            break;
        case QAT_RT_CONCAT:
            for (size_t p = 0; p < (size_t)H * W; p++)
                for (int k = 0, off = 0; k < n; k++) {
                    int ck = src[k] ? d->layers[src[k] - 1].out_c : d->in_c;
                    for (int c = 0; c < ck; c++)
                        y[p * l->out_c + off + c] = qat_fp_requantize(
                            outs[src[k]][p * ck + c] - zps[src[k]], l->multiplier[k],
                            l->shift[k], l->output_zero_point, l->act_min, l->act_max);
                    off += ck;
                }
            break;
        case QAT_RT_GLOBAL_AVGPOOL:
            for (int c = 0; c < C; c++) {
                long long sum = 0;
                for (size_t p = 0; p < (size_t)H * W; p++)
                    sum += x[p * C + c] - l->input_zero_point;
                y[c] = qat_fp_requantize((int32_t)sum, l->multiplier[0], l->shift[0],
                                         l->output_zero_point, l->act_min, l->act_max);
            }
            break;
        }
#undef AT
    }
    for (int c = 0; c < d->num_classes; c++)
        logits[c] = (int8_t)outs[d->num_layers][c];
    for (int i = 0; i <= d->num_layers; i++)
        free(outs[i]);
    return rc;
}

static inline int fx_oracle(const fx_model *m, const uint8_t *px, int8_t *logits)
{
    return fx_oracle_f(m, px, logits, NULL);
}

/* Runs the model through the runtime with the given threads and batch. */
static inline qat_status fx_run(const qat_rt_model *rm, int threads, int max_batch,
                                const uint8_t *px, int n, int8_t *logits, qat_error *err)
{
    qat_rt_options o = {.threads = threads, .max_batch = max_batch};
    qat_rt_session *s = NULL;
    qat_status st = qat_rt_session_create(rm, &o, &s, err);
    if (st)
        return st;
    st = qat_rt_run(s, px, n, logits, err);
    qat_rt_session_destroy(s);
    return st;
}

#endif
