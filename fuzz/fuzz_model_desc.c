/* libFuzzer target: the runtime's validator and executor on model
 * descriptions decoded from the input, without HDF5 in the way (a crafted
 * file reaches exactly these structs, so every field is fair game).
 *
 * Each field is derived from the previous layer, or from the formula the
 * validator checks, unless a per-layer flag bit asks for the raw input
 * value: most inputs are then nearly valid and reach the deep checks (the
 * weight range scan, the accumulator bound, the kernels) instead of dying on
 * the first shape check. Array lengths always honour the API contract
 * (weights_bytes bytes, out_c entries), as a file reader must. */
#include <math.h>

#include "fuzz_run.h"

#define MAX_LAYERS 8
#define RAW_CAP_BYTES (1u << 20)
#define RAW_CAP_CHANNELS 4096

typedef struct src {
    const uint8_t *p;
    size_t n;
} src;

static unsigned u8(src *s)
{
    if (!s->n)
        return 0;
    s->n--;
    return *s->p++;
}

static int32_t i32(src *s)
{
    uint32_t v = u8(s);
    v |= (uint32_t)u8(s) << 8;
    v |= (uint32_t)u8(s) << 16;
    v |= (uint32_t)u8(s) << 24;
    return (int32_t)v;
}

static float scale(src *s)
{
    static const float table[] = {1.0f / 255.0f, 0.01f, 0.05f, 0.5f, 1.0f, 3e-5f, 0.0f,
                                  -1.0f,         NAN,   INFINITY, 1e-38f, 1e38f, 2.0f, 0.1f};
    return table[u8(s) % (sizeof table / sizeof table[0])];
}

enum {
    RAW_IN = 1,      /* input shape not chained from the previous layer */
    RAW_OUT = 2,     /* output shape not from the window formula */
    RAW_BYTES = 4,   /* weights_bytes not from the packing rule */
    RAW_QUANT = 8,   /* zero points / scales not chained */
    NULL_ARRAY = 16, /* one per-channel array missing */
    RAW_VALUES = 32, /* per-channel values unconstrained */
    NO_WZP = 64,     /* weight_zero_point NULL (all zero) */
    RAW_WINDOW = 128 /* kernel/stride/pad unconstrained */
};

typedef struct owned {
    uint8_t *w[MAX_LAYERS];
    int32_t *arr[MAX_LAYERS][4];
    float *ws[MAX_LAYERS];
} owned;

static int small_dim(src *s) { return 1 + (int)(u8(s) % 12); }

static void layer(src *s, qat_rt_layer_desc *l, int i, int *h, int *w, int *c, float *sc,
                  int32_t *zp, owned *o)
{
    unsigned flags = u8(s);
    memset(l, 0, sizeof *l);
    l->op = (qat_rt_op)(u8(s) % 7); /* 0 and 6 are not ops */
    snprintf(l->name, sizeof l->name, "l%d", i);
    if (u8(s) == 0xff)
        memset(l->name, 'x', sizeof l->name); /* unterminated */
    l->in_h = *h;
    l->in_w = *w;
    l->in_c = *c;
    if (flags & RAW_IN) {
        l->in_h = i32(s);
        l->in_w = i32(s);
        l->in_c = i32(s);
    }
    l->input_scale = *sc;
    l->input_zero_point = *zp;
    if (flags & RAW_QUANT) {
        l->input_scale = scale(s);
        l->input_zero_point = (int8_t)u8(s) * ((u8(s) & 1) ? 3 : 1);
    }
    l->kernel_h = l->kernel_w = l->stride_h = l->stride_w = 1;
    if (l->op == QAT_RT_CONV2D || l->op == QAT_RT_MAXPOOL2D || l->op == QAT_RT_AVGPOOL2D) {
        l->kernel_h = 1 + (int)(u8(s) % 5);
        l->kernel_w = 1 + (int)(u8(s) % 5);
        l->stride_h = 1 + (int)(u8(s) % 3);
        l->stride_w = 1 + (int)(u8(s) % 3);
        if (l->op == QAT_RT_CONV2D) {
            l->pad_h = (int)(u8(s) % (unsigned)l->kernel_h);
            l->pad_w = (int)(u8(s) % (unsigned)l->kernel_w);
        }
        if (flags & RAW_WINDOW) {
            l->kernel_h = i32(s);
            l->stride_w = i32(s);
            l->pad_h = i32(s);
        }
    }
    /* the shape the validator would accept */
    switch (l->op) {
    case QAT_RT_CONV2D:
    case QAT_RT_MAXPOOL2D:
    case QAT_RT_AVGPOOL2D: {
        long long sh = (long long)l->in_h + 2LL * l->pad_h - l->kernel_h;
        long long sw = (long long)l->in_w + 2LL * l->pad_w - l->kernel_w;
        l->out_h = l->stride_h > 0 && sh >= 0 ? (int)(sh / l->stride_h + 1) : 1;
        l->out_w = l->stride_w > 0 && sw >= 0 ? (int)(sw / l->stride_w + 1) : 1;
        l->out_c = l->op == QAT_RT_CONV2D ? 1 + (int)(u8(s) % 16) : l->in_c;
        break;
    }
    case QAT_RT_LINEAR:
        l->out_h = l->out_w = 1;
        l->out_c = 1 + (int)(u8(s) % 16);
        break;
    default: /* flatten and the non-ops */
        l->out_h = l->out_w = 1;
        l->out_c = (int)((unsigned long long)(unsigned)l->in_h * (unsigned)l->in_w *
                         (unsigned)l->in_c);
        break;
    }
    if (flags & RAW_OUT) {
        l->out_h = i32(s);
        l->out_w = i32(s);
        l->out_c = (int)(u8(s) % 32);
    }
    l->output_scale = l->input_scale;
    l->output_zero_point = l->input_zero_point;
    if (l->op == QAT_RT_CONV2D || l->op == QAT_RT_LINEAR || (flags & RAW_QUANT)) {
        l->output_scale = scale(s);
        l->output_zero_point = (int8_t)u8(s);
    }
    if (l->op == QAT_RT_CONV2D || l->op == QAT_RT_LINEAR) {
        l->weight_bits = 2 + (int)(u8(s) % 7);
        if (flags & RAW_VALUES)
            l->weight_bits = (int)(u8(s) % 12) - 1;
        l->act_min = (int8_t)u8(s);
        l->act_max = (int8_t)u8(s);
        if (l->act_min > l->act_max && !(flags & RAW_VALUES)) {
            int32_t t = l->act_min;
            l->act_min = l->act_max;
            l->act_max = t;
        }
        /* arrays sized as the contract says; shapes the validator refuses
         * anyway get no arrays rather than absurd allocations */
        int sane = l->kernel_h > 0 && l->kernel_h <= QAT_RT_MAX_DIM && l->kernel_w > 0 &&
                   l->kernel_w <= QAT_RT_MAX_DIM && l->in_c > 0 && l->in_c <= QAT_RT_MAX_DIM &&
                   l->out_c > 0 && l->out_c <= RAW_CAP_CHANNELS;
        unsigned long long count = sane ? (unsigned long long)l->kernel_h *
                                              (unsigned long long)l->kernel_w *
                                              (unsigned long long)l->in_c *
                                              (unsigned long long)l->out_c
                                        : 0;
        sane = sane && count <= RAW_CAP_BYTES * 4ULL;
        if (sane) {
            size_t bytes = qat_rt_packed_weight_bytes((size_t)count, l->weight_bits);
            if (flags & RAW_BYTES)
                bytes = (size_t)(u8(s) | (u8(s) << 8));
            if (bytes > RAW_CAP_BYTES)
                bytes = RAW_CAP_BYTES;
            l->weights_bytes = bytes;
            o->w[i] = malloc(bytes ? bytes : 1);
            for (size_t b = 0; b < bytes; b++)
                o->w[i][b] = (uint8_t)u8(s);
            /* keep the last byte's padding clean unless values are raw */
            size_t oc = (size_t)l->out_c;
            for (int a = 0; a < 4; a++)
                o->arr[i][a] = malloc(oc * sizeof(int32_t));
            o->ws[i] = malloc(oc * sizeof(float));
            for (size_t ch = 0; ch < oc; ch++) {
                int32_t wzp = (int8_t)u8(s) >> (l->weight_bits > 0 && l->weight_bits < 8 ? 8 - l->weight_bits : 0);
                int32_t bias = i32(s) >> (u8(s) % 32);
                int32_t mult = i32(s) & 0x7fffffff;
                int32_t shift = (int8_t)u8(s) % 32;
                if (flags & RAW_VALUES) {
                    wzp = i32(s);
                    mult = i32(s);
                    shift = i32(s);
                }
                o->arr[i][0][ch] = wzp;
                o->arr[i][1][ch] = bias;
                o->arr[i][2][ch] = mult;
                o->arr[i][3][ch] = shift;
                o->ws[i][ch] = (flags & RAW_VALUES) ? scale(s) : 0.01f;
            }
            l->weights = o->w[i];
            l->weight_zero_point = (flags & NO_WZP) ? NULL : o->arr[i][0];
            l->bias = o->arr[i][1];
            l->multiplier = o->arr[i][2];
            l->shift = o->arr[i][3];
            l->weight_scale = o->ws[i];
            if (flags & NULL_ARRAY) {
                switch (u8(s) % 5) {
                case 0: l->weights = NULL; break;
                case 1: l->bias = NULL; break;
                case 2: l->multiplier = NULL; break;
                case 3: l->shift = NULL; break;
                default: l->weight_scale = NULL; break;
                }
            }
        }
    }
    *h = l->out_h;
    *w = l->out_w;
    *c = l->out_c;
    *sc = l->output_scale;
    *zp = l->output_zero_point;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    src s = {data, size};
    qat_rt_model_desc d;
    memset(&d, 0, sizeof d);
    qat_rt_layer_desc layers[MAX_LAYERS];
    memset(layers, 0, sizeof layers); /* a lying num_layers meets zeroed layers */
    owned o;
    memset(&o, 0, sizeof o);
    unsigned hdr = u8(&s);
    d.version = (hdr & 1) ? (int)u8(&s) : QAT_RT_FORMAT_VERSION;
    d.in_h = small_dim(&s);
    d.in_w = small_dim(&s);
    d.in_c = 1 + (int)(u8(&s) % 4);
    if (hdr & 2) {
        d.in_h = i32(&s);
        d.in_c = i32(&s);
    }
    d.input_scale = (hdr & 4) ? scale(&s) : 1.0f / 255.0f;
    d.input_zero_point = (hdr & 8) ? (int8_t)u8(&s) : -128;
    d.num_layers = 1 + (int)(u8(&s) % MAX_LAYERS);
    int threads = 1 + (int)((hdr >> 4) & 1);
    int h = d.in_h, w = d.in_w, c = d.in_c;
    float sc = d.input_scale;
    int32_t zp = d.input_zero_point;
    for (int i = 0; i < d.num_layers; i++)
        layer(&s, &layers[i], i, &h, &w, &c, &sc, &zp, &o);
    d.num_classes = (hdr & 32) ? (int)(u8(&s) % 20) : c;
    d.layers = layers;
    if (hdr & 64)
        d.num_layers = (int)u8(&s) - 100; /* lies about the count: must stay in bounds */
    if (d.num_layers > MAX_LAYERS)
        d.num_layers = MAX_LAYERS; /* the array really holds MAX_LAYERS at most */

    qat_error err;
    qat_error_clear(&err);
    qat_status st = qat_rt_model_validate(&d, &err);
    if (st != QAT_OK && err.msg[0] == '\0')
        abort();
    if (st == QAT_OK)
        fuzz_build_and_run(&d, data, size, threads);
    for (int i = 0; i < MAX_LAYERS; i++) {
        free(o.w[i]);
        for (int a = 0; a < 4; a++)
            free(o.arr[i][a]);
        free(o.ws[i]);
    }
    return 0;
}
