/* The output stage of docs/ARITHMETIC.md §3.4 on 4 int32 lanes, bit for bit
 * qat_fp_requantize, with the instructions gemmlowp's NEON path uses:
 * - SatShl is sqshl (saturating shift left);
 * - SRDHM is sqrdmulh: sat((2ab + 2^31) >> 32) = floor((ab + 2^30) / 2^31),
 *   ties toward +infinity, saturating only a = b = INT32_MIN, as specified;
 * - RDPOT(x, r) is srshl by -r (round half up) after adding -1 to negative
 *   x when r > 0 (which turns half-up into half-away-from-zero; the add
 *   saturates, harmless at INT32_MIN since the rounded result is the same).
 * For aarch64 files only. */
#ifndef QAT_RT_NEON_REQUANT_H
#define QAT_RT_NEON_REQUANT_H

#include <arm_neon.h>
#include <string.h>

#include "runtime/kernels/microkernel.h"
#include "runtime/kernels/neon/layout.h"

typedef struct qat_neon_rq4 {
    int32x4_t mult, left, nright;
} qat_neon_rq4;

/* Rescale (qat_fp_rescale): the stage before the zero point and the clamp. */
static inline int32x4_t qat_neon_rescale(int32x4_t acc, const qat_neon_rq4 *q, int any_left)
{
    if (any_left)
        acc = vqshlq_s32(acc, q->left);
    int32x4_t x = vqrdmulhq_s32(acc, q->mult);
    /* sign bit of x & -r: set iff x < 0 and r > 0 */
    int32x4_t fix = vshrq_n_s32(vandq_s32(x, q->nright), 31);
    return vrshlq_s32(vqaddq_s32(x, fix), q->nright);
}

static inline int32x4_t qat_neon_requant(int32x4_t acc, const qat_neon_rq4 *q, int any_left,
                                         int32x4_t lo, int32x4_t hi, int32x4_t zp)
{
    int32x4_t x = qat_neon_rescale(acc, q, any_left);
    x = vminq_s32(vmaxq_s32(x, lo), hi); /* lo/hi are act_min/max - zp: no overflow */
    return vaddq_s32(x, zp);
}

/* The lanes of a stage from each lane's multiplier and shift. */
static inline qat_neon_rq4 qat_neon_rq_lanes(int32x4_t mult, int32x4_t shift)
{
    const int32x4_t zero = vdupq_n_s32(0);
    qat_neon_rq4 q = {.mult = mult, .left = vmaxq_s32(shift, zero),
                      .nright = vminq_s32(shift, zero)};
    return q;
}

/* 16 codes (already in int8 range) -> 16 bytes. */
static inline int8x16_t qat_neon_narrow16(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d)
{
    int16x8_t ab = vcombine_s16(vqmovn_s32(a), vqmovn_s32(b));
    int16x8_t cd = vcombine_s16(vqmovn_s32(c), vqmovn_s32(d));
    return vcombine_s8(vqmovn_s16(ab), vqmovn_s16(cd));
}

/* The tiles' per-call params: the output stage's clamp bounds
 * act_min - out_zp and act_max - out_zp, and out_zp. */
typedef struct qat_neon_out_stage {
    int32x4_t lo, hi, zp;
} qat_neon_out_stage;

static inline qat_neon_out_stage qat_neon_out_stage_of(const qat_rt_conv_params *p)
{
    qat_neon_out_stage s = {.lo = vdupq_n_s32(p->act_min - p->out_zp),
                            .hi = vdupq_n_s32(p->act_max - p->out_zp),
                            .zp = vdupq_n_s32(p->out_zp)};
    return s;
}

/* The start of both NEON tiles: MR rows of accumulators at tile t's bias. */
static inline __attribute__((always_inline)) void
qat_neon_start_tile(const int MR, const qat_rt_conv_head *h, int t, int32x4_t acc[QAT_NEON_MR][4])
{
    const int32_t *bias = qat_rt_conv_rq(h, QAT_RT_RQ_BIAS) + (size_t)t * QAT_NEON_NR;
    for (int r = 0; r < MR; r++)
        for (int g = 0; g < 4; g++)
            acc[r][g] = vld1q_s32(bias + 4 * g);
}

/* The end of both NEON tiles: MR rows of accumulators x 16 channels of
 * tile t through the output stage, channels [0, nvalid) stored (row stride
 * ldo). pool: the MR = 4 rows are one 2x2 window; the output stage is
 * monotone, so it runs once, on their max. */
static inline __attribute__((always_inline)) void
qat_neon_finish_tile(const int MR, const int pool, const qat_rt_conv_head *h, int t,
                     int32x4_t acc[QAT_NEON_MR][4], int8_t *out, size_t ldo, int nvalid,
                     const qat_neon_out_stage *s)
{
    const size_t c = (size_t)t * QAT_NEON_NR;
    if (pool)
        for (int g = 0; g < 4; g++)
            acc[0][g] = vmaxq_s32(vmaxq_s32(acc[0][g], acc[1][g]), vmaxq_s32(acc[2][g], acc[3][g]));
    qat_neon_rq4 q[4];
    for (int g = 0; g < 4; g++) {
        q[g].mult = vld1q_s32(qat_rt_conv_rq(h, QAT_RT_RQ_MULT) + c + 4 * g);
        q[g].left = vld1q_s32(qat_rt_conv_rq(h, QAT_RT_RQ_LEFT) + c + 4 * g);
        q[g].nright = vld1q_s32(qat_rt_conv_rq(h, QAT_RT_RQ_NRIGHT) + c + 4 * g);
    }
    for (int r = 0; r < (pool ? 1 : MR); r++) {
        int32x4_t v[4];
        for (int g = 0; g < 4; g++)
            v[g] = qat_neon_requant(acc[r][g], &q[g], h->any_left, s->lo, s->hi, s->zp);
        int8x16_t b = qat_neon_narrow16(v[0], v[1], v[2], v[3]);
        int8_t *o = out + (size_t)r * ldo;
        if (nvalid == QAT_NEON_NR) {
            vst1q_s8(o, b);
        } else {
            int8_t tmp[16];
            vst1q_s8(tmp, b);
            memcpy(o, tmp, (size_t)nvalid);
        }
    }
}

#endif
