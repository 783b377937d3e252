/* Packing for the NEON paths (layout.h) and their kernel tables. Plain C:
 * it runs once per layer at model creation. */
#include <string.h>

#include "runtime/kernels/kernels.h"
#include "runtime/kernels/neon/layout.h"

void qat_s8_conv2d__neon(const qat_rt_conv_params *p, const int8_t *in, int8_t *out, size_t m0,
                         size_t m1, int c0, int c1, void *scratch);
void qat_s8_conv2d__neondot(const qat_rt_conv_params *p, const int8_t *in, int8_t *out,
                            size_t m0, size_t m1, int c0, int c1, void *scratch);
void qat_s8_conv2d_maxpool__neon(const qat_rt_conv_params *p, const qat_rt_pool_params *pool,
                                 const int8_t *in, int8_t *out, size_t m0, size_t m1, int c0,
                                 int c1, void *scratch);
void qat_s8_conv2d_maxpool__neondot(const qat_rt_conv_params *p, const qat_rt_pool_params *pool,
                                    const int8_t *in, int8_t *out, size_t m0, size_t m1, int c0,
                                    int c1, void *scratch);
void qat_s8_maxpool2d__neon(const qat_rt_pool_params *p, const int8_t *in, int8_t *out, size_t m0,
                            size_t m1);
void qat_s8_avgpool2d__neon(const qat_rt_pool_params *p, const int8_t *in, int8_t *out, size_t m0,
                            size_t m1);
void qat_u8_quantize_input__neon(const uint8_t *pixels, int8_t *q, size_t count);
void qat_s32_requantize__neon(const qat_rt_requant_params *q, const int32_t *acc, int8_t *out,
                              size_t rows);

static size_t conv_k(const qat_rt_conv_params *p)
{
    return (size_t)p->kernel_h * (size_t)p->kernel_w * (size_t)p->in_c;
}

static size_t kp_of(const qat_rt_conv_params *p) { return (conv_k(p) + 3) & ~(size_t)3; }

static size_t tiles_of(const qat_rt_conv_params *p)
{
    return ((size_t)p->out_c + QAT_NEON_NR - 1) / QAT_NEON_NR;
}

/* About 16 KiB of im2col per block (elem bytes per value). */
static int32_t block_rows(size_t kp, size_t elem)
{
    size_t rows = 16384 / (kp * elem);
    rows -= rows % QAT_NEON_MR;
    return (int32_t)(rows < QAT_NEON_MR ? QAT_NEON_MR : rows > 256 ? 256 : rows);
}

static size_t packed_size(const qat_rt_conv_params *p, size_t elem)
{
    size_t t = tiles_of(p);
    return sizeof(qat_neon_pack) + (size_t)QAT_NEON_RQ_COUNT * t * QAT_NEON_NR * sizeof(int32_t) +
           t * kp_of(p) * QAT_NEON_NR * elem;
}

static qat_neon_pack *pack_common(const qat_rt_conv_params *p, void *dst, size_t elem)
{
    qat_neon_pack *h = dst;
    memset(dst, 0, packed_size(p, elem));
    h->k = (int32_t)conv_k(p);
    h->kp = (int32_t)kp_of(p);
    h->tiles = (int32_t)tiles_of(p);
    h->block_rows = block_rows((size_t)h->kp, elem);
    int32_t *rq[QAT_NEON_RQ_COUNT];
    for (int i = 0; i < QAT_NEON_RQ_COUNT; i++)
        rq[i] = (int32_t *)qat_neon_rq(h, i);
    for (int c = 0; c < p->out_c; c++) {
        int32_t s = p->shift[c];
        rq[QAT_NEON_RQ_BIAS][c] = p->bias_folded[c];
        rq[QAT_NEON_RQ_WZP][c] = p->weight_zp[c];
        rq[QAT_NEON_RQ_MULT][c] = p->multiplier[c];
        rq[QAT_NEON_RQ_LEFT][c] = s > 0 ? s : 0;
        rq[QAT_NEON_RQ_NRIGHT][c] = s > 0 ? 0 : s;
        h->any_left |= s > 0;
        h->any_wzp |= p->weight_zp[c] != 0;
    }
    return h;
}

static size_t size_plain(const qat_rt_conv_params *p) { return packed_size(p, 2); }
static size_t size_dot(const qat_rt_conv_params *p) { return packed_size(p, 1); }

static void pack_plain(const qat_rt_conv_params *p, void *dst)
{
    qat_neon_pack *h = pack_common(p, dst, 2);
    size_t k = (size_t)h->k, kp = (size_t)h->kp;
    int16_t *w = (int16_t *)qat_neon_weights(h);
    for (size_t c = 0; c < (size_t)p->out_c; c++) {
        int16_t *tile = w + c / QAT_NEON_NR * kp * QAT_NEON_NR;
        for (size_t j = 0; j < k; j++)
            tile[j * QAT_NEON_NR + c % QAT_NEON_NR] =
                (int16_t)((int32_t)p->weights[c * k + j] - p->weight_zp[c]);
    }
}

static void pack_dot(const qat_rt_conv_params *p, void *dst)
{
    qat_neon_pack *h = pack_common(p, dst, 1);
    size_t k = (size_t)h->k, kp = (size_t)h->kp;
    int8_t *w = (int8_t *)qat_neon_weights(h);
    for (size_t c = 0; c < (size_t)p->out_c; c++) {
        int8_t *tile = w + c / QAT_NEON_NR * kp * QAT_NEON_NR;
        size_t lane = c % QAT_NEON_NR;
        for (size_t j = 0; j < k; j++)
            tile[(j / 4) * 4 * QAT_NEON_NR + lane * 4 + j % 4] = p->weights[c * k + j];
    }
}

static size_t scratch_plain(const qat_rt_conv_params *p, int max_images)
{
    (void)max_images;
    return (size_t)block_rows(kp_of(p), 2) * kp_of(p) * 2;
}

/* int8 rows, then one int32 row sum per row */
static size_t scratch_dot(const qat_rt_conv_params *p, int max_images)
{
    (void)max_images;
    size_t rows = (size_t)block_rows(kp_of(p), 1);
    return rows * kp_of(p) + rows * sizeof(int32_t);
}

const qat_rt_kernels qat_rt_kernels_neon_plain = {
    .isa = "neon-plain",
    .channel_align = QAT_NEON_NR,
    .quantize_input = qat_u8_quantize_input__neon,
    .conv_packed_size = size_plain,
    .conv_pack = pack_plain,
    .conv_scratch = scratch_plain,
    .conv2d = qat_s8_conv2d__neon,
    .conv2d_maxpool = qat_s8_conv2d_maxpool__neon,
    .linear = qat_s8_conv2d__neon,
    .maxpool2d = qat_s8_maxpool2d__neon,
    .avgpool2d = qat_s8_avgpool2d__neon,
    .requantize = qat_s32_requantize__neon,
};

const qat_rt_kernels qat_rt_kernels_neon_dot = {
    .isa = "neon-dot",
    .channel_align = QAT_NEON_NR,
    .quantize_input = qat_u8_quantize_input__neon,
    .conv_packed_size = size_dot,
    .conv_pack = pack_dot,
    .conv_scratch = scratch_dot,
    .conv2d = qat_s8_conv2d__neondot,
    .conv2d_maxpool = qat_s8_conv2d_maxpool__neondot,
    .linear = qat_s8_conv2d__neondot,
    .maxpool2d = qat_s8_maxpool2d__neon,
    .avgpool2d = qat_s8_avgpool2d__neon,
    .requantize = qat_s32_requantize__neon,
};
