#include "qat/team.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

struct qat_team {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint gen;
    atomic_int next;    /* the next member slot of this run nobody has claimed */
    atomic_int pending; /* slots 1..n-1 not yet finished */
    atomic_int stop;
    qat_team_fn fn;
    void *ctx;
};

typedef struct {
    qat_team *p;
    int tid;
} worker_arg;

/* The calling thread's floating-point control word, to give a slot the
 * worker's flush-to-zero mode when the caller runs it. */
static unsigned long fp_mode_get(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return _mm_getcsr();
#elif defined(__aarch64__)
    unsigned long fpcr;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
    return fpcr;
#else
    return 0;
#endif
}

static void fp_mode_set(unsigned long m)
{
#if defined(__x86_64__) || defined(__i386__)
    _mm_setcsr((unsigned)m);
#elif defined(__aarch64__)
    __asm__ __volatile__("msr fpcr, %0" : : "r"(m));
#else
    (void)m;
#endif
}

/* Claims and runs member slots >= 1 of the current run until none is left.
 * Each slot runs exactly once, on whichever thread claims it first, with the
 * same arguments: which thread that is changes nothing in the results. */
static void run_slots(qat_team *p)
{
    for (;;) {
        int k = atomic_fetch_add(&p->next, 1);
        if (k >= p->n)
            return;
        p->fn(p->ctx, k, p->n);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
}

void qat_cpu_flush_denormals(void)
{
#if defined(__x86_64__) || defined(__i386__)
    _mm_setcsr(_mm_getcsr() | 0x8040); /* FTZ (bit 15) | DAZ (bit 6) */
#elif defined(__aarch64__)
    unsigned long fpcr;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
    fpcr |= (1UL << 24); /* FZ */
    __asm__ __volatile__("msr fpcr, %0" : : "r"(fpcr));
#endif
}

static void *worker_main(void *arg)
{
    worker_arg wa = *(worker_arg *)arg;
    free(arg);
    qat_team *p = wa.p;
    qat_cpu_flush_denormals();
    /* The pool starts at generation 0; a run may already have begun before
     * this thread got here, so do not sample gen. */
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen &&
               !atomic_load_explicit(&p->stop, memory_order_relaxed) && spins < QAT_SPIN_ROUNDS) {
            qat_cpu_relax();
            spins++;
        }
        if (g == seen && !atomic_load(&p->stop)) {
            pthread_mutex_lock(&p->mu);
            while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->cv, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop))
            return NULL;
        seen = g;
        run_slots(p);
    }
}

qat_status qat_team_create(int nthreads, qat_team **out, qat_error *err)
{
    *out = NULL;
    if (nthreads < 1 || nthreads > 1024)
        return qat_fail(err, QAT_EINVAL, "threads must be in [1, 1024], got %d", nthreads);
    qat_team *p = calloc(1, sizeof *p);
    if (!p)
        return qat_fail(err, QAT_ENOMEM, "out of memory creating thread team");
    p->n = nthreads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->next, nthreads);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, 0);
    if (nthreads > 1) {
        p->threads = calloc((size_t)nthreads - 1, sizeof *p->threads);
        if (!p->threads) {
            free(p);
            return qat_fail(err, QAT_ENOMEM, "out of memory creating thread team");
        }
        for (int i = 1; i < nthreads; i++) {
            worker_arg *wa = malloc(sizeof *wa);
            if (!wa || pthread_create(&p->threads[i - 1], NULL, worker_main,
                                      (wa->p = p, wa->tid = i, wa)) != 0) {
                free(wa);
                p->n = i; /* destroy joins the ones already started */
                qat_team_destroy(p);
                return qat_fail(err, QAT_EINTERNAL, "cannot start thread %d of %d", i, nthreads);
            }
        }
    }
    *out = p;
    return QAT_OK;
}

void qat_team_destroy(qat_team *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->threads[i - 1], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}

int qat_team_threads(const qat_team *p) { return p ? p->n : 1; }

void qat_team_run(qat_team *p, qat_team_fn fn, void *ctx)
{
    if (!p || p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    /* A worker still claiming from the previous run finds next >= n until
     * the store below, and the new fn and ctx after it. */
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    atomic_store(&p->next, 1);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0, p->n);
    /* Slots no worker has started yet run here, in the workers' FP mode: on a
     * busy machine a descheduled worker then costs one thread's share, not a
     * scheduler time slice per parallel region (training epochs were 12x
     * slower next to a compiler with a fixed split). */
    if (atomic_load_explicit(&p->next, memory_order_relaxed) < p->n) {
        unsigned long mode = fp_mode_get();
        qat_cpu_flush_denormals();
        run_slots(p);
        fp_mode_set(mode);
    }
    int spins = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
        if (++spins < QAT_SPIN_ROUNDS)
            qat_cpu_relax();
        else
            sched_yield();
    }
}

typedef struct {
    qat_range_fn fn;
    void *ctx;
    size_t n;
} pfor_job;

static void pfor_part(void *vctx, int tid, int nt)
{
    pfor_job *j = vctx;
    size_t b, e;
    qat_team_range(j->n, tid, nt, &b, &e);
    if (b < e)
        j->fn(j->ctx, b, e);
}

void qat_team_parallel_for(qat_team *team, size_t n, size_t min_per_thread, qat_range_fn fn,
                           void *ctx)
{
    int nt = qat_team_threads(team);
    if (nt == 1 || n < (size_t)nt * min_per_thread) {
        if (n)
            fn(ctx, 0, n);
        return;
    }
    pfor_job j = {fn, ctx, n};
    qat_team_run(team, pfor_part, &j);
}
