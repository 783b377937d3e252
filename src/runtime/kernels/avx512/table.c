/* The AVX-512 VNNI path's kernel table: the conv kernels (the driver
 * instantiated in conv2d.c) and packing into their layout (the portable
 * packer with the path's description). The pools and elementwise kernels
 * are the AVX2 ones (every AVX-512 CPU has AVX2). Plain C. */
#include "runtime/kernels/avx2/kernels_avx2.h"
#include "runtime/kernels/avx512/kernels_avx512.h"
#include "runtime/kernels/avx512/layout.h"

QAT_RT_CONV_PACKING(packed_size, pack, qat_avx512_conv_ukernel)

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
    .gconv2d = qat_s8_gconv2d__ref,
    .add = qat_s8_add__ref,
    .concat = qat_s8_concat__ref,
    .global_avgpool = qat_s8_global_avgpool__ref,
};
