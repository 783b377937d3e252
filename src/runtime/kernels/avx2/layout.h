/* The AVX2 path's packed conv/linear layer (plain C: shared by the packing
 * code, built without ISA flags, and the kernels, built with -mavx2 -mfma).
 *
 * The kernels multiply int16 pairs with vpmaddwd, not int8 with vpmaddubsw:
 * vpmaddubsw adds two u8*s8 products into a saturating int16, and
 * 255*127 + 255*127 = 64770 does not fit, so it is exact only for narrowed
 * ranges. Here weights are stored as w - wzp (in [-255, 255]) and
 * activations widened to int16 (x in [-128, 127]); each vpmaddwd pair sum is
 * at most 2 * 255 * 128 = 65280 in magnitude, far inside int32, and
 * vpmaddwd's only saturating input (all four operands -32768) cannot occur.
 *
 * Blob: this header, then six per-channel int32 arrays of tiles*16 entries
 * (bias_folded, multiplier, left shift, right shift, RDPOT mask, RDPOT
 * threshold; padded channels are all 0), then the weights: for each tile of
 * 16 output channels and each pair j of the K axis (K padded to even with a
 * zero weight), 16 x 2 int16 = (w[c][2j] - wzp[c], w[c][2j+1] - wzp[c]) for
 * c = 0..15 (channels 0-7 then 8-15: one ymm each). */
#ifndef QAT_RT_AVX2_LAYOUT_H
#define QAT_RT_AVX2_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define QAT_AVX2_NR 16 /* output channels per tile */
#define QAT_AVX2_MR 6  /* output rows per micro-tile */

typedef struct qat_avx2_pack {
    int32_t k;        /* kernel_h * kernel_w * in_c */
    int32_t kp;       /* k rounded up to even */
    int32_t tiles;    /* ceil(out_c / 16) */
    int32_t any_left; /* some channel has shift > 0 (the SatShl step is needed) */
    int32_t block_rows; /* im2col rows per block */
    int32_t pointwise;  /* 1x1, stride 1, no padding (linear too): a row is one pixel */
    int32_t pad_[10];   /* header is 64 bytes: the arrays stay 64-byte aligned */
} qat_avx2_pack;

/* Scratch: the im2col block (block_rows x kp int16), then the input image
 * widened to int16 with its padding filled in (not for pointwise layers),
 * each followed by 64 bytes of slack for the short copies' overrun. */
static inline size_t qat_avx2_block_bytes(size_t block_rows, size_t kp)
{
    return (block_rows * kp * 2 + 64 + 63) & ~(size_t)63;
}

enum { QAT_AVX2_RQ_BIAS, QAT_AVX2_RQ_MULT, QAT_AVX2_RQ_LEFT, QAT_AVX2_RQ_RIGHT,
       QAT_AVX2_RQ_MASK, QAT_AVX2_RQ_THR, QAT_AVX2_RQ_COUNT };

static inline const int32_t *qat_avx2_rq(const qat_avx2_pack *h, int which)
{
    return (const int32_t *)(h + 1) + (size_t)which * (size_t)h->tiles * QAT_AVX2_NR;
}

static inline const int16_t *qat_avx2_weights(const qat_avx2_pack *h)
{
    return (const int16_t *)qat_avx2_rq(h, QAT_AVX2_RQ_COUNT);
}

#endif
