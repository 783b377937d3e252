/* The AVX2 path's kernel table: the conv kernels (the driver instantiated
 * in conv2d.c), packing into their layout (the portable packer with the
 * path's description), the pools (the pool driver with this path's row
 * microkernels), the depthwise conv2d (its driver with this path's row
 * microkernel, graph.c) and the elementwise and merge kernels. Plain C. */
#include "runtime/kernels/avx2/kernels_avx2.h"
#include "runtime/kernels/avx2/layout.h"

QAT_RT_CONV_PACKING(packed_size, pack, qat_avx2_conv_ukernel)
QAT_RT_POOL_KERNEL(qat_s8_maxpool2d_c32__avx2, qat_s8_maxpool_row_c32__avx2)
QAT_RT_POOL_KERNEL(qat_s8_avgpool2d_c8__avx2, qat_s8_avgpool_row_c8__avx2)

static const qat_rt_dw_ukernel dw_ukernel = {
    .nr = 8, .welem = 4, .row = qat_s8_dwconv2d_row_c8__avx2};
QAT_RT_DW_KERNELS(dw_packed_size, dw_pack, qat_s8_dwconv2d_c8__avx2, dw_ukernel)

const qat_rt_kernels qat_rt_kernels_avx2 = {
    .isa = "avx2",
    .channel_align = QAT_AVX2_NR,
    .quantize_input = qat_u8_quantize_input_x32__avx2,
    .conv_packed_size = packed_size,
    .conv_pack = pack,
    .conv_scratch = qat_rt_conv_scratch,
    .conv2d = qat_s16s16_conv2d_6x16__avx2,
    .conv2d_maxpool = qat_s16s16_conv2d_maxpool_12x16__avx2,
    .linear = qat_s16s16_conv2d_6x16__avx2, /* a 1x1 conv on a 1x1 input */
    .maxpool2d = qat_s8_maxpool2d_c32__avx2,
    .avgpool2d = qat_s8_avgpool2d_c8__avx2,
    .requantize = qat_s32_requantize_x8__avx2,
    .gconv_packed_size = dw_packed_size,
    .gconv_pack = dw_pack,
    .gconv_scratch = qat_rt_dw_scratch,
    .gconv2d = qat_s8_dwconv2d_c8__avx2,
    .add = qat_s8_add_x16__avx2,
    .concat = qat_s8_concat_x16__avx2,
    .global_avgpool = qat_s8_global_avgpool_c16__avx2,
};
