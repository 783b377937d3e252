/* A fixed team of threads that runs one function on every member at once.
 * Member 0 is the calling thread. All parallelism in qat (training loops and
 * the runtime) goes through a pool, so `threads` bounds the cores we use.
 * Pure C + pthreads: the runtime core links this. */
#ifndef QAT_POOL_H
#define QAT_POOL_H

#include <stddef.h>
#include "qat/status.h"

typedef struct qat_pool qat_pool;
typedef void (*qat_pool_fn)(void *ctx, int tid, int nthreads);

/* nthreads >= 1; nthreads - 1 workers are started (they flush denormals). */
qat_status qat_pool_create(int nthreads, qat_pool **out, qat_error *err);
void qat_pool_destroy(qat_pool *p);
/* Number of members; a NULL pool counts as 1. */
int qat_pool_threads(const qat_pool *p);
/* Runs fn(ctx, tid, n) on every member and returns when all are done.
 * A NULL pool runs fn(ctx, 0, 1) inline. Not reentrant. */
void qat_pool_run(qat_pool *p, qat_pool_fn fn, void *ctx);

/* Static contiguous split of [0, n) into nt parts; part tid is [*b, *e). */
static inline void qat_pool_range(size_t n, int tid, int nt, size_t *b, size_t *e)
{
    size_t q = n / (size_t)nt, r = n % (size_t)nt, t = (size_t)tid;
    *b = t * q + (t < r ? t : r);
    *e = *b + q + (t < r ? 1 : 0);
}

/* Sets flush-to-zero and denormals-are-zero for the calling thread (x86 MXCSR,
 * aarch64 FPCR.FZ). Training calls it on every thread it owns. */
void qat_cpu_flush_denormals(void);

#endif
