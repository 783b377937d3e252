/* AVX2 kernels of the graph layers (docs/ARITHMETIC.md §4.1): the
 * depthwise conv2d row microkernel (dw_driver.c walks the pixels), add,
 * concat and global average pooling. Built with -mavx2 -mfma; the AVX-512
 * table uses them too, except the depthwise one. Scalar twins:
 * kernels/ref/graph.c; the tails are microkernel.h's scalar ones. */
#include <immintrin.h>
#include <string.h>

#include "runtime/kernels/avx2/kernels_avx2.h"
#include "runtime/kernels/avx2/requant.h"
#include "runtime/kernels/microkernel.h"

#include "qat/fixedpoint.h"

/* ---- depthwise conv2d: 8 channels a ymm, 32 a step ---------------------------------------- */

/* Eight int8 codes at x, or len < 8 of them (the rest 0: their lanes are
 * never stored), widened to int32 minus zp. */
static inline __m256i load8(const int8_t *x, int len, __m256i zp)
{
    __m128i b;
    if (len == 8) {
        b = _mm_loadl_epi64((const __m128i *)(const void *)x);
    } else {
        int8_t t[8] = {0};
        memcpy(t, x, (size_t)len);
        b = _mm_loadl_epi64((const __m128i *)(const void *)t);
    }
    return _mm256_sub_epi32(_mm256_cvtepi8_epi32(b), zp);
}

/* NV vectors of channels from c (the last one len wide) of one output
 * pixel: bias + sum over the window's taps inside the image of
 * (x - zp) * (w - wzp) (pmaddwd of a sign-extended int32 by a weight with
 * a zero high half: exact), then the output stage; stores len channels of
 * the last vector, 8 of the others. */
static inline __attribute__((always_inline)) void
dw_block(const int NV, const qat_rt_dw_head *h, const qat_rt_dw_window *px, size_t c, int len,
         __m256i zp, __m256i lo, __m256i hi, __m256i ozp, int8_t *o)
{
    const int32_t *w = (const int32_t *)qat_rt_dw_weights(h) + c;
    __m256i acc[4];
    for (int v = 0; v < NV; v++)
        acc[v] = _mm256_loadu_si256((const __m256i *)(qat_rt_dw_rq(h, QAT_RT_RQ_BIAS) + c + 8 * v));
    for (int ky = px->ky0; ky < px->ky1; ky++) {
        const int8_t *r = px->rows + (size_t)(ky - px->ky0) * px->rstride + c;
        const int32_t *wr = w + (size_t)ky * (size_t)px->kw * px->oc_pad;
        for (int kx = px->kx0; kx < px->kx1; kx++) {
            const int8_t *x = r + (size_t)(px->ix0 + kx) * px->pix;
            const int32_t *wk = wr + (size_t)kx * px->oc_pad;
            for (int v = 0; v < NV; v++) {
                __m256i xv = load8(x + 8 * v, v == NV - 1 ? len : 8, zp);
                acc[v] = _mm256_add_epi32(
                    acc[v], _mm256_madd_epi16(xv, _mm256_loadu_si256((const __m256i *)(wk + 8 * v))));
            }
        }
    }
    for (int v = 0; v < NV; v++) {
        const size_t cv = c + 8 * (size_t)v;
        qat_avx2_rq8 q = {
            .mult = _mm256_loadu_si256((const __m256i *)(qat_rt_dw_rq(h, QAT_RT_RQ_MULT) + cv)),
            .left = _mm256_loadu_si256((const __m256i *)(qat_rt_dw_rq(h, QAT_RT_RQ_LEFT) + cv)),
            .right = _mm256_loadu_si256((const __m256i *)(qat_rt_dw_rq(h, QAT_RT_RQ_RIGHT) + cv)),
            .mask = _mm256_loadu_si256((const __m256i *)(qat_rt_dw_rq(h, QAT_RT_RQ_MASK) + cv)),
            .thr = _mm256_loadu_si256((const __m256i *)(qat_rt_dw_rq(h, QAT_RT_RQ_THR) + cv))};
        __m128i b = qat_avx2_narrow8(qat_avx2_requant(acc[v], &q, h->any_left, lo, hi, ozp));
        const int n = v == NV - 1 ? len : 8;
        if (n == 8) {
            _mm_storel_epi64((__m128i *)(void *)(o + cv), b);
        } else {
            int8_t t[16];
            _mm_storeu_si128((__m128i *)(void *)t, b);
            memcpy(o + cv, t, (size_t)n);
        }
    }
}

void qat_s8_dwconv2d_row_c8__avx2(const qat_rt_conv_params *p, const int8_t *rows,
                                  size_t rstride, size_t pix, int ky0, int ky1, int ox0,
                                  size_t n, int c0, int c1, int8_t *out)
{
    const qat_rt_dw_head *h = p->packed;
    const __m256i zp = _mm256_set1_epi32(p->in_zp), ozp = _mm256_set1_epi32(p->out_zp);
    const __m256i lo = _mm256_set1_epi32(p->act_min - p->out_zp);
    const __m256i hi = _mm256_set1_epi32(p->act_max - p->out_zp);
    qat_rt_dw_window px = qat_rt_dw_window_of(p, h, rows, rstride, pix, ky0, ky1);
    for (size_t i = 0; i < n; i++) {
        qat_rt_dw_columns(p, ox0 + (int)i, &px);
        int8_t *o = out + i * (size_t)p->out_c;
        int c = c0;
        for (; c + 32 <= c1; c += 32)
            dw_block(4, h, &px, (size_t)c, 8, zp, lo, hi, ozp, o);
        for (; c + 8 <= c1; c += 8)
            dw_block(1, h, &px, (size_t)c, 8, zp, lo, hi, ozp, o);
        if (c < c1)
            dw_block(1, h, &px, (size_t)c, c1 - c, zp, lo, hi, ozp, o);
    }
}

/* ---- add, concat, global_avgpool ------------------------------------------------------------ */

/* One lane-uniform output stage: every lane the same multiplier and shift. */
static inline qat_avx2_rq8 rq_uniform(int32_t mult, int32_t shift)
{
    qat_avx2_rq8 q;
    qat_avx2_rq_lanes(&q, _mm256_set1_epi32(mult), _mm256_set1_epi32(shift));
    return q;
}

/* The two halves of 16 codes, widened to int32 minus zp. */
static inline void widen16(__m128i b, __m256i zp, __m256i *lo, __m256i *hi)
{
    *lo = _mm256_sub_epi32(_mm256_cvtepi8_epi32(b), zp);
    *hi = _mm256_sub_epi32(_mm256_cvtepi8_epi32(_mm_srli_si128(b, 8)), zp);
}

/* qat_rt_add_rescale (microkernel.h, which derives it) on 8 lanes. */
typedef struct add_in8 {
    __m256i mh, ml, c1, c2, rnd, one;
    __m128i count;
} add_in8;

static add_in8 add_in8_of(int32_t mult, int32_t shift, int32_t zp)
{
    const qat_rt_add_rescale k = qat_rt_add_rescale_of(mult, shift, zp);
    add_in8 a = {.mh = _mm256_set1_epi32(k.mh), .ml = _mm256_set1_epi32(k.ml),
                 .c1 = _mm256_set1_epi32(k.c1), .c2 = _mm256_set1_epi32(k.c2),
                 .rnd = _mm256_set1_epi32(k.rnd), .one = _mm256_set1_epi32(k.one),
                 .count = _mm_cvtsi32_si128(k.right)};
    return a;
}

static inline __m256i add_rescale8(__m256i x, const add_in8 *a)
{
    __m256i lo = _mm256_srai_epi32(_mm256_add_epi32(_mm256_mullo_epi32(x, a->ml), a->c1), 11);
    __m256i y = _mm256_add_epi32(_mm256_add_epi32(_mm256_mullo_epi32(x, a->mh), a->c2), lo);
    __m256i neg = _mm256_and_si256(_mm256_srli_epi32(y, 31), a->one);
    return _mm256_sra_epi32(_mm256_sub_epi32(_mm256_add_epi32(y, a->rnd), neg), a->count);
}

/* TFLite's ADD, 16 elements a step: each input's codes rescaled
 * (add_rescale8; validated: shift <= 0, so both stay below 2^28 and their
 * sum in int32), summed and requantized. */
void qat_s8_add_x16__avx2(const qat_rt_merge_params *p, const int8_t *const *in, int8_t *out,
                          size_t m0, size_t m1)
{
    const size_t C = (size_t)p->out_c, end = m1 * C;
    const add_in8 ia = add_in8_of(p->in_mult[0], p->in_shift[0], p->in_zp[0]);
    const add_in8 ib = add_in8_of(p->in_mult[1], p->in_shift[1], p->in_zp[1]);
    const qat_avx2_rq8 qo = rq_uniform(p->out_mult, p->out_shift);
    const int lo_ = p->out_shift > 0;
    const __m256i zp = _mm256_set1_epi32(p->out_zp);
    const __m256i lo = _mm256_set1_epi32(p->act_min - p->out_zp);
    const __m256i hi = _mm256_set1_epi32(p->act_max - p->out_zp);
    const int8_t *a = in[0], *b = in[1];
    size_t i = m0 * C;
    for (; i + 16 <= end; i += 16) {
        const __m128i u = _mm_loadu_si128((const __m128i *)(const void *)(a + i));
        const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + i));
        __m256i r[2];
        for (int j = 0; j < 2; j++) {
            __m256i ra = add_rescale8(_mm256_cvtepi8_epi32(j ? _mm_srli_si128(u, 8) : u), &ia);
            __m256i rb = add_rescale8(_mm256_cvtepi8_epi32(j ? _mm_srli_si128(v, 8) : v), &ib);
            r[j] = qat_avx2_requant(_mm256_add_epi32(ra, rb), &qo, lo_, lo, hi, zp);
        }
        _mm_storeu_si128((__m128i *)(void *)(out + i), qat_avx2_narrow16(r[0], r[1]));
    }
    qat_rt_add_tail(p, a, b, i, end, out);
}

/* Each input's run of channels requantized onto the output, 16 codes a
 * step; an input whose requantization is the identity (microkernel.h) is
 * only clamped, 32 codes a step. */
void qat_s8_concat_x16__avx2(const qat_rt_merge_params *p, const int8_t *const *in, int8_t *out,
                             size_t m0, size_t m1)
{
    const size_t C = (size_t)p->out_c;
    const __m256i zp = _mm256_set1_epi32(p->out_zp);
    const __m256i lo = _mm256_set1_epi32(p->act_min - p->out_zp);
    const __m256i hi = _mm256_set1_epi32(p->act_max - p->out_zp);
    const __m256i bmin = _mm256_set1_epi8((char)p->act_min);
    const __m256i bmax = _mm256_set1_epi8((char)p->act_max);
    for (size_t m = m0; m < m1; m++)
        for (int k = 0, off = 0; k < p->n; off += p->c[k], k++) {
            const size_t n = (size_t)p->c[k];
            const int8_t *src = in[k] + m * n;
            int8_t *dst = out + m * C + (size_t)off;
            size_t i = 0;
            if (qat_rt_concat_is_copy(p, k)) {
                for (; i + 32 <= n; i += 32) {
                    __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(src + i));
                    v = _mm256_min_epi8(_mm256_max_epi8(v, bmin), bmax);
                    _mm256_storeu_si256((__m256i *)(void *)(dst + i), v);
                }
                for (; i < n; i++) {
                    int32_t v = src[i];
                    dst[i] = (int8_t)(v < p->act_min ? p->act_min : v > p->act_max ? p->act_max : v);
                }
                continue;
            }
            const qat_avx2_rq8 q = rq_uniform(p->in_mult[k], p->in_shift[k]);
            const int left = p->in_shift[k] > 0;
            const __m256i zk = _mm256_set1_epi32(p->in_zp[k]);
            for (; i + 16 <= n; i += 16) {
                __m256i v0, v1;
                widen16(_mm_loadu_si128((const __m128i *)(const void *)(src + i)), zk, &v0, &v1);
                v0 = qat_avx2_requant(v0, &q, left, lo, hi, zp);
                v1 = qat_avx2_requant(v1, &q, left, lo, hi, zp);
                _mm_storeu_si128((__m128i *)(void *)(dst + i), qat_avx2_narrow16(v0, v1));
            }
            qat_rt_concat_tail(p, k, src, i, n, dst);
        }
}

/* Per image, 16 channels a step: the int32 sums of the codes over the
 * window, minus window * zp (|.| <= 2^30; the true sum fits int32,
 * validated), then the output stage. */
void qat_s8_global_avgpool_c16__avx2(const qat_rt_merge_params *p, const int8_t *const *in,
                                     int8_t *out, size_t m0, size_t m1)
{
    const size_t C = (size_t)p->out_c, pix = (size_t)p->window;
    const qat_avx2_rq8 q = rq_uniform(p->out_mult, p->out_shift);
    const int left = p->out_shift > 0;
    const __m256i start = _mm256_set1_epi32(-p->window * p->in_zp[0]);
    const __m256i zp = _mm256_set1_epi32(p->out_zp);
    const __m256i lo = _mm256_set1_epi32(p->act_min - p->out_zp);
    const __m256i hi = _mm256_set1_epi32(p->act_max - p->out_zp);
    for (size_t m = m0; m < m1; m++) {
        const int8_t *img = in[0] + m * pix * C;
        int8_t *dst = out + m * C;
        size_t ch = 0;
        for (; ch + 16 <= C; ch += 16) {
            __m256i s0 = start, s1 = start;
            for (size_t px = 0; px < pix; px++) {
                __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(img + px * C + ch));
                s0 = _mm256_add_epi32(s0, _mm256_cvtepi8_epi32(b));
                s1 = _mm256_add_epi32(s1, _mm256_cvtepi8_epi32(_mm_srli_si128(b, 8)));
            }
            s0 = qat_avx2_requant(s0, &q, left, lo, hi, zp);
            s1 = qat_avx2_requant(s1, &q, left, lo, hi, zp);
            _mm_storeu_si128((__m128i *)(void *)(dst + ch), qat_avx2_narrow16(s0, s1));
        }
        qat_rt_global_avgpool_tail(p, img, ch, dst);
    }
}
