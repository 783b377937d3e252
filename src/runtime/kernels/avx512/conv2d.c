/* AVX-512 VNNI conv2d / linear, and conv2d fused with a 2x2 stride-2
 * maxpool: each input image converted once to padded u8, then an 8x32
 * micro-tile (8 output rows x 32 channels, 16 zmm accumulators) of vpdpbusd
 * over groups of 4 k read straight from the image (no im2col, layout.h),
 * with the requantizing output stage fused (for the pooled kernel: on the
 * max of each window's four accumulators). Built with -mavx512f -mavx512bw
 * -mavx512vl -mavx512vnni; exactness: layout.h. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "runtime/kernels/avx512/layout.h"
#include "runtime/kernels/kernels.h"

/* ---- im2col ----------------------------------------------------------------------- */

/* u8 copy of one image with its padding filled in (u = x + 128: the
 * padding value is in_zp + 128), so that every window row is one copy. */
/* dst[0..n) = v without a libc call (the runs here are a few bytes). */
static inline void fill8(uint8_t *dst, uint8_t v, size_t n)
{
    const __m512i x = _mm512_set1_epi8((char)v);
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        _mm512_storeu_si512(dst + i, x);
    if (i < n)
        _mm512_mask_storeu_epi8(dst + i, _cvtu64_mask64(~0ULL >> (64 - (n - i))), x);
}

static void pad_image(const qat_rt_conv_params *p, const int8_t *img, uint8_t *dst)
{
    const size_t c = (size_t)p->in_c, row = (size_t)(p->in_w + 2 * p->pad_w) * c;
    const size_t side = (size_t)p->pad_w * c, inner = (size_t)p->in_w * c;
    const uint8_t pad = (uint8_t)(p->in_zp + 128);
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    fill8(dst, pad, (size_t)p->pad_h * row);
    uint8_t *d = dst + (size_t)p->pad_h * row;
    for (int y = 0; y < p->in_h; y++, d += row, img += inner) {
        fill8(d, pad, side);
        size_t i = 0;
        for (; i + 64 <= inner; i += 64)
            _mm512_storeu_si512(d + side + i,
                                _mm512_xor_si512(_mm512_loadu_si512(img + i), flip));
        if (i < inner) {
            __mmask64 m = _cvtu64_mask64(~0ULL >> (64 - (inner - i)));
            _mm512_mask_storeu_epi8(d + side + i, m,
                                    _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, img + i), flip));
        }
        fill8(d + side + inner, pad, side);
    }
    fill8(d, pad, (size_t)p->pad_h * row);
}

/* Sum of u over one window (kernel_h rows of len bytes), for the weight
 * zero points. */
static inline int32_t window_sum(const uint8_t *base, size_t kh, size_t len, size_t prow)
{
    __m512i s = _mm512_setzero_si512();
    for (size_t ky = 0; ky < kh; ky++) {
        const uint8_t *r = base + ky * prow;
        size_t i = 0;
        for (; i + 64 <= len; i += 64)
            s = _mm512_add_epi64(s, _mm512_sad_epu8(_mm512_loadu_si512(r + i),
                                                    _mm512_setzero_si512()));
        if (i < len) {
            __mmask64 m = _cvtu64_mask64(~0ULL >> (64 - (len - i)));
            s = _mm512_add_epi64(s, _mm512_sad_epu8(_mm512_maskz_loadu_epi8(m, r + i),
                                                    _mm512_setzero_si512()));
        }
    }
    return (int32_t)_mm512_reduce_add_epi64(s);
}

/* ---- the output stage on 16 lanes (docs/ARITHMETIC.md §3.4; the same
 * steps as kernels/avx2/requant.h, which explains them) --------------------------- */

typedef struct rq16 {
    __m512i mult, mult_odd, left, right, mask, thr;
} rq16;

static inline __m512i requant16(__m512i acc, const rq16 *q, int any_left, __m512i lo, __m512i hi,
                                __m512i zp)
{
    if (any_left) {
        __m512i sh = _mm512_sllv_epi32(acc, q->left);
        __mmask16 ok = _mm512_cmpeq_epi32_mask(_mm512_srav_epi32(sh, q->left), acc);
        __m512i sat = _mm512_xor_si512(_mm512_srai_epi32(acc, 31), _mm512_set1_epi32(INT32_MAX));
        acc = _mm512_mask_blend_epi32(ok, sat, sh);
    }
    const __m512i nudge = _mm512_set1_epi64(1LL << 30);
    __m512i even = _mm512_add_epi64(_mm512_mul_epi32(acc, q->mult), nudge);
    __m512i odd = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(acc, 32), q->mult_odd), nudge);
    __m512i v = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 31),
                                        _mm512_slli_epi64(odd, 1));
    __m512i rem = _mm512_and_si512(v, q->mask);
    __m512i t = _mm512_sub_epi32(q->thr, _mm512_srai_epi32(v, 31));
    __m512i r = _mm512_srav_epi32(v, q->right);
    r = _mm512_mask_add_epi32(r, _mm512_cmpgt_epi32_mask(rem, t), r, _mm512_set1_epi32(1));
    r = _mm512_min_epi32(_mm512_max_epi32(r, lo), hi);
    return _mm512_add_epi32(r, zp);
}

static inline void rq_load(rq16 *q, const qat_avx512_pack *h, size_t c)
{
    q->mult = _mm512_load_si512(qat_avx512_rq(h, QAT_AVX512_RQ_MULT) + c);
    q->mult_odd = _mm512_srli_epi64(q->mult, 32);
    q->left = _mm512_load_si512(qat_avx512_rq(h, QAT_AVX512_RQ_LEFT) + c);
    q->right = _mm512_load_si512(qat_avx512_rq(h, QAT_AVX512_RQ_RIGHT) + c);
    q->mask = _mm512_load_si512(qat_avx512_rq(h, QAT_AVX512_RQ_MASK) + c);
    q->thr = _mm512_load_si512(qat_avx512_rq(h, QAT_AVX512_RQ_THR) + c);
}

/* ---- the micro-tile ---------------------------------------------------------------- */

typedef struct geom {
    size_t kh, lenp, prow; /* window rows, bytes read per window row, image row bytes */
    __m512i lo, hi, zp;    /* output stage: act_min - zp, act_max - zp, zp */
    int any_left;
} geom;

/* MR rows (windows at base[r]) x 32 channels of tile t; with pool, MR is a
 * multiple of 4 and each group of four rows yields one output row. Output
 * rows at out (stride ldo), channels masked to nvalid. */
static inline __attribute__((always_inline)) void
tile(const int MR, const int pool, const qat_avx512_pack *h, int t, const uint8_t *const *base,
     const int32_t *sums, int8_t *out, size_t ldo, int nvalid, const geom *g)
{
    const size_t c = (size_t)t * QAT_AVX512_NR;
    const int8_t *w = qat_avx512_weights(h) + (size_t)t * (size_t)h->kp * QAT_AVX512_NR;
    const int32_t *bias = qat_avx512_rq(h, QAT_AVX512_RQ_BIAS) + c;
    __m512i acc[QAT_AVX512_MR][2];
    const __m512i b0 = _mm512_load_si512(bias), b1 = _mm512_load_si512(bias + 16);
    for (int r = 0; r < MR; r++) {
        acc[r][0] = b0;
        acc[r][1] = b1;
    }
    if (MR <= 2) {
        /* one or two rows (fc layers at small batch): four accumulator sets
         * over consecutive k groups, or vpdpbusd's latency would bound the
         * loop; the sets are added at the end (all modulo 2^32, exact) */
        __m512i more[3][2][2];
        for (int u = 0; u < 3; u++)
            for (int r = 0; r < MR; r++)
                more[u][r][0] = more[u][r][1] = _mm512_setzero_si512();
        for (size_t ky = 0; ky < g->kh; ky++) {
            const size_t row = ky * g->prow;
            size_t j = 0;
            for (; j + 16 <= g->lenp; j += 16, w += 16 * QAT_AVX512_NR)
                for (int r = 0; r < MR; r++) {
                    const uint8_t *x = base[r] + row + j;
                    for (int u = 0; u < 4; u++) {
                        int32_t four;
                        memcpy(&four, x + 4 * u, sizeof four);
                        const __m512i xv = _mm512_set1_epi32(four);
                        const __m512i w0 = _mm512_load_si512(w + 128 * u);
                        const __m512i w1 = _mm512_load_si512(w + 128 * u + 64);
                        __m512i *a = u ? more[u - 1][r] : acc[r];
                        a[0] = _mm512_dpbusd_epi32(a[0], xv, w0);
                        a[1] = _mm512_dpbusd_epi32(a[1], xv, w1);
                    }
                }
            for (; j < g->lenp; j += 4, w += 4 * QAT_AVX512_NR)
                for (int r = 0; r < MR; r++) {
                    int32_t four;
                    memcpy(&four, base[r] + row + j, sizeof four);
                    const __m512i xv = _mm512_set1_epi32(four);
                    acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], xv, _mm512_load_si512(w));
                    acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], xv, _mm512_load_si512(w + 64));
                }
        }
        for (int u = 0; u < 3; u++)
            for (int r = 0; r < MR; r++) {
                acc[r][0] = _mm512_add_epi32(acc[r][0], more[u][r][0]);
                acc[r][1] = _mm512_add_epi32(acc[r][1], more[u][r][1]);
            }
    } else {
    for (size_t ky = 0; ky < g->kh; ky++) {
        const size_t row = ky * g->prow;
        for (size_t j = 0; j < g->lenp; j += 4, w += 4 * QAT_AVX512_NR) {
            const __m512i w0 = _mm512_load_si512(w), w1 = _mm512_load_si512(w + 64);
            for (int r = 0; r < MR; r++) {
                int32_t four;
                memcpy(&four, base[r] + row + j, sizeof four);
                const __m512i x = _mm512_set1_epi32(four);
                acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], x, w0);
                acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], x, w1);
            }
        }
    }
    }
    if (h->any_wzp) { /* - wzp * sum u */
        const __m512i z0 = _mm512_load_si512(qat_avx512_rq(h, QAT_AVX512_RQ_WZP) + c);
        const __m512i z1 = _mm512_load_si512(qat_avx512_rq(h, QAT_AVX512_RQ_WZP) + c + 16);
        for (int r = 0; r < MR; r++) {
            const __m512i s = _mm512_set1_epi32(sums[r]);
            acc[r][0] = _mm512_sub_epi32(acc[r][0], _mm512_mullo_epi32(z0, s));
            acc[r][1] = _mm512_sub_epi32(acc[r][1], _mm512_mullo_epi32(z1, s));
        }
    }
    const int outs = pool ? MR / 4 : MR;
    if (pool) /* the output stage is monotone: pool the accumulators */
        for (int o = 0; o < outs; o++)
            for (int half = 0; half < 2; half++)
                acc[o][half] = _mm512_max_epi32(
                    _mm512_max_epi32(acc[4 * o][half], acc[4 * o + 1][half]),
                    _mm512_max_epi32(acc[4 * o + 2][half], acc[4 * o + 3][half]));
    const __mmask16 m0 = _cvtu32_mask16(nvalid >= 16 ? 0xFFFFu : (1u << nvalid) - 1u);
    const __mmask16 m1 =
        _cvtu32_mask16(nvalid >= 32 ? 0xFFFFu : nvalid <= 16 ? 0u : (1u << (nvalid - 16)) - 1u);
    rq16 q0, q1;
    rq_load(&q0, h, c);
    rq_load(&q1, h, c + 16);
    for (int o = 0; o < outs; o++) {
        int8_t *dst = out + (size_t)o * ldo;
        _mm512_mask_cvtsepi32_storeu_epi8(
            dst, m0, requant16(acc[o][0], &q0, g->any_left, g->lo, g->hi, g->zp));
        _mm512_mask_cvtsepi32_storeu_epi8(
            dst + 16, m1, requant16(acc[o][1], &q1, g->any_left, g->lo, g->hi, g->zp));
    }
}

/* MR rows of windows at base[], every tile in [t0, t1). */
static inline __attribute__((always_inline)) void
tiles(const int MR, const int pool, const qat_avx512_pack *h, const uint8_t *const *base,
      const int32_t *sums, int8_t *out, size_t ldo, int t0, int t1, int c1, const geom *g)
{
    for (int t = t0; t < t1; t++) {
        const int left = c1 - t * QAT_AVX512_NR;
        tile(MR, pool, h, t, base, sums, out + (size_t)t * QAT_AVX512_NR, ldo,
             left < QAT_AVX512_NR ? left : QAT_AVX512_NR, g);
    }
}

static inline __attribute__((always_inline)) void
conv(const int pool, const qat_rt_conv_params *p, const qat_rt_pool_params *pp, const int8_t *in,
     int8_t *out, size_t m0, size_t m1, int c0, int c1, void *scratch)
{
    const qat_avx512_pack *h = p->packed;
    const size_t c = (size_t)p->in_c, ldo = (size_t)p->out_c;
    const size_t in_size = (size_t)p->in_h * (size_t)p->in_w * c;
    const size_t isize = qat_avx512_image_bytes(p->in_h, p->in_w, p->in_c, p->pad_h, p->pad_w);
    const size_t oh = (size_t)(pool ? pp->out_h : p->out_h), ow = (size_t)(pool ? pp->out_w : p->out_w);
    const size_t per = oh * ow, img0 = m0 / per;
    const size_t prow = (size_t)(p->in_w + 2 * p->pad_w) * c;
    const size_t ystep = (size_t)p->stride_h * prow, xstep = (size_t)p->stride_w * c;
    uint8_t *images = scratch;
    for (size_t img = img0; img <= (m1 - 1) / per; img++)
        pad_image(p, in + img * in_size, images + (img - img0) * isize);
    const geom g = {.kh = (size_t)p->kernel_h, .lenp = (size_t)h->lenp, .prow = prow,
                    .lo = _mm512_set1_epi32(p->act_min - p->out_zp),
                    .hi = _mm512_set1_epi32(p->act_max - p->out_zp),
                    .zp = _mm512_set1_epi32(p->out_zp),
                    .any_left = h->any_left};
    const int t0 = c0 / QAT_AVX512_NR, t1 = (c1 + QAT_AVX512_NR - 1) / QAT_AVX512_NR;
    const size_t step = pool ? 2 : 8; /* output rows per micro-tile of 8 windows */
    /* (image, y, x) of output row m, advanced incrementally */
    size_t img = m0 / per;
    size_t y = m0 % per / ow, x = m0 % per % ow;
    for (size_t m = m0; m < m1; m += step) {
        const size_t outs = m1 - m < step ? m1 - m : step;
        const uint8_t *base[QAT_AVX512_MR];
        int32_t sums[QAT_AVX512_MR];
        int rows = 0;
        for (size_t o = 0; o < outs; o++) {
            const uint8_t *im = images + (img - img0) * isize;
            if (pool)
                for (size_t d = 0; d < 4; d++)
                    base[rows++] = im + (2 * y + d / 2) * ystep + (2 * x + d % 2) * xstep;
            else
                base[rows++] = im + y * ystep + x * xstep;
            if (++x == ow) {
                x = 0;
                if (++y == oh) {
                    y = 0;
                    img++;
                }
            }
        }
        if (h->any_wzp)
            for (int r = 0; r < rows; r++)
                sums[r] = window_sum(base[r], g.kh, (size_t)h->len, prow);
        int8_t *o = out + m * ldo;
        switch (rows) {
        case 8: tiles(8, pool, h, base, sums, o, ldo, t0, t1, c1, &g); break;
        case 7: tiles(7, 0, h, base, sums, o, ldo, t0, t1, c1, &g); break;
        case 6: tiles(6, 0, h, base, sums, o, ldo, t0, t1, c1, &g); break;
        case 5: tiles(5, 0, h, base, sums, o, ldo, t0, t1, c1, &g); break;
        case 4: tiles(4, pool, h, base, sums, o, ldo, t0, t1, c1, &g); break;
        case 3: tiles(3, 0, h, base, sums, o, ldo, t0, t1, c1, &g); break;
        case 2: tiles(2, 0, h, base, sums, o, ldo, t0, t1, c1, &g); break;
        case 1: tiles(1, 0, h, base, sums, o, ldo, t0, t1, c1, &g); break;
        }
    }
}

void qat_u8s8_conv2d_8x32__avx512vnni(const qat_rt_conv_params *p, const int8_t *in, int8_t *out,
                                      size_t m0, size_t m1, int c0, int c1, void *scratch)
{
    conv(0, p, NULL, in, out, m0, m1, c0, c1, scratch);
}

void qat_u8s8_conv2d_maxpool_8x32__avx512vnni(const qat_rt_conv_params *p,
                                              const qat_rt_pool_params *pool, const int8_t *in,
                                              int8_t *out, size_t m0, size_t m1, int c0, int c1,
                                              void *scratch)
{
    conv(1, p, pool, in, out, m0, m1, c0, c1, scratch);
}
