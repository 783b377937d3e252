/* neon-dot conv2d / linear: im2col as int8 (plus each row's sum when some
 * channel has a weight zero point), then a 4x16 micro-tile of sdot: per
 * group of 4 k, each row's 4 activations are broadcast to all lanes and
 * dotted with 4 channel groups of (4 channels x 4 k) raw weights. Built with
 * -march=armv8.2-a+dotprod; dispatch only picks it when getauxval reports
 * HWCAP_ASIMDDP. Layout and exactness: layout.h, requant.h. */
#include <arm_neon.h>
#include <string.h>

#include "runtime/kernels/kernels.h"
#include "runtime/kernels/neon/im2col.h"
#include "runtime/kernels/neon/layout.h"
#include "runtime/kernels/neon/requant.h"

QAT_NEON_IM2COL(im2col_row, int8_t, qat_neon_copy8)

/* Sum of a row's kp int8 values (the K padding is zero). */
static int32_t row_sum(const int8_t *a, size_t kp)
{
    int32x4_t s = vdupq_n_s32(0);
    size_t i = 0;
    for (; i + 16 <= kp; i += 16)
        s = vpadalq_s16(s, vpaddlq_s8(vld1q_s8(a + i)));
    int32_t t = vaddvq_s32(s);
    for (; i < kp; i++)
        t += a[i];
    return t;
}

static inline __attribute__((always_inline)) void
tile(const int MR, const int pool, const qat_neon_pack *h, int t, const int8_t *a, const int32_t *sums,
     int8_t *out, size_t ldo, int nvalid, int32x4_t lo, int32x4_t hi, int32x4_t zp)
{
    const size_t kp = (size_t)h->kp, c = (size_t)t * QAT_NEON_NR;
    const int8_t *w = (const int8_t *)qat_neon_weights(h) + (size_t)t * kp * QAT_NEON_NR;
    const int32_t *bias = qat_neon_rq(h, QAT_NEON_RQ_BIAS) + c;
    int32x4_t acc[QAT_NEON_MR][4];
    for (int r = 0; r < MR; r++)
        for (int g = 0; g < 4; g++)
            acc[r][g] = vld1q_s32(bias + 4 * g);
    for (size_t k = 0; k < kp; k += 4, w += 4 * QAT_NEON_NR) {
        int8x16_t w0 = vld1q_s8(w), w1 = vld1q_s8(w + 16);
        int8x16_t w2 = vld1q_s8(w + 32), w3 = vld1q_s8(w + 48);
        for (int r = 0; r < MR; r++) {
            int32_t four;
            memcpy(&four, a + (size_t)r * kp + k, sizeof four);
            int8x16_t x = vreinterpretq_s8_s32(vdupq_n_s32(four));
            acc[r][0] = vdotq_s32(acc[r][0], w0, x);
            acc[r][1] = vdotq_s32(acc[r][1], w1, x);
            acc[r][2] = vdotq_s32(acc[r][2], w2, x);
            acc[r][3] = vdotq_s32(acc[r][3], w3, x);
        }
    }
    if (h->any_wzp) { /* sum (w - wzp) x = sum w x - wzp * sum x */
        const int32_t *wzp = qat_neon_rq(h, QAT_NEON_RQ_WZP) + c;
        for (int g = 0; g < 4; g++) {
            int32x4_t z = vld1q_s32(wzp + 4 * g);
            for (int r = 0; r < MR; r++)
                acc[r][g] = vmlsq_n_s32(acc[r][g], z, sums[r]);
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

void qat_s8_conv2d__neondot(const qat_rt_conv_params *p, const int8_t *in, int8_t *out,
                            size_t m0, size_t m1, int c0, int c1, void *scratch)
{
    const qat_neon_pack *h = p->packed;
    const size_t kp = (size_t)h->kp, block = (size_t)h->block_rows, ldo = (size_t)p->out_c;
    int8_t *a = scratch;
    int32_t *sums = (int32_t *)(void *)(a + block * kp); /* kp % 4 == 0: aligned */
    const int32x4_t zp = vdupq_n_s32(p->out_zp);
    const int32x4_t lo = vdupq_n_s32(p->act_min - p->out_zp);
    const int32x4_t hi = vdupq_n_s32(p->act_max - p->out_zp);
    const int t0 = c0 / QAT_NEON_NR, t1 = (c1 + QAT_NEON_NR - 1) / QAT_NEON_NR;
    for (size_t mb = m0; mb < m1; mb += block) {
        size_t rows = m1 - mb < block ? m1 - mb : block;
        qat_neon_pos q;
        qat_neon_pos_at(p, mb, &q);
        for (size_t r = 0; r < rows; r++, qat_neon_pos_next(p, &q)) {
            im2col_row(p, in, &q, kp, a + r * kp);
            if (h->any_wzp)
                sums[r] = row_sum(a + r * kp, kp);
        }
        for (int t = t0; t < t1; t++) {
            int nvalid = c1 - t * QAT_NEON_NR < QAT_NEON_NR ? c1 - t * QAT_NEON_NR : QAT_NEON_NR;
            int8_t *o = out + mb * ldo + (size_t)t * QAT_NEON_NR;
            size_t r = 0;
            for (; r + QAT_NEON_MR <= rows; r += QAT_NEON_MR)
                tile(4, 0, h, t, a + r * kp, sums + r, o + r * ldo, ldo, nvalid, lo, hi, zp);
            switch (rows - r) {
            case 3: tile(3, 0, h, t, a + r * kp, sums + r, o + r * ldo, ldo, nvalid, lo, hi, zp); break;
            case 2: tile(2, 0, h, t, a + r * kp, sums + r, o + r * ldo, ldo, nvalid, lo, hi, zp); break;
            case 1: tile(1, 0, h, t, a + r * kp, sums + r, o + r * ldo, ldo, nvalid, lo, hi, zp); break;
            }
        }
    }
}

/* conv2d fused with a 2x2 stride-2 maxpool: pooled output rows [m0, m1),
 * im2col rows four per pooled pixel (its window), the output stage run once
 * on the max of the four accumulators. */
void qat_s8_conv2d_maxpool__neondot(const qat_rt_conv_params *p, const qat_rt_pool_params *pool,
                                    const int8_t *in, int8_t *out, size_t m0, size_t m1, int c0, int c1,
                                    void *scratch)
{
    const qat_neon_pack *h = p->packed;
    const size_t kp = (size_t)h->kp, block = (size_t)h->block_rows / 4, ldo = (size_t)p->out_c;
    const size_t pw = (size_t)pool->out_w, per = (size_t)pool->out_h * pw;
    int8_t *a = scratch;
    int32_t *sums = (int32_t *)(void *)(a + (size_t)h->block_rows * kp);
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
                if (h->any_wzp)
                    sums[r] = row_sum(a + r * kp, kp);
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
                tile(4, 1, h, t, a + 4 * k * kp, sums + 4 * k, o + k * ldo, ldo, nvalid, lo, hi, zp);
        }
    }
}
