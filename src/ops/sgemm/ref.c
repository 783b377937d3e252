/* The scalar tile: the same fma sequence as the SIMD tiles, element by
 * element, so it is their bit-exact oracle (and the path on CPUs the build
 * has no tile for, when OpenBLAS is not wanted). */
#include <math.h>
#include <stddef.h>

#include "ops/sgemm/sgemm.h"

#define MR 4
#define NR 8

void qat_sgemm_tile_4x8__ref(int kc, const float *a, const float *b, float *c, int ldc,
                             float alpha, float beta)
{
    float acc[MR][NR] = {{0}};
    for (int k = 0; k < kc; k++)
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++)
                acc[i][j] = fmaf(a[k * MR + i], b[k * NR + j], acc[i][j]);
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) {
            float *cij = c + (size_t)i * ldc + j;
            float t = beta == 0.0f ? 0.0f : beta * *cij;
            *cij = fmaf(alpha, acc[i][j], t);
        }
}
