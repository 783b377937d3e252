/* NEON kernels of the graph layers (docs/ARITHMETIC.md §4.1), shared by
 * neon-plain and neon-dot: the depthwise conv2d row microkernel
 * (dw_driver.c walks the pixels), add, concat and global average pooling.
 * Base aarch64. Scalar twins: kernels/ref/graph.c; the tails are
 * microkernel.h's scalar ones. */
#include <arm_neon.h>
#include <string.h>

#include "runtime/kernels/neon/kernels_neon.h"
#include "runtime/kernels/neon/requant.h"

#include "qat/fixedpoint.h"

/* ---- depthwise conv2d: 16 channels a vector, 32 a step -------------------------------------- */

/* Sixteen codes at x, or len < 16 of them (the rest 0: their lanes are
 * never stored). */
static inline int8x16_t load16(const int8_t *x, int len)
{
    if (len == 16)
        return vld1q_s8(x);
    int8_t t[16] = {0};
    memcpy(t, x, (size_t)len);
    return vld1q_s8(t);
}

/* NV vectors of 16 channels from c (the last one len wide) of one output
 * pixel: bias + sum over the window's taps inside the image of
 * (x - zp) * (w - wzp), both in [-255, 255] as int16 (smlal: exact), then
 * the output stage. */
static inline __attribute__((always_inline)) void
dw_block(const int NV, const qat_rt_dw_head *h, const qat_rt_dw_window *px, size_t c, int len,
         int16x8_t zp, const qat_neon_out_stage *s, int8_t *o)
{
    const int16_t *w = (const int16_t *)qat_rt_dw_weights(h) + c;
    int32x4_t acc[2][4];
    for (int v = 0; v < NV; v++)
        for (int g = 0; g < 4; g++)
            acc[v][g] = vld1q_s32(qat_rt_dw_rq(h, QAT_RT_RQ_BIAS) + c + 16 * v + 4 * g);
    for (int ky = px->ky0; ky < px->ky1; ky++) {
        const int8_t *r = px->rows + (size_t)(ky - px->ky0) * px->rstride + c;
        const int16_t *wr = w + (size_t)ky * (size_t)px->kw * px->oc_pad;
        for (int kx = px->kx0; kx < px->kx1; kx++) {
            const int8_t *x = r + (size_t)(px->ix0 + kx) * px->pix;
            const int16_t *wk = wr + (size_t)kx * px->oc_pad;
            for (int v = 0; v < NV; v++) {
                int8x16_t b = load16(x + 16 * v, v == NV - 1 ? len : 16);
                int16x8_t xl = vsubq_s16(vmovl_s8(vget_low_s8(b)), zp);
                int16x8_t xh = vsubq_s16(vmovl_high_s8(b), zp);
                int16x8_t w0 = vld1q_s16(wk + 16 * v), w1 = vld1q_s16(wk + 16 * v + 8);
                acc[v][0] = vmlal_s16(acc[v][0], vget_low_s16(xl), vget_low_s16(w0));
                acc[v][1] = vmlal_high_s16(acc[v][1], xl, w0);
                acc[v][2] = vmlal_s16(acc[v][2], vget_low_s16(xh), vget_low_s16(w1));
                acc[v][3] = vmlal_high_s16(acc[v][3], xh, w1);
            }
        }
    }
    for (int v = 0; v < NV; v++) {
        const size_t cv = c + 16 * (size_t)v;
        int32x4_t r[4];
        for (int g = 0; g < 4; g++) {
            qat_neon_rq4 q = {.mult = vld1q_s32(qat_rt_dw_rq(h, QAT_RT_RQ_MULT) + cv + 4 * g),
                              .left = vld1q_s32(qat_rt_dw_rq(h, QAT_RT_RQ_LEFT) + cv + 4 * g),
                              .nright = vld1q_s32(qat_rt_dw_rq(h, QAT_RT_RQ_NRIGHT) + cv + 4 * g)};
            r[g] = qat_neon_requant(acc[v][g], &q, h->any_left, s->lo, s->hi, s->zp);
        }
        int8x16_t b = qat_neon_narrow16(r[0], r[1], r[2], r[3]);
        const int n = v == NV - 1 ? len : 16;
        if (n == 16) {
            vst1q_s8(o + cv, b);
        } else {
            int8_t t[16];
            vst1q_s8(t, b);
            memcpy(o + cv, t, (size_t)n);
        }
    }
}

void qat_s8_dwconv2d_row_c16__neon(const qat_rt_conv_params *p, const int8_t *rows,
                                   size_t rstride, size_t pix, int ky0, int ky1, int ox0,
                                   size_t n, int c0, int c1, int8_t *out)
{
    const qat_rt_dw_head *h = p->packed;
    const int16x8_t zp = vdupq_n_s16((int16_t)p->in_zp);
    const qat_neon_out_stage s = qat_neon_out_stage_of(p);
    qat_rt_dw_window px = qat_rt_dw_window_of(p, h, rows, rstride, pix, ky0, ky1);
    for (size_t i = 0; i < n; i++) {
        qat_rt_dw_columns(p, ox0 + (int)i, &px);
        int8_t *o = out + i * (size_t)p->out_c;
        int c = c0;
        for (; c + 32 <= c1; c += 32)
            dw_block(2, h, &px, (size_t)c, 16, zp, &s, o);
        for (; c + 16 <= c1; c += 16)
            dw_block(1, h, &px, (size_t)c, 16, zp, &s, o);
        if (c < c1)
            dw_block(1, h, &px, (size_t)c, c1 - c, zp, &s, o);
    }
}

/* ---- add, concat, global_avgpool ------------------------------------------------------------ */

static inline qat_neon_rq4 rq_uniform(int32_t mult, int32_t shift)
{
    return qat_neon_rq_lanes(vdupq_n_s32(mult), vdupq_n_s32(shift));
}

/* 16 codes widened to four int32x4 minus zp. */
static inline void widen16(int8x16_t b, int16x8_t zp, int32x4_t v[4])
{
    int16x8_t l = vsubq_s16(vmovl_s8(vget_low_s8(b)), zp);
    int16x8_t h = vsubq_s16(vmovl_high_s8(b), zp);
    v[0] = vmovl_s16(vget_low_s16(l));
    v[1] = vmovl_high_s16(l);
    v[2] = vmovl_s16(vget_low_s16(h));
    v[3] = vmovl_high_s16(h);
}

/* TFLite's ADD, 16 elements a step (as the AVX2 kernel: the 2^20 scaling
 * never saturates, validated input shifts are <= 0 and the sum fits). */
void qat_s8_add_x16__neon(const qat_rt_merge_params *p, const int8_t *const *in, int8_t *out,
                          size_t m0, size_t m1)
{
    const size_t C = (size_t)p->out_c, end = m1 * C;
    const qat_neon_rq4 qa = rq_uniform(p->in_mult[0], p->in_shift[0]);
    const qat_neon_rq4 qb = rq_uniform(p->in_mult[1], p->in_shift[1]);
    const qat_neon_rq4 qo = rq_uniform(p->out_mult, p->out_shift);
    const int la = p->in_shift[0] > 0, lb = p->in_shift[1] > 0, lo_ = p->out_shift > 0;
    const int16x8_t za = vdupq_n_s16((int16_t)p->in_zp[0]), zb = vdupq_n_s16((int16_t)p->in_zp[1]);
    const int32x4_t zp = vdupq_n_s32(p->out_zp);
    const int32x4_t lo = vdupq_n_s32(p->act_min - p->out_zp);
    const int32x4_t hi = vdupq_n_s32(p->act_max - p->out_zp);
    const int8_t *a = in[0], *b = in[1];
    size_t i = m0 * C;
    for (; i + 16 <= end; i += 16) {
        int32x4_t av[4], bv[4], r[4];
        widen16(vld1q_s8(a + i), za, av);
        widen16(vld1q_s8(b + i), zb, bv);
        for (int g = 0; g < 4; g++) {
            int32x4_t ra = qat_neon_rescale(vshlq_n_s32(av[g], QAT_RT_ADD_LEFT_SHIFT), &qa, la);
            int32x4_t rb = qat_neon_rescale(vshlq_n_s32(bv[g], QAT_RT_ADD_LEFT_SHIFT), &qb, lb);
            r[g] = qat_neon_requant(vaddq_s32(ra, rb), &qo, lo_, lo, hi, zp);
        }
        vst1q_s8(out + i, qat_neon_narrow16(r[0], r[1], r[2], r[3]));
    }
    qat_rt_add_tail(p, a, b, i, end, out);
}

/* Each input's run of channels requantized onto the output, 16 codes a
 * step; an input whose requantization is the identity (microkernel.h) is
 * only clamped. */
void qat_s8_concat_x16__neon(const qat_rt_merge_params *p, const int8_t *const *in, int8_t *out,
                             size_t m0, size_t m1)
{
    const size_t C = (size_t)p->out_c;
    const int32x4_t zp = vdupq_n_s32(p->out_zp);
    const int32x4_t lo = vdupq_n_s32(p->act_min - p->out_zp);
    const int32x4_t hi = vdupq_n_s32(p->act_max - p->out_zp);
    const int8x16_t bmin = vdupq_n_s8((int8_t)p->act_min), bmax = vdupq_n_s8((int8_t)p->act_max);
    for (size_t m = m0; m < m1; m++)
        for (int k = 0, off = 0; k < p->n; off += p->c[k], k++) {
            const size_t n = (size_t)p->c[k];
            const int8_t *src = in[k] + m * n;
            int8_t *dst = out + m * C + (size_t)off;
            size_t i = 0;
            if (qat_rt_concat_is_copy(p, k)) {
                for (; i + 16 <= n; i += 16)
                    vst1q_s8(dst + i, vminq_s8(vmaxq_s8(vld1q_s8(src + i), bmin), bmax));
                for (; i < n; i++) {
                    int32_t v = src[i];
                    dst[i] = (int8_t)(v < p->act_min ? p->act_min : v > p->act_max ? p->act_max : v);
                }
                continue;
            }
            const qat_neon_rq4 q = rq_uniform(p->in_mult[k], p->in_shift[k]);
            const int left = p->in_shift[k] > 0;
            const int16x8_t zk = vdupq_n_s16((int16_t)p->in_zp[k]);
            for (; i + 16 <= n; i += 16) {
                int32x4_t v[4];
                widen16(vld1q_s8(src + i), zk, v);
                for (int g = 0; g < 4; g++)
                    v[g] = qat_neon_requant(v[g], &q, left, lo, hi, zp);
                vst1q_s8(dst + i, qat_neon_narrow16(v[0], v[1], v[2], v[3]));
            }
            qat_rt_concat_tail(p, k, src, i, n, dst);
        }
}

/* Per image, 16 channels a step: int32 sums of the codes over the window,
 * minus window * zp (validated: the true sum fits int32), then the output
 * stage. */
void qat_s8_global_avgpool_c16__neon(const qat_rt_merge_params *p, const int8_t *const *in,
                                     int8_t *out, size_t m0, size_t m1)
{
    const size_t C = (size_t)p->out_c, pix = (size_t)p->window;
    const qat_neon_rq4 q = rq_uniform(p->out_mult, p->out_shift);
    const int left = p->out_shift > 0;
    const int32x4_t start = vdupq_n_s32(-p->window * p->in_zp[0]);
    const int32x4_t zp = vdupq_n_s32(p->out_zp);
    const int32x4_t lo = vdupq_n_s32(p->act_min - p->out_zp);
    const int32x4_t hi = vdupq_n_s32(p->act_max - p->out_zp);
    for (size_t m = m0; m < m1; m++) {
        const int8_t *img = in[0] + m * pix * C;
        int8_t *dst = out + m * C;
        size_t ch = 0;
        for (; ch + 16 <= C; ch += 16) {
            int32x4_t s[4] = {start, start, start, start};
            for (size_t px = 0; px < pix; px++) {
                int8x16_t b = vld1q_s8(img + px * C + ch);
                int16x8_t l = vmovl_s8(vget_low_s8(b)), h = vmovl_high_s8(b);
                s[0] = vaddw_s16(s[0], vget_low_s16(l));
                s[1] = vaddw_high_s16(s[1], l);
                s[2] = vaddw_s16(s[2], vget_low_s16(h));
                s[3] = vaddw_high_s16(s[3], h);
            }
            for (int g = 0; g < 4; g++)
                s[g] = qat_neon_requant(s[g], &q, left, lo, hi, zp);
            vst1q_s8(dst + ch, qat_neon_narrow16(s[0], s[1], s[2], s[3]));
        }
        qat_rt_global_avgpool_tail(p, img, ch, dst);
    }
}
