/* The fused max pool's loops (conv_pool.h says what the fusion is): the
 * forward over a conv output block and the backward's dense gradient. */
#include <string.h>

#include "conv_pool.h"
#include "qat/hot_clones.h"

/* The 2x2 window (the common pool): one pass over the channels, the four
 * taps compared in (kh, kw) order in registers, y and the winner stored
 * once; the same comparisons as the general loop below. The winner is
 * chosen by masks (GCC does not if-convert a select on a float compare
 * that feeds an integer, and left the loop scalar). */
static inline __attribute__((always_inline)) void
pool_2x2(const float *restrict x0, const float *restrict x1, size_t CO, int relu, int keep,
         float *restrict yo, uint8_t *restrict a)
{
    for (size_t c = 0; c < CO; c++) {
        float v = x0[c], t[3] = {x0[CO + c], x1[c], x1[CO + c]};
        int32_t k = 0;
        for (int i = 0; i < 3; i++) {
            int32_t win = -(int32_t)(t[i] > v);
            k = (k & ~win) | ((i + 1) & win);
            v = t[i] > v ? t[i] : v;
        }
        yo[c] = relu ? (v > 0.0f ? v : 0.0f) : v;
        if (keep)
            a[c] = (uint8_t)k;
    }
}

HOT_CLONES
void qat_conv_pool_block(size_t CO, size_t OW, const pool_fuse *pf, const float *restrict cb,
                         size_t cnt, float *restrict y, uint8_t *restrict arg)
{
    if (pf->KH == 2 && pf->KW == 2) {
        for (size_t u = 0; u < cnt; u++)
            for (int pw = 0; pw < pf->PW; pw++) {
                size_t o = (u * (size_t)pf->PW + (size_t)pw) * CO;
                const float *x0 = cb + (u * 2 * OW + (size_t)pw * 2) * CO, *x1 = x0 + OW * CO;
                if (arg && pf->relu)
                    pool_2x2(x0, x1, CO, 1, 1, y + o, arg + o);
                else if (arg)
                    pool_2x2(x0, x1, CO, 0, 1, y + o, arg + o);
                else if (pf->relu)
                    pool_2x2(x0, x1, CO, 1, 0, y + o, NULL);
                else
                    pool_2x2(x0, x1, CO, 0, 0, y + o, NULL);
            }
        return;
    }
    for (size_t u = 0; u < cnt; u++)
        for (int pw = 0; pw < pf->PW; pw++) {
            size_t o = (u * (size_t)pf->PW + (size_t)pw) * CO;
            const float *x0 = cb + (u * (size_t)pf->KH * OW + (size_t)pw * pf->KW) * CO;
            float *restrict yo = y + o;
            memcpy(yo, x0, CO * sizeof(float));
            uint8_t *restrict a = arg ? arg + o : NULL;
            if (a)
                memset(a, 0, CO);
            for (int kh = 0; kh < pf->KH; kh++)
                for (int kw = kh ? 0 : 1; kw < pf->KW; kw++) {
                    const float *restrict xk = x0 + ((size_t)kh * OW + (size_t)kw) * CO;
                    uint8_t k = (uint8_t)(kh * pf->KW + kw);
                    if (a) {
                        for (size_t c = 0; c < CO; c++) {
                            int win = xk[c] > yo[c];
                            yo[c] = win ? xk[c] : yo[c];
                            a[c] = win ? k : a[c];
                        }
                    } else {
                        for (size_t c = 0; c < CO; c++)
                            yo[c] = xk[c] > yo[c] ? xk[c] : yo[c];
                    }
                }
            if (pf->relu)
                for (size_t c = 0; c < CO; c++)
                    yo[c] = yo[c] > 0.0f ? yo[c] : 0.0f;
        }
}

/* Each window element is written once, without a separate clearing
 * pass. */
HOT_CLONES
void qat_conv_unpool_block(size_t CO, size_t OW, const pool_fuse *pf, const float *restrict dy,
                           const float *restrict y, const uint8_t *restrict arg, size_t cnt,
                           float *restrict db)
{
    size_t cov = (size_t)pf->PW * pf->KW;
    for (size_t u = 0; u < cnt; u++) {
        for (int kh = 0; kh < pf->KH; kh++) {
            float *row = db + ((u * (size_t)pf->KH + (size_t)kh) * OW) * CO;
            if (cov < OW) /* columns no window covers */
                memset(row + cov * CO, 0, (OW - cov) * CO * sizeof(float));
            for (int pw = 0; pw < pf->PW; pw++) {
                size_t o = (u * (size_t)pf->PW + (size_t)pw) * CO;
                const float *restrict d = dy + o, *restrict yo = y + o;
                const uint8_t *restrict a = arg + o;
                for (int kw = 0; kw < pf->KW; kw++) {
                    float *restrict dst = row + ((size_t)pw * pf->KW + (size_t)kw) * CO;
                    uint8_t k = (uint8_t)(kh * pf->KW + kw);
                    if (pf->relu)
                        for (size_t c = 0; c < CO; c++)
                            dst[c] = a[c] == k && yo[c] > 0.0f ? d[c] : 0.0f;
                    else
                        for (size_t c = 0; c < CO; c++)
                            dst[c] = a[c] == k ? d[c] : 0.0f;
                }
            }
        }
    }
}
