/* Packing for the AVX2 path (layout.h) and its kernel table. Plain C, built
 * without ISA flags: it runs once per layer at model creation. */
#include <string.h>

#include "runtime/kernels/avx2/layout.h"
#include "runtime/kernels/kernels.h"

void qat_s8_conv2d__avx2(const qat_rt_conv_params *p, const int8_t *in, int8_t *out, size_t m0,
                         size_t m1, int c0, int c1, void *scratch);
void qat_s8_conv2d_maxpool__avx2(const qat_rt_conv_params *p, const qat_rt_pool_params *pool,
                                 const int8_t *in, int8_t *out, size_t m0, size_t m1, int c0,
                                 int c1, void *scratch);
void qat_s8_maxpool2d__avx2(const qat_rt_pool_params *p, const int8_t *in, int8_t *out, size_t m0,
                            size_t m1);
void qat_s8_avgpool2d__avx2(const qat_rt_pool_params *p, const int8_t *in, int8_t *out, size_t m0,
                            size_t m1);
void qat_u8_quantize_input__avx2(const uint8_t *pixels, int8_t *q, size_t count);
void qat_s32_requantize__avx2(const qat_rt_requant_params *q, const int32_t *acc, int8_t *out,
                              size_t rows);

static size_t conv_k(const qat_rt_conv_params *p)
{
    return (size_t)p->kernel_h * (size_t)p->kernel_w * (size_t)p->in_c;
}

static size_t tiles_of(const qat_rt_conv_params *p)
{
    return ((size_t)p->out_c + QAT_AVX2_NR - 1) / QAT_AVX2_NR;
}

/* Rows per im2col block: about 16 KiB of int16, so a block and one tile of
 * weights stay in L1 while every tile runs over it; a multiple of 12 (two
 * 6-row tiles, or three pooled 2x2 windows). */
static int32_t block_rows(size_t kp)
{
    size_t rows = 16384 / (kp * 2);
    rows -= rows % 12;
    return (int32_t)(rows < 12 ? 12 : rows > 252 ? 252 : rows);
}

static size_t packed_size(const qat_rt_conv_params *p)
{
    size_t kp = (conv_k(p) + 1) & ~(size_t)1, t = tiles_of(p);
    return sizeof(qat_avx2_pack) + (size_t)QAT_AVX2_RQ_COUNT * t * QAT_AVX2_NR * sizeof(int32_t) +
           t * kp * QAT_AVX2_NR * sizeof(int16_t);
}

static void pack(const qat_rt_conv_params *p, void *dst)
{
    size_t k = conv_k(p), kp = (k + 1) & ~(size_t)1, tiles = tiles_of(p);
    qat_avx2_pack *h = dst;
    memset(dst, 0, packed_size(p));
    h->k = (int32_t)k;
    h->kp = (int32_t)kp;
    h->tiles = (int32_t)tiles;
    h->block_rows = block_rows(kp);
    h->pointwise = p->kernel_h == 1 && p->kernel_w == 1 && p->stride_h == 1 &&
                   p->stride_w == 1 && p->pad_h == 0 && p->pad_w == 0;
    int32_t *rq[QAT_AVX2_RQ_COUNT];
    for (int i = 0; i < QAT_AVX2_RQ_COUNT; i++)
        rq[i] = (int32_t *)qat_avx2_rq(h, i);
    for (int c = 0; c < p->out_c; c++) {
        int32_t s = p->shift[c];
        int32_t right = s > 0 ? 0 : -s;
        int32_t mask = (int32_t)((1LL << right) - 1);
        rq[QAT_AVX2_RQ_BIAS][c] = p->bias_folded[c];
        rq[QAT_AVX2_RQ_MULT][c] = p->multiplier[c];
        rq[QAT_AVX2_RQ_LEFT][c] = s > 0 ? s : 0;
        rq[QAT_AVX2_RQ_RIGHT][c] = right;
        rq[QAT_AVX2_RQ_MASK][c] = mask;
        rq[QAT_AVX2_RQ_THR][c] = mask >> 1;
        h->any_left |= s > 0;
    }
    int16_t *w = (int16_t *)qat_avx2_weights(h);
    for (size_t c = 0; c < (size_t)p->out_c; c++) {
        size_t t = c / QAT_AVX2_NR, lane = c % QAT_AVX2_NR;
        int16_t *tile = w + t * kp * QAT_AVX2_NR;
        for (size_t j = 0; j < k; j++)
            tile[(j / 2) * 2 * QAT_AVX2_NR + lane * 2 + j % 2] =
                (int16_t)((int32_t)p->weights[c * k + j] - p->weight_zp[c]);
    }
}

static size_t scratch_size(const qat_rt_conv_params *p, int max_images)
{
    (void)max_images; /* one image at a time */
    size_t kp = (conv_k(p) + 1) & ~(size_t)1;
    /* the padded image is needed by the pooled kernel even for pointwise layers */
    return qat_avx2_block_bytes((size_t)block_rows(kp), kp) +
           (size_t)(p->in_h + 2 * p->pad_h) * (size_t)(p->in_w + 2 * p->pad_w) *
               (size_t)p->in_c * 2 + 64;
}

const qat_rt_kernels qat_rt_kernels_avx2 = {
    .isa = "avx2",
    .channel_align = QAT_AVX2_NR,
    .quantize_input = qat_u8_quantize_input__avx2,
    .conv_packed_size = packed_size,
    .conv_pack = pack,
    .conv_scratch = scratch_size,
    .conv2d = qat_s8_conv2d__avx2,
    .conv2d_maxpool = qat_s8_conv2d_maxpool__avx2,
    .linear = qat_s8_conv2d__avx2, /* a 1x1 conv on a 1x1 input: im2col is a plain copy */
    .maxpool2d = qat_s8_maxpool2d__avx2,
    .avgpool2d = qat_s8_avgpool2d__avx2,
    .requantize = qat_s32_requantize__avx2,
};
