/* The AVX-512 unpacked tile (sgemm.h, "direct route"): up to 8 rows x 32
 * columns straight from op(A) and from the rows of B, C's columns masked,
 * for the narrow and small products whose packing would cost as much as
 * their multiply-adds (fc2 of the MNIST CNN: N = 10). The same fma chain
 * per element as the packed tiles. Built with -mavx512f. */
#include <immintrin.h>
#include <stddef.h>

#include "ops/sgemm/sgemm.h"

#define MR 8

/* ROWS x (16 W) accumulators, W = 1 or 2 zmm per row; columns past `cols`
 * are loaded as zero and never stored. TA: op(A) is A transposed (rs 1).
 * 8 rows, not 12: each row's broadcast address is a base plus an offset
 * register, and 12 of them with B's pointer and stride did not fit the 16
 * general registers (GCC spilled offsets and masks in the k loop); 8
 * chains of 4-cycle FMAs still fill both pipes. */
static inline __attribute__((always_inline)) void
direct(const int ROWS, const int W, const int TA, int cols, int kc, const float *a, size_t rs, size_t cs,
       const float *b, size_t ldb, float *c, int ldc, float alpha, float beta)
{
    const __mmask16 m0 = (__mmask16)(cols >= 16 ? 0xFFFFu : (1u << cols) - 1u);
    const __mmask16 m1 =
        (__mmask16)(cols >= 32 ? 0xFFFFu : cols <= 16 ? 0u : (1u << (cols - 16)) - 1u);
    /* op(A) transposed: a row of A holds the k-th values of every row */
    rs = TA ? 1 : rs;
    cs = TA ? cs : 1;
    __m512 acc[MR], acc1[MR];
#pragma GCC unroll 8
    for (int i = 0; i < ROWS; i++)
        acc[i] = acc1[i] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++, a += cs, b += ldb) {
        const __m512 b0 = _mm512_maskz_loadu_ps(m0, b);
        const __m512 b1 = W > 1 ? _mm512_maskz_loadu_ps(m1, b + 16) : b0;
#pragma GCC unroll 8
        for (int i = 0; i < ROWS; i++) {
            const __m512 ai = _mm512_set1_ps(a[(size_t)i * rs]);
            acc[i] = _mm512_fmadd_ps(ai, b0, acc[i]);
            if (W > 1)
                acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
    for (int i = 0; i < ROWS; i++) {
        float *ci = c + (size_t)i * ldc;
        __m512 t0 = _mm512_setzero_ps(), t1 = t0;
        if (beta != 0.0f) {
            t0 = _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m0, ci));
            if (W > 1)
                t1 = _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m1, ci + 16));
        }
        _mm512_mask_storeu_ps(ci, m0, _mm512_fmadd_ps(va, acc[i], t0));
        if (W > 1)
            _mm512_mask_storeu_ps(ci + 16, m1, _mm512_fmadd_ps(va, acc1[i], t1));
    }
}

#define ROWS_CASES(W, TA)                                                                        \
    switch (rows) {                                                                              \
    case 8: direct(8, W, TA, cols, kc, a, rs, cs, b, ldb, c, ldc, alpha, beta); break;           \
    case 7: direct(7, W, TA, cols, kc, a, rs, cs, b, ldb, c, ldc, alpha, beta); break;           \
    case 6: direct(6, W, TA, cols, kc, a, rs, cs, b, ldb, c, ldc, alpha, beta); break;           \
    case 5: direct(5, W, TA, cols, kc, a, rs, cs, b, ldb, c, ldc, alpha, beta); break;           \
    case 4: direct(4, W, TA, cols, kc, a, rs, cs, b, ldb, c, ldc, alpha, beta); break;           \
    case 3: direct(3, W, TA, cols, kc, a, rs, cs, b, ldb, c, ldc, alpha, beta); break;           \
    case 2: direct(2, W, TA, cols, kc, a, rs, cs, b, ldb, c, ldc, alpha, beta); break;           \
    case 1: direct(1, W, TA, cols, kc, a, rs, cs, b, ldb, c, ldc, alpha, beta); break;           \
    }

void qat_sgemm_direct_8x32__avx512(int rows, int cols, int kc, const float *a, size_t rs,
                                   size_t cs, const float *b, size_t ldb, float *c, int ldc,
                                   float alpha, float beta)
{
    if (rs == 1 && cols > 16)
        ROWS_CASES(2, 1)
    else if (rs == 1)
        ROWS_CASES(1, 1)
    else if (cols > 16)
        ROWS_CASES(2, 0)
    else
        ROWS_CASES(1, 0)
}
