/* The AVX-512 tile: 12 rows x 32 columns = 24 zmm accumulators, two zmm of
 * B and a broadcast of A per row each k (32 registers in all). Two FMA
 * pipes of 4-cycle latency need 8 independent chains; 24 leave room for
 * the loads. Built with -mavx512f. */
#include <immintrin.h>
#include <stddef.h>

#include "ops/sgemm/sgemm.h"

#define MR 12

void qat_sgemm_tile_12x32__avx512(int kc, const float *a, const float *b, float *c, int ldc,
                                  float alpha, float beta)
{
    __m512 lo[MR], hi[MR];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++)
        lo[i] = hi[i] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++, a += MR, b += 32) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            lo[i] = _mm512_fmadd_ps(ai, b0, lo[i]);
            hi[i] = _mm512_fmadd_ps(ai, b1, hi[i]);
        }
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
        float *ci = c + (size_t)i * ldc;
        __m512 t0 = _mm512_setzero_ps(), t1 = t0;
        if (beta != 0.0f) {
            t0 = _mm512_mul_ps(vb, _mm512_loadu_ps(ci));
            t1 = _mm512_mul_ps(vb, _mm512_loadu_ps(ci + 16));
        }
        _mm512_storeu_ps(ci, _mm512_fmadd_ps(va, lo[i], t0));
        _mm512_storeu_ps(ci + 16, _mm512_fmadd_ps(va, hi[i], t1));
    }
}
