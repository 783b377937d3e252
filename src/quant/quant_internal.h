/* Shared by the fake-quant op files (not a public API). */
#ifndef QAT_QUANT_INTERNAL_H
#define QAT_QUANT_INTERNAL_H

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

#endif
