/* AVX2 pool row microkernels (pool_driver.c walks the pixels), input
 * quantization and the standalone output stage. Built with -mavx2 -mfma.
 * Scalar twins: kernels/ref. */
#include <immintrin.h>
#include <string.h>

#include "runtime/kernels/avx2/kernels_avx2.h"
#include "runtime/kernels/avx2/requant.h"

#include "qat/fixedpoint.h"

/* p - 128 on the byte is flipping its top bit. */
void qat_u8_quantize_input_x32__avx2(const uint8_t *pixels, int8_t *q, size_t count)
{
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    size_t i = 0;
    for (; i + 32 <= count; i += 32)
        _mm256_storeu_si256((__m256i *)(q + i),
                            _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(pixels + i)), flip));
    for (; i < count; i++)
        q[i] = (int8_t)(pixels[i] ^ 0x80);
}

/* Channels are the vector axis: 32 per ymm, then 16 per xmm, then scalar. */
void qat_s8_maxpool_row_c32__avx2(const qat_rt_pool_params *p, const int8_t *win, size_t n,
                                  int8_t *out)
{
    const size_t c = (size_t)p->c, in_w = (size_t)p->in_w, xstep = (size_t)p->stride_w * c;
    for (size_t i = 0; i < n; i++, win += xstep) {
        int8_t *dst = out + i * c;
        size_t ch = 0;
        for (; ch + 32 <= c; ch += 32) {
            __m256i v = _mm256_set1_epi8(INT8_MIN);
            for (int ky = 0; ky < p->kernel_h; ky++)
                for (int kx = 0; kx < p->kernel_w; kx++)
                    v = _mm256_max_epi8(v, _mm256_loadu_si256((const __m256i *)(
                                               win + ((size_t)ky * in_w + (size_t)kx) * c + ch)));
            _mm256_storeu_si256((__m256i *)(dst + ch), v);
        }
        for (; ch + 16 <= c; ch += 16) {
            __m128i v = _mm_set1_epi8(INT8_MIN);
            for (int ky = 0; ky < p->kernel_h; ky++)
                for (int kx = 0; kx < p->kernel_w; kx++)
                    v = _mm_max_epi8(v, _mm_loadu_si128((const __m128i *)(
                                            win + ((size_t)ky * in_w + (size_t)kx) * c + ch)));
            _mm_storeu_si128((__m128i *)(dst + ch), v);
        }
        qat_rt_maxpool_tail(p, win, ch, dst);
    }
}

/* floor(u / n) for 8 lanes of u in [0, 2^31): (u * mul) >> shift in 64 bits
 * (qat_rt_pool_divisor). */
static inline __m256i div_floor(__m256i u, __m256i mul, __m128i shift)
{
    __m256i even = _mm256_srl_epi64(_mm256_mul_epu32(u, mul), shift);
    __m256i odd = _mm256_srl_epi64(_mm256_mul_epu32(_mm256_srli_epi64(u, 32), mul), shift);
    return _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
}

/* DivRound(s, n) = sign(s) * floor((|s| + n/2) / n), then + zp, clamped. */
void qat_s8_avgpool_row_c8__avx2(const qat_rt_pool_params *p, const int8_t *win, size_t count,
                                 int8_t *out)
{
    const size_t c = (size_t)p->c, in_w = (size_t)p->in_w, xstep = (size_t)p->stride_w * c;
    const int32_t n = p->kernel_h * p->kernel_w;
    const __m256i bias = _mm256_set1_epi32(-n * p->zp); /* sum (x - zp) = sum x - n * zp */
    const __m256i half = _mm256_set1_epi32(n / 2), zp = _mm256_set1_epi32(p->zp);
    const __m256i mul = _mm256_set1_epi32((int32_t)p->div_mul);
    const __m128i shift = _mm_cvtsi32_si128(p->div_shift);
    for (size_t i = 0; i < count; i++, win += xstep) {
        int8_t *dst = out + i * c;
        size_t ch = 0;
        for (; ch + 8 <= c; ch += 8) {
            __m256i s = bias;
            for (int ky = 0; ky < p->kernel_h; ky++)
                for (int kx = 0; kx < p->kernel_w; kx++)
                    s = _mm256_add_epi32(s, _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(
                                                win + ((size_t)ky * in_w + (size_t)kx) * c + ch))));
            __m256i q = div_floor(_mm256_add_epi32(_mm256_abs_epi32(s), half), mul, shift);
            q = _mm256_sign_epi32(q, s); /* negate where s < 0 (q is 0 where s is 0) */
            __m128i b = qat_avx2_narrow8(_mm256_add_epi32(q, zp)); /* packs saturate to int8 */
            _mm_storel_epi64((__m128i *)(dst + ch), b);
        }
        qat_rt_avgpool_tail(p, win, ch, dst);
    }
}

void qat_s32_requantize_x8__avx2(const qat_rt_requant_params *q, const int32_t *acc, int8_t *out,
                                 size_t rows)
{
    const size_t n = (size_t)q->channels;
    const __m256i zp = _mm256_set1_epi32(q->out_zp);
    const __m256i lo = _mm256_set1_epi32(q->act_min - q->out_zp);
    const __m256i hi = _mm256_set1_epi32(q->act_max - q->out_zp);
    for (size_t r = 0; r < rows; r++) {
        const int32_t *a = acc + r * n;
        int8_t *o = out + r * n;
        for (size_t c = 0; c < n; c += 8) {
            size_t len = n - c < 8 ? n - c : 8;
            int32_t av[8] = {0}, mv[8] = {0}, sv[8] = {0};
            memcpy(av, a + c, len * sizeof(int32_t));
            memcpy(mv, q->multiplier + c, len * sizeof(int32_t));
            memcpy(sv, q->shift + c, len * sizeof(int32_t));
            qat_avx2_rq8 rq;
            qat_avx2_rq_lanes(&rq, _mm256_loadu_si256((const __m256i *)mv),
                              _mm256_loadu_si256((const __m256i *)sv));
            __m128i b = qat_avx2_narrow8(qat_avx2_requant(_mm256_loadu_si256((const __m256i *)av),
                                                          &rq, 1, lo, hi, zp));
            int8_t tmp[16];
            _mm_storeu_si128((__m128i *)tmp, b);
            memcpy(o + c, tmp, len);
        }
    }
}
