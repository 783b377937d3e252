/* NEON pool row microkernels (pool_driver.c walks the pixels), input
 * quantization and the standalone output stage, shared by neon-plain and
 * neon-dot. Scalar twins: kernels/ref. */
#include <arm_neon.h>
#include <string.h>

#include "runtime/kernels/neon/kernels_neon.h"
#include "runtime/kernels/neon/requant.h"

#include "qat/fixedpoint.h"

void qat_u8_quantize_input_x16__neon(const uint8_t *pixels, int8_t *q, size_t count)
{
    const uint8x16_t flip = vdupq_n_u8(0x80); /* p - 128 flips the top bit */
    size_t i = 0;
    for (; i + 16 <= count; i += 16)
        vst1q_s8(q + i, vreinterpretq_s8_u8(veorq_u8(vld1q_u8(pixels + i), flip)));
    for (; i < count; i++)
        q[i] = (int8_t)(pixels[i] ^ 0x80);
}

void qat_s8_maxpool_row_c16__neon(const qat_rt_pool_params *p, const int8_t *win, size_t n,
                                  int8_t *out)
{
    const size_t c = (size_t)p->c, in_w = (size_t)p->in_w, xstep = (size_t)p->stride_w * c;
    for (size_t i = 0; i < n; i++, win += xstep) {
        int8_t *dst = out + i * c;
        size_t ch = 0;
        for (; ch + 16 <= c; ch += 16) {
            int8x16_t v = vdupq_n_s8(INT8_MIN);
            for (int ky = 0; ky < p->kernel_h; ky++)
                for (int kx = 0; kx < p->kernel_w; kx++)
                    v = vmaxq_s8(v, vld1q_s8(win + ((size_t)ky * in_w + (size_t)kx) * c + ch));
            vst1q_s8(dst + ch, v);
        }
        qat_rt_maxpool_tail(p, win, ch, dst);
    }
}

/* floor(u / n) for 4 lanes of u in [0, 2^31) (qat_rt_pool_divisor). */
static inline int32x4_t div_floor(uint32x4_t u, uint32_t mul, int64x2_t nshift)
{
    uint64x2_t lo = vshlq_u64(vmull_n_u32(vget_low_u32(u), mul), nshift);
    uint64x2_t hi = vshlq_u64(vmull_high_n_u32(u, mul), nshift);
    return vreinterpretq_s32_u32(vcombine_u32(vmovn_u64(lo), vmovn_u64(hi)));
}

void qat_s8_avgpool_row_c8__neon(const qat_rt_pool_params *p, const int8_t *win, size_t count,
                                 int8_t *out)
{
    const size_t c = (size_t)p->c, in_w = (size_t)p->in_w, xstep = (size_t)p->stride_w * c;
    const int32_t n = p->kernel_h * p->kernel_w;
    const int32x4_t start = vdupq_n_s32(-n * p->zp), half = vdupq_n_s32(n / 2);
    const int32x4_t zp = vdupq_n_s32(p->zp);
    const int64x2_t nshift = vdupq_n_s64(-(int64_t)p->div_shift);
    for (size_t i = 0; i < count; i++, win += xstep) {
        int8_t *dst = out + i * c;
        size_t ch = 0;
        for (; ch + 8 <= c; ch += 8) {
            int32x4_t s0 = start, s1 = start;
            for (int ky = 0; ky < p->kernel_h; ky++)
                for (int kx = 0; kx < p->kernel_w; kx++) {
                    int16x8_t x = vmovl_s8(vld1_s8(win + ((size_t)ky * in_w + (size_t)kx) * c + ch));
                    s0 = vaddw_s16(s0, vget_low_s16(x));
                    s1 = vaddw_high_s16(s1, x);
                }
            int32x4_t r[2];
            int32x4_t s[2] = {s0, s1};
            for (int i = 0; i < 2; i++) {
                uint32x4_t u = vreinterpretq_u32_s32(vaddq_s32(vabsq_s32(s[i]), half));
                int32x4_t q = div_floor(u, p->div_mul, nshift);
                uint32x4_t neg = vcltq_s32(s[i], vdupq_n_s32(0));
                r[i] = vaddq_s32(vbslq_s32(neg, vnegq_s32(q), q), zp);
            }
            int16x8_t r16 = vcombine_s16(vqmovn_s32(r[0]), vqmovn_s32(r[1]));
            vst1_s8(dst + ch, vqmovn_s16(r16)); /* saturates to int8, as the clamp does */
        }
        qat_rt_avgpool_tail(p, win, ch, dst);
    }
}

void qat_s32_requantize_x4__neon(const qat_rt_requant_params *q, const int32_t *acc, int8_t *out,
                                 size_t rows)
{
    const size_t n = (size_t)q->channels;
    const int32x4_t zp = vdupq_n_s32(q->out_zp);
    const int32x4_t lo = vdupq_n_s32(q->act_min - q->out_zp);
    const int32x4_t hi = vdupq_n_s32(q->act_max - q->out_zp);
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < n; c += 4) {
            size_t len = n - c < 4 ? n - c : 4;
            int32_t av[4] = {0}, mv[4] = {0}, sv[4] = {0};
            memcpy(av, acc + r * n + c, len * sizeof(int32_t));
            memcpy(mv, q->multiplier + c, len * sizeof(int32_t));
            memcpy(sv, q->shift + c, len * sizeof(int32_t));
            qat_neon_rq4 rq = qat_neon_rq_lanes(vld1q_s32(mv), vld1q_s32(sv));
            int32x4_t v = qat_neon_requant(vld1q_s32(av), &rq, 1, lo, hi, zp);
            int8_t tmp[8];
            vst1_s8(tmp, vqmovn_s16(vcombine_s16(vqmovn_s32(v), vqmovn_s32(v))));
            memcpy(out + r * n + c, tmp, len);
        }
    }
}
