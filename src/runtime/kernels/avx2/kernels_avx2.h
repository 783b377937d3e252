/* Every kernel and microkernel of the AVX2 path, declared once with the
 * function types of kernels.h and microkernel.h: the files that define
 * them (conv2d.c and pool.c with -mavx2 -mfma, table.c in plain C) and the
 * AVX-512 table, which reuses the pools and elementwise kernels, include
 * this, so the compiler checks each definition against it. Names:
 * qat_<operand types>_<op>_<tile>__avx2. */
#ifndef QAT_RT_KERNELS_AVX2_H
#define QAT_RT_KERNELS_AVX2_H

#include "runtime/kernels/microkernel.h"

/* Conv microkernels (conv2d.c): prepared images and patch rows of int16,
 * K padded to even; 6 rows x 16 channels of int16 x int16 (vpmaddwd); the
 * pooled tile runs two 6-row K loops, 12 rows = 3 pooled rows. */
qat_rt_fill_ukernel qat_s16_fill__avx2;
qat_rt_convert_ukernel qat_s8s16_widen__avx2;
qat_rt_copy_ukernel qat_s16_copy__avx2;
qat_rt_tile_ukernel qat_s16s16_gemm_6x16__avx2, qat_s16s16_gemm_maxpool_12x16__avx2;
extern const qat_rt_conv_ukernel qat_avx2_conv_ukernel; /* the sizes and the above */

/* Pool row microkernels (pool.c): 32 (max) or 8 (avg) channels a vector. */
qat_rt_pool_row_ukernel qat_s8_maxpool_row_c32__avx2, qat_s8_avgpool_row_c8__avx2;

/* Graph layers (graph.c): the depthwise conv2d row microkernel, 8
 * channels a vector (weights packed as int32, welem 4), and the merge
 * kernels. */
qat_rt_dw_row_ukernel qat_s8_dwconv2d_row_c8__avx2;
qat_rt_merge_kernel qat_s8_add_x16__avx2, qat_s8_concat_x16__avx2,
    qat_s8_global_avgpool_c16__avx2;

/* Table entries: the conv driver instantiated with qat_avx2_conv_ukernel
 * (conv2d.c), the pool driver with the row microkernels (table.c), and the
 * elementwise kernels (pool.c). */
qat_rt_conv_kernel qat_s16s16_conv2d_6x16__avx2;
qat_rt_conv_pool_kernel qat_s16s16_conv2d_maxpool_12x16__avx2;
qat_rt_pool_kernel qat_s8_maxpool2d_c32__avx2, qat_s8_avgpool2d_c8__avx2;
qat_rt_quantize_kernel qat_u8_quantize_input_x32__avx2;
qat_rt_requantize_kernel qat_s32_requantize_x8__avx2;
qat_rt_conv_kernel qat_s8_dwconv2d_c8__avx2; /* the dw driver with the row microkernel */

#endif
