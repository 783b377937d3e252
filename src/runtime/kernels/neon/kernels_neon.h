/* Every kernel and microkernel of the two NEON paths, declared once with
 * the function types of kernels.h and microkernel.h: the files that define
 * them (conv2d.c and pool.c, base aarch64; conv2d_dot.c, built with
 * -march=armv8.2-a+dotprod; table.c, the tables) include this, so the
 * compiler checks each definition against it. neon-plain and neon-dot
 * share the pools and the elementwise kernels. */
#ifndef QAT_RT_KERNELS_NEON_H
#define QAT_RT_KERNELS_NEON_H

#include "runtime/kernels/microkernel.h"

/* neon-plain conv microkernels (conv2d.c): prepared images and patch rows
 * of int16, K padded to a multiple of 4; 4 rows x 16 channels of int16 x
 * int16 (smlal by lane); the pooled tile takes one 2x2 window. */
qat_rt_fill_ukernel qat_s16_fill__neon;
qat_rt_convert_ukernel qat_s8s16_widen__neon;
qat_rt_copy_ukernel qat_s16_copy__neon;
qat_rt_tile_ukernel qat_s16s16_gemm_4x16__neon, qat_s16s16_gemm_maxpool_4x16__neon;
extern const qat_rt_conv_ukernel qat_neon_conv_ukernel; /* the sizes and the above */

/* neon-dot conv microkernels (conv2d_dot.c): prepared images and patch rows
 * of the int8 codes, each row's sum with it when weights have zero points;
 * 4 rows x 16 channels of int8 x int8 (sdot); one window per pooled tile. */
qat_rt_fill_ukernel qat_s8_fill__neondot;
qat_rt_convert_ukernel qat_s8_convert__neondot;
qat_rt_copy_ukernel qat_s8_copy__neondot;
qat_rt_sum_ukernel qat_s8_sum__neondot;
qat_rt_tile_ukernel qat_s8s8_gemm_4x16__neondot, qat_s8s8_gemm_maxpool_4x16__neondot;
extern const qat_rt_conv_ukernel qat_neondot_conv_ukernel; /* the sizes and the above */

/* Pool row microkernels (pool.c): 16 (max) or 8 (avg) channels a vector. */
qat_rt_pool_row_ukernel qat_s8_maxpool_row_c16__neon, qat_s8_avgpool_row_c8__neon;

/* Graph layers (graph.c): the depthwise conv2d row microkernel, 16
 * channels a vector (weights packed as int16, welem 2), and the merge
 * kernels. */
qat_rt_dw_row_ukernel qat_s8_dwconv2d_row_c16__neon;
qat_rt_merge_kernel qat_s8_add_x16__neon, qat_s8_concat_x16__neon,
    qat_s8_global_avgpool_c16__neon;

/* Table entries: the conv driver instantiated with each description
 * (conv2d.c, conv2d_dot.c), the pool driver with the row microkernels
 * (table.c), and the elementwise kernels (pool.c). */
qat_rt_conv_kernel qat_s16s16_conv2d_4x16__neon, qat_s8s8_conv2d_4x16__neondot;
qat_rt_conv_pool_kernel qat_s16s16_conv2d_maxpool_4x16__neon,
    qat_s8s8_conv2d_maxpool_4x16__neondot;
qat_rt_pool_kernel qat_s8_maxpool2d_c16__neon, qat_s8_avgpool2d_c8__neon;
qat_rt_quantize_kernel qat_u8_quantize_input_x16__neon;
qat_rt_requantize_kernel qat_s32_requantize_x4__neon;
qat_rt_conv_kernel qat_s8_dwconv2d_c16__neon; /* the dw driver with the row microkernel */

#endif
