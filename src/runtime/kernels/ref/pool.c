/* Reference pooling (no padding). maxpool compares int8 codes directly;
 * avgpool averages (x - zp) with qat_fp_div_round and adds zp back. */
#include "runtime/kernels/kernels.h"

#include "qat/fixedpoint.h"

void qat_s8_maxpool2d__ref(const qat_rt_pool_params *p, const int8_t *in, int8_t *out, size_t m0,
                           size_t m1)
{
    const size_t c = (size_t)p->c;
    const size_t in_size = (size_t)p->in_h * (size_t)p->in_w * c;
    const size_t pixels = (size_t)p->out_h * (size_t)p->out_w;
    for (size_t m = m0; m < m1; m++) {
        const int8_t *img = in + (m / pixels) * in_size;
        const size_t oy = m % pixels / (size_t)p->out_w, ox = m % pixels % (size_t)p->out_w;
        int8_t *dst = out + m * c;
        for (size_t ch = 0; ch < c; ch++)
            dst[ch] = INT8_MIN;
        for (int ky = 0; ky < p->kernel_h; ky++) {
            size_t iy = oy * (size_t)p->stride_h + (size_t)ky;
            for (int kx = 0; kx < p->kernel_w; kx++) {
                size_t ix = ox * (size_t)p->stride_w + (size_t)kx;
                const int8_t *src = img + (iy * (size_t)p->in_w + ix) * c;
                for (size_t ch = 0; ch < c; ch++)
                    if (src[ch] > dst[ch])
                        dst[ch] = src[ch];
            }
        }
    }
}

void qat_s8_avgpool2d__ref(const qat_rt_pool_params *p, const int8_t *in, int8_t *out, size_t m0,
                           size_t m1)
{
    const size_t c = (size_t)p->c;
    const size_t in_size = (size_t)p->in_h * (size_t)p->in_w * c;
    const size_t pixels = (size_t)p->out_h * (size_t)p->out_w;
    const int32_t count = p->kernel_h * p->kernel_w; /* validated: count * 255 < 2^31 */
    for (size_t m = m0; m < m1; m++) {
        const int8_t *img = in + (m / pixels) * in_size;
        const size_t oy = m % pixels / (size_t)p->out_w, ox = m % pixels % (size_t)p->out_w;
        int8_t *dst = out + m * c;
        for (size_t ch = 0; ch < c; ch++) {
            int32_t sum = 0;
            for (int ky = 0; ky < p->kernel_h; ky++) {
                size_t iy = oy * (size_t)p->stride_h + (size_t)ky;
                for (int kx = 0; kx < p->kernel_w; kx++) {
                    size_t ix = ox * (size_t)p->stride_w + (size_t)kx;
                    sum += (int32_t)img[(iy * (size_t)p->in_w + ix) * c + ch] - p->zp;
                }
            }
            int32_t v = p->zp + qat_fp_div_round(sum, count);
            dst[ch] = (int8_t)(v < INT8_MIN ? INT8_MIN : v > INT8_MAX ? INT8_MAX : v);
        }
    }
}

/* Granlund-Montgomery: with l = ceil(log2 n) and mul = ceil(2^(31+l) / n),
 * mul * n - 2^(31+l) < n <= 2^l, so floor(u / n) = floor(u * mul / 2^(31+l))
 * for every 0 <= u < 2^31, and mul < 2^32. Validation keeps n * 255 < 2^31,
 * so n <= 2^23 and the shift is at most 54. The SIMD paths use this; the
 * result is DivRound of docs/ARITHMETIC.md exactly. */
void qat_rt_pool_divisor(int32_t n, uint32_t *mul, int *shift)
{
    int l = 0;
    while ((1LL << l) < (long long)n)
        l++;
    unsigned long long num = 1ULL << (31 + l);
    *mul = (uint32_t)((num + (unsigned long long)n - 1) / (unsigned long long)n);
    *shift = 31 + l;
}
