/* AVX2 conv2d / linear microkernels: prepared images and patch rows of
 * int16 (the codes widened), and a 6x16 micro-tile (6 patch rows x 16
 * output channels, 12 ymm accumulators) of vpmaddwd + vpaddd over K pairs
 * with the requantizing output stage fused; and the conv driver
 * (conv_driver.h) instantiated with them. Built with -mavx2 -mfma; layout
 * and exactness: layout.h. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "runtime/kernels/avx2/kernels_avx2.h"
#include "runtime/kernels/conv_driver.h"
#include "runtime/kernels/avx2/layout.h"
#include "runtime/kernels/avx2/requant.h"

/* dst[0..n) = (int16) src[0..n) */
static inline void widen(int16_t *dst, const int8_t *src, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i),
                            _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++)
        dst[i] = src[i];
}

static inline void fill(int16_t *dst, int16_t v, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_set1_epi16(v));
    for (; i < n; i++)
        dst[i] = v;
}

/* dst[0..n) = src[0..n); short copies move a whole 8, 16 or 32 bytes, so up
 * to 30 bytes past both ends are read or written (the scratch has slack,
 * and whatever lands past a segment is overwritten by the next one). */
static inline void copy16(int16_t *dst, const int16_t *src, size_t n)
{
    if (n <= 4) {
        uint64_t v;
        memcpy(&v, src, 8);
        memcpy(dst, &v, 8);
    } else if (n <= 8) {
        _mm_storeu_si128((__m128i *)dst, _mm_loadu_si128((const __m128i *)src));
    } else {
        size_t i = 0;
        for (; i + 16 <= n; i += 16)
            _mm256_storeu_si256((__m256i *)(dst + i),
                                _mm256_loadu_si256((const __m256i *)(src + i)));
        if (i < n) {
            i = n >= 16 ? n - 16 : i;
            _mm256_storeu_si256((__m256i *)(dst + i),
                                _mm256_loadu_si256((const __m256i *)(src + i)));
        }
    }
}

QAT_RT_UKERNEL void qat_s16_fill__avx2(void *dst, size_t n, int32_t in_zp)
{
    fill(dst, (int16_t)in_zp, n);
}

QAT_RT_UKERNEL void qat_s8s16_widen__avx2(void *dst, const int8_t *src, size_t n)
{
    widen(dst, src, n);
}

QAT_RT_UKERNEL void qat_s16_copy__avx2(void *dst, const void *src, size_t n)
{
    copy16(dst, src, n);
}

static inline __m256i bcast_pair(const int16_t *a)
{
    int32_t v;
    memcpy(&v, a, sizeof v);
    return _mm256_set1_epi32(v);
}

/* MR rows (a, row stride kp) x 16 channels of tile t; the output stage
 * writes channels [0, nvalid) of the tile to out (row stride ldo). */
#define QAT_AVX2_ROW_PAIR(ADDR, A0, A1)                                                          \
    "vpbroadcastd " ADDR ", %%ymm14\n\t"                                                         \
    "vpmaddwd %%ymm12, %%ymm14, %%ymm15\n\t"                                                     \
    "vpaddd %%ymm15, %%" A0 ", %%" A0 "\n\t"                                                     \
    "vpmaddwd %%ymm13, %%ymm14, %%ymm15\n\t"                                                     \
    "vpaddd %%ymm15, %%" A1 ", %%" A1 "\n\t"

/* The K loop of a full 6x16 tile, in assembly because GCC spills some of the
 * twelve accumulators of the intrinsic version to the stack inside the loop:
 * ymm0-11 hold the accumulators (6 rows x 2 halves; loaded from and stored
 * back to acc around the loop), ymm12-13 one K pair of 16 channels'
 * weights, ymm14 the broadcast activation pair, ymm15 the product. Per
 * pair: 2 loads, 6 broadcasts, 12 vpmaddwd, 12 vpaddd. pairs >= 1. */
static inline void kloop_6x16(const int16_t *a, size_t kp, const int16_t *w, size_t pairs,
                              __m256i acc[6][2])
{
    const size_t l = kp * sizeof(int16_t), l3 = 3 * l, l5 = 5 * l;
    const char *pa = (const char *)a;
    __asm__ volatile("vmovdqu 0(%[acc]), %%ymm0\n\t"
                     "vmovdqu 32(%[acc]), %%ymm1\n\t"
                     "vmovdqu 64(%[acc]), %%ymm2\n\t"
                     "vmovdqu 96(%[acc]), %%ymm3\n\t"
                     "vmovdqu 128(%[acc]), %%ymm4\n\t"
                     "vmovdqu 160(%[acc]), %%ymm5\n\t"
                     "vmovdqu 192(%[acc]), %%ymm6\n\t"
                     "vmovdqu 224(%[acc]), %%ymm7\n\t"
                     "vmovdqu 256(%[acc]), %%ymm8\n\t"
                     "vmovdqu 288(%[acc]), %%ymm9\n\t"
                     "vmovdqu 320(%[acc]), %%ymm10\n\t"
                     "vmovdqu 352(%[acc]), %%ymm11\n\t"
                     "1:\n\t"
                     "vmovdqa (%[w]), %%ymm12\n\t"
                     "vmovdqa 32(%[w]), %%ymm13\n\t"
                     QAT_AVX2_ROW_PAIR("(%[pa])", "ymm0", "ymm1")
                     QAT_AVX2_ROW_PAIR("(%[pa],%[l],1)", "ymm2", "ymm3")
                     QAT_AVX2_ROW_PAIR("(%[pa],%[l],2)", "ymm4", "ymm5")
                     QAT_AVX2_ROW_PAIR("(%[pa],%[l3],1)", "ymm6", "ymm7")
                     QAT_AVX2_ROW_PAIR("(%[pa],%[l],4)", "ymm8", "ymm9")
                     QAT_AVX2_ROW_PAIR("(%[pa],%[l5],1)", "ymm10", "ymm11")
                     "add $4, %[pa]\n\t"
                     "add $64, %[w]\n\t"
                     "dec %[n]\n\t"
                     "jnz 1b\n\t"
                     "vmovdqu %%ymm0, 0(%[acc])\n\t"
                     "vmovdqu %%ymm1, 32(%[acc])\n\t"
                     "vmovdqu %%ymm2, 64(%[acc])\n\t"
                     "vmovdqu %%ymm3, 96(%[acc])\n\t"
                     "vmovdqu %%ymm4, 128(%[acc])\n\t"
                     "vmovdqu %%ymm5, 160(%[acc])\n\t"
                     "vmovdqu %%ymm6, 192(%[acc])\n\t"
                     "vmovdqu %%ymm7, 224(%[acc])\n\t"
                     "vmovdqu %%ymm8, 256(%[acc])\n\t"
                     "vmovdqu %%ymm9, 288(%[acc])\n\t"
                     "vmovdqu %%ymm10, 320(%[acc])\n\t"
                     "vmovdqu %%ymm11, 352(%[acc])\n\t"
                     : [pa] "+r"(pa), [w] "+r"(w), [n] "+r"(pairs)
                     : [acc] "r"(&acc[0][0]), [l] "r"(l), [l3] "r"(l3), [l5] "r"(l5)
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                       "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory",
                       "cc");
}

/* acc[0..MR) (MR <= 6) = bias + the K loop over MR rows (a, stride kp) of
 * tile t. */
static inline __attribute__((always_inline)) void
accumulate(const int MR, const qat_rt_conv_head *h, int t, const int16_t *a, __m256i acc[][2])
{
    const size_t kp = (size_t)h->kp, pairs = kp / 2, c = (size_t)t * QAT_AVX2_NR;
    const int16_t *w = (const int16_t *)qat_rt_conv_weights(h) + (size_t)t * kp * QAT_AVX2_NR;
    const int32_t *bias = qat_rt_conv_rq(h, QAT_RT_RQ_BIAS) + c;
    for (int r = 0; r < MR; r++) {
        acc[r][0] = _mm256_load_si256((const __m256i *)bias);
        acc[r][1] = _mm256_load_si256((const __m256i *)(bias + 8));
    }
    if (MR == 6) {
        kloop_6x16(a, kp, w, pairs, acc);
        return;
    }
    for (size_t j = 0; j < pairs; j++, w += 2 * QAT_AVX2_NR) {
        __m256i w0 = _mm256_load_si256((const __m256i *)w);
        __m256i w1 = _mm256_load_si256((const __m256i *)(w + QAT_AVX2_NR));
        for (int r = 0; r < MR; r++) {
            __m256i x = bcast_pair(a + (size_t)r * kp + 2 * j);
            acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(x, w0));
            acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(x, w1));
        }
    }
}

/* The output stage of n rows of accumulators into out (stride ldo), channels
 * [0, nvalid) of tile t. */
static inline __attribute__((always_inline)) void
store_rows(const int n, const qat_rt_conv_head *h, int t, __m256i acc[][2], int8_t *out, size_t ldo,
           int nvalid, __m256i lo, __m256i hi, __m256i zp)
{
    const size_t c = (size_t)t * QAT_AVX2_NR;
    qat_avx2_rq8 q[2];
    for (int half = 0; half < 2; half++) {
        size_t o = c + 8 * (size_t)half;
#define RQ(which) _mm256_load_si256((const __m256i *)(qat_rt_conv_rq(h, QAT_RT_RQ_##which) + o))
        q[half].mult = RQ(MULT);
        q[half].left = RQ(LEFT);
        q[half].right = RQ(RIGHT);
        q[half].mask = RQ(MASK);
        q[half].thr = RQ(THR);
#undef RQ
    }
    for (int r = 0; r < n; r++) {
        __m256i v0 = qat_avx2_requant(acc[r][0], &q[0], h->any_left, lo, hi, zp);
        __m256i v1 = qat_avx2_requant(acc[r][1], &q[1], h->any_left, lo, hi, zp);
        __m128i b = qat_avx2_narrow16(v0, v1);
        int8_t *o = out + (size_t)r * ldo;
        if (nvalid == QAT_AVX2_NR) {
            _mm_storeu_si128((__m128i *)o, b);
        } else {
            int8_t tmp[16];
            _mm_storeu_si128((__m128i *)tmp, b);
            memcpy(o, tmp, (size_t)nvalid);
        }
    }
}

static inline __attribute__((always_inline)) void
tile(const int MR, const qat_rt_conv_head *h, int t, const int16_t *a, int8_t *out, size_t ldo,
     int nvalid, __m256i lo, __m256i hi, __m256i zp)
{
    __m256i acc[QAT_AVX2_MR][2];
    accumulate(MR, h, t, a, acc);
    store_rows(MR, h, t, acc, out, ldo, nvalid, lo, hi, zp);
}

/* Pooled rows: every four accumulator rows (a 2x2 window) become one output
 * row, the output stage running once on their max (it is monotone). Twelve
 * rows (two 6-row K loops) give three outputs; 4 or 8 left over, 1 or 2. */
static inline __attribute__((always_inline)) void
tile_pool(const int ROWS, const qat_rt_conv_head *h, int t, const int16_t *a, int8_t *out,
          size_t ldo, int nvalid, __m256i lo, __m256i hi, __m256i zp)
{
    const size_t kp = (size_t)h->kp;
    __m256i acc[12][2];
    if (ROWS == 12) {
        accumulate(6, h, t, a, acc);
        accumulate(6, h, t, a + 6 * kp, acc + 6);
    } else {
        for (int g = 0; g < ROWS / 4; g++)
            accumulate(4, h, t, a + 4 * (size_t)g * kp, acc + 4 * g);
    }
    for (int o = 0; o < ROWS / 4; o++)
        for (int half = 0; half < 2; half++)
            acc[o][half] = _mm256_max_epi32(
                _mm256_max_epi32(acc[4 * o][half], acc[4 * o + 1][half]),
                _mm256_max_epi32(acc[4 * o + 2][half], acc[4 * o + 3][half]));
    store_rows(ROWS / 4, h, t, acc, out, ldo, nvalid, lo, hi, zp);
}

/* The per-call params of the tiles: the output stage's clamp bounds
 * act_min - out_zp and act_max - out_zp, and out_zp (requant.h). */
typedef struct out_stage {
    __m256i lo, hi, zp;
} out_stage;

static inline out_stage out_stage_of(const qat_rt_conv_params *p)
{
    out_stage s = {.lo = _mm256_set1_epi32(p->act_min - p->out_zp),
                   .hi = _mm256_set1_epi32(p->act_max - p->out_zp),
                   .zp = _mm256_set1_epi32(p->out_zp)};
    return s;
}

QAT_RT_UKERNEL void qat_s16s16_gemm_6x16__avx2(const qat_rt_conv_params *p, const void *params,
                                               int t, int nvalid, int mr,
                                               const void *const *rows, const int32_t *sums,
                                               int8_t *out)
{
    (void)sums;
    const qat_rt_conv_head *h = p->packed;
    const out_stage *s = params;
    const int16_t *a = rows[0]; /* rows are kp apart (im2col) */
    const size_t ldo = (size_t)p->out_c;
    switch (mr) {
    case 6: tile(6, h, t, a, out, ldo, nvalid, s->lo, s->hi, s->zp); break;
    case 5: tile(5, h, t, a, out, ldo, nvalid, s->lo, s->hi, s->zp); break;
    case 4: tile(4, h, t, a, out, ldo, nvalid, s->lo, s->hi, s->zp); break;
    case 3: tile(3, h, t, a, out, ldo, nvalid, s->lo, s->hi, s->zp); break;
    case 2: tile(2, h, t, a, out, ldo, nvalid, s->lo, s->hi, s->zp); break;
    case 1: tile(1, h, t, a, out, ldo, nvalid, s->lo, s->hi, s->zp); break;
    }
}

QAT_RT_UKERNEL void qat_s16s16_gemm_maxpool_12x16__avx2(const qat_rt_conv_params *p,
                                                        const void *params, int t, int nvalid,
                                                        int mr, const void *const *rows,
                                                        const int32_t *sums, int8_t *out)
{
    (void)sums;
    const qat_rt_conv_head *h = p->packed;
    const out_stage *s = params;
    const int16_t *a = rows[0];
    const size_t ldo = (size_t)p->out_c;
    switch (mr) {
    case 12: tile_pool(12, h, t, a, out, ldo, nvalid, s->lo, s->hi, s->zp); break;
    case 8: tile_pool(8, h, t, a, out, ldo, nvalid, s->lo, s->hi, s->zp); break;
    case 4: tile_pool(4, h, t, a, out, ldo, nvalid, s->lo, s->hi, s->zp); break;
    }
}

/* ---- the path's description, and the driver instantiated with it ------------------------- */

const qat_rt_conv_ukernel qat_avx2_conv_ukernel = {
    .mr = QAT_AVX2_MR, .nr = QAT_AVX2_NR, .block_max = 252,
    .pool_mr = 12, /* two 6-row K loops: three 2x2 windows */
    .direct = 0, .elem = 2, .offset = 0, .kr = 2, .k_align = 2, .wide = 1,
    .fill = qat_s16_fill__avx2, .convert = qat_s8s16_widen__avx2, .copy = qat_s16_copy__avx2,
    .tile = qat_s16s16_gemm_6x16__avx2, .tile_maxpool = qat_s16s16_gemm_maxpool_12x16__avx2};

QAT_RT_CONV_KERNELS(qat_s16s16_conv2d_6x16__avx2, qat_s16s16_conv2d_maxpool_12x16__avx2,
                    qat_avx2_conv_ukernel, out_stage, out_stage_of)
