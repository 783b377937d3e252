/* One float dot product in a fixed order, the whole arithmetic of a float
 * layer's accumulation (docs/ARITHMETIC.md §7). Its own library, compiled
 * with -ffp-contract=off: gcc contracts a * b + c into an fma by default on
 * aarch64 (and on x86-64 wherever -mfma is on), which would round once
 * instead of twice and make NEON's results differ from x86's. No
 * vectorisation either: reassociating the sum would change its bits. */
#include "qat/fdot.h"

float qat_f32_dot(const float *a, const float *b, size_t n)
{
    float acc = 0.0f;
    for (size_t k = 0; k < n; k++) {
        float p = a[k] * b[k];
        acc += p;
    }
    return acc;
}
