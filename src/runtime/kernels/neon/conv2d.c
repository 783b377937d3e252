/* neon-plain conv2d / linear microkernels: prepared images and patch rows
 * of int16 (the codes widened), and a 4x16 micro-tile (4 patch rows x 16
 * channels, 16 int32x4 accumulators) of smlal by lane over K in steps of 4,
 * with the requantizing output stage fused; and the conv driver
 * (conv_driver.h) instantiated with them. Layout and exactness: layout.h,
 * requant.h. */
#include <arm_neon.h>
#include <string.h>

#include "runtime/kernels/conv_driver.h"
#include "runtime/kernels/neon/kernels_neon.h"
#include "runtime/kernels/neon/layout.h"
#include "runtime/kernels/neon/requant.h"

/* dst[0..n) = (int16) src[0..n) */
static inline void widen(int16_t *d, const int8_t *s, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        vst1q_s16(d + i, vmovl_s8(vld1_s8(s + i)));
    for (; i < n; i++)
        d[i] = s[i];
}

static inline void copy16(int16_t *d, const int16_t *s, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        vst1q_s16(d + i, vld1q_s16(s + i));
    for (; i < n; i++)
        d[i] = s[i];
}

QAT_RT_UKERNEL void qat_s16_fill__neon(void *dst, size_t n, int32_t in_zp)
{
    int16_t *d = dst;
    const int16x8_t v = vdupq_n_s16((int16_t)in_zp);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        vst1q_s16(d + i, v);
    for (; i < n; i++)
        d[i] = (int16_t)in_zp;
}

QAT_RT_UKERNEL void qat_s8s16_widen__neon(void *dst, const int8_t *src, size_t n)
{
    widen(dst, src, n);
}

QAT_RT_UKERNEL void qat_s16_copy__neon(void *dst, const void *src, size_t n)
{
    copy16(dst, src, n);
}

#define MAC_LANE(r, L, w0, w1)                                                        \
    do {                                                                              \
        acc[r][0] = vmlal_lane_s16(acc[r][0], vget_low_s16(w0), x[r], L);             \
        acc[r][1] = vmlal_high_lane_s16(acc[r][1], w0, x[r], L);                      \
        acc[r][2] = vmlal_lane_s16(acc[r][2], vget_low_s16(w1), x[r], L);             \
        acc[r][3] = vmlal_high_lane_s16(acc[r][3], w1, x[r], L);                      \
    } while (0)

static inline __attribute__((always_inline)) void
tile(const int MR, const int pool, const qat_rt_conv_head *h, int t, const int16_t *a,
     int8_t *out, size_t ldo, int nvalid, const qat_neon_out_stage *s)
{
    const size_t kp = (size_t)h->kp;
    const int16_t *w = (const int16_t *)qat_rt_conv_weights(h) + (size_t)t * kp * QAT_NEON_NR;
    int32x4_t acc[QAT_NEON_MR][4];
    qat_neon_start_tile(MR, h, t, acc);
    for (size_t k = 0; k < kp; k += 4, w += 4 * QAT_NEON_NR) {
        int16x4_t x[QAT_NEON_MR];
        for (int r = 0; r < MR; r++)
            x[r] = vld1_s16(a + (size_t)r * kp + k);
        int16x8_t w00 = vld1q_s16(w), w01 = vld1q_s16(w + 8);
        int16x8_t w10 = vld1q_s16(w + 16), w11 = vld1q_s16(w + 24);
        int16x8_t w20 = vld1q_s16(w + 32), w21 = vld1q_s16(w + 40);
        int16x8_t w30 = vld1q_s16(w + 48), w31 = vld1q_s16(w + 56);
        for (int r = 0; r < MR; r++) {
            MAC_LANE(r, 0, w00, w01);
            MAC_LANE(r, 1, w10, w11);
            MAC_LANE(r, 2, w20, w21);
            MAC_LANE(r, 3, w30, w31);
        }
    }
    qat_neon_finish_tile(MR, pool, h, t, acc, out, ldo, nvalid, s);
}

QAT_RT_UKERNEL void qat_s16s16_gemm_4x16__neon(const qat_rt_conv_params *p, const void *params,
                                               int t, int nvalid, int mr,
                                               const void *const *rows, const int32_t *sums,
                                               int8_t *out)
{
    (void)sums;
    const qat_rt_conv_head *h = p->packed;
    const int16_t *a = rows[0]; /* rows are kp apart (im2col) */
    const size_t ldo = (size_t)p->out_c;
    switch (mr) {
    case 4: tile(4, 0, h, t, a, out, ldo, nvalid, params); break;
    case 3: tile(3, 0, h, t, a, out, ldo, nvalid, params); break;
    case 2: tile(2, 0, h, t, a, out, ldo, nvalid, params); break;
    case 1: tile(1, 0, h, t, a, out, ldo, nvalid, params); break;
    }
}

QAT_RT_UKERNEL void qat_s16s16_gemm_maxpool_4x16__neon(const qat_rt_conv_params *p,
                                                       const void *params, int t, int nvalid,
                                                       int mr, const void *const *rows,
                                                       const int32_t *sums, int8_t *out)
{
    (void)sums;
    (void)mr; /* always one window */
    tile(4, 1, p->packed, t, rows[0], out, (size_t)p->out_c, nvalid, params);
}

/* ---- the path's description, and the driver instantiated with it ------------------------- */

const qat_rt_conv_ukernel qat_neon_conv_ukernel = {
    .mr = QAT_NEON_MR, .nr = QAT_NEON_NR, .block_max = 256,
    .pool_mr = 4, /* one 2x2 window */
    .direct = 0, .elem = 2, .offset = 0, .kr = 1, .k_align = 4, .wide = 1,
    .fill = qat_s16_fill__neon, .convert = qat_s8s16_widen__neon, .copy = qat_s16_copy__neon,
    .tile = qat_s16s16_gemm_4x16__neon, .tile_maxpool = qat_s16s16_gemm_maxpool_4x16__neon};

QAT_RT_CONV_KERNELS(qat_s16s16_conv2d_4x16__neon, qat_s16s16_conv2d_maxpool_4x16__neon,
                    qat_neon_conv_ukernel, qat_neon_out_stage, qat_neon_out_stage_of)
