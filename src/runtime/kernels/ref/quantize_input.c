/* Model input: a uint8 pixel p enters as q = p - 128 (scale 1/255, zero
 * point -128), which is exact because training sees p / 255. */
#include "runtime/kernels/kernels.h"

void qat_u8_quantize_input__ref(const uint8_t *pixels, int8_t *q, size_t count)
{
    for (size_t i = 0; i < count; i++)
        q[i] = (int8_t)((int32_t)pixels[i] - 128);
}
