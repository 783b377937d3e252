/* AVX-512 VNNI depthwise conv2d row microkernel (dw_driver.c walks the
 * pixels): 16 channels a zmm, 64 a step, vpdpwssd of the sign-extended
 * int32 x - zp by the packed w - wzp (an int16 in the low half, 0 in the
 * high half; welem 4), so each lane adds exactly (x - zp) * (w - wzp).
 * Channel tails use masked loads and stores. Built with the AVX-512 flags;
 * the path's other graph kernels are AVX2's. Scalar twin:
 * kernels/ref/graph.c. */
#include <immintrin.h>
#include <stdint.h>

#include "runtime/kernels/avx512/kernels_avx512.h"

/* The output stage on 16 lanes (docs/ARITHMETIC.md §3.4; the steps of
 * kernels/avx2/requant.h, which explains them), the per-channel lanes read
 * from the packed arrays at channel c. */
static inline __m512i requant16(const qat_rt_dw_head *h, size_t c, __m512i acc, __m512i lo,
                                __m512i hi, __m512i zp)
{
    if (h->any_left) {
        const __m512i left = _mm512_loadu_si512(qat_rt_dw_rq(h, QAT_RT_RQ_LEFT) + c);
        __m512i sh = _mm512_sllv_epi32(acc, left);
        __mmask16 ok = _mm512_cmpeq_epi32_mask(_mm512_srav_epi32(sh, left), acc);
        __m512i sat = _mm512_xor_si512(_mm512_srai_epi32(acc, 31), _mm512_set1_epi32(INT32_MAX));
        acc = _mm512_mask_blend_epi32(ok, sat, sh);
    }
    const __m512i mult = _mm512_loadu_si512(qat_rt_dw_rq(h, QAT_RT_RQ_MULT) + c);
    const __m512i nudge = _mm512_set1_epi64(1LL << 30);
    __m512i even = _mm512_add_epi64(_mm512_mul_epi32(acc, mult), nudge);
    __m512i odd = _mm512_add_epi64(
        _mm512_mul_epi32(_mm512_srli_epi64(acc, 32), _mm512_srli_epi64(mult, 32)), nudge);
    __m512i v = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 31),
                                        _mm512_slli_epi64(odd, 1));
    const __m512i mask = _mm512_loadu_si512(qat_rt_dw_rq(h, QAT_RT_RQ_MASK) + c);
    const __m512i thr = _mm512_loadu_si512(qat_rt_dw_rq(h, QAT_RT_RQ_THR) + c);
    __m512i rem = _mm512_and_si512(v, mask);
    __m512i t = _mm512_sub_epi32(thr, _mm512_srai_epi32(v, 31));
    __m512i r = _mm512_srav_epi32(v, _mm512_loadu_si512(qat_rt_dw_rq(h, QAT_RT_RQ_RIGHT) + c));
    r = _mm512_mask_add_epi32(r, _mm512_cmpgt_epi32_mask(rem, t), r, _mm512_set1_epi32(1));
    r = _mm512_min_epi32(_mm512_max_epi32(r, lo), hi);
    return _mm512_add_epi32(r, zp);
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
    for (int v = 0; v < NV; v++)
        _mm512_mask_cvtsepi32_storeu_epi8(o + c + 16 * (size_t)v, v == NV - 1 ? last : 0xFFFF,
                                          requant16(h, c + 16 * (size_t)v, acc[v], lo, hi, ozp));
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
    for (size_t i = 0; i < n; i++) {
        qat_rt_dw_columns(p, ox0 + (int)i, &px);
        int8_t *o = out + i * (size_t)p->out_c;
        int c = c0;
        for (; c + 64 <= c1; c += 64)
            dw_block(4, h, &px, (size_t)c, 0xFFFF, zp, lo, hi, ozp, o);
        if (c + 32 <= c1) {
            dw_block(2, h, &px, (size_t)c, 0xFFFF, zp, lo, hi, ozp, o);
            c += 32;
        }
        for (; c + 16 <= c1; c += 16)
            dw_block(1, h, &px, (size_t)c, 0xFFFF, zp, lo, hi, ozp, o);
        if (c < c1)
            dw_block(1, h, &px, (size_t)c, _cvtu32_mask16((1u << (c1 - c)) - 1u), zp, lo, hi, ozp,
                     o);
    }
}
