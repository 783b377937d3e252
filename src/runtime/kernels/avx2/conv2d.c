/* AVX2 conv2d / linear: im2col into int16 blocks, then a 4x16 micro-tile
 * (4 output rows x 16 output channels, 8 ymm accumulators) of vpmaddwd +
 * vpaddd over K pairs, with the requantizing output stage fused. Built with
 * -mavx2 -mfma; layout and the exactness argument: layout.h. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "runtime/kernels/avx2/layout.h"
#include "runtime/kernels/avx2/requant.h"
#include "runtime/kernels/kernels.h"

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

/* Where an im2col row's window starts: image, output y and x of row r,
 * advanced row by row (a division per row costs more than the row's copy
 * for small in_c). */
typedef struct pos {
    size_t img;
    int oy, ox;
} pos;

static inline void pos_at(const qat_rt_conv_params *p, size_t r, pos *q)
{
    const size_t pixels = (size_t)p->out_h * (size_t)p->out_w;
    q->img = r / pixels;
    q->oy = (int)(r % pixels / (size_t)p->out_w);
    q->ox = (int)(r % pixels % (size_t)p->out_w);
}

static inline void pos_next(const qat_rt_conv_params *p, pos *q)
{
    if (++q->ox == p->out_w) {
        q->ox = 0;
        if (++q->oy == p->out_h) {
            q->oy = 0;
            q->img++;
        }
    }
}

/* The whole input image widened to int16 into dst, (in_h + 2 pad_h) x
 * (in_w + 2 pad_w) x in_c, the border filled with in_zp: every im2col row
 * is then kernel_h straight copies of kernel_w * in_c values, and each
 * input value is widened once instead of once per window covering it. */
static void pad_image(const qat_rt_conv_params *p, const int8_t *img, int16_t *dst)
{
    const size_t c = (size_t)p->in_c, wp = (size_t)(p->in_w + 2 * p->pad_w);
    const size_t row = wp * c, side = (size_t)p->pad_w * c, inner = (size_t)p->in_w * c;
    const int16_t zp = (int16_t)p->in_zp;
    fill(dst, zp, (size_t)p->pad_h * row);
    int16_t *d = dst + (size_t)p->pad_h * row;
    for (int y = 0; y < p->in_h; y++, d += row, img += inner) {
        fill(d, zp, side);
        widen(d + side, img, inner);
        fill(d + side + inner, zp, side);
    }
    fill(d, zp, (size_t)p->pad_h * row);
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

/* One im2col row (kp int16) for the window at q, from the padded image. */
static inline void im2col_row(const qat_rt_conv_params *p, const int16_t *padded, const pos *q,
                              size_t kp, int16_t *dst)
{
    const size_t c = (size_t)p->in_c, len = (size_t)p->kernel_w * c;
    const size_t row = (size_t)(p->in_w + 2 * p->pad_w) * c;
    const int16_t *src = padded + (size_t)q->oy * (size_t)p->stride_h * row +
                         (size_t)q->ox * (size_t)p->stride_w * c;
    for (int ky = 0; ky < p->kernel_h; ky++)
        copy16(dst + (size_t)ky * len, src + (size_t)ky * row, len);
    if (kp > len * (size_t)p->kernel_h)
        dst[kp - 1] = 0;
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
accumulate(const int MR, const qat_avx2_pack *h, int t, const int16_t *a, __m256i acc[][2])
{
    const size_t kp = (size_t)h->kp, pairs = kp / 2, c = (size_t)t * QAT_AVX2_NR;
    const int16_t *w = qat_avx2_weights(h) + (size_t)t * kp * QAT_AVX2_NR;
    const int32_t *bias = qat_avx2_rq(h, QAT_AVX2_RQ_BIAS) + c;
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
store_rows(const int n, const qat_avx2_pack *h, int t, __m256i acc[][2], int8_t *out, size_t ldo,
           int nvalid, __m256i lo, __m256i hi, __m256i zp)
{
    const size_t c = (size_t)t * QAT_AVX2_NR;
    qat_avx2_rq8 q[2];
    for (int half = 0; half < 2; half++) {
        size_t o = c + 8 * (size_t)half;
        q[half].mult = _mm256_load_si256((const __m256i *)(qat_avx2_rq(h, QAT_AVX2_RQ_MULT) + o));
        q[half].left = _mm256_load_si256((const __m256i *)(qat_avx2_rq(h, QAT_AVX2_RQ_LEFT) + o));
        q[half].right = _mm256_load_si256((const __m256i *)(qat_avx2_rq(h, QAT_AVX2_RQ_RIGHT) + o));
        q[half].mask = _mm256_load_si256((const __m256i *)(qat_avx2_rq(h, QAT_AVX2_RQ_MASK) + o));
        q[half].thr = _mm256_load_si256((const __m256i *)(qat_avx2_rq(h, QAT_AVX2_RQ_THR) + o));
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
tile(const int MR, const qat_avx2_pack *h, int t, const int16_t *a, int8_t *out, size_t ldo,
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
tile_pool(const int ROWS, const qat_avx2_pack *h, int t, const int16_t *a, int8_t *out,
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

/* Pooled output rows [m0, m1) of a 2x2 stride-2 maxpool over the conv. */
void qat_s8_conv2d_maxpool__avx2(const qat_rt_conv_params *p, const qat_rt_pool_params *pool,
                                 const int8_t *in, int8_t *out, size_t m0, size_t m1, int c0,
                                 int c1, void *scratch)
{
    const qat_avx2_pack *h = p->packed;
    const size_t kp = (size_t)h->kp, ldo = (size_t)p->out_c;
    const size_t block = (size_t)h->block_rows / 12 * 3; /* pooled rows per block */
    int16_t *a = scratch;
    int16_t *padded = (int16_t *)((char *)scratch + qat_avx2_block_bytes((size_t)h->block_rows, kp));
    const size_t in_size = (size_t)p->in_h * (size_t)p->in_w * (size_t)p->in_c;
    const size_t pw = (size_t)pool->out_w, per = (size_t)pool->out_h * pw;
    size_t padded_img = SIZE_MAX;
    const __m256i zp = _mm256_set1_epi32(p->out_zp);
    const __m256i lo = _mm256_set1_epi32(p->act_min - p->out_zp);
    const __m256i hi = _mm256_set1_epi32(p->act_max - p->out_zp);
    const int t0 = c0 / QAT_AVX2_NR, t1 = (c1 + QAT_AVX2_NR - 1) / QAT_AVX2_NR;
    /* pooled pixel of row mb, advanced without dividing */
    size_t img = m0 / per, py = m0 % per / pw, px = m0 % per % pw;
    for (size_t mb = m0; mb < m1; mb += block) {
        size_t outs = m1 - mb < block ? m1 - mb : block, r = 0;
        for (size_t m = mb; m < mb + outs; m++) {
            if (img != padded_img) {
                pad_image(p, in + img * in_size, padded);
                padded_img = img;
            }
            for (int d = 0; d < 4; d++, r++) {
                pos w = {.img = img, .oy = (int)(2 * py) + d / 2, .ox = (int)(2 * px) + d % 2};
                im2col_row(p, padded, &w, kp, a + r * kp);
            }
            if (++px == pw) {
                px = 0;
                if (++py == (size_t)pool->out_h) {
                    py = 0;
                    img++;
                }
            }
        }
        for (int t = t0; t < t1; t++) {
            int nvalid = c1 - t * QAT_AVX2_NR < QAT_AVX2_NR ? c1 - t * QAT_AVX2_NR : QAT_AVX2_NR;
            int8_t *o = out + mb * ldo + (size_t)t * QAT_AVX2_NR;
            size_t k = 0;
            for (; k + 3 <= outs; k += 3)
                tile_pool(12, h, t, a + 4 * k * kp, o + k * ldo, ldo, nvalid, lo, hi, zp);
            if (outs - k == 2)
                tile_pool(8, h, t, a + 4 * k * kp, o + k * ldo, ldo, nvalid, lo, hi, zp);
            else if (outs - k == 1)
                tile_pool(4, h, t, a + 4 * k * kp, o + k * ldo, ldo, nvalid, lo, hi, zp);
        }
    }
}

void qat_s8_conv2d__avx2(const qat_rt_conv_params *p, const int8_t *in, int8_t *out, size_t m0,
                         size_t m1, int c0, int c1, void *scratch)
{
    const qat_avx2_pack *h = p->packed;
    const size_t kp = (size_t)h->kp, block = (size_t)h->block_rows, ldo = (size_t)p->out_c;
    int16_t *a = scratch;
    int16_t *padded = (int16_t *)((char *)scratch + qat_avx2_block_bytes(block, kp));
    const size_t in_size = (size_t)p->in_h * (size_t)p->in_w * (size_t)p->in_c;
    size_t padded_img = SIZE_MAX; /* which image `padded` holds */
    const __m256i zp = _mm256_set1_epi32(p->out_zp);
    const __m256i lo = _mm256_set1_epi32(p->act_min - p->out_zp);
    const __m256i hi = _mm256_set1_epi32(p->act_max - p->out_zp);
    const int t0 = c0 / QAT_AVX2_NR, t1 = (c1 + QAT_AVX2_NR - 1) / QAT_AVX2_NR;
    for (size_t mb = m0; mb < m1; mb += block) {
        size_t rows = m1 - mb < block ? m1 - mb : block;
        if (h->pointwise) {
            for (size_t r = 0; r < rows; r++) {
                widen(a + r * kp, in + (mb + r) * (size_t)p->in_c, (size_t)p->in_c);
                if (kp > (size_t)p->in_c)
                    a[r * kp + kp - 1] = 0;
            }
        } else {
            pos q;
            pos_at(p, mb, &q);
            for (size_t r = 0; r < rows; r++, pos_next(p, &q)) {
                if (q.img != padded_img) {
                    pad_image(p, in + q.img * in_size, padded);
                    padded_img = q.img;
                }
                im2col_row(p, padded, &q, kp, a + r * kp);
            }
        }
        for (int t = t0; t < t1; t++) {
            int nvalid = c1 - t * QAT_AVX2_NR < QAT_AVX2_NR ? c1 - t * QAT_AVX2_NR : QAT_AVX2_NR;
            int8_t *o = out + mb * ldo + (size_t)t * QAT_AVX2_NR;
            size_t r = 0;
            for (; r + QAT_AVX2_MR <= rows; r += QAT_AVX2_MR)
                tile(6, h, t, a + r * kp, o + r * ldo, ldo, nvalid, lo, hi, zp);
            switch (rows - r) {
            case 5: tile(5, h, t, a + r * kp, o + r * ldo, ldo, nvalid, lo, hi, zp); break;
            case 4: tile(4, h, t, a + r * kp, o + r * ldo, ldo, nvalid, lo, hi, zp); break;
            case 3: tile(3, h, t, a + r * kp, o + r * ldo, ldo, nvalid, lo, hi, zp); break;
            case 2: tile(2, h, t, a + r * kp, o + r * ldo, ldo, nvalid, lo, hi, zp); break;
            case 1: tile(1, h, t, a + r * kp, o + r * ldo, ldo, nvalid, lo, hi, zp); break;
            }
        }
    }
}
