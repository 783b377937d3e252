/* The AVX-512 VNNI path's kernel table: the conv kernels (the driver
 * instantiated in conv2d.c), packing into their layout (the portable
 * packer with the path's description) and the depthwise conv2d (its driver
 * with the row microkernel of dwconv.c) and the add (graph.c: its cost is
 * the output stage, three per element, which a zmm does 16 lanes at a
 * time). The pools and the other elementwise and merge kernels are the
 * AVX2 ones (every AVX-512 CPU has AVX2; they are bound by memory, or
 * small). Plain C. */
#include "runtime/kernels/avx2/kernels_avx2.h"
#include "runtime/kernels/avx512/kernels_avx512.h"
#include "runtime/kernels/avx512/layout.h"

QAT_RT_CONV_PACKING(packed_size, pack, qat_avx512_conv_ukernel)

static const qat_rt_dw_ukernel dw_ukernel = {
    .nr = 16, .welem = 4, .row = qat_s8_dwconv2d_row_c16__avx512vnni};
QAT_RT_DW_KERNELS(dw_packed_size, dw_pack, qat_s8_dwconv2d_c16__avx512vnni, dw_ukernel)

const qat_rt_kernels qat_rt_kernels_avx512vnni = {
    .isa = "avx512vnni",
    .channel_align = QAT_AVX512_NR,
    .quantize_input = qat_u8_quantize_input_x32__avx2,
    .conv_packed_size = packed_size,
    .conv_pack = pack,
    .conv_scratch = qat_rt_conv_scratch,
    .conv2d = qat_u8s8_conv2d_8x32__avx512vnni,
    .conv2d_maxpool = qat_u8s8_conv2d_maxpool_8x32__avx512vnni,
    .linear = qat_u8s8_conv2d_8x32__avx512vnni,
    .maxpool2d = qat_s8_maxpool2d_c32__avx2,
    .avgpool2d = qat_s8_avgpool2d_c8__avx2,
    .requantize = qat_s32_requantize_x8__avx2,
    .gconv_packed_size = dw_packed_size,
    .gconv_pack = dw_pack,
    .gconv_scratch = qat_rt_dw_scratch,
    .gconv2d = qat_s8_dwconv2d_c16__avx512vnni,
    .add = qat_s8_add_x16__avx512vnni,
    .add_packed_size = qat_s8_add_packed_size__avx512vnni,
    .add_pack = qat_s8_add_pack__avx512vnni,
    .concat = qat_s8_concat_x16__avx2,
    .global_avgpool = qat_s8_global_avgpool_c16__avx2,
};
