/* AVX-512 VNNI conv2d / linear microkernels: images prepared as padded u8,
 * and an 8x32 micro-tile (8 output rows x 32 channels, 16 zmm accumulators)
 * of vpdpbusd over groups of 4 k read straight from the image (no im2col,
 * layout.h), with the requantizing output stage fused (for the pooled tile:
 * on the max of each window's four accumulators); the same tile 16 rows x
 * 16 channels for layers of at most 16 channels, whose 3x3 stride-1 layers
 * over 16 channels take the run K loop (one broadcast per pixel for up to
 * three rows); whole rows go out 64 bytes at a time (requant.h's pack);
 * and the conv driver (conv_driver.h) instantiated with them. Built with
 * -mavx512f -mavx512bw -mavx512vl -mavx512vnni; exactness: layout.h. */
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
    __m512i zp16, bmin, bmax; /* zp as 16-bit lanes, act_min and act_max as bytes */
    int any_left;
    int nn; /* 1: qat_avx512_round_nn applies (qat_avx512_nn_ok); 2: round_sg (sg_ok); 0: neither */
    int rd; /* a layer for kloop_run: narrow, 3 wide, stride 1, 16 input channels */
    int32_t out_zp;
} geom;

/* 64 bytes of whole output rows from qat_avx512_pack4 at dst: four rows
 * of 16 channels (contiguous), or two of 32 channels ldo bytes apart. */
static inline __attribute__((always_inline)) void store_pack(const int NV, __m512i x, int8_t *dst,
                                                            size_t ldo)
{
    if (NV == 1) {
        _mm512_storeu_si512(dst, x);
    } else {
        _mm256_storeu_si256((__m256i *)(void *)dst, _mm512_castsi512_si256(x));
        _mm256_storeu_si256((__m256i *)(void *)(dst + ldo), _mm512_extracti64x4_epi64(x, 1));
    }
}

/* ---- the run K loop --------------------------------------------------------------- */

/* A 3x3 stride-1 layer of 16 input and at most 16 output channels (the
 * narrow tile; ResNet-8's and ResNet-20's first stage), whose tile rows are
 * consecutive outputs of one output row (the driver cuts such a layer's
 * tiles at output-row ends: row_tiles, microkernel.h): their windows
 * overlap, so the 4 bytes at input pixel x, group cg of a window row are
 * group cg at kx = x - r in the window of tile row r, for up to three
 * rows. The run loop broadcasts each pixel's group once per window row and
 * applies it to those rows with the weight vector of their kx: for 16
 * rows 72 broadcasts per window row where the row-by-row loop makes 192
 * (one per vpdpbusd), the same vpdpbusd and every product the same (the
 * int32 sums are exact modulo 2^32 in any order). Groups outside, pixels
 * inside: a row's three vpdpbusd of a group come in consecutive pixels'
 * steps, and the rows' short chains interleave. */
static int run_layer(const qat_rt_conv_params *p)
{
    const qat_rt_conv_head *h = p->packed;
    return h->narrow && p->kernel_w == 3 && p->stride_w == 1 && p->in_c == 16 && h->lenp == 48;
}

/* Pixel PX of group CG: its broadcast (zmm31) into the rows it feeds, row
 * PX - kx with kx's weights (zmm28 + kx): rows A, B, C for kx = 0, 1, 2,
 * where a row < MR (the assembler's .if on the operand mr). */
#define QAT_AVX512_RUN_B(PX, CG)                                                                 \
    ".if " #PX " < %c[mr] + 2\n\t"                                                               \
    "vpbroadcastd " #PX "*16+" #CG "*4(%[x]), %%zmm31\n\t"                                        \
    ".endif\n\t"
#define QAT_AVX512_RUN_D(W, A)                                                                   \
    ".if " #A " < %c[mr]\n\t"                                                                    \
    "vpdpbusd %%zmm" #W ", %%zmm31, %%zmm" #A "\n\t"                                             \
    ".endif\n\t"
#define QAT_AVX512_RUN_3(PX, CG, A, B, C)                                                        \
    QAT_AVX512_RUN_B(PX, CG)                                                                     \
    QAT_AVX512_RUN_D(28, A) QAT_AVX512_RUN_D(29, B) QAT_AVX512_RUN_D(30, C)
/* Group CG of a window row: its three weight vectors, then the pixels. */
#define QAT_AVX512_RUN_CG(CG)                                                                    \
    "vmovdqa64 " #CG "*64(%[w]), %%zmm28\n\t"                                                    \
    "vmovdqa64 (4+" #CG ")*64(%[w]), %%zmm29\n\t"                                                \
    "vmovdqa64 (8+" #CG ")*64(%[w]), %%zmm30\n\t"                                                \
    QAT_AVX512_RUN_B(0, CG) QAT_AVX512_RUN_D(28, 0)                                              \
    QAT_AVX512_RUN_B(1, CG) QAT_AVX512_RUN_D(28, 1) QAT_AVX512_RUN_D(29, 0)                      \
    QAT_AVX512_RUN_3(2, CG, 2, 1, 0) QAT_AVX512_RUN_3(3, CG, 3, 2, 1)                            \
    QAT_AVX512_RUN_3(4, CG, 4, 3, 2) QAT_AVX512_RUN_3(5, CG, 5, 4, 3)                            \
    QAT_AVX512_RUN_3(6, CG, 6, 5, 4) QAT_AVX512_RUN_3(7, CG, 7, 6, 5)                            \
    QAT_AVX512_RUN_3(8, CG, 8, 7, 6) QAT_AVX512_RUN_3(9, CG, 9, 8, 7)                            \
    QAT_AVX512_RUN_3(10, CG, 10, 9, 8) QAT_AVX512_RUN_3(11, CG, 11, 10, 9)                       \
    QAT_AVX512_RUN_3(12, CG, 12, 11, 10) QAT_AVX512_RUN_3(13, CG, 13, 12, 11)                    \
    QAT_AVX512_RUN_3(14, CG, 14, 13, 12) QAT_AVX512_RUN_3(15, CG, 15, 14, 13)                    \
    QAT_AVX512_RUN_3(16, CG, 16, 15, 14) QAT_AVX512_RUN_3(17, CG, 17, 16, 15)

/* Accumulator A starts as accumulator 0 (the bias). */
#define QAT_AVX512_RUN_CP(A) "vmovdqa64 %%zmm0, %%zmm" #A "\n\t"

/* sum[0..MR) = bias + the K loop of MR <= 16 such rows; x: the first row's
 * window, w: the tile's weights (per window row 12 groups of 64 bytes: kx,
 * cg); kh >= 1. In assembly, as the AVX2 6x16 K loop
 * (kernels/avx2/conv2d.c) and for its reason: the 16 accumulators, 3
 * weight vectors and the broadcast fit the 32 registers, but GCC spilled
 * accumulators inside the intrinsic version's loop (ResNet-8's stage-1
 * convs ran only 3.5% faster than with the row-by-row loop; this loop
 * alone, in a micro-benchmark on one core, made 420-458 GMAC/s for 16 rows
 * and 453 for 14, against a vpdpbusd peak of 440-461 there).
 * zmm0-15 hold the accumulators, zmm28-30 a group's weights for kx = 0,
 * 1, 2, zmm31 the broadcast. The accumulators leave as output operands
 * bound to zmm0-15 (local register variables; outputs only, as the loop
 * sets them from the bias, so 16 operands, not 32): through memory, their
 * 16 stores and 16 reloads cost about 4% of the int8 ResNet-8's time. */
static inline __attribute__((always_inline)) void kloop_run(const int MR, __m512i sum[16],
                                                           const int32_t *bias,
                                                           const uint8_t *x, const int8_t *w,
                                                           size_t kh, size_t prow)
{
    register __m512i a0 __asm__("zmm0"), a1 __asm__("zmm1"), a2 __asm__("zmm2"),
        a3 __asm__("zmm3"), a4 __asm__("zmm4"), a5 __asm__("zmm5"), a6 __asm__("zmm6"),
        a7 __asm__("zmm7"), a8 __asm__("zmm8"), a9 __asm__("zmm9"), a10 __asm__("zmm10"),
        a11 __asm__("zmm11"), a12 __asm__("zmm12"), a13 __asm__("zmm13"), a14 __asm__("zmm14"),
        a15 __asm__("zmm15");
    __asm__ volatile("vmovdqa64 (%[bias]), %%zmm0\n\t"
                     QAT_AVX512_RUN_CP(1) QAT_AVX512_RUN_CP(2) QAT_AVX512_RUN_CP(3)
                     QAT_AVX512_RUN_CP(4) QAT_AVX512_RUN_CP(5) QAT_AVX512_RUN_CP(6)
                     QAT_AVX512_RUN_CP(7) QAT_AVX512_RUN_CP(8) QAT_AVX512_RUN_CP(9)
                     QAT_AVX512_RUN_CP(10) QAT_AVX512_RUN_CP(11) QAT_AVX512_RUN_CP(12)
                     QAT_AVX512_RUN_CP(13) QAT_AVX512_RUN_CP(14) QAT_AVX512_RUN_CP(15)
                     "1:\n\t"
                     QAT_AVX512_RUN_CG(0) QAT_AVX512_RUN_CG(1) QAT_AVX512_RUN_CG(2)
                     QAT_AVX512_RUN_CG(3)
                     "add %[prow], %[x]\n\t"
                     "add $768, %[w]\n\t"
                     "dec %[n]\n\t"
                     "jnz 1b\n\t"
                     : [x] "+r"(x), [w] "+r"(w), [n] "+r"(kh), "=v"(a0), "=v"(a1), "=v"(a2),
                       "=v"(a3), "=v"(a4), "=v"(a5), "=v"(a6), "=v"(a7), "=v"(a8), "=v"(a9),
                       "=v"(a10), "=v"(a11), "=v"(a12), "=v"(a13), "=v"(a14), "=v"(a15)
                     : [bias] "r"(bias), [prow] "r"(prow), [mr] "i"(MR)
                     : "xmm28", "xmm29", "xmm30", "xmm31", "memory", "cc");
    sum[0] = a0, sum[1] = a1, sum[2] = a2, sum[3] = a3, sum[4] = a4, sum[5] = a5;
    sum[6] = a6, sum[7] = a7, sum[8] = a8, sum[9] = a9, sum[10] = a10, sum[11] = a11;
    sum[12] = a12, sum[13] = a13, sum[14] = a14, sum[15] = a15;
}

/* Whether the MR rows' windows are 16 bytes (one input pixel) apart. The
 * driver hands a run layer's tiles one output row's consecutive windows
 * (row_tiles), an arithmetic run xstep = 16 bytes apart, so the ends tell:
 * two scalar loads of pointers the driver has just stored one by one (a
 * vector compare of all MR, reading them with one 64-byte load, waited on
 * those stores: ~2% of the int8 ResNet-8's samples). */
static inline __attribute__((always_inline)) int rows_run(const int MR,
                                                          const uint8_t *const *rows)
{
    return (uintptr_t)rows[MR - 1] - (uintptr_t)rows[0] == 16 * (uintptr_t)(MR - 1);
}

/* The one-rounding output stages of requant.h (SG: round_sg, any clamp;
 * else round_nn) of a tile's outs rows: whole rows [0, packed) in packs. */
static inline __attribute__((always_inline)) void
out_short(const int SG, const int NV, const qat_rt_conv_head *h, size_t c, __m512i acc[][2],
          int8_t *out, size_t ldo, __mmask16 m0, __mmask16 m1, int whole, int outs, int packed,
          const geom *g)
{
    const int per = 4 / NV;
    qat_avx512_rq16nn n0, n1;
    n0 = rq_load_nn(h, c, g->out_zp);
    if (NV > 1)
        n1 = rq_load_nn(h, c + 16, g->out_zp);
    if (whole)
        for (int o = 0; o < packed; o += per) {
            __m512i r[4];
            for (int i = 0; i < 4; i++) {
                const __m512i a = acc[o + i / NV][i % NV];
                const qat_avx512_rq16nn *q = i % NV ? &n1 : &n0;
                r[i] = SG ? qat_avx512_round_sg(a, q) : qat_avx512_round_nn(a, q);
            }
            const __m512i x = qat_avx512_pack4(r[0], r[1], r[2], r[3], 0, g->zp16, g->bmin,
                                               g->bmax);
            store_pack(NV, x, out + (size_t)o * ldo, ldo);
        }
    for (int o = 0; o < outs; o++) {
        if (whole && o < packed)
            continue;
        int8_t *dst = out + (size_t)o * ldo;
        for (int v = 0; v < NV; v++) {
            const qat_avx512_rq16nn *q = v ? &n1 : &n0;
            const __m512i r = SG ? qat_avx512_round_sg(acc[o][v], q)
                                 : qat_avx512_round_nn(acc[o][v], q);
            _mm512_mask_cvtsepi32_storeu_epi8(dst + 16 * v, v ? m1 : m0,
                                              _mm512_min_epi32(_mm512_max_epi32(r, g->amin),
                                                               g->amax));
        }
    }
}

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
    /* the run loop's row count must be a constant (an "i" operand): not
     * so without optimisation, where the row-by-row loop runs */
    if (__builtin_constant_p(MR) && NV == 1 && !pool && g->rd && rows_run(MR, base)) {
        __m512i sum[16];
        kloop_run(MR, sum, bias, base[0], w, g->kh, g->prow);
        for (int r = 0; r < MR; r++)
            acc[r][0] = sum[r];
    } else if (MR <= 2) {
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
    /* Whole rows go out 64 bytes at a time (requant.h's qat_avx512_pack4):
     * four rows of the 16x16 tile when its 16 channels are the layer's (the
     * rows are then contiguous), two rows of the 8x32 tile when its 32
     * channels are all valid; other rows one masked vpmovsdb store each. */
    const int whole = NV == 1 ? nvalid == 16 && ldo == 16 : nvalid == 32;
    /* rows [0, packed) go in packs when whole; a constant either way, so
     * every acc index stays a constant (a loop from a runtime start made
     * GCC keep all accumulators in memory) */
    const int per = 4 / NV, packed = outs - outs % per;
    if (g->nn == 1) {
        out_short(0, NV, h, c, acc, out, ldo, m0, m1, whole, outs, packed, g);
        return;
    }
    if (g->nn == 2) {
        out_short(1, NV, h, c, acc, out, ldo, m0, m1, whole, outs, packed, g);
        return;
    }
    qat_avx512_rq16 q0, q1;
    rq_load(&q0, h, c);
    if (NV > 1)
        rq_load(&q1, h, c + 16);
    if (whole)
        for (int o = 0; o < packed; o += per) {
            __m512i r[4];
            for (int i = 0; i < 4; i++)
                r[i] = qat_avx512_rescale(acc[o + i / NV][i % NV], i % NV ? &q1 : &q0,
                                          g->any_left);
            const __m512i x =
                qat_avx512_pack4(r[0], r[1], r[2], r[3], 1, g->zp16, g->bmin, g->bmax);
            store_pack(NV, x, out + (size_t)o * ldo, ldo);
        }
    for (int o = 0; o < outs; o++) {
        if (whole && o < packed)
            continue;
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
                    .zp16 = _mm512_set1_epi16((short)p->out_zp),
                    .bmin = _mm512_set1_epi8((char)p->act_min),
                    .bmax = _mm512_set1_epi8((char)p->act_max),
                    .any_left = h->any_left,
                    .nn = qat_avx512_nn_ok(h->any_left, h->min_right, h->max_right, p->act_min,
                                           p->out_zp)
                              ? 1
                          : qat_avx512_sg_ok(h->any_left, h->min_right, h->max_right) ? 2
                                                                                      : 0,
                    .rd = run_layer(p),
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
    .tile_maxpool = qat_u8s8_igemm_maxpool_16x16__avx512vnni, .row_tiles = run_layer};

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
