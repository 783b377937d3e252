/* The float arithmetic of a float layer (docs/ARITHMETIC.md §7), written
 * once for the runtime and the training forward so that both compute the
 * same bits on every ISA. */
#ifndef QAT_FDOT_H
#define QAT_FDOT_H

#include <stddef.h>

/* sum_{k < n} a[k] * b[k] in float32, from +0.0f, k in increasing order,
 * each product rounded to float before it is added (never a fused
 * multiply-add: src/core/fdot.c is compiled with -ffp-contract=off). */
float qat_f32_dot(const float *a, const float *b, size_t n);

#endif
