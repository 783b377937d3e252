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
 * Blob (after the head and per-channel arrays of microkernel.h; the output
 * stage reads multiplier, left and nright, neon-dot also wzp): the weights
 * with K padded to a multiple of 4 by zero weights,
 * - plain: per tile of 16 channels, per k: 16 int16 (w - wzp), channel order;
 * - dot:   per tile, per group of 4 k, per group of 4 channels: 16 int8,
 *          channel-major (c0 k0..k3, c1 k0..k3, ...), the sdot operand.
 * Both prepare padded images (int16 codes, or the int8 codes for dot) and
 * copy each block's windows out of them into patch rows (im2col). */
#ifndef QAT_RT_NEON_LAYOUT_H
#define QAT_RT_NEON_LAYOUT_H

#define QAT_NEON_NR 16
#define QAT_NEON_MR 4

#endif
