/* The output stage of docs/ARITHMETIC.md §3.4 on 8 int32 lanes, bit for bit
 * qat_fp_requantize. Only for files built with -mavx2. Per-lane inputs are
 * the channel's multiplier m0 in [0, 2^31), left = max(shift, 0),
 * right = max(-shift, 0), mask = 2^right - 1 and thr = mask >> 1. */
#ifndef QAT_RT_AVX2_REQUANT_H
#define QAT_RT_AVX2_REQUANT_H

#include <immintrin.h>
#include <stdint.h>

typedef struct qat_avx2_rq8 {
    __m256i mult, left, right, mask, thr;
} qat_avx2_rq8;

/* SatShl(x, left): x << left, or INT32_MAX / INT32_MIN (by the sign of x)
 * when shifting back does not give x (left <= 30, so the shifted-out bits
 * decide). */
static inline __m256i qat_avx2_sat_shl(__m256i x, __m256i left)
{
    __m256i sh = _mm256_sllv_epi32(x, left);
    __m256i ok = _mm256_cmpeq_epi32(_mm256_srav_epi32(sh, left), x);
    __m256i sat = _mm256_xor_si256(_mm256_srai_epi32(x, 31), _mm256_set1_epi32(INT32_MAX));
    return _mm256_blendv_epi8(sat, sh, ok);
}

/* SRDHM(a, m) = floor((a * m + 2^30) / 2^31). That one formula is gemmlowp's
 * nudge-and-truncate for both signs: for a * m < 0, truncating
 * (a * m + 1 - 2^30) / 2^31 toward zero is the ceiling, which equals the
 * floor of (a * m + 2^30) / 2^31. The only overflowing case of SRDHM needs
 * m = INT32_MIN; multipliers are validated >= 0. The 64-bit products come
 * from vpmuldq on the even lanes and on the odd lanes shifted down; bits
 * 31..62 of each sum are the result. */
static inline __m256i qat_avx2_srdhm(__m256i a, __m256i m)
{
    const __m256i nudge = _mm256_set1_epi64x(1LL << 30);
    __m256i even = _mm256_add_epi64(_mm256_mul_epi32(a, m), nudge);
    __m256i odd = _mm256_add_epi64(
        _mm256_mul_epi32(_mm256_srli_epi64(a, 32), _mm256_srli_epi64(m, 32)), nudge);
    even = _mm256_srli_epi64(even, 31);
    odd = _mm256_slli_epi64(odd, 1);
    return _mm256_blend_epi32(even, odd, 0xAA);
}

/* RDPOT(x, right): (x >> right) + (remainder > thr + (x < 0)). */
static inline __m256i qat_avx2_rdpot(__m256i x, __m256i right, __m256i mask, __m256i thr)
{
    __m256i rem = _mm256_and_si256(x, mask);
    __m256i t = _mm256_sub_epi32(thr, _mm256_srai_epi32(x, 31));
    return _mm256_sub_epi32(_mm256_srav_epi32(x, right), _mm256_cmpgt_epi32(rem, t));
}

/* Rescale (qat_fp_rescale): the stage before the zero point and the clamp. */
static inline __m256i qat_avx2_rescale(__m256i acc, const qat_avx2_rq8 *q, int any_left)
{
    if (any_left)
        acc = qat_avx2_sat_shl(acc, q->left);
    return qat_avx2_rdpot(qat_avx2_srdhm(acc, q->mult), q->right, q->mask, q->thr);
}

/* The whole stage; lo/hi are act_min - zp and act_max - zp: clamping before
 * adding the zero point gives the same codes as the reference's int64
 * add-then-clamp, without the int32 add ever overflowing. */
static inline __m256i qat_avx2_requant(__m256i acc, const qat_avx2_rq8 *q, int any_left,
                                       __m256i lo, __m256i hi, __m256i zp)
{
    __m256i v = qat_avx2_rescale(acc, q, any_left);
    v = _mm256_min_epi32(_mm256_max_epi32(v, lo), hi);
    return _mm256_add_epi32(v, zp);
}

/* The lanes of a stage from each lane's multiplier and shift, as the
 * packing code computes them. */
static inline void qat_avx2_rq_lanes(qat_avx2_rq8 *q, __m256i mult, __m256i shift)
{
    const __m256i zero = _mm256_setzero_si256();
    q->mult = mult;
    q->left = _mm256_max_epi32(shift, zero);
    q->right = _mm256_max_epi32(_mm256_sub_epi32(zero, shift), zero);
    q->mask = _mm256_sub_epi32(_mm256_sllv_epi32(_mm256_set1_epi32(1), q->right),
                               _mm256_set1_epi32(1));
    q->thr = _mm256_srli_epi32(q->mask, 1);
}

/* 16 int32 codes (already in [-128, 127]) -> 16 bytes in order. */
static inline __m128i qat_avx2_narrow16(__m256i a, __m256i b)
{
    __m256i p16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8);
    return _mm_packs_epi16(_mm256_castsi256_si128(p16), _mm256_extracti128_si256(p16, 1));
}

/* 8 int32 codes -> 8 bytes in the low half. */
static inline __m128i qat_avx2_narrow8(__m256i a)
{
    __m128i p16 = _mm_packs_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    return _mm_packs_epi16(p16, p16);
}

#endif
