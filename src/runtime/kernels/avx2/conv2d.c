/* AVX2 conv2d / linear: im2col into int16 blocks, then a 4x16 micro-tile
 * (4 output rows x 16 output channels, 8 ymm accumulators) of vpmaddwd +
 * vpaddd over K pairs, with the requantizing output stage fused. Built with
 * -mavx2 -mfma; layout and the exactness argument: layout.h. */
#include <immintrin.h>
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

/* One im2col row into dst (kp int16): the window at q, padded taps reading
 * in_zp, then a zero to pad K to even. A window row that lies wholly inside
 * the image is kernel_w * in_c contiguous bytes of NHWC input, widened in
 * one go. */
static void im2col_row(const qat_rt_conv_params *p, const int8_t *in, const pos *q, size_t kp,
                       int16_t *dst)
{
    const size_t c = (size_t)p->in_c, kw = (size_t)p->kernel_w, rowlen = kw * c;
    const int8_t *img = in + q->img * (size_t)p->in_h * (size_t)p->in_w * c;
    const long long x0 = (long long)q->ox * p->stride_w - p->pad_w;
    const long long y0 = (long long)q->oy * p->stride_h - p->pad_h;
    const int16_t zp = (int16_t)p->in_zp;
    const int inside_x = x0 >= 0 && x0 + (long long)kw <= p->in_w;
    int16_t *d = dst;
    for (int ky = 0; ky < p->kernel_h; ky++, d += rowlen) {
        long long iy = y0 + ky;
        if (iy < 0 || iy >= p->in_h) {
            fill(d, zp, rowlen);
            continue;
        }
        const int8_t *src = img + (size_t)iy * (size_t)p->in_w * c;
        if (inside_x) {
            widen(d, src + (size_t)x0 * c, rowlen);
            continue;
        }
        for (size_t kx = 0; kx < kw; kx++) {
            long long ix = x0 + (long long)kx;
            if (ix < 0 || ix >= p->in_w)
                fill(d + kx * c, zp, c);
            else
                widen(d + kx * c, src + (size_t)ix * c, c);
        }
    }
    if (kp > rowlen * (size_t)p->kernel_h)
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
static inline __attribute__((always_inline)) void
tile(const int MR, const qat_avx2_pack *h, int t, const int16_t *a, int8_t *out, size_t ldo,
     int nvalid, __m256i lo, __m256i hi, __m256i zp)
{
    const size_t kp = (size_t)h->kp, pairs = kp / 2, c = (size_t)t * QAT_AVX2_NR;
    const int16_t *w = qat_avx2_weights(h) + (size_t)t * kp * QAT_AVX2_NR;
    const int32_t *bias = qat_avx2_rq(h, QAT_AVX2_RQ_BIAS) + c;
    __m256i acc[QAT_AVX2_MR][2];
    for (int r = 0; r < MR; r++) {
        acc[r][0] = _mm256_load_si256((const __m256i *)bias);
        acc[r][1] = _mm256_load_si256((const __m256i *)(bias + 8));
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
    qat_avx2_rq8 q[2];
    for (int half = 0; half < 2; half++) {
        size_t o = c + 8 * (size_t)half;
        q[half].mult = _mm256_load_si256((const __m256i *)(qat_avx2_rq(h, QAT_AVX2_RQ_MULT) + o));
        q[half].left = _mm256_load_si256((const __m256i *)(qat_avx2_rq(h, QAT_AVX2_RQ_LEFT) + o));
        q[half].right = _mm256_load_si256((const __m256i *)(qat_avx2_rq(h, QAT_AVX2_RQ_RIGHT) + o));
        q[half].mask = _mm256_load_si256((const __m256i *)(qat_avx2_rq(h, QAT_AVX2_RQ_MASK) + o));
        q[half].thr = _mm256_load_si256((const __m256i *)(qat_avx2_rq(h, QAT_AVX2_RQ_THR) + o));
    }
    for (int r = 0; r < MR; r++) {
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

void qat_s8_conv2d__avx2(const qat_rt_conv_params *p, const int8_t *in, int8_t *out, size_t m0,
                         size_t m1, int c0, int c1, void *scratch)
{
    const qat_avx2_pack *h = p->packed;
    const size_t kp = (size_t)h->kp, block = (size_t)h->block_rows, ldo = (size_t)p->out_c;
    int16_t *a = scratch;
    const __m256i zp = _mm256_set1_epi32(p->out_zp);
    const __m256i lo = _mm256_set1_epi32(p->act_min - p->out_zp);
    const __m256i hi = _mm256_set1_epi32(p->act_max - p->out_zp);
    const int t0 = c0 / QAT_AVX2_NR, t1 = (c1 + QAT_AVX2_NR - 1) / QAT_AVX2_NR;
    for (size_t mb = m0; mb < m1; mb += block) {
        size_t rows = m1 - mb < block ? m1 - mb : block;
        pos q;
        pos_at(p, mb, &q);
        for (size_t r = 0; r < rows; r++, pos_next(p, &q))
            im2col_row(p, in, &q, kp, a + r * kp);
        for (int t = t0; t < t1; t++) {
            int nvalid = c1 - t * QAT_AVX2_NR < QAT_AVX2_NR ? c1 - t * QAT_AVX2_NR : QAT_AVX2_NR;
            int8_t *o = out + mb * ldo + (size_t)t * QAT_AVX2_NR;
            size_t r = 0;
            for (; r + QAT_AVX2_MR <= rows; r += QAT_AVX2_MR)
                tile(4, h, t, a + r * kp, o + r * ldo, ldo, nvalid, lo, hi, zp);
            switch (rows - r) {
            case 3: tile(3, h, t, a + r * kp, o + r * ldo, ldo, nvalid, lo, hi, zp); break;
            case 2: tile(2, h, t, a + r * kp, o + r * ldo, ldo, nvalid, lo, hi, zp); break;
            case 1: tile(1, h, t, a + r * kp, o + r * ldo, ldo, nvalid, lo, hi, zp); break;
            }
        }
    }
}
