/* Two kernel paths made of the portable drivers and scalar microkernels,
 * for the kernel tester: they check the drivers themselves (blocking, the
 * walk over pixels and pooled windows, image preparation, the hand-over of
 * patch rows and sums, row and channel tails) on every build, SIMD or not,
 * with tile sizes no real path has and blocks so small that blocks,
 * images and pooled windows cross each other's boundaries all the time.
 *
 * - "drv-gemm-3x8": im2col. Prepared images of int32 codes, patch rows of
 *   int32 with K padded to even, 3x8 tiles, 2 pooled windows per pooled
 *   tile, weights stored as int16 w - wzp in K pairs; pointwise layers
 *   read the int8 input directly.
 * - "drv-igemm-5x4": direct. Prepared images of int16 u = x + 1000 that
 *   tiles read in place, 5x4 tiles, one window per pooled tile, raw weights
 *   with the zero points applied through window sums and the offset folded
 *   into the bias (the AVX-512 scheme).
 *
 * Both compute each output with qat_fp_requantize, so equality with ref is
 * a statement about the drivers. */
#include <string.h>

#include "driver_paths.h"
#include "runtime/kernels/conv_driver.h"

#include "qat/fixedpoint.h"

typedef struct out_stage {
    int32_t zp, lo, hi;
} out_stage;

static out_stage out_stage_of(const qat_rt_conv_params *p)
{
    out_stage s = {p->out_zp, p->act_min, p->act_max};
    return s;
}

static int8_t requant(const qat_rt_conv_head *h, const out_stage *s, int32_t acc, int c)
{
    int32_t shift = qat_rt_conv_rq(h, QAT_RT_RQ_LEFT)[c] - qat_rt_conv_rq(h, QAT_RT_RQ_RIGHT)[c];
    return (int8_t)qat_fp_requantize(acc, qat_rt_conv_rq(h, QAT_RT_RQ_MULT)[c], shift, s->zp,
                                     s->lo, s->hi);
}

/* Output row r's channel ch of tile t, maxed over `group` accumulators. */
static void store(const qat_rt_conv_params *p, const out_stage *s, int t, int nr, int nvalid,
                  int mr, int group, const int32_t *acc, int8_t *out)
{
    const qat_rt_conv_head *h = p->packed;
    for (int o = 0; o < mr / group; o++)
        for (int ch = 0; ch < nvalid; ch++) {
            int32_t best = acc[o * group * nr + ch];
            for (int g = 1; g < group; g++) {
                int32_t v = acc[(o * group + g) * nr + ch];
                best = v > best ? v : best;
            }
            out[(size_t)o * (size_t)p->out_c + (size_t)ch] = requant(h, s, best, t * nr + ch);
        }
}

/* ---- drv-gemm-3x8 ------------------------------------------------------------------------ */

enum { G_MR = 3, G_NR = 8 };

static void g_fill(void *dst, size_t n, int32_t in_zp)
{
    for (size_t i = 0; i < n; i++)
        ((int32_t *)dst)[i] = in_zp;
}

static void g_convert(void *dst, const int8_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ((int32_t *)dst)[i] = src[i];
}

static void g_copy(void *dst, const void *src, size_t n)
{
    memcpy(dst, src, n * sizeof(int32_t));
}

static void g_acc(const qat_rt_conv_params *p, int t, int mr, const void *const *rows,
                  int32_t *acc)
{
    const qat_rt_conv_head *h = p->packed;
    const size_t kp = (size_t)h->kp;
    const int16_t *w = (const int16_t *)qat_rt_conv_weights(h) + (size_t)t * kp * G_NR;
    const int32_t *bias = qat_rt_conv_rq(h, QAT_RT_RQ_BIAS) + t * G_NR;
    for (int r = 0; r < mr; r++) {
        const int32_t *a = rows[r];
        for (int ch = 0; ch < G_NR; ch++) {
            uint32_t s = (uint32_t)bias[ch]; /* partial sums may leave int32 */
            for (size_t k = 0; k < kp; k++)
                s += (uint32_t)(w[k / 2 * 2 * G_NR + (size_t)ch * 2 + k % 2] * a[k]);
            acc[r * G_NR + ch] = (int32_t)s;
        }
    }
}

static void g_tile(const qat_rt_conv_params *p, const void *params, int t, int nvalid, int mr,
                   const void *const *rows, const int32_t *sums, int8_t *out)
{
    (void)sums;
    int32_t acc[G_MR * G_NR];
    g_acc(p, t, mr, rows, acc);
    store(p, params, t, G_NR, nvalid, mr, 1, acc, out);
}

static void g_tile_pool(const qat_rt_conv_params *p, const void *params, int t, int nvalid,
                        int mr, const void *const *rows, const int32_t *sums, int8_t *out)
{
    (void)sums;
    int32_t acc[8 * G_NR];
    g_acc(p, t, mr, rows, acc);
    store(p, params, t, G_NR, nvalid, mr, 4, acc, out);
}

static const qat_rt_conv_ukernel g_uk = {
    .mr = G_MR, .nr = G_NR, .pool_mr = 8, .block_max = 24,
    .direct = 0, .elem = 4, .offset = 0, .kr = 2, .k_align = 2, .wide = 1,
    .fill = g_fill, .convert = g_convert, .copy = g_copy,
    .tile = g_tile, .tile_maxpool = g_tile_pool,
};

QAT_RT_CONV_PACKING(g_size, g_pack, g_uk)

QAT_RT_CONV_KERNELS(qat_test_gemm_conv2d, qat_test_gemm_conv2d_maxpool, g_uk, out_stage,
                    out_stage_of)

/* ---- drv-igemm-5x4 ----------------------------------------------------------------------- */

enum { I_MR = 5, I_NR = 4, I_OFFSET = 1000 };

static void i_fill(void *dst, size_t n, int32_t in_zp)
{
    for (size_t i = 0; i < n; i++)
        ((int16_t *)dst)[i] = (int16_t)(in_zp + I_OFFSET);
}

static void i_convert(void *dst, const int8_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ((int16_t *)dst)[i] = (int16_t)(src[i] + I_OFFSET);
}

static int32_t i_sum(const void *v, size_t n)
{
    int32_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += ((const int16_t *)v)[i];
    return s;
}

static void i_acc(const qat_rt_conv_params *p, int t, int mr, const void *const *rows,
                  const int32_t *sums, int32_t *acc)
{
    const qat_rt_conv_head *h = p->packed;
    const size_t prow = (size_t)(p->in_w + 2 * p->pad_w) * (size_t)p->in_c;
    const int8_t *w = (const int8_t *)qat_rt_conv_weights(h) + (size_t)t * (size_t)h->k * I_NR;
    const int32_t *bias = qat_rt_conv_rq(h, QAT_RT_RQ_BIAS) + t * I_NR;
    const int32_t *wzp = qat_rt_conv_rq(h, QAT_RT_RQ_WZP) + t * I_NR;
    for (int r = 0; r < mr; r++)
        for (int ch = 0; ch < I_NR; ch++) {
            uint32_t s = (uint32_t)bias[ch]; /* modulo 2^32, like vpdpbusd */
            for (int ky = 0; ky < p->kernel_h; ky++) {
                const int16_t *u = (const int16_t *)rows[r] + (size_t)ky * prow;
                for (int i = 0; i < h->len; i++)
                    s += (uint32_t)((int32_t)w[((size_t)ky * (size_t)h->len + (size_t)i) * I_NR +
                                               (size_t)ch] *
                                    u[i]);
            }
            if (h->any_wzp)
                s -= (uint32_t)wzp[ch] * (uint32_t)sums[r];
            acc[r * I_NR + ch] = (int32_t)s;
        }
}

static void i_tile(const qat_rt_conv_params *p, const void *params, int t, int nvalid, int mr,
                   const void *const *rows, const int32_t *sums, int8_t *out)
{
    int32_t acc[I_MR * I_NR];
    i_acc(p, t, mr, rows, sums, acc);
    store(p, params, t, I_NR, nvalid, mr, 1, acc, out);
}

static void i_tile_pool(const qat_rt_conv_params *p, const void *params, int t, int nvalid,
                        int mr, const void *const *rows, const int32_t *sums, int8_t *out)
{
    int32_t acc[4 * I_NR];
    i_acc(p, t, mr, rows, sums, acc);
    store(p, params, t, I_NR, nvalid, mr, 4, acc, out);
}

static const qat_rt_conv_ukernel i_uk = {
    .mr = I_MR, .nr = I_NR, .pool_mr = 4, .block_max = 20,
    .direct = 1, .elem = 2, .offset = I_OFFSET, .kr = 1, .k_align = 1, .wide = 0,
    .fill = i_fill, .convert = i_convert, .sum = i_sum,
    .tile = i_tile, .tile_maxpool = i_tile_pool,
};

QAT_RT_CONV_PACKING(i_size, i_pack, i_uk)

QAT_RT_CONV_KERNELS(qat_test_igemm_conv2d, qat_test_igemm_conv2d_maxpool, i_uk, out_stage,
                    out_stage_of)

/* ---- pools: the pool driver with scalar row microkernels -------------------------------- */

static void max_row(const qat_rt_pool_params *p, const int8_t *win, size_t n, int8_t *out)
{
    const size_t c = (size_t)p->c, in_w = (size_t)p->in_w;
    for (size_t i = 0; i < n; i++, win += (size_t)p->stride_w * c)
        for (size_t ch = 0; ch < c; ch++) {
            int8_t v = INT8_MIN;
            for (int ky = 0; ky < p->kernel_h; ky++)
                for (int kx = 0; kx < p->kernel_w; kx++) {
                    int8_t x = win[((size_t)ky * in_w + (size_t)kx) * c + ch];
                    v = x > v ? x : v;
                }
            out[i * c + ch] = v;
        }
}

static void avg_row(const qat_rt_pool_params *p, const int8_t *win, size_t n, int8_t *out)
{
    const size_t c = (size_t)p->c, in_w = (size_t)p->in_w;
    const int32_t count = p->kernel_h * p->kernel_w;
    for (size_t i = 0; i < n; i++, win += (size_t)p->stride_w * c)
        for (size_t ch = 0; ch < c; ch++) {
            int32_t s = 0;
            for (int ky = 0; ky < p->kernel_h; ky++)
                for (int kx = 0; kx < p->kernel_w; kx++)
                    s += win[((size_t)ky * in_w + (size_t)kx) * c + ch] - p->zp;
            int32_t v = p->zp + qat_fp_div_round(s, count);
            out[i * c + ch] = (int8_t)(v < INT8_MIN ? INT8_MIN : v > INT8_MAX ? INT8_MAX : v);
        }
}

QAT_RT_POOL_KERNEL(qat_test_maxpool2d, max_row)
QAT_RT_POOL_KERNEL(qat_test_avgpool2d, avg_row)

const qat_rt_kernels qat_test_driver_gemm = {
    .isa = "drv-gemm-3x8",
    .channel_align = G_NR,
    .quantize_input = qat_u8_quantize_input__ref,
    .conv_packed_size = g_size,
    .conv_pack = g_pack,
    .conv_scratch = qat_rt_conv_scratch,
    .conv2d = qat_test_gemm_conv2d,
    .conv2d_maxpool = qat_test_gemm_conv2d_maxpool,
    .linear = qat_test_gemm_conv2d,
    .maxpool2d = qat_test_maxpool2d,
    .avgpool2d = qat_test_avgpool2d,
    .requantize = qat_s32_requantize__ref,
};

const qat_rt_kernels qat_test_driver_igemm = {
    .isa = "drv-igemm-5x4",
    .channel_align = I_NR,
    .quantize_input = qat_u8_quantize_input__ref,
    .conv_packed_size = i_size,
    .conv_pack = i_pack,
    .conv_scratch = qat_rt_conv_scratch,
    .conv2d = qat_test_igemm_conv2d,
    .conv2d_maxpool = qat_test_igemm_conv2d_maxpool,
    .linear = qat_test_igemm_conv2d,
    .maxpool2d = qat_test_maxpool2d,
    .avgpool2d = qat_test_avgpool2d,
    .requantize = qat_s32_requantize__ref,
};
