/* The NEON paths' packed conv/linear layers (plain C: shared by the packing
 * code and the kernels).
 *
 * neon-plain widens to int16 and uses smlal (int16 x int16 -> int32
 * accumulate): weights stored as w - wzp (in [-255, 255]), activations
 * x in [-128, 127]; each product is exact in int32.
 *
 * neon-dot uses sdot (four int8 x int8 products added into an int32 lane,
 * no intermediate rounding or saturation). w - wzp does not fit in int8, so
 * it keeps the raw weights and subtracts the zero point afterwards:
 * sum (w - wzp) x = sum w x - wzp * sum x, with sum x the row sum of the
 * im2col row (padded taps included). All of it is int32 arithmetic modulo
 * 2^32 whose true result fits (validation's bound), hence exact.
 *
 * Blob: this header, then five per-channel int32 arrays of tiles*16 entries
 * (bias_folded, weight zero point, multiplier, left shift, -right shift;
 * padded channels all 0), then the weights with K padded to a multiple of 4
 * by zero weights:
 * - plain: per tile of 16 channels, per k: 16 int16 (w - wzp), channel order;
 * - dot:   per tile, per group of 4 k, per group of 4 channels: 16 int8,
 *          channel-major (c0 k0..k3, c1 k0..k3, ...), the sdot operand. */
#ifndef QAT_RT_NEON_LAYOUT_H
#define QAT_RT_NEON_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define QAT_NEON_NR 16
#define QAT_NEON_MR 4

typedef struct qat_neon_pack {
    int32_t k, kp;      /* K, and K rounded up to a multiple of 4 */
    int32_t tiles;      /* ceil(out_c / 16) */
    int32_t any_left;   /* some channel shifts left */
    int32_t any_wzp;    /* some channel has a weight zero point (dot only) */
    int32_t block_rows; /* im2col rows per block */
    int32_t pad_[10];   /* 64-byte header */
} qat_neon_pack;

enum { QAT_NEON_RQ_BIAS, QAT_NEON_RQ_WZP, QAT_NEON_RQ_MULT, QAT_NEON_RQ_LEFT,
       QAT_NEON_RQ_NRIGHT, QAT_NEON_RQ_COUNT };

static inline const int32_t *qat_neon_rq(const qat_neon_pack *h, int which)
{
    return (const int32_t *)(h + 1) + (size_t)which * (size_t)h->tiles * QAT_NEON_NR;
}

static inline const void *qat_neon_weights(const qat_neon_pack *h)
{
    return qat_neon_rq(h, QAT_NEON_RQ_COUNT);
}

#endif
