/* Every kernel and microkernel of the AVX-512 VNNI path, declared once
 * with the function types of kernels.h and microkernel.h: conv2d.c,
 * dwconv.c, graph.c (built with the AVX-512 flags) and table.c (plain C)
 * include this, so the compiler checks each definition against it. The
 * path's pools and its other elementwise and merge kernels are AVX2's
 * (kernels_avx2.h): every AVX-512 CPU has AVX2. */
#ifndef QAT_RT_KERNELS_AVX512_H
#define QAT_RT_KERNELS_AVX512_H

#include "runtime/kernels/microkernel.h"

/* Conv microkernels (conv2d.c): prepared images of u8 (u = x + 128) that
 * the tiles read in place (an indirect gemm; no im2col, so no copy); 8 rows
 * x 32 channels of u8 x s8 (vpdpbusd); the pooled tile takes 8 rows = 2
 * pooled rows. */
qat_rt_fill_ukernel qat_u8_fill__avx512vnni;
qat_rt_convert_ukernel qat_s8u8_flip__avx512vnni;
qat_rt_sum_ukernel qat_u8_sum__avx512vnni;
qat_rt_tile_ukernel qat_u8s8_igemm_8x32__avx512vnni, qat_u8s8_igemm_maxpool_8x32__avx512vnni;
/* Layers of at most 16 output channels (layout.h): 16 rows x 16 channels;
 * the pooled tile takes 16 rows = 4 pooled rows. */
qat_rt_tile_ukernel qat_u8s8_igemm_16x16__avx512vnni, qat_u8s8_igemm_maxpool_16x16__avx512vnni;
extern const qat_rt_conv_ukernel qat_avx512_conv_ukernel; /* the sizes and the above */

/* Depthwise conv2d row microkernel (dwconv.c): 16 channels a zmm
 * (vpdpwssd; weights packed as int32, welem 4). */
qat_rt_dw_row_ukernel qat_s8_dwconv2d_row_c16__avx512vnni;

/* The integer add (graph.c), 16 elements a zmm. */
qat_rt_merge_kernel qat_s8_add_x16__avx512vnni;
/* Its tables (AVX-512 VBMI CPUs; none elsewhere), graph.c. */
qat_rt_merge_size_fn qat_s8_add_packed_size__avx512vnni;
qat_rt_merge_pack_fn qat_s8_add_pack__avx512vnni;

/* Table entries: the conv driver instantiated with it (conv2d.c), the
 * depthwise driver with its row microkernel (table.c). */
qat_rt_conv_kernel qat_u8s8_conv2d_8x32__avx512vnni;
qat_rt_conv_pool_kernel qat_u8s8_conv2d_maxpool_8x32__avx512vnni;
qat_rt_conv_kernel qat_s8_dwconv2d_c16__avx512vnni;

#endif
