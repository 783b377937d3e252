/* The AVX2 unpacked tile (sgemm.h, "direct route"): up to 6 rows x 16
 * columns straight from op(A) and from the rows of B, C's columns masked;
 * the same fma chain per element as the packed tiles. Built with -mavx2
 * -mfma. */
#include <immintrin.h>
#include <stddef.h>

#include "ops/sgemm/sgemm.h"

#define MR 6

/* lanes [0, n) of a ymm mask, n clamped to [0, 8] */
static inline __m256i lanes(int n)
{
    n = n < 0 ? 0 : n > 8 ? 8 : n;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* As the AVX-512 one (avx512_direct.c); TA: op(A) is A transposed. */
static inline __attribute__((always_inline)) void
direct(const int ROWS, const int W, const int TA, int cols, int kc, const float *a, size_t rs, size_t cs,
       const float *b, size_t ldb, float *c, int ldc, float alpha, float beta)
{
    const __m256i m0 = lanes(cols), m1 = lanes(cols - 8);
    /* op(A) transposed: a row of A holds the k-th values of every row */
    rs = TA ? 1 : rs;
    cs = TA ? cs : 1;
    __m256 acc[MR], acc1[MR];
#pragma GCC unroll 6
    for (int i = 0; i < ROWS; i++)
        acc[i] = acc1[i] = _mm256_setzero_ps();
    for (int k = 0; k < kc; k++, a += cs, b += ldb) {
        const __m256 b0 = _mm256_maskload_ps(b, m0);
        const __m256 b1 = W > 1 ? _mm256_maskload_ps(b + 8, m1) : b0;
#pragma GCC unroll 6
        for (int i = 0; i < ROWS; i++) {
            const __m256 ai = _mm256_broadcast_ss(a + (size_t)i * rs);
            acc[i] = _mm256_fmadd_ps(ai, b0, acc[i]);
            if (W > 1)
                acc1[i] = _mm256_fmadd_ps(ai, b1, acc1[i]);
        }
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
    for (int i = 0; i < ROWS; i++) {
        float *ci = c + (size_t)i * ldc;
        __m256 t0 = _mm256_setzero_ps(), t1 = t0;
        if (beta != 0.0f) {
            t0 = _mm256_mul_ps(vb, _mm256_maskload_ps(ci, m0));
            if (W > 1)
                t1 = _mm256_mul_ps(vb, _mm256_maskload_ps(ci + 8, m1));
        }
        _mm256_maskstore_ps(ci, m0, _mm256_fmadd_ps(va, acc[i], t0));
        if (W > 1)
            _mm256_maskstore_ps(ci + 8, m1, _mm256_fmadd_ps(va, acc1[i], t1));
    }
}

#define ROWS_CASES(W, TA)                                                                        \
    switch (rows) {                                                                              \
    case 6: direct(6, W, TA, cols, kc, a, rs, cs, b, ldb, c, ldc, alpha, beta); break;           \
    case 5: direct(5, W, TA, cols, kc, a, rs, cs, b, ldb, c, ldc, alpha, beta); break;           \
    case 4: direct(4, W, TA, cols, kc, a, rs, cs, b, ldb, c, ldc, alpha, beta); break;           \
    case 3: direct(3, W, TA, cols, kc, a, rs, cs, b, ldb, c, ldc, alpha, beta); break;           \
    case 2: direct(2, W, TA, cols, kc, a, rs, cs, b, ldb, c, ldc, alpha, beta); break;           \
    case 1: direct(1, W, TA, cols, kc, a, rs, cs, b, ldb, c, ldc, alpha, beta); break;           \
    }

void qat_sgemm_direct_6x16__avx2(int rows, int cols, int kc, const float *a, size_t rs,
                                 size_t cs, const float *b, size_t ldb, float *c, int ldc,
                                 float alpha, float beta)
{
    if (rs == 1 && cols > 8)
        ROWS_CASES(2, 1)
    else if (rs == 1)
        ROWS_CASES(1, 1)
    else if (cols > 8)
        ROWS_CASES(2, 0)
    else
        ROWS_CASES(1, 0)
}
