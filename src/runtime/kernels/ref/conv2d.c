/* Reference conv2d and linear: direct loops, the oracle for every SIMD path.
 * acc = bias_folded[c] + sum (w - w_zp[c]) * x over the window, where a tap
 * in the padding reads x = in_zp (a real zero); then qat_fp_requantize.
 * The "packed" layout of this path is the unpacked int8 weights themselves. */
#include <string.h>

#include "runtime/kernels/kernels.h"

#include "qat/fixedpoint.h"

/* Dot product of one weight row segment with one input segment. Partial sums
 * stay inside the bound model validation proves (docs/ARITHMETIC.md). */
static int32_t dot_s8(const int8_t *w, const int8_t *x, int len, int32_t wzp)
{
    int32_t acc = 0;
    for (int k = 0; k < len; k++)
        acc += ((int32_t)w[k] - wzp) * (int32_t)x[k];
    return acc;
}

static int32_t dot_pad(const int8_t *w, int len, int32_t wzp, int32_t xzp)
{
    int32_t acc = 0;
    for (int k = 0; k < len; k++)
        acc += ((int32_t)w[k] - wzp) * xzp;
    return acc;
}

size_t qat_s8_conv_packed_size__ref(const qat_rt_conv_params *p)
{
    return (size_t)p->out_c * (size_t)p->kernel_h * (size_t)p->kernel_w * (size_t)p->in_c;
}

void qat_s8_conv_pack__ref(const qat_rt_conv_params *p, void *dst)
{
    memcpy(dst, p->weights, qat_s8_conv_packed_size__ref(p));
}

size_t qat_s8_conv_scratch__ref(const qat_rt_conv_params *p, int max_images)
{
    (void)p;
    (void)max_images;
    return 0;
}

/* The int32 accumulator of output (oy, ox, oc) of image img. */
static int32_t conv_acc(const qat_rt_conv_params *p, const int8_t *img, int oy, int ox, int oc)
{
    const int8_t *weights = p->packed;
    const size_t row = (size_t)p->kernel_w * (size_t)p->in_c; /* weights per kernel row */
    const int8_t *w = weights + (size_t)oc * (size_t)p->kernel_h * row;
    const int32_t wzp = p->weight_zp[oc];
    int32_t acc = p->bias_folded[oc];
    for (int ky = 0; ky < p->kernel_h; ky++) {
        /* int64: oy * stride may exceed int for huge strides */
        long long iy = (long long)oy * p->stride_h - p->pad_h + ky;
        const int8_t *wr = w + (size_t)ky * row;
        if (iy < 0 || iy >= p->in_h) {
            acc += dot_pad(wr, (int)row, wzp, p->in_zp);
            continue;
        }
        for (int kx = 0; kx < p->kernel_w; kx++) {
            long long ix = (long long)ox * p->stride_w - p->pad_w + kx;
            const int8_t *wt = wr + (size_t)kx * (size_t)p->in_c;
            if (ix < 0 || ix >= p->in_w)
                acc += dot_pad(wt, p->in_c, wzp, p->in_zp);
            else
                acc += dot_s8(wt, img + ((size_t)iy * (size_t)p->in_w + (size_t)ix) * (size_t)p->in_c,
                              p->in_c, wzp);
        }
    }
    return acc;
}

static int8_t conv_out(const qat_rt_conv_params *p, const int8_t *img, int oy, int ox, int oc)
{
    return (int8_t)qat_fp_requantize(conv_acc(p, img, oy, ox, oc), p->multiplier[oc],
                                     p->shift[oc], p->out_zp, p->act_min, p->act_max);
}

void qat_s8_conv2d__ref(const qat_rt_conv_params *p, const int8_t *in, int8_t *out, size_t m0,
                        size_t m1, int c0, int c1, void *scratch)
{
    (void)scratch;
    const size_t in_size = (size_t)p->in_h * (size_t)p->in_w * (size_t)p->in_c;
    const size_t pixels = (size_t)p->out_h * (size_t)p->out_w;
    for (size_t m = m0; m < m1; m++) {
        const int8_t *img = in + (m / pixels) * in_size;
        const int oy = (int)(m % pixels / (size_t)p->out_w);
        const int ox = (int)(m % pixels % (size_t)p->out_w);
        for (int oc = c0; oc < c1; oc++)
            out[m * (size_t)p->out_c + (size_t)oc] = conv_out(p, img, oy, ox, oc);
    }
}

void qat_s8_conv2d_maxpool__ref(const qat_rt_conv_params *p, const qat_rt_pool_params *pool,
                                const int8_t *in, int8_t *out, size_t m0, size_t m1, int c0,
                                int c1, void *scratch)
{
    (void)scratch;
    const size_t in_size = (size_t)p->in_h * (size_t)p->in_w * (size_t)p->in_c;
    const size_t pixels = (size_t)pool->out_h * (size_t)pool->out_w;
    for (size_t m = m0; m < m1; m++) {
        const int8_t *img = in + (m / pixels) * in_size;
        const int py = (int)(m % pixels / (size_t)pool->out_w);
        const int px = (int)(m % pixels % (size_t)pool->out_w);
        for (int oc = c0; oc < c1; oc++) {
            int8_t best = INT8_MIN;
            for (int ky = 0; ky < pool->kernel_h; ky++)
                for (int kx = 0; kx < pool->kernel_w; kx++) {
                    int8_t v = conv_out(p, img, py * pool->stride_h + ky, px * pool->stride_w + kx,
                                        oc);
                    best = v > best ? v : best;
                }
            out[m * (size_t)p->out_c + (size_t)oc] = best;
        }
    }
}

void qat_s8_linear__ref(const qat_rt_conv_params *p, const int8_t *in, int8_t *out, size_t m0,
                        size_t m1, int c0, int c1, void *scratch)
{
    (void)scratch;
    const int8_t *weights = p->packed;
    const int k = p->in_c;
    for (size_t m = m0; m < m1; m++) {
        const int8_t *x = in + m * (size_t)k;
        int8_t *o = out + m * (size_t)p->out_c;
        for (int oc = c0; oc < c1; oc++) {
            int32_t acc = p->bias_folded[oc] +
                          dot_s8(weights + (size_t)oc * (size_t)k, x, k, p->weight_zp[oc]);
            o[oc] = (int8_t)qat_fp_requantize(acc, p->multiplier[oc], p->shift[oc], p->out_zp,
                                              p->act_min, p->act_max);
        }
    }
}

void qat_s32_requantize__ref(const qat_rt_requant_params *q, const int32_t *acc, int8_t *out,
                             size_t rows)
{
    const size_t n = (size_t)q->channels;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < n; c++)
            out[r * n + c] = (int8_t)qat_fp_requantize(acc[r * n + c], q->multiplier[c],
                                                       q->shift[c], q->out_zp, q->act_min,
                                                       q->act_max);
}
