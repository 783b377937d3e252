/* AVX-512 kernels of the graph layers (docs/ARITHMETIC.md §4.1) beyond the
 * depthwise conv (dwconv.c): the integer add, 16 elements a zmm, 64 a step
 * (packed to bytes and stored at once). The AVX2 add (kernels/avx2/graph.c)
 * spends two ymm of every step on the output stage alone; here one zmm
 * does, and the tail is masked steps instead of scalar code. Built with the
 * AVX-512 flags. Scalar twin: kernels/ref/graph.c. */
#include <immintrin.h>
#include <stdint.h>

#include "qat/fixedpoint.h"

#include "runtime/kernels/avx512/kernels_avx512.h"
#include "runtime/kernels/avx512/requant.h"
#include "runtime/kernels/microkernel.h"

/* qat_rt_add_rescale (microkernel.h, which derives it) on 16 lanes. */
typedef struct add_in {
    __m512i mh, ml, c1, c2, rnd, one;
    __m128i count;
} add_in;

static add_in add_in_of(int32_t mult, int32_t shift, int32_t zp)
{
    const qat_rt_add_rescale k = qat_rt_add_rescale_of(mult, shift, zp);
    add_in a = {.mh = _mm512_set1_epi32(k.mh), .ml = _mm512_set1_epi32(k.ml),
                .c1 = _mm512_set1_epi32(k.c1), .c2 = _mm512_set1_epi32(k.c2),
                .rnd = _mm512_set1_epi32(k.rnd), .one = _mm512_set1_epi32(k.one),
                .count = _mm_cvtsi32_si128(k.right)};
    return a;
}

static inline __attribute__((always_inline)) __m512i add_rescale(__m512i x, const add_in *a)
{
    __m512i lo = _mm512_srai_epi32(_mm512_add_epi32(_mm512_mullo_epi32(x, a->ml), a->c1), 11);
    __m512i y = _mm512_add_epi32(_mm512_add_epi32(_mm512_mullo_epi32(x, a->mh), a->c2), lo);
    __m512i neg = _mm512_and_si512(_mm512_srli_epi32(y, 31), a->one);
    return _mm512_sra_epi32(_mm512_sub_epi32(_mm512_add_epi32(y, a->rnd), neg), a->count);
}

/* TFLite's ADD before its output stage, on 16 elements (the lanes of m;
 * full: all 16, and a plain load the widening can take as its operand):
 * each input rescaled (add_rescale; validated: shift <= 0, so both stay
 * below 2^28 and their sum in int32) and summed. */
static inline __attribute__((always_inline)) __m512i add_sum(const int full, const int8_t *a,
                                                             const int8_t *b, __mmask16 m,
                                                             const add_in *ia, const add_in *ib)
{
    const __m128i u = full ? _mm_loadu_si128((const __m128i *)(const void *)a)
                           : _mm_maskz_loadu_epi8(m, a);
    const __m128i v = full ? _mm_loadu_si128((const __m128i *)(const void *)b)
                           : _mm_maskz_loadu_epi8(m, b);
    return _mm512_add_epi32(add_rescale(_mm512_cvtepi8_epi32(u), ia),
                            add_rescale(_mm512_cvtepi8_epi32(v), ib));
}

/* 64 whole elements: four sums of 16 through the stage without its clamp,
 * then packed, clamped and stored at once (requant.h's qat_avx512_pack4:
 * a vpmovsdb store per 16 cost more). nn: the short stage (qn), else the
 * general one (qo, any_left lo_) with the zero point added in the pack. */
static inline __attribute__((always_inline)) void
add64(const int nn, const int lo_, const int8_t *a, const int8_t *b, int8_t *out,
      const add_in *ia, const add_in *ib, const qat_avx512_rq16 *qo, const qat_avx512_rq16nn *qn,
      __m512i zp16, __m512i bmin, __m512i bmax)
{
    __m512i r[4];
    for (int j = 0; j < 4; j++) {
        const __m512i sum = add_sum(1, a + 16 * j, b + 16 * j, 0xFFFF, ia, ib);
        r[j] = nn ? qat_avx512_round_nn(sum, qn) : qat_avx512_rescale(sum, qo, lo_);
    }
    _mm512_storeu_si512(out, qat_avx512_pack4(r[0], r[1], r[2], r[3], !nn, zp16, bmin, bmax));
}

/* ---- the add by table (AVX-512 VBMI) ------------------------------------------------------- */

/* An add input's rescale depends on its code alone: 256 int32 values,
 * which add_pack tabulates (qat_fp_rescale, the reference's own function)
 * as four byte planes of 256 bytes per input, byte j of value v[x] at
 * plane j, index (uint8_t)x. A lookup of 64 codes is then two vpermi2b per
 * plane (codes 0..127 and -128..-1: vpermi2b reads an index's low 7 bits)
 * and a blend on the codes' sign, and the planes interleave back to int32
 * with eight unpacks: 16 shuffles and 24 simple operations per 64 elements
 * and input, where add_rescale takes two vpmulld, a vpmovsxbd and nine
 * simple ones per 16 (the multiplies and the widening share the two
 * pipes that shuffle). The unpacks leave 128-bit lane j of their four
 * vectors holding elements 16j..16j+3, +4..+7, +8..+11 and +12..+15,
 * which is the order qat_avx512_pack4_lanes packs back to bytes: no
 * permute. Exact: a table entry is the reference's value. VBMI is not part
 * of the avx512vnni path's requirements (Cascade Lake lacks it): add_pack
 * packs nothing without it, and the add then runs add_sum. */
#define QAT_AVX512_ADD_TABLE 1024 /* bytes per input */

size_t qat_s8_add_packed_size__avx512vnni(const qat_rt_merge_params *p)
{
    (void)p;
    return qat_rt_cpu_has_avx512vbmi() ? 2 * QAT_AVX512_ADD_TABLE : 0;
}

void qat_s8_add_pack__avx512vnni(const qat_rt_merge_params *p, void *dst)
{
    uint8_t *t = dst;
    for (int k = 0; k < 2; k++, t += QAT_AVX512_ADD_TABLE)
        for (int x = -128; x <= 127; x++) {
            const uint32_t v = (uint32_t)qat_fp_rescale(
                qat_fp_sat_shl(x - p->in_zp[k], QAT_RT_ADD_LEFT_SHIFT), p->in_mult[k],
                p->in_shift[k]);
            for (int j = 0; j < 4; j++)
                t[256 * j + (uint8_t)x] = (uint8_t)(v >> (8 * j));
        }
}

/* The rescaled values of 64 codes x as four vectors of int32 (lane order
 * above), from one input's table t. */
static inline __attribute__((always_inline, target("avx512vbmi"))) void
add_lookup(__m512i x, const uint8_t *t, __m512i v[4])
{
    const __mmask64 neg = _mm512_movepi8_mask(x);
    __m512i pl[4];
    for (int j = 0; j < 4; j++, t += 256) {
        const __m512i lo = _mm512_permutex2var_epi8(_mm512_load_si512(t), x,
                                                    _mm512_load_si512(t + 64));
        const __m512i hi = _mm512_permutex2var_epi8(_mm512_load_si512(t + 128), x,
                                                    _mm512_load_si512(t + 192));
        pl[j] = _mm512_mask_blend_epi8(neg, lo, hi);
    }
    const __m512i l01 = _mm512_unpacklo_epi8(pl[0], pl[1]), h01 = _mm512_unpackhi_epi8(pl[0], pl[1]);
    const __m512i l23 = _mm512_unpacklo_epi8(pl[2], pl[3]), h23 = _mm512_unpackhi_epi8(pl[2], pl[3]);
    v[0] = _mm512_unpacklo_epi16(l01, l23);
    v[1] = _mm512_unpackhi_epi16(l01, l23);
    v[2] = _mm512_unpacklo_epi16(h01, h23);
    v[3] = _mm512_unpackhi_epi16(h01, h23);
}

/* Up to 64 elements (the lanes of m) by table, through the output stage
 * as add64's, to bytes. */
static inline __attribute__((always_inline, target("avx512vbmi"))) void
add64_lut(const int nn, const int lo_, const int8_t *a, const int8_t *b, int8_t *out, __mmask64 m,
          const uint8_t *tab, const qat_avx512_rq16 *qo, const qat_avx512_rq16nn *qn,
          __m512i zp16, __m512i bmin, __m512i bmax)
{
    __m512i va[4], vb[4], r[4];
    add_lookup(_mm512_maskz_loadu_epi8(m, a), tab, va);
    add_lookup(_mm512_maskz_loadu_epi8(m, b), tab + QAT_AVX512_ADD_TABLE, vb);
    for (int j = 0; j < 4; j++) {
        const __m512i sum = _mm512_add_epi32(va[j], vb[j]);
        r[j] = nn ? qat_avx512_round_nn(sum, qn) : qat_avx512_rescale(sum, qo, lo_);
    }
    _mm512_mask_storeu_epi8(out, m,
                            qat_avx512_pack4_lanes(r[0], r[1], r[2], r[3], !nn, zp16, bmin, bmax));
}

/* Elements [i, end) by table, 64 a step, the last step masked. */
static inline __attribute__((always_inline, target("avx512vbmi"))) void
add_lut_run(const int nn, const int lo_, const int8_t *a, const int8_t *b, int8_t *out, size_t i,
            size_t end, const uint8_t *tab, const qat_avx512_rq16 *qo,
            const qat_avx512_rq16nn *qn, __m512i zp16, __m512i bmin, __m512i bmax)
{
    for (; i + 64 <= end; i += 64)
        add64_lut(nn, lo_, a + i, b + i, out + i, ~0ULL, tab, qo, qn, zp16, bmin, bmax);
    if (i < end)
        add64_lut(nn, lo_, a + i, b + i, out + i, _cvtu64_mask64(~0ULL >> (64 - (end - i))), tab,
                  qo, qn, zp16, bmin, bmax);
}

__attribute__((target("avx512vbmi"))) static void
add_lut(const int8_t *a, const int8_t *b, int8_t *out, size_t i, size_t end, const uint8_t *tab,
        int nn, int lo_, const qat_avx512_rq16 *qo, const qat_avx512_rq16nn *qn, __m512i zp16,
        __m512i bmin, __m512i bmax)
{
    /* the output stage a constant in each run */
    if (nn)
        add_lut_run(1, 0, a, b, out, i, end, tab, qo, qn, zp16, bmin, bmax);
    else if (lo_)
        add_lut_run(0, 1, a, b, out, i, end, tab, qo, qn, zp16, bmin, bmax);
    else
        add_lut_run(0, 0, a, b, out, i, end, tab, qo, qn, zp16, bmin, bmax);
}

/* ---- the add ---------------------------------------------------------------------------------- */

void qat_s8_add_x16__avx512vnni(const qat_rt_merge_params *p, const int8_t *const *in,
                                int8_t *out, size_t m0, size_t m1)
{
    const size_t C = (size_t)p->out_c, end = m1 * C;
    const add_in ia = add_in_of(p->in_mult[0], p->in_shift[0], p->in_zp[0]);
    const add_in ib = add_in_of(p->in_mult[1], p->in_shift[1], p->in_zp[1]);
    const qat_avx512_rq16 qo = qat_avx512_rq_uniform(p->out_mult, p->out_shift);
    const int lo_ = p->out_shift > 0;
    /* requant.h's shorter stage: a relu add (act_min = out_zp) */
    const int right = lo_ ? 0 : -p->out_shift;
    const int nn = qat_avx512_nn_ok(lo_, right, right, p->act_min, p->out_zp);
    const qat_avx512_rq16nn qn =
        qat_avx512_rq_nn(_mm512_set1_epi32(p->out_mult), _mm512_set1_epi32(right), p->out_zp);
    const __m512i zp16 = _mm512_set1_epi16((short)p->out_zp);
    const __m512i bmin = _mm512_set1_epi8((char)p->act_min);
    const __m512i bmax = _mm512_set1_epi8((char)p->act_max);
    const int8_t *a = in[0], *b = in[1];
    size_t i = m0 * C;
    if (p->packed) {
        add_lut(a, b, out, i, end, p->packed, nn, lo_, &qo, &qn, zp16, bmin, bmax);
        return;
    }
    /* the output stage a constant in each loop (GCC kept its test in the loop) */
    if (nn)
        for (; i + 64 <= end; i += 64)
            add64(1, 0, a + i, b + i, out + i, &ia, &ib, &qo, &qn, zp16, bmin, bmax);
    else if (lo_)
        for (; i + 64 <= end; i += 64)
            add64(0, 1, a + i, b + i, out + i, &ia, &ib, &qo, &qn, zp16, bmin, bmax);
    else
        for (; i + 64 <= end; i += 64)
            add64(0, 0, a + i, b + i, out + i, &ia, &ib, &qo, &qn, zp16, bmin, bmax);
    /* the last < 64 elements, 16 a step, masked (masked lanes are neither
     * read nor written) */
    const __m512i amin = _mm512_set1_epi32(p->act_min), amax = _mm512_set1_epi32(p->act_max);
    const __m512i zp = _mm512_set1_epi32(p->out_zp);
    const __m512i lo = _mm512_set1_epi32(p->act_min - p->out_zp);
    const __m512i hi = _mm512_set1_epi32(p->act_max - p->out_zp);
    for (; i < end; i += 16) {
        const __mmask16 m = _cvtu32_mask16(end - i >= 16 ? 0xFFFFu : (1u << (end - i)) - 1u);
        const __m512i sum = add_sum(0, a + i, b + i, m, &ia, &ib);
        _mm512_mask_cvtsepi32_storeu_epi8(out + i, m,
                                          nn ? qat_avx512_requant_nn(sum, &qn, amin, amax)
                                             : qat_avx512_requant(sum, &qo, lo_, lo, hi, zp));
    }
}
