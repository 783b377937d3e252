/* The int8 peak of the AVX2 kernels' instructions: vpmaddwd (16 int16
 * multiply-adds into 8 int32 pairs) + vpaddd into an accumulator, with 12
 * independent accumulators so that only throughput counts. Built with
 * -mavx2 -mfma. Returns the multiply-accumulates done. */
#include <immintrin.h>

#define STEP(a, x, w) a = _mm256_add_epi32(a, _mm256_madd_epi16(x, w))

long qat_bench_peak_avx2(long iters)
{
    __m256i x0 = _mm256_set1_epi16(3), x1 = _mm256_set1_epi16(-5);
    __m256i w0 = _mm256_set1_epi16(7), w1 = _mm256_set1_epi16(-11);
    __m256i a0 = x0, a1 = x0, a2 = x0, a3 = x0, a4 = x0, a5 = x0;
    __m256i a6 = x1, a7 = x1, a8 = x1, a9 = x1, a10 = x1, a11 = x1;
    for (long i = 0; i < iters; i++) {
        /* opaque operands: the compiler may not hoist the products */
        __asm__ volatile("" : "+x"(x0), "+x"(x1), "+x"(w0), "+x"(w1));
        STEP(a0, x0, w0); STEP(a1, x0, w1); STEP(a2, x1, w0); STEP(a3, x1, w1);
        STEP(a4, x0, w0); STEP(a5, x0, w1); STEP(a6, x1, w0); STEP(a7, x1, w1);
        STEP(a8, x0, w0); STEP(a9, x0, w1); STEP(a10, x1, w0); STEP(a11, x1, w1);
    }
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(a0, a1), a2),
                                 _mm256_add_epi32(_mm256_add_epi32(a3, a4), a5));
    s = _mm256_add_epi32(s, _mm256_add_epi32(_mm256_add_epi32(a6, a7), a8));
    s = _mm256_add_epi32(s, _mm256_add_epi32(_mm256_add_epi32(a9, a10), a11));
    __asm__ volatile("" : : "x"(s));
    return iters * 12 * 16;
}

/* The fp32 peak of the AVX2 sgemm tile's instruction: vfmadd231ps on ymm (8
 * multiply-adds), 12 independent accumulators. Returns the multiply-adds. */
#define FSTEP(a, x, w) a = _mm256_fmadd_ps(x, w, a)

long qat_bench_peak_fma_avx2(long iters)
{
    __m256 x0 = _mm256_set1_ps(1.0f), x1 = _mm256_set1_ps(0.5f);
    __m256 w0 = _mm256_set1_ps(1e-7f), w1 = _mm256_set1_ps(-1e-7f);
    __m256 a0 = x0, a1 = x0, a2 = x0, a3 = x0, a4 = x0, a5 = x0;
    __m256 a6 = x1, a7 = x1, a8 = x1, a9 = x1, a10 = x1, a11 = x1;
    for (long i = 0; i < iters; i++) {
        __asm__ volatile("" : "+x"(x0), "+x"(x1), "+x"(w0), "+x"(w1));
        FSTEP(a0, x0, w0); FSTEP(a1, x0, w1); FSTEP(a2, x1, w0); FSTEP(a3, x1, w1);
        FSTEP(a4, x0, w0); FSTEP(a5, x0, w1); FSTEP(a6, x1, w0); FSTEP(a7, x1, w1);
        FSTEP(a8, x0, w0); FSTEP(a9, x0, w1); FSTEP(a10, x1, w0); FSTEP(a11, x1, w1);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), a2),
                             _mm256_add_ps(_mm256_add_ps(a3, a4), a5));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a6, a7), a8));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a9, a10), a11));
    __asm__ volatile("" : : "x"(s));
    return iters * 12 * 8;
}
