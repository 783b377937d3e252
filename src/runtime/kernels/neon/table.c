/* The two NEON paths' kernel tables: the conv kernels (the driver
 * instantiated in conv2d.c and conv2d_dot.c), packing into their layouts
 * (the portable packer with each description), the pools (the pool driver
 * with the row microkernels), the depthwise conv2d (its driver with the
 * row microkernel of graph.c) and the elementwise and merge kernels, which
 * both share. Plain C. */
#include "runtime/kernels/neon/kernels_neon.h"
#include "runtime/kernels/neon/layout.h"

QAT_RT_CONV_PACKING(size_plain, pack_plain, qat_neon_conv_ukernel)
QAT_RT_CONV_PACKING(size_dot, pack_dot, qat_neondot_conv_ukernel)
QAT_RT_POOL_KERNEL(qat_s8_maxpool2d_c16__neon, qat_s8_maxpool_row_c16__neon)
QAT_RT_POOL_KERNEL(qat_s8_avgpool2d_c8__neon, qat_s8_avgpool_row_c8__neon)

static const qat_rt_dw_ukernel dw_ukernel = {
    .nr = 16, .welem = 2, .row = qat_s8_dwconv2d_row_c16__neon};
QAT_RT_DW_KERNELS(dw_packed_size, dw_pack, qat_s8_dwconv2d_c16__neon, dw_ukernel)

const qat_rt_kernels qat_rt_kernels_neon_plain = {
    .isa = "neon-plain",
    .channel_align = QAT_NEON_NR,
    .quantize_input = qat_u8_quantize_input_x16__neon,
    .conv_packed_size = size_plain,
    .conv_pack = pack_plain,
    .conv_scratch = qat_rt_conv_scratch,
    .conv2d = qat_s16s16_conv2d_4x16__neon,
    .conv2d_maxpool = qat_s16s16_conv2d_maxpool_4x16__neon,
    .linear = qat_s16s16_conv2d_4x16__neon,
    .maxpool2d = qat_s8_maxpool2d_c16__neon,
    .avgpool2d = qat_s8_avgpool2d_c8__neon,
    .requantize = qat_s32_requantize_x4__neon,
    .gconv_packed_size = dw_packed_size,
    .gconv_pack = dw_pack,
    .gconv_scratch = qat_rt_dw_scratch,
    .gconv2d = qat_s8_dwconv2d_c16__neon,
    .add = qat_s8_add_x16__neon,
    .concat = qat_s8_concat_x16__neon,
    .global_avgpool = qat_s8_global_avgpool_c16__neon,
};

const qat_rt_kernels qat_rt_kernels_neon_dot = {
    .isa = "neon-dot",
    .channel_align = QAT_NEON_NR,
    .quantize_input = qat_u8_quantize_input_x16__neon,
    .conv_packed_size = size_dot,
    .conv_pack = pack_dot,
    .conv_scratch = qat_rt_conv_scratch,
    .conv2d = qat_s8s8_conv2d_4x16__neondot,
    .conv2d_maxpool = qat_s8s8_conv2d_maxpool_4x16__neondot,
    .linear = qat_s8s8_conv2d_4x16__neondot,
    .maxpool2d = qat_s8_maxpool2d_c16__neon,
    .avgpool2d = qat_s8_avgpool2d_c8__neon,
    .requantize = qat_s32_requantize_x4__neon,
    .gconv_packed_size = dw_packed_size,
    .gconv_pack = dw_pack,
    .gconv_scratch = qat_rt_dw_scratch,
    .gconv2d = qat_s8_dwconv2d_c16__neon,
    .add = qat_s8_add_x16__neon,
    .concat = qat_s8_concat_x16__neon,
    .global_avgpool = qat_s8_global_avgpool_c16__neon,
};
