/* The peak loops of benchmarks/peak_avx2.c and peak_avx512.c (x86-64 only:
 * bench-infer, bench-ops and tests/benchmarks/test_peak.c call them). Each
 * runs `iters` iterations of independent accumulator chains in assembly and
 * returns the multiply-adds done, or -1 when iters is outside
 * [1, QAT_PEAK_MAX_ITERS] or a chain's sums are not what the instructions
 * it counts give (peak_avx512.c says why that check exists). */
#ifndef QAT_BENCH_PEAK_H
#define QAT_BENCH_PEAK_H

#include <stdint.h>

long qat_bench_peak_avx2(long iters);        /* vpmaddwd + vpaddd, ymm */
long qat_bench_peak_fma_avx2(long iters);    /* vfmadd231ps, ymm */
long qat_bench_peak_avx512vnni(long iters);  /* vpdpbusd, zmm */
long qat_bench_peak_fma_avx512(long iters);  /* vfmadd231ps, zmm */

/* 1 * 1 added this many times is still exact in float. */
#define QAT_PEAK_MAX_ITERS (1L << 24)

static inline int qat_peak_iters_ok(long iters)
{
    return iters >= 1 && iters <= QAT_PEAK_MAX_ITERS;
}

/* done if all n lanes hold want, else -1. */
static inline long qat_peak_checked_i32(const int32_t *v, int n, int32_t want, long done)
{
    for (int i = 0; i < n; i++)
        if (v[i] != want)
            return -1;
    return done;
}

static inline long qat_peak_checked_f32(const float *v, int n, float want, long done)
{
    for (int i = 0; i < n; i++)
        if (v[i] != want)
            return -1;
    return done;
}

#endif
