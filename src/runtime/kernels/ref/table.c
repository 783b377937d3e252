/* The reference kernel table: every entry is plain C. */
#include "runtime/kernels/kernels.h"

const qat_rt_kernels qat_rt_kernels_ref = {
    .isa = "ref",
    .quantize_input = qat_u8_quantize_input__ref,
    .conv2d = qat_s8_conv2d__ref,
    .conv2d_scratch = qat_rt_no_scratch__ref,
    .linear = qat_s8_linear__ref,
    .linear_scratch = qat_rt_no_scratch__ref,
    .maxpool2d = qat_s8_maxpool2d__ref,
    .avgpool2d = qat_s8_avgpool2d__ref,
};
