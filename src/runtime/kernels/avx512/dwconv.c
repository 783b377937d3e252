/* AVX-512 VNNI depthwise conv2d row microkernel (dw_driver.c walks the
 * pixels): 16 channels a zmm, 64 a step, vpdpwssd of the sign-extended
 * int32 x - zp by the packed w - wzp (an int16 in the low half, 0 in the
 * high half; welem 4), so each lane adds exactly (x - zp) * (w - wzp).
 * Channel tails use masked loads and stores. A 3x3 window whose columns
 * are inside the image (all but the first and last pixel of a row in
 * DS-CNN / MobileNet layers) takes dw3x3_run: weights and output stage in
 * registers for a run of pixels, two pixels a step, the zero point in the
 * accumulator's start (GMAC/s 1.25x the per-pixel walk's on a 14x14x64
 * layer, 1.5x on the DS-CNN's dw1, bench-infer). The output stage is
 * conv2d's (requant.h). Built with the AVX-512 flags; the path's other
 * graph kernels are AVX2's. Scalar twin: kernels/ref/graph.c. */
#include <immintrin.h>
#include <stdint.h>

#include "runtime/kernels/avx512/kernels_avx512.h"
#include "runtime/kernels/avx512/requant.h"

/* The output stage's lanes of channels [c, c + 16). */
static inline __attribute__((always_inline)) void rq_load(qat_avx512_rq16 *q,
                                                        const qat_rt_dw_head *h, size_t c)
{
    q->mult = _mm512_loadu_si512(qat_rt_dw_rq(h, QAT_RT_RQ_MULT) + c);
    q->mult_odd = _mm512_srli_epi64(q->mult, 32);
    q->left = _mm512_loadu_si512(qat_rt_dw_rq(h, QAT_RT_RQ_LEFT) + c);
    q->right = _mm512_loadu_si512(qat_rt_dw_rq(h, QAT_RT_RQ_RIGHT) + c);
    q->mask = _mm512_loadu_si512(qat_rt_dw_rq(h, QAT_RT_RQ_MASK) + c);
    q->thr = _mm512_loadu_si512(qat_rt_dw_rq(h, QAT_RT_RQ_THR) + c);
}

/* NV vectors of 16 channels from c of one output pixel; the last vector's
 * lanes limited to the mask `last` (loads and stores). */
static inline __attribute__((always_inline)) void
dw_block(const int NV, const qat_rt_dw_head *h, const qat_rt_dw_window *px, size_t c, __mmask16 last,
         __m512i zp, __m512i lo, __m512i hi, __m512i ozp, int8_t *o)
{
    const int32_t *w = (const int32_t *)qat_rt_dw_weights(h) + c;
    __m512i acc[4];
    for (int v = 0; v < NV; v++)
        acc[v] = _mm512_loadu_si512(qat_rt_dw_rq(h, QAT_RT_RQ_BIAS) + c + 16 * v);
    for (int ky = px->ky0; ky < px->ky1; ky++) {
        const int8_t *r = px->rows + (size_t)(ky - px->ky0) * px->rstride + c;
        const int32_t *wr = w + (size_t)ky * (size_t)px->kw * px->oc_pad;
        for (int kx = px->kx0; kx < px->kx1; kx++) {
            const int8_t *x = r + (size_t)(px->ix0 + kx) * px->pix;
            const int32_t *wk = wr + (size_t)kx * px->oc_pad;
            for (int v = 0; v < NV; v++) {
                __m128i b = v == NV - 1 ? _mm_maskz_loadu_epi8(last, x + 16 * v)
                                        : _mm_loadu_si128((const __m128i *)(const void *)(x + 16 * v));
                __m512i xv = _mm512_sub_epi32(_mm512_cvtepi8_epi32(b), zp);
                acc[v] = _mm512_dpwssd_epi32(acc[v], xv, _mm512_loadu_si512(wk + 16 * v));
            }
        }
    }
    for (int v = 0; v < NV; v++) {
        qat_avx512_rq16 q;
        rq_load(&q, h, c + 16 * (size_t)v);
        _mm512_mask_cvtsepi32_storeu_epi8(o + c + 16 * (size_t)v, v == NV - 1 ? last : 0xFFFF,
                                          qat_avx512_requant(acc[v], &q, h->any_left, lo, hi, ozp));
    }
}

/* The pixels [i0, i1) of a 3x3 window whose three columns lie inside the
 * image, as do NR of its rows (px->ky0 on), channels [c, c + 16) (the lanes
 * of m; full: all 16): the 3 * NR weight vectors and the output stage's
 * lanes stay in registers for the run, and the input zero point is taken
 * out of the accumulator's start once, bias + sum_t (-zp)(w_t - wzp) over
 * those taps, instead of from every tap: the same int32 (vpdpwssd adds
 * modulo 2^32, as the per-tap x - zp does). */
static inline __attribute__((always_inline)) void
dw3x3_run(const int full, const int NR, const int nn, const qat_rt_conv_params *p,
          const qat_rt_dw_head *h,
          const qat_rt_dw_window *px, int ox0, size_t i0, size_t i1, size_t c, __mmask16 m,
          __m512i lo, __m512i hi, __m512i ozp, int8_t *out)
{
    const int32_t *w = (const int32_t *)qat_rt_dw_weights(h) + c + (size_t)(3 * px->ky0) * px->oc_pad;
    const __m512i nzp = _mm512_set1_epi32(-p->in_zp);
    __m512i wv[9];
    __m512i start = _mm512_loadu_si512(qat_rt_dw_rq(h, QAT_RT_RQ_BIAS) + c);
    for (int t = 0; t < 3 * NR; t++) {
        wv[t] = _mm512_loadu_si512(w + (size_t)t * px->oc_pad);
        start = _mm512_dpwssd_epi32(start, nzp, wv[t]);
    }
    qat_avx512_rq16 q;
    qat_avx512_rq16nn qn;
    if (nn)
        qn = qat_avx512_rq_nn(_mm512_loadu_si512(qat_rt_dw_rq(h, QAT_RT_RQ_MULT) + c),
                              _mm512_loadu_si512(qat_rt_dw_rq(h, QAT_RT_RQ_RIGHT) + c),
                              p->out_zp);
    else
        rq_load(&q, h, c);
    const __m512i amin = _mm512_set1_epi32(p->act_min), amax = _mm512_set1_epi32(p->act_max);
    const int any_left = h->any_left;
#define QAT_DW_STAGE(a)                                                                          \
    _mm512_cvtsepi32_epi8(nn ? qat_avx512_requant_nn(a, &qn, amin, amax)                          \
                             : qat_avx512_requant(a, &q, any_left, lo, hi, ozp))
    const size_t sx = (size_t)p->stride_w * px->pix, rs = px->rstride, pix = px->pix;
    const int8_t *x = px->rows + (size_t)((ox0 + (int)i0) * p->stride_w - p->pad_w) * pix + c;
    const size_t oc = (size_t)p->out_c;
    int8_t *o = out + i0 * oc + c;
    size_t i = i0;
    /* two pixels a step: their chains of taps and output stages interleave */
    for (; i + 2 <= i1; i += 2, x += 2 * sx, o += 2 * oc) {
        __m512i a0 = start, a1 = start;
        for (int t = 0; t < 3 * NR; t++) {
            const int8_t *xt = x + (size_t)(t / 3) * rs + (size_t)(t % 3) * pix;
            const __m128i b0 = full ? _mm_loadu_si128((const __m128i *)(const void *)xt)
                                    : _mm_maskz_loadu_epi8(m, xt);
            const __m128i b1 = full ? _mm_loadu_si128((const __m128i *)(const void *)(xt + sx))
                                    : _mm_maskz_loadu_epi8(m, xt + sx);
            a0 = _mm512_dpwssd_epi32(a0, _mm512_cvtepi8_epi32(b0), wv[t]);
            a1 = _mm512_dpwssd_epi32(a1, _mm512_cvtepi8_epi32(b1), wv[t]);
        }
        const __m128i r0 = QAT_DW_STAGE(a0), r1 = QAT_DW_STAGE(a1);
        if (full) {
            _mm_storeu_si128((__m128i *)(void *)o, r0);
            _mm_storeu_si128((__m128i *)(void *)(o + oc), r1);
        } else {
            _mm_mask_storeu_epi8(o, m, r0);
            _mm_mask_storeu_epi8(o + oc, m, r1);
        }
    }
    if (i < i1) {
        __m512i a0 = start;
        for (int t = 0; t < 3 * NR; t++) {
            const int8_t *xt = x + (size_t)(t / 3) * rs + (size_t)(t % 3) * pix;
            const __m128i b = full ? _mm_loadu_si128((const __m128i *)(const void *)xt)
                                   : _mm_maskz_loadu_epi8(m, xt);
            a0 = _mm512_dpwssd_epi32(a0, _mm512_cvtepi8_epi32(b), wv[t]);
        }
        const __m128i r = QAT_DW_STAGE(a0);
        if (full)
            _mm_storeu_si128((__m128i *)(void *)o, r);
        else
            _mm_mask_storeu_epi8(o, m, r);
    }
#undef QAT_DW_STAGE
}

/* dw3x3_run over the channel blocks of [c0, c1), NR window rows. */
static inline __attribute__((always_inline)) void
dw3x3_rows(const int NR, const qat_rt_conv_params *p, const qat_rt_dw_head *h,
           const qat_rt_dw_window *px, int ox0, size_t i0, size_t i1, int c0, int c1,
           __m512i lo, __m512i hi, __m512i ozp, int8_t *out)
{
    const int nn = qat_avx512_nn_ok(h->any_left, h->min_right, h->max_right, p->act_min,
                                    p->out_zp); /* requant.h */
    int c = c0;
    for (; c + 16 <= c1; c += 16)
        if (nn)
            dw3x3_run(1, NR, 1, p, h, px, ox0, i0, i1, (size_t)c, 0xFFFF, lo, hi, ozp, out);
        else
            dw3x3_run(1, NR, 0, p, h, px, ox0, i0, i1, (size_t)c, 0xFFFF, lo, hi, ozp, out);
    if (c < c1) /* a channel tail: the general stage (one instantiation fewer per NR) */
        dw3x3_run(0, NR, 0, p, h, px, ox0, i0, i1, (size_t)c, _cvtu32_mask16((1u << (c1 - c)) - 1u),
                  lo, hi, ozp, out);
}

/* One pixel, every channel block of [c0, c1). */
static void dw_pixel(const qat_rt_dw_head *h, const qat_rt_dw_window *px, int c0, int c1,
                     __m512i zp, __m512i lo, __m512i hi, __m512i ozp, int8_t *o)
{
    int c = c0;
    for (; c + 64 <= c1; c += 64)
        dw_block(4, h, px, (size_t)c, 0xFFFF, zp, lo, hi, ozp, o);
    if (c + 32 <= c1) {
        dw_block(2, h, px, (size_t)c, 0xFFFF, zp, lo, hi, ozp, o);
        c += 32;
    }
    for (; c + 16 <= c1; c += 16)
        dw_block(1, h, px, (size_t)c, 0xFFFF, zp, lo, hi, ozp, o);
    if (c < c1)
        dw_block(1, h, px, (size_t)c, _cvtu32_mask16((1u << (c1 - c)) - 1u), zp, lo, hi, ozp, o);
}

void qat_s8_dwconv2d_row_c16__avx512vnni(const qat_rt_conv_params *p, const int8_t *rows,
                                         size_t rstride, size_t pix, int ky0, int ky1, int ox0,
                                         size_t n, int c0, int c1, int8_t *out)
{
    const qat_rt_dw_head *h = p->packed;
    const __m512i zp = _mm512_set1_epi32(p->in_zp), ozp = _mm512_set1_epi32(p->out_zp);
    const __m512i lo = _mm512_set1_epi32(p->act_min - p->out_zp);
    const __m512i hi = _mm512_set1_epi32(p->act_max - p->out_zp);
    qat_rt_dw_window px = qat_rt_dw_window_of(p, h, rows, rstride, pix, ky0, ky1);
    /* a 3x3 window: the pixels [i0, i1) whose three columns are in the
     * image take dw3x3_run, over the window rows [ky0, ky1) in the image */
    size_t i0 = n, i1 = n;
    if (p->kernel_h == 3 && p->kernel_w == 3 && ky1 > ky0) {
        const int sw = p->stride_w, first = (p->pad_w + sw - 1) / sw;
        const int last = (p->in_w - 3 + p->pad_w) / sw; /* the last interior column */
        const int a = first > ox0 ? first - ox0 : 0, b = last + 1 - ox0;
        if (p->in_w >= 3 && b > a && (size_t)a < n) {
            i0 = (size_t)a;
            i1 = (size_t)b < n ? (size_t)b : n;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (i == i0) {
            switch (ky1 - ky0) {
            case 3: dw3x3_rows(3, p, h, &px, ox0, i0, i1, c0, c1, lo, hi, ozp, out); break;
            case 2: dw3x3_rows(2, p, h, &px, ox0, i0, i1, c0, c1, lo, hi, ozp, out); break;
            default: dw3x3_rows(1, p, h, &px, ox0, i0, i1, c0, c1, lo, hi, ozp, out); break;
            }
            i = i1 - 1;
            continue;
        }
        qat_rt_dw_columns(p, ox0 + (int)i, &px);
        dw_pixel(h, &px, c0, c1, zp, lo, hi, ozp, out + i * (size_t)p->out_c);
    }
}
