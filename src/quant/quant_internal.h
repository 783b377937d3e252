/* Shared by the fake-quant op and observer files (not a public API). */
#ifndef QAT_QUANT_INTERNAL_H
#define QAT_QUANT_INTERNAL_H

#include <math.h>
#include <stdint.h>

#define MAX_THREADS 256

/* Per-thread partial sums reduced in thread order: bit-identical for a given
 * thread count. */
typedef struct {
    double part[MAX_THREADS];
} partials;

static inline double reduce(const partials *p, int nt)
{
    double s = 0;
    for (int i = 0; i < nt; i++)
        s += p->part[i];
    return s;
}

/* The GEMM result is an integer held in a float; llrintf recovers it (exact
 * below 2^24, nearest integer beyond), plus the bias code bq. */
static inline int32_t acc_value(float a, int32_t bq)
{
    long long v = llrintf(a) + (long long)bq;
    return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;
}

#endif
