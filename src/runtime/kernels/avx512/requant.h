/* The output stage of docs/ARITHMETIC.md §3.4 on 16 int32 lanes, bit for
 * bit qat_fp_requantize: the steps of kernels/avx2/requant.h (which
 * explains them) with mask registers for the compares. Only for files
 * built with the AVX-512 flags. Per-lane inputs are the multiplier m0 in
 * [0, 2^31) (mult_odd: the odd lanes' m0 in the low half of each 64-bit
 * lane, for vpmuldq), left = max(shift, 0), right = max(-shift, 0),
 * mask = 2^right - 1 and thr = mask >> 1. Always inlined: GCC kept the
 * conv tiles' output stage (then in conv2d.c, plain static inline) as a
 * call per row of 16 lanes, with its loads, and its lane loader (rq_load)
 * too: 5.7% and 1.6% of the int8 ResNet-8's samples at batch 64. */
#ifndef QAT_RT_AVX512_REQUANT_H
#define QAT_RT_AVX512_REQUANT_H

#include <immintrin.h>
#include <stdint.h>

typedef struct qat_avx512_rq16 {
    __m512i mult, mult_odd, left, right, mask, thr;
} qat_avx512_rq16;

/* Rescale (qat_fp_rescale): SatShl, SRDHM, RDPOT; the stage before the
 * zero point and the clamp. */
static inline __attribute__((always_inline)) __m512i
qat_avx512_rescale(__m512i acc, const qat_avx512_rq16 *q, int any_left)
{
    if (any_left) {
        __m512i sh = _mm512_sllv_epi32(acc, q->left);
        __mmask16 ok = _mm512_cmpeq_epi32_mask(_mm512_srav_epi32(sh, q->left), acc);
        __m512i sat = _mm512_xor_si512(_mm512_srai_epi32(acc, 31), _mm512_set1_epi32(INT32_MAX));
        acc = _mm512_mask_blend_epi32(ok, sat, sh);
    }
    const __m512i nudge = _mm512_set1_epi64(1LL << 30);
    __m512i even = _mm512_add_epi64(_mm512_mul_epi32(acc, q->mult), nudge);
    __m512i odd =
        _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(acc, 32), q->mult_odd), nudge);
    __m512i v = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 31),
                                        _mm512_slli_epi64(odd, 1));
    __m512i rem = _mm512_and_si512(v, q->mask);
    __m512i t = _mm512_sub_epi32(q->thr, _mm512_srai_epi32(v, 31));
    __m512i r = _mm512_srav_epi32(v, q->right);
    return _mm512_mask_add_epi32(r, _mm512_cmpgt_epi32_mask(rem, t), r, _mm512_set1_epi32(1));
}

/* The whole stage; lo/hi are act_min - zp and act_max - zp (as on AVX2:
 * clamping before the zero point is added never overflows). */
static inline __attribute__((always_inline)) __m512i
qat_avx512_requant(__m512i acc, const qat_avx512_rq16 *q, int any_left, __m512i lo, __m512i hi,
                   __m512i zp)
{
    __m512i r = qat_avx512_rescale(acc, q, any_left);
    r = _mm512_min_epi32(_mm512_max_epi32(r, lo), hi);
    return _mm512_add_epi32(r, zp);
}

/* The stage when no lane shifts left, every lane shifts right by 1 to 23
 * and act_min >= out_zp (relu, relu6 and every clamp above the zero
 * point): bit for bit the one above, in one 64-bit rounding per lane. With
 * P = acc * m0 + 2^30 (SRDHM is floor(P / 2^31)) and c = 2^(right - 1),
 * RDPOT of a non-negative v is floor((v + c) / 2^right), so v's code is
 * floor((P + c 2^31 + zp 2^(31 + right)) / 2^(31 + right)), the zero point
 * added exactly inside the rounding (|acc m0| < 2^62, c 2^31 <= 2^53 and
 * |zp| 2^(31 + right) <= 2^61: no overflow; the result, at most 2^30 + 1
 * + 128 in magnitude for right >= 1, fits int32). A negative v differs
 * from RDPOT only at ties (RDPOT rounds them away from zero), and both are
 * <= 0 there, which the clamp at act_min >= out_zp maps to act_min alike.
 * The division by 2^(31 + right) is two floors: floor(Q / 2^32), the
 * sum's high dword, which one permute gathers from the even and the odd
 * channels' 64-bit lanes, then an arithmetic shift by right - 1 in 32-bit
 * lanes (a 64-bit shift per half and then the permute took one more
 * multiply-class operation per 16 lanes). Per 16 lanes: two vpmuldq, a
 * shift for the odd lanes, two adds, a permute, a vpsravd and the clamp,
 * against the general stage's seventeen. Lanes: the even and odd channels'
 * multipliers (as for vpmuldq) and rounding constants 2^30 + c 2^31 + zp
 * 2^(31 + right) as 64-bit lanes, right - 1 in channel order. */
#define QAT_AVX512_NN_RIGHT_MAX 23

typedef struct qat_avx512_rq16nn {
    __m512i mult, mult_odd, ke, ko, rr;
} qat_avx512_rq16nn;

/* Whether a layer's output stage may take round_sg (any clamp, below). */
static inline int qat_avx512_sg_ok(int any_left, int min_right, int max_right)
{
    return !any_left && min_right >= 1 && max_right <= QAT_AVX512_NN_RIGHT_MAX;
}

/* Whether it may take the short form: round_sg's conditions and a clamp
 * from the zero point up. */
static inline int qat_avx512_nn_ok(int any_left, int min_right, int max_right, int act_min,
                                   int out_zp)
{
    return qat_avx512_sg_ok(any_left, min_right, max_right) && act_min >= out_zp;
}

/* The lanes from the 16 channels' m0 and right (int32 each) and out_zp. */
static inline __attribute__((always_inline)) qat_avx512_rq16nn qat_avx512_rq_nn(__m512i mult,
                                                                                  __m512i right,
                                                                                  int32_t zp)
{
    const __m512i k30 = _mm512_set1_epi64(1LL << 30), n31 = _mm512_set1_epi64(31);
    const __m512i z = _mm512_set1_epi64(zp);
    const __m512i re = _mm512_and_si512(right, _mm512_set1_epi64(0xFFFFFFFFLL));
    const __m512i ro = _mm512_srli_epi64(right, 32);
    const __m512i se = _mm512_add_epi64(re, n31), so = _mm512_add_epi64(ro, n31);
    /* 2^30 + 2^(30 + right) + zp 2^(31 + right) */
    const __m512i ke = _mm512_add_epi64(_mm512_add_epi64(_mm512_sllv_epi64(k30, re), k30),
                                        _mm512_sllv_epi64(z, se));
    const __m512i ko = _mm512_add_epi64(_mm512_add_epi64(_mm512_sllv_epi64(k30, ro), k30),
                                        _mm512_sllv_epi64(z, so));
    qat_avx512_rq16nn q = {.mult = mult, .mult_odd = _mm512_srli_epi64(mult, 32), .ke = ke,
                           .ko = ko, .rr = _mm512_sub_epi32(right, _mm512_set1_epi32(1))};
    return q;
}

/* floor(Q / 2^(31 + right)) of the even (e) and odd (o) channels' 64-bit
 * sums Q, in channel order: their high dwords (floor(Q / 2^32)) shifted
 * by right - 1. */
static inline __attribute__((always_inline)) __m512i
qat_avx512_hi_shift(__m512i e, __m512i o, const qat_avx512_rq16nn *q)
{
    const __m512i hi = _mm512_set_epi32(31, 15, 29, 13, 27, 11, 25, 9, 23, 7, 21, 5, 19, 3, 17, 1);
    return _mm512_srav_epi32(_mm512_permutex2var_epi32(e, hi, o), q->rr);
}

/* The codes before the clamp (the zero point is in the rounding constants). */
static inline __attribute__((always_inline)) __m512i qat_avx512_round_nn(__m512i acc,
                                                                         const qat_avx512_rq16nn *q)
{
    const __m512i e = _mm512_add_epi64(_mm512_mul_epi32(acc, q->mult), q->ke);
    const __m512i o =
        _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(acc, 32), q->mult_odd), q->ko);
    return qat_avx512_hi_shift(e, o, q);
}

/* The stage for any clamp (layers without relu: the convs before a
 * residual add, shortcuts), same conditions but act_min's, bit for bit the
 * general stage: with c = 2^(right - 1), RDPOT(v, right) = floor((v + c -
 * [v < 0]) / 2^right) (qat_fp_requantize_right), so the code is
 * floor((P + 2^30 + c 2^31 - [v < 0] 2^31 + zp 2^(31 + right)) / 2^(31 +
 * right)): round_nn's sum less 2^31 where v < 0. [acc < 0] serves for
 * [v < 0]: they differ only where acc < 0 and -2^30 <= acc m0 (m0 <=
 * 2^30), where v = 0 and P + 2^30 lies in [0, 2^30): the sum is then in
 * [(c - 1) 2^31, (c - 1) 2^31 + 2^30) + zp 2^(31 + right), whose quotient
 * is zp either way. The 2^31 comes from the sign by a mask, no shift: the
 * odd lanes' acc, shifted down arithmetically for vpmuldq, has bits 31-63
 * equal to its sign, and the even lanes' product has acc's sign (m0 >= 0;
 * a zero product needs no correction, as above). Per 16 lanes six
 * multiplies, shifts and permutes (round_nn's five and the even sign) and
 * four simple operations more than round_nn, against the general stage's
 * eight and nine: measured on the int8 ResNet-8, whose five convs without
 * relu took 2.84 us more per image with the general stage than with
 * round_nn's. */
static inline __attribute__((always_inline)) __m512i qat_avx512_round_sg(__m512i acc,
                                                                         const qat_avx512_rq16nn *q)
{
    const __m512i hi33 = _mm512_set1_epi64((long long)0xFFFFFFFF80000000ULL); /* -2^31 */
    const __m512i ao = _mm512_srai_epi64(acc, 32);
    const __m512i pe = _mm512_mul_epi32(acc, q->mult), po = _mm512_mul_epi32(ao, q->mult_odd);
    const __m512i ce = _mm512_and_si512(_mm512_srai_epi64(pe, 63), hi33);
    const __m512i co = _mm512_and_si512(ao, hi33);
    const __m512i e = _mm512_add_epi64(_mm512_add_epi64(pe, q->ke), ce);
    const __m512i o = _mm512_add_epi64(_mm512_add_epi64(po, q->ko), co);
    return qat_avx512_hi_shift(e, o, q);
}

/* The codes, clamped to [amin, amax] (act_min, act_max). */
static inline __attribute__((always_inline)) __m512i
qat_avx512_requant_nn(__m512i acc, const qat_avx512_rq16nn *q, __m512i amin, __m512i amax)
{
    return _mm512_min_epi32(_mm512_max_epi32(qat_avx512_round_nn(acc, q), amin), amax);
}

/* Four vectors of 16 int32 (a, b, c, d) to 64 int8, a's 16 bytes first,
 * then b's, c's and d's, the zero point zp16 (16-bit lanes) added when
 * add_zp and the bytes clamped to [bmin, bmax] (act_min and act_max in
 * every byte): two vpackssdw, a vpacksswb, the clamp and a vpermd for what
 * four int32 clamps and four masked vpmovsdb stores did (ResNet-8 and the
 * DS-CNN about 1.5% faster).
 * Exact: both packs saturate, a saturating step commutes with a clamp to a
 * range inside [-128, 127], and a value saturated to 16 bits lies beyond
 * [-128, 127] before and after zp (|zp| <= 128) is added, so every byte is
 * clamp(v + zp). The packs work within 128-bit lanes: lane j of the packed
 * bytes holds elements 4j..4j+3 of a, b, c, d as its four dwords; the
 * vpermd transposes that 4x4 of dwords. qat_avx512_pack4_lanes is the
 * step before the vpermd: lane j holds a's, b's, c's and d's elements
 * 4j..4j+3 in that order (the order the add's table lookup produces). */
static inline __attribute__((always_inline)) __m512i
qat_avx512_pack4_lanes(__m512i a, __m512i b, __m512i c, __m512i d, const int add_zp,
                       __m512i zp16, __m512i bmin, __m512i bmax)
{
    __m512i ab = _mm512_packs_epi32(a, b), cd = _mm512_packs_epi32(c, d);
    if (add_zp) {
        ab = _mm512_adds_epi16(ab, zp16);
        cd = _mm512_adds_epi16(cd, zp16);
    }
    return _mm512_min_epi8(_mm512_max_epi8(_mm512_packs_epi16(ab, cd), bmin), bmax);
}

static inline __attribute__((always_inline)) __m512i
qat_avx512_pack4(__m512i a, __m512i b, __m512i c, __m512i d, const int add_zp, __m512i zp16,
                 __m512i bmin, __m512i bmax)
{
    const __m512i perm = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    return _mm512_permutexvar_epi32(perm,
                                    qat_avx512_pack4_lanes(a, b, c, d, add_zp, zp16, bmin, bmax));
}

/* A stage whose every lane has the same multiplier and shift (add,
 * global_avgpool), as the packing code computes the lanes. */
static inline qat_avx512_rq16 qat_avx512_rq_uniform(int32_t mult, int32_t shift)
{
    const int32_t right = shift > 0 ? 0 : -shift, mask = (int32_t)((1LL << right) - 1);
    qat_avx512_rq16 q = {.mult = _mm512_set1_epi32(mult),
                         .mult_odd = _mm512_set1_epi64((int64_t)mult),
                         .left = _mm512_set1_epi32(shift > 0 ? shift : 0),
                         .right = _mm512_set1_epi32(right),
                         .mask = _mm512_set1_epi32(mask),
                         .thr = _mm512_set1_epi32(mask >> 1)};
    return q;
}

#endif
