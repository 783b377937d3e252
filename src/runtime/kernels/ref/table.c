/* The reference kernel table: every entry is plain C. */
#include "runtime/kernels/kernels.h"

const qat_rt_kernels qat_rt_kernels_ref = {
    .isa = "ref",
    .channel_align = 1,
    .quantize_input = qat_u8_quantize_input__ref,
    .conv_packed_size = qat_s8_conv_packed_size__ref,
    .conv_pack = qat_s8_conv_pack__ref,
    .conv_scratch = qat_s8_conv_scratch__ref,
    .conv2d = qat_s8_conv2d__ref,
    .linear = qat_s8_linear__ref,
    .maxpool2d = qat_s8_maxpool2d__ref,
    .avgpool2d = qat_s8_avgpool2d__ref,
    .requantize = qat_s32_requantize__ref,
    .gconv2d = qat_s8_gconv2d__ref,
    .add = qat_s8_add__ref,
    .concat = qat_s8_concat__ref,
    .global_avgpool = qat_s8_global_avgpool__ref,
};
