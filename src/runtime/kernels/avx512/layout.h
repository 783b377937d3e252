/* The AVX-512 VNNI path's packed conv/linear layer (plain C: shared by the
 * packing code and the kernels).
 *
 * vpdpbusd multiplies four unsigned bytes by four signed bytes and adds the
 * four products to an int32 lane: the products (at most 255 * 128 in
 * magnitude) and their sum are exact, and the accumulation wraps modulo
 * 2^32 like every int32 add here (no saturation: that is vpdpbusds). The
 * unsigned operand is the activation flipped to u = x + 128 in [0, 255]; the
 * signed one is the raw weight w in [-128, 127] (w - wzp does not fit a
 * byte). With K taps, sum (w - wzp) x = sum w u - 128 sum w - wzp sum u
 * + 128 K wzp, so the packed bias is bias_folded - 128 sum w + 128 K wzp
 * (mod 2^32) and, when some wzp is nonzero, the kernel subtracts wzp times
 * the im2col row's sum of u. The true accumulator fits int32 (validation),
 * so the modular result is exact.
 *
 * There is no im2col: the kernel converts each input image once to u8 with
 * its padding filled in, and reads the four activations of a k group
 * straight from it. A window row is kernel_w * in_c contiguous bytes there;
 * it is padded with zero weights to a multiple of 4 (lenp), so every group
 * lies within one window row. The padded K axis is kernel_h * lenp.
 *
 * Blob: this header, seven per-channel int32 arrays of tiles*32 entries
 * (bias as above, weight zero point, multiplier, left shift, right shift,
 * RDPOT mask, RDPOT threshold; padded channels 0), then the weights: per
 * tile of 32 output channels, per group of 4 k of the padded K axis,
 * 32 x 4 bytes (channel c's 4 weights at 4c): two zmm. */
#ifndef QAT_RT_AVX512_LAYOUT_H
#define QAT_RT_AVX512_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define QAT_AVX512_NR 32 /* output channels per tile (two zmm of int32) */
#define QAT_AVX512_MR 8  /* output rows per micro-tile */

typedef struct qat_avx512_pack {
    int32_t len;      /* kernel_w * in_c: one window row */
    int32_t lenp;     /* len rounded up to a multiple of 4 */
    int32_t kp;       /* kernel_h * lenp: the padded K axis */
    int32_t tiles;    /* ceil(out_c / 32) */
    int32_t any_left; /* some channel shifts left */
    int32_t any_wzp;  /* some channel has a weight zero point */
    int32_t pad_[10]; /* 64-byte header */
} qat_avx512_pack;

enum { QAT_AVX512_RQ_BIAS, QAT_AVX512_RQ_WZP, QAT_AVX512_RQ_MULT, QAT_AVX512_RQ_LEFT,
       QAT_AVX512_RQ_RIGHT, QAT_AVX512_RQ_MASK, QAT_AVX512_RQ_THR, QAT_AVX512_RQ_COUNT };

static inline const int32_t *qat_avx512_rq(const qat_avx512_pack *h, int which)
{
    return (const int32_t *)(h + 1) + (size_t)which * (size_t)h->tiles * QAT_AVX512_NR;
}

static inline const int8_t *qat_avx512_weights(const qat_avx512_pack *h)
{
    return (const int8_t *)qat_avx512_rq(h, QAT_AVX512_RQ_COUNT);
}

/* Scratch: each image of a call as u8 with its padding, 64-byte aligned,
 * then 64 bytes of slack (a group of 4 may read up to 3 bytes past a window
 * row). */
static inline size_t qat_avx512_image_bytes(int in_h, int in_w, int in_c, int pad_h, int pad_w)
{
    return ((size_t)(in_h + 2 * pad_h) * (size_t)(in_w + 2 * pad_w) * (size_t)in_c + 63) &
           ~(size_t)63;
}

#endif
