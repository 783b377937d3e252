/* Reference pooling (no padding). maxpool compares int8 codes directly;
 * avgpool averages (x - zp) with qat_fp_div_round and adds zp back. */
#include "runtime/kernels/kernels.h"

#include "qat/fixedpoint.h"

void qat_s8_maxpool2d__ref(const qat_rt_pool_params *p, const int8_t *in, int8_t *out, int n)
{
    const size_t c = (size_t)p->c;
    const size_t in_size = (size_t)p->in_h * (size_t)p->in_w * c;
    const size_t out_size = (size_t)p->out_h * (size_t)p->out_w * c;
    for (int b = 0; b < n; b++) {
        const int8_t *img = in + (size_t)b * in_size;
        int8_t *o = out + (size_t)b * out_size;
        for (int oy = 0; oy < p->out_h; oy++) {
            for (int ox = 0; ox < p->out_w; ox++) {
                int8_t *dst = o + ((size_t)oy * (size_t)p->out_w + (size_t)ox) * c;
                for (size_t ch = 0; ch < c; ch++)
                    dst[ch] = INT8_MIN;
                for (int ky = 0; ky < p->kernel_h; ky++) {
                    size_t iy = (size_t)oy * (size_t)p->stride_h + (size_t)ky;
                    for (int kx = 0; kx < p->kernel_w; kx++) {
                        size_t ix = (size_t)ox * (size_t)p->stride_w + (size_t)kx;
                        const int8_t *src = img + (iy * (size_t)p->in_w + ix) * c;
                        for (size_t ch = 0; ch < c; ch++)
                            if (src[ch] > dst[ch])
                                dst[ch] = src[ch];
                    }
                }
            }
        }
    }
}

void qat_s8_avgpool2d__ref(const qat_rt_pool_params *p, const int8_t *in, int8_t *out, int n)
{
    const size_t c = (size_t)p->c;
    const size_t in_size = (size_t)p->in_h * (size_t)p->in_w * c;
    const size_t out_size = (size_t)p->out_h * (size_t)p->out_w * c;
    const int32_t count = p->kernel_h * p->kernel_w; /* validated: count * 255 < 2^31 */
    for (int b = 0; b < n; b++) {
        const int8_t *img = in + (size_t)b * in_size;
        int8_t *o = out + (size_t)b * out_size;
        for (int oy = 0; oy < p->out_h; oy++) {
            for (int ox = 0; ox < p->out_w; ox++) {
                int8_t *dst = o + ((size_t)oy * (size_t)p->out_w + (size_t)ox) * c;
                for (size_t ch = 0; ch < c; ch++) {
                    int32_t sum = 0;
                    for (int ky = 0; ky < p->kernel_h; ky++) {
                        size_t iy = (size_t)oy * (size_t)p->stride_h + (size_t)ky;
                        for (int kx = 0; kx < p->kernel_w; kx++) {
                            size_t ix = (size_t)ox * (size_t)p->stride_w + (size_t)kx;
                            sum += (int32_t)img[(iy * (size_t)p->in_w + ix) * c + ch] - p->zp;
                        }
                    }
                    int32_t v = p->zp + qat_fp_div_round(sum, count);
                    dst[ch] = (int8_t)(v < INT8_MIN ? INT8_MIN : v > INT8_MAX ? INT8_MAX : v);
                }
            }
        }
    }
}
