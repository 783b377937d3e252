/* The AVX2 tile: 6 rows x 16 columns = 12 ymm accumulators, two ymm of B
 * and one broadcast of A (15 of 16 registers). Built with -mavx2 -mfma. */
#include <immintrin.h>
#include <stddef.h>

#include "ops/sgemm/sgemm.h"

#define MR 6

void qat_sgemm_tile_6x16__avx2(int kc, const float *a, const float *b, float *c, int ldc,
                               float alpha, float beta)
{
    __m256 lo[MR], hi[MR];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
        lo[i] = hi[i] = _mm256_setzero_ps();
    for (int k = 0; k < kc; k++, a += MR, b += 16) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
            lo[i] = _mm256_fmadd_ps(ai, b0, lo[i]);
            hi[i] = _mm256_fmadd_ps(ai, b1, hi[i]);
        }
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        float *ci = c + (size_t)i * ldc;
        __m256 t0 = _mm256_setzero_ps(), t1 = t0;
        if (beta != 0.0f) {
            t0 = _mm256_mul_ps(vb, _mm256_loadu_ps(ci));
            t1 = _mm256_mul_ps(vb, _mm256_loadu_ps(ci + 8));
        }
        _mm256_storeu_ps(ci, _mm256_fmadd_ps(va, lo[i], t0));
        _mm256_storeu_ps(ci + 8, _mm256_fmadd_ps(va, hi[i], t1));
    }
}
