/* A fixed team of threads that runs one function over n member slots at
 * once. The calling thread runs slot 0; slots 1..n-1 are claimed by whichever
 * thread gets to them first (a worker, or the caller once slot 0 is done), so
 * a descheduled worker holds up little. Each slot runs exactly once with the
 * same arguments, and slots >= 1 always with flush-to-zero on, so results do
 * not depend on which thread ran a slot. Every parallel loop of the training
 * stack goes through a team, so `threads` bounds the cores it uses. The
 * integer runtime's sessions start their own workers (src/runtime/session.c),
 * which claim tasks from a shared board in the same spirit. Both kinds of
 * worker spin QAT_SPIN_ROUNDS rounds of qat_cpu_relax() before they sleep.
 * Pure C + pthreads: the runtime core links this. */
#ifndef QAT_TEAM_H
#define QAT_TEAM_H

#include <stddef.h>
#include "qat/status.h"

typedef struct qat_team qat_team;
typedef void (*qat_team_fn)(void *ctx, int tid, int nthreads);

/* nthreads >= 1; nthreads - 1 workers are started (they flush denormals). */
qat_status qat_team_create(int nthreads, qat_team **out, qat_error *err);
void qat_team_destroy(qat_team *p);
/* Number of members; a NULL team counts as 1. */
int qat_team_threads(const qat_team *p);
/* Runs fn(ctx, tid, n) once for every slot tid in [0, n) and returns when all
 * are done (see above for which thread runs which slot).
 * A NULL pool runs fn(ctx, 0, 1) inline. Not reentrant. */
void qat_team_run(qat_team *p, qat_team_fn fn, void *ctx);

/* Static contiguous split of [0, n) into nt parts; part tid is [*b, *e). */
static inline void qat_team_range(size_t n, int tid, int nt, size_t *b, size_t *e)
{
    size_t q = n / (size_t)nt, r = n % (size_t)nt, t = (size_t)tid;
    *b = t * q + (t < r ? t : r);
    *e = *b + q + (t < r ? 1 : 0);
}

/* Runs fn(ctx, begin, end) over a static split of [0, n) on the team, or
 * inline when n is below min_per_thread * threads (thread wake-ups cost more
 * than small loops). */
typedef void (*qat_range_fn)(void *ctx, size_t begin, size_t end);
void qat_team_parallel_for(qat_team *team, size_t n, size_t min_per_thread, qat_range_fn fn,
                           void *ctx);

/* Elements per thread below which elementwise loops stay on one thread. */
#define QAT_ELEMWISE_GRAIN 16384

/* Idle workers spin this many rounds (about a millisecond) before sleeping:
 * parallel regions in a training step or an inference batch come every few
 * hundred microseconds, and a condvar wake-up costs tens of microseconds. */
#define QAT_SPIN_ROUNDS 20000

/* One round of a spin-wait loop: pause / yield hint to the core. */
static inline void qat_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Sets flush-to-zero and denormals-are-zero for the calling thread (x86 MXCSR,
 * aarch64 FPCR.FZ). Training calls it on every thread it owns. */
void qat_cpu_flush_denormals(void);

#endif
