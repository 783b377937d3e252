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
 * the window's sum of u. The true accumulator fits int32 (validation), so
 * the modular result is exact.
 *
 * There is no im2col: the driver prepares each input image once as u8 with
 * its padding filled in (the padding value is in_zp + 128), and the tile
 * reads the four activations of a k group straight from it (a direct path:
 * the tile gets each window's address). A window row is kernel_w * in_c
 * contiguous bytes there (len); it is padded with zero weights to a
 * multiple of 4 (lenp), so every group lies within one window row, and a
 * group may read up to 3 bytes past it (the scratch has slack). The padded
 * K axis is kernel_h * lenp.
 *
 * Blob (after the head and per-channel arrays of microkernel.h; the bias
 * array holds the bias above): per tile of 32 output channels, per group of
 * 4 k of the padded K axis, 32 x 4 bytes (channel c's 4 weights at 4c): two
 * zmm. The output stage reads wzp, multiplier, left, right, mask and thr.
 *
 * A layer of at most 16 output channels is packed for the narrow tile
 * instead (head.narrow = 1): tiles of 16 channels, 16 x 4 bytes (one zmm)
 * per k group, run 16 rows at a time. On the 8x32 tile half of every
 * accumulator, weight load and requantization was padding there. */
#ifndef QAT_RT_AVX512_LAYOUT_H
#define QAT_RT_AVX512_LAYOUT_H

#define QAT_AVX512_NR 32 /* output channels per tile (two zmm of int32) */
#define QAT_AVX512_MR 8  /* output rows per micro-tile */
#define QAT_AVX512_NARROW_NR 16 /* the narrow tile's channels (one zmm) */
#define QAT_AVX512_NARROW_MR 16 /* and rows: 16 zmm accumulators, as the 8x32 tile */
#define QAT_AVX512_MR_MAX 16

#endif
