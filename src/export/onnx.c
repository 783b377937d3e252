/* Integer model -> ONNX (docs/ONNX.md). Walks the layers of a validated
 * qat_rt_model_desc and emits, per layer, either the integer operators
 * (QOperator: QLinearConv, MatMulInteger + requantization, int8 MaxPool,
 * QLinearAveragePool) or float operators between QuantizeLinear and
 * DequantizeLinear (QDQ). qat is NHWC, ONNX NCHW: convolution weights are
 * transposed to OIHW, and a linear layer after a flatten gets its columns
 * permuted from qat's (y, x, c) order to ONNX's (c, y, x). */
#include "qat/export_onnx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_build.h"
#include "onnx_fit.h"

#define T_FLOAT ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
#define IN(...) ((const char *const[]){__VA_ARGS__, NULL})

/* The activation flowing between layers. QOperator: int8 codes; QDQ: the
 * float output of a DequantizeLinear. */
typedef struct flow {
    const char *name;
    int rank4;             /* N x C x H x W (else N x C) */
    int h, w, c;           /* qat's shape of the tensor */
    float scale;           /* the scale ONNX sees (may differ from qat's: avgpool) */
    int32_t zp, lo, hi;    /* zero point and the code range it can take */
    int flat_h, flat_w;    /* flattened from h x w spatial (column permutation) */
} flow;

typedef struct ctx {
    onnx_builder *b;
    qat_onnx_style style;
    qat_onnx_report *rep;
    int uses_ms; /* com.microsoft ops used */
    char msg[256];
} ctx;

int qat_onnx_style_parse(const char *s)
{
    return strcmp(s, "qoperator") == 0 ? QAT_ONNX_QOPERATOR : strcmp(s, "qdq") == 0 ? QAT_ONNX_QDQ : -1;
}

const char *qat_onnx_style_name(qat_onnx_style s)
{
    return s == QAT_ONNX_QDQ ? "QDQ" : "QOperator";
}

static const char *other_style(qat_onnx_style s) { return s == QAT_ONNX_QDQ ? "qoperator" : "qdq"; }

/* ---- weights --------------------------------------------------------------- */

/* Unpacked weights of a conv2d/linear layer in ONNX order: [oc][ic][kh][kw]
 * from qat's [oc][kh][kw][ic]. When the input was flattened from fh x fw
 * pixels, qat's input channel (y fw + x) C + c is ONNX's c fh fw + y fw + x
 * (NHWC vs NCHW order), so the input channels are permuted as well. */
static int8_t *onnx_weights(const qat_rt_layer_desc *l, int fh, int fw)
{
    size_t kh = (size_t)l->kernel_h, kw = (size_t)l->kernel_w, ic = (size_t)l->in_c;
    size_t K = kh * kw * ic, n = (size_t)l->out_c * K, sp = (size_t)fh * (size_t)fw;
    size_t C = ic / sp;
    int8_t *w = malloc(n), *o = malloc(n);
    if (!w || !o) {
        free(w);
        free(o);
        return NULL;
    }
    qat_rt_unpack_weights(l->weights, n, l->weight_bits, w);
    for (size_t oc = 0; oc < (size_t)l->out_c; oc++)
        for (size_t ci = 0; ci < ic; ci++) {
            size_t c = ci / sp, yx = ci % sp, qi = yx * C + c; /* qat's channel */
            for (size_t y = 0; y < kh; y++)
                for (size_t x = 0; x < kw; x++)
                    o[oc * K + (ci * kh + y) * kw + x] = w[oc * K + (y * kw + x) * ic + qi];
        }
    free(w);
    return o;
}

static int32_t wzp_of(const qat_rt_layer_desc *l, int c)
{
    return l->weight_zero_point ? l->weight_zero_point[c] : 0;
}

/* Reachable accumulators of channel oc for inputs in [lo, hi] (zero point
 * zp): bias plus, per weight, the extreme products (0 included: padding). */
static void acc_range(const qat_rt_layer_desc *l, const int8_t *w, size_t K, int oc, int32_t zp,
                      int32_t lo, int32_t hi, int64_t *amin, int64_t *amax)
{
    int64_t a = l->bias[oc], b = l->bias[oc];
    for (size_t k = 0; k < K; k++) {
        int64_t wv = (int64_t)w[(size_t)oc * K + k] - wzp_of(l, oc);
        int64_t p = wv * (lo - zp), q = wv * (hi - zp);
        int64_t mn = p < q ? p : q, mx = p < q ? q : p;
        a += mn < 0 ? mn : 0;
        b += mx > 0 ? mx : 0;
    }
    *amin = a < INT32_MIN ? INT32_MIN : a;
    *amax = b > INT32_MAX ? INT32_MAX : b;
}

/* Fits every output channel's float parameter (onnx_fit.c) and tallies
 * the report. */
static float *fit_layer(ctx *c, const qat_rt_layer_desc *l, const int8_t *w, const flow *in,
                        onnx_fit_mode mode)
{
    size_t K = (size_t)l->kernel_h * (size_t)l->kernel_w * (size_t)l->in_c;
    float *p = malloc((size_t)l->out_c * sizeof *p);
    if (!p)
        return NULL;
    for (int oc = 0; oc < l->out_c; oc++) {
        onnx_rq r = {l->multiplier[oc], l->shift[oc], l->output_zero_point, l->act_min,
                     l->act_max, 0, 0};
        acc_range(l, w, K, oc, in->zp, in->lo, in->hi, &r.acc_lo, &r.acc_hi);
        onnx_fit f = onnx_fit_channel(&r, mode, in->scale, l->output_scale);
        p[oc] = f.param;
        c->rep->channels++;
        c->rep->channels_exact += f.off == 0;
        c->rep->thresholds += f.thresholds;
        c->rep->thresholds_off += f.off;
    }
    return p;
}

/* ---- shared pieces ---------------------------------------------------------- */

static const char *scalar_f(ctx *c, const char *layer, const char *what, float v)
{
    return onnx_scalar_f32(c->b, onnx_str(c->b, "%s/%s", layer, what), v);
}

static const char *scalar_q(ctx *c, const char *layer, const char *what, int32_t v)
{
    return onnx_scalar_i8(c->b, onnx_str(c->b, "%s/%s", layer, what), (int8_t)v);
}

/* Clip on int8 codes to [lo, hi] when that is narrower than [floor, 127]
 * (QuantizeLinear has no bit width: this is how b-bit activations and
 * clamps other than the int8 range are expressed). Returns the output. */
static const char *clip_codes(ctx *c, const char *layer, const char *x, int32_t floor, int32_t lo,
                              int32_t hi, const char *out)
{
    if (lo <= floor && hi >= 127) {
        return NULL;
    }
    onnx_node(c->b, "Clip", NULL, onnx_str(c->b, "%s/clip", layer),
              IN(x, scalar_q(c, layer, "clip_min", lo), scalar_q(c, layer, "clip_max", hi)),
              IN(out));
    return out;
}

/* Makes the flow N x C x H x W (after a flatten or a linear). */
static void ensure_rank4(ctx *c, const char *layer, flow *f)
{
    if (f->rank4)
        return;
    int64_t shape[4] = {-1, f->c, f->h, f->w}, dims[1] = {4};
    const char *out = onnx_str(c->b, "%s/x4", layer);
    onnx_node(c->b, "Reshape", NULL, onnx_str(c->b, "%s/reshape", layer),
              IN(f->name, onnx_init_i64(c->b, onnx_str(c->b, "%s/shape", layer), shape, dims, 1)),
              IN(out));
    f->name = out;
    f->rank4 = 1;
}

/* Makes the flow N x K (a linear layer's input). */
static void ensure_rank2(ctx *c, const char *layer, flow *f)
{
    if (!f->rank4)
        return;
    const char *out = onnx_str(c->b, "%s/x2", layer);
    Onnx__NodeProto *n = onnx_node(c->b, "Flatten", NULL, onnx_str(c->b, "%s/flatten", layer),
                                   IN(f->name), IN(out));
    onnx_attr_int(c->b, n, "axis", 1);
    f->name = out;
    f->rank4 = 0;
    f->flat_h = f->h;
    f->flat_w = f->w;
}

static void pool_attrs(ctx *c, Onnx__NodeProto *n, const qat_rt_layer_desc *l)
{
    int64_t k[2] = {l->kernel_h, l->kernel_w}, s[2] = {l->stride_h, l->stride_w};
    onnx_attr_ints(c->b, n, "kernel_shape", k, 2);
    onnx_attr_ints(c->b, n, "strides", s, 2);
}

/* QDQ: QuantizeLinear (+ Clip for narrow ranges) + DequantizeLinear after a
 * float op; the codes are named `codes` (the model's logits_q at the end). */
static void qdq_pair(ctx *c, const char *layer, const char *x, float scale, int32_t zp,
                     int32_t floor, int32_t lo, int32_t hi, const char *codes, const char *out)
{
    const char *s = scalar_f(c, layer, "y_scale", scale), *z = scalar_q(c, layer, "y_zero_point", zp);
    const char *q = onnx_str(c->b, "%s/q", layer);
    const char *qname = (lo <= floor && hi >= 127) ? codes : q;
    onnx_node(c->b, "QuantizeLinear", NULL, onnx_str(c->b, "%s/quantize", layer), IN(x, s, z),
              IN(qname));
    clip_codes(c, layer, q, floor, lo, hi, codes);
    onnx_node(c->b, "DequantizeLinear", NULL, onnx_str(c->b, "%s/dequantize", layer),
              IN(codes, s, z), IN(out));
}

/* ---- conv2d / linear -------------------------------------------------------- */

/* The per-channel weight zero points as ONNX stores them (int8 [oc]; *all_zero
 * when every one is 0). ONNX Runtime's QLinearConv takes one weight zero
 * point for all channels (fold): differing ones are then subtracted from
 * the codes, which is exact when the differences fit int8. */
static qat_status weight_zero_points(ctx *c, int idx, const qat_rt_layer_desc *l, int8_t *w,
                                     size_t K, int fold, int8_t *zp, int *all_zero, qat_error *err)
{
    int same = 1;
    for (int oc = 0; oc < l->out_c; oc++) {
        zp[oc] = (int8_t)wzp_of(l, oc);
        same &= zp[oc] == zp[0];
    }
    if (fold && !same) {
        for (int oc = 0; oc < l->out_c; oc++)
            for (size_t k = 0; k < K; k++) {
                int v = w[(size_t)oc * K + k] - zp[oc];
                if (v < -128 || v > 127)
                    return qat_fail(err, QAT_EUNSUPPORTED,
                                    "layer %d '%s' (%s): per-channel weight zero points that "
                                    "differ (channel 0: %d, channel %d: %d), with codes that leave "
                                    "int8 once their zero point is taken out: the %s style's "
                                    "QLinearConv takes one weight zero point per layer in ONNX "
                                    "Runtime; export with --onnx-style %s",
                                    idx, l->name, qat_rt_op_name(l->op), zp[0], oc, zp[oc],
                                    qat_onnx_style_name(c->style), other_style(c->style));
            }
        for (int oc = 0; oc < l->out_c; oc++) {
            for (size_t k = 0; k < K; k++)
                w[(size_t)oc * K + k] = (int8_t)(w[(size_t)oc * K + k] - zp[oc]);
            zp[oc] = 0;
        }
    }
    *all_zero = 1;
    for (int oc = 0; oc < l->out_c; oc++)
        *all_zero &= zp[oc] == 0;
    return QAT_OK;
}

static qat_status emit_weighted(ctx *c, int idx, const qat_rt_layer_desc *l, flow *f,
                                const char *codes, qat_error *err)
{
    int conv = l->op == QAT_RT_CONV2D, qdq = c->style == QAT_ONNX_QDQ;
    const char *L = l->name;
    if (conv)
        ensure_rank4(c, L, f);
    else
        ensure_rank2(c, L, f);
    size_t K = (size_t)l->kernel_h * (size_t)l->kernel_w * (size_t)l->in_c;
    int oc_n = l->out_c;
    int8_t *w = onnx_weights(l, f->flat_h, f->flat_w);
    if (!w)
        return qat_fail(err, QAT_ENOMEM, "layer %d '%s': out of memory", idx, L);
    /* accumulator ranges (and so the fit) use the weights minus their zero points */
    onnx_fit_mode mode = conv || qdq ? ONNX_FIT_PRODUCT : ONNX_FIT_DIRECT;
    float *p = fit_layer(c, l, w, f, mode);
    int8_t *zps = malloc((size_t)oc_n), *wt = NULL;
    int zp_zero = 1;
    qat_status st = p && zps ? weight_zero_points(c, idx, l, w, K, conv && !qdq, zps, &zp_zero, err)
                             : qat_fail(err, QAT_ENOMEM, "out of memory");
    if (st != QAT_OK)
        goto done;
    int64_t wd[4] = {oc_n, conv ? l->in_c : (int64_t)K, l->kernel_h, l->kernel_w};
    int64_t one[1] = {oc_n};
    const char *bias = onnx_init_i32(c->b, onnx_str(c->b, "%s/bias", L), l->bias, one, 1);
    /* same shape as the per-channel scales (the ONNX rule for pairs) */
    const char *wzp = (conv && !qdq) || !zp_zero
                          ? onnx_init_i8(c->b, onnx_str(c->b, "%s/w_zero_point", L), zps, one, 1)
                          : NULL;
    int relu = l->act_min == l->output_zero_point;
    const char *y = onnx_str(c->b, "%s/y", L);
    if (qdq) {
        /* weights: int8 codes (b-bit codes clipped to their range: the bit
         * width, as Brevitas' QCDQ states it) -> DequantizeLinear per channel */
        const char *wname = onnx_init_i8(c->b, onnx_str(c->b, "%s/w", L), w, wd, conv ? 4 : 2);
        if (l->weight_bits < 8) {
            int32_t q = (1 << (l->weight_bits - 1));
            const char *wc = onnx_str(c->b, "%s/w_clipped", L);
            onnx_node(c->b, "Clip", NULL, onnx_str(c->b, "%s/w_clip", L),
                      IN(wname, scalar_q(c, L, "w_min", -q), scalar_q(c, L, "w_max", q - 1)),
                      IN(wc));
            wname = wc;
        }
        float *bs = malloc((size_t)oc_n * sizeof *bs);
        if (!bs) {
            st = qat_fail(err, QAT_ENOMEM, "out of memory");
            goto done;
        }
        for (int oc = 0; oc < oc_n; oc++)
            bs[oc] = f->scale * p[oc];
        const char *ws = onnx_init_f32(c->b, onnx_str(c->b, "%s/w_scale", L), p, one, 1);
        const char *bsn = onnx_init_f32(c->b, onnx_str(c->b, "%s/bias_scale", L), bs, one, 1);
        free(bs);
        const char *wf = onnx_str(c->b, "%s/w_dq", L), *bf = onnx_str(c->b, "%s/bias_dq", L);
        Onnx__NodeProto *n;
        n = onnx_node(c->b, "DequantizeLinear", NULL, onnx_str(c->b, "%s/w_dequantize", L),
                      zp_zero ? IN(wname, ws) : IN(wname, ws, wzp), IN(wf));
        onnx_attr_int(c->b, n, "axis", 0);
        n = onnx_node(c->b, "DequantizeLinear", NULL, onnx_str(c->b, "%s/bias_dequantize", L),
                      IN(bias, bsn), IN(bf));
        onnx_attr_int(c->b, n, "axis", 0);
        const char *v = onnx_str(c->b, "%s/%s", L, conv ? "conv" : "gemm");
        n = onnx_node(c->b, conv ? "Conv" : "Gemm", NULL, v, IN(f->name, wf, bf), IN(v));
        if (conv) {
            int64_t k[2] = {l->kernel_h, l->kernel_w}, s[2] = {l->stride_h, l->stride_w};
            int64_t pads[4] = {l->pad_h, l->pad_w, l->pad_h, l->pad_w};
            onnx_attr_ints(c->b, n, "kernel_shape", k, 2);
            onnx_attr_ints(c->b, n, "strides", s, 2);
            onnx_attr_ints(c->b, n, "pads", pads, 4);
        } else {
            onnx_attr_int(c->b, n, "transB", 1);
        }
        if (relu) {
            const char *r = onnx_str(c->b, "%s/relu", L);
            onnx_node(c->b, "Relu", NULL, r, IN(v), IN(r));
            v = r;
        }
        qdq_pair(c, L, v, l->output_scale, l->output_zero_point,
                 relu ? l->output_zero_point : -128, l->act_min, l->act_max, codes, y);
    } else if (conv) {
        const char *wname = onnx_init_i8(c->b, onnx_str(c->b, "%s/w", L), w, wd, 4);
        const char *ws = onnx_init_f32(c->b, onnx_str(c->b, "%s/w_scale", L), p, one, 1);
        int narrow = l->act_min > -128 || l->act_max < 127;
        const char *out = narrow ? onnx_str(c->b, "%s/q", L) : codes;
        Onnx__NodeProto *n = onnx_node(
            c->b, "QLinearConv", NULL, onnx_str(c->b, "%s/qlinearconv", L),
            IN(f->name, scalar_f(c, L, "x_scale", f->scale), scalar_q(c, L, "x_zero_point", f->zp),
               wname, ws, wzp, scalar_f(c, L, "y_scale", l->output_scale),
               scalar_q(c, L, "y_zero_point", l->output_zero_point), bias),
            IN(out));
        int64_t k[2] = {l->kernel_h, l->kernel_w}, s[2] = {l->stride_h, l->stride_w};
        int64_t pads[4] = {l->pad_h, l->pad_w, l->pad_h, l->pad_w};
        onnx_attr_ints(c->b, n, "kernel_shape", k, 2);
        onnx_attr_ints(c->b, n, "strides", s, 2);
        onnx_attr_ints(c->b, n, "pads", pads, 4);
        clip_codes(c, L, out, -128, l->act_min, l->act_max, codes);
    } else {
        /* MatMulInteger takes B as K x N: transpose the [oc][k] rows */
        wt = malloc((size_t)oc_n * K);
        if (!wt) {
            st = qat_fail(err, QAT_ENOMEM, "out of memory");
            goto done;
        }
        for (int oc = 0; oc < oc_n; oc++)
            for (size_t k = 0; k < K; k++)
                wt[k * (size_t)oc_n + (size_t)oc] = w[(size_t)oc * K + k];
        int64_t td[2] = {(int64_t)K, oc_n};
        const char *wname = onnx_init_i8(c->b, onnx_str(c->b, "%s/w", L), wt, td, 2);
        const char *acc = onnx_str(c->b, "%s/acc", L), *accb = onnx_str(c->b, "%s/acc_bias", L);
        const char *accf = onnx_str(c->b, "%s/acc_float", L), *yf = onnx_str(c->b, "%s/y_float", L);
        onnx_node(c->b, "MatMulInteger", NULL, onnx_str(c->b, "%s/matmulinteger", L),
                  zp_zero ? IN(f->name, wname, scalar_q(c, L, "x_zero_point", f->zp))
                          : IN(f->name, wname, scalar_q(c, L, "x_zero_point", f->zp), wzp),
                  IN(acc));
        onnx_node(c->b, "Add", NULL, onnx_str(c->b, "%s/add_bias", L), IN(acc, bias), IN(accb));
        Onnx__NodeProto *n =
            onnx_node(c->b, "Cast", NULL, onnx_str(c->b, "%s/cast", L), IN(accb), IN(accf));
        onnx_attr_int(c->b, n, "to", T_FLOAT);
        onnx_node(c->b, "Mul", NULL, onnx_str(c->b, "%s/requant_scale", L),
                  IN(accf, onnx_init_f32(c->b, onnx_str(c->b, "%s/multiplier", L), p, one, 1)),
                  IN(yf));
        int narrow = l->act_min > -128 || l->act_max < 127;
        const char *out = narrow ? onnx_str(c->b, "%s/q", L) : codes;
        onnx_node(c->b, "QuantizeLinear", NULL, onnx_str(c->b, "%s/quantize", L),
                  IN(yf, scalar_f(c, L, "unit_scale", 1.0f),
                     scalar_q(c, L, "y_zero_point", l->output_zero_point)),
                  IN(out));
        clip_codes(c, L, out, -128, l->act_min, l->act_max, codes);
    }
    f->name = qdq ? y : codes;
    f->rank4 = conv;
    f->h = l->out_h;
    f->w = l->out_w;
    f->c = l->out_c;
    f->scale = l->output_scale;
    f->zp = l->output_zero_point;
    f->lo = l->act_min;
    f->hi = l->act_max;
    f->flat_h = f->flat_w = 1;
done:
    free(w);
    free(wt);
    free(p);
    free(zps);
    return st;
}

/* ---- pools and flatten ------------------------------------------------------ */

static void emit_pool(ctx *c, const qat_rt_layer_desc *l, flow *f, const char *codes)
{
    const char *L = l->name;
    ensure_rank4(c, L, f);
    int avg = l->op == QAT_RT_AVGPOOL2D, qdq = c->style == QAT_ONNX_QDQ;
    /* an avgpool's output scale is nudged so that ORT's rounding of the
     * mean matches qat's (onnx_fit_avgpool_scale) */
    float ys = avg ? onnx_fit_avgpool_scale(f->scale, l->kernel_h * l->kernel_w) : f->scale;
    const char *y = onnx_str(c->b, "%s/y", L);
    if (qdq) {
        const char *v = onnx_str(c->b, "%s/%s", L, avg ? "averagepool" : "maxpool");
        pool_attrs(c, onnx_node(c->b, avg ? "AveragePool" : "MaxPool", NULL, v, IN(f->name), IN(v)),
                   l);
        qdq_pair(c, L, v, ys, f->zp, -128, -128, 127, codes, y);
    } else if (avg) {
        c->uses_ms = 1;
        pool_attrs(c, onnx_node(c->b, "QLinearAveragePool", "com.microsoft",
                                onnx_str(c->b, "%s/qlinearaveragepool", L),
                                IN(f->name, scalar_f(c, L, "x_scale", f->scale),
                                   scalar_q(c, L, "x_zero_point", f->zp),
                                   scalar_f(c, L, "y_scale", ys),
                                   scalar_q(c, L, "y_zero_point", f->zp)),
                                IN(codes)),
                   l);
    } else {
        pool_attrs(c, onnx_node(c->b, "MaxPool", NULL, onnx_str(c->b, "%s/maxpool", L),
                                IN(f->name), IN(codes)),
                   l);
    }
    f->name = qdq ? y : codes;
    f->h = l->out_h;
    f->w = l->out_w;
    f->scale = ys;
    if (avg) { /* qat clamps the mean to int8 only */
        f->lo = -128;
        f->hi = 127;
    }
}

/* Flatten. Consumers with weights absorb NCHW's channel order into their
 * weights (onnx_weights); when none follows, the tensor is transposed to
 * NHWC first so the outputs come in qat's order. */
static void emit_flatten(ctx *c, const qat_rt_model_desc *d, int i, flow *f, const char *codes)
{
    const char *L = d->layers[i].name;
    int weighted_after = 0;
    for (int j = i + 1; j < d->num_layers; j++)
        weighted_after |= d->layers[j].op == QAT_RT_CONV2D || d->layers[j].op == QAT_RT_LINEAR;
    if (f->rank4 && !weighted_after && f->h * f->w > 1) {
        static const int64_t nhwc[4] = {0, 2, 3, 1};
        const char *t = onnx_str(c->b, "%s/nhwc", L);
        onnx_attr_ints(c->b, onnx_node(c->b, "Transpose", NULL, t, IN(f->name), IN(t)), "perm", nhwc,
                       4);
        f->name = t;
        f->c = f->h * f->w * f->c; /* Flatten of N x H x W x C: plain order */
        f->h = f->w = 1;
    }
    ensure_rank2(c, L, f);
    f->c = f->h * f->w * f->c;
    f->h = f->w = 1;
    if (i == d->num_layers - 1) { /* the logits are this flatten's output */
        if (c->style == QAT_ONNX_QDQ)
            onnx_node(c->b, "QuantizeLinear", NULL, onnx_str(c->b, "%s/quantize", L),
                      IN(f->name, scalar_f(c, L, "y_scale", f->scale),
                         scalar_q(c, L, "y_zero_point", f->zp)),
                      IN(codes));
        else
            onnx_node(c->b, "Identity", NULL, onnx_str(c->b, "%s/identity", L), IN(f->name),
                      IN(codes));
    }
}

/* ---- the model --------------------------------------------------------------- */

static qat_status build(ctx *c, const qat_rt_model_desc *d, qat_error *err)
{
    onnx_builder *b = c->b;
    int64_t in_dims[3] = {d->in_c, d->in_h, d->in_w}, out_dims[1] = {d->num_classes};
    onnx_graph_input(b, "input", T_FLOAT, in_dims, 3,
                     "pixels / 255 in [0, 1], N x C x H x W (qat's uint8 pixel p is p / 255)");
    /* QuantizeLinear maps p / 255 to p - 128 exactly: the qat model input */
    const char *q = "input_q";
    const char *s = onnx_scalar_f32(b, "input/scale", d->input_scale);
    const char *z = onnx_scalar_i8(b, "input/zero_point", (int8_t)d->input_zero_point);
    onnx_node(b, "QuantizeLinear", NULL, "input/quantize", IN("input", s, z), IN(q));
    flow f = {q, 1, d->in_h, d->in_w, d->in_c, d->input_scale, d->input_zero_point, -128, 127, 1, 1};
    if (c->style == QAT_ONNX_QDQ) {
        onnx_node(b, "DequantizeLinear", NULL, "input/dequantize", IN(q, s, z), IN("input_dq"));
        f.name = "input_dq";
    }
    for (int i = 0; i < d->num_layers; i++) {
        const qat_rt_layer_desc *l = &d->layers[i];
        int last = i == d->num_layers - 1;
        const char *codes = last ? "logits_q" : onnx_str(b, "%s/y_q", l->name);
        qat_status st = QAT_OK;
        switch (l->op) {
        case QAT_RT_CONV2D:
        case QAT_RT_LINEAR: st = emit_weighted(c, i, l, &f, codes, err); break;
        case QAT_RT_MAXPOOL2D:
        case QAT_RT_AVGPOOL2D: emit_pool(c, l, &f, codes); break;
        case QAT_RT_FLATTEN: emit_flatten(c, d, i, &f, codes); break;
        }
        if (st != QAT_OK)
            return st;
    }
    /* logits: the last layer's codes, dequantized with qat's own scale */
    const qat_rt_layer_desc *last = &d->layers[d->num_layers - 1];
    onnx_node(b, "DequantizeLinear", NULL, "logits/dequantize",
              IN("logits_q", onnx_scalar_f32(b, "logits/scale", last->output_scale),
                 onnx_scalar_i8(b, "logits/zero_point", (int8_t)last->output_zero_point)),
              IN("logits"));
    onnx_graph_output(b, "logits", T_FLOAT, out_dims, 1,
                      "output_scale * (logits_q - output_zero_point)");
    onnx_graph_output(b, "logits_q", ONNX__TENSOR_PROTO__DATA_TYPE__INT8, out_dims, 1,
                      "int8 logit codes (qat-infer --dump-logits)");
    return QAT_OK;
}

qat_status qat_export_onnx(const qat_rt_model_desc *d, qat_onnx_style style, const char *path,
                           const char *origin, qat_onnx_report *report, qat_error *err)
{
    qat_status st = qat_rt_model_validate(d, err);
    if (st != QAT_OK)
        return st;
    qat_onnx_report rep;
    memset(&rep, 0, sizeof rep);
    ctx c = {onnx_builder_create("qat"), style, &rep, 0, {0}};
    if (!c.b)
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    st = build(&c, d, err);
    if (st == QAT_OK) {
        char doc[1024];
        snprintf(doc, sizeof doc,
                 "qat integer model%s%s, %s style. Input 'input': float32 N x %d x %d x %d, "
                 "pixels / 255. Outputs 'logits' (float32 N x %d) and 'logits_q' (int8 codes). "
                 "docs/ONNX.md",
                 origin ? " from " : "", origin ? origin : "", qat_onnx_style_name(style), d->in_c,
                 d->in_h, d->in_w, d->num_classes);
        onnx_model_info(c.b, 7, 13, c.uses_ms ? 1 : 0, "0.1.0", doc);
        st = onnx_builder_write(c.b, path, err);
    }
    if (st == QAT_OK && report) {
        *report = rep;
        onnx_builder_stats(c.b, &report->nodes, &report->initializers, &report->bytes);
    }
    onnx_builder_destroy(c.b);
    return st;
}
