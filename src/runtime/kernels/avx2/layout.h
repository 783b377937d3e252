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
 * Blob (after the head and per-channel arrays of microkernel.h): for each
 * tile of 16 output channels and each pair j of the K axis (K padded to even
 * with a zero weight), 16 x 2 int16 = (w[c][2j] - wzp[c], w[c][2j+1] -
 * wzp[c]) for c = 0..15 (channels 0-7 then 8-15: one ymm each). The output
 * stage reads bias, multiplier, left, right, mask and thr. */
#ifndef QAT_RT_AVX2_LAYOUT_H
#define QAT_RT_AVX2_LAYOUT_H

#define QAT_AVX2_NR 16 /* output channels per tile */
#define QAT_AVX2_MR 6  /* output rows per micro-tile */

#endif
