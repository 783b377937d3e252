/* Integer model -> ONNX (docs/ONNX.md). Walks the layers of a validated
 * qat_rt_model_desc and emits, per layer, either the integer operators
 * (QOperator: QLinearConv, MatMulInteger + requantization, int8 MaxPool,
 * QLinearAveragePool) or float operators between QuantizeLinear and
 * DequantizeLinear (QDQ). qat is NHWC, ONNX NCHW: convolution weights are
 * transposed to OIHW, and a linear layer after a flatten gets its columns
 * permuted from qat's (y, x, c) order to ONNX's (c, y, x). */
#include "qat/export_onnx.h"

#include <math.h>
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
    qat_onnx_requant requant;
    qat_onnx_report *rep;
    int uses_ms; /* com.microsoft ops used */
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
    qat_rt_layer_weights(l, w); /* plain or palettized */
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

/* Fits every output channel (onnx_fit.c): the float parameter p[oc] and
 * the bias, moved by the chosen offset; tallies the report. */
static void fit_layer(ctx *c, const qat_rt_layer_desc *l, const int8_t *w, const flow *in,
                      int32_t *bias, float *p)
{
    size_t K = (size_t)l->kernel_h * (size_t)l->kernel_w * (size_t)l->in_c;
    for (int oc = 0; oc < l->out_c; oc++) {
        onnx_rq r = {l->multiplier[oc], l->shift[oc], l->output_zero_point, l->act_min,
                     l->act_max, 0, 0, l->bias[oc]};
        acc_range(l, w, K, oc, in->zp, in->lo, in->hi, &r.acc_lo, &r.acc_hi);
        /* the offset must keep every accumulator inside int32 */
        int max_off = r.acc_lo > INT32_MIN + 2 && r.acc_hi < INT32_MAX - 2 ? 2 : 0;
        onnx_fit f = onnx_fit_channel(&r, in->scale, l->output_scale, max_off);
        p[oc] = f.param;
        bias[oc] = l->bias[oc] + f.offset;
        c->rep->channels++;
        c->rep->channels_exact += f.off == 0;
        c->rep->thresholds += f.thresholds;
        c->rep->thresholds_off += f.off;
    }
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

/* Clip on int8 codes x to [lo, hi] into out when that is narrower than
 * [floor, 127] (QuantizeLinear has no bit width: this is how b-bit
 * activations and clamps other than the int8 range are expressed). */
static void clip_codes(ctx *c, const char *layer, const char *x, int32_t floor, int32_t lo,
                       int32_t hi, const char *out)
{
    if (lo <= floor && hi >= 127)
        return;
    onnx_node(c->b, "Clip", NULL, onnx_str(c->b, "%s/clip", layer),
              IN(x, scalar_q(c, layer, "clip_min", lo), scalar_q(c, layer, "clip_max", hi)),
              IN(out));
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
 * when every one is 0). ONNX Runtime's QLinearConv and ConvInteger take one
 * weight zero point for all channels (fold): differing ones are then
 * subtracted from the codes, which is exact when the differences fit int8. */
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
                                    "layer %d '%s' (%s): its per-channel weight zero points "
                                    "differ, and channel %d's code %d minus its zero point %d "
                                    "leaves int8: in the %s style ONNX Runtime's QLinearConv and "
                                    "ConvInteger take one weight zero point per layer; export "
                                    "with --onnx-style %s",
                                    idx, l->name, qat_rt_op_name(l->op), oc,
                                    w[(size_t)oc * K + k], zp[oc], qat_onnx_style_name(c->style),
                                    other_style(c->style));
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

/* One conv2d/linear layer's prepared parameters, in ONNX order. */
typedef struct wlayer {
    const qat_rt_layer_desc *l;
    const char *name;
    int conv, oc;
    size_t K;
    int8_t *w;      /* [oc][ic][kh][kw] or [oc][k]; zero points folded if asked */
    int8_t *zp;     /* [oc] weight zero points as exported */
    int zp_zero;    /* every exported weight zero point is 0 */
    int32_t *bias;  /* [oc], possibly moved by the fit's offset */
    float *param;   /* [oc] fitted weight scales (float requantization) */
} wlayer;

static void conv_attrs(ctx *c, Onnx__NodeProto *n, const qat_rt_layer_desc *l)
{
    int64_t k[2] = {l->kernel_h, l->kernel_w}, s[2] = {l->stride_h, l->stride_w};
    int64_t pads[4] = {l->pad_h, l->pad_w, l->pad_h, l->pad_w};
    onnx_attr_ints(c->b, n, "kernel_shape", k, 2);
    onnx_attr_ints(c->b, n, "strides", s, 2);
    onnx_attr_ints(c->b, n, "pads", pads, 4);
}

/* Per-channel constant shaped to broadcast over N x C x H x W (conv) or N x C. */
static const char *per_channel_f64(ctx *c, const wlayer *wl, const char *what, const double *v)
{
    int64_t dims[3] = {wl->oc, 1, 1};
    return onnx_init_f64(c->b, onnx_str(c->b, "%s/%s", wl->name, what), v, dims, wl->conv ? 3 : 1);
}

static const char *scalar_f64(ctx *c, const char *layer, const char *what, double v)
{
    return onnx_init_f64(c->b, onnx_str(c->b, "%s/%s", layer, what), &v, NULL, 0);
}

/* qat's fixed-point output stage written as ONNX arithmetic on the int32
 * accumulator acc (bias included), in double: exact (docs/ONNX.md):
 *   code = clamp(floor(acc M + 1/2 + sign(acc) e) , act_min - zp, act_max - zp) + zp
 * with M = m0 2^(shift - 31) and e = 2^-(r + 1) for a right shift r >= 1
 * (0 otherwise): gemmlowp's two roundings (SRDHM, then RoundingDivideByPOT)
 * are one rounding whose ties band is e wide, away from zero. */
static void emit_exact_requant(ctx *c, const wlayer *wl, const char *acc, const char *codes)
{
    const qat_rt_layer_desc *l = wl->l;
    const char *L = wl->name;
    double *M = malloc(2 * (size_t)wl->oc * sizeof *M), *E = M ? M + wl->oc : NULL;
    QAT_ASSERT(M); /* tiny: the arena aborts on OOM the same way */
    for (int oc = 0; oc < wl->oc; oc++) {
        int r = l->shift[oc] < 0 ? -l->shift[oc] : 0;
        M[oc] = ldexp((double)l->multiplier[oc], l->shift[oc] - 31);
        E[oc] = r >= 1 ? ldexp(1.0, -(r + 1)) : 0.0;
    }
    const char *m = per_channel_f64(c, wl, "multiplier", M), *e = per_channel_f64(c, wl, "tie_band", E);
    free(M);
    const char *ad = onnx_str(c->b, "%s/acc_double", L), *v = onnx_str(c->b, "%s/acc_times_m", L);
    const char *sg = onnx_str(c->b, "%s/acc_sign", L), *band = onnx_str(c->b, "%s/band", L);
    const char *half = onnx_str(c->b, "%s/band_half", L), *sum = onnx_str(c->b, "%s/unrounded", L);
    const char *fl = onnx_str(c->b, "%s/rounded", L), *cl = onnx_str(c->b, "%s/clamped", L);
    const char *z = onnx_str(c->b, "%s/code_double", L);
    onnx_attr_int(c->b, onnx_node(c->b, "Cast", NULL, ad, IN(acc), IN(ad)), "to",
                  ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE);
    onnx_node(c->b, "Mul", NULL, v, IN(ad, m), IN(v));
    onnx_node(c->b, "Sign", NULL, sg, IN(ad), IN(sg));
    onnx_node(c->b, "Mul", NULL, band, IN(sg, e), IN(band));
    onnx_node(c->b, "Add", NULL, half, IN(band, scalar_f64(c, L, "half", 0.5)), IN(half));
    onnx_node(c->b, "Add", NULL, sum, IN(v, half), IN(sum));
    onnx_node(c->b, "Floor", NULL, fl, IN(sum), IN(fl));
    int32_t zp = l->output_zero_point;
    onnx_node(c->b, "Clip", NULL, cl,
              IN(fl, scalar_f64(c, L, "code_min", l->act_min - zp),
                 scalar_f64(c, L, "code_max", l->act_max - zp)),
              IN(cl));
    onnx_node(c->b, "Add", NULL, z, IN(cl, scalar_f64(c, L, "y_zero_point_double", zp)), IN(z));
    onnx_attr_int(c->b, onnx_node(c->b, "Cast", NULL, onnx_str(c->b, "%s/cast_int8", L), IN(z),
                                  IN(codes)),
                  "to", ONNX__TENSOR_PROTO__DATA_TYPE__INT8);
}

/* QOperator, exact: MatMulInteger (linear) or ConvInteger (conv2d, which
 * ONNX Runtime has for uint8 only: codes and weights move up by 128, which
 * changes no product) for the int32 accumulator, + bias, then the exact
 * output stage. */
static void emit_integer(ctx *c, const wlayer *wl, flow *f, const char *codes)
{
    const char *L = wl->name;
    const char *acc = onnx_str(c->b, "%s/acc", L), *accb = onnx_str(c->b, "%s/acc_bias", L);
    if (wl->conv) {
        size_t n = (size_t)wl->oc * wl->K;
        uint8_t *wu = malloc(n);
        QAT_ASSERT(wu);
        for (size_t i = 0; i < n; i++)
            wu[i] = (uint8_t)(wl->w[i] + 128);
        int64_t wd[4] = {wl->oc, wl->l->in_c, wl->l->kernel_h, wl->l->kernel_w};
        const char *wname = onnx_init_u8(c->b, onnx_str(c->b, "%s/w_uint8", L), wu, wd, 4);
        free(wu);
        uint8_t xz = (uint8_t)(f->zp + 128), wz = (uint8_t)(wl->zp[0] + 128);
        const char *xf = onnx_str(c->b, "%s/x_float", L), *xu = onnx_str(c->b, "%s/x_uint8", L);
        const char *one = scalar_f(c, L, "unit_scale", 1.0f);
        onnx_node(c->b, "DequantizeLinear", NULL, xf, IN(f->name, one, scalar_q(c, L, "int8_zero", 0)),
                  IN(xf));
        onnx_node(c->b, "QuantizeLinear", NULL, xu,
                  IN(xf, one, onnx_init_u8(c->b, onnx_str(c->b, "%s/uint8_offset", L),
                                           &(uint8_t){128}, NULL, 0)),
                  IN(xu));
        conv_attrs(c, onnx_node(c->b, "ConvInteger", NULL, onnx_str(c->b, "%s/convinteger", L),
                                IN(xu, wname,
                                   onnx_init_u8(c->b, onnx_str(c->b, "%s/x_zero_point_uint8", L),
                                                &xz, NULL, 0),
                                   onnx_init_u8(c->b, onnx_str(c->b, "%s/w_zero_point_uint8", L),
                                                &wz, NULL, 0)),
                                IN(acc)),
                   wl->l);
    } else {
        /* MatMulInteger takes B as K x N: the [oc][k] rows transposed */
        size_t K = wl->K, N = (size_t)wl->oc;
        int8_t *wt = malloc(N * K);
        QAT_ASSERT(wt);
        for (size_t oc = 0; oc < N; oc++)
            for (size_t k = 0; k < K; k++)
                wt[k * N + oc] = wl->w[oc * K + k];
        int64_t td[2] = {(int64_t)K, (int64_t)N}, nd[1] = {(int64_t)N};
        const char *wname = onnx_init_i8(c->b, onnx_str(c->b, "%s/w", L), wt, td, 2);
        free(wt);
        const char *xz = scalar_q(c, L, "x_zero_point", f->zp);
        onnx_node(c->b, "MatMulInteger", NULL, onnx_str(c->b, "%s/matmulinteger", L),
                  wl->zp_zero ? IN(f->name, wname, xz)
                              : IN(f->name, wname, xz,
                                   onnx_init_i8(c->b, onnx_str(c->b, "%s/w_zero_point", L), wl->zp,
                                                nd, 1)),
                  IN(acc));
    }
    int64_t bd[3] = {wl->oc, 1, 1};
    onnx_node(c->b, "Add", NULL, onnx_str(c->b, "%s/add_bias", L),
              IN(acc, onnx_init_i32(c->b, onnx_str(c->b, "%s/bias", L), wl->bias, bd,
                                    wl->conv ? 3 : 1)),
              IN(accb));
    emit_exact_requant(c, wl, accb, codes);
}

/* QOperator, float requantization: QLinearConv with the fitted weight scales. */
static void emit_qlinearconv(ctx *c, const wlayer *wl, flow *f, const char *codes)
{
    const qat_rt_layer_desc *l = wl->l;
    const char *L = wl->name;
    int64_t wd[4] = {wl->oc, l->in_c, l->kernel_h, l->kernel_w}, one[1] = {wl->oc};
    int narrow = l->act_min > -128 || l->act_max < 127;
    const char *out = narrow ? onnx_str(c->b, "%s/q", L) : codes;
    conv_attrs(c, onnx_node(c->b, "QLinearConv", NULL, onnx_str(c->b, "%s/qlinearconv", L),
                            IN(f->name, scalar_f(c, L, "x_scale", f->scale),
                               scalar_q(c, L, "x_zero_point", f->zp),
                               onnx_init_i8(c->b, onnx_str(c->b, "%s/w", L), wl->w, wd, 4),
                               onnx_init_f32(c->b, onnx_str(c->b, "%s/w_scale", L), wl->param, one, 1),
                               /* same shape as the scales (the ONNX rule for pairs) */
                               onnx_init_i8(c->b, onnx_str(c->b, "%s/w_zero_point", L), wl->zp, one, 1),
                               scalar_f(c, L, "y_scale", l->output_scale),
                               scalar_q(c, L, "y_zero_point", l->output_zero_point),
                               onnx_init_i32(c->b, onnx_str(c->b, "%s/bias", L), wl->bias, one, 1)),
                            IN(out)),
               l);
    clip_codes(c, L, out, -128, l->act_min, l->act_max, codes);
}

/* QDQ: int8 weight codes (b-bit codes clipped to their range, which states
 * the bit width as Brevitas' QCDQ does) and int32 bias, each through
 * DequantizeLinear, into a float Conv or Gemm, [Relu], then the output's
 * QuantizeLinear (+ Clip) / DequantizeLinear pair. */
static void emit_qdq_weighted(ctx *c, const wlayer *wl, flow *f, const char *codes, const char *y)
{
    const qat_rt_layer_desc *l = wl->l;
    const char *L = wl->name;
    int64_t wd[4] = {wl->oc, wl->conv ? l->in_c : (int64_t)wl->K, l->kernel_h, l->kernel_w};
    int64_t one[1] = {wl->oc};
    const char *wname = onnx_init_i8(c->b, onnx_str(c->b, "%s/w", L), wl->w, wd, wl->conv ? 4 : 2);
    if (l->weight_bits < 8) {
        int32_t q = 1 << (l->weight_bits - 1);
        const char *wc = onnx_str(c->b, "%s/w_clipped", L);
        onnx_node(c->b, "Clip", NULL, onnx_str(c->b, "%s/w_clip", L),
                  IN(wname, scalar_q(c, L, "w_min", -q), scalar_q(c, L, "w_max", q - 1)), IN(wc));
        wname = wc;
    }
    float *bs = malloc((size_t)wl->oc * sizeof *bs);
    QAT_ASSERT(bs);
    for (int oc = 0; oc < wl->oc; oc++)
        bs[oc] = f->scale * wl->param[oc]; /* bias scale = x_scale * w_scale */
    const char *ws = onnx_init_f32(c->b, onnx_str(c->b, "%s/w_scale", L), wl->param, one, 1);
    const char *bsn = onnx_init_f32(c->b, onnx_str(c->b, "%s/bias_scale", L), bs, one, 1);
    free(bs);
    const char *wf = onnx_str(c->b, "%s/w_dq", L), *bf = onnx_str(c->b, "%s/bias_dq", L);
    onnx_attr_int(c->b,
                  onnx_node(c->b, "DequantizeLinear", NULL, onnx_str(c->b, "%s/w_dequantize", L),
                            /* the zero points given even when all 0: a pair of the
                             * scales' shape, which ONNX Runtime's fused QGemm needs */
                            IN(wname, ws,
                               onnx_init_i8(c->b, onnx_str(c->b, "%s/w_zero_point", L), wl->zp,
                                            one, 1)),
                            IN(wf)),
                  "axis", 0);
    onnx_attr_int(c->b,
                  onnx_node(c->b, "DequantizeLinear", NULL, onnx_str(c->b, "%s/bias_dequantize", L),
                            IN(onnx_init_i32(c->b, onnx_str(c->b, "%s/bias", L), wl->bias, one, 1),
                               bsn),
                            IN(bf)),
                  "axis", 0);
    const char *v = onnx_str(c->b, "%s/%s", L, wl->conv ? "conv" : "gemm");
    Onnx__NodeProto *n = onnx_node(c->b, wl->conv ? "Conv" : "Gemm", NULL, v, IN(f->name, wf, bf), IN(v));
    if (wl->conv)
        conv_attrs(c, n, l);
    else
        onnx_attr_int(c->b, n, "transB", 1);
    int relu = l->act_min == l->output_zero_point;
    if (relu) {
        const char *r = onnx_str(c->b, "%s/relu", L);
        onnx_node(c->b, "Relu", NULL, r, IN(v), IN(r));
        v = r;
    }
    qdq_pair(c, L, v, l->output_scale, l->output_zero_point, relu ? l->output_zero_point : -128,
             l->act_min, l->act_max, codes, y);
}

static qat_status emit_weighted(ctx *c, int idx, const qat_rt_layer_desc *l, flow *f,
                                const char *codes, qat_error *err)
{
    int qdq = c->style == QAT_ONNX_QDQ;
    wlayer wl = {l, l->name, l->op == QAT_RT_CONV2D, l->out_c,
                 (size_t)l->kernel_h * (size_t)l->kernel_w * (size_t)l->in_c, NULL, NULL, 1,
                 NULL, NULL};
    if (wl.conv)
        ensure_rank4(c, wl.name, f);
    else
        ensure_rank2(c, wl.name, f);
    /* linear layers always, conv2d on request, requantize exactly */
    int exact = !qdq && (!wl.conv || c->requant == QAT_ONNX_REQUANT_EXACT);
    wl.w = onnx_weights(l, f->flat_h, f->flat_w);
    wl.zp = malloc((size_t)wl.oc);
    wl.bias = malloc((size_t)wl.oc * sizeof *wl.bias);
    wl.param = malloc((size_t)wl.oc * sizeof *wl.param);
    qat_status st = QAT_OK;
    if (!wl.w || !wl.zp || !wl.bias || !wl.param) {
        st = qat_fail(err, QAT_ENOMEM, "layer %d '%s': out of memory", idx, wl.name);
        goto done;
    }
    if (exact) {
        memcpy(wl.bias, l->bias, (size_t)wl.oc * sizeof *wl.bias);
        c->rep->channels += wl.oc;
        c->rep->channels_exact += wl.oc;
    } else {
        fit_layer(c, l, wl.w, f, wl.bias, wl.param);
    }
    /* ConvInteger and QLinearConv take one weight zero point per layer */
    st = weight_zero_points(c, idx, l, wl.w, wl.K, wl.conv && !qdq, wl.zp, &wl.zp_zero, err);
    if (st != QAT_OK)
        goto done;
    const char *y = onnx_str(c->b, "%s/y", wl.name);
    if (qdq)
        emit_qdq_weighted(c, &wl, f, codes, y);
    else if (exact)
        emit_integer(c, &wl, f, codes);
    else
        emit_qlinearconv(c, &wl, f, codes);
    f->name = qdq ? y : codes;
    f->rank4 = wl.conv;
    f->h = l->out_h;
    f->w = l->out_w;
    f->c = l->out_c;
    f->scale = l->output_scale;
    f->zp = l->output_zero_point;
    f->lo = l->act_min;
    f->hi = l->act_max;
    f->flat_h = f->flat_w = 1;
done:
    free(wl.w);
    free(wl.zp);
    free(wl.bias);
    free(wl.param);
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
        default: QAT_ASSERT(!"onnx: a graph layer passed the version-1 check");
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

qat_status qat_export_onnx(const qat_rt_model_desc *d, const qat_onnx_options *opt,
                           const char *path, const char *origin, qat_onnx_report *report,
                           qat_error *err)
{
    qat_status st = qat_rt_model_validate(d, err);
    if (st != QAT_OK)
        return st;
    /* The graph's input stage is one QuantizeLinear of pixels / 255; a
     * float32-input model first subtracts a per-channel offset and divides
     * by a per-channel step (FORMAT.md §9), which that stage would drop:
     * refused rather than written as a model that computes something else. */
    if (d->input_type == QAT_RT_INPUT_FLOAT32)
        return qat_fail(err, QAT_EUNSUPPORTED,
                        "the model takes float32 features (per-channel input offset and step): "
                        "--format onnx writes only uint8-pixel models; use --format h5 or c "
                        "(qat_rt_run_float)");
    /* A float layer (FORMAT.md §11) would need its float32 sum in the
     * runtime's order (ARITHMETIC.md §7), which an ONNX runtime's MatMul /
     * Conv does not promise: refused rather than written as a model whose
     * logits differ from qat-infer's. */
    for (int i = 0; i < d->num_layers; i++)
        if (d->layers[i].is_float)
            return qat_fail(err, QAT_EUNSUPPORTED,
                            "layer %d '%s': a float layer (quantize = false) is not exported "
                            "to ONNX (its float32 summation order is not ONNX's to promise); "
                            "use --format h5 or c",
                            i, d->layers[i].name);
    for (int i = 0; i < d->num_layers; i++)
        if (qat_rt_desc_is_v2(&d->layers[i], i))
            return qat_fail(err, QAT_EUNSUPPORTED,
                            "layer %d '%s': --format onnx writes chains of version-1 layers "
                            "only; a graph model (inputs, groups, add, concat, global_avgpool) "
                            "exports with --format h5 or c",
                            i, d->layers[i].name);
    qat_onnx_report rep;
    memset(&rep, 0, sizeof rep);
    qat_onnx_style style = opt->style;
    ctx c = {onnx_builder_create("qat"), style, opt->requant, &rep, 0};
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
