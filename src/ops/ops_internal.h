/* Helpers shared by the op files (not a public API). */
#ifndef QAT_OPS_INTERNAL_H
#define QAT_OPS_INTERNAL_H

#include <stddef.h>

#include "qat/ops.h"

/* Runs fn(ctx, begin, end) over a static split of [0, n) on the pool, or
 * inline when n is below min_per_thread * threads (thread wake-ups cost more
 * than small loops). */
typedef void (*qat_range_fn)(void *ctx, size_t begin, size_t end);
void qat_parallel_for(qat_pool *pool, size_t n, size_t min_per_thread, qat_range_fn fn, void *ctx);

/* Elements per thread below which elementwise loops stay on one thread. */
#define QAT_ELEMWISE_GRAIN 16384

#endif
