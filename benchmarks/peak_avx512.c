/* The int8 peak of the AVX-512 VNNI kernels' instruction: vpdpbusd on zmm
 * (64 u8 x s8 multiply-accumulates into 16 int32), 12 independent
 * accumulators so that only throughput counts. Built with the AVX-512 VNNI
 * flags. Returns the multiply-accumulates done. */
#include <immintrin.h>

#define STEP(a, x, w) a = _mm512_dpbusd_epi32(a, x, w)

long qat_bench_peak_avx512vnni(long iters)
{
    __m512i x0 = _mm512_set1_epi8(3), x1 = _mm512_set1_epi8(5);
    __m512i w0 = _mm512_set1_epi8(7), w1 = _mm512_set1_epi8(-11);
    __m512i a0 = x0, a1 = x0, a2 = x0, a3 = x0, a4 = x0, a5 = x0;
    __m512i a6 = x1, a7 = x1, a8 = x1, a9 = x1, a10 = x1, a11 = x1;
    for (long i = 0; i < iters; i++) {
        __asm__ volatile("" : "+v"(x0), "+v"(x1), "+v"(w0), "+v"(w1));
        STEP(a0, x0, w0); STEP(a1, x0, w1); STEP(a2, x1, w0); STEP(a3, x1, w1);
        STEP(a4, x0, w0); STEP(a5, x0, w1); STEP(a6, x1, w0); STEP(a7, x1, w1);
        STEP(a8, x0, w0); STEP(a9, x0, w1); STEP(a10, x1, w0); STEP(a11, x1, w1);
    }
    __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), a2),
                                 _mm512_add_epi32(_mm512_add_epi32(a3, a4), a5));
    s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(a6, a7), a8));
    s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(a9, a10), a11));
    __asm__ volatile("" : : "v"(s));
    return iters * 12 * 64;
}

/* The fp32 peak of the sgemm tile's instruction: vfmadd231ps on zmm (16
 * multiply-adds), 12 independent accumulators. Returns the multiply-adds. */
#define FSTEP(a, x, w) a = _mm512_fmadd_ps(x, w, a)

long qat_bench_peak_fma_avx512(long iters)
{
    __m512 x0 = _mm512_set1_ps(1.0f), x1 = _mm512_set1_ps(0.5f);
    __m512 w0 = _mm512_set1_ps(1e-7f), w1 = _mm512_set1_ps(-1e-7f);
    __m512 a0 = x0, a1 = x0, a2 = x0, a3 = x0, a4 = x0, a5 = x0;
    __m512 a6 = x1, a7 = x1, a8 = x1, a9 = x1, a10 = x1, a11 = x1;
    for (long i = 0; i < iters; i++) {
        __asm__ volatile("" : "+v"(x0), "+v"(x1), "+v"(w0), "+v"(w1));
        FSTEP(a0, x0, w0); FSTEP(a1, x0, w1); FSTEP(a2, x1, w0); FSTEP(a3, x1, w1);
        FSTEP(a4, x0, w0); FSTEP(a5, x0, w1); FSTEP(a6, x1, w0); FSTEP(a7, x1, w1);
        FSTEP(a8, x0, w0); FSTEP(a9, x0, w1); FSTEP(a10, x1, w0); FSTEP(a11, x1, w1);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), a2),
                             _mm512_add_ps(_mm512_add_ps(a3, a4), a5));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a6, a7), a8));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a9, a10), a11));
    __asm__ volatile("" : : "v"(s));
    return iters * 12 * 16;
}
