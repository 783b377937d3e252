/* Float layers: conv2d / linear kept in float32 inside an int8 model
 * (docs/ARITHMETIC.md §7). The input is dequantized exactly as the
 * training forward dequantizes it, the sum is qat_f32_dot's fixed order
 * (src/core/fdot.c, compiled without fma contraction), and the output is
 * quantized with qat_fp_quantize, the fake-quant's own rounding: the same
 * bits on every ISA path and in training. A float layer is a small part of
 * a model, so one plain loop serves every path. */
#include <string.h>

#include "qat/fdot.h"
#include "qat/fixedpoint.h"
#include "runtime/rt_internal.h"

size_t qat_rt_float_scratch(const qat_rt_float_params *p)
{
    return (size_t)p->kernel_h * (size_t)p->kernel_w * (size_t)p->in_c * sizeof(float);
}

/* The window of output pixel (oy, ox) of one image, dequantized, in the
 * weights' order (kh, kw, c_in); padded taps are 0.0f (a real zero). */
static void gather(const qat_rt_float_params *p, const int8_t *img, int oy, int ox, float *col)
{
    size_t j = 0;
    for (int ky = 0; ky < p->kernel_h; ky++) {
        int iy = oy * p->stride_h - p->pad_h + ky;
        for (int kx = 0; kx < p->kernel_w; kx++) {
            int ix = ox * p->stride_w - p->pad_w + kx;
            if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) {
                for (int c = 0; c < p->in_c; c++)
                    col[j++] = 0.0f;
                continue;
            }
            const int8_t *px = img + ((size_t)iy * (size_t)p->in_w + (size_t)ix) * (size_t)p->in_c;
            for (int c = 0; c < p->in_c; c++)
                col[j++] = (float)((int32_t)px[c] - p->in_zp) * p->in_scale;
        }
    }
}

void qat_rt_float_layer(const qat_rt_float_params *p, const int8_t *in, void *out, size_t m0,
                        size_t m1, int c0, int c1, void *scratch)
{
    float *col = scratch;
    const size_t K = (size_t)p->kernel_h * (size_t)p->kernel_w * (size_t)p->in_c;
    const size_t pix = (size_t)p->out_h * (size_t)p->out_w, oc = (size_t)p->out_c;
    const size_t in_img = (size_t)p->in_h * (size_t)p->in_w * (size_t)p->in_c;
    for (size_t r = m0; r < m1; r++) {
        size_t n = r / pix, o = r % pix;
        gather(p, in + n * in_img, (int)(o / (size_t)p->out_w), (int)(o % (size_t)p->out_w), col);
        for (int c = c0; c < c1; c++) {
            float y = qat_f32_dot(p->weights + (size_t)c * K, col, K) + p->bias[c];
            if (p->act != QAT_RT_FLOAT_ACT_NONE)
                y = y > 0.0f ? y : 0.0f;
            if (p->act == QAT_RT_FLOAT_ACT_RELU6)
                y = y < 6.0f ? y : 6.0f;
            if (p->float_out)
                ((float *)out)[r * oc + (size_t)c] = y;
            else
                ((int8_t *)out)[r * oc + (size_t)c] =
                    (int8_t)qat_fp_quantize(y, p->out_scale, p->out_zp, p->act_min, p->act_max);
        }
    }
}
