/* The portable driver behind every SIMD path's depthwise conv2d
 * (microkernel.h): plain C. Packing (model creation), the scratch query,
 * and the walk over output pixels that hands the path's row ukernel each
 * run of pixels within one output row, with the input rows its windows
 * cover. A general grouped conv (1 < groups < in_c) runs the reference
 * kernel. */
#include <string.h>

#include "runtime/kernels/microkernel.h"

static int is_depthwise(const qat_rt_conv_params *p)
{
    return p->groups > 1 && p->groups == p->in_c;
}

/* At least nr entries past out_c, a multiple of 16 (64-byte arrays). */
static size_t oc_pad_of(const qat_rt_dw_ukernel *uk, const qat_rt_conv_params *p)
{
    size_t nr = (size_t)uk->nr, n = ((size_t)p->out_c + 2 * nr - 1) / nr * nr;
    return (n + 15) & ~(size_t)15;
}

size_t qat_rt_dw_pack_size(const qat_rt_dw_ukernel *uk, const qat_rt_conv_params *p)
{
    if (!is_depthwise(p))
        return sizeof(qat_rt_dw_head);
    size_t oc_pad = oc_pad_of(uk, p), taps = (size_t)p->kernel_h * (size_t)p->kernel_w;
    return sizeof(qat_rt_dw_head) + QAT_RT_RQ_COUNT * oc_pad * sizeof(int32_t) +
           taps * oc_pad * (size_t)uk->welem;
}

void qat_rt_dw_pack(const qat_rt_dw_ukernel *uk, const qat_rt_conv_params *p, void *dst)
{
    memset(dst, 0, qat_rt_dw_pack_size(uk, p));
    qat_rt_dw_head *h = dst;
    if (!is_depthwise(p))
        return;
    const size_t oc = (size_t)p->out_c, oc_pad = oc_pad_of(uk, p);
    const size_t taps = (size_t)p->kernel_h * (size_t)p->kernel_w;
    *h = (qat_rt_dw_head){.depthwise = 1, .mult = p->out_c / p->in_c, .taps = (int32_t)taps,
                          .oc_pad = (int32_t)oc_pad, .min_right = 31};
    int32_t *rq = (int32_t *)(void *)(h + 1);
    unsigned char *w = (unsigned char *)(rq + QAT_RT_RQ_COUNT * oc_pad);
    for (size_t c = 0; c < oc; c++) {
        const int32_t wzp = p->weight_zp[c], shift = p->shift[c];
        long long sum = 0; /* the bias the kernels need: bias_folded undone */
        for (size_t t = 0; t < taps; t++) {
            const int32_t d = (int32_t)p->weights[c * taps + t] - wzp; /* cg = 1 */
            sum += d;
            if (uk->welem == 2) {
                int16_t v = (int16_t)d;
                memcpy(w + (t * oc_pad + c) * 2, &v, 2);
            } else {
                uint32_t v = (uint16_t)(int16_t)d; /* 0 in the high half */
                memcpy(w + (t * oc_pad + c) * 4, &v, 4);
            }
        }
        /* the layer's own bias: fits int32 (validated) */
        rq[QAT_RT_RQ_BIAS * oc_pad + c] =
            (int32_t)((long long)p->bias_folded[c] + (long long)p->in_zp * sum);
        rq[QAT_RT_RQ_WZP * oc_pad + c] = wzp;
        rq[QAT_RT_RQ_MULT * oc_pad + c] = p->multiplier[c];
        const int32_t right = shift > 0 ? 0 : -shift;
        rq[QAT_RT_RQ_LEFT * oc_pad + c] = shift > 0 ? shift : 0;
        rq[QAT_RT_RQ_RIGHT * oc_pad + c] = right;
        rq[QAT_RT_RQ_NRIGHT * oc_pad + c] = -right;
        rq[QAT_RT_RQ_MASK * oc_pad + c] = (int32_t)((1LL << right) - 1);
        rq[QAT_RT_RQ_THR * oc_pad + c] = (int32_t)(((1LL << right) - 1) >> 1);
        h->any_left |= shift > 0;
        h->min_right = right < h->min_right ? right : h->min_right;
        h->max_right = right > h->max_right ? right : h->max_right;
    }
}

/* With a multiplier > 1 the window rows of one output row are expanded to
 * output channels: kernel_h rows of in_w pixels x out_c. */
size_t qat_rt_dw_scratch(const qat_rt_conv_params *p, int max_images)
{
    (void)max_images;
    if (!is_depthwise(p) || p->out_c == p->in_c)
        return 0;
    return (size_t)p->kernel_h * (size_t)p->in_w * (size_t)p->out_c + 64;
}

void qat_rt_dw_run(const qat_rt_dw_ukernel *uk, const qat_rt_conv_params *p, const int8_t *in,
                   int8_t *out, size_t m0, size_t m1, int c0, int c1, void *scratch)
{
    const qat_rt_dw_head *h = p->packed;
    if (!h->depthwise) {
        qat_s8_gconv2d__ref(p, in, out, m0, m1, c0, c1, scratch);
        return;
    }
    if (c0 >= c1)
        return;
    const size_t ow = (size_t)p->out_w, per = (size_t)p->out_h * ow;
    const size_t in_c = (size_t)p->in_c, in_w = (size_t)p->in_w, oc = (size_t)p->out_c;
    const size_t in_size = (size_t)p->in_h * in_w * in_c, mult = (size_t)h->mult;
    const size_t pix = mult > 1 ? oc : in_c, rstride = in_w * pix;
    size_t img = m0 / per, y = m0 % per / ow, x = m0 % per % ow;
    for (size_t m = m0; m < m1;) {
        const size_t n = ow - x < m1 - m ? ow - x : m1 - m;
        const int iy0 = (int)y * p->stride_h - p->pad_h;
        const int ky0 = iy0 < 0 ? -iy0 : 0;
        const int ky1 = p->in_h - iy0 < p->kernel_h ? p->in_h - iy0 : p->kernel_h;
        const int8_t *rows = in + img * in_size;
        if (ky1 > ky0) {
            rows += (size_t)(iy0 + ky0) * in_w * in_c;
            if (mult > 1) { /* only the channels this call writes */
                int8_t *e = scratch;
                for (size_t r = 0; r < (size_t)(ky1 - ky0); r++)
                    for (size_t ix = 0; ix < in_w; ix++) {
                        const int8_t *s = rows + (r * in_w + ix) * in_c;
                        int8_t *d = e + r * rstride + ix * oc;
                        for (size_t c = (size_t)c0; c < (size_t)c1; c++)
                            d[c] = s[c / mult];
                    }
                rows = e;
            }
        }
        uk->row(p, rows, rstride, pix, ky0, ky1, (int)x, n, c0, c1, out + m * oc);
        m += n;
        x += n;
        if (x == ow) {
            x = 0;
            if (++y == (size_t)p->out_h) {
                y = 0;
                img++;
            }
        }
    }
}
