/* im2col for the NEON conv kernels: row r of a batch's patch matrix is the
 * window of output pixel r (padded taps read in_zp), K padded with zeros to
 * kp. Rows are produced in order, with (image, y, x) advanced incrementally.
 * ELEM int16_t widens (neon-plain), int8_t copies (neon-dot). */
#ifndef QAT_RT_NEON_IM2COL_H
#define QAT_RT_NEON_IM2COL_H

#include <arm_neon.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/kernels/kernels.h"

typedef struct qat_neon_pos {
    size_t img;
    int oy, ox;
} qat_neon_pos;

static inline void qat_neon_pos_at(const qat_rt_conv_params *p, size_t r, qat_neon_pos *q)
{
    const size_t pixels = (size_t)p->out_h * (size_t)p->out_w;
    q->img = r / pixels;
    q->oy = (int)(r % pixels / (size_t)p->out_w);
    q->ox = (int)(r % pixels % (size_t)p->out_w);
}

static inline void qat_neon_pos_next(const qat_rt_conv_params *p, qat_neon_pos *q)
{
    if (++q->ox == p->out_w) {
        q->ox = 0;
        if (++q->oy == p->out_h) {
            q->oy = 0;
            q->img++;
        }
    }
}

static inline void qat_neon_copy16(int16_t *d, const int8_t *s, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        vst1q_s16(d + i, vmovl_s8(vld1_s8(s + i)));
    for (; i < n; i++)
        d[i] = s[i];
}

static inline void qat_neon_copy8(int8_t *d, const int8_t *s, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        vst1q_s8(d + i, vld1q_s8(s + i));
    for (; i < n; i++)
        d[i] = s[i];
}

#define QAT_NEON_IM2COL(NAME, ELEM, COPY)                                                       \
    static void NAME(const qat_rt_conv_params *p, const int8_t *in, const qat_neon_pos *q,     \
                     size_t kp, ELEM *dst)                                                      \
    {                                                                                           \
        const size_t c = (size_t)p->in_c, kw = (size_t)p->kernel_w, rowlen = kw * c;           \
        const int8_t *img = in + q->img * (size_t)p->in_h * (size_t)p->in_w * c;                \
        const long long x0 = (long long)q->ox * p->stride_w - p->pad_w;                         \
        const long long y0 = (long long)q->oy * p->stride_h - p->pad_h;                         \
        const ELEM zp = (ELEM)p->in_zp;                                                         \
        const int inside_x = x0 >= 0 && x0 + (long long)kw <= p->in_w;                          \
        ELEM *d = dst;                                                                          \
        for (int ky = 0; ky < p->kernel_h; ky++, d += rowlen) {                                 \
            long long iy = y0 + ky;                                                             \
            if (iy < 0 || iy >= p->in_h) {                                                      \
                for (size_t i = 0; i < rowlen; i++)                                             \
                    d[i] = zp;                                                                  \
                continue;                                                                       \
            }                                                                                   \
            const int8_t *src = img + (size_t)iy * (size_t)p->in_w * c;                         \
            if (inside_x) {                                                                     \
                COPY(d, src + (size_t)x0 * c, rowlen);                                          \
                continue;                                                                       \
            }                                                                                   \
            for (size_t kx = 0; kx < kw; kx++) {                                                \
                long long ix = x0 + (long long)kx;                                              \
                if (ix < 0 || ix >= p->in_w)                                                    \
                    for (size_t i = 0; i < c; i++)                                              \
                        d[kx * c + i] = zp;                                                     \
                else                                                                            \
                    COPY(d + kx * c, src + (size_t)ix * c, c);                                  \
            }                                                                                   \
        }                                                                                       \
        for (size_t i = rowlen * (size_t)p->kernel_h; i < kp; i++)                              \
            dst[i] = 0;                                                                         \
    }

#endif
