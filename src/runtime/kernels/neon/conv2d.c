/* neon-plain conv2d / linear: im2col widened to int16, then a 4x16 micro-tile
 * (4 output rows x 16 channels, 16 int32x4 accumulators) of smlal by lane
 * over K in steps of 4, with the requantizing output stage fused. Layout and
 * exactness: layout.h, requant.h. */
#include <arm_neon.h>
#include <string.h>

#include "runtime/kernels/kernels.h"
#include "runtime/kernels/neon/im2col.h"
#include "runtime/kernels/neon/layout.h"
#include "runtime/kernels/neon/requant.h"

QAT_NEON_IM2COL(im2col_row, int16_t, qat_neon_copy16)

#define MAC_LANE(r, L, w0, w1)                                                        \
    do {                                                                              \
        acc[r][0] = vmlal_lane_s16(acc[r][0], vget_low_s16(w0), x[r], L);             \
        acc[r][1] = vmlal_high_lane_s16(acc[r][1], w0, x[r], L);                      \
        acc[r][2] = vmlal_lane_s16(acc[r][2], vget_low_s16(w1), x[r], L);             \
        acc[r][3] = vmlal_high_lane_s16(acc[r][3], w1, x[r], L);                      \
    } while (0)

static inline __attribute__((always_inline)) void
tile(const int MR, const int pool, const qat_neon_pack *h, int t, const int16_t *a, int8_t *out, size_t ldo,
     int nvalid, int32x4_t lo, int32x4_t hi, int32x4_t zp)
{
    const size_t kp = (size_t)h->kp, c = (size_t)t * QAT_NEON_NR;
    const int16_t *w = (const int16_t *)qat_neon_weights(h) + (size_t)t * kp * QAT_NEON_NR;
    const int32_t *bias = qat_neon_rq(h, QAT_NEON_RQ_BIAS) + c;
    int32x4_t acc[QAT_NEON_MR][4];
    for (int r = 0; r < MR; r++)
        for (int g = 0; g < 4; g++)
            acc[r][g] = vld1q_s32(bias + 4 * g);
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
    if (pool) { /* MR == 4: one 2x2 window; the output stage is monotone */
        for (int g = 0; g < 4; g++)
            acc[0][g] = vmaxq_s32(vmaxq_s32(acc[0][g], acc[1][g]), vmaxq_s32(acc[2][g], acc[3][g]));
        qat_neon_store_tile(1, h, t, acc, out, ldo, nvalid, lo, hi, zp);
    } else {
        qat_neon_store_tile(MR, h, t, acc, out, ldo, nvalid, lo, hi, zp);
    }
}

void qat_s8_conv2d__neon(const qat_rt_conv_params *p, const int8_t *in, int8_t *out, size_t m0,
                         size_t m1, int c0, int c1, void *scratch)
{
    const qat_neon_pack *h = p->packed;
    const size_t kp = (size_t)h->kp, block = (size_t)h->block_rows, ldo = (size_t)p->out_c;
    int16_t *a = scratch;
    const int32x4_t zp = vdupq_n_s32(p->out_zp);
    const int32x4_t lo = vdupq_n_s32(p->act_min - p->out_zp);
    const int32x4_t hi = vdupq_n_s32(p->act_max - p->out_zp);
    const int t0 = c0 / QAT_NEON_NR, t1 = (c1 + QAT_NEON_NR - 1) / QAT_NEON_NR;
    for (size_t mb = m0; mb < m1; mb += block) {
        size_t rows = m1 - mb < block ? m1 - mb : block;
        qat_neon_pos q;
        qat_neon_pos_at(p, mb, &q);
        for (size_t r = 0; r < rows; r++, qat_neon_pos_next(p, &q))
            im2col_row(p, in, &q, kp, a + r * kp);
        for (int t = t0; t < t1; t++) {
            int nvalid = c1 - t * QAT_NEON_NR < QAT_NEON_NR ? c1 - t * QAT_NEON_NR : QAT_NEON_NR;
            int8_t *o = out + mb * ldo + (size_t)t * QAT_NEON_NR;
            size_t r = 0;
            for (; r + QAT_NEON_MR <= rows; r += QAT_NEON_MR)
                tile(4, 0, h, t, a + r * kp, o + r * ldo, ldo, nvalid, lo, hi, zp);
            switch (rows - r) {
            case 3: tile(3, 0, h, t, a + r * kp, o + r * ldo, ldo, nvalid, lo, hi, zp); break;
            case 2: tile(2, 0, h, t, a + r * kp, o + r * ldo, ldo, nvalid, lo, hi, zp); break;
            case 1: tile(1, 0, h, t, a + r * kp, o + r * ldo, ldo, nvalid, lo, hi, zp); break;
            }
        }
    }
}

/* conv2d fused with a 2x2 stride-2 maxpool: pooled output rows [m0, m1),
 * im2col rows four per pooled pixel (its window), the output stage run once
 * on the max of the four accumulators. */
void qat_s8_conv2d_maxpool__neon(const qat_rt_conv_params *p, const qat_rt_pool_params *pool,
                                 const int8_t *in, int8_t *out, size_t m0, size_t m1, int c0, int c1,
                                 void *scratch)
{
    const qat_neon_pack *h = p->packed;
    const size_t kp = (size_t)h->kp, block = (size_t)h->block_rows / 4, ldo = (size_t)p->out_c;
    const size_t pw = (size_t)pool->out_w, per = (size_t)pool->out_h * pw;
    int16_t *a = scratch;
    const int32x4_t zp = vdupq_n_s32(p->out_zp);
    const int32x4_t lo = vdupq_n_s32(p->act_min - p->out_zp);
    const int32x4_t hi = vdupq_n_s32(p->act_max - p->out_zp);
    const int t0 = c0 / QAT_NEON_NR, t1 = (c1 + QAT_NEON_NR - 1) / QAT_NEON_NR;
    /* pooled pixel of row mb, advanced without dividing */
    size_t img = m0 / per, py = m0 % per / pw, px = m0 % per % pw;
    for (size_t mb = m0; mb < m1; mb += block) {
        size_t outs = m1 - mb < block ? m1 - mb : block, r = 0;
        for (size_t m = mb; m < mb + outs; m++) {
            for (int d = 0; d < 4; d++, r++) {
                qat_neon_pos q = {.img = img, .oy = (int)(2 * py) + d / 2,
                                  .ox = (int)(2 * px) + d % 2};
                im2col_row(p, in, &q, kp, a + r * kp);
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
            int nvalid = c1 - t * QAT_NEON_NR < QAT_NEON_NR ? c1 - t * QAT_NEON_NR : QAT_NEON_NR;
            int8_t *o = out + mb * ldo + (size_t)t * QAT_NEON_NR;
            for (size_t k = 0; k < outs; k++)
                tile(4, 1, h, t, a + 4 * k * kp, o + k * ldo, ldo, nvalid, lo, hi, zp);
        }
    }
}
