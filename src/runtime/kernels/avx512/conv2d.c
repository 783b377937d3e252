/* AVX-512 VNNI conv2d / linear microkernels: images prepared as padded u8,
 * and an 8x32 micro-tile (8 output rows x 32 channels, 16 zmm accumulators)
 * of vpdpbusd over groups of 4 k read straight from the image (no im2col,
 * layout.h), with the requantizing output stage fused (for the pooled tile:
 * on the max of each window's four accumulators); the same tile 16 rows x
 * 16 channels for layers of at most 16 channels; and the conv driver
 * (conv_driver.h) instantiated with them. Built with -mavx512f -mavx512bw
 * -mavx512vl -mavx512vnni; exactness: layout.h. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "runtime/kernels/avx512/kernels_avx512.h"
#include "runtime/kernels/avx512/layout.h"
#include "runtime/kernels/avx512/requant.h"
#include "runtime/kernels/conv_driver.h"

/* ---- prepared images ------------------------------------------------------------- */

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

QAT_RT_UKERNEL void qat_u8_fill__avx512vnni(void *dst, size_t n, int32_t in_zp)
{
    fill8(dst, (uint8_t)(in_zp + 128), n);
}

QAT_RT_UKERNEL void qat_s8u8_flip__avx512vnni(void *dst, const int8_t *src, size_t n)
{
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    uint8_t *d = dst;
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        _mm512_storeu_si512(d + i, _mm512_xor_si512(_mm512_loadu_si512(src + i), flip));
    if (i < n) {
        __mmask64 m = _cvtu64_mask64(~0ULL >> (64 - (n - i)));
        _mm512_mask_storeu_epi8(d + i, m,
                                _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, src + i), flip));
    }
}

/* The sum of n values u, for the weight zero points. */
QAT_RT_UKERNEL int32_t qat_u8_sum__avx512vnni(const void *v, size_t n)
{
    const uint8_t *u = v;
    __m512i s = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        s = _mm512_add_epi64(s, _mm512_sad_epu8(_mm512_loadu_si512(u + i), _mm512_setzero_si512()));
    if (i < n) {
        __mmask64 m = _cvtu64_mask64(~0ULL >> (64 - (n - i)));
        s = _mm512_add_epi64(
            s, _mm512_sad_epu8(_mm512_maskz_loadu_epi8(m, u + i), _mm512_setzero_si512()));
    }
    return (int32_t)_mm512_reduce_add_epi64(s);
}

/* ---- the output stage's lanes of tile channels from c -------------------------------- */

static inline __attribute__((always_inline)) void rq_load(qat_avx512_rq16 *q,
                                                        const qat_rt_conv_head *h, size_t c)
{
    q->mult = _mm512_load_si512(qat_rt_conv_rq(h, QAT_RT_RQ_MULT) + c);
    q->mult_odd = _mm512_srli_epi64(q->mult, 32);
    q->left = _mm512_load_si512(qat_rt_conv_rq(h, QAT_RT_RQ_LEFT) + c);
    q->right = _mm512_load_si512(qat_rt_conv_rq(h, QAT_RT_RQ_RIGHT) + c);
    q->mask = _mm512_load_si512(qat_rt_conv_rq(h, QAT_RT_RQ_MASK) + c);
    q->thr = _mm512_load_si512(qat_rt_conv_rq(h, QAT_RT_RQ_THR) + c);
}

/* The same lanes for qat_avx512_requant_nn. */
static inline __attribute__((always_inline)) qat_avx512_rq16nn rq_load_nn(const qat_rt_conv_head *h,
                                                                         size_t c, int32_t zp)
{
    return qat_avx512_rq_nn(_mm512_load_si512(qat_rt_conv_rq(h, QAT_RT_RQ_MULT) + c),
                            _mm512_load_si512(qat_rt_conv_rq(h, QAT_RT_RQ_RIGHT) + c), zp);
}

/* ---- the micro-tile ---------------------------------------------------------------- */

typedef struct geom {
    size_t kh, lenp, prow; /* window rows, bytes read per window row, image row bytes */
    __m512i lo, hi, zp;    /* output stage: act_min - zp, act_max - zp, zp */
    __m512i amin, amax;    /* and act_min, act_max */
    int any_left;
    int nn; /* qat_avx512_requant_nn applies (qat_avx512_nn_ok) */
    int32_t out_zp;
} geom;

/* MR rows (windows at rows[r]) x NV * 16 channels of tile t (NV zmm of
 * int32 per row: 2 for the 8x32 tile, 1 for the 16x16 one); with pool, MR
 * is a multiple of 4 and each group of four rows yields one output row.
 * Output rows at out (stride ldo), channels masked to nvalid. */
static inline __attribute__((always_inline)) void
tile(const int MR, const int NV, const int pool, const qat_rt_conv_head *h, int t,
     const uint8_t *const *rows, const int32_t *sums, int8_t *out, size_t ldo, int nvalid,
     const geom *g)
{
    const size_t NR = 16 * (size_t)NV, gw = 4 * NR; /* weight bytes per k group */
    /* a local copy the compiler can keep in registers (rows may alias out) */
    const uint8_t *base[QAT_AVX512_MR_MAX];
    for (int r = 0; r < MR; r++)
        base[r] = rows[r];
    const size_t c = (size_t)t * NR;
    const int8_t *w = (const int8_t *)qat_rt_conv_weights(h) + (size_t)t * (size_t)h->kp * NR;
    const int32_t *bias = qat_rt_conv_rq(h, QAT_RT_RQ_BIAS) + c;
    __m512i acc[QAT_AVX512_MR_MAX][2];
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < NV; v++)
            acc[r][v] = _mm512_load_si512(bias + 16 * v);
    if (MR <= 2) {
        /* one or two rows (fc layers at small batch): four accumulator sets
         * over consecutive k groups, or vpdpbusd's latency would bound the
         * loop; the sets are added at the end (all modulo 2^32, exact) */
        __m512i more[3][2][2];
        for (int u = 0; u < 3; u++)
            for (int r = 0; r < MR; r++)
                for (int v = 0; v < NV; v++)
                    more[u][r][v] = _mm512_setzero_si512();
        for (size_t ky = 0; ky < g->kh; ky++) {
            const size_t row = ky * g->prow;
            size_t j = 0;
            for (; j + 16 <= g->lenp; j += 16, w += 4 * gw)
                for (int r = 0; r < MR; r++) {
                    const uint8_t *x = base[r] + row + j;
                    for (int u = 0; u < 4; u++) {
                        int32_t four;
                        memcpy(&four, x + 4 * u, sizeof four);
                        const __m512i xv = _mm512_set1_epi32(four);
                        __m512i *a = u ? more[u - 1][r] : acc[r];
                        for (int v = 0; v < NV; v++)
                            a[v] = _mm512_dpbusd_epi32(
                                a[v], xv, _mm512_load_si512(w + gw * (size_t)u + 64 * v));
                    }
                }
            for (; j < g->lenp; j += 4, w += gw)
                for (int r = 0; r < MR; r++) {
                    int32_t four;
                    memcpy(&four, base[r] + row + j, sizeof four);
                    const __m512i xv = _mm512_set1_epi32(four);
                    for (int v = 0; v < NV; v++)
                        acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], xv,
                                                        _mm512_load_si512(w + 64 * v));
                }
        }
        for (int u = 0; u < 3; u++)
            for (int r = 0; r < MR; r++)
                for (int v = 0; v < NV; v++)
                    acc[r][v] = _mm512_add_epi32(acc[r][v], more[u][r][v]);
    } else {
        for (size_t ky = 0; ky < g->kh; ky++) {
            const size_t row = ky * g->prow;
            for (size_t j = 0; j < g->lenp; j += 4, w += gw) {
                /* two named vectors, not an array: GCC kept an array's
                 * first one on the stack (a store and a memory operand) */
                const __m512i w0 = _mm512_load_si512(w);
                const __m512i w1 = NV > 1 ? _mm512_load_si512(w + 64) : w0;
                for (int r = 0; r < MR; r++) {
                    int32_t four;
                    memcpy(&four, base[r] + row + j, sizeof four);
                    const __m512i x = _mm512_set1_epi32(four);
                    acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], x, w0);
                    if (NV > 1)
                        acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], x, w1);
                }
            }
        }
    }
    if (h->any_wzp) { /* - wzp * sum u */
        __m512i z[2];
        for (int v = 0; v < NV; v++)
            z[v] = _mm512_load_si512(qat_rt_conv_rq(h, QAT_RT_RQ_WZP) + c + 16 * v);
        for (int r = 0; r < MR; r++) {
            const __m512i s = _mm512_set1_epi32(sums[r]);
            for (int v = 0; v < NV; v++)
                acc[r][v] = _mm512_sub_epi32(acc[r][v], _mm512_mullo_epi32(z[v], s));
        }
    }
    const int outs = pool ? MR / 4 : MR;
    if (pool) /* the output stage is monotone: pool the accumulators */
        for (int o = 0; o < outs; o++)
            for (int v = 0; v < NV; v++)
                acc[o][v] = _mm512_max_epi32(_mm512_max_epi32(acc[4 * o][v], acc[4 * o + 1][v]),
                                             _mm512_max_epi32(acc[4 * o + 2][v], acc[4 * o + 3][v]));
    const __mmask16 m0 = _cvtu32_mask16(nvalid >= 16 ? 0xFFFFu : (1u << nvalid) - 1u);
    const __mmask16 m1 =
        _cvtu32_mask16(nvalid >= 32 ? 0xFFFFu : nvalid <= 16 ? 0u : (1u << (nvalid - 16)) - 1u);
    if (g->nn) {
        qat_avx512_rq16nn n0, n1;
        n0 = rq_load_nn(h, c, g->out_zp);
        if (NV > 1)
            n1 = rq_load_nn(h, c + 16, g->out_zp);
        for (int o = 0; o < outs; o++) {
            int8_t *dst = out + (size_t)o * ldo;
            _mm512_mask_cvtsepi32_storeu_epi8(
                dst, m0, qat_avx512_requant_nn(acc[o][0], &n0, g->amin, g->amax));
            if (NV > 1)
                _mm512_mask_cvtsepi32_storeu_epi8(
                    dst + 16, m1, qat_avx512_requant_nn(acc[o][1], &n1, g->amin, g->amax));
        }
        return;
    }
    qat_avx512_rq16 q0, q1;
    rq_load(&q0, h, c);
    if (NV > 1)
        rq_load(&q1, h, c + 16);
    for (int o = 0; o < outs; o++) {
        int8_t *dst = out + (size_t)o * ldo;
        _mm512_mask_cvtsepi32_storeu_epi8(
            dst, m0, qat_avx512_requant(acc[o][0], &q0, g->any_left, g->lo, g->hi, g->zp));
        if (NV > 1)
            _mm512_mask_cvtsepi32_storeu_epi8(dst + 16, m1,
                                              qat_avx512_requant(acc[o][1], &q1, g->any_left,
                                                                 g->lo, g->hi, g->zp));
    }
}

/* The per-call params of the tiles. */
static inline geom geom_of(const qat_rt_conv_params *p)
{
    const qat_rt_conv_head *h = p->packed;
    const geom g = {.kh = (size_t)p->kernel_h, .lenp = (size_t)h->lenp,
                    .prow = (size_t)(p->in_w + 2 * p->pad_w) * (size_t)p->in_c,
                    .lo = _mm512_set1_epi32(p->act_min - p->out_zp),
                    .hi = _mm512_set1_epi32(p->act_max - p->out_zp),
                    .zp = _mm512_set1_epi32(p->out_zp),
                    .amin = _mm512_set1_epi32(p->act_min),
                    .amax = _mm512_set1_epi32(p->act_max),
                    .any_left = h->any_left,
                    .nn = qat_avx512_nn_ok(h->any_left, h->min_right, h->max_right, p->act_min,
                                           p->out_zp),
                    .out_zp = p->out_zp};
    return g;
}

/* A tile of mr rows (at most 16 / NV; pooled, a multiple of 4): MR a
 * constant in each case, so every tail size gets its own unrolled tile. */
static inline __attribute__((always_inline)) void
tiles(const int NV, const int pool, const qat_rt_conv_params *p, const void *params, int t,
      int nvalid, int mr, const void *const *rows, const int32_t *sums, int8_t *out)
{
    const qat_rt_conv_head *h = p->packed;
    const geom *g = params;
    const size_t ldo = (size_t)p->out_c;
    const uint8_t *const *base = (const uint8_t *const *)rows;
#define QAT_AVX512_TILE_CASE(M)                                                                  \
    case M:                                                                                      \
        if ((M) * NV <= 16 && (!pool || (M) % 4 == 0))                                           \
            tile(M, NV, pool, h, t, base, sums, out, ldo, nvalid, g);                            \
        break;
    switch (mr) {
        QAT_AVX512_TILE_CASE(16) QAT_AVX512_TILE_CASE(15) QAT_AVX512_TILE_CASE(14)
        QAT_AVX512_TILE_CASE(13) QAT_AVX512_TILE_CASE(12) QAT_AVX512_TILE_CASE(11)
        QAT_AVX512_TILE_CASE(10) QAT_AVX512_TILE_CASE(9) QAT_AVX512_TILE_CASE(8)
        QAT_AVX512_TILE_CASE(7) QAT_AVX512_TILE_CASE(6) QAT_AVX512_TILE_CASE(5)
        QAT_AVX512_TILE_CASE(4) QAT_AVX512_TILE_CASE(3) QAT_AVX512_TILE_CASE(2)
        QAT_AVX512_TILE_CASE(1)
    }
#undef QAT_AVX512_TILE_CASE
}

QAT_RT_UKERNEL void qat_u8s8_igemm_8x32__avx512vnni(const qat_rt_conv_params *p,
                                                    const void *params, int t, int nvalid, int mr,
                                                    const void *const *rows, const int32_t *sums,
                                                    int8_t *out)
{
    tiles(2, 0, p, params, t, nvalid, mr, rows, sums, out);
}

QAT_RT_UKERNEL void qat_u8s8_igemm_maxpool_8x32__avx512vnni(const qat_rt_conv_params *p,
                                                            const void *params, int t,
                                                            int nvalid, int mr,
                                                            const void *const *rows,
                                                            const int32_t *sums, int8_t *out)
{
    tiles(2, 1, p, params, t, nvalid, mr, rows, sums, out);
}

QAT_RT_UKERNEL void qat_u8s8_igemm_16x16__avx512vnni(const qat_rt_conv_params *p,
                                                     const void *params, int t, int nvalid,
                                                     int mr, const void *const *rows,
                                                     const int32_t *sums, int8_t *out)
{
    tiles(1, 0, p, params, t, nvalid, mr, rows, sums, out);
}

QAT_RT_UKERNEL void qat_u8s8_igemm_maxpool_16x16__avx512vnni(const qat_rt_conv_params *p,
                                                             const void *params, int t,
                                                             int nvalid, int mr,
                                                             const void *const *rows,
                                                             const int32_t *sums, int8_t *out)
{
    tiles(1, 1, p, params, t, nvalid, mr, rows, sums, out);
}

/* ---- the path's descriptions, and the driver instantiated with them ----------------------- */

/* What both descriptions share: prepared u8 images read in place, raw
 * weights in groups of 4. */
#define QAT_AVX512_IMAGES                                                                        \
    .direct = 1, .elem = 1, .offset = 128, .kr = 4, .k_align = 4, .wide = 0,                     \
    .fill = qat_u8_fill__avx512vnni, .convert = qat_s8u8_flip__avx512vnni,                       \
    .sum = qat_u8_sum__avx512vnni

/* Layers of at most 16 output channels: the same images and primitives,
 * 16 rows x 16 channels a tile. */
static const qat_rt_conv_ukernel narrow_ukernel = {
    .mr = QAT_AVX512_NARROW_MR, .nr = QAT_AVX512_NARROW_NR, .block_max = 64,
    .pool_mr = 16, /* four 2x2 windows */
    QAT_AVX512_IMAGES, .tile = qat_u8s8_igemm_16x16__avx512vnni,
    .tile_maxpool = qat_u8s8_igemm_maxpool_16x16__avx512vnni};

/* Blocks of 64 rows: the rows are addresses, not copies, so a block costs
 * no cache, and it spreads the driver's work per block over 8 tiles (with
 * blocks of one tile, 8 rows, the CNN ran 7% more instructions). */
const qat_rt_conv_ukernel qat_avx512_conv_ukernel = {
    .mr = QAT_AVX512_MR, .nr = QAT_AVX512_NR, .block_max = 64,
    .pool_mr = 8, /* two 2x2 windows */
    QAT_AVX512_IMAGES, .tile = qat_u8s8_igemm_8x32__avx512vnni,
    .tile_maxpool = qat_u8s8_igemm_maxpool_8x32__avx512vnni, .narrow = &narrow_ukernel};

QAT_RT_CONV_KERNELS(qat_u8s8_conv2d_8x32__avx512vnni, qat_u8s8_conv2d_maxpool_8x32__avx512vnni,
                    qat_avx512_conv_ukernel, geom, geom_of)
