/* Reference kernels of the graph layers (docs/ARITHMETIC.md §4.1): grouped
 * and depthwise conv2d, add, concat and global average pooling, written as
 * the spec reads. Each uses the fixed-point functions the fake-quant
 * training ops use (qat/fixedpoint.h), so the two agree by construction. */
#include "runtime/kernels/kernels.h"

#include "qat/fixedpoint.h"

void qat_s8_gconv2d__ref(const qat_rt_conv_params *p, const int8_t *in, int8_t *out, size_t m0,
                         size_t m1, int c0, int c1, void *scratch)
{
    (void)scratch;
    const int g = p->groups > 1 ? p->groups : 1;
    const int cg = p->in_c / g, og = p->out_c / g;
    const size_t pixels = (size_t)p->out_h * (size_t)p->out_w;
    const size_t in_size = (size_t)p->in_h * (size_t)p->in_w * (size_t)p->in_c;
    const size_t kk = (size_t)p->kernel_h * (size_t)p->kernel_w * (size_t)cg;
    for (size_t m = m0; m < m1; m++) {
        const int8_t *img = in + (m / pixels) * in_size;
        const int oy = (int)(m % pixels / (size_t)p->out_w), ox = (int)(m % pixels % (size_t)p->out_w);
        for (int oc = c0; oc < c1; oc++) {
            const int8_t *w = p->weights + (size_t)oc * kk;
            const int base = oc / og * cg;
            /* bias_folded already holds -in_zp * sum(w - wzp): a padded tap
             * (reading in_zp) adds exactly that back */
            int32_t acc = p->bias_folded[oc];
            for (int ky = 0; ky < p->kernel_h; ky++) {
                int iy = oy * p->stride_h - p->pad_h + ky;
                for (int kx = 0; kx < p->kernel_w; kx++) {
                    int ix = ox * p->stride_w - p->pad_w + kx;
                    int inside = iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w;
                    const int8_t *src =
                        inside ? img + ((size_t)iy * (size_t)p->in_w + (size_t)ix) * (size_t)p->in_c +
                                     (size_t)base
                               : NULL;
                    const int8_t *wk = w + ((size_t)ky * (size_t)p->kernel_w + (size_t)kx) * (size_t)cg;
                    for (int j = 0; j < cg; j++) {
                        int32_t x = src ? src[j] : p->in_zp;
                        acc += ((int32_t)wk[j] - p->weight_zp[oc]) * x;
                    }
                }
            }
            out[m * (size_t)p->out_c + (size_t)oc] = (int8_t)qat_fp_requantize(
                acc, p->multiplier[oc], p->shift[oc], p->out_zp, p->act_min, p->act_max);
        }
    }
}

void qat_s8_add__ref(const qat_rt_merge_params *p, const int8_t *const *in, int8_t *out,
                     size_t m0, size_t m1)
{
    const size_t C = (size_t)p->out_c;
    for (size_t i = m0 * C; i < m1 * C; i++)
        out[i] = (int8_t)qat_fp_add((int32_t)in[0][i] - p->in_zp[0], (int32_t)in[1][i] - p->in_zp[1],
                                    QAT_RT_ADD_LEFT_SHIFT, p->in_mult[0], p->in_shift[0],
                                    p->in_mult[1], p->in_shift[1], p->out_mult, p->out_shift,
                                    p->out_zp, p->act_min, p->act_max);
}

void qat_s8_concat__ref(const qat_rt_merge_params *p, const int8_t *const *in, int8_t *out,
                        size_t m0, size_t m1)
{
    const size_t C = (size_t)p->out_c;
    for (size_t m = m0; m < m1; m++)
        for (int k = 0, off = 0; k < p->n; off += p->c[k], k++) {
            const int8_t *src = in[k] + m * (size_t)p->c[k];
            for (int c = 0; c < p->c[k]; c++)
                out[m * C + (size_t)(off + c)] = (int8_t)qat_fp_requantize(
                    (int32_t)src[c] - p->in_zp[k], p->in_mult[k], p->in_shift[k], p->out_zp,
                    p->act_min, p->act_max);
        }
}

void qat_s8_global_avgpool__ref(const qat_rt_merge_params *p, const int8_t *const *in,
                                int8_t *out, size_t m0, size_t m1)
{
    const size_t C = (size_t)p->out_c, pix = (size_t)p->window;
    for (size_t m = m0; m < m1; m++)
        for (size_t c = 0; c < C; c++) {
            int32_t sum = 0; /* validated: window <= 2^23, so |sum| < 2^31 */
            for (size_t px = 0; px < pix; px++)
                sum += (int32_t)in[0][(m * pix + px) * C + c] - p->in_zp[0];
            out[m * C + c] = (int8_t)qat_fp_requantize(sum, p->out_mult, p->out_shift, p->out_zp,
                                                       p->act_min, p->act_max);
        }
}
