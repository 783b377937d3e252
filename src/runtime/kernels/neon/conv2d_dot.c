/* neon-dot conv2d / linear microkernels: prepared images and patch rows of
 * int8 codes (plus each row's sum when some channel has a weight zero
 * point), and a 4x16 micro-tile of sdot: per group of 4 k, each row's 4
 * activations are broadcast to all lanes and dotted with 4 channel groups
 * of (4 channels x 4 k) raw weights; and the conv driver (conv_driver.h)
 * instantiated with them. Built with -march=armv8.2-a+dotprod; dispatch
 * only picks it when getauxval reports HWCAP_ASIMDDP. Layout and
 * exactness: layout.h, requant.h. */
#include <arm_neon.h>
#include <string.h>

#include "runtime/kernels/conv_driver.h"
#include "runtime/kernels/neon/kernels_neon.h"
#include "runtime/kernels/neon/layout.h"
#include "runtime/kernels/neon/requant.h"

static inline void copy8(int8_t *d, const int8_t *s, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        vst1q_s8(d + i, vld1q_s8(s + i));
    for (; i < n; i++)
        d[i] = s[i];
}

QAT_RT_UKERNEL void qat_s8_fill__neondot(void *dst, size_t n, int32_t in_zp)
{
    memset(dst, in_zp, n);
}

QAT_RT_UKERNEL void qat_s8_convert__neondot(void *dst, const int8_t *src, size_t n)
{
    copy8(dst, src, n);
}

QAT_RT_UKERNEL void qat_s8_copy__neondot(void *dst, const void *src, size_t n)
{
    copy8(dst, src, n);
}

/* The sum of a patch row's kp int8 values (its K padding is zero). */
QAT_RT_UKERNEL int32_t qat_s8_sum__neondot(const void *v, size_t kp)
{
    const int8_t *a = v;
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
tile(const int MR, const int pool, const qat_rt_conv_head *h, int t, const int8_t *a,
     const int32_t *sums, int8_t *out, size_t ldo, int nvalid, const qat_neon_out_stage *s)
{
    const size_t kp = (size_t)h->kp;
    const int8_t *w = (const int8_t *)qat_rt_conv_weights(h) + (size_t)t * kp * QAT_NEON_NR;
    int32x4_t acc[QAT_NEON_MR][4];
    qat_neon_start_tile(MR, h, t, acc);
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
        const int32_t *wzp = qat_rt_conv_rq(h, QAT_RT_RQ_WZP) + (size_t)t * QAT_NEON_NR;
        for (int g = 0; g < 4; g++) {
            int32x4_t z = vld1q_s32(wzp + 4 * g);
            for (int r = 0; r < MR; r++)
                acc[r][g] = vmlsq_n_s32(acc[r][g], z, sums[r]);
        }
    }
    qat_neon_finish_tile(MR, pool, h, t, acc, out, ldo, nvalid, s);
}

QAT_RT_UKERNEL void qat_s8s8_gemm_4x16__neondot(const qat_rt_conv_params *p, const void *params,
                                                int t, int nvalid, int mr,
                                                const void *const *rows, const int32_t *sums,
                                                int8_t *out)
{
    const qat_rt_conv_head *h = p->packed;
    const int8_t *a = rows[0]; /* rows are kp apart (im2col) */
    const size_t ldo = (size_t)p->out_c;
    switch (mr) {
    case 4: tile(4, 0, h, t, a, sums, out, ldo, nvalid, params); break;
    case 3: tile(3, 0, h, t, a, sums, out, ldo, nvalid, params); break;
    case 2: tile(2, 0, h, t, a, sums, out, ldo, nvalid, params); break;
    case 1: tile(1, 0, h, t, a, sums, out, ldo, nvalid, params); break;
    }
}

QAT_RT_UKERNEL void qat_s8s8_gemm_maxpool_4x16__neondot(const qat_rt_conv_params *p,
                                                        const void *params, int t, int nvalid,
                                                        int mr, const void *const *rows,
                                                        const int32_t *sums, int8_t *out)
{
    (void)mr; /* always one window */
    tile(4, 1, p->packed, t, rows[0], sums, out, (size_t)p->out_c, nvalid, params);
}

/* ---- the path's description, and the driver instantiated with it ------------------------- */

const qat_rt_conv_ukernel qat_neondot_conv_ukernel = {
    .mr = QAT_NEON_MR, .nr = QAT_NEON_NR, .block_max = 256,
    .pool_mr = 4, /* one 2x2 window */
    .direct = 0, .elem = 1, .offset = 0, .kr = 4, .k_align = 4, .wide = 0,
    .fill = qat_s8_fill__neondot, .convert = qat_s8_convert__neondot, .copy = qat_s8_copy__neondot,
    .sum = qat_s8_sum__neondot, .tile = qat_s8s8_gemm_4x16__neondot,
    .tile_maxpool = qat_s8s8_gemm_maxpool_4x16__neondot};

QAT_RT_CONV_KERNELS(qat_s8s8_conv2d_4x16__neondot, qat_s8s8_conv2d_maxpool_4x16__neondot,
                    qat_neondot_conv_ukernel, qat_neon_out_stage, qat_neon_out_stage_of)
