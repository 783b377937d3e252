/* Packing for the AVX-512 VNNI path (layout.h) and its kernel table. Plain
 * C: it runs once per layer at model creation. The pools, input stage and
 * standalone output stage are the AVX2 ones (every AVX-512 CPU has AVX2). */
#include <string.h>

#include "runtime/kernels/avx512/layout.h"
#include "runtime/kernels/kernels.h"

void qat_u8s8_conv2d_8x32__avx512vnni(const qat_rt_conv_params *p, const int8_t *in, int8_t *out,
                                      size_t m0, size_t m1, int c0, int c1, void *scratch);
void qat_u8s8_conv2d_maxpool_8x32__avx512vnni(const qat_rt_conv_params *p,
                                              const qat_rt_pool_params *pool, const int8_t *in,
                                              int8_t *out, size_t m0, size_t m1, int c0, int c1,
                                              void *scratch);
void qat_s8_maxpool2d__avx2(const qat_rt_pool_params *p, const int8_t *in, int8_t *out, size_t m0,
                            size_t m1);
void qat_s8_avgpool2d__avx2(const qat_rt_pool_params *p, const int8_t *in, int8_t *out, size_t m0,
                            size_t m1);
void qat_u8_quantize_input__avx2(const uint8_t *pixels, int8_t *q, size_t count);
void qat_s32_requantize__avx2(const qat_rt_requant_params *q, const int32_t *acc, int8_t *out,
                              size_t rows);

static size_t lenp_of(const qat_rt_conv_params *p)
{
    return ((size_t)p->kernel_w * (size_t)p->in_c + 3) & ~(size_t)3;
}

static size_t tiles_of(const qat_rt_conv_params *p)
{
    return ((size_t)p->out_c + QAT_AVX512_NR - 1) / QAT_AVX512_NR;
}

static size_t packed_size(const qat_rt_conv_params *p)
{
    size_t t = tiles_of(p);
    return sizeof(qat_avx512_pack) +
           (size_t)QAT_AVX512_RQ_COUNT * t * QAT_AVX512_NR * sizeof(int32_t) +
           t * (size_t)p->kernel_h * lenp_of(p) * QAT_AVX512_NR;
}

static void pack(const qat_rt_conv_params *p, void *dst)
{
    const size_t len = (size_t)p->kernel_w * (size_t)p->in_c, lenp = lenp_of(p);
    const size_t kh = (size_t)p->kernel_h, k = kh * len, kp = kh * lenp;
    qat_avx512_pack *h = dst;
    memset(dst, 0, packed_size(p));
    h->len = (int32_t)len;
    h->lenp = (int32_t)lenp;
    h->kp = (int32_t)kp;
    h->tiles = (int32_t)tiles_of(p);
    int32_t *rq[QAT_AVX512_RQ_COUNT];
    for (int i = 0; i < QAT_AVX512_RQ_COUNT; i++)
        rq[i] = (int32_t *)qat_avx512_rq(h, i);
    int8_t *w = (int8_t *)qat_avx512_weights(h);
    for (size_t c = 0; c < (size_t)p->out_c; c++) {
        int32_t s = p->shift[c], wzp = p->weight_zp[c];
        int32_t right = s > 0 ? 0 : -s;
        int32_t mask = (int32_t)((1LL << right) - 1);
        long long sum = 0;
        int8_t *tile = w + c / QAT_AVX512_NR * kp * QAT_AVX512_NR;
        size_t lane = c % QAT_AVX512_NR;
        for (size_t j = 0; j < k; j++) {
            int8_t v = p->weights[c * k + j];
            size_t jp = j / len * lenp + j % len; /* position on the padded K axis */
            sum += v;
            tile[(jp / 4) * 4 * QAT_AVX512_NR + lane * 4 + jp % 4] = v;
        }
        /* modulo 2^32 on purpose (layout.h): unsigned arithmetic, no overflow */
        uint32_t bias = (uint32_t)p->bias_folded[c] - 128u * (uint32_t)sum +
                        128u * (uint32_t)k * (uint32_t)wzp;
        rq[QAT_AVX512_RQ_BIAS][c] = (int32_t)bias;
        rq[QAT_AVX512_RQ_WZP][c] = wzp;
        rq[QAT_AVX512_RQ_MULT][c] = p->multiplier[c];
        rq[QAT_AVX512_RQ_LEFT][c] = s > 0 ? s : 0;
        rq[QAT_AVX512_RQ_RIGHT][c] = right;
        rq[QAT_AVX512_RQ_MASK][c] = mask;
        rq[QAT_AVX512_RQ_THR][c] = mask >> 1;
        h->any_left |= s > 0;
        h->any_wzp |= wzp != 0;
    }
}

static size_t scratch_size(const qat_rt_conv_params *p, int max_images)
{
    return (size_t)max_images *
               qat_avx512_image_bytes(p->in_h, p->in_w, p->in_c, p->pad_h, p->pad_w) +
           64;
}

const qat_rt_kernels qat_rt_kernels_avx512vnni = {
    .isa = "avx512vnni",
    .channel_align = QAT_AVX512_NR,
    .quantize_input = qat_u8_quantize_input__avx2,
    .conv_packed_size = packed_size,
    .conv_pack = pack,
    .conv_scratch = scratch_size,
    .conv2d = qat_u8s8_conv2d_8x32__avx512vnni,
    .conv2d_maxpool = qat_u8s8_conv2d_maxpool_8x32__avx512vnni,
    .linear = qat_u8s8_conv2d_8x32__avx512vnni,
    .maxpool2d = qat_s8_maxpool2d__avx2,
    .avgpool2d = qat_s8_avgpool2d__avx2,
    .requantize = qat_s32_requantize__avx2,
};
